//! Every check has a fixture that triggers it and one that does not; suppression works; the
//! README's check list is the one the code generates.

use netfence_audit::{
    audit, audit_all, checks_markdown, wire_audit, AwsInput, Suppressions, WireObservation, CHECKS,
};
use netfence_engine::Engine;
use netfence_model::aws::load_security_groups;
use netfence_model::Loader;

#[derive(serde::Deserialize)]
struct Fixture {
    check: String,
    triggers: String,
    clean: String,
    /// `aws ec2 describe-security-groups` JSON for both inputs (or per input below).
    security_groups: Option<String>,
    triggers_security_groups: Option<String>,
    clean_security_groups: Option<String>,
    cluster_security_group: Option<String>,
    #[serde(default)]
    node_security_groups: Vec<String>,
    /// Observed connections (NF-WIRE-*): the fixture then runs `wire_audit` on them (and on
    /// `clean_observations` for the clean input, when given).
    observations: Option<Vec<Observation>>,
    clean_observations: Option<Vec<Observation>>,
}

#[derive(serde::Deserialize)]
struct Observation {
    server: std::net::SocketAddr,
    client: std::net::SocketAddr,
    plaintext: bool,
    protocol: Option<String>,
    version: Option<u16>,
}

impl Observation {
    fn to_wire(&self) -> WireObservation {
        WireObservation {
            server: self.server,
            client: self.client,
            connections: 1,
            plaintext: self.plaintext,
            protocol: self.protocol.clone(),
            version: self.version,
        }
    }
}

impl Fixture {
    fn wire_ids(&self, yaml: &str, observations: &[Observation]) -> Vec<&'static str> {
        let observations: Vec<WireObservation> =
            observations.iter().map(Observation::to_wire).collect();
        wire_audit(&engine(yaml), &Suppressions::default(), &observations)
            .findings
            .iter()
            .map(|f| f.id)
            .collect()
    }

    fn ids(&self, yaml: &str, groups: Option<&String>) -> Vec<&'static str> {
        let aws = groups.or(self.security_groups.as_ref()).map(|yaml| {
            let value: serde_json::Value =
                serde_yaml_ng::from_str(yaml).expect("fixture groups parse");
            let json = serde_json::to_string_pretty(&value).expect("fixture groups serialise");
            let groups = load_security_groups("groups.json", &json).expect("fixture groups load");
            AwsInput::new(
                groups,
                vec!["groups.json".into()],
                self.cluster_security_group.clone(),
                self.node_security_groups.clone(),
            )
            .expect("fixture groups are consistent")
        });
        audit_all(&engine(yaml), &Suppressions::default(), aws.as_ref())
            .findings
            .iter()
            .map(|f| f.id)
            .collect()
    }
}

fn engine(yaml: &str) -> Engine {
    let mut loader = Loader::new();
    loader.load_str("fixture.yaml", yaml);
    Engine::new(loader.finish().expect("fixture loads"))
}

#[test]
fn every_check_has_a_triggering_and_a_clean_fixture() {
    let fixtures: Vec<Fixture> =
        serde_yaml_ng::from_str(include_str!("fixtures.yaml")).expect("fixtures parse");
    for fixture in &fixtures {
        let id = CHECKS
            .iter()
            .find(|c| c.id == fixture.check)
            .unwrap_or_else(|| panic!("fixture for unknown check {}", fixture.check))
            .id;
        let (triggered, clean) = match &fixture.observations {
            Some(observations) => (
                fixture.wire_ids(&fixture.triggers, observations),
                fixture.wire_ids(
                    &fixture.clean,
                    fixture
                        .clean_observations
                        .as_deref()
                        .unwrap_or(observations),
                ),
            ),
            None => (
                fixture.ids(&fixture.triggers, fixture.triggers_security_groups.as_ref()),
                fixture.ids(&fixture.clean, fixture.clean_security_groups.as_ref()),
            ),
        };
        assert!(triggered.contains(&id), "{id} not triggered");
        assert!(!clean.contains(&id), "{id} triggered by its clean fixture");
    }
    for check in CHECKS {
        assert!(
            fixtures.iter().any(|f| f.check == check.id),
            "no fixture for {}",
            check.id
        );
    }
    println!(
        "audit fixtures: {} checks, {} fixtures, each triggered and each clean",
        CHECKS.len(),
        fixtures.len()
    );
}

#[test]
fn annotations_suppress_and_are_counted() {
    let yaml = "apiVersion: v1\nkind: Namespace\nmetadata: {name: team, annotations: {netfence.io/ignore: 'NF-TC-001, NF-TC-004'}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: team}\nspec: {containers: [{name: c}]}\n";
    let report = audit(&engine(yaml));
    let ids: Vec<&str> = report.findings.iter().map(|f| f.id).collect();
    assert!(
        !ids.contains(&"NF-TC-001") && !ids.contains(&"NF-TC-004"),
        "{ids:?}"
    );
    assert!(ids.contains(&"NF-TC-002"), "{ids:?}");
    assert_eq!(report.suppressed, 2);
}

#[test]
fn pod_annotations_suppress() {
    let yaml = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, annotations: {linkerd.io/inject: enabled}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: batch, namespace: shop, annotations: {linkerd.io/inject: disabled, netfence.io/ignore: NF-MTLS-004}}\nspec: {containers: [{name: c}]}\n";
    let report = audit(&engine(yaml));
    assert!(report.findings.iter().all(|f| f.id != "NF-MTLS-004"));
    assert_eq!(report.suppressed, 1);
}

#[test]
fn readme_lists_the_checks_the_code_has() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README");
    let table = checks_markdown();
    assert!(
        readme.contains(&table),
        "README's Audit section is out of date; paste the output of `netfence audit --list-checks`:\n{table}"
    );
}

/// A generated cluster, its engine, and the objects NF-TC-011 reports in it.
fn generated_shadow_findings(
    options: &netfence_gen::GenOptions,
) -> (netfence_model::Inventory, Engine, Vec<String>) {
    let mut loader = Loader::new();
    for (name, text) in &netfence_gen::generate(options).expect("valid options") {
        loader.load_str(name, text);
    }
    let inventory = loader.finish().expect("generated cluster loads");
    let engine = Engine::new(inventory.clone());
    let flagged = audit(&engine)
        .findings
        .iter()
        .filter(|f| f.id == "NF-TC-011")
        .map(|f| f.object.clone())
        .collect();
    (inventory, engine, flagged)
}

/// NF-TC-011 agrees with `netfence diff`: on generated clusters, a policy is reported exactly
/// when removing it yields an empty semantic diff (default-deny and select-nothing policies
/// aside).
#[test]
fn shadowed_policies_agree_with_diff() {
    use netfence_gen::GenOptions;
    let mut flagged_total = 0;
    for seed in 1..=3 {
        let (inventory, engine, flagged) = generated_shadow_findings(&GenOptions {
            pods: 120,
            namespaces: 3,
            policies: 24,
            calico: 0,
            admin: 0,
            seed,
        });
        for (index, policy) in inventory.network_policies.iter().enumerate() {
            if !netfence_audit::shadow_check_applies(&inventory, policy) {
                continue;
            }
            let mut without = inventory.clone();
            std::sync::Arc::make_mut(&mut without.network_policies).remove(index);
            let redundant = netfence_engine::diff(&engine, &Engine::new(without)).is_empty();
            let object = format!("NetworkPolicy {}/{}", policy.namespace, policy.name);
            assert_eq!(
                flagged.contains(&object),
                redundant,
                "seed {seed}: {object}"
            );
        }
        flagged_total += flagged.len();
    }
    assert!(
        flagged_total > 0,
        "the generated clusters should have some shadowed policy"
    );
}

#[test]
fn config_file_suppresses_by_id_namespace_and_object_and_rejects_bad_rules() {
    use netfence_audit::{audit_with, Suppressions};
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: team}\nspec: {containers: [{name: c}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: other}\nspec: {containers: [{name: c}]}\n";
    let engine = engine(yaml);
    let all = audit(&engine);
    let count =
        |r: &netfence_audit::Report, id: &str| r.findings.iter().filter(|f| f.id == id).count();
    assert_eq!(count(&all, "NF-TC-001"), 2);
    let config = Suppressions::from_yaml(
        "netfence.yaml",
        "ignore:\n- id: NF-TC-001\n  namespace: team\n- id: NF-TC-004\n  object: Pod other/b\n- id: NF-TC-005\n",
    )
    .unwrap();
    let report = audit_with(&engine, &config);
    assert_eq!(count(&report, "NF-TC-001"), 1, "only team's is suppressed");
    assert_eq!(count(&report, "NF-TC-005"), 0);
    assert_eq!(count(&all, "NF-TC-004"), 2);
    assert_eq!(
        count(&report, "NF-TC-004"),
        1,
        "only Pod other/b's is suppressed"
    );
    assert_eq!(report.suppressed, 1 + 1 + 2);
    for (text, wanted) in [
        (
            "ignore:\n- id: NF-XX-999\n",
            "ignore[0].id: unknown check \"NF-XX-999\"",
        ),
        (
            "ignore:\n- id: NF-TC-001\n  namspace: team\n",
            "unknown field `namspace`",
        ),
        ("ignore: 3\n", "netfence.yaml"),
    ] {
        let error = Suppressions::from_yaml("netfence.yaml", text)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(wanted) && error.starts_with("netfence.yaml"),
            "{error}"
        );
    }
}

/// NF-TC-011 for Calico policies agrees with `netfence diff` on generated clusters with a
/// Calico security tier: a policy is flagged exactly when removing it leaves the whole
/// connection list unchanged (the check itself only compares the lines of the workloads the
/// policy selects).
#[test]
fn shadowed_calico_policies_agree_with_diff() {
    use netfence_gen::GenOptions;
    let (mut judged, mut flagged_total) = (0, 0);
    for seed in 1..=3 {
        let (inventory, engine, flagged) = generated_shadow_findings(&GenOptions {
            pods: 90,
            namespaces: 3,
            policies: 12,
            calico: 8,
            admin: 0,
            seed,
        });
        let flagged: Vec<String> = flagged
            .into_iter()
            .filter(|object| !object.starts_with("NetworkPolicy "))
            .collect();
        for (t, p, _) in netfence_audit::shadow_candidates(&engine) {
            let policy = &engine.tiers()[t].policies[p];
            let without = inventory_without(&inventory, policy)
                .expect("a Calico or admin policy comes from an inventory object");
            judged += 1;
            let redundant = netfence_engine::diff(&engine, &Engine::new(without)).is_empty();
            let object = format!("{} {}", policy.kind, policy.name);
            assert_eq!(
                flagged.contains(&object),
                redundant,
                "seed {seed}: {object}"
            );
        }
        flagged_total += flagged.len();
    }
    assert!(judged > 10, "only {judged} Calico policies judged");
    println!("NF-TC-011 on Calico policies: {judged} judged, {flagged_total} shadowed, all agreeing with diff");
}

/// A `netfence.io/ignore` tag on a security group suppresses its findings, as the annotation
/// does on Kubernetes objects.
#[test]
fn security_group_tags_suppress() {
    let groups = |tags: &str| {
        format!(
            r#"{{"SecurityGroups": [{{"GroupId": "sg-0123abcd", "GroupName": "bastion", "Tags": [{tags}],
               "IpPermissions": [{{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{{"CidrIp": "0.0.0.0/0"}}]}}]}}]}}"#
        )
    };
    let run = |tags: &str| {
        let aws = AwsInput::new(
            load_security_groups("groups.json", &groups(tags)).unwrap(),
            vec!["groups.json".into()],
            None,
            Vec::new(),
        )
        .unwrap();
        audit_all(
            &engine("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"),
            &Suppressions::default(),
            Some(&aws),
        )
    };
    let open = run("");
    assert_eq!(
        open.findings.iter().filter(|f| f.id == "NF-SG-008").count(),
        1
    );
    let quiet = run(r#"{"Key": "netfence.io/ignore", "Value": "NF-SG-008"}"#);
    assert!(!quiet.findings.iter().any(|f| f.id == "NF-SG-008"));
    assert_eq!(quiet.suppressed, open.suppressed + 1);
}

/// The inventory without the object a Calico or admin policy was compiled from (`None` for a
/// Kubernetes NetworkPolicy, or when no object matches): the independent side of the agreement
/// test, built from the input rather than with `Engine::without_policy` as the check is.
fn inventory_without(
    inventory: &netfence_model::Inventory,
    policy: &netfence_engine::ir::Policy,
) -> Option<netfence_model::Inventory> {
    use netfence_engine::ir::PolicyKind;
    use netfence_model::admin::AdminKind;
    use netfence_model::calico::CalicoScope;
    let mut without = inventory.clone();
    match policy.kind {
        // The shadow checks do not judge Cilium policies (one rule compiles to several).
        PolicyKind::NetworkPolicy
        | PolicyKind::CiliumNetworkPolicy
        | PolicyKind::CiliumClusterwideNetworkPolicy => return None,
        PolicyKind::CalicoNetworkPolicy | PolicyKind::CalicoGlobalNetworkPolicy => {
            let global = policy.kind == PolicyKind::CalicoGlobalNetworkPolicy;
            let index = inventory.calico_policies.iter().position(|c| {
                matches!(c.scope, CalicoScope::Global { .. }) == global
                    && c.display_name() == policy.name
            })?;
            without.calico_policies.remove(index);
        }
        PolicyKind::AdminNetworkPolicy
        | PolicyKind::BaselineAdminNetworkPolicy
        | PolicyKind::ClusterNetworkPolicy => {
            let index = inventory.admin_policies.iter().position(|a| {
                let kind = match a.kind {
                    AdminKind::AdminNetworkPolicy => PolicyKind::AdminNetworkPolicy,
                    AdminKind::BaselineAdminNetworkPolicy => PolicyKind::BaselineAdminNetworkPolicy,
                    AdminKind::ClusterNetworkPolicyAdmin
                    | AdminKind::ClusterNetworkPolicyBaseline => PolicyKind::ClusterNetworkPolicy,
                };
                kind == policy.kind && a.name == policy.name
            })?;
            without.admin_policies.remove(index);
        }
    }
    Some(without)
}

/// A rule that may or may not reach CoreDNS (a CIDR netfence cannot place) is named in the
/// finding, in the rule's direction.
#[test]
fn security_group_findings_name_rules_they_cannot_place() {
    let groups = r#"{"SecurityGroups": [
        {"GroupId": "sg-11111111", "GroupName": "eks-cluster-sg-demo-1",
         "Tags": [{"Key": "aws:eks:cluster-name", "Value": "demo"}],
         "IpPermissions": [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-11111111"}]}],
         "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]},
        {"GroupId": "sg-22222222", "GroupName": "db-pods",
         "IpPermissionsEgress": [{"IpProtocol": "udp", "FromPort": 53, "ToPort": 53, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}]}]}"#;
    let aws = AwsInput::new(
        load_security_groups("groups.json", groups).unwrap(),
        vec!["groups.json".into()],
        None,
        Vec::new(),
    )
    .unwrap();
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: db-0, namespace: shop, labels: {role: db}}\nspec: {containers: [{name: c}]}\n---\napiVersion: vpcresources.k8s.aws/v1beta1\nkind: SecurityGroupPolicy\nmetadata: {name: db, namespace: shop}\nspec: {podSelector: {}, securityGroups: {groupIds: [sg-22222222]}}\n";
    let report = audit_all(&engine(yaml), &Suppressions::default(), Some(&aws));
    let dns = report
        .findings
        .iter()
        .find(|f| f.id == "NF-SG-002")
        .expect("no DNS rule reaches the cluster group");
    assert!(
        dns.message
            .contains("(sg-22222222 allows UDP 53 to 10.0.0.0/16; netfence cannot tell whether that includes CoreDNS)"),
        "{}",
        dns.message
    );
}
