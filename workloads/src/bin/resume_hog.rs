//! Hostile: registers a "resume range" (where the kernel lets a libOS
//! finish restoring a context before revoking it) that covers its whole
//! address space, then spins. The kernel must still take the core at the
//! end of grace, every turn, and everyone else must keep their share.
#![cfg_attr(target_os = "none", no_std, no_main)]

use libos::abi::shared::UpcallTable;
use libos::{sys, App, Epilogue};

fn worker(_core: usize) -> ! {
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
    let mut x = 0u64;
    loop {
        x = core::hint::black_box(x.wrapping_add(1));
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
