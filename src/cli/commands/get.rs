//! `swarmseal get`: a decrypted value on standard output, byte-exact.

use crate::cli::args::NameArg;
use crate::cli::context::Context;
use crate::error::Result;
use crate::repo::secrets;

pub fn run(cx: &Context, args: NameArg) -> Result<i32> {
    let repo = cx.repo()?;
    let env = cx.env()?;
    let file = secrets::find_secret(repo, &env, &args.name)?;
    let ids = cx.require_identities(&format!("decrypt {}", file.rel.display()))?;
    let value = repo.decrypt_secret(&env, &file.path, ids)?;
    crate::cli::output::write_secret_stdout(&value)?;
    Ok(0)
}
