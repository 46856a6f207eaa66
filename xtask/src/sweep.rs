//! `just sweep`: one run of a scenario per value of one field (or, with
//! `trials=N`, N runs per value with seeds `seed`, `seed + 1`, …), several
//! QEMUs at once, then every thread's share per value — with trials, its
//! mean and 95% confidence interval, and each request-serving
//! application's latencies as their median and range over the trials.

mod figures;

use std::path::{Path, PathBuf};

use crate::experiments::{run_all, scenario_job, scenario_with, Job};
use crate::metrics::requests::{Served, P999_MIN};
use crate::trials::{Serving, Spread};
use crate::{Accel, RunOutcome};

/// What to sweep.
pub struct Sweep<'a> {
    pub scenario: &'a Path,
    /// Dotted path of the field (`app.0.thread.0.tickets`).
    pub key: &'a str,
    /// Comma-separated values.
    pub values: &'a str,
    pub cpus: Option<u32>,
    pub accel: Accel,
    /// Each run's length (default: the scenario's `duration_ms`).
    pub run_ms: Option<u64>,
    /// Deterministic runs (`det=1`).
    pub det: bool,
    /// Runs per value, each with its own seed (1: the scenario's seed).
    pub trials: u32,
}

/// The scenario's own `cores`, if it sets them.
pub fn scenario_cores(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("cores")?.as_integer())
        .and_then(|c| u32::try_from(c).ok())
}

/// One job per value and trial, each scenario variant written and
/// validated (so a value the field cannot take is reported before anything
/// boots). Trial k of a value runs with the scenario's seed plus k, the
/// same seeds for every value.
pub fn jobs(s: &Sweep<'_>) -> Result<Vec<(String, Job)>, String> {
    if !s.scenario.is_file() {
        return Err(format!("{}: no such scenario file", s.scenario.display()));
    }
    let cpus = s.cpus.or(scenario_cores(s.scenario)).unwrap_or(4);
    let values: Vec<&str> = s
        .values
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Err(format!("no values to sweep in `{}`", s.values));
    }
    if s.trials == 0 {
        return Err("trials must be at least 1".into());
    }
    if s.trials > 1 && s.key == "seed" {
        return Err("trials= sets each run's seed: sweep another key, or run trials=1".into());
    }
    let seed = crate::scenario::load(s.scenario, cpus)?.seed;
    let mut out = Vec::new();
    for v in values {
        for k in 0..u64::from(s.trials) {
            let mut tag = format!("{}-{v}", s.key.replace('.', "_"));
            let mut overrides = vec![(s.key.to_string(), v.to_string())];
            if s.trials > 1 {
                let trial_seed = seed.wrapping_add(k);
                tag.push_str(&format!("-seed{trial_seed}"));
                overrides.push(("seed".into(), trial_seed.to_string()));
            }
            let path = scenario_with(s.scenario, &overrides, &tag)?;
            crate::scenario::load(&path, cpus).map_err(|e| format!("{} = {v}: {e}", s.key))?;
            let stem = path
                .file_stem()
                .map_or(String::new(), |s| s.to_string_lossy().into_owned());
            let mut job = scenario_job(&format!("sweep-{stem}"), path, cpus, s.accel);
            if s.run_ms.is_some() {
                job.opts.run_ms = s.run_ms;
            }
            job.opts.det = s.det;
            out.push((v.to_string(), job));
        }
    }
    Ok(out)
}

/// Per value (in sweep order) and thread, over the value's trials that
/// have all three figures (`trials` counts them): the mean
/// of the thread's ideal share (it can differ from trial to trial), and the
/// mean and 95% confidence interval of its share and of its share error, as
/// CSV rows `value,app,thread,ideal_share_mean,trials,share_mean,share_ci95,
/// share_error_pp_mean,share_error_pp_ci95`.
pub fn summary_csv(runs: &[(String, serde_json::Value)]) -> String {
    let mut out = String::from(
        "value,app,thread,ideal_share_mean,trials,share_mean,share_ci95,\
         share_error_pp_mean,share_error_pp_ci95\n",
    );
    for row in thread_rows(runs) {
        let pick = |k: usize| -> Vec<f64> { row.trials.iter().map(|x| x[k]).collect() };
        // Mean and interval; one value alone, no interval.
        let estimate = |xs: &[f64]| match crate::trials::mean_ci(xs) {
            Some(e) => (e.mean.to_string(), e.half_width.to_string()),
            None => (
                xs.first().map_or(String::new(), f64::to_string),
                String::new(),
            ),
        };
        let shares = pick(1);
        let (mean, ci) = estimate(&shares);
        let (error, error_ci) = estimate(&pick(2));
        out.push_str(&format!(
            "{},{},{},{},{},{mean},{ci},{error},{error_ci}\n",
            field(row.value),
            field(row.app),
            field(row.thread),
            crate::trials::mean(&pick(0)).unwrap_or(f64::NAN),
            shares.len(),
        ));
    }
    out
}

/// The distinct values of a sweep's runs, in sweep order.
pub(crate) fn values_of(runs: &[(String, serde_json::Value)]) -> Vec<&str> {
    let mut values: Vec<&str> = Vec::new();
    for (v, _) in runs {
        if !values.contains(&v.as_str()) {
            values.push(v);
        }
    }
    values
}

/// The values whose trials all gave every thread the same CPU time: the
/// seed changed nothing there, so their intervals of 0 are not measured
/// spreads.
pub(crate) fn unmoved_values(runs: &[(String, serde_json::Value)]) -> Vec<&str> {
    values_of(runs)
        .into_iter()
        .filter(|v| {
            let of_value: Vec<serde_json::Value> = runs
                .iter()
                .filter(|(w, _)| w == v)
                .map(|(_, s)| s.clone())
                .collect();
            crate::trials::identical(&of_value)
        })
        .collect()
}

/// One thread at one value of a sweep.
pub(crate) struct ThreadAtValue<'a> {
    pub value: &'a str,
    pub app: &'a str,
    pub thread: &'a str,
    /// `[ideal, share, share error]` of each of the value's trials that has
    /// all three, so that their means are over the same trials.
    pub trials: Vec<[f64; 3]>,
    /// How many trials the value ran.
    pub of: usize,
}

/// Per value (in sweep order) and thread (in the order of the value's
/// first run; matched by application and id within the value), its
/// trials: what the means table and the share figure are both made of.
pub(crate) fn thread_rows(runs: &[(String, serde_json::Value)]) -> Vec<ThreadAtValue<'_>> {
    let mut rows = Vec::new();
    for v in values_of(runs) {
        let of_value: Vec<&serde_json::Value> = runs
            .iter()
            .filter(|(w, _)| w == v)
            .map(|(_, s)| s)
            .collect();
        let Some(first) = of_value.first() else {
            continue;
        };
        for (a, app, t) in crate::trials::threads_of(first) {
            rows.push(ThreadAtValue {
                value: v,
                app: app["name"].as_str().unwrap_or(""),
                thread: t["name"].as_str().unwrap_or(""),
                trials: crate::trials::thread_trials(of_value.iter().copied(), a, &t["id"]),
                of: of_value.len(),
            });
        }
    }
    rows
}

/// The request figures of summary.json's `requests` (docs/metrics.md,
/// "Request latency") a sweep's CSV carries, in its column order: enough to
/// draw latency against offered or used load, as the serving experiment does.
pub(crate) const REQUEST_COLUMNS: [&str; 9] = [
    "rate_per_s",
    "offered_cores",
    "used_cores",
    "arrived",
    "completed",
    "backlog",
    "arrived_per_s",
    "completed_per_s",
    "latency",
];
/// The percentiles of `requests.latency`, after [`REQUEST_COLUMNS`].
pub(crate) const LATENCY_COLUMNS: [&str; 4] = ["p50_ns", "p99_ns", "p999_ns", "max_ns"];

/// Every request-serving application's figures per run, as CSV rows
/// `value,app,<REQUEST_COLUMNS without latency>,<LATENCY_COLUMNS>,run`;
/// `None` when no run served requests.
pub fn requests_csv(runs: &[(String, String, serde_json::Value)]) -> Option<String> {
    let columns = REQUEST_COLUMNS.iter().filter(|c| **c != "latency");
    let mut out = String::from("value,app");
    for c in columns.clone().chain(LATENCY_COLUMNS.iter()) {
        out.push(',');
        out.push_str(c);
    }
    out.push_str(",run\n");
    let cell = |v: &serde_json::Value| {
        if v.is_null() {
            String::new()
        } else {
            v.to_string()
        }
    };
    let mut any = false;
    for (value, run, summary) in runs {
        for app in summary["apps"].as_array().into_iter().flatten() {
            let r = &app["requests"];
            if r.is_null() {
                continue;
            }
            any = true;
            out.push_str(&field(value));
            out.push(',');
            out.push_str(&field(app["name"].as_str().unwrap_or("")));
            let cells = columns.clone().map(|c| &r[*c]);
            for v in cells.chain(LATENCY_COLUMNS.iter().map(|c| &r["latency"][*c])) {
                out.push(',');
                out.push_str(&cell(v));
            }
            out.push(',');
            out.push_str(&field(run));
            out.push('\n');
        }
    }
    any.then_some(out)
}

/// One request-serving application at one value of a sweep, over the
/// value's trials that ran.
#[derive(Clone, Debug, PartialEq)]
pub struct ServedTrials {
    pub value: String,
    pub app: String,
    /// Its figures over every trial of the value ([`Serving`]: a trial in
    /// which it reported no requests leaves its figures without a spread).
    pub serving: Serving,
}

/// Per value (in sweep order) and request-serving application (in the
/// order they first serve, matched by name), its request figures over the
/// value's trials, as the canonical serving experiment gives them
/// ([`Serving`]).
pub fn served_trials(runs: &[(String, serde_json::Value)]) -> Vec<ServedTrials> {
    let app_of = |summary: &'_ serde_json::Value, name: &str| -> Option<Served> {
        let apps = summary["apps"].as_array()?;
        Served::of(&apps.iter().find(|a| a["name"] == name)?["requests"])
    };
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for (v, summary) in runs {
        for app in summary["apps"].as_array().into_iter().flatten() {
            let name = app["name"].as_str().unwrap_or("");
            if !app["requests"].is_null() && !keys.contains(&(v.as_str(), name)) {
                keys.push((v, name));
            }
        }
    }
    keys.into_iter()
        .map(|(v, name)| {
            let trials: Vec<Option<Served>> = runs
                .iter()
                .filter(|(w, _)| w == v)
                .map(|(_, s)| app_of(s, name))
                .collect();
            ServedTrials {
                value: v.to_string(),
                app: name.to_string(),
                serving: Serving::of(&trials),
            }
        })
        .collect()
}

/// [`served_trials`] as CSV rows `value,app,trials,kept_up,
/// used_cores_median,p50_ms_{median,min,max},p99_ms_{…},p999_ms_{…},
/// max_ms` (a figure without a spread: empty cells); `None` when no
/// application served requests.
pub fn requests_trials_csv(rows: &[ServedTrials]) -> Option<String> {
    if rows.is_empty() {
        return None;
    }
    let mut out = String::from("value,app,trials,kept_up,used_cores_median");
    for p in ["p50", "p99", "p999"] {
        for s in ["median", "min", "max"] {
            out.push_str(&format!(",{p}_ms_{s}"));
        }
    }
    out.push_str(",max_ms\n");
    let num = |x: Option<f64>| x.map_or(String::new(), |x| x.to_string());
    let spread = |s: &Option<Spread>| match s {
        Some(s) => format!("{},{},{}", s.median, s.min, s.max),
        None => ",,".into(),
    };
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            field(&r.value),
            field(&r.app),
            r.serving.trials,
            r.serving.kept_up,
            num(r.serving.used_cores.map(|s| s.median)),
            spread(&r.serving.p50_ms),
            spread(&r.serving.p99_ms),
            spread(&r.serving.p999_ms),
            num(r.serving.max_ms),
        ));
    }
    Some(out)
}

/// [`served_trials`] as printed: each latency in ms as `median
/// (lowest–highest)`, marked † when some trial did not keep up (a
/// footnote then says why), `—` for a figure without a spread.
pub fn requests_trials_table(rows: &[ServedTrials]) -> String {
    let mut out =
        String::from("value\tapp\ttrials\tkept_up\tused_cores\tp50_ms\tp99_ms\tp999_ms\tmax_ms\n");
    for r in rows {
        let s = &r.serving;
        let mark = if s.some_fell_behind() { " †" } else { "" };
        let ms = |s: &Option<Spread>| {
            s.as_ref().map_or("—".into(), |s| {
                format!("{}{mark}", s.cell(1.0, 2, "", |_| true))
            })
        };
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            r.value,
            r.app,
            s.trials,
            s.kept_up,
            s.used_cores
                .map_or("—".into(), |c| format!("{:.2}", c.median)),
            ms(&s.p50_ms),
            ms(&s.p99_ms),
            ms(&s.p999_ms),
            s.max_ms.map_or("—".into(), |m| format!("{m:.2}")),
        ));
    }
    if rows.iter().any(|r| r.serving.some_fell_behind()) {
        out.push_str(
            "† some trial did not keep up (more than 1% of its arrivals still waiting at its \
             end): its percentiles leave those out and read low\n",
        );
    }
    if rows.iter().any(|r| r.serving.reported < r.serving.trials) {
        out.push_str(
            "— where some trial of the value reported no requests: no figure stands for fewer \
             trials than the value ran\n",
        );
    }
    out
}

/// What a sweep's runs gave: the tables built from the runs whose figures
/// stand, and the runs left out of them.
#[derive(Debug, Default)]
pub struct Tally {
    /// The share table as printed (tab-separated, with its header).
    pub table: String,
    /// The same rows as CSV, with each row's run.
    pub csv: String,
    /// Per run that counted: its value and summary.
    pub summaries: Vec<(String, serde_json::Value)>,
    /// Per run that counted: its value, run directory name and summary.
    pub served: Vec<(String, String, serde_json::Value)>,
    /// Where the runs' directories are (any run that wrote one, counted
    /// or not: the tables go there even when no run counted).
    pub runs_dir: Option<PathBuf>,
    /// How many runs there were.
    pub runs: usize,
    /// Per run left out: its name and how it ended.
    pub failed: Vec<String>,
}

impl Tally {
    /// `Err` naming the runs left out, when any run failed.
    pub fn verdict(&self) -> Result<(), String> {
        if self.failed.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} of the sweep's {} runs failed ({}); their rows are not in the tables",
                self.failed.len(),
                self.runs,
                self.failed.join("; ")
            ))
        }
    }
}

/// Writes `text` to `path` (`Some(path)`), or with none removes an older
/// sweep's file there (`None`).
fn write_or_remove(path: &Path, text: Option<String>) -> Result<Option<PathBuf>, String> {
    match text {
        Some(text) => {
            std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(Some(path.to_path_buf()))
        }
        None => match std::fs::remove_file(path) {
            Ok(()) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        },
    }
}

/// Sorts the sweep's results (value, job name, run result, in job order)
/// into the tables of the runs that count and the list of those that
/// failed: a run counts when it ended as `just run` ends well (process
/// code 0), as `trials=` also requires.
pub fn tally(results: Vec<(String, String, Result<RunOutcome, String>)>) -> Tally {
    let mut t = Tally {
        // The seed beside the value: trials of one value differ by it.
        table: "value\tseed\tapp\tthread\ttickets\tcpu_ns\tmeasured\tideal\n".into(),
        csv: "value,app,thread,tickets,cpu_ns,measured_share,ideal_share,run,seed\n".into(),
        runs: results.len(),
        ..Tally::default()
    };
    for (value, name, out) in results {
        if let Ok(out) = &out {
            t.runs_dir = t.runs_dir.or(out.run_dir.parent().map(Path::to_path_buf));
        }
        let out = match out {
            Ok(out) if out.process_code() == 0 => out,
            // A run that ended otherwise (QEMU failed, timed out, a check
            // failed, ...) wrote a summary all the same, with whatever
            // figures it had: none of them go into the tables.
            Ok(out) => {
                t.failed.push(format!("{name}: {}", out.exit_name));
                continue;
            }
            Err(e) => {
                t.failed.push(format!("{name}: {e}"));
                continue;
            }
        };
        t.summaries.push((value.clone(), out.summary.clone()));
        let run = out
            .run_dir
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        t.served
            .push((value.clone(), run.clone(), out.summary.clone()));
        let seed = out.summary["seed"]
            .as_u64()
            .map_or(String::new(), |s| s.to_string());
        for app in out.summary["apps"].as_array().into_iter().flatten() {
            for th in app["threads"].as_array().into_iter().flatten() {
                let (app, thread) = (
                    app["name"].as_str().unwrap_or(""),
                    th["name"].as_str().unwrap_or(""),
                );
                let measured = th["measured_share"].as_f64().unwrap_or(f64::NAN);
                let ideal = th["ideal_share"].as_f64().unwrap_or(f64::NAN);
                t.table.push_str(&format!(
                    "{value}\t{seed}\t{app}\t{thread}\t{}\t{}\t{measured:.4}\t{ideal:.4}\n",
                    th["tickets"], th["cpu_ns"],
                ));
                t.csv.push_str(&format!(
                    "{},{},{},{},{},{measured},{ideal},{},{seed}\n",
                    field(&value),
                    field(app),
                    field(thread),
                    th["tickets"],
                    th["cpu_ns"],
                    field(&run)
                ));
            }
        }
    }
    t
}

/// Runs every job, `parallel` at once, prints a table of shares and
/// writes it as CSV beside the runs (`<runs>/sweep-<scenario>-<key>.csv`),
/// with the runs' request figures (`….requests.csv`) and, with trials,
/// the means (`….means.csv`) and the request latencies over the trials
/// (`….requests-trials.csv`); `Err` when any run failed.
pub fn run(s: &Sweep<'_>, jobs: Vec<(String, Job)>, parallel: usize) -> Result<(), String> {
    let (values, jobs): (Vec<String>, Vec<Job>) = jobs.into_iter().unzip();
    let results = values
        .into_iter()
        .zip(run_all(jobs, parallel))
        .map(|(value, (job, out))| (value, job.name, out))
        .collect();
    let tally = tally(results);
    print!("{}", tally.table);
    for f in &tally.failed {
        eprintln!("{f}");
    }
    let summaries = &tally.summaries;
    // Where the runs went; with none written (every run failed before
    // making its directory), where they would have gone: the tables
    // go there all the same, over an older sweep's.
    let dir = tally
        .runs_dir
        .clone()
        .unwrap_or_else(|| crate::build::workspace_root().join("results/runs"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let stem = s
        .scenario
        .file_stem()
        .map_or("scenario".into(), |n| n.to_string_lossy().into_owned());
    let path = dir.join(format!("sweep-{stem}-{}.csv", s.key.replace('.', "_")));
    std::fs::write(&path, &tally.csv).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("== table in {}", path.display());
    // Each other table is written when this sweep has one, else an
    // older sweep's copy goes: a rerun leaves no stale file behind.
    let requests = requests_csv(&tally.served);
    if let Some(requests) = &requests {
        println!(
            "\nrequest latency per run (ns; docs/metrics.md):\n{}",
            requests.replace(',', "\t")
        );
    }
    let written = write_or_remove(&path.with_extension("requests.csv"), requests)?;
    if let Some(p) = written {
        eprintln!("== request latencies in {}", p.display());
    }
    let (mut means, mut latencies) = (None, None);
    if s.trials > 1 {
        let m = summary_csv(summaries);
        println!(
            "\nper value, over its trials that ran (column `trials`):\n{}",
            m.replace(',', "\t")
        );
        means = Some(m);
        for v in unmoved_values(summaries) {
            eprintln!(
                "warning: {} = {v}: every trial gave every thread the same CPU time \
                 (the seed changed nothing in these runs): its interval of 0 is not a \
                 measured spread",
                s.key
            );
        }
        let served = served_trials(summaries);
        latencies = requests_trials_csv(&served);
        if latencies.is_some() {
            println!(
                "\nrequest latency per value over its trials that ran (ms: median \
                 (lowest–highest); p99.9 only where every trial completed {P999_MIN}; max: \
                 the longest of any trial):\n{}",
                requests_trials_table(&served)
            );
        }
    }
    if let Some(p) = write_or_remove(&path.with_extension("means.csv"), means)? {
        eprintln!("== means and 95% intervals in {}", p.display());
    }
    let latencies_path = path.with_extension("requests-trials.csv");
    if let Some(p) = write_or_remove(&latencies_path, latencies)? {
        eprintln!("== request latencies over the trials in {}", p.display());
    }
    for stale in ["shares.png", "shares.svg", "p99.png", "p99.svg"] {
        let _ = std::fs::remove_file(path.with_extension(stale));
    }
    let asked = figures::Asked {
        trials: s.trials as usize,
        failed: tally.failed.len(),
    };
    let (figures, notes) = figures::draw(&path, s.key, asked, summaries)?;
    for note in notes {
        eprintln!("note: {note}");
    }
    for f in figures {
        eprintln!("== figure {} (and its .svg)", f.display());
    }
    tally.verdict()
}

/// A CSV field, quoted when it holds a comma, quote or newline (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn trials_give_each_value_its_seeds_and_the_means_their_intervals() {
        let scenario = crate::build::workspace_root().join("scenarios/lottery-2to1.toml");
        let sweep = super::Sweep {
            scenario: &scenario,
            key: "app.0.thread.0.tickets",
            values: "100, 300",
            cpus: Some(1),
            accel: crate::Accel::Tcg,
            run_ms: None,
            det: true,
            trials: 3,
        };
        let jobs = super::jobs(&sweep).unwrap();
        assert_eq!(jobs.len(), 6);
        let base = crate::scenario::load(&scenario, 1).unwrap().seed;
        let seeds: Vec<u64> = jobs
            .iter()
            .map(|(_, j)| {
                crate::scenario::load(j.opts.scenario.as_ref().unwrap(), 1)
                    .unwrap()
                    .seed
            })
            .collect();
        assert_eq!(seeds, [0, 1, 2, 0, 1, 2].map(|k| base + k));
        assert!(jobs.iter().all(|(_, j)| j.opts.det));
        assert!(super::jobs(&super::Sweep { trials: 0, ..sweep }).is_err());
        let seed_swept = super::Sweep {
            key: "seed",
            values: "1,2",
            ..sweep
        };
        assert!(super::jobs(&seed_swept).unwrap_err().contains("seed"));

        // A thread's ideal may differ from trial to trial (one whose ideal
        // follows its own sleeping): the row gives the trials' mean.
        let run = |share: f64, ideal: f64| {
            json!({"apps": [{"name": "pair", "threads": [
                {"id": 0, "name": "A", "ideal_share": ideal, "measured_share": share,
                 "share_error_pp": (share - ideal) * 100.0},
            ]}]})
        };
        let csv = super::summary_csv(&[
            ("100".into(), run(0.74, 0.70)),
            ("100".into(), run(0.75, 0.75)),
            ("100".into(), run(0.76, 0.80)),
            ("300".into(), run(0.9, 0.75)),
        ]);
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows.len(), 3, "{csv}");
        assert_eq!(
            rows[0],
            "value,app,thread,ideal_share_mean,trials,share_mean,share_ci95,\
             share_error_pp_mean,share_error_pp_ci95"
        );
        let cols: Vec<&str> = rows[1].split(',').collect();
        let num = |i: usize| cols[i].parse::<f64>().unwrap();
        assert_eq!(&cols[..3], ["100", "pair", "A"]);
        assert!((num(3) - 0.75).abs() < 1e-12, "{csv}");
        assert_eq!(cols[4], "3");
        assert!((num(5) - 0.75).abs() < 1e-12);
        // s = 0.01, t(2) = 4.303: 4.303 * 0.01 / sqrt(3) = 0.0248.
        assert!((num(6) - 0.0248).abs() < 1e-4, "{csv}");
        // Errors 4, 0, -4 pp: mean 0, s = 4, 4.303 * 4 / sqrt(3) = 9.937.
        assert!(num(7).abs() < 1e-9, "{csv}");
        assert!((num(8) - 9.937).abs() < 1e-2, "{csv}");
        // One trial: its share and error, no intervals.
        let cols: Vec<&str> = rows[2].split(',').collect();
        assert_eq!(&cols[..7], ["300", "pair", "A", "0.75", "1", "0.9", ""]);
        assert!(
            (cols[7].parse::<f64>().unwrap() - 15.0).abs() < 1e-9,
            "{csv}"
        );
        assert_eq!(cols[8], "");
    }

    #[test]
    fn a_values_ideal_and_share_means_are_over_the_same_trials() {
        let run = |ideal: f64, share: Option<f64>| {
            let mut t = json!({"id": 0, "name": "A", "ideal_share": ideal});
            if let Some(share) = share {
                t["measured_share"] = json!(share);
                t["share_error_pp"] = json!((share - ideal) * 100.0);
            }
            json!({"apps": [{"name": "pair", "threads": [t]}]})
        };
        // The third trial has an ideal but no share: left out of both.
        let csv = super::summary_csv(&[
            ("100".into(), run(0.70, Some(0.71))),
            ("100".into(), run(0.80, Some(0.79))),
            ("100".into(), run(0.90, None)),
        ]);
        let cols: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
        assert_eq!(cols[4], "2", "{csv}");
        let ideal: f64 = cols[3].parse().unwrap();
        assert!((ideal - 0.75).abs() < 1e-12, "not 0.8: {csv}");
    }

    #[test]
    fn each_run_row_names_its_seed() {
        let ok = crate::qemu::End::Kernel(abi::ExitCode::Success);
        let run = |seed: u64| {
            let summary = json!({"seed": seed, "apps": [{"name": "app", "threads": [
                {"id": 0, "name": "t", "tickets": 1, "cpu_ns": 7,
                 "ideal_share": 1.0, "measured_share": 1.0},
            ]}]});
            outcome(ok, &format!("r{seed}"), summary)
        };
        let t = super::tally(vec![
            ("100".into(), "r41".into(), run(41)),
            ("100".into(), "r42".into(), run(42)),
        ]);
        let header: Vec<&str> = t.table.lines().next().unwrap().split('\t').collect();
        assert_eq!(header[..2], ["value", "seed"], "{}", t.table);
        let seeds: Vec<&str> = t
            .table
            .lines()
            .skip(1)
            .map(|l| l.split('\t').nth(1).unwrap())
            .collect();
        assert_eq!(seeds, ["41", "42"], "{}", t.table);
        // The CSV says it too, last (its other columns keep their places).
        assert!(t.csv.lines().next().unwrap().ends_with(",run,seed"));
        assert!(
            t.csv.lines().nth(2).unwrap().ends_with(",r42,42"),
            "{}",
            t.csv
        );
    }

    /// A run that ended `end`, in `runs/<dir>`, with `summary`.
    fn outcome(
        end: crate::qemu::End,
        dir: &str,
        summary: serde_json::Value,
    ) -> Result<crate::RunOutcome, String> {
        Ok(crate::RunOutcome {
            end,
            exit: end.exit_code(),
            exit_name: end.name().into(),
            records: Default::default(),
            console: String::new(),
            run_dir: format!("runs/{dir}").into(),
            summary_path: format!("runs/{dir}/summary.json").into(),
            summary,
        })
    }

    #[test]
    fn a_run_that_did_not_end_well_is_left_out_and_fails_the_sweep() {
        use crate::qemu::End;
        let out = |end: End, dir: &str, cpu_ns: u64| {
            let summary = json!({"apps": [{"name": "app", "threads": [
                {"id": 0, "name": "t", "tickets": 1, "cpu_ns": cpu_ns,
                 "ideal_share": 0.5, "measured_share": if cpu_ns > 0 { 0.5 } else { 0.0 }},
            ]}]});
            outcome(end, dir, summary)
        };
        let ok = End::Kernel(abi::ExitCode::Success);
        let t = super::tally(vec![
            ("rr".into(), "sweep-rr".into(), out(ok, "sweep-rr", 7)),
            (
                "eevdf".into(),
                "sweep-eevdf".into(),
                out(End::QemuError, "sweep-eevdf", 0),
            ),
            (
                "lotto".into(),
                "sweep-lotto".into(),
                out(End::Timeout, "sweep-lotto", 0),
            ),
            (
                "stride".into(),
                "sweep-stride".into(),
                Err("no kernel".into()),
            ),
        ]);
        // Only the run that ended well has rows.
        assert_eq!(t.csv.lines().count(), 2, "{}", t.csv);
        assert!(
            t.csv.lines().nth(1).unwrap().starts_with("rr,"),
            "{}",
            t.csv
        );
        assert_eq!(t.table.lines().count(), 2, "{}", t.table);
        assert_eq!(t.summaries.len(), 1);
        assert_eq!(t.served.len(), 1);
        assert_eq!(t.runs_dir, Some("runs".into()));
        // Each failure is named with how it ended, and the sweep fails.
        assert_eq!(
            t.failed,
            [
                "sweep-eevdf: qemu_error",
                "sweep-lotto: timeout",
                "sweep-stride: no kernel"
            ]
        );
        let e = t.verdict().unwrap_err();
        assert!(e.starts_with("3 of the sweep's 4 runs failed"), "{e}");
        assert!(e.contains("sweep-eevdf: qemu_error"), "{e}");

        // With every run failed, the tables still have a directory (they
        // are written header-only there, over an older sweep's).
        let none_counted = super::tally(vec![(
            "eevdf".into(),
            "sweep-eevdf".into(),
            out(End::QemuError, "sweep-eevdf", 0),
        )]);
        assert_eq!(none_counted.runs_dir, Some("runs".into()));
        assert_eq!(none_counted.csv.lines().count(), 1);

        let all_well = super::tally(vec![("rr".into(), "r".into(), out(ok, "r", 7))]);
        assert!(all_well.failed.is_empty());
        assert_eq!(all_well.verdict(), Ok(()));
    }

    #[test]
    fn served_requests_get_a_table_and_runs_without_none() {
        let with = json!({"apps": [
            {"name": "batch", "requests": null},
            {"name": "srv", "requests": {"rate_per_s": 500, "offered_cores": 0.1, "used_cores": 0.12,
             "arrived": 40, "completed": 38, "backlog": 2, "arrived_per_s": 500.5, "completed_per_s": 475.0,
             "latency": {"count": 38, "p50_ns": 900, "p99_ns": 5000, "p999_ns": 5000, "max_ns": 5100}}}
        ]});
        let csv = super::requests_csv(&[("500".into(), "r1".into(), with)]).unwrap();
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows.len(), 2, "{csv}");
        assert_eq!(
            rows[0],
            "value,app,rate_per_s,offered_cores,used_cores,arrived,completed,backlog,arrived_per_s,\
             completed_per_s,p50_ns,p99_ns,p999_ns,max_ns,run"
        );
        assert_eq!(
            rows[1],
            "500,srv,500,0.1,0.12,40,38,2,500.5,475.0,900,5000,5000,5100,r1"
        );

        let without = json!({"apps": [{"name": "batch", "requests": null}]});
        assert_eq!(
            super::requests_csv(&[("1".into(), "r".into(), without)]),
            None
        );
    }

    /// A served run's summary: `srv` serves requests (its latencies in µs),
    /// `batch` none.
    fn served(
        used: f64,
        arrived: u64,
        backlog: u64,
        p50_us: u64,
        p99_us: u64,
        p999_us: u64,
        max_us: u64,
    ) -> serde_json::Value {
        let completed = arrived - backlog;
        json!({"apps": [
            {"name": "batch", "requests": null, "threads": []},
            {"name": "srv", "threads": [], "requests": {
                "used_cores": used, "arrived": arrived, "completed": completed, "backlog": backlog,
                "latency": {"count": completed, "p50_ns": p50_us * 1000, "p99_ns": p99_us * 1000,
                            "p999_ns": p999_us * 1000, "max_ns": max_us * 1000}}}
        ]})
    }

    /// Three trials of two values, through `tally` (a fourth run that
    /// failed counts for nothing): at 100 one trial left 2% of its
    /// arrivals waiting; at 300 one trial completed 10,000 requests and the
    /// others fewer, so no p99.9, which appears once all three have.
    #[test]
    fn trials_give_each_server_its_latencies_median_and_range() {
        use crate::qemu::End;
        let out = |end: End, summary: serde_json::Value| outcome(end, "r", summary);
        let ok = End::Kernel(abi::ExitCode::Success);
        let run = |v: &str, s| (v.to_string(), format!("sweep-{v}"), out(ok, s));
        let t = super::tally(vec![
            run("100", served(0.20, 1000, 0, 1000, 4000, 6000, 7000)),
            run("100", served(0.22, 1000, 10, 1200, 6000, 8000, 9000)),
            run("100", served(0.25, 1000, 20, 800, 5000, 7000, 12000)),
            run("300", served(0.61, 10_000, 0, 2000, 10_000, 15_000, 20_000)),
            run("300", served(0.60, 9000, 0, 2500, 11_000, 14_000, 18_000)),
            run("300", served(0.62, 9500, 0, 1500, 9000, 16_000, 17_000)),
            (
                "300".into(),
                "sweep-300-late".into(),
                out(End::Timeout, served(0.9, 10, 9, 1, 1, 1, 999_000)),
            ),
        ]);
        assert_eq!(t.failed.len(), 1);
        let rows = super::served_trials(&t.summaries);
        let csv = super::requests_trials_csv(&rows).unwrap();
        assert_eq!(
            csv,
            "value,app,trials,kept_up,used_cores_median,\
             p50_ms_median,p50_ms_min,p50_ms_max,p99_ms_median,p99_ms_min,p99_ms_max,\
             p999_ms_median,p999_ms_min,p999_ms_max,max_ms\n\
             100,srv,3,2,0.22,1,0.8,1.2,5,4,6,,,,12\n\
             300,srv,3,3,0.61,2,1.5,2.5,10,9,11,,,,20\n"
        );
        let table = super::requests_trials_table(&rows);
        assert_eq!(
            table,
            "value\tapp\ttrials\tkept_up\tused_cores\tp50_ms\tp99_ms\tp999_ms\tmax_ms\n\
             100\tsrv\t3\t2\t0.22\t1.00 (0.80–1.20) †\t5.00 (4.00–6.00) †\t—\t12.00\n\
             300\tsrv\t3\t3\t0.61\t2.00 (1.50–2.50)\t10.00 (9.00–11.00)\t—\t20.00\n\
             † some trial did not keep up (more than 1% of its arrivals still waiting at its end): \
             its percentiles leave those out and read low\n"
        );

        // Every trial at 300 with 10,000 completed: its p99.9 too.
        let all = [
            served(0.61, 10_000, 0, 2000, 10_000, 15_000, 20_000),
            served(0.60, 10_000, 0, 2500, 11_000, 14_000, 18_000),
            served(0.62, 10_100, 100, 1500, 9000, 16_000, 17_000),
        ];
        let runs: Vec<_> = all.into_iter().map(|s| ("300".to_string(), s)).collect();
        let rows = super::served_trials(&runs);
        let csv = super::requests_trials_csv(&rows).unwrap();
        assert_eq!(
            csv.lines().nth(1),
            Some("300,srv,3,3,0.61,2,1.5,2.5,10,9,11,15,14,16,20")
        );
        assert!(
            super::requests_trials_table(&rows).ends_with("\t15.00 (14.00–16.00)\t20.00\n"),
            "{}",
            super::requests_trials_table(&rows)
        );

        // A trial in which the server reported nothing is one of the
        // value's trials, and leaves its figures without a spread.
        let silent = json!({"apps": [{"name": "srv", "requests": null}]});
        let runs = [
            (
                "5".to_string(),
                served(0.2, 1000, 0, 1000, 4000, 6000, 7000),
            ),
            ("5".to_string(), silent),
        ];
        let rows = super::served_trials(&runs);
        assert_eq!(
            super::requests_trials_csv(&rows).unwrap().lines().nth(1),
            Some("5,srv,2,1,,,,,,,,,,,")
        );
        // Not a trial that did not keep up: one that reported nothing.
        assert_eq!(
            super::requests_trials_table(&rows),
            "value\tapp\ttrials\tkept_up\tused_cores\tp50_ms\tp99_ms\tp999_ms\tmax_ms\n\
             5\tsrv\t2\t1\t—\t—\t—\t—\t—\n\
             — where some trial of the value reported no requests: no figure stands for fewer \
             trials than the value ran\n"
        );

        // No application serving requests: no such file.
        let none = json!({"apps": [{"name": "batch", "requests": null}]});
        let rows = super::served_trials(&[("1".into(), none.clone()), ("1".into(), none)]);
        assert!(rows.is_empty());
        assert_eq!(super::requests_trials_csv(&rows), None);
    }

    #[test]
    fn csv_fields_are_quoted_only_when_they_must_be() {
        assert_eq!(super::field("lotto"), "lotto");
        assert_eq!(super::field("a,b"), "\"a,b\"");
        assert_eq!(super::field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn a_table_this_sweep_does_not_have_replaces_no_older_one() {
        let dir = std::env::temp_dir().join(format!("exo-sweep-tables-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sweep-x-key.means.csv");
        assert_eq!(
            super::write_or_remove(&path, Some("a,b\n".into())).unwrap(),
            Some(path.clone())
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b\n");
        // A rerun without trials: the older means go.
        assert_eq!(super::write_or_remove(&path, None).unwrap(), None);
        assert!(!path.exists());
        assert_eq!(super::write_or_remove(&path, None).unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
