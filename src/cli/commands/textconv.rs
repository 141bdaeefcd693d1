//! `swarmseal textconv FILE`: the decrypted content for `git diff`.
//!
//! git runs this on temporary copies of `.age` files. A file that cannot be decrypted
//! is shown as a one-line placeholder (exit 0), so that `git diff` keeps working for
//! people who cannot read every environment. A binary value (see
//! [`crate::crypto::value::is_binary`]) is shown as `(binary, N bytes)`.

use crate::cli::args::TextconvArgs;
use crate::cli::context::Context;
use crate::crypto::{self, value, DecryptFailure};
use crate::error::{Error, Result};

pub fn run(cx: &Context, args: TextconvArgs) -> Result<i32> {
    let g = &cx.global;
    // git passes a temporary copy; read it bounded (a FIFO or /dev/zero must not hang or
    // exhaust the command).
    let file = std::fs::File::open(&args.file).map_err(|e| Error::io("read", &args.file, e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io("read", &args.file, e))?;
    if !meta.is_file() {
        return Err(Error::new(format!("{} is not a regular file", args.file.display()))
            .hint("textconv is run by git on a file (git config diff.swarmseal.textconv \"swarmseal textconv\")"));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, crate::repo::confined::MAX_AGE_FILE + 1),
        &mut bytes,
    )
    .map_err(|e| Error::io("read", &args.file, e))?;
    if bytes.len() as u64 > crate::repo::confined::MAX_AGE_FILE {
        return emit(b"[swarmseal: file too large to be a secret, not shown]\n");
    }
    let digest = &crypto::file_digest(&bytes)[..12];
    let placeholder =
        |why: &str| format!("[swarmseal: encrypted file {digest}..., not shown: {why}]\n");
    let why = match crypto::Identities::load(&g.identity)? {
        None => "no identity".to_string(),
        Some(ids) => match crypto::decrypt(&bytes, &ids) {
            // A fingerprint key is never shown: it would make every value's fingerprint
            // an unkeyed hash for whoever reads the diff.
            Ok(d)
                if d.scope.as_ref().map(|s| s.kind) == Some(crypto::ScopeKind::FingerprintKey) =>
            {
                "it is a fingerprint key, which is never shown".into()
            }
            // A binary value would be noise in a diff (and escape sequences on a terminal):
            // its size only, never a digest of it.
            Ok(d) if value::is_binary(&d.value) => {
                return emit(format!("(binary, {} bytes)\n", d.value.len()).as_bytes())
            }
            Ok(d) => return emit(&d.value),
            Err(DecryptFailure::NotAge) => return emit(&bytes),
            Err(DecryptFailure::NoMatchingIdentity) => {
                "none of your identities can decrypt it".into()
            }
            Err(DecryptFailure::Corrupt(why)) => format!("damaged ({why})"),
            Err(DecryptFailure::TooLarge) => "larger than Docker's limit".into(),
            Err(DecryptFailure::BadScope) => "its swarmseal-scope stanza is malformed".into(),
        },
    };
    emit(placeholder(&why).as_bytes())
}

fn emit(bytes: &[u8]) -> Result<i32> {
    crate::cli::output::write_secret_stdout(bytes)?;
    Ok(0)
}
