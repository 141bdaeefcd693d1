//! Textual edits of the manifest (`recipients add|rm`): the YAML event stream locates the
//! nodes to change and only those bytes are rewritten, so comments and layout survive.

use super::*;
pub(super) fn tree_of(text: &str, path: &Path) -> Result<Node> {
    build_tree(text).map_err(|reason| {
        Error::new(format!(
            "{}: cannot read the YAML structure: {reason}",
            path.display()
        ))
        .hint("fix the YAML, or edit the file by hand")
    })
}

pub(super) fn check_edited(new_text: String, path: &Path, action: &str) -> Result<String> {
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
    let key = check_new_recipient(name, key)?;
    let raw = parse_raw(text, path)?;
    check_name_is_free(&raw, path, name, &action)?;
    let targets = add_targets(&raw, path, to, &action)?;

    let root = tree_of(text, path)?;
    let mut ed = Editor::new(text, path);
    let unit = ed.indent_unit(&root);
    add_recipient_entry(&mut ed, &root, name, key, unit)?;
    add_to_environments(&mut ed, &root, &targets.environments, name, unit)?;
    add_to_groups(&mut ed, &root, &targets.groups, name)?;
    let new_text = ed.apply()?;
    check_edited(new_text, path, &action)
}

/// Checks the name and public key of a new recipient; returns the key trimmed.
fn check_new_recipient<'k>(name: &str, key: &'k str) -> Result<&'k str> {
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
    Ok(key)
}

/// Refuses a new recipient name already used by a recipient or a group.
fn check_name_is_free(raw: &RawManifest, path: &Path, name: &str, action: &str) -> Result<()> {
    if raw.recipient_names().contains(&name) {
        return Err(Error::new(format!(
            "{action}: it already exists in {}",
            path.display()
        ))
        .hint(format!(
            "to change its key, remove it first (swarmseal recipients rm {name}), or choose another name"
        )));
    }
    if raw.group_names().contains(&name) {
        return Err(Error::new(format!(
            "{action}: {name:?} is already a group in {}",
            path.display()
        ))
        .hint("recipients and groups share one namespace; choose another name"));
    }
    Ok(())
}

/// The environments and groups whose lists get a new recipient, each named once.
struct AddTargets<'a> {
    environments: Vec<&'a str>,
    groups: Vec<&'a str>,
}

/// Sorts the names in `to` into environments and groups (every environment when empty).
fn add_targets<'a>(
    raw: &'a RawManifest,
    path: &Path,
    to: &'a [String],
    action: &str,
) -> Result<AddTargets<'a>> {
    let groups = raw.group_names();
    let envs = raw.environment_names();
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
    Ok(AddTargets {
        environments: env_targets,
        groups: group_targets,
    })
}

/// Adds `name: key` to `recipients:`, writing that mapping after `project:` when missing.
fn add_recipient_entry(
    ed: &mut Editor<'_>,
    root: &Node,
    name: &str,
    key: &str,
    unit: usize,
) -> Result<()> {
    let Node::Map {
        flow: false,
        entries: top,
        ..
    } = root
    else {
        return Err(ed.unsupported(root.start(), "the top level"));
    };
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
    Ok(())
}

/// Appends `name` to the recipient lists of `envs`, creating a list where there is none.
fn add_to_environments(
    ed: &mut Editor<'_>,
    root: &Node,
    envs: &[&str],
    name: &str,
    unit: usize,
) -> Result<()> {
    for env in envs {
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
    Ok(())
}

/// Appends `name` to the member lists of `groups` that do not list it yet.
fn add_to_groups(ed: &mut Editor<'_>, root: &Node, groups: &[&str], name: &str) -> Result<()> {
    for group in groups {
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
    Ok(())
}

/// Removes recipient `name` from the manifest text: its `recipients:` entry and every
/// reference in groups and environments. Refuses when an environment would be left
/// without recipients. Comments and layout are kept; the result is parsed and validated.
pub fn remove_recipient(text: &str, path: &Path, name: &str) -> Result<String> {
    let action = format!("cannot remove recipient {name:?}");
    let manifest = Manifest::parse(text, path)?;
    check_is_recipient(&manifest, path, name, &action)?;
    check_environments_keep_recipients(&manifest, name, &action)?;

    let root = tree_of(text, path)?;
    let mut ed = Editor::new(text, path);
    remove_recipient_entry(&mut ed, &root, name)?;
    remove_references(&mut ed, &root, name)?;
    let new_text = ed.apply()?;
    check_edited(new_text, path, &action)
}

/// Refuses to remove a name that is a group or no recipient at all.
fn check_is_recipient(manifest: &Manifest, path: &Path, name: &str, action: &str) -> Result<()> {
    if manifest.recipients.contains_key(name) {
        return Ok(());
    }
    if manifest.groups.contains_key(name) {
        return Err(
            Error::new(format!("{action}: it is a group, not a recipient")).hint(format!(
                "remove the group from groups: in {} by hand",
                path.display()
            )),
        );
    }
    let known: Vec<&str> = manifest.recipients.keys().map(String::as_str).collect();
    Err(Error::new(format!(
        "{action}: there is no such recipient in {}",
        path.display()
    ))
    .hint(format!("known recipients: {}", known_list(&known))))
}

/// Refuses a removal that would leave an environment without recipients.
fn check_environments_keep_recipients(manifest: &Manifest, name: &str, action: &str) -> Result<()> {
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
    Ok(())
}

/// Removes the entry `name` from the `recipients:` mapping.
fn remove_recipient_entry(ed: &mut Editor<'_>, root: &Node, name: &str) -> Result<()> {
    let Some((k, v)) = root.get("recipients") else {
        return Ok(());
    };
    let remove = match v {
        Node::Map { entries, .. } => entries
            .iter()
            .map(|(ek, _)| ek.scalar() == Some(name))
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    ed.remove_units(k, v, &remove, "recipients:")
}

/// Removes `name` from the member lists of groups and the recipient lists of environments.
fn remove_references(ed: &mut Editor<'_>, root: &Node, name: &str) -> Result<()> {
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
    Ok(())
}
