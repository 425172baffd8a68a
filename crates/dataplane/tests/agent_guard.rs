//! A new pod is fail-closed until its rules are in (the start-up window of
//! aws-network-policy-agent #83, #186, #345): the agent runs from a source the test drives
//! (the [`AgentSource`] abstraction the cluster watch also implements); the lab holds every
//! pod's namespace from the start, as a CNI sets a pod's network up before any agent hears of
//! it. While the source has not yet delivered pod `c`, connections to and from it are dropped
//! by the guard, whatever the policy says; once the agent's transaction lands, `c` follows the
//! policy; once `b` is deleted, its address is guarded again. Needs root, iproute2, nftables.

mod common;

use common::{engine, pod, require_root, PortLab, RunningAgent};
use netfence_dataplane::{AgentSource, Enforcement, PodGuard, SourceChange};
use netfence_engine::Engine;
use netfence_model::{PodId, Protocol};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A source fed by the test: each engine sent is one settled change.
struct Scripted {
    changes: mpsc::Receiver<Engine>,
    current: Option<Engine>,
    guard: Option<PodGuard>,
}

impl AgentSource for Scripted {
    fn next(&mut self, stop: &AtomicBool) -> Option<SourceChange<'_>> {
        loop {
            if stop.load(Ordering::SeqCst) {
                return None;
            }
            if let Ok(engine) = self.changes.recv_timeout(Duration::from_millis(50)) {
                let received = Instant::now();
                return Some(SourceChange::State {
                    engine: self.current.insert(engine),
                    received,
                    guard: self.guard.clone(),
                });
            }
        }
    }
}

const NODE: &str = "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n";
const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n";
// c accepts TCP 80 from a only.
const POLICY: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: c-from-a, namespace: x}\nspec:\n  podSelector: {matchLabels: {app: c}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: a}}}]\n    ports: [{port: 80}]\n";

#[test]
fn a_new_pod_is_dropped_until_its_rules_are_in() {
    require_root();
    let (a, b, c) = (
        pod("a", "10.44.0.1"),
        pod("b", "10.44.0.2"),
        pod("c", "10.44.0.3"),
    );
    let base = [NODE.to_string(), NAMESPACE.to_string(), POLICY.to_string()];
    let with = |pods: &[&String]| {
        let mut documents = base.to_vec();
        documents.extend(pods.iter().map(|p| p.to_string()));
        engine(&documents)
    };
    // The lab holds all three pods (indices a=0, b=1, c=2: sorted by name).
    let full = with(&[&a, &b, &c]);
    let lab = PortLab::build(&full, "TCP/80");
    let netns = lab.netns();
    let (send, changes) = mpsc::channel();
    let guard = PodGuard {
        cidrs: vec!["10.44.0.0/24".parse().expect("cidr")],
        ..PodGuard::default()
    };
    let settings = Enforcement {
        node: Some("n1".into()),
        netns: Some(netns.clone()),
        allow_empty: false,
        guard: None,
        labels: None,
    };
    let source = move || Scripted {
        changes,
        current: None,
        guard: Some(guard),
    };
    let agent = RunningAgent::spawn(source, settings);

    // a and b exist; c's network is up but no source has told the agent about it.
    send.send(with(&[&a, &b])).expect("send");
    agent.applied();
    assert_eq!(
        lab.probe(&[(0, 1), (1, 0), (0, 2), (1, 2), (2, 0), (2, 1)]),
        [true, true, false, false, false, false],
        "a<->b allowed (no policy selects them); everything from or to the unknown c dropped, though the policy would let a reach c"
    );
    let listing = netfence_dataplane::nft::list(Some(&netns)).expect("list");
    let drops = netfence_dataplane::Drops::from_listing(&listing);
    assert!(
        drops.new_pod >= 4,
        "the guard counted the drops: {drops:?}\n{listing}"
    );

    // c arrives: its chains and its place in the known set land in one transaction.
    send.send(with(&[&a, &b, &c])).expect("send");
    agent.applied();
    let full_check = [(0, 1), (1, 0), (0, 2), (1, 2), (2, 0), (2, 1)];
    let expected: Vec<bool> = full_check
        .iter()
        .map(|&(s, d)| {
            full.allowed(
                full.endpoint_for_ip(lab.lab.address(PodId::new(s)).into()),
                full.endpoint_for_ip(lab.lab.address(PodId::new(d)).into()),
                Protocol::Tcp,
                80,
            )
        })
        .collect();
    assert_eq!(
        expected,
        [true, true, true, false, true, true],
        "the engine's verdicts"
    );
    assert_eq!(lab.probe(&full_check), expected, "c now follows the policy");

    // b is deleted: its address is no known pod any more.
    send.send(with(&[&a, &c])).expect("send");
    agent.applied();
    assert_eq!(lab.probe(&[(0, 1), (1, 0), (0, 2)]), [false, false, true]);

    agent.stop();
}
