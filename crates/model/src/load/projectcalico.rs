//! Calico (projectcalico.org/v3, crd.projectcalico.org/v1): NetworkPolicy,
//! GlobalNetworkPolicy, their rules and entity rules, NetworkSet, GlobalNetworkSet, Tier.

use super::*;
use crate::calico::{CalicoAction, CalicoPort, ProtocolNumber};
use netfence_selector::calico::Selector;

impl Loader {
    pub(super) fn load_calico_policy(
        &mut self,
        global: bool,
        value: &Value,
        ctx: &Ctx,
    ) -> Result<(), LoadError> {
        let object: Decoded<RawPolicySpec> = decode(value, ctx, !global)?;
        let meta = object.meta;
        let spec = object.spec.unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let namespace = namespace_of(&meta);
        let sel = |text: &Option<String>,
                   field: &str|
         -> Result<Option<netfence_selector::calico::Selector>, LoadError> {
            text.as_deref()
                .map(|t| selector(t).map_err(|m| ctx.field(field, m)))
                .transpose()
        };
        let selector = sel(&spec.selector, "spec.selector")?
            .unwrap_or(netfence_selector::calico::Selector::All);
        let namespace_selector = sel(&spec.namespace_selector, "spec.namespaceSelector")?;
        if !global && namespace_selector.is_some() {
            return Err(ctx.field(
                "spec.namespaceSelector",
                "only a GlobalNetworkPolicy has a namespaceSelector",
            ));
        }
        let service_account_selector = sel(
            &spec.service_account_selector,
            "spec.serviceAccountSelector",
        )?;
        let mut ingress = Vec::new();
        for (i, rule) in spec.ingress.iter().flatten().enumerate() {
            check_services(rule, PolicyType::Ingress, global)
                .map_err(|(field, m)| ctx.field(format!("spec.ingress[{i}].{field}"), m))?;
            ingress.push(self.calico_rule(
                rule,
                &namespace,
                global,
                ctx,
                &format!("spec.ingress[{i}]"),
            )?);
        }
        let mut egress = Vec::new();
        for (i, rule) in spec.egress.iter().flatten().enumerate() {
            check_services(rule, PolicyType::Egress, global)
                .map_err(|(field, m)| ctx.field(format!("spec.egress[{i}].{field}"), m))?;
            egress.push(self.calico_rule(
                rule,
                &namespace,
                global,
                ctx,
                &format!("spec.egress[{i}]"),
            )?);
        }
        let types = match spec.types.as_ref().filter(|t| !t.is_empty()) {
            Some(types) => parse_policy_types(types, ctx, "spec.types")?,
            // v3 docs: Ingress if there are no egress rules, Egress if there are only egress
            // rules, both when both are present.
            None => match (ingress.is_empty(), egress.is_empty()) {
                (_, true) => vec![PolicyType::Ingress],
                (true, false) => vec![PolicyType::Egress],
                (false, false) => vec![PolicyType::Ingress, PolicyType::Egress],
            },
        };
        if spec.do_not_track == Some(true) || spec.pre_dnat == Some(true) {
            self.warnings.push(format!(
                "{}: {}: doNotTrack/preDNAT policies apply to host endpoints, which netfence does not evaluate",
                ctx.origin,
                ctx.object.clone().unwrap_or_default()
            ));
        }
        self.calico_policies.push(CalicoPolicy {
            scope: if global {
                CalicoScope::Global { namespace_selector }
            } else {
                CalicoScope::Namespace(namespace)
            },
            name,
            tier: spec
                .tier
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "default".into()),
            order: spec.order,
            selector,
            service_account_selector,
            types,
            ingress,
            egress,
            origin: ctx.origin.clone(),
        });
        Ok(())
    }

    pub(super) fn calico_rule(
        &mut self,
        rule: &RawRule,
        namespace: &str,
        global: bool,
        ctx: &Ctx,
        path: &str,
    ) -> Result<CalicoRule, LoadError> {
        let action = action(&rule.action).map_err(|m| ctx.field(format!("{path}.action"), m))?;
        let protocol = rule
            .protocol
            .as_ref()
            .map(protocol_number)
            .transpose()
            .map_err(|m| ctx.field(format!("{path}.protocol"), m))?;
        let not_protocol = rule
            .not_protocol
            .as_ref()
            .map(protocol_number)
            .transpose()
            .map_err(|m| ctx.field(format!("{path}.notProtocol"), m))?;
        let ip_version = match rule.ip_version {
            None => None,
            Some(v @ (4 | 6)) => Some(v as u8),
            Some(other) => {
                return Err(ctx.field(
                    format!("{path}.ipVersion"),
                    format!("must be 4 or 6, not {other}"),
                ))
            }
        };
        let icmp = rule.icmp.is_some() || rule.not_icmp.is_some();
        let icmp_match = rule
            .icmp
            .as_ref()
            .map(|v| icmp_fields(v).map_err(|m| ctx.field(format!("{path}.icmp"), m)))
            .transpose()?;
        let not_icmp_match = rule
            .not_icmp
            .as_ref()
            .map(|v| icmp_fields(v).map_err(|m| ctx.field(format!("{path}.notICMP"), m)))
            .transpose()?;
        if icmp && !matches!(protocol, Some(1 | 58)) {
            return Err(ctx.field(
                format!("{path}.icmp"),
                "icmp/notICMP need protocol ICMP or ICMPv6",
            ));
        }
        let source = self.entity(
            &rule.source,
            ctx,
            &format!("{path}.source"),
            namespace,
            global,
        )?;
        let destination = self.entity(
            &rule.destination,
            ctx,
            &format!("{path}.destination"),
            namespace,
            global,
        )?;
        for (entity, side) in [(&source, "source"), (&destination, "destination")] {
            if (!entity.ports.is_empty() || !entity.not_ports.is_empty())
                && !matches!(protocol, Some(6 | 17 | 132 | 136))
            {
                return Err(ctx.field(
                    format!("{path}.{side}.ports"),
                    "ports need protocol TCP, UDP, SCTP or UDPLite",
                ));
            }
        }
        if rule.source.ports.as_ref().is_some_and(|p| !p.is_empty())
            || rule
                .source
                .not_ports
                .as_ref()
                .is_some_and(|p| !p.is_empty())
        {
            self.warnings.push(format!(
                "{}: {}: {path}.source.ports: source ports are not modelled (connections are identified by destination port); the rule is evaluated as if every source port matched",
                ctx.origin,
                ctx.object.clone().unwrap_or_default()
            ));
        }
        if rule.http.is_some() {
            self.warnings.push(format!(
                "{}: {}: {path}.http: HTTP matches are not enforced at L3/L4; netfence evaluates the rule without them",
                ctx.origin,
                ctx.object.clone().unwrap_or_default()
            ));
        }
        Ok(CalicoRule {
            action,
            protocol,
            not_protocol,
            ip_version,
            icmp,
            icmp_match,
            not_icmp_match,
            source,
            destination,
            http: rule.http.is_some(),
        })
    }

    pub(super) fn entity(
        &mut self,
        raw: &RawEntity,
        ctx: &Ctx,
        path: &str,
        namespace: &str,
        _global: bool,
    ) -> Result<EntityRule, LoadError> {
        let nets =
            |list: &Option<Vec<String>>, field: &str| -> Result<Vec<ipnet::IpNet>, LoadError> {
                list.iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, t)| net(t).map_err(|m| ctx.field(format!("{path}.{field}[{i}]"), m)))
                    .collect()
            };
        let ports = |list: &Option<Vec<IntOrText>>,
                     field: &str|
         -> Result<Vec<calico::CalicoPort>, LoadError> {
            list.iter()
                .flatten()
                .enumerate()
                .map(|(i, p)| {
                    calico_port(p).map_err(|m| ctx.field(format!("{path}.{field}[{i}]"), m))
                })
                .collect()
        };
        let sel = |text: &Option<String>, field: &str| {
            text.as_deref()
                .map(|t| selector(t).map_err(|m| ctx.field(format!("{path}.{field}"), m)))
                .transpose()
        };
        let service_accounts = match &raw.service_accounts {
            None => None,
            Some(sa) => Some(ServiceAccountMatch {
                names: sa.names.clone().unwrap_or_default(),
                selector: sel(&sa.selector, "serviceAccounts.selector")?,
            }),
        };
        Ok(EntityRule {
            nets: nets(&raw.nets, "nets")?,
            not_nets: nets(&raw.not_nets, "notNets")?,
            selector: sel(&raw.selector, "selector")?,
            not_selector: sel(&raw.not_selector, "notSelector")?,
            namespace_selector: sel(&raw.namespace_selector, "namespaceSelector")?,
            ports: ports(&raw.ports, "ports")?,
            not_ports: ports(&raw.not_ports, "notPorts")?,
            service_accounts,
            services: raw.services.as_ref().map(|s| ServiceMatch {
                name: s.name.clone(),
                namespace: s
                    .namespace
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| namespace.to_string()),
            }),
        })
    }

    pub(super) fn load_network_set(
        &mut self,
        global: bool,
        value: &Value,
        ctx: &Ctx,
    ) -> Result<(), LoadError> {
        let object: Decoded<RawNetworkSetSpec> = decode(value, ctx, !global)?;
        let meta = object.meta;
        let mut nets = Vec::new();
        for (i, text) in object
            .spec
            .unwrap_or_default()
            .nets
            .iter()
            .flatten()
            .enumerate()
        {
            nets.push(net(text).map_err(|m| ctx.field(format!("spec.nets[{i}]"), m))?);
        }
        self.network_sets.push(NetworkSet {
            namespace: (!global).then(|| namespace_of(&meta)),
            name: meta.name.unwrap_or_default(),
            labels: meta.labels.unwrap_or_default().into_iter().collect(),
            nets,
        });
        Ok(())
    }

    pub(super) fn load_tier(&mut self, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        let object: Decoded<RawTierSpec> = decode(value, ctx, false)?;
        let meta = object.meta;
        let spec = object.spec.unwrap_or_default();
        let default_action = match spec.default_action.as_deref() {
            None | Some("Deny") => TierDefault::Deny,
            Some("Pass") => TierDefault::Pass,
            Some(other) => {
                return Err(ctx.field(
                    "spec.defaultAction",
                    format!("must be Deny or Pass, not {other:?}"),
                ))
            }
        };
        self.tiers.push(Tier {
            name: meta.name.unwrap_or_default(),
            order: spec.order,
            default_action,
        });
        Ok(())
    }
}

/// Calico policies in a tier that no Tier object in the input declares: Calico refuses to
/// create such a policy until its Tier exists (docs.tigera.io, "Tier": "a policy's tier must
/// exist"), so the input is incomplete; netfence orders the tier after every ordered one.
pub(super) fn undeclared_tiers(policies: &[CalicoPolicy], tiers: &[Tier]) -> Vec<String> {
    let mut by_tier: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for policy in policies {
        let tier = policy.tier.as_str();
        if tier != "default" && !tiers.iter().any(|t| t.name == tier) {
            by_tier.entry(tier).or_default().push(policy.display_name());
        }
    }
    by_tier
        .into_iter()
        .map(|(tier, names)| {
            format!(
                "tier {tier:?} is not declared in the input (no Tier object) but {} of its policies are: {}; Calico would not accept them before the Tier exists; netfence places the tier after every tier with an order",
                names.len(),
                names.join(", ")
            )
        })
        .collect()
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
        IntOrText::Text(name) => crate::net::protocol_by_name(name)
            .or_else(|| name.parse::<u8>().ok().filter(|n| *n >= 1))
            .ok_or_else(|| {
                format!("unknown protocol {name:?} (expected TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or 1-255)")
            }),
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

/// `icmp`/`notICMP`: `{type, code}` (libcalico-go `lib/validator/v3` validateICMPFields: type
/// 0-254, code 0-255, code only with type).
fn icmp_fields(value: &serde_json::Value) -> Result<crate::calico::IcmpMatch, String> {
    let object = value
        .as_object()
        .ok_or("must be a mapping with `type` and `code`")?;
    if let Some(key) = object.keys().find(|k| *k != "type" && *k != "code") {
        return Err(format!("unknown field `{key}` (expected `type` or `code`)"));
    }
    let number = |key: &str, max: u64| -> Result<Option<u8>, String> {
        match object.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|n| *n <= max)
                .map(|n| Some(n as u8))
                .ok_or(format!("`{key}` must be a number from 0 to {max}")),
        }
    };
    let icmp_type = number("type", 254)?;
    let code = number("code", 255)?;
    if code.is_some() && icmp_type.is_none() {
        return Err("`code` needs a `type`".into());
    }
    Ok(crate::calico::IcmpMatch { icmp_type, code })
}
