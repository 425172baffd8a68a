//! Verdict lookups by address at flow-log speed: (source IP, destination IP, protocol, port)
//! → allowed, answered from a flat table instead of a tier walk.
//!
//! The port space of each protocol is cut at every boundary a port condition can draw (rule
//! port ranges and the numbers of named container ports); ports in one segment are treated
//! alike by every rule, so segments with equal conditions share one port class. Each port
//! class gets its class matrix rows (source class → destination classes) on first use, the
//! way Cilium's policy map state is computed once per identity and read by the datapath
//! (cilium `pkg/policy/mapstate.go`). A lookup is then two address searches, one port search
//! and one bit test. Connections with a side that is no pod (external addresses, host
//! network) are answered by the tier walk ([`Engine::allowed`]): their verdicts depend on the
//! address itself.
//!
//! The deciding policy of a connection between pods ([`VerdictIndex::decide`]) comes from
//! side rows: one walk per (direction, subject class, port class) over every peer class at
//! once records which policy decided each peer class, so the connections of every class that
//! meets that subject class share it. A row holds a bitset over the pod classes per policy
//! that decided some of them; rows are made when first asked, so memory follows the subject
//! classes a consumer asks about (at most two rows per pod class and port class).

use crate::bits::BitSet;
use crate::classes::{ClassRows, SideRow};
use crate::decide::{deciding, Deciding, SideDecision};
use crate::eval::{direction_index, Endpoint, Engine};
use crate::ports::ProbePort;
use netfence_model::{PodId, PolicyType, Protocol};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

/// Pod addresses → (pod, class), open addressing with linear probing: one multiply and
/// usually one cache line per lookup, where the inventory's sorted index takes ~17 compares.
/// IPv4 addresses (most clusters' only family) sit in a table of 12-byte slots, so that a
/// 100k-pod table stays in a few MB of cache.
struct AddressTable {
    /// (address, pod id, class); empty slots have `pod == u32::MAX`.
    v4: Vec<(u32, u32, u32)>,
    v6: Vec<(u128, u32, u32)>,
}

const EMPTY: u32 = u32::MAX;

fn slot_of(key: u128, len: usize) -> usize {
    let folded = (key as u64) ^ ((key >> 64) as u64).rotate_left(29);
    (folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20) as usize & (len - 1)
}

/// Insert into an open-addressing table (the first owner of a key stays, as
/// `Inventory::pod_by_ip` has it).
fn insert<K: Copy + Eq + Into<u128>>(table: &mut [(K, u32, u32)], key: K, pod: u32, class: u32) {
    let mut i = slot_of(key.into(), table.len());
    while table[i].1 != EMPTY {
        if table[i].0 == key {
            return;
        }
        i = (i + 1) & (table.len() - 1);
    }
    table[i] = (key, pod, class);
}

fn find<K: Copy + Eq + Into<u128>>(table: &[(K, u32, u32)], key: K) -> Option<(u32, u32)> {
    let mut i = slot_of(key.into(), table.len());
    loop {
        let (k, pod, class) = table[i];
        if pod == EMPTY {
            return None;
        }
        if k == key {
            return Some((pod, class));
        }
        i = (i + 1) & (table.len() - 1);
    }
}

impl AddressTable {
    fn new(entries: &[(IpAddr, u32, u32)]) -> AddressTable {
        let size = |n: usize| (n * 2).next_power_of_two().max(16);
        let v4_count = entries.iter().filter(|(ip, ..)| ip.is_ipv4()).count();
        let mut table = AddressTable {
            v4: vec![(0, EMPTY, EMPTY); size(v4_count)],
            v6: vec![(0, EMPTY, EMPTY); size(entries.len() - v4_count)],
        };
        for &(ip, pod, class) in entries {
            match ip {
                IpAddr::V4(a) => insert(&mut table.v4, u32::from(a), pod, class),
                IpAddr::V6(a) => insert(&mut table.v6, u128::from(a), pod, class),
            }
        }
        table
    }

    fn get(&self, ip: IpAddr) -> Option<(u32, u32)> {
        match ip {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => find(&self.v6, u128::from(a)),
        }
    }

    /// The slot where a lookup of IPv4 `ip` starts.
    fn home(&self, ip: Ipv4Addr) -> Option<&(u32, u32, u32)> {
        let key = u32::from(ip);
        self.v4.get(slot_of(key.into(), self.v4.len()))
    }
}

/// The segments of one protocol's port space: `starts[i]` is the first port of segment `i`
/// (sorted, `starts[0] == 0`), `slots[i]` its port class.
struct PortSegments {
    starts: Vec<u16>,
    slots: Vec<usize>,
}

impl PortSegments {
    fn slot(&self, port: u16) -> usize {
        let i = self.starts.partition_point(|&start| start <= port);
        // starts[0] == 0 <= port, so i >= 1.
        self.slots[i.saturating_sub(1)]
    }
}

/// A verdict table over pod classes and port classes, filled lazily; see the module docs.
/// Built by [`Engine::verdict_index`]; shared between threads (each port class is computed
/// once, by the first lookup that needs it).
///
/// ```
/// # use netfence_engine::Engine;
/// # use netfence_model::{Loader, Protocol};
/// let mut loader = Loader::new();
/// loader.load_str("pods.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\nspec: {containers: []}\nstatus: {podIP: 10.0.0.1}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: x}\nspec: {containers: []}\nstatus: {podIP: 10.0.0.2}\n");
/// let engine = Engine::new(loader.finish().unwrap());
/// let index = engine.verdict_index();
/// assert!(index.allowed_ips("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), Protocol::Tcp, 80));
/// ```
pub struct VerdictIndex<'e> {
    engine: &'e Engine,
    class_of: &'e [usize],
    addresses: AddressTable,
    /// Every rule peer resolved to classes: needed only to fill a table, so resolved on the
    /// first fill (consumers that only map addresses and classes never pay for it).
    rows: OnceLock<ClassRows<'e>>,
    /// TCP, UDP, SCTP (in [`protocol_index`] order).
    segments: [PortSegments; 3],
    /// One representative port per port class.
    representatives: Vec<ProbePort>,
    tables: Vec<OnceLock<Vec<BitSet>>>,
    /// By port class and direction (`2 * port class + direction index`), by subject class:
    /// the sides that [`VerdictIndex::decide`] reads, each made by its first question (one
    /// class walk answers every peer class, where a question's own walk would answer one).
    sides: Vec<OnceLock<Box<[OnceLock<SideRow>]>>>,
}

fn protocol_index(protocol: Protocol) -> usize {
    match protocol {
        Protocol::Tcp => 0,
        Protocol::Udp => 1,
        Protocol::Sctp => 2,
    }
}

impl Engine {
    /// The verdict table for address lookups ([`VerdictIndex`]). Building it computes the pod
    /// classes (once per engine) and the port classes; rule peers are resolved to classes,
    /// and the rows of a port class computed, when a lookup first needs them.
    pub fn verdict_index(&self) -> VerdictIndex<'_> {
        let (_, class_of) = self.pod_classes();
        let ranges = self.rule_port_ranges();
        let mut named: Vec<(Protocol, u16)> = self
            .inventory()
            .pods()
            .iter()
            .flat_map(|pod| &pod.ports)
            .filter(|c| c.name.is_some())
            .map(|c| (c.protocol, c.port))
            .collect();
        named.sort_unstable();
        named.dedup();
        let protocols = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];
        let mut all_probes = Vec::new();
        let mut starts_of: Vec<Vec<u16>> = Vec::new();
        for protocol in protocols {
            // Boundaries: where a range or a named port begins, and just after it ends; port 0
            // (no port) is a segment of its own.
            let mut starts: Vec<u16> = vec![0, 1];
            let mut cut = |first: u16, last: u16| {
                starts.push(first);
                if let Some(next) = last.checked_add(1) {
                    starts.push(next);
                }
            };
            for (p, range) in &ranges {
                if *p == protocol {
                    cut(range.first(), range.last());
                }
            }
            for &(p, port) in &named {
                if p == protocol {
                    cut(port, port);
                }
            }
            starts.sort_unstable();
            starts.dedup();
            all_probes.extend(starts.iter().map(|&port| ProbePort { protocol, port }));
            starts_of.push(starts);
        }
        let (representatives, slots) = self.port_classes(&all_probes);
        let mut slots = slots.into_iter();
        let mut starts_of = starts_of.into_iter().map(|starts| {
            let slots: Vec<usize> = slots.by_ref().take(starts.len()).collect();
            PortSegments { starts, slots }
        });
        let mut segments = || {
            starts_of.next().unwrap_or(PortSegments {
                starts: vec![0],
                slots: vec![0],
            })
        };
        let segments = [segments(), segments(), segments()];
        // The same owners as `Inventory::pod_by_ip`: real addresses of live, non-host-network
        // pods, the first pod in (namespace, name) order when two claim one address.
        let owners: Vec<(IpAddr, u32, u32)> = self
            .inventory()
            .pods()
            .iter()
            .flat_map(|pod| pod.ips.iter())
            .filter_map(|&ip| {
                let id = self.inventory().pod_by_ip(ip)?;
                let id32 = u32::try_from(id.index()).ok()?;
                let class = u32::try_from(class_of[id]).ok()?;
                Some((ip, id32, class))
            })
            .collect();
        VerdictIndex {
            engine: self,
            class_of,
            addresses: AddressTable::new(&owners),
            rows: OnceLock::new(),
            segments,
            tables: (0..representatives.len())
                .map(|_| OnceLock::new())
                .collect(),
            sides: (0..2 * representatives.len())
                .map(|_| OnceLock::new())
                .collect(),
            representatives,
        }
    }
}

/// The class of a connection between two distinct pods on one port: every connection of a
/// class gets the same verdict from the same deciding rules (its pods are alike to every
/// policy, its port to every port condition), so consumers may cache explanations per class.
/// The default (pod class 0 to pod class 0, port class 0) is a class like any other: a
/// table of classes that needs a value for its free slots marks them apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConnectionClass {
    src: u32,
    dst: u32,
    port: u32,
}

impl VerdictIndex<'_> {
    /// The pod that owns `ip` (as [`netfence_model::Inventory::pod_by_ip`] answers, by hash).
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<PodId> {
        self.addresses
            .get(ip)
            .map(|(pod, _)| PodId::new(pod as usize))
    }

    /// Where a lookup of IPv4 address `ip` starts ([`VerdictIndex::pod_by_ip`],
    /// [`VerdictIndex::connection_of_ips`]): for a consumer that asks for the memory of many
    /// lookups before it makes any (a prefetch), so that their loads overlap. Only a place to
    /// ask for.
    pub fn address_home(&self, ip: Ipv4Addr) -> Option<&impl Sized> {
        self.addresses.home(ip)
    }

    /// The pods that own `src` and `dst` ([`VerdictIndex::pod_by_ip`] of each), and the
    /// class of the connection between them on (protocol, port) when both are pods
    /// ([`VerdictIndex::connection_class`]): one lookup per address, each giving the pod's
    /// class with the pod.
    pub fn connection_of_ips(
        &self,
        (src, dst): (IpAddr, IpAddr),
        protocol: Protocol,
        port: u16,
    ) -> (Option<PodId>, Option<PodId>, Option<ConnectionClass>) {
        let (a, b) = (self.addresses.get(src), self.addresses.get(dst));
        let pod = |found: Option<(u32, u32)>| found.map(|(pod, _)| PodId::new(pod as usize));
        let class = match (a, b) {
            // The table's class is the pod's (`class_of`).
            (Some((a, class_a)), Some((b, class_b))) if a != b => {
                self.class_between(class_a, class_b, protocol, port)
            }
            _ => None,
        };
        (pod(a), pod(b), class)
    }

    /// The connection class of `src` → `dst` on (protocol, port); `None` for a pod to itself
    /// (always allowed, decided by no rule).
    pub fn connection_class(
        &self,
        src: PodId,
        dst: PodId,
        protocol: Protocol,
        port: u16,
    ) -> Option<ConnectionClass> {
        if src == dst {
            return None;
        }
        self.class_between(
            u32::try_from(self.class_of[src]).ok()?,
            u32::try_from(self.class_of[dst]).ok()?,
            protocol,
            port,
        )
    }

    /// The class of a connection from a pod of class `src` to one of class `dst` (two
    /// pods) on (protocol, port).
    fn class_between(
        &self,
        src: u32,
        dst: u32,
        protocol: Protocol,
        port: u16,
    ) -> Option<ConnectionClass> {
        let slot = self.segments[protocol_index(protocol)].slot(port);
        Some(ConnectionClass {
            src,
            dst,
            port: u32::try_from(slot).ok()?,
        })
    }

    /// The number of port classes (segments of the port space that some rule tells apart,
    /// merged where every condition agrees).
    pub fn port_classes(&self) -> usize {
        self.representatives.len()
    }

    /// The number of port classes whose table has been computed so far.
    pub fn computed_port_classes(&self) -> usize {
        self.tables.iter().filter(|t| t.get().is_some()).count()
    }

    /// Whether `src` may open a connection to `dst` on (protocol, port); equal to
    /// [`Engine::allowed`] on the endpoints the addresses belong to.
    pub fn allowed_ips(&self, src: IpAddr, dst: IpAddr, protocol: Protocol, port: u16) -> bool {
        if let (Some((a, class_a)), Some((b, class_b))) =
            (self.addresses.get(src), self.addresses.get(dst))
        {
            if a == b {
                return true; // a pod may always reach itself
            }
            return self.classes_allowed(class_a as usize, class_b as usize, protocol, port);
        }
        self.allowed(
            self.engine.endpoint_for_ip(src),
            self.engine.endpoint_for_ip(dst),
            protocol,
            port,
        )
    }

    /// Whether `src` may open a connection to `dst` on (protocol, port); equal to
    /// [`Engine::allowed`].
    pub fn allowed(&self, src: Endpoint, dst: Endpoint, protocol: Protocol, port: u16) -> bool {
        match (src, dst) {
            (Endpoint::Pod(a), Endpoint::Pod(b)) => self.pods_allowed(a, b, protocol, port),
            _ => self.engine.allowed(src, dst, protocol, port),
        }
    }

    /// The verdict of a connection between two pods, whether the source's egress allows
    /// it, and the deciding policy: what [`Engine::decide`] says of it
    /// ([`Deciding::from`]), for less. Each side is read from its `SideRow` (the source
    /// class's egress, the destination class's ingress, on the port's class), made by one
    /// walk over every peer class when first asked: connections of many classes share it.
    /// The ingress side is read only when the egress side does not deny with a policy.
    pub fn decide(&self, src: PodId, dst: PodId, protocol: Protocol, port: u16) -> Deciding {
        if src == dst {
            // A pod may always reach itself; no policy decides it (`Engine::decide_side`).
            return Deciding {
                allowed: true,
                egress_allowed: true,
                policy: None,
            };
        }
        let slot = self.segments[protocol_index(protocol)].slot(port);
        let egress = self.side(PolicyType::Egress, src, dst, slot);
        if !egress.allowed && egress.policy.is_some() {
            // Denied: the egress side's policy first, when it denies (`deciding`).
            return Deciding {
                allowed: false,
                egress_allowed: false,
                policy: egress.policy,
            };
        }
        let ingress = self.side(PolicyType::Ingress, dst, src, slot);
        let allowed = egress.allowed && ingress.allowed;
        Deciding {
            allowed,
            egress_allowed: egress.allowed,
            policy: deciding(allowed, egress, ingress),
        }
    }

    /// `subject`'s side of its connection with `peer` on port class `slot`.
    fn side(
        &self,
        direction: PolicyType,
        subject: PodId,
        peer: PodId,
        slot: usize,
    ) -> SideDecision {
        let rows = self.class_rows();
        let sides = self.sides[2 * slot + direction_index(direction)]
            .get_or_init(|| (0..rows.classes()).map(|_| OnceLock::new()).collect());
        let class = self.class_of[subject];
        sides[class]
            .get_or_init(|| rows.side_row(direction, class, self.representatives[slot]))
            .side(self.class_of[peer])
    }

    /// What filling a table or a side needs, made by the first that does.
    fn class_rows(&self) -> &ClassRows<'_> {
        self.rows.get_or_init(|| ClassRows::new(self.engine))
    }

    fn pods_allowed(&self, src: PodId, dst: PodId, protocol: Protocol, port: u16) -> bool {
        if src == dst {
            return true; // a pod may always reach itself
        }
        self.classes_allowed(self.class_of[src], self.class_of[dst], protocol, port)
    }

    fn classes_allowed(&self, src: usize, dst: usize, protocol: Protocol, port: u16) -> bool {
        let slot = self.segments[protocol_index(protocol)].slot(port);
        let rows =
            self.tables[slot].get_or_init(|| self.class_rows().rows(self.representatives[slot]));
        rows[src].get(dst)
    }
}
