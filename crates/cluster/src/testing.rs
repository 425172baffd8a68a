//! An in-process Kubernetes API server for tests and benches, speaking the real wire
//! protocol so that kube-rs and kubectl both work against it: HTTPS with a self-signed CA
//! (rustls, rcgen), bearer-token authentication (401 without it), legacy discovery (`/api`,
//! `/apis`, `/api/v1`, `/apis/<group>[/<version>]`, `/version`), lists with `limit` and
//! `continue` and `resourceVersion`, single-object gets, and watch streams (chunked JSON
//! lines of ADDED/MODIFIED/DELETED/BOOKMARK events, `allowWatchBookmarks`,
//! `timeoutSeconds`). Tests script it: [`TestServer::apply`], [`TestServer::delete`] and
//! [`TestServer::expire`] (a compaction: watches from older resource versions end with an
//! `ERROR` event carrying a 410 Status, and such lists and continue tokens get 410 Gone).
//!
//! Semantics follow the API conventions (kubernetes/community
//! `contributors/devel/sig-architecture/api-conventions.md`, "Concurrency Control and
//! Consistency", "Watch bookmarks", "Efficient detection of changes") and the apiserver's
//! `staging/src/k8s.io/apiserver/pkg/storage` behaviour. Deliberate simplifications: later
//! pages of a paged list show the current objects after the continue key, not a snapshot;
//! label and field selectors are refused (400) rather than evaluated; only GET is served.

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

/// A resource the server serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resource {
    /// API group (`""` for core).
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Resource name in paths.
    pub plural: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
}

const fn resource(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
) -> Resource {
    Resource {
        group,
        version,
        plural,
        kind,
        namespaced,
        short_names,
    }
}

/// The built-in resources of a Kubernetes API server that netfence reads (as of 1.34).
pub static BUILTIN: &[Resource] = &[
    resource("", "v1", "namespaces", "Namespace", false, &["ns"]),
    resource("", "v1", "pods", "Pod", true, &["po"]),
    resource("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"]),
    resource("", "v1", "services", "Service", true, &["svc"]),
    resource("", "v1", "nodes", "Node", false, &["no"]),
    resource("", "v1", "configmaps", "ConfigMap", true, &["cm"]),
    resource(
        "",
        "v1",
        "replicationcontrollers",
        "ReplicationController",
        true,
        &["rc"],
    ),
    resource("apps", "v1", "deployments", "Deployment", true, &["deploy"]),
    resource("apps", "v1", "statefulsets", "StatefulSet", true, &["sts"]),
    resource("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"]),
    resource("apps", "v1", "replicasets", "ReplicaSet", true, &["rs"]),
    resource("batch", "v1", "jobs", "Job", true, &[]),
    resource("batch", "v1", "cronjobs", "CronJob", true, &["cj"]),
    resource(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
        &["netpol"],
    ),
    resource(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Ingress",
        true,
        &["ing"],
    ),
    resource(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "Role",
        true,
        &[],
    ),
    resource(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
        &[],
    ),
    resource(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        &[],
    ),
    resource(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
    ),
];

/// Resources that CRDs add (served only when the test installs their group).
pub static CRDS: &[Resource] = &[
    resource(
        "policy.networking.k8s.io",
        "v1alpha1",
        "adminnetworkpolicies",
        "AdminNetworkPolicy",
        false,
        &["anp"],
    ),
    resource(
        "policy.networking.k8s.io",
        "v1alpha1",
        "baselineadminnetworkpolicies",
        "BaselineAdminNetworkPolicy",
        false,
        &["banp"],
    ),
    resource(
        "projectcalico.org",
        "v3",
        "networkpolicies",
        "NetworkPolicy",
        true,
        &["cnp"],
    ),
    resource(
        "projectcalico.org",
        "v3",
        "globalnetworkpolicies",
        "GlobalNetworkPolicy",
        false,
        &["gnp"],
    ),
    resource(
        "projectcalico.org",
        "v3",
        "networksets",
        "NetworkSet",
        true,
        &[],
    ),
    resource(
        "projectcalico.org",
        "v3",
        "globalnetworksets",
        "GlobalNetworkSet",
        false,
        &[],
    ),
    resource("projectcalico.org", "v3", "tiers", "Tier", false, &[]),
];

/// [`BUILTIN`] and the [`CRDS`] of `groups`.
pub fn resources_with(groups: &[&str]) -> Vec<Resource> {
    BUILTIN
        .iter()
        .chain(CRDS.iter().filter(|r| groups.contains(&r.group)))
        .copied()
        .collect()
}

impl Resource {
    fn api_version(&self) -> String {
        match self.group {
            "" => self.version.to_string(),
            group => format!("{group}/{}", self.version),
        }
    }
}

/// Events kept before the oldest are compacted away (etcd's compaction, in miniature).
const HISTORY: usize = 20_000;

/// One stored change.
struct Event {
    rv: u64,
    resource: usize,
    namespace: String,
    kind: &'static str,
    object: Value,
}

struct State {
    resources: Vec<Resource>,
    /// Per resource: (namespace, name) → object (without kind/apiVersion, as list items).
    objects: Vec<BTreeMap<(String, String), Value>>,
    rv: u64,
    /// Events at or below this resourceVersion are gone.
    compacted: u64,
    history: std::collections::VecDeque<Event>,
    /// Bumped by [`TestServer::expire`]: open watches end with 410.
    generation: u64,
    requests: Vec<String>,
    watchers: usize,
    uid: u64,
}

struct Shared {
    state: Mutex<State>,
    changed: tokio::sync::watch::Sender<u64>,
    token: String,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves the state as it was: go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The server; stops when dropped.
pub struct TestServer {
    shared: Arc<Shared>,
    port: u16,
    ca_pem: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

type Body = BoxBody<Bytes, Infallible>;

/// Why the server could not start or a scripted change was refused.
#[derive(Debug, thiserror::Error)]
pub enum TestServerError {
    /// Socket or runtime.
    #[error("test API server: {0}")]
    Io(#[from] std::io::Error),
    /// Certificates.
    #[error("test API server certificates: {0}")]
    Tls(String),
    /// A scripted object the server cannot store.
    #[error("test API server: {0}")]
    Object(String),
}

impl TestServer {
    /// Start serving `resources` on 127.0.0.1 (a free port) over TLS.
    pub fn start(resources: Vec<Resource>) -> Result<TestServer, TestServerError> {
        let (config, ca_pem) = tls_config()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let token = format!("netfence-test-{:x}", nanos ^ u128::from(std::process::id()));
        let objects = vec![BTreeMap::new(); resources.len()];
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                resources,
                objects,
                rv: 1,
                compacted: 0,
                history: Default::default(),
                generation: 0,
                requests: Vec::new(),
                watchers: 0,
                uid: 0,
            }),
            changed: tokio::sync::watch::Sender::new(1),
            token,
        });
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        runtime.spawn(serve(listener, acceptor, Arc::clone(&shared)));
        Ok(TestServer {
            shared,
            port,
            ca_pem,
            runtime: Some(runtime),
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The bearer token the server accepts.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The CA certificate (PEM) that signed the server's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Write `ca.crt` and `kubeconfig` into `dir`; returns the kubeconfig's path. Contexts:
    /// `netfence-test` (current, with the token) and `wrong-token` (a token the server refuses:
    /// 401).
    pub fn write_kubeconfig(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let ca = dir.join("ca.crt");
        std::fs::write(&ca, &self.ca_pem)?;
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: netfence-test\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: netfence-test\n  user:\n    token: {token}\n- name: wrong-token\n  user:\n    token: not-the-token\ncontexts:\n- name: netfence-test\n  context:\n    cluster: netfence-test\n    user: netfence-test\n- name: wrong-token\n  context:\n    cluster: netfence-test\n    user: wrong-token\ncurrent-context: netfence-test\n",
            server = self.url(),
            ca = ca.display(),
            token = self.token(),
        );
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Create or replace `object` (it names its `apiVersion`, `kind` and `metadata.name`;
    /// a namespaced object without a namespace goes to `default`), as ADDED or MODIFIED.
    /// Returns its new resourceVersion.
    pub fn apply(&self, object: &Value) -> Result<u64, TestServerError> {
        let mut state = self.shared.lock();
        let (index, namespace, name) = state.locate(object)?;
        let mut object = object.clone();
        let rv = state.rv + 1;
        let exists = state.objects[index].contains_key(&(namespace.clone(), name.clone()));
        state.uid += 1;
        let uid = format!("00000000-0000-4000-8000-{:012x}", state.uid);
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert("resourceVersion".into(), json!(rv.to_string()));
            if state.resources[index].namespaced {
                metadata.insert("namespace".into(), json!(namespace));
            }
            metadata.entry("uid").or_insert(json!(uid));
            metadata
                .entry("creationTimestamp")
                .or_insert(json!("2026-01-01T00:00:00Z"));
        }
        if let Some(map) = object.as_object_mut() {
            map.remove("apiVersion");
            map.remove("kind");
        }
        let kind = if exists { "MODIFIED" } else { "ADDED" };
        state.objects[index].insert((namespace.clone(), name), object.clone());
        state.record(index, namespace, kind, object);
        drop(state);
        self.shared.changed.send_replace(rv);
        Ok(rv)
    }

    /// Delete an object by `apiVersion`, `kind`, namespace and name (a DELETED event with
    /// its last state). Returns whether it existed.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> bool {
        let reference = json!({"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": namespace}});
        let mut state = self.shared.lock();
        let Ok((index, namespace, name)) = state.locate(&reference) else {
            return false;
        };
        let Some(mut object) = state.objects[index].remove(&(namespace.clone(), name)) else {
            return false;
        };
        let rv = state.rv + 1;
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        state.record(index, namespace, "DELETED", object);
        drop(state);
        self.shared.changed.send_replace(rv);
        true
    }

    /// Compact the history: lists and watches from any resourceVersion before now get 410
    /// Gone, and every open watch ends with an `ERROR` event (code 410), as after an etcd
    /// compaction that outran them.
    pub fn expire(&self) {
        let mut state = self.shared.lock();
        state.compacted = state.rv;
        state.history.clear();
        state.generation += 1;
        let rv = state.rv;
        drop(state);
        self.shared.changed.send_replace(rv);
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// Every request so far, as `GET /path?query` (authenticated or not).
    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    /// Open watch streams.
    pub fn watchers(&self) -> usize {
        self.shared.lock().watchers
    }

    /// Wait (up to `timeout`) until at least `count` watch streams are open.
    pub fn wait_for_watchers(&self, count: usize, timeout: Duration) -> bool {
        let end = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < end {
            if self.watchers() >= count {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl State {
    /// The resource, namespace and name `object` names.
    fn locate(&self, object: &Value) -> Result<(usize, String, String), TestServerError> {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
        let api_version = text(object.get("apiVersion"));
        let kind = text(object.get("kind"));
        let metadata = object.get("metadata");
        let name = text(metadata.and_then(|m| m.get("name")));
        if name.is_empty() {
            return Err(TestServerError::Object(format!(
                "{kind} without metadata.name"
            )));
        }
        let index = self
            .resources
            .iter()
            .position(|r| r.api_version() == api_version && r.kind == kind)
            .ok_or_else(|| {
                TestServerError::Object(format!("{api_version} {kind} is not served"))
            })?;
        let namespace = match self.resources[index].namespaced {
            true => match text(metadata.and_then(|m| m.get("namespace"))) {
                ns if ns.is_empty() => "default".to_string(),
                ns => ns,
            },
            false => String::new(),
        };
        Ok((index, namespace, name))
    }

    fn record(&mut self, resource: usize, namespace: String, kind: &'static str, object: Value) {
        self.rv += 1;
        self.history.push_back(Event {
            rv: self.rv,
            resource,
            namespace,
            kind,
            object,
        });
        while self.history.len() > HISTORY {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
    }
}

/// A self-signed CA and a server certificate for 127.0.0.1 and localhost, signed by it.
fn tls_config() -> Result<(rustls::ServerConfig, String), TestServerError> {
    let tls = |e: rcgen::Error| TestServerError::Tls(e.to_string());
    let ca_key = rcgen::KeyPair::generate().map_err(tls)?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "netfence test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(tls)?;
    let key = rcgen::KeyPair::generate().map_err(tls)?;
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .map_err(tls)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kube-apiserver");
    let cert = params.signed_by(&key, &ca).map_err(tls)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TestServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .map_err(|e| TestServerError::Tls(e.to_string()))?;
    // HTTP/1.1 only: watch streams are chunked responses.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, ca.pem()))
}

async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
) {
    while let Ok((tcp, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(handle(&shared, request)) }
            });
            // A client that goes away mid-stream is normal (a watch being cancelled).
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        });
    }
}

fn full(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// A `Status` object, as the apiserver returns for failures.
fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code})
}

fn failure(code: u16, reason: &str, message: &str) -> Response<Body> {
    full(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &status(code, reason, message),
    )
}

fn handle(shared: &Arc<Shared>, request: Request<Incoming>) -> Response<Body> {
    let uri = request.uri().clone();
    shared
        .lock()
        .requests
        .push(format!("{} {uri}", request.method()));
    let authorized = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {}", shared.token));
    if !authorized {
        return failure(401, "Unauthorized", "Unauthorized");
    }
    if request.method() != hyper::Method::GET {
        return failure(405, "MethodNotAllowed", "the test server only serves GET");
    }
    let query: HashMap<String, String> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect();
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let state = shared.lock();
    match segments.as_slice() {
        ["version"] => full(StatusCode::OK, &version()),
        ["api"] => full(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ),
        ["apis"] => full(StatusCode::OK, &api_groups(&state.resources)),
        ["apis", group] => match api_groups(&state.resources)["groups"]
            .as_array()
            .and_then(|g| g.iter().find(|g| g["name"] == *group))
        {
            Some(found) => {
                let mut found = found.clone();
                found["kind"] = json!("APIGroup");
                found["apiVersion"] = json!("v1");
                full(StatusCode::OK, &found)
            }
            None => failure(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        },
        ["api", version] => resource_list(&state.resources, "", version),
        ["apis", group, version] => resource_list(&state.resources, group, version),
        ["api", version, rest @ ..] => {
            drop(state);
            objects(shared, "", version, rest, &query)
        }
        ["apis", group, version, rest @ ..] => {
            drop(state);
            objects(shared, group, version, rest, &query)
        }
        _ => failure(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

/// Percent-decoding of a query component (`+` is a space in forms; kubectl escapes it).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' => match (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            ) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn version() -> Value {
    json!({"major": "1", "minor": "34", "gitVersion": "v1.34.0-netfence-test",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc",
        "platform": "linux/amd64"})
}

fn api_groups(resources: &[Resource]) -> Value {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in resources.iter().filter(|r| !r.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
            Some(_) => {}
            None => groups.push((r.group, vec![r.version])),
        }
    }
    let groups: Vec<Value> = groups
        .iter()
        .map(|(name, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                .collect();
            json!({"name": name, "versions": versions, "preferredVersion": versions[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(resources: &[Resource], group: &str, version: &str) -> Response<Body> {
    let served: Vec<Value> = resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            json!({"name": r.plural, "singularName": r.kind.to_ascii_lowercase(),
                "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "list", "watch"],
                "shortNames": r.short_names})
        })
        .collect();
    if served.is_empty() {
        return failure(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    let group_version = match group {
        "" => version.to_string(),
        group => format!("{group}/{version}"),
    };
    full(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": served}),
    )
}

/// Lists, gets and watches under `/api/<version>/…` or `/apis/<group>/<version>/…`.
fn objects(
    shared: &Arc<Shared>,
    group: &str,
    version: &str,
    rest: &[&str],
    query: &HashMap<String, String>,
) -> Response<Body> {
    let (namespace, plural, name) = match rest {
        ["namespaces", ns, plural] => (Some(*ns), *plural, None),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
        [plural] => (None, *plural, None),
        [plural, name] => (None, *plural, Some(*name)),
        _ => {
            return failure(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        }
    };
    let state = shared.lock();
    let Some(index) = state
        .resources
        .iter()
        .position(|r| r.group == group && r.version == version && r.plural == plural)
    else {
        return failure(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    let resource = state.resources[index];
    if namespace.is_some() && !resource.namespaced {
        return failure(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    for refused in ["labelSelector", "fieldSelector"] {
        if query.get(refused).is_some_and(|v| !v.is_empty()) {
            return failure(
                400,
                "BadRequest",
                &format!("the test server does not evaluate {refused}"),
            );
        }
    }
    if let Some(name) = name {
        let key = (namespace.unwrap_or_default().to_string(), name.to_string());
        return match state.objects[index].get(&key) {
            Some(object) => full(StatusCode::OK, &typed(object, &resource)),
            None => failure(
                404,
                "NotFound",
                &format!("{}{} \"{name}\" not found", resource.plural, dotted(group)),
            ),
        };
    }
    let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    if watching {
        drop(state);
        return watch(shared, index, namespace.map(str::to_string), query);
    }
    list(&state, index, namespace, query)
}

fn dotted(group: &str) -> String {
    match group {
        "" => String::new(),
        group => format!(".{group}"),
    }
}

fn typed(object: &Value, resource: &Resource) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        let mut typed = Map::new();
        typed.insert("apiVersion".into(), json!(resource.api_version()));
        typed.insert("kind".into(), json!(resource.kind));
        typed.append(map);
        *map = typed;
    }
    object
}

fn parse_rv(text: &str) -> Option<u64> {
    text.parse().ok()
}

fn list(
    state: &State,
    index: usize,
    namespace: Option<&str>,
    query: &HashMap<String, String>,
) -> Response<Body> {
    let resource = state.resources[index];
    let requested = query.get("resourceVersion").and_then(|rv| parse_rv(rv));
    let exact = query.get("resourceVersionMatch").map(String::as_str) == Some("Exact");
    if let Some(rv) = requested.filter(|rv| exact && *rv > 0 && *rv <= state.compacted) {
        return failure(
            410,
            "Expired",
            &format!("too old resource version: {rv} ({})", state.compacted),
        );
    }
    // Continue tokens: `<list resourceVersion>|<namespace>|<name>` of the last item sent.
    let (list_rv, after) = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let parts: Vec<&str> = token.splitn(3, '|').collect();
            match (
                parts.first().and_then(|rv| parse_rv(rv)),
                parts.get(1),
                parts.get(2),
            ) {
                (Some(rv), Some(ns), Some(name)) => {
                    if rv <= state.compacted {
                        return failure(410, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.");
                    }
                    (rv, Some((ns.to_string(), name.to_string())))
                }
                _ => return failure(400, "BadRequest", "continue key is not valid"),
            }
        }
        None => (state.rv, None),
    };
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let mut matching = state.objects[index]
        .iter()
        .filter(|((ns, _), _)| namespace.is_none_or(|want| ns == want))
        .filter(|(key, _)| after.as_ref().is_none_or(|after| *key > after));
    let items: Vec<Value> = matching
        .by_ref()
        .take(limit)
        .map(|(_, o)| o.clone())
        .collect();
    let remaining = matching.count();
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if remaining > 0 {
        let last = items.last().and_then(|o| o.get("metadata"));
        let field = |f: &str| {
            last.and_then(|m| m.get(f))
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        metadata["continue"] = json!(format!(
            "{list_rv}|{}|{}",
            field("namespace"),
            field("name")
        ));
        metadata["remainingItemCount"] = json!(remaining);
    }
    full(
        StatusCode::OK,
        &json!({"kind": format!("{}List", resource.kind), "apiVersion": resource.api_version(),
            "metadata": metadata, "items": items}),
    )
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// A watch: the events after the requested resourceVersion (all current objects as ADDED
/// when none or `0` is given), then each new one as it happens, with bookmarks when allowed,
/// until `timeoutSeconds`, the client leaves, or a compaction (410).
fn watch(
    shared: &Arc<Shared>,
    index: usize,
    namespace: Option<String>,
    query: &HashMap<String, String>,
) -> Response<Body> {
    let bookmarks = matches!(
        query.get("allowWatchBookmarks").map(String::as_str),
        Some("true" | "1")
    );
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let requested = query.get("resourceVersion").cloned().unwrap_or_default();
    let (sender, receiver) = mpsc::channel::<Bytes>(256);
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let mut changed = shared.changed.subscribe();
        let (resource, generation, mut from, initial) = {
            let mut state = shared.lock();
            state.watchers += 1;
            let resource = state.resources[index];
            let in_namespace = |ns: &String| namespace.as_ref().is_none_or(|want| ns == want);
            let start = match requested.as_str() {
                "" | "0" => Ok(None),
                rv => match parse_rv(rv) {
                    Some(rv) if rv >= state.compacted && rv <= state.rv => Ok(Some(rv)),
                    Some(rv) if rv > state.rv => Err(status(
                        504,
                        "Timeout",
                        &format!("Too large resource version: {rv}, current: {}", state.rv),
                    )),
                    Some(rv) => Err(status(
                        410,
                        "Expired",
                        &format!("too old resource version: {rv} ({})", state.compacted),
                    )),
                    None => Err(status(400, "BadRequest", "resourceVersion is not a number")),
                },
            };
            let initial: Vec<Bytes> = match &start {
                Ok(None) => state.objects[index]
                    .iter()
                    .filter(|((ns, _), _)| in_namespace(ns))
                    .map(|(_, o)| event_line("ADDED", &typed(o, &resource)))
                    .collect(),
                Ok(Some(_)) => Vec::new(),
                Err(error) => vec![event_line("ERROR", error)],
            };
            let from = match start {
                Ok(Some(rv)) => Some(rv),
                Ok(None) => Some(state.rv),
                Err(_) => None,
            };
            (resource, state.generation, from, initial)
        };
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ok = true;
        for line in initial {
            ok &= sender.send(line).await.is_ok();
        }
        while let (true, Some(position)) = (ok, from) {
            let (lines, next, expired) = {
                let state = shared.lock();
                let expired = state.generation != generation || position < state.compacted;
                let lines: Vec<Bytes> = state
                    .history
                    .iter()
                    .filter(|e| e.rv > position && e.resource == index)
                    .filter(|e| namespace.as_ref().is_none_or(|want| &e.namespace == want))
                    .map(|e| event_line(e.kind, &typed(&e.object, &resource)))
                    .collect();
                (lines, state.rv, expired)
            };
            if expired {
                let gone = status(
                    410,
                    "Expired",
                    &format!("too old resource version: {position}"),
                );
                let _ = sender.send(event_line("ERROR", &gone)).await;
                break;
            }
            let quiet = lines.is_empty();
            for line in lines {
                ok &= sender.send(line).await.is_ok();
            }
            if bookmarks && quiet && next > position {
                let bookmark = json!({"kind": resource.kind, "apiVersion": resource.api_version(),
                    "metadata": {"resourceVersion": next.to_string()}});
                ok &= sender.send(event_line("BOOKMARK", &bookmark)).await.is_ok();
            }
            from = Some(next);
            let sleep = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = changed.changed() => ok &= result.is_ok(),
                () = sleep => break,
                () = sender.closed() => break,
            }
        }
        shared.lock().watchers -= 1;
    });
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        let line = receiver.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(line)), receiver))
    });
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
