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
    /// Mutations and pokes, in upstream's order.
    actions: Vec<Action>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Action {
    Poke { poke: String },
    Mutate(Box<Mutation>),
}

#[derive(serde::Deserialize)]
struct Mutation {
    policy: Option<String>,
    swap: Option<(String, usize, usize)>,
    set_action: Option<(String, usize, String)>,
    set_priority: Option<u32>,
    set_named_port: Option<(String, usize, String)>,
    set_namespace_labels: Option<(String, std::collections::BTreeMap<String, String>)>,
    prepend_egress_rule: Option<NewRule>,
    delete_network_policy: Option<String>,
}

#[derive(serde::Deserialize)]
struct NewRule {
    name: String,
    action: String,
    networks_of_pods: Vec<String>,
}

/// Upstream reads addresses at run time; here every pod gets a fixed one, and the host-network
/// pods sit on one Node labelled `kubernetes.io/os: linux` and speak with its address.
fn place_pods(inventory: &mut Inventory) {
    let node_ip: std::net::IpAddr = "192.168.1.10".parse().unwrap();
    inventory.nodes.push(netfence_model::Node {
        name: "node-1".into(),
        labels: [("kubernetes.io/os".to_string(), "linux".to_string())].into(),
        addresses: vec![node_ip],
        internal_addresses: vec![node_ip],
    });
    inventory.update_pods(|pods| {
        for (i, pod) in pods.iter_mut().enumerate() {
            pod.synthetic_ip = false;
            if pod.host_network {
                pod.ips = vec![node_ip];
                pod.node = Some("node-1".into());
            } else {
                pod.ips = vec![std::net::IpAddr::from([10, 244, 0, i as u8 + 1])];
            }
        }
    });
}

fn apply(inventory: &mut Inventory, mutation: &Mutation) -> Result<(), String> {
    if let Some((namespace, labels)) = &mutation.set_namespace_labels {
        return inventory
            .relabel_namespace(namespace, labels.clone().into_iter().collect())
            .then_some(())
            .ok_or(format!("no namespace {namespace}"));
    }
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
    let pods = inventory.pods().to_vec();
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
    if let Some((direction, index, name)) = &mutation.set_named_port {
        rules(policy, direction)?[*index].ports =
            vec![netfence_model::admin::AdminPort::Named(name.clone())];
    }
    if let Some(rule) = &mutation.prepend_egress_rule {
        let mut nets = Vec::new();
        for key in &rule.networks_of_pods {
            let (ns, name) = key.split_once('/').ok_or("bad pod key")?;
            let pod = pods
                .iter()
                .find(|p| p.namespace == ns && p.name == name)
                .ok_or(format!("no pod {key}"))?;
            nets.extend(pod.ips.iter().map(|ip| ipnet::IpNet::from(*ip)));
        }
        let action = match rule.action.as_str() {
            "Accept" => AdminAction::Allow,
            "Deny" => AdminAction::Deny,
            _ => AdminAction::Pass,
        };
        policy.egress.insert(
            0,
            netfence_model::admin::AdminRule {
                name: rule.name.clone(),
                action,
                peers: vec![netfence_model::admin::AdminPeer::Networks(nets)],
                ports: Vec::new(),
            },
        );
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
