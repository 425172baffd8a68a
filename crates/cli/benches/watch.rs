//! `netfence watch --cluster` against the in-process test API server, end to end (TLS,
//! watch streams, the engine's incremental update, the printed delta):
//! - policy change → delta printed: a NetworkPolicy created or deleted in a generated
//!   cluster, timed from the server's change to watch's report of it (p50/p99/max);
//! - memory under pod churn: pods created and deleted at a steady rate, watch's RSS sampled
//!   every second (first and last 10 s, max), and whether watch kept up.
//!
//! Sizes from the environment: `NETFENCE_BENCH_PODS` (comma-separated, default `1000,5000`),
//! `NETFENCE_BENCH_CHANGES` (policy changes per size, default 40), `NETFENCE_BENCH_CHURN_PODS`
//! (cluster size for churn, default 110), `NETFENCE_BENCH_CHURN_RATE` (pod events/s, default
//! 150), `NETFENCE_BENCH_CHURN_SECONDS` (default 60).

use netfence_cluster::testing::{resources_with, TestServer};
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "netfence-bench-watch-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn generate(dir: &Path, pods: usize) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_netfence"))
        .args([
            "gen",
            "--pods",
            &pods.to_string(),
            "--namespaces",
            &(pods / 100).max(3).to_string(),
        ])
        .args(["--policies", &(pods / 5).to_string(), "--seed", "1", "-o"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(doc).unwrap();
            if !value.is_null() {
                docs.push(value);
            }
        }
    }
    docs
}

struct Watch {
    child: Child,
    reports: Receiver<(Instant, String)>,
}

impl Watch {
    fn start(server: &TestServer, dir: &Path) -> Watch {
        let kubeconfig = server.write_kubeconfig(dir).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_netfence"))
            .args(["watch", "--cluster", "--kubeconfig"])
            .arg(&kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, reports) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = sender.send((Instant::now(), line));
            }
        });
        let watch = Watch { child, reports };
        let started = watch.wait_for("netfence: watching", Duration::from_secs(600));
        let kinds: usize = started
            .split(" object(s) of ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(server.wait_for_watchers(kinds, Duration::from_secs(120)));
        // The watchers' first lists (a repeat of the snapshot) settle.
        std::thread::sleep(Duration::from_secs(2));
        while watch.reports.try_recv().is_ok() {}
        watch
    }

    fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let (_, line) = self
                .reports
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn policy_latency(pods: usize, changes: usize) {
    let dir = scratch(&format!("latency-{pods}"));
    let docs = generate(&dir.join("cluster"), pods);
    let server = TestServer::start(resources_with(&[])).unwrap();
    for doc in &docs {
        server.apply(doc).unwrap();
    }
    let load = Instant::now();
    let watch = Watch::start(&server, &dir);
    let start_s = load.elapsed().as_secs_f64();
    let namespace = docs
        .iter()
        .find(|d| d["kind"] == "Pod")
        .and_then(|d| d["metadata"]["namespace"].as_str())
        .unwrap_or("default")
        .to_string();
    let mut millis = Vec::new();
    for i in 0..changes {
        let name = format!("bench-deny-{i}");
        let policy = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}});
        let sent = Instant::now();
        server.apply(&policy).unwrap();
        watch.wait_for(&format!("{name} created:"), Duration::from_secs(120));
        millis.push(sent.elapsed().as_secs_f64() * 1000.0);
        let sent = Instant::now();
        server.delete(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            Some(&namespace),
            &name,
        );
        watch.wait_for(&format!("{name} deleted:"), Duration::from_secs(120));
        millis.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    millis.sort_by(f64::total_cmp);
    println!(
        "watch policy change -> delta printed, {pods} pods ({} objects; start {start_s:.1} s, RSS {} MiB): n={} p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        docs.len(),
        watch.rss_kib() / 1024,
        millis.len(),
        percentile(&millis, 0.5),
        percentile(&millis, 0.99),
        millis[millis.len() - 1]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn churn(pods: usize, rate: u64, seconds: u64) {
    let dir = scratch("churn");
    let docs = generate(&dir.join("cluster"), pods);
    let server = TestServer::start(resources_with(&[])).unwrap();
    for doc in &docs {
        server.apply(doc).unwrap();
    }
    let watch = Watch::start(&server, &dir);
    let namespace = "churn";
    server
        .apply(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
        .unwrap();
    // Pods come and go: each event creates pod i and deletes pod i-20 (20 churn pods live).
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut next_sample = start;
    let mut events = 0u64;
    let mut next = start;
    while start.elapsed() < Duration::from_secs(seconds) {
        let i = events / 2;
        if events.is_multiple_of(2) {
            let ip = format!("10.200.{}.{}", (i / 250) % 250, i % 250 + 1);
            server
                .apply(&json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("churn-{i}"), "namespace": namespace, "labels": {"app": "churn"}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]},
                    "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}))
                .unwrap();
        } else if i >= 20 {
            server.delete("v1", "Pod", Some(namespace), &format!("churn-{}", i - 20));
        }
        events += 1;
        if Instant::now() >= next_sample {
            samples.push((start.elapsed().as_secs_f64(), watch.rss_kib()));
            next_sample += Duration::from_secs(1);
        }
        next += interval;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let sent = events;
    // Did watch keep up? Count its reports for a while after the last event.
    let mut reported = 0u64;
    let drain_until = Instant::now() + Duration::from_secs(30);
    while let Ok((_, line)) = watch
        .reports
        .recv_timeout(drain_until.saturating_duration_since(Instant::now()))
    {
        if line.contains(" line(s)") {
            reported += 1;
        }
    }
    let avg = |part: &[(f64, u64)]| {
        part.iter().map(|s| s.1).sum::<u64>() as f64 / part.len().max(1) as f64 / 1024.0
    };
    let head = &samples[..samples.len().min(10)];
    let tail = &samples[samples.len().saturating_sub(10)..];
    let max = samples.iter().map(|s| s.1).max().unwrap_or(0) as f64 / 1024.0;
    println!(
        "watch under churn, {pods} pods + 20 churning, {rate} pod events/s for {seconds} s: RSS first 10 s {:.1} MiB, last 10 s {:.1} MiB, max {max:.1} MiB; events sent {sent}, applied by 30 s after the end {reported}",
        avg(head),
        avg(tail)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would run this too: skip then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let changes: usize = env("NETFENCE_BENCH_CHANGES", "40").parse().unwrap();
    for pods in env("NETFENCE_BENCH_PODS", "1000,5000").split(',') {
        policy_latency(pods.trim().parse().unwrap(), changes);
    }
    churn(
        env("NETFENCE_BENCH_CHURN_PODS", "110").parse().unwrap(),
        env("NETFENCE_BENCH_CHURN_RATE", "150").parse().unwrap(),
        env("NETFENCE_BENCH_CHURN_SECONDS", "60").parse().unwrap(),
    );
}
