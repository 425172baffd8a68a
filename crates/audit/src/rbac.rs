//! RBAC over what Calico policy selects: ServiceAccounts that Calico policies select and that
//! RBAC lets a subject update or patch (NF-TC-012).

use crate::remediation::{self, PolicyRule};
use crate::{Audit, CheckId, Family, ObjectRef};
use std::collections::{BTreeMap, BTreeSet};

/// The RBAC family.
pub(crate) const FAMILY: Family = Family {
    name: "rbac",
    checks: &[CheckId::EditableServiceAccount],
    run,
};

/// NF-TC-012: the ServiceAccounts Calico policies select (`serviceAccountSelector`, or a rule's
/// `serviceAccounts` names/selector), and the RBAC bindings that let a subject update or patch
/// them (Kubernetes RBAC: a rule covers the object when apiGroups has "" or "*", resources has
/// "serviceaccounts" or "*", verbs has update, patch or "*", and resourceNames is empty or names
/// it; a RoleBinding grants in its namespace, a ClusterRoleBinding everywhere). `system:`
/// subjects and kube-system service accounts are the control plane's and are not reported.
fn run(audit: &mut Audit<'_>) {
    let engine = audit.engine;
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
                let object = ObjectRef {
                    namespace: Some(namespace),
                    label: format!(
                        "{} {}",
                        binding.kind,
                        match &binding.namespace {
                            Some(ns) => format!("{ns}/{}", binding.name),
                            None => binding.name.clone(),
                        }
                    ),
                    origin: Some(&binding.origin),
                    annotations: Some(&binding.annotations),
                };
                let message = format!(
                    "{} can modify (update or patch) ServiceAccount {namespace}/{name} (through {role_kind} {role_name}), which Calico policy {} selects",
                    subjects.join(", "),
                    policies.iter().cloned().collect::<Vec<_>>().join(", ")
                );
                let remediation = String::from(
                    "# grant only read access to the ServiceAccount, as the guide's example does:\n",
                ) + &remediation::rules(&[PolicyRule {
                    api_groups: &[""],
                    resources: &["serviceaccounts"],
                    resource_names: &[name],
                    verbs: &["get", "watch", "list"],
                }]);
                audit
                    .finding(CheckId::EditableServiceAccount, &object)
                    .message(message)
                    .remediation(remediation);
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
