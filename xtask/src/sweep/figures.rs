//! A sweep's figures, beside its tables: each thread's share error against
//! the swept value (`….shares.png`) and each request-serving application's
//! p99 latency against it (`….p99.png`). Only a sweep of numbers has an x
//! axis to draw them on.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{served_trials, ServedTrials};
use crate::plot::sweep::{value_lines, Scale, ValuePoint};
use crate::trials::mean_ci;

/// The swept values as numbers, in sweep order, if every one is a number.
fn numbers(runs: &[(String, Value)]) -> Option<Vec<(String, f64)>> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for (v, _) in runs {
        if !out.iter().any(|(w, _)| w == v) {
            out.push((v.clone(), v.trim().parse::<f64>().ok()?));
        }
    }
    Some(out)
}

/// Per thread (`app/thread`, in the first run's order), its share error in
/// points at each value: the mean over the value's trials with its 95%
/// interval (none for one trial).
pub fn share_errors(runs: &[(String, Value)]) -> Vec<(String, Vec<ValuePoint>)> {
    let Some(values) = numbers(runs) else {
        return Vec::new();
    };
    let threads = |s: &Value| -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for app in s["apps"].as_array().into_iter().flatten() {
            for t in app["threads"].as_array().into_iter().flatten() {
                let name = format!(
                    "{}/{}",
                    app["name"].as_str().unwrap_or(""),
                    t["name"].as_str().unwrap_or("")
                );
                out.push((name, t["share_error_pp"].as_f64().unwrap_or(f64::NAN)));
            }
        }
        out
    };
    let names: Vec<String> = runs
        .first()
        .map(|(_, s)| threads(s).into_iter().map(|(n, _)| n).collect())
        .unwrap_or_default();
    names
        .iter()
        .map(|name| {
            let points = values
                .iter()
                .filter_map(|(v, x)| {
                    let errors: Vec<f64> = runs
                        .iter()
                        .filter(|(w, _)| w == v)
                        .filter_map(|(_, s)| {
                            threads(s).into_iter().find(|(n, _)| n == name).map(|t| t.1)
                        })
                        .collect();
                    let point = |y: f64, range| ValuePoint { x: *x, y, range };
                    match (errors.as_slice(), mean_ci(&errors)) {
                        ([one], _) => Some(point(*one, None)),
                        (_, Some(e)) => Some(point(
                            e.mean,
                            Some((e.mean - e.half_width, e.mean + e.half_width)),
                        )),
                        _ => None,
                    }
                })
                .collect();
            (name.clone(), points)
        })
        .collect()
}

/// Per request-serving application, its p99 at each value where every
/// trial kept up: the median with the trials' lowest and highest (none for
/// one trial); and the points left out for not keeping up.
pub fn p99s(
    rows: &[ServedTrials],
    runs: &[(String, Value)],
) -> (Vec<(String, Vec<ValuePoint>)>, Vec<String>) {
    let Some(values) = numbers(runs) else {
        return (Vec::new(), Vec::new());
    };
    let mut series: Vec<(String, Vec<ValuePoint>)> = Vec::new();
    let mut left_out = Vec::new();
    for r in rows {
        let Some(&(_, x)) = values.iter().find(|(v, _)| *v == r.value) else {
            continue;
        };
        let s = &r.serving;
        if !s.all_kept_up() {
            left_out.push(format!("{} at {}", r.app, r.value));
            continue;
        }
        let Some(p99) = s.p99_ms else {
            continue;
        };
        let range = (s.trials > 1).then_some((p99.min, p99.max));
        let point = ValuePoint {
            x,
            y: p99.median,
            range,
        };
        match series.iter_mut().find(|(app, _)| *app == r.app) {
            Some((_, points)) => points.push(point),
            None => series.push((r.app.clone(), vec![point])),
        }
    }
    (series, left_out)
}

/// Draws the sweep's figures beside its table `table` (`….csv`): returns
/// the PNGs written, and why a figure was not drawn.
pub fn draw(
    table: &Path,
    key: &str,
    trials: u32,
    runs: &[(String, Value)],
) -> Result<(Vec<PathBuf>, Vec<String>), String> {
    let mut written = Vec::new();
    let mut notes = Vec::new();
    if numbers(runs).is_none() {
        notes.push(format!(
            "the values of {key} are not all numbers: no figures"
        ));
        return Ok((written, notes));
    }
    // Where the figures' time came from, as every figure must say.
    let det = runs.iter().all(|(_, s)| s["deterministic"] == true);
    let source = if det {
        "det".to_string()
    } else {
        let accel = runs
            .first()
            .and_then(|(_, s)| s["accel"].as_str())
            .unwrap_or("?");
        format!("{accel}, not det: host-timed")
    };
    let over = if trials > 1 {
        format!("mean of {trials} trials, 95% interval; {source}")
    } else {
        format!("one run per value; {source}")
    };
    let shares = share_errors(runs);
    if shares.iter().any(|(_, p)| !p.is_empty()) {
        let path = table.with_extension("shares.png");
        value_lines(
            &path,
            &format!("share error against {key} ({over})"),
            (key, "share error (points of its application)"),
            Scale::Linear,
            "95% interval",
            &shares,
        )?;
        written.push(path);
    }
    let (p99s, left_out) = p99s(&served_trials(runs), runs);
    if !left_out.is_empty() {
        notes.push(format!(
            "left out of the p99 figure, some trial not keeping up (its percentiles read low): {}",
            left_out.join(", ")
        ));
    }
    if p99s.iter().any(|(_, p)| !p.is_empty()) {
        let path = table.with_extension("p99.png");
        let of = if trials > 1 {
            format!("median and range of {trials} trials; {source}")
        } else {
            format!("one run per value; {source}")
        };
        value_lines(
            &path,
            &format!("p99 request latency against {key} ({of})"),
            (key, "p99 latency (ms)"),
            Scale::Log,
            "range of trials",
            &p99s,
        )?;
        written.push(path);
    }
    Ok((written, notes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A run at `v` whose thread `a/t` was `error` points off its share,
    /// its server (if `p99_ms`) with that p99 and `backlog` of 1,000
    /// arrivals waiting.
    fn run(v: &str, error: f64, p99_ms: Option<u64>, backlog: u64) -> (String, Value) {
        let requests = p99_ms.map_or(Value::Null, |p99| {
            json!({"arrived": 1000, "backlog": backlog, "used_cores": 0.5,
                   "latency": {"count": 1000 - backlog, "p50_ns": 1_000_000,
                               "p99_ns": p99 * 1_000_000, "p999_ns": null, "max_ns": p99 * 2_000_000}})
        });
        let summary = json!({"deterministic": true, "apps": [
            {"name": "a", "threads": [{"name": "t", "share_error_pp": error}], "requests": requests}
        ]});
        (v.to_string(), summary)
    }

    #[test]
    fn a_thread_s_error_is_its_mean_over_trials_with_its_interval() {
        let runs = [
            run("2", 1.0, None, 0),
            run("2", 3.0, None, 0),
            run("10", -2.0, None, 0),
            run("10", -2.0, None, 0),
        ];
        let series = share_errors(&runs);
        assert_eq!(series.len(), 1);
        let (name, points) = &series[0];
        assert_eq!(name, "a/t");
        assert_eq!((points[0].x, points[0].y), (2.0, 2.0));
        // t(1) = 12.706, s = √2, n = 2: half-width 12.706.
        let (lo, hi) = points[0].range.unwrap();
        assert!((hi - 2.0 - 12.706).abs() < 1e-9 && (2.0 - lo - 12.706).abs() < 1e-9);
        assert_eq!((points[1].x, points[1].y), (10.0, -2.0));
        // One run per value: no interval to draw.
        let one = share_errors(&[run("1", 0.5, None, 0), run("3", 0.7, None, 0)]);
        assert!(one[0].1.iter().all(|p| p.range.is_none()));
        // Values that are not numbers have no axis.
        assert!(share_errors(&[run("stride", 0.5, None, 0)]).is_empty());
    }

    #[test]
    fn a_p99_point_stands_only_where_every_trial_kept_up() {
        let runs = [
            run("100", 0.0, Some(4), 0),
            run("100", 0.0, Some(6), 5),
            run("100", 0.0, Some(5), 0),
            run("400", 0.0, Some(9), 0),
            run("400", 0.0, Some(90), 300),
            run("400", 0.0, Some(9), 0),
        ];
        let (series, left_out) = p99s(&served_trials(&runs), &runs);
        assert_eq!(
            series,
            vec![(
                "a".to_string(),
                vec![ValuePoint {
                    x: 100.0,
                    y: 5.0,
                    range: Some((4.0, 6.0))
                }]
            )]
        );
        assert_eq!(left_out, vec!["a at 400".to_string()]);
    }

    #[test]
    fn the_figures_are_drawn_beside_the_table_and_a_sweep_of_names_says_why_not() {
        let dir = std::env::temp_dir().join(format!("exo-sweep-figures-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let table = dir.join("sweep-x-rate.csv");
        let runs = [
            run("100", 0.5, Some(4), 0),
            run("100", 0.1, Some(5), 0),
            run("200", -0.5, Some(8), 0),
            run("200", -0.3, Some(7), 0),
        ];
        let (written, notes) = draw(&table, "rate", 2, &runs).unwrap();
        assert_eq!(
            written,
            vec![
                dir.join("sweep-x-rate.shares.png"),
                dir.join("sweep-x-rate.p99.png")
            ]
        );
        assert!(notes.is_empty(), "{notes:?}");
        for f in &written {
            assert!(f.is_file() && f.with_extension("svg").is_file());
        }
        let svg = std::fs::read_to_string(dir.join("sweep-x-rate.shares.svg")).unwrap();
        assert!(
            svg.contains("mean of 2 trials, 95% interval; det)"),
            "{svg}"
        );
        assert!(svg.contains(">\n95% interval\n<"), "{svg}");
        let svg = std::fs::read_to_string(dir.join("sweep-x-rate.p99.svg")).unwrap();
        assert!(svg.contains(">\nrange of trials\n<"), "{svg}");
        // One run per value: a dot at each value, no range to name.
        let single = [run("100", 0.5, Some(4), 0), run("200", -0.5, Some(8), 0)];
        draw(&table, "rate", 1, &single).unwrap();
        let svg = std::fs::read_to_string(dir.join("sweep-x-rate.p99.svg")).unwrap();
        assert!(svg.contains("one run per value; det)") && !svg.contains("range of trials"));
        // Runs timed by the host say so.
        let mut host = runs.clone();
        for (_, s) in &mut host {
            s["deterministic"] = json!(false);
            s["accel"] = json!("kvm");
        }
        draw(&table, "rate", 2, &host).unwrap();
        let svg = std::fs::read_to_string(dir.join("sweep-x-rate.p99.svg")).unwrap();
        assert!(svg.contains("; kvm, not det: host-timed)"), "{svg}");
        let (written, notes) = draw(&table, "sched", 1, &[run("rr", 0.1, None, 0)]).unwrap();
        assert!(written.is_empty());
        assert_eq!(
            notes,
            vec!["the values of sched are not all numbers: no figures"]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
