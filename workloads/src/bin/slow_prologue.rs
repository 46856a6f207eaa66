//! Ignores revocation (so its worker is repossessed while enabled) and then
//! dawdles in the prologue that should resume it: with the disabled flag
//! set it spins past that turn's grace, so the kernel repossesses the
//! prologue itself before it has resumed the worker. The kernel must keep
//! both contexts: resume the prologue directly (disabled), which then
//! resumes the worker from the preempted area. Seen on this machine's PVM,
//! where the kernel's entry path alone can outlast a slice: the prologue's
//! context overwrote the worker's and the libOS restarted `main`.
//! Reports per core how often that happened and whether the worker ever
//! had to start again.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::{AtomicU64, Ordering};

use libos::abi::shared::{events, MAX_CORES};
use libos::{report, rt, sys, App, Epilogue};

/// Prologues that were taken while dawdling and resumed disabled.
static RESUMED_DISABLED: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];

static SHADOW: [[AtomicU64; 4]; rt::MAX_WORKERS] =
    [const { [const { AtomicU64::new(0) }; 4] }; rt::MAX_WORKERS];

fn worker(core: usize) -> ! {
    let mut state = [0u64; 4];
    let mut all_ok = true;
    let mut next_report = sys::now_ns();
    loop {
        all_ok &= workloads::checked_step(&mut state, &SHADOW[core]);
        let now = sys::now_ns();
        if now >= next_report {
            next_report = now + 200_000_000;
            let s = rt::stats(core);
            report!(
                "\"kind\":\"slow_prologue\",\"repossessed\":{},\"prologues_resumed_disabled\":{},\"restarts\":{},\"context_intact\":{all_ok}",
                s.repossessed.load(Ordering::Relaxed),
                RESUMED_DISABLED[core].load(Ordering::Relaxed),
                s.restarts.load(Ordering::Relaxed)
            );
        }
    }
}

static APP: App = App {
    name: "slow_prologue",
    main: worker,
    epilogue: Epilogue::Ignore,
    on_fault: None,
};

/// Spins (disabled: every upcall starts so) until 2 ms past this turn's
/// grace end, then hands the upcall to the libOS as usual.
fn dawdle(core: usize) {
    let d = sys::dispatch(core);
    let until = d.grace_end_ns.load(Ordering::Relaxed) + 2_000_000;
    while sys::now_ns() < until {
        core::hint::spin_loop();
    }
    if d.events
        .fetch_and(!events::RESUMED_DISABLED, Ordering::AcqRel)
        & events::RESUMED_DISABLED
        != 0
    {
        RESUMED_DISABLED[core].fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(target_os = "none")]
#[no_mangle]
pub extern "C" fn _start(reason: u64, arg: u64, _dispatch: u64, core: u64) -> ! {
    if reason == libos::abi::shared::UpcallReason::Repossessed as u64 {
        dawdle(core as usize);
    }
    rt::upcall(&APP, _start as *const () as u64, reason, arg, core)
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    rt::panicked(info)
}

#[cfg(not(target_os = "none"))]
fn main() {
    let _ = (&APP, dawdle as fn(usize));
    println!("`slow_prologue` runs inside the exokernel: build it for x86_64-unknown-none");
}
