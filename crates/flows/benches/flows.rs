//! Flow-check benchmark (`cargo bench -p netfence-flows`): synthetic VPC flow log records
//! between the pods of a `netfence gen` cluster, read (parse only) and read + enriched +
//! checked, in the same run. Prints records/s as medians and the ratio of the whole check
//! to parse alone. Under `cargo test` (no `--bench`) it runs a small smoke version.

use netfence_conformance::bench::{full_run, median};
use netfence_engine::Engine;
use netfence_flows::read::read_bytes;
use netfence_flows::{Checker, ReadStats, SourceFormat, VpcFormat};
use netfence_gen::{generate, GenOptions};
use netfence_model::Loader;
use std::fmt::Write;
use std::time::Instant;

/// `records` default-format VPC records between pods of `engine`, deterministic.
fn records(engine: &Engine, records: usize) -> Vec<u8> {
    let pods = engine.inventory().pods();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut text = String::with_capacity(records * 110);
    for i in 0..records {
        let src = &pods[(next() % pods.len() as u64) as usize];
        let dst = &pods[(next() % pods.len() as u64) as usize];
        let port = [80u16, 443, 8080, 5432][(next() % 4) as usize];
        let action = if next() % 5 == 0 { "REJECT" } else { "ACCEPT" };
        let _ = writeln!(
            text,
            "2 123456789010 eni-1235b8ca123456789 {} {} {} {port} 6 20 4249 {} {} {action} OK",
            src.ips[0],
            dst.ips[0],
            32768 + (i % 28000),
            1_418_530_010 + i / 1000,
            1_418_530_070 + i / 1000,
        );
    }
    text.into_bytes()
}

fn main() {
    let full = full_run();
    let (pods, namespaces, policies, count, repeats) = if full {
        (10_000, 100, 2_000, 1_000_000, 5)
    } else {
        (200, 4, 20, 10_000, 3)
    };
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
    let input = records(&engine, count);
    let format = SourceFormat::Vpc(VpcFormat::default());
    let (mut parse, mut check) = (Vec::new(), Vec::new());
    let mut mismatches = 0;
    for _ in 0..repeats {
        let started = Instant::now();
        let mut stats = ReadStats::default();
        let mut flows = 0u64;
        read_bytes(&input, "bench", &format, &mut stats, &mut |_| flows += 1).expect("reads");
        parse.push(count as f64 / started.elapsed().as_secs_f64());
        assert_eq!(flows, count as u64);

        let started = Instant::now();
        let mut checker = Checker::new(&engine, None);
        let mut stats = ReadStats::default();
        read_bytes(&input, "bench", &format, &mut stats, &mut |flow| {
            std::hint::black_box(checker.check(&flow));
        })
        .expect("reads");
        check.push(count as f64 / started.elapsed().as_secs_f64());
        mismatches = checker.stats().mismatches;
    }
    let (parse, check) = (median(parse), median(check));
    println!("| pods | policies | records | parse records/s | check records/s | check/parse |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {pods} | {policies} | {count} | {parse:.0} | {check:.0} | {:.2} |",
        check / parse
    );
    println!("({mismatches} mismatches among the synthetic records)");
}
