//! `swarmseal textconv FILE`: the decrypted content for `git diff`.
//!
//! git runs this on temporary copies of `.age` files. A file that cannot be decrypted
//! is shown as a one-line placeholder (exit 0), so that `git diff` keeps working for
//! people who cannot read every environment.

use std::io::Write;

use crate::cli::{Global, TextconvArgs};
use crate::crypto::{self, DecryptFailure};
use crate::error::{Error, Result};

pub fn run(g: &Global, args: TextconvArgs) -> Result<i32> {
    let bytes = std::fs::read(&args.file).map_err(|e| Error::io("read", &args.file, e))?;
    let digest = &crypto::file_digest(&bytes)[..12];
    let placeholder =
        |why: &str| format!("[swarmseal: encrypted file {digest}..., not shown: {why}]\n");
    let why = match crypto::Identities::load(&g.identity)? {
        None => "no identity".to_string(),
        Some(ids) => match crypto::decrypt(&bytes, &ids) {
            Ok(value) => return emit(&value),
            Err(DecryptFailure::NotAge) => return emit(&bytes),
            Err(DecryptFailure::NoMatchingIdentity) => {
                "none of your identities can decrypt it".into()
            }
            Err(DecryptFailure::Corrupt(why)) => format!("damaged ({why})"),
            Err(DecryptFailure::TooLarge) => "larger than Docker's limit".into(),
        },
    };
    emit(placeholder(&why).as_bytes())
}

fn emit(bytes: &[u8]) -> Result<i32> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|_| stdout.flush())
        .map_err(|e| Error::new(format!("cannot write to standard output: {e}")))?;
    Ok(0)
}
