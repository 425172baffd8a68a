//! Audit benchmark over `netfence gen` clusters (`cargo bench -p netfence-audit`): the whole
//! audit at 1k, 10k and 100k pods, with and without security groups for pods (one
//! SecurityGroupPolicy per namespace, and the groups it names). Medians, and each audit as a
//! ratio of load+compile of the same cluster measured in the same run (the machines are shared
//! and noisy, so ratios travel better than milliseconds). Under `cargo test` (no `--bench`) it
//! runs a small smoke version.

use netfence_audit::{audit_all, AwsInput, Suppressions};
use netfence_conformance::bench::{full_run, median, sizes};
use netfence_engine::Engine;
use netfence_gen::{generate, GenOptions};
use netfence_model::aws::load_security_groups;
use netfence_model::Loader;
use std::time::Instant;

/// One SecurityGroupPolicy per namespace of the generated cluster, and the describe output
/// of the groups they name: the cluster group, and per namespace a pod group with DNS, a
/// probe port and a few CIDR rules.
fn security_groups(namespaces: &[String]) -> (String, String) {
    let cluster = "sg-00000000000000001";
    // Every pod also carries one shared group that the cluster group admits DNS from (one rule
    // for all namespaces, as one would do it for real).
    let dns = "sg-0000000000000dddd";
    let mut manifests = String::new();
    let mut groups = vec![
        format!(
            r#"{{"GroupId": "{cluster}", "GroupName": "eks-cluster-sg-bench-1", "Tags": [{{"Key": "aws:eks:cluster-name", "Value": "bench"}}],
 "IpPermissions": [{{"IpProtocol": "-1", "UserIdGroupPairs": [{{"GroupId": "{cluster}"}}]}},
                   {{"IpProtocol": "udp", "FromPort": 53, "ToPort": 53, "UserIdGroupPairs": [{{"GroupId": "{dns}"}}]}},
                   {{"IpProtocol": "tcp", "FromPort": 53, "ToPort": 53, "UserIdGroupPairs": [{{"GroupId": "{dns}"}}]}}],
 "IpPermissionsEgress": [{{"IpProtocol": "-1", "IpRanges": [{{"CidrIp": "0.0.0.0/0"}}]}}]}}"#
        ),
        format!(r#"{{"GroupId": "{dns}", "GroupName": "pods-dns"}}"#),
    ];
    for (i, ns) in namespaces.iter().enumerate() {
        let id = format!("sg-{:017x}", i + 2);
        manifests.push_str(&format!(
            "---\napiVersion: vpcresources.k8s.aws/v1beta1\nkind: SecurityGroupPolicy\nmetadata: {{name: pods, namespace: {ns}}}\nspec:\n  podSelector: {{}}\n  securityGroups: {{groupIds: [{id}, {dns}]}}\n"
        ));
        let cidrs: Vec<String> = (0..8)
            .map(|j| format!(r#"{{"CidrIp": "10.{}.{j}.0/24"}}"#, i % 250))
            .collect();
        groups.push(format!(
            r#"{{"GroupId": "{id}", "GroupName": "{ns}-pods",
 "IpPermissions": [{{"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "UserIdGroupPairs": [{{"GroupId": "{cluster}"}}]}},
                   {{"IpProtocol": "tcp", "FromPort": 9000, "ToPort": 9100, "IpRanges": [{}]}}],
 "IpPermissionsEgress": [{{"IpProtocol": "udp", "FromPort": 53, "ToPort": 53, "UserIdGroupPairs": [{{"GroupId": "{cluster}"}}]}},
                         {{"IpProtocol": "tcp", "FromPort": 53, "ToPort": 53, "UserIdGroupPairs": [{{"GroupId": "{cluster}"}}]}}]}}"#,
            cidrs.join(", ")
        ));
    }
    (
        manifests,
        format!("{{\"SecurityGroups\": [\n{}\n]}}", groups.join(",\n")),
    )
}

fn main() {
    let full = full_run();
    // The smoke run under `cargo test` is smaller than the shared one: the shadow check makes
    // an unoptimised audit of 1k pods take seconds.
    let sweep: &[(usize, usize, usize)] = if full { sizes(true) } else { &[(300, 5, 60)] };
    let repeats = if full { 5 } else { 1 };
    println!("| pods | policies | load+compile ms | audit ms | audit / load+compile | audit with SGs ms | with SGs / load+compile | findings | SG findings |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for &(pods, namespaces, policies) in sweep {
        let files = generate(&GenOptions {
            pods,
            namespaces,
            policies,
            calico: 0,
            admin: 0,
            seed: 1,
        })
        .expect("valid options");
        let load = |extra: Option<&str>| {
            let mut loader = Loader::new();
            for (name, text) in &files {
                loader.load_str(name, text);
            }
            if let Some(extra) = extra {
                loader.load_str("sgp.yaml", extra);
            }
            Engine::new(loader.finish().expect("generated cluster loads"))
        };
        let names: Vec<String> = load(None)
            .inventory()
            .namespaces()
            .keys()
            .filter(|n| n.starts_with("ns-"))
            .cloned()
            .collect();
        let (sgp, json) = security_groups(&names);
        let (mut base, mut plain, mut with) = (Vec::new(), Vec::new(), Vec::new());
        let (mut findings, mut sg_findings) = (0, 0);
        let mut sample = Vec::new();
        for _ in 0..repeats {
            let t = Instant::now();
            let engine = load(Some(&sgp));
            base.push(t.elapsed().as_secs_f64() * 1e3);
            let config = Suppressions::default();
            let t = Instant::now();
            let report = audit_all(&engine, &config, None);
            plain.push(t.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(&report);
            let t = Instant::now();
            let groups = load_security_groups("groups.json", &json).expect("groups load");
            let aws = AwsInput::new(groups, vec!["groups.json".into()], None, Vec::new())
                .expect("groups are consistent");
            let report = audit_all(&engine, &config, Some(&aws));
            with.push(t.elapsed().as_secs_f64() * 1e3);
            findings = report.findings.len();
            sg_findings = report
                .findings
                .iter()
                .filter(|f| f.id.starts_with("NF-SG-"))
                .count();
            sample = report
                .findings
                .iter()
                .filter(|f| f.id.starts_with("NF-SG-"))
                .take(3)
                .map(|f| format!("{} {}: {}", f.id, f.object, f.message))
                .collect();
        }
        let (b, p, w) = (median(base), median(plain), median(with));
        println!(
            "| {pods} | {policies} | {b:.1} | {p:.1} | {:.2} | {w:.1} | {:.2} | {findings} | {sg_findings} |",
            p / b,
            w / b
        );
        // The generated pods have no probes on 8080 and the groups allow DNS: the security
        // group checks must run and find nothing here, or the benchmark measures an error path.
        assert_eq!(
            sg_findings, 0,
            "the benchmark's groups should be clean: {sample:?}"
        );
    }
}
