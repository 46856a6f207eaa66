//! Ticket currencies through the trait, and across swaps: a policy that
//! has them (`PolicyInfo::currencies`) values a thread's tickets by its
//! currency, and a swap to any other policy carries that value (in base
//! tickets), not the face value; the others refuse currencies outright.

use sched_api::{swap, Policy, PolicyKind, RunEnd, SchedError, ThreadState, BASE_CURRENCY};
use sched_registry::{Entitlement, Params, POLICIES};

const Q: u64 = 1_000_000;

fn make(kind: PolicyKind, seed: u64) -> Box<dyn Policy> {
    let params = Params {
        quantum_ns: Q,
        cores: 1,
        seed,
    };
    sched_registry::build(kind, &params).unwrap()
}

/// Each thread's share of `quanta` full quanta on core 0.
fn shares(p: &mut dyn Policy, threads: usize, quanta: u32) -> Vec<f64> {
    let mut won = vec![0u32; threads];
    for _ in 0..quanta {
        let id = p.pick(0).expect("a runnable thread");
        won[id as usize] += 1;
        p.charge(id, 0, Q, RunEnd::Preempted).unwrap();
    }
    won.iter()
        .map(|&w| f64::from(w) / f64::from(quanta))
        .collect()
}

/// Three runnable threads worth 100 base tickets each, one by face value
/// (1,000 tickets of A, funded with 100), one below it (10 of B, funded
/// with 100) and one in the base currency (100), and a sleeper with 1,000
/// of A (worth 50 if it woke: A's issue would double).
fn three_equals_by_value(kind: PolicyKind, seed: u64) -> Box<dyn Policy> {
    let mut p = make(kind, seed);
    let a = p.create_currency(BASE_CURRENCY, 100).unwrap();
    let b = p.create_currency(BASE_CURRENCY, 100).unwrap();
    for (id, tickets, currency) in [
        (0, 1000, a),
        (1, 10, b),
        (2, 100, BASE_CURRENCY),
        (3, 1000, a),
    ] {
        p.add(id, 1).unwrap();
        p.move_to_currency(id, currency, tickets).unwrap();
    }
    p.sleep(3).unwrap();
    p
}

fn with_currencies() -> impl Iterator<Item = PolicyKind> {
    POLICIES.iter().filter(|p| p.currencies).map(|p| p.kind)
}

#[test]
fn some_policy_has_currencies() {
    assert!(with_currencies().next().is_some());
}

#[test]
fn a_policy_without_currencies_refuses_them_and_changes_nothing() {
    for info in POLICIES.iter().filter(|p| !p.currencies) {
        let mut p = make(info.kind, 1);
        p.add(0, 5).unwrap();
        let before = p.export();
        assert_eq!(
            p.create_currency(BASE_CURRENCY, 10),
            Err(SchedError::Unsupported),
            "{}",
            info.kind
        );
        assert_eq!(p.fund_currency(1, 10), Err(SchedError::Unsupported));
        assert_eq!(p.move_to_currency(0, 1, 5), Err(SchedError::Unsupported));
        assert_eq!(p.export(), before, "{}", info.kind);
    }
}

#[test]
fn records_carry_what_tickets_are_worth_in_the_base_currency() {
    for kind in with_currencies() {
        let p = three_equals_by_value(kind, 1);
        let weights: Vec<u32> = (0..4).map(|id| p.record(id).unwrap().weight).collect();
        assert_eq!(weights, [100, 100, 100, 50], "{kind}");
        // A currency whose tickets are worth less than a base ticket each:
        // at least 1, never 0 (a weight of 0 is no thread).
        let mut p = make(kind, 1);
        let thin = p.create_currency(BASE_CURRENCY, 1).unwrap();
        for id in 0..3 {
            p.add(id, 1).unwrap();
            p.move_to_currency(id, thin, 1000).unwrap();
        }
        assert!((0..3).all(|id| p.record(id).unwrap().weight == 1), "{kind}");
        // A sleeper alone in its currency would be all of it: its funding,
        // itself valued in the parent (C is funded with 60 of D's 30 of
        // the base: D is inactive, so C's funding would be all of D's).
        let mut p = make(kind, 1);
        let d = p.create_currency(BASE_CURRENCY, 30).unwrap();
        let c = p.create_currency(d, 60).unwrap();
        p.add(0, 1).unwrap();
        p.move_to_currency(0, c, 7).unwrap();
        p.sleep(0).unwrap();
        assert_eq!(p.record(0).unwrap().weight, 30, "{kind}");
    }
}

#[test]
fn a_swap_carries_each_threads_value_in_base_tickets_not_its_face_value() {
    // 3,000 quanta: a fair draw's count of a 1/3 share has a standard
    // deviation of ~26 quanta (0.9 points); 4 points is over 4 of them.
    let quanta = 3000;
    for from in with_currencies() {
        let mut p = three_equals_by_value(from, 7);
        for s in shares(p.as_mut(), 3, quanta) {
            assert!((s - 1.0 / 3.0).abs() < 0.04, "{from} itself: {s}");
        }
        for to in POLICIES
            .iter()
            .filter(|i| i.entitlement == Entitlement::Tickets)
        {
            let mut p = three_equals_by_value(from, 7);
            swap(&mut p, make(to.kind, 7)).unwrap();
            let weights: Vec<u32> = (0..4).map(|id| p.record(id).unwrap().weight).collect();
            assert_eq!(weights, [100, 100, 100, 50], "{from} -> {}", to.kind);
            assert_eq!(p.record(3).unwrap().state, ThreadState::Sleeping);
            for (id, s) in shares(p.as_mut(), 3, quanta).into_iter().enumerate() {
                assert!(
                    (s - 1.0 / 3.0).abs() < 0.04,
                    "{from} -> {}: thread {id} got {s:.3} (by face value: 1000:10:100)",
                    to.kind
                );
            }
        }
    }
}
