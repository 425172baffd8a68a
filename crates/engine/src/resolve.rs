//! The selector cache: every distinct pod peer (namespaces and pod selector) and every
//! distinct namespace selector is resolved once per engine into the pods (or namespaces) it
//! matches, keyed by its canonical form, however many rules repeat it. Consumers that need
//! whole peer sets (the class matrix, the dataplane renderer) read these instead of matching
//! every pod against every rule; single verdicts still match one endpoint directly.
//!
//! The cache belongs to one engine and fills on first use; an engine built by
//! [`Engine::rebuilt`](crate::Engine::rebuilt) starts with an empty one.

use crate::eval::Engine;
use crate::ir::NamespaceMatch;
use netfence_model::PodId;
use netfence_selector::LabelSelector;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// A pod peer by value: the namespaces it names or selects, and its pod selector.
type PodPeerKey = (NamespaceMatch, LabelSelector);

/// Resolved selectors of one engine.
#[derive(Default)]
pub struct SelectorCache {
    namespaces: Mutex<HashMap<LabelSelector, Arc<[String]>>>,
    pods: Mutex<HashMap<PodPeerKey, Arc<[PodId]>>>,
}

impl Engine {
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

    /// The pods (ids, sorted) that a pod peer matches: in the namespaces it names or
    /// selects, labels matching `pods`, not host-network (a host-network pod speaks with its
    /// node's address: network-policy-api, "host-networked pods are not included in this type
    /// of peer"). The same answer as [`Engine::peer_matches`] pod by pod, resolved once per
    /// distinct peer.
    pub fn peer_pods(&self, namespaces: &NamespaceMatch, pods: &LabelSelector) -> Arc<[PodId]> {
        let key = (namespaces.clone(), pods.clone());
        if let Some(found) = self
            .cache
            .pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Arc::clone(found);
        }
        let inventory = self.inventory();
        let in_namespace = |ns: &str| {
            (inventory.pods_in(ns).into_iter()).filter(|&id| {
                let pod = &*inventory.pods()[id];
                !pod.host_network && pods.matches(&pod.labels)
            })
        };
        let resolved: Arc<[PodId]> = match namespaces {
            NamespaceMatch::Named(ns) => in_namespace(ns).collect(),
            // Namespaces are sorted by name and pods by namespace: the ids come out sorted.
            NamespaceMatch::Selector(selector) => self
                .selected_namespaces(selector)
                .iter()
                .flat_map(|ns| in_namespace(ns).collect::<Vec<_>>())
                .collect(),
        };
        self.cache
            .pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, Arc::clone(&resolved));
        resolved
    }
}
