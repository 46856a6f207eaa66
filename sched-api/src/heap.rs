//! A 4-ary min-heap in a vector, and the branch-free `(virtual time, id)`
//! key the heap-ordered policies (stride, EEVDF) order their run queues
//! by: written once here, an [`Order`] for [`crate::lazy::Lazy`].
//!
//! Why 4-ary: with thousands of threads a pop is bound by the chain of
//! dependent loads from the root down to a leaf; four children per node
//! halve the depth of a binary heap, and the four sit side by side, so the
//! extra comparisons cost less than the levels saved (measured in stride:
//! a quarter less time per decision at 10,000 threads than `BinaryHeap`).
//! Why not the standard library's `BinaryHeap`: besides the arity, its
//! `pop` and `push` are calls that take the entry through memory, and a
//! derived `Ord` on a tuple of 128-bit times branches on every tie.

use alloc::vec::Vec;

use crate::lazy::{Order, Replace};
use crate::table::Slot;
use crate::ThreadId;

/// A `(time, id)` pair, ordered as the tuple, with the slot of the
/// thread's record riding along (not compared: it fills what would be
/// padding, so an entry of a key and a sequence number is 32 bytes). The
/// time is kept as an unsigned 128-bit number in two halves (the sign bit
/// flipped, which keeps the order), so that `(time, id)` compares as one
/// 160-bit number. Times often tie (threads of equal weight that ran
/// equally often), so a comparison that branched on the tie would often
/// be mispredicted (measured in stride: 10-20% of a decision): the low
/// half and the id compare without a branch. The high halves of queued
/// times are nearly always equal (they differ only across a multiple of
/// 2^64, virtual times being close to each other), so comparing them
/// first, with a branch, is predicted and saves the third limb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    hi: u64,
    lo: u64,
    pub id: ThreadId,
    pub slot: Slot,
}

const SIGN: u128 = 1 << 127;

impl Key {
    #[inline]
    pub fn new(time: i128, id: ThreadId, slot: Slot) -> Key {
        let key = (time as u128) ^ SIGN;
        Key {
            hi: (key >> 64) as u64,
            lo: key as u64,
            id,
            slot,
        }
    }

    /// The time it was made from.
    #[inline]
    pub fn time(&self) -> i128 {
        (((u128::from(self.hi) << 64) | u128::from(self.lo)) ^ SIGN) as i128
    }

    /// Whether `(time, id)` is smaller than `other`'s: by the high halves
    /// if they differ, else whether `lo:id - other's lo:id` borrows, written
    /// as the comparison of two 128-bit numbers, which the compiler makes
    /// one `cmp` and one `sbb` (written as the borrow of two 64-bit
    /// subtractions it was a compare, two flags and three logic operations:
    /// callgrind, 4-5 instructions less per comparison).
    #[inline]
    pub fn before(&self, other: &Key) -> bool {
        if self.hi != other.hi {
            return self.hi < other.hi;
        }
        let low = |k: &Key| (u128::from(k.lo) << 64) | u128::from(k.id);
        low(self) < low(other)
    }
}

/// An entry of a [`Heap`]: what comes out first is the one no other is
/// [`before`](Keyed::before).
pub trait Keyed: Copy {
    fn before(&self, other: &Self) -> bool;
}

/// Children per node.
const ARITY: usize = 4;

/// A min-heap of entries: node `i`'s children are
/// `ARITY * i + 1 ..= ARITY * i + ARITY`.
#[derive(Clone, Debug)]
pub struct Heap<E> {
    heap: Vec<E>,
}

impl<E> Default for Heap<E> {
    fn default() -> Self {
        Heap { heap: Vec::new() }
    }
}

impl<E: Keyed> Order for Heap<E> {
    type Entry = E;
    type At = ();

    #[inline]
    fn push(&mut self, e: E) {
        Heap::push(self, e);
    }

    #[inline]
    fn pop(&mut self, _: ()) -> Option<E> {
        self.pop_min()
    }

    fn len(&self) -> usize {
        self.heap.len()
    }

    fn retain(&mut self, keep: impl FnMut(&E) -> bool) {
        Heap::retain(self, keep);
    }

    fn reserve(&mut self, additional: usize) {
        self.heap.reserve(additional);
    }
}

impl<E: Keyed> Replace for Heap<E> {
    #[inline]
    fn first(&self) -> Option<&E> {
        self.heap.first()
    }

    #[inline]
    fn replace_first(&mut self, e: E) {
        if self.heap.is_empty() {
            self.heap.push(e);
        } else {
            self.refill_root(e);
        }
    }
}

impl<E: Keyed> Heap<E> {
    /// Entries held.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The smallest entry.
    #[inline]
    pub fn peek(&self) -> Option<&E> {
        self.heap.first()
    }

    // Inlined so that the entry stays in registers: passed through memory
    // it is stored field by field and read back whole, which stalls.
    #[inline]
    pub fn push(&mut self, e: E) {
        self.heap.push(e);
        self.sift_up(self.heap.len() - 1, e);
    }

    /// Removes the smallest entry.
    #[inline]
    pub fn pop_min(&mut self) -> Option<E> {
        let last = self.heap.pop()?;
        if self.heap.is_empty() {
            return Some(last);
        }
        let top = core::mem::replace(&mut self.heap[0], last);
        self.refill_root(last);
        Some(top)
    }

    /// Puts `e` at the root (a hole: its entry has been taken out) or
    /// below it, where it belongs. `e` usually came from the bottom, so
    /// it almost always belongs near the bottom again: move the hole down
    /// to a leaf along the smallest children without comparing against
    /// `e`, then let `e` rise from there (usually not at all). This saves
    /// a comparison per level over a plain sift-down.
    #[inline]
    fn refill_root(&mut self, e: E) {
        let n = self.heap.len();
        let mut hole = 0;
        while ARITY * hole + 1 < n {
            let child = match self.full_children(hole) {
                // The smallest child copied from the set itself, whose
                // one bounds check covers all four: read again by its
                // index, it was checked again (EEVDF, whose refill is out
                // of line, 8 to 18 instructions a decision; stride, which
                // inlines it into its charge, 0 to 3 more, registers).
                Some(kids) => {
                    let k = Self::smallest_of(kids);
                    self.heap[hole] = kids[k];
                    ARITY * hole + 1 + k
                }
                None => {
                    let child = self.smallest_child(hole);
                    self.heap[hole] = self.heap[child];
                    child
                }
            };
            hole = child;
        }
        self.sift_up(hole, e);
    }

    /// Keeps only the entries `keep` accepts, then restores the order.
    pub fn retain(&mut self, keep: impl FnMut(&E) -> bool) {
        self.heap.retain(keep);
        for i in (0..self.heap.len().div_ceil(ARITY)).rev() {
            self.sift_down(i);
        }
    }

    /// The smallest of `parent`'s children (it has at least one). Always
    /// inlined: called once per level of a pop, a call costs as much as the
    /// comparisons (measured: 45 more instructions per decision at 10,000
    /// threads when the compiler stopped inlining it).
    #[inline(always)]
    fn smallest_child(&self, parent: usize) -> usize {
        let h = &self.heap;
        let first = ARITY * parent + 1;
        if let Some(kids) = self.full_children(parent) {
            first + Self::smallest_of(kids)
        } else {
            (first + 1..h.len()).fold(
                first,
                |best, c| if h[c].before(&h[best]) { c } else { best },
            )
        }
    }

    /// `parent`'s children, if it has all [`ARITY`] (one bounds check for
    /// all four).
    #[inline(always)]
    fn full_children(&self, parent: usize) -> Option<&[E; ARITY]> {
        let first = ARITY * parent + 1;
        let kids = self.heap.get(first..first + ARITY)?;
        Some(kids.try_into().expect("ARITY entries"))
    }

    /// Which of a full set of children is the smallest: a two-round
    /// tournament, whose first round's two comparisons are independent.
    #[inline(always)]
    fn smallest_of(kids: &[E; ARITY]) -> usize {
        let a = usize::from(kids[1].before(&kids[0]));
        let b = 2 + usize::from(kids[3].before(&kids[2]));
        if kids[b].before(&kids[a]) {
            b
        } else {
            a
        }
    }

    /// Puts `e` at node `i` (a hole) or above it, where it belongs. (`e`
    /// comes in a register, not read back from the hole: reading back an
    /// entry just stored field by field stalls store forwarding, which was
    /// measured at a quarter of a decision.)
    #[inline]
    fn sift_up(&mut self, mut i: usize, e: E) {
        while i > 0 {
            let parent = (i - 1) / ARITY;
            if !e.before(&self.heap[parent]) {
                break;
            }
            self.heap[i] = self.heap[parent];
            i = parent;
        }
        self.heap[i] = e;
    }

    fn sift_down(&mut self, mut i: usize) {
        let e = self.heap[i];
        while ARITY * i + 1 < self.heap.len() {
            let child = self.smallest_child(i);
            if !self.heap[child].before(&e) {
                break;
            }
            self.heap[i] = self.heap[child];
            i = child;
        }
        self.heap[i] = e;
    }

    /// Whether every node comes out no later than its children (for
    /// tests).
    pub fn is_heap(&self) -> bool {
        (1..self.heap.len()).all(|i| !self.heap[i].before(&self.heap[(i - 1) / ARITY]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use proptest::prelude::*;

    impl Keyed for Key {
        fn before(&self, other: &Key) -> bool {
            Key::before(self, other)
        }
    }

    proptest! {
        /// The branch-free comparison agrees with the tuple's, and the
        /// time survives its encoding.
        #[test]
        fn before_is_tuple_order(
            a in prop_oneof![any::<i128>(), -3i128..3, Just(i128::MIN), Just(i128::MAX)],
            b in prop_oneof![any::<i128>(), -3i128..3, Just(i128::MIN), Just(i128::MAX)],
            ia in 0u32..3, ib in prop_oneof![0u32..3, Just(u32::MAX)],
            lo_equal in any::<bool>(),
        ) {
            // Often make the low halves or whole times equal.
            let b = if lo_equal { (b & !(u64::MAX as i128)) | (a & u64::MAX as i128) } else { b };
            for (p, q) in [(a, b), (a, a), (b, a)] {
                let (x, y) = (Key::new(p, ia, 0), Key::new(q, ib, 1));
                prop_assert_eq!(x.time(), p);
                prop_assert_eq!(x.before(&y), (p, ia) < (q, ib), "{} {} vs {} {}", p, ia, q, ib);
            }
        }

        /// Pops come out in order, whatever was pushed, popped and
        /// filtered out in between.
        #[test]
        fn pops_in_order(ops in proptest::collection::vec((0u8..4, -20i128..20, 0u32..8), 1..300)) {
            let mut h: Heap<Key> = Heap::default();
            // (time, id) -> copies held.
            let mut model: BTreeMap<(i128, u32), usize> = BTreeMap::new();
            for (op, t, id) in ops {
                match op {
                    0 | 1 => {
                        h.push(Key::new(t, id, 0));
                        *model.entry((t, id)).or_default() += 1;
                    }
                    2 => {
                        let want = model.first_key_value().map(|(&k, _)| k);
                        if let Some(k) = want {
                            let n = model.get_mut(&k).unwrap();
                            *n -= 1;
                            if *n == 0 {
                                model.remove(&k);
                            }
                        }
                        prop_assert_eq!(h.pop_min().map(|k| (k.time(), k.id)), want);
                    }
                    _ => {
                        h.retain(|k| k.id != id);
                        model.retain(|&(_, i), _| i != id);
                    }
                }
                prop_assert!(h.is_heap());
                prop_assert_eq!(h.len(), model.values().sum::<usize>());
                prop_assert_eq!(h.peek().map(|k| (k.time(), k.id)), model.first_key_value().map(|(&k, _)| k));
            }
        }
    }
}
