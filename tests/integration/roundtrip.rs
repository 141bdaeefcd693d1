//! Round trips through the repository's YAML files, for any valid name (design §5, §3.5):
//!
//! - the index (`.swarmseal/index.yaml`) renders and parses back to an equal index, whatever
//!   its environment and secret names, including names YAML reads as something else
//!   (`null`, `true`, `no`, `1e3`, `0x10`, `inf`, dotted numbers);
//! - the manifest's recipient edits (`recipients add|rm`), applied in any order to a manifest
//!   whose environment, recipient and group names are such names, in block or flow layout,
//!   plain or quoted, keep it parseable with exactly the expected contents, and an add
//!   undone by a remove restores the text byte for byte.
//!
//! Only the public library API is used.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use swarmseal::domain::names;
use swarmseal::repo::index::{EnvIndex, Index, Record};
use swarmseal::repo::manifest::{self, Manifest};

/// Names a YAML 1.1 or 1.2 reader takes for null, booleans, numbers, timestamps or
/// special floats when written plain. Each strategy keeps those valid where it is used.
const HOSTILE: &[&str] = &[
    "null",
    "Null",
    "NULL",
    "true",
    "True",
    "TRUE",
    "false",
    "False",
    "FALSE",
    "yes",
    "Yes",
    "YES",
    "no",
    "No",
    "NO",
    "y",
    "Y",
    "n",
    "N",
    "on",
    "On",
    "ON",
    "off",
    "Off",
    "OFF",
    "1e3",
    "1E3",
    "1e-3",
    "1e10",
    "0x10",
    "0X1F",
    "0xff",
    "0o17",
    "0O17",
    "0b101",
    "0755",
    "0",
    "00",
    "123",
    "1_000",
    "1.5",
    "1.0",
    "3.14",
    "1.2.3",
    "10.0.0.1",
    "2001-12-14",
    "2024-01-02",
    "inf",
    "Inf",
    "INF",
    "infinity",
    "nan",
    "NaN",
    "NAN",
    "1-2",
    "1.e3",
    "6.8523015e5",
    "685.230_15e03",
    "190-20-30",
    "e5",
    "E5",
    "x",
    "a.inf",
    "a.nan",
    "null.true",
    "no.yes",
    "1e3.0x10",
    "true-false",
    "null_",
    "y.n",
    "on-off",
    "a..b",
    "a__b",
    "a--b",
    "0.0",
];

fn hostile() -> impl Strategy<Value = String> {
    prop::sample::select(HOSTILE).prop_map(String::from)
}

/// Hostile words joined by '.', '-' or '_'.
fn composed() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        (
            prop::sample::select(HOSTILE),
            prop::sample::select(&[".", "-", "_"][..]),
        ),
        1..4,
    )
    .prop_map(|parts| {
        let mut s = String::new();
        for (i, (word, sep)) in parts.iter().enumerate() {
            if i > 0 {
                s.push_str(sep);
            }
            s.push_str(word);
        }
        s
    })
}

/// Names that look like numbers.
fn numeric() -> impl Strategy<Value = String> {
    "[0-9][0-9eExXoObB._-]{0,12}[0-9]"
}

/// Any name of the alphabet, up to `max` characters.
fn general(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!(
        "[a-zA-Z0-9]([a-zA-Z0-9._-]{{0,{}}}[a-zA-Z0-9])?",
        max - 2
    ))
    .unwrap()
}

fn name_like(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![hostile(), composed(), numeric(), general(max)]
}

/// A valid logical secret name (design §5).
fn secret_name() -> impl Strategy<Value = String> {
    name_like(names::LOGICAL_NAME_MAX)
        .prop_filter("a valid secret name", |n| names::name_problem(n).is_none())
}

/// A valid environment (or project) name.
fn scope_name() -> impl Strategy<Value = String> {
    name_like(48).prop_filter("a valid environment name", |n| {
        names::check_scope_name("environment", n).is_ok()
    })
}

/// The manifest's rule for recipient and group names: `[A-Za-z0-9][A-Za-z0-9_.@-]*`.
fn is_recipient_name(n: &str) -> bool {
    n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'))
}

fn recipient_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => name_like(64),
        1 => "[a-zA-Z0-9][a-zA-Z0-9._@-]{0,16}",
    ]
    .prop_filter("a valid recipient name", |n| is_recipient_name(n))
}

// ---------------------------------------------------------------------------------------
// The index
// ---------------------------------------------------------------------------------------

/// Hex digests and key ids, some of which read as numbers when written plain.
fn hex(len: usize) -> impl Strategy<Value = String> {
    let digits = "0123456789".repeat(len);
    prop_oneof![
        proptest::string::string_regex(&format!("[0-9a-f]{{{len}}}")).unwrap(),
        Just(format!("1e{}", &digits[..len - 2])),
        Just(digits[..len].to_string()),
        Just("0".repeat(len)),
        Just(format!("{}e1", &digits[..len - 2])),
    ]
}

fn stamp() -> impl Strategy<Value = String> {
    "20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z"
}

fn record() -> impl Strategy<Value = Record> {
    (
        hex(64),
        proptest::collection::vec(hex(16), 0..4),
        proptest::option::of(stamp()),
    )
        .prop_map(|(file, recipients, changed)| Record {
            file,
            recipients,
            changed,
        })
}

fn index() -> impl Strategy<Value = Index> {
    proptest::collection::btree_map(
        scope_name(),
        (
            proptest::option::of(record()),
            proptest::collection::btree_map(secret_name(), record(), 0..5),
        ),
        0..4,
    )
    .prop_map(|envs| {
        let mut index = Index::new();
        for (env, (fingerprint_key, secrets)) in envs {
            *index.env_mut(&env) = EnvIndex {
                fingerprint_key,
                secrets,
                configs: Default::default(),
            };
        }
        index
    })
}

fn index_path() -> &'static Path {
    Path::new(".swarmseal/index.yaml")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Any index of valid names renders to text that parses back to it, and rendering is
    /// stable.
    #[test]
    fn index_renders_and_parses_back(index in index()) {
        let text = index.render();
        let back = Index::parse(text.as_bytes(), index_path())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&back, &index, "{}", text);
        prop_assert_eq!(back.render(), text);
        for (env, e) in &index.environments {
            for name in e.secrets.keys() {
                prop_assert_eq!(back.record(env, name), e.secrets.get(name));
            }
        }
    }
}

/// Text a hand-edited (or merged) index may hold in its fields: the index is not
/// authenticated, and `Index::parse` takes any string there.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("it's".to_string()),
        Just("a'b".to_string()),
        Just("x\ny".to_string()),
        Just("\"q\"".to_string()),
        Just("".to_string()),
        "[ -~]{0,12}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Swarmseal writes back the records of the index it read (a record's `changed` is kept
    /// when a value is unchanged, and every other line as it was): whatever text an index
    /// that parses holds in its names and fields, it renders to text that parses back to
    /// it.
    #[test]
    fn index_fields_as_read_render_back(
        index in index(),
        (env, name) in (any_text(), any_text()),
        file in any_text(),
        id in any_text(),
        changed in any_text(),
    ) {
        let mut index = index;
        index.env_mut(&env).secrets.insert(
            name,
            Record { file, recipients: vec![id], changed: Some(changed) },
        );
        let text = index.render();
        let back = Index::parse(text.as_bytes(), index_path())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&back, &index, "{}", text);
    }
}

// ---------------------------------------------------------------------------------------
// The manifest
// ---------------------------------------------------------------------------------------

/// Public keys, generated once: age keys, and ssh keys whose comments YAML would misread.
fn keys() -> &'static [String] {
    static KEYS: OnceLock<Vec<String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        const SSH: &str =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID/am6oh4vaToSZDc2+F+bcZM1Q53VOfZh6iJL0mvvB/";
        let mut keys: Vec<String> = (0..4)
            .map(|_| swarmseal::crypto::generate_identity().1)
            .collect();
        for comment in ["bob@laptop", "a: b", "x #y", "null", "[1, 2]", "{k: v}, -"] {
            keys.push(format!("{SSH} {comment}"));
        }
        keys.push(SSH.to_string());
        keys
    })
}

fn manifest_path() -> &'static Path {
    Path::new("swarmseal.yaml")
}

/// How a generated manifest is written.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// What `swarmseal init` writes ([`manifest::render_new`]): every environment lists
    /// every recipient; names plain where YAML reads them back as they are.
    Init,
    /// Written here: names and keys quoted (`single` or double), the recipients in a block
    /// or flow mapping, each environment in one of three shapes.
    Custom { single: bool, flow_recipients: bool },
}

/// The contents a manifest should parse to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Model {
    project: String,
    recipients: BTreeMap<String, String>,
    groups: BTreeMap<String, Vec<String>>,
    environments: BTreeMap<String, Vec<String>>,
}

impl Model {
    fn of(m: &Manifest) -> Model {
        Model {
            project: m.project.clone(),
            recipients: m.recipients.clone(),
            groups: m.groups.clone(),
            environments: m
                .environments
                .iter()
                .map(|(k, e)| (k.clone(), e.recipients.clone()))
                .collect(),
        }
    }

    /// Recipients an environment's list reaches (groups expanded one level: generated
    /// groups have recipient members only).
    fn reach(&self, list: &[String]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for n in list {
            if self.recipients.contains_key(n) {
                out.insert(n.clone());
            } else if let Some(members) = self.groups.get(n) {
                out.extend(
                    members
                        .iter()
                        .filter(|m| self.recipients.contains_key(*m))
                        .cloned(),
                );
            }
        }
        out
    }
}

fn quote(s: &str, single: bool) -> String {
    if single {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Writes a manifest in a custom layout; `shapes[i]` is how environment `i` is written
/// (0: block mapping with a flow list, 1: block mapping with a block list, 2: flow mapping).
fn render_custom(model: &Model, single: bool, flow_recipients: bool, shapes: &[u8]) -> String {
    let q = |s: &str| quote(s, single);
    let flow_list = |l: &[String]| l.iter().map(|n| q(n)).collect::<Vec<_>>().join(", ");
    let mut out = format!("# a manifest\nversion: 1\nproject: {}\n", q(&model.project));
    if flow_recipients {
        let entries: Vec<String> = model
            .recipients
            .iter()
            .map(|(n, k)| format!("{}: {}", q(n), q(k)))
            .collect();
        out.push_str(&format!("recipients: {{{}}}  # keys\n", entries.join(", ")));
    } else {
        out.push_str("recipients:\n");
        for (n, k) in &model.recipients {
            out.push_str(&format!("  {}: {}   # {n}\n", q(n), q(k)));
        }
    }
    if !model.groups.is_empty() {
        out.push_str("groups:\n");
        for (i, (g, members)) in model.groups.iter().enumerate() {
            if i % 2 == 0 || members.is_empty() {
                out.push_str(&format!("  {}: [{}]\n", q(g), flow_list(members)));
            } else {
                out.push_str(&format!("  {}:\n", q(g)));
                for m in members {
                    out.push_str(&format!("    - {}\n", q(m)));
                }
            }
        }
    }
    out.push_str("environments:\n");
    for (i, (env, list)) in model.environments.iter().enumerate() {
        match shapes.get(i).copied().unwrap_or(0) {
            0 => out.push_str(&format!(
                "  {}:\n    recipients: [{}]\n    # docker_host: ssh://x\n",
                q(env),
                flow_list(list)
            )),
            1 => {
                out.push_str(&format!("  {}:\n    recipients:\n", q(env)));
                for n in list {
                    out.push_str(&format!("      - {}  # member\n", q(n)));
                }
            }
            _ => out.push_str(&format!(
                "  {}: {{recipients: [{}]}}\n",
                q(env),
                flow_list(list)
            )),
        }
    }
    out.push_str("keep_versions: 0\n");
    out
}

/// A recipient edit.
#[derive(Debug, Clone)]
enum Op {
    /// Add a recipient (name, key index), to every environment (`None`) or to these
    /// environments and groups (indices into the sorted names of both).
    Add(String, usize, Option<Vec<prop::sample::Index>>),
    /// Remove the recipient at this index of the current ones.
    Remove(prop::sample::Index),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            recipient_name(),
            0usize..64,
            proptest::option::of(proptest::collection::vec(
                any::<prop::sample::Index>(),
                1..3
            ))
        )
            .prop_map(|(n, k, to)| Op::Add(n, k, to)),
        any::<prop::sample::Index>().prop_map(Op::Remove),
    ]
}

/// A manifest case: its model, its layout, the environment shapes, and edits to apply.
fn manifest_case() -> impl Strategy<Value = (Model, Layout, Vec<u8>, Vec<Op>)> {
    let names = (
        scope_name(),
        proptest::collection::btree_set(scope_name(), 1..4),
        proptest::collection::btree_set(recipient_name(), 1..5),
        proptest::option::of(recipient_name()),
    );
    let lists = proptest::collection::vec(
        proptest::collection::vec(any::<prop::sample::Index>(), 1..4),
        4,
    );
    let layout = prop_oneof![
        Just(Layout::Init),
        (any::<bool>(), any::<bool>()).prop_map(|(single, flow_recipients)| Layout::Custom {
            single,
            flow_recipients
        }),
    ];
    (
        names,
        lists,
        proptest::collection::vec(0usize..64, 5),
        proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
        layout,
        proptest::collection::vec(0u8..3, 4),
        proptest::collection::vec(op(), 1..6),
    )
        .prop_filter_map(
            "names shared between recipients, groups and environments",
            |(
                (project, envs, recipients, group),
                lists,
                key_picks,
                members,
                layout,
                shapes,
                ops,
            )| {
                let recipients: Vec<String> = recipients.into_iter().collect();
                if let Some(g) = &group {
                    if recipients.contains(g) || envs.contains(g) {
                        return None;
                    }
                }
                if recipients.iter().any(|r| envs.contains(r)) {
                    return None;
                }
                let keys = keys();
                let mut model = Model {
                    project,
                    recipients: recipients
                        .iter()
                        .enumerate()
                        .map(|(i, r)| (r.clone(), keys[key_picks[i] % keys.len()].clone()))
                        .collect(),
                    groups: BTreeMap::new(),
                    environments: BTreeMap::new(),
                };
                // The list order of the model's recipients (sorted) is what render_new writes.
                let sorted: Vec<String> = model.recipients.keys().cloned().collect();
                if let (Some(g), Layout::Custom { .. }) = (&group, layout) {
                    let mut m: Vec<String> = Vec::new();
                    for pick in &members {
                        let n = pick.get(&sorted).clone();
                        if !m.contains(&n) {
                            m.push(n);
                        }
                    }
                    model.groups.insert(g.clone(), m);
                }
                let mut choices = sorted.clone();
                choices.extend(model.groups.keys().cloned());
                for (i, env) in envs.iter().enumerate() {
                    let list: Vec<String> = match layout {
                        Layout::Init => recipients.clone(),
                        Layout::Custom { .. } => {
                            let mut l: Vec<String> = Vec::new();
                            for pick in &lists[i] {
                                let n = pick.get(&choices).clone();
                                if !l.contains(&n) {
                                    l.push(n);
                                }
                            }
                            l
                        }
                    };
                    model.environments.insert(env.clone(), list);
                }
                // Every environment must reach a recipient.
                if model
                    .environments
                    .values()
                    .any(|l| model.reach(l).is_empty())
                {
                    return None;
                }
                Some((model, layout, shapes, ops))
            },
        )
}

fn render(model: &Model, layout: Layout, shapes: &[u8]) -> String {
    match layout {
        Layout::Init => {
            let envs: Vec<String> = model.environments.keys().cloned().collect();
            let order = model
                .environments
                .values()
                .next()
                .cloned()
                .unwrap_or_default();
            let recipients: Vec<(String, String)> = order
                .iter()
                .map(|n| (n.clone(), model.recipients[n].clone()))
                .collect();
            manifest::render_new(&model.project, &envs, &recipients)
        }
        Layout::Custom {
            single,
            flow_recipients,
        } => render_custom(model, single, flow_recipients, shapes),
    }
}

fn parse(text: &str) -> Result<Manifest, TestCaseError> {
    Manifest::parse(text, manifest_path())
        .map_err(|e| TestCaseError::fail(format!("does not parse: {e}\n{text}")))
}

/// Applies one edit to `text` and the model; checks the outcome against the model.
fn apply_op(text: &mut String, model: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    match op {
        Op::Add(name, key, to) => {
            let key = &keys()[key % keys().len()];
            let mut targets: Vec<String> = model.environments.keys().cloned().collect();
            targets.extend(model.groups.keys().cloned());
            let to: Vec<String> = match to {
                None => Vec::new(),
                Some(picks) => {
                    let mut t: Vec<String> =
                        picks.iter().map(|p| p.get(&targets).clone()).collect();
                    t.dedup();
                    t
                }
            };
            let taken = model.recipients.contains_key(name)
                || model.groups.contains_key(name)
                || to.contains(name);
            let result = manifest::add_recipient(text, manifest_path(), name, key, &to);
            if taken {
                // A name already in use (or a recipient added to a list of its own name,
                // which is a group or an environment): refused, the text unchanged.
                if model.recipients.contains_key(name) || model.groups.contains_key(name) {
                    prop_assert!(result.is_err(), "adding existing {} succeeded", name);
                }
                if result.is_err() {
                    return Ok(());
                }
            }
            let new = result.map_err(|e| {
                TestCaseError::fail(format!("adding {name:?} to {to:?} failed: {e}\n{text}"))
            })?;
            let mut expected = model.clone();
            expected
                .recipients
                .insert(name.clone(), key.trim().to_string());
            let (envs, groups): (Vec<String>, Vec<String>) = if to.is_empty() {
                (expected.environments.keys().cloned().collect(), Vec::new())
            } else {
                to.iter()
                    .cloned()
                    .partition(|t| expected.environments.contains_key(t))
            };
            for e in envs {
                let l = expected.environments.get_mut(&e).unwrap();
                if !l.contains(name) {
                    l.push(name.clone());
                }
            }
            for g in groups {
                let l = expected.groups.get_mut(&g).unwrap();
                if !l.contains(name) {
                    l.push(name.clone());
                }
            }
            let got = Model::of(&parse(&new)?);
            prop_assert_eq!(
                &got,
                &expected,
                "after adding {:?} to {:?}:\n{}",
                name,
                to,
                new
            );
            // Removing it again restores the text byte for byte.
            let back = manifest::remove_recipient(&new, manifest_path(), name).map_err(|e| {
                TestCaseError::fail(format!("removing {name:?} again failed: {e}\n{new}"))
            })?;
            prop_assert_eq!(
                &back,
                &*text,
                "add then remove of {:?} changed the text:\n{}",
                name,
                new
            );
            *text = new;
            *model = expected;
        }
        Op::Remove(pick) => {
            let current: Vec<String> = model.recipients.keys().cloned().collect();
            let name = pick.get(&current).clone();
            let mut expected = model.clone();
            expected.recipients.remove(&name);
            for l in expected.groups.values_mut() {
                l.retain(|m| *m != name);
            }
            for l in expected.environments.values_mut() {
                l.retain(|m| *m != name);
            }
            let orphans = expected
                .environments
                .values()
                .any(|l| expected.reach(l).is_empty());
            let result = manifest::remove_recipient(text, manifest_path(), &name);
            if orphans {
                prop_assert!(
                    result.is_err(),
                    "removing {} left an environment without recipients",
                    name
                );
                return Ok(());
            }
            let new = result.map_err(|e| {
                TestCaseError::fail(format!("removing {name:?} failed: {e}\n{text}"))
            })?;
            let got = Model::of(&parse(&new)?);
            prop_assert_eq!(&got, &expected, "after removing {:?}:\n{}", name, new);
            *text = new;
            *model = expected;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// A manifest with such names parses to what was written, and any sequence of
    /// recipient edits keeps it parseable with exactly the expected contents.
    #[test]
    fn recipient_edits_keep_the_manifest_whole((model, layout, shapes, ops) in manifest_case()) {
        let mut text = render(&model, layout, &shapes);
        let mut model = model;
        prop_assert_eq!(Model::of(&parse(&text)?), model.clone(), "{}", text);
        for op in &ops {
            apply_op(&mut text, &mut model, op)?;
        }
    }
}
