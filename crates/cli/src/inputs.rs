//! Loading `-f` inputs into an engine and resolving `--from`/`--to` endpoints.

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
    for file in &inputs.files {
        loader.load_path(file);
    }
    Ok(loader)
}

/// Finish a loader into an engine, with the CLI's error and summary reporting.
pub fn finish(loader: Loader) -> Result<Engine, Failure> {
    let inventory = loader
        .finish()
        .map_err(|errors| Failure::input(errors.to_string()))?;
    report_skipped(&inventory);
    for warning in &inventory.warnings {
        eprintln!("netfence: warning: {warning}");
    }
    Ok(Engine::new(inventory))
}

fn report_skipped(inventory: &Inventory) {
    if inventory.skipped_kinds.is_empty() {
        return;
    }
    let kinds: Vec<String> = inventory
        .skipped_kinds
        .iter()
        .map(|(kind, count)| format!("{kind} ×{count}"))
        .collect();
    eprintln!(
        "netfence: skipped {} object(s) of kinds it does not evaluate: {}",
        inventory.skipped_count(),
        kinds.join(", ")
    );
}

/// Resolve `namespace/pod`, `pod` (in `default`), `namespace/workload` (its first pod) or an
/// IP address (the pod that owns it, else an external address).
pub fn endpoint(engine: &Engine, text: &str, flag: &str) -> Result<Endpoint, Failure> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(engine.endpoint_for_ip(ip));
    }
    let (namespace, name) = text.split_once('/').unwrap_or(("default", text));
    let inventory = engine.inventory();
    if let Some(id) = inventory.pod_by_key(namespace, name) {
        return Ok(Endpoint::Pod(id));
    }
    if let Some(id) = inventory
        .pods
        .iter()
        .position(|p| p.namespace == namespace && p.workload.name == name)
    {
        return Ok(Endpoint::Pod(id));
    }
    let in_namespace: Vec<String> = inventory
        .pods
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
        "{flag} {text:?}: no such pod, workload or IP address ({hint})"
    )))
}
