//! `netfence flows check` end to end: the JSON Lines keys of shared/DESIGN.md, exit codes,
//! `--fail-on-mismatch`, gzip, stdin and pipe inputs, and refusals of empty or garbage input.

mod common;

use common::gzip;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The cluster of the README's Observe examples (shop default-deny, web -> api on TCP 8080).
const CLUSTER: &str = include_str!("../../../examples/flows/cluster.yaml");

/// web -> api allowed and accepted; its reply; batch -> api accepted although policy denies;
/// a NODATA record; ICMP from batch.
const VPC: &str = "\
version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status
2 123456789010 eni-0a1b2c3d 10.0.0.10 10.0.0.20 40000 8080 6 10 840 1700000000 1700000060 ACCEPT OK
2 123456789010 eni-0a1b2c3d 10.0.0.20 10.0.0.10 8080 40000 6 10 840 1700000000 1700000060 ACCEPT OK
2 123456789010 eni-0a1b2c3d 10.0.1.30 10.0.0.20 40001 8080 6 3 180 1700000000 1700000060 ACCEPT OK
2 123456789010 eni-0a1b2c3d - - - - - - - 1700000120 1700000180 - NODATA
2 123456789010 eni-0a1b2c3d 10.0.1.30 10.0.0.20 0 0 1 1 84 1700000000 1700000060 ACCEPT OK
";

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("netfence-flows-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cluster.yaml"), CLUSTER).unwrap();
        Dir(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }

    fn cluster(&self) -> String {
        self.0.join("cluster.yaml").display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn netfence(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_netfence"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// `netfence ARGS` on `threads` threads (`NETFENCE_THREADS`): the exit code, stdout without
/// its rate line (which changes from run to run), and stderr.
fn on_threads(threads: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_netfence"))
        .args(args)
        .env("NETFENCE_THREADS", threads)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.starts_with("records per second: "))
        .collect::<Vec<_>>()
        .join("\n");
    (
        output.status.code(),
        stdout,
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

/// `netfence flows check -f CLUSTER --vpc VPC -o json` in `dir`, fed `stdin`.
fn vpc_json(dir: &Dir, vpc: &str, stdin: Option<&[u8]>) -> Output {
    netfence(
        &[
            "flows",
            "check",
            "-f",
            &dir.cluster(),
            "--vpc",
            vpc,
            "-o",
            "json",
        ],
        stdin,
    )
}

#[test]
fn json_lines_follow_the_contract() {
    let dir = Dir::new("json");
    let vpc = dir.write("vpc.log", VPC.as_bytes());
    let output = vpc_json(&dir, &vpc, None);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let rows = json_lines(&output);
    // The reply and the NODATA record are not rows.
    assert_eq!(rows.len(), 3);
    let keys: Vec<&str> = rows[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "time",
        "src",
        "dst",
        "protocol",
        "port",
        "observed",
        "policy",
        "decided_by",
        "mismatch",
    ];
    expected.sort();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, expected);
    assert_eq!(
        rows[0],
        serde_json::json!({
            "time": "2023-11-14T22:13:20Z", "src": "shop/web", "dst": "shop/api",
            "protocol": "TCP", "port": 8080, "observed": "allow", "policy": "allow",
            "decided_by": "NetworkPolicy shop/web-to-api", "mismatch": false
        })
    );
    assert_eq!(rows[1]["src"], "jobs/batch");
    assert_eq!(rows[1]["policy"], "deny");
    assert_eq!(rows[1]["decided_by"], "NetworkPolicy shop/default-deny");
    assert_eq!(rows[1]["mismatch"], true);
    // ICMP: no port, not judged by the TCP/UDP/SCTP model.
    assert_eq!(rows[2]["protocol"], "ICMP");
    assert_eq!(rows[2]["port"], serde_json::Value::Null);
    assert_eq!(rows[2]["mismatch"], false);
}

#[test]
fn fail_on_mismatch_exits_1_and_text_groups_mismatches() {
    let dir = Dir::new("fail");
    let vpc = dir.write("vpc.log", VPC.as_bytes());
    let base = ["flows", "check", "-f", &dir.cluster(), "--vpc", &vpc];
    let text = netfence(&base, None);
    assert_eq!(text.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains("records read: 5\n"), "{stdout}");
    assert!(stdout.contains("skipped: 1 (NODATA record: 1)"), "{stdout}");
    assert!(stdout.contains("mismatches: 1\n"), "{stdout}");
    assert!(stdout.contains("records per second: "), "{stdout}");
    assert!(
        stdout.contains(
            "jobs/batch -> shop/api TCP/8080: observed allow, policy deny (NetworkPolicy shop/default-deny): 1 flow(s)"
        ),
        "{stdout}"
    );
    let failing = netfence(&[&base[..], &["--fail-on-mismatch"]].concat(), None);
    assert_eq!(failing.status.code(), Some(1));
    let summary = netfence(&[&base[..], &["--summary", "-o", "json"]].concat(), None);
    let stdout = String::from_utf8_lossy(&summary.stdout);
    assert!(
        stdout.starts_with("records read: 5\nparsed: 4\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("mismatches by workload"));
}

#[test]
fn gzip_directories_and_stdin_are_inputs() {
    let dir = Dir::new("gz");
    let (head, tail) = VPC.split_at(VPC.find("\n2 ").unwrap() + 1);
    // A directory: a gzip part, a plain part in a subdirectory, and a hidden file that is
    // not read.
    dir.write("logs/a.log.gz", &gzip(VPC.as_bytes()));
    dir.write("logs/sub/b.log", format!("{head}{tail}").as_bytes());
    dir.write("logs/.hidden", b"garbage\n");
    // A link to a directory is not entered (a link to its own parent would loop).
    std::os::unix::fs::symlink(dir.0.join("logs"), dir.0.join("logs/sub/loop")).unwrap();
    let logs = dir.0.join("logs").display().to_string();
    let output = vpc_json(&dir, &logs, None);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(json_lines(&output).len(), 6);
    // stdin, gzipped; and a pipe by its path (as `--vpc <(zcat …)` hands it), which cannot
    // seek.
    for stdin in ["-", "/dev/stdin"] {
        let output = vpc_json(&dir, stdin, Some(&gzip(VPC.as_bytes())));
        assert_eq!(output.status.code(), Some(0), "{stdin}: {output:?}");
        assert_eq!(json_lines(&output).len(), 3, "{stdin}");
    }
}

#[test]
fn hubble_and_network_policy_agent_inputs() {
    let dir = Dir::new("sources");
    let hubble = dir.write(
        "hubble.json",
        br#"{"flow":{"time":"2024-01-01T00:00:00Z","verdict":"DROPPED","drop_reason_desc":"POLICY_DENIED","IP":{"source":"10.0.0.10","destination":"10.0.0.20"},"l4":{"TCP":{"source_port":40000,"destination_port":8080}},"is_reply":false},"node_name":"n1","time":"2024-01-01T00:00:00Z"}
"#,
    );
    let output = netfence(
        &[
            "flows",
            "check",
            "-f",
            &dir.cluster(),
            "--hubble",
            &hubble,
            "-o",
            "json",
        ],
        None,
    );
    let rows = json_lines(&output);
    assert_eq!(rows[0]["observed"], "deny");
    assert_eq!(rows[0]["policy"], "allow");
    assert_eq!(rows[0]["mismatch"], true);
    let npa = dir.write(
        "npa.log",
        b"2024-01-01T00:00:00Z Node: ip-10-0-0-1;SIP: 10.0.1.30;SPORT: 40001;DIP: 10.0.0.20;DPORT: 8080;PROTOCOL: TCP;PolicyVerdict: DENY\n",
    );
    let output = netfence(
        &[
            "flows",
            "check",
            "-f",
            &dir.cluster(),
            "--npa",
            &npa,
            "-o",
            "csv",
            "--fail-on-mismatch",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "time,src,dst,protocol,port,observed,policy,decided_by,mismatch\n\
         2024-01-01T00:00:00Z,jobs/batch,shop/api,TCP,8080,deny,deny,NetworkPolicy shop/default-deny,false\n"
    );
}

#[test]
fn pods_history_resolves_a_reused_address_by_time() {
    let dir = Dir::new("history");
    let history = dir.write(
        "history.jsonl",
        br#"{"ip": "10.9.9.9", "pod": "jobs/batch", "from": "2023-11-14T00:00:00Z", "to": "2023-11-14T22:00:00Z"}
{"ip": "10.9.9.9", "pod": "shop/web", "from": "2023-11-14T22:00:00Z", "to": null}
"#,
    );
    let vpc = dir.write(
        "vpc.log",
        b"2 1 eni-1 10.9.9.9 10.0.0.20 40000 8080 6 1 1 1699995000 1699995060 ACCEPT OK\n\
          2 1 eni-1 10.9.9.9 10.0.0.20 40000 8080 6 1 1 1700000000 1700000060 ACCEPT OK\n",
    );
    let output = netfence(
        &[
            "flows",
            "check",
            "-f",
            &dir.cluster(),
            "--vpc",
            &vpc,
            "--pods-history",
            &history,
            "-o",
            "json",
        ],
        None,
    );
    let rows = json_lines(&output);
    assert_eq!(rows[0]["src"], "jobs/batch");
    assert_eq!(rows[0]["mismatch"], true);
    assert_eq!(rows[1]["src"], "shop/web");
    assert_eq!(rows[1]["mismatch"], false);
    let bad = dir.write("bad.jsonl", b"{\"ip\": \"x\"}\n");
    let output = netfence(
        &[
            "flows",
            "check",
            "-f",
            &dir.cluster(),
            "--vpc",
            &vpc,
            "--pods-history",
            &bad,
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("error: --pods-history"));
}

#[test]
fn empty_and_garbage_inputs_exit_2() {
    let dir = Dir::new("bad");
    let empty = dir.write("empty.log", b"");
    let garbage = dir.write("garbage.log", b"hello\nworld\n");
    for (flag, path) in [
        ("--vpc", &empty),
        ("--vpc", &garbage),
        ("--hubble", &garbage),
    ] {
        let output = netfence(&["flows", "check", "-f", &dir.cluster(), flag, path], None);
        assert_eq!(output.status.code(), Some(2), "{flag} {path}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("error: "), "{stderr}");
    }
    // Malformed lines are reported with file and line.
    let output = netfence(
        &["flows", "check", "-f", &dir.cluster(), "--vpc", &garbage],
        None,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("garbage.log:2: malformed"), "{stderr}");
    // A bad --vpc-format, and no source at all.
    let output = netfence(
        &[
            "flows",
            "check",
            "-f",
            &dir.cluster(),
            "--vpc",
            &garbage,
            "--vpc-format",
            "${nope}",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("\"${nope}\""));
    let output = netfence(&["flows", "check", "-f", &dir.cluster()], None);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn security_groups_explain_vpc_rejects() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/flows");
    let file = |name: &str| format!("{examples}/{name}");
    let base = [
        "flows",
        "check",
        "-f",
        &file("cluster.yaml"),
        "-f",
        &file("security-groups.yaml"),
        "--vpc",
        &file("vpc-sg.log"),
        "--fail-on-mismatch",
    ];
    // Without the groups, batch's REJECT to 203.0.113.7:5432 contradicts the policies.
    let without = netfence(&base, None);
    assert_eq!(without.status.code(), Some(1));
    let groups = file("security-groups.json");
    let with = netfence(
        &[&base[..], &["--aws-security-groups", &groups, "-o", "json"]].concat(),
        None,
    );
    assert_eq!(with.status.code(), Some(0), "{with:?}");
    let rows = json_lines(&with);
    assert_eq!(rows[2]["dst"], "203.0.113.7");
    assert_eq!(rows[2]["policy"], "deny");
    assert_eq!(
        rows[2]["decided_by"],
        "SecurityGroup sg-0bbbbbbbbbbbbbbbb (outbound)"
    );
    let text = netfence(
        &[&base[..], &["--aws-security-groups", &groups]].concat(),
        None,
    );
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("denied by security groups: 2\n"),
        "{stdout}"
    );
    // A group chosen on the command line that the file lacks is bad input, named.
    let missing = netfence(
        &[
            &base[..],
            &[
                "--aws-security-groups",
                &groups,
                "--node-security-group",
                "sg-0123abcd",
            ],
        ]
        .concat(),
        None,
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr)
        .contains("--node-security-group sg-0123abcd: no such group"));
}

/// `netfence lab --record-flows` end to end on one upstream case: the kernel's flows, in both
/// formats, check clean against the lab's own policies and mismatch without them. Needs root,
/// as every lab test (the full round trip on every case is in the dataplane's lab test).
#[test]
fn lab_records_flows_that_check_clean_against_its_policies() {
    assert!(
        netfence_dataplane::running_as_root(),
        "the lab needs root (network namespaces and nftables); run it as root, as CI does"
    );
    let dir = Dir::new("lab");
    let conformance = netfence_conformance::k8s_e2e_cases();
    let case = conformance
        .iter()
        .find(|c| c.file.starts_with("014-"))
        .expect("the ports case");
    let inventory = dir.write("inventory.yaml", case.inventory.as_bytes());
    let policies = dir.write("policies.yaml", case.policies.as_bytes());
    let record = dir.0.join("flows.json").display().to_string();
    let lab = netfence(
        &[
            "lab",
            "-f",
            &inventory,
            "-f",
            &policies,
            "--ports",
            "TCP/80,TCP/81,UDP/80",
            "--record-flows",
            &record,
        ],
        None,
    );
    assert_eq!(lab.status.code(), Some(0), "{lab:?}");
    let vpc = format!("{record}.vpc");
    for (flag, path) in [("--hubble", &record), ("--vpc", &vpc)] {
        let same = netfence(
            &[
                "flows",
                "check",
                "-f",
                &inventory,
                "-f",
                &policies,
                flag,
                path,
                "--fail-on-mismatch",
            ],
            None,
        );
        let stdout = String::from_utf8_lossy(&same.stdout);
        assert_eq!(same.status.code(), Some(0), "{flag}: {stdout}");
        // 9 pods, 72 ordered pairs, 3 ports: every probe is one judged connection.
        assert!(stdout.contains("judged: 216\n"), "{flag}: {stdout}");
        assert!(stdout.contains("mismatches: 0\n"), "{stdout}");
        let unpoliced = netfence(&["flows", "check", "-f", &inventory, flag, path], None);
        let stdout = String::from_utf8_lossy(&unpoliced.stdout);
        assert!(
            stdout.contains("observed deny, policy allow (no policy)"),
            "{stdout}"
        );
    }
}

/// Every row of the Parquet dataset under `dir`, as pyarrow reads it (Hive partitions),
/// one line each, sorted; and the files, relative to `dir`, sorted.
fn parquet_rows(dir: &std::path::Path) -> (Vec<String>, Vec<String>) {
    let script = format!(
        "import pyarrow.dataset as ds
t = ds.dataset({dir:?}, format='parquet', partitioning='hive').to_table()
for r in t.to_pylist():
    print(sorted(r.items()))
",
        dir = dir.display().to_string()
    );
    let output = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 (scripts/test installs pyarrow)");
    assert!(
        output.status.success(),
        "pyarrow: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut rows: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(String::from)
        .collect();
    rows.sort();
    let files = common::files_under(dir)
        .iter()
        .map(|path| path.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    (rows, files)
}

/// `-o parquet` over several files writes on every core, each thread its own file of each
/// partition (`flows-0.parquet`, `flows-1.parquet`): the same rows as one thread, and the
/// same summary and mismatch groups on stdout.
#[test]
fn parquet_from_several_files_is_written_on_every_thread() {
    let dir = Dir::new("parquet-threads");
    for file in 0..6u32 {
        let mut text = String::new();
        for line in 0..40u32 {
            // Two hours in every file, so that both threads write to both partitions.
            let start = 1_700_000_000 + (line % 2) * 3600 + file;
            text.push_str(&format!(
                "2 1 eni-1 10.0.1.30 10.0.0.20 {} {} 6 1 1 {start} {} ACCEPT OK\n",
                40000 + line,
                8080 + line % 3,
                start + 60,
            ));
            text.push_str(VPC.lines().nth((line % 5) as usize).unwrap());
            text.push('\n');
        }
        dir.write(&format!("logs/part-{file}.log"), text.as_bytes());
    }
    let logs = dir.0.join("logs").display().to_string();
    let cluster = dir.cluster();
    // `-o parquet` of `input` into `out` on `threads` threads: its stdout (exit 0).
    let check = |threads: &str, input: &str, out: &std::path::Path| {
        let out_text = out.display().to_string();
        let args = [
            "flows",
            "check",
            "-f",
            &cluster,
            "--vpc",
            input,
            "-o",
            "parquet",
            "--output-dir",
            &out_text,
        ];
        let (code, stdout, stderr) = on_threads(threads, &args);
        assert_eq!(code, Some(0), "{stderr}");
        stdout
    };
    let mut outputs = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.0.join(format!("out-{threads}"));
        let stdout = check(threads, &logs, &out);
        assert!(stdout.contains("mismatches by workload"), "{stdout}");
        let (rows, files) = parquet_rows(&out);
        outputs.push((stdout, rows, files));
    }
    let [(one_text, one_rows, one_files), (two_text, two_rows, two_files)] = &outputs[..] else {
        unreachable!()
    };
    assert_eq!(one_text, two_text);
    // Every generated record is a judged flow and a row; of `VPC`'s lines, replies and the
    // NODATA record are not.
    assert!(
        (6 * 40..6 * 80).contains(&one_rows.len()),
        "{} rows",
        one_rows.len()
    );
    assert_eq!(one_rows, two_rows);
    assert!(
        one_files.iter().all(|f| f.ends_with("/flows-0.parquet")),
        "{one_files:?}"
    );
    for number in ["flows-0", "flows-1"] {
        assert!(
            two_files
                .iter()
                .any(|f| f.ends_with(&format!("/{number}.parquet"))),
            "{two_files:?}"
        );
    }
    // One input: on two threads its rows are encoded on the second; the same files, byte
    // for byte, and the same text.
    let one_file = dir.0.join("logs/part-3.log").display().to_string();
    let mut single = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.0.join(format!("single-{threads}"));
        let stdout = check(threads, &one_file, &out);
        let mut files: Vec<(String, Vec<u8>)> = parquet_rows(&out)
            .1
            .iter()
            .map(|f| (f.clone(), std::fs::read(out.join(f)).unwrap()))
            .collect();
        files.sort();
        single.push((stdout, files));
    }
    assert_eq!(single[0].1.len(), 2, "two hours");
    assert!(single[0] == single[1], "one input on two threads differs");
}

/// Several files are checked on every core; the output does not depend on it: the same
/// summary, mismatch groups (the lowest ten ports of a group) and warnings
/// (the first malformed lines in reading order) as one thread reading the files in turn.
#[test]
fn several_files_on_several_threads_give_the_one_thread_output() {
    let dir = Dir::new("threads");
    let mut paths = Vec::new();
    let mut texts = Vec::new();
    for file in 0..12u16 {
        let mut text = String::new();
        for line in 0..50u16 {
            // jobs/batch -> shop/api is denied by policy and observed allowed: one group
            // whose ports, in reading order, are not in sorted order.
            let port = 9000 - file * 7 - line % 3;
            text.push_str(&format!(
                "2 1 eni-1 10.0.1.30 10.0.0.20 {} {port} 6 1 1 {} 1700000060 ACCEPT OK\n",
                40000 + line,
                1_700_000_000 + u32::from(line)
            ));
            text.push_str(VPC.lines().nth(usize::from(line % 5)).unwrap());
            text.push('\n');
            if line % 17 == file % 5 {
                text.push_str("2 1 eni-1 not-an-address 10.0.0.20 1 2 6 1 1 1 2 ACCEPT OK\n");
            }
        }
        let name = format!("logs/{}/part-{file:02}.log", file % 3);
        texts.push((name.clone(), text.clone()));
        if file % 4 == 0 {
            paths.push(dir.write(&format!("{name}.gz"), &gzip(text.as_bytes())));
        } else {
            paths.push(dir.write(&name, text.as_bytes()));
        }
    }
    let logs = dir.0.join("logs").display().to_string();
    let cluster = dir.cluster();
    let run = |threads: &str, inputs: &[&str], extra: &[&str]| {
        let mut args = vec!["flows", "check", "-f", &cluster[..]];
        args.push("--vpc");
        args.extend_from_slice(inputs);
        args.extend_from_slice(extra);
        on_threads(threads, &args)
    };
    // The text and summary are counted on every thread; JSON and CSV rows are judged on
    // one and written by the others, in reading order.
    let outputs = [
        &[][..],
        &["--summary"][..],
        &["-o", "json"][..],
        &["-o", "csv"][..],
    ];
    for extra in outputs {
        let one = run("1", &[&logs], extra);
        assert_eq!(one.0, Some(0), "{}", one.2);
        assert!(
            one.1.contains("mismatches by workload") || !extra.is_empty(),
            "{}",
            one.1
        );
        assert!(one.2.matches("warning").count() == 5, "{}", one.2);
        if extra.is_empty() {
            // jobs/batch -> shop/api came on 37 ports (36 above, and 8080 in `VPC`): its
            // group shows the lowest ten, and that there were more.
            let mut ports: Vec<u16> = (0..12u16)
                .flat_map(|file| (0..3u16).map(move |k| 9000 - file * 7 - k))
                .chain([8080])
                .collect();
            ports.sort_unstable();
            ports.dedup();
            assert_eq!(ports.len(), 37);
            let shown: Vec<String> = ports[..10].iter().map(|p| format!("TCP/{p}")).collect();
            let line = format!(
                "  jobs/batch -> shop/api {},...: observed allow, policy deny",
                shown.join(",")
            );
            assert!(one.1.contains(&line), "{line}\n{}", one.1);
        }
        for threads in ["2", "3"] {
            assert_eq!(run(threads, &[&logs], extra), one, "{threads} threads");
        }
        // The same files named one by one (and the directory twice) read alike too.
        let each: Vec<&str> = {
            let mut sorted: Vec<&str> = paths.iter().map(String::as_str).collect();
            sorted.sort();
            sorted
        };
        assert_eq!(run("2", &each, extra), run("1", &each, extra));
        assert_eq!(
            run("2", &[&logs, &logs], extra),
            run("1", &[&logs, &logs], extra)
        );
    }
    // One file holding them all in reading order: the same summary and groups (only the
    // warnings' file names and line numbers differ), so merging per-file counts is exact.
    texts.sort();
    let all: String = texts.into_iter().map(|(_, text)| text).collect();
    let all = dir.write("all.log", all.as_bytes());
    let (merged, single) = (run("2", &[&logs], &[]), run("1", &[&all], &[]));
    assert_eq!((merged.0, &merged.1), (single.0, &single.1));
    // A missing path after readable ones: the same error either way.
    let missing = dir.0.join("missing").display().to_string();
    let (code, _, stderr) = run("2", &[&logs, &missing], &[]);
    assert_eq!(code, Some(2));
    assert_eq!((code, stderr.clone()), {
        let (c, _, e) = run("1", &[&logs, &missing], &[]);
        (c, e)
    });
    assert!(stderr.contains("missing"), "{stderr}");
}

/// The text output's mismatch groups: by source and destination (workload or address),
/// deciding policy ("no policy" when none) and what was observed; most flows first, then in
/// the order of their text; a group's ports sorted. Two files read on two threads, so the
/// groups of each (their workload, address and policy indices) merge by text.
#[test]
fn mismatch_groups_sort_by_count_then_text_across_files() {
    let dir = Dir::new("groups");
    let header = VPC.lines().next().unwrap();
    let record = |src: &str, dst: &str, port: u16, action: &str| {
        format!("2 1 eni-1 {src} {dst} 40000 {port} 6 1 1 1700000000 1700000060 {action} OK\n")
    };
    let first = [
        header.to_string() + "\n",
        record("10.0.1.30", "10.0.0.20", 8081, "ACCEPT"),
        record("10.0.0.20", "10.0.1.30", 9000, "REJECT"),
        record("10.0.1.30", "10.0.0.20", 8080, "ACCEPT"),
    ]
    .concat();
    let second = [
        header.to_string() + "\n",
        record("10.0.1.30", "192.0.2.8", 443, "REJECT"),
        record("192.0.2.7", "10.0.0.20", 8080, "ACCEPT"),
        record("10.0.1.30", "10.0.0.20", 80, "ACCEPT"),
        // Allowed and accepted: no mismatch.
        record("10.0.0.10", "10.0.0.20", 8080, "ACCEPT"),
    ]
    .concat();
    let a = dir.write("a.log", first.as_bytes());
    let b = dir.write("b.log", second.as_bytes());
    let output = Command::new(env!("CARGO_BIN_EXE_netfence"))
        .args(["flows", "check", "-f", &dir.cluster(), "--vpc", &a, &b])
        .env("NETFENCE_THREADS", "2")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let groups: Vec<&str> = stdout
        .split("mismatches by workload:\n")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .collect();
    assert_eq!(
        groups,
        [
            "  jobs/batch -> shop/api TCP/80,TCP/8080,TCP/8081: observed allow, policy deny (NetworkPolicy shop/default-deny): 3 flow(s)",
            "  192.0.2.7 -> shop/api TCP/8080: observed allow, policy deny (NetworkPolicy shop/default-deny): 1 flow(s)",
            "  jobs/batch -> 192.0.2.8 TCP/443: observed deny, policy allow (no policy): 1 flow(s)",
            "  shop/api -> jobs/batch TCP/9000: observed deny, policy allow (no policy): 1 flow(s)",
        ],
        "{stdout}"
    );
}

/// An input cut short (a `.gz` whose download stopped) or missing stops that input only:
/// its records before the cut and every other input are checked and reported, the failures
/// are errors on stderr, and the exit is 2 (with `--fail-on-mismatch` too). The same on one
/// thread or two, for the text report and for rows.
#[test]
fn an_input_cut_short_stops_that_input_only() {
    let dir = Dir::new("cut");
    let lines = |from: u32, count: u32| -> String {
        (from..from + count)
            .map(|n| {
                format!(
                    "2 1 eni-1 10.0.1.30 10.0.0.20 {} 8080 6 1 40 {} 1700000060 ACCEPT OK\n",
                    10_000 + n % 50_000,
                    1_700_000_000 + n
                )
            })
            .collect()
    };
    dir.write("logs/a.log", lines(0, 100).as_bytes());
    let whole = gzip(lines(100, 40_000).as_bytes());
    dir.write("logs/b.log.gz", &whole[..whole.len() * 3 / 5]);
    dir.write("logs/c.log", lines(50_000, 7).as_bytes());
    let logs = dir.0.join("logs").display().to_string();
    let missing = dir.0.join("missing.log").display().to_string();
    let cluster = dir.cluster();
    let run = |threads: &str, extra: &[&str]| {
        let mut args = vec![
            "flows",
            "check",
            "-f",
            &cluster[..],
            "--vpc",
            &logs,
            &missing,
        ];
        args.extend_from_slice(extra);
        on_threads(threads, &args)
    };
    let (code, stdout, stderr) = run("1", &[]);
    assert_eq!(code, Some(2), "{stderr}");
    // The cut file's error names how far it was read; the missing path's comes after it,
    // in reading order.
    let cut = format!(
        "error: --vpc {}: after line ",
        dir.0.join("logs/b.log.gz").display()
    );
    let before: u64 = stderr
        .split(&cut)
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(before > 0 && before < 40_000, "{stderr}");
    assert!(
        stderr.find(&cut) < stderr.find(&format!("error: --vpc {missing}: ")),
        "{stderr}"
    );
    // Every record of the other files, and those of the cut one before the cut.
    let read = 100 + before + 7;
    assert!(
        stdout.contains(&format!("records read: {read}\n")),
        "{stdout}"
    );
    assert!(stdout.contains("mismatches by workload"), "{stdout}");
    assert_eq!(run("2", &[]), (code, stdout, stderr.clone()));
    assert_eq!(run("2", &["--fail-on-mismatch"]).0, Some(2));
    // Rows: one per record read, and the same errors; on two and three threads (one and
    // two writing threads, taking about 24 batches of rows in turn) the same rows.
    for output in ["json", "csv"] {
        let (code, rows, row_errors) = run("1", &["-o", output]);
        let header = u64::from(output == "csv");
        assert_eq!(
            (code, rows.lines().count() as u64),
            (Some(2), read + header)
        );
        assert_eq!(row_errors, stderr);
        for threads in ["2", "3"] {
            assert!(
                run(threads, &["-o", output]) == (code, rows.clone(), row_errors.clone()),
                "{output} on {threads} threads"
            );
        }
    }
}

/// Rows written to a pipe whose reader has gone (`netfence … | head -1`) end the check with
/// exit 0 and nothing on stderr, on one thread and when other threads write the rows.
#[test]
fn rows_to_a_closed_pipe_end_the_check_quietly() {
    use std::io::BufRead;
    let dir = Dir::new("closed");
    let log: String = (0..100_000u32)
        .map(|n| {
            format!(
                "2 1 eni-1 10.0.1.30 10.0.0.20 {} 8080 6 1 40 {} 1700000060 ACCEPT OK\n",
                10_000 + n % 50_000,
                1_700_000_000 + n
            )
        })
        .collect();
    let log = dir.write("big.log", log.as_bytes());
    for threads in ["1", "2", "3"] {
        for output in ["json", "csv"] {
            let mut child = Command::new(env!("CARGO_BIN_EXE_netfence"))
                .args([
                    "flows",
                    "check",
                    "-f",
                    &dir.cluster(),
                    "--vpc",
                    &log,
                    "-o",
                    output,
                ])
                .env("NETFENCE_THREADS", threads)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // The first row (after CSV's header).
            let mut rows = std::io::BufReader::new(child.stdout.take().unwrap());
            let mut first = String::new();
            for _ in 0..=usize::from(output == "csv") {
                first.clear();
                rows.read_line(&mut first).unwrap();
            }
            assert!(first.contains("shop/api"), "{first}");
            drop(rows);
            // The reader is gone: the pipe is closed with about 100,000 rows unread.
            let output = child.wait_with_output().unwrap();
            assert_eq!(
                (
                    output.status.code(),
                    String::from_utf8_lossy(&output.stderr).as_ref()
                ),
                (Some(0), ""),
                "{threads} threads"
            );
        }
    }
}
