//! Traffic-control checks computed with the engine: default deny per namespace (NF-TC-001,
//! NF-TC-002), namespaces no policy touches (NF-TC-005), DNS reachability end to end
//! (NF-TC-003), and pods open to any address on every port (NF-TC-004).

use crate::{summarize, Audit, CheckId, Family, Object, ObjectRef};
use netfence_engine::{Endpoint, Engine, Outcome};
use netfence_model::{Inventory, Pod, PolicyType, Protocol};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The traffic-control family.
pub(crate) const FAMILY: Family = Family {
    name: "traffic",
    checks: &[
        CheckId::MissingDefaultDenyIngress,
        CheckId::MissingDefaultDenyEgress,
        CheckId::DnsUnreachable,
        CheckId::OpenToAnyAddress,
        CheckId::NamespaceWithoutPolicy,
    ],
    run,
};

/// An address outside every cluster range, used to ask "what may any address do?".
const PROBE_ADDRESS: [u8; 4] = [198, 51, 100, 77];

fn run(audit: &mut Audit<'_>) {
    namespaces(audit);
    dns_reachability(audit);
    open_pods(audit);
}

impl Object for Pod {
    fn object_ref(&self) -> ObjectRef<'_> {
        ObjectRef {
            namespace: Some(&self.namespace),
            label: format!("Pod {}", self.key()),
            origin: Some(&self.origin),
            annotations: Some(&self.mesh_annotations),
        }
    }
}

/// Per namespace: default deny (computed) and whether any policy selects any pod.
fn namespaces(audit: &mut Audit<'_>) {
    let engine = audit.engine;
    let inventory = engine.inventory();
    let mut pods_by_namespace: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (id, pod) in inventory.pods.iter().enumerate() {
        if !pod.host_network {
            pods_by_namespace
                .entry(&pod.namespace)
                .or_default()
                .push(id);
        }
    }
    for (namespace, pods) in &pods_by_namespace {
        let object = ObjectRef::namespace(inventory, namespace);
        for (id, direction, name) in [
            (
                CheckId::MissingDefaultDenyIngress,
                PolicyType::Ingress,
                "ingress",
            ),
            (
                CheckId::MissingDefaultDenyEgress,
                PolicyType::Egress,
                "egress",
            ),
        ] {
            let open_pods = open_without_rule(engine, pods, direction);
            if !open_pods.is_empty() {
                audit
                    .finding(id, &object)
                    .message(format!(
                        "{} of {} pods accept {name} traffic that no rule allows: {}",
                        open_pods.len(),
                        pods.len(),
                        summarize(&open_pods)
                    ))
                    .remediation(format!(
                        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: default-deny-{name}\n  namespace: {namespace}\nspec:\n  podSelector: {{}}\n  policyTypes:\n  - {direction}\n"
                    ));
            }
        }
        let selected = pods.iter().any(|&id| {
            !engine.selecting(id, PolicyType::Ingress).is_empty()
                || !engine.selecting(id, PolicyType::Egress).is_empty()
        });
        if !selected {
            audit
                .finding(CheckId::NamespaceWithoutPolicy, &object)
                .message(format!("no policy selects any of its {} pods", pods.len()))
                .remediation(format!(
                    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: default-deny\n  namespace: {namespace}\nspec:\n  podSelector: {{}}\n  policyTypes:\n  - Ingress\n  - Egress\n"
                ));
        }
    }
}

/// The names of the `pods` that traffic from (or to) any address reaches in `direction`
/// without a rule deciding it.
fn open_without_rule(engine: &Engine, pods: &[usize], direction: PolicyType) -> Vec<String> {
    let probe = Endpoint::Address(IpAddr::from(PROBE_ADDRESS));
    pods.iter()
        .filter(|&&id| {
            let verdict = match direction {
                PolicyType::Ingress => {
                    engine
                        .explain(probe, Endpoint::Pod(id), Protocol::Tcp, 1)
                        .ingress
                }
                PolicyType::Egress => {
                    engine
                        .explain(Endpoint::Pod(id), probe, Protocol::Tcp, 1)
                        .egress
                }
            };
            matches!(
                verdict.outcome,
                Outcome::NotIsolated | Outcome::DefaultAllow
            )
        })
        .map(|&id| engine.inventory().pods[id].name.clone())
        .collect()
}

/// DNS reachability for egress-isolated pods (computed end to end: egress and CoreDNS ingress).
fn dns_reachability(audit: &mut Audit<'_>) {
    let engine = audit.engine;
    let inventory = engine.inventory();
    let dns_pods = cluster_dns_pods(inventory);
    if dns_pods.is_empty() {
        return;
    }
    for (id, pod) in inventory.pods.iter().enumerate() {
        if pod.host_network
            || dns_pods.contains(&id)
            || engine.selecting(id, PolicyType::Egress).is_empty()
        {
            continue;
        }
        let mut missing = Vec::new();
        for protocol in [Protocol::Udp, Protocol::Tcp] {
            let reachable = dns_pods
                .iter()
                .any(|&dns| engine.allowed(Endpoint::Pod(id), Endpoint::Pod(dns), protocol, 53));
            if !reachable {
                missing.push(format!("{protocol} 53"));
            }
        }
        if !missing.is_empty() {
            audit
                .finding(CheckId::DnsUnreachable, pod)
                .message(format!(
                    "{} cannot reach cluster DNS ({}) on {}",
                    pod.key(),
                    inventory.pods[dns_pods[0]].key(),
                    missing.join(" and ")
                ))
                .remediation(format!(
                    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: allow-dns\n  namespace: {}\nspec:\n  podSelector: {{}}\n  policyTypes:\n  - Egress\n  egress:\n  - to:\n    - namespaceSelector:\n        matchLabels:\n          kubernetes.io/metadata.name: kube-system\n      podSelector:\n        matchLabels:\n          k8s-app: kube-dns\n    ports:\n    - protocol: UDP\n      port: 53\n    - protocol: TCP\n      port: 53\n# and, where CoreDNS is isolated, an ingress rule admitting these pods on 53\n",
                    pod.namespace
                ));
        }
    }
}

/// Pods open to any address on every port.
fn open_pods(audit: &mut Audit<'_>) {
    let engine = audit.engine;
    let probe = Endpoint::Address(IpAddr::from(PROBE_ADDRESS));
    for (id, pod) in engine.inventory().pods.iter().enumerate() {
        if pod.host_network {
            continue;
        }
        if engine.allowed_conns(probe, Endpoint::Pod(id)).is_all() {
            audit
                .finding(CheckId::OpenToAnyAddress, pod)
                .message(format!(
                    "{} accepts connections from any address on every port and protocol",
                    pod.key()
                ))
                .remediation(format!(
                    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {}-ingress\n  namespace: {}\nspec:\n  podSelector:\n    matchLabels: {{}}  # select {}\n  policyTypes:\n  - Ingress\n  ingress:\n  - from: []   # the peers that need it\n    ports: []  # and only their ports\n",
                    pod.workload.name, pod.namespace, pod.name
                ));
        }
    }
}

/// The cluster DNS pods: CoreDNS as EKS installs it, labelled `k8s-app: kube-dns`.
pub(crate) fn cluster_dns_pods(inventory: &Inventory) -> Vec<usize> {
    inventory
        .pods
        .iter()
        .enumerate()
        .filter(|(_, p)| p.labels.get("k8s-app").is_some_and(|v| v == "kube-dns"))
        .map(|(id, _)| id)
        .collect()
}
