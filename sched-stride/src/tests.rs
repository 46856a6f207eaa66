use super::*;
use alloc::vec::Vec;
use proptest::prelude::*;
use sched_api::sim::{self, Behaviour, Mode, Sim, SimThread};

const Q: u64 = 1_000_000;

fn cpu(weight: u32) -> SimThread {
    SimThread::cpu(weight)
}

#[test]
fn three_to_one_is_exact() {
    let mut s = Stride::new(Q, 1);
    let sim = sim::run(&mut s, 1, 4000, &[cpu(3), cpu(1)]).unwrap();
    assert_eq!(sim.service(), vec![3000 * Q, 1000 * Q]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// One core: any two always-runnable clients stay within one quantum
    /// of their ideal relative allocation at every round of a long run:
    /// |s_i * w_j - s_j * w_i| <= q * max(w_i, w_j), i.e. the relative
    /// error s_i - (s_i + s_j) w_i / (w_i + w_j) is below one quantum.
    #[test]
    fn pairwise_error_within_one_quantum(weights in proptest::collection::vec(1u32..50, 2..7), rounds in 50u32..400) {
        let mut s = Stride::new(Q, 1);
        let threads: Vec<SimThread> = weights.iter().map(|&w| cpu(w)).collect();
        let mut sim = sim::run(&mut s, 1, 0, &threads).unwrap();
        for _ in 0..rounds {
            sim.run(&mut s, 1).unwrap();
            let service: Vec<u64> = (0..weights.len()).map(|i| s.record(i as ThreadId).unwrap().service_ns).collect();
            for i in 0..weights.len() {
                for j in 0..i {
                    let (wi, wj) = (u128::from(weights[i]), u128::from(weights[j]));
                    let (si, sj) = (u128::from(service[i]), u128::from(service[j]));
                    let err = (si * wj).abs_diff(sj * wi);
                    prop_assert!(err <= u128::from(Q) * wi.max(wj), "{:?} {:?}", weights, service);
                }
            }
        }
    }

    /// Weight changes, joins and leaves mid-run: every thread stays within
    /// a few quanta of its ideal (which follows the same changes).
    #[test]
    fn dynamic_changes_keep_fairness(
        w in proptest::collection::vec(1u32..20, 2..6),
        changes in proptest::collection::vec((0usize..8, 1u32..20, 0u8..3), 1..6),
    ) {
        let mut s = Stride::new(Q, 1);
        let mut sim = Sim::new(1, Mode::Lockstep).unwrap();
        for &x in &w {
            sim.spawn(&mut s, cpu(x)).unwrap();
        }
        let mut live: Vec<ThreadId> = (0..w.len() as ThreadId).collect();
        sim.run(&mut s, 100).unwrap();
        for (who, weight, what) in changes {
            match what {
                0 => { let id = live[who % live.len()]; sim.set_weight(&mut s, id, weight).unwrap(); }
                1 => live.push(sim.spawn(&mut s, cpu(weight)).unwrap()),
                _ if live.len() > 1 => { let id = live.remove(who % live.len()); sim.exit(&mut s, id).unwrap(); }
                _ => {}
            }
            sim.run(&mut s, 150).unwrap();
        }
        sim.finish(&mut s).unwrap();
        // Flat stride's absolute error is O(n) quanta (TM-528); n <= 11 here.
        let n = sim.service().len() as f64;
        for (i, lag) in sim.max_lag().iter().enumerate() {
            prop_assert!(*lag <= n * Q as f64, "thread {}: max lag {} quanta", i, lag / Q as f64);
        }
    }

    /// On P cores (lock step or staggered), feasible or not, every thread
    /// stays within a bounded lag of its feasible share.
    #[test]
    fn p_cores_follow_feasible_shares(
        weights in proptest::collection::vec(1u32..40, 1..12),
        p in prop_oneof![Just(2usize), Just(4), Just(8)],
        staggered in any::<bool>(),
    ) {
        let mode = if staggered { Mode::Staggered } else { Mode::Lockstep };
        let mut s = Stride::new(Q, p);
        let threads: Vec<SimThread> = weights.iter().map(|&w| cpu(w)).collect();
        let sim = sim::run_mode(&mut s, p, mode, 600, &threads).unwrap();
        let n = weights.len() as f64;
        for (i, lag) in sim.max_lag().iter().enumerate() {
            prop_assert!(*lag <= (n / p as f64 + 2.0) * Q as f64, "thread {}: max lag {} quanta; {:?}", i, lag / Q as f64, sim.service());
        }
    }

    /// Export and import into a fresh stride scheduler keeps every pass
    /// exactly, and the two schedulers then decide identically.
    #[test]
    fn stride_round_trip_is_exact(
        weights in proptest::collection::vec(1u32..30, 1..8),
        rounds in 0u32..50,
        sleepers in proptest::collection::vec(any::<bool>(), 8),
    ) {
        let mut a = Stride::new(Q, 2);
        let threads: Vec<SimThread> = weights.iter().map(|&w| SimThread { weight: w, behaviour: Behaviour::Burst { percent: 40, sleep: 0 } }).collect();
        let mut sim = sim::run_mode(&mut a, 2, Mode::Staggered, rounds, &threads).unwrap();
        for (i, &z) in sleepers.iter().enumerate().take(weights.len()) {
            if z { let _ = a.sleep(i as ThreadId); }
        }
        let snap = a.export();
        let mut b = Stride::from_snapshot(Q, 2, snap.clone()).unwrap();
        prop_assert_eq!(b.export(), snap);
        for (i, &z) in sleepers.iter().enumerate().take(weights.len()) {
            if z { let _ = a.wake(i as ThreadId); let _ = b.wake(i as ThreadId); }
        }
        let mut sim_b = sim.clone();
        sim.run(&mut a, 30).unwrap();
        sim_b.run(&mut b, 30).unwrap();
        prop_assert_eq!(a.export(), b.export());
    }
}

#[test]
fn partial_quanta_are_charged_only_what_they_used() {
    // Thread 0 uses 25% of each quantum; equal weights: equal *service*.
    let mut s = Stride::new(Q, 1);
    let threads = [
        SimThread {
            weight: 1,
            behaviour: Behaviour::Burst {
                percent: 25,
                sleep: 0,
            },
        },
        cpu(1),
    ];
    let sim = sim::run(&mut s, 1, 4000, &threads).unwrap();
    let service = sim.service();
    assert!(service[0].abs_diff(service[1]) <= Q, "{service:?}");
    assert!(
        sim.max_lag().iter().all(|&l| l <= Q as f64),
        "{:?}",
        sim.max_lag()
    );
}

#[test]
fn sleepers_neither_gain_nor_lose() {
    let mut s = Stride::new(Q, 1);
    let threads = [
        SimThread {
            weight: 1,
            behaviour: Behaviour::Periodic { run: 3, sleep: 5 },
        },
        SimThread {
            weight: 2,
            behaviour: Behaviour::Burst {
                percent: 50,
                sleep: 7,
            },
        },
        cpu(1),
        cpu(3),
    ];
    let sim = sim::run(&mut s, 1, 3000, &threads).unwrap();
    // Nobody drifts from the ideal that follows the sleeps.
    for (i, lag) in sim.max_lag().iter().enumerate() {
        assert!(*lag <= 4.0 * Q as f64, "thread {i}: {lag}");
    }
}

#[test]
fn a_long_sleep_does_not_bank_credit() {
    let mut s = Stride::new(Q, 1);
    let mut sim = Sim::new(1, Mode::Lockstep).unwrap();
    for _ in 0..3 {
        sim.spawn(&mut s, cpu(1)).unwrap();
    }
    sim.run(&mut s, 30).unwrap();
    sim.finish(&mut s).unwrap();
    s.sleep(2).unwrap();
    // The two others run 1000 quanta while thread 2 sleeps.
    for _ in 0..1000 {
        let id = s.pick(0).unwrap();
        assert_ne!(id, 2);
        s.charge(id, 0, Q, RunEnd::Preempted).unwrap();
    }
    s.wake(2).unwrap();
    // After waking it takes turns again instead of running alone.
    let mut got = [0u32; 3];
    for _ in 0..30 {
        let id = s.pick(0).unwrap();
        got[id as usize] += 1;
        s.charge(id, 0, Q, RunEnd::Preempted).unwrap();
    }
    assert!(got.iter().all(|&g| (9..=11).contains(&g)), "{got:?}");
}

#[test]
fn weight_change_rescales_remaining_pass() {
    let mut s = Stride::new(Q, 1);
    s.add(1, 4).unwrap();
    s.add(2, 4).unwrap();
    let id = s.pick(0).unwrap();
    s.charge(id, 0, Q / 2, RunEnd::Yielded).unwrap();
    let g = s.export().global_vtime;
    let before = s.record(id).unwrap().vtime - g;
    s.set_weight(id, 2).unwrap();
    let after = s.record(id).unwrap().vtime - g;
    assert_eq!(after, before * 2);
    // Sleeping threads are rescaled too.
    s.sleep(id).unwrap();
    s.set_weight(id, 8).unwrap();
    assert_eq!(s.record(id).unwrap().vtime - g, before / 2);
}

#[test]
fn feasible_shares_on_four_cores() {
    let weights = [1, 2, 3, 4, 2, 1, 5, 3];
    let mut s = Stride::new(Q, 4);
    let threads: Vec<SimThread> = weights.iter().map(|&w| cpu(w)).collect();
    let sim = sim::run(&mut s, 4, 3000, &threads).unwrap();
    let total: u64 = sim.service().iter().sum();
    let wsum: u32 = weights.iter().sum();
    for (i, &w) in weights.iter().enumerate() {
        let got = sim.service()[i] as f64 / total as f64;
        let ideal = f64::from(w) / f64::from(wsum);
        assert!((got - ideal).abs() < 0.002, "weight {w}: {got} vs {ideal}");
    }
}

#[test]
fn infeasible_weight_gets_exactly_one_core() {
    // 4 cores; thread 0 asks for 100/104 of the machine.
    for mode in [Mode::Lockstep, Mode::Staggered] {
        let weights = [100, 1, 1, 1, 1];
        let mut s = Stride::new(Q, 4);
        let threads: Vec<SimThread> = weights.iter().map(|&w| cpu(w)).collect();
        let rounds = 2000;
        let sim = sim::run_mode(&mut s, 4, mode, rounds, &threads).unwrap();
        let service = sim.service();
        assert_eq!(service[0], u64::from(rounds) * Q, "{mode:?}: one full core");
        // The other three cores are shared evenly by the four light ones.
        for &x in &service[1..] {
            let share = x as f64 / (3.0 * f64::from(rounds) * Q as f64);
            assert!((share - 0.25).abs() < 0.005, "{mode:?}: {service:?}");
        }
    }
}

#[test]
fn infeasible_on_two_cores_surplus_by_weight() {
    // 2 cores, weights 10:2:1: thread 0 is capped at one core, threads 1
    // and 2 share the other 2:1.
    let mut s = Stride::new(Q, 2);
    let sim = sim::run(&mut s, 2, 3000, &[cpu(10), cpu(2), cpu(1)]).unwrap();
    let service = sim.service();
    assert_eq!(service[0], 3000 * Q);
    assert!((service[1] as f64 / service[2] as f64 - 2.0).abs() < 0.01);
}

#[test]
fn errors_not_panics() {
    assert_eq!(Stride::try_new(0, 1).unwrap_err(), SchedError::BadQuantum);
    assert_eq!(Stride::try_new(1, 0).unwrap_err(), SchedError::BadCores);
    let mut s = Stride::new(Q, 2);
    assert_eq!(s.add(1, 0), Err(SchedError::ZeroWeight));
    s.add(1, 1).unwrap();
    s.add(2, 1).unwrap();
    assert_eq!(s.add(1, 1), Err(SchedError::DuplicateThread));
    assert_eq!(
        s.charge(1, 0, 5, RunEnd::Preempted),
        Err(SchedError::NotRunning)
    );
    assert_eq!(
        s.charge(9, 0, 5, RunEnd::Preempted),
        Err(SchedError::UnknownThread)
    );
    assert_eq!(s.wake(1), Err(SchedError::NotSleeping));
    assert_eq!(s.try_pick(sched_api::MAX_CORES), Err(SchedError::BadCore));
    let id = s.pick(1).unwrap();
    assert_eq!(s.try_pick(1), Err(SchedError::CoreBusy));
    assert_eq!(
        s.charge(id, 0, 5, RunEnd::Preempted),
        Err(SchedError::NotRunning)
    );
    assert_eq!(s.sleep(id), Err(SchedError::AlreadyRunning));
    assert_eq!(s.set_weight(id, 0), Err(SchedError::ZeroWeight));
    assert_eq!(s.set_cores(0), Err(SchedError::BadCores));
    assert_eq!(s.remove(9), Err(SchedError::UnknownThread));
    assert_eq!(s.set_weight(9, 1), Err(SchedError::UnknownThread));
    let other = 3 - id;
    s.sleep(other).unwrap();
    assert_eq!(s.sleep(other), Err(SchedError::AlreadySleeping));
    // A bad snapshot changes nothing.
    let before = s.export();
    let mut bad = before.clone();
    bad.threads[0].weight = 0;
    assert_eq!(s.import(bad), Err(SchedError::BadSnapshot));
    assert_eq!(s.export(), before);
    // Exited threads are gone; their core is free.
    s.charge(id, 1, 5, RunEnd::Exited).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s.try_pick(1), Ok(None));
}
