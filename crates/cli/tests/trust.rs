//! Hostile and careless input, through the binary: every case here once hung netfence,
//! exhausted its memory, or changed a verdict without a word. Each run is bounded in time
//! (killed past its limit) and in address space (`ulimit -v`), so a regression fails the test
//! instead of wedging CI.

mod common;

use common::Scratch;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a bounded run printed and how it ended.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Run netfence with `args` under `seconds` of wall time and `megabytes` of address space,
/// feeding `stdin` (a shell pipeline's output when it starts with `|`, else the text).
fn bounded(args: &[&str], stdin: &str, seconds: u64, megabytes: u64) -> Run {
    let binary = env!("CARGO_BIN_EXE_netfence");
    let quoted: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
    let (feeder, text) = match stdin.strip_prefix('|') {
        Some(pipeline) => (format!("{pipeline} | "), ""),
        None => (String::new(), stdin),
    };
    let script = format!(
        "ulimit -v {}; {feeder}exec {} {}",
        megabytes * 1024,
        shell_quote(binary),
        quoted.join(" ")
    );
    let started = Instant::now();
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let mut input = child.stdin.take().expect("stdin");
    let text = text.to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
    });
    let deadline = started + Duration::from_secs(seconds);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "netfence {args:?} still running after {seconds} s; stderr so far:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = writer.join();
    let out = child.wait_with_output().expect("output");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

fn run(args: &[&str]) -> Run {
    bounded(args, "", 30, 2048)
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A fresh directory for one test.
fn scratch(tag: &str) -> Scratch {
    Scratch::dir("trust", tag)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.to_str().expect("utf-8 path").to_string()
}

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n";

const POD_A: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: shop, labels: {app: a}}\nspec: {containers: [{name: c}]}\nstatus: {podIP: 10.1.0.1}\n";

fn assert_refused(run: &Run, needle: &str) {
    assert_eq!(
        run.code,
        Some(2),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    assert!(
        run.stderr.contains(needle),
        "{needle:?} not in:\n{}",
        run.stderr
    );
}

#[test]
fn symlink_loops_links_to_root_and_fifos_are_not_followed() {
    let dir = scratch("loops");
    write(&dir, "ns.yaml", NAMESPACE);
    write(&dir, "pod.yaml", POD_A);
    std::os::unix::fs::symlink(".", dir.join("again")).expect("link");
    std::os::unix::fs::symlink(".", dir.join("and-again")).expect("link");
    std::os::unix::fs::symlink("/", dir.join("root")).expect("link");
    let fifo = dir.join("pipe.yaml");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    let out = bounded(
        &["matrix", "-f", dir.to_str().unwrap(), "--summary"],
        "",
        10,
        1024,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.starts_with("pods: 1\n"), "{}", out.stdout);
    assert!(out
        .stderr
        .contains("again: a symbolic link to a directory; not followed"));
    assert!(out.stderr.contains("root: a symbolic link to a directory"));
    assert!(
        out.stderr.contains("pipe.yaml: not a regular file"),
        "{}",
        out.stderr
    );
    // A link to a file is followed, and a directory named with -f is loaded even through a link.
    let other = scratch("loops-target");
    write(
        &other,
        "pod.yaml",
        &POD_A
            .replace("name: a,", "name: b,")
            .replace("10.1.0.1", "10.1.0.2"),
    );
    std::os::unix::fs::symlink(other.join("pod.yaml"), dir.join("b.yaml")).expect("link");
    std::os::unix::fs::symlink(&other, dir.join("linked-dir")).expect("link");
    let out = run(&["matrix", "-f", dir.to_str().unwrap(), "--summary"]);
    assert!(out.stdout.starts_with("pods: 2\n"), "{}", out.stdout);
    let linked = dir.join("linked-dir");
    let out = run(&["matrix", "-f", linked.to_str().unwrap(), "--summary"]);
    assert!(
        out.stdout.starts_with("pods: 1\n"),
        "{}{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn a_configmap_mounted_directory_loads_each_file_once() {
    // What the kubelet makes of a ConfigMap volume: the files live in a timestamped hidden
    // directory, `..data` links to it, and the visible names link through `..data`.
    let dir = scratch("configmap");
    std::fs::create_dir(dir.join("..2024_06_01_12_00_00.123")).expect("dir");
    write(&dir.join("..2024_06_01_12_00_00.123"), "ns.yaml", NAMESPACE);
    write(&dir.join("..2024_06_01_12_00_00.123"), "pod.yaml", POD_A);
    std::os::unix::fs::symlink("..2024_06_01_12_00_00.123", dir.join("..data")).expect("link");
    std::os::unix::fs::symlink("..data/ns.yaml", dir.join("ns.yaml")).expect("link");
    std::os::unix::fs::symlink("..data/pod.yaml", dir.join("pod.yaml")).expect("link");
    std::fs::create_dir(dir.join(".git")).expect("dir");
    write(&dir.join(".git"), "config.yaml", "not: [a manifest");
    let out = run(&["matrix", "-f", dir.to_str().unwrap(), "--summary"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.starts_with("pods: 1\n"), "{}", out.stdout);
    assert!(!out.stderr.contains("duplicate"), "{}", out.stderr);
}

#[test]
fn absurdly_large_inputs_are_refused_before_they_are_read() {
    let dir = scratch("large");
    let path = dir.join("huge.yaml");
    // A sparse file: 2 GiB long, no disk used.
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(2 << 30))
        .expect("sparse file");
    let out = bounded(&["audit", "-f", path.to_str().unwrap()], "", 5, 256);
    assert_refused(&out, "huge.yaml: larger than 1024 MiB");
    assert!(!out.stderr.contains("document 0"), "{}", out.stderr);
    // Stdin has no size to ask: it is read up to the limit and refused there.
    let out = bounded(
        &["matrix", "-f", "-", "--summary"],
        "|head -c 1200000000 /dev/zero",
        60,
        3072,
    );
    assert_refused(&out, "<stdin>: larger than 1024 MiB");
}

#[test]
fn yaml_alias_bombs_and_deep_nesting_fail_fast_in_little_memory() {
    let dir = scratch("bombs");
    // 2.2 KB that serde_yaml_ng's jump counter lets through, expanding to 10 M scalars.
    let mut bomb = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\ndata:\n  a0: &a0 [{}]\n",
        vec!["x"; 1000].join(",")
    );
    for level in 1..5 {
        let refs = vec![format!("*a{}", level - 1); 10].join(",");
        bomb.push_str(&format!("  a{level}: &a{level} [{refs}]\n"));
    }
    let path = write(&dir, "bomb.yaml", &bomb);
    let out = bounded(&["matrix", "-f", &path, "--summary"], "", 10, 512);
    assert_refused(&out, "expands to far more data than its text holds");
    // 400 KB of nested flow collections: libyaml's scanner is quadratic in their depth.
    let deep = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\ndata: {}{}\n",
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    let path = write(&dir, "deep.yaml", &deep);
    let out = bounded(&["matrix", "-f", &path, "--summary"], "", 5, 512);
    assert_refused(&out, "flow collections nest deeper than 256 levels");
    assert!(out.elapsed < Duration::from_secs(5));
    let deep_json = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    let path = write(&dir, "deep.json", &deep_json);
    let out = bounded(&["matrix", "-f", &path, "--summary"], "", 5, 512);
    assert_refused(&out, "malformed JSON");
}

#[test]
fn misspelt_and_unknown_fields_of_policies_are_errors() {
    let dir = scratch("strict");
    let cases = [
        (
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: shop}\nspec:\n  podSelector:\n    matchLabel: {app: db}\n",
            "NetworkPolicy shop/p: spec.podSelector.matchLabel: unknown field \"matchLabel\"",
        ),
        (
            "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: deny-db}\nspec:\n  selector: all()\n  egress:\n  - action: Deny\n    destination: {selecter: app == 'db'}\n",
            "GlobalNetworkPolicy deny-db: spec.egress[0].destination.selecter: unknown field \"selecter\"",
        ),
        (
            "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: old}\nspec:\n  priority: 5\n  subject: {namespaces: {}}\n  egress:\n  - {name: d, action: Deny, to: [{namespaces: {namespaceSelector: {matchLabels: {env: prod}}}}]}\n",
            "spec.egress[0].to[0].namespaces.namespaceSelector: unknown field \"namespaceSelector\"",
        ),
        (
            "apiVersion: vpcresources.k8s.aws/v1beta1\nkind: SecurityGroupPolicy\nmetadata: {name: s, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: a}}\n  securityGroups: {groupIDs: [sg-1]}\n",
            "spec.securityGroups.groupIDs: unknown field \"groupIDs\"",
        ),
        (
            "apiVersion: networking.k8s.io/v2\nkind: NetworkPolicy\nmetadata: {name: p, namespace: shop}\nspec: {podSelector: {}}\n",
            "apiVersion: unknown version \"networking.k8s.io/v2\" of NetworkPolicy",
        ),
        (
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: shop}\nspec:\n  podSelector: {}\n  podSelector: {matchLabels: {app: a}}\n",
            "duplicate key \"podSelector\"",
        ),
    ];
    for (index, (policy, needle)) in cases.iter().enumerate() {
        let path = write(&dir, &format!("policy-{index}.yaml"), policy);
        let ns = write(&dir, "ns.yaml", NAMESPACE);
        let out = run(&[
            "query", "-f", &ns, "-f", &path, "--from", "10.0.0.1", "--to", "10.0.0.2", "--port",
            "TCP/80",
        ]);
        assert_refused(&out, needle);
        // With --lenient the object is left out, with a warning that names it.
        let out = run(&["matrix", "-f", &ns, "-f", &path, "--lenient", "--summary"]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert!(
            out.stderr.contains("left out (--lenient)") && out.stderr.contains(needle),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn a_calico_policy_in_an_undeclared_tier_is_a_warning() {
    let dir = scratch("tier");
    let policy = write(&dir, "p.yaml", "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: security.deny}\nspec:\n  tier: security\n  selector: all()\n  ingress: [{action: Deny}]\n");
    let out = run(&[
        "matrix",
        "-f",
        &policy,
        "-f",
        &write(&dir, "pod.yaml", POD_A),
        "--summary",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("warning: tier \"security\" is not declared in the input"),
        "{}",
        out.stderr
    );
    let tier = write(&dir, "tier.yaml", "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: security}\nspec: {order: 100}\n");
    let out = run(&[
        "matrix",
        "-f",
        &policy,
        "-f",
        &tier,
        "-f",
        &dir.join("pod.yaml").display().to_string(),
        "--summary",
    ]);
    assert!(!out.stderr.contains("not declared"), "{}", out.stderr);
}

#[test]
fn finished_pods_are_not_endpoints_and_shared_live_addresses_warn() {
    let dir = scratch("finished");
    let pods = format!(
        "{POD_A}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: old-job, namespace: shop, labels: {{app: job}}}}\nspec: {{containers: [{{name: c}}]}}\nstatus: {{phase: Succeeded, podIP: 10.1.0.9}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: web, namespace: shop, labels: {{app: web}}}}\nspec: {{containers: [{{name: c}}]}}\nstatus: {{phase: Running, podIP: 10.1.0.9}}\n"
    );
    let policy = "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: a}}}]}]\n";
    let path = write(
        &dir,
        "pods.yaml",
        &format!("{NAMESPACE}---\n{pods}{policy}"),
    );
    // The address now belongs to the running pod, whose policy admits only app=a.
    let out = run(&[
        "query", "-f", &path, "--from", "10.1.0.1", "--to", "10.1.0.9", "--port", "TCP/80",
    ]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.starts_with("shop/a -> shop/web TCP/80: ALLOW"),
        "{}",
        out.stdout
    );
    let out = run(&["matrix", "-f", &path, "--summary"]);
    assert!(out.stdout.starts_with("pods: 2\n"), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("Pod in phase Succeeded (finished: not an endpoint) ×1"),
        "{}",
        out.stderr
    );
    // Two running pods on one address: a warning naming both.
    let twice = write(
        &dir,
        "twice.yaml",
        &format!(
            "{NAMESPACE}---\n{POD_A}---\n{}",
            POD_A.replace("name: a,", "name: a2,")
        ),
    );
    let out = run(&["matrix", "-f", &twice, "--summary"]);
    assert!(
        out.stderr
            .contains("address 10.1.0.1 belongs to 2 live pods: shop/a, shop/a2"),
        "{}",
        out.stderr
    );
}

#[test]
fn pods_of_a_deployment_dump_without_replicasets_belong_to_it() {
    // `kubectl get deploy,pods -o yaml`: the pods' owner (a ReplicaSet) is not in the input.
    let dump = format!("{NAMESPACE}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: shop}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: c}}]}}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web-7d9f-abcde\n  namespace: shop\n  labels: {{app: web, pod-template-hash: 7d9f}}\n  ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: web-7d9f, uid: u, controller: true}}]\nspec: {{containers: [{{name: c}}]}}\nstatus: {{podIP: 10.1.0.5}}\n");
    let dir = scratch("deploy");
    let path = write(&dir, "dump.yaml", &dump);
    let out = run(&["matrix", "-f", &path, "--ports", "TCP/80", "-o", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(
        json["endpoints"],
        serde_json::json!(["shop/web-7d9f-abcde"])
    );
    let out = run(&["list", "-f", &path, "-o", "json"]);
    assert!(!out.stdout.contains("ReplicaSet"), "{}", out.stdout);
    // A Deployment whose selector matches no pod still stands for its template.
    let other = dump.replace(
        "app: web}}\n  template:\n    metadata: {labels: {app: web}}",
        "app: api}}\n  template:\n    metadata: {labels: {app: api}}",
    );
    let path = write(&dir, "other.yaml", &other);
    let out = run(&["matrix", "-f", &path, "--ports", "TCP/80", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(
        json["endpoints"],
        serde_json::json!(["shop/web-0", "shop/web-7d9f-abcde"])
    );
}

#[test]
fn empty_input_is_an_error_for_every_command() {
    let dir = scratch("empty");
    let empty = dir.to_str().unwrap();
    let blank = write(&dir, "blank.yaml", "# nothing here\n---\n");
    for args in [
        vec!["audit", "-f", empty],
        vec!["matrix", "-f", empty],
        vec!["list", "-f", empty],
        vec![
            "query", "-f", empty, "--from", "10.0.0.1", "--to", "10.0.0.2", "--port", "TCP/80",
        ],
        vec!["diff", "-f", empty, "--against", empty],
        vec!["audit", "-f", "-"],
        vec!["matrix", "-f", "/nonexistent/netfence-input"],
        vec!["audit", "-f", &blank],
    ] {
        let out = bounded(&args, "", 30, 2048);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.starts_with("error: "),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("document 0"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("no manifests found") || out.stderr.contains("No such file"),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn diff_exits_1_when_connectivity_differs() {
    let dir = scratch("diff");
    let base = write(
        &dir,
        "base.yaml",
        &format!(
            "{NAMESPACE}---\n{POD_A}---\n{}",
            POD_A
                .replace("name: a,", "name: b,")
                .replace("app: a", "app: b")
                .replace("10.1.0.1", "10.1.0.2")
        ),
    );
    let deny = write(&dir, "deny.yaml", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec: {podSelector: {}}\n");
    let out = run(&["diff", "-f", &base, "--against", &base]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "no differences\n");
    let out = run(&["diff", "-f", &base, "--against", &base, "--against", &deny]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stdout.contains("diff-type: removed"), "{}", out.stdout);
}

#[test]
fn namespace_flag_places_objects_that_name_none() {
    let dir = scratch("namespace");
    let helm = write(&dir, "helm.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {app: a}}\nspec: {containers: [{name: c}]}\nstatus: {podIP: 10.1.0.1}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny}\nspec: {podSelector: {}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: other}\nspec: {containers: [{name: c}]}\nstatus: {podIP: 10.1.0.2}\n");
    let out = run(&[
        "matrix", "-f", &helm, "-n", "shop", "--ports", "TCP/80", "-o", "json",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(json["endpoints"], serde_json::json!(["other/b", "shop/a"]));
    // The deny-all landed in shop with its pod: nothing reaches shop/a.
    assert_eq!(
        json["allowed"]["TCP/80"],
        serde_json::json!([["shop/a", "other/b"]])
    );
    let out = run(&["matrix", "-f", &helm, "-n", "Not_A_Namespace", "--summary"]);
    assert_refused(
        &out,
        "--namespace \"Not_A_Namespace\": not a namespace name",
    );
}

/// A small Calico cluster: CoreDNS behind its Service, an app pod, a pod inside a network
/// set's range, and pods in a second namespace.
const CALICO_CLUSTER: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-system}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: app}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}\nspec: {containers: [{name: c, ports: [{name: dns, containerPort: 53, protocol: UDP}, {name: dns-tcp, containerPort: 53}, {name: http, containerPort: 80}]}]}\nstatus: {podIP: 10.0.0.10}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: kube-dns, namespace: kube-system}\nspec:\n  clusterIP: 10.96.0.10\n  selector: {k8s-app: kube-dns}\n  ports: [{name: dns, port: 53, protocol: UDP, targetPort: dns}, {name: dns-tcp, port: 53, protocol: TCP, targetPort: dns-tcp}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: client, namespace: app, labels: {role: client}}\nspec: {containers: [{name: c}]}\nstatus: {podIP: 10.0.1.1}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: partner, namespace: app, labels: {role: partner}}\nspec: {containers: [{name: c}]}\nstatus: {podIP: 192.0.2.7}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: other, labels: {role: web}}\nspec: {containers: [{name: c}]}\nstatus: {podIP: 10.0.2.1}\n";

/// The cluster file's directory (keep it while the file is read) and the file's path.
fn calico_cluster(tag: &str, policies: &str) -> (Scratch, String) {
    let dir = scratch(tag);
    let file = write(
        &dir,
        "cluster.yaml",
        &format!("{CALICO_CLUSTER}---\n{policies}"),
    );
    (dir, file)
}

fn verdict(file: &str, from: &str, to: &str, port: &str) -> Run {
    bounded(
        &[
            "query", "-f", file, "--from", from, "--to", to, "--port", port,
        ],
        "",
        10,
        1024,
    )
}

#[test]
fn calico_services_rules_allow_only_the_services_ports() {
    // Calico's allow-kube-dns example (docs.tigera.io, "Use service rules in policy"): egress to
    // the kube-dns Service allows its ports on CoreDNS, not every port of CoreDNS.
    let (_dir, file) = calico_cluster(
        "services",
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: allow-kube-dns}\nspec:\n  selector: all()\n  types: [Egress]\n  egress:\n  - action: Allow\n    destination:\n      services: {name: kube-dns, namespace: kube-system}\n",
    );
    let out = verdict(&file, "app/client", "kube-system/coredns", "UDP/53");
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let out = verdict(&file, "app/client", "kube-system/coredns", "TCP/80");
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("DENY"), "{}", out.stdout);
}

#[test]
fn a_selector_matching_a_network_set_matches_pods_inside_its_nets() {
    // Felix matches a selected network set by address (docs.tigera.io, GlobalNetworkSet): a
    // pod whose address lies in the set's nets is denied with the set.
    let (_dir, file) = calico_cluster(
        "netsets",
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: partners, labels: {kind: partner-net}}\nspec: {nets: [192.0.2.0/24]}\n---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: deny-partners}\nspec:\n  selector: all()\n  types: [Ingress]\n  ingress:\n  - {action: Deny, source: {selector: kind == 'partner-net'}}\n  - {action: Allow}\n",
    );
    let out = verdict(&file, "app/partner", "other/web", "TCP/80");
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let out = verdict(&file, "app/client", "other/web", "TCP/80");
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
}

#[test]
fn a_lone_not_selector_stays_in_its_policys_namespace() {
    // libcalico-go updateprocessors/rules.go: a namespaced policy's rule selectors, notSelector
    // alone included, are confined to the policy's namespace.
    let (_dir, file) = calico_cluster(
        "notselector",
        "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: only-app, namespace: app}\nspec:\n  selector: role == 'client'\n  types: [Ingress]\n  ingress:\n  - {action: Allow, source: {notSelector: role == 'nobody'}}\n",
    );
    let out = verdict(&file, "app/partner", "app/client", "TCP/80");
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let out = verdict(&file, "other/web", "app/client", "TCP/80");
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
}

#[test]
fn a_cluster_ip_is_judged_at_its_backends() {
    // Used to be "external, allowed"; the backend's ingress denies.
    let (_dir, file) = calico_cluster(
        "clusterip",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-all, namespace: kube-system}\nspec: {podSelector: {}}\n",
    );
    let out = verdict(&file, "app/client", "10.96.0.10", "UDP/53");
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("kube-system/coredns"), "{}", out.stdout);
    let out = verdict(&file, "app/client", "kube-system/svc/nothing", "UDP/53");
    assert_eq!(out.code, Some(2), "{}", out.stderr);
}

#[test]
fn a_synthetic_address_is_said_where_it_decides() {
    // A pod without status.podIP gets an invented address that no ipBlock matches.
    let (_dir, file) = calico_cluster(
        "synthetic",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: pending, namespace: app}\nspec: {containers: [{name: c}]}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: from-anywhere, namespace: other}\nspec:\n  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}]}]\n",
    );
    let out = verdict(&file, "app/pending", "other/web", "TCP/80");
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("note:"), "{}", out.stdout);
    let out = bounded(&["matrix", "-f", &file, "--summary"], "", 10, 1024);
    assert!(
        out.stdout.contains("synthetic addresses: 1 pods"),
        "{}",
        out.stdout
    );
}
