//! `swarmseal completions SHELL` and `swarmseal man`.

use clap::CommandFactory;

use crate::cli::args::{Cli, CompletionsArgs};
use crate::error::{Error, Result};

pub fn run(args: CompletionsArgs) -> Result<i32> {
    let mut cmd = Cli::command();
    // Into memory first: clap_complete panics on a failed write.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "swarmseal", &mut script);
    crate::cli::output::write_stdout(&script)?;
    Ok(0)
}

pub fn man() -> Result<i32> {
    let cmd = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut page)
        .map_err(|e| Error::new(format!("cannot render the man page: {e}")))?;
    crate::cli::output::write_stdout(&page)?;
    Ok(0)
}
