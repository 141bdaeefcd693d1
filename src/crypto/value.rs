//! Secret values: checks against Docker's limits, generation, and the masked summary that
//! `edit` shows instead of a diff.

use rand::RngCore;
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

/// Characters of a generated value (`set --generate --charset`, and a secret's
/// `generate: { charset }` in the manifest).
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

/// The default length of a generated value, in characters.
pub const DEFAULT_LENGTH: usize = 32;

impl Charset {
    /// Every character of the charset, each once.
    pub fn alphabet(self) -> &'static [u8] {
        match self {
            Charset::Alnum => b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            Charset::Hex => b"0123456789abcdef",
            Charset::Base64 => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            Charset::Ascii => {
                b"!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"
            }
        }
    }

    /// The name the command line and the manifest use: `alnum`, `hex`, `base64`, `ascii`.
    pub fn name(self) -> &'static str {
        match self {
            Charset::Alnum => "alnum",
            Charset::Hex => "hex",
            Charset::Base64 => "base64",
            Charset::Ascii => "ascii",
        }
    }

    /// The charset of a name (as [`Charset::name`] gives it), or `None`.
    pub fn from_name(name: &str) -> Option<Charset> {
        [
            Charset::Alnum,
            Charset::Hex,
            Charset::Base64,
            Charset::Ascii,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }

    /// Every name, for messages: `alnum, hex, base64, ascii`.
    pub const NAMES: &'static str = "alnum, hex, base64, ascii";
}

/// Why `length` cannot be the length of a generated value, or `None`: a Docker secret holds
/// 1 to 511,999 bytes, and every character generated is one byte.
pub fn length_problem(length: usize) -> Option<String> {
    (length == 0 || length > MAX_VALUE_LEN).then(|| {
        format!("{length} is out of range: Docker secrets hold 1 to {MAX_VALUE_LEN} bytes")
    })
}

/// A random value of `length` characters from `charset`, drawn from the operating system's
/// random source ([`rand::rngs::OsRng`], `getrandom`), every character equally likely. The
/// one generator of `set --generate` and `rotate`.
pub fn generate(length: usize, charset: Charset) -> Result<Plaintext> {
    if let Some(problem) = length_problem(length) {
        return Err(Error::new(format!("--length {problem}"))
            .with_kind(ErrorKind::Usage)
            .hint("choose a length such as 32"));
    }
    Ok(sample(&mut rand::rngs::OsRng, length, charset.alphabet()))
}

/// `length` characters drawn uniformly from `alphabet` (2 to 256 characters) by rejection
/// sampling: a random byte is used only when it is below the largest multiple of the
/// alphabet's size that fits in a byte (248 for the 62 characters of alnum), and then maps
/// to `alphabet[byte % size]`; bytes above are drawn again. Taking `byte % size` of every
/// byte would make the first `256 % size` characters more likely than the others (5/256
/// instead of 4/256 for alnum's first eight). The random bytes are wiped after use.
fn sample(rng: &mut impl RngCore, length: usize, alphabet: &[u8]) -> Plaintext {
    debug_assert!((2..=256).contains(&alphabet.len()));
    let size = alphabet.len();
    let limit = 256 - 256 % size;
    // Reserved in full up front, so that the value is never moved (and left behind unwiped)
    // by a reallocation.
    let mut out = Zeroizing::new(Vec::with_capacity(length));
    let mut random = Zeroizing::new([0u8; 64]);
    while out.len() < length {
        rng.fill_bytes(&mut random[..]);
        for &byte in random.iter() {
            if out.len() == length {
                break;
            }
            if usize::from(byte) < limit {
                out.push(alphabet[usize::from(byte) % size]);
            }
        }
    }
    out
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
    use std::collections::BTreeSet;

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

    /// Bytes 0, 1, ..., 255, 0, 1, ...: every byte value equally often, in order.
    struct Counter(u8);

    impl RngCore for Counter {
        fn next_u32(&mut self) -> u32 {
            0
        }
        fn next_u64(&mut self) -> u64 {
            0
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for b in dest {
                *b = self.0;
                self.0 = self.0.wrapping_add(1);
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> std::result::Result<(), rand::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    const ALL: [Charset; 4] = [
        Charset::Alnum,
        Charset::Hex,
        Charset::Base64,
        Charset::Ascii,
    ];

    /// How often each character of `charset` occurs in `value`; fails on any other byte.
    fn counts(value: &[u8], charset: Charset) -> Vec<usize> {
        let alphabet = charset.alphabet();
        let mut counts = vec![0usize; alphabet.len()];
        for c in value {
            let at = alphabet.iter().position(|a| a == c);
            let at = at.unwrap_or_else(|| panic!("{c:?} is not in {charset:?}"));
            counts[at] += 1;
        }
        counts
    }

    #[test]
    fn charsets_are_the_documented_alphabets() {
        let chars = |c: Charset| c.alphabet().iter().copied().collect::<BTreeSet<u8>>();
        let range = |a: u8, b: u8| (a..=b).collect::<BTreeSet<u8>>();
        let alnum = &(&range(b'a', b'z') | &range(b'A', b'Z')) | &range(b'0', b'9');
        assert_eq!(chars(Charset::Alnum), alnum);
        assert_eq!(chars(Charset::Hex), &range(b'0', b'9') | &range(b'a', b'f'));
        let base64 = &alnum | &BTreeSet::from([b'+', b'/']);
        assert_eq!(chars(Charset::Base64), base64);
        assert_eq!(chars(Charset::Ascii), range(b'!', b'~'));
        for c in ALL {
            // Each character once: a duplicate would be twice as likely as the others.
            assert_eq!(chars(c).len(), c.alphabet().len(), "{c:?}");
            assert_eq!(Charset::from_name(c.name()), Some(c));
            assert!(Charset::NAMES.contains(c.name()));
            use clap::ValueEnum;
            assert_eq!(c.to_possible_value().unwrap().get_name(), c.name());
        }
        assert_eq!(Charset::from_name("Alnum"), None);
    }

    /// With every byte value equally often, each character comes out exactly equally often:
    /// sampling with `byte % size` and no rejection would favour the first `256 % size`
    /// characters of alnum and ascii.
    #[test]
    fn sampling_rejects_the_bytes_that_would_bias_it() {
        for charset in ALL {
            let size = charset.alphabet().len();
            let per_cycle = 256 - 256 % size;
            let value = sample(&mut Counter(0), per_cycle * 10, charset.alphabet());
            let counts = counts(&value, charset);
            let each = per_cycle / size * 10;
            assert!(counts.iter().all(|&n| n == each), "{charset:?}: {counts:?}");
        }
        // A prefix stops mid-cycle: the length asked for, exactly.
        assert_eq!(sample(&mut Counter(7), 5, b"ab").as_slice(), b"babab");
    }

    /// Values from the OS's random source: the length asked for, only the charset's
    /// characters, each of them, and frequencies a chi-squared test cannot tell from
    /// uniform (the threshold is seven standard deviations above the mean, so a correct
    /// generator fails it about never, and `byte % 62` sampling, 25% too many of eight
    /// characters, always: about 660 against 138 for alnum).
    #[test]
    fn generated_values_are_uniform_over_the_charset() {
        for charset in ALL {
            let size = charset.alphabet().len();
            let n = 1600 * size;
            let value = generate(n, charset).unwrap();
            assert_eq!(value.len(), n);
            let counts = counts(&value, charset);
            let expected = (n / size) as f64;
            let chi2: f64 = counts
                .iter()
                .map(|&c| (c as f64 - expected).powi(2) / expected)
                .sum();
            let df = (size - 1) as f64;
            let threshold = df + 7.0 * (2.0 * df).sqrt();
            assert!(
                chi2 < threshold,
                "{charset:?}: chi2 {chi2:.1} >= {threshold:.1}: {counts:?}"
            );
        }
        let a = generate(32, Charset::Alnum).unwrap();
        assert_ne!(
            a.as_slice(),
            generate(32, Charset::Alnum).unwrap().as_slice()
        );
    }

    #[test]
    fn generated_lengths_are_bounded_by_docker() {
        assert_eq!(generate(1, Charset::Hex).unwrap().len(), 1);
        assert_eq!(
            generate(MAX_VALUE_LEN, Charset::Hex).unwrap().len(),
            MAX_VALUE_LEN
        );
        for bad in [0, MAX_VALUE_LEN + 1] {
            let err = generate(bad, Charset::Ascii).unwrap_err().to_string();
            assert!(
                err.contains("out of range") && err.contains("511999"),
                "{err}"
            );
            assert!(length_problem(bad).is_some());
        }
        assert_eq!(length_problem(40), None);
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
