//! Round robin: a FIFO of runnable threads, each runs one quantum in turn.
//! Weights are kept (so a swap to a proportional policy restores them) but
//! not used for decisions; virtual time is kept up to date for the same reason.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::{BTreeMap, VecDeque};

use sched_api::{
    vtime_for, CoreId, Policy, PolicyKind, RunEnd, SchedError, Snapshot, ThreadId, ThreadRecord,
    ThreadState,
};

#[derive(Clone, Copy, Debug)]
struct Thread {
    weight: u32,
    state: ThreadState,
    service_ns: u64,
    vtime: u128,
}

/// A round-robin scheduler.
pub struct RoundRobin {
    quantum_ns: u64,
    threads: BTreeMap<ThreadId, Thread>,
    queue: VecDeque<ThreadId>,
    global_vtime: u128,
}

impl RoundRobin {
    pub fn new(quantum_ns: u64) -> Self {
        RoundRobin {
            quantum_ns,
            threads: BTreeMap::new(),
            queue: VecDeque::new(),
            global_vtime: 0,
        }
    }

    pub fn from_snapshot(quantum_ns: u64, snapshot: Snapshot) -> Result<Self, SchedError> {
        let mut r = RoundRobin::new(quantum_ns);
        r.import(snapshot)?;
        Ok(r)
    }

    fn active_weight(&self) -> u32 {
        let w: u64 = self
            .threads
            .values()
            .filter(|t| t.state != ThreadState::Sleeping)
            .map(|t| u64::from(t.weight))
            .sum();
        u32::try_from(w.max(1)).unwrap_or(u32::MAX)
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
        let vtime = self.global_vtime;
        self.threads.insert(
            id,
            Thread {
                weight,
                state: ThreadState::Runnable,
                service_ns: 0,
                vtime,
            },
        );
        self.queue.push_back(id);
        Ok(())
    }

    fn remove(&mut self, id: ThreadId) -> Result<ThreadRecord, SchedError> {
        let record = self.record(id).ok_or(SchedError::UnknownThread)?;
        self.threads.remove(&id);
        self.queue.retain(|&q| q != id);
        Ok(record)
    }

    fn set_weight(&mut self, id: ThreadId, weight: u32) -> Result<(), SchedError> {
        if weight == 0 {
            return Err(SchedError::ZeroWeight);
        }
        self.threads
            .get_mut(&id)
            .ok_or(SchedError::UnknownThread)?
            .weight = weight;
        Ok(())
    }

    fn sleep(&mut self, id: ThreadId) -> Result<(), SchedError> {
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        match t.state {
            ThreadState::Running(_) => Err(SchedError::IsRunning),
            ThreadState::Sleeping => Ok(()),
            ThreadState::Runnable => {
                t.state = ThreadState::Sleeping;
                self.queue.retain(|&q| q != id);
                Ok(())
            }
        }
    }

    fn wake(&mut self, id: ThreadId) -> Result<(), SchedError> {
        let global = self.global_vtime;
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        if t.state != ThreadState::Sleeping {
            return Err(SchedError::NotSleeping);
        }
        t.state = ThreadState::Runnable;
        t.vtime = t.vtime.max(global);
        self.queue.push_back(id);
        Ok(())
    }

    fn pick(&mut self, core: CoreId) -> Option<ThreadId> {
        let id = self.queue.pop_front()?;
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
        let active = self.active_weight();
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        if t.state != ThreadState::Running(core) {
            return Err(SchedError::NotRunning);
        }
        t.service_ns += ran_ns;
        t.vtime += vtime_for(ran_ns, t.weight);
        self.global_vtime += vtime_for(ran_ns, active);
        if end == RunEnd::Blocked {
            t.state = ThreadState::Sleeping;
        } else {
            t.state = ThreadState::Runnable;
            self.queue.push_back(id);
        }
        Ok(())
    }

    fn set_cores(&mut self, _cores: usize) {}

    fn quantum_ns(&self) -> u64 {
        self.quantum_ns
    }

    fn export(&self) -> Snapshot {
        // Queue order first (so a swap back keeps the round), then the rest.
        let mut threads: alloc::vec::Vec<ThreadRecord> = self
            .queue
            .iter()
            .filter_map(|&id| self.record(id))
            .collect();
        threads.extend(
            self.threads
                .keys()
                .filter(|id| !self.queue.contains(id))
                .filter_map(|&id| self.record(id)),
        );
        Snapshot {
            threads,
            global_vtime: self.global_vtime,
        }
    }

    fn import(&mut self, snapshot: Snapshot) -> Result<(), SchedError> {
        snapshot.validate()?;
        self.threads.clear();
        self.queue.clear();
        self.global_vtime = snapshot.global_vtime;
        // Runnable threads queue least-served first: round robin promises
        // equal time, so weight-scaled virtual time is the wrong order here.
        let mut runnable: alloc::vec::Vec<&ThreadRecord> = snapshot
            .threads
            .iter()
            .filter(|r| r.state == ThreadState::Runnable)
            .collect();
        runnable.sort_by_key(|r| (r.service_ns, r.id));
        for r in &snapshot.threads {
            self.threads.insert(
                r.id,
                Thread {
                    weight: r.weight,
                    state: r.state,
                    service_ns: r.service_ns,
                    vtime: r.vtime,
                },
            );
        }
        self.queue.extend(runnable.iter().map(|r| r.id));
        Ok(())
    }

    fn record(&self, id: ThreadId) -> Option<ThreadRecord> {
        let t = self.threads.get(&id)?;
        Some(ThreadRecord {
            id,
            weight: t.weight,
            state: t.state,
            service_ns: t.service_ns,
            vtime: t.vtime,
        })
    }

    fn len(&self) -> usize {
        self.threads.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sched_api::sim::{self, Behaviour, SimThread};

    #[test]
    fn equal_quanta_exactly() {
        let mut rr = RoundRobin::new(1000);
        for id in 0..5 {
            rr.add(id, 1 + id * 10).unwrap();
        }
        let threads = [SimThread {
            weight: 1,
            behaviour: Behaviour::CpuBound,
        }; 5];
        let s = sim::run(&mut rr, 2, 1000, &threads).unwrap();
        let (min, max) = (s.iter().min().unwrap(), s.iter().max().unwrap());
        assert!(max - min <= 1000, "{s:?}");
    }

    #[test]
    fn import_queues_least_served_first_whatever_the_weights() {
        let mut rr = RoundRobin::new(1000);
        let rec = |id, weight, service_ns| ThreadRecord {
            id,
            weight,
            state: ThreadState::Runnable,
            service_ns,
            vtime: 0,
        };
        let threads = vec![rec(1, 8, 5000), rec(2, 1, 1000), rec(3, 4, 3000)];
        rr.import(Snapshot {
            threads,
            global_vtime: 0,
        })
        .unwrap();
        assert_eq!(
            [rr.pick(0), rr.pick(1), rr.pick(2)],
            [Some(2), Some(3), Some(1)]
        );
    }

    #[test]
    fn errors_not_panics() {
        let mut rr = RoundRobin::new(1000);
        assert_eq!(rr.add(1, 0), Err(SchedError::ZeroWeight));
        rr.add(1, 1).unwrap();
        assert_eq!(rr.add(1, 1), Err(SchedError::DuplicateThread));
        assert_eq!(
            rr.charge(1, 0, 5, RunEnd::Preempted),
            Err(SchedError::NotRunning)
        );
        assert_eq!(rr.wake(1), Err(SchedError::NotSleeping));
        assert_eq!(rr.pick(3), Some(1));
        assert_eq!(
            rr.charge(1, 2, 5, RunEnd::Preempted),
            Err(SchedError::NotRunning)
        );
        assert_eq!(rr.sleep(1), Err(SchedError::IsRunning));
        assert_eq!(rr.remove(9), Err(SchedError::UnknownThread));
    }
}
