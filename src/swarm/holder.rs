//! Who takes the apply lock, and whether that process still runs.
//!
//! The lock's marker secret carries `user@host pid N` for people, and a process token
//! `<boot id>/<pid namespace>/<pid>/<start time>` for swarmseal: on the same kernel (same
//! boot id) and in the same pid namespace, the holder is alive exactly when a process with
//! that pid and that start time exists. Elsewhere (another host, another container) it
//! cannot be told, and nothing is claimed.

use std::fs;

/// This process, as a lock holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// `user@host pid N`.
    pub label: String,
    /// The process token, when `/proc` tells it.
    pub process: Option<String>,
}

/// Whether a lock holder still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Dead,
    /// Another host or pid namespace, or a holder without a token.
    Unknown,
}

impl Holder {
    /// A holder known by its label only (its liveness cannot be told).
    pub fn named(label: &str) -> Holder {
        Holder {
            label: label.to_string(),
            process: None,
        }
    }
}

/// This process.
pub fn this_process() -> Holder {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    let pid = std::process::id();
    let process = (|| {
        Some(format!(
            "{}/{}/{pid}/{}",
            boot_id()?,
            pid_namespace()?,
            start_time(pid)?
        ))
    })();
    Holder {
        label: format!("{user}@{host} pid {pid}"),
        process,
    }
}

/// Whether the process a token names still runs (see the module).
pub fn liveness(token: Option<&str>) -> Liveness {
    let Some(token) = token else {
        return Liveness::Unknown;
    };
    let parts: Vec<&str> = token.split('/').collect();
    let [boot, ns, pid, start] = parts.as_slice() else {
        return Liveness::Unknown;
    };
    if boot_id().as_deref() != Some(*boot) || pid_namespace().as_deref() != Some(*ns) {
        return Liveness::Unknown;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return Liveness::Unknown;
    };
    match start_time(pid) {
        Some(t) if t == *start => Liveness::Alive,
        _ => Liveness::Dead,
    }
}

fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && !s.contains('/'))
}

fn pid_namespace() -> Option<String> {
    let link = fs::read_link("/proc/self/ns/pid").ok()?;
    let text = link.to_string_lossy();
    let inode = text.strip_prefix("pid:[")?.strip_suffix(']')?;
    Some(inode.to_string())
}

/// Field 22 of `/proc/PID/stat`: when the process started, in clock ticks after boot.
fn start_time(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_pid_is_dead() {
        let me = this_process();
        assert!(me.label.contains(&format!("pid {}", std::process::id())));
        let token = me.process.expect("Linux /proc gives a token");
        assert_eq!(liveness(Some(&token)), Liveness::Alive);
        // Same process id, another start time: the process that held it is gone.
        let parts: Vec<&str> = token.split('/').collect();
        let other = format!("{}/{}/{}/1", parts[0], parts[1], parts[2]);
        assert_eq!(liveness(Some(&other)), Liveness::Dead);
        let other_host = format!("not-this-boot/{}/{}/{}", parts[1], parts[2], parts[3]);
        assert_eq!(liveness(Some(&other_host)), Liveness::Unknown);
        assert_eq!(liveness(None), Liveness::Unknown);
        assert_eq!(liveness(Some("garbage")), Liveness::Unknown);
    }
}
