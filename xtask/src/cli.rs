//! What `cargo xtask` (and so every `just` recipe) accepts: one subcommand
//! per recipe, each option also reachable as `key=value` (see
//! [`crate::keyvalue`], which reads these definitions through clap's own
//! metadata rather than a copied list).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::Accel;

/// Shown under every `--help`: how the recipes' words map onto options.
pub const KEY_VALUE_HELP: &str = "\
From `just` (or here), every option is also `key=value` in any order: \
`just run-smp cpus=4 sched=lottery` is `--cpus 4 --sched lottery`. \
`_` and `-` are alike; switches take 1/0, true/false, yes/no, on/off; \
an empty value leaves the default; the last of a repeated key wins. \
Bare values fill, in the recipe's documented order, the parameters no key names \
(`just run-smp lottery 4`). \
`dry_run=1` checks everything and prints what would run, without QEMU.";

#[derive(Parser, Debug)]
#[command(
    about = "Build and run the exokernel in QEMU",
    after_help = KEY_VALUE_HELP,
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
// One value, parsed once: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Cmd {
    /// Build the kernel image and the programs' boot-module archive.
    Build {
        /// Print what would be built, build nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Boot the kernel on N cores, stream its console, write
    /// results/runs/<name>/{console.log,summary.json}; exit with the
    /// kernel's exit code (0 success, 11.. kernel failures, 2 QEMU error,
    /// 3 timeout, 130 Ctrl-C).
    #[command(visible_alias = "run-smp")]
    Run(RunArgs),
    /// Draw a scenario run's figures (PNG and SVG) into its directory.
    Plot {
        /// A run directory or its name under results/runs/ (default: the
        /// newest scenario run).
        run: Option<PathBuf>,
        /// The figures' print size: column (3.5 in wide, one column of a
        /// two-column paper) or page (7 in, the full text width).
        #[arg(long, default_value = "page", value_parser = ["page", "column"])]
        size: String,
        /// Titles on the figures (title=0 for a paper, whose captions name
        /// them: the command prints what a caption must say, the cores,
        /// det or not, trusted or not, the schedulers).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set,
              value_parser = clap::builder::BoolishValueParser::new())]
        title: bool,
        /// The slice map's window start, seconds since the run's start
        /// (default 0).
        #[arg(long)]
        from: Option<f64>,
        /// The slice map's window end, seconds (default: 50 quanta after
        /// `from`).
        #[arg(long)]
        to: Option<f64>,
        /// Print which run would be drawn, draw nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Guest instructions per function from a QEMU exec log, written by a
    /// run with qemu="-singlestep -d exec [-dfilter <ranges>] -D <log>"
    /// (see xtask/src/profile.rs): the profile that explains a
    /// deterministic run's instruction counts.
    Profile {
        /// The exec log.
        log: PathBuf,
        /// ELF files whose symbols name the addresses, comma-separated (the
        /// program's, the kernel's).
        #[arg(long = "elf", required = true, value_delimiter = ',')]
        elfs: Vec<PathBuf>,
        /// Divide every count by this (the operations the log holds).
        #[arg(long, default_value_t = 1.0)]
        per: f64,
        /// How many functions to print.
        #[arg(long, default_value_t = 40)]
        top: usize,
        /// Check that the files are there, read nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print two scenario runs side by side, per thread: share, share
    /// error, maximum lag and wait percentiles in each, and the difference.
    Compare {
        /// The first run: a run directory or its name under results/runs/.
        a: PathBuf,
        /// The second run (differences are second minus first).
        b: PathBuf,
        /// Check both runs exist and are scenario runs, print nothing else.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run the canonical experiments, draw their figures and write
    /// results/README.md from the measurements.
    Experiments {
        /// QEMU instances at once.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
        jobs: u64,
        #[arg(long, default_value = "auto")]
        accel: Accel,
        /// Length of each run of the lottery ratio sweep (ms; the paper's: 60 s).
        #[arg(long, default_value_t = crate::canonical::SWEEP_MS)]
        sweep_ms: u64,
        /// Runs of the lottery sweep per ticket ratio, each its own seed
        /// (mean and 95% confidence interval per ratio; at least 2).
        #[arg(long, default_value_t = crate::canonical::SWEEP_TRIALS,
              value_parser = clap::value_parser!(u64).range(2..=30))]
        sweep_trials: u64,
        /// Validate every experiment's scenario and list the runs, run nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run a scenario once per value of one field (several QEMUs at once)
    /// and print each run's per-thread shares.
    Sweep {
        /// The scenario file.
        scenario: PathBuf,
        /// Dotted path of the field, e.g. app.0.thread.0.tickets.
        key: String,
        /// Comma-separated values.
        values: String,
        /// QEMU instances at once.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
        jobs: u64,
        /// Cores (default: the scenario's, else 4).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=128))]
        cpus: Option<u32>,
        #[arg(long, default_value = "auto")]
        accel: Accel,
        /// Length of each run in ms (default: the scenario's duration_ms).
        #[arg(long)]
        run_ms: Option<u64>,
        /// Deterministic runs (TCG, -icount): exact, repeatable figures.
        #[arg(long)]
        det: bool,
        /// Runs per value, seeds seed, seed+1, ...: each thread's share as a
        /// mean with its 95% confidence interval.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
        trials: u32,
        /// Validate every variant of the scenario and list the runs, run nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Benchmark the platform's primitives beside Linux: instructions per
    /// operation beside a Linux guest in the same deterministic emulator,
    /// wall clock beside this host; write
    /// results/bench/<commit>-<accel>.{json,md}. `auto` takes KVM only
    /// when it is hardware-assisted.
    Bench {
        /// A short run (seconds) for CI: figures printed, never asserted.
        #[arg(long)]
        smoke: bool,
        /// Only issue 16's per-turn overhead and tails, deterministic TCG
        /// (minutes): printed, nothing written under results/.
        #[arg(long)]
        tails: bool,
        /// Only the scale rows (issue 13): decisions per second and
        /// wake-up latency on 1 to 64 cores, deterministic TCG (minutes):
        /// printed, nothing written under results/.
        #[arg(long, conflicts_with = "tails")]
        scale: bool,
        #[arg(long, default_value = "auto")]
        accel: Accel,
        /// Print what would be measured, run nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The seconds-long benchmark CI runs (`bench --smoke`, TCG by default:
    /// the same on every machine); figures printed, never asserted. No
    /// Linux guest and no instruction counts (the s16 suite boots Linux).
    BenchSmoke {
        #[arg(long, default_value = "tcg")]
        accel: Accel,
        /// Print what would be measured, run nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Fuzz the system-call interface from ring 3 (kernel test `fuzz`:
    /// the fuzzer beside `spin`, 10 ms slices); any kernel fault fails it.
    Fuzz {
        /// How long the fuzzer runs (s).
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=128))]
        cpus: u32,
        #[arg(long, default_value = "tcg")]
        accel: Accel,
        /// Deterministic (TCG, -icount; the default): the kernel's share
        /// checks beside the fuzzer are exact. det=0: plain TCG, where a
        /// loaded host moves `spin`'s share (0.35 of its 0.5 seen here).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set,
              value_parser = clap::builder::BoolishValueParser::new())]
        det: bool,
        /// Print the run it would start, boot nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Soak: many cores for a long time, applications joining, leaving,
    /// swapping schedulers and sleeping, every invariant checked all along;
    /// prints what was checked and every violation with its time.
    Soak {
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=128))]
        cpus: u32,
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        #[arg(long, default_value = "tcg")]
        accel: Accel,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Validate the soak's scenario and print the run, boot nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `cargo xtask run` / `just run-smp`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Scheduler the applications use; given, it replaces every
    /// application's choice in the scenario (default: the registry's first,
    /// stride).
    #[arg(long, value_parser = policy_names())]
    pub sched: Option<String>,
    /// Number of cores (QEMU -smp); default the scenario's `cores`, else 4.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=128))]
    pub cpus: Option<u32>,
    /// Scenario file (TOML, see docs/scenarios.md). Without one (and
    /// without --test) scenarios/default.toml runs; `none` boots the
    /// platform alone, its cores ticking.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Deterministic run (TCG, one thread, -icount): the same scenario
    /// gives the same measurements.
    #[arg(long)]
    pub det: bool,
    /// The applications report which thread ran on which core, when:
    /// the Perfetto trace gets a track per thread and per core's threads
    /// (the reports cost the applications time: off by default).
    #[arg(long)]
    pub thread_trace: bool,
    /// auto (hardware KVM when the host has VMX/SVM, else deterministic
    /// TCG for a scenario, TCG otherwise), kvm or tcg.
    #[arg(long, default_value = "auto")]
    pub accel: Accel,
    /// QEMU machine (a -M in --qemu wins).
    #[arg(long, default_value = "pc", value_parser = ["pc", "q35", "microvm"])]
    pub machine: String,
    /// Extra QEMU arguments, split on whitespace, appended last.
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub qemu: String,
    /// Seconds before QEMU is stopped (exit "timeout"); 0 = no limit.
    /// Default: 120, or for a run of known length five minutes plus what
    /// its cores need (a deterministic 64-core second takes minutes).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// How long a normal run lasts (kernel run_ms); 0 = until `q`.
    #[arg(long)]
    pub run_ms: Option<u64>,
    /// A kernel-side test or experiment (kernel test=); an unknown name is
    /// refused with the list of them all.
    #[arg(long)]
    pub test: Option<String>,
    /// Run the scenario N times, seeds seed, seed+1, ..., and report each
    /// thread's share and share error as mean and 95% confidence interval
    /// (runs named <name>-trial<k>).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub trials: Option<u32>,
    /// Results directory name under results/runs/ (default
    /// <UTC yyyymmdd-hhmmss>-<sched>-<N>c; a suffix is added if taken).
    #[arg(long)]
    pub name: Option<String>,
    /// Extra kernel command-line words (key=value ...).
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub cmdline: String,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(64..=65536))]
    pub memory: u32,
    /// A console script: `<t_ms> <command>` lines the kernel runs at
    /// those times of the scenario run, as if typed (docs/scenarios.md,
    /// "The console"); ignored beside --test, as --scenario is.
    #[arg(long)]
    pub console: Option<PathBuf>,
    /// Directory the run's directory is made in (default results/runs;
    /// the test suites use target/test-runs).
    #[arg(long)]
    pub runs_dir: Option<PathBuf>,
    /// Validate everything and print the QEMU command it would run, boot nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// The order in which a recipe binds bare (positional) words: the order its
/// parameters had when the justfile declared them one by one, so a command
/// line written for that (`just run-smp lottery 4`, `just sweep <scenario>
/// <key> <values>`) keeps its meaning. Names are the options' long names.
pub fn positional_order(subcommand: &str) -> &'static [&'static str] {
    match subcommand {
        "run" | "run-smp" => &[
            "sched", "cpus", "accel", "machine", "qemu", "timeout", "run-ms", "test", "scenario",
            "det",
        ],
        "plot" => &["run"],
        "compare" => &["a", "b"],
        "profile" => &["log"],
        "experiments" => &["jobs", "accel"],
        "sweep" => &["scenario", "key", "values", "jobs", "accel"],
        "bench" | "bench-smoke" => &["accel"],
        "fuzz" => &["seconds", "cpus"],
        "soak" => &["minutes", "cpus", "accel"],
        _ => &[],
    }
}

/// `--sched`'s values: every registered policy, with its description.
fn policy_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        sched_registry::POLICIES
            .iter()
            .map(|p| clap::builder::PossibleValue::new(p.kind.name()).help(p.description)),
    )
}
