//! The class-compressed matrix: pods that every policy treats alike form one class, and
//! reachability is computed class × class as bitsets.
//!
//! Two pods are in one class when they share namespace, labels, service account, container
//! ports, host networking (and node), and which address-based peers (CIDRs, Calico nets, network
//! sets, node addresses) contain their addresses: then every selector, peer, named port and
//! CIDR answers the same for both, so one representative decides for all. For each probed port,
//! the tier walk runs once per class and direction over whole bitsets of peer classes (what is
//! undecided flows down, as in `Engine::allowed_conns`).

use crate::bits::BitSet;
use crate::decide::{PolicyId, RuleId, SideDecision};
use crate::eval::{first_of_tier, Endpoint, Engine};
use crate::ir::{Action, Peer, PortMatch, Rule, RulePeer};
use crate::matrix::{Matrix, ProbePort};
use crate::walk::{walk, Walker};
use netfence_model::net::{address_value, net_bounds};
use netfence_model::{PodId, PolicyType};
use std::collections::HashMap;

type Bits = BitSet;

/// The real addresses of the class representatives, sorted: an ipBlock's classes are the
/// representatives with an address in its range (and in none of its excepts), found by
/// binary search instead of asking every class. An invented address matches no ipBlock
/// (as [`Engine::peer_matches`] has it).
struct RepAddresses(Vec<(bool, u128, usize)>);

impl RepAddresses {
    fn new(engine: &Engine, reps: &[PodId]) -> RepAddresses {
        let pods = engine.inventory().pods();
        let mut all: Vec<(bool, u128, usize)> = reps
            .iter()
            .enumerate()
            .filter(|(_, &rep)| !pods[rep].synthetic_ip)
            .flat_map(|(c, &rep)| {
                pods[rep].ips.iter().map(move |ip| {
                    let (v4, value) = address_value(*ip);
                    (v4, value, c)
                })
            })
            .collect();
        all.sort_unstable();
        RepAddresses(all)
    }

    fn classes_in(&self, n: usize, net: &ipnet::IpNet, except: &[ipnet::IpNet]) -> Bits {
        let (v4, first, last) = net_bounds(net);
        let start = self.0.partition_point(|&(f, x, _)| (f, x) < (v4, first));
        let mut bits = Bits::new(n, false);
        for &(f, x, c) in &self.0[start..] {
            if f != v4 || x > last {
                break;
            }
            let excluded = except.iter().any(|e| {
                let (family, a, b) = net_bounds(e);
                family == v4 && a <= x && x <= b
            });
            if !excluded {
                bits.set(c);
            }
        }
        bits
    }
}

/// The pods that declare a port name at one probed port, as (pod, name) in pod order. Equal
/// lists are one port class; the hash reads only the ends of a list (they are long at 100k
/// pods, and lists of different ports rarely share them), equality all of it.
#[derive(PartialEq, Eq)]
struct NamedPods<'a>(&'a [(usize, &'a str)]);

impl std::hash::Hash for NamedPods<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.len().hash(state);
        self.0.first().hash(state);
        self.0.last().hash(state);
    }
}

/// Reachability between classes of pods, for each probed port.
pub struct ClassMatrix {
    /// The probed ports.
    pub ports: Vec<ProbePort>,
    /// Members of each class (pod ids).
    pub classes: Vec<Vec<PodId>>,
    /// Class of each pod.
    pub class_of: Vec<usize>,
    /// For each port, for each source class: the destination classes it may reach.
    allowed: Vec<Vec<Bits>>,
}

impl ClassMatrix {
    /// Whether class `src` may reach class `dst` on the port at `port_index` (for two
    /// different pods; a pod always reaches itself).
    pub fn allowed(&self, port_index: usize, src: usize, dst: usize) -> bool {
        self.allowed[port_index][src].get(dst)
    }

    /// Allowed ordered pairs of distinct pods on the port at `port_index`.
    pub fn allowed_pairs(&self, port_index: usize) -> u64 {
        // Only the set bits of each row are visited (rows are sparse at scale: 3,001 classes
        // and 13 ports made 117 M cell tests before).
        let mut total = 0u64;
        for (s, row) in self.allowed[port_index].iter().enumerate() {
            let ks = self.classes[s].len() as u64;
            let reached: u64 = row
                .ones()
                .map(|d| match d == s {
                    true => ks.saturating_sub(1),
                    false => self.classes[d].len() as u64,
                })
                .sum();
            total += ks * reached;
        }
        total
    }

    /// A pod-by-pod view that reads the class bits (nothing is materialised per pod pair).
    pub fn view(&self, engine: &Engine) -> ClassMatrixView<'_> {
        ClassMatrixView {
            matrix: self,
            endpoints: engine.inventory().pods().iter().map(|p| p.key()).collect(),
        }
    }

    /// Expand to the pod-level matrix.
    pub fn to_matrix(&self, engine: &Engine) -> Matrix {
        let endpoints = engine.inventory().pods().iter().map(|p| p.key()).collect();
        let index: HashMap<ProbePort, usize> = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, i))
            .collect();
        Matrix::from_fn(&self.ports, endpoints, |probe, src, dst| {
            src == dst || self.allowed(index[&probe], self.class_of[src], self.class_of[dst])
        })
    }
}

/// A [`ClassMatrix`] seen pod by pod.
pub struct ClassMatrixView<'a> {
    matrix: &'a ClassMatrix,
    endpoints: Vec<String>,
}

impl crate::matrix::MatrixView for ClassMatrixView<'_> {
    fn ports(&self) -> &[ProbePort] {
        &self.matrix.ports
    }
    fn endpoints(&self) -> &[String] {
        &self.endpoints
    }
    fn allowed(&self, port_index: usize, src: usize, dst: usize) -> bool {
        src == dst
            || self.matrix.allowed(
                port_index,
                self.matrix.class_of[src],
                self.matrix.class_of[dst],
            )
    }
}

/// What a class matrix row needs, built once per engine use: the class representatives and
/// every rule peer resolved to a bitset of classes.
pub(crate) struct ClassRows<'e> {
    engine: &'e Engine,
    reps: Vec<PodId>,
    /// By [`PeerId`](crate::ir::PeerId): the classes the peer covers (`None` for a peer no
    /// rule of the engine names).
    peer_bits: Vec<Option<Bits>>,
}

impl<'e> ClassRows<'e> {
    pub(crate) fn new(engine: &'e Engine) -> ClassRows<'e> {
        // Resolving the pod peers needs no classes: on a second core it runs while the classes
        // are computed, and `class_peer_bits` then finds every peer in the engine's cache.
        let two_cores = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
        let (classes, class_of) = match two_cores && engine.pod_classes.get().is_none() {
            true => std::thread::scope(|scope| {
                scope.spawn(|| engine.resolve_pod_peers());
                engine.pod_classes()
            }),
            false => engine.pod_classes(),
        };
        let reps: Vec<PodId> = classes.iter().map(|members| members[0]).collect();
        let peer_bits = engine.class_peer_bits(&reps, class_of);
        ClassRows {
            engine,
            reps,
            peer_bits,
        }
    }

    /// The classes a rule's peers cover (every class when it names no peer).
    fn rule_peers(&self, rule: &Rule) -> Bits {
        let n = self.reps.len();
        if rule.peers.is_empty() {
            return Bits::new(n, true);
        }
        let mut bits = Bits::new(n, false);
        for peer in &rule.peers {
            if let Some(Some(b)) = self.peer_bits.get(peer.id().index()) {
                bits.or_assign(b);
            }
        }
        bits
    }

    /// For one port, `rows[s]`: the destination classes source class `s` may reach.
    pub(crate) fn rows(&self, probe: ProbePort) -> Vec<Bits> {
        self.engine
            .class_rows(probe, &self.reps, &|rule: &Rule| self.rule_peers(rule))
    }
}

impl Engine {
    /// The pods grouped into classes that every policy treats alike: (members of each class,
    /// class of each pod). Members are in pod order, so the first is the representative.
    /// Computed once per engine, on first use, or taken over from the engine this one was
    /// rebuilt from ([`Engine::rebuilt`]).
    pub fn pod_classes(&self) -> &(Vec<Vec<PodId>>, Vec<usize>) {
        &self
            .pod_classes
            .get_or_init(|| crate::pod_classes::PodClasses::compute(self))
            .partition
    }

    /// The class-compressed matrix for `ports`.
    pub fn class_matrix(&self, ports: &[ProbePort]) -> ClassMatrix {
        // The rows first: they compute the classes while resolving the peers.
        let rows = ClassRows::new(self);
        let (classes, class_of) = self.pod_classes();
        let (distinct, slots) = self.port_classes(ports);
        // Distinct port classes in parallel, one chunk per available core.
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(distinct.len().max(1));
        let chunk = distinct.len().div_ceil(workers.max(1)).max(1);
        let results: Vec<Vec<Bits>> = std::thread::scope(|scope| {
            let handles: Vec<_> = distinct
                .chunks(chunk)
                .map(|ports| {
                    let rows = &rows;
                    scope.spawn(move || ports.iter().map(|p| rows.rows(*p)).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let allowed: Vec<Vec<Bits>> = slots.iter().map(|&slot| results[slot].clone()).collect();
        ClassMatrix {
            ports: ports.to_vec(),
            classes: classes.clone(),
            class_of: class_of.clone(),
            allowed,
        }
    }

    /// Resolve every pod peer of the policies ([`Engine::peer_pods`]), each once.
    fn resolve_pod_peers(&self) {
        for peer in self.rule_peers() {
            self.peer_pods(peer);
        }
    }

    /// Every peer of every rule, in tier order (repeats included).
    fn rule_peers(&self) -> impl Iterator<Item = &RulePeer> {
        self.tiers()
            .iter()
            .flat_map(|tier| &tier.policies)
            .flat_map(|policy| [&policy.ingress, &policy.egress].into_iter().flatten())
            .flatten()
            .flat_map(|rule| &rule.peers)
    }

    /// Each rule peer as the classes it covers, by [`PeerId`](crate::ir::PeerId), computed
    /// once per distinct peer: a pod peer from its resolved pods ([`Engine::peer_pods`]; a
    /// class is in the set when its pods are, as pods of one class answer alike), a CIDR from
    /// the representatives' addresses, other peers by asking each class's representative.
    fn class_peer_bits(&self, reps: &[PodId], class_of: &[usize]) -> Vec<Option<Bits>> {
        let n = reps.len();
        let mut peer_bits: Vec<Option<Bits>> = vec![None; self.interner.peers.len()];
        let by_address = RepAddresses::new(self, reps);
        for peer in self.rule_peers() {
            let slot = &mut peer_bits[peer.id().index()];
            if slot.is_some() {
                continue;
            }
            *slot = Some(match peer.peer() {
                Peer::Pods { .. } => {
                    let mut bits = Bits::new(n, false);
                    for &id in self.peer_pods(peer).unwrap_or_default() {
                        bits.set(class_of[id]);
                    }
                    bits
                }
                Peer::Net { net, except } => by_address.classes_in(n, net, except),
                Peer::Nodes(_) | Peer::Calico(_) => {
                    let mut bits = Bits::new(n, false);
                    for (c, &rep) in reps.iter().enumerate() {
                        if self.peer_matches(peer, Endpoint::Pod(rep)) {
                            bits.set(c);
                        }
                    }
                    bits
                }
            });
        }
        peer_bits
    }

    /// Every port range a rule's port conditions name, sorted and deduplicated.
    pub(crate) fn rule_port_ranges(
        &self,
    ) -> Vec<(netfence_model::Protocol, netfence_model::PortRange)> {
        let mut ranges: Vec<(netfence_model::Protocol, netfence_model::PortRange)> = self
            .tiers()
            .iter()
            .flat_map(|tier| &tier.policies)
            .flat_map(|policy| [&policy.ingress, &policy.egress].into_iter().flatten())
            .flatten()
            .flat_map(|rule| rule.ports.iter().chain(&rule.not_ports))
            .filter_map(|port| match port {
                PortMatch::Range(protocol, range) => Some((*protocol, *range)),
                _ => None,
            })
            .collect();
        ranges.sort();
        ranges.dedup();
        ranges
    }

    /// Port classes: ports that every port condition treats alike (same protocol, inside the
    /// same rule ranges, and the target of the same named container ports) share one
    /// computation. Returns one representative port per class, and each port's class.
    pub(crate) fn port_classes(&self, ports: &[ProbePort]) -> (Vec<ProbePort>, Vec<usize>) {
        let ranges = self.rule_port_ranges();
        // Which pods declare which names at each (protocol, port): a named port matches a
        // probe on exactly those pods. Gathered once, not once per probe, by sorting (at 100k
        // pods hashing every container port cost more).
        let mut declared: Vec<((netfence_model::Protocol, u16), usize, &str)> = self
            .inventory()
            .pods()
            .iter()
            .enumerate()
            .flat_map(|(id, pod)| {
                pod.ports
                    .iter()
                    .filter_map(move |c| Some(((c.protocol, c.port), id, c.name.as_deref()?)))
            })
            .collect();
        // Stable: each port's pods stay in pod order.
        declared.sort_by_key(|entry| entry.0);
        let names_of: Vec<(usize, &str)> = declared.iter().map(|e| (e.1, e.2)).collect();
        let port_key = |probe: &ProbePort| {
            let inside: Vec<bool> = ranges
                .iter()
                .map(|(protocol, range)| *protocol == probe.protocol && range.contains(probe.port))
                .collect();
            let at = (probe.protocol, probe.port);
            let start = declared.partition_point(|e| e.0 < at);
            let end = start + declared[start..].partition_point(|e| e.0 == at);
            (probe.protocol, inside, NamedPods(&names_of[start..end]))
        };
        let mut distinct: Vec<ProbePort> = Vec::new();
        let mut slot_of: HashMap<_, usize> = HashMap::new();
        let slots: Vec<usize> = ports
            .iter()
            .map(|probe| {
                *slot_of.entry(port_key(probe)).or_insert_with(|| {
                    distinct.push(*probe);
                    distinct.len() - 1
                })
            })
            .collect();
        (distinct, slots)
    }

    /// For one port, the rows of the class matrix: `rows[s]` holds the destination classes
    /// source class `s` may reach (its egress walk, intersected with each destination's
    /// ingress walk).
    fn class_rows(
        &self,
        probe: ProbePort,
        reps: &[PodId],
        rule_peers: &impl Fn(&Rule) -> Bits,
    ) -> Vec<Bits> {
        let n = reps.len();
        // ingress[d]: source classes that destination class d admits; rows[s]: the destination
        // classes source class s may reach.
        let ingress: Vec<Bits> = reps
            .iter()
            .map(|&rep| self.walk_classes(PolicyType::Ingress, rep, probe, reps, rule_peers))
            .collect();
        let mut rows: Vec<Bits> = reps
            .iter()
            .map(|&rep| self.walk_classes(PolicyType::Egress, rep, probe, reps, rule_peers))
            .collect();
        // rows[s] &= { d : s ∈ ingress[d] }, via the transpose of ingress (set bits only).
        let mut admitted = vec![Bits::new(n, false); n];
        for (d, bits) in ingress.iter().enumerate() {
            for s in bits.ones() {
                admitted[s].set(d);
            }
        }
        for (row, admitted) in rows.iter_mut().zip(&admitted) {
            *row = row.and(admitted);
        }
        rows
    }

    /// The tier walk for one class (by its representative) over every peer class at once.
    fn walk_classes(
        &self,
        direction: PolicyType,
        subject: PodId,
        probe: ProbePort,
        reps: &[PodId],
        rule_peers: &impl Fn(&Rule) -> Bits,
    ) -> Bits {
        let mut walker = PeerClasses {
            engine: self,
            direction,
            subject,
            probe,
            reps,
            rule_peers,
        };
        walk(
            self.tiers(),
            direction,
            self.selecting(subject, direction),
            &mut walker,
        )
    }
}

/// The walk over peer classes: a set is the classes (by representative) still undecided.
struct PeerClasses<'a, F> {
    engine: &'a Engine,
    direction: PolicyType,
    subject: PodId,
    probe: ProbePort,
    reps: &'a [PodId],
    rule_peers: &'a F,
}

impl<F: Fn(&Rule) -> Bits> Walker for PeerClasses<'_, F> {
    type Set = Bits;
    fn full(&self) -> Bits {
        Bits::new(self.reps.len(), true)
    }
    fn none(&self) -> Bits {
        Bits::new(self.reps.len(), false)
    }
    fn matched(&mut self, _at: RuleId, rule: &Rule, undecided: &Bits) -> Bits {
        let engine = self.engine;
        if let Some(local) = &rule.local {
            if !engine.peer_matches(local, Endpoint::Pod(self.subject)) {
                return self.none();
            }
        }
        let matched = (self.rule_peers)(rule).and(undecided);
        // Which peer classes the ports condition accepts: for ingress the destination is the
        // subject; for egress it is each peer class (named ports and address families differ
        // per destination; otherwise one answer holds for all).
        let uniform = rule.ip_version.is_none()
            && !rule
                .ports
                .iter()
                .chain(&rule.not_ports)
                .any(|p| matches!(p, PortMatch::Named(..)));
        if self.direction == PolicyType::Ingress || uniform {
            let dst = match self.direction {
                PolicyType::Ingress => Endpoint::Pod(self.subject),
                PolicyType::Egress => Endpoint::Pod(self.reps[0]),
            };
            if engine.rule_accepts(rule, self.probe, dst) {
                matched
            } else {
                self.none()
            }
        } else {
            let mut ok = self.none();
            for (c, &rep) in self.reps.iter().enumerate() {
                if engine.rule_accepts(rule, self.probe, Endpoint::Pod(rep)) {
                    ok.set(c);
                }
            }
            matched.and(&ok)
        }
    }
}

/// One side (a direction at one subject class, on one port class) of every connection with
/// every peer class: whether that side allows it and which policy decided it, as the tier
/// walk of one connection names it (`Trace::deciding_policy`: the deciding rule's policy; at
/// a tier's end, the first policy of that tier that selects the subject; when every tier
/// passed, the policy of the last Pass or Log rule that matched). One walk over whole sets of
/// peer classes answers what one walk per connection would (the classes' premise: every rule
/// treats a class's pods alike, and a port class's ports).
pub(crate) struct SideRow {
    /// The peer classes this side allows.
    allowed: Bits,
    /// The peer classes an Allow or Deny rule, or a tier's end, decided, by the policy
    /// named for them (disjoint; one entry per run of one policy).
    decided: Vec<(Option<PolicyId>, Bits)>,
    /// The peer classes Pass and Log rules matched, by policy in walk order: the last entry
    /// holding a class names its policy when nothing decided it.
    passed: Vec<(PolicyId, Bits)>,
}

impl SideRow {
    /// This side of the connection with peer class `peer`.
    pub(crate) fn side(&self, peer: usize) -> SideDecision {
        let policy = match self.decided.iter().find(|(_, bits)| bits.get(peer)) {
            Some(&(policy, _)) => policy,
            None => self
                .passed
                .iter()
                .rev()
                .find(|(_, bits)| bits.get(peer))
                .map(|&(policy, _)| policy),
        };
        SideDecision {
            allowed: self.allowed.get(peer),
            policy,
        }
    }
}

/// Add `bits` to the last entry of `entries` when it is `policy`'s, else push a new one.
fn add_run<P: PartialEq + Copy>(entries: &mut Vec<(P, Bits)>, policy: P, bits: &Bits) {
    match entries.last_mut() {
        Some((last, run)) if *last == policy => run.or_assign(bits),
        _ => entries.push((policy, bits.clone())),
    }
}

/// A walker over peer classes that also records who decided each class ([`SideRow`]).
struct Recording<'s, W> {
    inner: W,
    /// The policies that select the subject (for the policy named at a tier's end).
    selecting: &'s [PolicyId],
    decided: Vec<(Option<PolicyId>, Bits)>,
    passed: Vec<(PolicyId, Bits)>,
}

impl<W: Walker<Set = Bits>> Walker for Recording<'_, W> {
    type Set = Bits;
    fn full(&self) -> Bits {
        self.inner.full()
    }
    fn none(&self) -> Bits {
        self.inner.none()
    }
    fn matched(&mut self, at: RuleId, rule: &Rule, undecided: &Bits) -> Bits {
        self.inner.matched(at, rule, undecided)
    }
    fn on_match(&mut self, at: RuleId, action: Action, matched: &Bits) {
        match action {
            Action::Allow | Action::Deny => add_run(&mut self.decided, Some(at.policy()), matched),
            Action::Pass | Action::Log => add_run(&mut self.passed, at.policy(), matched),
        }
    }
    fn on_end_of_tier(&mut self, tier: usize, denied: &Bits) {
        if !denied.is_empty() {
            add_run(
                &mut self.decided,
                first_of_tier(self.selecting, tier),
                denied,
            );
        }
    }
}

impl ClassRows<'_> {
    /// The pod classes (each by its representative), counted.
    pub(crate) fn classes(&self) -> usize {
        self.reps.len()
    }

    /// [`SideRow`] of `direction` at subject class `class` on `probe`'s port class. A
    /// host-network subject's side allows everything and names no policy (its traffic is
    /// its node's: `Engine::decide_side`).
    pub(crate) fn side_row(
        &self,
        direction: PolicyType,
        class: usize,
        probe: ProbePort,
    ) -> SideRow {
        let engine = self.engine;
        let subject = self.reps[class];
        let n = self.reps.len();
        if engine.inventory().pods()[subject].host_network {
            return SideRow {
                allowed: Bits::new(n, true),
                decided: Vec::new(),
                passed: Vec::new(),
            };
        }
        let selecting = engine.selecting(subject, direction);
        let rule_peers = |rule: &Rule| self.rule_peers(rule);
        let mut walker = Recording {
            inner: PeerClasses {
                engine,
                direction,
                subject,
                probe,
                reps: &self.reps,
                rule_peers: &rule_peers,
            },
            selecting,
            decided: Vec::new(),
            passed: Vec::new(),
        };
        let allowed = walk(engine.tiers(), direction, selecting, &mut walker);
        SideRow {
            allowed,
            decided: walker.decided,
            passed: walker.passed,
        }
    }
}
