//! The ports a matrix probes: `TCP/80` as a value, and the ports a cluster's pods and
//! policies mention.

use netfence_model::{Inventory, NpPortSpec, Protocol};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// A probed port: `TCP/80`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbePort {
    /// Protocol.
    pub protocol: Protocol,
    /// Port number.
    pub port: u16,
}

impl fmt::Display for ProbePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol, self.port)
    }
}

impl FromStr for ProbePort {
    type Err = String;
    /// `TCP/80`, `udp/53`; a bare number means TCP.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (protocol, port) = match s.split_once('/') {
            Some((p, n)) => (p.to_ascii_uppercase().parse::<Protocol>()?, n),
            None => (Protocol::Tcp, s),
        };
        let port: u16 =
            port.parse().ok().filter(|p| *p >= 1).ok_or_else(|| {
                format!("invalid port {port:?} in {s:?} (expected PROTO/1-65535)")
            })?;
        Ok(ProbePort { protocol, port })
    }
}

/// Every port that some pod declares or some policy (Kubernetes or Calico) mentions by number
/// (both ends of a range), sorted by protocol then port.
pub fn default_ports(inventory: &Inventory) -> Vec<ProbePort> {
    let mut ports: BTreeSet<(Protocol, u16)> = inventory.declared_ports();
    for policy in inventory.network_policies.iter() {
        for rule in policy.ingress.iter().chain(&policy.egress) {
            for port in &rule.ports {
                if let NpPortSpec::Range(range) = &port.port {
                    ports.insert((port.protocol, range.first()));
                    ports.insert((port.protocol, range.last()));
                }
            }
        }
    }
    for policy in &inventory.calico_policies {
        for rule in policy.ingress.iter().chain(&policy.egress) {
            let Some(protocol) = rule.protocol.and_then(Protocol::from_number) else {
                continue;
            };
            for port in rule
                .destination
                .ports
                .iter()
                .chain(&rule.destination.not_ports)
            {
                if let netfence_model::calico::CalicoPort::Range(range) = port {
                    ports.insert((protocol, range.first()));
                    ports.insert((protocol, range.last()));
                }
            }
        }
    }
    let mut out: Vec<ProbePort> = ports
        .into_iter()
        .map(|(protocol, port)| ProbePort { protocol, port })
        .collect();
    out.sort_by_key(|p| (p.protocol.as_str(), p.port));
    out
}
