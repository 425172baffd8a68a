//! cilium.io/v2: CiliumNetworkPolicy (`spec` and `specs`) and CiliumClusterwideNetworkPolicy.
//!
//! Field names are checked strictly beforehand (`strict.rs`); here each rule is decoded with
//! its field path and validated as `pkg/policy/api/rule_validation.go` does (one of
//! `endpointSelector`/`nodeSelector`, ports 0-65535 with `endPort` not below `port`, known
//! protocols and entities). Selectors are sorted out key by key as
//! `pkg/k8s/apis/cilium.io/utils/utils.go` `getEndpointSelector` reads them.

use super::*;
use crate::cilium::{
    CiliumKind, CiliumPeer, CiliumPolicy, CiliumPort, CiliumPortSpec, CiliumRule, CiliumSelector,
    CiliumSubject, Entity,
};
use netfence_selector::Requirement;

/// The label Cilium gives every pod for its namespace (`k8sConst.PodNamespaceLabel`).
const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// The prefix of namespace labels in Cilium selectors (`PodNamespaceMetaLabelsPrefix`).
const NAMESPACE_LABELS: &str = "io.cilium.k8s.namespace.labels.";
/// The service account label (`k8sConst.PolicyLabelServiceAccount`).
const SERVICE_ACCOUNT: &str = "io.cilium.k8s.policy.serviceaccount";
/// The cluster name label (`k8sConst.PolicyLabelCluster`), for Cluster Mesh.
const CLUSTER: &str = "io.cilium.k8s.policy.cluster";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCiliumObject {
    #[serde(default)]
    metadata: Meta,
    spec: Option<RawRule>,
    specs: Option<Vec<RawRule>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawRule {
    endpoint_selector: Option<K8sLabelSelector>,
    node_selector: Option<K8sLabelSelector>,
    ingress: Option<Vec<RawPeerRule>>,
    ingress_deny: Option<Vec<RawPeerRule>>,
    egress: Option<Vec<RawPeerRule>>,
    egress_deny: Option<Vec<RawPeerRule>>,
    enable_default_deny: Option<RawDefaultDeny>,
}

#[derive(Deserialize, Default)]
struct RawDefaultDeny {
    ingress: Option<bool>,
    egress: Option<bool>,
}

/// An ingress or egress rule, allow or deny: the strict shapes keep `from*` out of egress
/// rules and `to*` out of ingress rules, so one type reads both.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawPeerRule {
    #[serde(alias = "toEndpoints")]
    from_endpoints: Option<Vec<K8sLabelSelector>>,
    #[serde(alias = "toRequires")]
    from_requires: Option<Vec<K8sLabelSelector>>,
    #[serde(alias = "toNodes")]
    from_nodes: Option<Vec<K8sLabelSelector>>,
    #[serde(rename = "fromCIDR", alias = "toCIDR")]
    from_cidr: Option<Vec<String>>,
    #[serde(rename = "fromCIDRSet", alias = "toCIDRSet")]
    from_cidr_set: Option<Vec<RawCidrRule>>,
    #[serde(alias = "toEntities")]
    from_entities: Option<Vec<String>>,
    #[serde(alias = "toGroups")]
    from_groups: Option<Vec<Value>>,
    to_services: Option<Vec<RawService>>,
    #[serde(rename = "toFQDNs")]
    to_fqdns: Option<Vec<RawFqdn>>,
    to_ports: Option<Vec<RawPortRule>>,
    icmps: Option<Vec<Value>>,
    authentication: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCidrRule {
    cidr: Option<String>,
    cidr_group_ref: Option<String>,
    cidr_group_selector: Option<Value>,
    except: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawService {
    k8s_service: Option<RawServiceName>,
    k8s_service_selector: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawServiceName {
    service_name: String,
    namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFqdn {
    match_name: Option<String>,
    match_pattern: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPortRule {
    ports: Option<Vec<RawPortProtocol>>,
    rules: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPortProtocol {
    port: Option<IntOrString>,
    end_port: Option<i64>,
    protocol: Option<String>,
}

impl Loader {
    /// A CiliumNetworkPolicy (`clusterwide` false) or CiliumClusterwideNetworkPolicy: one
    /// [`CiliumPolicy`] per rule of `spec` and `specs`.
    pub(super) fn load_cilium_policy(
        &mut self,
        clusterwide: bool,
        value: &Value,
        ctx: &Ctx,
    ) -> Result<(), LoadError> {
        let object: RawCiliumObject = typed(value, ctx)?;
        let meta = checked_meta(object.metadata, ctx, !clusterwide)?;
        let kind = if clusterwide {
            CiliumKind::ClusterwideNetworkPolicy
        } else {
            CiliumKind::NetworkPolicy
        };
        let namespace = (!clusterwide).then(|| namespace_of(&meta));
        let name = meta.name.clone().unwrap_or_default();
        let rules: Vec<(Option<usize>, String, &RawRule)> = object
            .spec
            .iter()
            .map(|s| (None, "spec".to_string(), s))
            .chain(
                object
                    .specs
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, s)| (Some(i), format!("specs[{i}]"), s)),
            )
            .collect();
        if rules.is_empty() {
            // pkg/k8s/apis/cilium.io/v2 cnp_types.go Parse: "empty policy".
            return Err(ctx.field("spec", "missing: a Cilium policy needs spec or specs"));
        }
        let mut loaded = Vec::new();
        for (spec_index, path, raw) in rules {
            let mut reader = RuleReader {
                ctx,
                namespace: namespace.as_deref(),
                warnings: Vec::new(),
            };
            let subject = match (&raw.endpoint_selector, &raw.node_selector) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(ctx.field(
                        path,
                        "exactly one of endpointSelector and nodeSelector is required",
                    ))
                }
                (Some(selector), None) => CiliumSubject::Endpoints(
                    reader.selector(selector, &format!("{path}.endpointSelector"))?,
                ),
                (None, Some(selector)) => {
                    if !clusterwide {
                        return Err(ctx.field(
                            format!("{path}.nodeSelector"),
                            "only a CiliumClusterwideNetworkPolicy may select nodes",
                        ));
                    }
                    CiliumSubject::Nodes(super::selector(
                        selector,
                        ctx,
                        &format!("{path}.nodeSelector"),
                    )?)
                }
            };
            let mut sections: [Vec<CiliumRule>; 4] = Default::default();
            for (slot, (key, list)) in [
                ("ingress", &raw.ingress),
                ("ingressDeny", &raw.ingress_deny),
                ("egress", &raw.egress),
                ("egressDeny", &raw.egress_deny),
            ]
            .into_iter()
            .enumerate()
            {
                for (i, rule) in list.iter().flatten().enumerate() {
                    let at = format!("{path}.{key}[{i}]");
                    sections[slot].push(reader.rule(rule, slot >= 2, &at)?);
                }
            }
            if sections.iter().all(Vec::is_empty) {
                // rule_validation.go Sanitize: "rule must have at least one of Ingress,
                // IngressDeny, Egress, EgressDeny".
                return Err(ctx.field(
                    path,
                    "a rule needs at least one of ingress, ingressDeny, egress, egressDeny",
                ));
            }
            let default_deny = raw
                .enable_default_deny
                .as_ref()
                .map_or([None, None], |d| [d.ingress, d.egress]);
            let [ingress, ingress_deny, egress, egress_deny] = sections;
            let policy = CiliumPolicy {
                kind,
                namespace: namespace.clone(),
                name: name.clone(),
                spec_index,
                subject,
                ingress,
                ingress_deny,
                egress,
                egress_deny,
                default_deny,
                origin: ctx.origin.clone(),
            };
            if let CiliumSubject::Nodes(_) = policy.subject {
                self.warnings.push(format!(
                    "{}: {}: {} selects nodes (a host policy); netfence does not evaluate host endpoints",
                    ctx.origin,
                    ctx.object.clone().unwrap_or_default(),
                    policy.display_name()
                ));
            }
            self.warnings.append(&mut reader.warnings);
            loaded.push(policy);
        }
        self.cilium_policies.extend(loaded);
        Ok(())
    }
}

/// Reads the rules of one Cilium rule, collecting warnings about what is not modelled.
struct RuleReader<'a> {
    ctx: &'a Ctx,
    namespace: Option<&'a str>,
    warnings: Vec<String>,
}

impl RuleReader<'_> {
    fn warn(&mut self, path: &str, message: &str) {
        self.warnings.push(format!(
            "{}: {}: {path}: {message}",
            self.ctx.origin,
            self.ctx.object.clone().unwrap_or_default()
        ));
    }

    /// Sort a Cilium selector's keys: `source:key` (sources `k8s`, `any`, `reserved`, none),
    /// the namespace, namespace labels, the service account, the cluster.
    fn selector(
        &mut self,
        selector: &K8sLabelSelector,
        path: &str,
    ) -> Result<CiliumSelector, LoadError> {
        let mut entries: Vec<(String, String, Vec<String>, String)> = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            entries.push((
                key.clone(),
                "In".into(),
                vec![value.clone()],
                format!("{path}.matchLabels.{key}"),
            ));
        }
        for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
            entries.push((
                e.key.clone(),
                e.operator.clone(),
                e.values.clone().unwrap_or_default(),
                format!("{path}.matchExpressions[{i}]"),
            ));
        }
        let mut pods = Vec::new();
        let mut namespaces = Vec::new();
        let mut accounts = Vec::new();
        let mut out = CiliumSelector {
            pods: LabelSelector::everything(),
            namespaces: LabelSelector::everything(),
            names_namespace: false,
            service_accounts: None,
            reserved: Vec::new(),
        };
        for (key, operator, values, at) in entries {
            let (source, bare) = match key.split_once(':') {
                Some((source, bare)) => (source, bare),
                None => ("any", key.as_str()),
            };
            match source {
                "k8s" | "any" => {}
                "reserved" => {
                    out.reserved.push(bare.to_string());
                    continue;
                }
                other => {
                    return Err(self.ctx.field(
                        at,
                        format!(
                            "label source {other:?} is not one netfence reads (k8s, any, reserved)"
                        ),
                    ))
                }
            }
            let requirement = |key: &str| {
                requirement(key, &operator, values.clone())
                    .map_err(|m| self.ctx.field(at.clone(), m))
            };
            if bare == POD_NAMESPACE {
                out.names_namespace = true;
                namespaces.push(requirement(NAMESPACE_NAME_LABEL)?);
            } else if let Some(label) = bare.strip_prefix(NAMESPACE_LABELS) {
                out.names_namespace = true;
                namespaces.push(requirement(label)?);
            } else if bare == SERVICE_ACCOUNT {
                accounts.push(requirement("name")?);
            } else if bare == CLUSTER {
                // `Exists` holds for every pod Cilium manages (cilium-cli's manifests use it).
                if operator == "Exists" {
                    continue;
                }
                self.warn(
                    &at,
                    "cluster names (Cluster Mesh) are not modelled: every pod of the input is taken to be in the named cluster",
                );
            } else {
                pods.push(requirement(bare)?);
            }
        }
        out.pods = LabelSelector::from_requirements(pods);
        out.namespaces = LabelSelector::from_requirements(namespaces);
        out.service_accounts =
            (!accounts.is_empty()).then(|| LabelSelector::from_requirements(accounts));
        Ok(out)
    }

    fn rule(
        &mut self,
        raw: &RawPeerRule,
        egress: bool,
        path: &str,
    ) -> Result<CiliumRule, LoadError> {
        let prefix = if egress { "to" } else { "from" };
        let field = |name: &str| format!("{path}.{prefix}{name}");
        let mut peers = Vec::new();
        let mut has_peers = false;
        for (i, selector) in raw.from_endpoints.iter().flatten().enumerate() {
            has_peers = true;
            let at = format!("{}[{i}]", field("Endpoints"));
            let parsed = self.selector(selector, &at)?;
            peers.push(CiliumPeer::Endpoints(parsed));
        }
        if raw.from_requires.as_ref().is_some_and(|r| !r.is_empty()) {
            self.warn(
                &field("Requires"),
                "requirements (deprecated) are not modelled: the allow may be wider than Cilium's",
            );
        }
        for (i, selector) in raw.from_nodes.iter().flatten().enumerate() {
            has_peers = true;
            let at = format!("{}[{i}]", field("Nodes"));
            peers.push(CiliumPeer::Nodes(super::selector(selector, self.ctx, &at)?));
        }
        for (i, text) in raw.from_cidr.iter().flatten().enumerate() {
            has_peers = true;
            let at = format!("{}[{i}]", field("CIDR"));
            let net = cilium_cidr(text).map_err(|m| self.ctx.field(at, m))?;
            peers.push(CiliumPeer::Cidr {
                net,
                except: Vec::new(),
            });
        }
        for (i, set) in raw.from_cidr_set.iter().flatten().enumerate() {
            has_peers = true;
            let at = format!("{}[{i}]", field("CIDRSet"));
            peers.push(self.cidr_rule(set, &at)?);
        }
        for (i, text) in raw.from_entities.iter().flatten().enumerate() {
            has_peers = true;
            let at = format!("{}[{i}]", field("Entities"));
            let entity = entity(text).map_err(|m| self.ctx.field(at, m))?;
            peers.push(CiliumPeer::Entity(entity));
        }
        if raw.from_groups.as_ref().is_some_and(|g| !g.is_empty()) {
            has_peers = true;
            let at = field("Groups");
            self.warn(
                &at,
                "cloud provider groups (AWS security groups) are not resolved: the peer matches nothing",
            );
            peers.push(CiliumPeer::Unmodelled(at));
        }
        for (i, service) in raw.to_services.iter().flatten().enumerate() {
            has_peers = true;
            let at = format!("{path}.toServices[{i}]");
            peers.push(self.service(service, &at)?);
        }
        for (i, fqdn) in raw.to_fqdns.iter().flatten().enumerate() {
            has_peers = true;
            let at = format!("{path}.toFQDNs[{i}]");
            let name = match (&fqdn.match_name, &fqdn.match_pattern) {
                (Some(name), None) | (None, Some(name)) if !name.is_empty() => name.clone(),
                _ => {
                    return Err(self
                        .ctx
                        .field(at, "exactly one of matchName and matchPattern is required"))
                }
            };
            self.warn(
                &at,
                &format!("toFQDNs {name:?} is unresolved: netfence learns no DNS answers here, so the peer matches no address"),
            );
            peers.push(CiliumPeer::Fqdn(name));
        }
        let mut ports = Vec::new();
        let mut has_ports = false;
        let mut l7 = false;
        for (i, port_rule) in raw.to_ports.iter().flatten().enumerate() {
            has_ports = true;
            let at = format!("{path}.toPorts[{i}]");
            if port_rule.rules.as_ref().is_some_and(|r| !r.is_null()) {
                l7 = true;
                self.warn(
                    &format!("{at}.rules"),
                    "L7 rules are not modelled: netfence evaluates the L4 allow they ride on",
                );
            }
            for (j, port) in port_rule.ports.iter().flatten().enumerate() {
                ports.push(self.port(port, &format!("{at}.ports[{j}]"))?);
            }
        }
        if raw.icmps.as_ref().is_some_and(|i| !i.is_empty()) {
            has_ports = true;
            self.warn(
                &format!("{path}.icmps"),
                "ICMP is not modelled: these entries match no TCP, UDP or SCTP connection",
            );
        }
        if raw.authentication.is_some() {
            self.warn(
                &format!("{path}.authentication"),
                "mutual authentication is not modelled: the allow is evaluated without it",
            );
        }
        Ok(CiliumRule {
            peers,
            has_peers,
            ports,
            has_ports,
            l7,
        })
    }

    fn cidr_rule(&mut self, set: &RawCidrRule, at: &str) -> Result<CiliumPeer, LoadError> {
        if set.cidr_group_ref.is_some() || set.cidr_group_selector.is_some() {
            self.warn(
                at,
                "CiliumCIDRGroup references are not resolved: the peer matches nothing",
            );
            return Ok(CiliumPeer::Unmodelled(at.to_string()));
        }
        let Some(text) = &set.cidr else {
            return Err(self.ctx.field(
                at,
                "one of cidr, cidrGroupRef and cidrGroupSelector is required",
            ));
        };
        let net = cilium_cidr(text).map_err(|m| self.ctx.field(format!("{at}.cidr"), m))?;
        let mut except = Vec::new();
        for (k, e) in set.except.iter().flatten().enumerate() {
            let inner =
                cilium_cidr(e).map_err(|m| self.ctx.field(format!("{at}.except[{k}]"), m))?;
            if !net.contains(&inner) {
                return Err(self.ctx.field(
                    format!("{at}.except[{k}]"),
                    format!("{inner} is not inside {net}"),
                ));
            }
            except.push(inner);
        }
        Ok(CiliumPeer::Cidr { net, except })
    }

    fn service(&mut self, service: &RawService, at: &str) -> Result<CiliumPeer, LoadError> {
        match (&service.k8s_service, &service.k8s_service_selector) {
            (Some(name), None) => Ok(CiliumPeer::Service {
                namespace: name
                    .namespace
                    .clone()
                    .filter(|n| !n.is_empty())
                    .or_else(|| self.namespace.map(str::to_string))
                    .unwrap_or_else(|| "default".into()),
                name: name.service_name.clone(),
            }),
            (None, Some(_)) => {
                self.warn(
                    at,
                    "k8sServiceSelector is not modelled (netfence keeps no Service labels): the peer matches nothing",
                );
                Ok(CiliumPeer::Unmodelled(at.to_string()))
            }
            _ => Err(self.ctx.field(
                at,
                "exactly one of k8sService and k8sServiceSelector is required",
            )),
        }
    }

    /// `toPorts[].ports[]` (`l4.go` PortProtocol): `port` a number 0-65535 (0 = every port)
    /// or a port name, `endPort` for a range, `protocol` TCP/UDP/SCTP/ICMP/ICMPv6/VRRP/IGMP or
    /// ANY (the default), ANY meaning TCP, UDP and SCTP.
    fn port(&mut self, port: &RawPortProtocol, at: &str) -> Result<CiliumPort, LoadError> {
        let protocols = match port.protocol.as_deref().unwrap_or("ANY") {
            "ANY" => vec![Protocol::Tcp, Protocol::Udp, Protocol::Sctp],
            "TCP" => vec![Protocol::Tcp],
            "UDP" => vec![Protocol::Udp],
            "SCTP" => vec![Protocol::Sctp],
            "ICMP" | "ICMPv6" | "VRRP" | "IGMP" => {
                self.warn(
                    &format!("{at}.protocol"),
                    "this protocol is not modelled: the entry matches no TCP, UDP or SCTP connection",
                );
                Vec::new()
            }
            other => {
                return Err(self.ctx.field(
                    format!("{at}.protocol"),
                    format!("unsupported protocol {other:?} (expected TCP, UDP, SCTP, ICMP, ICMPv6, VRRP, IGMP or ANY)"),
                ))
            }
        };
        let number = |text: &str| -> Option<i64> { text.parse::<i64>().ok() };
        let first = match &port.port {
            None => None,
            Some(IntOrString::Int(n)) => Some(Ok(i64::from(*n))),
            Some(IntOrString::String(s)) if s.is_empty() => None,
            Some(IntOrString::String(s)) => Some(number(s).ok_or_else(|| s.clone())),
        };
        let spec = match (first, port.end_port) {
            (None | Some(Ok(0)), None | Some(0)) => CiliumPortSpec::All,
            (None | Some(Ok(0)), Some(_)) => {
                return Err(self.ctx.field(
                    format!("{at}.endPort"),
                    "needs a port number to start the range",
                ))
            }
            (Some(Err(name)), end) => {
                if end.is_some_and(|e| e != 0) {
                    return Err(self
                        .ctx
                        .field(format!("{at}.endPort"), "a named port cannot start a range"));
                }
                let name = name.to_ascii_lowercase();
                validate_port_name(&name).map_err(|m| self.ctx.field(format!("{at}.port"), m))?;
                CiliumPortSpec::Named(name)
            }
            (Some(Ok(n)), end) => {
                let first = port_number(n).map_err(|m| self.ctx.field(format!("{at}.port"), m))?;
                let last = match end {
                    None | Some(0) => first,
                    Some(e) => {
                        port_number(e).map_err(|m| self.ctx.field(format!("{at}.endPort"), m))?
                    }
                };
                let range = PortRange::new(first, last).ok_or_else(|| {
                    self.ctx.field(
                        format!("{at}.endPort"),
                        format!("{last} is below port {first}"),
                    )
                })?;
                CiliumPortSpec::Range(range)
            }
        };
        Ok(CiliumPort {
            protocols,
            port: spec,
        })
    }
}

/// A Cilium CIDR: an address/prefix, or a bare address (a host prefix), as `api.CIDR` accepts.
fn cilium_cidr(text: &str) -> Result<IpNet, String> {
    if let Ok(ip) = text.trim().parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    parse_cidr(text)
}

/// An entity name (`pkg/policy/api/entity.go`, `EntitySelectorMapping`).
fn entity(text: &str) -> Result<Entity, String> {
    Ok(match text {
        "all" => Entity::All,
        "world" => Entity::World(None),
        "world-ipv4" => Entity::World(Some(4)),
        "world-ipv6" => Entity::World(Some(6)),
        "cluster" => Entity::Cluster,
        "host" => Entity::Host,
        "remote-node" => Entity::RemoteNode,
        "kube-apiserver" => Entity::KubeApiserver,
        "init" => Entity::Unmodelled("init"),
        "health" => Entity::Unmodelled("health"),
        "unmanaged" => Entity::Unmodelled("unmanaged"),
        "ingress" => Entity::Unmodelled("ingress"),
        "none" => Entity::Unmodelled("none"),
        other => {
            return Err(format!(
                "unknown entity {other:?} (expected all, world, world-ipv4, world-ipv6, cluster, host, remote-node, kube-apiserver, init, health, unmanaged, ingress or none)"
            ))
        }
    })
}

/// One selector requirement, validated as a label selector's (keys without the source
/// prefix, which Kubernetes would refuse).
fn requirement(key: &str, operator: &str, values: Vec<String>) -> Result<Requirement, String> {
    let parsed = LabelSelector::from_parts(std::iter::empty(), [(key, operator, values)])
        .map_err(|e| e.message)?;
    parsed
        .requirements()
        .first()
        .cloned()
        .ok_or_else(|| "empty requirement".to_string())
}
