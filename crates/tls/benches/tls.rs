//! `cargo bench -p netfence-tls`: netfence's capture reading against tshark's on the same
//! large capture, in the same run. The capture is generated here (`netfence_tls::synth`):
//! TLS 1.3 connections, TLS 1.2 mutual-TLS ones and plaintext HTTP, 64 at a time interleaved
//! packet by packet, to about `NETFENCE_BENCH_MB` (default 150) MB. tshark dissects the same
//! fields netfence reports (SNI, cipher, ALPN, version, supported_versions of the hellos).
//! Prints medians (netfence of 5 runs, tshark of 3) and the ratio.

use netfence_tls::synth::{self, Conversation, PcapWriter};
use netfence_tls::Limits;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

fn mtls12(client: SocketAddr, server: SocketAddr, data: usize) -> Conversation {
    let mut c = Conversation::open(client, server, [7, 9]);
    let hello = synth::client_hello(
        Some("payments.internal"),
        &["http/1.1"],
        &[0xc02f, 0xc030, 0x009e],
        &[],
    );
    c.send(0, &synth::record(22, &hello), 1448);
    let mut server_flight =
        synth::record(22, &synth::server_hello(0x0303, 0xc02f, Some("http/1.1")));
    server_flight.extend(synth::record(22, &synth::certificate(2, 1200)));
    server_flight.extend(synth::record(22, &synth::server_hello_done()));
    c.send(1, &server_flight, 1448);
    let mut client_flight = synth::record(22, &synth::certificate(1, 1100));
    client_flight.extend(synth::record(22, &synth::client_key_exchange()));
    client_flight.extend(synth::record(20, &[1]));
    client_flight.extend(synth::record(22, &[0x99; 40]));
    c.send(0, &client_flight, 1448);
    let mut finish = synth::record(20, &[1]);
    finish.extend(synth::record(22, &[0x98; 40]));
    c.send(1, &finish, 1448);
    c.send(0, &synth::record(23, &vec![0x77; data / 4]), 1448);
    c.send(1, &synth::record(23, &vec![0x78; data.min(16_000)]), 1448);
    c.close();
    c
}

fn http(client: SocketAddr, server: SocketAddr, data: usize) -> Conversation {
    let mut c = Conversation::open(client, server, [3, 4]);
    c.send(
        0,
        b"GET /index.html HTTP/1.1\r\nHost: web\r\nUser-Agent: bench\r\n\r\n",
        1448,
    );
    let mut response = format!("HTTP/1.1 200 OK\r\nContent-Length: {data}\r\n\r\n").into_bytes();
    response.extend(std::iter::repeat_n(b'x', data));
    c.send(1, &response, 1448);
    c.close();
    c
}

/// Write the capture; returns (connections, bytes).
fn generate(path: &Path, target: u64) -> (u64, u64) {
    let file = std::fs::File::create(path).expect("create the capture");
    let mut writer = PcapWriter::new(BufWriter::with_capacity(1 << 20, file), 1).expect("header");
    let (mut written, mut connections, mut time) = (24u64, 0u64, 1_700_000_000.0f64);
    while written < target {
        let batch: Vec<Conversation> = (0..64u64)
            .map(|i| {
                let n = connections + i;
                let client: SocketAddr = format!(
                    "10.{}.{}.{}:{}",
                    1 + n % 7,
                    (n / 7) % 250,
                    1 + n % 250,
                    1024 + n % 60_000
                )
                .parse()
                .expect("address");
                match n % 5 {
                    0 => mtls12(client, "10.0.0.20:8443".parse().expect("address"), 8_000),
                    1 => http(client, "10.0.0.30:8080".parse().expect("address"), 6_000),
                    _ => synth::tls13_conversation(
                        client,
                        "10.0.0.10:8443".parse().expect("address"),
                        "api.internal",
                        600,
                        8_000,
                    ),
                }
            })
            .collect();
        connections += 64;
        let longest = batch.iter().map(|c| c.frames.len()).max().unwrap_or(0);
        for step in 0..longest {
            for conversation in &batch {
                if let Some((_, frame)) = conversation.frames.get(step) {
                    time += 0.000_01;
                    writer.packet(time, frame).expect("write");
                    written += 16 + frame.len() as u64;
                }
            }
        }
    }
    writer.into_inner().flush().expect("flush");
    (connections, written)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let megabytes: u64 = std::env::var("NETFENCE_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2 } else { 150 });
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("netfence-tls-bench.pcap");
    let (connections, bytes) = generate(&path, megabytes << 20);
    println!(
        "capture: {} ({:.1} MB, {connections} connections)",
        path.display(),
        bytes as f64 / 1e6
    );
    let rss_before = peak_rss_kib();
    let mut netfence_runs = Vec::new();
    let mut records = 0u64;
    for _ in 0..if quick { 1 } else { 5 } {
        let started = Instant::now();
        records = 0;
        netfence_tls::analyze_file(&path, Limits::default(), &mut |_| records += 1)
            .expect("analyze");
        netfence_runs.push(started.elapsed().as_secs_f64());
    }
    assert_eq!(records, connections, "every connection reported once");
    let netfence = median(netfence_runs);
    println!(
        "netfence: median {netfence:.3} s, {:.0} MB/s, {records} connections; peak RSS of this process {} MiB (before reading: {} MiB)",
        bytes as f64 / 1e6 / netfence,
        peak_rss_kib() / 1024,
        rss_before / 1024
    );
    if quick {
        let _ = std::fs::remove_file(&path);
        return;
    }
    let mut tshark_runs = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let status = Command::new("tshark")
            .args([
                "-r",
                path.to_str().expect("path"),
                "-d",
                "tcp.port==8443,tls",
            ])
            .args([
                "-Y",
                "tls.handshake.type == 1 || tls.handshake.type == 2",
                "-T",
                "fields",
            ])
            .args([
                "-e",
                "tcp.stream",
                "-e",
                "tls.handshake.extensions_server_name",
            ])
            .args([
                "-e",
                "tls.handshake.ciphersuite",
                "-e",
                "tls.handshake.extensions_alpn_str",
            ])
            .args([
                "-e",
                "tls.handshake.version",
                "-e",
                "tls.handshake.extensions.supported_version",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("tshark (scripts/test installs it)");
        assert!(status.success(), "tshark: {status}");
        tshark_runs.push(started.elapsed().as_secs_f64());
    }
    let tshark = median(tshark_runs);
    println!(
        "tshark:   median {tshark:.3} s, {:.0} MB/s",
        bytes as f64 / 1e6 / tshark
    );
    println!(
        "ratio: netfence is {:.1}x tshark's throughput",
        tshark / netfence
    );
    let _ = std::fs::remove_file(&path);
}
