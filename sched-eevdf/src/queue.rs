//! The run queue of EEVDF: runnable threads that are not running, split in
//! two heaps ([`sched_api::heap::Heap`], 4-ary, shared with stride), with
//! lazy deletion.
//!
//! - `waiting`: threads not yet eligible, smallest virtual eligible time
//!   (`ve`) first;
//! - `eligible`: threads whose `ve` the system's virtual time `V` has
//!   reached, earliest virtual deadline (`vd`) first.
//!
//! A pick first moves every waiting entry with `ve <= V` to `eligible`,
//! then pops the earliest deadline; an entry already eligible when it is
//! queued goes to `eligible` at once, and a push into `waiting` (a
//! charge's, after `V` advanced) moves whatever `V` has made eligible
//! then, as the next pick would (`Heaps::push_at`). This is exact
//! because eligibility only grows between pushes: `V` never decreases
//! while a policy runs, and a queued thread's `ve` and `vd` do not change
//! (a thread whose do is pushed again under a new sequence number, its old
//! entry left stale). Each entry is moved at most once, so a decision is
//! O(log n) amortized, the bound Linux 6.6 gets from its augmented
//! red-black tree (ordered by `ve`, each node holding its subtree's
//! earliest deadline) without the tree.
//!
//! Stale entries (a thread that slept, left, changed weight or was pushed
//! again) are skipped and dropped by [`sched_api::lazy::Lazy`], the lazy
//! deletion stride and round robin share: a stale entry may move from
//! `waiting` to `eligible` before it surfaces, and costs O(log n) once.

use sched_api::heap::{Heap, Key, Keyed};
use sched_api::lazy::{Lazy, Order, Replace, Ticket};
use sched_api::table::Slot;
use sched_api::ThreadId;

/// One queued thread, ordered by `(key, id)`: `key` is `ve` in `waiting`,
/// `vd` in `eligible` (ids of live entries are unique, so they never tie).
/// The other time is kept in two halves, not as an `i128`, whose 16-byte
/// alignment would pad the entry from 48 bytes to 64.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    key: Key,
    /// The other time: `vd` in `waiting`, `ve` in `eligible`.
    other: [u64; 2],
    pub seq: u64,
}

impl Entry {
    #[inline]
    pub(crate) fn new(ve: i128, vd: i128, id: ThreadId, slot: Slot, seq: u64) -> Entry {
        let vd = vd as u128;
        Entry {
            key: Key::new(ve, id, slot),
            other: [(vd >> 64) as u64, vd as u64],
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

    #[inline]
    fn other(&self) -> i128 {
        ((u128::from(self.other[0]) << 64) | u128::from(self.other[1])) as i128
    }

    /// The same entry keyed by its other time (deadline for eligible
    /// time, or back).
    #[inline]
    fn swapped(self) -> Entry {
        Entry::new(
            self.other(),
            self.key.time(),
            self.key.id,
            self.key.slot,
            self.seq,
        )
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

/// The two heaps, live entries and stale.
#[derive(Clone, Debug, Default)]
pub(crate) struct Heaps {
    waiting: Heap<Entry>,
    eligible: Heap<Entry>,
    /// `eligible`'s root has been popped but is still in place, a hole:
    /// the next entry into `eligible` takes its place (one sift from the
    /// root, where a pop and a push are a sift each), and whatever else
    /// touches `eligible` first closes it ([`Heaps::close`]).
    hole: bool,
}

/// The run queue: the two heaps with lazy deletion.
pub(crate) type Queue = Lazy<Heaps>;

impl Heaps {
    /// Queues an entry (keyed by `ve`) that the system's virtual time is
    /// at `now`: straight into `eligible` if it is eligible already, where
    /// the next pop would move it anyway (`V` never decreases), which
    /// saves that pop's move. Into `waiting` otherwise, and then every
    /// waiting entry `now` has made eligible moves, as the next pop would
    /// move it: the first in place of the root, which it leaves (one sift
    /// where a pop and a push are two). (Only for a live entry: see
    /// [`Lazy::order_mut`].)
    #[inline]
    pub(crate) fn push_at(&mut self, e: Entry, now: i128) {
        if e.key.time() <= now {
            self.put_eligible(e.swapped());
            return;
        }
        match self.waiting.peek() {
            Some(first) if first.key.time() <= now => {
                let first = *first;
                self.waiting.replace_first(e);
                self.put_eligible(first.swapped());
                self.settle(now);
            }
            _ => self.waiting.push(e),
        }
    }

    /// Puts an entry keyed by deadline into `eligible`: in the hole if
    /// there is one.
    #[inline]
    fn put_eligible(&mut self, e: Entry) {
        if self.hole {
            self.hole = false;
            self.eligible.replace_first(e);
        } else {
            self.eligible.push(e);
        }
    }

    /// Moves every waiting entry eligible at `now` to `eligible`.
    #[inline]
    fn settle(&mut self, now: i128) {
        while let Some(e) = self.waiting.peek() {
            if e.key.time() > now {
                break;
            }
            if let Some(e) = self.waiting.pop_min() {
                self.put_eligible(e.swapped());
            }
        }
    }

    /// Takes the hole out of `eligible` (a pop of what is left in it).
    #[inline]
    fn close(&mut self) {
        if self.hole {
            self.hole = false;
            self.eligible.pop_min();
        }
    }
}

impl Order for Heaps {
    type Entry = Entry;
    /// The system's virtual time `V`.
    type At = i128;

    /// Queues a runnable thread at virtual eligible time `ve` (the entry
    /// carries its deadline).
    #[inline]
    fn push(&mut self, e: Entry) {
        self.waiting.push(e);
    }

    /// The entry with the earliest deadline among those eligible at
    /// virtual time `now`, removed (from `eligible`, by leaving a hole);
    /// if none is eligible (every eligible thread runs on another core,
    /// or rounding), the one that becomes eligible first, so that no core
    /// idles while a thread waits.
    #[inline]
    fn pop(&mut self, now: i128) -> Option<Entry> {
        self.settle(now);
        self.close();
        match self.eligible.peek() {
            Some(&e) => {
                self.hole = true;
                Some(e.swapped())
            }
            None => self.waiting.pop_min(),
        }
    }

    fn len(&self) -> usize {
        self.waiting.len() + self.eligible.len() - usize::from(self.hole)
    }

    fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        self.close();
        self.waiting.retain(&mut keep);
        self.eligible.retain(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    #[test]
    fn an_entry_is_48_bytes() {
        assert_eq!(core::mem::size_of::<Entry>(), 48);
    }

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
                    let live = |e: &Entry| m.get(&e.id()).is_some_and(|&(_, _, s)| s == e.seq);
                    let want = model
                        .iter()
                        .filter(|(_, &(ve, _, _))| ve <= now)
                        .map(|(&id, &(_, vd, _))| (vd, id))
                        .min()
                        .map(|(_, id)| id)
                        .or_else(|| model.iter().map(|(&id, &(ve, _, _))| (ve, id)).min().map(|(_, id)| id));
                    let got = q.pop(now, live).map(|e| e.id());
                    prop_assert_eq!(got, want);
                    if let Some(id) = got {
                        model.remove(&id);
                    }
                } else {
                    seq += 1;
                    if model.insert(id, (ve, ve + d, seq)).is_some() {
                        let m = model.clone();
                        q.forget_one(|e: &Entry| m.get(&e.id()).is_some_and(|&(_, _, s)| s == e.seq));
                    }
                    // Either way in: straight to where it belongs now, or
                    // to `waiting` for the next pop to sort out.
                    if seq.is_multiple_of(2) {
                        q.order_mut().push_at(Entry::new(ve, ve + d, id, 0, seq), now);
                    } else {
                        q.push(Entry::new(ve, ve + d, id, 0, seq));
                    }
                }
                let ids: Vec<_> = model.keys().collect();
                prop_assert!(q.held() <= 2 * ids.len() + 34, "{} held for {} live", q.held(), ids.len());
            }
        }
    }
}
