//! `netfence audit`: the EKS best-practices guide's network-security practices as checks.
//!
//! Every check has a stable id, a severity, a title, the practice it comes from, and produces
//! findings with a location and a remediation the user can apply. Traffic-control checks are
//! computed with the engine (what the policies really allow), not pattern-matched. Findings are
//! suppressed by the annotation `netfence.io/ignore: id1,id2` on the object or its namespace;
//! suppressed findings are counted.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod sg;

pub use sg::AwsInput;

use netfence_engine::{Endpoint, Engine, Outcome};
use netfence_model::{NetworkPolicy, Origin, PolicyType, Protocol};
use netfence_selector::Requirement;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

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

/// Every check, in report order.
pub const CHECKS: &[Check] = &[
    Check {
        id: "NF-TC-001",
        severity: Severity::Warning,
        title: "Namespace without default-deny ingress: some pod accepts traffic no rule allows",
        rationale: "EKS guide, 'Create a default deny policy': network policies should adhere to least privileged access.",
    },
    Check {
        id: "NF-TC-002",
        severity: Severity::Warning,
        title: "Namespace without default-deny egress: some pod may send traffic no rule allows",
        rationale: "EKS guide, 'Create a default deny policy': restrict all inbound and outbound traffic.",
    },
    Check {
        id: "NF-TC-003",
        severity: Severity::Error,
        title: "Egress-isolated pod cannot reach cluster DNS on UDP 53 and TCP 53",
        rationale: "EKS guide, 'Create a rule to allow DNS queries': once default deny is in place, allow pods to query CoreDNS.",
    },
    Check {
        id: "NF-TC-004",
        severity: Severity::Warning,
        title: "Pod reachable from any address on every port",
        rationale: "EKS guide, 'Network policy': all pod-to-pod and external communication is allowed by default; restrict it.",
    },
    Check {
        id: "NF-TC-005",
        severity: Severity::Info,
        title: "Namespace where no policy selects any pod",
        rationale: "EKS guide, 'Incrementally add rules': start with policies in every namespace.",
    },
    Check {
        id: "NF-TC-006",
        severity: Severity::Warning,
        title: "Policy selects no pod (NetworkPolicy, Calico NetworkPolicy, admin policy)",
        rationale: "A policy that selects nothing enforces nothing; its selector is probably wrong.",
    },
    Check {
        id: "NF-TC-007",
        severity: Severity::Warning,
        title: "Rule whose pod peers match no pod",
        rationale: "A peer that matches nothing allows nothing; its selectors are probably wrong.",
    },
    Check {
        id: "NF-TC-008",
        severity: Severity::Info,
        title: "NetworkPolicy without explicit policyTypes",
        rationale: "Without policyTypes, egress isolation depends on whether egress rules happen to be present.",
    },
    Check {
        id: "NF-TC-009",
        severity: Severity::Info,
        title: "NetworkPolicy port without protocol (it means TCP only)",
        rationale: "A port without protocol matches TCP only; DNS and other UDP services need `protocol: UDP` written out.",
    },
    Check {
        id: "NF-TC-011",
        severity: Severity::Info,
        title: "Policy fully shadowed: removing it changes no connection (computed; Kubernetes, Calico and admin policies)",
        rationale: "A policy that decides nothing is dead weight and hides intent; its peers or ports are probably wrong, or other policies already allow more.",
    },
    Check {
        id: "NF-TC-012",
        severity: Severity::Warning,
        title: "ServiceAccount that Calico policy selects can be edited through RBAC (update/patch)",
        rationale: "EKS guide, 'Calico': with service-account policies, RBAC must stop teams from editing the ServiceAccount (the guide's read-only my-sa example); whoever can relabel it changes what the policy admits.",
    },
    Check {
        id: "NF-TC-010",
        severity: Severity::Error,
        title: "DNS rule selects kube-system by `name: kube-system`, but kube-system lacks that label",
        rationale: "EKS guide, 'Create a rule to allow DNS queries': `kubectl label namespace kube-system name=kube-system` first.",
    },
    Check {
        id: "NF-SG-001",
        severity: Severity::Error,
        title: "SecurityGroupPolicy names a security group that does not exist: its pods will not be scheduled",
        rationale: "EKS guide, 'Security groups for pods': if you reference a security group that does not exist prior to the creation of the pods, the pods will not get scheduled.",
    },
    Check {
        id: "NF-SG-002",
        severity: Severity::Error,
        title: "Pod security groups without TCP and UDP 53 outbound to the cluster security group",
        rationale: "EKS guide, 'Security groups for pods': you must create security groups that allow port 53 outbound to the cluster security group.",
    },
    Check {
        id: "NF-SG-003",
        severity: Severity::Error,
        title: "Cluster security group without TCP and UDP 53 inbound from the pod security groups",
        rationale: "EKS guide, 'Security groups for pods': you must update the cluster security group to accept port 53 inbound traffic from the pod security group.",
    },
    Check {
        id: "NF-SG-004",
        severity: Severity::Error,
        title: "No inbound rule from the cluster security group (kubelet) for a probe port of pods with security groups",
        rationale: "EKS guide, 'Security groups for pods': you must create rules for inbound traffic from the cluster security group (kubelet) for all of the probes configured for pods.",
    },
    Check {
        id: "NF-SG-005",
        severity: Severity::Error,
        title: "Cluster or node group security group below the EKS minimum rules (443 to the control plane, 10250 to the kubelet, 53)",
        rationale: "EKS user guide, 'Security group requirements': the minimum rules are 443 from nodes to the control plane and 10250 from the control plane to nodes, with DNS to the cluster security group.",
    },
    Check {
        id: "NF-SG-006",
        severity: Severity::Error,
        title: "Pods matched by SecurityGroupPolicies for more security groups than a network interface may carry",
        rationale: "EKS guide, 'Security groups for pods': the limits for security groups still apply. The VPC resource controller rejects pods above the security-groups-per-interface quota (default 5, at most 16).",
    },
    Check {
        id: "NF-SG-007",
        severity: Severity::Warning,
        title: "Security group with more rules than the default quota (60 per direction and IP family)",
        rationale: "Amazon VPC quotas: rules per group × groups per interface may not exceed 1,000, so large groups cut how many groups pods can carry.",
    },
    Check {
        id: "NF-SG-008",
        severity: Severity::Error,
        title: "Security group open to the internet (0.0.0.0/0 or ::/0) other than HTTP/HTTPS on a load balancer",
        rationale: "EKS guide, 'Security groups': security groups control traffic with external IP addresses; only a load balancer's listeners belong open to the world.",
    },
    Check {
        id: "NF-SG-009",
        severity: Severity::Error,
        title: "Calico policies select pods with security groups while the VPC CNI enforces in strict mode (Calico does not apply)",
        rationale: "EKS user guide, 'Security groups for Pods': Calico policy applies to such pods only with VPC CNI 1.11+ and POD_SECURITY_GROUP_ENFORCING_MODE=standard; otherwise only security groups apply.",
    },
    Check {
        id: "NF-SG-010",
        severity: Severity::Error,
        title: "Fargate pods with security groups that leave out the cluster security group",
        rationale: "AWS, 'Configure a security group for Fargate pods': the groups must let the pods reach the control plane; include the cluster security group.",
    },
    Check {
        id: "NF-TLS-001",
        severity: Severity::Warning,
        title: "LoadBalancer Service without TLS (aws-load-balancer-ssl-cert and -ssl-ports)",
        rationale: "EKS guide, 'Use encryption with AWS load balancers'.",
    },
    Check {
        id: "NF-TLS-002",
        severity: Severity::Warning,
        title: "LoadBalancer Service with a weak TLS negotiation policy (or none: the default allows TLS 1.0)",
        rationale: "EKS guide, 'Encryption in transit': TLS versions below 1.2 are no longer considered secure.",
    },
    Check {
        id: "NF-TLS-003",
        severity: Severity::Info,
        title: "TLS terminated at the load balancer with an http backend (not end to end)",
        rationale: "EKS guide, 'Ingress Controllers and Load Balancers': end-to-end encryption requires decrypting at the pod.",
    },
    Check {
        id: "NF-TLS-004",
        severity: Severity::Warning,
        title: "Ingress without TLS (no spec.tls; for an ALB, no HTTPS listener)",
        rationale: "EKS guide, 'Encryption in transit': terminate TLS at the ingress or the load balancer.",
    },
    Check {
        id: "NF-TLS-005",
        severity: Severity::Info,
        title: "ALB Ingress without certificate-arn: the certificate is discovered from ACM by host",
        rationale: "AWS Load Balancer Controller, 'Certificate Discovery': without certificate-arn the listener's certificate depends on ACM contents matching the hosts.",
    },
    Check {
        id: "NF-TLS-006",
        severity: Severity::Warning,
        title: "ALB Ingress with a weak ssl-policy (or none: the controller default allows TLS 1.0)",
        rationale: "EKS guide, 'Encryption in transit': TLS versions below 1.2 are no longer considered secure.",
    },
    Check {
        id: "NF-MTLS-001",
        severity: Severity::Warning,
        title: "Istio mesh without a mesh-wide STRICT PeerAuthentication",
        rationale: "EKS guide, 'Service mesh': enforce mutual TLS; Istio accepts plain text (PERMISSIVE) until a STRICT policy says otherwise.",
    },
    Check {
        id: "NF-MTLS-002",
        severity: Severity::Warning,
        title: "PeerAuthentication relaxes mTLS to PERMISSIVE or DISABLE (namespace, workload or port)",
        rationale: "EKS guide, 'Service mesh': every override below STRICT admits plain-text traffic.",
    },
    Check {
        id: "NF-MTLS-003",
        severity: Severity::Warning,
        title: "Linkerd proxy skips ports: their traffic bypasses mTLS",
        rationale: "Linkerd docs, 'Proxy configuration': skip-inbound-ports and skip-outbound-ports bypass the proxy, so that traffic is not encrypted by the mesh.",
    },
    Check {
        id: "NF-MTLS-004",
        severity: Severity::Warning,
        title: "Linkerd injection disabled for a workload in a meshed namespace",
        rationale: "EKS guide, 'Service mesh': a workload without the proxy sends and accepts plain text.",
    },
    Check {
        id: "NF-MTLS-005",
        severity: Severity::Warning,
        title: "Linkerd default inbound policy all-unauthenticated",
        rationale: "Linkerd docs, 'Authorization policy': all-unauthenticated admits plain-text clients; prefer all-authenticated.",
    },
    Check {
        id: "NF-CERT-001",
        severity: Severity::Error,
        title: "Certificate whose issuer does not exist",
        rationale: "EKS guide, 'Certificate management': a Certificate is only issued by an existing Issuer, ClusterIssuer or AWSPCA issuer.",
    },
    Check {
        id: "NF-CERT-002",
        severity: Severity::Warning,
        title: "selfSigned issuer used for leaf certificates (beyond bootstrapping a CA)",
        rationale: "cert-manager docs, 'SelfSigned': use it to bootstrap a CA; self-signed leaf certificates have no chain of trust.",
    },
    Check {
        id: "NF-CERT-003",
        severity: Severity::Warning,
        title: "AWS Private CA issuer without arn or region",
        rationale: "EKS guide, 'ACM Private CA with cert-manager': the issuer names the private CA by ARN and its region.",
    },
    Check {
        id: "NF-CERT-004",
        severity: Severity::Warning,
        title: "AWS Private CA issuer with static access keys (secretRef) instead of IRSA or Pod Identity",
        rationale: "EKS guide, 'ACM Private CA with cert-manager': give the issuer an IAM role, not long-lived keys in a Secret.",
    },
    Check {
        id: "NF-CERT-005",
        severity: Severity::Info,
        title: "Certificate with isCA: an in-cluster CA whose key lives in a Secret",
        rationale: "EKS guide, 'Certificate management': prefer a managed private CA (ACM Private CA) to CA keys in Secrets.",
    },
    Check {
        id: "NF-CERT-006",
        severity: Severity::Warning,
        title: "Leaf Certificate valid for more than 397 days",
        rationale: "Short-lived certificates limit the damage of a leaked key; cert-manager defaults to 90 days, public CAs stop at 398.",
    },
];

fn check(id: &str) -> &'static Check {
    CHECKS.iter().find(|c| c.id == id).unwrap_or(&CHECKS[0])
}

/// One finding.
#[derive(Debug, Serialize)]
pub struct Finding {
    /// The check.
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

fn ignored(annotations: Option<&BTreeMap<String, String>>, id: &str) -> bool {
    annotations
        .and_then(|a| a.get(IGNORE_ANNOTATION))
        .is_some_and(|list| list.split(',').any(|x| x.trim() == id || x.trim() == "*"))
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
    /// Parse a config file; errors name the file and the field.
    pub fn from_yaml(file: &str, text: &str) -> Result<Self, String> {
        let parsed: Suppressions = if text.trim().is_empty() {
            Suppressions::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| format!("{file}: {e}"))?
        };
        for (i, rule) in parsed.ignore.iter().enumerate() {
            if rule.id != "*" && !CHECKS.iter().any(|c| c.id == rule.id) {
                return Err(format!(
                    "{file}: ignore[{i}].id: unknown check {:?} (see `netfence audit --list-checks`)",
                    rule.id
                ));
            }
        }
        Ok(parsed)
    }

    fn matches(&self, id: &str, namespace: Option<&str>, object: &str) -> bool {
        self.ignore.iter().any(|r| {
            (r.id == "*" || r.id == id)
                && r.namespace.as_deref().is_none_or(|n| Some(n) == namespace)
                && r.object.as_deref().is_none_or(|o| o == object)
        })
    }
}

struct Builder<'a> {
    engine: &'a Engine,
    config: &'a Suppressions,
    findings: Vec<Finding>,
    suppressed: usize,
    notes: Vec<String>,
}

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        id: &'static str,
        namespace: Option<&str>,
        object: String,
        origin: Option<&Origin>,
        object_annotations: Option<&BTreeMap<String, String>>,
        message: String,
        remediation: String,
    ) {
        let namespace_annotations = namespace.and_then(|ns| {
            self.engine
                .inventory()
                .namespaces
                .get(ns)
                .map(|n| &n.annotations)
        });
        if ignored(object_annotations, id)
            || ignored(namespace_annotations, id)
            || self.config.matches(id, namespace, &object)
        {
            self.suppressed += 1;
            return;
        }
        let check = check(id);
        self.findings.push(Finding {
            id,
            severity: check.severity,
            message,
            namespace: namespace.map(str::to_string),
            object,
            file: origin.map(|o| o.file.clone()),
            line: origin.map(|o| o.line),
            rationale: check.rationale,
            remediation,
        });
    }
}

/// An address outside every cluster range, used to ask "what may any address do?".
const PROBE_ADDRESS: [u8; 4] = [198, 51, 100, 77];

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
    let mut b = Builder {
        engine,
        config,
        findings: Vec::new(),
        suppressed: 0,
        notes: Vec::new(),
    };
    let inventory = engine.inventory();
    let probe = Endpoint::Address(IpAddr::from(PROBE_ADDRESS));

    // Per namespace: default deny (computed) and whether any policy selects any pod.
    let mut pods_by_namespace: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (id, pod) in inventory.pods.iter().enumerate() {
        if !pod.host_network {
            pods_by_namespace
                .entry(&pod.namespace)
                .or_default()
                .push(id);
        }
    }
    for (namespace, pods) in &pods_by_namespace {
        let ns_origin = inventory
            .namespaces
            .get(*namespace)
            .and_then(|n| n.origin.as_ref());
        let object = format!("Namespace {namespace}");
        let open = |direction: PolicyType| -> Vec<String> {
            pods.iter()
                .filter(|&&id| {
                    let verdict = match direction {
                        PolicyType::Ingress => {
                            engine
                                .explain(probe, Endpoint::Pod(id), Protocol::Tcp, 1)
                                .ingress
                        }
                        PolicyType::Egress => {
                            engine
                                .explain(Endpoint::Pod(id), probe, Protocol::Tcp, 1)
                                .egress
                        }
                    };
                    matches!(
                        verdict.outcome,
                        Outcome::NotIsolated | Outcome::DefaultAllow
                    )
                })
                .map(|&id| inventory.pods[id].name.clone())
                .collect()
        };
        for (id, direction, name) in [
            ("NF-TC-001", PolicyType::Ingress, "ingress"),
            ("NF-TC-002", PolicyType::Egress, "egress"),
        ] {
            let open_pods = open(direction);
            if !open_pods.is_empty() {
                b.add(
                    id,
                    Some(namespace),
                    object.clone(),
                    ns_origin,
                    None,
                    format!(
                        "{} of {} pods accept {name} traffic that no rule allows: {}",
                        open_pods.len(),
                        pods.len(),
                        summarize(&open_pods)
                    ),
                    format!(
                        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: default-deny-{name}\n  namespace: {namespace}\nspec:\n  podSelector: {{}}\n  policyTypes:\n  - {direction}\n"
                    ),
                );
            }
        }
        let selected = pods.iter().any(|&id| {
            !engine.selecting(id, PolicyType::Ingress).is_empty()
                || !engine.selecting(id, PolicyType::Egress).is_empty()
        });
        if !selected {
            b.add(
                "NF-TC-005",
                Some(namespace),
                object.clone(),
                ns_origin,
                None,
                format!("no policy selects any of its {} pods", pods.len()),
                format!(
                    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: default-deny\n  namespace: {namespace}\nspec:\n  podSelector: {{}}\n  policyTypes:\n  - Ingress\n  - Egress\n"
                ),
            );
        }
    }

    // DNS reachability for egress-isolated pods (computed end to end: egress and CoreDNS ingress).
    let dns_pods = cluster_dns_pods(inventory);
    if !dns_pods.is_empty() {
        for (id, pod) in inventory.pods.iter().enumerate() {
            if pod.host_network
                || dns_pods.contains(&id)
                || engine.selecting(id, PolicyType::Egress).is_empty()
            {
                continue;
            }
            let mut missing = Vec::new();
            for protocol in [Protocol::Udp, Protocol::Tcp] {
                let reachable = dns_pods.iter().any(|&dns| {
                    engine.allowed(Endpoint::Pod(id), Endpoint::Pod(dns), protocol, 53)
                });
                if !reachable {
                    missing.push(format!("{protocol} 53"));
                }
            }
            if !missing.is_empty() {
                b.add(
                    "NF-TC-003",
                    Some(&pod.namespace),
                    format!("Pod {}", pod.key()),
                    Some(&pod.origin),
                    Some(&pod.mesh_annotations),
                    format!(
                        "{} cannot reach cluster DNS ({}) on {}",
                        pod.key(),
                        inventory.pods[dns_pods[0]].key(),
                        missing.join(" and ")
                    ),
                    format!(
                        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: allow-dns\n  namespace: {}\nspec:\n  podSelector: {{}}\n  policyTypes:\n  - Egress\n  egress:\n  - to:\n    - namespaceSelector:\n        matchLabels:\n          kubernetes.io/metadata.name: kube-system\n      podSelector:\n        matchLabels:\n          k8s-app: kube-dns\n    ports:\n    - protocol: UDP\n      port: 53\n    - protocol: TCP\n      port: 53\n# and, where CoreDNS is isolated, an ingress rule admitting these pods on 53\n",
                        pod.namespace
                    ),
                );
            }
        }
    }

    // Pods open to any address on every port.
    for (id, pod) in inventory.pods.iter().enumerate() {
        if pod.host_network {
            continue;
        }
        if engine.allowed_conns(probe, Endpoint::Pod(id)).is_all() {
            b.add(
                "NF-TC-004",
                Some(&pod.namespace),
                format!("Pod {}", pod.key()),
                Some(&pod.origin),
                Some(&pod.mesh_annotations),
                format!("{} accepts connections from any address on every port and protocol", pod.key()),
                format!(
                    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {}-ingress\n  namespace: {}\nspec:\n  podSelector:\n    matchLabels: {{}}  # select {}\n  policyTypes:\n  - Ingress\n  ingress:\n  - from: []   # the peers that need it\n    ports: []  # and only their ports\n",
                    pod.workload.name, pod.namespace, pod.name
                ),
            );
        }
    }

    // Kubernetes NetworkPolicy hygiene. The guide's DNS rule selects kube-system by a `name`
    // label that it may not carry.
    let kube_system_named = inventory
        .namespaces
        .get("kube-system")
        .is_some_and(|n| n.labels.get("name").is_some_and(|v| v == "kube-system"));
    for policy in &inventory.network_policies {
        let object = format!("NetworkPolicy {}/{}", policy.namespace, policy.name);
        let annotations = Some(&policy.annotations);
        if !selects_any_pod(inventory, policy) {
            b.add(
                "NF-TC-006",
                Some(&policy.namespace),
                object.clone(),
                Some(&policy.origin),
                annotations,
                format!(
                    "spec.podSelector {} matches no pod in {}",
                    policy.pod_selector, policy.namespace
                ),
                "# fix spec.podSelector to match the intended pods' labels\n".into(),
            );
        }
        if !policy.policy_types_explicit {
            let types: Vec<String> = policy
                .policy_types
                .iter()
                .map(ToString::to_string)
                .collect();
            b.add(
                "NF-TC-008",
                Some(&policy.namespace),
                object.clone(),
                Some(&policy.origin),
                annotations,
                format!("policyTypes not set; it defaults to [{}]", types.join(", ")),
                format!(
                    "spec:\n  policyTypes:\n{}",
                    types
                        .iter()
                        .map(|t| format!("  - {t}\n"))
                        .collect::<String>()
                ),
            );
        }
        if !policy.ports_without_protocol.is_empty() {
            b.add(
                "NF-TC-009",
                Some(&policy.namespace),
                object.clone(),
                Some(&policy.origin),
                annotations,
                format!(
                    "{} {} no protocol and {} TCP only",
                    policy.ports_without_protocol.join(", "),
                    if policy.ports_without_protocol.len() == 1 {
                        "has"
                    } else {
                        "have"
                    },
                    if policy.ports_without_protocol.len() == 1 {
                        "matches"
                    } else {
                        "match"
                    }
                ),
                "ports:\n- protocol: TCP   # or UDP / SCTP: write it out\n  port: 8080\n".into(),
            );
        }
        for direction in [PolicyType::Ingress, PolicyType::Egress] {
            for (index, rule) in policy.rules(direction).iter().enumerate() {
                for (peer_index, peer) in rule.peers.iter().enumerate() {
                    let netfence_model::NpPeer::Pods {
                        namespace_selector,
                        pod_selector,
                    } = peer
                    else {
                        continue;
                    };
                    let matches_any = inventory
                        .namespaces
                        .values()
                        .filter(|n| match namespace_selector {
                            None => n.name == policy.namespace,
                            Some(s) => s.matches(&n.labels),
                        })
                        .any(|n| {
                            inventory.pods[inventory.pods_in(&n.name)]
                                .iter()
                                .any(|p| pod_selector.matches(&p.labels))
                        });
                    let field = format!(
                        "spec.{}[{index}].{}[{peer_index}]",
                        if direction == PolicyType::Ingress {
                            "ingress"
                        } else {
                            "egress"
                        },
                        if direction == PolicyType::Ingress {
                            "from"
                        } else {
                            "to"
                        }
                    );
                    if !matches_any {
                        b.add(
                            "NF-TC-007",
                            Some(&policy.namespace),
                            object.clone(),
                            Some(&policy.origin),
                            annotations,
                            format!("{field} matches no pod"),
                            format!("# check the selectors of {field} against the labels of the intended pods and namespaces\n"),
                        );
                    }
                    // The guide's DNS rule relies on kube-system carrying name=kube-system.
                    let wants_name_label = namespace_selector.as_ref().is_some_and(|s| {
                        s.requirements().iter().any(|r| {
                            matches!(r, Requirement::In(key, values) if key == "name" && values.contains("kube-system"))
                        })
                    });
                    if wants_name_label && !kube_system_named {
                        b.add(
                            "NF-TC-010",
                            Some(&policy.namespace),
                            object.clone(),
                            Some(&policy.origin),
                            annotations,
                            format!("{field} selects namespaces labelled name=kube-system, and kube-system has no such label"),
                            "kubectl label namespace kube-system name=kube-system\n# or select it by its automatic label: kubernetes.io/metadata.name: kube-system\n".into(),
                        );
                    }
                }
            }
        }
    }

    // Encryption in transit at AWS load balancers.
    const SSL_CERT: &str = "service.beta.kubernetes.io/aws-load-balancer-ssl-cert";
    const SSL_PORTS: &str = "service.beta.kubernetes.io/aws-load-balancer-ssl-ports";
    const SSL_POLICY: &str = "service.beta.kubernetes.io/aws-load-balancer-ssl-negotiation-policy";
    const BACKEND: &str = "service.beta.kubernetes.io/aws-load-balancer-backend-protocol";
    // ELB security policies that allow TLS 1.0/1.1 (AWS docs, "Security policies for your
    // Application/Network Load Balancer").
    const WEAK: [&str; 5] = [
        "ELBSecurityPolicy-2016-08",
        "ELBSecurityPolicy-TLS-1-0-2015-04",
        "ELBSecurityPolicy-TLS-1-1-2017-01",
        "ELBSecurityPolicy-2015-05",
        "ELBSecurityPolicy-FS-2018-06",
    ];
    for service in &inventory.services {
        if service.service_type != "LoadBalancer" {
            continue;
        }
        let object = format!("Service {}/{}", service.namespace, service.name);
        let a = &service.annotations;
        if !a.contains_key(SSL_CERT) || !a.contains_key(SSL_PORTS) {
            b.add(
                "NF-TLS-001",
                Some(&service.namespace),
                object.clone(),
                Some(&service.origin),
                Some(a),
                "no TLS listener: the ssl-cert and ssl-ports annotations are not both set".into(),
                format!("metadata:\n  annotations:\n    {SSL_CERT}: \"<certificate ARN>\"\n    {SSL_PORTS}: \"443\"\n"),
            );
        }
        // Without the annotation, a TLS listener gets ELBSecurityPolicy-2016-08 (AWS Load
        // Balancer Controller service annotations reference), which accepts TLS 1.0 and 1.1.
        let weak_policy = match a.get(SSL_POLICY) {
            Some(p) if WEAK.contains(&p.as_str()) => {
                Some(format!("negotiation policy {p} allows TLS versions below 1.2"))
            }
            None if a.contains_key(SSL_CERT) => Some(
                "no ssl-negotiation-policy: the default ELBSecurityPolicy-2016-08 allows TLS 1.0 and 1.1"
                    .to_string(),
            ),
            _ => None,
        };
        if let Some(message) = weak_policy {
            b.add(
                "NF-TLS-002",
                Some(&service.namespace),
                object.clone(),
                Some(&service.origin),
                Some(a),
                message,
                format!("metadata:\n  annotations:\n    {SSL_POLICY}: \"ELBSecurityPolicy-TLS13-1-2-2021-06\"\n"),
            );
        }
        if a.contains_key(SSL_CERT) && a.get(BACKEND).is_some_and(|p| p == "http" || p == "tcp") {
            b.add(
                "NF-TLS-003",
                Some(&service.namespace),
                object.clone(),
                Some(&service.origin),
                Some(a),
                format!("TLS ends at the load balancer; the backend protocol is {}", a[BACKEND]),
                format!("metadata:\n  annotations:\n    {BACKEND}: \"ssl\"  # and serve TLS in the pod\n"),
            );
        }
    }

    calico_and_admin_select_nothing(&mut b);
    shadowed_policies(&mut b);
    shadowed_other_policies(&mut b);
    service_account_rbac(&mut b);
    ingress_checks(&mut b, &WEAK);
    istio_checks(&mut b);
    cert_manager_checks(&mut b);
    linkerd_checks(&mut b);
    sg::security_group_checks(&mut b, aws);

    let order: BTreeMap<&str, usize> = CHECKS.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
    b.findings.sort_by(|x, y| {
        (
            &x.namespace,
            std::cmp::Reverse(x.severity),
            order.get(x.id),
            &x.object,
        )
            .cmp(&(
                &y.namespace,
                std::cmp::Reverse(y.severity),
                order.get(y.id),
                &y.object,
            ))
    });
    Report {
        findings: b.findings,
        suppressed: b.suppressed,
        notes: b.notes,
    }
}

/// The cluster DNS pods: CoreDNS as EKS installs it, labelled `k8s-app: kube-dns`.
fn cluster_dns_pods(inventory: &netfence_model::Inventory) -> Vec<usize> {
    inventory
        .pods
        .iter()
        .enumerate()
        .filter(|(_, p)| p.labels.get("k8s-app").is_some_and(|v| v == "kube-dns"))
        .map(|(id, _)| id)
        .collect()
}

/// Whether `policy` selects any pod of its namespace.
fn selects_any_pod(inventory: &netfence_model::Inventory, policy: &NetworkPolicy) -> bool {
    inventory.pods[inventory.pods_in(&policy.namespace)]
        .iter()
        .any(|p| policy.pod_selector.matches(&p.labels))
}

/// Whether NF-TC-011 judges `policy`: not a default-deny policy (empty podSelector, no rules),
/// which exists for pods that are not there yet, and not one selecting no pod (NF-TC-006's).
pub fn shadow_check_applies(inventory: &netfence_model::Inventory, policy: &NetworkPolicy) -> bool {
    let default_deny = policy.pod_selector.is_everything()
        && policy.ingress.is_empty()
        && policy.egress.is_empty();
    !default_deny && selects_any_pod(inventory, policy)
}

/// NF-TC-011's comparison: the connection-list lines (source, destination → connections) that
/// touch `focus`. Removing a policy only changes connections of the workloads whose pods it
/// selects, and only removes address-space cuts, so the full cluster's `cuts` serve both sides.
fn focus_lines(
    engine: &Engine,
    cuts: &netfence_engine::connlist::Cuts,
    focus: &BTreeSet<netfence_model::WorkloadRef>,
) -> BTreeMap<(netfence_engine::ListPeer, netfence_engine::ListPeer), netfence_engine::ConnSet> {
    netfence_engine::connlist::connlist_touching(engine, cuts, Some(focus))
        .into_iter()
        .filter(|c| !c.conns.is_empty())
        .map(|c| ((c.src, c.dst), c.conns))
        .collect()
}

/// Above this many (policies x pods) the shadow check is skipped with a note: it recomputes the
/// affected workloads' connectivity once per policy (about 3.4 µs per unit on the 2-core CI
/// machine: 3k pods x 600 policies took 6.1 s, so this budget is a few seconds).
pub const SHADOW_CHECK_MAX_WORK: usize = 1_000_000;

/// NF-TC-011: a NetworkPolicy whose removal leaves the workload-level connectivity (the
/// netpol-analyzer style connection list, external ranges included) unchanged. Policies that
/// select no pod are NF-TC-006's; default-deny policies (empty podSelector, no rules) are exempt:
/// they exist for pods that are not there yet.
fn shadowed_policies(b: &mut Builder<'_>) {
    let engine = b.engine;
    let inventory = engine.inventory();
    let work = inventory.network_policies.len() * inventory.pods.len();
    if work > SHADOW_CHECK_MAX_WORK {
        b.notes.push(format!(
            "NF-TC-011 skipped: {} policies x {} pods is above {SHADOW_CHECK_MAX_WORK}",
            inventory.network_policies.len(),
            inventory.pods.len()
        ));
        return;
    }
    let cuts = netfence_engine::connlist::cuts(engine);
    // Where each NetworkPolicy sits among the compiled policies.
    let compiled: BTreeMap<&str, (usize, usize)> = engine
        .tiers()
        .iter()
        .enumerate()
        .flat_map(|(t, tier)| {
            tier.policies
                .iter()
                .enumerate()
                .filter(|(_, p)| p.kind == netfence_engine::ir::PolicyKind::NetworkPolicy)
                .map(move |(p, policy)| (policy.name.as_str(), (t, p)))
        })
        .collect();
    for policy in &inventory.network_policies {
        if !shadow_check_applies(inventory, policy) {
            continue;
        }
        let focus: BTreeSet<netfence_model::WorkloadRef> = inventory.pods
            [inventory.pods_in(&policy.namespace)]
        .iter()
        .filter(|p| policy.pod_selector.matches(&p.labels))
        .map(|p| p.workload.clone())
        .collect();
        let name = format!("{}/{}", policy.namespace, policy.name);
        let Some(without) = compiled
            .get(name.as_str())
            .and_then(|&(t, p)| engine.without_policy(t, p))
        else {
            continue;
        };
        if focus_lines(&without, &cuts, &focus) == focus_lines(engine, &cuts, &focus) {
            b.add(
                "NF-TC-011",
                Some(&policy.namespace),
                format!("NetworkPolicy {}/{}", policy.namespace, policy.name),
                Some(&policy.origin),
                Some(&policy.annotations),
                "every connection it allows is allowed by other policies, and it isolates no pod that others do not".into(),
                "# delete it, or fix the rule that was meant to allow something new\n".into(),
            );
        }
    }
}

/// A finding about a compiled Calico or admin policy (`Calico NetworkPolicy ns/name`,
/// `AdminNetworkPolicy name`), in its namespace when it has one.
fn add_for_compiled(
    b: &mut Builder<'_>,
    id: &'static str,
    policy: &netfence_engine::ir::Policy,
    message: String,
    remediation: String,
) {
    let namespace = policy.name.split_once('/').map(|(ns, _)| ns);
    b.add(
        id,
        namespace,
        format!("{} {}", policy.kind, policy.name),
        Some(&policy.origin),
        None,
        message,
        remediation,
    );
}

/// NF-TC-006 for namespaced Calico policies and admin policies: a compiled policy that no pod's
/// evaluation consults. (GlobalNetworkPolicies are left out: they may be meant for host
/// endpoints, which netfence does not model.)
fn calico_and_admin_select_nothing(b: &mut Builder<'_>) {
    use netfence_engine::ir::PolicyKind;
    let engine = b.engine;
    let consulted = pods_by_compiled_policy(engine);
    for (t, tier) in engine.tiers().iter().enumerate() {
        for (p, policy) in tier.policies.iter().enumerate() {
            let judged = matches!(
                policy.kind,
                PolicyKind::CalicoNetworkPolicy
                    | PolicyKind::AdminNetworkPolicy
                    | PolicyKind::BaselineAdminNetworkPolicy
                    | PolicyKind::ClusterNetworkPolicy
            );
            let applies = policy.ingress.is_some() || policy.egress.is_some();
            if !judged || !applies || consulted.contains_key(&(t, p)) {
                continue;
            }
            add_for_compiled(
                b,
                "NF-TC-006",
                policy,
                "its selector matches no pod (host-network pods are not subject to pod policy)"
                    .into(),
                "# fix the selector (Calico spec.selector, or the admin policy's spec.subject) to match the intended pods
".into(),
            );
        }
    }
}

/// NF-TC-011 for Calico and admin policies: a policy with rules whose removal leaves the
/// connection lines of the workloads it selects unchanged. Policies without rules only isolate
/// (a Calico default deny, an admin policy that only passes) and are exempt, as Kubernetes
/// default-deny policies are.
fn shadowed_other_policies(b: &mut Builder<'_>) {
    let engine = b.engine;
    let inventory = engine.inventory();
    let count = inventory.calico_policies.len() + inventory.admin_policies.len();
    if count == 0 {
        return;
    }
    if count * inventory.pods.len() > SHADOW_CHECK_MAX_WORK {
        b.notes.push(format!(
            "NF-TC-011 skipped for Calico and admin policies: {count} policies x {} pods is above {SHADOW_CHECK_MAX_WORK}",
            inventory.pods.len()
        ));
        return;
    }
    let cuts = netfence_engine::connlist::cuts(engine);
    for (t, p, focus) in shadow_candidates(engine) {
        let Some(without) = engine.without_policy(t, p) else {
            continue;
        };
        if focus_lines(&without, &cuts, &focus) == focus_lines(engine, &cuts, &focus) {
            add_for_compiled(
                b,
                "NF-TC-011",
                &engine.tiers()[t].policies[p],
                "every connection it allows or denies is decided the same way without it".into(),
                "# delete it, or fix the rule that was meant to change something\n".into(),
            );
        }
    }
}

/// For each compiled policy `(tier, policy)`, the pods whose evaluation consults it (in
/// either direction); policies no pod consults are absent.
fn pods_by_compiled_policy(engine: &Engine) -> BTreeMap<(usize, usize), BTreeSet<usize>> {
    let mut pods: BTreeMap<(usize, usize), BTreeSet<usize>> = BTreeMap::new();
    for id in 0..engine.inventory().pods.len() {
        for d in [PolicyType::Ingress, PolicyType::Egress] {
            for &key in engine.selecting(id, d) {
                pods.entry(key).or_default().insert(id);
            }
        }
    }
    pods
}

/// The Calico and admin policies NF-TC-011 judges, as `(tier, policy, workloads it selects)`:
/// those with rules that some pod's evaluation consults. (Kubernetes NetworkPolicies are judged
/// by [`shadow_check_applies`].)
pub fn shadow_candidates(
    engine: &Engine,
) -> Vec<(usize, usize, BTreeSet<netfence_model::WorkloadRef>)> {
    let inventory = engine.inventory();
    pods_by_compiled_policy(engine)
        .into_iter()
        .filter(|&((t, p), _)| {
            let policy = &engine.tiers()[t].policies[p];
            let has_rules = [PolicyType::Ingress, PolicyType::Egress]
                .into_iter()
                .any(|d| policy.rules(d).is_some_and(|r| !r.is_empty()));
            policy.kind != netfence_engine::ir::PolicyKind::NetworkPolicy && has_rules
        })
        .map(|((t, p), pods)| {
            let workloads = pods
                .into_iter()
                .map(|id| inventory.pods[id].workload.clone())
                .collect();
            (t, p, workloads)
        })
        .collect()
}

/// NF-TC-012: the ServiceAccounts Calico policies select (`serviceAccountSelector`, or a rule's
/// `serviceAccounts` names/selector), and the RBAC bindings that let a subject update or patch
/// them (Kubernetes RBAC: a rule covers the object when apiGroups has "" or "*", resources has
/// "serviceaccounts" or "*", verbs has update, patch or "*", and resourceNames is empty or names
/// it; a RoleBinding grants in its namespace, a ClusterRoleBinding everywhere). `system:`
/// subjects and kube-system service accounts are the control plane's and are not reported.
fn service_account_rbac(b: &mut Builder<'_>) {
    let engine = b.engine;
    let inventory = engine.inventory();
    let mut selected: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for policy in &inventory.calico_policies {
        let namespace_ok = |ns: &str| match &policy.scope {
            netfence_model::calico::CalicoScope::Namespace(n) => n == ns,
            netfence_model::calico::CalicoScope::Global { .. } => true,
        };
        let mut matchers: Vec<(Vec<String>, Option<&netfence_selector::calico::Selector>)> =
            Vec::new();
        if let Some(selector) = &policy.service_account_selector {
            matchers.push((Vec::new(), Some(selector)));
        }
        for rule in policy.ingress.iter().chain(&policy.egress) {
            for entity in [&rule.source, &rule.destination] {
                if let Some(sa) = &entity.service_accounts {
                    matchers.push((sa.names.clone(), sa.selector.as_ref()));
                }
            }
        }
        for sa in &inventory.service_accounts {
            if !namespace_ok(&sa.namespace) {
                continue;
            }
            let hit = matchers.iter().any(|(names, selector)| {
                (names.is_empty() || names.contains(&sa.name))
                    && selector.is_none_or(|s| s.matches(&sa.labels))
            });
            if hit {
                selected
                    .entry((sa.namespace.clone(), sa.name.clone()))
                    .or_default()
                    .insert(policy.display_name());
            }
        }
    }
    if selected.is_empty() {
        return;
    }
    let grants = |rule: &netfence_model::RbacRule, sa: &str| {
        let any =
            |list: &[String], wanted: &[&str]| list.iter().any(|x| wanted.contains(&x.as_str()));
        any(&rule.api_groups, &["", "*"])
            && any(&rule.resources, &["serviceaccounts", "*"])
            && any(&rule.verbs, &["update", "patch", "*"])
            && (rule.resource_names.is_empty() || rule.resource_names.iter().any(|n| n == sa))
    };
    for binding in &inventory.rbac_bindings {
        let (role_kind, role_name) = &binding.role_ref;
        let role = inventory.rbac_roles.iter().find(|r| {
            &r.kind == role_kind
                && &r.name == role_name
                && (r.kind == "ClusterRole" || r.namespace == binding.namespace)
        });
        let rules = match role {
            Some(role) => effective_rules(inventory, role),
            None if role_kind == "ClusterRole" => builtin_cluster_role(role_name),
            None => continue,
        };
        let subjects: Vec<String> = binding
            .subjects
            .iter()
            .filter(|(kind, name, namespace)| {
                let control_plane = name.starts_with("system:")
                    || (kind == "ServiceAccount" && namespace.as_deref() == Some("kube-system"));
                !control_plane
            })
            .map(|(kind, name, namespace)| match namespace {
                Some(ns) if kind == "ServiceAccount" => format!("{kind} {ns}/{name}"),
                _ => format!("{kind} {name}"),
            })
            .collect();
        if subjects.is_empty() {
            continue;
        }
        for ((namespace, name), policies) in &selected {
            let in_scope = binding
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == namespace);
            if in_scope && rules.iter().any(|r| grants(r, name)) {
                b.add(
                    "NF-TC-012",
                    Some(namespace),
                    format!("{} {}", binding.kind, match &binding.namespace {
                        Some(ns) => format!("{ns}/{}", binding.name),
                        None => binding.name.clone(),
                    }),
                    Some(&binding.origin),
                    Some(&binding.annotations),
                    format!(
                        "{} can modify (update or patch) ServiceAccount {namespace}/{name} (through {role_kind} {role_name}), which Calico policy {} selects",
                        subjects.join(", "),
                        policies.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                    format!("# grant only read access to the ServiceAccount, as the guide's example does:\nrules:\n- apiGroups: [\"\"]\n  resources: [\"serviceaccounts\"]\n  resourceNames: [\"{name}\"]\n  verbs: [\"get\", \"watch\", \"list\"]\n"),
                );
            }
        }
    }
}

/// A role's rules, with those of the ClusterRoles its `aggregationRule` selects (transitively,
/// as the aggregation controller keeps them; Kubernetes RBAC docs, "Aggregated ClusterRoles").
fn effective_rules(
    inventory: &netfence_model::Inventory,
    role: &netfence_model::RbacRole,
) -> Vec<netfence_model::RbacRule> {
    let mut rules = role.rules.clone();
    let mut seen: BTreeSet<&str> = BTreeSet::from([role.name.as_str()]);
    let mut pending: Vec<&netfence_model::RbacRole> = vec![role];
    while let Some(current) = pending.pop() {
        for selector in &current.aggregation {
            for other in &inventory.rbac_roles {
                if other.kind == "ClusterRole"
                    && selector.matches(&other.labels)
                    && seen.insert(other.name.as_str())
                {
                    rules.extend(other.rules.iter().cloned());
                    pending.push(other);
                }
            }
        }
    }
    rules
}

/// The default user-facing ClusterRoles, for bindings whose role is not in the input: `edit`
/// and `admin` (which aggregates `edit`) write ServiceAccounts, `cluster-admin` does everything
/// (Kubernetes bootstrap policy, `plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go`:
/// system:aggregate-to-edit grants create, delete, deletecollection, patch and update on
/// serviceaccounts). Other unknown roles grant nothing netfence can see.
fn builtin_cluster_role(name: &str) -> Vec<netfence_model::RbacRule> {
    let rule = |resources: &str, verbs: &[&str]| netfence_model::RbacRule {
        api_groups: vec![if resources == "*" { "*" } else { "" }.into()],
        resources: vec![resources.into()],
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        resource_names: Vec::new(),
    };
    match name {
        "cluster-admin" => vec![rule("*", &["*"])],
        "admin" | "edit" => vec![rule(
            "serviceaccounts",
            &["create", "delete", "deletecollection", "patch", "update"],
        )],
        _ => Vec::new(),
    }
}

/// TLS at Ingresses: any controller needs `spec.tls`; the AWS Load Balancer Controller needs an
/// HTTPS listener instead (its "Ingress annotations" guide: `listen-ports` defaults to HTTP 80,
/// or to HTTPS 443 when `certificate-arn` is set; certificate discovery needs HTTPS listed
/// explicitly, "Certificate Discovery").
fn ingress_checks(b: &mut Builder<'_>, weak: &[&str]) {
    const CERT: &str = "alb.ingress.kubernetes.io/certificate-arn";
    const LISTEN: &str = "alb.ingress.kubernetes.io/listen-ports";
    const SSL_POLICY: &str = "alb.ingress.kubernetes.io/ssl-policy";
    const BACKEND: &str = "alb.ingress.kubernetes.io/backend-protocol";
    const GROUP: &str = "alb.ingress.kubernetes.io/group.name";
    let engine = b.engine;
    for ingress in &engine.inventory().ingresses {
        let object = format!("Ingress {}/{}", ingress.namespace, ingress.name);
        let a = &ingress.annotations;
        let ns = Some(ingress.namespace.as_str());
        let origin = Some(&ingress.origin);
        if !ingress.is_alb() {
            if ingress.tls_entries == 0 {
                b.add(
                    "NF-TLS-004",
                    ns,
                    object,
                    origin,
                    Some(a),
                    format!(
                        "spec.tls is empty: {} is served over plain HTTP",
                        if ingress.rule_hosts.is_empty() {
                            "every host".to_string()
                        } else {
                            ingress.rule_hosts.join(", ")
                        }
                    ),
                    "spec:\n  tls:\n  - hosts:\n    - <host>\n    secretName: <host>-tls  # e.g. issued by cert-manager\n".into(),
                );
            }
            continue;
        }
        let https = match &ingress.listen_ports {
            Some(ports) => ports.iter().any(|(p, _)| p == "HTTPS"),
            None => a.contains_key(CERT),
        };
        if !https {
            b.add(
                "NF-TLS-004",
                ns,
                object.clone(),
                origin,
                Some(a),
                format!(
                    "the ALB has no HTTPS listener ({})",
                    if ingress.listen_ports.is_some() {
                        "listen-ports lists HTTP only"
                    } else {
                        "no listen-ports and no certificate-arn: HTTP 80 only"
                    }
                ),
                format!("metadata:\n  annotations:\n    {LISTEN}: '[{{\"HTTPS\": 443}}]'\n    {CERT}: \"<ACM certificate ARN>\"\n"),
            );
            continue;
        }
        if !a.contains_key(CERT) {
            let hosts: BTreeSet<&String> = ingress
                .tls_hosts
                .iter()
                .chain(&ingress.rule_hosts)
                .collect();
            b.add(
                "NF-TLS-005",
                ns,
                object.clone(),
                origin,
                Some(a),
                if hosts.is_empty() {
                    "no certificate-arn and no hosts to discover a certificate by: the HTTPS listener cannot get one".to_string()
                } else {
                    format!(
                        "no certificate-arn: the certificate is discovered from ACM for {}",
                        hosts.into_iter().cloned().collect::<Vec<_>>().join(", ")
                    )
                },
                format!("metadata:\n  annotations:\n    {CERT}: \"<ACM certificate ARN>\"\n"),
            );
        }
        // ssl-policy is exclusive within an IngressGroup: another member may set it. Without
        // one, the AWS Load Balancer Controller uses ELBSecurityPolicy-2016-08 (its ingress
        // annotations reference), which still accepts TLS 1.0 and 1.1.
        let group = a.get(GROUP);
        let policy = a.get(SSL_POLICY).or_else(|| {
            group.and_then(|g| {
                engine
                    .inventory()
                    .ingresses
                    .iter()
                    .filter(|other| other.annotations.get(GROUP) == Some(g))
                    .find_map(|other| other.annotations.get(SSL_POLICY))
            })
        });
        let weak_policy = match policy {
            Some(p) if weak.contains(&p.as_str()) => {
                Some(format!("ssl-policy {p} allows TLS versions below 1.2"))
            }
            Some(_) => None,
            None => Some(
                "no ssl-policy: the controller's default ELBSecurityPolicy-2016-08 allows TLS 1.0 and 1.1"
                    .to_string(),
            ),
        };
        if let Some(message) = weak_policy {
            b.add(
                "NF-TLS-006",
                ns,
                object.clone(),
                origin,
                Some(a),
                message,
                format!("metadata:\n  annotations:\n    {SSL_POLICY}: \"ELBSecurityPolicy-TLS13-1-2-2021-06\"\n"),
            );
        }
        // backend-protocol defaults to HTTP.
        let backend = a.get(BACKEND).map_or("HTTP", String::as_str);
        if !backend.eq_ignore_ascii_case("HTTPS") {
            b.add(
                "NF-TLS-003",
                ns,
                object,
                origin,
                Some(a),
                format!("TLS ends at the ALB; the backend protocol is {backend}"),
                format!("metadata:\n  annotations:\n    {BACKEND}: \"HTTPS\"  # and serve TLS in the pod\n"),
            );
        }
    }
}

/// Istio mTLS (istio.io, "PeerAuthentication" and "Mutual TLS Migration"): a policy in the root
/// namespace without a selector is mesh-wide; namespace and workload policies override it, and
/// with no policy at all sidecars accept plain text (PERMISSIVE).
fn istio_checks(b: &mut Builder<'_>) {
    let engine = b.engine;
    let inventory = engine.inventory();
    // The root namespace comes from the mesh config (the `istio` ConfigMap's rootNamespace, by
    // default istiod's namespace); without one in the input, Istio's default istio-system.
    let configs = &inventory.istio_mesh_configs;
    let chosen = configs
        .iter()
        .find(|c| c.name == "istio")
        .or_else(|| configs.first());
    let root: &str = chosen.map_or("istio-system", |c| c.root_namespace.as_str());
    if let Some(c) = chosen {
        let others: BTreeSet<&str> = configs
            .iter()
            .map(|c| c.root_namespace.as_str())
            .filter(|r| *r != root)
            .collect();
        if !others.is_empty() {
            b.notes.push(format!(
                "Istio root namespace {root} (ConfigMap {}/{}); other mesh configs name {}",
                c.namespace,
                c.name,
                others.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let labelled = inventory.namespaces.values().any(|n| {
        n.labels
            .get("istio-injection")
            .is_some_and(|v| v == "enabled")
            || n.labels.contains_key("istio.io/rev")
    });
    let injected = inventory.pods.iter().any(|p| {
        p.mesh_annotations
            .get("sidecar.istio.io/inject")
            .is_some_and(|v| v == "true")
            || p.labels
                .get("sidecar.istio.io/inject")
                .is_some_and(|v| v == "true")
    });
    let policies = &inventory.peer_authentications;
    if !labelled && !injected && policies.is_empty() {
        return;
    }
    let mesh_wide = policies
        .iter()
        .find(|p| p.namespace == root && p.selector.is_none());
    if mesh_wide.is_none_or(|p| p.mode != netfence_model::MtlsMode::Strict) {
        let (object, origin, annotations, message) = match mesh_wide {
            Some(p) => (
                format!("PeerAuthentication {}/{}", p.namespace, p.name),
                Some(&p.origin),
                Some(&p.annotations),
                format!("the mesh-wide policy's mode is {}, not STRICT", p.mode),
            ),
            None => (
                format!("Namespace {root}"),
                inventory
                    .namespaces
                    .get(root)
                    .and_then(|n| n.origin.as_ref()),
                None,
                format!("no PeerAuthentication without a selector in {root}: sidecars accept plain text (PERMISSIVE)"),
            ),
        };
        b.add(
            "NF-MTLS-001",
            Some(root),
            object,
            origin,
            annotations,
            message,
            format!("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: {root}\nspec:\n  mtls:\n    mode: STRICT\n"),
        );
    }
    for p in policies {
        if p.namespace == root && p.selector.is_none() {
            continue;
        }
        let weak = |m: netfence_model::MtlsMode| {
            matches!(
                m,
                netfence_model::MtlsMode::Permissive | netfence_model::MtlsMode::Disable
            )
        };
        let mut relaxed = Vec::new();
        if weak(p.mode) {
            relaxed.push(format!(
                "{} for {}",
                p.mode,
                if p.selector.is_some() {
                    "its workloads"
                } else {
                    "the namespace"
                }
            ));
        }
        for (port, mode) in &p.port_modes {
            if weak(*mode) {
                relaxed.push(format!("{mode} on port {port}"));
            }
        }
        if !relaxed.is_empty() {
            b.add(
                "NF-MTLS-002",
                Some(&p.namespace),
                format!("PeerAuthentication {}/{}", p.namespace, p.name),
                Some(&p.origin),
                Some(&p.annotations),
                format!("mTLS relaxed: {}", relaxed.join(", ")),
                "spec:\n  mtls:\n    mode: STRICT   # after every client has a sidecar\n".into(),
            );
        }
    }
}

/// cert-manager (cert-manager.io docs, "Issuer Configuration" and "Certificate resource";
/// aws-privateca-issuer README).
fn cert_manager_checks(b: &mut Builder<'_>) {
    const MAX_LEAF_SECONDS: u64 = 397 * 24 * 3600;
    let engine = b.engine;
    let inventory = engine.inventory();
    let issuers = &inventory.cert_issuers;
    let find = |(group, kind, name): &(String, String, String), namespace: &str| {
        issuers.iter().find(|i| {
            &i.group == group
                && &i.kind == kind
                && &i.name == name
                && (i.namespace.is_none() || i.namespace.as_deref() == Some(namespace))
        })
    };
    let known_group = |g: &str| g == "cert-manager.io" || g == "awspca.cert-manager.io";
    let mut self_signed_leaves: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for cert in &inventory.certificates {
        let object = format!("Certificate {}/{}", cert.namespace, cert.name);
        let a = Some(&cert.annotations);
        let (group, kind, name) = &cert.issuer_ref;
        let issuer = find(&cert.issuer_ref, &cert.namespace);
        // Issuers of other groups (external issuers netfence does not know) are not judged.
        if issuer.is_none() && known_group(group) {
            b.add(
                "NF-CERT-001",
                Some(&cert.namespace),
                object.clone(),
                Some(&cert.origin),
                a,
                format!(
                    "spec.issuerRef names {kind} {name} ({group}){}, which is not in the input",
                    if kind.contains("Cluster") {
                        String::new()
                    } else {
                        format!(" in {}", cert.namespace)
                    }
                ),
                format!(
                    "# create the {kind} {name}, or point spec.issuerRef at an existing issuer\n"
                ),
            );
        }
        if let Some(issuer) = issuer.filter(|i| i.issuer_type == "selfSigned" && !cert.is_ca) {
            let index = issuers
                .iter()
                .position(|i| std::ptr::eq(i, issuer))
                .unwrap_or_default();
            self_signed_leaves
                .entry(index)
                .or_default()
                .push(format!("{}/{}", cert.namespace, cert.name));
        }
        if cert.is_ca {
            b.add(
                "NF-CERT-005",
                Some(&cert.namespace),
                object.clone(),
                Some(&cert.origin),
                a,
                "isCA: true; the CA's private key is kept in a Kubernetes Secret".into(),
                "# issue from ACM Private CA with an AWSPCAClusterIssuer instead of an in-cluster CA\n".into(),
            );
        }
        if let Some(seconds) = cert
            .duration_seconds
            .filter(|&s| !cert.is_ca && s > MAX_LEAF_SECONDS)
        {
            b.add(
                "NF-CERT-006",
                Some(&cert.namespace),
                object,
                Some(&cert.origin),
                a,
                format!("spec.duration is {} days", seconds / 86_400),
                "spec:\n  duration: 2160h   # 90 days\n  renewBefore: 360h\n".into(),
            );
        }
    }
    for (index, leaves) in self_signed_leaves {
        let issuer = &issuers[index];
        b.add(
            "NF-CERT-002",
            issuer.namespace.as_deref(),
            format!("{} {}", issuer.kind, issuer_key(issuer)),
            Some(&issuer.origin),
            Some(&issuer.annotations),
            format!("signs leaf certificates: {}", summarize(&leaves)),
            "# use the selfSigned issuer only for the CA Certificate (isCA: true), then issue leaves\n# from a `ca` issuer holding that CA, or from an AWSPCAClusterIssuer\n".into(),
        );
    }
    for issuer in issuers.iter().filter(|i| i.issuer_type == "awspca") {
        let object = format!("{} {}", issuer.kind, issuer_key(issuer));
        let missing: Vec<&str> = [("arn", &issuer.arn), ("region", &issuer.region)]
            .into_iter()
            .filter(|(_, v)| v.as_deref().is_none_or(str::is_empty))
            .map(|(k, _)| k)
            .collect();
        if !missing.is_empty() {
            b.add(
                "NF-CERT-003",
                issuer.namespace.as_deref(),
                object.clone(),
                Some(&issuer.origin),
                Some(&issuer.annotations),
                format!("spec.{} not set", missing.join(" and spec.")),
                "spec:\n  arn: arn:aws:acm-pca:<region>:<account>:certificate-authority/<id>\n  region: <region>\n".into(),
            );
        }
        if issuer.static_credentials {
            b.add(
                "NF-CERT-004",
                issuer.namespace.as_deref(),
                object,
                Some(&issuer.origin),
                Some(&issuer.annotations),
                "spec.secretRef supplies static AWS access keys".into(),
                "# remove spec.secretRef; annotate the issuer's ServiceAccount with\n# eks.amazonaws.com/role-arn (IRSA) or create an EKS Pod Identity association\n".into(),
            );
        }
    }
}

fn issuer_key(issuer: &netfence_model::CertIssuer) -> String {
    match &issuer.namespace {
        Some(ns) => format!("{ns}/{}", issuer.name),
        None => issuer.name.clone(),
    }
}

/// Linkerd (linkerd.io, "Proxy Configuration" and "Authorization Policy"): annotations on the
/// namespace apply to its pods; the pod's own annotation wins.
fn linkerd_checks(b: &mut Builder<'_>) {
    const INJECT: &str = "linkerd.io/inject";
    let engine = b.engine;
    let inventory = engine.inventory();
    for ns in inventory.namespaces.values() {
        linkerd_proxy_settings(
            b,
            LinkerdScope {
                namespace: &ns.name,
                object: format!("Namespace {}", ns.name),
                origin: ns.origin.as_ref(),
                // The namespace's own annotations are already consulted for suppression.
                suppressing: None,
                annotations: &ns.annotations,
                skip_message: "every pod in the namespace skips the proxy",
                who: "namespace",
            },
        );
    }
    // One finding per workload, not per pod.
    let mut seen = BTreeSet::new();
    for pod in &inventory.pods {
        if pod.mesh_annotations.is_empty() || !seen.insert(pod.workload.to_string()) {
            continue;
        }
        let object = format!(
            "{} {}/{}",
            pod.workload.kind, pod.workload.namespace, pod.workload.name
        );
        let a = &pod.mesh_annotations;
        linkerd_proxy_settings(
            b,
            LinkerdScope {
                namespace: &pod.namespace,
                object: object.clone(),
                origin: Some(&pod.origin),
                suppressing: Some(a),
                annotations: a,
                skip_message: "traffic on these ports bypasses the proxy",
                who: "workload",
            },
        );
        let namespace_meshed = inventory
            .namespaces
            .get(&pod.namespace)
            .and_then(|n| n.annotations.get(INJECT))
            .is_some_and(|v| v == "enabled");
        if namespace_meshed && a.get(INJECT).is_some_and(|v| v == "disabled") {
            b.add(
                "NF-MTLS-004",
                Some(&pod.namespace),
                object,
                Some(&pod.origin),
                Some(a),
                format!("{INJECT}: disabled in a namespace annotated {INJECT}: enabled"),
                format!("# remove {INJECT}: disabled from the pod template\n"),
            );
        }
    }
}

/// Where Linkerd proxy annotations were found: a namespace or a workload's pod template.
struct LinkerdScope<'a> {
    namespace: &'a str,
    object: String,
    origin: Option<&'a Origin>,
    suppressing: Option<&'a BTreeMap<String, String>>,
    annotations: &'a BTreeMap<String, String>,
    skip_message: &'static str,
    who: &'static str,
}

/// NF-MTLS-003 (skipped ports) and NF-MTLS-005 (all-unauthenticated) for one scope.
fn linkerd_proxy_settings(b: &mut Builder<'_>, scope: LinkerdScope<'_>) {
    const SKIPS: [&str; 2] = [
        "config.linkerd.io/skip-inbound-ports",
        "config.linkerd.io/skip-outbound-ports",
    ];
    const POLICY: &str = "config.linkerd.io/default-inbound-policy";
    let a = scope.annotations;
    let skipped: Vec<String> = SKIPS
        .iter()
        .filter_map(|k| {
            a.get(*k)
                .filter(|v| !v.trim().is_empty())
                .map(|v| format!("{k}={v}"))
        })
        .collect();
    if !skipped.is_empty() {
        b.add(
            "NF-MTLS-003",
            Some(scope.namespace),
            scope.object.clone(),
            scope.origin,
            scope.suppressing,
            format!("{}: {}", scope.skip_message, skipped.join(", ")),
            "# remove the skip annotations; for server-speaks-first protocols use\n# config.linkerd.io/opaque-ports instead, which keeps mTLS\n".into(),
        );
    }
    if a.get(POLICY).is_some_and(|v| v == "all-unauthenticated") {
        b.add(
            "NF-MTLS-005",
            Some(scope.namespace),
            scope.object,
            scope.origin,
            scope.suppressing,
            format!(
                "the {}'s default inbound policy admits unauthenticated (plain-text) clients",
                scope.who
            ),
            format!("metadata:\n  annotations:\n    {POLICY}: all-authenticated\n"),
        );
    }
}

fn summarize(names: &[String]) -> String {
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
