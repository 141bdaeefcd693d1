//! Identities: where they come from (`-i`, `SWARMSEAL_IDENTITY`, `SWARMSEAL_AGE_KEY`, the
//! default file), the kinds swarmseal reads (age X25519, ssh-ed25519/ssh-rsa, passphrase-
//! protected files, plugins), and the terminal prompts they may need.

use std::fmt::Write as _;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use age::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::{
    decrypt_with, looks_like_age, normalize_key, read_limited, DecryptFailure, ENV_AGE_KEY,
    ENV_IDENTITY, MAX_IDENTITY_FILE,
};
use crate::error::{Error, ErrorKind, Result};

static CAPTURED_AGE_KEY: std::sync::OnceLock<Option<Zeroizing<Vec<u8>>>> =
    std::sync::OnceLock::new();

/// Takes `SWARMSEAL_AGE_KEY` out of the process environment (keeping its text for
/// [`Identities::load`]), so that no child process (an editor, `exec`'s command, ssh)
/// inherits the identity. Call once at start, before any thread exists.
pub fn capture_env_key() {
    let text = std::env::var_os(ENV_AGE_KEY)
        .filter(|v| !v.is_empty())
        .map(|v| Zeroizing::new(v.into_encoded_bytes()));
    if text.is_some() {
        std::env::remove_var(ENV_AGE_KEY);
    }
    let _ = CAPTURED_AGE_KEY.set(text);
}

/// The identities loaded for this run, with where they came from.
pub struct Identities {
    /// Send + Sync: files are decrypted on all cores (see [`Identities::parallel`]).
    pub(super) list: Vec<Box<dyn age::Identity + Send + Sync>>,
    /// True when one of them is a plugin's: a plugin runs as a process per file and may ask
    /// for a PIN or a touch, so such files are decrypted one at a time.
    plugins: bool,
    sources: Vec<String>,
    public_keys: Vec<String>,
    warnings: Vec<String>,
}

impl Identities {
    /// Loads identities, first source found wins: `-i` files, `SWARMSEAL_IDENTITY`,
    /// `SWARMSEAL_AGE_KEY`, then the default file. `Ok(None)` when there is none at all.
    pub fn load(cli_files: &[PathBuf]) -> Result<Option<Identities>> {
        let mut ids = Identities {
            list: Vec::new(),
            plugins: false,
            sources: Vec::new(),
            public_keys: Vec::new(),
            warnings: Vec::new(),
        };
        if !cli_files.is_empty() {
            for file in cli_files {
                ids.add_file(file, "-i")?;
            }
            return Ok(Some(ids));
        }
        if let Some(path) = std::env::var_os(ENV_IDENTITY).filter(|v| !v.is_empty()) {
            ids.add_file(Path::new(&path), ENV_IDENTITY)?;
            return Ok(Some(ids));
        }
        let captured = CAPTURED_AGE_KEY.get();
        let from_env;
        let text = match captured {
            Some(text) => text.as_ref(),
            None => {
                from_env = std::env::var_os(ENV_AGE_KEY)
                    .filter(|v| !v.is_empty())
                    .map(|v| Zeroizing::new(v.into_encoded_bytes()));
                from_env.as_ref()
            }
        };
        if let Some(text) = text {
            ids.add_bytes(text, ENV_AGE_KEY)?;
            return Ok(Some(ids));
        }
        if let Some(path) = default_identity_path() {
            if path.exists() {
                ids.add_file(&path, "default identity")?;
                return Ok(Some(ids));
            }
        }
        Ok(None)
    }

    /// The error when no source provides an identity needed to `why` (to decrypt files
    /// that exist: a new identity could not, so the hint is about finding the right one).
    pub fn missing_error(why: &str) -> Error {
        let default = default_identity_path()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "~/.config/swarmseal/identity.txt".into());
        Error::new(format!("no identity to {why}"))
            .with_kind(ErrorKind::Identity)
            .hint(format!(
            "use the identity of one of the environment's recipients: pass -i FILE, set {ENV_IDENTITY}=FILE or {ENV_AGE_KEY}=<identity text>, or put it at {default}. If you are not a recipient, ask one to add your public key with `swarmseal recipients add` and run `swarmseal rekey`"
        ))
    }

    /// Identities from identity text (used by tests and by `init` after `keygen`).
    pub fn from_text(text: &[u8], source: &str) -> Result<Identities> {
        let mut ids = Identities {
            list: Vec::new(),
            plugins: false,
            sources: Vec::new(),
            public_keys: Vec::new(),
            warnings: Vec::new(),
        };
        ids.add_bytes(text, source)?;
        Ok(ids)
    }

    /// What loading found worth a warning (an identity file others can read), for the
    /// caller to show: the library prints nothing.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// True when files may be decrypted on several threads at once: every identity is a
    /// key in memory (no plugin).
    pub fn parallel(&self) -> bool {
        !self.plugins
    }

    /// Where the identities came from, for messages.
    pub fn describe(&self) -> String {
        self.sources.join(", ")
    }

    /// The public keys of the loaded identities, normalized (see [`normalize_key`]).
    /// Plugin identities have no known public key and are not listed.
    pub fn public_keys(&self) -> &[String] {
        &self.public_keys
    }

    /// True when one of the identities is the given recipient key.
    pub fn holds(&self, key: &str) -> bool {
        let key = normalize_key(key);
        self.public_keys.contains(&key)
    }

    fn add_file(&mut self, path: &Path, via: &str) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let fail = |e: std::io::Error| {
            Error::io("read identity file", path, e).hint(format!(
                "check the path given by {via}: it must name your existing identity file (an age identity or an ssh private key)"
            ))
        };
        let file = std::fs::File::open(path).map_err(fail)?;
        let meta = file.metadata().map_err(fail)?;
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            // As ssh does for private keys, but a warning: the key may already be known.
            self.warnings.push(format!(
                "identity file {} can be read or changed by other users (mode {:04o}); protect it with `chmod 600 {}`",
                path.display(),
                meta.permissions().mode() & 0o7777,
                path.display()
            ));
        }
        // Bounded, into a buffer allocated once (and wiped): an identity file is small.
        let bytes = read_limited(BufReader::new(file), MAX_IDENTITY_FILE)
            .map_err(fail)?
            .ok_or_else(|| {
                Error::new(format!(
                    "identity file {} is larger than {MAX_IDENTITY_FILE} bytes; it cannot be an identity",
                    path.display()
                ))
                .hint(format!("check the path given by {via}"))
            })?;
        self.add_bytes(&bytes, &path.display().to_string())
    }

    fn add_bytes(&mut self, bytes: &[u8], source: &str) -> Result<()> {
        let bad = |why: String| {
            Error::new(format!("identity {source} cannot be used: {why}"))
            .with_kind(ErrorKind::Identity).hint(
                "point to an age identity (a line starting AGE-SECRET-KEY-1), an ssh-ed25519/ssh-rsa private key, or a passphrase-protected age identity file",
            )
        };
        if looks_like_age(bytes) {
            // A passphrase-protected identity file (age -p over an identity file).
            let passphrase =
                ask_passphrase(&format!("Passphrase for identity file {source}"), source)?;
            let scrypt = age::scrypt::Identity::new(passphrase);
            let inner = decrypt_with(bytes, std::iter::once(&scrypt as &dyn age::Identity))
                .map_err(|e| match e {
                    DecryptFailure::NoMatchingIdentity | DecryptFailure::Corrupt(_) => {
                        Error::new(format!(
                            "wrong passphrase for identity file {source}, or the file is damaged"
                        ))
                        .hint("try again with the right passphrase")
                    }
                    _ => bad("it is an age file but not an encrypted identity".into()),
                })?;
            return self.add_bytes(&inner, source);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad("it is not text".into()))?;
        if text.trim_start().starts_with("-----BEGIN") {
            return self.add_ssh_key(text, source, &bad);
        }
        let mut found = false;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Ok(id) = line.parse::<age::x25519::Identity>() {
                self.public_keys.push(id.to_public().to_string());
                self.list.push(Box::new(id));
                found = true;
            } else if line.starts_with("AGE-PLUGIN-") {
                let file = age::IdentityFile::from_buffer(BufReader::new(line.as_bytes()))
                    .map_err(|e| bad(e.to_string()))?
                    .with_callbacks(TerminalCallbacks);
                let ids = file.into_identities().map_err(|e| bad(e.to_string()))?;
                self.list.extend(
                    ids.into_iter()
                        .map(|i| i as Box<dyn age::Identity + Send + Sync>),
                );
                self.plugins = true;
                found = true;
            } else {
                return Err(bad("it contains a line that is not an age identity".into()));
            }
        }
        if !found {
            return Err(bad("it holds no identity".into()));
        }
        self.sources.push(source.to_string());
        Ok(())
    }

    /// An ssh-ed25519 or ssh-rsa private key (asking for its passphrase if it has one).
    fn add_ssh_key(
        &mut self,
        text: &str,
        source: &str,
        bad: &dyn Fn(String) -> Error,
    ) -> Result<()> {
        let identity =
            age::ssh::Identity::from_buffer(BufReader::new(text.as_bytes()), Some(source.into()))
                .map_err(|e| bad(e.to_string()))?;
        let identity = match identity {
            age::ssh::Identity::Unsupported(_) => {
                return Err(bad(
                    "this kind of ssh key is not supported (only ssh-ed25519 and ssh-rsa)".into(),
                ))
            }
            age::ssh::Identity::Encrypted(key) => {
                let passphrase =
                    ask_passphrase(&format!("Passphrase for ssh key {source}"), source)?;
                let key = key.decrypt(passphrase).map_err(|_| {
                    Error::new(format!("wrong passphrase for ssh key {source}"))
                        .hint("try again with the right passphrase")
                })?;
                age::ssh::Identity::Unencrypted(key)
            }
            unencrypted => unencrypted,
        };
        if let Ok(public) = age::ssh::Recipient::try_from(identity.clone()) {
            self.public_keys.push(normalize_key(&public.to_string()));
        }
        self.list.push(Box::new(identity));
        self.sources.push(source.to_string());
        Ok(())
    }
}

/// The default identity file: `$XDG_CONFIG_HOME/swarmseal/identity.txt`, else
/// `~/.config/swarmseal/identity.txt`.
pub fn default_identity_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(base.join("swarmseal").join("identity.txt"))
}

/// True when a person can be asked something: standard error is a terminal and the
/// controlling terminal can be opened.
pub fn can_prompt() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::fs::File::open("/dev/tty").is_ok()
}

fn ask_passphrase(prompt: &str, source: &str) -> Result<SecretString> {
    if !can_prompt() {
        return Err(Error::new(format!(
            "identity {source} is protected by a passphrase, and there is no terminal to ask for it"
        ))
        .hint(format!(
            "run the command on a terminal, or in automation provide an unprotected identity through {ENV_AGE_KEY} (a CI secret variable)"
        )));
    }
    let pass = rpassword::prompt_password(format!("{prompt}: "))
        .map_err(|e| Error::new(format!("cannot read the passphrase for {source}: {e}")))?;
    Ok(SecretString::from(pass))
}

/// Callbacks for plugin identities: messages go to standard error, passphrases and
/// confirmations are asked on the terminal when there is one.
#[derive(Clone, Copy)]
struct TerminalCallbacks;

impl age::Callbacks for TerminalCallbacks {
    fn display_message(&self, message: &str) {
        // A plugin's message is part of its terminal dialogue (touch the key, ...), like a
        // passphrase prompt: it goes straight to standard error.
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{message}").and_then(|()| err.flush());
    }
    fn confirm(&self, _message: &str, _yes: &str, _no: Option<&str>) -> Option<bool> {
        None
    }
    fn request_public_string(&self, _description: &str) -> Option<String> {
        None
    }
    fn request_passphrase(&self, description: &str) -> Option<SecretString> {
        if !can_prompt() {
            return None;
        }
        rpassword::prompt_password(format!("{description}: "))
            .ok()
            .map(SecretString::from)
    }
}

/// A new age identity: (identity file text, public key).
pub fn generate_identity() -> (Zeroizing<String>, String) {
    let identity = age::x25519::Identity::generate();
    let public = identity.to_public().to_string();
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let mut text = Zeroizing::new(String::new());
    let _ = write!(
        text,
        "# created: {created}\n# public key: {public}\n{}\n",
        identity.to_string().expose_secret()
    );
    (text, public)
}
