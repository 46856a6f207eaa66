//! The bookkeeping every proportional policy shares: the weights of the
//! active (runnable or running) threads, kept feasible on P cores, and the
//! system's virtual time.
//!
//! Weights are kept in an ordered set, so the cap (see [`crate::feasible`])
//! is found from the largest ones in O(log n + P) after every change; a
//! thread's adjusted weight is then O(1) from its own weight.
//!
//! Virtual time: a thread that runs `ran` ns advances its own virtual time
//! by `ran * VT_SCALE / e` (`e`: its adjusted weight in tickets) and the
//! system's by `ran * VT_SCALE / E` (`E`: the sum of adjusted weights). A
//! thread that gets exactly its share keeps pace with the system; the gap
//! is its lag. This is stride scheduling's pass and global pass (stride =
//! `STRIDE1 / tickets` with `STRIDE1 = VT_SCALE * quantum`, advanced by
//! `stride * ran / quantum` for a partial quantum).

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use crate::feasible::{Cap, Ratio};
use crate::{mul_div, ThreadId, VT_SCALE};

/// Active weights on P cores, and the system's virtual time.
#[derive(Clone, Debug)]
pub struct Ledger {
    /// Weight units per ticket (1 for plain tickets; lottery uses a fixed
    /// point so currency-converted values keep their fractions).
    unit: u128,
    active: BTreeSet<(u64, ThreadId)>,
    total: u128,
    cap: Cap,
    now: i128,
    /// The largest active weight (with its thread), kept so that the usual
    /// change (nobody capped before or after) needs no walk of the set.
    largest: Option<(u64, ThreadId)>,
    /// The last step of [`Ledger::advance`]: `(ran_ns, virtual time)`, for
    /// the total adjusted weight `last_total`. A scheduler charges the same
    /// quantum again and again, and the total changes only with the
    /// weights, often back to what it was (a thread blocking and waking):
    /// this saves a division per charge.
    last_step: Option<(u64, i128)>,
    last_total: Ratio,
    /// The weights changed since `last_step`: its total must be checked.
    weights_changed: bool,
    /// Bumped whenever the cap may have moved (see [`Ledger::vt_memo`]).
    epoch: u64,
}

impl Ledger {
    /// An empty ledger for `cores` cores (at least 1), weights in `unit`s
    /// per ticket (at least 1).
    pub fn new(cores: usize, unit: u128) -> Ledger {
        Ledger {
            unit: unit.max(1),
            active: BTreeSet::new(),
            total: 0,
            cap: Cap::compute(core::iter::empty(), 0, 0, cores),
            now: 0,
            largest: None,
            last_step: None,
            last_total: Ratio::new(0, 1),
            weights_changed: false,
            epoch: 0,
        }
    }

    pub fn cores(&self) -> usize {
        self.cap.cores
    }

    pub fn set_cores(&mut self, cores: usize) {
        self.cap.cores = cores.max(1);
        self.recompute();
    }

    /// Number of active weights.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Adds an active thread of weight `w` (in units). False if present.
    pub fn insert(&mut self, id: ThreadId, w: u64) -> bool {
        let added = self.active.insert((w, id));
        if added {
            self.total += u128::from(w);
            self.largest = self.largest.max(Some((w, id)));
            self.recompute();
        }
        added
    }

    /// Adds every active thread `(id, w)` of `weights`, as
    /// [`Ledger::insert`] one at a time would (repeats are ignored), with
    /// the cap computed once, at the end: an import of n threads on P
    /// cores walked the set for the cap after each of its first inserts
    /// (until the largest weight was under a P-th of the total).
    pub fn insert_all(&mut self, weights: impl IntoIterator<Item = (ThreadId, u64)>) {
        let before = self.active.len();
        if before == 0 {
            // Built at once from the sorted weights, not node by node, out
            // of a list made without growing it: an import calls this
            // under the libOS's runtime lock, where each reallocation is a
            // walk of the guest allocator's free list.
            let weights = weights.into_iter().map(|(id, w)| (w, id));
            let pairs: Vec<(u64, ThreadId)> = match weights.size_hint() {
                // Exact: collected as is (in place, from lottery's list).
                (lower, Some(upper)) if lower == upper => weights.collect(),
                // A snapshot's active weights (a filter) know only their
                // most, every thread: collected, the list grew by doubling
                // (four reallocations for 32 threads); room for all at once.
                (_, upper) => {
                    let mut pairs = Vec::with_capacity(upper.unwrap_or(0));
                    pairs.extend(weights);
                    pairs
                }
            };
            // `collect` sorts the list in place and builds the set from it.
            self.active = pairs.into_iter().collect();
            self.total = self.active.iter().map(|&(w, _)| u128::from(w)).sum();
            self.largest = self.active.last().copied();
        } else {
            for (id, w) in weights {
                if self.active.insert((w, id)) {
                    self.total += u128::from(w);
                    self.largest = self.largest.max(Some((w, id)));
                }
            }
        }
        if self.active.len() != before {
            self.recompute();
        }
    }

    /// Removes an active thread of weight `w`. False if absent.
    pub fn remove(&mut self, id: ThreadId, w: u64) -> bool {
        let removed = self.active.remove(&(w, id));
        if removed {
            self.total -= u128::from(w);
            if self.largest == Some((w, id)) {
                self.largest = self.active.last().copied();
            }
            self.recompute();
        }
        removed
    }

    /// Forgets every weight (the virtual time stays).
    pub fn clear(&mut self) {
        self.active.clear();
        self.total = 0;
        self.largest = None;
        self.recompute();
    }

    fn recompute(&mut self) {
        self.weights_changed = true;
        self.epoch = self.epoch.wrapping_add(1);
        let (count, total, cores) = (self.active.len(), self.total, self.cap.cores);
        // The usual case, as `Cap::compute` would find it from the largest
        // weight alone: not even that one is entitled to a whole core.
        self.cap = match self.largest {
            Some((w, _)) if u128::from(w).saturating_mul(cores as u128) < total => Cap {
                cores,
                count,
                total,
                capped: 0,
                rest: total,
                threshold: 0,
            },
            _ => Cap::compute(
                self.active.iter().rev().map(|&(w, _)| w),
                count,
                total,
                cores,
            ),
        };
    }

    /// The active weights with their threads, largest first (ties: the
    /// largest id first). The capped threads are the first
    /// `cap().capped` of them.
    pub fn largest(&self) -> impl Iterator<Item = (u64, ThreadId)> + '_ {
        self.active.iter().rev().copied()
    }

    /// The cap on the current set.
    pub fn cap(&self) -> &Cap {
        &self.cap
    }

    /// Whether weight `w` (active) is capped at one core.
    pub fn is_capped(&self, w: u64) -> bool {
        self.cap.is_capped(w)
    }

    /// The adjusted weight of `w` (active), in tickets.
    pub fn effective(&self, w: u64) -> Ratio {
        let e = self.cap.effective(w);
        Ratio::new(e.num, e.den.saturating_mul(self.unit))
    }

    /// The sum of the adjusted weights of the active threads, in tickets.
    pub fn total_effective(&self) -> Ratio {
        let e = self.cap.total_effective();
        Ratio::new(e.num, e.den.saturating_mul(self.unit))
    }

    /// The system's virtual time.
    pub fn now(&self) -> i128 {
        self.now
    }

    pub fn set_now(&mut self, now: i128) {
        self.now = now;
    }

    /// Virtual time for `ran_ns` of service at active weight `w`.
    #[inline]
    pub fn vt(&self, ran_ns: u64, w: u64) -> i128 {
        // The usual case: an uncapped weight is its own (`w / unit`
        // tickets), and the figure fits 64 bits.
        if !self.cap.is_capped(w) {
            if let Some(v) = vt_u64(ran_ns, self.unit, u128::from(w)) {
                return v;
            }
        }
        self.vt_general(ran_ns, w)
    }

    /// [`Ledger::vt`], remembering the last figure in `memo` (kept by the
    /// caller, one per thread): a thread is charged the same quantum again
    /// and again, and the figure depends only on the run, the weight and,
    /// for a capped weight, the cap, so this saves the division of every
    /// charge but the first. The cap can only move when the weights or the
    /// core count change (`recompute`), which bumps `epoch`.
    #[inline]
    pub fn vt_memo(&self, ran_ns: u64, w: u64, memo: &mut VtMemo) -> i128 {
        // Uncapped then and now: the figure is `w`'s own, whatever the cap.
        let uncapped = !memo.capped && !self.cap.is_capped(w);
        if memo.ran_ns == ran_ns && memo.w == w && (uncapped || memo.epoch == self.epoch) {
            return i128::from(memo.vt);
        }
        let vt = self.vt(ran_ns, w);
        if let Ok(v) = u64::try_from(vt) {
            *memo = VtMemo {
                ran_ns,
                w,
                vt: v,
                epoch: self.epoch,
                capped: self.cap.is_capped(w),
            };
        }
        vt
    }

    /// [`Ledger::vt`] through the adjusted weight's ratio (capped weights,
    /// fixed-point units, huge runs): out of line, so that the inlined
    /// shortcut stays small where policies call it.
    #[inline(never)]
    fn vt_general(&self, ran_ns: u64, w: u64) -> i128 {
        Self::vt_at(ran_ns, self.effective(w))
    }

    /// Virtual time for `ran_ns` of service at adjusted weight `e` tickets.
    #[inline]
    pub fn vt_at(ran_ns: u64, e: Ratio) -> i128 {
        let v = mul_div_small(u128::from(ran_ns) * VT_SCALE, e.den, e.num.max(1));
        v.min(i128::MAX as u128) as i128
    }

    /// Advances the system's virtual time for `ran_ns` of service given out
    /// (by any core). Inlined for its usual case, the same run as last time
    /// with the weights as they were: the remembered step, no division.
    #[inline]
    pub fn advance(&mut self, ran_ns: u64) {
        if let Some(step) = self.remembered_step(ran_ns) {
            self.now = crate::add_sat(self.now, step);
            return;
        }
        self.advance_anew(ran_ns);
    }

    /// The step [`Ledger::advance`] takes for `ran_ns` in its usual case
    /// (the same run as last time, the weights as they were), if it is
    /// that: a caller that must check everything before it changes
    /// anything (a policy's fast path) asks first, then sets the time.
    #[inline]
    pub fn remembered_step(&self, ran_ns: u64) -> Option<i128> {
        match self.last_step {
            Some((ran, step))
                if ran == ran_ns && !self.weights_changed && !self.active.is_empty() =>
            {
                Some(step)
            }
            _ => None,
        }
    }

    /// [`Ledger::advance`] when the run or the weights changed since the
    /// remembered step.
    #[inline(never)]
    fn advance_anew(&mut self, ran_ns: u64) {
        if self.active.is_empty() {
            return;
        }
        let step = match self.last_step {
            Some((ran, step)) if ran == ran_ns && !self.weights_changed => step,
            // Nobody capped: the total is the sum of the weights, and the
            // step one 64-bit division (`step`'s 128-bit ratios cost ten
            // times more), remembered for the next charges (the same
            // figure `step` would find: the quotient is exact either way).
            _ if self.cap.capped == 0 => match vt_u64(ran_ns, self.unit, self.cap.total) {
                Some(step) => {
                    self.weights_changed = false;
                    self.last_step = Some((ran_ns, step));
                    self.last_total = self.total_effective();
                    step
                }
                None => self.step(ran_ns),
            },
            _ => self.step(ran_ns),
        };
        self.now = self.now.saturating_add(step);
    }

    /// The step of [`Ledger::advance`] after the weights or the time run
    /// changed: the remembered one if the total is what it was for.
    fn step(&mut self, ran_ns: u64) -> i128 {
        self.weights_changed = false;
        let total = self.total_effective();
        match self.last_step {
            Some((ran, step)) if ran == ran_ns && total == self.last_total => step,
            _ => {
                let step = Self::vt_at(ran_ns, total);
                self.last_step = Some((ran_ns, step));
                self.last_total = total;
                step
            }
        }
    }
}

/// The last figure of [`Ledger::vt_memo`] for one thread: the virtual time
/// `vt` of `ran_ns` at weight `w`, under the cap of `epoch` if `w` was
/// capped. The default (weight 0) matches no thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VtMemo {
    ran_ns: u64,
    w: u64,
    vt: u64,
    epoch: u64,
    capped: bool,
}

/// `ran_ns * VT_SCALE * unit / w` (the virtual time of `ran_ns` at `w /
/// unit` tickets, as [`Ledger::vt_at`] computes it) when every factor and
/// the product fit 64 bits (a run under ~4 s of a plain ticket weight):
/// one 64-bit division, without the ratios' 128-bit arithmetic. `None`
/// otherwise, or for a weight of 0.
#[inline]
fn vt_u64(ran_ns: u64, unit: u128, w: u128) -> Option<i128> {
    let unit = u64::try_from(unit).ok()?;
    let w = u64::try_from(w).ok().filter(|&w| w != 0)?;
    let scaled = ran_ns.checked_mul(VT_SCALE as u64)?.checked_mul(unit)?;
    Some(i128::from(scaled / w))
}

/// [`mul_div`], with a fast path: when the product and the divisor fit in
/// 64 bits (a run of under ~4 s at a weight below 2^32: every quantum), a
/// 64-bit division gives the same quotient as the 128-bit one, which is a
/// library call several times slower.
fn mul_div_small(a: u128, b: u128, c: u128) -> u128 {
    let small = |x: u128| u64::try_from(x).ok();
    match (small(a), small(b), small(c)) {
        (Some(a), Some(b), Some(c)) if c != 0 => match a.checked_mul(b) {
            Some(p) => u128::from(p / c),
            None => mul_div(a.into(), b.into(), c.into()),
        },
        _ => mul_div(a, b, c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feasible_weights;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32, u64),
        Remove(u32),
        Cores(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u32..12, 1u64..40).prop_map(|(i, w)| Op::Insert(i, w)),
            (0u32..12).prop_map(Op::Remove),
            (1usize..9).prop_map(Op::Cores),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// The incremental cap always agrees with the pure function, and a
        /// thread that gets exactly its adjusted share keeps pace with the
        /// system's virtual time.
        #[test]
        fn incremental_cap_matches_the_pure_function(ops in proptest::collection::vec(op(), 1..60)) {
            let mut l = Ledger::new(2, 1);
            let mut model: std::collections::BTreeMap<u32, u64> = Default::default();
            let mut cores = 2;
            for op in ops {
                match op {
                    // (Callers keep ids unique: the set is keyed by weight and id.)
                    Op::Insert(i, w) if !model.contains_key(&i) => {
                        prop_assert!(l.insert(i, w));
                        prop_assert!(!l.insert(i, w));
                        model.insert(i, w);
                    }
                    Op::Insert(..) => {}
                    Op::Remove(i) => {
                        let w = model.remove(&i);
                        prop_assert_eq!(l.remove(i, w.unwrap_or(1)), w.is_some());
                    }
                    Op::Cores(p) => { cores = p; l.set_cores(p); }
                }
                let ws: Vec<u64> = model.values().copied().collect();
                // The capped weights are the first `capped` of the largest
                // (what lottery's incremental cap relies on).
                let k = l.cap().capped;
                prop_assert_eq!(l.largest().count(), ws.len());
                for (i, (w, _)) in l.largest().enumerate() {
                    prop_assert_eq!(l.is_capped(w), i < k, "{} of {:?}", i, ws);
                }
                let f = feasible_weights(&ws, cores).unwrap();
                for (w, e) in ws.iter().zip(&f) {
                    prop_assert_eq!(l.effective(*w).as_f64(), e.as_f64());
                }
                if !ws.is_empty() {
                    // Everyone runs its exact share of q ns on every core.
                    let q = 1_000_000u64;
                    let sum: f64 = f.iter().map(|e| e.as_f64()).sum();
                    let before = l.now();
                    for e in &f {
                        l.advance((q as f64 * cores as f64 * e.as_f64() / sum) as u64);
                    }
                    let gained = l.now() - before;
                    for e in &f {
                        let share = (q as f64 * cores as f64 * e.as_f64() / sum) as u64;
                        let mine = Ledger::vt_at(share, *e);
                        // Equal up to rounding (well under a ns of service).
                        prop_assert!((mine - gained).abs() <= (VT_SCALE as i128) * 2, "{} vs {}", mine, gained);
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Inserting many at once leaves the ledger as inserting them one
        /// by one does: the same weights, cap and virtual time to come.
        #[test]
        fn insert_all_is_inserts_one_by_one(
            first in proptest::collection::vec((0u32..40, 1u64..40), 0..4),
            many in proptest::collection::vec((0u32..40, 1u64..40), 0..40),
            cores in 1usize..9,
        ) {
            let (mut one, mut all) = (Ledger::new(cores, 1), Ledger::new(cores, 1));
            for &(id, w) in &first {
                one.insert(id, w);
                all.insert(id, w);
            }
            for &(id, w) in &many {
                one.insert(id, w);
            }
            all.insert_all(many.iter().copied());
            // A source of unknown length too (a snapshot's active weights).
            let mut filtered = Ledger::new(cores, 1);
            for &(id, w) in &first {
                filtered.insert(id, w);
            }
            filtered.insert_all(many.iter().copied().filter(|_| true));
            prop_assert_eq!(one.largest().collect::<Vec<_>>(), all.largest().collect::<Vec<_>>());
            prop_assert_eq!(one.largest().collect::<Vec<_>>(), filtered.largest().collect::<Vec<_>>());
            prop_assert_eq!(one.cap(), all.cap());
            prop_assert_eq!(one.cap(), filtered.cap());
            prop_assert_eq!(one.total_effective(), all.total_effective());
            prop_assert_eq!(one.total_effective(), filtered.total_effective());
            for &(_, w) in &many {
                prop_assert_eq!(one.vt(1_000_000, w), all.vt(1_000_000, w));
            }
            one.advance(1_000_000);
            all.advance(1_000_000);
            prop_assert_eq!(one.now(), all.now());
        }
    }

    proptest! {
        /// The 64-bit fast path gives exactly `mul_div`'s quotient, on both
        /// sides of its limits.
        #[test]
        fn fast_path_is_exact(
            a in prop_oneof![any::<u64>().prop_map(u128::from), any::<u128>(), (0u64..1 << 34).prop_map(|r| u128::from(r) * VT_SCALE)],
            b in prop_oneof![Just(1u128), 1u128..1 << 20, any::<u64>().prop_map(u128::from), any::<u128>()],
            c in prop_oneof![Just(0u128), 1u128..1 << 40, any::<u64>().prop_map(u128::from), any::<u128>()],
        ) {
            prop_assert_eq!(mul_div_small(a, b, c), mul_div(a, b, c));
        }
    }

    #[test]
    fn fast_path_edges() {
        let m = u128::from(u64::MAX);
        for (a, b, c) in [
            (m, 1, 1),
            (m, 2, 1),
            (m, 1, m),
            (m + 1, 1, 2),
            (1, 1, m + 1),
            (5, 3, 0),
        ] {
            assert_eq!(mul_div_small(a, b, c), mul_div(a, b, c), "{a} {b} {c}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// The 64-bit shortcuts of `vt` and `advance` give exactly the
        /// figures of the general 128-bit computation, capped or not,
        /// short runs and long, plain tickets and fixed-point units.
        #[test]
        fn the_64_bit_shortcuts_agree_with_the_ratios(
            weights in proptest::collection::vec(1u64..1 << 40, 1..8),
            cores in 1usize..5,
            unit_shift in prop_oneof![Just(0u32), Just(20u32)],
            ran in prop_oneof![0u64..3_000_000, 0u64..u64::MAX],
        ) {
            let mut l = Ledger::new(cores, 1 << unit_shift);
            for (i, &w) in weights.iter().enumerate() {
                l.insert(i as u32, w);
            }
            for &w in &weights {
                prop_assert_eq!(l.vt(ran, w), Ledger::vt_at(ran, l.effective(w)));
            }
            let before = l.now();
            l.advance(ran);
            prop_assert_eq!(l.now(), before.saturating_add(Ledger::vt_at(ran, l.total_effective())));
        }
    }

    proptest! {
        /// The memo gives exactly `vt`'s figure, whatever was remembered
        /// before: other weights, other runs, weights capped since.
        #[test]
        fn memo_gives_vt(
            steps in proptest::collection::vec(
                (0u32..6, prop_oneof![1u64..12, Just(1000u64)], prop_oneof![Just(1_000_000u64), 0u64..3_000_000, any::<u64>()], any::<bool>()),
                1..80,
            ),
            unit_shift in prop_oneof![Just(0u32), Just(20u32)],
        ) {
            let mut l = Ledger::new(2, 1 << unit_shift);
            let mut weights: std::collections::BTreeMap<u32, u64> = Default::default();
            let mut memos: std::collections::BTreeMap<u32, VtMemo> = Default::default();
            for (id, w, ran, toggle) in steps {
                let w = w << unit_shift;
                if toggle {
                    // Join, leave or change weight: the cap moves.
                    match weights.remove(&id) {
                        Some(old) => { l.remove(id, old); }
                        None => { l.insert(id, w); weights.insert(id, w); }
                    }
                } else if id == 5 {
                    // So does a change of the core count.
                    l.set_cores(1 + (ran % 3) as usize);
                }
                if let Some(&w) = weights.get(&id) {
                    let memo = memos.entry(id).or_default();
                    prop_assert_eq!(l.vt_memo(ran, w, memo), l.vt(ran, w));
                }
            }
        }
    }

    #[test]
    fn advance_step_follows_weight_changes() {
        // Each advance must equal a fresh computation from the current
        // weights, though the step of the last one is remembered.
        let mut l = Ledger::new(2, 1);
        let mut expect = 0i128;
        let mut step = |l: &mut Ledger, ran: u64| {
            expect += Ledger::vt_at(ran, l.total_effective());
            l.advance(ran);
            assert_eq!(l.now(), expect);
        };
        l.insert(1, 3);
        step(&mut l, 1000);
        step(&mut l, 1000);
        l.insert(2, 5);
        step(&mut l, 1000);
        l.set_cores(1);
        step(&mut l, 1000);
        step(&mut l, 7);
        l.remove(1, 3);
        step(&mut l, 7);
        l.insert(9, 100);
        step(&mut l, 7);
        l.set_cores(2);
        step(&mut l, 7);
    }

    #[test]
    fn fixed_point_units_agree_with_tickets() {
        let mut a = Ledger::new(1, 1);
        let mut b = Ledger::new(1, 1 << 20);
        a.insert(1, 3);
        a.insert(2, 5);
        b.insert(1, 3 << 20);
        b.insert(2, 5 << 20);
        assert_eq!(a.vt(1000, 3), b.vt(1000, 3 << 20));
        a.advance(1000);
        b.advance(1000);
        assert_eq!(a.now(), b.now());
    }
}
