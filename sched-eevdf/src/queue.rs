//! The run queue of EEVDF: runnable threads that are not running, split in
//! two binary heaps, with lazy deletion.
//!
//! - `waiting`: threads not yet eligible, smallest virtual eligible time
//!   (`ve`) first;
//! - `eligible`: threads whose `ve` the system's virtual time `V` has
//!   reached, earliest virtual deadline (`vd`) first.
//!
//! A pick first moves every waiting entry with `ve <= V` to `eligible`,
//! then pops the earliest deadline. This is exact because eligibility only
//! grows between pushes: `V` never decreases while a policy runs, and a
//! queued thread's `ve` and `vd` do not change (a thread whose do is pushed
//! again under a new sequence number, its old entry left stale). Each entry
//! is moved at most once, so a decision is O(log n) amortized, the bound
//! Linux 6.6 gets from its augmented red-black tree (ordered by `ve`, each
//! node holding its subtree's earliest deadline) without the tree.
//!
//! Stale entries (a thread that slept, left, changed weight or was pushed
//! again) are skipped and dropped by [`sched_api::lazy::Lazy`], the lazy
//! deletion stride and round robin share: a stale entry may move from
//! `waiting` to `eligible` before it surfaces, and costs O(log n) once.

use alloc::collections::BinaryHeap;
use core::cmp::Reverse;

use sched_api::lazy::{Lazy, Order, Ticket};
use sched_api::table::Slot;
use sched_api::ThreadId;

/// One queued thread, ordered by `(key, id)`: `key` is `ve` in `waiting`,
/// `vd` in `eligible` (ids of live entries are unique, so they never tie).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    key: i128,
    pub id: ThreadId,
    /// The other time: `vd` in `waiting`, `ve` in `eligible`.
    other: i128,
    pub slot: Slot,
    pub seq: u64,
}

impl Entry {
    pub(crate) fn new(ve: i128, vd: i128, id: ThreadId, slot: Slot, seq: u64) -> Entry {
        Entry {
            key: ve,
            id,
            other: vd,
            slot,
            seq,
        }
    }

    /// The same entry keyed by deadline.
    fn by_deadline(self) -> Entry {
        Entry {
            key: self.other,
            other: self.key,
            ..self
        }
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

/// The two heaps, live entries and stale.
#[derive(Clone, Debug, Default)]
pub(crate) struct Heaps {
    waiting: BinaryHeap<Reverse<Entry>>,
    eligible: BinaryHeap<Reverse<Entry>>,
}

/// The run queue: the two heaps with lazy deletion.
pub(crate) type Queue = Lazy<Heaps>;

impl Order for Heaps {
    type Entry = Entry;
    /// The system's virtual time `V`.
    type At = i128;

    /// Queues a runnable thread at virtual eligible time `ve` (the entry
    /// carries its deadline).
    #[inline]
    fn push(&mut self, e: Entry) {
        self.waiting.push(Reverse(e));
    }

    /// The entry with the earliest deadline among those eligible at
    /// virtual time `now`, removed; if none is eligible (every eligible
    /// thread runs on another core, or rounding), the one that becomes
    /// eligible first, so that no core idles while a thread waits.
    fn pop(&mut self, now: i128) -> Option<Entry> {
        while let Some(&Reverse(e)) = self.waiting.peek() {
            if e.key > now {
                break;
            }
            self.waiting.pop();
            self.eligible.push(Reverse(e.by_deadline()));
        }
        match self.eligible.pop() {
            Some(Reverse(e)) => Some(e.by_deadline()),
            None => self.waiting.pop().map(|Reverse(e)| e),
        }
    }

    fn len(&self) -> usize {
        self.waiting.len() + self.eligible.len()
    }

    fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        self.waiting.retain(|Reverse(e)| keep(e));
        self.eligible.retain(|Reverse(e)| keep(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    proptest! {
        /// Against a plain scan: the earliest deadline among the eligible,
        /// else the earliest eligible time; stale entries never come out.
        #[test]
        fn pops_what_a_scan_would(
            ops in proptest::collection::vec((0u32..16, -50i128..50, 0i128..40, any::<bool>()), 1..200),
        ) {
            let mut q = Queue::default();
            // id -> (ve, vd, seq) of its live entry.
            let mut model: BTreeMap<ThreadId, (i128, i128, u64)> = BTreeMap::new();
            let mut seq = 0u64;
            let mut now = -60i128;
            for (id, ve, d, pop) in ops {
                now += 1;
                if pop {
                    let m = model.clone();
                    let live = |e: &Entry| m.get(&e.id).is_some_and(|&(_, _, s)| s == e.seq);
                    let want = model
                        .iter()
                        .filter(|(_, &(ve, _, _))| ve <= now)
                        .map(|(&id, &(_, vd, _))| (vd, id))
                        .min()
                        .map(|(_, id)| id)
                        .or_else(|| model.iter().map(|(&id, &(ve, _, _))| (ve, id)).min().map(|(_, id)| id));
                    let got = q.pop(now, live).map(|e| e.id);
                    prop_assert_eq!(got, want);
                    if let Some(id) = got {
                        model.remove(&id);
                    }
                } else {
                    seq += 1;
                    if model.insert(id, (ve, ve + d, seq)).is_some() {
                        let m = model.clone();
                        q.forget_one(|e: &Entry| m.get(&e.id).is_some_and(|&(_, _, s)| s == e.seq));
                    }
                    q.push(Entry::new(ve, ve + d, id, 0, seq));
                }
                let ids: Vec<_> = model.keys().collect();
                prop_assert!(q.held() <= 2 * ids.len() + 34, "{} held for {} live", q.held(), ids.len());
            }
        }
    }
}
