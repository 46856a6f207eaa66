//! A scheduler environment in miniature: owns slices and donates every one
//! of them by directed yield to the other live environments, in turn.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::Ordering;

use libos::abi::shared::MAX_ENVS;
use libos::abi::syscall::NO_ENV;
use libos::{report, sys, App, Epilogue};

fn worker(core: usize) -> ! {
    let (me, _) = sys::self_info();
    let mut next = 0usize;
    let (mut given, mut refused) = (0u64, 0u64);
    loop {
        next = (next + 1) % MAX_ENVS;
        let id = sys::account(next).env.load(Ordering::Acquire);
        if id == NO_ENV || id == me {
            continue;
        }
        // Resumed here (Ok) at our next turn after the donation.
        match sys::yield_to(Some(id), true) {
            Ok(_) => given += 1,
            Err(_) => refused += 1,
        }
        if given == 50 {
            report!("\"kind\":\"donor\",\"core\":{core},\"given\":{given},\"refused\":{refused}");
        }
    }
}

libos::program!(App {
    name: "donor",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
