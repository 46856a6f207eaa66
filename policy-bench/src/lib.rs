//! What one scheduling decision is, for timing: a policy of each kind
//! holding `n` threads, and one `pick` followed by one `charge` of a full
//! quantum on core 0. `benches/decision.rs` times it under criterion;
//! `just bench` runs that and reports the medians beside the same loop
//! timed inside the guest (`tbench`).
//!
//! The steady state (every thread always runnable) never changes the set
//! of runnable threads; real threads block and wake. [`churn_decision`]
//! is the same decision with the picked thread blocking at the end of its
//! quantum and then woken again: one block and one wake per decision.
//!
//! [`floor`] is what each policy's decision is measured against: the bare
//! data-structure operation it amounts to, at the same thread counts.

pub mod floor;

use sched_api::{Policy, PolicyKind, RunEnd};
use sched_registry::Params;

/// The quantum charged per decision.
pub const QUANTUM_NS: u64 = 2_000_000;
/// Thread counts the decision cost is measured at.
pub const THREADS: [u32; 5] = [1, 10, 100, 1000, 10_000];
/// Thread counts the decision cost under churn is measured at.
pub const CHURN_THREADS: [u32; 4] = [1, 100, 1000, 10_000];

/// Every registered policy, in registry order.
pub fn kinds() -> impl Iterator<Item = PolicyKind> {
    sched_registry::POLICIES.iter().map(|p| p.kind)
}

/// A policy of `kind` on one core holding `n` threads (weights 1 to 10).
///
/// # Panics
/// If `kind` is not registered.
pub fn new_policy(kind: PolicyKind, n: u32) -> Box<dyn Policy> {
    let mut p = empty_policy(kind, 1, 42);
    for id in 0..n {
        let _ = p.add(id, 1 + id % 10);
    }
    p
}

/// A policy of `kind` for `cores` cores with no threads, at the bench's
/// quantum, its draws seeded with `seed`.
///
/// # Panics
/// If `kind` is not registered.
pub fn empty_policy(kind: PolicyKind, cores: usize, seed: u64) -> Box<dyn Policy> {
    let params = Params {
        quantum_ns: QUANTUM_NS,
        cores,
        seed,
    };
    sched_registry::build(kind, &params).expect("a registered policy")
}

/// One scheduling decision on core 0: pick, then charge a full quantum.
pub fn decision(p: &mut dyn Policy) {
    if let Some(id) = p.pick(0) {
        let _ = p.charge(id, 0, QUANTUM_NS, RunEnd::Preempted);
    }
}

/// One scheduling decision under churn on core 0: pick, charge a full
/// quantum that ends in a block, and wake that thread again. The set of
/// runnable threads changes twice per decision, so a policy that rebuilds
/// anything on such a change pays for it here.
pub fn churn_decision(p: &mut dyn Policy) {
    if let Some(id) = p.pick(0) {
        let _ = p.charge(id, 0, QUANTUM_NS, RunEnd::Blocked);
        let _ = p.wake(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_decision_picks_and_charges() {
        for kind in kinds() {
            let mut p = new_policy(kind, 10);
            for _ in 0..100 {
                decision(p.as_mut());
            }
            let served: u64 = (0..10)
                .filter_map(|id| p.record(id))
                .map(|r| r.service_ns)
                .sum();
            assert_eq!(served, 100 * QUANTUM_NS, "{kind}");
        }
    }

    #[test]
    fn every_churn_decision_blocks_and_wakes() {
        for kind in kinds() {
            for n in [1, 10] {
                let mut p = new_policy(kind, n);
                for _ in 0..100 {
                    churn_decision(p.as_mut());
                    // Woken again: nobody is left sleeping or running.
                    for id in 0..n {
                        let state = p.record(id).map(|r| r.state);
                        assert_eq!(state, Some(sched_api::ThreadState::Runnable), "{kind}");
                    }
                }
                let served: u64 = (0..n)
                    .filter_map(|id| p.record(id))
                    .map(|r| r.service_ns)
                    .sum();
                assert_eq!(served, 100 * QUANTUM_NS, "{kind} {n}");
            }
        }
    }
}
