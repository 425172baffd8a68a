//! The advisor: least-privilege policies from observed traffic, proven by the engine before
//! anyone applies them (issue 15). Flows are mapped to endpoints by the [`Checker`] (the same
//! enrichment as `flows check`), aggregated into distinct connections ([`Observer`]), turned
//! into one policy per workload and direction ([`plan`]) and rendered as Kubernetes or Calico
//! documents ([`render`]); [`proof`] replays every observed connection through an engine
//! with the proposal in place and measures what the proposal still allows.
//!
//! ```text
//! Flow ──[Checker]──► CheckedFlow ──[Observer]──► Observations
//!      ──[plan]──► Plan ──[render]──► documents ──[proof: Engine, Cluster::preview]──► Proof
//! ```

mod cidr;
pub mod plan;
pub mod proof;
pub mod render;

pub use plan::{DefaultDeny, PeerPlan, Plan, PolicyPlan, RulePlan};
pub use proof::{Denied, Proof, Unobserved};
pub use render::Document;

use crate::check::{CheckStats, Checked, Checker};
use crate::{Flow, History, Observed};
use netfence_engine::{Cluster, Endpoint, Engine};
use netfence_model::{LoadErrors, Loader, Protocol};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// The policy language the proposal is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// `networking.k8s.io/v1` NetworkPolicy.
    Kubernetes,
    /// `projectcalico.org/v3` NetworkPolicy (or StagedNetworkPolicy).
    Calico,
    /// `cilium.io/v2` CiliumNetworkPolicy.
    Cilium,
}

/// How the advice is made.
#[derive(Clone, Debug)]
pub struct AdviseOptions {
    /// The policy language.
    pub style: Style,
    /// Calico only: write `StagedNetworkPolicy` (audited, not enforced, until promoted). The
    /// proof is computed as if they were enforced.
    pub staged: bool,
    /// Propose a full least-privilege set that replaces the policies of the proposal's
    /// language in the namespaces it covers, instead of adding only what the traffic needs
    /// beyond what is already allowed.
    pub replace: bool,
    /// Give every workload that gets an egress policy DNS (UDP and TCP 53) to the cluster's
    /// DNS pods (`k8s-app: kube-dns` in `kube-system`), observed or not: name lookups often
    /// go through a node-local cache or a Service address a capture attributes elsewhere.
    pub dns: bool,
}

impl Default for AdviseOptions {
    fn default() -> Self {
        AdviseOptions {
            style: Style::Kubernetes,
            staged: false,
            replace: false,
            dns: true,
        }
    }
}

/// The destination of an observed connection: an endpoint, or a Service (by index into the
/// inventory's Services) when the flow went to a cluster IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObservedTarget {
    /// A pod or an address.
    Endpoint(Endpoint),
    /// A Service's cluster IP.
    Service(usize),
}

/// A distinct observed connection (replies set aside).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObservedConnection {
    /// The source endpoint at the flow's time.
    pub src: Endpoint,
    /// The destination.
    pub dst: ObservedTarget,
    /// Protocol.
    pub protocol: Protocol,
    /// Destination port.
    pub port: u16,
}

/// What the observer set aside, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObserveStats {
    /// Flows kept as observed connections.
    pub flows: u64,
    /// Replies (not connections).
    pub replies: u64,
    /// Flows the log says were denied: traffic that does not work today is not advised.
    pub observed_denied: u64,
    /// Flows of protocols without ports (ICMP, …) or without a port: NetworkPolicy ports
    /// cannot name them.
    pub not_ported: u64,
    /// Flows from a pod to itself (always allowed).
    pub same_pod: u64,
}

/// The observed traffic: distinct connections with their flow counts.
#[derive(Clone, Debug, Default)]
pub struct Observations {
    /// Each distinct connection and how many flows carried it.
    pub connections: BTreeMap<ObservedConnection, u64>,
    /// What was set aside.
    pub stats: ObserveStats,
    /// Addresses of host-network pods seen in the traffic (their nodes'), with the pod.
    pub host_addresses: BTreeMap<IpAddr, String>,
}

/// Collects flows into [`Observations`], mapping each to endpoints with the [`Checker`].
/// Memory is the number of distinct connections, not of flows.
pub struct Observer<'e> {
    engine: &'e Engine,
    checker: Checker<'e>,
    services: HashMap<IpAddr, usize>,
    observations: Observations,
}

impl<'e> Observer<'e> {
    /// An observer over `engine` (today's cluster), with an optional pods history.
    pub fn new(engine: &'e Engine, history: Option<History>) -> Self {
        let mut services = HashMap::new();
        for (index, service) in engine.inventory().services.iter().enumerate() {
            for ip in &service.cluster_ips {
                services.entry(*ip).or_insert(index);
            }
        }
        Observer {
            engine,
            checker: Checker::new(engine, history),
            services,
            observations: Observations::default(),
        }
    }

    /// Add one flow.
    pub fn add(&mut self, flow: &Flow) {
        let stats = &mut self.observations.stats;
        let checked = match self.checker.check(flow) {
            Checked::Reply => {
                stats.replies += 1;
                return;
            }
            Checked::Judged(checked) => checked,
        };
        if checked.observed == Some(Observed::Deny) {
            stats.observed_denied += 1;
            return;
        }
        let (Some(protocol), Some(port)) = (checked.protocol.ported(), checked.port) else {
            stats.not_ported += 1;
            return;
        };
        // A host-network pod speaks with its node's address, which is what policy sees (an
        // ipBlock); the address in the log is the one to write.
        let inventory = self.engine.inventory();
        let mut host = |endpoint: Endpoint, ip: IpAddr| match endpoint {
            Endpoint::Pod(id) if inventory.pods()[id].host_network => {
                let key = inventory.pods()[id].key();
                self.observations.host_addresses.insert(ip, key);
                Endpoint::Address(ip)
            }
            other => other,
        };
        let src = host(checked.src, flow.src);
        let dst = host(checked.dst, flow.dst);
        let stats = &mut self.observations.stats;
        let dst = match dst {
            Endpoint::Address(ip) => match self.services.get(&ip) {
                Some(&index) => ObservedTarget::Service(index),
                None => ObservedTarget::Endpoint(dst),
            },
            Endpoint::Pod(_) => ObservedTarget::Endpoint(dst),
        };
        if dst == ObservedTarget::Endpoint(src) {
            stats.same_pod += 1;
            return;
        }
        stats.flows += 1;
        *self
            .observations
            .connections
            .entry(ObservedConnection {
                src,
                dst,
                protocol,
                port,
            })
            .or_default() += 1;
    }

    /// The checker's counts (history misses, verdicts asked).
    pub fn check_stats(&self) -> &CheckStats {
        self.checker.stats()
    }

    /// The observations.
    pub fn finish(self) -> Observations {
        self.observations
    }
}

/// Why no advice could be made.
#[derive(Debug, thiserror::Error)]
pub enum AdviseError {
    /// The proposal (or the cluster with it) did not load: a bug in the advisor, reported
    /// rather than hidden.
    #[error("the proposed policies do not load: {0}")]
    Proposal(LoadErrors),
}

/// The advice: the documents to apply and the proof.
#[derive(Clone, Debug)]
pub struct Advice {
    /// What was planned (policies, default denies, notes).
    pub plan: Plan,
    /// The documents, in output order: default denies first, then the policies by
    /// namespace, name.
    pub documents: Vec<Document>,
    /// Objects the proposal replaces (`--replace`): deleted in the proof and the what-if.
    pub replaces: Vec<String>,
    /// The proof.
    pub proof: Proof,
}

/// Advise on `cluster` (today's engine, built from `loader`'s objects) from `observations`
/// (made by an [`Observer`] over `cluster.engine()`).
pub fn advise(
    loader: &Loader,
    cluster: &Cluster,
    observations: &Observations,
    options: &AdviseOptions,
) -> Result<Advice, AdviseError> {
    let plan = plan::plan(loader, cluster, observations, options)?;
    let replaces = plan.replaced.iter().map(ToString::to_string).collect();
    let documents = render::documents(&plan, options.style, options.staged);
    let enforced = render::documents(&plan, options.style, false);
    let proof = proof::prove(loader, cluster, observations, &plan, &enforced)?;
    Ok(Advice {
        plan,
        documents,
        replaces,
        proof,
    })
}
