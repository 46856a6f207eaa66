//! The scenario side of a run: turns the applications' and the kernel's
//! records into a [`RunData`], keeps the fairness figures up to date as
//! samples arrive (the live table), and summarises each thread at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use abi::record::RecordKind;
use serde_json::{json, Value};

use crate::metrics;
use crate::metrics::fairness::{add_sleeps, rows, unplaced_sleep, Row, Sleeps, UNPLACED_SLEEP_NS};
pub use crate::metrics::fairness::{Fairness, ThreadFairness};
use crate::metrics::requests;
use crate::metrics::waits::{self, WaitDist};
use crate::records::Records;
use crate::rundata::{
    App, AppCounters, CoreRun, Event, RunData, RunningAt, Sample, SleepSpan, Thread, WaitInterval,
};
use crate::scenario::{expand_threads, Scenario};
use crate::Error;
pub use perfetto::perfetto_trace;
use thread_runs::Switches;

mod perfetto;
mod thread_runs;

/// Collects sample records per application and feeds whole snapshots (a
/// snapshot may span several records with the same `t_ns`), with the
/// swaps and ticket changes between them.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    /// Each application's capacity (see [`Fairness::capacity`]).
    pub capacities: BTreeMap<String, u32>,
    /// Per application: the snapshot being gathered.
    pending: BTreeMap<String, Pending>,
    pub apps: BTreeMap<String, Fairness>,
    /// Per application: the schedulers it ran under so far, in order (one
    /// that swapped back appears again), for the table to name them all.
    pub policies: BTreeMap<String, Vec<String>>,
    /// Per application and thread id: its waits for a core so far.
    pub waits: BTreeMap<String, BTreeMap<u32, WaitDist>>,
    /// The currencies of the applications that have any.
    currencies: BTreeMap<String, crate::scenario::CurrencyPlan>,
    /// Whether the run's applications close their samples (a
    /// `sample_end` came): see [`sample_whole`].
    closed_samples: bool,
}

/// A sample's records that close it: its `sample_end`, if it came, and
/// the records of the sample that came.
#[derive(Clone, Copy, Debug, Default)]
struct Closing {
    /// The records its `sample_end` says the sample sent before it
    /// (`None`: no `sample_end` came).
    sent: Option<u64>,
    /// Its records ([`SAMPLE_RECORDS`]) that came.
    came: u64,
}

/// The records a `sample_end` counts: every record of a sample but it.
const SAMPLE_RECORDS: [&str; 4] = ["sample", "sleeps", "waits", "runs"];

/// Whether a sample is whole, in a run whose applications close their
/// samples (`closed_samples`: a `sample_end` came in it): iff its
/// `sample_end` came, and with it every record it counts. Anything else
/// the run's end (or a record refused, or lost) cut, and is left out.
/// The mark says only that the sample's records are all here: sleep a
/// thread's log lost (its `dropped`), unplaced by them, is the run's
/// finding (`sleep_unlogged_ns`, the `sleeps_placed` check), not a cut.
///
/// In runs made before applications closed their samples (stored runs
/// `just plot` and `just compare` still read), `inferred`: the inference
/// from rows and sleeps that stood in for the mark (see
/// [`drop_cut_samples`] and [`Tracker::flush`]).
fn sample_whole(closed_samples: bool, closing: Closing, inferred: impl FnOnce() -> bool) -> bool {
    if closed_samples {
        closing.whole()
    } else {
        inferred()
    }
}

impl Closing {
    /// Its `sample_end` came, and every record it counts.
    fn whole(self) -> bool {
        self.sent.is_some_and(|n| self.came >= n)
    }
}

/// One sample of one application, gathered from its records (its rows and
/// sleeps may span several).
#[derive(Clone, Debug, Default)]
struct Pending {
    t: u64,
    policy: String,
    rows: Vec<Row>,
    sleeps: Sleeps,
    /// Its `waits` records: added with the rest, so that a table's wait
    /// columns are of the same sample as its shares.
    waits: Vec<waits::WaitRecord>,
    /// The rows its records announce (none in runs made before they did).
    announced: Option<u64>,
    /// Its `sample_end` and the records it counts.
    closing: Closing,
    /// A `sample` record came: a sample of switches alone (`runs`,
    /// before any thread started) has no rows, and is no snapshot.
    sampled: bool,
}

impl Tracker {
    /// Takes one `user` record; returns whether it completed a snapshot.
    pub fn record(&mut self, v: &Value) -> bool {
        let (Some(app), Some(t)) = (v["name"].as_str(), v["t_ns"].as_u64()) else {
            return false;
        };
        // Counted for its `sample_end` first: the first record of a new
        // sample feeds (or drops) the one before.
        let counted = SAMPLE_RECORDS.contains(&v["kind"].as_str().unwrap_or(""))
            && self.gather(app, t, |p| p.closing.came += 1);
        let completed = match v["kind"].as_str() {
            Some("app_start") => {
                let policy = v["policy"].as_str().unwrap_or("");
                self.fairness(app).begin(t, policy);
                self.ran_under(app, policy);
                false
            }
            Some("app_event") => {
                self.change(app, t, v);
                false
            }
            Some("sample") => {
                let policy = v["policy"].as_str().unwrap_or("").to_string();
                let completed = self.gather(app, t, |p| {
                    p.sampled = true;
                    p.policy.clone_from(&policy);
                    p.rows.extend(rows(&v["th"]));
                    p.announced = v["rows"].as_u64().or(p.announced);
                });
                self.ran_under(app, &policy);
                completed
            }
            Some("sleeps") => self.gather(app, t, |p| {
                add_sleeps(v, &mut p.sleeps);
            }),
            Some("waits") => self.gather(app, t, |p| {
                p.waits.extend(waits::parse_record(v));
            }),
            Some("sample_end") => {
                self.closed_samples = true;
                // Only its sample's: one none of whose records came has
                // nothing to close.
                if let Some(p) = self.pending.get_mut(app).filter(|p| p.t == t) {
                    p.closing.sent = Some(v["records"].as_u64().unwrap_or(0));
                }
                false
            }
            _ => false,
        };
        counted || completed
    }

    /// Adds to `app`'s sample at `t`, first feeding the one gathered
    /// before it if `t` is new; returns whether it fed one.
    fn gather(&mut self, app: &str, t: u64, add: impl FnOnce(&mut Pending)) -> bool {
        let mut completed = false;
        let pending = self.pending.entry(app.to_string()).or_insert(Pending {
            t,
            ..Pending::default()
        });
        if pending.t != t {
            let done = std::mem::replace(
                pending,
                Pending {
                    t,
                    ..Pending::default()
                },
            );
            // Runs made before samples were closed fed every sample but
            // the last (`flush` judges that one). A cut one's sleeps and
            // waits count with the next whole one, whose interval spans
            // its (as `carry_cut` does for the final figures).
            if sample_whole(self.closed_samples, done.closing, || true) {
                completed = self.feed(app, done);
            } else {
                let next = self.pending.get_mut(app).expect("inserted");
                for (thread, spans) in done.sleeps {
                    next.sleeps.entry(thread).or_default().extend(spans);
                }
                next.waits.extend(done.waits);
            }
        }
        add(self.pending.get_mut(app).expect("inserted"));
        completed
    }

    /// Feeds sample `p` to `app`'s figures; false if it was no snapshot.
    fn feed(&mut self, app: &str, p: Pending) -> bool {
        if !p.sampled {
            return false;
        }
        let policy = Some(p.policy.as_str()).filter(|s| !s.is_empty());
        self.fairness(app).snapshot(p.t, policy, &p.rows, &p.sleeps);
        let dist = self.waits.entry(app.to_string()).or_default();
        for r in p.waits {
            dist.entry(r.thread).or_default().add(&r.buckets, r.max_ns);
        }
        true
    }

    /// A swap (`detail` "from -> to") or ticket change ("old -> new") the
    /// application reported.
    fn change(&mut self, app: &str, t: u64, v: &Value) {
        let to = v["detail"].as_str().and_then(|d| d.split(" -> ").nth(1));
        match (v["what"].as_str(), to) {
            (Some("swap"), Some(to)) => {
                self.fairness(app).swap(t, to);
                self.ran_under(app, to);
            }
            (Some("tickets"), Some(to)) => {
                if let (Some(thread), Ok(n)) = (v["thread"].as_u64(), to.trim().parse()) {
                    self.fairness(app).tickets(t, thread as u32, n);
                }
            }
            _ => {}
        }
    }

    /// `app` runs under `policy` now: a new entry in its list unless it is
    /// the one it ran under last (every sample repeats it).
    fn ran_under(&mut self, app: &str, policy: &str) {
        let list = self.policies.entry(app.to_string()).or_default();
        if !policy.is_empty() && list.last().is_none_or(|p| p != policy) {
            list.push(policy.to_string());
        }
    }

    /// Feeds the snapshots still pending (at the end of a run), but not
    /// one the run's end cut short ([`sample_whole`], as
    /// [`drop_cut_samples`] leaves it out of the final figures): without
    /// its `sample_end`, or, in runs made before samples were closed,
    /// missing rows or the `sleeps` records after them.
    pub fn flush(&mut self) {
        for (app, p) in std::mem::take(&mut self.pending) {
            let whole = sample_whole(self.closed_samples, p.closing, || {
                p.announced.is_none_or(|n| p.rows.len() as u64 >= n)
                    && self.fairness(&app).places_sleeps(p.t, &p.rows, &p.sleeps)
            });
            if whole {
                let _ = self.feed(&app, p);
            }
        }
    }

    /// A tracker for applications with these capacities.
    pub fn new(capacities: BTreeMap<String, u32>) -> Tracker {
        Tracker {
            capacities,
            ..Tracker::default()
        }
    }

    /// The same, valuing the tickets of the applications with currencies
    /// through them (as the final figures do).
    pub fn with_currencies(
        self,
        currencies: BTreeMap<String, crate::scenario::CurrencyPlan>,
    ) -> Tracker {
        Tracker { currencies, ..self }
    }

    fn fairness(&mut self, app: &str) -> &mut Fairness {
        // A restarted instance (`demo#2`) holds its application's slots.
        let base = app.split_once('#').map_or(app, |(base, _)| base);
        let capacity = self.capacities.get(base).copied().unwrap_or(1);
        let plan = self.currencies.get(base);
        self.apps.entry(app.to_string()).or_insert_with(|| {
            let mut f = Fairness::new(capacity);
            if let Some((currencies, threads)) = plan {
                f.currencies(currencies, threads.iter().copied());
            }
            f
        })
    }

    /// The table the console shows: per application and thread, tickets,
    /// measured and ideal share so far (percent of the application's CPU
    /// time), their difference (percentage points) and the 99th
    /// percentile of its waits for a core so far (ms).
    pub fn table(&self, names: &BTreeMap<(String, u32), String>) -> String {
        // Each application named with every scheduler it ran under, so a
        // run that swapped away and back does not read as one that never
        // swapped; the column is as wide as the widest such name.
        let label = |app: &str| {
            let policies = self.policies.get(app).map_or(&[][..], Vec::as_slice);
            format!(
                "{app}({})",
                crate::rundata::scheduler_sequence(policies.iter().map(String::as_str))
            )
        };
        let width = self
            .apps
            .keys()
            .map(|app| label(app).chars().count())
            .fold(14, usize::max);
        let mut out = format!(
            "{:<width$} thread        tickets  share(%)  ideal(%)  error(pp)  wait p99(ms)   max(ms)\n",
            "app"
        );
        for (app, f) in &self.apps {
            // An application none of whose threads has run yet (one just
            // started) has no shares: 0.0 beside 0.0 read as starved.
            let ran = f.threads.values().any(|t| t.cpu_ns > 0);
            for (id, (share, ideal)) in f.shares() {
                let name = names
                    .get(&(app.clone(), id))
                    .cloned()
                    .unwrap_or_else(|| format!("t{id}"));
                let tickets = f.threads[&id].tickets;
                // The p99 is a histogram bucket (within 1/16); the
                // longest wait beside it is exact, and tells apart runs
                // whose p99 falls in one bucket.
                let waits = self.waits.get(app).and_then(|w| w.get(&id));
                let ms = |ns: Option<u64>| {
                    ns.map_or("-".to_string(), |ns| format!("{:.3}", ns as f64 / 1e6))
                };
                let p99 = ms(waits.and_then(|d| d.percentile(0.99)));
                let max = ms(waits.filter(|d| d.count() > 0).map(|d| d.max_ns));
                let [share, ideal, error] = if ran {
                    [
                        format!("{:.1}", share * 100.0),
                        format!("{:.1}", ideal * 100.0),
                        format!("{:+.1}", metrics::share_error_pp(share, ideal)),
                    ]
                } else {
                    ["-".into(), "-".into(), "-".into()]
                };
                out.push_str(&format!(
                    "{:<width$} {:<12} {:>8} {share:>9} {ideal:>9} {error:>10} {p99:>13} {max:>9}\n",
                    label(app),
                    name,
                    tickets,
                ));
            }
        }
        out
    }
}

/// Thread names by (application, id), from the scenario.
pub fn thread_names(s: &Scenario) -> BTreeMap<(String, u32), String> {
    let mut m = BTreeMap::new();
    for app in s.apps.iter().map(|a| a.get_ref()) {
        for (k, (name, _)) in expand_threads(app).into_iter().enumerate() {
            m.insert((app.name.clone(), k as u32 + 1), name);
        }
    }
    m
}

/// The environments an application ran as, in order: `(env, name)` from
/// the kernel's `spawned` events. A restarted application is a new
/// instance with its own name (`demo#2`, ...) and its own accounting.
fn instances(records: &Records, app: &str) -> Vec<(u64, String)> {
    records
        .of(RecordKind::Event)
        .filter(|e| e["event"] == "spawned")
        .filter_map(|e| {
            let name = e["name"].as_str()?;
            let base = name.split_once('#').map_or(name, |(base, _)| base);
            (base == app).then(|| Some((e["env"].as_u64()?, name.to_string())))?
        })
        .collect()
}

/// When an application's `app_start` record says it started (ns since
/// boot); `None` for any other record.
pub fn app_start_ns(v: &Value) -> Option<u64> {
    (v["kind"] == "app_start").then(|| v["t_ns"].as_u64())?
}

/// The run's start among `user` records (ns since boot): the first
/// application's start, 0 when none started. The figures, and the trust
/// checks' details, count time from it.
pub fn run_start_ns<'a>(users: impl IntoIterator<Item = &'a Value>) -> u64 {
    users
        .into_iter()
        .filter_map(app_start_ns)
        .min()
        .unwrap_or(0)
}

/// Everything the run measured, in the runner's model.
pub fn rundata(s: &Scenario, records: &Records, cpus_online: u32, deterministic: bool) -> RunData {
    let users: Vec<&Value> = records.of(RecordKind::User).collect();
    let start_ns = run_start_ns(users.iter().copied());
    let mut apps = Vec::new();
    for app in s.apps.iter().map(|a| a.get_ref()) {
        let mut runs = instances(records, &app.name);
        if runs.is_empty() {
            // Never started: listed, with nothing measured.
            runs.push((0, app.name.clone()));
        }
        for (env, name) in runs {
            let mine = |v: &&&Value| v["env"] == env && env != 0;
            let started = users.iter().filter(mine).find(|v| v["kind"] == "app_start");
            let t0 = started.and_then(|v| v["t_ns"].as_u64()).unwrap_or(start_ns);
            // The policy the application reported it started with (what
            // ran), else the scenario's.
            let first = started
                .and_then(|v| v["policy"].as_str())
                .unwrap_or(&app.scheduler);
            let mut scheduler_timeline = vec![(t0, first.to_string())];
            for v in users
                .iter()
                .filter(mine)
                .filter(|v| v["kind"] == "app_event" && v["what"] == "swap")
            {
                if let (Some(t), Some(to)) = (
                    v["t_ns"].as_u64(),
                    v["detail"].as_str().and_then(|d| d.split(" -> ").nth(1)),
                ) {
                    scheduler_timeline.push((t, to.to_string()));
                }
            }
            let plan = app.currency_plan();
            let threads = expand_threads(app)
                .into_iter()
                .enumerate()
                .map(|(k, (name, th))| {
                    let id = k as u32 + 1;
                    let mut tickets_timeline =
                        vec![(t0 + th.join_ms * 1_000_000, u64::from(th.tickets))];
                    for v in users.iter().filter(mine).filter(|v| {
                        v["kind"] == "app_event" && v["what"] == "tickets" && v["thread"] == id
                    }) {
                        if let (Some(t), Some(n)) = (
                            v["t_ns"].as_u64(),
                            v["detail"]
                                .as_str()
                                .and_then(|d| d.split(" -> ").nth(1)?.parse().ok()),
                        ) {
                            tickets_timeline.push((t, n));
                        }
                    }
                    Thread {
                        id,
                        name,
                        behaviour: th.behaviour.clone(),
                        tickets_timeline,
                        joined_ns: t0 + th.join_ms * 1_000_000,
                        left_ns: th.leave_ms.map(|l| t0 + l * 1_000_000),
                        currency: plan.1.get(k).map_or(0, |&(_, c)| c),
                    }
                })
                .collect();
            let slices = (0..cpus_online)
                .filter(|c| app.cores.as_ref().is_none_or(|l| l.contains(c)))
                .map(|c| (c, app.slices))
                .collect();
            let capacity = s
                .capacities(cpus_online)
                .get(&app.name)
                .copied()
                .unwrap_or(1);
            apps.push(App {
                name,
                env,
                scheduler_timeline,
                slices,
                capacity,
                threads,
                currencies: plan.0,
            });
        }
    }
    let env_index = |env: u64| {
        apps.iter()
            .position(|a| a.env == env && env != 0)
            .map(|i| i as u32)
    };
    let mut samples = Vec::new();
    // How many rows each sample has, as its records say (one record per
    // chunk of threads; runs made before they said so: none).
    let mut sample_rows = BTreeMap::new();
    // Each sample's `sample_end` and the records it counts (runs made
    // before applications closed their samples: no `sample_end`).
    let mut closing: BTreeMap<(u32, u64), Closing> = BTreeMap::new();
    // Each application's libOS counters at each sample.
    let mut counters: BTreeMap<(u32, u64), AppCounters> = BTreeMap::new();
    // Each application's runs in progress at each sample (every record of
    // a sample repeats them).
    let mut running: BTreeMap<(u32, u64), u64> = BTreeMap::new();
    let mut sleeps = Vec::new();
    let mut wait_intervals = Vec::new();
    let mut request_logs = Vec::new();
    let mut switches = Switches::default();
    let mut events = Vec::new();
    for (k, v) in users.iter().enumerate() {
        let Some(app) = v["env"].as_u64().and_then(env_index) else {
            continue;
        };
        let t_ns = v["t_ns"].as_u64().unwrap_or(0);
        if SAMPLE_RECORDS.contains(&v["kind"].as_str().unwrap_or("")) {
            closing.entry((app, t_ns)).or_default().came += 1;
        }
        match v["kind"].as_str() {
            Some("sample_end") => {
                closing.entry((app, t_ns)).or_default().sent =
                    Some(v["records"].as_u64().unwrap_or(0));
            }
            Some("sample") => {
                if let Some(n) = v["rows"].as_u64() {
                    sample_rows.insert((app, t_ns), n);
                }
                if let Some(r) = v["running_ns"].as_u64() {
                    running.insert((app, t_ns), r);
                }
                if let [decided, run_on] = v["turns"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                    let now = AppCounters {
                        app,
                        turns_decided: decided.as_u64().unwrap_or(0),
                        turns_run_on: run_on.as_u64().unwrap_or(0),
                        control_ns: v["control_ns"].as_u64(),
                        longest_charge_ns: v["longest_charge_ns"].as_u64(),
                    };
                    counters.insert((app, t_ns), now);
                }
                samples.extend(rows(&v["th"]).into_iter().map(|r| Sample {
                    t_ns,
                    core: r.core,
                    app,
                    thread: r.id,
                    cpu_ns: r.cpu_ns,
                    iterations: r.iterations,
                    sleep_ns: r.sleep_ns,
                    alive_ns: r.alive_ns,
                }))
            }
            Some("sleeps") => {
                let mut one = Sleeps::new();
                if let Some(thread) = add_sleeps(v, &mut one) {
                    sleeps.extend(one.into_values().flatten().map(|(start_ns, end_ns)| {
                        SleepSpan {
                            t_ns,
                            app,
                            thread,
                            start_ns,
                            end_ns,
                        }
                    }));
                }
            }
            Some("waits") => waits::add_record(&mut wait_intervals, app, t_ns, v),
            Some("requests_start" | "requests") => requests::add_record(&mut request_logs, app, v),
            Some("runs") => switches.add_record(app, v),
            // Console replies complete the kernel's `console` events below.
            Some("app_event") if v["what"] == "console" => {}
            Some("app_event") => events.push(Event {
                t_ns,
                kind: v["what"].as_str().unwrap_or("").to_string(),
                app: Some(app),
                thread: v["thread"].as_u64().filter(|&t| t > 0).map(|t| t as u32),
                core: None,
                detail: format!(
                    "{} ({})",
                    v["detail"].as_str().unwrap_or(""),
                    action_source(&users, k, records)
                ),
            }),
            _ => {}
        }
    }
    let cut_samples = drop_cut_samples(&mut samples, &sample_rows, &sleeps, &closing);
    carry_cut(&cut_samples, &samples, &mut sleeps, &mut wait_intervals);
    // Each application's counters at its last whole sample, the instant
    // its threads' figures are from.
    let counters = last_sample_counters(&samples, counters);
    let env_app = env_index;
    for e in records.of(RecordKind::Event) {
        let kind = e["event"].as_str().unwrap_or("");
        let detail = match kind {
            "console" => console_detail(e, &users),
            "repossession" => format!("overrun {} ns", e["overrun_ns"].as_u64().unwrap_or(0)),
            "killed" => e["reason"].as_str().unwrap_or("").to_string(),
            _ => String::new(),
        };
        let app = e["env"].as_u64().and_then(env_app);
        if kind == "spawned" && app.is_none() {
            continue;
        }
        events.push(Event {
            t_ns: e["t_ns"].as_u64().unwrap_or(0),
            kind: kind.to_string(),
            app,
            thread: None,
            core: e["core"].as_u64().map(|c| c as u32),
            detail,
        });
    }
    let end_ns = records
        .first(RecordKind::End)
        .and_then(|e| e["uptime_ns"].as_u64())
        .unwrap_or(start_ns);
    let (runs, trace_dropped) = core_runs(records, end_ns, &env_app);
    let thread_runs = switches.thread_runs(&runs, end_ns);
    samples.sort_by_key(|x| (x.t_ns, x.app, x.thread));
    events.sort_by_key(|e| e.t_ns);
    let end_ns = records
        .first(RecordKind::End)
        .and_then(|e| e["uptime_ns"].as_u64())
        .unwrap_or(start_ns);
    RunData {
        scenario: serde_json::to_value(s).ok(),
        scenario_name: s.name.clone(),
        seed: s.seed,
        deterministic,
        // `write_results` sets both once the run is assessed.
        trusted: None,
        ended: None,
        cpus_online,
        slice_ns: s.slice_us * 1000,
        start_ns,
        duration_ns: end_ns.saturating_sub(start_ns),
        apps,
        samples,
        sleeps,
        waits: wait_intervals,
        requests: request_logs,
        events,
        runs,
        trace_dropped,
        thread_runs,
        thread_switches_dropped: switches.dropped(),
        cut_samples,
        counters,
        running: running
            .into_iter()
            .map(|((app, t_ns), running_ns)| RunningAt {
                app,
                t_ns,
                running_ns,
            })
            .collect(),
    }
}

/// Who asked for what the application reports in `users[k]` (a swap, a
/// ticket change): its own `source`, except that a command the kernel
/// forwarded from the runner's console script is the `script`'s. The
/// application cannot tell (it reads every forwarded command as the
/// console's); the change names the inbox message (`seq`), and the
/// kernel's record of that message says where the command came from.
/// Applications built before changes carried the number are read through
/// their reply to the command, the next of their console replies, which
/// names it too (a run that ended before the reply leaves `console`).
fn action_source<'a>(users: &[&'a Value], k: usize, records: &Records) -> &'a str {
    let v = users[k];
    let own = v["source"].as_str().unwrap_or("");
    if own != "console" {
        return own;
    }
    let Some(seq) = v.get("seq").or_else(|| {
        users[k + 1..]
            .iter()
            .find(|r| r["env"] == v["env"] && r["kind"] == "app_event" && r["what"] == "console")
            .map(|r| &r["seq"])
    }) else {
        return own;
    };
    let scripted = records.of(RecordKind::Event).any(|e| {
        e["event"] == "console"
            && e["env"] == v["env"]
            && e["seq"] == *seq
            && e["source"] == "script"
    });
    if scripted {
        "script"
    } else {
        own
    }
}

/// What a console command did: `<command> -> <outcome>`, where the outcome
/// of a command the kernel forwarded to an application is the
/// application's own reply (matched by environment and inbox sequence
/// number); `(script)` marks commands from a console script.
fn console_detail(e: &Value, users: &[&Value]) -> String {
    let command = e["command"].as_str().unwrap_or("");
    let kernel = e["outcome"].as_str().unwrap_or("");
    let outcome = match (kernel, e["seq"].as_u64()) {
        ("forwarded", Some(seq)) => users
            .iter()
            .find(|v| {
                v["kind"] == "app_event"
                    && v["what"] == "console"
                    && v["env"] == e["env"]
                    && v["seq"] == seq
            })
            .and_then(|v| v["outcome"].as_str())
            .unwrap_or("forwarded; the application never answered")
            .to_string(),
        _ => kernel.to_string(),
    };
    let from = if e["source"] == "script" {
        " (script)"
    } else {
        ""
    };
    format!("{command} -> {outcome}{from}")
}

/// Each application's fairness after every snapshot: `(t_ns, per thread
/// (ideal_ns, cpu_ns))`, for lag plots.
pub type Series = Vec<(u64, BTreeMap<u32, (f64, u64)>)>;

/// Per application, its counters at (or last before) its last sample.
fn last_sample_counters(
    samples: &[Sample],
    counters: BTreeMap<(u32, u64), AppCounters>,
) -> Vec<AppCounters> {
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    for s in samples {
        let t = last.entry(s.app).or_default();
        *t = (*t).max(s.t_ns);
    }
    last.into_iter()
        .filter_map(|(app, t)| {
            counters
                .range((app, 0)..=(app, t))
                .next_back()
                .map(|(_, c)| *c)
        })
        .collect()
}

/// Replays the samples snapshot by snapshot; returns the final fairness of
/// each application (by index) and its history.
pub fn replay(data: &RunData) -> Vec<(Fairness, Series)> {
    let mut by_app: BTreeMap<(u32, u64), Vec<Row>> = BTreeMap::new();
    for s in &data.samples {
        let tickets = data.apps[s.app as usize]
            .threads
            .iter()
            .find(|t| t.id == s.thread)
            .and_then(|t| {
                t.tickets_timeline
                    .iter()
                    .rev()
                    .find(|(at, _)| *at <= s.t_ns)
                    .or(t.tickets_timeline.first())
            })
            .map_or(1, |&(_, n)| n);
        by_app.entry((s.app, s.t_ns)).or_default().push(Row {
            id: s.thread,
            tickets,
            cpu_ns: s.cpu_ns,
            iterations: s.iterations,
            sleep_ns: s.sleep_ns,
            core: s.core,
            alive_ns: s.alive_ns,
        });
    }
    let mut out: Vec<(Fairness, Series)> = data
        .apps
        .iter()
        .map(|a| {
            let mut f = Fairness::new(a.capacity);
            f.currencies(&a.currencies, a.threads.iter().map(|t| (t.id, t.currency)));
            if let Some((t0, policy)) = a.scheduler_timeline.first() {
                f.begin(*t0, policy);
            }
            for (t, policy) in a.scheduler_timeline.iter().skip(1) {
                f.swap(*t, policy);
            }
            for th in &a.threads {
                for &(t, n) in th.tickets_timeline.iter().skip(1) {
                    f.tickets(t, th.id, n);
                }
            }
            (f, Series::new())
        })
        .collect();
    let mut sleeps: BTreeMap<(u32, u64), Sleeps> = BTreeMap::new();
    for s in &data.sleeps {
        sleeps
            .entry((s.app, s.t_ns))
            .or_default()
            .entry(s.thread)
            .or_default()
            .push((s.start_ns, s.end_ns));
    }
    for ((app, t), rows) in by_app {
        let timeline = &data.apps[app as usize].scheduler_timeline;
        let policy = timeline
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .or(timeline.first())
            .map(|(_, p)| p.as_str());
        let (f, series) = &mut out[app as usize];
        let none = Sleeps::new();
        f.snapshot(t, policy, &rows, sleeps.get(&(app, t)).unwrap_or(&none));
        series.push((
            t,
            f.threads
                .iter()
                .map(|(&id, x)| (id, (x.ideal_ns, x.cpu_ns)))
                .collect(),
        ));
    }
    out
}

/// Who ran where from the kernel's `trace` records: each change on a core
/// lasts until the next one there (or the end); idle stretches are left out.
/// Every core's runs from the kernel's `trace` records, and how many turn
/// changes the trace dropped.
fn core_runs(
    records: &Records,
    end_ns: u64,
    env_app: &dyn Fn(u64) -> Option<u32>,
) -> (Vec<CoreRun>, u64) {
    let mut per_core: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    // Each core repeats its count in every chunk of its log.
    let mut dropped: BTreeMap<u32, u64> = BTreeMap::new();
    for t in records.of(RecordKind::Trace) {
        let core = t["core"].as_u64().unwrap_or(0) as u32;
        let d = dropped.entry(core).or_default();
        *d = (*d).max(t["dropped"].as_u64().unwrap_or(0));
        let changes = t["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| Some((r[0].as_u64()?, r[1].as_u64()?)));
        per_core.entry(core).or_default().extend(changes);
    }
    let mut runs = Vec::new();
    for (core, changes) in per_core {
        for (k, &(start_ns, env)) in changes.iter().enumerate() {
            let end = changes.get(k + 1).map_or(end_ns, |c| c.0);
            if env != u64::from(u32::MAX) && end > start_ns {
                runs.push(CoreRun {
                    core,
                    start_ns,
                    end_ns: end,
                    app: env_app(env),
                    thread: None,
                });
            }
        }
    }
    (runs, dropped.values().sum())
}

/// Drops every sample the run's end cut short and returns their
/// (application, time), by [`sample_whole`]'s two cases: in a run whose
/// applications close their samples, every sample without its
/// `sample_end` or missing a record it counts ([`Closing::whole`], the
/// live table's rule too); in runs made before, by inference
/// ([`drop_inferred_cut_samples`]).
fn drop_cut_samples(
    samples: &mut Vec<Sample>,
    announced: &BTreeMap<(u32, u64), u64>,
    sleeps: &[SleepSpan],
    closing: &BTreeMap<(u32, u64), Closing>,
) -> Vec<(u32, u64)> {
    let closed_samples = closing.values().any(|c| c.sent.is_some());
    if !closed_samples {
        return drop_inferred_cut_samples(samples, announced, sleeps);
    }
    // Every sample with rows, and every one some record of which came
    // (its `sample` record may be the one lost: then its sleeps and
    // waits are all there is of it, and `carry_cut` moves them).
    let mut cut: Vec<(u32, u64)> = samples
        .iter()
        .map(|s| (s.app, s.t_ns))
        .chain(closing.keys().copied())
        .filter(|key| !closing.get(key).is_some_and(|c| c.whole()))
        .collect();
    cut.sort_unstable();
    cut.dedup();
    samples.retain(|s| cut.binary_search(&(s.app, s.t_ns)).is_err());
    cut
}

/// Moves the `sleeps` and `waits` of the samples `cut` left out to their
/// application's next whole sample in `samples` (whose interval spans
/// theirs: its rows count from the whole sample before), or leaves them
/// out with the figures when no whole sample follows, as the live table
/// does ([`Tracker::gather`], [`Tracker::flush`]). Left where they were,
/// a cut sample's sleep went unplaced (a sample cut in mid-run made the
/// next one's sleep read as lost and the run not trusted), and a last cut
/// sample's waits counted in the final figures though the shares stopped
/// before them.
fn carry_cut(
    cut: &[(u32, u64)],
    samples: &[Sample],
    sleeps: &mut Vec<SleepSpan>,
    waits: &mut Vec<WaitInterval>,
) {
    if cut.is_empty() {
        return;
    }
    let mut whole: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    for s in samples {
        whole.entry(s.app).or_default().insert(s.t_ns);
    }
    let next_whole =
        |app: u32, t: u64| -> Option<u64> { whole.get(&app)?.range(t + 1..).next().copied() };
    let cut: BTreeSet<(u32, u64)> = cut.iter().copied().collect();
    let is_cut = |app: u32, t: u64| cut.contains(&(app, t));
    sleeps.retain_mut(|x| {
        if !is_cut(x.app, x.t_ns) {
            return true;
        }
        next_whole(x.app, x.t_ns).map(|t| x.t_ns = t).is_some()
    });
    let (moved, kept): (Vec<WaitInterval>, Vec<WaitInterval>) = std::mem::take(waits)
        .into_iter()
        .partition(|w| is_cut(w.app, w.t_ns));
    *waits = kept;
    for mut w in moved {
        let Some(t) = next_whole(w.app, w.t_ns) else {
            continue;
        };
        match waits
            .iter_mut()
            .find(|x| (x.app, x.t_ns, x.thread) == (w.app, t, w.thread))
        {
            Some(x) => {
                x.buckets.append(&mut w.buckets);
                // `total`, the thread's running count, is the later
                // sample's already.
                x.max_ns = x.max_ns.max(w.max_ns);
            }
            None => {
                w.t_ns = t;
                waits.push(w);
            }
        }
    }
}

/// [`drop_cut_samples`] in a run made before samples were closed: drops
/// every sample with fewer rows than its records announce: one the run's
/// end cut between its records, or one a record of which the kernel
/// refused. Kept, its threads' figures would be from two instants — the
/// rows it sent from its time, the others from the sample before — and
/// the threads' part of the application's time, which takes the
/// application's time up to the last sample, came out up to a sampling
/// period of the threads' time short: 96 threads on 16 cores read 93% in
/// runs whose last sample was cut and 97% in the others.
///
/// Also each application's last sample when the run's end cut off its
/// `sleeps` records, which follow its rows: its threads' sleep since the
/// sample before is not all placed in time ([`unplaced_sleep`]). Kept,
/// the threads counted as runnable for it, which moved sleepers' ideal
/// shares by up to 0.5 points (an audit: 127 of 638 applications with
/// sleepers in this machine's runs, their `sleep_unlogged_ns` the sign).
fn drop_inferred_cut_samples(
    samples: &mut Vec<Sample>,
    announced: &BTreeMap<(u32, u64), u64>,
    sleeps: &[SleepSpan],
) -> Vec<(u32, u64)> {
    let mut sent: BTreeMap<(u32, u64), u64> = BTreeMap::new();
    for s in samples.iter() {
        *sent.entry((s.app, s.t_ns)).or_default() += 1;
    }
    let mut cut: Vec<(u32, u64)> = announced
        .iter()
        .filter(|(key, &n)| sent.get(key).copied().unwrap_or(0) < n)
        .map(|(&key, _)| key)
        .collect();
    samples.retain(|s| !cut.contains(&(s.app, s.t_ns)));
    // Each application's last two sample times.
    let mut last_two: BTreeMap<u32, (u64, Option<u64>)> = BTreeMap::new();
    for s in samples.iter() {
        let e = last_two.entry(s.app).or_insert((s.t_ns, None));
        if s.t_ns > e.0 {
            *e = (s.t_ns, Some(e.0));
        } else if s.t_ns < e.0 && e.1.is_none_or(|t0| s.t_ns > t0) {
            e.1 = Some(s.t_ns);
        }
    }
    let mut before: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    let mut spans: BTreeMap<(u32, u32), Vec<(u64, u64)>> = BTreeMap::new();
    for s in samples
        .iter()
        .filter(|s| last_two[&s.app].1 == Some(s.t_ns))
    {
        before.insert((s.app, s.thread), s.sleep_ns);
    }
    for x in sleeps
        .iter()
        .filter(|x| last_two.get(&x.app).is_some_and(|l| l.0 == x.t_ns))
    {
        spans
            .entry((x.app, x.thread))
            .or_default()
            .push((x.start_ns, x.end_ns));
    }
    let unplaced: BTreeSet<(u32, u64)> = samples
        .iter()
        .filter(|s| last_two[&s.app].0 == s.t_ns)
        .filter(|s| {
            let key = (s.app, s.thread);
            let slept = s
                .sleep_ns
                .saturating_sub(before.get(&key).copied().unwrap_or(0));
            let t0 = last_two[&s.app].1.unwrap_or(0);
            let spans = spans.get(&key).map_or(&[][..], Vec::as_slice);
            unplaced_sleep(slept, t0, s.t_ns, spans) > UNPLACED_SLEEP_NS
        })
        .map(|s| (s.app, s.t_ns))
        .collect();
    samples.retain(|s| !unplaced.contains(&(s.app, s.t_ns)));
    cut.extend(unplaced);
    cut.sort_unstable();
    cut
}

/// Per application and thread: tickets, CPU, ideal CPU, sleep and alive
/// time, iterations, measured and ideal share (fractions), their
/// difference in percentage points, maximum absolute lag in quanta.
pub fn fairness_summary(data: &RunData) -> Value {
    let replayed = replay(data);
    let waits = waits::per_thread(&data.waits);
    let quantum = data.slice_ns.max(1) as f64;
    let apps: Vec<Value> = data
        .apps
        .iter()
        .zip(replayed)
        .enumerate()
        .map(|(index, (app, (f, _)))| {
            let shares = f.shares();
            let threads: Vec<Value> = app
                .threads
                .iter()
                .map(|t| {
                    let tf = f.threads.get(&t.id).copied().unwrap_or_default();
                    let (share, ideal) = shares.get(&t.id).copied().unwrap_or((0.0, 0.0));
                    json!({
                        "id": t.id, "name": t.name, "behaviour": t.behaviour,
                        "tickets": tf.tickets, "cpu_ns": tf.cpu_ns,
                        "ideal_cpu_ns": tf.ideal_ns.round(), "sleep_ns": tf.sleep_ns,
                        "sleep_unlogged_ns": tf.sleep_unlogged_ns,
                        "alive_ns": tf.alive_ns, "iterations": tf.iterations,
                        "ideal_share": ideal, "measured_share": share,
                        "share_error_pp": metrics::share_error_pp(share, ideal),
                        "max_abs_lag_quanta": tf.max_abs_lag_ns / quantum,
                        "wait": waits.get(&(index as u32, t.id)).cloned().unwrap_or_default().summary(),
                    })
                })
                .collect();
            // The threads' figures are the last sample's; what the
            // application ran after it is not in them (up to a sampling
            // period: the run ends before the next sample).
            let last_sample = data
                .samples
                .iter()
                .filter(|s| s.app == index as u32)
                .map(|s| s.t_ns)
                .max();
            let ran_after = last_sample.and_then(|t| data.ran_after(index as u32, t));
            // Its threads' runs in progress then, not yet in their figures.
            let running = last_sample.and_then(|t| data.running_at(index as u32, t));
            // All it ran, on the same (wall) clock: what scales the tail to
            // the kernel's charged time (`multicore::measure`).
            let ran = last_sample.and_then(|_| data.ran_after(index as u32, 0));
            let second_half = second_half(data, index as u32, app, last_sample);
            let counters = data.counters.iter().find(|c| c.app == index as u32);
            json!({
                "name": app.name, "env": app.env,
                "requests": requests::summary(data, index as u32),
                "last_sample_ns": last_sample,
                "cut_samples": data.cut_samples.iter().filter(|c| c.0 == index as u32).count(),
                "turns": counters.map(|c| json!({"decided": c.turns_decided, "run_on": c.turns_run_on})),
                "control_ns": counters.and_then(|c| c.control_ns),
                "longest_charge_ns": counters.and_then(|c| c.longest_charge_ns),
                "ran_after_last_sample_ns": ran_after,
                "running_at_last_sample_ns": running,
                "ran_ns": ran,
                "second_half": second_half,
                "scheduler_timeline": app.scheduler_timeline.iter().map(|(t, s)| json!({"t_ns": t, "scheduler": s})).collect::<Vec<_>>(),
                "threads": threads,
            })
        })
        .collect();
    json!(apps)
}

/// Application `app`'s (index `index`) sample nearest the middle of its
/// run — from its start to its last sample `last` — at or after it:
/// when it was taken, its threads' CPU time then, and what the
/// application ran after it on the kernel's trace (`multicore::measure`
/// takes the threads' part over the run's second half from these).
/// `null` without a later sample or a trace.
fn second_half(data: &RunData, index: u32, app: &crate::rundata::App, last: Option<u64>) -> Value {
    let (Some(last), Some(&(start, _))) = (last, app.scheduler_timeline.first()) else {
        return Value::Null;
    };
    let middle = start + last.saturating_sub(start) / 2;
    let Some(t) = data
        .samples
        .iter()
        .filter(|s| s.app == index && s.t_ns >= middle && s.t_ns < last)
        .map(|s| s.t_ns)
        .min()
    else {
        return Value::Null;
    };
    let cpu: u64 = data
        .samples
        .iter()
        .filter(|s| s.app == index && s.t_ns == t)
        .map(|s| s.cpu_ns)
        .sum();
    match data.ran_after(index, t) {
        Some(after) => json!({
            "from_sample_ns": t, "threads_cpu_ns": cpu, "ran_after_ns": after,
            "threads_running_ns": data.running_at(index, t),
        }),
        None => Value::Null,
    }
}

/// A run's `exit` when it did not end well: not `success` nor `user_quit`
/// (`quit` typed or scripted is how an open-ended run is meant to end).
pub fn ended_badly(exit: &Value) -> Option<String> {
    exit.as_str()
        .filter(|e| !matches!(*e, "success" | "user_quit"))
        .map(String::from)
}

/// Writes the scenario as run, `samples.csv`, `sleeps.csv` and `events.csv` into
/// `dir`, and adds the scenario's figures to `summary`, and to its `trust`
/// the check on them (`sleeps_placed`), whose verdict `data` keeps.
pub fn write_results(
    dir: &Path,
    s: &Scenario,
    data: &mut RunData,
    summary: &mut Value,
) -> Result<(), Error> {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(Error::io(&path))
    };
    // The figures first: one of the run's trust checks is on them, and
    // the verdict goes into rundata.json with the data.
    let apps = fairness_summary(data);
    crate::trust::add_check(
        &mut summary["trust"],
        crate::trust::sleeps_placed_check(&apps, data.slice_ns),
    );
    data.trusted = summary["trust"]["trusted"].as_bool();
    data.ended = ended_badly(&summary["exit"]);
    let data: &RunData = data;
    write("scenario.toml", toml::to_string(s).unwrap_or_default())?;
    let ideal: BTreeMap<(u32, u64, u32), f64> = replay(data)
        .into_iter()
        .enumerate()
        .flat_map(|(app, (_, series))| {
            series.into_iter().flat_map(move |(t, threads)| {
                threads
                    .into_iter()
                    .map(move |(id, (ideal, _))| ((app as u32, t, id), ideal))
            })
        })
        .collect();
    let interval_waits: BTreeMap<(u32, u64, u32), WaitDist> = data
        .waits
        .iter()
        .map(|w| ((w.app, w.t_ns, w.thread), WaitDist::of(w)))
        .collect();
    let mut csv = String::from(
        "t_ns,core,app,thread,cpu_ns,iterations,sleep_ns,alive_ns,ideal_cpu_ns,wait_count,wait_p50_ns,wait_p99_ns,wait_max_ns\n",
    );
    for x in &data.samples {
        let app = &data.apps[x.app as usize].name;
        let opt = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
        let ideal = ideal.get(&(x.app, x.t_ns, x.thread)).copied();
        let w = interval_waits.get(&(x.app, x.t_ns, x.thread));
        let count = w.map_or(0, WaitDist::count);
        let (p50, p99, max) = match w.filter(|_| count > 0) {
            Some(w) => (w.percentile(0.5), w.percentile(0.99), Some(w.max_ns)),
            None => (None, None, None),
        };
        csv.push_str(&format!(
            "{},{},{app},{},{},{},{},{},{},{count},{},{},{}\n",
            x.t_ns,
            x.core,
            x.thread,
            x.cpu_ns,
            x.iterations,
            x.sleep_ns,
            opt(x.alive_ns),
            opt(ideal.map(|v| v.round() as u64)),
            opt(p50),
            opt(p99),
            opt(max)
        ));
    }
    write("samples.csv", csv)?;
    let mut csv = String::from("t_ns,app,thread,start_ns,end_ns\n");
    for x in &data.sleeps {
        let app = &data.apps[x.app as usize].name;
        csv.push_str(&format!(
            "{},{app},{},{},{}\n",
            x.t_ns, x.thread, x.start_ns, x.end_ns
        ));
    }
    write("sleeps.csv", csv)?;
    let mut csv = String::from("t_ns,kind,app,thread,core,detail\n");
    for e in &data.events {
        let app = e
            .app
            .map_or(String::new(), |a| data.apps[a as usize].name.clone());
        let opt = |v: Option<u32>| v.map_or(String::new(), |v| v.to_string());
        csv.push_str(&format!(
            "{},{},{app},{},{},\"{}\"\n",
            e.t_ns,
            e.kind,
            opt(e.thread),
            opt(e.core),
            e.detail.replace('"', "'")
        ));
    }
    write("events.csv", csv)?;
    write(
        "rundata.json",
        serde_json::to_string(data).unwrap_or_default(),
    )?;
    write("trace.json", perfetto_trace(data).to_string())?;
    if let Some(obj) = summary.as_object_mut() {
        obj.insert("scenario".into(), json!(data.scenario_name));
        obj.insert(
            "scenario_spec".into(),
            data.scenario.clone().unwrap_or(Value::Null),
        );
        obj.insert("seed".into(), json!(data.seed));
        obj.insert("deterministic".into(), json!(data.deterministic));
        obj.insert("duration_ns".into(), json!(data.duration_ns));
        obj.insert("slice_ns".into(), json!(data.slice_ns));
        obj.insert("apps".into(), apps);
    }
    Ok(())
}

#[cfg(test)]
mod fairness_tests;
#[cfg(test)]
mod tests;
