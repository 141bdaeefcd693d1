//! `swarmseal rm NAME...`: remove secrets from the repository, all or none.
//!
//! Every name is looked up before anything is removed: one unknown name refuses the whole
//! command, naming it. `rm` does not contact the Swarm, and nothing in the repository says
//! whether a secret was ever applied (an apply may run from any checkout), so what it says
//! about the Swarm is conditional; `swarmseal plan` shows the removals for sure.

use std::collections::BTreeSet;

use crate::cli::args::RmArgs;
use crate::cli::context::Context;
use crate::error::Result;
use crate::repo::index;
use crate::repo::secrets;
use crate::repo::{LockMode, Repo, SecretFile};

pub fn run(cx: &Context, args: RmArgs) -> Result<i32> {
    let repo = cx.repo()?;
    let env = cx.env()?;
    let _lock = repo.lock(LockMode::Exclusive)?;
    let files = find_all(repo, &env, &args.names)?;
    let mut index = repo.load_index()?;
    // Before the files go: the walk must still see them.
    let pruned = index::prune(repo, &mut index, &[&env])?;
    let mut tx = repo.transaction();
    let mut recorded = false;
    for file in &files {
        tx.remove_secret(&env, &file.path)?;
        if let Some(records) = index.environments.get_mut(&env) {
            recorded |= records.secrets.remove(&file.name).is_some();
        }
    }
    if recorded || !pruned.is_empty() {
        secrets::stage_index(repo, &mut tx, &index)?;
    }
    tx.commit()?;
    for file in &files {
        cx.say(format!(
            "removed {} from {env} ({})",
            file.name,
            file.rel.display()
        ));
    }
    let (it, was) = if files.len() == 1 {
        ("it", "it was")
    } else {
        ("them", "they were")
    };
    cx.say(format!(
        "if {was} applied, the next `swarmseal -e {env} apply` removes {it} from the Swarm (`swarmseal -e {env} plan` shows it)"
    ));
    Ok(0)
}

/// The files of every name, each once; the first unknown name fails the command before
/// anything is removed.
fn find_all(repo: &Repo, env: &str, names: &[String]) -> Result<Vec<SecretFile>> {
    let mut seen = BTreeSet::new();
    let mut files = Vec::new();
    for name in names {
        let file = secrets::find_secret(repo, env, name).map_err(|e| {
            if names.len() == 1 {
                return e;
            }
            let hint = e.hint_text().unwrap_or_default().to_string();
            e.hint(format!("nothing was removed; {hint}"))
        })?;
        if seen.insert(file.path.clone()) {
            files.push(file);
        }
    }
    Ok(files)
}
