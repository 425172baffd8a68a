//! The built-in example cluster (`examples/eks-guide/`), embedded so that `netfence demo`
//! runs from any directory.

use crate::Failure;
use netfence_engine::Engine;
use netfence_model::Loader;
use std::path::Path;

/// (file name, contents) of every example manifest, in load order.
pub const EKS_GUIDE: [(&str, &str); 7] = [
    (
        "00-namespaces.yaml",
        include_str!("../../../examples/eks-guide/00-namespaces.yaml"),
    ),
    (
        "10-coredns.yaml",
        include_str!("../../../examples/eks-guide/10-coredns.yaml"),
    ),
    (
        "20-default-deny.yaml",
        include_str!("../../../examples/eks-guide/20-default-deny.yaml"),
    ),
    (
        "21-allow-dns-access.yaml",
        include_str!("../../../examples/eks-guide/21-allow-dns-access.yaml"),
    ),
    (
        "30-demo-app.yaml",
        include_str!("../../../examples/eks-guide/30-demo-app.yaml"),
    ),
    (
        "40-shop.yaml",
        include_str!("../../../examples/eks-guide/40-shop.yaml"),
    ),
    (
        "50-security-groups-for-pods.yaml",
        include_str!("../../../examples/eks-guide/50-security-groups-for-pods.yaml"),
    ),
];

/// What `aws ec2 describe-security-groups` prints for the example cluster's VPC.
pub const SECURITY_GROUPS: (&str, &str) = (
    "eks-guide-security-groups.json",
    include_str!("../../../examples/aws/eks-guide-security-groups.json"),
);

/// The example cluster's security groups, for the demo's audit.
pub fn security_groups() -> Result<netfence_audit::AwsInput, Failure> {
    let name = format!("<builtin>/aws/{}", SECURITY_GROUPS.0);
    let text = SECURITY_GROUPS.1.to_string();
    netfence_audit::AwsInput::from_sources([(name, text)], None, Vec::new())
        .map_err(|e| Failure::input(format!("error: {e}")))
}

/// The example cluster, compiled.
pub fn engine() -> Result<Engine, Failure> {
    let mut loader = Loader::new();
    for (name, text) in EKS_GUIDE {
        loader.load_str(&format!("<builtin>/eks-guide/{name}"), text);
    }
    crate::inputs::finish(loader)
}

/// Write the example manifests to `dir`.
pub fn export(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in EKS_GUIDE {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}
