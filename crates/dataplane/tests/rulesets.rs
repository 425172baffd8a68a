//! Rendered rulesets: snapshot tests (reviewed in diffs; `UPDATE_EXPECT=1` rewrites them),
//! kernel validation (`nft -c` inside a throwaway namespace), incremental updates that give
//! the same kernel behaviour as a full load, and updates under traffic that keep established
//! connections. Needs root, iproute2 and nftables, as CI has.

mod common;

use common::{assert_kernel_matches, require_root};

use netfence_conformance::k8s_e2e_cases;
use netfence_dataplane::{render, Lab, RenderOptions, Ruleset};
use netfence_engine::{Engine, ProbePort};
use netfence_model::Loader;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn engine_of(files: &[(&str, &str)]) -> Engine {
    let mut loader = Loader::new();
    for (name, text) in files {
        loader.load_str(name, text);
    }
    Engine::new(loader.finish().expect("loads"))
}

fn e2e_engine(case_file: &str, extra_policies: &str) -> Engine {
    let case = k8s_e2e_cases()
        .into_iter()
        .find(|c| c.file == case_file)
        .expect("case");
    engine_of(&[
        ("inventory.yaml", &case.inventory),
        (case_file, &case.policies),
        ("extra.yaml", extra_policies),
    ])
}

fn check_snapshot(name: &str, actual: &str) {
    let path = repo().join("crates/dataplane/tests/snapshots").join(name);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing snapshot {} (run with UPDATE_EXPECT=1)",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "snapshot {name} differs (UPDATE_EXPECT=1 to accept)"
    );
}

/// `nft -c -f` (check only) in a namespace of its own, so nothing outside it is touched.
fn nft_check(script: &str) {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let ns = format!("nfchk{}-{n}", std::process::id());
    assert!(Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .expect("ip")
        .success());
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns, "nft", "-c", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nft");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    assert!(
        output.status.success(),
        "nft rejects the ruleset: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn eks_guide_ruleset_snapshot_and_kernel_check() {
    require_root();
    let mut loader = Loader::new();
    loader.load_path(&repo().join("examples/eks-guide"));
    let engine = Engine::new(loader.finish().expect("example loads"));
    let ruleset = render(&engine, &RenderOptions::default()).expect("render");
    assert_eq!(
        ruleset.isolated_endpoints, 4,
        "every pod but CoreDNS is isolated"
    );
    check_snapshot("eks-guide.nft", &ruleset.script());
    nft_check(&ruleset.script());
}

/// Every kind of tier in one ruleset: admin, a Calico tier with `defaultAction: Pass`, the
/// default tier (Calico and Kubernetes policies), baseline. The snapshot shows the chain
/// structure; nft accepts it; the kernel, loaded with it, agrees with the engine.
#[test]
fn tiered_ruleset_snapshot_kernel_check_and_lab() {
    require_root();
    let engine = engine_of(&[("tiers.yaml", include_str!("data/tiers.yaml"))]);
    let ruleset = render(&engine, &RenderOptions::default()).expect("render");
    let script = ruleset.script();
    // Pass jumps on to the pod's next tier; Deny and the ends of tiers are counted and logged
    // under the tier and policy that decided, behind the id the agent names them by.
    assert!(script.contains("goto "), "{script}");
    let (id, _) = ruleset
        .logs
        .iter()
        .find(|(_, source)| {
            source.tier == "security"
                && matches!(&source.rule, netfence_dataplane::nflog::LogRule::Rule { policy, index: 1, action }
                    if policy.name == "security.guard" && action == "Deny")
        })
        .expect("the Deny rule's log id");
    assert!(
        script.contains(&format!(
            "log prefix \"netfence Deny {id} Ingress security/security.guard rule 1 \" group 28262 drop"
        )),
        "{script}"
    );
    // A rule with two peers is one nft rule per peer (Deny, Pass and Allow alike), each with
    // the rule's comment and log id; a named port both peers resolve on the same destination
    // renders once.
    let per_chain = |comment: &str| -> Vec<usize> {
        ruleset
            .chains
            .values()
            .map(|chain| {
                let named =
                    |r: &&netfence_dataplane::rule::NftRule| r.comment.as_deref() == Some(comment);
                chain.rules.iter().filter(named).count()
            })
            .filter(|&n| n > 0)
            .collect()
    };
    for two_peers in ["ops-first rule 0", "default rule 0", "app/web rule 0"] {
        let counts = per_chain(two_peers);
        assert!(
            !counts.is_empty() && counts.iter().all(|&n| n == 2),
            "{two_peers}: {counts:?}\n{script}"
        );
    }
    assert_eq!(per_chain("app/api-out rule 0"), vec![1], "{script}");
    check_snapshot("tiers.nft", &script);
    nft_check(&script);
    let ports: Vec<ProbePort> = ["TCP/22", "TCP/5432", "TCP/8080", "TCP/9000", "UDP/53"]
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
    let lab = Lab::build(&engine, &ports).expect("lab");
    lab.apply(&ruleset).expect("apply");
    assert_kernel_matches(&lab, &engine, &ports);
}

#[test]
fn every_e2e_ruleset_passes_the_kernel_check() {
    require_root();
    for case in k8s_e2e_cases() {
        let engine = engine_of(&[
            ("inventory.yaml", &case.inventory),
            (&case.file, &case.policies),
        ]);
        nft_check(
            &render(&engine, &RenderOptions::default())
                .expect("render")
                .script(),
        );
    }
}

const ALLOW_Y_FROM_X: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-from-x, namespace: y}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: x}}}]
    ports: [{port: 80}]
";

#[test]
fn incremental_update_behaves_like_a_full_load_and_touches_only_what_changed() {
    require_root();
    let ports: Vec<ProbePort> = vec!["TCP/80".parse().unwrap(), "TCP/81".parse().unwrap()];
    let before = e2e_engine("001-default-deny-ingress.yaml", "");
    let after = e2e_engine("001-default-deny-ingress.yaml", ALLOW_Y_FROM_X);
    let old = render(&before, &RenderOptions::default()).expect("render");
    let new = render(&after, &RenderOptions::default()).expect("render");
    let script = new.update_script(&old);
    // Only namespace y's pods gain chains; x's chains are untouched.
    for name in old.chains.keys() {
        assert!(
            !script.contains(name.as_str()),
            "unchanged chain {name} touched:\n{script}"
        );
    }
    // y's three pods render alike: they share one new tier chain, each gets its own entry
    // chain, and the update points their three map elements at those.
    assert_eq!(
        new.chains.len(),
        old.chains.len() + 4,
        "one tier chain shared by y's pods and one entry chain per pod:\n{script}"
    );
    let y_pods = after
        .inventory()
        .pods()
        .iter()
        .filter(|p| p.namespace == "y")
        .count();
    assert_eq!(
        script.matches(" : jump ").count(),
        y_pods,
        "one map element per pod of y:\n{script}"
    );
    assert!(
        new.update_script(&new).is_empty(),
        "no change, no transaction"
    );

    let lab = Lab::build(&before, &ports).expect("lab");
    lab.apply(&old).expect("full load");
    assert_kernel_matches(&lab, &before, &ports);
    assert!(lab.update(&old, &new).expect("incremental update"));
    assert_kernel_matches(&lab, &after, &ports);
    assert!(lab.update(&new, &old).expect("and back"));
    assert_kernel_matches(&lab, &before, &ports);
}

#[test]
fn updates_under_traffic_keep_established_connections() {
    require_root();
    let ports: Vec<ProbePort> = vec!["TCP/80".parse().unwrap()];
    // x/a may reach x/b on 80 in both versions; the versions differ in namespace y.
    let base = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-from-a, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress: [{from: [{podSelector: {matchLabels: {pod: a}}}], ports: [{port: 80}]}]
";
    let v1 = e2e_engine("016-allow-all.yaml", base);
    let v2 = e2e_engine(
        "016-allow-all.yaml",
        &format!("{base}---\n{ALLOW_Y_FROM_X}"),
    );
    let (r1, r2): (Ruleset, Ruleset) = (
        render(&v1, &RenderOptions::default()).expect("render"),
        render(&v2, &RenderOptions::default()).expect("render"),
    );
    let lab = Lab::build(&v1, &ports).expect("lab");
    lab.apply(&r1).expect("load");
    let inventory = v1.inventory();
    let a = inventory.pod_by_key("x", "a").unwrap();
    let b = inventory.pod_by_key("x", "b").unwrap();
    let mut stream = lab
        .connect(a, b, 80, Duration::from_secs(2))
        .expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut round_trip = |i: usize| {
        let message = format!("ping {i:06}");
        stream.write_all(message.as_bytes()).expect("write");
        let mut reply = vec![0u8; message.len()];
        stream
            .read_exact(&mut reply)
            .unwrap_or_else(|e| panic!("echo {i} lost: {e}"));
        assert_eq!(reply, message.as_bytes());
    };
    let started = Instant::now();
    let mut trips = 0;
    for update in 0..20 {
        // Alternate full replaces and incremental updates between the two versions.
        let (from, to) = if update % 2 == 0 {
            (&r1, &r2)
        } else {
            (&r2, &r1)
        };
        if update % 4 < 2 {
            lab.apply(to).expect("full apply");
        } else {
            lab.update(from, to).expect("incremental update");
        }
        for _ in 0..10 {
            round_trip(trips);
            trips += 1;
        }
    }
    assert_eq!(trips, 200);
    assert!(started.elapsed() < Duration::from_secs(60));
    // And the ruleset in force still answers as predicted.
    assert_kernel_matches(&lab, &v1, &ports);
}

/// What nft cannot match exactly is refused with the reason, naming the rule: HTTP matches,
/// Calico source ports (the analyser does not model them), egress named `notPorts`.
#[test]
fn rules_nft_cannot_match_exactly_are_refused_with_the_reason() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\nspec: {containers: [{name: c}]}\nstatus: {podIP: 10.0.0.1}\n---\n";
    let head = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec:\n  selector: all()\n";
    for (rule, reason) in [
        (
            "  ingress: [{action: Allow, protocol: TCP, http: {methods: [GET]}}]\n",
            "HTTP",
        ),
        (
            "  ingress: [{action: Allow, protocol: TCP, source: {ports: [1234]}}]\n",
            "source ports",
        ),
        (
            "  egress: [{action: Allow, protocol: TCP, destination: {notPorts: [http]}}]\n",
            "notPorts",
        ),
    ] {
        let engine = engine_of(&[("p.yaml", &format!("{pod}{head}{rule}"))]);
        let error = render(&engine, &RenderOptions::default())
            .expect_err("refused")
            .to_string();
        assert!(
            error.contains(reason) && error.contains("p.yaml") && error.contains("rule 0"),
            "{rule}: {error}"
        );
    }
}
