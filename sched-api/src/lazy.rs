//! A run queue with lazy deletion, and the thread-table side of it: what
//! stride, round robin and EEVDF share, written once.
//!
//! Each of those policies keeps its runnable threads (those not running)
//! in an order it picks from: a heap by pass (stride), a FIFO (round
//! robin), a heap by deadline and one by eligible time (EEVDF). None of those
//! orders can remove an arbitrary entry cheaply, so a thread leaving the
//! queue other than by a pop (sleep, removal, a weight change that requeues
//! it) leaves its entry behind, *stale*. [`Lazy`] skips stale entries when
//! they come out and, when they outnumber the live ones, drops them all at
//! once; the order underneath ([`Order`]) only has to push, pop and
//! filter. So the queue holds at most about twice the most threads ever
//! queued at once, and each stale entry costs one pop or one share of a
//! rebuild, once.
//!
//! Liveness is the owner's: an entry is live iff its thread's record
//! ([`Queued`]) still carries the entry's sequence number (unique for
//! every push) and the thread is runnable ([`live`]). The owner keeps
//! exactly one live entry per runnable thread, so the live entries in the
//! order's order are exactly what an ordered set of runnable threads would
//! hold.
//!
//! [`snapshot_order`] is the other walk the policies shared: every thread
//! in the order a [`crate::Snapshot`] lists them.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::table::{Running, Slot, Table};
use crate::{Snapshot, ThreadId, ThreadRecord, ThreadState};

/// An order of queue entries, live or stale: what a policy picks from.
pub trait Order {
    type Entry: Copy;
    /// What a pop depends on besides the entries (EEVDF: the virtual time
    /// that decides who is eligible; `()` for the others).
    type At: Copy;

    fn push(&mut self, e: Self::Entry);

    /// Removes and returns the entry that comes first at `at`, live or not.
    fn pop(&mut self, at: Self::At) -> Option<Self::Entry>;

    /// Entries held, live or stale.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps only the entries `keep` accepts, in order.
    fn retain(&mut self, keep: impl FnMut(&Self::Entry) -> bool);

    /// Makes room for `additional` more entries at once (an import knows
    /// how many it queues).
    fn reserve(&mut self, additional: usize);
}

/// First in, first out (round robin).
impl<E: Copy> Order for VecDeque<E> {
    type Entry = E;
    type At = ();

    #[inline]
    fn push(&mut self, e: E) {
        self.push_back(e);
    }

    #[inline]
    fn pop(&mut self, _: ()) -> Option<E> {
        self.pop_front()
    }

    fn len(&self) -> usize {
        VecDeque::len(self)
    }

    fn retain(&mut self, keep: impl FnMut(&E) -> bool) {
        VecDeque::retain(self, keep);
    }

    fn reserve(&mut self, additional: usize) {
        VecDeque::reserve(self, additional);
    }
}

/// An [`Order`] whose first entry can be read in place and replaced (a
/// heap's root: one sift instead of a pop and a push).
pub trait Replace: Order<At = ()> {
    /// The entry that comes first, live or not.
    fn first(&self) -> Option<&Self::Entry>;

    /// Puts `e` in the first entry's place, and where it belongs from
    /// there.
    fn replace_first(&mut self, e: Self::Entry);
}

/// Stale entries tolerated beyond the live count before a rebuild (keeps
/// small queues from rebuilding at every sleep).
pub const SLACK: usize = 32;

/// An [`Order`] with lazy deletion; see the module docs.
#[derive(Clone, Debug, Default)]
pub struct Lazy<O> {
    order: O,
    /// Entries in `order` known to be stale.
    stale: usize,
}

impl<O: Order> Lazy<O> {
    pub fn new(order: O) -> Self {
        Lazy { order, stale: 0 }
    }

    /// Queues a live entry (the caller has made it its thread's current
    /// one; an older entry of that thread, if queued, it reports with
    /// [`Lazy::forget_one`]).
    #[inline]
    pub fn push(&mut self, e: O::Entry) {
        self.order.push(e);
    }

    /// Removes and returns the first live entry at `at`, dropping the
    /// stale ones in front of it.
    #[inline]
    pub fn pop(&mut self, at: O::At, live: impl Fn(&O::Entry) -> bool) -> Option<O::Entry> {
        loop {
            let e = self.order.pop(at)?;
            if live(&e) {
                return Some(e);
            }
            self.stale -= 1;
        }
    }

    /// Removes and returns the first entry at `at`, live or stale, for an
    /// owner that judges it itself (round robin: with the same look at
    /// the thread's record that starts it) and reports a stale one with
    /// [`Lazy::popped_stale`].
    #[inline]
    pub fn pop_any(&mut self, at: O::At) -> Option<O::Entry> {
        self.order.pop(at)
    }

    /// Notes that the entry [`Lazy::pop_any`] returned was stale.
    #[inline]
    pub fn popped_stale(&mut self) {
        self.stale -= 1;
    }

    /// The first live entry, dropping the stale ones in front of it but
    /// leaving it in place, counted stale: the caller is about to make it
    /// so (its thread starts running). The thread's next entry can then
    /// take its place with [`Lazy::push_replacing`], a decision's pop and
    /// push becoming one sift.
    #[inline]
    pub fn take_first(&mut self, live: impl Fn(&O::Entry) -> bool) -> Option<O::Entry>
    where
        O: Replace,
    {
        loop {
            let e = *self.order.first()?;
            if live(&e) {
                self.stale += 1;
                return Some(e);
            }
            self.drop_first();
        }
    }

    /// Drops the first entry, stale. Out of line: a decision rarely finds
    /// one, and the pop inlined into it (a whole sift) kept the usual path
    /// short of registers (stride's pick reloaded its own state from the
    /// stack).
    #[cold]
    #[inline(never)]
    fn drop_first(&mut self)
    where
        O: Replace,
    {
        self.order.pop(());
        self.stale -= 1;
    }

    /// Queues a live entry: in place of the first one if `old` says that
    /// is the (stale) entry [`Lazy::take_first`] left, else as
    /// [`Lazy::push`].
    #[inline]
    pub fn push_replacing(&mut self, e: O::Entry, old: impl Fn(&O::Entry) -> bool)
    where
        O: Replace,
    {
        if self.order.first().is_some_and(old) {
            self.order.replace_first(e);
            self.stale -= 1;
        } else {
            self.order.push(e);
        }
    }

    /// Notes that one live entry has just become stale (its thread left
    /// the queue, or was pushed again); drops every stale entry once they
    /// outnumber the live ones by more than [`SLACK`].
    pub fn forget_one(&mut self, live: impl Fn(&O::Entry) -> bool) {
        self.stale += 1;
        if self.stale > self.order.len() - self.stale + SLACK {
            self.order.retain(|e| live(e));
            self.stale = 0;
        }
    }

    /// Entries held, live or stale.
    pub fn held(&self) -> usize {
        self.order.len()
    }

    /// Entries held and known to be stale.
    pub fn stale(&self) -> usize {
        self.stale
    }

    /// The order underneath, for what only it can do (a FIFO's
    /// `push_front`). Whatever is done must leave `stale` true: add live
    /// entries only.
    pub fn order_mut(&mut self) -> &mut O {
        &mut self.order
    }

    /// Makes room for `additional` more entries at once.
    pub fn reserve(&mut self, additional: usize) {
        self.order.reserve(additional);
    }

    pub fn order(&self) -> &O {
        &self.order
    }
}

/// A queue entry: the slot of its thread's record, and the sequence number
/// it was pushed under.
pub trait Ticket {
    fn slot(&self) -> Slot;
    fn seq(&self) -> u64;
}

/// A bare `(slot, sequence number)`: for an owner whose entries come in
/// more than one type (EEVDF's two widths) to judge them all by one
/// [`live`].
impl Ticket for (Slot, u64) {
    #[inline]
    fn slot(&self) -> Slot {
        self.0
    }
    #[inline]
    fn seq(&self) -> u64 {
        self.1
    }
}

/// A policy's thread record, as the queue sees it.
pub trait Queued {
    /// The sequence number of the thread's current queue entry (meaningful
    /// while runnable).
    fn seq(&self) -> u64;
    fn state(&self) -> ThreadState;
}

/// Whether an entry is its thread's current one: the slot still holds a
/// record, with the entry's sequence number, of a runnable thread.
#[inline]
pub fn live<T: Queued, E: Ticket>(threads: &Table<T>) -> impl Fn(&E) -> bool + '_ {
    |e| {
        threads
            .at(e.slot())
            .is_some_and(|(_, t)| t.seq() == e.seq() && t.state() == ThreadState::Runnable)
    }
}

/// Every thread's id and record in the order a snapshot lists them:
/// runnable threads by `key` (the policy's order of preference; ties by
/// id), then running ones by core, then sleeping ones by id. The records
/// come from the walk itself (and the running threads' slots): listed by
/// id, each was looked up again.
pub fn snapshot_order<'a, T: Queued, K: Ord + 'a>(
    threads: &'a Table<T>,
    running: &'a Running,
    key: impl Fn(&T) -> K,
) -> impl Iterator<Item = (ThreadId, &'a T)> + 'a {
    let mut runnable: Vec<(K, ThreadId, &T)> = Vec::with_capacity(threads.len());
    let mut sleeping: Vec<(ThreadId, &T)> = Vec::new();
    for (id, t) in threads.iter() {
        match t.state() {
            ThreadState::Runnable => runnable.push((key(t), id, t)),
            ThreadState::Sleeping => sleeping.push((id, t)),
            ThreadState::Running(_) => {}
        }
    }
    runnable.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    sleeping.sort_unstable_by_key(|&(id, _)| id);
    let running = running.all().filter_map(|(_, slot)| threads.at(slot));
    runnable
        .into_iter()
        .map(|(_, id, t)| (id, t))
        .chain(running)
        .chain(sleeping)
}

/// The snapshot of a policy keeping its threads in `threads`: at
/// `global_vtime`, each thread's `record` in [`snapshot_order`] by `key`.
pub fn snapshot<T: Queued, K: Ord>(
    threads: &Table<T>,
    running: &Running,
    key: impl Fn(&T) -> K,
    global_vtime: i128,
    record: impl Fn(ThreadId, &T) -> ThreadRecord,
) -> Snapshot {
    Snapshot::with_records(
        global_vtime,
        threads.len(),
        snapshot_order(threads, running, key).map(|(id, t)| record(id, t)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::{BTreeMap, BTreeSet, BinaryHeap};
    use core::cmp::Reverse;
    use proptest::prelude::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct E {
        key: i64,
        slot: Slot,
        seq: u64,
    }

    impl Ticket for E {
        fn slot(&self) -> Slot {
            self.slot
        }
        fn seq(&self) -> u64 {
            self.seq
        }
    }

    #[derive(Clone, Copy, Debug)]
    struct T {
        seq: u64,
        state: ThreadState,
    }

    impl Queued for T {
        fn seq(&self) -> u64 {
            self.seq
        }
        fn state(&self) -> ThreadState {
            self.state
        }
    }

    /// A min-heap by `(key, slot)`: an order that is not a FIFO.
    #[derive(Default)]
    struct Heap(BinaryHeap<Reverse<E>>);

    impl Order for Heap {
        type Entry = E;
        type At = ();
        fn push(&mut self, e: E) {
            self.0.push(Reverse(e));
        }
        fn pop(&mut self, _: ()) -> Option<E> {
            self.0.pop().map(|Reverse(e)| e)
        }
        fn len(&self) -> usize {
            self.0.len()
        }
        fn retain(&mut self, mut keep: impl FnMut(&E) -> bool) {
            self.0.retain(|Reverse(e)| keep(e));
        }
        fn reserve(&mut self, additional: usize) {
            self.0.reserve(additional);
        }
    }

    /// A model owner, as the policies are: a table of records (ids are
    /// slots here) and a queue of their entries.
    struct Owner<O> {
        queue: Lazy<O>,
        threads: Table<T>,
        next_seq: u64,
    }

    impl<O: Order<Entry = E, At = ()>> Owner<O> {
        fn new(order: O) -> Self {
            Owner {
                queue: Lazy::new(order),
                threads: Table::new(),
                next_seq: 0,
            }
        }

        fn queued(&self, id: u32) -> bool {
            self.threads
                .get(id)
                .is_some_and(|t| t.state == ThreadState::Runnable)
        }

        /// Queues `id` at `key` (moving it if queued).
        fn push(&mut self, id: u32, key: i64) {
            let requeue = self.queued(id);
            let seq = self.next_seq;
            self.next_seq += 1;
            let t = T {
                seq,
                state: ThreadState::Runnable,
            };
            let slot = match self.threads.find_mut(id) {
                Some((slot, rec)) => {
                    *rec = t;
                    slot
                }
                None => self.threads.insert(id, t).unwrap_or(0),
            };
            self.queue.push(E { key, slot, seq });
            if requeue {
                self.queue.forget_one(live(&self.threads));
            }
        }

        /// `id` leaves the queue: sleeps (kept in the table) or is removed.
        fn leave(&mut self, id: u32, remove: bool) {
            if !self.queued(id) {
                return;
            }
            if remove {
                self.threads.remove(id);
            } else if let Some(t) = self.threads.get_mut(id) {
                t.state = ThreadState::Sleeping;
            }
            self.queue.forget_one(live(&self.threads));
        }

        fn pop(&mut self) -> Option<(i64, u32)> {
            let e = self.queue.pop((), live(&self.threads))?;
            let (id, t) = self.threads.at_mut(e.slot)?;
            t.state = ThreadState::Running(0);
            Some((e.key, id))
        }

        /// The invariants every step keeps.
        fn check(&self, live_now: usize, peak: usize) -> Result<(), TestCaseError> {
            prop_assert_eq!(self.queue.held() - self.queue.stale(), live_now);
            prop_assert!(self.queue.stale() <= peak + SLACK);
            Ok(())
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Push(u32, i8),
        Sleep(u32),
        Remove(u32),
        Pop,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u32..40, any::<i8>()).prop_map(|(i, k)| Op::Push(i, k)),
            (0u32..40).prop_map(Op::Sleep),
            (0u32..40).prop_map(Op::Remove),
            Just(Op::Pop),
        ]
    }

    proptest! {
        /// Over a heap: pops come out exactly as from an ordered set of
        /// (key, slot), stale entries never do, and they never outnumber
        /// the most live entries by more than the slack.
        #[test]
        fn over_a_heap_pops_like_an_ordered_set(ops in proptest::collection::vec(op(), 1..400)) {
            let mut o = Owner::new(Heap::default());
            // (key, slot) of each queued thread, with the thread's id.
            let mut model: BTreeSet<(i64, Slot, u32)> = BTreeSet::new();
            let mut peak = 0;
            for op in ops {
                match op {
                    Op::Push(id, k) => {
                        model.retain(|&(_, _, i)| i != id);
                        o.push(id, i64::from(k));
                        let slot = o.threads.slot(id).unwrap();
                        model.insert((i64::from(k), slot, id));
                    }
                    Op::Sleep(id) | Op::Remove(id) => {
                        model.retain(|&(_, _, i)| i != id);
                        o.leave(id, matches!(op, Op::Remove(_)));
                    }
                    Op::Pop => {
                        let want = model.pop_first().map(|(k, _, id)| (k, id));
                        prop_assert_eq!(o.pop(), want);
                    }
                }
                peak = peak.max(model.len());
                o.check(model.len(), peak)?;
            }
            while let Some((k, _, id)) = model.pop_first() {
                prop_assert_eq!(o.pop(), Some((k, id)));
            }
            prop_assert_eq!(o.pop(), None);
            prop_assert_eq!(o.queue.held(), 0);
        }

        /// Over a FIFO: pops come out in arrival order, skipping whoever
        /// left, with the same bound on stale entries.
        #[test]
        fn over_a_fifo_pops_in_arrival_order(ops in proptest::collection::vec(op(), 1..400)) {
            let mut o = Owner::new(VecDeque::new());
            // Arrival number -> id, of each queued thread.
            let mut model: BTreeMap<u64, u32> = BTreeMap::new();
            let mut peak = 0;
            for op in ops {
                match op {
                    Op::Push(id, k) => {
                        model.retain(|_, i| *i != id);
                        model.insert(o.next_seq, id);
                        o.push(id, i64::from(k));
                    }
                    Op::Sleep(id) | Op::Remove(id) => {
                        model.retain(|_, i| *i != id);
                        o.leave(id, matches!(op, Op::Remove(_)));
                    }
                    Op::Pop => {
                        let want = model.pop_first().map(|(_, id)| id);
                        prop_assert_eq!(o.pop().map(|(_, id)| id), want);
                    }
                }
                peak = peak.max(model.len());
                o.check(model.len(), peak)?;
            }
            while let Some((_, id)) = model.pop_first() {
                prop_assert_eq!(o.pop().map(|(_, id)| id), Some(id));
            }
            prop_assert_eq!(o.pop(), None);
        }

        /// The snapshot walk lists every thread once: runnable by key,
        /// then running by core, then sleeping by id.
        #[test]
        fn snapshot_order_is_runnable_running_sleeping(
            threads in proptest::collection::btree_map(0u32..60, (0u8..3, 0u64..8), 0..40),
        ) {
            let mut table = Table::new();
            let mut running = Running::default();
            let mut core = 0;
            // Inserted from the largest id down: the table's slots are not
            // in id order, so ties and sleepers must be sorted by id.
            for (&id, &(kind, seq)) in threads.iter().rev() {
                let state = match kind {
                    0 => ThreadState::Runnable,
                    1 => ThreadState::Running(core),
                    _ => ThreadState::Sleeping,
                };
                let slot = table.insert(id, T { seq, state }).unwrap();
                if kind == 1 {
                    running.set(core, Some((id, slot)));
                    core += 1;
                }
            }
            let got: Vec<u32> = snapshot_order(&table, &running, |t| t.seq).map(|(id, _)| id).collect();
            let mut runnable: Vec<(u64, u32)> = threads
                .iter()
                .filter(|(_, &(k, _))| k == 0)
                .map(|(&id, &(_, seq))| (seq, id))
                .collect();
            runnable.sort_unstable();
            let of = |kind: u8| threads.iter().filter(move |(_, &(k, _))| k == kind).map(|(&id, _)| id);
            // Running threads were given cores from the largest id down.
            let want: Vec<u32> = runnable.into_iter().map(|(_, id)| id).chain(of(1).rev()).chain(of(2)).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn many_leaves_trigger_a_rebuild() {
        let mut o = Owner::new(VecDeque::new());
        for id in 0..100 {
            o.push(id, 0);
        }
        for id in 0..90 {
            o.leave(id, id % 2 == 0);
        }
        // Rebuilt once the stale ones outnumbered the live ones by the slack.
        assert!(o.queue.held() < 100);
        assert_eq!(o.queue.held() - o.queue.stale(), 10);
        assert_eq!(o.pop(), Some((0, 90)));
    }
}
