//! The lab on every upstream Kubernetes e2e case (`shared/conformance/k8s-e2e`): the kernel,
//! loaded with the rendered ruleset, must let through exactly what the engine predicts, and
//! that must be what upstream expects. Real packets between network namespaces: needs root,
//! iproute2 and nftables (CI runs as root; scripts/test installs the tools).
//!
//! The same runs record the flows the kernel saw (`LabOptions::record_flows`, issue 14's
//! round trip): written as Hubble JSON and as VPC records and read back, checking them
//! against the same policies gives no mismatch, and against another case's policies exactly
//! the cells where the two engines' matrices differ.

use netfence_conformance::k8s_e2e_cases;
use netfence_dataplane::{run_lab, LabOptions, LabReport};
use netfence_engine::{Endpoint, Engine, Matrix, ProbePort};
use netfence_flows::read::read_bytes;
use netfence_flows::write::{hubble_line, vpc_record, VPC_HEADER};
use netfence_flows::{Checked, Checker, ReadStats, SourceFormat, VpcFormat};
use netfence_model::Loader;
use std::collections::BTreeSet;

fn load(inventory: &str, file: &str, policies: &str) -> Engine {
    let mut loader = Loader::new();
    loader.load_str("inventory.yaml", inventory);
    loader.load_str(file, policies);
    Engine::new(loader.finish().expect("case loads"))
}

/// A probed cell: (port index, source pod, destination pod).
type Cell = (usize, usize, usize);

/// The recorded flows written in `format` (`hubble` or `vpc`), read back and checked against
/// `engine`: the cells of the mismatches, and how many connections were judged.
fn round_trip(
    report: &LabReport,
    engine: &Engine,
    ports: &[ProbePort],
    format: &str,
) -> (BTreeSet<Cell>, u64) {
    let mut text = Vec::new();
    let source = if format == "hubble" {
        for flow in &report.flows {
            hubble_line(&mut text, &flow.record(report.window), "lab").unwrap();
        }
        SourceFormat::Hubble
    } else {
        text.extend_from_slice(VPC_HEADER.as_bytes());
        text.push(b'\n');
        for flow in &report.flows {
            vpc_record(&mut text, &flow.record(report.window), "eni-lab").unwrap();
        }
        SourceFormat::Vpc(VpcFormat::default())
    };
    let mut checker = Checker::new(engine, None);
    let mut stats = ReadStats::default();
    let mut cells = BTreeSet::new();
    read_bytes(&text, format, &source, &mut stats, &mut |flow| {
        if let Checked::Judged(checked) = checker.check(&flow) {
            if checked.mismatch {
                let (Endpoint::Pod(src), Endpoint::Pod(dst)) = (checked.src, checked.dst) else {
                    panic!("{format}: a lab address resolved to no pod: {checked:?}");
                };
                let port = ports
                    .iter()
                    .position(|p| {
                        Some(p.port) == checked.port
                            && Some(p.protocol) == checked.protocol.ported()
                    })
                    .expect("a probed port");
                cells.insert((port, src.index(), dst.index()));
            }
        }
    })
    .unwrap();
    assert_eq!(
        stats.malformed(),
        0,
        "{format}: every written line reads back"
    );
    (cells, checker.stats().judged)
}

#[test]
fn lab_agrees_with_engine_and_upstream_on_every_e2e_case() {
    let root = netfence_dataplane::running_as_root();
    assert!(
        root,
        "the lab test needs root (network namespaces and nftables); run it as root, as CI does"
    );
    let cases = k8s_e2e_cases();
    let mut failures = Vec::new();
    let mut recorded = 0;
    let mut changed_cells = 0;
    let (mut probes, mut setup, mut probing) = (0, 0.0, 0.0);
    for case in &cases {
        let engine = load(&case.inventory, &case.file, &case.policies);
        let ports: Vec<ProbePort> = case
            .expect
            .keys()
            .map(|p| p.parse().expect("port"))
            .collect();
        let options = LabOptions {
            ports: ports.clone(),
            record_flows: true,
            ..LabOptions::default()
        };
        let report = match run_lab(&engine, &options) {
            Ok(report) => report,
            Err(e) => {
                failures.push(format!("{}: lab failed: {e}", case.file));
                continue;
            }
        };
        probes += report.probes;
        recorded += report.flows.len();
        // The round trip: the same policies explain every recorded connection; the next
        // case's policies (same pods) disagree exactly where the two matrices differ.
        let next =
            &cases[(cases.iter().position(|c| c.file == case.file).unwrap() + 1) % cases.len()];
        let changed = load(&case.inventory, &next.file, &next.policies);
        let changed_matrix = Matrix::compute(&changed, &ports);
        let n = report.predicted.endpoints.len();
        let differing: BTreeSet<Cell> = (0..ports.len())
            .flat_map(|p| (0..n).flat_map(move |s| (0..n).map(move |d| (p, s, d))))
            .filter(|&(p, s, d)| {
                s != d && report.predicted.allowed(p, s, d) != changed_matrix.allowed(p, s, d)
            })
            .collect();
        changed_cells += differing.len();
        for format in ["hubble", "vpc"] {
            let (same, judged) = round_trip(&report, &engine, &ports, format);
            if !same.is_empty() {
                failures.push(format!(
                    "{}: {format} round trip: {} mismatches against the same policies: {same:?}",
                    case.file,
                    same.len()
                ));
            }
            if judged != report.probes as u64 {
                failures.push(format!(
                    "{}: {format} round trip: {judged} connections judged, {} probes sent",
                    case.file, report.probes
                ));
            }
            let (against_next, _) = round_trip(&report, &changed, &ports, format);
            if against_next != differing {
                failures.push(format!("{}: {format} checked against {}: mismatches {against_next:?}, matrices differ at {differing:?}", case.file, next.file));
            }
        }
        setup += report.setup.as_secs_f64();
        probing += report.probing.as_secs_f64();
        for line in &report.disagreements {
            failures.push(format!("{}: {line}", case.file));
        }
        for (p, port) in ports.iter().enumerate() {
            let grid = &case.expect[&port.to_string()];
            for ((src, dst), expected) in grid {
                if src == dst {
                    continue;
                }
                let index = |key: &String| {
                    report
                        .observed
                        .endpoints
                        .iter()
                        .position(|e| e == key)
                        .expect("endpoint")
                };
                let seen = report.observed.allowed(p, index(src), index(dst));
                if seen != *expected {
                    failures.push(format!("{}: {port} {src} -> {dst}: upstream expects {expected}, kernel gave {seen}", case.file));
                }
            }
        }
    }
    println!(
        "lab k8s-e2e: {} cases, {probes} probes with real packets, {recorded} flows recorded by the kernel, {changed_cells} cells changed by the next case's policies, {} disagreements or round-trip failures (setup {setup:.1}s, probing {probing:.1}s)",
        cases.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        changed_cells > 0,
        "the changed policies must change some cells, or the round trip proves nothing"
    );
}
