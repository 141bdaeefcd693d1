//! A YAML tree with byte offsets, from the parser's event stream, and an editor that
//! rewrites only the bytes of the nodes it changes (comments and layout survive).

use super::*;

/// A YAML node with the byte range of its source text.
#[derive(Debug)]
pub(crate) enum Node {
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
    pub(crate) fn start(&self) -> usize {
        match self {
            Node::Scalar { start, .. }
            | Node::Seq { start, .. }
            | Node::Map { start, .. }
            | Node::Alias { start, .. } => *start,
        }
    }

    /// End of the node's own source text (a block collection's end marker points at the
    /// next token, past trailing comments, so it ends at its last child instead).
    pub(crate) fn content_end(&self) -> usize {
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

    pub(crate) fn scalar(&self) -> Option<&str> {
        match self {
            Node::Scalar {
                value, null: false, ..
            } => Some(value),
            _ => None,
        }
    }

    /// The entry of a mapping whose key is the scalar `key`.
    pub(crate) fn get(&self, key: &str) -> Option<(&Node, &Node)> {
        match self {
            Node::Map { entries, .. } => entries
                .iter()
                .find(|(k, _)| k.scalar() == Some(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }
}

pub(crate) enum Ev {
    Scalar(String, bool),
    SeqStart(bool),
    SeqEnd,
    MapStart(bool),
    MapEnd,
    Alias,
}

/// The first document of `text` as a node tree with byte offsets.
pub(crate) fn build_tree(text: &str) -> std::result::Result<Node, String> {
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

pub(crate) fn build_node(
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
pub(crate) struct Editor<'a> {
    pub(crate) text: &'a str,
    pub(crate) path: &'a Path,
    pub(crate) nl: &'static str,
    pub(crate) edits: Vec<(usize, usize, String)>,
}

impl<'a> Editor<'a> {
    pub(crate) fn new(text: &'a str, path: &'a Path) -> Self {
        let nl = if text.contains("\r\n") { "\r\n" } else { "\n" };
        Editor {
            text,
            path,
            nl,
            edits: Vec::new(),
        }
    }

    pub(crate) fn line_col(&self, pos: usize) -> (usize, usize) {
        let before = &self.text[..pos];
        let line = before.matches('\n').count() + 1;
        let col = before[self.line_start(pos)..].chars().count() + 1;
        (line, col)
    }

    pub(crate) fn unsupported(&self, pos: usize, what: &str) -> Error {
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

    pub(crate) fn line_start(&self, pos: usize) -> usize {
        self.text[..pos].rfind('\n').map_or(0, |i| i + 1)
    }

    /// Start of the line after the one holding the text that ends at `pos`.
    pub(crate) fn next_line(&self, pos: usize) -> usize {
        if pos > 0 && self.text.as_bytes()[pos - 1] == b'\n' {
            return pos;
        }
        self.text[pos..]
            .find('\n')
            .map_or(self.text.len(), |i| pos + i + 1)
    }

    /// Whether only blanks or a comment follow `pos` on its line.
    pub(crate) fn rest_is_blank(&self, pos: usize) -> bool {
        let end = self.text[pos..]
            .find('\n')
            .map_or(self.text.len(), |i| pos + i);
        let rest = self.text[pos..end].trim();
        rest.is_empty() || rest.starts_with('#')
    }

    /// Position just after the `:` that follows a mapping key ending at `key_end`.
    pub(crate) fn after_colon(&self, key_end: usize) -> Option<usize> {
        let rest = &self.text[key_end..];
        let skipped = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        rest[skipped..]
            .starts_with(':')
            .then_some(key_end + skipped + 1)
    }

    /// Text to insert at the start of the line after `pos`, adding a line break first at
    /// the end of a file that has none.
    pub(crate) fn insert_line_after(&mut self, pos: usize, line: String) {
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
    pub(crate) fn indent_unit(&self, root: &Node) -> usize {
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
    pub(crate) fn block_indent(&self, node: &Node, what: &str) -> Result<&'a str> {
        let text: &'a str = self.text;
        let prefix = &text[self.line_start(node.start())..node.start()];
        if prefix.chars().all(|c| c == ' ') {
            Ok(prefix)
        } else {
            Err(self.unsupported(node.start(), what))
        }
    }

    /// Appends `item` to the list `value` (the value of mapping key `key`).
    pub(crate) fn append_to_list(
        &mut self,
        key: &Node,
        value: &Node,
        item: &str,
        what: &str,
    ) -> Result<()> {
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
    pub(crate) fn append_to_map(
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
    pub(crate) fn remove_units(
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

    pub(crate) fn apply(mut self) -> Result<String> {
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
