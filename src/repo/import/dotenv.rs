//! Dotenv files for `swarmseal import dotenv`: one `KEY=VALUE` per line.
//!
//! Hand-written rather than taken from a crate: `dotenvy`, the maintained one, expands
//! `$VAR` and `${VAR}` from the process environment and from earlier lines, so a password
//! with a `$` in it would be stored changed, and values would pass through buffers that are
//! not wiped. Here every value is taken literally and held in wiped memory only.
//!
//! The syntax is what `docker compose`'s `env_file:` and shells agree on:
//!
//! - blank lines and lines starting with `#` are skipped; `export KEY=...` is `KEY=...`;
//! - `KEY` is letters, digits, `_`, `.` and `-`; blanks around `=` are allowed;
//! - an unquoted value ends at the end of the line or at a ` #` comment, blanks trimmed;
//! - `'...'` is literal; `"..."` knows the escapes `\n`, `\r`, `\t`, `\\`, `\"`, `\'` and `\$`
//!   (any other backslash is kept); both may span lines;
//! - nothing is expanded: `$HOME` is five characters.
//!
//! Errors name the file, the line and the variable, never a value.

use std::path::Path;

use crate::crypto::{Plaintext, MAX_VALUE_LEN};
use crate::error::{Error, Result};

/// One variable of a dotenv file.
pub struct Variable {
    pub key: String,
    /// The line it starts on (1-based).
    pub line: usize,
    pub value: Plaintext,
    /// The value has a `$` that a shell or `docker compose` would expand.
    pub has_dollar: bool,
}

/// A position in the text being parsed.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    path: &'a Path,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
    }

    /// Skips the rest of the line, its line break included.
    fn skip_line(&mut self) {
        while let Some(c) = self.bump() {
            if c == '\n' {
                break;
            }
        }
    }

    fn error(&self, line: usize, what: String, hint: &str) -> Error {
        Error::new(format!("{}:{line}: {what}", self.path.display()))
            .hint(format!("{hint}; nothing was stored"))
    }
}

/// The variables of dotenv text (`path` for messages), in file order. Refuses empty
/// values (a Docker secret holds at least one byte), values over Docker's limit, and a
/// variable given twice.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Variable>> {
    let mut cur = Cursor {
        text,
        pos: 0,
        line: 1,
        path,
    };
    let mut vars: Vec<Variable> = Vec::new();
    loop {
        cur.skip_blanks();
        match cur.peek() {
            None => break,
            Some('\n' | '\r' | '#') => {
                cur.skip_line();
                continue;
            }
            Some(_) => {}
        }
        let var = parse_assignment(&mut cur)?;
        if let Some(first) = vars.iter().find(|v| v.key == var.key) {
            return Err(cur.error(
                var.line,
                format!("{} is set twice (also on line {})", var.key, first.line),
                &format!("keep one {} line", var.key),
            ));
        }
        vars.push(var);
    }
    Ok(vars)
}

/// `[export] KEY = VALUE [# comment]`, from the first character of `KEY` (or `export`).
fn parse_assignment(cur: &mut Cursor<'_>) -> Result<Variable> {
    let line = cur.line;
    let mut key = read_key(cur);
    if key == "export" && matches!(cur.peek(), Some(' ' | '\t')) {
        cur.skip_blanks();
        key = read_key(cur);
    }
    cur.skip_blanks();
    if key.is_empty() || cur.peek() != Some('=') {
        // The line is not shown: it may be a value that lost its `KEY=`.
        return Err(cur.error(
            line,
            "expected KEY=VALUE, where KEY is letters, digits, '_', '.' and '-' (the line is not shown, in case it holds a value)".to_string(),
            "write one KEY=VALUE per line (comments start with #)",
        ));
    }
    cur.bump();
    cur.skip_blanks();
    let (value, has_dollar) = match cur.peek() {
        Some(q @ ('\'' | '"')) => {
            let value = quoted(cur, q, &key, line)?;
            end_of_quoted(cur, &key, line)?;
            let dollar = q == '"' && value.contains(&b'$');
            (value, dollar)
        }
        _ => {
            let value = unquoted(cur);
            let dollar = value.contains(&b'$');
            (value, dollar)
        }
    };
    if value.is_empty() || value.len() > MAX_VALUE_LEN {
        let what = if value.is_empty() {
            format!("{key} is empty, and a Docker secret holds 1 to {MAX_VALUE_LEN} bytes")
        } else {
            format!(
                "{key} is {} bytes long, and a Docker secret holds at most {MAX_VALUE_LEN}",
                value.len()
            )
        };
        return Err(cur.error(
            line,
            what,
            &format!("give {key} a value of 1 to {MAX_VALUE_LEN} bytes, or remove its line"),
        ));
    }
    Ok(Variable {
        key,
        line,
        value,
        has_dollar,
    })
}

fn read_key(cur: &mut Cursor<'_>) -> String {
    let start = cur.pos;
    while cur
        .peek()
        .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        cur.bump();
    }
    cur.text[start..cur.pos].to_string()
}

/// An unquoted value: to the end of the line or a ` #` comment, blanks trimmed.
fn unquoted(cur: &mut Cursor<'_>) -> Plaintext {
    let start = cur.pos;
    let rest = &cur.text[start..];
    let line_end = rest.find('\n').unwrap_or(rest.len());
    let line = &rest[..line_end];
    let cut = line
        .char_indices()
        .find(|(i, c)| *c == '#' && line[..*i].ends_with([' ', '\t']))
        .map_or(line.len(), |(i, _)| i);
    let value = line[..cut].trim_end_matches([' ', '\t', '\r']);
    cur.pos = start + line_end;
    cur.skip_line();
    Plaintext::new(value.as_bytes().to_vec())
}

/// A value in `q` quotes, the cursor on the opening quote; may span lines.
fn quoted(cur: &mut Cursor<'_>, q: char, key: &str, line: usize) -> Result<Plaintext> {
    cur.bump();
    let start = cur.pos;
    // Find the closing quote first, so that the value is allocated once (a reallocated
    // buffer would leave an unwiped copy behind).
    let bytes = cur.text.as_bytes();
    let mut end = start;
    loop {
        match bytes.get(end) {
            None => {
                return Err(cur.error(
                    line,
                    format!("the quoted value of {key} is not closed"),
                    &format!("add the closing {q} to {key}'s value"),
                ))
            }
            Some(b'\\') if q == '"' => end += 2,
            Some(&b) if b == q as u8 => break,
            Some(_) => end += 1,
        }
    }
    let raw = &cur.text[start..end.min(cur.text.len())];
    let mut value = Plaintext::new(Vec::with_capacity(raw.len()));
    if q == '\'' {
        value.extend_from_slice(raw.as_bytes());
    } else {
        unescape(raw, &mut value);
    }
    while cur.pos < end + 1 {
        cur.bump();
    }
    Ok(value)
}

/// The double-quoted text `raw` with its escapes replaced, appended to `out`.
fn unescape(raw: &str, out: &mut Plaintext) {
    let mut chars = raw.chars();
    let mut buf = [0u8; 4];
    while let Some(c) = chars.next() {
        let c = if c == '\\' {
            match chars.next() {
                Some('n') => '\n',
                Some('r') => '\r',
                Some('t') => '\t',
                Some(e @ ('\\' | '"' | '\'' | '$')) => e,
                Some(other) => {
                    out.push(b'\\');
                    other
                }
                None => '\\',
            }
        } else {
            c
        };
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
}

/// After a closing quote: blanks, then an optional `# comment`, to the end of the line.
fn end_of_quoted(cur: &mut Cursor<'_>, key: &str, line: usize) -> Result<()> {
    cur.skip_blanks();
    match cur.peek() {
        None => Ok(()),
        Some('\n' | '\r' | '#') => {
            cur.skip_line();
            Ok(())
        }
        Some(_) => Err(cur.error(
            line,
            format!("unexpected text after the closing quote of {key}'s value"),
            &format!("quote all of {key}'s value, or move the text into the quotes"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(text: &str) -> Vec<(String, Vec<u8>)> {
        parse(text, Path::new(".env"))
            .unwrap()
            .into_iter()
            .map(|v| (v.key, v.value.to_vec()))
            .collect()
    }

    fn refused(text: &str) -> String {
        let err = parse(text, Path::new(".env")).err().expect("refused");
        assert!(err.hint_text().is_some());
        err.message().to_string()
    }

    #[test]
    fn forms() {
        let text = "# comment\n\nA=1\nexport B = two words  # note\nC='single #$x'\nD=\"tab\\there\\n\\\"q\\\" \\$HOME \\w\"\r\nE=a#b\nF=\"multi\nline\"\n  G=x\r\n";
        let got = vars(text);
        let want: Vec<(&str, &[u8])> = vec![
            ("A", b"1"),
            ("B", b"two words"),
            ("C", b"single #$x"),
            ("D", b"tab\there\n\"q\" $HOME \\w"),
            ("E", b"a#b"),
            ("F", b"multi\nline"),
            ("G", b"x"),
        ];
        assert_eq!(
            got,
            want.into_iter()
                .map(|(k, v)| (k.to_string(), v.to_vec()))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn dollars_are_noted() {
        let v = parse("A=$X\nB='$X'\nC=\"$X\"\nD=x\n", Path::new(".env")).unwrap();
        let flags: Vec<bool> = v.iter().map(|v| v.has_dollar).collect();
        assert_eq!(flags, [true, false, true, false]);
    }

    #[test]
    fn refusals_name_line_and_variable_but_no_value() {
        assert!(refused("A=1\nB=\n").contains(".env:2: B is empty"));
        assert!(refused("A=''\n").contains("A is empty"));
        assert!(refused("A=1\nA=2\n").contains("A is set twice (also on line 1)"));
        let m = refused("just a secret value\n");
        assert!(m.contains(".env:1:") && !m.contains("secret value"), "{m}");
        assert!(refused("A=\"open\n").contains("not closed"));
        let m = refused("A='x' trailing\n");
        assert!(!m.contains("trailing"), "{m}");
        let m = refused("export SECRETWORD\n");
        assert!(
            m.contains(".env:1: expected KEY=VALUE") && !m.contains("SECRETWORD"),
            "{m}"
        );
    }
}
