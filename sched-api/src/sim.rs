//! A deterministic multicore simulator for testing any [`Policy`].
//!
//! P virtual cores run fixed quanta (the policy's `quantum_ns`), either in
//! lock step (every core decides at the same instant) or staggered (core c
//! decides at `c/P` of each quantum, so picks happen while other cores run).
//! Each thread has a behaviour: CPU-bound; uses a fraction of each quantum
//! and yields or sleeps; or runs some quanta and then sleeps. A *round* is
//! one quantum of wall time.
//!
//! The simulator checks the rules every policy keeps (a thread never runs
//! on two cores, a sleeper is never picked, no core idles while a thread
//! waits) and tracks each thread's *ideal* service: every time a thread is
//! charged, the service it got is shared among the threads active at that
//! moment in proportion to their weights made feasible on P cores (a
//! sleeping thread is owed nothing while it sleeps). `lag = ideal -
//! service` (positive: owed) is sampled after every round in lock step and
//! after every decision when staggered (then it includes up to one quantum
//! of in-progress runs).

use alloc::vec;
use alloc::vec::Vec;

use crate::{feasible_weights, Policy, RunEnd, SchedError, ThreadId, ThreadState};

/// How a simulated thread behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Always wants the CPU; uses every quantum whole.
    CpuBound,
    /// Uses `percent` of each quantum it gets, then yields (`sleep == 0`)
    /// or blocks for `sleep` rounds.
    Burst { percent: u8, sleep: u32 },
    /// Runs `run` whole quanta, then blocks for `sleep` rounds.
    Periodic { run: u32, sleep: u32 },
}

/// One simulated thread (its id is its index).
#[derive(Clone, Copy, Debug)]
pub struct SimThread {
    pub weight: u32,
    pub behaviour: Behaviour,
}

impl SimThread {
    pub const fn cpu(weight: u32) -> SimThread {
        SimThread {
            weight,
            behaviour: Behaviour::CpuBound,
        }
    }
}

/// When cores decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Lockstep,
    Staggered,
}

/// A rule broken, or a policy call refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimError {
    Policy {
        round: u64,
        thread: ThreadId,
        error: SchedError,
    },
    /// A thread picked while it runs on another core.
    RunningTwice { round: u64, thread: ThreadId },
    /// A sleeping, exited or unknown thread picked.
    NotRunnable { round: u64, thread: ThreadId },
    /// A core left idle while a thread was runnable.
    IdleCore { round: u64, core: usize },
    /// No cores, or an unknown simulated thread.
    BadArgument,
}

#[derive(Clone, Debug)]
struct Sth {
    weight: u32,
    behaviour: Behaviour,
    live: bool,
    asleep_until: Option<u64>,
    burst: u32,
    service: u64,
    ideal: f64,
    max_lag: f64,
}

/// The simulator. Threads are added through it (it adds them to the
/// policy) so it knows their weights; the policy may be swapped between
/// calls to [`Sim::run`], with threads still running on their cores.
#[derive(Clone, Debug)]
pub struct Sim {
    cores: usize,
    mode: Mode,
    tick: u64,
    threads: Vec<Sth>,
    on_core: Vec<Option<usize>>,
}

impl Sim {
    pub fn new(cores: usize, mode: Mode) -> Result<Sim, SimError> {
        if cores == 0 {
            return Err(SimError::BadArgument);
        }
        Ok(Sim {
            cores,
            mode,
            tick: 0,
            threads: Vec::new(),
            on_core: vec![None; cores],
        })
    }

    /// Rounds (quanta of wall time) simulated so far.
    pub fn round(&self) -> u64 {
        self.tick / self.cores as u64
    }

    fn err(&self, thread: usize, error: SchedError) -> SimError {
        SimError::Policy {
            round: self.round(),
            thread: thread as ThreadId,
            error,
        }
    }

    /// Adds a thread (to the simulation and to `policy`); returns its id.
    pub fn spawn(&mut self, policy: &mut dyn Policy, t: SimThread) -> Result<ThreadId, SimError> {
        let i = self.threads.len();
        policy
            .add(i as ThreadId, t.weight)
            .map_err(|e| self.err(i, e))?;
        self.threads.push(Sth {
            weight: t.weight,
            behaviour: t.behaviour,
            live: true,
            asleep_until: None,
            burst: 0,
            service: 0,
            ideal: 0.0,
            max_lag: 0.0,
        });
        Ok(i as ThreadId)
    }

    fn index(&self, id: ThreadId) -> Result<usize, SimError> {
        let i = id as usize;
        match self.threads.get(i) {
            Some(t) if t.live => Ok(i),
            _ => Err(SimError::BadArgument),
        }
    }

    /// Changes a thread's weight (in the simulation and in `policy`).
    pub fn set_weight(
        &mut self,
        policy: &mut dyn Policy,
        id: ThreadId,
        weight: u32,
    ) -> Result<(), SimError> {
        let i = self.index(id)?;
        policy.set_weight(id, weight).map_err(|e| self.err(i, e))?;
        self.threads[i].weight = weight;
        Ok(())
    }

    /// Ends a thread: charged 0 ns with `Exited` if it is running, removed
    /// otherwise.
    pub fn exit(&mut self, policy: &mut dyn Policy, id: ThreadId) -> Result<(), SimError> {
        let i = self.index(id)?;
        let r = match self.on_core.iter().position(|&c| c == Some(i)) {
            Some(core) => {
                self.on_core[core] = None;
                policy.charge(id, core, 0, RunEnd::Exited)
            }
            None => policy.remove(id).map(|_| ()),
        };
        r.map_err(|e| self.err(i, e))?;
        self.threads[i].live = false;
        Ok(())
    }

    /// Simulates `rounds` more rounds.
    pub fn run(&mut self, policy: &mut dyn Policy, rounds: u32) -> Result<(), SimError> {
        for _ in 0..rounds {
            match self.mode {
                Mode::Lockstep => {
                    for core in 0..self.cores {
                        self.charge_core(policy, core)?;
                    }
                    self.wake_due(policy)?;
                    for core in 0..self.cores {
                        self.pick_core(policy, core)?;
                    }
                    self.tick += self.cores as u64;
                    self.sample();
                }
                Mode::Staggered => {
                    for core in 0..self.cores {
                        self.charge_core(policy, core)?;
                        self.wake_due(policy)?;
                        self.pick_core(policy, core)?;
                        self.tick += 1;
                        self.sample();
                    }
                }
            }
        }
        Ok(())
    }

    /// Charges every running thread for its quantum, so that services are
    /// complete (ends a simulation).
    pub fn finish(&mut self, policy: &mut dyn Policy) -> Result<(), SimError> {
        for core in 0..self.cores {
            self.charge_core(policy, core)?;
        }
        self.sample();
        Ok(())
    }

    fn wake_due(&mut self, policy: &mut dyn Policy) -> Result<(), SimError> {
        let round = self.round();
        for i in 0..self.threads.len() {
            let t = &self.threads[i];
            if t.live && t.asleep_until.is_some_and(|r| r <= round) {
                self.threads[i].asleep_until = None;
                policy.wake(i as ThreadId).map_err(|e| self.err(i, e))?;
            }
        }
        Ok(())
    }

    fn charge_core(&mut self, policy: &mut dyn Policy, core: usize) -> Result<(), SimError> {
        let Some(i) = self.on_core[core].take() else {
            return Ok(());
        };
        let q = policy.quantum_ns();
        let round = self.round();
        let t = &mut self.threads[i];
        let (ran, end) = match t.behaviour {
            Behaviour::CpuBound => (q, RunEnd::Preempted),
            Behaviour::Burst { percent, sleep } => {
                let ran = (u128::from(q) * u128::from(percent.clamp(1, 100)) / 100) as u64;
                if sleep == 0 {
                    (ran, RunEnd::Yielded)
                } else {
                    t.asleep_until = Some(round.saturating_add(u64::from(sleep)));
                    (ran, RunEnd::Blocked)
                }
            }
            Behaviour::Periodic { run, sleep } => {
                t.burst = t.burst.saturating_add(1);
                if t.burst >= run && sleep > 0 {
                    t.burst = 0;
                    t.asleep_until = Some(round.saturating_add(u64::from(sleep)));
                    (q, RunEnd::Blocked)
                } else {
                    (q, RunEnd::Preempted)
                }
            }
        };
        t.service = t.service.saturating_add(ran);
        // The ideal: this service, shared among the active threads (the
        // charged one included) by feasible weights.
        let active: Vec<usize> = (0..self.threads.len())
            .filter(|&j| {
                let s = &self.threads[j];
                s.live && (s.asleep_until.is_none() || j == i)
            })
            .collect();
        let weights: Vec<u64> = active
            .iter()
            .map(|&j| u64::from(self.threads[j].weight))
            .collect();
        let f = feasible_weights(&weights, self.cores).map_err(|e| self.err(i, e))?;
        let sum: f64 = f.iter().map(|e| e.as_f64()).sum();
        for (&j, e) in active.iter().zip(&f) {
            self.threads[j].ideal += ran as f64 * e.as_f64() / sum;
        }
        policy
            .charge(i as ThreadId, core, ran, end)
            .map_err(|e| self.err(i, e))
    }

    fn pick_core(&mut self, policy: &mut dyn Policy, core: usize) -> Result<(), SimError> {
        let round = self.round();
        match policy.try_pick(core) {
            Err(e) => Err(SimError::Policy {
                round,
                thread: ThreadId::MAX,
                error: e,
            }),
            Ok(Some(id)) => {
                let i = id as usize;
                let t = self.threads.get(i);
                if t.is_none_or(|t| !t.live || t.asleep_until.is_some()) {
                    return Err(SimError::NotRunnable { round, thread: id });
                }
                if self.on_core.contains(&Some(i)) {
                    return Err(SimError::RunningTwice { round, thread: id });
                }
                if policy.record(id).map(|r| r.state) != Some(ThreadState::Running(core)) {
                    return Err(SimError::Policy {
                        round,
                        thread: id,
                        error: SchedError::NotRunning,
                    });
                }
                self.on_core[core] = Some(i);
                Ok(())
            }
            Ok(None) => {
                let waiting = (0..self.threads.len()).any(|i| {
                    let t = &self.threads[i];
                    t.live && t.asleep_until.is_none() && !self.on_core.contains(&Some(i))
                });
                if waiting {
                    Err(SimError::IdleCore { round, core })
                } else {
                    Ok(())
                }
            }
        }
    }

    fn sample(&mut self) {
        for t in &mut self.threads {
            let lag = (t.ideal - t.service as f64).abs();
            if lag > t.max_lag {
                t.max_lag = lag;
            }
        }
    }

    /// Service charged to each thread so far (ns).
    pub fn service(&self) -> Vec<u64> {
        self.threads.iter().map(|t| t.service).collect()
    }

    /// Ideal service of each thread so far (ns).
    pub fn ideal(&self) -> Vec<f64> {
        self.threads.iter().map(|t| t.ideal).collect()
    }

    /// Current lag of each thread: ideal minus service (ns; positive: owed).
    pub fn lag(&self) -> Vec<f64> {
        self.threads
            .iter()
            .map(|t| t.ideal - t.service as f64)
            .collect()
    }

    /// Largest |lag| each thread had at a sample point (ns).
    pub fn max_lag(&self) -> Vec<f64> {
        self.threads.iter().map(|t| t.max_lag).collect()
    }

    /// Forgets the largest lags seen so far (e.g. after a warm-up).
    pub fn reset_max_lag(&mut self) {
        for t in &mut self.threads {
            t.max_lag = 0.0;
        }
    }
}

/// Adds `threads` to the empty `policy` (ids `0..n`), runs `rounds`
/// lock-step rounds on `cores` cores and charges the last quanta.
pub fn run(
    policy: &mut dyn Policy,
    cores: usize,
    rounds: u32,
    threads: &[SimThread],
) -> Result<Sim, SimError> {
    run_mode(policy, cores, Mode::Lockstep, rounds, threads)
}

/// [`run`] with a choice of [`Mode`].
pub fn run_mode(
    policy: &mut dyn Policy,
    cores: usize,
    mode: Mode,
    rounds: u32,
    threads: &[SimThread],
) -> Result<Sim, SimError> {
    let mut sim = Sim::new(cores, mode)?;
    for &t in threads {
        sim.spawn(policy, t)?;
    }
    sim.run(policy, rounds)?;
    sim.finish(policy)?;
    Ok(sim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CoreId, PolicyKind, Snapshot, ThreadRecord};
    use alloc::collections::BTreeMap;

    /// A deliberately broken policy: always returns thread 0, running or not.
    #[derive(Default)]
    struct Broken {
        threads: BTreeMap<ThreadId, ThreadState>,
        lazy: bool,
    }

    impl Policy for Broken {
        fn kind(&self) -> PolicyKind {
            PolicyKind::new("fifo-test")
        }
        fn add(&mut self, id: ThreadId, _: u32) -> Result<(), SchedError> {
            self.threads.insert(id, ThreadState::Runnable);
            Ok(())
        }
        fn remove(&mut self, _: ThreadId) -> Result<ThreadRecord, SchedError> {
            Err(SchedError::UnknownThread)
        }
        fn try_pick(&mut self, core: CoreId) -> Result<Option<ThreadId>, SchedError> {
            if self.lazy {
                return Ok(None);
            }
            self.threads.insert(0, ThreadState::Running(core));
            Ok(Some(0))
        }
        fn charge(&mut self, _: ThreadId, _: CoreId, _: u64, _: RunEnd) -> Result<(), SchedError> {
            Ok(())
        }
        fn sleep(&mut self, _: ThreadId) -> Result<(), SchedError> {
            Ok(())
        }
        fn wake(&mut self, _: ThreadId) -> Result<(), SchedError> {
            Ok(())
        }
        fn set_weight(&mut self, _: ThreadId, _: u32) -> Result<(), SchedError> {
            Ok(())
        }
        fn set_cores(&mut self, _: usize) -> Result<(), SchedError> {
            Ok(())
        }
        fn cores(&self) -> usize {
            1
        }
        fn quantum_ns(&self) -> u64 {
            10
        }
        fn export(&self) -> Snapshot {
            Snapshot::default()
        }
        fn import(&mut self, _: Snapshot) -> Result<(), SchedError> {
            Ok(())
        }
        fn record(&self, id: ThreadId) -> Option<ThreadRecord> {
            Some(ThreadRecord {
                id,
                weight: 1,
                state: *self.threads.get(&id)?,
                service_ns: 0,
                vtime: 0,
            })
        }
        fn len(&self) -> usize {
            self.threads.len()
        }
    }

    #[test]
    fn the_checks_catch_broken_policies() {
        let mut b = Broken::default();
        let threads = [SimThread::cpu(1); 2];
        assert_eq!(
            run(&mut b, 2, 1, &threads).unwrap_err(),
            SimError::RunningTwice {
                round: 0,
                thread: 0
            }
        );
        let mut lazy = Broken {
            lazy: true,
            ..Broken::default()
        };
        assert_eq!(
            run(&mut lazy, 2, 1, &threads).unwrap_err(),
            SimError::IdleCore { round: 0, core: 0 }
        );
        assert_eq!(
            Sim::new(0, Mode::Lockstep).unwrap_err(),
            SimError::BadArgument
        );
        let mut sim = Sim::new(1, Mode::Lockstep).unwrap();
        assert_eq!(
            sim.set_weight(&mut lazy, 5, 1).unwrap_err(),
            SimError::BadArgument
        );
        assert_eq!(sim.exit(&mut lazy, 5).unwrap_err(), SimError::BadArgument);
    }
}
