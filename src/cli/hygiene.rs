//! Process hygiene while plaintext is held: no core dumps.

/// Turns core dumps off for this process (RLIMIT_CORE = 0, and not dumpable, which also
/// keeps other unprivileged processes from attaching). Failures are ignored: this is
/// defence in depth, not a precondition.
pub fn disable_core_dumps() {
    use rustix::process::{setrlimit, Resource, Rlimit};
    let _ = setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    #[cfg(target_os = "linux")]
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
}
