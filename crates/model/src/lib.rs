//! The objects netfence reasons about, and the loaders that build them from manifests.
//!
//! Data flows one way: text (YAML/JSON files, `kubectl get -o yaml` dumps) → [`load`] →
//! validated resources → [`Inventory`] (namespaces, pods, workloads, services, policies).
//! Everything here is validated once; later stages never re-read YAML structures.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod admin;
pub mod aws;
pub mod calico;
pub mod cilium;
pub mod error;
mod fast_yaml;
pub mod files;
pub mod inventory;
pub mod load;
pub mod net;
pub mod parse;
mod pod_id;
pub mod policy;
mod strict;

pub use error::{LoadError, LoadErrors, Origin};
pub use inventory::{
    CertIssuer, Certificate, ContainerPort, Ingress, Inventory, IstioMeshConfig, MtlsMode,
    Namespace, Node, PeerAuthentication, Pod, PodsByAddress, ProbePort, RbacBinding, RbacRole,
    RbacRule, Service, ServiceAccount, ServicePort, TargetPort, VpcCni, WorkloadRef,
    SYNTHETIC_IPV4_RANGE,
};
pub use load::{
    read_kinds, Change, ChangeKind, LinkPatch, Loader, ObjectKey, ObjectKind, ReadKind,
};
pub use net::{AddressCuts, AddressRanges, PortRange, Protocol};
pub use pod_id::{PodId, PodRange};
pub use policy::{NetworkPolicy, NpPeer, NpPort, NpPortSpec, NpRule, PolicyType};
