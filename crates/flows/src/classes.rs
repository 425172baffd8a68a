//! The outcome of each connection class between two pods, in an open-addressing table of
//! our own: one 16-byte slot holds a class and its outcome, so that a look-up reads one
//! cache line (a `HashMap` reads its control bytes and then its bucket, two lines apart), and
//! the slot of a class can be asked for ahead of the look-up ([`ClassOutcomes::prefetch`]):
//! the checker asks for the slots of a batch's new connections together, so that their
//! loads overlap instead of each record waiting for its own. The mismatch groups find
//! their groups through the same table ([`crate::MismatchGroups`], keyed by group).

use netfence_engine::ConnectionClass;
use netfence_model::net::FxHasher;
use std::hash::BuildHasher;

/// The bit of [`Slot::word`] that says the slot is taken; the outcome is below it.
const TAKEN: u32 = 1 << 31;

/// The slots a table starts with (a power of two).
const FIRST_SLOTS: usize = 1 << 12;

#[derive(Clone, Copy, Debug, Default)]
struct Slot<K> {
    class: K,
    /// [`TAKEN`] and the outcome; 0 for a free slot.
    word: u32,
}

// A class (three u32) and its word: 16 bytes, four slots a cache line.
const _: () = assert!(std::mem::size_of::<Slot<ConnectionClass>>() == 16);

/// Outcomes (any value below 2^31) by connection class (`K`: [`ConnectionClass`], and
/// other keys in the tests). At most half the slots are taken, so a look-up of a class not
/// in the table ends at a free slot soon.
pub(crate) struct ClassOutcomes<K = ConnectionClass> {
    slots: Vec<Slot<K>>,
    len: usize,
    hasher: std::hash::BuildHasherDefault<FxHasher>,
}

impl<K: Copy + Default + Eq + std::hash::Hash> ClassOutcomes<K> {
    pub(crate) fn new() -> Self {
        ClassOutcomes {
            slots: Vec::new(),
            len: 0,
            hasher: Default::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Where the look-up of `class` starts (the hash's high bits).
    #[inline]
    fn home(&self, class: &K) -> usize {
        let bits = self.slots.len().trailing_zeros();
        match bits {
            0 => 0,
            _ => (self.hasher.hash_one(class) >> (64 - bits)) as usize,
        }
    }

    /// The slot holding `class`, or the free slot where it would go.
    #[inline]
    fn find(&self, class: &K) -> Option<usize> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut at = self.home(class);
        loop {
            let slot = &self.slots[at];
            if slot.word == 0 || slot.class == *class {
                return Some(at);
            }
            at = (at + 1) & mask;
        }
    }

    /// The outcome of `class`.
    #[inline]
    pub(crate) fn get(&self, class: &K) -> Option<u32> {
        let slot = self.slots.get(self.find(class)?)?;
        (slot.word != 0).then_some(slot.word & !TAKEN)
    }

    /// Ask for the slot where a look-up of `class` starts, so that a later
    /// [`ClassOutcomes::get`] finds it in the CPU's cache. On x86-64 a prefetch, which
    /// retires at once; elsewhere nothing.
    #[inline]
    pub(crate) fn prefetch(&self, class: &K) {
        crate::prefetch(self.slots.get(self.home(class)));
    }

    /// Put `outcome` (below 2^31) as the outcome of `class`, in place of any it had. The
    /// table doubles when half its slots would be taken.
    pub(crate) fn insert(&mut self, class: K, outcome: u32) {
        debug_assert!(outcome < TAKEN);
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        if let Some(at) = self.find(&class) {
            let slot = &mut self.slots[at];
            self.len += usize::from(slot.word == 0);
            *slot = Slot {
                class,
                word: TAKEN | outcome,
            };
        }
    }

    /// Replace the outcome of `class` when the table has one.
    #[inline]
    pub(crate) fn update(&mut self, class: &K, outcome: u32) {
        if let Some(at) = self.find(class) {
            let slot = &mut self.slots[at];
            if slot.word != 0 {
                slot.word = TAKEN | outcome;
            }
        }
    }

    fn grow(&mut self) {
        let slots = (self.slots.len() * 2).max(FIRST_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); slots]);
        self.len = 0;
        for slot in old.into_iter().filter(|slot| slot.word != 0) {
            if let Some(at) = self.find(&slot.class) {
                self.slots[at] = slot;
                self.len += 1;
            }
        }
    }

    /// Every class held and its outcome, in no set order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (K, u32)> + '_ {
        (self.slots.iter())
            .filter(|slot| slot.word != 0)
            .map(|slot| (slot.class, slot.word & !TAKEN))
    }

    /// Forget every class (the memory stays for the next).
    pub(crate) fn clear(&mut self) {
        if self.len > 0 {
            self.slots.fill(Slot::default());
            self.len = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn an_empty_table_has_no_outcome_and_takes_no_memory() {
        let table = ClassOutcomes::<(u32, u32, u32)>::new();
        assert_eq!(table.get(&(0, 0, 0)), None);
        assert_eq!(table.len(), 0);
        assert!(table.slots.is_empty());
        // Asking ahead for a slot of an empty table is nothing.
        table.prefetch(&(1, 2, 3));
    }

    #[test]
    fn the_default_class_is_a_class_like_any_other() {
        let mut table = ClassOutcomes::<(u32, u32, u32)>::new();
        table.insert((1, 0, 0), 7);
        assert_eq!(
            table.get(&(0, 0, 0)),
            None,
            "a free slot is not the default class's"
        );
        table.insert((0, 0, 0), 0);
        assert_eq!(table.get(&(0, 0, 0)), Some(0));
        assert_eq!(table.get(&(1, 0, 0)), Some(7));
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn update_replaces_only_an_outcome_there_is() {
        let mut table = ClassOutcomes::<(u32, u32, u32)>::new();
        table.update(&(1, 1, 1), 5);
        assert_eq!(table.get(&(1, 1, 1)), None);
        table.insert((1, 1, 1), 4);
        table.update(&(1, 1, 1), 5);
        assert_eq!(table.get(&(1, 1, 1)), Some(5));
        assert_eq!(table.len(), 1);
    }

    proptest! {
        /// Whatever is inserted, updated and cleared, the table answers as a `HashMap` does,
        /// across its growths (keys drawn from a small range, so that they collide and
        /// repeat; and from a wide one).
        #[test]
        fn answers_as_a_hash_map_does(
            steps in prop::collection::vec(
                (0u8..8, 0u32..3000, 0u32..4, any::<u32>(), 0u32..(1 << 31)),
                1..20_000,
            ),
        ) {
            let mut table = ClassOutcomes::<(u32, u32, u32)>::new();
            let mut map = HashMap::new();
            for (op, a, b, wide, outcome) in steps {
                let key = if op % 2 == 0 { (a, b, 0) } else { (a, b, wide) };
                match op {
                    0..=3 => {
                        table.insert(key, outcome);
                        map.insert(key, outcome);
                    }
                    4 | 5 => {
                        table.update(&key, outcome);
                        if let Some(held) = map.get_mut(&key) {
                            *held = outcome;
                        }
                    }
                    6 if a % 500 == 0 => {
                        table.clear();
                        map.clear();
                    }
                    _ => prop_assert_eq!(table.get(&key), map.get(&key).copied()),
                }
                prop_assert_eq!(table.len(), map.len());
                prop_assert!(table.len() * 2 <= table.slots.len().max(1));
            }
            for (key, outcome) in &map {
                prop_assert_eq!(table.get(key), Some(*outcome));
            }
            let mut held: Vec<_> = table.iter().collect();
            held.sort_unstable();
            let mut expected: Vec<_> = map.into_iter().collect();
            expected.sort_unstable();
            prop_assert_eq!(held, expected);
        }
    }
}
