//! `Baseline::preview` against `Cluster::apply` on generated clusters: the same delta and the
//! same changes, and the baseline keeps answering for the state it was built from.

use netfence_engine::{connlist, Cluster};
use netfence_model::{Loader, ObjectKey};
use netfence_view::whatif::Baseline;

fn files(seed: u64) -> Vec<(String, String)> {
    netfence_gen::generate(&netfence_gen::GenOptions {
        pods: 90,
        namespaces: 4,
        policies: 16,
        calico: 4,
        admin: 0,
        seed,
    })
    .expect("generate")
}

fn loader(files: &[(String, String)]) -> Loader {
    let mut loader = Loader::new();
    for (name, text) in files {
        loader.load_str(name, text);
    }
    loader
}

fn changes(text: &str) -> Loader {
    let mut loader = Loader::new();
    if !text.is_empty() {
        loader.load_str("change.yaml", text);
    }
    loader
}

#[test]
fn preview_equals_cluster_apply_and_changes_nothing() {
    for seed in [1, 2, 3] {
        let files = files(seed);
        let baseline = Baseline::new(loader(&files)).expect("baseline");
        let before = connlist(baseline.engine());
        let cases: Vec<(String, Vec<ObjectKey>)> = vec![
            (
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: open, namespace: ns-0001}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress], ingress: [{}], egress: [{}]}\n".into(),
                vec![],
            ),
            (
                String::new(),
                vec!["NetworkPolicy/ns-0000/frontend".parse().expect("key")],
            ),
            (
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns-0002, labels: {team: ops}}\n".into(),
                vec!["NetworkPolicy/ns-0003/allow-dns".parse().expect("key")],
            ),
        ];
        let mut moved = 0;
        for (text, deletions) in &cases {
            let preview = baseline.preview(changes(text), deletions).expect("preview");
            let mut cluster = Cluster::new(loader(&files)).expect("cluster");
            let applied = cluster.apply(changes(text), deletions).expect("apply");
            assert_eq!(
                preview.delta, applied.delta,
                "seed {seed}: {text} {deletions:?}"
            );
            assert_eq!(preview.changes, applied.changes);
            assert_eq!(preview.focus, applied.focus);
            moved += usize::from(!preview.delta.is_empty());
            // Previewed again: the same answer, from the same state.
            let again = baseline
                .preview(changes(text), deletions)
                .expect("preview again");
            assert_eq!(again.delta, preview.delta);
            assert_eq!(connlist(baseline.engine()), before);
        }
        assert!(
            moved >= 2,
            "seed {seed}: only {moved} change(s) moved a connection"
        );
    }
}

#[test]
fn preview_errors_change_nothing() {
    let files = files(4);
    let baseline = Baseline::new(loader(&files)).expect("baseline");
    let missing: ObjectKey = "NetworkPolicy/ns-0000/no-such".parse().expect("key");
    let error = baseline
        .preview(changes(""), &[missing])
        .expect_err("a missing object");
    assert!(error.to_string().contains("no such object"), "{error}");
    let error = baseline
        .preview(changes("kind: [unclosed\n"), &[])
        .expect_err("bad YAML");
    assert!(error.to_string().contains("change.yaml"), "{error}");
    let fresh = Baseline::new(loader(&files)).expect("fresh");
    assert_eq!(connlist(baseline.engine()), connlist(fresh.engine()));
}
