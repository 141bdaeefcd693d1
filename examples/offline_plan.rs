//! The planner is a pure function: this example builds a desired and an observed state in
//! memory and prints the plan, the way `swarmseal plan` does after reading the repository
//! and the Swarm.
//!
//! It then carries the plan out on the in-memory Swarm ([`plan::simulate`]) and plans
//! again: a plan that was applied leaves nothing to do.
//!
//! Run: cargo run --example offline_plan

use std::collections::BTreeMap;

use swarmseal::domain::names;
use swarmseal::domain::state::{
    managed_labels, Desired, DesiredSecret, Observed, SecretRef, ServiceRefs, SwarmSecret,
};
use swarmseal::plan::{self, render, simulate};

fn main() {
    let key = b"an environment's fingerprint key";
    let secret = |name: &str, value: &[u8]| DesiredSecret {
        name: name.into(),
        source: swarmseal::crypto::file_digest(name.as_bytes()),
        fingerprint: Some(swarmseal::crypto::fingerprint(key, value)),
        labels: BTreeMap::new(),
        target: None,
        uid: None,
        gid: None,
        mode: None,
        kind: Default::default(),
        plain: None,
    };
    let desired = Desired {
        project: "shop".into(),
        environment: "production".into(),
        secrets: [
            secret("db_password", b"new value"),
            secret("api_key", b"key"),
        ]
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect(),
        keep_versions: 0,
        configs: Default::default(),
    };

    // The Swarm has the old db_password, used by the web service.
    let old_fp = swarmseal::crypto::fingerprint(key, b"old value");
    let old = SwarmSecret {
        id: "s1".into(),
        name: names::swarm_name("db_password", &old_fp),
        version: 7,
        created_at: "2026-01-01T00:00:00Z".into(),
        labels: managed_labels(&desired, &desired.secrets["db_password"], &old_fp),
    };
    let observed = Observed {
        cluster_id: "example-cluster".into(),
        services: vec![ServiceRefs {
            id: "svc1".into(),
            name: "web".into(),
            version: 42,
            secrets: vec![SecretRef {
                secret_id: old.id.clone(),
                secret_name: old.name.clone(),
                target: "db_password".into(),
                uid: "0".into(),
                gid: "0".into(),
                mode: 0o400,
                missing: false,
            }],
            ..ServiceRefs::default()
        }],
        secrets: vec![old],
        taken: Vec::new(),
        configs: Default::default(),
    };

    let plan = plan::plan(&desired, &observed);
    let ctx = render::Context {
        endpoint: "(in memory)",
        cluster_id: &observed.cluster_id,
    };
    print!("{}", render::human(&plan, &ctx, false, true));
    println!(
        "\n{}",
        serde_json::to_string_pretty(&render::json(&plan, &ctx)).unwrap_or_default()
    );

    // Apply it in memory, the way the Swarm would, and plan again.
    match simulate::simulate(&observed, &plan) {
        Ok(after) => {
            let again = plan::plan(&desired, &after);
            println!(
                "\nafter applying in memory: {} step(s) left to do",
                again.steps.len()
            );
        }
        Err(why) => println!("\nthe Swarm would refuse this plan: {why}"),
    }
}
