//! `Engine::peer_addresses` answers what `Engine::peer_matches` answers: on every Calico
//! scenario (`tests/calico/`), for every peer and own-endpoint condition of every rule, a pod's
//! addresses are in the set exactly when the peer matches the pod, and a bare address (the
//! scenarios' outside addresses, every network set's edges, the edges of the rule's `nets`) is
//! in it exactly when the peer matches that address.

mod common;

use common::engine_from;
use netfence_engine::ir::Peer;
use netfence_engine::Endpoint;
use std::net::IpAddr;

#[derive(serde::Deserialize)]
struct Scenario {
    name: String,
    policies: String,
    expect: Vec<String>,
}

/// The first and last address of a CIDR and their outside neighbours.
fn edges(net: &ipnet::IpNet) -> Vec<IpAddr> {
    let (first, last) = match net {
        ipnet::IpNet::V4(n) => (
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        ipnet::IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
    };
    let v4 = matches!(net, ipnet::IpNet::V4(_));
    [
        first.checked_sub(1),
        Some(first),
        Some(last),
        last.checked_add(1),
    ]
    .into_iter()
    .flatten()
    .filter(|x| !v4 || *x <= u128::from(u32::MAX))
    .map(|x| netfence_model::net::address_of(v4, x))
    .collect()
}

#[test]
fn peer_addresses_agree_with_peer_matches_on_every_calico_scenario() {
    let base = include_str!("calico/base.yaml");
    let scenarios: Vec<Scenario> =
        serde_yaml_ng::from_str(include_str!("calico/scenarios.yaml")).expect("scenarios parse");
    let (mut peers, mut checks) = (0, 0);
    let mut failures = Vec::new();
    for scenario in &scenarios {
        let engine = engine_from(&[("base.yaml", base), ("policies.yaml", &scenario.policies)]);
        let inventory = engine.inventory();
        let mut outside: Vec<IpAddr> = scenario
            .expect
            .iter()
            .flat_map(|l| l.split_whitespace().take(3).collect::<Vec<_>>())
            .filter_map(|w| w.parse().ok())
            .collect();
        outside.extend(
            inventory
                .network_sets
                .iter()
                .flat_map(|s| s.nets.iter().flat_map(edges)),
        );
        for tier in engine.tiers() {
            for policy in &tier.policies {
                for rule in [&policy.ingress, &policy.egress]
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    for peer in rule.peers.iter().chain(rule.local.iter()) {
                        peers += 1;
                        let set = engine.peer_addresses(peer);
                        let mut addresses = outside.clone();
                        if let Peer::Calico(entity) = peer.peer() {
                            addresses
                                .extend(entity.nets.iter().chain(&entity.not_nets).flat_map(edges));
                        }
                        for id in (0..inventory.pods().len()).map(netfence_model::PodId::new) {
                            let matched = engine.peer_matches(peer, Endpoint::Pod(id));
                            for ip in &inventory.pods()[id].ips {
                                checks += 1;
                                if set.contains(*ip) != matched {
                                    failures.push(format!("{}: {} {peer:?}: pod {} matches {matched}, set has {ip}: {}", scenario.name, policy.name, inventory.pods()[id].key(), set.contains(*ip)));
                                }
                            }
                        }
                        for ip in addresses
                            .iter()
                            .filter(|ip| inventory.pod_by_ip(**ip).is_none())
                        {
                            checks += 1;
                            let matched = engine.peer_matches(peer, Endpoint::Address(*ip));
                            if set.contains(*ip) != matched {
                                failures.push(format!(
                                    "{}: {} {peer:?}: address {ip} matches {matched}, in set {}",
                                    scenario.name,
                                    policy.name,
                                    set.contains(*ip)
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    println!(
        "resolved peers: {peers} peers, {checks} pod and address checks, {} disagreements",
        failures.len()
    );
    assert!(peers > 50, "the scenarios have peers to check");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
