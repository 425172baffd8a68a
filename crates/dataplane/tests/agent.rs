//! The agent against a lab: it applies the inputs, follows a change with an incremental
//! update, keeps the last good ruleset when a change is bad, and fails closed when the first
//! load fails. Needs root, iproute2 and nftables, as CI has.

mod common;

use common::{assert_kernel_matches, require_root};

use netfence_conformance::k8s_e2e_cases;
use netfence_dataplane::{run_agent, AgentEvent, AgentOptions, Lab, LabOptions};
use netfence_engine::{Engine, ProbePort};
use netfence_model::Loader;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

fn engine_of_dir(dir: &std::path::Path) -> Engine {
    let mut loader = Loader::new();
    loader.load_path(dir);
    Engine::new(loader.finish().expect("loads"))
}

fn next_event(events: &mpsc::Receiver<AgentEvent>) -> AgentEvent {
    events
        .recv_timeout(Duration::from_secs(20))
        .expect("agent event within 20 s")
}

#[test]
fn agent_follows_changes_and_keeps_the_last_good_ruleset() {
    require_root();
    let case = k8s_e2e_cases()
        .into_iter()
        .find(|c| c.file == "001-default-deny-ingress.yaml")
        .expect("case");
    let dir = std::env::temp_dir().join(format!("netfence-agent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("inventory.yaml"), &case.inventory).unwrap();
    std::fs::write(dir.join("policies.yaml"), &case.policies).unwrap();
    let ports: Vec<ProbePort> = vec!["TCP/80".parse().unwrap()];
    let v1 = engine_of_dir(&dir);
    let lab = Lab::build(&v1, &ports).expect("lab");

    let stop = Arc::new(AtomicBool::new(false));
    let (tx, events) = mpsc::channel();
    let options = AgentOptions {
        inputs: vec![dir.clone()],
        node: None,
        netns: Some(lab.node_namespace().to_string()),
        poll: Duration::from_millis(50),
        debounce: Duration::from_millis(100),
        allow_empty: false,
        guard: None,
    };
    let agent = {
        let stop = stop.clone();
        std::thread::spawn(move || run_agent(&options, &stop, |e| tx.send(e).unwrap()))
    };
    assert!(matches!(
        next_event(&events),
        AgentEvent::Applied {
            incremental: false,
            ..
        }
    ));
    assert_kernel_matches(&lab, &v1, &ports);

    // A change: namespace y now accepts only from x.
    std::fs::write(
        dir.join("more.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: only-from-x, namespace: y}\nspec:\n  podSelector: {}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: x}}}]\n",
    )
    .unwrap();
    assert!(matches!(
        next_event(&events),
        AgentEvent::Applied {
            incremental: true,
            ..
        }
    ));
    let v2 = engine_of_dir(&dir);
    assert_kernel_matches(&lab, &v2, &ports);

    // A bad change is rejected; the kernel keeps v2.
    std::fs::write(dir.join("broken.yaml"), "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: 70000}]}]\n").unwrap();
    match next_event(&events) {
        AgentEvent::Rejected(reason) => assert!(reason.contains("broken.yaml"), "{reason}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_kernel_matches(&lab, &v2, &ports);

    stop.store(true, Ordering::SeqCst);
    agent.join().unwrap().expect("agent ends cleanly");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn agent_fails_closed_when_the_first_load_fails() {
    require_root();
    let case = k8s_e2e_cases()
        .into_iter()
        .find(|c| c.file == "016-allow-all.yaml")
        .expect("case");
    let dir = std::env::temp_dir().join(format!("netfence-agent-closed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("inventory.yaml"), &case.inventory).unwrap();
    let ports: Vec<ProbePort> = vec!["TCP/80".parse().unwrap()];
    let open = engine_of_dir(&dir);
    let lab = Lab::build(&open, &ports).expect("lab");
    std::fs::write(dir.join("broken.yaml"), "kind: [\n").unwrap();
    let stop = AtomicBool::new(false);
    let options = AgentOptions {
        inputs: vec![dir.clone()],
        node: None,
        netns: Some(lab.node_namespace().to_string()),
        poll: Duration::from_millis(10),
        debounce: Duration::from_millis(10),
        allow_empty: false,
        guard: None,
    };
    let mut events = Vec::new();
    run_agent(&options, &stop, |e| {
        events.push(e);
        stop.store(true, Ordering::SeqCst); // stop right after start-up
    })
    .expect("agent runs");
    assert!(
        matches!(events.first(), Some(AgentEvent::FailedClosed(_))),
        "{events:?}"
    );
    let options = LabOptions {
        ports: ports.clone(),
        timeout: Duration::from_millis(500),
        ..LabOptions::default()
    };
    let (observed, _) = lab.probe_matrix(&open, &options).expect("probe");
    let n = observed.endpoints.len();
    for s in 0..n {
        for d in 0..n {
            assert_eq!(
                observed.allowed(0, s, d),
                s == d,
                "fail-closed blocks every new connection"
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Start-up only: run the agent until its first event, and return it.
fn first_event(options: &AgentOptions) -> AgentEvent {
    let stop = AtomicBool::new(false);
    let mut events = Vec::new();
    run_agent(options, &stop, |e| {
        events.push(e);
        stop.store(true, Ordering::SeqCst);
    })
    .expect("agent runs");
    events.into_iter().next().expect("an event")
}

#[test]
fn agent_keeps_an_enforcing_ruleset_when_the_inputs_turn_empty() {
    require_root();
    let case = k8s_e2e_cases()
        .into_iter()
        .find(|c| c.file == "001-default-deny-ingress.yaml")
        .expect("case");
    let dir = std::env::temp_dir().join(format!("netfence-agent-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (inventory, policies) = (dir.join("inventory.yaml"), dir.join("policies.yaml"));
    std::fs::write(&inventory, &case.inventory).unwrap();
    std::fs::write(&policies, &case.policies).unwrap();
    let ports: Vec<ProbePort> = vec!["TCP/80".parse().unwrap()];
    let enforced = engine_of_dir(&dir);
    let pods = enforced.inventory().pods().len();
    let open = {
        let mut loader = Loader::new();
        loader.load_str("inventory.yaml", &case.inventory);
        Engine::new(loader.finish().expect("loads"))
    };
    let lab = Lab::build(&enforced, &ports).expect("lab");
    let options = |allow_empty| AgentOptions {
        inputs: vec![dir.clone()],
        node: None,
        netns: Some(lab.node_namespace().to_string()),
        poll: Duration::from_millis(50),
        debounce: Duration::from_millis(100),
        allow_empty,
        guard: None,
    };

    let stop = Arc::new(AtomicBool::new(false));
    let (tx, events) = mpsc::channel();
    let agent = {
        let (stop, options) = (stop.clone(), options(false));
        std::thread::spawn(move || run_agent(&options, &stop, |e| tx.send(e).unwrap()))
    };
    assert!(matches!(next_event(&events), AgentEvent::Applied { .. }));
    // The last policy goes: the pods are still there, none is isolated any more.
    std::fs::remove_file(&policies).unwrap();
    assert_eq!(next_event(&events), AgentEvent::EmptyRefused { pods });
    assert_kernel_matches(&lab, &enforced, &ports);
    // The directory is momentarily empty (a loader that calls that an error rejects it).
    std::fs::remove_file(&inventory).unwrap();
    match next_event(&events) {
        AgentEvent::EmptyRefused { pods: 0 } | AgentEvent::Rejected(_) => {}
        other => panic!("expected the empty inputs to be refused, got {other:?}"),
    }
    assert_kernel_matches(&lab, &enforced, &ports);
    stop.store(true, Ordering::SeqCst);
    agent.join().unwrap().expect("agent ends cleanly");

    // A new agent whose first load isolates nothing keeps the table the kernel holds.
    std::fs::write(&inventory, &case.inventory).unwrap();
    assert_eq!(
        first_event(&options(false)),
        AgentEvent::EmptyRefused { pods }
    );
    assert_kernel_matches(&lab, &enforced, &ports);
    // Unless told to apply it.
    match first_event(&options(true)) {
        AgentEvent::Applied { chains: 0, .. } => {}
        other => panic!("expected the empty ruleset to be applied, got {other:?}"),
    }
    assert_kernel_matches(&lab, &open, &ports);
    std::fs::remove_dir_all(&dir).ok();
}
