//! The runner behind `just`: builds the kernel (and the programs it runs),
//! starts QEMU with the requested cores, machine and accelerator, streams
//! the console, and writes `results/runs/<name>/{console.log,summary.json}`.
//!
//! Integration tests (`xtask/tests/`) call [`run`] directly.

pub mod bench;
pub mod build;
pub mod canonical;
pub mod cli;
mod error;
pub mod experiments;
pub mod kernel_tests;
pub mod keyvalue;
pub mod metrics;
pub mod plan;
pub mod plot;
pub mod qemu;
pub mod rundata;
pub mod scenario;
pub mod scenario_run;
pub mod soak;
pub mod summary;
pub mod sweep;

pub use error::Error;
pub use qemu::{run, Accel, End, RunOptions, RunOutcome};
