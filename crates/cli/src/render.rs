//! Renderers: text, JSON, grid, CSV, Markdown and Graphviz outputs of engine results.

use netfence_engine::{
    connlist, Connection, DirectionVerdict, Endpoint, Engine, ListPeer, MatrixView, NoBackend,
    Outcome, ProbePort, RuleRef, ServiceVerdict, Verdict,
};
use netfence_model::{PolicyType, Service, ServicePort, TargetPort};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{self, Write};

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

    /// A row as `flows check -o json|csv` wrote it before [`FlowRowWriter`] (every text
    /// made for the row, JSON by `serde_json` from a struct of the contract's keys): the
    /// reference the writer is held to.
    fn reference_row(engine: &Engine, flow: &netfence_flows::CheckedFlow, json: bool) -> String {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            time: Option<String>,
            src: String,
            dst: String,
            protocol: serde_json::Value,
            port: Option<u16>,
            observed: Option<&'static str>,
            policy: Option<&'static str>,
            decided_by: Option<&'a str>,
            mismatch: bool,
        }
        let row = Row {
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
        if json {
            return serde_json::to_string(&row).unwrap() + "\n";
        }
        let text = |value: Option<&str>| value.map(csv_field).unwrap_or_default();
        format!(
            "{},{},{},{},{},{},{},{},{}\n",
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

    /// The row writer writes what the reference writes, byte for byte, in JSON and CSV:
    /// pods met once and again, IPv4 and IPv6 addresses, ports and octets of every length,
    /// every protocol form, missing values, times that change and come back, and policy
    /// names that need escaping or CSV quotes (the same name in two texts, and one text
    /// twice); written, or appended with each policy apart from its flow.
    #[test]
    fn flow_rows_are_written_as_the_reference_writes_them() {
        use netfence_flows::{CheckedFlow, FlowProtocol, Judgement, Observed};
        use std::sync::Arc;
        let mut loader = netfence_model::Loader::new();
        loader.load_str(
            "t.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web-0, namespace: shop}\nspec: {containers: [{name: c}]}\n\
             ---\napiVersion: v1\nkind: Pod\nmetadata: {name: api, namespace: shop}\nspec: {containers: [{name: c}]}\n",
        );
        let engine = Engine::new(loader.finish().unwrap());
        let pods: Vec<Endpoint> = (0..engine.inventory().pods().len())
            .map(|at| Endpoint::Pod(netfence_model::PodId::new(at)))
            .collect();
        let names: Vec<Arc<str>> = [
            "NetworkPolicy shop/web-to-api",
            "GlobalNetworkPolicy default.a,b",
            "odd \"quoted\" \\ é \u{1} \u{7f}",
        ]
        .map(Arc::from)
        .into();
        let same_text_again: Arc<str> = Arc::from(&*names[1]);
        let time = |second| Some(jiff::Timestamp::from_second(second).unwrap());
        let base = CheckedFlow {
            time: time(1_700_000_000),
            src: pods[0],
            dst: pods[1],
            protocol: FlowProtocol::Tcp,
            port: Some(8080),
            observed: Some(Observed::Allow),
            policy: Some(Judgement::Deny),
            decided_by: Some(names[0].clone()),
            mismatch: true,
        };
        let flows = vec![
            base.clone(),
            base.clone(),
            CheckedFlow {
                time: Some(jiff::Timestamp::new(1_700_000_001, 123_456_789).unwrap()),
                src: Endpoint::Address("203.0.113.7".parse().unwrap()),
                dst: pods[0],
                protocol: FlowProtocol::Udp,
                port: Some(53),
                observed: Some(Observed::Deny),
                policy: Some(Judgement::Allow),
                decided_by: Some(names[1].clone()),
                mismatch: true,
            },
            CheckedFlow {
                time: None,
                src: pods[1],
                dst: Endpoint::Address("2001:db8::1".parse().unwrap()),
                protocol: FlowProtocol::Icmp,
                port: None,
                observed: None,
                policy: None,
                decided_by: None,
                mismatch: false,
            },
            CheckedFlow {
                protocol: FlowProtocol::Other(47),
                decided_by: Some(names[2].clone()),
                ..base.clone()
            },
            CheckedFlow {
                protocol: FlowProtocol::Sctp,
                decided_by: Some(same_text_again),
                time: time(1_700_000_000),
                ..base.clone()
            },
            CheckedFlow {
                decided_by: Some(names[2].clone()),
                time: time(1_699_999_999),
                ..base.clone()
            },
        ];
        // Addresses and ports of every length of their numbers.
        let mut flows = flows;
        let addresses = [
            "0.0.0.0",
            "255.255.255.255",
            "10.9.99.100",
            "1.20.3.40",
            "::",
        ];
        let ports = [0u16, 9, 10, 99, 100, 999, 1000, 9999, 10000, 65535];
        for (k, (address, port)) in addresses.iter().cycle().zip(ports).enumerate() {
            let address = Endpoint::Address(address.parse().unwrap());
            let (src, dst) = match k % 2 {
                0 => (address, pods[1]),
                _ => (pods[0], address),
            };
            flows.push(CheckedFlow {
                src,
                dst,
                port: Some(port),
                ..base.clone()
            });
        }
        for (format, json) in [(FlowRowFormat::Json, true), (FlowRowFormat::Csv, false)] {
            let mut writer = FlowRowWriter::new(&engine, format);
            let mut written = Vec::new();
            let mut expected = String::new();
            for flow in &flows {
                writer.write(&mut written, flow).unwrap();
                expected += &reference_row(&engine, flow, json);
            }
            assert_eq!(String::from_utf8(written).unwrap(), expected);
            // Appended with the deciding policy apart from the flow (as the row threads
            // take them): the same rows.
            let mut writer = FlowRowWriter::new(&engine, format);
            let mut appended = Vec::new();
            for flow in &flows {
                let apart = CheckedFlow {
                    decided_by: None,
                    ..flow.clone()
                };
                writer.append(&mut appended, &apart, flow.decided_by.as_ref());
            }
            assert_eq!(String::from_utf8(appended).unwrap(), expected);
        }
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

/// Writes the judged flows of `flows check -o json|csv`, one row each (the `flows check`
/// contract's keys, in order; JSON as `serde_json` writes it compactly, `null` for what a
/// flow lacks). Each text is made once, as the row writes it (a JSON string quoted and
/// escaped, or a CSV field): a pod's name when first met, a deciding policy's name when
/// first met, a time when it changes (a VPC log's records share their capture window's
/// start). Each row is put together in a buffer and written at once. A `String` made per
/// text per row, a JSON value for the protocol and every text escaped again cost more than
/// judging the flow: 3.7 CPU-s for a million rows (docs/performance.md, session 35).
pub struct FlowRowWriter<'e> {
    engine: &'e Engine,
    format: FlowRowFormat,
    /// Each pod's name (`namespace/name`) as written, by its place in the inventory, once
    /// met.
    pod_names: Vec<Option<Box<[u8]>>>,
    /// Each deciding policy's name as written.
    policies: netfence_flows::ByNameAddress<Box<[u8]>>,
    /// The last time written, and its text as written.
    time: Option<(jiff::Timestamp, Vec<u8>)>,
    /// The row being put together.
    line: Vec<u8>,
}

impl<'e> FlowRowWriter<'e> {
    /// A writer of `format` rows for flows judged by `engine`.
    pub fn new(engine: &'e Engine, format: FlowRowFormat) -> Self {
        FlowRowWriter {
            engine,
            format,
            pod_names: vec![None; engine.inventory().pods().len()],
            policies: Default::default(),
            time: None,
            line: Vec::with_capacity(256),
        }
    }

    /// `text` as this writer's format writes a text: a JSON string, or a CSV field.
    fn written(format: FlowRowFormat, text: &str) -> Vec<u8> {
        match format {
            FlowRowFormat::Json => {
                let mut bytes = Vec::with_capacity(text.len() + 2);
                // A string's serialisation into memory cannot fail.
                let _ = serde_json::to_writer(&mut bytes, text);
                bytes
            }
            FlowRowFormat::Csv => csv_field(text).into_bytes(),
        }
    }

    /// Append the name of `endpoint` (as [`Engine::endpoint_name`] makes it) to `line`.
    fn push_name<const JSON: bool>(&mut self, line: &mut Vec<u8>, endpoint: Endpoint) {
        match endpoint {
            Endpoint::Pod(id) => {
                if let Some(Some(name)) = self.pod_names.get(id.index()) {
                    line.extend_from_slice(name);
                    return;
                }
                let name = Self::written(self.format, &self.engine.endpoint_name(endpoint));
                line.extend_from_slice(&name);
                if let Some(slot) = self.pod_names.get_mut(id.index()) {
                    *slot = Some(name.into());
                }
            }
            // An address needs neither escaping nor CSV quotes.
            Endpoint::Address(ip) => {
                if JSON {
                    line.push(b'"');
                }
                match ip {
                    // Written as `Display` writes it, without its formatting machinery (a
                    // fifth of the row threads' time on a log of Internet addresses).
                    std::net::IpAddr::V4(v4) => {
                        for (at, octet) in v4.octets().into_iter().enumerate() {
                            if at > 0 {
                                line.push(b'.');
                            }
                            push_decimal(line, octet.into());
                        }
                    }
                    std::net::IpAddr::V6(_) => {
                        let _ = write!(line, "{ip}");
                    }
                }
                if JSON {
                    line.push(b'"');
                }
            }
        }
    }

    /// Write one judged flow.
    pub fn write(
        &mut self,
        out: &mut impl Write,
        flow: &netfence_flows::CheckedFlow,
    ) -> io::Result<()> {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        self.append(&mut line, flow, flow.decided_by.as_ref());
        let written = out.write_all(&line);
        self.line = line;
        written
    }

    /// Append the row of one judged flow whose deciding policy is `decided_by` (its own
    /// `decided_by` is not read) to `text`: a batch of rows handed to another thread carries
    /// each policy's name once (`flows check`'s row threads).
    pub fn append(
        &mut self,
        text: &mut Vec<u8>,
        flow: &netfence_flows::CheckedFlow,
        decided_by: Option<&std::sync::Arc<str>>,
    ) {
        // Each format's own copy, so that its keys and words are constants (copied in
        // place, not by a call per key).
        match self.format {
            FlowRowFormat::Json => self.append_in::<true>(text, flow, decided_by),
            FlowRowFormat::Csv => self.append_in::<false>(text, flow, decided_by),
        }
    }

    /// [`FlowRowWriter::append`] in JSON (`JSON`) or CSV.
    fn append_in<const JSON: bool>(
        &mut self,
        line: &mut Vec<u8>,
        flow: &netfence_flows::CheckedFlow,
        decided_by: Option<&std::sync::Arc<str>>,
    ) {
        // What a missing value is written as, and what comes before each key's value.
        let null: &[u8] = if JSON { b"null" } else { b"" };
        let key = |line: &mut Vec<u8>, json: &[u8]| {
            if JSON {
                line.extend_from_slice(json);
            } else {
                line.push(b',');
            }
        };
        // A word of a few known values: quoted in JSON, bare in CSV.
        let word = |line: &mut Vec<u8>, word: &str| {
            if JSON {
                line.push(b'"');
            }
            line.extend_from_slice(word.as_bytes());
            if JSON {
                line.push(b'"');
            }
        };
        if JSON {
            line.extend_from_slice(b"{\"time\":");
        }
        match flow.time {
            Some(time) => {
                if self.time.as_ref().is_none_or(|(last, _)| *last != time) {
                    self.time = Some((time, Self::written(self.format, &time.to_string())));
                }
                if let Some((_, text)) = &self.time {
                    line.extend_from_slice(text);
                }
            }
            None => line.extend_from_slice(null),
        }
        key(line, b",\"src\":");
        self.push_name::<JSON>(line, flow.src);
        key(line, b",\"dst\":");
        self.push_name::<JSON>(line, flow.dst);
        key(line, b",\"protocol\":");
        // The protocol's name as a string, any other protocol as its number (as the
        // protocol's `Display` writes it).
        match flow.protocol.name() {
            Some(name) => word(line, name),
            None => {
                let _ = write!(line, "{}", flow.protocol);
            }
        }
        key(line, b",\"port\":");
        match flow.port {
            Some(port) => push_decimal(line, port.into()),
            None => line.extend_from_slice(null),
        }
        key(line, b",\"observed\":");
        match flow.observed {
            Some(observed) => word(line, observed.as_str()),
            None => line.extend_from_slice(null),
        }
        key(line, b",\"policy\":");
        match flow.policy {
            Some(policy) => word(line, policy.as_str()),
            None => line.extend_from_slice(null),
        }
        key(line, b",\"decided_by\":");
        match decided_by {
            Some(name) => {
                let format = self.format;
                let text =
                    (self.policies).get_or_make(name, |name| Self::written(format, name).into());
                line.extend_from_slice(text);
            }
            None => line.extend_from_slice(null),
        }
        key(line, b",\"mismatch\":");
        line.extend_from_slice(match flow.mismatch {
            true => b"true",
            false => b"false",
        });
        line.extend_from_slice(if JSON { b"}\n" } else { b"\n" });
    }
}

/// `n` in decimal appended to `line`, as `write!(line, "{n}")` appends it.
fn push_decimal(line: &mut Vec<u8>, n: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    line.extend_from_slice(&digits[at..]);
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
