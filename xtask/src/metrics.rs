//! Fairness metrics, as pure functions (defined in `docs/metrics.md`).

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

/// `(measured - ideal) / ideal`, or 0 when the ideal is 0.
pub fn relative_error(measured: f64, ideal: f64) -> f64 {
    if ideal > 0.0 {
        (measured - ideal) / ideal
    } else {
        0.0
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
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) {
        assert!(
            a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9),
            "{a:?} vs {b:?}"
        );
    }

    #[test]
    fn proportional_when_nobody_is_capped() {
        close(&water_fill(6.0, &[1.0, 2.0], &[10.0, 10.0]), &[2.0, 4.0]);
    }

    #[test]
    fn an_infeasible_weight_gets_one_core_and_the_rest_share_the_surplus() {
        // 4 cores for 1 s: weights 10,1,1,1,1. Thread 0 asks for 10/14 of 4
        // cores (2.86) but can use 1; the other four share 3 equally.
        close(
            &water_fill(4.0, &[10.0, 1.0, 1.0, 1.0, 1.0], &[1.0; 5]),
            &[1.0, 0.75, 0.75, 0.75, 0.75],
        );
    }

    #[test]
    fn capping_cascades() {
        // 3 units, weights 4,2,1, caps 1,1,5: 0 and 1 saturate in turn.
        close(
            &water_fill(3.0, &[4.0, 2.0, 1.0], &[1.0, 1.0, 5.0]),
            &[1.0, 1.0, 1.0],
        );
    }

    #[test]
    fn sleepers_cap_their_own_ideal() {
        // A thread awake 10% of the time can use only that.
        close(&water_fill(1.0, &[1.0, 1.0], &[0.1, 1.0]), &[0.1, 0.9]);
    }

    #[test]
    fn more_total_than_caps_is_not_invented() {
        close(&water_fill(9.0, &[1.0, 1.0], &[1.0, 2.0]), &[1.0, 2.0]);
        close(&water_fill(1.0, &[0.0, 1.0], &[1.0, 2.0]), &[0.0, 1.0]);
    }

    #[test]
    fn shares_errors_and_envelopes() {
        close(&shares(&[1.0, 3.0]), &[0.25, 0.75]);
        close(&shares(&[0.0, 0.0]), &[0.0, 0.0]);
        assert!((relative_error(0.55, 0.5) - 0.1).abs() < 1e-12);
        assert_eq!(relative_error(0.1, 0.0), 0.0);
        // 2:1 lottery over 1000 draws: p = 2/3, envelope ~2.9%.
        assert!((lottery_envelope(2.0 / 3.0, 1000.0) - 0.02922).abs() < 1e-4);
    }
}
