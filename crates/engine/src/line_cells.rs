//! The cells of whole rows and columns of a connection table ([`NodeCells`]), memoised on
//! what the tier walks read of the side that varies.
//!
//! A cell `(x, y)` is `x`'s egress walk (subject `x`, peer `y`, destination `y`) intersected
//! with `y`'s ingress walk (subject `y`, peer `x`, destination `y`). The connection-set walk
//! (`ConnectionSets` in `eval.rs`) reads, per rule of the subject's selected policies, only:
//! whether a rule peer matches the peer endpoint and whether the rule's `local` condition
//! matches the subject (`Engine::rule_peer_matches`), and of the destination its address
//! family and the named ports the rule's port conditions resolve on it (`rule_conns`); the
//! pair needs a common address family (`same_family`). Along a row (source fixed) the peer
//! of the egress walk and the subject of the ingress walk vary; along a column (destination
//! fixed) the subject of the egress walk and the peer of the ingress walk do. So each node
//! gets two small keys:
//!
//! - as a **peer** of the fixed endpoint's walk: which of that walk's rules' peers match it
//!   (rules whose `local` condition fails on the fixed subject read nothing), and along a row
//!   (the peer is the destination) its family and the named ports those rules name;
//! - as a **subject** against the fixed endpoint: its selection list (by content), its
//!   answers to those policies' `local` conditions, and along a row (the subject is the
//!   destination) its family and the named ports those policies' rules name.
//!
//! Every walk is evaluated once per distinct key (on the first node that has it) and every
//! intersection once per pair of walk results. Equal keys mean the walk reads equal answers
//! at every rule, so it takes the same course. The diagonal (a class against itself, two
//! different members) is evaluated cell by cell. In debug builds every memoised cell is
//! checked against [`NodeCells::compute`].

use crate::bits::BitSet;
use crate::connlist::{index_u32, Interned, NodeCells};
use crate::connset::ConnSet;
use crate::decide::PolicyId;
use crate::eval::{in_block, resolve_named, rule_conns, Endpoint, Engine};
use crate::ir::{Direction, Peer, PortMatch, Rule};
use crate::pod_classes::ClassFacts;
use netfence_model::net::FastMap;
use netfence_model::{PodId, PolicyType};
use netfence_selector::Labels;
use std::net::IpAddr;

/// One line of cells: a row (class `x` to other nodes) or a column (other nodes to class
/// `y`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Line {
    Row(usize),
    Column(usize),
}

/// A line's fixed node, the direction of its walk (the other node its peer) and that of the
/// other nodes' walks (the fixed node their peer): a row's fixed source walks egress, a
/// column's fixed destination ingress.
fn directions(line: Line) -> (usize, Direction, Direction) {
    match line {
        Line::Row(x) => (x, PolicyType::Egress, PolicyType::Ingress),
        Line::Column(y) => (y, PolicyType::Ingress, PolicyType::Egress),
    }
}

/// A line's cells: set ids (into `sets`) in the order of the nodes asked.
pub(crate) struct LineSets {
    pub(crate) ids: Vec<u32>,
    pub(crate) sets: Vec<ConnSet>,
}

/// What the memo needs of every node, and the nodes' subject keys.
pub(crate) struct LineCells<'a> {
    cells: &'a NodeCells<'a>,
    /// The endpoint standing for each node off the diagonal.
    endpoints: Vec<Endpoint>,
    /// Per node: bit 0 an IPv4 address, bit 1 an IPv6 address, bit 2 the first is IPv6.
    families: Vec<u8>,
    /// Per class node: whether its pod is host-network (no pod peer matches it).
    host_network: Vec<bool>,
    /// Per class node `v`: its pod's addresses as address peers see them (none when
    /// synthetic), `addresses[address_starts[v]..address_starts[v + 1]]`; read in place of
    /// the pod (one pointer chase per class, not per rule asked).
    address_starts: Vec<u32>,
    addresses: Vec<IpAddr>,
    /// Per class node: its namespace, numbered.
    namespaces: Vec<u32>,
    /// Per namespace number: its name and labels.
    namespace_names: Vec<&'a str>,
    namespace_labels: Vec<&'a Labels>,
}

impl<'a> LineCells<'a> {
    /// The memo for the lines of `cells`: what it reads of each class's pod (its first
    /// member) comes from the engine's [`ClassFacts`] (kept with its partition, carried from
    /// the engine it was rebuilt from) when `cells` are the engine's own classes, else is read
    /// from the pods.
    pub(crate) fn new(cells: &'a NodeCells<'a>) -> LineCells<'a> {
        let n = cells.classes.len();
        let inventory = cells.engine.inventory();
        let pods = inventory.pods();
        let nodes = cells.nodes();
        let own = &cells.engine.pod_classes().0;
        let read;
        let facts = if std::ptr::eq(cells.classes, own.as_slice()) {
            cells.engine.class_facts()
        } else {
            read = ClassFacts::of(pods, cells.classes);
            &read
        };
        let mut memo = LineCells {
            cells,
            endpoints: Vec::with_capacity(nodes),
            families: Vec::with_capacity(nodes),
            host_network: facts.host_network.clone(),
            address_starts: facts.address_starts.clone(),
            addresses: facts.addresses.clone(),
            namespaces: Vec::with_capacity(n),
            namespace_names: Vec::new(),
            namespace_labels: Vec::new(),
        };
        // Namespaces numbered by the inventory's runs of pods (`namespace_starts`, in name
        // order); a class's namespace is the run of its first member, found by a cursor
        // (classes are numbered by first member, so the runs ascend along them) without
        // reading its name. The labels come from a walk of the namespaces in name order
        // alongside.
        let starts = inventory.namespace_starts();
        let mut declared = inventory.namespaces().iter().peekable();
        for &start in starts {
            let name = pods[start].namespace.as_str();
            while declared.next_if(|(key, _)| key.as_str() < name).is_some() {}
            memo.namespace_labels.push(match declared.peek() {
                Some((key, namespace)) if key.as_str() == name => &namespace.labels,
                _ => inventory.namespace_labels(name),
            });
            memo.namespace_names.push(name);
        }
        let mut run = 0;
        for &rep in &facts.reps {
            if !(starts[run]
                ..starts
                    .get(run + 1)
                    .copied()
                    .unwrap_or(PodId::new(pods.len())))
                .contains(&rep)
            {
                run = starts.partition_point(|&start| start <= rep) - 1;
            }
            memo.namespaces.push(index_u32(run));
            memo.endpoints.push(Endpoint::Pod(rep));
        }
        memo.families.extend_from_slice(&facts.families);
        for &(ip, _) in cells.ranges {
            memo.endpoints.push(Endpoint::Address(ip));
            memo.families.push(match ip.is_ipv6() {
                true => 0b110,
                false => 0b001,
            });
        }
        memo
    }

    /// The addresses of class node `v`'s pod as address peers see them.
    fn addresses_of(&self, v: usize) -> &[IpAddr] {
        &self.addresses[self.address_starts[v] as usize..self.address_starts[v + 1] as usize]
    }

    /// The peer keys of `others` against the fixed `subject`'s walk in `direction` (numbered
    /// densely; a row's walk is egress, whose destination is the peer): only the rules whose
    /// `local` condition matches the subject read anything of the peer.
    fn peer_keys(&self, subject: PodId, direction: Direction, others: &[usize]) -> Vec<u32> {
        let engine = self.cells.engine;
        let rules: Vec<&Rule> =
            selected_rules(engine, engine.selecting(subject, direction), direction)
                .filter(|rule| {
                    (rule.local.as_ref())
                        .is_none_or(|local| engine.peer_matches(local, Endpoint::Pod(subject)))
                })
                .collect();
        let destination_is_peer = direction == PolicyType::Egress;
        self.keys_of_rules(&rules, destination_is_peer, others, &mut FastMap::default())
    }

    /// The cells of `line` against `others` (nodes), in that order.
    pub(crate) fn line(&self, line: Line, others: &[usize]) -> LineSets {
        let engine = self.cells.engine;
        let n = self.cells.classes.len();
        let (fixed, peer_direction, subject_direction) = directions(line);
        let mut sets = Interned::default();
        let Endpoint::Pod(rep) = self.endpoints[fixed] else {
            // A line of an external range: cell by cell.
            let ids = others
                .iter()
                .map(|&o| match line {
                    Line::Row(x) => sets.intern(self.cells.compute(x, o)),
                    Line::Column(y) => sets.intern(self.cells.compute(o, y)),
                })
                .collect();
            return LineSets {
                ids,
                sets: sets.sets,
            };
        };
        let fixed_endpoint = Endpoint::Pod(rep);
        let peers = self.peer_keys(rep, peer_direction, others);
        let mut subjects = SubjectKeys::new(subject_direction);
        let all = sets.intern(ConnSet::all());
        // Walk results by key number (`u32::MAX`: not walked yet), intersections by pair.
        let mut by_peer: Vec<u32> =
            vec![u32::MAX; peers.iter().max().map_or(0, |&k| k + 1) as usize];
        let mut by_subject: Vec<u32> = Vec::new();
        let mut pairs: FastMap<(u32, u32), u32> = FastMap::default();
        let ids = others
            .iter()
            .enumerate()
            .map(|(at, &other)| {
                let (x, y) = match line {
                    Line::Row(x) => (x, other),
                    Line::Column(y) => (other, y),
                };
                if x == y {
                    return sets.intern(self.cells.compute(x, y));
                }
                if self.families[x] & self.families[y] & 0b11 == 0 {
                    return 0;
                }
                let other_endpoint = self.endpoints[other];
                // The fixed class's walk against `other` as a peer; when it allows nothing,
                // so does the cell (the intersection of both walks).
                let peer_walk = cached(&mut by_peer, peers[at], &mut sets, || {
                    walk(engine, peer_direction, rep, other_endpoint)
                });
                if peer_walk == 0 {
                    return 0;
                }
                // `other`'s own walk against the fixed class (an external range walks none).
                let subject_walk = match other_endpoint {
                    Endpoint::Pod(subject) if other < n => {
                        let key = subjects.key(self, other) as usize;
                        if by_subject.len() <= key {
                            by_subject.resize(key + 1, u32::MAX);
                        }
                        cached(&mut by_subject, key as u32, &mut sets, || {
                            walk(engine, subject_direction, subject, fixed_endpoint)
                        })
                    }
                    _ => all,
                };
                let id = sets.intersection(peer_walk, subject_walk, &mut pairs);
                debug_assert_eq!(
                    sets.sets[id as usize],
                    self.cells.compute(x, y),
                    "the memoised cell ({x}, {y}) differs from its evaluation"
                );
                id
            })
            .collect();
        LineSets {
            ids,
            sets: sets.sets,
        }
    }
}

/// What [`LineCells::line_within`] keeps from one line to the next of one kind (rows or
/// columns) of one engine: the peer keys by the rules a line's walk reads within the ports
/// asked (lines of subjects selected alike share them), and each node's subject key (which
/// does not depend on the fixed line).
pub(crate) struct Within<'e> {
    /// The nodes every line is asked at.
    others: Vec<usize>,
    /// Per rule (by address): which of `others` some peer of it matches.
    rule_bits: FastMap<usize, BitSet>,
    /// Per list of rules read (by address): the peer keys of `others`.
    peer_keys: FastMap<Vec<usize>, Vec<u32>>,
    subjects: SubjectKeys<'e>,
    subject_of: Vec<u32>,
    /// The other nodes' walks against the fixed class, from line to line: by (subject key,
    /// what the walk reads of the fixed class), set ids.
    subject_walks: FastMap<(u32, Vec<u32>), u32>,
}

impl<'a> LineCells<'a> {
    /// The cache of [`LineCells::line_within`] for lines of `kind` (the line's direction
    /// only: `Line::Row(0)` for rows, `Line::Column(0)` for columns) at the nodes `others`.
    pub(crate) fn within(&self, kind: Line, others: Vec<usize>) -> Within<'a> {
        let (_, _, subject_direction) = directions(kind);
        Within {
            others,
            rule_bits: FastMap::default(),
            peer_keys: FastMap::default(),
            subjects: SubjectKeys::new(subject_direction),
            subject_of: vec![u32::MAX; self.endpoints.len()],
            subject_walks: FastMap::default(),
        }
    }

    /// The nodes some peer of `rule` matches (every node when the rule names no peer).
    pub(crate) fn nodes_of(&self, rule: &Rule) -> Vec<usize> {
        if rule.peers.is_empty() {
            return (0..self.endpoints.len()).collect();
        }
        let nodes: Vec<usize> = (0..self.endpoints.len()).collect();
        let bits = self.rule_nodes_at(rule, &nodes);
        nodes.into_iter().filter(|&v| bits.get(v)).collect()
    }

    /// The cells of `line` against `within`'s nodes, each intersected with `ports`, as ids
    /// in `sets`.
    ///
    /// As [`LineCells::line`], memoised on what the walks read, but only of the rules that
    /// can match a connection in `ports`: the walk is pointwise (every connection goes down
    /// the rules on its own, `walk.rs`), so a rule whose port, protocol and family conditions
    /// accept nothing in `ports` changes nothing of the walk's part in `ports`, whatever its
    /// peer answers. Along a column the destination is the fixed class, so a rule's
    /// connections are known; along a row they are when the rule names no named port and no
    /// address family (else the rule counts, and the node's answers to them are key parts,
    /// as in [`LineCells::line`]). The peer keys are kept in `within` by the list of those
    /// rules, the subject keys by node.
    pub(crate) fn line_within(
        &self,
        line: Line,
        ports: &ConnSet,
        within: &mut Within<'a>,
        sets: &mut Interned,
    ) -> Vec<u32> {
        let engine = self.cells.engine;
        let n = self.cells.classes.len();
        let (fixed, peer_direction, subject_direction) = directions(line);
        let compute = |x: usize, y: usize| self.cells.compute(x, y).intersect(ports);
        let Endpoint::Pod(rep) = self.endpoints[fixed] else {
            return (within.others.iter())
                .map(|&o| match line {
                    Line::Row(x) => sets.intern(compute(x, o)),
                    Line::Column(y) => sets.intern(compute(o, y)),
                })
                .collect();
        };
        let fixed_endpoint = Endpoint::Pod(rep);
        let destination_is_peer = peer_direction == PolicyType::Egress;
        let unknown = Endpoint::Address(std::net::IpAddr::from([0, 0, 0, 0]));
        let inventory = engine.inventory();
        let mut rules: Vec<&Rule> = Vec::new();
        for rule in selected_rules(
            engine,
            engine.selecting(rep, peer_direction),
            peer_direction,
        ) {
            if let Some(local) = &rule.local {
                if !engine.peer_matches(local, fixed_endpoint) {
                    continue;
                }
            }
            let varies = destination_is_peer
                && (rule.ip_version.is_some()
                    || (rule.ports.iter().chain(&rule.not_ports))
                        .any(|p| matches!(p, PortMatch::Named(..))));
            let destination = if destination_is_peer {
                unknown
            } else {
                fixed_endpoint
            };
            if !varies
                && rule_conns(rule, inventory, destination)
                    .intersect(ports)
                    .is_empty()
            {
                continue;
            }
            rules.push(rule);
        }
        let signature: Vec<usize> = rules
            .iter()
            .map(|r| std::ptr::from_ref(*r) as usize)
            .collect();
        let Within {
            others,
            rule_bits,
            peer_keys,
            subjects,
            subject_of,
            subject_walks,
        } = within;
        let peers = peer_keys
            .entry(signature)
            .or_insert_with(|| self.keys_of_rules(&rules, destination_is_peer, others, rule_bits));
        let all = sets.intern(ports.clone());
        let mut by_peer: Vec<u32> =
            vec![u32::MAX; peers.iter().max().map_or(0, |&k| k + 1) as usize];
        let mut by_subject: Vec<u32> = Vec::new();
        let mut fixed_answers: FastMap<usize, bool> = FastMap::default();
        let mut pairs: FastMap<(u32, u32), u32> = FastMap::default();
        others
            .iter()
            .enumerate()
            .map(|(at, &other)| {
                let (x, y) = match line {
                    Line::Row(x) => (x, other),
                    Line::Column(y) => (other, y),
                };
                if x == y {
                    return sets.intern(compute(x, y));
                }
                if self.families[x] & self.families[y] & 0b11 == 0 {
                    return 0;
                }
                let other_endpoint = self.endpoints[other];
                let peer_walk = cached(&mut by_peer, peers[at], sets, || {
                    walk(engine, peer_direction, rep, other_endpoint).intersect(ports)
                });
                if peer_walk == 0 {
                    return 0;
                }
                let subject_walk = match other_endpoint {
                    Endpoint::Pod(subject) if other < n => {
                        if subject_of[other] == u32::MAX {
                            subject_of[other] = subjects.key(self, other);
                        }
                        let key = subject_of[other] as usize;
                        if by_subject.len() <= key {
                            by_subject.resize(key + 1, u32::MAX);
                        }
                        if by_subject[key] == u32::MAX {
                            // Walked once per (key, reads of the fixed class) over all lines.
                            let reads = self.reads_of_fixed(
                                subject,
                                subject_direction,
                                fixed,
                                &mut fixed_answers,
                            );
                            by_subject[key] =
                                *subject_walks.entry((key as u32, reads)).or_insert_with(|| {
                                    sets.intern(
                                        walk(engine, subject_direction, subject, fixed_endpoint)
                                            .intersect(ports),
                                    )
                                });
                        }
                        by_subject[key]
                    }
                    _ => all,
                };
                let id = sets.intersection(peer_walk, subject_walk, &mut pairs);
                debug_assert_eq!(
                    sets.sets[id as usize],
                    compute(x, y),
                    "the memoised cell ({x}, {y}) within {ports:?} differs from its evaluation"
                );
                id
            })
            .collect()
    }

    /// What the walk of `subject` in `direction` against the fixed class node `fixed` reads
    /// of it: per rule of the subject's selected policies, whether a peer matches it
    /// (`answers`, by rule address, kept along the line); when it is the destination (an
    /// egress walk), its family and the named ports the rules name. With the subject's key
    /// (its list and `local` answers), equal reads mean equal walks.
    fn reads_of_fixed(
        &self,
        subject: PodId,
        direction: Direction,
        fixed: usize,
        answers: &mut FastMap<usize, bool>,
    ) -> Vec<u32> {
        let engine = self.cells.engine;
        let endpoint = self.endpoints[fixed];
        let destination_is_fixed = direction == PolicyType::Egress;
        let mut reads = Vec::new();
        for rule in selected_rules(engine, engine.selecting(subject, direction), direction) {
            let matches = *answers
                .entry(std::ptr::from_ref(rule) as usize)
                .or_insert_with(|| {
                    rule.peers.is_empty()
                        || (rule.peers.iter()).any(|peer| engine.peer_matches(peer, endpoint))
                });
            reads.push(u32::from(matches));
            if destination_is_fixed {
                if rule.ip_version.is_some() {
                    reads.push(u32::from(self.families[fixed] >> 2));
                }
                for port in rule.ports.iter().chain(&rule.not_ports) {
                    if let PortMatch::Named(protocol, name) = port {
                        reads.push(named_value(engine, endpoint, *protocol, name));
                    }
                }
            }
        }
        reads
    }

    /// Peer keys of `others` over `rules` (as [`LineCells::peer_keys`] over the rules it
    /// keeps), each rule's peer answers at `others` asked once (`rule_bits`).
    fn keys_of_rules(
        &self,
        rules: &[&Rule],
        destination_is_peer: bool,
        others: &[usize],
        rule_bits: &mut FastMap<usize, BitSet>,
    ) -> Vec<u32> {
        let engine = self.cells.engine;
        let mut keys = Keys {
            of: vec![0; others.len()],
            count: 1,
        };
        for rule in rules {
            if !rule.peers.is_empty() {
                let bits = rule_bits
                    .entry(std::ptr::from_ref(*rule) as usize)
                    .or_insert_with(|| self.rule_nodes_at(rule, others));
                keys.refine_bits(bits);
            }
            if destination_is_peer {
                if rule.ip_version.is_some() {
                    keys.refine(|at| u32::from(self.families[others[at]] >> 2));
                }
                for port in rule.ports.iter().chain(&rule.not_ports) {
                    if let PortMatch::Named(protocol, name) = port {
                        keys.refine(|at| {
                            named_value(engine, self.endpoints[others[at]], *protocol, name)
                        });
                    }
                }
            }
        }
        keys.of
    }

    /// Which of `others` some peer of `rule` matches (bit `at` for `others[at]`; a pod or
    /// Calico peer's namespace condition asked once per namespace).
    fn rule_nodes_at(&self, rule: &Rule, others: &[usize]) -> BitSet {
        let mut bits = BitSet::new(others.len(), false);
        let mut namespace_ok: Vec<Option<bool>> = Vec::new();
        for peer in &rule.peers {
            namespace_ok.clear();
            namespace_ok.resize(self.namespace_names.len(), None);
            for (at, &v) in others.iter().enumerate() {
                if !bits.get(at) && self.peer_at(peer, v, &mut namespace_ok) {
                    bits.set(at);
                }
            }
        }
        bits
    }

    /// Whether `peer` matches node `v`, its namespace condition (a pod or Calico peer's) read
    /// from or kept in `namespace_ok` (per namespace number).
    fn peer_at(&self, peer: &Peer, v: usize, namespace_ok: &mut [Option<bool>]) -> bool {
        let engine = self.cells.engine;
        let endpoint = self.endpoints[v];
        // Only class nodes are pods (an external range is an address).
        let (Some(&number), Endpoint::Pod(id)) = (self.namespaces.get(v), endpoint) else {
            return engine.peer_matches(peer, endpoint);
        };
        let number = number as usize;
        let name = self.namespace_names[number];
        let ok = &mut namespace_ok[number];
        match peer {
            Peer::Pods {
                namespaces,
                pods: selector,
            } => {
                // A host-network pod matches no pod peer (`Engine::pod_peer_is`).
                if self.host_network[v] {
                    return false;
                }
                let ok = *ok.get_or_insert_with(|| {
                    namespaces.matches(name, || self.namespace_labels[number])
                });
                ok && (selector.is_everything()
                    || selector.matches(&engine.inventory().pods()[id].labels))
            }
            Peer::Calico(entity) => {
                let ok = *ok.get_or_insert_with(|| engine.calico_scope_admits(entity, name));
                engine.calico_entity_is(entity, endpoint, Some(ok))
            }
            // The addresses kept per class (`Engine::peer_is`: an invented address is in none).
            Peer::Net { net, except } => {
                (self.addresses_of(v).iter()).any(|&ip| in_block(ip, net, except))
            }
            _ => engine.peer_matches(peer, endpoint),
        }
    }

    /// `rule`'s peer answers, to be asked node by node ([`LineCells::rule_matches`]).
    pub(crate) fn rule_answers<'r>(&self, rule: &'r Rule) -> RuleAnswers<'r> {
        RuleAnswers {
            rule,
            namespace_ok: vec![None; rule.peers.len() * self.namespace_names.len()],
            at: vec![0; self.endpoints.len()],
        }
    }

    /// Whether some peer of `answers`' rule matches node `v` (every node when it names
    /// none), asked once per node.
    pub(crate) fn rule_matches(&self, answers: &mut RuleAnswers<'_>, v: usize) -> bool {
        if answers.at[v] == 0 {
            let spaces = self.namespace_names.len();
            let matches = answers.rule.peers.is_empty()
                || (answers.rule.peers.iter().enumerate()).any(|(p, peer)| {
                    self.peer_at(
                        peer,
                        v,
                        &mut answers.namespace_ok[p * spaces..(p + 1) * spaces],
                    )
                });
            answers.at[v] = 1 + u8::from(matches);
        }
        answers.at[v] == 2
    }
}

/// One rule's peer answers asked node by node: each peer's namespace condition once per
/// namespace, each node once.
pub(crate) struct RuleAnswers<'r> {
    rule: &'r Rule,
    /// Per peer and namespace number (`peer * namespaces + number`).
    namespace_ok: Vec<Option<bool>>,
    /// Per node: 0 not asked yet, 1 no peer matches, 2 some does.
    at: Vec<u8>,
}

/// Class nodes' subject keys for one direction, numbered as they are asked: the selection
/// list (by allocation: equal lists are mostly one allocation, and two allocations of one
/// list only cost a second walk) and what its policies' rules read of the subject. For
/// ingress (rows) the destination is the subject, so its family and named ports count; for
/// egress (columns) the destination is the fixed class, so only the `local` answers do.
struct SubjectKeys<'e> {
    direction: Direction,
    /// Per list: its key when its rules read nothing else of the subject, else the reads.
    lists: FastMap<usize, (u32, Option<Reads<'e>>)>,
    /// Per list key and answers (`[list key, answers...]`): the subject key.
    keys: FastMap<Vec<u32>, u32>,
    count: u32,
    /// The answers of the node asked last (reused, so that a key already known allocates
    /// nothing).
    values: Vec<u32>,
}

impl<'e> SubjectKeys<'e> {
    fn new(direction: Direction) -> SubjectKeys<'e> {
        SubjectKeys {
            direction,
            lists: FastMap::default(),
            keys: FastMap::default(),
            count: 0,
            values: Vec::new(),
        }
    }

    /// The key of class node `x`.
    fn key(&mut self, memo: &LineCells<'e>, x: usize) -> u32 {
        let engine = memo.cells.engine;
        let Endpoint::Pod(rep) = memo.endpoints[x] else {
            return u32::MAX;
        };
        let direction = self.direction;
        let destination_is_subject = direction == PolicyType::Ingress;
        let list = engine.selecting(rep, direction);
        let count = &mut self.count;
        let (key, reads) = self.lists.entry(list.as_ptr() as usize).or_insert_with(|| {
            let mut reads = Reads::default();
            for &id in list {
                reads.add(engine, id, direction, destination_is_subject);
            }
            *count += 1;
            (*count - 1, (!reads.is_empty()).then_some(reads))
        });
        match reads {
            None => *key,
            Some(reads) => {
                let values = &mut self.values;
                values.clear();
                values.push(*key);
                reads.values(engine, memo.endpoints[x], memo.families[x], values);
                if let Some(&known) = self.keys.get(values.as_slice()) {
                    return known;
                }
                *count += 1;
                self.keys.insert(values.clone(), *count - 1);
                *count - 1
            }
        }
    }
}

/// The walk of `subject` in `direction` against `peer`, as a line's cell reads it: the
/// destination is the peer on egress and the subject itself on ingress.
fn walk(engine: &Engine, direction: Direction, subject: PodId, peer: Endpoint) -> ConnSet {
    let destination = match direction {
        PolicyType::Egress => peer,
        PolicyType::Ingress => Endpoint::Pod(subject),
    };
    engine.walk_set(direction, subject, peer, destination)
}

/// The walk result for key `key`, walked on first use.
fn cached(memo: &mut [u32], key: u32, sets: &mut Interned, walk: impl FnOnce() -> ConnSet) -> u32 {
    let slot = &mut memo[key as usize];
    if *slot == u32::MAX {
        *slot = sets.intern(walk());
    }
    *slot
}

/// The rules of `list`'s policies for `direction`, in walk order.
pub(crate) fn selected_rules<'e>(
    engine: &'e Engine,
    list: &'e [PolicyId],
    direction: Direction,
) -> impl Iterator<Item = &'e Rule> + 'e {
    list.iter().flat_map(move |id| {
        engine.tiers()[id.tier()].policies[id.index()]
            .rules(direction)
            .unwrap_or(&[])
    })
}

/// What the walks of a selection list read of their subject beyond the list itself.
#[derive(Default)]
struct Reads<'e> {
    /// The rules' `local` conditions.
    locals: Vec<&'e Peer>,
    /// Whether some rule names an address family (when the subject is the destination).
    family: bool,
    /// The named ports the rules name (when the subject is the destination).
    named: Vec<(netfence_model::Protocol, &'e str)>,
}

impl<'e> Reads<'e> {
    /// Add what the rules of policy `id` read.
    fn add(
        &mut self,
        engine: &'e Engine,
        id: PolicyId,
        direction: Direction,
        destination_is_subject: bool,
    ) {
        let reads = self;
        let rules = engine.tiers()[id.tier()].policies[id.index()]
            .rules(direction)
            .unwrap_or(&[]);
        for rule in rules {
            reads.locals.extend(rule.local.as_deref());
            if destination_is_subject {
                reads.family |= rule.ip_version.is_some();
                for port in rule.ports.iter().chain(&rule.not_ports) {
                    if let PortMatch::Named(protocol, name) = port {
                        if !reads.named.contains(&(*protocol, name.as_str())) {
                            reads.named.push((*protocol, name.as_str()));
                        }
                    }
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.locals.is_empty() && !self.family && self.named.is_empty()
    }

    /// The answers of `endpoint` (a subject with these reads), appended to `values`.
    fn values(&self, engine: &Engine, endpoint: Endpoint, families: u8, values: &mut Vec<u32>) {
        values.extend(
            (self.locals.iter()).map(|local| u32::from(engine.peer_matches(local, endpoint))),
        );
        if self.family {
            values.push(u32::from(families >> 2));
        }
        for &(protocol, name) in &self.named {
            values.push(named_value(engine, endpoint, protocol, name));
        }
    }
}

/// A named port resolved on a destination, as a key part (`u32::MAX`: not declared).
fn named_value(
    engine: &Engine,
    endpoint: Endpoint,
    protocol: netfence_model::Protocol,
    name: &str,
) -> u32 {
    resolve_named(engine.inventory(), endpoint, name, protocol).map_or(u32::MAX, u32::from)
}

/// Nodes numbered by key; refined one read at a time (nodes stay together while every read
/// so far answered alike for them).
struct Keys {
    of: Vec<u32>,
    count: u32,
}

impl Keys {
    /// Split every key by membership in `bits`.
    fn refine_bits(&mut self, bits: &BitSet) {
        let mut table = vec![u32::MAX; 2 * self.count as usize];
        let mut next = 0;
        for (v, key) in self.of.iter_mut().enumerate() {
            let slot = &mut table[*key as usize * 2 + usize::from(bits.get(v))];
            if *slot == u32::MAX {
                *slot = next;
                next += 1;
            }
            *key = *slot;
        }
        self.count = next;
    }

    /// Split every key by `value` of the node.
    fn refine(&mut self, value: impl Fn(usize) -> u32) {
        let mut table: FastMap<(u32, u32), u32> = FastMap::default();
        for (v, key) in self.of.iter_mut().enumerate() {
            let next = index_u32(table.len());
            *key = *table.entry((*key, value(v))).or_insert(next);
        }
        self.count = index_u32(table.len());
    }
}

/// The property tests' random clusters.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../tests/random/mod.rs"]
mod random;

#[cfg(test)]
mod tests {
    use super::{Line, LineCells};
    use crate::connlist::NodeCells;
    use crate::eval::Engine;

    use super::random;

    /// Objects of every other policy kind over the random clusters' namespaces and labels:
    /// admin and baseline admin policies, a Calico tier with Pass, `local` conditions, an
    /// address family, nets, notPorts and a network set, Cilium policies (named ports, CIDRs,
    /// entities, nodes) and a node.
    fn extras(g: &mut random::Gen) -> String {
        use random::{selector, Gen};
        let pick = |g: &mut Gen, items: &[&'static str]| g.pick(items);
        let mut yaml = String::new();
        yaml.push_str(&format!(
            "---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {{name: anp}}\nspec:\n  priority: 5\n  subject: {{pods: {{namespaceSelector: {}, podSelector: {}}}}}\n  ingress: [{{name: r, action: {}, from: [{{namespaces: {}}}]}}]\n  egress: [{{name: e, action: {}, to: [{{pods: {{namespaceSelector: {{}}, podSelector: {}}}}}], ports: [{{portNumber: {{protocol: TCP, port: 80}}}}]}}]\n",
            selector(g),
            selector(g),
            pick(g, &["Allow", "Deny", "Pass"]),
            selector(g),
            pick(g, &["Allow", "Deny", "Pass"]),
            selector(g),
        ));
        yaml.push_str(&format!(
            "---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {{name: default}}\nspec:\n  subject: {{namespaces: {}}}\n  ingress: [{{name: d, action: {}, from: [{{namespaces: {}}}]}}]\n",
            selector(g),
            pick(g, &["Allow", "Deny"]),
            selector(g),
        ));
        yaml.push_str(&format!(
            "---\napiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {{name: security}}\nspec: {{order: {}, defaultAction: {}}}\n",
            g.below(3) * 100 + 50,
            pick(g, &["Deny", "Pass"])
        ));
        yaml.push_str(&format!(
            "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {{name: outside, labels: {{role: r1}}}}\nspec: {{nets: [{}]}}\n",
            pick(g, &["10.0.0.0/30", "192.0.2.0/25", "10.0.0.4/32"])
        ));
        yaml.push_str(&format!(
            "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: security.g}}\nspec:\n  tier: security\n  order: 1\n  selector: '{}'\n  types: [Ingress, Egress]\n  ingress:\n  - {{action: {}, ipVersion: 4, source: {{selector: '{}'}}, destination: {{selector: '{}'}}}}\n  - {{action: {}, protocol: TCP, source: {{selector: 'role == \"r1\"'}}, destination: {{ports: [web]}}}}\n  egress:\n  - {{action: {}, protocol: TCP, source: {{selector: '{}'}}, destination: {{nets: [10.0.0.0/29], notPorts: [alt]}}}}\n  - {{action: Pass, destination: {{selector: '{}'}}}}\n",
            random::calico_selector_text(g),
            pick(g, &["Allow", "Deny", "Pass"]),
            random::calico_selector_text(g),
            random::calico_selector_text(g),
            pick(g, &["Allow", "Deny"]),
            pick(g, &["Allow", "Deny", "Log"]),
            random::calico_selector_text(g),
            random::calico_selector_text(g),
        ));
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Node\nmetadata: {{name: n1, labels: {}}}\nstatus: {{addresses: [{{type: InternalIP, address: 10.0.0.9}}]}}\n",
            random::labels(g)
        ));
        yaml.push_str(&format!(
            "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: c0, namespace: {}}}\nspec:\n  endpointSelector: {}\n  ingress:\n    - {{fromEndpoints: [{}], toPorts: [{{ports: [{{port: \"web\"}}, {{port: \"80\", endPort: 81, protocol: TCP}}]}}]}}\n  egressDeny:\n    - {{toCIDR: [10.0.0.0/30]}}\n  egress:\n    - {{toEntities: [{}]}}\n    - {{toEndpoints: [{}], toPorts: [{{ports: [{{port: \"alt\", protocol: UDP}}]}}]}}\n",
            g.pick(&random::NAMESPACES),
            selector(g),
            selector(g),
            pick(g, &["world", "cluster", "host"]),
            selector(g),
        ));
        yaml.push_str(&format!(
            "---\napiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {{name: cc}}\nspec:\n  endpointSelector: {}\n  ingress:\n    - {{fromNodes: [{}]}}\n    - {{fromCIDRSet: [{{cidr: 0.0.0.0/0, except: [192.0.2.0/25]}}]}}\n",
            selector(g),
            selector(g),
        ));
        yaml
    }

    /// Every row and column memoised along the line equals the cells evaluated one by one,
    /// on random Kubernetes and Calico clusters with admin, tiered Calico and Cilium policies,
    /// network sets, named ports and pods without an address.
    #[test]
    fn memoised_lines_equal_cells_evaluated_one_by_one() {
        let (mut synthetic, mut network_sets, mut tiers, mut compared) = (0, 0, 0, 0);
        for seed in 0..160u64 {
            let mut g = random::Gen(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let cluster = match seed % 2 {
                0 => random::random_cluster(g.next()),
                _ => random::random_calico_cluster(g.next()),
            };
            let yaml = format!("{cluster}{}", extras(&mut g));
            let mut loader = netfence_model::Loader::new();
            loader.load_str("cluster.yaml", &yaml);
            let Ok(inventory) = loader.finish() else {
                panic!("seed {seed}: the cluster does not load:\n{yaml}");
            };
            let engine = Engine::new(inventory);
            synthetic += engine.synthetic_address_pods();
            network_sets += engine.inventory().network_sets.len();
            tiers = tiers.max(engine.tiers().len());
            let (classes, _) = engine.pod_classes();
            let ranges = crate::connlist::external_ranges(&engine);
            let cells = NodeCells {
                engine: &engine,
                classes,
                ranges: &ranges,
            };
            let memo = LineCells::new(&cells);
            let nodes: Vec<usize> = (0..cells.nodes()).collect();
            for c in 0..classes.len() {
                for line in [Line::Row(c), Line::Column(c)] {
                    let evaluated = memo.line(line, &nodes);
                    for (&other, &id) in nodes.iter().zip(&evaluated.ids) {
                        let (x, y) = match line {
                            Line::Row(x) => (x, other),
                            Line::Column(y) => (other, y),
                        };
                        assert_eq!(
                            evaluated.sets[id as usize],
                            cells.compute(x, y),
                            "seed {seed}: cell ({x}, {y}) of {line:?}\n{yaml}"
                        );
                        compared += 1;
                    }
                }
            }
        }
        // The clusters exercised what the keys must capture.
        assert!(
            synthetic > 0 && network_sets > 0 && tiers >= 4,
            "{synthetic} {network_sets} {tiers}"
        );
        assert!(compared > 10_000, "{compared} cells compared");
    }
}
