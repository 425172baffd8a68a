//! [`PodId`], the typed index of a pod in [`crate::Inventory::pods`], and [`PodRange`], a
//! run of them (the pods of a namespace are one run: pods are sorted by namespace and name).
//!
//! Vectors and slices kept per pod (`Vec<bool>` of changed pods, a pod's class, its policy
//! lists) are indexed by a `PodId` directly, so that an index of another kind (a class, a
//! namespace, a policy) cannot be passed where a pod is meant without saying so
//! ([`PodId::new`], [`PodId::index`]).

use std::ops::{Index, IndexMut};

/// Index of a pod in [`crate::Inventory::pods`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodId(usize);

impl PodId {
    /// The pod at `index` of the inventory's pod list.
    #[inline]
    pub const fn new(index: usize) -> PodId {
        PodId(index)
    }

    /// Its place in the inventory's pod list (and in every per-pod vector).
    #[inline]
    pub const fn index(self) -> usize {
        self.0
    }

    /// The pod `n` places after this one in the pod list.
    #[inline]
    #[must_use]
    pub const fn plus(self, n: usize) -> PodId {
        PodId(self.0 + n)
    }
}

impl std::fmt::Display for PodId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pod#{}", self.0)
    }
}

impl<T> Index<PodId> for [T] {
    type Output = T;
    #[inline]
    fn index(&self, id: PodId) -> &T {
        &self[id.0]
    }
}

impl<T> IndexMut<PodId> for [T] {
    #[inline]
    fn index_mut(&mut self, id: PodId) -> &mut T {
        &mut self[id.0]
    }
}

impl<T> Index<PodId> for Vec<T> {
    type Output = T;
    #[inline]
    fn index(&self, id: PodId) -> &T {
        &self[id.0]
    }
}

impl<T> IndexMut<PodId> for Vec<T> {
    #[inline]
    fn index_mut(&mut self, id: PodId) -> &mut T {
        &mut self[id.0]
    }
}

/// The pods `start..end` of the pod list (`start` included, `end` not), in order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PodRange {
    /// The first pod.
    pub start: PodId,
    /// The pod after the last.
    pub end: PodId,
}

impl PodRange {
    /// The pods with indexes `indexes`.
    #[inline]
    pub const fn new(indexes: std::ops::Range<usize>) -> PodRange {
        PodRange {
            start: PodId(indexes.start),
            end: PodId(indexes.end),
        }
    }

    /// The indexes, for slicing per-pod vectors.
    #[inline]
    pub const fn indexes(self) -> std::ops::Range<usize> {
        self.start.0..self.end.0
    }

    /// How many pods.
    #[inline]
    pub const fn len(self) -> usize {
        self.end.0.saturating_sub(self.start.0)
    }

    /// Whether it holds no pod.
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.end.0 <= self.start.0
    }

    /// Whether `id` is one of its pods.
    #[inline]
    pub const fn contains(self, id: PodId) -> bool {
        self.start.0 <= id.0 && id.0 < self.end.0
    }
}

impl IntoIterator for PodRange {
    type Item = PodId;
    type IntoIter = std::iter::Map<std::ops::Range<usize>, fn(usize) -> PodId>;
    #[inline]
    fn into_iter(self) -> Self::IntoIter {
        self.indexes().map(PodId::new as fn(usize) -> PodId)
    }
}

impl<T> Index<PodRange> for [T] {
    type Output = [T];
    #[inline]
    fn index(&self, range: PodRange) -> &[T] {
        &self[range.indexes()]
    }
}

impl<T> Index<PodRange> for Vec<T> {
    type Output = [T];
    #[inline]
    fn index(&self, range: PodRange) -> &[T] {
        &self[range.indexes()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_index_per_pod_vectors_and_ranges_iterate_in_order() {
        let v = vec!['a', 'b', 'c', 'd'];
        assert_eq!(v[PodId::new(2)], 'c');
        assert_eq!(v.as_slice()[PodId::new(0)], 'a');
        let range = PodRange::new(1..3);
        assert_eq!(&v[range], &['b', 'c']);
        assert_eq!(
            range.into_iter().collect::<Vec<_>>(),
            vec![PodId::new(1), PodId::new(2)]
        );
        assert_eq!(range.len(), 2);
        assert!(range.contains(PodId::new(1)) && !range.contains(PodId::new(3)));
        assert!(PodRange::new(3..3).is_empty());
        assert_eq!(PodId::new(1).plus(2), PodId::new(3));
        let mut w = vec![0; 3];
        w[PodId::new(1)] += 5;
        assert_eq!(w, [0, 5, 0]);
    }
}
