use super::*;
use proptest::prelude::*;
use sched_api::sim::{self, Behaviour, SimThread};

const Q: u64 = 1_000_000;

fn cpu(weight: u32) -> SimThread {
    SimThread {
        weight,
        behaviour: Behaviour::CpuBound,
    }
}

fn lottery_with(weights: &[u32], cores: usize, seed: u64) -> Lottery {
    let mut l = Lottery::new(Q, cores, seed);
    for (i, &w) in weights.iter().enumerate() {
        l.add(i as ThreadId, w).unwrap();
    }
    l
}

/// |wins − n·p| ≤ 4σ + 1: the binomial envelope.
fn within_binomial(wins: u64, n: u64, p: f64) -> bool {
    let sigma = (n as f64 * p * (1.0 - p)).sqrt();
    (wins as f64 - n as f64 * p).abs() <= 4.0 * sigma + 1.0
}

#[test]
fn two_to_one_and_twenty_to_one() {
    for (a, b) in [(2u32, 1u32), (20, 1)] {
        let mut l = lottery_with(&[a, b], 1, 7);
        let n = 20_000;
        let s = sim::run(&mut l, 1, n, &[cpu(a), cpu(b)]).unwrap();
        let wins = s[0] / Q;
        assert!(
            within_binomial(wins, u64::from(n), f64::from(a) / f64::from(a + b)),
            "{a}:{b} -> {s:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn every_thread_within_the_binomial_envelope(weights in proptest::collection::vec(1u32..30, 2..6), seed in any::<u64>()) {
        let n = 5000u32;
        let mut l = lottery_with(&weights, 1, seed);
        let threads: Vec<SimThread> = weights.iter().map(|&w| cpu(w)).collect();
        let s = sim::run(&mut l, 1, n, &threads).unwrap();
        let total: u32 = weights.iter().sum();
        for i in 0..weights.len() {
            prop_assert!(within_binomial(s[i] / Q, u64::from(n), f64::from(weights[i]) / f64::from(total)));
        }
    }
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let mut l = lottery_with(&[3, 2, 1], 1, seed);
        sim::run(&mut l, 1, 500, &[cpu(3), cpu(2), cpu(1)]).unwrap()
    };
    assert_eq!(run(99), run(99));
    assert_ne!(run(99), run(100));
}

#[test]
fn currencies_keep_inflation_inside() {
    // Two users funded 100 base tickets each; user A adds a second thread.
    let mut l = Lottery::new(Q, 1, 3);
    let a = l.create_currency(100);
    let b = l.create_currency(100);
    l.add_in_currency(0, 10, a).unwrap();
    l.add_in_currency(1, 10, a).unwrap();
    l.add_in_currency(2, 10, b).unwrap();
    let s = sim::run(&mut l, 1, 20_000, &[cpu(1), cpu(1), cpu(1)]).unwrap();
    let user_a = s[0] + s[1];
    let user_b = s[2];
    let ratio = user_a as f64 / user_b as f64;
    assert!(
        (ratio - 1.0).abs() < 0.06,
        "users should split 1:1, got {ratio} ({s:?})"
    );
}

#[test]
fn compensation_restores_share_for_partial_users() {
    // Thread 0 uses 20% of each quantum it wins: without compensation it
    // would get 1/5 of the service; with it, equal weights → equal *wins rate*
    // of 5x, so service evens out.
    let mut l = lottery_with(&[1, 1], 1, 11);
    let threads = [
        SimThread {
            weight: 1,
            behaviour: Behaviour::Partial { percent: 20 },
        },
        cpu(1),
    ];
    let s = sim::run(&mut l, 1, 30_000, &threads).unwrap();
    let ratio = s[0] as f64 / s[1] as f64;
    assert!(
        ratio > 0.7,
        "compensated partial user got {ratio} of the other's service"
    );
}

#[test]
fn transfers_lend_tickets_while_blocked() {
    let mut l = lottery_with(&[1, 1, 8], 1, 5);
    // Thread 2 (8 tickets) blocks on thread 0 and lends it its tickets.
    l.sleep(2).unwrap();
    l.transfer(2, 0).unwrap();
    let s = sim::run(&mut l, 1, 10_000, &[cpu(1), cpu(1), cpu(8)]).unwrap();
    assert_eq!(s[2], 0);
    let ratio = s[0] as f64 / s[1] as f64;
    assert!(
        (ratio - 9.0).abs() < 1.0,
        "borrower should run ~9x, got {ratio}"
    );
    l.take_back(2).unwrap();
    l.wake(2).unwrap();
}

#[test]
fn multiprocessor_never_twice_and_infeasible_gets_one_core() {
    let weights = [100, 1, 1, 1, 1];
    let mut l = lottery_with(&weights, 4, 9);
    let threads: Vec<SimThread> = weights.iter().map(|&w| cpu(w)).collect();
    let rounds = 5000u32;
    let s = sim::run(&mut l, 4, rounds, &threads).unwrap();
    let heavy = s[0] as f64 / (f64::from(rounds) * Q as f64);
    assert!(
        heavy > 0.95,
        "heavy thread should hold one core, got {heavy}"
    );
    for &x in &s[1..] {
        let share = x as f64 / (3.0 * f64::from(rounds) * Q as f64);
        assert!((share - 0.25).abs() < 0.03, "{s:?}");
    }
}

#[test]
fn multiprocessor_feasible_shares_follow_tickets() {
    // 8 threads, tickets 1..8, on 4 cores: every weight is feasible
    // (8/36 < 1/4), so shares must follow tickets, not drift toward equal.
    let weights: Vec<u32> = (1..=8).collect();
    let mut l = lottery_with(&weights, 4, 21);
    let threads: Vec<SimThread> = weights.iter().map(|&w| cpu(w)).collect();
    let s = sim::run(&mut l, 4, 5000, &threads).unwrap();
    let total: u64 = s.iter().sum();
    for (i, &w) in weights.iter().enumerate() {
        let got = s[i] as f64 / total as f64;
        let ideal = f64::from(w) / 36.0;
        assert!(
            (got - ideal).abs() < 0.01,
            "tickets {w}: {got:.4} vs {ideal:.4} ({s:?})"
        );
    }
}

#[test]
fn errors_not_panics() {
    let mut l = Lottery::new(Q, 1, 1);
    assert_eq!(l.add(1, 0), Err(SchedError::ZeroWeight));
    l.add(1, 1).unwrap();
    assert_eq!(l.add(1, 2), Err(SchedError::DuplicateThread));
    assert_eq!(
        l.charge(1, 0, 1, RunEnd::Preempted),
        Err(SchedError::NotRunning)
    );
    assert_eq!(l.transfer(1, 1), Err(SchedError::UnknownThread));
    assert_eq!(l.remove(5), Err(SchedError::UnknownThread));
    assert!(l
        .import(Snapshot {
            threads: vec![],
            global_vtime: 0
        })
        .is_ok());
}
