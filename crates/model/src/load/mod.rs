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
    self, CalicoPolicy, CalicoRule, CalicoScope, EntityRule, NetworkSet, ServiceAccountMatch,
    ServiceMatch, Tier, TierDefault,
};
use crate::error::{LoadError, LoadErrors, Origin};
use crate::files::Found;
use crate::inventory::{
    mesh_annotations, CertIssuer, Certificate, ContainerPort, Ingress, Inventory, IstioMeshConfig,
    MtlsMode, Namespace, Node, PeerAuthentication, Pod, ProbePort, RbacBinding, RbacRole, RbacRule,
    Service, ServiceAccount, VpcCni, WorkloadRef, NAMESPACE_NAME_LABEL,
};
use crate::net::{PortRange, Protocol};
use crate::parse;
use crate::policy::{NetworkPolicy, NpPeer, NpPort, NpPortSpec, NpRule, PolicyType};
use crate::strict;
use networking::*;
use projectcalico::*;
use workloads::*;

mod cert_manager;
mod change;
mod cilium;
pub use change::{Change, ChangeKind, ObjectKey, ObjectKind};
mod kinds;
pub use kinds::{read_kinds, ReadKind};
mod link;
mod mesh;
mod network_policy_api;
mod networking;
mod parallel;
mod projectcalico;
mod rbac;
mod relink;
pub use relink::LinkPatch;
#[cfg(test)]
mod tests;
mod vpcresources;
mod workloads;
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

/// Places of workload objects by namespace.
type WorkloadIndex = crate::net::FastMap<String, Vec<usize>>;

/// Places of loaded pods by namespace, then name (the first of each name).
type PodIndex = crate::net::FastMap<String, crate::net::FastMap<String, usize>>;

/// Accumulates objects from any number of inputs, then builds an [`Inventory`].
#[derive(Clone, Default)]
pub struct Loader {
    namespaces: Vec<(Meta, Origin)>,
    /// Pods converted at load time (their workload resolved in `finish`), with their
    /// controlling owner; keeping the raw specs of 100k pods would cost gigabytes.
    pods: Vec<(Pod, Option<(String, String)>)>,
    workloads: Vec<WorkloadObject>,
    /// The places in `workloads` of each namespace's workload objects (by either reading of
    /// an object's namespace that linking uses), for the relink ([`Loader::link_patch`]):
    /// built on first use or by [`Loader::index_workloads`], shared between clones, and
    /// dropped (replaced by an empty one) wherever `workloads` changes.
    workloads_by_namespace: std::sync::Arc<std::sync::OnceLock<WorkloadIndex>>,
    /// The places in `pods` by (namespace, name), for the relink and [`Loader::commit`]
    /// (a linear search read 100k pods' names per change): built on first use or by
    /// [`Loader::index_workloads`], shared between clones, kept up to date by `commit` when
    /// this loader holds it alone, and dropped wherever else `pods` changes.
    pods_by_name: std::sync::Arc<std::sync::OnceLock<PodIndex>>,
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
    cilium_policies: Vec<crate::cilium::CiliumPolicy>,
    network_sets: Vec<NetworkSet>,
    tiers: Vec<Tier>,
    warnings: Vec<String>,
    skipped: BTreeMap<String, usize>,
    errors: Vec<LoadError>,
    /// Paths given to [`Loader::load_path`], and documents that held anything: none found in
    /// the inputs given is an error, so that a CI gate never passes on an empty input.
    inputs_given: Vec<String>,
    documents_read: usize,
    /// `-n`: the namespace of namespaced objects that name none (else `default`).
    default_namespace: Option<String>,
    /// `--lenient`: invalid objects become warnings and are left out.
    lenient: bool,
    /// `--cni`: the CNI, instead of the one detected from the input.
    cni: Option<crate::cilium::Cni>,
    /// Threads to load a large input on (0: one per core); see [`Loader::set_threads`].
    threads: usize,
    /// Parse every YAML document with libyaml; see [`Loader::set_fast_yaml`].
    libyaml_only: bool,
}

#[derive(Clone)]
struct WorkloadObject {
    kind: String,
    replicas: Option<i64>,
    /// `spec.selector`: the pods the workload's controller owns or adopts.
    selector: Option<LabelSelector>,
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

/// Context for errors about one document or list item.
#[derive(Clone)]
struct Ctx {
    origin: Origin,
    object: Option<String>,
    /// The namespace of namespaced objects that name none (`-n`; `default` when unset).
    default_namespace: Option<String>,
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

impl Loader {
    /// An empty loader.
    pub fn new() -> Self {
        Loader::default()
    }

    /// Put namespaced objects that name no namespace into `namespace` instead of `default`,
    /// as `kubectl apply -n` does with Helm or kustomize output.
    pub fn set_default_namespace(&mut self, namespace: &str) {
        self.default_namespace = Some(namespace.to_string());
    }

    /// Evaluate as `cni` enforces policy (`--cni`), whatever the input's DaemonSets say.
    pub fn set_cni(&mut self, cni: crate::cilium::Cni) {
        self.cni = Some(cni);
    }

    /// Report invalid objects (and malformed documents) as warnings and leave them out,
    /// instead of failing; for large dumps where a few objects do not validate. Files that
    /// cannot be read, and inputs without any manifest, stay errors.
    pub fn set_lenient(&mut self, lenient: bool) {
        self.lenient = lenient;
    }

    /// Load a file, or every `*.yaml|*.yml|*.json` below a directory (sorted, recursive), or
    /// stdin when `path` is `-`.
    ///
    /// A path given here is followed even when it is a symbolic link, a FIFO or a device
    /// (`-f <(kubectl get …)`). Inside a directory, hidden entries are skipped (a ConfigMap
    /// mounted as a volume keeps every file twice, under `..data` and `..2024_…`), symbolic
    /// links to directories are not followed (two links to `.` would loop forever), and
    /// FIFOs, sockets and devices are skipped with a warning. Inputs larger than
    /// [`parse::MAX_INPUT_BYTES`] are refused before they are read.
    pub fn load_path(&mut self, path: &Path) {
        let display = path.display().to_string();
        self.inputs_given.push(match display.as_str() {
            "-" => "<stdin>".to_string(),
            _ => display.clone(),
        });
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() && display != "-" => {
                let mut files = Vec::new();
                self.collect_manifest_files(path, &mut files);
                files.sort();
                self.load_files(&files);
            }
            _ => self.load_file(path),
        }
    }

    fn load_file(&mut self, path: &Path) {
        let name = match path.as_os_str() == "-" {
            true => "<stdin>".to_string(),
            false => path.display().to_string(),
        };
        match parse::read_input(path) {
            Ok(text) => self.load_str(&name, &text),
            Err(message) => self.io_error(&name, &message),
        }
    }

    /// Load `files` (regular files, not stdin) in order. With more than one thread and more
    /// than one file, the next file is read, checked to be UTF-8 and cut into documents on a
    /// second thread while this one loads the file before it: at 100k pods, doing that for
    /// 55 MB held up the loading threads for about a tenth of a second. At most one file is
    /// read ahead.
    fn load_files(&mut self, files: &[std::path::PathBuf]) {
        if files.len() < 2 || self.threads_for(true) < 2 {
            for file in files {
                self.load_file(file);
            }
            return;
        }
        let (send, receive) = std::sync::mpsc::sync_channel(0);
        std::thread::scope(|scope| {
            scope.spawn(move || {
                for file in files {
                    let name = file.display().to_string();
                    let read = parse::read_input(file).map(|text| {
                        let split = yaml_split(&name, &text);
                        (text, split)
                    });
                    if send.send(read).is_err() {
                        return;
                    }
                }
            });
            for (file, read) in files.iter().zip(receive) {
                let name = file.display().to_string();
                match read {
                    Ok((text, split)) => self.load_text(&name, &text, split),
                    Err(message) => self.io_error(&name, &message),
                }
            }
        });
    }

    /// Every manifest file below `dir`, by the rules of [`Loader::load_path`].
    fn collect_manifest_files(&mut self, dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        crate::files::walk(dir, &mut |found| {
            match found {
            Found::File(path) => {
                if matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                ) {
                    out.push(path);
                }
            }
            Found::LinkToDirectory(path) => self.warnings.push(format!(
                "{}: a symbolic link to a directory; not followed (name the directory with -f to load it)",
                path.display()
            )),
            Found::NotRegular(path) => self.warnings.push(format!(
                "{}: not a regular file (a FIFO, socket or device); skipped",
                path.display()
            )),
            Found::BrokenLink(path, e) | Found::Unreadable(path, e) => {
                self.io_error(&path.display().to_string(), &e.to_string())
            }
        }
        });
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
        self.load_text(file, text, None);
    }

    /// [`Loader::load_str`], given the YAML documents' (first line, byte range in the text
    /// after its byte order mark) when [`yaml_split`] found them already.
    fn load_text(&mut self, file: &str, text: &str, split: Option<DocumentRanges>) {
        let trimmed = text.trim_start_matches('\u{feff}');
        let first = trimmed.trim_start().chars().next();
        if is_json(file, trimmed) {
            let origin = Origin {
                file: file.to_string(),
                document: 1,
                line: 1,
                item: None,
            };
            // A large `kubectl get -o json` list is parsed item by item on every core.
            let threads = self.threads_for(trimmed.len() >= parallel::MIN_BYTES);
            if threads > 1
                && first == Some('{')
                && self.load_json_list_streamed(trimmed, &origin, threads)
            {
                return;
            }
            let parsed = match threads {
                threads if threads > 1 => parse::json_list(trimmed, threads).map(Ok),
                _ => None,
            };
            match parsed.unwrap_or_else(|| parse::json(trimmed)) {
                Ok(Value::Array(items)) => {
                    let load = |loader: &mut Loader, i: usize, item: &Value| {
                        let origin = Origin {
                            item: Some(i),
                            ..origin.clone()
                        };
                        loader.load_object(item, origin);
                    };
                    match self.threads_for(items.len() >= parallel::MIN_ITEMS) {
                        threads if threads > 1 => {
                            self.load_in_parallel(&items, threads, |_| 1, load)
                        }
                        _ => {
                            for (i, item) in items.iter().enumerate() {
                                load(self, i, item);
                            }
                        }
                    }
                }
                Ok(value) => self.load_object(&value, origin),
                Err(e) => self.errors.push(LoadError {
                    origin: Origin {
                        line: e.line.unwrap_or(1),
                        ..origin
                    },
                    object: None,
                    field: None,
                    message: format!("malformed JSON {e}"),
                }),
            }
            return;
        }
        let documents = match split {
            Some(ranges) => ranges
                .into_iter()
                .map(|(line, range)| (line, &trimmed[range]))
                .collect(),
            None => split_yaml_documents(trimmed),
        };
        match self.threads_for(trimmed.len() >= parallel::MIN_BYTES) {
            threads if threads > 1 && documents.len() > 1 => self.load_in_parallel(
                &documents,
                threads,
                |document| document.1.len(),
                |loader, index, document| loader.load_yaml_document(file, index, document),
            ),
            _ => {
                for (index, document) in documents.iter().enumerate() {
                    self.load_yaml_document(file, index, document);
                }
            }
        }
    }

    /// Load the YAML document `(first line, text)` at 0-based `index` of `file`.
    fn load_yaml_document(&mut self, file: &str, index: usize, &(line, doc): &(usize, &str)) {
        let origin = Origin {
            file: file.to_string(),
            document: index + 1,
            line,
            item: None,
        };
        let parsed = match self.libyaml_only {
            true => parse::yaml_document_libyaml(doc),
            false => parse::yaml_document(doc),
        };
        match parsed {
            Ok(value) => self.load_object(&value, origin),
            Err(e) => {
                let err_line = line + e.line.unwrap_or(1) - 1;
                let at = match e.column {
                    Some(column) => format!("at line {err_line} column {column}"),
                    None => format!("at line {err_line}"),
                };
                self.errors.push(LoadError {
                    origin,
                    object: None,
                    field: None,
                    message: format!("malformed YAML {at}: {}", e.message),
                })
            }
        }
    }

    /// Load one object that is already parsed (a live-cluster client's watch events, say):
    /// the same dispatch, validation and error reporting as for a document read from a file.
    /// `origin` names where it came from (`file` may be any label, such as `<cluster>`). A
    /// `kind: List` is unpacked; `null` is ignored.
    pub fn load_object(&mut self, value: &Value, origin: Origin) {
        if !value.is_null() {
            self.documents_read += 1;
        }
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
            default_namespace: self.default_namespace.clone(),
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
                    let load = |loader: &mut Loader, i: usize, item: &Value| {
                        let origin = Origin {
                            item: Some(i),
                            ..ctx.origin.clone()
                        };
                        loader.load_value_in(item, origin, defaults);
                    };
                    match self.threads_for(items.len() >= parallel::MIN_ITEMS) {
                        threads if threads > 1 => {
                            self.load_in_parallel(items, threads, |_| 1, load)
                        }
                        _ => {
                            for (i, item) in items.iter().enumerate() {
                                load(self, i, item);
                            }
                        }
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
        let type_ref = kinds::TypeRef {
            group,
            kind,
            api_version,
        };
        self.load_typed(value, ctx, &type_ref);
    }

    /// Load one object whose group and kind are known: check its version against the kinds
    /// table, its fields against the strict shapes, then hand it to its kind's loader.
    fn load_typed(&mut self, value: &Value, ctx: Ctx, type_ref: &kinds::TypeRef<'_>) {
        let kinds::TypeRef {
            group,
            kind,
            api_version,
        } = *type_ref;
        let Some((entry, versions)) = kinds::lookup(group, kind) else {
            let key = if api_version.is_empty() {
                kind.to_string()
            } else {
                format!("{api_version}/{kind}")
            };
            *self.skipped.entry(key).or_default() += 1;
            return;
        };
        let metadata = value.get("metadata");
        let name = metadata
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("<unnamed>");
        let ctx = Ctx {
            object: Some(
                match metadata
                    .and_then(|m| m.get("namespace"))
                    .and_then(Value::as_str)
                {
                    Some(ns) => format!("{kind} {ns}/{name}"),
                    None => format!("{kind} {name}"),
                },
            ),
            ..ctx
        };
        // A missing apiVersion is read as the current one (hand-written fixtures omit it).
        let version = api_version.rsplit_once('/').map_or(api_version, |(_, v)| v);
        if !version.is_empty() && !versions.contains(&version) {
            let read: Vec<String> = versions
                .iter()
                .map(|v| match group {
                    "" => v.to_string(),
                    group => format!("{group}/{v}"),
                })
                .collect();
            self.errors.push(ctx.field(
                "apiVersion",
                format!(
                    "unknown version {api_version:?} of {kind}: netfence reads {}, and will not guess that another version means the same",
                    read.join(", ")
                ),
            ));
            return;
        }
        if let Some(shape) = strict::shape_for(group, kind) {
            if let Err(unknown) = strict::check(value, shape) {
                self.errors.push(ctx.field(unknown.path, unknown.message));
                return;
            }
        }
        if let Err(error) = (entry.load)(self, value, &ctx, type_ref) {
            self.errors.push(error);
        }
    }
}

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

/// A file's YAML documents as (first line, byte range in the text after the byte order mark).
type DocumentRanges = Vec<(usize, std::ops::Range<usize>)>;

/// Whether [`Loader::load_str`] reads `trimmed` (a file's text after its byte order mark) as
/// JSON: a `[`, or a `{` in a `.json` file.
fn is_json(file: &str, trimmed: &str) -> bool {
    let first = trimmed.trim_start().chars().next();
    matches!(first, Some('{') | Some('[')) && file.ends_with(".json") || first == Some('[')
}

/// The documents [`Loader::load_str`] would cut the text of `file` into, as ranges (so they
/// can be found on another thread than the one that loads them); `None` for JSON.
fn yaml_split(file: &str, text: &str) -> Option<DocumentRanges> {
    let trimmed = text.trim_start_matches('\u{feff}');
    if is_json(file, trimmed) {
        return None;
    }
    let start = trimmed.as_ptr() as usize;
    Some(
        split_yaml_documents(trimmed)
            .into_iter()
            .map(|(line, doc)| {
                let at = doc.as_ptr() as usize - start;
                (line, at..at + doc.len())
            })
            .collect(),
    )
}

/// Split multi-document YAML at `---` lines, keeping each document's 1-based start line.
pub(crate) fn split_yaml_documents(text: &str) -> Vec<(usize, &str)> {
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

/// An object decoded by [`decode`]: its checked metadata, spec and status.
struct Decoded<S, T = serde::de::IgnoredAny> {
    meta: Meta,
    spec: Option<S>,
    status: Option<T>,
}

/// The prologue every kind shares, written once: decode the object with field paths, then
/// check its metadata as the API server does (name, labels) and give a namespaced object
/// without a namespace the default one (`-n`, else `default`).
fn decode<S: DeserializeOwned, T: DeserializeOwned>(
    value: &Value,
    ctx: &Ctx,
    namespaced: bool,
) -> Result<Decoded<S, T>, LoadError> {
    let object: Object<S, T> = typed(value, ctx)?;
    Ok(Decoded {
        meta: checked_meta(object.metadata, ctx, namespaced)?,
        spec: object.spec,
        status: object.status,
    })
}

/// The spec of a kind that needs one (`what`: "a NetworkPolicy").
fn required_spec<S>(spec: Option<S>, ctx: &Ctx, what: &str) -> Result<S, LoadError> {
    spec.ok_or_else(|| ctx.field("spec", format!("missing: {what} needs a spec")))
}

/// Deserialize with the failing field's path in the error. Tracking the path costs a fifth
/// of the decoding, so it is done only when decoding fails: the second, tracked decoding of
/// the same value fails the same way.
fn typed<T: DeserializeOwned>(value: &Value, ctx: &Ctx) -> Result<T, LoadError> {
    if let Ok(decoded) = T::deserialize(value) {
        return Ok(decoded);
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != ".").then_some(path);
        ctx.error(field, e.inner().to_string())
    })
}

fn checked_meta(mut meta: Meta, ctx: &Ctx, namespaced: bool) -> Result<Meta, LoadError> {
    if namespaced && meta.namespace.as_deref().is_none_or(str::is_empty) {
        meta.namespace.clone_from(&ctx.default_namespace);
    }
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
