//! The advisor (issue 15): Online Boutique's call graph gives a proposal that denies no
//! observed connection, cuts allowed pod pairs × ports by at least 90% against allow-all and
//! has at most one policy per workload and direction, checked again here on an engine built
//! from the printed YAML; existing policies respected or replaced; external blocks,
//! host-network pods, nodes, CronJobs, UDP and SCTP.

use netfence_engine::{Cluster, Endpoint, Engine};
use netfence_flows::advise::{self, Advice, AdviseOptions, Observer, Style};
use netfence_flows::{Flow, FlowProtocol, Observed, PodHint, ReadStats, Reply, SourceFormat};
use netfence_model::{Loader, PodId, PolicyType, Protocol};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

fn examples() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/online-boutique"
    ))
}

fn boutique() -> Loader {
    let mut loader = Loader::new();
    loader.load_path(&examples().join("cluster"));
    loader
}

/// A connection from `src` to `dst` as Hubble reports it: addresses, the pods named, allowed.
fn flow(engine: &Engine, src: usize, dst: usize, protocol: FlowProtocol, port: u16) -> Flow {
    let pods = engine.inventory().pods();
    let hint = |id: usize| PodHint {
        namespace: pods[id].namespace.clone(),
        name: pods[id].name.clone(),
    };
    let mut flow = Flow::new(pods[src].ips[0], pods[dst].ips[0], protocol);
    flow.src_port = Some(40000);
    flow.dst_port = Some(port);
    flow.observed = Some(Observed::Allow);
    flow.reply = Reply::No;
    flow.src_pod = Some(hint(src));
    flow.dst_pod = Some(hint(dst));
    flow
}

/// A call: (source pod, destination pod, protocol, port).
type Call = (usize, usize, Protocol, u16);

/// The call graph of `examples/online-boutique/calls.txt` as (source pod, destination pod,
/// protocol, port); `*` is every pod.
fn calls(engine: &Engine) -> Vec<Call> {
    let text = std::fs::read_to_string(examples().join("calls.txt")).unwrap();
    let pods = engine.inventory().pods();
    let resolve = |name: &str| -> Vec<usize> {
        let (namespace, name) = name.split_once('/').unwrap_or(("default", name));
        (0..pods.len())
            .filter(|&i| {
                name == "*" || (pods[i].namespace == namespace && pods[i].workload.name == name)
            })
            .collect()
    };
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let (protocol, port) = words[3].split_once('/').unwrap();
        let protocol = if protocol == "UDP" {
            Protocol::Udp
        } else {
            Protocol::Tcp
        };
        for src in resolve(words[0]) {
            for dst in resolve(words[2]) {
                if src != dst {
                    out.push((src, dst, protocol, port.parse().unwrap()));
                }
            }
        }
    }
    assert!(out.len() >= 16, "the call graph reads: {out:?}");
    out
}

fn flow_protocol(protocol: Protocol) -> FlowProtocol {
    match protocol {
        Protocol::Tcp => FlowProtocol::Tcp,
        Protocol::Udp => FlowProtocol::Udp,
        Protocol::Sctp => FlowProtocol::Sctp,
    }
}

/// Advise on `loader`'s cluster from `flows`.
fn advise_on(loader: &Loader, flows: &[Flow], options: &AdviseOptions) -> Advice {
    let cluster = Cluster::new(loader.clone()).unwrap();
    let mut observer = Observer::new(cluster.engine(), None);
    for flow in flows {
        observer.add(flow);
    }
    let observations = observer.finish();
    advise::advise(loader, &cluster, &observations, options).unwrap()
}

/// An engine of `loader`'s objects plus the printed documents (the user's `kubectl apply`).
fn applied(loader: &Loader, advice: &Advice) -> Engine {
    let mut loader = loader.clone();
    let yaml = advise::render::yaml_stream(&advice.documents);
    loader.load_str("proposal.yaml", &yaml);
    Engine::new(loader.finish().unwrap())
}

fn pod(engine: &Engine, workload: &str) -> Endpoint {
    let pods = engine.inventory().pods();
    Endpoint::Pod(PodId::new(
        pods.iter()
            .position(|p| p.workload.name == workload)
            .unwrap(),
    ))
}

fn boutique_advice(options: &AdviseOptions) -> (Loader, Advice, Vec<Call>) {
    let loader = boutique();
    let engine = Engine::new(loader.clone().finish().unwrap());
    let calls = calls(&engine);
    let flows: Vec<Flow> = calls
        .iter()
        .map(|&(s, d, protocol, port)| flow(&engine, s, d, flow_protocol(protocol), port))
        .collect();
    let advice = advise_on(&loader, &flows, options);
    (loader, advice, calls)
}

#[test]
fn online_boutique_no_false_deny_ninety_percent_fewer_pairs_one_policy_per_workload_and_direction()
{
    let (loader, advice, calls) = boutique_advice(&AdviseOptions::default());
    let proof = &advice.proof;
    assert_eq!(proof.flows, calls.len() as u64);
    assert_eq!(proof.denied_after, 0, "denied: {:?}", proof.denied);
    assert!(proof.allowed_pairs_all > 0);
    assert_eq!(
        proof.allowed_pairs_before, proof.allowed_pairs_all,
        "Online Boutique ships without policies: everything is allowed today"
    );
    let cut = 1.0 - proof.allowed_pairs_after as f64 / proof.allowed_pairs_all as f64;
    assert!(
        cut >= 0.90,
        "pairs x ports: {} after of {} ({:.1}% cut)",
        proof.allowed_pairs_after,
        proof.allowed_pairs_all,
        cut * 100.0
    );
    assert!(proof.allowed_pairs_after >= proof.observed_pairs);
    // At most one policy per workload and direction.
    let mut seen: BTreeMap<(String, PolicyType), usize> = BTreeMap::new();
    for policy in &advice.plan.policies {
        for workload in &policy.workloads {
            *seen
                .entry((workload.to_string(), policy.direction))
                .or_default() += 1;
        }
    }
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    // Every caller has an egress policy, every callee (but DNS, not isolated today and not
    // default-denied) an ingress one.
    let pods = Engine::new(loader.clone().finish().unwrap())
        .inventory()
        .pods()
        .to_vec();
    for &(src, dst, _, _) in &calls {
        let name = |id: usize| pods[id].workload.to_string();
        assert!(
            seen.contains_key(&(name(src), PolicyType::Egress)),
            "{}",
            name(src)
        );
        if pods[dst].namespace != "kube-system" {
            assert!(
                seen.contains_key(&(name(dst), PolicyType::Ingress)),
                "{}",
                name(dst)
            );
        }
    }
    assert_eq!(advice.plan.default_deny.len(), 1);
    // The printed YAML, applied to the cluster, allows every call and denies what the call
    // graph does not have.
    let after = applied(&loader, &advice);
    for &(src, dst, protocol, port) in &calls {
        let (src, dst) = (PodId::new(src), PodId::new(dst));
        assert!(after.allowed(Endpoint::Pod(src), Endpoint::Pod(dst), protocol, port));
    }
    for (src, dst, port) in [
        ("loadgenerator", "cartservice", 7070),
        ("frontend", "redis-cart", 6379),
        ("paymentservice", "checkoutservice", 5050),
        ("adservice", "frontend", 8080),
    ] {
        assert!(
            !after.allowed(pod(&after, src), pod(&after, dst), Protocol::Tcp, port),
            "{src} -> {dst} {port} must be denied"
        );
    }
    // The what-if lines are today's cluster against the proposal: every default-namespace
    // workload changes.
    assert!(!proof.what_if.is_empty());
}

#[test]
fn the_lab_recorded_flows_give_the_same_proposal_as_the_call_graph() {
    let (loader, expected, _) = boutique_advice(&AdviseOptions::default());
    let cluster = Cluster::new(loader.clone()).unwrap();
    let mut observer = Observer::new(cluster.engine(), None);
    let mut stats = ReadStats::default();
    netfence_flows::read_path(
        &examples().join("hubble.jsonl"),
        &SourceFormat::Hubble,
        &mut stats,
        &mut |flow| observer.add(&flow),
    )
    .unwrap();
    let observations = observer.finish();
    assert!(observations.stats.replies > 0, "the recording has replies");
    let advice =
        advise::advise(&loader, &cluster, &observations, &AdviseOptions::default()).unwrap();
    assert_eq!(advice.proof.denied_after, 0);
    assert_eq!(advice.documents, expected.documents);
}

#[test]
fn the_yaml_is_deterministic_and_calico_staged_and_cilium_prove_alike() {
    let (_, first, _) = boutique_advice(&AdviseOptions::default());
    let (_, second, _) = boutique_advice(&AdviseOptions::default());
    assert_eq!(
        advise::render::yaml_stream(&first.documents),
        advise::render::yaml_stream(&second.documents)
    );
    let calico = AdviseOptions {
        style: Style::Calico,
        ..AdviseOptions::default()
    };
    let (loader, advice, _) = boutique_advice(&calico);
    assert_eq!(advice.proof.denied_after, 0);
    assert_eq!(
        advice.proof.allowed_pairs_after,
        first.proof.allowed_pairs_after
    );
    let yaml = advise::render::yaml_stream(&advice.documents);
    assert!(yaml.contains("apiVersion: projectcalico.org/v3"));
    assert!(yaml.contains("selector: app == 'frontend'"));
    assert!(yaml.contains("namespaceSelector: kubernetes.io/metadata.name == 'kube-system'"));
    // The Calico documents, applied, allow the calls.
    let after = applied(&loader, &advice);
    assert!(after.allowed(
        pod(&after, "frontend"),
        pod(&after, "adservice"),
        Protocol::Tcp,
        9555
    ));
    assert!(!after.allowed(
        pod(&after, "frontend"),
        pod(&after, "redis-cart"),
        Protocol::Tcp,
        6379
    ));
    let cilium = AdviseOptions {
        style: Style::Cilium,
        ..AdviseOptions::default()
    };
    let (loader, cilium, _) = boutique_advice(&cilium);
    assert_eq!(cilium.proof.denied_after, 0);
    assert_eq!(
        cilium.proof.allowed_pairs_after,
        first.proof.allowed_pairs_after
    );
    let yaml = advise::render::yaml_stream(&cilium.documents);
    assert!(yaml.contains("kind: CiliumNetworkPolicy"));
    assert!(yaml.contains("k8s:io.kubernetes.pod.namespace: kube-system"));
    let after = applied(&loader, &cilium);
    assert!(after.allowed(
        pod(&after, "frontend"),
        pod(&after, "adservice"),
        Protocol::Tcp,
        9555
    ));
    assert!(!after.allowed(
        pod(&after, "frontend"),
        pod(&after, "redis-cart"),
        Protocol::Tcp,
        6379
    ));
    let staged = AdviseOptions {
        staged: true,
        ..calico
    };
    let (_, staged, _) = boutique_advice(&staged);
    let yaml = advise::render::yaml_stream(&staged.documents);
    assert!(yaml.contains("kind: StagedNetworkPolicy"));
    assert!(!yaml.contains("kind: NetworkPolicy"));
    assert_eq!(
        staged.proof.allowed_pairs_after,
        advice.proof.allowed_pairs_after
    );
}

const SHOP: &str = "
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: shop, labels: {app: a, pod-template-hash: x1}}
spec: {containers: [{name: c}]}
status: {podIP: 10.1.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: shop, labels: {app.kubernetes.io/name: b, app: bee}}
spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}
status: {podIP: 10.1.0.2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-from-a, namespace: shop}
spec:
  podSelector: {matchLabels: {app.kubernetes.io/name: b}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: a}}}]
    ports: [{port: 80}]
";

fn by_ip(engine: &Engine, from: &str, to: &str, protocol: FlowProtocol, port: u16) -> Flow {
    let ip = |text: &str| text.parse::<IpAddr>().unwrap();
    let mut flow = Flow::new(ip(from), ip(to), protocol);
    flow.dst_port = Some(port);
    flow.src_port = Some(40000);
    flow.reply = Reply::No;
    let _ = engine;
    flow
}

#[test]
fn existing_policies_are_respected_or_replaced() {
    let mut loader = Loader::new();
    loader.load_str("shop.yaml", SHOP);
    let engine = Engine::new(loader.clone().finish().unwrap());
    let flows = [by_ip(
        &engine,
        "10.1.0.1",
        "10.1.0.2",
        FlowProtocol::Tcp,
        80,
    )];
    let kept = advise_on(&loader, &flows, &AdviseOptions::default());
    assert_eq!(kept.proof.denied_after, 0);
    let names: Vec<&str> = kept.plan.policies.iter().map(|p| p.name.as_str()).collect();
    // b's ingress is already allowed by b-from-a: only a's egress is written. The labels
    // controllers add are never selected on; b is selected by app.kubernetes.io/name.
    assert_eq!(names, ["a-egress"]);
    assert_eq!(
        kept.plan.policies[0].subject,
        BTreeMap::from([("app".into(), "a".into())])
    );
    let yaml = advise::render::yaml_stream(&kept.documents);
    assert!(yaml.contains("app.kubernetes.io/name: b"), "{yaml}");
    assert!(kept.replaces.is_empty());
    let replaced = advise_on(
        &loader,
        &flows,
        &AdviseOptions {
            replace: true,
            ..AdviseOptions::default()
        },
    );
    assert_eq!(replaced.proof.denied_after, 0);
    let names: BTreeSet<&str> = replaced
        .plan
        .policies
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, BTreeSet::from(["a-egress", "b-ingress"]));
    assert_eq!(replaced.replaces, ["NetworkPolicy shop/b-from-a"]);
}

const EDGES: &str = "
apiVersion: v1
kind: Node
metadata: {name: n1}
status: {addresses: [{type: InternalIP, address: 192.168.1.10}]}
---
apiVersion: v1
kind: Node
metadata: {name: n2}
status: {addresses: [{type: InternalIP, address: 192.168.1.11}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: edge, labels: {app: web}}
spec: {nodeName: n1, containers: [{name: c, ports: [{containerPort: 8080}]}]}
status: {podIP: 10.2.0.5}
---
apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: edge, labels: {app: agent}}
spec: {hostNetwork: true, nodeName: n1, containers: [{name: c}]}
status: {podIP: 192.168.1.10}
---
apiVersion: v1
kind: Pod
metadata: {name: odd, namespace: other, labels: {app: odd}}
spec: {containers: [{name: c}]}
status: {podIP: 52.94.10.40}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report, namespace: edge}
spec:
  schedule: '@hourly'
  jobTemplate:
    spec:
      template:
        metadata: {labels: {app: report}}
        spec: {containers: [{name: c}]}
";

#[test]
fn external_blocks_hold_no_pod_host_traffic_is_reported_cronjobs_by_template_labels() {
    let mut loader = Loader::new();
    loader.load_str("edges.yaml", EDGES);
    let engine = Engine::new(loader.clone().finish().unwrap());
    let report = engine
        .inventory()
        .pods()
        .iter()
        .position(|p| p.workload.kind == "CronJob")
        .unwrap();
    let mut flows = vec![
        by_ip(&engine, "192.168.1.11", "10.2.0.5", FlowProtocol::Tcp, 8080),
        by_ip(&engine, "10.2.0.5", "52.94.10.3", FlowProtocol::Tcp, 443),
        by_ip(&engine, "10.2.0.5", "52.94.10.77", FlowProtocol::Tcp, 443),
        by_ip(&engine, "10.2.0.5", "8.8.8.8", FlowProtocol::Udp, 53),
        by_ip(&engine, "10.2.0.5", "8.8.4.4", FlowProtocol::Sctp, 9000),
        by_ip(
            &engine,
            "10.2.0.5",
            "192.168.1.10",
            FlowProtocol::Tcp,
            10250,
        ),
        // ICMP has no port: reported, never advised.
        by_ip(&engine, "10.2.0.5", "8.8.8.8", FlowProtocol::Icmp, 0),
    ];
    // The host-network agent, named by the log.
    let mut from_agent = by_ip(&engine, "192.168.1.10", "10.2.0.5", FlowProtocol::Udp, 8125);
    from_agent.src_pod = Some(PodHint {
        namespace: "edge".into(),
        name: "agent".into(),
    });
    flows.push(from_agent);
    let pods = engine.inventory().pods();
    let mut from_job = Flow::new(
        pods[report].ips[0],
        "10.2.0.5".parse().unwrap(),
        FlowProtocol::Tcp,
    );
    from_job.dst_port = Some(8080);
    from_job.reply = Reply::No;
    from_job.src_pod = Some(PodHint {
        namespace: "edge".into(),
        name: pods[report].name.clone(),
    });
    flows.push(from_job);
    let advice = advise_on(&loader, &flows, &AdviseOptions::default());
    assert_eq!(advice.proof.denied_after, 0, "{:?}", advice.proof.denied);
    let yaml = advise::render::yaml_stream(&advice.documents);
    // 52.94.10.0/25 would hold pod other/odd: the two addresses stay /32s.
    for block in [
        "52.94.10.3/32",
        "52.94.10.77/32",
        "8.8.8.8/32",
        "8.8.4.4/32",
        "192.168.1.10/32",
        "192.168.1.11/32",
    ] {
        assert!(
            yaml.contains(&format!("cidr: {block}")),
            "{block} in\n{yaml}"
        );
    }
    assert!(yaml.contains("protocol: SCTP"));
    assert!(yaml.contains("protocol: UDP"));
    // Nothing selects the host-network agent; its traffic is reported.
    assert!(advice
        .plan
        .policies
        .iter()
        .all(|p| p.subject.get("app").map(String::as_str) != Some("agent")));
    assert!(
        advice
            .plan
            .host_traffic
            .iter()
            .any(|t| t.contains("edge/agent")),
        "{:?}",
        advice.plan.host_traffic
    );
    assert!(advice
        .plan
        .host_traffic
        .iter()
        .any(|t| t.contains("node n2")));
    // The CronJob's pods are selected by its template's labels.
    let job = advice
        .plan
        .policies
        .iter()
        .find(|p| p.workloads.iter().any(|w| w.kind == "CronJob"))
        .unwrap();
    assert_eq!(
        job.subject,
        BTreeMap::from([("app".into(), "report".into())])
    );
    assert!(advice.proof.allowed_pairs_after <= advice.proof.allowed_pairs_before);
    // Under Cilium, nodes and host-network pods are the `host`/`remote-node` entities (its
    // CIDR rules never match them); the proof still denies nothing.
    let cilium = advise_on(
        &loader,
        &flows,
        &AdviseOptions {
            style: Style::Cilium,
            ..AdviseOptions::default()
        },
    );
    assert_eq!(cilium.proof.denied_after, 0, "{:?}", cilium.proof.denied);
    let yaml = advise::render::yaml_stream(&cilium.documents);
    assert!(
        yaml.contains("fromEntities:") && yaml.contains("toEntities:"),
        "{yaml}"
    );
    assert!(yaml.contains("toCIDR:"));
}
