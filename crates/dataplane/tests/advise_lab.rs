//! The advisor's closed loop in the kernel (issue 15): Online Boutique built from network
//! namespaces, real traffic following its call graph with no policy in place, the flows the
//! kernel saw recorded and written as Hubble JSON, `advise` on them, the proposal rendered
//! and enforced by the dataplane, and the traffic replayed: every observed connection still
//! gets through, and every pair × port the proposal does not allow is dropped by the kernel
//! (all pairs probed on every port the proof counts). Needs root, iproute2 and nftables.

use netfence_dataplane::{lab_pod, parse_connections, run_lab, LabOptions};
use netfence_engine::{Cluster, Engine, ProbePort};
use netfence_flows::advise::{self, AdviseOptions, Observer};
use netfence_flows::read::read_bytes;
use netfence_flows::write::hubble_line;
use netfence_flows::{ReadStats, SourceFormat};
use netfence_model::{Loader, Protocol};
use std::path::Path;
use std::time::Duration;

fn examples() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/online-boutique"
    ))
}

#[test]
fn online_boutique_advised_from_recorded_traffic_is_enforced_by_the_kernel() {
    let mut loader = Loader::new();
    loader.load_path(&examples().join("cluster"));
    let cluster = Cluster::new(loader.clone()).expect("Online Boutique loads");
    let engine = cluster.engine();
    let calls_text = std::fs::read_to_string(examples().join("calls.txt")).unwrap();
    let calls = parse_connections(engine, &calls_text).expect("the call graph reads");
    assert!(
        calls.len() >= 28,
        "16 calls and DNS from every pod: {}",
        calls.len()
    );

    // 1. Traffic along the call graph, no policy yet, recorded by the kernel.
    let recorded = run_lab(
        engine,
        &LabOptions {
            connections: Some(calls.clone()),
            record_flows: true,
            timeout: Duration::from_millis(1000),
            ..LabOptions::default()
        },
    )
    .expect("the lab runs (root, ip, nft)");
    let blocked: Vec<_> = recorded.connections.iter().filter(|(_, ok)| !ok).collect();
    assert!(
        blocked.is_empty(),
        "no policy yet, yet blocked: {blocked:?}"
    );
    let mut hubble = Vec::new();
    for flow in &recorded.flows {
        let mut record = flow.record(recorded.window);
        record.flow.src_pod = lab_pod(engine, record.flow.src);
        record.flow.dst_pod = lab_pod(engine, record.flow.dst);
        hubble_line(&mut hubble, &record, "lab").unwrap();
    }

    // 2. Advise from what the kernel saw.
    let mut observer = Observer::new(engine, None);
    let mut stats = ReadStats::default();
    read_bytes(
        &hubble,
        "recorded",
        &SourceFormat::Hubble,
        &mut stats,
        &mut |flow| observer.add(&flow),
    )
    .unwrap();
    assert_eq!(stats.malformed(), 0);
    let observations = observer.finish();
    assert_eq!(
        observations.connections.len(),
        calls.len(),
        "every call seen once as a connection (replies set aside)"
    );
    let advice = advise::advise(&loader, &cluster, &observations, &AdviseOptions::default())
        .expect("advice");
    assert_eq!(advice.proof.denied_after, 0, "{:?}", advice.proof.denied);

    // 3. The proposal enforced: the YAML as printed, loaded with the cluster.
    let mut enforced = loader.clone();
    enforced.load_str(
        "proposal.yaml",
        &advise::render::yaml_stream(&advice.documents),
    );
    let enforced = Engine::new(enforced.finish().expect("the proposal loads"));
    // Every pair on every port the proof counts (the lab probes TCP and UDP).
    let ports: Vec<ProbePort> = advice
        .proof
        .ports
        .iter()
        .copied()
        .filter(|p| p.protocol != Protocol::Sctp)
        .collect();
    let replayed = run_lab(
        &enforced,
        &LabOptions {
            ports: ports.clone(),
            timeout: Duration::from_millis(500),
            ..LabOptions::default()
        },
    )
    .expect("the lab runs");
    assert!(
        replayed.disagreements.is_empty(),
        "the kernel disagrees with the engine: {:?}",
        replayed.disagreements
    );
    // Every observed connection still gets through.
    for call in &calls {
        let p = ports.iter().position(|p| *p == call.port).unwrap();
        assert!(
            replayed
                .observed
                .allowed(p, call.src.index(), call.dst.index()),
            "observed connection {} -> {} {} dropped",
            replayed.observed.endpoints[call.src],
            replayed.observed.endpoints[call.dst],
            call.port
        );
    }
    // Every pair the proposal does not allow is dropped, and the kernel lets through as many
    // pairs × ports as the proof counted.
    let n = replayed.observed.endpoints.len();
    let mut through = 0u64;
    for p in 0..ports.len() {
        for src in 0..n {
            for dst in 0..n {
                if src == dst {
                    continue;
                }
                let allowed = replayed.observed.allowed(p, src, dst);
                assert_eq!(allowed, replayed.predicted.allowed(p, src, dst));
                through += u64::from(allowed);
            }
        }
    }
    assert_eq!(through, advice.proof.allowed_pairs_after);
    assert!(through * 10 <= advice.proof.allowed_pairs_all, "{through}");
}
