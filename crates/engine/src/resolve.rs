//! Interned peers and their resolution.
//!
//! Every distinct rule peer (Kubernetes, Calico, admin or Cilium; the `local` condition of a
//! Calico rule too) is interned once in a [`PeerTable`], keyed by its compiled value (the
//! canonical form: label selectors keep their requirements sorted, Calico selectors are parsed
//! trees), and rules hold it as a [`RulePeer`]: the one shared value and its [`PeerId`]. An
//! engine resolves each of its peers at most once, on first use, into a slot indexed by that
//! id: the pods a pod peer selects, and the addresses any peer matches. Consumers that need
//! whole peer sets (the class matrix, the dataplane renderer) read those instead of matching
//! every pod against every rule; single verdicts still match one endpoint directly.
//!
//! The table is shared by the engines built from one another ([`Engine::rebuilt`],
//! [`Engine::without_policy`]): kept compiled policies are shared between them, so the ids in
//! their rules mean the same peer in every one. It only grows (ids are never reused, so a
//! slot can never be read for another peer); a full compile starts a new table. An engine's
//! slots cover the ids that existed when it was built, which include every peer of its rules.
//! A rebuilt engine takes over its predecessor's resolved slots when no endpoint changed
//! ([`ResolvedPeers::carried`]).

use crate::eval::Engine;
use crate::ir::{NamespaceMatch, Peer};
use netfence_model::{AddressRanges, PodId};
use netfence_selector::LabelSelector;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// A distinct peer's id in its [`PeerTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(u32);

impl PeerId {
    /// The id as an index (into per-peer vectors).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A rule's peer: the interned value, shared by every rule that names an equal peer, and its
/// id. It reads (and prints with `{:?}`) as the [`Peer`] it holds: the id depends on the order
/// peers were interned in, not on the policy.
#[derive(Clone)]
pub struct RulePeer {
    id: PeerId,
    peer: Arc<Peer>,
}

impl RulePeer {
    /// The peer's id in the engine's [`PeerTable`].
    pub fn id(&self) -> PeerId {
        self.id
    }

    /// The peer.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }
}

impl std::fmt::Debug for RulePeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.peer.fmt(f)
    }
}

impl std::ops::Deref for RulePeer {
    type Target = Peer;
    fn deref(&self) -> &Peer {
        &self.peer
    }
}

/// Every distinct peer of the compiled policies, each with its id.
#[derive(Default)]
pub struct PeerTable {
    inner: Mutex<TableInner>,
}

#[derive(Default)]
struct TableInner {
    ids: HashMap<Arc<Peer>, PeerId>,
    peers: Vec<Arc<Peer>>,
}

impl PeerTable {
    /// The interned `peer`: the value already in the table when an equal one is, else `peer`
    /// under a new id.
    pub fn intern(&self, peer: Peer) -> RulePeer {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((shared, &id)) = inner.ids.get_key_value(&peer) {
            return RulePeer {
                id,
                peer: Arc::clone(shared),
            };
        }
        let id = PeerId(u32::try_from(inner.peers.len()).expect("fewer than 2^32 distinct peers"));
        let peer = Arc::new(peer);
        inner.peers.push(Arc::clone(&peer));
        inner.ids.insert(Arc::clone(&peer), id);
        RulePeer { id, peer }
    }

    /// Every peer interned, in a [`Vec`].
    pub fn interned(&self, peers: impl IntoIterator<Item = Peer>) -> Vec<RulePeer> {
        peers.into_iter().map(|peer| self.intern(peer)).collect()
    }

    /// How many distinct peers the table holds (ids are `0..len`).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .peers
            .len()
    }

    /// Whether the table holds no peer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The peer with id `id`.
    pub fn get(&self, id: PeerId) -> Option<Arc<Peer>> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.peers.get(id.index()).cloned()
    }
}

/// One engine's resolved peers: a slot per id of its table, filled on first use.
pub(crate) struct ResolvedPeers {
    slots: Box<[Slot]>,
    namespaces: Mutex<HashMap<LabelSelector, Arc<[String]>>>,
}

/// What one peer resolves to in one engine.
#[derive(Clone, Default)]
struct Slot {
    /// A pod peer's pods.
    pods: OnceLock<Arc<[PodId]>>,
    /// Every address the peer matches.
    addresses: OnceLock<Arc<AddressRanges>>,
}

impl ResolvedPeers {
    /// Nothing resolved yet, for the peers of `table`.
    pub(crate) fn new(table: &PeerTable) -> ResolvedPeers {
        ResolvedPeers {
            slots: vec![Slot::default(); table.len()].into_boxed_slice(),
            namespaces: Mutex::default(),
        }
    }

    /// For an engine of the same table whose endpoints (pods, namespaces, service accounts,
    /// Services, nodes, network sets, CNI) are those of this one's: what this one resolved,
    /// and empty slots for the ids added since.
    pub(crate) fn carried(&self, table: &PeerTable) -> ResolvedPeers {
        let mut slots = self.slots.to_vec();
        slots.resize(table.len(), Slot::default());
        ResolvedPeers {
            slots: slots.into_boxed_slice(),
            namespaces: Mutex::new(
                self.namespaces
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
            ),
        }
    }

    /// The slot of `peer`; `None` for an id beyond this engine's (a peer of another engine).
    fn slot(&self, peer: &RulePeer) -> Option<&Slot> {
        self.slots.get(peer.id.index())
    }
}

impl Engine {
    /// The table of this engine's peers.
    pub fn peer_table(&self) -> &PeerTable {
        &self.peers
    }

    /// The namespaces (by name, sorted) whose labels `selector` matches, resolved once.
    pub fn selected_namespaces(&self, selector: &LabelSelector) -> Arc<[String]> {
        let cache = &self.cache.namespaces;
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
        let resolve = || self.resolve_pod_peer(namespaces, pods);
        match self.cache.slot(peer) {
            Some(slot) => Some(&**slot.pods.get_or_init(resolve)),
            None => {
                debug_assert!(false, "peer {:?} is not one of this engine's", peer.id);
                None
            }
        }
    }

    /// Every address `peer` matches ([`Engine::addresses_of_peer`]), resolved once per engine.
    pub fn peer_addresses(&self, peer: &RulePeer) -> Arc<AddressRanges> {
        let resolve = || Arc::new(self.addresses_of_peer(peer));
        match self.cache.slot(peer) {
            Some(slot) => Arc::clone(slot.addresses.get_or_init(resolve)),
            None => resolve(),
        }
    }

    /// The pods of a pod peer, matched now.
    pub(crate) fn resolve_pod_peer(
        &self,
        namespaces: &NamespaceMatch,
        pods: &LabelSelector,
    ) -> Arc<[PodId]> {
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
        let table = &self.peers;
        for (index, slot) in self.cache.slots.iter().enumerate() {
            let Some(peer) = table.get(PeerId(index as u32)) else {
                continue;
            };
            if let (
                Some(pods),
                Peer::Pods {
                    namespaces,
                    pods: selector,
                },
            ) = (slot.pods.get(), &*peer)
            {
                assert_eq!(
                    **pods,
                    *self.resolve_pod_peer(namespaces, selector),
                    "{peer:?}"
                );
            }
            if let Some(addresses) = slot.addresses.get() {
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
    fn equal_peers_are_one_interned_value() {
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
        assert!(Arc::ptr_eq(&calico[0].peer, &calico[1].peer));
        assert_eq!(engine.peer_table().len(), 3);
        let web = engine.inventory().pod_by_key("a", "web").expect("web");
        let (_, first) = &all[0];
        let found = all.iter().find(|(name, _)| name == "a/labels");
        let labels_peer = &found.expect("a/labels has a peer").1;
        assert_eq!(engine.peer_pods(labels_peer), Some(&[web][..]));
        assert_eq!(engine.peer_pods(&calico[0].clone()), None);
        assert_eq!(
            engine.peer_table().get(first.id()).as_deref(),
            Some(first.peer())
        );
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
        assert!(Arc::ptr_eq(&before.peers, &after.peers));
        let slot = &after.cache.slots[first.id().index()];
        assert!(slot.pods.get().is_some() && slot.addresses.get().is_some());
        assert!(after.cache.slots[third.index()].pods.get().is_none());

        // A new client pod: nothing is taken over, and the peers resolve anew.
        docs.push(pod("client", "client", "10.0.0.3"));
        let (grown, _, _) = after.rebuilt(inventory(&docs));
        assert_eq!(id_of(&grown, "a/third"), third);
        assert!(grown.cache.slots[first.id().index()].pods.get().is_none());
        let client = grown.inventory().pod_by_key("a", "client").expect("client");
        let third_peer = peers(&grown).into_iter().find(|(n, _)| n == "a/third");
        let third_peer = third_peer.expect("a/third has a peer").1;
        assert_eq!(grown.peer_pods(&third_peer), Some(&[client][..]));
        assert_eq!(after.peer_pods(&third_peer), Some(&[][..]));
    }
}
