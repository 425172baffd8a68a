//! Security-group checks (NF-SG-*): security groups for pods, the EKS cluster security group's
//! minimum rules, AWS quotas, and inbound rules open to the internet.
//!
//! Sources: the EKS best-practices guide ("Security groups", "Security groups for pods"), the
//! EKS user guide ("Security group requirements": the default cluster security group and the
//! minimum rules when it is restricted), the VPC resource controller (`filterPodSecurityGroups`
//! and the pod webhook, which rejects a pod whose groups exceed the "security groups per network
//! interface" quota), and the Amazon VPC quotas page (60 inbound and 60 outbound rules per group
//! and IP family by default; 5 groups per interface by default, 16 at most; rules × groups ≤
//! 1,000; a group or prefix-list reference counts once for IPv4 and once for IPv6).

pub use netfence_model::aws::{AwsInput, AwsInputError};

use crate::{summarize, Audit, CheckId, Family, Object, ObjectRef};
use netfence_model::aws::{
    is_group_id, pod_security_groups, PodGroups, SecurityGroup, SecurityGroupPolicy, SgDirection,
    SgPeer, SgProtocol, SgRule, SgTarget,
};
use netfence_model::{Inventory, PodId, Protocol};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Default "security groups per network interface" quota (L-2AFB9258).
pub const GROUPS_PER_INTERFACE_DEFAULT: usize = 5;
/// The most a network interface can carry, whatever the quota.
pub const GROUPS_PER_INTERFACE_MAX: usize = 16;
/// Default "inbound or outbound rules per security group" quota, per IP family.
pub const RULES_PER_GROUP_DEFAULT: usize = 60;
/// Rules per group × groups per interface may not exceed this.
pub const RULES_TIMES_GROUPS_MAX: usize = 1000;

/// Pods that get security groups, grouped by the set of groups they get.
struct PodGroupSet {
    groups: Vec<String>,
    /// Indices into `security_group_policies`.
    policies: BTreeSet<usize>,
    pods: Vec<PodId>,
}

/// The pods that get security groups, grouped by the set of groups they get
/// ([`pod_security_groups`], the one computation `flows check` shares).
fn pod_group_sets(inventory: &Inventory, notes: &mut Vec<String>) -> Vec<PodGroupSet> {
    let computed = pod_security_groups(inventory);
    let mut sets: BTreeMap<Vec<String>, PodGroupSet> = BTreeMap::new();
    for (id, pod_groups) in computed.by_pod.into_iter().enumerate() {
        let Some(PodGroups { groups, policies }) = pod_groups else {
            continue;
        };
        let set = sets.entry(groups.clone()).or_insert_with(|| PodGroupSet {
            groups,
            policies: BTreeSet::new(),
            pods: Vec::new(),
        });
        set.policies.extend(policies);
        set.pods.push(PodId::new(id));
    }
    if !computed.unknown_accounts.is_empty() {
        let names: Vec<String> = computed.unknown_accounts.into_iter().collect();
        notes.push(format!(
            "serviceAccountSelector of SecurityGroupPolicies matched against no labels for ServiceAccounts not in the input: {}",
            summarize(&names)
        ));
    }
    sets.into_values().collect()
}

/// The security-group family.
pub(crate) const FAMILY: Family = Family {
    name: "sg",
    checks: &[
        CheckId::MissingSecurityGroup,
        CheckId::PodGroupsWithoutDnsEgress,
        CheckId::ClusterGroupWithoutDnsIngress,
        CheckId::ProbePortsNotAdmitted,
        CheckId::BelowEksMinimumRules,
        CheckId::TooManyGroupsPerInterface,
        CheckId::TooManyRulesPerGroup,
        CheckId::OpenToTheInternet,
        CheckId::CalicoBypassedInStrictMode,
        CheckId::FargateWithoutClusterGroup,
    ],
    run,
};

/// Run the NF-SG checks. Without the security groups, only what the manifests alone show:
/// malformed group ids, too many groups per pod, Calico on pods with groups in strict mode.
fn run(audit: &mut Audit<'_>) {
    let aws = audit.aws;
    let inventory = audit.engine.inventory();
    let mut notes = Vec::new();
    let sets = pod_group_sets(inventory, &mut notes);
    for note in notes {
        audit.note(note);
    }
    missing_groups(audit, aws);
    groups_per_interface(audit, &sets, aws);
    calico_on_pods_with_groups(audit, &sets);
    let Some(aws) = aws else {
        if !inventory.security_group_policies.is_empty() {
            audit.note("NF-SG-002 to NF-SG-005, NF-SG-007, NF-SG-008 and NF-SG-010 read the security groups themselves, and NF-SG-001 checks only the ids' shape without them: pass --aws-security-groups FILE (aws ec2 describe-security-groups --output json)");
        }
        return;
    };
    if let Some(note) = &aws.note {
        audit.note(note.clone());
    }
    if let Some(cluster) = aws.cluster_group.as_deref().and_then(|id| aws.group(id)) {
        pod_dns(audit, &sets, aws, cluster);
        probes(audit, &sets, aws, cluster);
        fargate_cluster_group(audit, &sets, cluster);
        cluster_minimum(audit, aws, cluster);
    }
    rules_per_group(audit, aws);
    open_to_the_internet(audit, aws);
}

/// A security group: located in the groups file; findings on it are suppressed by a
/// `netfence.io/ignore` tag on the group, as annotations do on Kubernetes objects, or by
/// `--config` rules naming `SecurityGroup sg-… (name)`.
impl Object for SecurityGroup {
    fn object_ref(&self) -> ObjectRef<'_> {
        ObjectRef {
            namespace: None,
            label: format!("SecurityGroup {}", self.label()),
            origin: Some(&self.origin),
            annotations: Some(&self.tags),
        }
    }
}

impl Object for SecurityGroupPolicy {
    fn object_ref(&self) -> ObjectRef<'_> {
        ObjectRef {
            namespace: Some(&self.namespace),
            label: format!("SecurityGroupPolicy {}/{}", self.namespace, self.name),
            origin: Some(&self.origin),
            annotations: Some(&self.annotations),
        }
    }
}

impl PodGroupSet {
    /// The SecurityGroupPolicy findings about the set name: the first that gives its groups.
    fn policy<'i>(&self, inventory: &'i Inventory) -> &'i SecurityGroupPolicy {
        let first = *self.policies.iter().next().unwrap_or(&0);
        &inventory.security_group_policies[first]
    }
}

fn workloads(inventory: &Inventory, pods: &[PodId]) -> String {
    let names: BTreeSet<String> = pods
        .iter()
        .map(|&p| inventory.pods()[p].workload.to_string())
        .collect();
    summarize(&names.into_iter().collect::<Vec<_>>())
}

/// NF-SG-009: in the VPC CNI's default `strict` mode, traffic of pods with security groups is
/// not subject to Calico policy (EKS user guide, "Security groups for Pods", considerations:
/// Calico needs VPC CNI 1.11 or later with `POD_SECURITY_GROUP_ENFORCING_MODE=standard`).
fn calico_on_pods_with_groups(audit: &mut Audit<'_>, sets: &[PodGroupSet]) {
    use netfence_engine::ir::PolicyKind;
    let engine = audit.engine;
    let inventory = engine.inventory();
    let mode = inventory
        .vpc_cni
        .as_ref()
        .and_then(|c| c.pod_security_group_enforcing_mode.as_deref());
    if mode.is_some_and(|m| m.eq_ignore_ascii_case("standard")) {
        return;
    }
    let why = match (&inventory.vpc_cni, mode) {
        (Some(_), Some(m)) => format!("aws-node sets POD_SECURITY_GROUP_ENFORCING_MODE={m}"),
        (Some(_), None) => {
            "aws-node does not set POD_SECURITY_GROUP_ENFORCING_MODE (default strict)".to_string()
        }
        (None, _) => {
            "POD_SECURITY_GROUP_ENFORCING_MODE defaults to strict (aws-node is not in the input)"
                .to_string()
        }
    };
    for set in sets {
        let mut calico: BTreeSet<String> = BTreeSet::new();
        for &pod in &set.pods {
            for d in [
                netfence_model::PolicyType::Ingress,
                netfence_model::PolicyType::Egress,
            ] {
                for policy in engine
                    .selecting(pod, d)
                    .iter()
                    .filter_map(|&id| engine.policy(id))
                {
                    if matches!(
                        policy.kind,
                        PolicyKind::CalicoNetworkPolicy | PolicyKind::CalicoGlobalNetworkPolicy
                    ) {
                        calico.insert(format!("{} {}", policy.kind, policy.name));
                    }
                }
            }
        }
        if calico.is_empty() {
            continue;
        }
        let names: Vec<String> = calico.into_iter().collect();
        let message = format!(
            "pods of {} have security groups and {} select them, but {why}: their traffic is checked by security groups only, not by Calico",
            workloads(inventory, &set.pods),
            summarize(&names)
        );
        let remediation = "# Amazon VPC CNI 1.11 or later:\nkubectl -n kube-system set env daemonset aws-node POD_SECURITY_GROUP_ENFORCING_MODE=standard\n";
        audit
            .finding(CheckId::CalicoBypassedInStrictMode, set.policy(inventory))
            .message(message)
            .remediation(remediation);
    }
}

/// NF-SG-001: a group a SecurityGroupPolicy names must exist before its pods are created.
fn missing_groups(audit: &mut Audit<'_>, aws: Option<&AwsInput>) {
    let inventory = audit.engine.inventory();
    for policy in &inventory.security_group_policies {
        let missing: Vec<&String> = policy
            .group_ids
            .iter()
            .filter(|id| match aws {
                Some(aws) => aws.group(id).is_none(),
                None => !is_group_id(id),
            })
            .collect();
        if missing.is_empty() {
            continue;
        }
        let list = missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let message = match aws {
            Some(aws) => format!(
                "{list}: not among the {} security groups read from {}; pods it selects will not be scheduled",
                aws.groups.len(),
                aws.files.join(", ")
            ),
            None => format!(
                "{list}: not a security group id (sg- and 8 or 17 hex digits); pods it selects will not be scheduled"
            ),
        };
        let remediation = "aws ec2 create-security-group --group-name <name> --description <text> --vpc-id <cluster VPC>\n# then list its GroupId under spec.securityGroups.groupIds\n";
        audit
            .finding(CheckId::MissingSecurityGroup, policy)
            .message(message)
            .remediation(remediation);
    }
}

/// NF-SG-006: the pod webhook rejects a pod whose groups exceed the per-interface quota.
fn groups_per_interface(audit: &mut Audit<'_>, sets: &[PodGroupSet], aws: Option<&AwsInput>) {
    // A raised rules quota lowers the groups an interface may carry (rules × groups ≤ 1000).
    let max_rules = aws
        .map(|aws| {
            aws.groups
                .iter()
                .map(max_rules_per_family)
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    let rules_cap = if max_rules > RULES_PER_GROUP_DEFAULT {
        RULES_TIMES_GROUPS_MAX / max_rules
    } else {
        GROUPS_PER_INTERFACE_MAX
    };
    for set in sets {
        let n = set.groups.len();
        let why = if n > GROUPS_PER_INTERFACE_MAX {
            format!("more than the {GROUPS_PER_INTERFACE_MAX} any network interface can carry")
        } else if n > rules_cap {
            format!(
                "a group here has {max_rules} rules, so the quotas allow at most {rules_cap} groups per interface (rules × groups ≤ {RULES_TIMES_GROUPS_MAX})"
            )
        } else if n > GROUPS_PER_INTERFACE_DEFAULT {
            format!(
                "above the default quota of {GROUPS_PER_INTERFACE_DEFAULT} security groups per network interface (L-2AFB9258): unless it was raised, the VPC resource controller's webhook rejects these pods"
            )
        } else {
            continue;
        };
        let inventory = audit.engine.inventory();
        let message = format!(
            "pods of {} match SecurityGroupPolicies for {n} security groups ({}): {why}",
            workloads(inventory, &set.pods),
            set.groups.join(", ")
        );
        let remediation = "# merge the rules into fewer groups, or raise the quota:\naws service-quotas request-service-quota-increase --service-code vpc --quota-code L-2AFB9258 --desired-value <n>\n";
        audit
            .finding(CheckId::TooManyGroupsPerInterface, set.policy(inventory))
            .message(message)
            .remediation(remediation);
    }
}

/// The nodes' InternalIPs, the kubelet's source address (empty when any node's is unknown: a
/// CIDR must cover them all).
fn node_addresses(inventory: &Inventory) -> Vec<IpAddr> {
    if inventory
        .nodes
        .iter()
        .any(|n| n.internal_addresses.is_empty())
    {
        return Vec::new();
    }
    inventory
        .nodes
        .iter()
        .flat_map(|n| n.internal_addresses.iter().copied())
        .collect()
}

/// Known addresses of a set of pods (empty when any is unknown).
fn pod_addresses(inventory: &Inventory, pods: &[PodId]) -> Vec<IpAddr> {
    if pods.iter().any(|&p| inventory.pods()[p].synthetic_ip) {
        return Vec::new();
    }
    pods.iter()
        .flat_map(|&p| inventory.pods()[p].ips.iter().copied())
        .collect()
}

/// When no rule covered the target, a rule that admits the port but whose peer netfence cannot
/// place (a narrower CIDR, a prefix list) is worth naming: ` (sg-… allows TCP 53 to
/// 10.0.0.0/16; netfence cannot tell whether that includes {what})`, or nothing.
fn unplaced_hint(
    aws: &AwsInput,
    groups: &[String],
    direction: SgDirection,
    protocol: Protocol,
    port: u16,
    what: &str,
) -> String {
    let found = groups.iter().filter_map(|id| aws.group(id)).find_map(|g| {
        g.rules(direction)
            .iter()
            .find(|r| {
                r.admits(protocol, port)
                    && match &r.peer {
                        SgPeer::PrefixList(_) => true,
                        SgPeer::Cidr(net) => net.prefix_len() > 0,
                        SgPeer::Group(_) => false,
                    }
            })
            .map(|r| (g, r))
    });
    let Some((g, r)) = found else {
        return String::new();
    };
    let way = match direction {
        SgDirection::Inbound => "from",
        SgDirection::Outbound => "to",
    };
    format!(
        " ({} allows {} {way} {}; netfence cannot tell whether that includes {what})",
        g.id,
        r.ports_text(),
        r.peer
    )
}

/// NF-SG-002 and NF-SG-003: DNS between pods with security groups and CoreDNS, which runs on
/// nodes carrying the cluster security group.
fn pod_dns(audit: &mut Audit<'_>, sets: &[PodGroupSet], aws: &AwsInput, cluster: &SecurityGroup) {
    let inventory = audit.engine.inventory();
    let dns = pod_addresses(inventory, &crate::traffic::cluster_dns_pods(inventory));
    let cluster_groups = [cluster.id.clone()];
    let to_dns = SgTarget {
        groups: &cluster_groups,
        addresses: &dns,
    };
    for set in sets {
        let missing: Vec<Protocol> = [Protocol::Udp, Protocol::Tcp]
            .into_iter()
            .filter(|&p| !aws.any_allows(&set.groups, SgDirection::Outbound, p, 53, &to_dns))
            .collect();
        if !missing.is_empty() {
            let hint = unplaced_hint(
                aws,
                &set.groups,
                SgDirection::Outbound,
                missing[0],
                53,
                "CoreDNS",
            );
            let message = format!(
                "pods of {} get {}: none allows {} 53 outbound to the cluster security group {}, so they cannot resolve names{hint}",
                workloads(inventory, &set.pods),
                set.groups.join(", "),
                names(&missing),
                cluster.id
            );
            let remediation: String = missing
                .iter()
                .map(|p| format!("aws ec2 authorize-security-group-egress --group-id {} --ip-permissions IpProtocol={},FromPort=53,ToPort=53,UserIdGroupPairs=[{{GroupId={}}}]\n", set.groups[0], p.as_str().to_lowercase(), cluster.id))
                .collect();
            audit
                .finding(CheckId::PodGroupsWithoutDnsEgress, set.policy(inventory))
                .message(message)
                .remediation(remediation);
        }
        let addresses = pod_addresses(inventory, &set.pods);
        let from_pods = SgTarget {
            groups: &set.groups,
            addresses: &addresses,
        };
        let missing: Vec<Protocol> = [Protocol::Udp, Protocol::Tcp]
            .into_iter()
            .filter(|&p| {
                cluster
                    .allowing(SgDirection::Inbound, p, 53, &from_pods)
                    .is_none()
            })
            .collect();
        if !missing.is_empty() {
            let hint = unplaced_hint(
                aws,
                std::slice::from_ref(&cluster.id),
                SgDirection::Inbound,
                missing[0],
                53,
                "these pods",
            );
            let message = format!(
                "the cluster security group {} does not accept {} 53 from {} (the groups of pods of {}), so CoreDNS on its nodes cannot answer them{hint}",
                cluster.id,
                names(&missing),
                set.groups.join(", "),
                workloads(inventory, &set.pods)
            );
            let remediation: String = missing
                .iter()
                .map(|p| format!("aws ec2 authorize-security-group-ingress --group-id {} --ip-permissions IpProtocol={},FromPort=53,ToPort=53,UserIdGroupPairs=[{{GroupId={}}}]\n", cluster.id, p.as_str().to_lowercase(), set.groups[0]))
                .collect();
            audit
                .finding(
                    CheckId::ClusterGroupWithoutDnsIngress,
                    set.policy(inventory),
                )
                .message(message)
                .remediation(remediation);
        }
    }
}

fn names(protocols: &[Protocol]) -> String {
    protocols
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// NF-SG-004: the kubelet probes pods from the node, whose interface carries the cluster
/// security group (or a node group's own group).
fn probes(audit: &mut Audit<'_>, sets: &[PodGroupSet], aws: &AwsInput, cluster: &SecurityGroup) {
    let inventory = audit.engine.inventory();
    let mut kubelet_groups = vec![cluster.id.clone()];
    kubelet_groups.extend(aws.node_groups.iter().cloned());
    let node_addresses = node_addresses(inventory);
    let kubelet = SgTarget {
        groups: &kubelet_groups,
        addresses: &node_addresses,
    };
    for set in sets {
        // Pods of one workload share their probes: check each port once. On Fargate the
        // kubelet runs beside the pod in its micro-VM, so its probes do not cross the pod's
        // network interface.
        let mut probed: BTreeMap<u16, BTreeSet<String>> = BTreeMap::new();
        for &p in set
            .pods
            .iter()
            .filter(|&&p| !is_fargate(&inventory.pods()[p]))
        {
            for probe in &inventory.pods()[p].probes {
                probed
                    .entry(probe.port)
                    .or_default()
                    .insert(format!("{} {}", probe.container, probe.kind));
            }
        }
        let mut blocked: BTreeMap<u16, BTreeSet<String>> = BTreeMap::new();
        for (port, probes) in probed {
            if !aws.any_allows(
                &set.groups,
                SgDirection::Inbound,
                Protocol::Tcp,
                port,
                &kubelet,
            ) {
                blocked.insert(port, probes);
            }
        }
        if blocked.is_empty() {
            continue;
        }
        let ports: Vec<String> = blocked
            .iter()
            .map(|(port, probes)| {
                format!(
                    "TCP {port} ({})",
                    probes.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        let first = *blocked.keys().next().unwrap_or(&0);
        let hint = unplaced_hint(
            aws,
            &set.groups,
            SgDirection::Inbound,
            Protocol::Tcp,
            first,
            "the nodes",
        );
        let message = format!(
            "pods of {} get {}: none accepts the kubelet's probes from the cluster security group {} on {}; the probes fail and the pods restart or never become ready{hint}",
            workloads(inventory, &set.pods),
            set.groups.join(", "),
            cluster.id,
            ports.join(", ")
        );
        let remediation: String = blocked
            .keys()
            .map(|port| format!("aws ec2 authorize-security-group-ingress --group-id {} --ip-permissions IpProtocol=tcp,FromPort={port},ToPort={port},UserIdGroupPairs=[{{GroupId={}}}]\n", set.groups[0], cluster.id))
            .collect();
        audit
            .finding(CheckId::ProbePortsNotAdmitted, set.policy(inventory))
            .message(message)
            .remediation(remediation);
    }
}

/// The label EKS puts on pods it schedules to Fargate (the VPC resource controller's pod
/// webhook reads the same label).
const FARGATE_PROFILE_LABEL: &str = "eks.amazonaws.com/fargate-profile";

fn is_fargate(pod: &netfence_model::Pod) -> bool {
    pod.labels.contains_key(FARGATE_PROFILE_LABEL)
}

/// NF-SG-010: Fargate pods talk to the control plane through their own groups, which must
/// therefore include the cluster security group (AWS knowledge center, "Configure a security
/// group for Fargate pods": specify the cluster security group as one of the groups).
fn fargate_cluster_group(audit: &mut Audit<'_>, sets: &[PodGroupSet], cluster: &SecurityGroup) {
    let inventory = audit.engine.inventory();
    for set in sets {
        let fargate: Vec<PodId> = set
            .pods
            .iter()
            .copied()
            .filter(|&p| is_fargate(&inventory.pods()[p]))
            .collect();
        if fargate.is_empty() || set.groups.contains(&cluster.id) {
            continue;
        }
        let message = format!(
            "Fargate pods of {} get {} without the cluster security group {}: they cannot reach the Kubernetes control plane",
            workloads(inventory, &fargate),
            set.groups.join(", "),
            cluster.id
        );
        let remediation = format!("spec:\n  securityGroups:\n    groupIds:\n    - {}   # the cluster security group\n    - {}\n", cluster.id, set.groups[0]);
        audit
            .finding(CheckId::FargateWithoutClusterGroup, set.policy(inventory))
            .message(message)
            .remediation(remediation);
    }
}

/// NF-SG-005: the EKS user guide's minimum rules between the control plane (the cluster
/// security group) and every node group: 443 from nodes to the API server, 10250 from the
/// control plane to the kubelet, and DNS (TCP and UDP 53) from nodes to the cluster group.
fn cluster_minimum(audit: &mut Audit<'_>, aws: &AwsInput, cluster: &SecurityGroup) {
    let inventory = audit.engine.inventory();
    let node_addresses = node_addresses(inventory);
    let mut node_groups = vec![cluster.id.clone()];
    for id in &aws.node_groups {
        if !node_groups.contains(id) {
            node_groups.push(id.clone());
        }
    }
    let control_plane = [cluster.id.clone()];
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for node_id in &node_groups {
        let Some(node) = aws.group(node_id) else {
            continue;
        };
        let nodes = [node_id.clone()];
        let nodes_target = SgTarget {
            groups: &nodes,
            addresses: if node_id == &cluster.id {
                &[]
            } else {
                &node_addresses
            },
        };
        let cp_target = SgTarget {
            groups: &control_plane,
            addresses: &[],
        };
        let required: [(
            &SecurityGroup,
            SgDirection,
            Protocol,
            u16,
            &SgTarget<'_>,
            &str,
        ); 6] = [
            (
                cluster,
                SgDirection::Inbound,
                Protocol::Tcp,
                443,
                &nodes_target,
                "from the nodes (kubelet to API server)",
            ),
            (
                cluster,
                SgDirection::Outbound,
                Protocol::Tcp,
                10250,
                &nodes_target,
                "to the nodes (API server to kubelet)",
            ),
            (
                node,
                SgDirection::Inbound,
                Protocol::Tcp,
                10250,
                &cp_target,
                "from the control plane (API server to kubelet)",
            ),
            (
                node,
                SgDirection::Outbound,
                Protocol::Tcp,
                443,
                &cp_target,
                "to the control plane (kubelet to API server)",
            ),
            (
                node,
                SgDirection::Outbound,
                Protocol::Udp,
                53,
                &cp_target,
                "to the cluster security group (DNS)",
            ),
            (
                node,
                SgDirection::Outbound,
                Protocol::Tcp,
                53,
                &cp_target,
                "to the cluster security group (DNS)",
            ),
        ];
        for (group, direction, protocol, port, target, why) in required {
            if group.allowing(direction, protocol, port, target).is_none() {
                let way = match direction {
                    SgDirection::Inbound => "inbound",
                    SgDirection::Outbound => "outbound",
                };
                let mut text = format!("{way} {protocol} {port} {why}");
                if group.id == cluster.id && node_id != &cluster.id {
                    text.push_str(&format!(" of node group {node_id}"));
                }
                let entry = missing.entry(group.id.clone()).or_default();
                if !entry.contains(&text) {
                    entry.push(text);
                }
            }
        }
    }
    for (id, lines) in missing {
        let Some(group) = aws.group(&id) else {
            continue;
        };
        let message = format!("below the EKS minimum rules: no {}", lines.join("; no "));
        let remediation = format!(
            "# EKS user guide, 'Restricting cluster traffic': the cluster security group needs\n# outbound TCP 443, TCP 10250 and TCP/UDP 53 to itself, and accepts all traffic from itself:\naws ec2 authorize-security-group-ingress --group-id {0} --ip-permissions IpProtocol=-1,UserIdGroupPairs=[{{GroupId={0}}}]\naws ec2 authorize-security-group-egress --group-id {0} --ip-permissions IpProtocol=tcp,FromPort=443,ToPort=443,UserIdGroupPairs=[{{GroupId={0}}}] IpProtocol=tcp,FromPort=10250,ToPort=10250,UserIdGroupPairs=[{{GroupId={0}}}]\n",
            cluster.id
        );
        audit
            .finding(CheckId::BelowEksMinimumRules, group)
            .message(message)
            .remediation(remediation);
    }
}

/// Rules of one direction and IP family, as the quota counts them.
fn rule_counts(rules: &[SgRule]) -> (usize, usize) {
    let mut v4 = 0;
    let mut v6 = 0;
    for r in rules {
        match &r.peer {
            SgPeer::Cidr(net) if net.addr().is_ipv4() => v4 += 1,
            SgPeer::Cidr(_) => v6 += 1,
            SgPeer::Group(_) | SgPeer::PrefixList(_) => {
                v4 += 1;
                v6 += 1;
            }
        }
    }
    (v4, v6)
}

fn max_rules_per_family(group: &SecurityGroup) -> usize {
    let (a, b) = rule_counts(&group.inbound);
    let (c, d) = rule_counts(&group.outbound);
    a.max(b).max(c).max(d)
}

/// NF-SG-007: groups above the default rules quota.
fn rules_per_group(audit: &mut Audit<'_>, aws: &AwsInput) {
    for group in &aws.groups {
        let (in4, in6) = rule_counts(&group.inbound);
        let (out4, out6) = rule_counts(&group.outbound);
        let over: Vec<String> = [
            (in4, "inbound IPv4"),
            (in6, "inbound IPv6"),
            (out4, "outbound IPv4"),
            (out6, "outbound IPv6"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > RULES_PER_GROUP_DEFAULT)
        .map(|(n, what)| format!("{n} {what} rules"))
        .collect();
        if over.is_empty() {
            continue;
        }
        let most = max_rules_per_family(group);
        let message = format!(
            "{}: above the default quota of {RULES_PER_GROUP_DEFAULT} per direction and IP family; with the quota raised to {most}, an interface can carry at most {} groups (rules × groups ≤ {RULES_TIMES_GROUPS_MAX})",
            over.join(", "),
            RULES_TIMES_GROUPS_MAX / most
        );
        let remediation = "# merge CIDRs into fewer, wider ranges or a managed prefix list, or reference a\n# security group instead of listing its members' addresses\n";
        audit
            .finding(CheckId::TooManyRulesPerGroup, group)
            .message(message)
            .remediation(remediation);
    }
}

/// Whether a group fronts a load balancer: named by a Service or Ingress annotation, or created
/// for one by the AWS Load Balancer Controller or the in-tree cloud provider.
fn load_balancer_groups(inventory: &Inventory, aws: &AwsInput) -> BTreeSet<String> {
    const ANNOTATIONS: [&str; 3] = [
        "service.beta.kubernetes.io/aws-load-balancer-security-groups",
        "service.beta.kubernetes.io/aws-load-balancer-extra-security-groups",
        "alb.ingress.kubernetes.io/security-groups",
    ];
    let mut named: BTreeSet<String> = BTreeSet::new();
    let annotations = inventory
        .services
        .iter()
        .map(|s| &s.annotations)
        .chain(inventory.ingresses.iter().map(|i| &i.annotations));
    for a in annotations {
        for key in ANNOTATIONS {
            if let Some(list) = a.get(key) {
                named.extend(list.split(',').map(|s| s.trim().to_string()));
            }
        }
    }
    aws.groups
        .iter()
        .filter(|g| {
            named.contains(&g.id)
                || named.contains(&g.name)
                || g.tags
                    .get("ingress.k8s.aws/resource")
                    .or_else(|| g.tags.get("service.k8s.aws/resource"))
                    .is_some_and(|v| v == "ManagedLBSecurityGroup")
                || g.name.starts_with("k8s-elb-")
        })
        .map(|g| g.id.clone())
        .collect()
}

/// One rule in the AWS CLI's `--ip-permissions` shorthand.
fn ip_permission(rule: &SgRule) -> String {
    let protocol = match rule.protocol {
        SgProtocol::All => "-1".to_string(),
        SgProtocol::Tcp => "tcp".to_string(),
        SgProtocol::Udp => "udp".to_string(),
        SgProtocol::Icmp => "icmp".to_string(),
        SgProtocol::Icmpv6 => "icmpv6".to_string(),
        SgProtocol::Other(n) => n.to_string(),
    };
    let ports = match rule.protocol {
        SgProtocol::All | SgProtocol::Other(_) => String::new(),
        _ => format!(",FromPort={},ToPort={}", rule.from_port, rule.to_port),
    };
    let peer = match &rule.peer {
        SgPeer::Cidr(net) if net.addr().is_ipv4() => format!("IpRanges=[{{CidrIp={net}}}]"),
        SgPeer::Cidr(net) => format!("Ipv6Ranges=[{{CidrIpv6={net}}}]"),
        SgPeer::PrefixList(id) => format!("PrefixListIds=[{{PrefixListId={id}}}]"),
        SgPeer::Group(id) => format!("UserIdGroupPairs=[{{GroupId={id}}}]"),
    };
    format!("IpProtocol={protocol}{ports},{peer}")
}

/// NF-SG-008: inbound from anywhere, except HTTP and HTTPS on a load balancer's group and the
/// ICMP "destination unreachable" messages path MTU discovery needs (VPC user guide, "Path MTU
/// Discovery").
fn open_to_the_internet(audit: &mut Audit<'_>, aws: &AwsInput) {
    let inventory = audit.engine.inventory();
    let lbs = load_balancer_groups(inventory, aws);
    for group in &aws.groups {
        let lb = lbs.contains(&group.id);
        let open: Vec<&SgRule> = group
            .inbound
            .iter()
            .filter(|r| r.is_anywhere())
            .filter(|r| {
                let web = r.protocol == SgProtocol::Tcp
                    && r.from_port == r.to_port
                    && (r.from_port == 80 || r.from_port == 443);
                let pmtu = matches!(r.protocol, SgProtocol::Icmp | SgProtocol::Icmpv6)
                    && ((r.protocol == SgProtocol::Icmp && r.from_port == 3)
                        || (r.protocol == SgProtocol::Icmpv6 && r.from_port == 2));
                let allowed = pmtu || (lb && web);
                !allowed
            })
            .collect();
        if open.is_empty() {
            continue;
        }
        let unique: BTreeSet<String> = open
            .iter()
            .map(|r| format!("{} from {}", r.ports_text(), r.peer))
            .collect();
        let revoke: BTreeSet<String> = open.iter().map(|r| ip_permission(r)).collect();
        let message = format!(
            "inbound open to the internet: {}{}",
            unique.into_iter().collect::<Vec<_>>().join(", "),
            if lb {
                " (a load balancer's group: only TCP 80 and 443 belong open)"
            } else {
                " (not a load balancer's group)"
            }
        );
        let remediation = format!(
            "aws ec2 revoke-security-group-ingress --group-id {} --ip-permissions {}\n# and allow the clients' ranges, a prefix list, or a load balancer's security group instead\n",
            group.id,
            revoke.into_iter().collect::<Vec<_>>().join(" ")
        );
        audit
            .finding(CheckId::OpenToTheInternet, group)
            .message(message)
            .remediation(remediation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remediations_name_the_rule_in_aws_cli_shorthand() {
        let rule = |protocol, from_port, to_port, peer: &str| SgRule {
            protocol,
            from_port,
            to_port,
            peer: SgPeer::Cidr(peer.parse().unwrap()),
            field: String::new(),
        };
        assert_eq!(
            ip_permission(&rule(SgProtocol::Tcp, 22, 22, "0.0.0.0/0")),
            "IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=0.0.0.0/0}]"
        );
        assert_eq!(
            ip_permission(&rule(SgProtocol::All, -1, -1, "::/0")),
            "IpProtocol=-1,Ipv6Ranges=[{CidrIpv6=::/0}]"
        );
        assert_eq!(
            ip_permission(&rule(SgProtocol::Icmp, 8, -1, "0.0.0.0/0")),
            "IpProtocol=icmp,FromPort=8,ToPort=-1,IpRanges=[{CidrIp=0.0.0.0/0}]"
        );
    }
}
