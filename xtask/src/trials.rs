//! `trials=N`: one scenario run N times with seeds `seed`, `seed + 1`, …,
//! and each thread's share and share error reported as the mean over the
//! trials with its 95% confidence interval (Student's t: the trials are few
//! and their spread unknown).
//!
//! Also the other statistic of trials used here, their median and range
//! ([`Spread`]): for figures whose trials are not samples of one mean, such
//! as a tail latency (the canonical experiments, a sweep's request
//! latencies).

use std::fmt::Write;
use std::path::Path;

use serde_json::Value;

use crate::experiments::{scenario_with, Job};
use crate::metrics::requests::Served;
use crate::RunOptions;

/// Student's t two-sided 95% critical values for 1..=30 degrees of freedom.
const T_975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The 97.5th percentile of Student's t with `df` degrees of freedom (the
/// table to 30, then the tabulated 40, 60, 120 and the normal's 1.960,
/// each used up to the next: conservative, never narrower).
pub fn t_975(df: usize) -> f64 {
    match df {
        0 => f64::INFINITY,
        1..=30 => T_975[df - 1],
        31..=40 => 2.042,
        41..=60 => 2.021,
        61..=120 => 2.000,
        121.. => 1.980,
    }
}

/// A mean over trials and its 95% confidence interval's half-width.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub mean: f64,
    pub half_width: f64,
    pub n: usize,
}

/// The mean of `xs` and the half-width of its 95% confidence interval,
/// t(n-1) · s / √n with s the sample standard deviation; `None` for fewer
/// than two values (no spread to estimate) or a value that is not finite.
pub fn mean_ci(xs: &[f64]) -> Option<Estimate> {
    let n = xs.len();
    if n < 2 || xs.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    Some(Estimate {
        mean,
        half_width: t_975(n - 1) * (var / n as f64).sqrt(),
        n,
    })
}

/// The plain mean of `xs`; `None` when empty. For a figure that is not
/// sampled but set per trial (a thread's ideal share, which can follow its
/// own sleeping), shown beside the measured means.
pub fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// The median and the range of some trials' values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no values or one that is not a number.
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() || values.iter().any(|v| v.is_nan()) {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }

    /// `median (min–max)`, each scaled by `scale` with `decimals`, and ✗
    /// when the median misses its target (`meets` of the median).
    pub(crate) fn cell(
        &self,
        scale: f64,
        decimals: usize,
        unit: &str,
        meets: impl Fn(f64) -> bool,
    ) -> String {
        let f = |x: f64| format!("{:.*}", decimals, x * scale);
        format!(
            "{}{unit} ({}–{}){}",
            f(self.median),
            f(self.min),
            f(self.max),
            if meets(self.median) { "" } else { " ✗" }
        )
    }
}

/// An application's requests over some trials, as the canonical serving
/// experiment and a sweep give them: the median and range of the CPU its
/// threads used and of each latency percentile, the p99.9 only when every
/// trial completed [`P999_MIN`](crate::metrics::requests::P999_MIN)
/// requests, the longest latency of any trial, and how many trials kept
/// up. A trial that reported no requests (`None`) lacks every figure, and
/// a figure some trial lacks has no spread (nor a longest latency): no
/// figure stands for fewer trials than it says.
#[derive(Clone, Debug, PartialEq)]
pub struct Serving {
    pub trials: usize,
    /// How many reported requests.
    pub reported: usize,
    /// How many of those kept up ([`Served::kept_up`]).
    pub kept_up: usize,
    pub used_cores: Option<Spread>,
    pub p50_ms: Option<Spread>,
    pub p99_ms: Option<Spread>,
    pub p999_ms: Option<Spread>,
    pub max_ms: Option<f64>,
}

impl Serving {
    pub fn of(trials: &[Option<Served>]) -> Serving {
        let every = || trials.iter().copied().collect::<Option<Vec<Served>>>();
        let spread = |f: fn(&Served) -> f64| {
            every().and_then(|t| Spread::of(&t.iter().map(f).collect::<Vec<_>>()))
        };
        let p999 = every().filter(|t| t.iter().all(|s| s.p999_shown_ms().is_some()));
        Serving {
            trials: trials.len(),
            reported: trials.iter().flatten().count(),
            kept_up: trials.iter().flatten().filter(|s| s.kept_up()).count(),
            used_cores: spread(|s| s.used_cores),
            p50_ms: spread(|s| s.p50_ms),
            p99_ms: spread(|s| s.p99_ms),
            p999_ms: p999
                .and_then(|t| Spread::of(&t.iter().map(|s| s.p999_ms).collect::<Vec<_>>())),
            max_ms: spread(|s| s.max_ms).map(|s| s.max),
        }
    }

    /// Whether every trial kept up.
    pub fn all_kept_up(&self) -> bool {
        self.kept_up == self.trials
    }

    /// Whether some trial that reported requests did not keep up (a trial
    /// that reported none is another matter).
    pub fn some_fell_behind(&self) -> bool {
        self.kept_up < self.reported
    }
}

/// One job per trial: the scenario with `seed` set to its own seed plus k,
/// each checked before anything boots.
pub fn jobs(base: &RunOptions, trials: u32) -> Result<Vec<Job>, String> {
    let scenario = base
        .scenario
        .as_deref()
        .ok_or("trials= needs a scenario (scenario=<file>)")?;
    let seed = crate::scenario::load(scenario, base.cpus)?.seed;
    let name = base.name.clone().unwrap_or_else(|| stem(scenario));
    (0..trials as u64)
        .map(|k| {
            let s = seed.wrapping_add(k);
            let path = scenario_with(
                scenario,
                &[("seed".into(), s.to_string())],
                &format!("seed{s}"),
            )?;
            crate::scenario::load(&path, base.cpus)?;
            let mut opts = base.clone();
            opts.scenario = Some(path);
            opts.name = Some(format!("{name}-trial{k}"));
            Ok(Job {
                name: format!("{name}-trial{k}"),
                opts,
            })
        })
        .collect()
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map_or("trials".into(), |s| s.to_string_lossy().into_owned())
}

/// Thread `id` of application `a` in each trial that has all three of its
/// figures: `[ideal share, measured share, share error pp]`. The means of a
/// row are over these trials alone, so the ideal beside a share is the
/// mean of the same trials' ideals.
pub fn thread_trials<'a>(
    summaries: impl IntoIterator<Item = &'a Value>,
    a: usize,
    id: &Value,
) -> Vec<[f64; 3]> {
    summaries
        .into_iter()
        .filter_map(|s| {
            let t = s["apps"][a]["threads"]
                .as_array()?
                .iter()
                .find(|u| u["id"] == *id)?;
            let f = |field: &str| t[field].as_f64();
            Some([
                f("ideal_share")?,
                f("measured_share")?,
                f("share_error_pp")?,
            ])
        })
        .collect()
}

/// Every (application index, application, thread) of the first summary.
pub(crate) fn threads_of(first: &Value) -> Vec<(usize, &Value, &Value)> {
    first["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .flat_map(|(a, app)| {
            app["threads"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |t| (a, app, t))
        })
        .collect()
}

/// Per thread (in the first summary's order): the mean of its ideal share
/// over the trials, and its share and share error over the trials'
/// summaries, mean ± 95% CI half-width; `n` the trials averaged, the same
/// for every column of the row (those with all three figures,
/// [`thread_trials`]; [`left_out`] names the threads some trials lacked).
pub fn table(summaries: &[Value]) -> String {
    let mut out =
        String::from("app\tthread\tn\tideal mean\tshare mean\t± 95% CI\terror pp mean\t± 95% CI\n");
    let Some(first) = summaries.first() else {
        return out;
    };
    for (a, app, t) in threads_of(first) {
        let trials = thread_trials(summaries, a, &t["id"]);
        let column = |k: usize| -> Vec<f64> { trials.iter().map(|x| x[k]).collect() };
        let cell = |e: Option<Estimate>, digits: usize| {
            e.map_or("-\t-".to_string(), |e| {
                format!("{:.*}\t{:.*}", digits, e.mean, digits, e.half_width)
            })
        };
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{:.4}\t{}\t{}",
            app["name"].as_str().unwrap_or(""),
            t["name"].as_str().unwrap_or(""),
            trials.len(),
            mean(&column(0)).unwrap_or(f64::NAN),
            cell(mean_ci(&column(1)), 4),
            cell(mean_ci(&column(2)), 2),
        );
    }
    out
}

/// For each thread some trials lacked a figure of: which, and how many
/// trials its row of [`table`] averages instead of all of them.
pub fn left_out(summaries: &[Value]) -> Vec<String> {
    let Some(first) = summaries.first() else {
        return Vec::new();
    };
    threads_of(first)
        .into_iter()
        .filter_map(|(a, app, t)| {
            let kept = thread_trials(summaries, a, &t["id"]).len();
            (kept < summaries.len()).then(|| {
                format!(
                    "{}/{}: {} of {} trials lacked its ideal, share or error: the means are over the other {kept}",
                    app["name"].as_str().unwrap_or(""),
                    t["name"].as_str().unwrap_or(""),
                    summaries.len() - kept,
                    summaries.len(),
                )
            })
        })
        .collect()
}

/// Whether every trial gave every thread the same CPU time to the
/// nanosecond: then the seed changed nothing in these runs (an interval of
/// zero says so, not that the policy has no variance).
pub fn identical(summaries: &[Value]) -> bool {
    let cpu = |s: &Value| -> Vec<Value> {
        s["apps"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["threads"].as_array().cloned().unwrap_or_default())
            .map(|t| t["cpu_ns"].clone())
            .collect()
    };
    summaries.len() > 1 && summaries.windows(2).all(|w| cpu(&w[0]) == cpu(&w[1]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_spread_is_the_median_and_the_extremes() {
        let s = Spread::of(&[0.3, 0.1, 0.9, 0.2, 0.5]).unwrap();
        assert_eq!(
            s,
            Spread {
                median: 0.3,
                min: 0.1,
                max: 0.9
            }
        );
        let even = Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!((even.median, even.min, even.max), (2.5, 1.0, 4.0));
        assert!(Spread::of(&[]).is_none());
        assert!(Spread::of(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn a_cell_marks_a_median_that_misses() {
        let s = Spread::of(&[0.95, 0.97, 0.99]).unwrap();
        assert_eq!(s.cell(100.0, 1, "%", |m| m >= 0.97), "97.0% (95.0–99.0)");
        assert_eq!(s.cell(100.0, 1, "%", |m| m >= 0.98), "97.0% (95.0–99.0) ✗");
    }

    #[test]
    fn ci_of_one_to_five_is_t4_times_the_standard_error() {
        let e = mean_ci(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(e.mean, 3.0);
        // s = sqrt(2.5), t(4) = 2.776: 2.776 * sqrt(2.5 / 5) = 1.9629.
        assert!((e.half_width - 1.9629).abs() < 1e-3, "{e:?}");
        assert_eq!(e.n, 5);
    }

    #[test]
    fn identical_trials_have_no_spread_and_one_trial_no_interval() {
        let e = mean_ci(&[0.25; 4]).unwrap();
        assert_eq!((e.mean, e.half_width), (0.25, 0.0));
        assert_eq!(mean_ci(&[0.25]), None);
        assert_eq!(mean_ci(&[]), None);
        assert_eq!(mean_ci(&[0.1, f64::NAN]), None);
    }

    #[test]
    fn t_quantiles_fall_towards_the_normal_and_never_below_it() {
        let mut last = f64::INFINITY;
        for df in 1..500 {
            let t = t_975(df);
            assert!(t <= last && t >= 1.959964, "df {df}: {t}");
            last = t;
        }
        assert!((t_975(1) - 12.706).abs() < 1e-3 && (t_975(10) - 2.228).abs() < 1e-3);
    }

    #[test]
    fn ci_covers_the_true_mean_about_95_percent_of_the_time() {
        // Uniform(0,1) draws (mean 0.5) from a fixed LCG, 5 per trial.
        let mut x: u64 = 42;
        let mut draw = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let runs = 4000;
        let covered = (0..runs)
            .filter(|_| {
                let xs: Vec<f64> = (0..5).map(|_| draw()).collect();
                let e = mean_ci(&xs).unwrap();
                (e.mean - 0.5).abs() <= e.half_width
            })
            .count() as f64
            / runs as f64;
        assert!((0.93..=0.97).contains(&covered), "coverage {covered}");
    }

    #[test]
    fn table_gives_each_thread_its_mean_and_interval_over_the_trials() {
        let summary = |a: f64| {
            json!({"apps": [{"name": "pair", "threads": [
                {"id": 0, "name": "A", "cpu_ns": (a * 1e9) as u64, "ideal_share": 0.75, "measured_share": a, "share_error_pp": (a - 0.75) * 100.0},
                {"id": 1, "name": "B", "ideal_share": 0.25, "measured_share": 1.0 - a, "share_error_pp": (0.25 - (1.0 - a)) * -100.0},
            ]}]})
        };
        let t = table(&[summary(0.74), summary(0.75), summary(0.76)]);
        assert!(
            t.starts_with("app\tthread\tn\tideal mean\tshare mean\t"),
            "{t}"
        );
        assert!(!identical(&[summary(0.74), summary(0.75)]));
        let same = json!({"apps": [{"threads": [{"cpu_ns": 5}]}]});
        assert!(identical(&[same.clone(), same.clone()]));
        assert!(!identical(&[same]));
        let a = t.lines().find(|l| l.starts_with("pair\tA\t")).unwrap();
        let cols: Vec<&str> = a.split('\t').collect();
        assert_eq!(cols[2], "3");
        assert_eq!(cols[4], "0.7500");
        // s = 0.01, t(2) = 4.303: 4.303 * 0.01 / sqrt(3) = 0.0248.
        assert_eq!(cols[5], "0.0248");
        assert_eq!(cols[6], "0.00");
        assert!(
            t.lines()
                .any(|l| l.starts_with("pair\tB\t3\t0.2500\t0.2500\t0.0248")),
            "{t}"
        );
    }

    #[test]
    fn table_gives_the_mean_of_the_trials_ideals() {
        // A serving thread's ideal follows its sleeping, so differs from
        // trial to trial.
        let summary = |ideal: f64, share: f64| {
            json!({"apps": [{"name": "srv", "threads": [
                {"id": 0, "name": "S", "ideal_share": ideal, "measured_share": share,
                 "share_error_pp": (share - ideal) * 100.0},
            ]}]})
        };
        let t = table(&[summary(0.24525, 0.25), summary(0.2566, 0.26)]);
        let row = t.lines().find(|l| l.starts_with("srv\tS\t")).unwrap();
        let cols: Vec<&str> = row.split('\t').collect();
        assert_eq!(cols[2], "2");
        // (0.24525 + 0.2566) / 2 = 0.250925, not the first trial's 0.2453.
        assert_eq!(cols[3], "0.2509", "{t}");
        assert_eq!(cols[4], "0.2550");
    }

    /// A trial's requests: `p99` ms, `backlog` of 1,000 arrivals,
    /// `completed` in the percentiles.
    fn served(p99: f64, backlog: u64, completed: u64) -> Served {
        Served {
            used_cores: 0.5,
            arrived_per_s: 500.0,
            completed_per_s: 490.0,
            completed,
            backlog,
            arrived: 1000,
            p50_ms: 1.0,
            p99_ms: p99,
            p999_ms: p99 * 2.0,
            max_ms: p99 * 3.0,
        }
    }

    #[test]
    fn serving_figures_stand_for_every_trial_or_are_not_given() {
        let p999_min = crate::metrics::requests::P999_MIN;
        let three = [
            Some(served(4.0, 0, 9_000)),
            Some(served(9.0, 20, p999_min)),
            Some(served(5.0, 10, p999_min)),
        ];
        let s = Serving::of(&three);
        assert_eq!((s.trials, s.reported, s.kept_up), (3, 3, 2));
        assert!(!s.all_kept_up() && s.some_fell_behind());
        let p99 = s.p99_ms.unwrap();
        assert_eq!((p99.median, p99.min, p99.max), (5.0, 4.0, 9.0));
        assert_eq!(s.max_ms, Some(27.0));
        // One trial under 10,000 completed: no p99.9; all of them: one.
        assert_eq!(s.p999_ms, None);
        let mut all = three;
        all[0] = Some(served(4.0, 0, p999_min));
        assert_eq!(Serving::of(&all).p999_ms.map(|s| s.median), Some(10.0));
        // A trial that reported nothing counts as a trial and leaves every
        // figure without a spread, not a spread over the other two.
        let mut lacking = three;
        lacking[1] = None;
        let s = Serving::of(&lacking);
        assert_eq!((s.trials, s.reported, s.kept_up), (3, 2, 2));
        assert!(!s.some_fell_behind());
        assert_eq!(
            (s.used_cores, s.p50_ms, s.p99_ms, s.p999_ms, s.max_ms),
            (None, None, None, None, None)
        );
        // A trial that reported requests but completed none has no longest
        // latency: the others' is not the trials' longest.
        let mut none_done = three;
        none_done[1] = Some(Served {
            max_ms: f64::NAN,
            ..served(9.0, 20, 0)
        });
        assert_eq!(Serving::of(&none_done).max_ms, None);
    }

    #[test]
    fn the_ideal_and_the_share_are_averaged_over_the_same_trials() {
        let summary = |ideal: f64, share: Option<f64>| {
            let mut t = json!({"id": 0, "name": "A", "ideal_share": ideal});
            if let Some(share) = share {
                t["measured_share"] = json!(share);
                t["share_error_pp"] = json!((share - ideal) * 100.0);
            }
            json!({"apps": [{"name": "pair", "threads": [t]}]})
        };
        // The third trial has an ideal but no share: it is left out of both.
        let trials = [
            summary(0.70, Some(0.71)),
            summary(0.80, Some(0.79)),
            summary(0.90, None),
        ];
        let t = table(&trials);
        let row = t.lines().find(|l| l.starts_with("pair\tA\t")).unwrap();
        let cols: Vec<&str> = row.split('\t').collect();
        assert_eq!(cols[2], "2", "{t}");
        assert_eq!(cols[3], "0.7500", "the two trials' ideals, not 0.8: {t}");
        assert_eq!(cols[4], "0.7500", "{t}");
        assert_eq!(
            left_out(&trials),
            ["pair/A: 1 of 3 trials lacked its ideal, share or error: the means are over the other 2"]
        );
        assert!(left_out(&trials[..2]).is_empty());
    }
}
