//! The exokernel binary. On the bare-metal target this is the kernel; on the
//! host it is an empty stub so that `cargo clippy --workspace` and
//! `cargo test --workspace` work (the kernel's pure logic is in `lib.rs` and
//! tested there).
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the kernel runs on x86_64-unknown-none only; boot it with `just run-smp`");
}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
#[macro_use]
mod serial;

#[cfg(target_os = "none")]
include!("kernel_modules.rs");
