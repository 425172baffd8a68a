//! Hubble flows as `hubble observe -o json` prints them: one JSON object per line,
//! `{"flow": {...}, "node_name": "...", "time": "..."}` (a `GetFlowsResponse`; other responses
//! carry `lost_events` or agent events instead of `flow`). Keys are the protobuf field names of
//! Cilium's `flow/flow.proto` (snake_case: `pod_name`, `source_port`, `is_reply`,
//! `traffic_direction`, `drop_reason_desc`) except the message names `IP`, `TCP`, `UDP`,
//! `SCTP`, `ICMPv4`, `ICMPv6`. A bare flow object (no `flow` wrapper) is read too.

use crate::read::Line;
use crate::{
    malformed, parse_time, Flow, FlowProtocol, Observed, ObservedAt, PodHint, Reply, Skip,
};
use serde::Deserialize;
use std::net::IpAddr;

#[derive(Deserialize)]
struct Response {
    flow: Option<HubbleFlow>,
    time: Option<String>,
}

#[derive(Deserialize)]
struct HubbleFlow {
    time: Option<String>,
    verdict: Option<String>,
    drop_reason_desc: Option<String>,
    #[serde(rename = "IP")]
    ip: Option<Ip>,
    l4: Option<Layer4>,
    source: Option<HubbleEndpoint>,
    destination: Option<HubbleEndpoint>,
    is_reply: Option<bool>,
    traffic_direction: Option<String>,
}

#[derive(Deserialize)]
struct Ip {
    source: Option<String>,
    destination: Option<String>,
}

#[derive(Deserialize)]
struct Ports {
    source_port: Option<u16>,
    destination_port: Option<u16>,
}

#[derive(Deserialize)]
struct Layer4 {
    #[serde(rename = "TCP")]
    tcp: Option<Ports>,
    #[serde(rename = "UDP")]
    udp: Option<Ports>,
    #[serde(rename = "SCTP")]
    sctp: Option<Ports>,
    #[serde(rename = "ICMPv4")]
    icmpv4: Option<serde_json::Value>,
    #[serde(rename = "ICMPv6")]
    icmpv6: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct HubbleEndpoint {
    namespace: Option<String>,
    pod_name: Option<String>,
}

impl HubbleEndpoint {
    fn hint(&self) -> Option<PodHint> {
        match (&self.namespace, &self.pod_name) {
            (Some(namespace), Some(name)) if !namespace.is_empty() && !name.is_empty() => {
                Some(PodHint {
                    namespace: namespace.clone(),
                    name: name.clone(),
                })
            }
            _ => None,
        }
    }
}

/// Drop reasons (`flow.proto` `DropReason`) that mean policy denied the flow. Other drops
/// (no route, conntrack map full, …) say nothing about policy: their `observed` is unknown.
const POLICY_DROPS: &[&str] = &[
    "POLICY_DENIED",
    "POLICY_DENY",
    "AUTH_REQUIRED",
    "NO_NETWORK_POLICY",
];

/// One line of `hubble observe -o json`.
pub(crate) fn line(text: &str) -> Line {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(_) => return Line::Skip(malformed("not JSON")),
    };
    let Some(object) = value.as_object() else {
        return Line::Skip(malformed("not a JSON object"));
    };
    let response = if object.contains_key("flow") {
        serde_json::from_value::<Response>(value)
    } else if object.contains_key("IP") || object.contains_key("verdict") {
        serde_json::from_value::<HubbleFlow>(value).map(|flow| Response {
            flow: Some(flow),
            time: None,
        })
    } else {
        return Line::Skip(Skip::NotAFlow);
    };
    let response = match response {
        Ok(response) => response,
        Err(error) => return Line::Skip(malformed(format!("unexpected shape ({error})"))),
    };
    let Some(hubble) = response.flow else {
        return Line::Skip(Skip::NotAFlow);
    };
    match flow(hubble, response.time) {
        Ok(flow) => Line::Flow(flow),
        Err(skip) => Line::Skip(skip),
    }
}

fn flow(hubble: HubbleFlow, outer_time: Option<String>) -> Result<Flow, Skip> {
    let Some(ip) = hubble.ip else {
        // Flows without an IP layer (ARP, L7-only records) are not connections.
        return Err(Skip::NotAFlow);
    };
    let address = |text: Option<String>, what: &str| {
        text.ok_or_else(|| malformed(format!("no {what} address")))?
            .parse::<IpAddr>()
            .map_err(|_| malformed(format!("{what} address is not an IP address")))
    };
    let src = address(ip.source, "source")?;
    let dst = address(ip.destination, "destination")?;
    let l4 = hubble.l4.ok_or_else(|| malformed("no l4"))?;
    let (protocol, ports) = if let Some(ports) = l4.tcp {
        (FlowProtocol::Tcp, Some(ports))
    } else if let Some(ports) = l4.udp {
        (FlowProtocol::Udp, Some(ports))
    } else if let Some(ports) = l4.sctp {
        (FlowProtocol::Sctp, Some(ports))
    } else if l4.icmpv4.is_some() {
        (FlowProtocol::Icmp, None)
    } else if l4.icmpv6.is_some() {
        (FlowProtocol::Other(58), None)
    } else {
        return Err(malformed("l4 names no known protocol"));
    };
    let mut flow = Flow::new(src, dst, protocol);
    if let Some(ports) = ports {
        flow.src_port = ports.source_port;
        flow.dst_port = ports.destination_port;
    }
    let time = hubble.time.or(outer_time);
    if let Some(text) = time {
        flow.time = Some(parse_time(&text).ok_or_else(|| malformed("time is not RFC 3339"))?);
    }
    flow.observed = match hubble.verdict.as_deref() {
        Some("FORWARDED") | Some("REDIRECTED") => Some(Observed::Allow),
        Some("DROPPED") => match hubble.drop_reason_desc.as_deref() {
            None => Some(Observed::Deny),
            Some(reason) if POLICY_DROPS.contains(&reason) => Some(Observed::Deny),
            Some(_) => None,
        },
        // AUDIT (policy audit mode), ERROR, TRACED, TRANSLATED: not a policy decision.
        _ => None,
    };
    // A flow between pods on two nodes is seen twice: leaving the source (EGRESS, where only
    // the source's egress policy has been applied) and arriving (INGRESS).
    flow.observed_at = match hubble.traffic_direction.as_deref() {
        Some("EGRESS") => Some(ObservedAt::Egress),
        Some("INGRESS") => Some(ObservedAt::Ingress),
        _ => None,
    };
    flow.reply = match hubble.is_reply {
        Some(true) => Reply::Yes,
        Some(false) => Reply::No,
        None => Reply::Unknown,
    };
    flow.src_pod = hubble.source.as_ref().and_then(HubbleEndpoint::hint);
    flow.dst_pod = hubble.destination.as_ref().and_then(HubbleEndpoint::hint);
    Ok(flow)
}
