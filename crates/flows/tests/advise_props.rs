//! Property (issue 15): on random clusters (the engine's property-test generator) with random
//! observed traffic between pods, host-network pods and outside addresses, on random ports
//! and protocols, the proposal denies no observed flow (`denied_after` is 0), in every style
//! and mode; and an engine built from the printed YAML agrees connection by connection.

#[path = "../../engine/tests/random/mod.rs"]
#[allow(dead_code)]
mod random;

use netfence_engine::{Cluster, Endpoint, Engine};
use netfence_flows::advise::{self, AdviseOptions, Observer, Style};
use netfence_flows::{Flow, FlowProtocol, Observed, PodHint, Reply};
use netfence_model::Loader;
use proptest::prelude::*;
use random::{random_calico_cluster, random_cluster, Gen};
use std::net::IpAddr;

/// Random flows over `engine`'s pods and a few outside addresses.
fn random_flows(engine: &Engine, g: &mut Gen) -> Vec<Flow> {
    let pods = engine.inventory().pods();
    let outside: [IpAddr; 4] = [
        "203.0.113.5".parse().unwrap(),
        "203.0.113.9".parse().unwrap(),
        "198.51.100.7".parse().unwrap(),
        "10.0.0.200".parse().unwrap(),
    ];
    // (address, the pod the log names).
    let pick = |g: &mut Gen| -> (IpAddr, Option<PodHint>) {
        if pods.is_empty() || g.chance(20) {
            return (outside[g.below(outside.len() as u64) as usize], None);
        }
        let pod = &pods[g.below(pods.len() as u64) as usize];
        let hint = PodHint {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
        };
        (pod.ips[0], Some(hint))
    };
    let mut flows = Vec::new();
    for _ in 0..1 + g.below(12) {
        let (src, src_pod) = pick(g);
        let (dst, dst_pod) = pick(g);
        let protocol = match g.below(4) {
            0 => FlowProtocol::Udp,
            1 => FlowProtocol::Sctp,
            _ => FlowProtocol::Tcp,
        };
        let mut flow = Flow::new(src, dst, protocol);
        flow.src_port = Some(40000 + g.below(100) as u16);
        flow.dst_port = Some([53, 80, 81, 443, 8080][g.below(5) as usize]);
        flow.reply = Reply::No;
        flow.observed = g.chance(50).then_some(Observed::Allow);
        flow.src_pod = src_pod;
        flow.dst_pod = dst_pod;
        flows.push(flow);
    }
    flows
}

fn check(seed: u64, options: &AdviseOptions) -> Result<(), TestCaseError> {
    let mut loader = Loader::new();
    let mut cluster = random_cluster(seed);
    if options.style == Style::Cilium {
        // Cilium reaches a host-network pod only as the `host`/`remote-node` entities, which
        // match Node addresses: the random clusters have no Node objects, so their
        // host-network pods are left on the host network's side of the cluster.
        cluster = cluster.replace("hostNetwork: true, ", "");
    }
    loader.load_str("random.yaml", &cluster);
    let cluster = Cluster::new(loader.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut g = Gen(seed.rotate_left(17) | 1);
    let flows = random_flows(cluster.engine(), &mut g);
    let mut observer = Observer::new(cluster.engine(), None);
    for flow in &flows {
        observer.add(flow);
    }
    let observations = observer.finish();
    let advice = advise::advise(&loader, &cluster, &observations, options)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(
        advice.proof.denied_after,
        0,
        "seed {} denied {:?}\n{}",
        seed,
        advice.proof.denied,
        advise::render::yaml_stream(&advice.documents)
    );
    prop_assert!(advice.proof.allowed_pairs_after >= advice.proof.observed_pairs);
    // The printed YAML, applied by hand (the replaced objects deleted), allows every
    // observed connection between the endpoints the observer resolved.
    let mut applied = loader.clone();
    let mut changes = Loader::new();
    if !advice.documents.is_empty() {
        changes.load_str(
            "proposal.yaml",
            &advise::render::yaml_stream(&advice.documents),
        );
    }
    if !advice.documents.is_empty() || !advice.plan.replaced.is_empty() {
        applied
            .apply(changes, &advice.plan.replaced)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    let after = Engine::new(
        applied
            .finish()
            .map_err(|e| TestCaseError::fail(e.to_string()))?,
    );
    for connection in observations.connections.keys() {
        let advise::ObservedTarget::Endpoint(dst) = connection.dst else {
            continue;
        };
        let same = |e: Endpoint| match e {
            Endpoint::Pod(id) => {
                let pod = &*cluster.engine().inventory().pods()[id];
                Endpoint::Pod(
                    after
                        .inventory()
                        .pod_by_key(&pod.namespace, &pod.name)
                        .unwrap(),
                )
            }
            other => other,
        };
        prop_assert!(
            after.allowed(
                same(connection.src),
                same(dst),
                connection.protocol,
                connection.port
            ),
            "seed {}: {:?} denied by the printed YAML",
            seed,
            connection
        );
    }
    Ok(())
}

/// On random Calico clusters (tiers, Deny and Pass rules, global policies the proposal does
/// not own), an observed connection may stay denied, but never because of the proposal: the
/// deciding policy is always one of the cluster's own.
fn check_calico(seed: u64, style: Style) -> Result<(), TestCaseError> {
    let mut loader = Loader::new();
    loader.load_str("random.yaml", &random_calico_cluster(seed));
    let cluster = Cluster::new(loader.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut g = Gen(seed.rotate_left(17) | 1);
    let flows = random_flows(cluster.engine(), &mut g);
    let mut observer = Observer::new(cluster.engine(), None);
    for flow in &flows {
        observer.add(flow);
    }
    let observations = observer.finish();
    let options = AdviseOptions {
        style,
        ..AdviseOptions::default()
    };
    let advice = advise::advise(&loader, &cluster, &observations, &options)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let ours: Vec<String> = advice
        .plan
        .policies
        .iter()
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .chain(
            advice
                .plan
                .default_deny
                .iter()
                .map(|d| format!("{}/{}", d.namespace, d.name)),
        )
        .collect();
    for denied in &advice.proof.denied {
        let decider = denied.decided_by.clone().unwrap_or_default();
        prop_assert!(
            !ours
                .iter()
                .any(|name| decider.ends_with(&format!(" {name}"))),
            "seed {}: {:?} denied by the proposal",
            seed,
            denied
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    #[test]
    fn no_observed_flow_is_denied_by_the_proposal(seed in any::<u64>()) {
        check(seed, &AdviseOptions::default())?;
    }

    #[test]
    fn no_observed_flow_is_denied_by_a_replacing_proposal(seed in any::<u64>()) {
        check(seed, &AdviseOptions { replace: true, ..AdviseOptions::default() })?;
    }

    #[test]
    fn on_calico_clusters_the_proposal_is_never_what_denies(seed in any::<u64>()) {
        check_calico(seed, Style::Kubernetes)?;
        check_calico(seed, Style::Calico)?;
    }

    #[test]
    fn no_observed_flow_is_denied_by_a_cilium_proposal(seed in any::<u64>()) {
        check(seed, &AdviseOptions { style: Style::Cilium, ..AdviseOptions::default() })?;
    }

    #[test]
    fn no_observed_flow_is_denied_by_a_calico_proposal(seed in any::<u64>()) {
        check(seed, &AdviseOptions { style: Style::Calico, ..AdviseOptions::default() })?;
    }
}
