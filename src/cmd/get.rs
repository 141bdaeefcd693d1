//! `swarmseal get`: a decrypted value on standard output, byte-exact.

use std::io::Write;

use crate::cli::{Global, NameArg};
use crate::error::{Error, Result};

pub fn run(g: &Global, args: NameArg) -> Result<i32> {
    let repo = super::open_repo(g)?;
    let env = super::select_env(g, &repo)?;
    let file = super::find_secret(&repo, &env, &args.name)?;
    let ids = super::require_identities(g, &format!("decrypt {}", file.rel.display()))?;
    let value = super::decrypt_file(&repo, &file.path, &ids)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&value)
        .and_then(|_| out.flush())
        .map_err(|e| Error::new(format!("cannot write to standard output: {e}")))?;
    Ok(0)
}
