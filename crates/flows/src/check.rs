//! Enrichment and checking: each flow's addresses become endpoints at the flow's time (the
//! pods history first, then the inventory's real pod addresses, then the pod the log itself
//! names), replies are set aside, and the connection is judged by the engine, once per
//! distinct (source, destination, protocol, port): flows repeat, verdicts are cached.

use crate::history::{History, Holder};
use crate::{Flow, FlowProtocol, Observed, ObservedAt, PodHint, Reply};
use jiff::Timestamp;
use netfence_engine::{ConnectionClass, Endpoint, Engine, PolicyId, Verdict, VerdictIndex};
use netfence_model::aws::{pod_security_groups, AwsInput, SgDirection, SgSide};
use netfence_model::net::FastMap;
use netfence_model::Protocol;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

/// At most this many verdicts are cached; past it the cache starts again, so that memory stays
/// bounded when a log holds millions of distinct connections (a port scan).
pub const MAX_CACHED_VERDICTS: usize = 1 << 20;

/// Cache `value` under `key`, starting the cache again when it holds
/// [`MAX_CACHED_VERDICTS`] entries (every cache of the checker is bounded the same way).
fn remember<K: std::hash::Hash + Eq, V>(cache: &mut FastMap<K, V>, key: K, value: V) {
    if cache.len() >= MAX_CACHED_VERDICTS {
        cache.clear();
    }
    cache.insert(key, value);
}

/// What policy says of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Policy allows the connection.
    Allow,
    /// Policy denies the connection.
    Deny,
}

impl Judgement {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Judgement::Allow => "allow",
            Judgement::Deny => "deny",
        }
    }
}

/// A flow mapped to endpoints and judged.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedFlow {
    /// When the flow was seen.
    pub time: Option<Timestamp>,
    /// The source endpoint at that time.
    pub src: Endpoint,
    /// The destination endpoint at that time (a Service's cluster IP stays an address; the
    /// verdict is then the one through the Service).
    pub dst: Endpoint,
    /// The protocol.
    pub protocol: FlowProtocol,
    /// The destination port, for protocols with ports.
    pub port: Option<u16>,
    /// What the log says happened.
    pub observed: Option<Observed>,
    /// What policy says; `None` when the engine cannot judge the flow (a protocol without
    /// ports, which no TCP/UDP/SCTP model covers, or a ported flow with no port).
    pub policy: Option<Judgement>,
    /// The deciding policy as `Kind namespace/name` (`Kind name` when cluster-scoped); `None`
    /// when no policy decided (no policy selects either side).
    pub decided_by: Option<Arc<str>>,
    /// Observed allow and policy deny, or observed deny and policy allow. A flow observed at
    /// the source's egress ([`ObservedAt::Egress`]) is compared with the egress side alone.
    pub mismatch: bool,
}

/// The outcome of checking one flow.
#[derive(Clone, Debug, PartialEq)]
pub enum Checked {
    /// A reply: not judged as a connection.
    Reply,
    /// A connection, judged.
    Judged(CheckedFlow),
}

/// Counts kept while checking.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckStats {
    /// Flows judged (replies excluded).
    pub judged: u64,
    /// Replies set aside.
    pub replies: u64,
    /// Flows the engine cannot judge (protocol without ports, or no port).
    pub not_judged: u64,
    /// Mismatches.
    pub mismatches: u64,
    /// Flows whose address the history gives to a pod the inputs do not have (judged as the
    /// bare address).
    pub history_pods_missing: u64,
    /// Explanations the engine was asked for: one per distinct connection class between two
    /// pods (see [`ConnectionClass`]), one per distinct connection otherwise.
    pub verdicts: u64,
    /// Flows the security groups deny (with `--aws-security-groups`, VPC records only).
    pub security_group_denials: u64,
}

/// The other side of a connection as the engine is asked about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Target {
    Endpoint(Endpoint),
    /// A Service by its index in the inventory.
    Service(usize),
}

#[derive(Clone)]
struct Decision {
    allowed: bool,
    /// Whether the source's egress allows (true when the source is no pod).
    egress_allowed: bool,
    decided_by: Option<Arc<str>>,
}

/// (source, destination, protocol, port, IPv4): an address family's "anywhere" differs.
type GroupKey = (Endpoint, Endpoint, Protocol, u16, bool);

/// The security groups in the verdict path: which groups each endpoint's network interface
/// carries, and the verdicts already computed.
struct SecurityGroups {
    input: AwsInput,
    /// By pod id: the SecurityGroupPolicy groups, when one matches the pod.
    pod_groups: Vec<Option<Vec<String>>>,
    /// The nodes' groups: pods without their own groups use their node's interface.
    node_groups: Vec<String>,
    node_addresses: HashSet<IpAddr>,
    /// The deciding group text when denied; `None` inside when the groups allow or nothing
    /// was judged.
    cache: FastMap<GroupKey, Option<Arc<str>>>,
}

impl SecurityGroups {
    /// The groups on the interface `endpoint` sends from (empty: none known, not judged).
    fn groups(&self, endpoint: Endpoint) -> &[String] {
        match endpoint {
            // A pod without its own groups uses its node's interface (VPC CNI secondary
            // addresses; a host-network pod is the node).
            Endpoint::Pod(id) => self
                .pod_groups
                .get(id)
                .and_then(Option::as_deref)
                .unwrap_or(&self.node_groups),
            Endpoint::Address(ip) if self.node_addresses.contains(&ip) => &self.node_groups,
            Endpoint::Address(_) => &[],
        }
    }

    /// `Some(deciding group text)` when the groups drop a new connection.
    fn deny(
        &mut self,
        (src, src_ip): (Endpoint, IpAddr),
        (dst, dst_ip): (Endpoint, IpAddr),
        protocol: Protocol,
        port: u16,
    ) -> Option<Arc<str>> {
        let key = (src, dst, protocol, port, src_ip.is_ipv4());
        if let Some(cached) = self.cache.get(&key) {
            return cached.clone();
        }
        let verdict = self.input.connection(
            SgSide {
                groups: self.groups(src),
                address: src_ip,
            },
            SgSide {
                groups: self.groups(dst),
                address: dst_ip,
            },
            protocol,
            port,
        );
        let denied = match verdict {
            Some(Err(denial)) => Some(Arc::from(format!(
                "SecurityGroup {} ({})",
                denial.groups.join(","),
                match denial.direction {
                    SgDirection::Outbound => "outbound",
                    SgDirection::Inbound => "inbound",
                }
            ))),
            Some(Ok(())) | None => None,
        };
        remember(&mut self.cache, key, denied.clone());
        denied
    }
}

/// Checks flows against one engine.
pub struct Checker<'e> {
    engine: &'e Engine,
    /// The engine's address and class index: pod addresses by hash, and the connection
    /// classes that let one explanation serve every connection of a class.
    index: VerdictIndex<'e>,
    history: Option<History>,
    services_by_address: FastMap<IpAddr, usize>,
    cache: FastMap<(Endpoint, Target, Protocol, u16), Decision>,
    /// Decisions between two pods, per connection class.
    class_cache: FastMap<ConnectionClass, Decision>,
    policy_names: FastMap<PolicyId, Arc<str>>,
    security_groups: Option<SecurityGroups>,
    stats: CheckStats,
}

impl<'e> Checker<'e> {
    /// A checker over `engine`, with an optional pods history. Pod addresses resolve through
    /// the inventory's address index (real addresses only: a synthetic address was invented
    /// by the loader, and a host-network pod's address is its node's); the cluster-IP index
    /// is built once here.
    pub fn new(engine: &'e Engine, history: Option<History>) -> Self {
        let inventory = engine.inventory();
        let mut services_by_address = FastMap::default();
        for (index, service) in inventory.services.iter().enumerate() {
            for ip in &service.cluster_ips {
                services_by_address.entry(*ip).or_insert(index);
            }
        }
        Checker {
            engine,
            index: engine.verdict_index(),
            history,
            services_by_address,
            cache: FastMap::default(),
            class_cache: FastMap::default(),
            policy_names: FastMap::default(),
            security_groups: None,
            stats: CheckStats::default(),
        }
    }

    /// Put the security groups in the verdict path (DESIGN: "a connection must pass the
    /// security groups and the pod policy"): for flows whose log sees them
    /// ([`Flow::sees_security_groups`]), a connection the groups drop is judged `deny` with
    /// `decided_by` naming the groups. A pod matched by a SecurityGroupPolicy uses those
    /// groups; other pods and the nodes use the nodes' groups
    /// ([`AwsInput::node_interface_groups`]); addresses outside the cluster carry none. A
    /// flow to a Service's cluster IP is not judged by groups (the node rewrites it to a
    /// backend before it leaves).
    pub fn with_security_groups(mut self, input: AwsInput) -> Self {
        let inventory = self.engine.inventory();
        let pod_groups = pod_security_groups(inventory)
            .by_pod
            .into_iter()
            .map(|groups| groups.map(|g| g.groups))
            .collect();
        let node_addresses = inventory
            .nodes
            .iter()
            .flat_map(|node| node.addresses.iter().copied())
            .collect();
        self.security_groups = Some(SecurityGroups {
            node_groups: input.node_interface_groups(),
            input,
            pod_groups,
            node_addresses,
            cache: FastMap::default(),
        });
        self
    }

    /// The counts so far.
    pub fn stats(&self) -> &CheckStats {
        &self.stats
    }

    /// The endpoint `ip` was at `time`.
    pub fn endpoint(
        &mut self,
        ip: IpAddr,
        time: Option<Timestamp>,
        hint: Option<&PodHint>,
    ) -> Endpoint {
        let inventory = self.engine.inventory();
        if let Some(history) = &self.history {
            match history.holder(ip, time) {
                Holder::Pod(tenure) => {
                    return match inventory.pod_by_key(&tenure.namespace, &tenure.name) {
                        Some(id) => Endpoint::Pod(id),
                        None => {
                            self.stats.history_pods_missing += 1;
                            Endpoint::Address(ip)
                        }
                    };
                }
                Holder::Nobody => return Endpoint::Address(ip),
                Holder::NotListed => {}
            }
        }
        if let Some(id) = self.index.pod_by_ip(ip) {
            return Endpoint::Pod(id);
        }
        hint.and_then(|hint| inventory.pod_by_key(&hint.namespace, &hint.name))
            .map_or(Endpoint::Address(ip), Endpoint::Pod)
    }

    /// Whether `endpoint` is a pod that declares `port` for `protocol` (a server port).
    fn serves(&self, endpoint: Endpoint, protocol: Protocol, port: Option<u16>) -> bool {
        let (Endpoint::Pod(id), Some(port)) = (endpoint, port) else {
            return false;
        };
        self.engine.inventory().pods()[id]
            .ports
            .iter()
            .any(|declared| declared.port == port && declared.protocol == protocol)
    }

    /// Map one flow to endpoints and judge it.
    pub fn check(&mut self, flow: &Flow) -> Checked {
        if flow.reply == Reply::Yes {
            self.stats.replies += 1;
            return Checked::Reply;
        }
        let src = self.endpoint(flow.src, flow.time, flow.src_pod.as_ref());
        let dst = self.endpoint(flow.dst, flow.time, flow.dst_pod.as_ref());
        let service = match dst {
            Endpoint::Address(ip) => self.services_by_address.get(&ip).copied(),
            Endpoint::Pod(_) => None,
        };
        let ported = flow.protocol.ported();
        if let (Some(protocol), Reply::Unknown) = (ported, flow.reply) {
            // The log does not say which side opened the connection: the side whose port a
            // pod declares is the server, so a flow from a declared port to an undeclared one
            // is the server answering.
            let dst_serves = self.serves(dst, protocol, flow.dst_port)
                || service.is_some_and(|index| {
                    self.engine.inventory().services[index]
                        .ports
                        .iter()
                        .any(|p| p.protocol == protocol && Some(p.port) == flow.dst_port)
                });
            if !dst_serves && self.serves(src, protocol, flow.src_port) {
                self.stats.replies += 1;
                return Checked::Reply;
            }
        }
        self.stats.judged += 1;
        let mut checked = CheckedFlow {
            time: flow.time,
            src,
            dst,
            protocol: flow.protocol,
            port: flow.dst_port.filter(|_| ported.is_some()),
            observed: flow.observed,
            policy: None,
            decided_by: None,
            mismatch: false,
        };
        let (Some(protocol), Some(port)) = (ported, checked.port) else {
            self.stats.not_judged += 1;
            return Checked::Judged(checked);
        };
        let target = service.map_or(Target::Endpoint(dst), Target::Service);
        let decision = self.decide(src, target, protocol, port);
        let group_denial = match (&mut self.security_groups, target) {
            (Some(groups), Target::Endpoint(dst)) if flow.sees_security_groups => {
                groups.deny((src, flow.src), (dst, flow.dst), protocol, port)
            }
            _ => None,
        };
        if group_denial.is_some() {
            self.stats.security_group_denials += 1;
        }
        // The groups sit on the interface, before the pod's policy on the way in and after
        // it on the way out; either dropping the connection drops it. When both deny, the
        // groups are named: they are what a VPC record's REJECT reports.
        let allowed = decision.allowed && group_denial.is_none();
        checked.policy = Some(if allowed {
            Judgement::Allow
        } else {
            Judgement::Deny
        });
        checked.decided_by = group_denial.or(decision.decided_by);
        let compared = match flow.observed_at {
            Some(ObservedAt::Egress) => decision.egress_allowed,
            Some(ObservedAt::Ingress) | None => allowed,
        };
        checked.mismatch = matches!(
            (checked.observed, compared),
            (Some(Observed::Allow), false) | (Some(Observed::Deny), true)
        );
        if checked.mismatch {
            self.stats.mismatches += 1;
        }
        Checked::Judged(checked)
    }

    fn decide(&mut self, src: Endpoint, target: Target, protocol: Protocol, port: u16) -> Decision {
        // Two pods: one explanation per connection class (the engine's classes: pods every
        // policy treats alike, ports every port condition treats alike).
        if let (Endpoint::Pod(a), Target::Endpoint(Endpoint::Pod(b))) = (src, target) {
            if let Some(class) = self.index.connection_class(a, b, protocol, port) {
                if let Some(decision) = self.class_cache.get(&class) {
                    return decision.clone();
                }
                let decision = self.explain(src, target, protocol, port);
                remember(&mut self.class_cache, class, decision.clone());
                return decision;
            }
        }
        let key = (src, target, protocol, port);
        if let Some(decision) = self.cache.get(&key) {
            return decision.clone();
        }
        let decision = self.explain(src, target, protocol, port);
        remember(&mut self.cache, key, decision.clone());
        decision
    }

    /// `Kind namespace/name` of a policy, made once per policy.
    fn policy_name(&mut self, id: Option<PolicyId>) -> Option<Arc<str>> {
        let id = id?;
        if let Some(name) = self.policy_names.get(&id) {
            return Some(Arc::clone(name));
        }
        let policy = self.engine.policy(id)?;
        let name: Arc<str> = Arc::from(format!("{} {}", policy.kind, policy.name));
        self.policy_names.insert(id, Arc::clone(&name));
        Some(name)
    }

    /// Ask the engine (not cached).
    fn explain(
        &mut self,
        src: Endpoint,
        target: Target,
        protocol: Protocol,
        port: u16,
    ) -> Decision {
        self.stats.verdicts += 1;
        match target {
            Target::Endpoint(dst) => {
                let decision = self.engine.decide(src, dst, protocol, port);
                Decision {
                    allowed: decision.allowed,
                    egress_allowed: decision.egress.allowed,
                    decided_by: self.policy_name(decision.deciding_policy()),
                }
            }
            Target::Service(index) => {
                let service = &self.engine.inventory().services[index];
                let answer = self
                    .engine
                    .explain_via_service(src, service, protocol, port);
                let allowed = answer.allowed();
                // Denied: the first backend that denies says why; allowed: the first backend.
                let decider = answer
                    .backends
                    .iter()
                    .find(|backend| backend.verdict.allowed == allowed);
                // Egress is judged per backend (the destination after kube-proxy's rewrite).
                let egress_allowed = answer.backends.iter().all(|b| b.verdict.egress.allowed);
                Decision {
                    allowed,
                    egress_allowed,
                    decided_by: self
                        .policy_name(decider.and_then(|backend| backend.verdict.deciding_policy())),
                }
            }
        }
    }
}

/// The policy that decided a verdict (see [`Verdict::deciding_policy`]), as `Kind
/// namespace/name` (`Kind name` when cluster-scoped). `None` when no policy decided either
/// side.
pub fn decided_by(engine: &Engine, verdict: &Verdict) -> Option<String> {
    verdict
        .deciding_policy()
        .and_then(|id| engine.policy(id))
        .map(|policy| format!("{} {}", policy.kind, policy.name))
}
