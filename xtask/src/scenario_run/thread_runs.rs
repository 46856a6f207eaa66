//! Which thread ran on which core, when, from the applications' `runs`
//! records (`workloads/src/bin/app.rs`): per core, the points from which
//! a thread ran (or none did), as the libOS logged them at each dispatch
//! and stop. A thread can run only while its environment holds the core,
//! so each stretch is cut to the environment's own runs there (the
//! kernel's trace): the thread tracks never claim time the kernel gave
//! another environment.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::rundata::{CoreRun, ThreadRun};

/// `id` in a `runs` record: no thread ran from then on.
const STOPPED: i64 = -1;
/// `id` in a `runs` record: a thread the scenario does not list ran (the
/// application's control thread).
const UNLISTED: i64 = -2;

/// Every application's switch points per core, in the order reported.
#[derive(Debug, Default)]
pub struct Switches {
    /// `(app, core)` → `(t_ns, id)`.
    points: BTreeMap<(u32, u32), Vec<(u64, i64)>>,
    /// `(app, core)` → switches its log dropped (each record repeats the
    /// count so far).
    dropped: BTreeMap<(u32, u32), u64>,
}

impl Switches {
    /// Adds one `runs` record of application `app`.
    pub fn add_record(&mut self, app: u32, v: &Value) {
        let Some(core) = v["log_core"].as_u64().and_then(|c| u32::try_from(c).ok()) else {
            return;
        };
        let d = self.dropped.entry((app, core)).or_default();
        *d = (*d).max(v["dropped"].as_u64().unwrap_or(0));
        let r = v["r"].as_array().map_or(&[][..], Vec::as_slice);
        let points = self.points.entry((app, core)).or_default();
        points.extend(
            r.chunks_exact(2)
                .filter_map(|p| Some((p[0].as_u64()?, p[1].as_i64()?))),
        );
    }

    /// Switches the applications' logs dropped, all cores.
    pub fn dropped(&self) -> u64 {
        self.dropped.values().sum()
    }

    /// Every thread's stretches on every core, each cut to its
    /// application's own runs on that core (`runs`, the kernel's trace); a
    /// thread still running at the end runs until `end_ns`. Sorted by core
    /// and start.
    pub fn thread_runs(&self, runs: &[CoreRun], end_ns: u64) -> Vec<ThreadRun> {
        let mut env_runs: BTreeMap<(u32, u32), Vec<(u64, u64)>> = BTreeMap::new();
        for r in runs {
            if let Some(app) = r.app {
                env_runs
                    .entry((app, r.core))
                    .or_default()
                    .push((r.start_ns, r.end_ns));
            }
        }
        for v in env_runs.values_mut() {
            v.sort_unstable();
        }
        let mut out = Vec::new();
        for (&(app, core), points) in &self.points {
            let Some(held) = env_runs.get(&(app, core)) else {
                continue;
            };
            for (start, end, id) in stretches(points, end_ns) {
                let thread = u32::try_from(id).ok();
                // The environment's runs that overlap [start, end).
                let first = held.partition_point(|&(_, e)| e <= start);
                for &(s, e) in held[first..].iter().take_while(|&&(s, _)| s < end) {
                    let (s, e) = (s.max(start), e.min(end));
                    if s < e {
                        out.push(ThreadRun {
                            core,
                            start_ns: s,
                            end_ns: e,
                            app,
                            thread,
                        });
                    }
                }
            }
        }
        one_core_at_a_time(&mut out);
        out.sort_by_key(|r| (r.core, r.start_ns, r.app));
        out
    }
}

/// A thread runs on one core at a time, but the clocks its stretches are
/// dated by are read on different cores around the hand-off (a dispatch
/// reads the time before it takes the lock and finds the stop another core
/// dated after it): a stretch that starts before the same thread's
/// previous one ended starts at that end instead (microseconds), and one
/// left empty goes.
fn one_core_at_a_time(runs: &mut Vec<ThreadRun>) {
    runs.sort_by_key(|r| (r.app, r.thread, r.start_ns, r.end_ns));
    let mut last: Option<(u32, Option<u32>, u64)> = None;
    runs.retain_mut(|r| {
        if let Some((app, thread, end)) = last {
            if (app, thread) == (r.app, r.thread) {
                r.start_ns = r.start_ns.max(end);
            }
        }
        if r.start_ns >= r.end_ns {
            return false;
        }
        last = Some((r.app, r.thread, r.end_ns));
        true
    });
}

/// One core's switch points as stretches `(start, end, id)`: each point
/// starts a thread (or, [`STOPPED`], ends one) and the next ends it; the
/// last runs until `end_ns`. A point earlier than the previous stretch's
/// end (a stop dated at a deadline the thread started after) starts no
/// earlier than that end, so no two stretches overlap.
fn stretches(points: &[(u64, i64)], end_ns: u64) -> Vec<(u64, u64, i64)> {
    let mut out = Vec::new();
    let mut running: Option<(u64, i64)> = None;
    let mut floor = 0;
    let mut close = |running: Option<(u64, i64)>, at: u64, floor: &mut u64| {
        if let Some((start, id)) = running {
            let start = start.max(*floor);
            if at > start {
                out.push((start, at, id));
                *floor = at;
            }
        }
    };
    for &(t, id) in points {
        close(running, t, &mut floor);
        running = (id != STOPPED && (id >= 0 || id == UNLISTED)).then_some((t, id));
    }
    close(running, end_ns, &mut floor);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(core: u32, start_ns: u64, end_ns: u64, app: u32) -> CoreRun {
        CoreRun {
            core,
            start_ns,
            end_ns,
            app: Some(app),
            thread: None,
        }
    }

    fn run(core: u32, start_ns: u64, end_ns: u64, app: u32, thread: Option<u32>) -> ThreadRun {
        ThreadRun {
            core,
            start_ns,
            end_ns,
            app,
            thread,
        }
    }

    #[test]
    fn each_switch_starts_a_stretch_the_next_one_ends() {
        let mut s = Switches::default();
        // Core 1: thread 1 from 10, stopped at 40, the control thread from
        // 50, thread 2 from 60 (in a second record) to the end.
        s.add_record(
            0,
            &json!({"log_core": 1, "dropped": 0, "r": [10, 1, 40, -1, 50, -2]}),
        );
        s.add_record(0, &json!({"log_core": 1, "dropped": 2, "r": [60, 2]}));
        let got = s.thread_runs(&[env(1, 0, 1000, 0)], 100);
        assert_eq!(
            got,
            [
                run(1, 10, 40, 0, Some(1)),
                run(1, 50, 60, 0, None),
                run(1, 60, 100, 0, Some(2)),
            ]
        );
        assert_eq!(s.dropped(), 2);
    }

    #[test]
    fn a_stretch_is_cut_to_its_environments_runs_on_that_core() {
        let mut s = Switches::default();
        s.add_record(
            0,
            &json!({"log_core": 0, "dropped": 0, "r": [0, 1, 100, -1]}),
        );
        s.add_record(1, &json!({"log_core": 0, "dropped": 0, "r": [0, 7]}));
        // Core 0: app 0 until 30, app 1 until 60, app 0 until 80, idle
        // after; core 1 (app 0) does not count for core 0's stretches.
        let envs = [
            env(0, 0, 30, 0),
            env(0, 30, 60, 1),
            env(0, 60, 80, 0),
            env(1, 0, 100, 0),
        ];
        let got = s.thread_runs(&envs, 100);
        assert_eq!(
            got,
            [
                run(0, 0, 30, 0, Some(1)),
                run(0, 30, 60, 1, Some(7)),
                run(0, 60, 80, 0, Some(1)),
            ]
        );
    }

    #[test]
    fn a_thread_handed_to_another_core_starts_there_when_it_left_the_first() {
        let mut s = Switches::default();
        // Thread 1 left core 0 at 50; core 1 read its clock at 48 before
        // it found the stop and picked the thread.
        s.add_record(
            0,
            &json!({"log_core": 0, "dropped": 0, "r": [0, 1, 50, -1]}),
        );
        s.add_record(
            0,
            &json!({"log_core": 1, "dropped": 0, "r": [48, 1, 49, -1, 60, 1]}),
        );
        let envs = [env(0, 0, 100, 0), env(1, 0, 100, 0)];
        let got = s.thread_runs(&envs, 100);
        assert_eq!(
            got,
            [run(0, 0, 50, 0, Some(1)), run(1, 60, 100, 0, Some(1))]
        );
    }

    #[test]
    fn a_stop_dated_before_its_start_leaves_no_stretch_and_no_overlap() {
        // Started at 50 in the grace after a deadline at 40, stopped "at"
        // the deadline; then thread 2 from 45 (never before 50's end).
        let s = stretches(&[(10, 1), (40, -1), (50, 3), (40, -1), (45, 2)], 90);
        assert_eq!(s, [(10, 40, 1), (45, 90, 2)]);
        let s = stretches(&[(10, 1), (30, 2), (20, 3)], 40);
        assert_eq!(s, [(10, 30, 1), (30, 40, 3)]);
    }
}
