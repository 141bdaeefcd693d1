//! `swarmseal plan`: what apply would change, for people, pipelines and pull requests.

use crate::cli::args::PlanArgs;
use crate::cli::context::Context;
use crate::cli::output::{self, Format};
use crate::error::Result;
use crate::plan;
use crate::plan::planfile::PlanFile;
use crate::plan::render;
use crate::repo::desired::{self, Decrypt, Known};

use crate::cli::remote::Remote;

pub fn run(cx: &Context, args: PlanArgs) -> Result<i32> {
    let g = &cx.global;
    let repo = cx.repo()?;
    let env = cx.env()?;
    let ids = cx.identities()?;
    // The files are read and checked while the Swarm is listed; only those the Swarm does
    // not already vouch for are decrypted (see `desired::Known`).
    let (prepared, remote, listing) =
        Remote::connect_and_list_while(g, repo, &env, || desired::prepare(repo, &env))?;
    let lock = listing.lock_info(&repo.manifest.project, &env);
    let observed = remote.observe_listing(listing, repo, &env, &prepared.names())?;
    let known = Known::from_observed(&observed, &repo.manifest.project, &env);
    let state = prepared.decrypt(repo, ids, Decrypt::IfPossible, known)?;
    cx.warn_all(&state.warnings);
    if let Some(lock) = lock {
        output::warn(&format!(
            "an apply is in progress: the lock is held by {}",
            lock.describe()
        ));
    }
    let plan = plan::plan(&state.desired, &observed);
    let endpoint = remote.describe();
    let ctx = render::Context {
        endpoint: &endpoint,
        cluster_id: &observed.cluster_id,
    };
    match g.format {
        Format::Human => crate::cli::output::out!(
            "{}",
            render::human(&plan, &ctx, output::colour(true), g.verbose)
        )?,
        Format::Json => crate::cli::output::outln!("{}", render::json(&plan, &ctx))?,
        Format::Markdown => {
            crate::cli::output::out!("{}", render::markdown(&plan, &ctx, g.verbose))?
        }
    }
    // What plan accepts, apply completes: a removal a service prevents fails the plan
    // (and the pull-request check that runs it), not the deploy; such a plan is not saved.
    plan.refuse_blocked(&env)?;
    plan.refuse_conflicts()?;
    if let Some(out) = &args.out {
        PlanFile::new(
            plan.clone(),
            &observed,
            &endpoint,
            &state.digest,
            &prepared.file_digests(),
        )
        .save(out)?;
        if plan.is_unverified() {
            output::warn(&format!(
                "saved {}, but it was made without an identity that can read {env}: apply will refuse it",
                out.display()
            ));
        } else {
            cx.say(format!(
                "Saved the plan to {}; apply it with `swarmseal -e {env} apply {}`",
                out.display(),
                out.display()
            ));
        }
    }
    let code = if args.detailed_exitcode && plan.has_changes() {
        2
    } else {
        0
    };
    // The values (none are kept for a plan) are dropped, and so zeroized, as always.
    drop(state.values);
    crate::cli::leave_to_exit(prepared);
    crate::cli::leave_to_exit(observed);
    crate::cli::leave_to_exit(plan);
    crate::cli::leave_to_exit(state.desired);
    Ok(code)
}
