//! Validated Kubernetes NetworkPolicy (networking.k8s.io/v1), with defaults applied.
//!
//! Validation follows `pkg/apis/networking/validation/validation.go` in kubernetes/kubernetes;
//! defaults follow the API reference (`policyTypes`, `protocol`).

use crate::error::Origin;
use crate::net::{PortRange, Protocol};
use ipnet::IpNet;
use netfence_selector::LabelSelector;

/// A policy direction named in `policyTypes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum PolicyType {
    /// Traffic into the selected pods.
    Ingress,
    /// Traffic out of the selected pods.
    Egress,
}

impl std::fmt::Display for PolicyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PolicyType::Ingress => "Ingress",
            PolicyType::Egress => "Egress",
        })
    }
}

/// A Kubernetes NetworkPolicy after validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// Namespace of the policy (and of the pods it selects).
    pub namespace: String,
    /// Name of the policy.
    pub name: String,
    /// `spec.podSelector`.
    pub pod_selector: LabelSelector,
    /// Effective `policyTypes`: as given, or the API default (`Ingress`, plus `Egress` iff
    /// `spec.egress` is non-empty).
    pub policy_types: Vec<PolicyType>,
    /// Annotations (`netfence.io/ignore` suppresses audit findings).
    pub annotations: std::collections::BTreeMap<String, String>,
    /// Whether `policyTypes` was written explicitly (the audit wants to know).
    pub policy_types_explicit: bool,
    /// Field paths of `ports` entries written without `protocol` (they default to TCP; the
    /// audit points them out).
    pub ports_without_protocol: Vec<String>,
    /// `spec.ingress`.
    pub ingress: Vec<NpRule>,
    /// `spec.egress`.
    pub egress: Vec<NpRule>,
    /// Where the policy was read from.
    pub origin: Origin,
}

impl NetworkPolicy {
    /// Whether this policy isolates its pods for `direction`.
    pub fn applies_to(&self, direction: PolicyType) -> bool {
        self.policy_types.contains(&direction)
    }

    /// The rules for `direction`.
    pub fn rules(&self, direction: PolicyType) -> &[NpRule] {
        match direction {
            PolicyType::Ingress => &self.ingress,
            PolicyType::Egress => &self.egress,
        }
    }
}

/// One ingress or egress rule: peers OR-ed, ports OR-ed, peers AND ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpRule {
    /// `from`/`to`; empty means every peer, including every IP address.
    pub peers: Vec<NpPeer>,
    /// `ports`; empty means every port of every protocol.
    pub ports: Vec<NpPort>,
}

/// One entry of `from`/`to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NpPeer {
    /// `podSelector` and/or `namespaceSelector`. A missing namespace selector means the policy's
    /// own namespace; a missing pod selector means every pod of the selected namespaces.
    Pods {
        /// `namespaceSelector`, or `None` for the policy's namespace.
        namespace_selector: Option<LabelSelector>,
        /// `podSelector` (`{}` when absent).
        pod_selector: LabelSelector,
    },
    /// `ipBlock`: the CIDR minus every `except` (each inside the CIDR).
    IpBlock {
        /// `cidr`.
        cidr: IpNet,
        /// `except`.
        except: Vec<IpNet>,
    },
}

/// One entry of `ports`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpPort {
    /// `protocol`, TCP when absent.
    pub protocol: Protocol,
    /// Which ports of that protocol.
    pub port: NpPortSpec,
}

/// The port part of a policy port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NpPortSpec {
    /// No `port`: every port of the protocol.
    All,
    /// A number, or `port`..=`endPort`.
    Range(PortRange),
    /// A container port name, resolved against the destination pod.
    Named(String),
}
