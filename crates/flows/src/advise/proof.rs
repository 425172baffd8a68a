//! The proof, computed by the engine with the proposal in place (never by walking the
//! proposal's rules here): every observed connection replayed (`denied_after` must be 0),
//! pod pairs × ports allowed before and after (the class matrix), the connections the
//! proposal still allows that nobody observed (the connection list minus the observed ones,
//! by workload and external range), and the what-if delta against today's cluster
//! (`Cluster::preview`, the change `netfence what-if` would print).

use super::plan::{engine_with, wires, Plan};
use super::render::{self, Document};
use super::{AdviseError, Observations, ObservedTarget};
use crate::check::decided_by;
use netfence_engine::{connlist, default_ports, Cluster, ConnSet, DiffLine, Endpoint, Engine};
use netfence_engine::{ListPeer, ProbePort};
use netfence_model::{Inventory, Loader, Protocol, WorkloadRef};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

/// An observed connection the proposal would deny.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    /// Source (`ns/pod` or address).
    pub src: String,
    /// Destination (`ns/pod`, address, or `ns/svc/name`).
    pub dst: String,
    /// Protocol.
    pub protocol: Protocol,
    /// Port.
    pub port: u16,
    /// Flows that carried it.
    pub flows: u64,
    /// The policy that denies (`Kind ns/name`), when one decided.
    pub decided_by: Option<String>,
}

/// Connections the proposal allows that were not observed, between two peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unobserved {
    /// Source workload or external range.
    pub src: ListPeer,
    /// Destination workload or external range.
    pub dst: ListPeer,
    /// What is allowed and was not observed.
    pub conns: ConnSet,
}

/// The proof of a proposal.
#[derive(Clone, Debug)]
pub struct Proof {
    /// Observed flows replayed.
    pub flows: u64,
    /// Distinct observed connections replayed.
    pub connections: usize,
    /// Observed flows the cluster with the proposal denies (must be 0).
    pub denied_after: u64,
    /// The denied connections, with the deciding policy.
    pub denied: Vec<Denied>,
    /// The ports counted: every port a pod declares or a policy names, and every observed
    /// port.
    pub ports: Vec<ProbePort>,
    /// Pods counted.
    pub pods: usize,
    /// Pod pairs × ports if everything were allowed (distinct pods).
    pub allowed_pairs_all: u64,
    /// Pod pairs × ports today's cluster allows.
    pub allowed_pairs_before: u64,
    /// Pod pairs × ports the cluster with the proposal allows.
    pub allowed_pairs_after: u64,
    /// Distinct observed pod pairs × ports (the floor of `allowed_pairs_after`).
    pub observed_pairs: u64,
    /// What the proposal still allows that was not observed, grouped by peers.
    pub unobserved: Vec<Unobserved>,
    /// The reachability change against today's cluster (`what-if`'s lines).
    pub what_if: Vec<DiffLine>,
    /// Seconds spent per step: (step, seconds), in order.
    pub timings: Vec<(&'static str, f64)>,
}

/// The endpoint of `from`'s inventory in `to`'s (the same pods: a proposal adds policies only).
fn remap(from: &Inventory, to: &Inventory, endpoint: Endpoint) -> Endpoint {
    match endpoint {
        Endpoint::Pod(id) => {
            let pod = &*from.pods()[id];
            to.pod_by_key(&pod.namespace, &pod.name)
                .map_or_else(|| Endpoint::Address(pod.ips[0]), Endpoint::Pod)
        }
        address => address,
    }
}

fn allowed_pairs(engine: &Engine, ports: &[ProbePort]) -> u64 {
    let matrix = engine.class_matrix(ports);
    (0..ports.len()).map(|i| matrix.allowed_pairs(i)).sum()
}

/// Replay the observed connections on `after`: (flows denied, the denied connections).
fn replay(before: &Engine, after: &Engine, observations: &Observations) -> (u64, Vec<Denied>) {
    let (from, to) = (before.inventory(), after.inventory());
    let mut denied_after = 0;
    let mut denied = Vec::new();
    for (connection, &flows) in &observations.connections {
        let src = remap(from, to, connection.src);
        let (allowed, decider, dst_name) = match connection.dst {
            ObservedTarget::Endpoint(dst) => {
                let dst = remap(from, to, dst);
                let verdict = after.explain(src, dst, connection.protocol, connection.port);
                (
                    verdict.allowed,
                    decided_by(after, &verdict),
                    after.endpoint_name(dst),
                )
            }
            ObservedTarget::Service(index) => {
                let service = &from.services[index];
                let Some(service) = to
                    .services
                    .iter()
                    .find(|s| s.namespace == service.namespace && s.name == service.name)
                else {
                    continue;
                };
                let answer =
                    after.explain_via_service(src, service, connection.protocol, connection.port);
                // No backend: nothing policy could allow (reported by the plan).
                if answer.backends.is_empty() {
                    continue;
                }
                let decider = answer
                    .backends
                    .iter()
                    .find(|b| !b.verdict.allowed)
                    .and_then(|b| decided_by(after, &b.verdict));
                (
                    answer.allowed(),
                    decider,
                    format!("{}/svc/{}", service.namespace, service.name),
                )
            }
        };
        if !allowed {
            denied_after += flows;
            denied.push(Denied {
                src: after.endpoint_name(src),
                dst: dst_name,
                protocol: connection.protocol,
                port: connection.port,
                flows,
                decided_by: decider,
            });
        }
    }
    (denied_after, denied)
}

/// One side of an observed pod-level connection, as the connection list names peers.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Side {
    Workload(WorkloadRef),
    Address(IpAddr),
}

impl Side {
    fn of(inventory: &Inventory, endpoint: Endpoint) -> Side {
        match endpoint {
            Endpoint::Pod(id) => Side::Workload(inventory.pods()[id].workload.clone()),
            Endpoint::Address(ip) => Side::Address(ip),
        }
    }

    fn within(&self, peer: &ListPeer) -> bool {
        match (self, peer) {
            (Side::Workload(w), ListPeer::Workload(p)) => w == &**p,
            (Side::Address(ip), ListPeer::External(first, last)) => (*first..=*last).contains(ip),
            _ => false,
        }
    }
}

/// The connection list of `after` less what was observed, line by line.
fn unobserved(after: &Engine, observed: &[(Side, Side, Protocol, u16)]) -> Vec<Unobserved> {
    let mut by_source: HashMap<&Side, Vec<(&Side, Protocol, u16)>> = HashMap::new();
    let mut from_addresses = Vec::new();
    for (src, dst, protocol, port) in observed {
        match src {
            Side::Workload(_) => by_source
                .entry(src)
                .or_default()
                .push((dst, *protocol, *port)),
            Side::Address(_) => from_addresses.push((src, dst, *protocol, *port)),
        }
    }
    let mut out = Vec::new();
    for line in connlist(after) {
        let mut seen = ConnSet::empty();
        match &line.src {
            ListPeer::Workload(workload) => {
                let key = Side::Workload(WorkloadRef::clone(workload));
                for (dst, protocol, port) in by_source.get(&key).into_iter().flatten() {
                    if dst.within(&line.dst) {
                        seen = seen.union(&ConnSet::single(*protocol, *port));
                    }
                }
            }
            ListPeer::External(..) => {
                for (src, dst, protocol, port) in &from_addresses {
                    if src.within(&line.src) && dst.within(&line.dst) {
                        seen = seen.union(&ConnSet::single(*protocol, *port));
                    }
                }
            }
        }
        let rest = line.conns.subtract(&seen);
        if !rest.is_empty() {
            out.push(Unobserved {
                src: line.src,
                dst: line.dst,
                conns: rest,
            });
        }
    }
    out
}

/// Prove `plan` (its enforced documents: `enforced`) on `cluster` (`loader`'s objects).
pub(crate) fn prove(
    loader: &Loader,
    cluster: &Cluster,
    observations: &Observations,
    plan: &Plan,
    enforced: &[Document],
) -> Result<Proof, AdviseError> {
    let before = cluster.engine();
    let mut timings = Vec::new();
    let mut clock = std::time::Instant::now();
    let mut lap = |step: &'static str, timings: &mut Vec<(&'static str, f64)>| {
        timings.push((step, clock.elapsed().as_secs_f64()));
        clock = std::time::Instant::now();
    };
    let changes = (!enforced.is_empty()).then(|| render::loader(enforced));
    let after = engine_with(loader, changes.clone(), &plan.replaced)?;
    lap("engine with the proposal", &mut timings);
    let what_if = if changes.is_some() || !plan.replaced.is_empty() {
        cluster
            .preview(changes.unwrap_or_default(), &plan.replaced)
            .map_err(AdviseError::Proposal)?
            .delta
    } else {
        Vec::new()
    };
    lap("what-if (Cluster::preview)", &mut timings);
    let (denied_after, denied) = replay(before, &after, observations);
    lap("replay", &mut timings);
    let inventory = before.inventory();
    let mut pod_wires = BTreeSet::new();
    let mut sides = Vec::new();
    for connection in observations.connections.keys() {
        for wire in wires(
            before,
            connection.src,
            connection.dst,
            connection.protocol,
            connection.port,
        ) {
            sides.push((
                Side::of(inventory, wire.src),
                Side::of(inventory, wire.dst),
                wire.protocol,
                wire.port,
            ));
            if let (Endpoint::Pod(src), Endpoint::Pod(dst)) = (wire.src, wire.dst) {
                pod_wires.insert((src, dst, wire.protocol, wire.port));
            }
        }
    }
    let mut ports: BTreeSet<ProbePort> = default_ports(inventory).into_iter().collect();
    ports.extend(
        pod_wires
            .iter()
            .map(|&(_, _, protocol, port)| ProbePort { protocol, port }),
    );
    let ports: Vec<ProbePort> = ports.into_iter().collect();
    let pods = inventory.pods().len() as u64;
    let allowed_pairs_before = allowed_pairs(before, &ports);
    let allowed_pairs_after = allowed_pairs(&after, &ports);
    lap("pairs x ports (class matrices)", &mut timings);
    let unobserved = unobserved(&after, &sides);
    lap("unobserved (connection list)", &mut timings);
    Ok(Proof {
        flows: observations.connections.values().sum(),
        connections: observations.connections.len(),
        denied_after,
        denied,
        allowed_pairs_all: pods * pods.saturating_sub(1) * ports.len() as u64,
        allowed_pairs_before,
        allowed_pairs_after,
        observed_pairs: pod_wires.len() as u64,
        unobserved,
        ports,
        pods: inventory.pods().len(),
        what_if,
        timings,
    })
}
