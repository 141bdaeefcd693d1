//! `swarmseal completions SHELL` and `swarmseal man`.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::{Error, Result};

pub fn run(args: CompletionsArgs) -> Result<i32> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "swarmseal", &mut std::io::stdout());
    Ok(0)
}

pub fn man() -> Result<i32> {
    let cmd = Cli::command();
    clap_mangen::Man::new(cmd)
        .render(&mut std::io::stdout())
        .map_err(|e| Error::new(format!("cannot write the man page: {e}")))?;
    Ok(0)
}
