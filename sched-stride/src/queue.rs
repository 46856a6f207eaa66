//! The run queue: runnable threads that are not running, smallest
//! `(pass, id)` first, as a 4-ary min-heap in a vector, with lazy deletion.
//!
//! Why not a `BTreeSet<(pass, id)>`: every decision pops one thread and
//! pushes one back, and a B-tree allocates and frees nodes as it splits
//! and merges; a heap in a vector reuses its space. Why 4-ary: with
//! thousands of threads a pop is bound by the chain of dependent loads
//! from the root down to a leaf; four children per node halve the depth of
//! a binary heap, and the four sit side by side (128 bytes), so the extra
//! comparisons cost less than the levels saved (measured: a quarter less
//! time per decision at 10,000 threads than `BinaryHeap`).
//!
//! A heap cannot remove an arbitrary entry: a thread leaving the queue
//! other than by a pop (sleep, removal, ticket change) leaves its entry
//! behind, stale, and [`sched_api::lazy::Lazy`] skips and drops those
//! (the lazy deletion round robin and EEVDF share). This module is only
//! the order: push, pop the smallest, and filter then re-heapify.

use alloc::vec::Vec;

use sched_api::ThreadId;

use sched_api::lazy::{Lazy, Order, Ticket};
use sched_api::table::Slot;

/// One queued thread: ordered by `(pass, id)` only (ids of live entries
/// are unique, so live entries never tie); `slot` finds its record and
/// `seq` tells whether the entry is still its thread's current one.
///
/// The pass is kept as an unsigned 128-bit number in two halves (the sign
/// bit flipped, which keeps the order), so that `(pass, id)` compares as
/// one 160-bit number, without branches: passes often tie (threads of equal
/// weight that ran equally often), so a comparison that branched on the
/// tie would often be mispredicted (measured: 10-20% of a decision).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    hi: u64,
    lo: u64,
    pub id: ThreadId,
    pub slot: Slot,
    pub seq: u64,
}

const SIGN: u128 = 1 << 127;

impl Entry {
    pub(crate) fn new(pass: i128, id: ThreadId, slot: Slot, seq: u64) -> Entry {
        let key = (pass as u128) ^ SIGN;
        Entry {
            hi: (key >> 64) as u64,
            lo: key as u64,
            id,
            slot,
            seq,
        }
    }

    #[cfg(test)]
    pub(crate) fn pass(&self) -> i128 {
        (((u128::from(self.hi) << 64) | u128::from(self.lo)) ^ SIGN) as i128
    }

    /// Whether `self` comes out before `other`: `(pass, id)` is smaller,
    /// i.e. `self - other` over the limbs `hi:lo:id` borrows.
    #[inline]
    fn before(&self, other: &Entry) -> bool {
        let borrow = self.id < other.id;
        let (lo, b1) = self.lo.overflowing_sub(other.lo);
        let borrow = b1 | (lo < u64::from(borrow));
        let (hi, b2) = self.hi.overflowing_sub(other.hi);
        b2 | (hi < u64::from(borrow))
    }
}

impl Ticket for Entry {
    #[inline]
    fn slot(&self) -> Slot {
        self.slot
    }
    #[inline]
    fn seq(&self) -> u64 {
        self.seq
    }
}

/// Children per node.
const ARITY: usize = 4;

/// The run queue: the heap with lazy deletion.
pub(crate) type Queue = Lazy<Heap>;

/// A min-heap of entries, live or stale: node `i`'s children are
/// `ARITY * i + 1 ..= ARITY * i + ARITY`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Heap {
    heap: Vec<Entry>,
}

impl Order for Heap {
    type Entry = Entry;
    type At = ();

    // Inlined so that the entry stays in registers: passed through memory
    // it is stored field by field and read back whole, which stalls.
    #[inline]
    fn push(&mut self, entry: Entry) {
        self.heap.push(entry);
        self.sift_up(self.heap.len() - 1, entry);
    }

    #[inline]
    fn pop(&mut self, _: ()) -> Option<Entry> {
        self.pop_min()
    }

    fn len(&self) -> usize {
        self.heap.len()
    }

    fn retain(&mut self, keep: impl FnMut(&Entry) -> bool) {
        self.heap.retain(keep);
        for i in (0..self.heap.len().div_ceil(ARITY)).rev() {
            self.sift_down(i);
        }
    }
}

impl Heap {
    /// Removes the smallest entry, live or not.
    fn pop_min(&mut self) -> Option<Entry> {
        let last = self.heap.pop()?;
        if self.heap.is_empty() {
            return Some(last);
        }
        let top = core::mem::replace(&mut self.heap[0], last);
        // `last` came from the bottom, so it almost always belongs near
        // the bottom again: move the hole down to a leaf along the
        // smallest children without comparing against `last`, then let
        // `last` rise from there (usually not at all). This saves a
        // comparison per level over a plain sift-down.
        let n = self.heap.len();
        let mut hole = 0;
        while ARITY * hole + 1 < n {
            let child = self.smallest_child(hole);
            self.heap[hole] = self.heap[child];
            hole = child;
        }
        self.sift_up(hole, last);
        Some(top)
    }

    /// The smallest of `parent`'s children (it has at least one). Always
    /// inlined: called once per level of a pop, a call costs as much as the
    /// comparisons (measured: 45 more instructions per decision at 10,000
    /// threads when the compiler stopped inlining it).
    #[inline(always)]
    fn smallest_child(&self, parent: usize) -> usize {
        let h = &self.heap;
        let first = ARITY * parent + 1;
        if let Some(kids) = h.get(first..first + ARITY) {
            // A full set (one bounds check for all four): a two-round
            // tournament, whose first round's two comparisons are
            // independent.
            let kids: &[Entry; ARITY] = kids.try_into().expect("ARITY entries");
            let a = usize::from(kids[1].before(&kids[0]));
            let b = 2 + usize::from(kids[3].before(&kids[2]));
            first + if kids[b].before(&kids[a]) { b } else { a }
        } else {
            (first + 1..h.len()).fold(
                first,
                |best, c| if h[c].before(&h[best]) { c } else { best },
            )
        }
    }

    /// Puts `e` at node `i` (a hole) or above it, where it belongs. (`e`
    /// comes in a register, not read back from the hole: reading back an
    /// entry just stored field by field stalls store forwarding, which was
    /// measured at a quarter of a decision.)
    fn sift_up(&mut self, mut i: usize, e: Entry) {
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

    /// Whether every node comes out no later than its children.
    #[cfg(test)]
    fn is_heap(&self) -> bool {
        (1..self.heap.len()).all(|i| !self.heap[i].before(&self.heap[(i - 1) / ARITY]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::{BTreeMap, BTreeSet};
    use proptest::prelude::*;

    /// A model owner: the current (pass, seq) of each queued id.
    #[derive(Default)]
    struct Owner {
        queue: Queue,
        current: BTreeMap<ThreadId, (i128, u64)>,
        next_seq: u64,
    }

    impl Owner {
        fn live(current: &BTreeMap<ThreadId, (i128, u64)>) -> impl Fn(&Entry) -> bool + '_ {
            |e| current.get(&e.id).is_some_and(|&(_, seq)| seq == e.seq)
        }

        fn push(&mut self, id: ThreadId, pass: i128) {
            let seq = self.next_seq;
            self.next_seq += 1;
            let replaced = self.current.insert(id, (pass, seq)).is_some();
            if replaced {
                self.queue.forget_one(Self::live(&self.current));
            }
            self.queue.push(Entry::new(pass, id, 0, seq));
        }

        fn leave(&mut self, id: ThreadId) {
            if self.current.remove(&id).is_some() {
                self.queue.forget_one(Self::live(&self.current));
            }
        }

        fn pop(&mut self) -> Option<(i128, ThreadId)> {
            let e = self.queue.pop((), Self::live(&self.current))?;
            self.current.remove(&e.id);
            Some((e.pass(), e.id))
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Push(u32, i8),
        Leave(u32),
        Pop,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u32..40, any::<i8>()).prop_map(|(i, p)| Op::Push(i, p)),
            (0u32..40).prop_map(Op::Leave),
            Just(Op::Pop),
        ]
    }

    proptest! {
        /// The branch-free comparison agrees with the tuple's, and the
        /// pass survives its encoding.
        #[test]
        fn before_is_tuple_order(
            a in prop_oneof![any::<i128>(), -3i128..3, Just(i128::MIN), Just(i128::MAX)],
            b in prop_oneof![any::<i128>(), -3i128..3, Just(i128::MIN), Just(i128::MAX)],
            ia in 0u32..3, ib in prop_oneof![0u32..3, Just(u32::MAX)],
            lo_equal in any::<bool>(),
        ) {
            // Often make the low halves or whole passes equal.
            let b = if lo_equal { (b & !(u64::MAX as i128)) | (a & u64::MAX as i128) } else { b };
            for (p, q) in [(a, b), (a, a), (b, a)] {
                let (x, y) = (Entry::new(p, ia, 0, 0), Entry::new(q, ib, 0, 0));
                prop_assert_eq!(x.pass(), p);
                prop_assert_eq!(x.before(&y), (p, ia) < (q, ib), "{} {} vs {} {}", p, ia, q, ib);
            }
        }

        /// Pops come out exactly as from an ordered set of (pass, id), and
        /// stale entries never outnumber the most live ones by much.
        #[test]
        fn pops_like_an_ordered_set(ops in proptest::collection::vec(op(), 1..400)) {
            let mut o = Owner::default();
            let mut model: BTreeSet<(i128, ThreadId)> = BTreeSet::new();
            let mut peak = 0;
            for op in ops {
                match op {
                    Op::Push(id, p) => {
                        // Re-pushing a queued id moves it (a ticket change).
                        model.retain(|&(_, i)| i != id);
                        model.insert((i128::from(p), id));
                        o.push(id, i128::from(p));
                    }
                    Op::Leave(id) => {
                        model.retain(|&(_, i)| i != id);
                        o.leave(id);
                    }
                    Op::Pop => prop_assert_eq!(o.pop(), model.pop_first()),
                }
                let live = model.len();
                peak = peak.max(live);
                prop_assert_eq!(o.queue.held() - o.queue.stale(), live);
                prop_assert!(o.queue.stale() <= peak + sched_api::lazy::SLACK);
                prop_assert!(o.queue.order().is_heap());
            }
            while let Some(x) = model.pop_first() {
                prop_assert_eq!(o.pop(), Some(x));
            }
            prop_assert_eq!(o.pop(), None);
            prop_assert_eq!(o.queue.held(), 0);
        }
    }

    #[test]
    fn many_leaves_trigger_a_rebuild() {
        let mut o = Owner::default();
        for id in 0..100 {
            o.push(id, i128::from(id));
        }
        for id in 0..90 {
            o.leave(id);
        }
        // Rebuilt once the stale ones outnumbered the live ones.
        assert!(o.queue.held() < 100);
        assert_eq!(o.queue.held() - o.queue.stale(), 10);
        assert_eq!(o.pop(), Some((90, 90)));
    }
}
