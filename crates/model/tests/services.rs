//! Services as the loader keeps them (ports with their target ports, cluster IPs) and the
//! Calico constraints on `services` in rules.

use netfence_model::{Loader, Protocol, ServicePort, TargetPort};

const PODS: &str = "
apiVersion: v1
kind: Pod
metadata: {name: dns-a, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec: {containers: [{name: c, ports: [{name: dns, containerPort: 53, protocol: UDP}, {name: dns-tcp, containerPort: 5353}]}]}
status: {podIP: 10.0.9.10}
---
apiVersion: v1
kind: Pod
metadata: {name: dns-b, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec: {containers: [{name: c, ports: [{name: dns-tcp, containerPort: 53}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: default, labels: {k8s-app: kube-dns}}
spec: {containers: [{name: c}]}
";

fn load(text: &str) -> Result<netfence_model::Inventory, String> {
    let mut loader = Loader::new();
    loader.load_str("test.yaml", text);
    loader.finish().map_err(|e| e.to_string())
}

// Kubernetes API reference, ServicePort: targetPort defaults to port; a name is looked up in
// each backend pod's container ports (the EndpointSlice controller, pod.FindPort).
#[test]
fn service_ports_keep_their_target_ports_and_cluster_ips() {
    let inventory = load(&format!(
        "{PODS}---
apiVersion: v1
kind: Service
metadata: {{name: kube-dns, namespace: kube-system}}
spec:
  selector: {{k8s-app: kube-dns}}
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10, fd00::10]
  ports:
  - {{name: dns, port: 53, protocol: UDP}}
  - {{name: dns-tcp, port: 53, targetPort: dns-tcp}}
  - {{name: metrics, port: 9153, targetPort: \"9154\"}}
---
apiVersion: v1
kind: Service
metadata: {{name: headless, namespace: default}}
spec: {{clusterIP: None, ports: [{{port: 80}}]}}
"
    ))
    .expect("loads");
    let dns = inventory
        .service("kube-system", "kube-dns")
        .expect("service");
    assert_eq!(
        dns.cluster_ips,
        vec![
            "10.96.0.10".parse::<std::net::IpAddr>().unwrap(),
            "fd00::10".parse().unwrap()
        ]
    );
    assert_eq!(
        dns.ports,
        vec![
            ServicePort {
                name: Some("dns".into()),
                port: 53,
                protocol: Protocol::Udp,
                target: TargetPort::Number(53)
            },
            ServicePort {
                name: Some("dns-tcp".into()),
                port: 53,
                protocol: Protocol::Tcp,
                target: TargetPort::Named("dns-tcp".into())
            },
            ServicePort {
                name: Some("metrics".into()),
                port: 9153,
                protocol: Protocol::Tcp,
                target: TargetPort::Number(9154)
            },
        ]
    );
    let found = inventory
        .service_by_cluster_ip("10.96.0.10".parse().unwrap())
        .expect("by cluster IP");
    assert_eq!(found.key(), "kube-system/kube-dns");
    // Backends: the selector, in the Service's namespace only.
    let backends: Vec<String> = inventory
        .service_backends(dns)
        .into_iter()
        .map(|id| inventory.pods()[id].key())
        .collect();
    assert_eq!(backends, ["kube-system/dns-a", "kube-system/dns-b"]);
    // The named target port resolves per pod.
    let a = &*inventory.pods()[inventory.pod_by_key("kube-system", "dns-a").unwrap()];
    let b = &*inventory.pods()[inventory.pod_by_key("kube-system", "dns-b").unwrap()];
    assert_eq!(dns.ports[1].target_on(a), Some(5353));
    assert_eq!(dns.ports[1].target_on(b), Some(53));
    assert_eq!(dns.ports[0].target_on(b), Some(53));
    let headless = inventory.service("default", "headless").expect("headless");
    assert!(headless.cluster_ips.is_empty());
    assert!(
        inventory.service_backends(headless).is_empty(),
        "no selector, no backends"
    );

    let error = load("apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: default}\nspec: {clusterIP: banana}\n")
        .expect_err("bad cluster IP");
    assert!(
        error.contains("spec.clusterIP") && error.contains("banana"),
        "{error}"
    );
    let error = load("apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: default}\nspec: {ports: [{port: 80, targetPort: 70000}]}\n")
        .expect_err("bad target port");
    assert!(error.contains("spec.ports[0].targetPort"), "{error}");
}

/// A Calico policy with one rule, `rule` being the YAML of that rule under `direction`.
fn calico_rule(global: bool, direction: &str, rule: &str) -> String {
    let (kind, namespace) = if global {
        ("GlobalNetworkPolicy", "")
    } else {
        ("NetworkPolicy", ", namespace: default")
    };
    format!(
        "apiVersion: projectcalico.org/v3\nkind: {kind}\nmetadata: {{name: p{namespace}}}\nspec:\n  selector: all()\n  {direction}: [{rule}]\n"
    )
}

// libcalico-go lib/validator/v3/validator.go (services only in an egress destination or an
// ingress source; a global policy's services name a namespace) and the CEL rules on Rule and
// EntityRule in api/pkg/apis/projectcalico/v3/policy_common.go.
#[test]
fn calico_services_are_validated_like_calico() {
    let cases = [
        (false, "egress", "{action: Allow, destination: {services: {name: s}}}", None),
        (false, "ingress", "{action: Allow, source: {services: {name: s}}, protocol: TCP, destination: {ports: [80]}}", None),
        (true, "egress", "{action: Allow, destination: {services: {name: s, namespace: default}}, protocol: UDP}", None),
        (false, "egress", "{action: Allow, source: {services: {name: s}}}", Some(("spec.egress[0].source.services", "not allowed in egress rule source"))),
        (false, "ingress", "{action: Allow, destination: {services: {name: s}}}", Some(("spec.ingress[0].destination.services", "not allowed in ingress rule destination"))),
        (true, "egress", "{action: Allow, destination: {services: {name: s}}}", Some(("spec.egress[0].destination.services.namespace", "must specify a namespace"))),
        (true, "ingress", "{action: Allow, source: {services: {name: s}}}", Some(("spec.ingress[0].source.services.namespace", "must specify a namespace"))),
        (false, "egress", "{action: Allow, destination: {services: {name: ''}}}", Some(("spec.egress[0].destination.services.name", "must specify a service name"))),
        (false, "egress", "{action: Allow, protocol: TCP, destination: {services: {name: s}, ports: [53]}}", Some(("spec.egress[0].destination.ports", "cannot be specified with services"))),
        (false, "egress", "{action: Allow, protocol: TCP, destination: {services: {name: s}, notPorts: [53]}}", Some(("spec.egress[0].destination.ports", "cannot be specified with services"))),
        (false, "egress", "{action: Allow, destination: {services: {name: s}, selector: all()}}", Some(("spec.egress[0].destination.services", "Selector/NotSelector"))),
        (false, "egress", "{action: Allow, destination: {services: {name: s}, notSelector: has(a)}}", Some(("spec.egress[0].destination.services", "Selector/NotSelector"))),
        (false, "ingress", "{action: Allow, source: {services: {name: s}, namespaceSelector: all()}}", Some(("spec.ingress[0].source.services", "NamespaceSelector"))),
        (false, "ingress", "{action: Allow, source: {services: {name: s}, serviceAccounts: {names: [a]}}}", Some(("spec.ingress[0].source.services", "ServiceAccounts"))),
        (false, "ingress", "{action: Allow, source: {services: {name: s}, nets: [10.0.0.0/8]}}", Some(("spec.ingress[0].source.services", "Nets/NotNets"))),
    ];
    for (global, direction, rule, expected) in cases {
        let result = load(&calico_rule(global, direction, rule));
        match (result, expected) {
            (Ok(_), None) => {}
            (Err(error), Some((field, message))) => assert!(
                error.contains(field) && error.contains(message),
                "{rule}: expected {field}: {message}, got {error}"
            ),
            (Ok(_), Some((field, _))) => panic!("{rule}: loaded, expected an error at {field}"),
            (Err(error), None) => panic!("{rule}: {error}"),
        }
    }
}
