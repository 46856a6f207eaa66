//! The binomial envelope of a lottery run: what a correct lottery
//! scheduler's ratio can be after n quanta.
//!
//! Each quantum is one draw; a client holding a fraction p of the tickets
//! wins each with probability p, so its wins after n quanta are
//! Binomial(n, p) (Waldspurger & Weihl 1994, §2.2). Its ratio to the other
//! client is k/(n-k) for k wins, which grows with k: the quantiles of the
//! ratio are the quantiles of k mapped through k/(n-k). The interval here
//! is exact (the 2.5% and 97.5% quantiles of the binomial itself, not the
//! normal approximation), so it holds at least 95% of a correct
//! scheduler's runs at every n and p.

/// The central 95% interval of a client's wins after `n` draws at `p`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Envelope {
    pub n: u64,
    pub p: f64,
    /// Fewest wins inside: the smallest k with P(X <= k) >= 0.025.
    pub lo: u64,
    /// Most wins inside: the smallest k with P(X <= k) >= 0.975.
    pub hi: u64,
}

impl Envelope {
    /// The envelope of `n` draws at win probability `p` (0 < p < 1).
    pub fn new(n: u64, p: f64) -> Envelope {
        assert!(
            p > 0.0 && p < 1.0,
            "p = {p} is not a probability strictly inside (0, 1)"
        );
        let cdf = Cdf::new(n, p);
        Envelope {
            n,
            p,
            lo: cdf.quantile(0.025),
            hi: cdf.quantile(0.975),
        }
    }

    /// The ratio of the wins expected, np : n(1-p), i.e. the ticket ratio.
    pub fn expected_ratio(&self) -> f64 {
        self.p / (1.0 - self.p)
    }

    /// The interval of the ratio wins : losses (`hi` may be infinite).
    pub fn ratio_interval(&self) -> (f64, f64) {
        (ratio(self.lo, self.n), ratio(self.hi, self.n))
    }

    /// Whether `wins` of the `n` draws lies inside the interval.
    pub fn holds(&self, wins: u64) -> bool {
        (self.lo..=self.hi).contains(&wins)
    }
}

/// P(X >= m) for X ~ Binomial(n, p): how likely m or more of n
/// independent runs, each outside its envelope with probability at most
/// p, fall outside (an upper bound when the runs' own chances are lower).
pub fn at_least(m: u64, n: u64, p: f64) -> f64 {
    if m == 0 {
        return 1.0;
    }
    if m > n {
        return 0.0;
    }
    let cdf = Cdf::new(n, p);
    cdf.pmf[m as usize..].iter().sum::<f64>().min(1.0)
}

fn ratio(k: u64, n: u64) -> f64 {
    if k >= n {
        f64::INFINITY
    } else {
        k as f64 / (n - k) as f64
    }
}

/// The binomial distribution's probabilities, computed in log space so
/// that (1-p)^n does not underflow for thousands of draws.
struct Cdf {
    pmf: Vec<f64>,
}

impl Cdf {
    fn new(n: u64, p: f64) -> Cdf {
        let n = usize::try_from(n).expect("draws fit in memory");
        // ln k! for k = 0..=n.
        let mut ln_fact = Vec::with_capacity(n + 1);
        ln_fact.push(0.0f64);
        for k in 1..=n {
            ln_fact.push(ln_fact[k - 1] + (k as f64).ln());
        }
        let (lp, lq) = (p.ln(), (1.0 - p).ln());
        let pmf = (0..=n)
            .map(|k| {
                (ln_fact[n] - ln_fact[k] - ln_fact[n - k] + k as f64 * lp + (n - k) as f64 * lq)
                    .exp()
            })
            .collect();
        Cdf { pmf }
    }

    /// The smallest k with P(X <= k) >= q.
    fn quantile(&self, q: f64) -> u64 {
        let mut sum = 0.0;
        for (k, m) in self.pmf.iter().enumerate() {
            sum += m;
            if sum >= q {
                return k as u64;
            }
        }
        (self.pmf.len() - 1) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Cdf {
        fn mass(&self, lo: u64, hi: u64) -> f64 {
            self.pmf[lo as usize..=hi as usize].iter().sum()
        }
    }

    #[test]
    fn ten_fair_coins_by_hand() {
        // P(X <= 1) = 11/1024 < 0.025 <= P(X <= 2) = 56/1024;
        // P(X <= 7) = 968/1024 < 0.975 <= P(X <= 8) = 1013/1024.
        let e = Envelope::new(10, 0.5);
        assert_eq!((e.lo, e.hi), (2, 8));
        assert_eq!(e.ratio_interval(), (0.25, 4.0));
        assert!(e.holds(5) && e.holds(2) && e.holds(8));
        assert!(!e.holds(1) && !e.holds(9));
        assert_eq!(e.expected_ratio(), 1.0);
    }

    #[test]
    fn the_interval_holds_at_least_95_percent_and_hugs_it() {
        for (n, p) in [
            (10, 0.5),
            (600, 2.0 / 3.0),
            (6000, 2.0 / 3.0),
            (18000, 20.0 / 21.0),
        ] {
            let e = Envelope::new(n, p);
            let cdf = Cdf::new(n, p);
            let inside = cdf.mass(e.lo, e.hi);
            assert!(inside >= 0.95 - 1e-9, "n={n} p={p}: {inside}");
            // One win fewer at either end would drop below 95% (for
            // n = 10 each end weighs ~4%, hence the looser bound there).
            let bound = if n == 10 { 0.995 } else { 0.97 };
            assert!(inside < bound, "n={n} p={p}: {inside}");
        }
    }

    #[test]
    fn close_to_the_normal_approximation_when_n_is_large() {
        // The envelope `just plot` draws (normal, 1.96 sigma) and this one
        // agree to within a couple of wins at the canonical runs' sizes.
        for (n, p) in [
            (6000u64, 2.0 / 3.0),
            (18000, 20.0 / 21.0),
            (6000, 10.0 / 11.0),
        ] {
            let e = Envelope::new(n, p);
            let half = crate::metrics::lottery_envelope(p, n as f64) * n as f64;
            let mean = p * n as f64;
            assert!(
                (e.lo as f64 - (mean - half)).abs() <= 2.0,
                "n={n} p={p} lo {}",
                e.lo
            );
            assert!(
                (e.hi as f64 - (mean + half)).abs() <= 2.0,
                "n={n} p={p} hi {}",
                e.hi
            );
        }
    }

    #[test]
    fn tails_of_twelve_runs_by_hand() {
        // P(X >= 1) = 1 - 0.95^12; P(X >= 2) = 1 - 0.95^12 - 12 * 0.05 * 0.95^11.
        let none = 0.95f64.powi(12);
        let one = 12.0 * 0.05 * 0.95f64.powi(11);
        assert!((at_least(1, 12, 0.05) - (1.0 - none)).abs() < 1e-12);
        assert!((at_least(2, 12, 0.05) - (1.0 - none - one)).abs() < 1e-12);
        assert_eq!(at_least(0, 12, 0.05), 1.0);
        assert_eq!(at_least(13, 12, 0.05), 0.0);
        assert!((at_least(12, 12, 0.05) - 0.05f64.powi(12)).abs() < 1e-25);
    }

    #[test]
    fn ratio_interval_brackets_the_ticket_ratio() {
        let e = Envelope::new(6000, 2.0 / 3.0);
        let (lo, hi) = e.ratio_interval();
        assert!((e.expected_ratio() - 2.0).abs() < 1e-12);
        assert!(lo < 2.0 && 2.0 < hi, "{lo}..{hi}");
        // ln(hi/lo) ≈ 2 * 1.96 / sqrt(np(1-p)) = 3.92 / 36.5 ≈ 0.107 at
        // 6,000 quanta: the ratio is known to about ±5.4%.
        assert!(hi / lo > 1.10 && hi / lo < 1.13, "{lo}..{hi}");
        assert_eq!(ratio(5, 5), f64::INFINITY);
    }
}
