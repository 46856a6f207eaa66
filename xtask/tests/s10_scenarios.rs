//! Layer 10: scenario files end to end — rejected before QEMU when
//! malformed, shares per scheduler on two cores, a console command applied
//! mid-run, deterministic runs identical, the shipped examples boot.
mod common;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::Value;
use xtask::{Accel, RunOptions};

fn scenario_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("exo-s10-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn scenario_opts(name: &str, cpus: u32, path: PathBuf) -> RunOptions {
    RunOptions {
        scenario: Some(path),
        ..options(name, cpus, Accel::Tcg, "pc", &[], &[])
    }
}

/// `(name, measured share, ideal share)` of every thread of application `app`.
fn shares(out: &xtask::RunOutcome, app: &str) -> Vec<(String, f64, f64)> {
    let apps = out.summary["apps"].as_array().expect("apps in summary");
    let a = apps.iter().find(|a| a["name"] == app).expect("the app");
    a["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let f = |k: &str| t[k].as_f64().unwrap_or(f64::NAN);
            (
                t["name"].as_str().unwrap_or("").to_string(),
                f("measured_share"),
                f("ideal_share"),
            )
        })
        .collect()
}

const FOUR_WEIGHTS: &str = r#"
duration_ms = 3000
slice_us = 1000
[[app]]
name = "w"
scheduler = "SCHED"
[[app.thread]]
name = "t1"
tickets = 100
behaviour = "cpu"
[[app.thread]]
name = "t2"
tickets = 200
behaviour = "cpu"
[[app.thread]]
name = "t3"
tickets = 300
behaviour = "cpu"
[[app.thread]]
name = "t4"
tickets = 400
behaviour = "cpu"
"#;

#[test]
fn a_malformed_scenario_is_rejected_before_qemu_with_line_and_field() {
    let path = scenario_file(
        "bad",
        &FOUR_WEIGHTS
            .replace("tickets = 300", "tickets = 0")
            .replace("SCHED", "stride"),
    );
    let opts = scenario_opts("bad-scenario", 2, path);
    match xtask::run(&opts) {
        Err(xtask::Error::Scenario(why)) => {
            assert!(
                why.contains("line 17") && why.contains("app[0].thread[2].tickets"),
                "{why}"
            )
        }
        other => panic!(
            "expected a scenario error, got {:?}",
            other.map(|o| o.exit_name)
        ),
    }
}

/// On two cores, tickets 1:2:3:4 are all feasible (4/10 of 2 cores < 1):
/// every registered policy whose entitlement is tickets follows them
/// (stride, lottery, EEVDF), round robin shares equally. Deterministic
/// runs: the shares are asserted.
#[test]
fn each_scheduler_shares_two_cores_by_its_policy() {
    for info in sched_registry::POLICIES {
        let sched = info.kind.name();
        let tolerance = if info.randomized { 0.05 } else { 0.03 };
        let path = scenario_file(sched, &FOUR_WEIGHTS.replace("SCHED", sched));
        let opts = RunOptions {
            det: true,
            ..scenario_opts(&format!("scenario-{sched}"), 2, path)
        };
        let out = run(&opts);
        assert_exit(&out, abi::ExitCode::Success);
        let s = shares(&out, "w");
        assert_eq!(s.len(), 4);
        for (i, (name, measured, ideal)) in s.iter().enumerate() {
            let expected = if info.uses_tickets() {
                (i + 1) as f64 / 10.0
            } else {
                0.25
            };
            // Each policy's own entitlement: rr's is equal shares.
            assert!(
                (ideal - expected).abs() < 0.01,
                "{sched} {name}: ideal {ideal} vs {expected}"
            );
            assert!(
                (measured - expected).abs() <= tolerance,
                "{sched} {name}: measured {measured:.3}, expected {expected:.3} ± {tolerance}"
            );
        }
        assert_eq!(
            out.summary["apps"][0]["scheduler_timeline"][0]["scheduler"],
            sched
        );
        let csv = std::fs::read_to_string(out.run_dir.join("samples.csv")).unwrap();
        assert!(csv.starts_with(
            "t_ns,core,app,thread,cpu_ns,iterations,sleep_ns,alive_ns,ideal_cpu_ns,\
             wait_count,wait_p50_ns,wait_p99_ns,wait_max_ns\n"
        ));
        assert!(
            csv.lines().count() > 40,
            "samples every 100 ms for 4 threads"
        );
    }
}

/// Commands typed on the console mid-run take effect and are recorded.
#[test]
fn console_commands_apply_mid_run_and_are_recorded() {
    let path = scenario_file("console", &FOUR_WEIGHTS.replace("SCHED", "stride"));
    let mut opts = scenario_opts("scenario-console", 2, path);
    opts.input = vec![
        (Duration::from_millis(1500), "swap w rr".into()),
        (Duration::from_millis(1600), "tickets w 1 900".into()),
        (Duration::from_millis(1700), "frobnicate".into()),
        (Duration::from_millis(1800), "slices 1".into()),
    ];
    let out = run(&opts);
    assert_exit(&out, abi::ExitCode::Success);
    let events = std::fs::read_to_string(out.run_dir.join("events.csv")).unwrap();
    assert!(
        events.contains(",console,") && events.contains("swap w rr -> ok"),
        "{events}"
    );
    assert!(events.contains("frobnicate -> unknown command"), "{events}");
    assert!(
        events.contains(",swap,w,,,\"stride -> rr (console)\""),
        "{events}"
    );
    assert!(
        events.contains(",tickets,w,1,,\"100 -> 900 (console)\""),
        "{events}"
    );
    let timeline = out.summary["apps"][0]["scheduler_timeline"]
        .as_array()
        .unwrap();
    assert_eq!(timeline.last().unwrap()["scheduler"], "rr");
    assert_eq!(out.summary["apps"][0]["threads"][0]["tickets"], 900);
    assert!(
        out.console.contains("core 1: current slot"),
        "slices printed"
    );
}

/// Two `det=1` runs of one scenario measure exactly the same.
#[test]
fn deterministic_runs_measure_identically() {
    let text = FOUR_WEIGHTS
        .replace("SCHED", "lottery")
        .replace("duration_ms = 3000", "duration_ms = 800");
    let path = scenario_file("det", &text);
    let csv: Vec<String> = (0..2)
        .map(|i| {
            let opts = RunOptions {
                det: true,
                ..scenario_opts(&format!("scenario-det-{i}"), 2, path.clone())
            };
            let out = run(&opts);
            assert_exit(&out, abi::ExitCode::Success);
            assert_eq!(out.summary["deterministic"], Value::Bool(true));
            std::fs::read_to_string(out.run_dir.join("samples.csv")).unwrap()
        })
        .collect();
    assert!(csv[0].lines().count() > 20);
    assert_eq!(csv[0], csv[1], "det=1 runs differ");
}

/// Three `det=1` runs of sleepers on 2 cores, whose cores are often all
/// idle at once, measure exactly the same. Before idle cores stopped
/// halting in deterministic runs, four runs of this scenario gave four
/// different `samples.csv` (QEMU moves an all-idle machine's clock to the
/// next timer at a moment host timing picks).
#[test]
fn deterministic_runs_with_every_core_idle_measure_identically() {
    let path = xtask::build::workspace_root().join("scenarios/scale-wakeups.toml");
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("cores = 1\n", "cores = 2\nseed = 3\n")
        .replace("count = 4\n", "count = 8\n");
    assert!(
        text.contains("seed = 3") && text.contains("count = 8"),
        "{text}"
    );
    let path = scenario_file("det-idle", &text);
    let runs: Vec<(String, String)> = (0..3)
        .map(|i| {
            let opts = RunOptions {
                det: true,
                ..scenario_opts(&format!("scenario-det-idle-{i}"), 2, path.clone())
            };
            let out = run(&opts);
            assert_exit(&out, abi::ExitCode::Success);
            let read = |f: &str| std::fs::read_to_string(out.run_dir.join(f)).unwrap();
            (read("samples.csv"), read("sleeps.csv"))
        })
        .collect();
    assert!(runs[0].1.lines().count() > 100, "{}", runs[0].1);
    // The first line that differs, not two whole files.
    let first_difference = |a: &str, b: &str| {
        a.lines()
            .zip(b.lines())
            .enumerate()
            .find(|(_, (x, y))| x != y)
            .map(|(n, (x, y))| format!("line {}: {x:?} against {y:?}", n + 1))
            .unwrap_or_else(|| format!("{} lines against {}", a.lines().count(), b.lines().count()))
    };
    for (i, r) in runs.iter().enumerate().skip(1) {
        for (file, a, b) in [("samples", &runs[0].0, &r.0), ("sleeps", &runs[0].1, &r.1)] {
            assert!(
                a == b,
                "det=1 run {i}'s {file} differ from run 0's: {}",
                first_difference(a, b)
            );
        }
    }
}

/// The shipped examples with many threads or applications boot and report
/// every thread (short runs).
#[test]
fn shipped_examples_run() {
    let root = xtask::build::workspace_root().join("scenarios");
    for (file, cpus, threads) in [
        ("stride-101.toml", 1, 101),
        ("churn.toml", 4, 3),
        ("sleepers.toml", 2, 5),
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        // Deterministic, and 3 s for stride-101: its hundred 1-ticket
        // clients get a quantum each only every ~200 (in 1.5 s of plain
        // TCG on a busy host 41 of 101 threads had run).
        let text = with_duration(&text, if threads > 100 { 3000 } else { 1500 });
        let out = run(&deterministic(scenario_opts(
            &format!("scenario-{file}"),
            cpus,
            scenario_file(file, &text),
        )));
        assert_exit(&out, abi::ExitCode::Success);
        let app = &out.summary["apps"][0];
        // Every sample closes itself (`sample_end`, counting its records):
        // only the last can be cut, by the run's end. The runner counting
        // other records than the application sends cut them all.
        assert!(app["cut_samples"].as_u64().unwrap() <= 1, "{file}: {app:#}");
        let reported = app["threads"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["cpu_ns"].as_u64() > Some(0))
            .count();
        assert_eq!(reported, threads, "{file}: threads that ran");
    }
}

/// The scenario with its `duration_ms` replaced.
fn with_duration(text: &str, ms: u64) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("duration_ms") {
                format!("duration_ms = {ms}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `slices` event: the application's libOS takes more slots and its share
/// of the core follows. Deterministic: the share is asserted (on plain TCG
/// a vCPU descheduled by a loaded host charges its absence to whichever
/// thread was running, and one 100 ms absence moves a 2 s share by 0.05).
#[test]
fn a_slices_event_changes_an_applications_slots() {
    let text = r#"
duration_ms = 2000
slice_us = 1000
[[app]]
name = "x"
scheduler = "stride"
[[app.thread]]
behaviour = "cpu"
[[app]]
name = "y"
scheduler = "stride"
[[app.thread]]
behaviour = "cpu"
[[event]]
at_ms = 200
app = "y"
slices = 3
"#;
    let out = run(&deterministic(scenario_opts(
        "scenario-slices",
        1,
        scenario_file("slices", text),
    )));
    assert_exit(&out, abi::ExitCode::Success);
    let events = std::fs::read_to_string(out.run_dir.join("events.csv")).unwrap();
    assert!(
        events.contains(",slices,y,,,\"1 -> 3 per core (scenario)\""),
        "{events}"
    );
    let env = |name: &str| {
        out.summary["envs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(env("y")["slots_held"], 3);
    let cpu = |name: &str| {
        env(name)["cpu_ns"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c.as_f64())
            .sum::<f64>()
    };
    // 0.2 s at 1:1, then 1.8 s at 1:3: y gets (0.1 + 1.35) / 2 = 0.725.
    let y = cpu("y") / (cpu("x") + cpu("y"));
    assert!((y - 0.725).abs() < 0.05, "y's share {y:.3}");
}

/// Ticket transfers: lock waiters lend the holder their tickets under
/// lottery (not under stride), so the lock threads keep their share against
/// a CPU-bound thread. Deterministic runs: the comparison cannot flake.
#[test]
fn lock_waiters_fund_the_holder_under_lottery() {
    let base = xtask::build::workspace_root().join("scenarios/lock-transfer.toml");
    let text = with_duration(&std::fs::read_to_string(base).unwrap(), 2000);
    let share = |sched: &str| {
        let mut opts = scenario_opts(
            &format!("scenario-lock-{sched}"),
            1,
            scenario_file(&format!("lock-{sched}"), &text),
        );
        opts.det = true;
        opts.sched = sched.into();
        opts.sched_override = true;
        let out = run(&opts);
        assert_exit(&out, abi::ExitCode::Success);
        shares(&out, "locks")
            .iter()
            .filter(|(n, _, _)| n.starts_with("l."))
            .map(|(_, m, _)| m)
            .sum::<f64>()
    };
    let (lottery, stride) = (share("lottery"), share("stride"));
    assert!(
        lottery > stride + 0.03,
        "lock threads' share: lottery {lottery:.3}, stride {stride:.3}"
    );
    assert!(
        (lottery - 0.5).abs() < 0.05,
        "lottery {lottery:.3} vs their tickets' 0.5"
    );
}

/// `(p50, p99, max, count)` of thread `name`'s waits for a core, in ns.
fn waits(out: &xtask::RunOutcome, name: &str) -> (f64, f64, f64, f64) {
    let t = out.summary["apps"][0]["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .expect("the thread");
    let f = |k: &str| t["wait"][k].as_f64().unwrap_or(f64::NAN);
    (f("p50_ns"), f("p99_ns"), f("max_ns"), f("count"))
}

/// Wait times follow the quantum and the tickets (det, one core, 7:1):
/// under stride the 1-ticket thread waits seven quanta every time (plus
/// seven switches), the 7-ticket one mostly runs on and waits at most
/// about one quantum; under lottery the 1-ticket thread's waits are
/// geometric (chance 1/8 a quantum), so its p99 is far beyond seven.
#[test]
fn waits_follow_the_quantum_and_the_tickets() {
    let root = xtask::build::workspace_root().join("scenarios");
    let text = std::fs::read_to_string(root.join("response-7to1.toml")).unwrap();
    let ms = 1500.0;
    let path = scenario_file("waits-7to1", &with_duration(&text, ms as u64));
    let q = 2_000_000.0;
    let run_with = |sched: &str| {
        let opts = RunOptions {
            det: true,
            sched: sched.into(),
            sched_override: true,
            ..scenario_opts(&format!("scenario-waits-{sched}"), 1, path.clone())
        };
        let out = run(&opts);
        assert_exit(&out, abi::ExitCode::Success);
        assert_eq!(out.summary["slice_ns"], 2_000_000);
        out
    };
    let out = run_with("stride");
    let (a50, a99, amax, an) = waits(&out, "A");
    let (b50, b99, bmax, bn) = waits(&out, "B");
    let quanta = ms * 1e6 / q;
    assert!(
        (0.8 * quanta / 8.0..=1.2 * quanta / 8.0).contains(&bn),
        "B waits once per eight quanta: {bn} in {quanta}"
    );
    assert!(
        (0.8 * quanta * 7.0 / 8.0..=1.2 * quanta * 7.0 / 8.0).contains(&an),
        "A waits after each of its quanta: {an}"
    );
    assert!(
        (6.5 * q..=8.0 * q).contains(&b50),
        "B's median wait is seven quanta: {b50}"
    );
    assert!(
        b99 <= 9.0 * q && bmax <= 9.0 * q,
        "stride's tail is narrow: {b99} {bmax}"
    );
    assert!(a50 < q / 4.0, "A mostly runs on: median {a50}");
    assert!(
        (0.5 * q..=1.5 * q).contains(&a99),
        "A waits one quantum when B runs: p99 {a99} (max {amax})"
    );
    let out = run_with("lottery");
    let (l50, l99, _, ln) = waits(&out, "B");
    assert!(ln > 0.6 * quanta / 8.0, "lottery's B waits too: {ln}");
    assert!(l50 < 7.0 * q, "a geometric median is below its mean: {l50}");
    assert!(l99 > 12.0 * q, "lottery's tail is long: p99 {l99}");
}

/// A sleeper on cores with nothing else to run wakes at its deadline, not
/// at the next slice boundary (det, 2 cores, one thread computing 200 µs
/// and sleeping 1.8 ms): the kernel arms an idle core's timer for the
/// earliest instant the sleeping application's predicate can turn true.
/// Before, an idle core halted to the slice's end: the median wait was
/// 0.5 ms. One thread, because a sleeper whose deadline falls while its
/// application runs another thread elsewhere waits longer (likely: its
/// core, with nothing to run then, gave its turn up without a predicate;
/// not traced — README, issue 13): with
/// `scale-wakeups`' equal periods the phases the spawns gave the threads
/// never change, so with two or four threads whether a thread's median
/// wait was 11 or 64-70 µs depended on its spawn's timing (at `b82bd63`
/// and after: one of two, three of four).
#[test]
fn timed_sleepers_on_idle_cores_wake_at_their_deadline() {
    let root = xtask::build::workspace_root().join("scenarios");
    let text = std::fs::read_to_string(root.join("scale-wakeups.toml")).unwrap();
    let one = text.replace("count = 4", "count = 1");
    assert_ne!(one, text, "scale-wakeups.toml names its four threads");
    let path = scenario_file("wakeups", &one);
    let out = run(&deterministic(scenario_opts("scenario-wakeups", 2, path)));
    assert_exit(&out, abi::ExitCode::Success);
    let (p50, p99, _, n) = waits(&out, "w");
    assert!(n >= 400.0, "{n} wake-ups in 1 s");
    assert!(p50 <= 50_000.0, "median wait {p50} ns (a slice is 2 ms)");
    assert!(p99 <= 500_000.0, "p99 wait {p99} ns");
}

/// The request-serving scenario: every request counted completed has a
/// latency and had arrived; the stream's rate is what was asked; latencies
/// are at least a service time; the servers use about the cores offered.
/// And the scheduler environment of
/// `aegis-stride.toml` splits the machine 3:2:1 by what its clients used.
#[test]
fn a_server_s_requests_and_a_scheduler_environment_s_clients_add_up() {
    let root = xtask::build::workspace_root().join("scenarios");
    let text = with_duration(
        &std::fs::read_to_string(root.join("server-batch.toml")).unwrap(),
        2000,
    );
    let out = run(&deterministic(scenario_opts(
        "scenario-server",
        2,
        scenario_file("server", &text),
    )));
    assert_exit(&out, abi::ExitCode::Success);
    let r = &out.summary["apps"][0]["requests"];
    let n = |k: &str| r[k].as_u64().unwrap();
    assert_eq!(
        n("completed"),
        r["latency"]["count"].as_u64().unwrap(),
        "{r}"
    );
    assert!(n("completed") <= n("arrived") && n("arrived") > 3000, "{r}");
    let rate = r["arrived_per_s"].as_f64().unwrap();
    assert!(
        (rate / 2000.0 - 1.0).abs() < 0.1,
        "arrivals {rate}/s for 2000/s"
    );
    assert!(r["latency"]["p50_ns"].as_f64().unwrap() >= 100_000.0, "{r}");
    assert!(
        n("backlog") * 100 <= n("arrived"),
        "the server kept up: {r}"
    );
    // The demands are instructions at the run's stated core speed: the
    // servers use what is offered and what surrounds each demand (sleeps,
    // wake-ups, switches: ~10%), not a calibration's error (clock
    // calibrations read a core at 1.75x to 1.84x its speed, in lottery and
    // stride runs: up to 1.9x the offered).
    let used = r["used_cores"].as_f64().unwrap() / r["offered_cores"].as_f64().unwrap();
    assert!((0.95..=1.25).contains(&used), "used / offered {used}: {r}");

    let text = with_duration(
        &std::fs::read_to_string(root.join("aegis-stride.toml")).unwrap(),
        2000,
    );
    let out = run(&deterministic(scenario_opts(
        "scenario-aegis",
        4,
        scenario_file("aegis", &text),
    )));
    assert_exit(&out, abi::ExitCode::Success);
    let cpu = |name: &str| -> f64 {
        out.summary["envs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| {
                e["cpu_ns"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_f64)
                    .sum()
            })
            .unwrap_or_else(|| panic!("no env {name}"))
    };
    let (g, s, b) = (cpu("gold"), cpu("silver"), cpu("bronze"));
    assert!((g / b / 3.0 - 1.0).abs() < 0.02, "gold:bronze {}", g / b);
    assert!((s / b / 2.0 - 1.0).abs() < 0.02, "silver:bronze {}", s / b);
    assert_eq!(out.summary["trust"]["trusted"], Value::Bool(true));
}

/// Issue 13, item 6: one application of 10,000 CPU-bound threads on two
/// cores (deterministic). Its stacks, thread table and heap come from
/// frames its libOS maps as the threads are spawned, within the frame
/// quota the plan gives it: every thread runs (0.5 ms slices: a thread
/// runs a turn at a time, so a round is 10,000 turns, 2.5 s of two
/// cores), the table's audit stays clean, and the threads get a bounded
/// part of the application's time (the rest is its main thread: spawning
/// 10,000 threads took 1.3 s of one core, and each sample of 10,000 rows
/// a few hundred ms; few samples, so most of the run is the threads').
/// About 30 s of wall time here (det, 7 s of guest time).
#[test]
fn ten_thousand_threads_in_one_application_all_run() {
    let text = r#"
cores = 2
duration_ms = 7000
sample_ms = 3000
slice_us = 500
grace_us = 100

[[app]]
name = "many"
scheduler = "stride"

[[app.thread]]
name = "w"
behaviour = "cpu"
count = 10000
"#;
    let path = scenario_file("ten-thousand", text);
    let opts = RunOptions {
        det: true,
        ..scenario_opts("scenario-ten-thousand", 2, path)
    };
    let out = run(&opts);
    assert_exit(&out, abi::ExitCode::Success);
    let app = &out.summary["apps"][0];
    let threads = app["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 10_000);
    let idle: Vec<&str> = threads
        .iter()
        .filter(|t| t["cpu_ns"].as_u64().unwrap_or(0) == 0)
        .map(|t| t["name"].as_str().unwrap_or("?"))
        .collect();
    assert!(
        idle.is_empty(),
        "{} threads never ran, e.g. {:?}",
        idle.len(),
        &idle[..idle.len().min(5)]
    );
    // Every sample's audit: [audits, double runs, dead picked, lost, ghosts].
    let audits: Vec<&Value> = out
        .records
        .of(abi::record::RecordKind::User)
        .filter(|r| r["kind"] == "sample")
        .map(|r| &r["audit"])
        .collect();
    assert!(!audits.is_empty());
    for a in audits {
        let a: Vec<u64> = a
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        assert!(a[0] > 0 && a[1..].iter().all(|&v| v == 0), "audit {a:?}");
    }
    // Measured 0.584 (this run: 7 s, sampled every 3 s).
    const THREADS_SHARE_FLOOR: f64 = 0.5;
    let y = xtask::multicore::measure(&out.summary, "many").unwrap();
    assert!(
        (THREADS_SHARE_FLOOR..=1.0).contains(&y.threads_share),
        "threads' share of the application's time {:.3}",
        y.threads_share
    );
}

/// Application `app`'s share of its time that `tasks` got together.
fn tasks_share(out: &xtask::RunOutcome, app: &str, tasks: &[&str]) -> f64 {
    shares(out, app)
        .iter()
        .filter(|(n, _, _)| tasks.contains(&n.as_str()))
        .map(|(_, m, _)| m)
        .sum()
}

/// Currencies insulate loads (the shipped scenario, shortened): B's task
/// joining halfway dilutes only B's currency, so user A keeps half the
/// CPU. By face value A would fall to a third for the second half (0.42
/// over the run). Deterministic: it cannot flake.
#[test]
fn a_currency_insulates_its_users_share_from_the_others_new_task() {
    let base = xtask::build::workspace_root().join("scenarios/currencies.toml");
    let text = with_duration(&std::fs::read_to_string(base).unwrap(), 4000)
        .replace("join_ms = 10000", "join_ms = 2000");
    let out = run(&deterministic(scenario_opts(
        "scenario-currencies",
        1,
        scenario_file("currencies", &text),
    )));
    assert_exit(&out, abi::ExitCode::Success);
    let a = tasks_share(&out, "users", &["A1", "A2"]);
    assert!((a - 0.5).abs() < 0.03, "user A's share {a:.3}, not 0.5");
    // The figures' ideals value the tickets through the currencies (by
    // face value A1 and A2 read 0.140 and 0.279, A 0.42).
    let ideal: f64 = shares(&out, "users")
        .iter()
        .filter(|(n, _, _)| n.starts_with('A'))
        .map(|(_, _, i)| i)
        .sum();
    assert!((ideal - 0.5).abs() < 0.005, "user A's ideal {ideal:.3}");
    for (name, measured, ideal) in shares(&out, "users") {
        assert!(
            (measured - ideal).abs() < 0.02,
            "{name}: {measured:.3} of the application, its ideal {ideal:.3}"
        );
    }
}

/// A swap to stride carries each thread's worth in base tickets, and the
/// currencies come back with a swap to lottery: user B's three tasks
/// (100:200:300 of B) beside A's two (100:200 of A) leave each user half.
/// Stride by face value would give A a third for its 1.3 s.
#[test]
fn currencies_carry_through_a_swap_away_and_back() {
    let base = xtask::build::workspace_root().join("scenarios/currencies.toml");
    let text = with_duration(&std::fs::read_to_string(base).unwrap(), 2500)
        .replace("join_ms = 10000", "join_ms = 0")
        + r#"
[[event]]
at_ms = 200
app = "users"
swap = "stride"

[[event]]
at_ms = 1500
app = "users"
swap = "lottery"
"#;
    let out = run(&deterministic(scenario_opts(
        "scenario-currencies-swap",
        1,
        scenario_file("currencies-swap", &text),
    )));
    assert_exit(&out, abi::ExitCode::Success);
    let events = std::fs::read_to_string(out.run_dir.join("events.csv")).unwrap();
    // The two timed swaps; starting under lottery is not one.
    assert!(
        events.contains("\"lottery -> stride (scenario)\""),
        "{events}"
    );
    assert_eq!(events.matches("stride -> lottery").count(), 1, "{events}");
    assert_eq!(events.matches(",swap,").count(), 2, "{events}");
    let a = tasks_share(&out, "users", &["A1", "A2"]);
    assert!((a - 0.5).abs() < 0.03, "user A's share {a:.3}, not 0.5");
}
