//! Like `tspin`, but swaps its scheduler every 250 ms under load, through
//! every registered policy in turn (stride → lottery → rr → ... → stride),
//! across all its cores at once.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::vec::Vec;

use libos::sched_registry::POLICIES;

fn main_thread(_: usize) {
    // It starts under the first (the default): swap to the next first.
    let mut order: Vec<_> = POLICIES.iter().map(|p| p.kind).collect();
    order.rotate_left(1);
    workloads::threads_main(250_000_000, &order)
}

libos::threaded_program!(main_thread);
