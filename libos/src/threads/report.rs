//! What the sampler reads in one hold of the runtime lock: every figure of
//! one sample as of one instant, and the part of the threads' runs still in
//! progress then.
//!
//! A thread is charged when it stops, so at a sample the runs in progress
//! on other cores are in the application's time (the kernel's) but not yet
//! in its threads' (on 64 cores up to a slot a core: under 0.9 points of
//! the threads' part). The sampler adds them up here, on the global clock;
//! `xtask`'s yardstick turns them into charged time at the application's
//! charged rate, as it does the application's own tail.

use super::table::Audit;
use sched_api::PolicyKind;

/// One sample's figures, all read in one hold of the runtime lock, after
/// every published stop was charged.
#[derive(Clone, Copy, Debug)]
pub struct Report {
    /// The instant (global clock, ns) the figures are of.
    pub at_ns: u64,
    /// Rows written to the caller's table (live threads of the policy).
    pub rows: usize,
    pub policy: PolicyKind,
    pub swaps: u64,
    pub audit: Audit,
    /// The control thread's CPU time (ns).
    pub control_ns: u64,
    /// The longest single charge of a policy's thread so far (ns).
    pub longest_charge_ns: u64,
    /// The policy's threads' runs in progress at `at_ns` on every core,
    /// each from its start (or its turn's, if later) to `at_ns` (or its
    /// turn's end, if earlier): global-clock ns, kernel interrupts
    /// included ([`in_turn_ns`]).
    pub running_ns: u64,
}

/// What the sampler reads of a run in progress on another core: when the
/// run started there, and from that core's dispatch page (the kernel's)
/// the environment's current turn and its last repossession there (global
/// clock, ns).
#[derive(Clone, Copy, Debug)]
pub struct RunSeen {
    pub since: u64,
    pub turn_start: u64,
    pub turn_end: u64,
    pub last_repossession: u64,
}

/// The part up to `at` of a run in progress that lies in the
/// environment's current turn on its core: from the later of the run's
/// start and the turn's to the earlier of `at` and the turn's end. Never
/// more than the run will be charged for up to `at`:
/// - a run carried on into a later turn counts from that turn's start
///   (its earlier turns are left out);
/// - a run whose turn has ended, its stop not yet taken, counts to that
///   end, where its charge ends;
/// - a run whose epilogue has begun counts nothing: the kernel then
///   exports the epilogue's entry as the turn's start, after its end;
/// - a run the kernel repossessed since it began counts nothing: its
///   charge ends at the deadline of the turn it lost, and the core may be
///   in another turn by now (review r-report);
/// - a read torn between two turns counts nothing, if the caller reads the
///   turn's end before its start (the kernel writes the end first): a new
///   start then comes after an old end.
pub fn in_turn_ns(run: RunSeen, at: u64) -> u64 {
    if run.last_repossession >= run.since {
        return 0;
    }
    at.min(run.turn_end)
        .saturating_sub(run.since.max(run.turn_start))
}

#[cfg(test)]
mod tests {
    use super::{in_turn_ns, RunSeen};

    /// A run that started at `since` in the turn `turn_start..turn_end`,
    /// the core last repossessed long before.
    fn run(since: u64, turn_start: u64, turn_end: u64) -> RunSeen {
        RunSeen {
            since,
            turn_start,
            turn_end,
            last_repossession: 0,
        }
    }

    #[test]
    fn a_run_in_its_turn_counts_from_its_start_to_the_sample() {
        // Turn 1,000..3,000; the thread started at 1,500; sampled at 2,200.
        assert_eq!(in_turn_ns(run(1_500, 1_000, 3_000), 2_200), 700);
    }

    #[test]
    fn a_run_carried_into_a_later_turn_counts_from_that_turn() {
        // Started at 500 in an earlier turn; this turn began at 1,000.
        assert_eq!(in_turn_ns(run(500, 1_000, 3_000), 2_200), 1_200);
    }

    #[test]
    fn a_run_whose_turn_ended_counts_to_the_turns_end() {
        // Revoked at 3,000, its epilogue not yet entered; sampled at 3,100.
        assert_eq!(in_turn_ns(run(1_500, 1_000, 3_000), 3_100), 1_500);
    }

    #[test]
    fn a_run_in_its_epilogue_counts_nothing() {
        // The epilogue entered at 3,100, past the turn's end at 3,000.
        assert_eq!(in_turn_ns(run(1_500, 3_100, 3_000), 3_200), 0);
    }

    #[test]
    fn a_run_that_starts_after_the_sample_counts_nothing() {
        assert_eq!(in_turn_ns(run(2_500, 1_000, 3_000), 2_200), 0);
    }

    #[test]
    fn a_repossessed_run_counts_nothing_in_this_turn_or_the_next() {
        // Repossessed at 3,200 (grace over); charged to 3,000 later. In the
        // next turn, 5,000..7,000, its stop is not yet taken at 5,400.
        let lost = RunSeen {
            last_repossession: 3_200,
            ..run(1_500, 5_000, 7_000)
        };
        assert_eq!(in_turn_ns(lost, 5_400), 0);
        // Sampled before that next turn's times were written.
        let lost = RunSeen {
            last_repossession: 3_200,
            ..run(1_500, 1_000, 3_000)
        };
        assert_eq!(in_turn_ns(lost, 4_000), 0);
    }

    #[test]
    fn a_read_torn_between_turns_counts_nothing() {
        // Turn 1: 1,000..3,000; turn 2: 5,000..7,000. Read end first, start
        // second: the tear can give turn 1's end and turn 2's start.
        assert_eq!(in_turn_ns(run(1_500, 5_000, 3_000), 5_500), 0);
    }
}
