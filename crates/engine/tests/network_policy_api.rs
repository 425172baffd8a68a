//! The network-policy-api conformance suite (kubernetes-sigs/network-policy-api
//! `conformance/tests` and `conformance/base`), transcribed into
//! `tests/network-policy-api/conformance.yaml`: the fixture, each test's ClusterNetworkPolicy
//! (and NetworkPolicy) manifests, and its steps, whose rule swaps, action and priority changes
//! and deletions accumulate as upstream's patches do, each followed by the expected pokes.

mod common;

use netfence_engine::{Endpoint, Engine, ProbePort};
use netfence_model::admin::AdminAction;
use netfence_model::{Inventory, Loader};

#[derive(serde::Deserialize)]
struct Suite {
    fixture: String,
    tests: Vec<Test>,
    not_transcribed: Vec<String>,
}

#[derive(serde::Deserialize)]
struct Test {
    name: String,
    file: String,
    policies: String,
    steps: Vec<Step>,
}

#[derive(serde::Deserialize)]
struct Step {
    name: String,
    mutations: Vec<Mutation>,
    pokes: Vec<String>,
}

#[derive(serde::Deserialize)]
struct Mutation {
    policy: Option<String>,
    swap: Option<(String, usize, usize)>,
    set_action: Option<(String, usize, String)>,
    set_priority: Option<u32>,
    delete_network_policy: Option<String>,
}

fn apply(inventory: &mut Inventory, mutation: &Mutation) -> Result<(), String> {
    if let Some(key) = &mutation.delete_network_policy {
        let before = inventory.network_policies.len();
        inventory
            .network_policies
            .retain(|p| format!("{}/{}", p.namespace, p.name) != *key);
        return (inventory.network_policies.len() < before)
            .then_some(())
            .ok_or(format!("no NetworkPolicy {key}"));
    }
    let name = mutation
        .policy
        .as_deref()
        .ok_or("mutation without policy")?;
    let policy = inventory
        .admin_policies
        .iter_mut()
        .find(|p| p.name == name)
        .ok_or(format!("no admin policy {name}"))?;
    fn rules<'a>(
        policy: &'a mut netfence_model::admin::AdminPolicy,
        direction: &str,
    ) -> Result<&'a mut Vec<netfence_model::admin::AdminRule>, String> {
        match direction {
            "ingress" => Ok(&mut policy.ingress),
            "egress" => Ok(&mut policy.egress),
            other => Err(format!("bad direction {other}")),
        }
    }
    if let Some((direction, a, b)) = &mutation.swap {
        rules(policy, direction)?.swap(*a, *b);
    }
    if let Some((direction, index, action)) = &mutation.set_action {
        let action = match action.as_str() {
            "Accept" => AdminAction::Allow,
            "Deny" => AdminAction::Deny,
            "Pass" => AdminAction::Pass,
            other => return Err(format!("bad action {other}")),
        };
        rules(policy, direction)?[*index].action = action;
    }
    if let Some(priority) = mutation.set_priority {
        policy.priority = Some(priority);
        // Keep the inventory's documented order (by tier, priority, name).
        inventory.admin_policies.sort_by(|a, b| {
            (a.kind.is_baseline(), a.priority, &a.name).cmp(&(
                b.kind.is_baseline(),
                b.priority,
                &b.name,
            ))
        });
    }
    Ok(())
}

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
        for step in &test.steps {
            steps += 1;
            for mutation in &step.mutations {
                apply(&mut inventory, mutation)
                    .unwrap_or_else(|e| panic!("{} / {}: {e}", test.name, step.name));
            }
            let engine = Engine::new(inventory.clone());
            for poke in &step.pokes {
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
    println!(
        "network-policy-api conformance: {} of {} tests pass ({steps} steps, {pokes} pokes); not yet transcribed: {}",
        suite.tests.len() - failures.iter().map(|f| f.split(" / ").next().unwrap_or("")).collect::<std::collections::BTreeSet<_>>().len(),
        suite.tests.len(),
        suite.not_transcribed.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
