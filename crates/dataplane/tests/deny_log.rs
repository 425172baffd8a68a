//! Deny logs for real (aws-network-policy-agent #664: decision logs without the policy's
//! name): the agent enforces a lab's policies in the lab's node namespace, the NFLOG reader
//! ([`netfence_dataplane::nflog`]) reads the table's log group there, and each denied
//! connection between lab pods gives exactly one record naming the pods and the policy (kind,
//! namespace, name, tier, rule), while an allowed one gives none. Then the rate limit: a
//! burst of denied connections is written up to the rate, and every logged packet the
//! kernel counted is either written or counted as suppressed. Needs root, iproute2, nftables.

mod common;

use common::require_root;
use netfence_dataplane::nflog::{self, Cause, DenyLogEvent, DenyLogStats, Labels, LogRule, Record};
use netfence_dataplane::{
    enforce, AgentEvent, AgentSource, Enforcement, Lab, LabOptions, SourceChange,
};
use netfence_engine::{Engine, ProbePort};
use netfence_model::Loader;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// A source that delivers one engine, then waits for the stop.
struct Once(Option<Engine>, Option<Engine>);

impl AgentSource for Once {
    fn next(&mut self, stop: &AtomicBool) -> Option<SourceChange<'_>> {
        if let Some(engine) = self.0.take() {
            return Some(SourceChange::State {
                engine: self.1.insert(engine),
                received: Instant::now(),
                guard: None,
            });
        }
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

const CLUSTER: &str = "apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: v1
kind: Namespace
metadata: {name: x}
---
# b accepts TCP 80 from a only: c -> b ends at the default tier's closing drop.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-from-a, namespace: x}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: a}}}]
    ports: [{port: 80}]
---
# c -> a is denied by an admin rule.
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: deny-c}
spec:
  priority: 10
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: a}}}}
  ingress:
  - name: no-c
    action: Deny
    from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: c}}}}]
";

fn pod(name: &str, ip: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: x, labels: {{app: {name}}}}}\nspec:\n  nodeName: n1\n  containers: [{{name: main, image: nginx}}]\nstatus: {{phase: Running, podIP: {ip}, podIPs: [{{ip: {ip}}}]}}\n")
}

fn cluster() -> Engine {
    let documents = [
        CLUSTER.to_string(),
        pod("a", "10.46.0.1"),
        pod("b", "10.46.0.2"),
        pod("c", "10.46.0.3"),
    ];
    let mut loader = Loader::new();
    loader.load_str("<test>", &documents.join("---\n"));
    Engine::new(loader.finish().expect("loads"))
}

/// Records arriving within `wait` (the reader batches for at most 0.1 s).
fn drain(records: &mpsc::Receiver<DenyLogEvent>, wait: Duration) -> Vec<Record> {
    let end = Instant::now() + wait;
    let mut out = Vec::new();
    while let Ok(event) = records.recv_timeout(end.saturating_duration_since(Instant::now())) {
        match event {
            DenyLogEvent::Record(record) => out.push(*record),
            DenyLogEvent::Failed(e) => panic!("reader failed: {e}"),
        }
    }
    out
}

#[test]
fn denied_connections_are_logged_with_their_policy_and_allowed_ones_are_not() {
    require_root();
    let engine = cluster();
    let port: ProbePort = "TCP/80".parse().expect("port");
    let lab = Lab::build(&engine, &[port]).expect("lab");
    let netns = lab.node_namespace().to_string();
    let probe = |cells: &[(usize, usize)]| -> Vec<bool> {
        let cells: Vec<(ProbePort, usize, usize)> =
            cells.iter().map(|&(s, d)| (port, s, d)).collect();
        let options = LabOptions {
            // Under the 1 s SYN retransmission: one logged packet per denied probe.
            timeout: Duration::from_millis(700),
            ..LabOptions::default()
        };
        lab.probe_cells(&cells, &options).expect("probe")
    };

    let labels = Arc::new(Labels::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (events_tx, events) = mpsc::channel();
    let settings = Enforcement {
        node: Some("n1".into()),
        netns: Some(netns.clone()),
        allow_empty: false,
        guard: None,
        labels: Some(labels.clone()),
    };
    let agent = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            enforce(&mut Once(Some(cluster()), None), &settings, &stop, |e| {
                let _ = events_tx.send(e);
            })
        })
    };
    match events.recv_timeout(Duration::from_secs(20)) {
        Ok(AgentEvent::Applied { .. }) => {}
        other => panic!("expected the ruleset applied, got {other:?}"),
    }

    // The reader, at a rate no test burst reaches.
    let stats = Arc::new(DenyLogStats::default());
    let reading = Arc::new(AtomicBool::new(true));
    let (records_tx, records) = mpsc::channel();
    let reader = {
        let reading = reading.clone();
        nflog::start(
            Some(&netns),
            labels.clone(),
            stats.clone(),
            1000,
            move || reading.load(Ordering::SeqCst),
            move |event| {
                let _ = records_tx.send(event);
            },
        )
        .expect("bind the log group")
    };
    // One reader per group and namespace: a second is refused, and says why.
    let busy = nflog::start(
        Some(&netns),
        labels.clone(),
        Arc::new(DenyLogStats::default()),
        1,
        || false,
        |_| {},
    )
    .map(|_| ())
    .expect_err("the group is bound");
    assert!(busy.to_string().contains("another process"), "{busy}");

    // Pods: a = 0, b = 1, c = 2 (sorted by name).
    assert_eq!(probe(&[(0, 1), (1, 0)]), [true, true], "a <-> b allowed");
    let allowed = drain(&records, Duration::from_millis(600));
    assert!(
        allowed.is_empty(),
        "allowed connections log nothing: {allowed:?}"
    );

    // c -> b: no rule of b-from-a allows it; the default tier's closing drop.
    assert_eq!(probe(&[(2, 1)]), [false]);
    let lines = drain(&records, Duration::from_millis(600));
    assert_eq!(lines.len(), 1, "one line per denied connection: {lines:?}");
    let record = &lines[0];
    eprintln!("{record}\n{}", record.json());
    let source_port = record.src_port.expect("a TCP source port");
    assert_eq!(
        record.to_string(),
        format!(
            "netfence deny: {} drop TCP 10.46.0.3:{source_port} (x/c) -> 10.46.0.2:80 (x/b): Ingress not allowed by NetworkPolicy x/b-from-a (end of tier default)",
            record.time_text()
        )
    );
    let age = jiff::Timestamp::now().duration_since(record.time);
    assert!(
        age.as_secs_f64().abs() < 5.0,
        "the time is the packet's: {}",
        record.time_text()
    );
    let json = record.json();
    assert_eq!(json["policies"][0]["kind"], "NetworkPolicy");
    assert_eq!(json["policies"][0]["namespace"], "x");
    assert_eq!(json["policies"][0]["name"], "b-from-a");
    assert_eq!(json["src"]["pod"], "x/c");
    assert_eq!(json["dst"]["port"], 80);

    // c -> a: the admin policy's Deny rule 0.
    assert_eq!(probe(&[(2, 0)]), [false]);
    let lines = drain(&records, Duration::from_millis(600));
    assert_eq!(lines.len(), 1, "{lines:?}");
    let record = &lines[0];
    eprintln!("{record}");
    assert_eq!(
        record.to_string(),
        format!(
            "netfence deny: {} drop TCP 10.46.0.3:{} (x/c) -> 10.46.0.1:80 (x/a): Ingress denied by AdminNetworkPolicy deny-c rule 0 (tier kube-admin)",
            record.time_text(),
            record.src_port.expect("port")
        )
    );
    match &record.cause {
        Cause::Rule(source) => match &source.rule {
            LogRule::Rule {
                policy,
                index,
                action,
            } => {
                assert_eq!(
                    (
                        policy.kind.as_str(),
                        policy.namespace.as_deref(),
                        policy.name.as_str(),
                        *index,
                        action.as_str()
                    ),
                    ("AdminNetworkPolicy", None, "deny-c", 0, "Deny")
                );
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    assert_eq!(stats.logged.load(Ordering::Relaxed), 2);
    assert_eq!(stats.suppressed.load(Ordering::Relaxed), 0);

    // The rate limit: a reader at 2 lines a second, and 12 denied connections at once.
    reading.store(false, Ordering::SeqCst);
    reader.join().expect("reader");
    let listing = netfence_dataplane::nft::list(Some(&netns)).expect("list");
    let before = netfence_dataplane::Drops::from_listing(&listing).end_of_tier;
    let stats = Arc::new(DenyLogStats::default());
    let reading = Arc::new(AtomicBool::new(true));
    let (records_tx, records) = mpsc::channel();
    let reader = {
        let reading = reading.clone();
        nflog::start(
            Some(&netns),
            labels.clone(),
            stats.clone(),
            2,
            move || reading.load(Ordering::SeqCst),
            move |event| {
                let _ = records_tx.send(event);
            },
        )
        .expect("bind the log group again")
    };
    let started = Instant::now();
    assert_eq!(probe(&[(2, 1); 12]), [false; 12]);
    let listing = netfence_dataplane::nft::list(Some(&netns)).expect("list");
    let dropped = netfence_dataplane::Drops::from_listing(&listing).end_of_tier - before;
    assert!(dropped >= 12, "the kernel dropped {dropped}");
    // Every logged packet is written or counted as suppressed.
    let deadline = Instant::now() + Duration::from_secs(5);
    let counted =
        || stats.logged.load(Ordering::Relaxed) + stats.suppressed.load(Ordering::Relaxed);
    while counted() < dropped && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let written = drain(&records, Duration::from_millis(300));
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(
        counted(),
        dropped,
        "written + suppressed = logged by the kernel"
    );
    assert_eq!(written.len() as u64, stats.logged.load(Ordering::Relaxed));
    assert!(
        (written.len() as f64) <= 2.0 + 2.0 * elapsed + 1.0,
        "{} lines in {elapsed:.1} s at 2 a second",
        written.len()
    );
    assert!(stats.suppressed.load(Ordering::Relaxed) > 0);
    assert!(stats
        .exposition()
        .contains("netfence_agent_deny_log_lines_total{outcome=\"suppressed\"}"));

    reading.store(false, Ordering::SeqCst);
    reader.join().expect("reader");
    stop.store(true, Ordering::SeqCst);
    agent.join().expect("agent thread").expect("agent");
    let _ = netfence_dataplane::flush(Some(&netns));
}
