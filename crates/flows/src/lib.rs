//! Flow logs in: AWS VPC Flow Logs, Hubble (`hubble observe -o json`) and AWS Network Policy
//! Agent decision logs are read line by line into [`Flow`]s ([`read`]); each flow is mapped to
//! endpoints at its time and checked against policy through the engine ([`check`]); the
//! advisor proposes least-privilege policies for the observed traffic and proves them
//! ([`advise`]).
//!
//! The crate reads and decides; it never prints or exits (the CLI renders). Readers stream: memory
//! stays flat in the input size, and a malformed line is counted by reason, never fatal.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod advise;
mod batch;
pub mod check;
mod classes;
pub mod groups;
pub mod history;
pub mod hubble;
pub mod npa;
pub mod parquet;
pub mod read;
pub mod vpc;
pub mod write;

pub use self::parquet::ParquetWriter;
pub use batch::FlowBatch;
pub use check::{Checked, CheckedFlow, Checker, Judged, Judgement, Judging, Rows};
pub use groups::{MismatchGroups, Workloads};
pub use history::{History, HistoryError};
pub use read::{
    for_each_input, for_each_input_keeping, input_files, read_path, read_path_into, read_stream,
    read_stream_into, FlowError, FlowSink, ReadStats, SourceFormat,
};
pub use vpc::{VpcField, VpcFormat, VpcFormatError, VpcRecord};

use jiff::Timestamp;
use std::fmt;
use std::net::IpAddr;

/// What a consumer of judged flows makes once per deciding policy's name (its key, or its
/// text as an output writes it), found by the address of the name's text: the checker makes
/// each name once and hands on clones ([`CheckedFlow::decided_by`]), so that a look-up
/// hashes one word, not the text. The clone kept beside each keeps its address its own (a
/// text dropped could leave its address to another).
pub struct ByNameAddress<T> {
    made: netfence_model::net::FastMap<usize, (std::sync::Arc<str>, T)>,
}

impl<T> Default for ByNameAddress<T> {
    fn default() -> Self {
        ByNameAddress {
            made: Default::default(),
        }
    }
}

impl<T> ByNameAddress<T> {
    /// What was made for `name`, made by `make` the first time.
    pub fn get_or_make(
        &mut self,
        name: &std::sync::Arc<str>,
        make: impl FnOnce(&std::sync::Arc<str>) -> T,
    ) -> &T {
        let address = std::sync::Arc::as_ptr(name).cast::<u8>() as usize;
        &self
            .made
            .entry(address)
            .or_insert_with(|| (std::sync::Arc::clone(name), make(name)))
            .1
    }
}

/// Ask for `item` (when there is one) to be brought into the CPU's cache, so that a later
/// read finds it there: on x86-64 a prefetch (`prefetcht0`, which retires at once, through
/// `safe_arch`: no unsafe code here); elsewhere nothing. Changes nothing. The checker and
/// the mismatch groups ask for a batch's table entries together, so that their loads
/// overlap instead of each waiting for its own.
#[inline(always)]
pub(crate) fn prefetch<T>(item: Option<&T>) {
    #[cfg(target_arch = "x86_64")]
    if let Some(item) = item {
        safe_arch::prefetch_t0(item);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}

/// The transport protocol of a flow, by IANA protocol number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlowProtocol {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
    /// ICMP for IPv4 (1).
    Icmp,
    /// Any other protocol, by number (ICMPv6 is 58).
    Other(u8),
}

impl FlowProtocol {
    /// The protocol for an IANA protocol number.
    pub fn from_number(number: u8) -> Self {
        match number {
            6 => FlowProtocol::Tcp,
            17 => FlowProtocol::Udp,
            132 => FlowProtocol::Sctp,
            1 => FlowProtocol::Icmp,
            other => FlowProtocol::Other(other),
        }
    }

    /// The protocol named as policies and logs name it (`TCP`, `udp`, `ICMP`, …) or by number.
    pub fn parse(text: &str) -> Option<Self> {
        if let Ok(number) = text.parse::<u8>() {
            return Some(Self::from_number(number));
        }
        match text.to_ascii_uppercase().as_str() {
            "TCP" => Some(FlowProtocol::Tcp),
            "UDP" => Some(FlowProtocol::Udp),
            "SCTP" => Some(FlowProtocol::Sctp),
            "ICMP" | "ICMPV4" => Some(FlowProtocol::Icmp),
            "ICMPV6" => Some(FlowProtocol::Other(58)),
            _ => None,
        }
    }

    /// The protocol as the engine models it: TCP, UDP and SCTP have ports and policies name
    /// them; other protocols are outside what the engine evaluates.
    pub fn ported(self) -> Option<netfence_model::Protocol> {
        match self {
            FlowProtocol::Tcp => Some(netfence_model::Protocol::Tcp),
            FlowProtocol::Udp => Some(netfence_model::Protocol::Udp),
            FlowProtocol::Sctp => Some(netfence_model::Protocol::Sctp),
            FlowProtocol::Icmp | FlowProtocol::Other(_) => None,
        }
    }

    /// `TCP`, `UDP`, `SCTP` or `ICMP` (the `flows check` contract); `None` for any other
    /// protocol, which the contract writes as its number.
    pub fn name(self) -> Option<&'static str> {
        match self {
            FlowProtocol::Tcp => Some("TCP"),
            FlowProtocol::Udp => Some("UDP"),
            FlowProtocol::Sctp => Some("SCTP"),
            FlowProtocol::Icmp => Some("ICMP"),
            FlowProtocol::Other(_) => None,
        }
    }
}

impl fmt::Display for FlowProtocol {
    /// [`FlowProtocol::name`], or the number (the `flows check` contract).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlowProtocol::Other(number) => write!(f, "{number}"),
            named => f.write_str(named.name().unwrap_or_default()),
        }
    }
}

/// What the log says happened to the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Observed {
    /// Let through (VPC `ACCEPT`, Hubble `FORWARDED`, agent `ACCEPT`).
    Allow,
    /// Dropped by policy (VPC `REJECT`, Hubble `DROPPED` for a policy reason, agent `DENY`).
    Deny,
}

impl Observed {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Observed::Allow => "allow",
            Observed::Deny => "deny",
        }
    }
}

/// Where along the path the log saw the flow, when it says: one endpoint's egress policy, or
/// the destination's ingress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObservedAt {
    /// At the source's egress (Hubble `traffic_direction: EGRESS`): what was observed is the
    /// egress side's verdict only; the destination's ingress was not yet applied.
    Egress,
    /// At the destination's ingress (Hubble `INGRESS`): the packet passed the source's egress
    /// already, so what was observed is the whole connection's fate.
    Ingress,
}

/// Whether the log says the flow is a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The log says it is a reply (Hubble `is_reply: true`, VPC `tcp-flags` SYN-ACK only).
    Yes,
    /// The log says it opens or belongs to the forward direction (Hubble `is_reply: false`).
    No,
    /// The log does not say: the side whose port a pod declares is taken as the server.
    Unknown,
}

/// A pod named by the log itself (Hubble's `source`/`destination`), as a hint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodHint {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
}

/// One flow as read from a log, before enrichment.
#[derive(Clone, Debug, PartialEq)]
pub struct Flow {
    /// When it was seen (VPC: the capture window's `start`), if the log says.
    pub time: Option<Timestamp>,
    /// Source address (VPC: `pkt-srcaddr` when present and not `-`).
    pub src: IpAddr,
    /// Destination address (VPC: `pkt-dstaddr` when present and not `-`).
    pub dst: IpAddr,
    /// Source port, for protocols with ports.
    pub src_port: Option<u16>,
    /// Destination port, for protocols with ports.
    pub dst_port: Option<u16>,
    /// The protocol.
    pub protocol: FlowProtocol,
    /// What the log says happened, if it says.
    pub observed: Option<Observed>,
    /// Where the log saw it, if it says (otherwise: the connection's fate as a whole).
    pub observed_at: Option<ObservedAt>,
    /// Whether the log says it is a reply.
    pub reply: Reply,
    /// VPC `tcp-flags` (the OR of the flags seen in the capture window), kept as read.
    pub tcp_flags: Option<u8>,
    /// The source pod the log names, if any.
    pub src_pod: Option<PodHint>,
    /// The destination pod the log names, if any.
    pub dst_pod: Option<PodHint>,
    /// Whether what the log observed includes the security groups' decision: VPC Flow Logs'
    /// `action` is the security groups' and network ACLs' (AWS, "Flow log records"); Hubble
    /// and the policy agent see the pod's policy only, at the pod's interface.
    pub sees_security_groups: bool,
}

impl Flow {
    /// A flow between two addresses with nothing else known (the readers fill the rest).
    pub fn new(src: IpAddr, dst: IpAddr, protocol: FlowProtocol) -> Self {
        Flow {
            time: None,
            src,
            dst,
            src_port: None,
            dst_port: None,
            protocol,
            observed: None,
            observed_at: None,
            reply: Reply::Unknown,
            tcp_flags: None,
            src_pod: None,
            dst_pod: None,
            sees_security_groups: false,
        }
    }
}

/// Why a line gave no flow: a malformed line, or a record that carries no flow.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// A VPC record with `log-status` NODATA: no traffic in the capture window.
    NoData,
    /// A VPC record with `log-status` SKIPDATA: records were lost in the capture window.
    SkipData,
    /// A Hubble line that is not a flow (lost events, agent or debug events).
    NotAFlow,
    /// A line that does not read as the format: the reason, without the line's values.
    Malformed(String),
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::NoData => f.write_str("NODATA record"),
            Skip::SkipData => f.write_str("SKIPDATA record"),
            Skip::NotAFlow => f.write_str("not a flow event"),
            Skip::Malformed(reason) => write!(f, "malformed: {reason}"),
        }
    }
}

impl Skip {
    /// Whether the line is malformed (as opposed to a record that carries no flow).
    pub fn is_malformed(&self) -> bool {
        matches!(self, Skip::Malformed(_))
    }
}

/// A malformed-line helper for the readers.
pub(crate) fn malformed(reason: impl Into<String>) -> Skip {
    Skip::Malformed(reason.into())
}

/// Parse an RFC 3339 time as the logs write it (`2024-01-02T03:04:05.123456789Z`, offsets too).
pub(crate) fn parse_time(text: &str) -> Option<Timestamp> {
    text.parse::<Timestamp>().ok()
}
