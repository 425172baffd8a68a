//! Renderers: text, JSON, grid, CSV, Markdown and Graphviz outputs of engine results.

use netfence_engine::{
    connlist, Connection, DirectionVerdict, Endpoint, Engine, ListPeer, MatrixView, NoBackend,
    Outcome, ProbePort, RuleRef, ServiceVerdict, Verdict,
};
use netfence_model::net::FastMap;
use netfence_model::{PolicyType, Service, ServicePort, TargetPort};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::Arc;

fn rule_text(rule: &RuleRef) -> String {
    format!(
        "tier {}: {} {} rule {} {}",
        rule.tier, rule.kind, rule.policy, rule.rule, rule.action
    )
}

fn outcome_text(verdict: &DirectionVerdict, port: ProbePort) -> String {
    match &verdict.outcome {
        Outcome::NotApplicable => "allowed: not a pod, no pod policy applies".into(),
        Outcome::NotIsolated => format!(
            "allowed: no policy selects this pod for {}",
            verdict.direction
        ),
        Outcome::Rule { rule } if rule.action == netfence_engine::ir::Action::Allow => {
            format!("allowed by {}", rule_text(rule))
        }
        Outcome::Rule { rule } => format!("denied by {}", rule_text(rule)),
        Outcome::EndOfTier { tier } => {
            format!("denied: selected, and no rule allows {port} (end of tier {tier})")
        }
        Outcome::DefaultAllow => "allowed: every tier passed (profile default allow)".into(),
        Outcome::SamePod => "allowed: a pod may always reach itself".into(),
    }
}

/// The notes a verdict needs: for each direction, the rules that looked at addresses while a
/// pod of the connection has a synthetic one (`DirectionVerdict::unknown_address_rules`).
fn verdict_notes(engine: &Engine, src: Endpoint, dst: Endpoint, verdict: &Verdict) -> Vec<String> {
    let synthetic: Vec<String> = [src, dst]
        .into_iter()
        .filter_map(|endpoint| match endpoint {
            Endpoint::Pod(id) if engine.inventory().pods()[id].synthetic_ip => {
                let pod = &*engine.inventory().pods()[id];
                let ip = pod.ips.first().map(|ip| ip.to_string()).unwrap_or_default();
                Some(format!("{} (synthetic {ip})", pod.key()))
            }
            _ => None,
        })
        .collect();
    let mut notes = cni_note(engine, verdict);
    notes.extend(
    [&verdict.egress, &verdict.ingress]
        .into_iter()
        .filter(|direction| !direction.unknown_address_rules.is_empty())
        .map(|direction| {
            let rules: Vec<String> = direction
                .unknown_address_rules
                .iter()
                .map(rule_text)
                .collect();
            format!(
                "{} at {}: {} has no known address, and an invented address matches no ipBlock, nets or network set; these rules were judged as if it were outside every range, so with its real address the verdict could differ: {}",
                direction.direction,
                direction.endpoint.as_deref().unwrap_or("(external)"),
                synthetic.join(" and "),
                rules.join("; ")
            )
        }),
    );
    notes
}

/// The CNI, when it shaped the verdict: under Cilium, CIDR peers (a NetworkPolicy's ipBlock,
/// a Cilium policy's CIDR and `world` peers) never match pods or nodes; other CNIs read
/// NetworkPolicy as the upstream e2e suite does. Said whenever a policy selected either side.
fn cni_note(engine: &Engine, verdict: &Verdict) -> Vec<String> {
    let setting = &engine.inventory().cni;
    let evaluated =
        !verdict.egress.selected_by.is_empty() || !verdict.ingress.selected_by.is_empty();
    if setting.cni != netfence_model::cilium::Cni::Cilium || !evaluated {
        return Vec::new();
    }
    vec![format!(
        "evaluated for CNI {setting}: CIDR peers (NetworkPolicy ipBlock, Cilium CIDR and world entities) never match pods or nodes"
    )]
}

/// One verdict's two directions, indented by `indent`.
fn directions_text(
    out: &mut impl Write,
    indent: &str,
    verdict: &Verdict,
    port: ProbePort,
) -> io::Result<()> {
    for direction in [&verdict.egress, &verdict.ingress] {
        let label = match direction.direction {
            PolicyType::Egress => "egress ",
            PolicyType::Ingress => "ingress",
        };
        let who = direction.endpoint.as_deref().unwrap_or("(external)");
        writeln!(
            out,
            "{indent}{label} at {who}: {}",
            outcome_text(direction, port)
        )?;
        if !direction.selected_by.is_empty() {
            let mut names: Vec<String> = Vec::new();
            for p in &direction.selected_by {
                // One Cilium rule may sit in two tiers (its denies and its allows): name it once.
                let name = format!("{} {}", p.kind, p.policy);
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            writeln!(out, "{indent}    selected by: {}", names.join(", "))?;
        }
        if !direction.passed_through.is_empty() {
            // The walk: every Pass/Log step, then what decided.
            let mut steps: Vec<String> = direction.passed_through.iter().map(rule_text).collect();
            steps.push(match &direction.outcome {
                Outcome::Rule { rule } => rule_text(rule),
                Outcome::EndOfTier { tier } => format!("end of tier {tier} Deny"),
                Outcome::DefaultAllow => "profile Allow".into(),
                _ => String::new(),
            });
            writeln!(out, "{indent}    walk: {}", steps.join(" -> "))?;
        }
    }
    Ok(())
}

/// `netfence query -o text`.
pub fn query_text(
    out: &mut impl Write,
    engine: &Engine,
    src: Endpoint,
    dst: Endpoint,
    port: ProbePort,
    verdict: &Verdict,
) -> io::Result<()> {
    writeln!(
        out,
        "{} -> {} {}: {}",
        engine.endpoint_name(src),
        engine.endpoint_name(dst),
        port,
        if verdict.allowed { "ALLOW" } else { "DENY" }
    )?;
    directions_text(out, "  ", verdict, port)?;
    for note in verdict_notes(engine, src, dst, verdict) {
        writeln!(out, "  note: {note}")?;
    }
    Ok(())
}

/// `netfence query -o json`: the verdict with a top-level `"verdict": "allow"|"deny"`, and
/// `"notes"` (empty unless a pod's synthetic address could change the verdict).
pub fn query_json(
    out: &mut impl Write,
    engine: &Engine,
    src: Endpoint,
    dst: Endpoint,
    port: ProbePort,
    verdict: &Verdict,
) -> io::Result<()> {
    let value = json!({
        "verdict": if verdict.allowed { "allow" } else { "deny" },
        "from": engine.endpoint_name(src),
        "to": engine.endpoint_name(dst),
        "port": port.to_string(),
        "egress": verdict.egress,
        "ingress": verdict.ingress,
        "notes": verdict_notes(engine, src, dst, verdict),
        "cni": engine.inventory().cni.cni,
    });
    serde_json::to_writer_pretty(&mut *out, &value)?;
    writeln!(out)
}

/// Why a connection through a Service reaches no backend, in words.
fn no_backend_text(service: &Service, port: ProbePort, reason: &NoBackend) -> String {
    match reason {
        NoBackend::NoSuchPort => {
            let ports: Vec<String> = service
                .ports
                .iter()
                .map(|p| format!("{}/{}", p.protocol, p.port))
                .collect();
            format!(
                "Service {} has no port {port} (its ports: {})",
                service.key(),
                if ports.is_empty() {
                    "none".to_string()
                } else {
                    ports.join(", ")
                }
            )
        }
        NoBackend::NoSelector => format!(
            "Service {} has no selector: its endpoints are managed by hand and not in the input, so netfence knows no backend",
            service.key()
        ),
        NoBackend::NoPods => format!(
            "Service {} selects no pod in namespace {}: no backend, connections fail",
            service.key(),
            service.namespace
        ),
        NoBackend::TargetPortUnresolved => format!(
            "no pod selected by Service {} declares its target port for {port}: no backend serves it",
            service.key()
        ),
    }
}

fn target_port_json(port: &ServicePort) -> serde_json::Value {
    match &port.target {
        TargetPort::Number(n) => json!(n),
        TargetPort::Named(name) => json!(name),
    }
}

/// `netfence query --to` a Service, as text: the overall answer, then each backend's verdict
/// on its target port.
pub fn service_query_text(
    out: &mut impl Write,
    engine: &Engine,
    src: Endpoint,
    service: &Service,
    port: ProbePort,
    answer: &ServiceVerdict,
) -> io::Result<()> {
    let cluster_ips: Vec<String> = service
        .cluster_ips
        .iter()
        .map(|ip| ip.to_string())
        .collect();
    let via = if cluster_ips.is_empty() {
        format!("Service {}", service.key())
    } else {
        format!(
            "Service {}, cluster IP {}",
            service.key(),
            cluster_ips.join(", ")
        )
    };
    let summary = match &answer.no_backend {
        Some(_) => "DENY (no backend)".to_string(),
        None => format!(
            "{} ({} of {} backends allow)",
            if answer.allowed() { "ALLOW" } else { "DENY" },
            answer.allowed_backends(),
            answer.backends.len()
        ),
    };
    writeln!(
        out,
        "{} -> {}/svc/{} {port} ({via}): {summary}",
        engine.endpoint_name(src),
        service.namespace,
        service.name
    )?;
    if let Some(reason) = &answer.no_backend {
        writeln!(out, "  {}", no_backend_text(service, port, reason))?;
        return Ok(());
    }
    if !answer.allowed() && answer.allowed_backends() > 0 {
        writeln!(
            out,
            "  kube-proxy picks a backend per connection: connections to a denying backend fail"
        )?;
    }
    for backend in &answer.backends {
        let target = ProbePort {
            protocol: port.protocol,
            port: backend.target_port,
        };
        writeln!(
            out,
            "  backend {} ({target}): {}",
            engine.inventory().pods()[backend.pod].key(),
            if backend.verdict.allowed {
                "ALLOW"
            } else {
                "DENY"
            }
        )?;
        directions_text(out, "    ", &backend.verdict, target)?;
        for note in verdict_notes(engine, src, Endpoint::Pod(backend.pod), &backend.verdict) {
            writeln!(out, "    note: {note}")?;
        }
    }
    Ok(())
}

/// `netfence query --to` a Service, as JSON: the query contract's `verdict`, `from`, `to`,
/// `port` and `notes`, plus `service` (name, port, protocol, target port, cluster IPs),
/// `backends` (each pod's verdict with its `egress` and `ingress`), `backends_allowed` and,
/// when there is no backend, `reason`.
pub fn service_query_json(
    out: &mut impl Write,
    engine: &Engine,
    src: Endpoint,
    service: &Service,
    port: ProbePort,
    answer: &ServiceVerdict,
) -> io::Result<()> {
    let backends: Vec<serde_json::Value> = answer
        .backends
        .iter()
        .map(|backend| {
            json!({
                "pod": engine.inventory().pods()[backend.pod].key(),
                "target_port": backend.target_port,
                "verdict": if backend.verdict.allowed { "allow" } else { "deny" },
                "egress": backend.verdict.egress,
                "ingress": backend.verdict.ingress,
            })
        })
        .collect();
    let notes: Vec<String> = answer
        .backends
        .iter()
        .flat_map(|b| verdict_notes(engine, src, Endpoint::Pod(b.pod), &b.verdict))
        .collect();
    let value = json!({
        "verdict": if answer.allowed() { "allow" } else { "deny" },
        "from": engine.endpoint_name(src),
        "to": format!("{}/svc/{}", service.namespace, service.name),
        "port": port.to_string(),
        "service": {
            "name": service.key(),
            "port": port.port,
            "protocol": port.protocol.to_string(),
            "target_port": answer.port.as_ref().map(target_port_json),
            "cluster_ips": service.cluster_ips,
        },
        "backends": backends,
        "backends_allowed": answer.allowed_backends(),
        "reason": answer.no_backend.as_ref().map(|r| no_backend_text(service, port, r)),
        "notes": notes,
    });
    serde_json::to_writer_pretty(&mut *out, &value)?;
    writeln!(out)
}

/// The e2e truth-table grid, one block per port: rows are sources, columns destinations.
/// Streams row by row.
pub fn matrix_grid(out: &mut impl Write, matrix: &impl MatrixView) -> io::Result<()> {
    let endpoints = matrix.endpoints();
    let width = endpoints.iter().map(String::len).max().unwrap_or(1).max(1);
    for (p, port) in matrix.ports().iter().enumerate() {
        if p > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{port}:")?;
        write!(out, "{:<width$}", "-")?;
        for name in endpoints {
            write!(out, " {name}")?;
        }
        writeln!(out)?;
        for (src, name) in endpoints.iter().enumerate() {
            let mut line = format!("{name:<width$}");
            for (dst, column) in endpoints.iter().enumerate() {
                let cell = if matrix.allowed(p, src, dst) {
                    '.'
                } else {
                    'X'
                };
                // The cell sits under the middle of its column's name.
                let w = column.len();
                let left = (w - 1) / 2;
                line.push(' ');
                line.push_str(&" ".repeat(left));
                line.push(cell);
                line.push_str(&" ".repeat(w - 1 - left));
            }
            writeln!(out, "{}", line.trim_end())?;
        }
    }
    Ok(())
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

/// The matrix JSON contract: `{"ports", "endpoints", "allowed": {port: [[src, dst], …]}}`,
/// written pair by pair (self pairs omitted).
pub fn matrix_json(out: &mut impl Write, matrix: &impl MatrixView) -> io::Result<()> {
    let endpoints = matrix.endpoints();
    let list = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(", ");
    writeln!(out, "{{")?;
    writeln!(
        out,
        "  \"ports\": [{}],",
        list(&mut matrix.ports().iter().map(|p| json_string(&p.to_string())))
    )?;
    writeln!(
        out,
        "  \"endpoints\": [{}],",
        list(&mut endpoints.iter().map(|e| json_string(e)))
    )?;
    writeln!(out, "  \"allowed\": {{")?;
    let names: Vec<String> = endpoints.iter().map(|e| json_string(e)).collect();
    // Each pair is `\n      [src, dst]` from bytes prepared once per source: no formatting
    // per pair (millions of pairs).
    let mut line: Vec<u8> = Vec::new();
    for (p, port) in matrix.ports().iter().enumerate() {
        write!(out, "    {}: [", json_string(&port.to_string()))?;
        let mut first = true;
        for src in 0..names.len() {
            line.clear();
            line.extend_from_slice(b"\n      [");
            line.extend_from_slice(names[src].as_bytes());
            line.extend_from_slice(b", ");
            let prefix = line.len();
            for (dst, name) in names.iter().enumerate() {
                if src != dst && matrix.allowed(p, src, dst) {
                    if !first {
                        out.write_all(b",")?;
                    }
                    first = false;
                    line.truncate(prefix);
                    line.extend_from_slice(name.as_bytes());
                    line.push(b']');
                    out.write_all(&line)?;
                }
            }
        }
        let close = if first { "]" } else { "\n    ]" };
        let comma = if p + 1 < matrix.ports().len() {
            ","
        } else {
            ""
        };
        writeln!(out, "{close}{comma}")?;
    }
    writeln!(out, "  }}\n}}")
}

/// CSV: one row per (port, source, destination), self pairs omitted; streamed.
pub fn matrix_csv(out: &mut impl Write, matrix: &impl MatrixView) -> io::Result<()> {
    writeln!(out, "port,source,destination,allowed")?;
    let endpoints = matrix.endpoints();
    for (p, port) in matrix.ports().iter().enumerate() {
        for (src, s) in endpoints.iter().enumerate() {
            for (dst, d) in endpoints.iter().enumerate() {
                if src != dst {
                    writeln!(out, "{port},{s},{d},{}", matrix.allowed(p, src, dst))?;
                }
            }
        }
    }
    Ok(())
}

/// `src => dst : conns`.
pub fn list_txt(out: &mut impl Write, list: &[Connection]) -> io::Result<()> {
    for c in list {
        writeln!(out, "{} => {} : {}", c.src, c.dst, c.conns)?;
    }
    Ok(())
}

/// `[{"src", "dst", "conn"}, …]`.
pub fn list_json(out: &mut impl Write, list: &[Connection]) -> io::Result<()> {
    let value: Vec<_> = list
        .iter()
        .map(|c| json!({"src": c.src.to_string(), "dst": c.dst.to_string(), "conn": c.conns.to_string()}))
        .collect();
    serde_json::to_writer_pretty(&mut *out, &value)?;
    writeln!(out)
}

fn csv_field(text: &str) -> String {
    if text.contains(',') || text.contains('"') {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// `src,dst,conn`.
pub fn list_csv(out: &mut impl Write, list: &[Connection]) -> io::Result<()> {
    writeln!(out, "src,dst,conn")?;
    for c in list {
        writeln!(
            out,
            "{},{},{}",
            csv_field(&c.src.to_string()),
            csv_field(&c.dst.to_string()),
            csv_field(&c.conns.to_string())
        )?;
    }
    Ok(())
}

/// A Markdown table.
pub fn list_md(out: &mut impl Write, list: &[Connection]) -> io::Result<()> {
    writeln!(out, "| src | dst | conn |")?;
    writeln!(out, "|-----|-----|------|")?;
    for c in list {
        writeln!(out, "| {} | {} | {} |", c.src, c.dst, c.conns)?;
    }
    Ok(())
}

/// Graphviz: one cluster per namespace, external ranges outside, edges labelled with ports.
pub fn list_dot(out: &mut impl Write, list: &[Connection]) -> io::Result<()> {
    let mut namespaces: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut externals = std::collections::BTreeSet::new();
    for c in list {
        for peer in [&c.src, &c.dst] {
            match peer {
                ListPeer::Workload(w) => {
                    let entry = namespaces.entry(w.namespace.clone()).or_default();
                    let node = (w.to_string(), format!("{}[{}]", w.name, w.kind));
                    if !entry.contains(&node) {
                        entry.push(node);
                    }
                }
                ListPeer::External(..) => {
                    externals.insert(peer.to_string());
                }
            }
        }
    }
    writeln!(out, "digraph {{")?;
    for (namespace, mut nodes) in namespaces {
        nodes.sort();
        writeln!(out, "\tsubgraph \"cluster_{namespace}[namespace]\" {{")?;
        writeln!(out, "\t\tcolor=\"black\"\n\t\tfontcolor=\"black\"")?;
        for (id, label) in nodes {
            writeln!(
                out,
                "\t\t\"{id}\" [label=\"{label}\" color=\"blue\" fontcolor=\"blue\"]"
            )?;
        }
        writeln!(out, "\t\tlabel=\"{namespace}[namespace]\"\n\t}}")?;
    }
    for external in externals {
        writeln!(
            out,
            "\t\"{external}\" [label=\"{external}\" color=\"red2\" fontcolor=\"red2\"]"
        )?;
    }
    for c in list {
        writeln!(
            out,
            "\t\"{}\" -> \"{}\" [label=\"{}\" color=\"gold2\" fontcolor=\"darkgreen\" weight=0.5]",
            c.src, c.dst, c.conns
        )?;
    }
    writeln!(out, "}}")
}

/// `netfence demo`: what the example cluster contains, who is isolated, and what may talk.
pub fn demo(
    out: &mut impl Write,
    engine: &Engine,
    groups: &netfence_audit::AwsInput,
) -> io::Result<()> {
    let inventory = engine.inventory();
    writeln!(
        out,
        "netfence demo: the EKS best-practices example cluster ({} namespaces, {} pods, {} NetworkPolicies)\n",
        inventory.namespaces().len(),
        inventory.pods().len(),
        inventory.network_policies.len()
    )?;
    writeln!(out, "Isolation (which policies select each pod):")?;
    let probe = ProbePort {
        protocol: netfence_model::Protocol::Tcp,
        port: 1,
    };
    for (id, pod) in inventory.pods().iter().enumerate() {
        let id = netfence_model::PodId::new(id);
        let verdict = engine.explain(
            Endpoint::Pod(id),
            Endpoint::Address("192.0.2.1".parse().expect("literal address")),
            probe.protocol,
            probe.port,
        );
        let ingress = engine.explain(
            Endpoint::Address("192.0.2.1".parse().expect("literal address")),
            Endpoint::Pod(id),
            probe.protocol,
            probe.port,
        );
        let describe = |v: &DirectionVerdict| {
            if v.selected_by.is_empty() {
                "open (no policy)".to_string()
            } else {
                v.selected_by
                    .iter()
                    .map(|p| p.policy.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        writeln!(
            out,
            "  {:<36} ingress: {:<48} egress: {}",
            pod.key(),
            describe(&ingress.ingress),
            describe(&verdict.egress)
        )?;
    }
    writeln!(
        out,
        "\nAllowed connections (workloads and external ranges):"
    )?;
    let list = connlist(engine);
    for c in &list {
        writeln!(out, "  {} => {} : {}", c.src, c.dst, c.conns)?;
    }
    writeln!(
        out,
        "\nAudit (netfence audit, with the example VPC's security groups):"
    )?;
    let report = netfence_audit::audit_all(
        engine,
        &netfence_audit::Suppressions::default(),
        Some(groups),
    );
    for finding in &report.findings {
        writeln!(
            out,
            "  {:<7} {} {}: {}",
            finding.severity.to_string(),
            finding.id,
            finding.object,
            finding.message
        )?;
    }
    writeln!(
        out,
        "\nTry: netfence demo --export DIR, then netfence query -f DIR --from default/nginx-0 --to kube-system/coredns-0 --port UDP/53"
    )
}

/// `netfence audit -o text`: findings grouped by namespace; with `colour`, severities in ANSI
/// colour (red error, yellow warning, cyan info).
pub fn audit_text(
    out: &mut impl Write,
    report: &netfence_audit::Report,
    colour: bool,
) -> io::Result<()> {
    let mut current: Option<&Option<String>> = None;
    for finding in &report.findings {
        if current != Some(&finding.namespace) {
            current = Some(&finding.namespace);
            writeln!(
                out,
                "\n{}",
                finding
                    .namespace
                    .as_deref()
                    .map(|n| format!("namespace {n}"))
                    .unwrap_or_else(|| "cluster".into())
            )?;
        }
        let location = match (&finding.file, finding.line) {
            (Some(file), Some(line)) => format!(" ({file}:{line})"),
            _ => String::new(),
        };
        let severity = format!("{:<7}", finding.severity.to_string());
        let severity = if colour {
            let code = match finding.severity {
                netfence_audit::Severity::Error => "31",
                netfence_audit::Severity::Warning => "33",
                netfence_audit::Severity::Info => "36",
            };
            format!("\x1b[{code}m{severity}\x1b[0m")
        } else {
            severity
        };
        writeln!(
            out,
            "  {severity} {} {}: {}{location}",
            finding.id, finding.object, finding.message
        )?;
    }
    let count =
        |s: netfence_audit::Severity| report.findings.iter().filter(|f| f.severity == s).count();
    writeln!(
        out,
        "\n{} findings: {} error, {} warning, {} info; {} suppressed",
        report.findings.len(),
        count(netfence_audit::Severity::Error),
        count(netfence_audit::Severity::Warning),
        count(netfence_audit::Severity::Info),
        report.suppressed
    )?;
    for note in &report.notes {
        writeln!(out, "note: {note}")?;
    }
    Ok(())
}

/// `netfence audit -o json`.
pub fn audit_json(out: &mut impl Write, report: &netfence_audit::Report) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}

/// `netfence audit -o sarif`: SARIF 2.1.0, one rule per check, one result per finding.
pub fn audit_sarif(out: &mut impl Write, report: &netfence_audit::Report) -> io::Result<()> {
    let level = |s: netfence_audit::Severity| match s {
        netfence_audit::Severity::Error => "error",
        netfence_audit::Severity::Warning => "warning",
        netfence_audit::Severity::Info => "note",
    };
    let rules: Vec<_> = netfence_audit::CHECKS
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "shortDescription": {"text": c.title},
                "fullDescription": {"text": c.rationale},
                "defaultConfiguration": {"level": level(c.severity)},
            })
        })
        .collect();
    let results: Vec<_> = report
        .findings
        .iter()
        .map(|f| {
            let mut result = json!({
                "ruleId": f.id,
                "level": level(f.severity),
                "message": {"text": format!("{}: {}", f.object, f.message)},
                "properties": {"remediation": f.remediation, "object": f.object},
            });
            if let Some(file) = &f.file {
                let mut location = json!({"physicalLocation": {"artifactLocation": {"uri": file}}});
                if let Some(line) = f.line.filter(|l| *l >= 1) {
                    location["physicalLocation"]["region"] = json!({"startLine": line});
                }
                result["locations"] = json!([location]);
            }
            result
        })
        .collect();
    let sarif = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "netfence",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    });
    serde_json::to_writer_pretty(&mut *out, &sarif)?;
    writeln!(out)
}

/// `netfence diff -o txt`, netpol-analyzer's format.
pub fn diff_txt(out: &mut impl Write, lines: &[netfence_engine::DiffLine]) -> io::Result<()> {
    if lines.is_empty() {
        return writeln!(out, "no differences");
    }
    writeln!(out, "Connectivity diff:")?;
    for d in lines {
        write!(
            out,
            "diff-type: {}, source: {}, destination: {}, ref1: {}, ref2: {}",
            d.kind, d.src, d.dst, d.before, d.after
        )?;
        if let Some(info) = &d.workloads_info {
            write!(out, ", workloads-diff-info: {info}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// `netfence diff -o csv`.
pub fn diff_csv(out: &mut impl Write, lines: &[netfence_engine::DiffLine]) -> io::Result<()> {
    writeln!(
        out,
        "diff-type,source,destination,ref1,ref2,workloads-diff-info"
    )?;
    for d in lines {
        writeln!(
            out,
            "{},{},{},{},{},{}",
            d.kind,
            csv_field(&d.src.to_string()),
            csv_field(&d.dst.to_string()),
            csv_field(&d.before.to_string()),
            csv_field(&d.after.to_string()),
            csv_field(d.workloads_info.as_deref().unwrap_or(""))
        )?;
    }
    Ok(())
}

/// `netfence diff -o md`.
pub fn diff_md(out: &mut impl Write, lines: &[netfence_engine::DiffLine]) -> io::Result<()> {
    writeln!(
        out,
        "| diff-type | source | destination | ref1 | ref2 | workloads-diff-info |"
    )?;
    writeln!(
        out,
        "|-----------|--------|-------------|------|------|---------------------|"
    )?;
    for d in lines {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            d.kind,
            d.src,
            d.dst,
            d.before,
            d.after,
            d.workloads_info.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}

/// `netfence diff -o json`.
pub fn diff_json(out: &mut impl Write, lines: &[netfence_engine::DiffLine]) -> io::Result<()> {
    let value = diff_values(lines);
    serde_json::to_writer_pretty(&mut *out, &value)?;
    writeln!(out)
}

/// The objects of `netfence diff -o json` (also the `what_if` of `advise`'s report).
pub fn diff_values(lines: &[netfence_engine::DiffLine]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|d| {
            json!({
                "diff-type": d.kind.to_string(),
                "source": d.src.to_string(),
                "destination": d.dst.to_string(),
                "ref1": d.before.to_string(),
                "ref2": d.after.to_string(),
                "workloads-diff-info": d.workloads_info.clone().unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counts of the mismatch groups are written as `{}` writes them.
    #[test]
    fn counts_are_written_as_format_writes_them() {
        let mut buffer = [0u8; 20];
        for value in [
            0,
            1,
            9,
            10,
            99,
            100,
            4_294_967_295,
            10_000_000_000,
            u64::MAX,
        ] {
            assert_eq!(decimal(value, &mut buffer), value.to_string().as_bytes());
        }
    }

    /// A group keeps the first ten distinct ports in the order they were added, the first
    /// two in itself and the rest beside it, each group its own.
    #[test]
    fn a_group_keeps_its_first_ten_ports_in_order() {
        use netfence_flows::FlowProtocol;
        let mut more = Vec::new();
        let (mut a, mut b) = (Group::default(), Group::default());
        let port = |n: u16| match n % 3 {
            0 => (FlowProtocol::Udp, Some(n)),
            1 => (FlowProtocol::Tcp, Some(n)),
            _ => (FlowProtocol::Other(u8::try_from(n).unwrap()), None),
        };
        let mut expected = Vec::new();
        for n in [
            5u16, 5, 7, 5, 7, 9, 11, 9, 13, 15, 17, 19, 21, 23, 25, 27, 5,
        ] {
            a.add_port(&mut more, port(n));
            b.add_port(&mut more, port(n + 1));
            if !expected.contains(&n) && expected.len() < GROUP_PORTS {
                expected.push(n);
            }
        }
        let a_ports: Vec<GroupPort> = a.ports(&more).copied().collect();
        let b_ports: Vec<GroupPort> = b.ports(&more).copied().collect();
        assert_eq!(
            a_ports,
            expected.iter().map(|&n| port(n)).collect::<Vec<_>>()
        );
        assert_eq!(
            b_ports,
            expected.iter().map(|&n| port(n + 1)).collect::<Vec<_>>()
        );
        assert_eq!(more.len(), 2);
        let mut one = Group::default();
        one.add_port(&mut more, port(1));
        one.add_port(&mut more, port(1));
        assert_eq!(one.ports(&more).count(), 1);
        assert_eq!(more.len(), 2);
    }

    #[test]
    fn audit_text_colours_severities_only_when_asked() {
        let mut loader = netfence_model::Loader::new();
        loader.load_str(
            "t.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: team}\nspec: {containers: [{name: c}]}\n",
        );
        let report = netfence_audit::audit(&Engine::new(loader.finish().unwrap()));
        let render = |colour| {
            let mut out = Vec::new();
            audit_text(&mut out, &report, colour).unwrap();
            String::from_utf8(out).unwrap()
        };
        let (plain, coloured) = (render(false), render(true));
        assert!(!plain.contains('\u{1b}'));
        assert!(
            coloured.contains("\u{1b}[33mwarning\u{1b}[0m NF-TC-001"),
            "{coloured}"
        );
        assert!(
            coloured.contains("\u{1b}[36minfo   \u{1b}[0m NF-TC-005"),
            "{coloured}"
        );
        let stripped = coloured
            .replace("\u{1b}[33m", "")
            .replace("\u{1b}[36m", "")
            .replace("\u{1b}[31m", "")
            .replace("\u{1b}[0m", "");
        assert_eq!(stripped, plain);
    }
}

/// How `flows check` writes one judged flow.
#[derive(Clone, Copy)]
pub enum FlowRowFormat {
    /// One JSON object per line.
    Json,
    /// One CSV record per line, after [`flows_header`].
    Csv,
}

/// The CSV header of `flows check -o csv` (the JSON keys, in order); nothing for JSON Lines.
pub fn flows_header(out: &mut impl Write, format: FlowRowFormat) -> io::Result<()> {
    match format {
        FlowRowFormat::Json => Ok(()),
        FlowRowFormat::Csv => writeln!(
            out,
            "time,src,dst,protocol,port,observed,policy,decided_by,mismatch"
        ),
    }
}

/// One row of `flows check -o json|csv`: the `flows check` contract's keys.
#[derive(serde::Serialize)]
struct FlowRow<'a> {
    time: Option<String>,
    src: String,
    dst: String,
    /// `TCP`/`UDP`/`SCTP`/`ICMP` as a string, any other protocol as its number.
    protocol: serde_json::Value,
    port: Option<u16>,
    observed: Option<&'static str>,
    policy: Option<&'static str>,
    decided_by: Option<&'a str>,
    mismatch: bool,
}

/// Write one judged flow.
pub fn flow_row(
    out: &mut impl Write,
    engine: &Engine,
    flow: &netfence_flows::CheckedFlow,
    format: FlowRowFormat,
) -> io::Result<()> {
    let row = FlowRow {
        time: flow.time.map(|time| time.to_string()),
        src: engine.endpoint_name(flow.src),
        dst: engine.endpoint_name(flow.dst),
        protocol: match flow.protocol {
            netfence_flows::FlowProtocol::Other(number) => json!(number),
            named => json!(named.to_string()),
        },
        port: flow.port,
        observed: flow.observed.map(netfence_flows::Observed::as_str),
        policy: flow.policy.map(netfence_flows::Judgement::as_str),
        decided_by: flow.decided_by.as_deref(),
        mismatch: flow.mismatch,
    };
    match format {
        FlowRowFormat::Json => {
            serde_json::to_writer(&mut *out, &row)?;
            writeln!(out)
        }
        FlowRowFormat::Csv => {
            let text = |value: Option<&str>| value.map(csv_field).unwrap_or_default();
            writeln!(
                out,
                "{},{},{},{},{},{},{},{},{}",
                text(row.time.as_deref()),
                csv_field(&row.src),
                csv_field(&row.dst),
                flow.protocol,
                row.port.map(|p| p.to_string()).unwrap_or_default(),
                text(row.observed),
                text(row.policy),
                text(row.decided_by),
                row.mismatch
            )
        }
    }
}

/// What `flows check` counted, for its summary.
pub struct FlowsSummary<'a> {
    /// What the readers counted.
    pub read: &'a netfence_flows::ReadStats,
    /// What the checker counted.
    pub checked: &'a netfence_flows::check::CheckStats,
    /// Seconds spent reading and checking (loading the cluster excluded).
    pub seconds: f64,
}

/// The summary of `flows check`: records read, parsed, skipped with reasons, replies, flows
/// not judged, mismatches and records per second.
pub fn flows_summary(out: &mut impl Write, summary: &FlowsSummary) -> io::Result<()> {
    let read = summary.read;
    let checked = summary.checked;
    writeln!(out, "records read: {}", read.read)?;
    writeln!(out, "parsed: {}", read.parsed)?;
    let reasons: Vec<String> = read
        .skipped
        .iter()
        .map(|(reason, count)| format!("{reason}: {count}"))
        .collect();
    if reasons.is_empty() {
        writeln!(out, "skipped: 0")?;
    } else {
        writeln!(
            out,
            "skipped: {} ({})",
            read.skipped_total(),
            reasons.join(", ")
        )?;
    }
    writeln!(
        out,
        "replies: {} (not judged as connections)",
        checked.replies
    )?;
    writeln!(out, "judged: {}", checked.judged - checked.not_judged)?;
    if checked.not_judged > 0 {
        writeln!(
            out,
            "not judged: {} (protocol without ports, or no port: policy is evaluated for TCP, UDP and SCTP)",
            checked.not_judged
        )?;
    }
    if checked.history_pods_missing > 0 {
        writeln!(
            out,
            "note: {} flow(s) had an address the pods history gives to a pod the inputs do not have; judged as the bare address",
            checked.history_pods_missing
        )?;
    }
    if checked.security_group_denials > 0 {
        writeln!(
            out,
            "denied by security groups: {}",
            checked.security_group_denials
        )?;
    }
    writeln!(out, "mismatches: {}", checked.mismatches)?;
    let rate = if summary.seconds > 0.0 {
        read.read as f64 / summary.seconds
    } else {
        0.0
    };
    writeln!(out, "records per second: {rate:.0}")
}

/// A side of a mismatch group while counting: a workload by its index in
/// [`MismatchGroups::workload_names`], or an address with [`ADDRESS`] set, by its index in
/// [`MismatchGroups::addresses`].
type Side = u32;

/// [`Side`]: an address.
const ADDRESS: u32 = 1 << 31;

/// A mismatch group's key while counting, by value (no text made per flow): source and
/// destination [`Side`], deciding policy (0: none, else 1 + its index in
/// [`MismatchGroups::policy_names`]), observed (0 allow, 1 deny, 2 unknown). One to one with
/// the printed key (source, destination, deciding policy, observed): a workload's
/// `namespace/name` holds a `/` and an address none, and "no policy" is no policy's `Kind
/// namespace/name`.
type CountKey = (Side, Side, u32, u8);

/// A port of a mismatch group: protocol and destination port.
type GroupPort = (netfence_flows::FlowProtocol, Option<u16>);

/// The ports a mismatch group keeps: the first ten, in the order seen.
const GROUP_PORTS: usize = 10;
/// The ports a [`Group`] holds itself; the others sit in [`MismatchGroups::more_ports`].
const INLINE_PORTS: usize = 2;

/// A mismatch group's flows and (the first ten of) their ports, in the order seen (so
/// that groups of inputs read apart merge into what one pass gives); printed sorted. The
/// first two ports sit in the group, the rest (rare: a group is one workload pair, one
/// policy) in [`MismatchGroups::more_ports`]: a group and its key take 48 bytes, so that
/// 100,000 groups' map stays about 6 MB (with ten ports inline it was 88 bytes, two cache
/// lines, a map of 11.5 MB).
struct Group {
    flows: u64,
    ports: [GroupPort; INLINE_PORTS],
    /// How many ports (up to [`GROUP_PORTS`]).
    len: u8,
    /// Where the ports after the first two sit in [`MismatchGroups::more_ports`] (when
    /// `len` is more than two).
    more: u32,
}

impl Default for Group {
    fn default() -> Group {
        Group {
            flows: 0,
            ports: [(netfence_flows::FlowProtocol::Tcp, None); INLINE_PORTS],
            len: 0,
            more: 0,
        }
    }
}

// A group with its key: 48 bytes (see [`Group`]).
const _: () = assert!(std::mem::size_of::<(CountKey, Group)>() == 48);

/// The ports of a [`Group`] after its first two.
type MorePorts = [GroupPort; GROUP_PORTS - INLINE_PORTS];

impl Group {
    /// The ports, in the order seen.
    fn ports<'g>(&'g self, more_ports: &'g [MorePorts]) -> impl Iterator<Item = &'g GroupPort> {
        let len = usize::from(self.len);
        let more = match len > INLINE_PORTS {
            true => more_ports
                .get(self.more as usize)
                .map_or(&[][..], |more| &more[..len - INLINE_PORTS]),
            false => &[],
        };
        self.ports[..len.min(INLINE_PORTS)].iter().chain(more)
    }

    fn add_port(&mut self, more_ports: &mut Vec<MorePorts>, port: GroupPort) {
        let len = usize::from(self.len);
        if len >= GROUP_PORTS || self.ports(more_ports).any(|&seen| seen == port) {
            return;
        }
        if len < INLINE_PORTS {
            self.ports[len] = port;
        } else {
            if len == INLINE_PORTS {
                self.more = u32::try_from(more_ports.len()).unwrap_or(u32::MAX);
                more_ports.push([port; GROUP_PORTS - INLINE_PORTS]);
            }
            match more_ports.get_mut(self.more as usize) {
                Some(more) => more[len - INLINE_PORTS] = port,
                None => return,
            }
        }
        self.len += 1;
    }
}

/// The mismatches of `flows check -o text`, grouped by (source workload, destination
/// workload, deciding policy, what was observed). Counted by small integers (workload,
/// address and policy indices) in a hash map, made into text once per group when written:
/// a log with mostly mismatches adds millions of flows.
#[derive(Default)]
pub struct MismatchGroups {
    groups: FastMap<CountKey, Group>,
    /// The ports of groups with more than two, after their first two ([`Group::more`]).
    more_ports: Vec<MorePorts>,
    /// Each pod's workload index, filled as pods are seen (`u32::MAX`: not yet).
    workload_of: Vec<u32>,
    /// `namespace/name` by workload index.
    workload_names: Vec<String>,
    workload_index: FastMap<String, u32>,
    addresses: Vec<std::net::IpAddr>,
    address_index: FastMap<std::net::IpAddr, u32>,
    /// Deciding policies' text by index.
    policy_names: Vec<Arc<str>>,
    policy_index: FastMap<Arc<str>, u32>,
    /// Policy index by the text's address (the checker makes each name once): every text
    /// seen is kept in `seen_policies`, so that its address stays its own.
    policy_by_address: FastMap<usize, u32>,
    seen_policies: Vec<Arc<str>>,
}

/// `name`'s index in `names`, added when new.
fn intern<K: Clone + Eq + std::hash::Hash>(
    names: &mut Vec<K>,
    index: &mut FastMap<K, u32>,
    name: &K,
) -> u32 {
    if let Some(&at) = index.get(name) {
        return at;
    }
    let at = u32::try_from(names.len()).unwrap_or(u32::MAX);
    names.push(name.clone());
    index.insert(name.clone(), at);
    at
}

impl MismatchGroups {
    /// The side of `endpoint`: pod `id`'s workload (`namespace/name`, indexed once per pod),
    /// or the address.
    fn side(&mut self, engine: &Engine, endpoint: Endpoint) -> Side {
        let id = match endpoint {
            Endpoint::Pod(id) => id,
            Endpoint::Address(ip) => {
                return ADDRESS | intern(&mut self.addresses, &mut self.address_index, &ip);
            }
        };
        if let Some(&index) = self.workload_of.get(id.index()).filter(|&&i| i != u32::MAX) {
            return index;
        }
        let pods = engine.inventory().pods();
        if self.workload_of.len() < pods.len() {
            self.workload_of.resize(pods.len(), u32::MAX);
        }
        let workload = &pods[id].workload;
        let name = format!("{}/{}", workload.namespace, workload.name);
        let index = intern(&mut self.workload_names, &mut self.workload_index, &name);
        self.workload_of[id] = index;
        index
    }

    /// The key of deciding policy `decided_by` (by its address, its text once per address).
    fn policy(&mut self, decided_by: Option<&Arc<str>>) -> u32 {
        let Some(name) = decided_by else {
            return 0;
        };
        let address = Arc::as_ptr(name).cast::<u8>() as usize;
        if let Some(&index) = self.policy_by_address.get(&address) {
            return index;
        }
        let index = 1 + intern(&mut self.policy_names, &mut self.policy_index, name);
        self.seen_policies.push(Arc::clone(name));
        self.policy_by_address.insert(address, index);
        index
    }

    /// Count one mismatching flow.
    pub fn add(&mut self, engine: &Engine, flow: &netfence_flows::CheckedFlow) {
        self.add_flows(engine, flow, 1);
    }

    /// Count `flows` mismatching flows like `flow` (a row of
    /// [`netfence_flows::Checker::counting`]: a connection's later rows offer its port again,
    /// which changes nothing, so the ports stay the first ten in reading order).
    pub fn add_flows(&mut self, engine: &Engine, flow: &netfence_flows::CheckedFlow, flows: u64) {
        let key = (
            self.side(engine, flow.src),
            self.side(engine, flow.dst),
            self.policy(flow.decided_by.as_ref()),
            match flow.observed {
                Some(netfence_flows::Observed::Allow) => 0,
                Some(netfence_flows::Observed::Deny) => 1,
                None => 2,
            },
        );
        let entry = self.groups.entry(key).or_default();
        entry.flows += flows;
        entry.add_port(&mut self.more_ports, (flow.protocol, flow.port));
    }

    /// Add the groups of flows read after these: the same groups, counts and ports as
    /// adding those flows here one by one.
    pub fn merge(&mut self, later: MismatchGroups) {
        if self.groups.is_empty() {
            // The first input's groups (or the only input's): taken as they are.
            *self = later;
            return;
        }
        let side = |side: Side, this: &mut MismatchGroups| {
            if side & ADDRESS != 0 {
                let ip = later.addresses[(side & !ADDRESS) as usize];
                ADDRESS | intern(&mut this.addresses, &mut this.address_index, &ip)
            } else {
                let name = &later.workload_names[side as usize];
                intern(&mut this.workload_names, &mut this.workload_index, name)
            }
        };
        for (&(src, dst, policy, observed), group) in &later.groups {
            let policy = match policy {
                0 => 0,
                n => {
                    let name = &later.policy_names[n as usize - 1];
                    1 + intern(&mut self.policy_names, &mut self.policy_index, name)
                }
            };
            let key = (side(src, self), side(dst, self), policy, observed);
            let entry = self.groups.entry(key).or_default();
            entry.flows += group.flows;
            for &port in group.ports(&later.more_ports) {
                entry.add_port(&mut self.more_ports, port);
            }
        }
    }

    /// The printed text of a side.
    fn side_name(&self, side: Side) -> String {
        if side & ADDRESS != 0 {
            self.addresses[(side & !ADDRESS) as usize].to_string()
        } else {
            self.workload_names[side as usize].clone()
        }
    }
}

/// `value` in decimal, written at the end of `buffer` (what `{value}` prints).
fn decimal(mut value: u64, buffer: &mut [u8; 20]) -> &[u8] {
    let mut at = buffer.len();
    loop {
        at -= 1;
        buffer[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &buffer[at..];
        }
    }
}

/// Write the mismatch groups, most flows first.
pub fn mismatch_groups(out: &mut impl Write, groups: &MismatchGroups) -> io::Result<()> {
    if groups.groups.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nmismatches by workload:")?;
    // Sorted as by the printed key (source, destination, deciding policy, observed) after
    // the count, through the rank of each distinct text: integers compared, each text made
    // once. Every side interned is ranked (each is some group's), workloads and addresses
    // in one order, read by index: no map probed per group.
    let mut sides: Vec<(String, Side)> = Vec::new();
    sides.extend((0..groups.workload_names.len()).map(|at| {
        let side = u32::try_from(at).unwrap_or(u32::MAX);
        (groups.side_name(side), side)
    }));
    sides.extend((0..groups.addresses.len()).map(|at| {
        let side = ADDRESS | u32::try_from(at).unwrap_or(u32::MAX);
        (groups.side_name(side), side)
    }));
    sides.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut workload_rank = vec![0u32; groups.workload_names.len()];
    let mut address_rank = vec![0u32; groups.addresses.len()];
    for (at, &(_, side)) in sides.iter().enumerate() {
        let rank = u32::try_from(at).unwrap_or(u32::MAX);
        match side & ADDRESS {
            0 => workload_rank[side as usize] = rank,
            _ => address_rank[(side & !ADDRESS) as usize] = rank,
        }
    }
    let rank = |side: Side| match side & ADDRESS {
        0 => workload_rank[side as usize],
        _ => address_rank[(side & !ADDRESS) as usize],
    };
    let policy_name = |policy: u32| match policy {
        0 => "no policy",
        n => &groups.policy_names[n as usize - 1],
    };
    let mut policies: Vec<u32> = (0..=groups.policy_names.len())
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        .collect();
    policies.sort_unstable_by_key(|&policy| policy_name(policy));
    let mut policy_rank = vec![0u32; policies.len()];
    for (at, &policy) in policies.iter().enumerate() {
        policy_rank[policy as usize] = u32::try_from(at).unwrap_or(u32::MAX);
    }
    // Each distinct port's text made once, ranked by that text: a group's ports are
    // written in rank order (their texts sorted), with no text made per group.
    let mut port_rank: FastMap<GroupPort, u32> = FastMap::default();
    let mut port_texts: Vec<(String, GroupPort)> = Vec::new();
    for group in groups.groups.values() {
        for &port in group.ports(&groups.more_ports) {
            port_rank.entry(port).or_insert_with(|| {
                let text = match port {
                    (protocol, Some(number)) => format!("{protocol}/{number}"),
                    (protocol, None) => protocol.to_string(),
                };
                port_texts.push((text, port));
                0
            });
        }
    }
    port_texts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (at, (_, port)) in port_texts.iter().enumerate() {
        port_rank.insert(*port, u32::try_from(at).unwrap_or(u32::MAX));
    }
    let mut sorted: Vec<_> = groups
        .groups
        .iter()
        .map(|(&(src, dst, policy, observed), group)| {
            // "allow", "deny", "unknown" sort as their indices do.
            let order = (
                std::cmp::Reverse(group.flows),
                rank(src),
                rank(dst),
                policy_rank[policy as usize],
                observed,
            );
            (order, policy, group)
        })
        .collect();
    sorted.sort_unstable_by_key(|(order, ..)| *order);
    let mut ranks: Vec<u32> = Vec::with_capacity(10);
    // A line's text after its ports, by observed (0 allow, 1 deny, 2 unknown).
    const VERDICT: [&[u8]; 3] = [
        b": observed allow, policy deny (",
        b": observed deny, policy allow (",
        b": observed unknown, policy allow (",
    ];
    let mut number = [0u8; 20];
    for ((_, src, dst, _, observed), policy, group) in sorted {
        ranks.clear();
        ranks.extend(group.ports(&groups.more_ports).map(|port| port_rank[port]));
        ranks.sort_unstable();
        out.write_all(b"  ")?;
        out.write_all(sides[src as usize].0.as_bytes())?;
        out.write_all(b" -> ")?;
        out.write_all(sides[dst as usize].0.as_bytes())?;
        out.write_all(b" ")?;
        for (n, &at) in ranks.iter().enumerate() {
            if n > 0 {
                out.write_all(b",")?;
            }
            out.write_all(port_texts[at as usize].0.as_bytes())?;
        }
        out.write_all(VERDICT[usize::from(observed)])?;
        out.write_all(policy_name(policy).as_bytes())?;
        out.write_all(b"): ")?;
        out.write_all(decimal(group.flows, &mut number))?;
        out.write_all(b" flow(s)\n")?;
    }
    Ok(())
}
