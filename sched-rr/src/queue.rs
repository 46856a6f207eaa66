//! The run queue: runnable threads that are not running, first come first
//! served, as a ring buffer with lazy deletion.
//!
//! Why not a `BTreeMap<seq, id>`: every decision pops the head and appends
//! one thread, and a B-tree allocates and frees nodes as it goes; a ring
//! buffer reuses its space. It cannot remove an arbitrary entry, so a
//! thread leaving the queue other than by a pop (sleep, removal) leaves its
//! entry behind, *stale*; pops skip stale entries, and when they outnumber
//! the live ones the buffer is compacted. So it holds at most about twice
//! the most threads ever queued at once, and every operation is O(1)
//! amortized.
//!
//! An entry is live iff its thread's record still carries the entry's
//! sequence number (its place in line, unique for every push) and the
//! thread is runnable: the owner decides, through the `live` predicate it
//! passes in. The owner keeps exactly one live entry per runnable thread,
//! so the live entries in order are exactly what the ordered map held.

use alloc::collections::VecDeque;

use sched_api::table::Slot;

/// One queued thread: `seq` is its place in line, `slot` finds its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub seq: u64,
    pub slot: Slot,
}

/// Stale entries tolerated beyond the live count before a compaction
/// (keeps small queues from compacting at every sleep).
const SLACK: usize = 32;

/// A FIFO of entries with lazy deletion.
#[derive(Clone, Debug, Default)]
pub(crate) struct Queue {
    fifo: VecDeque<Entry>,
    /// Entries in `fifo` known to be stale.
    stale: usize,
}

impl Queue {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Appends an entry (its `seq` larger than any queued one's).
    pub(crate) fn push(&mut self, entry: Entry) {
        self.fifo.push_back(entry);
    }

    /// Puts an entry first (its `seq` smaller than any queued one's).
    pub(crate) fn push_front(&mut self, entry: Entry) {
        self.fifo.push_front(entry);
    }

    /// Removes and returns the first live entry, dropping the stale ones
    /// in front of it.
    pub(crate) fn pop(&mut self, live: impl Fn(&Entry) -> bool) -> Option<Entry> {
        while let Some(entry) = self.fifo.pop_front() {
            if live(&entry) {
                return Some(entry);
            }
            self.stale -= 1;
        }
        None
    }

    /// Notes that one live entry has just become stale (its thread left
    /// the queue); compacts once stale entries outnumber the live ones.
    pub(crate) fn forget_one(&mut self, live: impl Fn(&Entry) -> bool) {
        self.stale += 1;
        if self.stale > self.fifo.len() - self.stale + SLACK {
            self.fifo.retain(|e| live(e));
            self.stale = 0;
        }
    }

    /// Entries held, live or stale.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.fifo.len()
    }

    /// Entries held and known to be stale.
    #[cfg(test)]
    pub(crate) fn stale(&self) -> usize {
        self.stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use proptest::prelude::*;

    /// A model owner: the current sequence number of each queued slot.
    #[derive(Default)]
    struct Owner {
        queue: Queue,
        current: BTreeMap<Slot, u64>,
        next_seq: u64,
    }

    impl Owner {
        fn live(current: &BTreeMap<Slot, u64>) -> impl Fn(&Entry) -> bool + '_ {
            |e| current.get(&e.slot) == Some(&e.seq)
        }

        fn push(&mut self, slot: Slot) {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.current.insert(slot, seq);
            self.queue.push(Entry { seq, slot });
        }

        fn leave(&mut self, slot: Slot) {
            if self.current.remove(&slot).is_some() {
                self.queue.forget_one(Self::live(&self.current));
            }
        }

        fn pop(&mut self) -> Option<Slot> {
            let e = self.queue.pop(Self::live(&self.current))?;
            self.current.remove(&e.slot);
            Some(e.slot)
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Push(u32),
        Leave(u32),
        Pop,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u32..40).prop_map(Op::Push),
            (0u32..40).prop_map(Op::Leave),
            Just(Op::Pop),
        ]
    }

    proptest! {
        /// Pops come out in arrival order, skipping whoever left, and
        /// stale entries never outnumber the most live ones by much.
        #[test]
        fn pops_like_an_ordered_map(ops in proptest::collection::vec(op(), 1..400)) {
            let mut o = Owner::default();
            let mut model: BTreeMap<u64, Slot> = BTreeMap::new();
            let mut peak = 0;
            for op in ops {
                match op {
                    // Only slots not queued are pushed (as the owner does).
                    Op::Push(slot) if !o.current.contains_key(&slot) => {
                        model.insert(o.next_seq, slot);
                        o.push(slot);
                    }
                    Op::Push(_) => {}
                    Op::Leave(slot) => {
                        model.retain(|_, s| *s != slot);
                        o.leave(slot);
                    }
                    Op::Pop => prop_assert_eq!(o.pop(), model.pop_first().map(|(_, s)| s)),
                }
                let live = model.len();
                peak = peak.max(live);
                prop_assert_eq!(o.queue.held() - o.queue.stale(), live);
                prop_assert!(o.queue.stale() <= peak + SLACK);
            }
            while let Some((_, s)) = model.pop_first() {
                prop_assert_eq!(o.pop(), Some(s));
            }
            prop_assert_eq!(o.pop(), None);
            prop_assert_eq!(o.queue.held(), 0);
        }
    }

    #[test]
    fn many_leaves_trigger_a_compaction() {
        let mut o = Owner::default();
        for slot in 0..100 {
            o.push(slot);
        }
        for slot in 0..90 {
            o.leave(slot);
        }
        assert!(o.queue.held() < 100);
        assert_eq!(o.queue.held() - o.queue.stale(), 10);
        assert_eq!(o.pop(), Some(90));
    }
}
