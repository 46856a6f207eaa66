//! Shared helpers for the in-QEMU suites: boot a kernel test, assert on
//! what the kernel reported.
#![allow(dead_code)]

use std::time::Duration;

use abi::record::RecordKind;
use abi::ExitCode;
use xtask::{Accel, RunOptions, RunOutcome};

/// Held while a many-vCPU emulated run executes: two of them at once on a
/// 2-core host starve each other's vCPUs and turn timing checks into noise.
pub static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Boots `test` (a kernel-side test name, or None for a plain run) and
/// returns the outcome; the run directory is named after the test.
pub fn boot(
    name: &str,
    cpus: u32,
    accel: Accel,
    machine: &str,
    extra: &[&str],
    cmdline: &[&str],
) -> RunOutcome {
    let opts = RunOptions {
        cpus,
        accel,
        machine: machine.into(),
        qemu_extra: extra.iter().map(|s| s.to_string()).collect(),
        cmdline: cmdline.iter().map(|s| s.to_string()).collect(),
        timeout: Duration::from_secs(if accel == Accel::Kvm { 120 } else { 90 }),
        name: Some(format!("test-{name}")),
        stream: false,
        programs: true,
        ..RunOptions::default()
    };
    let _serial = (cpus >= 4).then(|| HEAVY.lock().unwrap_or_else(|e| e.into_inner()));
    xtask::run(&opts).unwrap_or_else(|e| panic!("{name}: runner failed: {e}"))
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

/// Asserts success and that every kernel check passed (and some ran).
pub fn assert_checks_pass(out: &RunOutcome) {
    let failed = out.records.failed_checks();
    assert!(
        failed.is_empty(),
        "failed checks: {failed:#?}\nconsole:\n{}",
        tail(&out.console)
    );
    assert!(
        out.records.of(RecordKind::Check).count() > 0,
        "no checks ran; console:\n{}",
        tail(&out.console)
    );
    assert_exit(out, ExitCode::Success);
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
