//! `swarmseal get`: a decrypted value on standard output, byte-exact.

use crate::cli::{Global, NameArg};
use crate::error::Result;

pub fn run(g: &Global, args: NameArg) -> Result<i32> {
    let repo = super::open_repo(g)?;
    let env = super::select_env(g, &repo)?;
    let file = super::find_secret(&repo, &env, &args.name)?;
    let ids = super::require_identities(g, &format!("decrypt {}", file.rel.display()))?;
    let value = repo.decrypt_secret(&env, &file.path, &ids)?;
    crate::output::write_stdout(&value)?;
    Ok(0)
}
