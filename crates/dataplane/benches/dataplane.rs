//! Dataplane benchmarks (`cargo bench -p netfence-dataplane`, as root):
//! - render and full apply of a synthetic cluster with 100, 1,000 and 10,000 endpoints;
//! - incremental update latency (one namespace's policy changes) against a full re-apply;
//! - both through netlink (the default) and through `nft -f`, same run, with their ratios;
//! - the same on a tiered `netfence gen` cluster (Calico tier, AdminNetworkPolicies, baseline)
//!   against the Kubernetes-only cluster of the same pods, with their ratios;
//! - TCP connection rate and throughput between two lab namespaces with the 10,000-endpoint
//!   ruleset loaded, against no ruleset, measured in the same run;
//! - the deny-log reader's address → pod names set per change at 50,000 pods, against the
//!   map the agent rebuilt before.
//!
//! Figures are medians of repeated runs, and ratios against a baseline taken in the same run,
//! because the machines are shared and noisy. Under `cargo test` (no `--bench` argument) it
//! runs a small smoke version so that the code stays exercised.

use netfence_conformance::bench::median;
use netfence_dataplane::nft::{apply_with, run, update_with, Backend};
use netfence_dataplane::{flush, render, Lab, RenderOptions, Ruleset};
use netfence_engine::{Engine, ProbePort};
use netfence_model::Loader;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// A synthetic cluster: `pods` pods over `pods / 50` namespaces (at least 2), each namespace
/// with default deny, DNS egress, an app-tier ingress rule and an ipBlock egress rule. The
/// first two pods are `bench/client` and `bench/server` (10.255.0.1 and .2), the server
/// accepting the client on TCP 5201.
fn cluster(pods: usize, variant: u32) -> String {
    let namespaces = (pods / 50).max(2);
    let mut yaml = String::new();
    let _ = write!(
        yaml,
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: bench}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: client, namespace: bench, labels: {{app: client}}}}\nspec: {{containers: [{{name: c}}]}}\nstatus: {{podIP: 10.255.0.1}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: server, namespace: bench, labels: {{app: server}}}}\nspec: {{containers: [{{name: c, ports: [{{containerPort: 5201}}]}}]}}\nstatus: {{podIP: 10.255.0.2}}\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: server, namespace: bench}}\nspec:\n  podSelector: {{matchLabels: {{app: server}}}}\n  ingress: [{{from: [{{podSelector: {{matchLabels: {{app: client}}}}}}], ports: [{{port: 5201}}]}}]\n---\n"
    );
    for n in 0..namespaces {
        let _ = write!(yaml, "apiVersion: v1\nkind: Namespace\nmetadata: {{name: ns{n}, labels: {{team: t{}}}}}\n---\n", n % 7);
        let _ = write!(
            yaml,
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: default-deny, namespace: ns{n}}}\nspec: {{podSelector: {{}}, policyTypes: [Ingress, Egress]}}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: dns, namespace: ns{n}}}\nspec:\n  podSelector: {{}}\n  policyTypes: [Egress]\n  egress: [{{to: [{{namespaceSelector: {{matchLabels: {{team: t0}}}}, podSelector: {{matchLabels: {{tier: t0}}}}}}], ports: [{{protocol: UDP, port: 53}}, {{protocol: TCP, port: 53}}]}}]\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: app, namespace: ns{n}}}\nspec:\n  podSelector: {{matchLabels: {{tier: t1}}}}\n  ingress: [{{from: [{{namespaceSelector: {{matchLabels: {{team: t{}}}}}}}, {{podSelector: {{matchLabels: {{tier: t0}}}}}}], ports: [{{port: {}}}]}}]\n  egress: [{{to: [{{ipBlock: {{cidr: 10.0.0.0/8, except: [10.{n}.0.0/16]}}}}], ports: [{{port: 443}}]}}]\n---\n",
            (n + 1) % 7,
            8000 + variant * u32::from(n == 0)
        );
    }
    for i in 2..pods {
        let n = i % namespaces;
        let _ = write!(
            yaml,
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: ns{n}, labels: {{tier: t{}}}}}\nspec: {{containers: [{{name: c, ports: [{{name: http, containerPort: 8000}}]}}]}}\nstatus: {{podIP: 10.{}.{}.{}}}\n---\n",
            i % 3,
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff
        );
    }
    yaml
}

fn engine(pods: usize, variant: u32) -> Engine {
    let mut loader = Loader::new();
    loader.load_str("bench.yaml", &cluster(pods, variant));
    Engine::new(loader.finish().expect("synthetic cluster loads"))
}

/// Close with a reset (SO_LINGER 0), so that thousands of short connections leave no
/// TIME_WAIT sockets whose ports the next connections would collide with. The standard
/// library's `set_linger` is unstable; this benchmark-only call is the one other `unsafe`.
#[allow(unsafe_code)]
fn abort(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a valid socket fd with a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(stream);
}

/// Connection attempts that timed out during the rate measurements.
static FAILED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn with_netns<T>(work: impl FnOnce(&str) -> T) -> T {
    let ns = format!("nfbench{}", std::process::id());
    assert!(Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .expect("ip")
        .success());
    let result = work(&ns);
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    result
}

fn time_ms(work: impl FnOnce()) -> f64 {
    let started = Instant::now();
    work();
    started.elapsed().as_secs_f64() * 1000.0
}

/// Full apply and incremental update medians (ms) of `rendered` → `changed` through one
/// backend, in a fresh namespace.
fn apply_and_update(
    backend: Backend,
    rendered: &Ruleset,
    changed: &Ruleset,
    repeats: usize,
) -> (f64, f64) {
    with_netns(|ns| {
        let full = median(
            (0..repeats)
                .map(|_| time_ms(|| apply_with(backend, rendered, Some(ns)).expect("apply")))
                .collect(),
        );
        let update = median(
            (0..repeats)
                .map(|_| {
                    apply_with(backend, rendered, Some(ns)).expect("apply");
                    time_ms(|| {
                        assert!(update_with(backend, rendered, changed, Some(ns)).expect("update"));
                    })
                })
                .collect(),
        );
        (full, update)
    })
}

/// Both backends in the same run: (netlink full, netlink update, nft full, nft update).
fn both_backends(rendered: &Ruleset, changed: &Ruleset, repeats: usize) -> [f64; 4] {
    let (nl_full, nl_update) = apply_and_update(Backend::Netlink, rendered, changed, repeats);
    let (cli_full, cli_update) = apply_and_update(Backend::NftCli, rendered, changed, repeats);
    [nl_full, nl_update, cli_full, cli_update]
}

const HEADER: &str = "| chains | rules | render ms | full apply ms (netlink) | full apply ms (nft -f) | netlink / nft | incremental ms (netlink) | incremental ms (nft -f) | netlink / nft | render + full apply ms (netlink) |\n|---|---|---|---|---|---|---|---|---|---|---|";

fn row(label: &str, rendered: &Ruleset, render_ms: f64, m: [f64; 4]) -> String {
    let [nl_full, nl_update, cli_full, cli_update] = m;
    format!(
        "| {label} | {} | {} | {render_ms:.1} | {nl_full:.1} | {cli_full:.1} | {:.3} | {nl_update:.1} | {cli_update:.1} | {:.3} | {:.1} |",
        rendered.chains.len(),
        rendered.rules(),
        nl_full / cli_full,
        nl_update / cli_update,
        render_ms + nl_full
    )
}

fn apply_benchmarks(sizes: &[usize], repeats: usize) -> Ruleset {
    println!("| endpoints {HEADER}");
    let mut largest = Ruleset::default();
    for &size in sizes {
        let before = engine(size, 0);
        let after = engine(size, 1);
        let mut rendered = Ruleset::default();
        let render_ms = median(
            (0..repeats)
                .map(|_| {
                    time_ms(|| {
                        rendered = render(&before, &RenderOptions::default()).expect("render")
                    })
                })
                .collect(),
        );
        let changed = render(&after, &RenderOptions::default()).expect("render");
        if let Some(dir) = std::env::var_os("NETFENCE_BENCH_DUMP") {
            let dir = std::path::Path::new(&dir);
            std::fs::write(dir.join(format!("{size}.nft")), rendered.script()).expect("dump");
            std::fs::write(
                dir.join(format!("{size}-update.nft")),
                changed.update_script(&rendered),
            )
            .expect("dump");
        }
        let measured = both_backends(&rendered, &changed, repeats);
        println!("{}", row(&size.to_string(), &rendered, render_ms, measured));
        largest = rendered;
    }
    largest
}

/// A `netfence gen` cluster of `pods` pods (`pods / 50` namespaces, `pods / 10` NetworkPolicies)
/// with `calico` Calico GlobalNetworkPolicies (tier `security`) and `admin`
/// AdminNetworkPolicies plus the baseline; `extra` is appended (the incremental change).
fn generated(pods: usize, calico: usize, admin: usize, extra: &str) -> Engine {
    let options = netfence_gen::GenOptions {
        pods,
        namespaces: (pods / 50).max(2),
        policies: pods / 10,
        calico,
        admin,
        seed: 1,
    };
    let mut loader = Loader::new();
    for (name, text) in netfence_gen::generate(&options).expect("gen") {
        loader.load_str(&name, &text);
    }
    loader.load_str("extra.yaml", extra);
    Engine::new(loader.finish().expect("generated cluster loads"))
}

/// Kubernetes-only against tiered (Calico + admin + baseline) on the same generated pods, in
/// the same run: render, full apply and one incremental change (a NetworkPolicy added in one
/// namespace), medians, and the tiered / Kubernetes-only ratios.
fn tiered_benchmarks(pods: usize, calico: usize, admin: usize, repeats: usize) {
    println!("\n| {pods} endpoints {HEADER}");
    let mut rows = Vec::new();
    for (label, c, a) in [
        ("Kubernetes only".to_string(), 0, 0),
        (
            format!("tiered: {calico} Calico + {admin} admin + baseline"),
            calico,
            admin,
        ),
    ] {
        let before = generated(pods, c, a, "");
        let namespace = before
            .inventory()
            .pods()
            .last()
            .map(|p| p.namespace.clone())
            .expect("pods");
        let change = format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: bench-change, namespace: {namespace}}}\nspec:\n  podSelector: {{}}\n  ingress: [{{from: [{{podSelector: {{}}}}], ports: [{{port: 7777}}]}}]\n");
        let after = generated(pods, c, a, &change);
        let mut rendered = Ruleset::default();
        let render_ms = median(
            (0..repeats)
                .map(|_| {
                    time_ms(|| {
                        rendered = render(&before, &RenderOptions::default()).expect("render")
                    })
                })
                .collect(),
        );
        let changed = render(&after, &RenderOptions::default()).expect("render");
        let measured = both_backends(&rendered, &changed, repeats);
        println!("{}", row(&label, &rendered, render_ms, measured));
        rows.push((render_ms, measured));
    }
    let ((kr, k), (tr, t)) = (rows[0], rows[1]);
    println!(
        "| ratio (tiered / Kubernetes only) | | | {:.2} | {:.2} | {:.2} | | {:.2} | {:.2} | | {:.2} |",
        tr / kr,
        t[0] / k[0],
        t[2] / k[2],
        t[1] / k[1],
        t[3] / k[3],
        (tr + t[0]) / (kr + k[0])
    );
}

fn traffic_benchmarks(big: &Ruleset, window: Duration, repeats: usize) {
    let small = engine(2, 0);
    let ports: Vec<ProbePort> = vec!["TCP/5201".parse().unwrap()];
    let lab = Lab::build(&small, &ports).expect("lab");
    let (client, server) = (netfence_model::PodId::new(0), netfence_model::PodId::new(1));
    let server_addr = SocketAddr::from((lab.address(server), 5202));
    // Connection rate goes to the lab's echo listener on 5201 (a non-blocking accept loop);
    // throughput to a sink on 5202 that reads everything.
    let _sink = lab.spawn_in(server, move || {
        let listener = TcpListener::bind(("0.0.0.0", 5202)).expect("bind sink");
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buffer = vec![0u8; 1 << 16];
                while matches!(stream.read(&mut buffer), Ok(n) if n > 0) {}
            });
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    // The big ruleset must let client -> server:5202 through; add that allow to its server chain.
    let measure = |label: &str| {
        let rate_addr = SocketAddr::from((server_addr.ip(), 5201));
        let rates: Vec<f64> = (0..repeats)
            .map(|_| {
                lab.run_in(client, move || {
                    let server_addr = rate_addr;
                    let started = Instant::now();
                    let (mut count, mut failed) = (0u64, 0u64);
                    while started.elapsed() < window {
                        // A lost SYN would cost a 1 s retransmission; count it and go on.
                        match TcpStream::connect_timeout(&server_addr, Duration::from_millis(200)) {
                            Ok(stream) => {
                                abort(stream);
                                count += 1;
                            }
                            Err(_) => failed += 1,
                        }
                    }
                    FAILED.fetch_add(failed, std::sync::atomic::Ordering::SeqCst);
                    count as f64 / started.elapsed().as_secs_f64()
                })
                .expect("rate")
            })
            .collect();
        let throughputs: Vec<f64> = (0..repeats)
            .map(|_| {
                lab.run_in(client, move || {
                    let mut stream =
                        TcpStream::connect_timeout(&server_addr, Duration::from_secs(1))
                            .expect("connect");
                    let chunk = vec![0u8; 1 << 16];
                    let started = Instant::now();
                    let mut bytes = 0u64;
                    while started.elapsed() < window {
                        stream.write_all(&chunk).expect("write");
                        bytes += chunk.len() as u64;
                    }
                    bytes as f64 / started.elapsed().as_secs_f64() / 1e6
                })
                .expect("throughput")
            })
            .collect();
        let (rate, throughput) = (median(rates), median(throughputs));
        println!("| {label} | {rate:.0} | {throughput:.0} |");
        (rate, throughput)
    };
    println!("\n| between two namespaces | connections/s | MB/s |\n|---|---|---|");
    flush(Some(lab.node_namespace())).expect("flush");
    let (base_rate, base_tp) = measure("no ruleset (baseline)");
    let mut allowed = big.clone();
    for chain in allowed.chains.values_mut() {
        if chain.comment.starts_with("bench/server Ingress") {
            use netfence_dataplane::rule::{
                Element, ElementKind, Match, NftRule, Operand, Verdict,
            };
            let allow = NftRule {
                matches: vec![
                    Match::L4Proto {
                        negated: false,
                        protocol: 6,
                    },
                    Match::DestinationPort {
                        negated: false,
                        value: Operand::Single(Element {
                            kind: ElementKind::Port,
                            first: 5202,
                            last: 5202,
                        }),
                    },
                ],
                ..NftRule::verdict(Verdict::Return)
            };
            assert_eq!(allow.to_string(), "meta l4proto tcp th dport 5202 return");
            chain.rules.insert(0, allow);
        }
    }
    lab.apply(&allowed).expect("apply big ruleset");
    let loaded = run(
        Some(lab.node_namespace()),
        "nft",
        &["list", "table", "inet", "netfence"],
        None,
    )
    .expect("list");
    assert!(loaded.contains("5202"), "big ruleset in force");
    let (rate, tp) = measure(&format!(
        "{} chains, {} rules loaded",
        allowed.chains.len(),
        allowed.rules()
    ));
    println!(
        "| ratio (loaded / baseline) | {:.3} | {:.3} |",
        rate / base_rate,
        tp / base_tp
    );
}

/// The deny-log reader's address → pod names, set on every change the agent applies: the
/// snapshot [`Labels::set_pods`](netfence_dataplane::nflog::Labels::set_pods) takes now
/// against the map it rebuilt before (a `HashMap` of every pod address to `ns/name`, the
/// baseline, built here as it was), at `pods` pods; and 1,000 address look-ups each way.
fn label_benchmarks(pods: usize, repeats: usize) {
    use std::collections::HashMap;
    // A `netfence gen` cluster (the synthetic one numbers namespaces into addresses, up
    // to 255 of them).
    let engine = generated(pods, 0, 0, "");
    let inventory = engine.inventory();
    let labels = netfence_dataplane::nflog::Labels::default();
    let rebuild = || {
        let mut map: HashMap<std::net::IpAddr, String> =
            HashMap::with_capacity(inventory.pods().len());
        for pod in inventory.pods() {
            if pod.host_network || pod.synthetic_ip {
                continue;
            }
            for ip in &pod.ips {
                map.entry(*ip)
                    .or_insert_with(|| format!("{}/{}", pod.namespace, pod.name));
            }
        }
        map
    };
    // Each repeat replaces (and so drops) the previous map, as the agent's did.
    let mut kept = rebuild();
    let old = median(
        (0..repeats.max(1) * 5)
            .map(|_| time_ms(|| kept = std::hint::black_box(rebuild())))
            .collect(),
    );
    let new = median(
        (0..repeats.max(1) * 5)
            .map(|_| time_ms(|| labels.set_pods(std::hint::black_box(inventory))))
            .collect(),
    );
    let addresses: Vec<std::net::IpAddr> = inventory
        .pods()
        .iter()
        .step_by((pods / 1000).max(1))
        .filter_map(|p| p.ips.first().copied())
        .take(1000)
        .collect();
    let snapshot = inventory.pods_by_address();
    let lookups_old = median(
        (0..repeats.max(1))
            .map(|_| {
                time_ms(|| {
                    for ip in &addresses {
                        std::hint::black_box(kept.get(ip).cloned());
                    }
                })
            })
            .collect(),
    );
    let lookups_new = median(
        (0..repeats.max(1))
            .map(|_| {
                time_ms(|| {
                    for ip in &addresses {
                        std::hint::black_box(snapshot.pod(*ip).map(netfence_model::Pod::key));
                    }
                })
            })
            .collect(),
    );
    println!("### Deny-log address → pod names, {pods} pods (medians)\n");
    println!("| per change | map rebuilt (before) | index snapshot (now) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| set the pods | {old:.3} ms | {new:.4} ms | {:.0}x |",
        old / new.max(1e-6)
    );
    println!(
        "| {} look-ups | {lookups_old:.3} ms | {lookups_new:.3} ms | {:.2}x |\n",
        addresses.len(),
        lookups_new / lookups_old.max(1e-6)
    );
}

fn main() {
    assert!(
        netfence_dataplane::running_as_root(),
        "the dataplane benchmarks need root"
    );
    let full = std::env::args().any(|a| a == "--bench");
    if full {
        println!("## Dataplane benchmarks (medians of 5)\n");
        // NETFENCE_BENCH_ONLY=tiered: the tiered comparison alone (quicker re-runs).
        if std::env::var("NETFENCE_BENCH_ONLY").as_deref() == Ok("tiered") {
            tiered_benchmarks(10_000, 50, 20, 5);
            return;
        }
        // NETFENCE_BENCH_ONLY=labels: the deny-log address map alone.
        if std::env::var("NETFENCE_BENCH_ONLY").as_deref() == Ok("labels") {
            label_benchmarks(50_000, 5);
            return;
        }
        label_benchmarks(50_000, 5);
        let big = apply_benchmarks(&[100, 1_000, 10_000], 5);
        tiered_benchmarks(10_000, 50, 20, 5);
        traffic_benchmarks(&big, Duration::from_secs(2), 5);
    } else {
        // Smoke mode under `cargo test`: tiny sizes, one repeat, short windows.
        label_benchmarks(200, 1);
        let big = apply_benchmarks(&[100], 1);
        tiered_benchmarks(200, 3, 2, 1);
        traffic_benchmarks(&big, Duration::from_millis(100), 1);
    }
}
