//! Infeasible weights on P cores (Surplus Fair Scheduling, Chandra et al.,
//! OSDI 2000). A thread cannot use more than one core, so a weight asking
//! for more than `1/P` of the total is infeasible. The readjustment caps
//! such a thread at exactly one core's worth and shares the surplus among
//! the others in proportion to their weights.
//!
//! The iterative rule (cap every thread whose share of what is left exceeds
//! one core, recompute, repeat) settles on the k largest weights: with the
//! weights sorted `w1 >= w2 >= ...`, thread `j+1` is capped iff
//! `w_{j+1} * (P - j) >= rest_j`, where `rest_j` is the sum of all weights
//! but the j largest. Capped threads then get the adjusted weight
//! `rest_k / (P - k)` each, which is exactly one core's worth. With `n <= P`
//! threads every thread gets a core of its own; their adjusted weights are
//! all equal (the mean). Ties are capped together or not at all.

use alloc::vec::Vec;
use core::cmp::Ordering;

use crate::SchedError;

/// An exact non-negative rational `num / den`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ratio {
    pub num: u128,
    pub den: u128,
}

impl Ratio {
    pub const fn new(num: u128, den: u128) -> Ratio {
        Ratio { num, den }
    }

    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

impl PartialOrd for Ratio {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ratio {
    fn cmp(&self, other: &Self) -> Ordering {
        match (
            self.num.checked_mul(other.den),
            other.num.checked_mul(self.den),
        ) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => self.as_f64().total_cmp(&other.as_f64()),
        }
    }
}

/// Where the cap falls for a set of weights on P cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap {
    pub cores: usize,
    /// Number of weights.
    pub count: usize,
    /// Sum of all weights.
    pub total: u128,
    /// Number of capped (one-core) threads, `k`.
    pub capped: usize,
    /// Sum of the uncapped weights.
    pub rest: u128,
    /// The smallest capped weight: a weight is capped iff it is at least
    /// this (only meaningful when `capped > 0`).
    pub threshold: u64,
}

impl Cap {
    /// The cap for weights given largest first.
    pub fn compute(
        descending: impl Iterator<Item = u64>,
        count: usize,
        total: u128,
        cores: usize,
    ) -> Cap {
        let p = cores.max(1);
        let mut cap = Cap {
            cores: p,
            count,
            total,
            capped: 0,
            rest: total,
            threshold: 0,
        };
        for w in descending {
            if cap.capped == p {
                break;
            }
            let free = (p - cap.capped) as u128;
            if u128::from(w).saturating_mul(free) >= cap.rest {
                cap.rest -= u128::from(w).min(cap.rest);
                cap.capped += 1;
                cap.threshold = w;
            } else {
                break;
            }
        }
        cap
    }

    /// Whether weight `w` (one of the set) gets exactly one core.
    pub fn is_capped(&self, w: u64) -> bool {
        self.capped > 0 && w >= self.threshold
    }

    /// The adjusted weight of `w` (one of the set).
    pub fn effective(&self, w: u64) -> Ratio {
        if !self.is_capped(w) {
            Ratio::new(u128::from(w), 1)
        } else if self.rest > 0 {
            Ratio::new(self.rest, (self.cores - self.capped) as u128)
        } else {
            // At most one thread per core: each gets a whole one.
            Ratio::new(self.total, self.count.max(1) as u128)
        }
    }

    /// The sum of all adjusted weights.
    pub fn total_effective(&self) -> Ratio {
        if self.capped == 0 || self.rest == 0 {
            Ratio::new(self.total, 1)
        } else {
            Ratio::new(
                self.rest.saturating_mul(self.cores as u128),
                (self.cores - self.capped) as u128,
            )
        }
    }
}

/// Adjusted weights (same order as `weights`) such that no thread's share
/// of `cores` cores exceeds one core. Uncapped weights are unchanged;
/// capped ones are `rest / (P - k)` (see the module docs). Errors:
/// `ZeroWeight`, `BadCores`.
pub fn feasible_weights(weights: &[u64], cores: usize) -> Result<Vec<Ratio>, SchedError> {
    crate::check_cores(cores)?;
    if weights.contains(&0) {
        return Err(SchedError::ZeroWeight);
    }
    let mut sorted: Vec<u64> = weights.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let total = weights.iter().map(|&w| u128::from(w)).sum();
    let cap = Cap::compute(sorted.into_iter(), weights.len(), total, cores);
    Ok(weights.iter().map(|&w| cap.effective(w)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// SFS's readjustment as first described: repeatedly cap every thread
    /// whose share of the remaining capacity exceeds one core. Returns the
    /// adjusted weights and the number of passes it took.
    fn iterative(weights: &[u64], p: usize) -> (Vec<f64>, usize) {
        let n = weights.len();
        let mut capped = vec![false; n];
        let mut passes = 0;
        loop {
            passes += 1;
            let k = capped.iter().filter(|&&c| c).count();
            if k == n || k == p {
                break;
            }
            let rest: f64 = (0..n)
                .filter(|&i| !capped[i])
                .map(|i| weights[i] as f64)
                .sum();
            let free = (p - k) as f64;
            let over: Vec<usize> = (0..n)
                .filter(|&i| !capped[i] && weights[i] as f64 * free > rest * (1.0 + 1e-12))
                .collect();
            if over.is_empty() {
                break;
            }
            for i in over {
                capped[i] = true;
            }
        }
        let k = capped.iter().filter(|&&c| c).count();
        let rest: f64 = (0..n)
            .filter(|&i| !capped[i])
            .map(|i| weights[i] as f64)
            .sum();
        let out = (0..n)
            .map(|i| match (capped[i], k == n) {
                (false, _) => weights[i] as f64,
                (true, true) => 1.0,
                (true, false) => rest / (p - k) as f64,
            })
            .collect();
        (out, passes)
    }

    #[test]
    fn caps_the_heavy_thread_to_one_core() {
        // 4 cores, weights 100:1:1:1:1: the heavy one asks for 96%.
        let f = feasible_weights(&[100, 1, 1, 1, 1], 4).unwrap();
        assert_eq!(f[0], Ratio::new(4, 3));
        assert_eq!(f[1], Ratio::new(1, 1));
        let total: f64 = f.iter().map(|r| r.as_f64()).sum();
        assert!((f[0].as_f64() / total - 0.25).abs() < 1e-12);
    }

    #[test]
    fn feasible_weights_are_unchanged_and_few_threads_get_a_core_each() {
        let ones = feasible_weights(&[1, 1, 1, 1, 1], 2).unwrap();
        assert!(ones.iter().all(|&r| r == Ratio::new(1, 1)));
        // Two threads, two cores: one core each, whatever the weights.
        let two = feasible_weights(&[3, 1], 2).unwrap();
        assert_eq!(two[0], two[1]);
        // Exactly one core's worth (2/4 on 2 cores) is capped but unchanged.
        let f = feasible_weights(&[2, 1, 1], 2).unwrap();
        assert_eq!(f[0].as_f64(), 2.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(feasible_weights(&[1, 0], 2), Err(SchedError::ZeroWeight));
        assert_eq!(feasible_weights(&[1], 0), Err(SchedError::BadCores));
        assert_eq!(feasible_weights(&[], 3), Ok(vec![]));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn result_is_feasible_ordered_and_matches_the_iteration(
            ws in proptest::collection::vec(1u64..1000, 1..30),
            p in 1usize..9,
        ) {
            let f: Vec<f64> = feasible_weights(&ws, p).unwrap().iter().map(|r| r.as_f64()).collect();
            let total: f64 = f.iter().sum();
            // Feasible: nobody asks for more than one core (or, with fewer
            // threads than cores, everyone gets exactly one).
            for &x in &f {
                prop_assert!(x / total * p.min(ws.len()) as f64 <= 1.0 + 1e-9);
            }
            // Order preserved, and uncapped weights keep their ratios.
            for i in 0..ws.len() {
                for j in 0..ws.len() {
                    if ws[i] > ws[j] { prop_assert!(f[i] + 1e-9 >= f[j]); }
                    if ws[i] == ws[j] { prop_assert!((f[i] - f[j]).abs() < 1e-9); }
                }
            }
            // Capped weights are exactly one core's share when n > P.
            if ws.len() > p {
                for i in 0..ws.len() {
                    if f[i] != ws[i] as f64 {
                        prop_assert!((f[i] / total - 1.0 / p as f64).abs() < 1e-9);
                        prop_assert!(f[i] < ws[i] as f64);
                    }
                }
            }
            // The iterative readjustment converges (within P + 1 passes) to
            // the same weights.
            // (Compared as shares: with n <= P any equal weights will do.)
            let (it, passes) = iterative(&ws, p);
            prop_assert!(passes <= p + 1, "{} passes", passes);
            let it_total: f64 = it.iter().sum();
            for i in 0..ws.len() {
                prop_assert!((it[i] / it_total - f[i] / total).abs() <= 1e-9, "{:?} vs {:?}", it, f);
            }
        }
    }
}
