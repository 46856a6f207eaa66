//! A sweep's figures, beside its tables: each thread's share error against
//! the swept value (`….shares.png`) and each request-serving application's
//! p99 latency against it (`….p99.png`). Only a sweep of numbers has an x
//! axis to draw them on.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{served_trials, thread_rows, unmoved_values, values_of, ServedTrials};
use crate::plot::sweep::{value_lines, Scale, ValuePoint};
use crate::trials::mean_ci;

/// The swept values as numbers, in sweep order, if every one is a number.
fn numbers(runs: &[(String, Value)]) -> Option<Vec<(&str, f64)>> {
    values_of(runs)
        .into_iter()
        .map(|v| Some((v, v.trim().parse::<f64>().ok()?)))
        .collect()
}

/// What the sweep asked for and what it lost: the trials per value, and
/// the runs that failed (left out of everything).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Asked {
    pub trials: usize,
    pub failed: usize,
}

/// A figure's lines, and how many trials its points stand for (fewest,
/// most), and what it left out.
#[derive(Debug, Default, PartialEq)]
pub struct Drawn {
    pub series: Vec<(String, Vec<ValuePoint>)>,
    pub trials: Option<(usize, usize)>,
    pub notes: Vec<String>,
}

impl Drawn {
    fn count(&mut self, n: usize) {
        self.trials = Some(
            self.trials
                .map_or((n, n), |(lo, hi)| (lo.min(n), hi.max(n))),
        );
    }

    fn add(&mut self, name: &str, point: ValuePoint) {
        match self.series.iter_mut().find(|(s, _)| s == name) {
            Some((_, points)) => points.push(point),
            None => self.series.push((name.to_string(), vec![point])),
        }
    }

    /// What its points stand for: `one run per value` when one was asked,
    /// else `summary` with `{}` as [`Drawn::trials_text`].
    fn over(&self, asked: Asked, summary: &str) -> String {
        match self.trials {
            Some((1, 1)) if asked.trials == 1 => "one run per value".to_string(),
            _ => summary.replace("{}", &self.trials_text()),
        }
    }

    /// `1 trial`, `3 trials`, `2–3 trials`.
    fn trials_text(&self) -> String {
        match self.trials {
            Some((1, 1)) | None => "1 trial".into(),
            Some((lo, hi)) if lo == hi => format!("{lo} trials"),
            Some((lo, hi)) => format!("{lo}–{hi} trials"),
        }
    }
}

/// Per thread (`app/thread`: matched across values by name, as the means
/// table's rows are read), its share error in points at each value: the
/// mean over the value's trials that have it, with its 95% interval (none
/// for one trial). A point over fewer trials than were asked (a run that
/// failed, a trial that lacks the figure) is noted.
pub fn share_errors(runs: &[(String, Value)], asked: usize) -> Drawn {
    let mut drawn = Drawn::default();
    let Some(values) = numbers(runs) else {
        return drawn;
    };
    for row in thread_rows(runs) {
        let Some(&(_, x)) = values.iter().find(|(v, _)| *v == row.value) else {
            continue;
        };
        let name = format!("{}/{}", row.app, row.thread);
        let errors: Vec<f64> = row.trials.iter().map(|t| t[2]).collect();
        let point = |y: f64, range| ValuePoint { x, y, range };
        let point = match (errors.as_slice(), mean_ci(&errors)) {
            ([one], _) => point(*one, None),
            (_, Some(e)) => point(e.mean, Some((e.mean - e.half_width, e.mean + e.half_width))),
            _ => {
                drawn.notes.push(format!(
                    "{name} at {}: no trial with its share error, not drawn",
                    row.value
                ));
                continue;
            }
        };
        if errors.len() < asked.max(row.of) {
            drawn.notes.push(format!(
                "{name} at {}: over {} of the {} trials asked (the others failed or lack a figure)",
                row.value,
                errors.len(),
                asked.max(row.of)
            ));
        }
        drawn.count(errors.len());
        drawn.add(&name, point);
    }
    drawn
}

/// Per request-serving application, its p99 at each value where every
/// trial asked ran, reported and kept up (a run that failed may have
/// failed for the load): the median with the trials' lowest and highest
/// (none for one trial); each point left out named with why.
pub fn p99s(rows: &[ServedTrials], runs: &[(String, Value)], asked: usize) -> Drawn {
    let mut drawn = Drawn::default();
    let Some(values) = numbers(runs) else {
        return drawn;
    };
    for r in rows {
        let Some(&(_, x)) = values.iter().find(|(v, _)| *v == r.value) else {
            continue;
        };
        let s = &r.serving;
        let at = format!("{} at {}", r.app, r.value);
        let why = if s.trials < asked {
            Some("some run failed")
        } else if s.reported < s.trials {
            Some("some trial reported no requests")
        } else if s.some_fell_behind() {
            Some("some trial did not keep up (its percentiles read low)")
        } else if s.p99_ms.is_none() {
            Some("some trial has no p99 (no request completed)")
        } else {
            None
        };
        match (why, s.p99_ms) {
            (None, Some(p99)) => {
                drawn.count(s.trials);
                let range = (s.trials > 1).then_some((p99.min, p99.max));
                drawn.add(
                    &r.app,
                    ValuePoint {
                        x,
                        y: p99.median,
                        range,
                    },
                );
            }
            (why, _) => drawn
                .notes
                .push(format!("{at}: left out, {}", why.unwrap_or("no p99"))),
        }
    }
    drawn
}

/// Where the runs' time came from, and whether every run was trusted and
/// none failed.
fn source(runs: &[(String, Value)], failed: usize) -> String {
    let det = runs.iter().all(|(_, s)| s["deterministic"] == true);
    let mut out = if det {
        "det".to_string()
    } else {
        let accel = runs
            .iter()
            .find(|(_, s)| s["deterministic"] != true)
            .and_then(|(_, s)| s["accel"].as_str())
            .unwrap_or("?");
        format!("{accel}, not det: host-timed")
    };
    let untrusted = runs
        .iter()
        .filter(|(_, s)| s["trust"]["trusted"] != true)
        .count();
    if untrusted > 0 {
        out.push_str(&format!(", {untrusted} of {} runs not trusted", runs.len()));
    }
    match failed {
        0 => {}
        1 => out.push_str(", 1 run failed (left out)"),
        n => out.push_str(&format!(", {n} runs failed (left out)")),
    }
    out
}

/// Draws the sweep's figures beside its table `table` (`….csv`): returns
/// the PNGs written, and what they left out or could not draw.
pub fn draw(
    table: &Path,
    key: &str,
    asked: Asked,
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
    // Where the figures' time came from opens their second line, which a
    // long key cannot push out of the title.
    let mut source = source(runs, asked.failed);
    let unmoved = unmoved_values(runs);
    if !unmoved.is_empty() {
        source.push_str(&format!(
            ", the seed moved nothing at {}",
            unmoved.join(", ")
        ));
    }
    let shares = share_errors(runs, asked.trials);
    if shares.series.iter().any(|(_, p)| !p.is_empty()) {
        let path = table.with_extension("shares.png");
        let over = shares.over(asked, "mean of {}, 95% interval");
        value_lines(
            &path,
            &format!("share error against {key}\n{source}; {over}"),
            (key, "share error (points of its application)"),
            Scale::Linear,
            "95% interval",
            &shares.series,
        )?;
        written.push(path);
    }
    notes.extend(shares.notes.iter().map(|n| format!("share figure: {n}")));
    let p99s = p99s(&served_trials(runs), runs, asked.trials);
    if p99s.series.iter().any(|(_, p)| !p.is_empty()) {
        let path = table.with_extension("p99.png");
        let of = p99s.over(asked, "median and range of {}");
        value_lines(
            &path,
            &format!("p99 request latency against {key}\n{source}; {of}"),
            (key, "p99 latency (ms)"),
            Scale::Log,
            "range of trials",
            &p99s.series,
        )?;
        written.push(path);
    }
    notes.extend(p99s.notes.iter().map(|n| format!("p99 figure: {n}")));
    Ok((written, notes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A run at `v` whose thread `a/t` was `error` points off its share,
    /// its server (if `p99_ms`) with that p99 and `backlog` of 1,000
    /// arrivals waiting; deterministic and trusted.
    fn run(v: &str, error: f64, p99_ms: Option<u64>, backlog: u64) -> (String, Value) {
        let requests = p99_ms.map_or(Value::Null, |p99| {
            json!({"arrived": 1000, "backlog": backlog, "used_cores": 0.5,
                   "latency": {"count": 1000 - backlog, "p50_ns": 1_000_000,
                               "p99_ns": p99 * 1_000_000, "p999_ns": null, "max_ns": p99 * 2_000_000}})
        });
        let thread = json!({"id": 0, "name": "t", "ideal_share": 0.5,
                            "measured_share": 0.5 + error / 100.0, "share_error_pp": error,
                            "cpu_ns": (1000.0 + error * 100.0) as u64});
        let summary = json!({"deterministic": true, "trust": {"trusted": true}, "apps": [
            {"name": "a", "threads": [thread], "requests": requests}
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
        let drawn = share_errors(&runs, 2);
        assert_eq!(drawn.series.len(), 1);
        let (name, points) = &drawn.series[0];
        assert_eq!(name, "a/t");
        assert_eq!((points[0].x, points[0].y), (2.0, 2.0));
        // t(1) = 12.706, s = √2, n = 2: half-width 12.706.
        let (lo, hi) = points[0].range.unwrap();
        assert!((hi - 2.0 - 12.706).abs() < 1e-9 && (2.0 - lo - 12.706).abs() < 1e-9);
        assert_eq!((points[1].x, points[1].y), (10.0, -2.0));
        assert_eq!((drawn.trials, drawn.notes.len()), (Some((2, 2)), 0));
        // One run per value: no interval to draw.
        let one = share_errors(&[run("1", 0.5, None, 0), run("3", 0.7, None, 0)], 1);
        assert!(one.series[0].1.iter().all(|p| p.range.is_none()));
        // Values that are not numbers have no axis.
        assert!(share_errors(&[run("stride", 0.5, None, 0)], 1)
            .series
            .is_empty());
    }

    #[test]
    fn a_point_over_fewer_trials_says_so_and_a_thread_new_at_a_value_is_drawn() {
        let mut lacking = run("2", 1.0, None, 0);
        lacking.1["apps"][0]["threads"][0]
            .as_object_mut()
            .unwrap()
            .remove("share_error_pp");
        let mut grown = run("4", 0.5, None, 0);
        let extra = json!({"id": 1, "name": "u", "ideal_share": 0.5,
                           "measured_share": 0.5, "share_error_pp": 0.0});
        grown.1["apps"][0]["threads"]
            .as_array_mut()
            .unwrap()
            .push(extra);
        let runs = [
            run("2", 3.0, None, 0),
            run("2", 1.0, None, 0),
            lacking,
            grown,
        ];
        let drawn = share_errors(&runs, 3);
        let names: Vec<&str> = drawn.series.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a/t", "a/u"]);
        assert_eq!(drawn.trials, Some((1, 2)));
        assert_eq!(drawn.trials_text(), "1–2 trials");
        // Value 4 ran one trial of the three asked (the others failed).
        let why = "(the others failed or lack a figure)";
        assert_eq!(
            drawn.notes,
            vec![
                format!("a/t at 2: over 2 of the 3 trials asked {why}"),
                format!("a/t at 4: over 1 of the 3 trials asked {why}"),
                format!("a/u at 4: over 1 of the 3 trials asked {why}"),
            ]
        );
    }

    #[test]
    fn a_p99_point_stands_only_where_every_trial_asked_ran_reported_and_kept_up() {
        let mut no_p99 = run("1600", 0.0, Some(9), 0);
        no_p99.1["apps"][0]["requests"]["latency"]["p99_ns"] = Value::Null;
        let runs = [
            run("100", 0.0, Some(4), 0),
            run("100", 0.0, Some(6), 5),
            run("100", 0.0, Some(5), 0),
            run("400", 0.0, Some(9), 0),
            run("400", 0.0, Some(90), 300),
            run("400", 0.0, Some(9), 0),
            run("800", 0.0, Some(9), 0),
            run("800", 0.0, None, 0),
            run("800", 0.0, Some(9), 0),
            // One of three failed (left out of the runs).
            run("1200", 0.0, Some(9), 0),
            run("1200", 0.0, Some(9), 0),
            run("1600", 0.0, Some(9), 0),
            no_p99,
            run("1600", 0.0, Some(9), 0),
        ];
        let drawn = p99s(&served_trials(&runs), &runs, 3);
        assert_eq!(
            drawn.series,
            vec![(
                "a".to_string(),
                vec![ValuePoint {
                    x: 100.0,
                    y: 5.0,
                    range: Some((4.0, 6.0))
                }]
            )]
        );
        assert_eq!(
            drawn.notes,
            vec![
                "a at 400: left out, some trial did not keep up (its percentiles read low)",
                "a at 800: left out, some trial reported no requests",
                "a at 1200: left out, some run failed",
                "a at 1600: left out, some trial has no p99 (no request completed)",
            ]
        );
    }

    #[test]
    fn the_figures_are_drawn_beside_the_table_and_say_where_their_time_came_from() {
        let dir = std::env::temp_dir().join(format!("exo-sweep-figures-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let table = dir.join("sweep-x-rate.csv");
        let runs = [
            run("100", 0.5, Some(4), 0),
            run("100", 0.1, Some(5), 0),
            run("200", -0.5, Some(8), 0),
            run("200", -0.3, Some(7), 0),
        ];
        // The key as long as the docs' own.
        let key = "app.0.requests.rate_per_s";
        let two = Asked {
            trials: 2,
            failed: 0,
        };
        let (written, notes) = draw(&table, key, two, &runs).unwrap();
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
            svg.contains(">\ndet; mean of 2 trials, 95% interval\n<"),
            "{svg}"
        );
        assert!(svg.contains(">\n95% interval\n<"), "{svg}");
        let svg = std::fs::read_to_string(dir.join("sweep-x-rate.p99.svg")).unwrap();
        assert!(svg.contains(">\nrange of trials\n<"), "{svg}");
        // One run per value: a dot at each value, no range to name.
        let single = [run("100", 0.5, Some(4), 0), run("200", -0.5, Some(8), 0)];
        let one = Asked {
            trials: 1,
            failed: 0,
        };
        draw(&table, key, one, &single).unwrap();
        let svg = std::fs::read_to_string(dir.join("sweep-x-rate.p99.svg")).unwrap();
        assert!(svg.contains(">\ndet; one run per value\n<") && !svg.contains("range of trials"));
        // Runs timed by the host, one not trusted, say so in full.
        let mut host = runs.clone();
        for (_, s) in &mut host {
            s["deterministic"] = json!(false);
            s["accel"] = json!("kvm");
        }
        host[3].1["trust"]["trusted"] = json!(false);
        // A fifth run failed: left out of the runs, counted on the figure.
        let lost = Asked {
            trials: 2,
            failed: 1,
        };
        draw(&table, key, lost, &host).unwrap();
        let svg = std::fs::read_to_string(dir.join("sweep-x-rate.shares.svg")).unwrap();
        assert!(
            svg.contains(">\nkvm, not det: host-timed, 1 of 4 runs not trusted, 1 run failed (left out); mean of 2 trials, 95% interval\n<"),
            "{svg}"
        );
        // Trials that all gave the same CPU times: their interval of 0 is
        // no measured spread, and the caption says so.
        let mut same = runs.clone();
        for (_, s) in &mut same {
            s["apps"][0]["threads"][0]["cpu_ns"] = json!(7);
        }
        draw(&table, key, two, &same).unwrap();
        let svg = std::fs::read_to_string(dir.join("sweep-x-rate.shares.svg")).unwrap();
        assert!(
            svg.contains(">\ndet, the seed moved nothing at 100, 200; mean of 2 trials"),
            "{svg}"
        );
        // One run timed by the host among deterministic ones: not det.
        let mut mixed = runs.clone();
        mixed[1].1["deterministic"] = json!(false);
        mixed[1].1["accel"] = json!("tcg");
        assert!(source(&mixed, 0).starts_with("tcg, not det"));
        let (written, notes) = draw(&table, "sched", one, &[run("rr", 0.1, None, 0)]).unwrap();
        assert!(written.is_empty());
        assert_eq!(
            notes,
            vec!["the values of sched are not all numbers: no figures"]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
