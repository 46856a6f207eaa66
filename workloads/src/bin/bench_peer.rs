//! The other half of `bench`'s directed-yield ping-pong: whenever it runs,
//! it donates the rest of its slice straight back.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::Ordering;

use libos::abi::shared::MAX_ENVS;
use libos::abi::syscall::NO_ENV;
use libos::{sys, App, Epilogue};

fn worker(core: usize) -> ! {
    let (me, _) = sys::self_info();
    let peer = (0..MAX_ENVS)
        .map(|i| sys::account(i).env.load(Ordering::Acquire))
        .find(|&id| id != NO_ENV && id != me);
    loop {
        let _ = libos::rt::yield_saving(core, peer);
    }
}

libos::program!(App {
    name: "bench_peer",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
