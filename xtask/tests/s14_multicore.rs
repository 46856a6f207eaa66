//! Layer 14: the CPU interface on several cores, measured in deterministic
//! runs (issue 13). A cooperative application's turns end in its own
//! yield, not in repossessions; no core idles while threads are runnable;
//! its threads get the application's time; stride's lag stays within a
//! couple of quanta; applications' machine shares follow their slots.
//!
//! Before the wait-free epilogue, the grace renewal and the deterministic
//! runs' interleaving, these runs measured 22.9% (2 cores) and 42.0%
//! (4 cores) of turns repossessed, 3–9% of core time idle, and 72.1/27.9
//! for slots held 3:1.
mod common;
use std::path::PathBuf;

use common::*;
use serde_json::Value;
use xtask::{Accel, RunOptions};

/// A shipped scenario, shortened to `ms`, as a file of its own.
fn scenario(name: &str, ms: u64) -> PathBuf {
    let path = xtask::build::workspace_root().join(format!("scenarios/{name}.toml"));
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.replace("duration_ms = 5000", &format!("duration_ms = {ms}"));
    let dir = std::env::temp_dir().join(format!("exo-s14-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{name}.toml"));
    std::fs::write(&out, text).unwrap();
    out
}

fn det_run(name: &str, cpus: u32, scenario: PathBuf) -> xtask::RunOutcome {
    let opts = RunOptions {
        scenario: Some(scenario),
        det: true,
        ..options(name, cpus, Accel::Tcg, "pc", &[], &[])
    };
    let out = run(&opts);
    assert_exit(&out, abi::ExitCode::Success);
    out
}

fn env<'a>(out: &'a xtask::RunOutcome, name: &str) -> &'a Value {
    out.summary["envs"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["name"] == name))
        .unwrap_or_else(|| panic!("no env {name}:\n{}", tail(&out.console)))
}

fn cpu_ns(env: &Value) -> f64 {
    env["cpu_ns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap() as f64)
        .sum()
}

fn cooperative_on(cpus: u32) {
    let out = det_run(
        &format!("multicore-16-{cpus}c"),
        cpus,
        scenario("multicore-16", 2000),
    );
    let e = env(&out, "sixteen");
    let turns = e["turns"].as_u64().unwrap();
    let repossessions = e["repossessions"].as_u64().unwrap();
    assert!(turns > 400 * u64::from(cpus), "{e}");
    assert!(
        repossessions as f64 <= 0.005 * turns as f64,
        "{repossessions} of {turns} turns repossessed ({e})"
    );
    let duration = out.summary["duration_ns"].as_f64().unwrap();
    for core in out.summary["cores"].as_array().unwrap() {
        let idle = core["idle_ns"].as_f64().unwrap() / duration;
        assert!(idle <= 0.01, "core idle {:.2}%: {core}", idle * 100.0);
    }
    let app = &out.summary["apps"][0];
    let threads = app["threads"].as_array().unwrap();
    let to_threads: f64 = threads.iter().map(|t| t["cpu_ns"].as_f64().unwrap()).sum();
    // Target 97%; measured over 5 s 95.8% (2 cores), 94.7% (4), 94.1% (8),
    // and over these 2 s, start-up included, 92.0% and 91.5%: the rest is
    // the per-turn path (prologue, dispatch, epilogue) at 125 million
    // emulated instructions per second per core, and the application's
    // own control thread. Before: 70.7% on 2 cores.
    let share = to_threads / cpu_ns(e);
    assert!(
        share >= 0.90,
        "threads got {:.1}% of the application's time",
        share * 100.0
    );
    let lag = threads
        .iter()
        .map(|t| t["max_abs_lag_quanta"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(lag <= 2.0, "stride's lag reached {lag:.2} quanta");
}

#[test]
fn a_cooperative_application_keeps_its_turns_on_2_cores() {
    cooperative_on(2);
}

#[test]
fn a_cooperative_application_keeps_its_turns_on_4_cores() {
    cooperative_on(4);
}

#[test]
fn machine_shares_follow_slots() {
    let out = det_run("slots-3to1", 2, scenario("slots-3to1", 2000));
    let (big, small) = (cpu_ns(env(&out, "big")), cpu_ns(env(&out, "small")));
    let share = big / (big + small);
    assert!(
        (share - 0.75).abs() <= 0.01,
        "3:1 slots gave {:.1}/{:.1}",
        share * 100.0,
        (1.0 - share) * 100.0
    );
}
