//! Loading manifests: files, directories, stdin; multi-document YAML, JSON, `kind: List`.
//!
//! Each document is parsed into a JSON value, dispatched on `apiVersion`/`kind`, deserialized
//! with the field path tracked (so type errors name `spec.ingress[0].ports[0].port`), then
//! validated as the API server would. Loading continues past errors so that every problem is
//! reported at once; [`Loader::finish`] returns them all or the built [`Inventory`].

// Errors are the cold path and are collected, not propagated through hot loops: their size
// does not matter, and boxing them would only add noise.
#![allow(clippy::result_large_err)]

use crate::admin::{
    AdminAction, AdminKind, AdminPeer, AdminPolicy, AdminPort, AdminRule, AdminSubject,
};
use crate::aws::SecurityGroupPolicy;
use crate::calico::{
    self, CalicoPolicy, CalicoRule, CalicoScope, EntityRule, NetworkSet, RawEntity,
    RawNetworkSetSpec, RawPolicySpec, RawRule, RawTierSpec, ServiceAccountMatch, ServiceMatch,
    Tier, TierDefault,
};
use crate::error::{LoadError, LoadErrors, Origin};
use crate::inventory::{
    mesh_annotations, CertIssuer, Certificate, ContainerPort, Ingress, Inventory, IstioMeshConfig,
    MtlsMode, Namespace, Node, PeerAuthentication, Pod, ProbePort, RbacBinding, RbacRole, RbacRule,
    Service, ServiceAccount, VpcCni, WorkloadRef, NAMESPACE_NAME_LABEL,
};
use crate::net::{PortRange, Protocol};
use crate::policy::{NetworkPolicy, NpPeer, NpPort, NpPortSpec, NpRule, PolicyType};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{PodSpec, PodStatus, PodTemplateSpec};
use k8s_openapi::api::networking::v1::{NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as K8sLabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use netfence_selector::{validate_key, validate_value, LabelSelector, Labels};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

/// Accumulates objects from any number of inputs, then builds an [`Inventory`].
#[derive(Default)]
pub struct Loader {
    namespaces: Vec<(Meta, Origin)>,
    /// Pods converted at load time (their workload resolved in `finish`), with their
    /// controlling owner; keeping the raw specs of 100k pods would cost gigabytes.
    pods: Vec<(Pod, Option<(String, String)>)>,
    workloads: Vec<WorkloadObject>,
    service_accounts: Vec<(Meta, Origin)>,
    services: Vec<Service>,
    ingresses: Vec<Ingress>,
    peer_authentications: Vec<PeerAuthentication>,
    istio_mesh_configs: Vec<IstioMeshConfig>,
    vpc_cni: Option<VpcCni>,
    cert_issuers: Vec<CertIssuer>,
    certificates: Vec<Certificate>,
    rbac_roles: Vec<RbacRole>,
    rbac_bindings: Vec<RbacBinding>,
    security_group_policies: Vec<SecurityGroupPolicy>,
    nodes: Vec<Node>,
    policies: Vec<NetworkPolicy>,
    calico_policies: Vec<CalicoPolicy>,
    admin_policies: Vec<AdminPolicy>,
    network_sets: Vec<NetworkSet>,
    tiers: Vec<Tier>,
    warnings: Vec<String>,
    skipped: BTreeMap<String, usize>,
    errors: Vec<LoadError>,
}

struct WorkloadObject {
    kind: String,
    replicas: Option<i64>,
    meta: Meta,
    template: Option<PodTemplateSpec>,
    origin: Origin,
}

/// The metadata fields netfence needs. Own type rather than `ObjectMeta` so that hand-written
/// manifests whose `ownerReferences` lack a `uid` still load.
#[derive(Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
}

#[derive(Deserialize, Clone, Debug)]
struct OwnerReference {
    /// Required by the API; hand-written manifests sometimes omit it, and netpol-analyzer then
    /// reports the owner as a `Pod`, which we follow.
    kind: Option<String>,
    name: String,
    controller: Option<bool>,
}

#[derive(Deserialize)]
struct Object<S, T = serde::de::IgnoredAny> {
    #[serde(default)]
    metadata: Meta,
    spec: Option<S>,
    status: Option<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadSpec {
    replicas: Option<i64>,
    template: Option<PodTemplateSpec>,
    job_template: Option<JobTemplate>,
}

#[derive(Deserialize)]
struct JobTemplate {
    spec: Option<JobTemplateSpec>,
}

#[derive(Deserialize)]
struct JobTemplateSpec {
    template: Option<PodTemplateSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceSpecLite {
    #[serde(rename = "type")]
    service_type: Option<String>,
    selector: Option<BTreeMap<String, String>>,
    ports: Option<Vec<ServicePortLite>>,
    #[serde(rename = "clusterIP")]
    cluster_ip: Option<String>,
    #[serde(rename = "clusterIPs")]
    cluster_ips: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IngressSpecLite {
    ingress_class_name: Option<String>,
    tls: Option<Vec<IngressTlsLite>>,
    rules: Option<Vec<IngressRuleLite>>,
}

/// An RBAC role: `rules` sit at the top level, not under `spec`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RbacRoleLite {
    #[serde(default)]
    metadata: Meta,
    rules: Option<Vec<RbacRuleLite>>,
    aggregation_rule: Option<AggregationRuleLite>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AggregationRuleLite {
    cluster_role_selectors: Option<Vec<K8sLabelSelector>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RbacRuleLite {
    api_groups: Option<Vec<String>>,
    resources: Option<Vec<String>>,
    verbs: Vec<String>,
    resource_names: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RbacBindingLite {
    #[serde(default)]
    metadata: Meta,
    role_ref: RoleRefLite,
    subjects: Option<Vec<SubjectLite>>,
}

#[derive(Deserialize)]
struct RoleRefLite {
    kind: String,
    name: String,
}

#[derive(Deserialize)]
struct SubjectLite {
    kind: String,
    name: String,
    namespace: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CertificateSpecLite {
    issuer_ref: Option<IssuerRefLite>,
    #[serde(rename = "isCA")]
    is_ca: Option<bool>,
    duration: Option<String>,
}

#[derive(Deserialize)]
struct IssuerRefLite {
    name: Option<String>,
    kind: Option<String>,
    group: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PeerAuthenticationSpecLite {
    selector: Option<MatchLabelsLite>,
    mtls: Option<MtlsLite>,
    port_level_mtls: Option<BTreeMap<String, MtlsLite>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MatchLabelsLite {
    match_labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct MtlsLite {
    mode: Option<String>,
}

#[derive(Deserialize)]
struct IngressTlsLite {
    hosts: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct IngressRuleLite {
    host: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServicePortLite {
    name: Option<String>,
    port: i64,
    protocol: Option<String>,
    target_port: Option<IntOrString>,
}

#[derive(Deserialize)]
struct NodeStatusLite {
    addresses: Option<Vec<NodeAddressLite>>,
}

#[derive(Deserialize)]
struct NodeAddressLite {
    address: String,
    #[serde(rename = "type")]
    address_type: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SecurityGroupPolicySpecLite {
    pod_selector: Option<K8sLabelSelector>,
    service_account_selector: Option<K8sLabelSelector>,
    security_groups: Option<GroupIdsLite>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GroupIdsLite {
    group_ids: Option<Vec<String>>,
}

/// Context for errors about one document or list item.
#[derive(Clone)]
struct Ctx {
    origin: Origin,
    object: Option<String>,
}

impl Ctx {
    fn error(&self, field: Option<String>, message: impl Into<String>) -> LoadError {
        LoadError {
            origin: self.origin.clone(),
            object: self.object.clone(),
            field,
            message: message.into(),
        }
    }
    fn field(&self, field: impl Into<String>, message: impl Into<String>) -> LoadError {
        self.error(Some(field.into()), message)
    }
}

const WORKLOAD_KINDS: [&str; 7] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
];

impl Loader {
    /// An empty loader.
    pub fn new() -> Self {
        Loader::default()
    }

    /// Load a file, or every `*.yaml|*.yml|*.json` below a directory (sorted, recursive), or
    /// stdin when `path` is `-`.
    pub fn load_path(&mut self, path: &Path) {
        let display = path.display().to_string();
        if display == "-" {
            let mut text = String::new();
            match std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
                Ok(_) => self.load_str("<stdin>", &text),
                Err(e) => self.io_error("<stdin>", &e.to_string()),
            }
            return;
        }
        if path.is_dir() {
            let mut files = Vec::new();
            if let Err(e) = collect_manifest_files(path, &mut files) {
                self.io_error(&display, &e.to_string());
            }
            files.sort();
            for file in files {
                self.load_file(&file);
            }
        } else {
            self.load_file(path);
        }
    }

    fn load_file(&mut self, path: &Path) {
        let name = path.display().to_string();
        match std::fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => self.load_str(&name, &text),
                Err(_) => self.io_error(&name, "not valid UTF-8 text"),
            },
            Err(e) => self.io_error(&name, &e.to_string()),
        }
    }

    fn io_error(&mut self, file: &str, message: &str) {
        self.errors.push(LoadError {
            origin: Origin {
                file: file.to_string(),
                document: 0,
                line: 0,
                item: None,
            },
            object: None,
            field: None,
            message: message.to_string(),
        });
    }

    /// Load the text of one file: JSON when it starts with `{` or `[`, else multi-document YAML.
    pub fn load_str(&mut self, file: &str, text: &str) {
        let trimmed = text.trim_start_matches('\u{feff}');
        let first = trimmed.trim_start().chars().next();
        if matches!(first, Some('{') | Some('[')) && file.ends_with(".json") || first == Some('[') {
            let origin = Origin {
                file: file.to_string(),
                document: 1,
                line: 1,
                item: None,
            };
            match serde_json::from_str::<Value>(trimmed) {
                Ok(Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        let origin = Origin {
                            item: Some(i),
                            ..origin.clone()
                        };
                        self.load_value(item, origin);
                    }
                }
                Ok(value) => self.load_value(&value, origin),
                Err(e) => self.errors.push(LoadError {
                    origin: Origin {
                        line: e.line(),
                        ..origin
                    },
                    object: None,
                    field: None,
                    message: format!("malformed JSON: {e}"),
                }),
            }
            return;
        }
        for (index, (line, doc)) in split_yaml_documents(trimmed).into_iter().enumerate() {
            let origin = Origin {
                file: file.to_string(),
                document: index + 1,
                line,
                item: None,
            };
            match serde_yaml_ng::from_str::<Value>(doc) {
                Ok(value) => self.load_value(&value, origin),
                Err(e) => {
                    let (err_line, column) = e
                        .location()
                        .map(|l| (line + l.line() - 1, l.column()))
                        .unwrap_or((line, 0));
                    let message = e.to_string();
                    let message = message
                        .split(" at line ")
                        .next()
                        .unwrap_or(&message)
                        .to_string();
                    self.errors.push(LoadError {
                        origin,
                        object: None,
                        field: None,
                        message: format!(
                            "malformed YAML at line {err_line} column {column}: {message}"
                        ),
                    })
                }
            }
        }
    }

    fn load_value(&mut self, value: &Value, origin: Origin) {
        self.load_value_in(value, origin, None)
    }

    /// `list_defaults`: for items of a typed list (`PodList`), the item kind and apiVersion
    /// that the items may omit.
    fn load_value_in(
        &mut self,
        value: &Value,
        origin: Origin,
        list_defaults: Option<(&str, &str)>,
    ) {
        let ctx = Ctx {
            origin,
            object: None,
        };
        let map = match value {
            Value::Null => return,
            Value::Object(map) => map,
            other => {
                self.errors.push(ctx.error(
                    None,
                    format!(
                        "expected a Kubernetes object (a mapping), found {}",
                        json_type(other)
                    ),
                ));
                return;
            }
        };
        if !map.contains_key("kind") && !map.contains_key("apiVersion") && list_defaults.is_none() {
            // Not a Kubernetes object at all (e.g. a JSON report lying in a manifest folder).
            let what = if map.contains_key("SecurityGroups") {
                "<aws ec2 describe-security-groups output: pass it with audit --aws-security-groups>"
            } else {
                "<object without apiVersion and kind>"
            };
            *self.skipped.entry(what.into()).or_default() += 1;
            return;
        }
        let kind = match map.get("kind") {
            Some(Value::String(kind)) if !kind.is_empty() => kind.as_str(),
            None if list_defaults.is_some() => list_defaults.map_or("", |d| d.0),
            Some(other) => {
                self.errors.push(ctx.field(
                    "kind",
                    format!("expected a string, found {}", json_type(other)),
                ));
                return;
            }
            None => {
                self.errors
                    .push(ctx.field("kind", "missing: every object needs apiVersion and kind"));
                return;
            }
        };
        let api_version = match map.get("apiVersion") {
            Some(Value::String(v)) => v.as_str(),
            None => list_defaults.map_or("", |d| d.1),
            Some(other) => {
                self.errors.push(ctx.field(
                    "apiVersion",
                    format!("expected a string, found {}", json_type(other)),
                ));
                return;
            }
        };
        if kind.ends_with("List") && map.contains_key("items") {
            match map.get("items") {
                Some(Value::Array(items)) => {
                    let item_kind = kind.strip_suffix("List").unwrap_or_default();
                    let defaults = (!item_kind.is_empty()).then_some((item_kind, api_version));
                    for (i, item) in items.iter().enumerate() {
                        let origin = Origin {
                            item: Some(i),
                            ..ctx.origin.clone()
                        };
                        self.load_value_in(item, origin, defaults);
                    }
                }
                Some(Value::Null) => {}
                Some(other) => self.errors.push(ctx.field(
                    "items",
                    format!("expected a list, found {}", json_type(other)),
                )),
                None => {}
            }
            return;
        }
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let name = map
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("<unnamed>");
        let namespace = map
            .get("metadata")
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str);
        let object = match namespace {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        };
        let ctx = Ctx {
            object: Some(object),
            ..ctx
        };
        let result = match (group, kind) {
            ("", "Namespace") => self.load_namespace(value, &ctx),
            ("", "Pod") => self.load_pod(value, &ctx),
            ("", "ServiceAccount") => self.load_service_account(value, &ctx),
            ("", "Service") => self.load_service(value, &ctx),
            ("", "Node") => self.load_node(value, &ctx),
            ("", "ConfigMap") => self.load_config_map(api_version, value, &ctx),
            ("networking.k8s.io", "Ingress") => self.load_ingress(value, &ctx),
            ("cert-manager.io", "Issuer" | "ClusterIssuer")
            | ("awspca.cert-manager.io", "AWSPCAIssuer" | "AWSPCAClusterIssuer") => {
                self.load_cert_issuer(group, kind, value, &ctx)
            }
            ("cert-manager.io", "Certificate") => self.load_certificate(value, &ctx),
            ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => {
                self.load_rbac_role(kind, value, &ctx)
            }
            ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
                self.load_rbac_binding(kind, value, &ctx)
            }
            ("security.istio.io", "PeerAuthentication") => {
                self.load_peer_authentication(value, &ctx)
            }
            ("vpcresources.k8s.aws", "SecurityGroupPolicy") => {
                self.load_security_group_policy(value, &ctx)
            }
            ("networking.k8s.io" | "extensions", "NetworkPolicy") => {
                self.load_network_policy(value, &ctx)
            }
            ("" | "apps" | "extensions" | "batch", kind) if WORKLOAD_KINDS.contains(&kind) => {
                self.load_workload(kind, value, &ctx)
            }
            (
                "projectcalico.org" | "crd.projectcalico.org",
                "NetworkPolicy" | "GlobalNetworkPolicy",
            ) => self.load_calico_policy(kind == "GlobalNetworkPolicy", value, &ctx),
            ("projectcalico.org" | "crd.projectcalico.org", "NetworkSet" | "GlobalNetworkSet") => {
                self.load_network_set(kind == "GlobalNetworkSet", value, &ctx)
            }
            ("projectcalico.org" | "crd.projectcalico.org", "Tier") => self.load_tier(value, &ctx),
            ("policy.networking.k8s.io", "AdminNetworkPolicy" | "BaselineAdminNetworkPolicy")
                if api_version.ends_with("/v1alpha1") =>
            {
                self.load_admin_policy(kind == "AdminNetworkPolicy", value, &ctx)
            }
            ("policy.networking.k8s.io", "ClusterNetworkPolicy")
                if api_version.ends_with("/v1alpha2") =>
            {
                self.load_cluster_network_policy(value, &ctx)
            }
            ("projectcalico.org" | "crd.projectcalico.org", "HostEndpoint") => {
                *self
                    .skipped
                    .entry(format!(
                        "{api_version}/HostEndpoint (parsed, host endpoints are not evaluated)"
                    ))
                    .or_default() += 1;
                typed::<Object<Value>>(value, &ctx).map(|_| ())
            }
            _ => {
                let key = if api_version.is_empty() {
                    kind.to_string()
                } else {
                    format!("{api_version}/{kind}")
                };
                *self.skipped.entry(key).or_default() += 1;
                Ok(())
            }
        };
        if let Err(error) = result {
            self.errors.push(error);
        }
    }

    fn load_namespace(&mut self, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        let object: Object<Value> = typed(value, ctx)?;
        let meta = checked_meta(object.metadata, ctx, false)?;
        self.namespaces.push((meta, ctx.origin.clone()));
        Ok(())
    }

    fn load_service_account(&mut self, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        let object: Object<Value> = typed(value, ctx)?;
        let meta = checked_meta(object.metadata, ctx, true)?;
        self.service_accounts.push((meta, ctx.origin.clone()));
        Ok(())
    }

    fn load_pod(&mut self, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        let object: Object<PodSpec, PodStatus> = typed(value, ctx)?;
        let meta = checked_meta(object.metadata, ctx, true)?;
        let spec = object
            .spec
            .ok_or_else(|| ctx.field("spec", "missing: a Pod needs a spec"))?;
        let namespace = namespace_of(&meta);
        let name = meta.name.clone().unwrap_or_default();
        let owner = controller_owner(&meta);
        let annotations = mesh_annotations(meta.annotations.as_ref());
        let mut pod = pod_from_spec(
            &namespace,
            &name,
            meta.labels.unwrap_or_default(),
            &spec,
            object.status.as_ref(),
            // Resolved against the input's workloads in `finish`.
            WorkloadRef {
                kind: "Pod".into(),
                namespace: namespace.clone(),
                name: name.clone(),
            },
            false,
            ctx,
        )?;
        pod.mesh_annotations = annotations;
        self.pods.push((pod, owner));
        Ok(())
    }

    fn load_workload(&mut self, kind: &str, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        let object: Object<WorkloadSpec> = typed(value, ctx)?;
        let meta = checked_meta(object.metadata, ctx, true)?;
        let spec = object
            .spec
            .ok_or_else(|| ctx.field("spec", format!("missing: a {kind} needs a spec")))?;
        let replicas = spec.replicas;
        let spec = WorkloadSpec { replicas, ..spec };
        let template = if kind == "CronJob" {
            spec.job_template
                .and_then(|j| j.spec)
                .and_then(|s| s.template)
        } else {
            spec.template
        };
        if let Some(template) = &template {
            if let Some(labels) = template.metadata.as_ref().and_then(|m| m.labels.as_ref()) {
                check_labels(labels, ctx, "spec.template.metadata.labels")?;
            }
        }
        // The Amazon VPC CNI (DaemonSet kube-system/aws-node, container aws-node): how it
        // enforces security groups for pods.
        if kind == "DaemonSet"
            && meta.name.as_deref() == Some("aws-node")
            && namespace_of(&meta) == "kube-system"
        {
            let mode = template
                .as_ref()
                .and_then(|t| t.spec.as_ref())
                .and_then(|s| s.containers.iter().find(|c| c.name == "aws-node"))
                .and_then(|c| c.env.as_ref())
                .and_then(|env| {
                    env.iter()
                        .find(|e| e.name == "POD_SECURITY_GROUP_ENFORCING_MODE")
                })
                .and_then(|e| e.value.clone());
            self.vpc_cni = Some(VpcCni {
                pod_security_group_enforcing_mode: mode,
                origin: ctx.origin.clone(),
            });
        }
        self.workloads.push(WorkloadObject {
            kind: kind.to_string(),
            replicas: spec.replicas,
            meta,
            template,
            origin: ctx.origin.clone(),
        });
        Ok(())
    }

    fn load_service(&mut self, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        let object: Object<ServiceSpecLite> = typed(value, ctx)?;
        let meta = checked_meta(object.metadata, ctx, true)?;
        let spec = object.spec.unwrap_or(ServiceSpecLite {
            service_type: None,
            selector: None,
            ports: None,
            cluster_ip: None,
            cluster_ips: None,
        });
        let mut ports = Vec::new();
        for (i, port) in spec.ports.unwrap_or_default().into_iter().enumerate() {
            let number = port_number(port.port)
                .map_err(|m| ctx.field(format!("spec.ports[{i}].port"), m))?;
            let protocol = parse_protocol(port.protocol.as_deref())
                .map_err(|m| ctx.field(format!("spec.ports[{i}].protocol"), m))?;
            // API server: targetPort defaults to port; a number 1-65535 or an IANA_SVC_NAME.
            let target = match port.target_port {
                None => crate::inventory::TargetPort::Number(number),
                Some(IntOrString::Int(n)) => crate::inventory::TargetPort::Number(
                    port_number(i64::from(n))
                        .map_err(|m| ctx.field(format!("spec.ports[{i}].targetPort"), m))?,
                ),
                Some(IntOrString::String(text)) => match text.parse::<i64>() {
                    Ok(n) => crate::inventory::TargetPort::Number(
                        port_number(n)
                            .map_err(|m| ctx.field(format!("spec.ports[{i}].targetPort"), m))?,
                    ),
                    Err(_) if !text.is_empty() => crate::inventory::TargetPort::Named(text),
                    Err(_) => crate::inventory::TargetPort::Number(number),
                },
            };
            ports.push(crate::inventory::ServicePort {
                name: port.name,
                port: number,
                protocol,
                target,
            });
        }
        // `clusterIPs` (dual stack) wins over `clusterIP`, which it repeats first; `None` is a
        // headless Service.
        let mut cluster_ips = Vec::new();
        let texts = match spec.cluster_ips.filter(|list| !list.is_empty()) {
            Some(list) => list.into_iter().map(|t| ("spec.clusterIPs", t)).collect(),
            None => spec
                .cluster_ip
                .map(|t| vec![("spec.clusterIP", t)])
                .unwrap_or_default(),
        };
        for (field, text) in texts {
            if text.is_empty() || text == "None" {
                continue;
            }
            let ip = text
                .parse::<IpAddr>()
                .map_err(|_| ctx.field(field, format!("{text:?} is not an IP address or None")))?;
            cluster_ips.push(ip);
        }
        self.services.push(Service {
            namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
            name: meta.name.clone().unwrap_or_default(),
            service_type: spec.service_type.unwrap_or_else(|| "ClusterIP".into()),
            selector: spec.selector.unwrap_or_default().into_iter().collect(),
            ports,
            cluster_ips,
            annotations: meta.annotations.unwrap_or_default(),
            origin: ctx.origin.clone(),
        });
        Ok(())
    }

    fn load_ingress(&mut self, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        /// AWS Load Balancer Controller annotations (its "Ingress annotations" guide).
        const LISTEN_PORTS: &str = "alb.ingress.kubernetes.io/listen-ports";
        const LEGACY_CLASS: &str = "kubernetes.io/ingress.class";
        let object: Object<IngressSpecLite> = typed(value, ctx)?;
        let meta = checked_meta(object.metadata, ctx, true)?;
        let spec = object.spec.unwrap_or(IngressSpecLite {
            ingress_class_name: None,
            tls: None,
            rules: None,
        });
        let annotations = meta.annotations.unwrap_or_default();
        let listen_ports = annotations
            .get(LISTEN_PORTS)
            .map(|text| {
                parse_listen_ports(text)
                    .map_err(|m| ctx.field(format!("metadata.annotations[\"{LISTEN_PORTS}\"]"), m))
            })
            .transpose()?;
        let tls = spec.tls.unwrap_or_default();
        self.ingresses.push(Ingress {
            namespace: meta.namespace.unwrap_or_else(|| "default".into()),
            name: meta.name.unwrap_or_default(),
            class: spec
                .ingress_class_name
                .or_else(|| annotations.get(LEGACY_CLASS).cloned()),
            tls_entries: tls.len(),
            tls_hosts: tls
                .into_iter()
                .flat_map(|t| t.hosts.unwrap_or_default())
                .collect(),
            rule_hosts: spec
                .rules
                .unwrap_or_default()
                .into_iter()
                .filter_map(|r| r.host)
                .collect(),
            listen_ports,
            annotations,
            origin: ctx.origin.clone(),
        });
        Ok(())
    }

    /// RBAC Role/ClusterRole (rbac.authorization.k8s.io/v1; `rules` at the top level; a
    /// ClusterRole's `aggregationRule` is not expanded).
    fn load_rbac_role(&mut self, kind: &str, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        let object: RbacRoleLite = typed(value, ctx)?;
        let cluster = kind == "ClusterRole";
        let meta = checked_meta(object.metadata, ctx, !cluster)?;
        let mut aggregation = Vec::new();
        if let Some(rule) = &object.aggregation_rule {
            if !cluster {
                return Err(ctx.field("aggregationRule", "only a ClusterRole aggregates"));
            }
            for (i, s) in rule.cluster_role_selectors.iter().flatten().enumerate() {
                aggregation.push(selector(
                    s,
                    ctx,
                    &format!("aggregationRule.clusterRoleSelectors[{i}]"),
                )?);
            }
        }
        self.rbac_roles.push(RbacRole {
            kind: kind.to_string(),
            namespace: (!cluster).then(|| namespace_of(&meta)),
            labels: meta
                .labels
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            aggregation,
            name: meta.name.unwrap_or_default(),
            rules: object
                .rules
                .unwrap_or_default()
                .into_iter()
                .map(|r| RbacRule {
                    api_groups: r.api_groups.unwrap_or_default(),
                    resources: r.resources.unwrap_or_default(),
                    verbs: r.verbs,
                    resource_names: r.resource_names.unwrap_or_default(),
                })
                .collect(),
        });
        Ok(())
    }

    /// RBAC RoleBinding/ClusterRoleBinding: `roleRef` is required; a ClusterRoleBinding may
    /// only refer to a ClusterRole.
    fn load_rbac_binding(&mut self, kind: &str, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        let object: RbacBindingLite = typed(value, ctx)?;
        let cluster = kind == "ClusterRoleBinding";
        let meta = checked_meta(object.metadata, ctx, !cluster)?;
        let role_ref = object.role_ref;
        match (cluster, role_ref.kind.as_str()) {
            (_, "ClusterRole") | (false, "Role") => {}
            _ => {
                return Err(ctx.field(
                    "roleRef.kind",
                    format!(
                        "{:?} is not allowed here (expected ClusterRole{})",
                        role_ref.kind,
                        if cluster { "" } else { " or Role" }
                    ),
                ))
            }
        }
        self.rbac_bindings.push(RbacBinding {
            kind: kind.to_string(),
            namespace: (!cluster).then(|| namespace_of(&meta)),
            name: meta.name.unwrap_or_default(),
            role_ref: (role_ref.kind, role_ref.name),
            subjects: object
                .subjects
                .unwrap_or_default()
                .into_iter()
                .map(|s| (s.kind, s.name, s.namespace))
                .collect(),
            annotations: meta.annotations.unwrap_or_default(),
            origin: ctx.origin.clone(),
        });
        Ok(())
    }

    /// cert-manager issuers (cert-manager.io/v1 `IssuerSpec`: exactly one of `acme`, `ca`,
    /// `vault`, `selfSigned`, `venafi`) and AWS Private CA issuers (aws-privateca-issuer:
    /// `arn`, `region`, optional `secretRef` with static keys).
    fn load_cert_issuer(
        &mut self,
        group: &str,
        kind: &str,
        value: &Value,
        ctx: &Ctx,
    ) -> Result<(), LoadError> {
        let cluster = kind.contains("Cluster");
        let object: Object<serde_json::Map<String, serde_json::Value>> = typed(value, ctx)?;
        let meta = checked_meta(object.metadata, ctx, !cluster)?;
        let spec = object
            .spec
            .ok_or_else(|| ctx.field("spec", format!("missing: an {kind} needs a spec")))?;
        let text = |key: &str| -> Result<Option<String>, LoadError> {
            match spec.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ctx.field(format!("spec.{key}"), "must be a string")),
            }
        };
        let (issuer_type, arn, region, static_credentials) = if group == "awspca.cert-manager.io" {
            (
                "awspca".to_string(),
                text("arn")?,
                text("region")?,
                spec.get("secretRef").is_some_and(|v| !v.is_null()),
            )
        } else {
            const TYPES: [&str; 5] = ["acme", "ca", "vault", "selfSigned", "venafi"];
            let present: Vec<&str> = TYPES
                .iter()
                .copied()
                .filter(|t| spec.get(*t).is_some_and(|v| !v.is_null()))
                .collect();
            match present.as_slice() {
                [one] => (one.to_string(), None, None, false),
                [] => {
                    return Err(ctx.field(
                        "spec",
                        "needs one issuer type: acme, ca, vault, selfSigned or venafi",
                    ))
                }
                many => {
                    return Err(ctx.field(
                        "spec",
                        format!("sets more than one issuer type: {}", many.join(", ")),
                    ))
                }
            }
        };
        self.cert_issuers.push(CertIssuer {
            group: group.to_string(),
            kind: kind.to_string(),
            namespace: if cluster {
                None
            } else {
                Some(namespace_of(&meta))
            },
            name: meta.name.unwrap_or_default(),
            issuer_type,
            arn,
            region,
            static_credentials,
            annotations: meta.annotations.unwrap_or_default(),
            origin: ctx.origin.clone(),
        });
        Ok(())
    }

    fn load_certificate(&mut self, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        let object: Object<CertificateSpecLite> = typed(value, ctx)?;
        let meta = checked_meta(object.metadata, ctx, true)?;
        let spec = object
            .spec
            .ok_or_else(|| ctx.field("spec", "missing: a Certificate needs a spec"))?;
        let issuer_ref = spec
            .issuer_ref
            .ok_or_else(|| ctx.field("spec.issuerRef", "missing: a Certificate needs an issuer"))?;
        let issuer_name = issuer_ref
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ctx.field("spec.issuerRef.name", "missing"))?;
        let duration_seconds = spec
            .duration
            .as_deref()
            .map(|d| go_duration_seconds(d).map_err(|m| ctx.field("spec.duration", m)))
            .transpose()?;
        self.certificates.push(Certificate {
            namespace: namespace_of(&meta),
            name: meta.name.unwrap_or_default(),
            issuer_ref: (
                issuer_ref
                    .group
                    .filter(|g| !g.is_empty())
                    .unwrap_or_else(|| "cert-manager.io".into()),
                issuer_ref
                    .kind
                    .filter(|k| !k.is_empty())
                    .unwrap_or_else(|| "Issuer".into()),
                issuer_name,
            ),
            is_ca: spec.is_ca.unwrap_or(false),
            duration_seconds,
            annotations: meta.annotations.unwrap_or_default(),
            origin: ctx.origin.clone(),
        });
        Ok(())
    }

    /// Istio PeerAuthentication (istio.io reference, "PeerAuthentication": `mtls.mode` is
    /// UNSET, DISABLE, PERMISSIVE or STRICT; `portLevelMtls` keys are port numbers and need a
    /// workload selector).
    fn load_peer_authentication(&mut self, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        let object: Object<PeerAuthenticationSpecLite> = typed(value, ctx)?;
        let meta = checked_meta(object.metadata, ctx, true)?;
        let spec = object.spec.unwrap_or_default();
        let mode = |m: &Option<MtlsLite>, field: &str| -> Result<MtlsMode, LoadError> {
            match m.as_ref().and_then(|m| m.mode.as_deref()) {
                None | Some("UNSET") => Ok(MtlsMode::Unset),
                Some("DISABLE") => Ok(MtlsMode::Disable),
                Some("PERMISSIVE") => Ok(MtlsMode::Permissive),
                Some("STRICT") => Ok(MtlsMode::Strict),
                Some(other) => Err(ctx.field(
                    field,
                    format!(
                        "unknown mode {other:?} (expected UNSET, DISABLE, PERMISSIVE or STRICT)"
                    ),
                )),
            }
        };
        let selector = spec
            .selector
            .map(|s| s.match_labels.unwrap_or_default().into_iter().collect());
        let mut port_modes = Vec::new();
        for (port, mtls) in spec.port_level_mtls.unwrap_or_default() {
            let field = format!("spec.portLevelMtls[{port:?}]");
            let number: u16 = port
                .parse()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| ctx.field(&field, "a port number 1-65535"))?;
            port_modes.push((number, mode(&Some(mtls), &format!("{field}.mode"))?));
        }
        if !port_modes.is_empty() && selector.is_none() {
            return Err(ctx.field(
                "spec.portLevelMtls",
                "needs spec.selector: Istio applies port-level mTLS only to selected workloads",
            ));
        }
        self.peer_authentications.push(PeerAuthentication {
            namespace: namespace_of(&meta),
            name: meta.name.unwrap_or_default(),
            selector,
            mode: mode(&spec.mtls, "spec.mtls.mode")?,
            port_modes,
            annotations: meta.annotations.unwrap_or_default(),
            origin: ctx.origin.clone(),
        });
        Ok(())
    }

    fn load_node(&mut self, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        let object: Object<Value, NodeStatusLite> = typed(value, ctx)?;
        let meta = checked_meta(object.metadata, ctx, false)?;
        let mut addresses = Vec::new();
        let mut internal_addresses = Vec::new();
        for a in object.status.and_then(|s| s.addresses).unwrap_or_default() {
            if let Ok(ip) = a.address.parse::<IpAddr>() {
                addresses.push(ip);
                if a.address_type.as_deref() == Some("InternalIP") {
                    internal_addresses.push(ip);
                }
            }
        }
        self.nodes.push(Node {
            name: meta.name.unwrap_or_default(),
            labels: meta.labels.unwrap_or_default().into_iter().collect(),
            addresses,
            internal_addresses,
        });
        Ok(())
    }

    /// ConfigMaps are read only for Istio's mesh config (the `istio` ConfigMap, or `istio-<rev>`
    /// for a revision, with a `mesh` key): its `rootNamespace` (default: the ConfigMap's own
    /// namespace, where istiod runs) is where mesh-wide PeerAuthentications live. Others are
    /// counted as skipped.
    fn load_config_map(
        &mut self,
        api_version: &str,
        value: &Value,
        ctx: &Ctx,
    ) -> Result<(), LoadError> {
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mesh = value
            .get("data")
            .and_then(|d| d.get("mesh"))
            .filter(|_| name == "istio" || name.starts_with("istio-"));
        let Some(mesh) = mesh else {
            *self
                .skipped
                .entry(format!("{api_version}/ConfigMap"))
                .or_default() += 1;
            return Ok(());
        };
        let object: Object<Value> = typed(value, ctx)?;
        let meta = checked_meta(object.metadata, ctx, true)?;
        let text = mesh
            .as_str()
            .ok_or_else(|| ctx.field("data.mesh", "expected a string (the mesh config YAML)"))?;
        let config: Value = serde_yaml_ng::from_str(text)
            .map_err(|e| ctx.field("data.mesh", format!("invalid mesh config YAML: {e}")))?;
        let root_namespace = match config.get("rootNamespace") {
            None | Some(Value::Null) => namespace_of(&meta),
            Some(Value::String(ns)) if !ns.is_empty() => ns.clone(),
            Some(other) => {
                return Err(ctx.field(
                    "data.mesh: rootNamespace",
                    format!("expected a namespace name, found {other}"),
                ))
            }
        };
        self.istio_mesh_configs.push(IstioMeshConfig {
            namespace: namespace_of(&meta),
            name: meta.name.unwrap_or_default(),
            root_namespace,
            origin: ctx.origin.clone(),
        });
        Ok(())
    }

    /// `vpcresources.k8s.aws/v1beta1` `SecurityGroupPolicy`, validated as its CRD schema does
    /// (aws/amazon-vpc-resource-controller-k8s, `config/crd/bases`: 1 to 16 `groupIds`).
    fn load_security_group_policy(&mut self, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        let object: Object<SecurityGroupPolicySpecLite> = typed(value, ctx)?;
        let meta = checked_meta(object.metadata, ctx, true)?;
        let spec = object.spec.unwrap_or_default();
        let pod_selector = spec
            .pod_selector
            .as_ref()
            .map(|s| selector(s, ctx, "spec.podSelector"))
            .transpose()?;
        let service_account_selector = spec
            .service_account_selector
            .as_ref()
            .map(|s| selector(s, ctx, "spec.serviceAccountSelector"))
            .transpose()?;
        let group_ids = spec
            .security_groups
            .and_then(|g| g.group_ids)
            .unwrap_or_default();
        if group_ids.len() > 16 {
            return Err(ctx.field(
                "spec.securityGroups.groupIds",
                format!(
                    "{} groups: the CRD allows at most 16 (and a network interface carries at most 16)",
                    group_ids.len()
                ),
            ));
        }
        if let Some(i) = group_ids.iter().position(|g| g.trim().is_empty()) {
            return Err(ctx.field(
                format!("spec.securityGroups.groupIds[{i}]"),
                "empty security group id",
            ));
        }
        let name = meta.name.clone().unwrap_or_default();
        let namespace = namespace_of(&meta);
        if group_ids.is_empty() {
            self.warnings.push(format!(
                "{}: SecurityGroupPolicy {namespace}/{name} lists no spec.securityGroups.groupIds: the VPC resource controller ignores it",
                ctx.origin
            ));
        } else if pod_selector.is_none() && service_account_selector.is_none() {
            self.warnings.push(format!(
                "{}: SecurityGroupPolicy {namespace}/{name} has neither podSelector nor serviceAccountSelector: the VPC resource controller ignores it",
                ctx.origin
            ));
        }
        self.security_group_policies.push(SecurityGroupPolicy {
            namespace,
            name,
            pod_selector,
            service_account_selector,
            group_ids,
            annotations: meta.annotations.unwrap_or_default(),
            origin: ctx.origin.clone(),
        });
        Ok(())
    }

    fn load_network_policy(&mut self, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        let object: Object<NetworkPolicySpec> = typed(value, ctx)?;
        let meta = checked_meta(object.metadata, ctx, true)?;
        let spec = object
            .spec
            .ok_or_else(|| ctx.field("spec", "missing: a NetworkPolicy needs a spec"))?;
        let policy = validate_network_policy(meta, spec, ctx)?;
        self.policies.push(policy);
        Ok(())
    }

    fn load_calico_policy(
        &mut self,
        global: bool,
        value: &Value,
        ctx: &Ctx,
    ) -> Result<(), LoadError> {
        let object: Object<RawPolicySpec> = typed(value, ctx)?;
        let meta = checked_meta(object.metadata, ctx, !global)?;
        let spec = object.spec.unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let namespace = namespace_of(&meta);
        let sel = |text: &Option<String>,
                   field: &str|
         -> Result<Option<netfence_selector::calico::Selector>, LoadError> {
            text.as_deref()
                .map(|t| calico::selector(t).map_err(|m| ctx.field(field, m)))
                .transpose()
        };
        let selector = sel(&spec.selector, "spec.selector")?
            .unwrap_or(netfence_selector::calico::Selector::All);
        let namespace_selector = sel(&spec.namespace_selector, "spec.namespaceSelector")?;
        if !global && namespace_selector.is_some() {
            return Err(ctx.field(
                "spec.namespaceSelector",
                "only a GlobalNetworkPolicy has a namespaceSelector",
            ));
        }
        let service_account_selector = sel(
            &spec.service_account_selector,
            "spec.serviceAccountSelector",
        )?;
        let mut ingress = Vec::new();
        for (i, rule) in spec.ingress.iter().flatten().enumerate() {
            calico::check_services(rule, PolicyType::Ingress, global)
                .map_err(|(field, m)| ctx.field(format!("spec.ingress[{i}].{field}"), m))?;
            ingress.push(self.calico_rule(
                rule,
                &namespace,
                global,
                ctx,
                &format!("spec.ingress[{i}]"),
            )?);
        }
        let mut egress = Vec::new();
        for (i, rule) in spec.egress.iter().flatten().enumerate() {
            calico::check_services(rule, PolicyType::Egress, global)
                .map_err(|(field, m)| ctx.field(format!("spec.egress[{i}].{field}"), m))?;
            egress.push(self.calico_rule(
                rule,
                &namespace,
                global,
                ctx,
                &format!("spec.egress[{i}]"),
            )?);
        }
        let types = match spec.types.as_ref().filter(|t| !t.is_empty()) {
            Some(types) => parse_policy_types(types, ctx, "spec.types")?,
            // v3 docs: Ingress if there are no egress rules, Egress if there are only egress
            // rules, both when both are present.
            None => match (ingress.is_empty(), egress.is_empty()) {
                (_, true) => vec![PolicyType::Ingress],
                (true, false) => vec![PolicyType::Egress],
                (false, false) => vec![PolicyType::Ingress, PolicyType::Egress],
            },
        };
        if spec.do_not_track == Some(true) || spec.pre_dnat == Some(true) {
            self.warnings.push(format!(
                "{}: {}: doNotTrack/preDNAT policies apply to host endpoints, which netfence does not evaluate",
                ctx.origin,
                ctx.object.clone().unwrap_or_default()
            ));
        }
        self.calico_policies.push(CalicoPolicy {
            scope: if global {
                CalicoScope::Global { namespace_selector }
            } else {
                CalicoScope::Namespace(namespace)
            },
            name,
            tier: spec
                .tier
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "default".into()),
            order: spec.order,
            selector,
            service_account_selector,
            types,
            ingress,
            egress,
            origin: ctx.origin.clone(),
        });
        Ok(())
    }

    fn calico_rule(
        &mut self,
        rule: &RawRule,
        namespace: &str,
        global: bool,
        ctx: &Ctx,
        path: &str,
    ) -> Result<CalicoRule, LoadError> {
        let action =
            calico::action(&rule.action).map_err(|m| ctx.field(format!("{path}.action"), m))?;
        let protocol = rule
            .protocol
            .as_ref()
            .map(calico::protocol_number)
            .transpose()
            .map_err(|m| ctx.field(format!("{path}.protocol"), m))?;
        let not_protocol = rule
            .not_protocol
            .as_ref()
            .map(calico::protocol_number)
            .transpose()
            .map_err(|m| ctx.field(format!("{path}.notProtocol"), m))?;
        let ip_version = match rule.ip_version {
            None => None,
            Some(v @ (4 | 6)) => Some(v as u8),
            Some(other) => {
                return Err(ctx.field(
                    format!("{path}.ipVersion"),
                    format!("must be 4 or 6, not {other}"),
                ))
            }
        };
        let icmp = rule.icmp.is_some() || rule.not_icmp.is_some();
        if icmp && !matches!(protocol, Some(1 | 58)) {
            return Err(ctx.field(
                format!("{path}.icmp"),
                "icmp/notICMP need protocol ICMP or ICMPv6",
            ));
        }
        let source = self.entity(
            &rule.source,
            ctx,
            &format!("{path}.source"),
            namespace,
            global,
        )?;
        let destination = self.entity(
            &rule.destination,
            ctx,
            &format!("{path}.destination"),
            namespace,
            global,
        )?;
        for (entity, side) in [(&source, "source"), (&destination, "destination")] {
            if (!entity.ports.is_empty() || !entity.not_ports.is_empty())
                && !matches!(protocol, Some(6 | 17 | 132 | 136))
            {
                return Err(ctx.field(
                    format!("{path}.{side}.ports"),
                    "ports need protocol TCP, UDP, SCTP or UDPLite",
                ));
            }
        }
        if rule.source.ports.as_ref().is_some_and(|p| !p.is_empty())
            || rule
                .source
                .not_ports
                .as_ref()
                .is_some_and(|p| !p.is_empty())
        {
            self.warnings.push(format!(
                "{}: {}: {path}.source.ports: source ports are not modelled (connections are identified by destination port); the rule is evaluated as if every source port matched",
                ctx.origin,
                ctx.object.clone().unwrap_or_default()
            ));
        }
        if rule.http.is_some() {
            self.warnings.push(format!(
                "{}: {}: {path}.http: HTTP matches are not enforced at L3/L4; netfence evaluates the rule without them",
                ctx.origin,
                ctx.object.clone().unwrap_or_default()
            ));
        }
        Ok(CalicoRule {
            action,
            protocol,
            not_protocol,
            ip_version,
            icmp,
            source,
            destination,
            http: rule.http.is_some(),
        })
    }

    fn entity(
        &mut self,
        raw: &RawEntity,
        ctx: &Ctx,
        path: &str,
        namespace: &str,
        _global: bool,
    ) -> Result<EntityRule, LoadError> {
        let nets =
            |list: &Option<Vec<String>>, field: &str| -> Result<Vec<ipnet::IpNet>, LoadError> {
                list.iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, t)| {
                        calico::net(t).map_err(|m| ctx.field(format!("{path}.{field}[{i}]"), m))
                    })
                    .collect()
            };
        let ports = |list: &Option<Vec<calico::IntOrText>>,
                     field: &str|
         -> Result<Vec<calico::CalicoPort>, LoadError> {
            list.iter()
                .flatten()
                .enumerate()
                .map(|(i, p)| {
                    calico::calico_port(p).map_err(|m| ctx.field(format!("{path}.{field}[{i}]"), m))
                })
                .collect()
        };
        let sel = |text: &Option<String>, field: &str| {
            text.as_deref()
                .map(|t| calico::selector(t).map_err(|m| ctx.field(format!("{path}.{field}"), m)))
                .transpose()
        };
        let service_accounts = match &raw.service_accounts {
            None => None,
            Some(sa) => Some(ServiceAccountMatch {
                names: sa.names.clone().unwrap_or_default(),
                selector: sel(&sa.selector, "serviceAccounts.selector")?,
            }),
        };
        Ok(EntityRule {
            nets: nets(&raw.nets, "nets")?,
            not_nets: nets(&raw.not_nets, "notNets")?,
            selector: sel(&raw.selector, "selector")?,
            not_selector: sel(&raw.not_selector, "notSelector")?,
            namespace_selector: sel(&raw.namespace_selector, "namespaceSelector")?,
            ports: ports(&raw.ports, "ports")?,
            not_ports: ports(&raw.not_ports, "notPorts")?,
            service_accounts,
            services: raw.services.as_ref().map(|s| ServiceMatch {
                name: s.name.clone(),
                namespace: s
                    .namespace
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| namespace.to_string()),
            }),
        })
    }

    fn load_network_set(
        &mut self,
        global: bool,
        value: &Value,
        ctx: &Ctx,
    ) -> Result<(), LoadError> {
        let object: Object<RawNetworkSetSpec> = typed(value, ctx)?;
        let meta = checked_meta(object.metadata, ctx, !global)?;
        let mut nets = Vec::new();
        for (i, text) in object
            .spec
            .unwrap_or_default()
            .nets
            .iter()
            .flatten()
            .enumerate()
        {
            nets.push(calico::net(text).map_err(|m| ctx.field(format!("spec.nets[{i}]"), m))?);
        }
        self.network_sets.push(NetworkSet {
            namespace: (!global).then(|| namespace_of(&meta)),
            name: meta.name.unwrap_or_default(),
            labels: meta.labels.unwrap_or_default().into_iter().collect(),
            nets,
        });
        Ok(())
    }

    fn load_admin_policy(
        &mut self,
        admin: bool,
        value: &Value,
        ctx: &Ctx,
    ) -> Result<(), LoadError> {
        let object: Object<RawAdminSpec> = typed(value, ctx)?;
        let meta = checked_meta(object.metadata, ctx, false)?;
        let name = meta.name.clone().unwrap_or_default();
        let spec = object
            .spec
            .ok_or_else(|| ctx.field("spec", "missing: an admin policy needs a spec"))?;
        if !admin && name != "default" {
            return Err(ctx.field(
                "metadata.name",
                "a BaselineAdminNetworkPolicy must be named \"default\"",
            ));
        }
        let priority = if admin {
            match spec.priority {
                Some(p @ 0..=1000) => Some(p as u32),
                Some(p) => return Err(ctx.field("spec.priority", format!("{p} is outside 0-1000"))),
                None => {
                    return Err(ctx.field(
                        "spec.priority",
                        "missing: an AdminNetworkPolicy needs a priority",
                    ))
                }
            }
        } else {
            None
        };
        let subject = admin_subject(spec.subject.as_ref(), ctx)?;
        let mut ingress = Vec::new();
        for (i, rule) in spec.ingress.iter().flatten().enumerate() {
            ingress.push(admin_rule(
                rule,
                admin,
                false,
                ctx,
                &format!("spec.ingress[{i}]"),
            )?);
        }
        let mut egress = Vec::new();
        for (i, rule) in spec.egress.iter().flatten().enumerate() {
            egress.push(admin_rule(
                rule,
                admin,
                true,
                ctx,
                &format!("spec.egress[{i}]"),
            )?);
        }
        if ingress.len() > 100 || egress.len() > 100 {
            return Err(ctx.field("spec", "at most 100 ingress and 100 egress rules"));
        }
        self.admin_policies.push(AdminPolicy {
            kind: if admin {
                AdminKind::AdminNetworkPolicy
            } else {
                AdminKind::BaselineAdminNetworkPolicy
            },
            name,
            priority,
            subject,
            ingress,
            egress,
            origin: ctx.origin.clone(),
        });
        Ok(())
    }

    /// `policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy (apis/v1alpha2/
    /// clusternetworkpolicy_types.go): `tier: Admin|Baseline`, actions `Accept|Deny|Pass`,
    /// `protocols` with `tcp|udp|sctp.destinationPort.{number|range}` or `destinationNamedPort`.
    fn load_cluster_network_policy(&mut self, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        let object: Object<RawCnpSpec> = typed(value, ctx)?;
        let meta = checked_meta(object.metadata, ctx, false)?;
        let spec = object
            .spec
            .ok_or_else(|| ctx.field("spec", "missing: a ClusterNetworkPolicy needs a spec"))?;
        let kind = match spec.tier.as_deref() {
            Some("Admin") => AdminKind::ClusterNetworkPolicyAdmin,
            Some("Baseline") => AdminKind::ClusterNetworkPolicyBaseline,
            other => {
                return Err(ctx.field(
                    "spec.tier",
                    format!("must be Admin or Baseline, not {other:?}"),
                ))
            }
        };
        let priority = match spec.priority {
            Some(p @ 0..=1000) => p as u32,
            Some(p) => return Err(ctx.field("spec.priority", format!("{p} is outside 0-1000"))),
            None => return Err(ctx.field("spec.priority", "missing")),
        };
        let subject = admin_subject(spec.subject.as_ref(), ctx)?;
        let mut rules = [Vec::new(), Vec::new()];
        for (d, (key, list)) in [("ingress", &spec.ingress), ("egress", &spec.egress)]
            .into_iter()
            .enumerate()
        {
            let list = list.as_deref().unwrap_or_default();
            if list.len() > 25 {
                return Err(ctx.field(format!("spec.{key}"), "at most 25 rules"));
            }
            for (i, rule) in list.iter().enumerate() {
                let path = format!("spec.{key}[{i}]");
                let action = match rule.action.as_str() {
                    "Accept" => "Allow",
                    "Deny" => "Deny",
                    "Pass" => "Pass",
                    other => {
                        return Err(ctx.field(
                            format!("{path}.action"),
                            format!("unsupported action {other:?} (expected Accept, Deny or Pass)"),
                        ))
                    }
                };
                let egress = d == 1;
                let peers = if egress { &rule.to } else { &rule.from };
                if peers.iter().flatten().any(|p| p.domain_names.is_some()) {
                    self.warnings.push(format!(
                        "{}: {}: {path}: domainNames peers name hosts by DNS, which netfence cannot resolve; they match no address",
                        ctx.origin,
                        ctx.object.clone().unwrap_or_default()
                    ));
                }
                let mut ports = Vec::new();
                for (j, protocol) in rule.protocols.iter().flatten().enumerate() {
                    ports.push(cnp_port(protocol, ctx, &format!("{path}.protocols[{j}]"))?);
                }
                let raw = RawAdminRule {
                    name: rule.name.clone(),
                    action: action.to_string(),
                    from: if egress { None } else { rule.from.clone() },
                    to: if egress { rule.to.clone() } else { None },
                    ports: None,
                };
                let mut parsed = admin_rule(&raw, true, egress, ctx, &path)?;
                parsed.ports = ports;
                rules[d].push(parsed);
            }
        }
        let [ingress, egress] = rules;
        self.admin_policies.push(AdminPolicy {
            kind,
            name: meta.name.unwrap_or_default(),
            priority: Some(priority),
            subject,
            ingress,
            egress,
            origin: ctx.origin.clone(),
        });
        Ok(())
    }

    fn load_tier(&mut self, value: &Value, ctx: &Ctx) -> Result<(), LoadError> {
        let object: Object<RawTierSpec> = typed(value, ctx)?;
        let meta = checked_meta(object.metadata, ctx, false)?;
        let spec = object.spec.unwrap_or_default();
        let default_action = match spec.default_action.as_deref() {
            None | Some("Deny") => TierDefault::Deny,
            Some("Pass") => TierDefault::Pass,
            Some(other) => {
                return Err(ctx.field(
                    "spec.defaultAction",
                    format!("must be Deny or Pass, not {other:?}"),
                ))
            }
        };
        self.tiers.push(Tier {
            name: meta.name.unwrap_or_default(),
            order: spec.order,
            default_action,
        });
        Ok(())
    }

    /// Build the inventory, or return every error found.
    pub fn finish(self) -> Result<Inventory, LoadErrors> {
        let mut errors = self.errors;
        let mut inventory = Inventory {
            skipped_kinds: self.skipped,
            ..Inventory::default()
        };

        // Namespaces: declared ones, with the automatic name label.
        let mut seen_ns: HashMap<String, Origin> = HashMap::new();
        for (meta, origin) in self.namespaces {
            let name = meta.name.clone().unwrap_or_default();
            if let Some(first) = seen_ns.get(&name) {
                errors.push(duplicate("Namespace", &name, &origin, first));
                continue;
            }
            seen_ns.insert(name.clone(), origin.clone());
            let mut labels: Labels = meta.labels.unwrap_or_default().into_iter().collect();
            labels.insert(NAMESPACE_NAME_LABEL.into(), name.clone());
            inventory.namespaces.insert(
                name.clone(),
                Namespace {
                    name,
                    labels,
                    annotations: meta.annotations.clone().unwrap_or_default(),
                    declared: true,
                    origin: Some(origin),
                },
            );
        }

        // Owner chains: (namespace, kind, name) -> owner of that workload object.
        let mut workload_owner: HashMap<(String, String, String), Option<(String, String)>> =
            HashMap::new();
        for w in &self.workloads {
            let ns = namespace_of(&w.meta);
            workload_owner.insert(
                (ns, w.kind.clone(), w.meta.name.clone().unwrap_or_default()),
                controller_owner(&w.meta),
            );
        }
        let top_level = |namespace: &str, mut kind: String, mut name: String| {
            let mut hops = 0;
            while let Some(Some((owner_kind, owner_name))) =
                workload_owner.get(&(namespace.to_string(), kind.clone(), name.clone()))
            {
                // Only climb to owners that are in the input (netpol-analyzer reports a
                // ReplicaSet when its Deployment is absent).
                if !workload_owner.contains_key(&(
                    namespace.to_string(),
                    owner_kind.clone(),
                    owner_name.clone(),
                )) || hops > 8
                {
                    break;
                }
                kind = owner_kind.clone();
                name = owner_name.clone();
                hops += 1;
            }
            WorkloadRef {
                kind,
                namespace: namespace.to_string(),
                name,
            }
        };

        let mut pods = Vec::new();
        for (mut pod, owner) in self.pods {
            if let Some((kind, name)) = owner {
                pod.workload = top_level(&pod.namespace, kind, name);
            }
            pods.push(pod);
        }

        // Workloads without live pods yield one pod from their template.
        let live: HashSet<WorkloadRef> = pods.iter().map(|p| p.workload.clone()).collect();
        for w in &self.workloads {
            let namespace = namespace_of(&w.meta);
            let name = w.meta.name.clone().unwrap_or_default();
            let me = WorkloadRef {
                kind: w.kind.clone(),
                namespace: namespace.clone(),
                name: name.clone(),
            };
            if top_level(&namespace, w.kind.clone(), name.clone()) != me || live.contains(&me) {
                continue;
            }
            let Some(template) = &w.template else {
                continue;
            };
            let Some(spec) = &template.spec else { continue };
            let labels = template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            let ctx = Ctx {
                origin: w.origin.clone(),
                object: Some(format!("{} {namespace}/{name}", w.kind)),
            };
            // A StatefulSet's pods have stable names, name-0 … name-(replicas-1); they are
            // made one by one (up to MAX_STATEFUL_REPLICAS). Other workloads yield one pod.
            let count = if w.kind == "StatefulSet" {
                w.replicas.unwrap_or(1).clamp(1, MAX_STATEFUL_REPLICAS)
            } else {
                1
            };
            for ordinal in 0..count {
                match pod_from_spec(
                    &namespace,
                    &format!("{name}-{ordinal}"),
                    labels.clone(),
                    spec,
                    None,
                    me.clone(),
                    true,
                    &ctx,
                ) {
                    Ok(mut pod) => {
                        pod.mesh_annotations = mesh_annotations(
                            template
                                .metadata
                                .as_ref()
                                .and_then(|m| m.annotations.as_ref()),
                        );
                        pods.push(pod);
                    }
                    Err(e) => errors.push(e),
                }
            }
        }

        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        for pair in pods.windows(2) {
            if pair[0].namespace == pair[1].namespace && pair[0].name == pair[1].name {
                errors.push(duplicate(
                    "Pod",
                    &pair[1].key(),
                    &pair[1].origin,
                    &pair[0].origin,
                ));
            }
        }
        pods.dedup_by(|a, b| a.namespace == b.namespace && a.name == b.name);
        assign_synthetic_ips(&mut pods);

        let mut policies = self.policies;
        policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        for pair in policies.windows(2) {
            if pair[0].namespace == pair[1].namespace && pair[0].name == pair[1].name {
                errors.push(duplicate(
                    "NetworkPolicy",
                    &format!("{}/{}", pair[1].namespace, pair[1].name),
                    &pair[1].origin,
                    &pair[0].origin,
                ));
            }
        }

        inventory.service_accounts = self
            .service_accounts
            .into_iter()
            .map(|(meta, _)| ServiceAccount {
                namespace: namespace_of(&meta),
                name: meta.name.unwrap_or_default(),
                labels: meta.labels.unwrap_or_default().into_iter().collect(),
            })
            .collect();

        // Namespaces referenced but not declared exist implicitly.
        let referenced: Vec<String> = pods
            .iter()
            .map(|p| p.namespace.clone())
            .chain(policies.iter().map(|p| p.namespace.clone()))
            .chain(self.services.iter().map(|s| s.namespace.clone()))
            .chain(
                self.security_group_policies
                    .iter()
                    .map(|s| s.namespace.clone()),
            )
            .chain(
                inventory
                    .service_accounts
                    .iter()
                    .map(|s| s.namespace.clone()),
            )
            .collect();
        for name in referenced {
            inventory
                .namespaces
                .entry(name.clone())
                .or_insert_with(|| Namespace {
                    labels: Labels::from([(NAMESPACE_NAME_LABEL.to_string(), name.clone())]),
                    name,
                    annotations: BTreeMap::new(),
                    declared: false,
                    origin: None,
                });
        }

        for policy in &self.calico_policies {
            if let CalicoScope::Namespace(ns) = &policy.scope {
                inventory
                    .namespaces
                    .entry(ns.clone())
                    .or_insert_with(|| Namespace {
                        labels: Labels::from([(NAMESPACE_NAME_LABEL.to_string(), ns.clone())]),
                        name: ns.clone(),
                        annotations: BTreeMap::new(),
                        declared: false,
                        origin: None,
                    });
            }
        }
        let mut admin_policies = self.admin_policies;
        admin_policies.sort_by(|a, b| {
            (a.kind.is_baseline(), a.priority, &a.name).cmp(&(
                b.kind.is_baseline(),
                b.priority,
                &b.name,
            ))
        });
        for pair in admin_policies.windows(2) {
            let same_tier = pair[0].kind.is_baseline() == pair[1].kind.is_baseline();
            if same_tier && pair[0].priority.is_some() && pair[0].priority == pair[1].priority {
                inventory.warnings.push(format!(
                    "admin policies {} and {} share priority {}: the API leaves their order undefined; netfence orders them by name",
                    pair[0].name,
                    pair[1].name,
                    pair[0].priority.unwrap_or_default()
                ));
            }
        }
        let banps: Vec<&AdminPolicy> = admin_policies
            .iter()
            .filter(|p| p.kind == AdminKind::BaselineAdminNetworkPolicy)
            .collect();
        for pair in banps.windows(2) {
            errors.push(duplicate(
                "BaselineAdminNetworkPolicy",
                &pair[1].name,
                &pair[1].origin,
                &pair[0].origin,
            ));
        }
        inventory.admin_policies = admin_policies;
        inventory.calico_policies = self.calico_policies;
        inventory.network_sets = self.network_sets;
        inventory.tiers = self.tiers;
        inventory.warnings.extend(self.warnings);
        inventory.pods = pods;
        inventory.network_policies = policies;
        inventory.services = self.services;
        inventory.ingresses = self.ingresses;
        inventory.peer_authentications = self.peer_authentications;
        inventory.istio_mesh_configs = self.istio_mesh_configs;
        inventory.vpc_cni = self.vpc_cni;
        inventory.cert_issuers = self.cert_issuers;
        inventory.certificates = self.certificates;
        inventory.rbac_roles = self.rbac_roles;
        inventory.rbac_bindings = self.rbac_bindings;
        inventory.security_group_policies = self.security_group_policies;
        inventory.nodes = self.nodes;
        if errors.is_empty() {
            Ok(inventory)
        } else {
            Err(LoadErrors(errors))
        }
    }
}

fn admin_subject(subject: Option<&RawAdminSubject>, ctx: &Ctx) -> Result<AdminSubject, LoadError> {
    let subject = subject.ok_or_else(|| ctx.field("spec.subject", "missing"))?;
    match (&subject.namespaces, &subject.pods) {
        (Some(ns), None) => Ok(AdminSubject {
            namespace_selector: selector(ns, ctx, "spec.subject.namespaces")?,
            pod_selector: LabelSelector::everything(),
        }),
        (None, Some(pods)) => {
            let (namespace_selector, pod_selector) =
                namespaced_pod(pods, ctx, "spec.subject.pods")?;
            Ok(AdminSubject {
                namespace_selector,
                pod_selector,
            })
        }
        _ => Err(ctx.field(
            "spec.subject",
            "exactly one of namespaces or pods must be set",
        )),
    }
}

fn cnp_port(protocol: &RawCnpProtocol, ctx: &Ctx, path: &str) -> Result<AdminPort, LoadError> {
    let kinds = usize::from(protocol.tcp.is_some())
        + usize::from(protocol.udp.is_some())
        + usize::from(protocol.sctp.is_some())
        + usize::from(protocol.destination_named_port.is_some());
    if kinds != 1 {
        return Err(ctx.field(
            path,
            "exactly one of tcp, udp, sctp or destinationNamedPort must be set",
        ));
    }
    if let Some(name) = &protocol.destination_named_port {
        return Ok(AdminPort::Named(name.clone()));
    }
    let (name, proto, l4) = if let Some(l4) = &protocol.tcp {
        ("tcp", Protocol::Tcp, l4)
    } else if let Some(l4) = &protocol.udp {
        ("udp", Protocol::Udp, l4)
    } else {
        (
            "sctp",
            Protocol::Sctp,
            protocol
                .sctp
                .as_ref()
                .ok_or_else(|| ctx.field(path, "missing protocol"))?,
        )
    };
    let port = l4
        .destination_port
        .as_ref()
        .ok_or_else(|| ctx.field(format!("{path}.{name}.destinationPort"), "missing"))?;
    let p = format!("{path}.{name}.destinationPort");
    match (port.number, &port.range) {
        (Some(n), None) => {
            let n = port_number(n).map_err(|m| ctx.field(format!("{p}.number"), m))?;
            Ok(AdminPort::Range(
                proto,
                PortRange::single(n).unwrap_or(PortRange::ALL),
            ))
        }
        (None, Some(range)) => {
            let start =
                port_number(range.start).map_err(|m| ctx.field(format!("{p}.range.start"), m))?;
            let end = port_number(range.end).map_err(|m| ctx.field(format!("{p}.range.end"), m))?;
            if start >= end {
                return Err(ctx.field(
                    format!("{p}.range"),
                    "Start port must be less than End port",
                ));
            }
            Ok(AdminPort::Range(
                proto,
                PortRange::new(start, end).unwrap_or(PortRange::ALL),
            ))
        }
        _ => Err(ctx.field(&p, "exactly one of number or range must be set")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCnpSpec {
    tier: Option<String>,
    priority: Option<i64>,
    subject: Option<RawAdminSubject>,
    ingress: Option<Vec<RawCnpRule>>,
    egress: Option<Vec<RawCnpRule>>,
}

#[derive(Deserialize)]
struct RawCnpRule {
    name: Option<String>,
    action: String,
    from: Option<Vec<RawAdminPeer>>,
    to: Option<Vec<RawAdminPeer>>,
    protocols: Option<Vec<RawCnpProtocol>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCnpProtocol {
    tcp: Option<RawCnpL4>,
    udp: Option<RawCnpL4>,
    sctp: Option<RawCnpL4>,
    destination_named_port: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCnpL4 {
    destination_port: Option<RawCnpPort>,
}

#[derive(Deserialize)]
struct RawCnpPort {
    number: Option<i64>,
    range: Option<RawCnpRange>,
}

#[derive(Deserialize)]
struct RawCnpRange {
    start: i64,
    end: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAdminSpec {
    priority: Option<i64>,
    subject: Option<RawAdminSubject>,
    ingress: Option<Vec<RawAdminRule>>,
    egress: Option<Vec<RawAdminRule>>,
}

#[derive(Deserialize)]
struct RawAdminSubject {
    namespaces: Option<K8sLabelSelector>,
    pods: Option<RawNamespacedPod>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct RawNamespacedPod {
    namespace_selector: Option<K8sLabelSelector>,
    pod_selector: Option<K8sLabelSelector>,
}

#[derive(Deserialize)]
struct RawAdminRule {
    name: Option<String>,
    action: String,
    from: Option<Vec<RawAdminPeer>>,
    to: Option<Vec<RawAdminPeer>>,
    ports: Option<Vec<RawAdminPort>>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct RawAdminPeer {
    namespaces: Option<K8sLabelSelector>,
    pods: Option<RawNamespacedPod>,
    nodes: Option<K8sLabelSelector>,
    networks: Option<Vec<String>>,
    domain_names: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAdminPort {
    port_number: Option<RawPortNumber>,
    named_port: Option<String>,
    port_range: Option<RawPortRange>,
}

#[derive(Deserialize)]
struct RawPortNumber {
    protocol: Option<String>,
    port: i64,
}

#[derive(Deserialize)]
struct RawPortRange {
    protocol: Option<String>,
    start: i64,
    end: i64,
}

/// `namespaceSelector`/`podSelector` of a `pods` subject or peer. Both are declared without
/// `omitempty` in the Go types, so an omitted one decodes as the empty selector, which is how
/// implementations (and netpol-analyzer) read it.
fn namespaced_pod(
    pods: &RawNamespacedPod,
    ctx: &Ctx,
    path: &str,
) -> Result<(LabelSelector, LabelSelector), LoadError> {
    let convert = |s: &Option<K8sLabelSelector>, leaf: &str| match s {
        Some(s) => selector(s, ctx, &format!("{path}.{leaf}")),
        None => Ok(LabelSelector::everything()),
    };
    Ok((
        convert(&pods.namespace_selector, "namespaceSelector")?,
        convert(&pods.pod_selector, "podSelector")?,
    ))
}

fn admin_rule(
    rule: &RawAdminRule,
    admin: bool,
    egress: bool,
    ctx: &Ctx,
    path: &str,
) -> Result<AdminRule, LoadError> {
    let action = match (rule.action.as_str(), admin) {
        ("Allow", _) => AdminAction::Allow,
        ("Deny", _) => AdminAction::Deny,
        ("Pass", true) => AdminAction::Pass,
        (other, _) => {
            return Err(ctx.field(
                format!("{path}.action"),
                format!(
                    "unsupported action {other:?} (expected {})",
                    if admin {
                        "Allow, Deny or Pass"
                    } else {
                        "Allow or Deny"
                    }
                ),
            ))
        }
    };
    let (peers_field, peers) = if egress {
        ("to", &rule.to)
    } else {
        ("from", &rule.from)
    };
    let peers = peers.as_deref().unwrap_or_default();
    if peers.is_empty() || peers.len() > 100 {
        return Err(ctx.field(format!("{path}.{peers_field}"), "needs 1 to 100 peers"));
    }
    let mut out = Vec::new();
    for (i, peer) in peers.iter().enumerate() {
        let p = format!("{path}.{peers_field}[{i}]");
        let kinds = usize::from(peer.namespaces.is_some())
            + usize::from(peer.pods.is_some())
            + usize::from(peer.nodes.is_some())
            + usize::from(peer.networks.is_some());
        if kinds != 1 {
            return Err(ctx.field(
                &p,
                "exactly one of namespaces, pods, nodes or networks must be set",
            ));
        }
        if !egress && (peer.nodes.is_some() || peer.networks.is_some()) {
            return Err(ctx.field(&p, "nodes and networks peers are for egress rules only"));
        }
        out.push(if let Some(ns) = &peer.namespaces {
            AdminPeer::Pods {
                namespace_selector: selector(ns, ctx, &format!("{p}.namespaces"))?,
                pod_selector: LabelSelector::everything(),
            }
        } else if let Some(pods) = &peer.pods {
            let (namespace_selector, pod_selector) =
                namespaced_pod(pods, ctx, &format!("{p}.pods"))?;
            AdminPeer::Pods {
                namespace_selector,
                pod_selector,
            }
        } else if let Some(nodes) = &peer.nodes {
            AdminPeer::Nodes(selector(nodes, ctx, &format!("{p}.nodes"))?)
        } else {
            let mut nets = Vec::new();
            for (j, text) in peer.networks.iter().flatten().enumerate() {
                let net: IpNet = text.trim().parse().map_err(|_| {
                    ctx.field(
                        format!("{p}.networks[{j}]"),
                        format!("invalid CIDR {text:?}"),
                    )
                })?;
                // Host bits are masked, as for NetworkPolicy ipBlocks (ParseCIDRSloppy).
                nets.push(net.trunc());
            }
            if nets.is_empty() || nets.len() > 25 {
                return Err(ctx.field(format!("{p}.networks"), "needs 1 to 25 CIDRs"));
            }
            AdminPeer::Networks(nets)
        });
    }
    let mut ports = Vec::new();
    for (i, port) in rule.ports.iter().flatten().enumerate() {
        let p = format!("{path}.ports[{i}]");
        let kinds = usize::from(port.port_number.is_some())
            + usize::from(port.named_port.is_some())
            + usize::from(port.port_range.is_some());
        if kinds != 1 {
            return Err(ctx.field(
                &p,
                "exactly one of portNumber, namedPort or portRange must be set",
            ));
        }
        ports.push(if let Some(number) = &port.port_number {
            let protocol = parse_protocol(number.protocol.as_deref())
                .map_err(|m| ctx.field(format!("{p}.portNumber.protocol"), m))?;
            let n = port_number(number.port)
                .map_err(|m| ctx.field(format!("{p}.portNumber.port"), m))?;
            AdminPort::Range(protocol, PortRange::single(n).unwrap_or(PortRange::ALL))
        } else if let Some(range) = &port.port_range {
            let protocol = parse_protocol(range.protocol.as_deref())
                .map_err(|m| ctx.field(format!("{p}.portRange.protocol"), m))?;
            let start = port_number(range.start)
                .map_err(|m| ctx.field(format!("{p}.portRange.start"), m))?;
            let end =
                port_number(range.end).map_err(|m| ctx.field(format!("{p}.portRange.end"), m))?;
            if start >= end {
                return Err(ctx.field(
                    format!("{p}.portRange"),
                    format!("start ({start}) must be less than end ({end})"),
                ));
            }
            AdminPort::Range(
                protocol,
                PortRange::new(start, end).unwrap_or(PortRange::ALL),
            )
        } else {
            AdminPort::Named(port.named_port.clone().unwrap_or_default())
        });
    }
    if ports.len() > 100 {
        return Err(ctx.field(format!("{path}.ports"), "at most 100 ports"));
    }
    Ok(AdminRule {
        name: rule.name.clone().unwrap_or_default(),
        action,
        peers: out,
        ports,
    })
}

/// At most this many pods are made from one StatefulSet's template.
pub const MAX_STATEFUL_REPLICAS: i64 = 100;

fn duplicate(kind: &str, key: &str, origin: &Origin, first: &Origin) -> LoadError {
    LoadError {
        origin: origin.clone(),
        object: Some(format!("{kind} {key}")),
        field: Some("metadata.name".into()),
        message: format!("duplicate {kind} {key}: first defined at {first}"),
    }
}

fn namespace_of(meta: &Meta) -> String {
    meta.namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// The controlling owner, if it is a workload. Static (mirror) pods are owned by their Node,
/// which is not a workload: they stand alone, as netpol-analyzer reports them.
fn controller_owner(meta: &Meta) -> Option<(String, String)> {
    let owners: Vec<&OwnerReference> = meta
        .owner_references
        .iter()
        .flatten()
        .filter(|o| o.kind.as_deref() != Some("Node"))
        .collect();
    owners
        .iter()
        .find(|o| o.controller == Some(true))
        .or_else(|| owners.first())
        .copied()
        .map(|o| {
            (
                o.kind.clone().unwrap_or_else(|| "Pod".into()),
                o.name.clone(),
            )
        })
}

fn collect_manifest_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_manifest_files(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// Split multi-document YAML at `---` lines, keeping each document's 1-based start line.
fn split_yaml_documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end();
        let is_marker =
            bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t") || bare == "...";
        if is_marker {
            let doc = &text[start_byte..offset];
            if !doc.trim().is_empty() {
                docs.push((start_line, doc));
            }
            // `--- {inline: doc}` keeps its content on the marker line.
            if bare.starts_with("--- ") || bare.starts_with("---\t") {
                start_byte = offset + 3;
                start_line = index + 1;
            } else {
                start_byte = offset + line.len();
                start_line = index + 2;
            }
        }
        offset += line.len();
    }
    let doc = &text[start_byte..];
    if !doc.trim().is_empty() {
        docs.push((start_line, doc));
    }
    docs
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Deserialize with the failing field's path in the error.
fn typed<T: DeserializeOwned>(value: &Value, ctx: &Ctx) -> Result<T, LoadError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != ".").then_some(path);
        ctx.error(field, e.inner().to_string())
    })
}

fn checked_meta(meta: Meta, ctx: &Ctx, namespaced: bool) -> Result<Meta, LoadError> {
    match meta.name.as_deref() {
        None | Some("") => return Err(ctx.field("metadata.name", "missing or empty")),
        Some(name) => {
            if name.len() > 253 {
                return Err(ctx.field("metadata.name", "longer than 253 characters"));
            }
        }
    }
    if !namespaced && meta.namespace.is_some() {
        // Cluster-scoped objects may carry a stray namespace in hand-written YAML; ignore it.
    }
    if let Some(labels) = &meta.labels {
        check_labels(labels, ctx, "metadata.labels")?;
    }
    Ok(meta)
}

fn check_labels(labels: &BTreeMap<String, String>, ctx: &Ctx, path: &str) -> Result<(), LoadError> {
    for (key, value) in labels {
        validate_key(key)
            .and_then(|_| validate_value(value))
            .map_err(|m| ctx.field(format!("{path}.{key}"), m))?;
    }
    Ok(())
}

fn port_number(value: i64) -> Result<u16, String> {
    if (1..=65535).contains(&value) {
        Ok(value as u16)
    } else {
        Err(format!("port {value} is out of range (1-65535)"))
    }
}

fn parse_protocol(value: Option<&str>) -> Result<Protocol, String> {
    value.map_or(Ok(Protocol::Tcp), str::parse)
}

#[allow(clippy::too_many_arguments)]
fn pod_from_spec(
    namespace: &str,
    name: &str,
    labels: BTreeMap<String, String>,
    spec: &PodSpec,
    status: Option<&PodStatus>,
    workload: WorkloadRef,
    from_template: bool,
    ctx: &Ctx,
) -> Result<Pod, LoadError> {
    let prefix = if from_template {
        "spec.template.spec"
    } else {
        "spec"
    };
    let mut ports = Vec::new();
    let groups = [
        ("containers", Some(&spec.containers)),
        ("initContainers", spec.init_containers.as_ref()),
    ];
    for (group, containers) in groups {
        for (ci, container) in containers.into_iter().flatten().enumerate() {
            for (pi, port) in container.ports.iter().flatten().enumerate() {
                let field = |leaf: &str| format!("{prefix}.{group}[{ci}].ports[{pi}].{leaf}");
                // A missing containerPort deserializes as 0.
                let number = port_number(i64::from(port.container_port)).map_err(|_| {
                    ctx.field(
                        field("containerPort"),
                        format!(
                            "must be 1-65535, found {} (is it missing or misspelt?)",
                            port.container_port
                        ),
                    )
                })?;
                let protocol = parse_protocol(port.protocol.as_deref())
                    .map_err(|m| ctx.field(field("protocol"), m))?;
                ports.push(ContainerPort {
                    name: port.name.clone(),
                    port: number,
                    protocol,
                });
            }
        }
    }
    let probes = probe_ports(spec);
    let mut ips = Vec::new();
    if let Some(status) = status {
        if let Some(pod_ips) = &status.pod_ips {
            for (i, ip) in pod_ips.iter().enumerate() {
                let parsed: IpAddr = ip.ip.parse().map_err(|_| {
                    ctx.field(
                        format!("status.podIPs[{i}].ip"),
                        format!("invalid IP address {:?}", ip.ip),
                    )
                })?;
                if !ips.contains(&parsed) {
                    ips.push(parsed);
                }
            }
        }
        if let Some(ip) = status.pod_ip.as_deref().filter(|ip| !ip.is_empty()) {
            let parsed: IpAddr = ip
                .parse()
                .map_err(|_| ctx.field("status.podIP", format!("invalid IP address {ip:?}")))?;
            if !ips.contains(&parsed) {
                ips.insert(0, parsed);
            }
        }
    }
    Ok(Pod {
        namespace: namespace.to_string(),
        name: name.to_string(),
        labels: labels.into_iter().collect(),
        synthetic_ip: ips.is_empty(),
        ips,
        ports,
        probes,
        service_account: spec
            .service_account_name
            .clone()
            .or_else(|| spec.service_account.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into()),
        host_network: spec.host_network.unwrap_or(false),
        node: spec.node_name.clone(),
        workload,
        from_template,
        mesh_annotations: BTreeMap::new(),
        origin: ctx.origin.clone(),
    })
}

/// The ports the kubelet connects to for liveness, readiness and startup probes (`httpGet`,
/// `tcpSocket`, `grpc`; `exec` probes use no network). Named ports resolve against the
/// container's own ports, as the kubelet does (`findPortByName`); a name that resolves to
/// nothing cannot be probed and is left out.
fn probe_ports(spec: &PodSpec) -> Vec<ProbePort> {
    let mut out = Vec::new();
    for container in &spec.containers {
        let probes = [
            ("liveness", container.liveness_probe.as_ref()),
            ("readiness", container.readiness_probe.as_ref()),
            ("startup", container.startup_probe.as_ref()),
        ];
        for (kind, probe) in probes {
            let Some(probe) = probe else { continue };
            let port = if let Some(http) = &probe.http_get {
                Some(&http.port)
            } else {
                probe.tcp_socket.as_ref().map(|t| &t.port)
            };
            let number = match port {
                Some(IntOrString::Int(n)) => u16::try_from(*n).ok().filter(|&n| n > 0),
                Some(IntOrString::String(name)) => container
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(name.as_str()))
                    .and_then(|p| u16::try_from(p.container_port).ok()),
                None => probe
                    .grpc
                    .as_ref()
                    .and_then(|g| u16::try_from(g.port).ok())
                    .filter(|&n| n > 0),
            };
            if let Some(port) = number {
                out.push(ProbePort {
                    kind,
                    container: container.name.clone(),
                    port,
                });
            }
        }
    }
    out
}

/// Give every pod without an address a stable one in 100.64.0.0/10: FNV-1a of
/// `namespace/name`, probing forward past addresses already taken.
fn assign_synthetic_ips(pods: &mut [Pod]) {
    let mut taken: HashSet<IpAddr> = pods.iter().flat_map(|p| p.ips.iter().copied()).collect();
    for pod in pods.iter_mut().filter(|p| p.ips.is_empty()) {
        let mut hash: u32 = 0x811c_9dc5;
        for byte in pod.key().bytes() {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        let base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
        let size = 1u32 << 22;
        let mut offset = hash % size;
        loop {
            // Skip the network and broadcast-looking ends of each /24 for readability.
            let candidate = IpAddr::V4(Ipv4Addr::from(base + offset));
            let last_octet = offset & 0xff;
            if last_octet != 0 && last_octet != 255 && taken.insert(candidate) {
                pod.ips.push(candidate);
                break;
            }
            offset = (offset + 1) % size;
        }
    }
}

fn selector(
    selector: &K8sLabelSelector,
    ctx: &Ctx,
    path: &str,
) -> Result<LabelSelector, LoadError> {
    let expressions: Vec<(&str, &str, Vec<String>)> = selector
        .match_expressions
        .iter()
        .flatten()
        .map(|e| {
            (
                e.key.as_str(),
                e.operator.as_str(),
                e.values.clone().unwrap_or_default(),
            )
        })
        .collect();
    LabelSelector::from_parts(
        selector.match_labels.clone().unwrap_or_default(),
        expressions,
    )
    .map_err(|e| ctx.field(format!("{path}.{}", e.field), e.message))
}

/// `Ingress`/`Egress` values, de-duplicated, in the order given.
fn parse_policy_types(
    types: &[String],
    ctx: &Ctx,
    field: &str,
) -> Result<Vec<PolicyType>, LoadError> {
    let mut out = Vec::new();
    for (i, t) in types.iter().enumerate() {
        let parsed = match t.as_str() {
            "Ingress" => PolicyType::Ingress,
            "Egress" => PolicyType::Egress,
            other => {
                return Err(ctx.field(
                    format!("{field}[{i}]"),
                    format!("unsupported value {other:?} (expected Ingress or Egress)"),
                ))
            }
        };
        if !out.contains(&parsed) {
            out.push(parsed);
        }
    }
    Ok(out)
}

fn validate_network_policy(
    meta: Meta,
    spec: NetworkPolicySpec,
    ctx: &Ctx,
) -> Result<NetworkPolicy, LoadError> {
    let pod_selector = match &spec.pod_selector {
        Some(s) => selector(s, ctx, "spec.podSelector")?,
        None => LabelSelector::everything(),
    };
    let mut policy_types = Vec::new();
    let explicit = spec.policy_types.as_ref().is_some_and(|t| !t.is_empty());
    if let Some(types) = spec.policy_types.as_ref().filter(|t| !t.is_empty()) {
        if types.len() > 2 {
            return Err(ctx.field("spec.policyTypes", "may list at most Ingress and Egress"));
        }
        policy_types = parse_policy_types(types, ctx, "spec.policyTypes")?;
    } else {
        // API default: Ingress always; Egress iff there are egress rules.
        policy_types.push(PolicyType::Ingress);
        if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
            policy_types.push(PolicyType::Egress);
        }
    }
    let mut ports_without_protocol = Vec::new();
    for (direction, rules) in [
        (
            "ingress",
            spec.ingress
                .iter()
                .flatten()
                .map(|r| r.ports.as_deref())
                .collect::<Vec<_>>(),
        ),
        (
            "egress",
            spec.egress
                .iter()
                .flatten()
                .map(|r| r.ports.as_deref())
                .collect(),
        ),
    ] {
        for (i, ports) in rules.into_iter().enumerate() {
            for (j, port) in ports.into_iter().flatten().enumerate() {
                if port.protocol.is_none() {
                    ports_without_protocol.push(format!("spec.{direction}[{i}].ports[{j}]"));
                }
            }
        }
    }
    let mut ingress = Vec::new();
    for (i, rule) in spec.ingress.iter().flatten().enumerate() {
        let path = format!("spec.ingress[{i}]");
        ingress.push(validate_rule(
            rule.from.as_deref(),
            rule.ports.as_deref(),
            ctx,
            &path,
            "from",
        )?);
    }
    let mut egress = Vec::new();
    for (i, rule) in spec.egress.iter().flatten().enumerate() {
        let path = format!("spec.egress[{i}]");
        egress.push(validate_rule(
            rule.to.as_deref(),
            rule.ports.as_deref(),
            ctx,
            &path,
            "to",
        )?);
    }
    Ok(NetworkPolicy {
        annotations: meta.annotations.clone().unwrap_or_default(),
        namespace: namespace_of(&meta),
        name: meta.name.unwrap_or_default(),
        pod_selector,
        policy_types,
        policy_types_explicit: explicit,
        ports_without_protocol,
        ingress,
        egress,
        origin: ctx.origin.clone(),
    })
}

fn validate_rule(
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&[NetworkPolicyPort]>,
    ctx: &Ctx,
    path: &str,
    peers_name: &str,
) -> Result<NpRule, LoadError> {
    let mut rule = NpRule {
        peers: Vec::new(),
        ports: Vec::new(),
    };
    for (i, peer) in peers.into_iter().flatten().enumerate() {
        let path = format!("{path}.{peers_name}[{i}]");
        rule.peers.push(validate_peer(peer, ctx, &path)?);
    }
    for (i, port) in ports.into_iter().flatten().enumerate() {
        let path = format!("{path}.ports[{i}]");
        rule.ports.push(validate_port(port, ctx, &path)?);
    }
    Ok(rule)
}

fn validate_peer(peer: &NetworkPolicyPeer, ctx: &Ctx, path: &str) -> Result<NpPeer, LoadError> {
    let selectors =
        usize::from(peer.pod_selector.is_some()) + usize::from(peer.namespace_selector.is_some());
    if let Some(block) = &peer.ip_block {
        if selectors > 0 {
            return Err(ctx.field(
                path,
                "may not specify both ipBlock and another peer (podSelector/namespaceSelector)",
            ));
        }
        let cidr_path = format!("{path}.ipBlock.cidr");
        let cidr = parse_cidr(&block.cidr).map_err(|m| ctx.field(&cidr_path, m))?;
        let mut except = Vec::new();
        for (i, text) in block.except.iter().flatten().enumerate() {
            let except_path = format!("{path}.ipBlock.except[{i}]");
            let net = parse_cidr(text).map_err(|m| ctx.field(&except_path, m))?;
            if !(cidr.contains(&net) && net.prefix_len() > cidr.prefix_len()) {
                return Err(ctx.field(
                    except_path,
                    format!("{text} must be a strict subset of cidr {}", block.cidr),
                ));
            }
            except.push(net);
        }
        return Ok(NpPeer::IpBlock { cidr, except });
    }
    if selectors == 0 {
        return Err(ctx.field(
            path,
            "must specify a peer: podSelector, namespaceSelector or ipBlock",
        ));
    }
    let namespace_selector = peer
        .namespace_selector
        .as_ref()
        .map(|s| selector(s, ctx, &format!("{path}.namespaceSelector")))
        .transpose()?;
    let pod_selector = peer
        .pod_selector
        .as_ref()
        .map(|s| selector(s, ctx, &format!("{path}.podSelector")))
        .transpose()?
        .unwrap_or_else(LabelSelector::everything);
    Ok(NpPeer::Pods {
        namespace_selector,
        pod_selector,
    })
}

/// Parse a CIDR as the API server does (`ParseCIDRSloppy`: host bits allowed, then masked).
fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let net: IpNet = text.trim().parse().map_err(|_| {
        format!("invalid CIDR {text:?} (expected an address/prefix such as 10.0.0.0/8)")
    })?;
    Ok(net.trunc())
}

fn validate_port(port: &NetworkPolicyPort, ctx: &Ctx, path: &str) -> Result<NpPort, LoadError> {
    let protocol = parse_protocol(port.protocol.as_deref())
        .map_err(|m| ctx.field(format!("{path}.protocol"), m))?;
    let spec = match (&port.port, port.end_port) {
        (None, None) => NpPortSpec::All,
        (None, Some(_)) => {
            return Err(ctx.field(
                format!("{path}.endPort"),
                "may not be specified when port is not specified",
            ))
        }
        (Some(IntOrString::Int(n)), end) => {
            let first =
                port_number(i64::from(*n)).map_err(|m| ctx.field(format!("{path}.port"), m))?;
            let last = match end {
                None => first,
                Some(e) => {
                    let last = port_number(i64::from(e))
                        .map_err(|m| ctx.field(format!("{path}.endPort"), m))?;
                    if last < first {
                        return Err(ctx.field(
                            format!("{path}.endPort"),
                            format!(
                                "endPort ({last}) must be greater than or equal to port ({first})"
                            ),
                        ));
                    }
                    last
                }
            };
            NpPortSpec::Range(PortRange::new(first, last).unwrap_or(PortRange::ALL))
        }
        (Some(IntOrString::String(name)), end) => {
            if end.is_some() {
                return Err(ctx.field(
                    format!("{path}.endPort"),
                    "may not be specified when port is a named port",
                ));
            }
            validate_port_name(name).map_err(|m| ctx.field(format!("{path}.port"), m))?;
            NpPortSpec::Named(name.clone())
        }
    };
    Ok(NpPort {
        protocol,
        port: spec,
    })
}

/// A Go `time.ParseDuration` string as cert-manager reads `spec.duration` (`2160h`,
/// `8760h0m0s`, `90m`, `1h30m`), in whole seconds; units ns, us, µs, ms, s, m, h.
fn go_duration_seconds(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a duration like 2160h or 1h30m (units h, m, s, ms)");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if number_len == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        nanos += number * scale;
        rest = &rest[unit_len..];
    }
    Ok((nanos / 1e9) as u64)
}

/// `alb.ingress.kubernetes.io/listen-ports`: a JSON list of single-entry objects such as
/// `[{"HTTP": 80}, {"HTTPS": 443}]` (AWS Load Balancer Controller, "Ingress annotations").
fn parse_listen_ports(text: &str) -> Result<Vec<(String, u16)>, String> {
    let entries: Vec<BTreeMap<String, u16>> = serde_json::from_str(text).map_err(|e| {
        format!("expected a JSON list like [{{\"HTTPS\": 443}}], got {text:?}: {e}")
    })?;
    let mut out = Vec::new();
    for entry in entries {
        for (protocol, port) in entry {
            if protocol != "HTTP" && protocol != "HTTPS" {
                return Err(format!(
                    "listener protocol {protocol:?} is not HTTP or HTTPS"
                ));
            }
            if port == 0 {
                return Err("listener port 0 is not a valid port".into());
            }
            out.push((protocol, port));
        }
    }
    Ok(out)
}

/// IANA service name syntax (apimachinery `validation.IsValidPortName`).
fn validate_port_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let ok = !name.is_empty()
        && name.len() <= 15
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.iter().any(|b| b.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid port name {name:?}: a named port is 1-15 lowercase letters, digits and '-', \
             with at least one letter (a number must not be quoted)"
        ))
    }
}

#[cfg(test)]
mod tests {
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
}
