//! Fairness metrics (defined in `docs/metrics.md`): the formulas as pure
//! functions here, their accumulation over a run in [`fairness`].

use serde::{Deserialize, Serialize};

pub mod fairness;
pub mod requests;
pub mod waits;

/// Splits `total` CPU time among threads with weights `w` where thread `i`
/// can use at most `cap[i]` (one core for the time it was present and
/// awake): proportional to weight, each capped, the surplus of capped
/// threads shared by the rest in proportion to their weights (water
/// filling; Surplus Fair Scheduling's feasibility rule, applied to time).
/// Returns each thread's ideal time. Never gives more than `sum(cap)`.
pub fn water_fill(total: f64, w: &[f64], cap: &[f64]) -> Vec<f64> {
    assert_eq!(w.len(), cap.len());
    let n = w.len();
    let mut out = vec![0.0; n];
    let mut open: Vec<usize> = (0..n).filter(|&i| w[i] > 0.0 && cap[i] > 0.0).collect();
    let mut left = total.max(0.0);
    while !open.is_empty() && left > 1e-9 {
        let weight: f64 = open.iter().map(|&i| w[i]).sum();
        let rate = left / weight;
        // Threads whose fair part would exceed their cap are saturated.
        let saturated: Vec<usize> = open
            .iter()
            .copied()
            .filter(|&i| out[i] + w[i] * rate >= cap[i])
            .collect();
        if saturated.is_empty() {
            for &i in &open {
                out[i] += w[i] * rate;
            }
            break;
        }
        for &i in &saturated {
            left -= cap[i] - out[i];
            out[i] = cap[i];
        }
        open.retain(|i| !saturated.contains(i));
    }
    out
}

/// Shares (fractions of their sum) of `x`; all zero when the sum is zero.
pub fn shares(x: &[f64]) -> Vec<f64> {
    let sum: f64 = x.iter().sum();
    x.iter()
        .map(|v| if sum > 0.0 { v / sum } else { 0.0 })
        .collect()
}

/// `measured - ideal` for shares given as fractions, in percentage points.
pub fn share_error_pp(measured: f64, ideal: f64) -> f64 {
    (measured - ideal) * 100.0
}

/// What a policy promises the threads that want the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entitlement {
    /// In proportion to tickets (stride; lottery in expectation).
    Tickets,
    /// The same to each (round robin), whatever their tickets.
    Equal,
}

impl Entitlement {
    /// The entitlement of the registered policy named `policy`, as its
    /// crate declares it (`sched_registry`).
    pub fn of(policy: &str) -> Option<Entitlement> {
        sched_registry::by_name(policy).map(|p| match p.entitlement {
            sched_registry::Entitlement::Tickets => Entitlement::Tickets,
            sched_registry::Entitlement::Equal => Entitlement::Equal,
        })
    }
}

/// Something that changed a thread's entitlement at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The application swapped its policy.
    Policy(Entitlement),
    /// Thread `index` (into the interval's threads) got new tickets.
    Tickets { index: usize, tickets: u64 },
    /// The policy swapped to has currencies (`true`) or not: see
    /// [`Denominations`].
    Currencies(bool),
}

/// What an application's tickets are in, carried from interval to
/// interval: its currencies, and whether the policy in force has them. A
/// policy that has them (lottery) values each thread's tickets through
/// them ([`worth`]) among the threads runnable at each moment. One that
/// has not holds what the libOS gave it at the swap: each thread in a
/// currency its worth then in whole base tickets (at least 1; a thread
/// not runnable then, what it would have been worth joining), a thread
/// started later its tickets as base tickets, and tickets set meanwhile
/// are base tickets and take the thread out of its currency for good
/// (`libos::threads::table::currencies`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Denominations {
    pub currencies: Vec<Currency>,
    pub in_force: bool,
}

/// A ticket currency (lottery's), funded by `funding` tickets of
/// `parent`: 0 the base currency, else the currency `parent` (from 1, an
/// earlier one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Currency {
    pub parent: u32,
    pub funding: u64,
}

/// What each thread's tickets are worth in base tickets while the threads
/// for which `runnable` holds are the active ones: a currency's active
/// issue is its runnable threads' tickets and its active children's
/// funding, its worth its funding's share of its parent's worth (a base
/// ticket is worth 1), and a thread's tickets their share of its
/// currency's issue times that worth (lottery's valuation,
/// `sched_lottery`'s currencies; `currency[k]` is thread k's: 0 the base
/// one, else an index from 1 into `currencies`, whose parents come
/// first). 0 for a thread not runnable.
pub fn worth(
    currencies: &[Currency],
    currency: &[u32],
    tickets: &[u64],
    runnable: &[bool],
) -> Vec<f64> {
    let n = currencies.len();
    let mut issue = vec![0.0f64; n + 1];
    for k in 0..tickets.len() {
        let c = currency[k] as usize;
        if runnable[k] && c > 0 && c <= n {
            issue[c] += tickets[k] as f64;
        }
    }
    // Children after their parents: from the last up, an active one's
    // funding joins its parent's issue.
    for c in (1..=n).rev() {
        let parent = currencies[c - 1].parent as usize;
        if issue[c] > 0.0 && parent > 0 && parent < c {
            issue[parent] += currencies[c - 1].funding as f64;
        }
    }
    let mut value = vec![0.0f64; n + 1];
    for c in 1..=n {
        let Currency { parent, funding } = currencies[c - 1];
        let parent = parent as usize;
        value[c] = match parent {
            _ if issue[c] <= 0.0 => 0.0,
            0 => funding as f64,
            p if p < c && issue[p] > 0.0 => funding as f64 * value[p] / issue[p],
            _ => 0.0,
        };
    }
    (0..tickets.len())
        .map(|k| match currency[k] as usize {
            _ if !runnable[k] => 0.0,
            0 => tickets[k] as f64,
            c if c <= n && issue[c] > 0.0 => tickets[k] as f64 * value[c] / issue[c],
            _ => 0.0,
        })
        .collect()
}

/// One thread over one sampling interval.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ThreadInterval {
    /// CPU time it received in the interval.
    pub cpu_ns: f64,
    /// When it was present (it may have joined or left in between).
    pub present: (u64, u64),
    /// When it was asleep (sorted, disjoint): it wanted the CPU the rest
    /// of the time it was present.
    pub asleep: Vec<(u64, u64)>,
    /// Its tickets at the start of the interval.
    pub tickets: u64,
    /// The currency they are of (see [`worth`]; 0 the base one).
    pub currency: u32,
    /// While the policy in force has no currencies: the weight it holds
    /// for this thread of a currency, fixed at the swap (`None`: its
    /// tickets, as base tickets).
    pub fixed: Option<f64>,
}

impl ThreadInterval {
    /// Whether it wanted the CPU throughout `[a, b]` (a piece with no
    /// change of state inside).
    fn runnable(&self, a: u64, b: u64) -> bool {
        self.present.0 <= a
            && b <= self.present.1
            && !self.asleep.iter().any(|&(s, e)| s < b && a < e)
    }
}

/// Each thread's ideal CPU time over the interval `span`, in ns: what the
/// application received, `T = sum(cpu_ns)`, split over time the way the
/// policy in force promises the threads that want the CPU at each instant.
///
/// The span is cut into pieces in which nothing changes: the same threads
/// runnable (present, not asleep), the same policy and tickets (`policy`
/// at the start, then `changes`, at instants inside the span). A piece of
/// length `L` with `r` runnable threads gets the part of `T` in
/// proportion to `L * min(r, capacity)`: the application's slots on its
/// `capacity` cores run side by side, so it can use `min(r, capacity)` of
/// them then (how the application's time falls inside an interval is not
/// measured; this takes its rate per usable core as even). Inside a piece
/// the runnable threads water-fill its time by their weight (tickets, or
/// equal under rr), each capped at one core's worth of it.
pub fn interval_ideal(
    span: (u64, u64),
    capacity: u32,
    policy: Entitlement,
    threads: &[ThreadInterval],
    changes: &[(u64, Change)],
) -> Vec<f64> {
    let mut none = Denominations::default();
    interval_ideal_in(span, capacity, policy, threads, changes, &mut none).0
}

/// [`interval_ideal`] for an application whose tickets may be of
/// currencies ([`Denominations`], left as the interval's end leaves it):
/// a thread's tickets in a currency weigh what they are worth among the
/// piece's runnable threads under a policy that has currencies (a
/// currency's worth is split among its threads that want the CPU then, as
/// lottery splits it), and what the libOS fixed at the swap under one that
/// has not. Also each thread's currency and fixed weight at the end, what
/// the next interval starts from.
pub fn interval_ideal_in(
    span: (u64, u64),
    capacity: u32,
    policy: Entitlement,
    threads: &[ThreadInterval],
    changes: &[(u64, Change)],
    denominations: &mut Denominations,
) -> (Vec<f64>, Vec<(u32, Option<f64>)>) {
    let mut ideal = vec![0.0; threads.len()];
    let mut home: Vec<u32> = threads.iter().map(|t| t.currency).collect();
    let mut fixed: Vec<Option<f64>> = threads.iter().map(|t| t.fixed).collect();
    let (t0, t1) = span;
    let total: f64 = threads.iter().map(|t| t.cpu_ns).sum();
    if t1 <= t0 || total <= 0.0 {
        // Nothing to share out; what the changes do still holds.
        let tickets: Vec<u64> = threads.iter().map(|t| t.tickets).collect();
        let runnable: Vec<bool> = threads.iter().map(|t| t.runnable(t0, t0)).collect();
        for &(_, c) in changes {
            denominate(c, denominations, &mut home, &mut fixed, &tickets, &runnable);
        }
        return (ideal, home.into_iter().zip(fixed).collect());
    }
    let mut changes: Vec<(u64, Change)> = changes
        .iter()
        .map(|&(at, c)| (at.clamp(t0, t1), c))
        .collect();
    changes.sort_by_key(|c| c.0);
    let mut cuts: Vec<u64> = threads
        .iter()
        .flat_map(|t| {
            [t.present.0, t.present.1]
                .into_iter()
                .chain(t.asleep.iter().flat_map(|&(s, e)| [s, e]))
        })
        .chain(changes.iter().map(|c| c.0))
        .map(|x| x.clamp(t0, t1))
        .chain([t0, t1])
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    // Each piece: its usable core-time (the share of `T` it gets) and the
    // weights of the threads runnable in it.
    let cores = capacity.max(1) as usize;
    let mut policy = policy;
    let mut tickets: Vec<u64> = threads.iter().map(|t| t.tickets).collect();
    let mut next_change = changes.iter().peekable();
    let mut pieces: Vec<(f64, usize, Vec<f64>)> = Vec::new();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let runnable: Vec<bool> = threads.iter().map(|t| t.runnable(a, b)).collect();
        while let Some(&(_, c)) = next_change.next_if(|c| c.0 <= a) {
            match c {
                Change::Policy(p) => policy = p,
                Change::Tickets { index, tickets: n } => {
                    if let Some(t) = tickets.get_mut(index) {
                        *t = n;
                    }
                }
                Change::Currencies(_) => {}
            }
            denominate(c, denominations, &mut home, &mut fixed, &tickets, &runnable);
        }
        let weight: Vec<f64> = match policy {
            Entitlement::Equal => runnable.iter().map(|&r| f64::from(u8::from(r))).collect(),
            Entitlement::Tickets if denominations.currencies.is_empty() => runnable
                .iter()
                .zip(&tickets)
                .map(|(&r, &n)| if r { n as f64 } else { 0.0 })
                .collect(),
            Entitlement::Tickets if denominations.in_force => {
                worth(&denominations.currencies, &home, &tickets, &runnable)
            }
            Entitlement::Tickets => (0..threads.len())
                .map(|k| match (runnable[k], fixed[k]) {
                    (false, _) => 0.0,
                    (true, Some(w)) => w,
                    (true, None) => tickets[k] as f64,
                })
                .collect(),
        };
        let usable = weight.iter().filter(|&&x| x > 0.0).count().min(cores);
        if usable > 0 {
            pieces.push(((b - a) as f64 * usable as f64, usable, weight));
        }
    }
    // The changes at the span's end: for the next interval.
    let runnable: Vec<bool> = threads.iter().map(|t| t.runnable(t1, t1)).collect();
    for &(_, c) in next_change {
        denominate(c, denominations, &mut home, &mut fixed, &tickets, &runnable);
    }
    let core_time: f64 = pieces.iter().map(|p| p.0).sum();
    for (share, usable, weight) in pieces {
        let time = total * share / core_time;
        let one_core = vec![time / usable as f64; weight.len()];
        for (k, x) in water_fill(time, &weight, &one_core).into_iter().enumerate() {
            ideal[k] += x;
        }
    }
    (ideal, home.into_iter().zip(fixed).collect())
}

/// What change `c` does to the threads' denominations (see
/// [`Denominations`]) at an instant when `runnable` says who wants the
/// CPU, the threads holding `tickets` (after the change).
fn denominate(
    c: Change,
    d: &mut Denominations,
    home: &mut [u32],
    fixed: &mut [Option<f64>],
    tickets: &[u64],
    runnable: &[bool],
) {
    match c {
        Change::Currencies(true) => {
            d.in_force = true;
            fixed.iter_mut().for_each(|f| *f = None);
        }
        // Swapped away: each thread in a currency keeps its worth now.
        Change::Currencies(false) if d.in_force => {
            d.in_force = false;
            let now = worth(&d.currencies, home, tickets, runnable);
            for k in 0..home.len() {
                if home[k] == 0 {
                    continue;
                }
                let w = if runnable[k] {
                    now[k]
                } else {
                    // What it would be worth joining.
                    let mut with = runnable.to_vec();
                    with[k] = true;
                    worth(&d.currencies, home, tickets, &with)[k]
                };
                fixed[k] = Some(w.round().max(1.0));
            }
        }
        Change::Currencies(false) => {}
        Change::Tickets { index, .. } if !d.in_force => {
            if let Some(h) = home.get_mut(index) {
                *h = 0;
            }
            if let Some(f) = fixed.get_mut(index) {
                *f = None;
            }
        }
        Change::Tickets { .. } | Change::Policy(_) => {}
    }
}

/// Half-width of the 95% binomial envelope of lottery's share after `n`
/// draws with winning probability `p`, as a fraction: `1.96 sqrt(p(1-p)/n)`.
pub fn lottery_envelope(p: f64, n: f64) -> f64 {
    if n <= 0.0 {
        return 1.0;
    }
    1.96 * (p * (1.0 - p) / n).sqrt()
}

#[cfg(test)]
mod tests;
