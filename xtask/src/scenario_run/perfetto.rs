//! The run as a Chrome trace-event JSON (`trace.json`; opens in Perfetto
//! and chrome://tracing).
//!
//! Three groups of tracks, each a process of the trace:
//! - `cores` (pid 1): a track per core, a slice per stretch an environment
//!   ran there (the kernel's trace), and the run's events as instants;
//! - `threads by core` (pid 2): a track per core, a slice per stretch a
//!   thread of an application ran there, named `app/thread`;
//! - one process per application (pid 3, 4, …): a track per thread, a
//!   slice per stretch it ran, named after the core.
//!
//! Track ids (`tid`) are unique across the whole trace (Perfetto's JSON
//! importer keys threads by `tid`): core `c`'s is `c`, its thread track's
//! [`CORE_THREADS_TID`] + `c`, thread `t` of application `a`'s
//! [`APP_TID`] + `a` · [`APP_TID_STRIDE`] + `t` + 1 (the control thread,
//! which the scenario does not list, + 0).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::rundata::RunData;

/// The process of the environments' core tracks.
pub const CORES_PID: u32 = 1;
/// The process of the threads' core tracks.
pub const CORE_THREADS_PID: u32 = 2;
/// Track id of core 0's thread track.
pub const CORE_THREADS_TID: u64 = 1_000_000;
/// Track id of application 0's thread 0.
pub const APP_TID: u64 = 2_000_000;
/// Track ids per application.
pub const APP_TID_STRIDE: u64 = 100_000;

/// The process of application `app`'s thread tracks.
pub fn app_pid(app: u32) -> u32 {
    3 + app
}

/// A Chrome trace-event JSON of the run (see the module's comment).
pub fn perfetto_trace(data: &RunData) -> Value {
    let name = |app: Option<u32>| {
        app.and_then(|a| data.apps.get(a as usize))
            .map_or("other env".to_string(), |a| a.name.clone())
    };
    let thread_name = |app: u32, thread: Option<u32>| {
        thread
            .and_then(|t| {
                let a = data.apps.get(app as usize)?;
                a.threads.iter().find(|x| x.id == t).map(|x| x.name.clone())
            })
            .unwrap_or_else(|| "control".to_string())
    };
    let us = |t: u64| t.saturating_sub(data.start_ns) as f64 / 1000.0;
    // A slice's `(ts, dur)` from the measurement's start on (a run that
    // began before it was drawn from 0 at its whole length, over the next
    // one); `None` for one over before it.
    let span = |start: u64, end: u64| {
        let start = start.max(data.start_ns);
        (end > start).then(|| (us(start), (end - start) as f64 / 1000.0))
    };
    let meta = |what: &str, pid: u32, tid: u64, name: String| json!({"name": what, "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}});
    let mut events = vec![
        meta("process_name", CORES_PID, 0, "cores".into()),
        meta(
            "process_name",
            CORE_THREADS_PID,
            CORE_THREADS_TID,
            "threads by core".into(),
        ),
    ];
    for c in 0..data.cpus_online {
        events.push(meta(
            "thread_name",
            CORES_PID,
            u64::from(c),
            format!("core {c}"),
        ));
        events.push(meta(
            "thread_name",
            CORE_THREADS_PID,
            CORE_THREADS_TID + u64::from(c),
            format!("core {c}"),
        ));
    }
    events.extend(data.runs.iter().filter_map(|r| {
        let (ts, dur) = span(r.start_ns, r.end_ns)?;
        Some(
            json!({"name": name(r.app), "cat": "run", "ph": "X", "pid": CORES_PID,
                    "tid": r.core, "ts": ts, "dur": dur}),
        )
    }));
    let app_tid = |app: u32, thread: Option<u32>| {
        APP_TID + u64::from(app) * APP_TID_STRIDE + thread.map_or(0, |t| u64::from(t) + 1)
    };
    let (mut apps, mut tracks) = (BTreeSet::new(), BTreeSet::new());
    for r in &data.thread_runs {
        let Some((ts, dur)) = span(r.start_ns, r.end_ns) else {
            continue;
        };
        if apps.insert(r.app) {
            events.push(meta(
                "process_name",
                app_pid(r.app),
                app_tid(r.app, None),
                name(Some(r.app)),
            ));
        }
        if tracks.insert((r.app, r.thread)) {
            events.push(meta(
                "thread_name",
                app_pid(r.app),
                app_tid(r.app, r.thread),
                thread_name(r.app, r.thread),
            ));
        }
        let who = format!("{}/{}", name(Some(r.app)), thread_name(r.app, r.thread));
        let args = json!({"app": name(Some(r.app)), "thread": r.thread, "core": r.core});
        events.push(
            json!({"name": who, "cat": "thread", "ph": "X", "pid": CORE_THREADS_PID,
                           "tid": CORE_THREADS_TID + u64::from(r.core),
                           "ts": ts, "dur": dur, "args": args}),
        );
        events.push(
            json!({"name": format!("core {}", r.core), "cat": "thread", "ph": "X",
                           "pid": app_pid(r.app), "tid": app_tid(r.app, r.thread),
                           "ts": ts, "dur": dur, "args": args}),
        );
    }
    events.extend(data.events.iter().map(|e| {
        let label = match e.app {
            Some(_) => format!("{} {}", e.kind, name(e.app)),
            None => e.kind.clone(),
        };
        json!({"name": label, "cat": "event", "ph": "i", "s": "g", "pid": CORES_PID,
               "tid": e.core.unwrap_or(0), "ts": us(e.t_ns), "args": {"detail": e.detail}})
    }));
    json!({"traceEvents": events, "displayTimeUnit": "ms"})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rundata::{App, CoreRun, Thread, ThreadRun};
    use crate::scenario_run::thread_runs::Switches;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn app(name: &str, threads: u32) -> App {
        App {
            name: name.into(),
            threads: (1..=threads)
                .map(|id| Thread {
                    id,
                    name: format!("{name}.t{id}"),
                    ..Thread::default()
                })
                .collect(),
            ..App::default()
        }
    }

    /// The `X` events of category `cat`, by track `(pid, tid)`.
    fn slices<'a>(trace: &'a Value, cat: &str) -> BTreeMap<(u64, u64), Vec<&'a Value>> {
        let mut by: BTreeMap<(u64, u64), Vec<&Value>> = BTreeMap::new();
        for e in trace["traceEvents"].as_array().unwrap() {
            if e["ph"] == "X" && e["cat"] == cat {
                let key = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
                by.entry(key).or_default().push(e);
            }
        }
        by
    }

    fn track_name(trace: &Value, pid: u64, tid: u64) -> Option<String> {
        trace["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| {
                e["ph"] == "M" && e["name"] == "thread_name" && e["pid"] == pid && e["tid"] == tid
            })
            .and_then(|e| e["args"]["name"].as_str().map(String::from))
    }

    /// Checks `trace` against `data`: one slice per thread stretch on its
    /// core's thread track and one on its thread's own track, at its time;
    /// no two slices of one track overlap; every thread slice inside one
    /// of its environment's slices on that core.
    fn check(data: &RunData) -> Result<(), String> {
        let trace = perfetto_trace(data);
        // What the trace shows starts with the measurement.
        let shown: Vec<&ThreadRun> = data
            .thread_runs
            .iter()
            .filter(|r| r.end_ns > data.start_ns)
            .collect();
        let by_core = slices(&trace, "thread");
        let expected = 2 * shown.len();
        let got: usize = by_core.values().map(Vec::len).sum();
        if got != expected {
            return Err(format!("{got} thread slices for {expected}"));
        }
        for r in shown {
            let start = r.start_ns.max(data.start_ns);
            let ts = (start - data.start_ns) as f64 / 1000.0;
            let dur = (r.end_ns - start) as f64 / 1000.0;
            let same = |e: &&&Value| e["ts"].as_f64() == Some(ts) && e["dur"].as_f64() == Some(dur);
            let core_track = (
                u64::from(CORE_THREADS_PID),
                CORE_THREADS_TID + u64::from(r.core),
            );
            let on_core: Vec<_> = by_core[&core_track].iter().filter(same).collect();
            if on_core.len() != 1 || on_core[0]["args"]["thread"] != json!(r.thread) {
                return Err(format!("{r:?} on its core's track: {on_core:?}"));
            }
            let tid = APP_TID
                + u64::from(r.app) * APP_TID_STRIDE
                + r.thread.map_or(0, |t| u64::from(t) + 1);
            let own = (u64::from(app_pid(r.app)), tid);
            let mine: Vec<_> = by_core[&own].iter().filter(same).collect();
            if mine.len() != 1 || mine[0]["name"] != format!("core {}", r.core) {
                return Err(format!("{r:?} on its own track: {mine:?}"));
            }
            let inside = data.runs.iter().any(|e| {
                e.core == r.core
                    && e.app == Some(r.app)
                    && e.start_ns <= r.start_ns
                    && r.end_ns <= e.end_ns
            });
            if !inside {
                return Err(format!("{r:?} outside its environment's runs"));
            }
        }
        for (track, mut v) in slices(&trace, "thread")
            .into_iter()
            .chain(slices(&trace, "run"))
        {
            v.sort_by(|a, b| a["ts"].as_f64().partial_cmp(&b["ts"].as_f64()).unwrap());
            for w in v.windows(2) {
                let end = w[0]["ts"].as_f64().unwrap() + w[0]["dur"].as_f64().unwrap();
                if end > w[1]["ts"].as_f64().unwrap() + 1e-6 {
                    return Err(format!("{track:?}: {} overlaps {}", w[0], w[1]));
                }
            }
        }
        Ok(())
    }

    #[test]
    fn each_threads_stretch_is_one_slice_on_its_core_and_one_on_its_own_track() {
        let data = RunData {
            cpus_online: 2,
            start_ns: 1_000,
            apps: vec![app("a", 3), app("b", 1)],
            runs: vec![
                CoreRun {
                    core: 0,
                    start_ns: 1_000,
                    end_ns: 50_000,
                    app: Some(0),
                    thread: None,
                },
                CoreRun {
                    core: 0,
                    start_ns: 50_000,
                    end_ns: 90_000,
                    app: Some(1),
                    thread: None,
                },
                CoreRun {
                    core: 1,
                    start_ns: 1_000,
                    end_ns: 90_000,
                    app: Some(0),
                    thread: None,
                },
            ],
            thread_runs: vec![
                ThreadRun {
                    core: 0,
                    start_ns: 2_000,
                    end_ns: 20_000,
                    app: 0,
                    thread: Some(1),
                },
                ThreadRun {
                    core: 0,
                    start_ns: 20_000,
                    end_ns: 50_000,
                    app: 0,
                    thread: Some(2),
                },
                ThreadRun {
                    core: 0,
                    start_ns: 50_000,
                    end_ns: 90_000,
                    app: 1,
                    thread: Some(1),
                },
                ThreadRun {
                    core: 1,
                    start_ns: 1_000,
                    end_ns: 30_000,
                    app: 0,
                    thread: Some(3),
                },
                ThreadRun {
                    core: 1,
                    start_ns: 30_000,
                    end_ns: 31_000,
                    app: 0,
                    thread: None,
                },
            ],
            ..RunData::default()
        };
        check(&data).unwrap();
        let trace = perfetto_trace(&data);
        let core1 = CORE_THREADS_TID + 1;
        assert_eq!(track_name(&trace, 2, core1).as_deref(), Some("core 1"));
        assert_eq!(track_name(&trace, 3, APP_TID + 3).as_deref(), Some("a.t2"));
        assert_eq!(track_name(&trace, 3, APP_TID).as_deref(), Some("control"));
        assert_eq!(
            track_name(&trace, 4, APP_TID + APP_TID_STRIDE + 2).as_deref(),
            Some("b.t1")
        );
        let names: Vec<&str> = slices(&trace, "thread")[&(2, core1)]
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a/a.t3", "a/control"]);
        // The checker itself fails on an overlap and on a stretch outside
        // its environment.
        let mut bad = data.clone();
        bad.thread_runs[1].start_ns = 19_000;
        assert!(check(&bad).unwrap_err().contains("overlaps"));
        let mut bad = data.clone();
        bad.thread_runs[2].app = 0;
        assert!(check(&bad).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Random switch logs of two applications sharing two cores, each
        /// core's environments in random turns: the trace built from them
        /// passes every check.
        #[test]
        fn thread_tracks_from_any_switch_log_are_well_formed(
            turns in proptest::collection::vec(
                proptest::collection::vec((1u64..50, 0u32..3), 1..20),
                2,
            ),
            logs in proptest::collection::vec(
                (0u32..2, 0u32..2, proptest::collection::vec((0u64..40, -2i64..4), 0..30)),
                0..6,
            ),
            start_ns in 0u64..40,
        ) {
            let mut runs = Vec::new();
            for (core, turns) in (0..).zip(&turns) {
                let mut t = 0;
                for &(len, who) in turns {
                    // who 2: another environment (not an application).
                    let app = (who < 2).then_some(who);
                    runs.push(CoreRun { core, start_ns: t, end_ns: t + len, app, thread: None });
                    t += len;
                }
            }
            let end_ns = runs.iter().map(|r| r.end_ns).max().unwrap();
            let mut switches = Switches::default();
            for (app, core, points) in &logs {
                let mut t = 0u64;
                let mut r = Vec::new();
                for &(dt, id) in points {
                    // Mostly forward, sometimes back (a stop dated at a
                    // deadline before the start).
                    t = if dt < 3 { t.saturating_sub(dt) } else { t + dt };
                    r.extend([json!(t), json!(id)]);
                }
                switches.add_record(*app, &json!({"log_core": core, "dropped": 0, "r": r}));
            }
            let data = RunData {
                cpus_online: 2,
                start_ns,
                apps: vec![app("a", 3), app("b", 3)],
                thread_runs: switches.thread_runs(&runs, end_ns),
                runs,
                ..RunData::default()
            };
            prop_assert!(data.thread_runs.iter().all(|r| r.start_ns < r.end_ns));
            if let Err(e) = check(&data) {
                prop_assert!(false, "{}", e);
            }
        }
    }
}
