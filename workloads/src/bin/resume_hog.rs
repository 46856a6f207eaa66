//! Hostile: registers a "resume range" (where the kernel lets a libOS
//! finish restoring a context before revoking it) that covers its whole
//! address space, then spins. The kernel must still take the core at the
//! end of grace, every turn, and everyone else must keep their share. Its
//! disabled flag is clear all along, so the kernel must resume it with the
//! flag clear: it reports how often it found the flag set.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::Ordering;

use libos::abi::shared::UpcallTable;
use libos::{report, sys, App, Epilogue};

fn worker(core: usize) -> ! {
    let entry = _start_address();
    let table = UpcallTable {
        prologue: entry,
        epilogue: entry,
        exception: 0,
        resume_start: 0,
        resume_end: libos::abi::shared::va::USER_MAP_END,
    };
    if sys::set_upcalls(&table).is_err() {
        sys::exit(2);
    }
    let d = sys::dispatch(core);
    let (mut flag_seen_set, mut next_report) = (0u64, 0u64);
    loop {
        if d.disabled.load(Ordering::Relaxed) != 0 {
            flag_seen_set += 1;
            d.disabled.store(0, Ordering::Relaxed);
        }
        let now = sys::now_ns();
        if now >= next_report {
            next_report = now + 200_000_000;
            report!("\"kind\":\"resume_hog\",\"flag_seen_set\":{flag_seen_set}");
        }
    }
}

#[cfg(target_os = "none")]
fn _start_address() -> u64 {
    _start as *const () as u64
}

#[cfg(not(target_os = "none"))]
fn _start_address() -> u64 {
    0
}

libos::program!(App {
    name: "resume_hog",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
