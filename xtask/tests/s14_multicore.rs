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
use xtask::multicore::{machine_share, measure, target, work_rate};
use xtask::{Accel, RunOptions};

/// A shipped scenario, shortened to `ms`, as a file of its own.
fn scenario(name: &str, ms: u64) -> PathBuf {
    scenario_with(name, &[("duration_ms", ms)])
}

/// A shipped scenario with top-level fields `fields` set (replaced where
/// it has them, added before its first table where not), as a file of
/// its own.
fn scenario_with(name: &str, fields: &[(&str, u64)]) -> PathBuf {
    let path = xtask::build::workspace_root().join(format!("scenarios/{name}.toml"));
    let text = std::fs::read_to_string(path).unwrap();
    let key_of = |l: &str| l.split('=').next().unwrap_or("").trim().to_string();
    let missing: String = fields
        .iter()
        .filter(|(k, _)| !text.lines().any(|l| key_of(l) == *k))
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    let mut added = false;
    let text: String = text
        .lines()
        .map(|l| {
            let before = match (added, l.starts_with('[')) {
                (false, true) => {
                    added = true;
                    missing.as_str()
                }
                _ => "",
            };
            match fields.iter().find(|(k, _)| key_of(l) == *k) {
                Some((k, v)) => format!("{before}{k} = {v}\n"),
                None => format!("{before}{l}\n"),
            }
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("exo-s14-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A file per call: tests run side by side and may shorten the same
    // scenario at once (one read the other's half-written file).
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = dir.join(format!("{name}-{n}.toml"));
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
    late_starts_follow_the_seed(&out.summary, LATE_START_MEDIAN_EXCESS_NS);
    out
}

/// Largest median, over a run's cores, of how much later than its seed
/// asked a core's first turn began, judged from [`LATE_START_CORES`] cores
/// on. Measured with the kernel waiting on its timer (seeds 1 and 2 of
/// 300 ms runs of the 16-thread row, seeds 4 and 5 of the 96-thread row;
/// the median is the upper middle core's): 0.2 µs on 8 cores, 1.0 and
/// 2.0 µs on 16, 5.6 and 9.7 µs on 64; in this suite (two builds) 2.4
/// and 4.0 µs on 40 cores, 4.9 to 8.2 µs on 64 (the emulator raises a
/// timer when its round robin of vCPUs reaches the core: single cores up
/// to 35 µs late). With the
/// wait a spin on the clock, the spinning cores saw it pass only at the
/// next timer deadline anywhere: 49 µs on 8 cores, 45.1 µs on 16 and
/// 133 µs on 64, where the staggers asked are under 50 µs, and two seeds
/// gave the same run.
const LATE_START_MEDIAN_EXCESS_NS: i64 = 20_000;

/// The same with `spread_turns=1`, whose cores wait up to a slot while
/// others already run turns, so each timer is raised later: 39.6 and
/// 45.2 µs on 32 cores (8 ms slots, seed 5, two builds; single cores up
/// to 99 µs), 37 and 50 µs on 64 (16 ms slots, seeds 4 and 5 of 300 ms
/// runs; up to 0.5 ms).
const SPREAD_LATE_START_MEDIAN_EXCESS_NS: i64 = 100_000;

/// Below this many cores a median of a few is one core's timer delivery
/// (on 2 cores one core started 31 µs late in either build).
const LATE_START_CORES: usize = 8;

/// Every core's first turn began no earlier than the run's seed asked
/// (`slices::stagger_ns`, and `spread_turns`), and on
/// [`LATE_START_CORES`] cores or more, in the median, within
/// `median_excess_ns` of it: so the trials of one build are the
/// perturbations their seeds name, and differ as they do.
fn late_starts_follow_the_seed(summary: &serde_json::Value, median_excess_ns: i64) {
    let cores = summary["cores"]
        .as_array()
        .expect("the run reports its cores");
    let mut excess: Vec<i64> = cores
        .iter()
        .filter_map(|c| Some(c["late_start_ns"].as_i64()? - c["late_start_asked_ns"].as_i64()?))
        .collect();
    assert_eq!(
        excess.len(),
        cores.len(),
        "every core reports its late start"
    );
    assert!(
        excess.iter().all(|&e| e >= 0),
        "a core started before its seed asked: {excess:?}"
    );
    excess.sort_unstable();
    let median = excess[excess.len() / 2];
    assert!(
        excess.len() < LATE_START_CORES || median <= median_excess_ns,
        "cores started a median {:.1} µs later than their seed asked: {excess:?}",
        median as f64 / 1e3
    );
}

fn cooperative_on(cpus: u32) {
    let out = det_run(
        &format!("multicore-16-{cpus}c"),
        cpus,
        scenario("multicore-16", 2000),
    );
    let y =
        measure(&out.summary, "sixteen").unwrap_or_else(|e| panic!("{e}:\n{}", tail(&out.console)));
    assert!(y.turns > 400 * u64::from(cpus), "{y:?}");
    assert!(
        y.repossessed() <= target::REPOSSESSED,
        "{} of {} turns repossessed",
        y.repossessions,
        y.turns
    );
    assert!(
        y.max_core_idle <= target::IDLE,
        "a core idled {:.2}% of the run",
        y.max_core_idle * 100.0
    );
    // Issue 13's target, 97%. Measured over 5 s 98.5% (2 cores), 98.9%
    // (4), 98.8% (8); over these 2 s, start-up included, 98.9% on 2 and
    // 4: the rest is the libOS's dispatch and epilogue and the
    // application's own control thread (0.4-0.8%). Before the
    // environment's charge left out the kernel's entry and revocation
    // paths (where QEMU's round robin runs the other vCPUs): 97.9%, 97.2%,
    // 96.6%; before the figure also stopped at the last sample: 95.2%,
    // 94.9%, 93.2%; before the wait-free epilogue, 70.7% on 2 cores.
    assert!(
        y.threads_share >= target::THREADS_SHARE,
        "threads got {:.1}% of the application's time",
        y.threads_share * 100.0
    );
    assert!(
        y.max_lag_quanta <= target::STRIDE_LAG_QUANTA,
        "stride's lag reached {:.2} quanta",
        y.max_lag_quanta
    );
    let run_on = y.run_on_share.expect("the application reports its turns");
    assert!(
        run_on <= target::RUN_ON,
        "{:.2}% of the turns ran on without the policy's decision",
        run_on * 100.0
    );
    assert!(
        y.control_share.is_some(),
        "the application reports its control thread"
    );
    // Issue 13: no single charge longer than a slot and its grace (2 ms,
    // 200 µs); before the charge stopped at the revocation instant, up to
    // 11.7 ms on 2 cores.
    let longest = y.longest_charge_ns.expect("the application reports it");
    assert!(
        longest <= 2_000_000.0 * target::SINGLE_CHARGE_SLOTS,
        "a thread was charged {:.3} ms at once",
        longest / 1e6
    );
    work_at_the_stated_speed(&out.summary, cpus);
}

/// The threads' work rate on one core (iterations per charged ns): what
/// the same scenario on more cores is compared with. Measured once per
/// test binary.
fn one_core_work_rate() -> f64 {
    static RATE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *RATE.get_or_init(|| {
        let out = det_run("multicore-16-1c", 1, scenario("multicore-16", 2000));
        work_rate(&out.summary, "sixteen").unwrap()
    })
}

/// The threads did as much work per charged ns as the speed the run's
/// cores are stated to have (one core's up to 8 cores) allows, within 5%:
/// the deterministic mode's claim that a core's virtual time is its own.
/// Measured: 0.970 on 2 cores, 0.990 on 4; in the canonical runs 1.01 on
/// 8, and (against 1/2 and 1/4 of one core's speed) 1.04 on 16 and 1.11 on
/// 32 cores. Over whole runs it holds where a kernel loop timed in 100 ms
/// windows does not (`each_core_runs_at_the_speed_deterministic_runs_state`).
fn work_at_the_stated_speed(summary: &serde_json::Value, cpus: u32) {
    let rate = work_rate(summary, "sixteen").unwrap();
    let stated = xtask::qemu::det_core_speed(cpus) / xtask::qemu::det_core_speed(1);
    let relative = rate / one_core_work_rate() / stated;
    assert!(
        (relative - 1.0).abs() <= 0.05,
        "{cpus} cores: the threads worked at {relative:.3} of the stated speed"
    );
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
    let share = machine_share(&out.summary, "big", "small").unwrap();
    assert!(
        (share - 0.75).abs() <= target::SLOT_SHARE_ERROR,
        "3:1 slots gave {:.1}/{:.1}",
        share * 100.0,
        (1.0 - share) * 100.0
    );
}

/// More cores than the libOS once had per-core tables for (32): on 64
/// cores the program that first ran on core 32 indexed past them and
/// panicked 3 ms into the run, and the table of zeros it left said
/// "shares trusted". On 40 cores the application lives to the end and
/// runs on every core. (In 300 ms at 25 M instructions per core per
/// virtual second its control thread has started only a third of its
/// threads, so their count is not checked.)
#[test]
fn ninety_six_threads_run_on_40_cores() {
    let out = det_run("multicore-96-40c", 40, scenario("multicore-96", 300));
    assert_eq!(
        out.summary["trust"]["trusted"], true,
        "{:#}",
        out.summary["trust"]
    );
    let env = xtask::multicore::env(&out.summary, "many").unwrap();
    let per_core: Vec<f64> = env["cpu_ns"]
        .as_array()
        .expect("cpu_ns per core")
        .iter()
        .map(|c| c.as_f64().unwrap_or(0.0))
        .collect();
    assert_eq!(per_core.len(), 40);
    let unused: Vec<usize> = (0..40).filter(|&c| per_core[c] <= 0.0).collect();
    assert!(
        unused.is_empty(),
        "cores the application never ran on: {unused:?}"
    );
}

/// With the cores' turns spread over a slice (`spread_turns=1`), 96
/// threads on 32 cores get issue 13's 97% of their application's time.
/// Turns begun together on every core have every prologue queue for the
/// runtime lock at each boundary, and how soon they drift apart is up to
/// the emulator: one build's five seeds read 90.85-97.61% together,
/// 97.76-98.01% spread (the canonical row's slot and grace, 8 ms and
/// 800 µs; seed 5 is this build's bad trial together).
#[test]
fn spread_turns_give_ninety_six_threads_on_32_cores_their_time() {
    let opts = RunOptions {
        scenario: Some(scenario_with(
            "multicore-96",
            &[
                ("duration_ms", 2000),
                ("slice_us", 8000),
                ("grace_us", 800),
                ("seed", 5),
            ],
        )),
        det: true,
        ..options(
            "multicore-96-32c-spread",
            32,
            Accel::Tcg,
            "pc",
            &[],
            &["spread_turns=1"],
        )
    };
    let out = run(&opts);
    assert_exit(&out, abi::ExitCode::Success);
    late_starts_follow_the_seed(&out.summary, SPREAD_LATE_START_MEDIAN_EXCESS_NS);
    let y =
        measure(&out.summary, "many").unwrap_or_else(|e| panic!("{e}:\n{}", tail(&out.console)));
    assert!(y.threads_share >= target::THREADS_SHARE, "{y:?}");
}

/// The canonical 64-core row (its slot and grace, 16 ms and 1.6 ms; turns
/// begun together), seeds 1 to 3: 96 threads get issue 13's 97% of their
/// application's time, judged as the canonical row judges it, on the
/// median of the seeds; every seed keeps its repossessions within 0.5% of
/// its turns, its longest charge within a slot and its grace, and its
/// threads' part above 96%. With every prologue taking the runtime lock in
/// turn, under an emulator that runs one vCPU at a time, seed 1 read
/// 91.41% and 59 of 8,040 turns repossessed (det, at `a44e26b`); with the
/// lock's holder picking for every core waiting on it
/// (`libos::threads::combine`), 97.14% and 1. One seed alone is not the
/// target's measure: a build that changes nothing this row exercises
/// moves one seed's figure by up to a point either way (seed 1: 97.22% at
/// `330f6ed`, 96.60% with only the sampler's reads changed, both before
/// the runs in progress at the last sample were counted), the emulator
/// interleaving its 64 vCPUs anew.
#[test]
fn ninety_six_threads_on_64_cores_get_their_time() {
    let mut shares: Vec<f64> = (1..=3)
        .map(|seed| {
            let out = det_run(
                &format!("multicore-96-64c-seed{seed}"),
                64,
                scenario_with(
                    "multicore-96",
                    &[
                        ("duration_ms", 2000),
                        ("slice_us", 16000),
                        ("grace_us", 1600),
                        ("seed", seed),
                    ],
                ),
            );
            let y = measure(&out.summary, "many")
                .unwrap_or_else(|e| panic!("{e}:\n{}", tail(&out.console)));
            assert!(y.repossessed() <= target::REPOSSESSED, "seed {seed}: {y:?}");
            let longest = y.longest_charge_ns.expect("the application reports it");
            assert!(
                longest <= 16_000_000.0 * target::SINGLE_CHARGE_SLOTS,
                "seed {seed}: {y:?}"
            );
            assert!(
                y.threads_share >= target::THREADS_SHARE_ONE_SEED,
                "seed {seed}: {y:?}"
            );
            y.threads_share
        })
        .collect();
    shares.sort_by(f64::total_cmp);
    assert!(shares[1] >= target::THREADS_SHARE, "{shares:?}");
}

/// An application with fewer runnable threads than cores parks its idle
/// cores (`park`) instead of taking and yielding turn after turn, and its
/// sleepers are still served. Four sleepers a core on 4 cores, as the
/// bench's scale rows (`scenarios/scale-wakeups.toml`: 200 µs of work,
/// 1.8 ms asleep, 40% of the machine).
///
/// Yielding, the application took 102,409 turns in the second (det),
/// each idle turn's prologue taking the runtime lock from the cores with
/// work; parking, 7,792. A park lasts at most a quarter slice (500 µs)
/// plus the core's spread, or until a sleeper's deadline it comes back
/// for, one core for each: 2,500 turns a core a second leaves room for
/// those and the turns that run threads. The sleepers ask for at most
/// 8,000 wake-ups a second (yielding: 6,878 served, parking 7,017); a
/// median wait of 100 µs would be three times yielding's 34.8 µs
/// (parking: 10.8 µs; parked for a quarter slice and the spread only,
/// 94.2 µs).
#[test]
fn idle_cores_park_instead_of_taking_turn_after_turn() {
    let path = scenario_with("scale-wakeups", &[("cores", 4), ("duration_ms", 1000)]);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("count = 4\n"), "{text}");
    std::fs::write(&path, text.replace("count = 4\n", "count = 16\n")).unwrap();
    let out = det_run("scale-wakeups-4c-park", 4, path);
    let env = xtask::multicore::env(&out.summary, "wakers").unwrap();
    let seconds = out.summary["duration_ns"].as_f64().unwrap() / 1e9;
    let turns = env["turns"].as_f64().unwrap();
    assert!(
        turns / seconds <= 4.0 * 2_500.0,
        "{turns} turns in {seconds:.2} s on 4 cores"
    );
    let row = xtask::bench::scale::row(4, 1, 0.125, &out.summary).unwrap();
    assert_eq!(row.threads, 16, "{row:?}");
    assert!(row.decisions_per_s >= 5_000.0, "{row:?}");
    assert!(row.wait_p50_ns <= 100_000.0, "{row:?}");
}

/// The speed each core of a deterministic run has, measured: the kernel
/// counts the instructions of a known loop each core executes in a 100 ms
/// window common to all cores, every core's timer ticking every 50 µs
/// (`test=corespeed`); against one core's, each must be the ratio the
/// runner states and dilates the 16- and 32-core canonical rows by
/// (`det_core_speed`: one core's speed up to 8 cores, half on 16), within
/// 2%.
///
/// Ignored because it fails, and that is issue 13's open question, not a
/// flake. Measured here: one core 121.9 million instructions per virtual
/// second (stated 125; the tick takes 2.4%). On 4 cores, QEMU 7.2 (what
/// the set-up installs): 0.8, 243, 238 and 6.2 million, two cores all but
/// stopped while two ran at twice the stated speed (with a clock read
/// every 200 instructions instead of every 20,000: 0.6, 222, 218, 5.5);
/// QEMU 10.0: 84, 63, 154 and 186 million. Over 100 ms, the cores of a
/// deterministic run do not progress side by side.
/// `cargo test -p xtask --test s14_multicore -- --ignored` reruns it.
#[test]
#[ignore = "fails: det cores run at uneven speeds (issue 13; figures above)"]
fn each_core_runs_at_the_speed_deterministic_runs_state() {
    let speeds = |cpus: u32| -> Vec<f64> {
        let out = run(&deterministic(options(
            &format!("corespeed-{cpus}"),
            cpus,
            Accel::Tcg,
            "pc",
            &[],
            &["test=corespeed"],
        )));
        // Every core's figure, before the kernel's own check (all cores
        // within 2% of their median) is asserted: a failure shows them all.
        let measured: Vec<f64> = checks_named(&out, "instructions_per_second")
            .iter()
            .map(|c| {
                let detail = c["detail"].as_str().unwrap();
                detail
                    .split_once(": ")
                    .and_then(|(_, rest)| rest.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("no figure in {detail:?}"))
            })
            .collect();
        assert_eq!(measured.len(), cpus as usize, "{}", tail(&out.console));
        eprintln!("{cpus} cores: {measured:?} instructions per virtual second");
        assert_checks_pass(&out);
        measured
    };
    let one = speeds(1)[0];
    let stated_one = xtask::qemu::det_core_speed(1);
    // The tick's instructions are not the loop's: a few percent.
    assert!(
        (one / stated_one - 1.0).abs() <= 0.04,
        "one core: {one:.0} against {stated_one:.0}"
    );
    for cpus in [4, 16] {
        let ratio = xtask::qemu::det_core_speed(cpus) / stated_one;
        for (core, got) in speeds(cpus).into_iter().enumerate() {
            assert!(
                (got / one / ratio - 1.0).abs() <= 0.02,
                "{cpus} cores, core {core}: {got:.0} against one core's {one:.0} (stated ratio {ratio})"
            );
        }
    }
}
