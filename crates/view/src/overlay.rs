//! Observed traffic over the allowed graph (`netfence serve` with flow inputs): flows judged
//! by `netfence_flows::Checker` aggregated per (source node, destination node, port), with
//! the flows whose log disagrees with policy counted as mismatches.

use crate::data::{ObservedEdge, ViewData};
use netfence_engine::{Endpoint, Engine};
use netfence_flows::{CheckedFlow, Judgement};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// Most distinct observed edges kept; past it further edges are counted, not kept.
pub const MAX_OBSERVED_EDGES: usize = 100_000;

/// Aggregates judged flows into [`ObservedEdge`]s.
pub struct Overlay {
    by_label: HashMap<String, usize>,
    ranges: Vec<(IpAddr, IpAddr, usize)>,
    edges: BTreeMap<(String, String, String), ObservedEdge>,
    dropped: u64,
}

impl Overlay {
    /// An empty overlay for the nodes of `data`.
    pub fn new(data: &ViewData) -> Self {
        let mut by_label = HashMap::new();
        let mut ranges = Vec::new();
        for (i, node) in data.nodes.iter().enumerate() {
            if node.ns.is_some() {
                by_label.insert(node.label.clone(), i);
            } else if let Some((first, last)) = node.id.split_once('-') {
                if let (Ok(first), Ok(last)) = (first.parse(), last.parse()) {
                    ranges.push((first, last, i));
                }
            }
        }
        Overlay {
            by_label,
            ranges,
            edges: BTreeMap::new(),
            dropped: 0,
        }
    }

    /// The node an endpoint belongs to, and its name.
    fn node(&self, engine: &Engine, endpoint: Endpoint) -> (Option<usize>, String) {
        match endpoint {
            Endpoint::Pod(id) => {
                let workload = &engine.inventory().pods()[id].workload;
                (
                    self.by_label.get(&workload.to_string()).copied(),
                    format!("{}/{}", workload.namespace, workload.name),
                )
            }
            Endpoint::Address(ip) => (
                self.ranges
                    .iter()
                    .find(|(first, last, _)| *first <= ip && ip <= *last)
                    .map(|r| r.2),
                ip.to_string(),
            ),
        }
    }

    /// Count one judged flow.
    pub fn add(&mut self, engine: &Engine, flow: &CheckedFlow) {
        let (src, src_name) = self.node(engine, flow.src);
        let (dst, dst_name) = self.node(engine, flow.dst);
        let protocol = flow.protocol.to_string();
        let port = match flow.port {
            Some(port) => format!("{protocol}/{port}"),
            None => protocol,
        };
        let policy = match flow.policy {
            Some(Judgement::Allow) => "allow",
            Some(Judgement::Deny) => "deny",
            None => "none",
        };
        let key = (src_name.clone(), dst_name.clone(), port.clone());
        if !self.edges.contains_key(&key) && self.edges.len() >= MAX_OBSERVED_EDGES {
            self.dropped += 1;
            return;
        }
        let edge = self.edges.entry(key).or_insert_with(|| ObservedEdge {
            src,
            dst,
            src_name,
            dst_name,
            port,
            flows: 0,
            mismatches: 0,
            policy: policy.to_string(),
            decided_by: flow.decided_by.as_deref().map(str::to_string),
        });
        edge.flows += 1;
        edge.mismatches += u64::from(flow.mismatch);
    }

    /// The observed edges (sorted by source, destination, port) and how many flows did not
    /// fit under [`MAX_OBSERVED_EDGES`].
    pub fn finish(self) -> (Vec<ObservedEdge>, u64) {
        (self.edges.into_values().collect(), self.dropped)
    }
}
