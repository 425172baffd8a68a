//! One test per semantic rule of shared/DESIGN.md's Kubernetes section, each citing its source:
//! the NetworkPolicy API reference (networking.k8s.io/v1, "NetworkPolicySpec",
//! "NetworkPolicyPeer", "NetworkPolicyPort"), the concepts page "Network Policies", or the e2e
//! test in kubernetes/kubernetes test/e2e/network/netpol/network_policy.go.

mod common;

use common::engine_from;
use netfence_engine::{Endpoint, Engine, Outcome};
use netfence_model::Protocol::{Sctp, Tcp, Udp};
use netfence_model::{PolicyType, Protocol};

const CLUSTER: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {team: red}}
---
apiVersion: v1
kind: Namespace
metadata: {name: y, labels: {team: blue}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
spec: {containers: [{name: c, ports: [{name: web, containerPort: 8080}, {name: dns, containerPort: 53, protocol: UDP}]}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {app: b}}
spec: {containers: [{name: c, ports: [{name: web, containerPort: 9090}]}]}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: y, labels: {app: a}}
spec: {containers: [{name: c}]}
status: {podIP: 10.0.1.1}
---
apiVersion: v1
kind: Pod
metadata: {name: host, namespace: y, labels: {app: host}}
spec: {hostNetwork: true, containers: [{name: c}]}
status: {podIP: 192.168.0.10}
";

fn engine(policies: &str) -> Engine {
    engine_from(&[("cluster.yaml", CLUSTER), ("policies.yaml", policies)])
}

fn pod(engine: &Engine, key: &str) -> Endpoint {
    let (ns, name) = key.split_once('/').unwrap();
    Endpoint::Pod(engine.inventory().pod_by_key(ns, name).expect(key))
}

fn ip(text: &str) -> Endpoint {
    Endpoint::Address(text.parse().unwrap())
}

fn can(engine: &Engine, src: Endpoint, dst: Endpoint, protocol: Protocol, port: u16) -> bool {
    engine.allowed(src, dst, protocol, port)
}

fn np(namespace: &str, name: &str, spec: &str) -> String {
    format!("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}\n")
}

// API reference, NetworkPolicySpec.policyTypes: "If this field is not specified, it will default
// based on the existence of ingress or egress rules; policies that contain an egress section are
// assumed to affect egress, and all policies (whether or not they contain an ingress section)
// are assumed to affect ingress."
#[test]
fn policy_types_default_and_isolation_is_per_direction() {
    let e = engine(&np("x", "eg", "  podSelector: {matchLabels: {app: a}}\n  egress:\n  - to: [{podSelector: {matchLabels: {app: b}}}]"));
    let (a, b, ya) = (pod(&e, "x/a"), pod(&e, "x/b"), pod(&e, "y/a"));
    assert!(
        !can(&e, ya, a, Tcp, 80),
        "ingress isolated by default type Ingress, no ingress rules"
    );
    assert!(can(&e, a, b, Tcp, 80), "egress allowed to app=b");
    assert!(
        !can(&e, a, ya, Tcp, 80),
        "egress isolated because spec.egress is non-empty"
    );
    assert!(
        can(&e, b, ya, Tcp, 80),
        "b is not selected: not isolated in either direction"
    );
    let only_egress = engine(&np(
        "x",
        "eg",
        "  podSelector: {matchLabels: {app: a}}\n  policyTypes: [Egress]",
    ));
    assert!(
        can(
            &only_egress,
            pod(&only_egress, "y/a"),
            pod(&only_egress, "x/a"),
            Tcp,
            80
        ),
        "explicit [Egress] leaves ingress open"
    );
}

// Concepts, "The two sorts of pod isolation": "Network policies do not conflict; they are
// additive ... the union of what the applicable policies allow."
#[test]
fn rules_of_all_selecting_policies_are_ored() {
    let policies = np("x", "one", "  podSelector: {}\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: b}}}]")
        + &np("x", "two", "  podSelector: {}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {team: blue}}}]");
    let e = engine(&policies);
    assert!(can(&e, pod(&e, "x/b"), pod(&e, "x/a"), Tcp, 1));
    assert!(can(&e, pod(&e, "y/a"), pod(&e, "x/a"), Tcp, 1));
    assert!(
        !can(&e, pod(&e, "x/a"), pod(&e, "x/b"), Tcp, 1),
        "x/a matches neither policy's peers"
    );
}

// API reference, NetworkPolicyIngressRule: "traffic is allowed ... if the traffic matches both
// ports AND from"; "If this field is empty or missing, this rule matches all sources/ports".
#[test]
fn peers_and_ports_are_anded_and_empty_means_everything() {
    let e = engine(&np("x", "p", "  podSelector: {matchLabels: {app: a}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: b}}}, {ipBlock: {cidr: 203.0.113.0/24}}]\n    ports: [{port: 80}, {port: 443}]\n  - ports: [{port: 8443}]"));
    let (a, b) = (pod(&e, "x/a"), pod(&e, "x/b"));
    assert!(can(&e, b, a, Tcp, 80) && can(&e, b, a, Tcp, 443));
    assert!(!can(&e, b, a, Tcp, 81), "peer matches, port does not");
    assert!(
        can(&e, ip("203.0.113.7"), a, Tcp, 443),
        "second peer, OR-ed"
    );
    assert!(
        !can(&e, pod(&e, "y/a"), a, Tcp, 80),
        "port matches, peer does not"
    );
    assert!(
        can(&e, ip("198.51.100.1"), a, Tcp, 8443),
        "no from: every peer, including any IP"
    );
    let all_ports = engine(&np(
        "x",
        "p",
        "  podSelector: {matchLabels: {app: a}}\n  ingress:\n  - from: [{podSelector: {}}]",
    ));
    assert!(can(
        &all_ports,
        pod(&all_ports, "x/b"),
        pod(&all_ports, "x/a"),
        Sctp,
        9
    ));
}

// API reference, NetworkPolicyPeer: podSelector alone selects pods in the policy's namespace;
// namespaceSelector alone selects all pods in matching namespaces; both: pods matching the
// podSelector in matching namespaces. e2e: "should enforce policy based on PodSelector and
// NamespaceSelector" and "should enforce policy to allow traffic only from a pod in a different
// namespace based on PodSelector and NamespaceSelector".
#[test]
fn peer_selectors_scope_namespaces() {
    let only_pods = engine(&np("x", "p", "  podSelector: {matchLabels: {app: b}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: a}}}]"));
    assert!(can(
        &only_pods,
        pod(&only_pods, "x/a"),
        pod(&only_pods, "x/b"),
        Tcp,
        1
    ));
    assert!(
        !can(
            &only_pods,
            pod(&only_pods, "y/a"),
            pod(&only_pods, "x/b"),
            Tcp,
            1
        ),
        "podSelector alone: own namespace only"
    );
    let only_ns = engine(&np("x", "p", "  podSelector: {matchLabels: {app: b}}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {team: blue}}}]"));
    assert!(can(
        &only_ns,
        pod(&only_ns, "y/a"),
        pod(&only_ns, "x/b"),
        Tcp,
        1
    ));
    assert!(!can(
        &only_ns,
        pod(&only_ns, "x/a"),
        pod(&only_ns, "x/b"),
        Tcp,
        1
    ));
    let both = engine(&np("x", "p", "  podSelector: {matchLabels: {app: b}}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {team: blue}}, podSelector: {matchLabels: {app: nothing}}}]"));
    assert!(
        !can(&both, pod(&both, "y/a"), pod(&both, "x/b"), Tcp, 1),
        "both = AND within one peer"
    );
}

// API reference, IPBlock: "CIDR ... except: a slice of CIDRs that should not be included".
// e2e "should enforce except clause while egress access to server in CIDR block" relies on
// ipBlock matching pod IPs.
#[test]
fn ip_blocks_match_pod_ips_minus_except() {
    let e = engine(&np("x", "p", "  podSelector: {matchLabels: {app: a}}\n  policyTypes: [Egress]\n  egress:\n  - to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.1.0/24]}}]"));
    let a = pod(&e, "x/a");
    assert!(
        can(&e, a, pod(&e, "x/b"), Tcp, 1),
        "10.0.0.2 is in the block"
    );
    assert!(!can(&e, a, pod(&e, "y/a"), Tcp, 1), "10.0.1.1 is excepted");
    assert!(can(&e, a, ip("10.0.200.1"), Udp, 1));
    assert!(!can(&e, a, ip("10.1.0.1"), Udp, 1));
}

// apimachinery labels.Requirement.Matches: NotIn and DoesNotExist are true when the key is
// absent. Namespaces carry kubernetes.io/metadata.name automatically (concepts, "Targeting a
// Namespace by its name"); e2e "should enforce policy based on NamespaceSelector with
// MatchExpressions".
#[test]
fn label_selector_semantics_and_namespace_name_label() {
    let e = engine(&np("x", "p", "  podSelector: {matchExpressions: [{key: tier, operator: NotIn, values: [db]}]}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}, podSelector: {matchExpressions: [{key: env, operator: DoesNotExist}]}}]"));
    assert!(
        !can(&e, pod(&e, "x/b"), pod(&e, "x/a"), Tcp, 1),
        "x/a has no tier label: selected by NotIn"
    );
    assert!(
        can(&e, pod(&e, "y/a"), pod(&e, "x/a"), Tcp, 1),
        "namespace matched by its automatic name label"
    );
}

// API reference, NetworkPolicyPort: protocol defaults to TCP; endPort "indicates that the range
// of ports from port to endPort if set, inclusive"; a named port refers to the destination
// pod's containerPort name. e2e: "should not mistakenly treat 'protocol: SCTP' as 'protocol:
// TCP'", "should allow ingress access on one named port", "should allow egress access on one
// named port".
#[test]
fn ports_protocols_ranges_and_named_ports() {
    let e = engine(&np("x", "p", "  podSelector: {}\n  ingress:\n  - ports: [{port: 80}, {protocol: SCTP, port: 90, endPort: 92}, {port: web}, {protocol: UDP, port: dns}]"));
    let (a, b, ya) = (pod(&e, "x/a"), pod(&e, "x/b"), pod(&e, "y/a"));
    assert!(
        can(&e, ya, a, Tcp, 80) && !can(&e, ya, a, Udp, 80),
        "protocol defaults to TCP"
    );
    assert!(
        can(&e, ya, a, Sctp, 92) && !can(&e, ya, a, Tcp, 91) && !can(&e, ya, a, Sctp, 93),
        "endPort inclusive, SCTP distinct"
    );
    assert!(
        can(&e, ya, a, Tcp, 8080) && !can(&e, ya, a, Tcp, 9090),
        "web is 8080 on x/a"
    );
    assert!(
        can(&e, ya, b, Tcp, 9090) && !can(&e, ya, b, Tcp, 8080),
        "web is 9090 on x/b"
    );
    assert!(
        can(&e, ya, a, Udp, 53) && !can(&e, ya, a, Tcp, 53),
        "named port matches name and protocol"
    );
    let egress = engine(&np("x", "p", "  podSelector: {matchLabels: {app: a}}\n  policyTypes: [Egress]\n  egress:\n  - ports: [{port: web}]"));
    let a = pod(&egress, "x/a");
    assert!(
        can(&egress, a, pod(&egress, "x/b"), Tcp, 9090),
        "egress named port resolves on the destination"
    );
    assert!(
        !can(&egress, a, ip("203.0.113.1"), Tcp, 8080),
        "a named port never matches an address"
    );
}

// Concepts: "for a connection from a source pod to a destination pod to be allowed, both the
// egress policy on the source pod and the ingress policy on the destination pod need to allow
// the connection"; replies are implicitly allowed; "traffic to and from the node where a Pod is
// running is always allowed" and hostNetwork pods are outside pod policy (Calico and Cilium do
// not enforce on them); a pod can always reach itself (concepts, "a pod cannot block access to
// itself").
#[test]
fn both_directions_host_network_and_self() {
    let policies = np(
        "x",
        "deny-all",
        "  podSelector: {}\n  policyTypes: [Ingress, Egress]",
    ) + &np(
        "y",
        "select-host",
        "  podSelector: {}\n  policyTypes: [Ingress, Egress]",
    );
    let e = engine(&policies);
    let (a, b, host) = (pod(&e, "x/a"), pod(&e, "x/b"), pod(&e, "y/host"));
    assert!(!can(&e, a, b, Tcp, 1));
    assert!(can(&e, a, a, Tcp, 1), "self is always allowed");
    assert!(
        can(&e, host, ip("203.0.113.1"), Tcp, 1),
        "hostNetwork pod: policies selecting it do not apply"
    );
    let verdict = e.explain(host, ip("203.0.113.1"), Tcp, 1);
    assert_eq!(verdict.egress.outcome, Outcome::NotApplicable);
    let egress_only = engine(&(np("x", "out", "  podSelector: {matchLabels: {app: a}}\n  policyTypes: [Egress]\n  egress: [{to: [{podSelector: {matchLabels: {app: b}}}]}]")
        + &np("x", "in", "  podSelector: {matchLabels: {app: b}}\n  policyTypes: [Ingress]")));
    let verdict = egress_only.explain(pod(&egress_only, "x/a"), pod(&egress_only, "x/b"), Tcp, 1);
    assert!(
        verdict.egress.allowed && !verdict.ingress.allowed && !verdict.allowed,
        "both sides must allow"
    );
    assert_eq!(verdict.ingress.direction, PolicyType::Ingress);
    assert!(matches!(verdict.ingress.outcome, Outcome::EndOfTier { .. }));
}

// Typed ids (issue 11): the ids an engine hands out read back the objects its explanations
// name. Two policies select x/a; the second rule of "two" decides port 8443 from x/b.
#[test]
fn typed_ids_read_back_what_the_explanation_names() {
    let policies = np("x", "one", "  podSelector: {matchLabels: {app: a}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: zzz}}}]")
        + &np("x", "two", "  podSelector: {}\n  ingress:\n  - ports: [{port: 80}]\n  - from: [{podSelector: {matchLabels: {app: b}}}]\n    ports: [{port: 8443}]");
    let e = engine(&policies);
    let (a, b) = (pod(&e, "x/a"), pod(&e, "x/b"));
    let Endpoint::Pod(a_id) = a else {
        unreachable!()
    };
    let selecting = e.selecting(a_id, PolicyType::Ingress);
    let names: Vec<&str> = selecting
        .iter()
        .map(|&id| e.policy(id).expect("selected policy").name.as_str())
        .collect();
    assert_eq!(names, ["x/one", "x/two"]);
    assert!(
        selecting.windows(2).all(|w| w[0] < w[1]),
        "in evaluation order"
    );
    let ids: Vec<_> = (0..e.tiers().len())
        .flat_map(|t| (0..e.tiers()[t].policies.len()).map(move |p| (t, p)))
        .map(|(t, p)| e.policy_id(t, p).expect("every place has an id"))
        .collect();
    assert!(selecting.iter().all(|id| ids.contains(id)));
    assert_eq!(e.policy_id(e.tiers().len(), 0), None);

    let trace = e.trace(b, a, Tcp, 8443);
    let rule = trace
        .ingress
        .deciding_rule()
        .expect("a rule decided ingress");
    assert_eq!(rule.direction(), PolicyType::Ingress);
    assert_eq!(rule.rule(), 1);
    assert_eq!(
        e.policy(rule.policy()).map(|p| p.name.as_str()),
        Some("x/two")
    );
    let words = e.describe(&trace);
    let Outcome::Rule { rule: named } = &words.ingress.outcome else {
        panic!("decided by a rule: {:?}", words.ingress.outcome)
    };
    assert_eq!((named.policy.as_str(), named.rule), ("x/two", rule.rule()));
    let compiled = e.rule(rule).expect("the id reads back its rule");
    let by_place = e
        .policy(rule.policy())
        .and_then(|p| p.rules(PolicyType::Ingress))
        .and_then(|r| r.get(1))
        .expect("two has a second ingress rule");
    assert!(std::ptr::eq(compiled, by_place));
    assert_eq!(
        trace.egress.deciding_rule(),
        None,
        "no policy selects x/b for egress"
    );
    // Without "two", x/a is isolated by "one" alone and port 8443 from x/b is denied.
    let without = e
        .without_policy(rule.policy())
        .expect("a policy of this engine");
    assert!(!without.allowed(b, a, Tcp, 8443));
    assert!(e.allowed(b, a, Tcp, 8443));
}
