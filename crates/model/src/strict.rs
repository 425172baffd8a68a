//! Strict field validation of policy objects, as `kubectl apply --validate=strict` does.
//!
//! A misspelt field that a lenient decoder drops changes a verdict without a word: a
//! `matchLabel` typo leaves `podSelector: {}` and isolates every pod of the namespace; a
//! Calico `selecter` leaves a Deny rule that matches everything. The API server rejects such
//! objects ("strict decoding error: unknown field"), so netfence does too, for every kind
//! whose fields decide a verdict. The shapes below list field names only; types and values
//! are checked by the typed decoding and validation that follow.
//!
//! Sources: Kubernetes API reference (NetworkPolicy, ObjectMeta, LabelSelector); Calico v3
//! API reference (NetworkPolicy, GlobalNetworkPolicy, Rule, EntityRule, ICMP, HTTPMatch,
//! NetworkSet, GlobalNetworkSet, Tier); network-policy-api v0.1.5+ `apis/v1alpha1` and
//! `apis/v1alpha2`; amazon-vpc-resource-controller-k8s `SecurityGroupPolicy` CRD; cilium/cilium
//! `pkg/policy/api` (CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy).

use serde_json::Value;

/// What a value may look like, as far as field names go.
pub(crate) enum Shape {
    /// Anything: a scalar, or a structure whose field names are not checked here.
    Any,
    /// A mapping with these fields (and no others).
    Fields(&'static [(&'static str, &'static Shape)]),
    /// A list whose items have the shape.
    List(&'static Shape),
}

use Shape::{Any, Fields, List};

static OBJECT_META: Shape = Fields(&[
    ("name", &Any),
    ("generateName", &Any),
    ("namespace", &Any),
    ("selfLink", &Any),
    ("uid", &Any),
    ("resourceVersion", &Any),
    ("generation", &Any),
    ("creationTimestamp", &Any),
    ("deletionTimestamp", &Any),
    ("deletionGracePeriodSeconds", &Any),
    ("labels", &Any),
    ("annotations", &Any),
    ("ownerReferences", &Any),
    ("finalizers", &Any),
    ("managedFields", &Any),
]);

static LABEL_SELECTOR_REQUIREMENT: Shape =
    Fields(&[("key", &Any), ("operator", &Any), ("values", &Any)]);

static LABEL_SELECTOR: Shape = Fields(&[
    ("matchLabels", &Any),
    ("matchExpressions", &List(&LABEL_SELECTOR_REQUIREMENT)),
]);

// ---- networking.k8s.io/v1 NetworkPolicy -------------------------------------------------

static IP_BLOCK: Shape = Fields(&[("cidr", &Any), ("except", &Any)]);

static NETWORK_POLICY_PEER: Shape = Fields(&[
    ("podSelector", &LABEL_SELECTOR),
    ("namespaceSelector", &LABEL_SELECTOR),
    ("ipBlock", &IP_BLOCK),
]);

static NETWORK_POLICY_PORT: Shape =
    Fields(&[("protocol", &Any), ("port", &Any), ("endPort", &Any)]);

static NETWORK_POLICY_SPEC: Shape = Fields(&[
    ("podSelector", &LABEL_SELECTOR),
    ("policyTypes", &Any),
    (
        "ingress",
        &List(&Fields(&[
            ("from", &List(&NETWORK_POLICY_PEER)),
            ("ports", &List(&NETWORK_POLICY_PORT)),
        ])),
    ),
    (
        "egress",
        &List(&Fields(&[
            ("to", &List(&NETWORK_POLICY_PEER)),
            ("ports", &List(&NETWORK_POLICY_PORT)),
        ])),
    ),
]);

// ---- Calico (projectcalico.org/v3, crd.projectcalico.org/v1) ----------------------------

static CALICO_ENTITY: Shape = Fields(&[
    ("nets", &Any),
    ("notNets", &Any),
    ("selector", &Any),
    ("notSelector", &Any),
    ("namespaceSelector", &Any),
    ("ports", &Any),
    ("notPorts", &Any),
    (
        "serviceAccounts",
        &Fields(&[("names", &Any), ("selector", &Any)]),
    ),
    ("services", &Fields(&[("name", &Any), ("namespace", &Any)])),
]);

static CALICO_ICMP: Shape = Fields(&[("type", &Any), ("code", &Any)]);

static CALICO_RULE: Shape = Fields(&[
    ("action", &Any),
    ("protocol", &Any),
    ("notProtocol", &Any),
    ("icmp", &CALICO_ICMP),
    ("notICMP", &CALICO_ICMP),
    ("ipVersion", &Any),
    ("source", &CALICO_ENTITY),
    ("destination", &CALICO_ENTITY),
    (
        "http",
        &Fields(&[
            ("methods", &Any),
            (
                "paths",
                &List(&Fields(&[("exact", &Any), ("prefix", &Any)])),
            ),
        ]),
    ),
    ("metadata", &Fields(&[("annotations", &Any)])),
]);

static CALICO_NETWORK_POLICY_SPEC: Shape = Fields(&[
    ("order", &Any),
    ("tier", &Any),
    ("selector", &Any),
    ("types", &Any),
    ("ingress", &List(&CALICO_RULE)),
    ("egress", &List(&CALICO_RULE)),
    ("serviceAccountSelector", &Any),
    ("performanceHints", &Any),
]);

static CALICO_GLOBAL_NETWORK_POLICY_SPEC: Shape = Fields(&[
    ("order", &Any),
    ("tier", &Any),
    ("selector", &Any),
    ("types", &Any),
    ("ingress", &List(&CALICO_RULE)),
    ("egress", &List(&CALICO_RULE)),
    ("serviceAccountSelector", &Any),
    ("performanceHints", &Any),
    ("namespaceSelector", &Any),
    ("doNotTrack", &Any),
    ("preDNAT", &Any),
    ("applyOnForward", &Any),
]);

static CALICO_NETWORK_SET_SPEC: Shape = Fields(&[("nets", &Any), ("allowedEgressDomains", &Any)]);

static CALICO_TIER_SPEC: Shape = Fields(&[("order", &Any), ("defaultAction", &Any)]);

// ---- policy.networking.k8s.io -----------------------------------------------------------

static NAMESPACED_POD: Shape = Fields(&[
    ("namespaceSelector", &LABEL_SELECTOR),
    ("podSelector", &LABEL_SELECTOR),
]);

static ADMIN_SUBJECT: Shape = Fields(&[("namespaces", &LABEL_SELECTOR), ("pods", &NAMESPACED_POD)]);

static ADMIN_INGRESS_PEER: Shape =
    Fields(&[("namespaces", &LABEL_SELECTOR), ("pods", &NAMESPACED_POD)]);

static ADMIN_EGRESS_PEER: Shape = Fields(&[
    ("namespaces", &LABEL_SELECTOR),
    ("pods", &NAMESPACED_POD),
    ("nodes", &LABEL_SELECTOR),
    ("networks", &Any),
    ("domainNames", &Any),
]);

static ADMIN_PORT: Shape = Fields(&[
    ("portNumber", &Fields(&[("protocol", &Any), ("port", &Any)])),
    ("namedPort", &Any),
    (
        "portRange",
        &Fields(&[("protocol", &Any), ("start", &Any), ("end", &Any)]),
    ),
]);

static ADMIN_POLICY_SPEC: Shape = Fields(&[
    ("priority", &Any),
    ("subject", &ADMIN_SUBJECT),
    (
        "ingress",
        &List(&Fields(&[
            ("name", &Any),
            ("action", &Any),
            ("from", &List(&ADMIN_INGRESS_PEER)),
            ("ports", &List(&ADMIN_PORT)),
        ])),
    ),
    (
        "egress",
        &List(&Fields(&[
            ("name", &Any),
            ("action", &Any),
            ("to", &List(&ADMIN_EGRESS_PEER)),
            ("ports", &List(&ADMIN_PORT)),
        ])),
    ),
]);

static CNP_L4: Shape = Fields(&[(
    "destinationPort",
    &Fields(&[
        ("number", &Any),
        ("range", &Fields(&[("start", &Any), ("end", &Any)])),
    ]),
)]);

static CNP_PROTOCOL: Shape = Fields(&[
    ("tcp", &CNP_L4),
    ("udp", &CNP_L4),
    ("sctp", &CNP_L4),
    ("destinationNamedPort", &Any),
]);

static CLUSTER_NETWORK_POLICY_SPEC: Shape = Fields(&[
    ("tier", &Any),
    ("priority", &Any),
    ("subject", &ADMIN_SUBJECT),
    (
        "ingress",
        &List(&Fields(&[
            ("name", &Any),
            ("action", &Any),
            ("from", &List(&ADMIN_INGRESS_PEER)),
            ("protocols", &List(&CNP_PROTOCOL)),
        ])),
    ),
    (
        "egress",
        &List(&Fields(&[
            ("name", &Any),
            ("action", &Any),
            ("to", &List(&ADMIN_EGRESS_PEER)),
            ("protocols", &List(&CNP_PROTOCOL)),
        ])),
    ),
]);

// ---- vpcresources.k8s.aws/v1beta1 SecurityGroupPolicy -----------------------------------

static SECURITY_GROUP_POLICY_SPEC: Shape = Fields(&[
    ("podSelector", &LABEL_SELECTOR),
    ("serviceAccountSelector", &LABEL_SELECTOR),
    ("securityGroups", &Fields(&[("groupIds", &Any)])),
]);

// amazon-network-policy-controller-k8s api/v1alpha1/clusternetworkpolicy_types.go: the
// v1alpha1 admin policy shape with a tier (its egress peers have no `nodes`).
static EKS_EGRESS_PEER: Shape = Fields(&[
    ("namespaces", &LABEL_SELECTOR),
    ("pods", &NAMESPACED_POD),
    ("networks", &Any),
    ("domainNames", &Any),
]);

static EKS_CLUSTER_NETWORK_POLICY_SPEC: Shape = Fields(&[
    ("tier", &Any),
    ("priority", &Any),
    ("subject", &ADMIN_SUBJECT),
    (
        "ingress",
        &List(&Fields(&[
            ("name", &Any),
            ("action", &Any),
            ("from", &List(&ADMIN_INGRESS_PEER)),
            ("ports", &List(&ADMIN_PORT)),
        ])),
    ),
    (
        "egress",
        &List(&Fields(&[
            ("name", &Any),
            ("action", &Any),
            ("to", &List(&EKS_EGRESS_PEER)),
            ("ports", &List(&ADMIN_PORT)),
        ])),
    ),
]);

// ---- cilium.io/v2 CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy ---------------------
// cilium/cilium pkg/policy/api: rule.go (Rule), ingress.go (IngressCommonRule, IngressRule,
// IngressDenyRule), egress.go (EgressCommonRule, EgressRule, EgressDenyRule), l4.go (PortRule,
// PortDenyRule, PortProtocol), cidr.go (CIDRRule), service.go, fqdn.go, icmp.go.

static CILIUM_PORT_PROTOCOL: Shape =
    Fields(&[("port", &Any), ("endPort", &Any), ("protocol", &Any)]);

static CILIUM_PORT_RULE: Shape = Fields(&[
    ("ports", &List(&CILIUM_PORT_PROTOCOL)),
    ("rules", &Any),
    ("terminatingTLS", &Any),
    ("originatingTLS", &Any),
    ("serverNames", &Any),
    ("listener", &Any),
]);

static CILIUM_PORT_DENY_RULE: Shape = Fields(&[("ports", &List(&CILIUM_PORT_PROTOCOL))]);

static CILIUM_CIDR_RULE: Shape = Fields(&[
    ("cidr", &Any),
    ("cidrGroupRef", &Any),
    ("cidrGroupSelector", &LABEL_SELECTOR),
    ("except", &Any),
]);

static CILIUM_ICMP: Shape = Fields(&[(
    "fields",
    &List(&Fields(&[("family", &Any), ("type", &Any)])),
)]);

static CILIUM_SERVICE: Shape = Fields(&[
    (
        "k8sService",
        &Fields(&[("serviceName", &Any), ("namespace", &Any)]),
    ),
    (
        "k8sServiceSelector",
        &Fields(&[("selector", &LABEL_SELECTOR), ("namespace", &Any)]),
    ),
]);

static CILIUM_FQDN: Shape = Fields(&[("matchName", &Any), ("matchPattern", &Any)]);

static CILIUM_INGRESS: Shape = Fields(&[
    ("fromEndpoints", &List(&LABEL_SELECTOR)),
    ("fromRequires", &List(&LABEL_SELECTOR)),
    ("fromCIDR", &Any),
    ("fromCIDRSet", &List(&CILIUM_CIDR_RULE)),
    ("fromEntities", &Any),
    ("fromGroups", &Any),
    ("fromNodes", &List(&LABEL_SELECTOR)),
    ("toPorts", &List(&CILIUM_PORT_RULE)),
    ("icmps", &List(&CILIUM_ICMP)),
    ("authentication", &Fields(&[("mode", &Any)])),
]);

static CILIUM_INGRESS_DENY: Shape = Fields(&[
    ("fromEndpoints", &List(&LABEL_SELECTOR)),
    ("fromRequires", &List(&LABEL_SELECTOR)),
    ("fromCIDR", &Any),
    ("fromCIDRSet", &List(&CILIUM_CIDR_RULE)),
    ("fromEntities", &Any),
    ("fromGroups", &Any),
    ("fromNodes", &List(&LABEL_SELECTOR)),
    ("toPorts", &List(&CILIUM_PORT_DENY_RULE)),
    ("icmps", &List(&CILIUM_ICMP)),
]);

static CILIUM_EGRESS: Shape = Fields(&[
    ("toEndpoints", &List(&LABEL_SELECTOR)),
    ("toRequires", &List(&LABEL_SELECTOR)),
    ("toCIDR", &Any),
    ("toCIDRSet", &List(&CILIUM_CIDR_RULE)),
    ("toEntities", &Any),
    ("toServices", &List(&CILIUM_SERVICE)),
    ("toGroups", &Any),
    ("toNodes", &List(&LABEL_SELECTOR)),
    ("toFQDNs", &List(&CILIUM_FQDN)),
    ("toPorts", &List(&CILIUM_PORT_RULE)),
    ("icmps", &List(&CILIUM_ICMP)),
    ("authentication", &Fields(&[("mode", &Any)])),
]);

static CILIUM_EGRESS_DENY: Shape = Fields(&[
    ("toEndpoints", &List(&LABEL_SELECTOR)),
    ("toRequires", &List(&LABEL_SELECTOR)),
    ("toCIDR", &Any),
    ("toCIDRSet", &List(&CILIUM_CIDR_RULE)),
    ("toEntities", &Any),
    ("toServices", &List(&CILIUM_SERVICE)),
    ("toGroups", &Any),
    ("toNodes", &List(&LABEL_SELECTOR)),
    ("toPorts", &List(&CILIUM_PORT_DENY_RULE)),
    ("icmps", &List(&CILIUM_ICMP)),
]);

static CILIUM_RULE: Shape = Fields(&[
    ("endpointSelector", &LABEL_SELECTOR),
    ("nodeSelector", &LABEL_SELECTOR),
    ("ingress", &List(&CILIUM_INGRESS)),
    ("ingressDeny", &List(&CILIUM_INGRESS_DENY)),
    ("egress", &List(&CILIUM_EGRESS)),
    ("egressDeny", &List(&CILIUM_EGRESS_DENY)),
    ("labels", &Any),
    ("description", &Any),
    (
        "enableDefaultDeny",
        &Fields(&[("ingress", &Any), ("egress", &Any)]),
    ),
    ("log", &Fields(&[("value", &Any)])),
]);

static CILIUM_POLICY: Shape = Fields(&[
    ("apiVersion", &Any),
    ("kind", &Any),
    ("metadata", &OBJECT_META),
    ("spec", &CILIUM_RULE),
    ("specs", &List(&CILIUM_RULE)),
    ("status", &Any),
]);

/// A whole object: `apiVersion`, `kind`, `metadata`, `spec` of the given shape, `status`.
macro_rules! object {
    ($spec:expr) => {
        Fields(&[
            ("apiVersion", &Any),
            ("kind", &Any),
            ("metadata", &OBJECT_META),
            ("spec", $spec),
            ("status", &Any),
        ])
    };
}

static NETWORK_POLICY: Shape = object!(&NETWORK_POLICY_SPEC);
static CALICO_NETWORK_POLICY: Shape = object!(&CALICO_NETWORK_POLICY_SPEC);
static CALICO_GLOBAL_NETWORK_POLICY: Shape = object!(&CALICO_GLOBAL_NETWORK_POLICY_SPEC);
static CALICO_NETWORK_SET: Shape = object!(&CALICO_NETWORK_SET_SPEC);
static CALICO_TIER: Shape = object!(&CALICO_TIER_SPEC);
static ADMIN_POLICY: Shape = object!(&ADMIN_POLICY_SPEC);
static CLUSTER_NETWORK_POLICY: Shape = object!(&CLUSTER_NETWORK_POLICY_SPEC);
static EKS_CLUSTER_NETWORK_POLICY: Shape = object!(&EKS_CLUSTER_NETWORK_POLICY_SPEC);
static SECURITY_GROUP_POLICY: Shape = object!(&SECURITY_GROUP_POLICY_SPEC);

/// The kinds validated strictly: those whose fields decide verdicts or findings.
pub(crate) fn shape_for(group: &str, kind: &str) -> Option<&'static Shape> {
    Some(match (group, kind) {
        ("networking.k8s.io" | "extensions", "NetworkPolicy") => &NETWORK_POLICY,
        ("projectcalico.org" | "crd.projectcalico.org", "NetworkPolicy") => &CALICO_NETWORK_POLICY,
        ("projectcalico.org" | "crd.projectcalico.org", "GlobalNetworkPolicy") => {
            &CALICO_GLOBAL_NETWORK_POLICY
        }
        ("projectcalico.org" | "crd.projectcalico.org", "NetworkSet" | "GlobalNetworkSet") => {
            &CALICO_NETWORK_SET
        }
        ("projectcalico.org" | "crd.projectcalico.org", "Tier") => &CALICO_TIER,
        ("policy.networking.k8s.io", "AdminNetworkPolicy" | "BaselineAdminNetworkPolicy") => {
            &ADMIN_POLICY
        }
        ("policy.networking.k8s.io", "ClusterNetworkPolicy") => &CLUSTER_NETWORK_POLICY,
        ("vpcresources.k8s.aws", "SecurityGroupPolicy") => &SECURITY_GROUP_POLICY,
        ("cilium.io", "CiliumNetworkPolicy" | "CiliumClusterwideNetworkPolicy") => &CILIUM_POLICY,
        ("networking.k8s.aws", "ClusterNetworkPolicy") => &EKS_CLUSTER_NETWORK_POLICY,
        _ => return None,
    })
}

/// An unknown field: its path (`spec.podSelector.matchLabel`) and what to say about it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UnknownField {
    pub path: String,
    pub message: String,
}

/// Check every mapping in `value` against `shape`; the first unknown field is returned.
pub(crate) fn check(value: &Value, shape: &Shape) -> Result<(), UnknownField> {
    check_at(value, shape, &mut String::new())
}

fn check_at(value: &Value, shape: &Shape, path: &mut String) -> Result<(), UnknownField> {
    match (shape, value) {
        (Fields(fields), Value::Object(map)) => {
            for (key, child) in map {
                let length = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                match fields.iter().find(|(name, _)| name == key) {
                    Some((_, child_shape)) => check_at(child, child_shape, path)?,
                    None => {
                        return Err(UnknownField {
                            message: unknown_message(key, fields, path),
                            path: path.clone(),
                        })
                    }
                }
                path.truncate(length);
            }
            Ok(())
        }
        (List(item), Value::Array(items)) => {
            for (index, child) in items.iter().enumerate() {
                let length = path.len();
                path.push_str(&format!("[{index}]"));
                check_at(child, item, path)?;
                path.truncate(length);
            }
            Ok(())
        }
        // Wrong types are the typed decoding's to report, with the expected type.
        _ => Ok(()),
    }
}

fn unknown_message(key: &str, fields: &[(&str, &Shape)], path: &str) -> String {
    let known: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
    let mut message = format!(
        "unknown field {key:?} (the API server's strict validation rejects it); known here: {}",
        known.join(", ")
    );
    if let Some(close) = known
        .iter()
        .filter(|name| edit_distance(&name.to_lowercase(), &key.to_lowercase()) <= 2)
        .min_by_key(|name| edit_distance(name, key))
    {
        message.push_str(&format!("; did you mean {close:?}?"));
    }
    // network-policy-api v0.1.0 wrapped selectors: `namespaces: {namespaceSelector: …}`,
    // `namespacedPods`, `namespaceAndPodSelector`. Since v0.1.1 `namespaces` is the selector.
    if matches!(
        key,
        "namespaceSelector" | "sameLabels" | "notSameLabels" | "notSelf"
    ) && path.contains(".namespaces.")
        || matches!(key, "namespacedPods" | "namespaceAndPodSelector")
    {
        message.push_str(
            "; this is the network-policy-api v0.1.0 shape: since v0.1.1 `namespaces` is itself a label selector and `pods` has namespaceSelector and podSelector",
        );
    }
    message
}

/// Levenshtein distance, for "did you mean" (names are short).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_misspelt_selector_field_is_named_with_its_path_and_a_suggestion() {
        let policy = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "p"}, "spec": {"podSelector": {"matchLabel": {"app": "db"}}}});
        let shape = shape_for("networking.k8s.io", "NetworkPolicy").unwrap();
        let error = check(&policy, shape).unwrap_err();
        assert_eq!(error.path, "spec.podSelector.matchLabel");
        assert!(
            error.message.contains("did you mean \"matchLabels\""),
            "{}",
            error.message
        );
    }

    #[test]
    fn lists_are_checked_item_by_item() {
        let policy =
            json!({"spec": {"ingress": [{"from": [{"podSelector": {}}, {"ipblock": {}}]}]}});
        let error = check(&policy, &NETWORK_POLICY).unwrap_err();
        assert_eq!(error.path, "spec.ingress[0].from[1].ipblock");
    }

    #[test]
    fn the_old_admin_policy_shape_gets_a_hint() {
        let policy =
            json!({"spec": {"egress": [{"to": [{"namespaces": {"namespaceSelector": {}}}]}]}});
        let error = check(&policy, &ADMIN_POLICY).unwrap_err();
        assert_eq!(
            error.path,
            "spec.egress[0].to[0].namespaces.namespaceSelector"
        );
        assert!(error.message.contains("v0.1.0 shape"), "{}", error.message);
    }

    #[test]
    fn known_fields_and_free_maps_pass() {
        let policy = json!({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
            "metadata": {"name": "p", "labels": {"anything": "x"}, "uid": "1"},
            "spec": {"selector": "all()", "ingress": [{"action": "Allow",
                "source": {"selector": "a == 'b'", "serviceAccounts": {"names": ["x"]}},
                "metadata": {"annotations": {"k": "v"}}}]},
            "status": {"whatever": 1}});
        assert_eq!(check(&policy, &CALICO_NETWORK_POLICY), Ok(()));
        let typo =
            json!({"spec": {"egress": [{"action": "Deny", "destination": {"selecter": "x"}}]}});
        let error = check(&typo, &CALICO_NETWORK_POLICY).unwrap_err();
        assert_eq!(error.path, "spec.egress[0].destination.selecter");
    }
}
