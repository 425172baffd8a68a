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
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::borrow::Cow;

// The line is read straight into these types, their strings borrowed from it where they hold
// no escapes: by way of a `serde_json::Value` (a map and a string allocated per key), reading
// was about 70 % of a Hubble check's time (docs/performance.md, session 31).

/// A `GetFlowsResponse`: the flow (absent in `lost_events` and agent events) and the
/// response's time.
#[derive(Deserialize)]
struct Response<'a> {
    #[serde(borrow)]
    flow: Option<HubbleFlow<'a>>,
    #[serde(borrow)]
    time: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct HubbleFlow<'a> {
    #[serde(borrow)]
    time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    verdict: Option<Cow<'a, str>>,
    #[serde(borrow)]
    drop_reason_desc: Option<Cow<'a, str>>,
    #[serde(rename = "IP", borrow)]
    ip: Option<Ip<'a>>,
    l4: Option<Layer4>,
    #[serde(borrow)]
    source: Option<HubbleEndpoint<'a>>,
    #[serde(borrow)]
    destination: Option<HubbleEndpoint<'a>>,
    is_reply: Option<bool>,
    #[serde(borrow)]
    traffic_direction: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Ip<'a> {
    #[serde(borrow)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow)]
    destination: Option<Cow<'a, str>>,
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
    icmpv4: Option<IgnoredAny>,
    #[serde(rename = "ICMPv6")]
    icmpv6: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct HubbleEndpoint<'a> {
    #[serde(borrow)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pod_name: Option<Cow<'a, str>>,
}

impl HubbleEndpoint<'_> {
    fn hint(&self) -> Option<PodHint> {
        match (&self.namespace, &self.pod_name) {
            (Some(namespace), Some(name)) if !namespace.is_empty() && !name.is_empty() => {
                Some(PodHint {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
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

/// One line of `hubble observe -o json`: a response whose `flow` is read, or a bare flow
/// object (one that has `IP` or `verdict`).
pub(crate) fn line(text: &str) -> Line {
    let (hubble, outer_time) = match serde_json::from_str::<Response>(text) {
        Ok(Response {
            flow: Some(flow),
            time,
        }) => (flow, time),
        // No `flow`: a bare flow, or an event that is none.
        Ok(Response { flow: None, .. }) => match serde_json::from_str::<HubbleFlow>(text) {
            Ok(flow) if flow.ip.is_some() || flow.verdict.is_some() => (flow, None),
            Ok(_) => return Line::Skip(Skip::NotAFlow),
            Err(error) => return Line::Skip(unreadable(text, &error)),
        },
        Err(error) => return Line::Skip(unreadable(text, &error)),
    };
    match flow(hubble, outer_time) {
        Ok(flow) => Line::Flow(flow),
        Err(skip) => Line::Skip(skip),
    }
}

/// Why a line that did not read is malformed: not JSON (a syntax error, or it ends early),
/// not an object, or an object of another shape.
fn unreadable(text: &str, error: &serde_json::Error) -> Skip {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => malformed("not JSON"),
        Category::Data if !text.trim_start().starts_with('{') => malformed("not a JSON object"),
        Category::Data => malformed(format!("unexpected shape ({error})")),
    }
}

fn flow(hubble: HubbleFlow<'_>, outer_time: Option<Cow<'_, str>>) -> Result<Flow, Skip> {
    let Some(ip) = hubble.ip else {
        // Flows without an IP layer (ARP, L7-only records) are not connections.
        return Err(Skip::NotAFlow);
    };
    let address = |text: Option<Cow<'_, str>>, what: &str| {
        let text = text.ok_or_else(|| malformed(format!("no {what} address")))?;
        crate::vpc::parse_ip(&text)
            .ok_or_else(|| malformed(format!("{what} address is not an IP address")))
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
