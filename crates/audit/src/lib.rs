//! `netfence audit`: the EKS best-practices guide's network-security practices as checks.
//!
//! Every check has a stable id ([`CheckId`]), a severity, a title, the practice it comes from,
//! and produces findings with a location and a remediation the user can apply. Traffic-control
//! checks are computed with the engine (what the policies really allow), not pattern-matched.
//! Findings are suppressed by the annotation `netfence.io/ignore: id1,id2` on the object or its
//! namespace, or by a config file ([`Suppressions`]); suppressed findings are counted.
//!
//! The checks live in families, one module each (`traffic`, `hygiene`, `shadow`, `rbac`, `tls`,
//! `mtls`, `cert`, `sg`), registered in one table, [`FAMILIES`], that [`audit_all`] runs in
//! order.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod cert;
mod hygiene;
mod mtls;

mod rbac;
mod remediation;
mod sg;
mod shadow;
mod tls;
mod traffic;
mod wire;

pub use sg::{AwsInput, AwsInputError};
pub use shadow::{shadow_candidates, shadow_check_applies, SHADOW_CHECK_MAX_WORK};
pub use wire::{wire_audit, WireObservation};

use netfence_engine::Engine;
use netfence_model::{Inventory, Origin};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Should be fixed.
    Warning,
    /// Breaks something or leaves a hole.
    Error,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "error" => Ok(Severity::Error),
            other => Err(format!(
                "unknown severity {other:?} (expected info, warning or error)"
            )),
        }
    }
}

/// A check. Variants are declared in report order (the derived `Ord` is that order); the
/// stable string id (`NF-TC-001`, …) is [`CheckId::as_str`], which `Display` and `FromStr` use.
///
/// ```
/// use netfence_audit::CheckId;
/// let id: CheckId = "NF-TC-003".parse().unwrap();
/// assert_eq!(id, CheckId::DnsUnreachable);
/// assert_eq!(id.to_string(), "NF-TC-003");
/// assert!("NF-TC-999".parse::<CheckId>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckId {
    /// NF-TC-001: Namespace without default-deny ingress: some pod accepts traffic no rule allows
    MissingDefaultDenyIngress,
    /// NF-TC-002: Namespace without default-deny egress: some pod may send traffic no rule allows
    MissingDefaultDenyEgress,
    /// NF-TC-003: Egress-isolated pod cannot reach cluster DNS on UDP 53 and TCP 53
    DnsUnreachable,
    /// NF-TC-004: Pod reachable from any address on every port
    OpenToAnyAddress,
    /// NF-TC-005: Namespace where no policy selects any pod
    NamespaceWithoutPolicy,
    /// NF-TC-006: Policy selects no pod (NetworkPolicy, Calico NetworkPolicy, admin policy)
    PolicySelectsNoPod,
    /// NF-TC-007: Rule whose pod peers match no pod
    PeerMatchesNoPod,
    /// NF-TC-008: NetworkPolicy without explicit policyTypes
    ImplicitPolicyTypes,
    /// NF-TC-009: NetworkPolicy port without protocol (it means TCP only)
    PortWithoutProtocol,
    /// NF-TC-011: Policy fully shadowed: removing it changes no connection (computed; Kubernetes, Calico and admin policies)
    ShadowedPolicy,
    /// NF-TC-012: ServiceAccount that Calico policy selects can be edited through RBAC (update/patch)
    EditableServiceAccount,
    /// NF-TC-010: DNS rule selects kube-system by `name: kube-system`, but kube-system lacks that label
    KubeSystemNameLabel,
    /// NF-SG-001: SecurityGroupPolicy names a security group that does not exist: its pods will not be scheduled
    MissingSecurityGroup,
    /// NF-SG-002: Pod security groups without TCP and UDP 53 outbound to the cluster security group
    PodGroupsWithoutDnsEgress,
    /// NF-SG-003: Cluster security group without TCP and UDP 53 inbound from the pod security groups
    ClusterGroupWithoutDnsIngress,
    /// NF-SG-004: No inbound rule from the cluster security group (kubelet) for a probe port of pods with security groups
    ProbePortsNotAdmitted,
    /// NF-SG-005: Cluster or node group security group below the EKS minimum rules (443 to the control plane, 10250 to the kubelet, 53)
    BelowEksMinimumRules,
    /// NF-SG-006: Pods matched by SecurityGroupPolicies for more security groups than a network interface may carry
    TooManyGroupsPerInterface,
    /// NF-SG-007: Security group with more rules than the default quota (60 per direction and IP family)
    TooManyRulesPerGroup,
    /// NF-SG-008: Security group open to the internet (0.0.0.0/0 or ::/0) other than HTTP/HTTPS on a load balancer
    OpenToTheInternet,
    /// NF-SG-009: Calico policies select pods with security groups while the VPC CNI enforces in strict mode (Calico does not apply)
    CalicoBypassedInStrictMode,
    /// NF-SG-010: Fargate pods with security groups that leave out the cluster security group
    FargateWithoutClusterGroup,
    /// NF-TLS-001: LoadBalancer Service without TLS (aws-load-balancer-ssl-cert and -ssl-ports)
    LoadBalancerWithoutTls,
    /// NF-TLS-002: LoadBalancer Service with a weak TLS negotiation policy (or none: the default allows TLS 1.0)
    WeakLoadBalancerTlsPolicy,
    /// NF-TLS-003: TLS terminated at the load balancer with an http backend (not end to end)
    TlsEndsAtLoadBalancer,
    /// NF-TLS-004: Ingress without TLS (no spec.tls; for an ALB, no HTTPS listener)
    IngressWithoutTls,
    /// NF-TLS-005: ALB Ingress without certificate-arn: the certificate is discovered from ACM by host
    AlbCertificateDiscovered,
    /// NF-TLS-006: ALB Ingress with a weak ssl-policy (or none: the controller default allows TLS 1.0)
    WeakAlbTlsPolicy,
    /// NF-MTLS-001: Istio mesh without a mesh-wide STRICT PeerAuthentication
    IstioMeshNotStrict,
    /// NF-MTLS-002: PeerAuthentication relaxes mTLS to PERMISSIVE or DISABLE (namespace, workload or port)
    PeerAuthenticationRelaxed,
    /// NF-MTLS-003: Linkerd proxy skips ports: their traffic bypasses mTLS
    LinkerdSkippedPorts,
    /// NF-MTLS-004: Linkerd injection disabled for a workload in a meshed namespace
    LinkerdInjectionDisabled,
    /// NF-MTLS-005: Linkerd default inbound policy all-unauthenticated
    LinkerdUnauthenticatedDefault,
    /// NF-CERT-001: Certificate whose issuer does not exist
    MissingIssuer,
    /// NF-CERT-002: selfSigned issuer used for leaf certificates (beyond bootstrapping a CA)
    SelfSignedLeaves,
    /// NF-CERT-003: AWS Private CA issuer without arn or region
    PrivateCaIssuerIncomplete,
    /// NF-CERT-004: AWS Private CA issuer with static access keys (secretRef) instead of IRSA or Pod Identity
    PrivateCaStaticKeys,
    /// NF-CERT-005: Certificate with isCA: an in-cluster CA whose key lives in a Secret
    InClusterCa,
    /// NF-CERT-006: Leaf Certificate valid for more than 397 days
    LongLivedLeaf,
    /// NF-WIRE-001: Plaintext seen on the wire to a pod whose Istio PeerAuthentication is STRICT
    PlaintextUnderStrictMtls,
    /// NF-WIRE-002: Plaintext seen on the wire to a backend of a load balancer configured for TLS end to end
    PlaintextBehindTlsLoadBalancer,
    /// NF-WIRE-003: TLS version seen on the wire below the configured minimum (the load balancer's negotiation policy, else TLS 1.2)
    TlsBelowMinimum,
}

impl CheckId {
    /// Every check, in report order.
    pub const ALL: [CheckId; 42] = [
        CheckId::MissingDefaultDenyIngress,
        CheckId::MissingDefaultDenyEgress,
        CheckId::DnsUnreachable,
        CheckId::OpenToAnyAddress,
        CheckId::NamespaceWithoutPolicy,
        CheckId::PolicySelectsNoPod,
        CheckId::PeerMatchesNoPod,
        CheckId::ImplicitPolicyTypes,
        CheckId::PortWithoutProtocol,
        CheckId::ShadowedPolicy,
        CheckId::EditableServiceAccount,
        CheckId::KubeSystemNameLabel,
        CheckId::MissingSecurityGroup,
        CheckId::PodGroupsWithoutDnsEgress,
        CheckId::ClusterGroupWithoutDnsIngress,
        CheckId::ProbePortsNotAdmitted,
        CheckId::BelowEksMinimumRules,
        CheckId::TooManyGroupsPerInterface,
        CheckId::TooManyRulesPerGroup,
        CheckId::OpenToTheInternet,
        CheckId::CalicoBypassedInStrictMode,
        CheckId::FargateWithoutClusterGroup,
        CheckId::LoadBalancerWithoutTls,
        CheckId::WeakLoadBalancerTlsPolicy,
        CheckId::TlsEndsAtLoadBalancer,
        CheckId::IngressWithoutTls,
        CheckId::AlbCertificateDiscovered,
        CheckId::WeakAlbTlsPolicy,
        CheckId::IstioMeshNotStrict,
        CheckId::PeerAuthenticationRelaxed,
        CheckId::LinkerdSkippedPorts,
        CheckId::LinkerdInjectionDisabled,
        CheckId::LinkerdUnauthenticatedDefault,
        CheckId::MissingIssuer,
        CheckId::SelfSignedLeaves,
        CheckId::PrivateCaIssuerIncomplete,
        CheckId::PrivateCaStaticKeys,
        CheckId::InClusterCa,
        CheckId::LongLivedLeaf,
        CheckId::PlaintextUnderStrictMtls,
        CheckId::PlaintextBehindTlsLoadBalancer,
        CheckId::TlsBelowMinimum,
    ];

    /// The stable id, used in output and in `netfence.io/ignore`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CheckId::MissingDefaultDenyIngress => "NF-TC-001",
            CheckId::MissingDefaultDenyEgress => "NF-TC-002",
            CheckId::DnsUnreachable => "NF-TC-003",
            CheckId::OpenToAnyAddress => "NF-TC-004",
            CheckId::NamespaceWithoutPolicy => "NF-TC-005",
            CheckId::PolicySelectsNoPod => "NF-TC-006",
            CheckId::PeerMatchesNoPod => "NF-TC-007",
            CheckId::ImplicitPolicyTypes => "NF-TC-008",
            CheckId::PortWithoutProtocol => "NF-TC-009",
            CheckId::ShadowedPolicy => "NF-TC-011",
            CheckId::EditableServiceAccount => "NF-TC-012",
            CheckId::KubeSystemNameLabel => "NF-TC-010",
            CheckId::MissingSecurityGroup => "NF-SG-001",
            CheckId::PodGroupsWithoutDnsEgress => "NF-SG-002",
            CheckId::ClusterGroupWithoutDnsIngress => "NF-SG-003",
            CheckId::ProbePortsNotAdmitted => "NF-SG-004",
            CheckId::BelowEksMinimumRules => "NF-SG-005",
            CheckId::TooManyGroupsPerInterface => "NF-SG-006",
            CheckId::TooManyRulesPerGroup => "NF-SG-007",
            CheckId::OpenToTheInternet => "NF-SG-008",
            CheckId::CalicoBypassedInStrictMode => "NF-SG-009",
            CheckId::FargateWithoutClusterGroup => "NF-SG-010",
            CheckId::LoadBalancerWithoutTls => "NF-TLS-001",
            CheckId::WeakLoadBalancerTlsPolicy => "NF-TLS-002",
            CheckId::TlsEndsAtLoadBalancer => "NF-TLS-003",
            CheckId::IngressWithoutTls => "NF-TLS-004",
            CheckId::AlbCertificateDiscovered => "NF-TLS-005",
            CheckId::WeakAlbTlsPolicy => "NF-TLS-006",
            CheckId::IstioMeshNotStrict => "NF-MTLS-001",
            CheckId::PeerAuthenticationRelaxed => "NF-MTLS-002",
            CheckId::LinkerdSkippedPorts => "NF-MTLS-003",
            CheckId::LinkerdInjectionDisabled => "NF-MTLS-004",
            CheckId::LinkerdUnauthenticatedDefault => "NF-MTLS-005",
            CheckId::MissingIssuer => "NF-CERT-001",
            CheckId::SelfSignedLeaves => "NF-CERT-002",
            CheckId::PrivateCaIssuerIncomplete => "NF-CERT-003",
            CheckId::PrivateCaStaticKeys => "NF-CERT-004",
            CheckId::InClusterCa => "NF-CERT-005",
            CheckId::LongLivedLeaf => "NF-CERT-006",
            CheckId::PlaintextUnderStrictMtls => "NF-WIRE-001",
            CheckId::PlaintextBehindTlsLoadBalancer => "NF-WIRE-002",
            CheckId::TlsBelowMinimum => "NF-WIRE-003",
        }
    }

    /// The check's id, severity, title and rationale.
    pub const fn check(self) -> Check {
        Check {
            id: self.as_str(),
            severity: self.severity(),
            title: self.title(),
            rationale: self.rationale(),
        }
    }

    /// Severity of its findings.
    pub const fn severity(self) -> Severity {
        match self {
            CheckId::MissingDefaultDenyIngress
            | CheckId::MissingDefaultDenyEgress
            | CheckId::OpenToAnyAddress
            | CheckId::PolicySelectsNoPod
            | CheckId::PeerMatchesNoPod
            | CheckId::EditableServiceAccount
            | CheckId::TooManyRulesPerGroup
            | CheckId::LoadBalancerWithoutTls
            | CheckId::WeakLoadBalancerTlsPolicy
            | CheckId::IngressWithoutTls
            | CheckId::WeakAlbTlsPolicy
            | CheckId::IstioMeshNotStrict
            | CheckId::PeerAuthenticationRelaxed
            | CheckId::LinkerdSkippedPorts
            | CheckId::LinkerdInjectionDisabled
            | CheckId::LinkerdUnauthenticatedDefault
            | CheckId::SelfSignedLeaves
            | CheckId::PrivateCaIssuerIncomplete
            | CheckId::PrivateCaStaticKeys
            | CheckId::LongLivedLeaf
            | CheckId::TlsBelowMinimum => Severity::Warning,
            CheckId::DnsUnreachable
            | CheckId::PlaintextUnderStrictMtls
            | CheckId::PlaintextBehindTlsLoadBalancer
            | CheckId::KubeSystemNameLabel
            | CheckId::MissingSecurityGroup
            | CheckId::PodGroupsWithoutDnsEgress
            | CheckId::ClusterGroupWithoutDnsIngress
            | CheckId::ProbePortsNotAdmitted
            | CheckId::BelowEksMinimumRules
            | CheckId::TooManyGroupsPerInterface
            | CheckId::OpenToTheInternet
            | CheckId::CalicoBypassedInStrictMode
            | CheckId::FargateWithoutClusterGroup
            | CheckId::MissingIssuer => Severity::Error,
            CheckId::NamespaceWithoutPolicy
            | CheckId::ImplicitPolicyTypes
            | CheckId::PortWithoutProtocol
            | CheckId::ShadowedPolicy
            | CheckId::TlsEndsAtLoadBalancer
            | CheckId::AlbCertificateDiscovered
            | CheckId::InClusterCa => Severity::Info,
        }
    }

    /// One line.
    pub const fn title(self) -> &'static str {
        match self {
            CheckId::MissingDefaultDenyIngress => "Namespace without default-deny ingress: some pod accepts traffic no rule allows",
            CheckId::MissingDefaultDenyEgress => "Namespace without default-deny egress: some pod may send traffic no rule allows",
            CheckId::DnsUnreachable => "Egress-isolated pod cannot reach cluster DNS on UDP 53 and TCP 53",
            CheckId::OpenToAnyAddress => "Pod reachable from any address on every port",
            CheckId::NamespaceWithoutPolicy => "Namespace where no policy selects any pod",
            CheckId::PolicySelectsNoPod => "Policy selects no pod (NetworkPolicy, Calico NetworkPolicy, admin policy)",
            CheckId::PeerMatchesNoPod => "Rule whose pod peers match no pod",
            CheckId::ImplicitPolicyTypes => "NetworkPolicy without explicit policyTypes",
            CheckId::PortWithoutProtocol => "NetworkPolicy port without protocol (it means TCP only)",
            CheckId::ShadowedPolicy => "Policy fully shadowed: removing it changes no connection (computed; Kubernetes, Calico and admin policies)",
            CheckId::EditableServiceAccount => "ServiceAccount that Calico policy selects can be edited through RBAC (update/patch)",
            CheckId::KubeSystemNameLabel => "DNS rule selects kube-system by `name: kube-system`, but kube-system lacks that label",
            CheckId::MissingSecurityGroup => "SecurityGroupPolicy names a security group that does not exist: its pods will not be scheduled",
            CheckId::PodGroupsWithoutDnsEgress => "Pod security groups without TCP and UDP 53 outbound to the cluster security group",
            CheckId::ClusterGroupWithoutDnsIngress => "Cluster security group without TCP and UDP 53 inbound from the pod security groups",
            CheckId::ProbePortsNotAdmitted => "No inbound rule from the cluster security group (kubelet) for a probe port of pods with security groups",
            CheckId::BelowEksMinimumRules => "Cluster or node group security group below the EKS minimum rules (443 to the control plane, 10250 to the kubelet, 53)",
            CheckId::TooManyGroupsPerInterface => "Pods matched by SecurityGroupPolicies for more security groups than a network interface may carry",
            CheckId::TooManyRulesPerGroup => "Security group with more rules than the default quota (60 per direction and IP family)",
            CheckId::OpenToTheInternet => "Security group open to the internet (0.0.0.0/0 or ::/0) other than HTTP/HTTPS on a load balancer",
            CheckId::CalicoBypassedInStrictMode => "Calico policies select pods with security groups while the VPC CNI enforces in strict mode (Calico does not apply)",
            CheckId::FargateWithoutClusterGroup => "Fargate pods with security groups that leave out the cluster security group",
            CheckId::LoadBalancerWithoutTls => "LoadBalancer Service without TLS (aws-load-balancer-ssl-cert and -ssl-ports)",
            CheckId::WeakLoadBalancerTlsPolicy => "LoadBalancer Service with a weak TLS negotiation policy (or none: the default allows TLS 1.0)",
            CheckId::TlsEndsAtLoadBalancer => "TLS terminated at the load balancer with an http backend (not end to end)",
            CheckId::IngressWithoutTls => "Ingress without TLS (no spec.tls; for an ALB, no HTTPS listener)",
            CheckId::AlbCertificateDiscovered => "ALB Ingress without certificate-arn: the certificate is discovered from ACM by host",
            CheckId::WeakAlbTlsPolicy => "ALB Ingress with a weak ssl-policy (or none: the controller default allows TLS 1.0)",
            CheckId::IstioMeshNotStrict => "Istio mesh without a mesh-wide STRICT PeerAuthentication",
            CheckId::PeerAuthenticationRelaxed => "PeerAuthentication relaxes mTLS to PERMISSIVE or DISABLE (namespace, workload or port)",
            CheckId::LinkerdSkippedPorts => "Linkerd proxy skips ports: their traffic bypasses mTLS",
            CheckId::LinkerdInjectionDisabled => "Linkerd injection disabled for a workload in a meshed namespace",
            CheckId::LinkerdUnauthenticatedDefault => "Linkerd default inbound policy all-unauthenticated",
            CheckId::MissingIssuer => "Certificate whose issuer does not exist",
            CheckId::SelfSignedLeaves => "selfSigned issuer used for leaf certificates (beyond bootstrapping a CA)",
            CheckId::PrivateCaIssuerIncomplete => "AWS Private CA issuer without arn or region",
            CheckId::PrivateCaStaticKeys => "AWS Private CA issuer with static access keys (secretRef) instead of IRSA or Pod Identity",
            CheckId::InClusterCa => "Certificate with isCA: an in-cluster CA whose key lives in a Secret",
            CheckId::LongLivedLeaf => "Leaf Certificate valid for more than 397 days",
            CheckId::PlaintextUnderStrictMtls => "Plaintext seen on the wire to a pod whose Istio PeerAuthentication is STRICT",
            CheckId::PlaintextBehindTlsLoadBalancer => "Plaintext seen on the wire to a backend of a load balancer configured for TLS end to end",
            CheckId::TlsBelowMinimum => "TLS version seen on the wire below the configured minimum (the load balancer's negotiation policy, else TLS 1.2)",
        }
    }

    /// The practice it comes from.
    pub const fn rationale(self) -> &'static str {
        match self {
            CheckId::MissingDefaultDenyIngress => "EKS guide, 'Create a default deny policy': network policies should adhere to least privileged access.",
            CheckId::MissingDefaultDenyEgress => "EKS guide, 'Create a default deny policy': restrict all inbound and outbound traffic.",
            CheckId::DnsUnreachable => "EKS guide, 'Create a rule to allow DNS queries': once default deny is in place, allow pods to query CoreDNS.",
            CheckId::OpenToAnyAddress => "EKS guide, 'Network policy': all pod-to-pod and external communication is allowed by default; restrict it.",
            CheckId::NamespaceWithoutPolicy => "EKS guide, 'Incrementally add rules': start with policies in every namespace.",
            CheckId::PolicySelectsNoPod => "A policy that selects nothing enforces nothing; its selector is probably wrong.",
            CheckId::PeerMatchesNoPod => "A peer that matches nothing allows nothing; its selectors are probably wrong.",
            CheckId::ImplicitPolicyTypes => "Without policyTypes, egress isolation depends on whether egress rules happen to be present.",
            CheckId::PortWithoutProtocol => "A port without protocol matches TCP only; DNS and other UDP services need `protocol: UDP` written out.",
            CheckId::ShadowedPolicy => "A policy that decides nothing is dead weight and hides intent; its peers or ports are probably wrong, or other policies already allow more.",
            CheckId::EditableServiceAccount => "EKS guide, 'Calico': with service-account policies, RBAC must stop teams from editing the ServiceAccount (the guide's read-only my-sa example); whoever can relabel it changes what the policy admits.",
            CheckId::KubeSystemNameLabel => "EKS guide, 'Create a rule to allow DNS queries': `kubectl label namespace kube-system name=kube-system` first.",
            CheckId::MissingSecurityGroup => "EKS guide, 'Security groups for pods': if you reference a security group that does not exist prior to the creation of the pods, the pods will not get scheduled.",
            CheckId::PodGroupsWithoutDnsEgress => "EKS guide, 'Security groups for pods': you must create security groups that allow port 53 outbound to the cluster security group.",
            CheckId::ClusterGroupWithoutDnsIngress => "EKS guide, 'Security groups for pods': you must update the cluster security group to accept port 53 inbound traffic from the pod security group.",
            CheckId::ProbePortsNotAdmitted => "EKS guide, 'Security groups for pods': you must create rules for inbound traffic from the cluster security group (kubelet) for all of the probes configured for pods.",
            CheckId::BelowEksMinimumRules => "EKS user guide, 'Security group requirements': the minimum rules are 443 from nodes to the control plane and 10250 from the control plane to nodes, with DNS to the cluster security group.",
            CheckId::TooManyGroupsPerInterface => "EKS guide, 'Security groups for pods': the limits for security groups still apply. The VPC resource controller rejects pods above the security-groups-per-interface quota (default 5, at most 16).",
            CheckId::TooManyRulesPerGroup => "Amazon VPC quotas: rules per group × groups per interface may not exceed 1,000, so large groups cut how many groups pods can carry.",
            CheckId::OpenToTheInternet => "EKS guide, 'Security groups': security groups control traffic with external IP addresses; only a load balancer's listeners belong open to the world.",
            CheckId::CalicoBypassedInStrictMode => "EKS user guide, 'Security groups for Pods': Calico policy applies to such pods only with VPC CNI 1.11+ and POD_SECURITY_GROUP_ENFORCING_MODE=standard; otherwise only security groups apply.",
            CheckId::FargateWithoutClusterGroup => "AWS, 'Configure a security group for Fargate pods': the groups must let the pods reach the control plane; include the cluster security group.",
            CheckId::LoadBalancerWithoutTls => "EKS guide, 'Use encryption with AWS load balancers'.",
            CheckId::WeakLoadBalancerTlsPolicy => "EKS guide, 'Encryption in transit': TLS versions below 1.2 are no longer considered secure.",
            CheckId::TlsEndsAtLoadBalancer => "EKS guide, 'Ingress Controllers and Load Balancers': end-to-end encryption requires decrypting at the pod.",
            CheckId::IngressWithoutTls => "EKS guide, 'Encryption in transit': terminate TLS at the ingress or the load balancer.",
            CheckId::AlbCertificateDiscovered => "AWS Load Balancer Controller, 'Certificate Discovery': without certificate-arn the listener's certificate depends on ACM contents matching the hosts.",
            CheckId::WeakAlbTlsPolicy => "EKS guide, 'Encryption in transit': TLS versions below 1.2 are no longer considered secure.",
            CheckId::IstioMeshNotStrict => "EKS guide, 'Service mesh': enforce mutual TLS; Istio accepts plain text (PERMISSIVE) until a STRICT policy says otherwise.",
            CheckId::PeerAuthenticationRelaxed => "EKS guide, 'Service mesh': every override below STRICT admits plain-text traffic.",
            CheckId::LinkerdSkippedPorts => "Linkerd docs, 'Proxy configuration': skip-inbound-ports and skip-outbound-ports bypass the proxy, so that traffic is not encrypted by the mesh.",
            CheckId::LinkerdInjectionDisabled => "EKS guide, 'Service mesh': a workload without the proxy sends and accepts plain text.",
            CheckId::LinkerdUnauthenticatedDefault => "Linkerd docs, 'Authorization policy': all-unauthenticated admits plain-text clients; prefer all-authenticated.",
            CheckId::MissingIssuer => "EKS guide, 'Certificate management': a Certificate is only issued by an existing Issuer, ClusterIssuer or AWSPCA issuer.",
            CheckId::SelfSignedLeaves => "cert-manager docs, 'SelfSigned': use it to bootstrap a CA; self-signed leaf certificates have no chain of trust.",
            CheckId::PrivateCaIssuerIncomplete => "EKS guide, 'ACM Private CA with cert-manager': the issuer names the private CA by ARN and its region.",
            CheckId::PrivateCaStaticKeys => "EKS guide, 'ACM Private CA with cert-manager': give the issuer an IAM role, not long-lived keys in a Secret.",
            CheckId::InClusterCa => "EKS guide, 'Certificate management': prefer a managed private CA (ACM Private CA) to CA keys in Secrets.",
            CheckId::LongLivedLeaf => "Short-lived certificates limit the damage of a leaked key; cert-manager defaults to 90 days, public CAs stop at 398.",
            CheckId::PlaintextUnderStrictMtls => "EKS guide, 'Encryption in transit': verify mTLS on the wire; with STRICT, a sidecar refuses plain text, so plain text on the wire means the pod's traffic bypasses the mesh.",
            CheckId::PlaintextBehindTlsLoadBalancer => "EKS guide, 'Ingress Controllers and Load Balancers': end-to-end encryption means the load balancer re-encrypts to the pod (backend-protocol ssl or https).",
            CheckId::TlsBelowMinimum => "NIST SP 800-52r2 and the EKS guide, 'Encryption in transit': TLS versions below 1.2 are no longer considered secure.",
        }
    }
}

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is no check's id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown check {0:?}")]
pub struct UnknownCheck(pub String);

impl std::str::FromStr for CheckId {
    type Err = UnknownCheck;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CheckId::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCheck(s.to_string()))
    }
}

/// What a check is.
#[derive(Debug, Serialize)]
pub struct Check {
    /// Stable id, used in output and in `netfence.io/ignore`.
    pub id: &'static str,
    /// Severity of its findings.
    pub severity: Severity,
    /// One line.
    pub title: &'static str,
    /// The practice it comes from.
    pub rationale: &'static str,
}

/// Every check, in report order: [`CheckId::ALL`]'s metadata.
pub const CHECKS: &[Check] = &{
    const FIRST: Check = CheckId::ALL[0].check();
    let mut table = [FIRST; CheckId::ALL.len()];
    let mut i = 0;
    while i < table.len() {
        table[i] = CheckId::ALL[i].check();
        i += 1;
    }
    table
};

/// A family of checks: one module, the checks it owns, and the function that runs them.
pub struct Family {
    /// The module's name (`traffic`, `shadow`, …).
    pub name: &'static str,
    /// The checks whose findings it produces.
    pub checks: &'static [CheckId],
    run: fn(&mut Audit<'_>),
}

/// Every family, in the order [`audit_all`] runs them (findings are sorted afterwards; notes
/// keep this order).
pub const FAMILIES: &[Family] = &[
    traffic::FAMILY,
    hygiene::FAMILY,
    shadow::FAMILY,
    rbac::FAMILY,
    tls::FAMILY,
    mtls::FAMILY,
    cert::FAMILY,
    sg::FAMILY,
    wire::FAMILY,
];

/// One finding.
#[derive(Debug, Serialize)]
pub struct Finding {
    /// The check ([`CheckId::as_str`]).
    pub id: &'static str,
    /// Its severity.
    pub severity: Severity,
    /// What was found.
    pub message: String,
    /// Namespace, when the finding belongs to one.
    pub namespace: Option<String>,
    /// `Kind namespace/name` of the object.
    pub object: String,
    /// File the object was read from.
    pub file: Option<String>,
    /// Line the object starts on.
    pub line: Option<usize>,
    /// The practice.
    pub rationale: &'static str,
    /// YAML (or a command) that fixes it.
    pub remediation: String,
}

/// The audit result.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Findings, sorted by namespace, severity (most severe first), id.
    pub findings: Vec<Finding>,
    /// Findings suppressed by `netfence.io/ignore`.
    pub suppressed: usize,
    /// Checks that did not run, and why.
    pub notes: Vec<String>,
}

/// The annotation that suppresses findings by id.
pub const IGNORE_ANNOTATION: &str = "netfence.io/ignore";

fn ignored(annotations: Option<&BTreeMap<String, String>>, id: CheckId) -> bool {
    annotations
        .and_then(|a| a.get(IGNORE_ANNOTATION))
        .is_some_and(|list| {
            list.split(',')
                .any(|x| x.trim() == id.as_str() || x.trim() == "*")
        })
}

/// Why a suppressions file (`--config`) cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not YAML of the expected shape.
    #[error("{file}: {message}")]
    Malformed {
        /// The file.
        file: String,
        /// What the YAML reader said.
        message: String,
    },
    /// An `ignore[].id` that names no check.
    #[error("{file}: ignore[{index}].id: {message}")]
    UnknownCheck {
        /// The file.
        file: String,
        /// Index in `ignore`.
        index: usize,
        /// Which id, and why it is not one.
        message: String,
    },
}

/// Suppressions from a config file (`netfence audit --config FILE`):
///
/// ```yaml
/// ignore:
/// - id: NF-TC-005                 # everywhere
/// - id: NF-TLS-001
///   namespace: legacy             # only in this namespace
/// - id: NF-TC-011
///   object: NetworkPolicy shop/allow-web   # only this object (as findings name it)
/// ```
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suppressions {
    /// The rules.
    #[serde(default)]
    pub ignore: Vec<Suppression>,
}

/// One suppression rule: every given field must match.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suppression {
    /// Check id, or `*`.
    pub id: String,
    /// Namespace of the finding.
    pub namespace: Option<String>,
    /// Object of the finding (`Kind namespace/name`).
    pub object: Option<String>,
}

impl Suppressions {
    /// Parse a config file; errors name the file and the field. Every id must parse as a
    /// [`CheckId`] (or be `*`).
    pub fn from_yaml(file: &str, text: &str) -> Result<Self, ConfigError> {
        let parsed: Suppressions = if text.trim().is_empty() {
            Suppressions::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Malformed {
                file: file.to_string(),
                message: e.to_string(),
            })?
        };
        for (index, rule) in parsed.ignore.iter().enumerate() {
            if rule.id != "*" {
                if let Err(unknown) = rule.id.parse::<CheckId>() {
                    return Err(ConfigError::UnknownCheck {
                        file: file.to_string(),
                        index,
                        message: unknown.to_string(),
                    });
                }
            }
        }
        Ok(parsed)
    }

    fn matches(&self, id: CheckId, namespace: Option<&str>, object: &str) -> bool {
        self.ignore.iter().any(|r| {
            (r.id == "*" || r.id == id.as_str())
                && r.namespace.as_deref().is_none_or(|n| Some(n) == namespace)
                && r.object.as_deref().is_none_or(|o| o == object)
        })
    }
}

/// What a finding is about: its namespace, the object as findings name it (`Kind
/// namespace/name`), where it was read, and the annotations (or tags) that may suppress it.
pub(crate) struct ObjectRef<'o> {
    pub(crate) namespace: Option<&'o str>,
    pub(crate) label: String,
    pub(crate) origin: Option<&'o Origin>,
    pub(crate) annotations: Option<&'o BTreeMap<String, String>>,
}

impl<'o> ObjectRef<'o> {
    /// A Namespace (its own annotations are consulted for every finding in it anyway).
    pub(crate) fn namespace(inventory: &'o Inventory, name: &'o str) -> Self {
        ObjectRef {
            namespace: Some(name),
            label: format!("Namespace {name}"),
            origin: inventory
                .namespaces()
                .get(name)
                .and_then(|n| n.origin.as_ref()),
            annotations: None,
        }
    }
}

/// An object findings can be about.
pub(crate) trait Object {
    /// Where it is and what suppresses findings on it.
    fn object_ref(&self) -> ObjectRef<'_>;
}

/// Inventory pods are shared (`Arc`): findings about one are about the pod.
impl<T: Object> Object for std::sync::Arc<T> {
    fn object_ref(&self) -> ObjectRef<'_> {
        T::object_ref(self)
    }
}

impl Object for ObjectRef<'_> {
    fn object_ref(&self) -> ObjectRef<'_> {
        ObjectRef {
            namespace: self.namespace,
            label: self.label.clone(),
            origin: self.origin,
            annotations: self.annotations,
        }
    }
}

/// One run of the audit: what the checks read, and the findings and notes they produce.
pub(crate) struct Audit<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) aws: Option<&'a AwsInput>,
    config: &'a Suppressions,
    findings: Vec<(CheckId, Finding)>,
    suppressed: usize,
    notes: Vec<String>,
}

impl<'a> Audit<'a> {
    pub(crate) fn inventory(&self) -> &'a Inventory {
        self.engine.inventory()
    }

    /// Record why (part of) a check did not run, or how an input was read.
    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Start a finding of `check` about `object`:
    /// `audit.finding(id, &object).message(…).remediation(…)` records it, unless
    /// `netfence.io/ignore` (on the object or its namespace) or the config suppresses it, in
    /// which case it is counted.
    pub(crate) fn finding(&mut self, check: CheckId, object: &impl Object) -> Draft<'_> {
        let object = object.object_ref();
        let namespace_annotations = object.namespace.and_then(|ns| {
            self.engine
                .inventory()
                .namespaces()
                .get(ns)
                .map(|n| &n.annotations)
        });
        let suppressed = ignored(object.annotations, check)
            || ignored(namespace_annotations, check)
            || self.config.matches(check, object.namespace, &object.label);
        if suppressed {
            self.suppressed += 1;
        }
        Draft {
            findings: (!suppressed).then_some(&mut self.findings),
            check,
            finding: Finding {
                id: check.as_str(),
                severity: check.severity(),
                message: String::new(),
                namespace: object.namespace.map(str::to_string),
                object: object.label,
                file: object.origin.map(|o| o.file.clone()),
                line: object.origin.map(|o| o.line),
                rationale: check.rationale(),
                remediation: String::new(),
            },
        }
    }
}

/// A finding being built; [`Draft::remediation`] records it.
#[must_use = "a finding is recorded by .remediation(…)"]
pub(crate) struct Draft<'b> {
    /// `None` when suppressed.
    findings: Option<&'b mut Vec<(CheckId, Finding)>>,
    check: CheckId,
    finding: Finding,
}

impl Draft<'_> {
    /// What was found.
    pub(crate) fn message(mut self, message: impl Into<String>) -> Self {
        self.finding.message = message.into();
        self
    }

    /// What fixes it; records the finding.
    pub(crate) fn remediation(mut self, remediation: impl Into<String>) {
        if let Some(findings) = self.findings {
            self.finding.remediation = remediation.into();
            findings.push((self.check, self.finding));
        }
    }
}

/// Run every check.
pub fn audit(engine: &Engine) -> Report {
    audit_with(engine, &Suppressions::default())
}

/// Run every check, with suppressions from a config file.
pub fn audit_with(engine: &Engine, config: &Suppressions) -> Report {
    audit_all(engine, config, None)
}

/// Run every check, with suppressions and the AWS security groups (NF-SG-*).
pub fn audit_all(engine: &Engine, config: &Suppressions, aws: Option<&AwsInput>) -> Report {
    let mut audit = Audit::new(engine, config, aws);
    for family in FAMILIES {
        (family.run)(&mut audit);
    }
    audit.into_report()
}

impl<'a> Audit<'a> {
    fn new(engine: &'a Engine, config: &'a Suppressions, aws: Option<&'a AwsInput>) -> Self {
        Audit {
            engine,
            aws,
            config,
            findings: Vec::new(),
            suppressed: 0,
            notes: Vec::new(),
        }
    }

    /// The findings sorted by (namespace, severity, check, object); notes in run order.
    fn into_report(self) -> Report {
        let mut findings = self.findings;
        findings.sort_by(|(x_check, x), (y_check, y)| {
            (
                &x.namespace,
                std::cmp::Reverse(x.severity),
                x_check,
                &x.object,
            )
                .cmp(&(
                    &y.namespace,
                    std::cmp::Reverse(y.severity),
                    y_check,
                    &y.object,
                ))
        });
        Report {
            findings: findings.into_iter().map(|(_, f)| f).collect(),
            suppressed: self.suppressed,
            notes: self.notes,
        }
    }
}

/// Up to five names, sorted, and how many more.
pub(crate) fn summarize(names: &[String]) -> String {
    let shown: BTreeSet<&String> = names.iter().take(5).collect();
    let mut text = shown.into_iter().cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        text.push_str(&format!(" and {} more", names.len() - 5));
    }
    text
}

/// The check list as Markdown (the README's Audit section is this text).
pub fn checks_markdown() -> String {
    let mut out = String::from("| id | severity | check |\n|---|---|---|\n");
    for c in CHECKS {
        out.push_str(&format!("| {} | {} | {} |\n", c.id, c.severity, c.title));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_all_is_in_declaration_order() {
        let ids: BTreeSet<&str> = CheckId::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(ids.len(), CheckId::ALL.len());
        assert!(CheckId::ALL.windows(2).all(|w| w[0] < w[1]), "report order");
        for id in CheckId::ALL {
            assert_eq!(id.as_str().parse::<CheckId>(), Ok(id));
        }
    }

    #[test]
    fn every_check_belongs_to_exactly_one_family() {
        for id in CheckId::ALL {
            let owners: Vec<&str> = FAMILIES
                .iter()
                .filter(|f| f.checks.contains(&id))
                .map(|f| f.name)
                .collect();
            assert_eq!(owners.len(), 1, "{id}: {owners:?}");
        }
    }
}
