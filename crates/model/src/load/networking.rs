//! networking.k8s.io: NetworkPolicy (validated as the API server does) and Ingress.

use super::*;

impl Loader {
    pub(super) fn load_ingress(&mut self, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        /// AWS Load Balancer Controller annotations (its "Ingress annotations" guide).
        const LISTEN_PORTS: &str = "alb.ingress.kubernetes.io/listen-ports";
        const LEGACY_CLASS: &str = "kubernetes.io/ingress.class";
        let object: Decoded<IngressSpecLite> = decode(value, ctx, true)?;
        let meta = object.meta;
        let spec = object.spec.unwrap_or(IngressSpecLite {
            ingress_class_name: None,
            tls: None,
            rules: None,
        });
        let annotations = meta.annotations.unwrap_or_default();
        let listen_ports = annotations
            .get(LISTEN_PORTS)
            .map(|text| {
                parse_listen_ports(text)
                    .map_err(|m| ctx.field(format!("metadata.annotations[\"{LISTEN_PORTS}\"]"), m))
            })
            .transpose()?;
        let tls = spec.tls.unwrap_or_default();
        self.ingresses.push(Ingress {
            namespace: meta.namespace.unwrap_or_else(|| "default".into()),
            name: meta.name.unwrap_or_default(),
            class: spec
                .ingress_class_name
                .or_else(|| annotations.get(LEGACY_CLASS).cloned()),
            tls_entries: tls.len(),
            tls_hosts: tls
                .into_iter()
                .flat_map(|t| t.hosts.unwrap_or_default())
                .collect(),
            rule_hosts: spec
                .rules
                .unwrap_or_default()
                .into_iter()
                .filter_map(|r| r.host)
                .collect(),
            listen_ports,
            annotations,
            origin: ctx.origin.clone(),
        });
        Ok(())
    }

    pub(super) fn load_network_policy(
        &mut self,
        value: &Value,
        ctx: &Ctx,
    ) -> Result<(), LoadError> {
        let object: Decoded<NetworkPolicySpec> = decode(value, ctx, true)?;
        let meta = object.meta;
        let spec = required_spec(object.spec, ctx, "a NetworkPolicy")?;
        let policy = validate_network_policy(meta, spec, ctx)?;
        self.policies.push(policy);
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IngressSpecLite {
    ingress_class_name: Option<String>,
    tls: Option<Vec<IngressTlsLite>>,
    rules: Option<Vec<IngressRuleLite>>,
}

#[derive(Deserialize)]
pub(super) struct IngressTlsLite {
    hosts: Option<Vec<String>>,
}

#[derive(Deserialize)]
pub(super) struct IngressRuleLite {
    host: Option<String>,
}

/// `Ingress`/`Egress` values, de-duplicated, in the order given.
pub(super) fn parse_policy_types(
    types: &[String],
    ctx: &Ctx,
    field: &str,
) -> Result<Vec<PolicyType>, LoadError> {
    let mut out = Vec::new();
    for (i, t) in types.iter().enumerate() {
        let parsed = match t.as_str() {
            "Ingress" => PolicyType::Ingress,
            "Egress" => PolicyType::Egress,
            other => {
                return Err(ctx.field(
                    format!("{field}[{i}]"),
                    format!("unsupported value {other:?} (expected Ingress or Egress)"),
                ))
            }
        };
        if !out.contains(&parsed) {
            out.push(parsed);
        }
    }
    Ok(out)
}

pub(super) fn validate_network_policy(
    meta: Meta,
    spec: NetworkPolicySpec,
    ctx: &Ctx,
) -> Result<NetworkPolicy, LoadError> {
    let pod_selector = match &spec.pod_selector {
        Some(s) => selector(s, ctx, "spec.podSelector")?,
        None => LabelSelector::everything(),
    };
    let mut policy_types = Vec::new();
    let explicit = spec.policy_types.as_ref().is_some_and(|t| !t.is_empty());
    if let Some(types) = spec.policy_types.as_ref().filter(|t| !t.is_empty()) {
        if types.len() > 2 {
            return Err(ctx.field("spec.policyTypes", "may list at most Ingress and Egress"));
        }
        policy_types = parse_policy_types(types, ctx, "spec.policyTypes")?;
    } else {
        // API default: Ingress always; Egress iff there are egress rules.
        policy_types.push(PolicyType::Ingress);
        if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
            policy_types.push(PolicyType::Egress);
        }
    }
    let mut ports_without_protocol = Vec::new();
    for (direction, rules) in [
        (
            "ingress",
            spec.ingress
                .iter()
                .flatten()
                .map(|r| r.ports.as_deref())
                .collect::<Vec<_>>(),
        ),
        (
            "egress",
            spec.egress
                .iter()
                .flatten()
                .map(|r| r.ports.as_deref())
                .collect(),
        ),
    ] {
        for (i, ports) in rules.into_iter().enumerate() {
            for (j, port) in ports.into_iter().flatten().enumerate() {
                if port.protocol.is_none() {
                    ports_without_protocol.push(format!("spec.{direction}[{i}].ports[{j}]"));
                }
            }
        }
    }
    let mut ingress = Vec::new();
    for (i, rule) in spec.ingress.iter().flatten().enumerate() {
        let path = format!("spec.ingress[{i}]");
        ingress.push(validate_rule(
            rule.from.as_deref(),
            rule.ports.as_deref(),
            ctx,
            &path,
            "from",
        )?);
    }
    let mut egress = Vec::new();
    for (i, rule) in spec.egress.iter().flatten().enumerate() {
        let path = format!("spec.egress[{i}]");
        egress.push(validate_rule(
            rule.to.as_deref(),
            rule.ports.as_deref(),
            ctx,
            &path,
            "to",
        )?);
    }
    Ok(NetworkPolicy {
        annotations: meta.annotations.clone().unwrap_or_default(),
        namespace: namespace_of(&meta),
        name: meta.name.unwrap_or_default(),
        pod_selector,
        policy_types,
        policy_types_explicit: explicit,
        ports_without_protocol,
        ingress,
        egress,
        origin: ctx.origin.clone(),
    })
}

pub(super) fn validate_rule(
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&[NetworkPolicyPort]>,
    ctx: &Ctx,
    path: &str,
    peers_name: &str,
) -> Result<NpRule, LoadError> {
    let mut rule = NpRule {
        peers: Vec::new(),
        ports: Vec::new(),
    };
    for (i, peer) in peers.into_iter().flatten().enumerate() {
        let path = format!("{path}.{peers_name}[{i}]");
        rule.peers.push(validate_peer(peer, ctx, &path)?);
    }
    for (i, port) in ports.into_iter().flatten().enumerate() {
        let path = format!("{path}.ports[{i}]");
        rule.ports.push(validate_port(port, ctx, &path)?);
    }
    Ok(rule)
}

pub(super) fn validate_peer(
    peer: &NetworkPolicyPeer,
    ctx: &Ctx,
    path: &str,
) -> Result<NpPeer, LoadError> {
    let selectors =
        usize::from(peer.pod_selector.is_some()) + usize::from(peer.namespace_selector.is_some());
    if let Some(block) = &peer.ip_block {
        if selectors > 0 {
            return Err(ctx.field(
                path,
                "may not specify both ipBlock and another peer (podSelector/namespaceSelector)",
            ));
        }
        let cidr_path = format!("{path}.ipBlock.cidr");
        let cidr = parse_cidr(&block.cidr).map_err(|m| ctx.field(&cidr_path, m))?;
        let mut except = Vec::new();
        for (i, text) in block.except.iter().flatten().enumerate() {
            let except_path = format!("{path}.ipBlock.except[{i}]");
            let net = parse_cidr(text).map_err(|m| ctx.field(&except_path, m))?;
            if !(cidr.contains(&net) && net.prefix_len() > cidr.prefix_len()) {
                return Err(ctx.field(
                    except_path,
                    format!("{text} must be a strict subset of cidr {}", block.cidr),
                ));
            }
            except.push(net);
        }
        return Ok(NpPeer::IpBlock { cidr, except });
    }
    if selectors == 0 {
        return Err(ctx.field(
            path,
            "must specify a peer: podSelector, namespaceSelector or ipBlock",
        ));
    }
    let namespace_selector = peer
        .namespace_selector
        .as_ref()
        .map(|s| selector(s, ctx, &format!("{path}.namespaceSelector")))
        .transpose()?;
    let pod_selector = peer
        .pod_selector
        .as_ref()
        .map(|s| selector(s, ctx, &format!("{path}.podSelector")))
        .transpose()?
        .unwrap_or_else(LabelSelector::everything);
    Ok(NpPeer::Pods {
        namespace_selector,
        pod_selector,
    })
}

/// Parse a CIDR as the API server does (`ParseCIDRSloppy`: host bits allowed, then masked).
pub(super) fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let net: IpNet = text.trim().parse().map_err(|_| {
        format!("invalid CIDR {text:?} (expected an address/prefix such as 10.0.0.0/8)")
    })?;
    Ok(net.trunc())
}

pub(super) fn validate_port(
    port: &NetworkPolicyPort,
    ctx: &Ctx,
    path: &str,
) -> Result<NpPort, LoadError> {
    let protocol = parse_protocol(port.protocol.as_deref())
        .map_err(|m| ctx.field(format!("{path}.protocol"), m))?;
    let spec = match (&port.port, port.end_port) {
        (None, None) => NpPortSpec::All,
        (None, Some(_)) => {
            return Err(ctx.field(
                format!("{path}.endPort"),
                "may not be specified when port is not specified",
            ))
        }
        (Some(IntOrString::Int(n)), end) => {
            let first =
                port_number(i64::from(*n)).map_err(|m| ctx.field(format!("{path}.port"), m))?;
            let last = match end {
                None => first,
                Some(e) => {
                    let last = port_number(i64::from(e))
                        .map_err(|m| ctx.field(format!("{path}.endPort"), m))?;
                    if last < first {
                        return Err(ctx.field(
                            format!("{path}.endPort"),
                            format!(
                                "endPort ({last}) must be greater than or equal to port ({first})"
                            ),
                        ));
                    }
                    last
                }
            };
            NpPortSpec::Range(PortRange::new(first, last).unwrap_or(PortRange::ALL))
        }
        (Some(IntOrString::String(name)), end) => {
            if end.is_some() {
                return Err(ctx.field(
                    format!("{path}.endPort"),
                    "may not be specified when port is a named port",
                ));
            }
            validate_port_name(name).map_err(|m| ctx.field(format!("{path}.port"), m))?;
            NpPortSpec::Named(name.clone())
        }
    };
    Ok(NpPort {
        protocol,
        port: spec,
    })
}

/// `alb.ingress.kubernetes.io/listen-ports`: a JSON list of single-entry objects such as
/// `[{"HTTP": 80}, {"HTTPS": 443}]` (AWS Load Balancer Controller, "Ingress annotations").
pub(super) fn parse_listen_ports(text: &str) -> Result<Vec<(String, u16)>, String> {
    let entries: Vec<BTreeMap<String, u16>> = serde_json::from_str(text).map_err(|e| {
        format!("expected a JSON list like [{{\"HTTPS\": 443}}], got {text:?}: {e}")
    })?;
    let mut out = Vec::new();
    for entry in entries {
        for (protocol, port) in entry {
            if protocol != "HTTP" && protocol != "HTTPS" {
                return Err(format!(
                    "listener protocol {protocol:?} is not HTTP or HTTPS"
                ));
            }
            if port == 0 {
                return Err("listener port 0 is not a valid port".into());
            }
            out.push((protocol, port));
        }
    }
    Ok(out)
}
