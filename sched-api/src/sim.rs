//! A deterministic multicore simulator for testing policies: P cores take
//! quanta in lock step; threads are CPU-bound, use a fraction of their
//! quantum, or run and sleep periodically. It checks the two rules every
//! policy must keep: a thread never runs on two cores at once, and no core
//! idles while a thread is runnable.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::{Policy, RunEnd, ThreadId};

/// How a simulated thread behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Always wants the CPU.
    CpuBound,
    /// Uses `percent` of each quantum, then yields (stays runnable).
    Partial { percent: u8 },
    /// Runs `run` quanta, then sleeps `sleep` rounds.
    Periodic { run: u32, sleep: u32 },
}

/// One simulated thread (its id is its index).
#[derive(Clone, Copy, Debug)]
pub struct SimThread {
    pub weight: u32,
    pub behaviour: Behaviour,
}

/// Runs `rounds` lock-step rounds on `cores` cores, with the threads
/// already added to `policy` as ids `0..threads.len()`. Returns each
/// thread's service, or the first rule broken.
pub fn run(
    policy: &mut dyn Policy,
    cores: usize,
    rounds: u32,
    threads: &[SimThread],
) -> Result<Vec<u64>, String> {
    let q = policy.quantum_ns();
    let n = threads.len();
    let mut service = vec![0u64; n];
    let mut ran_in_burst = vec![0u32; n];
    let mut sleeping_until: Vec<Option<u32>> = vec![None; n];
    for round in 0..rounds {
        for (i, s) in sleeping_until.iter_mut().enumerate() {
            if s.is_some_and(|r| r <= round) {
                *s = None;
                policy
                    .wake(i as ThreadId)
                    .map_err(|e| format!("wake {i}: {e:?}"))?;
            }
        }
        let mut running = vec![false; n];
        let mut picks = Vec::new();
        for core in 0..cores {
            match policy.pick(core) {
                Some(id) => {
                    let i = id as usize;
                    if i >= n || running[i] {
                        return Err(format!(
                            "round {round}: thread {id} picked twice or unknown"
                        ));
                    }
                    running[i] = true;
                    picks.push((core, i));
                }
                None => {
                    let waiting = (0..n).any(|i| !running[i] && sleeping_until[i].is_none());
                    if waiting {
                        return Err(format!(
                            "round {round}: core {core} idle while a thread is runnable"
                        ));
                    }
                }
            }
        }
        for (core, i) in picks {
            let (ran, end) = match threads[i].behaviour {
                Behaviour::CpuBound => (q, RunEnd::Preempted),
                Behaviour::Partial { percent } => {
                    (q * u64::from(percent.clamp(1, 100)) / 100, RunEnd::Yielded)
                }
                Behaviour::Periodic { run, sleep } => {
                    ran_in_burst[i] += 1;
                    if ran_in_burst[i] >= run && sleep > 0 {
                        ran_in_burst[i] = 0;
                        sleeping_until[i] = Some(round + 1 + sleep);
                        (q, RunEnd::Blocked)
                    } else {
                        (q, RunEnd::Preempted)
                    }
                }
            };
            service[i] += ran;
            policy
                .charge(i as ThreadId, core, ran, end)
                .map_err(|e| format!("charge {i}: {e:?}"))?;
        }
    }
    Ok(service)
}
