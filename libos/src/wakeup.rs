//! Folding every sleeping thread into the one wakeup predicate an
//! environment may install: "clock ≥ earliest deadline OR word₁ ≠ old₁ OR
//! …". Pure (no system calls), so it is tested on the host against the
//! verifier and evaluator the kernel uses.
//!
//! A predicate holds at most [`predicate::MAX_INSNS`] instructions. When
//! not every watched word fits, the ones left out must still be noticed:
//! the fold then also wakes at `now + poll_ns`, and the libOS re-checks
//! every word itself at that dispatch.

use predicate::{Builder, Cond, Program};

/// Why a thread sleeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Until the global clock reaches this (ns).
    Until(u64),
    /// Until the 8-byte-aligned word at `addr` no longer holds `old`.
    Changed { addr: u64, old: u64 },
}

/// The folded predicate and how many watched words it covers.
pub struct Folded {
    pub program: Program,
    /// Watched words in the predicate; the rest are polled.
    pub words: usize,
    /// Watched words left out (the predicate then also wakes at a poll time).
    pub dropped: usize,
}

/// Most conditions a fold tries to fit (one per thread at most).
const MAX_CONDS: usize = 64;

/// Folds `waits` (any order, duplicates allowed) into one predicate with
/// `tag`, or `None` when nothing waits. Words that do not fit make it wake
/// by `now_ns + poll_ns` as well.
pub fn fold(
    tag: u64,
    waits: impl IntoIterator<Item = Wait>,
    now_ns: u64,
    poll_ns: u64,
) -> Option<Folded> {
    let mut deadline: Option<u64> = None;
    let mut conds = [Cond::ClockAtLeast(0); MAX_CONDS];
    let mut words = 0;
    let mut dropped = 0;
    for w in waits {
        match w {
            Wait::Until(t) => deadline = Some(deadline.map_or(t, |d| d.min(t))),
            Wait::Changed { addr, old } => {
                let c = Cond::WordChanged { addr, old };
                // conds[0] is kept for the clock term.
                if conds[1..=words].contains(&c) {
                    continue;
                }
                if words + 1 < MAX_CONDS {
                    words += 1;
                    conds[words] = c;
                } else {
                    dropped += 1;
                }
            }
        }
    }
    if deadline.is_none() && words == 0 {
        return None;
    }
    // Fit as many words as the instruction budget allows; a word left out
    // is polled.
    loop {
        let poll = (dropped > 0).then(|| now_ns.saturating_add(poll_ns));
        let clock = match (deadline, poll) {
            (Some(d), Some(p)) => Some(d.min(p)),
            (d, p) => d.or(p),
        };
        let list = match clock {
            Some(t) => {
                conds[0] = Cond::ClockAtLeast(t);
                &conds[..=words]
            }
            None => &conds[1..=words],
        };
        if let Ok(program) = Builder::any_of(tag, list) {
            return Some(Folded {
                program,
                words,
                dropped,
            });
        }
        if words == 0 {
            return None;
        }
        words -= 1;
        dropped += 1;
    }
}

#[cfg(test)]
mod tests;
