//! Random clusters for the property tests: a small deterministic generator and YAML
//! builders for Kubernetes and Calico objects over a few labels, namespaces and addresses.

use std::fmt::Write as _;

/// A tiny deterministic generator driven by proptest's seed.
pub struct Gen(pub u64);

impl Gen {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

pub const KEYS: [&str; 3] = ["app", "tier", "env"];
pub const VALUES: [&str; 3] = ["a", "b", "c"];
pub const NAMESPACES: [&str; 3] = ["x", "y", "z"];

pub fn labels(g: &mut Gen) -> String {
    let mut out = String::from("{");
    for key in KEYS {
        if g.chance(50) {
            let _ = write!(out, "{key}: {}, ", g.pick(&VALUES));
        }
    }
    out.push('}');
    out
}

pub fn selector(g: &mut Gen) -> String {
    let mut out = String::from("{");
    if g.chance(50) {
        let _ = write!(
            out,
            "matchLabels: {{{}: {}}}, ",
            g.pick(&KEYS),
            g.pick(&VALUES)
        );
    }
    if g.chance(40) {
        let op = g.pick(&["In", "NotIn", "Exists", "DoesNotExist"]);
        let values = if op == "In" || op == "NotIn" {
            format!(", values: [{}, {}]", g.pick(&VALUES), g.pick(&VALUES))
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "matchExpressions: [{{key: {}, operator: {op}{values}}}]",
            g.pick(&KEYS)
        );
    }
    out.push('}');
    out
}

pub fn peer(g: &mut Gen) -> String {
    match g.below(4) {
        0 => format!("{{podSelector: {}}}", selector(g)),
        1 => format!("{{namespaceSelector: {}}}", selector(g)),
        2 => format!(
            "{{namespaceSelector: {}, podSelector: {}}}",
            selector(g),
            selector(g)
        ),
        _ => {
            if g.chance(50) {
                "{ipBlock: {cidr: 10.0.0.0/24, except: [10.0.0.0/30]}}".into()
            } else {
                format!("{{ipBlock: {{cidr: 10.0.0.{}/32}}}}", g.below(8))
            }
        }
    }
}

pub fn port(g: &mut Gen) -> String {
    let protocol = g.pick(&["TCP", "UDP", "SCTP"]);
    match g.below(4) {
        0 => format!("{{protocol: {protocol}}}"),
        1 => format!(
            "{{protocol: {protocol}, port: {}}}",
            g.pick(&["80", "81", "8080"])
        ),
        2 => format!(
            "{{protocol: {protocol}, port: 80, endPort: {}}}",
            g.pick(&["81", "8080"])
        ),
        _ => format!(
            "{{protocol: {protocol}, port: {}}}",
            g.pick(&["web", "alt"])
        ),
    }
}

pub fn rules(g: &mut Gen, peers_key: &str) -> String {
    let mut out = String::new();
    for _ in 0..g.below(3) {
        out.push_str("  - {");
        if g.chance(70) {
            let peers: Vec<String> = (0..1 + g.below(2)).map(|_| peer(g)).collect();
            let _ = write!(out, "{peers_key}: [{}], ", peers.join(", "));
        }
        if g.chance(60) {
            let ports: Vec<String> = (0..1 + g.below(2)).map(|_| port(g)).collect();
            let _ = write!(out, "ports: [{}]", ports.join(", "));
        }
        out.push_str("}\n");
    }
    out
}

pub fn random_cluster(seed: u64) -> String {
    let mut g = Gen(seed | 1);
    let mut yaml = String::new();
    for ns in NAMESPACES {
        let _ = write!(
            yaml,
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {}}}\n",
            labels(&mut g)
        );
    }
    for i in 0..2 + g.below(5) {
        let ns = g.pick(&NAMESPACES);
        let ip = if g.chance(70) {
            format!("status: {{podIP: 10.0.0.{i}}}\n")
        } else {
            String::new()
        };
        let host = if g.chance(10) {
            "hostNetwork: true, "
        } else {
            ""
        };
        let named = g.pick(&["web", "alt"]);
        let named_protocol = g.pick(&["TCP", "UDP"]);
        let _ = write!(
            yaml,
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: {ns}, labels: {}}}\nspec: {{{host}containers: [{{name: c, ports: [{{name: {named}, containerPort: {}, protocol: {named_protocol}}}]}}]}}\n{ip}",
            labels(&mut g),
            g.pick(&["80", "81", "8080"]),
        );
    }
    for i in 0..g.below(5) {
        let ns = g.pick(&NAMESPACES);
        let types = match g.below(4) {
            0 => "",
            1 => "  policyTypes: [Ingress]\n",
            2 => "  policyTypes: [Egress]\n",
            _ => "  policyTypes: [Ingress, Egress]\n",
        };
        let _ = write!(
            yaml,
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: np{i}, namespace: {ns}}}\nspec:\n  podSelector: {}\n{types}",
            selector(&mut g)
        );
        let ingress = rules(&mut g, "from");
        if !ingress.is_empty() || g.chance(30) {
            let _ = write!(
                yaml,
                "  ingress:\n{}",
                if ingress.is_empty() {
                    "  - {}\n".into()
                } else {
                    ingress
                }
            );
        }
        let egress = rules(&mut g, "to");
        if !egress.is_empty() {
            let _ = write!(yaml, "  egress:\n{egress}");
        }
    }
    yaml
}

pub fn calico_selector_text(g: &mut Gen) -> String {
    match g.below(6) {
        0 => "all()".into(),
        1 => format!("{} == \"{}\"", g.pick(&KEYS), g.pick(&VALUES)),
        2 => format!("{} != \"{}\"", g.pick(&KEYS), g.pick(&VALUES)),
        3 => format!("has({})", g.pick(&KEYS)),
        4 => format!("role == \"{}\"", g.pick(&["r1", "r2"])),
        _ => format!(
            "{} in {{\"{}\", \"{}\"}}",
            g.pick(&KEYS),
            g.pick(&VALUES),
            g.pick(&VALUES)
        ),
    }
}

pub fn calico_entity(g: &mut Gen, services_allowed: bool, global: bool) -> String {
    if services_allowed && g.chance(15) {
        let namespace = g.pick(&NAMESPACES);
        let name = g.pick(&["s0", "s1", "missing"]);
        return if global || g.chance(50) {
            format!("services: {{name: {name}, namespace: {namespace}}}")
        } else {
            format!("services: {{name: {name}}}")
        };
    }
    let mut fields = Vec::new();
    if g.chance(15) {
        fields.push(
            match g.below(5) {
                0 => "serviceAccounts: {names: [sa0]}",
                1 => "serviceAccounts: {selector: 'team == \"a\"'}",
                // True on no labels: network sets pass it.
                2 => "serviceAccounts: {selector: 'team != \"a\"'}",
                3 => "serviceAccounts: {names: [sa1], selector: '!has(team)'}",
                _ => "serviceAccounts: {}",
            }
            .to_string(),
        );
    }
    if g.chance(40) {
        fields.push(format!("selector: '{}'", calico_selector_text(g)));
    }
    if g.chance(30) {
        fields.push(format!("notSelector: '{}'", calico_selector_text(g)));
    }
    if g.chance(20) {
        let selector = match g.below(6) {
            0 => "all()".to_string(),
            1 => "global()".to_string(),
            2 => format!("has({})", g.pick(&KEYS)),
            // True on an empty label set: also selects the global network sets.
            3 => format!("{} != \"{}\"", g.pick(&KEYS), g.pick(&VALUES)),
            4 => format!("!has({})", g.pick(&KEYS)),
            _ => format!("{} == \"{}\"", g.pick(&KEYS), g.pick(&VALUES)),
        };
        fields.push(format!("namespaceSelector: '{selector}'"));
    }
    if g.chance(15) {
        fields.push(format!(
            "nets: [{}]",
            g.pick(&["10.0.0.0/30", "10.0.0.0/24", "10.0.0.3/32", "192.0.2.0/24"])
        ));
    }
    if g.chance(10) {
        fields.push(format!(
            "notNets: [{}]",
            g.pick(&["10.0.0.0/31", "10.0.0.5/32"])
        ));
    }
    fields.join(", ")
}

pub fn random_calico_cluster(seed: u64) -> String {
    let mut g = Gen(seed | 1);
    let mut yaml = String::new();
    for ns in NAMESPACES {
        let _ = write!(
            yaml,
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {}}}\n",
            labels(&mut g)
        );
        for account in ["sa0", "sa1"] {
            let team = g.pick(&["{team: a}", "{team: b}", "{}"]);
            let _ = write!(
                yaml,
                "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {account}, namespace: {ns}, labels: {team}}}\n"
            );
        }
    }
    for i in 0..2 + g.below(5) {
        let ns = g.pick(&NAMESPACES);
        let ip = if g.chance(70) {
            format!("status: {{podIP: 10.0.0.{i}}}\n")
        } else {
            String::new()
        };
        let host = if g.chance(10) {
            "hostNetwork: true, "
        } else {
            ""
        };
        let _ = write!(
            yaml,
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: {ns}, labels: {}}}\nspec: {{{host}serviceAccountName: {}, containers: [{{name: c, ports: [{{name: {}, containerPort: {}, protocol: {}}}]}}]}}\n{ip}",
            labels(&mut g),
            g.pick(&["sa0", "sa1"]),
            g.pick(&["web", "alt"]),
            g.pick(&["80", "81", "8080"]),
            g.pick(&["TCP", "UDP"]),
        );
    }
    for i in 0..g.below(4) {
        let nets = g.pick(&[
            "10.0.0.0/30",
            "10.0.0.2/31",
            "10.0.0.0/24",
            "10.0.0.4/32",
            "192.0.2.0/25",
        ]);
        let role = g.pick(&["r1", "r2"]);
        if g.chance(50) {
            let _ = write!(
                yaml,
                "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {{name: gs{i}, labels: {{role: {role}}}}}\nspec: {{nets: [{nets}]}}\n"
            );
        } else {
            let _ = write!(
                yaml,
                "---\napiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata: {{name: ns{i}, namespace: {}, labels: {{role: {role}}}}}\nspec: {{nets: [{nets}]}}\n",
                g.pick(&NAMESPACES)
            );
        }
    }
    for i in 0..2 {
        if g.chance(60) {
            let target = g.pick(&["80", "8080", "web", "alt"]);
            let _ = write!(
                yaml,
                "---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: {}}}\nspec: {{selector: {{{}: {}}}, ports: [{{port: 80, targetPort: {target}, protocol: {}}}]}}\n",
                g.pick(&NAMESPACES),
                g.pick(&KEYS),
                g.pick(&VALUES),
                g.pick(&["TCP", "UDP"])
            );
        }
    }
    let policies = 1 + g.below(4);
    for i in 0..policies {
        let global = g.chance(40);
        let (kind, namespace) = if global {
            ("GlobalNetworkPolicy", String::new())
        } else {
            (
                "NetworkPolicy",
                format!(", namespace: {}", g.pick(&NAMESPACES)),
            )
        };
        let types = match g.below(3) {
            0 => "[Ingress]",
            1 => "[Egress]",
            _ => "[Ingress, Egress]",
        };
        let _ = write!(
            yaml,
            "---\napiVersion: projectcalico.org/v3\nkind: {kind}\nmetadata: {{name: cp{i}{namespace}}}\nspec:\n  order: {}\n  selector: '{}'\n  types: {types}\n",
            (policies - i) * 10,
            calico_selector_text(&mut g)
        );
        for direction in ["ingress", "egress"] {
            let rules = g.below(3);
            if rules == 0 {
                continue;
            }
            let _ = writeln!(yaml, "  {direction}:");
            for _ in 0..rules {
                let action = g.pick(&["Allow", "Allow", "Deny", "Log", "Pass"]);
                let entity = calico_entity(&mut g, true, global);
                let services = entity.starts_with("services");
                let protocol = if g.chance(50) {
                    format!("protocol: {}, ", g.pick(&["TCP", "UDP"]))
                } else {
                    String::new()
                };
                // Calico forbids destination ports beside destination services.
                let ports_allowed = !(services && direction == "egress");
                let ports = if !protocol.is_empty() && ports_allowed && g.chance(60) {
                    format!(
                        "ports: [{}]",
                        g.pick(&["80", "'80:81'", "8080", "web", "alt"])
                    )
                } else {
                    String::new()
                };
                let (source, destination) = if direction == "ingress" {
                    (entity, ports)
                } else {
                    (
                        String::new(),
                        [entity, ports]
                            .iter()
                            .filter(|s| !s.is_empty())
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", "),
                    )
                };
                let _ = writeln!(
                    yaml,
                    "  - {{action: {action}, {protocol}source: {{{source}}}, destination: {{{destination}}}}}"
                );
            }
        }
    }
    yaml
}
