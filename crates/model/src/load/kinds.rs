//! The kinds the loader reads, in one table: the API groups and versions each is served
//! under, and the function that loads it. Dispatch, the refusal of unknown versions and the
//! list of what netfence reads all come from here, so they cannot drift apart.

use super::*;

/// What a document says it is.
pub(super) struct TypeRef<'a> {
    /// The API group (`""` for the core group, or when `apiVersion` is missing).
    pub group: &'a str,
    /// The kind.
    pub kind: &'a str,
    /// The whole `apiVersion` (`apps/v1`), or `""` when missing.
    pub api_version: &'a str,
}

/// Loads one object of a kind into the loader.
pub(super) type LoadFn = fn(&mut Loader, &Value, &Ctx, &TypeRef<'_>) -> Result<(), LoadError>;

/// Kinds served under the same groups and loaded by the same function.
pub(super) struct Entry {
    /// (API group, versions read in it). Group `""` also stands for a missing `apiVersion`.
    pub api: &'static [(&'static str, &'static [&'static str])],
    /// The kinds.
    pub kinds: &'static [&'static str],
    /// How each is loaded.
    pub load: LoadFn,
}

const CORE: &[(&str, &[&str])] = &[("", &["v1"])];
const CALICO: &[(&str, &[&str])] = &[
    ("projectcalico.org", &["v3"]),
    ("crd.projectcalico.org", &["v1"]),
];

/// Every kind netfence reads. Served versions with the same schema are accepted
/// (`extensions/v1beta1` NetworkPolicy, `batch/v1beta1` CronJob); any other version of these
/// kinds is refused rather than read as another version.
pub(super) static KINDS: &[Entry] = &[
    Entry {
        api: CORE,
        kinds: &["Namespace"],
        load: |l, v, c, _| l.load_namespace(v, c),
    },
    Entry {
        api: CORE,
        kinds: &["Pod"],
        load: |l, v, c, _| l.load_pod(v, c),
    },
    Entry {
        api: CORE,
        kinds: &["ServiceAccount"],
        load: |l, v, c, _| l.load_service_account(v, c),
    },
    Entry {
        api: CORE,
        kinds: &["Service"],
        load: |l, v, c, _| l.load_service(v, c),
    },
    Entry {
        api: CORE,
        kinds: &["Node"],
        load: |l, v, c, _| l.load_node(v, c),
    },
    Entry {
        api: CORE,
        kinds: &["ConfigMap"],
        load: |l, v, c, t| l.load_config_map(t.api_version, v, c),
    },
    Entry {
        api: &[
            ("apps", &["v1", "v1beta2", "v1beta1"]),
            ("extensions", &["v1beta1"]),
            ("", &["v1"]),
        ],
        kinds: &["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"],
        load: |l, v, c, t| l.load_workload(t.kind, v, c),
    },
    Entry {
        api: CORE,
        kinds: &["ReplicationController"],
        load: |l, v, c, t| l.load_workload(t.kind, v, c),
    },
    Entry {
        api: &[("batch", &["v1"]), ("", &["v1"])],
        kinds: &["Job"],
        load: |l, v, c, t| l.load_workload(t.kind, v, c),
    },
    Entry {
        api: &[("batch", &["v1", "v1beta1"]), ("", &["v1"])],
        kinds: &["CronJob"],
        load: |l, v, c, t| l.load_workload(t.kind, v, c),
    },
    Entry {
        api: &[("networking.k8s.io", &["v1"]), ("extensions", &["v1beta1"])],
        kinds: &["NetworkPolicy"],
        load: |l, v, c, _| l.load_network_policy(v, c),
    },
    Entry {
        api: &[("networking.k8s.io", &["v1"]), ("extensions", &["v1beta1"])],
        kinds: &["Ingress"],
        load: |l, v, c, _| l.load_ingress(v, c),
    },
    Entry {
        api: CALICO,
        kinds: &["NetworkPolicy", "GlobalNetworkPolicy"],
        load: |l, v, c, t| l.load_calico_policy(t.kind == "GlobalNetworkPolicy", v, c),
    },
    Entry {
        api: CALICO,
        kinds: &["NetworkSet", "GlobalNetworkSet"],
        load: |l, v, c, t| l.load_network_set(t.kind == "GlobalNetworkSet", v, c),
    },
    Entry {
        api: CALICO,
        kinds: &["Tier"],
        load: |l, v, c, _| l.load_tier(v, c),
    },
    Entry {
        api: CALICO,
        kinds: &["HostEndpoint"],
        load: |l, v, c, t| l.count_host_endpoint(v, c, t),
    },
    Entry {
        api: &[("policy.networking.k8s.io", &["v1alpha1"])],
        kinds: &["AdminNetworkPolicy", "BaselineAdminNetworkPolicy"],
        load: |l, v, c, t| l.load_admin_policy(t.kind == "AdminNetworkPolicy", v, c),
    },
    Entry {
        api: &[("policy.networking.k8s.io", &["v1alpha2"])],
        kinds: &["ClusterNetworkPolicy"],
        load: |l, v, c, _| l.load_cluster_network_policy(v, c),
    },
    Entry {
        api: &[("networking.k8s.aws", &["v1alpha1"])],
        kinds: &["ClusterNetworkPolicy"],
        load: |l, v, c, _| l.load_eks_cluster_network_policy(v, c),
    },
    Entry {
        api: &[("cilium.io", &["v2"])],
        kinds: &["CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"],
        load: |l, v, c, t| l.load_cilium_policy(t.kind == "CiliumClusterwideNetworkPolicy", v, c),
    },
    Entry {
        api: &[("cert-manager.io", &["v1"])],
        kinds: &["Issuer", "ClusterIssuer"],
        load: |l, v, c, t| l.load_cert_issuer(t.group, t.kind, v, c),
    },
    Entry {
        api: &[("awspca.cert-manager.io", &["v1beta1"])],
        kinds: &["AWSPCAIssuer", "AWSPCAClusterIssuer"],
        load: |l, v, c, t| l.load_cert_issuer(t.group, t.kind, v, c),
    },
    Entry {
        api: &[("cert-manager.io", &["v1"])],
        kinds: &["Certificate"],
        load: |l, v, c, _| l.load_certificate(v, c),
    },
    Entry {
        api: &[("rbac.authorization.k8s.io", &["v1"])],
        kinds: &["Role", "ClusterRole"],
        load: |l, v, c, t| l.load_rbac_role(t.kind, v, c),
    },
    Entry {
        api: &[("rbac.authorization.k8s.io", &["v1"])],
        kinds: &["RoleBinding", "ClusterRoleBinding"],
        load: |l, v, c, t| l.load_rbac_binding(t.kind, v, c),
    },
    Entry {
        api: &[("security.istio.io", &["v1", "v1beta1"])],
        kinds: &["PeerAuthentication"],
        load: |l, v, c, _| l.load_peer_authentication(v, c),
    },
    Entry {
        api: &[("vpcresources.k8s.aws", &["v1beta1"])],
        kinds: &["SecurityGroupPolicy"],
        load: |l, v, c, _| l.load_security_group_policy(v, c),
    },
];

/// The entry for a kind in a group, with the versions read in that group.
pub(super) fn lookup(group: &str, kind: &str) -> Option<(&'static Entry, &'static [&'static str])> {
    KINDS.iter().find_map(|entry| {
        let versions = entry.api.iter().find(|(g, _)| *g == group)?.1;
        entry.kinds.contains(&kind).then_some((entry, versions))
    })
}

impl Loader {
    /// Calico HostEndpoints are parsed (so that malformed ones are reported) and counted;
    /// host endpoints are not evaluated.
    fn count_host_endpoint(
        &mut self,
        value: &Value,
        ctx: &Ctx,
        type_ref: &TypeRef<'_>,
    ) -> Result<(), LoadError> {
        *self
            .skipped
            .entry(format!(
                "{}/HostEndpoint (parsed, host endpoints are not evaluated)",
                type_ref.api_version
            ))
            .or_default() += 1;
        typed::<Object<Value>>(value, ctx).map(|_| ())
    }
}
