//! The platform's overhead on a CPU-bound thread: a counting loop alone on
//! a core (holding every slot), its rate in short windows (almost never
//! crossing a slice switch: the bare loop) against its rate over stretches
//! of many slices (every timer interrupt, revocation, epilogue and prologue
//! included). Run at several slice lengths (`slice_us=`).
#![cfg_attr(target_os = "none", no_std, no_main)]

use libos::{sys, App, Epilogue};
use workloads::bench::tsc;

/// Loop iterations and TSC cycles taken over at least `cycles`.
///
/// Never inlined: the bare windows and the long stretches must run the
/// same machine code. Inlined at both call sites, the compiler gave the
/// windows' copy one more instruction per batch (266 against 265), and a
/// deterministic run read the loop across 10 ms slices 0.13% *faster* than
/// the bare loop (−0.36% at 500 ms slices, where almost nothing switches).
/// The interval ends at the clock read that ended the loop, so it holds
/// whole batches (64 iterations and one read each) at any length.
#[inline(never)]
fn count(cycles: u64) -> (u64, u64) {
    let t0 = tsc();
    let (mut n, mut now) = (0u64, t0);
    while now - t0 < cycles {
        for _ in 0..64 {
            n = core::hint::black_box(n + 1);
        }
        now = tsc();
    }
    (n, now - t0)
}

/// Rounds of the comparison, and each round's long stretch in ms.
const ROUNDS: usize = 20;
const STRETCH_MS: f64 = 100.0;

fn worker(core: usize) -> ! {
    if core == 0 {
        let khz = sys::sysinfo().tsc_khz.max(1) as f64;
        let per_us = |(n, c): (u64, u64)| n as f64 / (c as f64 / khz * 1000.0);
        // Each round compares the bare loop (the median of 21 windows of
        // 50 µs; a slice switch falls in one window in 200 at 10 ms slices)
        // with the loop over a stretch of slices right after it, every
        // switch included. Pairing the two cancels the host's own drift,
        // which on this shared 2-core machine moves TCG's speed by up to 2x
        // between runs; the median of the rounds' ratios is the figure.
        let mut bare = [0.0f64; ROUNDS];
        let mut run = [0.0f64; ROUNDS];
        let mut ratio = [0.0f64; ROUNDS];
        for r in 0..ROUNDS {
            let mut windows = [0.0f64; 21];
            for w in &mut windows {
                *w = per_us(count((khz * 0.05) as u64));
            }
            windows.sort_by(f64::total_cmp);
            bare[r] = windows[10];
            run[r] = per_us(count((khz * STRETCH_MS) as u64));
            ratio[r] = run[r] / bare[r];
        }
        for v in [&mut bare, &mut run, &mut ratio] {
            v.sort_by(f64::total_cmp);
        }
        let mid = ROUNDS / 2;
        libos::report!(
            "\"kind\":\"bench_overhead\",\"slice_us\":{},\"rounds\":{ROUNDS},\"bare_per_us\":{:.1},\"run_per_us\":{:.1},\"ratio_min\":{:.4},\"ratio_max\":{:.4},\"overhead\":{:.5}",
            sys::sysinfo().slice_ns / 1000,
            bare[mid],
            run[mid],
            ratio[0],
            ratio[ROUNDS - 1],
            1.0 - ratio[mid]
        );
        libos::report!("\"kind\":\"bench_done\"");
    }
    loop {
        let _ = sys::yield_to(None, true);
    }
}

libos::program!(App {
    name: "overhead",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
