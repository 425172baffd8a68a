//! The binary on Cilium inputs: explained queries (a deny overriding an allow, the CNI named),
//! `--cni`, and the warning for skipped kinds of a policy engine.

mod common;

use common::Scratch;
use std::path::Path;
use std::process::{Command, Output};

fn netfence(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netfence"))
        .args(args)
        .output()
        .expect("run netfence")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/cilium")
        .display()
        .to_string()
}

fn temp_file(name: &str, body: &str) -> Scratch {
    Scratch::file("cilium", name, body)
}

#[test]
fn query_explains_a_cilium_deny_overriding_an_allow() {
    let dir = example();
    let denied = netfence(&[
        "query",
        "-f",
        &dir,
        "--from",
        "shop/debug",
        "--to",
        "shop/api",
        "--port",
        "TCP/8080",
    ]);
    let out = text(&denied.stdout);
    assert_eq!(denied.status.code(), Some(1), "{out}");
    assert!(
        out.contains("denied by tier cilium-deny: CiliumClusterwideNetworkPolicy no-debug-to-api rule 0 Deny"),
        "{out}"
    );
    assert!(
        out.contains("CNI cilium (DaemonSet kube-system/cilium)"),
        "{out}"
    );
    let allowed = netfence(&[
        "query", "-f", &dir, "--from", "shop/web", "--to", "shop/api", "--port", "TCP/8080", "-o",
        "json",
    ]);
    assert_eq!(allowed.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&allowed.stdout).expect("json");
    assert_eq!(json["verdict"], "allow");
    assert_eq!(json["cni"], "cilium");
    assert_eq!(
        json["ingress"]["outcome"]["rule"]["kind"],
        "CiliumNetworkPolicy"
    );
    assert_eq!(
        json["ingress"]["outcome"]["rule"]["policy"],
        "shop/api-from-shop"
    );
}

#[test]
fn the_cni_decides_whether_an_ipblock_matches_pods() {
    let input = temp_file(
        "ipblock.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x, labels: {app: a}}\nspec: {containers: [{name: c}]}\nstatus: {podIP: 10.1.0.1}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: x}\nspec: {containers: [{name: c}]}\nstatus: {podIP: 10.1.0.2}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {app: a}}\n  ingress: [{from: [{ipBlock: {cidr: 10.1.0.0/16}}]}]\n",
    );
    let path = input.display().to_string();
    let query = |cni: &str| {
        netfence(&[
            "query", "-f", &path, "--from", "x/b", "--to", "x/a", "--port", "TCP/80", "--cni", cni,
        ])
    };
    assert_eq!(query("generic").status.code(), Some(0));
    assert_eq!(query("calico").status.code(), Some(0));
    let cilium = query("cilium");
    assert_eq!(cilium.status.code(), Some(1), "{}", text(&cilium.stdout));
    assert!(text(&cilium.stdout).contains("CNI cilium (--cni)"));
    let bad = query("weave");
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("--cni"), "{}", text(&bad.stderr));
}

#[test]
fn skipped_policy_engine_kinds_warn_that_verdicts_may_be_wrong() {
    let input = temp_file(
        "skipped.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\nspec: {containers: [{name: c}]}\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny, namespace: x}\nspec: {}\n---\napiVersion: cilium.io/v2alpha1\nkind: CiliumCIDRGroup\nmetadata: {name: g}\nspec: {externalCIDRs: [1.0.0.0/8]}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: x}\n",
    );
    let out = netfence(&[
        "query",
        "-f",
        &input.display().to_string(),
        "--from",
        "x/a",
        "--to",
        "1.1.1.1",
        "--port",
        "TCP/443",
    ]);
    let err = text(&out.stderr);
    assert!(
        err.contains("skipped 1 security.istio.io/v1/AuthorizationPolicy object(s): Istio policy that netfence does not evaluate; verdicts may be wrong"),
        "{err}"
    );
    assert!(
        err.contains("cilium.io/v2alpha1/CiliumCIDRGroup object(s): Cilium policy"),
        "{err}"
    );
}

/// The renderer draws what the engine compiles under Cilium too: a NetworkPolicy ipBlock
/// that matches no pod address (the kernel suite `lab cilium` in crates/dataplane checks the
/// packets), and Cilium's deny tier with its log prefix.
#[test]
fn the_dataplane_draws_cilium_policies_and_cilium_ip_blocks() {
    let input = temp_file(
        "render.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x, labels: {app: a}}\nspec: {containers: [{name: c}]}\nstatus: {podIP: 10.1.0.1}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {app: a}}\n  ingress: [{from: [{ipBlock: {cidr: 192.0.2.0/24}}]}]\n",
    );
    let path = input.display().to_string();
    for cni in ["cilium", "generic"] {
        let rendered = netfence(&["dataplane", "render", "-f", &path, "--cni", cni]);
        assert_eq!(
            rendered.status.code(),
            Some(0),
            "{}",
            text(&rendered.stderr)
        );
        assert!(text(&rendered.stdout).contains("192.0.2.0-192.0.2.255"));
    }
    let cilium = netfence(&["dataplane", "render", "-f", &example()]);
    assert_eq!(cilium.status.code(), Some(0), "{}", text(&cilium.stderr));
    assert!(
        text(&cilium.stdout).contains("no-debug-to-api"),
        "{}",
        text(&cilium.stdout)
    );
}
