use super::*;
use alloc::vec;
use proptest::prelude::*;
use sched_api::sim::{Mode, Sim, SimThread};
use sched_api::VT_SCALE;

const Q: u64 = 1_000_000;

/// `id`'s lag in ns of service at its effective weight `e` tickets
/// (positive: ahead).
fn lag_ns(p: &Eevdf, id: ThreadId) -> f64 {
    let r = p.record(id).unwrap();
    let e = p.ledger.effective(u64::from(r.weight)).as_f64();
    (r.vtime - p.now()) as f64 * e / VT_SCALE as f64
}

/// A scheduler with a thread of each weight, ids from 0; the next id.
fn joined(quantum: u64, cores: usize, weights: &[u32]) -> (Eevdf, ThreadId) {
    let mut p = Eevdf::new(quantum, cores);
    let mut next = 0;
    for &w in weights {
        p.add(next, w).unwrap();
        next += 1;
    }
    (p, next)
}

/// Runs one full quantum on core 0; the thread picked.
fn step(p: &mut Eevdf) -> ThreadId {
    let id = p.pick(0).unwrap();
    p.charge(id, 0, Q, RunEnd::Preempted).unwrap();
    id
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    assert_eq!(Eevdf::try_new(0, 1).err(), Some(SchedError::BadQuantum));
    assert_eq!(Eevdf::try_new(Q, 0).err(), Some(SchedError::BadCores));
    let mut p = Eevdf::new(Q, 2);
    assert_eq!(p.add(1, 0), Err(SchedError::ZeroWeight));
    p.add(1, 3).unwrap();
    assert_eq!(p.add(1, 3), Err(SchedError::DuplicateThread));
    assert_eq!(p.wake(1), Err(SchedError::NotSleeping));
    assert_eq!(p.set_weight(2, 1), Err(SchedError::UnknownThread));
    assert_eq!(p.try_pick(sched_api::MAX_CORES), Err(SchedError::BadCore));
    assert_eq!(p.pick(0), Some(1));
    assert_eq!(p.try_pick(0), Err(SchedError::CoreBusy));
    assert_eq!(p.sleep(1), Err(SchedError::AlreadyRunning));
    assert_eq!(
        p.charge(1, 1, Q, RunEnd::Preempted),
        Err(SchedError::NotRunning)
    );
    assert_eq!(p.pick(1), None, "its only thread runs on core 0");
    p.charge(1, 0, Q, RunEnd::Blocked).unwrap();
    assert_eq!(p.sleep(1), Err(SchedError::AlreadySleeping));
    assert_eq!(p.record(1).unwrap().state, ThreadState::Sleeping);
    assert_eq!(p.lend(1, 1), Err(SchedError::Unsupported));
}

/// Three threads of equal weight: the one eligible with the earliest
/// deadline runs; a thread that got ahead is not eligible until the others
/// catch up, even though its deadline is the same.
#[test]
fn the_earliest_deadline_among_the_eligible_runs() {
    let mut p = Eevdf::new(Q, 1);
    for id in 0..3 {
        p.add(id, 1).unwrap();
    }
    // Same deadlines: by id. Then each once more, in the same order.
    let order: Vec<ThreadId> = (0..6).map(|_| step(&mut p)).collect();
    assert_eq!(order, [0, 1, 2, 0, 1, 2]);
    // A heavy thread joins: its requests are short (r / 4), so it runs
    // often, but never while ahead of V.
    p.add(9, 4).unwrap();
    let order: Vec<ThreadId> = (0..14).map(|_| step(&mut p)).collect();
    let heavy = order.iter().filter(|&&id| id == 9).count();
    assert_eq!(heavy, 8, "4 of 7 tickets over 14 quanta: {order:?}");
    for w in order.windows(3) {
        assert!(
            !(w[0] == 9 && w[1] == 9 && w[2] == 9),
            "never three in a row: {order:?}"
        );
    }
}

#[test]
fn a_sleeper_keeps_its_lag_and_gets_a_fresh_request() {
    let mut p = Eevdf::new(Q, 1);
    p.add(1, 1).unwrap();
    p.add(2, 1).unwrap();
    p.add(3, 2).unwrap();
    for _ in 0..7 {
        step(&mut p);
    }
    let before = p.record(1).unwrap().vtime - p.now();
    p.sleep(1).ok();
    for _ in 0..20 {
        step(&mut p);
    }
    let asleep = p.record(1).unwrap();
    assert_eq!(asleep.vtime - p.now(), before, "frozen while asleep");
    p.wake(1).unwrap();
    assert_eq!(p.record(1).unwrap().vtime - p.now(), before);
    let t = p.threads.get(1).unwrap();
    assert_eq!(t.vd - t.ve, p.request(1), "a fresh request on waking");
}

/// A capped thread stays capped when its tickets grow: its effective
/// weight, and so its lag, stays as it was (rescaling by the face values
/// would halve it).
#[test]
fn a_weight_change_rescales_the_lag_by_the_effective_weight() {
    let mut p = Eevdf::new(Q, 2);
    p.add(1, 1000).unwrap();
    p.add(2, 1).unwrap();
    p.add(3, 1).unwrap();
    // Thread 1 (capped at one core) runs alone on core 0 for a while with
    // core 1 idle: it gets ahead.
    for _ in 0..3 {
        let id = p.pick(0).unwrap();
        p.charge(id, 0, Q, RunEnd::Preempted).unwrap();
    }
    let before = lag_ns(&p, 1);
    assert!(p.ledger.is_capped(1000));
    p.set_weight(1, 2000).unwrap();
    assert!(p.ledger.is_capped(2000));
    assert!(
        (lag_ns(&p, 1) - before).abs() < 1.0,
        "{before} -> {}",
        lag_ns(&p, 1)
    );
    // Uncapped on one core: the service lag is kept across 2 -> 5.
    let mut p = Eevdf::new(Q, 1);
    p.add(1, 2).unwrap();
    p.add(2, 3).unwrap();
    step(&mut p);
    let before = lag_ns(&p, 1);
    p.set_weight(1, 5).unwrap();
    assert!(
        (lag_ns(&p, 1) - before).abs() < 1.0,
        "{before} -> {}",
        lag_ns(&p, 1)
    );
}

#[test]
fn shares_follow_capped_weights_on_several_cores() {
    for cores in [1usize, 2, 4] {
        let weights = [1u32, 2, 3, 40];
        let mut p = Eevdf::new(Q, cores);
        let mut sim = Sim::new(cores, Mode::Lockstep).unwrap();
        for &w in &weights {
            sim.spawn(&mut p, SimThread::cpu(w)).unwrap();
        }
        sim.run(&mut p, 600).unwrap();
        sim.finish(&mut p).unwrap();
        for (i, lag) in sim.lag().iter().enumerate() {
            assert!(
                lag.abs() <= 2.0 * Q as f64,
                "{cores} cores, thread {i}: lag {lag}"
            );
        }
    }
}

#[test]
fn stride_passes_survive_a_round_trip() {
    let mut p = Eevdf::new(Q, 1);
    for (id, w) in [(1, 1), (2, 3), (3, 7)] {
        p.add(id, w).unwrap();
    }
    for _ in 0..9 {
        step(&mut p);
    }
    p.sleep(2).ok();
    let snap = p.export();
    let again = Eevdf::from_snapshot(Q, 1, snap.clone()).unwrap();
    assert_eq!(again.export().threads.len(), 3);
    for r in &snap.threads {
        assert_eq!(again.record(r.id), Some(*r));
    }
    assert_eq!(again.export().global_vtime, snap.global_vtime);
}

#[test]
fn export_lists_runnable_threads_in_pick_order() {
    let mut p = Eevdf::new(Q, 1);
    for (id, w) in [(1, 1), (2, 5), (3, 2), (4, 9)] {
        p.add(id, w).unwrap();
    }
    for _ in 0..5 {
        step(&mut p);
    }
    let order: Vec<ThreadId> = p.export().threads.iter().map(|t| t.id).collect();
    let mut q = p.clone();
    let picks: Vec<ThreadId> = (0..4).map(|c| q.pick(c).unwrap()).collect::<Vec<_>>();
    assert_eq!(order, picks);
}

#[derive(Clone, Debug)]
enum Op {
    Add(u32),
    Run(u8),
    Sleep(u8),
    Wake(u8),
    Weight(u8, u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (1u32..50).prop_map(Op::Add),
        8 => any::<u8>().prop_map(Op::Run),
        1 => any::<u8>().prop_map(Op::Sleep),
        1 => any::<u8>().prop_map(Op::Wake),
        1 => (any::<u8>(), 1u32..50).prop_map(|(i, w)| Op::Weight(i, w)),
    ]
}

/// Plays `ops` (joins, weight changes, whole quanta on one core; `Sleep`
/// and `Wake` run a quantum too, sleeping is covered elsewhere) from a
/// thread of each of `weights`, handing every thread's lag in ns
/// (positive: ahead) to `check` after each operation.
fn replay_on_one_core(
    weights: &[u32],
    ops: &[Op],
    mut check: impl FnMut(&[f64]) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    let (mut p, mut next) = joined(Q, 1, weights);
    for op in ops {
        match *op {
            Op::Add(w) => {
                p.add(next, w).unwrap();
                next += 1;
            }
            Op::Weight(i, w) => {
                p.set_weight(ThreadId::from(i) % next, w).unwrap();
            }
            Op::Run(_) | Op::Sleep(_) | Op::Wake(_) => {
                step(&mut p);
            }
        }
        let lags: Vec<f64> = (0..next).map(|id| lag_ns(&p, id)).collect();
        check(&lags)?;
    }
    Ok(())
}

/// What holds whatever the weight changes (one core, whole quanta): no
/// thread is a request ahead (it runs only when eligible, lag <= 0, and a
/// run of one request at share `w / W` puts it `Q * (1 - w / W) < Q`
/// ahead; a weight change keeps its service lag; a join starts at 0), and
/// the lags add up to zero (a run moves its thread by `Q` and everyone's
/// entitlement by `Q` in all; a weight change keeps the lag and leaves `V`
/// alone: Linux proves the same of its averaged `V`, `reweight_eevdf`'s
/// COROLLARY #2). So an owed lag is bounded only by what the others are
/// ahead: `< (n - 1) * Q`; nothing tighter holds in general (see
/// `weight_changes_keep_lags_summing_to_zero_and_none_a_request_ahead`).
fn lags_sum_to_zero_and_none_is_a_request_ahead(lags: &[f64]) -> Result<(), TestCaseError> {
    for (id, &l) in lags.iter().enumerate() {
        prop_assert!(l < Q as f64, "thread {} ahead by {} ns", id, l);
    }
    // Rounding: under a ns per thread (virtual times are exact to a
    // fraction of a ns of service at these weights).
    let sum: f64 = lags.iter().sum();
    prop_assert!(sum.abs() < lags.len() as f64, "lags add up to {} ns", sum);
    Ok(())
}

/// proptest's counterexample to `|lag| < Q` under weight changes
/// (`lag-bound-counterexample.txt` in the notes): thread 1, owed 0.49 Q at
/// weight 1, goes to weight 32; its fresh request's deadline (the paper's
/// leave and re-join, Linux's `reweight_eevdf` alike) falls just after
/// thread 0's, and in the quantum thread 0 runs it earns 32/62 Q more:
/// owed 1.003 Q. The steady-state bound does not apply (a weight change at
/// nonzero lag); the bounds that do, hold.
#[test]
fn a_weight_change_at_nonzero_lag_can_leave_a_thread_owed_over_a_request() {
    use Op::{Add, Run as R, Weight as W};
    let ops = [
        vec![Add(14)],
        vec![R(0); 14],
        vec![W(0, 29)],
        vec![R(0); 12],
        vec![W(104, 26), R(0), R(0), R(0), Add(2), W(43, 29), R(0)],
        vec![Add(2), R(0), R(0), W(5, 1), R(0), R(0), R(0), R(0)],
        vec![W(221, 32), R(0)],
    ]
    .concat();
    let mut last = Vec::new();
    replay_on_one_core(&[8], &ops, |lags| {
        last = lags.to_vec();
        lags_sum_to_zero_and_none_is_a_request_ahead(lags)
    })
    .unwrap();
    let owed = -last[1] / Q as f64;
    assert!(
        (1.0..1.01).contains(&owed),
        "thread 1 owed {owed} quanta: {last:?}"
    );
}

/// Joins and whole quanta only: a steady system.
fn steady_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (1u32..50).prop_map(Op::Add),
        8 => any::<u8>().prop_map(Op::Run),
    ]
}

proptest! {
    /// The paper's bound (Stoica & Abdel-Wahab, Theorem 3; Linux's
    /// fair.c: "EEVDF gives the following limit for a steady state
    /// system: -r_max < lag < max(r_max, q)"): on one core, with requests
    /// of one quantum served whole, every thread's lag stays within one
    /// request while the system is steady: threads join (at zero lag) and
    /// run, whatever the weights, but no weight changes at a nonzero lag
    /// (see the next property and the counterexample above) and no thread
    /// with a lag is away (a sleeper takes its lag with it; the others
    /// then carry its opposite between them).
    #[test]
    fn lag_stays_within_one_request(
        weights in proptest::collection::vec(1u32..50, 1..10),
        ops in proptest::collection::vec(steady_op(), 1..300),
    ) {
        replay_on_one_core(&weights, &ops, |lags| {
            for (id, &l) in lags.iter().enumerate() {
                prop_assert!(l.abs() < Q as f64, "thread {} lag {} ns", id, l);
            }
            Ok(())
        })?;
    }

    /// With weight changes at any lag, too: no thread a request ahead and
    /// the lags adding up to zero. Owed lags can pass a request: by 0.3% in
    /// the counterexample above, to 2.4 Q in one a local search found
    /// (9..16 threads, weights 1 to 1000; the paper bounds only steady
    /// systems, and Linux clamps lags to two slices for this reason).
    #[test]
    fn weight_changes_keep_lags_summing_to_zero_and_none_a_request_ahead(
        weights in proptest::collection::vec(1u32..50, 1..10),
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        replay_on_one_core(&weights, &ops, lags_sum_to_zero_and_none_is_a_request_ahead)?;
    }

    /// With sleepers and partial runs too, on 1..4 cores: every pick is
    /// legal, nobody waits while a core is free, services add up, and lags
    /// stay within a few requests (a sleeper's lag, taken away, is carried
    /// by the others until it returns).
    #[test]
    fn any_run_keeps_the_rules_and_lags_bounded(
        cores in 1usize..5,
        weights in proptest::collection::vec(1u32..50, 1..10),
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let mut p = Eevdf::new(Q, cores);
        let n = weights.len() as u32;
        for (id, &w) in weights.iter().enumerate() {
            p.add(id as ThreadId, w).unwrap();
        }
        let mut given = 0u64;
        for op in ops {
            match op {
                Op::Add(_) => {}
                Op::Weight(i, w) => p.set_weight(u32::from(i) % n, w).unwrap(),
                Op::Sleep(i) => { let _ = p.sleep(u32::from(i) % n); }
                Op::Wake(i) => { let _ = p.wake(u32::from(i) % n); }
                Op::Run(x) => {
                    let mut on = vec![];
                    for c in 0..cores {
                        if let Some(id) = p.pick(c) { on.push((c, id)); }
                    }
                    let waiting = (0..n).any(|id| p.record(id).unwrap().state == ThreadState::Runnable);
                    prop_assert!(on.len() == cores || !waiting, "a core idles while a thread waits");
                    for (c, id) in on {
                        let ran = Q * (1 + u64::from(x) % 4) / 4;
                        given += ran;
                        let end = if x % 7 == 0 { RunEnd::Yielded } else { RunEnd::Preempted };
                        p.charge(id, c, ran, end).unwrap();
                    }
                }
            }
            let served: u64 = (0..n).map(|id| p.record(id).unwrap().service_ns).sum();
            prop_assert_eq!(served, given);
        }
    }
}

/// A fixed scenario of every kind of operation (joins, full and partial
/// runs, yields, blocks, sleeps, wakes, weight changes, exits, removals, on
/// 1 to 3 cores, 1 to 200 threads), its every pick and final records
/// folded into one number, taken from the code as it decided before the
/// decision path was cut for time: a change that picks another thread, or
/// charges differently, anywhere in it fails here.
#[test]
fn a_fixed_scenario_picks_as_it_always_did() {
    fn fold(h: &mut u64, x: u64) {
        // FNV-1a over the value's bytes.
        for b in x.to_le_bytes() {
            *h = (*h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    let mut digests = Vec::new();
    // The last two with quanta long enough that the queue's times outgrow
    // 64-bit offsets: from one base to the next (1 s), or for good (20 s).
    let runs = [
        (1usize, 1u32, Q),
        (1, 7, Q),
        (1, 200, Q),
        (2, 30, Q),
        (3, 5, Q),
        (1, 5, 1000 * Q),
        (2, 9, 20_000 * Q),
    ];
    for (cores, threads, q) in runs {
        let mut p = Eevdf::new(q, cores);
        let mut rng = 0x2545_f491_4f6c_dd1du64 ^ u64::from(threads);
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        let mut ids = threads;
        for id in 0..threads {
            p.add(id, 1 + id % 10).unwrap();
        }
        for _ in 0..4000 {
            let r = next();
            let id = (r >> 32) as u32 % ids;
            match r % 16 {
                0 => {
                    let _ = p.sleep(id);
                }
                1 | 2 => {
                    let _ = p.wake(id);
                }
                3 => {
                    let _ = p.set_weight(id, 1 + (r >> 8) as u32 % 40);
                }
                4 if r % 64 == 4 => {
                    let _ = p.remove(id);
                }
                5 if r % 64 == 5 => {
                    let _ = p.add(ids, 1 + (r >> 8) as u32 % 20);
                    ids += 1;
                }
                _ => {
                    let mut on = Vec::new();
                    for c in 0..cores {
                        if let Some(t) = p.pick(c) {
                            fold(&mut h, u64::from(t));
                            on.push((c, t));
                        }
                    }
                    for (c, t) in on {
                        let x = next();
                        let ran = if x % 3 == 0 { q * (1 + x % 5) / 4 } else { q };
                        let end = match (x >> 8) % 20 {
                            0 => RunEnd::Blocked,
                            1 => RunEnd::Yielded,
                            2 if ids > 2 => RunEnd::Exited,
                            _ => RunEnd::Preempted,
                        };
                        p.charge(t, c, ran, end).unwrap();
                    }
                }
            }
        }
        for r in p.export().threads {
            fold(&mut h, u64::from(r.id));
            fold(&mut h, r.service_ns);
            fold(&mut h, r.vtime as u64);
            fold(&mut h, (r.vtime >> 64) as u64);
        }
        fold(&mut h, p.now() as u64);
        digests.push(h);
    }
    assert_eq!(
        digests,
        [
            12408349423032095037,
            17937239752059294750,
            7201327936948548923,
            1080179154718896344,
            13471347348710187444,
            5346155926110207894,
            10214047306880858080
        ]
    );
}

/// What a pick must take now, from the thread table alone: among the
/// runnable threads, the earliest deadline of those eligible (`ve <= V`),
/// else the earliest eligible time; ties by id.
fn expected_pick(p: &Eevdf) -> Option<ThreadId> {
    let now = p.now();
    p.threads
        .iter()
        .filter(|(_, t)| t.state == ThreadState::Runnable)
        .map(|(id, t)| {
            if t.ve <= now {
                (false, t.vd, id)
            } else {
                (true, t.ve, id)
            }
        })
        .min()
        .map(|(_, _, id)| id)
}

#[derive(Clone, Debug)]
enum Edge {
    Add(u32),
    Remove(u8),
    Sleep(u8),
    Wake(u8),
    Weight(u8, u32),
    /// The thread's weight set this many times over (each requeues it if
    /// runnable, leaving a stale entry: enough for a lazy rebuild).
    Churn(u8, usize),
    Cores(usize),
    /// A pick on core `.0 % cores`, if free.
    Pick(usize),
    /// The thread on core `.0 % cores`, if any, charged `.1` and ended.
    Charge(usize, u64, u8),
    /// An export, every virtual time moved by `.0` (saturating), imported.
    Shift(i128),
}

/// A run's length: a quantum or part of one, none, or enough to move `V`
/// past 64-bit offsets at once.
fn ran() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => Just(Q),
        2 => 0..2 * Q,
        1 => Just(0),
        1 => prop_oneof![(32u32..64).prop_map(|b| 1u64 << b), Just(u64::MAX)],
    ]
}

fn edge_op() -> impl Strategy<Value = Edge> {
    prop_oneof![
        2 => (1u32..50).prop_map(Edge::Add),
        1 => any::<u8>().prop_map(Edge::Remove),
        2 => any::<u8>().prop_map(Edge::Sleep),
        2 => any::<u8>().prop_map(Edge::Wake),
        2 => (any::<u8>(), prop_oneof![1u32..50, Just(u32::MAX)]).prop_map(|(i, w)| Edge::Weight(i, w)),
        1 => (any::<u8>(), 1usize..50).prop_map(|(i, n)| Edge::Churn(i, n)),
        1 => (1usize..5).prop_map(Edge::Cores),
        8 => (0usize..4).prop_map(Edge::Pick),
        8 => (0usize..4, ran(), 0u8..20).prop_map(|(c, r, e)| Edge::Charge(c, r, e)),
        1 => crate::queue::tests::near().prop_map(Edge::Shift),
    ]
}

proptest! {
    /// Every pick is the one the thread table says (the earliest deadline
    /// among the eligible, else the earliest eligible time, ties by id),
    /// and the first runnable thread an export lists, whatever came
    /// before: joins, removals, sleeps, wakes, weight changes, core
    /// counts, runs long enough to move `V` past 64-bit offsets, and
    /// imports with every time moved to the ends of `i128`. (The queue
    /// going from one base to the next, or wide, must not change a pick.)
    #[test]
    fn every_pick_is_what_the_table_says(
        quantum in prop_oneof![2 => Just(Q), 3 => Just(1000 * Q), 1 => Just(20_000 * Q), 1 => Just(u64::MAX)],
        weights in proptest::collection::vec(prop_oneof![1u32..50, Just(u32::MAX)], 1..8),
        ops in proptest::collection::vec(edge_op(), 1..120),
    ) {
        let (mut p, mut next) = joined(quantum, 2, &weights);
        for op in ops {
            let cores = p.cores();
            match op {
                Edge::Add(w) => {
                    p.add(next, w).unwrap();
                    next += 1;
                }
                Edge::Remove(i) => { let _ = p.remove(u32::from(i) % next); }
                Edge::Sleep(i) => { let _ = p.sleep(u32::from(i) % next); }
                Edge::Wake(i) => { let _ = p.wake(u32::from(i) % next); }
                Edge::Weight(i, w) => { let _ = p.set_weight(u32::from(i) % next, w); }
                Edge::Churn(i, n) => {
                    let id = u32::from(i) % next;
                    if let Some(r) = p.record(id) {
                        for k in 0..n {
                            p.set_weight(id, r.weight.wrapping_add(k as u32 % 2).max(1)).unwrap();
                        }
                    }
                }
                Edge::Cores(n) => {
                    // Only down to the highest busy core.
                    let busy = (0..sched_api::MAX_CORES).filter(|&c| p.running.on(c).is_some()).max();
                    if busy.is_none_or(|b| b < n) {
                        p.set_cores(n).unwrap();
                    }
                }
                Edge::Pick(c) => {
                    let c = c % cores;
                    if p.running.on(c).is_none() {
                        let want = expected_pick(&p);
                        let listed = p
                            .export()
                            .threads
                            .iter()
                            .find(|t| t.state == ThreadState::Runnable)
                            .map(|t| t.id);
                        prop_assert_eq!(listed, want, "export's first runnable");
                        prop_assert_eq!(p.pick(c), want, "pick at V = {}", p.now());
                    }
                }
                Edge::Charge(c, ran, e) => {
                    if let Some((id, _)) = p.running.on(c % cores) {
                        let end = match e {
                            0 => RunEnd::Blocked,
                            1 => RunEnd::Exited,
                            2..=4 => RunEnd::Yielded,
                            _ => RunEnd::Preempted,
                        };
                        p.charge(id, c % cores, ran, end).unwrap();
                    }
                }
                Edge::Shift(d) => {
                    let mut snap = p.export();
                    snap.global_vtime = snap.global_vtime.saturating_add(d);
                    for t in &mut snap.threads {
                        t.vtime = t.vtime.saturating_add(d);
                    }
                    p.import(snap).unwrap();
                }
            }
            // The queue's lazy deletion counts exactly: one live entry per
            // runnable thread, whatever repacked or went wide.
            let runnable = p.threads.iter().filter(|(_, t)| t.state == ThreadState::Runnable).count();
            prop_assert_eq!(p.queue.held() - p.queue.stale(), runnable, "live entries held");
        }
        // Whatever is left comes out in the table's order, too.
        for c in 0..p.cores() {
            if p.running.on(c).is_none() {
                let want = expected_pick(&p);
                prop_assert_eq!(p.pick(c), want);
            }
        }
    }
}
