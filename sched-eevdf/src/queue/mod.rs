//! The run queue of EEVDF: runnable threads that are not running, in two
//! heaps ([`sched_api::heap::Heap`], 4-ary, shared with stride), with lazy
//! deletion.
//!
//! - `deadlines`: every queued thread not known to be ineligible, earliest
//!   virtual deadline (`vd`) first;
//! - `waiting`: threads a pick found ineligible (virtual eligible time
//!   `ve` past the system's virtual time `V`), smallest `ve` first.
//!
//! A queued entry goes to `deadlines`. A pick first moves every waiting
//! entry with `ve <= V` back to `deadlines`; then, while the first
//! deadline is not eligible, moves that entry to `waiting`; the first
//! deadline left is the pick (if none is left, nothing is eligible, and
//! the pick is the first of `waiting`). This is exact because
//! eligibility only grows between pushes: `V` never decreases while a
//! policy runs, and a queued thread's `ve` and `vd` do not change (a
//! thread whose do is pushed again under a new sequence number, its old
//! entry left stale). So every eligible entry is in `deadlines`, and an
//! entry not eligible is moved to `waiting` at most once and back at most
//! once: a decision is O(log n) amortized, the bound Linux 6.6 gets from
//! its augmented red-black tree (ordered by `ve`, each node holding its
//! subtree's earliest deadline) without the tree.
//!
//! Why this way round: a decision's pick leaves a hole at the root of
//! `deadlines` and its charge fills it with the thread's next request, one
//! heap descent in all; only a first deadline found ineligible pays a trip
//! through `waiting` (two descents more). Until `0459182` every charged
//! thread not yet eligible waited in `waiting`, and one became eligible
//! each decision: two descents a decision, always. Callgrind
//! (`policy-bench`'s `examples/decide`, weights 1 to 10): 989 → 851
//! instructions a decision at 1,000 threads, although 37% of its picks
//! park a thread: with weights 1 to 10 the requests' deadlines line up
//! (every `r / w` a multiple of `r / 2520`), so many threads share a
//! deadline and ties by id put ineligible ones first. With weights spread
//! over 1 to 1,000, 0.8% of the picks park one (1,000 threads, 100,000
//! decisions, counted by a scratch test).
//!
//! Parked entries fall due in crowds, their eligible times lining up as
//! the deadlines do: in that bench 0.3% of the picks at 1,000 threads
//! find any due, about 120 at once (2.7% at 100 threads, about 13), and
//! popped one by one from `waiting` each cost a descent of it. So a pick
//! pops them one at a time only while few are due, then moves the rest
//! in one pass over `waiting` ([`Heaps::settle_due`]). Callgrind: 696 /
//! 825 / 979 → 666 / 762 / 883 instructions a decision at 100 / 1,000 /
//! 10,000 threads, 1,916 → 1,853 under churn at 1,000.
//!
//! Stale entries (a thread that slept, left, changed weight or was pushed
//! again) are skipped and dropped by [`sched_api::lazy::Lazy`], the lazy
//! deletion stride and round robin share: a stale entry may move to
//! `waiting` and back before it surfaces, and costs O(log n) each time.
//!
//! Entries come in two widths ([`Queue`]): [`Narrow`], 32 bytes, its times
//! 64-bit offsets from a base near `V`, compared as one 128-bit number
//! with the id; and [`Wide`], 48 bytes, full 128-bit times. Queued times
//! sit within a few requests of `V`, so the queue is narrow unless a
//! request or a lag spans more than 2^63 units of virtual time (a quantum
//! of seconds at a weight of a fraction of a ticket, or a test of the
//! extremes): then it is repacked wide, for good. A narrow queue whose base
//! `V` has left behind (after ~2^31 ns of service per ticket of total
//! weight) is repacked at a new base: O(n), that rarely.

mod entry;

use alloc::vec::Vec;

use sched_api::heap::Heap;
use sched_api::lazy::{Lazy, Order, Replace, Ticket};
use sched_api::table::Slot;
use sched_api::ThreadId;

pub(crate) use entry::Item;
use entry::{narrow_now, Narrow, Times, Wide};

/// The two heaps (see the module docs), live entries and stale.
#[derive(Clone, Debug)]
pub(crate) struct Heaps<E> {
    waiting: Heap<E>,
    deadlines: Heap<E>,
    /// `deadlines`' root has been popped but is still in place, a hole:
    /// the next entry into `deadlines` takes its place (one sift from the
    /// root, where a pop and a push are a sift each), and whatever else
    /// touches `deadlines` first closes it ([`Heaps::close`]).
    hole: bool,
}

impl<E> Default for Heaps<E> {
    fn default() -> Self {
        Heaps {
            waiting: Heap::default(),
            deadlines: Heap::default(),
            hole: false,
        }
    }
}

impl<E: Times> Heaps<E> {
    /// Queues an entry (keyed by `ve`): into `deadlines`, eligible or not
    /// (a pick sorts that out), in the hole if there is one. (Only for a
    /// live entry: see [`Lazy::order_mut`].)
    #[inline(always)]
    fn push_at(&mut self, e: E) {
        self.put_deadline(e.to_deadline());
    }

    /// Puts an entry keyed by deadline into `deadlines`: in the hole if
    /// there is one.
    #[inline(always)]
    fn put_deadline(&mut self, e: E) {
        if self.hole {
            self.hole = false;
            self.deadlines.replace_first(e);
        } else {
            self.deadlines.push(e);
        }
    }

    /// Moves every waiting entry eligible at `now` to `deadlines`.
    #[inline(always)]
    fn settle(&mut self, now: E::Now) {
        if self.waiting.peek().is_some_and(|e| e.due(now)) {
            self.settle_due(now);
        }
    }

    /// [`Heaps::settle`] once the first waiting entry is due. Out of line,
    /// as [`Heaps::park`]: most picks find none due (inlined, the loop
    /// cost a decision 3 to 4 instructions more, callgrind).
    ///
    /// Entries fall due in crowds (see the module docs): one at a time
    /// while few are, each a pop of `waiting`; past a sixteenth of
    /// `waiting` (at least 4), the rest that are due leave in one pass
    /// over `waiting`, which rebuilds what stays, O(m) for its m entries
    /// where the pops were O(log m) each. The pass comes only after m / 16
    /// pops, so it adds O(1) amortized to each.
    #[inline(never)]
    fn settle_due(&mut self, now: E::Now) {
        let one_by_one = (self.waiting.len() / 16).max(4);
        for _ in 0..one_by_one {
            match self.waiting.peek() {
                Some(e) if e.due(now) => {}
                _ => return,
            }
            if let Some(e) = self.waiting.pop_min() {
                self.put_deadline(e.to_deadline());
            }
        }
        if self.waiting.peek().is_some_and(|e| e.due(now)) {
            let Heaps {
                waiting,
                deadlines,
                hole,
            } = self;
            waiting.retain(|&e| {
                if !e.due(now) {
                    return true;
                }
                // As `put_deadline`, the heaps borrowed apart.
                if core::mem::take(hole) {
                    deadlines.replace_first(e.to_deadline());
                } else {
                    deadlines.push(e.to_deadline());
                }
                false
            });
        }
    }

    /// Moves the first entry of `deadlines`, not eligible, to `waiting`.
    /// Out of line: most picks take the first deadline as it is.
    #[inline(never)]
    fn park(&mut self) {
        if let Some(e) = self.deadlines.pop_min() {
            self.waiting.push(e.to_waiting());
        }
    }

    /// Takes the hole out of `deadlines` (a pop of what is left in it).
    #[inline]
    fn close(&mut self) {
        if self.hole {
            self.hole = false;
            self.deadlines.pop_min();
        }
    }

    /// Empties the heaps, adding what each
    /// entry `keep` accepts to `out` (times counted from `base`).
    fn drain(&mut self, base: i128, keep: &impl Fn(&Mark) -> bool, out: &mut Vec<Item>) {
        self.close();
        for (heap, by_deadline) in [(&mut self.waiting, false), (&mut self.deadlines, true)] {
            heap.retain(|e| {
                if keep(&mark(e)) {
                    let (ve, vd) = e.decode(by_deadline, base);
                    out.push(Item {
                        ve,
                        vd,
                        id: e.id(),
                        slot: e.slot(),
                        seq: e.seq(),
                    });
                }
                false
            });
        }
    }
}

impl<E: Times> Order for Heaps<E> {
    type Entry = E;
    /// The system's virtual time `V`.
    type At = E::Now;

    /// Queues a runnable thread at virtual eligible time `ve` (the entry
    /// carries its deadline).
    #[inline]
    fn push(&mut self, e: E) {
        self.waiting.push(e);
    }

    /// The entry with the earliest deadline among those eligible at
    /// virtual time `now`, removed (from `deadlines`, by leaving a hole;
    /// keyed by its deadline); if none is eligible (every eligible thread
    /// runs on another core, or rounding), the one that becomes eligible
    /// first, so that no core idles while a thread waits.
    #[inline]
    fn pop(&mut self, now: E::Now) -> Option<E> {
        self.settle(now);
        self.close();
        loop {
            match self.deadlines.peek() {
                Some(&e) if e.eligible_at(now) => {
                    self.hole = true;
                    return Some(e);
                }
                Some(_) => self.park(),
                None => return self.waiting.pop_min(),
            }
        }
    }

    fn len(&self) -> usize {
        self.waiting.len() + self.deadlines.len() - usize::from(self.hole)
    }

    fn retain(&mut self, mut keep: impl FnMut(&E) -> bool) {
        self.close();
        self.waiting.retain(&mut keep);
        self.deadlines.retain(keep);
    }

    /// Room in both heaps: which an entry goes to depends on the time.
    fn reserve(&mut self, additional: usize) {
        self.waiting.reserve(additional);
        self.deadlines.reserve(additional);
    }
}

/// An entry's slot and sequence number, whichever its width: what
/// liveness is judged by ([`sched_api::lazy::live`]).
pub(crate) type Mark = (Slot, u64);

/// `e`'s [`Mark`].
#[inline]
fn mark(e: &impl Ticket) -> Mark {
    (e.slot(), e.seq())
}

/// The run queue: [`Heaps`] with lazy deletion, narrow while every
/// queued time fits 64-bit offsets from `base`, else wide (see the module
/// docs).
#[derive(Clone, Debug)]
pub(crate) enum Queue {
    Narrow {
        base: i128,
        queue: Lazy<Heaps<Narrow>>,
    },
    Wide(Lazy<Heaps<Wide>>),
}

impl Default for Queue {
    fn default() -> Self {
        Queue::at(0)
    }
}

impl Queue {
    /// An empty queue whose times count from `base` (`V`, say).
    pub(crate) fn at(base: i128) -> Queue {
        Queue::Narrow {
            base,
            queue: Lazy::default(),
        }
    }

    /// Queues a live entry (the caller has made `item.seq` its thread's
    /// current one), `V` being `now`; `live` tells the live entries,
    /// should the queue be repacked.
    #[inline(always)]
    pub(crate) fn push_at(&mut self, item: Item, now: i128, live: impl Fn(&Mark) -> bool) {
        if let Queue::Narrow { base, queue } = self {
            if let Some(e) = Narrow::new(item, *base) {
                queue.order_mut().push_at(e);
                return;
            }
        }
        self.push_wide(item, now, &live);
    }

    /// [`Queue::push_at`] of what a narrow queue cannot hold: into a wide
    /// queue, or a repack. Out of line, so that the narrow queue's push
    /// inlines small.
    #[inline(never)]
    fn push_wide(&mut self, item: Item, now: i128, live: &impl Fn(&Mark) -> bool) {
        match self {
            Queue::Wide(queue) => queue.order_mut().push_at(Wide::new(item)),
            Queue::Narrow { .. } => self.repack(item, now, live),
        }
    }

    /// Queues a live entry in `waiting` whatever its times, for the next
    /// pop to sort out (for tests: [`Queue::push_at`] puts it where it
    /// belongs), unless it makes the queue repack at `now`.
    #[cfg(test)]
    fn push(&mut self, item: Item, now: i128, live: impl Fn(&Mark) -> bool) {
        match self {
            Queue::Narrow { base, queue } => match Narrow::new(item, *base) {
                Some(e) => queue.push(e),
                None => self.repack(item, now, &live),
            },
            Queue::Wide(queue) => queue.push(Wide::new(item)),
        }
    }

    /// The first live entry at virtual time `now` (see [`Heaps::pop`]),
    /// removed: its thread and slot.
    #[inline]
    pub(crate) fn pop(
        &mut self,
        now: i128,
        live: impl Fn(&Mark) -> bool,
    ) -> Option<(ThreadId, Slot)> {
        match self {
            Queue::Narrow { base, queue } => queue
                .pop(narrow_now(now, *base), |e| live(&mark(e)))
                .map(|e| (e.id(), e.slot())),
            Queue::Wide(queue) => Self::pop_wide(queue, now, &live),
        }
    }

    /// [`Queue::pop`] of a wide queue, out of line (see
    /// [`Queue::push_wide`]).
    #[inline(never)]
    fn pop_wide(
        queue: &mut Lazy<Heaps<Wide>>,
        now: i128,
        live: &impl Fn(&Mark) -> bool,
    ) -> Option<(ThreadId, Slot)> {
        queue
            .pop(now, |e| live(&mark(e)))
            .map(|e| (e.id(), e.slot()))
    }

    /// Notes that a queued entry has just gone stale (see
    /// [`Lazy::forget_one`]).
    pub(crate) fn forget_one(&mut self, live: impl Fn(&Mark) -> bool) {
        match self {
            Queue::Narrow { queue, .. } => queue.forget_one(|e| live(&mark(e))),
            Queue::Wide(queue) => queue.forget_one(|e| live(&mark(e))),
        }
    }

    /// Makes room for `additional` more entries at once (an import knows
    /// how many it queues).
    pub(crate) fn reserve(&mut self, additional: usize) {
        match self {
            Queue::Narrow { queue, .. } => queue.reserve(additional),
            Queue::Wide(queue) => queue.reserve(additional),
        }
    }

    /// Entries held, live or stale.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        match self {
            Queue::Narrow { queue, .. } => queue.held(),
            Queue::Wide(queue) => queue.held(),
        }
    }

    /// Entries held known to be stale.
    #[cfg(test)]
    pub(crate) fn stale(&self) -> usize {
        match self {
            Queue::Narrow { queue, .. } => queue.stale(),
            Queue::Wide(queue) => queue.stale(),
        }
    }

    /// Builds the queue anew from its live entries and `new` (one that
    /// does not fit the narrow queue's base): narrow at base `now` if every
    /// time fits, else wide. The stale entries are dropped.
    #[cold]
    #[inline(never)]
    fn repack(&mut self, new: Item, now: i128, live: &impl Fn(&Mark) -> bool) {
        let mut all = Vec::new();
        match self {
            Queue::Narrow { base, queue } => queue.order_mut().drain(*base, live, &mut all),
            Queue::Wide(queue) => queue.order_mut().drain(0, live, &mut all),
        }
        all.push(new);
        let narrow: Option<Vec<Narrow>> = all.iter().map(|&i| Narrow::new(i, now)).collect();
        *self = match narrow {
            Some(entries) => {
                let mut heaps = Heaps::default();
                for e in entries {
                    heaps.push_at(e);
                }
                Queue::Narrow {
                    base: now,
                    queue: Lazy::new(heaps),
                }
            }
            None => {
                let mut heaps = Heaps::default();
                for i in all {
                    heaps.push_at(Wide::new(i));
                }
                Queue::Wide(Lazy::new(heaps))
            }
        };
    }
}

#[cfg(test)]
pub(crate) mod tests;
