//! Layer 1: every core's APIC timer fires, on time, at the requested rate.
mod common;
use abi::record::RecordKind;
use common::*;
use xtask::Accel;

#[test]
fn timer_checks_on_four_cores() {
    assert_checks_pass(&boot("timer-4", 4, Accel::Tcg, "pc", &[], &["test=timer"]));
}

#[test]
fn timer_checks_on_microvm() {
    assert_checks_pass(&boot(
        "timer-microvm",
        2,
        Accel::Tcg,
        "microvm",
        &[],
        &["test=timer"],
    ));
}

/// The plain run (no programs needed): every core ticks at ~1 kHz.
#[test]
fn every_core_ticks_in_a_plain_run() {
    let out = boot(
        "ticking-8",
        8,
        Accel::Tcg,
        "pc",
        &[],
        &["run_ms=1000", "tick_us=1000"],
    );
    assert_exit(&out, abi::ExitCode::Success);
    let stats: Vec<_> = out.records.of(RecordKind::CoreStats).collect();
    assert_eq!(stats.len(), 8);
    for s in stats {
        let ticks = s["ticks"].as_u64().unwrap();
        // 1000 expected. Ticks a descheduled vCPU misses are skipped, not
        // replayed, and 8 vCPUs share 2 host cores here: the lower bound
        // only says "ticking at about the requested rate", the upper one
        // that no tick is doubled.
        assert!(
            (250..=1100).contains(&ticks),
            "core {}: {ticks} ticks",
            s["core"]
        );
    }
    assert_eq!(out.summary["cores"].as_array().unwrap().len(), 8);
}
