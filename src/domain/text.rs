//! Text from outside swarmseal (Swarm labels, lock holders, Docker's and ssh's messages)
//! made safe to print on a terminal.

use std::borrow::Cow;

/// Text from outside swarmseal, safe to print: every control character (escape sequences,
/// carriage returns, newlines, C1 controls) is shown escaped, so that a label or a lock
/// holder cannot recolour the terminal, move the cursor or forge lines of output.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Like [`clean`], but keeps line breaks and tabs (for swarmseal's own multi-line messages
/// that may embed outside text).
pub fn clean_keeping_lines(text: &str) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Wraps text in an ANSI colour when `on`.
pub fn paint(on: bool, code: &str, text: &str) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}
