//! A cooperative CPU-bound program: counts on every core, yields at every
//! epilogue, and reports per core once it has seen 20 prologues.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::{AtomicU64, Ordering};

use libos::{report, rt, App, Epilogue};

static SHADOW: [[AtomicU64; 4]; rt::MAX_WORKERS] =
    [const { [const { AtomicU64::new(0) }; 4] }; rt::MAX_WORKERS];

fn worker(core: usize) -> ! {
    let mut state = [0u64; 4];
    let mut iterations = 0u64;
    let mut all_ok = true;
    let mut reported = false;
    loop {
        all_ok &= workloads::checked_step(&mut state, &SHADOW[core]);
        iterations += 1;
        let s = rt::stats(core);
        if !reported && s.prologues.load(Ordering::Relaxed) >= 20 {
            reported = true;
            report!(
                "\"kind\":\"spin\",\"core\":{core},\"prologues\":{},\"epilogues\":{},\"repossessed\":{},\"iterations\":{iterations},\"context_intact\":{all_ok}",
                s.prologues.load(Ordering::Relaxed),
                s.epilogues.load(Ordering::Relaxed),
                s.repossessed.load(Ordering::Relaxed)
            );
        }
    }
}

libos::program!(App {
    name: "spin",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
