//! The inventory: every namespace, pod, workload, service and policy of one cluster, indexed.
//!
//! Invariants: every pod's namespace exists in `namespaces` (declared or implicit), and every
//! namespace carries `kubernetes.io/metadata.name`; pods are sorted by (namespace, name) and
//! every pod has at least one address (real, or synthetic from [`SYNTHETIC_IPV4_RANGE`]).

use crate::admin::AdminPolicy;
use crate::calico::{CalicoPolicy, NetworkSet, Tier};
use crate::error::Origin;
use crate::net::Protocol;
use crate::policy::NetworkPolicy;
use netfence_selector::Labels;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

/// The label every namespace carries (Kubernetes ≥ 1.21, `NamespaceDefaultLabelName`).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Pods without a `status.podIP` get a stable address from this range (RFC 6598 shared
/// address space, which clusters rarely use for pods), derived from a hash of `namespace/name`.
pub const SYNTHETIC_IPV4_RANGE: &str = "100.64.0.0/10";

/// A namespace with its labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    /// Name.
    pub name: String,
    /// Labels, always including `kubernetes.io/metadata.name`.
    pub labels: Labels,
    /// Annotations (`netfence.io/ignore` suppresses audit findings).
    pub annotations: BTreeMap<String, String>,
    /// False when the namespace was only referenced, never declared.
    pub declared: bool,
    /// Where it was declared.
    pub origin: Option<Origin>,
}

/// A named container port, for named-port resolution and default matrix ports.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerPort {
    /// `name`, if any.
    pub name: Option<String>,
    /// `containerPort`.
    pub port: u16,
    /// `protocol` (TCP by default).
    pub protocol: Protocol,
}

/// The Amazon VPC CNI settings the audit reads (env of the aws-node container).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpcCni {
    /// `POD_SECURITY_GROUP_ENFORCING_MODE` (`strict`, the default, or `standard`).
    pub pod_security_group_enforcing_mode: Option<String>,
    /// Where the DaemonSet was read from.
    pub origin: Origin,
}

/// Istio's mesh config, as far as the audit needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IstioMeshConfig {
    /// Namespace of the ConfigMap (istiod's).
    pub namespace: String,
    /// ConfigMap name (`istio`, or `istio-<rev>`).
    pub name: String,
    /// `rootNamespace` of the mesh config (default: the ConfigMap's namespace).
    pub root_namespace: String,
    /// Where it was read from.
    pub origin: Origin,
}

/// A port the kubelet connects to for a probe (always TCP: `httpGet`, `tcpSocket`, `grpc`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbePort {
    /// `liveness`, `readiness` or `startup`.
    pub kind: &'static str,
    /// Container name.
    pub container: String,
    /// Port number (named ports resolved).
    pub port: u16,
}

/// The workload that owns a pod (`ns/name[Kind]` in connection lists).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadRef {
    /// `Deployment`, `StatefulSet`, …, or `Pod` for a bare pod.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}[{}]", self.namespace, self.name, self.kind)
    }
}

pub use crate::pod_id::{PodId, PodRange};

/// An edit of the pod list that the address index follows ([`Inventory::edit_addresses`]).
pub(crate) enum AddressEdit {
    /// The pod at this id was replaced by this one (its addresses or the flags that keep
    /// addresses out of the index changed).
    Replaced(PodId, Arc<Pod>),
    /// This pod was inserted at this id (the pods from there on moved up by one).
    Inserted(PodId, Arc<Pod>),
    /// The pod at this id was removed (the pods after it moved down by one).
    Removed(PodId),
}

/// A pod, live or derived from a workload template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: Labels,
    /// Addresses: `status.podIPs` (or `podIP`), else one synthetic IPv4 address.
    pub ips: Vec<IpAddr>,
    /// True when `ips` is synthetic: an unknown address matches no `ipBlock`.
    pub synthetic_ip: bool,
    /// Every container port (containers and init containers).
    pub ports: Vec<ContainerPort>,
    /// The TCP ports the kubelet probes (liveness, readiness, startup).
    pub probes: Vec<ProbePort>,
    /// `spec.serviceAccountName` (`default` when absent).
    pub service_account: String,
    /// `spec.hostNetwork`: such pods are not subject to pod network policy.
    pub host_network: bool,
    /// `spec.nodeName`, when scheduled.
    pub node: Option<String>,
    /// The top-level owning workload, or the pod itself.
    pub workload: WorkloadRef,
    /// True when the pod was made from a workload template, not read from the input.
    pub from_template: bool,
    /// The pod's (or template's) annotations the audit reads: keys under `linkerd.io/`,
    /// `config.linkerd.io/`, `sidecar.istio.io/` and `netfence.io/`. Other annotations are not
    /// kept (memory at 100k pods).
    pub mesh_annotations: BTreeMap<String, String>,
    /// Where it was read from.
    pub origin: Origin,
}

/// Annotation prefixes kept in [`Pod::mesh_annotations`].
pub const MESH_ANNOTATION_PREFIXES: [&str; 4] = [
    "linkerd.io/",
    "config.linkerd.io/",
    "sidecar.istio.io/",
    "netfence.io/",
];

/// The mesh annotations among `annotations`.
pub fn mesh_annotations(
    annotations: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    annotations
        .into_iter()
        .flatten()
        .filter(|(k, _)| MESH_ANNOTATION_PREFIXES.iter().any(|p| k.starts_with(p)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Istio `PeerAuthentication` mTLS mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MtlsMode {
    /// Inherit from the parent scope.
    Unset,
    /// Plain text only.
    Disable,
    /// Plain text and mTLS.
    Permissive,
    /// mTLS only.
    Strict,
}

impl std::fmt::Display for MtlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MtlsMode::Unset => "UNSET",
            MtlsMode::Disable => "DISABLE",
            MtlsMode::Permissive => "PERMISSIVE",
            MtlsMode::Strict => "STRICT",
        })
    }
}

/// A cert-manager issuer: `Issuer`/`ClusterIssuer` (cert-manager.io) or
/// `AWSPCAIssuer`/`AWSPCAClusterIssuer` (awspca.cert-manager.io).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertIssuer {
    /// API group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace (`None` for cluster issuers).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// The issuer type: the spec key of a cert-manager issuer (`selfSigned`, `ca`, `acme`,
    /// `vault`, `venafi`), or `awspca`.
    pub issuer_type: String,
    /// AWS PCA: `spec.arn`.
    pub arn: Option<String>,
    /// AWS PCA: `spec.region`.
    pub region: Option<String>,
    /// AWS PCA: `spec.secretRef` (static access keys) is set.
    pub static_credentials: bool,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Where it was read from.
    pub origin: Origin,
}

/// A cert-manager `Certificate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.issuerRef`: group (default `cert-manager.io`), kind (default `Issuer`), name.
    pub issuer_ref: (String, String, String),
    /// `spec.isCA`.
    pub is_ca: bool,
    /// `spec.duration` in seconds (cert-manager's default is 90 days when absent).
    pub duration_seconds: Option<u64>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Where it was read from.
    pub origin: Origin,
}

/// One rule of an RBAC Role or ClusterRole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RbacRule {
    /// `apiGroups`.
    pub api_groups: Vec<String>,
    /// `resources`.
    pub resources: Vec<String>,
    /// `verbs`.
    pub verbs: Vec<String>,
    /// `resourceNames` (empty: every object).
    pub resource_names: Vec<String>,
}

/// An RBAC Role (namespaced) or ClusterRole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RbacRole {
    /// `Role` or `ClusterRole`.
    pub kind: String,
    /// Namespace of a Role.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Labels (aggregated ClusterRoles are chosen by them).
    pub labels: Labels,
    /// `aggregationRule.clusterRoleSelectors` of a ClusterRole: its rules also include those of
    /// every ClusterRole these select.
    pub aggregation: Vec<netfence_selector::LabelSelector>,
    /// `rules`.
    pub rules: Vec<RbacRule>,
}

/// An RBAC RoleBinding or ClusterRoleBinding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RbacBinding {
    /// `RoleBinding` or `ClusterRoleBinding`.
    pub kind: String,
    /// Namespace of a RoleBinding.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// `roleRef`: kind and name.
    pub role_ref: (String, String),
    /// `subjects`: kind, name, namespace.
    pub subjects: Vec<(String, String, Option<String>)>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Where it was read from.
    pub origin: Origin,
}

/// An Istio `PeerAuthentication` (security.istio.io).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAuthentication {
    /// Namespace (the root namespace, `istio-system`, makes it mesh-wide when it has no
    /// selector).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.selector.matchLabels`; `None` applies to the whole namespace.
    pub selector: Option<Labels>,
    /// `spec.mtls.mode` (`UNSET` when absent).
    pub mode: MtlsMode,
    /// `spec.portLevelMtls`: port and mode.
    pub port_modes: Vec<(u16, MtlsMode)>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Where it was read from.
    pub origin: Origin,
}

impl Service {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether `pod` backs this Service: the Service has a selector, the pod is in the
    /// Service's namespace and carries every label of the selector (the EndpointSlice
    /// controller's rule). Pods with a synthetic address count: netfence takes them to be
    /// running with an address it does not know.
    pub fn selects(&self, pod: &Pod) -> bool {
        !self.selector.is_empty()
            && pod.namespace == self.namespace
            && self
                .selector
                .iter()
                .all(|(key, value)| pod.labels.get(key) == Some(value))
    }
}

impl Pod {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Resolve a named port against this pod's container ports (same name and protocol).
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name) && p.protocol == protocol)
            .map(|p| p.port)
    }
}

/// A ServiceAccount and its labels (Calico selects on them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccount {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: Labels,
}

/// Where a Service port sends traffic on a backend pod (`spec.ports[].targetPort`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetPort {
    /// A port number (also the default: `targetPort` absent means the Service `port`).
    Number(u16),
    /// A named container port, resolved on each backend pod.
    Named(String),
}

/// One entry of a Service's `spec.ports`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServicePort {
    /// `name`, if any.
    pub name: Option<String>,
    /// `port`: what clients connect to on the cluster IP.
    pub port: u16,
    /// `protocol` (TCP by default).
    pub protocol: Protocol,
    /// `targetPort`: where the connection lands on a backend pod.
    pub target: TargetPort,
}

impl ServicePort {
    /// The port this Service port forwards to on `pod`: the number, or the pod's container
    /// port with that name and this protocol. The EndpointSlice controller resolves a named
    /// `targetPort` pod by pod (kubernetes `pkg/api/v1/pod.FindPort`), so backends may differ;
    /// `None` when the pod declares no such port (it is then no endpoint for this port).
    pub fn target_on(&self, pod: &Pod) -> Option<u16> {
        match &self.target {
            TargetPort::Number(n) => Some(*n),
            TargetPort::Named(name) => pod.named_port(name, self.protocol),
        }
    }
}

/// A Service: kept for the audit, for Calico `services` rules and for queries through a
/// Service's cluster IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.type` (`ClusterIP` by default).
    pub service_type: String,
    /// `spec.selector` (empty: the Service has no selector and its endpoints are managed by
    /// hand, which netfence cannot see).
    pub selector: Labels,
    /// `spec.ports`.
    pub ports: Vec<ServicePort>,
    /// `spec.clusterIPs` (or `spec.clusterIP`); empty for a headless Service (`None`) or when
    /// the input does not say.
    pub cluster_ips: Vec<IpAddr>,
    /// Annotations (TLS settings of AWS load balancers live here).
    pub annotations: BTreeMap<String, String>,
    /// Where it was read from.
    pub origin: Origin,
}

/// An Ingress (kept for the audit: TLS at the ingress controller or the ALB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ingress {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.ingressClassName`, or the legacy `kubernetes.io/ingress.class` annotation.
    pub class: Option<String>,
    /// Hosts of `spec.tls` entries; `tls_entries` counts the entries themselves.
    pub tls_hosts: Vec<String>,
    /// Number of `spec.tls` entries.
    pub tls_entries: usize,
    /// Hosts of `spec.rules`.
    pub rule_hosts: Vec<String>,
    /// `alb.ingress.kubernetes.io/listen-ports`, parsed: `(protocol, port)` pairs such as
    /// `("HTTPS", 443)`; `None` when the annotation is absent.
    pub listen_ports: Option<Vec<(String, u16)>>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Where it was read from.
    pub origin: Origin,
}

impl Ingress {
    /// Whether the AWS Load Balancer Controller serves it (class `alb`).
    pub fn is_alb(&self) -> bool {
        self.class.as_deref() == Some("alb")
    }
}

/// A Node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: Labels,
    /// `status.addresses` that parse as IP addresses.
    pub addresses: Vec<IpAddr>,
    /// Those of type `InternalIP` (the kubelet's source address for probes).
    pub internal_addresses: Vec<IpAddr>,
}

/// Everything loaded from the input, ready to compile.
///
/// Invariants, kept behind private fields: pods are sorted by (namespace, name), which every
/// [`PodId`] and the binary searches of [`Inventory::pod_by_key`] and [`Inventory::pods_in`]
/// rely on; every namespace that a pod, policy, Service, SecurityGroupPolicy or
/// ServiceAccount names exists, with its `kubernetes.io/metadata.name` label. Only the loader
/// builds an inventory; [`Inventory::update_pods`] changes pods and restores both invariants.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    /// Namespaces by name. Shared between clones until one of them changes (an incremental
    /// update's inventory and the one it came from).
    pub(crate) namespaces: Arc<BTreeMap<String, Namespace>>,
    /// Pods sorted by (namespace, name); the list is shared between clones like `namespaces`,
    /// and each pod is shared on its own: a patch that changes one pod copies pointers, not
    /// pods, and an unchanged pod is known unchanged by [`Arc::ptr_eq`].
    pub(crate) pods: Arc<Vec<Arc<Pod>>>,
    /// Real pod addresses (not synthetic, not host-network) sorted by (address, pod id):
    /// [`Inventory::pod_by_ip`] in O(log n). Rebuilt by `establish_invariants`.
    pub(crate) by_address: Arc<Vec<(IpAddr, PodId)>>,
    /// Where each namespace's pods start ([`Inventory::namespace_starts`]). Rebuilt by
    /// `establish_invariants` and whenever a patch moves pod ids.
    pub(crate) namespace_starts: Arc<Vec<PodId>>,
    /// Service accounts.
    pub service_accounts: Vec<ServiceAccount>,
    /// Services (shared between clones: an incremental update's inventory and the one it
    /// came from; change them with [`Arc::make_mut`]).
    pub services: Arc<Vec<Service>>,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Ingresses.
    pub ingresses: Vec<Ingress>,
    /// Istio PeerAuthentications.
    pub peer_authentications: Vec<PeerAuthentication>,
    /// Istio mesh configs (the `istio` ConfigMaps), for the root namespace.
    pub istio_mesh_configs: Vec<IstioMeshConfig>,
    /// The Amazon VPC CNI's settings, when its DaemonSet (kube-system/aws-node) is in the input.
    pub vpc_cni: Option<VpcCni>,
    /// cert-manager issuers (including AWS PCA issuers).
    pub cert_issuers: Vec<CertIssuer>,
    /// cert-manager Certificates.
    pub certificates: Vec<Certificate>,
    /// RBAC Roles and ClusterRoles.
    pub rbac_roles: Vec<RbacRole>,
    /// RBAC RoleBindings and ClusterRoleBindings.
    pub rbac_bindings: Vec<RbacBinding>,
    /// `SecurityGroupPolicy` objects (security groups for pods).
    pub security_group_policies: Vec<crate::aws::SecurityGroupPolicy>,
    /// Kubernetes NetworkPolicies, sorted by (namespace, name). The list and each policy are
    /// shared between clones like the pods (change them with [`Arc::make_mut`]): a patch of
    /// one policy copies pointers, and an unchanged policy is known by [`Arc::ptr_eq`].
    pub network_policies: Arc<Vec<Arc<NetworkPolicy>>>,
    /// AdminNetworkPolicies (priority set) and the BaselineAdminNetworkPolicy (no priority),
    /// sorted by priority then name.
    pub admin_policies: Vec<AdminPolicy>,
    /// Calico NetworkPolicies and GlobalNetworkPolicies.
    pub calico_policies: Vec<CalicoPolicy>,
    /// Cilium rules (one per `spec`/`specs` item of CiliumNetworkPolicies and
    /// CiliumClusterwideNetworkPolicies), sorted by (kind, namespace, name, spec index).
    pub cilium_policies: Vec<crate::cilium::CiliumPolicy>,
    /// The CNI that enforces policy: detected from its DaemonSet, or set by `--cni`.
    pub cni: crate::cilium::CniSetting,
    /// Calico NetworkSets and GlobalNetworkSets.
    pub network_sets: Vec<NetworkSet>,
    /// Calico Tiers.
    pub tiers: Vec<Tier>,
    /// Objects of kinds netfence does not read, counted by `apiVersion/kind`.
    pub skipped_kinds: BTreeMap<String, usize>,
    /// Things that load but that netfence cannot fully evaluate (e.g. Calico `http` matches).
    pub warnings: Vec<String>,
}

/// The pods of an inventory with its address index ([`Inventory::pods_by_address`]).
#[derive(Clone, Debug, Default)]
pub struct PodsByAddress {
    pods: Arc<Vec<Arc<Pod>>>,
    by_address: Arc<Vec<(IpAddr, PodId)>>,
}

impl PodsByAddress {
    /// The pod that owns an address, as [`Inventory::pod_by_ip`] finds it.
    pub fn pod(&self, ip: IpAddr) -> Option<&Pod> {
        id_by_ip(&self.by_address, ip).map(|id| &*self.pods[id])
    }
}

/// A binary search of an address index: the first pod (by id) with address `ip`.
fn id_by_ip(by_address: &[(IpAddr, PodId)], ip: IpAddr) -> Option<PodId> {
    let first = by_address.partition_point(|(address, _)| *address < ip);
    by_address
        .get(first)
        .filter(|(address, _)| *address == ip)
        .map(|(_, id)| *id)
}

impl Inventory {
    /// The pods, sorted by (namespace, name); a [`PodId`] is an index here. Each pod is an
    /// [`Arc`] shared with the inventories cloned from this one until one of them replaces
    /// it: the same pointer means the same pod.
    pub fn pods(&self) -> &[Arc<Pod>] {
        &self.pods
    }

    /// Whether this inventory and `other` share their pods (one was cloned from the other
    /// and neither changed its pods since): then their pods are equal, id for id.
    pub fn shares_pods(&self, other: &Inventory) -> bool {
        Arc::ptr_eq(&self.pods, &other.pods)
    }

    /// Whether this inventory and `other` share their namespaces, as [`Inventory::shares_pods`].
    pub fn shares_namespaces(&self, other: &Inventory) -> bool {
        Arc::ptr_eq(&self.namespaces, &other.namespaces)
    }

    /// The namespaces by name: every one that an object names, declared or not.
    pub fn namespaces(&self) -> &BTreeMap<String, Namespace> {
        &self.namespaces
    }

    /// Change the pods (a test that clears `hostNetwork`, a harness that assigns addresses),
    /// then restore the invariants: pods sorted again, namespaces added for any new one. Pod
    /// ids given out before may name other pods afterwards.
    pub fn update_pods(&mut self, change: impl FnOnce(&mut Vec<Pod>)) {
        // Every pod copied out and back: this is for tests and harnesses, not updates.
        let mut pods: Vec<Pod> = self.pods.iter().map(|pod| Pod::clone(pod)).collect();
        change(&mut pods);
        self.pods = Arc::new(pods.into_iter().map(Arc::new).collect());
        self.establish_invariants();
    }

    /// Replace a namespace's labels (a relabel seen by a watch, a test's mutation); the
    /// automatic `kubernetes.io/metadata.name` label is kept. False when there is no such
    /// namespace.
    pub fn relabel_namespace(&mut self, namespace: &str, labels: Labels) -> bool {
        if !self.namespaces.contains_key(namespace) {
            return false;
        }
        let Some(found) = Arc::make_mut(&mut self.namespaces).get_mut(namespace) else {
            return false;
        };
        found.labels = labels;
        found
            .labels
            .insert(NAMESPACE_NAME_LABEL.into(), namespace.to_string());
        true
    }

    /// Sort the pods by (namespace, name) and add, with the automatic name label, every
    /// namespace that a pod, policy, Service, SecurityGroupPolicy, ServiceAccount or namespaced
    /// Calico policy names but the input does not declare.
    pub(crate) fn establish_invariants(&mut self) {
        self.sort_pods();
        self.add_named_namespaces();
        self.index_addresses();
        self.index_namespaces();
    }

    /// Rebuild [`Inventory::namespace_starts`] from the (sorted) pods: galloping over each
    /// namespace's run, about `2 log k` name comparisons for a namespace of `k` pods.
    pub(crate) fn index_namespaces(&mut self) {
        let pods = &self.pods;
        let mut starts = Vec::new();
        let mut start = 0;
        while start < pods.len() {
            starts.push(PodId::new(start));
            let name = pods[start].namespace.as_str();
            let (mut low, mut step) = (start + 1, 1);
            let high = loop {
                let probe = start + step;
                if probe >= pods.len() || pods[probe].namespace != name {
                    break probe.min(pods.len());
                }
                low = probe + 1;
                step *= 2;
            };
            start = low + pods[low..high].partition_point(|pod| pod.namespace == name);
        }
        self.namespace_starts = Arc::new(starts);
    }

    /// Follow `edits` of the pod list (in the order they were made) in the address index,
    /// without reading the other pods: the ids after an inserted or removed pod move by one,
    /// the changed pod's entries go and its new ones are placed by binary search. The same
    /// index as [`Inventory::index_addresses`] builds from the pods (a debug assertion checks
    /// it); more than a few edits rebuild it.
    pub(crate) fn edit_addresses(&mut self, edits: &[AddressEdit]) {
        /// Past this many edits, one sort of every address costs less than the passes.
        const MOST_EDITS: usize = 16;
        if edits.len() > MOST_EDITS {
            self.index_addresses();
            return;
        }
        let index = Arc::make_mut(&mut self.by_address);
        let add = |index: &mut Vec<(IpAddr, PodId)>, at: PodId, pod: &Pod| {
            if pod.synthetic_ip || pod.host_network {
                return;
            }
            for &ip in &pod.ips {
                let place = index.binary_search(&(ip, at)).unwrap_or_else(|place| place);
                index.insert(place, (ip, at));
            }
        };
        for edit in edits {
            match edit {
                AddressEdit::Replaced(at, pod) => {
                    index.retain(|entry| entry.1 != *at);
                    add(index, *at, pod);
                }
                AddressEdit::Inserted(at, pod) => {
                    for entry in index.iter_mut().filter(|entry| entry.1 >= *at) {
                        entry.1 = entry.1.plus(1);
                    }
                    add(index, *at, pod);
                }
                AddressEdit::Removed(at) => {
                    index.retain(|entry| entry.1 != *at);
                    for entry in index.iter_mut().filter(|entry| entry.1 > *at) {
                        entry.1 = PodId::new(entry.1.index() - 1);
                    }
                }
            }
        }
        #[cfg(debug_assertions)]
        {
            let edited = Arc::clone(&self.by_address);
            self.index_addresses();
            debug_assert!(
                *edited == *self.by_address,
                "the edited address index differs from one built from the pods"
            );
        }
    }

    /// Rebuild the address index from the pods.
    pub(crate) fn index_addresses(&mut self) {
        let mut by_address: Vec<(IpAddr, PodId)> = self
            .pods
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.synthetic_ip && !p.host_network)
            .flat_map(|(id, p)| p.ips.iter().map(move |ip| (*ip, PodId::new(id))))
            .collect();
        by_address.sort_unstable();
        self.by_address = Arc::new(by_address);
    }

    fn sort_pods(&mut self) {
        if !self
            .pods
            .is_sorted_by(|a, b| (&a.namespace, &a.name) <= (&b.namespace, &b.name))
        {
            Arc::make_mut(&mut self.pods)
                .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        }
    }

    fn add_named_namespaces(&mut self) {
        // Only the names not declared are collected: at 100k pods, cloning every referenced
        // name to look it up cost more than the lookups.
        let known = &self.namespaces;
        let missing: Vec<String> = self
            .pods
            .iter()
            .map(|p| p.namespace.as_str())
            .chain(self.network_policies.iter().map(|p| p.namespace.as_str()))
            .chain(self.services.iter().map(|s| s.namespace.as_str()))
            .chain(
                self.security_group_policies
                    .iter()
                    .map(|s| s.namespace.as_str()),
            )
            .chain(self.service_accounts.iter().map(|s| s.namespace.as_str()))
            .chain(
                self.cilium_policies
                    .iter()
                    .filter_map(|p| p.namespace.as_deref()),
            )
            .chain(self.calico_policies.iter().filter_map(|p| match &p.scope {
                crate::calico::CalicoScope::Namespace(ns) => Some(ns.as_str()),
                crate::calico::CalicoScope::Global { .. } => None,
            }))
            .filter(|name| !known.contains_key(*name))
            .map(str::to_string)
            .collect();
        if missing.is_empty() {
            return;
        }
        let namespaces = Arc::make_mut(&mut self.namespaces);
        for name in missing {
            namespaces.entry(name.clone()).or_insert_with(|| Namespace {
                labels: Labels::from([(NAMESPACE_NAME_LABEL.to_string(), name.clone())]),
                name,
                annotations: BTreeMap::new(),
                declared: false,
                origin: None,
            });
        }
    }

    /// Where each namespace's pods start: ascending pod ids, one per namespace that has pods,
    /// in name order (pods are sorted by namespace), so the pods of the `k`-th are
    /// `starts[k]..starts[k + 1]` (the last up to the number of pods). Shared between clones
    /// while no pod id moves: a consumer numbers pods' namespaces without reading their names.
    pub fn namespace_starts(&self) -> &[PodId] {
        &self.namespace_starts
    }

    /// Find a pod by `namespace/name`.
    pub fn pod_by_key(&self, namespace: &str, name: &str) -> Option<PodId> {
        self.pods
            .binary_search_by(|p| (p.namespace.as_str(), p.name.as_str()).cmp(&(namespace, name)))
            .ok()
            .map(PodId::new)
    }

    /// The ids of the pods of one namespace (pods are sorted by namespace, so a range).
    pub fn pods_in(&self, namespace: &str) -> PodRange {
        let start = self
            .pods
            .partition_point(|p| p.namespace.as_str() < namespace);
        let end = start + self.pods[start..].partition_point(|p| p.namespace.as_str() == namespace);
        PodRange::new(start..end)
    }

    /// Find a Service by namespace and name.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
    }

    /// The Service that owns a cluster IP.
    pub fn service_by_cluster_ip(&self, ip: IpAddr) -> Option<&Service> {
        self.services.iter().find(|s| s.cluster_ips.contains(&ip))
    }

    /// The pods that back a Service ([`Service::selects`]), in pod order.
    pub fn service_backends(&self, service: &Service) -> Vec<PodId> {
        (self.pods_in(&service.namespace).into_iter())
            .filter(|&id| service.selects(&self.pods[id]))
            .collect()
    }

    /// Find the pod that owns an address (real addresses only).
    /// When two live pods claim one address (the loader warns), the first by (namespace,
    /// name) is returned. A binary search over the address index.
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<PodId> {
        id_by_ip(&self.by_address, ip)
    }

    /// The pods and their address index as a snapshot another thread can keep (two shared
    /// references, no copy): the deny-log reader names packets' addresses with it while the
    /// agent's inventory moves on.
    pub fn pods_by_address(&self) -> PodsByAddress {
        PodsByAddress {
            pods: self.pods.clone(),
            by_address: self.by_address.clone(),
        }
    }

    /// Labels of a namespace (every pod's namespace exists).
    pub fn namespace_labels(&self, namespace: &str) -> &Labels {
        static EMPTY: std::sync::OnceLock<Labels> = std::sync::OnceLock::new();
        self.namespaces
            .get(namespace)
            .map(|n| &n.labels)
            .unwrap_or_else(|| EMPTY.get_or_init(Labels::new))
    }

    /// Every `(protocol, port)` that some pod declares, sorted.
    pub fn declared_ports(&self) -> BTreeSet<(Protocol, u16)> {
        self.pods
            .iter()
            .flat_map(|p| p.ports.iter().map(|c| (c.protocol, c.port)))
            .collect()
    }

    /// Labels of a service account (empty when it is not in the input).
    pub fn service_account_labels(&self, namespace: &str, name: &str) -> Labels {
        self.service_accounts
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
            .map(|s| s.labels.clone())
            .unwrap_or_default()
    }

    /// Total number of skipped objects.
    pub fn skipped_count(&self) -> usize {
        self.skipped_kinds.values().sum()
    }
}
