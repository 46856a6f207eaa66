//! Infeasible weights on P cores (Surplus Fair Scheduling, OSDI 2000): a
//! thread cannot use more than one core, so a weight asking for more than
//! `1/P` of the total is capped to exactly one core's worth, and the
//! surplus is shared by the others in proportion to their weights.

use alloc::vec::Vec;

/// Adjusted weights (same order as `weights`) such that no thread's share
/// exceeds `1/cores`. Weights of 0 stay 0. Shares among the uncapped
/// threads keep their ratios.
pub fn feasible_weights(weights: &[u64], cores: usize) -> Vec<f64> {
    let mut out: Vec<f64> = weights.iter().map(|&w| w as f64).collect();
    let p = cores.max(1);
    if weights.iter().filter(|&&w| w > 0).count() <= p {
        // At most one thread per core: each gets a whole core.
        return out
            .iter()
            .map(|&w| if w > 0.0 { 1.0 } else { 0.0 })
            .collect();
    }
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| weights[b].cmp(&weights[a]));
    // Cap the k largest, k growing while the next one is still infeasible
    // against what the rest would leave for it.
    let total: f64 = out.iter().sum();
    let mut capped = 0usize;
    let mut rest = total;
    while capped < p {
        let w = out[order[capped]];
        // The uncapped share 1 - capped/P, split over `rest`.
        if w * (p - capped) as f64 > rest {
            rest -= w;
            capped += 1;
        } else {
            break;
        }
    }
    if capped > 0 {
        // Each capped thread gets rest / (P - capped): one core's worth.
        let cap = rest / (p - capped) as f64;
        for &i in &order[..capped] {
            out[i] = cap;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn caps_the_heavy_thread_to_one_core() {
        // 4 cores, weights 100:1:1:1:1 — the heavy one asks for 96%.
        let f = feasible_weights(&[100, 1, 1, 1, 1], 4);
        let total: f64 = f.iter().sum();
        assert!((f[0] / total - 0.25).abs() < 1e-9, "{f:?}");
        assert!((f[1] - 1.0).abs() < 1e-9);
    }

    #[test]
    fn feasible_weights_are_unchanged() {
        assert_eq!(feasible_weights(&[1, 1, 1, 1, 1], 2), vec![1.0; 5]);
        assert_eq!(feasible_weights(&[3, 1], 2), vec![1.0, 1.0]);
    }

    proptest! {
        #[test]
        fn result_is_feasible_and_keeps_ratios(ws in proptest::collection::vec(1u64..1000, 1..30), p in 1usize..9) {
            let f = feasible_weights(&ws, p);
            let total: f64 = f.iter().sum();
            if ws.len() <= p {
                // Fewer threads than cores: each simply gets a core.
                prop_assert!(f.iter().all(|&x| x == 1.0));
                return Ok(());
            }
            for &x in &f {
                prop_assert!(x / total <= 1.0 / p as f64 + 1e-9);
            }
            // Uncapped threads keep their ratios.
            for i in 0..ws.len() {
                for j in 0..ws.len() {
                    if (f[i] - ws[i] as f64).abs() < 1e-9 && (f[j] - ws[j] as f64).abs() < 1e-9 {
                        prop_assert!((f[i] * ws[j] as f64 - f[j] * ws[i] as f64).abs() < 1e-6);
                    }
                }
            }
            // Order is preserved.
            for i in 0..ws.len() {
                for j in 0..ws.len() {
                    if ws[i] > ws[j] { prop_assert!(f[i] + 1e-9 >= f[j]); }
                }
            }
        }
    }
}
