//! cert-manager: Certificates whose issuer is missing, self-signed leaves, in-cluster CAs,
//! long-lived leaves, and AWS Private CA issuers without arn/region or with static keys
//! (NF-CERT-001 to NF-CERT-006).

use crate::{summarize, Audit, CheckId, Family, Object, ObjectRef};
use netfence_model::{CertIssuer, Certificate};
use std::collections::BTreeMap;

/// The certificate family.
pub(crate) const FAMILY: Family = Family {
    name: "cert",
    checks: &[
        CheckId::MissingIssuer,
        CheckId::SelfSignedLeaves,
        CheckId::PrivateCaIssuerIncomplete,
        CheckId::PrivateCaStaticKeys,
        CheckId::InClusterCa,
        CheckId::LongLivedLeaf,
    ],
    run,
};

/// cert-manager (cert-manager.io docs, "Issuer Configuration" and "Certificate resource";
/// aws-privateca-issuer README).
fn run(audit: &mut Audit<'_>) {
    const MAX_LEAF_SECONDS: u64 = 397 * 24 * 3600;
    let engine = audit.engine;
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
        let (group, kind, name) = &cert.issuer_ref;
        let issuer = find(&cert.issuer_ref, &cert.namespace);
        // Issuers of other groups (external issuers netfence does not know) are not judged.
        if issuer.is_none() && known_group(group) {
            audit
                .finding(CheckId::MissingIssuer, cert)
                .message(format!(
                    "spec.issuerRef names {kind} {name} ({group}){}, which is not in the input",
                    if kind.contains("Cluster") {
                        String::new()
                    } else {
                        format!(" in {}", cert.namespace)
                    }
                ))
                .remediation(format!(
                    "# create the {kind} {name}, or point spec.issuerRef at an existing issuer\n"
                ));
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
            let message = "isCA: true; the CA's private key is kept in a Kubernetes Secret";
            let remediation = "# issue from ACM Private CA with an AWSPCAClusterIssuer instead of an in-cluster CA\n";
            audit
                .finding(CheckId::InClusterCa, cert)
                .message(message)
                .remediation(remediation);
        }
        if let Some(seconds) = cert
            .duration_seconds
            .filter(|&s| !cert.is_ca && s > MAX_LEAF_SECONDS)
        {
            audit
                .finding(CheckId::LongLivedLeaf, cert)
                .message(format!("spec.duration is {} days", seconds / 86_400))
                .remediation("spec:\n  duration: 2160h   # 90 days\n  renewBefore: 360h\n");
        }
    }
    for (index, leaves) in self_signed_leaves {
        let issuer = &issuers[index];
        let message = format!("signs leaf certificates: {}", summarize(&leaves));
        let remediation = "# use the selfSigned issuer only for the CA Certificate (isCA: true), then issue leaves\n# from a `ca` issuer holding that CA, or from an AWSPCAClusterIssuer\n";
        audit
            .finding(CheckId::SelfSignedLeaves, issuer)
            .message(message)
            .remediation(remediation);
    }
    for issuer in issuers.iter().filter(|i| i.issuer_type == "awspca") {
        let missing: Vec<&str> = [("arn", &issuer.arn), ("region", &issuer.region)]
            .into_iter()
            .filter(|(_, v)| v.as_deref().is_none_or(str::is_empty))
            .map(|(k, _)| k)
            .collect();
        if !missing.is_empty() {
            let message = format!("spec.{} not set", missing.join(" and spec."));
            let remediation = "spec:\n  arn: arn:aws:acm-pca:<region>:<account>:certificate-authority/<id>\n  region: <region>\n";
            audit
                .finding(CheckId::PrivateCaIssuerIncomplete, issuer)
                .message(message)
                .remediation(remediation);
        }
        if issuer.static_credentials {
            let message = "spec.secretRef supplies static AWS access keys";
            let remediation = "# remove spec.secretRef; annotate the issuer's ServiceAccount with\n# eks.amazonaws.com/role-arn (IRSA) or create an EKS Pod Identity association\n";
            audit
                .finding(CheckId::PrivateCaStaticKeys, issuer)
                .message(message)
                .remediation(remediation);
        }
    }
}

impl Object for Certificate {
    fn object_ref(&self) -> ObjectRef<'_> {
        ObjectRef {
            namespace: Some(&self.namespace),
            label: format!("Certificate {}/{}", self.namespace, self.name),
            origin: Some(&self.origin),
            annotations: Some(&self.annotations),
        }
    }
}

/// `Issuer namespace/name` or `ClusterIssuer name` (and the AWS Private CA kinds).
impl Object for CertIssuer {
    fn object_ref(&self) -> ObjectRef<'_> {
        let key = match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        };
        ObjectRef {
            namespace: self.namespace.as_deref(),
            label: format!("{} {key}", self.kind),
            origin: Some(&self.origin),
            annotations: Some(&self.annotations),
        }
    }
}
