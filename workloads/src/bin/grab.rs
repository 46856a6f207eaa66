//! Well-behaved but hungry: yields within grace like `spin`, and on every
//! core it runs on allocates any slot it sees free on any core (the victim
//! of `shed`, issue 14 hole 8).
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::Ordering;

use libos::abi::syscall::NO_ENV;
use libos::{report, sys, App, Epilogue};

fn worker(core: usize) -> ! {
    let cores = sys::sysinfo().cores as usize;
    let slots = sys::sysinfo().slots as usize;
    let mut grabbed = 0u64;
    loop {
        for k in 0..cores {
            let page = sys::core_slices(k);
            let free = page.owners[..slots]
                .iter()
                .any(|o| o.load(Ordering::Acquire) == NO_ENV);
            if free && sys::slice_alloc(k, None).is_ok() {
                grabbed += 1;
                report!("\"kind\":\"grab\",\"core\":{core},\"on\":{k},\"grabbed\":{grabbed}");
            }
        }
    }
}

libos::program!(App {
    name: "grab",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
