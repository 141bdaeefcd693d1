//! Renderers of a plan: for people (colour only on a terminal), JSON (`docs/design.md#plan-output`) and
//! markdown for pull-request comments. None of them ever sees a value.

use serde_json::{json, Value};

use crate::domain::text::{clean, paint, plural};
use crate::plan::{Action, Change, Keep, KeepWhy, MountChange, Plan};

/// Where the plan was made against, for headers.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub endpoint: &'a str,
    pub cluster_id: &'a str,
}

/// The first lines of a report about one environment (`plan`, `status`), the same for
/// every command: `swarmseal plan: project p, environment e, Swarm c via e`.
pub struct Heading<'a> {
    pub command: &'a str,
    pub project: &'a str,
    pub environment: &'a str,
    pub swarm: Option<Context<'a>>,
}

impl Heading<'_> {
    /// One line for a terminal or a log.
    pub fn human(&self) -> String {
        let mut line = format!(
            "swarmseal {}: project {}, environment {}",
            self.command, self.project, self.environment
        );
        if let Some(ctx) = &self.swarm {
            line.push_str(&format!(
                ", Swarm {} via {}",
                clean(ctx.cluster_id),
                ctx.endpoint
            ));
        }
        line
    }

    /// A markdown heading and the Swarm, each followed by a blank line.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "### swarmseal {}: `{}` / `{}`\n\n",
            self.command, self.project, self.environment
        );
        if let Some(ctx) = &self.swarm {
            out.push_str(&format!("Swarm `{}`\n\n", clean(ctx.cluster_id)));
        }
        out
    }
}

fn heading<'a>(plan: &'a Plan, ctx: &Context<'a>) -> Heading<'a> {
    Heading {
        command: "plan",
        project: &plan.project,
        environment: &plan.environment,
        swarm: Some(*ctx),
    }
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
    let conflicts = plan.conflicts().count();
    if conflicts > 0 {
        parts.push(plural(conflicts, "name conflict"));
    }
    parts.push(format!("{} unchanged", s.unchanged));
    parts.join(", ")
}

/// Why a version stays, in words: `keeps db-1: web can roll back to it`.
pub fn keep_note(k: &Keep) -> String {
    keep_clause(k, &k.swarm_name)
}

/// What happens to a kept version, called `it`: `keeps it: web can roll back to it`.
fn keep_clause(k: &Keep, it: &str) -> String {
    let who = k
        .services
        .iter()
        .map(|s| clean(s).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    match k.why {
        KeepWhy::Rollback => format!("keeps {it}: {who} can roll back to it"),
        KeepWhy::KeepVersions => format!("keeps {it} (keep_versions)"),
        KeepWhy::AfterUpdate => format!(
            "removes {it} once the update of {who} has converged, and keeps it if the update fails"
        ),
    }
}

/// What a change does to other versions than its own, one note per version, each named
/// once: `replaces db-1 and removes it`, `replaces db-1, then removes it once ...`,
/// `removes db-0`, `keeps db-0 (keep_versions)`. `code` shows a version's name (in
/// backticks for markdown).
fn version_notes(c: &Change, code: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut notes = Vec::new();
    let adopt = c.action == Action::Adopt;
    for r in &c.replaces {
        let kept = c.kept.iter().find(|k| &k.swarm_name == r);
        notes.push(match kept {
            _ if adopt => format!("leaves the unmanaged secret {} alone", code(r)),
            _ if c.removes.contains(r) => format!("replaces {} and removes it", code(r)),
            Some(k) => format!("replaces {}, then {}", code(r), keep_clause(k, "it")),
            None => format!("replaces {}", code(r)),
        });
    }
    let own = |r: &String| c.action == Action::Remove && c.swarm_name.as_ref() == Some(r);
    for r in &c.removes {
        if !c.replaces.contains(r) && !own(r) {
            notes.push(format!("removes {}", code(r)));
        }
    }
    for k in &c.kept {
        if adopt || !c.replaces.contains(&k.swarm_name) {
            notes.push(keep_clause(k, &code(&k.swarm_name)));
        }
    }
    notes
}

/// True for a kept version worth showing without `-v`: something that waits to be done.
fn pending(k: &Keep) -> bool {
    k.why == KeepWhy::AfterUpdate
}

/// The plan for a terminal or a log. `verbose` also lists the unchanged secrets and every
/// kept version.
pub fn human(plan: &Plan, ctx: &Context<'_>, colour: bool, verbose: bool) -> String {
    let mut out = format!("{}\n\n", heading(plan, ctx).human());
    let width = plan
        .changes
        .iter()
        .map(|c| super::diff::label(c).len())
        .max()
        .unwrap_or(0);
    let shown = |c: &&Change| verbose || c.action != Action::Unchanged;
    if plan.has_changes() {
        for c in plan.changes.iter().filter(shown) {
            out.push_str(&human_change(c, width, colour));
        }
        out.push_str(&format!("\nPlan: {}.\n", summary_line(plan)));
    } else {
        out.push_str(&format!(
            "No changes: the Swarm matches the repository ({}).\n",
            plural(plan.summary.unchanged, "secret")
        ));
        if verbose && !plan.changes.is_empty() {
            out.push('\n');
            for c in &plan.changes {
                out.push_str(&human_change(c, width, colour));
            }
        }
    }
    out.push_str(&human_kept(plan, verbose));
    if plan.is_unverified() {
        out.push_str("Changes marked unverified were inferred from the encrypted files alone (no identity could read them): a re-encrypted file shows as changed.\n");
    }
    if plan.summary.blocked > 0 {
        out.push_str("Blocked removals are never forced: remove the secret from those services (or put it back in the repository) first.\n");
    }
    out
}

/// The unchanged secrets' kept versions: those waiting for an update by name, the others
/// (kept for rollback) counted, or named with `verbose`.
fn human_kept(plan: &Plan, verbose: bool) -> String {
    let unchanged = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Unchanged);
    let kept: Vec<(&str, &Keep)> = unchanged
        .flat_map(|c| c.kept.iter().map(move |k| (c.secret.as_str(), k)))
        .collect();
    let mut out = String::new();
    let (named, quiet): (Vec<_>, Vec<_>) = kept.iter().partition(|(_, k)| pending(k) || verbose);
    if !named.is_empty() {
        out.push_str("\nKept for now:\n");
        for (secret, k) in named {
            out.push_str(&format!("  {secret}: {}\n", keep_note(k)));
        }
    }
    match quiet.len() {
        0 => {}
        1 => out.push_str("1 older version is kept because a service can roll back to it; a later apply removes it once the service moves on (-v names it).\n"),
        n => out.push_str(&format!("{n} older versions are kept because services can roll back to them; a later apply removes them once the services move on (-v names them).\n")),
    }
    out
}

/// One change of the plan for people: its line and what it does to services and versions.
fn human_change(c: &Change, width: usize, colour: bool) -> String {
    let mut out = String::new();
    let (sym, code) = symbol(c.action);
    let head = format!("{sym} {:<8}", c.action.as_str());
    let mut line = format!(
        "  {} {:<width$}  ",
        paint(colour, code, &head),
        super::diff::label(c)
    );
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
    if let Some(note) = super::conflicts::note(c) {
        out.push_str(&format!("{pad}{}\n", paint(colour, "1;31", &note)));
    }
    if !c.services.is_empty() {
        let verb = match c.action {
            Action::Blocked | Action::Unchanged => "used by",
            _ => "re-points",
        };
        let services: Vec<String> = c.services.iter().map(|s| clean(s).into_owned()).collect();
        out.push_str(&format!("{pad}{verb}: {}\n", services.join(", ")));
    }
    for m in &c.mounts {
        out.push_str(&format!("{pad}{}\n", mount_note(m)));
    }
    // An unchanged secret's kept versions are listed under "Kept for now".
    if c.action != Action::Unchanged {
        for note in version_notes(c, &|name| name.to_string()) {
            out.push_str(&format!("{pad}{note}\n"));
        }
    }
    if let Some(diff) = &c.diff {
        out.push_str(&super::diff::human(diff, &pad, colour));
    }
    out
}

/// The notes column of a change in the markdown table.
fn markdown_notes(c: &Change) -> Vec<String> {
    let mut notes = vec![c.reason.clone()];
    notes.extend(super::conflicts::note(c).map(|n| format!("**{n}**")));
    if c.unverified {
        notes.push("**unverified**".into());
    }
    for m in &c.mounts {
        notes.push(format!("`{}`", mount_note(m)));
    }
    // An unchanged secret's kept versions are listed under "Kept for now".
    if c.action != Action::Unchanged {
        notes.extend(version_notes(c, &|name| format!("`{name}`")));
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
    let mut v = json!({
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
    });
    // Additive (format_version 1): a config's kind (a secret's is left out), a plain
    // config's content diff.
    if !c.kind.is_secret() {
        v["kind"] = json!(c.kind.as_str());
    }
    if let Some(diff) = &c.diff {
        v["diff"] = json!(diff);
    }
    // Only on a change whose version cannot be created (additive: format_version 1).
    if let Some(t) = &c.conflict {
        v["conflict"] = json!({
            "swarm_name": t.name, "id": t.id, "project": t.project,
            "environment": t.environment, "held_by": super::conflicts::holder(t),
        });
    }
    v
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
            "unchanged": s.unchanged, "conflict": plan.conflicts().count(),
        },
        // Every superseded version kept for now, whichever change it belongs to.
        "kept": plan.kept().map(|(secret, k)| json!({
            "secret": secret, "swarm_name": k.swarm_name, "why": k.why, "services": k.services,
        })).collect::<Vec<_>>(),
        "unverified": plan.is_unverified(),
    })
}

/// A pull-request comment. `verbose` adds the unchanged secrets (in a collapsed block) and
/// every kept version.
pub fn markdown(plan: &Plan, ctx: &Context<'_>, verbose: bool) -> String {
    let mut out = heading(plan, ctx).markdown();
    let unchanged: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Unchanged)
        .collect();
    if plan.has_changes() {
        out.push_str(MARKDOWN_HEADER);
        for c in plan
            .changes
            .iter()
            .filter(|c| c.action != Action::Unchanged)
        {
            out.push_str(&markdown_row(c));
        }
        out.push_str(&format!("\n**Plan:** {}.\n", summary_line(plan)));
        for c in plan
            .changes
            .iter()
            .filter(|c| c.action != Action::Unchanged)
        {
            if let Some(diff) = &c.diff {
                out.push_str(&super::diff::markdown(&c.secret, diff));
            }
        }
    } else {
        out.push_str(&format!(
            "No changes: the Swarm matches the repository ({}).\n",
            plural(plan.summary.unchanged, "secret")
        ));
    }
    if verbose && !unchanged.is_empty() {
        out.push_str(&format!(
            "\n<details><summary>{} unchanged</summary>\n\n{MARKDOWN_HEADER}",
            plural(unchanged.len(), "secret")
        ));
        for c in &unchanged {
            out.push_str(&markdown_row(c));
        }
        out.push_str("\n</details>\n");
    }
    let kept: Vec<String> = unchanged
        .iter()
        .flat_map(|c| c.kept.iter().map(move |k| (c, k)))
        .filter(|(_, k)| pending(k) || verbose)
        .map(|(c, k)| format!("- `{}`: {}\n", c.secret, keep_note(k)))
        .collect();
    if !kept.is_empty() {
        out.push_str("\nKept for now:\n\n");
        out.push_str(&kept.concat());
    }
    if plan.is_unverified() {
        out.push_str("\n_Unverified changes were inferred from the encrypted files alone (plan ran without an identity)._\n");
    }
    out
}

const MARKDOWN_HEADER: &str =
    "| | action | secret | Swarm name | services | notes |\n|---|---|---|---|---|---|\n";

/// One change as a row of the markdown table.
fn markdown_row(c: &Change) -> String {
    let esc = |s: &str| clean(s).replace('|', "\\|");
    let (sym, _) = symbol(c.action);
    format!(
        "| `{sym}` | **{}** | `{}` | `{}` | {} | {} |\n",
        c.action.as_str(),
        esc(&super::diff::label(c)),
        esc(&target(c)),
        esc(&c.services.join(", ")),
        esc(&markdown_notes(c).join("; "))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Reason;

    fn rotate(replaces: &[&str], removes: &[&str], kept: Vec<Keep>) -> Change {
        let mut c = Change::new(
            Action::Rotate,
            "db",
            Some("db-new".into()),
            Reason::ValueChanged { unverified: false },
        );
        c.replaces = replaces.iter().map(|s| s.to_string()).collect();
        c.removes = removes.iter().map(|s| s.to_string()).collect();
        c.kept = kept;
        c
    }

    fn keep(name: &str, why: KeepWhy) -> Keep {
        Keep {
            swarm_name: name.into(),
            why,
            services: vec!["web".into()],
        }
    }

    fn notes(c: &Change) -> Vec<String> {
        version_notes(c, &|n| n.to_string())
    }

    /// Each older version is named once, with everything that happens to it.
    #[test]
    fn version_notes_name_each_version_once() {
        assert_eq!(
            notes(&rotate(&["db-1"], &["db-1"], vec![])),
            ["replaces db-1 and removes it"]
        );
        assert_eq!(
            notes(&rotate(
                &["db-1"],
                &[],
                vec![keep("db-1", KeepWhy::Rollback)]
            )),
            ["replaces db-1, then keeps it: web can roll back to it"]
        );
        assert_eq!(
            notes(&rotate(&["db-1"], &[], vec![keep("db-1", KeepWhy::AfterUpdate)])),
            ["replaces db-1, then removes it once the update of web has converged, and keeps it if the update fails"]
        );
        assert_eq!(
            notes(&rotate(
                &["db-2"],
                &["db-0", "db-2"],
                vec![keep("db-1", KeepWhy::KeepVersions)]
            )),
            [
                "replaces db-2 and removes it",
                "removes db-0",
                "keeps db-1 (keep_versions)"
            ]
        );
        assert_eq!(
            version_notes(&rotate(&["db-1"], &["db-1"], vec![]), &|n| format!("`{n}`")),
            ["replaces `db-1` and removes it"]
        );
        let mut adopt = rotate(&["db"], &[], vec![]);
        adopt.action = Action::Adopt;
        assert_eq!(notes(&adopt), ["leaves the unmanaged secret db alone"]);
        // A removal names its own version on its line; the notes name the others.
        let mut remove = rotate(&[], &["db-0", "db-1"], vec![]);
        remove.action = Action::Remove;
        remove.swarm_name = Some("db-0".into());
        assert_eq!(notes(&remove), ["removes db-1"]);
    }

    /// An unverified change says so once, inside the one pair of parentheses.
    #[test]
    fn unverified_reason_is_said_once() {
        let mut c = Change::new(
            Action::Create,
            "db",
            None,
            Reason::NotOnSwarm { unverified: true },
        );
        c.unverified = true;
        let line = human_change(&c, 2, false);
        assert!(
            line.trim_end()
                .ends_with("db  -> db-<new version>  (not on the Swarm, unverified)"),
            "{line}"
        );
    }
}
