//! The mismatches of `flows check`'s text output, grouped by (source workload, destination
//! workload, deciding policy, what was observed), and their text: what a reader of a large
//! log wants instead of one line per flow. Fed by [`crate::Checker::counting`]'s rows with
//! their counts, in any order: what a group holds does not depend on the order its flows
//! come in, so groups of files read apart merge into what one pass gives.

use crate::check::CountedRow;
use crate::classes::ClassOutcomes;
use crate::{CheckedFlow, FlowProtocol, Observed};
use netfence_engine::{Endpoint, Engine};
use netfence_model::net::FastMap;
use std::io::{self, Write};
use std::sync::Arc;

/// A side of a mismatch group while counting: a workload by its index (in [`Workloads`],
/// then in [`MismatchGroups::extra_workloads`]), or an address with [`ADDRESS`] set, by its
/// index in [`MismatchGroups::addresses`].
type Side = u32;

/// [`Side`]: an address.
const ADDRESS: u32 = 1 << 31;

/// A mismatch group's key while counting, by value (no text made per flow): source and
/// destination [`Side`], deciding policy (0: none, else 1 + its index in
/// [`MismatchGroups::policy_names`]), observed (0 allow, 1 deny, 2 unknown). One to one with
/// the printed key (source, destination, deciding policy, observed): a workload's
/// `namespace/name` holds a `/` and an address none, and "no policy" is no policy's `Kind
/// namespace/name`.
type CountKey = (Side, Side, u32, u8);

/// A [`CountKey`] as [`MismatchGroups::index`] holds it: source, destination, then the
/// deciding policy and what was observed in one word (policy indices stay below 2^30). A
/// tuple, not an array: its hash is three words' (an array's is a byte slice's, which the
/// hasher reads a byte chunk at a time, out of line).
type PackedKey = (u32, u32, u32);

fn pack((src, dst, policy, observed): CountKey) -> PackedKey {
    debug_assert!(policy < 1 << 30 && observed < 4);
    (src, dst, (policy << 2) | u32::from(observed))
}

fn unpack((src, dst, rest): PackedKey) -> CountKey {
    (src, dst, rest >> 2, (rest & 3) as u8)
}

/// How many rows [`MismatchGroups::add_rows`] asks ahead for at once.
const ASK_AHEAD: usize = 16;

/// A port of a mismatch group: protocol and destination port.
type GroupPort = (FlowProtocol, Option<u16>);

/// The ports a mismatch group keeps: the lowest ten (by protocol, then number), so that
/// they do not depend on the order its flows come in; a group that saw more says so.
const GROUP_PORTS: usize = 10;
/// The ports a [`Group`] holds itself; the others sit in [`MismatchGroups::more_ports`].
const INLINE_PORTS: usize = 2;

/// A mismatch group's flows and (the lowest ten of) their ports, ascending; printed
/// sorted by their text. The first two ports sit in the group, the rest (rare: a group is
/// one workload pair, one policy) in [`MismatchGroups::more_ports`]: a group takes 32
/// bytes, half a cache line (with ten ports inline it was 88 bytes, two lines).
struct Group {
    flows: u64,
    ports: [GroupPort; INLINE_PORTS],
    /// How many ports (up to [`GROUP_PORTS`]).
    len: u8,
    /// Whether the group's flows had more than [`GROUP_PORTS`] distinct ports.
    more_than_kept: bool,
    /// Where the ports after the first two sit in [`MismatchGroups::more_ports`] (when
    /// `len` is more than two).
    more: u32,
}

impl Default for Group {
    fn default() -> Group {
        Group {
            flows: 0,
            ports: [(FlowProtocol::Tcp, None); INLINE_PORTS],
            len: 0,
            more_than_kept: false,
            more: 0,
        }
    }
}

// A group: 32 bytes (see [`Group`]).
const _: () = assert!(std::mem::size_of::<Group>() == 32);

/// The ports of a [`Group`] after its first two.
type MorePorts = [GroupPort; GROUP_PORTS - INLINE_PORTS];

impl Group {
    /// The ports kept, ascending.
    fn ports<'g>(&'g self, more_ports: &'g [MorePorts]) -> impl Iterator<Item = &'g GroupPort> {
        let len = usize::from(self.len);
        let more = match len > INLINE_PORTS {
            true => more_ports
                .get(self.more as usize)
                .map_or(&[][..], |more| &more[..len - INLINE_PORTS]),
            false => &[],
        };
        self.ports[..len.min(INLINE_PORTS)].iter().chain(more)
    }

    /// Keep `port` if it is one of the group's lowest ten (the highest kept leaves when
    /// there were ten), and note when the group has more than ten.
    fn add_port(&mut self, more_ports: &mut Vec<MorePorts>, port: GroupPort) {
        let len = usize::from(self.len);
        // Most rows of a group repeat a port it holds inline.
        if self.ports[..len.min(INLINE_PORTS)].contains(&port) {
            return;
        }
        // The ports, ascending: where `port` goes (or is already).
        let at = match self
            .ports(more_ports)
            .enumerate()
            .find(|&(_, &kept)| kept >= port)
        {
            Some((_, &kept)) if kept == port => return,
            Some((at, _)) => at,
            None => len,
        };
        if len == GROUP_PORTS {
            self.more_than_kept = true;
            if at == GROUP_PORTS {
                return;
            }
        } else {
            if len == INLINE_PORTS {
                self.more = u32::try_from(more_ports.len()).unwrap_or(u32::MAX);
                more_ports.push([port; GROUP_PORTS - INLINE_PORTS]);
            }
            self.len += 1;
        }
        // Shift the ports from `at` up by one (the last kept leaves when there were ten),
        // and put `port` at `at`.
        let mut carried = port;
        for n in at..usize::from(self.len) {
            let slot = match n < INLINE_PORTS {
                true => &mut self.ports[n],
                false => match more_ports.get_mut(self.more as usize) {
                    Some(more) => &mut more[n - INLINE_PORTS],
                    None => return,
                },
            };
            carried = std::mem::replace(slot, carried);
        }
    }
}

/// The workloads of an engine's pods, each named (`namespace/name`) once: made once per
/// command and shared by the mismatch groups of every file and thread, which then name a
/// pod's workload by reading its index (naming each pod as groups met it cost a few per
/// cent of a 1 M-record check at 10,000 pods, once per file read).
pub struct Workloads {
    /// Each pod's workload index.
    of_pod: Vec<u32>,
    /// `namespace/name` by workload index.
    names: Vec<String>,
    /// Workload index by name, made when first asked (only groups of another table merged
    /// in, or a pod the table lacks, ask).
    index: std::sync::OnceLock<FastMap<String, u32>>,
}

impl Workloads {
    /// The workloads of `engine`'s pods.
    pub fn of(engine: &Engine) -> Workloads {
        let mut by_name: FastMap<(&str, &str), u32> = FastMap::default();
        let mut names = Vec::new();
        let of_pod = engine
            .inventory()
            .pods()
            .iter()
            .map(|pod| {
                let workload = &pod.workload;
                *by_name
                    .entry((&workload.namespace, &workload.name))
                    .or_insert_with(|| {
                        names.push(format!("{}/{}", workload.namespace, workload.name));
                        u32::try_from(names.len() - 1).unwrap_or(u32::MAX)
                    })
            })
            .collect();
        Workloads {
            of_pod,
            names,
            index: std::sync::OnceLock::new(),
        }
    }

    /// The index of the workload named `name`.
    fn named(&self, name: &str) -> Option<u32> {
        let index = self.index.get_or_init(|| {
            (self.names.iter().enumerate())
                .map(|(at, name)| (name.clone(), u32::try_from(at).unwrap_or(u32::MAX)))
                .collect()
        });
        index.get(name).copied()
    }

    fn len(&self) -> u32 {
        u32::try_from(self.names.len()).unwrap_or(u32::MAX)
    }
}

/// The mismatches of `flows check -o text`, grouped by (source workload, destination
/// workload, deciding policy, what was observed). Counted by small integers (workload,
/// address and policy indices), made into text once per group when written: a log with
/// mostly mismatches adds millions of flows.
pub struct MismatchGroups {
    /// Each group's place in `groups`, by its key: an open-addressing table whose slots
    /// can be asked for ahead ([`ClassOutcomes::prefetch`]), so that the rows of a batch
    /// find their groups together ([`MismatchGroups::add_rows`]) where a `HashMap` had each
    /// wait for its own bucket (nearly half of `-o text` on a log of 671,123 groups).
    index: ClassOutcomes<PackedKey>,
    /// The groups, in the order they were first counted.
    groups: Vec<Group>,
    /// The ports of groups with more than two, after their first two ([`Group::more`]).
    more_ports: Vec<MorePorts>,
    workloads: Arc<Workloads>,
    /// Workloads not in [`MismatchGroups::workloads`] (of groups merged from another table,
    /// or a pod it does not have), by index after its own.
    extra_workloads: Vec<String>,
    extra_index: FastMap<String, u32>,
    addresses: Vec<std::net::IpAddr>,
    address_index: FastMap<std::net::IpAddr, u32>,
    /// Deciding policies' text by index.
    policy_names: Vec<Arc<str>>,
    policy_index: FastMap<Arc<str>, u32>,
    /// Policy index by the text's address (the checker makes each name once).
    policy_by_address: crate::ByNameAddress<u32>,
}

/// `name`'s index in `names`, added when new.
fn intern<K: Clone + Eq + std::hash::Hash>(
    names: &mut Vec<K>,
    index: &mut FastMap<K, u32>,
    name: &K,
) -> u32 {
    if let Some(&at) = index.get(name) {
        return at;
    }
    let at = u32::try_from(names.len()).unwrap_or(u32::MAX);
    names.push(name.clone());
    index.insert(name.clone(), at);
    at
}

impl MismatchGroups {
    /// No groups yet, pods named by `workloads` (of the engine whose rows will be added).
    pub fn new(workloads: Arc<Workloads>) -> MismatchGroups {
        MismatchGroups {
            index: ClassOutcomes::new(),
            groups: Vec::new(),
            more_ports: Vec::new(),
            workloads,
            extra_workloads: Vec::new(),
            extra_index: FastMap::default(),
            addresses: Vec::new(),
            address_index: FastMap::default(),
            policy_names: Vec::new(),
            policy_index: FastMap::default(),
            policy_by_address: Default::default(),
        }
    }

    /// The side of `endpoint`: pod `id`'s workload, or the address.
    fn side(&mut self, endpoint: Endpoint) -> Side {
        match endpoint {
            Endpoint::Pod(id) => match self.workloads.of_pod.get(id.index()) {
                Some(&index) => index,
                // Not a pod of the workloads' engine: named by its index.
                None => self.workload_named(&format!("pod #{}", id.index())),
            },
            Endpoint::Address(ip) => {
                ADDRESS | intern(&mut self.addresses, &mut self.address_index, &ip)
            }
        }
    }

    /// The side of the workload named `name`.
    fn workload_named(&mut self, name: &str) -> Side {
        if let Some(index) = self.workloads.named(name) {
            return index;
        }
        let shared = self.workloads.len();
        shared.saturating_add(intern(
            &mut self.extra_workloads,
            &mut self.extra_index,
            &name.to_string(),
        ))
    }

    /// The name of workload side `side`.
    fn workload_name(&self, side: Side) -> &str {
        let shared = self.workloads.len();
        match side.checked_sub(shared) {
            None => &self.workloads.names[side as usize],
            Some(extra) => &self.extra_workloads[extra as usize],
        }
    }

    /// The key of deciding policy `decided_by` (by its address, its text once per address).
    fn policy(&mut self, decided_by: Option<&Arc<str>>) -> u32 {
        let Some(name) = decided_by else {
            return 0;
        };
        let (names, index) = (&mut self.policy_names, &mut self.policy_index);
        *self
            .policy_by_address
            .get_or_make(name, |name| 1 + intern(names, index, name))
    }

    /// The number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether no mismatch was counted.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Count one mismatching flow.
    pub fn add(&mut self, flow: &CheckedFlow) {
        self.add_flows(flow, 1);
    }

    /// Count `flows` mismatching flows like `flow`.
    pub fn add_flows(&mut self, flow: &CheckedFlow, flows: u64) {
        let key = self.key(flow);
        let at = self.group_at(key);
        self.count(at, flow, flows);
    }

    /// Count rows of mismatching flows, each with its number of flows (a batch of
    /// [`crate::Checker::counting`]): the same groups as [`MismatchGroups::add_flows`] of
    /// each. The index slots of `ASK_AHEAD` rows are asked for, then (read) their groups,
    /// then the groups are counted: the rows' loads overlap.
    pub fn add_rows(&mut self, rows: &[CountedRow]) {
        for chunk in rows.chunks(ASK_AHEAD) {
            let mut keys = [(0, 0, 0); ASK_AHEAD];
            for ((flow, _), key) in chunk.iter().zip(&mut keys) {
                *key = pack(self.key(flow));
                self.index.prefetch(key);
            }
            let mut found = [None; ASK_AHEAD];
            for (key, found) in keys.iter().zip(&mut found) {
                *found = self.index.get(key);
                if let Some(at) = *found {
                    self.touch_group(at);
                }
            }
            for (((flow, flows), key), found) in chunk.iter().zip(&keys).zip(found) {
                // A group new to the batch may have been made by a row before in it.
                let at = match found {
                    Some(at) => at,
                    None => self.group_at(unpack(*key)),
                };
                self.count(at, flow, *flows);
            }
        }
    }

    /// The key of `flow`'s group.
    fn key(&mut self, flow: &CheckedFlow) -> CountKey {
        (
            self.side(flow.src),
            self.side(flow.dst),
            self.policy(flow.decided_by.as_ref()),
            match flow.observed {
                Some(Observed::Allow) => 0,
                Some(Observed::Deny) => 1,
                None => 2,
            },
        )
    }

    /// The place of the group of `key` in [`MismatchGroups::groups`], made when new.
    fn group_at(&mut self, key: CountKey) -> u32 {
        let key = pack(key);
        if let Some(at) = self.index.get(&key) {
            return at;
        }
        let at = u32::try_from(self.groups.len()).unwrap_or(u32::MAX);
        self.groups.push(Group::default());
        self.index.insert(key, at);
        at
    }

    /// Ask for group `at` ([`MismatchGroups::add_rows`]). Changes nothing.
    #[inline]
    fn touch_group(&self, at: u32) {
        crate::prefetch(self.groups.get(at as usize));
    }

    /// Count `flows` flows like `flow` in group `at`.
    #[inline]
    fn count(&mut self, at: u32, flow: &CheckedFlow, flows: u64) {
        if let Some(group) = self.groups.get_mut(at as usize) {
            group.flows += flows;
            group.add_port(&mut self.more_ports, (flow.protocol, flow.port));
        }
    }

    /// The groups with their keys, in no set order.
    fn keyed(&self) -> impl Iterator<Item = (CountKey, &Group)> {
        self.index
            .iter()
            .filter_map(|(key, at)| Some((unpack(key), self.groups.get(at as usize)?)))
    }

    /// Add the groups of other flows: the same groups, counts and ports as adding those
    /// flows here one by one.
    pub fn merge(&mut self, later: MismatchGroups) {
        if self.groups.is_empty() {
            // The first input's groups (or the only input's): taken as they are.
            *self = later;
            return;
        }
        // Workloads of the same table keep their index.
        let shared = match Arc::ptr_eq(&self.workloads, &later.workloads) {
            true => self.workloads.len(),
            false => 0,
        };
        let side = |side: Side, this: &mut MismatchGroups| {
            if side & ADDRESS != 0 {
                let ip = later.addresses[(side & !ADDRESS) as usize];
                ADDRESS | intern(&mut this.addresses, &mut this.address_index, &ip)
            } else if side < shared {
                side
            } else {
                this.workload_named(later.workload_name(side))
            }
        };
        for ((src, dst, policy, observed), group) in later.keyed() {
            let policy = match policy {
                0 => 0,
                n => {
                    let name = &later.policy_names[n as usize - 1];
                    1 + intern(&mut self.policy_names, &mut self.policy_index, name)
                }
            };
            let key = (side(src, self), side(dst, self), policy, observed);
            let at = self.group_at(key);
            let Some(entry) = self.groups.get_mut(at as usize) else {
                continue;
            };
            entry.flows += group.flows;
            entry.more_than_kept |= group.more_than_kept;
            for &port in group.ports(&later.more_ports) {
                entry.add_port(&mut self.more_ports, port);
            }
        }
    }

    /// The printed text of a side.
    fn side_name(&self, side: Side) -> String {
        if side & ADDRESS != 0 {
            self.addresses[(side & !ADDRESS) as usize].to_string()
        } else {
            self.workload_name(side).to_string()
        }
    }
}

/// `value` in decimal, written at the end of `buffer` (what `{value}` prints).
fn decimal(mut value: u64, buffer: &mut [u8; 20]) -> &[u8] {
    let mut at = buffer.len();
    loop {
        at -= 1;
        buffer[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &buffer[at..];
        }
    }
}

/// How many groups on [`write_text`] asks for while it reads one.
const WRITE_AHEAD: usize = 16;

/// Write the mismatch groups as `flows check` prints them (after the summary), most flows
/// first.
pub fn write_text(out: &mut impl Write, groups: &MismatchGroups) -> io::Result<()> {
    if groups.groups.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nmismatches by workload:")?;
    // Sorted as by the printed key (source, destination, deciding policy, observed) after
    // the count, through the rank of each distinct text: integers compared, each text made
    // once. Every side of some group is ranked (every address interned is; workloads are
    // marked), workloads and addresses in one order, read by index: no map probed per group.
    let workloads = groups.workloads.names.len() + groups.extra_workloads.len();
    let mut used = vec![false; workloads];
    for ((src, dst, ..), _) in groups.keyed() {
        for side in [src, dst] {
            if side & ADDRESS == 0 {
                used[side as usize] = true;
            }
        }
    }
    let mut sides: Vec<(String, Side)> = Vec::new();
    sides.extend(
        used.iter()
            .enumerate()
            .filter(|(_, &used)| used)
            .map(|(at, _)| {
                let side = u32::try_from(at).unwrap_or(u32::MAX);
                (groups.side_name(side), side)
            }),
    );
    sides.extend((0..groups.addresses.len()).map(|at| {
        let side = ADDRESS | u32::try_from(at).unwrap_or(u32::MAX);
        (groups.side_name(side), side)
    }));
    sides.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut workload_rank = vec![0u32; workloads];
    let mut address_rank = vec![0u32; groups.addresses.len()];
    for (at, &(_, side)) in sides.iter().enumerate() {
        let rank = u32::try_from(at).unwrap_or(u32::MAX);
        match side & ADDRESS {
            0 => workload_rank[side as usize] = rank,
            _ => address_rank[(side & !ADDRESS) as usize] = rank,
        }
    }
    let rank = |side: Side| match side & ADDRESS {
        0 => workload_rank[side as usize],
        _ => address_rank[(side & !ADDRESS) as usize],
    };
    let policy_name = |policy: u32| match policy {
        0 => "no policy",
        n => &groups.policy_names[n as usize - 1],
    };
    let mut policies: Vec<u32> = (0..=groups.policy_names.len())
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        .collect();
    policies.sort_unstable_by_key(|&policy| policy_name(policy));
    let mut policy_rank = vec![0u32; policies.len()];
    for (at, &policy) in policies.iter().enumerate() {
        policy_rank[policy as usize] = u32::try_from(at).unwrap_or(u32::MAX);
    }
    // Each distinct port's text made once, ranked by that text: a group's ports are
    // written in rank order (their texts sorted), with no text made per group.
    let mut port_rank: FastMap<GroupPort, u32> = FastMap::default();
    let mut port_texts: Vec<(String, GroupPort)> = Vec::new();
    for group in &groups.groups {
        for &port in group.ports(&groups.more_ports) {
            port_rank.entry(port).or_insert_with(|| {
                let text = match port {
                    (protocol, Some(number)) => format!("{protocol}/{number}"),
                    (protocol, None) => protocol.to_string(),
                };
                port_texts.push((text, port));
                0
            });
        }
    }
    port_texts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (at, (_, port)) in port_texts.iter().enumerate() {
        port_rank.insert(*port, u32::try_from(at).unwrap_or(u32::MAX));
    }
    // The groups sit in the order they were first counted, which neither the index's order
    // nor the printed order follows: each is read at random, so each is asked for
    // `WRITE_AHEAD` groups before it is read (a group read when needed waited for memory:
    // a tenth of `-o text` on a log of 800,000 groups, docs/performance.md, session 35).
    let keyed: Vec<(CountKey, u32)> = (groups.index.iter())
        .map(|(key, at)| (unpack(key), at))
        .collect();
    let group_at = |at: u32| groups.groups.get(at as usize);
    let mut sorted = Vec::with_capacity(keyed.len());
    for (n, &((src, dst, policy, observed), at)) in keyed.iter().enumerate() {
        crate::prefetch(keyed.get(n + WRITE_AHEAD).and_then(|&(_, at)| group_at(at)));
        let Some(group) = group_at(at) else {
            continue;
        };
        // "allow", "deny", "unknown" sort as their indices do.
        let order = (
            std::cmp::Reverse(group.flows),
            rank(src),
            rank(dst),
            policy_rank[policy as usize],
            observed,
        );
        sorted.push((order, policy, at));
    }
    sorted.sort_unstable_by_key(|(order, ..)| *order);
    let mut ranks: Vec<u32> = Vec::with_capacity(10);
    // A line's text after its ports, by observed (0 allow, 1 deny, 2 unknown).
    const VERDICT: [&[u8]; 3] = [
        b": observed allow, policy deny (",
        b": observed deny, policy allow (",
        b": observed unknown, policy allow (",
    ];
    let mut number = [0u8; 20];
    for (n, &((_, src, dst, _, observed), policy, at)) in sorted.iter().enumerate() {
        // The group `WRITE_AHEAD` on, and the ports after the first two of the one half as
        // far on (asked for before, so in the CPU's cache by then).
        crate::prefetch(
            sorted
                .get(n + WRITE_AHEAD)
                .and_then(|&(.., at)| group_at(at)),
        );
        if let Some(ahead) = sorted
            .get(n + WRITE_AHEAD / 2)
            .and_then(|&(.., at)| group_at(at))
        {
            if usize::from(ahead.len) > INLINE_PORTS {
                crate::prefetch(groups.more_ports.get(ahead.more as usize));
            }
        }
        let Some(group) = group_at(at) else {
            continue;
        };
        ranks.clear();
        ranks.extend(group.ports(&groups.more_ports).map(|port| port_rank[port]));
        ranks.sort_unstable();
        out.write_all(b"  ")?;
        out.write_all(sides[src as usize].0.as_bytes())?;
        out.write_all(b" -> ")?;
        out.write_all(sides[dst as usize].0.as_bytes())?;
        out.write_all(b" ")?;
        for (n, &at) in ranks.iter().enumerate() {
            if n > 0 {
                out.write_all(b",")?;
            }
            out.write_all(port_texts[at as usize].0.as_bytes())?;
        }
        if group.more_than_kept {
            // More ports than the ten written (the lowest ten).
            out.write_all(",...".as_bytes())?;
        }
        out.write_all(VERDICT[usize::from(observed)])?;
        out.write_all(policy_name(policy).as_bytes())?;
        out.write_all(b"): ")?;
        out.write_all(decimal(group.flows, &mut number))?;
        out.write_all(b" flow(s)\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counts of the mismatch groups are written as `{}` writes them.
    #[test]
    fn counts_are_written_as_format_writes_them() {
        let mut buffer = [0u8; 20];
        for value in [
            0,
            1,
            9,
            10,
            99,
            100,
            4_294_967_295,
            10_000_000_000,
            u64::MAX,
        ] {
            assert_eq!(decimal(value, &mut buffer), value.to_string().as_bytes());
        }
    }

    /// A group keeps the lowest ten distinct ports, ascending, whatever the order they
    /// come in, and says when it saw more; each group its own.
    #[test]
    fn a_group_keeps_its_lowest_ten_ports() {
        let port = |n: u16| match n % 3 {
            0 => (FlowProtocol::Udp, Some(n)),
            1 => (FlowProtocol::Tcp, Some(n)),
            _ => (FlowProtocol::Other(u8::try_from(n).unwrap()), None),
        };
        let numbers = [
            27u16, 5, 5, 7, 5, 7, 9, 11, 9, 13, 3, 15, 17, 19, 21, 23, 25, 5, 1,
        ];
        let mut expected: Vec<GroupPort> = numbers.iter().map(|&n| port(n)).collect();
        expected.sort();
        expected.dedup();
        let more_than_ten = expected.len() > GROUP_PORTS;
        expected.truncate(GROUP_PORTS);
        assert!(more_than_ten);
        // In the order given, reversed, and rotated: the same ports kept.
        let orders: Vec<Vec<u16>> = (0..numbers.len())
            .map(|r| {
                let mut order = numbers.to_vec();
                order.rotate_left(r);
                if r % 2 == 1 {
                    order.reverse();
                }
                order
            })
            .collect();
        let mut more = Vec::new();
        for order in &orders {
            let (mut a, mut b) = (Group::default(), Group::default());
            for &n in order {
                a.add_port(&mut more, port(n));
                b.add_port(&mut more, port(n + 3));
            }
            let a_ports: Vec<GroupPort> = a.ports(&more).copied().collect();
            assert_eq!(a_ports, expected, "{order:?}");
            assert!(a.more_than_kept);
            let mut b_expected: Vec<GroupPort> = numbers.iter().map(|&n| port(n + 3)).collect();
            b_expected.sort();
            b_expected.dedup();
            b_expected.truncate(GROUP_PORTS);
            assert_eq!(b.ports(&more).copied().collect::<Vec<_>>(), b_expected);
        }
        let mut one = Group::default();
        one.add_port(&mut more, port(1));
        one.add_port(&mut more, port(1));
        assert_eq!(one.ports(&more).count(), 1);
        assert!(!one.more_than_kept);
        // Ten ports exactly: not more than kept.
        let mut ten = Group::default();
        for n in (0..10).rev() {
            ten.add_port(&mut more, (FlowProtocol::Tcp, Some(n)));
        }
        ten.add_port(&mut more, (FlowProtocol::Tcp, Some(3)));
        assert_eq!(
            ten.ports(&more).copied().collect::<Vec<_>>(),
            (0..10)
                .map(|n| (FlowProtocol::Tcp, Some(n)))
                .collect::<Vec<_>>()
        );
        assert!(!ten.more_than_kept);
    }

    proptest::proptest! {
        /// Rows added a batch at a time ([`MismatchGroups::add_rows`], batches of any
        /// length, the same group many times in one batch and across batches) make the
        /// same groups as the rows added one by one: the same text, the same count.
        #[test]
        fn rows_added_in_batches_make_the_groups_of_rows_added_one_by_one(
            rows in proptest::collection::vec(
                (0usize..6, 0usize..6, 0u8..6, 0u16..14, 1u64..5),
                0..300,
            ),
            cuts in proptest::collection::vec(0usize..40, 0..20),
        ) {
            use netfence_model::PodId;
            let workloads = Arc::new(Workloads {
                of_pod: vec![0, 0, 1, 2, 3, 3],
                names: ["a/x", "a/y", "b/z", "c/w"].iter().map(|n| n.to_string()).collect(),
                index: std::sync::OnceLock::new(),
            });
            let policies: Vec<Arc<str>> = ["NetworkPolicy a/p", "NetworkPolicy b/q"]
                .iter()
                .map(|&name| Arc::from(name))
                .collect();
            let rows: Vec<(CheckedFlow, u64)> = rows
                .into_iter()
                .map(|(src, dst, how, port, flows)| {
                    let row = CheckedFlow {
                        time: None,
                        src: Endpoint::Pod(PodId::new(src)),
                        // Pod 5 stands for an address (no workload).
                        dst: match dst {
                            5 => Endpoint::Address([10, 0, 0, 9].into()),
                            dst => Endpoint::Pod(PodId::new(dst)),
                        },
                        protocol: FlowProtocol::Tcp,
                        port: Some(port),
                        observed: Some(match how % 2 {
                            0 => Observed::Allow,
                            _ => Observed::Deny,
                        }),
                        policy: None,
                        // Two policies and none (`how / 2` is 0, 1 or 2).
                        decided_by: policies.get(usize::from(how / 2)).cloned(),
                        mismatch: true,
                    };
                    (row, flows)
                })
                .collect();
            let mut one_by_one = MismatchGroups::new(Arc::clone(&workloads));
            for (row, flows) in &rows {
                one_by_one.add_flows(row, *flows);
            }
            let mut batched = MismatchGroups::new(workloads);
            let mut rest = &rows[..];
            for cut in cuts {
                let (batch, after) = rest.split_at(cut.min(rest.len()));
                batched.add_rows(batch);
                rest = after;
            }
            batched.add_rows(rest);
            let text = |groups: &MismatchGroups| {
                let mut out = Vec::new();
                write_text(&mut out, groups).unwrap();
                String::from_utf8(out).unwrap()
            };
            proptest::prop_assert_eq!(batched.len(), one_by_one.len());
            proptest::prop_assert_eq!(text(&batched), text(&one_by_one));
        }
    }

    /// Groups counted with different workload tables (pods numbered apart) merge by the
    /// workloads' names, and a pod no table has is named by its index: the same text as
    /// the same flows counted with one table.
    #[test]
    fn groups_of_other_workload_tables_merge_by_name() {
        use netfence_model::PodId;
        let table = |of_pod: &[u32], names: &[&str]| {
            Arc::new(Workloads {
                of_pod: of_pod.to_vec(),
                names: names.iter().map(|n| n.to_string()).collect(),
                index: std::sync::OnceLock::new(),
            })
        };
        // "a/x" is pod 0 and workload 0 in the first table, pod 1 and workload 1 in the
        // second.
        let (first, second) = (
            table(&[0, 1], &["a/x", "b/y"]),
            table(&[0, 1], &["b/y", "a/x"]),
        );
        let policy: Arc<str> = Arc::from("NetworkPolicy b/deny");
        let row = |src: usize, dst: usize, port: u16| CheckedFlow {
            time: None,
            src: Endpoint::Pod(PodId::new(src)),
            dst: Endpoint::Pod(PodId::new(dst)),
            protocol: FlowProtocol::Tcp,
            port: Some(port),
            observed: Some(Observed::Allow),
            policy: Some(crate::Judgement::Deny),
            decided_by: Some(Arc::clone(&policy)),
            mismatch: true,
        };
        let mut merged = MismatchGroups::new(Arc::clone(&first));
        merged.add_flows(&row(0, 1, 80), 2);
        let mut other = MismatchGroups::new(Arc::clone(&second));
        other.add(&row(1, 0, 443));
        other.add(&row(7, 0, 53));
        merged.merge(other);
        let mut one = MismatchGroups::new(first);
        for (flow, count) in [(row(0, 1, 80), 2), (row(0, 1, 443), 1), (row(7, 1, 53), 1)] {
            one.add_flows(&flow, count);
        }
        let text = |groups: &MismatchGroups| {
            let mut out = Vec::new();
            write_text(&mut out, groups).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(text(&merged), text(&one));
        assert_eq!(
            text(&one),
            "\nmismatches by workload:\n  \
             a/x -> b/y TCP/443,TCP/80: observed allow, policy deny (NetworkPolicy b/deny): 3 flow(s)\n  \
             pod #7 -> b/y TCP/53: observed allow, policy deny (NetworkPolicy b/deny): 1 flow(s)\n"
        );
    }
}
