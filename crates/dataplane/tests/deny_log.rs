//! Deny logs for real (aws-network-policy-agent #664: decision logs without the policy's
//! name): the agent enforces a lab's policies in the lab's node namespace, the NFLOG reader
//! ([`netfence_dataplane::nflog`]) reads the table's log group there, and each denied
//! connection between lab pods gives exactly one record naming the pods and the policy (kind,
//! namespace, name, tier, rule), while an allowed one gives none. Then the rate limit: a
//! burst of denied connections is written up to the rate, and every logged packet the
//! kernel counted is either written or counted as suppressed. Needs root, iproute2, nftables.

mod common;

use common::{engine, pod, require_root, PortLab, Reader, RunningAgent};
use netfence_dataplane::nflog::{self, Cause, DenyLogStats, Labels, LogRule};
use netfence_dataplane::{AgentSource, Enforcement, SourceChange};
use netfence_engine::Engine;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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

fn cluster() -> Engine {
    engine(&[
        CLUSTER.to_string(),
        pod("a", "10.46.0.1"),
        pod("b", "10.46.0.2"),
        pod("c", "10.46.0.3"),
    ])
}

#[test]
fn denied_connections_are_logged_with_their_policy_and_allowed_ones_are_not() {
    require_root();
    let lab = PortLab::build(&cluster(), "TCP/80");
    let netns = lab.netns();
    let labels = Arc::new(Labels::default());
    let settings = Enforcement {
        node: Some("n1".into()),
        netns: Some(netns.clone()),
        allow_empty: false,
        guard: None,
        labels: Some(labels.clone()),
    };
    let agent = RunningAgent::spawn(|| Once(Some(cluster()), None), settings);
    agent.applied();

    // The reader, at a rate no test burst reaches.
    let reader = Reader::start(&netns, &labels, 1000);
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
    assert_eq!(
        lab.probe(&[(0, 1), (1, 0)]),
        [true, true],
        "a <-> b allowed"
    );
    let allowed = reader.drain(Duration::from_millis(600));
    assert!(
        allowed.is_empty(),
        "allowed connections log nothing: {allowed:?}"
    );

    // c -> b: no rule of b-from-a allows it; the default tier's closing drop.
    assert_eq!(lab.probe(&[(2, 1)]), [false]);
    let lines = reader.drain(Duration::from_millis(600));
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
    assert_eq!(lab.probe(&[(2, 0)]), [false]);
    let lines = reader.drain(Duration::from_millis(600));
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
    assert_eq!(reader.stats.logged.load(Ordering::Relaxed), 2);
    assert_eq!(reader.stats.suppressed.load(Ordering::Relaxed), 0);

    // The rate limit: a reader at 2 lines a second, and 12 denied connections at once.
    reader.stop();
    let listing = netfence_dataplane::nft::list(Some(&netns)).expect("list");
    let before = netfence_dataplane::Drops::from_listing(&listing).end_of_tier;
    let reader = Reader::start(&netns, &labels, 2);
    let stats = reader.stats.clone();
    let started = Instant::now();
    assert_eq!(lab.probe(&[(2, 1); 12]), [false; 12]);
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
    let written = reader.drain(Duration::from_millis(300));
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

    reader.stop();
    agent.stop();
}
