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

fn stride_with(weights: &[u32], cores: usize) -> Stride {
    let mut s = Stride::new(Q, cores);
    for (i, &w) in weights.iter().enumerate() {
        s.add(i as ThreadId, w).unwrap();
    }
    s
}

#[test]
fn three_to_one() {
    let mut s = stride_with(&[3, 1], 1);
    let service = sim::run(&mut s, 1, 4000, &[cpu(3), cpu(1)]).unwrap();
    assert_eq!(service[0], 3000 * Q);
    assert_eq!(service[1], 1000 * Q);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Single core: any two clients stay within one quantum of their ideal
    /// relative allocation, at every point of a long run.
    #[test]
    fn pairwise_error_within_one_quantum(weights in proptest::collection::vec(1u32..50, 2..8), rounds in 100u32..600) {
        let mut s = stride_with(&weights, 1);
        let threads: Vec<SimThread> = weights.iter().map(|&w| cpu(w)).collect();
        let service = sim::run(&mut s, 1, rounds, &threads).unwrap();
        for i in 0..weights.len() {
            for j in 0..weights.len() {
                // service_i / w_i vs service_j / w_j, in quanta of the lighter one.
                let a = service[i] as f64 / f64::from(weights[i]);
                let b = service[j] as f64 / f64::from(weights[j]);
                let bound = Q as f64 / f64::from(weights[i].min(weights[j])) + 1.0;
                prop_assert!((a - b).abs() <= bound, "i {} j {} a {} b {} service {:?}", i, j, a, b, service);
            }
        }
    }

    /// Weight changes and joins mid-run keep fairness from then on.
    #[test]
    fn dynamic_changes_keep_fairness(w in proptest::collection::vec(1u32..20, 2..6), new_w in 1u32..20) {
        let mut s = stride_with(&w, 1);
        let threads: Vec<SimThread> = w.iter().map(|&x| cpu(x)).collect();
        sim::run(&mut s, 1, 200, &threads).unwrap();
        s.set_weight(0, new_w).unwrap();
        let before: Vec<u64> = (0..w.len()).map(|i| s.record(i as ThreadId).unwrap().service_ns).collect();
        let mut w2 = w.clone();
        w2[0] = new_w;
        let threads: Vec<SimThread> = w2.iter().map(|&x| cpu(x)).collect();
        let after = sim::run(&mut s, 1, 2000, &threads).unwrap();
        let total: u64 = after.iter().sum();
        let wsum: u32 = w2.iter().sum();
        for i in 0..w.len() {
            let got = after[i] as f64 / total as f64;
            let ideal = f64::from(w2[i]) / f64::from(wsum);
            prop_assert!((got - ideal).abs() < 0.02 + 2.0 / 2000.0, "thread {} got {} ideal {} before {:?}", i, got, ideal, before);
        }
    }
}

#[test]
fn partial_quanta_are_charged_only_what_they_used() {
    // Thread 0 uses 25% of each quantum; equal weights: equal *service*.
    let mut s = stride_with(&[1, 1], 1);
    let threads = [
        SimThread {
            weight: 1,
            behaviour: Behaviour::Partial { percent: 25 },
        },
        cpu(1),
    ];
    let service = sim::run(&mut s, 1, 4000, &threads).unwrap();
    let ratio = service[0] as f64 / service[1] as f64;
    assert!((ratio - 1.0).abs() < 0.01, "{service:?}");
}

#[test]
fn sleepers_neither_gain_nor_lose() {
    let mut s = stride_with(&[1, 1, 1], 1);
    let threads = [
        SimThread {
            weight: 1,
            behaviour: Behaviour::Periodic { run: 3, sleep: 5 },
        },
        cpu(1),
        cpu(1),
    ];
    let service = sim::run(&mut s, 1, 3000, &threads).unwrap();
    // The sleeper cannot hoard: the two others split evenly.
    let diff = service[1].abs_diff(service[2]);
    assert!(diff <= 2 * Q, "{service:?}");
}

#[test]
fn multiprocessor_feasible_shares_follow_weights() {
    let weights = [1, 2, 3, 4, 2, 1];
    let mut s = stride_with(&weights, 4);
    let threads: Vec<SimThread> = weights.iter().map(|&w| cpu(w)).collect();
    let service = sim::run(&mut s, 4, 6000, &threads).unwrap();
    let total: u64 = service.iter().sum();
    let adjusted = feasible_weights(
        &weights.iter().map(|&w| u64::from(w)).collect::<Vec<_>>(),
        4,
    );
    let asum: f64 = adjusted.iter().sum();
    for i in 0..weights.len() {
        let got = service[i] as f64 / total as f64;
        let ideal = adjusted[i] / asum;
        assert!(
            (got - ideal).abs() < 0.01,
            "thread {i}: {got} vs {ideal}; {service:?}"
        );
    }
}

#[test]
fn eight_threads_on_four_cores_follow_their_weights() {
    let weights: Vec<u32> = (1..=8).collect();
    let mut s = stride_with(&weights, 4);
    let threads: Vec<SimThread> = weights.iter().map(|&w| cpu(w)).collect();
    let service = sim::run(&mut s, 4, 3000, &threads).unwrap();
    let total: u64 = service.iter().sum();
    for (i, &w) in weights.iter().enumerate() {
        let got = service[i] as f64 / total as f64;
        assert!(
            (got - f64::from(w) / 36.0).abs() < 0.005,
            "weight {w}: {got} ({service:?})"
        );
    }
}

#[test]
fn infeasible_weight_gets_exactly_one_core() {
    // 4 cores; thread 0 asks for 100/104 of the machine.
    let weights = [100, 1, 1, 1, 1];
    let mut s = stride_with(&weights, 4);
    let threads: Vec<SimThread> = weights.iter().map(|&w| cpu(w)).collect();
    let rounds = 4000;
    let service = sim::run(&mut s, 4, rounds, &threads).unwrap();
    assert_eq!(service[0], u64::from(rounds) * Q, "one full core");
    // The other three cores' worth is shared evenly by the four light ones.
    for &x in &service[1..] {
        let share = x as f64 / (3.0 * f64::from(rounds) * Q as f64);
        assert!((share - 0.25).abs() < 0.01, "{service:?}");
    }
}

/// Swaps between every ordered pair of policies, under random operations,
/// against a model: every thread, weight, sleep state and its service survive.
mod swaps {
    use super::*;
    use sched_lottery::Lottery;
    use sched_rr::RoundRobin;
    use std::collections::BTreeMap;

    fn make(kind: PolicyKind, snap: Snapshot) -> Box<dyn Policy> {
        make_for(kind, snap, 2)
    }

    fn make_for(kind: PolicyKind, snap: Snapshot, cores: usize) -> Box<dyn Policy> {
        match kind {
            PolicyKind::Stride => Box::new(Stride::from_snapshot(Q, cores, snap).unwrap()),
            PolicyKind::Lottery => Box::new(Lottery::from_snapshot(Q, cores, 42, snap).unwrap()),
            PolicyKind::RoundRobin => Box::new(RoundRobin::from_snapshot(Q, snap).unwrap()),
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(u32, u32),
        Remove(u32),
        Weight(u32, u32),
        Sleep(u32),
        Wake(u32),
        Run(u8),
        Swap(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u32..8, 1u32..10).prop_map(|(i, w)| Op::Add(i, w)),
            (0u32..8).prop_map(Op::Remove),
            (0u32..8, 1u32..10).prop_map(|(i, w)| Op::Weight(i, w)),
            (0u32..8).prop_map(Op::Sleep),
            (0u32..8).prop_map(Op::Wake),
            (1u8..5).prop_map(Op::Run),
            (0u8..3).prop_map(Op::Swap),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(150))]
        #[test]
        fn swaps_preserve_every_thread(ops in proptest::collection::vec(op(), 1..80)) {
            let mut p: Box<dyn Policy> = Box::new(Stride::new(Q, 2));
            // Model: id -> (weight, sleeping, service).
            let mut model: BTreeMap<u32, (u32, bool, u64)> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Add(i, w) => {
                        let r = p.add(i, w);
                        prop_assert_eq!(r.is_ok(), !model.contains_key(&i));
                        model.entry(i).or_insert((w, false, 0));
                    }
                    Op::Remove(i) => {
                        let r = p.remove(i);
                        prop_assert_eq!(r.is_ok(), model.remove(&i).is_some());
                    }
                    Op::Weight(i, w) => {
                        if p.set_weight(i, w).is_ok() { model.get_mut(&i).unwrap().0 = w; }
                        else { prop_assert!(!model.contains_key(&i)); }
                    }
                    Op::Sleep(i) => {
                        if p.sleep(i).is_ok() { model.get_mut(&i).unwrap().1 = true; }
                    }
                    Op::Wake(i) => {
                        if p.wake(i).is_ok() { model.get_mut(&i).unwrap().1 = false; }
                    }
                    Op::Run(n) => {
                        // Two cores run a few quanta in lock step; never a thread twice.
                        for _ in 0..n {
                            let a = p.pick(0);
                            let b = p.pick(1);
                            prop_assert!(a.is_none() || a != b);
                            for (core, id) in [(0, a), (1, b)] {
                                if let Some(id) = id {
                                    p.charge(id, core, Q, RunEnd::Preempted).unwrap();
                                    model.get_mut(&id).unwrap().2 += Q;
                                }
                            }
                        }
                    }
                    Op::Swap(k) => {
                        let kind = PolicyKind::ALL[k as usize];
                        let snap = p.export();
                        p = make(kind, snap);
                        prop_assert_eq!(p.kind(), kind);
                    }
                }
                prop_assert_eq!(p.len(), model.len());
                for (&id, &(w, sleeping, service)) in &model {
                    let r = p.record(id).unwrap();
                    prop_assert_eq!(r.weight, w);
                    prop_assert_eq!(r.state == ThreadState::Sleeping, sleeping);
                    prop_assert_eq!(r.service_ns, service);
                }
            }
        }
    }

    #[test]
    fn running_threads_survive_a_swap_and_are_charged_after_it() {
        let mut p: Box<dyn Policy> = Box::new(Stride::new(Q, 2));
        p.add(1, 1).unwrap();
        p.add(2, 1).unwrap();
        let running = p.pick(1).unwrap();
        for kind in [
            PolicyKind::Lottery,
            PolicyKind::RoundRobin,
            PolicyKind::Stride,
        ] {
            let snap = p.export();
            p = make(kind, snap);
            assert_eq!(p.record(running).unwrap().state, ThreadState::Running(1));
            // Never handed to another core while it runs.
            for core in [0, 2, 3] {
                if let Some(id) = p.pick(core) {
                    assert_ne!(id, running);
                    p.charge(id, core, Q, RunEnd::Preempted).unwrap();
                }
            }
        }
        p.charge(running, 1, Q, RunEnd::Preempted).unwrap();
        assert_eq!(p.record(running).unwrap().service_ns, Q);
    }

    #[test]
    fn shares_converge_after_swaps() {
        let weights = [1u32, 2, 5];
        let mut p: Box<dyn Policy> = Box::new(Stride::new(Q, 1));
        for (i, &w) in weights.iter().enumerate() {
            p.add(i as ThreadId, w).unwrap();
        }
        let threads: Vec<SimThread> = weights.iter().map(|&w| cpu(w)).collect();
        let mut total = [0u64; 3];
        for kind in [
            PolicyKind::Lottery,
            PolicyKind::RoundRobin,
            PolicyKind::Stride,
            PolicyKind::Lottery,
            PolicyKind::Stride,
        ] {
            let s = sim::run(p.as_mut(), 1, 800, &threads).unwrap();
            for i in 0..3 {
                total[i] += s[i];
            }
            let snap = p.export();
            // One simulated core: the policies must compute shares for one.
            p = make_for(kind, snap, 1);
        }
        // After the round rr (equal) leg, stride pays back from virtual time.
        let s = sim::run(p.as_mut(), 1, 8000, &threads).unwrap();
        let all: u64 = s.iter().sum();
        for i in 0..3 {
            let got = s[i] as f64 / all as f64;
            let ideal = f64::from(weights[i]) / 8.0;
            assert!((got - ideal).abs() < 0.03, "thread {i}: {got} vs {ideal}");
        }
    }
}
