//! The test API server is faithful enough for the real clients: kubectl (discovery,
//! `get -A -o json`, `--chunk-size` paging, `api-resources`, `get --watch`, 401 without a
//! token) and kube-rs (this crate's discovery, paged reads, watchers with bookmarks and the
//! relist after 410 Gone).

use netfence_cluster::testing::{resources_with, TestServer};
use netfence_cluster::{Follower, UpdateKind};
use netfence_model::Loader;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const KUBECTL: &str = "/usr/bin/kubectl";

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("netfence-cluster-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pod(namespace: &str, name: &str, ip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}})
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn policy(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"podSelector": {"matchLabels": {"app": name}}, "policyTypes": ["Ingress"]}})
}

fn kubectl(scratch: &Scratch, kubeconfig: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(scratch.0.join("cache"))
        .args(args)
        .env("HOME", &scratch.0)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {KUBECTL}: {e}"))
}

fn server(groups: &[&str]) -> TestServer {
    TestServer::start(resources_with(groups)).unwrap()
}

#[test]
fn kubectl_gets_every_pod_as_json() {
    let scratch = Scratch::new("pods");
    let server = server(&[]);
    for ns in ["a", "b"] {
        server.apply(&namespace(ns)).unwrap();
    }
    server.apply(&pod("a", "web", "10.0.0.1")).unwrap();
    server.apply(&pod("a", "db", "10.0.0.2")).unwrap();
    server.apply(&pod("b", "api", "10.0.1.1")).unwrap();
    let kubeconfig = server.write_kubeconfig(&scratch.0).unwrap();
    let out = kubectl(&scratch, &kubeconfig, &["get", "pods", "-A", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p["metadata"]["namespace"].as_str().unwrap(),
                p["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(names, ["a/db", "a/web", "b/api"]);
    assert_eq!(list["items"][0]["kind"], "Pod");
    assert_eq!(list["items"][0]["status"]["podIP"], "10.0.0.2");
    assert!(server
        .requests()
        .iter()
        .any(|r| r.starts_with("GET /api/v1/pods")));
}

#[test]
fn kubectl_pages_with_chunk_size() {
    let scratch = Scratch::new("chunks");
    let server = server(&[]);
    for i in 0..5 {
        server
            .apply(&policy(
                if i % 2 == 0 { "a" } else { "b" },
                &format!("p{i}"),
            ))
            .unwrap();
    }
    let kubeconfig = server.write_kubeconfig(&scratch.0).unwrap();
    let out = kubectl(
        &scratch,
        &kubeconfig,
        &[
            "get",
            "networkpolicies",
            "-A",
            "--chunk-size=2",
            "-o",
            "json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4"]);
    let pages: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET /apis/networking.k8s.io/v1/networkpolicies?"))
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages.iter().all(|r| r.contains("limit=2")), "{pages:?}");
    assert_eq!(
        pages.iter().filter(|r| r.contains("continue=")).count(),
        2,
        "{pages:?}"
    );
}

#[test]
fn kubectl_lists_api_resources_of_installed_groups_only() {
    let scratch = Scratch::new("resources");
    let plain = server(&[]);
    let kubeconfig = plain.write_kubeconfig(&scratch.0).unwrap();
    let out = kubectl(&scratch, &kubeconfig, &["api-resources"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("networkpolicies "))
        .unwrap_or_else(|| panic!("{text}"));
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        columns,
        [
            "networkpolicies",
            "netpol",
            "networking.k8s.io/v1",
            "true",
            "NetworkPolicy"
        ]
    );
    assert!(!text.contains("projectcalico.org"), "{text}");
    drop(plain);
    let calico = server(&["projectcalico.org"]);
    let scratch = Scratch::new("resources-calico");
    let kubeconfig = calico.write_kubeconfig(&scratch.0).unwrap();
    let out = kubectl(
        &scratch,
        &kubeconfig,
        &["api-resources", "--api-group=projectcalico.org"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("tiers ") && l.contains("false") && l.ends_with("Tier")),
        "{text}"
    );
}

#[test]
fn kubectl_is_refused_without_the_token() {
    let scratch = Scratch::new("wrong-token");
    let server = server(&[]);
    let kubeconfig = server.write_kubeconfig(&scratch.0).unwrap();
    let out = kubectl(
        &scratch,
        &kubeconfig,
        &[
            "--context",
            "wrong-token",
            "get",
            "pods",
            "-A",
            "-o",
            "json",
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Unauthorized") || stderr.contains("must be logged in"),
        "{stderr}"
    );
}

#[test]
fn kubectl_watches_pods_event_by_event() {
    let scratch = Scratch::new("watch");
    let server = server(&[]);
    server.apply(&pod("default", "a", "10.0.0.1")).unwrap();
    let kubeconfig = server.write_kubeconfig(&scratch.0).unwrap();
    let mut child = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(scratch.0.join("cache"))
        .args([
            "get",
            "pods",
            "-n",
            "default",
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ])
        .env("HOME", &scratch.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        let stream = serde_json::Deserializer::from_reader(std::io::BufReader::new(stdout))
            .into_iter::<Value>();
        for value in stream.map_while(Result::ok) {
            if sender.send(value).is_err() {
                break;
            }
        }
    });
    let next = || {
        let value = receiver
            .recv_timeout(Duration::from_secs(20))
            .expect("a watch event from kubectl");
        (
            value["type"].as_str().unwrap_or_default().to_string(),
            value["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    };
    assert_eq!(next(), ("ADDED".to_string(), "a".to_string()));
    assert!(server.wait_for_watchers(1, Duration::from_secs(20)));
    server.apply(&pod("default", "b", "10.0.0.2")).unwrap();
    assert_eq!(next(), ("ADDED".to_string(), "b".to_string()));
    server.apply(&pod("other", "c", "10.0.0.3")).unwrap(); // another namespace: not seen
    let mut changed = pod("default", "a", "10.0.0.1");
    changed["metadata"]["labels"]["tier"] = json!("front");
    server.apply(&changed).unwrap();
    assert_eq!(next(), ("MODIFIED".to_string(), "a".to_string()));
    assert!(server.delete("v1", "Pod", Some("default"), "b"));
    assert_eq!(next(), ("DELETED".to_string(), "b".to_string()));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /api/v1/namespaces/default/pods?")
                && r.contains("watch=true"))
    );
}

#[test]
fn the_reader_pages_every_served_kind_and_counts_missing_crds() {
    let scratch = Scratch::new("read");
    let server = server(&["policy.networking.k8s.io"]);
    server.apply(&namespace("a")).unwrap();
    for i in 0..5 {
        server
            .apply(&pod("a", &format!("p{i}"), &format!("10.0.0.{}", i + 1)))
            .unwrap();
    }
    server.apply(&policy("a", "p0")).unwrap();
    let kubeconfig = server.write_kubeconfig(&scratch.0).unwrap();
    let source = netfence_cluster::Source {
        kubeconfig: Some(kubeconfig),
        context: None,
    };
    let mut loader = Loader::new();
    let summary = netfence_cluster::block_on(async {
        let client = netfence_cluster::client(&source).await?;
        netfence_cluster::read_into(&client, &mut loader, 2).await
    })
    .unwrap()
    .unwrap();
    assert_eq!(summary.objects, 7);
    assert!(
        summary
            .missing
            .contains(&"Tier.projectcalico.org".to_string()),
        "{summary:?}"
    );
    assert!(
        !summary
            .missing
            .iter()
            .any(|m| m.starts_with("AdminNetworkPolicy")),
        "{summary:?}"
    );
    let inventory = loader.finish().unwrap();
    assert_eq!(inventory.pods().len(), 5);
    assert_eq!(inventory.network_policies.len(), 1);
    let pod_pages = server
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/pods?") && r.contains("limit=2"))
        .count();
    assert_eq!(pod_pages, 3);
    // Without the token: a clear error, not an empty cluster.
    let anonymous = netfence_cluster::Source {
        kubeconfig: source.kubeconfig.clone(),
        context: Some("wrong-token".into()),
    };
    let error = netfence_cluster::read(&anonymous, &mut Loader::new()).unwrap_err();
    assert_eq!(error.status_code(), Some(401), "{error}");
}

#[test]
fn a_stale_continue_token_or_list_is_gone() {
    let scratch = Scratch::new("gone");
    let server = server(&[]);
    for i in 0..3 {
        server.apply(&policy("a", &format!("p{i}"))).unwrap();
    }
    let kubeconfig = server.write_kubeconfig(&scratch.0).unwrap();
    let first = kubectl(
        &scratch,
        &kubeconfig,
        &[
            "get",
            "--raw",
            "/apis/networking.k8s.io/v1/networkpolicies?limit=1",
        ],
    );
    let first: Value = serde_json::from_slice(&first.stdout).unwrap();
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    let rv = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    server.expire();
    let next = kubectl(
        &scratch,
        &kubeconfig,
        &[
            "get",
            "--raw",
            &format!("/apis/networking.k8s.io/v1/networkpolicies?limit=1&continue={token}"),
        ],
    );
    assert!(!next.status.success());
    assert!(
        String::from_utf8_lossy(&next.stderr).contains("continue parameter is too old"),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );
    let exact = kubectl(
        &scratch,
        &kubeconfig,
        &["get", "--raw", &format!("/apis/networking.k8s.io/v1/networkpolicies?resourceVersion={rv}&resourceVersionMatch=Exact")],
    );
    assert!(!exact.status.success());
    assert!(String::from_utf8_lossy(&exact.stderr).contains("too old resource version"));
}

#[test]
fn the_follower_sees_changes_and_relists_after_410() {
    let scratch = Scratch::new("follow");
    let server = server(&[]);
    server.apply(&namespace("a")).unwrap();
    server.apply(&pod("a", "web", "10.0.0.1")).unwrap();
    server.apply(&pod("a", "db", "10.0.0.2")).unwrap();
    let kubeconfig = server.write_kubeconfig(&scratch.0).unwrap();
    let source = netfence_cluster::Source {
        kubeconfig: Some(kubeconfig),
        context: None,
    };
    netfence_cluster::block_on(async {
        let client = netfence_cluster::client(&source).await.unwrap();
        let mut loader = Loader::new();
        let (_, tracker) = netfence_cluster::snapshot(&client, &mut loader, 500)
            .await
            .unwrap();
        assert_eq!(tracker.len(), 3);
        let mut follower = Follower::new(&client, tracker);
        let followed = follower.tracker().kinds().len() - follower.unfollowed().len();
        // The watchers' first lists repeat the snapshot: nothing changes.
        let quiet = drain(&mut follower, || server.watchers() >= followed).await;
        assert!(quiet.is_empty(), "{quiet:?}");
        server.apply(&policy("a", "web")).unwrap();
        let next = next_update(&mut follower).await;
        assert_eq!(
            (next.kind, next.key.to_string()),
            (UpdateKind::Applied, "NetworkPolicy a/web".to_string())
        );
        // A compaction: every watch ends with 410 and the watchers relist; the pod deleted
        // meanwhile is found missing from the relist (or seen deleted), exactly once.
        let watches_before = watch_requests(&server);
        server.expire();
        assert!(server.delete("v1", "Pod", Some("a"), "db"));
        let next = next_update(&mut follower).await;
        assert_eq!(
            (next.kind, next.key.to_string()),
            (UpdateKind::Deleted, "Pod a/db".to_string())
        );
        let after = drain(&mut follower, || {
            watch_requests(&server) >= watches_before + followed && server.watchers() >= followed
        })
        .await;
        assert!(after.is_empty(), "{after:?}");
        assert_eq!(follower.tracker().len(), 3);
    })
    .unwrap();
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.contains("watch=true") && r.contains("allowWatchBookmarks=true")),
        "{requests:?}"
    );
    // The relist after the 410: pods were listed again.
    assert!(
        requests
            .iter()
            .filter(|r| r.starts_with("GET /api/v1/pods?") && !r.contains("watch="))
            .count()
            >= 3,
        "{requests:?}"
    );
}

fn watch_requests(server: &TestServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.contains("watch=true"))
        .count()
}

/// Poll the follower until `done` (at most 30 s), collecting the updates; watcher errors
/// (the 410s) are expected and skipped.
async fn drain(follower: &mut Follower, done: impl Fn() -> bool) -> Vec<netfence_cluster::Update> {
    let mut updates = Vec::new();
    for _ in 0..150 {
        if done() {
            // Anything already on its way.
            while let Some(Ok(batch)) = follower.next_or_idle(Duration::from_millis(300)).await {
                if batch.is_empty() {
                    break;
                }
                updates.extend(batch);
            }
            return updates;
        }
        if let Some(Ok(batch)) = follower.next_or_idle(Duration::from_millis(200)).await {
            updates.extend(batch);
        }
    }
    panic!("the follower never settled; updates so far: {updates:?}");
}

async fn next_update(follower: &mut Follower) -> netfence_cluster::Update {
    for _ in 0..100 {
        match follower.next_or_idle(Duration::from_millis(200)).await {
            Some(Ok(mut batch)) if !batch.is_empty() => {
                assert_eq!(batch.len(), 1, "{batch:?}");
                return batch.remove(0);
            }
            Some(_) => continue,
            None => break,
        }
    }
    panic!("no update within 20 s");
}
