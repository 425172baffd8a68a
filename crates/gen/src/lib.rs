//! Deterministic synthetic clusters for benchmarks and scale tests (`netfence gen`). A tool,
//! not part of the engine: it writes manifests that the loader then reads like any others.
//!
//! A cluster looks like a real one: namespaces with team/env labels; three-tier apps
//! (frontend → backend → database) as Deployments and StatefulSets whose pods are written out
//! with owner references and addresses; Services; default deny in a share of namespaces; DNS
//! egress to kube-system; cross-namespace rules with namespace selectors; ipBlocks with
//! `except`; named ports and `endPort` ranges. The same parameters and seed give byte-identical
//! output.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::fmt::Write as _;

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub struct GenOptions {
    /// Pods in total (kube-system's two DNS pods included): 2 to [`MAX_PODS`].
    pub pods: usize,
    /// Application namespaces: 1 to `pods` (and at most [`MAX_NAMESPACES`]).
    pub namespaces: usize,
    /// NetworkPolicies in total (approximately: every namespace gets its baseline set first);
    /// at most [`MAX_POLICIES`].
    pub policies: usize,
    /// Calico GlobalNetworkPolicies to add (0 for a Kubernetes-only cluster, which peers such
    /// as NCA can read): a security tier with metadata-service deny and per-team Pass rules.
    /// At most [`MAX_CALICO`].
    pub calico: usize,
    /// AdminNetworkPolicies to add (0: none), with priorities 0, 1, …, and then one
    /// BaselineAdminNetworkPolicy. At most [`MAX_ADMIN`].
    pub admin: usize,
    /// Seed of the pseudo-random choices.
    pub seed: u64,
}

/// Most pods [`generate`] writes. The whole cluster is built in memory (about 500 bytes of
/// YAML per pod with its share of workloads and services: 480 MB at a million pods, measured),
/// and a million pods is already
/// more than six times the 150,000 that Kubernetes documents as its largest supported cluster
/// ("Considerations for large clusters", kubernetes.io/docs/setup/best-practices/cluster-large).
/// It also keeps every pod address in 10.0.0.0/12, clear of the DNS pods' 10.255.0.0/24.
pub const MAX_PODS: usize = 1_000_000;
/// Most application namespaces (each brings up to five baseline policies).
pub const MAX_NAMESPACES: usize = 100_000;
/// Most NetworkPolicies.
pub const MAX_POLICIES: usize = 1_000_000;
/// Most Calico GlobalNetworkPolicies.
pub const MAX_CALICO: usize = 100_000;

/// Most AdminNetworkPolicies: one per priority value the API allows (0 to 1000,
/// network-policy-api `spec.priority`).
pub const MAX_ADMIN: usize = 1001;

/// Why [`GenOptions`] cannot be generated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GenError {
    /// A count above its maximum.
    #[error("{option} {value} is more than the {max} this generator writes")]
    TooLarge {
        /// `pods`, `namespaces`, `policies`, `calico` or `admin`.
        option: &'static str,
        /// The value asked for.
        value: usize,
        /// The largest allowed.
        max: usize,
    },
    /// Fewer pods than the two CoreDNS pods every cluster has.
    #[error("pods {0} is fewer than the 2 CoreDNS pods every generated cluster has")]
    TooFewPods(usize),
    /// No application namespace.
    #[error("namespaces must be at least 1")]
    NoNamespaces,
    /// More namespaces than pods.
    #[error("namespaces {namespaces} is more than pods {pods}")]
    MoreNamespacesThanPods {
        /// Namespaces asked for.
        namespaces: usize,
        /// Pods asked for.
        pods: usize,
    },
}

impl GenOptions {
    /// Whether these options can be generated, in bounded time and memory.
    ///
    /// ```
    /// use netfence_gen::{GenError, GenOptions};
    /// let options = GenOptions { pods: 10_000_000_000, namespaces: 10, policies: 0, calico: 0, admin: 0, seed: 1 };
    /// assert!(matches!(options.check(), Err(GenError::TooLarge { option: "pods", .. })));
    /// ```
    pub fn check(&self) -> Result<(), GenError> {
        for (option, value, max) in [
            ("pods", self.pods, MAX_PODS),
            ("namespaces", self.namespaces, MAX_NAMESPACES),
            ("policies", self.policies, MAX_POLICIES),
            ("calico", self.calico, MAX_CALICO),
            ("admin", self.admin, MAX_ADMIN),
        ] {
            if value > max {
                return Err(GenError::TooLarge { option, value, max });
            }
        }
        if self.pods < 2 {
            return Err(GenError::TooFewPods(self.pods));
        }
        if self.namespaces == 0 {
            return Err(GenError::NoNamespaces);
        }
        if self.namespaces > self.pods {
            return Err(GenError::MoreNamespacesThanPods {
                namespaces: self.namespaces,
                pods: self.pods,
            });
        }
        Ok(())
    }
}

/// `text` (a file [`generate`] wrote) with every IPv4 address, a dotted quad with or without
/// a prefix length, written as its IPv6 twin in `fd00:10::/96`: `10.0.24.230` as
/// `fd00:10::a00:18e6`, `10.0.0.0/8` as `fd00:10::a00:0/104`. Applied to every file, it
/// gives an IPv6-only cluster (as EKS makes one) whose pods, policies and connections are
/// those of the IPv4 one: the twin of each address is in the twin of each range that holds
/// it, and in no other. `netfence gen --ipv6` writes it; flow records whose addresses are
/// written the same way are judged as their IPv4 twins are.
///
/// ```
/// assert_eq!(
///     netfence_gen::ipv6_twin("status: {podIP: 10.0.24.230}\ncidr: 0.0.0.0/0 # v1.2.3\n"),
///     "status: {podIP: fd00:10::a00:18e6}\ncidr: fd00:10::0:0/96 # v1.2.3\n",
/// );
/// ```
pub fn ipv6_twin(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        // A word that starts with a digit, not inside another word or number.
        let starts = bytes[at].is_ascii_digit()
            && (at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'.'));
        if !starts {
            at += 1;
            continue;
        }
        let end = bytes[at..]
            .iter()
            .position(|&b| !(b.is_ascii_digit() || b == b'.' || b == b'/'))
            .map_or(bytes.len(), |n| at + n);
        let word = &text[at..end];
        let (address, prefix) = match word.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix.parse::<u8>().ok())),
            None => (word, None),
        };
        if let (Ok(address), None | Some(Some(0..=32))) =
            (address.parse::<std::net::Ipv4Addr>(), prefix)
        {
            let bits = u32::from(address);
            out.push_str(&text[copied..at]);
            out.push_str(&format!("fd00:10::{:x}:{:x}", bits >> 16, bits & 0xffff));
            if let Some(Some(prefix)) = prefix {
                out.push_str(&format!("/{}", u32::from(prefix) + 96));
            }
            copied = end;
        }
        at = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// The generated files: (file name, contents); a file with nothing to hold (`50-calico.yaml`
/// without `calico`) is empty. Fails, before any work, when [`GenOptions::check`] does.
pub fn generate(options: &GenOptions) -> Result<Vec<(String, String)>, GenError> {
    options.check()?;
    let mut cluster = Cluster {
        rng: Rng(options.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
        namespaces: String::from("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kube-system\n  labels: {name: kube-system}\n"),
        workloads: String::new(),
        pods: String::new(),
        services: String::new(),
        policies: String::new(),
        calico: String::new(),
        admin: String::new(),
        policy_count: 0,
        pod_index: 0,
    };
    cluster.coredns();
    let app_pods = options.pods.saturating_sub(2);
    for n in 0..options.namespaces {
        let pods_here =
            app_pods / options.namespaces + usize::from(n < app_pods % options.namespaces);
        cluster.namespace(n, pods_here);
    }
    cluster.extra_policies(options.namespaces, options.policies);
    cluster.calico_policies(options.calico);
    cluster.admin_policies(options.admin);
    Ok(vec![
        ("00-namespaces.yaml".into(), cluster.namespaces),
        ("10-workloads.yaml".into(), cluster.workloads),
        ("20-pods.yaml".into(), cluster.pods),
        ("30-services.yaml".into(), cluster.services),
        ("40-policies.yaml".into(), cluster.policies),
        ("50-calico.yaml".into(), cluster.calico),
        ("60-admin.yaml".into(), cluster.admin),
    ])
}

const TEAMS: [&str; 6] = ["payments", "search", "catalog", "identity", "ops", "data"];
const ENVS: [&str; 3] = ["prod", "staging", "dev"];
const TIERS: [&str; 3] = ["frontend", "backend", "database"];

/// The files being written, and the counters that run through them. The pseudo-random
/// choices are drawn in one fixed order (namespaces, extra policies, Calico), which is what
/// makes the output byte-identical for a seed.
struct Cluster {
    rng: Rng,
    namespaces: String,
    workloads: String,
    pods: String,
    services: String,
    policies: String,
    calico: String,
    admin: String,
    policy_count: usize,
    pod_index: u32,
}

impl Cluster {
    /// CoreDNS: a Deployment and its two pods in kube-system.
    fn coredns(&mut self) {
        let _ = write!(
            self.workloads,
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: coredns, namespace: kube-system}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{k8s-app: kube-dns}}}}\n  template:\n    metadata: {{labels: {{k8s-app: kube-dns}}}}\n    spec:\n      containers:\n      - name: coredns\n        ports: [{{name: dns, containerPort: 53, protocol: UDP}}, {{name: dns-tcp, containerPort: 53}}]\n"
        );
        for i in 0..2 {
            let _ = write!(
                self.pods,
                "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: coredns-5d5f-{i}\n  namespace: kube-system\n  labels: {{k8s-app: kube-dns}}\n  ownerReferences: [{{apiVersion: apps/v1, kind: Deployment, name: coredns, controller: true}}]\nspec:\n  containers:\n  - name: coredns\n    ports: [{{name: dns, containerPort: 53, protocol: UDP}}, {{name: dns-tcp, containerPort: 53}}]\nstatus: {{podIP: 10.255.0.{}}}\n",
                i + 10
            );
        }
    }

    /// Application namespace `n` with its share of pods spread over three tiers, and its
    /// baseline policies.
    fn namespace(&mut self, n: usize, pods_here: usize) {
        let ns = format!("ns-{n:04}");
        let team = TEAMS[n % TEAMS.len()];
        let env = ENVS[self.rng.below(ENVS.len())];
        let _ = write!(
            self.namespaces,
            "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels: {{team: {team}, env: {env}}}\n"
        );
        // Workloads: a few per tier; replicas fill the namespace's share of pods.
        let per_tier = (pods_here / 3).max(1);
        for (t, tier) in TIERS.iter().enumerate() {
            let count = if t == 2 {
                pods_here.saturating_sub(2 * per_tier)
            } else {
                per_tier.min(pods_here.saturating_sub(t * per_tier))
            };
            if count == 0 {
                continue;
            }
            let apps = 1 + count / 8;
            for a in 0..apps {
                let replicas = count / apps + usize::from(a < count % apps);
                if replicas > 0 {
                    self.app(&ns, team, tier, &format!("{tier}-{a}"), replicas);
                }
            }
        }
        self.baseline_policies(n, &ns, team, env);
    }

    /// One workload of a tier with its Service and its pods.
    fn app(&mut self, ns: &str, team: &str, tier: &str, app: &str, replicas: usize) {
        let (kind, port, port_name) = match tier {
            "database" => ("StatefulSet", 5432, "pg"),
            "backend" => ("Deployment", 8080, "http"),
            _ => ("Deployment", 8443, "https"),
        };
        let _ = write!(
            self.workloads,
            "---\napiVersion: apps/v1\nkind: {kind}\nmetadata: {{name: {app}, namespace: {ns}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {app}}}}}\n  template:\n    metadata: {{labels: {{app: {app}, tier: {tier}, team: {team}}}}}\n    spec:\n      serviceAccountName: {app}\n      containers:\n      - name: main\n        ports: [{{name: {port_name}, containerPort: {port}}}, {{name: metrics, containerPort: 9090}}]\n"
        );
        let _ = write!(
            self.services,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {app}, namespace: {ns}}}\nspec: {{selector: {{app: {app}}}, ports: [{{port: {port}, targetPort: {port_name}}}]}}\n"
        );
        for r in 0..replicas {
            self.pod_index += 1;
            let name = if kind == "StatefulSet" {
                format!("{app}-{r}")
            } else {
                format!("{app}-7c9f-{r:04}")
            };
            let index = self.pod_index;
            let ip = format!(
                "10.{}.{}.{}",
                (index >> 16) & 0xff,
                (index >> 8) & 0xff,
                index & 0xff
            );
            let _ = write!(
                self.pods,
                "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{app: {app}, tier: {tier}, team: {team}}}\n  ownerReferences: [{{apiVersion: apps/v1, kind: {kind}, name: {app}, controller: true}}]\nspec:\n  serviceAccountName: {app}\n  containers:\n  - name: main\n    ports: [{{name: {port_name}, containerPort: {port}}}, {{name: metrics, containerPort: 9090}}]\nstatus: {{podIP: {ip}}}\n"
            );
        }
    }

    /// Default deny in two namespaces of three, DNS egress everywhere that denies egress, then
    /// tier-to-tier rules.
    fn baseline_policies(&mut self, n: usize, ns: &str, team: &str, env: &str) {
        if n % 3 != 2 {
            let _ = write!(
                self.policies,
                "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: default-deny, namespace: {ns}}}\nspec: {{podSelector: {{}}, policyTypes: [Ingress, Egress]}}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: allow-dns, namespace: {ns}}}\nspec:\n  podSelector: {{}}\n  policyTypes: [Egress]\n  egress:\n  - to: [{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: kube-system}}}}, podSelector: {{matchLabels: {{k8s-app: kube-dns}}}}}}]\n    ports: [{{protocol: UDP, port: 53}}, {{protocol: TCP, port: 53}}]\n"
            );
            self.policy_count += 2;
        }
        let _ = write!(
            self.policies,
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: frontend, namespace: {ns}}}\nspec:\n  podSelector: {{matchLabels: {{tier: frontend}}}}\n  policyTypes: [Ingress, Egress]\n  ingress: [{{from: [{{ipBlock: {{cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}}}], ports: [{{port: https}}]}}]\n  egress: [{{to: [{{podSelector: {{matchLabels: {{tier: backend}}}}}}], ports: [{{port: 8080}}]}}]\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: backend, namespace: {ns}}}\nspec:\n  podSelector: {{matchLabels: {{tier: backend}}}}\n  policyTypes: [Ingress, Egress]\n  ingress:\n  - from: [{{podSelector: {{matchLabels: {{tier: frontend}}}}}}, {{namespaceSelector: {{matchLabels: {{team: {team}, env: {env}}}}}, podSelector: {{matchLabels: {{tier: backend}}}}}}]\n    ports: [{{port: http}}]\n  egress: [{{to: [{{podSelector: {{matchLabels: {{tier: database}}}}}}], ports: [{{port: 5432}}]}}]\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: database, namespace: {ns}}}\nspec:\n  podSelector: {{matchLabels: {{tier: database}}}}\n  policyTypes: [Ingress]\n  ingress: [{{from: [{{podSelector: {{matchLabels: {{tier: backend}}}}}}], ports: [{{port: pg}}]}}]\n"
        );
        self.policy_count += 3;
    }

    /// Extra cross-namespace policies until the requested count: monitoring, partner ranges,
    /// port ranges.
    fn extra_policies(&mut self, namespaces: usize, wanted: usize) {
        let mut extra = 0;
        while self.policy_count < wanted {
            let ns = format!("ns-{:04}", self.rng.below(namespaces));
            let body = match self.rng.below(3) {
                0 => format!(
                    "  podSelector: {{matchLabels: {{tier: {}}}}}\n  policyTypes: [Ingress]\n  ingress: [{{from: [{{namespaceSelector: {{matchLabels: {{team: ops}}}}}}], ports: [{{port: metrics}}]}}]\n",
                    TIERS[self.rng.below(3)]
                ),
                1 => {
                    let b = 16 + self.rng.below(16);
                    format!(
                        "  podSelector: {{matchLabels: {{tier: backend}}}}\n  policyTypes: [Egress]\n  egress: [{{to: [{{ipBlock: {{cidr: 172.{b}.0.0/16, except: [172.{b}.{}.0/24]}}}}], ports: [{{port: 443}}]}}]\n",
                        self.rng.below(256)
                    )
                }
                _ => {
                    // A few port ranges recur, as in real clusters (NodePorts, ephemeral ranges).
                    let (first, last) =
                        [(30000, 32767), (8000, 8999), (9100, 9199)][self.rng.below(3)];
                    format!(
                        "  podSelector: {{matchLabels: {{team: {}}}}}\n  policyTypes: [Ingress]\n  ingress: [{{from: [{{namespaceSelector: {{matchLabels: {{env: {}}}}}}}], ports: [{{protocol: TCP, port: {first}, endPort: {last}}}]}}]\n",
                        TEAMS[self.rng.below(TEAMS.len())],
                        ENVS[self.rng.below(ENVS.len())],
                    )
                }
            };
            let _ = write!(
                self.policies,
                "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: extra-{extra}, namespace: {ns}}}\nspec:\n{body}"
            );
            extra += 1;
            self.policy_count += 1;
        }
    }

    /// A `security` tier with a metadata-service deny and per-team Pass rules.
    fn calico_policies(&mut self, count: usize) {
        if count == 0 {
            return;
        }
        let _ = write!(
            self.calico,
            "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {{name: security}}\nspec: {{order: 100}}\n---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: security.deny-metadata}}\nspec:\n  tier: security\n  order: 10\n  selector: all()\n  types: [Egress]\n  egress:\n  - {{action: Deny, destination: {{nets: [169.254.169.254/32]}}}}\n  - {{action: Pass}}\n"
        );
        for i in 1..count {
            let team = TEAMS[self.rng.below(TEAMS.len())];
            let _ = write!(
                self.calico,
                "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: security.team-{i}}}\nspec:\n  tier: security\n  order: {}\n  selector: team == \"{team}\" && tier == \"database\"\n  namespaceSelector: team == \"{team}\"\n  types: [Ingress]\n  ingress:\n  - {{action: Pass, source: {{namespaceSelector: team == \"{team}\"}}}}\n  - {{action: Deny, protocol: TCP, destination: {{ports: [5432]}}}}\n",
                100 + i
            );
        }
    }
}

impl Cluster {
    /// Admin policies as platform teams write them: per team, monitoring from `ops` allowed on
    /// the metrics port, traffic from `dev` namespaces into others denied, and the team's own
    /// namespaces passed on to NetworkPolicy; then a baseline that denies ingress from other
    /// teams' namespaces where no NetworkPolicy decided.
    fn admin_policies(&mut self, count: usize) {
        for i in 0..count {
            let team = TEAMS[self.rng.below(TEAMS.len())];
            let sep = if i == 0 { "" } else { "---\n" };
            let _ = write!(
                self.admin,
                "{sep}apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {{name: team-{i}}}\nspec:\n  priority: {i}\n  subject: {{namespaces: {{matchLabels: {{team: {team}}}}}}}\n  ingress:\n  - {{name: monitoring, action: Allow, from: [{{namespaces: {{matchLabels: {{team: ops}}}}}}], ports: [{{portNumber: {{protocol: TCP, port: 9090}}}}]}}\n  - {{name: no-dev, action: Deny, from: [{{namespaces: {{matchLabels: {{env: dev}}}}}}]}}\n  - {{name: own-team, action: Pass, from: [{{namespaces: {{matchLabels: {{team: {team}}}}}}}]}}\n",
            );
        }
        if count > 0 {
            let _ = write!(
                self.admin,
                "---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {{name: default}}\nspec:\n  subject: {{namespaces: {{}}}}\n  ingress:\n  - {{name: same-namespace, action: Allow, from: [{{pods: {{namespaceSelector: {{}}, podSelector: {{}}}}}}], ports: [{{portNumber: {{protocol: UDP, port: 53}}}}]}}\n"
            );
        }
    }
}

/// xorshift64*: small, fast and deterministic across platforms.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
