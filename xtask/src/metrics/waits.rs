//! Wait times (docs/metrics.md, "Wait time"): each thread's waits for a
//! core, as the application reports them per sampling interval in the
//! buckets of [`abi::waits`], summed into distributions and percentiles.

use std::collections::BTreeMap;

use abi::waits::{bucket_range, percentile, BUCKETS};
use serde_json::{json, Value};

use crate::rundata::WaitInterval;

/// A distribution of waits: a count per bucket and the exact maximum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitDist {
    counts: Vec<u64>,
    pub max_ns: u64,
}

impl Default for WaitDist {
    fn default() -> Self {
        WaitDist {
            counts: vec![0; BUCKETS],
            max_ns: 0,
        }
    }
}

impl WaitDist {
    /// Adds `(bucket, waits)` pairs (unknown buckets ignored) with the
    /// longest of them.
    pub fn add(&mut self, buckets: &[(u32, u64)], max_ns: u64) {
        for &(b, n) in buckets {
            if let Some(c) = self.counts.get_mut(b as usize) {
                *c += n;
            }
        }
        self.max_ns = self.max_ns.max(max_ns);
    }

    /// Adds every wait of `other`.
    pub fn merge(&mut self, other: &WaitDist) {
        for (c, o) in self.counts.iter_mut().zip(&other.counts) {
            *c += o;
        }
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// The distribution of one interval's waits.
    pub fn of(w: &WaitInterval) -> WaitDist {
        let mut d = WaitDist::default();
        d.add(&w.buckets, w.max_ns);
        d
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The nearest-rank `q`-percentile, within 1/16 (see [`abi::waits`]).
    pub fn percentile(&self, q: f64) -> Option<u64> {
        percentile(&self.counts, q, self.max_ns)
    }

    /// `{"p50_ns", "p99_ns", "max_ns", "count"}` (nulls without waits).
    pub fn summary(&self) -> Value {
        let n = self.count();
        json!({
            "p50_ns": self.percentile(0.5),
            "p99_ns": self.percentile(0.99),
            "max_ns": (n > 0).then_some(self.max_ns),
            "count": n,
        })
    }

    /// The empirical CDF as steps: `(value, fraction of waits at or
    /// below it)` at each non-empty bucket's upper end (capped at the
    /// maximum), for plots.
    pub fn cdf(&self) -> Vec<(u64, f64)> {
        let n = self.count();
        let mut seen = 0;
        let mut out = Vec::new();
        for (i, &c) in self.counts.iter().enumerate().filter(|(_, &c)| c > 0) {
            seen += c;
            out.push((bucket_range(i).1.min(self.max_ns), seen as f64 / n as f64));
        }
        out
    }
}

/// Each (application, thread)'s distribution over the whole run.
pub fn per_thread(waits: &[WaitInterval]) -> BTreeMap<(u32, u32), WaitDist> {
    let mut m: BTreeMap<(u32, u32), WaitDist> = BTreeMap::new();
    for w in waits {
        m.entry((w.app, w.thread))
            .or_default()
            .add(&w.buckets, w.max_ns);
    }
    m
}

/// One thread's entry in a `waits` record (`workloads/src/bin/app.rs`).
#[derive(Clone, Debug)]
pub struct WaitRecord {
    pub thread: u32,
    /// `(bucket, waits)` since the previous sample.
    pub buckets: Vec<(u32, u64)>,
    /// The longest of them.
    pub max_ns: u64,
    /// The thread's waits so far.
    pub total: u64,
}

/// The entries of a `waits` record: `w`: `[[id, n, max_ns, imax_ns,
/// bucket, count, ...], ...]`.
pub fn parse_record(v: &Value) -> Vec<WaitRecord> {
    v["w"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let x: Vec<u64> = e.as_array()?.iter().filter_map(Value::as_u64).collect();
            (x.len() >= 4).then(|| WaitRecord {
                thread: x[0] as u32,
                total: x[1],
                max_ns: x[3],
                buckets: x[4..]
                    .chunks_exact(2)
                    .map(|p| (p[0] as u32, p[1]))
                    .collect(),
            })
        })
        .collect()
}

/// Adds one `waits` record of application `app` at `t_ns` to `into`,
/// merging each entry with an earlier one of the same interval and thread
/// (a long entry is split over several records).
pub fn add_record(into: &mut Vec<WaitInterval>, app: u32, t_ns: u64, v: &Value) {
    for r in parse_record(v) {
        match into
            .iter_mut()
            .rev()
            .find(|w| w.t_ns == t_ns && w.app == app && w.thread == r.thread)
        {
            Some(w) => {
                w.buckets.extend(r.buckets);
                w.max_ns = w.max_ns.max(r.max_ns);
            }
            None => into.push(WaitInterval {
                t_ns,
                app,
                thread: r.thread,
                buckets: r.buckets,
                max_ns: r.max_ns,
                total: r.total,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::waits::bucket_of;

    fn record(id: u32, t: u64, waits: &[u64], total: u64) -> Value {
        let mut h = BTreeMap::new();
        for &w in waits {
            *h.entry(bucket_of(w)).or_insert(0u64) += 1;
        }
        let imax = waits.iter().max().copied().unwrap_or(0);
        let mut entry = vec![u64::from(id), total, imax, imax];
        entry.extend(h.into_iter().flat_map(|(k, n)| [k as u64, n]));
        json!({"kind": "waits", "t_ns": t, "w": [entry]})
    }

    #[test]
    fn split_records_merge_and_intervals_add_up() {
        let mut w = Vec::new();
        add_record(&mut w, 0, 100, &record(1, 100, &[1_000, 2_000], 3));
        add_record(&mut w, 0, 100, &record(1, 100, &[9_000_000], 3));
        add_record(&mut w, 0, 100, &record(2, 100, &[5], 1));
        // Two threads in one record.
        let mut both = record(3, 100, &[7], 1);
        let second = record(4, 100, &[8, 9], 2)["w"][0].clone();
        both["w"].as_array_mut().unwrap().push(second);
        add_record(&mut w, 0, 100, &both);
        assert_eq!(
            w.iter().map(|x| (x.thread, x.total)).collect::<Vec<_>>(),
            [(1, 3), (2, 1), (3, 1), (4, 2)]
        );
        w.truncate(2);
        add_record(&mut w, 0, 200, &record(1, 200, &[3_000], 4));
        assert_eq!(w.len(), 3, "one interval per thread and sample");
        assert_eq!(WaitDist::of(&w[0]).count(), 3);
        assert_eq!(w[0].max_ns, 9_000_000);
        let all = per_thread(&w);
        let t1 = &all[&(0, 1)];
        assert_eq!((t1.count(), t1.max_ns), (4, 9_000_000));
        let s = t1.summary();
        assert_eq!(s["count"], 4);
        assert_eq!(s["max_ns"], 9_000_000);
        let p50 = s["p50_ns"].as_u64().unwrap();
        assert!(p50.abs_diff(2_000) <= 2_000 / 16, "{p50}");
        let p99 = s["p99_ns"].as_u64().unwrap();
        assert!(p99.abs_diff(9_000_000) <= 9_000_000 / 16, "{p99}");
        assert!(p99 <= 9_000_000, "never above the exact max");
    }

    #[test]
    fn no_waits_is_nulls_not_zeros() {
        let s = WaitDist::default().summary();
        assert_eq!(s["p50_ns"], Value::Null);
        assert_eq!(s["max_ns"], Value::Null);
        assert_eq!(s["count"], 0);
    }

    #[test]
    fn the_cdf_rises_to_one_at_the_max() {
        let mut d = WaitDist::default();
        d.add(
            &[(bucket_of(100) as u32, 3), (bucket_of(10_000) as u32, 1)],
            10_100,
        );
        let cdf = d.cdf();
        assert_eq!(cdf.len(), 2);
        assert!((cdf[0].1 - 0.75).abs() < 1e-12 && cdf[0].0 >= 100);
        assert_eq!(cdf[1], (10_100, 1.0));
    }
}
