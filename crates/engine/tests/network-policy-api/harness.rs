//! The network-policy-api conformance suite as data (`conformance.yaml`): its shape, the pod
//! placement and the mutations its steps apply. Shared by the engine's test
//! (`tests/network_policy_api.rs`) and the dataplane's kernel test
//! (`crates/dataplane/tests/lab_tiers.rs`), which include this file by path.

#![allow(dead_code)]

use netfence_model::admin::AdminAction;
use netfence_model::Inventory;

#[derive(serde::Deserialize)]
pub struct Suite {
    pub fixture: String,
    pub tests: Vec<Test>,
    pub not_transcribed: Vec<String>,
}

#[derive(serde::Deserialize)]
pub struct Test {
    pub name: String,
    pub file: String,
    pub policies: String,
    pub steps: Vec<Step>,
}

#[derive(serde::Deserialize)]
pub struct Step {
    pub name: String,
    /// Mutations and pokes, in upstream's order.
    pub actions: Vec<Action>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
pub enum Action {
    Poke { poke: String },
    Mutate(Box<Mutation>),
}

#[derive(serde::Deserialize)]
pub struct Mutation {
    pub policy: Option<String>,
    pub swap: Option<(String, usize, usize)>,
    pub set_action: Option<(String, usize, String)>,
    pub set_priority: Option<u32>,
    pub set_named_port: Option<(String, usize, String)>,
    pub set_namespace_labels: Option<(String, std::collections::BTreeMap<String, String>)>,
    pub prepend_egress_rule: Option<NewRule>,
    pub delete_network_policy: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct NewRule {
    pub name: String,
    pub action: String,
    pub networks_of_pods: Vec<String>,
}

/// Upstream reads addresses at run time; here every pod gets a fixed one, and the host-network
/// pods sit on one Node labelled `kubernetes.io/os: linux` and speak with its address.
pub fn place_pods(inventory: &mut Inventory) {
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

pub fn apply(inventory: &mut Inventory, mutation: &Mutation) -> Result<(), String> {
    if let Some((namespace, labels)) = &mutation.set_namespace_labels {
        return inventory
            .relabel_namespace(namespace, labels.clone().into_iter().collect())
            .then_some(())
            .ok_or(format!("no namespace {namespace}"));
    }
    if let Some(key) = &mutation.delete_network_policy {
        let before = inventory.network_policies.len();
        std::sync::Arc::make_mut(&mut inventory.network_policies)
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
