//! Render the compiled model for one node as one nftables table (`inet netfence`).
//!
//! Layout (after Calico Felix's per-endpoint chains, in nft syntax):
//! - `forward` (hook forward): conntrack first (`established,related` accept, `invalid`
//!   drop), then dispatch by address: `ip saddr vmap @egress_v4` jumps to the source pod's
//!   egress chain, `ip daddr vmap @ingress_v4` to the destination pod's ingress chain. Pods
//!   that no policy isolates are not in the maps: default allow.
//! - one chain per (pod, direction, tier) that selects it: the tier's rules in order, then the
//!   tier's end action. Allow = `return` (this direction allows; the other is checked next),
//!   Deny = counted, logged `drop`, Pass = `goto` the pod's next tier chain (or `return` after
//!   the last), Log = `log` and continue.
//! - peer addresses are anonymous interval sets: the addresses of matching pods, and CIDRs
//!   minus their `except`s (minus invented pod addresses, which the analyser treats as
//!   unknown). Named ports resolve per destination pod, so an egress rule with a named port
//!   becomes one nft rule per destination pod that declares it.

use netfence_engine::ir::{Action, Peer, PortMatch, Rule, TierEnd};
use netfence_engine::{Endpoint, Engine};
use netfence_model::net::stable_hash;
use netfence_model::{AddressRanges, PodId, PolicyType, Protocol};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The name of the table netfence owns.
pub const TABLE: &str = "netfence";

/// One per-pod chain: a comment naming the pod, direction and tier, and its rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// `ns/pod Ingress, tier default`.
    pub comment: String,
    /// Rule texts in order (match expressions and verdict).
    pub rules: Vec<String>,
}

/// A rendered ruleset: the dispatch maps and the per-pod chains of `table inet netfence`.
/// Chain names derive from the pod's `namespace/name` (not its position), so an update touches
/// only the chains and map elements of the pods it changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Named interval sets (peer addresses, port lists), named by a hash of their content so
    /// that rules with the same peers share one set and an update never rewrites a set in place.
    pub sets: BTreeMap<String, NamedSet>,
    /// Map name (`egress_v4`, …) → address → chain to jump to.
    pub maps: BTreeMap<&'static str, BTreeMap<IpAddr, String>>,
    /// Chain name → chain.
    pub chains: BTreeMap<String, Chain>,
    /// Pods with at least one per-pod chain.
    pub isolated_endpoints: usize,
    /// Node the ruleset was rendered for.
    pub node: Option<String>,
}

/// A named set: its element type and elements (already rendered).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedSet {
    /// `ipv4_addr`, `ipv6_addr` or `inet_service`.
    pub element_type: &'static str,
    /// Elements: addresses, address ranges, ports, port ranges.
    pub elements: Vec<String>,
}

impl NamedSet {
    fn definition(&self) -> String {
        format!(
            "type {}; flags interval; elements = {{ {} }}",
            self.element_type,
            self.elements.join(", ")
        )
    }
}

const MAPS: [(&str, &str); 4] = [
    ("egress_v4", "ipv4_addr"),
    ("egress_v6", "ipv6_addr"),
    ("ingress_v4", "ipv4_addr"),
    ("ingress_v6", "ipv6_addr"),
];

impl Ruleset {
    /// Whether it enforces nothing: no per-pod chain, so no pod is isolated and the forward
    /// chain accepts everything (the ruleset of empty inputs, or of a node without pods).
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
    }

    /// Rules in per-pod chains.
    pub fn rules(&self) -> usize {
        self.chains.values().map(|c| c.rules.len()).sum()
    }

    /// The full script: creates, then atomically replaces, `table inet netfence`.
    pub fn script(&self) -> String {
        let mut script = String::new();
        let _ = writeln!(
            script,
            "# netfence ruleset{}: generated, do not edit.\n# Replaces table inet {TABLE} atomically (nft -f runs one transaction).\ntable inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{",
            self.node
                .as_ref()
                .map(|n| format!(" for node {n}"))
                .unwrap_or_default()
        );
        for (name, set) in &self.sets {
            let _ = writeln!(script, "\tset {name} {{ {} }}", set.definition());
        }
        for (map, addr_type) in MAPS {
            let _ = writeln!(script, "\tmap {map} {{\n\t\ttype {addr_type} : verdict");
            if let Some(entries) = self.maps.get(map).filter(|e| !e.is_empty()) {
                let items: Vec<String> = entries
                    .iter()
                    .map(|(ip, chain)| format!("{ip} : jump {chain}"))
                    .collect();
                let _ = writeln!(script, "\t\telements = {{ {} }}", items.join(", "));
            }
            let _ = writeln!(script, "\t}}");
        }
        let _ = writeln!(
            script,
            "\tchain forward {{\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tct state established,related accept\n\t\tct state invalid counter drop\n\t\tip saddr vmap @egress_v4\n\t\tip6 saddr vmap @egress_v6\n\t\tip daddr vmap @ingress_v4\n\t\tip6 daddr vmap @ingress_v6\n\t}}"
        );
        for (name, chain) in &self.chains {
            let _ = writeln!(script, "\t# {}\n\tchain {name} {{", chain.comment);
            for rule in &chain.rules {
                let _ = writeln!(script, "\t\t{rule}");
            }
            let _ = writeln!(script, "\t}}");
        }
        script.push_str("}\n");
        script
    }

    /// A script that turns `previous` (as loaded in the kernel) into `self` in one
    /// transaction, touching only the chains and map elements that differ. Established
    /// connections are unaffected: the conntrack rules are not touched.
    pub fn update_script(&self, previous: &Ruleset) -> String {
        let mut script = String::new();
        let t = format!("inet {TABLE}");
        for (name, set) in &self.sets {
            if !previous.sets.contains_key(name) {
                let _ = writeln!(script, "add set {t} {name} {{ {} }}", set.definition());
            }
        }
        for (name, chain) in &self.chains {
            match previous.chains.get(name) {
                Some(old) if old.rules == chain.rules => continue,
                Some(_) => {
                    let _ = writeln!(script, "flush chain {t} {name}");
                }
                None => {
                    let _ = writeln!(script, "add chain {t} {name}");
                }
            }
            for rule in &chain.rules {
                let _ = writeln!(script, "add rule {t} {name} {rule}");
            }
        }
        for (map, _) in MAPS {
            let empty = BTreeMap::new();
            let old = previous.maps.get(map).unwrap_or(&empty);
            let new = self.maps.get(map).unwrap_or(&empty);
            let removed: Vec<String> = old
                .iter()
                .filter(|(ip, chain)| new.get(*ip) != Some(*chain))
                .map(|(ip, _)| ip.to_string())
                .collect();
            if !removed.is_empty() {
                let _ = writeln!(
                    script,
                    "delete element {t} {map} {{ {} }}",
                    removed.join(", ")
                );
            }
            let added: Vec<String> = new
                .iter()
                .filter(|(ip, chain)| old.get(*ip) != Some(*chain))
                .map(|(ip, chain)| format!("{ip} : jump {chain}"))
                .collect();
            if !added.is_empty() {
                let _ = writeln!(script, "add element {t} {map} {{ {} }}", added.join(", "));
            }
        }
        for name in previous.chains.keys() {
            if !self.chains.contains_key(name) {
                let _ = writeln!(script, "flush chain {t} {name}\ndelete chain {t} {name}");
            }
        }
        for name in previous.sets.keys() {
            if !self.sets.contains_key(name) {
                let _ = writeln!(script, "delete set {t} {name}");
            }
        }
        script
    }
}

/// A stable chain-name stem for a pod: the stable hash of `namespace/name`.
fn pod_stem(key: &str) -> String {
    format!("{:016x}", stable_hash(key.bytes()))
}

/// Which pods to render chains for.
#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    /// Only pods with `spec.nodeName` equal to this; every pod when `None`. It must be a node
    /// the inputs name ([`known_nodes`]), else [`render`] fails.
    pub node: Option<String>,
}

/// Address intervals per family (the model's one address-range set).
type Addresses = AddressRanges;

fn render_range(v4: bool, (first, last): (u128, u128)) -> String {
    let show = |x: u128| {
        if v4 {
            Ipv4Addr::from(x as u32).to_string()
        } else {
            Ipv6Addr::from(x).to_string()
        }
    };
    if first == last {
        show(first)
    } else {
        format!("{}-{}", show(first), show(last))
    }
}

fn set_elements(v4: bool, ranges: &[(u128, u128)]) -> Vec<String> {
    ranges.iter().map(|r| render_range(v4, *r)).collect()
}

fn proto(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// Identifies one rule of the compiled model: (tier, policy, direction, rule index).
type RuleKey = (usize, usize, PolicyType, usize);

struct Ctx<'a> {
    /// Peer addresses per rule: they do not depend on the subject pod, so every pod that a
    /// policy selects shares them (this keeps rendering linear in the number of pods).
    peer_cache: std::cell::RefCell<std::collections::HashMap<RuleKey, Option<Addresses>>>,
    /// Named sets created so far.
    sets: std::cell::RefCell<BTreeMap<String, NamedSet>>,
    engine: &'a Engine,
    /// Invented pod addresses: an ipBlock never matches them (as in the analyser).
    synthetic: Vec<IpAddr>,
}

impl Ctx<'_> {
    /// Addresses a rule's peers match (`None` = any address).
    /// A set reference for `elements` (a literal when there is only one element).
    fn set_ref(&self, element_type: &'static str, elements: Vec<String>) -> String {
        if elements.len() == 1 {
            return elements[0].clone();
        }
        let hash = stable_hash(element_type.bytes().chain(elements.join(",").bytes()));
        let name = format!("s{hash:016x}");
        self.sets
            .borrow_mut()
            .entry(name.clone())
            .or_insert(NamedSet {
                element_type,
                elements,
            });
        format!("@{name}")
    }

    fn cached_peer_addresses(&self, key: RuleKey, rule: &Rule) -> Option<Addresses> {
        if let Some(found) = self.peer_cache.borrow().get(&key) {
            return found.clone();
        }
        let computed = self.peer_addresses(rule);
        self.peer_cache.borrow_mut().insert(key, computed.clone());
        computed
    }

    fn peer_addresses(&self, rule: &Rule) -> Option<Addresses> {
        if rule.peers.is_empty() {
            return None;
        }
        let inventory = self.engine.inventory();
        let mut out = Addresses::default();
        for peer in &rule.peers {
            match peer {
                Peer::Pods { .. } => {
                    for (id, pod) in inventory.pods().iter().enumerate() {
                        if self.engine.peer_matches(peer, Endpoint::Pod(id)) {
                            pod.ips.iter().for_each(|ip| out.push_ip(*ip));
                        }
                    }
                }
                Peer::Calico(_) | Peer::Nodes(_) => {
                    // Refused by `render` before we get here.
                }
                Peer::Net { net, except } => {
                    let mut ranges = AddressRanges::from_net(net);
                    for e in except {
                        ranges.remove_net(e);
                    }
                    for ip in &self.synthetic {
                        ranges.remove_ip(*ip);
                    }
                    out.extend(&ranges);
                }
            }
        }
        Some(out.normalise())
    }
}

fn verdict_text(action: Action, log_prefix: &str, next_chain: Option<&str>) -> String {
    match action {
        Action::Allow => "return".into(),
        Action::Deny => format!("counter log prefix \"{log_prefix}\" drop"),
        Action::Pass => match next_chain {
            Some(chain) => format!("goto {chain}"),
            None => "return".into(),
        },
        Action::Log => format!("log prefix \"{log_prefix}\""),
    }
}

/// nft log prefixes are limited to 127 bytes.
fn log_prefix(text: String) -> String {
    let mut text = text.replace('"', "'");
    if text.len() > 120 {
        let mut cut = 120;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text + " "
}

/// Policy features the renderer does not compile to nftables yet; rendering refuses them
/// rather than enforce something other than what the analyser predicts.
pub fn unsupported(engine: &Engine) -> Option<String> {
    engine
        .tiers()
        .iter()
        .flat_map(|t| &t.policies)
        .find(|p| p.kind != netfence_engine::ir::PolicyKind::NetworkPolicy)
        .map(|p| {
            format!(
                "{} {} cannot be enforced yet: the nftables renderer covers Kubernetes NetworkPolicy only",
                p.kind, p.name
            )
        })
}

/// Render the ruleset. An error names the first policy the renderer cannot compile yet, or a
/// `node` that the inputs do not name (see [`known_nodes`]).
pub fn render(engine: &Engine, options: &RenderOptions) -> Result<Ruleset, crate::DataplaneError> {
    if let Some(reason) = unsupported(engine) {
        return Err(crate::DataplaneError::Other(reason));
    }
    if let Some(node) = &options.node {
        let known = known_nodes(engine.inventory());
        if !known.contains(node) {
            return Err(crate::DataplaneError::UnknownNode {
                node: node.clone(),
                known: known.into_iter().collect(),
            });
        }
    }
    Ok(render_supported(engine, options))
}

/// The nodes the inputs name: Node objects and pods' `spec.nodeName` (a pod may name a node
/// whose Node object is not in the inputs).
pub fn known_nodes(inventory: &netfence_model::Inventory) -> BTreeSet<String> {
    let from_nodes = inventory.nodes.iter().map(|n| n.name.clone());
    let from_pods = inventory.pods().iter().filter_map(|p| p.node.clone());
    from_nodes.chain(from_pods).collect()
}

fn render_supported(engine: &Engine, options: &RenderOptions) -> Ruleset {
    let inventory = engine.inventory();
    let ctx = Ctx {
        peer_cache: Default::default(),
        sets: Default::default(),
        engine,
        synthetic: inventory
            .pods()
            .iter()
            .filter(|p| p.synthetic_ip)
            .flat_map(|p| p.ips.iter().copied())
            .collect(),
    };
    let mut ruleset = Ruleset {
        node: options.node.clone(),
        ..Ruleset::default()
    };
    for (id, pod) in inventory.pods().iter().enumerate() {
        if let Some(node) = &options.node {
            if pod.node.as_deref() != Some(node.as_str()) {
                continue;
            }
        }
        let stem = pod_stem(&pod.key());
        let mut any = false;
        for direction in [PolicyType::Egress, PolicyType::Ingress] {
            let selecting = engine.selecting(id, direction);
            if selecting.is_empty() {
                continue;
            }
            any = true;
            let short = match direction {
                PolicyType::Egress => "egress",
                PolicyType::Ingress => "ingress",
            };
            // Group the selecting policies by tier, in order.
            let mut tiers: Vec<(usize, Vec<usize>)> = Vec::new();
            for &(t, p) in selecting {
                match tiers.last_mut() {
                    Some((last, policies)) if *last == t => policies.push(p),
                    _ => tiers.push((t, vec![p])),
                }
            }
            let chain_name = |k: usize| format!("{}{stem}_t{k}", &short[..1]);
            for (k, (t, policies)) in tiers.iter().enumerate() {
                let tier = &engine.tiers()[*t];
                let next = (k + 1 < tiers.len()).then(|| chain_name(k + 1));
                let mut rules = Vec::new();
                for &p in policies {
                    let policy = &tier.policies[p];
                    for (r, rule) in policy.rules(direction).unwrap_or(&[]).iter().enumerate() {
                        let prefix = log_prefix(format!(
                            "netfence {} {direction} {} {} rule {r}",
                            rule.action,
                            pod.key(),
                            policy.name
                        ));
                        let verdict = verdict_text(rule.action, &prefix, next.as_deref());
                        for line in rule_lines(&ctx, (*t, p, direction, r), id, rule) {
                            let space = if line.is_empty() { "" } else { " " };
                            rules.push(format!(
                                "{line}{space}{verdict} comment \"{} rule {r}\"",
                                policy.name
                            ));
                        }
                    }
                }
                rules.push(match tier.end {
                    TierEnd::Deny => format!(
                        "counter log prefix \"{}\" drop",
                        log_prefix(format!(
                            "netfence drop {direction} {} end of tier {}",
                            pod.key(),
                            tier.name
                        ))
                    ),
                    TierEnd::Pass => match &next {
                        Some(chain) => format!("goto {chain}"),
                        None => "return".into(),
                    },
                });
                ruleset.chains.insert(
                    chain_name(k),
                    Chain {
                        comment: format!("{} {direction}, tier {}", pod.key(), tier.name),
                        rules,
                    },
                );
            }
            for ip in &pod.ips {
                let map = match (short, ip.is_ipv4()) {
                    ("egress", true) => "egress_v4",
                    ("egress", false) => "egress_v6",
                    (_, true) => "ingress_v4",
                    (_, false) => "ingress_v6",
                };
                ruleset
                    .maps
                    .entry(map)
                    .or_default()
                    .insert(*ip, chain_name(0));
            }
        }
        if any {
            ruleset.isolated_endpoints += 1;
        }
    }
    ruleset.sets = ctx.sets.into_inner();
    ruleset
}

/// The match expressions (without verdict) of one rule; several lines when it must be split
/// (per address family, per protocol, per destination of a named port). An empty string is a
/// rule that matches everything. No line at all: the rule can match nothing.
fn rule_lines(ctx: &Ctx, key: RuleKey, subject: PodId, rule: &Rule) -> Vec<String> {
    let direction = key.2;
    let inventory = ctx.engine.inventory();
    let peer_field = match direction {
        PolicyType::Egress => "daddr",
        PolicyType::Ingress => "saddr",
    };
    let peers = ctx.cached_peer_addresses(key, rule);
    // Address conditions per family; `None` means any address of any family.
    let address_matches: Vec<Option<String>> = match &peers {
        None => vec![None],
        Some(addresses) => {
            let mut out = Vec::new();
            if !addresses.v4.is_empty() {
                out.push(Some(format!(
                    "ip {peer_field} {}",
                    ctx.set_ref("ipv4_addr", set_elements(true, &addresses.v4))
                )));
            }
            if !addresses.v6.is_empty() {
                out.push(Some(format!(
                    "ip6 {peer_field} {}",
                    ctx.set_ref("ipv6_addr", set_elements(false, &addresses.v6))
                )));
            }
            out
        }
    };
    if address_matches.is_empty() {
        return Vec::new();
    }
    let join = |address: &Option<String>, port: &str| match (address, port.is_empty()) {
        (Some(a), true) => a.clone(),
        (Some(a), false) => format!("{a} {port}"),
        (None, _) => port.to_string(),
    };
    if rule.ports.is_empty() {
        return address_matches.iter().map(|a| join(a, "")).collect();
    }
    // Numbered ports (and named ports of the ingress subject) by protocol.
    // `None` = every port of the protocol.
    let mut by_protocol: BTreeMap<Protocol, Option<BTreeSet<(u16, u16)>>> = BTreeMap::new();
    let mut add = |protocol: Protocol, range: (u16, u16)| {
        if let Some(set) = by_protocol
            .entry(protocol)
            .or_insert_with(|| Some(BTreeSet::new()))
        {
            set.insert(range);
        }
    };
    let mut whole_protocols = Vec::new();
    let mut named_egress: Vec<(Protocol, &str)> = Vec::new();
    for port in &rule.ports {
        match port {
            PortMatch::Protocol(p) => whole_protocols.push(*p),
            PortMatch::Range(p, range) => add(*p, (range.first(), range.last())),
            PortMatch::Named(p, name) => match direction {
                PolicyType::Ingress => {
                    if let Some(number) = inventory.pods()[subject].named_port(name, *p) {
                        add(*p, (number, number));
                    }
                }
                PolicyType::Egress => named_egress.push((*p, name)),
            },
        }
    }
    for p in whole_protocols {
        by_protocol.insert(p, None);
    }
    let mut lines = Vec::new();
    for (protocol, ports) in &by_protocol {
        let port_match = match ports {
            None => format!("meta l4proto {}", proto(*protocol)),
            Some(set) if set.is_empty() => continue,
            Some(set) => {
                let items: Vec<String> = set
                    .iter()
                    .map(|&(a, b)| {
                        if a == b {
                            a.to_string()
                        } else {
                            format!("{a}-{b}")
                        }
                    })
                    .collect();
                format!(
                    "meta l4proto {} th dport {}",
                    proto(*protocol),
                    ctx.set_ref("inet_service", items)
                )
            }
        };
        for address in &address_matches {
            lines.push(join(address, &port_match));
        }
    }
    // Egress named ports: one line per destination pod that declares the name.
    for (protocol, name) in named_egress {
        for (id, pod) in inventory.pods().iter().enumerate() {
            let Some(number) = pod.named_port(name, protocol) else {
                continue;
            };
            let in_peers = rule.peers.is_empty()
                || rule
                    .peers
                    .iter()
                    .any(|p| ctx.engine.peer_matches(p, Endpoint::Pod(id)));
            if !in_peers {
                continue;
            }
            for ip in &pod.ips {
                let family = if ip.is_ipv4() { "ip" } else { "ip6" };
                lines.push(format!(
                    "{family} daddr {ip} meta l4proto {} th dport {number}",
                    proto(protocol)
                ));
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::IpNet;

    #[test]
    fn except_ranges_are_cut_out() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        let hole: IpNet = "10.1.0.0/16".parse().unwrap();
        let mut ranges = AddressRanges::from_net(&net);
        ranges.remove_net(&hole);
        assert_eq!(
            set_elements(true, &ranges.v4),
            vec!["10.0.0.0-10.0.255.255", "10.2.0.0-10.255.255.255"]
        );
    }
}
