//! `just compare <run> <run>`: two scenario runs side by side, per thread
//! (matched by application and thread name): measured share, share error,
//! maximum lag, wait percentiles and longest wait in each, and the difference (second
//! minus first), from each run's `summary.json`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A run directory: `run` itself if it is one, else `results/runs/<run>`.
pub fn resolve(run: &Path, runs_dir: &Path) -> PathBuf {
    if run.is_dir() {
        run.to_path_buf()
    } else {
        runs_dir.join(run)
    }
}

/// A run's `summary.json`, which must be a scenario run's.
pub fn load(dir: &Path) -> Result<Value, String> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if !v["apps"].is_array() {
        return Err(format!("{}: not a scenario run (no apps)", path.display()));
    }
    Ok(v)
}

/// One figure of a thread: its name, how to read it from the thread's
/// summary, and its unit's scale and decimals.
struct Figure {
    head: &'static str,
    get: fn(&Value) -> Option<f64>,
    decimals: usize,
}

const FIGURES: [Figure; 6] = [
    Figure {
        head: "share(%)",
        get: |t| Some(t["measured_share"].as_f64()? * 100.0),
        decimals: 2,
    },
    Figure {
        head: "error(pp)",
        get: |t| t["share_error_pp"].as_f64(),
        decimals: 2,
    },
    Figure {
        head: "max lag(q)",
        get: |t| t["max_abs_lag_quanta"].as_f64(),
        decimals: 2,
    },
    Figure {
        head: "wait p50(ms)",
        get: |t| Some(t["wait"]["p50_ns"].as_f64()? / 1e6),
        decimals: 3,
    },
    Figure {
        head: "wait p99(ms)",
        get: |t| Some(t["wait"]["p99_ns"].as_f64()? / 1e6),
        decimals: 3,
    },
    // The percentiles are histogram buckets (within 1/16): two runs whose
    // p99 falls in one bucket print the same figure however their longest
    // waits differ, which this column shows exactly.
    Figure {
        head: "wait max(ms)",
        get: |t| Some(t["wait"]["max_ns"].as_f64()? / 1e6),
        decimals: 3,
    },
];

/// `label: run (scenario, schedulers, deterministic or not, trusted or
/// not)`. The schedulers are each application's, in the order it ran
/// under them (a run whose application swapped is not the run's first
/// scheduler's); a summary without timelines gives its `sched`.
fn describe(label: &str, dir: &Path, s: &Value) -> String {
    let str_of = |k: &str| s[k].as_str().unwrap_or("?").to_string();
    let ran: Vec<String> = s["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let timeline = a["scheduler_timeline"].as_array()?;
            let names = timeline.iter().filter_map(|e| e["scheduler"].as_str());
            let seq = crate::rundata::scheduler_sequence(names);
            (!seq.is_empty()).then(|| format!("{} under {seq}", a["name"].as_str().unwrap_or("?")))
        })
        .collect();
    let schedulers = if ran.is_empty() {
        format!("sched {}", str_of("sched"))
    } else {
        ran.join("; ")
    };
    format!(
        "{label}: {} — scenario {}, {schedulers}, cpus {}, {}, {}",
        dir.display(),
        str_of("scenario"),
        s["cpus_online"],
        if s["deterministic"] == true {
            "det"
        } else {
            "not det (times not exact)"
        },
        match s["trust"]["trusted"].as_bool() {
            Some(true) => "trusted",
            Some(false) => "NOT trusted",
            None => "trust unknown",
        }
    )
}

/// Every (application, thread name) of a summary, in order, with its row.
fn threads(s: &Value) -> Vec<(String, String, &Value)> {
    s["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| {
            let app = a["name"].as_str().unwrap_or("?").to_string();
            a["threads"].as_array().into_iter().flatten().map(move |t| {
                (
                    app.clone(),
                    t["name"].as_str().unwrap_or("?").to_string(),
                    t,
                )
            })
        })
        .collect()
}

/// The comparison table of runs `a` and `b` (directories and summaries).
pub fn table(a: (&Path, &Value), b: (&Path, &Value)) -> String {
    let mut out = String::new();
    for (label, (dir, s)) in [("A", a), ("B", b)] {
        let _ = writeln!(out, "{}", describe(label, dir, s));
        if let Some(each) = crate::summary::turns_repossessed(s) {
            let _ = writeln!(out, "   turns repossessed: {each}");
        }
    }
    let _ = write!(out, "{:<24}", "app/thread");
    for f in &FIGURES {
        let _ = write!(out, " | {:^29}", f.head);
    }
    out.truncate(out.trim_end().len());
    let _ = writeln!(out);
    let _ = write!(out, "{:<24}", "");
    for _ in &FIGURES {
        let _ = write!(out, " | {:>9} {:>9} {:>9}", "A", "B", "B-A");
    }
    let _ = writeln!(out);
    let (ta, tb) = (threads(a.1), threads(b.1));
    let mut keys: Vec<(String, String)> =
        ta.iter().map(|(a, t, _)| (a.clone(), t.clone())).collect();
    for (app, t, _) in &tb {
        if !keys.iter().any(|k| k.0 == *app && k.1 == *t) {
            keys.push((app.clone(), t.clone()));
        }
    }
    let find = |list: &[(String, String, &Value)], k: &(String, String)| {
        list.iter()
            .find(|(a, t, _)| *a == k.0 && *t == k.1)
            .map(|x| x.2.clone())
    };
    for k in keys {
        let (ra, rb) = (find(&ta, &k), find(&tb, &k));
        let _ = write!(out, "{:<24}", format!("{}/{}", k.0, k.1));
        for f in &FIGURES {
            let va = ra.as_ref().and_then(f.get);
            let vb = rb.as_ref().and_then(f.get);
            let show =
                |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.*}", f.decimals));
            let diff = match (va, vb) {
                (Some(x), Some(y)) => format!("{:+.*}", f.decimals, y - x),
                _ => "-".to_string(),
            };
            let _ = write!(out, " | {:>9} {:>9} {:>9}", show(va), show(vb), diff);
        }
        let _ = writeln!(out);
    }
    out
}

/// What the reader of the table should know first: rows are matched by
/// application and thread name only. Runs of one scenario need nothing
/// said. Runs of differently named scenarios with the same applications
/// and threads (a sweep's or trials' variants are renamed
/// `<scenario>-<value>-seed<k>`) get a note; with different ones, a
/// warning naming the threads only one run has. Each line says which it is.
pub fn warnings(a: &Value, b: &Value) -> Vec<String> {
    let name = |s: &Value| s["scenario"].as_str().unwrap_or("?").to_string();
    let (na, nb) = (name(a), name(b));
    if na == nb {
        return Vec::new();
    }
    let names = |s: &Value| -> Vec<String> {
        let mut out: Vec<String> = threads(s)
            .into_iter()
            .map(|(app, thread, _)| format!("{app}/{thread}"))
            .collect();
        out.sort();
        out
    };
    let (ta, tb) = (names(a), names(b));
    if ta == tb {
        return vec![format!(
            "note: the runs' scenarios are named differently (A: {na}, B: {nb}) but have the \
             same applications and threads; rows pair them by name"
        )];
    }
    let only = |x: &[String], y: &[String]| -> String {
        let v: Vec<&str> = x
            .iter()
            .filter(|t| !y.contains(t))
            .map(String::as_str)
            .collect();
        if v.is_empty() {
            "none".into()
        } else {
            v.join(", ")
        }
    };
    vec![format!(
        "warning: the runs are of different scenarios (A: {na}, B: {nb}): threads are matched by \
         application and thread name only, so a row may pair threads that are not alike \
         (only in A: {}; only in B: {})",
        only(&ta, &tb),
        only(&tb, &ta)
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary(sched: &str, share_b: f64, p99_b: Option<u64>) -> Value {
        json!({
            "scenario": "pair", "sched": sched, "cpus_online": 1, "deterministic": true,
            "trust": {"trusted": true},
            "apps": [{"name": "pair", "threads": [
                {"name": "A", "measured_share": 1.0 - share_b, "share_error_pp": 0.0,
                 "max_abs_lag_quanta": 0.5,
                 "wait": {"p50_ns": 50_000, "p99_ns": 2_000_000, "max_ns": 2_100_000, "count": 10}},
                {"name": "B", "measured_share": share_b, "share_error_pp": 0.1,
                 "max_abs_lag_quanta": 0.7,
                 "wait": {"p50_ns": 14_000_000, "p99_ns": p99_b,
                          "max_ns": p99_b.map(|p| p + 1_000_000), "count": 3}},
            ]}],
        })
    }

    #[test]
    fn threads_are_side_by_side_with_differences() {
        let a = summary("stride", 0.125, Some(14_000_000));
        let mut b = summary("lottery", 0.130, Some(60_000_000));
        b["apps"][0]["threads"][1]["share_error_pp"] = json!(0.6);
        b["envs"] = json!([{"name": "pair", "turns": 800, "repossessions": 4}]);
        let t = table((Path::new("ra"), &a), (Path::new("rb"), &b));
        assert!(t.contains("A: ra — scenario pair, sched stride"), "{t}");
        // B's environment's turns repossessed under its line; A has none
        // recorded (a summary without `envs`).
        assert!(
            t.contains("sched lottery, cpus 1, det, trusted\n   turns repossessed: pair 4 of 800 (0.50%)\n"),
            "{t}"
        );
        assert_eq!(t.matches("turns repossessed").count(), 1, "{t}");
        assert!(t.contains("B: rb — scenario pair, sched lottery"), "{t}");
        let row = t.lines().find(|l| l.starts_with("pair/B ")).unwrap();
        let cells: Vec<&str> = row.split_whitespace().filter(|c| *c != "|").collect();
        assert_eq!(
            cells,
            [
                "pair/B", "12.50", "13.00", "+0.50", "0.10", "0.60", "+0.50", "0.70", "0.70",
                "+0.00", "14.000", "14.000", "+0.000", "14.000", "60.000", "+46.000", "15.000",
                "61.000", "+46.000"
            ],
            "{t}"
        );
    }

    #[test]
    fn a_thread_in_one_run_only_and_a_missing_wait_show_dashes() {
        let a = summary("stride", 0.125, None);
        let mut b = summary("stride", 0.125, Some(1));
        b["apps"][0]["threads"][1]["name"] = json!("C");
        let t = table((Path::new("ra"), &a), (Path::new("rb"), &b));
        let row_b = t.lines().find(|l| l.starts_with("pair/B ")).unwrap();
        assert!(row_b.contains("12.50         -         -"), "{t}");
        let row_c = t.lines().find(|l| l.starts_with("pair/C ")).unwrap();
        assert!(
            row_c
                .trim_start_matches("pair/C")
                .trim_start()
                .starts_with("|         -"),
            "{t}"
        );
        assert_eq!(t.lines().count(), 7, "{t}");
    }

    #[test]
    fn a_run_that_is_not_a_scenario_run_is_refused() {
        let dir = std::env::temp_dir().join(format!("exo-compare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("summary.json"), r#"{"commit":"x"}"#).unwrap();
        assert!(load(&dir).unwrap_err().contains("not a scenario run"));
        assert!(load(&dir.join("nowhere")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn runs_of_different_scenarios_are_warned_about() {
        let a = summary("stride", 0.125, None);
        let mut b = summary("stride", 0.125, None);
        assert!(warnings(&a, &b).is_empty());
        // A variant of one scenario (a sweep's, a trial's): a note only.
        b["scenario"] = json!("pair-x-seed2");
        let w = warnings(&a, &b);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("note: ") && w[0].contains("same applications and threads"));
        // Another scenario, with a thread of its own: a warning naming it.
        b["scenario"] = json!("other");
        b["apps"][0]["threads"][1]["name"] = json!("C");
        let w = warnings(&a, &b);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("warning: the runs are of different scenarios (A: pair, B: other)")
                && w[0].contains("(only in A: pair/B; only in B: pair/C)"),
            "{w:?}"
        );
    }

    #[test]
    fn each_run_is_described_with_the_schedulers_its_applications_ran_under() {
        let mut a = summary("eevdf", 0.125, None);
        a["apps"][0]["scheduler_timeline"] = json!([
            {"t_ns": 0, "scheduler": "eevdf"},
            {"t_ns": 5, "scheduler": "stride"},
            {"t_ns": 9, "scheduler": "eevdf"},
        ]);
        let t = table((Path::new("ra"), &a), (Path::new("rb"), &a));
        assert!(
            t.contains("A: ra — scenario pair, pair under eevdf→stride→eevdf,"),
            "{t}"
        );
    }
}
