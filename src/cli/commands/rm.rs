//! `swarmseal rm`: remove a secret from the repository.

use crate::cli::args::NameArg;
use crate::cli::context::Context;
use crate::error::Result;
use crate::repo::secrets;
use crate::repo::LockMode;

pub fn run(cx: &Context, args: NameArg) -> Result<i32> {
    let repo = cx.repo()?;
    let env = cx.env()?;
    let _lock = repo.lock(LockMode::Exclusive)?;
    let file = secrets::find_secret(repo, &env, &args.name)?;
    let mut index = repo.load_index()?;
    let mut tx = repo.transaction();
    tx.remove_secret(&env, &file.path)?;
    if index.env_mut(&env).secrets.remove(&file.name).is_some() {
        secrets::stage_index(repo, &mut tx, &index)?;
    }
    tx.commit()?;
    cx.say(format!(
        "removed {} from {env} ({}); the next apply removes it from the Swarm",
        file.name,
        file.rel.display()
    ));
    Ok(0)
}
