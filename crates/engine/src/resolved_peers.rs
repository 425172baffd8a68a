//! Rule peers resolved into addresses, for consumers that enforce by address (the nftables
//! renderer): every address a peer matches, whatever the policy language, so that a packet
//! filter matching the peer's address set decides exactly as [`Engine::peer_matches`] does.
//!
//! An address that belongs to a pod is that pod ([`Engine::endpoint_for_ip`]): it is in the
//! set when the peer matches the pod. Any other address is in the set when the peer matches it
//! as a bare address (CIDRs, node addresses, the `nets` of Calico network sets).

use crate::eval::{Endpoint, Engine};
use crate::ir::{CalicoNamespaceScope, Peer};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netfence_model::net::{address_value, AddressCuts};
use netfence_model::{AddressRanges, PodId, PodRange};

impl Engine {
    /// Every address `peer` matches, as sorted, merged intervals: the addresses of the pods it
    /// matches, plus the non-pod addresses it matches, computed now ([`Engine::peer_addresses`]
    /// keeps them per rule peer). A pod peer's pods are resolved by namespace; a CIDR is cut around pods with invented addresses (they match
    /// no CIDR); a Calico entity is matched pod by pod and its non-pod addresses come from its
    /// `nets`/`notNets` and the network sets its selectors match, asked segment by segment.
    pub fn addresses_of_peer(&self, peer: &Peer) -> AddressRanges {
        let inventory = self.inventory();
        let out = match peer {
            Peer::Pods { namespaces, pods } => {
                return self.addresses_of_pods(&self.resolve_pod_peer(namespaces, pods));
            }
            Peer::Net { net, except } => {
                // A pod with a real address in the block matches by that address; one with an
                // invented address matches no block.
                let mut out = AddressRanges::from_net(net);
                for e in except {
                    out.remove_net(e);
                }
                for pod in inventory.pods().iter().filter(|p| p.synthetic_ip) {
                    pod.ips.iter().for_each(|ip| out.remove_ip(*ip));
                }
                out
            }
            Peer::Nodes(_) | Peer::Calico(_) => {
                let mut out = self.bare_addresses_without_pods(self.bare_addresses(peer));
                for id in self.candidate_pods(peer) {
                    if self.peer_matches(peer, Endpoint::Pod(id)) {
                        self.push_pod_addresses(&mut out, id);
                    }
                }
                out
            }
        };
        out.normalise()
    }

    /// The addresses of `pods` (a pod peer's, [`Engine::peer_pods`]), as
    /// [`Engine::addresses_of_peer`] gives them.
    pub(crate) fn addresses_of_pods(&self, pods: &[PodId]) -> AddressRanges {
        let mut out = AddressRanges::default();
        for &id in pods {
            self.push_pod_addresses(&mut out, id);
        }
        out.normalise()
    }

    /// Add pod `id`'s addresses to `out`.
    fn push_pod_addresses(&self, out: &mut AddressRanges, id: PodId) {
        for ip in &self.inventory().pods()[id].ips {
            out.push_ip(*ip);
        }
    }

    /// The pods that can match a peer: for a Calico entity confined to one namespace that no
    /// network set can widen, that namespace's pods; else every pod.
    fn candidate_pods(&self, peer: &Peer) -> PodRange {
        let inventory = self.inventory();
        if let Peer::Calico(entity) = peer {
            if let CalicoNamespaceScope::Same(ns) = &entity.scope {
                if entity.has_endpoint_selector() && inventory.network_sets.is_empty() {
                    return inventory.pods_in(ns);
                }
            }
        }
        PodRange::new(0..inventory.pods().len())
    }

    /// `ranges` without the addresses of pods (an address of a pod is the pod, matched as one).
    fn bare_addresses_without_pods(&self, mut ranges: AddressRanges) -> AddressRanges {
        if ranges.is_empty() {
            return ranges;
        }
        for pod in self.inventory().pods() {
            for ip in &pod.ips {
                if ranges.contains(*ip) {
                    ranges.remove_ip(*ip);
                }
            }
        }
        ranges
    }

    /// The non-pod addresses a peer matches as bare addresses, asked of
    /// [`Engine::peer_matches`] once per segment of the address space that the CIDRs the answer
    /// can depend on cut out (the peer's own `nets`/`notNets`, every network set's `nets`, node
    /// addresses): inside one segment every address is in exactly the same of those CIDRs, so
    /// it gets the same answer.
    fn bare_addresses(&self, peer: &Peer) -> AddressRanges {
        let inventory = self.inventory();
        let mut nets: Vec<IpNet> =
            vec![IpNet::V4(Ipv4Net::default()), IpNet::V6(Ipv6Net::default())];
        match peer {
            Peer::Calico(entity) => {
                nets.extend(entity.nets.iter().chain(&entity.not_nets).copied());
                nets.extend(
                    inventory
                        .network_sets
                        .iter()
                        .flat_map(|s| s.nets.iter().copied()),
                );
            }
            Peer::Nodes(_) => {
                nets.extend(
                    inventory
                        .nodes
                        .iter()
                        .flat_map(|n| n.addresses.iter().map(|ip| IpNet::from(*ip))),
                );
            }
            Peer::Pods { .. } | Peer::Net { .. } => {}
        }
        let mut out = AddressRanges::default();
        for (first, last) in AddressCuts::from_nets(&nets).ranges() {
            if self.peer_matches(peer, Endpoint::Address(first)) {
                let (v4, a) = address_value(first);
                let (_, b) = address_value(last);
                if v4 {
                    out.v4.push((a, b));
                } else {
                    out.v6.push((a, b));
                }
            }
        }
        out.normalise()
    }
}
