//! What a scheduling experiment measured, in one host-side model.
//!
//! Two halves of the runner meet here. The scenario side (scenario files,
//! the kernel and libOS records they produce) fills a [`RunData`] from a
//! run's console; the results side (`samples.csv`, `events.csv`, the
//! Perfetto trace, the fairness metrics in `summary.json`, the plots) reads
//! only a [`RunData`]. Either side can change without the other as long as
//! this model holds; extend it additively.
//!
//! Times are nanoseconds since boot on the kernel's global clock.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Everything a scheduling run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunData {
    /// The scenario as run (its parsed form, as JSON), if there was one.
    pub scenario: Option<Value>,
    /// The scenario's name (file stem) or `default`.
    pub scenario_name: String,
    pub seed: u64,
    /// Whether the run was made deterministic (`det=1`: `-icount`, fixed seed).
    pub deterministic: bool,
    /// Whether its measurements passed the run's trust checks
    /// (`summary.json`'s `trust.trusted`, [`crate::trust`]), so a figure
    /// drawn from the data alone can say when they did not; `None` in runs
    /// made before it was kept here (the plot then reads `summary.json`).
    #[serde(default)]
    pub trusted: Option<bool>,
    /// How the run ended when not by itself or by `quit` (`summary.json`'s
    /// `exit`: `interrupted`, `timeout`, `sampling_stopped`, a failed
    /// check, …): its figures end where it stopped, or on a failure.
    /// `None` when it ended well, and in runs made before it was kept
    /// here (the plot then reads `summary.json`).
    #[serde(default)]
    pub ended: Option<String>,
    pub cpus_online: u32,
    /// Length of one slice.
    pub slice_ns: u64,
    /// When measurement started and how long it lasted.
    pub start_ns: u64,
    pub duration_ns: u64,
    pub apps: Vec<App>,
    /// Cumulative per-thread measurements, in time order.
    pub samples: Vec<Sample>,
    /// When threads slept, as reported with each sample.
    #[serde(default)]
    pub sleeps: Vec<SleepSpan>,
    /// Threads' waits for a core, per sampling interval (none in runs made
    /// before applications reported them).
    #[serde(default)]
    pub waits: Vec<WaitInterval>,
    /// Swaps, ticket changes, repossessions, console commands, … in time order.
    pub events: Vec<Event>,
    /// Request streams of applications with `serve` threads (none in runs
    /// without, or made before they existed).
    #[serde(default)]
    pub requests: Vec<RequestLog>,
    /// Who ran where, when (for the slice map and the Perfetto trace).
    pub runs: Vec<CoreRun>,
    /// Turn changes the kernel's trace could not record (a core's buffer
    /// was full): `runs` is incomplete from the first of them on.
    #[serde(default)]
    pub trace_dropped: u64,
    /// Which thread of an application ran on which core, when (the
    /// applications' `runs` records, inside their environment's `runs`);
    /// none in runs made before applications reported them.
    #[serde(default)]
    pub thread_runs: Vec<ThreadRun>,
    /// Thread switches the applications' per-core logs could not hold
    /// (the sampler fell behind): `thread_runs` misses some from then on.
    #[serde(default)]
    pub thread_switches_dropped: u64,
    /// Samples left out because fewer of their rows arrived than their
    /// records announced (application, time): the run's end cut one, or a
    /// record was refused.
    #[serde(default)]
    pub cut_samples: Vec<(u32, u64)>,
    /// Per application, its libOS's counters as of its latest sample; none
    /// in runs made before applications reported them.
    #[serde(default)]
    pub counters: Vec<AppCounters>,
    /// Per application and sample, its threads' runs in progress at the
    /// sample's instant (global-clock ns, not yet in their `cpu_ns`); none
    /// in runs made before applications reported them.
    #[serde(default)]
    pub running: Vec<RunningAt>,
}

/// An application's threads' runs in progress at one of its samples:
/// from each run's start (or its turn's, if later) to the sample's instant
/// (or the turn's end, if earlier), over every core but the sampler's, on
/// the global clock (kernel interrupts included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RunningAt {
    /// Index into [`RunData::apps`].
    pub app: u32,
    pub t_ns: u64,
    pub running_ns: u64,
}

/// An application's libOS counters at one sample (cumulative).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AppCounters {
    pub app: u32,
    /// Turns its policy decided.
    pub turns_decided: u64,
    /// Turns a preempted thread ran on without a decision because the
    /// libOS's runtime lock stayed busy.
    pub turns_run_on: u64,
    /// CPU time of its control thread (samples, timed events, console),
    /// outside the policy; `None` before applications reported it.
    pub control_ns: Option<u64>,
    /// The longest CPU time its libOS charged one of its policy's threads
    /// in one stop (ns); `None` before applications reported it.
    #[serde(default)]
    pub longest_charge_ns: Option<u64>,
}

impl RunData {
    /// Core time application `app` ran from `t_ns` to the end of the run,
    /// over every core, from the kernel's trace; `None` when the trace
    /// dropped changes (the end of the run is what a full buffer loses).
    pub fn ran_after(&self, app: u32, t_ns: u64) -> Option<u64> {
        (self.trace_dropped == 0).then(|| {
            self.runs
                .iter()
                .filter(|r| r.app == Some(app))
                .map(|r| r.end_ns.saturating_sub(r.start_ns.max(t_ns)))
                .sum()
        })
    }

    /// Application `app`'s threads' runs in progress at its sample at
    /// `t_ns`; `None` if the sample did not report them.
    pub fn running_at(&self, app: u32, t_ns: u64) -> Option<u64> {
        self.running
            .iter()
            .find(|r| r.app == app && r.t_ns == t_ns)
            .map(|r| r.running_ns)
    }
}

/// One application (an environment running a libOS scheduler).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct App {
    pub name: String,
    /// The kernel's environment id.
    pub env: u64,
    /// Which scheduler it ran from when: `(t_ns, name)`, the name a
    /// registered policy's (`sched_registry::names`), first entry at or
    /// before `start_ns`.
    pub scheduler_timeline: Vec<(u64, String)>,
    /// Cores the application held slices on, and how many per core.
    pub slices: Vec<(u32, u32)>,
    /// How many of its threads can run at once: the cores it holds slots
    /// on. No thread gets more than 1/capacity of what the application got.
    #[serde(default)]
    pub capacity: u32,
    pub threads: Vec<Thread>,
    /// Its ticket currencies (`[[app.currency]]`), in declaration order:
    /// currency `k` (from 1) is `currencies[k - 1]`.
    #[serde(default)]
    pub currencies: Vec<crate::metrics::Currency>,
}

impl App {
    /// The schedulers it ran under, in order (`eevdf→stride→eevdf`).
    pub fn schedulers(&self) -> String {
        scheduler_sequence(self.scheduler_timeline.iter().map(|(_, s)| s.as_str()))
    }
}

/// Scheduler names in the order they ran, joined by arrows; a name
/// repeated back to back (a swap to the policy already running, or every
/// sample naming the same one) counts once.
pub fn scheduler_sequence<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut out: Vec<&str> = Vec::new();
    for name in names {
        if out.last() != Some(&name) {
            out.push(name);
        }
    }
    out.join("→")
}

/// One user-level thread of an application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    /// Id within its application (as the libOS numbers it).
    pub id: u32,
    pub name: String,
    /// Workload behaviour (`cpu`, `sleep`, `fraction`, `lock`, `bursty`, …).
    pub behaviour: String,
    /// Tickets (weight) from when: `(t_ns, tickets)`, first at or before
    /// `start_ns`.
    pub tickets_timeline: Vec<(u64, u64)>,
    /// When the thread joined and (if it did) left, in ns.
    pub joined_ns: u64,
    pub left_ns: Option<u64>,
    /// The currency its tickets are of (0: the base one; else an index
    /// from 1 into [`App::currencies`]).
    #[serde(default)]
    pub currency: u32,
}

/// A thread's cumulative measurements at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub t_ns: u64,
    /// The core the sample was taken on (the core that ran the thread last).
    pub core: u32,
    /// Index into [`RunData::apps`].
    pub app: u32,
    /// [`Thread::id`].
    pub thread: u32,
    /// CPU time the thread has received so far.
    pub cpu_ns: u64,
    /// Work done so far (loop iterations of its workload).
    pub iterations: u64,
    /// Time the thread has spent asleep so far, a sleep in progress
    /// included; the ideal share counts only time it wanted the CPU.
    pub sleep_ns: u64,
    /// Time since the thread started (until it left); `None` in runs made
    /// before applications reported it.
    #[serde(default)]
    pub alive_ns: Option<u64>,
}

/// One stretch of time a thread slept (not wanting the CPU), inside the
/// interval that ends at the sample it was reported with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SleepSpan {
    /// The sample it was reported with.
    pub t_ns: u64,
    /// Index into [`RunData::apps`].
    pub app: u32,
    /// [`Thread::id`].
    pub thread: u32,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// An application's request stream (docs/metrics.md, "Request latency"):
/// what it was asked to serve, and what it reported at each sample.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestLog {
    /// Index into [`RunData::apps`].
    pub app: u32,
    /// When the stream started (global clock): its first arrival's time 0.
    #[serde(default)]
    pub t0_ns: u64,
    pub rate_per_s: u64,
    pub mean_service_ns: f64,
    /// The service loop's speed the application measured at its start.
    pub iterations_per_ms: u64,
    pub intervals: Vec<RequestInterval>,
}

/// Requests reported with the sample at `t_ns`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestInterval {
    pub t_ns: u64,
    /// Arrived and completed since the stream started.
    pub arrived: u64,
    pub completed: u64,
    /// The longest latency so far.
    pub max_ns: u64,
    /// `(bucket, requests)`: latencies (arrival to completion) recorded
    /// since the previous report, per bucket of `abi::waits`.
    pub buckets: Vec<(u32, u64)>,
}

/// One thread's waits for a core (docs/metrics.md, "Wait time") inside
/// the sampling interval that ends at `t_ns`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitInterval {
    /// The sample it was reported with.
    pub t_ns: u64,
    /// Index into [`RunData::apps`].
    pub app: u32,
    /// [`Thread::id`].
    pub thread: u32,
    /// `(bucket, waits)`: how many waits fell in each bucket of
    /// `abi::waits` in the interval (buckets with none left out).
    pub buckets: Vec<(u32, u64)>,
    /// The longest wait in the interval.
    pub max_ns: u64,
    /// Waits the thread had so far, as the application counted them.
    pub total: u64,
}

/// Something that happened during a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub t_ns: u64,
    /// `swap`, `tickets`, `thread_join`, `thread_leave`, `app_start`,
    /// `app_stop`, `slices`, `repossession`, `console`, …
    pub kind: String,
    /// Index into [`RunData::apps`], when the event concerns one.
    pub app: Option<u32>,
    pub thread: Option<u32>,
    pub core: Option<u32>,
    /// Human-readable details (`stride -> lottery`, `tickets 100 -> 300`,
    /// the console command line, …).
    pub detail: String,
}

/// One stretch of time a core spent running one environment (or idle).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreRun {
    pub core: u32,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Index into [`RunData::apps`]; `None` is idle or an environment that is
    /// not an application.
    pub app: Option<u32>,
    /// The thread that ran, when the libOS reported it.
    pub thread: Option<u32>,
}

/// One stretch of time a thread of an application ran on one core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadRun {
    pub core: u32,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Index into [`RunData::apps`].
    pub app: u32,
    /// [`Thread::id`]; `None` is a thread the scenario does not list (the
    /// application's control thread).
    pub thread: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(core: u32, start_ns: u64, end_ns: u64, app: Option<u32>) -> CoreRun {
        CoreRun {
            core,
            start_ns,
            end_ns,
            app,
            thread: None,
        }
    }

    #[test]
    fn what_an_application_ran_after_an_instant_is_clipped_to_it() {
        let mut data = RunData {
            runs: vec![
                run(0, 0, 100, Some(0)),
                run(0, 100, 150, None),
                run(0, 150, 400, Some(0)),
                run(1, 0, 400, Some(1)),
                run(2, 50, 300, Some(0)),
            ],
            ..RunData::default()
        };
        // Core 0: 150..400 less 150..200; core 2: 200..300.
        assert_eq!(data.ran_after(0, 200), Some(200 + 100));
        assert_eq!(data.ran_after(0, 0), Some(100 + 250 + 250));
        assert_eq!(data.ran_after(0, 400), Some(0));
        assert_eq!(data.ran_after(1, 390), Some(10));
        data.trace_dropped = 1;
        assert_eq!(data.ran_after(0, 200), None, "a full trace lost the end");
    }
}
