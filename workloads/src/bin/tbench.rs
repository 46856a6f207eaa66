//! Benchmarks of the libOS: user-level thread switch (one core), each
//! policy's decision and accounting cost against thread count, and the
//! time a runtime swap of the application's policy holds its threads off
//! the cores, and the call's time as its caller sees it (run on 1, 4 and 8
//! cores).
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use core::sync::atomic::{AtomicU64, Ordering};

use libos::sched_api::RunEnd;
use libos::sched_registry;
use libos::{sys, threads};
use workloads::bench::{cycles_per, report, tsc, REPS};

static SPIN: [AtomicU64; 32] = [const { AtomicU64::new(0) }; 32];
/// Thread switches per repetition of the switch benchmark.
const SWITCHES: u64 = 40_000;
/// Threads yielding in turn in the switch benchmark: every switch is the
/// policy's decision among this many (issue 16 defines the libOS thread
/// switch with the decision for 8 threads).
const SWITCH_THREADS: usize = 8;

fn yielder(_: usize) {
    for _ in 0..SWITCHES / SWITCH_THREADS as u64 {
        threads::yield_now();
    }
}

fn spinner(i: usize) {
    loop {
        SPIN[i].fetch_add(1, Ordering::Relaxed);
    }
}

fn main_thread(_: usize) {
    let cores = sys::sysinfo().cores as u64;
    if cores == 1 {
        // Threads yielding in turn: every yield is one switch, the policy
        // choosing among all of them (this one waits in `join`, outside
        // the policy).
        let cycles: alloc::vec::Vec<f64> = (0..REPS)
            .map(|_| {
                let t0 = tsc();
                let yielders: alloc::vec::Vec<usize> = (0..SWITCH_THREADS)
                    .filter_map(|i| threads::spawn(yielder, i, 1))
                    .collect();
                assert_eq!(yielders.len(), SWITCH_THREADS, "every yielder spawned");
                for t in yielders {
                    threads::join(t);
                }
                (tsc() - t0) as f64 / SWITCHES as f64
            })
            .collect();
        report(
            "thread_switch",
            SWITCHES,
            &cycles,
            &alloc::format!(",\"threads\":{SWITCH_THREADS}"),
        );
        for kind in sched_registry::POLICIES.iter().map(|p| p.kind) {
            for n in [1u32, 10, 100, 1000, 10_000] {
                let mut p = threads::new_policy(kind, 1).expect("a registered policy builds");
                for id in 0..n {
                    let _ = p.add(id, 1 + id % 10);
                }
                let quantum = sys::sysinfo().slice_ns;
                let (cycles, iters) = cycles_per(1000, 40, || {
                    if let Some(id) = p.pick(0) {
                        let _ = p.charge(id, 0, quantum, RunEnd::Preempted);
                    }
                });
                report(
                    "policy_decision",
                    iters,
                    &cycles,
                    &alloc::format!(",\"policy\":\"{}\",\"threads\":{n}", kind.name()),
                );
            }
        }
    }
    // Swap downtime under load: 32 CPU-bound threads on every core.
    for i in 0..SPIN.len() {
        let _ = threads::spawn(spinner, i, 1 + i as u32 % 4);
    }
    threads::sleep_until(sys::now_ns() + 200_000_000);
    // Two figures a swap: how long it held the runtime lock (the threads'
    // downtime: no core decides meanwhile), and the call as its caller saw
    // it, which adds the new policy's construction and any time the caller
    // itself spent off its core (a turn's end while it waits for the lock
    // hands its core to another thread first).
    let khz = sys::sysinfo().tsc_khz as f64;
    let (mut held, mut call) = (alloc::vec::Vec::new(), alloc::vec::Vec::new());
    let policies = sched_registry::POLICIES;
    for round in 0..policies.len() * REPS {
        let to = policies[(round + 1) % policies.len()].kind;
        let t0 = tsc();
        let Some(ns) = threads::swap_policy_held(to) else {
            panic!("the swap to {} failed", to.name());
        };
        call.push((tsc() - t0) as f64);
        held.push(ns as f64 * khz / 1e6);
        threads::sleep_until(sys::now_ns() + 30_000_000);
    }
    let extra = alloc::format!(",\"cores\":{cores},\"threads\":{}", SPIN.len());
    report("swap_downtime", 1, &held, &extra);
    report("swap_call", 1, &call, &extra);
    libos::report!("\"kind\":\"bench_done\"");
    loop {
        threads::sleep_until(sys::now_ns() + 1_000_000_000);
    }
}

libos::threaded_program!(main_thread);
