//! The incremental engine equals a from-scratch build after every change.
//!
//! Random change sequences (create, replace and delete of every kind `what-if` takes) are
//! applied to a [`Cluster`]; after every step the same objects are loaded from scratch, and
//! the two engines must agree on the policies selecting each pod, the connection list, the
//! pod matrix on every port policies mention, the pod classes, and every explanation; the delta the cluster
//! returned must equal `diff` of the from-scratch engines before and after the step.

use netfence_engine::ir::PolicySource;
use netfence_engine::{connlist, default_ports, diff, Cluster, Endpoint, Engine, Matrix};
use netfence_model::{Loader, ObjectKey, ObjectKind, PodId, PolicyType, Protocol};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

mod random;
use random::*;

/// The objects of the current configuration, one YAML document each.
type Docs = BTreeMap<ObjectKey, String>;

/// A loader with each document read from a file named after its object, so that an object
/// has the same origin whether it was applied or loaded from scratch.
fn loader_of<'a>(docs: impl IntoIterator<Item = (&'a ObjectKey, &'a String)>) -> Loader {
    let mut loader = Loader::new();
    for (key, doc) in docs {
        loader.load_str(&format!("{key}.yaml"), doc);
    }
    loader
}

/// The key of a one-object document, as the loader reads it.
fn key_of(doc: &str) -> Option<ObjectKey> {
    let mut one = Loader::new();
    one.load_str("object.yaml", doc);
    let changes = Loader::new().apply(one, &[]).ok()?;
    changes.into_iter().next().map(|c| c.key)
}

fn documents(yaml: &str) -> Vec<String> {
    yaml.split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Objects the two random cluster builders do not write: service accounts, admin and
/// baseline policies, a Calico tier (and policies in it), Cilium policies, Deployments.
fn extras(g: &mut Gen) -> Vec<String> {
    let mut out = Vec::new();
    let ns = g.pick(&NAMESPACES);
    out.push(format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {}, namespace: {ns}, labels: {}}}\n",
        g.pick(&["sa0", "sa1"]),
        g.pick(&["{team: a}", "{team: b}", "{}"])
    ));
    let action = |g: &mut Gen| g.pick(&["Allow", "Deny", "Pass"]).to_string();
    out.push(format!(
        "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {{name: anp{}}}\nspec:\n  priority: {}\n  subject: {{pods: {{namespaceSelector: {}, podSelector: {}}}}}\n  ingress: [{{name: r, action: {}, from: [{{namespaces: {}}}]}}]\n  egress: [{{name: e, action: {}, to: [{{pods: {{namespaceSelector: {{}}, podSelector: {}}}}}], ports: [{{portNumber: {{protocol: TCP, port: 80}}}}]}}]\n",
        g.below(2),
        g.below(3) * 10 + 1,
        selector(g),
        selector(g),
        action(g),
        selector(g),
        action(g),
        selector(g),
    ));
    out.push(format!(
        "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {{name: default}}\nspec:\n  subject: {{namespaces: {}}}\n  ingress: [{{name: d, action: {}, from: [{{namespaces: {}}}]}}]\n",
        selector(g),
        g.pick(&["Allow", "Deny"]),
        selector(g),
    ));
    out.push(format!(
        "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {{name: security}}\nspec: {{order: {}, defaultAction: {}}}\n",
        g.below(3) * 100 + 50,
        g.pick(&["Deny", "Pass"])
    ));
    out.push(format!(
        "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: security.g{}}}\nspec:\n  tier: security\n  order: {}\n  selector: '{}'\n  types: [Ingress]\n  ingress: [{{action: {}, source: {{selector: '{}'}}}}]\n",
        g.below(2),
        g.below(3),
        calico_selector_text(g),
        g.pick(&["Allow", "Deny", "Pass"]),
        calico_selector_text(g),
    ));
    // Cilium rules: a namespaced and a clusterwide one (deny rules, isolating or not).
    for (kind, metadata) in [
        (
            "CiliumNetworkPolicy",
            format!("{{name: cnp{}, namespace: {ns}}}", g.below(2)),
        ),
        (
            "CiliumClusterwideNetworkPolicy",
            format!("{{name: ccnp{}}}", g.below(2)),
        ),
    ] {
        let mut doc = format!(
            "apiVersion: cilium.io/v2\nkind: {kind}\nmetadata: {metadata}\nspec:\n  endpointSelector: {}\n  ingress: [{{fromEndpoints: [{}], toPorts: [{{ports: [{{port: '80', protocol: TCP}}]}}]}}]\n",
            selector(g),
            selector(g),
        );
        if g.chance(40) {
            let _ = writeln!(doc, "  egressDeny: [{{toEndpoints: [{}]}}]", selector(g));
        }
        if g.chance(30) {
            let _ = writeln!(
                doc,
                "  enableDefaultDeny: {{ingress: false, egress: false}}"
            );
        }
        out.push(doc);
    }
    out.push(format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d{}, namespace: {ns}}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: {}}}}}\n  template:\n    metadata: {{labels: {{app: {}}}}}\n    spec: {{containers: [{{name: c, ports: [{{name: web, containerPort: 80}}]}}]}}\n",
        g.below(2),
        g.pick(&VALUES),
        g.pick(&VALUES),
    ));
    out
}

/// A random object document: from a whole random cluster of either language, or an extra.
fn random_document(g: &mut Gen) -> String {
    let seed = g.next();
    let mut pool = match g.below(3) {
        0 => documents(&random_cluster(seed)),
        1 => documents(&random_calico_cluster(seed)),
        _ => extras(g),
    };
    let at = g.below(pool.len() as u64) as usize;
    pool.swap_remove(at)
}

/// A pod document with its labels drawn again.
fn relabelled(doc: &str, g: &mut Gen) -> Option<String> {
    let start = doc.find("labels: {")? + "labels: ".len();
    let end = start + doc[start..].find('}')? + 1;
    Some(format!("{}{}{}", &doc[..start], labels(g), &doc[end..]))
}

/// The policy kinds a retouch may change.
const POLICY_KINDS: [ObjectKind; 7] = [
    ObjectKind::NetworkPolicy,
    ObjectKind::CalicoNetworkPolicy,
    ObjectKind::CalicoGlobalNetworkPolicy,
    ObjectKind::AdminNetworkPolicy,
    ObjectKind::BaselineAdminNetworkPolicy,
    ObjectKind::CiliumNetworkPolicy,
    ObjectKind::CiliumClusterwideNetworkPolicy,
];

/// A policy document with one port number or one label value drawn again: one rule's ports
/// or peers changed (or the subject's selector), every other rule and the policy's place
/// kept, as the delta's region (`region.rs`) narrows such a change.
fn retouched(doc: &str, g: &mut Gen) -> Option<String> {
    const NUMBERS: [&str; 4] = ["80", "81", "8080", "443"];
    let alone = |at: usize, len: usize| {
        let bytes = doc.as_bytes();
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.';
        (at == 0 || !word(bytes[at - 1])) && bytes.get(at + len).is_none_or(|&b| !word(b))
    };
    let mut spots: Vec<(usize, &str, &[&str])> = Vec::new();
    for (family, tokens) in [(&NUMBERS[..], &NUMBERS[..]), (&VALUES[..], &VALUES[..])] {
        for token in tokens {
            for (at, _) in doc.match_indices(token) {
                if alone(at, token.len()) && !doc[..at].ends_with("name: ") {
                    spots.push((at, token, family));
                }
            }
        }
    }
    if spots.is_empty() {
        return None;
    }
    let (at, token, family) = spots[g.below(spots.len() as u64) as usize];
    let others: Vec<&str> = family.iter().copied().filter(|t| *t != token).collect();
    let by = g.pick(&others);
    Some(format!("{}{by}{}", &doc[..at], &doc[at + token.len()..]))
}

fn from_scratch(docs: &Docs) -> Option<Engine> {
    loader_of(docs.iter()).finish().ok().map(Engine::new)
}

fn describe(docs: &Docs) -> String {
    docs.values().fold(String::new(), |mut out, d| {
        let _ = write!(out, "---\n{d}");
        out
    })
}

/// Everything observable about an engine, for comparison.
/// The engine's tiers as text, each policy's source as the object it names (the index of a
/// Calico or admin object follows load order, which differs between applied changes and a
/// fresh load).
fn tiers_text(engine: &Engine) -> String {
    let inventory = engine.inventory();
    let mut out = String::new();
    for tier in engine.tiers() {
        let text = format!("{tier:?}");
        // Everything but the raw indices: `sources: [..]` holds no bracket of its own.
        let (head, rest) = text.split_once("sources: [").unwrap_or((&text, "]"));
        let tail = rest.split_once(']').map_or("", |(_, tail)| tail);
        let _ = writeln!(out, "{head}{tail}");
        for source in &tier.sources {
            let _ = match *source {
                PolicySource::NetworkPolicy(i) => {
                    writeln!(out, "  {:?}", inventory.network_policies[i])
                }
                PolicySource::Calico(i) => writeln!(out, "  {:?}", inventory.calico_policies[i]),
                PolicySource::Admin(i) => writeln!(out, "  {:?}", inventory.admin_policies[i]),
                PolicySource::Cilium(i) => writeln!(out, "  {:?}", inventory.cilium_policies[i]),
            };
        }
    }
    out
}

fn assert_same(incremental: &Engine, fresh: &Engine, context: &str) {
    let (a, b) = (incremental.inventory(), fresh.inventory());
    assert_eq!(a.pods(), b.pods(), "pods differ {context}");
    // The compiled tiers (policies shared with the engine before, their sources and sort
    // keys renumbered) equal a fresh compilation, field by field.
    assert_eq!(
        tiers_text(incremental),
        tiers_text(fresh),
        "tiers differ {context}"
    );
    for id in (0..a.pods().len()).map(PodId::new) {
        for direction in [PolicyType::Ingress, PolicyType::Egress] {
            assert_eq!(
                incremental.selecting(id, direction),
                fresh.selecting(id, direction),
                "selecting of {} {direction:?} differs {context}",
                a.pods()[id].key()
            );
        }
    }
    // The pod classes an incremental engine took over from the one before equal a fresh
    // classification (numbering included).
    assert!(
        incremental.pod_classes() == fresh.pod_classes(),
        "pod classes differ {context}"
    );
    assert_eq!(
        connlist(incremental),
        connlist(fresh),
        "connection lists differ {context}"
    );
    let ports = default_ports(b);
    let (m1, m2) = (
        Matrix::compute(incremental, &ports),
        Matrix::compute(fresh, &ports),
    );
    assert!(m1 == m2, "matrices differ {context}");
    let endpoints: Vec<Endpoint> = (0..a.pods().len())
        .map(|id| Endpoint::Pod(PodId::new(id)))
        .chain(
            ["10.0.0.2", "192.0.2.9"]
                .map(|ip| Endpoint::Address(ip.parse().unwrap_or_else(|_| unreachable!()))),
        )
        .collect();
    for &src in &endpoints {
        for &dst in &endpoints {
            for (protocol, port) in [(Protocol::Tcp, 80), (Protocol::Udp, 8080)] {
                let x = serde_json::to_string(&incremental.explain(src, dst, protocol, port));
                let y = serde_json::to_string(&fresh.explain(src, dst, protocol, port));
                assert_eq!(
                    x.ok(),
                    y.ok(),
                    "explanations differ for {src:?} -> {dst:?} {protocol}/{port} {context}"
                );
            }
        }
    }
}

/// Run `steps` random changes from the cluster of `seed`; returns the kinds changed.
/// The (change, kind) combinations exercised, and those of them the cluster made by patching
/// its inventory rather than linking every object again.
type Exercised = BTreeSet<(String, String)>;

/// The inventories agree on everything linking builds that the patch touches.
fn assert_same_inventory(incremental: &Engine, fresh: &Engine, context: &str) {
    let (a, b) = (incremental.inventory(), fresh.inventory());
    assert!(a.pods() == b.pods(), "pods differ {context}");
    assert!(
        a.namespaces() == b.namespaces(),
        "namespaces differ {context}"
    );
    assert_eq!(
        a.namespace_starts(),
        b.namespace_starts(),
        "namespace runs differ {context}"
    );
    assert!(
        a.network_policies == b.network_policies,
        "NetworkPolicies differ {context}"
    );
    // The shared-address warnings, which the patch recomputes. (Other warnings may list
    // objects in load order, which differs between applied changes and a fresh load.)
    let shared = |warnings: &[String]| -> Vec<String> {
        warnings
            .iter()
            .filter(|w| w.starts_with("address "))
            .cloned()
            .collect()
    };
    assert_eq!(
        shared(&a.warnings),
        shared(&b.warnings),
        "address warnings differ {context}"
    );
    for pod in b.pods() {
        for ip in &pod.ips {
            assert_eq!(
                a.pod_by_ip(*ip),
                b.pod_by_ip(*ip),
                "address {ip} looks up differently {context}"
            );
        }
    }
}

/// The objects a patched inventory holds by value (Calico, admin and Cilium policies, network
/// sets, tiers, warnings, the CNI) equal those of every object applied and linked again (the
/// same load order: a fresh load of other files orders them otherwise).
fn assert_same_as_whole(incremental: &Engine, whole: &netfence_model::Inventory, context: &str) {
    let a = incremental.inventory();
    // Compared with `==`, not `assert_eq!`: the lists' Debug text would be the whole cluster.
    for (same, what) in [
        (
            a.calico_policies == whole.calico_policies,
            "Calico policies",
        ),
        (a.admin_policies == whole.admin_policies, "admin policies"),
        (a.cilium_policies == whole.cilium_policies, "Cilium rules"),
        (a.network_sets == whole.network_sets, "network sets"),
        (a.tiers == whole.tiers, "tiers"),
    ] {
        assert!(same, "{what} differ from the whole relink {context}");
    }
    assert_eq!(
        a.warnings, whole.warnings,
        "warnings differ from the whole relink {context}"
    );
    assert_eq!(
        a.cni, whole.cni,
        "CNI differs from the whole relink {context}"
    );
}

fn run_sequence(seed: u64, steps: usize) -> (Exercised, Exercised, Exercised) {
    let mut g = Gen(seed | 1);
    let initial = if seed.is_multiple_of(2) {
        random_cluster(seed)
    } else {
        random_calico_cluster(seed)
    };
    let mut docs: Docs = BTreeMap::new();
    for doc in documents(&initial) {
        if let Some(key) = key_of(&doc) {
            docs.insert(key, doc);
        }
    }
    let mut cluster = Cluster::new(loader_of(docs.iter())).unwrap_or_else(|e| {
        panic!(
            "seed {seed}: initial cluster does not load: {e}\n{}",
            describe(&docs)
        )
    });
    // The same changes through `update` (no delta), as the enforcement agent takes them.
    let mut quiet = Cluster::new(loader_of(docs.iter())).unwrap_or_else(|_| unreachable!());
    let mut before = from_scratch(&docs).unwrap_or_else(|| unreachable!());
    // The same changes applied to a loader linked whole after each (`Loader::apply`, then
    // `Loader::finish`): what the cluster's patched inventory must equal, load order included.
    let mut whole = loader_of(docs.iter());
    let mut exercised = BTreeSet::new();
    let mut patched = BTreeSet::new();
    let mut compiled_in_part = BTreeSet::new();
    for step in 0..steps {
        let mut next = docs.clone();
        let pods: Vec<&ObjectKey> = (docs.keys())
            .filter(|key| key.kind == ObjectKind::Pod)
            .collect();
        let (changes, deletions, what) = if !pods.is_empty() && g.chance(20) {
            // A pod relabelled: no pod id moves (the engine shares its per-pod state), between
            // steps that create and delete pods (ids move).
            let key = pods[g.below(pods.len() as u64) as usize].clone();
            let Some(doc) = relabelled(&docs[&key], &mut g) else {
                continue;
            };
            next.insert(key.clone(), doc.clone());
            (loader_of([(&key, &doc)]), Vec::new(), ("relabelled", key))
        } else if let Some(key) = (g.chance(25))
            .then(|| {
                let policies: Vec<&ObjectKey> = (docs.keys())
                    .filter(|key| POLICY_KINDS.contains(&key.kind))
                    .collect();
                (!policies.is_empty())
                    .then(|| policies[g.below(policies.len() as u64) as usize].clone())
            })
            .flatten()
        {
            // One rule's ports or peers changed in place.
            let Some(doc) = retouched(&docs[&key], &mut g) else {
                continue;
            };
            next.insert(key.clone(), doc.clone());
            (loader_of([(&key, &doc)]), Vec::new(), ("retouched", key))
        } else if !docs.is_empty() && g.chance(30) {
            let keys: Vec<&ObjectKey> = docs.keys().collect();
            let key = keys[g.below(keys.len() as u64) as usize].clone();
            next.remove(&key);
            (Loader::new(), vec![key.clone()], ("deleted", key))
        } else {
            let doc = random_document(&mut g);
            let Some(key) = key_of(&doc) else {
                continue;
            };
            let kind = if docs.contains_key(&key) {
                "replaced"
            } else {
                "created"
            };
            next.insert(key.clone(), doc.clone());
            (loader_of([(&key, &doc)]), Vec::new(), (kind, key))
        };
        let context = format!(
            "at seed {seed} step {step} ({} {})\nafter:\n{}",
            what.1,
            what.0,
            describe(&next)
        );
        let updated = quiet.update(changes.clone(), &deletions);
        assert_eq!(
            updated.is_ok(),
            cluster.preview(changes.clone(), &deletions).is_ok(),
            "update and apply take the same changes {context}"
        );
        let mut next_whole = whole.clone();
        let whole_applied = next_whole.apply(changes.clone(), &deletions);
        let applied = cluster.apply(changes, &deletions);
        match (from_scratch(&next), applied) {
            (None, Err(_)) => continue, // both refuse the change (e.g. admin priority clash)
            (None, Ok(_)) => panic!("the cluster took a change a fresh load refuses {context}"),
            (Some(_), Err(e)) => panic!("the cluster refused a change: {e} {context}"),
            (Some(after), Ok(applied)) => {
                assert_same(cluster.engine(), &after, &context);
                assert_same(quiet.engine(), &after, &context);
                assert_same_inventory(cluster.engine(), &after, &context);
                assert_same_inventory(quiet.engine(), &after, &context);
                let linked = (whole_applied.ok())
                    .and_then(|_| next_whole.clone().finish().ok())
                    .unwrap_or_else(|| panic!("the whole relink refused the change {context}"));
                assert_same_as_whole(cluster.engine(), &linked, &context);
                assert_same_as_whole(quiet.engine(), &linked, &context);
                whole = next_whole;
                if applied.timings.patched {
                    patched.insert((what.0.to_string(), what.1.kind.as_str().to_string()));
                }
                if !applied.stats.compiled_all {
                    compiled_in_part.insert((what.0.to_string(), what.1.kind.as_str().to_string()));
                }
                let full = diff(&before, &after);
                assert!(
                    applied.delta == full,
                    "what-if delta differs from diff {context}\nincremental: {:?}\nfull: {:?}",
                    applied.delta,
                    full
                );
                exercised.insert((what.0.to_string(), what.1.kind.as_str().to_string()));
                docs = next;
                before = after;
            }
        }
    }
    (exercised, patched, compiled_in_part)
}

#[test]
fn incremental_updates_equal_a_fresh_build() {
    let mut exercised = BTreeSet::new();
    let mut patched = BTreeSet::new();
    let mut compiled_in_part = BTreeSet::new();
    let seeds = 32;
    let steps = 50;
    for seed in 0..seeds {
        let (all, by_patch, in_part) = run_sequence(0x5eed_0000 + seed, steps);
        exercised.extend(all);
        patched.extend(by_patch);
        compiled_in_part.extend(in_part);
    }
    // A change of policy objects of any kind must have compiled only the changed objects
    // (`Engine::patched_tiers`), not every policy again; Kubernetes, Calico and admin
    // policies each way. (The one BaselineAdminNetworkPolicy created or deleted makes its
    // tier appear or disappear, which compiles everything.)
    let in_part = |what: &str, kind: &ObjectKind| {
        compiled_in_part.contains(&(what.to_string(), kind.as_str().to_string()))
    };
    for kind in [
        ObjectKind::NetworkPolicy,
        ObjectKind::CalicoNetworkPolicy,
        ObjectKind::CalicoGlobalNetworkPolicy,
        ObjectKind::AdminNetworkPolicy,
        ObjectKind::BaselineAdminNetworkPolicy,
        ObjectKind::CiliumNetworkPolicy,
        ObjectKind::CiliumClusterwideNetworkPolicy,
    ] {
        assert!(
            ["created", "replaced", "deleted"]
                .iter()
                .any(|what| in_part(what, &kind)),
            "no {} change compiled only the changed objects: {compiled_in_part:?}",
            kind.as_str()
        );
    }
    for what in ["created", "replaced", "deleted"] {
        for kind in [
            ObjectKind::NetworkPolicy,
            ObjectKind::CalicoGlobalNetworkPolicy,
            ObjectKind::AdminNetworkPolicy,
        ] {
            assert!(
                in_part(what, &kind),
                "no {} {what} compiled only the changed objects: {compiled_in_part:?}",
                kind.as_str()
            );
        }
    }
    let kinds: BTreeSet<&str> = exercised.iter().map(|(_, k)| k.as_str()).collect();
    for kind in [
        ObjectKind::Pod,
        ObjectKind::Namespace,
        ObjectKind::ServiceAccount,
        ObjectKind::Service,
        ObjectKind::NetworkPolicy,
        ObjectKind::CalicoNetworkPolicy,
        ObjectKind::CalicoGlobalNetworkPolicy,
        ObjectKind::NetworkSet,
        ObjectKind::GlobalNetworkSet,
        ObjectKind::Tier,
        ObjectKind::AdminNetworkPolicy,
        ObjectKind::BaselineAdminNetworkPolicy,
        ObjectKind::CiliumNetworkPolicy,
        ObjectKind::CiliumClusterwideNetworkPolicy,
        ObjectKind::Workload("Deployment".into()),
    ] {
        assert!(
            kinds.contains(kind.as_str()),
            "no change of kind {} was exercised: {exercised:?}",
            kind.as_str()
        );
    }
    for kind in [
        ObjectKind::NetworkPolicy,
        ObjectKind::CalicoGlobalNetworkPolicy,
        ObjectKind::AdminNetworkPolicy,
    ] {
        assert!(
            exercised.contains(&("retouched".to_string(), kind.as_str().to_string())),
            "no {} was retouched (one rule's ports or peers): {exercised:?}",
            kind.as_str()
        );
    }
    for what in ["created", "replaced", "deleted", "relabelled", "retouched"] {
        assert!(
            exercised.iter().any(|(w, _)| w == what),
            "no object was {what}"
        );
    }
    // The inventory patch (`Loader::link_patch`) was taken for every kind it covers, each way
    // (a namespaced Calico policy is replaced too rarely in these sequences, and often in an
    // undeclared namespace, which the patch refuses: created and deleted only; the model's
    // relink tests replace one; the same holds for a namespaced NetworkSet, whose replace the
    // model's relink test covers).
    let through_patch =
        |what: &str, kind: &ObjectKind| patched.contains(&(what.to_string(), kind.as_str().into()));
    for kind in [
        ObjectKind::Pod,
        ObjectKind::NetworkPolicy,
        ObjectKind::CalicoGlobalNetworkPolicy,
        ObjectKind::AdminNetworkPolicy,
        ObjectKind::BaselineAdminNetworkPolicy,
        ObjectKind::CiliumNetworkPolicy,
        ObjectKind::CiliumClusterwideNetworkPolicy,
        ObjectKind::NetworkSet,
        ObjectKind::GlobalNetworkSet,
        ObjectKind::Tier,
    ] {
        for what in ["created", "replaced", "deleted"] {
            // A retouched object (one rule's ports or peers changed) is a replace too.
            let replaced_as_retouched = what == "replaced" && through_patch("retouched", &kind);
            let rare = what == "replaced" && kind == ObjectKind::NetworkSet;
            assert!(
                through_patch(what, &kind) || replaced_as_retouched || rare,
                "no {} {what} went through the inventory patch: {patched:?}",
                kind.as_str()
            );
        }
    }
    for what in ["created", "deleted"] {
        assert!(
            through_patch(what, &ObjectKind::CalicoNetworkPolicy),
            "no Calico NetworkPolicy {what} went through the inventory patch: {patched:?}"
        );
    }
    assert!(through_patch("relabelled", &ObjectKind::Pod));
    println!(
        "incremental: {} seeds × {steps} steps, {} (change, kind) combinations exercised, {} of them through the inventory patch",
        seeds,
        exercised.len(),
        patched.len()
    );
}

/// The same property on many more seeds, for a soak run outside the suite (the suite's test
/// above keeps its 32 fixed seeds): `NETFENCE_SOAK_SEEDS=2000 cargo test --release -p
/// netfence-engine --test incremental -- --ignored`. The first seed is `NETFENCE_SOAK_BASE`
/// (hex) or taken from the clock, and printed so that a failure can be replayed; a failure
/// names its seed and step (`run_sequence`).
#[test]
#[ignore = "soak run: set NETFENCE_SOAK_SEEDS and run with --ignored"]
fn incremental_soak() {
    let seeds: u64 = std::env::var("NETFENCE_SOAK_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let base = std::env::var("NETFENCE_SOAK_BASE")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("incremental soak: NETFENCE_SOAK_BASE={base:x}, {seeds} seeds × 50 steps");
    for seed in 0..seeds {
        run_sequence(base.wrapping_add(seed), 50);
        if (seed + 1) % 100 == 0 {
            println!("incremental soak: {} seeds passed", seed + 1);
        }
    }
}
