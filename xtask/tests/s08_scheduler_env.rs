//! Layer 8: between applications — a scheduler environment owns the slices
//! and donates them by directed yield to three client applications holding
//! 3:2:1 tickets (the Aegis stride experiment), under each policy.
mod common;
use abi::record::RecordKind;
use common::*;
use xtask::{Accel, RunOutcome};

fn run(sched: &str) -> RunOutcome {
    let opts = xtask::RunOptions {
        sched: sched.into(),
        cpus: 2,
        accel: Accel::Tcg,
        cmdline: vec![
            "test=sched_env".into(),
            "run_ms=3000".into(),
            "slice_us=10000".into(),
            "grace_us=3000".into(),
        ],
        timeout: std::time::Duration::from_secs(90),
        name: Some(format!("test-sched-env-{sched}")),
        ..xtask::RunOptions::default()
    };
    common::run(&deterministic(opts))
}

/// CPU time of each client (a, b, c), all cores together.
fn client_cpu(out: &RunOutcome) -> [f64; 3] {
    let cpu = |name: &str| -> f64 {
        let e = out
            .records
            .of(RecordKind::EnvStats)
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{}", tail(&out.console)));
        e["cpu_ns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as f64)
            .sum()
    };
    [cpu("client_a"), cpu("client_b"), cpu("client_c")]
}

fn assert_ratios(out: &RunOutcome, want: [f64; 3], tolerance: f64) {
    assert_checks_pass(out);
    let cpu = client_cpu(out);
    let total: f64 = cpu.iter().sum();
    let wsum: f64 = want.iter().sum();
    for i in 0..3 {
        let (got, ideal) = (cpu[i] / total, want[i] / wsum);
        assert!(
            (got - ideal).abs() <= tolerance,
            "client {i}: share {got:.4} ideal {ideal:.4} ({cpu:?})"
        );
    }
    // The scheduler environment itself only decides: nearly all the time
    // went to the clients.
    let sched_env = out
        .records
        .of(RecordKind::EnvStats)
        .find(|e| e["name"] == "sched_env")
        .unwrap();
    let own: f64 = sched_env["cpu_ns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as f64)
        .sum();
    assert!(own < 0.05 * total, "scheduler used {own} of {total}");
}

#[test]
fn stride_donations_split_time_three_two_one() {
    assert_ratios(&run("stride"), [3.0, 2.0, 1.0], 0.02);
}

#[test]
fn lottery_donations_split_time_by_tickets() {
    // ~600 draws: 4σ of a 1/6 share is about 0.06.
    assert_ratios(&run("lottery"), [3.0, 2.0, 1.0], 0.06);
}

#[test]
fn round_robin_donations_split_time_evenly() {
    assert_ratios(&run("rr"), [1.0, 1.0, 1.0], 0.02);
}
