//! Loading `-f` inputs into an engine and resolving `--from`/`--to` endpoints.

use crate::commands::ClusterArgs;
use crate::{Failure, Inputs};
use netfence_engine::{Endpoint, Engine};
use netfence_model::{Inventory, Loader};
use std::net::IpAddr;

/// Load every input; report all load errors (exit 2) and the skipped-kinds summary on stderr.
pub fn load(inputs: &Inputs) -> Result<Engine, Failure> {
    finish(loader(inputs)?)
}

/// A loader with every input of `inputs` read, configured by `-n` and `--lenient`.
pub fn loader(inputs: &Inputs) -> Result<Loader, Failure> {
    let mut loader = Loader::new();
    if let Some(namespace) = &inputs.namespace {
        // A namespace name is a DNS-1123 label (apimachinery `ValidateNamespaceName`).
        let label = namespace.len() <= 63
            && namespace
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !namespace.starts_with('-')
            && !namespace.ends_with('-')
            && !namespace.is_empty();
        if !label {
            return Err(Failure::input(format!(
                "--namespace {namespace:?}: not a namespace name (lowercase letters, digits and '-', at most 63)"
            )));
        }
        loader.set_default_namespace(namespace);
    }
    loader.set_lenient(inputs.lenient);
    if let Some(cni) = &inputs.cni {
        let cni: netfence_model::cilium::Cni = cni
            .parse()
            .map_err(|e: String| Failure::input(format!("error: --cni: {e}")))?;
        loader.set_cni(cni);
    }
    for file in &inputs.files {
        loader.load_path(file);
    }
    if inputs.cluster.cluster {
        let summary = netfence_cluster::read(&source(&inputs.cluster), &mut loader)
            .map_err(|e| Failure::input(format!("error: --cluster: {e}")))?;
        report_cluster(&summary);
    }
    Ok(loader)
}

/// Where `--cluster` reads from.
pub fn source(args: &ClusterArgs) -> netfence_cluster::Source {
    netfence_cluster::Source {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
    }
}

/// What a read of the cluster did, on stderr (kinds not served are skipped and counted).
pub fn report_cluster(summary: &netfence_cluster::ReadSummary) {
    eprintln!(
        "netfence: read {} object(s) of {} kind(s) from the cluster in {} page(s)",
        summary.objects, summary.kinds, summary.pages
    );
    if !summary.missing.is_empty() {
        eprintln!(
            "netfence: skipped {} kind(s) the API server does not serve (CRDs not installed): {}",
            summary.missing.len(),
            summary.missing.join(", ")
        );
    }
}

/// Finish a loader into an engine, with the CLI's error and summary reporting.
pub fn finish(loader: Loader) -> Result<Engine, Failure> {
    let inventory = loader
        .finish()
        .map_err(|errors| Failure::input(errors.to_string()))?;
    report(&inventory);
    Ok(Engine::new(inventory))
}

/// The skipped-kinds summary and the loader's warnings, on stderr.
pub fn report(inventory: &Inventory) {
    report_skipped(inventory);
    for warning in &inventory.warnings {
        eprintln!("netfence: warning: {warning}");
    }
}

fn report_skipped(inventory: &Inventory) {
    // Kinds of a policy engine's API group can change verdicts: say so, kind by kind.
    for (kind, count) in &inventory.skipped_kinds {
        if let Some(engine) = netfence_model::cilium::policy_engine_of(kind) {
            eprintln!(
                "netfence: warning: skipped {count} {kind} object(s): {engine} policy that netfence does not evaluate; verdicts may be wrong"
            );
        }
    }
    let others: Vec<(&String, &usize)> = inventory
        .skipped_kinds
        .iter()
        .filter(|(kind, _)| netfence_model::cilium::policy_engine_of(kind).is_none())
        .collect();
    if others.is_empty() {
        return;
    }
    let kinds: Vec<String> = others
        .iter()
        .map(|(kind, count)| format!("{kind} ×{count}"))
        .collect();
    eprintln!(
        "netfence: skipped {} object(s) of kinds it does not evaluate: {}",
        others.iter().map(|(_, count)| **count).sum::<usize>(),
        kinds.join(", ")
    );
}

/// What `--to` names: an endpoint, or a Service (index into `Inventory::services`).
pub enum Target {
    /// A pod or an address.
    Endpoint(Endpoint),
    /// A Service, by `namespace/svc/name`, `svc/name` (in `default`) or one of its cluster IPs.
    Service(usize),
}

/// The Service `text` names, if it names one: `namespace/svc/name`, `svc/name` (namespace
/// `default`) or a cluster IP of a loaded Service. An unknown `namespace/svc/name` is an input
/// error; `svc/name` names a Service only when `default` has one of that name (otherwise it
/// is read as pod `name` of a namespace called `svc`).
fn service(engine: &Engine, text: &str, flag: &str) -> Result<Option<usize>, Failure> {
    let services = &engine.inventory().services;
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(services.iter().position(|s| s.cluster_ips.contains(&ip)));
    }
    let (namespace, name, explicit) = match text.split('/').collect::<Vec<_>>()[..] {
        [namespace, "svc", name] => (namespace, name, true),
        ["svc", name] => ("default", name, false),
        _ => return Ok(None),
    };
    match services
        .iter()
        .position(|s| s.namespace == namespace && s.name == name)
    {
        Some(index) => Ok(Some(index)),
        None if !explicit => Ok(None),
        None => {
            let known: Vec<&str> = services
                .iter()
                .filter(|s| s.namespace == namespace)
                .map(|s| s.name.as_str())
                .take(10)
                .collect();
            let hint = if known.is_empty() {
                format!("namespace {namespace:?} has no Services in the input")
            } else {
                format!("Services in {namespace}: {}", known.join(", "))
            };
            Err(Failure::input(format!(
                "error: {flag} {text:?}: no such Service ({hint})"
            )))
        }
    }
}

/// Resolve `--to`: a Service (see [`Target::Service`]) or an endpoint as [`endpoint`] reads it.
pub fn target(engine: &Engine, text: &str, flag: &str) -> Result<Target, Failure> {
    match service(engine, text, flag)? {
        Some(index) => Ok(Target::Service(index)),
        None => endpoint(engine, text, flag).map(Target::Endpoint),
    }
}

/// Resolve `namespace/pod`, `pod` (in `default`), `namespace/workload` (its first pod) or an
/// IP address (the pod that owns it, else an external address). A Service is no source: it
/// opens no connections (its pods do).
pub fn endpoint(engine: &Engine, text: &str, flag: &str) -> Result<Endpoint, Failure> {
    if let Some(index) = service(engine, text, flag)? {
        let service = &engine.inventory().services[index];
        return Err(Failure::input(format!(
            "error: {flag} {text:?} is Service {}: a Service opens no connections; name one of its pods",
            service.key()
        )));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(engine.endpoint_for_ip(ip));
    }
    let (namespace, name) = text.split_once('/').unwrap_or(("default", text));
    let inventory = engine.inventory();
    if let Some(id) = inventory.pod_by_key(namespace, name) {
        return Ok(Endpoint::Pod(id));
    }
    if let Some(id) = inventory
        .pods()
        .iter()
        .position(|p| p.namespace == namespace && p.workload.name == name)
    {
        return Ok(Endpoint::Pod(netfence_model::PodId::new(id)));
    }
    let in_namespace: Vec<String> = inventory
        .pods()
        .iter()
        .filter(|p| p.namespace == namespace)
        .map(|p| p.name.clone())
        .take(10)
        .collect();
    let hint = if in_namespace.is_empty() {
        format!("namespace {namespace:?} has no pods")
    } else {
        format!("pods in {namespace}: {}", in_namespace.join(", "))
    };
    Err(Failure::input(format!(
        "error: {flag} {text:?}: no such pod, workload or IP address ({hint})"
    )))
}
