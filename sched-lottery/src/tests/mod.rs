use super::*;
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use sched_api::sim::{self, Behaviour, Mode, Sim, SimThread};
use sched_api::{Policy, RunEnd, SchedError, Snapshot, ThreadState, VT_SCALE};

mod incremental;
mod pinned;

const Q: u64 = 1_000_000;

fn cpu(weight: u32) -> SimThread {
    SimThread::cpu(weight)
}

/// |wins - n p| <= 4 sqrt(n p (1 - p)) + slack: the binomial envelope.
fn within_binomial(wins: f64, n: f64, p: f64, slack: f64) -> bool {
    let sigma = (n * p * (1.0 - p)).sqrt();
    (wins - n * p).abs() <= 4.0 * sigma + slack
}

/// Every thread's quanta are within the binomial envelope around its
/// feasible share of the quanta given out (the simulator's ideal). On P
/// cores a thread may hold up to P quanta of credit not yet run.
fn assert_shares(sim: &Sim, cores: usize, what: &str) {
    let service = sim.service();
    let ideal = sim.ideal();
    let n: f64 = service.iter().sum::<u64>() as f64 / Q as f64;
    let total_ideal: f64 = ideal.iter().sum();
    for i in 0..service.len() {
        let wins = service[i] as f64 / Q as f64;
        let p = ideal[i] / total_ideal;
        assert!(
            within_binomial(wins, n, p, cores as f64 + 1.0),
            "{what}: thread {i} ran {wins} quanta, expected {:.1} of {n}; {service:?}",
            n * p
        );
    }
}

#[test]
fn two_to_one_and_twenty_to_one() {
    for (a, b) in [(2u32, 1u32), (20, 1)] {
        for seed in [1, 7, 99] {
            let mut l = Lottery::new(Q, 1, seed);
            let n = 20_000;
            let s = sim::run(&mut l, 1, n, &[cpu(a), cpu(b)]).unwrap();
            let wins = s.service()[0] / Q;
            let p = f64::from(a) / f64::from(a + b);
            assert!(
                within_binomial(wins as f64, f64::from(n), p, 1.0),
                "{a}:{b} seed {seed}: {wins} of {n}"
            );
        }
    }
}

#[test]
fn every_thread_within_the_binomial_envelope() {
    // Fixed seeds, so the run repeats; 24 mixes of 2 to 7 threads.
    for seed in 0..24u64 {
        let n = 2 + (seed % 6) as u32;
        let weights: Vec<u32> = (0..n)
            .map(|i| 1 + ((i as u64 * 7 + seed * 13) % 29) as u32)
            .collect();
        let mut l = Lottery::new(Q, 1, seed);
        let threads: Vec<SimThread> = weights.iter().map(|&w| cpu(w)).collect();
        let s = sim::run(&mut l, 1, 4000, &threads).unwrap();
        assert_shares(&s, 1, &alloc::format!("seed {seed} weights {weights:?}"));
    }
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let mut l = Lottery::new(Q, 2, seed);
        sim::run(&mut l, 2, 500, &[cpu(3), cpu(2), cpu(1), cpu(1)])
            .unwrap()
            .service()
    };
    assert_eq!(run(99), run(99));
    assert_ne!(run(99), run(100));
}

#[test]
fn currencies_keep_inflation_inside() {
    // Users A and B are funded 100 base tickets each. A runs one thread,
    // then three (inflating A's currency); B's share stays one half.
    for extra in [0u32, 2] {
        let mut l = Lottery::new(Q, 1, 3);
        let a = l.create_currency(BASE, 100).unwrap();
        let b = l.create_currency(BASE, 100).unwrap();
        let mut sim = Sim::new(1, Mode::Lockstep).unwrap();
        sim.spawn(&mut l, cpu(1)).unwrap();
        sim.spawn(&mut l, cpu(1)).unwrap();
        l.move_to_currency(0, a).unwrap();
        l.move_to_currency(1, b).unwrap();
        for _ in 0..extra {
            let id = sim.spawn(&mut l, cpu(1)).unwrap();
            l.set_weight(id, 10).unwrap();
            l.move_to_currency(id, a).unwrap();
        }
        let n = 20_000u32;
        sim.run(&mut l, n).unwrap();
        let user_b = sim.service()[1] / Q;
        assert!(
            within_binomial(user_b as f64, f64::from(n), 0.5, 1.0),
            "with {extra} extra threads in A, B got {user_b} of {n}"
        );
    }
}

#[test]
fn nested_currencies_isolate_inflation() {
    // BASE funds A (300) and B (100); A funds A1 (50 A-tickets) and A2
    // (50). Inflating A1 leaves A2 at 3/8 and B at 1/4 of the machine.
    let mut l = Lottery::new(Q, 1, 17);
    let a = l.create_currency(BASE, 300).unwrap();
    let b = l.create_currency(BASE, 100).unwrap();
    let a1 = l.create_currency(a, 50).unwrap();
    let a2 = l.create_currency(a, 50).unwrap();
    l.add_in_currency(0, 5, a1).unwrap();
    l.add_in_currency(1, 5, a2).unwrap();
    l.add_in_currency(2, 5, b).unwrap();
    for id in 3..6 {
        l.add_in_currency(id, 40, a1).unwrap();
    }
    let n = 16_000u32;
    let mut got = [0u64; 6];
    for _ in 0..n {
        let id = l.pick(0).unwrap();
        got[id as usize] += 1;
        l.charge(id, 0, Q, RunEnd::Preempted).unwrap();
    }
    let n = f64::from(n);
    assert!(within_binomial(got[1] as f64, n, 3.0 / 8.0, 1.0), "{got:?}");
    assert!(within_binomial(got[2] as f64, n, 1.0 / 4.0, 1.0), "{got:?}");
    // Inside A1 the five tickets are worth 5/125 of A1's 3/8.
    assert!(
        within_binomial(got[0] as f64, n, 3.0 / 8.0 * 5.0 / 125.0, 1.0),
        "{got:?}"
    );
    // A currency whose threads all sleep is inactive: its funding does not
    // count, so the others share everything.
    l.sleep(2).unwrap();
    for _ in 0..200 {
        let id = l.pick(0).unwrap();
        assert_ne!(id, 2);
        l.charge(id, 0, Q, RunEnd::Preempted).unwrap();
    }
    assert_eq!(l.currencies[&b].issue, 0);
    // Destroying needs an empty currency.
    assert_eq!(l.destroy_currency(b), Err(SchedError::CurrencyInUse));
    l.remove(2).unwrap();
    l.destroy_currency(b).unwrap();
    assert_eq!(l.destroy_currency(b), Err(SchedError::UnknownCurrency));
}

#[test]
fn compensation_restores_share_for_partial_users() {
    // Equal tickets; thread 0 uses a fraction f of every quantum it wins.
    // With its value inflated by 1/f until it next wins, it wins with
    // probability 1/(1+f) and the service evens out: the difference is
    // q((1+f)W - n) for W ~ Bin(n, 1/(1+f)).
    for (percent, seed) in [(20u8, 11u64), (50, 12), (5, 13)] {
        let mut l = Lottery::new(Q, 1, seed);
        let threads = [
            SimThread {
                weight: 1,
                behaviour: Behaviour::Burst { percent, sleep: 0 },
            },
            cpu(1),
        ];
        let n = 30_000u32;
        let s = sim::run(&mut l, 1, n, &threads).unwrap().service();
        let f = f64::from(percent) / 100.0;
        let wins = s[0] as f64 / (f * Q as f64);
        assert!(
            within_binomial(wins, f64::from(n), 1.0 / (1.0 + f), 1.0),
            "f {f}: {wins} wins of {n}; service {s:?}"
        );
        let ratio = s[0] as f64 / s[1] as f64;
        assert!((ratio - 1.0).abs() < 0.1, "f {f}: ratio {ratio}");
    }
}

#[test]
fn transfers_lend_tickets_while_blocked() {
    let mut l = Lottery::new(Q, 1, 5);
    for (id, w) in [(0, 1), (1, 1), (2, 8), (3, 10)] {
        l.add(id, w).unwrap();
    }
    // Thread 2 (8 tickets) blocks on thread 0; thread 3 (10) blocks on 2.
    l.sleep(2).unwrap();
    l.sleep(3).unwrap();
    l.transfer(2, 0).unwrap();
    l.transfer(3, 2).unwrap();
    assert_eq!(l.transfer(0, 3), Err(SchedError::NotSleeping));
    l.sleep(0).unwrap();
    assert_eq!(l.transfer(0, 3), Err(SchedError::TransferCycle));
    l.wake(0).unwrap();
    let n = 10_000u32;
    let mut got = [0u64; 4];
    for _ in 0..n {
        let id = l.pick(0).unwrap();
        got[id as usize] += 1;
        l.charge(id, 0, Q, RunEnd::Preempted).unwrap();
    }
    // 0 holds 1 + 8 + 10 of 20 tickets through the chain.
    assert!(
        within_binomial(got[0] as f64, f64::from(n), 19.0 / 20.0, 1.0),
        "{got:?}"
    );
    assert_eq!(got[2] + got[3], 0);
    // 2 wakes: its loan returns (3's loan to 2 stays and now helps 2).
    l.wake(2).unwrap();
    let mut got = [0u64; 4];
    for _ in 0..n {
        let id = l.pick(0).unwrap();
        got[id as usize] += 1;
        l.charge(id, 0, Q, RunEnd::Preempted).unwrap();
    }
    assert!(
        within_binomial(got[2] as f64, f64::from(n), 18.0 / 20.0, 1.0),
        "{got:?}"
    );
    assert_eq!(l.take_back(2), Err(SchedError::NotLending));
    l.take_back(3).unwrap();
    assert_eq!(l.take_back(3), Err(SchedError::NotLending));
    // A borrower that blocks takes its lenders' tickets out with it.
    l.transfer(3, 1).unwrap();
    l.sleep(1).unwrap();
    for _ in 0..50 {
        let id = l.pick(0).unwrap();
        assert!(id == 0 || id == 2, "{id}");
        l.charge(id, 0, Q, RunEnd::Preempted).unwrap();
    }
    // Removing a borrower ends its loans.
    l.remove(1).unwrap();
    assert_eq!(l.take_back(3), Err(SchedError::NotLending));
}

#[test]
fn p_cores_feasible_shares_follow_tickets() {
    // Draws only among idle threads would drift toward equal shares on P
    // cores (1:1:2 on two cores gives about 1.17:1.17:0.83 of the ideal);
    // credits for wins while running keep every quantum backed by a fair
    // draw.
    let cases: [(&[u32], usize); 5] = [
        (&[1, 2, 3, 4, 5, 6, 7, 8], 4),
        (&[1, 1, 2], 2),
        (&[3, 2, 2, 1, 1], 2),
        (&[5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2], 8),
        (&[1, 1, 1, 1, 10, 4, 7], 2),
    ];
    for (weights, p) in cases {
        for mode in [Mode::Lockstep, Mode::Staggered] {
            for seed in [21, 22] {
                let mut l = Lottery::new(Q, p, seed);
                let threads: Vec<SimThread> = weights.iter().map(|&w| cpu(w)).collect();
                let s = sim::run_mode(&mut l, p, mode, 3000, &threads).unwrap();
                assert_shares(
                    &s,
                    p,
                    &alloc::format!("{weights:?} on {p} {mode:?} seed {seed}"),
                );
            }
        }
    }
}

#[test]
fn p_cores_random_mixes_follow_tickets() {
    for seed in 0..12u64 {
        let p = [2usize, 4, 8][seed as usize % 3];
        let n = p + 1 + (seed as usize * 5) % 9;
        let weights: Vec<u32> = (0..n)
            .map(|i| 1 + ((i as u64 * 11 + seed * 7) % 23) as u32)
            .collect();
        let mode = if seed % 2 == 0 {
            Mode::Lockstep
        } else {
            Mode::Staggered
        };
        let mut l = Lottery::new(Q, p, seed);
        let threads: Vec<SimThread> = weights.iter().map(|&w| cpu(w)).collect();
        let s = sim::run_mode(&mut l, p, mode, 1500, &threads).unwrap();
        assert_shares(&s, p, &alloc::format!("{weights:?} on {p} {mode:?}"));
    }
}

#[test]
fn infeasible_weight_gets_exactly_one_core() {
    for mode in [Mode::Lockstep, Mode::Staggered] {
        let weights = [100, 1, 1, 1, 1];
        let mut l = Lottery::new(Q, 4, 9);
        let threads: Vec<SimThread> = weights.iter().map(|&w| cpu(w)).collect();
        let rounds = 3000u32;
        let s = sim::run_mode(&mut l, 4, mode, rounds, &threads).unwrap();
        assert_eq!(s.service()[0], u64::from(rounds) * Q, "{mode:?}");
        // The rest share three cores by tickets (here evenly).
        assert_shares(&s, 4, "100:1:1:1:1");
    }
    // Two capped threads on 3 cores; the third core is shared 2:1.
    let mut l = Lottery::new(Q, 3, 4);
    let s = sim::run(&mut l, 3, 3000, &[cpu(50), cpu(40), cpu(2), cpu(1)]).unwrap();
    assert_eq!(&s.service()[..2], &[3000 * Q, 3000 * Q]);
    assert_shares(&s, 3, "50:40:2:1");
}

#[test]
fn sleepers_and_partial_users_on_p_cores() {
    let threads = [
        SimThread {
            weight: 3,
            behaviour: Behaviour::Periodic { run: 4, sleep: 3 },
        },
        SimThread {
            weight: 2,
            behaviour: Behaviour::Burst {
                percent: 60,
                sleep: 2,
            },
        },
        cpu(1),
        cpu(2),
        cpu(4),
    ];
    let mut l = Lottery::new(Q, 2, 31);
    // The simulator checks: never on two cores, never a sleeper, no idle
    // core while a thread waits.
    sim::run_mode(&mut l, 2, Mode::Staggered, 3000, &threads).unwrap();
}

#[test]
fn imported_debt_is_paid_as_credits() {
    let mut l = Lottery::new(Q, 1, 8);
    l.add(1, 1).unwrap();
    l.add(2, 1).unwrap();
    let mut snap = l.export();
    // Thread 2 is owed 5 quanta: lag = -owed * VT_SCALE / weight.
    let owed = i128::from(5 * Q) * sched_api::VT_SCALE as i128;
    for t in &mut snap.threads {
        if t.id == 2 {
            t.vtime = snap.global_vtime - owed;
        }
    }
    // Its ideal grows by half of what it runs meanwhile, so it runs 10
    // quanta in a row ...
    let mut m = Lottery::from_snapshot(Q, 1, 8, snap).unwrap();
    for _ in 0..10 {
        let id = m.pick(0).unwrap();
        assert_eq!(id, 2);
        m.charge(id, 0, Q, RunEnd::Preempted).unwrap();
    }
    // ... after which its lag is back to about zero.
    let r = m.record(2).unwrap();
    let lag = r.vtime - m.export().global_vtime;
    assert!(
        lag.unsigned_abs() <= sched_api::VT_SCALE * u128::from(Q),
        "{lag}"
    );
}

/// Every imported thread owed service gets the credits of its own debt
/// and weight (`credit_debts` keeps the gain of the first weights it meets:
/// threads of twelve weights, interleaved, on 1 and 3 cores).
#[test]
fn imported_credits_follow_each_threads_debt_and_weight() {
    for cores in [1, 3] {
        let mut snap = Snapshot::default();
        for id in 0..40u32 {
            let weight = 1 + id % 12;
            let owed = i128::from(id % 7) * i128::from(Q) * sched_api::VT_SCALE as i128 * 20;
            snap.threads.push(sched_api::ThreadRecord {
                id,
                weight,
                state: ThreadState::Runnable,
                service_ns: 0,
                vtime: -owed / i128::from(weight),
            });
        }
        let m = Lottery::from_snapshot(Q, cores, 8, snap.clone()).unwrap();
        let total: u64 = snap.threads.iter().map(|t| u64::from(t.weight)).sum();
        let mut credited = 0;
        for r in &snap.threads {
            let t = m.get(r.id).unwrap();
            let e = m.ledger.effective(t.weight);
            let owed_ns = sched_api::mul_div(
                r.vtime.unsigned_abs(),
                e.num,
                e.den.saturating_mul(sched_api::VT_SCALE),
            );
            let gain = 1.0 - cores as f64 * e.as_f64() / m.ledger.total_effective().as_f64();
            let want = if r.vtime >= 0 || gain <= 0.0 {
                0
            } else {
                (owed_ns as f64 / Q as f64 / gain) as i32
            };
            assert_eq!(t.credit, want, "thread {} of {total} tickets", r.id);
            credited += usize::from(want > 0);
        }
        assert!(credited > 20, "{credited} threads credited");
    }
}

#[test]
fn errors_not_panics() {
    assert_eq!(
        Lottery::try_new(0, 1, 1).unwrap_err(),
        SchedError::BadQuantum
    );
    assert_eq!(Lottery::try_new(1, 0, 1).unwrap_err(), SchedError::BadCores);
    let mut l = Lottery::new(Q, 2, 1);
    assert_eq!(l.add(1, 0), Err(SchedError::ZeroWeight));
    l.add(1, 1).unwrap();
    assert_eq!(l.add(1, 2), Err(SchedError::DuplicateThread));
    assert_eq!(
        l.charge(1, 0, 1, RunEnd::Preempted),
        Err(SchedError::NotRunning)
    );
    assert_eq!(l.transfer(1, 1), Err(SchedError::NotSleeping));
    assert_eq!(l.transfer(1, 7), Err(SchedError::NotSleeping));
    assert_eq!(l.remove(5), Err(SchedError::UnknownThread));
    assert_eq!(l.create_currency(77, 1), Err(SchedError::UnknownCurrency));
    assert_eq!(l.create_currency(BASE, 0), Err(SchedError::ZeroWeight));
    assert_eq!(
        l.add_in_currency(2, 1, 77),
        Err(SchedError::UnknownCurrency)
    );
    assert_eq!(l.fund(BASE, 3), Err(SchedError::UnknownCurrency));
    assert_eq!(l.destroy_currency(BASE), Err(SchedError::UnknownCurrency));
    assert_eq!(l.move_to_currency(1, 77), Err(SchedError::UnknownCurrency));
    assert_eq!(l.move_to_currency(9, BASE), Err(SchedError::UnknownThread));
    assert_eq!(l.try_pick(sched_api::MAX_CORES), Err(SchedError::BadCore));
    assert_eq!(l.pick(0), Some(1));
    assert_eq!(l.try_pick(0), Err(SchedError::CoreBusy));
    assert_eq!(l.sleep(1), Err(SchedError::AlreadyRunning));
    assert_eq!(l.transfer(1, 1), Err(SchedError::AlreadyRunning));
    assert_eq!(l.wake(1), Err(SchedError::NotSleeping));
    l.charge(1, 0, 10, RunEnd::Blocked).unwrap();
    assert_eq!(l.sleep(1), Err(SchedError::AlreadySleeping));
    assert_eq!(l.transfer(1, 1), Err(SchedError::TransferCycle));
    assert_eq!(l.transfer(1, 9), Err(SchedError::UnknownThread));
    assert!(l.import(Snapshot::default()).is_ok());
    assert!(l.is_empty());
    // Tiny partial uses are compensated up to the cap, not overflowed.
    l.add(3, u32::MAX).unwrap();
    l.add(4, 1).unwrap();
    for _ in 0..100 {
        let id = l.pick(1).unwrap();
        l.charge(id, 1, 1, RunEnd::Yielded).unwrap();
    }
}

#[test]
fn a_thread_is_two_cache_lines_and_a_pick_reads_the_first() {
    use core::mem::{align_of, offset_of, size_of};
    assert_eq!(align_of::<Thread>(), 64);
    assert_eq!(size_of::<Option<Thread>>(), 128);
    for end in [
        offset_of!(Thread, state) + size_of::<ThreadState>(),
        offset_of!(Thread, comp) + 16,
        offset_of!(Thread, vtime) + 16,
        offset_of!(Thread, id) + 4,
        offset_of!(Thread, credit) + 4,
        offset_of!(Thread, lent_to) + size_of::<Option<ThreadId>>(),
    ] {
        assert!(end <= 64, "{end}");
    }
}

#[test]
fn arbitrary_ids_and_cores() {
    // Ids anywhere in u32, the last core id; errors as before.
    // (Two cores: no thread is capped, so picks are draws.)
    let mut l = Lottery::new(Q, 2, 3);
    let ids = [u32::MAX, 0, 1 << 31, 77_777];
    for (i, &id) in ids.iter().enumerate() {
        l.add(id, 1 + i as u32).unwrap();
    }
    let last = sched_api::MAX_CORES - 1;
    let id = l.try_pick(last).unwrap().unwrap();
    assert_eq!(l.try_pick(last), Err(SchedError::CoreBusy));
    // The table of cores is now as long as it gets: past it, no pick.
    assert_eq!(l.pick(last), None);
    assert_eq!(l.pick(sched_api::MAX_CORES), None);
    assert_eq!(l.pick(usize::MAX), None);
    assert_eq!(
        l.charge(id, 0, Q, RunEnd::Preempted),
        Err(SchedError::NotRunning)
    );
    assert_eq!(
        l.charge(12, last, Q, RunEnd::Preempted),
        Err(SchedError::UnknownThread)
    );
    let other = ids.iter().copied().find(|&x| x != id).unwrap();
    assert_eq!(
        l.charge(other, last, Q, RunEnd::Preempted),
        Err(SchedError::NotRunning)
    );
    l.charge(id, last, Q, RunEnd::Preempted).unwrap();
    assert_eq!(
        l.charge(id, last, Q, RunEnd::Preempted),
        Err(SchedError::NotRunning)
    );
    // Every id runs, and stays known by its own id.
    let mut seen = BTreeSet::new();
    for _ in 0..400 {
        let id = l.pick(5).unwrap();
        seen.insert(id);
        l.charge(id, 5, Q, RunEnd::Preempted).unwrap();
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [0, 77_777, 1 << 31, u32::MAX]
    );
    // A removed thread's slot is reused by the next one added.
    l.remove(1 << 31).unwrap();
    l.add(5, 2).unwrap();
    assert_eq!(l.len(), 4);
    assert_eq!(l.record(1 << 31), None);
    assert_eq!(l.record(5).map(|r| r.weight), Some(2));
}

#[test]
fn capped_threads_start_in_id_order() {
    // Three threads on four cores are all capped (one core each): a free
    // core takes the lowest id among them, as with the ordered set.
    let mut l = Lottery::new(Q, 4, 1);
    for id in [900, 5, u32::MAX] {
        l.add(id, 1).unwrap();
    }
    assert_eq!(l.pick(0), Some(5));
    assert_eq!(l.pick(1), Some(900));
    assert_eq!(l.pick(2), Some(u32::MAX));
    assert_eq!(l.pick(3), None);
    l.charge(900, 1, Q, RunEnd::Preempted).unwrap();
    l.charge(5, 0, Q, RunEnd::Preempted).unwrap();
    assert_eq!(l.pick(3), Some(5));
    assert_eq!(l.pick(0), Some(900));
}

#[test]
fn full_quantum_charges_follow_weight_changes() {
    // The virtual time of a full quantum is kept per thread; a new weight
    // (or a new cap) must not charge the old one.
    let mut l = Lottery::new(Q, 1, 2);
    for id in 0..3 {
        l.add(id, 1).unwrap();
    }
    let step = |l: &mut Lottery, weight: i128| {
        let id = l.pick(0).unwrap();
        let before = l.record(id).unwrap().vtime;
        l.charge(id, 0, Q, RunEnd::Preempted).unwrap();
        let got = l.record(id).unwrap().vtime - before;
        assert_eq!(
            got,
            i128::from(Q) * VT_SCALE as i128 / weight,
            "thread {id}"
        );
        id
    };
    for _ in 0..6 {
        step(&mut l, 1);
    }
    for id in 0..3 {
        l.set_weight(id, 4).unwrap();
    }
    for _ in 0..6 {
        step(&mut l, 4);
    }
    // A partial quantum is charged at the current weight too.
    let id = l.pick(0).unwrap();
    let before = l.record(id).unwrap().vtime;
    l.charge(id, 0, Q / 2, RunEnd::Yielded).unwrap();
    let got = l.record(id).unwrap().vtime - before;
    assert_eq!(got, i128::from(Q / 2) * VT_SCALE as i128 / 4);
}

#[test]
fn huge_tickets_widen_the_draw_and_narrow_back() {
    // u32::MAX tickets with the largest compensation take the draw's total
    // past 64 bits; the draw then works in 128 bits, and returns to 64
    // once the total fits again.
    let mut l = Lottery::new(Q, 1, 6);
    l.add(1, u32::MAX).unwrap();
    l.add(2, u32::MAX).unwrap();
    l.add(3, 1).unwrap();
    assert!(!l.tree.is_wide());
    // Yielding after 1 ns, the big threads get the largest compensation:
    // 2^32 tickets * 2^20 * 2^16 each.
    let mut rounds = 0;
    while l.slots.iter().flatten().filter(|t| t.comp.0 > 1).count() < 2 && rounds < 1000 {
        let id = l.pick(0).unwrap();
        l.charge(id, 0, 1, RunEnd::Yielded).unwrap();
        rounds += 1;
    }
    assert!(l.tree.is_wide(), "{:?}", l.tree.total());
    // Draws still land by value: the small thread hardly ever.
    let mut small = 0;
    for _ in 0..1000 {
        let id = l.pick(0).unwrap();
        small += u32::from(id == 3);
        l.charge(id, 0, Q, RunEnd::Preempted).unwrap();
    }
    assert!(small <= 5, "{small}");
    // Uncompensated, the total fits in 64 bits again: the tree narrows
    // (at the first update once as many updates as slots have passed).
    l.remove(1).unwrap();
    assert!(!l.tree.is_wide());
}

#[test]
fn a_removed_borrower_leaves_no_loans_behind() {
    let mut l = Lottery::new(Q, 1, 4);
    for id in [1, 2, 3] {
        l.add(id, 1).unwrap();
    }
    l.sleep(1).unwrap();
    l.transfer(1, 2).unwrap();
    l.remove(2).unwrap();
    assert_eq!(l.take_back(1), Err(SchedError::NotLending));
    // A new thread 2 does not inherit the loan: it holds its own ticket
    // only, one of two.
    l.add(2, 1).unwrap();
    let mut got = 0u32;
    for _ in 0..4000 {
        let id = l.pick(0).unwrap();
        got += u32::from(id == 2);
        l.charge(id, 0, Q, RunEnd::Preempted).unwrap();
    }
    assert!(within_binomial(f64::from(got), 4000.0, 0.5, 1.0), "{got}");
    assert!(l.lenders.is_empty());
}

#[test]
fn an_idle_only_draw_skips_every_ticket_of_a_running_thread() {
    // One core: thread 2 holds 50 tickets and 50 more lent by the sleeping
    // thread 3; thread 1 holds 1. With 2 running, a draw among the idle
    // threads can only land on 1, and the tree is as it was after.
    let mut l = Lottery::new(Q, 1, 5);
    for (id, w) in [(1, 1), (2, 50), (3, 50)] {
        l.add(id, w).unwrap();
    }
    l.sleep(3).unwrap();
    l.transfer(3, 2).unwrap();
    while l.pick(0) != Some(2) {
        let id = l.running_on(0).and_then(|s| l.at(s)).map(|t| t.id).unwrap();
        l.charge(id, 0, Q, RunEnd::Preempted).unwrap();
    }
    let values = |l: &Lottery| (0..3).map(|s| l.tree.get(s)).collect::<Vec<_>>();
    let before = values(&l);
    for i in 1..=200 {
        let slot = l.draw_idle().expect("thread 1 is idle");
        assert_eq!(l.at(slot).map(|t| (t.id, t.credit)), Some((1, -i)));
    }
    assert_eq!(values(&l), before);
    l.assert_derived_fresh("after the idle-only draws");
}

/// `rounds` rounds on `cores` cores of `a` and `b` deciding alike: the same
/// thread running on each core (charged a full quantum) or the same pick.
fn same_decisions(
    a: &mut Lottery,
    b: &mut Lottery,
    cores: usize,
    rounds: usize,
) -> Result<(), proptest::test_runner::TestCaseError> {
    for _ in 0..rounds {
        for core in 0..cores {
            let (x, y) = (a.running_on(core), b.running_on(core));
            proptest::prop_assert_eq!(x, y);
            match x.and_then(|s| a.at(s)).map(|t| t.id) {
                Some(id) => {
                    a.charge(id, core, Q, RunEnd::Preempted).unwrap();
                    b.charge(id, core, Q, RunEnd::Preempted).unwrap();
                }
                None => proptest::prop_assert_eq!(a.try_pick(core), b.try_pick(core)),
            }
        }
    }
    Ok(())
}

mod import_at_once {
    //! An import places every thread and settles once; before, each thread
    //! was placed and settled in turn. The state it leaves must be the
    //! same.
    use super::*;
    use proptest::prelude::*;
    use sched_api::ThreadRecord;

    /// The import as it was: a thread listed, placed and settled at a
    /// time, then the debts credited.
    fn import_one_by_one(l: &Lottery, snapshot: &Snapshot) -> Lottery {
        let mut fresh = Lottery::new(l.quantum_ns, l.cores(), 0);
        fresh.rng = l.rng.clone();
        fresh.ledger.set_now(snapshot.global_vtime);
        for r in &snapshot.threads {
            fresh
                .currencies
                .get_mut(&BASE)
                .unwrap()
                .threads
                .insert(r.id);
            let vtime = match r.state {
                ThreadState::Sleeping => snapshot.lag(r),
                _ => r.vtime,
            };
            fresh.place_thread(r.id, r.weight, BASE, r.state, r.service_ns, vtime);
            fresh.settle();
        }
        fresh.credit_debts();
        fresh
    }

    /// What a decision reads, thread by thread, and the ledger's cap.
    fn state(l: &Lottery) -> String {
        let mut threads: Vec<String> = l
            .slots
            .iter()
            .flatten()
            .map(|t| {
                format!(
                    "{} {:?} vt {} credit {} capped {} weight {} own {} comp {:?}",
                    t.id, t.state, t.vtime, t.credit, t.capped, t.weight, t.own, t.comp
                )
            })
            .collect();
        threads.sort();
        let mut capped: Vec<ThreadId> = l
            .capped
            .iter()
            .filter_map(|&s| l.at(s))
            .map(|t| t.id)
            .collect();
        capped.sort_unstable();
        format!(
            "{threads:#?}\ncurrencies {:?}\ncap {:?}\ncapped {capped:?}\nready {:?}\nowed {:?}\nexport {:?}",
            l.currencies,
            l.ledger.cap(),
            l.capped_ready.iter().map(|&(id, _)| id).collect::<Vec<_>>(),
            l.owed,
            l.export(),
        )
    }

    fn snapshot() -> impl Strategy<Value = (usize, Snapshot)> {
        let weight = prop_oneof![6 => 1u32..20, 1 => 100u32..5000, 1 => Just(u32::MAX)];
        let record = (weight, 0u8..4, -40i128..40);
        (1usize..=4, proptest::collection::vec(record, 0..24)).prop_map(|(cores, rs)| {
            let global = 7 * VT_SCALE as i128 * i128::from(Q);
            let mut core = 0;
            let threads = rs
                .into_iter()
                .enumerate()
                .map(|(i, (weight, state, lag))| {
                    let state = match state {
                        0 if core < cores => {
                            core += 1;
                            ThreadState::Running(core - 1)
                        }
                        1 => ThreadState::Sleeping,
                        _ => ThreadState::Runnable,
                    };
                    let lag = lag * VT_SCALE as i128 * i128::from(Q) / 4 / i128::from(weight);
                    ThreadRecord {
                        id: (i as u32) * 3 + 1,
                        weight,
                        state,
                        service_ns: i as u64,
                        vtime: global + lag,
                    }
                })
                .collect();
            (
                cores,
                Snapshot {
                    global_vtime: global,
                    threads,
                },
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Importing at once leaves what importing one by one left: every
        /// thread's weight, credit, cap and ready set, and the decisions
        /// that follow.
        #[test]
        fn import_at_once_is_import_one_by_one((cores, snap) in snapshot(), seed in any::<u64>()) {
            let l = Lottery::new(Q, cores, seed);
            let mut old = import_one_by_one(&l, &snap);
            let mut new = l.clone();
            new.import(snap.clone()).unwrap();
            new.assert_derived_fresh("after the import");
            prop_assert_eq!(state(&old), state(&new));
            same_decisions(&mut old, &mut new, cores, 30)?;
            prop_assert_eq!(state(&old), state(&new));
        }
    }
}
