//! The crypto layer: identities, recipients, age encryption and the keyed fingerprint.
//!
//! Plaintext only ever lives in [`Plaintext`] buffers, which are wiped when dropped and
//! are allocated once at their final size so that no copy is left behind by a growing
//! `Vec`. Ciphertext is written ASCII-armored; binary and armored files are both read.

mod identity;
pub mod value;

pub use identity::{
    can_prompt, capture_env_key, default_identity_path, generate_identity, Identities,
};

use std::io::{BufRead, Read, Write};
use std::path::Path;

use age::armor::{ArmoredReader, ArmoredWriter, Format};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};

/// Secret bytes, wiped on drop.
pub type Plaintext = Zeroizing<Vec<u8>>;

/// Docker's limits on secret data: 1 to 511,999 bytes.
pub const MAX_VALUE_LEN: usize = 511_999;

/// Largest identity file read (many keys, or an ssh-rsa key with a passphrase).
const MAX_IDENTITY_FILE: usize = 256 << 10;

/// Environment variable naming an identity file.
pub const ENV_IDENTITY: &str = "SWARMSEAL_IDENTITY";
/// Environment variable holding identity text (for CI secret variables).
pub const ENV_AGE_KEY: &str = "SWARMSEAL_AGE_KEY";

/// Parses a public key: age X25519 (`age1...`), `ssh-ed25519 ...` or `ssh-rsa ...`.
pub fn parse_recipient(key: &str) -> std::result::Result<Box<dyn age::Recipient + Send>, String> {
    let key = key.trim();
    if key.starts_with("age1") {
        return key
            .parse::<age::x25519::Recipient>()
            .map(|r| Box::new(r) as _)
            .map_err(|e| format!("not a valid age public key ({e})"));
    }
    if key.starts_with("ssh-") {
        return match key.parse::<age::ssh::Recipient>() {
            Ok(r) => Ok(Box::new(r)),
            Err(age::ssh::ParseRecipientKeyError::Unsupported(kind)) => Err(format!(
                "{kind} keys are not supported; use ssh-ed25519, ssh-rsa or an age key"
            )),
            Err(_) => Err("not a valid ssh public key".into()),
        };
    }
    Err(
        "expected an age public key (age1...) or an ssh public key (ssh-ed25519 / ssh-rsa ...)"
            .into(),
    )
}

/// The comparable form of a public key: age keys as they are, ssh keys without their
/// comment.
pub fn normalize_key(key: &str) -> String {
    let key = key.trim();
    if key.starts_with("ssh-") {
        key.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
    } else {
        key.to_string()
    }
}

/// A short, stable id of a public key, recorded in the index to tell which recipients a
/// file was encrypted to. Public keys are not secret; this is only to keep lines short.
pub fn recipient_id(key: &str) -> String {
    let digest = Sha256::digest(normalize_key(key).as_bytes());
    hex::encode(&digest[..8])
}

/// sha256 of a file's bytes, as hex: the `source` of a ciphertext (never of a value).
pub fn file_digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What a repository's age file holds (see [`Scope`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    Secret,
    FingerprintKey,
    /// An encrypted config (`configs/<env>/<name>.age`).
    Config,
}

impl ScopeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Secret => "secret",
            ScopeKind::FingerprintKey => "fingerprint-key",
            ScopeKind::Config => "config",
        }
    }

    fn parse(s: &str) -> Option<ScopeKind> {
        match s {
            "secret" => Some(ScopeKind::Secret),
            "fingerprint-key" => Some(ScopeKind::FingerprintKey),
            "config" => Some(ScopeKind::Config),
            _ => None,
        }
    }

    /// In words, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            ScopeKind::Secret => "a secret",
            ScopeKind::FingerprintKey => "a fingerprint key",
            ScopeKind::Config => "an encrypted config",
        }
    }
}

/// Which environment a file was encrypted for, and what it holds.
///
/// swarmseal writes it into the age header as one more recipient stanza,
/// `-> swarmseal-scope <kind> <environment>` with an empty body. age and rage skip stanzas
/// they do not know (age itself adds a random "grease" stanza to every header), so the
/// file stays a plain age file. The header MAC, keyed by the file key, covers every
/// stanza: nobody who cannot decrypt a file can change its scope. So a pull request that
/// copies `secrets/prod/db.age` to `secrets/staging/x.age` cannot make an admin's `rekey`
/// re-encrypt the production value to staging's recipients: the copy says `production`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub kind: ScopeKind,
    pub environment: String,
}

/// The stanza tag of a [`Scope`].
pub const SCOPE_TAG: &str = "swarmseal-scope";

impl Scope {
    pub fn secret(environment: &str) -> Scope {
        Scope {
            kind: ScopeKind::Secret,
            environment: environment.to_string(),
        }
    }

    pub fn config(environment: &str) -> Scope {
        Scope {
            kind: ScopeKind::Config,
            environment: environment.to_string(),
        }
    }

    pub fn fingerprint_key(environment: &str) -> Scope {
        Scope {
            kind: ScopeKind::FingerprintKey,
            environment: environment.to_string(),
        }
    }
}

/// Writes a [`Scope`] stanza; it wraps nothing.
impl age::Recipient for Scope {
    fn wrap_file_key(
        &self,
        _file_key: &age_core::format::FileKey,
    ) -> std::result::Result<
        (
            Vec<age_core::format::Stanza>,
            std::collections::HashSet<String>,
        ),
        age::EncryptError,
    > {
        Ok((
            vec![age_core::format::Stanza {
                tag: SCOPE_TAG.to_string(),
                args: vec![self.kind.as_str().to_string(), self.environment.clone()],
                body: Vec::new(),
            }],
            std::collections::HashSet::new(),
        ))
    }
}

/// Reads the [`Scope`] stanza of the header being decrypted; unwraps nothing. It is asked
/// first, with every stanza, and the decryption that follows verifies the header MAC.
#[derive(Default)]
struct ScopeReader {
    found: std::cell::RefCell<ScopeFound>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
enum ScopeFound {
    #[default]
    None,
    One(Scope),
    Malformed,
}

impl age::Identity for ScopeReader {
    fn unwrap_stanza(
        &self,
        _stanza: &age_core::format::Stanza,
    ) -> Option<std::result::Result<age_core::format::FileKey, age::DecryptError>> {
        None
    }

    fn unwrap_stanzas(
        &self,
        stanzas: &[age_core::format::Stanza],
    ) -> Option<std::result::Result<age_core::format::FileKey, age::DecryptError>> {
        let mut found = ScopeFound::None;
        for stanza in stanzas.iter().filter(|s| s.tag == SCOPE_TAG) {
            found = match (&found, stanza.args.as_slice()) {
                (ScopeFound::None, [kind, env]) if stanza.body.is_empty() => {
                    match ScopeKind::parse(kind) {
                        Some(kind) => ScopeFound::One(Scope {
                            kind,
                            environment: env.clone(),
                        }),
                        None => ScopeFound::Malformed,
                    }
                }
                _ => ScopeFound::Malformed,
            };
        }
        *self.found.borrow_mut() = found;
        None
    }
}

/// A decrypted file: the value, and the scope its header carries (`None` for files
/// written by the age CLI or by swarmseal before scopes).
pub struct Decrypted {
    pub value: Plaintext,
    pub scope: Option<Scope>,
}

/// Encrypts a value to the given public keys, ASCII-armored, with its [`Scope`].
pub fn encrypt(plaintext: &[u8], keys: &[String], scope: &Scope) -> Result<Vec<u8>> {
    if keys.is_empty() {
        return Err(Error::new("no recipients to encrypt to")
            .hint("add a recipient to the environment in swarmseal.yaml"));
    }
    let recipients = keys
        .iter()
        .map(|k| parse_recipient(k).map_err(|e| Error::new(format!("recipient {k:?}: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    let encryptor = age::Encryptor::with_recipients(
        recipients
            .iter()
            .map(|r| r.as_ref() as &dyn age::Recipient)
            .chain(std::iter::once(scope as &dyn age::Recipient)),
    )
    .map_err(|e| Error::new(format!("cannot encrypt: {e}")))?;
    let fail = |e: std::io::Error| Error::new(format!("cannot encrypt: {e}"));
    let armored = ArmoredWriter::wrap_output(Vec::new(), Format::AsciiArmor).map_err(fail)?;
    let mut writer = encryptor.wrap_output(armored).map_err(fail)?;
    writer.write_all(plaintext).map_err(fail)?;
    writer.finish().and_then(|a| a.finish()).map_err(fail)
}

/// Why a file could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecryptFailure {
    /// Not an age file at all (for example a plaintext file).
    NotAge,
    /// An age file whose header or body is damaged or cut short.
    Corrupt(String),
    /// None of the loaded identities is a recipient of the file.
    NoMatchingIdentity,
    /// The value is larger than Docker allows (and than swarmseal writes).
    TooLarge,
    /// The header carries more than one scope stanza, or one swarmseal cannot read.
    BadScope,
}

/// True when the bytes start like an age file (binary or armored).
pub fn looks_like_age(bytes: &[u8]) -> bool {
    bytes.starts_with(b"age-encryption.org/")
        || bytes.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
}

/// Decrypts an age file (binary or armored) with the given identities, and reads its
/// [`Scope`] (authenticated by the successful decryption).
pub fn decrypt(
    ciphertext: &[u8],
    identities: &Identities,
) -> std::result::Result<Decrypted, DecryptFailure> {
    let reader = ScopeReader::default();
    let value = decrypt_with(
        ciphertext,
        std::iter::once(&reader as &dyn age::Identity).chain(
            identities
                .list
                .iter()
                .map(|i| i.as_ref() as &dyn age::Identity),
        ),
    )?;
    let scope = match reader.found.into_inner() {
        ScopeFound::None => None,
        ScopeFound::One(scope) => Some(scope),
        ScopeFound::Malformed => return Err(DecryptFailure::BadScope),
    };
    Ok(Decrypted { value, scope })
}

fn decrypt_with<'a>(
    ciphertext: &[u8],
    identities: impl Iterator<Item = &'a dyn age::Identity>,
) -> std::result::Result<Plaintext, DecryptFailure> {
    if !looks_like_age(ciphertext) {
        return Err(DecryptFailure::NotAge);
    }
    let decryptor = age::Decryptor::new_buffered(ArmoredReader::new(ciphertext))
        .map_err(|e| DecryptFailure::Corrupt(e.to_string()))?;
    let reader = decryptor.decrypt(identities).map_err(|e| match e {
        age::DecryptError::NoMatchingKeys => DecryptFailure::NoMatchingIdentity,
        other => DecryptFailure::Corrupt(other.to_string()),
    })?;
    // Allocate once at the largest possible size, so that the buffer never grows and
    // never leaves an unwiped copy of the value behind.
    let mut out: Plaintext =
        Zeroizing::new(Vec::with_capacity(ciphertext.len().min(MAX_VALUE_LEN + 1)));
    let mut limited = reader.take((MAX_VALUE_LEN + 1) as u64);
    let mut chunk = Zeroizing::new([0u8; 8192]);
    loop {
        match limited.read(&mut chunk[..]) {
            Ok(0) => break,
            Ok(n) => {
                if out.len() + n > out.capacity() {
                    return Err(DecryptFailure::TooLarge);
                }
                out.extend_from_slice(&chunk[..n]);
            }
            Err(e) => return Err(DecryptFailure::Corrupt(e.to_string())),
        }
    }
    if out.len() > MAX_VALUE_LEN {
        return Err(DecryptFailure::TooLarge);
    }
    // The buffer is the ciphertext's size, a few hundred bytes more than a short value:
    // apply keeps every value it creates, so keep an exact copy (the buffer is wiped as it
    // drops; `shrink_to_fit` would free it unwiped).
    Ok(Zeroizing::new(out.to_vec()))
}

/// Explains a decryption failure of `path` as a user-facing error.
pub fn decrypt_error(path: &Path, failure: DecryptFailure, identities: &Identities) -> Error {
    let kind = match failure {
        DecryptFailure::NoMatchingIdentity => ErrorKind::Identity,
        _ => ErrorKind::Repository,
    };
    describe_decrypt_failure(path, failure, identities).with_kind(kind)
}

fn describe_decrypt_failure(
    path: &Path,
    failure: DecryptFailure,
    identities: &Identities,
) -> Error {
    let p = path.display();
    match failure {
        DecryptFailure::NotAge => Error::new(format!(
            "{p} is not an age file: it may hold a plaintext value, which must never be committed"
        ))
        .hint("remove it from the repository (and from git history if it was committed), then store the value with `swarmseal set`"),
        DecryptFailure::Corrupt(why) => Error::new(format!("{p} is damaged or truncated: {why}"))
            .hint("restore the file from git (`git checkout -- FILE`) or set the value again with `swarmseal set`"),
        DecryptFailure::NoMatchingIdentity => Error::new(format!(
            "none of your identities can decrypt {p} (tried {})",
            identities.describe()
        ))
        .hint("use an identity that is a recipient of this environment (-i FILE, SWARMSEAL_IDENTITY or SWARMSEAL_AGE_KEY), or ask someone who has one to add your public key with `swarmseal recipients add` and run `swarmseal rekey`"),
        DecryptFailure::TooLarge => Error::new(format!(
            "{p} holds a value larger than Docker's limit of {MAX_VALUE_LEN} bytes"
        ))
        .hint("store a smaller value with `swarmseal set`"),
        DecryptFailure::BadScope => Error::new(format!(
            "{p} carries a malformed swarmseal-scope stanza, so swarmseal cannot tell which environment it belongs to"
        ))
        .hint("remove the file and set the value again with `swarmseal set`"),
    }
}

/// Length of the per-environment fingerprint key, in bytes.
pub const FINGERPRINT_KEY_LEN: usize = 32;

/// A new random fingerprint key.
pub fn new_fingerprint_key() -> Plaintext {
    use rand::RngCore;
    let mut key = Zeroizing::new(vec![0u8; FINGERPRINT_KEY_LEN]);
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}

/// The keyed fingerprint of a value: HMAC-SHA256 under the environment's key, as hex.
/// This is the only digest of a value that ever leaves the process.
pub fn fingerprint(key: &[u8], value: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(value);
    hex::encode(mac.finalize().into_bytes())
}

/// Reads all of a reader into a [`Plaintext`], refusing more than `limit` bytes.
/// Returns `Ok(None)` when the input is larger than `limit`.
pub fn read_limited(mut reader: impl BufRead, limit: usize) -> std::io::Result<Option<Plaintext>> {
    let mut out: Plaintext = Zeroizing::new(Vec::with_capacity(limit + 1));
    let mut chunk = Zeroizing::new([0u8; 8192]);
    loop {
        let n = reader.read(&mut chunk[..])?;
        if n == 0 {
            return Ok(Some(out));
        }
        if out.len() + n > limit {
            return Ok(None);
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> (Identities, String) {
        let (text, public) = generate_identity();
        (
            Identities::from_text(text.as_bytes(), "test").unwrap(),
            public,
        )
    }

    #[test]
    fn round_trip_binary() {
        let (ids, public) = identity();
        let value: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 256) as u8).collect();
        let ct = encrypt(&value, &[public], &Scope::secret("prod")).unwrap();
        assert!(ct.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"));
        let d = decrypt(&ct, &ids).unwrap();
        assert_eq!(d.value.as_slice(), value.as_slice());
        assert_eq!(d.scope, Some(Scope::secret("prod")));
    }

    #[test]
    fn wrong_identity_and_damage_are_told_apart() {
        let (_, public) = identity();
        let (other, _) = identity();
        let ct = encrypt(b"v", &[public], &Scope::fingerprint_key("x")).unwrap();
        assert_eq!(
            decrypt(&ct, &other).err(),
            Some(DecryptFailure::NoMatchingIdentity)
        );
        assert_eq!(
            decrypt(b"hello", &other).err(),
            Some(DecryptFailure::NotAge)
        );
        let truncated = &ct[..ct.len() / 2];
        assert!(matches!(
            decrypt(truncated, &other).err(),
            Some(DecryptFailure::Corrupt(_))
        ));
    }

    /// The scope stanza is covered by the header MAC: editing it breaks the file.
    #[test]
    fn scope_cannot_be_changed_without_the_file_key() {
        let (ids, public) = identity();
        let ct = encrypt(b"prod value", &[public], &Scope::secret("production")).unwrap();
        let mut binary = Vec::new();
        ArmoredReader::new(&ct[..])
            .read_to_end(&mut binary)
            .unwrap();
        let needle = b"\n-> swarmseal-scope secret production\n";
        let at = binary
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("the header carries the scope");
        // Same length, so that only the MAC can tell.
        let mut forged = binary.clone();
        forged[at..at + needle.len()].copy_from_slice(b"\n-> swarmseal-scope secret staging123\n");
        assert!(decrypt(&binary, &ids).is_ok());
        assert!(matches!(
            decrypt(&forged, &ids).err(),
            Some(DecryptFailure::Corrupt(_))
        ));
        // Unscoped files (the age CLI) decrypt with no scope.
        let (ids2, public2) = identity();
        let recipient: age::x25519::Recipient = public2.parse().unwrap();
        let plain = age::encrypt(&recipient, b"v").unwrap();
        assert_eq!(decrypt(&plain, &ids2).unwrap().scope, None);
    }

    #[test]
    fn fingerprint_is_keyed() {
        let a = fingerprint(b"k1", b"value");
        assert_eq!(a.len(), 64);
        assert_ne!(a, fingerprint(b"k2", b"value"));
        assert_eq!(a, fingerprint(b"k1", b"value"));
        assert_ne!(a, file_digest(b"value"));
    }

    #[test]
    fn recipients_parse() {
        let (_, public) = identity();
        assert!(parse_recipient(&public).is_ok());
        assert!(parse_recipient("age1nope").is_err());
        assert!(parse_recipient("ecdsa-sha2-nistp256 AAAA").is_err());
        assert_eq!(
            normalize_key("ssh-ed25519 AAAAx bob@laptop"),
            "ssh-ed25519 AAAAx"
        );
        assert_eq!(
            recipient_id("ssh-ed25519 AAAAx bob@laptop"),
            recipient_id("ssh-ed25519 AAAAx")
        );
    }
}
