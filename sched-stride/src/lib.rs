//! Stride scheduling (Waldspurger & Weihl, MIT TM-528, 1995). Each thread's
//! pass advances by its stride (here: the virtual time of the service it
//! received, `ran * VT_SCALE / weight`), and the thread with the smallest
//! pass runs next: decisions are O(log n) through an ordered set.
//!
//! Dynamic changes follow the paper: a thread that leaves (sleeps) keeps
//! its *remaining* pass relative to the global pass and gets it back when
//! it returns; a weight change rescales the remaining pass. On P cores the
//! weights used for passes are made feasible first (Surplus Fair
//! Scheduling), so a thread asking for more than one core gets exactly one
//! and its pass stays in step with everyone else's.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use sched_api::{
    feasible_weights, CoreId, Policy, PolicyKind, RunEnd, SchedError, Snapshot, ThreadId,
    ThreadRecord, ThreadState, VT_SCALE,
};

#[derive(Clone, Copy, Debug)]
struct Thread {
    weight: u32,
    /// Weight made feasible on P cores (equal to `weight` when feasible).
    effective: f64,
    state: ThreadState,
    service_ns: u64,
    pass: u128,
    /// While sleeping: pass − global pass at the time it left.
    remain: i128,
}

/// A stride scheduler.
pub struct Stride {
    quantum_ns: u64,
    cores: usize,
    threads: BTreeMap<ThreadId, Thread>,
    /// Runnable threads that are not running, by (pass, id).
    queue: BTreeSet<(u128, ThreadId)>,
    global_pass: u128,
    /// Sum of effective weights of runnable and running threads.
    active_weight: f64,
}

impl Stride {
    pub fn new(quantum_ns: u64, cores: usize) -> Self {
        Stride {
            quantum_ns,
            cores: cores.max(1),
            threads: BTreeMap::new(),
            queue: BTreeSet::new(),
            global_pass: 0,
            active_weight: 0.0,
        }
    }

    /// Builds a stride scheduler holding `snapshot`'s threads.
    pub fn from_snapshot(
        quantum_ns: u64,
        cores: usize,
        snapshot: Snapshot,
    ) -> Result<Self, SchedError> {
        let mut s = Stride::new(quantum_ns, cores);
        s.import(snapshot)?;
        Ok(s)
    }

    /// Recomputes feasible weights after the active set or a weight changed.
    /// O(n log n), only on membership and weight changes, never per decision.
    fn refresh_weights(&mut self) {
        let active: Vec<ThreadId> = self
            .threads
            .iter()
            .filter(|(_, t)| t.state != ThreadState::Sleeping)
            .map(|(&id, _)| id)
            .collect();
        let weights: Vec<u64> = active
            .iter()
            .map(|id| u64::from(self.threads[id].weight))
            .collect();
        let feasible = feasible_weights(&weights, self.cores);
        self.active_weight = 0.0;
        for (id, w) in active.iter().zip(feasible) {
            if let Some(t) = self.threads.get_mut(id) {
                t.effective = w.max(f64::MIN_POSITIVE);
                self.active_weight += t.effective;
            }
        }
    }

    fn stride_of(ran_ns: u64, effective: f64) -> u128 {
        ((ran_ns as f64) * (VT_SCALE as f64) / effective) as u128
    }

    fn get(&self, id: ThreadId) -> Result<&Thread, SchedError> {
        self.threads.get(&id).ok_or(SchedError::UnknownThread)
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
        let pass = self.global_pass;
        self.threads.insert(
            id,
            Thread {
                weight,
                effective: f64::from(weight),
                state: ThreadState::Runnable,
                service_ns: 0,
                pass,
                remain: 0,
            },
        );
        self.queue.insert((pass, id));
        self.refresh_weights();
        Ok(())
    }

    fn remove(&mut self, id: ThreadId) -> Result<ThreadRecord, SchedError> {
        let record = self.record(id).ok_or(SchedError::UnknownThread)?;
        let t = self.threads.remove(&id).ok_or(SchedError::UnknownThread)?;
        self.queue.remove(&(t.pass, id));
        self.refresh_weights();
        Ok(record)
    }

    fn set_weight(&mut self, id: ThreadId, weight: u32) -> Result<(), SchedError> {
        if weight == 0 {
            return Err(SchedError::ZeroWeight);
        }
        let global = self.global_pass as i128;
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        // Rescale what remains of the current stride (the paper's rule).
        let scale = |remain: i128| remain * i128::from(t.weight) / i128::from(weight);
        match t.state {
            ThreadState::Sleeping => t.remain = scale(t.remain),
            state => {
                let queued = state == ThreadState::Runnable;
                if queued {
                    self.queue.remove(&(t.pass, id));
                }
                t.pass = (global + scale(t.pass as i128 - global)).max(0) as u128;
                if queued {
                    self.queue.insert((t.pass, id));
                }
            }
        }
        t.weight = weight;
        self.refresh_weights();
        Ok(())
    }

    fn sleep(&mut self, id: ThreadId) -> Result<(), SchedError> {
        let global = self.global_pass as i128;
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        match t.state {
            ThreadState::Running(_) => return Err(SchedError::IsRunning),
            ThreadState::Sleeping => return Ok(()),
            ThreadState::Runnable => {}
        }
        self.queue.remove(&(t.pass, id));
        t.remain = t.pass as i128 - global;
        t.state = ThreadState::Sleeping;
        self.refresh_weights();
        Ok(())
    }

    fn wake(&mut self, id: ThreadId) -> Result<(), SchedError> {
        let global = self.global_pass as i128;
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        if t.state != ThreadState::Sleeping {
            return Err(SchedError::NotSleeping);
        }
        t.pass = (global + t.remain).max(0) as u128;
        t.state = ThreadState::Runnable;
        self.queue.insert((t.pass, id));
        self.refresh_weights();
        Ok(())
    }

    fn pick(&mut self, core: CoreId) -> Option<ThreadId> {
        let (_, id) = self.queue.pop_first()?;
        if let Some(t) = self.threads.get_mut(&id) {
            t.state = ThreadState::Running(core);
        }
        Some(id)
    }

    fn charge(
        &mut self,
        id: ThreadId,
        core: CoreId,
        ran_ns: u64,
        end: RunEnd,
    ) -> Result<(), SchedError> {
        let active = self.active_weight.max(f64::MIN_POSITIVE);
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        if t.state != ThreadState::Running(core) {
            return Err(SchedError::NotRunning);
        }
        t.service_ns += ran_ns;
        t.pass += Self::stride_of(ran_ns, t.effective);
        self.global_pass += Self::stride_of(ran_ns, active);
        match end {
            RunEnd::Preempted | RunEnd::Yielded => {
                t.state = ThreadState::Runnable;
                self.queue.insert((t.pass, id));
            }
            RunEnd::Blocked => {
                t.remain = t.pass as i128 - self.global_pass as i128;
                t.state = ThreadState::Sleeping;
                self.refresh_weights();
            }
        }
        Ok(())
    }

    fn set_cores(&mut self, cores: usize) {
        self.cores = cores.max(1);
        self.refresh_weights();
    }

    fn quantum_ns(&self) -> u64 {
        self.quantum_ns
    }

    fn export(&self) -> Snapshot {
        Snapshot {
            threads: self
                .threads
                .keys()
                .filter_map(|&id| self.record(id))
                .collect(),
            global_vtime: self.global_pass,
        }
    }

    fn import(&mut self, snapshot: Snapshot) -> Result<(), SchedError> {
        snapshot.validate()?;
        self.threads.clear();
        self.queue.clear();
        self.global_pass = snapshot.global_vtime;
        let global = self.global_pass as i128;
        for r in snapshot.threads {
            let vtime =
                sched_api::bounded_vtime(r.vtime, self.global_pass, self.quantum_ns, r.weight);
            let t = Thread {
                weight: r.weight,
                effective: f64::from(r.weight),
                state: r.state,
                service_ns: r.service_ns,
                pass: vtime,
                remain: vtime as i128 - global,
            };
            if t.state == ThreadState::Runnable {
                self.queue.insert((t.pass, r.id));
            }
            self.threads.insert(r.id, t);
        }
        self.refresh_weights();
        Ok(())
    }

    fn record(&self, id: ThreadId) -> Option<ThreadRecord> {
        let t = self.get(id).ok()?;
        let vtime = match t.state {
            ThreadState::Sleeping => (self.global_pass as i128 + t.remain).max(0) as u128,
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
