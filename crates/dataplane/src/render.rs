//! Render the compiled model for one node as one nftables table (`inet netfence`), for every
//! policy kind the engine compiles: the renderer reads the IR (ordered tiers of ordered
//! policies of ordered rules, `netfence_engine::ir`) and the engine's resolved peers, never the
//! policy languages, so a language that compiles into the IR is enforced as it is analysed.
//!
//! Layout (after Calico Felix's endpoint chains, felix/rules/endpoints.go
//! `endpointIptablesChain`, and its rule rendering, felix/rules/policy.go, in nft syntax):
//! - `forward` (hook forward): conntrack first (`established,related` accept, so replies of an
//!   allowed connection pass; `invalid` drop), then dispatch by address: `ip saddr vmap
//!   @egress_v4` jumps to the source pod's first egress tier chain, `ip daddr vmap
//!   @ingress_v4` to the destination pod's first ingress tier chain. Pods that no policy
//!   selects are not in the maps: the profile allows.
//! - per endpoint and direction, one chain per tier that selects it, in the engine's tier order
//!   (admin before the default tier, baseline after): the selecting policies' rules in order,
//!   then the tier's end. Allow = `return` (this direction allows; the other is checked next),
//!   Deny = counted `drop` logged (NFLOG group [`crate::rule::LOG_GROUP`]) with
//!   `netfence Deny <id> <direction> <tier>/<policy> rule <n>` (the id names the rule in
//!   [`Ruleset::logs`], see [`crate::nflog`]),
//!   Pass = `goto` the endpoint's next tier chain (`return` after the last: the profile
//!   allows), Log = `log` and continue. A tier's end is a counted, logged drop, or the next
//!   tier with `defaultAction: Pass`. Felix marks and returns where this jumps; the verdicts
//!   are the same.
//! - the maps point at one chain per endpoint and direction, named by the pod, holding a
//!   `goto` to its first tier chain; tier chains are named by their content (`te…`/`ti…`), so
//!   endpoints whose tiers render alike share them, as felix's endpoint chains share policy
//!   chains. A policy change re-points endpoint chains; the maps change only with pods.
//! - peer addresses ([`Engine::peer_addresses`], resolved by the engine once per interned
//!   peer) are interval sets: the addresses of the pods
//!   a peer matches and the other addresses it matches (CIDRs minus their `except`s, Calico
//!   `nets`/`notNets`, network sets, node addresses). A Calico rule's own-endpoint condition
//!   is decided per endpoint when its chain is rendered. Named ports resolve per destination
//!   pod, so an egress rule with a named port becomes one nft rule per destination pod that
//!   declares it. What nft cannot match exactly is refused ([`unsupported`]).
//!
//! Rules are rendered as [`NftRule`]s (match expressions, statements, verdict): their text is
//! the nft script ([`Ruleset::script`], [`Ruleset::update_script`]) and the netlink path
//! ([`crate::netlink`]) encodes the same values as nf_tables expressions.

use crate::nflog::{LogRule, LogSource, PolicyRef};
use crate::rule::{
    AddressField, Element, ElementKind, Family, IcmpField, Match, NftRule, Operand, Verdict,
};
use netfence_engine::ir::{Action, Policy, PolicySource, PortMatch, Rule, TierEnd};
use netfence_engine::{Endpoint, Engine};
use netfence_model::net::stable_hash;
use netfence_model::{AddressRanges, PodId, PolicyType, Protocol};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

/// The name of the table netfence owns.
pub const TABLE: &str = "netfence";

/// One per-pod chain: a comment naming the pod, direction and tier, and its rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// `ns/pod Ingress, tier default`.
    pub comment: String,
    /// Rules in order (match expressions, statements and verdict; `Display` gives the nft
    /// text).
    pub rules: Vec<NftRule>,
    /// With the chain's name, identifies its rules: chains of equal names and digests have
    /// equal rules, so an update compares two numbers per chain rather than every rule (at
    /// 20,000 chains, following each rule's pointers was most of a diff's time). A tier
    /// chain's is the hash its name is made of; an entry chain's, the hash of the chain it
    /// goes to (its name says which pod and direction). Whoever changes `rules` after
    /// rendering changes it too.
    pub digest: u64,
}

/// A rendered ruleset: the dispatch maps and the tier chains of `table inet netfence`.
/// Chains are named by a hash of their rules: endpoints whose tiers render alike share them,
/// a chain's name never changes meaning, and an update adds the chains it needs, re-points the
/// map elements of the pods it changes and removes chains nothing uses any more.
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
    /// The guard for new pods ([`PodGuard`]): set by the agent, never by [`render`].
    pub guard: Option<PodGuard>,
    /// What each logging rule's id stands for (the id is the third word of its log prefix):
    /// the agent names the policy of a logged packet from it ([`crate::nflog`]).
    pub logs: BTreeMap<String, LogSource>,
}

/// Fail closed for a pod the ruleset does not know yet (aws-network-policy-agent #83, #186,
/// #345: traffic flowed before a new pod's rules were in). The forward chain drops new
/// connections from or to a local pod address (one in `cidrs`, or seen on an interface
/// matching `interfaces`) that is not in `known`; the agent adds a pod's addresses to
/// `known` in the same transaction that installs its chains, so a pod never runs without
/// its rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodGuard {
    /// The node's pod address ranges (its podCIDRs).
    pub cidrs: Vec<ipnet::IpNet>,
    /// Pod interface names (nft wildcards, `veth*`, `eni*`).
    pub interfaces: Vec<String>,
    /// Addresses of the pods the ruleset was rendered for.
    pub known: BTreeSet<IpAddr>,
}

impl PodGuard {
    fn known_elements(&self, v4: bool) -> Vec<String> {
        self.known
            .iter()
            .filter(|ip| ip.is_ipv4() == v4)
            .map(ToString::to_string)
            .collect()
    }

    fn set_definitions(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (family, v4) in [("v4", true), ("v6", false)] {
            let kind = if v4 { "ipv4_addr" } else { "ipv6_addr" };
            let known = self.known_elements(v4);
            let elements = match known.is_empty() {
                true => String::new(),
                false => format!(" elements = {{ {} }};", known.join(", ")),
            };
            out.push(format!("set known_{family} {{ type {kind};{elements} }}"));
            let local: Vec<String> = self
                .cidrs
                .iter()
                .filter(|c| matches!(c, ipnet::IpNet::V4(_)) == v4)
                .map(|c| c.trunc().to_string())
                .collect();
            if !local.is_empty() {
                out.push(format!(
                    "set local_{family} {{ type {kind}; flags interval; elements = {{ {} }}; }}",
                    local.join(", ")
                ));
            }
        }
        out
    }

    /// The forward chain's drops of unknown local pods, before the dispatch maps.
    fn rules(&self) -> Vec<String> {
        let drop = format!(
            "counter log prefix \"netfence new pod \" group {} drop",
            crate::rule::LOG_GROUP
        );
        let mut out = Vec::new();
        for (family, ip) in [("v4", "ip"), ("v6", "ip6")] {
            let v4 = family == "v4";
            if self
                .cidrs
                .iter()
                .any(|c| matches!(c, ipnet::IpNet::V4(_)) == v4)
            {
                for side in ["saddr", "daddr"] {
                    out.push(format!(
                        "{ip} {side} @local_{family} {ip} {side} != @known_{family} {drop}"
                    ));
                }
            }
            for interface in &self.interfaces {
                let interface = interface.replace('"', "");
                out.push(format!(
                    "iifname \"{interface}\" {ip} saddr != @known_{family} {drop}"
                ));
                out.push(format!(
                    "oifname \"{interface}\" {ip} daddr != @known_{family} {drop}"
                ));
            }
        }
        out
    }
}

/// A named interval set: its element type and elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedSet {
    /// `ipv4_addr`, `ipv6_addr` or `inet_service`.
    pub kind: ElementKind,
    /// Elements: addresses, address ranges, ports, port ranges, in order.
    pub elements: Vec<Element>,
}

impl NamedSet {
    fn definition(&self) -> String {
        let elements: Vec<String> = self.elements.iter().map(|e| e.to_string()).collect();
        format!(
            "type {}; flags interval; elements = {{ {} }}",
            self.kind.type_name(),
            elements.join(", ")
        )
    }
}

/// The dispatch maps (name, key type), in the order they are declared.
pub const MAPS: [(&str, &str); 4] = [
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
        let guard = self.guard.as_ref();
        for definition in guard.map(PodGuard::set_definitions).unwrap_or_default() {
            let _ = writeln!(script, "\t{definition}");
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
        let guarded: String = guard
            .map(PodGuard::rules)
            .unwrap_or_default()
            .iter()
            .map(|rule| format!("\t\t{rule}\n"))
            .collect();
        let _ = writeln!(
            script,
            "\tchain forward {{\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tct state established,related accept\n\t\tct state invalid counter drop\n{guarded}\t\tip saddr vmap @egress_v4\n\t\tip6 saddr vmap @egress_v6\n\t\tip daddr vmap @ingress_v4\n\t\tip6 daddr vmap @ingress_v6\n\t}}"
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
        // The guard's ranges or interfaces changed: the forward chain changes, so replace
        // the table (still one transaction). Its known pods change with the maps, below.
        let same_guard =
            |a: &PodGuard, b: &PodGuard| a.cidrs == b.cidrs && a.interfaces == b.interfaces;
        match (&self.guard, &previous.guard) {
            (None, None) => {}
            (Some(new), Some(old)) if same_guard(new, old) => {}
            _ => return self.script(),
        }
        let mut script = String::new();
        let t = format!("inet {TABLE}");
        for (name, set) in &self.sets {
            if !previous.sets.contains_key(name) {
                let _ = writeln!(script, "add set {t} {name} {{ {} }}", set.definition());
            }
        }
        // New chains first: rules of one new chain may jump to another.
        for name in self.chains.keys() {
            if !previous.chains.contains_key(name) {
                let _ = writeln!(script, "add chain {t} {name}");
            }
        }
        for (name, chain) in &self.chains {
            match previous.chains.get(name) {
                Some(old) if old.digest == chain.digest => continue,
                Some(_) => {
                    let _ = writeln!(script, "flush chain {t} {name}");
                }
                None => {}
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
        // A new pod becomes known in the transaction that installs its chains (above).
        if let (Some(new), Some(old)) = (&self.guard, &previous.guard) {
            for (family, v4) in [("v4", true), ("v6", false)] {
                let text = |ips: std::collections::btree_set::Difference<IpAddr>| {
                    ips.filter(|ip| ip.is_ipv4() == v4)
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                };
                let removed = text(old.known.difference(&new.known));
                let added = text(new.known.difference(&old.known));
                for (verb, elements) in [("delete", removed), ("add", added)] {
                    if !elements.is_empty() {
                        let _ = writeln!(
                            script,
                            "{verb} element {t} known_{family} {{ {} }}",
                            elements.join(", ")
                        );
                    }
                }
            }
        }
        // Chains jump to one another: empty every chain that goes before deleting any.
        let gone: Vec<&String> = previous
            .chains
            .keys()
            .filter(|name| !self.chains.contains_key(*name))
            .collect();
        for name in &gone {
            let _ = writeln!(script, "flush chain {t} {name}");
        }
        for name in &gone {
            let _ = writeln!(script, "delete chain {t} {name}");
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

fn short_name(direction: PolicyType) -> &'static str {
    match direction {
        PolicyType::Egress => "egress",
        PolicyType::Ingress => "ingress",
    }
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

fn set_elements(v4: bool, ranges: &[(u128, u128)]) -> Vec<Element> {
    let kind = if v4 { ElementKind::V4 } else { ElementKind::V6 };
    ranges
        .iter()
        .map(|&(first, last)| Element { kind, first, last })
        .collect()
}

/// Identifies one rule of the compiled model: (tier, policy, direction, rule index).
type RuleKey = (usize, usize, PolicyType, usize);

/// One nft rule's worth of a rule's peers: the `group`th of [`Ctx::peer_groups`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct PeerGroup {
    rule: RuleKey,
    group: usize,
}

/// A rule's peers as the address groups it is rendered with, one nft rule (or one per family,
/// protocol, …) per group; `None` = any address.
type PeerGroups = std::rc::Rc<Vec<Option<std::sync::Arc<Addresses>>>>;

struct Ctx<'a> {
    /// Peer groups per rule: they do not depend on the subject pod, so every pod that a
    /// policy selects shares them (this keeps rendering linear in the number of pods).
    peer_cache: std::cell::RefCell<std::collections::HashMap<RuleKey, PeerGroups>>,
    /// A peer group's address match operand per family (`true` = IPv4): the set for its
    /// addresses, looked up by content once per group rather than once per chain.
    address_refs: std::cell::RefCell<std::collections::HashMap<(PeerGroup, bool), Operand>>,
    /// Named sets created so far.
    sets: std::cell::RefCell<BTreeMap<String, NamedSet>>,
    /// Set names by content: a set's name hashes its text, which is formatted once per
    /// distinct set rather than once per rule that uses it.
    set_names: std::cell::RefCell<std::collections::HashMap<(ElementKind, Vec<Element>), String>>,
    /// The logging rules' ids and what they stand for.
    logs: std::cell::RefCell<BTreeMap<String, LogSource>>,
    engine: &'a Engine,
}

impl Ctx<'_> {
    /// The id of a logging rule (a hash of what it stands for, so that it does not depend on
    /// the order of rendering and chains stay named by their content), remembered for
    /// [`Ruleset::logs`].
    fn log_id(&self, source: LogSource) -> String {
        let id = source.id();
        self.logs.borrow_mut().entry(id.clone()).or_insert(source);
        id
    }

    /// A set reference for `elements` (a literal when there is only one element).
    fn set_ref(&self, kind: ElementKind, elements: Vec<Element>) -> Operand {
        if elements.len() == 1 {
            return Operand::Single(elements[0]);
        }
        let key = (kind, elements);
        if let Some(name) = self.set_names.borrow().get(&key) {
            return Operand::Set(name.clone());
        }
        let (kind, elements) = key;
        let text: Vec<String> = elements.iter().map(|e| e.to_string()).collect();
        let hash = stable_hash(kind.type_name().bytes().chain(text.join(",").bytes()));
        let name = format!("s{hash:016x}");
        self.set_names
            .borrow_mut()
            .insert((kind, elements.clone()), name.clone());
        self.sets
            .borrow_mut()
            .entry(name.clone())
            .or_insert(NamedSet { kind, elements });
        Operand::Set(name)
    }

    /// A rule's peers as address groups, one per nft rule: one group per peer, so that
    /// rules naming the same peer share its set by name (Calico's conversion of Kubernetes
    /// policies also makes one rule per `from`/`to` peer: libcalico-go
    /// lib/backend/k8s/conversion/conversion.go, `k8sRuleToCalico`). The rule matches when any peer
    /// matches; a terminal action (Allow, Deny, Pass) decides the same whichever of its nft
    /// rules matches first. Log continues, so a packet two peers match would be logged twice:
    /// a Log rule keeps one group, the union. A rule without peers is one group, any address.
    fn peer_groups(&self, key: RuleKey, rule: &Rule) -> PeerGroups {
        if let Some(found) = self.peer_cache.borrow().get(&key) {
            return found.clone();
        }
        let groups: Vec<Option<std::sync::Arc<Addresses>>> = if rule.peers.is_empty() {
            vec![None]
        } else if rule.action == Action::Log && rule.peers.len() > 1 {
            let mut union = Addresses::default();
            for peer in &rule.peers {
                union.extend(&self.engine.peer_addresses(peer));
            }
            vec![Some(std::sync::Arc::new(union.normalise()))]
        } else {
            rule.peers
                .iter()
                .map(|peer| Some(self.engine.peer_addresses(peer)))
                .collect()
        };
        let groups = std::rc::Rc::new(groups);
        self.peer_cache.borrow_mut().insert(key, groups.clone());
        groups
    }

    /// The operand matching a peer group's addresses of one family (`ranges`, not empty).
    fn address_ref(&self, at: PeerGroup, v4: bool, ranges: &[(u128, u128)]) -> Operand {
        if let Some(found) = self.address_refs.borrow().get(&(at, v4)) {
            return found.clone();
        }
        let kind = if v4 { ElementKind::V4 } else { ElementKind::V6 };
        let operand = self.set_ref(kind, set_elements(v4, ranges));
        self.address_refs
            .borrow_mut()
            .insert((at, v4), operand.clone());
        operand
    }
}

/// A rule's statements and verdict for its action.
fn action_rule(action: Action, log_prefix: &str, next_chain: Option<&str>) -> NftRule {
    match action {
        Action::Allow => NftRule::verdict(Verdict::Return),
        Action::Deny => NftRule {
            counter: true,
            log: Some(log_prefix.to_string()),
            verdict: Some(Verdict::Drop),
            ..NftRule::default()
        },
        Action::Pass => NftRule::verdict(next_verdict(next_chain)),
        Action::Log => NftRule {
            log: Some(log_prefix.to_string()),
            ..NftRule::default()
        },
    }
}

/// `goto` the next tier chain, or `return` after the last (the profile allows).
fn next_verdict(next_chain: Option<&str>) -> Verdict {
    match next_chain {
        Some(chain) => Verdict::Goto(chain.to_string()),
        None => Verdict::Return,
    }
}

/// nft log prefixes are limited to 127 bytes (the kernel's `NF_LOG_PREFIXLEN` with its NUL),
/// so the prefix starts with what identifies the rule (`netfence <action> <id>`, ≤ 31
/// bytes) and the readable rest is cut to fit.
fn log_prefix(text: String) -> String {
    let mut text = text.replace('"', "'");
    if text.len() > 126 {
        let mut cut = 126;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text + " "
}

/// What the packet filter cannot match exactly, by rule: the first such rule's description.
/// Rendering refuses these rather than enforce something other than what the analyser
/// predicts (or than what the policy says):
/// - Calico `http` matches (L7: nftables sees no HTTP requests);
/// - Calico source ports (`source.ports`/`notPorts`): the analyser identifies connections by
///   destination port and evaluates such a rule as if every source port matched, so enforcing
///   them would make the kernel disagree with its prediction;
/// - `notPorts` naming a port in an egress rule (resolved per destination pod, which one
///   nft rule's exclusion cannot follow).
pub fn unsupported(engine: &Engine) -> Option<String> {
    let inventory = engine.inventory();
    for tier in engine.tiers() {
        for (policy, &source) in tier.policies.iter().zip(&tier.sources) {
            for direction in [PolicyType::Ingress, PolicyType::Egress] {
                let Some(rules) = policy.rules(direction) else {
                    continue;
                };
                let at = |r: usize| {
                    format!(
                        "{} {} ({}:{}) {direction} rule {r}",
                        policy.kind, policy.name, policy.origin.file, policy.origin.line
                    )
                };
                for (r, rule) in rules.iter().enumerate() {
                    let named_not_port = direction == PolicyType::Egress
                        && rule
                            .not_ports
                            .iter()
                            .any(|p| matches!(p, PortMatch::Named(..)));
                    if named_not_port {
                        return Some(format!("{}: a named port in notPorts of an egress rule resolves per destination pod; the nftables renderer cannot exclude it exactly", at(r)));
                    }
                    if let Some(source) = calico_source_rule(inventory, source, direction, r) {
                        if source.http {
                            return Some(format!("{}: HTTP matches are L7; nftables cannot enforce them (the analyser evaluates the rule without them), so netfence refuses to render it rather than approximate", at(r)));
                        }
                        let ported = |e: &netfence_model::calico::EntityRule| {
                            !e.ports.is_empty() || !e.not_ports.is_empty()
                        };
                        if ported(&source.source) {
                            return Some(format!("{}: source ports are not modelled by the analyser (it evaluates the rule as if every source port matched); enforcing them would make the kernel disagree with its predictions", at(r)));
                        }
                    }
                }
            }
        }
    }
    None
}

/// The Calico rule an IR rule was compiled from (the IR keeps the source's rules one for one,
/// in order), for what the IR does not carry: ICMP type and code, HTTP and source ports.
fn calico_source_rule(
    inventory: &netfence_model::Inventory,
    source: PolicySource,
    direction: PolicyType,
    rule: usize,
) -> Option<&netfence_model::calico::CalicoRule> {
    match source {
        PolicySource::Calico(index) => inventory
            .calico_policies
            .get(index)?
            .rules(direction)
            .get(rule),
        _ => None,
    }
}

/// ICMP type and code conditions of a rule, as alternatives (OR) of match expressions;
/// `[[]]` when there are none. `notICMP` with both a type and a code is "another type, or
/// this type with another code".
fn icmp_alternatives(source: Option<&netfence_model::calico::CalicoRule>) -> Vec<Vec<Match>> {
    let Some(rule) = source else {
        return vec![Vec::new()];
    };
    let v6 = rule.protocol == Some(58);
    let icmp = |field, negated, value| Match::Icmp {
        v6,
        field,
        negated,
        value,
    };
    let mut positive = Vec::new();
    if let Some(m) = rule.icmp_match {
        if let Some(t) = m.icmp_type {
            positive.push(icmp(IcmpField::Type, false, t));
        }
        if let Some(c) = m.code {
            positive.push(icmp(IcmpField::Code, false, c));
        }
    }
    let negative: Vec<Vec<Match>> = match rule.not_icmp_match {
        Some(netfence_model::calico::IcmpMatch {
            icmp_type: Some(t),
            code: Some(c),
        }) => vec![
            vec![icmp(IcmpField::Type, true, t)],
            vec![
                icmp(IcmpField::Type, false, t),
                icmp(IcmpField::Code, true, c),
            ],
        ],
        Some(netfence_model::calico::IcmpMatch {
            icmp_type: Some(t),
            code: None,
        }) => vec![vec![icmp(IcmpField::Type, true, t)]],
        // No type: every ICMP packet is excluded (the protocol condition keeps only ICMP).
        Some(_) => Vec::new(),
        None => vec![Vec::new()],
    };
    negative
        .into_iter()
        .map(|n| positive.iter().cloned().chain(n).collect())
        .collect()
}

/// Render the ruleset. An error names the first policy the renderer cannot compile yet, or a
/// `node` that the inputs do not name (see [`known_nodes`]).
pub fn render(engine: &Engine, options: &RenderOptions) -> Result<Ruleset, crate::DataplaneError> {
    if let Some(reason) = unsupported(engine) {
        return Err(crate::DataplaneError::Unsupported(reason));
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

/// Whether a policy's rules for `direction` render the same for every endpoint it selects:
/// no own-endpoint condition and no named port resolved on the subject (ingress).
fn same_for_every_subject(policy: &Policy, direction: PolicyType) -> bool {
    let named = |ports: &[PortMatch]| ports.iter().any(|p| matches!(p, PortMatch::Named(..)));
    policy.rules(direction).unwrap_or(&[]).iter().all(|rule| {
        rule.local.is_none()
            && !(direction == PolicyType::Ingress && (named(&rule.ports) || named(&rule.not_ports)))
    })
}

/// The rules of one tier chain for `subject`: the selecting policies' rules in order, then
/// the tier's end (felix/rules/policy.go renders a rule's action as: Allow accepts, Deny
/// drops, Pass leaves the tier, Log logs and continues; felix/rules/endpoints.go ends a tier
/// that has policies for the endpoint with a drop unless the tier's default action is Pass).
fn tier_rules(
    ctx: &Ctx,
    subject: PodId,
    direction: PolicyType,
    (t, policies): (usize, &[usize]),
    next: Option<&str>,
) -> Vec<NftRule> {
    let engine = ctx.engine;
    let inventory = engine.inventory();
    let tier = &engine.tiers()[t];
    let mut rules = Vec::new();
    for &p in policies {
        let (policy, source) = (&tier.policies[p], tier.sources[p]);
        for (r, rule) in policy.rules(direction).unwrap_or(&[]).iter().enumerate() {
            // Only Deny and Log rules log.
            let prefix = match rule.action {
                Action::Deny | Action::Log => {
                    let id = ctx.log_id(LogSource {
                        direction,
                        tier: tier.name.clone(),
                        rule: LogRule::Rule {
                            policy: PolicyRef::of(inventory, policy, source),
                            index: r,
                            action: rule.action.to_string(),
                        },
                    });
                    log_prefix(format!(
                        "netfence {} {id} {direction} {}/{} rule {r}",
                        rule.action, tier.name, policy.name
                    ))
                }
                Action::Allow | Action::Pass => String::new(),
            };
            let action = action_rule(rule.action, &prefix, next);
            let comment = format!("{} rule {r}", policy.name);
            let extra = icmp_alternatives(calico_source_rule(inventory, source, direction, r));
            for matches in rule_lines(ctx, (t, p, direction, r), subject, rule, &extra) {
                rules.push(NftRule {
                    matches,
                    comment: Some(comment.clone()),
                    ..action.clone()
                });
            }
        }
    }
    rules.push(match tier.end {
        TierEnd::Deny => NftRule {
            counter: true,
            log: Some(log_prefix(format!(
                "netfence drop {} {direction} end of tier {}",
                ctx.log_id(LogSource {
                    direction,
                    tier: tier.name.clone(),
                    rule: LogRule::EndOfTier {
                        policies: policies
                            .iter()
                            .map(|&p| PolicyRef::of(inventory, &tier.policies[p], tier.sources[p]))
                            .collect(),
                    },
                }),
                tier.name
            ))),
            verdict: Some(Verdict::Drop),
            ..NftRule::default()
        },
        TierEnd::Pass => NftRule::verdict(next_verdict(next)),
    });
    rules
}

/// A chain for a (tier, selecting policies, next chain) as rendered for one endpoint.
type TierKey = (PolicyType, usize, Vec<usize>, Option<String>);

fn render_supported(engine: &Engine, options: &RenderOptions) -> Ruleset {
    let inventory = engine.inventory();
    let ctx = Ctx {
        peer_cache: Default::default(),
        address_refs: Default::default(),
        sets: Default::default(),
        set_names: Default::default(),
        logs: Default::default(),
        engine,
    };
    let mut ruleset = Ruleset {
        node: options.node.clone(),
        ..Ruleset::default()
    };
    // Chains are named by their content, so endpoints whose tiers render alike share them
    // (as felix shares one chain per policy between endpoints). Tier chains that cannot
    // depend on the endpoint are remembered by what they are made of, and not rendered again.
    let mut known: std::collections::HashMap<TierKey, String> = Default::default();
    // Chain name -> (first endpoint, direction, tier, endpoints using it).
    let mut users: BTreeMap<String, (String, PolicyType, String, usize)> = BTreeMap::new();
    for (id, pod) in inventory.pods().iter().enumerate() {
        let id = PodId::new(id);
        if let Some(node) = &options.node {
            if pod.node.as_deref() != Some(node.as_str()) {
                continue;
            }
        }
        let mut any = false;
        for direction in [PolicyType::Egress, PolicyType::Ingress] {
            let selecting = engine.selecting(id, direction);
            if selecting.is_empty() {
                continue;
            }
            any = true;
            // Group the selecting policies by tier, in order.
            let mut tiers: Vec<(usize, Vec<usize>)> = Vec::new();
            for &id in selecting {
                let (t, p) = (id.tier(), id.index());
                match tiers.last_mut() {
                    Some((last, policies)) if *last == t => policies.push(p),
                    _ => tiers.push((t, vec![p])),
                }
            }
            // From the last tier back, so that each chain knows the name of the next.
            let mut next: Option<String> = None;
            for (t, policies) in tiers.iter().rev() {
                let tier = &engine.tiers()[*t];
                let shared = policies
                    .iter()
                    .all(|&p| same_for_every_subject(&tier.policies[p], direction));
                let key: TierKey = (direction, *t, policies.clone(), next.clone());
                let name = match known.get(&key).filter(|_| shared) {
                    Some(name) => name.clone(),
                    None => {
                        let rules =
                            tier_rules(&ctx, id, direction, (*t, policies), next.as_deref());
                        let text: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
                        let hash = stable_hash(text.join("\n").bytes());
                        let name = format!("t{}{hash:016x}", &short_name(direction)[..1]);
                        ruleset.chains.entry(name.clone()).or_insert(Chain {
                            comment: String::new(),
                            rules,
                            digest: hash,
                        });
                        if shared {
                            known.insert(key, name.clone());
                        }
                        name
                    }
                };
                users
                    .entry(name.clone())
                    .or_insert_with(|| (pod.key(), direction, tier.name.clone(), 0))
                    .3 += 1;
                next = Some(name);
            }
            let Some(first) = next else { continue };
            // The endpoint's own chain (felix's per-endpoint `cali-tw-`/`cali-fw-` chain): the
            // maps point at it, named by the pod, so a policy change re-points one rule in it
            // and never touches the maps (element updates make nft read every set back).
            let entry = format!("{}{}", &short_name(direction)[..1], pod_stem(&pod.key()));
            ruleset.chains.insert(
                entry.clone(),
                Chain {
                    comment: format!("{} {direction}", pod.key()),
                    digest: stable_hash(first.bytes()),
                    rules: vec![NftRule {
                        comment: Some(format!("{} {direction}", pod.key())),
                        ..NftRule::verdict(Verdict::Goto(first))
                    }],
                },
            );
            for ip in &pod.ips {
                let map = match (direction, ip.is_ipv4()) {
                    (PolicyType::Egress, true) => "egress_v4",
                    (PolicyType::Egress, false) => "egress_v6",
                    (PolicyType::Ingress, true) => "ingress_v4",
                    (PolicyType::Ingress, false) => "ingress_v6",
                };
                ruleset
                    .maps
                    .entry(map)
                    .or_default()
                    .insert(*ip, entry.clone());
            }
        }
        if any {
            ruleset.isolated_endpoints += 1;
        }
    }
    for (name, (pod, direction, tier, count)) in users {
        // Tier chains' comments name the first endpoint that uses them.
        if let Some(chain) = ruleset.chains.get_mut(&name) {
            chain.comment = match count {
                1 => format!("{pod} {direction}, tier {tier}"),
                2 => format!("{pod} {direction}, tier {tier} (and 1 more endpoint)"),
                n => format!(
                    "{pod} {direction}, tier {tier} (and {} more endpoints)",
                    n - 1
                ),
            };
        }
    }
    ruleset.sets = ctx.sets.into_inner();
    ruleset.logs = ctx.logs.into_inner();
    ruleset
}

/// One way a rule's protocol and port conditions can hold: the protocol it fixes (if any),
/// its match text, and, for a named port of an egress rule, the one destination address it
/// resolved on.
struct PortAlternative {
    protocol: Option<Protocol>,
    matches: Vec<Match>,
    destination: Option<IpAddr>,
}

fn port_items(set: &BTreeSet<(u16, u16)>) -> Vec<Element> {
    set.iter()
        .map(|&(a, b)| Element {
            kind: ElementKind::Port,
            first: u128::from(a),
            last: u128::from(b),
        })
        .collect()
}

fn l4proto(protocol: Protocol) -> Match {
    Match::L4Proto {
        negated: false,
        protocol: protocol.number(),
    }
}

fn dport(negated: bool, value: Operand) -> Match {
    Match::DestinationPort { negated, value }
}

/// The match expressions (without verdict) of one rule in the chain of `subject`; several
/// lines when it must be split (per address family, per protocol, per destination of a named
/// port). An empty line is a rule that matches everything. No line at all: the rule can
/// match nothing here.
///
/// What the IR decides about the subject itself (a Calico rule's own-endpoint condition,
/// `local`) is decided here, once per chain: the chain belongs to that one endpoint. `extra`
/// holds alternatives (OR) of match expressions the IR does not carry (ICMP type and code,
/// read from the source); `[[]]` when there are none.
fn rule_lines(
    ctx: &Ctx,
    key: RuleKey,
    subject: PodId,
    rule: &Rule,
    extra: &[Vec<Match>],
) -> Vec<Vec<Match>> {
    if let Some(local) = &rule.local {
        if !ctx.engine.peer_matches(local, Endpoint::Pod(subject)) {
            return Vec::new();
        }
    }
    let mut lines = Vec::new();
    for (group, peers) in ctx.peer_groups(key, rule).iter().enumerate() {
        let at = PeerGroup { rule: key, group };
        lines.extend(peer_lines(ctx, at, subject, rule, peers.as_deref(), extra));
    }
    // Peers that overlap can give the same line twice (an egress named port resolved on a
    // pod that two peers match): the second could never decide anything.
    let mut seen = std::collections::HashSet::new();
    lines.retain(|line| seen.insert(line.clone()));
    lines
}

/// The lines of one rule for one of its peer groups ([`Ctx::peer_groups`]); `peers` is
/// `None` when the rule has no peer (any address).
fn peer_lines(
    ctx: &Ctx,
    at: PeerGroup,
    subject: PodId,
    rule: &Rule,
    peers: Option<&Addresses>,
    extra: &[Vec<Match>],
) -> Vec<Vec<Match>> {
    let want_family = |ip: IpAddr| match rule.ip_version {
        Some(4) => ip.is_ipv4(),
        Some(6) => ip.is_ipv6(),
        _ => true,
    };
    let direction = at.rule.2;
    let peer_field = match direction {
        PolicyType::Egress => AddressField::Destination,
        PolicyType::Ingress => AddressField::Source,
    };
    let (want_v4, want_v6) = (rule.ip_version != Some(6), rule.ip_version != Some(4));
    // Address conditions per family; `None` is any address.
    let address_matches: Vec<Option<Match>> = match peers {
        None => vec![match rule.ip_version {
            None => None,
            Some(4) => Some(Match::NfProto(Family::V4)),
            Some(_) => Some(Match::NfProto(Family::V6)),
        }],
        Some(addresses) => {
            let mut out = Vec::new();
            if want_v4 && !addresses.v4.is_empty() {
                out.push(Some(Match::Address {
                    family: Family::V4,
                    field: peer_field,
                    value: ctx.address_ref(at, true, &addresses.v4),
                }));
            }
            if want_v6 && !addresses.v6.is_empty() {
                out.push(Some(Match::Address {
                    family: Family::V6,
                    field: peer_field,
                    value: ctx.address_ref(at, false, &addresses.v6),
                }));
            }
            out
        }
    };
    if address_matches.is_empty() {
        return Vec::new();
    }
    let rule_protocol = rule.protocol;
    let mut lines = Vec::new();
    for alternative in port_alternatives(ctx, subject, direction, rule, peers) {
        // The rule's protocol: implied by a port match of that protocol, contradicted by
        // one of another.
        let protocol_match = match (alternative.protocol, rule_protocol) {
            (Some(p), Some(n)) if p.number() != n => continue,
            (None, Some(n)) => Some(Match::L4Proto {
                negated: false,
                protocol: n,
            }),
            _ => None,
        };
        let not_protocol = match (alternative.protocol, rule.not_protocol) {
            (Some(p), Some(n)) if p.number() == n => continue,
            (None, Some(n)) => Some(Match::L4Proto {
                negated: true,
                protocol: n,
            }),
            _ => None,
        };
        if alternative.destination.is_some_and(|ip| !want_family(ip)) {
            continue;
        }
        let protocol = alternative
            .protocol
            .or_else(|| rule_protocol.and_then(Protocol::from_number));
        for exclusion in not_port_exclusions(ctx, subject, rule, protocol, alternative.destination)
        {
            let addresses: Vec<Option<Match>> = match alternative.destination {
                Some(ip) => vec![Some(Match::Address {
                    family: Family::of(ip),
                    field: AddressField::Destination,
                    value: Operand::Single(Element {
                        kind: match ip {
                            IpAddr::V4(_) => ElementKind::V4,
                            IpAddr::V6(_) => ElementKind::V6,
                        },
                        first: ip_value(ip),
                        last: ip_value(ip),
                    }),
                })],
                None => address_matches.clone(),
            };
            for (address, more) in addresses
                .iter()
                .flat_map(|a| extra.iter().map(move |e| (a, e)))
            {
                let line: Vec<Match> = address
                    .iter()
                    .chain(&protocol_match)
                    .chain(&not_protocol)
                    .chain(&alternative.matches)
                    .chain(&exclusion)
                    .chain(more)
                    .cloned()
                    .collect();
                lines.push(line);
            }
        }
    }
    lines
}

fn ip_value(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The protocol and port conditions of a rule as alternatives (OR). No port condition: one
/// alternative that matches every connection. Named ports resolve on the destination: the
/// subject for ingress, each destination pod in the rule's peers for egress (one alternative
/// per pod address).
fn port_alternatives(
    ctx: &Ctx,
    subject: PodId,
    direction: PolicyType,
    rule: &Rule,
    peers: Option<&Addresses>,
) -> Vec<PortAlternative> {
    let inventory = ctx.engine.inventory();
    if rule.ports.is_empty() {
        return vec![PortAlternative {
            protocol: None,
            matches: Vec::new(),
            destination: None,
        }];
    }
    // Numbered ports (and named ports of the ingress subject) by protocol; `None` = every
    // port of the protocol.
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
    let mut out = Vec::new();
    for (protocol, ports) in &by_protocol {
        let matches = match ports {
            None => vec![l4proto(*protocol)],
            Some(set) if set.is_empty() => continue,
            Some(set) => vec![
                l4proto(*protocol),
                dport(false, ctx.set_ref(ElementKind::Port, port_items(set))),
            ],
        };
        out.push(PortAlternative {
            protocol: Some(*protocol),
            matches,
            destination: None,
        });
    }
    // Egress named ports: one alternative per address of each destination pod that declares
    // the name and that the rule's peers match (its address is in their resolved set).
    for (protocol, name) in named_egress {
        for pod in inventory.pods() {
            let Some(number) = pod.named_port(name, protocol) else {
                continue;
            };
            for ip in &pod.ips {
                if peers.is_some_and(|p| !p.contains(*ip)) {
                    continue;
                }
                out.push(PortAlternative {
                    protocol: Some(protocol),
                    matches: vec![
                        l4proto(protocol),
                        dport(
                            false,
                            Operand::Single(Element {
                                kind: ElementKind::Port,
                                first: u128::from(number),
                                last: u128::from(number),
                            }),
                        ),
                    ],
                    destination: Some(*ip),
                });
            }
        }
    }
    out
}

/// The `notPorts` condition for one alternative, as alternatives to AND with it: one empty
/// line when nothing is excluded; `th dport != …` for the alternative's protocol; split per
/// excluded protocol when the alternative fixes none. Named ports resolve on the subject
/// (ingress) or the alternative's one destination (egress named ports); `unsupported` refuses
/// the remaining case.
fn not_port_exclusions(
    ctx: &Ctx,
    subject: PodId,
    rule: &Rule,
    protocol: Option<Protocol>,
    destination: Option<IpAddr>,
) -> Vec<Vec<Match>> {
    if rule.not_ports.is_empty() {
        return vec![Vec::new()];
    }
    let inventory = ctx.engine.inventory();
    let destination_pod = match destination {
        Some(ip) => inventory.pod_by_ip(ip),
        None => Some(subject),
    };
    // Excluded ranges per protocol; `None` = the whole protocol.
    let mut excluded: BTreeMap<Protocol, Option<BTreeSet<(u16, u16)>>> = BTreeMap::new();
    for port in &rule.not_ports {
        let (p, range) = match port {
            PortMatch::Protocol(p) => {
                excluded.insert(*p, None);
                continue;
            }
            PortMatch::Range(p, range) => (*p, (range.first(), range.last())),
            PortMatch::Named(p, name) => {
                match destination_pod.and_then(|id| inventory.pods()[id].named_port(name, *p)) {
                    Some(number) => (*p, (number, number)),
                    None => continue,
                }
            }
        };
        if let Some(set) = excluded.entry(p).or_insert_with(|| Some(BTreeSet::new())) {
            set.insert(range);
        }
    }
    // `with_protocol`: the alternative fixes no protocol, so the exclusion names its own.
    let exclusion = |p: Protocol, with_protocol: bool| -> Option<Vec<Match>> {
        match excluded.get(&p) {
            None => Some(Vec::new()),
            Some(None) => None,
            Some(Some(set)) if set.is_empty() => Some(Vec::new()),
            Some(Some(set)) => {
                let ports = dport(true, ctx.set_ref(ElementKind::Port, port_items(set)));
                Some(if with_protocol {
                    vec![l4proto(p), ports]
                } else {
                    vec![ports]
                })
            }
        }
    };
    match protocol {
        Some(p) => exclusion(p, false).into_iter().collect(),
        None => {
            let mut out: Vec<Vec<Match>> = excluded
                .keys()
                .filter_map(|p| exclusion(*p, true))
                .collect();
            out.push(vec![Match::L4ProtoNotIn(
                excluded.keys().map(|p| p.number()).collect(),
            )]);
            out
        }
    }
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
        let text: Vec<String> = set_elements(true, &ranges.v4)
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            text,
            vec!["10.0.0.0-10.0.255.255", "10.2.0.0-10.255.255.255"]
        );
    }
}
