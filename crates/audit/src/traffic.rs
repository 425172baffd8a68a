//! Traffic-control checks computed with the engine: default deny per namespace (NF-TC-001,
//! NF-TC-002), namespaces no policy touches (NF-TC-005), DNS reachability end to end
//! (NF-TC-003), and pods open to any address on every port (NF-TC-004).

use crate::remediation::{
    yaml, LabelSelector, Manifest, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicyRule,
    NetworkPolicySpec,
};
use crate::{summarize, Audit, CheckId, Family, Object, ObjectRef};
use netfence_engine::{Endpoint, Engine, Outcome};
use netfence_model::{Inventory, Pod, PodId, PolicyType, Protocol};
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
    let mut pods_by_namespace: BTreeMap<&str, Vec<PodId>> = BTreeMap::new();
    for (id, pod) in inventory.pods().iter().enumerate() {
        if !pod.host_network {
            pods_by_namespace
                .entry(&pod.namespace)
                .or_default()
                .push(PodId::new(id));
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
                    .remediation(default_deny(
                        format!("default-deny-{name}"),
                        namespace,
                        vec![direction],
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
                .remediation(default_deny(
                    "default-deny".into(),
                    namespace,
                    vec![PolicyType::Ingress, PolicyType::Egress],
                ));
        }
    }
}

/// The names of the `pods` that traffic from (or to) any address reaches in `direction`
/// without a rule deciding it.
fn open_without_rule(engine: &Engine, pods: &[PodId], direction: PolicyType) -> Vec<String> {
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
        .map(|&id| engine.inventory().pods()[id].name.clone())
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
    for (id, pod) in inventory.pods().iter().enumerate() {
        let id = PodId::new(id);
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
                    inventory.pods()[dns_pods[0]].key(),
                    missing.join(" and ")
                ))
                .remediation(allow_dns(&pod.namespace));
        }
    }
}

/// Pods open to any address on every port.
fn open_pods(audit: &mut Audit<'_>) {
    let engine = audit.engine;
    let probe = Endpoint::Address(IpAddr::from(PROBE_ADDRESS));
    for (id, pod) in engine.inventory().pods().iter().enumerate() {
        let id = PodId::new(id);
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
                .remediation(restrict_ingress(pod));
        }
    }
}

/// A NetworkPolicy selecting every pod of `namespace` for `types`, with no rule.
fn default_deny(name: String, namespace: &str, types: Vec<PolicyType>) -> String {
    yaml(&Manifest::network_policy(
        name,
        namespace,
        NetworkPolicySpec {
            pod_selector: LabelSelector::default(),
            policy_types: types,
            ingress: Vec::new(),
            egress: Vec::new(),
        },
    ))
}

/// The guide's rule: every pod of `namespace` may query CoreDNS on UDP and TCP 53.
fn allow_dns(namespace: &str) -> String {
    let rule = NetworkPolicyRule {
        from: None,
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: LabelSelector::labels("kubernetes.io/metadata.name", "kube-system"),
            pod_selector: LabelSelector::labels("k8s-app", "kube-dns"),
        }]),
        ports: ["UDP", "TCP"]
            .into_iter()
            .map(|protocol| NetworkPolicyPort { protocol, port: 53 })
            .collect(),
    };
    let policy = Manifest::network_policy(
        "allow-dns".into(),
        namespace,
        NetworkPolicySpec {
            pod_selector: LabelSelector::default(),
            policy_types: vec![PolicyType::Egress],
            ingress: Vec::new(),
            egress: vec![rule],
        },
    );
    yaml(&policy) + "# and, where CoreDNS is isolated, an ingress rule admitting these pods on 53\n"
}

/// An ingress policy for `pod`'s workload, to be filled in.
fn restrict_ingress(pod: &Pod) -> String {
    let policy = Manifest::network_policy(
        format!("{}-ingress", pod.workload.name),
        &pod.namespace,
        NetworkPolicySpec {
            pod_selector: LabelSelector {
                match_labels: Some(BTreeMap::new()),
            },
            policy_types: vec![PolicyType::Ingress],
            ingress: vec![NetworkPolicyRule {
                from: Some(Vec::new()),
                to: None,
                ports: Vec::new(),
            }],
            egress: Vec::new(),
        },
    );
    yaml(&policy)
        + &format!(
            "# matchLabels: select {}; from: the peers that need it; ports: only their ports\n",
            pod.name
        )
}

/// The cluster DNS pods: CoreDNS as EKS installs it, labelled `k8s-app: kube-dns`.
pub(crate) fn cluster_dns_pods(inventory: &Inventory) -> Vec<PodId> {
    inventory
        .pods()
        .iter()
        .enumerate()
        .filter(|(_, p)| p.labels.get("k8s-app").is_some_and(|v| v == "kube-dns"))
        .map(|(id, _)| PodId::new(id))
        .collect()
}
