//! Service-mesh mTLS: Istio's mesh-wide STRICT PeerAuthentication and its relaxations
//! (NF-MTLS-001, NF-MTLS-002); Linkerd's skipped ports, disabled injection and unauthenticated
//! default policy (NF-MTLS-003 to NF-MTLS-005).

use crate::remediation::{annotations, yaml, Manifest};
use crate::{Audit, CheckId, Family, Object, ObjectRef};
use netfence_model::PeerAuthentication;
use std::collections::{BTreeMap, BTreeSet};

/// The service-mesh family.
pub(crate) const FAMILY: Family = Family {
    name: "mtls",
    checks: &[
        CheckId::IstioMeshNotStrict,
        CheckId::PeerAuthenticationRelaxed,
        CheckId::LinkerdSkippedPorts,
        CheckId::LinkerdInjectionDisabled,
        CheckId::LinkerdUnauthenticatedDefault,
    ],
    run,
};

fn run(audit: &mut Audit<'_>) {
    istio_checks(audit);
    linkerd_checks(audit);
}

/// The Istio mesh config that names the root namespace: the `istio` ConfigMap, else the first.
fn mesh_config(inventory: &netfence_model::Inventory) -> Option<&netfence_model::IstioMeshConfig> {
    let configs = &inventory.istio_mesh_configs;
    configs
        .iter()
        .find(|c| c.name == "istio")
        .or_else(|| configs.first())
}

/// Istio's root namespace: the mesh config's rootNamespace (by default istiod's namespace), or
/// Istio's default `istio-system` without a mesh config in the input.
pub(crate) fn root_namespace(inventory: &netfence_model::Inventory) -> &str {
    mesh_config(inventory).map_or("istio-system", |c| c.root_namespace.as_str())
}

/// Istio mTLS (istio.io, "PeerAuthentication" and "Mutual TLS Migration"): a policy in the root
/// namespace without a selector is mesh-wide; namespace and workload policies override it, and
/// with no policy at all sidecars accept plain text (PERMISSIVE).
fn istio_checks(audit: &mut Audit<'_>) {
    let engine = audit.engine;
    let inventory = engine.inventory();
    // The root namespace comes from the mesh config (the `istio` ConfigMap's rootNamespace, by
    // default istiod's namespace); without one in the input, Istio's default istio-system.
    let configs = &inventory.istio_mesh_configs;
    let chosen = mesh_config(inventory);
    let root = root_namespace(inventory);
    if let Some(c) = chosen {
        let others: BTreeSet<&str> = configs
            .iter()
            .map(|c| c.root_namespace.as_str())
            .filter(|r| *r != root)
            .collect();
        if !others.is_empty() {
            audit.note(format!(
                "Istio root namespace {root} (ConfigMap {}/{}); other mesh configs name {}",
                c.namespace,
                c.name,
                others.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let labelled = inventory.namespaces().values().any(|n| {
        n.labels
            .get("istio-injection")
            .is_some_and(|v| v == "enabled")
            || n.labels.contains_key("istio.io/rev")
    });
    let injected = inventory.pods().iter().any(|p| {
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
        let (object, message) = match mesh_wide {
            Some(p) => (
                p.object_ref(),
                format!("the mesh-wide policy's mode is {}, not STRICT", p.mode),
            ),
            None => (
                ObjectRef::namespace(inventory, root),
                format!("no PeerAuthentication without a selector in {root}: sidecars accept plain text (PERMISSIVE)"),
            ),
        };
        let remediation = yaml(&Manifest::peer_authentication("default", root, "STRICT"));
        audit
            .finding(CheckId::IstioMeshNotStrict, &object)
            .message(message)
            .remediation(remediation);
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
            audit
                .finding(CheckId::PeerAuthenticationRelaxed, p)
                .message(format!("mTLS relaxed: {}", relaxed.join(", ")))
                .remediation(
                    "spec:\n  mtls:\n    mode: STRICT   # after every client has a sidecar\n",
                );
        }
    }
}

/// Linkerd (linkerd.io, "Proxy Configuration" and "Authorization Policy"): annotations on the
/// namespace apply to its pods; the pod's own annotation wins.
fn linkerd_checks(audit: &mut Audit<'_>) {
    const INJECT: &str = "linkerd.io/inject";
    let engine = audit.engine;
    let inventory = engine.inventory();
    for ns in inventory.namespaces().values() {
        linkerd_proxy_settings(
            audit,
            LinkerdScope {
                // The namespace's own annotations are already consulted for suppression.
                object: ObjectRef::namespace(inventory, &ns.name),
                annotations: &ns.annotations,
                skip_message: "every pod in the namespace skips the proxy",
                who: "namespace",
            },
        );
    }
    // One finding per workload, not per pod.
    let mut seen = BTreeSet::new();
    for pod in inventory.pods() {
        if pod.mesh_annotations.is_empty() || !seen.insert(pod.workload.to_string()) {
            continue;
        }
        let a = &pod.mesh_annotations;
        // Findings name the workload, located at its first pod.
        let object = ObjectRef {
            namespace: Some(&pod.namespace),
            label: format!(
                "{} {}/{}",
                pod.workload.kind, pod.workload.namespace, pod.workload.name
            ),
            origin: Some(&pod.origin),
            annotations: Some(a),
        };
        linkerd_proxy_settings(
            audit,
            LinkerdScope {
                object: object.object_ref(),
                annotations: a,
                skip_message: "traffic on these ports bypasses the proxy",
                who: "workload",
            },
        );
        let namespace_meshed = inventory
            .namespaces()
            .get(&pod.namespace)
            .and_then(|n| n.annotations.get(INJECT))
            .is_some_and(|v| v == "enabled");
        if namespace_meshed && a.get(INJECT).is_some_and(|v| v == "disabled") {
            audit
                .finding(CheckId::LinkerdInjectionDisabled, &object)
                .message(format!(
                    "{INJECT}: disabled in a namespace annotated {INJECT}: enabled"
                ))
                .remediation(format!(
                    "# remove {INJECT}: disabled from the pod template\n"
                ));
        }
    }
}

impl Object for PeerAuthentication {
    fn object_ref(&self) -> ObjectRef<'_> {
        ObjectRef {
            namespace: Some(&self.namespace),
            label: format!("PeerAuthentication {}/{}", self.namespace, self.name),
            origin: Some(&self.origin),
            annotations: Some(&self.annotations),
        }
    }
}

/// Where Linkerd proxy annotations were found: a namespace or a workload's pod template.
struct LinkerdScope<'a> {
    /// What findings name, and the annotations that suppress them.
    object: ObjectRef<'a>,
    /// The Linkerd settings.
    annotations: &'a BTreeMap<String, String>,
    skip_message: &'static str,
    who: &'static str,
}

/// NF-MTLS-003 (skipped ports) and NF-MTLS-005 (all-unauthenticated) for one scope.
fn linkerd_proxy_settings(audit: &mut Audit<'_>, scope: LinkerdScope<'_>) {
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
        let message = format!("{}: {}", scope.skip_message, skipped.join(", "));
        let remediation = "# remove the skip annotations; for server-speaks-first protocols use\n# config.linkerd.io/opaque-ports instead, which keeps mTLS\n";
        audit
            .finding(CheckId::LinkerdSkippedPorts, &scope.object)
            .message(message)
            .remediation(remediation);
    }
    if a.get(POLICY).is_some_and(|v| v == "all-unauthenticated") {
        audit
            .finding(CheckId::LinkerdUnauthenticatedDefault, &scope.object)
            .message(format!(
                "the {}'s default inbound policy admits unauthenticated (plain-text) clients",
                scope.who
            ))
            .remediation(annotations(&[(POLICY, "all-authenticated")]));
    }
}
