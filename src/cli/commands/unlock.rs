//! `swarmseal unlock`: break a stale apply lock.

use crate::cli::args::UnlockArgs;
use crate::cli::context::Context;
use crate::error::Result;

use crate::cli::remote::Remote;

pub fn run(cx: &Context, args: UnlockArgs) -> Result<i32> {
    let g = &cx.global;
    let repo = cx.repo()?;
    let env = cx.env()?;
    let remote = Remote::connect(g, repo, &env)?;
    match remote.rt.block_on(
        remote
            .swarm
            .unlock(&repo.manifest.project, &env, args.force),
    )? {
        Some(info) => cx.say(format!(
            "released the apply lock of {}/{env}, held by {}",
            repo.manifest.project,
            info.describe()
        )),
        None => cx.say(format!("{}/{env} was not locked", repo.manifest.project)),
    }
    Ok(0)
}
