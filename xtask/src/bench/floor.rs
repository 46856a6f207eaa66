//! A policy's decision against its floor (`policy_bench::floor`): the
//! ratio of the two, and issue 15's goals for it — within 1.5x of the
//! floor at 100 threads and more, and at most 30 ns above it at one
//! thread (the decision's fixed overhead: what it costs beyond its data
//! structure when there is nothing to search).

use sched_api::PolicyKind;

use super::host::PolicyCost;
use super::Stat;

/// The largest ratio policy / floor the goal allows ...
pub const MAX_RATIO: f64 = 1.5;
/// ... from this many threads on.
pub const RATIO_FROM_THREADS: u32 = 100;
/// The most a decision may cost above its floor at one thread.
pub const MAX_FIXED_NS: f64 = 30.0;

/// `policy / floor`: the ratio of the medians, with the range the two 95%
/// intervals allow (the policy's lowest over the floor's highest, and its
/// highest over the floor's lowest) as min–max.
pub fn ratio(policy: Stat, floor: Stat) -> Stat {
    Stat {
        median: policy.median / floor.median,
        min: policy.min / floor.max,
        max: policy.max / floor.min,
    }
}

/// `cost`'s ratio to its floor, where it has one.
pub fn of(cost: &PolicyCost) -> Option<Stat> {
    cost.floor.map(|(_, f)| ratio(cost.steady, f))
}

/// The ratio of `cost`'s floor timed through the trait to the bare floor:
/// how much of the goal's 1.5x the bench's loop and the trait's two calls
/// take before the policy does anything.
pub fn trait_of(cost: &PolicyCost) -> Option<Stat> {
    Some(ratio(cost.floor_through_trait?, cost.floor?.1))
}

/// A floor's figure for the table: a tenth of a ns below 10 ns, where
/// whole ns would round a ring's 1.4 ns to 1 and its ratio would not
/// follow from the cells.
pub fn cell(s: Stat) -> String {
    let p = if s.median < 10.0 { 1 } else { 0 };
    format!("{:.p$} ns ({:.p$}–{:.p$})", s.median, s.min, s.max)
}

/// The goals for `kind` that `costs` can show (none for a policy without a
/// floor, and each only where its thread counts were measured): (what,
/// figure, met). Judged on medians.
pub fn goals(kind: PolicyKind, costs: &[PolicyCost]) -> Vec<(String, String, bool)> {
    let mine = || costs.iter().filter(move |c| c.kind == kind);
    let Some((floor, _)) = mine().find_map(|c| c.floor) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let worst = mine()
        .filter(|c| c.threads >= RATIO_FROM_THREADS)
        .filter_map(|c| Some((of(c)?.median, c.threads, trait_of(c))))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((r, n, through)) = worst {
        let through = through.map_or(String::new(), |t| {
            format!("; the floor through the trait alone {:.2}x", t.median)
        });
        out.push((
            format!(
                "{kind} decision against its floor ({}), {RATIO_FROM_THREADS} threads and more (host)",
                floor.describe()
            ),
            format!("≤ {MAX_RATIO}x: {r:.2}x at worst ({n} threads{through})"),
            r <= MAX_RATIO,
        ));
    }
    let one = mine().find(|c| c.threads == 1);
    if let Some((c, (_, f))) = one.and_then(|c| Some((c, c.floor?))) {
        let above = c.steady.median - f.median;
        out.push((
            format!(
                "{kind} decision above its floor ({}) at 1 thread (host)",
                floor.describe()
            ),
            format!(
                "≤ {MAX_FIXED_NS:.0} ns: {above:.0} ns ({:.0} − {:.0})",
                c.steady.median, f.median
            ),
            above <= MAX_FIXED_NS,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy_bench::floor::Floor;

    fn at(median: f64, min: f64, max: f64) -> Stat {
        Stat { median, min, max }
    }

    fn cost(name: &'static str, threads: u32, steady: f64, floor: Option<f64>) -> PolicyCost {
        let kind = PolicyKind::new(name);
        PolicyCost {
            kind,
            threads,
            steady: at(steady, steady - 1.0, steady + 1.0),
            churn: None,
            floor: floor.map(|f| {
                (
                    Floor::of(kind).unwrap_or(Floor::Heap),
                    at(f, f - 1.0, f + 1.0),
                )
            }),
            floor_through_trait: None,
        }
    }

    #[test]
    fn a_ratio_is_the_medians_with_the_intervals_widest_reading() {
        let r = ratio(at(150.0, 140.0, 160.0), at(100.0, 80.0, 125.0));
        assert_eq!(r.median, 1.5);
        assert_eq!(r.min, 140.0 / 125.0);
        assert_eq!(r.max, 2.0);
    }

    #[test]
    fn the_ratio_goal_takes_the_worst_count_from_100_threads_on() {
        let costs = [
            // 10 threads: far above, but below the goal's range.
            cost("stride", 10, 100.0, Some(10.0)),
            cost("stride", 100, 70.0, Some(50.0)),
            cost("stride", 10_000, 160.0, Some(100.0)),
            cost("rr", 100, 20.0, Some(15.0)),
        ];
        let g = goals(PolicyKind::new("stride"), &costs);
        assert_eq!(g.len(), 1, "{g:?}");
        assert!(
            g[0].1.contains("1.60x") && g[0].1.contains("10000"),
            "{g:?}"
        );
        assert!(!g[0].2);
        let g = goals(PolicyKind::new("rr"), &costs);
        assert!(g[0].1.contains("1.33x") && g[0].2, "{g:?}");
    }

    #[test]
    fn the_goal_shows_what_the_trait_alone_takes_of_the_ratio() {
        let mut c = cost("rr", 100, 9.0, Some(1.5));
        c.floor_through_trait = Some(at(3.6, 3.5, 3.7));
        assert_eq!(trait_of(&c).map(|r| r.median), Some(2.4));
        let g = goals(PolicyKind::new("rr"), &[c]);
        assert!(
            g[0].1.contains("6.00x") && g[0].1.contains("through the trait alone 2.40x"),
            "{g:?}"
        );
        assert!(!g[0].2);
        // No trait figure, no claim about it.
        let g = goals(PolicyKind::new("rr"), &[cost("rr", 100, 9.0, Some(1.5))]);
        assert!(!g[0].1.contains("trait"), "{g:?}");
    }

    #[test]
    fn the_fixed_overhead_is_the_difference_at_one_thread() {
        let met = [cost("eevdf", 1, 35.0, Some(6.0))];
        let g = goals(PolicyKind::new("eevdf"), &met);
        assert_eq!(g.len(), 1, "{g:?}");
        assert!(g[0].1.contains(": 29 ns") && g[0].2, "{g:?}");
        let missed = [cost("eevdf", 1, 37.0, Some(6.0))];
        let g = goals(PolicyKind::new("eevdf"), &missed);
        assert!(g[0].1.contains(": 31 ns") && !g[0].2, "{g:?}");
    }

    #[test]
    fn small_floors_keep_a_decimal() {
        assert_eq!(cell(at(1.44, 1.2, 1.56)), "1.4 ns (1.2–1.6)");
        assert_eq!(cell(at(45.4, 40.0, 50.6)), "45 ns (40–51)");
    }

    #[test]
    fn a_policy_without_a_floor_has_no_ratio_and_no_goal() {
        let costs = [cost("cfs", 1, 50.0, None), cost("cfs", 100, 50.0, None)];
        assert!(of(&costs[0]).is_none());
        assert!(goals(PolicyKind::new("cfs"), &costs).is_empty());
    }
}
