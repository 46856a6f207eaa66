//! The fairness [`Tracker`] and [`fairness_summary`] over whole runs: the
//! ideal each thread was owed, computed from the application's records,
//! against hand-worked cases and an independent water filling. (The
//! per-interval arithmetic they build on is tested in `metrics`.)

use super::{fairness_summary, Tracker};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const MS: u64 = 1_000_000;

fn record(t_ms: u64, policy: &str, th: &str) -> Value {
    serde_json::from_str(&format!(
        r#"{{"kind":"sample","name":"a","t_ns":{},"policy":"{policy}","th":{th}}}"#,
        t_ms * MS
    ))
    .unwrap()
}

/// A `sleeps` record of thread `id` for the sample at `t_ms` (previous at
/// `from_ms`), intervals in ms from `from_ms`.
fn sleeps(t_ms: u64, from_ms: u64, id: u32, iv_ms: &[(u64, u64)]) -> Value {
    let iv: Vec<String> = iv_ms
        .iter()
        .map(|&(s, e)| format!("{},{}", s * MS, e * MS))
        .collect();
    serde_json::from_str(&format!(
        r#"{{"kind":"sleeps","name":"a","t_ns":{},"from_ns":{},"id":{id},"dropped":0,"iv":[{}]}}"#,
        t_ms * MS,
        from_ms * MS,
        iv.join(",")
    ))
    .unwrap()
}

/// Rows `[id, tickets, cpu_ns, iterations, sleep_ns, core, alive_ns]` from
/// `(id, tickets, cpu_ms, sleep_ms, alive_ms)`.
fn th(rows: &[(u32, u64, u64, u64, u64)]) -> String {
    let rows: Vec<String> = rows
        .iter()
        .map(|&(id, tickets, cpu, sleep, alive)| {
            format!(
                "[{id},{tickets},{},0,{},0,{}]",
                cpu * MS,
                sleep * MS,
                alive * MS
            )
        })
        .collect();
    format!("[{}]", rows.join(","))
}

fn tracked(capacity: u32, records: &[Value]) -> Tracker {
    let mut t = Tracker::new(BTreeMap::from([("a".to_string(), capacity)]));
    for r in records {
        t.record(r);
    }
    t.flush();
    t
}

#[test]
fn a_sleeper_spanning_samples_is_asleep_in_each() {
    // One core, equal tickets, samples every 100 ms. Thread 2 sleeps from
    // 50 to 250 ms (across the samples at 100 and 200). Owed: [0,100]
    // 75/25 (both until 50), [100,200] 100/0, [200,300] 75/25 (both from
    // 250): 250 and 50 ms, which a fair scheduler gave, no lag anywhere.
    let t = tracked(
        1,
        &[
            record(0, "stride", &th(&[(1, 100, 0, 0, 0), (2, 100, 0, 0, 0)])),
            record(
                100,
                "stride",
                &th(&[(1, 100, 75, 0, 100), (2, 100, 25, 50, 100)]),
            ),
            sleeps(100, 0, 2, &[(50, 100)]),
            record(
                200,
                "stride",
                &th(&[(1, 100, 175, 0, 200), (2, 100, 25, 150, 200)]),
            ),
            sleeps(200, 100, 2, &[(0, 100)]),
            record(
                300,
                "stride",
                &th(&[(1, 100, 250, 0, 300), (2, 100, 50, 200, 300)]),
            ),
            sleeps(300, 200, 2, &[(0, 50)]),
        ],
    );
    let f = &t.apps["a"];
    assert!((f.threads[&1].ideal_ns - 250e6).abs() < 1.0);
    assert!((f.threads[&2].ideal_ns - 50e6).abs() < 1.0);
    for id in [1, 2] {
        assert!(f.threads[&id].max_abs_lag_ns < 1.0, "thread {id}");
        assert_eq!(f.threads[&id].sleep_unlogged_ns, 0, "thread {id}");
    }
    assert!((f.shares()[&2].1 - 50.0 / 300.0).abs() < 1e-9);
}

#[test]
fn sleep_without_its_intervals_is_counted_as_unplaced_and_runnable() {
    // The counter says 50 ms asleep, no interval says when (a sample in
    // the middle of the run): the thread is taken as runnable (owed half),
    // and the 50 ms are reported. The next 100 ms, asleep no more: half.
    let t = tracked(
        1,
        &[
            record(0, "stride", &th(&[(1, 100, 0, 0, 0), (2, 100, 0, 0, 0)])),
            record(
                100,
                "stride",
                &th(&[(1, 100, 75, 0, 100), (2, 100, 25, 50, 100)]),
            ),
            record(
                200,
                "stride",
                &th(&[(1, 100, 125, 0, 200), (2, 100, 75, 50, 200)]),
            ),
        ],
    );
    let f = &t.apps["a"];
    assert!((f.threads[&2].ideal_ns - 100e6).abs() < 1.0);
    assert_eq!(f.threads[&2].sleep_unlogged_ns, 50 * MS);
}

#[test]
fn a_last_snapshot_missing_rows_is_left_out_as_the_summary_leaves_it() {
    // `rows: 2` announced each time; at 200 ms only thread 1's row came.
    let with_rows = |t_ms: u64, th: &str| {
        let mut v = record(t_ms, "stride", th);
        v["rows"] = serde_json::json!(2);
        v
    };
    let t = tracked(
        1,
        &[
            with_rows(0, &th(&[(1, 100, 0, 0, 0), (2, 100, 0, 0, 0)])),
            with_rows(100, &th(&[(1, 300, 75, 0, 100), (2, 100, 25, 0, 100)])),
            with_rows(200, &th(&[(1, 300, 150, 0, 200)])),
        ],
    );
    let f = &t.apps["a"];
    assert_eq!(f.threads[&1].cpu_ns, 75 * MS, "{f:?}");
    assert!((f.shares()[&1].0 - 0.75).abs() < 1e-9);
}

#[test]
fn unplaced_sleep_is_what_the_intervals_clipped_and_merged_leave() {
    use crate::metrics::fairness::unplaced_sleep;
    // Overlapping intervals count once; one reaching past the sample, up
    // to it.
    assert_eq!(
        unplaced_sleep(100, 0, 200, &[(10, 60), (40, 90), (150, 250)]),
        0
    );
    assert_eq!(unplaced_sleep(100, 0, 200, &[(40, 90), (10, 60)]), 20);
    // Before the interval: not this sample's.
    assert_eq!(unplaced_sleep(30, 100, 200, &[(50, 120)]), 10);
    assert_eq!(unplaced_sleep(30, 100, 200, &[]), 30);
}

#[test]
fn a_last_snapshot_whose_sleeps_the_run_s_end_cut_off_is_left_out() {
    // The run ended after the sample at 200 ms was sent but before its
    // `sleeps` record: thread 2's 40 ms asleep are not placed, so the
    // final table stands on the sample at 100 ms (as the summary does,
    // `drop_cut_samples`), not on one that would count them runnable.
    let first = [
        record(0, "stride", &th(&[(1, 100, 0, 0, 0), (2, 100, 0, 0, 0)])),
        record(
            100,
            "stride",
            &th(&[(1, 100, 50, 0, 100), (2, 100, 50, 0, 100)]),
        ),
    ];
    let cut = record(
        200,
        "stride",
        &th(&[(1, 100, 110, 0, 200), (2, 100, 90, 40, 200)]),
    );
    let mut records = first.to_vec();
    records.push(cut.clone());
    let t = tracked(1, &records);
    let f = &t.apps["a"];
    assert!((f.threads[&2].ideal_ns - 50e6).abs() < 1.0, "{f:?}");
    assert_eq!(f.threads[&2].sleep_unlogged_ns, 0);
    // With its record it is kept: 40 ms asleep, owed 30 of the 100.
    records.push(sleeps(200, 100, 2, &[(20, 60)]));
    let t = tracked(1, &records);
    let f = &t.apps["a"];
    assert!((f.threads[&2].ideal_ns - 80e6).abs() < 1.0, "{f:?}");
}

/// `sample_end` of the sample at `t_ms`, which sent `records` before it.
fn sample_end(t_ms: u64, records: u64) -> Value {
    serde_json::from_str(&format!(
        r#"{{"kind":"sample_end","name":"a","t_ns":{},"records":{records}}}"#,
        t_ms * MS
    ))
    .unwrap()
}

/// A `waits` record of thread `id` at `t_ms`: `count` waits of `max_ns`.
fn waits_of(t_ms: u64, id: u32, count: u64, max_ns: u64) -> Value {
    serde_json::from_str(&format!(
        r#"{{"kind":"waits","name":"a","t_ns":{},"w":[[{id},{count},{max_ns},{max_ns},{},{count}]]}}"#,
        t_ms * MS,
        abi::waits::bucket_of(max_ns)
    ))
    .unwrap()
}

#[test]
fn the_live_table_carries_a_cut_sample_s_waits_and_sleeps_to_the_next_whole_one() {
    // The sample at 100 ms says it sent 4 records; 3 came. Its waits and
    // sleep count with the sample at 200 ms, as in the final figures; the
    // last sample's, if the run's end cuts it, with none.
    let mut records = vec![
        record(0, "stride", &th(&[(1, 100, 0, 0, 0), (2, 100, 0, 0, 0)])),
        sample_end(0, 1),
        record(
            100,
            "stride",
            &th(&[(1, 100, 70, 0, 100), (2, 100, 0, 30, 100)]),
        ),
        sleeps(100, 0, 2, &[(10, 40)]),
        waits_of(100, 2, 3, 5_000),
        sample_end(100, 4),
        record(
            200,
            "stride",
            &th(&[(1, 100, 130, 0, 200), (2, 100, 40, 70, 200)]),
        ),
        sleeps(200, 100, 2, &[(20, 60)]),
        waits_of(200, 2, 5, 9_000_000),
        sample_end(200, 3),
    ];
    let t = tracked(1, &records);
    let f = &t.apps["a"];
    assert_eq!(f.last_time(), Some(200 * MS), "{f:?}");
    assert_eq!(f.threads[&2].sleep_unlogged_ns, 0, "{f:?}");
    let w = &t.waits["a"][&2];
    assert_eq!((w.count(), w.max_ns), (8, 9_000_000));
    records.pop();
    let t = tracked(1, &records);
    assert_eq!(t.apps["a"].last_time(), Some(0));
    assert_eq!(
        t.waits.get("a").and_then(|w| w.get(&2)).map(|w| w.count()),
        None
    );
}

#[test]
fn a_sample_of_switches_alone_is_no_snapshot() {
    // With `thread_trace` a sample before any thread started sends its
    // cores' `runs` and closes itself; with no `sample` record it has no
    // rows, and the final figures no sample at that instant.
    let runs: Value = serde_json::from_str(&format!(
        r#"{{"kind":"runs","name":"a","t_ns":{},"log_core":0,"dropped":0,"r":[0,-2]}}"#,
        50 * MS
    ))
    .unwrap();
    let t = tracked(1, &[runs, sample_end(50, 1)]);
    assert_eq!(t.apps.get("a").and_then(|f| f.last_time()), None);
}

#[test]
fn the_live_table_takes_a_closed_sample_as_whole_and_no_other() {
    // As `a_last_snapshot_whose_sleeps_the_run_s_end_cut_off_is_left_out`,
    // the samples closed: the one at 200 ms with its `sleeps` record but
    // no `sample_end` is cut (by inference it stood: its sleep placed).
    let mut records = vec![
        record(0, "stride", &th(&[(1, 100, 0, 0, 0), (2, 100, 0, 0, 0)])),
        sample_end(0, 1),
        record(
            100,
            "stride",
            &th(&[(1, 100, 50, 0, 100), (2, 100, 50, 0, 100)]),
        ),
        sample_end(100, 1),
        record(
            200,
            "stride",
            &th(&[(1, 100, 110, 0, 200), (2, 100, 90, 40, 200)]),
        ),
    ];
    let mut placed = records.clone();
    placed.push(sleeps(200, 100, 2, &[(20, 60)]));
    let t = tracked(1, &placed);
    let f = &t.apps["a"];
    assert_eq!(f.last_time(), Some(100 * MS), "{f:?}");
    assert!((f.threads[&2].ideal_ns - 50e6).abs() < 1.0, "{f:?}");
    // Closed without a `sleeps` record it stands, its 40 ms asleep
    // unplaced (counted runnable: owed half of the 100).
    records.push(sample_end(200, 1));
    let t = tracked(1, &records);
    let f = &t.apps["a"];
    assert_eq!(f.last_time(), Some(200 * MS), "{f:?}");
    assert_eq!(f.threads[&2].sleep_unlogged_ns, 40 * MS);
    assert!((f.threads[&2].ideal_ns - 100e6).abs() < 1.0, "{f:?}");
    // One missing a record it counts is cut even before the last: 80:20
    // at 100 ms (30 ms of lag) never shows.
    records[2] = record(
        100,
        "stride",
        &th(&[(1, 100, 80, 0, 100), (2, 100, 20, 0, 100)]),
    );
    let t = tracked(1, &records);
    assert!((t.apps["a"].threads[&2].max_abs_lag_ns - 30e6).abs() < 1.0);
    records[3] = sample_end(100, 2);
    let t = tracked(1, &records);
    let f = &t.apps["a"];
    assert_eq!(f.last_time(), Some(200 * MS), "{f:?}");
    assert!((f.threads[&2].max_abs_lag_ns - 10e6).abs() < 1.0, "{f:?}");
}

#[test]
fn round_robin_with_unequal_tickets_is_judged_by_equal_shares() {
    // 1:3 tickets under rr, one core, 100 ms each got 50: fair, no error.
    let t = tracked(
        1,
        &[
            record(0, "rr", &th(&[(1, 100, 0, 0, 0), (2, 300, 0, 0, 0)])),
            record(
                100,
                "rr",
                &th(&[(1, 100, 50, 0, 100), (2, 300, 50, 0, 100)]),
            ),
        ],
    );
    let shares = t.apps["a"].shares();
    assert_eq!(shares[&1], (0.5, 0.5));
    assert_eq!(shares[&2], (0.5, 0.5));
    assert!(t.table(&BTreeMap::new()).contains("a(rr)"));
}

#[test]
fn a_swap_reported_mid_sample_changes_the_ideal_from_its_time() {
    // Tickets 300:100; the application swaps stride -> rr at 40 ms (its
    // app_event arrives between the samples): owed 60 and 40 of 100 ms.
    let swap: Value = serde_json::from_str(&format!(
        r#"{{"kind":"app_event","name":"a","t_ns":{},"what":"swap","thread":0,"detail":"stride -> rr","source":"console"}}"#,
        40 * MS
    ))
    .unwrap();
    let t = tracked(
        1,
        &[
            record(0, "stride", &th(&[(1, 300, 0, 0, 0), (2, 100, 0, 0, 0)])),
            swap,
            record(
                100,
                "rr",
                &th(&[(1, 300, 60, 0, 100), (2, 100, 40, 0, 100)]),
            ),
        ],
    );
    let f = &t.apps["a"];
    assert!((f.threads[&1].ideal_ns - 60e6).abs() < 1.0);
    assert!((f.threads[&2].ideal_ns - 40e6).abs() < 1.0);
}

#[test]
fn an_infeasible_weight_is_capped_at_one_of_the_applications_cores() {
    // Two cores, of which the application got half each; tickets
    // 1000:100:100: 1/2, 1/4, 1/4, not 5/6, 1/12, 1/12.
    let t = tracked(
        2,
        &[
            record(
                0,
                "stride",
                &th(&[(1, 1000, 0, 0, 0), (2, 100, 0, 0, 0), (3, 100, 0, 0, 0)]),
            ),
            record(
                100,
                "stride",
                &th(&[
                    (1, 1000, 50, 0, 100),
                    (2, 100, 25, 0, 100),
                    (3, 100, 25, 0, 100),
                ]),
            ),
        ],
    );
    let shares = t.apps["a"].shares();
    for (id, ideal) in [(1, 0.5), (2, 0.25), (3, 0.25)] {
        assert!((shares[&id].1 - ideal).abs() < 1e-9, "{id}: {shares:?}");
    }
}

#[test]
fn the_table_names_its_units() {
    let t = tracked(1, &[record(0, "stride", &th(&[(1, 100, 0, 0, 0)]))]);
    let header = t.table(&BTreeMap::new());
    let header = header.lines().next().unwrap();
    for column in [
        "tickets",
        "share(%)",
        "ideal(%)",
        "error(pp)",
        "wait p99(ms)",
        "max(ms)",
    ] {
        assert!(header.contains(column), "{header}");
    }
}

#[test]
fn the_table_gives_each_thread_s_longest_wait_beside_its_p99() {
    // 99 waits of about 1 ms and one of 12.3 s: the p99 is the 1 ms
    // bucket, the longest wait what it hides.
    let waits: Value = serde_json::from_str(&format!(
        r#"{{"kind":"waits","name":"a","t_ns":{},"w":[[1,100,0,12345678000,{},99,{},1]]}}"#,
        100 * MS,
        abi::waits::bucket_of(MS),
        abi::waits::bucket_of(12_345_678_000)
    ))
    .unwrap();
    let t = tracked(
        2,
        &[
            record(0, "stride", &th(&[(1, 100, 0, 0, 0), (2, 100, 0, 0, 0)])),
            waits,
            record(
                100,
                "stride",
                &th(&[(1, 100, 100, 0, 100), (2, 100, 100, 0, 100)]),
            ),
        ],
    );
    let table = t.table(&BTreeMap::new());
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    let p99: f64 = row[row.len() - 2].parse().unwrap();
    assert!((p99 - 1.0).abs() < 1.0 / 16.0, "{table}");
    assert_eq!(row[row.len() - 1], "12345.678", "{table}");
    // A thread without waits has neither, not zeros.
    let row: Vec<&str> = table.lines().nth(2).unwrap().split_whitespace().collect();
    assert_eq!(row[row.len() - 2..], ["-", "-"], "{table}");
    // The columns line up, a longest wait over 10 s too.
    let widths: Vec<usize> = table.lines().map(|l| l.chars().count()).collect();
    assert!(widths.iter().all(|&w| w == widths[0]), "{table}");
}

// ---- The summary against an independent water filling -----------------

use crate::rundata::{App, RunData, Sample, SleepSpan, Thread};
use proptest::prelude::*;

/// Water filling by bisection on the water level `λ`: thread `i` gets
/// `min(cap_i, λ w_i)`, `λ` chosen so the parts add up to `total` (or to
/// all the caps, if they are less).
fn level_fill(total: f64, w: &[f64], cap: &[f64]) -> Vec<f64> {
    let fill = |l: f64| -> Vec<f64> { w.iter().zip(cap).map(|(w, c)| (l * w).min(*c)).collect() };
    let target = total.min(cap.iter().sum());
    let (mut lo, mut hi) = (0.0, 1.0);
    while fill(hi).iter().sum::<f64>() < target && hi < 1e30 {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if fill(mid).iter().sum::<f64>() < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    fill(hi)
}

/// A run: threads of one application, samples every 100 ms; per interval
/// and thread the CPU it got and when it slept (whole ms from the
/// interval's start); policy swaps and one ticket change at whole ms.
#[derive(Clone, Debug)]
struct Synthetic {
    capacity: u32,
    tickets: Vec<u64>,
    /// Per interval, per thread.
    intervals: Vec<Vec<Got>>,
    first_policy: &'static str,
    swaps: Vec<(u64, &'static str)>,
    /// (ms, thread index, tickets)
    ticket_change: Option<(u64, usize, u64)>,
}

/// One thread in one interval: the CPU ms it got, and its sleeps as
/// `(start, length)` in ms from the interval's start.
type Got = (u64, Vec<(u64, u64)>);

/// A registered policy's name, any of them.
fn policy() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(sched_registry::names().collect::<Vec<_>>())
}

fn synthetic() -> impl Strategy<Value = Synthetic> {
    (1usize..7, 1u32..5, 1usize..6).prop_flat_map(|(n, capacity, k)| {
        let span = k as u64 * 100;
        let sleeps = proptest::collection::vec((0u64..100, 1u64..60), 0..4);
        (
            proptest::collection::vec(1u64..1000, n),
            proptest::collection::vec(proptest::collection::vec((0u64..100, sleeps), n), k),
            policy(),
            proptest::collection::vec((1..span, policy()), 0..3),
            proptest::option::of((1..span, 0..n, 1u64..1000)),
        )
            .prop_map(
                move |(tickets, intervals, first_policy, swaps, ticket_change)| Synthetic {
                    capacity,
                    tickets,
                    intervals,
                    first_policy,
                    swaps,
                    ticket_change,
                },
            )
    })
}

impl Synthetic {
    /// Whether thread `i` is asleep in ms `m` of interval `k`.
    fn asleep(&self, k: usize, i: usize, m: u64) -> bool {
        self.intervals[k][i]
            .1
            .iter()
            .any(|&(s, len)| s <= m && m < (s + len).min(100))
    }

    fn run_data(&self) -> RunData {
        let mut swaps = self.swaps.clone();
        swaps.sort();
        let n = self.tickets.len();
        let threads = (0..n)
            .map(|i| {
                let mut tickets_timeline = vec![(0, self.tickets[i])];
                if let Some((at, _, tickets)) = self.ticket_change.filter(|c| c.1 == i) {
                    tickets_timeline.push((at * MS, tickets));
                }
                Thread {
                    id: i as u32 + 1,
                    name: format!("t{i}"),
                    tickets_timeline,
                    ..Thread::default()
                }
            })
            .collect();
        let mut scheduler_timeline = vec![(0, self.first_policy.to_string())];
        scheduler_timeline.extend(swaps.iter().map(|&(t, p)| (t * MS, p.to_string())));
        let (mut samples, mut sleeps) = (Vec::new(), Vec::new());
        let mut cumulative = vec![(0u64, 0u64); n];
        for k in 0..=self.intervals.len() {
            let t_ns = k as u64 * 100 * MS;
            if k > 0 {
                let from = t_ns - 100 * MS;
                for (i, c) in cumulative.iter_mut().enumerate() {
                    c.0 += self.intervals[k - 1][i].0 * MS;
                    // Reported as the application would: whole ms asleep.
                    let asleep: Vec<u64> = (0..100).filter(|&m| self.asleep(k - 1, i, m)).collect();
                    c.1 += asleep.len() as u64 * MS;
                    sleeps.extend(asleep.into_iter().map(|m| SleepSpan {
                        t_ns,
                        app: 0,
                        thread: i as u32 + 1,
                        start_ns: from + m * MS,
                        end_ns: from + (m + 1) * MS,
                    }));
                }
            }
            for (i, &(cpu_ns, sleep_ns)) in cumulative.iter().enumerate() {
                samples.push(Sample {
                    t_ns,
                    app: 0,
                    thread: i as u32 + 1,
                    cpu_ns,
                    sleep_ns,
                    alive_ns: Some(t_ns),
                    ..Sample::default()
                });
            }
        }
        RunData {
            slice_ns: MS,
            apps: vec![App {
                name: "a".into(),
                capacity: self.capacity,
                scheduler_timeline,
                threads,
                ..App::default()
            }],
            samples,
            sleeps,
            ..RunData::default()
        }
    }

    /// The ideal shares, from the definition alone, a millisecond at a
    /// time: the application's time split over the milliseconds by how
    /// many of its cores the runnable threads could use, each
    /// millisecond's part water-filled over them by the policy's weights,
    /// one core each at most.
    fn ideal_shares(&self) -> Vec<f64> {
        let n = self.tickets.len();
        let mut swaps = self.swaps.clone();
        swaps.sort();
        let policy_at = |ms: u64| {
            swaps
                .iter()
                .rev()
                .find(|s| s.0 <= ms)
                .map_or(self.first_policy, |s| s.1)
        };
        let tickets_at = |i: usize, ms: u64| match self.ticket_change {
            Some((at, j, tickets)) if j == i && at <= ms => tickets,
            _ => self.tickets[i],
        };
        let mut ideal = vec![0.0; n];
        for (k, interval) in self.intervals.iter().enumerate() {
            let total: f64 = interval.iter().map(|t| t.0 as f64).sum();
            let runnable: Vec<Vec<usize>> = (0..100)
                .map(|m| (0..n).filter(|&i| !self.asleep(k, i, m)).collect())
                .collect();
            let usable = |r: &Vec<usize>| r.len().min(self.capacity as usize) as f64;
            let core_ms: f64 = runnable.iter().map(usable).sum();
            for (m, r) in runnable.iter().enumerate() {
                if r.is_empty() {
                    continue;
                }
                let ms = k as u64 * 100 + m as u64;
                let time = total * usable(r) / core_ms;
                let w: Vec<f64> = r
                    .iter()
                    .map(|&i| {
                        // As the policy's crate declares it, not as the
                        // summary reads it (`metrics::Entitlement::of`).
                        let info = sched_registry::by_name(policy_at(ms)).expect("registered");
                        match info.entitlement {
                            sched_registry::Entitlement::Equal => 1.0,
                            sched_registry::Entitlement::Tickets => tickets_at(i, ms) as f64,
                        }
                    })
                    .collect();
                let cap = vec![time / usable(r); r.len()];
                for (&i, x) in r.iter().zip(level_fill(time, &w, &cap)) {
                    ideal[i] += x;
                }
            }
        }
        let sum: f64 = ideal.iter().sum();
        ideal
            .iter()
            .map(|x| if sum > 0.0 { x / sum } else { 0.0 })
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn summary_ideal_shares_agree_with_an_independent_water_filling(s in synthetic()) {
        let summary = fairness_summary(&s.run_data());
        let expected = s.ideal_shares();
        let threads = summary[0]["threads"].as_array().unwrap();
        prop_assert_eq!(threads.len(), expected.len());
        for (t, e) in threads.iter().zip(&expected) {
            let got = t["ideal_share"].as_f64().unwrap();
            prop_assert!((got - e).abs() <= 0.01, "{} vs {} ({:?})", got, e, expected);
            prop_assert_eq!(t["sleep_unlogged_ns"].as_u64(), Some(0));
        }
        let sum: f64 = expected.iter().sum();
        prop_assert!(sum == 0.0 || (sum - 1.0).abs() < 1e-9);
    }
}

/// The synthetic runs start with and swap to every registered policy.
#[test]
fn synthetic_runs_draw_every_registered_policy() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = synthetic();
    let (mut first, mut swapped) = (BTreeSet::new(), BTreeSet::new());
    for _ in 0..300 {
        let s = strategy.new_tree(&mut runner).unwrap().current();
        first.insert(s.first_policy);
        swapped.extend(s.swaps.iter().map(|&(_, p)| p));
    }
    let registered: BTreeSet<&str> = sched_registry::names().collect();
    assert_eq!(first, registered);
    assert_eq!(swapped, registered);
}

/// A `tickets` event under a policy without currencies gives base tickets
/// and takes the thread out of its currency for good (`Table::weight_set`,
/// docs/scenarios.md): the figures follow (review r2-s37 found them valuing
/// the new tickets in the old currency: 33.75 / 11.25 / 45 ms owed for
/// stride's 60 / 10 / 20).
#[test]
fn tickets_set_under_a_policy_without_currencies_are_base_tickets() {
    let ev = |t_ms: u64, what: &str, thread: u32, detail: &str| -> Value {
        serde_json::from_str(&format!(
            r#"{{"kind":"app_event","name":"a","t_ns":{},"what":"{what}","thread":{thread},"detail":"{detail}"}}"#,
            t_ms * MS
        ))
        .unwrap()
    };
    let start: Value =
        serde_json::from_str(r#"{"kind":"app_start","name":"a","t_ns":0,"policy":"lottery"}"#)
            .unwrap();
    // Currency A (funding 100) holds threads 1 and 2 (100 each); thread 3
    // has 100 base tickets: 50:50:100 under lottery. A swap to stride at
    // 10 ms holds them so; at 20 ms thread 1 is given 300 (base) tickets:
    // stride weighs them 300:50:100 for the 70 ms left.
    let plan = (
        vec![crate::metrics::Currency {
            parent: 0,
            funding: 100,
        }],
        vec![(1, 1), (2, 1), (3, 0)],
    );
    let mut t = Tracker::new(BTreeMap::from([("a".to_string(), 1)]))
        .with_currencies(BTreeMap::from([("a".to_string(), plan)]));
    for r in [
        start,
        record(
            0,
            "lottery",
            &th(&[(1, 100, 0, 0, 0), (2, 100, 0, 0, 0), (3, 100, 0, 0, 0)]),
        ),
        ev(10, "swap", 0, "lottery -> stride"),
        ev(20, "tickets", 1, "100 -> 300"),
        record(
            90,
            "stride",
            &th(&[
                (1, 300, 60, 0, 90),
                (2, 100, 10, 0, 90),
                (3, 100, 20, 0, 90),
            ]),
        ),
    ] {
        t.record(&r);
    }
    t.flush();
    let f = &t.apps["a"];
    let ideal: Vec<f64> = (1..=3)
        .map(|id| f.threads[&id].ideal_ns / MS as f64)
        .collect();
    // 20 ms at 50:50:100, 70 ms at 300:50:100 (by face value in A after
    // the tickets: 75:25:100).
    let want = [
        20.0 * 0.25 + 70.0 * 300.0 / 450.0,
        20.0 * 0.25 + 70.0 * 50.0 / 450.0,
        20.0 * 0.5 + 70.0 * 100.0 / 450.0,
    ];
    for k in 0..3 {
        assert!(
            (ideal[k] - want[k]).abs() < 1e-6,
            "ideal ms {ideal:?}, stride owed {want:?}"
        );
    }
}
