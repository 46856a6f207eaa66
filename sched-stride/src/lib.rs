//! Stride scheduling (Waldspurger & Weihl, MIT TM-528, 1995), on P cores.
//!
//! Each thread holds tickets; its *stride* is `STRIDE1 / tickets` and its
//! *pass* advances by its stride for every quantum it runs (by
//! `stride * ran / quantum` for part of one). The runnable thread with the
//! smallest pass runs next. Here the pass is the thread's virtual time from
//! [`sched_api::Ledger`] (`STRIDE1 = VT_SCALE * quantum`), and the global
//! pass is the ledger's virtual time, advanced by the global stride
//! (`STRIDE1 / global_tickets`) as the paper's dynamic section prescribes.
//!
//! - Decisions are O(log n): runnable threads that are not running sit in
//!   a queue ordered by `(pass, id)` (a heap, see [`queue`]); a running
//!   thread is not in it, so another core can never pick it and nothing is
//!   scanned. Records are found by id through a hash map (see [`table`]),
//!   and the thread on each core in a vector indexed by core, so a pick
//!   and a charge allocate nothing and touch few cache lines even with
//!   thousands of threads.
//! - Leaving and rejoining (sleep/wake, and blocking in `charge`) keep the
//!   *remaining* pass: `remain = pass - global_pass` on leaving,
//!   `pass = global_pass + remain` on joining, so a thread neither gains
//!   nor loses by sleeping.
//! - A ticket change rescales the remaining pass by `old / new` tickets
//!   (the paper's rule), keeping the service owed.
//! - On P cores each core takes the smallest pass not running elsewhere,
//!   and passes advance with weights made feasible: a thread asking for
//!   more than one core is capped at exactly one, the others share the
//!   rest by their tickets. The ledger keeps the cap in O(log n + P) per
//!   membership change.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod queue;

use sched_api::{
    check_core, check_cores, scale_signed, CoreId, Ledger, Params, Policy, PolicyInfo, PolicyKind,
    RunEnd, SchedError, Snapshot, ThreadId, ThreadRecord, ThreadState, VtMemo,
};

use queue::{Entry, Queue};
use sched_api::lazy::{live, snapshot, Queued};
use sched_api::table::{Running, Slot, Table};

#[derive(Clone, Copy, Debug)]
struct Thread {
    weight: u32,
    state: ThreadState,
    service_ns: u64,
    /// Pass while runnable or running; the remaining pass (`pass -
    /// global_pass` when it left) while sleeping.
    pass: i128,
    /// The sequence number of its current queue entry (while runnable).
    seq: u64,
    /// Its last stride (the pass of its last run), see [`Ledger::vt_memo`].
    memo: VtMemo,
}

/// This policy's name.
pub const KIND: PolicyKind = PolicyKind::new("stride");

/// Stride's identity and capabilities, for `sched-registry`.
pub const INFO: PolicyInfo = PolicyInfo {
    kind: KIND,
    description: "stride scheduling: the smallest pass runs next (Waldspurger & Weihl 1995)",
    entitlement: sched_api::Entitlement::Tickets,
    randomized: false,
    currencies: false,
    ticket_transfers: false,
    build: |p: &Params| {
        Ok(alloc::boxed::Box::new(Stride::try_new(
            p.quantum_ns,
            p.cores,
        )?))
    },
};

/// A stride scheduler.
#[derive(Clone, Debug)]
pub struct Stride {
    quantum_ns: u64,
    threads: Table<Thread>,
    /// Runnable threads that are not running, by (pass, id).
    queue: Queue,
    /// The sequence number of the next queue entry.
    next_seq: u64,
    /// Active weights (feasible on P cores) and the global pass.
    ledger: Ledger,
    /// Who runs on each core.
    running: Running,
}

impl Queued for Thread {
    #[inline]
    fn seq(&self) -> u64 {
        self.seq
    }
    #[inline]
    fn state(&self) -> ThreadState {
        self.state
    }
}

impl Stride {
    /// A stride scheduler. Never fails: a quantum of 0 is taken as 1 ns and
    /// a core count out of range as the nearest valid one; use
    /// [`Stride::try_new`] to have them refused.
    pub fn new(quantum_ns: u64, cores: usize) -> Self {
        Stride {
            quantum_ns: quantum_ns.max(1),
            threads: Table::new(),
            queue: Queue::default(),
            next_seq: 0,
            ledger: Ledger::new(cores.clamp(1, sched_api::MAX_CORES), 1),
            running: Running::default(),
        }
    }

    /// A stride scheduler; `BadQuantum`/`BadCores` for a quantum of 0 or a
    /// core count out of range.
    pub fn try_new(quantum_ns: u64, cores: usize) -> Result<Self, SchedError> {
        if quantum_ns == 0 {
            return Err(SchedError::BadQuantum);
        }
        Ok(Stride::new(quantum_ns, check_cores(cores)?))
    }

    /// A stride scheduler holding `snapshot`'s threads.
    pub fn from_snapshot(
        quantum_ns: u64,
        cores: usize,
        snapshot: Snapshot,
    ) -> Result<Self, SchedError> {
        let mut s = Stride::try_new(quantum_ns, cores)?;
        s.import(snapshot)?;
        Ok(s)
    }

    fn global(&self) -> i128 {
        self.ledger.now()
    }

    /// Queues the (runnable) thread in `slot` at its pass, under a fresh
    /// sequence number: any older entry of it becomes stale.
    fn enqueue(&mut self, slot: Slot) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some((id, t)) = self.threads.at_mut(slot) {
            t.seq = seq;
            self.queue.push(Entry::new(t.pass, id, slot, seq));
        }
    }

    /// The record of thread `id`, `t`.
    fn record_of(&self, id: ThreadId, t: &Thread) -> ThreadRecord {
        let (w, state, service, global) = (t.weight, t.state, t.service_ns, self.global());
        ThreadRecord::keeping_lag(id, w, state, service, t.pass, global)
    }

    /// Notes that a thread's queue entry has just become stale.
    fn dequeued(&mut self) {
        self.queue.forget_one(live(&self.threads));
    }
}

impl Policy for Stride {
    fn kind(&self) -> PolicyKind {
        KIND
    }

    fn add(&mut self, id: ThreadId, weight: u32) -> Result<(), SchedError> {
        if weight == 0 {
            return Err(SchedError::ZeroWeight);
        }
        let thread = Thread {
            weight,
            state: ThreadState::Runnable,
            service_ns: 0,
            pass: self.global(),
            seq: 0,
            memo: VtMemo::default(),
        };
        let slot = self
            .threads
            .insert(id, thread)
            .map_err(|_| SchedError::DuplicateThread)?;
        self.enqueue(slot);
        self.ledger.insert(id, u64::from(weight));
        Ok(())
    }

    fn remove(&mut self, id: ThreadId) -> Result<ThreadRecord, SchedError> {
        let record = self.record(id).ok_or(SchedError::UnknownThread)?;
        let t = self.threads.remove(id).ok_or(SchedError::UnknownThread)?;
        match t.state {
            ThreadState::Runnable => self.dequeued(),
            ThreadState::Running(core) => self.running.set(core, None),
            ThreadState::Sleeping => {}
        }
        if t.state != ThreadState::Sleeping {
            self.ledger.remove(id, u64::from(t.weight));
        }
        Ok(record)
    }

    #[inline]
    fn try_pick(&mut self, core: CoreId) -> Result<Option<ThreadId>, SchedError> {
        check_core(core)?;
        if self.running.on(core).is_some() {
            return Err(SchedError::CoreBusy);
        }
        // Its entry stays at the top, stale, for the charge to replace.
        let Some(e) = self.queue.take_first(live(&self.threads)) else {
            return Ok(None);
        };
        if let Some((_, t)) = self.threads.at_mut(e.slot()) {
            t.state = ThreadState::Running(core);
        }
        self.running.set(core, Some((e.id(), e.slot())));
        Ok(Some(e.id()))
    }

    fn charge(
        &mut self,
        id: ThreadId,
        core: CoreId,
        ran_ns: u64,
        end: RunEnd,
    ) -> Result<(), SchedError> {
        let slot = self.running.slot_to_charge(core, id, &self.threads)?;
        let Some((_, t)) = self.threads.at_mut(slot) else {
            return Err(SchedError::UnknownThread);
        };
        debug_assert_eq!(t.state, ThreadState::Running(core));
        let w = u64::from(t.weight);
        t.service_ns = t.service_ns.saturating_add(ran_ns);
        // Only what it used: stride * ran / quantum.
        t.pass = sched_api::add_sat(t.pass, self.ledger.vt_memo(ran_ns, w, &mut t.memo));
        self.ledger.advance(ran_ns);
        let global = self.ledger.now();
        match end {
            RunEnd::Preempted | RunEnd::Yielded => {
                t.state = ThreadState::Runnable;
                // `enqueue`, with the record in hand, in place of the
                // entry it was picked from if that is still at the top
                // (its slot and sequence number name it: sequence numbers
                // are never reused, and a thread that came in running by
                // `import` has none in the queue).
                let (old, seq) = (t.seq, self.next_seq);
                self.next_seq += 1;
                t.seq = seq;
                self.queue
                    .push_replacing(Entry::new(t.pass, id, slot, seq), |e| {
                        e.slot() == slot && e.seq == old
                    });
            }
            RunEnd::Blocked => {
                t.state = ThreadState::Sleeping;
                t.pass = t.pass.saturating_sub(global);
                self.ledger.remove(id, w);
            }
            RunEnd::Exited => {
                self.threads.remove(id);
                self.ledger.remove(id, w);
            }
        }
        self.running.set(core, None);
        Ok(())
    }

    fn sleep(&mut self, id: ThreadId) -> Result<(), SchedError> {
        let global = self.global();
        let t = self.threads.get_mut(id).ok_or(SchedError::UnknownThread)?;
        match t.state {
            ThreadState::Running(_) => return Err(SchedError::AlreadyRunning),
            ThreadState::Sleeping => return Err(SchedError::AlreadySleeping),
            ThreadState::Runnable => {}
        }
        t.pass = t.pass.saturating_sub(global);
        t.state = ThreadState::Sleeping;
        let weight = t.weight;
        self.dequeued();
        self.ledger.remove(id, u64::from(weight));
        Ok(())
    }

    fn wake(&mut self, id: ThreadId) -> Result<(), SchedError> {
        let global = self.global();
        let (slot, t) = self.threads.find_mut(id).ok_or(SchedError::UnknownThread)?;
        if t.state != ThreadState::Sleeping {
            return Err(SchedError::NotSleeping);
        }
        t.pass = global.saturating_add(t.pass);
        t.state = ThreadState::Runnable;
        let weight = t.weight;
        self.enqueue(slot);
        self.ledger.insert(id, u64::from(weight));
        Ok(())
    }

    fn set_weight(&mut self, id: ThreadId, weight: u32) -> Result<(), SchedError> {
        if weight == 0 {
            return Err(SchedError::ZeroWeight);
        }
        let global = self.global();
        let (slot, t) = self.threads.find_mut(id).ok_or(SchedError::UnknownThread)?;
        let old = t.weight;
        t.weight = weight;
        let state = t.state;
        if state == ThreadState::Sleeping {
            // remain' = remain * stride' / stride = remain * old / new (a
            // sleeper has no effective weight: its tickets it is).
            t.pass = scale_signed(t.pass, u128::from(old), u128::from(weight));
            return Ok(());
        }
        // The same rule with the strides of the *effective* weights, before
        // and after: a capped thread whose tickets change but stays capped
        // keeps its remaining pass (by face value it would lose or gain
        // service it was owed).
        let before = self.ledger.effective(u64::from(old));
        self.ledger.remove(id, u64::from(old));
        self.ledger.insert(id, u64::from(weight));
        let after = self.ledger.effective(u64::from(weight));
        let remain = |pass: i128| {
            scale_signed(
                pass.saturating_sub(global),
                before.num.saturating_mul(after.den),
                before.den.saturating_mul(after.num).max(1),
            )
        };
        if let Some((_, t)) = self.threads.at_mut(slot) {
            t.pass = global.saturating_add(remain(t.pass));
        }
        if state == ThreadState::Runnable {
            // Requeued at the new pass; the old entry goes stale.
            self.enqueue(slot);
            self.dequeued();
        }
        Ok(())
    }

    fn set_cores(&mut self, cores: usize) -> Result<(), SchedError> {
        self.ledger.set_cores(check_cores(cores)?);
        Ok(())
    }

    fn cores(&self) -> usize {
        self.ledger.cores()
    }

    fn quantum_ns(&self) -> u64 {
        self.quantum_ns
    }

    fn export(&self) -> Snapshot {
        // Runnable by (pass, id), as the queue would pop them.
        snapshot(
            &self.threads,
            &self.running,
            |t| t.pass,
            self.global(),
            |id, t| self.record_of(id, t),
        )
    }

    fn import(&mut self, snapshot: Snapshot) -> Result<(), SchedError> {
        snapshot.validate()?;
        let mut fresh = Stride::new(self.quantum_ns, self.cores());
        let global = snapshot.global_vtime;
        fresh.ledger.set_now(global);
        fresh.threads.reserve(snapshot.threads.len());
        fresh.queue.reserve(snapshot.threads.len());
        for r in &snapshot.threads {
            let pass = match r.state {
                ThreadState::Sleeping => r.vtime.saturating_sub(global),
                _ => r.vtime,
            };
            let thread = Thread {
                weight: r.weight,
                state: r.state,
                service_ns: r.service_ns,
                pass,
                seq: 0,
                memo: VtMemo::default(),
            };
            // Ids are unique: the snapshot was validated.
            let Ok(slot) = fresh.threads.insert(r.id, thread) else {
                return Err(SchedError::BadSnapshot);
            };
            match r.state {
                ThreadState::Runnable => fresh.enqueue(slot),
                ThreadState::Running(core) => fresh.running.set(core, Some((r.id, slot))),
                ThreadState::Sleeping => {}
            }
        }
        fresh.ledger.insert_all(snapshot.active_weights());
        *self = fresh;
        Ok(())
    }

    fn record(&self, id: ThreadId) -> Option<ThreadRecord> {
        Some(self.record_of(id, self.threads.get(id)?))
    }

    fn len(&self) -> usize {
        self.threads.len()
    }
}

#[cfg(test)]
mod tests;
