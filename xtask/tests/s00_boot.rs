//! Layer 0: the kernel boots and brings every core online.
mod common;
use abi::record::RecordKind;
use common::*;
use xtask::Accel;

fn boots(cpus: u32, machine: &str, extra: &[&str]) {
    let out = boot(
        &format!("boot-{machine}-{cpus}"),
        cpus,
        Accel::Tcg,
        machine,
        extra,
        &["test=boot"],
    );
    assert_checks_pass(&out);
    assert_eq!(
        cpus_online(&out),
        u64::from(cpus),
        "console:\n{}",
        tail(&out.console)
    );
    assert_eq!(
        out.records.of(RecordKind::CoreOnline).count(),
        cpus as usize
    );
    assert_eq!(out.summary["cpus_online"], cpus);
}

#[test]
fn one_core() {
    boots(1, "pc", &[]);
}

#[test]
fn two_cores() {
    boots(2, "pc", &[]);
}

#[test]
fn four_cores() {
    boots(4, "pc", &[]);
}

#[test]
fn eight_cores() {
    boots(8, "pc", &[]);
}

#[test]
fn sixteen_cores() {
    boots(16, "pc", &[]);
}

#[test]
fn thirty_two_cores() {
    boots(32, "pc", &[]);
}

#[test]
fn q35() {
    boots(4, "q35", &[]);
}

#[test]
fn microvm() {
    boots(4, "microvm", &[]);
}

#[test]
fn cpu_model_without_x2apic_features() {
    boots(4, "pc", &["-cpu", "qemu64"]);
}

#[test]
fn malformed_command_line_is_rejected() {
    let out = boot("bad-cmdline", 1, Accel::Tcg, "pc", &[], &["colour=red"]);
    assert_exit(&out, abi::ExitCode::BadBootInput);
    assert!(
        out.console.contains("unknown key `colour`"),
        "{}",
        tail(&out.console)
    );
}

#[test]
fn unknown_test_is_rejected() {
    let out = boot("no-such-test", 1, Accel::Tcg, "pc", &[], &["test=nonesuch"]);
    assert_exit(&out, abi::ExitCode::BadBootInput);
}
