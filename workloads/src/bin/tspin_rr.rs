//! Like `tspin`, but this application runs round robin, whatever the others
//! use: policies are per application.
#![cfg_attr(target_os = "none", no_std, no_main)]

use libos::threads;

fn main_thread(_: usize) {
    let rr = threads::policy_named("rr").expect("round robin is registered");
    threads::swap_policy(rr);
    workloads::threads_main(250_000_000, &[])
}

libos::threaded_program!(main_thread);
