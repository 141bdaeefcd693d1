//! `swarmseal check`: every local check (the README's "What `check` knows"), without the Swarm.

use std::collections::hash_map::{Entry, HashMap};
use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::cli::args::{CheckArgs, Global};
use crate::cli::context::Context;
use crate::cli::output::{self, Format};
use crate::cli::progress::{number, FEW};
use crate::crypto::{self, Identities, ScopeKind};
use crate::domain::names;
use crate::domain::text::plural;
use crate::error::Result;
use crate::repo::index::{Index, Record};
use crate::repo::{configs, rotate, secrets};
use crate::repo::{LockMode, Repo};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Level {
    Error,
    Warning,
}

struct Finding {
    level: Level,
    file: String,
    message: String,
    hint: String,
    /// How to say it of several files at once: message and hint, `{n}` for how many.
    /// Without it, several files are named before the message as it is.
    many: Option<(String, String)>,
}

impl Finding {
    /// What findings of several files share to be told together: the level, and the
    /// wording for several files, or else the message and hint.
    fn group_key(&self) -> (Level, &str, &str) {
        match &self.many {
            Some((message, hint)) => (self.level, message, hint),
            None => (self.level, &self.message, &self.hint),
        }
    }
}

struct Findings(Vec<Finding>);

impl Findings {
    fn push(
        &mut self,
        level: Level,
        file: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.0.push(Finding {
            level,
            file: file.into(),
            message: message.into(),
            hint: hint.into(),
            many: None,
        });
    }
    fn error(
        &mut self,
        file: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(Level::Error, file, message, hint)
    }
    fn warning(
        &mut self,
        file: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(Level::Warning, file, message, hint)
    }
    /// How to say the last finding of several files at once (`{n}`: how many).
    fn many(&mut self, message: impl Into<String>, hint: impl Into<String>) {
        if let Some(last) = self.0.last_mut() {
            last.many = Some((message.into(), hint.into()));
        }
    }
}

pub fn run(cx: &Context, args: CheckArgs) -> Result<i32> {
    let g = &cx.global;
    let repo = cx.repo()?;
    let envs = cx.envs()?;
    let ids = cx.identities()?;
    let _lock = repo.lock(LockMode::Shared)?;
    let index = repo.load_index()?;
    let mut f = Findings(Vec::new());
    let mut checked = 0usize;
    if ids.is_none() {
        f.warning(
            "",
            "no identity: values were not decrypted, so decryptability and sizes are not checked",
            "pass -i FILE, or set SWARMSEAL_IDENTITY or SWARMSEAL_AGE_KEY",
        );
    }
    for problem in repo.scan_outside_envs()? {
        let err = problem.to_error();
        let (file, message, hint) = (
            problem.rel().display().to_string(),
            err.message().to_string(),
            err.hint_text().unwrap_or_default().to_string(),
        );
        match problem {
            crate::repo::Problem::Stray { .. } => f.warning(file, message, hint),
            _ => f.error(file, message, hint),
        }
    }
    if !crate::repo::gitattributes::protects_keys(repo) {
        f.warning(
            ".gitattributes",
            "`git diff` may decrypt the fingerprint keys (.swarmseal/fingerprint/*.age) through `swarmseal textconv`",
            "add the line `.swarmseal/**/*.age -diff` to .gitattributes (`swarmseal init` writes it in new repositories)",
        );
    }
    for env in &envs {
        checked += check_env(repo, env, ids, &index, args.max_age, &mut f)?;
    }
    if envs.len() == repo.manifest.environments.len() {
        check_stale_environments(repo, &index, &mut f);
    }
    for name in repo.manifest.secrets.keys() {
        let known = envs.iter().any(|env| {
            repo.scan(env)
                .map(|s| s.secrets.contains_key(name))
                .unwrap_or(false)
        });
        if !known && envs.len() == repo.manifest.environments.len() {
            f.warning(
                repo.rel(&repo.manifest_path()).display().to_string(),
                format!("settings for secret {name:?}, which no environment has"),
                "remove the settings or fix the name",
            );
        }
    }
    report(g, &f, checked, &envs)?;
    Ok(if f.0.iter().any(|x| x.level == Level::Error) {
        1
    } else {
        0
    })
}

fn check_env(
    repo: &Repo,
    env: &str,
    ids: Option<&Identities>,
    index: &Index,
    max_age: Option<Duration>,
    f: &mut Findings,
) -> Result<usize> {
    let scan = repo.scan(env)?;
    report_problems(&scan, f);
    let current = repo.manifest.env_recipients(env)?;
    // Decrypt only where the identity is meant to be a recipient: a staging-only key is
    // not an error in production.
    let decrypting = ids.filter(|ids| current.iter().any(|(_, key)| ids.holds(key)));
    if let Some(ids) = ids {
        if decrypting.is_none() {
            f.warning(
                format!("secrets/{env}"),
                format!(
                    "your identity ({}) is not a recipient of {env}: its values were not decrypted",
                    ids.describe()
                ),
                format!("check {env} with an identity of one of its recipients"),
            );
        }
    }

    check_fingerprint_key(repo, env, index, &current, decrypting, f);
    check_exec_variables(env, &scan, f);
    check_stale_records(repo, env, index, &scan, f);
    for (name, file) in &scan.secrets {
        let rel = file.rel.display().to_string();
        let bytes = match repo.read(&file.path) {
            Ok(b) => b,
            Err(e) => {
                f.error(&rel, e.message(), e.hint_text().unwrap_or("check the file"));
                continue;
            }
        };
        let record = index.record(env, name);
        let check = FileCheck {
            repo,
            env,
            kind: ScopeKind::Secret,
            path: &file.path,
            rel: &rel,
        };
        check.check(&bytes, record, &current, decrypting, f);

        let settings = repo.manifest.settings(name);
        let rotate_after = settings.and_then(|s| s.rotate_after);
        let generated = settings.is_some_and(|s| s.generate.is_some());
        let limit = match (rotate_after, max_age) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(limit) = limit {
            check_rotation(env, name, &rel, record, limit, generated, f);
        }
    }
    check_configs(repo, env, index, &current, decrypting, f)?;
    Ok(scan.secrets.len())
}

/// The problems a scan found (names that map to nothing, links, stray files...), as errors.
fn report_problems(scan: &crate::repo::Scan, f: &mut Findings) {
    for problem in &scan.problems {
        let err = problem.to_error();
        f.error(
            problem.rel().display().to_string(),
            err.message(),
            err.hint_text().unwrap_or_default(),
        );
    }
}

/// The environment's configs (`configs/<env>/`): a plain one within Docker's size limit;
/// an encrypted one (`.age`) checked as a secret file is (an age file of this environment,
/// its recipients, decryptable, its size).
fn check_configs(
    repo: &Repo,
    env: &str,
    index: &Index,
    current: &[(String, String)],
    ids: Option<&Identities>,
    f: &mut Findings,
) -> Result<()> {
    let scan = repo.scan_configs(env)?;
    report_problems(&scan, f);
    for (name, file) in &scan.secrets {
        let rel = file.rel.display().to_string();
        let bytes = match repo.read_config(&file.path) {
            Ok(b) => b,
            Err(e) => {
                f.error(&rel, e.message(), e.hint_text().unwrap_or("check the file"));
                continue;
            }
        };
        if !configs::is_encrypted(file) {
            if let Err(e) = configs::check_size(&file.rel, bytes.len()) {
                f.error(
                    &rel,
                    config_problem(&e, &rel),
                    e.hint_text().unwrap_or_default(),
                );
            }
            continue;
        }
        if !crypto::looks_like_age(&bytes) {
            f.error(
                &rel,
                "not an age file, but its name ends in .age (an encrypted config): if it holds something secret, it is a leak",
                "encrypt it with `age` to the environment's recipients (their keys are in swarmseal.yaml), or drop .age from its name to keep it a plain config",
            );
            continue;
        }
        let record = index.env(env).and_then(|e| e.configs.get(name));
        let check = FileCheck {
            repo,
            env,
            kind: ScopeKind::Config,
            path: &file.path,
            rel: &rel,
        };
        check.check(&bytes, record, current, ids, f);
    }
    Ok(())
}

/// A config size error's message without the file it names (the finding leads with it).
fn config_problem(e: &crate::error::Error, rel: &str) -> String {
    e.message()
        .replace(&format!("config {rel} "), "the config ")
}

/// The environment's fingerprint key: present, readable, of this environment.
fn check_fingerprint_key(
    repo: &Repo,
    env: &str,
    index: &Index,
    current: &[(String, String)],
    decrypting: Option<&Identities>,
    f: &mut Findings,
) {
    let key_path = repo.fingerprint_key_path(env);
    let key_rel = repo.rel(&key_path).display().to_string();
    match repo.read_optional(&key_path) {
        Ok(None) => f.error(
            &key_rel,
            format!("the fingerprint key of {env} is missing"),
            "restore it from git, or run `swarmseal rekey` to create a new one",
        ),
        Err(e) => f.error(&key_rel, e.message(), e.hint_text().unwrap_or_default()),
        Ok(Some(bytes)) => {
            let record = index.env(env).and_then(|e| e.fingerprint_key.as_ref());
            let file = FileCheck {
                repo,
                env,
                kind: ScopeKind::FingerprintKey,
                path: &key_path,
                rel: &key_rel,
            };
            file.check(&bytes, record, current, decrypting, f);
            if crate::repo::example::is_example_key(&bytes, decrypting) {
                let (message, hint) = crate::repo::example::warning(env);
                f.warning(&key_rel, message, hint);
            }
        }
    }
}

/// Records the index keeps for secret files that are gone (deleted by hand).
fn check_stale_records(
    repo: &Repo,
    env: &str,
    index: &Index,
    scan: &crate::repo::Scan,
    f: &mut Findings,
) {
    let stale = crate::repo::index::stale(index, env, scan);
    if stale.is_empty() {
        return;
    }
    // Names come from the index, which a pull request controls: valid names only.
    let shown: Vec<&str> = stale
        .iter()
        .map(String::as_str)
        .filter(|n| names::name_problem(n).is_none())
        .take(FEW)
        .collect();
    let more = stale.len() - shown.len();
    let listed = match (shown.is_empty(), more) {
        (true, _) => String::new(),
        (false, 0) => format!(": {}", shown.join(", ")),
        (false, _) => format!(": {} and {} more", shown.join(", "), number(more)),
    };
    f.warning(
        repo.rel(&repo.index_path()).display().to_string(),
        format!(
            "the index still records {} of {env} whose files are gone{listed}",
            plural(stale.len(), "secret")
        ),
        format!("run `swarmseal -e {env} rekey` to drop them (so does any `set`, `edit` or `rm` in {env}), and commit the index"),
    );
}

/// Environments the index records that the manifest no longer has (and that left no files).
fn check_stale_environments(repo: &Repo, index: &Index, f: &mut Findings) {
    let gone = crate::repo::index::stale_environments(repo, index);
    if gone.is_empty() {
        return;
    }
    f.warning(
        repo.rel(&repo.index_path()).display().to_string(),
        format!(
            "the index still records {} that swarmseal.yaml no longer has",
            plural(gone.len(), "environment")
        ),
        "run `swarmseal rekey` to drop them, and commit the index",
    );
}

/// Secrets that `exec` would pass under the same variable name.
fn check_exec_variables(env: &str, scan: &crate::repo::Scan, f: &mut Findings) {
    let mut variables: std::collections::BTreeMap<String, &str> = std::collections::BTreeMap::new();
    for name in scan.secrets.keys() {
        if let Some(other) = variables.insert(names::env_variable(name), name) {
            f.warning(
                format!("secrets/{env}"),
                format!(
                    "{other} and {name} would both be passed as {} by `swarmseal exec`, which refuses them",
                    names::env_variable(name)
                ),
                "rename one of them",
            );
        }
    }
}

/// Fails a secret whose value is older than its rotation limit (`rotate_after`, or
/// `--max-age`), or whose recorded change date cannot be trusted.
fn check_rotation(
    env: &str,
    name: &str,
    rel: &str,
    record: Option<&Record>,
    limit: Duration,
    generated: bool,
    f: &mut Findings,
) {
    let set = if generated {
        format!("`swarmseal -e {env} rotate {name}`")
    } else {
        format!("`swarmseal -e {env} set {name}`")
    };
    match rotate::age(record, limit, SystemTime::now()) {
        rotate::Age::Fresh => {}
        // A date that is not one, or one in the future, would switch the limit off.
        rotate::Age::Untrusted { future } => f.error(
            rel,
            format!(
                "{name} has a rotation limit, but the index records its last change {}, so the limit cannot be checked",
                if future { "in the future" } else { "with something that is not a date" }
            ),
            format!("restore .swarmseal/index.yaml from git, or set a new value with {set} to start the clock again"),
        ),
        rotate::Age::Overdue(age) => f.error(
            rel,
            format!(
                "{name} is overdue for rotation: its value last changed {}, the limit is {}",
                crate::domain::text::ago(age),
                crate::domain::text::duration(limit)
            ),
            if generated {
                format!("regenerate it: {set} (or `swarmseal rotate --due` for every generated secret that is due)")
            } else {
                format!("set a new value: `swarmseal -e {env} set {name} --generate` (or from stdin)")
            },
        ),
        rotate::Age::Unknown => {
            f.warning(
                rel,
                format!("{name} has a rotation limit but swarmseal has no record of when its value changed"),
                format!("set the value with {set} to start the clock"),
            );
            f.many(
                "{n} secrets have a rotation limit but swarmseal has no record of when their values changed",
                format!("set their values with `swarmseal -e {env} set NAME` to start the clock"),
            );
        }
    }
}

/// One age file of the repository, for [`FileCheck::check`].
struct FileCheck<'a> {
    repo: &'a Repo,
    env: &'a str,
    kind: ScopeKind,
    path: &'a std::path::Path,
    rel: &'a str,
}

impl FileCheck<'_> {
    fn check(
        &self,
        bytes: &[u8],
        record: Option<&Record>,
        current: &[(String, String)],
        ids: Option<&Identities>,
        f: &mut Findings,
    ) {
        let rel = self.rel;
        if !crypto::looks_like_age(bytes) {
            f.error(rel, "not an age file: a plaintext file under the repository is a leak", "remove it (and purge it from git history if it was pushed), then store the value with `swarmseal set`");
            f.many("{n} files are not age files: plaintext files under the repository are a leak", "remove them (and purge them from git history if they were pushed), then store the values with `swarmseal set`");
            return;
        }
        self.check_recipients(bytes, record, current, f);
        let Some(ids) = ids else { return };
        match self
            .repo
            .open_sealed(self.env, self.kind, self.path, bytes, ids, None)
        {
            Ok(opened) => self.check_value(&opened.value, f),
            // The file's own name leads the finding; the error's message names it too.
            Err(e) => f.error(
                rel,
                e.message()
                    .strip_prefix(rel)
                    .map(|m| m.trim_start_matches(':').trim_start())
                    .unwrap_or(e.message()),
                e.hint_text().unwrap_or_default(),
            ),
        }
    }

    /// Whether the file is encrypted to the current recipients, as far as the index tells.
    fn check_recipients(
        &self,
        bytes: &[u8],
        record: Option<&Record>,
        current: &[(String, String)],
        f: &mut Findings,
    ) {
        let rel = self.rel;
        match secrets::recipient_state(record, bytes, current) {
            secrets::RecipientState::Current => {}
            secrets::RecipientState::Unknown => {
                let (one, many) = if record.is_none() {
                    (
                        "swarmseal has no record of this file, so it cannot tell whom it is encrypted to",
                        "swarmseal has no record of {n} files, so it cannot tell whom they are encrypted to",
                    )
                } else {
                    (
                        "the file changed since swarmseal wrote it (age CLI? merge?), so swarmseal cannot tell whom it is encrypted to",
                        "{n} files changed since swarmseal wrote them (age CLI? merge?), so swarmseal cannot tell whom they are encrypted to",
                    )
                };
                f.warning(rel, one, "run `swarmseal rekey` to re-encrypt it to the current recipients and record it");
                f.many(many, "run `swarmseal rekey` to re-encrypt them to the current recipients and record them");
            }
            secrets::RecipientState::Stale { missing, extra } => {
                let mut parts = Vec::new();
                if !missing.is_empty() {
                    parts.push(format!("not readable by {}", missing.join(", ")));
                }
                if extra > 0 {
                    parts.push(format!(
                        "still readable by {} that are no longer recipients",
                        plural(extra, "key")
                    ));
                }
                let parts = parts.join("; ");
                f.error(
                    rel,
                    format!("not encrypted to the current recipients: {parts}"),
                    "run `swarmseal rekey`",
                );
                f.many(
                    format!("{{n}} files are not encrypted to the current recipients: {parts}"),
                    "run `swarmseal rekey`",
                );
            }
        }
    }

    /// The decrypted value: a fingerprint key's length, a secret's size.
    fn check_value(&self, value: &[u8], f: &mut Findings) {
        let rel = self.rel;
        if self.kind == ScopeKind::Config {
            if let Err(e) = configs::check_size(std::path::Path::new(rel), value.len()) {
                f.error(
                    rel,
                    config_problem(&e, rel),
                    e.hint_text().unwrap_or_default(),
                );
            }
        } else if self.kind == ScopeKind::FingerprintKey
            && value.len() != crypto::FINGERPRINT_KEY_LEN
        {
            f.error(
                rel,
                "does not hold a fingerprint key",
                "restore it from git",
            );
        } else if value.is_empty() {
            f.error(
                rel,
                "the value is empty; Docker secrets hold 1 to 511999 bytes",
                "set a value with `swarmseal set`",
            );
            f.many(
                "{n} values are empty; Docker secrets hold 1 to 511999 bytes",
                "set values with `swarmseal set`",
            );
        } else if value.len() > crypto::MAX_VALUE_LEN {
            f.error(
                rel,
                "the value is larger than Docker's limit of 511999 bytes",
                "set a smaller value",
            );
            f.many(
                "{n} values are larger than Docker's limit of 511999 bytes",
                "set smaller values",
            );
        }
    }
}

/// Findings told together: those of several files with the same wording.
struct Group<'a> {
    first: &'a Finding,
    files: Vec<&'a str>,
}

impl Group<'_> {
    /// The message and hint: the finding's own for one file, else the wording for several.
    fn wording(&self) -> (String, String) {
        let (first, n) = (self.first, self.files.len());
        match &first.many {
            _ if n == 1 => (first.message.clone(), first.hint.clone()),
            Some((message, hint)) => (
                message.replace("{n}", &number(n)),
                hint.replace("{n}", &number(n)),
            ),
            None => (
                format!("{} files: {}", number(n), first.message),
                first.hint.clone(),
            ),
        }
    }

    /// The files to name (all with `-v`, else the first few), and how many are left out.
    fn named(&self, verbose: bool) -> (&[&str], usize) {
        let shown = if verbose {
            self.files.len()
        } else {
            self.files.len().min(FEW)
        };
        (&self.files[..shown], self.files.len() - shown)
    }
}

/// The findings grouped by wording, in the order first found: 9,999 files written by the
/// age CLI are one warning, not 9,999.
fn groups(f: &Findings) -> Vec<Group<'_>> {
    let mut at: HashMap<(Level, &str, &str), usize> = HashMap::new();
    let mut out: Vec<Group<'_>> = Vec::new();
    for x in &f.0 {
        match at.entry(x.group_key()) {
            Entry::Occupied(e) => out[*e.get()].files.push(&x.file),
            Entry::Vacant(e) => {
                e.insert(out.len());
                out.push(Group {
                    first: x,
                    files: vec![&x.file],
                });
            }
        }
    }
    out
}

fn level(l: Level) -> &'static str {
    match l {
        Level::Error => "error",
        Level::Warning => "warning",
    }
}

fn report(g: &Global, f: &Findings, checked: usize, envs: &[String]) -> Result<()> {
    let errors = f.0.iter().filter(|x| x.level == Level::Error).count();
    let warnings = f.0.len() - errors;
    match g.format {
        // Scripts get every finding of every file.
        Format::Json => {
            let list: Vec<_> = f
                .0
                .iter()
                .map(|x| json!({"level": level(x.level), "file": x.file, "message": x.message, "hint": x.hint}))
                .collect();
            crate::cli::output::outln!(
                "{}",
                json!({"ok": errors == 0, "environments": envs, "secrets_checked": checked, "errors": errors, "warnings": warnings, "findings": list})
            )?;
        }
        Format::Markdown => {
            crate::cli::output::outln!(
                "### swarmseal check: {}",
                if errors == 0 { "passed" } else { "failed" }
            )?;
            for group in groups(f) {
                markdown_group(&group, g.verbose)?;
            }
        }
        Format::Human => {
            for group in groups(f) {
                if g.quiet && group.first.level == Level::Warning {
                    continue;
                }
                human_group(&group, g.verbose);
            }
            if !g.quiet || errors > 0 {
                crate::cli::output::errln!(
                    "check {}: {} in {}; {}, {}",
                    if errors == 0 { "passed" } else { "failed" },
                    plural(checked, "secret"),
                    envs.join(", "),
                    plural(errors, "error"),
                    plural(warnings, "warning")
                );
            }
        }
    }
    Ok(())
}

/// One finding, or one of several files, for people on standard error: the message, the
/// files (if several), the hint.
fn human_group(group: &Group<'_>, verbose: bool) {
    let on = output::colour(false);
    let x = group.first;
    let tag = match x.level {
        Level::Error => output::paint(on, "1;31", "error:"),
        Level::Warning => output::paint(on, "1;33", "warning:"),
    };
    let (message, hint) = group.wording();
    if group.files.len() == 1 {
        // Messages that start with the file's name need no prefix.
        let place = if x.file.is_empty() || x.message.starts_with(&x.file) {
            String::new()
        } else {
            format!("{}: ", x.file)
        };
        crate::cli::output::errln!("{tag} {place}{message}");
    } else {
        crate::cli::output::errln!("{tag} {message}:");
        let (named, more) = group.named(verbose);
        for file in named {
            crate::cli::output::errln!("  {file}");
        }
        if more > 0 {
            crate::cli::output::errln!("  and {} more (-v lists them)", number(more));
        }
    }
    if !hint.is_empty() {
        crate::cli::output::errln!("  {} {hint}", output::paint(on, "1;36", "hint:"));
    }
}

/// One finding, or one of several files, as a markdown list item.
fn markdown_group(group: &Group<'_>, verbose: bool) -> Result<()> {
    let x = group.first;
    let (message, hint) = group.wording();
    if group.files.len() == 1 {
        return crate::cli::output::outln!(
            "- **{}** `{}`: {message} ({hint})",
            level(x.level),
            x.file
        );
    }
    let (named, more) = group.named(verbose);
    let mut files: Vec<String> = named.iter().map(|f| format!("`{f}`")).collect();
    if more > 0 {
        files.push(format!("and {} more (-v lists them)", number(more)));
    }
    crate::cli::output::outln!(
        "- **{}** {message} ({hint}): {}",
        level(x.level),
        files.join(", ")
    )
}
