//! The mismatches of `flows check`'s text output, grouped by (source workload, destination
//! workload, deciding policy, what was observed), and their text: what a reader of a large
//! log wants instead of one line per flow. Fed by [`crate::Checker::counting`]'s rows with
//! their counts, in any order: what a group holds does not depend on the order its flows
//! come in, so groups of files read apart merge into what one pass gives.

use crate::{CheckedFlow, FlowProtocol, Observed};
use netfence_engine::{Endpoint, Engine};
use netfence_model::net::FastMap;
use std::io::{self, Write};
use std::sync::Arc;

/// A side of a mismatch group while counting: a workload by its index in
/// [`MismatchGroups::workload_names`], or an address with [`ADDRESS`] set, by its index in
/// [`MismatchGroups::addresses`].
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

/// A port of a mismatch group: protocol and destination port.
type GroupPort = (FlowProtocol, Option<u16>);

/// The ports a mismatch group keeps: the lowest ten (by protocol, then number), so that
/// they do not depend on the order its flows come in; a group that saw more says so.
const GROUP_PORTS: usize = 10;
/// The ports a [`Group`] holds itself; the others sit in [`MismatchGroups::more_ports`].
const INLINE_PORTS: usize = 2;

/// A mismatch group's flows and (the lowest ten of) their ports, ascending; printed
/// sorted by their text. The first two ports sit in the group, the rest (rare: a group is
/// one workload pair, one policy) in [`MismatchGroups::more_ports`]: a group and its key
/// take 48 bytes, so that 100,000 groups' map stays about 6 MB (with ten ports inline it
/// was 88 bytes, two cache lines, a map of 11.5 MB).
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

// A group with its key: 48 bytes (see [`Group`]).
const _: () = assert!(std::mem::size_of::<(CountKey, Group)>() == 48);

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
        // The ports, ascending: where `port` goes (or is already).
        let at = match self.ports(more_ports).position(|&kept| kept >= port) {
            Some(at) if self.port(more_ports, at) == port => return,
            Some(at) => at,
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

    /// The `at`th port kept (below [`Group::len`]).
    fn port(&self, more_ports: &[MorePorts], at: usize) -> GroupPort {
        match at < INLINE_PORTS {
            true => self.ports[at],
            false => more_ports
                .get(self.more as usize)
                .map_or(self.ports[0], |more| more[at - INLINE_PORTS]),
        }
    }
}

/// The mismatches of `flows check -o text`, grouped by (source workload, destination
/// workload, deciding policy, what was observed). Counted by small integers (workload,
/// address and policy indices) in a hash map, made into text once per group when written:
/// a log with mostly mismatches adds millions of flows.
#[derive(Default)]
pub struct MismatchGroups {
    groups: FastMap<CountKey, Group>,
    /// The ports of groups with more than two, after their first two ([`Group::more`]).
    more_ports: Vec<MorePorts>,
    /// Each pod's workload index, filled as pods are seen (`u32::MAX`: not yet).
    workload_of: Vec<u32>,
    /// `namespace/name` by workload index.
    workload_names: Vec<String>,
    workload_index: FastMap<String, u32>,
    /// A pod's workload's `namespace/name` while it is looked up (made in place: a `String`
    /// allocated per workload, not per pod).
    scratch: String,
    addresses: Vec<std::net::IpAddr>,
    address_index: FastMap<std::net::IpAddr, u32>,
    /// Deciding policies' text by index.
    policy_names: Vec<Arc<str>>,
    policy_index: FastMap<Arc<str>, u32>,
    /// Policy index by the text's address (the checker makes each name once): every text
    /// seen is kept in `seen_policies`, so that its address stays its own.
    policy_by_address: FastMap<usize, u32>,
    seen_policies: Vec<Arc<str>>,
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
    /// The side of `endpoint`: pod `id`'s workload (`namespace/name`, indexed once per pod),
    /// or the address.
    fn side(&mut self, engine: &Engine, endpoint: Endpoint) -> Side {
        let id = match endpoint {
            Endpoint::Pod(id) => id,
            Endpoint::Address(ip) => {
                return ADDRESS | intern(&mut self.addresses, &mut self.address_index, &ip);
            }
        };
        if let Some(&index) = self.workload_of.get(id.index()).filter(|&&i| i != u32::MAX) {
            return index;
        }
        let pods = engine.inventory().pods();
        if self.workload_of.len() < pods.len() {
            self.workload_of.resize(pods.len(), u32::MAX);
        }
        let workload = &pods[id].workload;
        let mut name = std::mem::take(&mut self.scratch);
        name.clear();
        name.push_str(&workload.namespace);
        name.push('/');
        name.push_str(&workload.name);
        let index = match self.workload_index.get(name.as_str()) {
            Some(&index) => index,
            None => intern(&mut self.workload_names, &mut self.workload_index, &name),
        };
        self.scratch = name;
        self.workload_of[id] = index;
        index
    }

    /// The key of deciding policy `decided_by` (by its address, its text once per address).
    fn policy(&mut self, decided_by: Option<&Arc<str>>) -> u32 {
        let Some(name) = decided_by else {
            return 0;
        };
        let address = Arc::as_ptr(name).cast::<u8>() as usize;
        if let Some(&index) = self.policy_by_address.get(&address) {
            return index;
        }
        let index = 1 + intern(&mut self.policy_names, &mut self.policy_index, name);
        self.seen_policies.push(Arc::clone(name));
        self.policy_by_address.insert(address, index);
        index
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
    pub fn add(&mut self, engine: &Engine, flow: &CheckedFlow) {
        self.add_flows(engine, flow, 1);
    }

    /// Count `flows` mismatching flows like `flow` (a row of [`crate::Checker::counting`]).
    pub fn add_flows(&mut self, engine: &Engine, flow: &CheckedFlow, flows: u64) {
        let key = (
            self.side(engine, flow.src),
            self.side(engine, flow.dst),
            self.policy(flow.decided_by.as_ref()),
            match flow.observed {
                Some(Observed::Allow) => 0,
                Some(Observed::Deny) => 1,
                None => 2,
            },
        );
        let entry = self.groups.entry(key).or_default();
        entry.flows += flows;
        entry.add_port(&mut self.more_ports, (flow.protocol, flow.port));
    }

    /// Add the groups of other flows: the same groups, counts and ports as adding those
    /// flows here one by one.
    pub fn merge(&mut self, later: MismatchGroups) {
        if self.groups.is_empty() {
            // The first input's groups (or the only input's): taken as they are.
            *self = later;
            return;
        }
        let side = |side: Side, this: &mut MismatchGroups| {
            if side & ADDRESS != 0 {
                let ip = later.addresses[(side & !ADDRESS) as usize];
                ADDRESS | intern(&mut this.addresses, &mut this.address_index, &ip)
            } else {
                let name = &later.workload_names[side as usize];
                intern(&mut this.workload_names, &mut this.workload_index, name)
            }
        };
        for (&(src, dst, policy, observed), group) in &later.groups {
            let policy = match policy {
                0 => 0,
                n => {
                    let name = &later.policy_names[n as usize - 1];
                    1 + intern(&mut self.policy_names, &mut self.policy_index, name)
                }
            };
            let key = (side(src, self), side(dst, self), policy, observed);
            let entry = self.groups.entry(key).or_default();
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
            self.workload_names[side as usize].clone()
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

/// Write the mismatch groups as `flows check` prints them (after the summary), most flows
/// first.
pub fn write_text(out: &mut impl Write, groups: &MismatchGroups) -> io::Result<()> {
    if groups.groups.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nmismatches by workload:")?;
    // Sorted as by the printed key (source, destination, deciding policy, observed) after
    // the count, through the rank of each distinct text: integers compared, each text made
    // once. Every side interned is ranked (each is some group's), workloads and addresses
    // in one order, read by index: no map probed per group.
    let mut sides: Vec<(String, Side)> = Vec::new();
    sides.extend((0..groups.workload_names.len()).map(|at| {
        let side = u32::try_from(at).unwrap_or(u32::MAX);
        (groups.side_name(side), side)
    }));
    sides.extend((0..groups.addresses.len()).map(|at| {
        let side = ADDRESS | u32::try_from(at).unwrap_or(u32::MAX);
        (groups.side_name(side), side)
    }));
    sides.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut workload_rank = vec![0u32; groups.workload_names.len()];
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
    for group in groups.groups.values() {
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
    let mut sorted: Vec<_> = groups
        .groups
        .iter()
        .map(|(&(src, dst, policy, observed), group)| {
            // "allow", "deny", "unknown" sort as their indices do.
            let order = (
                std::cmp::Reverse(group.flows),
                rank(src),
                rank(dst),
                policy_rank[policy as usize],
                observed,
            );
            (order, policy, group)
        })
        .collect();
    sorted.sort_unstable_by_key(|(order, ..)| *order);
    let mut ranks: Vec<u32> = Vec::with_capacity(10);
    // A line's text after its ports, by observed (0 allow, 1 deny, 2 unknown).
    const VERDICT: [&[u8]; 3] = [
        b": observed allow, policy deny (",
        b": observed deny, policy allow (",
        b": observed unknown, policy allow (",
    ];
    let mut number = [0u8; 20];
    for ((_, src, dst, _, observed), policy, group) in sorted {
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
}
