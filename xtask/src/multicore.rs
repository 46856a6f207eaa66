//! Issue 13's multicore yardstick, read from one scenario run's summary:
//! how many of a cooperative application's turns ended in repossession,
//! how long cores idled, how much of the application's time reached its
//! threads, and how far stride's threads lagged. The canonical experiments
//! print these beside their targets; `s14_multicore` asserts the bounds.

use serde_json::Value;

/// Issue 13's targets for a cooperative, CPU-bound application.
pub mod target {
    /// Turns ending in repossession, at most.
    pub const REPOSSESSED: f64 = 0.005;
    /// Any core's idle time while threads are runnable, at most.
    pub const IDLE: f64 = 0.01;
    /// The threads' part of the application's time, at least.
    pub const THREADS_SHARE: f64 = 0.97;
    /// Not an issue 13 target: the floor for one seed of a row judged on
    /// its seeds' median ([`THREADS_SHARE`]). One seed's figure moves by up
    /// to a point between builds that change nothing the row exercises;
    /// the lock convoy the 64-core row's test was written for read 91.41%.
    pub const THREADS_SHARE_ONE_SEED: f64 = 0.96;
    /// A thread's single charge, at most, in slots: a slot and its grace
    /// (the grace is a tenth of the slot in every canonical row).
    pub const SINGLE_CHARGE_SLOTS: f64 = 1.1;
    /// Stride's largest lag, in quanta, at most (up to 8 cores).
    pub const STRIDE_LAG_QUANTA: f64 = 2.0;
    /// Machine shares within this of the slots' proportion.
    pub const SLOT_SHARE_ERROR: f64 = 0.01;
    /// Turns a preempted thread ran on without its policy's decision, at
    /// most (not an issue 13 target: a guard; each such turn is lag, and
    /// up to 8 cores the lock should never stay busy that long).
    pub const RUN_ON: f64 = 0.001;
}

/// What one run measured for one application (its environment `env` and
/// the application of the same name).
#[derive(Clone, Debug, PartialEq)]
pub struct Yardstick {
    pub turns: u64,
    pub repossessions: u64,
    /// The idlest core's idle time over the run's duration.
    pub max_core_idle: f64,
    /// The threads' CPU time over the environment's, both up to the
    /// application's last sample (see [`measure`]).
    pub threads_share: f64,
    /// The same from the sample nearest the middle of the application's
    /// run (from its start to its last sample) on: the run's second half,
    /// start-up left out. `None` with fewer than two samples, or in runs
    /// made before summaries recorded it.
    pub threads_share_second_half: Option<f64>,
    /// The largest absolute lag any thread reached, in quanta.
    pub max_lag_quanta: f64,
    /// The application's control thread's CPU time (its sampling and
    /// reporting) over the environment's, up to the same sample: part of
    /// what the threads did not get. `None` in runs made before
    /// applications reported it.
    pub control_share: Option<f64>,
    /// The part of its turns a preempted thread ran on without the
    /// policy's decision (the libOS's runtime lock stayed busy): each is
    /// lag the policy did not order. `None` in runs made before
    /// applications reported it.
    pub run_on_share: Option<f64>,
    /// The longest CPU time one of its threads was charged in one stop
    /// (ns), as of the last sample; `None` in runs made before
    /// applications reported it.
    pub longest_charge_ns: Option<f64>,
}

impl Yardstick {
    /// The part of the turns that ended in repossession.
    pub fn repossessed(&self) -> f64 {
        self.repossessions as f64 / self.turns.max(1) as f64
    }
}

/// The environment named `name` in a run's summary.
pub fn env<'a>(summary: &'a Value, name: &str) -> Result<&'a Value, String> {
    summary["envs"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["name"] == name))
        .ok_or_else(|| format!("no environment {name} in the summary"))
}

/// An environment's CPU time over every core, ns.
pub fn env_cpu_ns(env: &Value) -> f64 {
    env["cpu_ns"]
        .as_array()
        .map_or(0.0, |c| c.iter().filter_map(Value::as_f64).sum())
}

/// Measures application `app` in a run's summary (environment and
/// application share the name in scenario runs).
///
/// The threads' part compares like with like: their CPU time is the
/// application's last sample's, so the environment's is taken up to the
/// same instant — the kernel's total less what it charged the application
/// after that sample (the wall time its trace shows it ran after the
/// sample, at the charged rate of all its trace shows it ran: `ran_ns`).
/// (Taken over the whole run instead,
/// the run's end fell a whole sampling period after the last sample —
/// samples come every 100 ms from the application's start, and the run
/// ends 5 s after its own, just before the next one — and 2% of a 5 s
/// run, 10% of a 1 s run, counted as time the threads did not get.)
pub fn measure(summary: &Value, app: &str) -> Result<Yardstick, String> {
    let e = env(summary, app)?;
    let field = |v: &Value, k: &str| v[k].as_u64().ok_or_else(|| format!("{app} has no {k}"));
    let duration = summary["duration_ns"]
        .as_f64()
        .filter(|d| *d > 0.0)
        .ok_or("the summary has no duration")?;
    let max_core_idle = summary["cores"]
        .as_array()
        .ok_or("the summary has no cores")?
        .iter()
        .map(|c| c["idle_ns"].as_f64().unwrap_or(0.0) / duration)
        .fold(0.0, f64::max);
    let application = summary["apps"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == app))
        .ok_or_else(|| format!("no application {app} in the summary"))?;
    let threads = application["threads"]
        .as_array()
        .ok_or_else(|| format!("{app} has no threads in the summary"))?;
    let charged_by_sample: f64 = threads.iter().filter_map(|t| t["cpu_ns"].as_f64()).sum();
    let after_last_sample = application["ran_after_last_sample_ns"]
        .as_f64()
        .ok_or_else(|| {
            format!(
                "{app}: what it ran after its last sample is unknown \
                 (no samples, or the kernel's trace dropped turns)"
            )
        })?;
    // The trace's turns are wall time: the kernel's own time in them
    // (ticks, slot switches, 1.4–2.2% in the canonical runs) is not in
    // the charged `cpu_ns`. The tail is taken off at the application's
    // charged rate over everything it ran, not as wall time (which took
    // the kernel's part of the tail off too: 0.44 points too many for
    // 1,000 threads on 16 cores, a sixth of whose run came after the
    // last sample).
    let ran = application["ran_ns"]
        .as_f64()
        .ok_or_else(|| format!("{app}: what it ran on the kernel's trace is unknown"))?;
    let charged = env_cpu_ns(e);
    // The application's charged time per ns of its trace's wall time.
    let rate = if ran > 0.0 { charged / ran } else { 1.0 };
    let to_app = if ran > 0.0 {
        charged * (1.0 - (after_last_sample / ran).min(1.0))
    } else {
        charged
    };
    // A thread is charged when it stops: its run still going at the
    // sample is in the application's time up to then but not in its
    // figures. The sample reports those runs (global-clock ns, never more
    // than they will be charged up to then, interrupts aside), taken at
    // the same charged rate as the tail. Runs made before samples
    // reported them: uncorrected (up to 0.9 points on 64 cores).
    let running = |ns: Option<f64>| ns.unwrap_or(0.0) * rate;
    let to_threads = charged_by_sample + running(application["running_at_last_sample_ns"].as_f64());
    let max_lag_quanta = threads
        .iter()
        .filter_map(|t| t["max_abs_lag_quanta"].as_f64())
        .fold(0.0, f64::max);
    // The second half: the threads' CPU time since the middle sample over
    // the application's charged time since then (its trace's wall time
    // between the two samples, at the same charged rate as above).
    let half = &application["second_half"];
    let threads_share_second_half = match (
        half["threads_cpu_ns"].as_f64(),
        half["ran_after_ns"].as_f64(),
    ) {
        (Some(cpu_then), Some(after_mid)) if ran > 0.0 && after_mid > after_last_sample => {
            let span = charged * (after_mid - after_last_sample) / ran;
            let then = cpu_then + running(half["threads_running_ns"].as_f64());
            Some((to_threads - then) / span.max(1.0))
        }
        _ => None,
    };
    Ok(Yardstick {
        turns: field(e, "turns")?,
        repossessions: field(e, "repossessions")?,
        max_core_idle,
        threads_share: to_threads / to_app.max(1.0),
        threads_share_second_half,
        max_lag_quanta,
        control_share: application["control_ns"]
            .as_f64()
            .map(|c| c / to_app.max(1.0)),
        run_on_share: application["turns"]["run_on"].as_f64().map(|r| {
            let decided = application["turns"]["decided"].as_f64().unwrap_or(0.0);
            r / (r + decided).max(1.0)
        }),
        longest_charge_ns: application["longest_charge_ns"].as_f64(),
    })
}

/// Application `a`'s part of the CPU time `a` and `b` received together.
pub fn machine_share(summary: &Value, a: &str, b: &str) -> Result<f64, String> {
    let (a, b) = (env_cpu_ns(env(summary, a)?), env_cpu_ns(env(summary, b)?));
    Ok(a / (a + b).max(1.0))
}

/// Application `app`'s threads' work rate: loop iterations per ns of CPU
/// time charged to them, summed over its threads. The same program on N
/// cores against one core shows how fast each core of the run really was
/// while it ran the threads (a deterministic run states that speed: see
/// `qemu::det_core_speed`).
pub fn work_rate(summary: &Value, app: &str) -> Result<f64, String> {
    let threads = summary["apps"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == app))
        .and_then(|a| a["threads"].as_array())
        .ok_or_else(|| format!("no threads of {app} in the summary"))?;
    let sum = |k: &str| -> f64 { threads.iter().filter_map(|t| t[k].as_f64()).sum() };
    let (iterations, cpu_ns) = (sum("iterations"), sum("cpu_ns"));
    if iterations <= 0.0 || cpu_ns <= 0.0 {
        return Err(format!("{app}'s threads did no counted work"));
    }
    Ok(iterations / cpu_ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_work_rate_is_iterations_over_charged_time() {
        let s = json!({"apps": [{"name": "app", "threads": [
            {"cpu_ns": 1000, "iterations": 30},
            {"cpu_ns": 3000, "iterations": 90},
        ]}]});
        assert!((work_rate(&s, "app").unwrap() - 0.03).abs() < 1e-12);
        assert!(work_rate(&s, "other").is_err());
        let idle = json!({"apps": [{"name": "app", "threads": [{"cpu_ns": 0, "iterations": 0}]}]});
        assert!(work_rate(&idle, "app").is_err());
    }

    fn run() -> Value {
        json!({
            "duration_ns": 1000,
            "cores": [{"idle_ns": 0}, {"idle_ns": 30}],
            "envs": [
                {"name": "app", "turns": 400, "repossessions": 2, "cpu_ns": [900, 1000]},
                {"name": "other", "turns": 1, "repossessions": 0, "cpu_ns": [100, 0]}
            ],
            "apps": [{"name": "app", "ran_ns": 1900, "ran_after_last_sample_ns": 0, "threads": [
                {"cpu_ns": 1000, "max_abs_lag_quanta": 0.5},
                {"cpu_ns": 710, "max_abs_lag_quanta": 1.25}
            ]}]
        })
    }

    #[test]
    fn figures_come_from_the_summary() {
        let y = measure(&run(), "app").unwrap();
        assert_eq!((y.turns, y.repossessions), (400, 2));
        assert!((y.repossessed() - 0.005).abs() < 1e-12);
        assert!((y.max_core_idle - 0.03).abs() < 1e-12);
        assert!((y.threads_share - 0.9).abs() < 1e-12);
        assert_eq!(y.max_lag_quanta, 1.25);
        assert_eq!(y.control_share, None, "not reported");
        let mut r = run();
        r["apps"][0]["control_ns"] = json!(95);
        let y = measure(&r, "app").unwrap();
        assert!((y.control_share.unwrap() - 0.05).abs() < 1e-12);
        assert_eq!(y.run_on_share, None, "not reported");
        r["apps"][0]["turns"] = json!({"decided": 990, "run_on": 10});
        let y = measure(&r, "app").unwrap();
        assert!((y.run_on_share.unwrap() - 0.01).abs() < 1e-12);
        assert_eq!(y.longest_charge_ns, None, "not reported");
        r["apps"][0]["longest_charge_ns"] = json!(2_150_000);
        assert_eq!(
            measure(&r, "app").unwrap().longest_charge_ns,
            Some(2_150_000.0)
        );
        let s = machine_share(&run(), "app", "other").unwrap();
        assert!((s - 0.95).abs() < 1e-12);
    }

    #[test]
    fn the_threads_part_ends_at_the_last_sample_like_their_figures() {
        // The threads' 1710 ns are as of the last sample; the application
        // ran 100 ns of its 1900 after it, before the run ended.
        let mut r = run();
        r["apps"][0]["ran_after_last_sample_ns"] = json!(100);
        let y = measure(&r, "app").unwrap();
        assert!((y.threads_share - 0.95).abs() < 1e-12, "{y:?}");
    }

    #[test]
    fn the_tail_taken_off_is_charged_time_not_wall_time() {
        // The kernel's trace shows the application on its cores for 1000 ns
        // of wall time, 100 of them after the last sample; the kernel
        // charged it 980 of the 1000 (its own 2% — timer ticks, slot
        // switches — is in the trace's turns, not in `cpu_ns`). The
        // application's time up to the last sample is the charged time of
        // the 900 before it, 882, not 980 - 100 = 880 (wall time taken off
        // charged time): with 870 to the threads, 98.64%, not 98.86%.
        let r = json!({
            "duration_ns": 1000,
            "cores": [{"idle_ns": 0}],
            "envs": [{"name": "app", "turns": 10, "repossessions": 0, "cpu_ns": [980]}],
            "apps": [{"name": "app", "ran_ns": 1000, "ran_after_last_sample_ns": 100,
                      "control_ns": 9, "threads": [{"cpu_ns": 870, "max_abs_lag_quanta": 0.5}]}]
        });
        let y = measure(&r, "app").unwrap();
        assert!((y.threads_share - 870.0 / 882.0).abs() < 1e-12, "{y:?}");
        assert!(
            (y.control_share.unwrap() - 9.0 / 882.0).abs() < 1e-12,
            "{y:?}"
        );
    }

    #[test]
    fn the_second_half_counts_from_the_middle_sample() {
        // Trace: 1000 ns of wall time, charged 980; 100 of it after the
        // last sample, 500 after the middle one, so 400 between them:
        // 980 * 400 / 1000 = 392 charged. The threads had 520 ns at the
        // middle sample and 870 at the last: 350 of 392.
        let r = json!({
            "duration_ns": 1000,
            "cores": [{"idle_ns": 0}],
            "envs": [{"name": "app", "turns": 10, "repossessions": 0, "cpu_ns": [980]}],
            "apps": [{"name": "app", "ran_ns": 1000, "ran_after_last_sample_ns": 100,
                      "second_half": {"from_sample_ns": 500, "threads_cpu_ns": 520, "ran_after_ns": 500},
                      "threads": [{"cpu_ns": 870, "max_abs_lag_quanta": 0.5}]}]
        });
        let y = measure(&r, "app").unwrap();
        let half = y.threads_share_second_half.unwrap();
        assert!((half - 350.0 / 392.0).abs() < 1e-12, "{y:?}");
        // Without the middle sample (one sample, or an old summary): none.
        assert_eq!(
            measure(&run(), "app").unwrap().threads_share_second_half,
            None
        );
    }

    #[test]
    fn runs_in_progress_at_a_sample_count_as_the_threads_at_the_charged_rate() {
        // As above (charged 980 of 1000 ns of trace, 882 up to the last
        // sample), and at the last sample 20 ns of wall time of the
        // threads' runs were in progress: 19.6 charged, 870 + 19.6 of 882.
        // At the middle sample 10 ns were: 9.8 charged, so the second
        // half's threads had 889.6 - 529.8 of 392.
        let r = json!({
            "duration_ns": 1000,
            "cores": [{"idle_ns": 0}],
            "envs": [{"name": "app", "turns": 10, "repossessions": 0, "cpu_ns": [980]}],
            "apps": [{"name": "app", "ran_ns": 1000, "ran_after_last_sample_ns": 100,
                      "running_at_last_sample_ns": 20,
                      "second_half": {"from_sample_ns": 500, "threads_cpu_ns": 520,
                                      "ran_after_ns": 500, "threads_running_ns": 10},
                      "threads": [{"cpu_ns": 870, "max_abs_lag_quanta": 0.5}]}]
        });
        let y = measure(&r, "app").unwrap();
        assert!((y.threads_share - 889.6 / 882.0).abs() < 1e-12, "{y:?}");
        let half = y.threads_share_second_half.unwrap();
        assert!((half - (889.6 - 529.8) / 392.0).abs() < 1e-12, "{y:?}");
    }

    #[test]
    fn an_unknown_tail_is_an_error_not_a_guess() {
        let mut r = run();
        r["apps"][0]["ran_after_last_sample_ns"] = Value::Null;
        assert!(measure(&r, "app").unwrap_err().contains("last sample"));
    }

    #[test]
    fn a_missing_application_is_an_error_not_a_zero() {
        assert!(measure(&run(), "nobody").is_err());
        assert!(measure(&json!({}), "app").is_err());
    }
}
