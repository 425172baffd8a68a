//! vpcresources.k8s.aws: SecurityGroupPolicy (security groups for pods), validated as its
//! CRD does. (The `describe-security-groups` reader is `crate::aws::load_security_groups`.)

use super::*;

impl Loader {
    /// `vpcresources.k8s.aws/v1beta1` `SecurityGroupPolicy`, validated as its CRD schema does
    /// (aws/amazon-vpc-resource-controller-k8s, `config/crd/bases`: 1 to 16 `groupIds`).
    pub(super) fn load_security_group_policy(
        &mut self,
        value: &Value,
        ctx: &Ctx,
    ) -> Result<(), LoadError> {
        let object: Decoded<SecurityGroupPolicySpecLite> = decode(value, ctx, true)?;
        let meta = object.meta;
        let spec = object.spec.unwrap_or_default();
        let pod_selector = spec
            .pod_selector
            .as_ref()
            .map(|s| selector(s, ctx, "spec.podSelector"))
            .transpose()?;
        let service_account_selector = spec
            .service_account_selector
            .as_ref()
            .map(|s| selector(s, ctx, "spec.serviceAccountSelector"))
            .transpose()?;
        let group_ids = spec
            .security_groups
            .and_then(|g| g.group_ids)
            .unwrap_or_default();
        if group_ids.len() > 16 {
            return Err(ctx.field(
                "spec.securityGroups.groupIds",
                format!(
                    "{} groups: the CRD allows at most 16 (and a network interface carries at most 16)",
                    group_ids.len()
                ),
            ));
        }
        if let Some(i) = group_ids.iter().position(|g| g.trim().is_empty()) {
            return Err(ctx.field(
                format!("spec.securityGroups.groupIds[{i}]"),
                "empty security group id",
            ));
        }
        let name = meta.name.clone().unwrap_or_default();
        let namespace = namespace_of(&meta);
        if group_ids.is_empty() {
            self.warnings.push(format!(
                "{}: SecurityGroupPolicy {namespace}/{name} lists no spec.securityGroups.groupIds: the VPC resource controller ignores it",
                ctx.origin
            ));
        } else if pod_selector.is_none() && service_account_selector.is_none() {
            self.warnings.push(format!(
                "{}: SecurityGroupPolicy {namespace}/{name} has neither podSelector nor serviceAccountSelector: the VPC resource controller ignores it",
                ctx.origin
            ));
        }
        self.security_group_policies.push(SecurityGroupPolicy {
            namespace,
            name,
            pod_selector,
            service_account_selector,
            group_ids,
            annotations: meta.annotations.unwrap_or_default(),
            origin: ctx.origin.clone(),
        });
        Ok(())
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct SecurityGroupPolicySpecLite {
    pod_selector: Option<K8sLabelSelector>,
    service_account_selector: Option<K8sLabelSelector>,
    security_groups: Option<GroupIdsLite>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct GroupIdsLite {
    group_ids: Option<Vec<String>>,
}
