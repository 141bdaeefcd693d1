//! `swarmseal get`: a decrypted value on standard output, byte-exact.
//!
//! A binary value ([`value::is_binary`]: not UTF-8, or holding control characters other
//! than tab, CR and LF) is not printed on a terminal, where it would garble the screen or
//! drive it with escape sequences, unless `--force`. Redirected, it is written as it is.

use std::io::IsTerminal;

use crate::cli::args::GetArgs;
use crate::cli::context::Context;
use crate::crypto::value;
use crate::error::{Error, ErrorKind, Result};
use crate::repo::secrets;

pub fn run(cx: &Context, args: GetArgs) -> Result<i32> {
    let repo = cx.repo()?;
    let env = cx.env()?;
    let file = secrets::find_secret(repo, &env, &args.name)?;
    let ids = cx.require_identities(&format!("decrypt {}", file.rel.display()))?;
    let value = repo.decrypt_secret(&env, &file.path, ids)?;
    if !args.force && std::io::stdout().is_terminal() && value::is_binary(&value) {
        return Err(Error::new(format!(
            "{} in {env} is a binary value ({} bytes, not plain text), which is not printed on a terminal",
            file.name,
            value.len()
        ))
        .with_kind(ErrorKind::Usage)
        .hint(format!(
            "redirect it to a file (`swarmseal -e {env} get {} > FILE`), or pass --force to print it anyway",
            file.name
        )));
    }
    crate::cli::output::write_secret_stdout(&value)?;
    Ok(0)
}
