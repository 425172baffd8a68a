//! Cilium policy (`cilium.io/v2` CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy) and
//! the cluster's CNI, which decides a few details of Kubernetes NetworkPolicy too.
//!
//! The model types; their serde shapes and validation live beside the loading code
//! (`load/cilium.rs`). Shapes follow cilium/cilium `pkg/policy/api` (`rule.go`, `ingress.go`,
//! `egress.go`, `l4.go`, `cidr.go`, `entity.go`, `fqdn.go`, `service.go`); the selector
//! rewriting follows `pkg/k8s/apis/cilium.io/utils/utils.go` (`getEndpointSelector`,
//! `ParseToCiliumRule`).

use crate::error::Origin;
use crate::net::{PortRange, Protocol};
use crate::policy::PolicyType;
use ipnet::IpNet;
use netfence_selector::LabelSelector;

/// The CNI plugin that enforces policy in the cluster: it decides details the Kubernetes API
/// leaves to the implementation (does an `ipBlock` match pod addresses?).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cni {
    /// The upstream e2e reading (netfence's default): an `ipBlock` matches pod addresses too.
    #[default]
    Generic,
    /// Cilium: an `ipBlock` becomes a CIDR identity, which never matches a pod or a node
    /// (docs.cilium.io "Layer 3 Examples", IP/CIDR based: "CIDR rules do not apply to
    /// traffic where both sides of the connection are either managed by Cilium or use an IP
    /// belonging to a node in the cluster").
    Cilium,
    /// Calico: an `ipBlock` matches pod addresses (felix matches source/destination IP sets).
    Calico,
    /// The Amazon VPC CNI's network policy agent (eBPF, per pod address).
    VpcCni,
}

impl Cni {
    /// The name `--cni` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Cni::Generic => "generic",
            Cni::Cilium => "cilium",
            Cni::Calico => "calico",
            Cni::VpcCni => "vpc-cni",
        }
    }

    /// Whether a Kubernetes NetworkPolicy `ipBlock` matches pod (and node) addresses.
    pub fn ip_block_matches_pods(self) -> bool {
        self != Cni::Cilium
    }
}

impl std::str::FromStr for Cni {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "generic" => Ok(Cni::Generic),
            "cilium" => Ok(Cni::Cilium),
            "calico" => Ok(Cni::Calico),
            "vpc-cni" => Ok(Cni::VpcCni),
            other => Err(format!(
                "unknown CNI {other:?} (expected cilium, calico, vpc-cni or generic)"
            )),
        }
    }
}

impl std::fmt::Display for Cni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The CNI in force and how netfence knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniSetting {
    /// The CNI.
    pub cni: Cni,
    /// Where it came from: `--cni`, `DaemonSet kube-system/cilium`, `CiliumNetworkPolicy
    /// objects in the input`, or `None` for the default.
    pub source: Option<String>,
}

impl std::fmt::Display for CniSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{} ({source})", self.cni),
            None => write!(f, "{} (default)", self.cni),
        }
    }
}

/// Which Cilium resource a policy came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CiliumKind {
    /// `CiliumNetworkPolicy` (namespaced).
    NetworkPolicy,
    /// `CiliumClusterwideNetworkPolicy`.
    ClusterwideNetworkPolicy,
}

impl CiliumKind {
    /// The Kubernetes kind.
    pub fn as_str(self) -> &'static str {
        match self {
            CiliumKind::NetworkPolicy => "CiliumNetworkPolicy",
            CiliumKind::ClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
        }
    }
}

/// A Cilium endpoint selector, its keys sorted out by what they refer to. Cilium matches one
/// selector against an endpoint's labels, to which it adds the namespace
/// (`io.kubernetes.pod.namespace`), the namespace's labels (`io.cilium.k8s.namespace.labels.*`)
/// and the service account (`io.cilium.k8s.policy.serviceaccount`); netfence keeps them apart.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CiliumSelector {
    /// Requirements on the pod's own labels (`k8s:`/`any:` source prefixes removed).
    pub pods: LabelSelector,
    /// Requirements on the namespace's labels: `io.cilium.k8s.namespace.labels.K` becomes `K`,
    /// and `io.kubernetes.pod.namespace` becomes `kubernetes.io/metadata.name`.
    pub namespaces: LabelSelector,
    /// The selector names the namespace (`io.kubernetes.pod.namespace`) or namespace labels:
    /// then a namespaced policy's peer selector is not confined to the policy's namespace
    /// (`getEndpointSelector`).
    pub names_namespace: bool,
    /// Service account names the pod must (or must not) run as, as requirements on the key
    /// `name` (from `io.cilium.k8s.policy.serviceaccount`).
    pub service_accounts: Option<LabelSelector>,
    /// `reserved:` labels named (`reserved:host`, `reserved:world`, …): entities.
    pub reserved: Vec<String>,
}

/// A Cilium entity (`pkg/policy/api/entity.go`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Entity {
    /// `all`: every address, in the cluster or not.
    All,
    /// `world` (also `world-ipv4`/`world-ipv6`, with the family): outside the cluster.
    World(Option<u8>),
    /// `cluster`: every endpoint of the local cluster (pods, nodes, …).
    Cluster,
    /// `host`: the local node.
    Host,
    /// `remote-node`: the other nodes.
    RemoteNode,
    /// `kube-apiserver`.
    KubeApiserver,
    /// `init`, `health`, `unmanaged`, `ingress`: endpoints netfence does not model.
    Unmodelled(&'static str),
}

/// One peer of a Cilium rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CiliumPeer {
    /// `fromEndpoints`/`toEndpoints`.
    Endpoints(CiliumSelector),
    /// `fromEntities`/`toEntities`.
    Entity(Entity),
    /// `fromCIDR`/`toCIDR`/`fromCIDRSet`/`toCIDRSet`.
    Cidr {
        /// The CIDR.
        net: IpNet,
        /// `except`.
        except: Vec<IpNet>,
    },
    /// `fromNodes`/`toNodes`: nodes by their labels.
    Nodes(LabelSelector),
    /// `toServices.k8sService`: the Service's backends.
    Service {
        /// Namespace (the policy's when not given).
        namespace: String,
        /// Name.
        name: String,
    },
    /// `toFQDNs`: `matchName` or `matchPattern`, resolved only from observed DNS answers.
    Fqdn(String),
    /// A peer netfence parses but does not evaluate (`toGroups`, `cidrGroupRef`,
    /// `k8sServiceSelector`): it matches nothing, and a warning says so.
    Unmodelled(String),
}

/// The ports of a `toPorts` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CiliumPortSpec {
    /// `port` missing or `0`: every port.
    All,
    /// A number, or `port`..=`endPort`.
    Range(PortRange),
    /// A named container port of the destination.
    Named(String),
}

/// One entry of `toPorts[].ports`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CiliumPort {
    /// The protocols (`ANY` or missing = TCP, UDP and SCTP); empty for a protocol netfence
    /// does not model (ICMP, VRRP, IGMP), which matches no modelled connection.
    pub protocols: Vec<Protocol>,
    /// Which ports.
    pub port: CiliumPortSpec,
}

/// One ingress/egress (allow or deny) rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CiliumRule {
    /// The L3 peers, OR-ed.
    pub peers: Vec<CiliumPeer>,
    /// Whether any L3 field was written: then an empty `peers` matches nothing; otherwise
    /// (ports only) the rule applies to every peer.
    pub has_peers: bool,
    /// `toPorts[].ports` flattened, OR-ed; empty with `has_ports` false = every port.
    pub ports: Vec<CiliumPort>,
    /// Whether `toPorts` or `icmps` was written.
    pub has_ports: bool,
    /// L7 rules (`toPorts[].rules`) were given: they ride on the L4 allow, not modelled.
    pub l7: bool,
}

impl CiliumRule {
    /// `- {}`: no peer and no port field: Cilium selects nothing with it.
    pub fn is_empty(&self) -> bool {
        !self.has_peers && !self.has_ports
    }
}

/// Which endpoints a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CiliumSubject {
    /// `endpointSelector`.
    Endpoints(CiliumSelector),
    /// `nodeSelector` (host policy; netfence does not evaluate host endpoints).
    Nodes(LabelSelector),
}

/// One Cilium rule (`spec`, or one item of `specs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CiliumPolicy {
    /// The resource kind.
    pub kind: CiliumKind,
    /// Namespace of a CiliumNetworkPolicy.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Index in `specs`, or `None` for `spec`.
    pub spec_index: Option<usize>,
    /// Which endpoints it applies to.
    pub subject: CiliumSubject,
    /// `ingress`.
    pub ingress: Vec<CiliumRule>,
    /// `ingressDeny`.
    pub ingress_deny: Vec<CiliumRule>,
    /// `egress`.
    pub egress: Vec<CiliumRule>,
    /// `egressDeny`.
    pub egress_deny: Vec<CiliumRule>,
    /// `enableDefaultDeny.ingress`, `enableDefaultDeny.egress`.
    pub default_deny: [Option<bool>; 2],
    /// Where it was read from.
    pub origin: Origin,
}

impl CiliumPolicy {
    /// `namespace/name` or `name`, with `[specs[i]]` for an item of `specs`.
    pub fn display_name(&self) -> String {
        let base = match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        };
        match self.spec_index {
            Some(i) => format!("{base}[specs[{i}]]"),
            None => base,
        }
    }

    /// The allow and deny rules for a direction.
    pub fn rules(&self, direction: PolicyType) -> (&[CiliumRule], &[CiliumRule]) {
        match direction {
            PolicyType::Ingress => (&self.ingress, &self.ingress_deny),
            PolicyType::Egress => (&self.egress, &self.egress_deny),
        }
    }

    /// Whether the policy puts its endpoints into default deny for `direction`: it has a
    /// non-empty allow or deny section for it and `enableDefaultDeny` does not turn that off
    /// (docs.cilium.io "Policy Enforcement Modes"; `Rule.EnableDefaultDeny` in rule.go: "If
    /// not specified, the default is true for each traffic direction that has rules").
    pub fn isolates(&self, direction: PolicyType) -> bool {
        let (allow, deny) = self.rules(direction);
        let index = match direction {
            PolicyType::Ingress => 0,
            PolicyType::Egress => 1,
        };
        (!allow.is_empty() || !deny.is_empty()) && self.default_deny[index] != Some(false)
    }
}

/// API groups of policy engines, with the engine's name. A skipped object of one of these
/// groups whose kind is a policy (see [`policy_engine_of`]) can change verdicts.
pub const POLICY_ENGINE_GROUPS: &[(&str, &str)] = &[
    ("cilium.io", "Cilium"),
    ("projectcalico.org", "Calico"),
    ("crd.projectcalico.org", "Calico"),
    ("policy.networking.k8s.io", "Kubernetes network-policy-api"),
    ("networking.k8s.aws", "Amazon VPC CNI"),
    ("security.istio.io", "Istio"),
    ("policy.linkerd.io", "Linkerd"),
    ("networking.gke.io", "GKE"),
    ("crd.antrea.io", "Antrea"),
    ("k8s.ovn.org", "OVN-Kubernetes"),
];

/// The policy engine a skipped `group/version/Kind` key (as `Inventory::skipped_kinds`
/// counts them) belongs to, when the kind is one that allows or denies traffic: its name holds
/// `Policy`, `Firewall`, `NetworkSet` or `CIDRGroup` (the address sets policies name). Staged
/// Calico policies (they only report) and the VPC CNI's `PolicyEndpoint` (derived from
/// NetworkPolicies netfence reads) are not.
pub fn policy_engine_of(key: &str) -> Option<&'static str> {
    let (group, rest) = key.split_once('/')?;
    let kind = rest.rsplit('/').next().unwrap_or(rest);
    let decides = ["Policy", "Firewall", "NetworkSet", "CIDRGroup"]
        .iter()
        .any(|word| kind.contains(word))
        && !kind.starts_with("Staged")
        && kind != "PolicyEndpoint";
    if !decides {
        return None;
    }
    POLICY_ENGINE_GROUPS
        .iter()
        .find(|(g, _)| *g == group)
        .map(|(_, engine)| *engine)
}

#[cfg(test)]
mod tests {
    use super::policy_engine_of;

    #[test]
    fn policy_kinds_of_policy_engines_are_recognised() {
        assert_eq!(
            policy_engine_of("cilium.io/v2alpha1/CiliumCIDRGroup"),
            Some("Cilium")
        );
        assert_eq!(
            policy_engine_of("security.istio.io/v1/AuthorizationPolicy"),
            Some("Istio")
        );
        assert_eq!(policy_engine_of("cilium.io/v2/CiliumNode"), None);
        assert_eq!(policy_engine_of("networking.k8s.io/v1/IngressClass"), None);
        assert_eq!(
            policy_engine_of("projectcalico.org/v3/StagedNetworkPolicy"),
            None
        );
        assert_eq!(policy_engine_of("v1/ConfigMap"), None);
    }
}
