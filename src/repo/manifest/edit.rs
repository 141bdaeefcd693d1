//! Textual edits of the manifest (`recipients add|rm`): the YAML event stream locates the
//! nodes to change and only those bytes are rewritten, so comments and layout survive.

use super::*;

/// A YAML node with the byte range of its source text.
#[derive(Debug)]
pub(super) enum Node {
    Scalar {
        value: String,
        null: bool,
        start: usize,
        end: usize,
    },
    Seq {
        flow: bool,
        start: usize,
        end: usize,
        items: Vec<Node>,
    },
    Map {
        flow: bool,
        start: usize,
        end: usize,
        entries: Vec<(Node, Node)>,
    },
    Alias {
        start: usize,
        end: usize,
    },
}

impl Node {
    fn start(&self) -> usize {
        match self {
            Node::Scalar { start, .. }
            | Node::Seq { start, .. }
            | Node::Map { start, .. }
            | Node::Alias { start, .. } => *start,
        }
    }

    /// End of the node's own source text (a block collection's end marker points at the
    /// next token, past trailing comments, so it ends at its last child instead).
    fn content_end(&self) -> usize {
        match self {
            Node::Scalar { end, .. } | Node::Alias { end, .. } => *end,
            Node::Seq {
                flow: true, end, ..
            }
            | Node::Map {
                flow: true, end, ..
            } => *end,
            Node::Seq { items, start, .. } => items.last().map_or(*start, Node::content_end),
            Node::Map { entries, start, .. } => {
                entries.last().map_or(*start, |(_, v)| v.content_end())
            }
        }
    }

    fn scalar(&self) -> Option<&str> {
        match self {
            Node::Scalar {
                value, null: false, ..
            } => Some(value),
            _ => None,
        }
    }

    /// The entry of a mapping whose key is the scalar `key`.
    fn get(&self, key: &str) -> Option<(&Node, &Node)> {
        match self {
            Node::Map { entries, .. } => entries
                .iter()
                .find(|(k, _)| k.scalar() == Some(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }
}

pub(super) enum Ev {
    Scalar(String, bool),
    SeqStart(bool),
    SeqEnd,
    MapStart(bool),
    MapEnd,
    Alias,
}

/// The first document of `text` as a node tree with byte offsets.
pub(super) fn build_tree(text: &str) -> std::result::Result<Node, String> {
    let mut events = Vec::new();
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| e.to_string())?;
        let (Some(start), Some(end)) = (span.start.byte_offset(), span.end.byte_offset()) else {
            return Err("the YAML parser reported no byte offsets".into());
        };
        let ev = match event {
            Event::Scalar(value, style, _, _) => {
                let null = style == ScalarStyle::Plain
                    && (start == end || matches!(value.as_ref(), "~" | "null" | "Null" | "NULL"));
                Ev::Scalar(value.into_owned(), null)
            }
            Event::SequenceStart(style, _, _) => Ev::SeqStart(style == StructureStyle::Flow),
            Event::SequenceEnd => Ev::SeqEnd,
            Event::MappingStart(style, _, _) => Ev::MapStart(style == StructureStyle::Flow),
            Event::MappingEnd => Ev::MapEnd,
            Event::Alias(_) => Ev::Alias,
            Event::DocumentEnd => break,
            _ => continue,
        };
        events.push((ev, start, end));
    }
    let mut pos = 0;
    let root = build_node(&events, &mut pos)?;
    Ok(root)
}

pub(super) fn build_node(
    events: &[(Ev, usize, usize)],
    pos: &mut usize,
) -> std::result::Result<Node, String> {
    let Some((ev, start, end)) = events.get(*pos) else {
        return Err("unexpected end of the YAML document".into());
    };
    *pos += 1;
    match ev {
        Ev::Scalar(value, null) => Ok(Node::Scalar {
            value: value.clone(),
            null: *null,
            start: *start,
            end: *end,
        }),
        Ev::Alias => Ok(Node::Alias {
            start: *start,
            end: *end,
        }),
        Ev::SeqStart(flow) => {
            let mut items = Vec::new();
            loop {
                match events.get(*pos) {
                    Some((Ev::SeqEnd, _, e)) => {
                        *pos += 1;
                        return Ok(Node::Seq {
                            flow: *flow,
                            start: *start,
                            end: *e,
                            items,
                        });
                    }
                    Some(_) => items.push(build_node(events, pos)?),
                    None => return Err("unterminated sequence".into()),
                }
            }
        }
        Ev::MapStart(flow) => {
            let mut entries = Vec::new();
            loop {
                match events.get(*pos) {
                    Some((Ev::MapEnd, _, e)) => {
                        *pos += 1;
                        return Ok(Node::Map {
                            flow: *flow,
                            start: *start,
                            end: *e,
                            entries,
                        });
                    }
                    Some(_) => {
                        let key = build_node(events, pos)?;
                        let value = build_node(events, pos)?;
                        entries.push((key, value));
                    }
                    None => return Err("unterminated mapping".into()),
                }
            }
        }
        Ev::SeqEnd | Ev::MapEnd => Err("unbalanced YAML events".into()),
    }
}

/// Collects byte-range replacements on a text and applies them at once.
pub(super) struct Editor<'a> {
    pub(super) text: &'a str,
    pub(super) path: &'a Path,
    pub(super) nl: &'static str,
    pub(super) edits: Vec<(usize, usize, String)>,
}

impl<'a> Editor<'a> {
    fn new(text: &'a str, path: &'a Path) -> Self {
        let nl = if text.contains("\r\n") { "\r\n" } else { "\n" };
        Editor {
            text,
            path,
            nl,
            edits: Vec::new(),
        }
    }

    fn line_col(&self, pos: usize) -> (usize, usize) {
        let before = &self.text[..pos];
        let line = before.matches('\n').count() + 1;
        let col = before[self.line_start(pos)..].chars().count() + 1;
        (line, col)
    }

    fn unsupported(&self, pos: usize, what: &str) -> Error {
        let (line, col) = self.line_col(pos);
        Error::new(format!(
            "{}:{line}:{col}: cannot edit {what} automatically: its layout is not supported",
            self.path.display()
        ))
        .hint(format!(
            "edit {} by hand (lists may be written [a, b] or as `- a` lines; mappings as `key: value` lines or {{a: x}})",
            self.path.display()
        ))
    }

    fn line_start(&self, pos: usize) -> usize {
        self.text[..pos].rfind('\n').map_or(0, |i| i + 1)
    }

    /// Start of the line after the one holding the text that ends at `pos`.
    fn next_line(&self, pos: usize) -> usize {
        if pos > 0 && self.text.as_bytes()[pos - 1] == b'\n' {
            return pos;
        }
        self.text[pos..]
            .find('\n')
            .map_or(self.text.len(), |i| pos + i + 1)
    }

    /// Whether only blanks or a comment follow `pos` on its line.
    fn rest_is_blank(&self, pos: usize) -> bool {
        let end = self.text[pos..]
            .find('\n')
            .map_or(self.text.len(), |i| pos + i);
        let rest = self.text[pos..end].trim();
        rest.is_empty() || rest.starts_with('#')
    }

    /// Position just after the `:` that follows a mapping key ending at `key_end`.
    fn after_colon(&self, key_end: usize) -> Option<usize> {
        let rest = &self.text[key_end..];
        let skipped = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        rest[skipped..]
            .starts_with(':')
            .then_some(key_end + skipped + 1)
    }

    /// Text to insert at the start of the line after `pos`, adding a line break first at
    /// the end of a file that has none.
    fn insert_line_after(&mut self, pos: usize, line: String) {
        let at = self.next_line(pos);
        let lead = if at == self.text.len() && !self.text.is_empty() && !self.text.ends_with('\n') {
            self.nl
        } else {
            ""
        };
        self.edits
            .push((at, at, format!("{lead}{line}{}", self.nl)));
    }

    /// Indentation unit of the file (the step between a block mapping's key and its
    /// children), 2 when none can be seen.
    fn indent_unit(&self, root: &Node) -> usize {
        if let Node::Map { entries, .. } = root {
            for (key, value) in entries {
                if let Node::Map {
                    flow: false,
                    entries: children,
                    ..
                } = value
                {
                    if let Some((child, _)) = children.first() {
                        let parent_col = key.start() - self.line_start(key.start());
                        let child_col = child.start() - self.line_start(child.start());
                        if child_col > parent_col {
                            return child_col - parent_col;
                        }
                    }
                }
            }
        }
        2
    }

    /// Whitespace before a block node on its line (error if anything else is there).
    fn block_indent(&self, node: &Node, what: &str) -> Result<&'a str> {
        let text: &'a str = self.text;
        let prefix = &text[self.line_start(node.start())..node.start()];
        if prefix.chars().all(|c| c == ' ') {
            Ok(prefix)
        } else {
            Err(self.unsupported(node.start(), what))
        }
    }

    /// Appends `item` to the list `value` (the value of mapping key `key`).
    fn append_to_list(&mut self, key: &Node, value: &Node, item: &str, what: &str) -> Result<()> {
        match value {
            Node::Seq {
                flow: true,
                start,
                items,
                ..
            } => {
                let s = yaml_scalar(item, true);
                match items.last() {
                    Some(last) => {
                        self.edits
                            .push((last.content_end(), last.content_end(), format!(", {s}")))
                    }
                    None => self.edits.push((start + 1, start + 1, s)),
                }
            }
            Node::Seq {
                flow: false, items, ..
            } => {
                let Some(last) = items.last() else {
                    return Err(self.unsupported(value.start(), what));
                };
                let prefix = &self.text[self.line_start(last.start())..last.start()];
                if prefix.trim() != "-" || !self.rest_is_blank(last.content_end()) {
                    return Err(self.unsupported(last.start(), what));
                }
                let line = format!("{prefix}{}", yaml_scalar(item, false));
                self.insert_line_after(last.content_end(), line);
            }
            Node::Scalar {
                null: true,
                start,
                end,
                ..
            } => {
                let s = yaml_scalar(item, true);
                if start == end {
                    let Some(at) = self.after_colon(key.content_end()) else {
                        return Err(self.unsupported(key.start(), what));
                    };
                    self.edits.push((at, at, format!(" [{s}]")));
                } else {
                    self.edits.push((*start, *end, format!("[{s}]")));
                }
            }
            _ => return Err(self.unsupported(value.start(), what)),
        }
        Ok(())
    }

    /// Appends `key_text: value_text` (both ready to write) to the mapping `value`
    /// (itself the value of `key`); `unit` is the file's indentation step.
    fn append_to_map(
        &mut self,
        key: &Node,
        value: &Node,
        key_text: &str,
        value_text: &str,
        unit: usize,
        what: &str,
    ) -> Result<()> {
        match value {
            Node::Map {
                flow: true,
                start,
                entries,
                ..
            } => match entries.last() {
                Some((_, last)) => {
                    let at = last.content_end();
                    self.edits
                        .push((at, at, format!(", {key_text}: {value_text}")));
                }
                None => {
                    self.edits
                        .push((start + 1, start + 1, format!("{key_text}: {value_text}")))
                }
            },
            Node::Map {
                flow: false,
                entries,
                ..
            } => {
                let Some((last_key, last_value)) = entries.last() else {
                    return Err(self.unsupported(value.start(), what));
                };
                let indent = self.block_indent(last_key, what)?;
                if !self.rest_is_blank(last_value.content_end()) {
                    return Err(self.unsupported(last_value.start(), what));
                }
                self.insert_line_after(
                    last_value.content_end(),
                    format!("{indent}{key_text}: {value_text}"),
                );
            }
            Node::Scalar {
                null: true,
                start,
                end,
                ..
            } => {
                if start == end {
                    let indent = self.block_indent(key, what)?;
                    let line = format!("{indent}{}{key_text}: {value_text}", " ".repeat(unit));
                    self.insert_line_after(key.content_end(), line);
                } else {
                    self.edits
                        .push((*start, *end, format!("{{{key_text}: {value_text}}}")));
                }
            }
            _ => return Err(self.unsupported(value.start(), what)),
        }
        Ok(())
    }

    /// Removes the items of the list or mapping `value` (the value of `key`) selected by
    /// `remove` (indices of items or entries), with their separators or lines.
    fn remove_units(
        &mut self,
        key: &Node,
        value: &Node,
        remove: &[bool],
        what: &str,
    ) -> Result<()> {
        let (flow, units): (bool, Vec<(usize, usize)>) = match value {
            Node::Seq { flow, items, .. } => (
                *flow,
                items.iter().map(|i| (i.start(), i.content_end())).collect(),
            ),
            Node::Map { flow, entries, .. } => (
                *flow,
                entries
                    .iter()
                    .map(|(k, v)| (k.start(), v.content_end()))
                    .collect(),
            ),
            _ => return Err(self.unsupported(value.start(), what)),
        };
        let is_seq = matches!(value, Node::Seq { .. });
        if !remove.iter().any(|r| *r) {
            return Ok(());
        }
        if flow {
            for (i, (start, end)) in units.iter().enumerate() {
                if !remove[i] {
                    continue;
                }
                let kept_after = (i + 1..units.len()).any(|j| !remove[j]);
                let range = if kept_after {
                    (*start, units[i + 1].0)
                } else if i > 0 {
                    (units[i - 1].1, *end)
                } else {
                    (*start, *end)
                };
                self.edits.push((range.0, range.1, String::new()));
            }
            return Ok(());
        }
        for (i, (start, end)) in units.iter().enumerate() {
            if !remove[i] {
                continue;
            }
            let line = self.line_start(*start);
            let prefix = self.text[line..*start].trim();
            let prefix_ok = if is_seq {
                prefix == "-"
            } else {
                prefix.is_empty()
            };
            if !prefix_ok || !self.rest_is_blank(*end) {
                return Err(self.unsupported(*start, what));
            }
            self.edits.push((line, self.next_line(*end), String::new()));
        }
        if remove.iter().all(|r| *r) {
            // An emptied block collection would read back as null: write it empty instead.
            let Some(at) = self.after_colon(key.content_end()) else {
                return Err(self.unsupported(key.start(), what));
            };
            let empty = if is_seq { " []" } else { " {}" };
            self.edits.push((at, at, empty.to_string()));
        }
        Ok(())
    }

    fn apply(mut self) -> Result<String> {
        self.edits.sort_by_key(|(start, end, _)| (*start, *end));
        for pair in self.edits.windows(2) {
            if pair[0].1 > pair[1].0 {
                return Err(self.unsupported(pair[1].0, "this part of the manifest"));
            }
        }
        let mut out = self.text.to_string();
        for (start, end, replacement) in self.edits.iter().rev() {
            out.replace_range(*start..*end, replacement);
        }
        Ok(out)
    }
}

pub(super) fn tree_of(text: &str, path: &Path) -> Result<Node> {
    build_tree(text).map_err(|reason| {
        Error::new(format!(
            "{}: cannot read the YAML structure: {reason}",
            path.display()
        ))
        .hint("fix the YAML, or edit the file by hand")
    })
}

pub(super) fn check_edited(new_text: String, path: &Path, action: &str) -> Result<String> {
    match Manifest::parse(&new_text, path) {
        Ok(_) => Ok(new_text),
        Err(e) => Err(e
            .context(format!("{action}: the edited manifest would be invalid"))
            .or_hint(format!("edit {} by hand", path.display()))),
    }
}

/// Adds recipient `name` with public `key` to the manifest text, and to the recipient
/// lists of the environments or groups named in `to` (every environment when `to` is
/// empty). Comments and layout are kept; the result is parsed and validated.
pub fn add_recipient(
    text: &str,
    path: &Path,
    name: &str,
    key: &str,
    to: &[String],
) -> Result<String> {
    let action = format!("cannot add recipient {name:?}");
    let key = check_new_recipient(name, key)?;
    let raw = parse_raw(text, path)?;
    check_name_is_free(&raw, path, name, &action)?;
    let targets = add_targets(&raw, path, to, &action)?;

    let root = tree_of(text, path)?;
    let mut ed = Editor::new(text, path);
    let unit = ed.indent_unit(&root);
    add_recipient_entry(&mut ed, &root, name, key, unit)?;
    add_to_environments(&mut ed, &root, &targets.environments, name, unit)?;
    add_to_groups(&mut ed, &root, &targets.groups, name)?;
    let new_text = ed.apply()?;
    check_edited(new_text, path, &action)
}

/// Checks the name and public key of a new recipient; returns the key trimmed.
fn check_new_recipient<'k>(name: &str, key: &'k str) -> Result<&'k str> {
    if let Some(problem) = recipient_name_problem(name) {
        return Err(
            Error::new(format!("invalid recipient name {name:?}: {problem}"))
                .hint("use a name such as alice, ci-prod or bob@laptop"),
        );
    }
    let key = key.trim();
    if let Err(reason) = crypto::parse_recipient(key) {
        return Err(Error::new(format!("invalid public key for recipient {name:?}: {reason}"))
            .hint("use an age public key (age1...) or an ssh-ed25519 / ssh-rsa public key line (the content of ~/.ssh/id_ed25519.pub)"));
    }
    Ok(key)
}

/// Refuses a new recipient name already used by a recipient or a group.
fn check_name_is_free(raw: &RawManifest, path: &Path, name: &str, action: &str) -> Result<()> {
    if raw.recipient_names().contains(&name) {
        return Err(Error::new(format!(
            "{action}: it already exists in {}",
            path.display()
        ))
        .hint(format!(
            "to change its key, remove it first (swarmseal recipients rm {name}), or choose another name"
        )));
    }
    if raw.group_names().contains(&name) {
        return Err(Error::new(format!(
            "{action}: {name:?} is already a group in {}",
            path.display()
        ))
        .hint("recipients and groups share one namespace; choose another name"));
    }
    Ok(())
}

/// The environments and groups whose lists get a new recipient, each named once.
struct AddTargets<'a> {
    environments: Vec<&'a str>,
    groups: Vec<&'a str>,
}

/// Sorts the names in `to` into environments and groups (every environment when empty).
fn add_targets<'a>(
    raw: &'a RawManifest,
    path: &Path,
    to: &'a [String],
    action: &str,
) -> Result<AddTargets<'a>> {
    let groups = raw.group_names();
    let envs = raw.environment_names();
    let mut env_targets: Vec<&str> = Vec::new();
    let mut group_targets: Vec<&str> = Vec::new();
    if to.is_empty() {
        env_targets = envs.clone();
    }
    for target in to {
        let target = target.as_str();
        let is_env = envs.contains(&target);
        let is_group = groups.contains(&target);
        match (is_env, is_group) {
            (true, true) => {
                return Err(Error::new(format!(
                    "{action}: {target:?} is both an environment and a group in {}",
                    path.display()
                ))
                .hint("rename the group, or edit the manifest by hand"))
            }
            (true, false) if !env_targets.contains(&target) => env_targets.push(target),
            (false, true) if !group_targets.contains(&target) => group_targets.push(target),
            (false, false) => {
                return Err(Error::new(format!(
                    "{action}: unknown environment or group {target:?}"
                ))
                .hint(format!(
                    "known environments: {}; known groups: {}",
                    known_list(&envs),
                    known_list(&groups)
                )))
            }
            _ => {}
        }
    }
    Ok(AddTargets {
        environments: env_targets,
        groups: group_targets,
    })
}

/// Adds `name: key` to `recipients:`, writing that mapping after `project:` when missing.
fn add_recipient_entry(
    ed: &mut Editor<'_>,
    root: &Node,
    name: &str,
    key: &str,
    unit: usize,
) -> Result<()> {
    let Node::Map {
        flow: false,
        entries: top,
        ..
    } = root
    else {
        return Err(ed.unsupported(root.start(), "the top level"));
    };
    match root.get("recipients") {
        Some((k, v)) => {
            let flow = matches!(v, Node::Map { flow: true, .. })
                || matches!(v, Node::Scalar { null: true, start, end, .. } if start != end);
            ed.append_to_map(
                k,
                v,
                &yaml_scalar(name, flow),
                &yaml_scalar(key, flow),
                unit,
                "recipients:",
            )?;
        }
        None => {
            let anchor = root
                .get("project")
                .or_else(|| root.get("version"))
                .or_else(|| top.last().map(|(k, v)| (k, v)));
            let Some((anchor_key, anchor_value)) = anchor else {
                return Err(ed.unsupported(0, "the top level"));
            };
            let indent = ed.block_indent(anchor_key, "the top level")?;
            let block = format!(
                "{indent}recipients:{nl}{indent}{pad}{}: {}",
                yaml_scalar(name, false),
                yaml_scalar(key, false),
                nl = ed.nl,
                pad = " ".repeat(unit),
            );
            ed.insert_line_after(anchor_value.content_end(), block);
        }
    }
    Ok(())
}

/// Appends `name` to the recipient lists of `envs`, creating a list where there is none.
fn add_to_environments(
    ed: &mut Editor<'_>,
    root: &Node,
    envs: &[&str],
    name: &str,
    unit: usize,
) -> Result<()> {
    for env in envs {
        let what = format!("the recipients of environment {env:?}");
        let Some((env_key, env_value)) =
            root.get("environments").and_then(|(_, envs)| envs.get(env))
        else {
            return Err(ed.unsupported(0, &what));
        };
        let list = env_value.get("recipients");
        if let Some((_, Node::Seq { items, .. })) = list {
            if items.iter().any(|i| i.scalar() == Some(name)) {
                continue;
            }
        }
        match (list, env_value) {
            (Some((k, v)), _) => ed.append_to_list(k, v, name, &what)?,
            (None, Node::Map { .. }) => {
                let flow_name = yaml_scalar(name, true);
                ed.append_to_map(
                    env_key,
                    env_value,
                    "recipients",
                    &format!("[{flow_name}]"),
                    unit,
                    &what,
                )?
            }
            (None, _) => return Err(ed.unsupported(env_value.start(), &what)),
        }
    }
    Ok(())
}

/// Appends `name` to the member lists of `groups` that do not list it yet.
fn add_to_groups(ed: &mut Editor<'_>, root: &Node, groups: &[&str], name: &str) -> Result<()> {
    for group in groups {
        let what = format!("the members of group {group:?}");
        let Some((k, v)) = root.get("groups").and_then(|(_, g)| g.get(group)) else {
            return Err(ed.unsupported(0, &what));
        };
        if let Node::Seq { items, .. } = v {
            if items.iter().any(|i| i.scalar() == Some(name)) {
                continue;
            }
        }
        ed.append_to_list(k, v, name, &what)?;
    }
    Ok(())
}

/// Removes recipient `name` from the manifest text: its `recipients:` entry and every
/// reference in groups and environments. Refuses when an environment would be left
/// without recipients. Comments and layout are kept; the result is parsed and validated.
pub fn remove_recipient(text: &str, path: &Path, name: &str) -> Result<String> {
    let action = format!("cannot remove recipient {name:?}");
    let manifest = Manifest::parse(text, path)?;
    check_is_recipient(&manifest, path, name, &action)?;
    check_environments_keep_recipients(&manifest, name, &action)?;

    let root = tree_of(text, path)?;
    let mut ed = Editor::new(text, path);
    remove_recipient_entry(&mut ed, &root, name)?;
    remove_references(&mut ed, &root, name)?;
    let new_text = ed.apply()?;
    check_edited(new_text, path, &action)
}

/// Refuses to remove a name that is a group or no recipient at all.
fn check_is_recipient(manifest: &Manifest, path: &Path, name: &str, action: &str) -> Result<()> {
    if manifest.recipients.contains_key(name) {
        return Ok(());
    }
    if manifest.groups.contains_key(name) {
        return Err(
            Error::new(format!("{action}: it is a group, not a recipient")).hint(format!(
                "remove the group from groups: in {} by hand",
                path.display()
            )),
        );
    }
    let known: Vec<&str> = manifest.recipients.keys().map(String::as_str).collect();
    Err(Error::new(format!(
        "{action}: there is no such recipient in {}",
        path.display()
    ))
    .hint(format!("known recipients: {}", known_list(&known))))
}

/// Refuses a removal that would leave an environment without recipients.
fn check_environments_keep_recipients(manifest: &Manifest, name: &str, action: &str) -> Result<()> {
    let mut after = manifest.clone();
    after.recipients.remove(name);
    for members in after.groups.values_mut() {
        members.retain(|m| m != name);
    }
    for (env_name, env) in &manifest.environments {
        let refs: Vec<String> = env
            .recipients
            .iter()
            .filter(|r| *r != name)
            .cloned()
            .collect();
        if after.expand(&refs).is_empty() {
            return Err(Error::new(format!(
                "{action}: environment {env_name:?} would be left with no recipients"
            ))
            .hint(format!(
                "add another recipient to environment {env_name:?} first (swarmseal recipients add NAME KEY --to {env_name}), then remove {name}"
            )));
        }
    }
    Ok(())
}

/// Removes the entry `name` from the `recipients:` mapping.
fn remove_recipient_entry(ed: &mut Editor<'_>, root: &Node, name: &str) -> Result<()> {
    let Some((k, v)) = root.get("recipients") else {
        return Ok(());
    };
    let remove = match v {
        Node::Map { entries, .. } => entries
            .iter()
            .map(|(ek, _)| ek.scalar() == Some(name))
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    ed.remove_units(k, v, &remove, "recipients:")
}

/// Removes `name` from the member lists of groups and the recipient lists of environments.
fn remove_references(ed: &mut Editor<'_>, root: &Node, name: &str) -> Result<()> {
    for section in ["groups", "environments"] {
        let Some((_, Node::Map { entries, .. })) = root.get(section) else {
            continue;
        };
        for (entry_key, entry_value) in entries {
            let (list_key, list) = if section == "groups" {
                (entry_key, entry_value)
            } else {
                match entry_value.get("recipients") {
                    Some(found) => found,
                    None => continue,
                }
            };
            let Node::Seq { items, .. } = list else {
                continue;
            };
            let remove: Vec<bool> = items.iter().map(|i| i.scalar() == Some(name)).collect();
            let what = match (section, entry_key.scalar()) {
                ("groups", Some(g)) => format!("the members of group {g:?}"),
                (_, Some(e)) => format!("the recipients of environment {e:?}"),
                _ => section.to_string(),
            };
            ed.remove_units(list_key, list, &remove, &what)?;
        }
    }
    Ok(())
}
