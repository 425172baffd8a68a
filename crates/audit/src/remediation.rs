//! Remediation YAML, serialized from small typed values rather than formatted text, so that
//! names taken from the input are always written as YAML needs. Comments, which YAML values
//! cannot carry, follow the document on their own lines.

use netfence_model::PolicyType;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;

/// `value` as a YAML document (a serialization error, which these types cannot produce, is
/// written as a comment rather than a panic).
pub(crate) fn yaml(value: &impl Serialize) -> String {
    serde_yaml_ng::to_string(value)
        .unwrap_or_else(|e| format!("# netfence could not write this remediation: {e}\n"))
}

/// A namespaced Kubernetes object: `apiVersion`, `kind`, `metadata` (name, namespace), `spec`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest<'a, S> {
    api_version: &'static str,
    kind: &'static str,
    metadata: ObjectMeta<'a>,
    spec: S,
}

#[derive(Serialize)]
struct ObjectMeta<'a> {
    name: String,
    namespace: &'a str,
}

impl<'a> Manifest<'a, NetworkPolicySpec<'a>> {
    /// A `networking.k8s.io/v1` NetworkPolicy.
    pub(crate) fn network_policy(
        name: String,
        namespace: &'a str,
        spec: NetworkPolicySpec<'a>,
    ) -> Self {
        Manifest {
            api_version: "networking.k8s.io/v1",
            kind: "NetworkPolicy",
            metadata: ObjectMeta { name, namespace },
            spec,
        }
    }
}

impl<'a> Manifest<'a, PeerAuthenticationSpec> {
    /// An Istio `security.istio.io/v1` PeerAuthentication with the given mTLS mode.
    pub(crate) fn peer_authentication(name: &str, namespace: &'a str, mode: &'static str) -> Self {
        Manifest {
            api_version: "security.istio.io/v1",
            kind: "PeerAuthentication",
            metadata: ObjectMeta {
                name: name.to_string(),
                namespace,
            },
            spec: PeerAuthenticationSpec {
                mtls: Mtls { mode },
            },
        }
    }
}

/// A NetworkPolicy's spec, in the field order of the Kubernetes documentation's examples.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NetworkPolicySpec<'a> {
    /// Which pods it selects.
    pub(crate) pod_selector: LabelSelector<'a>,
    /// Ingress, Egress or both.
    pub(crate) policy_types: Vec<PolicyType>,
    /// Ingress rules (left out when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) ingress: Vec<NetworkPolicyRule<'a>>,
    /// Egress rules (left out when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) egress: Vec<NetworkPolicyRule<'a>>,
}

/// A label selector: `{}` (everything) without `match_labels`, `matchLabels: {…}` with it.
#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LabelSelector<'a> {
    /// The labels to match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) match_labels: Option<BTreeMap<&'a str, &'a str>>,
}

impl<'a> LabelSelector<'a> {
    /// `matchLabels: {key: value}`.
    pub(crate) fn labels(key: &'a str, value: &'a str) -> Self {
        LabelSelector {
            match_labels: Some(BTreeMap::from([(key, value)])),
        }
    }
}

/// A NetworkPolicy rule: `from` (ingress) or `to` (egress) peers, and ports.
#[derive(Serialize)]
pub(crate) struct NetworkPolicyRule<'a> {
    /// Ingress peers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) from: Option<Vec<NetworkPolicyPeer<'a>>>,
    /// Egress peers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) to: Option<Vec<NetworkPolicyPeer<'a>>>,
    /// Ports.
    pub(crate) ports: Vec<NetworkPolicyPort>,
}

/// Pods in namespaces.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NetworkPolicyPeer<'a> {
    /// Which namespaces.
    pub(crate) namespace_selector: LabelSelector<'a>,
    /// Which pods in them.
    pub(crate) pod_selector: LabelSelector<'a>,
}

/// A protocol and port.
#[derive(Serialize)]
pub(crate) struct NetworkPolicyPort {
    /// `TCP`, `UDP` or `SCTP`.
    pub(crate) protocol: &'static str,
    /// The port number.
    pub(crate) port: u16,
}

#[derive(Serialize)]
pub(crate) struct PeerAuthenticationSpec {
    mtls: Mtls,
}

#[derive(Serialize)]
struct Mtls {
    mode: &'static str,
}

/// A fragment setting annotations, in the order given: `metadata: {annotations: {…}}`.
pub(crate) fn annotations(pairs: &[(&str, &str)]) -> String {
    #[derive(Serialize)]
    struct Metadata<'p> {
        annotations: Ordered<'p>,
    }
    #[derive(Serialize)]
    struct Patch<'p> {
        metadata: Metadata<'p>,
    }
    yaml(&Patch {
        metadata: Metadata {
            annotations: Ordered(pairs),
        },
    })
}

/// A map serialized in the order of its pairs.
struct Ordered<'p>(&'p [(&'p str, &'p str)]);

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// A fragment setting a NetworkPolicy's `spec.policyTypes`.
pub(crate) fn policy_types(types: &[PolicyType]) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Spec<'t> {
        policy_types: &'t [PolicyType],
    }
    #[derive(Serialize)]
    struct Patch<'t> {
        spec: Spec<'t>,
    }
    yaml(&Patch {
        spec: Spec {
            policy_types: types,
        },
    })
}

/// An RBAC rule (`rules:` of a Role or ClusterRole).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PolicyRule<'a> {
    /// API groups (`""` is the core group).
    pub(crate) api_groups: &'a [&'a str],
    /// Resources.
    pub(crate) resources: &'a [&'a str],
    /// Names of the objects it is limited to.
    pub(crate) resource_names: &'a [&'a str],
    /// Verbs.
    pub(crate) verbs: &'a [&'a str],
}

/// A fragment with a Role's `rules:`.
pub(crate) fn rules(rules: &[PolicyRule<'_>]) -> String {
    #[derive(Serialize)]
    struct Patch<'r> {
        rules: &'r [PolicyRule<'r>],
    }
    yaml(&Patch { rules })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_deny_policy_reads_as_written_by_hand() {
        let policy = Manifest::network_policy(
            "default-deny".into(),
            "team",
            NetworkPolicySpec {
                pod_selector: LabelSelector::default(),
                policy_types: vec![PolicyType::Ingress, PolicyType::Egress],
                ingress: Vec::new(),
                egress: Vec::new(),
            },
        );
        assert_eq!(
            yaml(&policy),
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: default-deny\n  namespace: team\nspec:\n  podSelector: {}\n  policyTypes:\n  - Ingress\n  - Egress\n"
        );
    }

    #[test]
    fn values_that_are_not_plain_strings_are_quoted() {
        assert_eq!(
            annotations(&[("ports", "443"), ("listen", "[{\"HTTPS\": 443}]"), ("empty", "")]),
            "metadata:\n  annotations:\n    ports: '443'\n    listen: '[{\"HTTPS\": 443}]'\n    empty: ''\n"
        );
    }
}
