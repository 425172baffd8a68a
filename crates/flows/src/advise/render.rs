//! The plan as documents: `networking.k8s.io/v1` NetworkPolicies or `projectcalico.org/v3`
//! (Staged)NetworkPolicies, serialized from small typed values (never formatted from input
//! names), fields in the order people write them, so the YAML reads well and is the same
//! bytes for the same input.

use super::plan::{Labels, PeerPlan, Plan, PolicyPlan, RulePlan};
use super::Style;
use netfence_model::{Loader, PolicyType, Protocol};
use serde::Serialize;

/// The label every namespace carries with its own name (Kubernetes 1.21+).
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// One proposed object.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Document {
    /// A Kubernetes NetworkPolicy.
    Kubernetes(Manifest<K8sSpec>),
    /// A Calico NetworkPolicy or StagedNetworkPolicy.
    Calico(Manifest<CalicoSpec>),
    /// A CiliumNetworkPolicy.
    Cilium(Manifest<CiliumSpec>),
}

impl Document {
    /// The document as YAML (without the `---` separator).
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self)
            .unwrap_or_else(|e| format!("# netfence could not write this document: {e}\n"))
    }

    /// The document as a JSON value.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// `Kind namespace/name`.
    pub fn describe(&self) -> String {
        let (kind, metadata) = match self {
            Document::Kubernetes(m) => (m.kind, &m.metadata),
            Document::Calico(m) => (m.kind, &m.metadata),
            Document::Cilium(m) => (m.kind, &m.metadata),
        };
        format!("{kind} {}/{}", metadata.namespace, metadata.name)
    }
}

/// `apiVersion`, `kind`, `metadata`, `spec`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest<S> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    spec: S,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
struct Metadata {
    name: String,
    namespace: String,
}

/// A Kubernetes label selector with `matchLabels` only (`{}`: everything).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct Selector {
    #[serde(skip_serializing_if = "Labels::is_empty")]
    match_labels: Labels,
}

/// A NetworkPolicy's spec.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct K8sSpec {
    pod_selector: Selector,
    policy_types: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ingress: Vec<K8sRule>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    egress: Vec<K8sRule>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
struct K8sRule {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    from: Vec<K8sPeer>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    to: Vec<K8sPeer>,
    ports: Vec<K8sPort>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct K8sPeer {
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace_selector: Option<Selector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pod_selector: Option<Selector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_block: Option<IpBlock>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
struct IpBlock {
    cidr: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
struct K8sPort {
    protocol: &'static str,
    port: u16,
}

/// A Calico policy's spec.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CalicoSpec {
    selector: String,
    types: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ingress: Vec<CalicoRule>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    egress: Vec<CalicoRule>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
struct CalicoRule {
    action: &'static str,
    protocol: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<CalicoEntity>,
    destination: CalicoEntity,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct CalicoEntity {
    #[serde(skip_serializing_if = "Option::is_none")]
    selector: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace_selector: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    nets: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<u16>,
}

/// A CiliumNetworkPolicy's spec (cilium.io/v2, "Policy Language").
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CiliumSpec {
    endpoint_selector: Selector,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ingress: Vec<CiliumRule>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    egress: Vec<CiliumRule>,
}

/// A Cilium rule: peers (endpoints or CIDRs) and ports; all empty (`{}`) allows nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct CiliumRule {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    from_endpoints: Vec<Selector>,
    #[serde(rename = "fromCIDR", skip_serializing_if = "Vec::is_empty")]
    from_cidr: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    to_endpoints: Vec<Selector>,
    #[serde(rename = "toCIDR", skip_serializing_if = "Vec::is_empty")]
    to_cidr: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    from_entities: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    to_entities: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    to_ports: Vec<CiliumPortRule>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
struct CiliumPortRule {
    ports: Vec<CiliumPort>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
struct CiliumPort {
    port: String,
    protocol: &'static str,
}

/// The label Cilium gives every endpoint with its namespace: naming it lets a namespaced
/// policy's selector reach another namespace.
const CILIUM_NAMESPACE_LABEL: &str = "k8s:io.kubernetes.pod.namespace";

fn cilium(policy: &PolicyPlan) -> Document {
    let rules: Vec<CiliumRule> = policy
        .rules
        .iter()
        .flat_map(|rule| {
            let ports = vec![CiliumPortRule {
                ports: rule
                    .ports
                    .iter()
                    .map(|&(protocol, port)| CiliumPort {
                        port: port.to_string(),
                        protocol: protocol_name(protocol),
                    })
                    .collect(),
            }];
            let mut endpoints = Vec::new();
            let mut cidrs = Vec::new();
            let mut hosts = false;
            for peer in &rule.peers {
                match peer {
                    PeerPlan::Pods { namespace, labels } => {
                        let mut match_labels = labels.clone();
                        match_labels.insert(CILIUM_NAMESPACE_LABEL.to_string(), namespace.clone());
                        endpoints.push(Selector { match_labels });
                    }
                    PeerPlan::Block(net) => cidrs.push(net.to_string()),
                    PeerPlan::Host(_) => hosts = true,
                }
            }
            let ingress = policy.direction == PolicyType::Ingress;
            let mut out = Vec::new();
            if !endpoints.is_empty() {
                out.push(CiliumRule {
                    from_endpoints: if ingress {
                        endpoints.clone()
                    } else {
                        Vec::new()
                    },
                    to_endpoints: if ingress { Vec::new() } else { endpoints },
                    to_ports: ports.clone(),
                    ..CiliumRule::default()
                });
            }
            if !cidrs.is_empty() {
                out.push(CiliumRule {
                    from_cidr: if ingress { cidrs.clone() } else { Vec::new() },
                    to_cidr: if ingress { Vec::new() } else { cidrs },
                    to_ports: ports.clone(),
                    ..CiliumRule::default()
                });
            }
            if hosts {
                // Cilium cannot name one node: every node (`host`, `remote-node`).
                let entities = vec!["host", "remote-node"];
                out.push(CiliumRule {
                    from_entities: if ingress {
                        entities.clone()
                    } else {
                        Vec::new()
                    },
                    to_entities: if ingress { Vec::new() } else { entities },
                    to_ports: ports,
                    ..CiliumRule::default()
                });
            }
            out
        })
        .collect();
    let (ingress, egress) = match policy.direction {
        PolicyType::Ingress => (rules, Vec::new()),
        PolicyType::Egress => (Vec::new(), rules),
    };
    Document::Cilium(Manifest {
        api_version: "cilium.io/v2",
        kind: "CiliumNetworkPolicy",
        metadata: metadata(&policy.namespace, &policy.name),
        spec: CiliumSpec {
            endpoint_selector: Selector {
                match_labels: policy.subject.clone(),
            },
            ingress,
            egress,
        },
    })
}

fn direction_name(direction: PolicyType) -> &'static str {
    match direction {
        PolicyType::Ingress => "Ingress",
        PolicyType::Egress => "Egress",
    }
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

fn metadata(namespace: &str, name: &str) -> Metadata {
    Metadata {
        name: name.to_string(),
        namespace: namespace.to_string(),
    }
}

/// The plan's documents: default denies first, then the policies by (namespace, name).
pub fn documents(plan: &Plan, style: Style, staged: bool) -> Vec<Document> {
    let deny = plan.default_deny.iter().map(|deny| match style {
        Style::Kubernetes => Document::Kubernetes(Manifest {
            api_version: "networking.k8s.io/v1",
            kind: "NetworkPolicy",
            metadata: metadata(&deny.namespace, &deny.name),
            spec: K8sSpec {
                pod_selector: Selector {
                    match_labels: Labels::new(),
                },
                policy_types: vec!["Ingress", "Egress"],
                ingress: Vec::new(),
                egress: Vec::new(),
            },
        }),
        Style::Calico => Document::Calico(Manifest {
            api_version: "projectcalico.org/v3",
            kind: calico_kind(staged),
            metadata: metadata(&deny.namespace, &deny.name),
            spec: CalicoSpec {
                selector: "all()".into(),
                types: vec!["Ingress", "Egress"],
                ingress: Vec::new(),
                egress: Vec::new(),
            },
        }),
        // A non-empty section isolates; a rule with nothing in it allows nothing.
        Style::Cilium => Document::Cilium(Manifest {
            api_version: "cilium.io/v2",
            kind: "CiliumNetworkPolicy",
            metadata: metadata(&deny.namespace, &deny.name),
            spec: CiliumSpec {
                endpoint_selector: Selector {
                    match_labels: Labels::new(),
                },
                ingress: vec![CiliumRule::default()],
                egress: vec![CiliumRule::default()],
            },
        }),
    });
    let policies = plan.policies.iter().map(|policy| match style {
        Style::Kubernetes => kubernetes(policy),
        Style::Calico => calico(policy, staged),
        Style::Cilium => cilium(policy),
    });
    deny.chain(policies).collect()
}

fn calico_kind(staged: bool) -> &'static str {
    if staged {
        "StagedNetworkPolicy"
    } else {
        "NetworkPolicy"
    }
}

/// A loader holding `documents` (to apply them to a copy of the cluster's objects).
pub fn loader(documents: &[Document]) -> Loader {
    let mut loader = Loader::new();
    loader.load_str("<proposal>", &yaml_stream(documents));
    loader
}

/// The documents as one YAML stream (`---` before each).
pub fn yaml_stream(documents: &[Document]) -> String {
    documents
        .iter()
        .map(|document| format!("---\n{}", document.to_yaml()))
        .collect()
}

fn kubernetes(policy: &PolicyPlan) -> Document {
    let rules: Vec<K8sRule> = policy
        .rules
        .iter()
        .map(|rule| {
            let peers = rule
                .peers
                .iter()
                .map(|peer| kubernetes_peer(peer, &policy.namespace))
                .collect();
            let ports = rule
                .ports
                .iter()
                .map(|&(protocol, port)| K8sPort {
                    protocol: protocol_name(protocol),
                    port,
                })
                .collect();
            match policy.direction {
                PolicyType::Ingress => K8sRule {
                    from: peers,
                    to: Vec::new(),
                    ports,
                },
                PolicyType::Egress => K8sRule {
                    from: Vec::new(),
                    to: peers,
                    ports,
                },
            }
        })
        .collect();
    let (ingress, egress) = match policy.direction {
        PolicyType::Ingress => (rules, Vec::new()),
        PolicyType::Egress => (Vec::new(), rules),
    };
    Document::Kubernetes(Manifest {
        api_version: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        metadata: metadata(&policy.namespace, &policy.name),
        spec: K8sSpec {
            pod_selector: Selector {
                match_labels: policy.subject.clone(),
            },
            policy_types: vec![direction_name(policy.direction)],
            ingress,
            egress,
        },
    })
}

fn kubernetes_peer(peer: &PeerPlan, own_namespace: &str) -> K8sPeer {
    match peer {
        PeerPlan::Pods { namespace, labels } => K8sPeer {
            namespace_selector: (namespace != own_namespace).then(|| Selector {
                match_labels: Labels::from([(NAMESPACE_NAME_LABEL.to_string(), namespace.clone())]),
            }),
            pod_selector: Some(Selector {
                match_labels: labels.clone(),
            }),
            ip_block: None,
        },
        PeerPlan::Block(net) | PeerPlan::Host(net) => K8sPeer {
            namespace_selector: None,
            pod_selector: None,
            ip_block: Some(IpBlock {
                cidr: net.to_string(),
            }),
        },
    }
}

/// A Calico selector matching every label of `labels` (`all()` when empty). Label values
/// cannot hold quotes (Kubernetes label syntax), so single quotes always delimit them.
fn calico_selector(labels: &Labels) -> String {
    if labels.is_empty() {
        return "all()".into();
    }
    labels
        .iter()
        .map(|(key, value)| format!("{key} == '{value}'"))
        .collect::<Vec<_>>()
        .join(" && ")
}

/// Calico rules name one protocol each: a plan rule becomes one rule per protocol and pod
/// peer, and one per protocol for its blocks together.
fn calico_rules(rule: &RulePlan, direction: PolicyType, own_namespace: &str) -> Vec<CalicoRule> {
    let mut protocols: Vec<Protocol> = rule.ports.iter().map(|(p, _)| *p).collect();
    protocols.dedup();
    let mut out = Vec::new();
    for protocol in protocols {
        let ports: Vec<u16> = rule
            .ports
            .iter()
            .filter(|(p, _)| *p == protocol)
            .map(|(_, port)| *port)
            .collect();
        let mut entities: Vec<CalicoEntity> = Vec::new();
        let mut nets = Vec::new();
        for peer in &rule.peers {
            match peer {
                PeerPlan::Pods { namespace, labels } => entities.push(CalicoEntity {
                    selector: Some(calico_selector(labels)),
                    namespace_selector: (namespace != own_namespace)
                        .then(|| format!("{NAMESPACE_NAME_LABEL} == '{namespace}'")),
                    ..CalicoEntity::default()
                }),
                PeerPlan::Block(net) | PeerPlan::Host(net) => nets.push(net.to_string()),
            }
        }
        if !nets.is_empty() {
            entities.push(CalicoEntity {
                nets,
                ..CalicoEntity::default()
            });
        }
        for entity in entities {
            let (source, destination) = match direction {
                PolicyType::Ingress => (
                    Some(entity),
                    CalicoEntity {
                        ports: ports.clone(),
                        ..CalicoEntity::default()
                    },
                ),
                PolicyType::Egress => (
                    None,
                    CalicoEntity {
                        ports: ports.clone(),
                        ..entity
                    },
                ),
            };
            out.push(CalicoRule {
                action: "Allow",
                protocol: protocol_name(protocol),
                source,
                destination,
            });
        }
    }
    out
}

fn calico(policy: &PolicyPlan, staged: bool) -> Document {
    let rules: Vec<CalicoRule> = policy
        .rules
        .iter()
        .flat_map(|rule| calico_rules(rule, policy.direction, &policy.namespace))
        .collect();
    let (ingress, egress) = match policy.direction {
        PolicyType::Ingress => (rules, Vec::new()),
        PolicyType::Egress => (Vec::new(), rules),
    };
    Document::Calico(Manifest {
        api_version: "projectcalico.org/v3",
        kind: calico_kind(staged),
        metadata: metadata(&policy.namespace, &policy.name),
        spec: CalicoSpec {
            selector: calico_selector(&policy.subject),
            types: vec![direction_name(policy.direction)],
            ingress,
            egress,
        },
    })
}
