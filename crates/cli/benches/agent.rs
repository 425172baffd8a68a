//! `netfence dataplane agent --cluster` against the in-process test API server, enforcing
//! into a network namespace of its own (release build, real nft transactions):
//! - policy change → enforced on the node: a NetworkPolicy created or deleted in a generated
//!   cluster whose pods are spread 110 to a node, timed from the server's change to the
//!   agent's `applied` report (p50/p99/max; the debounce is part of it), and the agent's own
//!   latency (first event received → kernel has it);
//! - memory: the agent's RSS for a node with 110 pods, and under pod churn on that node (pods
//!   created and deleted at a steady rate, RSS sampled every second: first and last 10 s),
//!   with the deny-log reader on (the agent's default) and denied datagrams forwarded
//!   through the agent's namespace every second, so that it reads and writes deny lines.
//!
//! Sizes from the environment: `NETFENCE_BENCH_PODS` (comma-separated, default `1000,10000`),
//! `NETFENCE_BENCH_CHANGES` (policy changes per size, default 20), `NETFENCE_BENCH_DEBOUNCE_MS`
//! (default 100), `NETFENCE_BENCH_CHURN_PODS` (cluster size for churn, default 110),
//! `NETFENCE_BENCH_CHURN_RATE` (pod events/s, default 150), `NETFENCE_BENCH_CHURN_SECONDS`
//! (default 60; `3600` for the one-hour run), `NETFENCE_BENCH_CHURN_REPORT_SECONDS` (a progress
//! line with the RSS now, over the last 10 s and the maximum so far, every so many seconds of
//! churn; default 600). `NETFENCE_BENCH_PODS=` (empty) skips the policy-latency part. Needs
//! root (a network namespace, nftables).
//!
//! For a long churn run, build once (`cargo bench -p netfence --bench agent --no-run`) and run
//! the printed bench binary with `--bench`, so that the hour does not hold the build lock.

use netfence_cluster::testing::{resources_with, TestServer};
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

const PODS_PER_NODE: usize = 110;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "netfence-bench-agent-{}-{name}",
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

/// Put the generated pods on nodes, 110 to a node (`n0`, `n1`, …).
fn place(docs: &mut [Value]) {
    for (pod, doc) in docs.iter_mut().filter(|d| d["kind"] == "Pod").enumerate() {
        doc["spec"]["nodeName"] = json!(format!("n{}", pod / PODS_PER_NODE));
    }
}

struct Agent {
    child: Child,
    netns: String,
    reports: Receiver<(Instant, String)>,
}

impl Agent {
    fn start(server: &TestServer, dir: &Path, debounce: u64) -> Agent {
        let kubeconfig = server.write_kubeconfig(dir).unwrap();
        let netns = format!("nfbench-{}", std::process::id());
        let added = Command::new("ip")
            .args(["netns", "add", &netns])
            .status()
            .unwrap();
        assert!(added.success(), "ip netns add {netns}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_netfence"))
            .args([
                "dataplane",
                "agent",
                "--cluster",
                "--node",
                "n0",
                "--netns",
                &netns,
            ])
            .args([
                "--pod-cidr",
                "10.0.0.0/8",
                "--debounce-ms",
                &debounce.to_string(),
            ])
            .arg("--kubeconfig")
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
        let agent = Agent {
            child,
            netns,
            reports,
        };
        agent.wait_for("netfence agent: applied", Duration::from_secs(900));
        // The watchers' first lists (a repeat of the snapshot) settle.
        std::thread::sleep(Duration::from_secs(3));
        while agent.reports.try_recv().is_ok() {}
        agent
    }

    fn wait_for(&self, needle: &str, timeout: Duration) -> (Instant, String) {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let (at, line) = self
                .reports
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {needle:?}"));
            if line.contains(needle) {
                return (at, line);
            }
        }
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    }

    fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

/// Denied traffic through the agent's namespace while it runs, so that the deny-log reader
/// has packets to read: a client namespace (the address of a pod of the cluster on n0) joined
/// to the agent's by a veth pair sends UDP datagrams, forwarded there (towards a second veth
/// pair, down on the far side), to a churn pod that accepts ingress from its own namespace only
/// (dropped by the `churn` policy) and to an address no pod has (dropped by the new-pod
/// guard). Five of each every second, each from a new source port.
const DENIED_PER_SECOND: u64 = 10;

struct Denier {
    netns: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sender: Option<std::thread::JoinHandle<()>>,
}

impl Denier {
    fn ip(args: &[&str]) {
        let out = Command::new("ip").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(agent_netns: &str, source: &str) -> Denier {
        let netns = format!("{agent_netns}-c");
        Self::ip(&["netns", "add", &netns]);
        let mut denier = Denier {
            netns: netns.clone(),
            stop: std::sync::Arc::default(),
            sender: None,
        };
        let (c, n) = (netns.as_str(), agent_netns);
        let host = format!("{source}/32");
        for args in [
            &[
                "-n", c, "link", "add", "nfb-c", "type", "veth", "peer", "name", "nfb-n", "netns",
                n,
            ][..],
            &["-n", c, "link", "set", "lo", "up"],
            &["-n", c, "addr", "add", &host, "dev", "nfb-c"],
            &["-n", c, "link", "set", "nfb-c", "up"],
            &["-n", c, "route", "add", "10.250.0.254/32", "dev", "nfb-c"],
            &[
                "-n",
                c,
                "route",
                "add",
                "10.201.0.0/16",
                "via",
                "10.250.0.254",
                "dev",
                "nfb-c",
            ],
            &["-n", n, "addr", "add", "10.250.0.254/32", "dev", "nfb-n"],
            &["-n", n, "link", "set", "nfb-n", "up"],
            &["-n", n, "route", "add", &host, "dev", "nfb-n"],
            &[
                "-n", c, "link", "add", "nfb-e", "type", "veth", "peer", "name", "nfb-d", "netns",
                n,
            ][..],
            &["-n", n, "link", "set", "nfb-d", "up"],
            &["-n", n, "route", "add", "10.201.0.0/16", "dev", "nfb-d"],
            &["netns", "exec", n, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
            &[
                "netns",
                "exec",
                n,
                "sysctl",
                "-qw",
                "net.ipv4.conf.all.rp_filter=0",
            ],
            &[
                "netns",
                "exec",
                n,
                "sysctl",
                "-qw",
                "net.ipv4.conf.nfb-n.rp_filter=0",
            ],
        ] {
            Self::ip(args);
        }
        let stop = denier.stop.clone();
        let script = format!(
            "for i in $(seq {}); do echo -n x > /dev/udp/10.201.0.1/9; echo -n x > /dev/udp/10.201.0.2/9; done 2>/dev/null",
            DENIED_PER_SECOND / 2
        );
        denier.sender = Some(std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = Command::new("ip")
                    .args(["netns", "exec", &netns, "bash", "-c", &script])
                    .status();
                std::thread::sleep(Duration::from_secs(1));
            }
        }));
        denier
    }
}

impl Drop for Denier {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(sender) = self.sender.take() {
            let _ = sender.join();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// `in 12.3 ms` of an `applied` line.
fn reported_ms(line: &str) -> f64 {
    line.rsplit(" in ")
        .next()
        .and_then(|t| t.trim_end_matches(" ms").parse().ok())
        .unwrap_or(f64::NAN)
}

fn policy_latency(pods: usize, changes: usize, debounce: u64) {
    let dir = scratch(&format!("latency-{pods}"));
    let mut docs = generate(&dir.join("cluster"), pods);
    place(&mut docs);
    let server = TestServer::start(resources_with(&[])).unwrap();
    for doc in &docs {
        server.apply(doc).unwrap();
    }
    let load = Instant::now();
    let agent = Agent::start(&server, &dir, debounce);
    let start_s = load.elapsed().as_secs_f64() - 3.0;
    let rss_start = agent.rss_kib();
    // A namespace with pods on n0, so that every change changes n0's ruleset.
    let namespace = docs
        .iter()
        .find(|d| d["kind"] == "Pod" && d["spec"]["nodeName"] == "n0")
        .and_then(|d| d["metadata"]["namespace"].as_str())
        .unwrap_or("default")
        .to_string();
    let mut outside = Vec::new();
    let mut inside = Vec::new();
    for i in 0..changes {
        let name = format!("bench-deny-{i}");
        let policy = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}});
        let sent = Instant::now();
        server.apply(&policy).unwrap();
        let (at, line) = agent.wait_for("netfence agent: applied", Duration::from_secs(120));
        outside.push((at - sent).as_secs_f64() * 1000.0);
        inside.push(reported_ms(&line));
        let sent = Instant::now();
        server.delete(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            Some(&namespace),
            &name,
        );
        let (at, line) = agent.wait_for("netfence agent: applied", Duration::from_secs(120));
        outside.push((at - sent).as_secs_f64() * 1000.0);
        inside.push(reported_ms(&line));
    }
    outside.sort_by(f64::total_cmp);
    inside.sort_by(f64::total_cmp);
    println!(
        "agent policy change -> enforced on n0, {pods} pods ({} objects; start {start_s:.1} s; RSS {} MiB at start, {} MiB after, peak {} MiB), debounce {debounce} ms: n={} server->applied p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; agent-reported (received->kernel) p50 {:.1} ms, p99 {:.1} ms",
        docs.len(),
        rss_start / 1024,
        agent.rss_kib() / 1024,
        agent.status_kib("VmHWM:") / 1024,
        outside.len(),
        percentile(&outside, 0.5),
        percentile(&outside, 0.99),
        outside[outside.len() - 1],
        percentile(&inside, 0.5),
        percentile(&inside, 0.99),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn churn(pods: usize, rate: u64, seconds: u64, report: u64, debounce: u64) {
    let dir = scratch("churn");
    let mut docs = generate(&dir.join("cluster"), pods);
    place(&mut docs);
    let server = TestServer::start(resources_with(&[])).unwrap();
    for doc in &docs {
        server.apply(doc).unwrap();
    }
    let namespace = "churn";
    server
        .apply(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
        .unwrap();
    // The churning pods are isolated, so each one has chains on n0.
    server
        .apply(
            &json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "churn", "namespace": namespace},
            "spec": {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}}),
        )
        .unwrap();
    // A churn pod that stays: the denied traffic's destination.
    server
        .apply(&json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "churn-target", "namespace": namespace, "labels": {"app": "churn"}},
            "spec": {"nodeName": "n0", "containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": "Running", "podIP": "10.201.0.1", "podIPs": [{"ip": "10.201.0.1"}]}}))
        .unwrap();
    // The denied traffic's source: a pod of another namespace on n0.
    let source = docs
        .iter()
        .find(|d| {
            d["kind"] == "Pod"
                && d["spec"]["nodeName"] == "n0"
                && d["spec"]["hostNetwork"] != true
                && d["status"]["podIP"].is_string()
        })
        .and_then(|d| d["status"]["podIP"].as_str())
        .expect("a pod on n0")
        .to_string();
    let agent = Agent::start(&server, &dir, debounce);
    let denier = Denier::start(&agent.netns, &source);
    let mut denied = 0u64;
    let at_start = agent.rss_kib();
    // Pods come and go on n0: each event creates pod i or deletes pod i-20 (20 live).
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut next_sample = start;
    let mut events = 0u64;
    let mut next = start;
    let mut applied = 0u64;
    let mut next_report = start + Duration::from_secs(report.max(1));
    let rss_mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "agent churn: RSS at start {:.1} MiB (agent pid {})",
        rss_mib(at_start),
        agent.child.id()
    );
    while start.elapsed() < Duration::from_secs(seconds) {
        let i = events / 2;
        if events.is_multiple_of(2) {
            let ip = format!("10.200.{}.{}", (i / 250) % 250, i % 250 + 1);
            server
                .apply(&json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("churn-{i}"), "namespace": namespace, "labels": {"app": "churn"}},
                    "spec": {"nodeName": "n0", "containers": [{"name": "c", "image": "x"}]},
                    "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}))
                .unwrap();
        } else if i >= 20 {
            server.delete("v1", "Pod", Some(namespace), &format!("churn-{}", i - 20));
        }
        events += 1;
        while let Ok((_, line)) = agent.reports.try_recv() {
            applied += u64::from(line.contains("netfence agent: applied"));
            if line.starts_with("netfence deny: ") {
                denied += 1;
                // The first of each kind, to show what the reader names.
                if denied <= 2 {
                    println!("agent churn: {line}");
                }
            }
        }
        if Instant::now() >= next_sample {
            samples.push((start.elapsed().as_secs_f64(), agent.rss_kib()));
            next_sample += Duration::from_secs(1);
        }
        if Instant::now() >= next_report {
            let last: Vec<u64> = samples.iter().rev().take(10).map(|s| s.1).collect();
            println!(
                "agent churn: {:.0} s: RSS now {:.1} MiB, last 10 s {:.1} MiB, max so far {:.1} MiB; {events} events, {applied} transactions, {denied} deny lines",
                start.elapsed().as_secs_f64(),
                rss_mib(agent.rss_kib()),
                rss_mib(last.iter().sum::<u64>() / last.len().max(1) as u64),
                rss_mib(samples.iter().map(|s| s.1).max().unwrap_or(0)),
            );
            use std::io::Write;
            let _ = std::io::stdout().flush();
            next_report += Duration::from_secs(report.max(1));
        }
        next += interval;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    drop(denier);
    let avg = |part: &[(f64, u64)]| {
        part.iter().map(|s| s.1).sum::<u64>() as f64 / part.len().max(1) as f64 / 1024.0
    };
    let head = &samples[..samples.len().min(10)];
    let tail = &samples[samples.len().saturating_sub(10)..];
    let max = samples.iter().map(|s| s.1).max().unwrap_or(0) as f64 / 1024.0;
    println!(
        "agent under churn on n0, {pods} pods ({} on n0) + 20 churning, {rate} pod events/s for {seconds} s, debounce {debounce} ms: RSS at start {:.1} MiB, first 10 s {:.1} MiB, last 10 s {:.1} MiB, max {max:.1} MiB; {events} events, {applied} transactions, {denied} deny lines (deny logs on, {DENIED_PER_SECOND} datagrams/s denied)",
        pods.min(PODS_PER_NODE),
        at_start as f64 / 1024.0,
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
    let changes: usize = env("NETFENCE_BENCH_CHANGES", "20").parse().unwrap();
    let debounce: u64 = env("NETFENCE_BENCH_DEBOUNCE_MS", "100").parse().unwrap();
    for pods in env("NETFENCE_BENCH_PODS", "1000,10000")
        .split(',')
        .filter(|p| !p.trim().is_empty())
    {
        policy_latency(pods.trim().parse().unwrap(), changes, debounce);
    }
    churn(
        env("NETFENCE_BENCH_CHURN_PODS", "110").parse().unwrap(),
        env("NETFENCE_BENCH_CHURN_RATE", "150").parse().unwrap(),
        env("NETFENCE_BENCH_CHURN_SECONDS", "60").parse().unwrap(),
        env("NETFENCE_BENCH_CHURN_REPORT_SECONDS", "600")
            .parse()
            .unwrap(),
        debounce,
    );
}
