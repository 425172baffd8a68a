//! Network vocabulary shared by every crate: protocols and port ranges.

use std::fmt;
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
