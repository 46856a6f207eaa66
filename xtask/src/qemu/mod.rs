//! Starting QEMU, watching the console, writing the run's results.
//!
//! [`run`] ties the parts together: [`machine`] (accelerator, machine, CPU
//! model, QEMU's arguments), [`options`] (what a run is asked to do),
//! [`console`] (streaming the console, typed input, timeouts and Ctrl-C),
//! [`live`] (a scenario's live share table) and [`run_dir`] (where results
//! go).

mod console;
mod live;
mod machine;
mod options;
mod prepare;
mod run_dir;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use abi::ExitCode;

pub use console::{install_interrupt_handler, LineSplitter};
pub use machine::{
    choose, cpu_model, describe_choice, det_core_speed, det_slowdown, det_speed_warning,
    effective_cpu_model, effective_machine, icount_shift, kernel_cmdline, kvm_kind, kvm_usable,
    qemu_args, Accel, Choice, KvmKind, DET_INTERLEAVE_US, ICOUNT_SHIFT,
};
pub use options::RunOptions;
pub use prepare::{prepare, Prepared};
pub use run_dir::{create_unique_dir, run_name, utc_stamp};

use crate::records::{self, Records};
use crate::summary;
use crate::{build, Error};
use console::{forward_stdin, set_watching, type_input, watch, ConsoleAcks};
use live::Live;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The kernel wrote this code to the debug-exit device.
    Kernel(ExitCode),
    /// The run outlived its timeout and QEMU was stopped.
    Timeout,
    /// Ctrl-C (SIGINT) during the run.
    Interrupted,
    /// QEMU ended without a kernel exit code (bad arguments, triple fault
    /// with `-no-reboot`, killed from outside, ...).
    QemuError,
    /// The kernel finished well, but an application of the scenario
    /// stopped sending samples (see [`crate::sampling`]).
    SamplingStopped,
}

impl End {
    /// Classifies a finished QEMU: its exit status (`None` when killed by a
    /// signal) and whether the runner stopped it. A kernel exit code wins:
    /// the kernel may have finished just as the limit struck.
    pub fn classify(status: Option<i32>, timed_out: bool, interrupted: bool) -> End {
        match status.and_then(ExitCode::from_qemu_status) {
            Some(code) => End::Kernel(code),
            None if timed_out => End::Timeout,
            None if interrupted => End::Interrupted,
            None => End::QemuError,
        }
    }

    /// The name written to `summary.json`'s `exit`.
    pub fn name(self) -> &'static str {
        match self {
            End::Kernel(code) => code.name(),
            End::Timeout => "timeout",
            End::Interrupted => "interrupted",
            End::QemuError => "qemu_error",
            End::SamplingStopped => "sampling_stopped",
        }
    }

    /// The runner's process exit code: the kernel's own mapping
    /// ([`ExitCode::process_code`]: 0 or 11..), else 2 (QEMU failed),
    /// 3 (timeout), 4 (an application stopped sampling) or 130
    /// (interrupted, as shells report SIGINT).
    pub fn process_code(self) -> i32 {
        match self {
            End::Kernel(code) => code.process_code(),
            End::QemuError => 2,
            End::Timeout => 3,
            End::SamplingStopped => 4,
            End::Interrupted => 130,
        }
    }

    pub fn exit_code(self) -> Option<ExitCode> {
        match self {
            End::Kernel(code) => Some(code),
            _ => None,
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    pub end: End,
    /// The kernel's exit code, if it reached the exit device.
    pub exit: Option<ExitCode>,
    /// [`End::name`]: an `ExitCode` name, "timeout", "interrupted" or "qemu_error".
    pub exit_name: String,
    pub records: Records,
    pub console: String,
    pub run_dir: PathBuf,
    pub summary_path: PathBuf,
    pub summary: serde_json::Value,
}

impl RunOutcome {
    /// The process exit code `cargo xtask run` (and so `just`) ends with.
    pub fn process_code(&self) -> i32 {
        self.end.process_code()
    }
}

/// Builds, boots and watches one run; writes its results directory
/// (`console.log` as the console arrives, `summary.json` at the end, also
/// after a timeout, an interrupt or a QEMU failure).
pub fn run(opts: &RunOptions) -> Result<RunOutcome, Error> {
    // Our stdin, typed or piped, reaches QEMU's serial port a line at a
    // time once the kernel has booted: a byte that arrives before the
    // kernel sets up the port is lost, and a terminal handed to QEMU
    // delivers its keys at once (a `quit` typed during the boot never took
    // effect). A terminal stays in its own line mode, so what is typed is
    // echoed and edited there (the console echoes nothing). Without
    // streaming QEMU gets no stdin at all.
    let terminal = std::io::stdin().is_terminal();
    let forwarded = opts.stream && opts.input.is_empty();
    let Prepared {
        opts,
        scenario,
        script,
        choice,
        accel_requested,
        sched_label,
    } = prepare(opts, terminal)?;
    let opts = &opts;
    if opts.stream {
        // The run's first line: what its figures are worth.
        eprintln!("== {} cores, {}", opts.cpus, describe_choice(&choice));
        if choice.det {
            if let Some(w) = machine::det_speed_warning(opts.cpus) {
                eprintln!("{w}");
            }
        }
    }
    let kernel = build::kernel()?;
    let initrd = match &scenario {
        Some(s) => {
            let plan =
                s.launch_plan_at(choice.det.then(|| det_core_speed(opts.cpus).round() as u64));
            let mut extra: Vec<(&str, &[u8])> = vec![("scenario", plan.as_bytes())];
            if let Some(text) = &script {
                extra.push(("console", text.as_bytes()));
            }
            build::programs_with(&extra)?
        }
        None if opts.programs => build::programs()?,
        None => None,
    };
    let accel = opts.accel;
    let cmdline = kernel_cmdline(opts);
    let args = qemu_args(
        opts,
        accel,
        &kernel.to_string_lossy(),
        initrd.as_ref().map(|p| p.path().to_str().unwrap_or("")),
        &cmdline,
    );
    let started_at = SystemTime::now();
    let name = opts
        .name
        .clone()
        .unwrap_or_else(|| run_name(&sched_label, opts.cpus, started_at));
    let runs_dir = opts
        .runs_dir
        .clone()
        .unwrap_or_else(|| build::workspace_root().join("results/runs"));
    let run_dir = create_unique_dir(&runs_dir, &name)?;
    let machine = effective_machine(&opts.machine, &opts.qemu_extra);

    if opts.stream {
        eprintln!("== machine {machine}; results in {}", run_dir.display());
    }
    let started = Instant::now();
    set_watching(true);
    let child = Command::new("qemu-system-x86_64")
        .args(&args)
        .stdin(if forwarded || !opts.input.is_empty() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(Error::QemuSpawn);
    let mut live = scenario
        .as_ref()
        .map(|s| Live::new(s, opts.cpus, opts.stream, choice.mode));
    let acks = ConsoleAcks::default();
    let watched = child.and_then(|mut child| {
        match child.stdin.take() {
            Some(stdin) if forwarded => forward_stdin(stdin, acks.clone()),
            Some(stdin) => type_input(stdin, opts.input.clone(), acks.clone()),
            None => {}
        }
        watch(
            child,
            opts,
            started,
            &run_dir.join("console.log"),
            live.as_mut(),
            &acks,
        )
    });
    set_watching(false);
    let w = watched?;

    let end = End::classify(w.status, w.timed_out, w.interrupted);
    if opts.stream && !w.stderr.trim().is_empty() && end == End::QemuError {
        eprintln!("qemu: {}", w.stderr.trim());
    }
    let records = records::parse_records(&w.console);
    let online = records
        .first(abi::record::RecordKind::Boot)
        .and_then(|b| b["cpus_online"].as_u64())
        .map_or(opts.cpus, |n| n as u32);
    let summary = summary::build(
        &summary::RunFacts {
            run_name: run_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            started_utc: utc_stamp(started_at),
            commit: build::commit(),
            sched: &sched_label,
            cpus_requested: opts.cpus,
            accel_requested: accel_requested.name(),
            accel: accel.name(),
            machine,
            cpu_model: effective_cpu_model(&args).unwrap_or_default(),
            qemu_args: &args,
            cmdline: &cmdline,
            exit: end.name(),
            wall_ms: w.wall.as_millis() as u64,
            qemu_stderr: &w.stderr,
            mode: choice.mode,
            capacities: scenario
                .as_ref()
                .map(|s| s.capacities(online))
                .unwrap_or_default(),
            thread_names: scenario
                .as_ref()
                .map(crate::scenario_run::thread_names)
                .unwrap_or_default(),
        },
        &records,
    );
    if let Some(warning) = summary::accel_mismatch(&summary) {
        eprintln!("warning: {warning}");
    }
    let mut summary = summary;
    let mut end = end;
    if let Some(s) = &scenario {
        // A kernel that finished well, with an application that stopped
        // reporting, is not a success: its figures end where its samples do.
        let stopped = crate::sampling::gaps(&records, s.sample_ms);
        if !stopped.is_empty() {
            for gap in &stopped {
                eprintln!("!! {gap}: no figures for that time");
            }
            summary["sampling_stopped"] = serde_json::json!(stopped);
            if end == End::Kernel(ExitCode::Success) {
                end = End::SamplingStopped;
                summary["exit"] = end.name().into();
            }
        }
        let mut data = crate::scenario_run::rundata(s, &records, online, opts.det);
        crate::scenario_run::write_results(&run_dir, s, &mut data, &mut summary)?;
        if let Some(live) = live.as_mut() {
            live.finish(&summary);
        }
    }
    let summary_path = run_dir.join("summary.json");
    let mut text = serde_json::to_string_pretty(&summary).expect("a JSON value serialises");
    text.push('\n');
    std::fs::write(&summary_path, text).map_err(Error::io(&summary_path))?;
    Ok(RunOutcome {
        end,
        exit: end.exit_code(),
        exit_name: end.name().to_string(),
        records,
        console: w.console,
        run_dir,
        summary_path,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_map_to_ends_and_process_codes() {
        for code in ExitCode::ALL {
            let end = End::classify(Some(code.qemu_status()), false, false);
            assert_eq!(end, End::Kernel(code));
            assert_eq!(end.name(), code.name());
            assert_eq!(end.process_code(), code.process_code());
            // A kernel that finished as the limit struck still counts.
            assert_eq!(End::classify(Some(code.qemu_status()), true, true), end);
        }
        assert_eq!(End::classify(None, true, false), End::Timeout);
        assert_eq!(End::classify(Some(0), false, true), End::Interrupted);
        assert_eq!(End::classify(Some(1), false, false), End::QemuError);
        assert_eq!(End::classify(Some(0), false, false), End::QemuError);
        assert_eq!(End::classify(None, false, false), End::QemuError);
        assert_eq!(End::Kernel(ExitCode::Success).process_code(), 0);
        let runner = [End::QemuError, End::Timeout, End::Interrupted];
        for end in runner {
            assert_ne!(end.process_code(), 0);
            assert!(ExitCode::ALL
                .iter()
                .all(|c| c.process_code() != end.process_code()));
        }
        assert_eq!(End::Timeout.name(), "timeout");
        assert_eq!(End::QemuError.name(), "qemu_error");
    }
}
