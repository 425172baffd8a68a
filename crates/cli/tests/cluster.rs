//! `--cluster` against the in-process test API server (TLS, token, paged lists, watches):
//! `matrix --cluster` equals `matrix -f` on the same objects, `-f` and `--cluster` combine,
//! and `netfence watch` prints, change by change, what `netfence diff` prints between the
//! states before and after each change.

mod common;

use netfence_cluster::testing::{resources_with, TestServer};
use serde_json::Value;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn netfence(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netfence"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run netfence: {e}"))
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "netfence-cli-cluster-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

fn generate(dir: &Path, seed: u64, pods: usize) {
    let out = netfence(&[
        "gen",
        "--pods",
        &pods.to_string(),
        "--namespaces",
        "3",
        "--policies",
        "12",
        "--calico",
        "3",
        "--seed",
        &seed.to_string(),
        "-o",
        &text(dir),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every document under `dir`, as JSON, read with serde_yaml (not with netfence).
fn documents(dir: &Path) -> Vec<Value> {
    let files = common::files_under(dir)
        .into_iter()
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"));
    let mut out = Vec::new();
    for file in files {
        let content = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&content) {
            let value: Value = serde::Deserialize::deserialize(doc).unwrap();
            if !value.is_null() {
                out.push(value);
            }
        }
    }
    out
}

fn serve(documents: &[Value]) -> TestServer {
    let server = TestServer::start(resources_with(&[
        "projectcalico.org",
        "policy.networking.k8s.io",
    ]))
    .unwrap();
    for doc in documents {
        server.apply(doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
    }
    server
}

#[test]
fn matrix_from_the_cluster_equals_matrix_from_the_files() {
    let scratch = Scratch::new("matrix");
    let dir = scratch.path("cluster");
    generate(&dir, 17, 80);
    let docs = documents(&dir);
    let server = serve(&docs);
    let kubeconfig = server.write_kubeconfig(&scratch.0).unwrap();
    for command in [["matrix", "-o", "json"], ["list", "-o", "txt"]] {
        let from_files = netfence(&[&command[..], &["-f", &text(&dir)]].concat());
        let from_cluster = netfence(
            &[
                &command[..],
                &["--cluster", "--kubeconfig", &text(&kubeconfig)],
            ]
            .concat(),
        );
        assert!(
            from_files.status.success(),
            "{}",
            String::from_utf8_lossy(&from_files.stderr)
        );
        assert!(
            from_cluster.status.success(),
            "{}",
            String::from_utf8_lossy(&from_cluster.stderr)
        );
        assert!(from_files.stdout.len() > 100);
        assert_eq!(
            String::from_utf8_lossy(&from_cluster.stdout),
            String::from_utf8_lossy(&from_files.stdout),
            "{command:?}"
        );
        let stderr = String::from_utf8_lossy(&from_cluster.stderr);
        assert!(
            stderr.contains(&format!("read {} object(s)", docs.len())),
            "{stderr}"
        );
        // Kinds whose CRDs are not installed on this server are skipped and counted.
        assert!(
            stderr.contains("SecurityGroupPolicy.vpcresources.k8s.aws"),
            "{stderr}"
        );
    }
    // The lists were paged (500 at a time), through TLS with the token.
    assert!(server
        .requests()
        .iter()
        .any(|r| r.starts_with("GET /api/v1/pods?") && r.contains("limit=500")));
}

#[test]
fn files_and_the_cluster_combine() {
    let scratch = Scratch::new("combine");
    let dir = scratch.path("cluster");
    generate(&dir, 5, 40);
    let mut docs = documents(&dir);
    // The cluster holds everything but the NetworkPolicies; -f adds them back.
    let policies = scratch.path("policies.json");
    let (netpols, rest): (Vec<Value>, Vec<Value>) = docs
        .drain(..)
        .partition(|d| d["kind"] == "NetworkPolicy" && d["apiVersion"] == "networking.k8s.io/v1");
    assert!(!netpols.is_empty());
    std::fs::write(
        &policies,
        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": netpols}).to_string(),
    )
    .unwrap();
    let server = serve(&rest);
    let kubeconfig = server.write_kubeconfig(&scratch.0).unwrap();
    let expected = netfence(&["matrix", "-o", "json", "-f", &text(&dir)]);
    let combined = netfence(&[
        "matrix",
        "-o",
        "json",
        "-f",
        &text(&policies),
        "--cluster",
        "--kubeconfig",
        &text(&kubeconfig),
    ]);
    assert!(
        combined.status.success(),
        "{}",
        String::from_utf8_lossy(&combined.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&combined.stdout),
        String::from_utf8_lossy(&expected.stdout)
    );
    let cluster_only = netfence(&[
        "matrix",
        "-o",
        "json",
        "--cluster",
        "--kubeconfig",
        &text(&kubeconfig),
    ]);
    assert_ne!(
        cluster_only.stdout, expected.stdout,
        "the policies must matter for this test"
    );
}

#[test]
fn cluster_errors_are_clear() {
    let scratch = Scratch::new("errors");
    let server = TestServer::start(resources_with(&[])).unwrap();
    let kubeconfig = server.write_kubeconfig(&scratch.0).unwrap();
    let out = netfence(&[
        "matrix",
        "--cluster",
        "--kubeconfig",
        &text(&kubeconfig),
        "--context",
        "wrong-token",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--cluster") && stderr.contains("Unauthorized"),
        "{stderr}"
    );
    let out = netfence(&[
        "matrix",
        "--cluster",
        "--kubeconfig",
        &text(&scratch.path("missing")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
    let out = netfence(&["matrix", "--context", "x", "-f", &text(&scratch.0)]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--context without --cluster is a usage error"
    );
}

/// Write `docs` as one JSON List file.
fn write_list(path: &Path, docs: &[Value]) {
    std::fs::write(
        path,
        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": docs}).to_string(),
    )
    .unwrap();
}

/// The key of a document: (apiVersion, kind, namespace as written, name).
fn key(doc: &Value) -> (String, String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (
        s(&doc["apiVersion"]),
        s(&doc["kind"]),
        s(&doc["metadata"]["namespace"]),
        s(&doc["metadata"]["name"]),
    )
}

#[test]
fn watch_prints_what_diff_prints_change_by_change() {
    let scratch = Scratch::new("watch");
    let dir = scratch.path("cluster");
    generate(&dir, 23, 30);
    let mut state = documents(&dir);
    let server = serve(&state);
    let kubeconfig = server.write_kubeconfig(&scratch.0).unwrap();
    let history = scratch.path("pods.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_netfence"))
        .args([
            "watch",
            "--cluster",
            "--kubeconfig",
            &text(&kubeconfig),
            "-o",
            "json",
            "--record-pods",
            &text(&history),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out_tx, out_rx) = std::sync::mpsc::channel::<String>();
    let (err_tx, err_rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = out_tx.send(line);
        }
    });
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = err_tx.send(line);
        }
    });
    let wait_for = |needle: &str| loop {
        let line = err_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("watch never said {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    };
    let watching = wait_for("netfence: watching");
    // The watchers' first lists repeat the snapshot and change nothing; wait for them.
    let kinds_followed: usize = watching
        .split(" object(s) of ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(kinds_followed >= 10, "{watching}");
    assert!(
        server.wait_for_watchers(kinds_followed, Duration::from_secs(60)),
        "watchers: {}",
        server.watchers()
    );

    // The script: isolate a namespace, relabel a pod, lift the isolation, delete a pod and
    // a NetworkPolicy; each step checked against `netfence diff` between the two states.
    let first_policy = state
        .iter()
        .position(|d| d["kind"] == "NetworkPolicy" && d["apiVersion"] == "networking.k8s.io/v1")
        .unwrap();
    let first_pod = state.iter().position(|d| d["kind"] == "Pod").unwrap();
    let pod_ns = state[first_pod]["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let deleted_pod = format!(
        "{pod_ns}/{}",
        state[first_pod]["metadata"]["name"].as_str().unwrap()
    );
    let deny_all: Value = serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "netfence-test-deny-all", "namespace": pod_ns},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}});
    let mut relabelled = state[first_pod].clone();
    relabelled["metadata"]["labels"] = serde_json::json!({"netfence-test": "relabelled"});
    enum Step {
        Apply(Value),
        Delete(Value),
    }
    let steps = vec![
        Step::Apply(deny_all.clone()),
        Step::Apply(relabelled),
        Step::Delete(deny_all),
        Step::Delete(state[first_pod].clone()),
        Step::Delete(state[first_policy].clone()),
    ];
    let mut printed_total = 0;
    for (number, step) in steps.into_iter().enumerate() {
        let before = scratch.path(&format!("before-{number}.json"));
        write_list(&before, &state);
        let (cause_kind, object) = match &step {
            Step::Apply(doc) => {
                let existed = state.iter().position(|d| key(d) == key(doc));
                match existed {
                    Some(at) => state[at] = doc.clone(),
                    None => state.push(doc.clone()),
                }
                server.apply(doc).unwrap();
                (
                    if existed.is_some() {
                        "replaced"
                    } else {
                        "created"
                    },
                    doc.clone(),
                )
            }
            Step::Delete(doc) => {
                state.retain(|d| key(d) != key(doc));
                let (api, kind, ns, name) = key(doc);
                assert!(server.delete(&api, &kind, (!ns.is_empty()).then_some(ns.as_str()), &name));
                ("deleted", doc.clone())
            }
        };
        let after = scratch.path(&format!("after-{number}.json"));
        write_list(&after, &state);
        let diff = netfence(&[
            "diff",
            "-f",
            &text(&before),
            "--against",
            &text(&after),
            "-o",
            "json",
        ]);
        let expected: Vec<Value> = serde_json::from_slice(&diff.stdout).unwrap();
        if number == 0 {
            assert!(
                !expected.is_empty(),
                "isolating a namespace must change something"
            );
        }
        let said = wait_for(&format!(" {cause_kind}: "));
        assert!(
            said.contains(object["metadata"]["name"].as_str().unwrap()),
            "{said}"
        );
        let count: usize = said
            .rsplit(": ")
            .next()
            .unwrap()
            .trim_end_matches(" line(s)")
            .parse()
            .unwrap();
        let printed: Vec<Value> = (0..count)
            .map(|_| {
                serde_json::from_str(&out_rx.recv_timeout(Duration::from_secs(30)).unwrap())
                    .unwrap()
            })
            .collect();
        printed_total += printed.len();
        assert_eq!(
            printed.len(),
            expected.len(),
            "step {number}: {printed:?} vs {expected:?}"
        );
        for (got, want) in printed.iter().zip(&expected) {
            for field in ["diff-type", "source", "destination", "ref1", "ref2"] {
                assert_eq!(
                    got[field], want[field],
                    "step {number}, {field}: {got} vs {want}"
                );
            }
            assert!(
                got["cause"].as_str().unwrap().ends_with(cause_kind),
                "{got}"
            );
            assert!(got["time"].as_str().unwrap().contains('T'), "{got}");
        }
    }
    assert!(printed_total > 0);
    // A compaction: watch relists and goes on; the next change still shows.
    server.expire();
    let late = serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "deny-all-late", "namespace": pod_ns},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}});
    server.apply(&late).unwrap();
    wait_for("deny-all-late created");
    // SIGTERM: the pod history's open tenures are written on the way out.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let history_text = std::fs::read_to_string(&history).unwrap();
    let entries: Vec<Value> = history_text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        entries
            .iter()
            .any(|e| e["pod"] == deleted_pod.as_str() && !e["to"].is_null()),
        "the deleted pod's tenure ended: {history_text}"
    );
    assert!(
        entries.iter().any(|e| e["to"].is_null()),
        "live pods' tenures are open: {history_text}"
    );
    assert!(entries.iter().all(|e| e["ip"].is_string()
        && e["pod"].as_str().unwrap().contains('/')
        && e["from"].is_string()));
}

#[test]
fn pods_owned_by_a_workload_count_once() {
    let scratch = Scratch::new("owners");
    let server = TestServer::start(resources_with(&[])).unwrap();
    let labels = serde_json::json!({"app": "web"});
    let template = serde_json::json!({"metadata": {"labels": labels},
        "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]}});
    server
        .apply(
            &serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "uid": "d-1"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": template}}),
        )
        .unwrap();
    server.apply(&serde_json::json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-5d4f", "namespace": "shop", "uid": "rs-1",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-1", "controller": true}]},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": template}})).unwrap();
    for (i, ip) in ["10.1.0.5", "10.1.0.6"].iter().enumerate() {
        server.apply(&serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("web-5d4f-{i}"), "namespace": "shop", "labels": labels,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f", "uid": "rs-1", "controller": true}]},
            "spec": template["spec"],
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}})).unwrap();
    }
    let kubeconfig = server.write_kubeconfig(&scratch.0).unwrap();
    let out = netfence(&[
        "matrix",
        "-o",
        "json",
        "--cluster",
        "--kubeconfig",
        &text(&kubeconfig),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let matrix: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The two real pods, and no synthetic pod from the Deployment's or ReplicaSet's template.
    assert_eq!(
        matrix["endpoints"],
        serde_json::json!(["shop/web-5d4f-0", "shop/web-5d4f-1"])
    );
    let list = netfence(&["list", "--cluster", "--kubeconfig", &text(&kubeconfig)]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("shop/web[Deployment]"),
        "pods listed under their top-level owner: {text}"
    );
}
