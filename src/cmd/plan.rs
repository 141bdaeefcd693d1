//! `swarmseal plan`: what apply would change, for people, pipelines and pull requests.

use crate::cli::{Global, PlanArgs};
use crate::desired::{self, Decrypt};
use crate::error::Result;
use crate::output::{self, Format};
use crate::plan;
use crate::planfile::PlanFile;
use crate::render;

use super::remote::Remote;

pub fn run(g: &Global, args: PlanArgs) -> Result<i32> {
    let repo = super::open_repo(g)?;
    let env = super::select_env(g, &repo)?;
    let ids = super::identities(g)?;
    let (state, remote) = Remote::connect_while(g, &repo, &env, || {
        desired::read(&repo, &env, ids.as_ref(), Decrypt::IfPossible)
    })?;
    let names = state.desired.secrets.keys().cloned().collect();
    let observed = remote.observe(&repo, &env, &names)?;
    if let Ok(Some(lock)) = remote
        .rt
        .block_on(remote.swarm.lock_info(&repo.manifest.project, &env))
    {
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
        Format::Human => crate::out!(
            "{}",
            render::human(&plan, &ctx, output::colour(true), g.verbose)
        )?,
        Format::Json => crate::outln!("{}", render::json(&plan, &ctx))?,
        Format::Markdown => crate::out!("{}", render::markdown(&plan, &ctx))?,
    }
    // What plan accepts, apply completes: a removal a service prevents fails the plan
    // (and the pull-request check that runs it), not the deploy; such a plan is not saved.
    super::apply::refuse_blocked(&plan, &env)?;
    if let Some(out) = &args.out {
        PlanFile::new(plan.clone(), &observed, &endpoint, &state.digest).save(out)?;
        if plan.is_unverified() {
            output::warn(&format!(
                "saved {}, but it was made without an identity that can read {env}: apply will refuse it",
                out.display()
            ));
        } else {
            super::say(
                g,
                format!(
                    "Saved the plan to {}; apply it with `swarmseal -e {env} apply {}`",
                    out.display(),
                    out.display()
                ),
            );
        }
    }
    Ok(if args.detailed_exitcode && plan.has_changes() {
        2
    } else {
        0
    })
}
