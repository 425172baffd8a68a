//! `netfence advise`: least-privilege policies for the observed traffic, with their proof.
//! The flows are read as `flows check` reads them (the same flags and enrichment); planning,
//! rendering and the proof are `netfence_flows::advise`'s; this module wires the flags and
//! writes the documents and the report.

use super::flows::{finish_reading, read_flows, FlowInputs};
use super::*;
use netfence_engine::Cluster;
use netfence_flows::advise::{self, Advice, AdviseOptions, Observer, Style};
use netfence_flows::ReadStats;
use serde_json::json;

/// `--style`.
#[derive(Clone, Copy, ValueEnum)]
pub enum AdviseStyle {
    /// networking.k8s.io/v1 NetworkPolicy.
    K8s,
    /// projectcalico.org/v3 NetworkPolicy (StagedNetworkPolicy with --staged).
    Calico,
    /// cilium.io/v2 CiliumNetworkPolicy (--replace does not delete existing ones yet).
    Cilium,
}

/// `-o` of `advise`.
#[derive(Clone, Copy, ValueEnum)]
pub enum AdviseFormat {
    /// YAML documents separated by `---`.
    Yaml,
    /// One `v1` `List` holding the documents.
    Json,
}

/// The arguments of `netfence advise`.
#[derive(Args)]
pub struct AdviseArgs {
    #[command(flatten)]
    pub inputs: Inputs,
    #[command(flatten)]
    pub flows: FlowInputs,
    /// The policy language of the proposal.
    #[arg(long, value_enum, default_value_t = AdviseStyle::K8s)]
    pub style: AdviseStyle,
    /// With --style calico: StagedNetworkPolicy objects (Calico's audit-before-enforce flow);
    /// the proof is computed as if they were enforced.
    #[arg(long)]
    pub staged: bool,
    /// Propose a full least-privilege set replacing the existing policies of the style's
    /// language in the namespaces it covers (the proof deletes them), instead of adding only
    /// what the traffic needs beyond what is already allowed.
    #[arg(long)]
    pub replace: bool,
    /// Do not add DNS (UDP and TCP 53) to kube-dns for every workload given an egress policy.
    #[arg(long)]
    pub no_dns: bool,
    /// Output format of the documents.
    #[arg(short = 'o', long, value_enum, default_value_t = AdviseFormat::Yaml)]
    pub output: AdviseFormat,
    /// Write the proof as JSON to this file: `flows`, `denied_after`, `allowed_pairs_before`,
    /// `allowed_pairs_after`, `policies`, and the details (denied connections, unobserved
    /// connections still allowed, the what-if lines).
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
}

/// `netfence advise` (its help text is on [`crate::Command`]). Exit 0, 1 when the proof
/// finds an observed connection the proposal would deny, 2 on bad input.
pub fn advise(args: AdviseArgs) -> Result<u8, Failure> {
    let style = match args.style {
        AdviseStyle::K8s => Style::Kubernetes,
        AdviseStyle::Calico => Style::Calico,
        AdviseStyle::Cilium => Style::Cilium,
    };
    if args.staged && !matches!(style, Style::Calico) {
        return Err(Failure::input("--staged is for --style calico"));
    }
    let source = args.flows.source()?;
    let flag = source.0;
    if args.inputs.files.iter().any(|p| p.as_os_str() == "-") && args.flows.reads_stdin() {
        return Err(Failure::input(
            "-f - and a flow input - cannot both read stdin",
        ));
    }
    let history = args.flows.history()?;
    let loader = inputs::loader(&args.inputs)?;
    let cluster =
        Cluster::new(loader.clone()).map_err(|errors| Failure::input(errors.to_string()))?;
    inputs::report(cluster.engine().inventory());
    let mut observer = Observer::new(cluster.engine(), history);
    let mut stats = ReadStats::default();
    read_flows(source, &mut stats, &mut |flow| observer.add(&flow))?;
    finish_reading(flag, &stats)?;
    let observations = observer.finish();
    let options = AdviseOptions {
        style,
        staged: args.staged,
        replace: args.replace,
        dns: !args.no_dns,
    };
    let advice = advise::advise(&loader, &cluster, &observations, &options)
        .map_err(|e| Failure::input(format!("error: advise: {e}")))?;
    emit(args.output, &advice.documents)?;
    let report = report(&advice, &observations);
    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
        std::fs::write(path, text)
            .map_err(|e| Failure::input(format!("--report {}: {e}", path.display())))?;
    }
    summary(&advice, &observations);
    Ok(u8::from(advice.proof.denied_after > 0))
}

impl Format<[advise::Document]> for AdviseFormat {
    fn write(self, out: &mut impl Write, documents: &[advise::Document]) -> std::io::Result<()> {
        match self {
            AdviseFormat::Yaml => out.write_all(advise::render::yaml_stream(documents).as_bytes()),
            AdviseFormat::Json => {
                let list = json!({
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": documents.iter().map(advise::Document::to_json).collect::<Vec<_>>(),
                });
                serde_json::to_writer_pretty(&mut *out, &list)?;
                writeln!(out)
            }
        }
    }
}

/// The report's JSON (the keys of the `advise` contract first).
fn report(advice: &Advice, observations: &advise::Observations) -> serde_json::Value {
    let proof = &advice.proof;
    let plan = &advice.plan;
    let policies: Vec<_> = plan
        .default_deny
        .iter()
        .map(|deny| {
            json!({
                "namespace": deny.namespace,
                "name": deny.name,
                "direction": "both",
                "default_deny": true,
                "workloads": [],
            })
        })
        .chain(plan.policies.iter().map(|policy| {
            json!({
                "namespace": policy.namespace,
                "name": policy.name,
                "direction": match policy.direction {
                    netfence_model::PolicyType::Ingress => "ingress",
                    netfence_model::PolicyType::Egress => "egress",
                },
                "default_deny": false,
                "selector": policy.subject,
                "workloads": policy.workloads.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "rules": policy.rules.len(),
            })
        }))
        .collect();
    let stats = &observations.stats;
    json!({
        "flows": proof.flows,
        "denied_after": proof.denied_after,
        "allowed_pairs_before": proof.allowed_pairs_before,
        "allowed_pairs_after": proof.allowed_pairs_after,
        "policies": policies,
        "allowed_pairs_all": proof.allowed_pairs_all,
        "observed_pairs": proof.observed_pairs,
        "pods": proof.pods,
        "ports": proof.ports.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "connections": proof.connections,
        "denied": proof.denied.iter().map(|d| json!({
            "src": d.src,
            "dst": d.dst,
            "protocol": d.protocol.as_str(),
            "port": d.port,
            "flows": d.flows,
            "decided_by": d.decided_by,
        })).collect::<Vec<_>>(),
        "unobserved_allowed": proof.unobserved.iter().map(|u| json!({
            "src": u.src.to_string(),
            "dst": u.dst.to_string(),
            "conns": u.conns.to_string(),
        })).collect::<Vec<_>>(),
        "what_if": render::diff_values(&proof.what_if),
        "replaces": advice.replaces,
        "host_traffic": plan.host_traffic,
        "skipped": {
            "replies": stats.replies,
            "observed_denied": stats.observed_denied,
            "not_ported": stats.not_ported,
            "same_pod": stats.same_pod,
            "outside_pod_policy": plan.outside_pod_policy,
            "unresolved_services": plan.unresolved_services,
        },
        "dns_added": plan.dns_added,
        "timings_seconds": proof.timings.iter().map(|(step, seconds)| json!({"step": step, "seconds": seconds})).collect::<Vec<_>>(),
    })
}

/// How many unobserved groups the summary lists.
const UNOBSERVED_SHOWN: usize = 10;

/// The proof in a few lines on stderr (stdout carries the documents).
fn summary(advice: &Advice, observations: &advise::Observations) {
    let proof = &advice.proof;
    let percent = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            100.0 * (1.0 - part as f64 / whole as f64)
        }
    };
    eprintln!(
        "advise: {} flows ({} connections) replayed with the proposal: denied_after {}",
        proof.flows, proof.connections, proof.denied_after
    );
    for denied in &proof.denied {
        eprintln!(
            "advise: DENIED {} -> {} {}/{} ({} flows){}",
            denied.src,
            denied.dst,
            denied.protocol,
            denied.port,
            denied.flows,
            denied
                .decided_by
                .as_ref()
                .map_or(String::new(), |p| format!(" by {p}"))
        );
    }
    eprintln!(
        "advise: {} documents ({} default deny, {} policies); pod pairs x ports allowed: {} before, {} after ({:.1}% fewer; {:.1}% fewer than allow-all {}; {} observed)",
        advice.documents.len(),
        advice.plan.default_deny.len(),
        advice.plan.policies.len(),
        proof.allowed_pairs_before,
        proof.allowed_pairs_after,
        percent(proof.allowed_pairs_after, proof.allowed_pairs_before),
        percent(proof.allowed_pairs_after, proof.allowed_pairs_all),
        proof.allowed_pairs_all,
        proof.observed_pairs
    );
    if !advice.plan.host_traffic.is_empty() {
        eprintln!(
            "advise: host-network or node traffic (not pod policy; /32 peers only): {}",
            advice
                .plan
                .host_traffic
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let stats = &observations.stats;
    if stats.observed_denied + stats.not_ported > 0 {
        eprintln!(
            "advise: not advised: {} flows observed denied, {} without ports (ICMP, …)",
            stats.observed_denied, stats.not_ported
        );
    }
    eprintln!(
        "advise: still allowed but not observed ({} groups{}):",
        proof.unobserved.len(),
        if proof.unobserved.len() > UNOBSERVED_SHOWN {
            format!(", the first {UNOBSERVED_SHOWN}; all in --report")
        } else {
            String::new()
        }
    );
    for group in proof.unobserved.iter().take(UNOBSERVED_SHOWN) {
        eprintln!("  {} => {} : {}", group.src, group.dst, group.conns);
    }
    eprintln!(
        "advise: what-if against today's cluster: {} lines (in --report)",
        proof.what_if.len()
    );
}
