//! Tail latency against load (issue 17; what Shinjuku and Skyloft
//! evaluate): a request-serving application beside a CPU-bound batch one
//! (`scenarios/server-batch.toml`, 2 cores, one slot each per core, so the
//! server's share is one core), both under the scheduler compared, the
//! server's offered load from 10% to 90% of its share. Deterministic runs;
//! the latencies are the application's own (docs/metrics.md, "Request
//! latency").

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::experiments::{scenario_job, scenario_with, Job};
use crate::{Accel, RunOutcome};

/// The schedulers compared: every registered policy, in the registry's
/// order.
pub fn schedulers() -> impl Iterator<Item = &'static str> + Clone {
    sched_registry::names()
}
/// Offered load, as a fraction of the one core the server's slots give it.
pub const LOADS: [f64; 5] = [0.1, 0.3, 0.5, 0.7, 0.9];
/// Each run's length.
const RUN_MS: u64 = 2000;
/// The server's share of the machine, in cores (its slots: one of two on
/// each of 2 cores).
const SERVER_CORES: f64 = 1.0;
/// The scenario's mean service demand (`service_us`).
const MEAN_SERVICE_US: f64 = 200.0;

/// The request rate that offers `load` of the server's share.
pub fn rate_for(load: f64) -> u64 {
    (load * SERVER_CORES * 1e6 / MEAN_SERVICE_US).round() as u64
}

pub fn job_name(sched: &str, load: f64) -> String {
    format!("canon-serving-{sched}-{:.0}", load * 100.0)
}

/// One deterministic run per scheduler and load.
pub fn jobs(accel: Accel, scenario: &dyn Fn(&str) -> PathBuf) -> Result<Vec<Job>, String> {
    let mut jobs = Vec::new();
    for sched in schedulers() {
        for load in LOADS {
            let over = [
                ("app.0.scheduler".to_string(), sched.to_string()),
                ("app.1.scheduler".into(), sched.into()),
                (
                    "app.0.requests.rate_per_s".into(),
                    rate_for(load).to_string(),
                ),
                ("duration_ms".into(), RUN_MS.to_string()),
            ];
            let tag = format!("serving-{sched}-{:.0}", load * 100.0);
            let path = scenario_with(&scenario("server-batch"), &over, &tag)?;
            jobs.push(scenario_job(&job_name(sched, load), path, 2, accel));
        }
    }
    Ok(jobs)
}

/// One run's row: the server's `requests` figures from its summary.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub load: f64,
    /// The server threads' CPU over the run, in cores (of its one).
    pub used_cores: f64,
    pub arrived_per_s: f64,
    pub completed_per_s: f64,
    pub completed: u64,
    pub backlog: u64,
    pub arrived: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// The server's figures in a run's `summary.json`.
pub fn row(load: f64, summary: &Value) -> Result<Row, String> {
    let r = summary["apps"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == "server"))
        .map(|a| &a["requests"])
        .filter(|r| !r.is_null())
        .ok_or("no server application with requests in the summary")?;
    let ms = |v: &Value| v.as_f64().map_or(f64::NAN, |ns| ns / 1e6);
    let lat = &r["latency"];
    if lat["count"].as_u64().unwrap_or(0) == 0 {
        return Err("the server completed no request".into());
    }
    Ok(Row {
        load,
        used_cores: r["used_cores"].as_f64().unwrap_or(f64::NAN),
        arrived_per_s: r["arrived_per_s"].as_f64().unwrap_or(f64::NAN),
        completed_per_s: r["completed_per_s"].as_f64().unwrap_or(f64::NAN),
        completed: lat["count"].as_u64().unwrap_or(0),
        backlog: r["backlog"].as_u64().unwrap_or(0),
        arrived: r["arrived"].as_u64().unwrap_or(0),
        p50_ms: ms(&lat["p50_ns"]),
        p99_ms: ms(&lat["p99_ns"]),
        p999_ms: ms(&lat["p999_ns"]),
        max_ms: ms(&lat["max_ns"]),
    })
}

/// Fewest completed requests for a p99.9 to be printed (below, it is one
/// of the last few values, not a percentile).
const P999_MIN: u64 = 10_000;

impl Row {
    /// Whether the server kept up: at the end at most 1% of what arrived
    /// was still waiting. A run that did not has a tail its length bounds
    /// (the backlog grows without end), not its scheduler.
    pub fn kept_up(&self) -> bool {
        self.backlog * 100 <= self.arrived
    }
}

/// The table and the figure (`figures/serving-p99.png`) from each
/// scheduler's rows.
pub fn experiment(runs: &[(&str, Vec<Row>)], figures: &Path) -> Result<String, String> {
    let mut md = String::from(
        "| scheduler | nominal load | server CPU used (of its 1 core) | arrivals/s → served/s | completed | backlog at the end | p50 (ms) | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (sched, rows) in runs {
        for r in rows {
            let _ = writeln!(
                md,
                "| {sched} | {:.0}% | {:.0}% | {:.0} → {:.0} | {} | {} of {}{} | {:.2} | {:.2} | {} | {:.2} |",
                r.load * 100.0,
                r.used_cores * 100.0,
                r.arrived_per_s,
                r.completed_per_s,
                r.completed,
                r.backlog,
                r.arrived,
                if r.kept_up() { "" } else { " (did not keep up)" },
                r.p50_ms,
                r.p99_ms,
                if r.completed >= P999_MIN {
                    format!("{:.2}", r.p999_ms)
                } else {
                    "—".into()
                },
                r.max_ms
            );
        }
    }
    let series: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .map(|(sched, rows)| {
            (
                sched.to_string(),
                rows.iter()
                    .filter(|r| r.kept_up())
                    .map(|r| (r.used_cores * 100.0, r.p99_ms))
                    .collect(),
            )
        })
        .collect();
    super::embed_figure(&mut md, figures, "serving-p99.png", |path| {
        crate::plot::latency_vs_load(
            path,
            "server beside a batch application, 2 cores: p99 request latency (runs that kept up)",
            &series,
        )
    })?;
    Ok(md)
}

/// The README section; `get` gives each job's outcome.
pub fn section<'a>(
    get: impl Fn(&str) -> Result<&'a RunOutcome, String>,
    figures: &Path,
) -> Result<String, String> {
    let mut md = format!(
        "## Request latency against load: a server beside a batch application\n\n\
         `scenarios/server-batch.toml`: a server application of four `serve` threads and a batch application of four CPU-bound threads share 2 cores, \
         one slot each per core, so the server's slots give it one core. Requests arrive open-loop (Poisson, seeded), each needing an exponentially \
         distributed {MEAN_SERVICE_US:.0} µs of CPU on average; the rate's *nominal load* is what those demands need of that core. Its threads \
         were charged more (*server CPU used*: the demands and everything around them — sleeping and waking, switching, its sampling), \
         which is the figure's x axis. Every scheduler sees the same requests (the stream is the seed's). Both applications run the \
         scheduler of the row. A request's latency is from its arrival to its completion (docs/metrics.md, Request latency; \
         percentiles within 1/16; p99.9 only over 10,000 requests or more); the backlog is what had arrived and not completed when the \
         run ended (those are not in the percentiles): a run that left more than 1% did not keep up — its tail is bounded by the run's \
         length, not by the scheduler — and is left out of the figure. Deterministic runs of {:.0} s. The batch application's slot \
         alternates with the server's on each core, so a request arriving in the batch's slot waits for the server's next one whatever \
         the policy; the policy orders the server's four equal threads within its slots.\n\n",
        RUN_MS as f64 / 1000.0
    );
    let mut runs = Vec::new();
    for sched in schedulers() {
        let rows = LOADS
            .iter()
            .map(|&load| {
                let name = job_name(sched, load);
                row(load, &get(&name)?.summary).map_err(|e| format!("{name}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        runs.push((sched, rows));
    }
    md.push_str(&experiment(&runs, figures)?);
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary(p50: u64, p99: u64, backlog: u64) -> Value {
        json!({"apps": [
            {"name": "batch", "requests": null},
            {"name": "server", "requests": {
                "arrived_per_s": 500.0, "completed_per_s": 480.0, "backlog": backlog, "arrived": 1000,
                "used_cores": 0.4,
                "latency": {"count": 1000 - backlog, "p50_ns": p50, "p99_ns": p99, "p999_ns": p99 * 2, "max_ns": p99 * 3}
            }}
        ]})
    }

    #[test]
    fn rates_offer_the_load_of_the_server_s_core() {
        assert_eq!(rate_for(0.5), 2500);
        assert_eq!(rate_for(0.1), 500);
    }

    #[test]
    fn a_row_per_scheduler_and_load_and_a_figure() {
        let r = row(0.3, &summary(1_500_000, 9_000_000, 4)).unwrap();
        assert_eq!(
            (r.p50_ms, r.p99_ms, r.p999_ms, r.max_ms),
            (1.5, 9.0, 18.0, 27.0)
        );
        assert_eq!((r.backlog, r.arrived), (4, 1000));
        let figures = std::env::temp_dir().join(format!("exo-serving-{}", std::process::id()));
        std::fs::create_dir_all(&figures).unwrap();
        let runs = [
            (
                "stride",
                vec![
                    r.clone(),
                    row(0.9, &summary(2_000_000, 30_000_000, 70)).unwrap(),
                ],
            ),
            ("rr", vec![r]),
        ];
        let md = experiment(&runs, &figures).unwrap();
        // p99.9 of fewer than 10,000 requests is not printed.
        assert!(
            md.contains(
                "| stride | 30% | 40% | 500 → 480 | 996 | 4 of 1000 | 1.50 | 9.00 | — | 27.00 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| stride | 90% | 40% | 500 → 480 | 930 | 70 of 1000 (did not keep up) |"),
            "{md}"
        );
        assert!(figures.join("serving-p99.png").is_file());
        assert!(figures.join("serving-p99.svg").is_file());
    }

    #[test]
    fn every_registered_policy_serves_at_every_load() {
        let scenario = |name: &str| {
            crate::build::workspace_root()
                .join("scenarios")
                .join(format!("{name}.toml"))
        };
        let jobs = jobs(crate::Accel::Tcg, &scenario).unwrap();
        assert_eq!(jobs.len(), sched_registry::POLICIES.len() * LOADS.len());
        for name in sched_registry::names() {
            for load in LOADS {
                let job = jobs
                    .iter()
                    .find(|j| j.name == job_name(name, load))
                    .unwrap_or_else(|| panic!("no run under {name} at {load}"));
                let path = job.opts.scenario.as_ref().unwrap();
                let doc: toml::Value =
                    toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
                for app in 0..2 {
                    assert_eq!(doc["app"][app]["scheduler"].as_str(), Some(name));
                }
            }
        }
    }

    #[test]
    fn a_run_without_served_requests_is_an_error_not_a_row() {
        assert!(row(
            0.1,
            &json!({"apps": [{"name": "server", "requests": null}]})
        )
        .is_err());
        let mut s = summary(1, 2, 0);
        s["apps"][1]["requests"]["latency"]["count"] = json!(0);
        assert!(row(0.1, &s).is_err());
    }
}
