//! The upstream Kubernetes NetworkPolicy e2e truth tables (`shared/conformance/k8s-e2e`,
//! transcribed from kubernetes/kubernetes test/e2e/network/netpol/network_policy.go): every
//! case must pass. The diagonal is ignored, as upstream's `ignoreLoopback` does.

mod common;

use common::{conformance_dir, engine_from, parse_grid};
use netfence_engine::{Endpoint, ProbePort};
use serde_yaml_ng::Value;
use std::collections::BTreeMap;

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    source: String,
    #[serde(default)]
    policies: String,
    #[serde(default)]
    extra: String,
    expect: BTreeMap<String, String>,
}

fn key_of(doc: &Value) -> (String, String, String) {
    let get = |path: &[&str]| {
        path.iter()
            .try_fold(doc, |v, k| v.get(*k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (
        get(&["kind"]),
        get(&["metadata", "namespace"]),
        get(&["metadata", "name"]),
    )
}

/// The inventory with the labels of `extra` objects replacing those of the same objects.
fn merged_inventory(inventory: &str, extra: &str) -> String {
    let extras: Vec<Value> = serde_yaml_ng::Deserializer::from_str(extra)
        .map(|d| serde::Deserialize::deserialize(d).expect("extra parses"))
        .filter(|v: &Value| !v.is_null())
        .collect();
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(inventory) {
        let mut value: Value = serde::Deserialize::deserialize(doc).expect("inventory parses");
        if let Some(replacement) = extras.iter().find(|e| key_of(e) == key_of(&value)) {
            let labels = replacement["metadata"]["labels"].clone();
            value["metadata"]["labels"] = labels;
        }
        docs.push(serde_yaml_ng::to_string(&value).expect("serialize"));
    }
    docs.join("---\n")
}

#[test]
fn k8s_e2e_truth_tables() {
    let dir = conformance_dir().join("k8s-e2e");
    let inventory = std::fs::read_to_string(dir.join("inventory.yaml")).expect("inventory.yaml");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("k8s-e2e dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.ends_with(".yaml") && name.as_bytes()[0].is_ascii_digit()
        })
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no k8s-e2e cases found in {}",
        dir.display()
    );

    let mut failures = Vec::new();
    let mut cells_checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("case");
        let case: Case = serde_yaml_ng::from_str(&text).expect("case parses");
        let case_name = file.file_name().unwrap().to_string_lossy().to_string();
        let merged = merged_inventory(&inventory, &case.extra);
        let engine = engine_from(&[("inventory.yaml", &merged), (&case_name, &case.policies)]);
        let mut mismatches = Vec::new();
        for (port, grid_text) in &case.expect {
            let probe: ProbePort = port.parse().expect("port key");
            let grid = parse_grid(grid_text).expect("grid parses");
            for ((src, dst), expected) in grid {
                if src == dst {
                    continue;
                }
                let endpoint = |key: &str| {
                    let (ns, name) = key.split_once('/').expect("ns/pod");
                    Endpoint::Pod(engine.inventory().pod_by_key(ns, name).expect("pod exists"))
                };
                let got =
                    engine.allowed(endpoint(&src), endpoint(&dst), probe.protocol, probe.port);
                cells_checked += 1;
                if got != expected {
                    mismatches.push(format!(
                        "{port} {src} -> {dst}: expected {expected}, got {got}"
                    ));
                }
            }
        }
        if !mismatches.is_empty() {
            failures.push(format!(
                "{case_name} ({}; {}):\n  {}",
                case.name,
                case.source,
                mismatches.join("\n  ")
            ));
        }
    }
    println!(
        "k8s-e2e conformance: {} of {} cases pass ({} cells checked)",
        files.len() - failures.len(),
        files.len(),
        cells_checked
    );
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}
