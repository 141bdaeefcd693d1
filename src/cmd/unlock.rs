//! `swarmseal unlock`: break a stale apply lock.

use crate::cli::{Global, UnlockArgs};
use crate::error::Result;

use super::remote::Remote;

pub fn run(g: &Global, args: UnlockArgs) -> Result<i32> {
    let repo = super::open_repo(g)?;
    let env = super::select_env(g, &repo)?;
    let remote = Remote::connect(g, &repo, &env)?;
    match remote.rt.block_on(
        remote
            .swarm
            .unlock(&repo.manifest.project, &env, args.force),
    )? {
        Some(info) => super::say(
            g,
            format!(
                "released the apply lock of {}/{env}, held by {}",
                repo.manifest.project,
                info.describe()
            ),
        ),
        None => super::say(g, format!("{}/{env} was not locked", repo.manifest.project)),
    }
    Ok(0)
}
