//! Interned selectors and their resolution.
//!
//! Every distinct rule peer (Kubernetes, Calico, admin or Cilium; the `local` condition of a
//! Calico rule too) and every distinct policy subject is interned once in a [`Table`] of the
//! [`Interner`], keyed by its compiled value (the canonical form: label selectors keep their
//! requirements sorted, Calico selectors are parsed trees). Rules hold their peers as
//! [`RulePeer`]s and policies their subject as a [`PolicySubject`]: the one shared value and
//! its typed id ([`PeerId`], [`SubjectId`]). An engine resolves each at most once, on first
//! use, into a slot indexed by that id: the pods a subject selects (from which the per-pod
//! selection lists are built), the pods a pod peer selects, and the addresses any peer
//! matches. Consumers that need whole peer sets (the class matrix, the dataplane renderer)
//! read those instead of matching every pod against every rule; single verdicts still match
//! one endpoint directly.
//!
//! The interner is shared by the engines built from one another ([`Engine::rebuilt`],
//! [`Engine::without_policy`]): kept compiled policies are shared between them, so an id in
//! their rules means the same value in every one. Its tables only grow (ids are never
//! reused, so a slot can never be read for another value); a full compile starts a new
//! interner. A rebuilt engine shares its predecessor's slots (one `Arc`, no copy) when no
//! endpoint changed (`Resolved::carried`): every value resolves alike in both, and what
//! either resolves serves both.

use crate::eval::{admitted_pods, subject_candidates, subject_selects_admitted, Engine};
use crate::ir::{NamespaceMatch, Peer, Subject};
use netfence_model::net::FastMap;
use netfence_model::{AddressRanges, Inventory, PodId};
use netfence_selector::LabelSelector;
use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// The id of an interned value of type `T`: its place in its [`Table`].
pub struct Id<T> {
    index: u32,
    of: PhantomData<fn() -> T>,
}

/// A distinct rule peer's id.
pub type PeerId = Id<Peer>;
/// A distinct policy subject's id.
pub type SubjectId = Id<Subject>;

impl<T> Id<T> {
    fn new(index: usize) -> Self {
        Id {
            index: u32::try_from(index).expect("fewer than 2^32 distinct values"),
            of: PhantomData,
        }
    }

    /// The id as an index (into per-value vectors).
    pub fn index(self) -> usize {
        self.index as usize
    }
}

impl<T> Clone for Id<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Id<T> {}
impl<T> PartialEq for Id<T> {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index
    }
}
impl<T> Eq for Id<T> {}
impl<T> Hash for Id<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.index.hash(state);
    }
}
impl<T> PartialOrd for Id<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Id<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.index.cmp(&other.index)
    }
}
impl<T> std::fmt::Debug for Id<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.index)
    }
}

/// An interned value: the one value shared by every holder of an equal one, and its id. It
/// reads (and prints with `{:?}`) as the value it holds: the id depends on the order values
/// were interned in, not on the policy.
pub struct Interned<T> {
    id: Id<T>,
    value: Arc<T>,
}

/// A rule's peer, interned.
pub type RulePeer = Interned<Peer>;
/// A policy's subject, interned.
pub type PolicySubject = Interned<Subject>;

impl<T> Interned<T> {
    /// The id in the engine's [`Interner`].
    pub fn id(&self) -> Id<T> {
        self.id
    }

    /// Whether `self` and `other` are the one shared value.
    pub fn is(&self, other: &Interned<T>) -> bool {
        Arc::ptr_eq(&self.value, &other.value)
    }
}

impl Interned<Peer> {
    /// The peer.
    pub fn peer(&self) -> &Peer {
        &self.value
    }
}

impl Interned<Subject> {
    /// The subject.
    pub fn subject(&self) -> &Subject {
        &self.value
    }
}

impl<T> Clone for Interned<T> {
    fn clone(&self) -> Self {
        Interned {
            id: self.id,
            value: Arc::clone(&self.value),
        }
    }
}

/// Equal as values, whatever the interner (the same shared value is equal without a look).
impl<T: PartialEq> PartialEq for Interned<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.value, &other.value) || self.value == other.value
    }
}
impl<T: Eq> Eq for Interned<T> {}

impl<T: std::fmt::Debug> std::fmt::Debug for Interned<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl<T> std::ops::Deref for Interned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Every distinct value of one kind, each with its id.
pub struct Table<T> {
    inner: Mutex<TableInner<T>>,
}

struct TableInner<T> {
    ids: FastMap<Arc<T>, Id<T>>,
    values: Vec<Arc<T>>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            inner: Mutex::new(TableInner {
                ids: FastMap::default(),
                values: Vec::new(),
            }),
        }
    }
}

impl<T: Eq + Hash> Table<T> {
    /// The interned `value`: the one already in the table when an equal one is, else `value`
    /// under a new id.
    pub fn intern(&self, value: T) -> Interned<T> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((shared, &id)) = inner.ids.get_key_value(&value) {
            return Interned {
                id,
                value: Arc::clone(shared),
            };
        }
        let id = Id::new(inner.values.len());
        let value = Arc::new(value);
        inner.values.push(Arc::clone(&value));
        inner.ids.insert(Arc::clone(&value), id);
        Interned { id, value }
    }

    /// Every value interned, in a [`Vec`].
    pub fn interned(&self, values: impl IntoIterator<Item = T>) -> Vec<Interned<T>> {
        values.into_iter().map(|value| self.intern(value)).collect()
    }
}

impl<T> Table<T> {
    /// How many distinct values the table holds (ids are `0..len`).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values
            .len()
    }

    /// Whether the table holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value with id `id`.
    pub fn get(&self, id: Id<T>) -> Option<Arc<T>> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.values.get(id.index()).cloned()
    }
}

/// The tables of the engines built from one another: rule peers and policy subjects.
#[derive(Default)]
pub struct Interner {
    /// Every distinct rule peer.
    pub peers: Table<Peer>,
    /// Every distinct policy subject.
    pub subjects: Table<Subject>,
}

/// One engine's resolved peers and subjects, filled on first use; shared (one `Arc`) by the
/// engines that take it over, whose endpoints are equal, so that each value resolves alike in
/// all of them.
pub(crate) struct Resolved {
    store: Arc<Store>,
}

struct Store {
    /// The pods each pod peer selects.
    peer_pods: Slots<Box<[PodId]>>,
    /// The addresses each peer matches.
    peer_addresses: Slots<Arc<AddressRanges>>,
    /// The pods each subject selects.
    subjects: Slots<Box<[PodId]>>,
    /// The namespaces each namespace selector matches.
    namespaces: Mutex<HashMap<LabelSelector, Arc<[String]>>>,
}

/// log2 of the first segment's length in [`Slots`].
const FIRST_SEGMENT: u32 = 5;
/// Segments of [`Slots`]: enough for every `u32` id.
const SEGMENTS: usize = 28;

/// Slots by id that never move, in segments of doubling length (32, 64, 128, … slots),
/// each allocated when an id in it is first asked for: as an interner's ids grow, an engine
/// that shares these slots finds room for the new ones without copying (or locking) the rest.
struct Slots<T> {
    segments: [OnceLock<Box<[OnceLock<T>]>>; SEGMENTS],
}

impl<T> Slots<T> {
    fn new() -> Self {
        Slots {
            segments: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The segment and the place in it of slot `index`.
    fn place(index: usize) -> (usize, usize) {
        let at = index as u64 + (1 << FIRST_SEGMENT);
        let segment = 63 - at.leading_zeros() - FIRST_SEGMENT;
        let start = 1u64 << (segment + FIRST_SEGMENT);
        (segment as usize, (at - start) as usize)
    }

    /// Slot `index` (its segment allocated when it is not yet).
    fn slot(&self, index: usize) -> &OnceLock<T> {
        let (segment, offset) = Self::place(index);
        let slots = self.segments[segment].get_or_init(|| {
            let len = 1usize << (segment as u32 + FIRST_SEGMENT);
            (0..len).map(|_| OnceLock::new()).collect()
        });
        &slots[offset]
    }

    /// What slot `index` holds, if it was filled.
    fn filled(&self, index: usize) -> Option<&T> {
        let (segment, offset) = Self::place(index);
        self.segments[segment].get()?[offset].get()
    }
}

impl Resolved {
    /// Nothing resolved yet.
    pub(crate) fn new() -> Resolved {
        Resolved {
            store: Arc::new(Store {
                peer_pods: Slots::new(),
                peer_addresses: Slots::new(),
                subjects: Slots::new(),
                namespaces: Mutex::default(),
            }),
        }
    }

    /// For an engine of the same interner whose endpoints (pods, namespaces, service
    /// accounts, Services, nodes, network sets, CNI) are those of this one's: the same slots,
    /// with what this one resolved and what either resolves later.
    pub(crate) fn carried(&self) -> Resolved {
        Resolved {
            store: Arc::clone(&self.store),
        }
    }

    /// The pods (sorted) `subject` selects in `inventory` (the engine's), host-network pods
    /// left out (they are not policy endpoints), resolved once.
    pub(crate) fn subject_pods(&self, subject: &PolicySubject, inventory: &Inventory) -> &[PodId] {
        (self.store.subjects.slot(subject.id.index()))
            .get_or_init(|| selected_pods(subject, inventory))
    }
}

/// The pods `subject` selects, matched now.
fn selected_pods(subject: &Subject, inventory: &Inventory) -> Box<[PodId]> {
    let candidates = subject_candidates(subject, inventory);
    admitted_pods(subject, inventory, candidates)
        .filter(|&id| {
            let pod = &*inventory.pods()[id];
            !pod.host_network && subject_selects_admitted(subject, inventory, pod)
        })
        .collect()
}

impl Engine {
    /// The interned peers and subjects of this engine's policies.
    pub fn interner(&self) -> &Interner {
        &self.interner
    }

    /// The pods (sorted) that a policy's subject selects, host-network pods left out,
    /// resolved once per engine.
    pub fn subject_pods(&self, subject: &PolicySubject) -> &[PodId] {
        self.cache.subject_pods(subject, self.inventory())
    }

    /// The namespaces (by name, sorted) whose labels `selector` matches, resolved once.
    pub fn selected_namespaces(&self, selector: &LabelSelector) -> Arc<[String]> {
        let cache = &self.cache.store.namespaces;
        if let Some(found) = cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(selector)
        {
            return Arc::clone(found);
        }
        let inventory = self.inventory();
        let resolved: Arc<[String]> = inventory
            .namespaces()
            .iter()
            .filter(|(_, ns)| selector.matches(&ns.labels))
            .map(|(name, _)| name.clone())
            .collect();
        cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(selector.clone(), Arc::clone(&resolved));
        resolved
    }

    /// The pods (ids, sorted) that a pod peer matches, resolved once per engine: in the
    /// namespaces it names or selects, labels matching its pod selector, not host-network (a
    /// host-network pod speaks with its node's address: network-policy-api, "host-networked
    /// pods are not included in this type of peer"). The same answer as
    /// [`Engine::peer_matches`] pod by pod. `None` for a peer of another kind.
    pub fn peer_pods(&self, peer: &RulePeer) -> Option<&[PodId]> {
        let Peer::Pods { namespaces, pods } = peer.peer() else {
            return None;
        };
        self.debug_assert_own(peer);
        let slot = self.cache.store.peer_pods.slot(peer.id.index());
        Some(slot.get_or_init(|| self.resolve_pod_peer(namespaces, pods)))
    }

    /// Every address `peer` matches ([`Engine::addresses_of_peer`]), resolved once per engine;
    /// a pod peer's from its resolved pods ([`Engine::peer_pods`], matched once for both).
    pub fn peer_addresses(&self, peer: &RulePeer) -> Arc<AddressRanges> {
        self.debug_assert_own(peer);
        let slot = self.cache.store.peer_addresses.slot(peer.id.index());
        Arc::clone(slot.get_or_init(|| {
            Arc::new(match self.peer_pods(peer) {
                Some(pods) => self.addresses_of_pods(pods),
                None => self.addresses_of_peer(peer),
            })
        }))
    }

    /// (Debug builds) `peer` is the value its id names in this engine's interner: a peer of
    /// another engine's policies would read another peer's slot.
    fn debug_assert_own(&self, peer: &RulePeer) {
        if cfg!(debug_assertions) {
            let own = self.interner.peers.get(peer.id);
            assert!(
                own.is_some_and(|own| Arc::ptr_eq(&own, &peer.value)),
                "{peer:?} is not a peer of this engine"
            );
        }
    }

    /// The pods of a pod peer, matched now.
    pub(crate) fn resolve_pod_peer(
        &self,
        namespaces: &NamespaceMatch,
        pods: &LabelSelector,
    ) -> Box<[PodId]> {
        let inventory = self.inventory();
        let in_namespace = |ns: &str| {
            (inventory.pods_in(ns).into_iter()).filter(|&id| {
                let pod = &*inventory.pods()[id];
                !pod.host_network && pods.matches(&pod.labels)
            })
        };
        match namespaces {
            NamespaceMatch::Named(ns) => in_namespace(ns).collect(),
            // Namespaces are sorted by name and pods by namespace: the ids come out sorted.
            NamespaceMatch::Selector(selector) => self
                .selected_namespaces(selector)
                .iter()
                .flat_map(|ns| in_namespace(ns).collect::<Vec<_>>())
                .collect(),
        }
    }

    /// Check (debug builds) that what a rebuilt engine took over is what it would resolve.
    pub(crate) fn check_carried(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let (interner, store) = (&self.interner, &self.cache.store);
        for index in 0..interner.subjects.len() {
            let (Some(pods), Some(subject)) = (
                store.subjects.filled(index),
                interner.subjects.get(Id::new(index)),
            ) else {
                continue;
            };
            assert_eq!(
                *pods,
                selected_pods(&subject, self.inventory()),
                "{subject:?}"
            );
        }
        for index in 0..interner.peers.len() {
            let Some(peer) = interner.peers.get(Id::new(index)) else {
                continue;
            };
            if let (
                Some(pods),
                Peer::Pods {
                    namespaces,
                    pods: selector,
                },
            ) = (store.peer_pods.filled(index), &*peer)
            {
                assert_eq!(
                    *pods,
                    self.resolve_pod_peer(namespaces, selector),
                    "{peer:?}"
                );
            }
            if let Some(addresses) = store.peer_addresses.filled(index) {
                assert_eq!(**addresses, self.addresses_of_peer(&peer), "{peer:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netfence_model::Loader;

    fn pod(name: &str, app: &str, ip: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: a, labels: {{app: {app}}}}}\nspec: {{containers: [{{name: c}}]}}\nstatus: {{podIP: {ip}}}\n"
        )
    }

    /// A NetworkPolicy on `app: db` admitting the pods that `from` selects.
    fn admits(name: &str, from: &str) -> String {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: a}}\nspec: {{podSelector: {{matchLabels: {{app: db}}}}, ingress: [{{from: [{{podSelector: {from}}}]}}]}}\n"
        )
    }

    fn inventory(docs: &[String]) -> netfence_model::Inventory {
        let mut loader = Loader::new();
        loader.load_str(
            "ns.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
        );
        for (i, doc) in docs.iter().enumerate() {
            loader.load_str(&format!("{i}.yaml"), doc);
        }
        loader.finish().expect("the test cluster loads")
    }

    fn engine(docs: &[String]) -> Engine {
        Engine::new(inventory(docs))
    }

    /// The peers of every rule, by policy name.
    fn peers(engine: &Engine) -> Vec<(String, RulePeer)> {
        let mut out = Vec::new();
        for policy in engine.tiers().iter().flat_map(|t| &t.policies) {
            for rule in [&policy.ingress, &policy.egress]
                .into_iter()
                .flatten()
                .flatten()
            {
                for peer in rule.peers.iter().chain(&rule.local) {
                    out.push((policy.name.clone(), peer.clone()));
                }
            }
        }
        out
    }

    fn id_of(engine: &Engine, policy: &str) -> PeerId {
        let found = peers(engine).into_iter().find(|(name, _)| name == policy);
        found.expect("the policy has a peer").1.id()
    }

    #[test]
    fn equal_peers_and_subjects_are_one_interned_value() {
        let engine = engine(&[
            pod("web", "web", "10.0.0.1"),
            pod("db", "db", "10.0.0.2"),
            admits("labels", "{matchLabels: {app: web}}"),
            // The same selector spelled as an expression: one canonical form.
            admits(
                "expression",
                "{matchExpressions: [{key: app, operator: In, values: [web]}]}",
            ),
            admits("other", "{matchLabels: {app: db}}"),
            "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: g}\nspec: {selector: app == 'db', ingress: [{action: Allow, source: {selector: app == 'web'}}, {action: Allow, source: {selector: \"app == \\\"web\\\"\"}}]}\n".to_string(),
        ]);
        let all = peers(&engine);
        assert_eq!(all.len(), 5);
        let (labels, expression) = (id_of(&engine, "a/labels"), id_of(&engine, "a/expression"));
        assert_eq!(labels, expression);
        assert_ne!(labels, id_of(&engine, "a/other"));
        let calico: Vec<&RulePeer> = (all.iter())
            .filter(|(name, _)| name == "g")
            .map(|(_, p)| p)
            .collect();
        assert_eq!(calico.len(), 2);
        assert_eq!(calico[0].id(), calico[1].id());
        assert!(calico[0].is(calico[1]));
        assert_eq!(engine.interner().peers.len(), 3);
        // The three NetworkPolicies select `app: db` in namespace a: one subject.
        let policies: Vec<&crate::ir::Policy> = engine
            .tiers()
            .iter()
            .flat_map(|t| &t.policies)
            .map(|p| &**p)
            .collect();
        let subject_of = |name: &str| {
            let found = policies.iter().find(|p| p.name == name);
            &found.expect("the policy is compiled").subject
        };
        assert!(subject_of("a/labels").is(subject_of("a/other")));
        assert!(subject_of("a/expression").is(subject_of("a/other")));
        assert!(!subject_of("g").is(subject_of("a/other")));
        assert_eq!(engine.interner().subjects.len(), 2);
        let db = engine.inventory().pod_by_key("a", "db").expect("db");
        assert_eq!(engine.subject_pods(subject_of("a/labels")), &[db]);
        assert_eq!(engine.subject_pods(subject_of("g")), &[db]);
        let web = engine.inventory().pod_by_key("a", "web").expect("web");
        let (_, first) = &all[0];
        let found = all.iter().find(|(name, _)| name == "a/labels");
        let labels_peer = &found.expect("a/labels has a peer").1;
        assert_eq!(engine.peer_pods(labels_peer), Some(&[web][..]));
        assert_eq!(engine.peer_pods(&calico[0].clone()), None);
        assert_eq!(
            engine.interner().peers.get(first.id()).as_deref(),
            Some(first.peer())
        );
        // Interned values compare as values, across interners too.
        let alone = Engine::new(inventory(&[admits("alone", "{matchLabels: {app: db}}")]));
        let (_, db_peer) = peers(&alone).remove(0);
        let (_, other) = (all.iter())
            .find(|(name, _)| name == "a/other")
            .expect("a/other");
        assert_eq!(&db_peer, other);
        assert!(!db_peer.is(other));
        assert_ne!(&db_peer, labels_peer);
    }

    #[test]
    fn slots_are_placed_in_doubling_segments_up_to_every_u32_id() {
        let place = Slots::<u8>::place;
        assert_eq!(place(0), (0, 0));
        assert_eq!(place(31), (0, 31));
        assert_eq!(place(32), (1, 0));
        assert_eq!(place(95), (1, 63));
        assert_eq!(place(96), (2, 0));
        let (segment, offset) = place(u32::MAX as usize);
        assert!(segment < SEGMENTS);
        assert!(offset < 1 << (segment as u32 + FIRST_SEGMENT));
        let slots = Slots::<usize>::new();
        for index in [0, 31, 32, 1000, 70_000] {
            assert!(slots.filled(index).is_none());
            assert_eq!(*slots.slot(index).get_or_init(|| index), index);
            assert_eq!(slots.filled(index), Some(&index));
        }
        assert!(slots.filled(33).is_none());
    }

    #[test]
    fn rebuilt_engines_keep_ids_and_take_over_what_is_still_resolved() {
        let mut docs = vec![
            pod("web", "web", "10.0.0.1"),
            pod("db", "db", "10.0.0.2"),
            admits("first", "{matchLabels: {app: web}}"),
        ];
        let before = engine(&docs);
        let first = peers(&before).remove(0).1;
        let web = before.inventory().pod_by_key("a", "web").expect("web");
        assert_eq!(before.peer_pods(&first), Some(&[web][..]));
        assert_eq!(
            before.peer_addresses(&first).v4,
            vec![(0x0a00_0001, 0x0a00_0001)]
        );

        // A policy added: the kept policy's peer keeps its id, the new policy naming an equal
        // peer gets it too, and what was resolved is taken over (no endpoint changed).
        docs.push(admits("second", "{matchLabels: {app: web}}"));
        docs.push(admits("third", "{matchLabels: {app: client}}"));
        let (after, _, stats) = before.rebuilt(inventory(&docs));
        assert!(!stats.compiled_all);
        assert_eq!(id_of(&after, "a/first"), first.id());
        assert_eq!(id_of(&after, "a/second"), first.id());
        let third = id_of(&after, "a/third");
        assert_ne!(third, first.id());
        assert!(Arc::ptr_eq(&before.interner, &after.interner));
        let store = &after.cache.store;
        assert!(Arc::ptr_eq(store, &before.cache.store));
        let index = first.id().index();
        assert!(store.peer_pods.filled(index).is_some());
        assert!(store.peer_addresses.filled(index).is_some());
        assert!(store.peer_pods.filled(third.index()).is_none());
        // The new policies select `app: db` as the first does: their subject was resolved
        // (to build the selections) before the change, and is taken over.
        let subjects: Vec<SubjectId> = (after.tiers().iter())
            .flat_map(|t| &t.policies)
            .map(|p| p.subject.id())
            .collect();
        assert_eq!(subjects.len(), 3);
        assert!(subjects.iter().all(|&id| id == subjects[0]));
        assert!(store.subjects.filled(subjects[0].index()).is_some());

        // A new client pod: nothing is taken over, and the peers resolve anew.
        docs.push(pod("client", "client", "10.0.0.3"));
        let (grown, _, _) = after.rebuilt(inventory(&docs));
        assert_eq!(id_of(&grown, "a/third"), third);
        assert!(!Arc::ptr_eq(&grown.cache.store, store));
        assert!(grown.cache.store.peer_pods.filled(index).is_none());
        let client = grown.inventory().pod_by_key("a", "client").expect("client");
        let third_peer = peers(&grown).into_iter().find(|(n, _)| n == "a/third");
        let third_peer = third_peer.expect("a/third has a peer").1;
        assert_eq!(grown.peer_pods(&third_peer), Some(&[client][..]));
        assert_eq!(after.peer_pods(&third_peer), Some(&[][..]));
    }
}
