//! Calico (projectcalico.org/v3, crd.projectcalico.org/v1): NetworkPolicy,
//! GlobalNetworkPolicy, their rules and entity rules, NetworkSet, GlobalNetworkSet, Tier.

use super::*;

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
                .map(|t| calico::selector(t).map_err(|m| ctx.field(field, m)))
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
            calico::check_services(rule, PolicyType::Ingress, global)
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
            calico::check_services(rule, PolicyType::Egress, global)
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
        let action =
            calico::action(&rule.action).map_err(|m| ctx.field(format!("{path}.action"), m))?;
        let protocol = rule
            .protocol
            .as_ref()
            .map(calico::protocol_number)
            .transpose()
            .map_err(|m| ctx.field(format!("{path}.protocol"), m))?;
        let not_protocol = rule
            .not_protocol
            .as_ref()
            .map(calico::protocol_number)
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
                    .map(|(i, t)| {
                        calico::net(t).map_err(|m| ctx.field(format!("{path}.{field}[{i}]"), m))
                    })
                    .collect()
            };
        let ports = |list: &Option<Vec<calico::IntOrText>>,
                     field: &str|
         -> Result<Vec<calico::CalicoPort>, LoadError> {
            list.iter()
                .flatten()
                .enumerate()
                .map(|(i, p)| {
                    calico::calico_port(p).map_err(|m| ctx.field(format!("{path}.{field}[{i}]"), m))
                })
                .collect()
        };
        let sel = |text: &Option<String>, field: &str| {
            text.as_deref()
                .map(|t| calico::selector(t).map_err(|m| ctx.field(format!("{path}.{field}"), m)))
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
            nets.push(calico::net(text).map_err(|m| ctx.field(format!("spec.nets[{i}]"), m))?);
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
