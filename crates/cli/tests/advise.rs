//! `netfence advise` end to end on the Online Boutique example: YAML documents on stdout
//! (one NetworkPolicy per workload and direction, a default deny), the report's keys of
//! shared/DESIGN.md with `denied_after` 0, `-o json`, Calico and Cilium, and refusals
//! (--staged without Calico, unreadable flows) with exit 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/online-boutique")
}

fn netfence(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netfence"))
        .args(args)
        .output()
        .expect("netfence runs")
}

fn paths() -> (String, String) {
    let dir = example();
    (
        dir.join("cluster").display().to_string(),
        dir.join("hubble.jsonl").display().to_string(),
    )
}

#[test]
fn advise_prints_policies_and_writes_the_report() {
    let (cluster, flows) = paths();
    let report = std::env::temp_dir().join(format!("netfence-advise-{}.json", std::process::id()));
    let report_path = report.display().to_string();
    let out = netfence(&[
        "advise",
        "-f",
        &cluster,
        "--hubble",
        &flows,
        "--report",
        &report_path,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut policies = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&stdout) {
        let value: serde_json::Value = serde::Deserialize::deserialize(document).unwrap();
        assert_eq!(value["apiVersion"], "networking.k8s.io/v1");
        assert_eq!(value["kind"], "NetworkPolicy");
        policies.push(value);
    }
    assert_eq!(policies[0]["metadata"]["name"], "default-deny");
    // One policy per workload and direction: no two documents select the same pods for the
    // same direction.
    let mut subjects = std::collections::BTreeSet::new();
    for policy in &policies[1..] {
        let key = (
            policy["metadata"]["namespace"].to_string(),
            policy["spec"]["podSelector"].to_string(),
            policy["spec"]["policyTypes"].to_string(),
        );
        assert!(subjects.insert(key.clone()), "two policies for {key:?}");
    }
    let text = std::fs::read_to_string(&report).unwrap();
    let _ = std::fs::remove_file(&report);
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    for key in [
        "flows",
        "denied_after",
        "allowed_pairs_before",
        "allowed_pairs_after",
        "policies",
    ] {
        assert!(report.get(key).is_some(), "report has {key}");
    }
    assert_eq!(report["denied_after"], 0);
    assert!(report["flows"].as_u64().unwrap() >= 28);
    let before = report["allowed_pairs_before"].as_u64().unwrap();
    let after = report["allowed_pairs_after"].as_u64().unwrap();
    assert!(after * 10 <= before, "{after} of {before}");
    assert_eq!(report["policies"].as_array().unwrap().len(), policies.len());
    // The what-if lines are `netfence diff -o json`'s objects.
    assert!(report["what_if"][0].get("diff-type").is_some());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("denied_after 0"), "{stderr}");
}

#[test]
fn advise_json_and_calico() {
    let (cluster, flows) = paths();
    let out = netfence(&["advise", "-f", &cluster, "--hubble", &flows, "-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert!(list["items"].as_array().unwrap().len() > 20);
    let out = netfence(&[
        "advise", "-f", &cluster, "--hubble", &flows, "--style", "calico", "--staged",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("kind: StagedNetworkPolicy"));
    assert!(stdout.contains("apiVersion: projectcalico.org/v3"));
}

#[test]
fn advise_refusals_exit_2() {
    let (cluster, flows) = paths();
    let out = netfence(&[
        "advise", "-f", &cluster, "--hubble", &flows, "--style", "cilium",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("kind: CiliumNetworkPolicy"));
    let out = netfence(&["advise", "-f", &cluster, "--hubble", &flows, "--staged"]);
    assert_eq!(out.status.code(), Some(2));
    // Nothing reads as a flow: the cluster's YAML given as Hubble JSON.
    let manifests = example()
        .join("cluster/manifests.yaml")
        .display()
        .to_string();
    let out = netfence(&["advise", "-f", &cluster, "--hubble", &manifests]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--hubble"));
    let out = netfence(&["advise", "-f", &cluster]);
    assert_eq!(out.status.code(), Some(2));
}
