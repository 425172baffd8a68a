//! Flows of the lab's real packets, as the kernel saw them cross the node: a second table in
//! the node namespace, `table inet netfence_flows`, whose forward chains add every packet's
//! 5-tuple to dynamic sets with per-element counters (nft(8), "SETS": `flags dynamic`,
//! `counter`, updated from the packet path with `update @set { … }`). One chain runs before
//! the netfence table's forward chain (priority `filter - 10`) and sees every packet that
//! reaches the node; one runs after it (`filter + 10`) and sees only what netfence let
//! through (a `drop` ends the packet; an `accept` passes it on to the next base chain on the
//! hook). A tuple attempted but never forwarded was denied.
//!
//! Why sets and not conntrack events: a connection whose first packet is dropped is never
//! confirmed, so `conntrack -E` never reports it, and the denied flows are half of what a
//! round trip must see. Why not `log group N`: reading NFLOG needs a netlink listener running
//! through the probes; the sets are read once, afterwards, with `nft -j`.

use crate::nft::{run, DataplaneError};
use jiff::Timestamp;
use netfence_flows::write::Record;
use netfence_flows::{Flow, FlowProtocol, Observed, Reply};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::SystemTime;

/// The recording table's name (the netfence table is never touched by it).
pub const RECORD_TABLE: &str = "netfence_flows";

/// The sets: (name, chain, match). `original`/`forwarded` count the connection's original
/// direction before and after netfence's chain; `replies` the reply direction after it;
/// `syn`/`syn_ack` mark tuples that carried a SYN without ACK, or a SYN-ACK.
const SETS: [(&str, &str, &str); 5] = [
    ("original", "before", "ct direction original"),
    (
        "syn",
        "before",
        "ct direction original tcp flags & (syn | ack) == syn",
    ),
    ("forwarded", "after", "ct direction original"),
    ("replies", "after", "ct direction reply"),
    (
        "syn_ack",
        "after",
        "ct direction reply tcp flags & (syn | ack) == syn | ack",
    ),
];

/// One flow the kernel saw: a 5-tuple in one direction, with its packets and bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelFlow {
    /// Source address.
    pub src: Ipv4Addr,
    /// Source port.
    pub src_port: u16,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Destination port.
    pub dst_port: u16,
    /// IANA protocol number (6 TCP, 17 UDP).
    pub protocol: u8,
    /// Packets counted (before netfence's chain for the original direction).
    pub packets: u64,
    /// Bytes counted likewise.
    pub bytes: u64,
    /// Whether netfence let the flow's packets through (replies: always, they pass as
    /// established).
    pub forwarded: bool,
    /// Whether this is the reply direction of a connection (conntrack's direction).
    pub reply: bool,
    /// TCP flags seen: SYN (2) on an original-direction tuple that opened a connection,
    /// SYN-ACK (18) on the reply that accepted one, 0 otherwise (and for UDP).
    pub tcp_flags: u8,
}

impl KernelFlow {
    /// The flow as a log would carry it, over the capture window `window` (wall clock): the
    /// original direction observed `allow` when netfence forwarded it, `deny` otherwise;
    /// replies are replies.
    pub fn record(&self, window: (SystemTime, SystemTime)) -> Record {
        let time = |t: SystemTime| Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH);
        let mut flow = Flow::new(
            self.src.into(),
            self.dst.into(),
            FlowProtocol::from_number(self.protocol),
        );
        flow.time = Some(time(window.0));
        flow.src_port = Some(self.src_port);
        flow.dst_port = Some(self.dst_port);
        flow.observed = Some(if self.forwarded {
            Observed::Allow
        } else {
            Observed::Deny
        });
        flow.reply = if self.reply { Reply::Yes } else { Reply::No };
        flow.tcp_flags = (self.protocol == 6).then_some(self.tcp_flags);
        Record {
            flow,
            packets: self.packets,
            bytes: self.bytes,
            end: time(window.1),
        }
    }
}

/// The script that creates the recording table in the lab's node namespace.
fn script() -> String {
    let mut text = format!("table inet {RECORD_TABLE} {{\n");
    for (name, _, _) in SETS {
        text.push_str(&format!(
            "\tset {name} {{ type ipv4_addr . inet_service . ipv4_addr . inet_service . inet_proto; flags dynamic; counter; size 1048576; }}\n"
        ));
    }
    for (chain, priority) in [("before", "filter - 10"), ("after", "filter + 10")] {
        text.push_str(&format!(
            "\tchain {chain} {{\n\t\ttype filter hook forward priority {priority}; policy accept;\n"
        ));
        for (name, _, condition) in SETS.iter().filter(|(_, c, _)| *c == chain) {
            text.push_str(&format!(
                "\t\t{condition} update @{name} {{ ip saddr . th sport . ip daddr . th dport . meta l4proto }}\n"
            ));
        }
        text.push_str("\t}\n");
    }
    text.push_str("}\n");
    text
}

/// Start recording in `netns` (the lab's node namespace).
pub(crate) fn start(netns: &str) -> Result<(), DataplaneError> {
    run(Some(netns), "nft", &["-f", "-"], Some(&script())).map(|_| ())
}

type Tuple = (Ipv4Addr, u16, Ipv4Addr, u16, u8);

/// Set name → element → (packets, bytes).
type Sets = BTreeMap<String, BTreeMap<Tuple, (u64, u64)>>;

/// Read what was recorded in `netns`: each original-direction tuple (forwarded or not), then
/// each reply, sorted by tuple.
pub(crate) fn collect(netns: &str) -> Result<Vec<KernelFlow>, DataplaneError> {
    let text = run(
        Some(netns),
        "nft",
        &["-j", "list", "table", "inet", RECORD_TABLE],
        None,
    )?;
    let sets = parse_sets(&text)?;
    let empty = BTreeMap::new();
    let set = |name: &str| sets.get(name).unwrap_or(&empty);
    let mut flows = Vec::new();
    for (direction, forwarded_set, flag_set, flag) in [
        ("original", "forwarded", "syn", 2u8),
        ("replies", "replies", "syn_ack", 18),
    ] {
        for (tuple, &(packets, bytes)) in set(direction) {
            let (src, src_port, dst, dst_port, protocol) = *tuple;
            flows.push(KernelFlow {
                src,
                src_port,
                dst,
                dst_port,
                protocol,
                packets,
                bytes,
                forwarded: set(forwarded_set).contains_key(tuple),
                reply: direction == "replies",
                tcp_flags: if set(flag_set).contains_key(tuple) {
                    flag
                } else {
                    0
                },
            });
        }
    }
    Ok(flows)
}

/// The elements and counters of every set in `nft -j list table` output.
fn parse_sets(text: &str) -> Result<Sets, DataplaneError> {
    let bad = |what: &str| {
        DataplaneError::Other(format!("nft -j list table inet {RECORD_TABLE}: {what}"))
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(&format!("not JSON: {e}")))?;
    let items = value
        .get("nftables")
        .and_then(|v| v.as_array())
        .ok_or_else(|| bad("no nftables list"))?;
    let mut sets = BTreeMap::new();
    for set in items.iter().filter_map(|item| item.get("set")) {
        let name = set
            .get("name")
            .and_then(|n| n.as_str())
            .ok_or_else(|| bad("a set without a name"))?;
        let mut elements = BTreeMap::new();
        for element in set
            .get("elem")
            .and_then(|e| e.as_array())
            .into_iter()
            .flatten()
        {
            let inner = element.get("elem").unwrap_or(element);
            let parts = inner
                .pointer("/val/concat")
                .and_then(|c| c.as_array())
                .ok_or_else(|| bad(&format!("set {name}: an element is not a 5-tuple")))?;
            let tuple =
                tuple(parts).ok_or_else(|| bad(&format!("set {name}: element {parts:?}")))?;
            let counter = |field: &str| {
                inner
                    .pointer(&format!("/counter/{field}"))
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0)
            };
            elements.insert(tuple, (counter("packets"), counter("bytes")));
        }
        sets.insert(name.to_string(), elements);
    }
    Ok(sets)
}

fn tuple(parts: &[serde_json::Value]) -> Option<Tuple> {
    let [src, src_port, dst, dst_port, protocol] = parts else {
        return None;
    };
    let port = |v: &serde_json::Value| v.as_u64().and_then(|p| u16::try_from(p).ok());
    let protocol = match protocol {
        serde_json::Value::String(name) => match name.as_str() {
            "tcp" => 6,
            "udp" => 17,
            other => other.parse().ok()?,
        },
        number => u8::try_from(number.as_u64()?).ok()?,
    };
    Some((
        src.as_str()?.parse().ok()?,
        port(src_port)?,
        dst.as_str()?.parse().ok()?,
        port(dst_port)?,
        protocol,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_json_elements_parse_with_their_counters() {
        let text = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "inet", "name": "original", "table": "netfence_flows", "elem": [{"elem": {"val": {"concat": ["10.0.0.1", 47204, "10.0.0.2", 80, "tcp"]}, "counter": {"packets": 3, "bytes": 180}}}, {"elem": {"val": {"concat": ["10.0.0.1", 5353, "10.0.0.2", 81, 17]}, "counter": {"packets": 1, "bytes": 30}}}]}}, {"set": {"name": "syn"}}]}"#;
        let sets = parse_sets(text).unwrap();
        let original = &sets["original"];
        let tcp = (
            "10.0.0.1".parse().unwrap(),
            47204,
            "10.0.0.2".parse().unwrap(),
            80,
            6,
        );
        assert_eq!(original[&tcp], (3, 180));
        assert_eq!(original.len(), 2);
        assert!(sets["syn"].is_empty());
        assert!(parse_sets("{\"nftables\": [{\"set\": {\"name\": \"x\", \"elem\": [{\"elem\": {\"val\": {\"concat\": [1]}}}]}}]}").is_err());
        assert!(script().contains("priority filter - 10"));
    }
}
