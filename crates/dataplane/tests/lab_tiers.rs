//! The lab on tiered policies: the Calico scenario suite (`crates/engine/tests/calico/`), the
//! network-policy-api conformance suite (`crates/engine/tests/network-policy-api/`) and the
//! Cilium cases (`crates/engine/tests/cilium/`), with real packets between network
//! namespaces. For every scenario, step or case the kernel, loaded with the rendered ruleset,
//! must let through exactly what the engine predicts on the whole pod grid of the probed
//! ports, and that must be what the suite expects (Calico and Cilium expectations naming a
//! bare address are probed from or to a namespace holding that address; a Cilium expectation
//! to a Service's cluster IP is probed at each backend). Namespaces are built once per suite
//! (per distinct set of pods) and reused: each scenario, step or case only replaces the
//! ruleset. Needs root, iproute2 and nftables, as CI has.

mod common;

#[path = "../../engine/tests/network-policy-api/harness.rs"]
mod harness;

#[path = "../../engine/tests/cilium/harness.rs"]
mod cilium;

use common::require_root;
use netfence_dataplane::{render, Lab, LabOptions, RenderOptions};
use netfence_engine::{Endpoint, Engine, Matrix, ProbePort};
use netfence_model::{Loader, Protocol};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

fn options() -> LabOptions {
    LabOptions {
        timeout: Duration::from_millis(500),
        ..LabOptions::default()
    }
}

/// Options for probing a disagreement again: a long timeout, so that only a packet the
/// kernel really dropped stays unanswered.
fn patient() -> LabOptions {
    LabOptions {
        timeout: Duration::from_millis(3000),
        ..LabOptions::default()
    }
}

/// Probe `cells` again where `seen` differs from `predicted`, patiently; `seen` takes the new
/// answers.
fn recheck(lab: &Lab, cells: &[(ProbePort, usize, usize)], seen: &mut [bool], predicted: &[bool]) {
    let differing: Vec<usize> = (0..cells.len())
        .filter(|&i| seen[i] != predicted[i])
        .collect();
    if differing.is_empty() {
        return;
    }
    let again_cells: Vec<_> = differing.iter().map(|&i| cells[i]).collect();
    let again = lab.probe_cells(&again_cells, &patient()).expect("probe");
    for (i, answer) in differing.into_iter().zip(again) {
        seen[i] = answer;
    }
}

/// Pods as (key, addresses): two engines with the same pods can share a lab.
type Pods = Vec<(String, Vec<std::net::IpAddr>)>;

/// The pods of an engine.
fn pods_of(engine: &Engine) -> Pods {
    engine
        .inventory()
        .pods()
        .iter()
        .map(|p| (p.key(), p.ips.clone()))
        .collect()
}

/// Load `engine`'s ruleset into `lab` and probe every pair of pods on `ports`: the
/// disagreements with the engine, the observed matrix and the number of probes.
fn kernel_grid(lab: &Lab, engine: &Engine, ports: &[ProbePort]) -> (Vec<String>, Matrix, usize) {
    let ruleset = render(engine, &RenderOptions::default()).expect("renders");
    lab.apply(&ruleset).expect("ruleset loads");
    let options = LabOptions {
        ports: ports.to_vec(),
        ..options()
    };
    let (observed, probes) = lab.probe_matrix(engine, &options).expect("probe");
    let predicted = Matrix::compute(engine, ports);
    let differing = observed
        .differences(&predicted)
        .expect("same pods and ports");
    // A disagreement is probed again, patiently: an answer late under load is not a verdict.
    let cells: Vec<(ProbePort, usize, usize)> = differing
        .iter()
        .map(|&(p, s, d)| (ports[p], s, d))
        .collect();
    let again = lab.probe_cells(&cells, &patient()).expect("probe");
    let wrong = differing
        .into_iter()
        .zip(again)
        .filter(|&((p, s, d), kernel)| kernel != predicted.allowed(p, s, d))
        .map(|((p, s, d), _)| {
            format!(
                "{} {} -> {}: kernel {}, engine {}",
                ports[p],
                observed.endpoints[s],
                observed.endpoints[d],
                observed.allowed(p, s, d),
                predicted.allowed(p, s, d)
            )
        })
        .collect();
    (wrong, observed, probes)
}

#[derive(serde::Deserialize)]
struct Scenario {
    name: String,
    policies: String,
    expect: Vec<String>,
}

/// A lab endpoint: a pod (its index in the inventory) or an outside address (its index after
/// the pods').
fn lab_index(engine: &Engine, outside: &[Ipv4Addr], text: &str) -> usize {
    let pods = engine.inventory().pods().len();
    match text.parse::<std::net::IpAddr>() {
        Ok(ip) => match engine.inventory().pod_by_ip(ip) {
            Some(id) => id.index(),
            None => {
                pods + outside
                    .iter()
                    .position(|a| std::net::IpAddr::V4(*a) == ip)
                    .expect("an outside address of the lab")
            }
        },
        Err(_) => {
            let (ns, name) = text.split_once('/').expect("ns/pod");
            engine
                .inventory()
                .pod_by_key(ns, name)
                .expect("pod")
                .index()
        }
    }
}

fn endpoint_of(engine: &Engine, outside: &[Ipv4Addr], index: usize) -> Endpoint {
    let pods = engine.inventory().pods().len();
    if index < pods {
        Endpoint::Pod(netfence_model::PodId::new(index))
    } else {
        Endpoint::Address(std::net::IpAddr::V4(outside[index - pods]))
    }
}

#[test]
fn calico_scenarios_in_the_kernel() {
    require_root();
    let started = Instant::now();
    let base = include_str!("../../engine/tests/calico/base.yaml");
    let scenarios: Vec<Scenario> =
        serde_yaml_ng::from_str(include_str!("../../engine/tests/calico/scenarios.yaml"))
            .expect("scenarios parse");
    let parsed = |line: &str| -> (String, String, ProbePort, bool) {
        let w: Vec<&str> = line.split_whitespace().collect();
        (
            w[0].to_string(),
            w[2].to_string(),
            w[3].parse().expect("port"),
            w[4] == "allow",
        )
    };
    let lines: Vec<Vec<_>> = scenarios
        .iter()
        .map(|s| s.expect.iter().map(|l| parsed(l)).collect())
        .collect();
    // Every port any scenario probes: the labs listen on all of them.
    let all_ports: Vec<ProbePort> = lines
        .iter()
        .flatten()
        .map(|l| l.2)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|p| p.protocol != Protocol::Sctp)
        .collect();
    // Every bare address the expectations name: the labs give each a namespace of its own
    // (one that is a pod's address in some scenario is that pod there).
    let outside: Vec<Ipv4Addr> = lines
        .iter()
        .flatten()
        .flat_map(|l| [&l.0, &l.1])
        .filter_map(|t| t.parse().ok())
        .collect::<BTreeSet<Ipv4Addr>>()
        .into_iter()
        .collect();
    let mut labs: Vec<(Pods, Lab, Vec<Ipv4Addr>)> = Vec::new();
    let mut failures = Vec::new();
    let (mut probes, mut checked, mut with_address) = (0, 0, 0);
    for (scenario, lines) in scenarios.iter().zip(&lines) {
        let mut loader = Loader::new();
        loader.load_str("base.yaml", base);
        loader.load_str("policies.yaml", &scenario.policies);
        let engine = Engine::new(loader.finish().expect("scenario loads"));
        if let Err(e) = render(&engine, &RenderOptions::default()) {
            failures.push(format!("{}: refused: {e}", scenario.name));
            continue;
        }
        let pods = pods_of(&engine);
        let (lab, outside) = match labs.iter().position(|(p, _, _)| *p == pods) {
            Some(i) => (&labs[i].1, &labs[i].2),
            None => {
                let own: Vec<Ipv4Addr> = outside
                    .iter()
                    .filter(|a| {
                        engine
                            .inventory()
                            .pod_by_ip(std::net::IpAddr::V4(**a))
                            .is_none()
                    })
                    .copied()
                    .collect();
                let lab = Lab::build_with_outside(&engine, &all_ports, &own).expect("lab builds");
                labs.push((pods, lab, own));
                let last = &labs[labs.len() - 1];
                (&last.1, &last.2)
            }
        };
        let ports: Vec<ProbePort> = lines
            .iter()
            .map(|l| l.2)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // The whole pod grid on the scenario's ports, against the engine.
        let (wrong, _, sent) = kernel_grid(lab, &engine, &ports);
        probes += sent;
        failures.extend(wrong.into_iter().map(|w| format!("{}: {w}", scenario.name)));
        // Every expectation, bare addresses included, against the kernel and the engine.
        let cells: Vec<(ProbePort, usize, usize)> = lines
            .iter()
            .map(|(src, dst, port, _)| {
                (
                    *port,
                    lab_index(&engine, outside, src),
                    lab_index(&engine, outside, dst),
                )
            })
            .collect();
        let mut seen = lab.probe_cells(&cells, &options()).expect("probe");
        probes += cells.len();
        let predicted: Vec<bool> = cells
            .iter()
            .map(|&(port, s, d)| {
                engine.allowed(
                    endpoint_of(&engine, outside, s),
                    endpoint_of(&engine, outside, d),
                    port.protocol,
                    port.port,
                )
            })
            .collect();
        recheck(lab, &cells, &mut seen, &predicted);
        for ((line, (src, dst, _, expected)), (&(port, s, d), kernel)) in scenario
            .expect
            .iter()
            .zip(lines)
            .zip(cells.iter().zip(&seen))
        {
            checked += 1;
            if [src, dst].iter().any(|t| t.parse::<Ipv4Addr>().is_ok()) {
                with_address += 1;
            }
            let predicted = engine.allowed(
                endpoint_of(&engine, outside, s),
                endpoint_of(&engine, outside, d),
                port.protocol,
                port.port,
            );
            if kernel != expected || predicted != *expected {
                failures.push(format!(
                    "{}: {line}: the kernel gave {kernel}, the engine {predicted}",
                    scenario.name
                ));
            }
        }
    }
    drop(labs);
    println!(
        "lab calico: {} scenarios enforced in the kernel, {probes} probes with real packets, {checked} expectations checked ({with_address} with an outside address), {} disagreements ({:.1}s)",
        scenarios.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Upstream's pokes between pods: `SRC -> DST PROTO/PORT allow|deny`, both ends pods that are
/// not host-network (those speak with their node's address, outside the pod grid) and a
/// protocol the lab probes (not SCTP).
fn pod_poke(engine: &Engine, poke: &str) -> Option<(usize, usize, ProbePort, bool)> {
    let w: Vec<&str> = poke.split_whitespace().collect();
    let pod = |key: &str| {
        let (ns, name) = key.split_once('/')?;
        let id = engine.inventory().pod_by_key(ns, name)?;
        (!engine.inventory().pods()[id].host_network).then_some(id.index())
    };
    let port: ProbePort = w[3].parse().ok()?;
    (port.protocol != Protocol::Sctp).then_some(())?;
    Some((pod(w[0])?, pod(w[2])?, port, w[4] == "allow"))
}

#[test]
fn network_policy_api_pod_to_pod_steps_in_the_kernel() {
    use harness::{apply, place_pods, Action, Suite};
    require_root();
    let started = Instant::now();
    let suite: Suite = serde_yaml_ng::from_str(include_str!(
        "../../engine/tests/network-policy-api/conformance.yaml"
    ))
    .expect("suite parses");
    let mut failures = Vec::new();
    let (mut probes, mut pokes, mut skipped, mut groups) = (0, 0, 0, 0);
    let mut lab: Option<(Vec<String>, Vec<usize>, Lab)> = None;
    for test in &suite.tests {
        let mut loader = Loader::new();
        loader.load_str("conformance/base/manifests.yaml", &suite.fixture);
        loader.load_str(&test.file, &test.policies);
        let mut inventory = loader.finish().expect("test loads");
        place_pods(&mut inventory);
        // The lab holds the pods that are not host-network; `grid[i]` is lab pod i's id in
        // the test's inventory. Every test has the fixture's pods, so one lab serves all.
        let grid: Vec<usize> = (0..inventory.pods().len())
            .filter(|&id| !inventory.pods()[id].host_network)
            .collect();
        let keys: Vec<String> = grid.iter().map(|&id| inventory.pods()[id].key()).collect();
        if lab.as_ref().is_none_or(|(k, _, _)| *k != keys) {
            let mut pods_only = inventory.clone();
            pods_only.update_pods(|pods| pods.retain(|p| !p.host_network));
            let ports: Vec<ProbePort> = ["TCP/80", "TCP/8080", "UDP/53", "UDP/5353"]
                .iter()
                .map(|p| p.parse().expect("port"))
                .collect();
            lab = Some((
                keys,
                grid.clone(),
                Lab::build(&Engine::new(pods_only), &ports).expect("lab builds"),
            ));
        }
        let (_, _, lab) = lab.as_ref().expect("built");
        for step in &test.steps {
            let mut engine = Engine::new(inventory.clone());
            let mut pending: Vec<&str> = Vec::new();
            let mut flush = |engine: &Engine, pending: &mut Vec<&str>| {
                if pending.is_empty() {
                    return;
                }
                groups += 1;
                let wanted: Vec<_> = pending
                    .drain(..)
                    .map(|p| (p, pod_poke(engine, p)))
                    .collect();
                skipped += wanted.iter().filter(|(_, w)| w.is_none()).count();
                let ports: BTreeSet<ProbePort> =
                    wanted.iter().filter_map(|(_, w)| w.map(|w| w.2)).collect();

                if ports.is_empty() {
                    return;
                }
                let ruleset = render(engine, &RenderOptions::default());
                let ruleset = match ruleset {
                    Ok(r) => r,
                    Err(e) => {
                        failures.push(format!("{} / {}: refused: {e}", test.name, step.name));
                        return;
                    }
                };
                lab.apply(&ruleset).expect("ruleset loads");
                // The whole pod grid on the pokes' ports.
                let mut cells = Vec::new();
                for port in &ports {
                    for s in 0..grid.len() {
                        for d in 0..grid.len() {
                            if s != d {
                                cells.push((*port, s, d));
                            }
                        }
                    }
                }
                let mut seen = lab.probe_cells(&cells, &options()).expect("probe");
                probes += cells.len();
                let predicted: Vec<bool> = cells
                    .iter()
                    .map(|&(port, s, d)| {
                        engine.allowed(
                            netfence_engine::Endpoint::Pod(netfence_model::PodId::new(grid[s])),
                            netfence_engine::Endpoint::Pod(netfence_model::PodId::new(grid[d])),
                            port.protocol,
                            port.port,
                        )
                    })
                    .collect();
                recheck(lab, &cells, &mut seen, &predicted);
                for (&(port, s, d), kernel) in cells.iter().zip(&seen) {
                    let (src, dst) = (grid[s], grid[d]);
                    let predicted = engine.allowed(
                        netfence_engine::Endpoint::Pod(netfence_model::PodId::new(src)),
                        netfence_engine::Endpoint::Pod(netfence_model::PodId::new(dst)),
                        port.protocol,
                        port.port,
                    );
                    if predicted != *kernel {
                        failures.push(format!(
                            "{} / {}: {port} {} -> {}: kernel {kernel}, engine {predicted}",
                            test.name,
                            step.name,
                            engine.inventory().pods()[src].key(),
                            engine.inventory().pods()[dst].key()
                        ));
                    }
                    for (poke, want) in &wanted {
                        if let Some((ws, wd, wp, expected)) = want {
                            if (*ws, *wd, *wp) == (src, dst, port) {
                                pokes += 1;
                                if expected != kernel {
                                    failures.push(format!(
                                        "{} / {}: {poke}: the kernel gave {kernel}",
                                        test.name, step.name
                                    ));
                                }
                            }
                        }
                    }
                }
            };
            for action in &step.actions {
                match action {
                    Action::Mutate(mutation) => {
                        flush(&engine, &mut pending);
                        apply(&mut inventory, mutation).expect("mutation applies");
                        engine = Engine::new(inventory.clone());
                    }
                    Action::Poke { poke } => pending.push(poke),
                }
            }
            flush(&engine, &mut pending);
        }
    }
    drop(lab);
    println!(
        "lab network-policy-api: {} tests, {groups} policy states enforced in the kernel, {probes} probes with real packets, {pokes} pod-to-pod pokes checked, {skipped} pokes not pod-to-pod or SCTP (outside the pod grid), {} disagreements ({:.1}s)",
        suite.tests.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The lab ends of one end of a Cilium expectation: a pod, the backends of a Service's cluster
/// IP (as the engine's harness judges it), or an outside address; `Err` says why the lab
/// cannot probe it.
fn cilium_ends(engine: &Engine, outside: &[Ipv4Addr], text: &str) -> Result<Vec<usize>, String> {
    let inventory = engine.inventory();
    let Ok(ip) = text.parse::<std::net::IpAddr>() else {
        return Ok(vec![lab_index(engine, outside, text)]);
    };
    if ip.is_ipv6() {
        return Err(format!("{ip}: the lab builds IPv4 networks only"));
    }
    if let Some(id) = inventory.pod_by_ip(ip) {
        return Ok(vec![id.index()]);
    }
    if let Some(service) = inventory.service_by_cluster_ip(ip) {
        let backends = inventory.service_backends(service);
        return Ok(backends
            .into_iter()
            .map(netfence_model::PodId::index)
            .collect());
    }
    Ok(vec![lab_index(engine, outside, text)])
}

/// Every case of the Cilium files that `not_expressible` does not exclude: its ruleset in the
/// kernel, the whole pod grid on its ports against the engine, and each expectation (outside
/// addresses from namespaces of their own, a cluster IP at its backends) against the kernel
/// and the engine.
#[test]
fn cilium_cases_in_the_kernel() {
    require_root();
    let started = Instant::now();
    let files: Vec<(&str, Vec<cilium::Case>)> = cilium::FILES
        .iter()
        .map(|(file, text)| (*file, cilium::cases(file, text)))
        .collect();
    let cases: Vec<(&str, &cilium::Case)> = files
        .iter()
        .flat_map(|(file, cases)| cases.iter().map(move |c| (*file, c)))
        .collect();
    fn expectations(case: &cilium::Case) -> Vec<cilium::Expectation<'_>> {
        case.expect.iter().map(|l| cilium::expectation(l)).collect()
    }
    let all_ports: Vec<ProbePort> = cases
        .iter()
        .flat_map(|(_, c)| expectations(c))
        .map(|e| e.port)
        .filter(|p| p.protocol != Protocol::Sctp)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let named: Vec<Ipv4Addr> = cases
        .iter()
        .flat_map(|(_, c)| expectations(c))
        .flat_map(|e| [e.src, e.dst])
        .filter_map(|t| t.parse().ok())
        .collect::<BTreeSet<Ipv4Addr>>()
        .into_iter()
        .collect();
    let mut labs: Vec<((Pods, Vec<Ipv4Addr>), Lab)> = Vec::new();
    let mut failures = Vec::new();
    let mut not_expressible = Vec::new();
    let mut cases_not_expressible = 0;
    let (mut enforced, mut probes, mut checked, mut with_address) = (0, 0, 0, 0);
    for (file, case) in &cases {
        if let Some(reason) = &case.not_expressible {
            cases_not_expressible += 1;
            not_expressible.push(format!("{file} {}: {reason}", case.name));
            continue;
        }
        let engine = Engine::new(cilium::inventory_for(case, true));
        let ruleset = match render(&engine, &RenderOptions::default()) {
            Ok(ruleset) => ruleset,
            Err(e) => {
                failures.push(format!("{file} {}: refused: {e}", case.name));
                continue;
            }
        };
        enforced += 1;
        // Outside addresses: the named ones that are no pod and no Service here.
        let own: Vec<Ipv4Addr> = named
            .iter()
            .filter(|a| {
                let ip = std::net::IpAddr::V4(**a);
                engine.inventory().pod_by_ip(ip).is_none()
                    && engine.inventory().service_by_cluster_ip(ip).is_none()
            })
            .copied()
            .collect();
        let key = (pods_of(&engine), own);
        let i = match labs.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                let lab = Lab::build_with_outside(&engine, &all_ports, &key.1).expect("lab builds");
                labs.push((key, lab));
                labs.len() - 1
            }
        };
        let ((_, outside), lab) = (&labs[i].0, &labs[i].1);
        lab.apply(&ruleset).expect("ruleset loads");
        let lines = expectations(case);
        let ports: Vec<ProbePort> = lines
            .iter()
            .map(|e| e.port)
            .filter(|p| p.protocol != Protocol::Sctp)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // The whole pod grid on the case's ports, against the engine's matrix, probed with the
        // expectations below in one go (a case costs one probe timeout, not two).
        let n = engine.inventory().pods().len();
        let matrix = Matrix::compute(&engine, &ports);
        let mut cells = Vec::new();
        let mut predicted = Vec::new();
        for (p, port) in ports.iter().enumerate() {
            for s in 0..n {
                for d in (0..n).filter(|&d| d != s) {
                    cells.push((*port, s, d));
                    predicted.push(matrix.allowed(p, s, d));
                }
            }
        }
        let grid = cells.len();
        // Each expectation: one cell per destination (a cluster IP has several).
        let mut owners = Vec::new();
        for (n, e) in lines.iter().enumerate() {
            if e.port.protocol == Protocol::Sctp {
                not_expressible.push(format!(
                    "{file} {}: {}: the lab probes TCP and UDP only",
                    case.name, case.expect[n]
                ));
                continue;
            }
            let ends = cilium_ends(&engine, outside, e.src)
                .and_then(|s| Ok((s, cilium_ends(&engine, outside, e.dst)?)));
            match ends {
                Ok((srcs, dsts)) => {
                    checked += 1;
                    if [e.src, e.dst].iter().any(|t| t.parse::<Ipv4Addr>().is_ok()) {
                        with_address += 1;
                    }
                    for &s in &srcs {
                        for &d in &dsts {
                            cells.push((e.port, s, d));
                            owners.push(n);
                        }
                    }
                }
                Err(why) => {
                    not_expressible.push(format!("{file} {}: {}: {why}", case.name, case.expect[n]))
                }
            }
        }
        predicted.extend(cells[grid..].iter().map(|&(port, s, d)| {
            engine.allowed(
                endpoint_of(&engine, outside, s),
                endpoint_of(&engine, outside, d),
                port.protocol,
                port.port,
            )
        }));
        let at_once = LabOptions {
            timeout: Duration::from_millis(250),
            parallelism: cells.len().clamp(1, 512),
            ..options()
        };
        let mut seen = lab.probe_cells(&cells, &at_once).expect("probe");
        probes += cells.len();
        // A disagreement is probed again, patiently: an answer late under load is no verdict.
        recheck(lab, &cells, &mut seen, &predicted);
        for ((&(port, s, d), kernel), engine_says) in
            cells.iter().zip(&seen).zip(&predicted).take(grid)
        {
            if kernel != engine_says {
                failures.push(format!(
                    "{file} {}: {port} {} -> {}: kernel {kernel}, engine {engine_says}",
                    case.name,
                    engine.inventory().pods()[s].key(),
                    engine.inventory().pods()[d].key()
                ));
            }
        }
        for (((&(_, s, d), kernel), engine_says), &n) in cells[grid..]
            .iter()
            .zip(&seen[grid..])
            .zip(&predicted[grid..])
            .zip(&owners)
        {
            let expected = lines[n].allow;
            if *kernel != expected || *engine_says != expected {
                failures.push(format!(
                    "{file} {}: {} ({} -> {}): expected {expected}, the kernel gave {kernel}, the engine {engine_says}",
                    case.name,
                    case.expect[n],
                    engine.endpoint_name(endpoint_of(&engine, outside, s)),
                    engine.endpoint_name(endpoint_of(&engine, outside, d)),
                ));
            }
        }
    }
    let built = labs.len();
    drop(labs);
    println!(
        "lab cilium: {enforced} cases enforced in the kernel ({built} labs), {probes} probes with real packets, {checked} expectations checked ({with_address} with an outside address or cluster IP), {} disagreements; not expressible: {cases_not_expressible} cases, {} expectations ({:.1}s)",
        failures.len(),
        not_expressible.len() - cases_not_expressible,
        started.elapsed().as_secs_f64()
    );
    for line in &not_expressible {
        println!("  not expressible: {line}");
    }
    assert!(enforced >= 50, "at least 50 cases enforced, got {enforced}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
