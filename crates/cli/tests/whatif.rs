//! `netfence what-if` prints what `netfence diff` prints against the changed inputs.
//!
//! Random changes to generated clusters (Kubernetes and Calico policies replaced, created
//! and deleted, namespaces relabelled, pods changed): the "after" inputs are written by this
//! test from the YAML documents themselves (keyed by kind, namespace and name, read with
//! serde_yaml, not with netfence), and both commands must print the same bytes and exit alike.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn netfence(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netfence"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run netfence: {e}"))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netfence-whatif-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

fn generate(dir: &Path, seed: u64) {
    generate_with(dir, seed, &[]);
}

fn generate_with(dir: &Path, seed: u64, extra: &[&str]) {
    let seed = seed.to_string();
    let dir = dir.display().to_string();
    let mut args = vec![
        "gen",
        "--pods",
        "60",
        "--namespaces",
        "3",
        "--policies",
        "14",
        "--calico",
        "4",
        "--seed",
        &seed,
        "-o",
        &dir,
    ];
    args.extend(extra);
    let out = netfence(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (kind with group, namespace, name) of a document, read with serde_yaml.
type Key = (String, String, String);

fn key(doc: &str) -> Option<Key> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(doc).ok()?;
    let text = |v: &serde_yaml_ng::Value| v.as_str().unwrap_or("").to_string();
    let api = text(&value["apiVersion"]);
    let group = api.rsplit_once('/').map_or("", |(g, _)| g).to_string();
    let kind = text(&value["kind"]);
    if kind.is_empty() {
        return None;
    }
    Some((
        format!("{kind}.{group}"),
        text(&value["metadata"]["namespace"]),
        text(&value["metadata"]["name"]),
    ))
}

/// Every document of every file below `dir`, by key, with the file it came from.
fn documents(dir: &Path) -> BTreeMap<Key, (String, String)> {
    let mut out = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        for doc in text.split("\n---\n").map(|d| d.trim_start_matches("---\n")) {
            if let Some(k) = key(doc) {
                out.insert(k, (name.clone(), doc.to_string()));
            }
        }
    }
    out
}

fn write_documents(dir: &Path, docs: &BTreeMap<Key, (String, String)>) {
    let mut files: BTreeMap<&str, String> = BTreeMap::new();
    for (file, doc) in docs.values() {
        let text = files.entry(file.as_str()).or_default();
        text.push_str("---\n");
        text.push_str(doc);
        text.push('\n');
    }
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The `--delete` spelling of a key.
fn delete_arg((kind, ns, name): &Key) -> String {
    let kind = match kind.as_str() {
        "NetworkPolicy.projectcalico.org" => kind.clone(),
        other => other.split('.').next().unwrap_or(other).to_string(),
    };
    if ns.is_empty() {
        format!("{kind}/{name}")
    } else {
        format!("{kind}/{ns}/{name}")
    }
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[test]
fn what_if_prints_what_diff_prints() {
    let base = temp_dir("base");
    generate(&base, 7);
    let other = temp_dir("other");
    generate(&other, 8);
    let base_docs = documents(&base);
    let other_docs = documents(&other);
    let changeable = |k: &Key| {
        k.0.starts_with("NetworkPolicy")
            || k.0.starts_with("GlobalNetworkPolicy")
            || k.0.starts_with("Namespace.")
            || k.0.starts_with("Pod.")
            || k.0.starts_with("Deployment")
    };
    let candidates: Vec<&Key> = other_docs.keys().filter(|k| changeable(k)).collect();
    let deletable: Vec<&Key> = base_docs
        .keys()
        .filter(|k| k.0.contains("NetworkPolicy") || k.0.starts_with("Pod."))
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut differing = 0;
    for round in 0..8 {
        let mut applied = Vec::new();
        for _ in 0..2 + rng.below(3) {
            let k = candidates[rng.below(candidates.len())];
            applied.push(other_docs[k].1.clone());
        }
        if rng.below(2) == 0 {
            // A hand-written policy that certainly matters: allow everything in a namespace (policies only add allows).
            let ns = format!("ns-000{}", rng.below(3));
            applied.push(format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: whatif-allow-all, namespace: {ns}}}\nspec: {{podSelector: {{}}, ingress: [{{}}], egress: [{{}}]}}\n"));
        }
        let mut deletions: Vec<Key> = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let k = deletable[rng.below(deletable.len())];
            if !deletions.contains(k) {
                deletions.push(k.clone());
            }
        }
        let label = format!("round-{round}");
        differing += usize::from(what_if_equals_diff(&base, &applied, &deletions, &label));
    }
    // The changes must have changed connectivity in most rounds, or the test proves little.
    assert!(
        differing >= 4,
        "only {differing} of 8 rounds changed connectivity"
    );
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(&other);
}

/// `what-if` of `applied` documents and `deletions` on `base` against `diff` with the
/// inputs changed so; whether connectivity changed.
fn what_if_equals_diff(base: &Path, applied: &[String], deletions: &[Key], label: &str) -> bool {
    let mut after = documents(base);
    let mut apply_text = String::new();
    for doc in applied {
        let k = key(doc).unwrap_or_else(|| panic!("{label}: no key in {doc}"));
        after.insert(k, ("70-changed.yaml".into(), doc.clone()));
        apply_text.push_str("---\n");
        apply_text.push_str(doc);
        apply_text.push('\n');
    }
    let mut what_if = vec![
        "what-if".to_string(),
        "-f".into(),
        base.display().to_string(),
    ];
    for k in deletions {
        assert!(
            after.remove(k).is_some(),
            "{label}: {k:?} is not in the base"
        );
        what_if.extend(["--delete".into(), delete_arg(k)]);
    }
    let after_dir = temp_dir(&format!("after-{label}"));
    write_documents(&after_dir, &after);
    let apply_file = after_dir.with_extension("apply.yaml");
    std::fs::write(&apply_file, &apply_text).unwrap_or_else(|e| panic!("{e}"));
    if !applied.is_empty() {
        what_if.extend(["--apply".into(), apply_file.display().to_string()]);
    }
    what_if.extend(["-o".into(), "json".into()]);
    let what_if: Vec<&str> = what_if.iter().map(String::as_str).collect();
    let incremental = netfence(&what_if);
    let (base_arg, after_arg) = (base.display().to_string(), after_dir.display().to_string());
    let full = netfence(&[
        "diff",
        "-f",
        &base_arg,
        "--against",
        &after_arg,
        "-o",
        "json",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&incremental.stdout),
        String::from_utf8_lossy(&full.stdout),
        "{label}: what-if and diff differ\nwhat-if stderr: {}\ndiff stderr: {}",
        String::from_utf8_lossy(&incremental.stderr),
        String::from_utf8_lossy(&full.stderr)
    );
    assert_eq!(
        incremental.status.code(),
        full.status.code(),
        "{label}: exit codes"
    );
    let _ = std::fs::remove_dir_all(&after_dir);
    let _ = std::fs::remove_file(&apply_file);
    incremental.status.code() == Some(1)
}

/// Calico and admin policies created, replaced and deleted (one change at a time, each
/// compiled on its own by the incremental rebuild): `what-if` prints what `diff` prints.
#[test]
fn what_if_prints_what_diff_prints_for_calico_and_admin_changes() {
    let extra = ["--admin", "3"];
    let base = temp_dir("tiers-base");
    generate_with(&base, 7, &extra);
    let other = temp_dir("tiers-other");
    generate_with(&other, 8, &extra);
    let base_docs = documents(&base);
    let other_docs = documents(&other);
    let of_kind = |docs: &BTreeMap<Key, (String, String)>, kind: &str| -> Vec<Key> {
        docs.keys().filter(|k| k.0 == kind).cloned().collect()
    };
    let gnp = "GlobalNetworkPolicy.projectcalico.org";
    let anp = "AdminNetworkPolicy.policy.networking.k8s.io";
    let banp = "BaselineAdminNetworkPolicy.policy.networking.k8s.io";
    let (base_gnps, base_anps) = (of_kind(&base_docs, gnp), of_kind(&base_docs, anp));
    assert!(
        base_gnps.len() >= 2 && base_anps.len() >= 2,
        "{base_docs:?}"
    );
    let replaced = |k: &Key| {
        let doc = &other_docs
            .get(k)
            .unwrap_or_else(|| panic!("{k:?} not in the other cluster"))
            .1;
        assert_ne!(doc, &base_docs[k].1, "{k:?} is the same in both clusters");
        doc.clone()
    };
    let created_gnp = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: security.whatif-deny}\nspec:\n  tier: security\n  order: 1\n  selector: all()\n  types: [Ingress]\n  ingress: [{action: Deny, protocol: TCP}]\n".to_string();
    let created_anp = "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: whatif-deny}\nspec:\n  priority: 999\n  subject: {namespaces: {}}\n  ingress: [{name: d, action: Deny, from: [{namespaces: {}}]}]\n".to_string();
    let cases: Vec<(&str, Vec<String>, Vec<Key>)> = vec![
        ("gnp-created", vec![created_gnp], Vec::new()),
        ("gnp-replaced", vec![replaced(&base_gnps[1])], Vec::new()),
        ("gnp-deleted", Vec::new(), vec![base_gnps[1].clone()]),
        ("anp-created", vec![created_anp], Vec::new()),
        ("anp-replaced", vec![replaced(&base_anps[1])], Vec::new()),
        ("anp-deleted", Vec::new(), vec![base_anps[0].clone()]),
        ("banp-deleted", Vec::new(), of_kind(&base_docs, banp)),
    ];
    let mut differing = Vec::new();
    for (label, applied, deletions) in &cases {
        if what_if_equals_diff(&base, applied, deletions, label) {
            differing.push(*label);
        }
    }
    // The created policies deny: they certainly change connectivity.
    for label in ["gnp-created", "anp-created"] {
        assert!(
            differing.contains(&label),
            "{label} changed nothing: {differing:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(&other);
}

#[test]
fn what_if_refuses_bad_changes_with_exit_2() {
    let base = temp_dir("bad");
    generate(&base, 3);
    let base_arg = base.display().to_string();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--delete", "NetworkPolicy/ns-0000/no-such"],
            "no such object",
        ),
        (&["--delete", "NetworkPolicy/only-a-name"], "namespaced"),
        (
            &["--delete", "Frobnicator/x"],
            "unknown or unsupported kind",
        ),
        (&[], "nothing to change"),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["what-if", "-f", &base_arg];
        args.extend_from_slice(extra);
        let out = netfence(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
    }
    let ingress = base.with_extension("ingress.yaml");
    std::fs::write(
        &ingress,
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i, namespace: ns-0000}\nspec: {rules: []}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = netfence(&[
        "what-if",
        "-f",
        &base_arg,
        "--apply",
        &ingress.display().to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot be applied as a change yet"),
        "{stderr}"
    );
    let _ = std::fs::remove_file(&ingress);
    let _ = std::fs::remove_dir_all(&base);
}
