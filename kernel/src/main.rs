//! The exokernel binary. On the bare-metal target this is the kernel; on the
//! host it is an empty stub so that `cargo clippy --workspace` and
//! `cargo test --workspace` work (the kernel's pure logic is in `lib.rs` and
//! tested there).
//!
//! The modules in layers, bottom first: a module imports only from its own
//! layer and those before it, and never in a loop. All are bare-metal only.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the kernel runs on x86_64-unknown-none only; boot it with `just run-smp`");
}

#[cfg(target_os = "none")]
extern crate alloc;

// Leaf helpers, on nothing else of the kernel.
#[cfg(target_os = "none")]
mod sync;
// The hardware: nothing in it names a module below this line.
#[cfg(target_os = "none")]
mod arch;
// Console records, logging, exit, the boot's programs.
#[cfg(target_os = "none")]
mod exit;
#[cfg(target_os = "none")]
mod latency;
#[cfg(target_os = "none")]
mod logger;
#[cfg(target_os = "none")]
mod programs;
#[cfg(target_os = "none")]
mod record;
#[cfg(target_os = "none")]
mod trace;
// Environments' memory and the pages the kernel shares with them.
#[cfg(target_os = "none")]
mod aspace;
#[cfg(target_os = "none")]
mod dispatch_page;
#[cfg(target_os = "none")]
mod exported;
// Time accounting, environments, and the checks on both.
#[cfg(target_os = "none")]
mod env;
#[cfg(target_os = "none")]
mod invariants;
#[cfg(target_os = "none")]
mod ledger;
#[cfg(target_os = "none")]
mod wakeup;
// The CPU interface, and the entry points that call it.
#[cfg(target_os = "none")]
mod panic;
#[cfg(target_os = "none")]
mod sched;
#[cfg(target_os = "none")]
mod syscall;
#[cfg(target_os = "none")]
mod trap;
// Runs: experiments, scenarios, tests, and the boot that picks one.
#[cfg(target_os = "none")]
mod envtests;
#[cfg(target_os = "none")]
mod run;
#[cfg(target_os = "none")]
mod scenario;
#[cfg(target_os = "none")]
mod start;
#[cfg(target_os = "none")]
mod tests;
