//! Network vocabulary shared by every crate: protocols (names and IANA numbers), port ranges,
//! address-range sets with their CIDR arithmetic, the cuts CIDR boundaries draw through the
//! address space, and the one stable hash.

use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A transport protocol that a Kubernetes NetworkPolicy can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Protocol {
    /// TCP (the default when a policy port or container port omits `protocol`).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP: distinct from TCP (e2e "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP'").
    Sctp,
}

impl Protocol {
    /// All protocols, in the order used for output (`SCTP`, `TCP`, `UDP`, alphabetical as
    /// netpol-analyzer prints them).
    pub const ALL: [Protocol; 3] = [Protocol::Sctp, Protocol::Tcp, Protocol::Udp];

    /// The upper-case name used in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }

    /// The IANA protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// The protocol with an IANA number, when a NetworkPolicy can name it.
    pub fn from_number(number: u8) -> Option<Protocol> {
        match number {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// Index into per-protocol arrays (stable, 0..3).
    pub fn index(self) -> usize {
        match self {
            Protocol::Sctp => 0,
            Protocol::Tcp => 1,
            Protocol::Udp => 2,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = String;
    /// Kubernetes protocol names are case-sensitive upper case (`TCP`, `UDP`, `SCTP`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            "SCTP" => Ok(Protocol::Sctp),
            other => Err(format!(
                "unsupported protocol {other:?} (expected TCP, UDP or SCTP)"
            )),
        }
    }
}

/// An inclusive range of port numbers, `first <= last`, both in `1..=65535`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// Every port, `1-65535`.
    pub const ALL: PortRange = PortRange {
        first: 1,
        last: 65535,
    };

    /// A range; `None` unless `1 <= first <= last`.
    pub fn new(first: u16, last: u16) -> Option<Self> {
        (first >= 1 && first <= last).then_some(PortRange { first, last })
    }

    /// A single port.
    pub fn single(port: u16) -> Option<Self> {
        PortRange::new(port, port)
    }

    /// First port.
    pub fn first(self) -> u16 {
        self.first
    }

    /// Last port (inclusive).
    pub fn last(self) -> u16 {
        self.last
    }

    /// Whether `port` lies in the range.
    pub fn contains(self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// IANA protocol numbers of the protocols policies and flow logs name (Calico's
/// `numorstring.Protocol` names, libcalico-go `lib/numorstring/protocol.go`; IANA "Assigned
/// Internet Protocol Numbers").
const PROTOCOL_NAMES: [(&str, u8); 6] = [
    ("ICMP", 1),
    ("TCP", 6),
    ("UDP", 17),
    ("ICMPv6", 58),
    ("SCTP", 132),
    ("UDPLite", 136),
];

/// The IANA number of a protocol name (`TCP`, `udp`, `ICMPv6`, …; case-insensitive).
pub fn protocol_by_name(name: &str) -> Option<u8> {
    PROTOCOL_NAMES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|(_, number)| *number)
}

/// The name of an IANA protocol number, when it is one of the named ones.
pub fn protocol_name(number: u8) -> Option<&'static str> {
    PROTOCOL_NAMES
        .iter()
        .find(|(_, known)| *known == number)
        .map(|(name, _)| *name)
}

/// The one stable hash (64-bit FNV-1a): the same value on every platform, build and run, for
/// names derived from content (nftables chains and sets) and synthetic pod addresses.
pub fn stable_hash(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// An address as (is IPv4, value widened to `u128`).
pub fn address_value(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (true, u128::from(u32::from(a))),
        IpAddr::V6(a) => (false, u128::from(a)),
    }
}

/// A CIDR as (is IPv4, first address, last address), widened to `u128`.
pub fn net_bounds(net: &IpNet) -> (bool, u128, u128) {
    match net {
        IpNet::V4(n) => (
            true,
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        IpNet::V6(n) => (false, u128::from(n.network()), u128::from(n.broadcast())),
    }
}

/// The address for a value of one family (the inverse of [`address_value`]).
pub fn address_of(v4: bool, value: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(value as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(value))
    }
}

/// A set of addresses as inclusive intervals per family (IPv4 widened to `u128`), kept
/// sorted, disjoint and merged by [`AddressRanges::normalise`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressRanges {
    /// IPv4 intervals.
    pub v4: Vec<(u128, u128)>,
    /// IPv6 intervals.
    pub v6: Vec<(u128, u128)>,
}

impl AddressRanges {
    /// The addresses of a CIDR.
    pub fn from_net(net: &IpNet) -> AddressRanges {
        let mut out = AddressRanges::default();
        out.push_net(net);
        out
    }

    fn family(&mut self, v4: bool) -> &mut Vec<(u128, u128)> {
        if v4 {
            &mut self.v4
        } else {
            &mut self.v6
        }
    }

    /// Add one address (call [`AddressRanges::normalise`] when done adding).
    pub fn push_ip(&mut self, ip: IpAddr) {
        let (v4, x) = address_value(ip);
        self.family(v4).push((x, x));
    }

    /// Add a CIDR (call [`AddressRanges::normalise`] when done adding).
    pub fn push_net(&mut self, net: &IpNet) {
        let (v4, first, last) = net_bounds(net);
        self.family(v4).push((first, last));
    }

    /// Add every interval of `other` (call [`AddressRanges::normalise`] when done adding).
    pub fn extend(&mut self, other: &AddressRanges) {
        self.v4.extend_from_slice(&other.v4);
        self.v6.extend_from_slice(&other.v6);
    }

    /// Sort, merge overlapping and adjacent intervals.
    pub fn normalise(mut self) -> AddressRanges {
        for list in [&mut self.v4, &mut self.v6] {
            list.sort_unstable();
            let mut out: Vec<(u128, u128)> = Vec::with_capacity(list.len());
            for &(first, last) in list.iter() {
                match out.last_mut() {
                    Some(prev) if first <= prev.1.saturating_add(1) => prev.1 = prev.1.max(last),
                    _ => out.push((first, last)),
                }
            }
            *list = out;
        }
        self
    }

    /// Remove one address.
    pub fn remove_ip(&mut self, ip: IpAddr) {
        let (v4, x) = address_value(ip);
        subtract(self.family(v4), (x, x));
    }

    /// Remove a CIDR.
    pub fn remove_net(&mut self, net: &IpNet) {
        let (v4, first, last) = net_bounds(net);
        subtract(self.family(v4), (first, last));
    }

    /// Whether an address is in the set.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v4, x) = address_value(ip);
        let list = if v4 { &self.v4 } else { &self.v6 };
        list.iter().any(|&(first, last)| first <= x && x <= last)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

fn subtract(ranges: &mut Vec<(u128, u128)>, hole: (u128, u128)) {
    let mut out = Vec::with_capacity(ranges.len() + 1);
    for &(first, last) in ranges.iter() {
        if hole.1 < first || hole.0 > last {
            out.push((first, last));
            continue;
        }
        if hole.0 > first {
            out.push((first, hole.0 - 1));
        }
        if hole.1 < last {
            out.push((hole.1 + 1, last));
        }
    }
    *ranges = out;
}

/// Where CIDR boundaries cut the address space: the sorted first addresses of the segments
/// between every boundary some CIDR draws. Two addresses in one segment are inside exactly
/// the same of those CIDRs. IPv4 always starts a segment at 0.0.0.0; IPv6 has segments only
/// once some IPv6 CIDR was added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressCuts {
    v4: Vec<u32>,
    v6: Vec<u128>,
}

impl Default for AddressCuts {
    fn default() -> Self {
        AddressCuts {
            v4: vec![0],
            v6: Vec::new(),
        }
    }
}

impl AddressCuts {
    /// The cuts of `nets`.
    pub fn from_nets<'a>(nets: impl IntoIterator<Item = &'a IpNet>) -> AddressCuts {
        let mut cuts = AddressCuts::default();
        for net in nets {
            match net {
                IpNet::V4(n) => {
                    cuts.v4.push(u32::from(n.network()));
                    if let Some(next) = u32::from(n.broadcast()).checked_add(1) {
                        cuts.v4.push(next);
                    }
                }
                IpNet::V6(n) => {
                    cuts.v6.push(0);
                    cuts.v6.push(u128::from(n.network()));
                    if let Some(next) = u128::from(n.broadcast()).checked_add(1) {
                        cuts.v6.push(next);
                    }
                }
            }
        }
        cuts.v4.sort_unstable();
        cuts.v4.dedup();
        cuts.v6.sort_unstable();
        cuts.v6.dedup();
        cuts
    }

    /// The cuts of both (to compare two configurations on the same segments).
    pub fn union(&self, other: &AddressCuts) -> AddressCuts {
        let mut v4: Vec<u32> = self.v4.iter().chain(&other.v4).copied().collect();
        let mut v6: Vec<u128> = self.v6.iter().chain(&other.v6).copied().collect();
        v4.sort_unstable();
        v4.dedup();
        v6.sort_unstable();
        v6.dedup();
        AddressCuts { v4, v6 }
    }

    /// The segments as inclusive (first, last) address ranges, IPv4 then IPv6.
    pub fn ranges(&self) -> Vec<(IpAddr, IpAddr)> {
        let mut ranges = Vec::new();
        for (i, &start) in self.v4.iter().enumerate() {
            let end = self.v4.get(i + 1).map_or(u32::MAX, |next| next - 1);
            ranges.push((
                IpAddr::V4(Ipv4Addr::from(start)),
                IpAddr::V4(Ipv4Addr::from(end)),
            ));
        }
        for (i, &start) in self.v6.iter().enumerate() {
            let end = self.v6.get(i + 1).map_or(u128::MAX, |next| next - 1);
            ranges.push((
                IpAddr::V6(Ipv6Addr::from(start)),
                IpAddr::V6(Ipv6Addr::from(end)),
            ));
        }
        ranges
    }

    /// (is IPv6, index of the segment holding `ip`), by binary search.
    pub fn segment(&self, ip: IpAddr) -> (bool, usize) {
        match ip {
            IpAddr::V4(a) => (false, self.v4.partition_point(|&c| c <= u32::from(a))),
            IpAddr::V6(a) => (true, self.v6.partition_point(|&c| c <= u128::from(a))),
        }
    }
}

/// FxHash, the multiply-rotate hash rustc uses for its own tables: for maps keyed by a few
/// machine words or short strings built from trusted input (flow-log caches, the viewer's
/// indexes), where SipHash's DoS resistance costs more than the rest of a lookup (a crafted
/// input could only cost time, never a wrong answer).
#[derive(Clone, Copy, Default)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    /// The state with its high bits folded down. The multiplication of `add`
    /// carries the last word's bits only upwards, and the hash tables index by the low bits:
    /// keys that differ only in the high bits of their last word (IPv6 addresses of one
    /// prefix: `fd00:10::a00:…` hashes its last eight bytes little-endian, the varying ones
    /// on top) all started their probe at one bucket, and interning 200,000 of them took a
    /// fifth of a `flows check` (docs/performance.md, session 32). Folded as MurmurHash3's
    /// 64-bit finaliser folds (shift, multiply, shift), every input bit reaches every output
    /// bit.
    fn finish(&self) -> u64 {
        let mut hash = self.hash;
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^ (hash >> 33)
    }
}

/// A map hashed with [`FxHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    /// Keys that differ only where the last word's high bits are (IPv6 addresses of one
    /// prefix, varying in their last bytes) start their probes at buckets spread over the
    /// table, not all at one: the low bits of their hashes differ.
    #[test]
    fn addresses_of_one_prefix_spread_over_the_low_bits() {
        let hasher = std::hash::BuildHasherDefault::<super::FxHasher>::default();
        for prefix in [
            0xfd00_0010_0000_0000_0000_0000_0a00_0000u128,
            0x2001_0db8 << 96,
        ] {
            let buckets: std::collections::BTreeSet<u64> = (0..4096u128)
                .map(|n| std::net::IpAddr::from(std::net::Ipv6Addr::from(prefix | n)))
                .map(|ip| hasher.hash_one(ip) & 4095)
                .collect();
            // 4,096 keys thrown at random into 4,096 buckets fill about 63 % of them.
            assert!(buckets.len() > 2048, "{} buckets of 4096", buckets.len());
        }
    }
}
