//! The engine's one bitset: a fixed number of bits in 64-bit words, with the whole-set
//! operations the class matrix and the pod matrix use.

/// A fixed-size set of small integers `0..len`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct BitSet(Vec<u64>);

impl BitSet {
    /// `len` bits, all set to `value`.
    pub fn new(len: usize, value: bool) -> BitSet {
        let mut words = vec![if value { u64::MAX } else { 0 }; len.div_ceil(64)];
        if value && !len.is_multiple_of(64) {
            if let Some(last) = words.last_mut() {
                *last = (1u64 << (len % 64)) - 1;
            }
        }
        BitSet(words)
    }

    /// Whether bit `i` is set.
    pub fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    /// Set bit `i`.
    pub fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    /// The intersection.
    pub fn and(&self, other: &BitSet) -> BitSet {
        BitSet(self.0.iter().zip(&other.0).map(|(a, b)| a & b).collect())
    }

    /// Add every bit of `other`.
    pub fn or_assign(&mut self, other: &BitSet) {
        self.0.iter_mut().zip(&other.0).for_each(|(a, b)| *a |= b);
    }

    /// Remove every bit of `other`.
    pub fn and_not_assign(&mut self, other: &BitSet) {
        self.0.iter_mut().zip(&other.0).for_each(|(a, b)| *a &= !b);
    }

    /// Whether no bit is set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// The set bits, in increasing order.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &word)| {
            let mut word = word;
            std::iter::from_fn(move || {
                (word != 0).then(|| {
                    let bit = word.trailing_zeros() as usize;
                    word &= word - 1;
                    w * 64 + bit
                })
            })
        })
    }

    /// How many bits are set.
    pub fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_agree_with_a_set_of_integers() {
        let mut a = BitSet::new(130, false);
        let mut b = BitSet::new(130, true);
        assert_eq!(b.count(), 130);
        for i in [0, 63, 64, 129] {
            a.set(i);
        }
        assert_eq!(a.ones().collect::<Vec<_>>(), vec![0, 63, 64, 129]);
        assert_eq!(a.and(&b), a);
        b.and_not_assign(&a);
        assert_eq!(b.count(), 126);
        assert!(!b.get(64) && b.get(65));
        b.or_assign(&a);
        assert_eq!(b, BitSet::new(130, true));
        assert!(BitSet::new(7, false).is_empty());
    }
}
