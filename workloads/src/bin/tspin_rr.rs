//! Like `tspin`, but this application always runs round robin, whatever
//! the others use: policies are per application.
#![cfg_attr(target_os = "none", no_std, no_main)]

use libos::threads::PolicyKind;

fn main_thread(_: usize) {
    workloads::threads_main(250_000_000, &[PolicyKind::RoundRobin])
}

libos::threaded_program!(main_thread);
