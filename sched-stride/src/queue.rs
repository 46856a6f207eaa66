//! The run queue: runnable threads that are not running, smallest
//! `(pass, id)` first, as a 4-ary min-heap in a vector
//! ([`sched_api::heap::Heap`], shared with EEVDF), with lazy deletion.
//!
//! Why not a `BTreeSet<(pass, id)>`: every decision pops one thread and
//! pushes one back, and a B-tree allocates and frees nodes as it splits
//! and merges; a heap in a vector reuses its space (see the heap's module
//! for why 4-ary, and its key for why the comparison has no branch).
//!
//! A heap cannot remove an arbitrary entry: a thread leaving the queue
//! other than by a pop (sleep, removal, ticket change) leaves its entry
//! behind, stale, and [`sched_api::lazy::Lazy`] skips and drops those
//! (the lazy deletion round robin and EEVDF share). This module is only
//! the entry.

use sched_api::heap::{Heap, Key, Keyed};
use sched_api::lazy::{Lazy, Ticket};
use sched_api::table::Slot;
use sched_api::ThreadId;

/// One queued thread: ordered by `(pass, id)` only (ids of live entries
/// are unique, so live entries never tie); `slot` finds its record and
/// `seq` tells whether the entry is still its thread's current one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    key: Key,
    pub seq: u64,
}

impl Entry {
    #[inline]
    pub(crate) fn new(pass: i128, id: ThreadId, slot: Slot, seq: u64) -> Entry {
        Entry {
            key: Key::new(pass, id, slot),
            seq,
        }
    }

    #[inline]
    pub(crate) fn id(&self) -> ThreadId {
        self.key.id
    }

    #[inline]
    pub(crate) fn slot(&self) -> Slot {
        self.key.slot
    }

    #[cfg(test)]
    pub(crate) fn pass(&self) -> i128 {
        self.key.time()
    }
}

impl Keyed for Entry {
    #[inline]
    fn before(&self, other: &Entry) -> bool {
        self.key.before(&other.key)
    }
}

impl Ticket for Entry {
    #[inline]
    fn slot(&self) -> Slot {
        self.key.slot
    }
    #[inline]
    fn seq(&self) -> u64 {
        self.seq
    }
}

/// The run queue: the heap with lazy deletion.
pub(crate) type Queue = Lazy<Heap<Entry>>;

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::{BTreeMap, BTreeSet};
    use alloc::vec::Vec;
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
            |e| current.get(&e.id()).is_some_and(|&(_, seq)| seq == e.seq)
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
            self.current.remove(&e.id());
            Some((e.pass(), e.id()))
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

    #[derive(Clone, Debug)]
    enum RunOp {
        Push(u32, i8),
        Leave(u32),
        /// Take the first live entry, leaving it in place (a pick).
        Take,
        /// Requeue the `n`-th running thread at a pass (its charge).
        Charge(usize, i8),
    }

    fn run_op() -> impl Strategy<Value = RunOp> {
        prop_oneof![
            (0u32..30, any::<i8>()).prop_map(|(i, p)| RunOp::Push(i, p)),
            (0u32..30).prop_map(RunOp::Leave),
            Just(RunOp::Take),
            (0usize..4, any::<i8>()).prop_map(|(n, p)| RunOp::Charge(n, p)),
        ]
    }

    proptest! {
        /// Picks that leave their entry at the top and charges that
        /// requeue in its place (as stride's decision does) come out as
        /// pops and pushes of an ordered set would, with the stale count
        /// right throughout.
        #[test]
        fn takes_and_replacements_pop_like_an_ordered_set(
            ops in proptest::collection::vec(run_op(), 1..400),
        ) {
            let mut o = Owner::default();
            let mut model: BTreeSet<(i128, ThreadId)> = BTreeSet::new();
            // Running threads, with the sequence number they were taken
            // under.
            let mut running: Vec<(ThreadId, u64)> = Vec::new();
            for op in ops {
                match op {
                    RunOp::Push(id, p) if !running.iter().any(|&(r, _)| r == id) => {
                        model.retain(|&(_, i)| i != id);
                        model.insert((i128::from(p), id));
                        o.push(id, i128::from(p));
                    }
                    RunOp::Leave(id) => {
                        model.retain(|&(_, i)| i != id);
                        o.leave(id);
                    }
                    RunOp::Take => {
                        let e = o.queue.take_first(Owner::live(&o.current));
                        prop_assert_eq!(e.map(|e| (e.pass(), e.id())), model.pop_first());
                        if let Some(e) = e {
                            o.current.remove(&e.id());
                            running.push((e.id(), e.seq));
                        }
                    }
                    RunOp::Charge(n, p) if n < running.len() => {
                        let (id, old) = running.remove(n);
                        let seq = o.next_seq;
                        o.next_seq += 1;
                        o.current.insert(id, (i128::from(p), seq));
                        o.queue.push_replacing(Entry::new(i128::from(p), id, 0, seq), |e| {
                            e.id() == id && e.seq == old
                        });
                        model.insert((i128::from(p), id));
                    }
                    _ => {}
                }
                prop_assert_eq!(o.queue.held() - o.queue.stale(), model.len());
                prop_assert!(o.queue.order().is_heap());
            }
            while let Some(x) = model.pop_first() {
                prop_assert_eq!(o.pop(), Some(x));
            }
            prop_assert_eq!(o.pop(), None);
        }
    }

    #[test]
    fn an_entry_is_32_bytes() {
        // Four children to a cache line pair (see `sched_api::heap`).
        assert_eq!(core::mem::size_of::<Entry>(), 32);
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
