//! Which of the kinds the loader reads ([`netfence_model::read_kinds`]) the API server
//! serves, and under which group, version and resource name: legacy discovery (`/api`,
//! `/apis`, then `/api/v1` and `/apis/<group>/<version>` for the groups netfence reads), as
//! kubectl falls back to when aggregated discovery is not offered. A kind whose groups are
//! not served (a CRD that is not installed) is missing, not an error.

use crate::Error;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use std::collections::HashMap;

/// A kind the server serves, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// The kind (`NetworkPolicy`).
    pub kind: &'static str,
    /// The API group (`""` for core).
    pub group: &'static str,
    /// The version read (the first of the loader's versions the server serves).
    pub version: &'static str,
    /// The resource name in paths (`networkpolicies`).
    pub plural: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
}

impl Served {
    /// `apiVersion` as objects carry it (`v1`, `apps/v1`).
    pub fn api_version(&self) -> String {
        match self.group {
            "" => self.version.to_string(),
            group => format!("{group}/{}", self.version),
        }
    }

    /// The collection's path across all namespaces (`/apis/apps/v1/deployments`).
    pub fn path(&self) -> String {
        match self.group {
            "" => format!("/api/{}/{}", self.version, self.plural),
            group => format!("/apis/{group}/{}/{}", self.version, self.plural),
        }
    }

    /// `kind.group` (`Tier.projectcalico.org`), or the kind alone for the core group.
    pub fn qualified(&self) -> String {
        qualified(self.kind, self.group)
    }
}

fn qualified(kind: &str, group: &str) -> String {
    match group {
        "" => kind.to_string(),
        group => format!("{kind}.{group}"),
    }
}

/// What discovery found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServedKinds {
    /// Kinds served, in the loader's table order.
    pub served: Vec<Served>,
    /// Kinds the loader reads that the server does not serve (`Tier.projectcalico.org`):
    /// their CRDs are not installed. Skipped and counted, not an error.
    pub missing: Vec<String>,
}

/// Ask the server which kinds it serves.
pub async fn discover(client: &kube::Client) -> Result<ServedKinds, Error> {
    let core = client
        .list_core_api_versions()
        .await
        .map_err(|source| Error::Api {
            what: "discovery /api".into(),
            source,
        })?;
    let groups = client
        .list_api_groups()
        .await
        .map_err(|source| Error::Api {
            what: "discovery /apis".into(),
            source,
        })?;
    let is_served = |group: &str, version: &str| match group {
        "" => core.versions.iter().any(|v| v == version),
        group => groups
            .groups
            .iter()
            .any(|g| g.name == group && g.versions.iter().any(|v| v.version == version)),
    };
    let mut resources: HashMap<(&str, &str), APIResourceList> = HashMap::new();
    let mut found = ServedKinds::default();
    for read in netfence_model::read_kinds() {
        let mut served = None;
        'groups: for (group, versions) in read.api {
            for version in *versions {
                if !is_served(group, version) {
                    continue;
                }
                let list = match resources.entry((group, version)) {
                    std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                    std::collections::hash_map::Entry::Vacant(entry) => {
                        entry.insert(resource_list(client, group, version).await?)
                    }
                };
                // Subresources (`pods/status`) carry their parent's kind: skip them.
                if let Some(resource) = list
                    .resources
                    .iter()
                    .find(|r| r.kind == read.kind && !r.name.contains('/'))
                {
                    served = Some(Served {
                        kind: read.kind,
                        group,
                        version,
                        plural: resource.name.clone(),
                        namespaced: resource.namespaced,
                    });
                    break 'groups;
                }
            }
        }
        match served {
            Some(served) => found.served.push(served),
            None => {
                let group = read.api.iter().map(|(g, _)| *g).find(|g| !g.is_empty());
                found
                    .missing
                    .push(qualified(read.kind, group.unwrap_or("")));
            }
        }
    }
    Ok(found)
}

async fn resource_list(
    client: &kube::Client,
    group: &str,
    version: &str,
) -> Result<APIResourceList, Error> {
    let (result, what) = match group {
        "" => (
            client.list_core_api_resources(version).await,
            format!("discovery /api/{version}"),
        ),
        group => (
            client
                .list_api_group_resources(&format!("{group}/{version}"))
                .await,
            format!("discovery /apis/{group}/{version}"),
        ),
    };
    result.map_err(|source| Error::Api { what, source })
}
