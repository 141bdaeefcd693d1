//! The manifest `swarmseal.yaml` (SPEC §1): parsing, validation and careful edits.
//!
//! Parsing deserializes the YAML with `serde-saphyr` into private "raw" structs whose
//! values carry their source location ([`Spanned`]), validates them, and builds the public
//! [`Manifest`]. Every error names the file and, where it points at a node, its line and
//! column, says what was expected, and carries a hint.
//!
//! Edits made by `swarmseal recipients add|rm` are textual: the YAML event stream (with
//! byte offsets) locates the nodes to change, and only those bytes are rewritten, so the
//! user's comments and layout survive. The edited text is parsed and validated again
//! before it is returned.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;
use std::time::Duration;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, StructureStyle};
use serde_saphyr::{Location, Spanned};

use crate::crypto;
use crate::domain::names;
use crate::error::{Error, ErrorKind, Result};

/// The manifest's file name at the root of a secrets repository.
pub const MANIFEST_FILE: &str = "swarmseal.yaml";

/// The only manifest format version this build understands.
const VERSION: u32 = 1;

/// Prefix of the labels swarmseal sets itself; secrets' own labels may not use it.
const RESERVED_LABEL_PREFIX: &str = "io.swarmseal.";

const TOP_KEYS: &[&str] = &[
    "version",
    "project",
    "recipients",
    "groups",
    "environments",
    "secrets",
    "keep_versions",
];
const ENV_KEYS: &[&str] = &["recipients", "docker_host", "swarm_id"];
const SECRET_KEYS: &[&str] = &["target", "uid", "gid", "mode", "labels", "rotate_after"];

/// A parsed and validated `swarmseal.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Manifest format version; always 1.
    pub version: u32,
    /// Scope of everything this repository manages on a Swarm.
    pub project: String,
    /// Recipient name -> public key text (trimmed).
    pub recipients: BTreeMap<String, String>,
    /// Group name -> members (recipient or group names), in the order written.
    pub groups: BTreeMap<String, Vec<String>>,
    pub environments: BTreeMap<String, Environment>,
    /// Logical secret name -> settings.
    pub secrets: BTreeMap<String, SecretSettings>,
    /// Superseded, unused Swarm versions kept for rollback (default 0).
    pub keep_versions: u32,
}

/// One environment (one target Swarm).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// Recipient and group names, in the order written.
    pub recipients: Vec<String>,
    /// `unix://`, `tcp://`, `ssh://` or `npipe://` endpoint, if pinned in the manifest.
    pub docker_host: Option<String>,
    /// The Swarm's cluster ID; plan and apply refuse any other Swarm.
    pub swarm_id: Option<String>,
}

/// Optional per-secret settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretSettings {
    /// File name inside containers when services are re-pointed.
    pub target: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    /// File mode, parsed from octal digits (`"0400"`, `400` and `0400` all mean 0o400).
    pub mode: Option<u32>,
    pub labels: BTreeMap<String, String>,
    /// `check` fails when the value is older than this.
    pub rotate_after: Option<Duration>,
}

impl Manifest {
    /// Reads, parses and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let not_found = e.kind() == std::io::ErrorKind::NotFound;
            let err = Error::io("read", path, e);
            if not_found {
                err.hint("run `swarmseal init` to create a repository, or pass -C DIR to use another one")
            } else {
                err
            }
        })?;
        Manifest::parse(&text, path)
    }

    /// Parses and validates manifest text; `path` is used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
        let raw = parse_raw(text, path).map_err(|e| e.or_kind(ErrorKind::Manifest))?;
        validate(raw, path).map_err(|e| e.or_kind(ErrorKind::Manifest))
    }

    /// The named environment; the error lists the known ones.
    pub fn environment(&self, name: &str) -> Result<&Environment> {
        self.environments.get(name).ok_or_else(|| {
            let known = self.environments.keys().cloned().collect::<Vec<_>>();
            Error::new(format!(
                "unknown environment {name:?} (not in {MANIFEST_FILE})"
            ))
            .with_kind(ErrorKind::NotFound)
            .hint(if known.is_empty() {
                format!("add it under environments: in {MANIFEST_FILE}")
            } else {
                format!(
                    "known environments: {}; choose one with -e NAME",
                    known.join(", ")
                )
            })
        })
    }

    /// Resolved recipients of an environment: (recipient name, key), groups expanded
    /// recursively, de-duplicated, in a stable order (first appearance).
    pub fn env_recipients(&self, env: &str) -> Result<Vec<(String, String)>> {
        let environment = self.environment(env)?;
        Ok(self
            .expand(&environment.recipients)
            .into_iter()
            .filter_map(|name| {
                let key = self.recipients.get(&name)?.clone();
                Some((name, key))
            })
            .collect())
    }

    /// The settings of a logical secret, if the manifest has any.
    pub fn settings(&self, secret: &str) -> Option<&SecretSettings> {
        self.secrets.get(secret)
    }

    /// Recipient names reached from `refs` (recipients and groups), groups expanded,
    /// de-duplicated in order of first appearance. Unknown names are skipped.
    fn expand(&self, refs: &[String]) -> Vec<String> {
        fn walk(
            m: &Manifest,
            name: &str,
            seen_groups: &mut HashSet<String>,
            out: &mut Vec<String>,
        ) {
            if m.recipients.contains_key(name) {
                if !out.iter().any(|n| n == name) {
                    out.push(name.to_string());
                }
            } else if let Some(members) = m.groups.get(name) {
                if seen_groups.insert(name.to_string()) {
                    for member in members {
                        walk(m, member, seen_groups, out);
                    }
                }
            }
        }
        let mut out = Vec::new();
        let mut seen_groups = HashSet::new();
        for name in refs {
            walk(self, name, &mut seen_groups, &mut out);
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// Raw (as written) form
// ---------------------------------------------------------------------------------------

/// A YAML mapping kept in document order, with the location of each key.
struct Entries<V>(Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<Spanned<String>, V>()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}

type Text = Spanned<String>;
type TextList = Spanned<Vec<Text>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    version: Option<Text>,
    project: Option<Text>,
    recipients: Option<Spanned<Entries<Text>>>,
    groups: Option<Spanned<Entries<Option<TextList>>>>,
    environments: Option<Spanned<Entries<Option<RawEnvironment>>>>,
    secrets: Option<Spanned<Entries<Option<RawSecret>>>>,
    keep_versions: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    recipients: Option<Spanned<Vec<Text>>>,
    docker_host: Option<Text>,
    swarm_id: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    target: Option<Text>,
    uid: Option<Text>,
    gid: Option<Text>,
    mode: Option<Text>,
    labels: Option<Spanned<Entries<Text>>>,
    rotate_after: Option<Text>,
}

impl RawManifest {
    fn recipient_names(&self) -> Vec<&str> {
        entry_names(self.recipients.as_ref().map(|r| &r.value))
    }
    fn group_names(&self) -> Vec<&str> {
        entry_names(self.groups.as_ref().map(|g| &g.value))
    }
    fn environment_names(&self) -> Vec<&str> {
        entry_names(self.environments.as_ref().map(|e| &e.value))
    }
}

fn entry_names<V>(entries: Option<&Entries<V>>) -> Vec<&str> {
    entries
        .map(|e| e.0.iter().map(|(k, _)| k.value.as_str()).collect())
        .unwrap_or_default()
}

/// `file:line:column` for a location, or just the file when the location is unknown.
fn at(path: &Path, loc: &Location) -> String {
    if loc.line() == 0 {
        path.display().to_string()
    } else {
        format!("{}:{}:{}", path.display(), loc.line(), loc.column())
    }
}

fn err_at<T>(path: &Path, spanned: &Spanned<T>, message: impl fmt::Display) -> Error {
    Error::new(format!("{}: {message}", at(path, &spanned.referenced)))
}

fn parse_raw(text: &str, path: &Path) -> Result<RawManifest> {
    let raw: RawManifest = serde_saphyr::from_str(text).map_err(|e| yaml_error(path, &e))?;
    let empty = raw.version.is_none()
        && raw.project.is_none()
        && raw.recipients.is_none()
        && raw.groups.is_none()
        && raw.environments.is_none()
        && raw.secrets.is_none()
        && raw.keep_versions.is_none();
    if empty {
        return Err(Error::new(format!("{}: the manifest is empty", path.display())).hint(
            "run `swarmseal init` to write one, or add version: 1, project:, recipients: and environments: (see the README)",
        ));
    }
    Ok(raw)
}

/// Turns a serde-saphyr error into `file:line:column: what was expected` plus a hint.
fn yaml_error(path: &Path, err: &serde_saphyr::Error) -> Error {
    let loc = err.location();
    let mut msg = err.without_snippet().to_string();
    let prefix = match &loc {
        Some(l) if l.line() > 0 => {
            let suffix = format!(" at line {}, column {}", l.line(), l.column());
            if let Some(stripped) = msg.strip_suffix(&suffix) {
                msg = stripped.to_string();
            }
            at(path, l)
        }
        _ => path.display().to_string(),
    };
    let section = |allowed: &str| -> &'static str {
        let list: Vec<&str> = allowed.split(", ").map(str::trim).collect();
        let same =
            |keys: &[&str]| keys.len() == list.len() && keys.iter().all(|k| list.contains(k));
        if same(TOP_KEYS) {
            "at the top level"
        } else if same(ENV_KEYS) {
            "in an environment"
        } else if same(SECRET_KEYS) {
            "in the settings of a secret"
        } else {
            "here"
        }
    };
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (key, allowed) = match rest.split_once('`') {
            Some((key, tail)) => {
                let allowed = tail
                    .trim_start_matches(',')
                    .trim()
                    .trim_start_matches("expected one of")
                    .trim_start_matches("expected")
                    .trim()
                    .replace('`', "");
                (key.to_string(), allowed)
            }
            None => (rest.to_string(), String::new()),
        };
        return Error::new(format!(
            "{prefix}: unknown key {key:?} {}; expected one of: {allowed}",
            section(&allowed)
        ))
        .hint(format!(
            "fix the spelling or remove the key; allowed keys {} are: {allowed}",
            section(&allowed)
        ));
    }
    if let Some(rest) = msg.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return Error::new(format!("{prefix}: duplicate key {key:?}"))
            .hint("each key may appear only once in a mapping; remove or rename one of them");
    }
    let (what, hint) = if msg.starts_with("multiple YAML documents") {
        (
            "the file holds more than one YAML document (---); expected a single document"
                .to_string(),
            "keep one document in the manifest",
        )
    } else if msg.starts_with("expected mapping start") {
        (
            "expected a mapping (key: value entries) here".to_string(),
            "recipients:, groups:, environments:, secrets:, each environment and each secret's settings are mappings (see the README)",
        )
    } else if msg.starts_with("expected sequence start") {
        (
            "expected a list here, such as [alice, bob]".to_string(),
            "the recipients of an environment and the members of a group are lists: [alice, admins] or one `- name` per line",
        )
    } else if msg.starts_with("expected string scalar") {
        (
            "expected a single value here, not a list or mapping".to_string(),
            "check the indentation and brackets at that line",
        )
    } else if msg.starts_with("cannot deserialize null into string") {
        (
            "expected a value here, found nothing".to_string(),
            "write a value after the colon or dash, or remove the entry",
        )
    } else {
        (
            format!("invalid YAML: {msg}"),
            "check the YAML at that line: indentation (spaces, not tabs), quotes, colons and brackets",
        )
    };
    Error::new(format!("{prefix}: {what}")).hint(hint)
}

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

/// Why a recipient or group name is invalid: `[A-Za-z0-9][A-Za-z0-9_.@-]*`.
fn recipient_name_problem(name: &str) -> Option<String> {
    let mut chars = name.chars();
    match chars.next() {
        None => Some("it is empty".into()),
        Some(c) if !c.is_ascii_alphanumeric() => {
            Some("it must start with a letter or digit".into())
        }
        _ => chars
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-')))
            .map(|c| {
                format!("it contains {c:?}; names may use letters, digits, '_', '.', '@' and '-'")
            }),
    }
}

/// Why a `target` cannot be used, or `None`: a relative path below `/run/secrets/` made
/// of letters, digits, '_', '.' and '-' (sub-folders with '/'), never absolute and never
/// with '..', so that a pull request cannot mount a secret over `/etc/passwd`.
fn target_problem(target: &str) -> Option<String> {
    if target.is_empty() {
        return Some("it is empty".into());
    }
    if target.starts_with('/') {
        return Some(format!(
            "{target:?} is an absolute path; a target is a file name below /run/secrets/"
        ));
    }
    if target.len() > 255 {
        return Some("it is longer than 255 characters".into());
    }
    if let Some(c) = target
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')))
    {
        return Some(format!(
            "it contains {c:?}; targets use letters, digits, '_', '.', '-' and '/'"
        ));
    }
    if target
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Some(format!(
            "{target:?} has an empty, '.' or '..' part; a target stays below /run/secrets/"
        ));
    }
    None
}

/// Parses a file mode written as octal digits: `"0400"`, `"400"`, `0o400`.
fn parse_mode(text: &str) -> std::result::Result<u32, String> {
    let t = text.trim();
    let digits = t
        .strip_prefix("0o")
        .or_else(|| t.strip_prefix("0O"))
        .unwrap_or(t);
    if digits.is_empty() {
        return Err("it is empty".into());
    }
    if let Some(c) = digits.chars().find(|c| !c.is_ascii_digit()) {
        return Err(format!("{c:?} is not an octal digit"));
    }
    if let Some(c) = digits.chars().find(|c| matches!(c, '8' | '9')) {
        return Err(format!("{c:?} is not an octal digit (0-7)"));
    }
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err("it is larger than 0777".into()),
    }
}

fn known_list(names: &[&str]) -> String {
    if names.is_empty() {
        "none yet".into()
    } else {
        names.join(", ")
    }
}

fn validate(raw: RawManifest, path: &Path) -> Result<Manifest> {
    let file = path.display();

    // version
    let Some(version) = &raw.version else {
        return Err(Error::new(format!(
            "{file}: missing `version`; expected `version: {VERSION}`"
        ))
        .hint(format!(
            "add `version: {VERSION}` as the first line of {MANIFEST_FILE}"
        )));
    };
    match version.value.trim().parse::<u32>() {
        Ok(VERSION) => {}
        Ok(other) => {
            return Err(err_at(
                path,
                version,
                format!("unsupported manifest version {other}; this swarmseal understands version {VERSION}"),
            )
            .hint(format!(
                "upgrade swarmseal, or write `version: {VERSION}` if the file follows this format"
            )))
        }
        Err(_) => {
            return Err(err_at(
                path,
                version,
                format!("version must be the number {VERSION}, found {:?}", version.value),
            )
            .hint(format!("write `version: {VERSION}`")))
        }
    }

    // project
    let project = match &raw.project {
        None => {
            return Err(Error::new(format!("{file}: missing `project`")).hint(
                "add `project: NAME`; it scopes every secret this repository manages on a Swarm",
            ))
        }
        Some(p) => {
            if let Err(reason) = names::check_scope_name("project", &p.value) {
                return Err(err_at(path, p, reason)
                    .hint("the project name is used in Swarm labels and lock names; use e.g. `project: shop`"));
            }
            p.value.clone()
        }
    };

    // recipients
    let mut recipients = BTreeMap::new();
    let raw_recipients: &[(Text, Text)] = raw
        .recipients
        .as_ref()
        .map(|r| &r.value.0[..])
        .unwrap_or(&[]);
    for (name, key) in raw_recipients {
        if let Some(problem) = recipient_name_problem(&name.value) {
            return Err(err_at(
                path,
                name,
                format!("invalid recipient name {:?}: {problem}", name.value),
            )
            .hint("use a name such as alice, ci-prod or bob@laptop"));
        }
        let key_text = key.value.trim();
        if let Err(reason) = crypto::parse_recipient(key_text) {
            return Err(err_at(
                path,
                key,
                format!("invalid public key for recipient {:?}: {reason}", name.value),
            )
            .hint("use an age public key (age1..., from `swarmseal keygen` or `age-keygen -y`) or an ssh-ed25519 / ssh-rsa public key line (the content of ~/.ssh/id_ed25519.pub)"));
        }
        recipients.insert(name.value.clone(), key_text.to_string());
    }

    // groups
    let raw_groups: Vec<(&Text, &[Text])> = raw
        .groups
        .as_ref()
        .map(|g| {
            g.value
                .0
                .iter()
                .map(|(name, members)| {
                    (name, members.as_ref().map(|m| &m.value[..]).unwrap_or(&[]))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut known: Vec<&str> = raw.recipient_names();
    known.extend(raw.group_names());
    let unknown_hint = |name: &str| {
        format!(
            "add it under recipients: (swarmseal recipients add {name} KEY) or fix the name; known: {}",
            known_list(&known)
        )
    };
    let mut groups = BTreeMap::new();
    for (name, members) in &raw_groups {
        if let Some(problem) = recipient_name_problem(&name.value) {
            return Err(err_at(
                path,
                name,
                format!("invalid group name {:?}: {problem}", name.value),
            )
            .hint("use a name such as admins or ops"));
        }
        if recipients.contains_key(&name.value) {
            return Err(err_at(
                path,
                name,
                format!("{:?} is both a recipient and a group", name.value),
            )
            .hint("recipients and groups share one namespace; rename the group or the recipient"));
        }
        for member in *members {
            let exists = recipients.contains_key(&member.value)
                || raw_groups.iter().any(|(g, _)| g.value == member.value);
            if !exists {
                return Err(err_at(
                    path,
                    member,
                    format!(
                        "unknown recipient or group {:?} in group {:?}",
                        member.value, name.value
                    ),
                )
                .hint(unknown_hint(&member.value)));
            }
        }
        groups.insert(
            name.value.clone(),
            members.iter().map(|m| m.value.clone()).collect::<Vec<_>>(),
        );
    }
    if let Some((cycle, loc)) = find_group_cycle(&raw_groups) {
        return Err(Error::new(format!(
            "{}: group cycle: {}",
            at(path, &loc),
            cycle.join(" -> ")
        ))
        .hint("a group cannot contain itself, directly or through other groups; remove one of these references"));
    }

    // environments
    let raw_envs: &[(Text, Option<RawEnvironment>)] = raw
        .environments
        .as_ref()
        .map(|e| &e.value.0[..])
        .unwrap_or(&[]);
    if raw_envs.is_empty() {
        let place = raw
            .environments
            .as_ref()
            .map(|e| at(path, &e.referenced))
            .unwrap_or_else(|| file.to_string());
        return Err(Error::new(format!("{place}: no environments defined; expected at least one under environments:"))
            .hint("add one, e.g. `environments: {production: {recipients: [alice]}}` (one environment per Swarm)"));
    }
    let mut environments = BTreeMap::new();
    let partial = Manifest {
        version: VERSION,
        project: project.clone(),
        recipients: recipients.clone(),
        groups: groups.clone(),
        environments: BTreeMap::new(),
        secrets: BTreeMap::new(),
        keep_versions: 0,
    };
    for (name, env) in raw_envs {
        if let Err(reason) = names::check_scope_name("environment", &name.value) {
            return Err(err_at(path, name, reason)
                .hint("environment names become folders under secrets/ and Swarm labels; use e.g. production or staging"));
        }
        let no_recipients = || {
            err_at(path, name, format!("environment {:?} has no recipients", name.value)).hint(
                "list who can decrypt its secrets, e.g. `recipients: [alice]` (recipient or group names)",
            )
        };
        let Some(env) = env else {
            return Err(no_recipients());
        };
        let refs: &[Text] = env.recipients.as_ref().map(|r| &r.value[..]).unwrap_or(&[]);
        if refs.is_empty() {
            return Err(match &env.recipients {
                Some(list) => err_at(path, list, format!("environment {:?} has no recipients", name.value))
                    .hint("list who can decrypt its secrets, e.g. `recipients: [alice]` (recipient or group names)"),
                None => no_recipients(),
            });
        }
        for r in refs {
            if !recipients.contains_key(&r.value) && !groups.contains_key(&r.value) {
                return Err(err_at(
                    path,
                    r,
                    format!(
                        "unknown recipient or group {:?} in environment {:?}",
                        r.value, name.value
                    ),
                )
                .hint(unknown_hint(&r.value)));
            }
        }
        let names: Vec<String> = refs.iter().map(|r| r.value.clone()).collect();
        if partial.expand(&names).is_empty() {
            return Err(err_at(
                path,
                &refs[0],
                format!(
                    "environment {:?} has no recipients: its groups ({}) are empty",
                    name.value,
                    names.join(", ")
                ),
            )
            .hint("add members to the group, or list a recipient directly"));
        }
        let docker_host = match &env.docker_host {
            None => None,
            Some(h) => {
                // The same parser as --host and DOCKER_HOST: what one accepts, so does the other.
                if let Err(reason) = crate::swarm::check_url(h.value.trim()) {
                    return Err(err_at(
                        path,
                        h,
                        format!("invalid docker_host {:?} for environment {:?}: it {reason}", h.value, name.value),
                    )
                    .hint("use e.g. ssh://deploy@manager, ssh://deploy@manager:2222, tcp://manager:2376, http://127.0.0.1:2375 or unix:///var/run/docker.sock"));
                }
                Some(h.value.trim().to_string())
            }
        };
        let swarm_id = match &env.swarm_id {
            None => None,
            Some(id) => {
                let v = id.value.trim();
                if v.is_empty() || v.chars().any(char::is_whitespace) {
                    return Err(err_at(
                        path,
                        id,
                        format!("invalid swarm_id {:?} for environment {:?}: expected the Swarm's cluster ID", id.value, name.value),
                    )
                    .hint("copy the ID shown by `docker info --format '{{.Swarm.Cluster.ID}}'` on a manager, or remove the line"));
                }
                Some(v.to_string())
            }
        };
        environments.insert(
            name.value.clone(),
            Environment {
                recipients: names,
                docker_host,
                swarm_id,
            },
        );
    }

    // secrets
    let mut secrets = BTreeMap::new();
    let raw_secrets: &[(Text, Option<RawSecret>)] =
        raw.secrets.as_ref().map(|s| &s.value.0[..]).unwrap_or(&[]);
    for (name, settings) in raw_secrets {
        if let Some(problem) = names::name_problem(&name.value) {
            return Err(err_at(
                path,
                name,
                format!(
                    "invalid secret name {:?} under secrets: {problem}",
                    name.value
                ),
            )
            .hint("use the secret's logical name, e.g. db_password or tls.api.crt"));
        }
        let settings = match settings {
            None => SecretSettings::default(),
            Some(s) => validate_secret(path, &name.value, s)?,
        };
        secrets.insert(name.value.clone(), settings);
    }

    // keep_versions
    let keep_versions = match &raw.keep_versions {
        None => 0,
        Some(k) => k.value.trim().parse::<u32>().map_err(|_| {
            err_at(
                path,
                k,
                format!(
                    "keep_versions must be a whole number, 0 or more; found {:?}",
                    k.value
                ),
            )
            .hint("write e.g. `keep_versions: 0` (superseded Swarm versions kept for rollback)")
        })?,
    };

    Ok(Manifest {
        version: VERSION,
        project,
        recipients,
        groups,
        environments,
        secrets,
        keep_versions,
    })
}

fn validate_secret(path: &Path, secret: &str, raw: &RawSecret) -> Result<SecretSettings> {
    let target = match &raw.target {
        None => None,
        Some(t) => {
            if let Some(problem) = target_problem(&t.value) {
                return Err(err_at(
                    path,
                    t,
                    format!("invalid target for secret {secret:?}: {problem}"),
                )
                .hint(
                    "write the file name the secret gets below /run/secrets/ inside containers (e.g. `target: db_password` or `target: tls/api.key`), or remove the line",
                ));
            }
            Some(t.value.clone())
        }
    };
    let id = |field: &str, v: &Option<Text>| -> Result<Option<String>> {
        match v {
            None => Ok(None),
            Some(t) => {
                let s = t.value.trim();
                if s.is_empty()
                    || !s.chars().all(|c| c.is_ascii_digit())
                    || s.parse::<u32>().is_err()
                {
                    return Err(err_at(
                        path,
                        t,
                        format!("invalid {field} {:?} for secret {secret:?}: expected a numeric id", t.value),
                    )
                    .hint(format!("write e.g. `{field}: \"0\"` (a number, as in docker service --secret {field}=0)")));
                }
                Ok(Some(s.to_string()))
            }
        }
    };
    let uid = id("uid", &raw.uid)?;
    let gid = id("gid", &raw.gid)?;
    let mode = match &raw.mode {
        None => None,
        Some(m) => Some(parse_mode(&m.value).map_err(|reason| {
            err_at(
                path,
                m,
                format!(
                    "invalid mode {:?} for secret {secret:?}: {reason}; expected octal digits",
                    m.value
                ),
            )
            .hint("write the mode in octal as a string, e.g. `mode: \"0400\"` or `mode: \"0440\"`")
        })?),
    };
    let mut labels = BTreeMap::new();
    if let Some(raw_labels) = &raw.labels {
        for (key, value) in &raw_labels.value.0 {
            if key.value.trim().is_empty() {
                return Err(
                    err_at(path, key, format!("empty label key on secret {secret:?}"))
                        .hint("give the label a name, e.g. `labels: { team: db }`"),
                );
            }
            if key.value.starts_with(RESERVED_LABEL_PREFIX) {
                return Err(err_at(
                    path,
                    key,
                    format!(
                        "label {:?} on secret {secret:?} uses the reserved prefix {RESERVED_LABEL_PREFIX}",
                        key.value
                    ),
                )
                .hint("swarmseal sets io.swarmseal.* labels itself; choose another key"));
            }
            labels.insert(key.value.clone(), value.value.clone());
        }
    }
    let rotate_after = match &raw.rotate_after {
        None => None,
        Some(r) => {
            let bad = |reason: String| {
                err_at(
                    path,
                    r,
                    format!(
                        "invalid rotate_after {:?} for secret {secret:?}: {reason}",
                        r.value
                    ),
                )
                .hint("write a duration such as 90d, 12w or 36h")
            };
            let d = humantime::parse_duration(r.value.trim()).map_err(|e| bad(e.to_string()))?;
            if d.is_zero() {
                return Err(bad("it is zero".into()));
            }
            Some(d)
        }
    };
    Ok(SecretSettings {
        target,
        uid,
        gid,
        mode,
        labels,
        rotate_after,
    })
}

/// The first group cycle found (in document order), as a path `a -> b -> a`, with the
/// location of the reference that closes it.
fn find_group_cycle(groups: &[(&Text, &[Text])]) -> Option<(Vec<String>, Location)> {
    fn dfs<'a>(
        group: &'a str,
        groups: &[(&'a Text, &'a [Text])],
        stack: &mut Vec<&'a str>,
        done: &mut HashSet<&'a str>,
    ) -> Option<(Vec<String>, Location)> {
        stack.push(group);
        let members = groups
            .iter()
            .find(|(g, _)| g.value == group)
            .map(|(_, m)| *m)
            .unwrap_or(&[]);
        for member in members {
            let name = member.value.as_str();
            if !groups.iter().any(|(g, _)| g.value == name) {
                continue;
            }
            if let Some(i) = stack.iter().position(|s| *s == name) {
                let mut cycle: Vec<String> = stack[i..].iter().map(|s| s.to_string()).collect();
                cycle.push(name.to_string());
                return Some((cycle, member.referenced));
            }
            if done.contains(name) {
                continue;
            }
            if let Some(found) = dfs(name, groups, stack, done) {
                return Some(found);
            }
        }
        stack.pop();
        done.insert(group);
        None
    }
    let mut done = HashSet::new();
    for (g, _) in groups {
        if done.contains(g.value.as_str()) {
            continue;
        }
        let mut stack = Vec::new();
        if let Some(found) = dfs(&g.value, groups, &mut stack, &mut done) {
            return Some(found);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// A YAML scalar for `s`: plain when that reads back as the same string, else
/// double-quoted. In flow context (`[...]`, `{...}`) the flow indicators need quoting too.
fn yaml_scalar(s: &str, flow: bool) -> String {
    let reserved = matches!(
        s.to_ascii_lowercase().as_str(),
        "~" | "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
    );
    let numeric = s.starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == '+')
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() || "._+-oOxX".contains(c));
    let plain = !s.is_empty()
        && !reserved
        && !numeric
        && s.trim() == s
        && !s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@`".contains(c))
        && !s.ends_with(':')
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.chars().any(|c| c.is_control())
        && !(flow && s.contains(|c: char| ",[]{}".contains(c)));
    if plain {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text of a new manifest for `init`: every environment lists all `recipients` by name.
/// The result parses back with [`Manifest::parse`] when `recipients` and `environments`
/// are non-empty and valid.
pub fn render_new(
    project: &str,
    environments: &[String],
    recipients: &[(String, String)],
) -> String {
    let mut out = String::new();
    out.push_str(
        "# swarmseal manifest: what this repository manages on Docker Swarm, and who can read it.\n\
         # Secrets live in secrets/<environment>/<name>.age, age-encrypted to the recipients of\n\
         # their environment. After changing recipients, run `swarmseal rekey`.\n\
         version: 1\n\
         \n\
         # Scope of everything this repository manages on a Swarm (labels, lock names).\n",
    );
    out.push_str(&format!("project: {}\n\n", yaml_scalar(project, false)));
    out.push_str(
        "# Named public keys: age X25519 (age1...), ssh-ed25519 or ssh-rsa.\n\
         # Manage them with `swarmseal recipients add NAME KEY` and `swarmseal recipients rm NAME`.\n",
    );
    if recipients.is_empty() {
        out.push_str("recipients: {}\n");
    } else {
        out.push_str("recipients:\n");
        for (name, key) in recipients {
            out.push_str(&format!(
                "  {}: {}\n",
                yaml_scalar(name, false),
                yaml_scalar(key.trim(), false)
            ));
        }
    }
    out.push_str(
        "\n\
         # Named sets of recipients, usable wherever a recipient name is, e.g.:\n\
         # groups:\n\
         #   admins: [alice, bob]\n\
         \n\
         # One entry per Swarm. `recipients` lists recipient and group names.\n",
    );
    let names: Vec<String> = recipients
        .iter()
        .map(|(n, _)| yaml_scalar(n, true))
        .collect();
    if environments.is_empty() {
        out.push_str("environments: {}\n");
    } else {
        out.push_str("environments:\n");
        for env in environments {
            out.push_str(&format!("  {}:\n", yaml_scalar(env, false)));
            out.push_str(&format!("    recipients: [{}]\n", names.join(", ")));
            out.push_str(
                "    # docker_host: ssh://deploy@manager   # else --host / DOCKER_HOST / docker context\n\
                 \x20   # swarm_id: CLUSTER_ID                # pin: plan/apply refuse any other Swarm (docker info)\n",
            );
        }
    }
    out.push_str(
        "\n\
         # Optional per-secret settings, e.g.:\n\
         # secrets:\n\
         #   db_password:\n\
         #     target: db_password     # file name inside containers when services are re-pointed\n\
         #     uid: \"0\"\n\
         #     gid: \"0\"\n\
         #     mode: \"0400\"            # octal, as in docker service --secret mode=0400\n\
         #     labels: { team: db }\n\
         #     rotate_after: 90d       # `swarmseal check` fails when the value is older\n\
         \n\
         # Superseded, unused Swarm versions kept for rollback.\n\
         keep_versions: 0\n",
    );
    out
}

// ---------------------------------------------------------------------------------------
// Textual edits
// ---------------------------------------------------------------------------------------

/// A YAML node with the byte range of its source text.
#[derive(Debug)]
enum Node {
    Scalar {
        value: String,
        null: bool,
        start: usize,
        end: usize,
    },
    Seq {
        flow: bool,
        start: usize,
        end: usize,
        items: Vec<Node>,
    },
    Map {
        flow: bool,
        start: usize,
        end: usize,
        entries: Vec<(Node, Node)>,
    },
    Alias {
        start: usize,
        end: usize,
    },
}

impl Node {
    fn start(&self) -> usize {
        match self {
            Node::Scalar { start, .. }
            | Node::Seq { start, .. }
            | Node::Map { start, .. }
            | Node::Alias { start, .. } => *start,
        }
    }

    /// End of the node's own source text (a block collection's end marker points at the
    /// next token, past trailing comments, so it ends at its last child instead).
    fn content_end(&self) -> usize {
        match self {
            Node::Scalar { end, .. } | Node::Alias { end, .. } => *end,
            Node::Seq {
                flow: true, end, ..
            }
            | Node::Map {
                flow: true, end, ..
            } => *end,
            Node::Seq { items, start, .. } => items.last().map_or(*start, Node::content_end),
            Node::Map { entries, start, .. } => {
                entries.last().map_or(*start, |(_, v)| v.content_end())
            }
        }
    }

    fn scalar(&self) -> Option<&str> {
        match self {
            Node::Scalar {
                value, null: false, ..
            } => Some(value),
            _ => None,
        }
    }

    /// The entry of a mapping whose key is the scalar `key`.
    fn get(&self, key: &str) -> Option<(&Node, &Node)> {
        match self {
            Node::Map { entries, .. } => entries
                .iter()
                .find(|(k, _)| k.scalar() == Some(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }
}

enum Ev {
    Scalar(String, bool),
    SeqStart(bool),
    SeqEnd,
    MapStart(bool),
    MapEnd,
    Alias,
}

/// The first document of `text` as a node tree with byte offsets.
fn build_tree(text: &str) -> std::result::Result<Node, String> {
    let mut events = Vec::new();
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| e.to_string())?;
        let (Some(start), Some(end)) = (span.start.byte_offset(), span.end.byte_offset()) else {
            return Err("the YAML parser reported no byte offsets".into());
        };
        let ev = match event {
            Event::Scalar(value, style, _, _) => {
                let null = style == ScalarStyle::Plain
                    && (start == end || matches!(value.as_ref(), "~" | "null" | "Null" | "NULL"));
                Ev::Scalar(value.into_owned(), null)
            }
            Event::SequenceStart(style, _, _) => Ev::SeqStart(style == StructureStyle::Flow),
            Event::SequenceEnd => Ev::SeqEnd,
            Event::MappingStart(style, _, _) => Ev::MapStart(style == StructureStyle::Flow),
            Event::MappingEnd => Ev::MapEnd,
            Event::Alias(_) => Ev::Alias,
            Event::DocumentEnd => break,
            _ => continue,
        };
        events.push((ev, start, end));
    }
    let mut pos = 0;
    let root = build_node(&events, &mut pos)?;
    Ok(root)
}

fn build_node(events: &[(Ev, usize, usize)], pos: &mut usize) -> std::result::Result<Node, String> {
    let Some((ev, start, end)) = events.get(*pos) else {
        return Err("unexpected end of the YAML document".into());
    };
    *pos += 1;
    match ev {
        Ev::Scalar(value, null) => Ok(Node::Scalar {
            value: value.clone(),
            null: *null,
            start: *start,
            end: *end,
        }),
        Ev::Alias => Ok(Node::Alias {
            start: *start,
            end: *end,
        }),
        Ev::SeqStart(flow) => {
            let mut items = Vec::new();
            loop {
                match events.get(*pos) {
                    Some((Ev::SeqEnd, _, e)) => {
                        *pos += 1;
                        return Ok(Node::Seq {
                            flow: *flow,
                            start: *start,
                            end: *e,
                            items,
                        });
                    }
                    Some(_) => items.push(build_node(events, pos)?),
                    None => return Err("unterminated sequence".into()),
                }
            }
        }
        Ev::MapStart(flow) => {
            let mut entries = Vec::new();
            loop {
                match events.get(*pos) {
                    Some((Ev::MapEnd, _, e)) => {
                        *pos += 1;
                        return Ok(Node::Map {
                            flow: *flow,
                            start: *start,
                            end: *e,
                            entries,
                        });
                    }
                    Some(_) => {
                        let key = build_node(events, pos)?;
                        let value = build_node(events, pos)?;
                        entries.push((key, value));
                    }
                    None => return Err("unterminated mapping".into()),
                }
            }
        }
        Ev::SeqEnd | Ev::MapEnd => Err("unbalanced YAML events".into()),
    }
}

/// Collects byte-range replacements on a text and applies them at once.
struct Editor<'a> {
    text: &'a str,
    path: &'a Path,
    nl: &'static str,
    edits: Vec<(usize, usize, String)>,
}

impl<'a> Editor<'a> {
    fn new(text: &'a str, path: &'a Path) -> Self {
        let nl = if text.contains("\r\n") { "\r\n" } else { "\n" };
        Editor {
            text,
            path,
            nl,
            edits: Vec::new(),
        }
    }

    fn line_col(&self, pos: usize) -> (usize, usize) {
        let before = &self.text[..pos];
        let line = before.matches('\n').count() + 1;
        let col = before[self.line_start(pos)..].chars().count() + 1;
        (line, col)
    }

    fn unsupported(&self, pos: usize, what: &str) -> Error {
        let (line, col) = self.line_col(pos);
        Error::new(format!(
            "{}:{line}:{col}: cannot edit {what} automatically: its layout is not supported",
            self.path.display()
        ))
        .hint(format!(
            "edit {} by hand (lists may be written [a, b] or as `- a` lines; mappings as `key: value` lines or {{a: x}})",
            self.path.display()
        ))
    }

    fn line_start(&self, pos: usize) -> usize {
        self.text[..pos].rfind('\n').map_or(0, |i| i + 1)
    }

    /// Start of the line after the one holding the text that ends at `pos`.
    fn next_line(&self, pos: usize) -> usize {
        if pos > 0 && self.text.as_bytes()[pos - 1] == b'\n' {
            return pos;
        }
        self.text[pos..]
            .find('\n')
            .map_or(self.text.len(), |i| pos + i + 1)
    }

    /// Whether only blanks or a comment follow `pos` on its line.
    fn rest_is_blank(&self, pos: usize) -> bool {
        let end = self.text[pos..]
            .find('\n')
            .map_or(self.text.len(), |i| pos + i);
        let rest = self.text[pos..end].trim();
        rest.is_empty() || rest.starts_with('#')
    }

    /// Position just after the `:` that follows a mapping key ending at `key_end`.
    fn after_colon(&self, key_end: usize) -> Option<usize> {
        let rest = &self.text[key_end..];
        let skipped = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        rest[skipped..]
            .starts_with(':')
            .then_some(key_end + skipped + 1)
    }

    /// Text to insert at the start of the line after `pos`, adding a line break first at
    /// the end of a file that has none.
    fn insert_line_after(&mut self, pos: usize, line: String) {
        let at = self.next_line(pos);
        let lead = if at == self.text.len() && !self.text.is_empty() && !self.text.ends_with('\n') {
            self.nl
        } else {
            ""
        };
        self.edits
            .push((at, at, format!("{lead}{line}{}", self.nl)));
    }

    /// Indentation unit of the file (the step between a block mapping's key and its
    /// children), 2 when none can be seen.
    fn indent_unit(&self, root: &Node) -> usize {
        if let Node::Map { entries, .. } = root {
            for (key, value) in entries {
                if let Node::Map {
                    flow: false,
                    entries: children,
                    ..
                } = value
                {
                    if let Some((child, _)) = children.first() {
                        let parent_col = key.start() - self.line_start(key.start());
                        let child_col = child.start() - self.line_start(child.start());
                        if child_col > parent_col {
                            return child_col - parent_col;
                        }
                    }
                }
            }
        }
        2
    }

    /// Whitespace before a block node on its line (error if anything else is there).
    fn block_indent(&self, node: &Node, what: &str) -> Result<&'a str> {
        let text: &'a str = self.text;
        let prefix = &text[self.line_start(node.start())..node.start()];
        if prefix.chars().all(|c| c == ' ') {
            Ok(prefix)
        } else {
            Err(self.unsupported(node.start(), what))
        }
    }

    /// Appends `item` to the list `value` (the value of mapping key `key`).
    fn append_to_list(&mut self, key: &Node, value: &Node, item: &str, what: &str) -> Result<()> {
        match value {
            Node::Seq {
                flow: true,
                start,
                items,
                ..
            } => {
                let s = yaml_scalar(item, true);
                match items.last() {
                    Some(last) => {
                        self.edits
                            .push((last.content_end(), last.content_end(), format!(", {s}")))
                    }
                    None => self.edits.push((start + 1, start + 1, s)),
                }
            }
            Node::Seq {
                flow: false, items, ..
            } => {
                let Some(last) = items.last() else {
                    return Err(self.unsupported(value.start(), what));
                };
                let prefix = &self.text[self.line_start(last.start())..last.start()];
                if prefix.trim() != "-" || !self.rest_is_blank(last.content_end()) {
                    return Err(self.unsupported(last.start(), what));
                }
                let line = format!("{prefix}{}", yaml_scalar(item, false));
                self.insert_line_after(last.content_end(), line);
            }
            Node::Scalar {
                null: true,
                start,
                end,
                ..
            } => {
                let s = yaml_scalar(item, true);
                if start == end {
                    let Some(at) = self.after_colon(key.content_end()) else {
                        return Err(self.unsupported(key.start(), what));
                    };
                    self.edits.push((at, at, format!(" [{s}]")));
                } else {
                    self.edits.push((*start, *end, format!("[{s}]")));
                }
            }
            _ => return Err(self.unsupported(value.start(), what)),
        }
        Ok(())
    }

    /// Appends `key_text: value_text` (both ready to write) to the mapping `value`
    /// (itself the value of `key`); `unit` is the file's indentation step.
    fn append_to_map(
        &mut self,
        key: &Node,
        value: &Node,
        key_text: &str,
        value_text: &str,
        unit: usize,
        what: &str,
    ) -> Result<()> {
        match value {
            Node::Map {
                flow: true,
                start,
                entries,
                ..
            } => match entries.last() {
                Some((_, last)) => {
                    let at = last.content_end();
                    self.edits
                        .push((at, at, format!(", {key_text}: {value_text}")));
                }
                None => {
                    self.edits
                        .push((start + 1, start + 1, format!("{key_text}: {value_text}")))
                }
            },
            Node::Map {
                flow: false,
                entries,
                ..
            } => {
                let Some((last_key, last_value)) = entries.last() else {
                    return Err(self.unsupported(value.start(), what));
                };
                let indent = self.block_indent(last_key, what)?;
                if !self.rest_is_blank(last_value.content_end()) {
                    return Err(self.unsupported(last_value.start(), what));
                }
                self.insert_line_after(
                    last_value.content_end(),
                    format!("{indent}{key_text}: {value_text}"),
                );
            }
            Node::Scalar {
                null: true,
                start,
                end,
                ..
            } => {
                if start == end {
                    let indent = self.block_indent(key, what)?;
                    let line = format!("{indent}{}{key_text}: {value_text}", " ".repeat(unit));
                    self.insert_line_after(key.content_end(), line);
                } else {
                    self.edits
                        .push((*start, *end, format!("{{{key_text}: {value_text}}}")));
                }
            }
            _ => return Err(self.unsupported(value.start(), what)),
        }
        Ok(())
    }

    /// Removes the items of the list or mapping `value` (the value of `key`) selected by
    /// `remove` (indices of items or entries), with their separators or lines.
    fn remove_units(
        &mut self,
        key: &Node,
        value: &Node,
        remove: &[bool],
        what: &str,
    ) -> Result<()> {
        let (flow, units): (bool, Vec<(usize, usize)>) = match value {
            Node::Seq { flow, items, .. } => (
                *flow,
                items.iter().map(|i| (i.start(), i.content_end())).collect(),
            ),
            Node::Map { flow, entries, .. } => (
                *flow,
                entries
                    .iter()
                    .map(|(k, v)| (k.start(), v.content_end()))
                    .collect(),
            ),
            _ => return Err(self.unsupported(value.start(), what)),
        };
        let is_seq = matches!(value, Node::Seq { .. });
        if !remove.iter().any(|r| *r) {
            return Ok(());
        }
        if flow {
            for (i, (start, end)) in units.iter().enumerate() {
                if !remove[i] {
                    continue;
                }
                let kept_after = (i + 1..units.len()).any(|j| !remove[j]);
                let range = if kept_after {
                    (*start, units[i + 1].0)
                } else if i > 0 {
                    (units[i - 1].1, *end)
                } else {
                    (*start, *end)
                };
                self.edits.push((range.0, range.1, String::new()));
            }
            return Ok(());
        }
        for (i, (start, end)) in units.iter().enumerate() {
            if !remove[i] {
                continue;
            }
            let line = self.line_start(*start);
            let prefix = self.text[line..*start].trim();
            let prefix_ok = if is_seq {
                prefix == "-"
            } else {
                prefix.is_empty()
            };
            if !prefix_ok || !self.rest_is_blank(*end) {
                return Err(self.unsupported(*start, what));
            }
            self.edits.push((line, self.next_line(*end), String::new()));
        }
        if remove.iter().all(|r| *r) {
            // An emptied block collection would read back as null: write it empty instead.
            let Some(at) = self.after_colon(key.content_end()) else {
                return Err(self.unsupported(key.start(), what));
            };
            let empty = if is_seq { " []" } else { " {}" };
            self.edits.push((at, at, empty.to_string()));
        }
        Ok(())
    }

    fn apply(mut self) -> Result<String> {
        self.edits.sort_by_key(|(start, end, _)| (*start, *end));
        for pair in self.edits.windows(2) {
            if pair[0].1 > pair[1].0 {
                return Err(self.unsupported(pair[1].0, "this part of the manifest"));
            }
        }
        let mut out = self.text.to_string();
        for (start, end, replacement) in self.edits.iter().rev() {
            out.replace_range(*start..*end, replacement);
        }
        Ok(out)
    }
}

fn tree_of(text: &str, path: &Path) -> Result<Node> {
    build_tree(text).map_err(|reason| {
        Error::new(format!(
            "{}: cannot read the YAML structure: {reason}",
            path.display()
        ))
        .hint("fix the YAML, or edit the file by hand")
    })
}

fn check_edited(new_text: String, path: &Path, action: &str) -> Result<String> {
    match Manifest::parse(&new_text, path) {
        Ok(_) => Ok(new_text),
        Err(e) => Err(e
            .context(format!("{action}: the edited manifest would be invalid"))
            .or_hint(format!("edit {} by hand", path.display()))),
    }
}

/// Adds recipient `name` with public `key` to the manifest text, and to the recipient
/// lists of the environments or groups named in `to` (every environment when `to` is
/// empty). Comments and layout are kept; the result is parsed and validated.
pub fn add_recipient(
    text: &str,
    path: &Path,
    name: &str,
    key: &str,
    to: &[String],
) -> Result<String> {
    let action = format!("cannot add recipient {name:?}");
    if let Some(problem) = recipient_name_problem(name) {
        return Err(
            Error::new(format!("invalid recipient name {name:?}: {problem}"))
                .hint("use a name such as alice, ci-prod or bob@laptop"),
        );
    }
    let key = key.trim();
    if let Err(reason) = crypto::parse_recipient(key) {
        return Err(Error::new(format!("invalid public key for recipient {name:?}: {reason}"))
            .hint("use an age public key (age1...) or an ssh-ed25519 / ssh-rsa public key line (the content of ~/.ssh/id_ed25519.pub)"));
    }
    let raw = parse_raw(text, path)?;
    let recipients = raw.recipient_names();
    let groups = raw.group_names();
    let envs = raw.environment_names();
    if recipients.contains(&name) {
        return Err(Error::new(format!(
            "{action}: it already exists in {}",
            path.display()
        ))
        .hint(format!(
            "to change its key, remove it first (swarmseal recipients rm {name}), or choose another name"
        )));
    }
    if groups.contains(&name) {
        return Err(Error::new(format!(
            "{action}: {name:?} is already a group in {}",
            path.display()
        ))
        .hint("recipients and groups share one namespace; choose another name"));
    }

    // Which lists get the new name.
    let mut env_targets: Vec<&str> = Vec::new();
    let mut group_targets: Vec<&str> = Vec::new();
    if to.is_empty() {
        env_targets = envs.clone();
    }
    for target in to {
        let target = target.as_str();
        let is_env = envs.contains(&target);
        let is_group = groups.contains(&target);
        match (is_env, is_group) {
            (true, true) => {
                return Err(Error::new(format!(
                    "{action}: {target:?} is both an environment and a group in {}",
                    path.display()
                ))
                .hint("rename the group, or edit the manifest by hand"))
            }
            (true, false) if !env_targets.contains(&target) => env_targets.push(target),
            (false, true) if !group_targets.contains(&target) => group_targets.push(target),
            (false, false) => {
                return Err(Error::new(format!(
                    "{action}: unknown environment or group {target:?}"
                ))
                .hint(format!(
                    "known environments: {}; known groups: {}",
                    known_list(&envs),
                    known_list(&groups)
                )))
            }
            _ => {}
        }
    }

    let root = tree_of(text, path)?;
    let mut ed = Editor::new(text, path);
    let unit = ed.indent_unit(&root);
    let Node::Map {
        flow: false,
        entries: top,
        ..
    } = &root
    else {
        return Err(ed.unsupported(root.start(), "the top level"));
    };

    // The recipients: mapping.
    match root.get("recipients") {
        Some((k, v)) => {
            let flow = matches!(v, Node::Map { flow: true, .. })
                || matches!(v, Node::Scalar { null: true, start, end, .. } if start != end);
            ed.append_to_map(
                k,
                v,
                &yaml_scalar(name, flow),
                &yaml_scalar(key, flow),
                unit,
                "recipients:",
            )?;
        }
        None => {
            let anchor = root
                .get("project")
                .or_else(|| root.get("version"))
                .or_else(|| top.last().map(|(k, v)| (k, v)));
            let Some((anchor_key, anchor_value)) = anchor else {
                return Err(ed.unsupported(0, "the top level"));
            };
            let indent = ed.block_indent(anchor_key, "the top level")?;
            let block = format!(
                "{indent}recipients:{nl}{indent}{pad}{}: {}",
                yaml_scalar(name, false),
                yaml_scalar(key, false),
                nl = ed.nl,
                pad = " ".repeat(unit),
            );
            ed.insert_line_after(anchor_value.content_end(), block);
        }
    }

    // Environments' recipient lists.
    for env in env_targets {
        let what = format!("the recipients of environment {env:?}");
        let Some((env_key, env_value)) =
            root.get("environments").and_then(|(_, envs)| envs.get(env))
        else {
            return Err(ed.unsupported(0, &what));
        };
        let list = env_value.get("recipients");
        if let Some((_, Node::Seq { items, .. })) = list {
            if items.iter().any(|i| i.scalar() == Some(name)) {
                continue;
            }
        }
        match (list, env_value) {
            (Some((k, v)), _) => ed.append_to_list(k, v, name, &what)?,
            (None, Node::Map { .. }) => {
                let flow_name = yaml_scalar(name, true);
                ed.append_to_map(
                    env_key,
                    env_value,
                    "recipients",
                    &format!("[{flow_name}]"),
                    unit,
                    &what,
                )?
            }
            (None, _) => return Err(ed.unsupported(env_value.start(), &what)),
        }
    }

    // Groups' member lists.
    for group in group_targets {
        let what = format!("the members of group {group:?}");
        let Some((k, v)) = root.get("groups").and_then(|(_, g)| g.get(group)) else {
            return Err(ed.unsupported(0, &what));
        };
        if let Node::Seq { items, .. } = v {
            if items.iter().any(|i| i.scalar() == Some(name)) {
                continue;
            }
        }
        ed.append_to_list(k, v, name, &what)?;
    }

    let new_text = ed.apply()?;
    check_edited(new_text, path, &action)
}

/// Removes recipient `name` from the manifest text: its `recipients:` entry and every
/// reference in groups and environments. Refuses when an environment would be left
/// without recipients. Comments and layout are kept; the result is parsed and validated.
pub fn remove_recipient(text: &str, path: &Path, name: &str) -> Result<String> {
    let action = format!("cannot remove recipient {name:?}");
    let manifest = Manifest::parse(text, path)?;
    if !manifest.recipients.contains_key(name) {
        if manifest.groups.contains_key(name) {
            return Err(
                Error::new(format!("{action}: it is a group, not a recipient")).hint(format!(
                    "remove the group from groups: in {} by hand",
                    path.display()
                )),
            );
        }
        let known: Vec<&str> = manifest.recipients.keys().map(String::as_str).collect();
        return Err(Error::new(format!(
            "{action}: there is no such recipient in {}",
            path.display()
        ))
        .hint(format!("known recipients: {}", known_list(&known))));
    }

    // What the manifest would look like, to refuse leaving an environment unreadable.
    let mut after = manifest.clone();
    after.recipients.remove(name);
    for members in after.groups.values_mut() {
        members.retain(|m| m != name);
    }
    for (env_name, env) in &manifest.environments {
        let refs: Vec<String> = env
            .recipients
            .iter()
            .filter(|r| *r != name)
            .cloned()
            .collect();
        if after.expand(&refs).is_empty() {
            return Err(Error::new(format!(
                "{action}: environment {env_name:?} would be left with no recipients"
            ))
            .hint(format!(
                "add another recipient to environment {env_name:?} first (swarmseal recipients add NAME KEY --to {env_name}), then remove {name}"
            )));
        }
    }

    let root = tree_of(text, path)?;
    let mut ed = Editor::new(text, path);
    if let Some((k, v)) = root.get("recipients") {
        let remove = match v {
            Node::Map { entries, .. } => entries
                .iter()
                .map(|(ek, _)| ek.scalar() == Some(name))
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        ed.remove_units(k, v, &remove, "recipients:")?;
    }
    for section in ["groups", "environments"] {
        let Some((_, Node::Map { entries, .. })) = root.get(section) else {
            continue;
        };
        for (entry_key, entry_value) in entries {
            let (list_key, list) = if section == "groups" {
                (entry_key, entry_value)
            } else {
                match entry_value.get("recipients") {
                    Some(found) => found,
                    None => continue,
                }
            };
            let Node::Seq { items, .. } = list else {
                continue;
            };
            let remove: Vec<bool> = items.iter().map(|i| i.scalar() == Some(name)).collect();
            let what = match (section, entry_key.scalar()) {
                ("groups", Some(g)) => format!("the members of group {g:?}"),
                (_, Some(e)) => format!("the recipients of environment {e:?}"),
                _ => section.to_string(),
            };
            ed.remove_units(list_key, list, &remove, &what)?;
        }
    }
    let new_text = ed.apply()?;
    check_edited(new_text, path, &action)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const BOB_SSH: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID/am6oh4vaToSZDc2+F+bcZM1Q53VOfZh6iJL0mvvB/ bob@laptop";

    fn age_key() -> String {
        age::x25519::Identity::generate().to_public().to_string()
    }

    fn path() -> PathBuf {
        PathBuf::from(MANIFEST_FILE)
    }

    struct Keys {
        alice: String,
        ci_prod: String,
        ci_staging: String,
    }

    fn keys() -> Keys {
        Keys {
            alice: age_key(),
            ci_prod: age_key(),
            ci_staging: age_key(),
        }
    }

    /// The SPEC §1 example with real keys.
    fn spec_manifest(k: &Keys) -> String {
        format!(
            r#"version: 1
project: shop                  # scope of everything this repo manages on a Swarm
recipients:                    # named public keys: age X25519 or ssh-ed25519 / ssh-rsa
  alice: {alice}
  bob: {BOB_SSH}
  ci-prod: {ci_prod}
  ci-staging: {ci_staging}
groups:
  admins: [alice, bob]
environments:
  staging:
    recipients: [admins, ci-staging]
    docker_host: ssh://deploy@staging-manager   # optional
    swarm_id: 9x1kqwe7abc
  production:
    recipients: [admins, ci-prod]
secrets:                       # optional per-secret settings
  db_password:
    target: db_password        # file name inside containers
    uid: "0"
    gid: "0"
    mode: "0400"                # octal
    labels: {{ team: db }}
    rotate_after: 90d          # check fails when the value is older than this
keep_versions: 0               # superseded, unused Swarm versions kept for rollback
"#,
            alice = k.alice,
            ci_prod = k.ci_prod,
            ci_staging = k.ci_staging,
        )
    }

    fn parse(text: &str) -> Result<Manifest> {
        Manifest::parse(text, &path())
    }

    /// The error for `text`, as displayed (message + hint).
    fn error(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => {
                assert!(e.hint_text().is_some(), "error without a hint: {e}");
                e.to_string()
            }
        }
    }

    fn assert_contains(haystack: &str, needles: &[&str]) {
        for needle in needles {
            assert!(haystack.contains(needle), "{needle:?} not in:\n{haystack}");
        }
    }

    /// A small valid manifest: alice (age), bob (ssh) in production and staging.
    fn small(k: &Keys) -> String {
        format!(
            "version: 1\nproject: shop\nrecipients:\n  alice: {}\n  bob: {BOB_SSH}\nenvironments:\n  production:\n    recipients: [alice, bob]\n",
            k.alice
        )
    }

    #[test]
    fn parses_the_spec_example() {
        let k = keys();
        let m = parse(&spec_manifest(&k)).unwrap();
        assert_eq!(m.version, 1);
        assert_eq!(m.project, "shop");
        assert_eq!(m.recipients.len(), 4);
        assert_eq!(m.recipients["bob"], BOB_SSH);
        assert_eq!(m.recipients["alice"], k.alice);
        assert_eq!(m.groups["admins"], vec!["alice", "bob"]);
        let staging = m.environment("staging").unwrap();
        assert_eq!(staging.recipients, vec!["admins", "ci-staging"]);
        assert_eq!(
            staging.docker_host.as_deref(),
            Some("ssh://deploy@staging-manager")
        );
        assert_eq!(staging.swarm_id.as_deref(), Some("9x1kqwe7abc"));
        let production = m.environment("production").unwrap();
        assert_eq!(production.docker_host, None);
        assert_eq!(production.swarm_id, None);
        let s = m.settings("db_password").unwrap();
        assert_eq!(s.target.as_deref(), Some("db_password"));
        assert_eq!(s.uid.as_deref(), Some("0"));
        assert_eq!(s.gid.as_deref(), Some("0"));
        assert_eq!(s.mode, Some(0o400));
        assert_eq!(s.labels.get("team").map(String::as_str), Some("db"));
        assert_eq!(s.rotate_after, Some(Duration::from_secs(90 * 86400)));
        assert!(m.settings("other").is_none());
        assert_eq!(m.keep_versions, 0);
    }

    #[test]
    fn env_recipients_expand_groups_in_order_without_duplicates() {
        let k = keys();
        let text = format!(
            "version: 1\nproject: shop\nrecipients:\n  alice: {}\n  bob: {BOB_SSH}\n  ci: {}\ngroups:\n  ops: [bob, alice]\n  admins: [ops, alice, ci]\n  all: [admins, ops]\nenvironments:\n  production:\n    recipients: [ci, all, bob]\n",
            k.alice, k.ci_prod
        );
        let m = parse(&text).unwrap();
        let got = m.env_recipients("production").unwrap();
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["ci", "bob", "alice"]);
        assert_eq!(got[0].1, k.ci_prod);
        assert_eq!(got[1].1, BOB_SSH);
        let err = m.env_recipients("nope").unwrap_err().to_string();
        assert_contains(
            &err,
            &[
                "unknown environment \"nope\"",
                "known environments: production",
            ],
        );
    }

    #[test]
    fn unknown_environment_lists_known_ones() {
        let k = keys();
        let m = parse(&spec_manifest(&k)).unwrap();
        let err = m.environment("prod").unwrap_err();
        assert_eq!(
            err.message(),
            "unknown environment \"prod\" (not in swarmseal.yaml)"
        );
        assert_eq!(
            err.hint_text(),
            Some("known environments: production, staging; choose one with -e NAME")
        );
    }

    #[test]
    fn yaml_syntax_errors_carry_the_line() {
        let k = keys();
        let text = format!(
            "version: 1\nproject: shop\nrecipients: {{alice: {}\n",
            k.alice
        );
        let err = error(&text);
        assert_contains(&err, &["swarmseal.yaml:", "hint:"]);
        let text = "version: 1\nproject: shop\nrecipients:\n  alice: \"unterminated\n";
        assert_contains(&error(text), &["swarmseal.yaml:4:10:"]);
        let text = "version: 1\nproject: shop\n  bad: indentation\n";
        assert_contains(&error(text), &["swarmseal.yaml:3:"]);
        let text = "version: 1\nproject: shop\nrecipients:\n\talice: x\n";
        assert_contains(&error(text), &["swarmseal.yaml:4:", "tabs"]);
    }

    #[test]
    fn unknown_keys_are_named_with_the_allowed_ones() {
        let k = keys();
        let text = small(&k).replace("project: shop\n", "project: shop\nrecipient: x\n");
        assert_contains(
            &error(&text),
            &[
                "swarmseal.yaml:3:1: unknown key \"recipient\" at the top level",
                "version, project, recipients, groups, environments, secrets, keep_versions",
            ],
        );
        let text = small(&k) + "    dockerhost: ssh://x\n";
        assert_contains(
            &error(&text),
            &[
                "swarmseal.yaml:9:5: unknown key \"dockerhost\" in an environment",
                "recipients, docker_host, swarm_id",
            ],
        );
        let text = small(&k) + "secrets:\n  db:\n    mod: \"0400\"\n";
        assert_contains(
            &error(&text),
            &[
                "swarmseal.yaml:11:5: unknown key \"mod\" in the settings of a secret",
                "target, uid, gid, mode, labels, rotate_after",
            ],
        );
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let k = keys();
        let text = small(&k).replace("  bob:", &format!("  alice: {}\n  bob:", k.ci_prod));
        assert_contains(
            &error(&text),
            &["swarmseal.yaml:5:3: duplicate key \"alice\""],
        );
    }

    #[test]
    fn version_is_required_and_must_be_one() {
        let k = keys();
        let text = small(&k).replace("version: 1\n", "");
        assert_contains(
            &error(&text),
            &["swarmseal.yaml: missing `version`", "add `version: 1`"],
        );
        let text = small(&k).replace("version: 1", "version: 2");
        assert_contains(
            &error(&text),
            &["swarmseal.yaml:1:10: unsupported manifest version 2"],
        );
        let text = small(&k).replace("version: 1", "version: one");
        assert_contains(&error(&text), &["swarmseal.yaml:1:10:", "\"one\""]);
        assert_contains(&error(""), &["swarmseal.yaml: the manifest is empty"]);
        assert_contains(&error("# nothing\n"), &["empty"]);
    }

    #[test]
    fn project_is_required_and_valid() {
        let k = keys();
        let text = small(&k).replace("project: shop\n", "");
        assert_contains(&error(&text), &["swarmseal.yaml: missing `project`"]);
        let text = small(&k).replace("project: shop", "project: my shop");
        assert_contains(
            &error(&text),
            &["swarmseal.yaml:2:10:", "project name \"my shop\""],
        );
    }

    #[test]
    fn recipient_keys_and_names_are_checked() {
        let k = keys();
        let text = small(&k).replace(&k.alice, "age1notakey");
        assert_contains(
            &error(&text),
            &[
                "swarmseal.yaml:4:10: invalid public key for recipient \"alice\"",
                "hint: use an age public key",
            ],
        );
        let text = small(&k).replace("  bob: ssh-ed25519", "  bob: ssh-dss");
        assert_contains(
            &error(&text),
            &["swarmseal.yaml:5:8: invalid public key for recipient \"bob\""],
        );
        let text = small(&k)
            .replace("  bob:", "  -bob:")
            .replace("[alice, bob]", "[alice]");
        assert_contains(
            &error(&text),
            &["swarmseal.yaml:5:3: invalid recipient name \"-bob\""],
        );
        let text = small(&k)
            .replace("  bob:", "  \"bo b\":")
            .replace("[alice, bob]", "[alice]");
        assert_contains(
            &error(&text),
            &["swarmseal.yaml:5:3: invalid recipient name \"bo b\""],
        );
        // Allowed characters.
        let text = small(&k).replace("bob", "bob.x@laptop_1-2");
        parse(&text).unwrap();
    }

    #[test]
    fn groups_are_checked() {
        let k = keys();
        let with_groups = |groups: &str, env: &str| {
            small(&k)
                .replace("environments:", &format!("groups:\n{groups}environments:"))
                .replace("[alice, bob]", env)
        };
        let text = with_groups("  alice: [bob]\n", "[alice]");
        assert_contains(
            &error(&text),
            &["swarmseal.yaml:7:3: \"alice\" is both a recipient and a group"],
        );
        let text = with_groups("  admins: [alice, carol]\n", "[admins]");
        assert_contains(
            &error(&text),
            &[
                "swarmseal.yaml:7:19: unknown recipient or group \"carol\" in group \"admins\"",
                "known: alice, bob, admins",
            ],
        );
        let text = with_groups("  \"ad mins\": [alice]\n", "[alice]");
        assert_contains(
            &error(&text),
            &["swarmseal.yaml:7:3: invalid group name \"ad mins\""],
        );
        // An environment whose only group is empty has no recipients.
        let text = with_groups("  nobody: []\n", "[nobody]");
        assert_contains(
            &error(&text),
            &[
                "swarmseal.yaml:10:18:",
                "environment \"production\" has no recipients",
            ],
        );
    }

    #[test]
    fn group_cycles_are_reported_with_their_path() {
        let k = keys();
        let text = small(&k)
            .replace(
                "environments:",
                "groups:\n  admins: [alice, ops]\n  ops:\n    - bob\n    - admins\nenvironments:",
            )
            .replace("[alice, bob]", "[admins]");
        assert_contains(
            &error(&text),
            &["swarmseal.yaml:10:7: group cycle: admins -> ops -> admins"],
        );
        let text = small(&k)
            .replace(
                "environments:",
                "groups:\n  x: [alice]\n  self: [x, self]\nenvironments:",
            )
            .replace("[alice, bob]", "[self]");
        assert_contains(
            &error(&text),
            &["swarmseal.yaml:8:13: group cycle: self -> self"],
        );
    }

    #[test]
    fn environments_are_checked() {
        let k = keys();
        let base = small(&k);
        let text = format!(
            "{}environments: {{}}\n",
            &base[..base.find("environments:").unwrap()]
        );
        assert_contains(&error(&text), &["no environments defined"]);
        let text = base[..base.find("environments:").unwrap()].to_string();
        assert_contains(&error(&text), &["swarmseal.yaml: no environments defined"]);
        let text = base.replace("  production:", "  prod/x:");
        assert_contains(
            &error(&text),
            &["swarmseal.yaml:7:3:", "environment name \"prod/x\""],
        );
        let text = base.replace("[alice, bob]", "[]");
        assert_contains(
            &error(&text),
            &["swarmseal.yaml:8:17: environment \"production\" has no recipients"],
        );
        let text = base.replace(
            "    recipients: [alice, bob]\n",
            "    docker_host: unix:///run/docker.sock\n",
        );
        assert_contains(
            &error(&text),
            &["swarmseal.yaml:7:3: environment \"production\" has no recipients"],
        );
        let text = base.replace("[alice, bob]", "[alice, carol]");
        let err = error(&text);
        assert_contains(
            &err,
            &[
                "swarmseal.yaml:8:25: unknown recipient or group \"carol\" in environment \"production\"",
                "hint: add it under recipients: (swarmseal recipients add carol KEY) or fix the name; known: alice, bob",
            ],
        );
        // The manifest accepts and refuses what --host does (one parser).
        for (bad, why) in [
            ("ftp://x", "unsupported scheme"),
            ("npipe:////./pipe/docker_engine", "named pipe"),
            ("ssh://-oProxyCommand=x", "invalid ssh host"),
            ("tcp://m:99999", "invalid port"),
            ("m:2376", "not a Docker endpoint URL"),
        ] {
            let text = base.clone() + &format!("    docker_host: \"{bad}\"\n");
            assert_contains(
                &error(&text),
                &["swarmseal.yaml:9:18: invalid docker_host", why],
            );
            assert!(
                crate::swarm::resolve_endpoint(Some(bad), None).is_err(),
                "{bad}"
            );
        }
        for ok in [
            "unix:///var/run/docker.sock",
            "tcp://m:2376",
            "http://x",
            "ssh://deploy@m",
            "ssh://deploy@m:2222",
        ] {
            let text = base.clone() + &format!("    docker_host: {ok}\n");
            assert_eq!(
                parse(&text).unwrap().environments["production"]
                    .docker_host
                    .as_deref(),
                Some(ok)
            );
        }
        let text = base.clone() + "    swarm_id: \"\"\n";
        assert_contains(&error(&text), &["swarmseal.yaml:9:15: invalid swarm_id"]);
        let text = base.clone() + "  staging:\n";
        assert_contains(
            &error(&text),
            &["swarmseal.yaml:9:3: environment \"staging\" has no recipients"],
        );
    }

    #[test]
    fn secret_settings_are_checked() {
        let k = keys();
        let with = |settings: &str| small(&k) + "secrets:\n  db_password:\n" + settings;
        let text = small(&k) + "secrets:\n  bad name:\n    uid: 0\n";
        assert_contains(
            &error(&text),
            &["swarmseal.yaml:10:3: invalid secret name \"bad name\""],
        );
        assert_contains(
            &error(&with("    mode: \"0800\"\n")),
            &["swarmseal.yaml:11:11: invalid mode \"0800\"", "'8'"],
        );
        assert_contains(
            &error(&with("    mode: 1777\n")),
            &["swarmseal.yaml:11:11:", "larger than 0777"],
        );
        assert_contains(&error(&with("    mode: rw\n")), &["invalid mode \"rw\""]);
        assert_contains(
            &error(&with("    uid: root\n")),
            &["swarmseal.yaml:11:10: invalid uid \"root\""],
        );
        assert_contains(
            &error(&with("    gid: -1\n")),
            &["swarmseal.yaml:11:10: invalid gid \"-1\""],
        );
        assert_contains(
            &error(&with("    labels:\n      io.swarmseal.name: x\n")),
            &[
                "swarmseal.yaml:12:7: label \"io.swarmseal.name\"",
                "reserved prefix",
            ],
        );
        assert_contains(
            &error(&with("    rotate_after: soon\n")),
            &["swarmseal.yaml:11:19: invalid rotate_after \"soon\""],
        );
        assert_contains(
            &error(&with("    rotate_after: 0d\n")),
            &["invalid rotate_after \"0d\"", "zero"],
        );
        assert_contains(
            &error(&with("    target: \"\"\n")),
            &["swarmseal.yaml:11:13: invalid target", "it is empty"],
        );
        // A target stays below /run/secrets/: a pull request must not mount a secret over
        // a system file.
        for (bad, why) in [
            ("/etc/evil", "absolute path"),
            ("../etc/evil", "'..' part"),
            ("a/../../b", "'..' part"),
            ("a//b", "empty"),
            ("a b", "contains ' '"),
            ("x\\ty", "contains"),
        ] {
            assert_contains(
                &error(&with(&format!("    target: \"{bad}\"\n"))),
                &["invalid target", why],
            );
        }
        let m = parse(&with("    target: tls/api.key\n")).unwrap();
        assert_eq!(
            m.settings("db_password").unwrap().target.as_deref(),
            Some("tls/api.key")
        );
        let m = parse(&with(
            "    uid: 1000\n    gid: 0\n    labels: {a: 1, b: true}\n    rotate_after: 12w\n",
        ))
        .unwrap();
        let s = &m.secrets["db_password"];
        assert_eq!(
            (s.uid.as_deref(), s.gid.as_deref()),
            (Some("1000"), Some("0"))
        );
        assert_eq!(s.labels["a"], "1");
        assert_eq!(s.labels["b"], "true");
        assert_eq!(s.rotate_after, Some(Duration::from_secs(12 * 7 * 86400)));
        // A secret listed without settings is fine.
        let m = parse(&(small(&k) + "secrets:\n  db_password:\n")).unwrap();
        assert_eq!(m.secrets["db_password"], SecretSettings::default());
    }

    #[test]
    fn modes_are_octal_digits() {
        assert_eq!(parse_mode("0400"), Ok(0o400));
        assert_eq!(parse_mode("400"), Ok(0o400));
        assert_eq!(parse_mode("0440"), Ok(0o440));
        assert_eq!(parse_mode("0o644"), Ok(0o644));
        assert_eq!(parse_mode("0"), Ok(0));
        assert_eq!(parse_mode("777"), Ok(0o777));
        assert!(parse_mode("1000").is_err());
        assert!(parse_mode("0489").is_err());
        assert!(parse_mode("").is_err());
        assert!(parse_mode("0x1ff").is_err());
        // YAML integers (0400 is decimal 400 in YAML 1.2) are read as written.
        let k = keys();
        for (written, mode) in [
            ("0400", 0o400),
            ("400", 0o400),
            ("\"0440\"", 0o440),
            ("'600'", 0o600),
        ] {
            let text = small(&k) + &format!("secrets:\n  db:\n    mode: {written}\n");
            assert_eq!(
                parse(&text).unwrap().secrets["db"].mode,
                Some(mode),
                "{written}"
            );
        }
    }

    #[test]
    fn keep_versions_is_a_count() {
        let k = keys();
        assert_eq!(
            parse(&(small(&k) + "keep_versions: 3\n"))
                .unwrap()
                .keep_versions,
            3
        );
        assert_contains(
            &error(&(small(&k) + "keep_versions: -1\n")),
            &["swarmseal.yaml:9:16: keep_versions"],
        );
        assert_contains(
            &error(&(small(&k) + "keep_versions: many\n")),
            &["keep_versions", "\"many\""],
        );
    }

    #[test]
    fn render_new_round_trips() {
        let k = keys();
        let text = render_new(
            "shop",
            &["production".to_string(), "staging".to_string()],
            &[
                ("alice".to_string(), k.alice.clone()),
                ("bob".to_string(), BOB_SSH.to_string()),
            ],
        );
        let m = parse(&text).unwrap();
        assert_eq!(m.project, "shop");
        assert_eq!(m.recipients["alice"], k.alice);
        assert_eq!(m.recipients["bob"], BOB_SSH);
        assert_eq!(m.environments.len(), 2);
        for env in ["production", "staging"] {
            assert_eq!(m.environments[env].recipients, vec!["alice", "bob"]);
        }
        assert_eq!(m.keep_versions, 0);
        assert!(text.contains("# secrets:"));
        assert!(text.contains("keep_versions: 0"));
        // A name YAML would read as something else is quoted.
        let text = render_new(
            "1234",
            &["true".to_string()],
            &[("null".to_string(), k.alice.clone())],
        );
        let m = parse(&text).unwrap();
        assert_eq!(m.project, "1234");
        assert_eq!(m.environments["true"].recipients, vec!["null"]);
        // And the rendered manifest accepts edits.
        let added = add_recipient(
            &render_new(
                "shop",
                &["production".into()],
                &[("alice".into(), k.alice.clone())],
            ),
            &path(),
            "ci",
            &k.ci_prod,
            &[],
        )
        .unwrap();
        assert_eq!(
            parse(&added).unwrap().environments["production"].recipients,
            vec!["alice", "ci"]
        );
    }

    const COMMENT: &str = "  # a comment line that must survive: byte-for-byte   \n";

    #[test]
    fn add_to_block_layouts_keeps_comments() {
        let k = keys();
        let text = format!(
            "version: 1\nproject: shop\nrecipients:\n  alice: {}  # the boss\n{COMMENT}\ngroups:\n  admins:\n    - alice   # first\n{COMMENT}environments:\n  production:\n    recipients:\n      - admins\n{COMMENT}  staging:\n    recipients:\n    - alice\n# end\n",
            k.alice
        );
        let new = add_recipient(&text, &path(), "bob", BOB_SSH, &[]).unwrap();
        assert_eq!(new.matches(COMMENT).count(), 3, "{new}");
        assert!(new.contains("# the boss\n  bob: ssh-ed25519"), "{new}");
        assert!(new.contains("      - admins\n      - bob\n"), "{new}");
        assert!(new.contains("    - alice\n    - bob\n# end\n"), "{new}");
        let m = parse(&new).unwrap();
        assert_eq!(m.recipients["bob"], BOB_SSH);
        assert_eq!(
            m.environments["production"].recipients,
            vec!["admins", "bob"]
        );
        assert_eq!(m.environments["staging"].recipients, vec!["alice", "bob"]);
        assert_eq!(m.groups["admins"], vec!["alice"]);

        // Into a group only.
        let new = add_recipient(&text, &path(), "bob", BOB_SSH, &["admins".into()]).unwrap();
        let m = parse(&new).unwrap();
        assert_eq!(m.groups["admins"], vec!["alice", "bob"]);
        assert_eq!(m.environments["staging"].recipients, vec!["alice"]);
        assert!(new.contains("    - alice   # first\n    - bob\n"), "{new}");
        assert_eq!(new.matches(COMMENT).count(), 3);

        // And back: remove restores the original text exactly.
        let back = remove_recipient(&new, &path(), "bob").unwrap();
        assert_eq!(back, text);
    }

    #[test]
    fn add_to_flow_layouts_keeps_comments() {
        let k = keys();
        let text = format!(
            "version: 1\nproject: shop\n{COMMENT}recipients: {{alice: {}}}   # inline\ngroups:\n  admins: [alice]\n  empty: []\nenvironments:\n  production: {{recipients: [admins]}}\n{COMMENT}  staging:\n    recipients: [ alice ]  # x\n",
            k.alice
        );
        let new = add_recipient(
            &text,
            &path(),
            "bob",
            BOB_SSH,
            &["staging".into(), "empty".into()],
        )
        .unwrap();
        assert_eq!(new.matches(COMMENT).count(), 2, "{new}");
        assert!(
            new.contains(&format!(
                "recipients: {{alice: {}, bob: {BOB_SSH}}}   # inline\n",
                k.alice
            )),
            "{new}"
        );
        assert!(
            new.contains("    recipients: [ alice, bob ]  # x\n"),
            "{new}"
        );
        assert!(new.contains("  empty: [bob]\n"), "{new}");
        assert!(
            new.contains("  production: {recipients: [admins]}\n"),
            "{new}"
        );
        let m = parse(&new).unwrap();
        assert_eq!(m.environments["staging"].recipients, vec!["alice", "bob"]);
        assert_eq!(m.environments["production"].recipients, vec!["admins"]);
        assert_eq!(m.groups["empty"], vec!["bob"]);

        let new = add_recipient(&text, &path(), "bob", BOB_SSH, &[]).unwrap();
        assert!(
            new.contains("  production: {recipients: [admins, bob]}\n"),
            "{new}"
        );
        let back = remove_recipient(&new, &path(), "bob").unwrap();
        assert_eq!(back, text);
    }

    #[test]
    fn add_creates_missing_pieces() {
        let k = keys();
        // No recipients: block at all yet; an environment without a recipients key.
        let text = format!(
            "version: 1\nproject: shop   # p\n{COMMENT}groups:\n  admins: [ci]\nenvironments:\n  production:\n    recipients: [admins]\n  staging:\n    docker_host: ssh://x\n"
        );
        // The input is invalid (ci is unknown) but the edit makes it whole.
        let new = add_recipient(&text, &path(), "ci", &k.ci_prod, &["staging".into()]).unwrap();
        assert!(
            new.contains(&format!(
                "project: shop   # p\nrecipients:\n  ci: {}\n",
                k.ci_prod
            )),
            "{new}"
        );
        assert!(
            new.contains("    docker_host: ssh://x\n    recipients: [ci]\n"),
            "{new}"
        );
        assert_eq!(new.matches(COMMENT).count(), 1);
        let m = parse(&new).unwrap();
        assert_eq!(m.env_recipients("production").unwrap()[0].0, "ci");

        // recipients: present but empty, file without a final newline, CRLF kept.
        let text = "version: 1\r\nproject: shop\r\nrecipients:   # none yet\r\nenvironments:\r\n  production:\r\n    recipients:\r\n    - alice";
        let new = add_recipient(text, &path(), "alice", &k.alice, &["production".into()]).unwrap();
        assert_eq!(
            new,
            format!("version: 1\r\nproject: shop\r\nrecipients:   # none yet\r\n  alice: {}\r\nenvironments:\r\n  production:\r\n    recipients:\r\n    - alice", k.alice)
        );
    }

    #[test]
    fn add_refuses_bad_input() {
        let k = keys();
        let text = small(&k);
        let err = add_recipient(&text, &path(), "alice", &k.ci_prod, &[])
            .unwrap_err()
            .to_string();
        assert_contains(&err, &["already exists", "recipients rm alice"]);
        let err = add_recipient(&text, &path(), "carol", "age1nope", &[])
            .unwrap_err()
            .to_string();
        assert_contains(
            &err,
            &["invalid public key for recipient \"carol\"", "hint:"],
        );
        let err = add_recipient(&text, &path(), "ca rol", &k.ci_prod, &[])
            .unwrap_err()
            .to_string();
        assert_contains(&err, &["invalid recipient name \"ca rol\""]);
        let err = add_recipient(&text, &path(), "carol", &k.ci_prod, &["prod".into()])
            .unwrap_err()
            .to_string();
        assert_contains(
            &err,
            &[
                "unknown environment or group \"prod\"",
                "known environments: production",
            ],
        );
        let err = add_recipient("version: [", &path(), "carol", &k.ci_prod, &[])
            .unwrap_err()
            .to_string();
        assert_contains(&err, &["swarmseal.yaml:1:"]);
    }

    #[test]
    fn remove_from_block_and_flow_lists() {
        let k = keys();
        let text = format!(
            "version: 1\nproject: shop\nrecipients:\n  alice: {alice}\n{COMMENT}  bob: {BOB_SSH}   # laptop\n  ci: {ci}\ngroups:\n  admins: [alice, bob]\n  ops:\n    - bob\n  solo: [bob]\nenvironments:\n  production:\n    recipients:\n      - bob\n{COMMENT}      - ci\n      - bob\n  staging: {{recipients: [bob, admins, ci]}}\n",
            alice = k.alice,
            ci = k.ci_prod
        );
        let new = remove_recipient(&text, &path(), "bob").unwrap();
        assert_eq!(
            new,
            format!(
                "version: 1\nproject: shop\nrecipients:\n  alice: {alice}\n{COMMENT}  ci: {ci}\ngroups:\n  admins: [alice]\n  ops: []\n  solo: []\nenvironments:\n  production:\n    recipients:\n{COMMENT}      - ci\n  staging: {{recipients: [admins, ci]}}\n",
                alice = k.alice,
                ci = k.ci_prod
            )
        );
        let m = parse(&new).unwrap();
        assert!(!m.recipients.contains_key("bob"));
        assert!(m.groups["ops"].is_empty());

        // Flow mapping of recipients: first, middle and last entries.
        let flow = format!(
            "version: 1\nproject: shop\nrecipients: {{a: {a}, b: {b}, c: {c}}}\nenvironments:\n  production: {{recipients: [a, b, c]}}\n",
            a = k.alice,
            b = k.ci_prod,
            c = k.ci_staging
        );
        let keep = |text: &str, gone: &str| {
            let m = parse(&remove_recipient(text, &path(), gone).unwrap()).unwrap();
            let left: Vec<String> = m.recipients.keys().cloned().collect();
            assert_eq!(m.environments["production"].recipients, left);
            left
        };
        assert_eq!(keep(&flow, "a"), ["b", "c"]);
        assert_eq!(keep(&flow, "b"), ["a", "c"]);
        assert_eq!(keep(&flow, "c"), ["a", "b"]);
        let new = remove_recipient(&flow, &path(), "c").unwrap();
        assert!(
            new.contains(&format!(
                "recipients: {{a: {}, b: {}}}\n",
                k.alice, k.ci_prod
            )),
            "{new}"
        );
        assert!(new.contains("production: {recipients: [a, b]}\n"), "{new}");
    }

    #[test]
    fn remove_refuses_to_empty_an_environment() {
        let k = keys();
        let text = small(&k) + "  staging:\n    recipients: [bob]\n";
        let err = remove_recipient(&text, &path(), "bob").unwrap_err();
        assert_contains(
            &err.to_string(),
            &[
                "environment \"staging\" would be left with no recipients",
                "hint:",
            ],
        );
        // Also through a group that would become empty.
        let text = small(&k).replace("environments:", "groups:\n  g: [bob]\nenvironments:")
            + "  staging:\n    recipients: [g]\n";
        let err = remove_recipient(&text, &path(), "bob").unwrap_err();
        assert_contains(
            &err.to_string(),
            &["environment \"staging\" would be left with no recipients"],
        );
        // Unknown names are listed.
        let err = remove_recipient(&small(&k), &path(), "carol")
            .unwrap_err()
            .to_string();
        assert_contains(&err, &["no such recipient", "known recipients: alice, bob"]);
        // Removing the last recipient of one environment is refused, of a shared one fine.
        let new = remove_recipient(&small(&k), &path(), "bob").unwrap();
        assert_eq!(
            parse(&new).unwrap().environments["production"].recipients,
            vec!["alice"]
        );
    }

    #[test]
    fn scalars_are_quoted_when_needed() {
        assert_eq!(yaml_scalar("alice", false), "alice");
        assert_eq!(yaml_scalar(BOB_SSH, false), BOB_SSH);
        assert_eq!(yaml_scalar("true", false), "\"true\"");
        assert_eq!(yaml_scalar("0400", false), "\"0400\"");
        assert_eq!(yaml_scalar("a: b", false), "\"a: b\"");
        assert_eq!(yaml_scalar("a,b", false), "a,b");
        assert_eq!(yaml_scalar("a,b", true), "\"a,b\"");
        assert_eq!(yaml_scalar("x #y", false), "\"x #y\"");
        assert_eq!(yaml_scalar("say \"hi\"", false), "say \"hi\"");
        assert_eq!(yaml_scalar("\"q", false), "\"\\\"q\"");
    }
}
