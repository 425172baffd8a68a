//! The Cilium cases as data (`connectivity.yaml`, `pkg_policy.yaml`, `scenarios.yaml`,
//! `eks.yaml` over the topology `base.yaml`): their shape, the inventory of a case and its
//! expectation lines. Shared by the engine's test (`tests/cilium.rs`) and the dataplane's
//! kernel test (`crates/dataplane/tests/lab_tiers.rs`), which include this file by path.

#![allow(dead_code)]

use netfence_engine::ProbePort;
use netfence_model::Loader;

/// The case files, by name.
pub const FILES: [(&str, &str); 4] = [
    ("connectivity.yaml", include_str!("connectivity.yaml")),
    ("pkg_policy.yaml", include_str!("pkg_policy.yaml")),
    ("scenarios.yaml", include_str!("scenarios.yaml")),
    ("eks.yaml", include_str!("eks.yaml")),
];

/// The topology every case loads first.
pub const BASE: &str = include_str!("base.yaml");

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub source: String,
    #[serde(default)]
    pub policies: String,
    /// More manifests applied with `policies` (the connectivity test applies several).
    #[serde(default)]
    pub extra: String,
    /// `--cni` for the case (default: what the input gives).
    #[serde(default)]
    pub cni: Option<String>,
    #[serde(default)]
    pub expect: Vec<String>,
    /// Why the case cannot be checked by netfence (then `expect` is empty).
    #[serde(default)]
    pub not_expressible: Option<String>,
}

/// The cases of one file.
pub fn cases(file: &str, text: &str) -> Vec<Case> {
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{file} does not parse: {e}"))
}

/// The case's inventory, with or without its `extra` manifests: the topology and the case's
/// manifests, namespaced objects without a namespace going to `cilium-test` (the connectivity
/// test applies them there).
pub fn inventory_for(case: &Case, with_extra: bool) -> netfence_model::Inventory {
    let mut loader = Loader::new();
    loader.set_default_namespace("cilium-test");
    loader.load_str("base.yaml", BASE);
    loader.load_str("policies.yaml", &case.policies);
    if with_extra {
        loader.load_str("extra.yaml", &case.extra);
    }
    let mut inventory = loader
        .finish()
        .unwrap_or_else(|e| panic!("{}: load failed:\n{e}", case.name));
    if let Some(cni) = &case.cni {
        inventory.cni = netfence_model::cilium::CniSetting {
            cni: cni.parse().expect("cni"),
            source: Some("--cni".into()),
        };
    }
    inventory
}

/// One expectation line, `SRC -> DST PROTO/PORT allow|deny`: each end is `ns/pod` or an
/// address (a destination address may be a Service's cluster IP, judged at its backends).
pub struct Expectation<'a> {
    pub src: &'a str,
    pub dst: &'a str,
    pub port: ProbePort,
    pub allow: bool,
}

/// Parse an expectation line; panics on a malformed one (the data is the test's own).
pub fn expectation(line: &str) -> Expectation<'_> {
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(
        words.len() == 5 && words[1] == "->",
        "bad expectation {line:?}"
    );
    Expectation {
        src: words[0],
        dst: words[2],
        port: words[3].parse().expect("port"),
        allow: match words[4] {
            "allow" => true,
            "deny" => false,
            other => panic!("bad verdict {other:?}"),
        },
    }
}
