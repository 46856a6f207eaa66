//! Round robin by time (deficit round robin): a FIFO of runnable threads;
//! each core takes the head, and a thread picked with no credit left is
//! given one quantum of credit. A run ends when the libOS's turn does, not
//! when rr says: a thread preempted before its quantum is used up (its
//! turn was cut short) goes back to the *front* to use the rest, and one
//! that ran over carries the overrun as negative credit into its next
//! quantum. So equal shares are equal time, whatever the turns' lengths
//! (counting turns, rr drifted by the ratio of the turns: one thread
//! always getting the short turns of a full/quarter pattern got a quarter
//! of the other's time). A yield or a block gives up the rest of the
//! quantum. Weights are kept, so a swap to a proportional policy restores
//! them, but not used for decisions.
//!
//! Fairness bookkeeping: round robin promises equal shares, so it measures
//! each thread's lag against an equal share of the cores (`clock` is the
//! equal-share virtual time). A snapshot expresses that lag in the neutral
//! unit (virtual time per ticket of feasible weight) around a global
//! virtual time that round robin does not move. So a thread owed service
//! when it arrives keeps that debt through a round-robin period, and a
//! round-robin period is not billed afterwards as weighted debt.
//!
//! The hot path (a pick and a charge) allocates nothing and looks nothing
//! up by id: the queue is a ring buffer (see [`queue`]) holding slots of
//! the thread table (see [`table`]), and the thread on each core sits in a
//! vector indexed by core.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod queue;

use sched_api::{
    check_core, check_cores, scale_signed, CoreId, Ledger, Params, Policy, PolicyInfo, PolicyKind,
    Ratio, RunEnd, SchedError, Snapshot, ThreadId, ThreadRecord, ThreadState, VT_SCALE,
};

use queue::{Entry, Queue};
use sched_api::lazy::{live, snapshot, Queued};
use sched_api::table::{Running, Slot, Table};

#[derive(Clone, Copy, Debug)]
struct Thread {
    weight: u32,
    state: ThreadState,
    service_ns: u64,
    /// Place in the queue while runnable (its queue entry's number).
    seq: u64,
    /// Equal-share virtual time while active, as of when its service was
    /// `vtime_service` (see [`Thread::vtime`]); while sleeping, the lag it
    /// left with in the neutral unit (`vtime - clock` per ticket of the
    /// effective weight it had: what it exported then, so a swap while it
    /// sleeps carries what it had).
    vtime: i128,
    /// `service_ns` when `vtime` was last set: a charge adds its run to
    /// the service alone, and the virtual time follows from the two.
    vtime_service: u64,
    /// Deficit round robin's credit (ns): what is left of its quantum, or
    /// below zero, what it ran over.
    credit_ns: i64,
}

impl Thread {
    /// The virtual time: `vtime` plus the service since it was set, at one
    /// ticket (`vt_at_one`). Charging each run to `vtime` as it came, with
    /// saturation, gave the same: the runs are never negative, so
    /// saturating step by step is saturating once at the end, and their
    /// sum (the service since, below 2^64 ns) times `VT_SCALE` is below
    /// 2^96. A charge whose service would overflow sets `vtime` itself
    /// ([`Thread::charge_saturated`]).
    #[inline]
    fn vtime(&self) -> i128 {
        self.vtime
            .saturating_add(vt_at_one(self.service_ns - self.vtime_service))
    }

    fn set_vtime(&mut self, vtime: i128) {
        self.vtime = vtime;
        self.vtime_service = self.service_ns;
    }

    /// A charge of `ran_ns` that takes the service past `u64::MAX`: the
    /// service saturates, the virtual time takes the whole run.
    #[cold]
    #[inline(never)]
    fn charge_saturated(&mut self, ran_ns: u64) {
        let vtime = self.vtime().saturating_add(vt_at_one(ran_ns));
        self.service_ns = u64::MAX;
        self.set_vtime(vtime);
    }
}

/// This policy's name.
pub const KIND: PolicyKind = PolicyKind::new("rr");

/// Round robin's identity and capabilities, for `sched-registry`.
pub const INFO: PolicyInfo = PolicyInfo {
    kind: KIND,
    description: "round robin: equal shares in queue order, tickets ignored",
    entitlement: sched_api::Entitlement::Equal,
    randomized: false,
    currencies: false,
    ticket_transfers: false,
    build: |p: &Params| {
        Ok(alloc::boxed::Box::new(RoundRobin::with_cores(
            p.quantum_ns,
            p.cores,
        )?))
    },
};

/// A round-robin scheduler.
#[derive(Clone, Debug)]
pub struct RoundRobin {
    quantum_ns: u64,
    /// The credit a quantum gives: `quantum_ns`, at most `i64::MAX`.
    quantum_credit: i64,
    threads: Table<Thread>,
    /// Runnable threads that are not running, in arrival order.
    queue: Queue,
    /// Sequence number of the next entry at the back, and of the last one
    /// put at the front (below every other: the queue's order is theirs).
    next_seq: u64,
    front_seq: u64,
    /// Who runs on each core.
    running: Running,
    /// Equal-share virtual time of the system.
    clock: i128,
    /// The last step of `clock`: `(ran_ns, active threads, step)`, the
    /// step being for at least one thread. The same quantum is charged
    /// again and again among as many threads, so this saves a division
    /// per charge.
    clock_step: (u64, usize, i128),
    /// Weights of the runnable and running threads, feasible on P cores:
    /// only to express lags in the neutral unit.
    weights: Ledger,
    /// The neutral global virtual time of the last import (not advanced).
    origin: i128,
}

/// Sequence numbers grow from here at the back and shrink from here at the
/// front: 2^62 either way, more than any run makes.
const SEQ_ORIGIN: u64 = 1 << 62;

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

impl RoundRobin {
    /// A round-robin scheduler for one core (see [`RoundRobin::with_cores`]).
    /// Never fails: a quantum of 0 is taken as 1 ns.
    pub fn new(quantum_ns: u64) -> Self {
        RoundRobin {
            quantum_ns: quantum_ns.max(1),
            quantum_credit: i64::try_from(quantum_ns.max(1)).unwrap_or(i64::MAX),
            threads: Table::new(),
            queue: Queue::default(),
            next_seq: SEQ_ORIGIN,
            front_seq: SEQ_ORIGIN,
            running: Running::default(),
            clock: 0,
            clock_step: (0, 0, 0),
            weights: Ledger::new(1, 1),
            origin: 0,
        }
    }

    /// A round-robin scheduler whose shares are computed for `cores` cores;
    /// `BadQuantum`/`BadCores` for a quantum of 0 or a count out of range.
    pub fn with_cores(quantum_ns: u64, cores: usize) -> Result<Self, SchedError> {
        if quantum_ns == 0 {
            return Err(SchedError::BadQuantum);
        }
        let mut rr = RoundRobin::new(quantum_ns);
        rr.weights.set_cores(check_cores(cores)?);
        Ok(rr)
    }

    /// A round-robin scheduler holding `snapshot`'s threads.
    pub fn from_snapshot(
        quantum_ns: u64,
        cores: usize,
        snapshot: Snapshot,
    ) -> Result<Self, SchedError> {
        let mut rr = RoundRobin::with_cores(quantum_ns, cores)?;
        rr.import(snapshot)?;
        Ok(rr)
    }

    /// Puts the (runnable) thread in `slot` at the back of the queue.
    fn enqueue(&mut self, slot: Slot) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some((_, t)) = self.threads.at_mut(slot) {
            t.seq = seq;
            self.queue.push(Entry { seq, slot });
        }
    }

    /// [`Policy::charge`], every case: out of line, for what
    /// [`RoundRobin::charge_preempted`] leaves.
    #[inline(never)]
    fn charge_general(
        &mut self,
        id: ThreadId,
        core: CoreId,
        ran_ns: u64,
        end: RunEnd,
    ) -> Result<(), SchedError> {
        // The core is freed here rather than last: nothing below fails
        // (a running thread's slot always holds it).
        let Some(slot) = self.running.take(core, id) else {
            return Err(Running::charge_error(id, &self.threads));
        };
        let Some((_, t)) = self.threads.at_mut(slot) else {
            return Err(SchedError::UnknownThread);
        };
        debug_assert_eq!(t.state, ThreadState::Running(core));
        // Equal shares: every thread has weight 1, and nobody can be capped
        // (with n <= P threads each has a core).
        // The virtual time follows from the service (see `Thread::vtime`)
        // until the service saturates.
        match t.service_ns.checked_add(ran_ns) {
            Some(service) => t.service_ns = service,
            None => t.charge_saturated(ran_ns),
        }
        let n = self.weights.len();
        let step = match self.clock_step {
            (ran, m, step) if ran == ran_ns && m == n => step,
            _ => new_clock_step(&mut self.clock_step, ran_ns, n),
        };
        self.clock = add_sat(self.clock, step);
        t.credit_ns = credit_less(t.credit_ns, ran_ns);
        match end {
            // Cut short: the rest of its quantum comes first.
            RunEnd::Preempted if t.credit_ns > 0 => {
                t.state = ThreadState::Runnable;
                self.front_seq -= 1;
                let seq = self.front_seq;
                t.seq = seq;
                // A live entry: the queue's stale count stays right.
                self.queue.order_mut().push_front(Entry { seq, slot });
            }
            RunEnd::Preempted => {
                // `enqueue` without its second look at the slot.
                t.state = ThreadState::Runnable;
                let seq = self.next_seq;
                self.next_seq += 1;
                t.seq = seq;
                self.queue.push(Entry { seq, slot });
            }
            RunEnd::Blocked => {
                t.credit_ns = t.credit_ns.min(0);
                fall_asleep(t, &self.weights, self.clock);
                self.weights.remove(id, u64::from(t.weight));
            }
            _ => self.end_run(id, slot, end),
        }
        Ok(())
    }

    /// A pick on a core without a place yet: checked, given one, then
    /// picked for as any other. Out of line (once per core).
    #[cold]
    #[inline(never)]
    fn pick_on_new_core(&mut self, core: CoreId) -> Option<ThreadId> {
        check_core(core).ok()?;
        self.running.place(core);
        self.pick(core)
    }

    /// The usual charge, a preempted run whose figures need no
    /// saturation and whose clock step is remembered, done if it is that
    /// (true), with nothing changed if not (false; the general path does
    /// it). It calls nothing on its way, so it keeps to the registers a
    /// call may clobber: no saves and restores.
    #[inline(always)]
    fn charge_preempted(&mut self, id: ThreadId, core: CoreId, ran_ns: u64) -> bool {
        let Some(on) = self.running.on_mut(core) else {
            return false;
        };
        let Some((running, slot)) = *on else {
            return false;
        };
        if running != id {
            return false;
        }
        let Some((_, t)) = self.threads.at_mut(slot) else {
            return false;
        };
        let (memo_ran, memo_n, step) = self.clock_step;
        if memo_ran != ran_ns || memo_n != self.weights.len() {
            return false;
        }
        let Some(service) = t.service_ns.checked_add(ran_ns) else {
            return false;
        };
        let Some(credit) = i64::try_from(ran_ns)
            .ok()
            .and_then(|ran| t.credit_ns.checked_sub(ran))
        else {
            return false;
        };
        let Some(clock) = self.clock.checked_add(step) else {
            return false;
        };
        // As the general path: the service (and with it the virtual
        // time), the clock, the credit; then back in line.
        *on = None;
        t.service_ns = service;
        self.clock = clock;
        t.credit_ns = credit;
        t.state = ThreadState::Runnable;
        let seq = if credit > 0 {
            // Cut short: the rest of its quantum comes first.
            self.front_seq -= 1;
            t.seq = self.front_seq;
            // A live entry: the queue's stale count stays right.
            self.queue
                .order_mut()
                .push_front(Entry { seq: t.seq, slot });
            return true;
        } else {
            let seq = self.next_seq;
            self.next_seq += 1;
            seq
        };
        t.seq = seq;
        self.queue.push(Entry { seq, slot });
        true
    }

    /// The end of a charge whose run ended in a yield or an exit (the
    /// charge's own work done): out of line.
    #[inline(never)]
    fn end_run(&mut self, id: ThreadId, slot: Slot, end: RunEnd) {
        let Some((_, t)) = self.threads.at_mut(slot) else {
            return;
        };
        debug_assert!(matches!(end, RunEnd::Yielded | RunEnd::Exited));
        match end {
            RunEnd::Yielded => {
                t.state = ThreadState::Runnable;
                t.credit_ns = t.credit_ns.min(0);
                self.enqueue(slot);
            }
            RunEnd::Exited => {
                self.weights.remove(id, u64::from(t.weight));
                self.threads.remove(id);
            }
            // The charge's own.
            RunEnd::Preempted | RunEnd::Blocked => {}
        }
    }

    /// The record of thread `id`, `t`.
    fn record_of(&self, id: ThreadId, t: &Thread) -> ThreadRecord {
        let (lag, e) = self.lag_and_weight(t);
        ThreadRecord {
            id,
            weight: t.weight,
            state: t.state,
            service_ns: t.service_ns,
            vtime: self.origin.saturating_add(scale_signed(lag, e.den, e.num)),
        }
    }

    /// Notes that a thread's queue entry has just become stale.
    fn dequeued(&mut self) {
        self.queue.forget_one(live(&self.threads));
    }

    /// A thread's lag in ns of equal share (times `VT_SCALE`) and the
    /// weight that turns it into the neutral unit: its feasible weight; a
    /// sleeper's is kept in the neutral unit already (weight 1).
    fn lag_and_weight(&self, t: &Thread) -> (i128, Ratio) {
        match t.state {
            ThreadState::Sleeping => (t.vtime(), Ratio::new(1, 1)),
            _ => (
                t.vtime().saturating_sub(self.clock),
                self.weights.effective(u64::from(t.weight)),
            ),
        }
    }
}

/// `Ledger::vt_at(ran_ns, 1 ticket)`, which is exactly `ran_ns * VT_SCALE`
/// (under 2^96: no rounding, no saturation), without its division by 1.
#[inline]
fn vt_at_one(ran_ns: u64) -> i128 {
    i128::from(ran_ns) * VT_SCALE as i128
}

/// The clock's step for a run of `ran_ns` among `n` active threads (at
/// least one), remembered (in `memo`, under `n` as it is) for the next
/// charge: out of line, the charge's usual path finds it remembered.
#[cold]
#[inline(never)]
fn new_clock_step(memo: &mut (u64, usize, i128), ran_ns: u64, n: usize) -> i128 {
    let step = Ledger::vt_at(ran_ns, Ratio::new(n.max(1) as u128, 1));
    *memo = (ran_ns, n, step);
    step
}

/// `t` falls asleep (its weight still among `weights`) with its lag frozen
/// as it is exported now: per ticket of its effective weight, which a
/// sleeper no longer has (kept per ticket of its own, a capped thread's
/// exported lag moved by effective / tickets as it fell asleep, and a swap
/// then changed the service it was owed).
fn fall_asleep(t: &mut Thread, weights: &Ledger, clock: i128) {
    let e = weights.effective(u64::from(t.weight));
    let lag = t.vtime().saturating_sub(clock);
    t.state = ThreadState::Sleeping;
    t.set_vtime(scale_signed(lag, e.den, e.num));
}

/// Starts `t` on `core`: a thread with no credit left gets a quantum's.
#[inline]
fn start(t: &mut Thread, core: CoreId, quantum_credit: i64) {
    t.state = ThreadState::Running(core);
    if t.credit_ns <= 0 {
        // At most 0 plus a quantum of 1..=i64::MAX ns: no overflow.
        t.credit_ns += quantum_credit;
    }
}

/// The rest of a pick whose first entry was stale: the first live one
/// after it starts.
#[cold]
#[inline(never)]
fn pick_past_stale(
    queue: &mut Queue,
    threads: &mut Table<Thread>,
    on: &mut Option<(ThreadId, Slot)>,
    core: CoreId,
    quantum_credit: i64,
) -> Option<ThreadId> {
    let e = queue.pop((), live(threads))?;
    let (id, t) = threads.at_mut(e.slot)?;
    start(t, core, quantum_credit);
    *on = Some((id, e.slot));
    Some(id)
}

/// `a.saturating_add(b)`, the usual case (no overflow) inline.
#[inline]
fn add_sat(a: i128, b: i128) -> i128 {
    match a.checked_add(b) {
        Some(sum) => sum,
        None => add_sat_cold(a, b),
    }
}

#[cold]
#[inline(never)]
fn add_sat_cold(a: i128, b: i128) -> i128 {
    a.saturating_add(b)
}

/// `credit - ran_ns`, `ran_ns` taken as at most `i64::MAX` and the
/// difference saturating; the usual case inline.
#[inline]
fn credit_less(credit: i64, ran_ns: u64) -> i64 {
    if let Ok(ran) = i64::try_from(ran_ns) {
        if let Some(left) = credit.checked_sub(ran) {
            return left;
        }
    }
    credit_less_cold(credit, ran_ns)
}

#[cold]
#[inline(never)]
fn credit_less_cold(credit: i64, ran_ns: u64) -> i64 {
    credit.saturating_sub(i64::try_from(ran_ns).unwrap_or(i64::MAX))
}

impl Policy for RoundRobin {
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
            seq: 0,
            vtime: self.clock,
            vtime_service: 0,
            credit_ns: 0,
        };
        let slot = self
            .threads
            .insert(id, thread)
            .map_err(|_| SchedError::DuplicateThread)?;
        self.weights.insert(id, u64::from(weight));
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
            self.weights.remove(id, u64::from(t.weight));
        }
        Ok(record)
    }

    fn try_pick(&mut self, core: CoreId) -> Result<Option<ThreadId>, SchedError> {
        check_core(core)?;
        if self.running.on(core).is_some() {
            return Err(SchedError::CoreBusy);
        }
        Ok(self.pick(core))
    }

    /// [`Policy::try_pick`] with errors read as "nothing to run", written
    /// out rather than the trait's `try_pick(core).ok().flatten()`: the
    /// decision's path builds no `Result` only to take it apart.
    fn pick(&mut self, core: CoreId) -> Option<ThreadId> {
        // A core with a place has had a pick (so its id is in range).
        let Some(on) = self.running.on_mut(core) else {
            return self.pick_on_new_core(core);
        };
        if on.is_some() {
            return None;
        }
        let e = self.queue.pop_any(())?;
        // The entry's liveness (`sched_api::lazy::live`) judged with the
        // one look at the record that starts it; past stale entries out
        // of line.
        let (id, t) = match self.threads.at_mut(e.slot) {
            Some((id, t)) if t.seq == e.seq && t.state == ThreadState::Runnable => (id, t),
            _ => {
                self.queue.popped_stale();
                return pick_past_stale(
                    &mut self.queue,
                    &mut self.threads,
                    on,
                    core,
                    self.quantum_credit,
                );
            }
        };
        start(t, core, self.quantum_credit);
        *on = Some((id, e.slot));
        Some(id)
    }

    fn charge(
        &mut self,
        id: ThreadId,
        core: CoreId,
        ran_ns: u64,
        end: RunEnd,
    ) -> Result<(), SchedError> {
        if end == RunEnd::Preempted && self.charge_preempted(id, core, ran_ns) {
            return Ok(());
        }
        self.charge_general(id, core, ran_ns, end)
    }

    fn sleep(&mut self, id: ThreadId) -> Result<(), SchedError> {
        let t = self.threads.get_mut(id).ok_or(SchedError::UnknownThread)?;
        match t.state {
            ThreadState::Running(_) => Err(SchedError::AlreadyRunning),
            ThreadState::Sleeping => Err(SchedError::AlreadySleeping),
            ThreadState::Runnable => {
                fall_asleep(t, &self.weights, self.clock);
                let weight = t.weight;
                self.dequeued();
                self.weights.remove(id, u64::from(weight));
                Ok(())
            }
        }
    }

    fn wake(&mut self, id: ThreadId) -> Result<(), SchedError> {
        let (slot, t) = self.threads.find_mut(id).ok_or(SchedError::UnknownThread)?;
        if t.state != ThreadState::Sleeping {
            return Err(SchedError::NotSleeping);
        }
        t.state = ThreadState::Runnable;
        self.weights.insert(id, u64::from(t.weight));
        // Back to ns of equal share at the effective weight it has now.
        let e = self.weights.effective(u64::from(t.weight));
        let lag = scale_signed(t.vtime(), e.num, e.den);
        t.set_vtime(self.clock.saturating_add(lag));
        self.enqueue(slot);
        Ok(())
    }

    fn set_weight(&mut self, id: ThreadId, weight: u32) -> Result<(), SchedError> {
        if weight == 0 {
            return Err(SchedError::ZeroWeight);
        }
        // The lag round robin keeps is in ns of equal share: unaffected; a
        // sleeper's, in the neutral unit, keeps the service it is owed
        // (lag times tickets), as every policy's sleeper does.
        let t = self.threads.get_mut(id).ok_or(SchedError::UnknownThread)?;
        if t.state == ThreadState::Sleeping {
            t.set_vtime(scale_signed(t.vtime(), t.weight.into(), weight.into()));
        } else {
            self.weights.remove(id, u64::from(t.weight));
            self.weights.insert(id, u64::from(weight));
        }
        t.weight = weight;
        Ok(())
    }

    fn set_cores(&mut self, cores: usize) -> Result<(), SchedError> {
        self.weights.set_cores(check_cores(cores)?);
        Ok(())
    }

    fn cores(&self) -> usize {
        self.weights.cores()
    }

    fn quantum_ns(&self) -> u64 {
        self.quantum_ns
    }

    fn export(&self) -> Snapshot {
        // Runnable in queue order.
        snapshot(
            &self.threads,
            &self.running,
            |t| t.seq,
            self.origin,
            |id, t| self.record_of(id, t),
        )
    }

    fn import(&mut self, snapshot: Snapshot) -> Result<(), SchedError> {
        snapshot.validate()?;
        let mut fresh = RoundRobin::new(self.quantum_ns);
        fresh.weights.set_cores(self.cores());
        fresh.origin = snapshot.global_vtime;
        fresh.threads.reserve(snapshot.threads.len());
        fresh.queue.reserve(snapshot.threads.len());
        fresh.weights.insert_all(snapshot.active_weights());
        for r in &snapshot.threads {
            let mut t = Thread {
                weight: r.weight,
                state: r.state,
                service_ns: r.service_ns,
                seq: 0,
                vtime: 0,
                vtime_service: r.service_ns,
                credit_ns: 0,
            };
            // Neutral lag -> ns of service (times VT_SCALE). The fresh clock
            // is 0, so this is the vtime of an active thread and the frozen
            // lag of a sleeper alike.
            let (_, e) = fresh.lag_and_weight(&t);
            t.set_vtime(scale_signed(snapshot.lag(r), e.num, e.den));
            // Ids are unique: the snapshot was validated.
            let Ok(slot) = fresh.threads.insert(r.id, t) else {
                return Err(SchedError::BadSnapshot);
            };
            match r.state {
                // The exporter listed runnable threads in its order of
                // preference: that becomes the queue order.
                ThreadState::Runnable => fresh.enqueue(slot),
                ThreadState::Running(core) => fresh.running.set(core, Some((r.id, slot))),
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
