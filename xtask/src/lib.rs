//! The runner behind `just`: builds the kernel (and the programs it runs),
//! starts QEMU with the requested cores, machine and accelerator, streams
//! the console, and writes `results/runs/<name>/{console.log,summary.json}`.
//!
//! Integration tests call [`run`] directly.

pub mod build;
pub mod qemu;
pub mod summary;

pub use qemu::{run, Accel, RunOptions, RunOutcome};
