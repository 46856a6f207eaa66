//! The thread state machine with the real policies.

use super::*;

const Q: u64 = 1_000_000;

fn nothing(_: usize) {}

fn no_memory(_: u64) -> u64 {
    0
}

const STRIDE: PolicyKind = PolicyKind::new("stride");
const LOTTERY: PolicyKind = PolicyKind::new("lottery");
const RR: PolicyKind = PolicyKind::new("rr");

/// Every registered policy.
fn every_kind() -> impl Iterator<Item = PolicyKind> {
    sched_registry::POLICIES.iter().map(|p| p.kind)
}

/// A fresh policy of `kind` with quantum `quantum_ns`, from the registry.
fn build(kind: PolicyKind, quantum_ns: u64, cores: usize, seed: u64) -> Box<dyn Policy> {
    let params = sched_registry::Params {
        quantum_ns,
        cores,
        seed,
    };
    sched_registry::build(kind, &params).unwrap()
}

fn table(kind: PolicyKind) -> Table {
    let policy = build(kind, Q, 2, 7);
    let mut t = Table::new();
    t.set_policy(policy).unwrap();
    t
}

fn spawn(t: &mut Table, weight: u32) -> usize {
    t.spawn(nothing, 0, weight, false, |tid| {
        let mut ctx = UserContext::ZERO;
        ctx.rdi = tid as u64;
        ctx
    })
    .expect("a free slot")
}

#[test]
fn spawn_fills_slots_and_gives_each_its_context() {
    let mut t = table(RR);
    let a = spawn(&mut t, 1);
    let b = spawn(&mut t, 3);
    assert_eq!((a, b), (0, 1));
    assert_eq!(t.threads[b].ctx.rdi, 1);
    assert_eq!(t.live(), 2);
    assert_eq!(t.state(a), Some(ThreadState::Runnable));
    for _ in 2..MAX_THREADS {
        spawn(&mut t, 1);
    }
    assert!(t
        .spawn(nothing, 0, 1, false, |_| UserContext::ZERO)
        .is_none());
}

#[test]
fn a_thread_runs_on_one_core_at_a_time_and_is_charged_what_it_ran() {
    let mut t = table(RR);
    let a = spawn(&mut t, 1);
    assert_eq!(t.start(0, 100), Some(a));
    assert_eq!(
        t.start(1, 100),
        None,
        "its only thread already runs on core 0"
    );
    assert_eq!(t.current(0), a);
    assert!(t.running_anywhere());
    assert_eq!(t.stop(0, a, 350, RunEnd::Preempted, &no_memory), 250);
    assert_eq!(t.current(0), NONE);
    assert_eq!(t.state(a), Some(ThreadState::Runnable));
    let mut out = [(0, 0, 0, ThreadState::Runnable); 4];
    assert_eq!(t.snapshot(&mut out).0, 1);
    assert_eq!(out[0].2, 250);
}

#[test]
fn sleepers_wake_on_time_and_on_a_word_and_not_before() {
    let mut t = table(STRIDE);
    let a = spawn(&mut t, 1);
    let b = spawn(&mut t, 1);
    let word = core::cell::Cell::new(5u64);
    let read = |_: u64| word.get();
    t.start(0, 0);
    t.start(1, 0);
    t.wake_at(a, 1_000);
    t.watch(b, 0x1000, 5);
    t.stop(0, a, 10, RunEnd::Blocked, &read);
    t.stop(1, b, 10, RunEnd::Blocked, &read);
    assert_eq!(t.state(a), Some(ThreadState::Sleeping));
    assert_eq!(t.state(b), Some(ThreadState::Sleeping));
    assert_eq!(t.waits().count(), 2);
    t.wake_due(999, &read);
    assert_eq!(t.start(0, 999), None, "nobody is due yet");
    t.wake_due(1_000, &read);
    assert_eq!(t.state(a), Some(ThreadState::Runnable));
    assert_eq!(t.state(b), Some(ThreadState::Sleeping));
    word.set(6);
    t.wake_due(1_001, &read);
    assert_eq!(t.state(b), Some(ThreadState::Runnable));
    assert_eq!(
        t.waits().count(),
        0,
        "conditions are cleared once they wake"
    );
}

#[test]
fn parked_cores_come_back_one_for_each_sleepers_deadline() {
    let mut t = table(RR);
    let [a, b, c, d] = [(); 4].map(|_| spawn(&mut t, 1));
    for (core, (tid, at)) in [(a, 1_000), (b, 1_500), (c, 9_000)].into_iter().enumerate() {
        t.start(core, 0);
        t.wake_at(tid, at);
        t.stop(core, tid, 10, RunEnd::Blocked, &no_memory);
    }
    t.wake_due(20, &no_memory);
    // The first core to park comes back for `a`, the next for `b`; `c` is
    // due after a whole park, so the third parks its whole length, as does
    // a fourth (nobody left due before its park ends).
    assert_eq!(t.park_until(0, 20, 2_000), 1_000);
    assert_eq!(t.park_until(1, 30, 2_000), 1_500);
    assert_eq!(t.park_until(2, 40, 2_000), 2_040);
    assert_eq!(t.park_until(3, 50, 500), 550);
    // A sleeper due before those watched gets a core of its own.
    t.start(3, 60);
    t.wake_at(d, 700);
    t.stop(3, d, 70, RunEnd::Blocked, &no_memory);
    assert_eq!(t.park_until(3, 80, 2_000), 700);
    // Core 0 back for `a`, parks again: for nobody before `c`.
    t.wake_due(1_000, &no_memory);
    assert_eq!(t.state(a), Some(ThreadState::Runnable));
    assert_eq!(t.park_until(0, 1_001, 2_000), 3_001);
    // `b` woken too: the next core to park comes back for `c`, the one
    // after it does not.
    t.wake_due(1_500, &no_memory);
    assert_eq!(t.park_until(1, 1_501, 8_000), 9_000);
    assert_eq!(t.park_until(2, 1_502, 8_000), 9_502);
    // Nobody asleep: whole parks.
    t.wake_due(9_000, &no_memory);
    assert_eq!(t.park_until(1, 9_001, 2_000), 11_001);
}

#[test]
fn only_sleepers_are_looked_at_and_each_sleep_is_seen_again() {
    // The `waiting` mask: the last of every slot sleeps, wakes, and
    // sleeps again; each sleep wakes on time, not before.
    let mut t = table(STRIDE);
    let all: Vec<usize> = (0..MAX_THREADS).map(|_| spawn(&mut t, 1)).collect();
    let last = *all.last().unwrap();
    let mut now = 0;
    for round in 1..=2u64 {
        // Run each thread in turn (charged 1 us each) until `last` runs.
        loop {
            let next = t.start(0, now).unwrap();
            now += 1_000;
            if next == last {
                break;
            }
            t.stop(0, next, now, RunEnd::Preempted, &no_memory);
        }
        t.wake_at(last, now + 100);
        t.stop(0, last, now, RunEnd::Blocked, &no_memory);
        t.wake_due(now + 99, &no_memory);
        assert_eq!(t.state(last), Some(ThreadState::Sleeping), "round {round}");
        t.wake_due(now + 100, &no_memory);
        assert_eq!(t.state(last), Some(ThreadState::Runnable), "round {round}");
        assert!(
            t.waiting.is_empty(),
            "round {round}: a woken thread leaves the set"
        );
    }
}

#[test]
fn a_condition_met_on_the_way_to_sleep_is_not_lost() {
    // Another core's dispatch sees the deadline pass while the thread is
    // still running (it has not been charged as blocked yet).
    let mut t = table(RR);
    let a = spawn(&mut t, 1);
    t.start(0, 0);
    t.wake_at(a, 50);
    t.wake_due(60, &no_memory);
    assert_eq!(t.state(a), Some(ThreadState::Running(0)));
    t.stop(0, a, 70, RunEnd::Blocked, &no_memory);
    assert_eq!(
        t.state(a),
        Some(ThreadState::Runnable),
        "woken as it blocked"
    );
}

#[test]
fn unblock_before_block_makes_block_return_at_once() {
    let mut t = table(LOTTERY);
    let a = spawn(&mut t, 1);
    t.start(0, 0);
    assert!(t.unblock(a), "a live thread");
    assert!(!t.block(a), "the unblock is consumed");
    assert!(t.block(a), "and only once");
    // Unblocked between deciding to block and being charged.
    t.unblock(a);
    t.stop(0, a, 5, RunEnd::Blocked, &no_memory);
    assert_eq!(t.state(a), Some(ThreadState::Runnable));
    // Unblocked while asleep.
    t.start(0, 5);
    assert!(t.block(a));
    t.stop(0, a, 6, RunEnd::Blocked, &no_memory);
    assert_eq!(t.state(a), Some(ThreadState::Sleeping));
    t.unblock(a);
    assert_eq!(t.state(a), Some(ThreadState::Runnable));
    assert!(!t.unblock(MAX_THREADS) && !t.unblock(5), "no such thread");
}

#[test]
fn exit_frees_the_slot_and_wakes_the_joiner() {
    let mut t = table(STRIDE);
    let main = spawn(&mut t, 1);
    let child = spawn(&mut t, 1);
    t.start(0, 0);
    t.start(1, 0);
    assert!(t.join(child, main), "the child is alive: wait");
    assert!(t.block(main));
    t.stop(0, main, 1, RunEnd::Blocked, &no_memory);
    assert_eq!(t.state(main), Some(ThreadState::Sleeping));
    t.exit(child);
    t.stop(1, child, 2, RunEnd::Blocked, &no_memory);
    assert_eq!(t.threads[child].life, Life::Free);
    assert_eq!(t.state(child), None, "the policy forgot it");
    assert_eq!(t.state(main), Some(ThreadState::Runnable));
    assert!(!t.join(child, main), "nothing left to wait for");
    assert_eq!(t.live(), 1);
}

#[test]
fn swaps_keep_every_thread_its_weight_and_a_running_one_running() {
    for (from, to) in [(STRIDE, LOTTERY), (LOTTERY, RR), (RR, STRIDE)] {
        let mut t = table(from);
        for w in 1..=4 {
            spawn(&mut t, w);
        }
        // One thread sleeps, one was charged, one runs across the swap.
        let a = t.start(0, 0).unwrap();
        t.wake_at(a, 10_000);
        t.stop(0, a, 100, RunEnd::Blocked, &no_memory);
        let b = t.start(0, 100).unwrap();
        t.stop(0, b, 300, RunEnd::Preempted, &no_memory);
        let running = t.start(1, 300).unwrap();
        let mut before = [(0, 0, 0, ThreadState::Runnable); 8];
        let (n, _, _) = t.snapshot(&mut before);
        let next = table(to).policy.take().unwrap();
        t.set_policy(next).unwrap();
        let mut after = [(0, 0, 0, ThreadState::Runnable); 8];
        let (m, kind, swaps) = t.snapshot(&mut after);
        assert_eq!((m, kind, swaps), (n, to, 1));
        assert_eq!(before[..n], after[..m], "{from:?} -> {to:?}");
        assert_eq!(t.state(running), Some(ThreadState::Running(1)));
        // It is charged by the new policy when it stops.
        let service = |t: &Table| {
            t.policy
                .as_ref()
                .unwrap()
                .record(running as u32)
                .unwrap()
                .service_ns
        };
        let was = service(&t);
        t.stop(1, running, 800, RunEnd::Preempted, &no_memory);
        assert_eq!(service(&t), was + 500);
        t.wake_due(10_000, &no_memory);
        assert_eq!(
            t.state(a),
            Some(ThreadState::Runnable),
            "the sleeper still wakes"
        );
    }
}

#[test]
fn only_a_swap_counts_as_one_not_the_first_policy_nor_a_reseat() {
    let swaps = |t: &Table| t.snapshot(&mut []).2;
    let mut t = table(STRIDE);
    spawn(&mut t, 3);
    assert_eq!(swaps(&t), 0, "the first policy");
    let old = t.reseat_policy(build(STRIDE, Q, 2, 8)).unwrap();
    assert_eq!(
        old.map(|p| p.kind()),
        Some(STRIDE),
        "the reseat hands back the old"
    );
    assert_eq!(swaps(&t), 0, "a reseat");
    let old = t.set_policy(build(LOTTERY, Q, 2, 7)).unwrap();
    assert_eq!(
        old.map(|p| p.kind()),
        Some(STRIDE),
        "the swap hands back the old"
    );
    assert_eq!(swaps(&t), 1, "a swap");
    assert_eq!(t.live(), 1, "carrying the thread");
}

/// The base-tickets weight of each of `tids` in `t`'s policy.
fn weights(t: &Table, tids: &[usize]) -> Vec<u32> {
    let p = t.policy.as_ref().unwrap();
    tids.iter()
        .map(|&tid| p.record(tid as u32).unwrap().weight)
        .collect()
}

#[test]
fn currencies_outlive_a_swap_to_a_policy_without_them_and_come_back() {
    let mut t = table(LOTTERY);
    let (a0, b0, base) = (spawn(&mut t, 1), spawn(&mut t, 1), spawn(&mut t, 100));
    let a = t.create_currency(BASE_CURRENCY, 100).unwrap();
    let b = t.create_currency(BASE_CURRENCY, 100).unwrap();
    assert_eq!((a, b), (1, 2), "the table's own ids");
    t.set_currency(a0, a, 1000).unwrap();
    t.set_currency(b0, b, 10).unwrap();
    assert_eq!(weights(&t, &[a0, b0, base]), [100, 100, 100]);
    // Away: worth what they were in base tickets; no currencies there.
    t.set_policy(build(STRIDE, Q, 2, 7)).unwrap();
    assert_eq!(weights(&t, &[a0, b0, base]), [100, 100, 100]);
    assert_eq!(
        t.create_currency(BASE_CURRENCY, 5),
        Err(SchedError::Unsupported)
    );
    assert_eq!(t.fund_currency(a, 50), Err(SchedError::Unsupported));
    assert_eq!(t.set_currency(base, a, 5), Err(SchedError::Unsupported));
    // Back: in their currencies again, at their face values, and the
    // currencies live in the new policy: a second thread in A halves the
    // first one's worth, and refunding B doubles its thread's.
    t.set_policy(build(LOTTERY, Q, 2, 8)).unwrap();
    assert_eq!(t.currency_of(a0), Some((a, 1000)));
    assert_eq!(t.currency_of(b0), Some((b, 10)));
    assert_eq!(t.currency_of(base), None);
    let a1 = spawn(&mut t, 1);
    t.set_currency(a1, a, 1000).unwrap();
    t.fund_currency(b, 200).unwrap();
    assert_eq!(weights(&t, &[a0, a1, b0, base]), [50, 50, 200, 100]);
    // A reseat (the same policy, another seed) keeps them too.
    t.reseat_policy(build(LOTTERY, Q, 2, 9)).unwrap();
    assert_eq!(weights(&t, &[a0, a1, b0, base]), [50, 50, 200, 100]);
}

#[test]
fn a_thread_started_where_currencies_are_not_joins_its_own_at_a_swap_back() {
    let mut t = table(LOTTERY);
    let x = spawn(&mut t, 1);
    let a = t.create_currency(BASE_CURRENCY, 100).unwrap();
    t.set_currency(x, a, 100).unwrap();
    t.set_policy(build(STRIDE, Q, 2, 7)).unwrap();
    let late = spawn(&mut t, 300);
    assert_eq!(t.set_currency(late, a, 300), Err(SchedError::Unsupported));
    t.remember_currency(late, a, 300);
    assert_eq!(
        weights(&t, &[x, late]),
        [100, 300],
        "its face value meanwhile"
    );
    t.remember_currency(x, 9, 5);
    assert_eq!(
        t.currency_of(x),
        Some((a, 100)),
        "an unknown currency: nothing"
    );
    t.set_policy(build(LOTTERY, Q, 2, 8)).unwrap();
    assert_eq!(t.currency_of(late), Some((a, 300)));
    assert_eq!(weights(&t, &[x, late]), [25, 75], "A's 100, 1:3");
}

#[test]
fn a_thread_started_in_a_currency_joins_it_or_waits_for_it_or_is_not_started() {
    let mut t = table(LOTTERY);
    let a = t.create_currency(BASE_CURRENCY, 100).unwrap();
    let base = spawn(&mut t, 100);
    let x = spawn(&mut t, 7);
    assert!(t.place_in_currency(x, a, 7));
    assert_eq!(t.currency_of(x), Some((a, 7)));
    assert_eq!(weights(&t, &[base, x]), [100, 100], "all of A's 100");
    t.set_policy(build(STRIDE, Q, 2, 7)).unwrap();
    let late = spawn(&mut t, 21);
    assert!(t.place_in_currency(late, a, 21), "started all the same");
    assert_eq!(t.currency_of(late), Some((a, 21)), "remembered");
    assert_eq!(weights(&t, &[late]), [21], "its face value meanwhile");
    // An unknown currency or no tickets: not started, no trace left.
    let live = t.live();
    for (currency, tickets) in [(9, 5), (a, 0)] {
        let gone = spawn(&mut t, 5);
        assert!(!t.place_in_currency(gone, currency, tickets));
        assert_eq!(t.state(gone), None);
        assert_eq!(t.live(), live);
        assert_eq!(t.policy.as_ref().unwrap().len(), live);
    }
    t.set_policy(build(LOTTERY, Q, 2, 8)).unwrap();
    assert_eq!(
        weights(&t, &[base, x, late]),
        [100, 25, 75],
        "A's 100, 7:21"
    );
}

#[test]
fn a_weight_set_where_currencies_are_not_is_in_base_tickets_for_good() {
    let mut t = table(LOTTERY);
    let x = spawn(&mut t, 1);
    let a = t.create_currency(BASE_CURRENCY, 100).unwrap();
    t.set_currency(x, a, 1000).unwrap();
    t.set_policy(build(STRIDE, Q, 2, 7)).unwrap();
    assert!(t.set_weight(x, 30));
    assert_eq!(t.currency_of(x), None, "it left its currency");
    t.set_policy(build(LOTTERY, Q, 2, 8)).unwrap();
    assert_eq!(weights(&t, &[x]), [30]);
    // Under a policy with currencies a weight is in the thread's own.
    let y = spawn(&mut t, 1);
    t.set_currency(y, a, 1000).unwrap();
    assert!(t.set_weight(y, 3000));
    assert_eq!(t.currency_of(y), Some((a, 3000)));
    assert_eq!(weights(&t, &[y]), [100], "all of A's value, alone in it");
}

#[test]
fn bad_currency_calls_are_refused_and_change_nothing() {
    let mut t = table(LOTTERY);
    let x = spawn(&mut t, 4);
    assert_eq!(t.create_currency(7, 10), Err(SchedError::UnknownCurrency));
    assert_eq!(
        t.create_currency(BASE_CURRENCY, 0),
        Err(SchedError::ZeroWeight)
    );
    assert_eq!(
        t.fund_currency(BASE_CURRENCY, 3),
        Err(SchedError::UnknownCurrency)
    );
    assert_eq!(t.fund_currency(1, 3), Err(SchedError::UnknownCurrency));
    let a = t.create_currency(BASE_CURRENCY, 10).unwrap();
    assert_eq!(t.set_currency(x, a, 0), Err(SchedError::ZeroWeight));
    assert_eq!(t.set_currency(x, 9, 1), Err(SchedError::UnknownCurrency));
    assert_eq!(t.set_currency(99, a, 1), Err(SchedError::UnknownThread));
    assert_eq!(t.currency_of(x), None);
    assert_eq!(weights(&t, &[x]), [4]);
}

#[test]
fn an_unspawned_thread_leaves_no_trace() {
    let mut t = table(LOTTERY);
    let kept = spawn(&mut t, 3);
    let gone = spawn(&mut t, 5);
    t.unspawn(gone);
    assert_eq!(t.live(), 1);
    assert_eq!(t.policy.as_ref().unwrap().len(), 1);
    assert_eq!(t.state(gone), None);
    assert_eq!(spawn(&mut t, 7), gone, "its slot is free again");
    // Not a thread that runs.
    let running = t.start(0, 0).unwrap();
    t.unspawn(running);
    assert_eq!(t.live(), 2);
    assert!(t.state(kept).is_some());
}

#[test]
fn a_blocked_lenders_loan_is_given_again_after_a_swap() {
    // Under stride the loan is the table's alone; a swap to lottery gives
    // it, and a reseat of lottery gives it again.
    let mut t = table(STRIDE);
    let holder = spawn(&mut t, 1);
    let waiter = spawn(&mut t, 9);
    let mut now = 0;
    run_until_picked(&mut t, 0, waiter, &mut now);
    now += Q;
    assert!(t.block(waiter));
    t.lend_while_blocked(waiter, holder);
    t.stop(0, waiter, now, RunEnd::Blocked, &no_memory);
    assert_eq!(t.lends, 0, "stride has no loans");
    t.set_policy(build(LOTTERY, Q, 2, 7)).unwrap();
    assert_eq!(t.lends, 1, "given at the swap");
    t.reseat_policy(build(LOTTERY, Q, 2, 8)).unwrap();
    assert_eq!(t.lends, 2, "and at the reseat");
}

#[test]
fn a_blocked_waiter_lends_its_tickets_to_the_holder_under_lottery_only() {
    for kind in every_kind() {
        // One core: the waiter's 9 of 10 tickets are feasible.
        let policy = build(kind, Q, 1, 7);
        let mut t = Table::new();
        t.set_policy(policy).unwrap();
        let holder = spawn(&mut t, 1);
        let waiter = spawn(&mut t, 9);
        let spinner = spawn(&mut t, 10);
        // The waiter runs, finds the lock taken and blocks lending to the holder.
        let mut now = 0;
        for round in 0.. {
            assert!(round < 100, "{kind:?}: the waiter never ran");
            let picked = t.start(0, now);
            if picked == Some(waiter) {
                break;
            }
            let tid = picked.expect("a runnable thread");
            now += Q;
            t.stop(0, tid, now, RunEnd::Preempted, &no_memory);
        }
        assert!(t.block(waiter));
        t.lend_while_blocked(waiter, holder);
        t.stop(0, waiter, now + Q, RunEnd::Blocked, &no_memory);
        let lent = t.lends == 1;
        let transfers = sched_registry::info(kind).unwrap().ticket_transfers;
        assert_eq!(lent, transfers, "{kind:?}");
        if lent {
            // Funded by the waiter, the holder draws with 1 + 9 tickets
            // against the spinner's 10: about half the wins, not 1/11.
            let mut wins = 0;
            for _ in 0..400 {
                let tid = t.start(0, now).expect("runnable threads");
                assert!(tid == holder || tid == spinner);
                wins += usize::from(tid == holder);
                now += Q;
                t.stop(0, tid, now, RunEnd::Preempted, &no_memory);
            }
            assert!((140..=260).contains(&wins), "holder won {wins} of 400");
        }
        // Unlock: the waiter wakes, the loan ends.
        assert!(t.unblock(waiter));
        assert_eq!(t.threads[waiter].lend_to, NONE);
        assert_eq!(t.state(waiter), Some(ThreadState::Runnable));
    }
}

#[test]
fn the_audit_stays_clean_through_runs_sleeps_exits_and_swaps() {
    let mut t = table(STRIDE);
    for w in 1..=6 {
        spawn(&mut t, w);
    }
    let kinds = [LOTTERY, RR, STRIDE];
    for round in 0..30u64 {
        let now = round * 10;
        if let Some(a) = t.start(0, now) {
            t.wake_at(a, now + 25);
            t.stop(0, a, now + 5, RunEnd::Blocked, &no_memory);
        }
        if let Some(b) = t.start(1, now) {
            if round % 7 == 3 {
                t.exit(b);
            }
            t.stop(1, b, now + 5, RunEnd::Preempted, &no_memory);
        }
        t.wake_due(round * 10 + 9, &no_memory);
        if round % 5 == 4 {
            let next = table(kinds[(round / 5) as usize % 3])
                .policy
                .take()
                .unwrap();
            t.set_policy(next).unwrap();
        }
        let audit = t.audit();
        assert_eq!(audit.violations(), 0, "round {round}: {audit:?}");
    }
    assert_eq!(t.audit().audits, 31);
}

#[test]
fn the_audit_sees_a_thread_picked_twice_and_a_lost_one() {
    let mut t = table(RR);
    let a = spawn(&mut t, 1);
    let b = spawn(&mut t, 1);
    // A stale claim: the table believes `a` still runs on core 1.
    t.current[1] = a;
    t.threads[a].on_core = 1;
    assert_eq!(t.start(0, 0), Some(a));
    assert_eq!(t.audit().double_runs, 1);
    // The policy forgets `b` behind the table's back.
    t.policy.as_mut().unwrap().remove(b as u32).unwrap();
    let audit = t.audit();
    assert_eq!((audit.lost, audit.violations()), (1, 2));
}

/// The longest time each thread waited between runs, in ms: 16 CPU-bound
/// threads of four weights and a main thread (1000) that sleeps 200 ms
/// between short runs; the application gets turns on 16 cores at random
/// (as when it shares its cores with others), its policy swapped every
/// `swap_ms`.
fn longest_waits(start: PolicyKind, swap_ms: u64) -> Vec<u64> {
    const QUANTUM: u64 = 4_000_000;
    let make = |kind: PolicyKind, seed: u64| build(kind, QUANTUM, 16, seed);
    let mut t = Table::new();
    t.set_policy(make(start, 1)).unwrap();
    let main = spawn(&mut t, 1000);
    for w in [
        100, 100, 100, 100, 300, 300, 300, 300, 600, 600, 600, 600, 200, 200, 200, 200,
    ] {
        spawn(&mut t, w);
    }
    let (mut last, mut gap) = ([0u64; 17], [0u64; 17]);
    let (mut rng, mut now, mut kind) = (12345u64, 0u64, start);
    let mut next_swap = swap_ms * 1_000_000;
    let mut running: Vec<(usize, usize, u64)> = Vec::new();
    while now < 60_000_000_000 {
        now += QUANTUM / 6;
        running.retain(|&(core, tid, end)| {
            if end > now {
                return true;
            }
            let how = if tid == main {
                t.wake_at(tid, now + 200_000_000);
                RunEnd::Blocked
            } else {
                RunEnd::Preempted
            };
            t.stop(core, tid, end, how, &no_memory);
            false
        });
        if now >= next_swap {
            // The next registered policy, round the list.
            let all: Vec<PolicyKind> = every_kind().collect();
            let at = all.iter().position(|&k| k == kind).unwrap();
            kind = all[(at + 1) % all.len()];
            t.set_policy(make(kind, now)).unwrap();
            next_swap += swap_ms * 1_000_000;
        }
        for _ in 0..2 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let core = (rng % 16) as usize;
            if running.iter().any(|r| r.0 == core) {
                continue;
            }
            t.wake_due(now, &no_memory);
            if let Some(tid) = t.start(core, now) {
                gap[tid] = gap[tid].max(now - last[tid]);
                last[tid] = now;
                let len = if tid == main { QUANTUM / 10 } else { QUANTUM };
                running.push((core, tid, now + len));
            }
        }
    }
    (0..17)
        .map(|tid| gap[tid].max(now - last[tid]) / 1_000_000)
        .collect()
}

#[test]
fn no_thread_waits_long_when_the_application_shares_its_cores() {
    for kind in every_kind() {
        // Lottery's capped threads once ran whenever a core was free: the
        // four 200-ticket threads here then waited the whole 60 s.
        let alone = longest_waits(kind, u64::MAX / 2_000_000);
        assert!(
            alone.iter().skip(1).all(|&ms| ms < 100),
            "{kind:?}: {alone:?}"
        );
        // Swapped every 4.5 s, a debt carried across a swap is bounded.
        let swapped = longest_waits(kind, 4_500);
        assert!(
            swapped.iter().skip(1).all(|&ms| ms < 1_000),
            "{kind:?} with swaps: {swapped:?}"
        );
    }
}

/// The epilogue publishes a stop and another core charges it later: the
/// charge is what the stop says (not the clock at charging time), the
/// stopped core is freed, and a core that already runs another thread
/// keeps it.
#[test]
fn a_stop_charged_from_another_core_charges_what_it_says() {
    let mut t = table(STRIDE);
    let a = spawn(&mut t, 1);
    let b = spawn(&mut t, 1);
    assert_eq!(t.start(0, 0), Some(a));
    assert_eq!(t.start(1, 0), Some(b));
    // Core 0's epilogue stopped `a` at its deadline, 2 ms in; core 1
    // charges it much later.
    t.stop_ran(0, a, 2 * Q, 50 * Q, RunEnd::Preempted, &no_memory);
    assert_eq!((t.current(0), t.current(1)), (NONE, b));
    assert_eq!(t.state(a), Some(ThreadState::Runnable));
    let mut out = [(0, 0, 0, ThreadState::Runnable); 4];
    t.snapshot(&mut out);
    assert_eq!(out[0].2, 2 * Q, "charged the stop's figure");
    // A stale stop of a thread no longer current on its core does not
    // take that core's current thread away.
    t.stop_ran(1, a, 0, 50 * Q, RunEnd::Preempted, &no_memory);
    assert_eq!(t.current(1), b);
}

fn spawn_control(t: &mut Table) -> usize {
    t.spawn_control(nothing, 0, |_| UserContext::ZERO)
        .expect("a free slot")
}

/// Issue 12: with threads of 1e8 tickets beside its 1, the application's
/// own control thread (samples, timed events, console) never ran again.
/// Outside the policy, it runs first whenever it is runnable, under every
/// policy, and takes no share of the policy's figures.
#[test]
fn the_control_thread_runs_first_whatever_the_others_weigh() {
    for kind in every_kind() {
        let mut t = table(kind);
        let heavy = spawn(&mut t, u32::MAX);
        let main = spawn_control(&mut t);
        assert!(
            t.spawn_control(nothing, 0, |_| UserContext::ZERO).is_none(),
            "one only"
        );
        assert!(!t.set_weight(main, 5), "it has no weight");
        for round in 0..50u64 {
            // Wakes every 10th round, runs 1 us, sleeps again.
            if round % 10 == 0 {
                t.wake_at(main, 1);
                t.wake_due(round * Q, &no_memory);
            }
            let picked = t.start(0, round * Q).unwrap();
            if round % 10 == 0 {
                assert_eq!(
                    picked, main,
                    "{kind:?} round {round}: the control thread waits"
                );
                t.wake_at(main, u64::MAX);
                t.stop_ran(0, main, 1_000, round * Q, RunEnd::Blocked, &no_memory);
                assert_eq!(t.state(main), Some(ThreadState::Sleeping));
                assert_eq!(t.start(0, round * Q), Some(heavy));
            }
            t.stop_ran(0, heavy, Q, round * Q, RunEnd::Preempted, &no_memory);
        }
        assert_eq!(t.control_service_ns(), 5_000);
        let mut out = [(0, 0, 0, ThreadState::Runnable); 4];
        assert_eq!(t.snapshot(&mut out).0, 1, "only the policy's threads");
        assert_eq!(t.audit().violations(), 0);
    }
}

/// Issue 13 bounds a thread's single charge by a slot and its grace: the
/// table keeps the longest one a policy's thread was charged, whatever
/// way it stopped; the control thread's (outside the policy) is not one.
#[test]
fn the_longest_charge_is_a_policy_threads_longest_stop() {
    for kind in every_kind() {
        let mut t = table(kind);
        let a = spawn(&mut t, 1);
        let main = spawn_control(&mut t);
        assert_eq!(t.longest_charge_ns(), 0);
        assert_eq!(t.start(0, 0), Some(main));
        t.stop_ran(0, main, 9 * Q, 0, RunEnd::Yielded, &no_memory);
        for (ran, end) in [
            (Q / 2, RunEnd::Preempted),
            (3 * Q, RunEnd::Yielded),
            (Q, RunEnd::Blocked),
        ] {
            let on = t.start(0, 0);
            let on = if on == Some(main) {
                t.stop_ran(0, main, 0, 0, RunEnd::Blocked, &no_memory);
                t.start(0, 0)
            } else {
                on
            };
            assert_eq!(on, Some(a), "{kind:?}");
            t.stop_ran(0, a, ran, 0, end, &no_memory);
            t.unblock(a);
        }
        assert_eq!(t.longest_charge_ns(), 3 * Q, "{kind:?}");
    }
}

#[test]
fn the_control_thread_blocks_wakes_exits_and_survives_a_swap() {
    let mut t = table(STRIDE);
    let worker = spawn(&mut t, 100);
    let main = spawn_control(&mut t);
    assert_eq!(t.start(0, 0), Some(main));
    // Blocks with its unblock already come: stays runnable.
    t.unblock(main);
    assert!(!t.block(main));
    t.stop_ran(0, main, 10, 0, RunEnd::Yielded, &no_memory);
    assert_eq!(t.state(main), Some(ThreadState::Runnable));
    // A swap carries the policy's threads and leaves the control thread be.
    t.set_policy(build(RR, Q, 1, 0)).unwrap();
    assert_eq!(t.state(main), Some(ThreadState::Runnable));
    assert_eq!(t.start(1, 0), Some(main));
    assert_eq!(t.start(0, 0), Some(worker));
    // Joins the worker: sleeps until the worker exits.
    assert!(t.join(worker, main));
    assert!(t.block(main));
    t.stop_ran(1, main, 10, 0, RunEnd::Blocked, &no_memory);
    assert_eq!(t.state(main), Some(ThreadState::Sleeping));
    t.exit(worker);
    t.stop_ran(0, worker, Q, 0, RunEnd::Exited, &no_memory);
    assert_eq!(
        t.state(main),
        Some(ThreadState::Runnable),
        "woken by the exit"
    );
    assert_eq!(t.start(0, 0), Some(main));
    t.exit(main);
    t.stop_ran(0, main, 10, 0, RunEnd::Exited, &no_memory);
    assert_eq!(t.live(), 0);
    assert_eq!(t.state(main), None, "its slot is free");
    assert_eq!(t.audit().violations(), 0);
}

// ---- Wait times -------------------------------------------------------------

std::thread_local! {
    static NOW: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

fn fake_now() -> u64 {
    NOW.with(|n| n.get())
}

fn at(t: u64) {
    NOW.with(|n| n.set(t));
}

fn timed_table(kind: PolicyKind) -> Table {
    let mut t = table(kind);
    t.set_clock(fake_now);
    t
}

#[test]
fn a_wait_runs_from_becoming_runnable_to_running() {
    let mut t = timed_table(STRIDE);
    at(1_000);
    let a = spawn(&mut t, 1);
    at(1_500);
    assert_eq!(t.start(0, 0), Some(a));
    assert_eq!(
        (t.threads[a].waits.count(), t.threads[a].waits.max_ns()),
        (1, 500)
    );
    // Preempted at 3,000 (its deadline), charged at 3,400, running again at 9,000.
    t.stop_ran_at(0, a, 1_500, 3_000, 3_400, RunEnd::Preempted, &no_memory);
    at(9_000);
    assert_eq!(t.start(0, 0), Some(a));
    assert_eq!(
        t.threads[a].waits.max_ns(),
        6_000,
        "from the stop, not the charge"
    );
    assert_eq!(t.threads[a].waits.count(), 2);
}

#[test]
fn sleep_is_not_a_wait_and_a_timed_wake_waits_from_its_deadline() {
    let mut t = timed_table(STRIDE);
    at(0);
    let a = spawn(&mut t, 1);
    t.start(0, 0);
    t.wake_at(a, 50_000);
    t.stop_ran_at(0, a, 10, 10_000, 10_000, RunEnd::Blocked, &no_memory);
    assert_eq!(t.state(a), Some(ThreadState::Sleeping));
    // Seen due at 70,000 (the next dispatch), run at 71,000: it waited
    // from its deadline, 21 us, not from when it fell asleep.
    t.wake_due(70_000, &no_memory);
    at(71_000);
    assert_eq!(t.start(0, 0), Some(a));
    assert_eq!(t.threads[a].waits.count(), 2);
    assert_eq!(t.threads[a].waits.max_ns(), 21_000);
    // Unblocked at 80,000 after blocking: waits from the unblock.
    t.stop_ran_at(0, a, 10, 75_000, 75_000, RunEnd::Blocked, &no_memory);
    at(80_000);
    assert!(t.unblock(a));
    at(80_300);
    assert_eq!(t.start(1, 0), Some(a));
    assert_eq!(t.threads[a].waits.take_interval_max(), 21_000);
    assert_eq!(t.threads[a].waits.count(), 3);
    assert_eq!(
        t.threads[a].waits.percentile(0.01),
        Some(0),
        "the spawn's wait"
    );
}

#[test]
fn stride_seven_to_one_waits_one_and_seven_quanta() {
    // One core: the 7-ticket thread waits while the other runs (one
    // quantum in eight turns), the 1-ticket thread seven quanta each time.
    let mut t = Table::new();
    t.set_policy(build(STRIDE, Q, 1, 0)).unwrap();
    t.set_clock(fake_now);
    at(0);
    let big = spawn(&mut t, 7);
    let small = spawn(&mut t, 1);
    let mut clock = 0;
    for _ in 0..800 {
        let tid = t.start(0, 0).unwrap();
        clock += Q;
        at(clock);
        t.stop_ran_at(0, tid, Q, clock, clock, RunEnd::Preempted, &no_memory);
    }
    let (b, s) = (&t.threads[big].waits, &t.threads[small].waits);
    let p99 = s.percentile(0.99).unwrap();
    assert!(p99.abs_diff(7 * Q) <= 7 * Q / 16, "small p99 {p99}");
    assert!(s.percentile(0.5).unwrap() >= 6 * Q);
    assert!(
        b.percentile(0.5).unwrap() <= Q / 16,
        "the big one mostly runs on"
    );
    assert!(b.max_ns() <= 2 * Q, "big max {}", b.max_ns());
}

#[test]
fn the_policy_follows_the_cores_the_application_holds() {
    for kind in every_kind() {
        let mut t = table(kind);
        assert_eq!(t.policy.as_ref().unwrap().cores(), 2);
        // First look: the count is new, the cores are counted.
        assert!(t.follow_slots(4, || 3), "{kind:?}");
        assert_eq!(t.policy.as_ref().unwrap().cores(), 3);
        // Unchanged slots: the vectors are not walked again.
        assert!(!t.follow_slots(4, || panic!("walked with no change")));
        // More slots on the same cores: counted, P unchanged.
        assert!(!t.follow_slots(8, || 3));
        // Slots given back on two cores.
        assert!(t.follow_slots(2, || 1));
        assert_eq!(t.policy.as_ref().unwrap().cores(), 1, "{kind:?}");
    }
}

#[test]
fn a_heavy_thread_gets_its_tickets_share_once_its_application_is_down_to_one_core() {
    // 1:9 on two cores is infeasible (the heavy one can use at most one
    // core): both capped to half. On one core it is 1:9. A policy left
    // believing it has two cores keeps giving the light thread half.
    for kind in [STRIDE, LOTTERY] {
        let mut t = table(kind);
        let light = spawn(&mut t, 1);
        let heavy = spawn(&mut t, 9);
        t.follow_slots(1, || 1);
        let mut ran = [0u32; 2];
        let mut now = 0;
        for _ in 0..2000 {
            let tid = t.start(0, now).expect("a runnable thread");
            now += Q;
            t.stop(0, tid, now, RunEnd::Preempted, &no_memory);
            ran[usize::from(tid == heavy)] += 1;
        }
        let light_part = f64::from(ran[0]) / 2000.0;
        assert!(
            (light_part - 0.1).abs() < 0.03,
            "{kind:?}: thread {light} ran {light_part:.3} of the turns"
        );
    }
}

#[test]
fn ten_thousand_threads_each_run_sleep_wake_and_exit() {
    // The table grows past its first chunks as threads come, every thread
    // runs and is charged, sleepers on distant slots wake on time, and an
    // exited thread's slot is the next one handed out.
    for kind in every_kind() {
        let mut t = table(kind);
        let all: Vec<usize> = (0..10_000).map(|_| spawn(&mut t, 1)).collect();
        assert_eq!(all, (0..10_000).collect::<Vec<_>>(), "{kind:?}");
        assert_eq!(t.live(), 10_000);
        let mut now = 0;
        let mut ran = vec![false; 10_000];
        // Two cores, each thread charged a quantum a run, until all ran.
        // Lottery draws its winners: covering 10,000 equal threads is the
        // coupon collector, n ln n + (0.58 + G) n runs with G Gumbel, some
        // 98,000 on average and beyond n ln n + c n (92,103 + 10,000 c)
        // with probability about e^-c; 300,000 (e^-21) leaves out only a
        // thread that never runs. Stride, EEVDF and rr take 10,000.
        let mut runs = 0;
        while ran.iter().any(|r| !r) {
            for core in 0..2 {
                let tid = t.start(core, now).expect("a runnable thread");
                ran[tid] = true;
                now += Q;
                t.stop(core, tid, now, RunEnd::Preempted, &no_memory);
                runs += 1;
            }
            assert!(runs < 300_000, "{kind:?}: some thread never ran");
        }
        for tid in 0..10_000 {
            let service = t
                .policy
                .as_ref()
                .unwrap()
                .record(tid as u32)
                .unwrap()
                .service_ns;
            assert!(service > 0, "{kind:?}: thread {tid} charged nothing");
        }
        // Sleepers far apart in the table; one wakes before the others.
        let far = now + 1_000_000_000_000;
        for (k, &tid) in [17usize, 4_321, 9_999].iter().enumerate() {
            run_until_picked(&mut t, 0, tid, &mut now);
            t.wake_at(tid, far + 1_000_000 * k as u64);
            t.stop(0, tid, now, RunEnd::Blocked, &no_memory);
        }
        t.wake_due(far, &no_memory);
        assert_eq!(t.state(17), Some(ThreadState::Runnable), "{kind:?}");
        assert_eq!(t.state(4_321), Some(ThreadState::Sleeping), "{kind:?}");
        assert_eq!(t.state(9_999), Some(ThreadState::Sleeping), "{kind:?}");
        assert_eq!(t.waits().count(), 2, "{kind:?}: only the two sleepers wait");
        t.wake_due(far + 2_000_000, &no_memory);
        assert_eq!(t.state(9_999), Some(ThreadState::Runnable), "{kind:?}");
        assert_eq!(t.waits().count(), 0);
        // Thread 5_000 exits: its slot is the next one spawned.
        let exiting = 5_000;
        run_until_picked(&mut t, 1, exiting, &mut now);
        t.exit(exiting);
        t.stop(1, exiting, now, RunEnd::Exited, &no_memory);
        assert_eq!(t.live(), 9_999);
        assert_eq!(spawn(&mut t, 1), 5_000, "{kind:?}: the freed slot first");
        assert_eq!(spawn(&mut t, 1), 10_000, "{kind:?}: then a new one");
        assert_eq!(t.audit().violations(), 0, "{kind:?}");
    }
}

#[test]
fn the_table_stops_growing_at_its_limit_and_keeps_every_slot_in_place() {
    let mut t = table(RR);
    spawn(&mut t, 1);
    let first = t.threads.slot_ptr(0);
    for _ in 1..MAX_THREADS {
        spawn(&mut t, 1);
    }
    assert!(t
        .spawn(nothing, 0, 1, false, |_| UserContext::ZERO)
        .is_none());
    assert_eq!(t.threads.slot_ptr(0), first, "slots never move");
    assert!(t.threads.slot_ptr(MAX_THREADS).is_null());
    // A refused context (no stack) takes no slot and adds no thread.
    let mut t = table(RR);
    assert!(t.spawn_with(nothing, 0, 1, false, |_| None).is_none());
    assert_eq!(t.live(), 0);
    assert_eq!(spawn(&mut t, 1), 0);
}

#[test]
fn the_waiting_set_finds_members_across_words_and_summaries() {
    let mut b = slots::Bits::new();
    let members = [0, 63, 64, 4_095, 4_096, 9_999, MAX_THREADS - 1];
    for &m in &members {
        b.insert(m);
    }
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(m) = b.next_from(from) {
        found.push(m);
        from = m + 1;
    }
    assert_eq!(found, members);
    b.remove(4_095);
    b.remove(4_096);
    assert_eq!(b.next_from(65), Some(9_999));
    for &m in &members {
        b.remove(m);
    }
    assert!(b.is_empty() && b.next_from(0).is_none());
}

#[test]
fn a_dispatch_before_the_first_deadline_skips_the_walk_and_none_is_missed() {
    let mut t = table(STRIDE);
    let a = spawn(&mut t, 1);
    let b = spawn(&mut t, 1);
    let c = spawn(&mut t, 1);
    t.start(0, 0);
    t.start(1, 0);
    t.wake_at(a, 1_000);
    t.stop(0, a, 10, RunEnd::Blocked, &no_memory);
    t.wake_due(20, &no_memory);
    let walks = t.walks;
    t.wake_due(999, &no_memory);
    assert_eq!(t.walks, walks, "nothing can be due before 1,000");
    assert_eq!(t.state(a), Some(ThreadState::Sleeping));
    // An earlier deadline set afterwards is not skipped past.
    t.wake_at(b, 500);
    t.stop(1, b, 30, RunEnd::Blocked, &no_memory);
    t.wake_due(500, &no_memory);
    assert_eq!(t.state(b), Some(ThreadState::Runnable));
    assert_eq!(t.state(a), Some(ThreadState::Sleeping));
    // An unblock and a watched word are not timed: they are always looked at.
    let word = core::cell::Cell::new(5u64);
    let read = |_: u64| word.get();
    let on = t.start(0, 600).unwrap();
    t.watch(on, 0x1000, 5);
    t.stop(0, on, 610, RunEnd::Blocked, &read);
    word.set(6);
    let walks = t.walks;
    t.wake_due(620, &read);
    assert_eq!(t.walks, walks + 1);
    assert_eq!(t.state(on), Some(ThreadState::Runnable));
    let _ = c;
    // The walk that found `a` not due yet keeps its deadline, and with the
    // watcher woken nothing untimed is left: the next walk waits for it.
    t.wake_due(999, &read);
    assert_eq!(t.walks, walks + 1, "no watcher left to look at");
    assert_eq!(t.state(a), Some(ThreadState::Sleeping));
    t.wake_due(1_000, &read);
    assert_eq!(t.state(a), Some(ThreadState::Runnable));
}

#[test]
fn an_unblock_before_the_sleep_is_seen_by_the_next_walk() {
    // A thread with a far deadline is unblocked while still running: its
    // pending wake-up is not a deadline, and no dispatch may skip it.
    let mut t = table(RR);
    let a = spawn(&mut t, 1);
    t.start(0, 0);
    t.wake_at(a, 1_000_000);
    t.wake_due(10, &no_memory);
    assert!(t.unblock(a));
    let walks = t.walks;
    t.wake_due(20, &no_memory);
    assert_eq!(t.walks, walks + 1, "a pending wake-up forces the walk");
}

/// The voluntary fast path charges its own stop at its own instant and
/// checks wake-ups there (`threads::decide`); another core's stop drained
/// in the same dispatch may be dated later. A thread that blocked with a
/// deadline in between is woken by the next dispatch, not lost.
#[test]
fn a_stop_dated_after_the_fast_paths_now_is_woken_later_not_lost() {
    use super::super::handoff::{charge_all, Stop, Stops};
    for kind in every_kind() {
        let mut t = timed_table(kind);
        at(0);
        let a = spawn(&mut t, 1);
        let b = spawn(&mut t, 1);
        let c = spawn(&mut t, 1);
        let on0 = t.start(0, 0).unwrap();
        let on1 = t.start(1, 0).unwrap();
        assert!([a, b, c].contains(&on0) && [a, b, c].contains(&on1));
        // core 1's thread sleeps until 200; its stop is dated 250 (past its deadline)
        t.wake_at(on1, 200);
        // core 1's stop is published, dated 250 (past its deadline); core
        // 0's fast path charges its own stop at 150 first, then drains
        let stops = Stops::new();
        let stop = |tid, end, at_ns| Stop {
            tid,
            end,
            ran_ns: 100,
            at_ns,
            wake_at_ns: 0,
            unrun: false,
        };
        assert!(stops.publish(1, stop(on1, RunEnd::Blocked, 250)));
        let own = Some(stop(on0, RunEnd::Yielded, 150));
        let now = charge_all(&mut t, &stops, 0, own, || unreachable!(), &no_memory);
        assert_eq!(now, 150, "the own stop's instant is the dispatch's");
        t.wake_due(now, &no_memory);
        assert_eq!(t.state(on1), Some(ThreadState::Sleeping), "{kind:?}");
        at(160);
        let next = t.start_at(0, 0, 160).unwrap();
        assert_ne!(next, on1);
        // next dispatch anywhere (now 300) wakes it
        t.wake_due(300, &no_memory);
        assert_eq!(t.state(on1), Some(ThreadState::Runnable), "{kind:?}");
        assert_eq!(t.audit().violations(), 0);
    }
}

/// A sleep's deadline travels with the thread's stop (`Stop::wake_at_ns`)
/// and takes effect when the stop is charged under the lock: a thread
/// does not take the runtime lock from its own context to go to sleep
/// (on 64 cores, threads spun for it most of the machine's time). Charged
/// before its deadline the thread sleeps until then; charged after it, it
/// never stopped wanting the CPU. Through the hand-off and the fast path.
#[test]
fn a_sleeps_deadline_travels_with_its_stop() {
    use super::super::handoff::{charge_all, Stop, Stops};
    for kind in every_kind() {
        let mut t = timed_table(kind);
        at(0);
        for _ in 0..3 {
            spawn(&mut t, 1);
        }
        let on0 = t.start(0, 0).unwrap();
        let on1 = t.start(1, 0).unwrap();
        let stops = Stops::new();
        let sleep = |tid, at_ns, wake_at_ns| Stop {
            tid,
            end: RunEnd::Blocked,
            ran_ns: 100,
            at_ns,
            wake_at_ns,
            unrun: false,
        };
        // core 1's thread sleeps until 1,000 (published); core 0's until
        // 400, charged on its own fast path at 150
        assert!(stops.publish(1, sleep(on1, 120, 1_000)));
        let own = Some(sleep(on0, 150, 400));
        let now = charge_all(&mut t, &stops, 0, own, || unreachable!(), &no_memory);
        assert_eq!(now, 150);
        t.wake_due(now, &no_memory);
        for tid in [on0, on1] {
            assert_eq!(t.state(tid), Some(ThreadState::Sleeping), "{kind:?}");
        }
        t.wake_due(399, &no_memory);
        assert_eq!(t.state(on0), Some(ThreadState::Sleeping), "{kind:?}");
        t.wake_due(400, &no_memory);
        assert_eq!(t.state(on0), Some(ThreadState::Runnable), "{kind:?}");
        t.wake_due(999, &no_memory);
        assert_eq!(t.state(on1), Some(ThreadState::Sleeping), "{kind:?}");
        t.wake_due(1_000, &no_memory);
        assert_eq!(t.state(on1), Some(ThreadState::Runnable), "{kind:?}");
        // a deadline already past when the stop is charged: runnable at once
        at(2_000);
        let on = t.start_at(0, 0, 2_000).unwrap();
        assert!(stops.publish(0, sleep(on, 2_000, 1_500)));
        charge_all(&mut t, &stops, 1, None, || 2_100, &no_memory);
        assert_eq!(t.state(on), Some(ThreadState::Runnable), "{kind:?}");
        assert_eq!(t.waits().count(), 0, "{kind:?}: no condition left behind");
        assert_eq!(t.audit().violations(), 0);
    }
}

/// The protocol `threads::after_switch_out` and `dispatch` follow, on four
/// host threads sharing one table and one hand-off: a stop charged at once
/// under `try_lock` (the fast path) or published and drained by whoever
/// holds the lock next. No thread runs twice (the table's audit after
/// every pick), no publish finds its slot taken, and the policy's service
/// is exactly the stops made: none lost, none charged twice.
#[test]
fn fast_path_and_hand_off_interleave_without_loss_or_double_run() {
    use super::super::handoff::{charge_all, Stop, Stops};
    use std::sync::atomic::{AtomicU64 as A64, Ordering as O};
    use std::sync::{Arc, Mutex as M};
    const CORES: usize = 4;
    for kind in every_kind() {
        let mut t = Table::new();
        t.set_policy(build(kind, Q, CORES, 3)).unwrap();
        for w in 1..=6 {
            spawn(&mut t, w);
        }
        let rt = Arc::new(M::new(t));
        let stops = Arc::new(Stops::new());
        let charged_out = Arc::new(A64::new(0));
        let hs: Vec<_> = (0..CORES)
            .map(|core| {
                let (rt, stops, out) = (rt.clone(), stops.clone(), charged_out.clone());
                std::thread::spawn(move || {
                    let mut mine: Option<usize> = None;
                    for i in 0..20_000u64 {
                        let own = mine.take().map(|tid| Stop {
                            tid,
                            end: RunEnd::Yielded,
                            ran_ns: 1,
                            at_ns: i,
                            wake_at_ns: 0,
                            unrun: false,
                        });
                        if own.is_some() {
                            out.fetch_add(1, O::Relaxed);
                        }
                        let fast = i % 3 != 0;
                        let (mut g, own) = match (fast, rt.try_lock()) {
                            (true, Ok(g)) => (g, own),
                            (_, g) => {
                                drop(g);
                                if let Some(s) = own {
                                    assert!(stops.publish(core, s), "undrained stop");
                                }
                                (rt.lock().unwrap(), None)
                            }
                        };
                        let now = charge_all(&mut g, &stops, core, own, || i, &no_memory);
                        mine = g.start_at(core, 0, now);
                        let a = g.audit();
                        assert_eq!(a.violations(), 0, "{kind:?}: {a:?}");
                    }
                    if let Some(tid) = mine {
                        out.fetch_add(1, O::Relaxed);
                        assert!(stops.publish(
                            core,
                            Stop {
                                tid,
                                end: RunEnd::Yielded,
                                ran_ns: 1,
                                at_ns: 0,
                                wake_at_ns: 0,
                                unrun: false,
                            }
                        ));
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let mut g = rt.lock().unwrap();
        charge_all(&mut g, &stops, 0, None, || 0, &no_memory);
        let service: u64 = (0..6)
            .map(|tid| {
                g.policy
                    .as_ref()
                    .unwrap()
                    .record(tid as u32)
                    .map_or(0, |r| r.service_ns)
            })
            .sum();
        assert_eq!(service, charged_out.load(O::Relaxed), "{kind:?}");
        assert!(!g.running_anywhere());
    }
}

/// What the runtime lock's holder answers a waiting core (`serve::reply`,
/// the code `threads::serve_waiters` runs), after the catch-up every
/// holder makes first (`threads::catch_up`: every published stop charged,
/// the sleepers due woken). Review r-s33 found a thread's own hold serving
/// after the wake-ups alone: a core was told to park past a runnable
/// thread, or past a sleeper's deadline, still in another core's stop.
mod served_waiters {
    use super::super::super::combine::{Answer, Requests};
    use super::super::super::handoff::{charge_all, Stop, Stops};
    use super::super::super::serve;
    use super::*;

    const PARK_NS: u64 = 10_000;

    /// A holder on core `me` at `now`: the catch-up, then every waiting
    /// core served; the picks and parks taken back for the cores in
    /// `withdrawn`, which gave up meanwhile.
    fn hold(
        t: &mut Table,
        stops: &Stops,
        reqs: &Requests,
        me: usize,
        now: u64,
        withdrawn: &[usize],
    ) {
        let now = charge_all(t, stops, me, None, || now, &no_memory);
        t.wake_due(now, &no_memory);
        let t = core::cell::RefCell::new(t);
        reqs.serve(
            |_| true,
            |k| {
                if withdrawn.contains(&k) {
                    assert_eq!(reqs.withdraw(k), Answer::Idle);
                }
                serve::reply(
                    &mut t.borrow_mut(),
                    stops,
                    k,
                    now,
                    || now,
                    || PARK_NS,
                    &no_memory,
                )
            },
            |k, r| serve::undo(&mut t.borrow_mut(), k, r, now, &no_memory),
        );
    }

    fn stop(tid: usize, end: RunEnd, at_ns: u64, wake_at_ns: u64) -> Stop {
        Stop {
            tid,
            end,
            ran_ns: 100,
            at_ns,
            wake_at_ns,
            unrun: false,
        }
    }

    /// Core 0's thread holds the lock; core 1's thread left its core (its
    /// stop published, core 1 gave its turn up); core 2 asks.
    fn two_running(kind: PolicyKind) -> (Table, usize, usize) {
        let mut t = Table::new();
        t.set_policy(build(kind, Q, 4, 7)).unwrap();
        t.set_clock(fake_now);
        at(0);
        let a = spawn(&mut t, 1);
        let b = spawn(&mut t, 1);
        assert_eq!(t.start_at(0, 0, 0), Some(a));
        assert_eq!(t.start_at(1, 0, 0), Some(b));
        (t, a, b)
    }

    #[test]
    fn a_waiting_core_gets_the_thread_in_another_cores_stop_not_a_park() {
        for kind in every_kind() {
            let (mut t, _, b) = two_running(kind);
            let (stops, reqs) = (Stops::new(), Requests::new());
            assert!(stops.publish(1, stop(b, RunEnd::Preempted, 500, 0)));
            reqs.ask(2);
            hold(&mut t, &stops, &reqs, 0, 1_000, &[]);
            assert_eq!(reqs.poll(2), Answer::Decided(b), "{kind:?}");
            assert_eq!(t.audit().violations(), 0);
        }
    }

    #[test]
    fn a_parked_core_comes_back_for_a_sleeper_whose_deadline_is_in_a_stop() {
        for kind in every_kind() {
            let (mut t, _, b) = two_running(kind);
            let (stops, reqs) = (Stops::new(), Requests::new());
            assert!(stops.publish(1, stop(b, RunEnd::Blocked, 500, 5_000)));
            reqs.ask(2);
            hold(&mut t, &stops, &reqs, 0, 1_000, &[]);
            assert_eq!(reqs.poll(2), Answer::Park(5_000), "{kind:?}");
        }
    }

    /// Withdrawn meanwhile: the pick goes back to the policy (runnable,
    /// not running on a core that does not know of it) and the park is
    /// forgotten (another core parking covers the sleeper instead).
    #[test]
    fn a_reply_whose_request_was_withdrawn_is_taken_back() {
        for kind in every_kind() {
            let (mut t, _, b) = two_running(kind);
            let (stops, reqs) = (Stops::new(), Requests::new());
            assert!(stops.publish(1, stop(b, RunEnd::Preempted, 500, 0)));
            reqs.ask(2);
            hold(&mut t, &stops, &reqs, 0, 1_000, &[2]);
            assert_eq!(t.state(b), Some(ThreadState::Runnable), "{kind:?}");
            assert_eq!(t.current(2), NONE);
            assert_eq!(t.start_at(3, 1_000, 1_000), Some(b), "{kind:?}");
            // b sleeps until 5,000; core 2 asks and withdraws: core 3,
            // parking next, is the one to come back at 5,000.
            assert!(stops.publish(3, stop(b, RunEnd::Blocked, 1_100, 5_000)));
            reqs.ask(2);
            hold(&mut t, &stops, &reqs, 0, 1_200, &[2]);
            assert_eq!(t.park_until(3, 1_200, PARK_NS), 5_000, "{kind:?}");
            assert_eq!(t.audit().violations(), 0);
        }
    }

    /// A pick taken back (its core withdrew its request) ends no wait: the
    /// thread waits on from its stop, one wait to its next pick.
    #[test]
    fn a_pick_taken_back_ends_no_wait() {
        for kind in every_kind() {
            let (mut t, _, b) = two_running(kind);
            let (stops, reqs) = (Stops::new(), Requests::new());
            let before = t.threads[b].waits.count();
            assert!(stops.publish(1, stop(b, RunEnd::Preempted, 500, 0)));
            reqs.ask(2);
            hold(&mut t, &stops, &reqs, 0, 1_000, &[2]);
            assert_eq!(t.start_at(3, 1_000, 1_600), Some(b), "{kind:?}");
            let w = &t.threads[b].waits;
            assert_eq!(
                (w.count() - before, w.max_ns()),
                (1, 1_100),
                "{kind:?}: one wait, from its stop at 500 to 1,600"
            );
        }
    }

    /// A stop made before its thread ran (`resume_pending`: the turn ended
    /// between the pick and the resume) leaves it waiting from before its
    /// pick, whoever charges it.
    #[test]
    fn an_unrun_stop_leaves_its_thread_waiting_from_before_its_pick() {
        for kind in every_kind() {
            let mut t = timed_table(kind);
            at(0);
            let a = spawn(&mut t, 1);
            assert_eq!(t.start_at(0, 0, 300), Some(a));
            let stops = Stops::new();
            let unrun = Stop {
                unrun: true,
                ..stop(a, RunEnd::Preempted, 400, 0)
            };
            assert!(stops.publish(0, unrun));
            charge_all(&mut t, &stops, 1, None, || 450, &no_memory);
            assert_eq!(t.state(a), Some(ThreadState::Runnable), "{kind:?}");
            assert_eq!(t.start_at(1, 0, 900), Some(a), "{kind:?}");
            let w = &t.threads[a].waits;
            assert_eq!(
                (w.count(), w.max_ns()),
                (1, 900),
                "{kind:?}: one wait, from its spawn at 0 to 900"
            );
        }
    }

    /// With nothing running anywhere (the whole application asleep) the
    /// holder declines: the core sees that for itself and sleeps the
    /// application on one predicate.
    #[test]
    fn nothing_running_anywhere_is_declined_not_parked() {
        for kind in every_kind() {
            let mut t = timed_table(kind);
            at(0);
            let a = spawn(&mut t, 1);
            assert_eq!(t.start_at(0, 0, 0), Some(a));
            let (stops, reqs) = (Stops::new(), Requests::new());
            assert!(stops.publish(0, stop(a, RunEnd::Blocked, 100, 9_000)));
            reqs.ask(1);
            hold(&mut t, &stops, &reqs, 0, 200, &[]);
            assert_eq!(reqs.poll(1), Answer::Declined, "{kind:?}");
        }
    }
}

/// The service (ns) each of `tids` is owed by `t`'s policy, as its export
/// says: -lag * weight / VT_SCALE.
fn owed(t: &Table, tids: &[usize]) -> Vec<i128> {
    let p = t.policy.as_ref().unwrap();
    let s = p.export();
    tids.iter()
        .map(|&tid| {
            let r = s.threads.iter().find(|r| r.id == tid as u32).unwrap();
            -(r.vtime - s.global_vtime) * i128::from(r.weight) / sched_api::VT_SCALE as i128
        })
        .collect()
}

/// Two threads of currency A (1,000 each, A funded with 100) beside a
/// base thread (100) run 7 quanta on one core, `a1` then asleep or not;
/// the service each is owed, before a swap to stride, there, and after a
/// swap back to lottery, stays within a microsecond.
fn owed_service_across_a_swap_away_and_back(a1_asleep: bool) {
    let mut t = table(LOTTERY);
    let (a0, a1, base) = (spawn(&mut t, 1), spawn(&mut t, 1), spawn(&mut t, 100));
    let a = t.create_currency(BASE_CURRENCY, 100).unwrap();
    t.set_currency(a0, a, 1000).unwrap();
    t.set_currency(a1, a, 1000).unwrap();
    // Run a while on one core: lags build up.
    let mut now = 0;
    for _ in 0..7 {
        let tid = t.start(0, now).expect("a runnable thread");
        now += Q;
        t.stop(0, tid, now, RunEnd::Preempted, &no_memory);
    }
    if a1_asleep {
        // Straight in the policy: only its lag matters here.
        t.policy.as_mut().unwrap().sleep(a1 as u32).unwrap();
    }
    let before = owed(&t, &[a0, a1, base]);
    t.set_policy(build(STRIDE, Q, 2, 7)).unwrap();
    let away = owed(&t, &[a0, a1, base]);
    t.set_policy(build(LOTTERY, Q, 2, 8)).unwrap();
    let back = owed(&t, &[a0, a1, base]);
    if !a1_asleep {
        assert_eq!(weights(&t, &[a0, a1, base]), [50, 50, 100]);
    }
    let close = |x: &[i128], y: &[i128]| x.iter().zip(y).all(|(a, b)| (a - b).abs() < 1000);
    assert!(close(&before, &away), "to stride: {before:?} -> {away:?}");
    assert!(
        close(&before, &back),
        "and back: {before:?} -> {away:?} -> {back:?}"
    );
}

#[test]
fn a_currency_threads_owed_service_survives_a_swap_away_and_back() {
    owed_service_across_a_swap_away_and_back(false);
}

#[test]
fn a_sleeping_currency_threads_owed_service_survives_a_swap_away_and_back() {
    owed_service_across_a_swap_away_and_back(true);
}

// ---- Mutation-testing gaps (branch h-mut) ----

/// Runs threads on `core`, a quantum each, until `want` is picked (left
/// running there, started at `now`).
fn run_until_picked(t: &mut Table, core: usize, want: usize, now: &mut u64) {
    let most = 100 * t.live().max(1);
    for round in 0.. {
        assert!(round < most, "{want} never ran");
        let tid = t.start(core, *now).expect("a runnable thread");
        if tid == want {
            return;
        }
        *now += Q;
        t.stop(core, tid, *now, RunEnd::Preempted, &no_memory);
    }
}

#[test]
fn a_loan_given_again_after_a_swap_is_a_real_loan_and_none_is_counted_where_there_are_none() {
    let mut t = table(STRIDE);
    let holder = spawn(&mut t, 1);
    let waiter = spawn(&mut t, 9);
    let mut now = 0;
    run_until_picked(&mut t, 0, waiter, &mut now);
    assert!(t.block(waiter));
    t.lend_while_blocked(waiter, holder);
    t.stop(0, waiter, now, RunEnd::Blocked, &no_memory);
    t.set_policy(build(LOTTERY, Q, 2, 7)).unwrap();
    assert_eq!(t.lends, 1, "given at the swap");
    // A swap to a policy without loans gives none, and counts none.
    t.set_policy(build(STRIDE, Q, 2, 7)).unwrap();
    assert_eq!(t.lends, 1, "stride takes no loan");
    t.set_policy(build(LOTTERY, Q, 2, 8)).unwrap();
    assert_eq!(t.lends, 2, "given again back in lottery");
    // The new policy really holds it: the waiter has a loan to take back.
    assert_eq!(
        t.policy.as_mut().unwrap().take_back(waiter as u32),
        Ok(()),
        "the loan is in the policy, not only in the count"
    );
}

#[test]
fn a_loan_ended_by_a_wake_on_the_way_to_sleep_is_not_given_at_a_later_block() {
    let policy = build(LOTTERY, Q, 1, 7);
    let mut t = Table::new();
    t.set_policy(policy).unwrap();
    let holder = spawn(&mut t, 1);
    let waiter = spawn(&mut t, 9);
    let mut now = 0;
    run_until_picked(&mut t, 0, waiter, &mut now);
    // It blocks lending to the holder, but the unlock comes before it is
    // charged as blocked: it never sleeps, and lends nothing.
    assert!(t.block(waiter));
    t.lend_while_blocked(waiter, holder);
    assert!(t.unblock(waiter));
    now += Q;
    t.stop(0, waiter, now, RunEnd::Blocked, &no_memory);
    assert_eq!(t.state(waiter), Some(ThreadState::Runnable));
    assert_eq!(t.threads[waiter].lend_to, NONE);
    assert_eq!(t.lends, 0);
    // Later it blocks on something else, lending to nobody.
    run_until_picked(&mut t, 0, waiter, &mut now);
    assert!(t.block(waiter));
    now += Q;
    t.stop(0, waiter, now, RunEnd::Blocked, &no_memory);
    assert_eq!(t.state(waiter), Some(ThreadState::Sleeping));
    assert_eq!(t.lends, 0, "no stale loan to the old holder");
    assert_eq!(
        t.policy.as_mut().unwrap().take_back(waiter as u32),
        Err(SchedError::NotLending)
    );
}

#[test]
fn nested_currencies_outlive_a_swap_away_and_back_under_their_parents() {
    let mut t = table(LOTTERY);
    let (x, y, z) = (spawn(&mut t, 1), spawn(&mut t, 1), spawn(&mut t, 100));
    let a = t.create_currency(BASE_CURRENCY, 100).unwrap();
    let b = t.create_currency(a, 50).unwrap();
    t.set_currency(y, a, 10).unwrap();
    t.set_currency(x, b, 10).unwrap();
    let before = weights(&t, &[x, y, z]);
    for away in [STRIDE, LOTTERY] {
        t.set_policy(build(away, Q, 2, 7)).unwrap();
        t.set_policy(build(LOTTERY, Q, 2, 8)).unwrap();
        assert_eq!(t.currency_of(x), Some((b, 10)));
        // Worth what they were, to a base ticket of rounding.
        let back = weights(&t, &[x, y, z]);
        let close = |w: &[u32], v: &[u32]| w.iter().zip(v).all(|(p, q)| p.abs_diff(*q) <= 2);
        assert!(
            close(&back, &before),
            "via {away:?}: {before:?} -> {back:?}"
        );
        // B is still A's: funding A twice over doubles both threads'
        // worth, not the base thread's.
        t.fund_currency(a, 200).unwrap();
        let doubled = weights(&t, &[x, y, z]);
        let want = [back[0] * 2, back[1] * 2, back[2]];
        assert!(
            close(&doubled, &want),
            "via {away:?}: {doubled:?}, not {want:?}"
        );
        t.fund_currency(a, 100).unwrap();
    }
}

#[test]
fn a_currency_remembered_for_a_free_slot_is_not_inherited_by_its_next_thread() {
    let mut t = table(LOTTERY);
    let _kept = spawn(&mut t, 3);
    let gone = spawn(&mut t, 5);
    let a = t.create_currency(BASE_CURRENCY, 100).unwrap();
    t.unspawn(gone);
    t.remember_currency(gone, a, 7);
    let next = spawn(&mut t, 5);
    assert_eq!(next, gone, "the same slot");
    assert_eq!(t.currency_of(next), None);
    // Nor put in it at a swap.
    t.set_policy(build(LOTTERY, Q, 2, 8)).unwrap();
    assert_eq!(t.currency_of(next), None);
    assert_eq!(weights(&t, &[next]), [5]);
}

#[test]
fn currency_refusals_under_a_policy_without_currencies_name_the_real_fault() {
    let mut t = table(LOTTERY);
    let main = t.spawn_control(nothing, 0, |_| UserContext::ZERO).unwrap();
    let x = spawn(&mut t, 4);
    let a = t.create_currency(BASE_CURRENCY, 10).unwrap();
    t.set_policy(build(STRIDE, Q, 2, 7)).unwrap();
    assert_eq!(
        t.fund_currency(BASE_CURRENCY, 3),
        Err(SchedError::UnknownCurrency),
        "the base currency is never funded"
    );
    assert_eq!(t.set_currency(x, a, 0), Err(SchedError::ZeroWeight));
    assert_eq!(
        t.set_currency(main, a, 1),
        Err(SchedError::UnknownThread),
        "the control thread has no tickets"
    );
    assert_eq!(t.currency_of(x), None);
}

#[test]
fn an_exiting_currency_thread_is_not_put_back_in_its_currency_at_a_swap() {
    let mut t = table(LOTTERY);
    let (a0, a1) = (spawn(&mut t, 1), spawn(&mut t, 1));
    let a = t.create_currency(BASE_CURRENCY, 100).unwrap();
    t.set_currency(a0, a, 10).unwrap();
    t.set_currency(a1, a, 10).unwrap();
    t.set_policy(build(STRIDE, Q, 2, 7)).unwrap();
    // a1 runs on core 1 and exits there; it is not charged yet at the swap.
    let mut now = 0;
    loop {
        let tid = t.start(1, now).unwrap();
        if tid == a1 {
            break;
        }
        now += Q;
        t.stop(1, tid, now, RunEnd::Preempted, &no_memory);
    }
    t.exit(a1);
    t.set_policy(build(LOTTERY, Q, 2, 8)).unwrap();
    assert_eq!(weights(&t, &[a0]), [100], "a0 alone in A");
    t.stop(1, a1, now + Q, RunEnd::Yielded, &no_memory);
    assert_eq!(weights(&t, &[a0]), [100]);
    assert_eq!(t.state(a1), None, "gone");
}

#[test]
fn the_first_slot_past_the_table_is_no_thread() {
    let mut t = table(LOTTERY);
    let x = spawn(&mut t, 1);
    let a = t.create_currency(BASE_CURRENCY, 10).unwrap();
    let past = t.threads.len();
    assert!(t.threads.get(past).is_none());
    assert!(!t.unblock(past));
    assert_eq!(t.set_currency(past, a, 1), Err(SchedError::UnknownThread));
    assert_eq!(t.currency_of(past), None);
    assert!(!t.set_weight(past, 3));
    assert!(!t.join(past, x));
}

#[test]
fn the_waiting_set_keeps_a_words_other_members_when_one_leaves() {
    let mut b = slots::Bits::new();
    for m in [4_100, 4_105, 9_000] {
        b.insert(m);
    }
    b.remove(4_100);
    assert_eq!(b.next_from(0), Some(4_105), "still summarised");
    b.remove(9_000);
    assert_eq!(b.next_from(100), Some(4_105));
    assert!(!b.is_empty());
    b.remove(4_105);
    assert!(b.is_empty());
}

#[test]
fn the_waiting_set_finds_a_member_in_the_next_word() {
    let mut b = slots::Bits::new();
    b.insert(70);
    assert_eq!(b.next_from(0), Some(70));
    b.insert(4_160);
    assert_eq!(
        b.next_from(71),
        Some(4_160),
        "the next summary word's first"
    );
}

#[test]
fn a_thread_cannot_join_itself_and_exits_once() {
    let mut t = table(STRIDE);
    let x = spawn(&mut t, 1);
    let y = spawn(&mut t, 1);
    assert!(!t.join(x, x), "it would wait for itself for ever");
    assert_eq!(t.threads[x].joiner, NONE);
    t.exit(y);
    t.exit(y);
    assert_eq!(t.live(), 1, "an exit counts once");
}

#[test]
fn an_exiting_thread_whose_charge_is_refused_still_leaves_the_policy() {
    for kind in every_kind() {
        let mut t = table(kind);
        let a = spawn(&mut t, 1);
        let _b = spawn(&mut t, 1);
        assert_eq!(t.start(0, 0), Some(a));
        t.exit(a);
        // Stopped as from core 1, where the policy does not have it.
        t.stop(1, a, Q, RunEnd::Yielded, &no_memory);
        assert_eq!(t.state(a), None, "{kind:?}");
        assert_eq!(t.policy.as_ref().unwrap().len(), 1, "{kind:?}");
        assert_eq!(t.audit().ghosts, 0, "{kind:?}");
    }
}

#[test]
fn a_yield_is_a_wait_from_the_stop() {
    let mut t = timed_table(STRIDE);
    at(0);
    let a = spawn(&mut t, 1);
    assert_eq!(t.start(0, 0), Some(a));
    t.stop_ran_at(0, a, 100, 100, 100, RunEnd::Yielded, &no_memory);
    at(700);
    assert_eq!(t.start(0, 0), Some(a));
    assert_eq!(t.threads[a].waits.count(), 2, "its first wait and this one");
    assert_eq!(t.threads[a].waits.max_ns(), 600, "from the yield");
}

#[test]
fn the_control_thread_blocking_past_its_deadline_stays_runnable() {
    let mut t = table(STRIDE);
    let _worker = spawn(&mut t, 1);
    let main = t.spawn_control(nothing, 0, |_| UserContext::ZERO).unwrap();
    assert_eq!(t.start(0, 0), Some(main));
    t.wake_at(main, 50);
    assert!(t.block(main));
    // Charged as blocked at 100, past its deadline: it never sleeps.
    t.stop_ran(0, main, 10, 100, RunEnd::Blocked, &no_memory);
    assert_eq!(t.state(main), Some(ThreadState::Runnable));
    assert_eq!(t.start(0, 100), Some(main), "first again, with no walk");
}

#[test]
fn a_pending_wake_up_forces_every_walk_until_it_is_seen() {
    let mut t = table(RR);
    let a = spawn(&mut t, 1);
    t.start(0, 0);
    t.wake_at(a, 1_000_000);
    assert!(t.unblock(a));
    let walks = t.walks;
    t.wake_due(20, &no_memory);
    t.wake_due(30, &no_memory);
    assert_eq!(
        t.walks,
        walks + 2,
        "a walk leaves a pending wake-up untimed"
    );
}

#[test]
fn an_exiting_thread_takes_no_currency() {
    let mut t = table(LOTTERY);
    let a = spawn(&mut t, 1);
    let c = t.create_currency(BASE_CURRENCY, 10).unwrap();
    assert_eq!(t.start(0, 0), Some(a));
    t.exit(a);
    assert_eq!(t.set_currency(a, c, 5), Err(SchedError::UnknownThread));
    assert_eq!(t.currency_of(a), None);
}

#[test]
fn a_pick_over_a_stale_current_ends_the_old_claim() {
    // A broken caller starts core 0 again without stopping its thread
    // (charged behind the table's back): the thread it overwrote no longer
    // counts as on core 0, so its next pick is no double run.
    let mut t = table(RR);
    let a = spawn(&mut t, 1);
    let b = spawn(&mut t, 1);
    assert_eq!(t.start(0, 0), Some(a));
    let p = t.policy.as_mut().unwrap();
    p.charge(a as u32, 0, 10, RunEnd::Blocked).unwrap();
    assert_eq!(t.start(0, 10), Some(b));
    assert_eq!(t.threads[a].on_core, NONE);
    t.policy.as_mut().unwrap().wake(a as u32).unwrap();
    assert_eq!(t.start(1, 20), Some(a));
    assert_eq!(t.audit().double_runs, 0);
}

#[test]
fn the_first_threads_loan_is_given_again_after_a_swap_too() {
    // The lender in slot 0: every slot is looked at.
    let mut t = table(STRIDE);
    let waiter = spawn(&mut t, 9);
    let holder = spawn(&mut t, 1);
    assert_eq!(waiter, 0);
    let mut now = 0;
    run_until_picked(&mut t, 0, waiter, &mut now);
    assert!(t.block(waiter));
    t.lend_while_blocked(waiter, holder);
    t.stop(0, waiter, now, RunEnd::Blocked, &no_memory);
    t.set_policy(build(LOTTERY, Q, 2, 7)).unwrap();
    assert_eq!(t.lends, 1);
    assert_eq!(t.policy.as_mut().unwrap().take_back(waiter as u32), Ok(()));
}

#[test]
fn a_thread_woken_on_its_way_to_sleep_waits_from_its_stop() {
    let mut t = timed_table(STRIDE);
    at(0);
    let a = spawn(&mut t, 1);
    assert_eq!(t.start(0, 0), Some(a));
    t.wake_at(a, 50);
    t.stop_ran_at(0, a, 100, 100, 100, RunEnd::Blocked, &no_memory);
    assert_eq!(t.state(a), Some(ThreadState::Runnable));
    at(400);
    assert_eq!(t.start(0, 0), Some(a));
    assert_eq!(t.threads[a].waits.count(), 2);
    assert_eq!(t.threads[a].waits.max_ns(), 300, "from the stop");
}

#[test]
fn an_exiting_thread_is_neither_reported_nor_a_ghost_and_a_ghost_is_seen() {
    let mut t = table(LOTTERY);
    let a = spawn(&mut t, 1);
    let b = spawn(&mut t, 2);
    let c = t.create_currency(BASE_CURRENCY, 10).unwrap();
    t.set_currency(a, c, 5).unwrap();
    assert_eq!(t.start(0, 0), Some(a));
    t.exit(a);
    // Still in the policy until it is charged, but not live.
    let mut out = [(0, 0, 0, ThreadState::Runnable); 4];
    assert_eq!(t.snapshot(&mut out).0, 1, "only live threads");
    assert_eq!(out[0].0, b as u32);
    assert_eq!(t.currency_of(a), None);
    assert_eq!(t.audit().violations(), 0, "an exiting thread is no ghost");
    // A record of a free slot is one.
    let free = b + 1;
    assert!(free < t.threads.len());
    t.policy.as_mut().unwrap().add(free as u32, 1).unwrap();
    assert_eq!(t.audit().ghosts, 1);
}

#[test]
fn a_refused_funding_is_not_remembered_for_a_swap_back() {
    let mut t = table(LOTTERY);
    let (x, base) = (spawn(&mut t, 1), spawn(&mut t, 100));
    let a = t.create_currency(BASE_CURRENCY, 100).unwrap();
    t.set_currency(x, a, 10).unwrap();
    assert_eq!(t.fund_currency(a, 0), Err(SchedError::ZeroWeight));
    assert_eq!(weights(&t, &[x, base]), [100, 100]);
    t.set_policy(build(STRIDE, Q, 2, 7)).unwrap();
    t.set_policy(build(LOTTERY, Q, 2, 8)).unwrap();
    // A is made again with its funding of 100, x back in it.
    t.fund_currency(a, 300).unwrap();
    assert_eq!(weights(&t, &[x, base]), [300, 100]);
}

#[test]
fn a_thread_handed_back_before_it_ran_waits_on_as_one_wait() {
    let mut t = timed_table(STRIDE);
    at(1_000);
    let a = spawn(&mut t, 1);
    at(1_500);
    assert_eq!(t.start(0, 0), Some(a));
    t.stop_ran_at(0, a, 1_500, 3_000, 3_000, RunEnd::Preempted, &no_memory);
    at(9_000);
    assert_eq!(t.start(0, 0), Some(a), "picked at 9,000");
    // Its core's turn ended before it resumed: handed back at 9,400.
    t.hand_back(0, a, 40, 9_400, 9_400, &no_memory);
    assert_eq!(t.state(a), Some(ThreadState::Runnable));
    at(12_000);
    assert_eq!(t.start(1, 0), Some(a));
    let w = &t.threads[a].waits;
    assert_eq!(
        (w.count(), w.max_ns()),
        (2, 9_000),
        "its spawn's wait, and one from 3,000 to 12,000: not 6,000 and 2,600"
    );
}

#[test]
fn a_hand_back_after_the_sampler_read_the_pick_still_records_the_whole_wait() {
    let mut t = timed_table(STRIDE);
    at(1_000);
    let a = spawn(&mut t, 1);
    assert_eq!(t.start(0, 0), Some(a));
    t.stop_ran_at(0, a, 1_500, 3_000, 3_000, RunEnd::Preempted, &no_memory);
    at(9_000);
    assert_eq!(t.start(0, 0), Some(a));
    let mut sampler = abi::waits::WaitHistogram::EMPTY;
    t.threads[a].waits.catch_up(&mut sampler, |_, _| {});
    t.hand_back(0, a, 40, 9_400, 9_400, &no_memory);
    at(12_000);
    assert_eq!(t.start(1, 0), Some(a));
    let w = &t.threads[a].waits;
    assert_eq!(
        (w.count(), w.max_ns()),
        (3, 9_000),
        "the 6,000 the sampler has sent stays; the whole wait is recorded"
    );
}
