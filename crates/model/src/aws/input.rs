//! The security groups as a whole input: `aws ec2 describe-security-groups` output from one or
//! more sources, which group is the EKS cluster's and which are the nodes', read once for the
//! audit's NF-SG checks and for `flows check`'s verdict path.

use super::{load_security_groups, SecurityGroup};
use crate::LoadError;
use std::collections::BTreeMap;

/// Why the security groups could not be read or the chosen groups are not among them. The
/// variants name no command-line flag: callers say how the groups were chosen.
#[derive(Debug, thiserror::Error)]
pub enum AwsInputError {
    /// A source is not what `describe-security-groups` prints (names the source, the group and
    /// the field).
    #[error(transparent)]
    Load(#[from] Box<LoadError>),
    /// One group id at two places.
    #[error(
        "{file}: line {line}: security group {id} also appears at {first_file}: line {first_line}"
    )]
    DuplicateGroup {
        /// The group id.
        id: String,
        /// Where it appears again.
        file: String,
        /// Its line there.
        line: usize,
        /// Where it appeared first.
        first_file: String,
        /// Its line there.
        first_line: usize,
    },
    /// The chosen cluster security group is not among the groups read.
    #[error("cluster security group {id}: no such group in {}", files.join(", "))]
    UnknownClusterGroup {
        /// The group id.
        id: String,
        /// The sources read.
        files: Vec<String>,
    },
    /// A chosen node security group is not among the groups read.
    #[error("node security group {id}: no such group in {}", files.join(", "))]
    UnknownNodeGroup {
        /// The group id.
        id: String,
        /// The sources read.
        files: Vec<String>,
    },
}

/// Security groups read from `aws ec2 describe-security-groups`, and which of them are the
/// cluster's.
#[derive(Clone, Debug, Default)]
pub struct AwsInput {
    /// Every group read.
    pub groups: Vec<SecurityGroup>,
    /// The files they came from (for messages).
    pub files: Vec<String>,
    /// The EKS cluster security group (control plane network interfaces and managed nodes).
    pub cluster_group: Option<String>,
    /// Further node security groups (self-managed node groups).
    pub node_groups: Vec<String>,
    /// How the cluster group was chosen, when netfence chose it.
    pub note: Option<String>,
    /// Group id → index in `groups`.
    index: BTreeMap<String, usize>,
}

impl AwsInput {
    /// Read the JSON that `aws ec2 describe-security-groups` prints from each `(name, text)`
    /// source, in order, then choose the cluster and node groups as [`AwsInput::new`] does.
    /// Sources are read lazily: the first bad one ends the reading.
    pub fn from_sources(
        sources: impl IntoIterator<Item = (String, String)>,
        cluster_group: Option<String>,
        node_groups: Vec<String>,
    ) -> Result<Self, AwsInputError> {
        let mut groups = Vec::new();
        let mut files = Vec::new();
        for (name, text) in sources {
            groups.extend(load_security_groups(&name, &text).map_err(Box::new)?);
            files.push(name);
        }
        AwsInput::new(groups, files, cluster_group, node_groups)
    }

    /// Check the chosen groups exist; without `cluster_group`, take the one group EKS tagged
    /// as a cluster security group (`aws:eks:cluster-name`, named `eks-cluster-sg-…`), if
    /// exactly one is present.
    pub fn new(
        groups: Vec<SecurityGroup>,
        files: Vec<String>,
        cluster_group: Option<String>,
        node_groups: Vec<String>,
    ) -> Result<Self, AwsInputError> {
        let mut seen = BTreeMap::new();
        for g in &groups {
            if let Some(first) = seen.insert(g.id.clone(), &g.origin) {
                if first.file != g.origin.file || first.line != g.origin.line {
                    return Err(AwsInputError::DuplicateGroup {
                        id: g.id.clone(),
                        file: g.origin.file.clone(),
                        line: g.origin.line,
                        first_file: first.file.clone(),
                        first_line: first.line,
                    });
                }
            }
        }
        let missing = |id: &String| (!seen.contains_key(id)).then(|| id.clone());
        if let Some(id) = cluster_group.as_ref().and_then(missing) {
            return Err(AwsInputError::UnknownClusterGroup { id, files });
        }
        if let Some(id) = node_groups.iter().find_map(missing) {
            return Err(AwsInputError::UnknownNodeGroup { id, files });
        }
        let mut note = None;
        let cluster_group = match cluster_group {
            Some(id) => Some(id),
            None => {
                let tagged: Vec<&SecurityGroup> = groups
                    .iter()
                    .filter(|g| {
                        g.tags.contains_key("aws:eks:cluster-name")
                            && g.name.starts_with("eks-cluster-sg-")
                    })
                    .collect();
                match tagged.as_slice() {
                    [one] => {
                        note = Some(format!(
                            "cluster security group: {} (the one group tagged aws:eks:cluster-name={}; choose another with --cluster-security-group)",
                            one.label(),
                            one.tags["aws:eks:cluster-name"]
                        ));
                        Some(one.id.clone())
                    }
                    [] => {
                        note = Some("NF-SG-002 to NF-SG-005 and NF-SG-010 need the cluster security group: pass --cluster-security-group sg-… (aws eks describe-cluster --query cluster.resourcesVpcConfig.clusterSecurityGroupId)".to_string());
                        None
                    }
                    several => {
                        note = Some(format!(
                            "NF-SG-002 to NF-SG-005 and NF-SG-010 need the cluster security group: {} groups are tagged as EKS cluster security groups ({}); pass --cluster-security-group",
                            several.len(),
                            several.iter().map(|g| g.id.as_str()).collect::<Vec<_>>().join(", ")
                        ));
                        None
                    }
                }
            }
        };
        let index = groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.id.clone(), i))
            .collect();
        Ok(AwsInput {
            groups,
            files,
            cluster_group,
            node_groups,
            note,
            index,
        })
    }

    /// The group with this id, if it was read.
    pub fn group(&self, id: &str) -> Option<&SecurityGroup> {
        self.index.get(id).map(|&i| &self.groups[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUPS: &str = r#"{"SecurityGroups": [{"GroupId": "sg-0123abcd", "GroupName": "web"}]}"#;

    fn source(name: &str, text: &str) -> (String, String) {
        (name.to_string(), text.to_string())
    }

    #[test]
    fn errors_say_which_group_is_missing_and_where_it_was_looked_for() {
        let unknown = |cluster: Option<&str>, node: &[&str]| {
            AwsInput::from_sources(
                [source("a.json", GROUPS)],
                cluster.map(str::to_string),
                node.iter().map(|n| n.to_string()).collect(),
            )
            .unwrap_err()
        };
        assert!(matches!(
            unknown(Some("sg-99999999"), &[]),
            AwsInputError::UnknownClusterGroup { id, files } if id == "sg-99999999" && files == ["a.json"]
        ));
        assert!(matches!(
            unknown(Some("sg-0123abcd"), &["sg-0123abcd", "sg-88888888"]),
            AwsInputError::UnknownNodeGroup { id, .. } if id == "sg-88888888"
        ));
        let twice = AwsInput::from_sources(
            [source("a.json", GROUPS), source("b.json", GROUPS)],
            None,
            Vec::new(),
        )
        .unwrap_err();
        assert_eq!(
            twice.to_string(),
            "b.json: line 1: security group sg-0123abcd also appears at a.json: line 1"
        );
        let bad = AwsInput::from_sources([source("c.json", "[1]")], None, Vec::new()).unwrap_err();
        assert!(matches!(bad, AwsInputError::Load(_)) && bad.to_string().starts_with("c.json"));
    }

    #[test]
    fn sources_are_read_in_order_and_stop_at_the_first_bad_one() {
        let mut pulled = Vec::new();
        let sources = ["a.json", "bad.json", "never.json"].map(|name| {
            let text = if name == "bad.json" { "[1]" } else { GROUPS };
            source(name, text)
        });
        let result = AwsInput::from_sources(
            sources
                .into_iter()
                .inspect(|(name, _)| pulled.push(name.clone())),
            None,
            Vec::new(),
        );
        assert!(result.is_err());
        assert_eq!(pulled, ["a.json", "bad.json"]);
    }
}
