//! `swarmseal exec -- CMD ARGS...`: runs CMD with `SWARMSEAL_<NAME>` set to each
//! secret's current Swarm name (never a value), for compose files deployed with
//! `docker stack deploy`: `name: ${SWARMSEAL_DB_PASSWORD}`.

use std::process::Command;

use crate::cli::{ExecArgs, Global};
use crate::desired::{self, Decrypt};
use crate::error::{Error, Result};
use crate::plan;

use super::remote::Remote;

/// `db_password` → `SWARMSEAL_DB_PASSWORD`, `tls.api.crt` → `SWARMSEAL_TLS_API_CRT`.
pub fn variable(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("SWARMSEAL_{upper}")
}

pub fn run(g: &Global, args: ExecArgs) -> Result<i32> {
    let repo = super::open_repo(g)?;
    let env = super::select_env(g, &repo)?;
    let ids = super::identities(g)?;
    let state = desired::read(&repo, &env, ids.as_ref(), Decrypt::IfPossible)?;
    drop(ids);
    // db-password and db_password would both be SWARMSEAL_DB_PASSWORD: refuse to guess.
    let mut seen: std::collections::BTreeMap<String, &str> = std::collections::BTreeMap::new();
    for name in state.desired.secrets.keys() {
        if let Some(other) = seen.insert(variable(name), name) {
            return Err(Error::new(format!(
                "secrets {other} and {name} would both be passed as {}",
                variable(name)
            ))
            .hint("rename one of them (swarmseal rm, then set under the new name)"));
        }
    }
    let remote = Remote::connect(g, &repo, &env)?;
    let names = state.desired.secrets.keys().cloned().collect();
    let observed = remote.observe(&repo, &env, &names)?;
    let mut vars = Vec::new();
    let mut pending = Vec::new();
    for (secret, current) in plan::current_names(&state.desired, &observed) {
        match current {
            Some(name) => vars.push((variable(&secret), name)),
            None => pending.push(secret),
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
            crate::errln!("{k}={v}");
        }
    }
    let status = child.status().map_err(|e| {
        Error::new(format!("cannot run {}: {e}", program.to_string_lossy()))
            .hint("check that the command is installed and on PATH")
    })?;
    Ok(status.code().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    #[test]
    fn variable_names() {
        assert_eq!(super::variable("db_password"), "SWARMSEAL_DB_PASSWORD");
        assert_eq!(super::variable("tls.api-crt"), "SWARMSEAL_TLS_API_CRT");
    }
}
