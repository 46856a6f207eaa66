//! Eight CPU-bound threads with weights 1..8 under the policy the run asks
//! for (`sched=`), scheduled across every core the application holds.
#![cfg_attr(target_os = "none", no_std, no_main)]

fn main_thread(_: usize) {
    workloads::threads_main(250_000_000, &[])
}

libos::threaded_program!(main_thread);
