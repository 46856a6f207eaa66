//! Timing for the benchmark programs: many iterations per measurement,
//! several repetitions, TSC cycles and ns (never one event timed alone:
//! under nested KVM `rdtsc` itself can cost thousands of cycles).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// Repetitions of every measurement.
pub const REPS: usize = 5;

pub fn tsc() -> u64 {
    // SAFETY: rdtsc is allowed in ring 3 (CR4.TSD clear).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Cycles per iteration of `f`, `REPS` times, each repetition running
/// batches until `budget_ms` of TSC time has passed; returns the figures
/// and the iterations of the last repetition. Batches start at one
/// iteration and double up to `max_batch` while one takes under a tenth of
/// the budget, so a path that costs milliseconds (ring 0 emulated, as under
/// this machine's PVM "KVM") still finishes in its budget, and a fast one
/// reads the clock only every `max_batch` iterations.
pub fn cycles_per(max_batch: u64, budget_ms: u64, mut f: impl FnMut()) -> (Vec<f64>, u64) {
    let budget = libos::sys::sysinfo().tsc_khz * budget_ms;
    let mut batch = 1;
    let mut iters = 0;
    let figures = (0..REPS)
        .map(|_| {
            let t0 = tsc();
            iters = 0;
            loop {
                let b0 = tsc();
                for _ in 0..batch {
                    f();
                }
                iters += batch;
                let now = tsc();
                if now - t0 >= budget {
                    break (now - t0) as f64 / iters as f64;
                }
                if (now - b0) * 10 < budget {
                    batch = (batch * 2).min(max_batch);
                }
            }
        })
        .collect();
    (figures, iters)
}

/// Emits a `bench` record: `name`, `iters`, per repetition `cycles` and
/// `ns` (from the exported TSC rate), plus `extra` fields.
pub fn report(name: &str, iters: u64, cycles: &[f64], extra: &str) {
    let khz = libos::sys::sysinfo().tsc_khz.max(1) as f64;
    let list = |f: &dyn Fn(f64) -> f64| {
        let mut s = String::new();
        for (i, c) in cycles.iter().enumerate() {
            let _ = write!(s, "{}{:.1}", if i == 0 { "" } else { "," }, f(*c));
        }
        s
    };
    let record = alloc::format!(
        "\"kind\":\"bench\",\"bench\":\"{name}\",\"iters\":{iters},\"cycles\":[{}],\"ns\":[{}]{extra}",
        list(&|c| c),
        list(&|c| c * 1e6 / khz)
    );
    let _ = libos::sys::report(&record);
}
