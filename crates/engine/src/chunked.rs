//! Per-pod state kept in shared chunks: an engine rebuilt after a change that moves no pod id
//! shares every chunk no pod of which changed with the engine it was rebuilt from, so the
//! copy costs one reference count per chunk, and writing a pod's entry copies only its chunk.

use std::sync::Arc;

/// Entries per chunk (a power of two): 1024, or 4 in builds with debug assertions, so that
/// the tests' small clusters span several chunks and the incremental property test
/// exercises chunks shared, copied and rebuilt.
const CHUNK_BITS: usize = if cfg!(debug_assertions) { 2 } else { 10 };
pub(crate) const CHUNK: usize = 1 << CHUNK_BITS;

/// A vector of `T` in shared chunks of [`CHUNK`] entries (the last one shorter): `clone`
/// shares every chunk; [`Chunked::set`] copies the chunk it writes when it is shared.
#[derive(Debug)]
pub(crate) struct Chunked<T> {
    chunks: Vec<Arc<[T]>>,
    len: usize,
}

impl<T> Clone for Chunked<T> {
    fn clone(&self) -> Self {
        Chunked {
            chunks: self.chunks.clone(),
            len: self.len,
        }
    }
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    /// Every entry, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flat_map(|chunk| chunk.iter())
    }

    /// The chunks, in order: chunk `k` holds entries `k * CHUNK ..`.
    pub(crate) fn chunks(&self) -> &[Arc<[T]>] {
        &self.chunks
    }

    /// Entries from chunks, each [`CHUNK`] long but the last (as [`Chunked::chunks`] gives
    /// them).
    pub(crate) fn from_chunks(chunks: Vec<Arc<[T]>>) -> Chunked<T> {
        debug_assert!(chunks.iter().rev().skip(1).all(|c| c.len() == CHUNK));
        let len = chunks.iter().map(|c| c.len()).sum();
        Chunked { chunks, len }
    }
}

impl<T: Clone> Chunked<T> {
    /// Replace entry `i`, copying its chunk first when another vector shares it.
    pub(crate) fn set(&mut self, i: usize, value: T) {
        assert!(
            i < self.len,
            "index {i} out of range for {} entries",
            self.len
        );
        let chunk = &mut self.chunks[i >> CHUNK_BITS];
        if Arc::get_mut(chunk).is_none() {
            *chunk = chunk.iter().cloned().collect();
        }
        if let Some(entries) = Arc::get_mut(chunk) {
            entries[i & (CHUNK - 1)] = value;
        }
    }
}

impl<T> std::ops::Index<usize> for Chunked<T> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        assert!(
            i < self.len,
            "index {i} out of range for {} entries",
            self.len
        );
        &self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

impl<T> std::ops::Index<netfence_model::PodId> for Chunked<T> {
    type Output = T;

    fn index(&self, id: netfence_model::PodId) -> &T {
        &self[id.index()]
    }
}

impl<T> FromIterator<T> for Chunked<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut iter = iter.into_iter();
        let mut chunks = Vec::new();
        loop {
            let chunk: Vec<T> = iter.by_ref().take(CHUNK).collect();
            if chunk.is_empty() {
                break;
            }
            chunks.push(Arc::from(chunk));
        }
        Chunked::from_chunks(chunks)
    }
}

impl<T: PartialEq> PartialEq for Chunked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_shares_chunks_until_one_is_written() {
        let n = CHUNK * 2 + CHUNK / 2;
        let a: Chunked<usize> = (0..n).collect();
        assert_eq!(a.iter().count(), n);
        assert_eq!(a.chunks().len(), 3);
        assert!(a.iter().copied().eq(0..n));
        let mut b = a.clone();
        b.set(CHUNK + 3, n);
        assert_eq!(b[CHUNK + 3], n);
        assert_eq!(a[CHUNK + 3], CHUNK + 3, "the original keeps its entry");
        assert!(Arc::ptr_eq(&a.chunks()[0], &b.chunks()[0]));
        assert!(!Arc::ptr_eq(&a.chunks()[1], &b.chunks()[1]));
        assert!(Arc::ptr_eq(&a.chunks()[2], &b.chunks()[2]));
        assert_ne!(a, b);
        b.set(CHUNK + 3, CHUNK + 3);
        assert_eq!(a, b);
        let empty: Chunked<usize> = std::iter::empty().collect();
        assert_eq!(empty.iter().count(), 0);
        assert!(empty.chunks().is_empty());
    }
}
