//! Flows out, in the formats the readers take: `hubble observe -o json` lines and AWS VPC
//! Flow Logs text records with an S3 header line. `netfence lab --record-flows` writes what
//! the kernel saw in both, so that `flows check` can be tested on traffic nobody hand-tuned.

use crate::{Flow, FlowProtocol, Observed, Reply};
use jiff::Timestamp;
use std::io::{self, Write};

/// The fields of the VPC records written: the v2 default format plus `tcp-flags` (a v3
/// field), so that a reader tells replies by SYN-ACK (AWS, "Flow log records").
pub const VPC_HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status tcp-flags";

/// A flow with what a capture window adds: its packets, bytes and the window's end (the
/// flow's `time` is the window's start).
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The flow; what it lacks (`time`, `observed`, ports) is written as `-` in a VPC record
    /// and left out of a Hubble line.
    pub flow: Flow,
    /// Packets in the window.
    pub packets: u64,
    /// Bytes in the window.
    pub bytes: u64,
    /// End of the capture window.
    pub end: Timestamp,
}

fn protocol_number(protocol: FlowProtocol) -> u8 {
    match protocol {
        FlowProtocol::Tcp => 6,
        FlowProtocol::Udp => 17,
        FlowProtocol::Sctp => 132,
        FlowProtocol::Icmp => 1,
        FlowProtocol::Other(number) => number,
    }
}

/// Write one VPC record in the [`VPC_HEADER`] format (account `000000000000`, interface
/// `interface`, `-` for what the flow lacks).
pub fn vpc_record(out: &mut impl Write, record: &Record, interface: &str) -> io::Result<()> {
    let flow = &record.flow;
    let port = |p: Option<u16>| p.map_or("-".to_string(), |p| p.to_string());
    let start = flow
        .time
        .map_or("-".to_string(), |t| t.as_second().to_string());
    let action = match flow.observed {
        Some(Observed::Allow) => "ACCEPT",
        Some(Observed::Deny) => "REJECT",
        None => "-",
    };
    writeln!(
        out,
        "3 000000000000 {interface} {} {} {} {} {} {} {} {start} {} {action} OK {}",
        flow.src,
        flow.dst,
        port(flow.src_port),
        port(flow.dst_port),
        protocol_number(flow.protocol),
        record.packets,
        record.bytes,
        record.end.as_second(),
        flow.tcp_flags.unwrap_or(0),
    )
}

/// Write one `hubble observe -o json` line: `FORWARDED`, or `DROPPED` with the
/// `POLICY_DENIED` reason; `is_reply` as the flow says; the pods the flow names as `source`
/// and `destination`.
pub fn hubble_line(out: &mut impl Write, record: &Record, node: &str) -> io::Result<()> {
    let flow = &record.flow;
    let time = flow.time.unwrap_or(record.end).to_string();
    let mut hubble = serde_json::json!({
        "time": time,
        "IP": {
            "source": flow.src.to_string(),
            "destination": flow.dst.to_string(),
            "ipVersion": if flow.src.is_ipv4() { "IPv4" } else { "IPv6" },
        },
        "node_name": node,
        "is_reply": flow.reply == Reply::Yes,
    });
    // Hubble names the pods on either side (flow.proto `Endpoint`: `namespace`, `pod_name`).
    for (key, pod) in [("source", &flow.src_pod), ("destination", &flow.dst_pod)] {
        if let Some(pod) = pod {
            hubble[key] = serde_json::json!({
                "namespace": pod.namespace,
                "pod_name": pod.name,
            });
        }
    }
    let ports = serde_json::json!({
        "source_port": flow.src_port,
        "destination_port": flow.dst_port,
    });
    let l4 = match flow.protocol {
        FlowProtocol::Tcp => Some(("TCP", ports)),
        FlowProtocol::Udp => Some(("UDP", ports)),
        FlowProtocol::Sctp => Some(("SCTP", ports)),
        FlowProtocol::Icmp | FlowProtocol::Other(_) => None,
    };
    if let Some((name, ports)) = l4 {
        hubble["l4"] = serde_json::json!({ name: ports });
    }
    match flow.observed {
        Some(Observed::Allow) => hubble["verdict"] = "FORWARDED".into(),
        Some(Observed::Deny) => {
            hubble["verdict"] = "DROPPED".into();
            hubble["drop_reason_desc"] = "POLICY_DENIED".into();
        }
        None => {}
    }
    let line = serde_json::json!({ "flow": hubble, "node_name": node, "time": time });
    writeln!(out, "{line}")
}
