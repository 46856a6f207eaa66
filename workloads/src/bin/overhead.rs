//! The platform's overhead on a CPU-bound thread: a counting loop alone on
//! a core (holding every slot), its rate in short windows (almost never
//! crossing a slice switch: the bare loop) against its rate over whole
//! seconds of slices (every timer interrupt, revocation, epilogue and
//! prologue included). Run at several slice lengths (`slice_us=`).
#![cfg_attr(target_os = "none", no_std, no_main)]

use libos::{sys, App, Epilogue};
use workloads::bench::tsc;

/// Loop iterations and TSC cycles taken over at least `cycles`.
fn count(cycles: u64) -> (u64, u64) {
    let (t0, mut n) = (tsc(), 0u64);
    while tsc() - t0 < cycles {
        for _ in 0..64 {
            n = core::hint::black_box(n + 1);
        }
    }
    (n, tsc() - t0)
}

fn worker(core: usize) -> ! {
    if core == 0 {
        let khz = sys::sysinfo().tsc_khz.max(1) as f64;
        let per_us = |(n, c): (u64, u64)| n as f64 / (c as f64 / khz * 1000.0);
        // Best of many 50 µs windows: the bare loop.
        let bare = (0..200)
            .map(|_| per_us(count((khz * 0.05) as u64)))
            .fold(0.0, f64::max);
        let mut runs = [0.0f64; 3];
        for r in &mut runs {
            *r = per_us(count((khz * 1000.0) as u64));
        }
        runs.sort_by(f64::total_cmp);
        let run = runs[1];
        libos::report!(
            "\"kind\":\"bench_overhead\",\"slice_us\":{},\"bare_per_us\":{bare:.1},\"run_per_us\":{run:.1},\"runs_per_us\":[{:.1},{:.1},{:.1}],\"overhead\":{:.5}",
            sys::sysinfo().slice_ns / 1000,
            runs[0],
            runs[1],
            runs[2],
            1.0 - run / bare
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
