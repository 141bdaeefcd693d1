//! `swarmseal set`: encrypt a value into the repository. Never takes a value in argv.

use std::io::{BufReader, IsTerminal};

use zeroize::Zeroizing;

use crate::cli::{Global, SetArgs};
use crate::crypto::{self, Plaintext, ScopeKind, MAX_VALUE_LEN};
use crate::error::{Error, Result};
use crate::index;
use crate::store::LockMode;
use crate::value;

pub fn run(g: &Global, args: SetArgs) -> Result<i32> {
    let repo = super::open_repo(g)?;
    let env = super::select_env(g, &repo)?;
    // Refuse a bad name or a clash before asking for the value.
    let (name, _, _) = super::secret_target(&repo, &env, &args.name)?;
    let value = read_value(&name, &args)?;
    value::check_size(&name, &value)?;
    store_value(g, &repo, &env, &args.name, &value)
}

/// Encrypts `value` into the file of the secret named `input` (as the user typed it),
/// keeping the file as it is when the value is unchanged and the file is already
/// encrypted to the current recipients. Used by `set` and `edit`. Holds the repository
/// lock from reading the index until the file and the index are written together.
pub fn store_value(
    g: &Global,
    repo: &crate::store::Repo,
    env: &str,
    input: &str,
    value: &[u8],
) -> Result<i32> {
    let _lock = repo.lock(LockMode::Exclusive)?;
    let (name, path, exists) = super::secret_target(repo, env, input)?;
    let (name, path) = (name.as_str(), path.as_path());
    let mut index = repo.load_index()?;
    let old_record = index.record(env, name).cloned();
    // Whether the value changed decides `changed` (for rotate_after). Without an identity
    // that can read the old file, a write counts as a change.
    let mut unchanged = false;
    if exists {
        if let Some(ids) = super::identities(g)? {
            if let Ok(bytes) = repo.read(path) {
                // A file that belongs elsewhere (another environment's copy) is simply
                // overwritten: its value is never read.
                if let Ok(old) = repo.open_sealed(env, ScopeKind::Secret, path, &bytes, &ids, None)
                {
                    unchanged = old.value.as_slice() == value;
                    if unchanged {
                        let current = repo.manifest.env_recipients(env)?;
                        if super::recipient_state(old_record.as_ref(), &bytes, &current)
                            == super::RecipientState::Current
                        {
                            super::say(
                                g,
                                format!("{name} in {env}: value unchanged; nothing to do"),
                            );
                            return Ok(0);
                        }
                    }
                }
            }
        }
    }
    let changed = if unchanged {
        old_record
            .and_then(|r| r.changed)
            .or_else(|| Some(index::now_stamp()))
    } else {
        Some(index::now_stamp())
    };
    let mut tx = repo.transaction();
    super::write_encrypted(
        repo,
        &mut tx,
        &mut index,
        env,
        super::Target::Secret { name, path },
        value,
        changed,
    )?;
    super::stage_index(repo, &mut tx, &index)?;
    tx.commit()?;
    super::say(
        g,
        format!(
            "{} {name} in {env} ({}, {} bytes)",
            if exists { "updated" } else { "created" },
            repo.rel(path).display(),
            value.len()
        ),
    );
    Ok(0)
}

fn read_value(name: &str, args: &SetArgs) -> Result<Plaintext> {
    if args.generate {
        return value::generate(args.length, args.charset);
    }
    let too_big = || {
        Error::new(format!(
            "the value for {name:?} is larger than {MAX_VALUE_LEN} bytes, Docker's limit for a secret"
        ))
        .hint("store a smaller value")
    };
    if let Some(file) = &args.file {
        let f = std::fs::File::open(file)
            .map_err(|e| Error::io("read", file, e).hint("check the path given to --file"))?;
        return crypto::read_limited(BufReader::new(f), MAX_VALUE_LEN)
            .map_err(|e| Error::io("read", file, e))?
            .ok_or_else(too_big);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = Zeroizing::new(
            rpassword::prompt_password(format!("Value for {name} (input hidden): "))
                .map_err(|e| Error::new(format!("cannot read the value from the terminal: {e}")))?,
        );
        let again = Zeroizing::new(
            rpassword::prompt_password("Repeat the value: ")
                .map_err(|e| Error::new(format!("cannot read the value from the terminal: {e}")))?,
        );
        if *first != *again {
            return Err(Error::new("the two values differ; nothing was stored")
                .hint("run the command again"));
        }
        let mut out = Zeroizing::new(Vec::with_capacity(first.len()));
        out.extend_from_slice(first.as_bytes());
        return Ok(out);
    }
    crypto::read_limited(stdin.lock(), MAX_VALUE_LEN)
        .map_err(|e| Error::new(format!("cannot read the value from standard input: {e}")))?
        .ok_or_else(too_big)
}
