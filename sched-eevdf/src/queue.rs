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

use alloc::vec::Vec;

use sched_api::heap::{Heap, Key, Keyed};
use sched_api::lazy::{Lazy, Order, Replace, Ticket};
use sched_api::table::Slot;
use sched_api::ThreadId;

/// What the heaps need of an entry, of either width: its order
/// ([`Keyed`]: by `(key, id)`, `key` being `ve` in `waiting`, `vd` in
/// `eligible`; ids of live entries are unique, so they never tie) and
/// liveness ([`Ticket`]).
pub(crate) trait Times: Keyed + Ticket {
    /// `V` as the entries' keys encode it.
    type Now: Copy;
    /// Whether its key is at or before `now`.
    fn due(&self, now: Self::Now) -> bool;
    /// The same entry keyed by its deadline (from `waiting` to
    /// `eligible`).
    fn to_eligible(self) -> Self;
    fn id(&self) -> ThreadId;
    /// Its `(ve, vd)`, as held in `eligible` or `waiting`, times counted
    /// from `base`.
    fn decode(&self, eligible: bool, base: i128) -> (i128, i128);
}

/// What an entry holds, whatever its width: a runnable thread's times,
/// its id and slot, and the sequence number of its entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Item {
    pub ve: i128,
    pub vd: i128,
    pub id: ThreadId,
    pub slot: Slot,
    pub seq: u64,
}

/// An entry with full 128-bit times. The other time is kept in two
/// halves, not as an `i128`, whose 16-byte alignment would pad the entry
/// from 48 bytes to 64.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wide {
    key: Key,
    /// The other time: `vd` in `waiting`, `ve` in `eligible`.
    other: [u64; 2],
    seq: u64,
}

impl Wide {
    #[inline]
    fn new(i: Item) -> Wide {
        let vd = i.vd as u128;
        Wide {
            key: Key::new(i.ve, i.id, i.slot),
            other: [(vd >> 64) as u64, vd as u64],
            seq: i.seq,
        }
    }

    #[inline]
    fn other(&self) -> i128 {
        ((u128::from(self.other[0]) << 64) | u128::from(self.other[1])) as i128
    }
}

impl Keyed for Wide {
    #[inline]
    fn before(&self, other: &Wide) -> bool {
        self.key.before(&other.key)
    }
}

impl Ticket for Wide {
    #[inline]
    fn slot(&self) -> Slot {
        self.key.slot
    }
    #[inline]
    fn seq(&self) -> u64 {
        self.seq
    }
}

impl Times for Wide {
    type Now = i128;

    #[inline]
    fn due(&self, now: i128) -> bool {
        self.key.time() <= now
    }

    #[inline]
    fn to_eligible(self) -> Wide {
        Wide::new(Item {
            ve: self.other(),
            vd: self.key.time(),
            id: self.key.id,
            slot: self.key.slot,
            seq: self.seq,
        })
    }

    fn id(&self) -> ThreadId {
        self.key.id
    }

    fn decode(&self, eligible: bool, _: i128) -> (i128, i128) {
        let (key, other) = (self.key.time(), self.other());
        if eligible {
            (other, key)
        } else {
            (key, other)
        }
    }
}

/// An entry with 64-bit times: `key` is the time's offset from the
/// queue's base, sign bit flipped (an offset of `i64::MIN` is not used, so
/// that a `V` clamped to it is before every key), and `span` is `vd - ve`,
/// which turns one key into the other.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Narrow {
    key: u64,
    id: ThreadId,
    slot: Slot,
    span: u64,
    seq: u64,
}

const FLIP: u64 = 1 << 63;

/// `t - base` encoded as a key, if it fits (a handful of instructions:
/// no 128-bit clamps or conversions).
#[inline]
fn offset(t: i128, base: i128) -> Option<u64> {
    let (d, overflow) = t.overflowing_sub(base);
    let key = d as i64 as u64 ^ FLIP;
    (!overflow && i128::from(d as i64) == d && key != 0).then_some(key)
}

/// `now - base` encoded as a key, clamped: as `due` sees it, a `V` past
/// every key that fits, or before every one, is the same as the nearest
/// end.
#[inline]
fn narrow_now(now: i128, base: i128) -> u64 {
    match offset(now, base) {
        Some(key) => key,
        None => far(now, base),
    }
}

/// [`narrow_now`] beyond the keys' range (after an import, say).
#[cold]
#[inline(never)]
fn far(now: i128, base: i128) -> u64 {
    if now > base {
        u64::MAX
    } else {
        0
    }
}

impl Narrow {
    /// The entry, if `vd` is not before `ve` and both fit 64-bit offsets
    /// from `base`.
    #[inline]
    fn new(i: Item, base: i128) -> Option<Narrow> {
        let Item {
            ve,
            vd,
            id,
            slot,
            seq,
        } = i;
        if vd < ve {
            return None;
        }
        // Exact: `vd >= ve`.
        let span = u64::try_from((vd as u128).wrapping_sub(ve as u128)).ok()?;
        let key = offset(ve, base)?;
        // `vd`'s key.
        key.checked_add(span)?;
        Some(Narrow {
            key,
            id,
            slot,
            span,
            seq,
        })
    }
}

impl Keyed for Narrow {
    #[inline]
    fn before(&self, other: &Narrow) -> bool {
        let key = |e: &Narrow| (u128::from(e.key) << 64) | u128::from(e.id);
        key(self) < key(other)
    }
}

impl Ticket for Narrow {
    #[inline]
    fn slot(&self) -> Slot {
        self.slot
    }
    #[inline]
    fn seq(&self) -> u64 {
        self.seq
    }
}

impl Times for Narrow {
    type Now = u64;

    #[inline]
    fn due(&self, now: u64) -> bool {
        self.key <= now
    }

    /// `ve + span`: `vd`'s key (it fits: `new` checked).
    #[inline]
    fn to_eligible(self) -> Narrow {
        Narrow {
            key: self.key.wrapping_add(self.span),
            ..self
        }
    }

    fn id(&self) -> ThreadId {
        self.id
    }

    fn decode(&self, eligible: bool, base: i128) -> (i128, i128) {
        let key = base + i128::from((self.key ^ FLIP) as i64);
        let span = i128::from(self.span);
        if eligible {
            (key - span, key)
        } else {
            (key, key + span)
        }
    }
}

/// The two heaps, live entries and stale.
#[derive(Clone, Debug)]
pub(crate) struct Heaps<E> {
    waiting: Heap<E>,
    eligible: Heap<E>,
    /// `eligible`'s root has been popped but is still in place, a hole:
    /// the next entry into `eligible` takes its place (one sift from the
    /// root, where a pop and a push are a sift each), and whatever else
    /// touches `eligible` first closes it ([`Heaps::close`]).
    hole: bool,
}

impl<E> Default for Heaps<E> {
    fn default() -> Self {
        Heaps {
            waiting: Heap::default(),
            eligible: Heap::default(),
            hole: false,
        }
    }
}

impl<E: Times> Heaps<E> {
    /// Queues an entry (keyed by `ve`) that the system's virtual time is
    /// at `now`: straight into `eligible` if it is eligible already, where
    /// the next pop would move it anyway (`V` never decreases), which
    /// saves that pop's move. Into `waiting` otherwise, and then every
    /// waiting entry `now` has made eligible moves, as the next pop would
    /// move it: the first in place of the root, which it leaves (one sift
    /// where a pop and a push are two). (Only for a live entry: see
    /// [`Lazy::order_mut`].)
    #[inline(always)]
    fn push_at(&mut self, e: E, now: E::Now) {
        if e.due(now) {
            self.put_eligible(e.to_eligible());
            return;
        }
        match self.waiting.peek() {
            Some(first) if first.due(now) => {
                let first = *first;
                self.waiting.replace_first(e);
                self.put_eligible(first.to_eligible());
                self.settle(now);
            }
            _ => self.waiting.push(e),
        }
    }

    /// Puts an entry keyed by deadline into `eligible`: in the hole if
    /// there is one.
    #[inline(always)]
    fn put_eligible(&mut self, e: E) {
        if self.hole {
            self.hole = false;
            self.eligible.replace_first(e);
        } else {
            self.eligible.push(e);
        }
    }

    /// Moves every waiting entry eligible at `now` to `eligible`.
    #[inline]
    fn settle(&mut self, now: E::Now) {
        while let Some(e) = self.waiting.peek() {
            if !e.due(now) {
                break;
            }
            if let Some(e) = self.waiting.pop_min() {
                self.put_eligible(e.to_eligible());
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

    /// Empties the heaps, adding what each
    /// entry `keep` accepts to `out` (times counted from `base`).
    fn drain(&mut self, base: i128, keep: &impl Fn(&Mark) -> bool, out: &mut Vec<Item>) {
        self.close();
        for (heap, eligible) in [(&mut self.waiting, false), (&mut self.eligible, true)] {
            heap.retain(|e| {
                if keep(&mark(e)) {
                    let (ve, vd) = e.decode(eligible, base);
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
    /// virtual time `now`, removed (from `eligible`, by leaving a hole;
    /// keyed by its deadline); if none is eligible (every eligible thread
    /// runs on another core, or rounding), the one that becomes eligible
    /// first, so that no core idles while a thread waits.
    #[inline]
    fn pop(&mut self, now: E::Now) -> Option<E> {
        self.settle(now);
        self.close();
        match self.eligible.peek() {
            Some(&e) => {
                self.hole = true;
                Some(e)
            }
            None => self.waiting.pop_min(),
        }
    }

    fn len(&self) -> usize {
        self.waiting.len() + self.eligible.len() - usize::from(self.hole)
    }

    fn retain(&mut self, mut keep: impl FnMut(&E) -> bool) {
        self.close();
        self.waiting.retain(&mut keep);
        self.eligible.retain(keep);
    }

    /// Room in both heaps: which an entry goes to depends on the time.
    fn reserve(&mut self, additional: usize) {
        self.waiting.reserve(additional);
        self.eligible.reserve(additional);
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

/// The run queue: the two heaps with lazy deletion, narrow while every
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
                queue.order_mut().push_at(e, narrow_now(now, *base));
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
            Queue::Wide(queue) => queue.order_mut().push_at(Wide::new(item), now),
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
                .map(|e| (e.id, e.slot)),
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
            .map(|e| (e.key.id, e.key.slot))
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
                    heaps.push_at(e, narrow_now(now, now));
                }
                Queue::Narrow {
                    base: now,
                    queue: Lazy::new(heaps),
                }
            }
            None => {
                let mut heaps = Heaps::default();
                for i in all {
                    heaps.push_at(Wide::new(i), now);
                }
                Queue::Wide(Lazy::new(heaps))
            }
        };
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use proptest::prelude::*;

    /// A thread's entry (its slot is its id, here).
    fn item(ve: i128, vd: i128, id: ThreadId, seq: u64) -> Item {
        Item {
            ve,
            vd,
            id,
            slot: id,
            seq,
        }
    }

    #[test]
    fn entries_are_32_and_48_bytes() {
        assert_eq!(core::mem::size_of::<Narrow>(), 32);
        assert_eq!(core::mem::size_of::<Wide>(), 48);
    }

    #[test]
    fn a_queue_goes_wide_when_times_are_too_far_apart() {
        let mut q = Queue::default();
        q.push_at(item(0, 10, 1, 1), 0, |_| true);
        assert!(matches!(q, Queue::Narrow { .. }));
        q.push_at(item(1 << 70, 1 << 71, 2, 2), 0, |_| true);
        assert!(matches!(q, Queue::Wide(_)));
        assert_eq!(q.pop(0, |_| true), Some((1, 1)));
        assert_eq!(q.pop(0, |_| true), Some((2, 2)));
        assert_eq!(q.pop(0, |_| true), None);
    }

    /// A time about `at`: at it, a little off, or at the edges of a
    /// 64-bit offset (`±2^63`, one either side) or of `i128`.
    pub(crate) fn near() -> impl Strategy<Value = i128> {
        let edge = 1i128 << 63;
        prop_oneof![
            3 => -40i128..40,
            1 => (-3i128..3).prop_map(move |k| edge + k),
            1 => (-3i128..3).prop_map(move |k| -edge + k),
            1 => (-3i128..3).prop_map(move |k| 2 * edge + k),
            1 => (-3i128..3).prop_map(move |k| -2 * edge + k),
            2 => any::<i64>().prop_map(i128::from),
            1 => Just(i128::MAX),
            1 => Just(i128::MIN),
            1 => any::<i128>(),
        ]
    }

    /// A request's length: short, or about `2^63` and `2^64`, or any.
    fn span() -> impl Strategy<Value = i128> {
        let edge = 1i128 << 63;
        prop_oneof![
            4 => 0i128..40,
            1 => (-3i128..3).prop_map(move |k| edge + k),
            1 => (-3i128..3).prop_map(move |k| 2 * edge + k),
            1 => any::<u64>().prop_map(i128::from),
            1 => 0..i128::MAX,
        ]
    }

    #[derive(Clone, Debug)]
    enum QOp {
        /// Queue `id` (again, its old entry going stale) at `ve = V + lag`,
        /// `vd = ve + span` (saturating).
        Push(ThreadId, i128, i128),
        /// `id` leaves the queue (sleeps, or is removed).
        Leave(ThreadId),
        /// `id`, if queued, queued again this many times at the same times
        /// (enough stale entries for the lazy deletion to drop them all).
        Churn(ThreadId, usize),
        /// `V` moves on by this much (saturating).
        Advance(i128),
        Pop,
    }

    fn qop() -> impl Strategy<Value = QOp> {
        prop_oneof![
            4 => (0u32..12, near(), span()).prop_map(|(id, lag, span)| QOp::Push(id, lag, span)),
            1 => (0u32..12).prop_map(QOp::Leave),
            1 => (0u32..12, 1usize..50).prop_map(|(id, n)| QOp::Churn(id, n)),
            2 => prop_oneof![0i128..40, near().prop_map(|t| t.saturating_abs())].prop_map(QOp::Advance),
            4 => Just(QOp::Pop),
        ]
    }

    proptest! {
        /// Used as the policy uses it (`push_at` at a `V` that never goes
        /// back; a requeued thread's old entry reported stale first),
        /// from any base, with times at the edges of the narrow entries'
        /// offsets and of `i128`: every pop is what a scan of the live
        /// entries picks, ties by id.
        #[test]
        fn pops_what_a_scan_would_at_the_edges(
            base in near(),
            // Or every lag, request and step of `V` cut to under 2^62: the
            // queue stays narrow longer, repacking as `V` moves on.
            tame in any::<bool>(),
            ops in proptest::collection::vec(qop(), 1..120),
        ) {
            let cut = |t: i128| if tame { t % (1 << 62) } else { t };
            let mut q = Queue::at(base);
            let mut now = base;
            // id -> (ve, vd, seq) of its live entry.
            let mut model: BTreeMap<ThreadId, (i128, i128, u64)> = BTreeMap::new();
            let mut seq = 0u64;
            for op in ops {
                match op {
                    QOp::Push(id, lag, span) => {
                        seq += 1;
                        let ve = now.saturating_add(cut(lag));
                        let vd = ve.saturating_add(cut(span));
                        if model.insert(id, (ve, vd, seq)).is_some() {
                            let m = model.clone();
                            q.forget_one(|e: &Mark| m.get(&e.0).is_some_and(|&(_, _, s)| s == e.1));
                        }
                        let m = model.clone();
                        q.push_at(item(ve, vd, id, seq), now, |e: &Mark| {
                            m.get(&e.0).is_some_and(|&(_, _, s)| s == e.1)
                        });
                    }
                    QOp::Leave(id) => {
                        if model.remove(&id).is_some() {
                            let m = model.clone();
                            q.forget_one(|e: &Mark| m.get(&e.0).is_some_and(|&(_, _, s)| s == e.1));
                        }
                    }
                    QOp::Churn(id, n) => {
                        let Some(&(ve, vd, _)) = model.get(&id) else { continue };
                        for _ in 0..n {
                            seq += 1;
                            model.insert(id, (ve, vd, seq));
                            let m = model.clone();
                            let live = |e: &Mark| m.get(&e.0).is_some_and(|&(_, _, s)| s == e.1);
                            q.forget_one(live);
                            q.push_at(item(ve, vd, id, seq), now, live);
                        }
                    }
                    QOp::Advance(dt) => now = now.saturating_add(cut(dt)),
                    QOp::Pop => {
                        let want = model
                            .iter()
                            .filter(|(_, &(ve, _, _))| ve <= now)
                            .map(|(&id, &(_, vd, _))| (vd, id))
                            .min()
                            .or_else(|| model.iter().map(|(&id, &(ve, _, _))| (ve, id)).min())
                            .map(|(_, id)| id);
                        let m = model.clone();
                        let got = q
                            .pop(now, |e: &Mark| m.get(&e.0).is_some_and(|&(_, _, s)| s == e.1))
                            .map(|(id, _)| id);
                        prop_assert_eq!(got, want, "at V = {}", now);
                        if let Some(id) = got {
                            model.remove(&id);
                        }
                    }
                }
                // The lazy deletion's count is exact (a repack drops every
                // stale entry and counts none), so it rebuilds when it should.
                prop_assert_eq!(q.held() - q.stale(), model.len(), "live entries held");
            }
        }
    }

    proptest! {
        /// Against a plain scan: the earliest deadline among the eligible,
        /// else the earliest eligible time; stale entries never come out.
        /// Times are scaled so that some runs stay narrow, some repack at a
        /// new base and some go wide.
        #[test]
        fn pops_what_a_scan_would(
            scale in prop_oneof![Just(1i128), Just(1i128 << 56), Just(1i128 << 57), Just(1i128 << 62), Just(1i128 << 100)],
            // Times about `V` as it moves (a narrow queue repacks at a new
            // base), or about 0.
            relative in any::<bool>(),
            ops in proptest::collection::vec((0u32..16, -50i128..50, 0i128..40, any::<bool>()), 1..200),
        ) {
            let mut q = Queue::default();
            // id -> (ve, vd, seq) of its live entry.
            let mut model: BTreeMap<ThreadId, (i128, i128, u64)> = BTreeMap::new();
            let mut seq = 0u64;
            let mut now = -60 * scale;
            for (id, ve, d, pop) in ops {
                now += scale;
                let (ve, d) = (ve * scale + if relative { now } else { 0 }, d * scale);
                let m = model.clone();
                // Slots are ids here.
                let live = |e: &Mark| m.get(&e.0).is_some_and(|&(_, _, s)| s == e.1);
                if pop {
                    let want = model
                        .iter()
                        .filter(|(_, &(ve, _, _))| ve <= now)
                        .map(|(&id, &(_, vd, _))| (vd, id))
                        .min()
                        .map(|(_, id)| id)
                        .or_else(|| model.iter().map(|(&id, &(ve, _, _))| (ve, id)).min().map(|(_, id)| id));
                    let got = q.pop(now, live).map(|(id, _)| id);
                    prop_assert_eq!(got, want);
                    if let Some(id) = got {
                        model.remove(&id);
                    }
                } else {
                    seq += 1;
                    let old = model.insert(id, (ve, ve + d, seq));
                    let m = model.clone();
                    let live = |e: &Mark| m.get(&e.0).is_some_and(|&(_, _, s)| s == e.1);
                    if old.is_some() {
                        q.forget_one(live);
                    }
                    // Either way in: straight to where it belongs now, or
                    // to `waiting` for the next pop to sort out.
                    if seq.is_multiple_of(2) {
                        q.push_at(item(ve, ve + d, id, seq), now, live);
                    } else {
                        q.push(item(ve, ve + d, id, seq), now, live);
                    }
                }
                let ids: Vec<_> = model.keys().collect();
                prop_assert!(q.held() <= 2 * ids.len() + 34, "{} held for {} live", q.held(), ids.len());
            }
        }
    }
}
