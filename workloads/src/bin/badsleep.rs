//! Hostile (issue 14, the `sleep` half of hole 10): installs a predicate
//! that will not hold for an hour, points its `donate_to` at an
//! environment that does not exist, and calls `sleep` on every core. The
//! donation is refused and so is the sleep (`BadEnv`): it must go on
//! running, awake, in its own slots — not be left marked asleep, skipped
//! by the walk until its predicate holds, after being told it did not
//! sleep.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::Ordering;

use libos::abi::syscall::NO_ENV;
use libos::predicate::Builder;
use libos::{report, sys, App, Epilogue};

/// No environment has this id (generation 0 is never handed out).
const NOBODY: u32 = 0x3f;

fn worker(core: usize) -> ! {
    let Ok(program) = Builder::until_time(1, sys::now_ns() + 3_600_000_000_000) else {
        sys::exit(2)
    };
    if sys::predicate_install(program.as_bytes()).is_err() {
        sys::exit(3);
    }
    sys::dispatch(core)
        .donate_to
        .store(NOBODY, Ordering::Release);
    let refused = sys::sleep(true).is_err();
    // Its epilogue's yield would be a donation to nobody too.
    sys::dispatch(core)
        .donate_to
        .store(NO_ENV, Ordering::Release);
    report!("\"kind\":\"badsleep\",\"core\":{core},\"refused\":{refused}");
    loop {
        core::hint::spin_loop();
    }
}

libos::program!(App {
    name: "badsleep",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
