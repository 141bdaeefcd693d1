//! `swarmseal apply`: make the Swarm match the repository.
//!
//! Takes the environment's lock on the Swarm, observes, plans (or checks that a saved
//! plan is still fresh), asks for confirmation on a terminal, executes, and releases the
//! lock on every path.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};

use serde_json::json;

use std::sync::Mutex;

use crate::apply::{self, Event, Options, Outcome};
use crate::cli::args::{ApplyArgs, Global};
use crate::cli::context::Context;
use crate::cli::output::{self, Format};
use crate::cli::progress::{self, ApplyProgress};
use crate::crypto::Identities;
use crate::domain::state::{Kind, Observed};
use crate::domain::text::clean;
use crate::error::{Error, ErrorKind, Result};
use crate::plan::planfile::{self, PlanFile};
use crate::plan::render;
use crate::plan::{self, Plan};
use crate::repo::desired::{self, Decrypt, Known, Prepared, RepoState};
use crate::repo::Repo;

use crate::cli::remote::Remote;
use crate::swarm::{holder, Listing, Lock};

pub fn run(cx: &Context, args: ApplyArgs) -> Result<i32> {
    let g = &cx.global;
    let repo = cx.repo()?;
    let (saved, env) = saved_and_env(cx, &args, repo)?;
    let ids = cx.require_identities(&format!("decrypt the secrets of {env}"))?;
    let read = || desired::prepare(repo, &env);
    // A person reviews the plan before the lock is taken, so that a prompt left open never
    // holds the lock. When nobody does (`--yes`, a saved plan), the lock is taken and the
    // Swarm listed while the files are read.
    let reviewing = saved.is_none() && !args.yes;
    let project = repo.manifest.project.as_str();
    let (prepared, remote, held) = if reviewing {
        let (prepared, remote) = Remote::connect_while(g, repo, &env, read)?;
        (prepared, remote, None)
    } else {
        let (read, connected) = Remote::connect_beside(g, repo, &env, read, |remote| {
            lock_and_list(&args, project, &env, remote)
        });
        match (read, connected) {
            (Ok(prepared), Ok((remote, held))) => (prepared, remote, Some(held)),
            // The repository's errors first, as if it had been read before connecting.
            (Err(e), Ok((remote, (_, lock, _)))) => {
                let _ = remote.rt.block_on(remote.swarm.release(lock));
                return Err(e);
            }
            (Err(e), Err(_)) | (Ok(_), Err(e)) => return Err(e),
        }
    };
    let source = Source {
        cx,
        repo,
        env: &env,
        prepared,
        ids,
    };
    if repo.manifest.environment(&env)?.swarm_id.is_none() && !g.quiet {
        output::warn(&format!(
            "environment {env} is not pinned to a Swarm; to make sure it is only ever applied to this one, add `swarm_id: {}` under environments.{env} in swarmseal.yaml",
            remote.swarm.cluster_id
        ));
    }
    let (mut signals, lock, first) = match held {
        Some((signals, lock, listing)) => (signals, lock, First::Listed(listing)),
        None => {
            // Under the lock the Swarm is observed again, and the reviewed plan is carried
            // out only if it is still the plan (the files, read and decrypted once, are not
            // decrypted again).
            let reviewed = match review(g, &source, &remote)? {
                Review::Confirmed(reviewed) => reviewed,
                Review::NothingToDo(code) => return Ok(code),
            };
            let mut signals = interrupts(&remote);
            let lock = take_lock(&args, project, &env, &remote, &mut signals)?;
            (signals, lock, First::Reviewed(reviewed))
        }
    };
    let result = locked(
        g,
        &args,
        &source,
        &remote,
        saved.as_ref(),
        first,
        &mut signals,
    );
    let released = remote.rt.block_on(remote.swarm.release(lock));
    let code = result?;
    released?;
    Ok(code)
}

/// What apply starts from under the lock.
enum First {
    /// The Swarm as listed just after the lock was taken.
    Listed(Listing),
    /// The plan a person confirmed, and the repository as read for it.
    Reviewed(Box<(Plan, RepoState)>),
}

/// From here on, the terminating signals (Ctrl-C, SIGTERM from a cancelled CI job, SIGHUP
/// from a closed terminal, Ctrl-\) no longer kill the process outright: they stop the
/// apply between API calls, and the lock is released on the way out.
fn interrupts(remote: &Remote) -> Interrupts {
    let _runtime = remote.rt.enter();
    Interrupts::new()
}

/// Takes the lock (see [`take_lock`]) and lists the Swarm under it; the lock is released
/// again if the list fails.
fn lock_and_list(
    args: &ApplyArgs,
    project: &str,
    env: &str,
    remote: &Remote,
) -> Result<(Interrupts, Lock, Listing)> {
    let mut signals = interrupts(remote);
    let lock = take_lock(args, project, env, remote, &mut signals)?;
    match remote.rt.block_on(remote.swarm.list()) {
        Ok(listing) => Ok((signals, lock, listing)),
        Err(e) => {
            let _ = remote.rt.block_on(remote.swarm.release(lock));
            Err(e)
        }
    }
}

/// The saved plan, if any (refusing one for another project or made without an
/// identity), and the environment to work on: a saved plan's own, which `-e` may name but
/// not contradict; else `-e` or the only one.
fn saved_and_env(
    cx: &Context,
    args: &ApplyArgs,
    repo: &Repo,
) -> Result<(Option<PlanFile>, String)> {
    let Some(path) = &args.planfile else {
        return Ok((None, cx.env()?));
    };
    let saved = PlanFile::load(path)?;
    let (project, env) = (&saved.plan.project, &saved.plan.environment);
    if *project != repo.manifest.project {
        return Err(Error::new(format!(
            "the plan {} is for project {project}, but {} is project {}",
            path.display(),
            repo.manifest_path().display(),
            repo.manifest.project
        ))
        .with_kind(ErrorKind::StalePlan)
        .hint("apply it in the repository it was made from (-C DIR), or make a new plan here with `swarmseal plan -e ENV --out FILE`"));
    }
    match cx.global.env.as_slice() {
        [given] if given != env => {
            return Err(Error::new(format!(
                "the plan {} is for environment {env}, but -e {given} was given",
                path.display()
            ))
            .with_kind(ErrorKind::Usage)
            .hint(format!(
                "drop -e (`swarmseal apply {}` applies the plan to {env}), or make a plan for {given}: `swarmseal plan -e {given} --out FILE`",
                path.display()
            )));
        }
        [] | [_] => {}
        _ => {
            cx.env()?;
        }
    }
    repo.manifest.environment(env).map_err(|e| {
        e.context(format!(
            "the plan {} is for environment {env}",
            path.display()
        ))
    })?;
    if saved.plan.is_unverified() {
        return Err(Error::new(format!(
            "the plan {} was made without an identity that can read {env}, so it cannot be applied",
            path.display()
        ))
        .hint(format!(
            "make the plan with an identity (-i FILE, SWARMSEAL_IDENTITY or SWARMSEAL_AGE_KEY): `swarmseal plan -e {env} --out {}`",
            path.display()
        )));
    }
    let env = env.clone();
    Ok((Some(saved), env))
}

/// What came of showing the plan to a person before the lock is taken.
enum Review {
    /// They confirmed this plan, made from this state of the repository.
    Confirmed(Box<(Plan, RepoState)>),
    /// There was nothing to do, and the (empty) report was made, with this exit code.
    NothingToDo(i32),
}

/// The repository as apply reads it: its files read and checked before the Swarm is
/// reached, then, once the Swarm is observed, decrypted on all cores, except the files its
/// labels vouch for (`desired::Known`).
struct Source<'a> {
    cx: &'a Context,
    repo: &'a Repo,
    env: &'a str,
    prepared: Prepared,
    ids: &'a Identities,
}

impl Source<'_> {
    /// Observes the Swarm, then reads the desired state against what it vouches for.
    fn observe(&self, remote: &Remote) -> Result<(Observed, RepoState)> {
        let observed = remote.observe(self.repo, self.env, &self.prepared.names())?;
        self.read(observed)
    }

    /// [`Source::observe`] from a listing of the Swarm.
    fn observe_listing(&self, remote: &Remote, listing: Listing) -> Result<(Observed, RepoState)> {
        let names = self.prepared.names();
        let observed = remote.observe_listing(listing, self.repo, self.env, &names)?;
        self.read(observed)
    }

    /// The desired state against what `observed` vouches for.
    fn read(&self, observed: Observed) -> Result<(Observed, RepoState)> {
        let known = Known::from_observed(&observed, &self.repo.manifest.project, self.env);
        let state = self.prepared.decrypt(
            self.repo,
            Some(self.ids),
            Decrypt::Required { keep_values: true },
            known,
        )?;
        self.cx.warn_all(&state.warnings);
        Ok((observed, state))
    }
}

/// Drops the values no step of `plan` creates (those decrypted for a new label only).
fn keep_needed_values(state: &mut RepoState, plan: &Plan) {
    let created: BTreeSet<(Kind, &str)> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            plan::Step::Create { secret, kind, .. } => Some((*kind, secret.as_str())),
            _ => None,
        })
        .collect();
    state
        .values
        .retain(|kind, name| created.contains(&(kind, name)));
}

/// Observes, plans, shows the plan and asks for confirmation, all without the lock.
fn review(g: &Global, source: &Source<'_>, remote: &Remote) -> Result<Review> {
    let env = source.env;
    let (observed, mut state) = source.observe(remote)?;
    let plan = plan::plan(&state.desired, &observed);
    keep_needed_values(&mut state, &plan);
    show(g, &plan, remote, &observed).map_err(|e| output_failed(e, false))?;
    plan.refuse_blocked(env)?;
    plan.refuse_conflicts()?;
    if plan.steps.is_empty() {
        return finish(g, &plan, &context(remote, &observed), &Outcome::default())
            .map_err(|e| output_failed(e, true))
            .map(Review::NothingToDo);
    }
    if g.format != Format::Human || g.quiet {
        // Nobody confirms a plan they have not seen.
        let endpoint = remote.describe();
        let ctx = render::Context {
            endpoint: &endpoint,
            cluster_id: &observed.cluster_id,
        };
        crate::cli::output::err!(
            "{}",
            render::human(&plan, &ctx, output::colour(false), g.verbose)
        );
    }
    confirm(env, &remote.describe())?;
    Ok(Review::Confirmed(Box::new((plan, state))))
}

/// Takes the apply lock, waiting up to `--lock-timeout` unless a signal comes first.
fn take_lock(
    args: &ApplyArgs,
    project: &str,
    env: &str,
    remote: &Remote,
    signals: &mut Interrupts,
) -> Result<Lock> {
    let holder = holder::this_process();
    remote.rt.block_on(async {
        tokio::select! {
            lock = remote.swarm.lock(project, env, &holder, args.lock_timeout) => lock,
            signal = signals.recv() => {
                // The lock's creation may have gone through just as the signal came.
                if let Ok(Some(info)) = remote.swarm.lock_info(project, env).await {
                    if info.process.is_some() && info.process == holder.process {
                        let _ = remote.swarm.unlock(project, env, true).await;
                    }
                }
                Err(Error::new(format!(
                    "interrupted by {signal} while waiting for the apply lock; nothing was changed"
                ))
                .with_kind(ErrorKind::Interrupted))
            }
        }
    })
}

/// An output error in apply: unlike a report, an apply whose output is gone is not a
/// success, so a closed pipe is an error like a full disk, saying what was done.
fn output_failed(err: Error, applied: bool) -> Error {
    let what = if err.kind() == ErrorKind::BrokenPipe {
        "standard output was closed".to_string()
    } else {
        err.message().to_string()
    };
    if applied {
        Error::new(format!(
            "{what}: the apply finished, but its report could not be written"
        ))
        .hint("run `swarmseal status` to see the result")
    } else {
        Error::new(format!(
            "{what} before the plan could be shown; nothing was applied"
        ))
        .hint("send the output somewhere it can be written, and apply again")
    }
}

fn context<'a>(remote: &'a Remote, observed: &'a Observed) -> render::Context<'a> {
    render::Context {
        endpoint: remote.swarm.endpoint().url.as_str(),
        cluster_id: &observed.cluster_id,
    }
}

fn show(g: &Global, plan: &Plan, remote: &Remote, observed: &Observed) -> Result<()> {
    if g.format == Format::Human && !g.quiet {
        let endpoint = remote.describe();
        let ctx = render::Context {
            endpoint: &endpoint,
            cluster_id: &observed.cluster_id,
        };
        crate::cli::output::out!(
            "{}",
            render::human(plan, &ctx, output::colour(true), g.verbose)
        )?;
    }
    Ok(())
}

/// Under the lock: observes and plans again, then carries the plan out.
#[allow(clippy::too_many_arguments)]
fn locked(
    g: &Global,
    args: &ApplyArgs,
    source: &Source<'_>,
    remote: &Remote,
    saved: Option<&PlanFile>,
    first: First,
    signals: &mut Interrupts,
) -> Result<i32> {
    let (repo, env) = (source.repo, source.env);
    // A reviewed plan comes with the repository as read for it (the files decrypted then).
    let (observed, mut state, reviewed) = match first {
        First::Reviewed(reviewed) => {
            let (plan, state) = *reviewed;
            let observed = remote.observe(repo, env, &source.prepared.names())?;
            (observed, state, Some(plan))
        }
        First::Listed(listing) => {
            let (observed, state) = source.observe_listing(remote, listing)?;
            (observed, state, None)
        }
    };
    // A saved plan is checked against the files it was made from, path by path.
    let files = saved.map(|_| source.prepared.file_digests());
    let saved = saved.zip(files.as_ref());
    let plan = replan(g, args, &state, remote, &observed, saved, reviewed)?;
    keep_needed_values(&mut state, &plan);
    let state = &state;
    plan.refuse_blocked(env)?;
    plan.refuse_conflicts()?;
    // Nothing to do, unless a service of this environment is still updating (an
    // interrupted apply sent its update): apply waits for it, as it would have.
    let in_flight = !args.detach
        && observed
            .services
            .iter()
            .any(|s| s.in_flight() && observed.uses_environment(s, &repo.manifest.project, env));
    if plan.steps.is_empty() && !in_flight {
        let ctx = context(remote, &observed);
        return finish(g, &plan, &ctx, &Outcome::default()).map_err(|e| output_failed(e, true));
    }
    let opts = Options {
        wait: !args.detach,
        wait_timeout: args.wait_timeout,
        parallel: args.parallel as usize,
    };
    carry_out(g, remote, state, &plan, &observed, &opts, signals)
}

/// Plans again under the lock, checking the saved or reviewed plan is still the plan.
fn replan(
    g: &Global,
    args: &ApplyArgs,
    state: &RepoState,
    remote: &Remote,
    observed: &Observed,
    saved: Option<(&PlanFile, &std::collections::BTreeMap<String, String>)>,
    reviewed: Option<Plan>,
) -> Result<Plan> {
    match (saved, reviewed) {
        (Some((file, repo_files)), _) => {
            let path = args
                .planfile
                .as_deref()
                .unwrap_or(std::path::Path::new("plan"));
            let now = planfile::Now {
                cluster_id: &remote.swarm.cluster_id,
                repo_digest: &state.digest,
                repo_files,
                observed,
            };
            file.ensure_fresh(path, &now)?;
            // Same repository, same Swarm: the planner must give the same plan. Anything
            // else (an edited file, another swarmseal version) is not carried out.
            let now = plan::plan(&state.desired, observed);
            if now != file.plan {
                return Err(Error::new(format!(
                    "the plan {} is stale: it is not what swarmseal plans for this repository and Swarm (was the file edited, or made by another swarmseal version?)",
                    path.display()
                ))
                .with_kind(ErrorKind::StalePlan)
                .hint(file.again_hint(path)));
            }
            show(g, &now, remote, observed).map_err(|e| output_failed(e, false))?;
            Ok(now)
        }
        (None, Some(reviewed)) => {
            let now = plan::plan(&state.desired, observed);
            if now.steps != reviewed.steps {
                return Err(Error::new(
                    "the Swarm changed while the plan was being confirmed (another apply?); nothing was changed",
                )
                .with_kind(ErrorKind::StalePlan)
                .hint("run apply again and review the new plan"));
            }
            Ok(now)
        }
        (None, None) => {
            let plan = plan::plan(&state.desired, observed);
            show(g, &plan, remote, observed).map_err(|e| output_failed(e, false))?;
            Ok(plan)
        }
    }
}

/// Executes the plan, raced against the signals, and reports what was done.
fn carry_out(
    g: &Global,
    remote: &Remote,
    state: &RepoState,
    plan: &Plan,
    observed: &Observed,
    opts: &Options,
    signals: &mut Interrupts,
) -> Result<i32> {
    let ctx = context(remote, observed);
    let live = ApplyProgress::new(g.quiet || g.format != Format::Human, g.verbose);
    let progress = |event: Event| live.event(event);
    let outcome = Mutex::new(Outcome::default());
    // Ctrl-C, SIGTERM (a cancelled CI job), SIGHUP or SIGQUIT stop the apply between API
    // calls; the lock is still released, every step is idempotent, and the summary says
    // what was done before the stop.
    let result = remote.rt.block_on(async {
        tokio::select! {
            r = apply::execute(&remote.swarm, plan, observed, &state.values, opts, &progress, &outcome) => r,
            signal = signals.recv() => Err(Error::new(format!(
                "interrupted by {signal}: the apply stopped part-way and released its lock"
            ))
            .with_kind(ErrorKind::Interrupted)
            .hint("run apply again to finish; every step is idempotent")),
        }
    });
    live.finish();
    let outcome = outcome.into_inner().unwrap_or_else(|p| p.into_inner());
    match result {
        Ok(()) => finish(g, plan, &ctx, &outcome).map_err(|e| output_failed(e, true)),
        Err(e) => {
            summary(g, &outcome, "Done before it stopped");
            Err(e)
        }
    }
}

/// The terminating signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT), caught from the moment
/// this is made (inside the runtime), so that one arriving at any point while the lock is
/// held is seen.
struct Interrupts {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
    hup: Option<tokio::signal::unix::Signal>,
    quit: Option<tokio::signal::unix::Signal>,
}

impl Interrupts {
    fn new() -> Interrupts {
        use tokio::signal::unix::{signal, SignalKind};
        Interrupts {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
            hup: signal(SignalKind::hangup()).ok(),
            quit: signal(SignalKind::quit()).ok(),
        }
    }

    /// Resolves when one arrives, naming it.
    async fn recv(&mut self) -> &'static str {
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.int) => "Ctrl-C",
            _ = next(&mut self.term) => "SIGTERM",
            _ = next(&mut self.hup) => "SIGHUP",
            _ = next(&mut self.quit) => "SIGQUIT",
        }
    }
}

/// Reports the outcome; exit 1 when something failed.
fn finish(g: &Global, plan: &Plan, ctx: &render::Context<'_>, outcome: &Outcome) -> Result<i32> {
    if g.format == Format::Json {
        crate::cli::output::outln!(
            "{}",
            json!({
                "plan": render::json(plan, ctx),
                "applied": {
                    "created": outcome.created,
                    "relabelled": outcome.relabelled,
                    "updated_services": outcome.updated_services,
                    "converged": outcome.converged,
                    "removed": outcome.removed,
                    "kept": outcome.kept.iter().map(|(name, why)| json!({"swarm_name": name, "why": why})).collect::<Vec<_>>(),
                    "blocked": outcome.blocked,
                    "warnings": outcome.warnings,
                    "errors": outcome.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                }
            })
        )?;
    } else if g.format == Format::Markdown {
        crate::cli::output::out!("{}", render::markdown(plan, ctx, g.verbose))?;
    }
    summary(g, outcome, "Applied");
    if !outcome.errors.is_empty() {
        return Ok(1);
    }
    if !outcome.blocked.is_empty() {
        output::print_error(
            &Error::new(format!(
                "not removed because services use them now: {}",
                outcome.blocked.join("; ")
            ))
            .with_kind(ErrorKind::Blocked)
            .hint("a service started using them after the plan was made; run plan again"),
        );
        return Ok(1);
    }
    Ok(0)
}

/// Warnings, errors and the counts of what was done, on standard error.
fn summary(g: &Global, outcome: &Outcome, what: &str) {
    for w in &outcome.warnings {
        output::warn(w);
    }
    for e in &outcome.errors {
        output::print_error(e);
    }
    if !g.quiet {
        for line in progress::kept_lines(&outcome.kept, g.verbose, true) {
            crate::cli::output::errln!("{}", clean(&line));
        }
    }
    if !g.quiet {
        let n = progress::number;
        let sent = outcome.updated_services.len();
        let converged = if outcome.converged.len() == sent {
            String::new()
        } else {
            format!(" ({} converged)", n(outcome.converged.len()))
        };
        crate::cli::output::errln!(
            "{what}: {} created, {} relabelled, {} sent{converged}, {} removed.",
            n(outcome.created.len()),
            n(outcome.relabelled.len()),
            crate::domain::text::plural(sent, "service update"),
            n(outcome.removed.len())
        );
    }
}

fn confirm(env: &str, endpoint: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::new("refusing to apply without confirmation: standard input is not a terminal")
            .with_kind(ErrorKind::Usage)
            .hint("review the plan and pass --yes (or apply a saved plan: `swarmseal plan --out FILE`, then `swarmseal apply FILE`)"));
    }
    crate::cli::output::err!(
        "Apply these changes to {env} at {endpoint}? Only 'yes' is accepted: "
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::new(format!("cannot read the answer: {e}")))?;
    if answer.trim() != "yes" {
        return Err(Error::new("apply cancelled; nothing was changed"));
    }
    Ok(())
}
