//! The pure planner alone (no I/O), at the size of a large installation: 10,000 secrets used
//! by 1,000 services (10 references each, every secret used once).
//!
//! Run: `cargo bench --bench planner` (criterion; no engine needed). Under `cargo test
//! --all-targets` each case runs once, as a test.
//!
//! Cases:
//! - `no-op`: every secret's current version carries the expected labels: nothing to do.
//! - `one changed`: one value changed: one rotation (a create, one service re-pointed, a
//!   removal).
//! - `all changed`: every value changed: 10,000 creates, 1,000 service updates, 10,000
//!   superseded versions.
//!
//! Target (issue 10): at most 50 ms for 10,000 x 1,000.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use sha2::{Digest, Sha256};
use swarmseal::domain::state::{
    managed_labels, Desired, DesiredSecret, Observed, SecretRef, ServiceRefs, SwarmSecret,
};

/// The allocator the binary runs with (`src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRETS: usize = 10_000;
const SERVICES: usize = 1_000;

/// A keyed fingerprint's shape: 64 hex digits, the first 10 of which name the version.
fn fingerprint(i: usize, generation: usize) -> String {
    hex::encode(Sha256::digest(format!("{i}/{generation}")))
}

fn desired(generation: impl Fn(usize) -> usize) -> Desired {
    let mut d = Desired {
        project: "bench".into(),
        environment: "prod".into(),
        secrets: BTreeMap::new(),
        keep_versions: 0,
        configs: Default::default(),
    };
    for i in 0..SECRETS {
        let name = format!("secret{i:05}.app{:03}", i % SERVICES); // sorts as i does
        d.secrets.insert(
            name.clone(),
            DesiredSecret {
                name,
                source: format!("{:064x}", i),
                fingerprint: Some(fingerprint(i, generation(i))),
                labels: BTreeMap::new(),
                target: None,
                uid: None,
                gid: None,
                mode: None,
                kind: Default::default(),
                plain: None,
            },
        );
    }
    d
}

/// The Swarm after an apply of generation 0: one managed version per secret, each used by
/// one of the services.
fn observed(desired: &Desired) -> Observed {
    let mut observed = Observed {
        cluster_id: "bench".into(),
        ..Default::default()
    };
    let mut services: Vec<ServiceRefs> = (0..SERVICES)
        .map(|k| ServiceRefs {
            id: format!("service{k:04}"),
            name: format!("app{k}"),
            version: 10,
            ..Default::default()
        })
        .collect();
    for (i, secret) in desired.secrets.values().enumerate() {
        let fp = fingerprint(i, 0);
        let id = format!("id{i:05}");
        let name = format!("{}-{}", secret.name, &fp[..10]);
        observed.secrets.push(SwarmSecret {
            id: id.clone(),
            name: name.clone(),
            version: 1,
            created_at: "2026-11-29T00:00:00Z".into(),
            labels: managed_labels(desired, secret, &fp),
        });
        services[i % SERVICES].secrets.push(SecretRef {
            secret_id: id,
            secret_name: name,
            target: secret.name.clone(),
            uid: "0".into(),
            gid: "0".into(),
            mode: 0o444,
            missing: false,
        });
    }
    observed.services = services;
    observed
}

fn planner(c: &mut Criterion) {
    let base = desired(|_| 0);
    let observed = observed(&base);
    let cases = [
        ("no-op", base.clone()),
        ("one changed", desired(|i| usize::from(i == SECRETS / 2))),
        ("all changed", desired(|_| 1)),
    ];
    let mut group = c.benchmark_group("planner 10000 secrets x 1000 services");
    group.sample_size(20);
    for (name, desired) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| swarmseal::plan::plan(black_box(desired), black_box(&observed)))
        });
    }
    group.finish();
    // The cases plan what they say (a bench of the wrong plan measures nothing).
    let summary = |d: &Desired| swarmseal::plan::plan(d, &observed).summary;
    assert_eq!(summary(&cases[0].1).unchanged, SECRETS);
    assert_eq!(summary(&cases[1].1).rotate, 1);
    assert_eq!(summary(&cases[2].1).rotate, SECRETS);
}

criterion_group!(benches, planner);
criterion_main!(benches);
