//! `swarmseal rekey`: re-encrypt secrets to the manifest's current recipients (see
//! [`crate::repo::rekey`]).

use crate::cli::args::RekeyArgs;
use crate::cli::context::Context;
use crate::error::Result;
use crate::repo::rekey::{self, Options};

pub fn run(cx: &Context, args: RekeyArgs) -> Result<i32> {
    let repo = cx.repo()?;
    let envs = cx.envs()?;
    let ids = cx.require_identities("re-encrypt the secrets")?;
    let opts = Options {
        force: args.force,
        moved_from: args.moved_from.as_deref(),
    };
    let done = rekey::rekey(repo, &envs, ids, &opts)?;
    if cx.global.verbose {
        for path in &done.files {
            cx.say(format!("re-encrypted {}", repo.rel(path).display()));
        }
    }
    if done.pruned > 0 {
        cx.say(format!(
            "dropped {} of deleted files from .swarmseal/index.yaml",
            crate::domain::text::plural(done.pruned, "record")
        ));
    }
    for env in &done.created_keys {
        cx.say(format!("created the missing fingerprint key of {env}"));
    }
    cx.say(format!(
        "re-encrypted {} in {}; {} already encrypted to the current recipients",
        crate::domain::text::plural(done.files.len(), "file"),
        envs.join(", "),
        done.current
    ));
    Ok(0)
}
