//! Loading the documents of one large input on several cores.
//!
//! The documents of a multi-document YAML file are independent: each is parsed, checked and
//! decoded on its own, and loading one only appends to the loader's lists. So a file is cut
//! into runs of consecutive documents of about equal size, each run is loaded into a loader
//! of its own on its own thread, and the loaders are appended to this one in input order.
//! Errors, warnings, skipped counts and origins come out exactly as one thread makes them.
//!
//! Cutting at document markers is safe: YAML 1.2.2 §9.1.2 ("Document Markers") and the
//! production `c-forbidden` (§9.1.4) say that a line starting with `---` or `...` followed by
//! white space or the end of the line cannot appear inside any node, scalars included.
//! [`super::split_yaml_documents`] cuts there already; here only its output is shared out.

use super::*;

/// Below this many bytes a YAML input is loaded on one thread: starting threads would cost
/// more than it saves.
pub(super) const MIN_BYTES: usize = 256 * 1024;

/// Below this many items a JSON list is loaded on one thread.
pub(super) const MIN_ITEMS: usize = 256;

/// Runs of documents per loading thread (see [`Loader::load_in_parallel`]).
const RUNS_PER_THREAD: usize = 8;

impl Loader {
    /// Load on at most `threads` threads (0: as many as the machine has cores). One thread is
    /// the sequential path; the result is the same for any number.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads;
    }

    /// Read plain YAML documents with the fast path (the default), or every document with
    /// libyaml (`false`); the result is the same. For benchmarks and comparisons.
    pub fn set_fast_yaml(&mut self, fast: bool) {
        self.libyaml_only = !fast;
    }

    /// How many threads to load an input on: one unless it is `large`.
    pub(super) fn threads_for(&self, large: bool) -> usize {
        if !large {
            return 1;
        }
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            n => n,
        }
    }

    /// An empty loader with this one's settings, to load part of an input into.
    fn part(&self) -> Loader {
        Loader {
            default_namespace: self.default_namespace.clone(),
            lenient: self.lenient,
            threads: 1,
            libyaml_only: self.libyaml_only,
            ..Loader::default()
        }
    }

    /// Load `items` on `threads` threads: the items are cut into [`RUNS_PER_THREAD`] runs per
    /// thread of consecutive items (of about equal `weight`), each thread (this one too) takes
    /// the next run not taken and loads it into a loader of its own with `load(loader, index,
    /// item)`, and the runs are appended to this loader in order. Taking small runs as they
    /// come, rather than one half each, keeps both cores busy to the end when one thread is
    /// slowed down (by a document heavier than its size says, or by another process).
    pub(super) fn load_in_parallel<T: Sync>(
        &mut self,
        items: &[T],
        threads: usize,
        weight: impl Fn(&T) -> usize,
        load: impl Fn(&mut Loader, usize, &T) + Sync,
    ) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let threads = threads.max(1);
        let runs = runs_of_equal_weight(items, threads * RUNS_PER_THREAD, weight);
        let next = AtomicUsize::new(0);
        let template = self.part();
        let work = || {
            let mut done: Vec<(usize, Loader)> = Vec::new();
            loop {
                let taken = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(first, run)) = runs.get(taken) else {
                    return done;
                };
                let mut part = template.part();
                for (offset, item) in run.iter().enumerate() {
                    load(&mut part, first + offset, item);
                }
                done.push((taken, part));
            }
        };
        let mut parts: Vec<(usize, Loader)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (1..threads.min(runs.len()))
                .map(|_| scope.spawn(work))
                .collect();
            let mut parts = work();
            for handle in handles {
                parts.extend(
                    handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                );
            }
            parts
        });
        parts.sort_unstable_by_key(|(taken, _)| *taken);
        // One allocation for the large lists instead of regrowing them part by part.
        self.pods
            .reserve(parts.iter().map(|(_, p)| p.pods.len()).sum());
        self.workloads
            .reserve(parts.iter().map(|(_, p)| p.workloads.len()).sum());
        self.policies
            .reserve(parts.iter().map(|(_, p)| p.policies.len()).sum());
        for (_, part) in parts {
            self.append(part);
        }
    }

    /// A large JSON object with a list of `items` (`kubectl get -o json`), each item parsed
    /// and loaded on the thread that parses it: no item's value outlives its loading (the
    /// whole list as values took 1.6 GB at 100k pods, and a second pass). Loads what parsing
    /// the whole text and [`Loader::load_object`] load. `false`, with nothing loaded, when the
    /// text is not such a list or an item does not parse: then the caller parses the whole
    /// text, which reports the error.
    pub(super) fn load_json_list_streamed(
        &mut self,
        text: &str,
        origin: &Origin,
        threads: usize,
    ) -> bool {
        let Some((outer, items)) = parse::json_list_parts(text) else {
            return false;
        };
        let Some(Value::String(kind)) = outer.get("kind") else {
            return false;
        };
        let api_version = match outer.get("apiVersion") {
            Some(Value::String(version)) => version.as_str(),
            None => "",
            Some(_) => return false,
        };
        // Anything but a list of items takes the general path (`load_value_in`).
        if !kind.ends_with("List") || !matches!(outer.get("items"), Some(Value::Array(_))) {
            return false;
        }
        let item_kind = kind.strip_suffix("List").unwrap_or_default();
        let defaults = (!item_kind.is_empty()).then_some((item_kind, api_version));
        let failed = std::sync::atomic::AtomicBool::new(false);
        let mut list = self.part();
        list.load_in_parallel(
            &items,
            threads,
            |item| item.len(),
            |loader, i, item| {
                if failed.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                match parse::json_item(item) {
                    Some(value) => {
                        let origin = Origin {
                            item: Some(i),
                            ..origin.clone()
                        };
                        loader.load_value_in(&value, origin, defaults);
                    }
                    None => failed.store(true, std::sync::atomic::Ordering::Relaxed),
                }
            },
        );
        if failed.into_inner() {
            return false;
        }
        // The list is one document, as `load_object` counts it.
        self.documents_read += 1;
        self.append(list);
        true
    }

    /// Append what `part` loaded after what this loader holds, as if this loader had loaded
    /// it. Every field is named, so that a new one cannot be forgotten here.
    fn append(&mut self, part: Loader) {
        let Loader {
            namespaces,
            pods,
            workloads,
            service_accounts,
            services,
            ingresses,
            peer_authentications,
            istio_mesh_configs,
            vpc_cni,
            cert_issuers,
            certificates,
            rbac_roles,
            rbac_bindings,
            security_group_policies,
            nodes,
            policies,
            calico_policies,
            admin_policies,
            cilium_policies,
            network_sets,
            tiers,
            warnings,
            skipped,
            errors,
            inputs_given,
            documents_read,
            default_namespace: _,
            lenient: _,
            cni: _,
            threads: _,
            libyaml_only: _,
            workloads_by_namespace: _,
            pods_by_name: _,
        } = part;
        append_vec(&mut self.namespaces, namespaces);
        append_vec(&mut self.pods, pods);
        self.pods_changed();
        append_vec(&mut self.workloads, workloads);
        self.workloads_by_namespace = Default::default();
        append_vec(&mut self.service_accounts, service_accounts);
        append_vec(&mut self.services, services);
        append_vec(&mut self.ingresses, ingresses);
        append_vec(&mut self.peer_authentications, peer_authentications);
        append_vec(&mut self.istio_mesh_configs, istio_mesh_configs);
        // The last one loaded wins, as when loading on one thread.
        if vpc_cni.is_some() {
            self.vpc_cni = vpc_cni;
        }
        append_vec(&mut self.cert_issuers, cert_issuers);
        append_vec(&mut self.certificates, certificates);
        append_vec(&mut self.rbac_roles, rbac_roles);
        append_vec(&mut self.rbac_bindings, rbac_bindings);
        append_vec(&mut self.security_group_policies, security_group_policies);
        append_vec(&mut self.nodes, nodes);
        append_vec(&mut self.policies, policies);
        append_vec(&mut self.calico_policies, calico_policies);
        append_vec(&mut self.admin_policies, admin_policies);
        append_vec(&mut self.cilium_policies, cilium_policies);
        append_vec(&mut self.network_sets, network_sets);
        append_vec(&mut self.tiers, tiers);
        append_vec(&mut self.warnings, warnings);
        for (kind, count) in skipped {
            *self.skipped.entry(kind).or_default() += count;
        }
        append_vec(&mut self.errors, errors);
        append_vec(&mut self.inputs_given, inputs_given);
        self.documents_read += documents_read;
    }
}

/// `into` followed by `more`: `more` itself when `into` is empty and has no room reserved
/// for it (at 100k pods, copying the first part's objects into a growing list cost a tenth
/// of a second).
fn append_vec<T>(into: &mut Vec<T>, mut more: Vec<T>) {
    if into.is_empty() && into.capacity() < more.len() {
        *into = more;
    } else {
        into.append(&mut more);
    }
}

/// Cut `items` into at most `runs` runs of consecutive items of about the same total
/// weight; each run comes with the 0-based index of its first item.
fn runs_of_equal_weight<T>(
    items: &[T],
    runs: usize,
    weight: impl Fn(&T) -> usize,
) -> Vec<(usize, &[T])> {
    let total: usize = items.iter().map(&weight).sum();
    let per_run = total.div_ceil(runs.max(1)).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    let mut sum = 0;
    for (index, item) in items.iter().enumerate() {
        sum += weight(item);
        if sum >= per_run && out.len() + 1 < runs {
            out.push((start, &items[start..=index]));
            start = index + 1;
            sum = 0;
        }
    }
    if start < items.len() {
        out.push((start, &items[start..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_every_document_once_in_order() {
        let items: Vec<(usize, usize)> = (0..37).map(|i| (i, 1 + i * 7 % 13)).collect();
        for runs in 1..6 {
            let cut = runs_of_equal_weight(&items, runs, |item| item.1);
            assert!(cut.len() <= runs && !cut.is_empty());
            let mut next = 0;
            for (first, run) in &cut {
                assert_eq!(*first, next);
                assert!(!run.is_empty());
                assert_eq!(run[0].0, *first);
                next += run.len();
            }
            assert_eq!(next, items.len());
        }
        // Two runs of a skewed input still split it.
        assert_eq!(runs_of_equal_weight(&items, 2, |item| item.1).len(), 2);
        assert!(runs_of_equal_weight(&[] as &[(usize, usize)], 2, |item| item.1).is_empty());
    }

    /// A generated cluster with bad documents, unknown kinds, duplicates and warnings spread
    /// through it, as YAML and as a JSON `List`.
    fn mixed_inputs() -> Vec<(String, String)> {
        let files = netfence_gen::generate(&netfence_gen::GenOptions {
            pods: 1_000,
            namespaces: 10,
            policies: 200,
            calico: 20,
            admin: 0,
            seed: 7,
        })
        .unwrap();
        let bad = [
            "apiVersion: v1\nkind: Pod\nmetadata: {name: dup, namespace: ns-0000}\nspec: {containers: []}\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: dup, namespace: ns-0000}\nspec: {containers: []}\n",
            "a: [unclosed\n",
            "a: 1\na: 2\n",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: typo, namespace: x}\nspec: {podSelector: {matchLabel: {}}}\n",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: bad-ip, namespace: x}\nspec: {containers: []}\nstatus: {podIP: nope}\n",
            "just a string\n",
        ];
        let mut out = Vec::new();
        for (name, text) in files {
            let documents: Vec<&str> = text.split("\n---\n").collect();
            let mut mixed = String::new();
            for (i, document) in documents.iter().enumerate() {
                mixed.push_str(document);
                mixed.push_str("\n---\n");
                if i % 97 == 5 {
                    mixed.push_str(bad[i / 97 % bad.len()]);
                    mixed.push_str("---\n");
                }
            }
            let items: Vec<Value> = split_yaml_documents(&mixed)
                .iter()
                .filter_map(|(_, document)| parse::yaml_document(document).ok())
                .collect();
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
            out.push((format!("{name}.json"), list.to_string()));
            out.push((name, mixed));
        }
        out
    }

    fn load_with(threads: usize, lenient: bool, inputs: &[(String, String)]) -> String {
        let mut loader = Loader::new();
        loader.set_threads(threads);
        // The baseline: one thread, libyaml for every document.
        loader.set_fast_yaml(threads != 1);
        loader.set_lenient(lenient);
        for (name, text) in inputs {
            loader.load_str(name, text);
        }
        format!("{:?}", loader.finish())
    }

    #[test]
    fn a_json_list_with_a_broken_item_reports_what_one_thread_reports() {
        let (name, text) = mixed_inputs()
            .into_iter()
            .find(|(name, text)| name.ends_with(".json") && text.len() >= MIN_BYTES)
            .expect("a large JSON list");
        // Cut a closing brace out of an item in the middle.
        let at = text[text.len() / 2..].find('}').map(|i| text.len() / 2 + i);
        let Some(at) = at else {
            panic!("no brace in {name}")
        };
        let broken = vec![(name, format!("{}{}", &text[..at], &text[at + 1..]))];
        let one = load_with(1, false, &broken);
        assert!(one.contains("malformed JSON"), "{one:.500}");
        assert_eq!(one, load_with(2, false, &broken));
    }

    /// A directory is read ahead a file at a time when loading on several threads: the same
    /// result as one thread reading each file when it comes to it, byte order marks, JSON,
    /// unreadable files and errors in every file included.
    #[test]
    fn a_directory_read_ahead_loads_what_one_thread_loads() {
        let dir = std::env::temp_dir().join(format!("netfence-read-ahead-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in mixed_inputs() {
            std::fs::write(dir.join(name), text).unwrap();
        }
        std::fs::write(
            dir.join("05-bom.yaml"),
            "\u{feff}apiVersion: v1\nkind: Namespace\nmetadata: {name: with-bom}\n---\nnot: [closed\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("06-latin1.yaml"),
            b"kind: Namespace\nname: caf\xe9\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("07-list.json"),
            r#"[{"kind": "Namespace"}, "a string"]"#,
        )
        .unwrap();
        let load = |threads: usize| {
            let mut loader = Loader::new();
            loader.set_threads(threads);
            loader.load_path(&dir);
            format!("{:?}", loader.finish())
        };
        let one = load(1);
        // The byte order mark is dropped and the file cut in two documents (the second one
        // broken); the JSON list's second item is refused; the Latin-1 file is unreadable.
        assert!(one.contains("05-bom.yaml\", document: 2"), "{one:.2000}");
        assert!(one.contains("07-list.json\", document: 1, line: 1, item: Some(1)"));
        assert!(one.contains("06-latin1.yaml\", document: 0"));
        assert!(one.contains("not valid UTF-8") && one.contains("malformed YAML"));
        for threads in [2, 3] {
            assert!(one == load(threads), "{threads} threads");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn any_number_of_threads_and_the_fast_path_load_what_the_baseline_loads() {
        let inputs = mixed_inputs();
        assert!(inputs.iter().any(|(_, text)| text.len() >= MIN_BYTES));
        for lenient in [false, true] {
            let one = load_with(1, lenient, &inputs);
            assert!(one.contains("duplicate Pod ns-0000/dup"), "{one:.2000}");
            assert!(one.contains("malformed YAML"));
            assert!(one.contains("matchLabel"));
            for threads in [2, 3, 8] {
                assert!(
                    one == load_with(threads, lenient, &inputs),
                    "{threads} threads"
                );
            }
        }
    }
}
