//! AWS security groups and security groups for pods.
//!
//! Two inputs meet here: `SecurityGroupPolicy` objects (`vpcresources.k8s.aws/v1beta1`, loaded
//! with the other manifests) and the JSON that `aws ec2 describe-security-groups` prints
//! ([`load_security_groups`]). Semantics follow the EC2 API reference (`IpPermission`: `-1` or
//! a protocol other than tcp/udp/icmp/icmpv6 allows every port; each CIDR, IPv6 range, prefix
//! list and group pair is one rule) and the VPC resource controller
//! (aws/amazon-vpc-resource-controller-k8s, `pkg/utils/helper.go` `filterPodSecurityGroups`).

mod input;

pub use input::{AwsInput, AwsInputError};

use crate::error::{LoadError, Origin};
use crate::inventory::Inventory;
use crate::net::Protocol;
use ipnet::IpNet;
use netfence_selector::{LabelSelector, Labels};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// A `SecurityGroupPolicy`: the security groups the VPC resource controller puts on the branch
/// network interface of matching pods, instead of the node's groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroupPolicy {
    /// Namespace (it only selects pods of its own namespace).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.podSelector`; `None` when absent (then it does not constrain).
    pub pod_selector: Option<LabelSelector>,
    /// `spec.serviceAccountSelector`, matched against the labels of the pod's ServiceAccount.
    pub service_account_selector: Option<LabelSelector>,
    /// `spec.securityGroups.groupIds` (1 to 16 by the CRD schema).
    pub group_ids: Vec<String>,
    /// Annotations (`netfence.io/ignore`).
    pub annotations: BTreeMap<String, String>,
    /// Where it was read from.
    pub origin: Origin,
}

impl SecurityGroupPolicy {
    /// Whether the controller gives a pod with these labels, whose ServiceAccount has
    /// `service_account_labels`, this policy's groups: every selector present must match, and
    /// a policy with neither selector is ignored (`filterPodSecurityGroups`).
    pub fn applies_to(&self, pod_labels: &Labels, service_account_labels: &Labels) -> bool {
        if self.pod_selector.is_none() && self.service_account_selector.is_none() {
            return false;
        }
        self.pod_selector
            .as_ref()
            .is_none_or(|s| s.matches(pod_labels))
            && self
                .service_account_selector
                .as_ref()
                .is_none_or(|s| s.matches(service_account_labels))
    }
}

/// Whether `id` has the shape of a security group id (`sg-` and 8 or 17 hex digits).
pub fn is_group_id(id: &str) -> bool {
    id.strip_prefix("sg-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// The protocol of a security group rule (`IpProtocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgProtocol {
    /// `-1`: every protocol and port.
    All,
    /// `tcp` / `6`.
    Tcp,
    /// `udp` / `17`.
    Udp,
    /// `icmp` / `1`: the port range is the ICMP type and code.
    Icmp,
    /// `icmpv6` / `58`.
    Icmpv6,
    /// Another IP protocol number: every port.
    Other(u8),
}

impl std::fmt::Display for SgProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SgProtocol::All => f.write_str("all traffic"),
            SgProtocol::Tcp => f.write_str("TCP"),
            SgProtocol::Udp => f.write_str("UDP"),
            SgProtocol::Icmp => f.write_str("ICMP"),
            SgProtocol::Icmpv6 => f.write_str("ICMPv6"),
            SgProtocol::Other(n) => write!(f, "protocol {n}"),
        }
    }
}

/// The other side of a rule: the source of an inbound rule, the destination of an outbound one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SgPeer {
    /// `IpRanges[].CidrIp` or `Ipv6Ranges[].CidrIpv6`.
    Cidr(IpNet),
    /// `PrefixListIds[].PrefixListId` (contents not known to netfence).
    PrefixList(String),
    /// `UserIdGroupPairs[].GroupId`: network interfaces that carry that group.
    Group(String),
}

impl std::fmt::Display for SgPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SgPeer::Cidr(net) => write!(f, "{net}"),
            SgPeer::PrefixList(id) => write!(f, "prefix list {id}"),
            SgPeer::Group(id) => write!(f, "group {id}"),
        }
    }
}

/// One rule: a protocol, a port range and one peer (AWS counts each peer as one rule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgRule {
    /// Protocol.
    pub protocol: SgProtocol,
    /// First port (TCP/UDP), or ICMP type; -1 for all.
    pub from_port: i32,
    /// Last port (TCP/UDP), or ICMP code; -1 for all.
    pub to_port: i32,
    /// The peer.
    pub peer: SgPeer,
    /// Where in the group it was read (`IpPermissions[0].IpRanges[1]`).
    pub field: String,
}

impl SgRule {
    /// Whether the rule's protocol and ports admit `protocol`/`port`.
    pub fn admits(&self, protocol: Protocol, port: u16) -> bool {
        let in_range = || {
            (self.from_port == -1 && self.to_port == -1)
                || (i32::from(port) >= self.from_port && i32::from(port) <= self.to_port)
        };
        match (self.protocol, protocol) {
            (SgProtocol::All, _) => true,
            (SgProtocol::Tcp, Protocol::Tcp) | (SgProtocol::Udp, Protocol::Udp) => in_range(),
            // Protocol numbers other than tcp/udp/icmp/icmpv6 allow every port (EC2 API
            // reference, IpPermission.IpProtocol). SCTP is 132.
            (SgProtocol::Other(132), Protocol::Sctp) => true,
            _ => false,
        }
    }

    /// Whether this rule opens every TCP and UDP port.
    pub fn is_all_ports(&self) -> bool {
        match self.protocol {
            SgProtocol::All | SgProtocol::Other(_) => true,
            SgProtocol::Tcp | SgProtocol::Udp => {
                (self.from_port == -1 && self.to_port == -1)
                    || (self.from_port <= 0 && self.to_port >= 65535)
            }
            SgProtocol::Icmp | SgProtocol::Icmpv6 => false,
        }
    }

    /// `TCP 443`, `UDP 1000-2000`, `all traffic`, `ICMP type 3`.
    pub fn ports_text(&self) -> String {
        match self.protocol {
            SgProtocol::All | SgProtocol::Other(_) => self.protocol.to_string(),
            SgProtocol::Tcp | SgProtocol::Udp if self.is_all_ports() => {
                format!("{} (all ports)", self.protocol)
            }
            SgProtocol::Tcp | SgProtocol::Udp if self.from_port == self.to_port => {
                format!("{} {}", self.protocol, self.from_port)
            }
            SgProtocol::Tcp | SgProtocol::Udp => {
                format!("{} {}-{}", self.protocol, self.from_port, self.to_port)
            }
            SgProtocol::Icmp | SgProtocol::Icmpv6 if self.from_port == -1 => {
                format!("{} (all types)", self.protocol)
            }
            SgProtocol::Icmp | SgProtocol::Icmpv6 => {
                format!("{} type {}", self.protocol, self.from_port)
            }
        }
    }

    /// Whether the peer is the whole address space of its family (`0.0.0.0/0`, `::/0`).
    pub fn is_anywhere(&self) -> bool {
        matches!(&self.peer, SgPeer::Cidr(net) if net.prefix_len() == 0)
    }

    /// Whether the peer includes every network interface of `target`.
    pub fn covers(&self, target: &SgTarget<'_>) -> bool {
        match &self.peer {
            SgPeer::Group(id) => target.groups.iter().any(|g| g == id),
            SgPeer::Cidr(net) if net.prefix_len() == 0 => {
                // With unknown addresses, assume either family's "anywhere" reaches it.
                target.addresses.is_empty()
                    || target
                        .addresses
                        .iter()
                        .any(|ip| ip.is_ipv4() == matches!(net, IpNet::V4(_)))
            }
            SgPeer::Cidr(net) => {
                !target.addresses.is_empty() && target.addresses.iter().all(|ip| net.contains(ip))
            }
            SgPeer::PrefixList(_) => false,
        }
    }
}

/// The network interfaces on the other side of a connection, as security groups see them: the
/// groups they carry and their addresses, when known (empty = unknown).
#[derive(Clone, Copy, Debug)]
pub struct SgTarget<'a> {
    /// Group ids on the interfaces.
    pub groups: &'a [String],
    /// Known addresses of every interface (all must be covered by a CIDR rule).
    pub addresses: &'a [IpAddr],
}

/// Traffic direction as a security group sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgDirection {
    /// `IpPermissions`.
    Inbound,
    /// `IpPermissionsEgress`.
    Outbound,
}

/// One security group from `describe-security-groups`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroup {
    /// `GroupId`.
    pub id: String,
    /// `GroupName`.
    pub name: String,
    /// `Description`.
    pub description: String,
    /// `VpcId`.
    pub vpc_id: Option<String>,
    /// `Tags` as a map.
    pub tags: BTreeMap<String, String>,
    /// Inbound rules, one per peer.
    pub inbound: Vec<SgRule>,
    /// Outbound rules, one per peer.
    pub outbound: Vec<SgRule>,
    /// File, and the line the group starts on.
    pub origin: Origin,
}

impl SecurityGroup {
    /// The rules of one direction.
    pub fn rules(&self, direction: SgDirection) -> &[SgRule] {
        match direction {
            SgDirection::Inbound => &self.inbound,
            SgDirection::Outbound => &self.outbound,
        }
    }

    /// The first rule that allows `protocol`/`port` to or from every interface of `target`.
    pub fn allowing(
        &self,
        direction: SgDirection,
        protocol: Protocol,
        port: u16,
        target: &SgTarget<'_>,
    ) -> Option<&SgRule> {
        self.rules(direction)
            .iter()
            .find(|r| r.admits(protocol, port) && r.covers(target))
    }

    /// `sg-0123 (name)`.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            self.id.clone()
        } else {
            format!("{} ({})", self.id, self.name)
        }
    }
}

/// The security groups a pod's branch network interface gets from SecurityGroupPolicies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodGroups {
    /// Group ids, in policy order, without duplicates.
    pub groups: Vec<String>,
    /// The policies that gave them (indices into `Inventory::security_group_policies`).
    pub policies: BTreeSet<usize>,
}

/// The security groups of every pod, as the VPC resource controller computes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodSecurityGroups {
    /// By pod id: `Some` when a SecurityGroupPolicy matches the pod (it then uses those groups
    /// instead of its node's), `None` otherwise.
    pub by_pod: Vec<Option<PodGroups>>,
    /// `namespace/name` of ServiceAccounts that a `serviceAccountSelector` was matched against
    /// but that are not in the input (matched as having no labels).
    pub unknown_accounts: BTreeSet<String>,
}

/// The security groups each pod gets: every SecurityGroupPolicy of the pod's namespace whose
/// selectors match ([`SecurityGroupPolicy::applies_to`]), their groups in order without
/// duplicates. Host-network pods get none (the controller's pod webhook skips them).
pub fn pod_security_groups(inventory: &Inventory) -> PodSecurityGroups {
    let policies = &inventory.security_group_policies;
    let mut result = PodSecurityGroups {
        by_pod: vec![None; inventory.pods().len()],
        unknown_accounts: BTreeSet::new(),
    };
    if policies.is_empty() {
        return result;
    }
    let accounts: BTreeMap<(&str, &str), &Labels> = inventory
        .service_accounts
        .iter()
        .map(|s| ((s.namespace.as_str(), s.name.as_str()), &s.labels))
        .collect();
    let mut by_namespace: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, policy) in policies.iter().enumerate() {
        by_namespace
            .entry(policy.namespace.as_str())
            .or_default()
            .push(i);
    }
    let empty = Labels::new();
    for (id, pod) in inventory.pods().iter().enumerate() {
        if pod.host_network {
            continue;
        }
        let account = accounts.get(&(pod.namespace.as_str(), pod.service_account.as_str()));
        let mut groups: Vec<String> = Vec::new();
        let mut matched = BTreeSet::new();
        let candidates = by_namespace
            .get(pod.namespace.as_str())
            .map_or(&[][..], |v| v);
        for &i in candidates {
            let policy = &policies[i];
            if policy.service_account_selector.is_some() && account.is_none() {
                result
                    .unknown_accounts
                    .insert(format!("{}/{}", pod.namespace, pod.service_account));
            }
            if policy.applies_to(&pod.labels, account.copied().unwrap_or(&empty)) {
                matched.insert(i);
                for g in &policy.group_ids {
                    if !groups.contains(g) {
                        groups.push(g.clone());
                    }
                }
            }
        }
        if !groups.is_empty() {
            result.by_pod[id] = Some(PodGroups {
                groups,
                policies: matched,
            });
        }
    }
    result
}

/// One end of a connection as security groups see it: the groups on its network interface
/// (empty when it has none netfence knows of: outside the VPC, or not described) and the
/// address the packets carry.
#[derive(Clone, Copy, Debug)]
pub struct SgSide<'a> {
    /// Group ids on the interface.
    pub groups: &'a [String],
    /// The address on the packets.
    pub address: IpAddr,
}

/// Why the security groups drop a new connection: the side whose groups lack a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgDenial {
    /// `Outbound`: the source's groups allow no rule to the destination; `Inbound`: the
    /// destination's groups allow none from the source.
    pub direction: SgDirection,
    /// The groups of that side.
    pub groups: Vec<String>,
}

impl AwsInput {
    /// Whether some group of `groups` allows `protocol`/`port` in `direction` for `target`.
    pub fn any_allows(
        &self,
        groups: &[String],
        direction: SgDirection,
        protocol: Protocol,
        port: u16,
        target: &SgTarget<'_>,
    ) -> bool {
        groups
            .iter()
            .filter_map(|id| self.group(id))
            .any(|g| g.allowing(direction, protocol, port, target).is_some())
    }

    /// Whether the security groups let a new connection from `src` to `dst` (TCP, UDP, SCTP):
    /// security groups are stateful and allow-only, so the source's outbound rules must allow
    /// the destination and the destination's inbound rules the source; replies pass (EC2 user
    /// guide, "Security group rules"). A side is judged only when every group it carries was
    /// read (a group netfence cannot see might allow): `None` means nothing was judged.
    pub fn connection(
        &self,
        src: SgSide<'_>,
        dst: SgSide<'_>,
        protocol: Protocol,
        port: u16,
    ) -> Option<Result<(), SgDenial>> {
        let known = |side: &SgSide<'_>| {
            !side.groups.is_empty() && side.groups.iter().all(|id| self.group(id).is_some())
        };
        let mut judged = false;
        for (side, other, direction) in [
            (&src, &dst, SgDirection::Outbound),
            (&dst, &src, SgDirection::Inbound),
        ] {
            if !known(side) {
                continue;
            }
            judged = true;
            let address = [other.address];
            let target = SgTarget {
                groups: other.groups,
                addresses: &address,
            };
            if !self.any_allows(side.groups, direction, protocol, port, &target) {
                return Some(Err(SgDenial {
                    direction,
                    groups: side.groups.to_vec(),
                }));
            }
        }
        judged.then_some(Ok(()))
    }

    /// The groups on the nodes' network interfaces: the cluster security group (managed node
    /// groups carry it) and the node security groups named, in that order.
    pub fn node_interface_groups(&self) -> Vec<String> {
        self.cluster_group
            .iter()
            .chain(&self.node_groups)
            .fold(Vec::new(), |mut all, id| {
                if !all.contains(id) {
                    all.push(id.clone());
                }
                all
            })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawGroup {
    group_id: Option<String>,
    group_name: Option<String>,
    description: Option<String>,
    vpc_id: Option<String>,
    #[serde(default)]
    tags: Vec<RawTag>,
    #[serde(default)]
    ip_permissions: Vec<RawPermission>,
    #[serde(default)]
    ip_permissions_egress: Vec<RawPermission>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawTag {
    key: String,
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawPermission {
    ip_protocol: Option<String>,
    from_port: Option<i64>,
    to_port: Option<i64>,
    #[serde(default)]
    ip_ranges: Vec<RawPeer>,
    #[serde(default)]
    ipv6_ranges: Vec<RawPeer>,
    #[serde(default)]
    prefix_list_ids: Vec<RawPeer>,
    #[serde(default)]
    user_id_group_pairs: Vec<RawPeer>,
}

/// An entry of `IpRanges`, `Ipv6Ranges`, `PrefixListIds` or `UserIdGroupPairs`; each list's
/// entries carry the one field that list is about.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawPeer {
    cidr_ip: Option<String>,
    cidr_ipv6: Option<String>,
    prefix_list_id: Option<String>,
    group_id: Option<String>,
}

/// How to read the peer of one entry list: its field name, the entry's field, and the parse.
type PeerList<'a> = (
    &'static str,
    &'static str,
    &'a [RawPeer],
    fn(&RawPeer) -> Option<&String>,
    fn(&str) -> Result<SgPeer, String>,
);

/// Read the JSON that `aws ec2 describe-security-groups` prints (`{"SecurityGroups": […]}`, or
/// the bare list that `--query SecurityGroups` prints). Errors name the file, the group and
/// the field.
// One error, on the cold path (as in `load`): boxing it would only add noise.
#[allow(clippy::result_large_err)]
pub fn load_security_groups(file: &str, text: &str) -> Result<Vec<SecurityGroup>, LoadError> {
    let origin = |line: usize| Origin {
        file: file.to_string(),
        document: 1,
        line,
        item: None,
    };
    let error =
        |line: usize, object: Option<String>, field: Option<String>, message: String| LoadError {
            origin: origin(line),
            object,
            field,
            message,
        };
    let value: serde_json::Value = crate::parse::json(text).map_err(|e| {
        error(
            e.line.unwrap_or(1).max(1),
            None,
            None,
            format!(
                "not the JSON of `aws ec2 describe-security-groups` (run it with --output json): {e}"
            ),
        )
    })?;
    let (items, prefix) = match value {
        serde_json::Value::Array(items) => (items, ""),
        serde_json::Value::Object(mut map) => match map.remove("SecurityGroups") {
            Some(serde_json::Value::Array(items)) => (items, "SecurityGroups"),
            Some(_) => {
                return Err(error(
                    1,
                    None,
                    Some("SecurityGroups".into()),
                    "expected a list".into(),
                ))
            }
            None => {
                return Err(error(
                    1,
                    None,
                    Some("SecurityGroups".into()),
                    "missing: expected the output of `aws ec2 describe-security-groups`".into(),
                ))
            }
        },
        _ => {
            return Err(error(
                1,
                None,
                None,
                "expected the output of `aws ec2 describe-security-groups` (an object with SecurityGroups)".into(),
            ))
        }
    };
    let lines = element_lines(text);
    let mut groups = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let line = lines.get(i).copied().unwrap_or(1);
        let path = format!("{prefix}[{i}]");
        let id = item
            .get("GroupId")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let object = Some(format!(
            "SecurityGroup {}",
            if id.is_empty() { "?" } else { &id }
        ));
        let fail =
            |field: String, message: String| error(line, object.clone(), Some(field), message);
        let group: RawGroup = serde_path_to_error::deserialize(item).map_err(|e| {
            let inner = e.path().to_string();
            let field = if inner == "." {
                path.clone()
            } else {
                format!("{path}.{inner}")
            };
            fail(field, e.inner().to_string())
        })?;
        if !is_group_id(&id) {
            return Err(fail(
                format!("{path}.GroupId"),
                format!(
                    "expected a security group id (sg-…), found {:?}",
                    group.group_id.unwrap_or_default()
                ),
            ));
        }
        let mut directions = [Vec::new(), Vec::new()];
        for (d, (key, permissions)) in [
            ("IpPermissions", &group.ip_permissions),
            ("IpPermissionsEgress", &group.ip_permissions_egress),
        ]
        .into_iter()
        .enumerate()
        {
            for (pi, permission) in permissions.iter().enumerate() {
                let base = format!("{path}.{key}[{pi}]");
                let rules = permission_rules(permission, &base).map_err(|(f, m)| fail(f, m))?;
                directions[d].extend(rules);
            }
        }
        let [inbound, outbound] = directions;
        groups.push(SecurityGroup {
            id,
            name: group.group_name.unwrap_or_default(),
            description: group.description.unwrap_or_default(),
            vpc_id: group.vpc_id,
            tags: group
                .tags
                .into_iter()
                .map(|t| (t.key, t.value.unwrap_or_default()))
                .collect(),
            inbound,
            outbound,
            origin: origin(line),
        });
    }
    Ok(groups)
}

fn permission_rules(p: &RawPermission, base: &str) -> Result<Vec<SgRule>, (String, String)> {
    let protocol_text = p
        .ip_protocol
        .as_deref()
        .ok_or_else(|| (format!("{base}.IpProtocol"), "missing".to_string()))?;
    let protocol = match protocol_text.to_ascii_lowercase().as_str() {
        "-1" | "all" => SgProtocol::All,
        "tcp" | "6" => SgProtocol::Tcp,
        "udp" | "17" => SgProtocol::Udp,
        "icmp" | "1" => SgProtocol::Icmp,
        "icmpv6" | "58" => SgProtocol::Icmpv6,
        other => match other.parse::<u8>() {
            Ok(n) => SgProtocol::Other(n),
            Err(_) => {
                return Err((
                    format!("{base}.IpProtocol"),
                    format!("unknown protocol {protocol_text:?} (expected tcp, udp, icmp, icmpv6, -1 or a protocol number)"),
                ))
            }
        },
    };
    let (from_port, to_port) = match protocol {
        SgProtocol::Tcp | SgProtocol::Udp => {
            let from = p.from_port.ok_or_else(|| {
                (
                    format!("{base}.FromPort"),
                    "missing: TCP and UDP rules need a port range".into(),
                )
            })?;
            let to = p.to_port.ok_or_else(|| {
                (
                    format!("{base}.ToPort"),
                    "missing: TCP and UDP rules need a port range".into(),
                )
            })?;
            let valid = |n: i64| (0..=65535).contains(&n);
            if from == -1 && to == -1 {
                (-1, -1)
            } else if !valid(from) || !valid(to) || from > to {
                return Err((
                    format!("{base}.FromPort"),
                    format!("invalid port range {from}-{to} (0-65535, FromPort ≤ ToPort)"),
                ));
            } else {
                (from as i32, to as i32)
            }
        }
        SgProtocol::Icmp | SgProtocol::Icmpv6 => {
            let from = p.from_port.unwrap_or(-1);
            let to = p.to_port.unwrap_or(-1);
            if !(-1..=255).contains(&from) || !(-1..=255).contains(&to) {
                return Err((
                    format!("{base}.FromPort"),
                    format!("invalid ICMP type/code {from}/{to} (-1 or 0-255)"),
                ));
            }
            (from as i32, to as i32)
        }
        SgProtocol::All | SgProtocol::Other(_) => (-1, -1),
    };
    let lists: [PeerList<'_>; 4] = [
        (
            "IpRanges",
            "CidrIp",
            &p.ip_ranges,
            |e| e.cidr_ip.as_ref(),
            |t| parse_family_cidr(t, true).map(SgPeer::Cidr),
        ),
        (
            "Ipv6Ranges",
            "CidrIpv6",
            &p.ipv6_ranges,
            |e| e.cidr_ipv6.as_ref(),
            |t| parse_family_cidr(t, false).map(SgPeer::Cidr),
        ),
        (
            "PrefixListIds",
            "PrefixListId",
            &p.prefix_list_ids,
            |e| e.prefix_list_id.as_ref(),
            |t| Ok(SgPeer::PrefixList(t.to_string())),
        ),
        (
            "UserIdGroupPairs",
            "GroupId",
            &p.user_id_group_pairs,
            |e| e.group_id.as_ref(),
            |t| Ok(SgPeer::Group(t.to_string())),
        ),
    ];
    let mut rules = Vec::new();
    for (list, leaf, entries, value, parse) in lists {
        for (i, entry) in entries.iter().enumerate() {
            let field = format!("{base}.{list}[{i}].{leaf}");
            let text = value(entry).ok_or((field.clone(), "missing".to_string()))?;
            let peer = parse(text).map_err(|m| (field.clone(), m))?;
            rules.push(SgRule {
                protocol,
                from_port,
                to_port,
                peer,
                field,
            });
        }
    }
    Ok(rules)
}

fn parse_family_cidr(text: &str, v4: bool) -> Result<IpNet, String> {
    let net: IpNet = text.parse().map_err(|_| format!("invalid CIDR {text:?}"))?;
    if matches!(net, IpNet::V4(_)) != v4 {
        return Err(format!(
            "{text:?} is not an {} CIDR",
            if v4 { "IPv4" } else { "IPv6" }
        ));
    }
    Ok(net)
}

/// The 1-based line on which each element of the groups array starts (`SecurityGroups` of the
/// top-level object, or the top-level array), found by scanning the (valid) JSON text.
fn element_lines(text: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    let mut line = 1;
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut string_start = 0;
    let mut last_key: Option<&str> = None;
    let mut target_depth: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c == '\n' {
            line += 1;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
                if depth == 1 {
                    last_key = Some(&text[string_start..i]);
                }
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                string_start = i + 1;
            }
            '[' | '{' => {
                if c == '[' && target_depth.is_none() {
                    if depth == 0 || (depth == 1 && last_key == Some("SecurityGroups")) {
                        target_depth = Some(depth + 1);
                    }
                } else if c == '{' && target_depth == Some(depth) {
                    lines.push(line);
                }
                depth += 1;
            }
            ']' | '}' => {
                depth = depth.saturating_sub(1);
                if c == ']' && target_depth == Some(depth + 1) {
                    target_depth = Some(usize::MAX);
                }
            }
            _ => {}
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
    "SecurityGroups": [
        {
            "Description": "EKS created security group",
            "GroupName": "eks-cluster-sg-demo-1",
            "IpPermissions": [
                {"IpProtocol": "-1", "IpRanges": [], "Ipv6Ranges": [], "PrefixListIds": [],
                 "UserIdGroupPairs": [{"GroupId": "sg-0aaaaaaaaaaaaaaaa", "UserId": "111122223333"}]}
            ],
            "OwnerId": "111122223333",
            "GroupId": "sg-0aaaaaaaaaaaaaaaa",
            "IpPermissionsEgress": [
                {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [],
                 "PrefixListIds": [], "UserIdGroupPairs": []}
            ],
            "Tags": [{"Key": "aws:eks:cluster-name", "Value": "demo"}],
            "VpcId": "vpc-01234567"
        },
        {
            "Description": "pods [with \"brackets\"]",
            "GroupName": "pods",
            "IpPermissions": [
                {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8090,
                 "IpRanges": [{"CidrIp": "10.0.0.0/16"}, {"CidrIp": "0.0.0.0/0"}],
                 "Ipv6Ranges": [{"CidrIpv6": "::/0"}], "PrefixListIds": [{"PrefixListId": "pl-1234"}],
                 "UserIdGroupPairs": []}
            ],
            "GroupId": "sg-0bbbbbbbbbbbbbbbb",
            "IpPermissionsEgress": []
        }
    ]
}"#;

    #[test]
    fn describe_output_loads_with_lines_and_one_rule_per_peer() {
        let groups = load_security_groups("sgs.json", SAMPLE).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].origin.line, 3);
        assert_eq!(groups[1].origin.line, 19);
        assert_eq!(groups[0].tags["aws:eks:cluster-name"], "demo");
        assert_eq!(groups[1].inbound.len(), 4);
        assert_eq!(
            groups[1].inbound[3].field,
            "SecurityGroups[1].IpPermissions[0].PrefixListIds[0].PrefixListId"
        );
        let bare = SAMPLE
            .trim()
            .strip_prefix("{\n    \"SecurityGroups\":")
            .and_then(|s| s.strip_suffix('}'))
            .unwrap();
        let again = load_security_groups("bare.json", bare).unwrap();
        let peers =
            |g: &SecurityGroup| g.inbound.iter().map(|r| r.peer.clone()).collect::<Vec<_>>();
        assert_eq!(peers(&again[1]), peers(&groups[1]));
        assert_eq!(
            again[1].inbound[0].field,
            "[1].IpPermissions[0].IpRanges[0].CidrIp"
        );
        assert_eq!(again[1].origin.line, 18);
    }

    #[test]
    fn rules_admit_ports_and_cover_targets() {
        let groups = load_security_groups("sgs.json", SAMPLE).unwrap();
        let pods = &groups[1];
        let known = ["10.0.3.4".parse().unwrap()];
        let unknown: [IpAddr; 0] = [];
        let target = |addresses| SgTarget {
            groups: &[],
            addresses,
        };
        let r = &pods.inbound[0];
        assert!(r.admits(Protocol::Tcp, 8085) && !r.admits(Protocol::Tcp, 8091));
        assert!(!r.admits(Protocol::Udp, 8085));
        assert!(r.covers(&target(&known)) && !r.covers(&target(&unknown)));
        assert!(pods.inbound[1].covers(&target(&unknown)) && pods.inbound[1].is_anywhere());
        // ::/0 does not reach an IPv4 interface; a prefix list covers nothing netfence knows.
        assert!(!pods.inbound[2].covers(&target(&known)));
        assert!(!pods.inbound[3].covers(&target(&known)));
        let cluster = &groups[0];
        let members = ["sg-0aaaaaaaaaaaaaaaa".to_string()];
        let by_group = SgTarget {
            groups: &members,
            addresses: &[],
        };
        assert!(cluster
            .allowing(SgDirection::Inbound, Protocol::Udp, 53, &by_group)
            .is_some());
        assert!(cluster
            .allowing(SgDirection::Inbound, Protocol::Udp, 53, &target(&known))
            .is_none());
        assert!(cluster.inbound[0].is_all_ports());
        assert_eq!(pods.inbound[0].ports_text(), "TCP 8080-8090");
    }

    #[test]
    fn bad_input_names_file_group_and_field() {
        let bad = SAMPLE.replace("\"FromPort\": 8080", "\"FromPort\": 9000");
        let e = load_security_groups("sgs.json", &bad).unwrap_err();
        assert_eq!(
            e.object.as_deref(),
            Some("SecurityGroup sg-0bbbbbbbbbbbbbbbb")
        );
        assert_eq!(
            e.field.as_deref(),
            Some("SecurityGroups[1].IpPermissions[0].FromPort")
        );
        assert_eq!(e.origin.line, 19);
        let e = load_security_groups("sgs.json", &SAMPLE.replace("8090", "\"8090\"")).unwrap_err();
        assert_eq!(
            (e.origin.line, e.object.as_deref(), e.field.as_deref()),
            (
                19,
                Some("SecurityGroup sg-0bbbbbbbbbbbbbbbb"),
                Some("SecurityGroups[1].IpPermissions[0].ToPort")
            )
        );
        let e = load_security_groups("sgs.json", "SecurityGroups: []").unwrap_err();
        assert!(e.message.contains("--output json"), "{e}");
        let e = load_security_groups("sgs.json", "{\"Groups\": []}").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("SecurityGroups"));
        let e = load_security_groups("sgs.json", "{\"SecurityGroups\": [{\"GroupId\": 7}]}")
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("SecurityGroups[0].GroupId"));
        let e = load_security_groups(
            "sgs.json",
            &SAMPLE.replace("\"CidrIpv6\": \"::/0\"", "\"CidrIpv6\": \"10.0.0.0/8\""),
        )
        .unwrap_err();
        assert!(e.message.contains("not an IPv6 CIDR"), "{e}");
        let e =
            load_security_groups("sgs.json", &SAMPLE.replace("\"tcp\"", "\"tcpp\"")).unwrap_err();
        assert_eq!(
            e.field.as_deref(),
            Some("SecurityGroups[1].IpPermissions[0].IpProtocol")
        );
    }

    #[test]
    fn group_ids_and_policy_matching() {
        assert!(is_group_id("sg-0123abcd") && is_group_id("sg-0123456789abcdef0"));
        assert!(!is_group_id("sg-123") && !is_group_id("my_pod_security_group_id"));
        let labels = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let role_db = LabelSelector::from_parts([("role".into(), "db".into())], []).unwrap();
        let mut sgp = SecurityGroupPolicy {
            namespace: "shop".into(),
            name: "db".into(),
            pod_selector: Some(role_db.clone()),
            service_account_selector: None,
            group_ids: vec!["sg-0123abcd".into()],
            annotations: BTreeMap::new(),
            origin: Origin::default(),
        };
        assert!(sgp.applies_to(&labels(&[("role", "db")]), &labels(&[])));
        assert!(!sgp.applies_to(&labels(&[("role", "web")]), &labels(&[])));
        sgp.service_account_selector = Some(role_db);
        assert!(!sgp.applies_to(&labels(&[("role", "db")]), &labels(&[])));
        assert!(sgp.applies_to(&labels(&[("role", "db")]), &labels(&[("role", "db")])));
        sgp.pod_selector = None;
        sgp.service_account_selector = None;
        assert!(!sgp.applies_to(&labels(&[("role", "db")]), &labels(&[])));
    }
}
