//! Renderers of a plan: for people (colour only on a terminal), JSON (`docs/design.md#plan-output`) and
//! markdown for pull-request comments. None of them ever sees a value.

use serde_json::{json, Value};

use crate::domain::text::{clean, paint};
use crate::plan::{Action, Change, Keep, KeepWhy, MountChange, Plan};

/// Where the plan was made against, for headers.
pub struct Context<'a> {
    pub endpoint: &'a str,
    pub cluster_id: &'a str,
}

fn symbol(action: Action) -> (&'static str, &'static str) {
    match action {
        Action::Create => ("+", "32"),
        Action::Rotate => ("~", "33"),
        Action::Adopt => ("<", "36"),
        Action::Repair => ("^", "35"),
        Action::Relabel => ("*", "34"),
        Action::Remove => ("-", "31"),
        Action::Blocked => ("!", "1;31"),
        Action::Unchanged => ("=", "2"),
    }
}

fn target(c: &Change) -> String {
    match &c.swarm_name {
        Some(n) => n.clone(),
        None => format!("{}-<new version>", c.secret),
    }
}

/// Counts as `1 to create, 2 to rotate, ...`.
pub fn summary_line(plan: &Plan) -> String {
    let s = &plan.summary;
    let mut parts = vec![
        format!("{} to create", s.create),
        format!("{} to rotate", s.rotate),
        format!("{} to adopt", s.adopt),
    ];
    if s.repair > 0 {
        parts.push(format!("{} to repair", s.repair));
    }
    parts.extend([
        format!("{} to relabel", s.relabel),
        format!("{} to remove", s.remove),
    ]);
    if s.blocked > 0 {
        parts.push(format!("{} blocked", s.blocked));
    }
    parts.push(format!("{} unchanged", s.unchanged));
    parts.join(", ")
}

/// Why a version stays, in words: `web can roll back to it`.
pub fn keep_note(k: &Keep) -> String {
    let who = k
        .services
        .iter()
        .map(|s| clean(s).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    match k.why {
        KeepWhy::Rollback => format!("keeps {}: {who} can roll back to it", k.swarm_name),
        KeepWhy::KeepVersions => format!("keeps {} (keep_versions)", k.swarm_name),
        KeepWhy::AfterUpdate => format!(
            "removes {} once the update of {who} has converged (kept if it does not)",
            k.swarm_name
        ),
    }
}

/// True for a kept version worth showing without `-v`: something that waits to be done.
fn pending(k: &Keep) -> bool {
    k.why == KeepWhy::AfterUpdate
}

/// The plan for a terminal or a log.
pub fn human(plan: &Plan, ctx: &Context<'_>, colour: bool, verbose: bool) -> String {
    let mut out = format!(
        "swarmseal plan: project {}, environment {}, Swarm {} via {}\n\n",
        plan.project, plan.environment, ctx.cluster_id, ctx.endpoint
    );
    let kept_quietly = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Unchanged)
        .flat_map(|c| &c.kept)
        .filter(|k| !pending(k))
        .count();
    let waiting: Vec<(&str, &Keep)> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Unchanged)
        .flat_map(|c| c.kept.iter().map(move |k| (c.secret.as_str(), k)))
        .filter(|(_, k)| pending(k) || verbose)
        .collect();
    let footer = |out: &mut String| {
        if !waiting.is_empty() {
            out.push_str("\nKept for now:\n");
            for (secret, k) in &waiting {
                out.push_str(&format!("  {secret}: {}\n", keep_note(k)));
            }
        }
        if kept_quietly > 0 && !verbose {
            out.push_str(&format!(
                "{kept_quietly} older version(s) kept because a service can roll back to them (-v lists them); a later apply removes them once the services move on.\n"
            ));
        }
    };
    if !plan.has_changes() {
        out.push_str(&format!(
            "No changes: the Swarm matches the repository ({} secret(s)).\n",
            plan.summary.unchanged
        ));
        footer(&mut out);
        return out;
    }
    let width = plan
        .changes
        .iter()
        .map(|c| c.secret.len())
        .max()
        .unwrap_or(0);
    for c in &plan.changes {
        if c.action == Action::Unchanged && !verbose {
            continue;
        }
        out.push_str(&human_change(c, width, colour));
    }
    out.push_str(&format!("\nPlan: {}.\n", summary_line(plan)));
    footer(&mut out);
    if plan.is_unverified() {
        out.push_str("Changes marked unverified were inferred from the encrypted files alone (no identity could read them): a re-encrypted file shows as changed.\n");
    }
    if plan.summary.blocked > 0 {
        out.push_str("Blocked removals are never forced: remove the secret from those services (or put it back in the repository) first.\n");
    }
    out
}

/// One change of the plan for people: its line and what it does to services and versions.
fn human_change(c: &Change, width: usize, colour: bool) -> String {
    let mut out = String::new();
    let (sym, code) = symbol(c.action);
    let head = format!("{sym} {:<8}", c.action.as_str());
    let mut line = format!("  {} {:<width$}  ", paint(colour, code, &head), c.secret);
    match c.action {
        Action::Create | Action::Rotate | Action::Adopt | Action::Repair => {
            line.push_str(&format!("-> {}", target(c)))
        }
        _ => line.push_str(&target(c)),
    }
    line.push_str(&format!("  ({}", c.reason));
    if c.unverified {
        line.push_str(&format!(", {}", paint(colour, "1;33", "unverified")));
    }
    line.push(')');
    out.push_str(&line);
    out.push('\n');
    let pad = " ".repeat(15 + width);
    if !c.services.is_empty() {
        let verb = match c.action {
            Action::Blocked | Action::Unchanged => "used by",
            _ => "re-points",
        };
        let services: Vec<String> = c.services.iter().map(|s| clean(s).into_owned()).collect();
        out.push_str(&format!("{pad}{verb}: {}\n", services.join(", ")));
    }
    if c.action == Action::Adopt {
        for r in &c.replaces {
            out.push_str(&format!("{pad}leaves the unmanaged secret {r} alone\n"));
        }
    } else if !c.replaces.is_empty() {
        out.push_str(&format!("{pad}replaces: {}\n", c.replaces.join(", ")));
    }
    if !c.removes.is_empty() && c.action != Action::Remove {
        out.push_str(&format!("{pad}removes: {}\n", c.removes.join(", ")));
    }
    for m in &c.mounts {
        out.push_str(&format!("{pad}{}\n", mount_note(m)));
    }
    if c.action != Action::Unchanged {
        for k in &c.kept {
            out.push_str(&format!("{pad}{}\n", keep_note(k)));
        }
    }
    out
}

/// The notes column of a change in the markdown table.
fn markdown_notes(c: &Change) -> Vec<String> {
    let mut notes = vec![c.reason.clone()];
    if c.unverified {
        notes.push("**unverified**".into());
    }
    if !c.replaces.is_empty() {
        notes.push(format!(
            "replaces {}",
            c.replaces
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for m in &c.mounts {
        notes.push(format!("`{}`", mount_note(m)));
    }
    for k in &c.kept {
        notes.push(keep_note(k));
    }
    if !c.removes.is_empty() && c.action != Action::Remove {
        notes.push(format!(
            "removes {}",
            c.removes
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    notes
}

/// `web: target db_pw -> db_password` (the manifest's settings win over the service's).
fn mount_note(m: &MountChange) -> String {
    format!(
        "{}: {} {} -> {}",
        clean(&m.service),
        m.setting,
        clean(&m.from),
        clean(&m.to)
    )
}

/// One change as JSON.
fn change_json(c: &Change) -> Value {
    json!({
        "action": c.action.as_str(),
        "secret": c.secret,
        "swarm_name": c.swarm_name,
        "services": c.services,
        "replaces": c.replaces,
        "removes": c.removes,
        "unverified": c.unverified,
        "reason": c.reason,
        "mounts": c.mounts,
        "kept": c.kept,
    })
}

/// `docs/design.md#plan-output`: `{"format_version": 1, "project", "environment", "changes": [...], "summary": {...}}`.
/// `changes` lists every change other than `unchanged`.
pub fn json(plan: &Plan, ctx: &Context<'_>) -> Value {
    let s = &plan.summary;
    json!({
        "format_version": 1,
        "project": plan.project,
        "environment": plan.environment,
        "cluster_id": ctx.cluster_id,
        "changes": plan.changes.iter().filter(|c| c.action != Action::Unchanged).map(change_json).collect::<Vec<_>>(),
        "summary": {
            "create": s.create, "rotate": s.rotate, "adopt": s.adopt, "repair": s.repair,
            "relabel": s.relabel, "remove": s.remove, "blocked": s.blocked,
            "unchanged": s.unchanged,
        },
        // Every superseded version kept for now, whichever change it belongs to.
        "kept": plan.kept().map(|(secret, k)| json!({
            "secret": secret, "swarm_name": k.swarm_name, "why": k.why, "services": k.services,
        })).collect::<Vec<_>>(),
        "unverified": plan.is_unverified(),
    })
}

/// A pull-request comment.
pub fn markdown(plan: &Plan, ctx: &Context<'_>) -> String {
    let mut out = format!(
        "### swarmseal plan: `{}` / `{}`\n\nSwarm `{}`\n\n",
        plan.project, plan.environment, ctx.cluster_id
    );
    let waiting: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Unchanged)
        .flat_map(|c| {
            c.kept
                .iter()
                .filter(|k| pending(k))
                .map(move |k| format!("- `{}`: {}\n", c.secret, keep_note(k)))
        })
        .collect();
    if !plan.has_changes() {
        out.push_str(&format!(
            "No changes: the Swarm matches the repository ({} secrets).\n",
            plan.summary.unchanged
        ));
        if !waiting.is_empty() {
            out.push_str("\nKept for now:\n\n");
            out.push_str(&waiting.concat());
        }
        return out;
    }
    out.push_str(
        "| | action | secret | Swarm name | services | notes |\n|---|---|---|---|---|---|\n",
    );
    let esc = |s: &str| clean(s).replace('|', "\\|");
    for c in plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Unchanged)
    {
        let (sym, _) = symbol(c.action);
        let notes = markdown_notes(c);
        out.push_str(&format!(
            "| `{sym}` | **{}** | `{}` | `{}` | {} | {} |\n",
            c.action.as_str(),
            esc(&c.secret),
            esc(&target(c)),
            esc(&c.services.join(", ")),
            esc(&notes.join("; "))
        ));
    }
    out.push_str(&format!("\n**Plan:** {}.\n", summary_line(plan)));
    if !waiting.is_empty() {
        out.push_str("\nKept for now:\n\n");
        out.push_str(&waiting.concat());
    }
    if plan.is_unverified() {
        out.push_str("\n_Unverified changes were inferred from the encrypted files alone (plan ran without an identity)._\n");
    }
    out
}
