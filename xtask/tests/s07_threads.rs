//! Layer 7: libOS threads on SMP under each policy, a runtime swap under
//! load, and two applications with different policies on the same cores.
//! The applications report every thread's weight and service; shares are
//! measured between their first and last reports (start-up excluded).
mod common;
use abi::record::RecordKind;
use common::*;
use serde_json::Value;
use xtask::{Accel, RunOutcome};

fn run(test: &str, sched: &str, cpus: u32, run_ms: u32) -> RunOutcome {
    let opts = xtask::RunOptions {
        sched: sched.into(),
        cpus,
        accel: Accel::Tcg,
        cmdline: vec![
            format!("test={test}"),
            format!("run_ms={run_ms}"),
            "slice_us=10000".into(),
            "grace_us=3000".into(),
        ],
        timeout: std::time::Duration::from_secs(90),
        name: Some(format!("test-{test}-{sched}-{cpus}")),
        ..xtask::RunOptions::default()
    };
    common::run(&deterministic(opts))
}

fn reports<'a>(out: &'a RunOutcome, env: &str) -> Vec<&'a Value> {
    out.records
        .of(RecordKind::User)
        .filter(|r| r["kind"] == "threads" && r["name"] == env)
        .collect()
}

/// (weight, service) of the worker threads (id ≥ 1) in one report.
fn workers(report: &Value) -> Vec<(u64, u64, u64)> {
    report["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t[0].as_u64().unwrap(),
                t[1].as_u64().unwrap(),
                t[2].as_u64().unwrap(),
            )
        })
        .filter(|&(id, _, _)| id >= 1)
        .collect()
}

/// Each worker's share of the workers' service between two reports, and
/// the share its weight asks for (all feasible here: 8/36 < 1/4).
fn shares(first: &Value, last: &Value, by_weight: bool) -> Vec<(f64, f64)> {
    let a = workers(first);
    let b = workers(last);
    assert_eq!(a.len(), b.len());
    let delta: Vec<u64> = a.iter().zip(&b).map(|(x, y)| y.2 - x.2).collect();
    let total: u64 = delta.iter().sum();
    let wsum: u64 = b.iter().map(|t| t.1).sum();
    b.iter()
        .zip(delta)
        .map(|(t, d)| {
            (
                d as f64 / total as f64,
                if by_weight {
                    t.1 as f64 / wsum as f64
                } else {
                    1.0 / b.len() as f64
                },
            )
        })
        .collect()
}

fn assert_shares(out: &RunOutcome, env: &str, by_weight: bool, tolerance: f64) {
    assert_checks_pass(out);
    let r = reports(out, env);
    assert!(r.len() >= 4, "too few reports:\n{}", tail(&out.console));
    for (i, (got, ideal)) in shares(r[1], r[r.len() - 1], by_weight)
        .into_iter()
        .enumerate()
    {
        assert!(
            (got - ideal).abs() <= tolerance,
            "{env} worker {}: share {got:.4} ideal {ideal:.4}\n{}",
            i + 1,
            r[r.len() - 1]
        );
    }
}

#[test]
fn stride_threads_on_four_cores_follow_their_weights() {
    // 300 quanta per second on 4 cores: stride's error is about one quantum
    // per thread, i.e. about 1% of the shares measured here.
    assert_shares(&run("threads", "stride", 4, 3500), "tspin", true, 0.02);
}

#[test]
fn lottery_threads_on_four_cores_stay_in_the_binomial_envelope() {
    // ~1000 draws: σ of a 0.22 share is ~0.013; 4σ.
    assert_shares(&run("threads", "lottery", 4, 3500), "tspin", true, 0.055);
}

#[test]
fn round_robin_threads_on_four_cores_get_equal_time() {
    assert_shares(&run("threads", "rr", 4, 3500), "tspin", false, 0.02);
}

#[test]
fn swapping_under_load_loses_no_thread_and_starves_none() {
    let out = run("swap", "stride", 4, 3000);
    assert_checks_pass(&out);
    let r = reports(&out, "tswap");
    assert!(r.len() >= 4, "{} reports\n{}", r.len(), tail(&out.console));
    let mut policies = std::collections::BTreeSet::new();
    for pair in r.windows(2) {
        policies.insert(pair[1]["policy"].as_str().unwrap().to_string());
        assert_eq!(
            pair[1]["swaps"].as_u64().unwrap(),
            pair[0]["swaps"].as_u64().unwrap() + 1
        );
        let (a, b) = (workers(pair[0]), workers(pair[1]));
        assert_eq!(b.len(), 8, "a thread was lost: {}", pair[1]);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.0, y.0);
            assert_eq!(x.1, y.1, "weight changed across a swap");
            assert!(y.2 >= x.2, "thread {} lost service across a swap", x.0);
        }
    }
    // A weight-1 thread (1/36 of the tickets) expects under 3 quanta per
    // 250 ms interval, so one interval without progress is possible under
    // lottery; over three intervals (and two swaps) every thread progresses.
    for w in r.windows(4) {
        for (x, y) in workers(w[0]).iter().zip(&workers(w[3])) {
            assert!(
                y.2 > x.2,
                "thread {} starved across three swaps: {} -> {}",
                x.0,
                w[0],
                w[3]
            );
        }
    }
    // tswap cycles through every registered policy.
    let registered: std::collections::BTreeSet<String> =
        sched_registry::names().map(String::from).collect();
    assert_eq!(policies, registered, "every policy took a turn");
}

#[test]
fn two_applications_run_different_policies_side_by_side() {
    let out = run("two_apps", "stride", 2, 3000);
    assert_checks_pass(&out);
    let a = reports(&out, "tspin");
    let b = reports(&out, "tspin_rr");
    assert!(
        a.len() >= 3 && b.len() >= 3,
        "{} and {} reports\n{}",
        a.len(),
        b.len(),
        tail(&out.console)
    );
    assert_eq!(a.last().unwrap()["policy"], "stride");
    assert_eq!(b.last().unwrap()["policy"], "rr");
    // Each keeps its own policy's shape at the same time.
    let stride = shares(a[1], a[a.len() - 1], true);
    assert!(
        stride[7].0 > 4.0 * stride[0].0,
        "stride: weight 8 vs 1 {stride:?}"
    );
    for (got, ideal) in shares(b[1], b[b.len() - 1], false) {
        assert!((got - ideal).abs() < 0.03, "rr share {got} vs {ideal}");
    }
}

#[test]
fn threads_sleeping_on_time_and_memory_cost_no_slices() {
    let out = run("watch", "stride", 2, 2000);
    assert_checks_pass(&out);
    let r: Vec<_> = out
        .records
        .of(RecordKind::User)
        .filter(|r| r["kind"] == "watch")
        .collect();
    let last = r.last().unwrap_or_else(|| panic!("{}", tail(&out.console)));
    // A flag flipped every 20 ms for ~2 s.
    assert!(last["wakeups"].as_u64().unwrap() >= 50, "{last}");
    // The waiter wakes at the flipping thread's next dispatch: within a slot.
    assert!(
        last["worst_wake_ns"].as_u64().unwrap() < 10_000_000,
        "{last}"
    );
}

/// A thread that overflows its stack reaches the unmapped guard gap below
/// it: the libOS ends that thread (and says so), its joiner wakes, and
/// its application's other threads, and the application beside it, go on.
#[test]
fn a_thread_overflowing_its_stack_is_ended_and_the_others_go_on() {
    let out = run("overflow", "stride", 2, 1500);
    assert_checks_pass(&out);
    let r = last_report(&out, "toverflow");
    assert_eq!(r["spawned"], true, "{r}");
    assert_eq!(r["overflows"], 1, "{r}");
    // 16 KiB of stack at a KiB a frame, then the gap.
    let depth = r["depth"].as_u64().unwrap();
    assert!(
        (8..=16).contains(&depth),
        "overflowed at depth {depth}: {r}"
    );
    let counts = |k: &str| -> Vec<u64> {
        r[k].as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_u64)
            .collect()
    };
    let (ended, after) = (counts("ended"), counts("after"));
    for (e, a) in ended.iter().zip(&after) {
        assert!(a > e, "a counting thread stopped after the overflow: {r}");
    }
    assert!(
        out.console.contains("overflowed its 16384-byte stack"),
        "{}",
        tail(&out.console)
    );
}
