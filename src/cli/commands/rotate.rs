//! `swarmseal rotate NAME... | --due`: new values for generated secrets, in the repository
//! (see [`crate::repo::rotate`]), and what to commit, plan and apply next.
//!
//! `NAME...` works on one environment; `--due` on those given with `-e`, else every one, as
//! `check` does. Due secrets that have no `generate:` are listed for a person and do not
//! fail the command: a scheduled job still opens its pull request for what it did, and
//! `check` is what fails on overdue values.

use serde::Serialize;

use crate::cli::args::RotateArgs;
use crate::cli::context::Context;
use crate::cli::output::Format;
use crate::cli::report::{self, Report};
use crate::domain::text::{duration, plural};
use crate::error::Result;
use crate::plan::render::Heading;
use crate::repo::rotate::{self, Age, DueRotation, NotGenerated, Rotated};
use crate::repo::Repo;

/// Files named one by one in the advice; beyond, they are counted.
const FEW_FILES: usize = 10;

pub fn run(cx: &Context, args: RotateArgs) -> Result<i32> {
    let repo = cx.repo()?;
    let (envs, done) = if args.due {
        let envs = cx.envs()?;
        let done = rotate::rotate_due(repo, &envs)?;
        (envs, done)
    } else {
        let env = cx.env()?;
        let rotated = rotate::rotate_named(repo, &env, &args.names)?;
        let done = DueRotation {
            rotated,
            not_generated: Vec::new(),
        };
        (vec![env], done)
    };
    let report = Rotation::new(repo, envs, &done);
    if report.rotated.is_empty() && report.not_generated.is_empty() && cx.format() == Format::Human
    {
        cx.say(format!(
            "nothing is due for rotation in {}",
            report.environments.join(", ")
        ));
    } else {
        report::emit(cx, &report)?;
    }
    Ok(0)
}

/// What `rotate` did, as a report: a table for people, markdown for a pull request's
/// description, JSON for scripts.
#[derive(Serialize)]
struct Rotation {
    project: String,
    environments: Vec<String>,
    rotated: Vec<RotatedEntry>,
    /// Due secrets without `generate:` (`--due` only): not rotated.
    not_generated: Vec<DueEntry>,
    /// The files to commit: the secrets' files and the index; empty when nothing was written.
    commit: Vec<String>,
    /// The environments, for the heading.
    #[serde(skip)]
    covered: String,
}

#[derive(Serialize)]
struct RotatedEntry {
    secret: String,
    environment: String,
    file: String,
    /// The environment had no file for the secret yet.
    created: bool,
    length: usize,
    charset: &'static str,
    /// Why it was due (`--due` only).
    due: Option<Due>,
}

#[derive(Serialize)]
struct DueEntry {
    secret: String,
    environment: String,
    file: String,
    due: Due,
}

/// Why a value was due: `overdue` (with its age), `no_change_date` or `untrusted_change_date`.
#[derive(Serialize)]
struct Due {
    code: &'static str,
    /// How long ago the value changed, when overdue.
    age_seconds: Option<u64>,
}

impl From<Age> for Due {
    fn from(age: Age) -> Due {
        let (code, age_seconds) = match age {
            Age::Overdue(d) => ("overdue", Some(d.as_secs())),
            Age::Unknown => ("no_change_date", None),
            Age::Untrusted { .. } | Age::Fresh => ("untrusted_change_date", None),
        };
        Due { code, age_seconds }
    }
}

impl Due {
    /// As people read it: `91d old`, `age unknown`.
    fn words(&self) -> String {
        match (self.code, self.age_seconds) {
            ("overdue", Some(secs)) => {
                format!("{} old", duration(std::time::Duration::from_secs(secs)))
            }
            ("no_change_date", _) => "no change date recorded".into(),
            _ => "change date not believable".into(),
        }
    }
}

impl Rotation {
    fn new(repo: &Repo, environments: Vec<String>, done: &DueRotation) -> Rotation {
        let rotated: Vec<RotatedEntry> = done.rotated.iter().map(RotatedEntry::from).collect();
        let mut commit: Vec<String> = rotated.iter().map(|r| r.file.clone()).collect();
        if !commit.is_empty() {
            commit.push(repo.rel(&repo.index_path()).display().to_string());
        }
        Rotation {
            project: repo.manifest.project.clone(),
            covered: environments.join(", "),
            environments,
            rotated,
            not_generated: done.not_generated.iter().map(DueEntry::from).collect(),
            commit,
        }
    }

    /// The environments whose values changed, in order, each once.
    fn changed_environments(&self) -> Vec<&str> {
        let mut envs: Vec<&str> = Vec::new();
        for r in &self.rotated {
            if !envs.contains(&r.environment.as_str()) {
                envs.push(&r.environment);
            }
        }
        envs
    }

    /// What to do with the new files: commit them, then plan and apply.
    fn next_steps(&self) -> Option<String> {
        let (index, files) = self.commit.split_last()?;
        let named = if files.len() <= FEW_FILES {
            files.join(", ")
        } else {
            format!("{} under secrets/", plural(files.len(), "file"))
        };
        let deploy = self
            .changed_environments()
            .iter()
            .map(|env| format!("`swarmseal -e {env} plan` and `swarmseal -e {env} apply`"))
            .collect::<Vec<_>>()
            .join(", ");
        Some(format!(
            "Next: commit {named} and {index} (in a pull request if you review changes), then run {deploy}: the services using the secrets restart with the new values."
        ))
    }

    /// What a person has to do about the due secrets rotate cannot regenerate.
    fn left_over(&self) -> Option<String> {
        let first = self.not_generated.first()?;
        let one = self.not_generated.len() == 1;
        Some(format!(
            "{} due for rotation {} no `generate:` in swarmseal.yaml and {} not rotated: set {} yourself (`swarmseal -e {} set {}`), or add e.g. `generate: {{ length: 32, charset: alnum }}` to {} settings so that `rotate --due` takes care of {}.",
            plural(self.not_generated.len(), "secret"),
            if one { "has" } else { "have" },
            if one { "was" } else { "were" },
            if one { "a new value" } else { "new values" },
            first.environment,
            if one { first.secret.as_str() } else { "NAME" },
            if one { "its" } else { "their" },
            if one { "it" } else { "them" },
        ))
    }
}

impl From<&Rotated> for RotatedEntry {
    fn from(r: &Rotated) -> RotatedEntry {
        RotatedEntry {
            secret: r.name.clone(),
            environment: r.env.clone(),
            file: r.rel.display().to_string(),
            created: r.created,
            length: r.generate.length,
            charset: r.generate.charset.name(),
            due: r.age.map(Due::from),
        }
    }
}

impl From<&NotGenerated> for DueEntry {
    fn from(n: &NotGenerated) -> DueEntry {
        DueEntry {
            secret: n.name.clone(),
            environment: n.env.clone(),
            file: n.rel.display().to_string(),
            due: n.age.into(),
        }
    }
}

impl Report for Rotation {
    fn header(&self) -> &'static [&'static str] {
        &["SECRET", "ENVIRONMENT", "FILE", "RESULT"]
    }

    fn rows(&self) -> Vec<Vec<String>> {
        let rotated = self.rotated.iter().map(|r| {
            let what = format!("{} {} characters", r.length, r.charset);
            let result = match (&r.due, r.created) {
                (_, true) => format!("created: {what}"),
                (Some(due), _) => format!("rotated: {what} (was {})", due.words()),
                (None, _) => format!("rotated: {what}"),
            };
            vec![
                r.secret.clone(),
                r.environment.clone(),
                r.file.clone(),
                result,
            ]
        });
        let left = self.not_generated.iter().map(|n| {
            let result = format!("not rotated, no generate: ({})", n.due.words());
            vec![
                n.secret.clone(),
                n.environment.clone(),
                n.file.clone(),
                result,
            ]
        });
        rotated.chain(left).collect()
    }

    fn heading(&self) -> Option<Heading<'_>> {
        Some(Heading {
            command: "rotate",
            project: &self.project,
            environment: &self.covered,
            swarm: None,
        })
    }

    fn epilogue(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.next_steps().into_iter().collect();
        lines.extend(self.left_over());
        if lines.is_empty() {
            lines.push("Nothing is due for rotation.".into());
        }
        lines
    }
}
