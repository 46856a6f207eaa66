//! `just sweep`: one run of a scenario per value of one field (or, with
//! `trials=N`, N runs per value with seeds `seed`, `seed + 1`, …), several
//! QEMUs at once, then every thread's share per value — with trials, its
//! mean and 95% confidence interval.

use std::path::Path;

use crate::experiments::{run_all, scenario_job, scenario_with, Job};
use crate::Accel;

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

/// Per value (in sweep order) and thread: the share's mean over the value's
/// trials and its 95% confidence interval, as CSV rows
/// `value,app,thread,ideal_share,trials,share_mean,share_ci95`.
pub fn summary_csv(runs: &[(String, serde_json::Value)]) -> String {
    let mut out = String::from("value,app,thread,ideal_share,trials,share_mean,share_ci95\n");
    let mut values: Vec<&str> = Vec::new();
    for (v, _) in runs {
        if !values.contains(&v.as_str()) {
            values.push(v);
        }
    }
    for v in values {
        let of_value: Vec<&serde_json::Value> = runs
            .iter()
            .filter(|(w, _)| w == v)
            .map(|(_, s)| s)
            .collect();
        let Some(first) = of_value.first() else {
            continue;
        };
        for (a, app) in first["apps"].as_array().into_iter().flatten().enumerate() {
            for t in app["threads"].as_array().into_iter().flatten() {
                let shares: Vec<f64> = of_value
                    .iter()
                    .filter_map(|s| {
                        s["apps"][a]["threads"]
                            .as_array()?
                            .iter()
                            .find(|u| u["id"] == t["id"])?["measured_share"]
                            .as_f64()
                    })
                    .collect();
                let (mean, ci) = match crate::trials::mean_ci(&shares) {
                    Some(e) => (e.mean.to_string(), e.half_width.to_string()),
                    None => (
                        shares.first().map_or(String::new(), f64::to_string),
                        String::new(),
                    ),
                };
                out.push_str(&format!(
                    "{},{},{},{},{},{mean},{ci}\n",
                    field(v),
                    field(app["name"].as_str().unwrap_or("")),
                    field(t["name"].as_str().unwrap_or("")),
                    t["ideal_share"].as_f64().unwrap_or(f64::NAN),
                    shares.len(),
                ));
            }
        }
    }
    out
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

/// Runs every job, `parallel` at once, prints a table of shares and
/// writes it as CSV beside the runs (`<runs>/sweep-<scenario>-<key>.csv`);
/// `Err` when any run failed.
pub fn run(s: &Sweep<'_>, jobs: Vec<(String, Job)>, parallel: usize) -> Result<(), String> {
    let (values, jobs): (Vec<String>, Vec<Job>) = jobs.into_iter().unzip();
    let mut failed = 0;
    let mut csv = String::from("value,app,thread,tickets,cpu_ns,measured_share,ideal_share,run\n");
    let mut runs_dir = None;
    let mut summaries = Vec::new();
    let mut served = Vec::new();
    println!("value\tapp\tthread\ttickets\tcpu_ns\tmeasured\tideal");
    for (value, (job, out)) in values.iter().zip(run_all(jobs, parallel)) {
        match out {
            Ok(out) => {
                summaries.push((value.clone(), out.summary.clone()));
                let run = out
                    .run_dir
                    .file_name()
                    .map_or(String::new(), |n| n.to_string_lossy().into_owned());
                runs_dir = runs_dir.or(out.run_dir.parent().map(Path::to_path_buf));
                served.push((value.clone(), run.clone(), out.summary.clone()));
                for app in out.summary["apps"].as_array().into_iter().flatten() {
                    for t in app["threads"].as_array().into_iter().flatten() {
                        let (name, thread) = (
                            app["name"].as_str().unwrap_or(""),
                            t["name"].as_str().unwrap_or(""),
                        );
                        let measured = t["measured_share"].as_f64().unwrap_or(f64::NAN);
                        let ideal = t["ideal_share"].as_f64().unwrap_or(f64::NAN);
                        println!(
                            "{value}\t{name}\t{thread}\t{}\t{}\t{measured:.4}\t{ideal:.4}",
                            t["tickets"], t["cpu_ns"],
                        );
                        csv.push_str(&format!(
                            "{},{},{},{},{},{measured},{ideal},{}\n",
                            field(value),
                            field(name),
                            field(thread),
                            t["tickets"],
                            t["cpu_ns"],
                            field(&run)
                        ));
                    }
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e}", job.name);
            }
        }
    }
    if let Some(dir) = runs_dir {
        let stem = s
            .scenario
            .file_stem()
            .map_or("scenario".into(), |n| n.to_string_lossy().into_owned());
        let path = dir.join(format!("sweep-{stem}-{}.csv", s.key.replace('.', "_")));
        std::fs::write(&path, csv).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("== table in {}", path.display());
        if let Some(requests) = requests_csv(&served) {
            println!(
                "\nrequest latency per run (ns; docs/metrics.md):\n{}",
                requests.replace(',', "\t")
            );
            let path = path.with_extension("requests.csv");
            std::fs::write(&path, requests).map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!("== request latencies in {}", path.display());
        }
        if s.trials > 1 {
            let means = summary_csv(&summaries);
            println!(
                "\nper value, over its trials that ran (column `trials`):\n{}",
                means.replace(',', "\t")
            );
            let mut seen: Vec<&str> = Vec::new();
            for v in summaries.iter().map(|(v, _)| v.as_str()) {
                if seen.contains(&v) {
                    continue;
                }
                seen.push(v);
                let of_value: Vec<serde_json::Value> = summaries
                    .iter()
                    .filter(|(w, _)| w == v)
                    .map(|(_, s)| s.clone())
                    .collect();
                if crate::trials::identical(&of_value) {
                    eprintln!(
                        "warning: {} = {v}: every trial gave every thread the same CPU time \
                         (the seed changed nothing in these runs): its interval of 0 is not a \
                         measured spread",
                        s.key
                    );
                }
            }
            let path = path.with_extension("means.csv");
            std::fs::write(&path, means).map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!("== means and 95% intervals in {}", path.display());
        }
    }
    if failed > 0 {
        Err(format!("{failed} of the sweep's runs failed"))
    } else {
        Ok(())
    }
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

        let run = |share: f64| {
            json!({"apps": [{"name": "pair", "threads": [
                {"id": 0, "name": "A", "ideal_share": 0.75, "measured_share": share},
            ]}]})
        };
        let csv = super::summary_csv(&[
            ("100".into(), run(0.74)),
            ("100".into(), run(0.75)),
            ("100".into(), run(0.76)),
            ("300".into(), run(0.9)),
        ]);
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows.len(), 3, "{csv}");
        let cols: Vec<&str> = rows[1].split(',').collect();
        assert_eq!(&cols[..5], ["100", "pair", "A", "0.75", "3"]);
        assert!((cols[5].parse::<f64>().unwrap() - 0.75).abs() < 1e-12);
        // s = 0.01, t(2) = 4.303: 4.303 * 0.01 / sqrt(3) = 0.0248.
        assert!(
            (cols[6].parse::<f64>().unwrap() - 0.0248).abs() < 1e-4,
            "{csv}"
        );
        // One trial: its share, no interval.
        assert_eq!(rows[2], "300,pair,A,0.75,1,0.9,");
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

    #[test]
    fn csv_fields_are_quoted_only_when_they_must_be() {
        assert_eq!(super::field("lotto"), "lotto");
        assert_eq!(super::field("a,b"), "\"a,b\"");
        assert_eq!(super::field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
