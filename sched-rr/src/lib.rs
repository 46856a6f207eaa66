//! Round robin: a FIFO of runnable threads; each core takes the head, and
//! a thread goes to the back when its run ends (whole quantum or not).
//! Weights are kept, so a swap to a proportional policy restores them, but
//! not used for decisions.
//!
//! Fairness bookkeeping: round robin promises equal shares, so it measures
//! each thread's lag against an equal share of the cores (`clock` is the
//! equal-share virtual time). A snapshot expresses that lag in the neutral
//! unit (virtual time per ticket of feasible weight) around a global
//! virtual time that round robin does not move. So a thread owed service
//! when it arrives keeps that debt through a round-robin period, and a
//! round-robin period is not billed afterwards as weighted debt.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::BTreeMap;

use sched_api::{
    check_core, check_cores, scale_signed, CoreId, Ledger, Policy, PolicyKind, Ratio, RunEnd,
    SchedError, Snapshot, ThreadId, ThreadRecord, ThreadState,
};

#[derive(Clone, Copy, Debug)]
struct Thread {
    weight: u32,
    state: ThreadState,
    service_ns: u64,
    /// Place in the queue while runnable.
    seq: u64,
    /// Equal-share virtual time while active; while sleeping, the lag it
    /// left with (`vtime - clock`).
    vtime: i128,
}

/// A round-robin scheduler.
#[derive(Clone, Debug)]
pub struct RoundRobin {
    quantum_ns: u64,
    threads: BTreeMap<ThreadId, Thread>,
    /// Runnable threads that are not running, in arrival order.
    queue: BTreeMap<u64, ThreadId>,
    next_seq: u64,
    running: BTreeMap<CoreId, ThreadId>,
    /// Equal-share virtual time of the system.
    clock: i128,
    /// Weights of the runnable and running threads, feasible on P cores:
    /// only to express lags in the neutral unit.
    weights: Ledger,
    /// The neutral global virtual time of the last import (not advanced).
    origin: i128,
}

const ONE: Ratio = Ratio::new(1, 1);

impl RoundRobin {
    /// A round-robin scheduler for one core (see [`RoundRobin::with_cores`]).
    /// Never fails: a quantum of 0 is taken as 1 ns.
    pub fn new(quantum_ns: u64) -> Self {
        RoundRobin {
            quantum_ns: quantum_ns.max(1),
            threads: BTreeMap::new(),
            queue: BTreeMap::new(),
            next_seq: 0,
            running: BTreeMap::new(),
            clock: 0,
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

    fn enqueue(&mut self, id: ThreadId) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.insert(seq, id);
        if let Some(t) = self.threads.get_mut(&id) {
            t.seq = seq;
        }
    }

    /// A thread's lag in ns of equal share (times `VT_SCALE`) and the
    /// weight that turns it into the neutral unit: its feasible weight, or
    /// for a sleeper its own.
    fn lag_and_weight(&self, t: &Thread) -> (i128, Ratio) {
        match t.state {
            ThreadState::Sleeping => (t.vtime, Ratio::new(u128::from(t.weight), 1)),
            _ => (
                t.vtime.saturating_sub(self.clock),
                self.weights.effective(u64::from(t.weight)),
            ),
        }
    }
}

impl Policy for RoundRobin {
    fn kind(&self) -> PolicyKind {
        PolicyKind::RoundRobin
    }

    fn add(&mut self, id: ThreadId, weight: u32) -> Result<(), SchedError> {
        if weight == 0 {
            return Err(SchedError::ZeroWeight);
        }
        if self.threads.contains_key(&id) {
            return Err(SchedError::DuplicateThread);
        }
        self.threads.insert(
            id,
            Thread {
                weight,
                state: ThreadState::Runnable,
                service_ns: 0,
                seq: 0,
                vtime: self.clock,
            },
        );
        self.weights.insert(id, u64::from(weight));
        self.enqueue(id);
        Ok(())
    }

    fn remove(&mut self, id: ThreadId) -> Result<ThreadRecord, SchedError> {
        let record = self.record(id).ok_or(SchedError::UnknownThread)?;
        let t = self.threads.remove(&id).ok_or(SchedError::UnknownThread)?;
        match t.state {
            ThreadState::Runnable => {
                self.queue.remove(&t.seq);
            }
            ThreadState::Running(core) => {
                self.running.remove(&core);
            }
            ThreadState::Sleeping => {}
        }
        if t.state != ThreadState::Sleeping {
            self.weights.remove(id, u64::from(t.weight));
        }
        Ok(record)
    }

    fn try_pick(&mut self, core: CoreId) -> Result<Option<ThreadId>, SchedError> {
        check_core(core)?;
        if self.running.contains_key(&core) {
            return Err(SchedError::CoreBusy);
        }
        let Some((_, id)) = self.queue.pop_first() else {
            return Ok(None);
        };
        if let Some(t) = self.threads.get_mut(&id) {
            t.state = ThreadState::Running(core);
        }
        self.running.insert(core, id);
        Ok(Some(id))
    }

    fn charge(
        &mut self,
        id: ThreadId,
        core: CoreId,
        ran_ns: u64,
        end: RunEnd,
    ) -> Result<(), SchedError> {
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        if t.state != ThreadState::Running(core) {
            return Err(SchedError::NotRunning);
        }
        // Equal shares: every thread has weight 1, and nobody can be capped
        // (with n <= P threads each has a core).
        t.service_ns = t.service_ns.saturating_add(ran_ns);
        t.vtime = t.vtime.saturating_add(Ledger::vt_at(ran_ns, ONE));
        let n = self.weights.len().max(1) as u128;
        self.clock = self
            .clock
            .saturating_add(Ledger::vt_at(ran_ns, Ratio::new(n, 1)));
        self.running.remove(&core);
        match end {
            RunEnd::Preempted | RunEnd::Yielded => {
                t.state = ThreadState::Runnable;
                self.enqueue(id);
            }
            RunEnd::Blocked => {
                t.state = ThreadState::Sleeping;
                t.vtime = t.vtime.saturating_sub(self.clock);
                self.weights.remove(id, u64::from(t.weight));
            }
            RunEnd::Exited => {
                self.weights.remove(id, u64::from(t.weight));
                self.threads.remove(&id);
            }
        }
        Ok(())
    }

    fn sleep(&mut self, id: ThreadId) -> Result<(), SchedError> {
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        match t.state {
            ThreadState::Running(_) => Err(SchedError::AlreadyRunning),
            ThreadState::Sleeping => Err(SchedError::AlreadySleeping),
            ThreadState::Runnable => {
                t.state = ThreadState::Sleeping;
                t.vtime = t.vtime.saturating_sub(self.clock);
                self.queue.remove(&t.seq);
                self.weights.remove(id, u64::from(t.weight));
                Ok(())
            }
        }
    }

    fn wake(&mut self, id: ThreadId) -> Result<(), SchedError> {
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        if t.state != ThreadState::Sleeping {
            return Err(SchedError::NotSleeping);
        }
        t.state = ThreadState::Runnable;
        t.vtime = self.clock.saturating_add(t.vtime);
        self.weights.insert(id, u64::from(t.weight));
        self.enqueue(id);
        Ok(())
    }

    fn set_weight(&mut self, id: ThreadId, weight: u32) -> Result<(), SchedError> {
        if weight == 0 {
            return Err(SchedError::ZeroWeight);
        }
        // The lag round robin keeps is in ns of equal share: unaffected.
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        if t.state != ThreadState::Sleeping {
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
        let runnable = self.queue.values().copied();
        let running = self.running.values().copied();
        let sleeping = self
            .threads
            .iter()
            .filter(|(_, t)| t.state == ThreadState::Sleeping)
            .map(|(&id, _)| id);
        Snapshot {
            global_vtime: self.origin,
            threads: runnable
                .chain(running)
                .chain(sleeping)
                .filter_map(|id| self.record(id))
                .collect(),
        }
    }

    fn import(&mut self, snapshot: Snapshot) -> Result<(), SchedError> {
        snapshot.validate()?;
        let mut fresh = RoundRobin::new(self.quantum_ns);
        fresh.weights.set_cores(self.cores());
        fresh.origin = snapshot.global_vtime;
        for r in &snapshot.threads {
            if r.state != ThreadState::Sleeping {
                fresh.weights.insert(r.id, u64::from(r.weight));
            }
        }
        for r in &snapshot.threads {
            let mut t = Thread {
                weight: r.weight,
                state: r.state,
                service_ns: r.service_ns,
                seq: 0,
                vtime: 0,
            };
            // Neutral lag -> ns of service (times VT_SCALE). The fresh clock
            // is 0, so this is the vtime of an active thread and the frozen
            // lag of a sleeper alike.
            let (_, e) = fresh.lag_and_weight(&t);
            t.vtime = scale_signed(snapshot.lag(r), e.num, e.den);
            fresh.threads.insert(r.id, t);
            match r.state {
                // The exporter listed runnable threads in its order of
                // preference: that becomes the queue order.
                ThreadState::Runnable => fresh.enqueue(r.id),
                ThreadState::Running(core) => {
                    fresh.running.insert(core, r.id);
                }
                ThreadState::Sleeping => {}
            }
        }
        *self = fresh;
        Ok(())
    }

    fn record(&self, id: ThreadId) -> Option<ThreadRecord> {
        let t = self.threads.get(&id)?;
        let (lag, e) = self.lag_and_weight(t);
        Some(ThreadRecord {
            id,
            weight: t.weight,
            state: t.state,
            service_ns: t.service_ns,
            vtime: self.origin.saturating_add(scale_signed(lag, e.den, e.num)),
        })
    }

    fn len(&self) -> usize {
        self.threads.len()
    }
}

#[cfg(test)]
mod tests;
