//! The view's data against the engine it was gathered from, on generated clusters: every
//! connection of `connlist` is an edge; every precomputed explanation (asked once per pod-class
//! pair and shared) is what `Engine::explain` says for some pod pair of the edge's workloads;
//! each workload's policies are the ones `Engine::selecting` lists for its pods.

use netfence_engine::{connlist, Endpoint, Engine, ListPeer};
use netfence_model::{Loader, PolicyType, Protocol};
use netfence_view::data::{build, BuildOptions, ViewData};
use std::collections::BTreeSet;

fn engine(pods: usize, namespaces: usize, policies: usize, calico: usize, seed: u64) -> Engine {
    let files = netfence_gen::generate(&netfence_gen::GenOptions {
        pods,
        namespaces,
        policies,
        calico,
        admin: 0,
        seed,
    })
    .expect("generate");
    let mut loader = Loader::new();
    for (name, text) in &files {
        loader.load_str(name, text);
    }
    Engine::new(loader.finish().expect("load"))
}

fn view(engine: &Engine) -> ViewData {
    let report = netfence_audit::audit_all(engine, &Default::default(), None);
    build(engine, &report, &BuildOptions::default())
}

fn protocol(text: &str) -> Protocol {
    match text {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        other => panic!("protocol {other}"),
    }
}

/// The endpoints a node stands for.
fn endpoints(engine: &Engine, view: &ViewData, node: usize) -> Vec<Endpoint> {
    let node = &view.nodes[node];
    if node.ns.is_none() {
        let first = node.id.split_once('-').expect("range").0;
        return vec![Endpoint::Address(first.parse().expect("address"))];
    }
    engine
        .inventory()
        .pods()
        .iter()
        .enumerate()
        .filter(|(_, pod)| pod.workload.to_string() == node.label)
        .map(|(id, _)| Endpoint::Pod(netfence_model::PodId::new(id)))
        .collect()
}

#[test]
fn edges_and_shared_explanations_agree_with_the_engine() {
    for (pods, namespaces, policies, calico, seed) in [(300, 6, 40, 0, 1), (250, 5, 30, 3, 2)] {
        let engine = engine(pods, namespaces, policies, calico, seed);
        let view = view(&engine);
        let list = connlist(&engine);
        let page: BTreeSet<(String, String, String)> = view
            .edges
            .iter()
            .map(|(src, dst, conn)| {
                (
                    view.nodes[src].label.clone(),
                    view.nodes[dst].label.clone(),
                    view.conns[conn].clone(),
                )
            })
            .collect();
        let expected: BTreeSet<(String, String, String)> = list
            .iter()
            .map(|c| (c.src.to_string(), c.dst.to_string(), c.conns.to_string()))
            .collect();
        assert_eq!(page, expected, "seed {seed}");
        let mut checked = 0;
        for (e, (src, dst, _)) in view.edges.iter().enumerate() {
            let sources = endpoints(&engine, &view, src);
            let destinations = endpoints(&engine, &view, dst);
            for probe in &view.probe_sets[view.edges.probes[e]] {
                let (proto, port) = probe.port.split_once('/').expect("port");
                let (proto, port) = (protocol(proto), port.parse::<u16>().expect("port"));
                let egress = &view.explanations[probe.egress];
                let ingress = &view.explanations[probe.ingress];
                // Some pod pair of the two workloads is explained exactly so.
                let found = sources.iter().any(|&s| {
                    destinations.iter().any(|&d| {
                        if s == d {
                            return false;
                        }
                        let mut verdict = engine.explain(s, d, proto, port);
                        verdict.egress.endpoint = None;
                        verdict.ingress.endpoint = None;
                        verdict.allowed == (probe.verdict == "allow")
                            && serde_json::to_value(&verdict.egress).expect("json") == *egress
                            && serde_json::to_value(&verdict.ingress).expect("json") == *ingress
                    })
                });
                assert!(
                    found,
                    "{} -> {} {}: no pod pair explained as the page says",
                    view.nodes[src].label, view.nodes[dst].label, probe.port
                );
                // An edge of the list is allowed for some pair on its probes.
                assert_eq!(probe.verdict, "allow", "{}", probe.port);
                checked += 1;
            }
        }
        assert!(checked > 100, "only {checked} probes");
    }
}

#[test]
fn workload_policies_are_the_selecting_policies_of_its_pods() {
    let engine = engine(300, 6, 40, 3, 5);
    let view = view(&engine);
    let mut isolated = 0;
    for (n, node) in view.nodes.iter().enumerate() {
        if node.ns.is_none() {
            continue;
        }
        for (direction, side) in [
            (PolicyType::Ingress, node.ingress.as_ref().expect("side")),
            (PolicyType::Egress, node.egress.as_ref().expect("side")),
        ] {
            let mut expected = BTreeSet::new();
            let mut selected = 0;
            let pods = endpoints(&engine, &view, n);
            for pod in &pods {
                let Endpoint::Pod(id) = pod else { continue };
                let list = engine.selecting(*id, direction);
                selected += usize::from(!list.is_empty());
                for &id in list {
                    let (t, p) = (id.tier(), id.index());
                    let policy = &engine.tiers()[t].policies[p];
                    expected.insert((engine.tiers()[t].name.clone(), policy.name.clone()));
                }
            }
            let on_page: BTreeSet<(String, String)> = side
                .policies
                .iter()
                .map(|&p| (view.policies[p].tier.clone(), view.policies[p].name.clone()))
                .collect();
            assert_eq!(on_page, expected, "{} {direction:?}", node.label);
            assert_eq!(side.isolated, selected == pods.len(), "{}", node.label);
            isolated += usize::from(side.isolated);
        }
    }
    assert!(isolated > 0);
    // External ranges of the list are nodes.
    for connection in connlist(&engine) {
        if let ListPeer::External(..) = connection.src {
            assert!(view
                .nodes
                .iter()
                .any(|n| n.label == connection.src.to_string()));
        }
    }
}
