//! The manifest `init` writes.

/// A YAML scalar for `s`: plain when that reads back as the same string, else
/// double-quoted. In flow context (`[...]`, `{...}`) the flow indicators need quoting too.
pub(super) fn yaml_scalar(s: &str, flow: bool) -> String {
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
