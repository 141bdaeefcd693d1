//! `swarmseal rm`: remove a secret from the repository.

use crate::cli::{Global, NameArg};
use crate::error::Result;
use crate::index::Index;

pub fn run(g: &Global, args: NameArg) -> Result<i32> {
    let repo = super::open_repo(g)?;
    let env = super::select_env(g, &repo)?;
    let file = super::find_secret(&repo, &env, &args.name)?;
    let mut index = Index::load(&repo.index_path())?;
    repo.remove(&env, &file.path)?;
    if index.env_mut(&env).secrets.remove(&file.name).is_some() {
        super::save_index(&repo, &index)?;
    }
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
