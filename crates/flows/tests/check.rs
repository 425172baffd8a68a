//! Enrichment and checking against a small cluster: a default-deny policy in `shop`, an
//! allow from `web` to `api` on TCP 8080; mismatches both ways, replies set aside, addresses
//! resolved by time through a pods history, Services judged at their backends.

use netfence_engine::{Endpoint, Engine};
use netfence_flows::read::{read_bytes, read_bytes_into};
use netfence_flows::{
    Checked, CheckedFlow, Checker, Flow, FlowProtocol, FlowSink, History, Judgement, Observed,
    ObservedAt, PodHint, ReadStats, Reply, Rows, SourceFormat, VpcFormat,
};
use netfence_model::Loader;

/// The cluster of the README's Observe examples (shop default-deny, web -> api on TCP 8080).
const CLUSTER: &str = include_str!("../../../examples/flows/cluster.yaml");

fn engine() -> Engine {
    let mut loader = Loader::new();
    loader.load_str("cluster.yaml", CLUSTER);
    Engine::new(loader.finish().unwrap())
}

fn flows(text: &str) -> Vec<Flow> {
    let mut flows = Vec::new();
    read_bytes(
        text.as_bytes(),
        "t",
        &SourceFormat::Vpc(VpcFormat::default()),
        &mut ReadStats::default(),
        &mut |f| flows.push(f),
    )
    .unwrap();
    flows
}

fn judged(checked: Checked) -> CheckedFlow {
    match checked {
        Checked::Judged(flow) => flow,
        Checked::Reply => panic!("judged as a reply"),
    }
}

fn name(engine: &Engine, endpoint: Endpoint) -> String {
    engine.endpoint_name(endpoint)
}

#[test]
fn mismatches_both_ways_and_agreements() {
    let engine = engine();
    let mut checker = Checker::new(&engine, None);
    let records = flows(
        "\
2 1 eni-1 10.0.0.10 10.0.0.20 40000 8080 6 1 1 1700000000 1700000060 ACCEPT OK
2 1 eni-1 10.0.1.30 10.0.0.20 40001 8080 6 1 1 1700000000 1700000060 ACCEPT OK
2 1 eni-1 10.0.0.10 10.0.0.20 40002 8080 6 1 1 1700000000 1700000060 REJECT OK
2 1 eni-1 10.0.1.30 10.0.0.20 40003 8080 6 1 1 1700000000 1700000060 REJECT OK
2 1 eni-1 10.0.0.20 10.0.1.30 40004 9000 6 1 1 1700000000 1700000060 ACCEPT OK
",
    );
    let results: Vec<CheckedFlow> = records.iter().map(|f| judged(checker.check(f))).collect();
    // web -> api 8080: allowed by web-to-api, observed allowed: agreement.
    assert_eq!(name(&engine, results[0].src), "shop/web");
    assert_eq!(name(&engine, results[0].dst), "shop/api");
    assert_eq!(results[0].policy, Some(Judgement::Allow));
    assert_eq!(
        results[0].decided_by.as_deref(),
        Some("NetworkPolicy shop/web-to-api")
    );
    assert!(!results[0].mismatch);
    // batch -> api: policy denies (end of tier, default-deny selects api first), but the log
    // saw it accepted.
    assert_eq!(results[1].policy, Some(Judgement::Deny));
    assert_eq!(
        results[1].decided_by.as_deref(),
        Some("NetworkPolicy shop/default-deny")
    );
    assert!(results[1].mismatch);
    // web -> api rejected while policy allows: a mismatch the other way.
    assert!(results[2].mismatch);
    // batch -> api rejected, policy denies: agreement.
    assert!(!results[3].mismatch);
    // api -> batch: nothing selects either side for this direction: allowed, no policy.
    assert_eq!(results[4].policy, Some(Judgement::Allow));
    assert_eq!(results[4].decided_by, None);
    let stats = checker.stats();
    assert_eq!((stats.judged, stats.mismatches), (5, 2));
    // web->api 8080 and batch->api 8080 asked once each, api->batch once.
    assert_eq!(stats.verdicts, 3);
}

#[test]
fn unknown_observed_never_mismatches() {
    let engine = engine();
    let mut checker = Checker::new(&engine, None);
    let mut flow =
        flows("2 1 eni-1 10.0.1.30 10.0.0.20 40001 8080 6 1 1 1700000000 1700000060 ACCEPT OK\n")
            .remove(0);
    flow.observed = None;
    let result = judged(checker.check(&flow));
    assert_eq!(result.policy, Some(Judgement::Deny));
    assert!(!result.mismatch);
}

#[test]
fn replies_are_not_judged() {
    let engine = engine();
    let mut checker = Checker::new(&engine, None);
    // api answering web from its declared port 8080: the server's side, a reply.
    let reply =
        flows("2 1 eni-1 10.0.0.20 10.0.0.10 8080 40000 6 1 1 1700000000 1700000060 ACCEPT OK\n");
    assert_eq!(checker.check(&reply[0]), Checked::Reply);
    // A log that says so (Hubble is_reply, VPC SYN-ACK) is a reply whatever the ports.
    let mut marked =
        flows("2 1 eni-1 10.0.1.30 10.0.0.10 1 2 6 1 1 1700000000 1700000060 ACCEPT OK\n")
            .remove(0);
    marked.reply = Reply::Yes;
    assert_eq!(checker.check(&marked), Checked::Reply);
    assert_eq!(checker.stats().replies, 2);
    assert_eq!(checker.stats().judged, 0);
}

#[test]
fn an_address_reused_by_two_pods_resolves_by_time() {
    let engine = engine();
    // 10.9.9.9 was jobs/batch's until 12:00, then shop/web's; 10.0.1.30 (batch's address in
    // the inventory) was nobody's during the whole log.
    let history = History::read(
        br#"{"ip": "10.9.9.9", "pod": "jobs/batch", "from": "2023-11-14T20:00:00Z", "to": "2023-11-14T22:00:00Z"}
{"ip": "10.9.9.9", "pod": "shop/web", "from": "2023-11-14T22:00:00Z", "to": null}
{"ip": "10.0.1.30", "pod": "jobs/batch", "from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"}
"# as &[u8],
    )
    .unwrap();
    let mut checker = Checker::new(&engine, Some(history));
    // 1700000000 = 2023-11-14T22:13:20Z: web's time; 1699990000 = 19:26:40: before both.
    let records = flows(
        "\
2 1 eni-1 10.9.9.9 10.0.0.20 40000 8080 6 1 1 1699995000 1699995060 ACCEPT OK
2 1 eni-1 10.9.9.9 10.0.0.20 40000 8080 6 1 1 1700000000 1700000060 ACCEPT OK
2 1 eni-1 10.9.9.9 10.0.0.20 40000 8080 6 1 1 1699990000 1699990060 ACCEPT OK
2 1 eni-1 10.0.1.30 10.0.0.20 40000 8080 6 1 1 1700000000 1700000060 ACCEPT OK
",
    );
    let results: Vec<CheckedFlow> = records.iter().map(|f| judged(checker.check(f))).collect();
    assert_eq!(name(&engine, results[0].src), "jobs/batch");
    assert!(results[0].mismatch);
    assert_eq!(name(&engine, results[1].src), "shop/web");
    assert!(!results[1].mismatch);
    assert_eq!(name(&engine, results[2].src), "10.9.9.9");
    // Listed, but not at this time: the bare address, not the inventory's pod.
    assert_eq!(name(&engine, results[3].src), "10.0.1.30");
}

#[test]
fn history_lines_that_do_not_read_name_their_line() {
    let error = History::read(
        br#"{"ip": "10.9.9.9", "pod": "jobs/batch", "from": "2023-11-14T20:00:00Z", "to": null}
{"ip": "10.9.9.9", "pod": "batch", "from": "2023-11-14T20:00:00Z", "to": null}
"# as &[u8],
    )
    .unwrap_err();
    assert!(error.to_string().starts_with("line 2:"), "{error}");
}

#[test]
fn services_are_judged_at_their_backends_and_icmp_is_not_judged() {
    let engine = engine();
    let mut checker = Checker::new(&engine, None);
    let records = flows(
        "\
2 1 eni-1 10.0.0.10 172.20.0.50 40000 80 6 1 1 1700000000 1700000060 ACCEPT OK
2 1 eni-1 10.0.1.30 172.20.0.50 40000 80 6 1 1 1700000000 1700000060 ACCEPT OK
2 1 eni-1 10.0.1.30 10.0.0.20 0 0 1 1 1 1700000000 1700000060 ACCEPT OK
",
    );
    let results: Vec<CheckedFlow> = records.iter().map(|f| judged(checker.check(f))).collect();
    assert_eq!(results[0].policy, Some(Judgement::Allow));
    assert_eq!(name(&engine, results[0].dst), "172.20.0.50");
    assert_eq!(results[1].policy, Some(Judgement::Deny));
    assert!(results[1].mismatch);
    assert_eq!(results[2].protocol, FlowProtocol::Icmp);
    assert_eq!((results[2].port, results[2].policy), (None, None));
    assert!(!results[2].mismatch);
    assert_eq!(results[2].observed, Some(Observed::Allow));
    assert_eq!(checker.stats().not_judged, 1);
}

#[test]
fn a_cluster_scoped_policy_is_named_without_a_namespace() {
    let mut loader = Loader::new();
    loader.load_str(
        "cluster.yaml",
        &format!(
            "{CLUSTER}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {{name: deny-batch-egress}}
spec:
  selector: app == 'batch'
  types: [Egress]
  egress:
  - action: Deny
"
        ),
    );
    let engine = Engine::new(loader.finish().unwrap());
    let mut checker = Checker::new(&engine, None);
    let flow =
        flows("2 1 eni-1 10.0.1.30 10.0.0.20 40001 8080 6 1 1 1700000000 1700000060 ACCEPT OK\n")
            .remove(0);
    let result = judged(checker.check(&flow));
    assert_eq!(result.policy, Some(Judgement::Deny));
    // The egress side denies first, by a cluster-scoped policy: `Kind name`.
    assert_eq!(
        result.decided_by.as_deref(),
        Some("Calico GlobalNetworkPolicy deny-batch-egress")
    );
}

#[test]
fn a_flow_seen_at_the_source_egress_is_compared_with_egress_alone() {
    let engine = engine();
    let mut checker = Checker::new(&engine, None);
    // batch -> api 8080: batch's egress allows (nothing isolates it), api's ingress denies.
    let mut flow =
        flows("2 1 eni-1 10.0.1.30 10.0.0.20 40001 8080 6 1 1 1700000000 1700000060 ACCEPT OK\n")
            .remove(0);
    flow.observed_at = Some(ObservedAt::Egress);
    let at_egress = judged(checker.check(&flow));
    assert_eq!(at_egress.policy, Some(Judgement::Deny));
    assert!(
        !at_egress.mismatch,
        "leaving batch was allowed: no mismatch"
    );
    flow.observed_at = Some(ObservedAt::Ingress);
    assert!(judged(checker.check(&flow)).mismatch);
    // Dropped at batch's egress although its egress allows: a mismatch.
    flow.observed_at = Some(ObservedAt::Egress);
    flow.observed = Some(Observed::Deny);
    assert!(judged(checker.check(&flow)).mismatch);
}

/// The security groups of the README's example: the cluster group on the nodes (all traffic
/// from itself and from the batch group in, everything out), and batch's own group
/// (SecurityGroupPolicy jobs/batch) with HTTPS out only.
fn security_groups(json: &str) -> netfence_model::aws::AwsInput {
    netfence_model::aws::AwsInput::from_sources(
        [("security-groups.json".to_string(), json.to_string())],
        None,
        Vec::new(),
    )
    .unwrap()
}

const GROUPS_JSON: &str = include_str!("../../../examples/flows/security-groups.json");

fn engine_with_groups() -> Engine {
    engine_of(false, true, "")
}

/// [`CLUSTER`], with every pod dual-stack when `dual` (its IPv4 address and an IPv6 one:
/// records between IPv6 addresses, between IPv4 ones, and of one of each), and with the
/// security groups when `with_groups` ([`engine_with_groups`]), and the objects of `more`.
fn engine_of(dual: bool, with_groups: bool, more: &str) -> Engine {
    let mut cluster = CLUSTER.to_string();
    if dual {
        for (v4, v6) in [
            ("10.0.0.10", "fd00::a"),
            ("10.0.0.20", "fd00::14"),
            ("10.0.1.30", "fd00::1:1e"),
        ] {
            let single = format!("{{podIP: {v4}}}");
            assert!(cluster.contains(&single), "{v4} in the cluster");
            cluster = cluster.replace(
                &single,
                &format!("{{podIP: {v4}, podIPs: [{{ip: {v4}}}, {{ip: '{v6}'}}]}}"),
            );
        }
    }
    let mut loader = Loader::new();
    loader.load_str("cluster.yaml", &cluster);
    loader.load_str("more.yaml", more);
    if with_groups {
        loader.load_str(
            "security-groups.yaml",
            include_str!("../../../examples/flows/security-groups.yaml"),
        );
    }
    Engine::new(loader.finish().unwrap())
}

/// An IPv6 cluster's flow log (pods with IPv6 addresses, as on an IPv6 EKS cluster): its
/// records are read the short way and judged through the front cache like IPv4 ones, and
/// give what the same records in IPv4 give: web -> api on 8080 agrees with policy, batch ->
/// api is a mismatch decided by `shop/default-deny`, each counted once per record.
/// A counted row as the tests compare them: source and destination named (through `name`),
/// deciding policy, flows.
type NamedRow = (String, String, Option<std::sync::Arc<str>>, u64);

/// The counted rows of the default-format VPC records `text` checked against `engine` (each
/// endpoint's name through `name`), what was read, and the checker's counts.
fn counted_rows(
    engine: &Engine,
    text: &str,
    name: impl Fn(String) -> String,
) -> (Vec<NamedRow>, ReadStats, netfence_flows::check::CheckStats) {
    let mut checker = Checker::new(engine, None);
    let mut rows = Vec::new();
    let mut read = ReadStats::default();
    read_bytes_into(
        text.as_bytes(),
        "f.log",
        &SourceFormat::Vpc(VpcFormat::default()),
        &mut read,
        &mut checker.counting(&mut |counted| {
            rows.extend(counted.iter().map(|(row, flows)| {
                let named = |e: Endpoint| name(engine.endpoint_name(e));
                (
                    named(row.src),
                    named(row.dst),
                    row.decided_by.clone(),
                    *flows,
                )
            }))
        }),
    )
    .unwrap();
    let stats = checker.stats().clone();
    (rows, read, stats)
}

#[test]
fn ipv6_records_judge_as_their_ipv4_twins() {
    let engine = engine_of(true, false, "");
    let log = |web: &str, api: &str, batch: &str| {
        let mut text = String::new();
        for n in 0..3 {
            text.push_str(&format!(
                "2 1 eni-1 {web} {api} 4000{n} 8080 6 1 1 1700000000 1700000060 ACCEPT OK\n\
                 2 1 eni-1 {batch} {api} 4100{n} 8080 6 1 1 1700000000 1700000060 ACCEPT OK\n"
            ));
        }
        text
    };
    let check = |text: String| {
        let (rows, _, stats) = counted_rows(&engine, &text, |name| name);
        (rows, stats.judged, stats.mismatches)
    };
    let v6 = check(log("fd00::a", "fd00::14", "fd00::1:1e"));
    assert_eq!(v6, check(log("10.0.0.10", "10.0.0.20", "10.0.1.30")));
    assert_eq!(
        v6,
        (
            vec![(
                "jobs/batch".to_string(),
                "shop/api".to_string(),
                Some("NetworkPolicy shop/default-deny".into()),
                3
            )],
            6,
            3
        )
    );
}

#[test]
fn security_groups_join_the_verdict_path_of_vpc_records() {
    let engine = engine_with_groups();
    let records = flows(
        "\
2 1 eni-1 10.0.1.30 203.0.113.7 40000 5432 6 1 1 1700000000 1700000060 REJECT OK
2 1 eni-1 10.0.1.30 203.0.113.7 40001 443 6 1 1 1700000000 1700000060 ACCEPT OK
2 1 eni-1 10.0.1.30 10.0.0.20 40002 8080 6 1 1 1700000000 1700000060 REJECT OK
2 1 eni-1 10.0.0.10 10.0.0.20 40003 8080 6 1 1 1700000000 1700000060 ACCEPT OK
2 1 eni-1 198.51.100.9 10.0.0.20 40004 8080 6 1 1 1700000000 1700000060 REJECT OK
2 1 eni-1 10.0.0.10 10.0.0.20 40005 8080 6 1 1 1700000000 1700000060 REJECT OK
",
    );
    let mut without = Checker::new(&engine, None);
    let before: Vec<CheckedFlow> = records.iter().map(|f| judged(without.check(f))).collect();
    let mut checker =
        Checker::new(&engine, None).with_security_groups(security_groups(GROUPS_JSON));
    let after: Vec<CheckedFlow> = records.iter().map(|f| judged(checker.check(f))).collect();
    // batch's group lets it out on 443 only: the REJECT to 5432 is the group's, not a
    // mismatch any more; without the groups the same record mismatches.
    assert!(before[0].mismatch && before[0].policy == Some(Judgement::Allow));
    assert_eq!(after[0].policy, Some(Judgement::Deny));
    assert_eq!(
        after[0].decided_by.as_deref(),
        Some("SecurityGroup sg-0bbbbbbbbbbbbbbbb (outbound)")
    );
    assert!(!after[0].mismatch);
    assert_eq!(after[1].policy, Some(Judgement::Allow));
    assert!(!after[1].mismatch);
    // Both the group and the NetworkPolicy deny: the group is named, as the VPC saw it.
    assert_eq!(
        after[2].decided_by.as_deref(),
        Some("SecurityGroup sg-0bbbbbbbbbbbbbbbb (outbound)")
    );
    // web -> api through the nodes' cluster group (self-reference): allowed, the policy's.
    assert_eq!(
        after[3].decided_by.as_deref(),
        Some("NetworkPolicy shop/web-to-api")
    );
    // From the internet into api: the cluster group admits only its own members and batch's
    // group inbound, so the destination side denies.
    assert_eq!(
        after[4].decided_by.as_deref(),
        Some("SecurityGroup sg-0aaaaaaaaaaaaaaaa (inbound)")
    );
    assert!(!after[4].mismatch);
    // Groups and policy allow, the record says REJECT: still a mismatch (a network ACL?).
    assert!(after[5].mismatch);
    assert_eq!(checker.stats().security_group_denials, 3);

    // Hubble and the policy agent observe at the pod, never the groups: not judged by them.
    let mut hubble = records[0].clone();
    hubble.sees_security_groups = false;
    let checked = judged(checker.check(&hubble));
    assert_eq!(checked.policy, Some(Judgement::Allow));
    assert!(checked.mismatch);

    // A group the input does not describe might allow anything: that side is not judged.
    let only_cluster = GROUPS_JSON.replace(
        "sg-0bbbbbbbbbbbbbbbb\",\n            \"IpPermissions\": []",
        "sg-0cccccccccccccccc\",\n            \"IpPermissions\": []",
    );
    assert_ne!(only_cluster, GROUPS_JSON);
    let mut partial =
        Checker::new(&engine, None).with_security_groups(security_groups(&only_cluster));
    assert_eq!(
        judged(partial.check(&records[0])).policy,
        Some(Judgement::Allow)
    );
}

/// The engine of a `netfence gen` cluster with Calico and admin policies.
fn generated(pods: usize, namespaces: usize, seed: u64) -> Engine {
    let files = netfence_gen::generate(&netfence_gen::GenOptions {
        pods,
        namespaces,
        policies: 60,
        calico: 20,
        admin: 6,
        seed,
    })
    .unwrap();
    let mut loader = Loader::new();
    for (name, text) in &files {
        loader.load_str(name, text);
    }
    Engine::new(loader.finish().unwrap())
}

/// A `netfence gen` cluster and its IPv6 twin (`netfence gen --ipv6`), with Calico and admin
/// policies, judge a log and its twin alike: every record between random pods and to
/// addresses outside (the metadata service, a public address, a range a policy names), on
/// ports the policies name, gives the same rows (names, deciding policy, flows) and counts,
/// once addresses outside are written as their twins. Through the short way, the front
/// cache and its IPv6 ids.
#[test]
fn a_generated_cluster_and_its_ipv6_twin_judge_alike() {
    let files = netfence_gen::generate(&netfence_gen::GenOptions {
        pods: 300,
        namespaces: 6,
        policies: 60,
        calico: 20,
        admin: 6,
        seed: 5,
    })
    .unwrap();
    let engine_of = |twin: bool| {
        let mut loader = Loader::new();
        for (name, text) in &files {
            let text = match twin {
                true => netfence_gen::ipv6_twin(text),
                false => text.clone(),
            };
            loader.load_str(name, &text);
        }
        Engine::new(loader.finish().unwrap())
    };
    let (v4, v6) = (engine_of(false), engine_of(true));
    assert!(v6
        .inventory()
        .pods()
        .iter()
        .all(|p| p.ips.iter().all(|ip| ip.is_ipv6())));
    let pods = v4.inventory().pods();
    let ports = netfence_engine::default_ports(v4.inventory());
    let outside = [
        "169.254.169.254",
        "169.254.169.255",
        "8.8.8.8",
        "11.0.0.1",
        "172.3.4.5",
        "172.4.0.9",
    ];
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    let address = |next: &mut dyn FnMut() -> u64| {
        let n = next() as usize % (pods.len() + outside.len());
        match pods.get(n) {
            Some(pod) if !pod.synthetic_ip => pod.ips[0].to_string(),
            Some(_) => outside[0].to_string(),
            None => outside[n - pods.len()].to_string(),
        }
    };
    let mut text = String::new();
    for n in 0..3_000 {
        let (src, dst) = (address(&mut next), address(&mut next));
        let probe = ports[next() as usize % ports.len()];
        let action = ["ACCEPT", "REJECT"][n % 2];
        text.push_str(&format!(
            "2 1 eni-1 {src} {dst} {} {} {} 1 1 1700000000 1700000060 {action} OK\n",
            40000 + n % 7,
            probe.port,
            probe.protocol.number(),
        ));
    }
    let check = |engine: &Engine, text: &str| {
        let (mut rows, read, stats) =
            counted_rows(engine, text, |name| netfence_gen::ipv6_twin(&name));
        assert_eq!(read.parsed, 3_000);
        rows.sort();
        (rows, stats.judged, stats.replies, stats.mismatches)
    };
    let ipv4 = check(&v4, &text);
    assert!(
        ipv4.0.len() > 100 && ipv4.3 > 500,
        "{} rows, {} mismatches",
        ipv4.0.len(),
        ipv4.3
    );
    assert_eq!(check(&v6, &netfence_gen::ipv6_twin(&text)), ipv4);
}

/// A xorshift generator from `seed`.
fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// What the engine says of `src` → `dst` on `probe`'s protocol and port: allowed, and the
/// deciding rule as a checked row names it (what [`rows_as_the_engine_says`] expects).
fn engine_says(
    engine: &Engine,
    src: Endpoint,
    dst: Endpoint,
    probe: netfence_engine::ProbePort,
) -> (bool, Option<String>) {
    let verdict = engine.explain(src, dst, probe.protocol, probe.port);
    (
        verdict.allowed,
        netfence_flows::check::decided_by(engine, &verdict),
    )
}

/// Check each flow: its row's verdict and deciding policy must be `expected`'s (the engine's
/// of that very connection). The rows.
fn rows_as_the_engine_says(
    checker: &mut Checker,
    flows: &[Flow],
    expected: &[(bool, Option<String>)],
) -> Vec<CheckedFlow> {
    assert_eq!(flows.len(), expected.len());
    let mut rows = Vec::new();
    for (flow, (allowed, decided)) in flows.iter().zip(expected) {
        let checked = judged(checker.check(flow));
        let policy = match allowed {
            true => Judgement::Allow,
            false => Judgement::Deny,
        };
        assert_eq!(checked.policy, Some(policy), "{flow:?}");
        assert_eq!(
            checked.decided_by.as_deref(),
            decided.as_deref(),
            "{flow:?}"
        );
        rows.push(checked);
    }
    rows
}

/// The distinct (source, destination, port) of `flows`.
fn distinct_connections(flows: &[Flow]) -> usize {
    let distinct: std::collections::HashSet<_> =
        flows.iter().map(|f| (f.src, f.dst, f.dst_port)).collect();
    distinct.len()
}

/// The checker caches one explanation per connection class; every flow's verdict and
/// deciding policy must still be what the engine says of that very connection. A generated
/// cluster with Calico and admin policies, flows between random pods on ports policies name.
#[test]
fn cached_class_verdicts_equal_the_engine_connection_by_connection() {
    let engine = generated(400, 8, 7);
    let pods = engine.inventory().pods();
    let ports = netfence_engine::default_ports(engine.inventory());
    let mut text = String::new();
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let mut expected = Vec::new();
    for _ in 0..4_000 {
        let (a, b) = (
            (next() % pods.len() as u64) as usize,
            (next() % pods.len() as u64) as usize,
        );
        let probe = ports[(next() % ports.len() as u64) as usize];
        if pods[a].synthetic_ip
            || pods[b].synthetic_ip
            || probe.protocol != netfence_model::Protocol::Tcp
        {
            continue;
        }
        text.push_str(&format!(
            "2 1 eni-1 {} {} 40000 {} 6 1 1 1 2 ACCEPT OK\n",
            pods[a].ips[0], pods[b].ips[0], probe.port
        ));
        expected.push(engine_says(
            &engine,
            Endpoint::Pod(netfence_model::PodId::new(a)),
            Endpoint::Pod(netfence_model::PodId::new(b)),
            probe,
        ));
    }
    assert!(expected.len() > 1_000, "too few flows: {}", expected.len());
    let mut checker = Checker::new(&engine, None);
    let flows = flows(&text);
    let rows = rows_as_the_engine_says(&mut checker, &flows, &expected);
    // The classes did their job: fewer explanations than distinct connections.
    let distinct = distinct_connections(&flows);
    println!(
        "{} flows, {distinct} distinct connections, {} pod classes, {} explanations",
        flows.len(),
        engine.pod_classes().0.len(),
        checker.stats().verdicts
    );
    assert!(
        checker.stats().verdicts < distinct as u64,
        "{:?}",
        checker.stats()
    );

    // Verdicts from the engine's index, explanations for the mismatches only (every record
    // says ACCEPT: the connections policy denies): the same mismatch rows, with their
    // deciding policies, and fewer explanations.
    let mismatches: Vec<CheckedFlow> = rows.into_iter().filter(|row| row.mismatch).collect();
    assert!(!mismatches.is_empty() && mismatches.len() < flows.len());
    let mut lazy = Checker::new(&engine, None).explain_all_before(0);
    let mut lazy_rows = Vec::new();
    read_bytes_into(
        text.as_bytes(),
        "t",
        &SourceFormat::Vpc(VpcFormat::default()),
        &mut ReadStats::default(),
        &mut lazy.judging(Rows::Mismatches, &mut |row| lazy_rows.push(row.clone())),
    )
    .unwrap();
    assert_eq!(lazy_rows, mismatches);
    assert!(lazy.stats().verdicts < checker.stats().verdicts);
}

/// Connections with a bare address are explained once per segment of the engine's address
/// cuts; every flow's verdict and deciding policy must still be what the engine says of that
/// very address. A generated cluster (ipBlocks with exceptions, Calico nets, admin
/// policies), flows from and to the first, last and a middle address of every segment, and
/// to and from addresses at random.
#[test]
fn address_verdicts_equal_the_engine_address_by_address() {
    let engine = generated(300, 6, 11);
    let inventory = engine.inventory();
    let pods = inventory.pods();
    let ports = netfence_engine::default_ports(inventory);
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    let cluster_ips: std::collections::HashSet<std::net::IpAddr> = inventory
        .services
        .iter()
        .flat_map(|s| s.cluster_ips.iter().copied())
        .collect();
    let mut addresses: Vec<std::net::Ipv4Addr> = Vec::new();
    for (first, last) in engine.list_cuts().ranges() {
        if let (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) = (first, last) {
            let (a, b) = (u32::from(a), u32::from(b));
            let between = a + (next() % (u64::from(b - a) + 1)) as u32;
            addresses.extend([a, between, b].map(std::net::Ipv4Addr::from));
        }
    }
    addresses.extend((0..400).map(|_| std::net::Ipv4Addr::from(next() as u32)));
    addresses.retain(|ip| {
        let ip = std::net::IpAddr::V4(*ip);
        matches!(engine.endpoint_for_ip(ip), Endpoint::Address(_)) && !cluster_ips.contains(&ip)
    });
    let mut text = String::new();
    let mut expected = Vec::new();
    for (n, address) in addresses.iter().enumerate() {
        for outbound in [false, true] {
            // Few pods and ports, so that addresses of one segment meet the same ones.
            let pod = (next() % 6) as usize;
            let probe = ports[(next() % 4) as usize];
            if pods[pod].synthetic_ip || probe.protocol != netfence_model::Protocol::Tcp {
                continue;
            }
            let (pod_ip, pod) = (
                pods[pod].ips[0],
                Endpoint::Pod(netfence_model::PodId::new(pod)),
            );
            let ip = Endpoint::Address(std::net::IpAddr::V4(*address));
            let ((src, dst), (src_ip, dst_ip)) = match outbound {
                true => ((pod, ip), (pod_ip.to_string(), address.to_string())),
                false => ((ip, pod), (address.to_string(), pod_ip.to_string())),
            };
            text.push_str(&format!(
                "2 1 eni-1 {src_ip} {dst_ip} {} {} 6 1 1 1 2 ACCEPT OK\n",
                40000 + n % 1000,
                probe.port
            ));
            expected.push(engine_says(&engine, src, dst, probe));
        }
    }
    assert!(expected.len() > 300, "too few flows: {}", expected.len());
    let mut checker = Checker::new(&engine, None);
    let flows = flows(&text);
    rows_as_the_engine_says(&mut checker, &flows, &expected);
    // Both verdicts came up, and the segments did their job: fewer explanations than
    // distinct connections.
    let denied = expected.iter().filter(|(allowed, _)| !allowed).count();
    let distinct = distinct_connections(&flows);
    println!(
        "{} address flows ({denied} denied), {distinct} distinct connections, {} explanations",
        flows.len(),
        checker.stats().verdicts
    );
    assert!(denied > 0 && denied < flows.len());
    assert!(
        checker.stats().verdicts * 2 < distinct as u64,
        "{:?}",
        checker.stats()
    );
}

mod front_cache {
    use super::*;
    use proptest::prelude::*;

    /// Addresses of the README cluster's pods and Services, one the history gives to two pods
    /// in turn (and one the inventory gives a pod the history says was nobody's then), and
    /// one outside the cluster.
    fn addresses(engine: &Engine) -> Vec<std::net::IpAddr> {
        let inventory = engine.inventory();
        let mut addresses: Vec<std::net::IpAddr> = inventory
            .pods()
            .iter()
            .flat_map(|pod| pod.ips.iter().copied())
            .chain(
                inventory
                    .services
                    .iter()
                    .flat_map(|s| s.cluster_ips.iter().copied()),
            )
            .collect();
        addresses.extend([
            "10.9.9.9".parse::<std::net::IpAddr>().unwrap(),
            "192.0.2.1".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        ]);
        addresses.sort();
        addresses.dedup();
        addresses
    }

    /// [`engine`] (with the security groups when `with_groups`: [`engine_with_groups`]), and
    /// a pod in `shop` that declares more TCP ports than a front cache entry keeps.
    fn engine_with_many_ports(with_groups: bool) -> Engine {
        engine_with_many_ports_of(false, with_groups)
    }

    /// [`engine_with_many_ports`], dual-stack when `dual` ([`engine_of`]).
    fn engine_with_many_ports_of(dual: bool, with_groups: bool) -> Engine {
        let gateway = match dual {
            false => "{podIP: 10.0.0.40}",
            true => "{podIP: 10.0.0.40, podIPs: [{ip: 10.0.0.40}, {ip: 'fd00::28'}]}",
        };
        let pod = format!("apiVersion: v1
kind: Pod
metadata: {{name: gateway, namespace: shop, labels: {{app: api}}}}
spec: {{containers: [{{name: c, ports: [{{containerPort: 8080}}, {{containerPort: 80}}, {{containerPort: 443}}]}}]}}
status: {gateway}
");
        engine_of(dual, with_groups, &pod)
    }

    const HISTORY: &[u8] = br#"{"ip": "10.9.9.9", "pod": "jobs/batch", "from": "2023-11-14T20:00:00Z", "to": "2023-11-14T22:00:00Z"}
{"ip": "10.9.9.9", "pod": "shop/web", "from": "2023-11-14T22:00:00Z", "to": null}
{"ip": "10.9.9.9", "pod": "gone/pod", "from": "2023-11-14T23:00:00.5Z", "to": "2023-11-14T23:30:00Z"}
{"ip": "10.0.1.30", "pod": "jobs/batch", "from": "2023-11-14T21:00:00Z", "to": "2023-11-14T22:00:01Z"}
"#;

    /// Times around the history's boundaries (seconds), and one flow with no time.
    const TIMES: &[i64] = &[
        0,
        1_699_991_999,
        1_699_992_000,
        1_699_995_600,
        1_699_999_199,
        1_699_999_200,
        1_699_999_201,
        1_700_002_800,
        1_700_002_801,
        1_700_004_600,
    ];

    /// A VPC flow log file of `lines`: each a record of default-format values picked by the
    /// numbers (mostly usual ones, the cluster's addresses, between the history's times),
    /// or a line of another kind by the second number.
    fn vpc_lines(engine: &Engine, lines: &[(Vec<usize>, usize)]) -> Vec<u8> {
        let addresses: Vec<String> = addresses(engine)
            .iter()
            .map(|a| a.to_string())
            .chain(
                [
                    "-",
                    "fe80::1",
                    "10.0.0.010",
                    "256.0.0.1",
                    "fd00::0a",
                    "::ffff:10.0.0.10",
                    "fd00::1::1e",
                ]
                .map(String::from),
            )
            .collect();
        let times: Vec<String> = TIMES
            .iter()
            .map(|t| t.to_string())
            .chain(["-", "+1699999200", "253402207200", "x"].map(String::from))
            .collect();
        let pools: [&[&str]; 14] = [
            &["2", "2", "2", "2", "5", "2023-11-14T22:00:00Z"],
            &["123456789010"],
            &["eni-1235b8ca123456789", "-"],
            &[], // srcaddr
            &[], // dstaddr
            &["40000", "8080", "80", "443", "53", "-", "+1", "70000"],
            &["8080", "80", "443", "53", "5432", "40000", "-", "0080", "x"],
            &["6", "6", "6", "17", "132", "1", "58", "006", "300", "-"],
            &["20"],
            &["4249"],
            &[], // start
            &["1418530070"],
            &["ACCEPT", "ACCEPT", "REJECT", "-", "DROP"],
            &["OK", "OK", "OK", "NODATA", "SKIPDATA", "-"],
        ];
        let mut text = Vec::new();
        for (picks, kind) in lines {
            let words: Vec<&str> = picks
                .iter()
                .enumerate()
                .map(|(field, &pick)| match field {
                    3 | 4 => addresses[pick % addresses.len()].as_str(),
                    10 => times[pick % times.len()].as_str(),
                    _ => pools[field][pick % pools[field].len()],
                })
                .collect();
            let record = words.join(" ");
            let line: Vec<u8> = match kind {
                0 => Vec::new(),
                1 => format!("{record} extra").into_bytes(),
                2 => words[..13].join(" ").into_bytes(),
                3 => format!("2023-11-14T22:00:00.000Z {record}").into_bytes(),
                4 => format!("\u{feff}{record}").into_bytes(),
                5 => format!("{record}\r").into_bytes(),
                6 => format!("  {record}").into_bytes(),
                7 => words.join("\t").into_bytes(),
                8 => record.replacen("eni", "én", 1).into_bytes(),
                9 => {
                    let mut bytes = record.into_bytes();
                    bytes.extend_from_slice(b" \xff");
                    bytes
                }
                // A v3 header: from here on, pkt-srcaddr/pkt-dstaddr and tcp-flags.
                10 => b"version srcaddr dstaddr srcport dstport protocol start action log-status tcp-flags pkt-srcaddr pkt-dstaddr".to_vec(),
                // A header that names no source: the rest of the file is malformed.
                11 => b"version dstaddr protocol".to_vec(),
                12 => crate_v2_header(),
                // A record in the v3 format (malformed under the default one).
                13..=16 => {
                    let flags = ["2", "18", "0", "19", "-", "x"][picks[8] % 6];
                    let pkt = |at: usize| match picks[at] % 3 {
                        0 => "-",
                        _ => addresses[picks[at] % addresses.len()].as_str(),
                    };
                    format!(
                        "{} {} {} {} {} {} {} {} {} {flags} {} {}",
                        words[0], words[3], words[4], words[5], words[6], words[7], words[10],
                        words[12], words[13], pkt(9), pkt(11),
                    )
                    .into_bytes()
                }
                _ => record.into_bytes(),
            };
            text.extend_from_slice(&line);
            text.push(b'\n');
        }
        text
    }

    /// A connection whose verdict came from the index (its explanation pending), first
    /// seen without a mismatch, then with mismatches: they are explained (the deciding
    /// policy named) as on the general path, though the connection is in the front cache.
    #[test]
    fn a_pending_outcome_is_explained_for_its_first_mismatch() {
        // jobs/batch may not reach shop/api.
        let text = b"\
2 123456789010 eni-1 10.0.1.30 10.0.0.20 40000 8080 6 20 4249 1418530010 1418530070 REJECT OK
2 123456789010 eni-1 10.0.1.30 10.0.0.20 40000 8080 6 20 4249 1418530010 1418530070 ACCEPT OK
2 123456789010 eni-1 10.0.1.30 10.0.0.20 40001 8080 6 20 4249 1418530010 1418530070 ACCEPT OK
";
        for mismatches_only in [true, false] {
            let options = Fused {
                with_history: false,
                with_groups: false,
                mismatches_only,
                index_verdicts: true,
                small_front: false,
            };
            fused_path_agrees(&engine(), text, options).unwrap();
        }
    }

    /// A pod that declares more ports than a front cache entry keeps answers from each of
    /// them: a flow from its third port to a port nobody declares is a reply, whether the
    /// connection is cached or not, as a flow or as VPC records counted the short way.
    #[test]
    fn a_pod_declaring_many_ports_answers_from_each() {
        let engine = engine_with_many_ports(false);
        // shop/gateway (10.0.0.40) declares 8080, 80 and 443; shop/web declares nothing.
        let (gateway, web) = ("10.0.0.40".parse().unwrap(), "10.0.0.10".parse().unwrap());
        for cached in [true, false] {
            let mut checker = Checker::new(&engine, None);
            if !cached {
                checker = checker.without_front_cache();
            }
            let mut flow = Flow::new(gateway, web, FlowProtocol::Tcp);
            flow.src_port = Some(443);
            flow.dst_port = Some(40000);
            for _ in 0..2 {
                assert_eq!(checker.check(&flow), Checked::Reply);
            }
            assert_eq!((checker.stats().replies, checker.stats().judged), (2, 0));
        }
        let line = "2 123456789010 eni-1 10.0.0.40 10.0.0.10 443 40000 6 20 4249 1418530010 1418530070 ACCEPT OK\n";
        let mut checker = Checker::new(&engine, None);
        let mut counted = 0;
        read_bytes_into(
            line.repeat(3).as_bytes(),
            "f.log",
            &SourceFormat::Vpc(VpcFormat::default()),
            &mut ReadStats::default(),
            &mut checker.counting(&mut |rows| counted += rows.len()),
        )
        .unwrap();
        assert_eq!(
            (checker.stats().replies, checker.stats().judged, counted),
            (3, 0, 0)
        );
    }

    /// How [`fused_path_agrees`] reads and judges.
    struct Fused {
        with_history: bool,
        with_groups: bool,
        mismatches_only: bool,
        index_verdicts: bool,
        small_front: bool,
    }

    /// The fused VPC path (records read the short way and judged from the front cache,
    /// the whole flow made only for a row) against the general one (every line read into a
    /// `Flow`, every flow checked) on the VPC log `text`: the same rows in order, the same
    /// read counts by reason with the same example files and lines, the same check counts;
    /// and counted (`flows check`'s mismatch groups), every mismatch once under its row.
    fn fused_path_agrees(
        engine: &Engine,
        text: &[u8],
        options: Fused,
    ) -> Result<(), TestCaseError> {
        let Fused {
            with_history,
            with_groups,
            mismatches_only,
            index_verdicts,
            small_front,
        } = options;
        let history = || with_history.then(|| History::read(HISTORY).unwrap());
        let checker = || {
            let checker = Checker::new(engine, history());
            match with_groups {
                true => checker.with_security_groups(security_groups(GROUPS_JSON)),
                false => checker,
            }
        };
        let format = SourceFormat::Vpc(VpcFormat::default());

        // The general path: every line a `Flow`, every flow checked.
        struct General<'a>(&'a mut Vec<Flow>);
        impl FlowSink for General<'_> {
            fn flow(&mut self, flow: Flow) {
                self.0.push(flow);
            }
            fn short_way(&self) -> bool {
                false
            }
        }
        let (mut flows, mut general_stats) = (Vec::new(), ReadStats::default());
        read_bytes_into(
            text,
            "f.log",
            &format,
            &mut general_stats,
            &mut General(&mut flows),
        )
        .unwrap();
        let mut slow = checker();
        let expected: Vec<CheckedFlow> = flows
            .iter()
            .filter_map(|flow| match slow.check(flow) {
                Checked::Judged(row) if row.mismatch || !mismatches_only => Some(row),
                _ => None,
            })
            .collect();

        // Reading alone, the short way where it can: the same flows.
        let (mut short_flows, mut short_stats) = (Vec::new(), ReadStats::default());
        read_bytes_into(text, "f.log", &format, &mut short_stats, &mut |f| {
            short_flows.push(f)
        })
        .unwrap();
        prop_assert_eq!(&short_flows, &flows);
        prop_assert_eq!(&short_stats, &general_stats);

        // The fused path (verdicts from the index from the start, or explained always).
        let mut fast = match index_verdicts {
            true => checker().explain_all_before(0),
            false => checker(),
        };
        let (mut rows, mut fused_stats) = (Vec::new(), ReadStats::default());
        let which = if mismatches_only {
            Rows::Mismatches
        } else {
            Rows::All
        };
        read_bytes_into(
            text,
            "f.log",
            &format,
            &mut fused_stats,
            &mut fast.judging(which, &mut |row| rows.push(row.clone())),
        )
        .unwrap();
        prop_assert_eq!(&fused_stats, &general_stats);
        prop_assert_eq!(&rows, &expected);
        let mut counts = fast.stats().clone();
        counts.verdicts = slow.stats().verdicts;
        prop_assert_eq!(&counts, slow.stats());

        // Counted (`flows check`'s mismatch groups; verdicts from the index from the start
        // too, with `index_verdicts`), with a front cache small enough that connections
        // leave it: every mismatch counted once, under its row (time aside), in whatever
        // order the rows are handed on.
        let mut counter = match small_front {
            true => checker().with_small_front_cache(),
            false => checker(),
        };
        if index_verdicts {
            counter = counter.explain_all_before(0);
        }
        let mut counted: Vec<(CheckedFlow, u64)> = Vec::new();
        let mut counted_stats = ReadStats::default();
        read_bytes_into(
            text,
            "f.log",
            &format,
            &mut counted_stats,
            &mut counter.counting(&mut |rows| counted.extend_from_slice(rows)),
        )
        .unwrap();
        prop_assert_eq!(&counted_stats, &general_stats);
        let mut counts = counter.stats().clone();
        counts.verdicts = slow.stats().verdicts;
        prop_assert_eq!(&counts, slow.stats());
        let timeless = |row: &CheckedFlow| CheckedFlow {
            time: None,
            ..row.clone()
        };
        let tally = |rows: &mut dyn Iterator<Item = (CheckedFlow, u64)>| {
            let mut tallies: Vec<(CheckedFlow, u64)> = Vec::new();
            for (row, flows) in rows {
                let row = timeless(&row);
                match tallies.iter_mut().find(|(seen, _)| *seen == row) {
                    Some((_, total)) => *total += flows,
                    None => tallies.push((row, flows)),
                }
            }
            tallies
        };
        let mismatches = expected
            .iter()
            .filter(|row| row.mismatch)
            .map(|row| (row.clone(), 1));
        let (counted, expected) = (
            tally(&mut counted.into_iter()),
            tally(&mut mismatches.into_iter()),
        );
        prop_assert_eq!(counted.len(), expected.len());
        for row in &counted {
            prop_assert!(expected.contains(row), "{:?} counted, not expected", row);
        }
        Ok(())
    }

    /// The default format's header line (back to it).
    fn crate_v2_header() -> Vec<u8> {
        b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status".to_vec()
    }

    /// A front cache that the connections outgrow (each leaves before it comes again) grows
    /// while reading, eight times at a time to its most, and changes no answer: through the
    /// growth, every mismatch is counted once under its row, as a checker without a front
    /// cache finds them, and the counts are the same.
    #[test]
    fn a_front_cache_the_connections_outgrow_grows_and_changes_no_answer() {
        let engine = engine();
        let addresses = addresses(&engine);
        let mut text = String::new();
        for round in 0..4 {
            for (n, a) in addresses.iter().enumerate() {
                for b in &addresses {
                    for port in [8080u16, 80, 53, 443, 5432, 40000] {
                        let action = ["REJECT", "ACCEPT", "ACCEPT"][(n + round) % 3];
                        text.push_str(&format!(
                            "2 1 eni-1 {a} {b} 40000 {port} 6 1 40 1700000000 1700000060 {action} OK\n"
                        ));
                    }
                }
            }
        }
        let count = |mut checker: Checker| {
            let mut totals: std::collections::BTreeMap<String, u64> = Default::default();
            let mut add = |rows: &[(CheckedFlow, u64)]| {
                for (row, flows) in rows {
                    let row = CheckedFlow {
                        time: None,
                        ..row.clone()
                    };
                    *totals.entry(format!("{row:?}")).or_default() += flows;
                }
            };
            let format = SourceFormat::Vpc(VpcFormat::default());
            let mut stats = ReadStats::default();
            let mut sink = checker.counting(&mut add);
            read_bytes_into(text.as_bytes(), "f.log", &format, &mut stats, &mut sink).unwrap();
            drop(sink);
            let stats = checker.stats().clone();
            (
                totals,
                (stats.judged, stats.mismatches),
                checker.front_cache_bits(),
            )
        };
        let (grown, grown_counts, bits) =
            count(Checker::new(&engine, None).with_small_front_cache());
        let (plain, plain_counts, _) = count(Checker::new(&engine, None).without_front_cache());
        assert_eq!(bits, 6, "grown from 4 sets to 32, then to its most, 64");
        assert!(grown_counts.1 > 0);
        assert_eq!(grown_counts, plain_counts);
        assert_eq!(grown, plain);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every flow judged alike, and the same counts, with and without the front cache,
        /// over flows that repeat connections across the times the pods history changes
        /// hands, with and without a history, replies and security groups, and flows that
        /// name their pods (as Hubble's do: a name is read when the address resolves to no
        /// pod), rightly, wrongly, or a pod that does not exist.
        #[test]
        fn the_front_cache_changes_no_answer(
            picks in proptest::collection::vec(
                (0usize..64, 0usize..64, 0usize..6, 0usize..TIMES.len(), 0u8..3, 0u8..3, 0u8..4, any::<bool>(), 0u8..4, 0usize..4),
                1..300,
            ),
            with_history in any::<bool>(),
            with_groups in any::<bool>(),
            index_verdicts in any::<bool>(),
            dual in any::<bool>(),
        ) {
            let engine = engine_of(dual, with_groups, "");
            let history = || with_history.then(|| History::read(HISTORY).unwrap());
            let mut fast = Checker::new(&engine, history());
            if index_verdicts {
                fast = fast.explain_all_before(0);
            }
            let mut slow = Checker::new(&engine, history()).without_front_cache();
            if with_groups {
                fast = fast.with_security_groups(security_groups(GROUPS_JSON));
                slow = slow.with_security_groups(security_groups(GROUPS_JSON));
            }
            let addresses = addresses(&engine);
            let ports = [8080u16, 80, 53, 443, 5432, 40000];
            let names = [("shop", "web"), ("jobs", "batch"), ("shop", "api"), ("gone", "pod")];
            for (a, b, port, time, reply, observed, protocol, sees_groups, named, name) in picks {
                let protocol = [FlowProtocol::Tcp, FlowProtocol::Udp, FlowProtocol::Sctp, FlowProtocol::Icmp][usize::from(protocol)];
                let mut flow = Flow::new(addresses[a % addresses.len()], addresses[b % addresses.len()], protocol);
                flow.dst_port = (protocol != FlowProtocol::Icmp).then_some(ports[port]);
                flow.src_port = (protocol != FlowProtocol::Icmp).then_some(ports[(port + 1) % ports.len()]);
                flow.time = (TIMES[time] != 0).then(|| jiff::Timestamp::from_second(TIMES[time]).unwrap());
                flow.reply = [Reply::Unknown, Reply::No, Reply::Yes][usize::from(reply)];
                flow.observed = [None, Some(Observed::Allow), Some(Observed::Deny)][usize::from(observed)];
                flow.sees_security_groups = sees_groups;
                let hint = |n: usize| {
                    let (namespace, name) = names[n % names.len()];
                    Some(PodHint { namespace: namespace.into(), name: name.into() })
                };
                if named & 1 != 0 {
                    flow.src_pod = hint(name);
                }
                if named & 2 != 0 {
                    flow.dst_pod = hint(name + a);
                }
                prop_assert_eq!(fast.check(&flow), slow.check(&flow), "{:?}", flow);
            }
            let mut counts = fast.stats().clone();
            counts.verdicts = slow.stats().verdicts;
            prop_assert_eq!(&counts, slow.stats());
        }

        /// The fused VPC path (records read the short way and judged from the front cache,
        /// the whole flow made only for a row) against the general one (every line read
        /// into a `Flow`, every flow checked), line by line over random files: usual records,
        /// odd values std still reads, malformed lines, NODATA, header lines switching the
        /// format (one naming no source), CloudWatch times in front, a byte-order mark, CRLF,
        /// blank lines, non-ASCII and non-UTF-8 bytes. The same rows in order, the same read
        /// counts by reason with the same example files and lines, the same check counts.
        #[test]
        fn the_fused_vpc_path_changes_no_answer(
            lines in proptest::collection::vec(
                (proptest::collection::vec(0usize..1000, 14), 0usize..24),
                1..200,
            ),
            with_history in any::<bool>(),
            with_groups in any::<bool>(),
            mismatches_only in any::<bool>(),
            index_verdicts in any::<bool>(),
            small_front in any::<bool>(),
            dual in any::<bool>(),
        ) {
            let engine = engine_of(dual, with_groups, "");
            let text = vpc_lines(&engine, &lines);
            let options = Fused { with_history, with_groups, mismatches_only, index_verdicts, small_front };
            fused_path_agrees(&engine, &text, options)?;
        }

        /// The fused VPC path where connections repeat (a few drawn over and over, every
        /// line a usual record), so that most records find their connection in the front
        /// cache and are judged from its entry alone: replies by the source's declared port
        /// (a pod that declares more ports than an entry keeps among them), mismatches both
        /// ways, outcomes still pending, security groups, a front cache small enough that
        /// connections leave it; ICMP and portless records among them.
        #[test]
        fn records_of_cached_connections_judge_as_the_general_path(
            connections in proptest::collection::vec(
                (0usize..64, 0usize..64, 0usize..7, 0usize..7, 0usize..3),
                1..8,
            ),
            records in proptest::collection::vec((0usize..8, 0usize..4), 1..300),
            with_groups in any::<bool>(),
            mismatches_only in any::<bool>(),
            index_verdicts in any::<bool>(),
            small_front in any::<bool>(),
            dual in any::<bool>(),
        ) {
            let engine = engine_with_many_ports_of(dual, with_groups);
            // Pods drawn more often: their connections' outcomes may be pending.
            let pods = engine.inventory().pods().iter().flat_map(|pod| pod.ips.clone());
            let addresses: Vec<_> = pods.clone().chain(pods).chain(addresses(&engine)).collect();
            // ICMP and ports not given too: records with no front cache key, judged the
            // long way between cached ones.
            let ports = ["8080", "80", "443", "53", "5432", "40000", "-"];
            let mut text = Vec::new();
            for (connection, action) in records {
                let (a, b, src_port, dst_port, protocol) = connections[connection % connections.len()];
                let line = format!(
                    "2 123456789010 eni-1235b8ca123456789 {} {} {} {} {} 20 4249 1418530010 1418530070 {} OK\n",
                    addresses[a % addresses.len()],
                    addresses[b % addresses.len()],
                    ports[src_port],
                    ports[dst_port],
                    [6, 17, 1][protocol],
                    ["ACCEPT", "REJECT", "ACCEPT", "-"][action],
                );
                text.extend_from_slice(line.as_bytes());
            }
            let options = Fused { with_history: false, with_groups, mismatches_only, index_verdicts, small_front };
            fused_path_agrees(&engine, &text, options)?;
        }

        /// Words split as `split_ascii_whitespace` splits them, whatever the bytes.
        #[test]
        fn vpc_fields_split_as_std_splits_them(
            words in proptest::collection::vec("[ -~\\t\\n\\x0b\\x0c\\r\\x01é]{0,12}", 0..20),
            separators in proptest::collection::vec("[ \\t\\x0c\\r]{1,3}", 20),
        ) {
            // A format of as many fields as std finds words, read back through a record:
            // the count of fields is the splitter's.
            let mut line = String::new();
            for (word, separator) in words.iter().zip(&separators) {
                line.push_str(word);
                line.push_str(separator);
            }
            let count = line.split_ascii_whitespace().count();
            let format = VpcFormat::parse("srcaddr dstaddr protocol").unwrap();
            let result = format.record(&line);
            if count != 3 {
                let expected = format!("malformed: {count} fields where the format has 3");
                prop_assert_eq!(result.map(|_| ()).unwrap_err().to_string(), expected);
            }
        }
    }
}
