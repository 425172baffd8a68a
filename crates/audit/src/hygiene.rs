//! Kubernetes NetworkPolicy hygiene: peers that match no pod (NF-TC-007), implicit policyTypes
//! (NF-TC-008), ports without protocol (NF-TC-009), and the guide's DNS rule selecting
//! kube-system by a `name` label it may not carry (NF-TC-010).

use crate::{remediation, Audit, CheckId, Family, Object, ObjectRef};
use netfence_model::{Inventory, NetworkPolicy, NpPeer, PolicyType};
use netfence_selector::Requirement;

/// The NetworkPolicy hygiene family.
pub(crate) const FAMILY: Family = Family {
    name: "hygiene",
    checks: &[
        CheckId::PeerMatchesNoPod,
        CheckId::ImplicitPolicyTypes,
        CheckId::PortWithoutProtocol,
        CheckId::KubeSystemNameLabel,
    ],
    run,
};

impl Object for NetworkPolicy {
    fn object_ref(&self) -> ObjectRef<'_> {
        ObjectRef {
            namespace: Some(&self.namespace),
            label: format!("NetworkPolicy {}/{}", self.namespace, self.name),
            origin: Some(&self.origin),
            annotations: Some(&self.annotations),
        }
    }
}

fn run(audit: &mut Audit<'_>) {
    let inventory = audit.inventory();
    let kube_system_named = inventory
        .namespaces()
        .get("kube-system")
        .is_some_and(|n| n.labels.get("name").is_some_and(|v| v == "kube-system"));
    for policy in inventory.network_policies.iter() {
        policy_types(audit, policy);
        ports_without_protocol(audit, policy);
        peers(audit, inventory, policy, kube_system_named);
    }
}

/// NF-TC-008.
fn policy_types(audit: &mut Audit<'_>, policy: &NetworkPolicy) {
    if policy.policy_types_explicit {
        return;
    }
    let types: Vec<String> = policy
        .policy_types
        .iter()
        .map(ToString::to_string)
        .collect();
    audit
        .finding(CheckId::ImplicitPolicyTypes, policy)
        .message(format!(
            "policyTypes not set; it defaults to [{}]",
            types.join(", ")
        ))
        .remediation(remediation::policy_types(&policy.policy_types));
}

/// NF-TC-009.
fn ports_without_protocol(audit: &mut Audit<'_>, policy: &NetworkPolicy) {
    let ports = &policy.ports_without_protocol;
    if ports.is_empty() {
        return;
    }
    let (has, matches) = if ports.len() == 1 {
        ("has", "matches")
    } else {
        ("have", "match")
    };
    audit
        .finding(CheckId::PortWithoutProtocol, policy)
        .message(format!(
            "{} {has} no protocol and {matches} TCP only",
            ports.join(", ")
        ))
        .remediation("ports:\n- protocol: TCP   # or UDP / SCTP: write it out\n  port: 8080\n");
}

/// NF-TC-007 and NF-TC-010, per pod peer of every rule.
fn peers(
    audit: &mut Audit<'_>,
    inventory: &Inventory,
    policy: &NetworkPolicy,
    kube_system_named: bool,
) {
    for direction in [PolicyType::Ingress, PolicyType::Egress] {
        let (rules_field, peers_field) = match direction {
            PolicyType::Ingress => ("ingress", "from"),
            PolicyType::Egress => ("egress", "to"),
        };
        for (index, rule) in policy.rules(direction).iter().enumerate() {
            for (peer_index, peer) in rule.peers.iter().enumerate() {
                let NpPeer::Pods {
                    namespace_selector,
                    pod_selector,
                } = peer
                else {
                    continue;
                };
                let matches_any = inventory
                    .namespaces()
                    .values()
                    .filter(|n| match namespace_selector {
                        None => n.name == policy.namespace,
                        Some(s) => s.matches(&n.labels),
                    })
                    .any(|n| {
                        inventory.pods()[inventory.pods_in(&n.name)]
                            .iter()
                            .any(|p| pod_selector.matches(&p.labels))
                    });
                let field = format!("spec.{rules_field}[{index}].{peers_field}[{peer_index}]");
                if !matches_any {
                    audit
                        .finding(CheckId::PeerMatchesNoPod, policy)
                        .message(format!("{field} matches no pod"))
                        .remediation(format!("# check the selectors of {field} against the labels of the intended pods and namespaces\n"));
                }
                // The guide's DNS rule relies on kube-system carrying name=kube-system.
                let wants_name_label = namespace_selector.as_ref().is_some_and(|s| {
                    s.requirements().iter().any(|r| {
                        matches!(r, Requirement::In(key, values) if key == "name" && values.contains("kube-system"))
                    })
                });
                if wants_name_label && !kube_system_named {
                    audit
                        .finding(CheckId::KubeSystemNameLabel, policy)
                        .message(format!("{field} selects namespaces labelled name=kube-system, and kube-system has no such label"))
                        .remediation("kubectl label namespace kube-system name=kube-system\n# or select it by its automatic label: kubernetes.io/metadata.name: kube-system\n");
                }
            }
        }
    }
}
