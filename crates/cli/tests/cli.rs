//! End-to-end tests of the `netfence` binary: the CLI contract of shared/DESIGN.md.

mod common;

use common::Scratch;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn netfence(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netfence"))
        .args(args)
        .output()
        .expect("run netfence")
}

/// `netfence args…` under a time and an address-space limit (coreutils `timeout`, the shell's
/// `ulimit -v`): hostile input must end the process in time, in bounded memory, with no
/// crash. Fails the test on a timeout.
fn netfence_limited(args: &[&str], seconds: u32, megabytes: u64) -> Output {
    let output = Command::new("timeout")
        .args(["-s", "KILL", &format!("{seconds}s"), "sh", "-c"])
        .arg(format!(
            "ulimit -v {}; exec \"$0\" \"$@\"",
            megabytes * 1024
        ))
        .arg(env!("CARGO_BIN_EXE_netfence"))
        .args(args)
        .output()
        .expect("run netfence under timeout");
    assert!(
        !matches!(output.status.code(), Some(124 | 137) | None),
        "netfence {:.80?} did not finish within {seconds} s in {megabytes} MB: {:?}\n{}",
        args.join(" "),
        output.status,
        stderr(&output)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The k8s-e2e cases, found as every conformance harness finds them (`NETFENCE_CONFORMANCE`
/// or `shared/conformance` beside the repository).
fn e2e_dir() -> PathBuf {
    let dir = netfence_conformance::conformance_dir().join("k8s-e2e");
    assert!(dir.is_dir(), "missing {}", dir.display());
    dir
}

/// Write a k8s-e2e case's policies to a temporary file and return it.
fn case_policies(case: &str) -> Scratch {
    let text = std::fs::read_to_string(e2e_dir().join(case)).expect("case");
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("case yaml");
    let policies = value["policies"].as_str().expect("policies").to_string();
    Scratch::file("cli", case, &policies)
}

fn temp_file(name: &str, text: &str) -> Scratch {
    Scratch::file("cli", name, text)
}

/// `netfence demo --export` into a fresh temporary directory named after `tag`.
fn demo_cluster(tag: &str) -> Scratch {
    let dir = Scratch::path("cli", tag);
    assert!(netfence(&["demo", "--export", dir.to_str().unwrap()])
        .status
        .success());
    dir
}

/// `netfence matrix` on the e2e inventory with the policies of case 001 (default deny ingress
/// in x), and `args`; it must succeed.
fn matrix_of_e2e_case_001(args: &[&str]) -> Output {
    let inventory = e2e_dir().join("inventory.yaml");
    let policies = case_policies("001-default-deny-ingress.yaml");
    let mut all = vec![
        "matrix",
        "-f",
        inventory.to_str().unwrap(),
        "-f",
        policies.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let out = netfence(&all);
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

#[test]
fn matrix_json_follows_the_contract() {
    let out = matrix_of_e2e_case_001(&["--ports", "TCP/80,UDP/80", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["allowed", "endpoints", "ports"]);
    assert_eq!(json["ports"], serde_json::json!(["TCP/80", "UDP/80"]));
    assert_eq!(json["endpoints"].as_array().unwrap().len(), 9);
    let pairs = json["allowed"]["TCP/80"].as_array().unwrap();
    // default-deny-ingress in x: nothing reaches x/*, everything else is open (9*8 - 3*8 = 48).
    assert_eq!(pairs.len(), 48);
    assert!(pairs
        .iter()
        .all(|p| !p[1].as_str().unwrap().starts_with("x/")));
    assert!(pairs.iter().all(|p| p[0] != p[1]), "self pairs are omitted");
    assert!(pairs.contains(&serde_json::json!(["x/a", "y/b"])));
}

#[test]
fn matrix_grid_is_the_e2e_format() {
    let out = matrix_of_e2e_case_001(&["--ports", "TCP/80"]);
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("TCP/80:"));
    assert_eq!(
        lines.next(),
        Some("-   x/a x/b x/c y/a y/b y/c z/a z/b z/c")
    );
    assert_eq!(lines.next(), Some("x/a  .   X   X   .   .   .   .   .   ."));
    assert_eq!(lines.last(), Some("z/c  X   X   X   .   .   .   .   .   ."));
}

#[test]
fn query_explains_both_directions_with_exit_codes() {
    let dir = demo_cluster("demo");
    let dir = dir.to_str().unwrap();

    let denied = netfence(&[
        "query",
        "-f",
        dir,
        "--from",
        "shop-frontend/web-0",
        "--to",
        "shop-db/postgres-0",
        "--port",
        "TCP/5432",
    ]);
    assert_eq!(denied.status.code(), Some(1));
    let text = stdout(&denied);
    assert!(
        text.starts_with("shop-frontend/web-0 -> shop-db/postgres-0 TCP/5432: DENY"),
        "{text}"
    );
    assert!(
        text.contains("egress  at shop-frontend/web-0: denied"),
        "{text}"
    );
    assert!(
        text.contains("ingress at shop-db/postgres-0: denied"),
        "{text}"
    );

    let allowed = netfence(&[
        "query",
        "-f",
        dir,
        "--from",
        "shop-backend/api",
        "--to",
        "shop-db/postgres-0",
        "--port",
        "TCP/5432",
        "-o",
        "json",
    ]);
    assert_eq!(allowed.status.code(), Some(0), "{}", stderr(&allowed));
    let json: serde_json::Value = serde_json::from_slice(&allowed.stdout).expect("json");
    assert_eq!(json["verdict"], "allow");
    assert_eq!(
        json["egress"]["outcome"]["rule"]["policy"],
        "shop-backend/api"
    );
    assert_eq!(
        json["ingress"]["outcome"]["rule"]["policy"],
        "shop-db/postgres"
    );
    assert_eq!(json["ingress"]["outcome"]["rule"]["rule"], 0);

    // External source by address, DNS egress of the guide's allow-dns-access (UDP only).
    let dns_tcp = netfence(&[
        "query",
        "-f",
        dir,
        "--from",
        "default/nginx-0",
        "--to",
        "kube-system/coredns-0",
        "--port",
        "TCP/53",
        "-o",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&dns_tcp.stdout).expect("json");
    assert_eq!(json["verdict"], "deny");
    assert_eq!(json["egress"]["outcome"]["reason"], "end-of-tier");
    let from_internet = netfence(&[
        "query",
        "-f",
        dir,
        "--from",
        "203.0.113.9",
        "--to",
        "default/nginx-0",
        "--port",
        "TCP/80",
    ]);
    assert_eq!(
        from_internet.status.code(),
        Some(0),
        "{}",
        stdout(&from_internet)
    );
}

#[test]
fn bad_input_names_file_document_object_and_field() {
    let bad = temp_file(
        "bad.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: ok}\nspec:\n  podSelector: {}\n  ingress:\n  - ports:\n    - port: 80\n      endPort: 70\n",
    );
    let out = netfence(&["list", "-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(
            "bad.yaml: document 2 (line 5): NetworkPolicy ok/p: spec.ingress[0].ports[0].endPort"
        ),
        "{err}"
    );

    let malformed = temp_file("malformed.yaml", "kind: [\n");
    let out = netfence(&["matrix", "-f", malformed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("malformed YAML"), "{}", stderr(&out));

    let missing = netfence(&["list", "-f", "/nonexistent/netfence.yaml"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn unknown_kinds_are_skipped_and_counted() {
    let file = temp_file(
        "kinds.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n",
    );
    let out = netfence(&["list", "-f", file.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("skipped 2 object(s)"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("v1/ConfigMap ×2"), "{}", stderr(&out));
}

#[test]
fn list_formats_agree() {
    let out = netfence(&["demo"]);
    assert!(out.status.success());
    let dir = demo_cluster("list");
    let dir = dir.to_str().unwrap();
    let txt = stdout(&netfence(&["list", "-f", dir]));
    assert!(
        txt.contains("shop-backend/api[Deployment] => shop-db/postgres[StatefulSet] : TCP 5432"),
        "{txt}"
    );
    assert!(
        !txt.contains("shop-frontend/web[Deployment] => shop-db"),
        "{txt}"
    );
    let lines = txt.lines().count();
    let json: serde_json::Value =
        serde_json::from_slice(&netfence(&["list", "-f", dir, "-o", "json"]).stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), lines);
    let csv = stdout(&netfence(&["list", "-f", dir, "-o", "csv"]));
    assert_eq!(csv.lines().count(), lines + 1);
    let md = stdout(&netfence(&["list", "-f", dir, "-o", "md"]));
    assert_eq!(md.lines().count(), lines + 2);
    let dot = stdout(&netfence(&["list", "-f", dir, "-o", "dot"]));
    assert_eq!(dot.matches(" -> ").count(), lines);
}

#[test]
fn demo_prints_the_summary() {
    let out = netfence(&["demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("default/nginx[Deployment] => kube-system/coredns[Deployment] : UDP 53"),
        "{text}"
    );
    assert!(
        text.contains("0.0.0.0-255.255.255.255[External] => default/nginx[Deployment] : TCP 80"),
        "{text}"
    );
    // The demo audits with the example VPC's security groups.
    assert!(
        text.contains("NF-SG-002 SecurityGroupPolicy shop-backend/api-rds-access"),
        "{text}"
    );
}

#[test]
fn selector_command_canonicalises_evaluates_and_points_at_errors() {
    let out = netfence(&["selector", "a in {\"z\", \"x\", \"z\"} && ! has(b)"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out).trim(), "(a in {\"x\", \"z\"} && !has(b))");
    let yes = netfence(&["selector", "role == \"db\"", "--labels", "role=db,tier=2"]);
    assert_eq!(
        (yes.status.code(), stdout(&yes).trim().to_string()),
        (Some(0), "true".to_string())
    );
    let no = netfence(&["selector", "has(role)", "--labels", ""]);
    assert_eq!(
        (no.status.code(), stdout(&no).trim().to_string()),
        (Some(1), "false".to_string())
    );
    let bad = netfence(&["selector", "a == \"b\" && %"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("column 13"), "{}", stderr(&bad));
}

#[test]
fn selector_command_refuses_deep_nesting_with_a_column_and_does_not_crash() {
    for expression in [
        format!("{}a == \"b\"{}", "(".repeat(20_000), ")".repeat(20_000)),
        format!("{}has(a){}", "!(".repeat(20_000), ")".repeat(20_000)),
        "(".repeat(20_000),
    ] {
        let out = netfence_limited(&["selector", &expression], 10, 512);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let text = stderr(&out);
        assert!(
            text.starts_with("error: invalid selector at column "),
            "{text:.300}"
        );
        assert!(text.contains("nested more than 128 deep"), "{text:.300}");
    }
    // The same selector in a manifest is a load error with its field, not a crash.
    let deep = format!("{}a == 'b'{}", "(".repeat(20_000), ")".repeat(20_000));
    let manifest = temp_file(
        "deep-selector.yaml",
        &format!("apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: deep}}\nspec:\n  selector: \"{deep}\"\n  types: [Ingress]\n"),
    );
    let out = netfence_limited(&["list", "-f", manifest.to_str().unwrap()], 10, 512);
    assert_eq!(out.status.code(), Some(2), "{:.300}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("GlobalNetworkPolicy deep: spec.selector: invalid selector"),
        "{text:.300}"
    );
    assert!(text.contains("nested more than 128 deep"), "{text:.300}");
    // A `!` chain needs no nesting: it collapses.
    let out = netfence_limited(
        &["selector", &format!("{}has(a)", "!".repeat(20_001))],
        10,
        512,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "!has(a)");
}

#[test]
fn audit_reports_exits_and_speaks_sarif() {
    let dir = demo_cluster("audit");
    let dir = dir.to_str().unwrap();
    let text = netfence(&["audit", "-f", dir]);
    assert_eq!(text.status.code(), Some(1), "errors present: exit 1");
    let body = stdout(&text);
    assert!(body.contains("NF-TC-003 Pod default/nginx-0: default/nginx-0 cannot reach cluster DNS (kube-system/coredns-0) on TCP 53"), "{body}");
    assert!(body.contains("namespace kube-system"), "{body}");
    let lenient = netfence(&["audit", "-f", dir, "--fail-on", "error", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&lenient.stdout).unwrap();
    assert!(json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["id"] == "NF-TLS-003"));
    let sarif = netfence(&["audit", "-f", dir, "-o", "sarif"]);
    let sarif: serde_json::Value = serde_json::from_slice(&sarif.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "netfence");
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for result in run["results"].as_array().unwrap() {
        assert!(rules.contains(&result["ruleId"].as_str().unwrap()));
        assert!(["error", "warning", "note"].contains(&result["level"].as_str().unwrap()));
        assert!(
            result["locations"][0]["physicalLocation"]["region"]["startLine"]
                .as_u64()
                .unwrap()
                >= 1
        );
    }
    let list = netfence(&["audit", "--list-checks"]);
    assert!(stdout(&list).starts_with("| id | severity | check |"));
}

/// The SARIF output validates against the official SARIF 2.1.0 JSON schema (OASIS
/// sarif-spec `Schemata/sarif-schema-2.1.0.json`, vendored in tests/data; the copy shipped in
/// the serde-sarif 0.8.0 crate), and the validator does reject a broken document.
#[test]
fn sarif_output_validates_against_the_official_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("data/sarif-schema-2.1.0.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the SARIF schema compiles");
    let dir = demo_cluster("sarif");
    // Findings of every family: the example cluster plus the audit fixtures' trigger inputs.
    let fixtures: Vec<serde_yaml_ng::Value> =
        serde_yaml_ng::from_str(include_str!("../../audit/tests/fixtures.yaml")).unwrap();
    for (i, fixture) in fixtures.iter().enumerate() {
        let file = dir.join(format!("fixture-{i}.yaml"));
        std::fs::write(&file, fixture["triggers"].as_str().unwrap()).unwrap();
        let mut args = vec!["audit", "-f", file.to_str().unwrap(), "-o", "sarif"];
        // Security-group fixtures: their groups (YAML there) as the JSON the AWS CLI prints.
        let groups = fixture["triggers_security_groups"]
            .as_str()
            .or(fixture["security_groups"].as_str());
        let groups_file = dir.join(format!("fixture-{i}-groups.json"));
        if let Some(yaml) = groups {
            let value: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap();
            std::fs::write(&groups_file, serde_json::to_string_pretty(&value).unwrap()).unwrap();
            args.extend(["--aws-security-groups", groups_file.to_str().unwrap()]);
            if let Some(id) = fixture["cluster_security_group"].as_str() {
                args.extend(["--cluster-security-group", id]);
            }
            for id in fixture["node_security_groups"]
                .as_sequence()
                .into_iter()
                .flatten()
            {
                args.extend(["--node-security-group", id.as_str().unwrap()]);
            }
        }
        let out = netfence(&args);
        let document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&document)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(errors.is_empty(), "fixture {i}: {errors:#?}");
        assert!(!document["runs"][0]["results"]
            .as_array()
            .unwrap()
            .is_empty());
        std::fs::remove_file(&file).unwrap();
    }
    let out = netfence(&["audit", "-f", dir.to_str().unwrap(), "-o", "sarif"]);
    let mut document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(validator.is_valid(&document));
    document["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(
        !validator.is_valid(&document),
        "the schema must reject an unknown level"
    );
    println!(
        "sarif: {} fixture reports and the example cluster's report validate against SARIF 2.1.0",
        fixtures.len()
    );
}

#[test]
fn audit_config_file_suppresses_and_bad_config_exits_2() {
    let dir = demo_cluster("config");
    let d = dir.to_str().unwrap();
    let plain = netfence(&["audit", "-f", d, "-o", "json"]);
    let plain: serde_json::Value = serde_json::from_slice(&plain.stdout).unwrap();
    let dns = plain["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "NF-TC-003")
        .count();
    assert!(dns > 0);
    // Outside the manifest directory: -f DIR reads every YAML file in it.
    let c2 = Scratch::path("cli", "audit-config.yaml");
    std::fs::write(&c2, "ignore:\n- id: NF-TC-003\n").unwrap();
    let out = netfence(&["audit", "-f", d, "--config", c2.to_str().unwrap()]);
    let body = stdout(&out);
    assert!(!body.contains("NF-TC-003"), "{body}");
    assert!(!body.contains('\u{1b}'), "no colour when not on a terminal");
    assert!(
        body.contains(&format!(
            "{} suppressed",
            plain["suppressed"].as_u64().unwrap() as usize + dns
        )),
        "{body}"
    );
    std::fs::write(&c2, "ignore:\n- id: NF-NOPE-1\n").unwrap();
    let bad = netfence(&["audit", "-f", d, "--config", c2.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains(&format!("{}: ignore[0].id: unknown check", c2.display())),
        "{err}"
    );
}

/// `--aws-security-groups`: the example VPC's groups give security-group findings located in
/// the JSON and the manifests; bad groups files and unknown group ids exit 2 naming the file
/// and field; the groups file passed as a manifest is skipped with a hint.
#[test]
fn audit_reads_security_groups_and_rejects_bad_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let examples = root.join("examples/eks-guide");
    let groups = root.join("examples/aws/eks-guide-security-groups.json");
    let (e, g) = (examples.to_str().unwrap(), groups.to_str().unwrap());
    let out = netfence(&["audit", "-f", e, "--aws-security-groups", g, "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sg: Vec<&serde_json::Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"].as_str().unwrap().starts_with("NF-SG-"))
        .collect();
    let ids: Vec<&str> = sg.iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["NF-SG-002", "NF-SG-004"]);
    assert!(sg[0]["file"]
        .as_str()
        .unwrap()
        .ends_with("50-security-groups-for-pods.yaml"));
    assert!(sg[1]["message"].as_str().unwrap().contains("TCP 9090"));
    assert!(report["notes"][0]
        .as_str()
        .unwrap()
        .starts_with("cluster security group: sg-0c1c2a0e5e7d4b001"));
    // Without the groups, the manifests alone raise none of these.
    let out = netfence(&["audit", "-f", e, "-o", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["id"].as_str().unwrap().starts_with("NF-SG-")));

    let dir = Scratch::path("cli", "sg");
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(&groups).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        text.replacen("\"FromPort\": 53", "\"FromPort\": \"53\"", 1),
    )
    .unwrap();
    let out = netfence(&[
        "audit",
        "-f",
        e,
        "--aws-security-groups",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bad.json: document 1 (line 3): SecurityGroup sg-0c1c2a0e5e7d4b001: SecurityGroups[0].IpPermissions[1].FromPort: invalid type: string \"53\""),
        "{}",
        stderr(&out)
    );
    let out = netfence(&[
        "audit",
        "-f",
        e,
        "--aws-security-groups",
        g,
        "--cluster-security-group",
        "sg-0000000000000dead",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--cluster-security-group sg-0000000000000dead: no such group in")
    );
    // The groups can come on stdin (`aws ec2 describe-security-groups | netfence audit …`),
    // but stdin cannot feed both inputs.
    let mut child = Command::new(env!("CARGO_BIN_EXE_netfence"))
        .args(["audit", "-f", e, "--aws-security-groups", "-", "-o", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        std::fs::read(&groups).unwrap().as_slice(),
    )
    .unwrap();
    let piped = child.wait_with_output().unwrap();
    let piped: serde_json::Value = serde_json::from_slice(&piped.stdout).unwrap();
    let sg_ids: Vec<&str> = piped["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .filter(|id| id.starts_with("NF-SG-"))
        .collect();
    assert_eq!(sg_ids, ["NF-SG-002", "NF-SG-004"]);
    let out = netfence(&["audit", "-f", "-", "--aws-security-groups", "-"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot both read stdin"));
    let out = netfence(&[
        "audit",
        "-f",
        e,
        "--cluster-security-group",
        "sg-0c1c2a0e5e7d4b001",
    ]);
    assert_eq!(out.status.code(), Some(2), "needs --aws-security-groups");
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::copy(&groups, manifests.join("groups.json")).unwrap();
    let out = netfence(&["list", "-f", manifests.to_str().unwrap()]);
    assert!(
        stderr(&out).contains("pass it with audit --aws-security-groups"),
        "{}",
        stderr(&out)
    );
}

/// A cluster where kube-dns has two backends whose named target port resolves differently, a
/// Service without selector, a Service that selects nothing, a Calico allow-kube-dns policy
/// (docs.tigera.io "Use service rules in policy") and, optionally, a policy closing one backend.
fn service_cluster(close_one_backend: bool) -> Scratch {
    let mut text = String::from(
        "
apiVersion: v1
kind: Namespace
metadata: {name: app}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: app, labels: {app: client}}
spec: {containers: [{name: c}]}
status: {podIP: 10.1.0.5}
---
apiVersion: v1
kind: Pod
metadata: {name: dns-a, namespace: kube-system, labels: {k8s-app: kube-dns, open: \"yes\"}}
spec: {containers: [{name: c, ports: [{name: dns, containerPort: 53, protocol: UDP}, {name: dns-tcp, containerPort: 53}]}]}
status: {podIP: 10.1.9.10}
---
apiVersion: v1
kind: Pod
metadata: {name: dns-b, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec: {containers: [{name: c, ports: [{name: dns, containerPort: 53, protocol: UDP}, {name: dns-tcp, containerPort: 5353}]}]}
status: {podIP: 10.1.9.11}
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system}
spec:
  selector: {k8s-app: kube-dns}
  clusterIP: 10.96.0.10
  ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, targetPort: dns-tcp}]
---
apiVersion: v1
kind: Service
metadata: {name: external-db, namespace: app}
spec: {clusterIP: 10.96.0.20, ports: [{port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: nobody, namespace: app}
spec: {selector: {app: nobody}, clusterIP: 10.96.0.30, ports: [{port: 80}]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: allow-kube-dns}
spec:
  selector: all()
  egress:
  - action: Allow
    destination:
      services: {name: kube-dns, namespace: kube-system}
",
    );
    if close_one_backend {
        // Isolates dns-b (no `open` label) for ingress, with no rule: closed.
        text.push_str(
            "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: closed, namespace: kube-system}
spec: {podSelector: {matchExpressions: [{key: open, operator: DoesNotExist}]}, policyTypes: [Ingress]}
",
        );
    }
    temp_file(&format!("service-cluster-{close_one_backend}.yaml"), &text)
}

#[test]
fn query_through_a_service_answers_per_backend() {
    let open = service_cluster(false);
    let file = open.to_str().unwrap();
    let query = |to: &str, port: &str, json: bool| {
        let mut args = vec![
            "query",
            "-f",
            file,
            "--from",
            "app/client",
            "--to",
            to,
            "--port",
            port,
        ];
        if json {
            args.extend(["-o", "json"]);
        }
        netfence(&args)
    };

    // By name: both backends allow UDP/53.
    let out = query("kube-system/svc/kube-dns", "UDP/53", false);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.contains("Service kube-system/kube-dns, cluster IP 10.96.0.10"),
        "{text}"
    );
    assert!(text.contains("ALLOW (2 of 2 backends allow)"), "{text}");
    assert!(
        text.contains("backend kube-system/dns-a (UDP/53): ALLOW"),
        "{text}"
    );
    assert!(
        text.contains("backend kube-system/dns-b (UDP/53): ALLOW"),
        "{text}"
    );

    // By cluster IP (used to be answered as an external address, allowed): the named target
    // port resolves per backend, and the Calico rule allows exactly those ports.
    let out = query("10.96.0.10", "TCP/53", true);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(json["verdict"], "allow");
    assert_eq!(json["to"], "kube-system/svc/kube-dns");
    assert_eq!(json["service"]["name"], "kube-system/kube-dns");
    assert_eq!(json["service"]["port"], 53);
    assert_eq!(json["service"]["target_port"], "dns-tcp");
    assert_eq!(
        json["service"]["cluster_ips"],
        serde_json::json!(["10.96.0.10"])
    );
    let backends = json["backends"].as_array().expect("backends");
    let targets: Vec<(String, u64)> = backends
        .iter()
        .map(|b| {
            (
                b["pod"].as_str().unwrap().to_string(),
                b["target_port"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        targets,
        [
            ("kube-system/dns-a".to_string(), 53),
            ("kube-system/dns-b".to_string(), 5353)
        ]
    );
    assert_eq!(backends[1]["egress"]["outcome"]["reason"], "rule");
    assert_eq!(json["backends_allowed"], 2);

    // A port the Service does not have: no backend, denied.
    let out = query("10.96.0.10", "TCP/80", false);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("has no port TCP/80 (its ports: UDP/53, TCP/53)"),
        "{}",
        stdout(&out)
    );
    // No selector, and a selector that matches nothing: denied with the reason.
    let out = query("app/svc/external-db", "TCP/5432", true);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(json["verdict"], "deny");
    assert!(
        json["reason"].as_str().unwrap().contains("has no selector"),
        "{json}"
    );
    let out = query("10.96.0.30", "TCP/80", false);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("selects no pod in namespace app"),
        "{}",
        stdout(&out)
    );
    // `svc/NAME` is a Service of `default` only when there is one; otherwise a pod of a
    // namespace called svc, as before.
    let out = query("svc/kube-dns", "UDP/53", false);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no such pod, workload or IP address"),
        "{}",
        stderr(&out)
    );
    // Unknown Service, and a Service as a source: bad input.
    let out = query("kube-system/svc/coredns", "UDP/53", false);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("error: --to \"kube-system/svc/coredns\": no such Service (Services in kube-system: kube-dns)"), "{}", stderr(&out));
    let out = netfence(&[
        "query",
        "-f",
        file,
        "--from",
        "10.96.0.10",
        "--to",
        "app/client",
        "--port",
        "TCP/80",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is Service kube-system/kube-dns"),
        "{}",
        stderr(&out)
    );

    // One backend closed: the Service answer denies (kube-proxy may pick it), and says which.
    let closed = service_cluster(true);
    let out = netfence(&[
        "query",
        "-f",
        closed.to_str().unwrap(),
        "--from",
        "app/client",
        "--to",
        "kube-system/svc/kube-dns",
        "--port",
        "UDP/53",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("DENY (1 of 2 backends allow)"), "{text}");
    assert!(
        text.contains("backend kube-system/dns-a (UDP/53): ALLOW"),
        "{text}"
    );
    assert!(
        text.contains("backend kube-system/dns-b (UDP/53): DENY"),
        "{text}"
    );
    assert!(text.contains("NetworkPolicy kube-system/closed"), "{text}");
}

#[test]
fn synthetic_addresses_are_said_where_they_can_change_a_verdict() {
    let cluster = temp_file(
        "synthetic.yaml",
        "
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default, labels: {app: client}}
spec: {containers: [{name: c}]}
status: {podIP: 10.2.0.5}
---
apiVersion: v1
kind: Pod
metadata: {name: known, namespace: default, labels: {app: known}}
spec: {containers: [{name: c}]}
status: {podIP: 10.2.0.6}
---
apiVersion: v1
kind: Pod
metadata: {name: pending, namespace: default, labels: {app: pending}}
spec: {containers: [{name: c}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: anywhere, namespace: default}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}]}]
",
    );
    let file = cluster.to_str().unwrap();
    let query = |to: &str, json: bool| {
        let mut args = vec![
            "query",
            "-f",
            file,
            "--from",
            "default/client",
            "--to",
            to,
            "--port",
            "TCP/80",
        ];
        if json {
            args.extend(["-o", "json"]);
        }
        netfence(&args)
    };
    // 0.0.0.0/0 matches the pod with a known address, not the one with an invented address:
    // the verdict stands, and the explanation says why it may not match the real cluster.
    let out = query("default/pending", false);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("note: Egress at default/client: default/pending (synthetic 100."),
        "{text}"
    );
    assert!(
        text.contains("NetworkPolicy default/anywhere rule 0 Allow"),
        "{text}"
    );
    let out = query("default/pending", true);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(json["verdict"], "deny");
    assert_eq!(json["notes"].as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(
        json["egress"]["unknown_address_rules"][0]["policy"],
        "default/anywhere"
    );
    // A known address: allowed by the ipBlock, no note, no extra key.
    let out = query("default/known", true);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(json["notes"], serde_json::json!([]));
    assert!(
        json["egress"].get("unknown_address_rules").is_none(),
        "{json}"
    );

    // The matrix says how many pods have invented addresses: in the summary, and on stderr
    // beside the JSON contract (whose keys stay as they are).
    let out = netfence(&["matrix", "-f", file, "--ports", "TCP/80", "--summary"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("synthetic addresses: 1 pods"), "{text}");
    assert!(
        text.contains("note: 1 pod(s) have no status.podIP"),
        "{text}"
    );
    let out = netfence(&["matrix", "-f", file, "--ports", "TCP/80", "-o", "json"]);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["allowed", "endpoints", "ports"]);
    assert!(
        stderr(&out).contains("ipBlock, nets and network-set rules never match them"),
        "{}",
        stderr(&out)
    );
    let allowed = json["allowed"]["TCP/80"].as_array().unwrap();
    assert!(allowed.contains(&serde_json::json!(["default/client", "default/known"])));
    assert!(!allowed.contains(&serde_json::json!(["default/client", "default/pending"])));
}

#[test]
fn gen_refuses_absurd_sizes_up_front() {
    let dir = Scratch::path("cli", "gen-sizes");
    let d = dir.to_str().unwrap();
    let max = u64::MAX.to_string();
    let cases: [(&[&str], &str); 9] = [
        (
            &[
                "--pods",
                "10000000000",
                "--namespaces",
                "10",
                "--policies",
                "10",
            ],
            "pods 10000000000 is more than the 1000000",
        ),
        (
            &["--pods", &max, "--namespaces", "10", "--policies", "10"],
            "pods 18446744073709551615 is more than",
        ),
        (
            &["--pods", "100", "--namespaces", &max, "--policies", "10"],
            "namespaces 18446744073709551615 is more than",
        ),
        (
            &["--pods", "100", "--namespaces", "10", "--policies", &max],
            "policies 18446744073709551615 is more than",
        ),
        (
            &[
                "--pods",
                "100",
                "--namespaces",
                "10",
                "--policies",
                "10",
                "--calico",
                &max,
            ],
            "calico 18446744073709551615 is more than",
        ),
        (
            &["--pods", "100", "--namespaces", "0", "--policies", "10"],
            "namespaces must be at least 1",
        ),
        (
            &["--pods", "10", "--namespaces", "11", "--policies", "10"],
            "namespaces 11 is more than pods 10",
        ),
        (
            &["--pods", "1", "--namespaces", "1", "--policies", "0"],
            "fewer than the 2 CoreDNS pods",
        ),
        (
            &[
                "--pods",
                "1000000",
                "--namespaces",
                "1000",
                "--policies",
                "1000001",
            ],
            "policies 1000001 is more than the 1000000",
        ),
    ];
    for (sizes, expected) in cases {
        let mut args = vec!["gen", "-o", d];
        args.extend_from_slice(sizes);
        // A refusal is immediate and small: no cluster is built first.
        let out = netfence_limited(&args, 10, 256);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(text.starts_with("error: gen: "), "{args:?}: {text}");
        assert!(text.contains(expected), "{args:?}: {text}");
        assert!(!dir.exists(), "{args:?}: nothing is written");
    }
}

/// `gen --ipv6` writes the IPv4 cluster's files with every address as its IPv6 twin, and the
/// cluster loads: the same connections between workloads listed. (The external ranges
/// differ: the IPv6 space outside the twins' `fd00:10::/96` is more of it.)
#[test]
fn gen_ipv6_writes_the_twin_cluster() {
    let (v4, v6) = (
        Scratch::path("cli", "gen-v4"),
        Scratch::path("cli", "gen-v6"),
    );
    let sizes = [
        "--pods",
        "40",
        "--namespaces",
        "2",
        "--policies",
        "8",
        "--calico",
        "3",
    ];
    for (dir, ipv6) in [(&v4, false), (&v6, true)] {
        let mut args = vec!["gen", "-o", dir.to_str().unwrap()];
        args.extend_from_slice(&sizes);
        if ipv6 {
            args.push("--ipv6");
        }
        let out = netfence_limited(&args, 30, 1024);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let mut names: Vec<_> = std::fs::read_dir(&v4)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert!(names.len() >= 5, "{names:?}");
    for name in names {
        let text = std::fs::read_to_string(v4.join(&name)).unwrap();
        let twin = std::fs::read_to_string(v6.join(&name)).unwrap();
        assert_eq!(twin, netfence_gen::ipv6_twin(&text), "{name:?}");
    }
    let pods = std::fs::read_to_string(v6.join("20-pods.yaml")).unwrap();
    assert!(pods.contains("podIP: fd00:10::a00:1}"), "{pods}");
    assert!(!pods.contains("podIP: 10."), "{pods}");
    let between_workloads = |dir: &std::path::Path| {
        let out = netfence_limited(&["list", "-f", dir.to_str().unwrap()], 30, 1024);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .filter(|line| !line.contains("[External]"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let listed = between_workloads(&v4);
    assert!(listed.len() >= 5, "{listed:?}");
    assert_eq!(between_workloads(&v6), listed);
}

#[test]
fn gen_refuses_a_non_empty_directory_unless_forced() {
    let dir = Scratch::path("cli", "gen-force");
    let d = dir.to_str().unwrap();
    let gen = |pods: &str, calico: &str, force: bool| {
        let mut args = vec![
            "gen",
            "--pods",
            pods,
            "--namespaces",
            "3",
            "--policies",
            "12",
            "--calico",
            calico,
            "--seed",
            "1",
            "-o",
            d,
        ];
        if force {
            args.push("--force");
        }
        netfence_limited(&args, 30, 1024)
    };
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    assert_eq!(gen("60", "3", false).status.code(), Some(0));
    let first = read("20-pods.yaml").expect("written");
    assert!(read("50-calico.yaml").is_some());

    // Again into the same directory, another size: refused, nothing changes.
    let out = gen("70", "3", false);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.starts_with("error: gen: "), "{text}");
    assert!(
        text.contains(d) && text.contains("not empty") && text.contains("--force"),
        "{text}"
    );
    assert!(read("20-pods.yaml").as_deref() == Some(first.as_str()));

    // A directory holding anything at all is not empty.
    let other = Scratch::path("cli", "gen-other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("mine.txt"), "keep").unwrap();
    let out = netfence_limited(
        &[
            "gen",
            "--pods",
            "10",
            "--namespaces",
            "1",
            "--policies",
            "1",
            "-o",
            other.to_str().unwrap(),
        ],
        10,
        256,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 1);
    // Nor is a file a directory.
    let file = other.join("mine.txt");
    let out = netfence_limited(
        &[
            "gen",
            "--pods",
            "10",
            "--namespaces",
            "1",
            "--policies",
            "1",
            "-o",
            file.to_str().unwrap(),
        ],
        10,
        256,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");

    // --force replaces the generated files, and one this cluster leaves empty goes away
    // instead of keeping the earlier run's Calico policies.
    let out = gen("70", "0", true);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pods = read("20-pods.yaml").expect("written");
    assert_eq!(pods.matches("kind: Pod").count(), 70);
    assert_eq!(read("50-calico.yaml"), None);
}

/// A network namespace made for one test (`ip netns add`), deleted on drop even when the test
/// fails. The dataplane commands run inside it (`--netns`): the root namespace is not touched.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let uid = Command::new("id").arg("-u").output().expect("id -u");
        assert_eq!(
            stdout(&uid).trim(),
            "0",
            "this test needs root (network namespaces and nftables), as CI has"
        );
        let name = format!("nf-cli-{tag}-{}", std::process::id());
        let added = Command::new("ip").args(["netns", "add", &name]).output();
        assert!(
            added.as_ref().is_ok_and(|o| o.status.success()),
            "ip netns add {name}: {added:?}"
        );
        Netns(name)
    }

    /// `nft list table inet netfence` inside the namespace (None when there is no table).
    fn table(&self) -> Option<String> {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &self.0, "nft", "list", "table", "inet", "netfence",
            ])
            .output()
            .expect("nft");
        out.status.success().then(|| stdout(&out))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A namespace with two pods on nodes node-a and node-c, a Node object node-b, and a policy
/// that isolates both pods.
const NODES_CLUSTER: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node-b}\nstatus: {addresses: [{type: InternalIP, address: 192.168.0.2}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop, labels: {app: web}}\nspec: {nodeName: node-a, containers: [{name: main}]}\nstatus: {podIP: 10.9.0.1}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: db, namespace: shop, labels: {app: db}}\nspec: {nodeName: node-c, containers: [{name: main}]}\nstatus: {podIP: 10.9.0.2}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n";

#[test]
fn dataplane_render_apply_and_agent_refuse_an_unknown_node() {
    let cluster = temp_file("nodes.yaml", NODES_CLUSTER);
    let f = cluster.to_str().unwrap();
    let render = netfence_limited(
        &["dataplane", "render", "-f", f, "--node", "node-a"],
        20,
        1024,
    );
    assert_eq!(render.status.code(), Some(0), "{}", stderr(&render));
    assert!(
        stderr(&render).contains("1 isolated endpoints"),
        "{}",
        stderr(&render)
    );
    let expected = "error: dataplane: node \"node-x\" is not in the inputs (known nodes: node-a, node-b, node-c)";
    let typo = netfence_limited(
        &["dataplane", "render", "-f", f, "--node", "node-x"],
        20,
        1024,
    );
    assert_eq!(typo.status.code(), Some(2), "{}", stderr(&typo));
    assert_eq!(stderr(&typo).trim(), expected);
    assert!(typo.stdout.is_empty(), "no ruleset is printed");

    let netns = Netns::new("node");
    let apply = |node: &str| {
        netfence_limited(
            &[
                "dataplane",
                "apply",
                "-f",
                f,
                "--node",
                node,
                "--netns",
                &netns.0,
            ],
            20,
            1024,
        )
    };
    let applied = apply("node-a");
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    let before = netns.table().expect("the table is loaded");
    assert!(before.contains("shop/web"), "{before}");
    let typo = apply("node-x");
    assert_eq!(typo.status.code(), Some(2), "{}", stderr(&typo));
    assert_eq!(stderr(&typo).trim(), expected);
    assert_eq!(
        netns.table().as_deref(),
        Some(before.as_str()),
        "ruleset unchanged"
    );

    // The agent, too, refuses to start (rather than fail closed) on a node it cannot find.
    let fresh = Netns::new("agent-node");
    let agent = netfence_limited(
        &[
            "dataplane",
            "agent",
            "-f",
            f,
            "--node",
            "node-x",
            "--netns",
            &fresh.0,
        ],
        20,
        1024,
    );
    assert_eq!(agent.status.code(), Some(2), "{}", stderr(&agent));
    assert_eq!(stderr(&agent).trim(), expected);
    assert_eq!(fresh.table(), None, "nothing loaded");
}

/// Wait up to `limit` for `child` to exit; kill it and fail if it does not.
fn exits_within(child: &mut std::process::Child, limit: std::time::Duration, what: &str) -> Output {
    let started = std::time::Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running {limit:?} after SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut output = Output {
        status: child.wait().expect("wait"),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_end(&mut pipe, &mut output.stderr).expect("read stderr");
    }
    output
}

fn sigterm(child: &std::process::Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
}

#[test]
fn dataplane_agent_stops_on_sigterm_while_waiting_and_while_loading() {
    let netns = Netns::new("term");
    let dir = Scratch::path("cli", "agent-term");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cluster.yaml"), NODES_CLUSTER).unwrap();
    let agent = |input: &Path, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_netfence"))
            .args(["dataplane", "agent", "-f", input.to_str().unwrap()])
            .args(["--netns", &netns.0])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the agent")
    };
    let limit = std::time::Duration::from_secs(5);

    // Waiting: it applied the inputs and sleeps for a ten-minute poll.
    let mut waiting = agent(&dir, &["--poll-ms", "600000"]);
    let started = std::time::Instant::now();
    while netns.table().is_none() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the agent applies the inputs"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    sigterm(&waiting);
    let out = exits_within(&mut waiting, limit, "agent waiting to poll");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("applied (full)"), "{}", stderr(&out));

    // Loading: its input is a FIFO that no one writes, so reading it never ends.
    let fifo = dir.join("never-written.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let mut loading = agent(&fifo, &[]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(loading.try_wait().unwrap().is_none(), "still loading");
    sigterm(&loading);
    let out = exits_within(&mut loading, limit, "agent loading its inputs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Watching a directory whose symbolic links loop back to it (twice: a walk that follows
    // them branches at every level).
    let looped = dir.join("looped");
    std::fs::create_dir_all(&looped).unwrap();
    std::fs::write(looped.join("cluster.yaml"), NODES_CLUSTER).unwrap();
    std::os::unix::fs::symlink(".", looped.join("again")).unwrap();
    std::os::unix::fs::symlink(".", looped.join("more")).unwrap();
    let mut looping = agent(&looped, &[]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    sigterm(&looping);
    let out = exits_within(&mut looping, limit, "agent watching a looping directory");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// `netfence lab` takes every policy kind the renderer enforces (here the EKS guide's Calico
/// global policies) and agrees with the analyser; what nft cannot match exactly is refused by
/// `dataplane render` and `lab` alike, naming the rule (exit 2).
#[test]
fn lab_enforces_calico_policies_and_refuses_http_matches() {
    assert!(
        netfence_dataplane::running_as_root(),
        "this test needs root (network namespaces and nftables), as CI has"
    );
    let guide = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/calico-guide");
    let lab = netfence_limited(&["lab", "-f", guide.to_str().unwrap()], 120, 4096);
    assert_eq!(lab.status.code(), Some(0), "{}", stderr(&lab));
    assert!(
        stderr(&lab).contains(" 0 disagreements with netfence matrix"),
        "{}",
        stderr(&lab)
    );
    let http = temp_file(
        "http.yaml",
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: web}\nspec:\n  selector: all()\n  ingress: [{action: Allow, protocol: TCP, http: {methods: [GET]}}]\n",
    );
    for command in [&["dataplane", "render"][..], &["lab"][..]] {
        let mut args = command.to_vec();
        args.extend(["-f", http.to_str().unwrap()]);
        let out = netfence_limited(&args, 60, 4096);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("Calico GlobalNetworkPolicy web")
                && stderr(&out).contains("HTTP matches"),
            "{command:?}: {}",
            stderr(&out)
        );
    }
}
