//! Everything a run is asked to do.

use std::path::PathBuf;
use std::time::Duration;

use super::Accel;

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Scheduler the applications start with (`sched=`); by default the
    /// registry's default policy (`sched_registry::default_policy`), the one
    /// the kernel starts when `sched=` names none.
    pub sched: String,
    pub cpus: u32,
    pub accel: Accel,
    /// QEMU machine type (`pc`, `q35`, `microvm`); `-M` in `qemu_extra` wins.
    pub machine: String,
    /// Extra QEMU arguments, appended last (QEMU takes the last -cpu / -M).
    pub qemu_extra: Vec<String>,
    /// Kernel `run_ms=` (absent: the kernel's default).
    pub run_ms: Option<u64>,
    /// Kernel `test=` (absent: a normal run).
    pub test: Option<String>,
    /// A scenario file to run (`None`: `test=` or a plain run).
    pub scenario: Option<PathBuf>,
    /// Whether `sched` replaces every application's scheduler in the
    /// scenario (it was given on the command line).
    pub sched_override: bool,
    /// Deterministic run: TCG, one thread, `-icount` (same scenario, same
    /// measurements).
    pub det: bool,
    /// Console input typed at given times after the kernel's boot record
    /// (tests).
    pub input: Vec<(Duration, String)>,
    /// A console script (`console=<file>`, `abi::console_script`): commands
    /// the kernel runs at given times of a scenario run, as if typed.
    pub console: Option<PathBuf>,
    /// An interactive run lasts until `quit`: when streaming with a
    /// terminal on stdin, the scenario's duration and the timeout do not
    /// apply (the default scenario, run without `run_ms=`).
    pub until_quit: bool,
    /// Further kernel command-line words (`key=value`), after the above.
    pub cmdline: Vec<String>,
    /// Wall-clock limit; `Duration::ZERO` means none.
    pub timeout: Duration,
    /// Run name (directory under [`RunOptions::runs_dir`]); generated when `None`.
    pub name: Option<String>,
    /// Where the run's directory is created: `None` is the user's
    /// `results/runs/`; the test suites use `target/test-runs/`, so their
    /// runs never mix with the user's.
    pub runs_dir: Option<PathBuf>,
    /// Echo the console to the terminal while running, and pass stdin
    /// through to the kernel's serial port: a terminal as it is, piped
    /// input a line at a time (each sent once the kernel has taken the one
    /// before).
    pub stream: bool,
    /// Pass the programs' boot-module archive.
    pub programs: bool,
    /// Memory in MiB.
    pub memory_mib: u32,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            sched: sched_registry::default_policy().kind.name().into(),
            cpus: 4,
            accel: Accel::Auto,
            machine: "pc".into(),
            qemu_extra: Vec::new(),
            run_ms: None,
            test: None,
            cmdline: Vec::new(),
            scenario: None,
            sched_override: false,
            det: false,
            input: Vec::new(),
            console: None,
            until_quit: false,
            timeout: Duration::from_secs(120),
            name: None,
            runs_dir: None,
            stream: false,
            programs: true,
            memory_mib: 1024,
        }
    }
}
