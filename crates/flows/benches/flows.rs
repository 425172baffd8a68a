//! Flow-check benchmark (`cargo bench -p netfence-flows`): synthetic VPC flow log records
//! between the pods of a `netfence gen` cluster, read (parse only) and read + enriched +
//! checked, in the same run. Prints records/s as medians and the ratio of the whole check
//! to parse alone. Under `cargo test` (no `--bench`) it runs a small smoke version.
//! `NETFENCE_BENCH_COMMAND=PATH` (a release build of `netfence`) times the command itself
//! instead, on logs of 10,000,000 records in the full run (`NETFENCE_BENCH_FULL=1`), against
//! `wc -l` of the same logs ([`command_bench`]). `NETFENCE_BENCH_COUNT=PATH` counts the
//! command's instructions and simulated mispredicts per record under `cachegrind`, against
//! `wc -l` counted alike ([`count_bench`]): figures that do not move with the machine.

use netfence_conformance::bench::{cpu_seconds, full_run, median};
use netfence_engine::Engine;
use netfence_flows::check::CountedRow;
use netfence_flows::read::{read_bytes_into, read_stream_into};
use netfence_flows::{
    CheckedFlow, Checker, FlowSink, MismatchGroups, ReadStats, Rows, SourceFormat, VpcFormat,
    Workloads,
};
use netfence_gen::{generate, GenOptions};
use netfence_model::net::FastMap;
use netfence_model::Loader;
use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// `records` default-format VPC records between pods of `engine`, deterministic: between
/// random pod pairs (`distinct: None`, nearly every record a new connection: the verdict
/// cache never helps), or drawn from `distinct` connections (real logs repeat: a service
/// talks to the same few peers all day).
fn records(engine: &Engine, records: usize, distinct: Option<usize>, mix: Mix) -> Vec<u8> {
    let mut text = String::with_capacity(records * 110);
    Records::new(engine, distinct, mix).write(&mut text, records);
    text.into_bytes()
}

/// How the distinct connections of a workload are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mix {
    /// Between random pods: nearly every connection between another pair of workloads, so
    /// nearly every one is its own connection class (one explanation each).
    Random,
    /// Along a service graph: each workload talks to [`PEERS`] others (picked at random),
    /// from any of its pods to any pod of those: many connections per workload pair, as a
    /// cluster's traffic follows its services.
    Graph,
    /// Between a pod and the Internet: each connection one random public address, half of
    /// them clients of the pod (on its service ports), half servers it calls (on 443).
    Internet,
}

/// The workloads each workload talks to in [`Mix::Graph`].
const PEERS: usize = 5;

/// [`records`] from `distinct` connections whose records say what policy says of them
/// (ACCEPT when it allows, REJECT when it denies), but for one connection in a hundred: the
/// mix of a log where mismatches are the exception.
fn consistent_records(engine: &Engine, records: usize, distinct: usize, mix: Mix) -> Vec<u8> {
    let mut text = String::with_capacity(records * 110);
    let mut generator = Records::new(engine, Some(distinct), mix);
    let index = engine.verdict_index();
    generator.actions = generator
        .connections
        .iter()
        .enumerate()
        .map(|(n, &(src, dst, port))| {
            let allowed = index.allowed_ips(
                generator.addresses[src],
                generator.addresses[dst],
                netfence_model::Protocol::Tcp,
                port,
            );
            allowed != n.is_multiple_of(100)
        })
        .collect();
    generator.write(&mut text, records);
    text.into_bytes()
}

/// The records of a workload: [`consistent_records`] when `consistent` (and `distinct` is
/// given), else [`records`].
fn workload(
    engine: &Engine,
    count: usize,
    distinct: Option<usize>,
    consistent: bool,
    mix: Mix,
) -> Vec<u8> {
    match (distinct, consistent) {
        (Some(distinct), true) => consistent_records(engine, count, distinct, mix),
        _ => records(engine, count, distinct, mix),
    }
}

/// `input`'s records in a custom format an EKS cluster's flow log would use: the default
/// fields, then `vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr` (v3 to
/// v5 fields; the packet addresses are what names a pod behind its node's ENI, see the AWS
/// "Flow log records" page; here the record's own, tcp-flags 3: SYN and FIN, the opening
/// side), behind the header line of an S3 file that names the fields. (A format chosen for
/// this bench, not one AWS prescribes.)
fn with_eks_fields(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() * 2);
    out.extend_from_slice(
        b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets \
          bytes start end action log-status vpc-id subnet-id instance-id tcp-flags type \
          pkt-srcaddr pkt-dstaddr\n",
    );
    for line in input.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
        let mut words = line.split(|&b| b == b' ');
        let (src, dst) = (words.nth(3).unwrap_or(b"-"), words.next().unwrap_or(b"-"));
        out.extend_from_slice(line);
        out.extend_from_slice(
            b" vpc-0a1b2c3d subnet-0a1b2c3d4e5f67890 i-0123456789abcdef0 3 IPv4 ",
        );
        out.extend_from_slice(src);
        out.push(b' ');
        out.extend_from_slice(dst);
        out.push(b'\n');
    }
    out
}

/// The record generator behind [`records`], also read as a stream ([`Records::stream`]) for
/// inputs larger than memory.
struct Records {
    addresses: Vec<std::net::IpAddr>,
    connections: Vec<(usize, usize, u16)>,
    /// ACCEPT (true) or REJECT per connection; empty: one in five records REJECT at random.
    actions: Vec<bool>,
    seed: u64,
    written: usize,
}

impl Records {
    fn new(engine: &Engine, distinct: Option<usize>, mix: Mix) -> Self {
        let pods = engine.inventory().pods();
        let addresses = pods.iter().map(|pod| pod.ips[0]).collect();
        let mut records = Records {
            addresses,
            connections: Vec::new(),
            actions: Vec::new(),
            seed: 0x2545_f491_4f6c_dd1d,
            written: 0,
        };
        let distinct = distinct.unwrap_or(0);
        records.connections = match mix {
            Mix::Random => (0..distinct).map(|_| records.pick()).collect(),
            Mix::Internet => (0..distinct)
                .map(|n| {
                    let (pod, _, port) = records.pick();
                    // A public address (not 10/8, where the pods are).
                    let ip = std::net::Ipv4Addr::from(
                        (records.next() as u32 % 0xa000_0000).max(0x0b00_0000),
                    );
                    records.addresses.push(std::net::IpAddr::V4(ip));
                    let outside = records.addresses.len() - 1;
                    match n % 2 {
                        0 => (outside, pod, port),
                        _ => (pod, outside, 443),
                    }
                })
                .collect(),
            Mix::Graph => {
                // Each workload's pods (workloads numbered in pod order), and the workloads
                // it talks to.
                let workload_of = workload_indices(engine);
                let mut members: Vec<Vec<usize>> = Vec::new();
                for (n, &w) in workload_of.iter().enumerate() {
                    let w = w as usize;
                    if w == members.len() {
                        members.push(Vec::new());
                    }
                    members[w].push(n);
                }
                let peers: Vec<Vec<usize>> = (0..members.len())
                    .map(|_| {
                        (0..PEERS)
                            .map(|_| (records.next() % members.len() as u64) as usize)
                            .collect()
                    })
                    .collect();
                let mut seen = std::collections::HashSet::new();
                let mut connections = Vec::with_capacity(distinct);
                // Distinct connections while they can be found (the graph has millions).
                for _ in 0..distinct * 4 {
                    if connections.len() == distinct {
                        break;
                    }
                    let (src, _, port) = records.pick();
                    let to = &peers[workload_of[src] as usize];
                    let to = &members[to[(records.next() % to.len() as u64) as usize]];
                    let dst = to[(records.next() % to.len() as u64) as usize];
                    if seen.insert((src, dst, port)) {
                        connections.push((src, dst, port));
                    }
                }
                connections
            }
        };
        records
    }

    fn next(&mut self) -> u64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.seed
    }

    fn pick(&mut self) -> (usize, usize, u16) {
        let pods = self.addresses.len() as u64;
        (
            (self.next() % pods) as usize,
            (self.next() % pods) as usize,
            [80u16, 443, 8080, 5432][(self.next() % 4) as usize],
        )
    }

    fn write(&mut self, text: &mut String, records: usize) {
        for _ in 0..records {
            let i = self.written;
            self.written += 1;
            let (src, dst, port, accept) = if self.connections.is_empty() {
                let (src, dst, port) = self.pick();
                (src, dst, port, None)
            } else {
                let at = (self.next() % self.connections.len() as u64) as usize;
                let (src, dst, port) = self.connections[at];
                (src, dst, port, self.actions.get(at).copied())
            };
            let reject = self.next().is_multiple_of(5);
            let action = if accept.map_or(reject, |accept| !accept) {
                "REJECT"
            } else {
                "ACCEPT"
            };
            let _ = writeln!(
                text,
                "2 123456789010 eni-1235b8ca123456789 {} {} {} {port} 6 20 4249 {} {} {action} OK",
                self.addresses[src],
                self.addresses[dst],
                32768 + (i % 28000),
                1_418_530_010 + i / 1000,
                1_418_530_070 + i / 1000,
            );
        }
    }

    /// `count` records as a stream, made 1,000 at a time.
    fn stream(self, count: usize) -> impl std::io::BufRead {
        struct Stream {
            records: Records,
            left: usize,
            buffer: Vec<u8>,
            at: usize,
        }
        impl std::io::Read for Stream {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                if self.at == self.buffer.len() && self.left > 0 {
                    let batch = self.left.min(1000);
                    self.left -= batch;
                    let mut text = String::with_capacity(batch * 110);
                    self.records.write(&mut text, batch);
                    self.buffer = text.into_bytes();
                    self.at = 0;
                }
                let n = out.len().min(self.buffer.len() - self.at);
                out[..n].copy_from_slice(&self.buffer[self.at..self.at + n]);
                self.at += n;
                Ok(n)
            }
        }
        std::io::BufReader::with_capacity(
            1 << 16,
            Stream {
                records: self,
                left: count,
                buffer: Vec::new(),
                at: 0,
            },
        )
    }
}

/// The CPU seconds (user + sys) of the children this process has waited for so far
/// (`/proc/self/stat`'s `cutime` and `cstime`, in clock ticks of `ticks` per second).
fn children_cpu_seconds(ticks: f64) -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // After the command's name in parentheses: state is field 3, cutime 16, cstime 17.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |n: usize| fields[n - 3].parse::<f64>().expect("a number of ticks");
    (field(16) + field(17)) / ticks
}

/// Run `command` to its end, which must be a success; its output.
fn run(command: &mut std::process::Command) -> std::process::Output {
    let out = command.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run `command` to its end; its CPU seconds (user + sys) and its standard output.
fn timed(command: &mut std::process::Command, ticks: f64) -> (f64, String) {
    let before = children_cpu_seconds(ticks);
    let out = run(command);
    let cpu = children_cpu_seconds(ticks) - before;
    (cpu, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `netfence flows check -f CLUSTER --vpc LOG` (its default output: the summary and the
/// mismatch groups) on logs of ten times a workload's records (10,000,000 records, 1.1 GB,
/// in the full run), written to a scratch directory with the cluster: the whole command's
/// CPU seconds (user + sys, loading the cluster included), the median of three runs,
/// interleaved with `wc -l LOG`, which reads the same bytes and counts their lines (the
/// baseline in the same run); and the rate the command prints (records per wall-clock
/// second while reading). The bench's other rates leave out the reading of a file, the
/// setup of a checker and loading the cluster; a log of an hour of a busy VPC holds tens of
/// millions of records. Then each output (the text, and a row for every flow in JSON, CSV
/// and Parquet) on the 100,000 random pairs' records once over, CPU seconds likewise, and
/// wall-clock seconds.
fn command_bench(engine: &Engine, files: &[(String, String)], count: usize, netfence: &Path) {
    use std::io::Write as _;
    let ticks: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    let scratch = Scratch::with_cluster("command", files);
    let (dir, cluster) = (&scratch.0, scratch.0.join("cluster"));
    // The same cluster with every address in IPv6 ([`netfence_gen::ipv6_twin`]), for the
    // IPv6 row.
    let files_v6: Vec<(String, String)> = files
        .iter()
        .map(|(name, text)| (name.clone(), netfence_gen::ipv6_twin(text)))
        .collect();
    let scratch_v6 = Scratch::with_cluster("command-v6", &files_v6);
    let cluster_v6 = scratch_v6.0.join("cluster");
    // The command's setup (loading the cluster, naming the workloads), on a log of one
    // record (a log with none is an error).
    let one = dir.join("one.log");
    let record =
        "2 123456789010 eni-1 10.0.0.1 10.0.0.2 40000 80 6 1 40 1418530010 1418530070 ACCEPT OK\n";
    std::fs::write(&one, record).expect("one-record log");
    let check_in = |cluster: &Path, log: &Path| {
        let mut command = std::process::Command::new(netfence);
        command
            .args(["flows", "check", "-f"])
            .arg(cluster)
            .arg("--vpc")
            .arg(log);
        timed(&mut command, ticks)
    };
    let setup = median((0..3).map(|_| check_in(&cluster, &one).0).collect());
    println!("`flows check` of a one-record log (the setup): {setup:.2} CPU s, median of 3");
    let setup_v6 = median((0..3).map(|_| check_in(&cluster_v6, &one).0).collect());
    println!("the same with the cluster in IPv6: {setup_v6:.2} CPU s, median of 3");
    println!();
    println!("| log | records | `flows check` CPU s | records/CPU-s | records/CPU-s after the setup | `wc -l` CPU s | command/`wc -l` | printed records/s |");
    println!("|---|---|---|---|---|---|---|---|");
    // The workloads, then the random pairs again in the EKS fields' format (a custom format
    // behind a header line, [`with_eks_fields`]: the general short way), and last the
    // all-distinct records.
    let rows = COMMAND_WORKLOADS
        .into_iter()
        .map(|(name, distinct, mix)| (name, distinct, mix, Written::Default))
        .chain([
            (
                "100,000 random pairs, EKS fields (21, a header line)",
                Some(100_000),
                Mix::Random,
                Written::EksFields,
            ),
            (
                "100,000 random pairs, IPv6 (cluster and log)",
                Some(100_000),
                Mix::Random,
                Written::Ipv6,
            ),
            (
                "1,000,000 distinct random pairs, ten times",
                None,
                Mix::Random,
                Written::Default,
            ),
        ]);
    // Each default row's mismatches line, which its IPv6 twin must print too.
    let mut mismatches_of: Vec<((Option<usize>, Mix), String)> = Vec::new();
    for (name, distinct, mix, written) in rows {
        let log = dir.join("records.log");
        let input = workload(engine, count, distinct, false, mix);
        let eks = written == Written::EksFields;
        let (input, cluster, setup) = match written {
            Written::Default => (input, &cluster, setup),
            Written::EksFields => (with_eks_fields(&input), &cluster, setup),
            Written::Ipv6 => (
                netfence_gen::ipv6_twin(std::str::from_utf8(&input).expect("records are text"))
                    .into_bytes(),
                &cluster_v6,
                setup_v6,
            ),
        };
        let check = |log: &Path| check_in(cluster, log);
        let mut file = std::io::BufWriter::new(std::fs::File::create(&log).expect("log"));
        for _ in 0..10 {
            file.write_all(&input).expect("log written");
        }
        file.flush().expect("log written");
        drop((file, input));
        let records = 10 * count;
        let (mut command, mut wc, mut printed) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..3 {
            let (cpu, out) = check(&log);
            assert!(out.contains(&format!("records read: {records}\n")), "{out}");
            let mismatches = out
                .lines()
                .find(|line| line.starts_with("mismatches: "))
                .expect("the command prints its mismatches")
                .to_string();
            match written {
                Written::Default => mismatches_of.push(((distinct, mix), mismatches)),
                Written::Ipv6 => {
                    let twin = mismatches_of
                        .iter()
                        .find(|(row, _)| *row == (distinct, mix));
                    assert_eq!(twin.map(|(_, m)| m), Some(&mismatches), "{name}");
                }
                Written::EksFields => {}
            }
            command.push(cpu);
            printed.push(
                out.lines()
                    .find_map(|line| line.strip_prefix("records per second: "))
                    .and_then(|rate| rate.parse::<f64>().ok())
                    .expect("the command prints its rate"),
            );
            let (cpu, out) = timed(std::process::Command::new("wc").arg("-l").arg(&log), ticks);
            // With the EKS fields, each of the ten copies starts with its header line.
            let lines = records + if eks { 10 } else { 0 };
            assert!(out.starts_with(&lines.to_string()), "{out}");
            wc.push(cpu);
        }
        let (command, wc, printed) = (median(command), median(wc), median(printed));
        println!(
            "| {name} | {records} | {command:.2} | {:.0} | {:.0} | {wc:.2} | {:.1} | {printed:.0} |",
            records as f64 / command,
            records as f64 / (command - setup),
            command / wc
        );
    }
    // The outputs: a row for every flow (`-o json`, `-o csv`, `-o parquet`) against the
    // default text, on the 100,000 random pairs' records once over (the rows go to
    // /dev/null, the Parquet files to the scratch directory).
    println!();
    println!("| output, 100,000 random pairs, {count} records | `flows check` CPU s | records/CPU-s after the setup | wall-clock s |");
    println!("|---|---|---|---|");
    let log = dir.join("records.log");
    std::fs::write(
        &log,
        workload(engine, count, Some(100_000), false, Mix::Random),
    )
    .expect("log written");
    let parquet = dir.join("parquet");
    let parquet_args = [
        "-o",
        "parquet",
        "--output-dir",
        &parquet.display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let outputs: [(&str, Vec<String>); 4] = [
        ("text", Vec::new()),
        ("-o json", ["-o", "json"].map(String::from).to_vec()),
        ("-o csv", ["-o", "csv"].map(String::from).to_vec()),
        ("-o parquet", parquet_args),
    ];
    for (name, args) in outputs {
        // (CPU, wall-clock) seconds: JSON and CSV rows are written by other threads than
        // the judging one.
        let runs: Vec<(f64, f64)> = (0..3)
            .map(|_| {
                let _ = std::fs::remove_dir_all(&parquet);
                let mut command = std::process::Command::new(netfence);
                command
                    .args(["flows", "check", "-f"])
                    .arg(&cluster)
                    .arg("--vpc")
                    .arg(&log)
                    .args(&args)
                    .stdout(std::process::Stdio::null());
                let started = std::time::Instant::now();
                let cpu = timed(&mut command, ticks).0;
                (cpu, started.elapsed().as_secs_f64())
            })
            .collect();
        let cpu = median(runs.iter().map(|run| run.0).collect());
        let wall = median(runs.iter().map(|run| run.1).collect());
        println!(
            "| {name} | {cpu:.2} | {:.0} | {wall:.2} |",
            count as f64 / (cpu - setup)
        );
    }
}

/// How [`command_bench`] writes a row's records.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Written {
    /// In the default format.
    Default,
    /// In the EKS fields' format ([`with_eks_fields`]).
    EksFields,
    /// In the default format with every address in IPv6, against the cluster in IPv6
    /// ([`netfence_gen::ipv6_twin`], as `netfence gen --ipv6` writes it).
    Ipv6,
}

/// The workloads of the command modes ([`command_bench`], [`count_bench`]), before each
/// mode's own last one: name, distinct connections, mix.
const COMMAND_WORKLOADS: [(&str, Option<usize>, Mix); 4] = [
    ("1,000 connections", Some(1_000), Mix::Random),
    ("100,000 random pairs", Some(100_000), Mix::Random),
    ("100,000 along a service graph", Some(100_000), Mix::Graph),
    ("100,000 with the Internet", Some(100_000), Mix::Internet),
];

/// A scratch directory for the command's inputs, removed when the bench ends, a failed
/// command's panic included (the logs are up to 1.1 GB).
struct Scratch(std::path::PathBuf);

impl Scratch {
    /// A new scratch directory (`what` names it) holding the cluster's `files` in `cluster/`.
    fn with_cluster(what: &str, files: &[(String, String)]) -> Scratch {
        let scratch = Scratch(
            std::env::temp_dir().join(format!("netfence-bench-{what}-{}", std::process::id())),
        );
        let cluster = scratch.0.join("cluster");
        std::fs::create_dir_all(&cluster).expect("scratch directory");
        for (name, text) in files {
            std::fs::write(cluster.join(name), text).expect("cluster file");
        }
        scratch
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `NETFENCE_BENCH_COUNT=PATH`: what the command costs per record by `cachegrind`'s count
/// (instructions, and conditional branches its simple predictor mispredicts), which does not
/// depend on the machine, unlike time on a shared one (from run to run it moves by up to
/// 0.5 %: hash maps seeded at random, the loader's threads). In steady state:
/// the count on each workload's log of `count` records twice over, less the count on it
/// once, over `count` (the setup, the front cache's first touches and each connection's
/// first meeting cancel out). `wc -l` of the same logs, counted alike, is the baseline.
/// Needs `valgrind`; takes about three minutes in all.
fn count_bench(engine: &Engine, files: &[(String, String)], count: usize, netfence: &Path) {
    use std::io::Write as _;
    let scratch = Scratch::with_cluster("count", files);
    let (dir, cluster) = (&scratch.0, scratch.0.join("cluster"));
    // Instructions and mispredicted conditional branches of `program args` under cachegrind.
    let counted = |program: &Path, args: &[&std::ffi::OsStr]| -> (f64, f64) {
        // (Needs `valgrind`: apt-get install valgrind.)
        let out = run(std::process::Command::new("valgrind")
            .args(["--tool=cachegrind", "--cache-sim=no", "--branch-sim=yes"])
            .arg("--cachegrind-out-file=/dev/null")
            .arg(program)
            .args(args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let total = |label: &str| -> f64 {
            stderr
                .lines()
                .find_map(|line| line.split_once(label).map(|(_, rest)| rest))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.replace(',', "").parse().ok())
                .unwrap_or_else(|| panic!("no {label:?} in cachegrind's summary: {stderr}"))
        };
        (total("I   refs:"), total("Mispredicts:"))
    };
    println!("| log | instructions per record | simulated mispredicts per record | `wc -l` instructions per record | command/`wc -l` |");
    println!("|---|---|---|---|---|");
    // Last, as many connections as records (the full bench's last row): the second reading
    // meets them again, half of them still in the front cache.
    for (name, distinct, mix) in COMMAND_WORKLOADS.into_iter().chain([(
        "as many connections as records, along a service graph",
        Some(count),
        Mix::Graph,
    )]) {
        let input = workload(engine, count, distinct, false, mix);
        let (once, twice) = (dir.join("once.log"), dir.join("twice.log"));
        std::fs::write(&once, &input).expect("log");
        let mut file = std::io::BufWriter::new(std::fs::File::create(&twice).expect("log"));
        for _ in 0..2 {
            file.write_all(&input).expect("log written");
        }
        file.flush().expect("log written");
        drop((file, input));
        let check = |log: &Path| {
            let args: [&std::ffi::OsStr; 4] = [
                "flows".as_ref(),
                "check".as_ref(),
                "-f".as_ref(),
                cluster.as_os_str(),
            ];
            counted(
                netfence,
                &[&args[..], &["--vpc".as_ref(), log.as_os_str()]].concat(),
            )
        };
        let wc = |log: &Path| counted(Path::new("wc"), &["-l".as_ref(), log.as_os_str()]);
        let ((i1, m1), (i2, m2)) = (check(&once), check(&twice));
        let ((w1, _), (w2, _)) = (wc(&once), wc(&twice));
        let per = |a: f64, b: f64| (b - a) / count as f64;
        println!(
            "| {name} | {:.0} | {:.2} | {:.1} | {:.0} |",
            per(i1, i2),
            per(m1, m2),
            per(w1, w2),
            per(i1, i2) / per(w1, w2)
        );
    }
}

/// The peak resident memory of this process (`VmHWM`, KiB).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
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

/// The default VPC format, the bench's records'.
fn vpc_format() -> SourceFormat {
    SourceFormat::Vpc(VpcFormat::default())
}

/// Read `input` (a stream, or `None`: `bytes`, gzip opened as the CLI does) in `format` into
/// `checker`, handing on `rows` as `flows check` does (`Rows::Mismatches`: its summary;
/// `Rows::All`: the JSON/CSV/Parquet path before rendering). The read counts.
fn check_into(
    checker: &mut Checker,
    input: Input<'_>,
    format: &SourceFormat,
    rows: Rows,
) -> ReadStats {
    let mut stats = ReadStats::default();
    let mut sink = |row: &CheckedFlow| {
        std::hint::black_box(row);
    };
    let mut judging = checker.judging(rows, &mut sink);
    match input {
        Input::Bytes(bytes) => read_bytes_into(bytes, "bench", format, &mut stats, &mut judging),
        Input::Stream(stream) => {
            read_stream_into(stream, "bench", format, &mut stats, &mut judging)
        }
    }
    .expect("reads");
    stats
}

/// What [`check_into`] reads.
enum Input<'a> {
    Bytes(&'a [u8]),
    Stream(Box<dyn std::io::BufRead + 'a>),
}

/// Read and check `input` as `flows check`'s summary does (counts, and the row of each
/// mismatch): the mismatches and the explanations asked of the engine.
fn check(engine: &Engine, input: &[u8]) -> (u64, u64) {
    let mut checker = Checker::new(engine, None);
    let stats = check_into(
        &mut checker,
        Input::Bytes(input),
        &vpc_format(),
        Rows::Mismatches,
    );
    assert_eq!(stats.parsed, stats.read, "every record reads");
    (checker.stats().mismatches, checker.stats().verdicts)
}

/// Read and check `input` as `flows check -o text` does: mismatches counted per connection
/// ([`Checker::counting`]) into its [`MismatchGroups`] (the text, written once per group at
/// the end, is left out; pods' workloads named once beforehand, as the command does). The
/// number of groups.
fn check_grouped(engine: &Engine, workloads: &Arc<Workloads>, input: &[u8]) -> usize {
    let mut checker = Checker::new(engine, None);
    let mut groups = MismatchGroups::new(Arc::clone(workloads));
    let mut sink = |rows: &[CountedRow]| groups.add_rows(rows);
    let mut stats = ReadStats::default();
    read_bytes_into(
        input,
        "bench",
        &vpc_format(),
        &mut stats,
        &mut checker.counting(&mut sink),
    )
    .expect("reads");
    assert_eq!(stats.parsed, stats.read, "every record reads");
    groups.len()
}

/// Each pod's workload index (by `namespace/name`).
fn workload_indices(engine: &Engine) -> Vec<u32> {
    let mut index: FastMap<(&str, &str), u32> = FastMap::default();
    engine
        .inventory()
        .pods()
        .iter()
        .map(|pod| {
            let next = u32::try_from(index.len()).unwrap_or(0);
            *index
                .entry((&*pod.workload.namespace, &*pod.workload.name))
                .or_insert(next)
        })
        .collect()
}

/// A whole row for every judged flow (`-o json`'s path, before rendering).
fn check_rows(engine: &Engine, input: &[u8]) {
    check_into(
        &mut Checker::new(engine, None),
        Input::Bytes(input),
        &vpc_format(),
        Rows::All,
    );
}

/// Judge every record (verdict, mismatch or not, counts) and build no row: the check when
/// mismatches are rare. The mismatches.
fn judge(engine: &Engine, input: &[u8]) -> u64 {
    struct Judge<'c, 'e>(&'c mut Checker<'e>, u64);
    impl FlowSink for Judge<'_, '_> {
        fn flow(&mut self, flow: netfence_flows::Flow) {
            self.1 += u64::from(self.0.judge(&flow).is_some_and(|j| j.mismatch));
        }
        fn vpc_record(&mut self, record: &netfence_flows::VpcRecord) {
            self.1 += u64::from(self.0.judge_vpc(record).is_some_and(|j| j.mismatch));
        }
        fn vpc_records(&mut self, records: &[netfence_flows::VpcRecord]) {
            self.0.preload_vpc(records);
            for record in records {
                self.vpc_record(record);
            }
        }
    }
    let mut checker = Checker::new(engine, None);
    let mut sink = Judge(&mut checker, 0);
    read_into(input, &vpc_format(), &mut sink);
    sink.1
}

/// Read `input` in `format` into `sink`, every record read.
fn read_into(input: &[u8], format: &SourceFormat, sink: &mut dyn FlowSink) {
    let mut stats = ReadStats::default();
    read_bytes_into(input, "bench", format, &mut stats, sink).expect("reads");
    assert_eq!(stats.parsed, stats.read, "every record reads");
}

/// Read `input` in `format` and count its records: each made into its `Flow` (`flows: true`,
/// the general reader's output), or VPC records read the short way only (32-byte
/// `VpcRecord`s).
fn count_records(input: &[u8], format: &SourceFormat, flows: bool) -> u64 {
    struct Count(u64, bool);
    impl FlowSink for Count {
        fn flow(&mut self, flow: netfence_flows::Flow) {
            std::hint::black_box(flow);
            self.0 += 1;
        }
        fn vpc_record(&mut self, record: &netfence_flows::VpcRecord) {
            if self.1 {
                std::hint::black_box(record.flow());
            } else {
                std::hint::black_box(record);
            }
            self.0 += 1;
        }
    }
    let mut count = Count(0, flows);
    read_into(input, format, &mut count);
    count.0
}

/// `input` (default-format VPC records between pods of `engine`) as `hubble observe -o json`
/// lines, one per record, shaped as Cilium writes them (`flow.proto`'s snake_case keys): the
/// addresses, ports, verdict and time of the record, and each endpoint's namespace, pod
/// name, labels and workload, plus the fields a reader skips (ethernet, identity, node,
/// trace point, summary). About 1.1 KB a line, as real ones.
fn as_hubble(engine: &Engine, input: &[u8]) -> Vec<u8> {
    let mut endpoints: FastMap<std::net::IpAddr, serde_json::Value> = FastMap::default();
    for (n, pod) in engine.inventory().pods().iter().enumerate() {
        let labels: Vec<String> = pod
            .labels
            .iter()
            .filter(|(key, _)| !key.starts_with("kubernetes.io/"))
            .map(|(key, value)| format!("k8s:{key}={value}"))
            .chain([format!("k8s:io.kubernetes.pod.namespace={}", pod.namespace)])
            .collect();
        endpoints.insert(
            pod.ips[0],
            serde_json::json!({
                "ID": 1000 + n,
                "identity": 20000 + n % 500,
                "namespace": pod.namespace,
                "labels": labels,
                "pod_name": pod.name,
                "workloads": [{"name": pod.workload.name, "kind": pod.workload.kind}],
            }),
        );
    }
    let text = std::str::from_utf8(input).expect("ASCII records");
    let mut out = String::with_capacity(input.len() * 11);
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let (src, dst) = (words[3], words[4]);
        let endpoint =
            |ip: &str| endpoints[&ip.parse::<std::net::IpAddr>().expect("address")].clone();
        let start: i64 = words[10].parse().expect("start");
        let time = jiff::Timestamp::from_second(start)
            .expect("time")
            .to_string();
        let verdict = if words[12] == "ACCEPT" {
            "FORWARDED"
        } else {
            "DROPPED"
        };
        let mut flow = serde_json::json!({
            "time": time,
            "uuid": format!("0b6f2c1e-5a3d-4f7e-9c21-{:012x}", out.len()),
            "verdict": verdict,
            "ethernet": {"source": "e2:9a:41:3b:7c:10", "destination": "5a:0e:19:c4:2d:88"},
            "IP": {"source": src, "destination": dst, "ipVersion": "IPv4"},
            "l4": {"TCP": {
                "source_port": words[5].parse::<u16>().expect("port"),
                "destination_port": words[6].parse::<u16>().expect("port"),
                "flags": {"SYN": true},
            }},
            "source": endpoint(src),
            "destination": endpoint(dst),
            "Type": "L3_L4",
            "node_name": "ip-10-0-1-23.ec2.internal",
            "event_type": {"type": 4},
            "traffic_direction": "EGRESS",
            "trace_observation_point": "TO_STACK",
            "is_reply": false,
            "Summary": "TCP Flags: SYN",
        });
        if verdict == "DROPPED" {
            flow["drop_reason_desc"] = "POLICY_DENIED".into();
        }
        let response = serde_json::json!({
            "flow": flow,
            "node_name": "ip-10-0-1-23.ec2.internal",
            "time": time,
        });
        out.push_str(&response.to_string());
        out.push('\n');
    }
    out.into_bytes()
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
    let full = full_run() || std::env::var_os("NETFENCE_BENCH_FULL").is_some();
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
    // Named once per command, as `flows check` does (like the engine, outside the rates).
    let pod_workloads = Arc::new(Workloads::of(&engine));
    // Memory: this program again, reading `NETFENCE_BENCH_RSS_RECORDS` streamed records
    // (never all in memory) from 1,000 connections, reports its peak RSS.
    if let Some(records) = std::env::var("NETFENCE_BENCH_RSS_RECORDS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        let before = peak_rss_kib();
        let mut checker = Checker::new(&engine, None);
        check_into(
            &mut checker,
            Input::Stream(Box::new(
                Records::new(&engine, Some(1_000), Mix::Random).stream(records),
            )),
            &vpc_format(),
            Rows::Mismatches,
        );
        assert_eq!(
            checker.stats().judged + checker.stats().replies,
            records as u64
        );
        println!("{before} {}", peak_rss_kib());
        return;
    }
    // The command's count per record: `NETFENCE_BENCH_COUNT=PATH` (a release build).
    if let Some(netfence) = std::env::var_os("NETFENCE_BENCH_COUNT") {
        count_bench(&engine, &files, count, Path::new(&netfence));
        return;
    }
    // The command itself: `NETFENCE_BENCH_COMMAND=PATH` (a release build of `netfence`).
    if let Some(netfence) = std::env::var_os("NETFENCE_BENCH_COMMAND") {
        command_bench(&engine, &files, count, Path::new(&netfence));
        return;
    }
    // Inputs for the CLI: `NETFENCE_BENCH_WRITE=DIR` writes the cluster (`DIR/cluster/`) and
    // each workload's records (`DIR/<workload>.log`, and the 100,000 random pairs as Hubble
    // lines, `DIR/100k-hubble.json`), to time `netfence flows check` of two builds on the
    // same files.
    if let Some(dir) = std::env::var_os("NETFENCE_BENCH_WRITE").map(std::path::PathBuf::from) {
        std::fs::create_dir_all(dir.join("cluster")).expect("output directory");
        for (name, text) in &files {
            std::fs::write(dir.join("cluster").join(name), text).expect("cluster file");
        }
        for (name, distinct, consistent, mix) in [
            ("1k", Some(1_000), false, Mix::Random),
            ("100k", Some(100_000), false, Mix::Random),
            ("distinct", None, false, Mix::Random),
            ("1k-policy", Some(1_000), true, Mix::Random),
            ("100k-policy", Some(100_000), true, Mix::Random),
            ("100k-graph", Some(100_000), false, Mix::Graph),
            ("100k-graph-policy", Some(100_000), true, Mix::Graph),
            ("100k-internet", Some(100_000), false, Mix::Internet),
        ] {
            let input = workload(&engine, count, distinct, consistent, mix);
            if name == "100k" {
                let lines = as_hubble(&engine, &input);
                std::fs::write(dir.join("100k-hubble.json"), lines).expect("records file");
            }
            std::fs::write(dir.join(format!("{name}.log")), input).expect("records file");
        }
        return;
    }
    // Profiling: `NETFENCE_BENCH_PROFILE=N` only checks the N-connection records, 20 times,
    // and prints the mismatches and the median rate (for `perf record`, and to compare two
    // builds on one workload).
    // (`N,policy`: the records whose actions follow policy; `N,graph` and `N,graph,policy`:
    // connections along a service graph, [`Mix::Graph`]; `N,internet`: [`Mix::Internet`]; a
    // last `,text`: only the `-o text` path, 20 times; `,eks` before it: the records with the EKS
    // fields after them, [`with_eks_fields`]; `distinct` for N: the all-distinct records.)
    if let Some((distinct, consistent, mix, eks, text_only)) =
        std::env::var("NETFENCE_BENCH_PROFILE").ok().and_then(|n| {
            let (n, text_only) = n.strip_suffix(",text").map_or((&*n, false), |n| (n, true));
            let (n, eks) = n.strip_suffix(",eks").map_or((n, false), |n| (n, true));
            let (n, consistent) = n.strip_suffix(",policy").map_or((n, false), |n| (n, true));
            let (n, mix) = n
                .strip_suffix(",graph")
                .map(|n| (n, Mix::Graph))
                .or_else(|| n.strip_suffix(",internet").map(|n| (n, Mix::Internet)))
                .unwrap_or((n, Mix::Random));
            // `distinct` for N: the all-distinct records (random pod pairs whatever the mix,
            // nearly every record a new connection).
            let distinct = match n {
                "distinct" => None,
                n => Some(n.parse::<usize>().ok()?),
            };
            Some((distinct, consistent, mix, eks, text_only))
        })
    {
        let input = workload(&engine, count, distinct, consistent, mix);
        let input = if eks { with_eks_fields(&input) } else { input };
        if text_only {
            let text_rate = rate(count, 20, true, || {
                check_grouped(&engine, &pod_workloads, &input);
            });
            println!("-o text: {text_rate:.0} records/CPU-s (median of 20)");
            return;
        }
        let mut mismatches = 0;
        let check_rate = rate(count, 20, true, || mismatches = check(&engine, &input).0);
        let parse_rate = rate(count, 5, true, || {
            assert_eq!(count_records(&input, &vpc_format(), false), count as u64);
        });
        let text_rate = rate(count, 5, true, || {
            check_grouped(&engine, &pod_workloads, &input);
        });
        println!(
            "{mismatches} mismatches in {count} records; check: {check_rate:.0} records/CPU-s \
             (median of 20); parse, short: {parse_rate:.0}; -o text: {text_rate:.0} (medians \
             of 5)"
        );
        return;
    }
    println!("| pods | policies | records | connections | parse records/CPU-s | parse, short records/CPU-s | judge records/CPU-s | judge/parse | judge + mismatch rows records/CPU-s | judge + mismatch groups (`flows check -o text`) records/CPU-s | rows records/CPU-s | mismatches | mismatch groups | verdicts asked |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let workloads = [
        (Some(1_000), false, Mix::Random),
        (Some(100_000), false, Mix::Random),
        (None, false, Mix::Random),
        (Some(1_000), true, Mix::Random),
        (Some(100_000), true, Mix::Random),
        (Some(100_000), false, Mix::Graph),
        (Some(100_000), true, Mix::Graph),
        (Some(100_000), false, Mix::Internet),
        // As many connections as records, along the service graph: most records are a
        // connection met for the first time, whose class was met before (a large cluster's
        // busy hour; the front cache holds about half of them).
        (Some(count), false, Mix::Graph),
    ];
    // The last row again with the EKS fields (a custom format, read the general short way).
    let eks_row = workloads.len();
    let mut graph_row = (0, 0);
    let workloads = workloads
        .into_iter()
        .chain([(Some(100_000), false, Mix::Graph)]);
    for (row, (distinct, consistent, mix)) in workloads.enumerate() {
        let input = workload(&engine, count, distinct, consistent, mix);
        let eks = row == eks_row;
        let input = if eks { with_eks_fields(&input) } else { input };
        let parse = rate(count, repeats, true, || {
            assert_eq!(count_records(&input, &vpc_format(), true), count as u64);
        });
        // The short way alone: VPC records read without their `Flow` being made.
        let short = rate(count, repeats, true, || {
            assert_eq!(count_records(&input, &vpc_format(), false), count as u64);
        });
        let mut mismatches = 0;
        let judged = rate(count, repeats, true, || mismatches = judge(&engine, &input));
        let mut verdicts = 0;
        let checked = rate(count, repeats, true, || verdicts = check(&engine, &input).1);
        let mut groups = 0;
        let grouped = rate(count, repeats, true, || {
            groups = check_grouped(&engine, &pod_workloads, &input);
        });
        let rows = rate(count, repeats, true, || check_rows(&engine, &input));
        println!(
            "| {pods} | {policies} | {count} | {} | {parse:.0} | {short:.0} | {judged:.0} | {:.2} | {checked:.0} | {grouped:.0} | {rows:.0} | {mismatches} | {groups} | {verdicts} |",
            match (distinct, consistent, mix) {
                _ if eks => "100000 along a service graph, EKS fields (21, a header line)".to_string(),
                (None, _, _) => "all distinct".to_string(),
                (Some(d), false, Mix::Random) => d.to_string(),
                (Some(d), true, Mix::Random) => format!("{d}, actions as policy says (1 % not)"),
                (Some(d), false, Mix::Graph) => format!("{d} along a service graph"),
                (Some(d), true, Mix::Graph) => {
                    format!("{d} along a service graph, actions as policy says (1 % not)")
                }
                (Some(d), false, Mix::Internet) => format!("{d} with the Internet"),
                (Some(d), true, Mix::Internet) => {
                    format!("{d} with the Internet, actions as policy says (1 % not)")
                }
            },
            judged / parse
        );
        // The EKS fields read to the same flows: the same mismatches and groups as the row
        // of the same records in the default format.
        if eks {
            assert_eq!((mismatches, groups), graph_row, "the EKS fields' row");
        } else if (distinct, consistent, mix) == (Some(100_000), false, Mix::Graph) {
            graph_row = (mismatches, groups);
        }
    }
    // Hubble: the 100,000 random pairs as `hubble observe -o json` lines, read alone and read
    // and checked, against the same records as VPC text in the same run.
    let vpc = workload(&engine, count, Some(100_000), false, Mix::Random);
    let hubble_lines = as_hubble(&engine, &vpc);
    let hubble_read = rate(count, repeats, true, || {
        let flows = count_records(&hubble_lines, &SourceFormat::Hubble, true);
        assert_eq!(flows, count as u64);
    });
    let hubble_checked = rate(count, repeats, true, || {
        let mut checker = Checker::new(&engine, None);
        let input = Input::Bytes(&hubble_lines);
        let stats = check_into(&mut checker, input, &SourceFormat::Hubble, Rows::Mismatches);
        assert_eq!((stats.read, stats.parsed), (count as u64, count as u64));
    });
    let vpc_checked = rate(count, repeats, true, || {
        check(&engine, &vpc);
    });
    println!();
    println!("| 100,000 random pairs | bytes per record | read records/CPU-s | read + checked records/CPU-s | checked / VPC text's checked |");
    println!("|---|---|---|---|---|");
    println!(
        "| Hubble JSON lines | {} | {hubble_read:.0} | {hubble_checked:.0} | {:.3} |",
        hubble_lines.len() / count,
        hubble_checked / vpc_checked
    );
    println!(
        "| VPC text (default format) | {} | | {vpc_checked:.0} | 1.000 |",
        vpc.len() / count
    );
    drop((vpc, hubble_lines));
    // Compressed input: the whole check from `.gz` against decompression alone, in process
    // (flate2, what the reader uses) and as `gzip -dc` (the baseline).
    let input = records(&engine, count, Some(1_000), Mix::Random);
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
    // Several files: the CLI's driver (`for_each_input`, one checker per thread), one
    // thread against two, over four files of the 1,000-connection records; wall time.
    let dir = std::env::temp_dir().join(format!("netfence-flows-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let quarter = count / 4;
    let paths: Vec<std::path::PathBuf> =
        (0..4).map(|n| dir.join(format!("part-{n}.log"))).collect();
    // Each file holds the first quarter of the records.
    for path in &paths {
        let end = input
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(quarter - 1)
            .map_or(input.len(), |(at, _)| at + 1);
        std::fs::write(path, &input[..end]).expect("temp file");
    }
    let files_rate = |threads: usize| {
        rate(quarter * 4, repeats, false, || {
            let mismatches: u64 = netfence_flows::for_each_input(
                &paths,
                threads,
                || Checker::new(&engine, None),
                |checker, path| {
                    let file = std::fs::File::open(path).expect("temp file");
                    check_into(
                        checker,
                        Input::Stream(Box::new(std::io::BufReader::with_capacity(1 << 16, file))),
                        &vpc_format(),
                        Rows::Mismatches,
                    );
                    checker.take_stats().mismatches
                },
            )
            .into_iter()
            .sum();
            std::hint::black_box(mismatches);
        })
    };
    let one = files_rate(1);
    let two = files_rate(2);
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    println!("| 4 files of {quarter} records (1,000 connections) | records/s (wall) | speed-up |");
    println!("|---|---|---|");
    println!("| 1 thread | {one:.0} | 1.00 |");
    println!("| 2 threads | {two:.0} | {:.2} |", two / one);
    // Memory: peak RSS of this program checking 1x and 10x the records, streamed.
    let rss = |records: usize| -> Option<(u64, u64)> {
        let mut child = std::process::Command::new(std::env::current_exe().ok()?);
        child.env("NETFENCE_BENCH_RSS_RECORDS", records.to_string());
        if full {
            child.env("NETFENCE_BENCH_FULL", "1");
        }
        let output = child.output().ok()?;
        let text = String::from_utf8(output.stdout).ok()?;
        let mut words = text.split_whitespace().map(|w| w.parse::<u64>().ok());
        Some((words.next()??, words.next()??))
    };
    println!();
    println!("| records streamed (1,000 connections) | peak RSS before checking, KiB | peak RSS after, KiB |");
    println!("|---|---|---|");
    for records in [count, count * 10] {
        match rss(records) {
            Some((before, after)) => println!("| {records} | {before} | {after} |"),
            None => println!("| {records} | (child failed) | |"),
        }
    }
}
