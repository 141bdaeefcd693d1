//! `swarmseal exec -- CMD ARGS...`: runs CMD with `SWARMSEAL_<NAME>` set to each
//! secret's current Swarm name (never a value), and `SWARMSEAL_CONFIG_<NAME>` to each
//! config's, for compose files deployed with `docker stack deploy`:
//! `name: ${SWARMSEAL_DB_PASSWORD}`.

use std::process::Command;

use crate::cli::args::ExecArgs;
use crate::cli::context::Context;
use crate::domain::state::Kind;
use crate::error::{Error, Result};
use crate::plan;
use crate::repo::desired::{self, Decrypt};

use crate::cli::remote::Remote;

pub fn run(cx: &Context, args: ExecArgs) -> Result<i32> {
    let g = &cx.global;
    let repo = cx.repo()?;
    let env = cx.env()?;
    let ids = cx.identities()?;
    let state = desired::read(repo, &env, ids, Decrypt::IfPossible)?;
    cx.warn_all(&state.warnings);

    // db-password and db_password would both be SWARMSEAL_DB_PASSWORD: refuse to guess.
    let mut seen: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for kind in Kind::ALL {
        for name in state.desired.items(kind).keys() {
            let what = format!("{kind} {name}");
            if let Some(other) = seen.insert(variable(kind, name), what.clone()) {
                return Err(Error::new(format!(
                    "{other} and {what} would both be passed as {}",
                    variable(kind, name)
                ))
                .hint("rename one of them (swarmseal rm, then set under the new name)"));
            }
        }
    }
    let remote = Remote::connect(g, repo, &env)?;
    let names = Kind::ALL
        .into_iter()
        .flat_map(|kind| state.desired.items(kind).keys().cloned())
        .collect();
    let observed = remote.observe(repo, &env, &names)?;
    let mut vars = Vec::new();
    let mut pending = Vec::new();
    for kind in Kind::ALL {
        for (item, current) in plan::current_names(kind, &state.desired, &observed) {
            match current {
                Some(name) => vars.push((variable(kind, &item), name)),
                None => pending.push(item),
            }
        }
    }
    pending.sort();
    pending.dedup();
    if !pending.is_empty() {
        return Err(Error::new(format!(
            "not applied to the Swarm yet: {} (so there is no current Swarm name to give the command)",
            pending.join(", ")
        ))
        .hint(format!("run `swarmseal -e {env} apply` first")));
    }
    let program = &args.command[0];
    let mut child = Command::new(program);
    child
        .args(&args.command[1..])
        .envs(vars.iter().map(|(k, v)| (k, v)));
    if g.verbose {
        for (k, v) in &vars {
            crate::cli::output::errln!("{k}={v}");
        }
    }
    let status = child.status().map_err(|e| {
        Error::new(format!("cannot run {}: {e}", program.to_string_lossy()))
            .hint("check that the command is installed and on PATH")
    })?;
    Ok(status.code().unwrap_or(1))
}

/// `SWARMSEAL_<NAME>` for a secret, `SWARMSEAL_CONFIG_<NAME>` for a config.
fn variable(kind: Kind, name: &str) -> String {
    kind.exec_variable(name)
}
