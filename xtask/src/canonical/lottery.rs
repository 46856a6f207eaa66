//! The lottery rows of `results/README.md`, each beside its binomial
//! envelope.

use std::fmt::Write as _;

use super::binomial::Envelope;
use crate::experiments::thread_cpu;
use crate::trials::{mean_ci, Estimate};
use crate::RunOutcome;

/// One lottery run of two CPU-bound threads A and B of application `pair`.
pub struct Row<'a> {
    pub what: String,
    pub run: &'a RunOutcome,
    /// Tickets of A and B.
    pub tickets: (u64, u64),
    pub published: String,
}

/// What a run measured, against its envelope.
pub struct Measured {
    /// Quanta the pair received: their CPU time over the slice length.
    pub n: u64,
    /// Quanta A received (its CPU time over the slice length).
    pub wins: u64,
    /// A's CPU time over B's.
    pub ratio: f64,
    pub envelope: Envelope,
}

impl Measured {
    pub fn of(run: &RunOutcome, tickets: (u64, u64)) -> Result<Measured, String> {
        let slice = run.summary["slice_ns"]
            .as_f64()
            .filter(|s| *s > 0.0)
            .ok_or("summary.json has no slice_ns")?;
        let (a, b) = (thread_cpu(run, "pair", "A"), thread_cpu(run, "pair", "B"));
        if a <= 0.0 || b <= 0.0 {
            return Err(format!(
                "thread A ran {a} ns, B {b} ns: not a lottery run of the pair"
            ));
        }
        let n = ((a + b) / slice).round() as u64;
        let wins = (n as f64 * a / (a + b)).round() as u64;
        let p = tickets.0 as f64 / (tickets.0 + tickets.1) as f64;
        Ok(Measured {
            n,
            wins,
            ratio: a / b,
            envelope: Envelope::new(n, p),
        })
    }
}

fn ratio_text(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.2}:1")
    } else {
        "∞".into()
    }
}

/// The ratios of the sweep at one ticket ratio: its trials, each with its
/// own seed, and the mean ratio with its 95% confidence interval.
pub struct SweepValue {
    /// A's tickets over B's.
    pub k: u64,
    /// `(seed, what the run measured)`, one per trial.
    pub trials: Vec<(u64, Measured)>,
    pub published: String,
}

impl SweepValue {
    /// A:B of every trial.
    pub fn ratios(&self) -> Vec<f64> {
        self.trials.iter().map(|(_, m)| m.ratio).collect()
    }

    /// The mean A:B over the trials and its 95% confidence interval
    /// (Student's t); `None` with fewer than two trials or an infinite
    /// ratio (B never ran).
    pub fn estimate(&self) -> Option<Estimate> {
        mean_ci(&self.ratios())
    }

    /// How many trials fell inside their own envelope.
    pub fn inside(&self) -> usize {
        self.trials
            .iter()
            .filter(|(_, m)| m.envelope.holds(m.wins))
            .count()
    }
}

/// The table of single runs, the table of the sweep (one line per ratio:
/// its trials' mean and 95% interval, and how many fell inside their
/// envelopes), and a sentence on how many runs of either fell inside.
pub fn table(rows: &[Row], sweep: &[SweepValue]) -> Result<String, String> {
    let mut md = String::from(
        "| run | virtual time | quanta n | measured A:B | expected | 95% envelope of A:B | inside? | published |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let mut inside = 0;
    let mut runs = 0;
    for row in rows {
        let m = Measured::of(row.run, row.tickets).map_err(|e| format!("{}: {e}", row.what))?;
        let (lo, hi) = m.envelope.ratio_interval();
        let holds = m.envelope.holds(m.wins);
        inside += usize::from(holds);
        runs += 1;
        let seconds = row.run.summary["duration_ns"].as_f64().unwrap_or(0.0) / 1e9;
        let _ = writeln!(
            md,
            "| {} | {seconds:.0} s | {} | {} | {} | {} – {} | {} | {} |",
            row.what,
            m.n,
            ratio_text(m.ratio),
            ratio_text(m.envelope.expected_ratio()),
            ratio_text(lo),
            ratio_text(hi),
            if holds { "inside" } else { "**outside**" },
            row.published
        );
    }
    if !sweep.is_empty() {
        md.push_str(&sweep_table(sweep));
    }
    inside += sweep.iter().map(SweepValue::inside).sum::<usize>();
    runs += sweep.iter().map(|v| v.trials.len()).sum::<usize>();
    let (inside, runs) = (inside as u64, runs as u64);
    let outside = runs - inside;
    let _ = writeln!(
        md,
        "\n{inside} of {runs} runs inside their envelope. Each run of a correct lottery falls outside its envelope with probability at most 0.05, \
         independently of the others (each run has its own seed), so {outside} or more of {runs} outside happens with probability at most {:.2}{}.\n",
        super::binomial::at_least(outside, runs, 0.05),
        if outside == 0 {
            ""
        } else {
            "; below 0.05 would point at the scheduler rather than at chance"
        },
    );
    Ok(md)
}

/// The sweep's table: per ticket ratio, its trials' seeds, the quanta of
/// the shortest and longest, the mean A:B with its 95% confidence
/// interval (over the trials: where the scheduler's mean ratio lies), the
/// envelope of one run of the shortest (where a single run of a correct
/// lottery lies), and how many trials fell inside their own envelopes.
pub fn sweep_table(sweep: &[SweepValue]) -> String {
    let mut md = String::from(
        "\n| sweep | trials (seeds) | quanta n | mean A:B ± 95% CI | expected | 95% envelope of one run | runs inside | published |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for v in sweep {
        let Some(shortest) = v.trials.iter().map(|(_, m)| m).min_by_key(|m| m.n) else {
            continue;
        };
        let longest = v.trials.iter().map(|(_, m)| m.n).max().unwrap_or(0);
        let seeds: Vec<String> = v.trials.iter().map(|(s, _)| s.to_string()).collect();
        let (lo, hi) = shortest.envelope.ratio_interval();
        let quanta = if shortest.n == longest {
            shortest.n.to_string()
        } else {
            format!("{} – {longest}", shortest.n)
        };
        let _ = writeln!(
            md,
            "| {k}:1 | {} ({}) | {quanta} | {} | {} | {} – {} | {} of {} | {} |",
            v.trials.len(),
            seeds.join(", "),
            mean_text(v),
            ratio_text(shortest.envelope.expected_ratio()),
            ratio_text(lo),
            ratio_text(hi),
            v.inside(),
            v.trials.len(),
            v.published,
            k = v.k,
        );
    }
    md
}

fn mean_text(v: &SweepValue) -> String {
    match v.estimate() {
        Some(e) => format!("{:.3} ± {:.3}", e.mean, e.half_width),
        None => v.ratios().first().map_or("—".into(), |&r| {
            format!("{} (one trial: no interval)", ratio_text(r))
        }),
    }
}

/// The sweep as CSV (`results/figures/lottery-sweep.csv`, beside its
/// figure): per ticket ratio, the trials, the mean A:B and the 95%
/// interval's bounds (empty without one), the expected ratio, the trials
/// inside their envelopes, and every trial's ratio.
pub fn sweep_csv(sweep: &[SweepValue]) -> String {
    let mut csv = String::from(
        "ticket_ratio,trials,mean_ratio,ci95_low,ci95_high,expected_ratio,inside,ratios\n",
    );
    for v in sweep {
        let ratios: Vec<String> = v.ratios().iter().map(|r| format!("{r:.6}")).collect();
        let (mean, lo, hi) = match v.estimate() {
            Some(e) => (
                format!("{:.6}", e.mean),
                format!("{:.6}", e.mean - e.half_width),
                format!("{:.6}", e.mean + e.half_width),
            ),
            None => (
                ratios.first().cloned().unwrap_or_default(),
                String::new(),
                String::new(),
            ),
        };
        let expected = v.trials.first().map_or(String::new(), |(_, m)| {
            format!("{:.6}", m.envelope.expected_ratio())
        });
        let _ = writeln!(
            csv,
            "{},{},{mean},{lo},{hi},{expected},{},{}",
            v.k,
            v.trials.len(),
            v.inside(),
            ratios.join(" ")
        );
    }
    csv
}

/// The figure's points: `(ticket ratio, mean A:B, 95% half-width)`, the
/// half-width `None` without an interval.
pub fn sweep_points(sweep: &[SweepValue]) -> Vec<(f64, f64, Option<f64>)> {
    sweep
        .iter()
        .filter_map(|v| {
            let e = v.estimate();
            let mean = e.map(|e| e.mean).or(v.ratios().first().copied())?;
            Some((v.k as f64, mean, e.map(|e| e.half_width)))
        })
        .collect()
}

/// How the envelope is computed (for the README).
pub const METHOD: &str = "How the envelope is computed: each quantum is one draw, won by A with probability p = A's tickets / (A's + B's) \
    ([WW94, §2.2†]); after n quanta A's wins k are Binomial(n, p) and the measured ratio is k/(n−k). \
    n is the pair's CPU time over the slice length, k is A's share of it times n. \
    The expected ratio is np : n(1−p), the ticket ratio. The envelope is the ratio at the exact 2.5% and 97.5% quantiles of \
    Binomial(n, p) (summed in log space, not the normal approximation), mapped through k/(n−k), which grows with k; \
    a run is inside when its k lies between them. Code: `xtask/src/canonical/binomial.rs`.";

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of `n` quanta at k:1 tickets of which A won `wins`.
    fn measured(k: u64, n: u64, wins: u64) -> Measured {
        Measured {
            n,
            wins,
            ratio: wins as f64 / (n - wins) as f64,
            envelope: Envelope::new(n, k as f64 / (k + 1) as f64),
        }
    }

    fn value(k: u64, trials: &[(u64, u64, u64)]) -> SweepValue {
        SweepValue {
            k,
            trials: trials
                .iter()
                .map(|&(seed, n, wins)| (seed, measured(k, n, wins)))
                .collect(),
            published: "—".into(),
        }
    }

    fn sweep() -> Vec<SweepValue> {
        vec![
            // 2:1 over 6000 quanta: 4000 wins is the ratio itself, 4030
            // and 3970 inside the envelope (about ±72 wins).
            value(
                2,
                &[(102, 6000, 4030), (202, 6000, 3970), (302, 6000, 4000)],
            ),
            // 7:1: 5400 of 6000 is 9:1, far outside (expected 5250).
            value(7, &[(107, 6000, 5250), (207, 6000, 5400)]),
            value(9, &[(109, 6000, 5400)]),
        ]
    }

    #[test]
    fn the_sweep_gives_each_ratio_its_mean_interval_and_runs_inside() {
        let s = sweep();
        let e = s[0].estimate().unwrap();
        let ratios = s[0].ratios();
        let mean = ratios.iter().sum::<f64>() / 3.0;
        assert!((e.mean - mean).abs() < 1e-12);
        let sd = (ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        assert!((e.half_width - 4.303 * sd / 3f64.sqrt()).abs() < 1e-3 * e.half_width);
        assert_eq!((s[0].inside(), s[1].inside(), s[2].inside()), (3, 1, 1));
        assert!(s[2].estimate().is_none(), "one trial has no interval");
        let t = sweep_table(&s);
        let row = |k: &str| {
            t.lines()
                .find(|l| l.starts_with(&format!("| {k}:1 ")))
                .unwrap()
        };
        assert!(row("2").contains("| 3 (102, 202, 302) | 6000 |"), "{t}");
        assert!(
            row("2").contains(&format!("| {:.3} ± {:.3} |", e.mean, e.half_width)),
            "{t}"
        );
        assert!(row("2").contains("| 3 of 3 |"), "{t}");
        assert!(row("7").contains("| 1 of 2 |"), "{t}");
        assert!(row("9").contains("9.00:1 (one trial: no interval)"), "{t}");
        // The header and a row per ratio.
        assert_eq!(t.lines().filter(|l| l.starts_with("| ")).count(), 1 + 3);
        // Every trial counts in the sentence on runs inside.
        let all = table(&[], &s).unwrap();
        assert!(all.contains("5 of 6 runs inside their envelope"), "{all}");
        assert!(all.contains(&sweep_table(&s)), "{all}");
    }

    #[test]
    fn the_sweep_csv_has_a_line_per_ratio_with_its_bounds_and_every_trial() {
        let s = sweep();
        let csv = sweep_csv(&s);
        let lines: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
        assert_eq!(lines.len(), 1 + 3, "{csv}");
        let header = &lines[0];
        assert!(lines.iter().all(|l| l.len() == header.len()), "{csv}");
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let e = s[0].estimate().unwrap();
        let num = |row: usize, name: &str| lines[row][col(name)].parse::<f64>().unwrap();
        assert!((num(1, "mean_ratio") - e.mean).abs() < 1e-6);
        assert!((num(1, "ci95_low") - (e.mean - e.half_width)).abs() < 1e-6);
        assert!((num(1, "ci95_high") - (e.mean + e.half_width)).abs() < 1e-6);
        assert!(num(1, "ci95_low") < num(1, "mean_ratio"));
        assert!((num(2, "expected_ratio") - 7.0).abs() < 1e-9);
        assert_eq!(lines[2][col("inside")], "1");
        assert_eq!(lines[1][col("ratios")].split(' ').count(), 3);
        // One trial: its ratio as the mean, no interval.
        assert_eq!(lines[3][col("ci95_low")], "");
        assert!((num(3, "mean_ratio") - 9.0).abs() < 1e-6);
        let points = sweep_points(&s);
        assert_eq!(points.len(), 3);
        assert_eq!(points[0].2, Some(e.half_width));
        assert_eq!(points[2], (9.0, 9.0, None));
    }
}
