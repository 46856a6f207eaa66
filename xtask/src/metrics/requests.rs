//! Request latency (docs/metrics.md, "Request latency"): an application's
//! requests, from arrival to completion, as its `serve` threads report
//! them per sampling interval in the buckets of [`abi::waits`].

use serde_json::{json, Value};

use crate::metrics::waits::WaitDist;
use crate::rundata::{RequestInterval, RequestLog, RunData};

/// Adds a `requests_start` or `requests` record of application `app`.
pub fn add_record(into: &mut Vec<RequestLog>, app: u32, v: &Value) {
    let log = match into.iter().position(|l| l.app == app) {
        Some(i) => &mut into[i],
        None => {
            into.push(RequestLog {
                app,
                ..RequestLog::default()
            });
            into.last_mut().expect("just pushed")
        }
    };
    let u = |k: &str| v[k].as_u64().unwrap_or(0);
    if v["kind"] == "requests_start" {
        log.t0_ns = u("t_ns");
        log.rate_per_s = u("rate_per_s");
        log.mean_service_ns = v["mean_service_ns"].as_f64().unwrap_or(0.0);
        log.iterations_per_ms = u("iterations_per_ms");
        return;
    }
    let buckets: Vec<(u32, u64)> = v["b"]
        .as_array()
        .map(|b| {
            b.chunks(2)
                .filter_map(|p| Some((p.first()?.as_u64()? as u32, p.get(1)?.as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    // A report too long for one record continues in the next, same time.
    let t_ns = u("t_ns");
    match log.intervals.last_mut().filter(|i| i.t_ns == t_ns) {
        Some(i) => {
            i.buckets.extend(buckets);
            i.max_ns = i.max_ns.max(u("max_ns"));
        }
        None => log.intervals.push(RequestInterval {
            t_ns,
            arrived: u("arrived"),
            completed: u("completed"),
            max_ns: u("max_ns"),
            buckets,
        }),
    }
}

/// Every latency `log` reported: one per completed request.
pub fn latencies(log: &RequestLog) -> WaitDist {
    let mut d = WaitDist::default();
    for i in &log.intervals {
        d.add(&i.buckets, i.max_ns);
    }
    d
}

/// Whether a stream's servers kept up: at the end at most 1% of what
/// arrived (`arrived`) was still waiting (`backlog`). A run that did not
/// has a tail its length bounds (the backlog grows without end), not its
/// scheduler, and percentiles that leave its slowest requests out.
pub fn kept_up(backlog: u64, arrived: u64) -> bool {
    backlog * 100 <= arrived
}

/// Fewest completed requests for a run's p99.9 to be shown, alone or among
/// trials (below, it is one of a run's last few values, not a percentile).
pub const P999_MIN: u64 = 10_000;

/// One run's figures for an application's requests, read back from the
/// `requests` its [`summary`] wrote (latencies in ms; a figure the run
/// has not: NaN). The one reader of that object, for the canonical
/// serving experiment and a sweep's trials alike.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Served {
    /// Its threads' CPU over the run, in cores.
    pub used_cores: f64,
    pub arrived_per_s: f64,
    pub completed_per_s: f64,
    /// The requests in the percentiles.
    pub completed: u64,
    pub backlog: u64,
    pub arrived: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Served {
    /// `None` when the application served no requests (`null`).
    pub fn of(requests: &Value) -> Option<Served> {
        if requests.is_null() {
            return None;
        }
        let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
        let ms = |v: &Value| num(v) / 1e6;
        let count = |v: &Value| v.as_u64().unwrap_or(0);
        let lat = &requests["latency"];
        Some(Served {
            used_cores: num(&requests["used_cores"]),
            arrived_per_s: num(&requests["arrived_per_s"]),
            completed_per_s: num(&requests["completed_per_s"]),
            completed: count(&lat["count"]),
            backlog: count(&requests["backlog"]),
            arrived: count(&requests["arrived"]),
            p50_ms: ms(&lat["p50_ns"]),
            p99_ms: ms(&lat["p99_ns"]),
            p999_ms: ms(&lat["p999_ns"]),
            max_ms: ms(&lat["max_ns"]),
        })
    }

    /// Whether its servers kept up ([`kept_up`]).
    pub fn kept_up(&self) -> bool {
        kept_up(self.backlog, self.arrived)
    }

    /// Its p99.9 if it completed enough requests for one ([`P999_MIN`]).
    pub fn p999_shown_ms(&self) -> Option<f64> {
        (self.completed >= P999_MIN).then_some(self.p999_ms)
    }
}

/// Application `app`'s request figures for summary.json, or null when it
/// serves none: the stream asked for (rate, mean service, the load it
/// offers in cores), what arrived and completed, the backlog at the last
/// report (arrived, not completed: a latency percentile leaves those out,
/// so a growing backlog says the tail is worse than it shows), and the
/// latency percentiles.
pub fn summary(data: &RunData, app: u32) -> Value {
    let used_cores = server_cores_used(data, app);
    let Some(log) = data.requests.iter().find(|l| l.app == app) else {
        return Value::Null;
    };
    let last = log.intervals.last();
    let d = latencies(log);
    let (arrived, completed) = last.map_or((0, 0), |l| (l.arrived, l.completed));
    // From the stream's start (not the run's: an application may start
    // late) to its last report.
    let span_ns = last.map_or(0, |l| l.t_ns.saturating_sub(log.t0_ns));
    let per_s = |n: u64| (span_ns > 0).then(|| n as f64 / (span_ns as f64 / 1e9));
    json!({
        "rate_per_s": log.rate_per_s,
        "mean_service_ns": log.mean_service_ns,
        "offered_cores": log.rate_per_s as f64 * log.mean_service_ns / 1e9,
        "used_cores": used_cores,
        "iterations_per_ms": log.iterations_per_ms,
        "arrived": arrived,
        "completed": completed,
        "backlog": arrived.saturating_sub(completed),
        "arrived_per_s": per_s(arrived),
        "completed_per_s": per_s(completed),
        "latency": {
            "count": d.count(),
            "p50_ns": d.percentile(0.5),
            "p99_ns": d.percentile(0.99),
            "p999_ns": d.percentile(0.999),
            "max_ns": (d.count() > 0).then_some(d.max_ns),
        },
    })
}

/// The CPU its threads were charged over the samples' span, in cores:
/// what serving the stream took — the demands, and the libOS's and the
/// application's own work around them — beside the `offered_cores` of the
/// nominal demands.
fn server_cores_used(data: &RunData, app: u32) -> Option<f64> {
    let times = || data.samples.iter().filter(|s| s.app == app).map(|s| s.t_ns);
    let (first, last) = (times().min()?, times().max()?);
    let at = |t: u64| -> u64 {
        data.samples
            .iter()
            .filter(|s| s.app == app && s.t_ns == t)
            .map(|s| s.cpu_ns)
            .sum()
    };
    let span = last.saturating_sub(first);
    (span > 0).then(|| at(last).saturating_sub(at(first)) as f64 / span as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::waits::bucket_of;

    #[test]
    fn a_stream_kept_up_while_at_most_one_percent_of_its_arrivals_wait() {
        assert!(kept_up(0, 0));
        assert!(kept_up(10, 1000));
        assert!(!kept_up(11, 1000));
        assert!(!kept_up(1, 0));
    }

    fn report(t: u64, arrived: u64, completed: u64, latencies: &[u64]) -> Value {
        let mut b = std::collections::BTreeMap::new();
        for &l in latencies {
            *b.entry(bucket_of(l)).or_insert(0u64) += 1;
        }
        let flat: Vec<u64> = b.iter().flat_map(|(&k, &n)| [k as u64, n]).collect();
        json!({"kind": "requests", "t_ns": t, "arrived": arrived, "completed": completed,
               "max_ns": latencies.iter().max().copied().unwrap_or(0), "b": flat})
    }

    #[test]
    fn reports_add_up_to_percentiles_and_a_backlog() {
        let mut logs = Vec::new();
        add_record(
            &mut logs,
            1,
            &json!({"kind": "requests_start", "t_ns": 500_000_000, "rate_per_s": 1000,
                    "mean_service_ns": 200_000, "iterations_per_ms": 5}),
        );
        // 99 quick requests and one slow one, over two reports; the second
        // report split in two records of the same time.
        let quick: Vec<u64> = vec![100_000; 60];
        add_record(&mut logs, 1, &report(1_000_000_000, 70, 60, &quick));
        add_record(
            &mut logs,
            1,
            &report(2_500_000_000, 110, 100, &[100_000; 38]),
        );
        add_record(
            &mut logs,
            1,
            &report(2_500_000_000, 110, 100, &[100_000, 50_000_000]),
        );
        // Two server threads sampled at 1 s and 2 s: 0.3 s of CPU between.
        let sample = |t_ns, thread, cpu_ns| crate::rundata::Sample {
            t_ns,
            app: 1,
            thread,
            cpu_ns,
            ..Default::default()
        };
        let data = RunData {
            start_ns: 0,
            requests: logs,
            samples: vec![
                sample(1_000_000_000, 1, 50_000_000),
                sample(1_000_000_000, 2, 50_000_000),
                sample(2_000_000_000, 1, 200_000_000),
                sample(2_000_000_000, 2, 200_000_000),
            ],
            ..RunData::default()
        };
        let s = summary(&data, 1);
        assert_eq!(s["arrived"], 110);
        assert_eq!(s["completed"], 100);
        assert_eq!(s["backlog"], 10);
        assert_eq!(s["latency"]["count"], 100);
        assert_eq!(s["latency"]["max_ns"], 50_000_000);
        let p50 = s["latency"]["p50_ns"].as_f64().unwrap();
        assert!((p50 / 100_000.0 - 1.0).abs() < 1.0 / 16.0, "{p50}");
        // The slow one is the 100th of 100: p99 is a quick one, p99.9 it.
        assert!(s["latency"]["p99_ns"].as_f64().unwrap() < 110_000.0);
        assert!(s["latency"]["p999_ns"].as_f64().unwrap() > 45_000_000.0);
        assert!((s["offered_cores"].as_f64().unwrap() - 0.2).abs() < 1e-9);
        assert!((s["used_cores"].as_f64().unwrap() - 0.3).abs() < 1e-9);
        // Over the stream's 2 s (from its start at 0.5 s), not the run's.
        assert!((s["completed_per_s"].as_f64().unwrap() - 50.0).abs() < 1e-9);
        assert!((s["arrived_per_s"].as_f64().unwrap() - 55.0).abs() < 1e-9);
        assert_eq!(summary(&data, 0), Value::Null);
        // A sweep's CSV columns are fields this summary writes.
        for c in crate::sweep::REQUEST_COLUMNS {
            assert!(
                !s[c].is_null(),
                "the sweep's column {c} is not in the summary"
            );
        }
        for c in crate::sweep::LATENCY_COLUMNS {
            assert!(
                !s["latency"][c].is_null(),
                "latency.{c} is not in the summary"
            );
        }
    }
}
