use super::*;
use std::path::PathBuf;

const BOB_SSH: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID/am6oh4vaToSZDc2+F+bcZM1Q53VOfZh6iJL0mvvB/ bob@laptop";

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

/// The README's example manifest with real keys.
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
            "target, uid, gid, mode, labels, rotate_after, generate",
        ],
    );
    let text = small(&k) + "secrets:\n  db:\n    generate: { lenght: 40 }\n";
    assert_contains(
        &error(&text),
        &[
            "swarmseal.yaml:11:17: unknown key \"lenght\" in a secret's generate:",
            "length, charset",
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
fn generate_settings_are_parsed_with_defaults() {
    let k = keys();
    let generate = |settings: &str| {
        let text = small(&k) + "secrets:\n  db_password:\n" + settings;
        parse(&text).unwrap().secrets["db_password"].generate
    };
    let g = |length, charset| Some(Generate { length, charset });
    assert_eq!(
        generate("    generate: { length: 40, charset: hex }\n"),
        g(40, Charset::Hex)
    );
    assert_eq!(
        generate("    generate:\n      length: \"511999\"\n      charset: ascii\n"),
        g(511_999, Charset::Ascii)
    );
    assert_eq!(
        generate("    generate: { charset: base64 }\n"),
        g(32, Charset::Base64)
    );
    assert_eq!(
        generate("    generate: { length: 1 }\n"),
        g(1, Charset::Alnum)
    );
    // `generate:` alone, or an empty mapping: both defaults, those of `set --generate`.
    assert_eq!(generate("    generate:\n"), g(32, Charset::Alnum));
    assert_eq!(generate("    generate: {}\n"), g(32, Charset::Alnum));
    assert_eq!(generate("    rotate_after: 30d\n"), None);
    assert_eq!(
        g(40, Charset::Alnum).unwrap().to_string(),
        "40 alnum characters"
    );
}

#[test]
fn generate_settings_are_checked() {
    let k = keys();
    let with = |settings: &str| small(&k) + "secrets:\n  db_password:\n" + settings;
    for (bad, wanted) in [
        (
            "    generate: { length: 0 }\n",
            &["swarmseal.yaml:11:25: invalid generate length for secret \"db_password\"", "1 to 511999"][..],
        ),
        (
            "    generate: { length: 512000 }\n",
            &["swarmseal.yaml:11:25:", "512000 is out of range"],
        ),
        (
            "    generate: { length: -3 }\n",
            &["invalid generate length \"-3\"", "whole number"],
        ),
        ("    generate: { length: 4.5 }\n", &["invalid generate length \"4.5\""]),
        (
            "    generate: { charset: Alnum }\n",
            &[
                "swarmseal.yaml:11:26: invalid generate charset \"Alnum\" for secret \"db_password\"",
                "alnum, hex, base64, ascii",
            ],
        ),
        ("    generate: { charset: emoji }\n", &["invalid generate charset \"emoji\""]),
        ("    generate: 40\n", &["swarmseal.yaml:11:"]),
        ("    generate: [40, hex]\n", &["swarmseal.yaml:11:"]),
    ] {
        let err = error(&with(bad));
        assert_contains(&err, wanted);
    }
    assert_contains(
        &error(&with("    generate: { length: 0 }\n")),
        &["generate: { length: 40, charset: alnum }"],
    );
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
