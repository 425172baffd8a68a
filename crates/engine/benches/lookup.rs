//! Verdict lookups by address (`cargo bench -p netfence-engine --bench lookup`): random pairs
//! of pod addresses on random probe ports, answered by the verdict index
//! ([`netfence_engine::VerdictIndex`]) and, as the baseline in the same run, by the tier
//! walk ([`Engine::allowed`] after `endpoint_for_ip`). Medians of per-batch rates, one core;
//! the index's build time and the time to fill every port class it touched. Rates are per
//! CPU-second of the benchmark thread (`/proc/thread-self/schedstat`), so other load on the
//! machine does not count against them. Under
//! `cargo test` it runs a small smoke version.

use netfence_conformance::bench::{cpu_seconds, full_run, median, sizes};
use netfence_engine::{default_ports, Engine};
use netfence_gen::{generate, GenOptions};
use netfence_model::{Loader, Protocol};
use std::net::IpAddr;
use std::time::Instant;

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn main() {
    let full = full_run();
    let (batches, batch) = if full { (7, 1_000_000) } else { (1, 10_000) };
    println!("| pods | policies | port classes | index build ms | fill ms | walk lookups/CPU-s | index lookups/CPU-s | index/walk |");
    println!("|---|---|---|---|---|---|---|---|");
    for &(pods, namespaces, policies) in sizes(full) {
        let files = generate(&GenOptions {
            pods,
            namespaces,
            policies,
            calico: 0,
            admin: 0,
            seed: 1,
        })
        .expect("valid options");
        let mut loader = Loader::new();
        for (name, text) in &files {
            loader.load_str(name, text);
        }
        let engine = Engine::new(loader.finish().expect("generated cluster loads"));
        let addresses: Vec<IpAddr> = engine
            .inventory()
            .pods()
            .iter()
            .filter(|p| !p.synthetic_ip && !p.host_network)
            .flat_map(|p| p.ips.first().copied())
            .collect();
        let ports: Vec<(Protocol, u16)> = default_ports(engine.inventory())
            .into_iter()
            .map(|p| (p.protocol, p.port))
            .collect();
        let t = Instant::now();
        let index = engine.verdict_index();
        let build = t.elapsed().as_secs_f64() * 1e3;
        // Touch every probe port once so that the timed loops read filled tables.
        let t = Instant::now();
        for &(protocol, port) in &ports {
            std::hint::black_box(index.allowed_ips(addresses[0], addresses[1], protocol, port));
        }
        let fill = t.elapsed().as_secs_f64() * 1e3;
        let run = |lookup: &dyn Fn(IpAddr, IpAddr, Protocol, u16) -> bool, n: usize| {
            let mut rng = Rng(0x2545_f491_4f6c_dd1d);
            let cpu = cpu_seconds();
            let mut allowed = 0usize;
            for _ in 0..n {
                let (protocol, port) = ports[rng.below(ports.len())];
                let (src, dst) = (
                    addresses[rng.below(addresses.len())],
                    addresses[rng.below(addresses.len())],
                );
                allowed += usize::from(lookup(src, dst, protocol, port));
            }
            std::hint::black_box(allowed);
            n as f64 / (cpu_seconds() - cpu).max(1e-9)
        };
        let walk = |src, dst, protocol, port| {
            engine.allowed(
                engine.endpoint_for_ip(src),
                engine.endpoint_for_ip(dst),
                protocol,
                port,
            )
        };
        let fast = |src, dst, protocol, port| index.allowed_ips(src, dst, protocol, port);
        let (mut slow_rates, mut fast_rates) = (Vec::new(), Vec::new());
        for _ in 0..batches {
            // The walk is ~100x slower: a tenth of the batch keeps the run short.
            slow_rates.push(run(&walk, batch / 10));
            fast_rates.push(run(&fast, batch));
        }
        let (slow, quick) = (median(slow_rates), median(fast_rates));
        println!(
            "| {pods} | {policies} | {} | {build:.1} | {fill:.1} | {:.2} M | {:.2} M | {:.1} |",
            index.port_classes(),
            slow / 1e6,
            quick / 1e6,
            quick / slow
        );
    }
}
