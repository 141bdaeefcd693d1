//! `swarmseal set`: encrypt a value into the repository. Never takes a value in argv.

use std::io::{BufReader, IsTerminal};

use zeroize::Zeroizing;

use crate::cli::args::SetArgs;
use crate::cli::context::Context;
use crate::crypto::value;
use crate::crypto::{self, Plaintext, MAX_VALUE_LEN};
use crate::error::{Error, Result};
use crate::repo::secrets;

pub fn run(cx: &Context, args: SetArgs) -> Result<i32> {
    let repo = cx.repo()?;
    let env = cx.env()?;
    // Refuse a bad name or a clash before asking for the value.
    let (name, _, _) = secrets::secret_target(repo, &env, &args.name)?;
    let value = read_value(&name, &args)?;
    value::check_size(&name, &value)?;
    let stored = secrets::store_value(repo, cx.identities()?, &env, &args.name, &value)?;
    cx.say(stored.describe(repo, &env));
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
