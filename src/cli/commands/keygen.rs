//! `swarmseal keygen`: a new age identity.

use crate::cli::args::KeygenArgs;
use crate::cli::context::write_identity;
use crate::cli::context::Context;
use crate::crypto;
use crate::error::Result;

pub fn run(cx: &Context, args: KeygenArgs) -> Result<i32> {
    match args.output {
        Some(path) => {
            let public = write_identity(&path)?;
            cx.say(format!("Public key: {public}"));
        }
        None => {
            let (text, public) = crypto::generate_identity();
            crate::cli::output::write_secret_stdout(text.as_bytes())?;
            cx.say(format!("Public key: {public}"));
        }
    }
    Ok(0)
}
