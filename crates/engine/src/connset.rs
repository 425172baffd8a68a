//! Sets of connections: for each protocol, a set of port intervals.
//!
//! Rendering follows netpol-analyzer's conventions (`All Connections`,
//! `SCTP 1-9002,9004-65535,TCP 80`), protocols in alphabetical order.

use netfence_model::{PortRange, Protocol};
use std::fmt;

/// A set of ports as sorted, disjoint, non-adjacent inclusive intervals within 1..=65535.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortSet {
    intervals: Vec<(u16, u16)>,
}

impl PortSet {
    /// No port.
    pub fn empty() -> Self {
        PortSet::default()
    }

    /// Every port, 1-65535.
    pub fn all() -> Self {
        PortSet {
            intervals: vec![(1, 65535)],
        }
    }

    /// The ports of one range.
    pub fn range(range: PortRange) -> Self {
        PortSet {
            intervals: vec![(range.first(), range.last())],
        }
    }

    /// Whether no port is in the set.
    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// Whether every port is in the set.
    pub fn is_all(&self) -> bool {
        self.intervals == [(1, 65535)]
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        self.intervals
            .iter()
            .any(|&(first, last)| first <= port && port <= last)
    }

    /// The intervals.
    pub fn ranges(&self) -> impl Iterator<Item = PortRange> + '_ {
        self.intervals
            .iter()
            .filter_map(|&(first, last)| PortRange::new(first, last))
    }

    /// Union.
    pub fn union(&self, other: &PortSet) -> PortSet {
        let mut all: Vec<(u16, u16)> = self
            .intervals
            .iter()
            .chain(other.intervals.iter())
            .copied()
            .collect();
        all.sort_unstable();
        let mut out: Vec<(u16, u16)> = Vec::with_capacity(all.len());
        for (first, last) in all {
            match out.last_mut() {
                Some(prev) if u32::from(first) <= u32::from(prev.1) + 1 => {
                    prev.1 = prev.1.max(last)
                }
                _ => out.push((first, last)),
            }
        }
        PortSet { intervals: out }
    }

    /// Complement within 1..=65535.
    pub fn complement(&self) -> PortSet {
        let mut out = Vec::new();
        let mut next: u32 = 1;
        for &(first, last) in &self.intervals {
            if u32::from(first) > next {
                out.push((next as u16, first - 1));
            }
            next = u32::from(last) + 1;
        }
        if next <= 65535 {
            out.push((next as u16, 65535));
        }
        PortSet { intervals: out }
    }

    /// Intersection.
    pub fn intersect(&self, other: &PortSet) -> PortSet {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < self.intervals.len() && j < other.intervals.len() {
            let (a1, a2) = self.intervals[i];
            let (b1, b2) = other.intervals[j];
            let first = a1.max(b1);
            let last = a2.min(b2);
            if first <= last {
                out.push((first, last));
            }
            if a2 < b2 {
                i += 1;
            } else {
                j += 1;
            }
        }
        PortSet { intervals: out }
    }

    /// Difference.
    pub fn subtract(&self, other: &PortSet) -> PortSet {
        self.intersect(&other.complement())
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, range) in self.ranges().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{range}")?;
        }
        Ok(())
    }
}

/// A set of (protocol, port) connections over TCP, UDP and SCTP.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConnSet {
    ports: [PortSet; 3],
}

impl ConnSet {
    /// No connection.
    pub fn empty() -> Self {
        ConnSet::default()
    }

    /// Every port of every protocol.
    pub fn all() -> Self {
        ConnSet {
            ports: [PortSet::all(), PortSet::all(), PortSet::all()],
        }
    }

    /// Every port of one protocol.
    pub fn protocol(protocol: Protocol) -> Self {
        ConnSet::ports(protocol, PortSet::all())
    }

    /// Some ports of one protocol.
    pub fn ports(protocol: Protocol, ports: PortSet) -> Self {
        let mut set = ConnSet::empty();
        set.ports[protocol.index()] = ports;
        set
    }

    /// One (protocol, port).
    pub fn single(protocol: Protocol, port: u16) -> Self {
        match PortRange::single(port) {
            Some(range) => ConnSet::ports(protocol, PortSet::range(range)),
            None => ConnSet::empty(),
        }
    }

    /// The ports of `protocol` in the set.
    pub fn ports_of(&self, protocol: Protocol) -> &PortSet {
        &self.ports[protocol.index()]
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ports.iter().all(PortSet::is_empty)
    }

    /// Whether every connection is in the set.
    pub fn is_all(&self) -> bool {
        self.ports.iter().all(PortSet::is_all)
    }

    /// Whether (protocol, port) is in the set.
    pub fn contains(&self, protocol: Protocol, port: u16) -> bool {
        self.ports[protocol.index()].contains(port)
    }

    fn zip(&self, other: &ConnSet, op: impl Fn(&PortSet, &PortSet) -> PortSet) -> ConnSet {
        ConnSet {
            ports: [
                op(&self.ports[0], &other.ports[0]),
                op(&self.ports[1], &other.ports[1]),
                op(&self.ports[2], &other.ports[2]),
            ],
        }
    }

    /// Union.
    pub fn union(&self, other: &ConnSet) -> ConnSet {
        self.zip(other, PortSet::union)
    }

    /// Intersection.
    pub fn intersect(&self, other: &ConnSet) -> ConnSet {
        self.zip(other, PortSet::intersect)
    }

    /// Difference.
    pub fn subtract(&self, other: &ConnSet) -> ConnSet {
        self.zip(other, PortSet::subtract)
    }
}

/// `All Connections`, `No Connections`, or `SCTP 1-9,TCP 80,UDP 53`.
impl fmt::Display for ConnSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("All Connections");
        }
        if self.is_empty() {
            return f.write_str("No Connections");
        }
        let mut first = true;
        for protocol in Protocol::ALL {
            let ports = self.ports_of(protocol);
            if ports.is_empty() {
                continue;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{protocol} {ports}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(intervals: &[(u16, u16)]) -> PortSet {
        intervals.iter().fold(PortSet::empty(), |acc, &(a, b)| {
            acc.union(&PortSet::range(PortRange::new(a, b).unwrap()))
        })
    }

    #[test]
    fn interval_algebra() {
        let a = set(&[(1, 10), (20, 30)]);
        let b = set(&[(5, 25)]);
        assert_eq!(a.union(&b), set(&[(1, 30)]));
        assert_eq!(a.intersect(&b), set(&[(5, 10), (20, 25)]));
        assert_eq!(a.subtract(&b), set(&[(1, 4), (26, 30)]));
        assert_eq!(set(&[(1, 79), (81, 65535)]).complement(), set(&[(80, 80)]));
        assert_eq!(
            set(&[(1, 5), (6, 9)]),
            set(&[(1, 9)]),
            "adjacent intervals merge"
        );
        assert!(PortSet::all().complement().is_empty());
    }

    #[test]
    fn renders_like_netpol_analyzer() {
        let conns = ConnSet::all().subtract(&ConnSet::single(Protocol::Tcp, 80));
        assert_eq!(
            conns.to_string(),
            "SCTP 1-65535,TCP 1-79,81-65535,UDP 1-65535"
        );
        assert_eq!(ConnSet::all().to_string(), "All Connections");
        let dns = ConnSet::single(Protocol::Udp, 53).union(&ConnSet::single(Protocol::Tcp, 53));
        assert_eq!(dns.to_string(), "TCP 53,UDP 53");
    }
}
