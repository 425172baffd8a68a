//! rbac.authorization.k8s.io: Role, ClusterRole, RoleBinding, ClusterRoleBinding.

use super::*;

impl Loader {
    /// RBAC Role/ClusterRole (rbac.authorization.k8s.io/v1; `rules` at the top level; a
    /// ClusterRole's `aggregationRule` is not expanded).
    pub(super) fn load_rbac_role(
        &mut self,
        kind: &str,
        value: &Value,
        ctx: &Ctx,
    ) -> Result<(), LoadError> {
        let object: RbacRoleLite = typed(value, ctx)?;
        let cluster = kind == "ClusterRole";
        let meta = checked_meta(object.metadata, ctx, !cluster)?;
        let mut aggregation = Vec::new();
        if let Some(rule) = &object.aggregation_rule {
            if !cluster {
                return Err(ctx.field("aggregationRule", "only a ClusterRole aggregates"));
            }
            for (i, s) in rule.cluster_role_selectors.iter().flatten().enumerate() {
                aggregation.push(selector(
                    s,
                    ctx,
                    &format!("aggregationRule.clusterRoleSelectors[{i}]"),
                )?);
            }
        }
        self.rbac_roles.push(RbacRole {
            kind: kind.to_string(),
            namespace: (!cluster).then(|| namespace_of(&meta)),
            labels: meta
                .labels
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            aggregation,
            name: meta.name.unwrap_or_default(),
            rules: object
                .rules
                .unwrap_or_default()
                .into_iter()
                .map(|r| RbacRule {
                    api_groups: r.api_groups.unwrap_or_default(),
                    resources: r.resources.unwrap_or_default(),
                    verbs: r.verbs,
                    resource_names: r.resource_names.unwrap_or_default(),
                })
                .collect(),
        });
        Ok(())
    }

    /// RBAC RoleBinding/ClusterRoleBinding: `roleRef` is required; a ClusterRoleBinding may
    /// only refer to a ClusterRole.
    pub(super) fn load_rbac_binding(
        &mut self,
        kind: &str,
        value: &Value,
        ctx: &Ctx,
    ) -> Result<(), LoadError> {
        let object: RbacBindingLite = typed(value, ctx)?;
        let cluster = kind == "ClusterRoleBinding";
        let meta = checked_meta(object.metadata, ctx, !cluster)?;
        let role_ref = object.role_ref;
        match (cluster, role_ref.kind.as_str()) {
            (_, "ClusterRole") | (false, "Role") => {}
            _ => {
                return Err(ctx.field(
                    "roleRef.kind",
                    format!(
                        "{:?} is not allowed here (expected ClusterRole{})",
                        role_ref.kind,
                        if cluster { "" } else { " or Role" }
                    ),
                ))
            }
        }
        self.rbac_bindings.push(RbacBinding {
            kind: kind.to_string(),
            namespace: (!cluster).then(|| namespace_of(&meta)),
            name: meta.name.unwrap_or_default(),
            role_ref: (role_ref.kind, role_ref.name),
            subjects: object
                .subjects
                .unwrap_or_default()
                .into_iter()
                .map(|s| (s.kind, s.name, s.namespace))
                .collect(),
            annotations: meta.annotations.unwrap_or_default(),
            origin: ctx.origin.clone(),
        });
        Ok(())
    }
}

/// An RBAC role: `rules` sit at the top level, not under `spec`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RbacRoleLite {
    #[serde(default)]
    metadata: Meta,
    rules: Option<Vec<RbacRuleLite>>,
    aggregation_rule: Option<AggregationRuleLite>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AggregationRuleLite {
    cluster_role_selectors: Option<Vec<K8sLabelSelector>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RbacRuleLite {
    api_groups: Option<Vec<String>>,
    resources: Option<Vec<String>>,
    verbs: Vec<String>,
    resource_names: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RbacBindingLite {
    #[serde(default)]
    metadata: Meta,
    role_ref: RoleRefLite,
    subjects: Option<Vec<SubjectLite>>,
}

#[derive(Deserialize)]
pub(super) struct RoleRefLite {
    kind: String,
    name: String,
}

#[derive(Deserialize)]
pub(super) struct SubjectLite {
    kind: String,
    name: String,
    namespace: Option<String>,
}
