//! `swarmseal set`: encrypt a value into the repository. Never takes a value in argv.
//!
//! A value piped in (`echo hunter2 | swarmseal set db_password`) usually ends with the
//! newline `echo` added, and that newline is part of the stored value, byte for byte. `set`
//! warns about it; `--trim` drops one trailing line ending ("\n" or "\r\n"), from standard
//! input or `--file` alike. A file given with `--file` is taken as it is, without a warning.

use std::io::{BufReader, IsTerminal};

use zeroize::Zeroizing;

use crate::cli::args::SetArgs;
use crate::cli::context::Context;
use crate::cli::output;
use crate::crypto::value;
use crate::crypto::{self, Plaintext, MAX_VALUE_LEN};
use crate::error::{Error, Result};
use crate::repo::manifest::Generate;
use crate::repo::secrets;
use crate::repo::Repo;

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Generated,
    File,
    /// Typed at the hidden prompt.
    Terminal,
    /// Standard input that is not a terminal: a pipe or a redirected file.
    Piped,
}

pub fn run(cx: &Context, args: SetArgs) -> Result<i32> {
    let repo = cx.repo()?;
    let env = cx.env()?;
    // Refuse a bad name or a clash before asking for the value.
    let (name, _, _) = secrets::secret_target(repo, &env, &args.name)?;
    let generate = generator(repo, &name, &args);
    let (mut value, source) = read_value(&name, &args, generate)?;
    if args.trim {
        trim_line_ending(&mut value);
    } else if source == Source::Piped && !cx.global.quiet {
        if let Some(ending) = line_ending(&value) {
            output::warn(&format!(
                "the value for {name} from standard input ends with a line ending ({ending}), which is stored as part of the value\n  hint: \
                 pass --trim to drop it, or write the value without one (`printf '%s' \"$VALUE\" | swarmseal set {name}` instead of `echo`)"
            ));
        }
    }
    value::check_size(&name, &value)?;
    let stored = secrets::store_value(repo, cx.identities()?, &env, &args.name, &value)?;
    cx.say(stored.describe(repo, &env));
    Ok(0)
}

/// The line ending a value ends with, as it would be written in a shell: `\r\n` or `\n`.
fn line_ending(value: &[u8]) -> Option<&'static str> {
    if value.ends_with(b"\r\n") {
        Some("\\r\\n")
    } else if value.ends_with(b"\n") {
        Some("\\n")
    } else {
        None
    }
}

/// Drops one trailing "\n" or "\r\n" (`--trim`). The bytes cut off stay in the buffer's
/// capacity, which is wiped with it.
fn trim_line_ending(value: &mut Plaintext) {
    let cut = match line_ending(value) {
        Some("\\r\\n") => 2,
        Some(_) => 1,
        None => 0,
    };
    let len = value.len() - cut;
    value.truncate(len);
}

/// What `--generate` draws: `--length` and `--charset`, else the secret's `generate:` in
/// the manifest (what `rotate` draws), else 32 alnum characters.
fn generator(repo: &Repo, name: &str, args: &SetArgs) -> Generate {
    let manifest = repo
        .manifest
        .settings(name)
        .and_then(|s| s.generate)
        .unwrap_or_default();
    Generate {
        length: args.length.unwrap_or(manifest.length),
        charset: args.charset.unwrap_or(manifest.charset),
    }
}

fn read_value(name: &str, args: &SetArgs, generate: Generate) -> Result<(Plaintext, Source)> {
    if args.generate {
        return Ok((
            value::generate(generate.length, generate.charset)?,
            Source::Generated,
        ));
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
        let value = crypto::read_limited(BufReader::new(f), MAX_VALUE_LEN)
            .map_err(|e| Error::io("read", file, e))?
            .ok_or_else(too_big)?;
        return Ok((value, Source::File));
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok((prompt_twice(name)?, Source::Terminal));
    }
    let value = crypto::read_limited(stdin.lock(), MAX_VALUE_LEN)
        .map_err(|e| Error::new(format!("cannot read the value from standard input: {e}")))?
        .ok_or_else(too_big)?;
    Ok((value, Source::Piped))
}

/// The value typed twice at a hidden prompt.
fn prompt_twice(name: &str) -> Result<Plaintext> {
    let first = Zeroizing::new(
        rpassword::prompt_password(format!("Value for {name} (input hidden): "))
            .map_err(|e| Error::new(format!("cannot read the value from the terminal: {e}")))?,
    );
    let again = Zeroizing::new(
        rpassword::prompt_password("Repeat the value: ")
            .map_err(|e| Error::new(format!("cannot read the value from the terminal: {e}")))?,
    );
    if *first != *again {
        return Err(
            Error::new("the two values differ; nothing was stored").hint("run the command again")
        );
    }
    let mut out = Zeroizing::new(Vec::with_capacity(first.len()));
    out.extend_from_slice(first.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_drops_one_line_ending() {
        for (input, want) in [
            (&b"pw\n"[..], &b"pw"[..]),
            (b"pw\r\n", b"pw"),
            (b"pw\n\n", b"pw\n"),
            (b"pw", b"pw"),
            (b"p\nw", b"p\nw"),
        ] {
            let mut v = Zeroizing::new(input.to_vec());
            trim_line_ending(&mut v);
            assert_eq!(v.as_slice(), want, "{input:?}");
        }
        assert_eq!(line_ending(b"x\r\n"), Some("\\r\\n"));
        assert_eq!(line_ending(b"x\n"), Some("\\n"));
        assert_eq!(line_ending(b"x"), None);
    }
}
