//! Pod-to-pod reachability matrices, one per probed (protocol, port).

use crate::bits::BitSet;
use crate::eval::{Endpoint, Engine};
pub use crate::ports::{default_ports, ProbePort};
use netfence_model::PodId;

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
    bits: Vec<BitSet>,
}

impl Matrix {
    /// Compute the matrix for `ports`.
    pub fn compute(engine: &Engine, ports: &[ProbePort]) -> Matrix {
        let endpoints = engine.inventory().pods().iter().map(|p| p.key()).collect();
        Matrix::from_fn(ports, endpoints, |probe, src, dst| {
            engine.allowed(
                Endpoint::Pod(PodId::new(src)),
                Endpoint::Pod(PodId::new(dst)),
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
        let bits = ports
            .iter()
            .map(|probe| {
                let mut cells = BitSet::new(n * n, false);
                for src in 0..n {
                    for dst in 0..n {
                        if allowed(*probe, src, dst) {
                            cells.set(src * n + dst);
                        }
                    }
                }
                cells
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
        self.bits[port_index].get(src * self.endpoints.len() + dst)
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
    use netfence_model::Protocol;

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
