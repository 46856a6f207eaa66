//! EEVDF: earliest eligible virtual deadline first (Stoica &
//! Abdel-Wahab, "Earliest Eligible Virtual Deadline First", ODU TR-95-22,
//! 1995; the fair class of Linux 6.6), on P cores.
//!
//! Every thread issues requests of one quantum `r` of service. In virtual
//! time (the unit of [`sched_api`]: `VT_SCALE` per ns per ticket of
//! effective weight) a thread has
//! - a virtual eligible time `ve`: where its service so far puts it. Its
//!   lag is `ve - V` (`V`: the system's virtual time, the service an ideal
//!   fluid system would have given one ticket); the paper's lag is its
//!   negation, the service the thread is owed. A thread is *eligible* when
//!   `ve <= V`: it is owed service (the paper's lag is non-negative);
//! - a virtual deadline `vd = ve + r / w` for its current request, set when
//!   the request is issued: on joining, on waking, on a weight change, and
//!   when the previous request is complete (`ve` reached `vd`).
//!
//! A core takes, among the eligible threads not running elsewhere, the one
//! with the earliest deadline; if none is eligible (all run on other
//! cores), the one that becomes eligible first, so no core idles while a
//! thread waits. On one core with full quanta every thread's lag stays
//! within one request (`|lag| < r` in service) while the system is steady
//! (threads join at zero lag and no weight changes while a lag is
//! nonzero): the paper's bound, checked by property tests. A weight change
//! at a nonzero lag keeps the lag (the paper's leave and re-join, Linux's
//! `reweight_eevdf`) but can leave a thread owed more than a request
//! later; what still holds is that no thread gets a request ahead and the
//! lags sum to zero (so an owed lag stays under `(n - 1) r`).
//!
//! Conventions shared with the other policies (see [`sched_api`]):
//! - Weights are made feasible on P cores by [`sched_api::Ledger`] (a
//!   thread asking for more than a core is capped at one), and `V`
//!   advances by `ran / E` for every ns given out (`E`: the sum of the
//!   effective weights), exactly like stride's global pass.
//! - A sleeping thread keeps its lag frozen (the paper's rule for a client
//!   that leaves and rejoins, and Linux 6.6's `place_entity` keeping
//!   `vlag`): it wakes at `ve = V + lag`, with a fresh request. Nobody
//!   gains or loses by sleeping.
//! - A ticket change keeps the service the thread is owed: its lag is
//!   rescaled by old / new *effective* weight (a capped thread whose
//!   tickets change but stays capped keeps its lag as it is).
//! - Snapshots carry `ve` as the virtual time, so a stride → EEVDF → stride
//!   round trip keeps every pass exactly.
//!
//! Decisions are O(log n) amortized (see [`queue`]); a pick and a charge
//! allocate only when the queue grows.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod queue;

use alloc::vec::Vec;

use queue::{Item, Queue};
use sched_api::lazy::{live, snapshot, Queued};
use sched_api::table::{Running, Slot, Table};
use sched_api::{
    add_sat, check_core, check_cores, scale_signed, CoreId, Ledger, Params, Policy, PolicyInfo,
    PolicyKind, Ratio, RunEnd, SchedError, Snapshot, ThreadId, ThreadRecord, ThreadState, VtMemo,
};

/// This policy's name.
pub const KIND: PolicyKind = PolicyKind::new("eevdf");

/// EEVDF's identity and capabilities, for `sched-registry`.
pub const INFO: PolicyInfo = PolicyInfo {
    kind: KIND,
    description: "earliest eligible virtual deadline first: the earliest deadline among threads owed service (Stoica & Abdel-Wahab 1995; Linux 6.6)",
    entitlement: sched_api::Entitlement::Tickets,
    randomized: false,
    currencies: false,
    ticket_transfers: false,
    build: |p: &Params| Ok(alloc::boxed::Box::new(Eevdf::try_new(p.quantum_ns, p.cores)?)),
};

#[derive(Clone, Copy, Debug)]
struct Thread {
    weight: u32,
    state: ThreadState,
    service_ns: u64,
    /// `ve` while runnable or running; its lag `ve - V` while sleeping.
    ve: i128,
    /// The deadline of its current request (while runnable or running).
    vd: i128,
    /// The sequence number of its current queue entry (while runnable).
    seq: u64,
    /// Its last figure of virtual time for a run (a charge and a request
    /// are both a quantum, usually), see [`Ledger::vt_memo`].
    memo: VtMemo,
}

/// An EEVDF scheduler.
#[derive(Clone, Debug)]
pub struct Eevdf {
    quantum_ns: u64,
    threads: Table<Thread>,
    /// Runnable threads that are not running.
    queue: Queue,
    next_seq: u64,
    /// Active weights (feasible on P cores) and `V`.
    ledger: Ledger,
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

impl Eevdf {
    /// An EEVDF scheduler with requests of `quantum_ns`. Never fails: a
    /// quantum of 0 is taken as 1 ns and a core count out of range as the
    /// nearest valid one; use [`Eevdf::try_new`] to have them refused.
    pub fn new(quantum_ns: u64, cores: usize) -> Self {
        Eevdf {
            quantum_ns: quantum_ns.max(1),
            threads: Table::new(),
            queue: Queue::default(),
            next_seq: 0,
            ledger: Ledger::new(cores.clamp(1, sched_api::MAX_CORES), 1),
            running: Running::default(),
        }
    }

    /// An EEVDF scheduler; `BadQuantum`/`BadCores` for a quantum of 0 or a
    /// core count out of range.
    pub fn try_new(quantum_ns: u64, cores: usize) -> Result<Self, SchedError> {
        if quantum_ns == 0 {
            return Err(SchedError::BadQuantum);
        }
        Ok(Eevdf::new(quantum_ns, check_cores(cores)?))
    }

    /// An EEVDF scheduler holding `snapshot`'s threads.
    pub fn from_snapshot(
        quantum_ns: u64,
        cores: usize,
        snapshot: Snapshot,
    ) -> Result<Self, SchedError> {
        let mut s = Eevdf::try_new(quantum_ns, cores)?;
        s.import(snapshot)?;
        Ok(s)
    }

    /// The system's virtual time `V`.
    fn now(&self) -> i128 {
        self.ledger.now()
    }

    /// The length of one request in virtual time at (active) weight `w`.
    #[cfg(test)]
    fn request(&self, w: u32) -> i128 {
        self.ledger.vt(self.quantum_ns, u64::from(w))
    }

    /// Queues the runnable thread in `slot` under a fresh sequence number
    /// (a thread with an entry queued: see [`Eevdf::renumber`]).
    fn enqueue(&mut self, slot: Slot) {
        self.renumber(slot);
        self.requeue(slot);
    }

    /// Gives the thread in `slot` a fresh sequence number: any entry of it
    /// queued goes stale. The caller reports it ([`Eevdf::dequeued`])
    /// before queuing the new one ([`Eevdf::requeue`]): the queue, when it
    /// repacks, keeps only the live entries, and counts none stale.
    fn renumber(&mut self, slot: Slot) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some((_, t)) = self.threads.at_mut(slot) {
            t.seq = seq;
        }
    }

    /// Queues the runnable thread in `slot` under its sequence number.
    fn requeue(&mut self, slot: Slot) {
        if let Some((id, t)) = self.threads.at(slot) {
            let item = Item {
                ve: t.ve,
                vd: t.vd,
                id,
                slot,
                seq: t.seq,
            };
            self.queue.push_at(item, self.now(), live(&self.threads));
        }
    }

    /// The record of thread `id`, `t`.
    fn record_of(&self, id: ThreadId, t: &Thread) -> ThreadRecord {
        let (w, state, service, now) = (t.weight, t.state, t.service_ns, self.now());
        ThreadRecord::keeping_lag(id, w, state, service, t.ve, now)
    }

    /// Notes that a queue entry has just gone stale.
    fn dequeued(&mut self) {
        self.queue.forget_one(live(&self.threads));
    }

    /// Issues a fresh request for the active thread in `slot`.
    fn new_request(&mut self, slot: Slot) {
        if let Some((_, t)) = self.threads.at_mut(slot) {
            let r = self
                .ledger
                .vt_memo(self.quantum_ns, u64::from(t.weight), &mut t.memo);
            t.vd = add_sat(t.ve, r);
        }
    }
}

/// `lag * old / new`, the ratios being effective weights in tickets.
fn rescale(lag: i128, old: Ratio, new: Ratio) -> i128 {
    scale_signed(
        lag,
        old.num.saturating_mul(new.den),
        old.den.saturating_mul(new.num).max(1),
    )
}

impl Policy for Eevdf {
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
            ve: self.now(),
            vd: 0,
            seq: 0,
            memo: VtMemo::default(),
        };
        let slot = self
            .threads
            .insert(id, thread)
            .map_err(|_| SchedError::DuplicateThread)?;
        self.ledger.insert(id, u64::from(weight));
        self.new_request(slot);
        self.enqueue(slot);
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
        let now = self.now();
        let Some((id, slot)) = self.queue.pop(now, live(&self.threads)) else {
            return Ok(None);
        };
        if let Some((_, t)) = self.threads.at_mut(slot) {
            t.state = ThreadState::Running(core);
        }
        self.running.set(core, Some((id, slot)));
        Ok(Some(id))
    }

    fn charge(
        &mut self,
        id: ThreadId,
        core: CoreId,
        ran_ns: u64,
        end: RunEnd,
    ) -> Result<(), SchedError> {
        let slot = self.running.slot_to_charge(core, id, &self.threads)?;
        self.ledger.advance(ran_ns);
        let now = self.now();
        let Some((_, t)) = self.threads.at_mut(slot) else {
            return Err(SchedError::UnknownThread);
        };
        debug_assert_eq!(t.state, ThreadState::Running(core));
        let w = u64::from(t.weight);
        t.service_ns = t.service_ns.saturating_add(ran_ns);
        // Only what it used (at the weights of before the charge: advance
        // changes none).
        let used = self.ledger.vt_memo(ran_ns, w, &mut t.memo);
        t.ve = add_sat(t.ve, used);
        let complete = t.ve >= t.vd;
        match end {
            RunEnd::Preempted | RunEnd::Yielded => {
                t.state = ThreadState::Runnable;
                // The request is done once its service is: the next one's
                // deadline is a request further (Linux's update_deadline).
                // A thread that yields early keeps its deadline.
                // (`new_request` and `enqueue`, with the record in hand.)
                if complete {
                    // A full quantum's run is a request's length already
                    // (the same figure: the ledger has not changed since).
                    let r = if ran_ns == self.quantum_ns {
                        used
                    } else {
                        self.ledger.vt_memo(self.quantum_ns, w, &mut t.memo)
                    };
                    t.vd = add_sat(t.ve, r);
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                t.seq = seq;
                let item = Item {
                    ve: t.ve,
                    vd: t.vd,
                    id,
                    slot,
                    seq,
                };
                self.queue.push_at(item, now, live(&self.threads));
            }
            RunEnd::Blocked => {
                t.state = ThreadState::Sleeping;
                t.ve = t.ve.saturating_sub(now);
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
        let now = self.now();
        let t = self.threads.get_mut(id).ok_or(SchedError::UnknownThread)?;
        match t.state {
            ThreadState::Running(_) => return Err(SchedError::AlreadyRunning),
            ThreadState::Sleeping => return Err(SchedError::AlreadySleeping),
            ThreadState::Runnable => {}
        }
        t.ve = t.ve.saturating_sub(now);
        t.state = ThreadState::Sleeping;
        let weight = t.weight;
        self.dequeued();
        self.ledger.remove(id, u64::from(weight));
        Ok(())
    }

    fn wake(&mut self, id: ThreadId) -> Result<(), SchedError> {
        let now = self.now();
        let (slot, t) = self.threads.find_mut(id).ok_or(SchedError::UnknownThread)?;
        if t.state != ThreadState::Sleeping {
            return Err(SchedError::NotSleeping);
        }
        t.ve = now.saturating_add(t.ve);
        t.state = ThreadState::Runnable;
        let weight = t.weight;
        self.ledger.insert(id, u64::from(weight));
        self.new_request(slot);
        self.enqueue(slot);
        Ok(())
    }

    fn set_weight(&mut self, id: ThreadId, weight: u32) -> Result<(), SchedError> {
        if weight == 0 {
            return Err(SchedError::ZeroWeight);
        }
        let now = self.now();
        let (slot, t) = self.threads.find_mut(id).ok_or(SchedError::UnknownThread)?;
        let (old, state) = (t.weight, t.state);
        t.weight = weight;
        if state == ThreadState::Sleeping {
            // Not in the ledger: its lag is kept in tickets.
            t.ve = scale_signed(t.ve, u128::from(old), u128::from(weight));
            return Ok(());
        }
        let before = self.ledger.effective(u64::from(old));
        self.ledger.remove(id, u64::from(old));
        self.ledger.insert(id, u64::from(weight));
        let after = self.ledger.effective(u64::from(weight));
        if let Some((_, t)) = self.threads.at_mut(slot) {
            t.ve = now.saturating_add(rescale(t.ve.saturating_sub(now), before, after));
        }
        self.new_request(slot);
        if state == ThreadState::Runnable {
            // Requeued at its new times; the old entry goes stale.
            self.renumber(slot);
            self.dequeued();
            self.requeue(slot);
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
        // Runnable in the order picks would take them now: the eligible by
        // deadline, then the others by eligible time.
        let now = self.now();
        let key = |t: &Thread| {
            if t.ve <= now {
                (false, t.vd)
            } else {
                (true, t.ve)
            }
        };
        snapshot(&self.threads, &self.running, key, now, |id, t| {
            self.record_of(id, t)
        })
    }

    fn import(&mut self, snapshot: Snapshot) -> Result<(), SchedError> {
        snapshot.validate()?;
        let mut fresh = Eevdf::new(self.quantum_ns, self.cores());
        let now = snapshot.global_vtime;
        fresh.ledger.set_now(now);
        // Offsets from the imported `V`: the queue need not repack at its
        // first push.
        fresh.queue = Queue::at(now);
        let mut slots = Vec::with_capacity(snapshot.threads.len());
        fresh.threads.reserve(snapshot.threads.len());
        fresh.queue.reserve(snapshot.threads.len());
        for r in &snapshot.threads {
            let ve = match r.state {
                ThreadState::Sleeping => r.vtime.saturating_sub(now),
                _ => r.vtime,
            };
            let thread = Thread {
                weight: r.weight,
                state: r.state,
                service_ns: r.service_ns,
                ve,
                vd: 0,
                seq: 0,
                memo: VtMemo::default(),
            };
            // Ids are unique: the snapshot was validated.
            let Ok(slot) = fresh.threads.insert(r.id, thread) else {
                return Err(SchedError::BadSnapshot);
            };
            slots.push((slot, r.id, r.state));
        }
        fresh.ledger.insert_all(snapshot.active_weights());
        // Requests once every weight is in: their length depends on the cap.
        for (slot, id, state) in slots {
            match state {
                ThreadState::Runnable => {
                    fresh.new_request(slot);
                    fresh.enqueue(slot);
                }
                ThreadState::Running(core) => {
                    fresh.new_request(slot);
                    fresh.running.set(core, Some((id, slot)));
                }
                ThreadState::Sleeping => {}
            }
        }
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
