//! Calico resources (`projectcalico.org/v3` and `crd.projectcalico.org/v1`, which share their
//! spec shapes): NetworkPolicy, GlobalNetworkPolicy, NetworkSet, GlobalNetworkSet, Tier.
//!
//! Parsing follows the v3 API reference (docs.tigera.io, "Network policy", "Global network
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
use serde::Deserialize;

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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccountMatch {
    /// Service account names (OR); empty = any name.
    pub names: Vec<String>,
    /// Selector on service account labels; `None` = any.
    pub selector: Option<Selector>,
}

/// `services` of an entity rule: a Kubernetes Service by name.
#[derive(Clone, Debug, PartialEq, Eq)]
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

// ---- serde shapes -------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawPolicySpec {
    pub tier: Option<String>,
    pub order: Option<f64>,
    pub selector: Option<String>,
    pub namespace_selector: Option<String>,
    pub service_account_selector: Option<String>,
    pub types: Option<Vec<String>>,
    pub ingress: Option<Vec<RawRule>>,
    pub egress: Option<Vec<RawRule>>,
    pub do_not_track: Option<bool>,
    pub pre_dnat: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawRule {
    pub action: String,
    pub protocol: Option<IntOrText>,
    pub not_protocol: Option<IntOrText>,
    pub ip_version: Option<i64>,
    pub icmp: Option<serde_json::Value>,
    #[serde(rename = "notICMP")]
    pub not_icmp: Option<serde_json::Value>,
    #[serde(default)]
    pub source: RawEntity,
    #[serde(default)]
    pub destination: RawEntity,
    pub http: Option<serde_json::Value>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(crate) enum IntOrText {
    Int(i64),
    Text(String),
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawEntity {
    pub nets: Option<Vec<String>>,
    pub not_nets: Option<Vec<String>>,
    pub selector: Option<String>,
    pub not_selector: Option<String>,
    pub namespace_selector: Option<String>,
    pub ports: Option<Vec<IntOrText>>,
    pub not_ports: Option<Vec<IntOrText>>,
    pub service_accounts: Option<RawServiceAccounts>,
    pub services: Option<RawServices>,
}

#[derive(Deserialize)]
pub(crate) struct RawServiceAccounts {
    pub names: Option<Vec<String>>,
    pub selector: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct RawServices {
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct RawNetworkSetSpec {
    pub nets: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawTierSpec {
    pub order: Option<f64>,
    pub default_action: Option<String>,
}

// ---- validation ---------------------------------------------------------------------------

/// Parse a protocol name or number (libcalico-go numorstring.Protocol).
pub(crate) fn protocol_number(value: &IntOrText) -> Result<ProtocolNumber, String> {
    match value {
        IntOrText::Int(n) if (1..=255).contains(n) => Ok(*n as u8),
        IntOrText::Int(n) => Err(format!("protocol number {n} out of range (1-255)")),
        IntOrText::Text(name) => match name.as_str() {
            "TCP" | "tcp" => Ok(6),
            "UDP" | "udp" => Ok(17),
            "ICMP" | "icmp" => Ok(1),
            "ICMPv6" | "icmpv6" => Ok(58),
            "SCTP" | "sctp" => Ok(132),
            "UDPLite" | "udplite" => Ok(136),
            other => other.parse::<u8>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                format!("unknown protocol {other:?} (expected TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or 1-255)")
            }),
        },
    }
}

/// Parse a Calico port: a number, `"min:max"`, or a named port.
pub(crate) fn calico_port(value: &IntOrText) -> Result<CalicoPort, String> {
    let number = |n: i64| {
        u16::try_from(n)
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| format!("port {n} out of range (1-65535)"))
    };
    match value {
        IntOrText::Int(n) => Ok(CalicoPort::Range(
            PortRange::single(number(*n)?).ok_or("bad port")?,
        )),
        IntOrText::Text(text) => {
            if let Some((a, b)) = text.split_once(':') {
                let first = number(
                    a.trim()
                        .parse()
                        .map_err(|_| format!("bad port range {text:?}"))?,
                )?;
                let last = number(
                    b.trim()
                        .parse()
                        .map_err(|_| format!("bad port range {text:?}"))?,
                )?;
                return PortRange::new(first, last)
                    .map(CalicoPort::Range)
                    .ok_or_else(|| format!("port range {text:?}: start is greater than end"));
            }
            if let Ok(n) = text.trim().parse::<i64>() {
                return Ok(CalicoPort::Range(
                    PortRange::single(number(n)?).ok_or("bad port")?,
                ));
            }
            if text.is_empty() || text.len() > 128 {
                return Err(format!("invalid named port {text:?}"));
            }
            Ok(CalicoPort::Named(text.clone()))
        }
    }
}

/// Parse a Calico action.
pub(crate) fn action(text: &str) -> Result<CalicoAction, String> {
    match text {
        "Allow" | "allow" => Ok(CalicoAction::Allow),
        "Deny" | "deny" => Ok(CalicoAction::Deny),
        "Log" | "log" => Ok(CalicoAction::Log),
        "Pass" | "pass" => Ok(CalicoAction::Pass),
        other => Err(format!(
            "unknown action {other:?} (expected Allow, Deny, Log or Pass)"
        )),
    }
}

/// Parse a selector, mapping errors to messages with the column.
pub(crate) fn selector(text: &str) -> Result<Selector, String> {
    Selector::parse(text).map_err(|e| format!("invalid selector {text:?}: {e}"))
}

/// Parse a CIDR or bare address (Calico accepts both; a bare address is a /32 or /128).
pub(crate) fn net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("invalid CIDR {text:?}"))
}

/// Calico's constraints on `services` in a rule, for a rule of `direction` in a global or
/// namespaced policy: `Err((field below the rule, message))` for the first one broken.
///
/// From libcalico-go `lib/validator/v3/validator.go` (services only in the destination of
/// egress rules and the source of ingress rules; a global policy's `services` must name a
/// namespace) and the CEL rules on `Rule` and `EntityRule` in
/// `api/pkg/apis/projectcalico/v3/policy_common.go` (`services` needs a name and excludes
/// `selector`, `notSelector`, `namespaceSelector`, `serviceAccounts`, `nets` and `notNets` in
/// the same entity; `destination.services` excludes `destination.ports` and `notPorts`, since
/// the Service's own ports are matched).
pub(crate) fn check_services(
    rule: &RawRule,
    direction: PolicyType,
    global: bool,
) -> Result<(), (String, String)> {
    let fail = |field: &str, message: &str| Err((field.to_string(), message.to_string()));
    let (allowed, forbidden) = match direction {
        PolicyType::Egress => ("destination", "source"),
        PolicyType::Ingress => ("source", "destination"),
    };
    let entity = |side: &str| match side {
        "source" => &rule.source,
        _ => &rule.destination,
    };
    if entity(forbidden).services.is_some() {
        return fail(
            &format!("{forbidden}.services"),
            &format!("not allowed in {direction} rule {forbidden}").to_lowercase(),
        );
    }
    let raw = entity(allowed);
    let Some(services) = &raw.services else {
        return Ok(());
    };
    let set = |list: &Option<Vec<String>>| list.as_ref().is_some_and(|l| !l.is_empty());
    let text = |t: &Option<String>| t.as_ref().is_some_and(|t| !t.is_empty());
    if services.name.is_empty() {
        return fail(
            &format!("{allowed}.services.name"),
            "services must specify a service name",
        );
    }
    if global && services.namespace.as_deref().unwrap_or("").is_empty() {
        return fail(
            &format!("{allowed}.services.namespace"),
            "must specify a namespace (in a GlobalNetworkPolicy)",
        );
    }
    if text(&raw.selector) || text(&raw.not_selector) {
        return fail(
            &format!("{allowed}.services"),
            "cannot specify Selector/NotSelector and Services on the same rule",
        );
    }
    if text(&raw.namespace_selector) {
        return fail(
            &format!("{allowed}.services"),
            "cannot specify NamespaceSelector and Services on the same rule",
        );
    }
    if raw.service_accounts.is_some() {
        return fail(
            &format!("{allowed}.services"),
            "cannot specify ServiceAccounts and Services on the same rule",
        );
    }
    if set(&raw.nets) || set(&raw.not_nets) {
        return fail(
            &format!("{allowed}.services"),
            "cannot specify Nets/NotNets and Services on the same rule",
        );
    }
    let ports = |p: &Option<Vec<IntOrText>>| p.as_ref().is_some_and(|l| !l.is_empty());
    if rule.destination.services.is_some()
        && (ports(&rule.destination.ports) || ports(&rule.destination.not_ports))
    {
        return fail(
            "destination.ports",
            "ports and notPorts cannot be specified with services (the Service's ports are matched)",
        );
    }
    Ok(())
}
