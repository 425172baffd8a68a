//! The pod classes ([`Engine::pod_classes`]): pods that every policy treats alike, and what
//! the partition depends on besides the pods — the label keys some selector reads and the
//! CIDR boundaries address peers draw, counted per compiled policy — so that an engine
//! rebuilt after a change can take its classes from the old engine (pods kept keep their
//! class; only new or changed pods are placed) instead of classifying every pod again.

use crate::connlist::index_u32;
use crate::eval::Engine;
use crate::incremental::PodMatch;
use crate::ir::{Peer, Policy, Subject};
use netfence_model::net::FastMap;
use netfence_model::{AddressCuts, Inventory, Pod, PodId, WorkloadRef};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

/// A pseudo-key in the relevant set: some rule looks at service accounts.
pub(crate) const SERVICE_ACCOUNT_MATTERS: &str = "\u{0}service-account";

/// What the partition depends on, from the policies: each label key some selector reads and
/// each CIDR an address peer names, with the number of compiled policies naming it.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClassBasis {
    keys: HashMap<String, i64>,
    nets: HashMap<ipnet::IpNet, i64>,
    /// The CIDRs rule peers name (not the policies' own endpoints), counted likewise: the
    /// connection list's external ranges are cut at these ([`ClassBasis::list_cuts`]).
    peer_nets: HashMap<ipnet::IpNet, i64>,
    /// Rule peers that are nodes, counted: while one exists, node addresses cut the ranges.
    node_peers: i64,
}

impl ClassBasis {
    fn of(engine: &Engine) -> ClassBasis {
        let mut basis = ClassBasis::default();
        for policy in engine.tiers().iter().flat_map(|tier| &tier.policies) {
            basis.count(policy, engine.inventory(), 1);
        }
        basis
    }

    /// Add (`sign` 1) or take away (-1) one compiled policy's keys and CIDRs.
    pub(crate) fn count(&mut self, policy: &Policy, inventory: &Inventory, sign: i64) {
        let mut key = |k: &str| {
            *self.keys.entry(k.to_string()).or_default() += sign;
        };
        let k8s = |s: &netfence_selector::LabelSelector, key: &mut dyn FnMut(&str)| {
            for r in s.requirements() {
                key(r.key());
            }
        };
        match policy.subject.subject() {
            Subject::PodsInNamespace { selector, .. } => k8s(selector, &mut key),
            Subject::Cluster { pod_selector, .. } => k8s(pod_selector, &mut key),
            Subject::Calico {
                selector,
                service_account_selector,
                ..
            } => {
                selector.label_keys().into_iter().for_each(&mut key);
                if service_account_selector.is_some() {
                    key(SERVICE_ACCOUNT_MATTERS);
                }
            }
        }
        let mut nets: Vec<ipnet::IpNet> = Vec::new();
        let mut peer_nets: Vec<ipnet::IpNet> = Vec::new();
        for rules in [&policy.ingress, &policy.egress].into_iter().flatten() {
            for rule in rules {
                // What `connlist::cuts` reads: the nets of rule peers, and whether some peer
                // is the nodes.
                for peer in &rule.peers {
                    if crate::connlist::peer_cut_nets(peer, &mut peer_nets) {
                        self.node_peers += sign;
                    }
                }
                for peer in rule.peers.iter().chain(rule.local.iter()) {
                    match peer.peer() {
                        Peer::Pods { pods, .. } => k8s(pods, &mut key),
                        Peer::Calico(entity) => {
                            for s in entity.selector.iter().chain(entity.not_selector.iter()) {
                                s.label_keys().into_iter().for_each(&mut key);
                            }
                            if entity.service_accounts.is_some() {
                                key(SERVICE_ACCOUNT_MATTERS);
                            }
                            if entity.service.is_some() {
                                for service in inventory.services.iter() {
                                    service.selector.keys().for_each(|k| key(k));
                                }
                            }
                            nets.extend(entity.nets.iter().chain(&entity.not_nets).copied());
                        }
                        Peer::Net { net, except } => {
                            nets.push(*net);
                            nets.extend(except.iter().copied());
                        }
                        Peer::Nodes(_) => {}
                    }
                }
            }
        }
        for net in nets {
            *self.nets.entry(net).or_default() += sign;
        }
        for net in peer_nets {
            *self.peer_nets.entry(net).or_default() += sign;
        }
    }

    /// The cuts of the connection list's external ranges, equal to `connlist::cuts` of the
    /// engine whose policies this basis counts (`inventory` is that engine's): every CIDR a
    /// rule peer names, every node address when some rule peer is the nodes, every network
    /// set's CIDRs. Read from the counts, without walking the policies.
    pub(crate) fn list_cuts(&self, inventory: &Inventory) -> AddressCuts {
        let nets: Vec<ipnet::IpNet> = self
            .peer_nets
            .iter()
            .filter(|(_, &count)| count > 0)
            .map(|(net, _)| *net)
            .collect();
        crate::connlist::cuts_of(nets, self.node_peers > 0, inventory)
    }

    /// Every pod label key some selector reads (Kubernetes, admin policy, Calico, Service
    /// selectors of Calico `services` peers): labels outside this set cannot tell pods apart.
    fn relevant(&self) -> BTreeSet<String> {
        self.keys
            .iter()
            .filter(|(_, &count)| count > 0)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Every CIDR boundary an address peer, a network set or a node address draws: two
    /// addresses in the same elementary segment are contained by exactly the same peers.
    fn cuts(&self, inventory: &Inventory) -> AddressCuts {
        let mut nets: Vec<ipnet::IpNet> = self
            .nets
            .iter()
            .filter(|(_, &count)| count > 0)
            .map(|(net, _)| *net)
            .collect();
        // Network sets give addresses labels: pods whose addresses fall in different sets
        // must not share a class, so the sets' CIDRs join the address peers.
        for set in &inventory.network_sets {
            nets.extend(set.nets.iter().copied());
        }
        for node in &inventory.nodes {
            nets.extend(node.addresses.iter().map(|ip| ipnet::IpNet::from(*ip)));
        }
        AddressCuts::from_nets(&nets)
    }
}

/// Members of each class (in pod order), and the class of each pod.
type Partition = (Vec<Vec<PodId>>, Vec<usize>);

/// The partition and what it was computed from.
#[derive(Clone, Debug)]
pub(crate) struct PodClasses {
    /// Members of each class (in pod order), and the class of each pod.
    pub(crate) partition: (Vec<Vec<PodId>>, Vec<usize>),
    basis: ClassBasis,
    relevant: BTreeSet<String>,
    cuts: AddressCuts,
    /// The classes grouped by workload, computed on first use and shared with every engine
    /// that takes this partition over unchanged (same pods, same classes).
    workloads: Arc<OnceLock<WorkloadClasses>>,
    /// What the delta's line memo reads of each class's pod ([`ClassFacts`]), computed on
    /// first use, shared likewise, and derived from the old facts when changed pods were
    /// placed without moving a pod id.
    facts: Arc<OnceLock<ClassFacts>>,
    /// When derived from another partition by placing the changed pods
    /// ([`PodClasses::derived`]): each old class's number here (`usize::MAX` when no pod
    /// continues it). A class so numbered holds a kept, unchanged pod of that old class.
    pub(crate) carried: Option<Arc<[usize]>>,
}

/// Each workload's pod classes: what the what-if delta ([`crate::delta`]) reads a line's
/// sides from.
#[derive(Debug, Default)]
pub(crate) struct WorkloadClasses {
    /// Every workload with a pod, in the order of its first pod when grouped from the pods; a
    /// grouping derived from another ([`WorkloadClasses::derived`]) shares that one's list,
    /// order and index (a workload left without pods keeps its place, with no classes).
    pub(crate) workloads: Arc<Vec<WorkloadRef>>,
    /// Each workload's place in `workloads`.
    index: Arc<FastMap<WorkloadRef, usize>>,
    /// The classes of each workload's pods, each once, in the order of their first pod.
    pub(crate) classes: ClassLists,
}

/// What the delta's line memo (`line_cells.rs`) reads of each class's pod, its first member:
/// kept with the partition so that a memo reads no pod (one pointer chase per class, twice
/// per delta, was a tenth of a pod relabel's delta at 100k pods), and carried to the engine
/// after a change for the classes no changed pod left or joined.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ClassFacts {
    /// Each class's first member.
    pub(crate) reps: Vec<PodId>,
    /// Per class: bit 0 an IPv4 address, bit 1 an IPv6 address, bit 2 the first is IPv6.
    pub(crate) families: Vec<u8>,
    /// Per class: whether its pod is host-network.
    pub(crate) host_network: Vec<bool>,
    /// Per class `c`: its pod's addresses as address peers see them (none when synthetic),
    /// `addresses[address_starts[c]..address_starts[c + 1]]`.
    pub(crate) address_starts: Vec<u32>,
    pub(crate) addresses: Vec<IpAddr>,
}

impl ClassFacts {
    /// The facts of every class of `classes`, each read from its first member in `pods`.
    pub(crate) fn of(pods: &[Arc<Pod>], classes: &[Vec<PodId>]) -> ClassFacts {
        let mut facts = ClassFacts::with_capacity(classes.len());
        for members in classes {
            facts.push(members[0], &pods[members[0]]);
        }
        facts
    }

    fn with_capacity(classes: usize) -> ClassFacts {
        let mut address_starts = Vec::with_capacity(classes + 1);
        address_starts.push(0);
        ClassFacts {
            reps: Vec::with_capacity(classes),
            families: Vec::with_capacity(classes),
            host_network: Vec::with_capacity(classes),
            address_starts,
            addresses: Vec::with_capacity(classes),
        }
    }

    /// A class whose first member is `rep`, pod `pod`.
    fn push(&mut self, rep: PodId, pod: &Pod) {
        let ips = &pod.ips;
        self.reps.push(rep);
        self.families.push(
            u8::from(ips.iter().any(IpAddr::is_ipv4))
                | (u8::from(ips.iter().any(IpAddr::is_ipv6)) << 1)
                | (u8::from(ips.first().is_some_and(IpAddr::is_ipv6)) << 2),
        );
        self.host_network.push(pod.host_network);
        // An invented address is unknown: it matches no address peer.
        if !pod.synthetic_ip {
            self.addresses.extend_from_slice(ips);
        }
        self.address_starts.push(index_u32(self.addresses.len()));
    }

    /// Class `class` of `other`, as it is.
    fn push_from(&mut self, other: &ClassFacts, class: usize) {
        self.reps.push(other.reps[class]);
        self.families.push(other.families[class]);
        self.host_network.push(other.host_network[class]);
        let (start, end) = (
            other.address_starts[class] as usize,
            other.address_starts[class + 1] as usize,
        );
        self.addresses
            .extend_from_slice(&other.addresses[start..end]);
        self.address_starts.push(index_u32(self.addresses.len()));
    }

    /// The facts of `partition`, derived from `moved_members`: these are the old
    /// partition's (`old_class_of`), `number` the provisional classes' new numbers, `changed`
    /// the placed pods (same ids). A class keeps its old facts when no changed pod left or
    /// joined it (its members, and so its first member's pod, are the old ones: a clean pod
    /// of an unmoved id is the same `Arc`); every other class reads its first member again.
    fn derived(
        &self,
        pods: &[Arc<Pod>],
        (classes, class_of): &Partition,
        old_class_of: &[usize],
        number: &[usize],
        changed: &[PodId],
    ) -> ClassFacts {
        let old_count = self.reps.len();
        let mut dirty = vec![false; old_count];
        for &id in changed {
            dirty[old_class_of[id]] = true;
        }
        let mut source = vec![usize::MAX; classes.len()];
        for (class, &new) in number[..old_count].iter().enumerate() {
            if !dirty[class] && new != usize::MAX {
                source[new] = class;
            }
        }
        for &id in changed {
            source[class_of[id]] = usize::MAX;
        }
        let mut facts = ClassFacts::with_capacity(classes.len());
        for (members, &old) in classes.iter().zip(&source) {
            match old {
                usize::MAX => facts.push(members[0], &pods[members[0]]),
                old => facts.push_from(self, old),
            }
        }
        facts
    }
}

/// One list of classes per workload, all in one vector (renumbering them is one pass, with
/// no allocation per workload).
#[derive(Debug, Default)]
pub(crate) struct ClassLists {
    /// Where each list starts in `flat`, and where the last ends.
    starts: Vec<usize>,
    flat: Vec<usize>,
}

impl ClassLists {
    fn with_capacity(lists: usize, entries: usize) -> ClassLists {
        let mut starts = Vec::with_capacity(lists + 1);
        starts.push(0);
        ClassLists {
            starts,
            flat: Vec::with_capacity(entries),
        }
    }

    /// Add a list at the end.
    fn push(&mut self, list: impl IntoIterator<Item = usize>) {
        self.flat.extend(list);
        self.starts.push(self.flat.len());
    }

    /// The number of lists.
    pub(crate) fn len(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// Every list, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[usize]> + '_ {
        (0..self.len()).map(|w| &self[w])
    }
}

impl std::ops::Index<usize> for ClassLists {
    type Output = [usize];

    fn index(&self, w: usize) -> &[usize] {
        &self.flat[self.starts[w]..self.starts[w + 1]]
    }
}

impl<'a> IntoIterator for &'a ClassLists {
    type Item = &'a [usize];
    type IntoIter = Box<dyn Iterator<Item = &'a [usize]> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl WorkloadClasses {
    fn of(pods: &[Arc<Pod>], class_of: &[usize]) -> WorkloadClasses {
        // Sized for one workload per pod up front: growing the table was a third of the time.
        let mut index: FastMap<&WorkloadRef, usize> = FastMap::default();
        index.reserve(pods.len());
        let (mut workloads, mut grouped) = (Vec::new(), Vec::<Vec<usize>>::new());
        // Pods are sorted by (namespace, name), so a workload's pods mostly follow each
        // other: compare with the previous pod's workload before hashing.
        let mut last: Option<(&WorkloadRef, usize)> = None;
        for (pod, &class) in pods.iter().zip(class_of) {
            let w = match last {
                Some((workload, w)) if *workload == pod.workload => w,
                _ => {
                    let w = *index.entry(&pod.workload).or_insert_with(|| {
                        workloads.push(pod.workload.clone());
                        grouped.push(Vec::new());
                        workloads.len() - 1
                    });
                    last = Some((&pod.workload, w));
                    w
                }
            };
            let classes = &mut grouped[w];
            if !classes.contains(&class) {
                classes.push(class);
            }
        }
        drop(index);
        let index = workloads
            .iter()
            .enumerate()
            .map(|(w, workload)| (workload.clone(), w))
            .collect();
        let mut classes =
            ClassLists::with_capacity(grouped.len(), grouped.iter().map(Vec::len).sum());
        for list in grouped {
            classes.push(list);
        }
        WorkloadClasses {
            workloads: Arc::new(workloads),
            index: Arc::new(index),
            classes,
        }
    }

    /// Whether both give every workload with a pod the same classes in the same order (the
    /// places may differ; a workload without pods may be listed, with no classes).
    fn same_as(&self, other: &WorkloadClasses) -> bool {
        let listed = |g: &WorkloadClasses| g.classes.iter().filter(|c| !c.is_empty()).count();
        listed(self) == listed(other)
            && other
                .workloads
                .iter()
                .zip(&other.classes)
                .all(|(w, classes)| {
                    self.position(w)
                        .is_some_and(|at| self.classes[at] == *classes)
                })
    }

    /// A workload's place in [`WorkloadClasses::workloads`].
    pub(crate) fn position(&self, workload: &WorkloadRef) -> Option<usize> {
        self.index.get(workload).copied()
    }

    /// The grouping of a partition derived from this one's ([`PodClasses::derived`]) in
    /// O(changed pods + workloads), instead of hashing every pod's workload again: each
    /// workload's classes renumbered (`renumber`: old class → new class, for every old class
    /// with a kept pod), and the workloads of changed, new and gone pods grouped again from
    /// their namespace's pods. `None` when a changed pod names a workload this grouping does
    /// not have (the list would grow), or lies outside its workload's namespace.
    fn derived(
        &self,
        old_pods: &[Arc<Pod>],
        inventory: &Inventory,
        (pods, class_of): (&PodMatch, &[usize]),
        renumber: &[usize],
    ) -> Option<WorkloadClasses> {
        let mut affected: Vec<usize> = Vec::new();
        let changed_new = pods.changed.iter().map(|&id| &inventory.pods()[id]);
        let gone = pods.gone();
        let changed_old = gone.iter().map(|&id| &old_pods[id]);
        for pod in changed_new.chain(changed_old) {
            if pod.workload.namespace != pod.namespace {
                return None;
            }
            affected.push(self.position(&pod.workload)?);
        }
        affected.sort_unstable();
        affected.dedup();
        let mut affected = affected.into_iter().peekable();
        let mut classes =
            ClassLists::with_capacity(self.classes.len(), self.classes.flat.len() + 1);
        for (w, list) in self.classes.iter().enumerate() {
            if affected.next_if_eq(&w).is_none() {
                classes.push(list.iter().map(|&c| renumber[c]));
                continue;
            }
            let workload = &self.workloads[w];
            let mut list: Vec<usize> = Vec::new();
            for id in inventory.pods_in(&workload.namespace) {
                if inventory.pods()[id].workload == *workload && !list.contains(&class_of[id]) {
                    list.push(class_of[id]);
                }
            }
            classes.push(list);
        }
        Some(WorkloadClasses {
            workloads: Arc::clone(&self.workloads),
            index: Arc::clone(&self.index),
            classes,
        })
    }
}

impl Engine {
    /// The pod classes grouped by workload (see [`WorkloadClasses`]); two engines that share
    /// the partition return the same object (compare with [`std::ptr::eq`]).
    pub(crate) fn workload_classes(&self) -> &WorkloadClasses {
        let classes = self.pod_classes.get_or_init(|| PodClasses::compute(self));
        classes
            .workloads
            .get_or_init(|| WorkloadClasses::of(self.inventory().pods(), &classes.partition.1))
    }

    /// What the delta's line memo reads of each class's pod (see [`ClassFacts`]), computed
    /// on first use unless derived with the partition.
    pub(crate) fn class_facts(&self) -> &ClassFacts {
        let classes = self.pod_classes.get_or_init(|| PodClasses::compute(self));
        classes
            .facts
            .get_or_init(|| ClassFacts::of(self.inventory().pods(), &classes.partition.0))
    }

    /// The external ranges' cuts of the connection list, equal to `connlist::cuts`, from the
    /// counts the pod classes keep (taken over, with the classes, from the engine this one
    /// was rebuilt from) instead of walking every policy. Two addresses of one segment are
    /// matched by the same rule peers (peer CIDRs and their exceptions, network sets, node
    /// addresses when a peer is the nodes), so they are decided alike.
    pub fn list_cuts(&self) -> AddressCuts {
        let classes = self.pod_classes.get_or_init(|| PodClasses::compute(self));
        let cuts = classes.basis.list_cuts(self.inventory());
        debug_assert_eq!(cuts, crate::connlist::cuts(self));
        cuts
    }
}

#[cfg(test)]
impl Engine {
    /// The class facts when kept or derived already (without reading them from the pods).
    pub(crate) fn class_facts_kept(&self) -> Option<&ClassFacts> {
        self.pod_classes.get()?.facts.get()
    }
}

/// Namespace, relevant labels, service account, named ports, host network, node, address
/// segments, IPv6: everything a policy can tell pods apart by.
type ClassKey<'a> = (
    &'a str,
    Vec<(&'a String, &'a String)>,
    &'a str,
    Vec<&'a netfence_model::ContainerPort>,
    bool,
    Option<&'a str>,
    Vec<(bool, usize)>,
    bool,
);

impl PodClasses {
    /// Every pod classified.
    pub(crate) fn compute(engine: &Engine) -> PodClasses {
        let basis = ClassBasis::of(engine);
        let (relevant, cuts) = (basis.relevant(), basis.cuts(engine.inventory()));
        let mut keys: HashMap<ClassKey<'_>, usize> = HashMap::new();
        let mut classes: Vec<Vec<PodId>> = Vec::new();
        let pods = engine.inventory().pods();
        let mut class_of = Vec::with_capacity(pods.len());
        for (id, pod) in pods.iter().enumerate() {
            let class = *keys
                .entry(class_key(pod, &relevant, &cuts))
                .or_insert_with(|| {
                    classes.push(Vec::new());
                    classes.len() - 1
                });
            classes[class].push(PodId::new(id));
            class_of.push(class);
        }
        drop(keys);
        PodClasses {
            partition: (classes, class_of),
            basis,
            relevant,
            cuts,
            workloads: Arc::default(),
            facts: Arc::default(),
            carried: None,
        }
    }

    /// The classes of the engine of `inventory`, rebuilt from this one's engine: `basis` is
    /// this one's with the changed policies' counts moved; `pods` says which pods are new or
    /// changed and each kept pod's old id. `None` when the partition's basis changed (then
    /// every pod is classified again) or too many pods changed.
    pub(crate) fn derived(
        &self,
        old_pods: &[Arc<Pod>],
        inventory: &Inventory,
        basis: ClassBasis,
        pods: &PodMatch,
        shared_pods: bool,
    ) -> Option<PodClasses> {
        let relevant = basis.relevant();
        if relevant != self.relevant {
            return None;
        }
        let cuts = basis.cuts(inventory);
        if cuts != self.cuts {
            return None;
        }
        let fresh = PodClasses {
            partition: Default::default(),
            basis,
            relevant,
            cuts,
            workloads: Arc::default(),
            facts: Arc::default(),
            carried: None,
        };
        if shared_pods {
            return Some(PodClasses {
                partition: self.partition.clone(),
                workloads: Arc::clone(&self.workloads),
                facts: Arc::clone(&self.facts),
                ..fresh
            });
        }
        // Placing a changed pod compares it with its namespace's kept pods.
        const MAX_PLACED: usize = 1000;
        if pods.changed.len() > MAX_PLACED {
            return None;
        }
        let (number, partition) = match pods.same_ids() {
            true => self.moved_members(inventory, &fresh, pods),
            false => self.renumbered(inventory, &fresh, pods),
        };
        let old_count = self.partition.0.len();
        // The workload grouping follows, when the old one was made.
        let workloads = self
            .workloads
            .get()
            .and_then(|old| {
                old.derived(
                    old_pods,
                    inventory,
                    (pods, &partition.1),
                    &number[..old_count],
                )
            })
            .map_or_else(Arc::default, |grouped| {
                // Checked against a grouping from every pod in the tests' builds (the
                // property tests of `Cluster::apply` go through here on every step).
                debug_assert!(
                    grouped.same_as(&WorkloadClasses::of(inventory.pods(), &partition.1)),
                    "a derived workload grouping differs from a fresh one"
                );
                Arc::new(OnceLock::from(grouped))
            });
        // The line memo's facts follow too, when the old ones were read and no id moved.
        let facts = match (pods.same_ids(), self.facts.get()) {
            (true, Some(old)) => {
                let derived = old.derived(
                    inventory.pods(),
                    &partition,
                    &self.partition.1,
                    &number,
                    &pods.changed,
                );
                debug_assert!(
                    derived == ClassFacts::of(inventory.pods(), &partition.0),
                    "derived class facts differ from the classes' pods"
                );
                Arc::new(OnceLock::from(derived))
            }
            _ => Arc::default(),
        };
        Some(PodClasses {
            partition,
            workloads,
            facts,
            carried: Some(Arc::from(&number[..old_count])),
            ..fresh
        })
    }

    /// A changed pod's provisional class: the old class of a kept pod of its namespace with
    /// the same key, else a new id (from `next` on) per distinct key.
    fn place<'i>(
        &self,
        (inventory, fresh): (&'i Inventory, &PodClasses),
        pods: &PodMatch,
        id: PodId,
        (placed, next): (&mut HashMap<ClassKey<'i>, usize>, &mut usize),
    ) -> usize {
        let all = inventory.pods();
        let key = class_key(&all[id], &fresh.relevant, &fresh.cuts);
        let kept = (inventory.pods_in(&all[id].namespace).into_iter()).find(|&other| {
            !pods.dirty[other] && class_key(&all[other], &fresh.relevant, &fresh.cuts) == key
        });
        match kept.and_then(|other| pods.previous(other)) {
            Some(old) => self.partition.1[old],
            None => *placed.entry(key).or_insert_with(|| {
                *next += 1;
                *next - 1
            }),
        }
    }

    /// The partition when pod ids moved: every pod's provisional class (a kept pod's old
    /// class), numbered by first member as [`PodClasses::compute`] numbers them. Also gives
    /// each provisional class's number.
    fn renumbered(
        &self,
        inventory: &Inventory,
        fresh: &PodClasses,
        pods: &PodMatch,
    ) -> (Vec<usize>, Partition) {
        let mut next = self.partition.0.len();
        let mut placed = HashMap::new();
        let mut class_of: Vec<usize> = (0..inventory.pods().len())
            .map(PodId::new)
            .map(|id| match (pods.dirty[id], pods.previous(id)) {
                (false, Some(old)) => self.partition.1[old],
                _ => self.place((inventory, fresh), pods, id, (&mut placed, &mut next)),
            })
            .collect();
        drop(placed);
        let mut number = vec![usize::MAX; next];
        let mut classes: Vec<Vec<PodId>> = Vec::new();
        for (id, class) in class_of.iter_mut().enumerate() {
            if number[*class] == usize::MAX {
                number[*class] = classes.len();
                classes.push(Vec::new());
            }
            *class = number[*class];
            classes[*class].push(PodId::new(id));
        }
        (number, (classes, class_of))
    }

    /// The partition when no pod id moved: only the changed pods are placed, and only the
    /// classes they leave or join get new member lists; the others keep theirs and their
    /// order (the old classes are numbered by first member), and the touched ones are placed
    /// among them by their new first member: the numbering [`PodClasses::compute`] gives.
    fn moved_members(
        &self,
        inventory: &Inventory,
        fresh: &PodClasses,
        pods: &PodMatch,
    ) -> (Vec<usize>, Partition) {
        let (old_classes, old_class_of) = &self.partition;
        let old_count = old_classes.len();
        let mut next = old_count;
        let mut placed = HashMap::new();
        let moved: Vec<(PodId, usize)> = (pods.changed.iter())
            .map(|&id| {
                let class = self.place((inventory, fresh), pods, id, (&mut placed, &mut next));
                (id, class)
            })
            .collect();
        drop(placed);
        // The member lists of the classes pods leave or join.
        let mut touched: FastMap<usize, Vec<PodId>> = FastMap::default();
        let mut is_touched = vec![false; next];
        let members = |class: usize| old_classes.get(class).cloned().unwrap_or_default();
        for &(id, class) in &moved {
            let old = old_class_of[id];
            if old != class {
                (touched.entry(old).or_insert_with(|| members(old))).retain(|&m| m != id);
                touched
                    .entry(class)
                    .or_insert_with(|| members(class))
                    .push(id);
                (is_touched[old], is_touched[class]) = (true, true);
            }
        }
        let mut firsts: Vec<(PodId, usize)> = Vec::with_capacity(touched.len());
        for (&class, list) in touched.iter_mut() {
            list.sort_unstable();
            if let Some(&first) = list.first() {
                firsts.push((first, class));
            }
        }
        firsts.sort_unstable();
        // Provisional classes in the new order.
        let mut order: Vec<usize> = Vec::with_capacity(old_count + firsts.len());
        let mut firsts = firsts.into_iter().peekable();
        for (class, list) in old_classes.iter().enumerate() {
            if is_touched[class] {
                continue;
            }
            while let Some((_, other)) = firsts.next_if(|&(first, _)| first < list[0]) {
                order.push(other);
            }
            order.push(class);
        }
        order.extend(firsts.map(|(_, class)| class));
        let mut number = vec![usize::MAX; next];
        for (n, &class) in order.iter().enumerate() {
            number[class] = n;
        }
        let classes: Vec<Vec<PodId>> = (order.iter())
            .map(|&class| match is_touched[class] {
                true => touched.remove(&class).unwrap_or_default(),
                false => old_classes[class].clone(),
            })
            .collect();
        let mut class_of: Vec<usize> = old_class_of.iter().map(|&c| number[c]).collect();
        for &(id, class) in &moved {
            class_of[id] = number[class];
        }
        (number, (classes, class_of))
    }

    /// The basis, to move the changed policies' counts on.
    pub(crate) fn basis(&self) -> &ClassBasis {
        &self.basis
    }
}

/// What a pod's class is decided by.
fn class_key<'a>(pod: &'a Pod, relevant: &BTreeSet<String>, cuts: &AddressCuts) -> ClassKey<'a> {
    let signature: Vec<(bool, usize)> = if pod.synthetic_ip {
        Vec::new() // an invented address matches no address peer
    } else {
        pod.ips.iter().map(|ip| cuts.segment(*ip)).collect()
    };
    // Only what policies can see: labels some selector reads, named container ports.
    let labels: Vec<(&String, &String)> = pod
        .labels
        .iter()
        .filter(|(k, _)| relevant.contains(*k))
        .collect();
    let named_ports: Vec<&netfence_model::ContainerPort> =
        pod.ports.iter().filter(|c| c.name.is_some()).collect();
    let service_account = if relevant.contains(SERVICE_ACCOUNT_MATTERS)
        || relevant.contains("projectcalico.org/serviceaccount")
    {
        pod.service_account.as_str()
    } else {
        ""
    };
    (
        pod.namespace.as_str(),
        labels,
        service_account,
        named_ports,
        pod.host_network,
        pod.node.as_deref(),
        signature,
        pod.ips.first().is_some_and(|ip| ip.is_ipv6()),
    )
}
