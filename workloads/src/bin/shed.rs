//! Hostile (issue 14, hole 8): at the start of each of its turns it frees
//! the slot the turn is in, then ignores the revocation and runs on until
//! the kernel repossesses the core. Meanwhile another environment (`grab`)
//! allocates the freed slot. The overrun is this program's: were it
//! charged to whoever holds the slot when the repossession is recorded,
//! `grab` would pay it, and with an offender limit of one lose the slot,
//! for a turn it never had.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::Ordering;

use libos::abi::syscall::NO_ENV;
use libos::{report, sys, App, Epilogue};

fn worker(core: usize) -> ! {
    let (me, _) = sys::self_info();
    let page = sys::core_slices(core);
    let mut shed = 0u64;
    let mut x = 0u64;
    loop {
        let slot = page.current_slot.load(Ordering::Acquire) as usize;
        let owner = page
            .owners
            .get(slot)
            .map_or(NO_ENV, |o| o.load(Ordering::Acquire));
        if owner == me && sys::slice_free(core, slot).is_ok() {
            shed += 1;
            report!("\"kind\":\"shed\",\"core\":{core},\"slot\":{slot},\"shed\":{shed}");
        }
        for _ in 0..1000 {
            x = core::hint::black_box(x.wrapping_add(1));
        }
    }
}

libos::program!(App {
    name: "shed",
    main: worker,
    epilogue: Epilogue::Ignore,
    on_fault: None
});
