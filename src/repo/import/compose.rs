//! Compose files for `swarmseal import compose`: finding the top-level `secrets:` and
//! `configs:` entries with `file:`, and rewriting each to `external: true` with
//! `name: ${SWARMSEAL_<NAME>}`.
//!
//! The rewrite is textual, as the manifest's edits are ([`crate::repo::manifest`]): the
//! YAML event stream, with byte offsets, locates the `file:` and `name:` of each entry, and
//! only those bytes change, so comments, anchors, quoting and the rest of the layout
//! survive. What cannot be rewritten safely is refused before anything is written: an entry
//! that is an alias or merges one (`<<: *x`), that carries an anchor other parts may refer
//! to, or that has keys an external secret cannot have. The rewritten text is parsed again
//! and compared with the original: everything but the imported entries must read the same.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use serde_saphyr::granit_parser::{Event, Parser};

use super::Kind;
use crate::error::{Error, Result};
use crate::repo::manifest::{build_tree, Editor, Node};

/// Largest compose file read.
pub const MAX_COMPOSE_FILE: usize = 4 << 20;

/// A top-level entry of `secrets:` or `configs:` left as it is, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub kind: Kind,
    pub key: String,
    /// `external`, `environment`, `content`, `driver`, `no file`, `empty` or `not a mapping`.
    pub reason: String,
}

/// A top-level entry with `file:`, and where its `file:` and `name:` are.
#[derive(Debug, Clone)]
pub struct FileEntry {
    pub kind: Kind,
    pub key: String,
    /// The path as written after `file:` (relative to the compose file's folder).
    pub file: String,
    /// The entry's line (1-based), for messages.
    pub line: usize,
    /// Byte range of `file: VALUE`.
    file_range: (usize, usize),
    name: NameSlot,
    flow: bool,
}

/// Where the entry's `name:` value goes.
#[derive(Debug, Clone)]
enum NameSlot {
    /// `name: VALUE`: the value's byte range and its quote character, if quoted.
    Value {
        start: usize,
        end: usize,
        quote: Option<char>,
    },
    /// `name:` without a value: inserted after the colon.
    Empty { at: usize },
    /// No `name:`: a line after `file:`'s (block, with `indent`), or `, name: ...` after
    /// its value (flow); `after` is the end of `file:`'s value.
    Missing { after: usize, indent: String },
}

/// The `secrets:` and `configs:` entries of a compose file.
#[derive(Debug, Clone, Default)]
pub struct Entries {
    pub files: Vec<FileEntry>,
    pub skipped: Vec<Skipped>,
}

fn section_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Secret => "secrets",
        Kind::Config => "configs",
    }
}

/// `FILE:LINE:COL` of a byte offset.
fn location(ed: &Editor<'_>, pos: usize) -> String {
    let (line, col) = ed.line_col(pos);
    format!("{}:{line}:{col}", ed.path.display())
}

/// The error for an entry that cannot be imported automatically.
fn refuse(ed: &Editor<'_>, pos: usize, what: String, hint: &str) -> Error {
    Error::new(format!("{}: {what}", location(ed, pos)))
        .hint(format!("{hint}; nothing was stored or changed"))
}

/// Reads the top-level `secrets:` and `configs:` of compose text (`path` for messages).
pub fn entries(text: &str, path: &Path) -> Result<Entries> {
    let root = build_tree(text).map_err(|why| {
        Error::new(format!(
            "{}: cannot read the YAML structure: {why}",
            path.display()
        ))
        .hint("fix the YAML (`docker stack config -c FILE` shows what Docker reads), then run the import again")
    })?;
    let ed = Editor::new(text, path);
    if !matches!(root, Node::Map { .. }) {
        return Err(Error::new(format!(
            "{} is not a compose file: its top level is not a mapping",
            path.display()
        ))
        .hint("pass the compose file that `docker stack deploy -c FILE` reads"));
    }
    let anchors = anchored(text);
    let mut out = Entries::default();
    for kind in [Kind::Secret, Kind::Config] {
        let section = section_of(kind);
        let Some((_, value)) = root.get(section) else {
            continue;
        };
        let list = match value {
            Node::Map { entries, .. } if !anchors.contains(&value.start()) => entries,
            Node::Scalar { null: true, .. } => continue,
            _ => {
                return Err(refuse(
                    &ed,
                    value.start(),
                    format!("the top-level {section}: is not a plain mapping of entries (an alias, an anchor or another kind of value)"),
                    &format!("write {section}: out as `NAME:` entries, then run the import again"),
                ))
            }
        };
        for (k, v) in list {
            let Some(key) = k.scalar() else {
                return Err(refuse(
                    &ed,
                    k.start(),
                    format!("an entry of {section}: has no plain name"),
                    "give every entry a name",
                ));
            };
            match classify(&ed, &anchors, kind, key, v)? {
                Ok(mut entry) => {
                    entry.line = ed.line_col(k.start()).0;
                    out.files.push(entry);
                }
                Err(reason) => out.skipped.push(Skipped {
                    kind,
                    key: key.to_string(),
                    reason,
                }),
            }
        }
    }
    Ok(out)
}

/// Byte offsets of every node that carries an anchor (`&name`).
fn anchored(text: &str) -> Vec<usize> {
    Parser::new_from_str(text)
        .map_while(|item| item.ok())
        .filter(|(event, _)| match event {
            Event::Scalar(_, _, anchor, _)
            | Event::SequenceStart(_, anchor, _)
            | Event::MappingStart(_, anchor, _) => *anchor != 0,
            _ => false,
        })
        .filter_map(|(_, span)| span.start.byte_offset())
        .collect()
}

/// Why an entry without `file:` is left as it is.
fn skip_reason(value: &Node) -> String {
    for key in ["external", "environment", "content", "driver"] {
        if value.get(key).is_some() {
            return key.to_string();
        }
    }
    "no file".to_string()
}

/// An entry with `file:` (`Ok(Ok)`), one to leave as it is (`Ok(Err(reason))`), or one
/// that cannot be rewritten safely (`Err`).
fn classify(
    ed: &Editor<'_>,
    anchors: &[usize],
    kind: Kind,
    key: &str,
    value: &Node,
) -> Result<std::result::Result<FileEntry, String>> {
    let section = section_of(kind);
    let entries = match value {
        Node::Map { entries, .. } => entries,
        Node::Alias { .. } => return Err(refuse(
            ed,
            value.start(),
            format!("{section} entry {key} is an alias (*NAME), so whether it has file: is not written there"),
            &format!("write entry {key} out in full, then run the import again"),
        )),
        Node::Scalar { null: true, .. } => return Ok(Err("empty".into())),
        _ => return Ok(Err("not a mapping".into())),
    };
    let keys: Vec<Option<&str>> = entries.iter().map(|(k, _)| k.scalar()).collect();
    if keys.contains(&Some("<<")) {
        return Err(refuse(
            ed,
            value.start(),
            format!("{section} entry {key} merges another mapping (<<: *NAME), so its keys are not all written there"),
            &format!("write entry {key} out in full, then run the import again"),
        ));
    }
    let Some((file_key, file_value)) = value.get("file") else {
        return Ok(Err(skip_reason(value)));
    };
    let (start, end) = (value.start(), value.content_end());
    if anchors.iter().any(|a| (start..=end).contains(a)) {
        return Err(refuse(
            ed,
            start,
            format!("{section} entry {key} carries an anchor (&NAME): other parts of the file may refer to it, and rewriting the entry would change them too"),
            &format!("remove the anchor from entry {key} (writing out what refers to it), then run the import again"),
        ));
    }
    check_keys(ed, section, key, entries)?;
    let file = one_line_scalar(ed, file_key, file_value)
        .filter(|f| !f.contains('$'))
        .ok_or_else(|| {
            refuse(
                ed,
                file_value.start(),
                format!("file: of {section} entry {key} is not a plain path on one line (a variable such as ${{DIR}} cannot be resolved here)"),
                &format!("write the path of entry {key} out, relative to the compose file's folder, then run the import again"),
            )
        })?;
    let flow = matches!(value, Node::Map { flow: true, .. });
    let name = name_slot(ed, section, key, value, file_key, file_value, flow)?;
    Ok(Ok(FileEntry {
        kind,
        key: key.to_string(),
        file: file.to_string(),
        line: 0,
        file_range: (file_key.start(), file_value.content_end()),
        name,
        flow,
    }))
}

/// Refuses keys besides `file:`, `name:` and `x-` extensions (an external secret has only
/// a name), and keys written twice.
fn check_keys(ed: &Editor<'_>, section: &str, key: &str, entries: &[(Node, Node)]) -> Result<()> {
    let mut seen = Vec::new();
    for (k, _) in entries {
        let Some(field) = k.scalar() else {
            return Err(refuse(
                ed,
                k.start(),
                format!("{section} entry {key} has a key that is not a plain name"),
                &format!("fix entry {key}"),
            ));
        };
        if seen.contains(&field) {
            return Err(refuse(
                ed,
                k.start(),
                format!("{section} entry {key} has {field}: twice"),
                &format!("keep one {field}: in entry {key}"),
            ));
        }
        seen.push(field);
        if matches!(field, "file" | "name") || field.starts_with("x-") {
            continue;
        }
        let hint = if field == "labels" {
            format!("remove labels: from entry {key} (the labels of a managed secret go in swarmseal.yaml, under secrets: {key}: labels:), then run the import again")
        } else {
            format!("remove {field}: from entry {key} (an external {section} entry has only a name), then run the import again")
        };
        return Err(refuse(
            ed,
            k.start(),
            format!("{section} entry {key} has both file: and {field}:, and an external entry cannot keep {field}:"),
            &hint,
        ));
    }
    Ok(())
}

/// The value of `key: value` when it is a non-null scalar and the pair is on one line.
fn one_line_scalar<'n>(ed: &Editor<'_>, key: &Node, value: &'n Node) -> Option<&'n str> {
    let text = value.scalar()?;
    let span = &ed.text[key.start()..value.content_end()];
    (!span.contains('\n')).then_some(text)
}

/// Where the rewritten entry's `name:` value goes.
fn name_slot(
    ed: &Editor<'_>,
    section: &str,
    key: &str,
    entry: &Node,
    file_key: &Node,
    file_value: &Node,
    flow: bool,
) -> Result<NameSlot> {
    let unsupported = |pos: usize, what: &str| {
        refuse(
            ed,
            pos,
            format!("{what} of {section} entry {key} is laid out in a way swarmseal cannot rewrite safely"),
            &format!("write entry {key} as `{key}:` followed by indented `file: PATH` (and `name: NAME`) lines, or as {{file: PATH}}, then run the import again"),
        )
    };
    match entry.get("name") {
        Some((name_key, Node::Scalar { start, end, .. })) if start == end => {
            // `name:` with nothing after it.
            let at = ed
                .after_colon(name_key.content_end())
                .ok_or_else(|| unsupported(name_key.start(), "name:"))?;
            Ok(NameSlot::Empty { at })
        }
        Some((name_key, Node::Scalar { start, end, .. })) => {
            if ed.text[name_key.start()..*end].contains('\n') {
                return Err(unsupported(name_key.start(), "name:"));
            }
            let quote = ed.text[*start..]
                .chars()
                .next()
                .filter(|c| matches!(c, '"' | '\''));
            Ok(NameSlot::Value {
                start: *start,
                end: *end,
                quote,
            })
        }
        Some((name_key, _)) => Err(unsupported(name_key.start(), "name:")),
        None if flow => Ok(NameSlot::Missing {
            after: file_value.content_end(),
            indent: String::new(),
        }),
        None => {
            let line = ed.line_start(file_key.start());
            let indent = &ed.text[line..file_key.start()];
            if !indent.chars().all(|c| c == ' ') || !ed.rest_is_blank(file_value.content_end()) {
                return Err(unsupported(file_key.start(), "file:"));
            }
            Ok(NameSlot::Missing {
                after: file_value.content_end(),
                indent: indent.to_string(),
            })
        }
    }
}

/// `${VARIABLE}` quoted with `quote` (or plain).
fn reference(variable: &str, quote: Option<char>) -> String {
    match quote {
        Some(q) => format!("{q}${{{variable}}}{q}"),
        None => format!("${{{variable}}}"),
    }
}

/// The compose text with each entry of `targets` rewritten to `external: true` and
/// `name: ${VARIABLE}`; nothing else changes (checked by parsing the result again).
pub fn rewrite(text: &str, path: &Path, targets: &[(&FileEntry, String)]) -> Result<String> {
    let mut ed = Editor::new(text, path);
    for (entry, variable) in targets {
        let (start, end) = entry.file_range;
        ed.edits.push((start, end, "external: true".to_string()));
        let flow_quote = entry.flow.then_some('"');
        match &entry.name {
            NameSlot::Value { start, end, quote } => {
                ed.edits
                    .push((*start, *end, reference(variable, quote.or(flow_quote))))
            }
            NameSlot::Empty { at } => {
                ed.edits
                    .push((*at, *at, format!(" {}", reference(variable, flow_quote))))
            }
            NameSlot::Missing { after, .. } if entry.flow => ed.edits.push((
                *after,
                *after,
                format!(", name: {}", reference(variable, flow_quote)),
            )),
            NameSlot::Missing { after, indent } => ed.insert_line_after(
                *after,
                format!("{indent}name: {}", reference(variable, None)),
            ),
        }
    }
    let new_text = ed.apply()?;
    verify(text, &new_text, path, targets)?;
    Ok(new_text)
}

/// Checks that `new` reads like `old` except for the imported entries, which now read
/// `external: true` and `name: ${VARIABLE}` (and keep their `x-` keys).
fn verify(old: &str, new: &str, path: &Path, targets: &[(&FileEntry, String)]) -> Result<()> {
    let fail = |why: String| {
        Error::new(format!("cannot rewrite {} safely: {why}", path.display())).hint(
            "nothing was stored or changed; replace file: by external: true and name: ${SWARMSEAL_<NAME>} by hand, and store the values with `swarmseal set NAME --file PATH`",
        )
    };
    let a = build_tree(old).map_err(&fail)?;
    let b = build_tree(new).map_err(|why| fail(format!("the result would not parse ({why})")))?;
    let wanted: BTreeMap<(&str, &str), &str> = targets
        .iter()
        .map(|(e, v)| ((section_of(e.kind), e.key.as_str()), v.as_str()))
        .collect();
    let (Node::Map { entries: top_a, .. }, Node::Map { entries: top_b, .. }) = (&a, &b) else {
        return Err(fail("its top level changed".into()));
    };
    if top_a.len() != top_b.len() {
        return Err(fail("its top level changed".into()));
    }
    for ((ka, va), (kb, vb)) in top_a.iter().zip(top_b) {
        let section = ka.scalar().unwrap_or_default();
        if !same(ka, old, kb, new) {
            return Err(fail(format!("top-level key {section} changed")));
        }
        if !matches!(section, "secrets" | "configs") {
            if !same(va, old, vb, new) {
                return Err(fail(format!("top-level {section}: changed")));
            }
            continue;
        }
        let (Node::Map { entries: ea, .. }, Node::Map { entries: eb, .. }) = (va, vb) else {
            if !same(va, old, vb, new) {
                return Err(fail(format!("top-level {section}: changed")));
            }
            continue;
        };
        if ea.len() != eb.len() {
            return Err(fail(format!("the entries of {section}: changed")));
        }
        for ((ka, va), (kb, vb)) in ea.iter().zip(eb) {
            let key = ka.scalar().unwrap_or_default();
            let ok = match wanted.get(&(section, key)) {
                Some(variable) => same(ka, old, kb, new) && is_external(vb, variable),
                None => same(ka, old, kb, new) && same(va, old, vb, new),
            };
            if !ok {
                return Err(fail(format!(
                    "entry {key} of {section}: would not read as intended"
                )));
            }
        }
    }
    Ok(())
}

/// True for `{external: true, name: ${VARIABLE}}` (plus `x-` keys).
fn is_external(node: &Node, variable: &str) -> bool {
    let Node::Map { entries, .. } = node else {
        return false;
    };
    let reference = format!("${{{variable}}}");
    let value = |k: &str| node.get(k).and_then(|(_, v)| v.scalar());
    value("external") == Some("true")
        && value("name") == Some(reference.as_str())
        && entries.iter().all(|(k, _)| {
            k.scalar()
                .is_some_and(|k| matches!(k, "external" | "name") || k.starts_with("x-"))
        })
}

/// Structural equality of two nodes, positions aside (aliases compare by their text).
fn same(a: &Node, at: &str, b: &Node, bt: &str) -> bool {
    match (a, b) {
        (
            Node::Scalar {
                value: x, null: n, ..
            },
            Node::Scalar {
                value: y, null: m, ..
            },
        ) => x == y && n == m,
        (
            Node::Seq {
                flow: f, items: x, ..
            },
            Node::Seq {
                flow: g, items: y, ..
            },
        ) => f == g && x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, at, q, bt)),
        (
            Node::Map {
                flow: f,
                entries: x,
                ..
            },
            Node::Map {
                flow: g,
                entries: y,
                ..
            },
        ) => {
            f == g
                && x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| same(ka, at, kb, bt) && same(va, at, vb, bt))
        }
        (Node::Alias { start: s, end: e }, Node::Alias { start: s2, end: e2 }) => {
            at[*s..*e] == bt[*s2..*e2]
        }
        _ => false,
    }
}

/// The path of an entry's `file:`, relative to the compose file's folder `dir` (as the
/// compose file was named: relative paths stay relative), without `.` components.
pub fn resolve(dir: &Path, file: &str) -> PathBuf {
    let joined = dir.join(file);
    let clean: PathBuf = joined
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    if clean.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        clean
    }
}
