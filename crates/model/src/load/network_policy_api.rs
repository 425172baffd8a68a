//! network-policy-api (policy.networking.k8s.io): AdminNetworkPolicy and
//! BaselineAdminNetworkPolicy (v1alpha1), ClusterNetworkPolicy (v1alpha2), with their raw
//! shapes and the CRD's validation rules.

use super::*;

impl Loader {
    pub(super) fn load_admin_policy(
        &mut self,
        admin: bool,
        value: &Value,
        ctx: &Ctx,
    ) -> Result<(), LoadError> {
        let object: Decoded<RawAdminSpec> = decode(value, ctx, false)?;
        let meta = object.meta;
        let name = meta.name.clone().unwrap_or_default();
        let spec = required_spec(object.spec, ctx, "an admin policy")?;
        if !admin && name != "default" {
            return Err(ctx.field(
                "metadata.name",
                "a BaselineAdminNetworkPolicy must be named \"default\"",
            ));
        }
        let priority = if admin {
            match spec.priority {
                Some(p @ 0..=1000) => Some(p as u32),
                Some(p) => return Err(ctx.field("spec.priority", format!("{p} is outside 0-1000"))),
                None => {
                    return Err(ctx.field(
                        "spec.priority",
                        "missing: an AdminNetworkPolicy needs a priority",
                    ))
                }
            }
        } else {
            None
        };
        let subject = admin_subject(spec.subject.as_ref(), ctx)?;
        let mut ingress = Vec::new();
        for (i, rule) in spec.ingress.iter().flatten().enumerate() {
            ingress.push(admin_rule(
                rule,
                admin,
                false,
                ctx,
                &format!("spec.ingress[{i}]"),
            )?);
        }
        let mut egress = Vec::new();
        for (i, rule) in spec.egress.iter().flatten().enumerate() {
            egress.push(admin_rule(
                rule,
                admin,
                true,
                ctx,
                &format!("spec.egress[{i}]"),
            )?);
        }
        if ingress.len() > 100 || egress.len() > 100 {
            return Err(ctx.field("spec", "at most 100 ingress and 100 egress rules"));
        }
        self.admin_policies.push(AdminPolicy {
            kind: if admin {
                AdminKind::AdminNetworkPolicy
            } else {
                AdminKind::BaselineAdminNetworkPolicy
            },
            name,
            priority,
            subject,
            ingress,
            egress,
            origin: ctx.origin.clone(),
        });
        Ok(())
    }

    /// `policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy (apis/v1alpha2/
    /// clusternetworkpolicy_types.go): `tier: Admin|Baseline`, actions `Accept|Deny|Pass`,
    /// `protocols` with `tcp|udp|sctp.destinationPort.{number|range}` or `destinationNamedPort`.
    pub(super) fn load_cluster_network_policy(
        &mut self,
        value: &Value,
        ctx: &Ctx,
    ) -> Result<(), LoadError> {
        let object: Decoded<RawCnpSpec> = decode(value, ctx, false)?;
        let meta = object.meta;
        let spec = required_spec(object.spec, ctx, "a ClusterNetworkPolicy")?;
        let kind = match spec.tier.as_deref() {
            Some("Admin") => AdminKind::ClusterNetworkPolicyAdmin,
            Some("Baseline") => AdminKind::ClusterNetworkPolicyBaseline,
            other => {
                return Err(ctx.field(
                    "spec.tier",
                    format!("must be Admin or Baseline, not {other:?}"),
                ))
            }
        };
        let priority = match spec.priority {
            Some(p @ 0..=1000) => p as u32,
            Some(p) => return Err(ctx.field("spec.priority", format!("{p} is outside 0-1000"))),
            None => return Err(ctx.field("spec.priority", "missing")),
        };
        let subject = admin_subject(spec.subject.as_ref(), ctx)?;
        let mut rules = [Vec::new(), Vec::new()];
        for (d, (key, list)) in [("ingress", &spec.ingress), ("egress", &spec.egress)]
            .into_iter()
            .enumerate()
        {
            let list = list.as_deref().unwrap_or_default();
            if list.len() > 25 {
                return Err(ctx.field(format!("spec.{key}"), "at most 25 rules"));
            }
            for (i, rule) in list.iter().enumerate() {
                let path = format!("spec.{key}[{i}]");
                let action = match rule.action.as_str() {
                    "Accept" => "Allow",
                    "Deny" => "Deny",
                    "Pass" => "Pass",
                    other => {
                        return Err(ctx.field(
                            format!("{path}.action"),
                            format!("unsupported action {other:?} (expected Accept, Deny or Pass)"),
                        ))
                    }
                };
                let egress = d == 1;
                let peers = if egress { &rule.to } else { &rule.from };
                if peers.iter().flatten().any(|p| p.domain_names.is_some()) {
                    self.warnings.push(format!(
                        "{}: {}: {path}: domainNames peers name hosts by DNS, which netfence cannot resolve; they match no address",
                        ctx.origin,
                        ctx.object.clone().unwrap_or_default()
                    ));
                }
                let mut ports = Vec::new();
                for (j, protocol) in rule.protocols.iter().flatten().enumerate() {
                    ports.push(cnp_port(protocol, ctx, &format!("{path}.protocols[{j}]"))?);
                }
                let raw = RawAdminRule {
                    name: rule.name.clone(),
                    action: action.to_string(),
                    from: if egress { None } else { rule.from.clone() },
                    to: if egress { rule.to.clone() } else { None },
                    ports: None,
                };
                let mut parsed = admin_rule(&raw, true, egress, ctx, &path)?;
                parsed.ports = ports;
                rules[d].push(parsed);
            }
        }
        let [ingress, egress] = rules;
        self.admin_policies.push(AdminPolicy {
            kind,
            name: meta.name.unwrap_or_default(),
            priority: Some(priority),
            subject,
            ingress,
            egress,
            origin: ctx.origin.clone(),
        });
        Ok(())
    }
}

impl Loader {
    /// `networking.k8s.aws/v1alpha1` ClusterNetworkPolicy: the Amazon VPC CNI network policy
    /// agent's admin tiers (aws/amazon-network-policy-controller-k8s
    /// `api/v1alpha1/clusternetworkpolicy_types.go`). The network-policy-api shape (subject,
    /// peers, `portNumber`/`portRange`/`namedPort` ports) with `tier: Admin|Baseline`, a
    /// priority 0-1000 and actions `Accept|Deny|Pass`; egress peers add `domainNames` (Accept
    /// and Pass only), which netfence cannot resolve: such peers match nothing, and a rule
    /// with nothing else is left out (it can match no address netfence knows).
    pub(super) fn load_eks_cluster_network_policy(
        &mut self,
        value: &Value,
        ctx: &Ctx,
    ) -> Result<(), LoadError> {
        let object: Decoded<RawEksCnpSpec> = decode(value, ctx, false)?;
        let meta = object.meta;
        let spec = required_spec(object.spec, ctx, "a ClusterNetworkPolicy")?;
        let kind = match spec.tier.as_deref() {
            Some("Admin") => AdminKind::ClusterNetworkPolicyAdmin,
            Some("Baseline") => AdminKind::ClusterNetworkPolicyBaseline,
            other => {
                return Err(ctx.field(
                    "spec.tier",
                    format!("must be Admin or Baseline, not {other:?}"),
                ))
            }
        };
        let priority = match spec.priority {
            Some(p @ 0..=1000) => p as u32,
            Some(p) => return Err(ctx.field("spec.priority", format!("{p} is outside 0-1000"))),
            None => return Err(ctx.field("spec.priority", "missing")),
        };
        let subject = admin_subject(spec.subject.as_ref(), ctx)?;
        let mut rules = [Vec::new(), Vec::new()];
        for (d, (key, list)) in [("ingress", spec.ingress), ("egress", spec.egress)]
            .into_iter()
            .enumerate()
        {
            let list = list.unwrap_or_default();
            if list.len() > 100 {
                return Err(ctx.field(format!("spec.{key}"), "at most 100 rules"));
            }
            let egress = d == 1;
            for (i, mut rule) in list.into_iter().enumerate() {
                let path = format!("spec.{key}[{i}]");
                rule.action = match rule.action.as_str() {
                    "Accept" => "Allow".into(),
                    "Deny" | "Pass" => rule.action.clone(),
                    other => {
                        return Err(ctx.field(
                            format!("{path}.action"),
                            format!("unsupported action {other:?} (expected Accept, Deny or Pass)"),
                        ))
                    }
                };
                let peers = if egress { &mut rule.to } else { &mut rule.from };
                let named = peers
                    .iter()
                    .flatten()
                    .filter(|p| p.domain_names.is_some())
                    .count();
                if named > 0 {
                    if rule.action == "Deny" {
                        return Err(ctx.field(
                            format!("{path}.to"),
                            "domainNames peer cannot be used with Deny action, only Accept and Pass actions are supported for domainNames",
                        ));
                    }
                    if let Some(list) = peers.as_mut() {
                        list.retain(|p| p.domain_names.is_none());
                    }
                    let left_out = peers.as_ref().is_none_or(Vec::is_empty);
                    self.warnings.push(format!(
                        "{}: {}: {path}: domainNames peers name hosts by DNS, which netfence cannot resolve; they match no address{}",
                        ctx.origin,
                        ctx.object.clone().unwrap_or_default(),
                        if left_out { " (the rule has no other peer and is left out)" } else { "" }
                    ));
                    if left_out {
                        continue;
                    }
                }
                rules[d].push(admin_rule(&rule, true, egress, ctx, &path)?);
            }
        }
        let [ingress, egress] = rules;
        self.admin_policies.push(AdminPolicy {
            kind,
            name: meta.name.unwrap_or_default(),
            priority: Some(priority),
            subject,
            ingress,
            egress,
            origin: ctx.origin.clone(),
        });
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawEksCnpSpec {
    tier: Option<String>,
    priority: Option<i64>,
    subject: Option<RawAdminSubject>,
    ingress: Option<Vec<RawAdminRule>>,
    egress: Option<Vec<RawAdminRule>>,
}

pub(super) fn admin_subject(
    subject: Option<&RawAdminSubject>,
    ctx: &Ctx,
) -> Result<AdminSubject, LoadError> {
    let subject = subject.ok_or_else(|| ctx.field("spec.subject", "missing"))?;
    match (&subject.namespaces, &subject.pods) {
        (Some(ns), None) => Ok(AdminSubject {
            namespace_selector: selector(ns, ctx, "spec.subject.namespaces")?,
            pod_selector: LabelSelector::everything(),
        }),
        (None, Some(pods)) => {
            let (namespace_selector, pod_selector) =
                namespaced_pod(pods, ctx, "spec.subject.pods")?;
            Ok(AdminSubject {
                namespace_selector,
                pod_selector,
            })
        }
        _ => Err(ctx.field(
            "spec.subject",
            "exactly one of namespaces or pods must be set",
        )),
    }
}

pub(super) fn cnp_port(
    protocol: &RawCnpProtocol,
    ctx: &Ctx,
    path: &str,
) -> Result<AdminPort, LoadError> {
    let kinds = usize::from(protocol.tcp.is_some())
        + usize::from(protocol.udp.is_some())
        + usize::from(protocol.sctp.is_some())
        + usize::from(protocol.destination_named_port.is_some());
    if kinds != 1 {
        return Err(ctx.field(
            path,
            "exactly one of tcp, udp, sctp or destinationNamedPort must be set",
        ));
    }
    if let Some(name) = &protocol.destination_named_port {
        return Ok(AdminPort::Named(name.clone()));
    }
    let (name, proto, l4) = if let Some(l4) = &protocol.tcp {
        ("tcp", Protocol::Tcp, l4)
    } else if let Some(l4) = &protocol.udp {
        ("udp", Protocol::Udp, l4)
    } else {
        (
            "sctp",
            Protocol::Sctp,
            protocol
                .sctp
                .as_ref()
                .ok_or_else(|| ctx.field(path, "missing protocol"))?,
        )
    };
    let port = l4
        .destination_port
        .as_ref()
        .ok_or_else(|| ctx.field(format!("{path}.{name}.destinationPort"), "missing"))?;
    let p = format!("{path}.{name}.destinationPort");
    match (port.number, &port.range) {
        (Some(n), None) => {
            let n = port_number(n).map_err(|m| ctx.field(format!("{p}.number"), m))?;
            Ok(AdminPort::Range(
                proto,
                PortRange::single(n).unwrap_or(PortRange::ALL),
            ))
        }
        (None, Some(range)) => {
            let start =
                port_number(range.start).map_err(|m| ctx.field(format!("{p}.range.start"), m))?;
            let end = port_number(range.end).map_err(|m| ctx.field(format!("{p}.range.end"), m))?;
            if start >= end {
                return Err(ctx.field(
                    format!("{p}.range"),
                    "Start port must be less than End port",
                ));
            }
            Ok(AdminPort::Range(
                proto,
                PortRange::new(start, end).unwrap_or(PortRange::ALL),
            ))
        }
        _ => Err(ctx.field(&p, "exactly one of number or range must be set")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawCnpSpec {
    tier: Option<String>,
    priority: Option<i64>,
    subject: Option<RawAdminSubject>,
    ingress: Option<Vec<RawCnpRule>>,
    egress: Option<Vec<RawCnpRule>>,
}

#[derive(Deserialize)]
pub(super) struct RawCnpRule {
    name: Option<String>,
    action: String,
    from: Option<Vec<RawAdminPeer>>,
    to: Option<Vec<RawAdminPeer>>,
    protocols: Option<Vec<RawCnpProtocol>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawCnpProtocol {
    tcp: Option<RawCnpL4>,
    udp: Option<RawCnpL4>,
    sctp: Option<RawCnpL4>,
    destination_named_port: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawCnpL4 {
    destination_port: Option<RawCnpPort>,
}

#[derive(Deserialize)]
pub(super) struct RawCnpPort {
    number: Option<i64>,
    range: Option<RawCnpRange>,
}

#[derive(Deserialize)]
pub(super) struct RawCnpRange {
    start: i64,
    end: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawAdminSpec {
    priority: Option<i64>,
    subject: Option<RawAdminSubject>,
    ingress: Option<Vec<RawAdminRule>>,
    egress: Option<Vec<RawAdminRule>>,
}

#[derive(Deserialize)]
pub(super) struct RawAdminSubject {
    namespaces: Option<K8sLabelSelector>,
    pods: Option<RawNamespacedPod>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawNamespacedPod {
    namespace_selector: Option<K8sLabelSelector>,
    pod_selector: Option<K8sLabelSelector>,
}

#[derive(Deserialize)]
pub(super) struct RawAdminRule {
    name: Option<String>,
    action: String,
    from: Option<Vec<RawAdminPeer>>,
    to: Option<Vec<RawAdminPeer>>,
    ports: Option<Vec<RawAdminPort>>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawAdminPeer {
    namespaces: Option<K8sLabelSelector>,
    pods: Option<RawNamespacedPod>,
    nodes: Option<K8sLabelSelector>,
    networks: Option<Vec<String>>,
    domain_names: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawAdminPort {
    port_number: Option<RawPortNumber>,
    named_port: Option<String>,
    port_range: Option<RawPortRange>,
}

#[derive(Deserialize)]
pub(super) struct RawPortNumber {
    protocol: Option<String>,
    port: i64,
}

#[derive(Deserialize)]
pub(super) struct RawPortRange {
    protocol: Option<String>,
    start: i64,
    end: i64,
}

/// `namespaceSelector`/`podSelector` of a `pods` subject or peer. Both are declared without
/// `omitempty` in the Go types, so an omitted one decodes as the empty selector, which is how
/// implementations (and netpol-analyzer) read it.
pub(super) fn namespaced_pod(
    pods: &RawNamespacedPod,
    ctx: &Ctx,
    path: &str,
) -> Result<(LabelSelector, LabelSelector), LoadError> {
    let convert = |s: &Option<K8sLabelSelector>, leaf: &str| match s {
        Some(s) => selector(s, ctx, &format!("{path}.{leaf}")),
        None => Ok(LabelSelector::everything()),
    };
    Ok((
        convert(&pods.namespace_selector, "namespaceSelector")?,
        convert(&pods.pod_selector, "podSelector")?,
    ))
}

pub(super) fn admin_rule(
    rule: &RawAdminRule,
    admin: bool,
    egress: bool,
    ctx: &Ctx,
    path: &str,
) -> Result<AdminRule, LoadError> {
    let action = match (rule.action.as_str(), admin) {
        ("Allow", _) => AdminAction::Allow,
        ("Deny", _) => AdminAction::Deny,
        ("Pass", true) => AdminAction::Pass,
        (other, _) => {
            return Err(ctx.field(
                format!("{path}.action"),
                format!(
                    "unsupported action {other:?} (expected {})",
                    if admin {
                        "Allow, Deny or Pass"
                    } else {
                        "Allow or Deny"
                    }
                ),
            ))
        }
    };
    let (peers_field, peers) = if egress {
        ("to", &rule.to)
    } else {
        ("from", &rule.from)
    };
    let peers = peers.as_deref().unwrap_or_default();
    if peers.is_empty() || peers.len() > 100 {
        return Err(ctx.field(format!("{path}.{peers_field}"), "needs 1 to 100 peers"));
    }
    let mut out = Vec::new();
    for (i, peer) in peers.iter().enumerate() {
        let p = format!("{path}.{peers_field}[{i}]");
        let kinds = usize::from(peer.namespaces.is_some())
            + usize::from(peer.pods.is_some())
            + usize::from(peer.nodes.is_some())
            + usize::from(peer.networks.is_some());
        if kinds != 1 {
            return Err(ctx.field(
                &p,
                "exactly one of namespaces, pods, nodes or networks must be set",
            ));
        }
        if !egress && (peer.nodes.is_some() || peer.networks.is_some()) {
            return Err(ctx.field(&p, "nodes and networks peers are for egress rules only"));
        }
        out.push(if let Some(ns) = &peer.namespaces {
            AdminPeer::Pods {
                namespace_selector: selector(ns, ctx, &format!("{p}.namespaces"))?,
                pod_selector: LabelSelector::everything(),
            }
        } else if let Some(pods) = &peer.pods {
            let (namespace_selector, pod_selector) =
                namespaced_pod(pods, ctx, &format!("{p}.pods"))?;
            AdminPeer::Pods {
                namespace_selector,
                pod_selector,
            }
        } else if let Some(nodes) = &peer.nodes {
            AdminPeer::Nodes(selector(nodes, ctx, &format!("{p}.nodes"))?)
        } else {
            let mut nets = Vec::new();
            for (j, text) in peer.networks.iter().flatten().enumerate() {
                let net: IpNet = text.trim().parse().map_err(|_| {
                    ctx.field(
                        format!("{p}.networks[{j}]"),
                        format!("invalid CIDR {text:?}"),
                    )
                })?;
                // Host bits are masked, as for NetworkPolicy ipBlocks (ParseCIDRSloppy).
                nets.push(net.trunc());
            }
            if nets.is_empty() || nets.len() > 25 {
                return Err(ctx.field(format!("{p}.networks"), "needs 1 to 25 CIDRs"));
            }
            AdminPeer::Networks(nets)
        });
    }
    let mut ports = Vec::new();
    for (i, port) in rule.ports.iter().flatten().enumerate() {
        let p = format!("{path}.ports[{i}]");
        let kinds = usize::from(port.port_number.is_some())
            + usize::from(port.named_port.is_some())
            + usize::from(port.port_range.is_some());
        if kinds != 1 {
            return Err(ctx.field(
                &p,
                "exactly one of portNumber, namedPort or portRange must be set",
            ));
        }
        ports.push(if let Some(number) = &port.port_number {
            let protocol = parse_protocol(number.protocol.as_deref())
                .map_err(|m| ctx.field(format!("{p}.portNumber.protocol"), m))?;
            let n = port_number(number.port)
                .map_err(|m| ctx.field(format!("{p}.portNumber.port"), m))?;
            AdminPort::Range(protocol, PortRange::single(n).unwrap_or(PortRange::ALL))
        } else if let Some(range) = &port.port_range {
            let protocol = parse_protocol(range.protocol.as_deref())
                .map_err(|m| ctx.field(format!("{p}.portRange.protocol"), m))?;
            let start = port_number(range.start)
                .map_err(|m| ctx.field(format!("{p}.portRange.start"), m))?;
            let end =
                port_number(range.end).map_err(|m| ctx.field(format!("{p}.portRange.end"), m))?;
            if start >= end {
                return Err(ctx.field(
                    format!("{p}.portRange"),
                    format!("start ({start}) must be less than end ({end})"),
                ));
            }
            AdminPort::Range(
                protocol,
                PortRange::new(start, end).unwrap_or(PortRange::ALL),
            )
        } else {
            AdminPort::Named(port.named_port.clone().unwrap_or_default())
        });
    }
    if ports.len() > 100 {
        return Err(ctx.field(format!("{path}.ports"), "at most 100 ports"));
    }
    Ok(AdminRule {
        name: rule.name.clone().unwrap_or_default(),
        action,
        peers: out,
        ports,
    })
}
