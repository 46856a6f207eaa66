//! The lottery rows of `results/README.md`, each beside its binomial
//! envelope.

use std::fmt::Write as _;

use super::binomial::Envelope;
use crate::experiments::thread_cpu;
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

/// The table, and a sentence on how many rows fell inside.
pub fn table(rows: &[Row]) -> Result<String, String> {
    let mut md = String::from(
        "| run | virtual time | quanta n | measured A:B | expected | 95% envelope of A:B | inside? | published |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let mut inside = 0;
    for row in rows {
        let m = Measured::of(row.run, row.tickets).map_err(|e| format!("{}: {e}", row.what))?;
        let (lo, hi) = m.envelope.ratio_interval();
        let holds = m.envelope.holds(m.wins);
        inside += usize::from(holds);
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
    let runs = rows.len() as u64;
    let outside = runs - inside as u64;
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

/// How the envelope is computed (for the README).
pub const METHOD: &str = "How the envelope is computed: each quantum is one draw, won by A with probability p = A's tickets / (A's + B's) \
    ([WW94, §2.2†]); after n quanta A's wins k are Binomial(n, p) and the measured ratio is k/(n−k). \
    n is the pair's CPU time over the slice length, k is A's share of it times n. \
    The expected ratio is np : n(1−p), the ticket ratio. The envelope is the ratio at the exact 2.5% and 97.5% quantiles of \
    Binomial(n, p) (summed in log space, not the normal approximation), mapped through k/(n−k), which grows with k; \
    a run is inside when its k lies between them. Code: `xtask/src/canonical/binomial.rs`.";
