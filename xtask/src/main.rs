//! `cargo xtask <command>`: the runner behind the `justfile`. Each recipe
//! is one subcommand here (`just run-smp …` is `cargo xtask run-smp …`);
//! its `key=value` words become clap options in [`xtask::keyvalue`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};
use xtask::cli::{positional_order, Cli, Cmd, RunArgs, KEY_VALUE_HELP};
use xtask::{build, plan, Accel, RunOptions};

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let argv = match argv.get(1) {
        Some(sub) => {
            let cmd = Cli::command();
            match xtask::keyvalue::translate(&cmd, sub, &argv[2..], positional_order(sub)) {
                Ok(words) => argv[..1].iter().cloned().chain(words).collect(),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        None => argv,
    };
    // Every subcommand's --help ends with how key=value words map onto it.
    let matches = Cli::command()
        .mut_subcommands(|s| s.after_help(KEY_VALUE_HELP))
        .get_matches_from(argv);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let outcome = match cli.command {
        Cmd::Build { dry_run } => build_all(dry_run),
        Cmd::Run(args) => {
            let trials = args.trials.filter(|&n| n > 1);
            run_options(args).and_then(|(opts, dry)| match trials {
                Some(n) => run_trials(&opts, n, dry),
                None => run_or_describe(&opts, dry),
            })
        }
        Cmd::Plot {
            run,
            size,
            title,
            from,
            to,
            dry_run,
        } => size.parse().and_then(|paper| {
            let opts = xtask::plot::PlotOptions {
                paper,
                title,
                from_s: from,
                to_s: to,
            };
            plot(run, &opts, dry_run)
        }),
        Cmd::Compare { a, b, dry_run } => compare(&a, &b, dry_run),
        Cmd::Profile {
            log,
            elfs,
            per,
            top,
            dry_run,
        } => {
            if dry_run {
                match std::iter::once(&log).chain(&elfs).find(|p| !p.is_file()) {
                    Some(p) => Err(format!("{}: no such file", p.display())),
                    None => Ok(describe(&format!(
                        "would profile  {} with the symbols of {} ELF files",
                        log.display(),
                        elfs.len()
                    ))),
                }
            } else {
                xtask::profile::run(&log, &elfs, per, top).map(|()| ExitCode::SUCCESS)
            }
        }
        Cmd::Experiments {
            jobs,
            accel,
            sweep_ms,
            sweep_trials,
            dry_run,
        } => {
            let size = xtask::canonical::SweepSize {
                ms: sweep_ms,
                trials: sweep_trials,
            };
            experiments(jobs, accel, size, dry_run)
        }
        Cmd::Sweep {
            scenario,
            key,
            values,
            jobs,
            cpus,
            accel,
            run_ms,
            det,
            trials,
            dry_run,
        } => sweep(
            &xtask::sweep::Sweep {
                scenario: &scenario,
                key: &key,
                values: &values,
                cpus,
                accel,
                run_ms,
                det,
                trials,
            },
            jobs,
            dry_run,
        ),
        Cmd::Bench {
            tails: true,
            dry_run,
            ..
        } => bench_section(
            dry_run,
            "issue 16's per-turn overhead (1 and 10 ms slices, 1 core), runtime swap \
             (32 threads, 8 cores) and revocation/abort latencies (1 and 8 cores)",
            xtask::bench::run_tails,
        ),
        Cmd::Bench {
            scale: true,
            dry_run,
            ..
        } => bench_section(
            dry_run,
            "issue 13's scale rows (one application of sleepers, four a core, on \
             1, 2, 4, 8, 16, 32 and 64 cores)",
            xtask::bench::run_scale,
        ),
        Cmd::Bench {
            smoke,
            accel,
            dry_run,
            ..
        } => bench(smoke, accel, dry_run),
        Cmd::BenchSmoke { accel, dry_run } => bench(true, accel, dry_run),
        Cmd::Fuzz {
            seconds,
            cpus,
            accel,
            det,
            dry_run,
        } => fuzz_options(seconds, cpus, accel, det).and_then(|o| run_or_describe(&o, dry_run)),
        Cmd::Soak {
            cpus,
            minutes,
            accel,
            seed,
            dry_run,
        } => soak(cpus, minutes, accel, seed, dry_run),
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}

/// Prints a dry run's header and description.
fn describe(text: &str) -> ExitCode {
    println!("{}", plan::HEADER);
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    ExitCode::SUCCESS
}

fn build_all(dry_run: bool) -> Result<ExitCode, String> {
    if dry_run {
        return Ok(describe(
            "would build the kernel (cargo build --release -p kernel --target x86_64-unknown-none)\n\
             and the programs (-p workloads), packed into target/boot-modules.bin",
        ));
    }
    let k = build::kernel().map_err(|e| e.to_string())?;
    let p = build::programs().map_err(|e| e.to_string())?;
    println!("kernel: {}", k.display());
    if let Some(p) = p {
        println!("programs: {}", p.path().display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `just run-smp`'s options resolved: the scenario (default, `none` or a
/// file), its core count unless `cpus` says, and `test=` checked against
/// the kernel's tests.
fn run_options(a: RunArgs) -> Result<(RunOptions, bool), String> {
    // The default scenario, run without a length, lasts until `quit` when
    // typed at (a terminal on stdin).
    let until_quit = a.scenario.is_none() && a.run_ms.is_none() && a.test.is_none();
    let test = a.test.filter(|t| !t.is_empty());
    if let Some(t) = &test {
        xtask::kernel_tests::check(t)?;
    }
    let scenario = match a.scenario {
        _ if test.is_some() => None,
        Some(p) if p.as_os_str() == "none" => None,
        Some(p) => Some(p),
        None => Some(build::workspace_root().join("scenarios/default.toml")),
    };
    if let Some(p) = scenario.as_ref().filter(|p| !p.is_file()) {
        return Err(format!("{}: no such scenario file", p.display()));
    }
    // Only a scenario's applications have threads to trace: without one
    // (`none`, `test=`) thread_trace= has nothing to do.
    let scenario = match scenario {
        Some(p) if a.thread_trace => Some(xtask::experiments::scenario_with(
            &p,
            &[("thread_trace".into(), "true".into())],
            "thread_trace",
        )?),
        other => other,
    };
    // The scenario's own core count applies unless cpus= says.
    let scenario_cores = scenario.as_deref().and_then(xtask::sweep::scenario_cores);
    let cpus = a.cpus.or(scenario_cores).unwrap_or(4);
    let virtual_ms = a
        .run_ms
        .filter(|&ms| ms > 0)
        .or_else(|| scenario.as_deref().map(xtask::experiments::scenario_ms));
    let timeout = match (a.timeout, virtual_ms) {
        (Some(s), _) => Duration::from_secs(s),
        (None, Some(ms)) => xtask::experiments::run_timeout(cpus, ms),
        (None, None) => Duration::from_secs(120),
    };
    let opts = RunOptions {
        sched_override: a.sched.is_some(),
        sched: a
            .sched
            .unwrap_or_else(|| sched_registry::default_policy().kind.name().into()),
        cpus,
        scenario,
        det: a.det,
        input: Vec::new(),
        // A kernel test runs no scenario, so no script (as scenario= is
        // ignored beside test=).
        console: a.console.filter(|_| test.is_none()),
        until_quit,
        accel: a.accel,
        machine: a.machine,
        qemu_extra: a.qemu.split_whitespace().map(String::from).collect(),
        run_ms: a.run_ms,
        test,
        cmdline: a.cmdline.split_whitespace().map(String::from).collect(),
        timeout,
        name: a.name.filter(|n| !n.is_empty()),
        runs_dir: a.runs_dir,
        stream: true,
        programs: true,
        memory_mib: a.memory,
    };
    Ok((opts, a.dry_run))
}

/// The old `just fuzz`: kernel test `fuzz` on TCG with 10 ms slices and a
/// generous grace (the fuzzer's calls are slow under emulation).
fn fuzz_options(seconds: f64, cpus: u32, accel: Accel, det: bool) -> Result<RunOptions, String> {
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(format!("seconds must be a positive number, not {seconds}"));
    }
    let run_ms = (seconds * 1000.0).round() as u64;
    Ok(RunOptions {
        cpus,
        accel,
        test: Some("fuzz".into()),
        run_ms: Some(run_ms),
        cmdline: vec!["slice_us=10000".into(), "grace_us=3000".into()],
        timeout: if det {
            xtask::experiments::run_timeout(cpus, run_ms)
        } else {
            Duration::from_millis(run_ms * 2 + 300_000)
        },
        det,
        // Not `<time>-stride-<N>c`: no scheduler is involved.
        name: Some(format!("fuzz-{cpus}c-{}ms", run_ms)),
        stream: true,
        programs: true,
        ..RunOptions::default()
    })
}

/// Runs `opts` streaming its console, or describes it (`dry_run`).
/// `trials=N`: the scenario N times (seed, seed+1, ...; two at once when
/// det, whose figures do not depend on the host's load), then each
/// thread's share and error as mean and 95% confidence interval, printed
/// and written beside the runs as <name>-trials.tsv.
fn run_trials(opts: &RunOptions, n: u32, dry_run: bool) -> Result<ExitCode, String> {
    let mut base = opts.clone();
    base.stream = false;
    let jobs = xtask::trials::jobs(&base, n)?;
    if dry_run {
        let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
        return Ok(describe(&format!(
            "trials     {n} runs ({}), each:\n{}",
            names.join(", "),
            plan::run(&jobs[0].opts)?
        )));
    }
    let parallel = if opts.det { 2 } else { 1 };
    let mut summaries = Vec::new();
    let mut failed = 0;
    let mut dirs = Vec::new();
    for (job, out) in xtask::experiments::run_all(jobs, parallel) {
        match out {
            Ok(out) if out.process_code() == 0 => {
                dirs.push(out.run_dir.clone());
                summaries.push(out.summary);
            }
            Ok(out) => {
                failed += 1;
                eprintln!("{}: {}", job.name, out.exit_name);
            }
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e}", job.name);
            }
        }
    }
    let table = xtask::trials::table(&summaries);
    print!("{table}");
    for why in xtask::trials::left_out(&summaries) {
        eprintln!("warning: {why}");
    }
    if xtask::trials::identical(&summaries) {
        eprintln!(
            "warning: every trial gave every thread the same CPU time: the scenario seed did not \
             change these runs (a deterministic run whose draws do not follow the scenario seed); \
             the intervals of zero are not a measured spread"
        );
    }
    if let Some(dir) = dirs.first().and_then(|d| d.parent()) {
        let stem = opts.name.clone().unwrap_or_else(|| {
            opts.scenario
                .as_deref()
                .and_then(|p| p.file_stem())
                .map_or("trials".into(), |s| s.to_string_lossy().into_owned())
        });
        let path = dir.join(format!("{stem}-trials.tsv"));
        std::fs::write(&path, &table).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!(
            "== {} of {n} trials; table in {}",
            summaries.len(),
            path.display()
        );
    }
    if failed > 0 {
        return Err(format!("{failed} of {n} trials failed"));
    }
    Ok(ExitCode::SUCCESS)
}

fn run_or_describe(opts: &RunOptions, dry_run: bool) -> Result<ExitCode, String> {
    if dry_run {
        return Ok(describe(&plan::run(opts)?));
    }
    if let Err(e) = xtask::qemu::install_interrupt_handler() {
        eprintln!("warning: Ctrl-C will not write results: {e}");
    }
    let out = xtask::run(opts).map_err(|e| e.to_string())?;
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
    Ok(ExitCode::from(
        u8::try_from(out.process_code()).unwrap_or(1),
    ))
}

fn plot(
    run: Option<PathBuf>,
    opts: &xtask::plot::PlotOptions,
    dry_run: bool,
) -> Result<ExitCode, String> {
    let dir = match run {
        Some(r) if r.is_dir() => r,
        Some(r) => build::workspace_root().join("results/runs").join(r),
        None => newest_scenario_run()?,
    };
    if !dir.join("rundata.json").is_file() {
        return Err(format!(
            "{}: not a scenario run (no rundata.json)",
            dir.display()
        ));
    }
    if dry_run {
        xtask::plot::check(&dir, opts)?;
        return Ok(describe(&format!(
            "would draw  {}: progress, shares, lag, waits, slice map (PNG and SVG, {:?} size, beside its data)",
            dir.display(),
            opts.paper
        )));
    }
    let plotted = xtask::plot::plot_run_with(&dir, opts)?;
    for f in &plotted.files {
        println!("{}", f.display());
    }
    // On stderr: stdout lists the files written, for scripts.
    let about = &plotted.about;
    if opts.title {
        eprintln!("the run: {about}");
    } else if plotted.titles_kept {
        eprintln!("titles kept although title=0 asked: the run is {about}");
    } else {
        // A figure without its title no longer says where its time came
        // from or whether it was trusted: its caption must.
        eprintln!("drawn without titles; their caption must say: {about}");
    }
    Ok(ExitCode::SUCCESS)
}

fn compare(a: &Path, b: &Path, dry_run: bool) -> Result<ExitCode, String> {
    let runs = build::workspace_root().join("results/runs");
    let (da, db) = (
        xtask::compare::resolve(a, &runs),
        xtask::compare::resolve(b, &runs),
    );
    let (sa, sb) = (xtask::compare::load(&da)?, xtask::compare::load(&db)?);
    if dry_run {
        return Ok(describe(&format!(
            "would compare  {} with {}",
            da.display(),
            db.display()
        )));
    }
    for w in xtask::compare::warnings(&sa, &sb) {
        eprintln!("{w}");
    }
    print!("{}", xtask::compare::table((&da, &sa), (&db, &sb)));
    Ok(ExitCode::SUCCESS)
}

/// The most recently written run directory that has scenario data.
fn newest_scenario_run() -> Result<PathBuf, String> {
    let runs = build::workspace_root().join("results/runs");
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

/// One line per job of a dry run, its scenario (or test) checked.
fn job_lines(jobs: &[(String, xtask::experiments::Job)]) -> Result<String, String> {
    let mut t = String::new();
    for (label, job) in jobs {
        let o = &job.opts;
        let what = match (&o.scenario, &o.test) {
            (Some(p), _) => {
                xtask::scenario::load(p, o.cpus).map_err(|e| format!("{}: {e}", job.name))?;
                p.display().to_string()
            }
            (None, Some(test)) => {
                xtask::kernel_tests::check(test)?;
                format!("test={test}")
            }
            (None, None) => "no scenario".into(),
        };
        t.push_str(&format!(
            "  {label:<24} {} core(s), {}{}{} -> results/runs/{}\n",
            o.cpus,
            what,
            if o.det { ", det" } else { "" },
            o.run_ms
                .map_or(String::new(), |ms| format!(", run_ms={ms}")),
            o.name.as_deref().unwrap_or(&job.name)
        ));
    }
    Ok(t)
}

fn experiments(
    jobs: u64,
    accel: Accel,
    size: xtask::canonical::SweepSize,
    dry_run: bool,
) -> Result<ExitCode, String> {
    let parallel = usize::try_from(jobs).unwrap_or(1);
    if dry_run {
        let all = xtask::canonical::jobs(accel, size)?;
        let labelled: Vec<_> = all.into_iter().map(|j| (j.name.clone(), j)).collect();
        return Ok(describe(&format!(
            "would run {} canonical experiments, {parallel} at once (deterministic TCG):\n{}\
             then draw their figures into results/figures/ and write results/README.md",
            labelled.len(),
            job_lines(&labelled)?
        )));
    }
    println!("{}", xtask::canonical::run(parallel, accel, size)?);
    Ok(ExitCode::SUCCESS)
}

fn sweep(s: &xtask::sweep::Sweep<'_>, jobs: u64, dry_run: bool) -> Result<ExitCode, String> {
    let runs = xtask::sweep::jobs(s)?;
    let parallel = usize::try_from(jobs).unwrap_or(1);
    if dry_run {
        return Ok(describe(&format!(
            "would run {} variant(s) of {} ({} = each value), {parallel} at once; accel {}:\n{}\
             then print every thread's share per value and write it as CSV beside the runs",
            runs.len(),
            s.scenario.display(),
            s.key,
            if s.det {
                "deterministic TCG (det=1: -icount, exact and repeatable figures)".to_string()
            } else {
                plan::scenario_accel_line(s.accel).to_string()
            },
            job_lines(&runs)?
        )));
    }
    xtask::sweep::run(s, runs, parallel)?;
    Ok(ExitCode::SUCCESS)
}

fn bench(smoke: bool, accel: Accel, dry_run: bool) -> Result<ExitCode, String> {
    if dry_run {
        return Ok(describe(&format!(
            "would run the {} benchmark: guest programs under {}, their Linux counterparts \
             on this host, the policies under criterion{};\nwrites results/bench/<commit>-<accel>.{{json,md}}",
            if smoke { "smoke (seconds-long)" } else { "full" },
            plan::accel_line(accel, false),
            if smoke {
                ""
            } else {
                "; instructions per operation under deterministic TCG, the platform's \
                 and a Linux guest's (Debian's linux-image-cloud-amd64, fetched once)"
            }
        )));
    }
    println!("{}", xtask::bench::run(smoke, accel)?);
    Ok(ExitCode::SUCCESS)
}

/// One deterministic section of `just bench` alone (`tails=1`, `scale=1`):
/// `run` prints it; with `dry_run`, what it would measure (`what`).
fn bench_section(dry_run: bool, what: &str, run: fn() -> String) -> Result<ExitCode, String> {
    if dry_run {
        return Ok(describe(&format!(
            "would run {what} under deterministic TCG; prints them, writes nothing under results/"
        )));
    }
    println!("{}", run());
    Ok(ExitCode::SUCCESS)
}

fn soak(
    cpus: u32,
    minutes: f64,
    accel: Accel,
    seed: u64,
    dry_run: bool,
) -> Result<ExitCode, String> {
    if !(minutes.is_finite() && minutes > 0.0) {
        return Err(format!("minutes must be a positive number, not {minutes}"));
    }
    if dry_run {
        let duration_ms = (minutes * 60_000.0) as u64;
        let (phases, each) = xtask::soak::phases(duration_ms);
        let opts = xtask::soak::options(cpus, duration_ms, accel, seed)?;
        return Ok(describe(&format!(
            "soak       {phases} phase(s) of {} s, seed {seed}\n{}",
            each / 1000,
            plan::run(&opts)?
        )));
    }
    xtask::soak::run(cpus, minutes, accel, seed)?;
    Ok(ExitCode::SUCCESS)
}
