//! Loading Cilium policies: strict field names, validation errors with file, document, object
//! and field, `spec` and `specs`, selector keys sorted out, the CNI detected or set, and
//! `Loader::apply` replacing every rule of a changed object.

use netfence_model::cilium::{CiliumPeer, CiliumPortSpec, Cni, Entity};
use netfence_model::{Inventory, LoadErrors, Loader, ObjectKey, Protocol};

fn load(text: &str) -> Result<Inventory, LoadErrors> {
    let mut loader = Loader::new();
    loader.load_str("cnp.yaml", text);
    loader.finish()
}

fn first_error(text: &str) -> String {
    load(text).expect_err("expected an error").0[0].to_string()
}

const HEAD: &str =
    "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p, namespace: shop}\n";

#[test]
fn a_policy_with_spec_and_specs_loads_one_rule_each() {
    let inventory = load(&format!(
        "{HEAD}spec:\n  endpointSelector: {{matchLabels: {{app: api}}}}\n  ingress:\n  - fromEndpoints: [{{matchLabels: {{\"k8s:app\": web, \"k8s:io.kubernetes.pod.namespace\": front}}}}]\n    toPorts: [{{ports: [{{port: \"8000\", endPort: 8100}}, {{port: http, protocol: TCP}}], rules: {{http: [{{method: GET}}]}}}}]\nspecs:\n- endpointSelector: {{}}\n  egressDeny:\n  - toEntities: [world]\n  - toCIDRSet: [{{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]\n"
    ))
    .expect("loads");
    assert_eq!(inventory.cilium_policies.len(), 2);
    let spec = &inventory.cilium_policies[0];
    assert_eq!(spec.display_name(), "shop/p");
    let CiliumPeer::Endpoints(selector) = &spec.ingress[0].peers[0] else {
        panic!("endpoint peer expected");
    };
    assert_eq!(selector.pods.to_string(), "app=web");
    assert_eq!(
        selector.namespaces.to_string(),
        "kubernetes.io/metadata.name=front"
    );
    assert!(selector.names_namespace);
    let ports = &spec.ingress[0].ports;
    assert_eq!(
        ports[0].protocols,
        [Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
    );
    assert!(matches!(&ports[0].port, CiliumPortSpec::Range(r) if r.to_string() == "8000-8100"));
    assert!(matches!(&ports[1].port, CiliumPortSpec::Named(n) if n == "http"));
    assert!(spec.ingress[0].l7);
    assert!(inventory
        .warnings
        .iter()
        .any(|w| w.contains("L7 rules are not modelled")));
    let specs = &inventory.cilium_policies[1];
    assert_eq!(specs.display_name(), "shop/p[specs[0]]");
    assert_eq!(
        specs.egress_deny[0].peers,
        [CiliumPeer::Entity(Entity::World(None))]
    );
    assert!(
        matches!(&specs.egress_deny[1].peers[0], CiliumPeer::Cidr { except, .. } if except.len() == 1)
    );
    // Cilium policies in the input and no CNI DaemonSet: Cilium.
    assert_eq!(inventory.cni.cni, Cni::Cilium);
}

#[test]
fn unknown_fields_are_errors_with_their_path() {
    let error = first_error(&format!(
        "{HEAD}spec:\n  endpointSelector: {{}}\n  ingress:\n  - fromEndpoint: [{{}}]\n"
    ));
    assert!(error.contains("cnp.yaml"), "{error}");
    assert!(error.contains("CiliumNetworkPolicy shop/p"), "{error}");
    assert!(error.contains("spec.ingress[0].fromEndpoint"), "{error}");
    // A deny rule has no L7 rules, and an ingress rule no toFQDNs.
    let error = first_error(&format!(
        "{HEAD}spec:\n  endpointSelector: {{}}\n  ingressDeny:\n  - toPorts: [{{ports: [{{port: \"80\"}}], rules: {{}}}}]\n"
    ));
    assert!(
        error.contains("spec.ingressDeny[0].toPorts[0].rules"),
        "{error}"
    );
    let error = first_error(&format!(
        "{HEAD}spec:\n  endpointSelector: {{}}\n  ingress:\n  - toFQDNs: [{{matchName: a.example}}]\n"
    ));
    assert!(error.contains("spec.ingress[0].toFQDNs"), "{error}");
}

#[test]
fn invalid_values_are_errors() {
    for (body, field, message) in [
        (
            "spec:\n  endpointSelector: {}\n  egress:\n  - toEntities: [everywhere]\n",
            "spec.egress[0].toEntities[0]",
            "unknown entity",
        ),
        (
            "spec:\n  endpointSelector: {}\n  egress:\n  - toPorts: [{ports: [{port: \"90\", endPort: 80}]}]\n",
            "spec.egress[0].toPorts[0].ports[0].endPort",
            "below port",
        ),
        (
            "spec:\n  endpointSelector: {}\n  egress:\n  - toPorts: [{ports: [{port: \"80\", protocol: QUIC}]}]\n",
            "spec.egress[0].toPorts[0].ports[0].protocol",
            "unsupported protocol",
        ),
        (
            "spec:\n  endpointSelector: {}\n  egress:\n  - toCIDR: [10.0.0.0/33]\n",
            "spec.egress[0].toCIDR[0]",
            "invalid CIDR",
        ),
        (
            "spec:\n  endpointSelector: {}\n  egress:\n  - toCIDRSet: [{cidr: 10.0.0.0/16, except: [192.168.0.0/24]}]\n",
            "spec.egress[0].toCIDRSet[0].except[0]",
            "not inside",
        ),
        (
            "spec:\n  nodeSelector: {}\n  ingress: [{}]\n",
            "spec.nodeSelector",
            "only a CiliumClusterwideNetworkPolicy",
        ),
        (
            "spec:\n  endpointSelector: {}\n",
            "spec",
            "at least one of ingress",
        ),
        (
            "spec:\n  endpointSelector: {matchLabels: {\"cidr:10.0.0.0/8\": \"\"}}\n  ingress: [{}]\n",
            "spec.endpointSelector.matchLabels",
            "label source",
        ),
        ("status: {}\n", "spec", "needs spec or specs"),
    ] {
        let error = first_error(&format!("{HEAD}{body}"));
        assert!(
            error.contains(field) && error.contains(message),
            "{body}: {error}"
        );
    }
}

#[test]
fn the_cni_is_detected_from_daemonsets_or_set() {
    let daemonset = |name: &str| {
        format!("apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: {name}, namespace: kube-system}}\nspec: {{selector: {{matchLabels: {{a: b}}}}, template: {{metadata: {{labels: {{a: b}}}}, spec: {{hostNetwork: true, containers: [{{name: c}}]}}}}}}\n")
    };
    let inventory = load(&format!(
        "{}---\n{}",
        daemonset("aws-node"),
        daemonset("cilium")
    ))
    .expect("loads");
    assert_eq!(inventory.cni.cni, Cni::Cilium);
    assert_eq!(
        inventory.cni.source.as_deref(),
        Some("DaemonSet kube-system/cilium")
    );
    let inventory = load(&daemonset("calico-node")).expect("loads");
    assert_eq!(inventory.cni.cni, Cni::Calico);
    let inventory = load(&daemonset("aws-node")).expect("loads");
    assert_eq!(inventory.cni.cni, Cni::VpcCni);
    let mut loader = Loader::new();
    loader.load_str("ds.yaml", &daemonset("cilium"));
    loader.set_cni(Cni::Generic);
    let inventory = loader.finish().expect("loads");
    assert_eq!(inventory.cni.cni, Cni::Generic);
    assert_eq!(inventory.cni.source.as_deref(), Some("--cni"));
}

#[test]
fn apply_replaces_every_rule_of_a_changed_policy() {
    let two = format!(
        "{HEAD}specs:\n- endpointSelector: {{}}\n  ingress: [{{}}]\n- endpointSelector: {{}}\n  egress: [{{}}]\n"
    );
    let one =
        format!("{HEAD}spec:\n  endpointSelector: {{matchLabels: {{a: b}}}}\n  ingress: [{{}}]\n");
    let mut loader = Loader::new();
    loader.load_str("a.yaml", &two);
    let mut change = Loader::new();
    change.load_str("b.yaml", &one);
    let applied = loader.apply(change, &[]).expect("applies");
    assert_eq!(applied.len(), 1, "{applied:?}");
    let inventory = loader.clone().finish().expect("loads");
    assert_eq!(inventory.cilium_policies.len(), 1);
    let key: ObjectKey = "ciliumnetworkpolicy/shop/p".parse().expect("key");
    let deleted = loader.apply(Loader::new(), &[key]).expect("deletes");
    assert_eq!(deleted.len(), 1);
    assert!(loader.finish().expect("loads").cilium_policies.is_empty());
}

#[test]
fn two_objects_of_one_name_are_a_duplicate() {
    let one = format!("{HEAD}spec:\n  endpointSelector: {{}}\n  ingress: [{{}}]\n");
    let mut loader = Loader::new();
    loader.load_str("a.yaml", &one);
    loader.load_str("b.yaml", &one);
    let errors = loader.finish().expect_err("duplicate");
    let text = errors.to_string();
    assert!(
        text.contains("duplicate CiliumNetworkPolicy shop/p") && text.contains("a.yaml"),
        "{text}"
    );
    // One object's `specs` are not duplicates of each other.
    assert!(load(&format!(
        "{HEAD}specs:\n- endpointSelector: {{}}\n  ingress: [{{}}]\n- endpointSelector: {{}}\n  egress: [{{}}]\n"
    ))
    .is_ok());
}
