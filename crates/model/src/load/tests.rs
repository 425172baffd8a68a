//! The loader's unit tests.

use super::cert_manager::go_duration_seconds;
use super::*;

fn load(text: &str) -> Result<Inventory, LoadErrors> {
    let mut loader = Loader::new();
    loader.load_str("test.yaml", text);
    loader.finish()
}

fn error(text: &str) -> LoadError {
    let errors = load(text).expect_err("expected an error");
    errors.0[0].clone()
}

const NP_HEAD: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n  namespace: ns\n";

#[test]
fn ingresses_are_kept_and_bad_listen_ports_are_errors() {
    let head = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n  namespace: team\n  annotations:\n    kubernetes.io/ingress.class: alb\n";
    let inventory = load(&format!(
        "{head}    alb.ingress.kubernetes.io/listen-ports: '[{{\"HTTP\": 80}}, {{\"HTTPS\": 443}}]'\nspec:\n  tls: [{{hosts: [a.example.com]}}]\n  rules: [{{host: b.example.com}}, {{}}]\n"
    ))
    .unwrap();
    let ingress = &inventory.ingresses[0];
    assert!(ingress.is_alb());
    assert_eq!(
        ingress.listen_ports,
        Some(vec![("HTTP".into(), 80), ("HTTPS".into(), 443)])
    );
    assert_eq!(ingress.tls_entries, 1);
    assert_eq!(ingress.tls_hosts, ["a.example.com"]);
    assert_eq!(ingress.rule_hosts, ["b.example.com"]);
    for bad in [
        "'[{\"HTTPS\": \"x\"}]'",
        "'HTTPS:443'",
        "'[{\"TCP\": 443}]'",
        "'[{\"HTTP\": 0}]'",
    ] {
        let e = error(&format!(
            "{head}    alb.ingress.kubernetes.io/listen-ports: {bad}\n"
        ));
        assert_eq!(e.object.as_deref(), Some("Ingress team/web"), "{bad}");
        assert_eq!(
            e.field.as_deref(),
            Some("metadata.annotations[\"alb.ingress.kubernetes.io/listen-ports\"]"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn peer_authentications_are_validated() {
    let head = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: pa, namespace: shop}\n";
    let inventory = load(&format!(
        "{head}spec:\n  selector: {{matchLabels: {{app: web}}}}\n  mtls: {{mode: STRICT}}\n  portLevelMtls: {{\"8080\": {{mode: PERMISSIVE}}}}\n"
    ))
    .unwrap();
    let pa = &inventory.peer_authentications[0];
    assert_eq!(pa.mode, MtlsMode::Strict);
    assert_eq!(pa.port_modes, [(8080, MtlsMode::Permissive)]);
    assert!(pa.selector.is_some());
    for (body, field) in [
        ("spec: {mtls: {mode: strict}}\n", "spec.mtls.mode"),
        (
            "spec: {selector: {matchLabels: {a: b}}, portLevelMtls: {http: {mode: STRICT}}}\n",
            "spec.portLevelMtls[\"http\"]",
        ),
        (
            "spec: {portLevelMtls: {\"80\": {mode: STRICT}}}\n",
            "spec.portLevelMtls",
        ),
    ] {
        let e = error(&format!("{head}{body}"));
        assert_eq!(e.field.as_deref(), Some(field), "{body}: {e}");
        assert_eq!(e.object.as_deref(), Some("PeerAuthentication shop/pa"));
    }
}

#[test]
fn pods_keep_only_the_annotations_the_audit_reads() {
    let inventory = load("apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: n, annotations: {linkerd.io/inject: disabled, other/x: y}}\nspec: {containers: [{name: c}]}\n").unwrap();
    assert_eq!(
        inventory.pods[0]
            .mesh_annotations
            .keys()
            .collect::<Vec<_>>(),
        ["linkerd.io/inject"]
    );
}

#[test]
fn security_group_policies_are_validated_like_their_crd() {
    let head = "apiVersion: vpcresources.k8s.aws/v1beta1\nkind: SecurityGroupPolicy\nmetadata: {name: db, namespace: shop}\n";
    let inventory = load(&format!(
        "{head}spec: {{podSelector: {{matchLabels: {{role: db}}}}, serviceAccountSelector: {{matchExpressions: [{{key: team, operator: Exists}}]}}, securityGroups: {{groupIds: [sg-0123abcd]}}}}\n"
    ))
    .unwrap();
    let sgp = &inventory.security_group_policies[0];
    assert_eq!(sgp.group_ids, ["sg-0123abcd"]);
    assert!(sgp.pod_selector.is_some() && sgp.service_account_selector.is_some());
    assert!(inventory.namespaces.contains_key("shop"));
    assert!(inventory.skipped_kinds.is_empty());
    let seventeen: Vec<String> = (0..17).map(|i| format!("sg-{i:08x}")).collect();
    for (spec, field) in [
        (
            format!("{{podSelector: {{}}, securityGroups: {{groupIds: [{}]}}}}", seventeen.join(", ")),
            "spec.securityGroups.groupIds",
        ),
        (
            "{podSelector: {}, securityGroups: {groupIds: ['']}}".to_string(),
            "spec.securityGroups.groupIds[0]",
        ),
        (
            "{podSelector: {matchExpressions: [{key: a, operator: Maybe}]}, securityGroups: {groupIds: [sg-0123abcd]}}".to_string(),
            "spec.podSelector.matchExpressions[0].operator",
        ),
    ] {
        let e = error(&format!("{head}spec: {spec}\n"));
        assert_eq!(e.field.as_deref(), Some(field), "{e}");
        assert_eq!(e.object.as_deref(), Some("SecurityGroupPolicy shop/db"));
    }
    // Policies the controller ignores load, with a warning naming them.
    let inventory = load(&format!(
        "{head}spec: {{securityGroups: {{groupIds: [sg-0123abcd]}}}}\n---\n{}",
        head.replace("name: db", "name: empty")
    ))
    .unwrap();
    assert_eq!(inventory.warnings.len(), 2, "{:?}", inventory.warnings);
    assert!(inventory.warnings[0].contains("neither podSelector nor serviceAccountSelector"));
    assert!(inventory.warnings[1].contains("shop/empty lists no spec.securityGroups.groupIds"));
}

#[test]
fn probe_ports_resolve_named_ports_per_container() {
    let inventory = load(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: x}\nspec:\n  containers:\n  - name: a\n    ports: [{name: http, containerPort: 8080}]\n    readinessProbe: {httpGet: {port: http}}\n    livenessProbe: {tcpSocket: {port: 9000}}\n    startupProbe: {exec: {command: [\"true\"]}}\n  - name: b\n    livenessProbe: {grpc: {port: 50051}}\n    readinessProbe: {httpGet: {port: http}}\n",
    )
    .unwrap();
    let probes: Vec<(&str, &str, u16)> = inventory.pods[0]
        .probes
        .iter()
        .map(|p| (p.container.as_str(), p.kind, p.port))
        .collect();
    // b's `http` is not one of b's ports: the kubelet cannot resolve it, so no port.
    assert_eq!(
        probes,
        [
            ("a", "liveness", 9000),
            ("a", "readiness", 8080),
            ("b", "liveness", 50051)
        ]
    );
}

#[test]
fn istio_mesh_config_gives_the_root_namespace() {
    let cm = |name: &str, mesh: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: istio-system}}\ndata:\n  mesh: {mesh:?}\n")
    };
    let inventory = load(&format!(
        "{}---\n{}---\n{}",
        cm(
            "istio",
            "rootNamespace: mesh-root\ntrustDomain: cluster.local\n"
        ),
        cm("istio-canary", "trustDomain: cluster.local\n"),
        cm("app-settings", "irrelevant")
    ))
    .unwrap();
    let roots: Vec<&str> = inventory
        .istio_mesh_configs
        .iter()
        .map(|c| c.root_namespace.as_str())
        .collect();
    assert_eq!(roots, ["mesh-root", "istio-system"]);
    assert_eq!(inventory.skipped_kinds["v1/ConfigMap"], 1);
    let e = error(&cm("istio", "rootNamespace: [a]"));
    assert_eq!(e.field.as_deref(), Some("data.mesh: rootNamespace"));
    let e = error(&cm("istio", "{unclosed"));
    assert_eq!(e.field.as_deref(), Some("data.mesh"));
}

#[test]
fn aws_node_gives_the_pod_security_group_mode() {
    let ds = |env: &str| {
        format!("apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: aws-node, namespace: kube-system}}\nspec:\n  selector: {{matchLabels: {{k8s-app: aws-node}}}}\n  template:\n    metadata: {{labels: {{k8s-app: aws-node}}}}\n    spec: {{containers: [{{name: aws-node, env: [{env}]}}, {{name: aws-eks-nodeagent}}]}}\n")
    };
    let cni = load(&ds(
        "{name: POD_SECURITY_GROUP_ENFORCING_MODE, value: standard}",
    ))
    .unwrap()
    .vpc_cni
    .unwrap();
    assert_eq!(
        cni.pod_security_group_enforcing_mode.as_deref(),
        Some("standard")
    );
    let cni = load(&ds("{name: ENABLE_POD_ENI, value: 'true'}"))
        .unwrap()
        .vpc_cni
        .unwrap();
    assert_eq!(cni.pod_security_group_enforcing_mode, None);
    let other = ds("").replace(
        "name: aws-node, namespace: kube-system",
        "name: aws-node, namespace: other",
    );
    assert!(load(&other).unwrap().vpc_cni.is_none());
}

#[test]
fn go_durations_parse_like_cert_manager() {
    assert_eq!(go_duration_seconds("2160h"), Ok(2160 * 3600));
    assert_eq!(go_duration_seconds("8760h0m0s"), Ok(8760 * 3600));
    assert_eq!(go_duration_seconds("1h30m"), Ok(5400));
    assert_eq!(go_duration_seconds("1.5h"), Ok(5400));
    assert_eq!(go_duration_seconds("1500ms"), Ok(1));
    for bad in ["", "90d", "h", "10", "1h 30m", "abc"] {
        assert!(go_duration_seconds(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn cert_manager_objects_are_validated() {
    let cert = "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: web, namespace: shop}\n";
    let issuer = "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: {name: ca}\n";
    let inventory = load(&format!(
        "{cert}spec: {{issuerRef: {{name: ca}}, duration: 2160h}}\n---\n{issuer}spec: {{ca: {{secretName: s}}}}\n"
    ))
    .unwrap();
    assert_eq!(
        inventory.certificates[0].issuer_ref,
        ("cert-manager.io".into(), "Issuer".into(), "ca".into())
    );
    assert_eq!(
        inventory.certificates[0].duration_seconds,
        Some(2160 * 3600)
    );
    assert_eq!(inventory.cert_issuers[0].issuer_type, "ca");
    assert_eq!(inventory.cert_issuers[0].namespace, None);
    for (text, field) in [
        (format!("{cert}spec: {{issuerRef: {{name: ca}}, duration: 90d}}\n"), "spec.duration"),
        (format!("{cert}spec: {{secretName: x}}\n"), "spec.issuerRef"),
        (format!("{cert}spec: {{issuerRef: {{kind: Issuer}}}}\n"), "spec.issuerRef.name"),
        (format!("{issuer}spec: {{}}\n"), "spec"),
        (format!("{issuer}spec: {{ca: {{}}, selfSigned: {{}}}}\n"), "spec"),
        (
            "apiVersion: awspca.cert-manager.io/v1beta1\nkind: AWSPCAClusterIssuer\nmetadata: {name: p}\nspec: {arn: [x]}\n".to_string(),
            "spec.arn",
        ),
    ] {
        let e = error(&text);
        assert_eq!(e.field.as_deref(), Some(field), "{text}: {e}");
    }
}

#[test]
fn rbac_bindings_check_their_role_ref() {
    let e = error("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: b}\nroleRef: {kind: Role, name: r, apiGroup: rbac.authorization.k8s.io}\nsubjects: [{kind: Group, name: g}]\n");
    assert_eq!(e.field.as_deref(), Some("roleRef.kind"), "{e}");
    let e = error("apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: b, namespace: n}\nsubjects: [{kind: Group, name: g}]\n");
    assert!(e.to_string().contains("roleRef"), "{e}");
    let inventory = load("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r, namespace: n}\nrules: [{apiGroups: [''], resources: [serviceaccounts], verbs: [patch]}]\n").unwrap();
    assert_eq!(inventory.rbac_roles[0].rules[0].verbs, ["patch"]);
    assert_eq!(inventory.rbac_roles[0].namespace.as_deref(), Some("n"));
    let aggregated = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: agg}\naggregationRule: {clusterRoleSelectors: [{matchLabels: {team: a}}]}\n";
    let inventory = load(aggregated).unwrap();
    assert_eq!(inventory.rbac_roles[0].aggregation.len(), 1);
    let e = error(
        &aggregated
            .replace("kind: ClusterRole", "kind: Role")
            .replace("{name: agg}", "{name: agg, namespace: n}"),
    );
    assert_eq!(e.field.as_deref(), Some("aggregationRule"), "{e}");
    let e = error(&aggregated.replace(
        "matchLabels: {team: a}",
        "matchExpressions: [{key: team, operator: Near}]",
    ));
    assert_eq!(
        e.field.as_deref(),
        Some("aggregationRule.clusterRoleSelectors[0].matchExpressions[0].operator"),
        "{e}"
    );
}

#[test]
fn ports_without_protocol_are_recorded() {
    let inventory = load(&format!(
        "{NP_HEAD}spec:\n  podSelector: {{}}\n  ingress: [{{ports: [{{port: 80}}, {{protocol: TCP, port: 81}}]}}]\n  egress: [{{}}, {{ports: [{{protocol: UDP}}, {{port: 53}}]}}]\n"
    ))
    .unwrap();
    assert_eq!(
        inventory.network_policies[0].ports_without_protocol,
        ["spec.ingress[0].ports[0]", "spec.egress[1].ports[1]"]
    );
}

#[test]
fn documents_keep_their_start_lines() {
    let docs = split_yaml_documents("a: 1\n---\nb: 2\n---\n\n---\nc: 3\n");
    assert_eq!(docs.iter().map(|d| d.0).collect::<Vec<_>>(), vec![1, 3, 7]);
}

#[test]
fn malformed_yaml_names_document_and_line() {
    let e = error("kind: Namespace\nmetadata: {name: a}\n---\nkind: [unclosed\n");
    assert_eq!(e.origin.document, 2);
    assert_eq!(e.origin.line, 4);
    assert!(e.message.contains("malformed YAML at line"), "{e}");
}

#[test]
fn wrong_field_type_names_the_path() {
    let e = error(&format!(
        "{NP_HEAD}spec:\n  podSelector: {{}}\n  ingress:\n  - ports:\n    - port: 80\n      endPort: eighty\n"
    ));
    assert_eq!(e.field.as_deref(), Some("spec.ingress[0].ports[0].endPort"));
    assert_eq!(e.object.as_deref(), Some("NetworkPolicy ns/p"));
}

#[test]
fn invalid_network_policies_are_rejected_with_field_paths() {
    let cases = [
        ("  ingress:\n  - ports:\n    - port: 70000\n", "spec.ingress[0].ports[0].port"),
        ("  ingress:\n  - ports:\n    - port: 80\n      endPort: 79\n", "spec.ingress[0].ports[0].endPort"),
        ("  ingress:\n  - ports:\n    - port: http\n      endPort: 90\n", "spec.ingress[0].ports[0].endPort"),
        ("  ingress:\n  - ports:\n    - protocol: ICMP\n", "spec.ingress[0].ports[0].protocol"),
        ("  egress:\n  - to:\n    - ipBlock: {cidr: 10.0.0.0/33}\n", "spec.egress[0].to[0].ipBlock.cidr"),
        ("  egress:\n  - to:\n    - ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}\n", "spec.egress[0].to[0].ipBlock.except[0]"),
        ("  egress:\n  - to:\n    - ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}\n", "spec.egress[0].to[0].ipBlock.except[0]"),
        ("  ingress:\n  - from:\n    - podSelector: {matchExpressions: [{key: a, operator: Foo}]}\n", "spec.ingress[0].from[0].podSelector.matchExpressions[0].operator"),
        ("  ingress:\n  - from:\n    - {}\n", "spec.ingress[0].from[0]"),
        ("  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/8}\n      podSelector: {}\n", "spec.ingress[0].from[0]"),
        ("  policyTypes: [Ingress, Sideways]\n", "spec.policyTypes[1]"),
    ];
    for (body, field) in cases {
        let e = error(&format!("{NP_HEAD}spec:\n  podSelector: {{}}\n{body}"));
        assert_eq!(e.field.as_deref(), Some(field), "{body}: {e}");
    }
}

#[test]
fn policy_types_default_per_api_reference() {
    let inv = load(&format!(
        "{NP_HEAD}spec:\n  podSelector: {{}}\n  egress:\n  - {{}}\n"
    ))
    .unwrap();
    assert_eq!(
        inv.network_policies[0].policy_types,
        vec![PolicyType::Ingress, PolicyType::Egress]
    );
    let inv = load(&format!(
        "{NP_HEAD}spec:\n  podSelector: {{}}\n  egress: []\n"
    ))
    .unwrap();
    assert_eq!(
        inv.network_policies[0].policy_types,
        vec![PolicyType::Ingress]
    );
}

#[test]
fn lists_unknown_kinds_and_implicit_namespaces() {
    let inv = load(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p, namespace: team}\n  spec: {containers: [{name: c}]}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n",
    )
    .unwrap();
    assert_eq!(inv.pods.len(), 1);
    assert_eq!(inv.skipped_count(), 1);
    assert_eq!(inv.namespaces["team"].labels[NAMESPACE_NAME_LABEL], "team");
    assert!(inv.pods[0].synthetic_ip);
}

#[test]
fn workloads_without_pods_yield_one_template_pod() {
    let inv = load(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  replicas: 3\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - name: c\n        ports: [{containerPort: 8080, name: http}]\n",
    )
    .unwrap();
    assert_eq!(inv.pods.len(), 1);
    let pod = &inv.pods[0];
    assert_eq!(pod.key(), "shop/web-0");
    assert_eq!(pod.workload.to_string(), "shop/web[Deployment]");
    assert_eq!(pod.named_port("http", Protocol::Tcp), Some(8080));
}

#[test]
fn pods_report_under_their_top_level_owner() {
    let inv = load(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {template: {spec: {containers: [{name: c}]}}}\n---\napiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: web-abc, ownerReferences: [{kind: Deployment, name: web, controller: true}]}\nspec: {template: {spec: {containers: [{name: c}]}}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-abc-1, ownerReferences: [{kind: ReplicaSet, name: web-abc}]}\nspec: {containers: [{name: c}]}\nstatus: {podIP: 10.0.0.5}\n",
    )
    .unwrap();
    assert_eq!(inv.pods.len(), 1, "live pod, no template pod");
    assert_eq!(inv.pods[0].workload.to_string(), "default/web[Deployment]");
    assert_eq!(inv.pods[0].ips, vec!["10.0.0.5".parse::<IpAddr>().unwrap()]);
}

#[test]
fn bad_pod_ip_and_duplicates_are_errors() {
    let e = error("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\nstatus: {podIP: 10.0.0.300}\n");
    assert_eq!(e.field.as_deref(), Some("status.podIP"));
    let e = error("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n");
    assert!(e.message.contains("duplicate"));
}

#[test]
fn json_and_non_mapping_documents() {
    let mut loader = Loader::new();
    loader.load_str(
        "a.json",
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x"}}"#,
    );
    assert!(loader.finish().unwrap().namespaces.contains_key("x"));
    let e = error("- just\n- a list\n");
    assert!(e.message.contains("expected a Kubernetes object"));
    let e = error("apiVersion: v1\nmetadata: {name: x}\n");
    assert_eq!(e.field.as_deref(), Some("kind"));
}

#[test]
fn parsed_objects_load_as_documents_do() {
    let mut loader = Loader::new();
    let origin = |n| Origin {
        file: "<cluster>".into(),
        document: n,
        line: 1,
        item: None,
    };
    loader.load_object(
        &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        origin(1),
    );
    loader.load_object(
        &serde_json::json!({"apiVersion": "v1", "kind": "PodList", "items": [
            {"metadata": {"name": "a", "namespace": "shop"}, "spec": {"containers": [{"name": "c"}]}}
        ]}),
        origin(2),
    );
    let inventory = loader.finish().expect("loads");
    assert_eq!(inventory.pods.len(), 1);
    assert_eq!(inventory.pods[0].key(), "shop/a");
    let mut loader = Loader::new();
    loader.load_object(
        &serde_json::json!({"apiVersion": "apps/v2", "kind": "Deployment", "metadata": {"name": "d"}}),
        origin(1),
    );
    let errors = loader.finish().expect_err("unknown version");
    assert_eq!(errors.0[0].field.as_deref(), Some("apiVersion"));
    assert_eq!(errors.0[0].origin.file, "<cluster>");
}

#[test]
fn addresses_find_their_live_pod_by_binary_search() {
    let inventory = load(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: x}\nspec: {containers: [{name: c}]}\nstatus: {podIPs: [{ip: 10.0.0.2}, {ip: 'fd00::2'}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\nspec: {containers: [{name: c}]}\nstatus: {podIP: 10.0.0.2}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: h, namespace: x}\nspec: {hostNetwork: true, containers: [{name: c}]}\nstatus: {podIP: 10.0.0.9}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: x}\nspec: {containers: [{name: c}]}\n",
    )
    .expect("loads");
    let key = |ip: &str| {
        inventory
            .pod_by_ip(ip.parse().expect("ip"))
            .map(|id| inventory.pods()[id].key())
    };
    // Two live pods on one address: the first by (namespace, name), as the warning says.
    assert_eq!(key("10.0.0.2").as_deref(), Some("x/a"));
    assert_eq!(key("fd00::2").as_deref(), Some("x/b"));
    // Host-network and synthetic addresses are no pod's own.
    assert_eq!(key("10.0.0.9"), None);
    let synthetic = inventory.pods()[inventory.pod_by_key("x", "p").expect("p")].ips[0];
    assert_eq!(inventory.pod_by_ip(synthetic), None);
    assert_eq!(key("10.0.0.3"), None);
}

#[test]
fn calico_icmp_type_and_code_are_kept_and_checked() {
    let head = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec:\n  selector: all()\n  ingress:\n";
    let inventory = load(&format!(
        "{head}  - {{action: Allow, protocol: ICMP, icmp: {{type: 8, code: 0}}, notICMP: {{type: 3}}}}\n"
    ))
    .unwrap();
    let rule = &inventory.calico_policies[0].ingress[0];
    let icmp = |t, c| crate::calico::IcmpMatch {
        icmp_type: t,
        code: c,
    };
    assert_eq!(rule.icmp_match, Some(icmp(Some(8), Some(0))));
    assert_eq!(rule.not_icmp_match, Some(icmp(Some(3), None)));
    for (bad, field) in [
        ("icmp: {code: 0}", "icmp"),
        ("icmp: {type: 255}", "icmp"),
        ("notICMP: {type: 1, kode: 2}", "notICMP"),
        ("icmp: 8", "icmp"),
    ] {
        let e = error(&format!(
            "{head}  - {{action: Allow, protocol: ICMP, {bad}}}\n"
        ));
        let text = e.to_string();
        assert!(
            text.contains(&format!("spec.ingress[0].{field}")),
            "{bad}: {text}"
        );
    }
}
