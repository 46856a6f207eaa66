//! The runner behind `just`: builds the kernel (and the programs it runs),
//! starts QEMU with the requested cores, machine and accelerator, streams
//! the console, and writes `results/runs/<name>/{console.log,summary.json}`.
//!
//! Integration tests (`xtask/tests/`) call [`run`] directly.

pub mod bench;
pub mod build;
pub mod canonical;
pub mod cli;
pub mod compare;
mod error;
pub mod experiments;
pub mod kernel_tests;
pub mod keyvalue;
pub mod metrics;
pub mod multicore;
pub mod plan;
pub mod plot;
pub mod profile;
pub mod provenance;
pub mod qemu;
pub mod records;
pub mod rundata;
pub mod sampling;
pub mod scenario;
pub mod scenario_run;
pub mod soak;
pub mod summary;
pub mod sweep;
pub mod trials;
pub mod trust;

pub use error::Error;
pub use qemu::{run, Accel, End, RunOptions, RunOutcome};

#[cfg(test)]
mod layering {
    /// The results side (records, summary, scenario figures, metrics) never
    /// reaches back into the runner that starts QEMU: `qemu` uses them, not
    /// the other way round, so there is no import loop to untangle.
    #[test]
    fn results_modules_do_not_import_the_runner() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for file in [
            "records.rs",
            "summary.rs",
            "scenario_run.rs",
            "rundata.rs",
            "metrics.rs",
        ] {
            let text = std::fs::read_to_string(src.join(file)).unwrap();
            assert!(
                !text.contains("crate::qemu") && !text.contains("super::qemu"),
                "{file} imports the runner (crate::qemu)"
            );
        }
    }
}
