//! The network-policy-api conformance suite (kubernetes-sigs/network-policy-api
//! `conformance/tests` and `conformance/base`), transcribed into
//! `tests/network-policy-api/conformance.yaml`: the fixture, each test's ClusterNetworkPolicy
//! (and NetworkPolicy) manifests, and its steps, whose rule swaps, action and priority changes
//! and deletions accumulate as upstream's patches do, each followed by the expected pokes.

mod common;

use netfence_engine::{Endpoint, Engine, ProbePort};
use netfence_model::Loader;

#[path = "network-policy-api/harness.rs"]
mod harness;

use harness::{apply, place_pods, Action, Suite};

fn endpoint(engine: &Engine, key: &str) -> Endpoint {
    let (ns, name) = key.split_once('/').expect("ns/pod");
    Endpoint::Pod(
        engine
            .inventory()
            .pod_by_key(ns, name)
            .unwrap_or_else(|| panic!("no pod {key}")),
    )
}

#[test]
fn network_policy_api_conformance() {
    let suite: Suite = serde_yaml_ng::from_str(include_str!("network-policy-api/conformance.yaml"))
        .expect("suite parses");
    let mut failures = Vec::new();
    let (mut pokes, mut steps) = (0, 0);
    for test in &suite.tests {
        let mut loader = Loader::new();
        loader.load_str("conformance/base/manifests.yaml", &suite.fixture);
        loader.load_str(&test.file, &test.policies);
        let mut inventory = loader
            .finish()
            .unwrap_or_else(|e| panic!("{}: {e}", test.name));
        place_pods(&mut inventory);
        for step in &test.steps {
            steps += 1;
            let mut engine = Engine::new(inventory.clone());
            for action in &step.actions {
                match action {
                    Action::Mutate(mutation) => {
                        apply(&mut inventory, mutation)
                            .unwrap_or_else(|e| panic!("{} / {}: {e}", test.name, step.name));
                        engine = Engine::new(inventory.clone());
                    }
                    Action::Poke { poke } => {
                        let words: Vec<&str> = poke.split_whitespace().collect();
                        let port: ProbePort = words[3].parse().expect("port");
                        let expected = words[4] == "allow";
                        let got = engine.allowed(
                            endpoint(&engine, words[0]),
                            endpoint(&engine, words[2]),
                            port.protocol,
                            port.port,
                        );
                        pokes += 1;
                        if got != expected {
                            failures.push(format!(
                                "{} / {}: {poke}: got {}",
                                test.name,
                                step.name,
                                if got { "allow" } else { "deny" }
                            ));
                        }
                    }
                }
            }
            // The index's decisions (flows check's explanations) equal the walk's.
            for wrong in common::index_decision_disagreements(
                &engine,
                &netfence_engine::default_ports(engine.inventory()),
            ) {
                failures.push(format!("{} / {}: {wrong}", test.name, step.name));
            }
        }
    }
    println!(
        "network-policy-api conformance: {} of {} tests pass ({steps} steps, {pokes} pokes); not yet transcribed: {}",
        suite.tests.len() - failures.iter().map(|f| f.split(" / ").next().unwrap_or("")).collect::<std::collections::BTreeSet<_>>().len(),
        suite.tests.len(),
        suite.not_transcribed.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
