//! `netfence dataplane agent --cluster` against the in-process test API server, enforcing in
//! a network-namespace lab: scripted events (a pod created, a policy created, changed and
//! deleted, a compaction answered with 410 Gone) and, after each, real packets between the
//! lab's pods checked against the engine built from the server's objects of that moment.
//! Pods whose network is up but whom the API has not announced yet are dropped (the guard
//! from the Node's podCIDR, which `--pod-interface` adds to). The agent's /healthz and /metrics are read and parsed too.
//! Needs root, iproute2 and nftables, as CI has.

use netfence_cluster::testing::{resources_with, TestServer};
use netfence_dataplane::{Lab, LabOptions};
use netfence_engine::{Engine, ProbePort};
use netfence_model::{Loader, Origin, PodId, Protocol};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn pod(namespace: &str, name: &str, ip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"nodeName": "n1", "containers": [{"name": "main", "image": "nginx"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}})
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn policy(namespace: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace}, "spec": spec})
}

/// The objects the server holds, by (kind, namespace, name), as the test changes them.
#[derive(Default)]
struct State(BTreeMap<(String, String, String), Value>);

impl State {
    fn key(object: &Value) -> (String, String, String) {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
        (
            text(object.get("kind")),
            text(object.pointer("/metadata/namespace")),
            text(object.pointer("/metadata/name")),
        )
    }
    fn apply(&mut self, server: &TestServer, object: Value) {
        server.apply(&object).expect("apply");
        self.0.insert(State::key(&object), object);
    }
    fn delete(&mut self, server: &TestServer, object: &Value) {
        let (kind, namespace, name) = State::key(object);
        let api_version = object["apiVersion"].as_str().expect("apiVersion");
        assert!(server.delete(api_version, &kind, Some(&namespace), &name));
        self.0.remove(&(kind, namespace, name));
    }
    fn engine(&self) -> Engine {
        let mut loader = Loader::new();
        for (i, object) in self.0.values().enumerate() {
            loader.load_object(
                object,
                Origin {
                    file: "<state>".into(),
                    document: i + 1,
                    line: 1,
                    item: None,
                },
            );
        }
        Engine::new(loader.finish().expect("the state loads"))
    }
}

struct Agent {
    child: Child,
    lines: mpsc::Receiver<String>,
    metrics: String,
}

impl Agent {
    /// Wait for the next `applied` line (the agent's transaction is in the kernel).
    fn applied(&self) -> String {
        self.settled(false)
    }

    /// Wait for the next `applied` line, or with `unchanged` also for a change that left the
    /// ruleset as it was.
    fn settled(&self, unchanged: bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the agent applied nothing within 60 s"));
            assert!(
                !line.contains("failing closed") && !line.contains("apply failed"),
                "{line}"
            );
            if line.contains("netfence agent: applied")
                || (unchanged && line.contains("ruleset unchanged"))
            {
                return line;
            }
        }
    }

    fn get(&self, path: &str) -> (u16, String) {
        let mut stream = std::net::TcpStream::connect(&self.metrics).expect("connect metrics");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("request");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("response");
        let (head, body) = text.split_once("\r\n\r\n").expect("http response");
        let status = head
            .split_whitespace()
            .nth(1)
            .expect("status")
            .parse()
            .expect("code");
        (status, body.to_string())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every sample of a Prometheus text exposition, checking its syntax on the way: `# HELP`
/// and `# TYPE` lines, then `name{labels} value` with a float value, names declared by a
/// TYPE line (histograms: `_bucket`, `_sum`, `_count`).
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "type {kind}"
            );
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample: series value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value of {line:?}"));
        let name = series.split('{').next().expect("name");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name:?}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(
                    labels.starts_with('{') && labels.ends_with('}'),
                    "labels of {line:?}"
                );
                for pair in labels[1..labels.len() - 1].split(',') {
                    let (_, quoted) = pair.split_once('=').expect("label=value");
                    assert!(quoted.starts_with('"') && quoted.ends_with('"'), "{line:?}");
                }
            }
        }
        let declared = types.contains_key(name)
            || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                name.strip_suffix(suffix)
                    .is_some_and(|base| types.get(base).is_some_and(|k| k == "histogram"))
            });
        assert!(declared, "{name} has no TYPE line before it");
        samples.insert(series.to_string(), value);
    }
    samples
}

#[test]
fn the_agent_enforces_the_watch_stream_event_by_event() {
    assert!(
        netfence_dataplane::running_as_root(),
        "this test needs root (network namespaces and nftables), as CI has"
    );
    let server = TestServer::start(resources_with(&[])).expect("server");
    let scratch =
        std::env::temp_dir().join(format!("netfence-agent-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch");
    let kubeconfig = server.write_kubeconfig(&scratch).expect("kubeconfig");

    let (a, b, c) = (
        pod("x", "a", "10.45.0.1"),
        pod("x", "b", "10.45.0.2"),
        pod("y", "c", "10.45.0.3"),
    );
    let deny_all = policy(
        "x",
        "deny-all",
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    );
    let from_y = |port: u16| {
        policy(
            "x",
            "from-y",
            json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector":
                {"matchLabels": {"kubernetes.io/metadata.name": "y"}}}], "ports": [{"port": port}]}]}),
        )
    };
    let mut state = State::default();
    state.apply(
        &server,
        json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n1"}, "spec": {"podCIDR": "10.45.0.0/24"}}),
    );
    for object in [
        namespace("x"),
        namespace("y"),
        a.clone(),
        b.clone(),
        deny_all.clone(),
    ] {
        state.apply(&server, object);
    }

    // The lab has every pod's network up from the start (x/a, x/b, y/c: indices 0, 1, 2).
    let mut full = State(state.0.clone());
    full.0.insert(State::key(&c), c.clone());
    let full = full.engine();
    let ports: Vec<ProbePort> = vec![
        "TCP/80".parse().expect("port"),
        "TCP/81".parse().expect("port"),
    ];
    let lab = Lab::build(&full, &ports).expect("lab");
    let keys: Vec<String> = full.inventory().pods().iter().map(|p| p.key()).collect();
    assert_eq!(keys, ["x/a", "x/b", "y/c"]);

    // What the kernel must do in `state`: a pod the server does not hold is dropped both
    // ways; the others follow the engine.
    let check = |state: &State, what: &str| {
        let engine = state.engine();
        let mut cells = Vec::new();
        let mut expected = Vec::new();
        for (p, port) in ports.iter().enumerate() {
            for s in 0..keys.len() {
                for d in 0..keys.len() {
                    if s == d {
                        continue;
                    }
                    let (src, dst) = (
                        engine.endpoint_for_ip(lab.address(PodId::new(s)).into()),
                        engine.endpoint_for_ip(lab.address(PodId::new(d)).into()),
                    );
                    let both_known = [src, dst]
                        .iter()
                        .all(|e| matches!(e, netfence_engine::Endpoint::Pod(_)));
                    expected.push(both_known && engine.allowed(src, dst, Protocol::Tcp, port.port));
                    cells.push((*port, s, d));
                    let _ = p;
                }
            }
        }
        let options = LabOptions {
            timeout: Duration::from_millis(700),
            ..LabOptions::default()
        };
        let observed = lab.probe_cells(&cells, &options).expect("probe");
        let wrong: Vec<String> = cells
            .iter()
            .zip(observed.iter().zip(&expected))
            .filter(|(_, (o, e))| o != e)
            .map(|((port, s, d), (o, e))| {
                format!(
                    "{port} {} -> {}: kernel {o}, expected {e}",
                    keys[*s], keys[*d]
                )
            })
            .collect();
        assert!(wrong.is_empty(), "after {what}: {wrong:#?}");
        expected
    };

    let mut child = Command::new(env!("CARGO_BIN_EXE_netfence"))
        .args([
            "dataplane",
            "agent",
            "--cluster",
            "--kubeconfig",
            &kubeconfig.display().to_string(),
            "--node",
            "n1",
            "--netns",
            lab.node_namespace(),
            "--debounce-ms",
            "100",
            "--metrics-listen",
            "127.0.0.1:0",
            // An interface pattern the lab has none of: it adds to the Node's podCIDR (which
            // still guards c below), as `deploy/` adds `eni*` for the VPC CNI.
            "--pod-interface",
            "nfnone*",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("netfence");
    let (tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    // The deny log's lines, kept apart.
    let denials = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let denials_in = denials.clone();
    let guarding = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let guarding_in = guarding.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            eprintln!("{line}");
            if line.starts_with("netfence agent: guarding") {
                guarding_in.lock().expect("lock").push(line.clone());
            }
            if line.starts_with("netfence deny: ") {
                denials_in.lock().expect("lock").push(line.clone());
            }
            let _ = tx.send(line);
        }
    });
    // Deny lines of the probes `cells` (the reader batches for at most 0.1 s).
    let denied_lines = |cells: &[(ProbePort, usize, usize)]| -> (Vec<bool>, Vec<String>) {
        std::thread::sleep(Duration::from_millis(500));
        denials.lock().expect("lock").clear();
        let options = LabOptions {
            timeout: Duration::from_millis(700),
            ..LabOptions::default()
        };
        let observed = lab.probe_cells(cells, &options).expect("probe");
        std::thread::sleep(Duration::from_millis(600));
        (
            observed,
            std::mem::take(&mut *denials.lock().expect("lock")),
        )
    };
    let metrics = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the agent announces its metrics address");
        if let Some(rest) = line.strip_prefix("netfence agent: health and metrics on http://") {
            break rest.split('/').next().expect("address").to_string();
        }
    };
    let agent = Agent {
        child,
        lines,
        metrics,
    };
    let mut applied = 0;
    agent.applied();
    applied += 1;
    assert_eq!(
        *guarding.lock().expect("lock"),
        ["netfence agent: guarding new pods in 10.45.0.0/24 (node n1's podCIDRs) and on interfaces nfnone*"]
    );
    let (status, body) = agent.get("/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    // Before c is announced: the policy would let nothing into x anyway, but c is dropped
    // even where no policy isolates it (a -> c, b -> c).
    let expected = check(&state, "the first read");
    assert!(
        !expected.iter().any(|&allowed| allowed),
        "all of x isolated, c unknown"
    );
    // A pod created: c is known once the agent's transaction lands.
    state.apply(&server, c.clone());
    agent.applied();
    applied += 1;
    let expected = check(&state, "pod y/c created");
    assert!(
        expected.iter().any(|&allowed| allowed),
        "c is reachable now"
    );

    // A policy created, changed, deleted.
    state.apply(&server, from_y(80));
    agent.applied();
    applied += 1;
    check(&state, "policy x/from-y created");
    // Deny logs: y/c -> x/a on 80 is allowed (no line), on 81 denied: one line naming the
    // pods and the policies that isolate x/a and allow nothing on 81.
    let (observed, lines) = denied_lines(&[(ports[0], 2, 0)]);
    assert_eq!(
        (observed, lines),
        (vec![true], vec![]),
        "an allowed connection logs nothing"
    );
    let (observed, lines) = denied_lines(&[(ports[1], 2, 0)]);
    assert_eq!(observed, [false]);
    assert_eq!(lines.len(), 1, "one line per denied connection: {lines:#?}");
    let (time, rest) = lines[0]["netfence deny: ".len()..]
        .split_once(' ')
        .expect("time");
    assert!(
        time.len() == "2026-12-03T00:00:00.000Z".len() && time.ends_with('Z'),
        "{time}"
    );
    let source_port = rest
        .strip_prefix("drop TCP 10.45.0.3:")
        .and_then(|r| r.split(' ').next())
        .expect("source address");
    assert_eq!(
        rest,
        format!("drop TCP 10.45.0.3:{source_port} (y/c) -> 10.45.0.1:81 (x/a): Ingress not allowed by NetworkPolicy x/deny-all, NetworkPolicy x/from-y (end of tier default)")
    );
    state.apply(&server, from_y(81));
    agent.applied();
    applied += 1;
    check(&state, "policy x/from-y changed to port 81");
    // from-y still isolates x, and deny-all adds no rule to x's chains: the ruleset may
    // stay as it is.
    state.delete(&server, &deny_all);
    if agent.settled(true).contains("applied") {
        applied += 1;
    }
    check(&state, "policy x/deny-all deleted");

    // A compaction: the watches end with 410 Gone and relist; the deletion made meanwhile (of
    // the last policy: nothing is isolated any more, and a deletion from the API server is
    // applied, however empty the ruleset becomes) is found by comparing resource versions.
    server.expire();
    state.delete(&server, &from_y(81));
    agent.applied();
    applied += 1;
    let engine = state.engine();
    assert!(engine.inventory().pods().len() == 3);
    check(&state, "410 Gone and a relist without x/from-y");

    // /metrics: the exposition parses, and its counters agree with what the agent did.
    let (status, body) = agent.get("/metrics");
    assert_eq!(status, 200);
    let samples = parse_exposition(&body);
    let value = |series: &str| {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("{series} missing from\n{body}"))
    };
    let updates = value("netfence_agent_updates_applied_total{kind=\"full\"}")
        + value("netfence_agent_updates_applied_total{kind=\"incremental\"}");
    assert!(
        updates >= f64::from(applied),
        "{updates} < {applied}\n{body}"
    );
    assert_eq!(
        value("netfence_agent_update_latency_seconds_count"),
        updates
    );
    assert_eq!(
        value("netfence_agent_update_latency_seconds_bucket{le=\"+Inf\"}"),
        updates
    );
    assert_eq!(value("netfence_agent_healthy"), 1.0);
    // No policy is left: the ruleset in force has no chain.
    assert_eq!(value("netfence_agent_chains"), 0.0, "{body}");
    assert_eq!(value("netfence_agent_rules"), 0.0, "{body}");
    assert!(
        value("netfence_agent_dropped_packets_total{reason=\"new_pod\"}") > 0.0,
        "the probes to the unannounced c were counted\n{body}"
    );
    assert!(value("netfence_agent_last_update_latency_seconds") < 30.0);
    assert!(
        value("netfence_agent_deny_log_lines_total{outcome=\"logged\"}") >= 1.0,
        "{body}"
    );
    assert_eq!(
        value("netfence_agent_deny_log_lines_total{outcome=\"suppressed\"}"),
        0.0,
        "well under the default 100 lines a second"
    );
    let _ = netfence_dataplane::flush(Some(lab.node_namespace()));
    let _ = std::fs::remove_dir_all(&scratch);
}
