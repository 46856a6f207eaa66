//! Reading the yardstick's console: the benchmark's `LINUXBENCH` lines
//! (see `xtask/linux-bench/bench.c`) turned into instructions per
//! operation.

use crate::bench::{stat, Stat};

/// One repetition of one operation: four loop times in virtual ns.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub op: String,
    /// Iterations of the shorter loop; the longer ran `2n`.
    pub n: u64,
    pub op_n: u64,
    pub op_2n: u64,
    pub empty_n: u64,
    pub empty_2n: u64,
}

impl Sample {
    /// Instructions per operation when every instruction advances the
    /// virtual clock by `ns_per_insn`:
    ///
    /// `((op(2n) - op(n)) - (empty(2n) - empty(n))) / n / ns_per_insn`.
    ///
    /// The difference of the two loop lengths is `n` iterations' worth of
    /// time with every fixed cost (the two clock reads around a loop, its
    /// set-up, a first-touch fault) cancelled; the empty loop's difference
    /// is `n` iterations of the loop's own counter, compare and branch,
    /// which the operation's loop also executes. Negative or
    /// non-finite results mean the clock did not count what it should
    /// (not a deterministic run): `None`.
    pub fn instructions(&self, ns_per_insn: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let op = self.op_2n as f64 - self.op_n as f64;
        let empty = self.empty_2n as f64 - self.empty_n as f64;
        let x = (op - empty) / self.n as f64 / ns_per_insn;
        (x.is_finite() && x > 0.0).then_some(x)
    }
}

/// The line the benchmark prints last: a console without it did not
/// finish.
pub const END_LINE: &str = "LINUXBENCH end";

/// The `LINUXBENCH op=...` lines of a console, in order. Lines are found
/// anywhere in the text (the kernel's own messages may interleave).
pub fn parse(console: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for line in console.lines() {
        let Some(rest) = line.trim().strip_prefix("LINUXBENCH op=") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let op = words.next().unwrap_or("").to_string();
        let mut get = |key: &str| -> Result<u64, String> {
            words
                .next()
                .and_then(|w| w.strip_prefix(key)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("malformed benchmark line (`{key}=` expected): {line}"))
        };
        samples.push(Sample {
            n: get("n")?,
            op_n: get("op_n")?,
            op_2n: get("op_2n")?,
            empty_n: get("empty_n")?,
            empty_2n: get("empty_2n")?,
            op,
        });
    }
    if !console.lines().any(|l| l.trim() == END_LINE) {
        return Err(format!(
            "the Linux benchmark did not finish (no `{END_LINE}` line; {} measurements)",
            samples.len()
        ));
    }
    if samples.is_empty() {
        return Err("the Linux benchmark reported no measurements".into());
    }
    Ok(samples)
}

/// Instructions per operation, every repetition's median (min–max), in
/// the order the operations first appear.
pub fn per_op(samples: &[Sample], ns_per_insn: f64) -> Result<Vec<(String, Stat)>, String> {
    let mut ops: Vec<(String, Vec<f64>)> = Vec::new();
    for s in samples {
        let x = s.instructions(ns_per_insn).ok_or_else(|| {
            format!(
                "{}: the longer loop did not take longer than the shorter one ({s:?}): \
                 not a deterministic run?",
                s.op
            )
        })?;
        match ops.iter_mut().find(|(op, _)| *op == s.op) {
            Some((_, xs)) => xs.push(x),
            None => ops.push((s.op.clone(), vec![x])),
        }
    }
    Ok(ops.into_iter().map(|(op, xs)| (op, stat(&xs))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as the benchmark printed them in a deterministic run (shift=3).
    const CONSOLE: &str = "\
[    0.5] Run /init as init process
LINUXBENCH start
LINUXBENCH op=getpid n=20000 op_n=51786336 op_2n=103582712 empty_n=480616 empty_2n=981312
LINUXBENCH op=pipe_pingpong n=1000 op_n=102974608 op_2n=207708624 empty_n=24616 empty_2n=48616
LINUXBENCH op=getpid n=20000 op_n=51863168 op_2n=103571864 empty_n=480616 empty_2n=960616
LINUXBENCH end
[   15.6] reboot: Power down
";

    #[test]
    fn instructions_are_the_differenced_loops_over_n() {
        let s = parse(CONSOLE).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].op, "getpid");
        // ((103582712 - 51786336) - (981312 - 480616)) / 20000 / 8
        let x = s[0].instructions(8.0).unwrap();
        assert!((x - 320.598).abs() < 0.001, "{x}");
        // A fixed cost added to both lengths cancels.
        let mut shifted = s[0].clone();
        shifted.op_n += 12_345;
        shifted.op_2n += 12_345;
        assert!((shifted.instructions(8.0).unwrap() - x).abs() < 1e-9);
        let ops = per_op(&s, 8.0).unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].0, "getpid");
        assert!(ops[0].1.min < ops[0].1.max);
        assert!((300.0..340.0).contains(&ops[0].1.median));
        assert_eq!(ops[1].0, "pipe_pingpong");
        assert!((13_000.0..13_200.0).contains(&ops[1].1.median));
    }

    #[test]
    fn an_unfinished_or_garbled_run_is_an_error() {
        let cut = CONSOLE.replace(END_LINE, "");
        assert!(parse(&cut).unwrap_err().contains("did not finish"));
        assert!(parse("LINUXBENCH end\n").is_err());
        let garbled = CONSOLE.replace("op_2n=103582712", "op_2n=x");
        assert!(parse(&garbled).unwrap_err().contains("op_2n="));
        // A clock that did not advance: no figure rather than a wrong one.
        let flat =
            "LINUXBENCH op=getpid n=10 op_n=5 op_2n=5 empty_n=1 empty_2n=2\nLINUXBENCH end\n";
        let s = parse(flat).unwrap();
        assert_eq!(s[0].instructions(8.0), None);
        assert!(per_op(&s, 8.0).is_err());
    }
}
