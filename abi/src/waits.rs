//! Wait-time histograms: how long a thread waited, runnable, for a core.
//!
//! The libOS records every wait of every thread into a fixed histogram
//! (no allocation, a few instructions per wait, on the dispatch path); the
//! runner receives the buckets and computes percentiles. One bucket layout,
//! here, serves both sides.
//!
//! **Layout (log-linear).** Values below 8 ns have a bucket each. Above,
//! each power of two `[2^m, 2^(m+1))` is cut into 8 equal buckets of width
//! `2^(m-3)`, up to `2^40 - 2^36` ns (about 17 minutes); longer waits
//! share the last bucket (the exact maximum is kept beside the buckets). A
//! bucket `[lo, hi]` below that is at most `lo / 8` wide.
//!
//! **Percentiles.** The `q`-percentile of `n` waits is the nearest-rank
//! one: the smallest recorded value with at least `ceil(q n)` values at or
//! below it. It is estimated as the midpoint of the bucket holding that
//! rank, capped at the exact maximum, so it is off by at most half a
//! bucket: at most 1/16 (6.25%) of the true value, and exact below 16 ns.

/// Bits of sub-bucket per power of two (8 sub-buckets).
pub const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// Values at or above `2^TOP_BIT - 2^(TOP_BIT - 4)` ns share the last bucket.
pub const TOP_BIT: u32 = 40;
/// Buckets in a histogram.
pub const BUCKETS: usize = (TOP_BIT - SUB_BITS + 1) as usize * SUB;

/// The bucket a wait of `ns` falls in.
pub const fn bucket_of(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    let m = 63 - ns.leading_zeros();
    if m >= TOP_BIT {
        return BUCKETS - 1;
    }
    let sub = (ns >> (m - SUB_BITS)) as usize & (SUB - 1);
    (m - SUB_BITS + 1) as usize * SUB + sub
}

/// The values bucket `i` holds, `[lo, hi]` (the last one reaches
/// `u64::MAX`).
pub const fn bucket_range(i: usize) -> (u64, u64) {
    if i < SUB {
        return (i as u64, i as u64);
    }
    if i >= BUCKETS - 1 {
        return (((2 * SUB - 1) as u64) << (TOP_BIT - 1 - SUB_BITS), u64::MAX);
    }
    let m = (i / SUB) as u32 + SUB_BITS - 1;
    let width = 1u64 << (m - SUB_BITS);
    let lo = (SUB + i % SUB) as u64 * width;
    (lo, lo + width - 1)
}

/// The nearest-rank `q`-percentile (`0 < q <= 1`) of the waits counted in
/// `counts` (one per bucket), as the midpoint of its bucket capped at
/// `max_ns`; `None` without waits.
pub fn percentile<C: Copy + Into<u64>>(counts: &[C], q: f64, max_ns: u64) -> Option<u64> {
    let total: u64 = counts.iter().map(|&c| c.into()).sum();
    if total == 0 {
        return None;
    }
    // ceil(q n), at least 1: the rank of the wanted value, 1-based.
    let x = q.clamp(0.0, 1.0) * total as f64;
    let floor = x as u64;
    let rank = if (floor as f64) < x { floor + 1 } else { floor }.clamp(1, total);
    let mut seen = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        seen += c.into();
        if seen >= rank {
            let (lo, hi) = bucket_range(i);
            return Some((lo + (hi - lo) / 2).min(max_ns));
        }
    }
    None
}

/// One thread's waits: a count per bucket, how many, the longest ever and
/// the longest since the sampler last asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitHistogram {
    counts: [u32; BUCKETS],
    count: u64,
    max_ns: u64,
    interval_max_ns: u64,
    /// The buckets counted since the last [`catch_up`](Self::catch_up),
    /// `lo..=hi` (none while `lo > hi`).
    touched_lo: u16,
    touched_hi: u16,
    /// The last [`record`](Self::record), while it can still be taken back
    /// ([`undo_last`](Self::undo_last)): its bucket ([`NO_UNDO`] once the
    /// sampler has seen it, or if that bucket's count had stopped), and
    /// the two maxima as they were before it.
    undo_bucket: u16,
    undo_max_ns: u64,
    undo_interval_max_ns: u64,
}

/// [`WaitHistogram`]'s `undo_bucket` with nothing to take back.
const NO_UNDO: u16 = u16::MAX;

impl Default for WaitHistogram {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl WaitHistogram {
    pub const EMPTY: WaitHistogram = WaitHistogram {
        counts: [0; BUCKETS],
        count: 0,
        max_ns: 0,
        interval_max_ns: 0,
        touched_lo: BUCKETS as u16,
        touched_hi: 0,
        undo_bucket: NO_UNDO,
        undo_max_ns: 0,
        undo_interval_max_ns: 0,
    };

    /// Counts one wait of `ns` (a bucket's count stops at `u32::MAX`).
    pub fn record(&mut self, ns: u64) {
        let b = bucket_of(ns);
        let c = &mut self.counts[b];
        self.undo_bucket = if *c < u32::MAX { b as u16 } else { NO_UNDO };
        self.undo_max_ns = self.max_ns;
        self.undo_interval_max_ns = self.interval_max_ns;
        *c = c.saturating_add(1);
        self.touched_lo = self.touched_lo.min(b as u16);
        self.touched_hi = self.touched_hi.max(b as u16);
        self.count += 1;
        self.max_ns = self.max_ns.max(ns);
        self.interval_max_ns = self.interval_max_ns.max(ns);
    }

    pub fn counts(&self) -> &[u32; BUCKETS] {
        &self.counts
    }

    /// Waits recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The longest wait recorded (0 without any).
    pub fn max_ns(&self) -> u64 {
        self.max_ns
    }

    /// Takes back the last [`record`](Self::record), if nothing has read
    /// the histogram since ([`catch_up`](Self::catch_up) or
    /// [`take_interval_max`](Self::take_interval_max)): afterwards it is as
    /// if that wait had never been counted. False if it could not be (read
    /// since, taken back already, or its bucket's count had stopped).
    ///
    /// For a wait that turned out not to have ended: the libOS records a
    /// thread's wait when a core picks it, and a thread handed back before
    /// it ran (its core's turn ended first) is still waiting.
    pub fn undo_last(&mut self) -> bool {
        let b = core::mem::replace(&mut self.undo_bucket, NO_UNDO);
        if b == NO_UNDO {
            return false;
        }
        self.counts[usize::from(b)] -= 1;
        self.count -= 1;
        self.max_ns = self.undo_max_ns;
        self.interval_max_ns = self.undo_interval_max_ns;
        true
    }

    /// The longest wait since the last call, and starts a new interval.
    pub fn take_interval_max(&mut self) -> u64 {
        self.undo_bucket = NO_UNDO;
        core::mem::take(&mut self.interval_max_ns)
    }

    /// Brings `seen` — what this histogram gave the same caller at its
    /// last call (or [`EMPTY`](Self::EMPTY) before the first) — up to
    /// date, calling `grew(bucket, increase)` for each bucket counted since,
    /// in order; returns the longest wait since the last call, and starts a
    /// new interval. Looks only at the buckets counted since (for most
    /// threads a few per sample), not at all [`BUCKETS`]: the libOS's
    /// sampler calls it under the lock every dispatch waits for.
    pub fn catch_up(&mut self, seen: &mut WaitHistogram, mut grew: impl FnMut(usize, u32)) -> u64 {
        let (lo, hi) = (usize::from(self.touched_lo), usize::from(self.touched_hi));
        if lo <= hi {
            for k in lo..=hi.min(BUCKETS - 1) {
                let increase = self.counts[k].wrapping_sub(seen.counts[k]);
                if increase != 0 {
                    grew(k, increase);
                    seen.counts[k] = self.counts[k];
                }
            }
        }
        seen.count = self.count;
        seen.max_ns = self.max_ns;
        self.touched_lo = BUCKETS as u16;
        self.touched_hi = 0;
        self.take_interval_max()
    }

    /// See [`percentile`].
    pub fn percentile(&self, q: f64) -> Option<u64> {
        percentile(&self.counts, q, self.max_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The nearest-rank percentile of `v` (sorted).
    fn exact(v: &[u64], q: f64) -> u64 {
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    }

    #[test]
    fn buckets_tile_the_values_in_order() {
        let mut next = 0u64;
        for i in 0..BUCKETS {
            let (lo, hi) = bucket_range(i);
            assert_eq!(
                lo,
                next,
                "bucket {i} starts where {} ended",
                i.wrapping_sub(1)
            );
            assert!(hi >= lo);
            assert_eq!(bucket_of(lo), i);
            assert_eq!(bucket_of(hi), i);
            if (SUB..BUCKETS - 1).contains(&i) {
                assert!((hi - lo + 1) * 8 <= lo, "bucket {i} wider than lo/8");
            }
            next = hi.wrapping_add(1);
        }
        assert_eq!(next, 0, "the last bucket reaches u64::MAX");
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(
            bucket_range(BUCKETS - 1).0,
            (1u64 << TOP_BIT) - (1 << (TOP_BIT - 4))
        );
    }

    #[test]
    fn small_values_are_exact_and_empty_has_no_percentile() {
        let mut h = WaitHistogram::EMPTY;
        assert_eq!(h.percentile(0.5), None);
        for v in [3, 3, 5, 7] {
            h.record(v);
        }
        assert_eq!(h.percentile(0.5), Some(3));
        assert_eq!(h.percentile(0.75), Some(5));
        assert_eq!(h.percentile(1.0), Some(7));
        assert_eq!((h.count(), h.max_ns()), (4, 7));
        assert_eq!(h.take_interval_max(), 7);
        assert_eq!(h.take_interval_max(), 0);
    }

    #[test]
    fn one_quantum_and_seven_are_told_apart() {
        let mut h = WaitHistogram::EMPTY;
        for _ in 0..99 {
            h.record(2_000_000);
        }
        h.record(14_000_000);
        let p50 = h.percentile(0.5).unwrap();
        assert!(p50.abs_diff(2_000_000) <= 2_000_000 / 16, "{p50}");
        let p100 = h.percentile(1.0).unwrap();
        assert_eq!(p100, 14_000_000, "the top is capped at the exact max");
    }

    proptest! {
        /// The documented bound: within 1/16 of the true nearest-rank
        /// percentile, whatever the values and the percentile.
        #[test]
        fn percentiles_are_within_a_sixteenth(
            mut v in prop::collection::vec(
                prop_oneof![0u64..64, 0u64..10_000_000, 0u64..(1 << 42)], 1..400),
            q in 0.001f64..1.0,
        ) {
            let mut h = WaitHistogram::EMPTY;
            for &x in &v {
                h.record(x);
            }
            v.sort_unstable();
            let truth = exact(&v, q);
            let got = h.percentile(q).unwrap();
            if truth < bucket_range(BUCKETS - 1).0 {
                prop_assert!(got.abs_diff(truth) <= truth / 16,
                    "q {q}: estimate {got}, true {truth}");
            } else {
                // Past the top bucket: between its start and the max.
                prop_assert!(got >= bucket_range(BUCKETS - 1).0 && got <= v[v.len() - 1]);
            }
            prop_assert_eq!(h.count(), v.len() as u64);
            prop_assert_eq!(h.max_ns(), v[v.len() - 1]);
        }
    }

    /// What a sampler would see of `h`: everything but the undo state.
    fn seen(h: &WaitHistogram) -> (Vec<u32>, u64, u64, u64) {
        (h.counts.to_vec(), h.count, h.max_ns, h.interval_max_ns)
    }

    proptest! {
        /// Taking back the last wait leaves the histogram as if it had
        /// never been recorded, and only that wait: not one the sampler
        /// has read (caught up or taken the interval's max), nor a second.
        #[test]
        fn undo_takes_back_exactly_the_last_unread_wait(
            ops in proptest::collection::vec(
                prop_oneof![
                    4 => (0u64..(1 << 42)).prop_map(Some),
                    1 => Just(None),
                ], 0..40),
            read_between in any::<bool>(),
            last in 0u64..(1 << 42),
        ) {
            let mut h = WaitHistogram::EMPTY;
            let mut sampler = WaitHistogram::EMPTY;
            for op in ops {
                match op {
                    Some(w) => h.record(w),
                    None => { h.catch_up(&mut sampler, |_, _| {}); }
                }
            }
            let before = seen(&h);
            h.record(last);
            if read_between {
                h.take_interval_max();
                let after = seen(&h);
                prop_assert!(!h.undo_last(), "a wait the sampler read stays");
                prop_assert_eq!(seen(&h), after);
            } else {
                prop_assert!(h.undo_last());
                prop_assert_eq!(seen(&h), before.clone());
                prop_assert!(!h.undo_last(), "only the last wait");
                prop_assert_eq!(seen(&h), before);
            }
        }
    }

    #[test]
    fn a_wait_in_a_full_bucket_is_not_taken_back() {
        let mut h = WaitHistogram::EMPTY;
        h.counts[bucket_of(500)] = u32::MAX;
        h.record(500);
        assert!(!h.undo_last(), "the bucket did not count it");
        assert_eq!(h.counts[bucket_of(500)], u32::MAX);
    }

    #[test]
    fn a_caught_up_wait_is_not_taken_back() {
        let mut h = WaitHistogram::EMPTY;
        let mut sampler = WaitHistogram::EMPTY;
        h.record(500);
        h.catch_up(&mut sampler, |_, _| {});
        assert!(!h.undo_last());
        assert_eq!((h.count(), h.max_ns()), (1, 500));
    }

    proptest! {
        /// Catching up after any waits reports exactly what was counted
        /// since the last catch-up, bucket by bucket, and leaves the
        /// caller's copy equal to the histogram's counts.
        #[test]
        fn catch_up_reports_exactly_the_waits_since(
            rounds in proptest::collection::vec(
                proptest::collection::vec(0u64..(1 << 42), 0..20), 1..8)
        ) {
            let mut h = WaitHistogram::EMPTY;
            let mut seen = WaitHistogram::EMPTY;
            for waits in rounds {
                let mut want = [0u32; BUCKETS];
                for &w in &waits {
                    h.record(w);
                    want[bucket_of(w)] += 1;
                }
                let mut got = [0u32; BUCKETS];
                let mut last = None;
                let imax = h.catch_up(&mut seen, |k, n| {
                    assert!(last < Some(k), "in order, each bucket once");
                    last = Some(k);
                    got[k] = n;
                });
                prop_assert_eq!(got, want);
                prop_assert_eq!(imax, waits.iter().copied().max().unwrap_or(0));
                prop_assert_eq!(seen.counts(), h.counts());
                prop_assert_eq!(
                    (h.touched_lo, h.touched_hi),
                    (BUCKETS as u16, 0),
                    "the next catch-up starts from no bucket"
                );
                prop_assert_eq!((seen.count(), seen.max_ns()), (h.count(), h.max_ns()));
            }
        }
    }
}
