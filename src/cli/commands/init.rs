//! `swarmseal init`: a new repository.

use std::path::{Path, PathBuf};

use crate::cli::args::InitArgs;
use crate::cli::context::Context;
use crate::cli::output;
use crate::crypto::{self};
use crate::domain::names;
use crate::domain::text::clean;
use crate::error::{Error, Result};
use crate::repo::manifest::MANIFEST_FILE;

pub fn run(cx: &Context, args: InitArgs) -> Result<i32> {
    let g = &cx.global;
    let root = match &g.repo {
        Some(dir) => dir.clone(),
        None => std::env::current_dir()
            .map_err(|e| Error::new(format!("cannot read the current folder: {e}")))?,
    };
    let manifest_path = root.join(MANIFEST_FILE);
    if std::fs::symlink_metadata(&manifest_path).is_ok() {
        warn_example_keys(&root);
        return Err(Error::new(format!("{} already exists", manifest_path.display()))
            .hint("this folder is already a swarmseal repository; edit swarmseal.yaml, or init elsewhere with -C DIR"));
    }
    std::fs::create_dir_all(&root).map_err(|e| Error::io("create", &root, e))?;

    let project = match args.project {
        Some(p) => p,
        None => default_project(&root)?,
    };
    names::check_scope_name("project", &project)
        .map_err(|e| Error::new(e).hint("choose a name with --project NAME"))?;
    let envs = if g.env.is_empty() {
        vec!["default".to_string()]
    } else {
        g.env.clone()
    };
    check_environments(&envs)?;
    let recipients = if args.recipients.is_empty() {
        vec![own_recipient(cx)?]
    } else {
        args.recipients
            .iter()
            .map(|r| parse_named_recipient(r))
            .collect::<Result<Vec<_>>>()?
    };

    if let Some((dup, _)) = recipients
        .iter()
        .enumerate()
        .find(|(i, (n, _))| recipients[..*i].iter().any(|(m, _)| m == n))
        .map(|(_, r)| r)
    {
        return Err(Error::new(format!("--recipient {dup} is given twice"))
            .hint("give each recipient one name and one key"));
    }
    let repo = crate::repo::create::create(&root, &project, &envs, &recipients)?;

    cx.say(format!(
        "Created a swarmseal repository for project {project:?} in {}",
        repo.root.display()
    ));
    cx.say(format!("  environments: {}", envs.join(", ")));
    cx.say(format!(
        "  recipients:   {}",
        recipients
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    cx.say("To see decrypted values in `git diff`, run once in this repository:");
    cx.say("  git config diff.swarmseal.textconv \"swarmseal textconv\"");
    cx.say(
        "Next: store a secret with `swarmseal set NAME` (the value is read from standard input).",
    );
    Ok(0)
}

/// In a folder that already is a repository (a copy of `secrets.example`?): warns about
/// each environment whose fingerprint key is one of the example's.
fn warn_example_keys(root: &Path) {
    let dir = root.join(".swarmseal").join("fingerprint");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut envs: Vec<(String, Vec<u8>)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let env = name.strip_suffix(".age")?.to_string();
            // A fingerprint key file is a few hundred bytes.
            let small_file = e.metadata().is_ok_and(|m| m.is_file() && m.len() < 1 << 16);
            small_file.then(|| Some((env, std::fs::read(e.path()).ok()?)))?
        })
        .collect();
    envs.sort();
    for (env, bytes) in envs {
        if crate::repo::example::is_example_key(&bytes, None) {
            let (message, hint) = crate::repo::example::warning(&clean(&env));
            output::warn(&format!("{message}; {hint}"));
        }
    }
}

/// The environments to create: valid names, each once.
fn check_environments(envs: &[String]) -> Result<()> {
    for env in envs {
        names::check_scope_name("environment", env)
            .map_err(|e| Error::new(e).hint("choose another name with --env NAME"))?;
    }
    if let Some(dup) = envs
        .iter()
        .enumerate()
        .find(|(i, e)| envs[..*i].contains(e))
        .map(|(_, e)| e)
    {
        return Err(
            Error::new(format!("-e {dup} is given twice")).hint("name each environment once")
        );
    }
    Ok(())
}

fn default_project(root: &Path) -> Result<String> {
    let name = std::fs::canonicalize(root)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_default();
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    if cleaned.is_empty() {
        return Err(Error::new(format!(
            "cannot derive a project name from the folder name {name:?}"
        ))
        .hint("choose one with --project NAME"));
    }
    Ok(cleaned)
}

fn parse_named_recipient(arg: &str) -> Result<(String, String)> {
    let Some((name, key)) = arg.split_once('=') else {
        return Err(Error::new(format!("--recipient {arg:?} is not NAME=KEY"))
            .hint("write it as --recipient alice=age1..."));
    };
    crypto::parse_recipient(key).map_err(|e| {
        Error::new(format!("--recipient {name}: {e}"))
            .hint("pass a public key: age1..., ssh-ed25519 ... or ssh-rsa ...")
    })?;
    Ok((name.trim().to_string(), key.trim().to_string()))
}

/// The first recipient when none is given: the loaded identity's public key, or a new
/// identity at the default path.
fn own_recipient(cx: &Context) -> Result<(String, String)> {
    let name = recipient_name();
    if let Some(ids) = cx.identities()? {
        let Some(key) = ids.public_keys().first() else {
            return Err(Error::new(format!(
                "the identity {} has no public key swarmseal can read",
                ids.describe()
            ))
            .hint("pass your public key with --recipient NAME=KEY"));
        };
        cx.say(format!(
            "Using the public key of {} as recipient {name:?}",
            ids.describe()
        ));
        return Ok((name, key.clone()));
    }
    let path: PathBuf = crypto::default_identity_path().ok_or_else(|| {
        Error::new("no identity found, and no home folder to create one in")
            .hint("create one with `swarmseal keygen -o FILE` and pass -i FILE, or pass --recipient NAME=KEY")
    })?;
    let public = crate::cli::context::write_identity(&path)?;
    cx.say(format!("Created a new identity at {}", path.display()));
    cx.say(format!("  public key: {public}"));
    cx.say("  Back it up: without it (or another recipient's identity) the secrets cannot be decrypted.");
    Ok((name, public))
}

fn recipient_name() -> String {
    let user = std::env::var("USER").unwrap_or_default();
    let cleaned: String = user
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .collect();
    if cleaned.is_empty() || !cleaned.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        "admin".into()
    } else {
        cleaned
    }
}
