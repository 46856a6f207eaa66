//! Fairness of one application's threads, accumulated sample by sample
//! (defined in `docs/metrics.md`): between two samples the CPU time the
//! application's threads received is split the way the policy in force
//! promises ([`super::interval_ideal`]); each thread's ideal time is the
//! sum over the intervals, its lag the ideal minus what it received.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{interval_ideal_in, Change, Currency, Denominations, Entitlement, ThreadInterval};

/// One thread's row in a `sample` record (`workloads/src/bin/app.rs`):
/// cumulative since the thread started.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Row {
    pub id: u32,
    pub tickets: u64,
    pub cpu_ns: u64,
    pub iterations: u64,
    /// Asleep so far, including a sleep in progress.
    pub sleep_ns: u64,
    pub core: u32,
    /// Time since it started (until it left); `None` in records from
    /// before the application reported it.
    pub alive_ns: Option<u64>,
}

/// Per thread id, its sleep intervals in one sample interval (absolute
/// ns), from `sleeps` records.
pub type Sleeps = BTreeMap<u32, Vec<(u64, u64)>>;

/// Adds a `sleeps` record's intervals (offsets from its `from_ns`) to
/// `into`; returns the thread's id.
pub fn add_sleeps(v: &Value, into: &mut Sleeps) -> Option<u32> {
    let (id, from) = (v["id"].as_u64()? as u32, v["from_ns"].as_u64()?);
    let offsets: Vec<u64> = v["iv"]
        .as_array()?
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    into.entry(id)
        .or_default()
        .extend(offsets.chunks_exact(2).map(|p| (from + p[0], from + p[1])));
    Some(id)
}

/// How much of `slept`, the sleep a thread reported over `[t0, t]` (its
/// `sleep_ns` grew by that much), the intervals `spans` do not place in
/// that interval. A sound sample places all of it: its `sleeps` records
/// give every sleep, one in progress included. A sample whose `sleeps`
/// records the run's end cut off leaves it unplaced, and kept, its threads
/// would count as runnable for it, moving the ideal shares.
pub fn unplaced_sleep(slept: u64, t0: u64, t: u64, spans: &[(u64, u64)]) -> u64 {
    let placed: u64 = merged_within(spans, t0, t).iter().map(|(s, e)| e - s).sum();
    slept.saturating_sub(placed)
}

/// `spans` clipped to the window `[t0, t)`, merged where they overlap or
/// touch, in order: the time they cover in it, each instant once (none
/// when `t <= t0`).
pub fn merged_within(spans: &[(u64, u64)], t0: u64, t: u64) -> Vec<(u64, u64)> {
    let mut clipped: Vec<(u64, u64)> = spans
        .iter()
        .map(|&(s, e)| (s.max(t0), e.min(t)))
        .filter(|(s, e)| s < e)
        .collect();
    clipped.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(clipped.len());
    for (s, e) in clipped {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// The sleep [`unplaced_sleep`] tolerates: a clock read's rounding.
pub const UNPLACED_SLEEP_NS: u64 = 1_000;

/// The rows of a `sample` record's `th` array.
pub fn rows(th: &Value) -> Vec<Row> {
    th.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let v: Vec<u64> = r
                .as_array()?
                .iter()
                .map(|x| x.as_u64().unwrap_or(0))
                .collect();
            (v.len() >= 6).then(|| Row {
                id: v[0] as u32,
                tickets: v[1],
                cpu_ns: v[2],
                iterations: v[3],
                sleep_ns: v[4],
                core: v[5] as u32,
                alive_ns: v.get(6).copied(),
            })
        })
        .collect()
}

/// One application's threads: what they received against what their
/// policy promised.
#[derive(Clone, Debug, Default)]
pub struct Fairness {
    /// How many of the application's threads can run at once (the cores it
    /// holds slots on, as its libOS computes it: `libos::slices::capacity`).
    pub capacity: u32,
    last_t: Option<u64>,
    last: BTreeMap<u32, Row>,
    /// The policy's entitlement at `last_t` (tickets until told).
    policy: Option<Entitlement>,
    /// Swaps and ticket changes not yet inside a finished interval.
    changes: Vec<(u64, ThreadChange)>,
    /// Per thread: cumulative ideal CPU time, measured CPU time, greatest
    /// |ideal - measured| seen, current tickets and iterations.
    pub threads: BTreeMap<u32, ThreadFairness>,
    /// The application's ticket currencies and whether the policy in
    /// force has them; the currency each thread's tickets are of (absent:
    /// the base one), and the weight a policy without currencies holds for
    /// a thread of one, fixed at the swap (see [`Denominations`]).
    denominations: Denominations,
    currency_of: BTreeMap<u32, u32>,
    fixed: BTreeMap<u32, f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ThreadChange {
    Policy(Entitlement),
    /// The policy swapped to has currencies, or not.
    Currencies(bool),
    Tickets {
        thread: u32,
        tickets: u64,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ThreadFairness {
    pub ideal_ns: f64,
    pub cpu_ns: u64,
    pub max_abs_lag_ns: f64,
    pub tickets: u64,
    pub iterations: u64,
    pub sleep_ns: u64,
    /// Sleep the application counted but did not place in time (no
    /// interval reported for it): taken as runnable time.
    pub sleep_unlogged_ns: u64,
    pub alive_ns: Option<u64>,
}

impl Fairness {
    pub fn new(capacity: u32) -> Fairness {
        Fairness {
            capacity: capacity.max(1),
            ..Fairness::default()
        }
    }

    /// The application's ticket currencies and the threads in them (thread
    /// id, currency from 1): their tickets weigh what they are worth
    /// (`metrics::worth`).
    pub fn currencies(
        &mut self,
        currencies: &[Currency],
        threads: impl IntoIterator<Item = (u32, u32)>,
    ) {
        self.denominations.currencies = currencies.to_vec();
        self.currency_of = threads.into_iter().filter(|&(_, c)| c > 0).collect();
    }

    /// The application started at `t_ns` under `policy`: the first
    /// sample's interval runs from then (its threads' CPU time before it
    /// is owed like any other's; the application's control thread may
    /// sample first long after its threads began to run — 0.24 s for
    /// 1,000 threads on 16 cores).
    pub fn begin(&mut self, t_ns: u64, policy: &str) {
        if self.last_t.is_none() {
            self.last_t = Some(t_ns);
            self.policy = Entitlement::of(policy);
            self.denominations.in_force = has_currencies(policy);
        }
    }

    /// The application swapped to `policy` at `t_ns` (ignored when the
    /// name is not a known policy).
    pub fn swap(&mut self, t_ns: u64, policy: &str) {
        if let Some(e) = Entitlement::of(policy) {
            self.changes.push((t_ns, ThreadChange::Policy(e)));
            let has = has_currencies(policy);
            self.changes.push((t_ns, ThreadChange::Currencies(has)));
        }
    }

    /// Thread `thread`'s tickets became `tickets` at `t_ns`.
    pub fn tickets(&mut self, t_ns: u64, thread: u32, tickets: u64) {
        self.changes
            .push((t_ns, ThreadChange::Tickets { thread, tickets }));
    }

    /// Takes one whole sample (every thread the application started, at
    /// `t`), the policy it reported then and the threads' sleeps since the
    /// previous sample.
    pub fn snapshot(&mut self, t: u64, policy: Option<&str>, rows: &[Row], sleeps: &Sleeps) {
        self.changes.sort_by_key(|c| c.0);
        let (now, later): (Vec<_>, Vec<_>) = self.changes.iter().partition(|c| c.0 <= t);
        self.changes = later;
        let start_policy = self.policy.unwrap_or(Entitlement::Tickets);
        // The changes at the interval's start or before (the first one's,
        // at the application's start) take effect at its start; with no
        // interval (a first sample at the start), at that instant, every
        // thread wanting the CPU.
        let changes: Vec<(u64, Change)> = now
            .iter()
            .filter_map(|&(at, c)| {
                Some((
                    at,
                    match c {
                        ThreadChange::Policy(e) => Change::Policy(e),
                        ThreadChange::Currencies(has) => Change::Currencies(has),
                        ThreadChange::Tickets { thread, tickets } => Change::Tickets {
                            index: rows.iter().position(|r| r.id == thread)?,
                            tickets,
                        },
                    },
                ))
            })
            .collect();
        let interval = self.last_t.filter(|&t0| t0 < t);
        let threads: Vec<ThreadInterval> = match interval {
            Some(t0) => rows
                .iter()
                .map(|r| self.interval(t0, t, r, sleeps.get(&r.id)))
                .collect(),
            None => rows
                .iter()
                .map(|r| ThreadInterval {
                    present: (t, t),
                    tickets: r.tickets,
                    currency: self.currency_of.get(&r.id).copied().unwrap_or(0),
                    fixed: self.fixed.get(&r.id).copied(),
                    ..ThreadInterval::default()
                })
                .collect(),
        };
        let span = (interval.unwrap_or(t), t);
        let (ideal, ends) = interval_ideal_in(
            span,
            self.capacity,
            start_policy,
            &threads,
            &changes,
            &mut self.denominations,
        );
        for ((r, x), (home, fixed)) in rows.iter().zip(ideal).zip(ends) {
            self.threads.entry(r.id).or_default().ideal_ns += x;
            match home {
                0 => self.currency_of.remove(&r.id),
                c => self.currency_of.insert(r.id, c),
            };
            match fixed {
                Some(w) => self.fixed.insert(r.id, w),
                None => self.fixed.remove(&r.id),
            };
        }
        // The policy from here on: as reported at `t`, else as the last
        // change left it.
        self.policy = policy.and_then(Entitlement::of).or_else(|| {
            now.iter()
                .rev()
                .find_map(|c| match c.1 {
                    ThreadChange::Policy(e) => Some(e),
                    ThreadChange::Currencies(_) | ThreadChange::Tickets { .. } => None,
                })
                .or(self.policy)
        });
        for r in rows {
            let f = self.threads.entry(r.id).or_default();
            f.cpu_ns = r.cpu_ns;
            f.tickets = r.tickets;
            f.iterations = r.iterations;
            f.sleep_ns = r.sleep_ns;
            f.alive_ns = r.alive_ns;
            f.max_abs_lag_ns = f.max_abs_lag_ns.max((f.ideal_ns - r.cpu_ns as f64).abs());
            self.last.insert(r.id, *r);
        }
        self.last_t = Some(t);
    }

    /// Thread `r` over `[t0, t]`, from its rows at both ends and its
    /// sleep intervals; counts any sleep it did not place in time.
    fn interval(
        &mut self,
        t0: u64,
        t: u64,
        r: &Row,
        sleeps: Option<&Vec<(u64, u64)>>,
    ) -> ThreadInterval {
        let prev = self.last.get(&r.id);
        let dt = t - t0;
        let present = match (prev, r.alive_ns) {
            // Alive time tells when it joined or left inside the interval.
            (Some(p), Some(alive)) => {
                let len = alive.saturating_sub(p.alive_ns.unwrap_or(0)).min(dt);
                (t0, t0 + len)
            }
            (None, Some(alive)) => (t - alive.min(dt), t),
            // Older records: there all along, or since it first ran.
            (Some(_), None) => (t0, t),
            (None, None) => (t - (r.cpu_ns + r.sleep_ns).min(dt), t),
        };
        let merged = merged_within(sleeps.map_or(&[][..], Vec::as_slice), present.0, present.1);
        let logged: u64 = merged.iter().map(|(s, e)| e - s).sum();
        let slept = r.sleep_ns.saturating_sub(prev.map_or(0, |p| p.sleep_ns));
        self.threads.entry(r.id).or_default().sleep_unlogged_ns += slept.saturating_sub(logged);
        ThreadInterval {
            cpu_ns: r.cpu_ns.saturating_sub(prev.map_or(0, |p| p.cpu_ns)) as f64,
            present,
            asleep: merged,
            tickets: prev.map_or(r.tickets, |p| p.tickets),
            currency: self.currency_of.get(&r.id).copied().unwrap_or(0),
            fixed: self.fixed.get(&r.id).copied(),
        }
    }

    /// The time of the last snapshot taken in, if any.
    pub fn last_time(&self) -> Option<u64> {
        self.last_t
    }

    /// Whether a snapshot at `t` of `rows` with `sleeps` places every
    /// thread's sleep since the last snapshot ([`unplaced_sleep`]): one
    /// that does not had its `sleeps` records cut off by the run's end.
    pub fn places_sleeps(&self, t: u64, rows: &[Row], sleeps: &Sleeps) -> bool {
        let t0 = self.last_t.unwrap_or(0);
        rows.iter().all(|r| {
            let slept = r
                .sleep_ns
                .saturating_sub(self.last.get(&r.id).map_or(0, |p| p.sleep_ns));
            let spans = sleeps.get(&r.id).map_or(&[][..], Vec::as_slice);
            unplaced_sleep(slept, t0, t, spans) <= UNPLACED_SLEEP_NS
        })
    }

    /// `(measured share, ideal share)` of each thread within its
    /// application, as fractions.
    pub fn shares(&self) -> BTreeMap<u32, (f64, f64)> {
        let cpu: f64 = self.threads.values().map(|f| f.cpu_ns as f64).sum();
        let ideal: f64 = self.threads.values().map(|f| f.ideal_ns).sum();
        let frac = |x: f64, of: f64| if of > 0.0 { x / of } else { 0.0 };
        self.threads
            .iter()
            .map(|(&id, f)| (id, (frac(f.cpu_ns as f64, cpu), frac(f.ideal_ns, ideal))))
            .collect()
    }
}

/// Whether the registered policy `name` has currencies (an unknown name
/// has none).
fn has_currencies(name: &str) -> bool {
    sched_registry::by_name(name).is_some_and(|p| p.currencies)
}
