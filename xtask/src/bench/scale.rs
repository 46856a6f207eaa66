//! The scale rows of `just bench` (issue 13): how the libOS's decisions
//! per second and the time from a thread's wake-up to its running again
//! change as cores grow. One application of sleepers, four per core
//! (`scenarios/scale-wakeups.toml`), run deterministically on [`CORES`].
//! Beyond 8 cores a deterministic core executes fewer
//! instructions per virtual second (QEMU runs every vCPU on one
//! instruction clock), so those runs stretch the slice, the grace and the
//! sleepers' times by the same factor and every latency is also given in
//! instructions, the figure that compares across rows.

use std::path::Path;

use serde_json::{json, Value};

use crate::experiments::{run_all, scenario_job, scenario_with, Job};
use crate::qemu::det_slowdown;
use crate::{Accel, RunOutcome};

/// Sleepers per core.
const PER_CORE: u32 = 4;

/// The core counts of the full bench's rows (issue 13 asks for 16, 32
/// and 64). The 32- and 64-core runs take about 65 s of wall time each
/// on the 2-core host (most of the 64-core one its 2.2 s virtual boot).
pub const CORES: [u32; 7] = [1, 2, 4, 8, 16, 32, 64];

/// One core count's figures, from its run's summary.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleRow {
    pub cores: u32,
    /// How many times slower each core ran than up to 8 cores (1 up to 8).
    pub slowdown: u64,
    /// Threads' dispatches after a wait (each wake-up served is one), per
    /// virtual second of the part of the run the samples cover: the rate
    /// the sleepers ask for (they sleep after computing, so it falls as
    /// their waits grow), not the libOS's capacity.
    pub decisions_per_s: f64,
    /// The part of the application's time its samples cover (the waits
    /// are read from them): 1 when the last sample came at the end. On
    /// 32 and 64 cores the sampler, which takes the runtime lock once a
    /// thread, was seen to stop getting it a tenth of the way in.
    pub sampled: f64,
    /// The median thread's median wait, ns of virtual time.
    pub wait_p50_ns: f64,
    /// The worst thread's 99th percentile wait, ns.
    pub wait_p99_ns: f64,
    /// The longest wait of any thread, ns.
    pub wait_max_ns: f64,
    /// Instructions a core executes per virtual ns in this run.
    pub insns_per_ns: f64,
    /// Threads that reported, of those the scenario has.
    pub threads: usize,
    pub expected_threads: usize,
}

/// The figures of one run: `summary` is its `summary.json`.
pub fn row(
    cores: u32,
    slowdown: u64,
    insns_per_ns: f64,
    summary: &Value,
) -> Result<ScaleRow, String> {
    let threads: Vec<&Value> = summary["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["threads"].as_array().into_iter().flatten())
        .collect();
    let duration_ns = summary["duration_ns"]
        .as_f64()
        .filter(|d| *d > 0.0)
        .ok_or("the run's summary has no duration")?;
    let waits: Vec<&Value> = threads
        .iter()
        .map(|t| &t["wait"])
        .filter(|w| w["count"].as_u64().unwrap_or(0) > 0)
        .collect();
    if waits.is_empty() {
        return Err(format!("{cores} cores: no thread reported a wait"));
    }
    let count: u64 = waits.iter().filter_map(|w| w["count"].as_u64()).sum();
    let sampled = summary["apps"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(|a| {
            Some((
                a["ran_ns"].as_f64()?,
                a["ran_after_last_sample_ns"].as_f64()?,
            ))
        })
        .filter(|(ran, _)| *ran > 0.0)
        .map_or(1.0, |(ran, after)| (1.0 - after / ran).clamp(0.0, 1.0));
    let mut p50: Vec<f64> = waits.iter().filter_map(|w| w["p50_ns"].as_f64()).collect();
    p50.sort_by(f64::total_cmp);
    let worst = |key: &str| {
        waits
            .iter()
            .filter_map(|w| w[key].as_f64())
            .fold(f64::NAN, f64::max)
    };
    Ok(ScaleRow {
        cores,
        slowdown,
        decisions_per_s: count as f64 / (duration_ns * sampled.max(1e-9) / 1e9),
        sampled,
        wait_p50_ns: p50.get(p50.len() / 2).copied().unwrap_or(f64::NAN),
        wait_p99_ns: worst("p99_ns"),
        wait_max_ns: worst("max_ns"),
        insns_per_ns,
        threads: waits.len(),
        expected_threads: (PER_CORE * cores) as usize,
    })
}

/// The deterministic runs, one per core count, the scenario stretched by
/// each count's slowdown.
pub fn jobs(scenario: &Path, cores: &[u32], accel: Accel) -> Result<Vec<Job>, String> {
    cores
        .iter()
        .map(|&n| {
            let k = det_slowdown(n);
            let over = [
                ("cores".to_string(), n.to_string()),
                ("slice_us".into(), (2000 * k).to_string()),
                ("grace_us".into(), (200 * k).to_string()),
                ("app.0.thread.0.run_us".into(), (200 * k).to_string()),
                ("app.0.thread.0.sleep_us".into(), (1800 * k).to_string()),
                ("app.0.thread.0.count".into(), (PER_CORE * n).to_string()),
            ];
            let path = scenario_with(scenario, &over, &format!("{n}c"))?;
            let mut job = scenario_job(&format!("bench-scale-{n}"), path, n, accel);
            job.opts.det = true;
            Ok(job)
        })
        .collect()
}

/// Runs the scale rows (on `cores`); a run that failed or reported no
/// waits becomes an error naming it, not a row.
pub fn measure(cores: &[u32], accel: Accel) -> (Vec<ScaleRow>, Vec<String>) {
    let scenario = crate::build::workspace_root().join("scenarios/scale-wakeups.toml");
    let jobs = match jobs(&scenario, cores, accel) {
        Ok(j) => j,
        Err(e) => return (Vec::new(), vec![e]),
    };
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (job, out) in run_all(jobs, 1) {
        let n = job.opts.cpus;
        let speed = crate::qemu::det_core_speed(n) / 1e9;
        match out.and_then(|o: RunOutcome| {
            if o.exit_name != "success" {
                return Err(format!(
                    "{}: ended {} ({})",
                    job.name,
                    o.exit_name,
                    o.run_dir.display()
                ));
            }
            row(n, det_slowdown(n), speed, &o.summary)
        }) {
            Ok(r) => rows.push(r),
            Err(e) => errors.push(e),
        }
    }
    (rows, errors)
}

/// The report's table.
pub fn table(rows: &[ScaleRow]) -> String {
    let mut s = String::from(
        "| cores | core speed | wake-ups served per virtual second | per core, × the slowdown | median thread's p50 wait | worst thread's p99 | max | p50 / p99 in instructions | threads reporting | run sampled |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let insns = |ns: f64| ns * r.insns_per_ns;
        s.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {:.1} µs | {:.1} µs | {:.1} µs | {:.0} / {:.0} | {} of {} | {:.0}% |\n",
            r.cores,
            if r.slowdown > 1 {
                format!("1/{} (times stretched {}x)", r.slowdown, r.slowdown)
            } else {
                "full".into()
            },
            r.decisions_per_s,
            r.decisions_per_s / f64::from(r.cores) * r.slowdown as f64,
            r.wait_p50_ns / 1e3,
            r.wait_p99_ns / 1e3,
            r.wait_max_ns / 1e3,
            insns(r.wait_p50_ns),
            insns(r.wait_p99_ns),
            r.threads,
            r.expected_threads,
            r.sampled * 100.0,
        ));
    }
    // A row whose samples stopped early measures only their part (a run
    // that samples to its end covers ~90%: nothing after the last sample).
    for r in rows.iter().filter(|r| r.sampled < 0.8) {
        s.push_str(&format!(
            "\n{} cores: the application's samples covered {:.0}% of the run (its sampler starved of the runtime lock): the row is that part's only.\n",
            r.cores,
            r.sampled * 100.0
        ));
    }
    s
}

/// [`table`], then a line for each run that gave no row.
pub fn table_and_errors(rows: &[ScaleRow], errors: &[String]) -> String {
    let mut md = table(rows);
    for e in errors {
        md += &format!("\nNot measured: {e}\n");
    }
    md
}

pub fn json(rows: &[ScaleRow], errors: &[String]) -> Value {
    json!({
        "rows": rows.iter().map(|r| json!({
            "cores": r.cores, "slowdown": r.slowdown,
            "decisions_per_s": r.decisions_per_s,
            "wait_p50_ns": r.wait_p50_ns, "wait_p99_ns": r.wait_p99_ns, "wait_max_ns": r.wait_max_ns,
            "wait_p50_insns": r.wait_p50_ns * r.insns_per_ns, "wait_p99_insns": r.wait_p99_ns * r.insns_per_ns,
            "threads": r.threads, "expected_threads": r.expected_threads,
            "sampled": r.sampled,
        })).collect::<Vec<_>>(),
        "errors": errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(waits: &[(u64, u64, u64, u64)], duration_ns: u64) -> Value {
        json!({
            "duration_ns": duration_ns,
            "apps": [{"threads": waits.iter().map(|&(count, p50, p99, max)| json!({
                "wait": {"count": count, "p50_ns": p50, "p99_ns": p99, "max_ns": max}
            })).collect::<Vec<_>>()}],
        })
    }

    #[test]
    fn a_row_sums_decisions_and_takes_the_worst_tail() {
        let s = summary(
            &[
                (500, 10_000, 40_000, 90_000),
                (300, 20_000, 30_000, 50_000),
                (400, 15_000, 80_000, 85_000),
            ],
            2_000_000_000,
        );
        let r = row(1, 1, 0.125, &s).unwrap();
        assert_eq!(r.decisions_per_s, 600.0);
        assert_eq!(r.wait_p50_ns, 15_000.0);
        assert_eq!(r.wait_p99_ns, 80_000.0);
        assert_eq!(r.wait_max_ns, 90_000.0);
        assert_eq!((r.threads, r.expected_threads), (3, 4));
        assert_eq!(r.sampled, 1.0, "no record of samples: the whole run");
        assert!(table(&[r]).contains(
            "| 1 | full | 600 | 600 | 15.0 µs | 80.0 µs | 90.0 µs | 1875 / 10000 | 3 of 4 | 100% |"
        ));
    }

    /// The waits come from the application's samples: when its samples
    /// stop early (its sampler starved of the runtime lock, 64 cores), the
    /// rate is over what they cover, and the row says how much that is.
    #[test]
    fn a_row_counts_over_what_the_samples_cover_and_says_how_much() {
        let mut s = summary(&[(500, 10_000, 40_000, 90_000)], 2_000_000_000);
        s["apps"][0]["ran_ns"] = json!(64_000_000_000u64);
        s["apps"][0]["ran_after_last_sample_ns"] = json!(48_000_000_000u64);
        let r = row(1, 1, 0.125, &s).unwrap();
        assert_eq!(r.sampled, 0.25);
        assert_eq!(r.decisions_per_s, 1000.0, "500 waits in a quarter of 2 s");
        let t = table(&[r]);
        assert!(t.contains("| 1000 | 1000 |"), "{t}");
        assert!(t.contains("| 1 of 4 | 25% |"), "{t}");
        assert!(t.contains("samples covered 25% of the run"), "{t}");
    }

    #[test]
    fn threads_without_waits_do_not_count_and_none_is_an_error() {
        let s = summary(&[(0, 0, 0, 0), (10, 5, 6, 7)], 1_000_000_000);
        let r = row(2, 1, 0.125, &s).unwrap();
        assert_eq!((r.threads, r.decisions_per_s), (1, 10.0));
        assert!(row(2, 1, 0.125, &summary(&[(0, 0, 0, 0)], 1_000_000_000)).is_err());
        assert!(row(2, 1, 0.125, &json!({"apps": []})).is_err());
    }

    #[test]
    fn jobs_stretch_the_scenario_beyond_eight_cores() {
        let base = crate::build::workspace_root().join("scenarios/scale-wakeups.toml");
        let jobs = jobs(&base, &CORES, Accel::Tcg).unwrap();
        assert!(jobs.iter().all(|j| j.opts.det));
        assert_eq!(jobs.len(), CORES.len());
        for (job, n) in jobs.iter().zip(CORES) {
            let k = det_slowdown(n);
            assert_eq!(job.opts.cpus, n);
            let path = job.opts.scenario.as_ref().unwrap();
            let s = crate::scenario::load(path, n).unwrap();
            assert_eq!(s.slice_us, 2000 * k, "{n} cores");
            let doc: toml::Value = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            assert_eq!(
                doc["app"][0]["thread"][0]["count"].as_integer(),
                Some(i64::from(4 * n))
            );
            assert_eq!(
                doc["app"][0]["thread"][0]["sleep_us"].as_integer(),
                Some(1800 * k as i64)
            );
            assert_eq!(
                doc["app"][0]["thread"][0]["run_us"].as_integer(),
                Some(200 * k as i64)
            );
            assert_eq!(s.grace_us, 200 * k);
        }
        assert!(
            det_slowdown(16) > 1 && det_slowdown(64) > det_slowdown(32),
            "cores beyond 8 run slower the more there are in det runs"
        );
    }
}
