//! `swarmseal rm`: remove a secret from the repository.

use crate::cli::{Global, NameArg};
use crate::error::Result;
use crate::store::LockMode;

pub fn run(g: &Global, args: NameArg) -> Result<i32> {
    let repo = super::open_repo(g)?;
    let env = super::select_env(g, &repo)?;
    let _lock = repo.lock(LockMode::Exclusive)?;
    let file = super::find_secret(&repo, &env, &args.name)?;
    let mut index = repo.load_index()?;
    let mut tx = repo.transaction();
    tx.remove_secret(&env, &file.path)?;
    if index.env_mut(&env).secrets.remove(&file.name).is_some() {
        super::stage_index(&repo, &mut tx, &index)?;
    }
    tx.commit()?;
    super::say(
        g,
        format!(
            "removed {} from {env} ({}); the next apply removes it from the Swarm",
            file.name,
            file.rel.display()
        ),
    );
    Ok(0)
}
