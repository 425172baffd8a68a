//! Renderers: text, JSON, grid, CSV, Markdown and Graphviz outputs of engine results.

use netfence_engine::{
    connlist, Connection, DirectionVerdict, Endpoint, Engine, ListPeer, MatrixView, Outcome,
    ProbePort, RuleRef, Verdict,
};
use netfence_model::PolicyType;
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
    for direction in [&verdict.egress, &verdict.ingress] {
        let label = match direction.direction {
            PolicyType::Egress => "egress ",
            PolicyType::Ingress => "ingress",
        };
        let who = direction.endpoint.as_deref().unwrap_or("(external)");
        writeln!(out, "  {label} at {who}: {}", outcome_text(direction, port))?;
        if !direction.selected_by.is_empty() {
            let names: Vec<String> = direction
                .selected_by
                .iter()
                .map(|p| format!("{} {}", p.kind, p.policy))
                .collect();
            writeln!(out, "      selected by: {}", names.join(", "))?;
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
            writeln!(out, "      walk: {}", steps.join(" -> "))?;
        }
    }
    Ok(())
}

/// `netfence query -o json`: the verdict with a top-level `"verdict": "allow"|"deny"`.
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
    for (p, port) in matrix.ports().iter().enumerate() {
        write!(out, "    {}: [", json_string(&port.to_string()))?;
        let mut first = true;
        for src in 0..names.len() {
            for dst in 0..names.len() {
                if src != dst && matrix.allowed(p, src, dst) {
                    let sep = if first { "" } else { "," };
                    first = false;
                    write!(out, "{sep}\n      [{}, {}]", names[src], names[dst])?;
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
        inventory.namespaces.len(),
        inventory.pods.len(),
        inventory.network_policies.len()
    )?;
    writeln!(out, "Isolation (which policies select each pod):")?;
    let probe = ProbePort {
        protocol: netfence_model::Protocol::Tcp,
        port: 1,
    };
    for (id, pod) in inventory.pods.iter().enumerate() {
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
    let value: Vec<_> = lines
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
        .collect();
    serde_json::to_writer_pretty(&mut *out, &value)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
