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
//!   an ordered set keyed by `(pass, id)`; a running thread is not in it,
//!   so another core can never pick it and nothing is scanned.
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

use alloc::collections::{BTreeMap, BTreeSet};

use sched_api::{
    check_core, check_cores, scale_signed, CoreId, Ledger, Policy, PolicyKind, RunEnd, SchedError,
    Snapshot, ThreadId, ThreadRecord, ThreadState,
};

#[derive(Clone, Copy, Debug)]
struct Thread {
    weight: u32,
    state: ThreadState,
    service_ns: u64,
    /// Pass while runnable or running; the remaining pass (`pass -
    /// global_pass` when it left) while sleeping.
    pass: i128,
}

/// A stride scheduler.
#[derive(Clone, Debug)]
pub struct Stride {
    quantum_ns: u64,
    threads: BTreeMap<ThreadId, Thread>,
    /// Runnable threads that are not running, by (pass, id).
    queue: BTreeSet<(i128, ThreadId)>,
    /// Active weights (feasible on P cores) and the global pass.
    ledger: Ledger,
    running: BTreeMap<CoreId, ThreadId>,
}

impl Stride {
    /// A stride scheduler. Never fails: a quantum of 0 is taken as 1 ns and
    /// a core count out of range as the nearest valid one; use
    /// [`Stride::try_new`] to have them refused.
    pub fn new(quantum_ns: u64, cores: usize) -> Self {
        Stride {
            quantum_ns: quantum_ns.max(1),
            threads: BTreeMap::new(),
            queue: BTreeSet::new(),
            ledger: Ledger::new(cores.clamp(1, sched_api::MAX_CORES), 1),
            running: BTreeMap::new(),
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
}

impl Policy for Stride {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Stride
    }

    fn add(&mut self, id: ThreadId, weight: u32) -> Result<(), SchedError> {
        if weight == 0 {
            return Err(SchedError::ZeroWeight);
        }
        if self.threads.contains_key(&id) {
            return Err(SchedError::DuplicateThread);
        }
        let pass = self.global();
        self.threads.insert(
            id,
            Thread {
                weight,
                state: ThreadState::Runnable,
                service_ns: 0,
                pass,
            },
        );
        self.queue.insert((pass, id));
        self.ledger.insert(id, u64::from(weight));
        Ok(())
    }

    fn remove(&mut self, id: ThreadId) -> Result<ThreadRecord, SchedError> {
        let record = self.record(id).ok_or(SchedError::UnknownThread)?;
        let t = self.threads.remove(&id).ok_or(SchedError::UnknownThread)?;
        match t.state {
            ThreadState::Runnable => {
                self.queue.remove(&(t.pass, id));
            }
            ThreadState::Running(core) => {
                self.running.remove(&core);
            }
            ThreadState::Sleeping => {}
        }
        if t.state != ThreadState::Sleeping {
            self.ledger.remove(id, u64::from(t.weight));
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
        let w = u64::from(t.weight);
        t.service_ns = t.service_ns.saturating_add(ran_ns);
        // Only what it used: stride * ran / quantum.
        t.pass = t.pass.saturating_add(self.ledger.vt(ran_ns, w));
        self.ledger.advance(ran_ns);
        self.running.remove(&core);
        let global = self.ledger.now();
        match end {
            RunEnd::Preempted | RunEnd::Yielded => {
                t.state = ThreadState::Runnable;
                self.queue.insert((t.pass, id));
            }
            RunEnd::Blocked => {
                t.state = ThreadState::Sleeping;
                t.pass = t.pass.saturating_sub(global);
                self.ledger.remove(id, w);
            }
            RunEnd::Exited => {
                self.threads.remove(&id);
                self.ledger.remove(id, w);
            }
        }
        Ok(())
    }

    fn sleep(&mut self, id: ThreadId) -> Result<(), SchedError> {
        let global = self.global();
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        match t.state {
            ThreadState::Running(_) => return Err(SchedError::AlreadyRunning),
            ThreadState::Sleeping => return Err(SchedError::AlreadySleeping),
            ThreadState::Runnable => {}
        }
        self.queue.remove(&(t.pass, id));
        t.pass = t.pass.saturating_sub(global);
        t.state = ThreadState::Sleeping;
        self.ledger.remove(id, u64::from(t.weight));
        Ok(())
    }

    fn wake(&mut self, id: ThreadId) -> Result<(), SchedError> {
        let global = self.global();
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        if t.state != ThreadState::Sleeping {
            return Err(SchedError::NotSleeping);
        }
        t.pass = global.saturating_add(t.pass);
        t.state = ThreadState::Runnable;
        self.queue.insert((t.pass, id));
        self.ledger.insert(id, u64::from(t.weight));
        Ok(())
    }

    fn set_weight(&mut self, id: ThreadId, weight: u32) -> Result<(), SchedError> {
        if weight == 0 {
            return Err(SchedError::ZeroWeight);
        }
        let global = self.global();
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        let old = t.weight;
        // remain' = remain * stride' / stride = remain * old / new.
        let rescale = |remain: i128| scale_signed(remain, u128::from(old), u128::from(weight));
        match t.state {
            ThreadState::Sleeping => t.pass = rescale(t.pass),
            state => {
                let queued = state == ThreadState::Runnable;
                if queued {
                    self.queue.remove(&(t.pass, id));
                }
                t.pass = global.saturating_add(rescale(t.pass.saturating_sub(global)));
                if queued {
                    self.queue.insert((t.pass, id));
                }
                self.ledger.remove(id, u64::from(old));
                self.ledger.insert(id, u64::from(weight));
            }
        }
        t.weight = weight;
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
        let runnable = self.queue.iter().map(|&(_, id)| id);
        let running = self.running.values().copied();
        let sleeping = self
            .threads
            .iter()
            .filter(|(_, t)| t.state == ThreadState::Sleeping)
            .map(|(&id, _)| id);
        Snapshot {
            global_vtime: self.global(),
            threads: runnable
                .chain(running)
                .chain(sleeping)
                .filter_map(|id| self.record(id))
                .collect(),
        }
    }

    fn import(&mut self, snapshot: Snapshot) -> Result<(), SchedError> {
        snapshot.validate()?;
        let mut fresh = Stride {
            quantum_ns: self.quantum_ns,
            threads: BTreeMap::new(),
            queue: BTreeSet::new(),
            ledger: Ledger::new(self.cores(), 1),
            running: BTreeMap::new(),
        };
        let global = snapshot.global_vtime;
        fresh.ledger.set_now(global);
        for r in snapshot.threads {
            let pass = match r.state {
                ThreadState::Sleeping => r.vtime.saturating_sub(global),
                ThreadState::Runnable => {
                    fresh.queue.insert((r.vtime, r.id));
                    r.vtime
                }
                ThreadState::Running(core) => {
                    fresh.running.insert(core, r.id);
                    r.vtime
                }
            };
            if r.state != ThreadState::Sleeping {
                fresh.ledger.insert(r.id, u64::from(r.weight));
            }
            fresh.threads.insert(
                r.id,
                Thread {
                    weight: r.weight,
                    state: r.state,
                    service_ns: r.service_ns,
                    pass,
                },
            );
        }
        *self = fresh;
        Ok(())
    }

    fn record(&self, id: ThreadId) -> Option<ThreadRecord> {
        let t = self.threads.get(&id)?;
        let vtime = match t.state {
            ThreadState::Sleeping => self.global().saturating_add(t.pass),
            _ => t.pass,
        };
        Some(ThreadRecord {
            id,
            weight: t.weight,
            state: t.state,
            service_ns: t.service_ns,
            vtime,
        })
    }

    fn len(&self) -> usize {
        self.threads.len()
    }
}

#[cfg(test)]
mod tests;
