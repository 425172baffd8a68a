//! Admin policy: validation errors for what the CRDs' CEL rules reject, the layering of
//! admin tier → NetworkPolicy → baseline tier with its explanation, and priority-tie warnings.

mod common;

use common::engine_from;
use netfence_engine::{Endpoint, Outcome};
use netfence_model::{Loader, Protocol};

const CLUSTER: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: app, labels: {team: app}}
---
apiVersion: v1
kind: Namespace
metadata: {name: monitoring, labels: {team: ops}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: app, labels: {app: web}}
spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: prometheus, namespace: monitoring, labels: {app: prometheus}}
spec: {containers: [{name: c}]}
";

fn load_error(policy: &str) -> String {
    let mut loader = Loader::new();
    loader.load_str("cluster.yaml", CLUSTER);
    loader.load_str("policy.yaml", policy);
    match loader.finish() {
        Ok(_) => panic!("expected a validation error for:\n{policy}"),
        Err(errors) => errors.to_string(),
    }
}

const ANP_HEAD: &str = "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: p}\nspec:\n";

// apis/v1alpha1 CEL and schema rules: one subject kind, one peer kind, one port kind, port
// range start < end, priority 0-1000, BANP named "default", actions per kind.
#[test]
fn validation_follows_the_crd_rules() {
    let cases = [
        ("  priority: 1\n  subject: {namespaces: {}, pods: {namespaceSelector: {}, podSelector: {}}}\n", "spec.subject"),
        ("  priority: 1001\n  subject: {namespaces: {}}\n", "spec.priority"),
        ("  subject: {namespaces: {}}\n", "spec.priority"),
        ("  priority: 1\n  subject: {namespaces: {}}\n  ingress: [{action: Allow, from: [{namespaces: {}, pods: {namespaceSelector: {}, podSelector: {}}}]}]\n", "spec.ingress[0].from[0]"),
        ("  priority: 1\n  subject: {namespaces: {}}\n  ingress: [{action: Allow, from: [{namespaces: {}}], ports: [{portRange: {protocol: TCP, start: 90, end: 80}}]}]\n", "spec.ingress[0].ports[0].portRange"),
        ("  priority: 1\n  subject: {namespaces: {}}\n  ingress: [{action: Allow, from: [{namespaces: {}}], ports: [{portNumber: {port: 80}, namedPort: http}]}]\n", "spec.ingress[0].ports[0]"),
        ("  priority: 1\n  subject: {namespaces: {}}\n  ingress: [{action: Maybe, from: [{namespaces: {}}]}]\n", "spec.ingress[0].action"),
        ("  priority: 1\n  subject: {namespaces: {}}\n  ingress: [{action: Allow, from: [{networks: [10.0.0.0/8]}]}]\n", "spec.ingress[0].from[0].networks"),
        ("  priority: 1\n  subject: {namespaces: {}}\n  egress: [{action: Allow, to: []}]\n", "spec.egress[0].to"),
    ];
    for (spec, field) in cases {
        let error = load_error(&format!("{ANP_HEAD}{spec}"));
        assert!(
            error.contains(&format!(": {field}: ")),
            "{field} not named in: {error}"
        );
    }
    let error = load_error("apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: other}\nspec: {subject: {namespaces: {}}}\n");
    assert!(error.contains("metadata.name"), "{error}");
    let error = load_error("apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: default}\nspec:\n  subject: {namespaces: {}}\n  ingress: [{action: Pass, from: [{namespaces: {}}]}]\n");
    assert!(error.contains("spec.ingress[0].action"), "{error}");
    let error = load_error("apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {name: c}\nspec: {tier: Middle, priority: 1, subject: {namespaces: {}}}\n");
    assert!(error.contains("spec.tier"), "{error}");
}

// network-policy-api: admin tier first (Pass hands over to NetworkPolicy), NetworkPolicy next,
// baseline last and only for traffic no NetworkPolicy decided.
#[test]
fn layering_and_the_explained_walk() {
    let policies = "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: pass-monitoring}
spec:
  priority: 10
  subject: {namespaces: {matchLabels: {team: app}}}
  ingress:
  - {name: pass-from-ops, action: Pass, from: [{namespaces: {matchLabels: {team: ops}}}]}
  - {name: deny-rest, action: Deny, from: [{namespaces: {}}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-prometheus, namespace: app}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: ops}}}], ports: [{port: http}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress: [{name: deny-all, action: Deny, from: [{namespaces: {}}]}]
";
    let engine = engine_from(&[("cluster.yaml", CLUSTER), ("policies.yaml", policies)]);
    let web = Endpoint::Pod(engine.inventory().pod_by_key("app", "web").unwrap());
    let prometheus = Endpoint::Pod(
        engine
            .inventory()
            .pod_by_key("monitoring", "prometheus")
            .unwrap(),
    );
    let verdict = engine.explain(prometheus, web, Protocol::Tcp, 8080);
    assert!(verdict.allowed);
    assert_eq!(verdict.ingress.passed_through.len(), 1);
    assert_eq!(verdict.ingress.passed_through[0].tier, "kube-admin");
    assert_eq!(verdict.ingress.passed_through[0].policy, "pass-monitoring");
    match &verdict.ingress.outcome {
        Outcome::Rule { rule } => assert_eq!(
            (rule.tier.as_str(), rule.policy.as_str()),
            ("default", "app/allow-prometheus")
        ),
        other => panic!("{other:?}"),
    }
    // The NetworkPolicy isolates web, so its end-of-tier deny decides port 9090, not the baseline.
    let verdict = engine.explain(prometheus, web, Protocol::Tcp, 9090);
    assert!(
        matches!(verdict.ingress.outcome, Outcome::EndOfTier { ref tier } if tier == "default")
    );
    // Prometheus is not isolated by any NetworkPolicy: the baseline tier decides for it.
    let verdict = engine.explain(web, prometheus, Protocol::Tcp, 9090);
    match &verdict.ingress.outcome {
        Outcome::Rule { rule } => assert_eq!(
            (rule.tier.as_str(), rule.policy.as_str()),
            ("kube-baseline", "default")
        ),
        other => panic!("{other:?}"),
    }
    assert!(!verdict.allowed);
}

#[test]
fn equal_priorities_are_reported() {
    let policies = format!(
        "{ANP_HEAD}  priority: 5\n  subject: {{namespaces: {{}}}}\n---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {{name: q}}\nspec:\n  priority: 5\n  subject: {{namespaces: {{}}}}\n"
    );
    let mut loader = Loader::new();
    loader.load_str("cluster.yaml", CLUSTER);
    loader.load_str("policies.yaml", &policies);
    let inventory = loader.finish().expect("loads");
    assert!(
        inventory
            .warnings
            .iter()
            .any(|w| w.contains("share priority 5")),
        "{:?}",
        inventory.warnings
    );
}
