//! Secret values: checks against Docker's limits, generation, and the masked summary that
//! `edit` shows instead of a diff.

use rand::Rng;
use similar::{ChangeTag, TextDiff};
use zeroize::Zeroizing;

use crate::crypto::{Plaintext, MAX_VALUE_LEN};
use crate::error::{Error, ErrorKind, Result};

/// Fails unless a value fits Docker's limits (1 to 511,999 bytes).
pub fn check_size(name: &str, value: &[u8]) -> Result<()> {
    if value.is_empty() {
        return Err(Error::new(format!(
            "the value for {name:?} is empty; Docker secrets hold 1 to {MAX_VALUE_LEN} bytes"
        ))
        .with_kind(ErrorKind::Usage)
        .hint("provide a value on standard input, with --file FILE, or use --generate"));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::new(format!(
            "the value for {name:?} is {} bytes; Docker secrets hold at most {MAX_VALUE_LEN} bytes",
            value.len()
        ))
        .with_kind(ErrorKind::Usage)
        .hint("store a smaller value, for example a compressed or split file"));
    }
    Ok(())
}

/// Characters for `set --generate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Charset {
    /// Letters and digits.
    Alnum,
    /// Lower-case hex digits.
    Hex,
    /// The base64 alphabet (letters, digits, '+' and '/').
    Base64,
    /// Printable ASCII without space.
    Ascii,
}

impl Charset {
    fn alphabet(self) -> Vec<u8> {
        let ranges: &[(u8, u8)] = match self {
            Charset::Alnum => &[(b'a', b'z'), (b'A', b'Z'), (b'0', b'9')],
            Charset::Hex => &[(b'0', b'9'), (b'a', b'f')],
            Charset::Base64 => &[
                (b'A', b'Z'),
                (b'a', b'z'),
                (b'0', b'9'),
                (b'+', b'+'),
                (b'/', b'/'),
            ],
            Charset::Ascii => &[(b'!', b'~')],
        };
        ranges.iter().flat_map(|&(a, b)| a..=b).collect()
    }
}

/// A random value of `length` characters from `charset`, from the OS's random source.
pub fn generate(length: usize, charset: Charset) -> Result<Plaintext> {
    if length == 0 || length > MAX_VALUE_LEN {
        return Err(Error::new(format!(
            "--length {length} is out of range: Docker secrets hold 1 to {MAX_VALUE_LEN} bytes"
        ))
        .with_kind(ErrorKind::Usage)
        .hint("choose a length such as 32"));
    }
    let alphabet = charset.alphabet();
    let mut rng = rand::rngs::OsRng;
    let mut out = Zeroizing::new(Vec::with_capacity(length));
    for _ in 0..length {
        out.push(alphabet[rng.gen_range(0..alphabet.len())]);
    }
    Ok(out)
}

/// True for a value that is not text a terminal shows as it is: not UTF-8, or holding
/// control characters other than tab, CR and LF (escape sequences could drive the
/// terminal). `get` refuses to print such a value on a terminal; `textconv` shows its size.
pub fn is_binary(value: &[u8]) -> bool {
    match std::str::from_utf8(value) {
        Err(_) => true,
        Ok(text) => text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n')),
    }
}

/// A summary of what changed between two values that shows no value: for text, which
/// lines were added, removed or changed; for binary values, the sizes.
pub fn masked_summary(old: &[u8], new: &[u8]) -> String {
    let (Ok(old_text), Ok(new_text)) = (std::str::from_utf8(old), std::str::from_utf8(new)) else {
        return format!(
            "binary value changed: {} bytes -> {} bytes",
            old.len(),
            new.len()
        );
    };
    let diff = TextDiff::from_lines(old_text, new_text);
    let mut out = Vec::new();
    let (mut added, mut removed) = (0usize, 0usize);
    for change in diff.iter_all_changes() {
        match change.tag() {
            ChangeTag::Equal => {}
            ChangeTag::Delete => {
                removed += 1;
                out.push(format!(
                    "  - line {} removed",
                    change.old_index().map_or(0, |i| i + 1)
                ));
            }
            ChangeTag::Insert => {
                added += 1;
                out.push(format!(
                    "  + line {} added",
                    change.new_index().map_or(0, |i| i + 1)
                ));
            }
        }
    }
    let mut head = format!(
        "{} added, {} removed ({} -> {} bytes; values hidden)",
        crate::domain::text::plural(added, "line"),
        removed,
        old.len(),
        new.len()
    );
    if !out.is_empty() {
        head.push('\n');
        head.push_str(&out.join("\n"));
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert!(check_size("x", b"").is_err());
        assert!(check_size("x", &vec![1u8; MAX_VALUE_LEN]).is_ok());
        let err = check_size("x", &vec![1u8; MAX_VALUE_LEN + 1]).unwrap_err();
        assert!(err.to_string().contains("511999"));
    }

    #[test]
    fn binary_values_are_not_utf8_or_hold_control_characters() {
        for text in [&b"hunter2\n"[..], b"a\tb\r\n", "pässwörd".as_bytes(), b""] {
            assert!(!is_binary(text), "{text:?}");
        }
        for binary in [&b"\xff\xfe"[..], b"a\x00b", b"\x1b[2J", "\u{85}".as_bytes()] {
            assert!(is_binary(binary), "{binary:?}");
        }
    }

    #[test]
    fn generated_values_use_the_charset() {
        let v = generate(64, Charset::Hex).unwrap();
        assert_eq!(v.len(), 64);
        assert!(v
            .iter()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        let a = generate(32, Charset::Alnum).unwrap();
        assert!(a.iter().all(u8::is_ascii_alphanumeric));
        assert_ne!(
            a.as_slice(),
            generate(32, Charset::Alnum).unwrap().as_slice()
        );
        assert!(generate(0, Charset::Ascii).is_err());
    }

    #[test]
    fn summary_hides_values() {
        let s = masked_summary(
            b"user=a\npass=hunter2\n",
            b"user=a\npass=swordfish\nport=1\n",
        );
        assert!(!s.contains("hunter2") && !s.contains("swordfish") && !s.contains("port"));
        assert!(s.contains("line 2 removed"));
        assert!(s.contains("line 3 added"));
        assert!(masked_summary(&[0xff, 0], &[0xfe]).starts_with("binary value changed"));
    }
}
