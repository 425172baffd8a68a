//! Cluster-wide admin policy from kubernetes-sigs/network-policy-api:
//! AdminNetworkPolicy and BaselineAdminNetworkPolicy (`policy.networking.k8s.io/v1alpha1`).
//!
//! Shapes and validation follow `apis/v1alpha1/{adminnetworkpolicy,baselineadminnetworkpolicy,
//! shared}_types.go` (including their CEL rules: one subject kind, one peer kind per peer, one
//! port kind per port, port range start below end, priority 0-1000, BANP named `default`).

use crate::error::Origin;
use crate::net::{PortRange, Protocol};
use ipnet::IpNet;
use netfence_selector::LabelSelector;

/// Which pods an admin policy applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminSubject {
    /// Namespaces whose pods are selected.
    pub namespace_selector: LabelSelector,
    /// Pods selected within those namespaces (`{}` for `subject.namespaces`).
    pub pod_selector: LabelSelector,
}

/// A peer of an admin policy rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminPeer {
    /// `namespaces` (every pod of matching namespaces) or `pods`.
    Pods {
        /// Namespace selector.
        namespace_selector: LabelSelector,
        /// Pod selector (`{}` for `namespaces`).
        pod_selector: LabelSelector,
    },
    /// `nodes`: the addresses of matching nodes (egress only).
    Nodes(LabelSelector),
    /// `networks`: CIDRs, cluster-internal addresses included (egress only).
    Networks(Vec<IpNet>),
}

/// A port of an admin policy rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminPort {
    /// `portNumber` or `portRange`.
    Range(Protocol, PortRange),
    /// `namedPort`: a container port name, whatever its protocol.
    Named(String),
}

/// An admin policy action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminAction {
    /// Allow.
    Allow,
    /// Deny.
    Deny,
    /// Pass (AdminNetworkPolicy only): hand over to NetworkPolicy.
    Pass,
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminRule {
    /// `name`.
    pub name: String,
    /// `action`.
    pub action: AdminAction,
    /// `from`/`to` (OR).
    pub peers: Vec<AdminPeer>,
    /// `ports` (OR); empty = every port.
    pub ports: Vec<AdminPort>,
}

/// The resource an admin policy came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminKind {
    /// `policy.networking.k8s.io/v1alpha1` AdminNetworkPolicy.
    AdminNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha1` BaselineAdminNetworkPolicy.
    BaselineAdminNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy with `tier: Admin`.
    ClusterNetworkPolicyAdmin,
    /// `policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy with `tier: Baseline`.
    ClusterNetworkPolicyBaseline,
}

impl AdminKind {
    /// Whether the policy sits in the baseline tier (after NetworkPolicy).
    pub fn is_baseline(self) -> bool {
        matches!(
            self,
            AdminKind::BaselineAdminNetworkPolicy | AdminKind::ClusterNetworkPolicyBaseline
        )
    }
}

/// An AdminNetworkPolicy, the BaselineAdminNetworkPolicy, or a ClusterNetworkPolicy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminPolicy {
    /// The resource kind (and tier).
    pub kind: AdminKind,
    /// Name.
    pub name: String,
    /// `spec.priority` (`None` for the BANP, which has none).
    pub priority: Option<u32>,
    /// `spec.subject`.
    pub subject: AdminSubject,
    /// `spec.ingress`.
    pub ingress: Vec<AdminRule>,
    /// `spec.egress`.
    pub egress: Vec<AdminRule>,
    /// Where it was read from.
    pub origin: Origin,
}
