//! The netlink path against `nft -f`: the same rendered ruleset loaded both ways, each into a
//! network namespace of its own, must list the same (`nft list table inet netfence`), for
//! every input kind the renderer accepts (Kubernetes, Calico tiers, admin policies, Cilium)
//! and a generated cluster; incremental updates likewise; and a transaction the kernel
//! refuses names the refused object. Needs root, iproute2 and nftables, as CI has.

mod common;

#[path = "../../engine/tests/network-policy-api/harness.rs"]
mod harness;

#[path = "../../engine/tests/cilium/harness.rs"]
mod cilium;

use common::require_root;
use netfence_conformance::k8s_e2e_cases;
use netfence_dataplane::nft::{apply_with, flush_with, list, run, update_with, Backend};
use netfence_dataplane::rule::{
    AddressField, Element, ElementKind, Family, IcmpField, Match, NftRule, Operand, Verdict,
};
use netfence_dataplane::{render, PodGuard, RenderOptions, Ruleset};
use netfence_engine::Engine;
use netfence_model::Loader;
use std::path::Path;

/// Two network namespaces, deleted on drop.
struct Pair {
    cli: String,
    netlink: String,
}

impl Pair {
    fn new(tag: &str) -> Pair {
        let pair = Pair {
            cli: format!("nfnl{tag}c{}", std::process::id()),
            netlink: format!("nfnl{tag}n{}", std::process::id()),
        };
        for ns in [&pair.cli, &pair.netlink] {
            run(None, "ip", &["netns", "add", ns], None).expect("ip netns add");
        }
        pair
    }

    /// Load `ruleset` both ways and compare the listings.
    fn compare(&self, label: &str, ruleset: &Ruleset) -> Result<(), String> {
        apply_with(Backend::NftCli, ruleset, Some(&self.cli))
            .map_err(|e| format!("{label}: nft -f: {e}"))?;
        apply_with(Backend::Netlink, ruleset, Some(&self.netlink))
            .map_err(|e| format!("{label}: netlink: {e}"))?;
        self.same_listing(label)
    }

    fn same_listing(&self, label: &str) -> Result<(), String> {
        let by_cli = list(Some(&self.cli)).map_err(|e| format!("{label}: list: {e}"))?;
        let by_netlink = list(Some(&self.netlink)).map_err(|e| format!("{label}: list: {e}"))?;
        if by_cli != by_netlink {
            let first = by_cli
                .lines()
                .zip(by_netlink.lines())
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("nft -f:   {a}\nnetlink: {b}"))
                .unwrap_or_else(|| "one listing is a prefix of the other".into());
            return Err(format!(
                "{label}: listings differ; first difference:\n{first}"
            ));
        }
        Ok(())
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.cli, &self.netlink] {
            let _ = run(None, "ip", &["netns", "del", ns], None);
        }
    }
}

fn engine_of(files: &[(&str, &str)]) -> Engine {
    let mut loader = Loader::new();
    for (name, text) in files {
        loader.load_str(name, text);
    }
    Engine::new(loader.finish().expect("loads"))
}

fn example(dir: &str) -> Engine {
    let mut loader = Loader::new();
    loader.load_path(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(dir),
    );
    Engine::new(loader.finish().expect("example loads"))
}

fn generated(pods: usize, calico: usize, admin: usize, extra: &str) -> Engine {
    let options = netfence_gen::GenOptions {
        pods,
        namespaces: (pods / 50).max(2),
        policies: pods / 10,
        calico,
        admin,
        seed: 7,
    };
    let mut files = netfence_gen::generate(&options).expect("gen");
    files.push(("extra.yaml".into(), extra.into()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    engine_of(&refs)
}

/// Every input the renderer accepts, labelled: the examples, the tiered test cluster, the
/// Kubernetes e2e cases, the Calico scenarios, the network-policy-api tests, the Cilium cases
/// and a generated tiered cluster.
fn inputs() -> Vec<(String, Engine)> {
    let mut out = Vec::new();
    for dir in ["eks-guide", "calico-guide", "cilium"] {
        out.push((format!("examples/{dir}"), example(dir)));
    }
    out.push((
        "tests/data/tiers.yaml".into(),
        engine_of(&[("tiers.yaml", include_str!("data/tiers.yaml"))]),
    ));
    for case in k8s_e2e_cases() {
        out.push((
            format!("e2e {}", case.file),
            engine_of(&[
                ("inventory.yaml", &case.inventory),
                (&case.file, &case.policies),
            ]),
        ));
    }
    #[derive(serde::Deserialize)]
    struct Scenario {
        name: String,
        policies: String,
    }
    let scenarios: Vec<Scenario> =
        serde_yaml_ng::from_str(include_str!("../../engine/tests/calico/scenarios.yaml"))
            .expect("scenarios parse");
    for s in scenarios {
        out.push((
            format!("calico scenario {}", s.name),
            engine_of(&[
                (
                    "base.yaml",
                    include_str!("../../engine/tests/calico/base.yaml"),
                ),
                ("policies.yaml", &s.policies),
            ]),
        ));
    }
    let suite: harness::Suite = serde_yaml_ng::from_str(include_str!(
        "../../engine/tests/network-policy-api/conformance.yaml"
    ))
    .expect("suite parses");
    for test in &suite.tests {
        let mut loader = Loader::new();
        loader.load_str("conformance/base/manifests.yaml", &suite.fixture);
        loader.load_str(&test.file, &test.policies);
        let mut inventory = loader.finish().expect("test loads");
        harness::place_pods(&mut inventory);
        out.push((
            format!("network-policy-api {}", test.file),
            Engine::new(inventory),
        ));
    }
    for (file, text) in cilium::FILES {
        for case in cilium::cases(file, text) {
            if case.not_expressible.is_some() {
                continue;
            }
            out.push((
                format!("cilium {file} {}", case.name),
                Engine::new(cilium::inventory_for(&case, true)),
            ));
        }
    }
    out.push(("generated tiered".into(), generated(400, 8, 4, "")));
    out
}

#[test]
fn netlink_and_nft_load_the_same_table_for_every_input() {
    require_root();
    let pair = Pair::new("a");
    let (mut compared, mut refused, mut failures) = (0, 0, Vec::new());
    let mut kinds = std::collections::BTreeSet::new();
    for (label, engine) in inputs() {
        let ruleset = match render(&engine, &RenderOptions::default()) {
            Ok(ruleset) => ruleset,
            // What the renderer refuses has no table to compare.
            Err(_) => {
                refused += 1;
                continue;
            }
        };
        for rule in ruleset.chains.values().flat_map(|c| &c.rules) {
            for m in &rule.matches {
                kinds.insert(
                    format!("{m:?}")
                        .split([' ', '('])
                        .next()
                        .unwrap_or("")
                        .to_string(),
                );
            }
        }
        compared += 1;
        if let Err(e) = pair.compare(&label, &ruleset) {
            failures.push(e);
        }
    }
    // Forms the inputs above may not reach, appended by hand to a rendered chain: an
    // exclusion of several protocols, port and address ranges (equal and not), ICMPv6 type
    // and code, a Log rule without verdict.
    let mut extra = render(
        &engine_of(&[("tiers.yaml", include_str!("data/tiers.yaml"))]),
        &RenderOptions::default(),
    )
    .expect("render");
    let port = |negated, first, last| Match::DestinationPort {
        negated,
        value: Operand::Single(Element {
            kind: ElementKind::Port,
            first,
            last,
        }),
    };
    let l4 = |protocol| Match::L4Proto {
        negated: false,
        protocol,
    };
    let icmp6 = |field, negated, value| Match::Icmp {
        v6: true,
        field,
        negated,
        value,
    };
    let v6_range = Match::Address {
        family: Family::V6,
        field: AddressField::Source,
        value: Operand::Single(Element {
            kind: ElementKind::V6,
            first: 0xfd00 << 112,
            last: (0xfd00 << 112) + 0xffff,
        }),
    };
    let hand_made = vec![
        vec![Match::L4ProtoNotIn(vec![6, 17, 132])],
        vec![l4(6), port(true, 1000, 2000)],
        vec![
            v6_range.clone(),
            l4(17),
            port(false, 53, 53),
            port(true, 5353, 5353),
        ],
        vec![
            l4(58),
            icmp6(IcmpField::Type, false, 128),
            icmp6(IcmpField::Code, false, 0),
        ],
        vec![icmp6(IcmpField::Type, true, 1)],
        vec![
            v6_range,
            l4(58),
            icmp6(IcmpField::Type, false, 2),
            icmp6(IcmpField::Code, true, 3),
        ],
    ];
    let chain = extra.chains.values_mut().next().expect("a chain");
    for (i, matches) in hand_made.into_iter().enumerate() {
        chain.rules.insert(
            0,
            NftRule {
                matches,
                log: (i % 2 == 0).then(|| format!("hand made {i} ")),
                verdict: (i % 3 != 0).then_some(Verdict::Return),
                comment: Some(format!("hand made {i}")),
                ..NftRule::default()
            },
        );
    }
    for rule in extra.chains.values().flat_map(|c| &c.rules) {
        for m in &rule.matches {
            kinds.insert(
                format!("{m:?}")
                    .split([' ', '('])
                    .next()
                    .unwrap_or("")
                    .to_string(),
            );
        }
    }
    if let Err(e) = pair.compare("hand-made forms", &extra) {
        failures.push(e);
    }
    println!("{compared} rulesets compared, {refused} refused by the renderer");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The inputs exercise every match form the renderer has.
    assert_eq!(kinds.len(), 6, "match forms exercised: {kinds:?}");
    assert!(compared > 150, "only {compared} rulesets compared");
}

#[test]
fn netlink_updates_leave_the_same_table_as_nft_updates() {
    require_root();
    let pair = Pair::new("u");
    let base = include_str!("../../engine/tests/calico/base.yaml");
    #[derive(serde::Deserialize)]
    struct Scenario {
        policies: String,
    }
    let scenarios: Vec<Scenario> =
        serde_yaml_ng::from_str(include_str!("../../engine/tests/calico/scenarios.yaml"))
            .expect("scenarios parse");
    let mut rulesets: Vec<(String, Ruleset)> = scenarios
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let engine = engine_of(&[("base.yaml", base), ("policies.yaml", &s.policies)]);
            render(&engine, &RenderOptions::default())
                .ok()
                .map(|r| (format!("calico scenario {i}"), r))
        })
        .collect();
    let change = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: change, namespace: ns1}\nspec:\n  podSelector: {}\n  ingress: [{from: [{podSelector: {}}], ports: [{port: 7777}]}]\n";
    for (label, extra) in [("generated", ""), ("generated + change", change)] {
        let engine = generated(300, 6, 3, extra);
        rulesets.push((
            label.into(),
            render(&engine, &RenderOptions::default()).expect("render"),
        ));
    }
    let mut failures = Vec::new();
    let mut changed = 0;
    for pair_of in rulesets.windows(2) {
        let ((from_label, from), (to_label, to)) = (&pair_of[0], &pair_of[1]);
        let label = format!("{from_label} -> {to_label}");
        let result = (|| {
            apply_with(Backend::NftCli, from, Some(&pair.cli)).map_err(|e| e.to_string())?;
            apply_with(Backend::Netlink, from, Some(&pair.netlink)).map_err(|e| e.to_string())?;
            let by_cli = update_with(Backend::NftCli, from, to, Some(&pair.cli))
                .map_err(|e| e.to_string())?;
            let by_netlink = update_with(Backend::Netlink, from, to, Some(&pair.netlink))
                .map_err(|e| e.to_string())?;
            if by_cli != by_netlink {
                return Err(format!("changed: nft {by_cli}, netlink {by_netlink}"));
            }
            changed += usize::from(by_netlink);
            pair.same_listing(&label)
        })();
        if let Err(e) = result {
            failures.push(format!("{label}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(changed > 50, "only {changed} updates changed anything");
}

#[test]
fn a_refused_transaction_names_the_object_and_changes_nothing() {
    require_root();
    let pair = Pair::new("e");
    let engine = engine_of(&[("tiers.yaml", include_str!("data/tiers.yaml"))]);
    let good = render(&engine, &RenderOptions::default()).expect("render");
    apply_with(Backend::Netlink, &good, Some(&pair.netlink)).expect("apply");
    let before = list(Some(&pair.netlink)).expect("list");
    // A rule that jumps to a chain that does not exist: the kernel refuses it (ENOENT).
    let mut bad = good.clone();
    let (name, chain) = bad.chains.iter_mut().next().expect("a chain");
    let name = name.clone();
    chain
        .rules
        .push(NftRule::verdict(Verdict::Goto("tnosuchchain".into())));
    // Rules changed by hand: so does the digest an update compares.
    chain.digest = !chain.digest;
    let index = chain.rules.len() - 1;
    let error = apply_with(Backend::Netlink, &bad, Some(&pair.netlink))
        .expect_err("the kernel refuses a goto to a missing chain")
        .to_string();
    assert!(
        error.contains(&format!(
            "rule {index} of chain inet netfence {name}: goto tnosuchchain"
        )) && error.contains("No such file or directory"),
        "{error}"
    );
    // A comment nft would refuse (over 128 bytes) is refused before anything is sent.
    let mut long = good.clone();
    let chain = long.chains.values_mut().next().expect("a chain");
    chain.rules[0].comment = Some("x".repeat(129));
    for backend in [Backend::NftCli, Backend::Netlink] {
        let error = apply_with(backend, &long, Some(&pair.netlink))
            .expect_err("comment too long")
            .to_string();
        assert!(error.contains("128"), "{backend:?}: {error}");
    }
    // The transaction is atomic: the table is as before.
    assert_eq!(list(Some(&pair.netlink)).expect("list"), before);
    // So is a refused update.
    let error =
        netfence_dataplane::nft::update_with(Backend::Netlink, &good, &bad, Some(&pair.netlink))
            .expect_err("refused update")
            .to_string();
    assert!(error.contains("tnosuchchain"), "{error}");
    assert_eq!(list(Some(&pair.netlink)).expect("list"), before);
}

#[test]
fn netlink_flush_removes_only_the_table_and_tolerates_its_absence() {
    require_root();
    let pair = Pair::new("f");
    let ns = Some(pair.netlink.as_str());
    run(
        ns,
        "nft",
        &["add table inet other; add chain inet other c"],
        None,
    )
    .expect("other table");
    let engine = example("eks-guide");
    apply_with(
        Backend::Netlink,
        &render(&engine, &RenderOptions::default()).expect("render"),
        ns,
    )
    .expect("apply");
    assert!(list(ns).is_ok());
    flush_with(Backend::Netlink, ns).expect("flush");
    assert!(list(ns).is_err(), "table gone");
    flush_with(Backend::Netlink, ns).expect("flushing an absent table is not an error");
    let rest = run(ns, "nft", &["list", "ruleset"], None).expect("list ruleset");
    assert!(rest.contains("table inet other"), "{rest}");
}

/// The agent's new-pod guard ([`PodGuard`]): its sets, the forward chain's drops by range and
/// by interface (wildcard, exact, escaped), its known pods added and removed in an update's
/// transaction, and full replaces when its ranges or interfaces change or it comes or goes:
/// the same listing through both paths after every step, applied whole and as an update.
#[test]
fn guarded_rulesets_load_and_update_the_same_through_both_paths() {
    require_root();
    let pair = Pair::new("g");
    let change = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: change, namespace: ns1}\nspec:\n  podSelector: {}\n  ingress: [{from: [{podSelector: {}}], ports: [{port: 7777}]}]\n";
    let before = render(&generated(300, 6, 3, ""), &RenderOptions::default()).expect("render");
    let after = render(&generated(300, 6, 3, change), &RenderOptions::default()).expect("render");
    let pods: Vec<std::net::IpAddr> = before
        .maps
        .values()
        .flat_map(|m| m.keys().copied())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(pods.len() > 20, "only {} pod addresses", pods.len());
    let v6: Vec<std::net::IpAddr> = ["fd00::10", "fd00::11", "fd00::12"]
        .iter()
        .map(|a| a.parse().expect("address"))
        .collect();
    let cidr = |c: &str| -> ipnet::IpNet { c.parse().expect("cidr") };
    let guarded = |base: &Ruleset,
                   cidrs: &[&str],
                   interfaces: &[&str],
                   known: &mut dyn Iterator<Item = std::net::IpAddr>| {
        let mut ruleset = base.clone();
        ruleset.guard = Some(PodGuard {
            cidrs: cidrs.iter().map(|c| cidr(c)).collect(),
            interfaces: interfaces.iter().map(ToString::to_string).collect(),
            known: known.collect(),
        });
        ruleset
    };
    let half = pods.len() / 2;
    let steps: Vec<(&str, Ruleset)> = vec![
        (
            "v4 range, first half known",
            guarded(
                &before,
                &["10.0.0.0/8"],
                &[],
                &mut pods[..half].iter().copied(),
            ),
        ),
        (
            "same guard, policy changed, second half known (elements added and removed)",
            guarded(
                &after,
                &["10.0.0.0/8"],
                &[],
                &mut pods[half..].iter().copied(),
            ),
        ),
        (
            "same guard, every pod known, v6 pods too",
            guarded(
                &after,
                &["10.0.0.0/8"],
                &[],
                &mut pods.iter().chain(&v6).copied(),
            ),
        ),
        (
            "interfaces added: wildcard, exact, escaped star (full replace)",
            guarded(
                &after,
                &["10.0.0.0/8"],
                &["veth*", "eth0", "cali\\*"],
                &mut pods.iter().copied(),
            ),
        ),
        (
            "v6 range and several v4 ranges, interfaces only a wildcard",
            guarded(
                &before,
                &["10.0.0.0/16", "10.64.0.0/10", "fd00::/64"],
                &["eni*"],
                &mut pods[..half].iter().chain(&v6[..1]).copied(),
            ),
        ),
        (
            "interfaces only, nothing known",
            guarded(&before, &[], &["lxc*"], &mut std::iter::empty()),
        ),
        ("no guard", before.clone()),
        (
            "guard again",
            guarded(&after, &["10.0.0.0/8"], &[], &mut pods.iter().copied()),
        ),
    ];
    let mut failures = Vec::new();
    for (label, ruleset) in &steps {
        if let Err(e) = pair.compare(label, ruleset) {
            failures.push(e);
        }
    }
    // The listing holds what the guard asks for (so the comparisons above compare it).
    let listing = list(Some(&pair.netlink)).expect("list");
    assert!(
        listing.contains("set known_v4") && listing.contains("@local_v4"),
        "{listing}"
    );
    let mut updates = 0;
    for step in steps.windows(2) {
        let ((from_label, from), (to_label, to)) = (&step[0], &step[1]);
        let label = format!("{from_label} -> {to_label}");
        let result = (|| {
            apply_with(Backend::NftCli, from, Some(&pair.cli)).map_err(|e| e.to_string())?;
            apply_with(Backend::Netlink, from, Some(&pair.netlink)).map_err(|e| e.to_string())?;
            let by_cli = update_with(Backend::NftCli, from, to, Some(&pair.cli))
                .map_err(|e| format!("nft -f: {e}"))?;
            let by_netlink = update_with(Backend::Netlink, from, to, Some(&pair.netlink))
                .map_err(|e| format!("netlink: {e}"))?;
            if by_cli != by_netlink {
                return Err(format!("changed: nft {by_cli}, netlink {by_netlink}"));
            }
            updates += usize::from(by_netlink);
            pair.same_listing(&label)
        })();
        if let Err(e) = result {
            failures.push(format!("{label}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(updates, steps.len() - 1, "every step changes the table");
    // The interface names nft refuses are refused by the netlink path too, naming the
    // interface, and change nothing.
    let before_listing = list(Some(&pair.netlink)).expect("list");
    for name in ["*", "abcdefghijklmnop", "abcdefghijklmno*"] {
        let bad = guarded(&before, &[], &[name], &mut std::iter::empty());
        for backend in [Backend::NftCli, Backend::Netlink] {
            let error = apply_with(backend, &bad, Some(&pair.netlink))
                .expect_err("refused interface name")
                .to_string();
            if backend == Backend::Netlink {
                assert!(
                    error.contains(&format!("pod interface \"{name}\"")),
                    "{error}"
                );
            }
        }
    }
    assert_eq!(list(Some(&pair.netlink)).expect("list"), before_listing);
}
