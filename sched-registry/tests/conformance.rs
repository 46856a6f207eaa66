//! The conformance suite: what every registered policy must do, checked
//! for each entry of `sched_registry::POLICIES` automatically (a new
//! policy is tested by registering it). Property tests over random
//! weights, core counts and operations; each property is stated in terms
//! of the policy's declared entitlement (tickets made feasible on P cores,
//! or an equal share) and `sched_api`'s neutral virtual time, so it holds
//! for any correct policy, deterministic or randomized.
//!
//! Swaps between every pair of policies (nothing lost, duplicated or
//! changed; lags carried) are in `swaps.rs`.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use sched_api::sim::{Mode, Sim, SimThread};
use sched_api::{feasible_weights, Policy, RunEnd, ThreadId, ThreadState, VT_SCALE};
use sched_registry::{Entitlement, Params, PolicyInfo, POLICIES};

const Q: u64 = 1_000_000;

fn build(info: &PolicyInfo, cores: usize, seed: u64) -> Box<dyn Policy> {
    let params = Params {
        quantum_ns: Q,
        cores,
        seed,
    };
    (info.build)(&params).unwrap()
}

/// Each thread's entitled weight in tickets, made feasible on `cores`.
fn entitled(info: &PolicyInfo, weights: &[u32], cores: usize) -> Vec<f64> {
    let w: Vec<u64> = match info.entitlement {
        Entitlement::Tickets => weights.iter().map(|&w| u64::from(w)).collect(),
        Entitlement::Equal => vec![1; weights.len()],
    };
    feasible_weights(&w, cores)
        .unwrap()
        .into_iter()
        .map(|r| r.as_f64())
        .collect()
}

/// Each thread's feasible ticket weight on `cores`: the neutral unit of
/// virtual time is per ticket of it, whatever the policy's entitlement
/// (round robin measures lag against an equal share but expresses it in
/// this unit, so that a swap to a weighted policy reads it right).
fn neutral(weights: &[u32], cores: usize) -> Vec<f64> {
    let w: Vec<u64> = weights.iter().map(|&w| u64::from(w)).collect();
    feasible_weights(&w, cores)
        .unwrap()
        .into_iter()
        .map(|r| r.as_f64())
        .collect()
}

/// `id`'s exported lag in ns of service (positive: ahead).
fn lag_ns(p: &dyn Policy, weights: &[u32], cores: usize, id: ThreadId) -> f64 {
    let s = p.export();
    let e = neutral(weights, cores)[id as usize];
    s.lag(s.get(id).unwrap()) as f64 * e / VT_SCALE as f64
}

/// CPU-bound threads of `weights` on `cores` for `rounds` quanta (lock
/// step), every run charged: the policy and the simulator.
fn run_cpu_bound(
    info: &PolicyInfo,
    weights: &[u32],
    cores: usize,
    rounds: u32,
    seed: u64,
) -> (Box<dyn Policy>, Sim) {
    let mut p = build(info, cores, seed);
    let mut sim = Sim::new(cores, Mode::Lockstep).unwrap();
    for &w in weights {
        sim.spawn(p.as_mut(), SimThread::cpu(w)).unwrap();
    }
    sim.run(p.as_mut(), rounds).unwrap();
    sim.finish(p.as_mut()).unwrap();
    (p, sim)
}

/// Each thread's service minus its entitlement's share of all the service
/// given (ns; positive: ahead).
fn service_lag(info: &PolicyInfo, weights: &[u32], cores: usize, service: &[u64]) -> Vec<f64> {
    let e = entitled(info, weights, cores);
    let total: u64 = service.iter().sum();
    let sum: f64 = e.iter().sum();
    service
        .iter()
        .zip(&e)
        .map(|(&s, &e)| s as f64 - total as f64 * e / sum)
        .collect()
}

/// How far a thread may be from its share after `rounds` quanta among
/// `threads`: for a deterministic policy, stride scheduling's bound on the
/// absolute error (under one quantum per client: `threads` quanta) plus
/// one; for a randomized one, that plus five standard deviations of the
/// binomial count of its quanta. (Three quanta flat was too tight: stride
/// on one core with [720, 8, 1, 8, 6, 14] left the 720 thread 3.45
/// quanta behind after 400, within its bound of six.)
fn tolerance(info: &PolicyInfo, threads: usize, share: f64, draws: f64) -> f64 {
    let slack = (threads as f64 + 1.0) * Q as f64;
    if info.randomized {
        slack + 5.0 * (draws * share * (1.0 - share)).sqrt() * Q as f64
    } else {
        slack
    }
}

/// Lock step on `cores` for `rounds` quanta, driven by hand (the threads
/// need not be the simulator's: some were removed, or the core count
/// changed): every core picks, then every run is charged a whole quantum
/// (of the policy's own `quantum_ns`). Each thread's service in these
/// rounds.
fn lockstep(p: &mut dyn Policy, cores: usize, rounds: u32) -> BTreeMap<ThreadId, u64> {
    let q = p.quantum_ns();
    let mut service = BTreeMap::new();
    for _ in 0..rounds {
        let picked: Vec<(usize, ThreadId)> = (0..cores)
            .filter_map(|c| p.pick(c).map(|t| (c, t)))
            .collect();
        for (c, t) in picked {
            p.charge(t, c, q, RunEnd::Preempted).unwrap();
            *service.entry(t).or_insert(0) += q;
        }
    }
    service
}

/// The exported lag (ns of service, positive: ahead) of each of `ids`,
/// whose tickets are `weights`, the threads active being exactly these.
fn lags_ns(p: &dyn Policy, ids: &[ThreadId], weights: &[u32], cores: usize) -> Vec<f64> {
    let s = p.export();
    let e = neutral(weights, cores);
    ids.iter()
        .zip(&e)
        .map(|(&id, e)| s.lag(s.get(id).unwrap()) as f64 * e / VT_SCALE as f64)
        .collect()
}

/// Runs `p` 200 lock-step rounds on `cores`; for each of `ids` (tickets
/// `weights`, the active threads exactly), how far its exported lag moved
/// and how far its service says it should have (its service minus its
/// share of all given), in ns.
fn lag_moves(
    info: &PolicyInfo,
    p: &mut dyn Policy,
    ids: &[ThreadId],
    weights: &[u32],
    cores: usize,
) -> Vec<(f64, f64)> {
    let start = lags_ns(p, ids, weights, cores);
    let got = lockstep(p, cores, 200);
    let service: Vec<u64> = ids
        .iter()
        .map(|id| got.get(id).copied().unwrap_or(0))
        .collect();
    let want = service_lag(info, weights, cores, &service);
    let end = lags_ns(p, ids, weights, cores);
    start
        .iter()
        .zip(&end)
        .zip(want)
        .map(|((start, end), want)| (end - start, want))
        .collect()
}

fn weights() -> impl Strategy<Value = Vec<u32>> {
    // Mostly modest, sometimes large enough to be capped on P cores.
    proptest::collection::vec(prop_oneof![4 => 1u32..20, 1 => 100u32..1000], 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Shares follow the declared entitlement, capped weights included.
    #[test]
    fn shares_follow_the_entitlement_with_capped_weights(
        weights in weights(),
        cores in 1usize..5,
        seed in any::<u64>(),
    ) {
        let rounds = 400;
        for info in POLICIES {
            let (_, sim) = run_cpu_bound(info, &weights, cores, rounds, seed);
            let e = entitled(info, &weights, cores);
            let sum: f64 = e.iter().sum();
            let lag = service_lag(info, &weights, cores, &sim.service());
            let draws = f64::from(rounds) * cores.min(weights.len()) as f64;
            for (i, l) in lag.iter().enumerate() {
                let tol = tolerance(info, weights.len(), e[i] / sum, draws);
                prop_assert!(
                    l.abs() <= tol,
                    "{}: {} cores, weights {:?}: thread {} is {} ns from its share (allowed {})",
                    info.kind, cores, weights, i, l, tol
                );
            }
        }
    }

    /// The lag a policy exports is its real lag: after a run, every
    /// thread's virtual time minus the system's, in ns of service at its
    /// entitled weight, is its service minus its share. This is what a
    /// swap carries to the next policy. The policy is built for one core
    /// and told the real count with `set_cores`: a policy that ignored it
    /// would account the capped threads' shares for the wrong P.
    #[test]
    fn exported_lag_is_service_minus_share_after_set_cores(
        weights in weights(),
        cores in 1usize..5,
        seed in any::<u64>(),
    ) {
        for info in POLICIES {
            let mut p = build(info, 1, seed);
            p.set_cores(cores).unwrap();
            prop_assert_eq!(p.cores(), cores);
            let mut sim = Sim::new(cores, Mode::Lockstep).unwrap();
            for &w in &weights {
                sim.spawn(p.as_mut(), SimThread::cpu(w)).unwrap();
            }
            sim.run(p.as_mut(), 300).unwrap();
            sim.finish(p.as_mut()).unwrap();
            let want = service_lag(info, &weights, cores, &sim.service());
            for (i, want) in want.iter().enumerate() {
                let got = lag_ns(p.as_ref(), &weights, cores, i as ThreadId);
                prop_assert!(
                    (got - want).abs() <= 2.0 * Q as f64,
                    "{}: {} cores, weights {:?}: thread {} exports lag {} ns, its service says {}",
                    info.kind, cores, weights, i, got, want
                );
            }
        }
    }

    /// Nobody starves: within a bounded number of rounds every CPU-bound
    /// thread has run, whatever the weights (the bound: twice the rounds
    /// the smallest share needs for one quantum; twenty times for a
    /// randomized policy, which misses that with probability e^-20).
    #[test]
    fn no_thread_starves(
        weights in proptest::collection::vec(1u32..50, 1..8),
        cores in 1usize..5,
        seed in any::<u64>(),
    ) {
        for info in POLICIES {
            let e = entitled(info, &weights, cores);
            let sum: f64 = e.iter().sum();
            let smallest = e.iter().cloned().fold(f64::INFINITY, f64::min);
            let per_quantum = (sum / smallest / cores as f64).ceil();
            let k = if info.randomized { 20.0 } else { 2.0 };
            let rounds = (k * per_quantum) as u32 + 2;
            let (_, sim) = run_cpu_bound(info, &weights, cores, rounds, seed);
            for (i, s) in sim.service().iter().enumerate() {
                prop_assert!(*s > 0, "{}: thread {} never ran in {} rounds", info.kind, i, rounds);
            }
        }
    }

    /// Joining, leaving, sleeping and waking bank no credit: a thread joins
    /// with zero lag, a sleeper's lag is the same when it wakes however
    /// long it slept (it is owed nothing for the time away, and loses
    /// nothing), and one that leaves and rejoins starts from zero again.
    #[test]
    fn join_leave_sleep_and_wake_bank_no_credit(
        weights in proptest::collection::vec(1u32..30, 2..8),
        cores in 1usize..4,
        before in 1u32..60,
        away in 1u32..200,
        which in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        for info in POLICIES {
            let (mut p, _) = run_cpu_bound(info, &weights, cores, before, seed);
            let id = which.index(weights.len()) as ThreadId;
            let lag = |p: &dyn Policy, id| {
                let s = p.export();
                s.lag(s.get(id).unwrap())
            };
            let at_sleep = lag(p.as_ref(), id);
            p.sleep(id).unwrap();
            // The others run on; every run is charged.
            for _ in 0..away {
                let picked: Vec<(usize, ThreadId)> =
                    (0..cores).filter_map(|c| p.pick(c).map(|t| (c, t))).collect();
                for (c, t) in picked {
                    prop_assert_ne!(t, id, "{}: a sleeper was picked", info.kind);
                    p.charge(t, c, Q, RunEnd::Preempted).unwrap();
                }
            }
            prop_assert_eq!(p.record(id).unwrap().state, ThreadState::Sleeping);
            p.wake(id).unwrap();
            let woke = lag(p.as_ref(), id);
            // A 1 ns-of-service tolerance leaves room for a policy keeping
            // lag in another unit (round robin's ns of equal share).
            let w = neutral(&weights, cores)[id as usize];
            prop_assert!(
                ((woke - at_sleep) as f64 * w / VT_SCALE as f64).abs() <= 1.0,
                "{}: slept with lag {}, woke with {}", info.kind, at_sleep, woke
            );
            // A newcomer, and a thread that left and came back, start at 0.
            p.add(1000, 5).unwrap();
            prop_assert_eq!(lag(p.as_ref(), 1000), 0, "{}: a newcomer's lag", info.kind);
            p.remove(id).unwrap();
            p.add(id, weights[id as usize]).unwrap();
            prop_assert_eq!(lag(p.as_ref(), id), 0, "{}: a rejoining thread's lag", info.kind);
        }
    }

    /// Where a deterministic policy defines an order, its export lists the
    /// runnable threads in it: the order in which its next picks (on free
    /// cores, nothing charged meanwhile) would take them. Round robin's
    /// queue and the others' preference cross a swap this way.
    #[test]
    fn export_lists_runnable_threads_in_pick_order(
        weights in proptest::collection::vec(1u32..30, 1..10),
        cores in 1usize..4,
        rounds in 0u32..50,
        sleepers in proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
    ) {
        for info in POLICIES.iter().filter(|p| !p.randomized) {
            let (mut p, _) = run_cpu_bound(info, &weights, cores, rounds, 1);
            for s in &sleepers {
                let _ = p.sleep(s.index(weights.len()) as ThreadId);
            }
            let exported: Vec<ThreadId> = p
                .export()
                .threads
                .iter()
                .filter(|r| r.state == ThreadState::Runnable)
                .map(|r| r.id)
                .collect();
            let picks: Vec<ThreadId> = (0..exported.len())
                .map(|c| p.pick(100 + c).unwrap())
                .collect();
            prop_assert_eq!(exported, picks, "{}", info.kind);
        }
    }

    /// A ticket change keeps the service a thread is owed or ahead by: its
    /// lag, in ns at its entitled weight (capped on P cores), is the same
    /// before and after, whether the change caps or uncaps it or leaves
    /// it capped.
    #[test]
    fn a_weight_change_keeps_the_service_owed(
        weights in weights(),
        cores in 1usize..5,
        before in 1u32..40,
        partial in 1u64..100,
        which in any::<prop::sample::Index>(),
        new in prop_oneof![1u32..20, 100u32..2000],
        seed in any::<u64>(),
    ) {
        for info in POLICIES {
            let (mut p, _) = run_cpu_bound(info, &weights, cores, before, seed);
            // A part-quantum on one core, so that lags are not all zero.
            let t = p.pick(0).unwrap();
            p.charge(t, 0, Q * partial / 100, RunEnd::Preempted).unwrap();
            let id = which.index(weights.len());
            let was = lag_ns(p.as_ref(), &weights, cores, id as ThreadId);
            p.set_weight(id as ThreadId, new).unwrap();
            let mut now = weights.clone();
            now[id] = new;
            let is = lag_ns(p.as_ref(), &now, cores, id as ThreadId);
            prop_assert!(
                (is - was).abs() <= 1.0,
                "{}: {} cores, weights {:?}, thread {} {} -> {}: its lag {} -> {} ns",
                info.kind, cores, weights, id, weights[id], new, was, is
            );
        }
    }

    /// A thread that gives its core up early and is runnable again at once
    /// (it blocks and is woken straight away, or yields) still gets its
    /// ticket share: it runs more often, as stride's pass and lottery's
    /// compensation tickets provide. For policies whose entitlement is
    /// tickets (round robin gives up the rest of a quantum by design).
    #[test]
    fn an_early_blocker_keeps_its_ticket_share(
        others in proptest::collection::vec(1u32..10, 1..4),
        mine in 1u32..10,
        percent in 10u64..90,
        block in any::<bool>(),
        seed in any::<u64>(),
    ) {
        for info in POLICIES.iter().filter(|p| p.uses_tickets()) {
            let mut p = build(info, 1, seed);
            let me = others.len() as ThreadId;
            for (id, &w) in others.iter().enumerate() {
                p.add(id as ThreadId, w).unwrap();
            }
            p.add(me, mine).unwrap();
            let decisions = 3000;
            let mut got = 0u64;
            let mut total = 0u64;
            let mut picked = 0u32;
            for _ in 0..decisions {
                let t = p.pick(0).unwrap();
                if t == me {
                    let ran = Q * percent / 100;
                    let end = if block { RunEnd::Blocked } else { RunEnd::Yielded };
                    p.charge(t, 0, ran, end).unwrap();
                    if block {
                        p.wake(me).unwrap();
                    }
                    got += ran;
                    total += ran;
                    picked += 1;
                } else {
                    p.charge(t, 0, Q, RunEnd::Preempted).unwrap();
                    total += Q;
                }
            }
            let sum: u32 = others.iter().sum::<u32>() + mine;
            let ideal = f64::from(mine) / f64::from(sum);
            let share = got as f64 / total as f64;
            let tol = share_tolerance(info.randomized, decisions, picked, percent, Q, total);
            prop_assert!(
                (share - ideal).abs() <= tol,
                "{}: {} of {} tickets, using {}% then {}: share {} (ideal {}, allowed +-{})",
                info.kind, mine, sum, percent, if block { "blocking" } else { "yielding" },
                share, ideal, tol
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// `set_cores` mid-run (the libOS calls it when its core count
    /// changes, threads present) moves the policy to the new count at
    /// once: from then on, every thread's exported lag moves by its
    /// service minus its share under the entitlement on the *new* count
    /// (a policy that kept the old caps would account the capped threads
    /// for the old P). A heavy thread is always there, so that some
    /// count caps it.
    #[test]
    fn exported_lag_follows_the_new_count_after_set_cores_mid_run(
        heavy in 100u32..2000,
        lights in proptest::collection::vec(1u32..20, 1..6),
        before in 1usize..5,
        after in 1usize..5,
        rounds in 1u32..40,
        seed in any::<u64>(),
    ) {
        let mut weights = vec![heavy];
        weights.extend(lights);
        let ids: Vec<ThreadId> = (0..weights.len() as ThreadId).collect();
        for info in POLICIES {
            let mut p = build(info, before, seed);
            for (&id, &w) in ids.iter().zip(&weights) {
                p.add(id, w).unwrap();
            }
            lockstep(p.as_mut(), before, rounds);
            p.set_cores(after).unwrap();
            prop_assert_eq!(p.cores(), after);
            let moves = lag_moves(info, p.as_mut(), &ids, &weights, after);
            for (i, (moved, want)) in moves.into_iter().enumerate() {
                prop_assert!(
                    (moved - want).abs() <= 2.0 * Q as f64,
                    "{}: weights {:?}, {} -> {} cores: thread {}'s lag moved {} ns, its service says {}",
                    info.kind, weights, before, after, i, moved, want
                );
            }
        }
    }

    /// Shares follow the entitlement on the new count after `set_cores`
    /// mid-run. Every thread had a core of its own until then (so every
    /// lag is zero at the change): a heavy thread capped at one core among
    /// light ones, then fewer cores, where it is capped less or not at all.
    #[test]
    fn shares_follow_the_new_count_after_set_cores_mid_run(
        heavy in 100u32..2000,
        lights in proptest::collection::vec(1u32..20, 1..4),
        after in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        let mut weights = vec![heavy];
        weights.extend(lights);
        let n = weights.len();
        let after = 1 + after.index(n - 1);
        let ids: Vec<ThreadId> = (0..n as ThreadId).collect();
        let rounds = 400;
        for info in POLICIES {
            let mut p = build(info, n, seed);
            for (&id, &w) in ids.iter().zip(&weights) {
                p.add(id, w).unwrap();
            }
            lockstep(p.as_mut(), n, 20);
            p.set_cores(after).unwrap();
            let got = lockstep(p.as_mut(), after, rounds);
            let service: Vec<u64> = ids.iter().map(|id| got.get(id).copied().unwrap_or(0)).collect();
            let e = entitled(info, &weights, after);
            let sum: f64 = e.iter().sum();
            let lag = service_lag(info, &weights, after, &service);
            let draws = f64::from(rounds) * after as f64;
            for (i, l) in lag.iter().enumerate() {
                let tol = tolerance(info, n, e[i] / sum, draws);
                prop_assert!(
                    l.abs() <= tol,
                    "{}: weights {:?}, {} -> {} cores: thread {} is {} ns from its share (allowed {})",
                    info.kind, weights, n, after, i, l, tol
                );
            }
        }
    }

    /// A ticket change while a thread sleeps keeps the service it is owed
    /// or ahead by: a sleeper's lag is in its tickets (it has no effective
    /// weight while away), so lag times tickets is the same before and
    /// after; and when nobody is capped either side (effective weights are tickets), the service it is owed once
    /// awake, at its new weight, is what it was owed when it fell asleep.
    #[test]
    fn a_weight_change_while_asleep_keeps_the_service_owed(
        weights in weights(),
        cores in 1usize..5,
        before in 1u32..40,
        partial in 1u64..100,
        which in any::<prop::sample::Index>(),
        new in prop_oneof![1u32..20, 100u32..2000],
        seed in any::<u64>(),
    ) {
        let id = which.index(weights.len());
        let tid = id as ThreadId;
        let mut now = weights.clone();
        now[id] = new;
        let uncapped = |w: &[u32]| {
            neutral(w, cores).iter().zip(w).all(|(e, &w)| (e - f64::from(w)).abs() < 1e-9)
        };
        for info in POLICIES {
            let (mut p, _) = run_cpu_bound(info, &weights, cores, before, seed);
            // A part-quantum on one core, so that lags are not all zero.
            let t = p.pick(0).unwrap();
            p.charge(t, 0, Q * partial / 100, RunEnd::Preempted).unwrap();
            let awake = lag_ns(p.as_ref(), &weights, cores, tid);
            p.sleep(tid).unwrap();
            let lag = |p: &dyn Policy| {
                let s = p.export();
                s.lag(s.get(tid).unwrap()) as f64
            };
            let was = lag(p.as_ref()) * f64::from(weights[id]) / VT_SCALE as f64;
            p.set_weight(tid, new).unwrap();
            let asleep = lag(p.as_ref());
            let is = asleep * f64::from(new) / VT_SCALE as f64;
            prop_assert!(
                (is - was).abs() <= 1.0,
                "{}: {} cores, weights {:?}, sleeping thread {} {} -> {}: it was owed {} ns, now {}",
                info.kind, cores, weights, id, weights[id], new, -was, -is
            );
            p.wake(tid).unwrap();
            if uncapped(&weights) && uncapped(&now) {
                let back = lag_ns(p.as_ref(), &now, cores, tid);
                prop_assert!(
                    (back - awake).abs() <= 2.0,
                    "{}: {} cores, weights {:?}, thread {} {} -> {} asleep: lag {} ns before, {} after waking",
                    info.kind, cores, weights, id, weights[id], new, awake, back
                );
            }
        }
    }

    /// Removing threads leaves the survivors' accounts right: from then
    /// on each survivor's exported lag moves by its service minus its
    /// share among the survivors alone (a removed thread left in the
    /// policy's weights would shrink everyone's share and grow their
    /// lags).
    #[test]
    fn survivors_lags_follow_their_share_after_removes(
        weights in proptest::collection::vec(prop_oneof![4 => 1u32..20, 1 => 100u32..1000], 2..8),
        cores in 1usize..5,
        rounds in 0u32..40,
        gone in proptest::collection::vec(any::<prop::sample::Index>(), 1..4),
        seed in any::<u64>(),
    ) {
        let n = weights.len();
        let mut removed: Vec<usize> = gone.iter().map(|g| g.index(n)).collect();
        removed.sort_unstable();
        removed.dedup();
        if removed.len() == n {
            removed.pop();
        }
        let ids: Vec<ThreadId> = (0..n).filter(|i| !removed.contains(i)).map(|i| i as ThreadId).collect();
        let left: Vec<u32> = ids.iter().map(|&i| weights[i as usize]).collect();
        for info in POLICIES {
            let mut p = build(info, cores, seed);
            for (i, &w) in weights.iter().enumerate() {
                p.add(i as ThreadId, w).unwrap();
            }
            lockstep(p.as_mut(), cores, rounds);
            for &i in &removed {
                p.remove(i as ThreadId).unwrap();
            }
            let moves = lag_moves(info, p.as_mut(), &ids, &left, cores);
            for (i, (moved, want)) in moves.into_iter().enumerate() {
                prop_assert!(
                    (moved - want).abs() <= 2.0 * Q as f64,
                    "{}: {} cores, weights {:?} less {:?}: thread {}'s lag moved {} ns, its service says {}",
                    info.kind, cores, weights, removed, ids[i], moved, want
                );
            }
        }
    }

    /// A ticket change of a thread while it runs (the console's `tickets`
    /// finds it running as often as not) enters the policy's accounts as
    /// a runnable thread's does: from then on every thread's exported lag
    /// moves by its service minus its share at the new weights, whether
    /// the changed thread stays or exits at the end of that run. A policy
    /// that takes the new tickets for the running thread but leaves its
    /// old weight in its totals fails here (a survivor 16 quanta ahead
    /// after 100 rounds, and growing, in the walkthrough of the guide that
    /// found the gap: no property changed a running thread's tickets).
    #[test]
    fn a_running_threads_ticket_change_counts_from_then_on(
        weights in proptest::collection::vec(prop_oneof![4 => 1u32..20, 1 => 100u32..1000], 2..8),
        cores in 1usize..5,
        rounds in 0u32..40,
        new in prop_oneof![1u32..20, 100u32..2000],
        exits in any::<bool>(),
        seed in any::<u64>(),
    ) {
        for info in POLICIES {
            let mut p = build(info, cores, seed);
            for (i, &w) in weights.iter().enumerate() {
                p.add(i as ThreadId, w).unwrap();
            }
            lockstep(p.as_mut(), cores, rounds);
            let changed = p.pick(0).unwrap();
            p.set_weight(changed, new).unwrap();
            let end = if exits { RunEnd::Exited } else { RunEnd::Preempted };
            p.charge(changed, 0, p.quantum_ns(), end).unwrap();
            let mut ids = Vec::new();
            let mut now = Vec::new();
            for (i, &w) in weights.iter().enumerate() {
                let id = i as ThreadId;
                match (id == changed, exits) {
                    (true, true) => {}
                    (true, false) => (ids.push(id), now.push(new)).1,
                    _ => (ids.push(id), now.push(w)).1,
                }
            }
            let moves = lag_moves(info, p.as_mut(), &ids, &now, cores);
            for (i, (moved, want)) in moves.into_iter().enumerate() {
                prop_assert!(
                    (moved - want).abs() <= 2.0 * Q as f64,
                    "{}: {} cores, weights {:?}, running thread {} -> {} tickets{}: thread {}'s lag moved {} ns, its service says {}",
                    info.kind, cores, weights, changed, new, if exits { ", then exits" } else { "" },
                    ids[i], moved, want
                );
            }
        }
    }

    /// A run cut short by a preemption (the libOS's turn ended before the
    /// policy's quantum: a revoked slice, a tick's jitter) costs a thread
    /// none of its share of time: a thread always preempted early still
    /// gets its entitled share, whatever the quantum (round robin gives
    /// it the rest of its quantum first, stride and EEVDF charge the part
    /// used). Quanta of 0.5, 1 and 4 ms: the part used is a fraction of
    /// the policy's own quantum. (Not lottery's: see
    /// [`PREEMPTED_EARLY_BY_DRAWS`].)
    #[test]
    fn a_thread_preempted_early_keeps_its_share_whatever_the_quantum(
        others in proptest::collection::vec(1u32..10, 1..4),
        mine in 1u32..10,
        percent in 10u64..90,
        quantum in prop_oneof![Just(500_000u64), Just(1_000_000), Just(4_000_000)],
        seed in any::<u64>(),
    ) {
        let known = |p: &&PolicyInfo| PREEMPTED_EARLY_BY_DRAWS.contains(&p.kind.name());
        for info in POLICIES.iter().filter(|p| !known(p)) {
            preempted_early_keeps_its_share(info, &others, mine, percent, quantum, seed)?;
        }
    }
}

/// Policies that fail
/// `a_thread_preempted_early_keeps_its_share_whatever_the_quantum`: a
/// trade-off, measured both ways, not a property they are exempt from
/// for nothing. Lottery's unit is the draw, and it compensates (1/f
/// tickets until its next win) a run that ended short by the thread's own
/// doing, a yield or a block (`sched_lottery`'s `credit::compensation`),
/// not one cut short by preemption. So a thread whose every turn is cut
/// short gets its share of the draws and a fraction f of its share of
/// the time (tickets [1, 1], one core, cut at 10%: 9% of the time, not
/// 50%). Compensating preemptions too (tried, `15acde8`, reverted) over-
/// favours the libOS's usual short preemption: the thread that runs the
/// rest of a slot after another blocked, whose next turn is whole (1:1:1
/// tickets, one blocking at 0.9 of each turn: the blocker's share 0.249
/// with it, 0.323 without, ideal just under 1/3;
/// `sched-lottery/tests/slot_follower.rs`). Keeping the unused rest of
/// the quantum as credit instead (tried on `b140125`, not kept: the unused parts
/// gathered into whole quanta of credit) passes this property but
/// favours the follower as much (the blocker's share 0.243): a
/// follower's draw is held while the blocker sleeps, so a win there is
/// not worth a whole quantum. Serving both needs what a thread is owed
/// against its ideal (stride's and EEVDF's lag), not a rule on how a
/// run ended: lottery's unit stays the draw.
/// `every_exemption_from_the_preempted_early_property_is_still_needed`
/// checks the list.
const PREEMPTED_EARLY_BY_DRAWS: &[&str] = &["lottery"];

/// One policy on one core, quantum `quantum`: threads of tickets `others`
/// run whole quanta; one of `mine` is always preempted after `percent`
/// of its quantum. Its share of the time is its entitled share.
fn preempted_early_keeps_its_share(
    info: &PolicyInfo,
    others: &[u32],
    mine: u32,
    percent: u64,
    quantum: u64,
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut weights = others.to_vec();
    weights.push(mine);
    let me = others.len();
    let params = Params {
        quantum_ns: quantum,
        cores: 1,
        seed,
    };
    let mut p = (info.build)(&params).unwrap();
    prop_assert_eq!(p.quantum_ns(), quantum);
    for (id, &w) in weights.iter().enumerate() {
        p.add(id as ThreadId, w).unwrap();
    }
    let decisions = 3000;
    let (mut got, mut total, mut picked) = (0u64, 0u64, 0u32);
    for _ in 0..decisions {
        let t = p.pick(0).unwrap();
        let ran = if t as usize == me {
            quantum * percent / 100
        } else {
            quantum
        };
        p.charge(t, 0, ran, RunEnd::Preempted).unwrap();
        if t as usize == me {
            got += ran;
            picked += 1;
        }
        total += ran;
    }
    let e = entitled(info, &weights, 1);
    let ideal = e[me] / e.iter().sum::<f64>();
    let share = got as f64 / total as f64;
    let tol = share_tolerance(info.randomized, decisions, picked, percent, quantum, total);
    prop_assert!(
        (share - ideal).abs() <= tol,
        "{}: quantum {} ns, weights {:?}, thread {} preempted after {}%: share {} (ideal {}, allowed +-{})",
        info.kind, quantum, weights, me, percent, share, ideal, tol
    );
    Ok(())
}

/// Every policy in [`PREEMPTED_EARLY_BY_DRAWS`] still fails the property
/// on its first case (tickets 1:1, one core, cut at 10%), at every
/// quantum: an exemption no longer needed (a lottery that makes good a
/// preempted thread's unused quantum) fails here, so the list is emptied.
#[test]
fn every_exemption_from_the_preempted_early_property_is_still_needed() {
    for name in PREEMPTED_EARLY_BY_DRAWS {
        let info = sched_registry::by_name(name).unwrap();
        for quantum in [500_000, 1_000_000, 4_000_000] {
            let passed = preempted_early_keeps_its_share(info, &[1], 1, 10, quantum, 0);
            assert!(
                passed.is_err(),
                "{name} at {quantum} ns now keeps its share"
            );
        }
    }
}

/// `id`'s exported lag (neutral units), awake and then asleep.
fn lag_awake_then_asleep(p: &mut dyn Policy, id: ThreadId) -> (i128, i128) {
    let lag = |p: &dyn Policy| {
        let s = p.export();
        s.lag(s.get(id).unwrap())
    };
    let awake = lag(p);
    p.sleep(id).unwrap();
    (awake, lag(p))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A sleeper's lag is frozen: what a policy exports for a thread
    /// asleep (what a swap carries) is the lag it had when it fell
    /// asleep, capped or not.
    #[test]
    fn a_sleepers_exported_lag_is_the_one_it_fell_asleep_with(
        weights in weights(),
        cores in 1usize..5,
        before in 1u32..40,
        partial in 1u64..100,
        which in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        let id = which.index(weights.len());
        let w = neutral(&weights, cores)[id];
        for info in POLICIES {
            let (mut p, _) = run_cpu_bound(info, &weights, cores, before, seed);
            // A part-quantum on one core, so that lags are not all zero.
            let t = p.pick(0).unwrap();
            p.charge(t, 0, Q * partial / 100, RunEnd::Preempted).unwrap();
            let (awake, asleep) = lag_awake_then_asleep(p.as_mut(), id as ThreadId);
            prop_assert!(
                ((asleep - awake) as f64 * w / VT_SCALE as f64).abs() <= 1.0,
                "{}: {} cores, weights {:?}: thread {} exports lag {} awake, {} asleep",
                info.kind, cores, weights, id, awake, asleep
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A thread that blocks at the end of its run (a charge ending in a
    /// block) falls asleep with the lag it would have had preempted and
    /// then put to sleep: the two ways to sleep freeze the same lag (round
    /// robin's block once kept it by the old rule after its `sleep` had
    /// changed: a capped sleeper woke owed effective / tickets times over).
    #[test]
    fn a_block_freezes_the_lag_a_sleep_would(
        weights in weights(),
        cores in 1usize..5,
        before in 1u32..40,
        partial in 1u64..100,
        seed in any::<u64>(),
    ) {
        let ran = Q * partial / 100;
        for info in POLICIES {
            let (mut blocked, _) = run_cpu_bound(info, &weights, cores, before, seed);
            let (mut slept, _) = run_cpu_bound(info, &weights, cores, before, seed);
            let t = blocked.pick(0).unwrap();
            prop_assert_eq!(slept.pick(0), Some(t));
            blocked.charge(t, 0, ran, RunEnd::Blocked).unwrap();
            slept.charge(t, 0, ran, RunEnd::Preempted).unwrap();
            slept.sleep(t).unwrap();
            let lag = |p: &dyn Policy| {
                let s = p.export();
                s.lag(s.get(t).unwrap())
            };
            let (b, s) = (lag(blocked.as_ref()), lag(slept.as_ref()));
            let w = neutral(&weights, cores)[t as usize];
            prop_assert!(
                ((b - s) as f64 * w / VT_SCALE as f64).abs() <= 1.0,
                "{}: {} cores, weights {:?}: thread {} blocked exports lag {}, put to sleep {}",
                info.kind, cores, weights, t, b, s
            );
        }
    }
}

/// The case that found round robin exporting a sleeper's lag per ticket of
/// its own, not of the effective weight it fell asleep with (tickets
/// [1, 2] on 2 cores, effective [1.5, 1.5]).
#[test]
fn a_round_robin_sleepers_exported_lag_is_the_one_it_fell_asleep_with() {
    let info = sched_registry::by_name("rr").unwrap();
    let mut p = build(info, 2, 0);
    p.add(0, 1).unwrap();
    p.add(1, 2).unwrap();
    let t = p.pick(0).unwrap();
    p.charge(t, 0, Q, RunEnd::Preempted).unwrap();
    let (awake, asleep) = lag_awake_then_asleep(p.as_mut(), t);
    assert_eq!(asleep, awake, "thread {t}");
}

/// How far a thread's measured share may be from its ideal after
/// `decisions` picks on one core, `picked` of them its own, each of its
/// runs `percent` of a `quantum` and the others' whole quanta, `total`
/// ns given out in all. Deterministic policies: three quanta's worth.
/// Randomized ones: five standard deviations of the binomial count x of
/// its picks, carried to the share S = f x / (f x + n - x) (in quanta):
/// dS/dx = f n / (f x + n - x)^2 = f n Q^2 / total^2, plus two quanta.
/// (Each pick moves a full quantum of the others' too: a first version
/// scaled by its own f Q only, five times too tight.)
fn share_tolerance(
    randomized: bool,
    decisions: u32,
    picked: u32,
    percent: u64,
    quantum: u64,
    total: u64,
) -> f64 {
    let n = f64::from(decisions);
    let quantum_share = quantum as f64 / total as f64;
    if randomized {
        let pick = f64::from(picked) / n;
        let f = percent as f64 / 100.0;
        let per_pick = f * n * quantum_share.powi(2);
        5.0 * (n * pick * (1.0 - pick)).sqrt() * per_pick + 2.0 * quantum_share
    } else {
        3.0 * quantum_share
    }
}
