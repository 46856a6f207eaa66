//! The libOS's slot follower (review r-s37). One core, slots of one
//! quantum. Thread B (1 ticket) blocks 0.9 of a quantum into each turn it
//! wins and is woken at the next slot's start; the slot's rest goes to a
//! draw between X and Y (1 ticket each), charged `Preempted` at the slot's
//! end after 0.1 of a quantum (the libOS's revocation). Compensating that
//! follower 1/f, as if it had given its quantum up, took share from B:
//! 0.249 against 0.323 without.

use sched_api::{Policy, RunEnd};
use sched_lottery::Lottery;

#[test]
fn a_slot_follower_is_not_favoured_over_the_thread_that_blocked() {
    let q = 1_000_000u64;
    let mut p = Lottery::new(q, 1, 42);
    for id in 0..3 {
        p.add(id, 1).unwrap();
    }
    let (b, mut service, mut b_asleep) = (0u32, [0u64; 3], false);
    for _ in 0..200_000 {
        if b_asleep {
            p.wake(b).unwrap();
            b_asleep = false;
        }
        let tid = p.pick(0).unwrap();
        if tid == b {
            p.charge(b, 0, q * 9 / 10, RunEnd::Blocked).unwrap();
            service[b as usize] += q * 9 / 10;
            b_asleep = true;
            let f = p.pick(0).unwrap();
            p.charge(f, 0, q / 10, RunEnd::Preempted).unwrap();
            service[f as usize] += q / 10;
        } else {
            p.charge(tid, 0, q, RunEnd::Preempted).unwrap();
            service[tid as usize] += q;
        }
    }
    let total: u64 = service.iter().sum();
    let share: Vec<f64> = service.iter().map(|&s| s as f64 / total as f64).collect();
    // B wants the CPU all but 0.1 of its own turns: about a third each.
    assert!(
        (share[0] - 1.0 / 3.0).abs() < 0.03,
        "shares B, X, Y: {share:?}"
    );
}
