//! Runtime swaps of a policy holding `tbench`'s 32 spinning threads
//! (weights 1 to 4, every one runnable but those running on cores 1 to
//! `cores - 1`: core 0 runs the control thread, outside the policy), for
//! a profiler:
//! `valgrind --tool=callgrind --toggle-collect=swap::measured
//! target/release/examples/swap stride lottery 20` counts `count` swaps
//! from `from` to `to`, each a fresh policy built and
//! [`sched_api::swap`]ped in, as `libos::threads::swap_policy` does (the
//! old one dropped after `measured`, as the libOS drops it after its lock). Between them the threads run a few
//! quanta under `from` again (not counted). Callgrind's call counts of
//! `malloc` and `free` under `swap::measured` are the allocations.

use policy_bench::{empty_policy, kinds, QUANTUM_NS};
use sched_api::{Policy, PolicyKind, RunEnd};

/// The threads `tbench` swaps.
const THREADS: u32 = 32;
/// Quanta run on each core before each swap.
const QUANTA: u32 = 30;

/// The swap `libos::threads::swap_policy` makes: build, then swap. The
/// policy replaced is returned, for the caller to drop outside.
#[inline(never)]
fn measured(
    current: &mut Box<dyn Policy>,
    kind: PolicyKind,
    cores: usize,
    seed: u64,
) -> Box<dyn Policy> {
    let next = empty_policy(kind, cores, seed);
    sched_api::swap(current, next).expect("the swap succeeds")
}

/// Every core but 0 runs `QUANTA` quanta, the threads left running there.
fn run(p: &mut dyn Policy, cores: usize) {
    for core in 1..cores {
        for _ in 0..QUANTA {
            if let Some(id) = p.pick(core) {
                let _ = p.charge(id, core, QUANTUM_NS, RunEnd::Preempted);
            }
        }
        let _ = p.pick(core);
    }
    if cores == 1 {
        // One core: the threads ran while the control thread slept.
        for _ in 0..QUANTA {
            if let Some(id) = p.pick(0) {
                let _ = p.charge(id, 0, QUANTUM_NS, RunEnd::Preempted);
            }
        }
    }
}

/// Ends every run, so that the policy can be swapped back cleanly.
fn stop(p: &mut dyn Policy) {
    for id in 1..=THREADS {
        if let Some(sched_api::ThreadState::Running(core)) = p.record(id).map(|r| r.state) {
            let _ = p.charge(id, core, QUANTUM_NS / 2, RunEnd::Preempted);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = |i: usize| {
        let name = args.get(i).map_or("stride", String::as_str);
        kinds()
            .find(|k| k.name() == name)
            .expect("a registered policy")
    };
    let (from, to) = (kind(1), kind(2));
    let count: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20);
    let cores: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut p = empty_policy(from, cores, 1);
    for i in 0..THREADS {
        p.add(i + 1, 1 + i % 4).expect("added");
    }
    for round in 0..count {
        run(p.as_mut(), cores);
        drop(measured(&mut p, to, cores, 2 + round));
        assert_eq!(p.len(), THREADS as usize);
        stop(p.as_mut());
        let back = empty_policy(from, cores, 100 + round);
        sched_api::swap(&mut p, back).expect("swapped back");
    }
}
