//! Creates and destroys environments in a storm: spawns a boot program as a
//! child, donates it the rest of the slice (so it really runs, on whichever
//! core), then kills it — over and over, on every core it holds.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::{AtomicU64, Ordering};

use libos::abi::syscall::{Error, Syscall};
use libos::{report, sys, App, Epilogue};

static CYCLES: AtomicU64 = AtomicU64::new(0);

fn call(n: Syscall, a: u64) -> Result<u64, Error> {
    // SAFETY: spawn and kill take plain integers the kernel validates.
    Error::decode(unsafe { sys::raw(n as u64, [a, 4, 0, 0, 0, 0]) }.0)
}

fn worker(core: usize) -> ! {
    let mut program = core as u64;
    loop {
        program = (program + 1) % 32;
        let Ok(child) = call(Syscall::Spawn, program) else {
            continue;
        };
        let _ = sys::yield_to(Some(child as u32), true);
        let _ = call(Syscall::Kill, child);
        let n = CYCLES.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(200) {
            report!("\"kind\":\"storm\",\"cycles\":{n}");
        }
    }
}

libos::program!(App {
    name: "storm",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
