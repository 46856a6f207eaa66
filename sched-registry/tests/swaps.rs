//! Swaps between every ordered pair of registered policies, under random
//! operations, checked against a simple model: every
//! thread keeps its id, weight, sleep or running state (and core) and its
//! service, its lag crosses unchanged, a thread running during a swap is
//! charged afterwards as usual, shares still follow weights after swaps,
//! and a policy that defines an order of its runnable threads keeps it
//! across a swap into itself.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use proptest::prelude::*;
use sched_api::sim::{Mode, Sim, SimThread};
use sched_api::{
    swap, Policy, PolicyKind, RunEnd, SchedError, Snapshot, ThreadId, ThreadState, VT_SCALE,
};
use sched_registry::{Entitlement, Params, POLICIES};

const Q: u64 = 1_000_000;
const CORES: usize = 3;

/// A fresh policy of `kind`, as the libOS builds one.
fn make(kind: PolicyKind, cores: usize, seed: u64) -> Box<dyn Policy> {
    let params = Params {
        quantum_ns: Q,
        cores,
        seed,
    };
    sched_registry::build(kind, &params).unwrap()
}

/// The `k`-th registered policy (any `k`).
fn nth(k: u8) -> PolicyKind {
    POLICIES[usize::from(k) % POLICIES.len()].kind
}

/// Measures lag against an equal share, not the tickets.
fn equal(kind: PolicyKind) -> bool {
    sched_registry::info(kind).unwrap().entitlement == Entitlement::Equal
}

const STRIDE: PolicyKind = sched_stride::KIND;
const LOTTERY: PolicyKind = sched_lottery::KIND;
const RR: PolicyKind = sched_rr::KIND;

#[derive(Debug, Clone)]
enum Op {
    Add(ThreadId, u32),
    Remove(ThreadId),
    Weight(ThreadId, u32),
    Sleep(ThreadId),
    Wake(ThreadId),
    Pick(usize),
    /// Charge whatever runs on the core: `percent` of a quantum, ending as
    /// `end` (0 preempted, 1 yielded, 2 blocked, 3 exited).
    Charge(usize, u8, u8),
    Swap(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u32..8, 1u32..10).prop_map(|(i, w)| Op::Add(i, w)),
        1 => (0u32..9).prop_map(Op::Remove),
        1 => (0u32..9, 0u32..10).prop_map(|(i, w)| Op::Weight(i, w)),
        1 => (0u32..9).prop_map(Op::Sleep),
        1 => (0u32..9).prop_map(Op::Wake),
        4 => (0usize..CORES + 1).prop_map(Op::Pick),
        4 => (0usize..CORES, 1u8..101, 0u8..4).prop_map(|(c, p, e)| Op::Charge(c, p, e)),
        2 => any::<u8>().prop_map(Op::Swap),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Model {
    weight: u32,
    state: ThreadState,
    service: u64,
}

/// The lag of every thread in a snapshot.
fn lags(s: &Snapshot) -> BTreeMap<ThreadId, i128> {
    s.threads.iter().map(|t| (t.id, s.lag(t))).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn swaps_preserve_every_thread(
        first in any::<u8>(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut p = make(nth(first), CORES, 7);
        let mut model: BTreeMap<ThreadId, Model> = BTreeMap::new();
        let mut on_core: [Option<ThreadId>; CORES + 1] = [None; CORES + 1];
        for op in ops {
            match op {
                Op::Add(i, w) => {
                    let r = p.add(i, w);
                    match model.entry(i) {
                        Entry::Occupied(_) => prop_assert_eq!(r, Err(SchedError::DuplicateThread)),
                        Entry::Vacant(e) => {
                            prop_assert_eq!(r, Ok(()));
                            e.insert(Model { weight: w, state: ThreadState::Runnable, service: 0 });
                        }
                    }
                }
                Op::Remove(i) => {
                    let r = p.remove(i);
                    match model.remove(&i) {
                        None => prop_assert_eq!(r, Err(SchedError::UnknownThread)),
                        Some(m) => {
                            let rec = r.unwrap();
                            prop_assert_eq!((rec.weight, rec.state, rec.service_ns), (m.weight, m.state, m.service));
                            if let ThreadState::Running(c) = m.state { on_core[c] = None; }
                        }
                    }
                }
                Op::Weight(i, w) => {
                    let r = p.set_weight(i, w);
                    match (model.get_mut(&i), w) {
                        (None, 0) => prop_assert!(r.is_err()),
                        (None, _) => prop_assert_eq!(r, Err(SchedError::UnknownThread)),
                        (Some(_), 0) => prop_assert_eq!(r, Err(SchedError::ZeroWeight)),
                        (Some(m), _) => { prop_assert_eq!(r, Ok(())); m.weight = w; }
                    }
                }
                Op::Sleep(i) => {
                    let r = p.sleep(i);
                    match model.get_mut(&i).map(|m| (m.state, m)) {
                        None => prop_assert_eq!(r, Err(SchedError::UnknownThread)),
                        Some((ThreadState::Runnable, m)) => { prop_assert_eq!(r, Ok(())); m.state = ThreadState::Sleeping; }
                        Some((ThreadState::Sleeping, _)) => prop_assert_eq!(r, Err(SchedError::AlreadySleeping)),
                        Some((ThreadState::Running(_), _)) => prop_assert_eq!(r, Err(SchedError::AlreadyRunning)),
                    }
                }
                Op::Wake(i) => {
                    let r = p.wake(i);
                    match model.get_mut(&i) {
                        None => prop_assert_eq!(r, Err(SchedError::UnknownThread)),
                        Some(m) if m.state == ThreadState::Sleeping => { prop_assert_eq!(r, Ok(())); m.state = ThreadState::Runnable; }
                        Some(_) => prop_assert_eq!(r, Err(SchedError::NotSleeping)),
                    }
                }
                Op::Pick(c) => {
                    let r = p.try_pick(c);
                    if on_core[c].is_some() {
                        prop_assert_eq!(r, Err(SchedError::CoreBusy));
                        continue;
                    }
                    let waiting = model.values().any(|m| m.state == ThreadState::Runnable);
                    match r.unwrap() {
                        // Only a runnable thread, and always one if any waits.
                        Some(id) => {
                            let m = model.get_mut(&id).unwrap();
                            prop_assert_eq!(m.state, ThreadState::Runnable);
                            m.state = ThreadState::Running(c);
                            on_core[c] = Some(id);
                        }
                        None => prop_assert!(!waiting),
                    }
                }
                Op::Charge(c, percent, end) => {
                    let Some(id) = on_core[c] else {
                        // Nobody runs there: every thread is refused.
                        for &id in model.keys() {
                            prop_assert_eq!(p.charge(id, c, 1, RunEnd::Preempted), Err(SchedError::NotRunning));
                        }
                        continue;
                    };
                    // The wrong core is refused and changes nothing.
                    prop_assert_eq!(p.charge(id, CORES, 1, RunEnd::Preempted), Err(SchedError::NotRunning));
                    let ran = Q * u64::from(percent) / 100;
                    let end = [RunEnd::Preempted, RunEnd::Yielded, RunEnd::Blocked, RunEnd::Exited][end as usize];
                    prop_assert_eq!(p.charge(id, c, ran, end), Ok(()));
                    on_core[c] = None;
                    let m = model.get_mut(&id).unwrap();
                    m.service += ran;
                    m.state = match end {
                        RunEnd::Blocked => ThreadState::Sleeping,
                        _ => ThreadState::Runnable,
                    };
                    if end == RunEnd::Exited {
                        model.remove(&id);
                    }
                }
                Op::Swap(k) => {
                    let kind = nth(k);
                    let before = p.export();
                    let involves_rr = equal(kind) || equal(p.kind());
                    swap(&mut p, make(kind, CORES, u64::from(k))).unwrap();
                    prop_assert_eq!(p.kind(), kind);
                    let after = p.export();
                    prop_assert_eq!(after.global_vtime, before.global_vtime);
                    // Nobody gains or loses: every lag crosses unchanged
                    // (exactly; through round robin's conversion to ns of
                    // service and back, to well under 1 ns of service).
                    let (lb, la) = (lags(&before), lags(&after));
                    prop_assert_eq!(lb.len(), la.len());
                    for (id, l) in &lb {
                        let d = la[id].abs_diff(*l);
                        let tolerance = if involves_rr { VT_SCALE / 1024 } else { 0 };
                        prop_assert!(d <= tolerance, "thread {}: lag {} -> {}", id, l, la[id]);
                    }
                }
            }
            prop_assert_eq!(p.len(), model.len());
            for (&id, m) in &model {
                let r = p.record(id).unwrap();
                prop_assert_eq!((r.weight, r.state, r.service_ns), (m.weight, m.state, m.service), "thread {}", id);
            }
        }
    }

    /// Random swaps in the middle of a staggered run on P cores (threads
    /// are running on other cores at every swap): the simulator's checks
    /// hold throughout, and services add up exactly.
    #[test]
    fn swaps_mid_run_keep_every_rule(
        weights in proptest::collection::vec(1u32..20, 1..9),
        legs in proptest::collection::vec((any::<u8>(), 1u32..40), 1..8),
        cores in prop_oneof![Just(2usize), Just(4), Just(8)],
    ) {
        let mut p = make(STRIDE, cores, 1);
        let mut sim = Sim::new(cores, Mode::Staggered).unwrap();
        for &w in &weights {
            sim.spawn(p.as_mut(), SimThread::cpu(w)).unwrap();
        }
        for (k, rounds) in legs {
            sim.run(p.as_mut(), rounds).unwrap();
            swap(&mut p, make(nth(k), cores, u64::from(rounds))).unwrap();
        }
        sim.run(p.as_mut(), 5).unwrap();
        sim.finish(p.as_mut()).unwrap();
        for (i, s) in sim.service().iter().enumerate() {
            prop_assert_eq!(p.record(i as ThreadId).unwrap().service_ns, *s);
        }
    }
}

/// Weighted policies swapped back and forth every few quanta: the lag is
/// carried, so the shares are those of one policy running throughout.
#[test]
fn frequent_swaps_between_weighted_policies_stay_fair() {
    let weights = [1u32, 2, 5, 8];
    for cores in [1usize, 2] {
        let mut p = make(STRIDE, cores, 0);
        let mut sim = Sim::new(cores, Mode::Lockstep).unwrap();
        for &w in &weights {
            sim.spawn(p.as_mut(), SimThread::cpu(w)).unwrap();
        }
        for leg in 0..400u64 {
            sim.run(p.as_mut(), 5).unwrap();
            let kind = [LOTTERY, STRIDE][leg as usize % 2];
            swap(&mut p, make(kind, cores, leg)).unwrap();
        }
        sim.finish(p.as_mut()).unwrap();
        // Lottery legs add binomial noise, which the stride legs pay back:
        // every thread ends within a few quanta of its ideal.
        for (i, lag) in sim.lag().iter().enumerate() {
            assert!(
                lag.abs() <= 4.0 * Q as f64,
                "{cores} cores, thread {i}: lag {lag}"
            );
        }
    }
}

/// After legs of every policy, the last (stride) leg follows the weights:
/// a round-robin leg is not billed afterwards as weighted debt, so nobody
/// is starved to pay it back.
#[test]
fn shares_converge_after_swaps() {
    let weights = [1u32, 2, 5];
    for cores in [1usize, 2] {
        let mut p = make(STRIDE, cores, 0);
        let mut sim = Sim::new(cores, Mode::Lockstep).unwrap();
        for &w in &weights {
            sim.spawn(p.as_mut(), SimThread::cpu(w)).unwrap();
        }
        for kind in [LOTTERY, RR, STRIDE, RR, LOTTERY, STRIDE] {
            sim.run(p.as_mut(), 400).unwrap();
            swap(&mut p, make(kind, cores, 5)).unwrap();
        }
        let before = sim.service();
        sim.run(p.as_mut(), 2000).unwrap();
        sim.finish(p.as_mut()).unwrap();
        let leg: Vec<u64> = sim
            .service()
            .iter()
            .zip(&before)
            .map(|(a, b)| a - b)
            .collect();
        let ideal = sched_api::feasible_weights(&[1, 2, 5], cores).unwrap();
        let isum: f64 = ideal.iter().map(|e| e.as_f64()).sum();
        let total: u64 = leg.iter().sum();
        for i in 0..weights.len() {
            let got = leg[i] as f64 / total as f64;
            let want = ideal[i].as_f64() / isum;
            // Within 1% (the lottery leg's noise is paid back early on).
            assert!(
                (got - want).abs() < 0.01,
                "{cores} cores, thread {i}: {got} vs {want}; {leg:?}"
            );
        }
    }
}

#[test]
fn a_thread_running_during_swaps_is_charged_after_them() {
    let mut p = make(STRIDE, 2, 0);
    p.add(1, 1).unwrap();
    p.add(2, 1).unwrap();
    let running = p.pick(1).unwrap();
    for kind in [LOTTERY, RR, STRIDE, RR, LOTTERY] {
        swap(&mut p, make(kind, 2, 3)).unwrap();
        assert_eq!(p.record(running).unwrap().state, ThreadState::Running(1));
        assert_eq!(p.try_pick(1), Err(SchedError::CoreBusy));
        // Never handed to another core while it runs.
        if let Some(id) = p.pick(0) {
            assert_ne!(id, running);
            p.charge(id, 0, Q, RunEnd::Preempted).unwrap();
        }
    }
    p.charge(running, 1, Q / 2, RunEnd::Preempted).unwrap();
    assert_eq!(p.record(running).unwrap().service_ns, Q / 2);
}

#[test]
fn stride_round_trips_through_every_policy_keep_passes_of_stride_and_lottery() {
    // Stride -> lottery -> stride keeps passes exactly (lottery stores the
    // virtual time as is).
    let mut p = make(STRIDE, 2, 0);
    let mut sim = Sim::new(2, Mode::Staggered).unwrap();
    for w in [3, 1, 4, 1, 5] {
        sim.spawn(p.as_mut(), SimThread::cpu(w)).unwrap();
    }
    sim.run(p.as_mut(), 37).unwrap();
    p.sleep(p.export().threads[0].id).unwrap();
    let before = p.export();
    swap(&mut p, make(LOTTERY, 2, 0)).unwrap();
    swap(&mut p, make(STRIDE, 2, 0)).unwrap();
    let mut after = p.export();
    let mut b = before.clone();
    b.threads.sort_by_key(|t| t.id);
    after.threads.sort_by_key(|t| t.id);
    assert_eq!(after, b);
}

#[test]
fn a_swap_hands_back_the_policy_it_replaced_untouched() {
    // The libOS frees the replaced policy after its lock: what `swap`
    // returns must be the old policy itself, state and all.
    for from in POLICIES.iter().map(|p| p.kind) {
        for to in POLICIES.iter().map(|p| p.kind) {
            let mut p = make(from, 2, 1);
            for (id, w) in [(1, 3), (2, 1), (3, 4)] {
                p.add(id, w).unwrap();
            }
            let picked = p.pick(0).unwrap();
            p.sleep(if picked == 2 { 3 } else { 2 }).unwrap();
            let before = p.export();
            let old = swap(&mut p, make(to, 2, 2)).unwrap();
            assert_eq!(old.kind(), from);
            assert_eq!(old.export(), before, "{from:?} -> {to:?}");
            assert_eq!(p.kind(), to);
            assert_eq!(p.len(), 3);
        }
    }
}

/// The runnable threads of `p`'s export, in its order.
fn runnable_order(p: &dyn Policy) -> Vec<ThreadId> {
    p.export()
        .threads
        .iter()
        .filter(|r| r.state == ThreadState::Runnable)
        .map(|r| r.id)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A swap keeps the order where the importing policy defines one: a
    /// deterministic policy's export lists its runnable threads in its
    /// order of preference (round robin: its queue), and a fresh copy of
    /// it importing that export takes them in the same order: its export
    /// lists them so, and its next picks (on free cores, nothing charged
    /// meanwhile) take them so. Checked after a swap in from every
    /// registered policy, with threads running and sleeping at the swaps.
    #[test]
    fn a_swap_into_the_same_policy_keeps_the_runnable_order(
        weights in proptest::collection::vec(1u32..30, 2..10),
        rounds in 0u32..40,
        sleepers in proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
        from in any::<u8>(),
        seed in any::<u64>(),
    ) {
        for to in POLICIES.iter().filter(|p| !p.randomized).map(|p| p.kind) {
            let mut p = make(nth(from), CORES, seed);
            let mut sim = Sim::new(CORES, Mode::Staggered).unwrap();
            for &w in &weights {
                sim.spawn(p.as_mut(), SimThread::cpu(w)).unwrap();
            }
            sim.run(p.as_mut(), rounds).unwrap();
            for s in &sleepers {
                let _ = p.sleep(s.index(weights.len()) as ThreadId);
            }
            swap(&mut p, make(to, CORES, 1)).unwrap();
            let order = runnable_order(p.as_ref());
            swap(&mut p, make(to, CORES, 2)).unwrap();
            prop_assert_eq!(&runnable_order(p.as_ref()), &order, "{} -> {} -> {}", nth(from), to, to);
            // The cores after the simulator's are free.
            let picks: Vec<ThreadId> = (0..order.len())
                .map(|c| p.pick(CORES + 1 + c).unwrap())
                .collect();
            prop_assert_eq!(picks, order, "{} -> {} -> {}: picks", nth(from), to, to);
        }
    }
}
