//! AWS Network Policy Agent decision logs (Amazon EKS user guide, "Troubleshooting
//! Kubernetes network policies", Network policy logs): `Node: NAME;SIP: ADDRESS;SPORT:
//! PORT;DIP: ADDRESS;DPORT: PORT;PROTOCOL: NAME;PolicyVerdict: ACCEPT|DENY`, written to
//! `/var/log/aws-routed-eni/network-policy-agent.log` and, when sent to CloudWatch, exported
//! with the event's RFC 3339 timestamp in front. Further `Key: value` pairs are tolerated.

use crate::read::Line;
use crate::{malformed, parse_time, Flow, FlowProtocol, Observed, Reply, Skip};
use std::net::IpAddr;

/// One decision line.
pub(crate) fn line(text: &str) -> Line {
    match record(text.trim()) {
        Ok(flow) => Line::Flow(flow),
        Err(skip) => Line::Skip(skip),
    }
}

fn record(text: &str) -> Result<Flow, Skip> {
    let (time, rest) = match text.find("Node:") {
        Some(0) => (None, text),
        Some(at) => {
            let prefix = text[..at].trim();
            let time = parse_time(prefix)
                .ok_or_else(|| malformed("text before Node: is not an RFC 3339 time"))?;
            (Some(time), &text[at..])
        }
        None => return Err(malformed("no Node: field")),
    };
    let (mut sip, mut sport, mut dip, mut dport, mut protocol, mut verdict) =
        (None, None, None, None, None, None);
    for pair in rest.split(';') {
        let Some((key, value)) = pair.split_once(':') else {
            if pair.trim().is_empty() {
                continue;
            }
            return Err(malformed("a field without ':'"));
        };
        let value = value.trim();
        match key.trim() {
            "SIP" => sip = Some(value),
            "SPORT" => sport = Some(value),
            "DIP" => dip = Some(value),
            "DPORT" => dport = Some(value),
            "PROTOCOL" => protocol = Some(value),
            "PolicyVerdict" => verdict = Some(value),
            _ => {}
        }
    }
    let address = |value: Option<&str>, what: &str| {
        value
            .ok_or_else(|| malformed(format!("no {what}")))?
            .parse::<IpAddr>()
            .map_err(|_| malformed(format!("{what} is not an IP address")))
    };
    let src = address(sip, "SIP")?;
    let dst = address(dip, "DIP")?;
    let protocol = FlowProtocol::parse(protocol.ok_or_else(|| malformed("no PROTOCOL"))?)
        .ok_or_else(|| malformed("PROTOCOL is not a protocol name or number"))?;
    let mut flow = Flow::new(src, dst, protocol);
    flow.time = time;
    if protocol.ported().is_some() {
        let port = |value: Option<&str>, what: &str| {
            value
                .map(|text| {
                    text.parse::<u16>()
                        .map_err(|_| malformed(format!("{what} is not a port number")))
                })
                .transpose()
        };
        flow.src_port = port(sport, "SPORT")?;
        flow.dst_port = port(dport, "DPORT")?;
    }
    flow.observed = match verdict.ok_or_else(|| malformed("no PolicyVerdict"))? {
        "ACCEPT" => Some(Observed::Allow),
        "DENY" => Some(Observed::Deny),
        _ => return Err(malformed("PolicyVerdict is neither ACCEPT nor DENY")),
    };
    // The agent logs each packet's decision in its direction; it does not mark replies.
    flow.reply = Reply::Unknown;
    Ok(flow)
}
