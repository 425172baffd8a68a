//! Pod-to-pod reachability matrices, one per probed (protocol, port).

use crate::eval::{Endpoint, Engine};
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
    for policy in &inventory.network_policies {
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
            let protocol = match rule.protocol {
                Some(6) => Protocol::Tcp,
                Some(17) => Protocol::Udp,
                Some(132) => Protocol::Sctp,
                _ => continue,
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

/// Read access to a reachability matrix, for renderers that stream: a pod-level [`Matrix`] or
/// a [`crate::ClassMatrix`] seen pod by pod, without materialising every pod pair.
pub trait MatrixView {
    /// The probed ports.
    fn ports(&self) -> &[ProbePort];
    /// Endpoint names (`ns/pod`).
    fn endpoints(&self) -> &[String];
    /// Whether `src` may reach `dst` on the port at `port_index` (a pod always reaches itself).
    fn allowed(&self, port_index: usize, src: usize, dst: usize) -> bool;
}

impl MatrixView for Matrix {
    fn ports(&self) -> &[ProbePort] {
        &self.ports
    }
    fn endpoints(&self) -> &[String] {
        &self.endpoints
    }
    fn allowed(&self, port_index: usize, src: usize, dst: usize) -> bool {
        Matrix::allowed(self, port_index, src, dst)
    }
}

/// Reachability between every pair of pods for each probed port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matrix {
    /// The probed ports.
    pub ports: Vec<ProbePort>,
    /// Endpoint names (`ns/pod`), in inventory order.
    pub endpoints: Vec<String>,
    /// For each port, a row-major bitset: bit `src * n + dst` is set when allowed.
    bits: Vec<Vec<u64>>,
}

impl Matrix {
    /// Compute the matrix for `ports`.
    pub fn compute(engine: &Engine, ports: &[ProbePort]) -> Matrix {
        let endpoints = engine.inventory().pods().iter().map(|p| p.key()).collect();
        Matrix::from_fn(ports, endpoints, |probe, src, dst| {
            engine.allowed(
                Endpoint::Pod(src),
                Endpoint::Pod(dst),
                probe.protocol,
                probe.port,
            )
        })
    }

    /// Build a matrix from any oracle (the lab fills one from real packets).
    pub fn from_fn(
        ports: &[ProbePort],
        endpoints: Vec<String>,
        mut allowed: impl FnMut(ProbePort, usize, usize) -> bool,
    ) -> Matrix {
        let n = endpoints.len();
        let words = (n * n).div_ceil(64);
        let bits = ports
            .iter()
            .map(|probe| {
                let mut row = vec![0u64; words];
                for src in 0..n {
                    for dst in 0..n {
                        if allowed(*probe, src, dst) {
                            let bit = src * n + dst;
                            row[bit / 64] |= 1 << (bit % 64);
                        }
                    }
                }
                row
            })
            .collect();
        Matrix {
            ports: ports.to_vec(),
            endpoints,
            bits,
        }
    }

    /// Whether `src` may reach `dst` on the port at `port_index`.
    pub fn allowed(&self, port_index: usize, src: usize, dst: usize) -> bool {
        let bit = src * self.endpoints.len() + dst;
        self.bits[port_index][bit / 64] & (1 << (bit % 64)) != 0
    }

    /// The cells `(port index, src, dst)` where `self` and `other` disagree, self pairs
    /// included; an error when they do not cover the same ports and endpoints in the same order
    /// (the lab's observed matrix and the engine's prediction do).
    pub fn differences(&self, other: &Matrix) -> Result<Vec<(usize, usize, usize)>, String> {
        if self.ports != other.ports || self.endpoints != other.endpoints {
            return Err(format!(
                "matrices over different ports or endpoints ({} x {} and {} x {})",
                self.ports.len(),
                self.endpoints.len(),
                other.ports.len(),
                other.endpoints.len()
            ));
        }
        let n = self.endpoints.len();
        Ok((0..self.ports.len())
            .flat_map(|p| (0..n).flat_map(move |s| (0..n).map(move |d| (p, s, d))))
            .filter(|&(p, s, d)| self.allowed(p, s, d) != other.allowed(p, s, d))
            .collect())
    }

    /// Allowed ordered pairs for a port, self pairs omitted.
    pub fn allowed_pairs(&self, port_index: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let n = self.endpoints.len();
        (0..n)
            .flat_map(move |src| (0..n).map(move |dst| (src, dst)))
            .filter(move |&(src, dst)| src != dst && self.allowed(port_index, src, dst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_the_cells_that_disagree() {
        let ports = [ProbePort {
            protocol: Protocol::Tcp,
            port: 80,
        }];
        let endpoints = || vec!["x/a".to_string(), "x/b".to_string()];
        let all = Matrix::from_fn(&ports, endpoints(), |_, _, _| true);
        let one_denied = Matrix::from_fn(&ports, endpoints(), |_, s, d| (s, d) != (0, 1));
        assert_eq!(all.differences(&one_denied), Ok(vec![(0, 0, 1)]));
        assert_eq!(all.differences(&all), Ok(vec![]));
        let other_pods = Matrix::from_fn(&ports, vec!["y/a".to_string()], |_, _, _| true);
        assert!(all.differences(&other_pods).is_err());
    }
}
