//! Flow-check benchmark (`cargo bench -p netfence-flows`): synthetic VPC flow log records
//! between the pods of a `netfence gen` cluster, read (parse only) and read + enriched +
//! checked, in the same run. Prints records/s as medians and the ratio of the whole check
//! to parse alone. Under `cargo test` (no `--bench`) it runs a small smoke version.

use netfence_conformance::bench::{cpu_seconds, full_run, median};
use netfence_engine::Engine;
use netfence_flows::read::read_bytes;
use netfence_flows::{Checker, ReadStats, SourceFormat, VpcFormat};
use netfence_gen::{generate, GenOptions};
use netfence_model::Loader;
use std::fmt::Write;
use std::time::Instant;

/// `records` default-format VPC records between pods of `engine`, deterministic: between
/// random pod pairs (`distinct: None`, nearly every record a new connection: the verdict
/// cache never helps), or drawn from `distinct` connections (real logs repeat: a service
/// talks to the same few peers all day).
fn records(engine: &Engine, records: usize, distinct: Option<usize>) -> Vec<u8> {
    let pods = engine.inventory().pods();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pick = |next: &mut dyn FnMut() -> u64| {
        (
            (next() % pods.len() as u64) as usize,
            (next() % pods.len() as u64) as usize,
            [80u16, 443, 8080, 5432][(next() % 4) as usize],
        )
    };
    let connections: Vec<(usize, usize, u16)> = (0..distinct.unwrap_or(0))
        .map(|_| pick(&mut next))
        .collect();
    let mut text = String::with_capacity(records * 110);
    for i in 0..records {
        let (src, dst, port) = if connections.is_empty() {
            pick(&mut next)
        } else {
            connections[(next() % connections.len() as u64) as usize]
        };
        let action = if next() % 5 == 0 { "REJECT" } else { "ACCEPT" };
        let _ = writeln!(
            text,
            "2 123456789010 eni-1235b8ca123456789 {} {} {} {port} 6 20 4249 {} {} {action} OK",
            pods[src].ips[0],
            pods[dst].ips[0],
            32768 + (i % 28000),
            1_418_530_010 + i / 1000,
            1_418_530_070 + i / 1000,
        );
    }
    text.into_bytes()
}

/// Records per second of `run` over `count` records, median of `repeats`: per CPU-second of
/// this thread (`cpu: true`, the per-core rate, whatever else runs on the machine) or per
/// wall-clock second (to compare with an external process).
fn rate(count: usize, repeats: usize, cpu: bool, mut run: impl FnMut()) -> f64 {
    median(
        (0..repeats)
            .map(|_| {
                let (started, cpu_started) = (Instant::now(), cpu_seconds());
                run();
                let seconds = if cpu {
                    cpu_seconds() - cpu_started
                } else {
                    started.elapsed().as_secs_f64()
                };
                count as f64 / seconds.max(1e-9)
            })
            .collect(),
    )
}

fn check(engine: &Engine, input: &[u8]) -> u64 {
    let format = SourceFormat::Vpc(VpcFormat::default());
    let mut checker = Checker::new(engine, None);
    let mut stats = ReadStats::default();
    read_bytes(input, "bench", &format, &mut stats, &mut |flow| {
        std::hint::black_box(checker.check(&flow));
    })
    .expect("reads");
    checker.stats().mismatches
}

fn gzip(input: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, input).expect("in memory");
    encoder.finish().expect("in memory")
}

/// `gzip -dc` of `gz`, the external baseline; `None` when gzip is not installed.
fn gzip_dc(gz: &[u8]) -> Option<()> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(gz).ok()?;
    child.wait().ok()?.success().then_some(())
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
    let format = SourceFormat::Vpc(VpcFormat::default());
    println!("| pods | policies | records | connections | parse records/CPU-s | check records/CPU-s | check/parse |");
    println!("|---|---|---|---|---|---|---|");
    for distinct in [Some(1_000), Some(100_000), None] {
        let input = records(&engine, count, distinct);
        let parse = rate(count, repeats, true, || {
            let mut flows = 0u64;
            read_bytes(
                &input,
                "bench",
                &format,
                &mut ReadStats::default(),
                &mut |_| flows += 1,
            )
            .expect("reads");
            assert_eq!(flows, count as u64);
        });
        let mut mismatches = 0;
        let checked = rate(count, repeats, true, || mismatches = check(&engine, &input));
        println!(
            "| {pods} | {policies} | {count} | {} | {parse:.0} | {checked:.0} | {:.2} |",
            distinct.map_or("all distinct".to_string(), |d| d.to_string()),
            checked / parse
        );
    }
    // Compressed input: the whole check from `.gz` against decompression alone, in process
    // (flate2, what the reader uses) and as `gzip -dc` (the baseline).
    let input = records(&engine, count, Some(1_000));
    let gz = gzip(&input);
    let inflate = rate(count, repeats, false, || {
        let mut decoder = flate2::read::MultiGzDecoder::new(&gz[..]);
        std::io::copy(&mut decoder, &mut std::io::sink()).expect("in memory");
    });
    let external =
        gzip_dc(&gz).map(|()| rate(count, repeats, false, || gzip_dc(&gz).unwrap_or(())));
    let from_gz = rate(count, repeats, false, || {
        check(&engine, &gz);
    });
    println!();
    println!("| from .gz (1,000 connections) | records/s | time / gzip -dc |");
    println!("|---|---|---|");
    if let Some(external) = external {
        println!("| gzip -dc alone | {external:.0} | 1.00 |");
        println!(
            "| flate2 inflate alone | {inflate:.0} | {:.2} |",
            external / inflate
        );
        println!(
            "| read + check from .gz | {from_gz:.0} | {:.2} |",
            external / from_gz
        );
    } else {
        println!("| flate2 inflate alone | {inflate:.0} | (gzip not installed) |");
        println!("| read + check from .gz | {from_gz:.0} | |");
    }
}
