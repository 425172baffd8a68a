//! Advisor benchmark (`cargo bench -p netfence-flows --bench advise`): a `netfence gen`
//! cluster, VPC records between random pods drawn from a fixed set of connections (real
//! traffic repeats), then the observation (read + enrichment) and the advice (plan, rendering
//! and the whole proof: replay, class matrices before and after, connection list, what-if),
//! timed separately, medians of a few runs. Under `cargo test` it runs a small smoke version.

use netfence_conformance::bench::{full_run, median};
use netfence_engine::Cluster;
use netfence_flows::advise::{self, AdviseOptions, Observer};
use netfence_flows::read::read_bytes;
use netfence_flows::{ReadStats, SourceFormat, VpcFormat};
use netfence_gen::{generate, GenOptions};
use netfence_model::Loader;
use std::fmt::Write;
use std::time::Instant;

fn records(cluster: &Cluster, count: usize, distinct: usize) -> Vec<u8> {
    let pods = cluster.engine().inventory().pods();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let connections: Vec<(usize, usize, u16)> = (0..distinct)
        .map(|_| {
            (
                (next() % pods.len() as u64) as usize,
                (next() % pods.len() as u64) as usize,
                [80u16, 443, 8080, 5432][(next() % 4) as usize],
            )
        })
        .collect();
    let mut text = String::new();
    for i in 0..count {
        let (src, dst, port) = connections[(next() % connections.len() as u64) as usize];
        let _ = writeln!(
            text,
            "2 123456789010 eni-1235b8ca123456789 {} {} {} {port} 6 20 4249 1418530010 1418530070 ACCEPT OK",
            pods[src].ips[0],
            pods[dst].ips[0],
            32768 + (i % 28000),
        );
    }
    text.into_bytes()
}

fn main() {
    let sizes: &[(usize, usize, usize)] = if full_run() {
        &[(1_000, 20, 200), (10_000, 100, 2_000)]
    } else {
        &[(200, 4, 20)]
    };
    println!("| pods | policies | records | connections | observe s | advise s | policies out | denied_after | pairs x ports before | after |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &(pods, namespaces, policies) in sizes {
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
        let cluster = Cluster::new(loader.clone()).expect("generated cluster loads");
        let (count, distinct) = (100_000, pods);
        let input = records(&cluster, count, distinct);
        let format = SourceFormat::Vpc(VpcFormat::default());
        let mut observe_times = Vec::new();
        let mut advise_times = Vec::new();
        let mut last = None;
        for _ in 0..if pods > 5_000 { 1 } else { 3 } {
            let started = Instant::now();
            let mut observer = Observer::new(cluster.engine(), None);
            read_bytes(
                &input,
                "bench",
                &format,
                &mut ReadStats::default(),
                &mut |flow| observer.add(&flow),
            )
            .expect("reads");
            let observations = observer.finish();
            observe_times.push(started.elapsed().as_secs_f64());
            let started = Instant::now();
            let advice =
                advise::advise(&loader, &cluster, &observations, &AdviseOptions::default())
                    .expect("advice");
            advise_times.push(started.elapsed().as_secs_f64());
            last = Some((advice, observations.connections.len()));
        }
        let (advice, connections) = last.expect("ran");
        println!(
            "| {pods} | {policies} | {count} | {connections} | {:.3} | {:.3} | {} | {} | {} | {} |",
            median(observe_times),
            median(advise_times),
            advice.documents.len(),
            advice.proof.denied_after,
            advice.proof.allowed_pairs_before,
            advice.proof.allowed_pairs_after
        );
        let steps: Vec<String> = advice
            .proof
            .timings
            .iter()
            .map(|(step, seconds)| format!("{step} {seconds:.3}"))
            .collect();
        println!(
            "|  | proof steps (last run, s): {} |||||||||",
            steps.join(", ")
        );
    }
}
