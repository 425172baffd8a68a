//! Calico resources (`projectcalico.org/v3` and `crd.projectcalico.org/v1`, which share their
//! spec shapes): NetworkPolicy, GlobalNetworkPolicy, NetworkSet, GlobalNetworkSet, Tier.
//!
//! The model types; their serde shapes and validation live beside the loading code
//! (`load/projectcalico.rs`). Parsing follows the v3 API reference (docs.tigera.io, "Network policy", "Global network
//! policy", "Rule", "EntityRule", "Ports", "Tier"); validation follows libcalico-go
//! `lib/validator/v3`. Defaults: tier `default`; `types` as the v3 docs state ("If types is
//! not specified, it defaults to Ingress if there are no Egress rules, Egress if there are only
//! Egress rules, or both when both are present").

use crate::error::Origin;
use crate::net::PortRange;
use crate::policy::PolicyType;
use ipnet::IpNet;
use netfence_selector::calico::Selector;
use netfence_selector::Labels;

/// A Calico rule action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CalicoAction {
    /// Allow; evaluation ends.
    Allow,
    /// Deny; evaluation ends.
    Deny,
    /// Log and continue.
    Log,
    /// Skip to the next tier.
    Pass,
}

/// A protocol as Calico names it: a name (`TCP`, `UDP`, `ICMP`, `ICMPv6`, `SCTP`, `UDPLite`)
/// or a number 1-255; kept as the IANA number.
pub type ProtocolNumber = u8;

/// A port in a Calico entity rule: a number, a `min:max` range, or a named port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CalicoPort {
    /// A number or range.
    Range(PortRange),
    /// A named container port.
    Named(String),
}

/// `serviceAccounts` of an entity rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceAccountMatch {
    /// Service account names (OR); empty = any name.
    pub names: Vec<String>,
    /// Selector on service account labels; `None` = any.
    pub selector: Option<Selector>,
}

/// `services` of an entity rule: a Kubernetes Service by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceMatch {
    /// Service name.
    pub name: String,
    /// Service namespace (the policy's namespace when empty).
    pub namespace: String,
}

/// `source` or `destination` of a rule. Every present field must match (AND).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntityRule {
    /// `nets` (OR).
    pub nets: Vec<IpNet>,
    /// `notNets`.
    pub not_nets: Vec<IpNet>,
    /// `selector`.
    pub selector: Option<Selector>,
    /// `notSelector`.
    pub not_selector: Option<Selector>,
    /// `namespaceSelector`.
    pub namespace_selector: Option<Selector>,
    /// `ports` (OR).
    pub ports: Vec<CalicoPort>,
    /// `notPorts`.
    pub not_ports: Vec<CalicoPort>,
    /// `serviceAccounts`.
    pub service_accounts: Option<ServiceAccountMatch>,
    /// `services`.
    pub services: Option<ServiceMatch>,
}

/// An ICMP type and code (the v3 API's `ICMPFields`: `type` 0-254, `code` 0-255 and only
/// with a type).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IcmpMatch {
    /// `type`; `None` = any type.
    pub icmp_type: Option<u8>,
    /// `code`; `None` = any code.
    pub code: Option<u8>,
}

/// One Calico rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalicoRule {
    /// `action`.
    pub action: CalicoAction,
    /// `protocol`.
    pub protocol: Option<ProtocolNumber>,
    /// `notProtocol`.
    pub not_protocol: Option<ProtocolNumber>,
    /// `ipVersion` (4 or 6).
    pub ip_version: Option<u8>,
    /// `icmp` or `notICMP` present (only ICMP traffic can match such a rule).
    pub icmp: bool,
    /// `icmp`: the ICMP type and code the packet must have.
    pub icmp_match: Option<IcmpMatch>,
    /// `notICMP`: the ICMP type and code the packet must not have.
    pub not_icmp_match: Option<IcmpMatch>,
    /// `source`.
    pub source: EntityRule,
    /// `destination`.
    pub destination: EntityRule,
    /// `http` present: parsed, not enforceable at L3/L4 (reported as a warning).
    pub http: bool,
}

/// Which endpoints a Calico policy is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CalicoScope {
    /// A (namespaced) NetworkPolicy.
    Namespace(String),
    /// A GlobalNetworkPolicy, optionally limited by `namespaceSelector`.
    Global {
        /// `namespaceSelector` of the policy.
        namespace_selector: Option<Selector>,
    },
}

/// A Calico NetworkPolicy or GlobalNetworkPolicy.
#[derive(Clone, Debug, PartialEq)]
pub struct CalicoPolicy {
    /// Namespaced or global.
    pub scope: CalicoScope,
    /// `metadata.name`.
    pub name: String,
    /// `spec.tier` (`default`).
    pub tier: String,
    /// `spec.order` (`None` sorts last).
    pub order: Option<f64>,
    /// `spec.selector`.
    pub selector: Selector,
    /// `spec.serviceAccountSelector`.
    pub service_account_selector: Option<Selector>,
    /// Effective `spec.types`.
    pub types: Vec<PolicyType>,
    /// `spec.ingress`.
    pub ingress: Vec<CalicoRule>,
    /// `spec.egress`.
    pub egress: Vec<CalicoRule>,
    /// Where it was read from.
    pub origin: Origin,
}

impl CalicoPolicy {
    /// `namespace/name` or `name`.
    pub fn display_name(&self) -> String {
        match &self.scope {
            CalicoScope::Namespace(ns) => format!("{ns}/{}", self.name),
            CalicoScope::Global { .. } => self.name.clone(),
        }
    }

    /// Rules for a direction.
    pub fn rules(&self, direction: PolicyType) -> &[CalicoRule] {
        match direction {
            PolicyType::Ingress => &self.ingress,
            PolicyType::Egress => &self.egress,
        }
    }
}

/// A NetworkSet (namespaced) or GlobalNetworkSet: labelled CIDRs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkSet {
    /// Namespace, or `None` for a GlobalNetworkSet.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: Labels,
    /// `spec.nets`.
    pub nets: Vec<IpNet>,
}

/// What a tier does at its end for endpoints it selected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TierDefault {
    /// Deny (the default).
    Deny,
    /// Pass to the next tier.
    Pass,
}

/// A Calico Tier.
#[derive(Clone, Debug, PartialEq)]
pub struct Tier {
    /// Name.
    pub name: String,
    /// `spec.order` (`None` sorts last).
    pub order: Option<f64>,
    /// `spec.defaultAction`.
    pub default_action: TierDefault,
}
