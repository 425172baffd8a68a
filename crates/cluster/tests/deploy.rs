//! `deploy/` without a cluster: every manifest (and the Helm chart's templates, rendered
//! with its values) deserializes into the k8s-openapi type of its kind and serializes back
//! to the same document (so no field is unknown or mistyped), the RBAC grants get/list/watch
//! on exactly the kinds the loader reads and nothing else, and the DaemonSet runs with host
//! networking, NET_ADMIN and NET_RAW only, and its node's name from the downward API.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `doc` as `T`, checked to survive the round trip unchanged.
fn strict<T: DeserializeOwned + Serialize>(doc: &Value, what: &str) -> T {
    let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back, doc,
        "{what}: a field is unknown to the API or mistyped"
    );
    typed
}

/// Kubernetes' default plural (`NetworkPolicy` → `networkpolicies`, `Ingress` →
/// `ingresses`), which every kind netfence reads uses.
fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else if lower.ends_with('s') {
        format!("{lower}es")
    } else {
        format!("{lower}s")
    }
}

/// (API group, resource) of every kind the loader reads, in every group it reads it from
/// (the core group only for core kinds: `""` also stands for a missing apiVersion).
fn read_resources() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for read in netfence_model::read_kinds() {
        let core_kind = read.api.first().is_some_and(|(group, _)| group.is_empty());
        for (group, _) in read.api {
            if !group.is_empty() || core_kind {
                out.insert((group.to_string(), plural(read.kind)));
            }
        }
    }
    out
}

struct Manifests {
    service_account: ServiceAccount,
    role: ClusterRole,
    binding: ClusterRoleBinding,
    daemon_set: DaemonSet,
}

fn check(docs: &[Value], origin: &str) -> Manifests {
    let mut by_kind: BTreeMap<String, Value> = BTreeMap::new();
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        assert!(
            by_kind.insert(kind.clone(), doc.clone()).is_none(),
            "{origin}: two {kind}s"
        );
    }
    let get = |kind: &str| {
        by_kind
            .get(kind)
            .unwrap_or_else(|| panic!("{origin}: no {kind}"))
    };
    let manifests = Manifests {
        service_account: strict(get("ServiceAccount"), &format!("{origin} ServiceAccount")),
        role: strict(get("ClusterRole"), &format!("{origin} ClusterRole")),
        binding: strict(
            get("ClusterRoleBinding"),
            &format!("{origin} ClusterRoleBinding"),
        ),
        daemon_set: strict(get("DaemonSet"), &format!("{origin} DaemonSet")),
    };
    if let Some(namespace) = by_kind.get("Namespace") {
        let _: Namespace = strict(namespace, &format!("{origin} Namespace"));
    }
    check_rbac(&manifests, origin);
    check_daemon_set(&manifests, origin);
    manifests
}

fn check_rbac(m: &Manifests, origin: &str) {
    let mut granted = BTreeSet::new();
    for rule in m.role.rules.as_deref().unwrap_or_default() {
        let verbs: BTreeSet<&str> = rule.verbs.iter().map(String::as_str).collect();
        assert_eq!(
            verbs,
            BTreeSet::from(["get", "list", "watch"]),
            "{origin}: read-only verbs"
        );
        assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
        for group in rule.api_groups.as_deref().unwrap_or_default() {
            for resource in rule.resources.as_deref().unwrap_or_default() {
                assert!(
                    !resource.contains('*') && !group.contains('*'),
                    "{origin}: no wildcards"
                );
                granted.insert((group.clone(), resource.clone()));
            }
        }
    }
    assert_eq!(
        granted,
        read_resources(),
        "{origin}: RBAC must cover exactly the kinds read"
    );
    // The binding gives that role to the agent's service account.
    assert_eq!(m.binding.role_ref.kind, "ClusterRole");
    assert_eq!(
        Some(&m.binding.role_ref.name),
        m.role.metadata.name.as_ref()
    );
    let subjects = m.binding.subjects.as_deref().unwrap_or_default();
    assert_eq!(subjects.len(), 1, "{origin}");
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(
        Some(&subjects[0].name),
        m.service_account.metadata.name.as_ref()
    );
    assert_eq!(subjects[0].namespace, m.service_account.metadata.namespace);
}

fn check_daemon_set(m: &Manifests, origin: &str) {
    let spec = &m.daemon_set.spec;
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.host_network, Some(true), "{origin}: host network");
    assert_eq!(
        pod.service_account_name, m.service_account.metadata.name,
        "{origin}"
    );
    assert_eq!(
        m.daemon_set.metadata.namespace,
        m.service_account.metadata.namespace
    );
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let selector = spec.selector.match_labels.clone().unwrap_or_default();
    assert!(
        selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
        "{origin}: the selector selects the pods"
    );
    assert_eq!(pod.containers.len(), 1);
    let container = &pod.containers[0];
    let args = container.args.clone().unwrap_or_default();
    let at = args.iter().position(|a| a == "--node").expect("--node");
    assert_eq!(
        args.get(at + 1).map(String::as_str),
        Some("$(NODE_NAME)"),
        "{origin}"
    );
    assert!(
        args.starts_with(&["dataplane".to_string(), "agent".to_string()])
            && args.contains(&"--cluster".to_string())
    );
    // New pods guarded on the VPC CNI's host-side veths (its nodes have no podCIDR).
    let at = args
        .iter()
        .position(|a| a == "--pod-interface")
        .expect("--pod-interface");
    assert_eq!(
        args.get(at + 1).map(String::as_str),
        Some("eni*"),
        "{origin}: the VPC CNI's default veth prefix"
    );
    // Health and metrics on the node's loopback (host network), and the kubelet's
    // readiness probe on that address.
    let at = args
        .iter()
        .position(|a| a == "--metrics-listen")
        .expect("--metrics-listen");
    let listen: std::net::SocketAddr = args
        .get(at + 1)
        .and_then(|a| a.parse().ok())
        .expect("--metrics-listen ADDR:PORT");
    assert!(
        listen.ip().is_loopback(),
        "{origin}: metrics on localhost only"
    );
    let probe = container
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("readiness probe");
    assert_eq!(probe.path.as_deref(), Some("/healthz"), "{origin}");
    assert_eq!(probe.host.as_deref(), Some("127.0.0.1"), "{origin}");
    assert_eq!(
        probe.port,
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i32::from(listen.port())),
        "{origin}: the probe asks the agent's port"
    );
    let env = container.env.as_deref().unwrap_or_default();
    let node = env
        .iter()
        .find(|e| e.name == "NODE_NAME")
        .expect("NODE_NAME");
    let field = node
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .map(|f| f.field_path.as_str());
    assert_eq!(
        field,
        Some("spec.nodeName"),
        "{origin}: node name from the downward API"
    );
    let security = container.security_context.as_ref().unwrap();
    assert_ne!(security.privileged, Some(true), "{origin}: not privileged");
    assert_eq!(security.allow_privilege_escalation, Some(false));
    let capabilities = security.capabilities.as_ref().unwrap();
    let added: BTreeSet<&str> = capabilities
        .add
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        added,
        BTreeSet::from(["NET_ADMIN", "NET_RAW"]),
        "{origin}: only what nftables needs"
    );
    assert_eq!(capabilities.drop.as_deref(), Some(&["ALL".to_string()][..]));
}

#[test]
fn the_plain_manifests_validate() {
    let mut docs = documents(&read(&deploy().join("namespace.yaml")));
    docs.extend(documents(&read(&deploy().join("rbac.yaml"))));
    docs.extend(documents(&read(&deploy().join("daemonset.yaml"))));
    let manifests = check(&docs, "deploy/");
    assert_eq!(
        manifests.service_account.metadata.namespace.as_deref(),
        Some("netfence-system")
    );
}

/// Helm's `{{ .Values.a.b }}`, `{{ .Release.Name }}`, `{{ .Release.Namespace }}`: the only
/// template actions the chart uses (anything else is refused here).
fn render(template: &str, values: &Value, release: &str, namespace: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("closed action") + start;
        let action = rest[start + 2..end].trim();
        let value = match action {
            ".Release.Name" => release.to_string(),
            ".Release.Namespace" => namespace.to_string(),
            path if path.starts_with(".Values.") => {
                let mut value = values;
                for part in path[".Values.".len()..].split('.') {
                    value = &value[part];
                }
                match value {
                    Value::String(s) => s.clone(),
                    Value::Null => panic!("{path}: not in values.yaml"),
                    other => other.to_string(),
                }
            }
            other => panic!("template action {other:?} is not one this test renders"),
        };
        out.push_str(&value);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

#[test]
fn the_helm_chart_renders_to_the_same_shape() {
    let chart = deploy().join("helm/netfence");
    let meta: Value = serde_yaml_ng::from_str(&read(&chart.join("Chart.yaml"))).unwrap();
    assert_eq!(meta["apiVersion"], "v2");
    assert_eq!(meta["name"], "netfence");
    assert!(meta["version"].is_string() && meta["appVersion"].is_string());
    let values: Value = serde_yaml_ng::from_str(&read(&chart.join("values.yaml"))).unwrap();
    let mut docs = Vec::new();
    let mut templates: Vec<PathBuf> = std::fs::read_dir(chart.join("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    templates.sort();
    for template in &templates {
        docs.extend(documents(&render(
            &read(template),
            &values,
            "nf",
            "security",
        )));
    }
    let rendered = check(&docs, "helm");
    assert_eq!(
        rendered.service_account.metadata.name.as_deref(),
        Some("nf")
    );
    assert_eq!(
        rendered.service_account.metadata.namespace.as_deref(),
        Some("security")
    );
    // The chart grants what the plain manifests grant.
    let plain: ClusterRole = strict(
        &documents(&read(&deploy().join("rbac.yaml")))[1],
        "rbac.yaml",
    );
    assert_eq!(rendered.role.rules, plain.rules);
    let image = rendered.daemon_set.spec.template.spec.unwrap().containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("ghcr.io/netfence/netfence:0.1.0"));
}

#[test]
fn the_dockerfile_builds_a_static_binary_in_stages() {
    let text = read(&deploy().join("Dockerfile"));
    let stages = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(stages >= 2, "multi-stage");
    assert!(
        text.contains("--target x86_64-unknown-linux-musl"),
        "static (musl) binary"
    );
    assert!(text.contains("COPY --from=build"));
    assert!(text.contains("nftables"), "the agent runs nft");
}

#[test]
fn the_test_server_plurals_agree_with_the_rbac_plurals() {
    let read = read_resources();
    for resource in netfence_cluster::testing::BUILTIN
        .iter()
        .chain(netfence_cluster::testing::CRDS)
    {
        assert!(
            read.contains(&(resource.group.to_string(), resource.plural.to_string())),
            "{resource:?}"
        );
    }
}
