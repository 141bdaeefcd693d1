//! Validation of the raw manifest into [`Manifest`]: version and project, recipients,
//! groups (no cycles), environments, secrets and their settings (target, uid, gid, mode,
//! labels, rotate_after), keep_versions. [`validate`] checks these sections one function
//! each, in that order, and stops at the first problem, which is the one reported.

use super::*;

/// Why a recipient or group name is invalid: `[A-Za-z0-9][A-Za-z0-9_.@-]*`.
pub(super) fn recipient_name_problem(name: &str) -> Option<String> {
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
pub(super) fn target_problem(target: &str) -> Option<String> {
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
pub(super) fn parse_mode(text: &str) -> std::result::Result<u32, String> {
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

/// Names joined for a hint, or "none yet" when there are none.
pub(super) fn known_list(names: &[&str]) -> String {
    if names.is_empty() {
        "none yet".into()
    } else {
        names.join(", ")
    }
}

/// Validates the raw manifest one section at a time, in key order; the first problem wins.
pub(super) fn validate(raw: RawManifest, path: &Path) -> Result<Manifest> {
    check_version(&raw, path)?;
    let project = validate_project(&raw, path)?;
    let recipients = validate_recipients(&raw, path)?;
    let groups = validate_groups(&raw, path, &recipients)?;
    let mut manifest = Manifest {
        version: VERSION,
        project,
        recipients,
        groups,
        environments: BTreeMap::new(),
        secrets: BTreeMap::new(),
        keep_versions: 0,
    };
    manifest.environments = validate_environments(&raw, path, &manifest)?;
    manifest.secrets = validate_secrets(&raw, path)?;
    manifest.keep_versions = validate_keep_versions(&raw, path)?;
    Ok(manifest)
}

/// Checks that `version` is present and is the one this build understands.
fn check_version(raw: &RawManifest, path: &Path) -> Result<()> {
    let Some(version) = &raw.version else {
        return Err(Error::new(format!(
            "{}: missing `version`; expected `version: {VERSION}`",
            path.display()
        ))
        .hint(format!(
            "add `version: {VERSION}` as the first line of {MANIFEST_FILE}"
        )));
    };
    match version.value.trim().parse::<u32>() {
        Ok(VERSION) => Ok(()),
        Ok(other) => Err(err_at(
            path,
            version,
            format!("unsupported manifest version {other}; this swarmseal understands version {VERSION}"),
        )
        .hint(format!(
            "upgrade swarmseal, or write `version: {VERSION}` if the file follows this format"
        ))),
        Err(_) => Err(err_at(
            path,
            version,
            format!("version must be the number {VERSION}, found {:?}", version.value),
        )
        .hint(format!("write `version: {VERSION}`"))),
    }
}

/// The `project` name: present and usable in Swarm labels and lock names.
fn validate_project(raw: &RawManifest, path: &Path) -> Result<String> {
    let Some(p) = &raw.project else {
        return Err(
            Error::new(format!("{}: missing `project`", path.display())).hint(
                "add `project: NAME`; it scopes every secret this repository manages on a Swarm",
            ),
        );
    };
    if let Err(reason) = names::check_scope_name("project", &p.value) {
        return Err(err_at(path, p, reason).hint(
            "the project name is used in Swarm labels and lock names; use e.g. `project: shop`",
        ));
    }
    Ok(p.value.clone())
}

/// The `recipients:` mapping: valid names and parseable public keys (trimmed).
fn validate_recipients(raw: &RawManifest, path: &Path) -> Result<BTreeMap<String, String>> {
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
    Ok(recipients)
}

/// Hint for an unknown recipient or group reference: how to add it, and the known names.
fn unknown_hint(raw: &RawManifest, name: &str) -> String {
    let mut known: Vec<&str> = raw.recipient_names();
    known.extend(raw.group_names());
    format!(
        "add it under recipients: (swarmseal recipients add {name} KEY) or fix the name; known: {}",
        known_list(&known)
    )
}

/// The raw `groups:` entries in document order, a group without members as an empty list.
fn raw_group_list(raw: &RawManifest) -> Vec<(&Text, &[Text])> {
    raw.groups
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
        .unwrap_or_default()
}

/// The `groups:` mapping: each group checked in document order, then no cycles.
fn validate_groups(
    raw: &RawManifest,
    path: &Path,
    recipients: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Vec<String>>> {
    let raw_groups = raw_group_list(raw);
    let mut groups = BTreeMap::new();
    for (name, members) in &raw_groups {
        check_group(raw, path, recipients, &raw_groups, name, members)?;
        groups.insert(
            name.value.clone(),
            members.iter().map(|m| m.value.clone()).collect::<Vec<_>>(),
        );
    }
    check_no_group_cycle(path, &raw_groups)?;
    Ok(groups)
}

/// One group: a valid name that is not also a recipient, and members that exist.
fn check_group(
    raw: &RawManifest,
    path: &Path,
    recipients: &BTreeMap<String, String>,
    raw_groups: &[(&Text, &[Text])],
    name: &Text,
    members: &[Text],
) -> Result<()> {
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
    for member in members {
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
            .hint(unknown_hint(raw, &member.value)));
        }
    }
    Ok(())
}

/// Refuses a group that contains itself, directly or through other groups.
fn check_no_group_cycle(path: &Path, raw_groups: &[(&Text, &[Text])]) -> Result<()> {
    match find_group_cycle(raw_groups) {
        Some((cycle, loc)) => Err(Error::new(format!(
            "{}: group cycle: {}",
            at(path, &loc),
            cycle.join(" -> ")
        ))
        .hint("a group cannot contain itself, directly or through other groups; remove one of these references")),
        None => Ok(()),
    }
}

/// The `environments:` mapping: at least one, each checked against `partial`'s names.
fn validate_environments(
    raw: &RawManifest,
    path: &Path,
    partial: &Manifest,
) -> Result<BTreeMap<String, Environment>> {
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
            .unwrap_or_else(|| path.display().to_string());
        return Err(Error::new(format!("{place}: no environments defined; expected at least one under environments:"))
            .hint("add one, e.g. `environments: {production: {recipients: [alice]}}` (one environment per Swarm)"));
    }
    let mut environments = BTreeMap::new();
    for (name, env) in raw_envs {
        if let Err(reason) = names::check_scope_name("environment", &name.value) {
            return Err(err_at(path, name, reason)
                .hint("environment names become folders under secrets/ and Swarm labels; use e.g. production or staging"));
        }
        let Some(env) = env else {
            return Err(no_recipients(path, name, &name.value));
        };
        environments.insert(
            name.value.clone(),
            Environment {
                recipients: environment_recipients(raw, path, partial, name, env)?,
                docker_host: environment_docker_host(path, name, env)?,
                swarm_id: environment_swarm_id(path, name, env)?,
            },
        );
    }
    Ok(environments)
}

/// The error for environment `env` without recipients, pointing at `node`.
fn no_recipients<T>(path: &Path, node: &Spanned<T>, env: &str) -> Error {
    err_at(path, node, format!("environment {env:?} has no recipients")).hint(
        "list who can decrypt its secrets, e.g. `recipients: [alice]` (recipient or group names)",
    )
}

/// An environment's recipient and group names: known, reaching at least one recipient.
fn environment_recipients(
    raw: &RawManifest,
    path: &Path,
    partial: &Manifest,
    name: &Text,
    env: &RawEnvironment,
) -> Result<Vec<String>> {
    let refs: &[Text] = env.recipients.as_ref().map(|r| &r.value[..]).unwrap_or(&[]);
    if refs.is_empty() {
        return Err(match &env.recipients {
            Some(list) => no_recipients(path, list, &name.value),
            None => no_recipients(path, name, &name.value),
        });
    }
    for r in refs {
        if !partial.recipients.contains_key(&r.value) && !partial.groups.contains_key(&r.value) {
            return Err(err_at(
                path,
                r,
                format!(
                    "unknown recipient or group {:?} in environment {:?}",
                    r.value, name.value
                ),
            )
            .hint(unknown_hint(raw, &r.value)));
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
    Ok(names)
}

/// An environment's optional `docker_host`, checked by the same parser as --host.
fn environment_docker_host(
    path: &Path,
    name: &Text,
    env: &RawEnvironment,
) -> Result<Option<String>> {
    let Some(h) = &env.docker_host else {
        return Ok(None);
    };
    // The same parser as --host and DOCKER_HOST: what one accepts, so does the other.
    if let Err(reason) = crate::swarm::check_url(h.value.trim()) {
        return Err(err_at(
            path,
            h,
            format!("invalid docker_host {:?} for environment {:?}: it {reason}", h.value, name.value),
        )
        .hint("use e.g. ssh://deploy@manager, ssh://deploy@manager:2222, tcp://manager:2376, http://127.0.0.1:2375 or unix:///var/run/docker.sock"));
    }
    Ok(Some(h.value.trim().to_string()))
}

/// An environment's optional `swarm_id`: one word, the Swarm's cluster ID.
fn environment_swarm_id(path: &Path, name: &Text, env: &RawEnvironment) -> Result<Option<String>> {
    let Some(id) = &env.swarm_id else {
        return Ok(None);
    };
    let v = id.value.trim();
    if v.is_empty() || v.chars().any(char::is_whitespace) {
        return Err(err_at(
            path,
            id,
            format!("invalid swarm_id {:?} for environment {:?}: expected the Swarm's cluster ID", id.value, name.value),
        )
        .hint("copy the ID shown by `docker info --format '{{.Swarm.Cluster.ID}}'` on a manager, or remove the line"));
    }
    Ok(Some(v.to_string()))
}

/// The `secrets:` mapping: valid logical names, each with its settings checked.
fn validate_secrets(raw: &RawManifest, path: &Path) -> Result<BTreeMap<String, SecretSettings>> {
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
    Ok(secrets)
}

/// `keep_versions`: a whole number, 0 when absent.
fn validate_keep_versions(raw: &RawManifest, path: &Path) -> Result<u32> {
    let Some(k) = &raw.keep_versions else {
        return Ok(0);
    };
    k.value.trim().parse::<u32>().map_err(|_| {
        err_at(
            path,
            k,
            format!(
                "keep_versions must be a whole number, 0 or more; found {:?}",
                k.value
            ),
        )
        .hint("write e.g. `keep_versions: 0` (superseded Swarm versions kept for rollback)")
    })
}

/// One secret's settings, checked in order: target, uid, gid, mode, labels, rotate_after,
/// generate.
pub(super) fn validate_secret(
    path: &Path,
    secret: &str,
    raw: &RawSecret,
) -> Result<SecretSettings> {
    Ok(SecretSettings {
        target: secret_target(path, secret, raw.target.as_ref())?,
        uid: secret_id(path, secret, "uid", raw.uid.as_ref())?,
        gid: secret_id(path, secret, "gid", raw.gid.as_ref())?,
        mode: secret_mode(path, secret, raw.mode.as_ref())?,
        labels: secret_labels(path, secret, raw.labels.as_ref())?,
        rotate_after: secret_rotate_after(path, secret, raw.rotate_after.as_ref())?,
        generate: secret_generate(path, secret, raw.generate.as_ref())?,
    })
}

/// A secret's optional `target`: a file name below /run/secrets/ (see [`target_problem`]).
fn secret_target(path: &Path, secret: &str, target: Option<&Text>) -> Result<Option<String>> {
    let Some(t) = target else {
        return Ok(None);
    };
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
    Ok(Some(t.value.clone()))
}

/// A secret's optional `uid` or `gid` (`field`): a numeric id that fits in 32 bits.
fn secret_id(
    path: &Path,
    secret: &str,
    field: &str,
    value: Option<&Text>,
) -> Result<Option<String>> {
    let Some(t) = value else {
        return Ok(None);
    };
    let s = t.value.trim();
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) || s.parse::<u32>().is_err() {
        return Err(err_at(
            path,
            t,
            format!(
                "invalid {field} {:?} for secret {secret:?}: expected a numeric id",
                t.value
            ),
        )
        .hint(format!(
            "write e.g. `{field}: \"0\"` (a number, as in docker service --secret {field}=0)"
        )));
    }
    Ok(Some(s.to_string()))
}

/// A secret's optional `mode`, in octal (see [`parse_mode`]).
fn secret_mode(path: &Path, secret: &str, mode: Option<&Text>) -> Result<Option<u32>> {
    let Some(m) = mode else {
        return Ok(None);
    };
    let mode = parse_mode(&m.value).map_err(|reason| {
        err_at(
            path,
            m,
            format!(
                "invalid mode {:?} for secret {secret:?}: {reason}; expected octal digits",
                m.value
            ),
        )
        .hint("write the mode in octal as a string, e.g. `mode: \"0400\"` or `mode: \"0440\"`")
    })?;
    Ok(Some(mode))
}

/// A secret's `labels`: non-empty keys outside swarmseal's reserved prefix.
fn secret_labels(
    path: &Path,
    secret: &str,
    raw_labels: Option<&Spanned<Entries<Text>>>,
) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let Some(raw_labels) = raw_labels else {
        return Ok(labels);
    };
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
    Ok(labels)
}

/// A secret's optional `rotate_after`: a non-zero duration such as 90d.
fn secret_rotate_after(
    path: &Path,
    secret: &str,
    value: Option<&Text>,
) -> Result<Option<Duration>> {
    let Some(r) = value else {
        return Ok(None);
    };
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
    Ok(Some(d))
}

/// A secret's optional `generate: { length, charset }`; omitted keys take the defaults of
/// `set --generate` (32, alnum), and `generate:` alone means both.
fn secret_generate(
    path: &Path,
    secret: &str,
    value: Option<&Spanned<Option<RawGenerate>>>,
) -> Result<Option<Generate>> {
    let Some(node) = value else {
        return Ok(None);
    };
    let mut generate = Generate::default();
    let Some(raw) = &node.value else {
        return Ok(Some(generate));
    };
    let example = "write e.g. `generate: { length: 40, charset: alnum }`";
    if let Some(l) = &raw.length {
        let length = l.value.trim().parse::<usize>().map_err(|_| {
            err_at(
                path,
                l,
                format!(
                    "invalid generate length {:?} for secret {secret:?}: expected a whole number of characters",
                    l.value
                ),
            )
            .hint(example)
        })?;
        if let Some(problem) = value::length_problem(length) {
            return Err(err_at(
                path,
                l,
                format!("invalid generate length for secret {secret:?}: {problem}"),
            )
            .hint(example));
        }
        generate.length = length;
    }
    if let Some(c) = &raw.charset {
        generate.charset = Charset::from_name(c.value.trim()).ok_or_else(|| {
            err_at(
                path,
                c,
                format!(
                    "invalid generate charset {:?} for secret {secret:?}: expected one of {}",
                    c.value,
                    Charset::NAMES
                ),
            )
            .hint(example)
        })?;
    }
    Ok(Some(generate))
}

/// The first group cycle found (in document order), as a path `a -> b -> a`, with the
/// location of the reference that closes it.
pub(super) fn find_group_cycle(groups: &[(&Text, &[Text])]) -> Option<(Vec<String>, Location)> {
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
