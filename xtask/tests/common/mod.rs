//! Shared helpers for the in-QEMU suites: boot a kernel test, assert on
//! what the kernel reported.
#![allow(dead_code)]

use std::time::Duration;

use abi::record::RecordKind;
use abi::ExitCode;
use xtask::{Accel, RunOptions, RunOutcome};

/// Held while any QEMU run of a suite executes: two at once on a 2-core host
/// starve each other's vCPUs and turn the share checks into noise (seen: a
/// well-behaved program at 0.470 of its 0.5 beside another 2-vCPU QEMU, and
/// an rr thread at 0.166 of its 0.125 while a 1-vCPU run overlapped a
/// 2-vCPU one).
pub static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Where the suites' runs go: `target/test-runs/`, never among the user's
/// `results/runs/`.
pub fn test_runs_dir() -> std::path::PathBuf {
    xtask::build::workspace_root().join("target/test-runs")
}

/// Options for a suite run named `name`: the run directory is
/// `target/test-runs/test-<name>` (with a suffix when it exists).
pub fn options(
    name: &str,
    cpus: u32,
    accel: Accel,
    machine: &str,
    extra: &[&str],
    cmdline: &[&str],
) -> RunOptions {
    RunOptions {
        cpus,
        accel,
        machine: machine.into(),
        qemu_extra: extra.iter().map(|s| s.to_string()).collect(),
        cmdline: cmdline.iter().map(|s| s.to_string()).collect(),
        timeout: Duration::from_secs(if accel == Accel::Kvm { 120 } else { 90 }),
        name: Some(format!("test-{name}")),
        runs_dir: Some(test_runs_dir()),
        stream: false,
        programs: true,
        ..RunOptions::default()
    }
}

/// Runs `opts` (serialised with other many-vCPU runs), in
/// [`test_runs_dir`] unless `opts` names another directory; a
/// deterministic run gets at least [`det_timeout`].
pub fn run(opts: &RunOptions) -> RunOutcome {
    let mut opts = opts.clone();
    opts.runs_dir.get_or_insert_with(test_runs_dir);
    if opts.det {
        opts.timeout = opts.timeout.max(det_timeout(&opts));
    }
    let opts = &opts;
    let _serial = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    xtask::run(opts).unwrap_or_else(|e| panic!("{:?}: runner failed: {e}", opts.name))
}

/// `opts` made deterministic (TCG, one thread, `-icount`): the guest's
/// clocks follow executed instructions, so a share, an overrun or a charge
/// it reports does not depend on how busy the host is. Every suite run
/// that asserts on time uses it: non-deterministic TCG on this 2-core host
/// gave a well-behaved program 0.454 of its 0.5 while the host was loaded
/// (CI, 220cb5d), failing a correct kernel. [`run`] gives it its
/// wall-clock limit ([`det_timeout`]).
pub fn deterministic(opts: RunOptions) -> RunOptions {
    RunOptions { det: true, ..opts }
}

/// Wall-clock seconds a deterministic kernel-test run (`test=`) may take
/// per core and per second of guest time. One host thread runs every vCPU
/// in turn, at 8-25 million guest instructions a second here (the test
/// programs read the clock in their loops, and under `-icount` each read
/// ends a translation block), slower beside other QEMUs: s06's `epilogue`
/// (2 cores, 1.5 guest seconds) took 59 s on a quiet host and 129 s beside
/// one other deterministic run, 43 s per core-second, against a limit of
/// 140 s that counted the cores but not the guest seconds; s12's
/// `segments` on 4 cores took 92 to 191 s for 2 s. Twice the worst seen:
/// only a run that hangs waits this long. (Scenario runs cost 1-2 s per
/// core-second: they get the runner's own limit, `run_timeout`.)
const DET_WALL_S_PER_CORE_SECOND: u64 = 90;

/// Wall-clock seconds a deterministic kernel-test run may take besides:
/// building the kernel and programs when they changed, starting QEMU,
/// booting.
const DET_WALL_BASE_S: u64 = 120;

/// The wall-clock limit of deterministic run `opts`: it grows with the
/// cores and with the guest time the run lasts ([`guest_ms`]).
pub fn det_timeout(opts: &RunOptions) -> Duration {
    let cpus = opts.cpus.max(1);
    if opts.scenario.is_some() {
        return xtask::experiments::run_timeout(cpus, guest_ms(opts));
    }
    let core_ms = u64::from(cpus) * guest_ms(opts).max(1000);
    Duration::from_secs(DET_WALL_BASE_S + DET_WALL_S_PER_CORE_SECOND * core_ms / 1000)
}

/// How long `opts` runs in guest time, in ms: the longest of its `run_ms`
/// (option or kernel command-line word) and its scenario's `duration_ms`;
/// 0 when it names neither (a kernel test of the platform alone: a boot).
pub fn guest_ms(opts: &RunOptions) -> u64 {
    let words = opts
        .cmdline
        .iter()
        .flat_map(|w| w.split_whitespace())
        .filter_map(|w| w.strip_prefix("run_ms=")?.parse::<u64>().ok());
    let scenario = opts
        .scenario
        .as_deref()
        .map(xtask::experiments::scenario_ms);
    words.chain(opts.run_ms).chain(scenario).max().unwrap_or(0)
}

/// [`boot`], deterministically ([`deterministic`]).
pub fn boot_det(
    name: &str,
    cpus: u32,
    machine: &str,
    extra: &[&str],
    cmdline: &[&str],
) -> RunOutcome {
    run(&deterministic(options(
        name,
        cpus,
        Accel::Tcg,
        machine,
        extra,
        cmdline,
    )))
}

/// Boots with kernel command-line words `cmdline` (`test=<name>` selects a
/// kernel-side test) and returns the outcome.
pub fn boot(
    name: &str,
    cpus: u32,
    accel: Accel,
    machine: &str,
    extra: &[&str],
    cmdline: &[&str],
) -> RunOutcome {
    run(&options(name, cpus, accel, machine, extra, cmdline))
}

/// The checks named `check` that the kernel reported.
pub fn checks_named<'a>(out: &'a RunOutcome, check: &str) -> Vec<&'a serde_json::Value> {
    out.records
        .of(RecordKind::Check)
        .filter(|c| c["check"] == check)
        .collect()
}

/// Asserts the run ended with `want`, printing the console otherwise.
pub fn assert_exit(out: &RunOutcome, want: ExitCode) {
    assert_eq!(
        out.exit,
        Some(want),
        "exit {} (wanted {}); console:\n{}",
        out.exit_name,
        want.name(),
        tail(&out.console)
    );
}

/// Asserts that every kernel check passed, the run succeeded, and some
/// checks ran (in that order: the first failure is the most telling).
pub fn assert_checks_pass(out: &RunOutcome) {
    let failed = out.records.failed_checks();
    assert!(
        failed.is_empty(),
        "failed checks: {failed:#?}\nconsole:\n{}",
        tail(&out.console)
    );
    assert_exit(out, ExitCode::Success);
    assert!(
        out.records.of(RecordKind::Check).count() > 0,
        "no checks ran; console:\n{}",
        tail(&out.console)
    );
}

/// Cores the kernel reported online.
pub fn cpus_online(out: &RunOutcome) -> u64 {
    out.records
        .first(RecordKind::Boot)
        .and_then(|b| b["cpus_online"].as_u64())
        .unwrap_or(0)
}

pub fn tail(console: &str) -> String {
    let lines: Vec<&str> = console.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Whether KVM can be used here; suites that need it say so when it cannot.
pub fn kvm() -> bool {
    if xtask::qemu::kvm_usable() {
        true
    } else {
        eprintln!("KVM is not usable on this machine: KVM cases not run (TCG cases still are)");
        false
    }
}

/// How many environments the kernel created during the run.
pub fn spawned(out: &RunOutcome) -> usize {
    out.records
        .of(RecordKind::Event)
        .filter(|e| e["event"] == "spawned")
        .count()
}

/// The last `user` record of `kind` (panics with the console's tail if none).
pub fn last_report<'a>(out: &'a RunOutcome, kind: &str) -> &'a serde_json::Value {
    out.records
        .of(RecordKind::User)
        .filter(|r| r["kind"] == kind)
        .last()
        .unwrap_or_else(|| panic!("no `{kind}` report:\n{}", tail(&out.console)))
}
