//! Hostile: keeps the critical-section (disabled) flag set forever, so every
//! revocation is deferred — and must end in a repossession at grace's end.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::Ordering;

use libos::{sys, App, Epilogue};

fn worker(core: usize) -> ! {
    let d = sys::dispatch(core);
    loop {
        d.disabled.store(1, Ordering::Release);
        core::hint::spin_loop();
    }
}

libos::program!(App {
    name: "critical",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
