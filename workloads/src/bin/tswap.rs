//! Like `tspin`, but swaps its scheduler every 250 ms under load:
//! stride → lottery → rr → stride, across all its cores at once.
#![cfg_attr(target_os = "none", no_std, no_main)]

use libos::threads::PolicyKind;

fn main_thread(_: usize) {
    workloads::threads_main(
        250_000_000,
        &[
            PolicyKind::Lottery,
            PolicyKind::RoundRobin,
            PolicyKind::Stride,
        ],
    )
}

libos::threaded_program!(main_thread);
