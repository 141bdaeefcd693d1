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

/// A count and its noun: `1 secret`, `3 secrets`.
pub fn plural(n: usize, noun: &str) -> String {
    format!("{} {noun}{}", number(n), if n == 1 { "" } else { "s" })
}

/// A count with thousands separators: `10,000`.
pub fn number(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration as people write it: the largest unit first, at most two adjacent units, in
/// the units `--max-age` and `rotate_after` accept (`d`, `h`, `m`, `s`): `90d`, `3d 4h`,
/// `2m 39s`, `0s`. The rest is truncated, never rounded up; under a second, milliseconds
/// (`250ms`).
pub fn duration(d: std::time::Duration) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let secs = d.as_secs();
    if secs == 0 && d.subsec_millis() > 0 {
        return format!("{}ms", d.subsec_millis());
    }
    let Some(i) = UNITS.iter().position(|(unit, _)| secs >= *unit) else {
        return "0s".into();
    };
    let (unit, name) = UNITS[i];
    let mut out = format!("{}{name}", secs / unit);
    if let Some((next, next_name)) = UNITS.get(i + 1) {
        let rest = secs % unit / next;
        if rest > 0 {
            out.push_str(&format!(" {rest}{next_name}"));
        }
    }
    out
}

/// How long ago something happened, in the words of [`duration`]: `2m 39s ago`.
pub fn ago(age: std::time::Duration) -> String {
    format!("{} ago", duration(age))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn durations_read_like_the_input() {
        assert_eq!(duration(secs(90 * 86_400)), "90d");
        assert_eq!(duration(secs(3 * 86_400 + 4 * 3_600 + 59)), "3d 4h");
        assert_eq!(duration(secs(86_400 + 5 * 60)), "1d");
        assert_eq!(duration(secs(2 * 3_600 + 3)), "2h");
        assert_eq!(duration(secs(36 * 3_600)), "1d 12h");
        assert_eq!(duration(secs(159)), "2m 39s");
        assert_eq!(duration(secs(60)), "1m");
        assert_eq!(duration(secs(59)), "59s");
        assert_eq!(duration(secs(1)), "1s");
        assert_eq!(duration(Duration::ZERO), "0s");
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
        assert_eq!(duration(Duration::from_millis(1_999)), "1s");
        assert_eq!(duration(secs(12 * 7 * 86_400)), "84d");
    }

    #[test]
    fn ages_say_ago() {
        assert_eq!(ago(secs(159)), "2m 39s ago");
        assert_eq!(ago(secs(3 * 86_400 + 4 * 3_600)), "3d 4h ago");
        assert_eq!(ago(secs(7)), "7s ago");
    }
}
