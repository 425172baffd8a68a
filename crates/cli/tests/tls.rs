//! `netfence tls` end to end on captures built byte by byte (`netfence_tls::synth`): the JSON
//! Lines keys of shared/DESIGN.md, `--fail-on-plaintext`, bad input, and `-f`: pods named and
//! NF-WIRE findings in the audit's JSON and SARIF. (Captures of real exchanges, checked
//! against tshark, are `crates/tls/tests/wire.rs`.)

use netfence_tls::synth::{self, Conversation, PcapWriter};
use std::path::PathBuf;
use std::process::{Command, Output};

fn netfence(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netfence"))
        .args(args)
        .output()
        .unwrap()
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Dir {
    fn new(tag: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("netfence-tls-cli-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }
}

/// An HTTP/1.1 exchange to 10.0.0.5:8080 and a TLS 1.3 one to 10.0.0.6:443.
fn capture() -> Vec<u8> {
    let mut http = Conversation::open(
        "10.0.0.9:40000".parse().unwrap(),
        "10.0.0.5:8080".parse().unwrap(),
        [1, 2],
    );
    http.send(0, b"GET / HTTP/1.1\r\nHost: web\r\n\r\n", 1448);
    http.send(1, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1448);
    http.close();
    let tls = synth::tls13_conversation(
        "10.0.0.9:40001".parse().unwrap(),
        "10.0.0.6:443".parse().unwrap(),
        "api.shop.test",
        60,
        100,
    );
    let mut writer = PcapWriter::new(Vec::new(), 1).unwrap();
    for (index, (_, frame)) in http.frames.iter().chain(&tls.frames).enumerate() {
        writer
            .packet(1_700_000_000.0 + index as f64 * 0.01, frame)
            .unwrap();
    }
    writer.into_inner()
}

const CLUSTER: &str = "\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: STRICT}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: c}]}
status: {podIP: 10.0.0.5}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop}
spec: {containers: [{name: c}]}
status: {podIP: 10.0.0.9}
";

#[test]
fn json_lines_have_the_contract_keys_and_plaintext_fails_on_request() {
    let dir = Dir::new("json");
    let pcap = dir.write("a.pcap", &capture());
    let output = netfence(&["tls", &pcap, "-o", "json"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for key in [
        "client",
        "server",
        "class",
        "version",
        "sni",
        "alpn",
        "cipher",
        "client_certificate",
        "ja4",
        "packets",
        "bytes",
    ] {
        assert!(
            lines.iter().all(|l| l.get(key).is_some()),
            "{key} missing: {lines:?}"
        );
    }
    let http = &lines[0];
    assert_eq!(http["class"], "plaintext");
    assert_eq!(http["protocol"], "http/1.x");
    assert_eq!(http["server"], "10.0.0.5:8080");
    assert_eq!(http["version"], serde_json::Value::Null);
    let tls = &lines[1];
    assert_eq!(tls["class"], "tls");
    assert_eq!(tls["version"], "TLS1.3");
    assert_eq!(tls["cipher"], "TLS_AES_128_GCM_SHA256");
    assert_eq!(tls["sni"], "api.shop.test");
    assert_eq!(tls["alpn"], serde_json::json!(["h2", "http/1.1"]));
    assert!(
        tls["ja4"].as_str().unwrap().starts_with("t13d0304h2_"),
        "{tls}"
    );
    assert_eq!(tls["client_certificate"], serde_json::Value::Null);
    // No -f: no pod keys.
    assert!(tls.get("client_pod").is_none());

    let failing = netfence(&["tls", &pcap, "--fail-on-plaintext"]);
    assert_eq!(failing.status.code(), Some(1));
    let text = String::from_utf8(failing.stdout).unwrap();
    assert!(
        text.contains("2 connections: 1 plaintext, 1 tls, 0 mtls, 0 mtls-inferred, 0 unknown"),
        "{text}"
    );
}

#[test]
fn a_capture_on_stdin_is_read_as_a_stream() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_netfence"))
        .args(["tls", "-", "-o", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&capture()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains(r#""class":"plaintext""#) && text.contains(r#""class":"tls""#),
        "{text}"
    );
}

#[test]
fn bad_captures_exit_2_naming_the_file() {
    let dir = Dir::new("bad");
    let garbage = dir.write("garbage.pcap", b"this is not a capture at all, just text");
    let output = netfence(&["tls", &garbage]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(&format!("error: {garbage}: not a pcap or pcapng capture")),
        "{stderr}"
    );
    let good = capture();
    let cut = dir.write("cut.pcap", &good[..good.len() - 7]);
    let output = netfence(&["tls", &cut, "-o", "json"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(&format!("error: {cut}: truncated: record ")),
        "{stderr}"
    );
    let missing = netfence(&["tls", "/nonexistent.pcap"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn with_the_cluster_pods_are_named_and_plaintext_under_strict_is_a_finding() {
    let dir = Dir::new("cluster");
    let pcap = dir.write("a.pcap", &capture());
    let cluster = dir.write("cluster.yaml", CLUSTER.as_bytes());
    let sarif = dir.0.join("findings.sarif").display().to_string();
    let output = netfence(&[
        "tls",
        &pcap,
        "-f",
        &cluster,
        "-o",
        "json",
        "--findings",
        &sarif,
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["client_pod"], "shop/client");
    assert_eq!(lines[0]["server_pod"], "shop/web");
    assert_eq!(lines[1]["server_pod"], serde_json::Value::Null);
    let sarif: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
    // The official SARIF 2.1.0 schema (vendored for tests/cli.rs) accepts it.
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("data/sarif-schema-2.1.0.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&sarif), "{sarif:#}");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{sarif:#}");
    assert_eq!(results[0]["ruleId"], "NF-WIRE-001");
    let text = netfence(&["tls", &pcap, "-f", &cluster]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("shop/web:8080"), "{text}");
    assert!(text.contains("NF-WIRE-001"), "{text}");
}

/// The README's "Verify encryption" output is what the example capture (a real one, from the
/// namespace lab) gives, except the time taken.
#[test]
fn the_readme_example_is_what_the_example_capture_gives() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let command = "$ netfence tls examples/tls/lab.pcap -f examples/tls/cluster.yaml --fail-on-plaintext; echo exit $?\n";
    let start = readme.find(command).expect("the README example") + command.len();
    let shown: Vec<&str> = readme[start..]
        .lines()
        .take_while(|l| !l.starts_with("exit "))
        .filter(|l| !l.contains(" file(s), "))
        .collect();
    let output = Command::new(env!("CARGO_BIN_EXE_netfence"))
        .args([
            "tls",
            "examples/tls/lab.pcap",
            "-f",
            "examples/tls/cluster.yaml",
            "--fail-on-plaintext",
        ])
        .current_dir(root)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let actual: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.contains(" file(s), "))
        .collect();
    assert_eq!(shown, actual);
}
