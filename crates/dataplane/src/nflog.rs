//! Deny logs: every packet a netfence rule logs, read back from the kernel and named by the
//! policy that dropped it (aws-network-policy-agent's decision logs say only "DENY", its #664
//! asks for the policy's name).
//!
//! The table's `log` statements send to NFLOG group [`LOG_GROUP`] (`log prefix "…" group
//! 28262`); [`start`] binds that group on a `NETLINK_NETFILTER` socket opened inside the
//! agent's network namespace (`NFNL_SUBSYS_ULOG`: an `NFULNL_MSG_CONFIG` bind, then copy mode
//! `NFULNL_COPY_PACKET` with the first 128 bytes of each packet and per-instance sequence
//! numbers; layouts from linux/include/uapi/linux/netfilter/nfnetlink_log.h, behaviour from
//! net/netfilter/nfnetlink_log.c) and turns each `NFULNL_MSG_PACKET` into a [`Record`]: time,
//! addresses, ports, protocol, the pods by name, the verdict and the policy.
//!
//! **The prefix scheme.** A log prefix holds at most 127 bytes, too few for a policy's kind,
//! namespace and name (253 + 63 bytes) and its tier and rule. So every logging rule's prefix
//! starts with a fixed part, `netfence <Deny|Log|drop> <id>`, where `<id>` is 16 hex digits
//! of a hash of what the rule stands for ([`LogSource`]: direction, tier, the policy's kind,
//! namespace and name and the rule's index and action, or for a tier's closing drop the tier's
//! policies that select the endpoint), followed by readable text cut to fit (`Ingress
//! default/x/deny rule 0`). The renderer records each id's [`LogSource`] in
//! [`Ruleset::logs`](crate::Ruleset::logs); the agent hands the map of the ruleset in force
//! (and of the one before, for packets logged during an update) to [`Labels`], which the
//! reader consults. The id is a content hash, not a counter, so a rule's prefix, and the
//! content-named chain that holds it, do not change when other policies do. The guard's and
//! the fail-closed table's drops carry fixed prefixes (`netfence new pod`, `netfence
//! fail-closed`).
//!
//! **Flood control.** The reader prints at most `rate` lines a second (a token bucket, one
//! second of burst); beyond that it stops reading until a token is due, so the kernel drops
//! the log messages that no longer fit the socket buffer instead of the agent spending CPU
//! on them. Messages read but not printed, and those the kernel dropped (gaps in the
//! sequence numbers), are counted as suppressed in [`DenyLogStats`] (`/metrics`).

use crate::netlink::socket::Socket;
use crate::nft::DataplaneError;
pub use crate::rule::LOG_GROUP;
use netfence_engine::ir::{Policy, PolicySource};
use netfence_model::calico::CalicoScope;
use netfence_model::{Inventory, Pod, PodsByAddress, PolicyType};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A policy object, as a log line names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyRef {
    /// `NetworkPolicy`, `AdminNetworkPolicy`, `Calico GlobalNetworkPolicy`, ….
    pub kind: String,
    /// The namespace of a namespaced policy.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

impl PolicyRef {
    /// The object a compiled policy came from (its [`PolicySource`], from
    /// [`netfence_engine::ir::Tier::sources`]).
    pub fn of(inventory: &Inventory, policy: &Policy, source: PolicySource) -> PolicyRef {
        let kind = policy.kind.to_string();
        let from = |namespace: Option<&str>, name: &str| PolicyRef {
            kind: kind.clone(),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        };
        let found = match source {
            PolicySource::NetworkPolicy(i) => inventory
                .network_policies
                .get(i)
                .map(|p| from(Some(&p.namespace), &p.name)),
            PolicySource::Calico(i) => inventory.calico_policies.get(i).map(|p| match &p.scope {
                CalicoScope::Namespace(ns) => from(Some(ns), &p.name),
                CalicoScope::Global { .. } => from(None, &p.name),
            }),
            PolicySource::Admin(i) => inventory.admin_policies.get(i).map(|p| from(None, &p.name)),
            PolicySource::Cilium(i) => inventory
                .cilium_policies
                .get(i)
                .map(|p| from(p.namespace.as_deref(), &p.name)),
        };
        found.unwrap_or_else(|| match policy.name.split_once('/') {
            Some((ns, name)) => from(Some(ns), name),
            None => from(None, &policy.name),
        })
    }
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Which rule of a tier logged.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LogRule {
    /// A policy's rule (action `Deny` or `Log`).
    Rule {
        /// The policy.
        policy: PolicyRef,
        /// The rule's index in the policy's rules of the direction.
        index: usize,
        /// `Deny` or `Log`.
        action: String,
    },
    /// The tier's closing drop: these policies select the endpoint and none allowed.
    EndOfTier {
        /// The tier's policies that select the endpoint, in order.
        policies: Vec<PolicyRef>,
    },
}

/// What a logging rule stands for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LogSource {
    /// The direction of the endpoint's chain.
    pub direction: PolicyType,
    /// The tier.
    pub tier: String,
    /// The rule.
    pub rule: LogRule,
}

impl LogSource {
    /// The id in the log prefix: 16 hex digits of a stable hash of the fields.
    pub fn id(&self) -> String {
        let mut text = format!("{}\0{}\0", self.direction, self.tier);
        let mut policy = |p: &PolicyRef| {
            text.push_str(&format!(
                "{}\0{}\0{}\0",
                p.kind,
                p.namespace.as_deref().unwrap_or(""),
                p.name
            ));
        };
        match &self.rule {
            LogRule::Rule {
                policy: p,
                index,
                action,
            } => {
                policy(p);
                text.push_str(&format!("rule\0{index}\0{action}"));
            }
            LogRule::EndOfTier { policies } => {
                policies.iter().for_each(&mut policy);
                text.push_str("end");
            }
        }
        format!("{:016x}", netfence_model::net::stable_hash(text.bytes()))
    }

    /// The policies it names.
    pub fn policies(&self) -> Vec<&PolicyRef> {
        match &self.rule {
            LogRule::Rule { policy, .. } => vec![policy],
            LogRule::EndOfTier { policies } => policies.iter().collect(),
        }
    }
}

/// What the reader names packets by: the log ids of the ruleset in force (and of the one
/// before it, for packets logged while an update lands) and the pods' addresses. The agent
/// updates it; the reader thread reads it.
#[derive(Debug, Default)]
pub struct Labels {
    state: Mutex<LabelState>,
}

#[derive(Debug, Default)]
struct LabelState {
    current: BTreeMap<String, LogSource>,
    previous: BTreeMap<String, LogSource>,
    pods: PodsByAddress,
}

impl Labels {
    /// The log ids of the ruleset now in force.
    pub fn set_rules(&self, logs: &BTreeMap<String, LogSource>) {
        if let Ok(mut state) = self.state.lock() {
            if state.current != *logs {
                state.previous = std::mem::replace(&mut state.current, logs.clone());
            }
        }
    }

    /// The pods of the current state, by address (host-network pods and template addresses
    /// are left out: their address is not theirs alone). A snapshot of the inventory's own
    /// address index, shared, not copied: constant time per change, whatever the cluster's
    /// size; an address is looked up (a binary search) only when a packet names it.
    pub fn set_pods(&self, inventory: &Inventory) {
        let pods = inventory.pods_by_address();
        if let Ok(mut state) = self.state.lock() {
            state.pods = pods;
        }
    }

    fn name(
        &self,
        prefix: &str,
        src: IpAddr,
        dst: IpAddr,
    ) -> (Cause, Option<String>, Option<String>) {
        let Ok(state) = self.state.lock() else {
            return (Cause::Unknown(prefix.to_string()), None, None);
        };
        let cause = match parse_prefix(prefix) {
            Prefix::Rule { id, .. } => state
                .current
                .get(id)
                .or_else(|| state.previous.get(id))
                .map(|s| Cause::Rule(s.clone()))
                .unwrap_or_else(|| Cause::Unknown(prefix.to_string())),
            Prefix::NewPod => Cause::NewPod,
            Prefix::FailClosed => Cause::FailClosed,
            Prefix::Other => Cause::Unknown(prefix.to_string()),
        };
        (
            cause,
            state.pods.pod(src).map(Pod::key),
            state.pods.pod(dst).map(Pod::key),
        )
    }
}

/// A log prefix, read.
#[derive(Debug, PartialEq, Eq)]
enum Prefix<'a> {
    /// `netfence <Deny|Log|drop> <id> …`.
    Rule { action: &'a str, id: &'a str },
    /// `netfence new pod`.
    NewPod,
    /// `netfence fail-closed`.
    FailClosed,
    /// Anything else.
    Other,
}

fn parse_prefix(prefix: &str) -> Prefix<'_> {
    let Some(rest) = prefix.strip_prefix("netfence ") else {
        return Prefix::Other;
    };
    if rest.starts_with("new pod") {
        return Prefix::NewPod;
    }
    if rest.starts_with("fail-closed") {
        return Prefix::FailClosed;
    }
    let mut words = rest.split(' ');
    match (words.next(), words.next()) {
        (Some(action @ ("Deny" | "Log" | "drop")), Some(id))
            if id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Prefix::Rule { action, id }
        }
        _ => Prefix::Other,
    }
}

/// Why a packet was logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// A rule of the ruleset.
    Rule(LogSource),
    /// The guard: a local pod the ruleset does not know yet.
    NewPod,
    /// The fail-closed table (no ruleset could be rendered yet).
    FailClosed,
    /// A prefix no ruleset in force knows (the raw prefix).
    Unknown(String),
}

/// One logged packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The packet's kernel timestamp when it carries one, else when the reader read it (the
    /// kernel batches for at most 0.1 s).
    pub time: jiff::Timestamp,
    /// `drop`, or `log` for a Log rule (the packet goes on).
    pub verdict: &'static str,
    /// The IP protocol number.
    pub protocol: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (TCP, UDP, SCTP).
    pub src_port: Option<u16>,
    /// Destination port (TCP, UDP, SCTP).
    pub dst_port: Option<u16>,
    /// ICMP type and code.
    pub icmp: Option<(u8, u8)>,
    /// The source pod (`namespace/name`).
    pub src_pod: Option<String>,
    /// The destination pod.
    pub dst_pod: Option<String>,
    /// Why.
    pub cause: Cause,
}

/// A protocol's name in log lines.
pub fn protocol_name(protocol: u8) -> String {
    match protocol {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        132 => "SCTP".into(),
        other => format!("protocol {other}"),
    }
}

fn endpoint(ip: IpAddr, port: Option<u16>) -> String {
    match (ip, port) {
        (IpAddr::V6(v6), Some(port)) => format!("[{v6}]:{port}"),
        (ip, Some(port)) => format!("{ip}:{port}"),
        (ip, None) => ip.to_string(),
    }
}

impl Record {
    /// The time in UTC, to the millisecond, always three digits
    /// (`2026-12-03T01:39:26.870Z`).
    pub fn time_text(&self) -> String {
        self.time.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }

    /// What the cause says, as the text line ends.
    pub fn cause_text(&self) -> String {
        match &self.cause {
            Cause::Rule(source) => match &source.rule {
                LogRule::Rule {
                    policy,
                    index,
                    action,
                } => format!(
                    "{} {} by {policy} rule {index} (tier {})",
                    source.direction,
                    if action == "Log" { "logged" } else { "denied" },
                    source.tier
                ),
                LogRule::EndOfTier { policies } => format!(
                    "{} not allowed by {} (end of tier {})",
                    source.direction,
                    policies
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    source.tier
                ),
            },
            Cause::NewPod => "new pod, its rules are not in yet".into(),
            Cause::FailClosed => "the agent fails closed (no ruleset yet)".into(),
            Cause::Unknown(prefix) => {
                format!("log prefix {prefix:?} (no ruleset in force knows it)")
            }
        }
    }

    /// One JSON object (a line of `--log-format json`).
    pub fn json(&self) -> serde_json::Value {
        let side = |ip: IpAddr, port: Option<u16>, pod: &Option<String>| serde_json::json!({"ip": ip.to_string(), "port": port, "pod": pod});
        let (reason, direction, tier, policies, rule, action) = match &self.cause {
            Cause::Rule(source) => {
                let policies: Vec<serde_json::Value> = source
                    .policies()
                    .iter()
                    .map(|p| serde_json::json!({"kind": p.kind, "namespace": p.namespace, "name": p.name}))
                    .collect();
                match &source.rule {
                    LogRule::Rule { index, action, .. } => (
                        "rule",
                        Some(source.direction.to_string()),
                        Some(source.tier.clone()),
                        policies,
                        Some(*index),
                        Some(action.clone()),
                    ),
                    LogRule::EndOfTier { .. } => (
                        "end_of_tier",
                        Some(source.direction.to_string()),
                        Some(source.tier.clone()),
                        policies,
                        None,
                        None,
                    ),
                }
            }
            Cause::NewPod => ("new_pod", None, None, Vec::new(), None, None),
            Cause::FailClosed => ("fail_closed", None, None, Vec::new(), None, None),
            Cause::Unknown(_) => ("unknown", None, None, Vec::new(), None, None),
        };
        let mut value = serde_json::json!({
            "time": self.time_text(),
            "verdict": self.verdict,
            "protocol": protocol_name(self.protocol),
            "src": side(self.src, self.src_port, &self.src_pod),
            "dst": side(self.dst, self.dst_port, &self.dst_pod),
            "reason": reason,
            "direction": direction,
            "tier": tier,
            "policies": policies,
            "rule": rule,
            "action": action,
        });
        if let Some((t, c)) = self.icmp {
            value["icmp"] = serde_json::json!({"type": t, "code": c});
        }
        if let Cause::Unknown(prefix) = &self.cause {
            value["prefix"] = serde_json::json!(prefix);
        }
        value
    }
}

/// The agent's log line: `netfence deny: <time> <verdict> <PROTO> <src> (<pod>) -> <dst>
/// (<pod>): <direction> denied by <Kind> <namespace>/<name> rule <n> (tier <tier>)`.
impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pod = |p: &Option<String>| p.as_ref().map(|p| format!(" ({p})")).unwrap_or_default();
        write!(
            f,
            "netfence deny: {} {} {} {}{} -> {}{}",
            self.time_text(),
            self.verdict,
            protocol_name(self.protocol),
            endpoint(self.src, self.src_port),
            pod(&self.src_pod),
            endpoint(self.dst, self.dst_port),
            pod(&self.dst_pod),
        )?;
        if let Some((t, c)) = self.icmp {
            write!(f, " type {t} code {c}")?;
        }
        write!(f, ": {}", self.cause_text())
    }
}

/// Counters of the reader, for `/metrics`.
#[derive(Debug, Default)]
pub struct DenyLogStats {
    /// Lines written.
    pub logged: AtomicU64,
    /// Logged packets not written: over the rate, or dropped by the kernel while the reader
    /// held back (sequence gaps).
    pub suppressed: AtomicU64,
}

impl DenyLogStats {
    /// Prometheus text for these counters.
    pub fn exposition(&self) -> String {
        format!(
            "# HELP netfence_agent_deny_log_lines_total Packets the netfence table logged (NFLOG group {LOG_GROUP}), by whether the agent wrote a line for them or suppressed it (over --deny-log-rate, or lost in the kernel while it held back).\n# TYPE netfence_agent_deny_log_lines_total counter\nnetfence_agent_deny_log_lines_total{{outcome=\"logged\"}} {}\nnetfence_agent_deny_log_lines_total{{outcome=\"suppressed\"}} {}\n",
            self.logged.load(Ordering::Relaxed),
            self.suppressed.load(Ordering::Relaxed)
        )
    }
}

// nfnetlink_log: NFNL_SUBSYS_ULOG and its message types, attributes and config commands.
const SUBSYS_ULOG: u16 = 4;
const MSG_PACKET: u16 = 0;
const MSG_CONFIG: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const F_REQUEST: u16 = 0x1;
const F_ACK: u16 = 0x4;
const ATTR_PREFIX: u16 = 10;
const ATTR_TIMESTAMP: u16 = 3;
const ATTR_PAYLOAD: u16 = 9;
const ATTR_SEQ: u16 = 11;
const CFG_CMD: u16 = 1;
const CFG_MODE: u16 = 2;
const CFG_TIMEOUT: u16 = 4;
const CFG_QTHRESH: u16 = 5;
const CFG_FLAGS: u16 = 6;
const CMD_BIND: u8 = 1;
const COPY_PACKET: u8 = 2;
const CFG_F_SEQ: u16 = 0x1;
/// Bytes of each packet copied: the IPv6 header and the transport ports fit.
const COPY_RANGE: u32 = 128;

fn attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    buf.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// An `NFULNL_MSG_CONFIG` for `group` with the given attributes, asking for an ack.
fn config_message(seq: u32, group: u16, attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut buf = Vec::new();
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&((SUBSYS_ULOG << 8) | MSG_CONFIG).to_ne_bytes());
    buf.extend_from_slice(&(F_REQUEST | F_ACK).to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: AF_UNSPEC, version 0, the group as res_id (big-endian).
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&group.to_be_bytes());
    for (kind, value) in attrs {
        attr(&mut buf, *kind, value);
    }
    let len = buf.len() as u32;
    buf[..4].copy_from_slice(&len.to_ne_bytes());
    buf
}

fn u16_at(data: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([data[at], data[at + 1]])
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

fn be32(data: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(..4)?.try_into().ok()?))
}

fn be64(data: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(data.get(..8)?.try_into().ok()?))
}

/// Send one config message and read its ack.
fn configure(
    socket: &mut Socket,
    seq: u32,
    group: u16,
    attrs: &[(u16, Vec<u8>)],
) -> std::io::Result<()> {
    socket.send(&config_message(seq, group, attrs))?;
    let mut buffer = vec![0u8; 8192];
    loop {
        let data = socket.receive(&mut buffer)?;
        let mut at = 0;
        while at + 16 <= data.len() {
            let len = u32_at(data, at) as usize;
            if len < 16 || at + len > data.len() {
                break;
            }
            if u16_at(data, at + 4) == NLMSG_ERROR && len >= 20 && u32_at(data, at + 8) == seq {
                let errno = -(u32_at(data, at + 16) as i32);
                return match errno {
                    0 => Ok(()),
                    errno => Err(std::io::Error::from_raw_os_error(errno)),
                };
            }
            at += (len + 3) & !3;
        }
    }
}

/// One `NFULNL_MSG_PACKET`, as read.
#[derive(Debug, Default, PartialEq, Eq)]
struct Logged {
    prefix: String,
    time: Option<jiff::Timestamp>,
    payload: Vec<u8>,
    seq: Option<u32>,
}

/// The packet messages of one datagram.
fn parse_datagram(data: &[u8]) -> Vec<Logged> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= data.len() {
        let len = u32_at(data, at) as usize;
        if len < 16 || at + len > data.len() {
            break;
        }
        if u16_at(data, at + 4) == (SUBSYS_ULOG << 8) | MSG_PACKET && len >= 20 {
            let mut logged = Logged::default();
            let mut a = at + 20;
            while a + 4 <= at + len {
                let alen = u16_at(data, a) as usize;
                let kind = u16_at(data, a + 2) & 0x3fff;
                if alen < 4 || a + alen > at + len {
                    break;
                }
                let value = &data[a + 4..a + alen];
                match kind {
                    ATTR_PREFIX => {
                        let text = value.split(|b| *b == 0).next().unwrap_or_default();
                        logged.prefix = String::from_utf8_lossy(text).into_owned();
                    }
                    ATTR_TIMESTAMP => {
                        logged.time = be64(value).zip(value.get(8..).and_then(be64)).and_then(
                            |(sec, usec)| {
                                let micros = i64::try_from(sec).ok()?.checked_mul(1_000_000)?
                                    + i64::try_from(usec).ok()?;
                                jiff::Timestamp::from_microsecond(micros).ok()
                            },
                        );
                    }
                    ATTR_PAYLOAD => logged.payload = value.to_vec(),
                    ATTR_SEQ => logged.seq = be32(value),
                    _ => {}
                }
                a += (alen + 3) & !3;
            }
            out.push(logged);
        }
        at += (len + 3) & !3;
    }
    out
}

/// Addresses, protocol, ports or ICMP type/code of an IP packet's first bytes.
struct Headers {
    protocol: u8,
    src: IpAddr,
    dst: IpAddr,
    ports: Option<(u16, u16)>,
    icmp: Option<(u8, u8)>,
}

fn headers(packet: &[u8]) -> Option<Headers> {
    let (protocol, src, dst, transport) = match packet.first()? >> 4 {
        4 => {
            let ihl = usize::from(packet.first()? & 0x0f) * 4;
            let fragment_offset = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]) & 0x1fff;
            let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            let transport = if fragment_offset == 0 {
                packet.get(ihl..).unwrap_or_default()
            } else {
                &[]
            };
            (
                *packet.get(9)?,
                IpAddr::V4(Ipv4Addr::from(src)),
                IpAddr::V4(Ipv4Addr::from(dst)),
                transport,
            )
        }
        6 => {
            let src: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
            (
                *packet.get(6)?,
                IpAddr::V6(Ipv6Addr::from(src)),
                IpAddr::V6(Ipv6Addr::from(dst)),
                packet.get(40..).unwrap_or_default(),
            )
        }
        _ => return None,
    };
    let ports = match protocol {
        6 | 17 | 132 if transport.len() >= 4 => Some((
            u16::from_be_bytes([transport[0], transport[1]]),
            u16::from_be_bytes([transport[2], transport[3]]),
        )),
        _ => None,
    };
    let icmp = match protocol {
        1 | 58 if transport.len() >= 2 => Some((transport[0], transport[1])),
        _ => None,
    };
    Some(Headers {
        protocol,
        src,
        dst,
        ports,
        icmp,
    })
}

/// `logged` as a record, named through `labels`.
fn record(logged: &Logged, labels: &Labels) -> Option<Record> {
    let h = headers(&logged.payload)?;
    let (cause, src_pod, dst_pod) = labels.name(&logged.prefix, h.src, h.dst);
    let verdict = match parse_prefix(&logged.prefix) {
        Prefix::Rule { action: "Log", .. } => "log",
        _ => "drop",
    };
    Some(Record {
        time: logged.time.unwrap_or_else(jiff::Timestamp::now),
        verdict,
        protocol: h.protocol,
        src: h.src,
        dst: h.dst,
        src_port: h.ports.map(|p| p.0),
        dst_port: h.ports.map(|p| p.1),
        icmp: h.icmp,
        src_pod,
        dst_pod,
        cause,
    })
}

/// At most `rate` a second, one second of burst.
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Bucket {
        let rate = f64::from(rate.max(1));
        Bucket {
            rate,
            tokens: rate,
            at: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.at = now;
    }

    fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token is due.
    fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        Duration::from_secs_f64(((1.0 - self.tokens) / self.rate).max(0.0))
    }
}

/// What the reader hands its sink.
#[derive(Debug)]
pub enum DenyLogEvent {
    /// A logged packet (within the rate).
    Record(Box<Record>),
    /// The reader failed and stopped.
    Failed(String),
}

/// Bind NFLOG group [`LOG_GROUP`] inside `netns` (the current namespace when `None`) and
/// read it on a thread of its own until `keep_going` says no (checked at least every 200
/// ms), handing at most `rate` records a second to `sink`. An error binds nothing: the
/// group is taken by another socket of the namespace (`EPERM`), or no netlink socket.
pub fn start(
    netns: Option<&str>,
    labels: Arc<Labels>,
    stats: Arc<DenyLogStats>,
    rate: u32,
    keep_going: impl Fn() -> bool + Send + 'static,
    mut sink: impl FnMut(DenyLogEvent) + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, DataplaneError> {
    let failed = |what: &str, e: std::io::Error| {
        // nfnetlink_log.c refuses a group bound by another socket with EPERM (EBUSY when
        // the same socket binds twice).
        let hint = if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EBUSY)) {
            " (another process of the network namespace reads this group)"
        } else {
            ""
        };
        DataplaneError::Other(format!(
            "deny log: NFLOG group {LOG_GROUP}{}: {what}: {e}{hint}",
            netns
                .map(|n| format!(" in network namespace {n}"))
                .unwrap_or_default()
        ))
    };
    let mut socket = Socket::open(netns).map_err(|e| failed("netlink socket", e))?;
    socket
        .set_receive_timeout(Duration::from_secs(5))
        .map_err(|e| failed("socket timeout", e))?;
    configure(&mut socket, 1, LOG_GROUP, &[(CFG_CMD, vec![CMD_BIND])])
        .map_err(|e| failed("bind", e))?;
    let mut mode = COPY_RANGE.to_be_bytes().to_vec();
    mode.extend_from_slice(&[COPY_PACKET, 0]);
    configure(
        &mut socket,
        2,
        LOG_GROUP,
        &[
            (CFG_MODE, mode),
            (CFG_FLAGS, CFG_F_SEQ.to_be_bytes().to_vec()),
            // Batch up to 32 packets or 0.1 s (the kernel's defaults: 100 packets or 1 s).
            (CFG_QTHRESH, 32u32.to_be_bytes().to_vec()),
            (CFG_TIMEOUT, 10u32.to_be_bytes().to_vec()),
        ],
    )
    .map_err(|e| failed("configure", e))?;
    socket
        .set_receive_timeout(Duration::from_millis(200))
        .map_err(|e| failed("socket timeout", e))?;
    // Room for a burst while the reader holds back; beyond it the kernel drops (counted
    // through the sequence numbers).
    let _ = socket.set_receive_buffer(1 << 20);
    std::thread::Builder::new()
        .name("netfence-deny-log".into())
        .spawn(move || {
            let mut buffer = vec![0u8; 1 << 18];
            let mut bucket = Bucket::new(rate);
            let mut next_seq: Option<u32> = None;
            while keep_going() {
                let wait = bucket.wait(Instant::now());
                if !wait.is_zero() {
                    // Over the rate: let the kernel hold (and drop) the flood meanwhile.
                    std::thread::sleep(wait.min(Duration::from_millis(200)));
                    continue;
                }
                let data = match socket.receive(&mut buffer) {
                    Ok(data) => data,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::Interrupted
                        ) =>
                    {
                        continue
                    }
                    // The socket overflowed: the gap in the sequence numbers counts the loss.
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
                    Err(e) => {
                        sink(DenyLogEvent::Failed(format!(
                            "deny log: reading NFLOG group {LOG_GROUP}: {e}"
                        )));
                        return;
                    }
                };
                for logged in parse_datagram(data) {
                    if let (Some(seq), Some(expected)) = (logged.seq, next_seq) {
                        let gap = seq.wrapping_sub(expected);
                        if gap < u32::MAX / 2 {
                            stats
                                .suppressed
                                .fetch_add(u64::from(gap), Ordering::Relaxed);
                        }
                    }
                    if let Some(seq) = logged.seq {
                        next_seq = Some(seq.wrapping_add(1));
                    }
                    let Some(record) = record(&logged, &labels) else {
                        continue;
                    };
                    if bucket.take(Instant::now()) {
                        stats.logged.fetch_add(1, Ordering::Relaxed);
                        sink(DenyLogEvent::Record(Box::new(record)));
                    } else {
                        stats.suppressed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
        .map_err(|e| failed("thread", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet_message(prefix: &str, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&((SUBSYS_ULOG << 8) | MSG_PACKET).to_ne_bytes());
        buf.extend_from_slice(&0u16.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&[2, 0]);
        buf.extend_from_slice(&LOG_GROUP.to_be_bytes());
        attr(&mut buf, 1, &[0x08, 0x00, 3, 0]);
        let mut p = prefix.as_bytes().to_vec();
        p.push(0);
        attr(&mut buf, ATTR_PREFIX, &p);
        let mut ts = 1_764_720_000u64.to_be_bytes().to_vec();
        ts.extend_from_slice(&120_456u64.to_be_bytes());
        attr(&mut buf, ATTR_TIMESTAMP, &ts);
        attr(&mut buf, ATTR_SEQ, &seq.to_be_bytes());
        attr(&mut buf, ATTR_PAYLOAD, payload);
        let len = buf.len() as u32;
        buf[..4].copy_from_slice(&len.to_ne_bytes());
        buf
    }

    fn tcp_packet() -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 6, 0, 0];
        p.extend_from_slice(&[10, 1, 0, 2, 10, 1, 0, 3]);
        p.extend_from_slice(&40312u16.to_be_bytes());
        p.extend_from_slice(&80u16.to_be_bytes());
        p.extend_from_slice(&[0; 16]);
        p
    }

    fn source() -> LogSource {
        LogSource {
            direction: PolicyType::Ingress,
            tier: "default".into(),
            rule: LogRule::EndOfTier {
                policies: vec![PolicyRef {
                    kind: "NetworkPolicy".into(),
                    namespace: Some("x".into()),
                    name: "b-from-a".into(),
                }],
            },
        }
    }

    #[test]
    fn a_packet_message_becomes_a_named_record() {
        let id = source().id();
        assert_eq!(id.len(), 16);
        let labels = Labels::default();
        labels.set_rules(&BTreeMap::from([(id.clone(), source())]));
        let prefix = format!("netfence drop {id} Ingress end of tier default ");
        let mut datagram = packet_message(&prefix, 7, &tcp_packet());
        datagram.extend(packet_message("netfence new pod ", 9, &tcp_packet()));
        let parsed = parse_datagram(&datagram);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].seq, Some(7));
        assert_eq!(parsed[1].prefix, "netfence new pod ");
        let record = record(&parsed[0], &labels).expect("record");
        assert_eq!(
            record.to_string(),
            "netfence deny: 2025-12-03T00:00:00.120Z drop TCP 10.1.0.2:40312 -> 10.1.0.3:80: Ingress not allowed by NetworkPolicy x/b-from-a (end of tier default)"
        );
        let json = record.json();
        assert_eq!(json["policies"][0]["name"], "b-from-a");
        assert_eq!(json["dst"]["port"], 80);
        assert_eq!(json["reason"], "end_of_tier");
        assert_eq!(
            super::record(&parsed[1], &labels).expect("record").cause,
            Cause::NewPod
        );
    }

    #[test]
    fn prefixes_are_read_by_their_fixed_part() {
        let id = "0123456789abcdef";
        assert_eq!(
            parse_prefix(&format!("netfence Deny {id} Egress kube-admin/x rule 0 ")),
            Prefix::Rule { action: "Deny", id }
        );
        assert_eq!(
            parse_prefix("netfence Deny Egress kube-admin/x rule 0 "),
            Prefix::Other
        );
        assert_eq!(parse_prefix("netfence fail-closed "), Prefix::FailClosed);
        assert_eq!(parse_prefix("other"), Prefix::Other);
    }

    #[test]
    fn ids_differ_by_every_field() {
        let base = source();
        let mut other = base.clone();
        other.direction = PolicyType::Egress;
        let mut tier = base.clone();
        tier.tier = "security".into();
        let rule = LogSource {
            rule: LogRule::Rule {
                policy: base.policies()[0].clone(),
                index: 0,
                action: "Deny".into(),
            },
            ..base.clone()
        };
        let ids: std::collections::BTreeSet<String> = [&base, &other, &tier, &rule]
            .iter()
            .map(|s| s.id())
            .collect();
        assert_eq!(ids.len(), 4);
        assert_eq!(base.id(), source().id(), "stable");
    }

    #[test]
    fn the_bucket_allows_the_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::new(10);
        let taken = (0..25).filter(|_| bucket.take(start)).count();
        assert_eq!(taken, 10, "one second of burst");
        assert!(!bucket.wait(start).is_zero());
        assert!(bucket.take(start + Duration::from_millis(150)));
    }
}
