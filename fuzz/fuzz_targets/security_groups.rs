//! Fuzz the `aws ec2 describe-security-groups` reader and the security-group checks: arbitrary
//! bytes as the groups file; when it loads, audit the example cluster (which has a
//! SecurityGroupPolicy and probes) against those groups, with and without a chosen cluster
//! group. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netfence_audit::{audit_all, AwsInput, Suppressions};
use netfence_engine::Engine;
use netfence_model::aws::load_security_groups;
use netfence_model::Loader;
use std::sync::OnceLock;

const EXAMPLES: [&str; 7] = [
    include_str!("../../examples/eks-guide/00-namespaces.yaml"),
    include_str!("../../examples/eks-guide/10-coredns.yaml"),
    include_str!("../../examples/eks-guide/20-default-deny.yaml"),
    include_str!("../../examples/eks-guide/21-allow-dns-access.yaml"),
    include_str!("../../examples/eks-guide/30-demo-app.yaml"),
    include_str!("../../examples/eks-guide/40-shop.yaml"),
    include_str!("../../examples/eks-guide/50-security-groups-for-pods.yaml"),
];

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut loader = Loader::new();
        for (i, text) in EXAMPLES.iter().enumerate() {
            loader.load_str(&format!("example-{i}.yaml"), text);
        }
        Engine::new(loader.finish().expect("the example cluster loads"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(groups) = load_security_groups("fuzz.json", text) else {
        return;
    };
    let first = groups.first().map(|g| g.id.clone());
    for cluster in [None, first] {
        if let Ok(aws) = AwsInput::new(groups.clone(), vec!["fuzz.json".into()], cluster, Vec::new()) {
            let _ = audit_all(engine(), &Suppressions::default(), Some(&aws));
        }
    }
});
