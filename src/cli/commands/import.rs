//! `swarmseal import compose FILE | dotenv FILE`: plaintext secrets brought under
//! management (see [`crate::repo::import`]), then what to do with the plaintext files.
//!
//! People read what was stored and the next steps on standard error (as `set` says what it
//! did); `--format json` prints the result as one object on standard output instead.

use std::path::{Path, PathBuf};

use crate::cli::args::ImportCommand;
use crate::cli::context::Context;
use crate::cli::output::{self, Format};
use crate::domain::text::plural;
use crate::error::Result;
use crate::repo::import::{self, Action, Kind, Stored};
use crate::repo::Repo;

pub fn run(cx: &Context, command: ImportCommand) -> Result<i32> {
    let repo = cx.repo()?;
    let env = cx.env()?;
    // An identity only tells an unchanged value from a changed one when overwriting.
    let ids = |force: bool| if force { cx.identities() } else { Ok(None) };
    match command {
        ImportCommand::Compose(args) => {
            let done =
                import::import_compose(repo, ids(args.force)?, &env, &args.file, args.force)?;
            if cx.format() == Format::Json {
                return json(&done);
            }
            cx.say(stored_lines(
                &done.imported,
                &args.file,
                &env,
                cx.global.verbose,
            ));
            if !done.skipped.is_empty() {
                let list: Vec<String> = done
                    .skipped
                    .iter()
                    .map(|s| format!("{} {} ({})", s.kind.as_str(), s.key, s.reason))
                    .collect();
                cx.say(format!("Left as they are: {}", list.join(", ")));
            }
            cx.say(format!(
                "Rewrote {}: each imported entry is now `external: true` with `name: ${{SWARMSEAL_<NAME>}}` (configs: `${{SWARMSEAL_CONFIG_<NAME>}}`), which `swarmseal exec` sets to the current Swarm name.",
                args.file.display()
            ));
            cx.say(next_steps(
                repo,
                &env,
                &done.delete,
                &done.imported,
                Some(&args.file),
            ));
        }
        ImportCommand::Dotenv(args) => {
            let done = import::import_dotenv(repo, ids(args.force)?, &env, &args.file, args.force)?;
            if cx.format() == Format::Json {
                return json(&done);
            }
            cx.say(stored_lines(
                &done.imported,
                &args.file,
                &env,
                cx.global.verbose,
            ));
            cx.warn_all(&done.warnings);
            cx.say(next_steps(
                repo,
                &env,
                std::slice::from_ref(&args.file),
                &done.imported,
                None,
            ));
        }
    }
    Ok(0)
}

fn json(report: &impl serde::Serialize) -> Result<i32> {
    let text = serde_json::to_string(report).expect("import reports serialize to JSON");
    output::outln!("{text}")?;
    Ok(0)
}

/// How many values are listed one per line without `-v` (beyond that, one line per action).
const LISTED: usize = 20;

/// `Imported ... from FILE into environment ENV:` and one line per value (for more than
/// [`LISTED`] values, with `verbose` only; else a count per action).
fn stored_lines(stored: &[Stored], source: &Path, env: &str, verbose: bool) -> String {
    let configs = stored.iter().filter(|s| s.kind == Kind::Config).count();
    let mut counts = vec![plural(stored.len() - configs, "secret")];
    if configs > 0 {
        counts.push(plural(configs, "config"));
    }
    let mut text = format!(
        "Imported {} from {} into environment {env}:",
        counts.join(" and "),
        source.display()
    );
    let word = |action: Action| match action {
        Action::Created => "created",
        Action::Updated => "updated",
        Action::Unchanged => "unchanged",
    };
    if stored.len() > LISTED && !verbose {
        for action in [Action::Created, Action::Updated, Action::Unchanged] {
            let n = stored.iter().filter(|s| s.action == action).count();
            if n > 0 {
                text.push_str(&format!("\n  {} {}", word(action), plural(n, "value")));
            }
        }
        text.push_str("\n  (-v lists them)");
        return text;
    }
    for s in stored {
        let action = word(s.action);
        let from = match &s.file {
            Some(file) => file.display().to_string(),
            None => s.key.clone(),
        };
        text.push_str(&format!(
            "\n  {action} {} {} from {from} ({}, {})",
            s.kind.as_str(),
            s.name,
            s.path.display(),
            plural(s.bytes, "byte")
        ));
    }
    text
}

/// Deleting the plaintext files, purging them from git history, committing, deploying.
fn next_steps(
    repo: &Repo,
    env: &str,
    delete: &[PathBuf],
    stored: &[Stored],
    compose: Option<&Path>,
) -> String {
    let mut steps = Vec::new();
    if !delete.is_empty() {
        let words = |prefix: &str| {
            let list: Vec<String> = delete
                .iter()
                .map(|p| format!("{prefix}{}", quote(&p.display().to_string())))
                .collect();
            list.join(" ")
        };
        let one = delete.len() == 1;
        steps.push(format!(
            "Delete the plaintext {}: rm {}",
            if one { "file" } else { "files" },
            words("")
        ));
        steps.push(format!(
            "If {} ever committed to git, purge {} from its history too (paths relative to that repository's root): `git rm --cached {}`, then `git filter-repo --invert-paths {}`; this rewrites history, so everyone re-clones; and rotate the values, since every old clone has them.",
            if one { "it was" } else { "they were" },
            if one { "it" } else { "them" },
            words(""),
            words("--path "),
        ));
    }
    let mut commit = vec![format!("secrets/{env}/")];
    if stored.iter().any(|s| s.kind == Kind::Config) {
        commit.push(format!("configs/{env}/"));
    }
    commit.push(".swarmseal/index.yaml".to_string());
    let mut commit = format!("{} (in {})", commit.join(", "), repo.root.display());
    if let Some(compose) = compose {
        commit.push_str(&format!(", and {}", compose.display()));
    }
    steps.push(format!("Commit {commit}."));
    let deploy = match compose {
        Some(c) => format!(
            "deploy with `swarmseal -e {env} exec -- docker stack deploy -c {} STACK`",
            quote(&c.display().to_string())
        ),
        None => format!(
            "refer to the secrets in compose files as external ones with `name: ${{{}}}`, and deploy with `swarmseal -e {env} exec -- docker stack deploy -c FILE STACK`",
            stored.first().map_or("SWARMSEAL_<NAME>", |s| s.variable.as_str())
        ),
    };
    steps.push(format!("Run `swarmseal -e {env} apply`, then {deploy}."));
    let mut text = "\nNext:".to_string();
    for (i, step) in steps.iter().enumerate() {
        text.push_str(&format!("\n  {}. {step}", i + 1));
    }
    text
}

/// A path as a shell word: quoted when it has anything but letters, digits and `_./-`.
fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
