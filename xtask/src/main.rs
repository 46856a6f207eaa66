//! `cargo xtask <command>`: the runner behind the `justfile`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use xtask::{build, Accel, RunOptions};

#[derive(Parser)]
#[command(about = "Build and run the exokernel in QEMU")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
// One value, parsed once: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Cmd {
    /// Build the kernel image and the programs' boot-module archive.
    Build,
    /// Run the canonical experiments, draw their figures and write
    /// results/README.md from the measurements.
    Experiments {
        /// QEMU instances at once.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        #[arg(long, default_value = "auto")]
        accel: Accel,
        /// Length of each run of the lottery ratio sweep.
        #[arg(long, default_value_t = 10000)]
        sweep_ms: u64,
    },
    /// Run a scenario once per value of one field (several QEMUs at once)
    /// and print each run's per-thread shares.
    Sweep {
        /// The scenario file.
        scenario: std::path::PathBuf,
        /// Dotted path of the field, e.g. app.0.thread.0.tickets.
        key: String,
        /// Comma-separated values.
        values: String,
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Cores (default: the scenario's, else 4).
        #[arg(long)]
        cpus: Option<u32>,
        #[arg(long, default_value = "auto")]
        accel: Accel,
    },
    /// Benchmark the platform's primitives beside Linux on this host; write
    /// results/bench/<commit>.{json,md}.
    Bench {
        /// A short run (seconds) for CI: figures printed, never asserted.
        #[arg(long)]
        smoke: bool,
        #[arg(long, default_value = "auto")]
        accel: Accel,
    },
    /// Soak: many cores for a long time, applications joining, leaving,
    /// swapping schedulers and sleeping, every invariant checked all along;
    /// prints what was checked and every violation with its time.
    Soak {
        #[arg(long, default_value_t = 16)]
        cpus: u32,
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        #[arg(long, default_value = "tcg")]
        accel: Accel,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Draw a scenario run's figures (PNG and SVG) into its directory.
    Plot {
        /// A run directory or its name under results/runs/ (default: the
        /// newest scenario run).
        run: Option<std::path::PathBuf>,
    },
    /// Boot the kernel on N cores, stream its console, write
    /// results/runs/<name>/{console.log,summary.json}; exit with the
    /// kernel's exit code (0 success, 11.. kernel failures, 2 QEMU error,
    /// 3 timeout, 130 Ctrl-C).
    Run {
        /// Scheduler the applications use; given, it replaces every
        /// application's choice in the scenario (default stride).
        #[arg(long, value_parser = ["stride", "lottery", "rr"])]
        sched: Option<String>,
        /// Number of cores (QEMU -smp); default the scenario's `cores`, else 4.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=128))]
        cpus: Option<u32>,
        /// Scenario file (TOML, see docs/scenarios.md). Without one (and
        /// without --test) scenarios/default.toml runs; `none` boots the
        /// platform alone, its cores ticking.
        #[arg(long)]
        scenario: Option<std::path::PathBuf>,
        /// Deterministic run (TCG, one thread, -icount): the same scenario
        /// gives the same measurements.
        #[arg(long)]
        det: bool,
        /// auto (KVM when /dev/kvm is usable), kvm or tcg.
        #[arg(long, default_value = "auto")]
        accel: Accel,
        /// QEMU machine: pc, q35 or microvm (a -M in --qemu wins).
        #[arg(long, default_value = "pc")]
        machine: String,
        /// Extra QEMU arguments, split on whitespace, appended last.
        #[arg(long, default_value = "", allow_hyphen_values = true)]
        qemu: String,
        /// Seconds before QEMU is stopped (exit "timeout"); 0 = no limit.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// How long a normal run lasts (kernel run_ms); 0 = until `q`.
        #[arg(long)]
        run_ms: Option<u64>,
        /// A kernel-side test or experiment (kernel test=).
        #[arg(long)]
        test: Option<String>,
        /// Results directory name under results/runs/ (default
        /// <UTC yyyymmdd-hhmmss>-<sched>-<N>c; a suffix is added if taken).
        #[arg(long)]
        name: Option<String>,
        /// Extra kernel command-line words (key=value ...).
        #[arg(long, default_value = "")]
        cmdline: String,
        /// Guest memory in MiB.
        #[arg(long, default_value_t = 1024)]
        memory: u32,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::Build => match build::kernel().and_then(|k| Ok((k, build::programs()?))) {
            Ok((k, p)) => {
                println!("kernel: {}", k.display());
                if let Some(p) = p {
                    println!("programs: {}", p.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Experiments {
            jobs,
            accel,
            sweep_ms,
        } => print_report(xtask::canonical::run(jobs, accel, sweep_ms)),
        Cmd::Sweep {
            scenario,
            key,
            values,
            jobs,
            cpus,
            accel,
        } => sweep(&scenario, &key, &values, jobs, cpus, accel),
        Cmd::Soak {
            cpus,
            minutes,
            accel,
            seed,
        } => match xtask::soak::run(cpus, minutes, accel, seed) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("soak failed: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Bench { smoke, accel } => print_report(xtask::bench::run(smoke, accel)),
        Cmd::Plot { run } => {
            let dir = match run {
                Some(r) if r.is_dir() => Ok(r),
                Some(r) => Ok(xtask::build::workspace_root().join("results/runs").join(r)),
                None => newest_scenario_run(),
            };
            match dir.and_then(|d| xtask::plot::plot_run(&d)) {
                Ok(files) => {
                    for f in files {
                        println!("{}", f.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Run {
            sched,
            cpus,
            accel,
            machine,
            qemu,
            timeout,
            run_ms,
            test,
            name,
            cmdline,
            memory,
            scenario,
            det,
        } => {
            let test = test.filter(|t| !t.is_empty());
            let scenario = match scenario {
                _ if test.is_some() => None,
                Some(p) if p.as_os_str() == "none" => None,
                Some(p) => Some(p),
                None => Some(xtask::build::workspace_root().join("scenarios/default.toml")),
            };
            // The scenario's own core count applies unless --cpus says.
            let scenario_cores = scenario
                .as_deref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .and_then(|t| t.parse::<toml::Table>().ok())
                .and_then(|t| t.get("cores")?.as_integer())
                .and_then(|c| u32::try_from(c).ok());
            let opts = RunOptions {
                sched_override: sched.is_some(),
                sched: sched.unwrap_or_else(|| "stride".into()),
                cpus: cpus.or(scenario_cores).unwrap_or(4),
                scenario,
                det,
                input: Vec::new(),
                accel,
                machine,
                qemu_extra: qemu.split_whitespace().map(String::from).collect(),
                run_ms,
                test,
                cmdline: cmdline.split_whitespace().map(String::from).collect(),
                timeout: Duration::from_secs(timeout),
                name: name.filter(|n| !n.is_empty()),
                stream: true,
                programs: true,
                memory_mib: memory,
            };
            if let Err(e) = xtask::qemu::install_interrupt_handler() {
                eprintln!("warning: Ctrl-C will not write results: {e}");
            }
            match xtask::run(&opts) {
                Ok(out) => {
                    let failed = out.records.failed_checks().len();
                    eprintln!(
                        "== exit: {}{} — results in {}",
                        out.exit_name,
                        if failed > 0 {
                            format!(" ({failed} failed checks)")
                        } else {
                            String::new()
                        },
                        out.run_dir.display()
                    );
                    ExitCode::from(u8::try_from(out.process_code()).unwrap_or(1))
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The most recently written run directory that has scenario data.
fn newest_scenario_run() -> Result<std::path::PathBuf, String> {
    let runs = xtask::build::workspace_root().join("results/runs");
    std::fs::read_dir(&runs)
        .map_err(|e| format!("{}: {e}", runs.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("rundata.json").is_file())
        .max_by_key(|p| {
            p.join("rundata.json")
                .metadata()
                .and_then(|m| m.modified())
                .ok()
        })
        .ok_or_else(|| format!("no scenario run in {}", runs.display()))
}

/// `cargo xtask sweep`: one run per value, then a table of shares.
fn sweep(
    scenario: &std::path::Path,
    key: &str,
    values: &str,
    jobs: usize,
    cpus: Option<u32>,
    accel: Accel,
) -> ExitCode {
    use xtask::experiments::{run_all, scenario_job, scenario_with};
    let cores = std::fs::read_to_string(scenario)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("cores")?.as_integer())
        .and_then(|c| u32::try_from(c).ok());
    let mut runs = Vec::new();
    for v in values.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        match scenario_with(
            scenario,
            &[(key.to_string(), v.to_string())],
            &format!("{}-{v}", key.replace('.', "_")),
        ) {
            Ok(path) => {
                let stem = path
                    .file_stem()
                    .map_or(String::new(), |s| s.to_string_lossy().into_owned());
                runs.push(scenario_job(
                    &format!("sweep-{stem}"),
                    path,
                    cpus.or(cores).unwrap_or(4),
                    accel,
                ));
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut failed = false;
    println!("value\tapp\tthread\ttickets\tcpu_ns\tmeasured\tideal");
    for (job, out) in run_all(runs, jobs) {
        let value = job.name.rsplit('-').next().unwrap_or("").to_string();
        match out {
            Ok(out) => {
                for app in out.summary["apps"].as_array().into_iter().flatten() {
                    for t in app["threads"].as_array().into_iter().flatten() {
                        println!(
                            "{value}\t{}\t{}\t{}\t{}\t{:.4}\t{:.4}",
                            app["name"].as_str().unwrap_or(""),
                            t["name"].as_str().unwrap_or(""),
                            t["tickets"],
                            t["cpu_ns"],
                            t["measured_share"].as_f64().unwrap_or(f64::NAN),
                            t["ideal_share"].as_f64().unwrap_or(f64::NAN)
                        );
                    }
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("{}: {e}", job.name);
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints a markdown report, or the error.
fn print_report(report: Result<String, String>) -> ExitCode {
    match report {
        Ok(md) => {
            println!("{md}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
