//! Unit tests: each operation and error, the walk, charge-back,
//! repossession, offenders, accounting.

use super::*;
use std::collections::BTreeSet;

const A: EnvId = EnvId(1);
const B: EnvId = EnvId(2);
const C: EnvId = EnvId(3);
const MS: u64 = 1_000_000;

/// A walk over a set of sleepers that records forfeits.
struct Awake<'a> {
    asleep: &'a BTreeSet<EnvId>,
    forfeits: Vec<EnvId>,
    asked: Vec<EnvId>,
}

impl Walk for Awake<'_> {
    fn runnable(&mut self, env: EnvId) -> bool {
        self.asked.push(env);
        !self.asleep.contains(&env)
    }
    fn forfeited(&mut self, env: EnvId) {
        self.forfeits.push(env);
    }
}

fn awake(asleep: &BTreeSet<EnvId>) -> Awake<'_> {
    Awake {
        asleep,
        forfeits: Vec::new(),
        asked: Vec::new(),
    }
}

fn all_awake(_: EnvId) -> bool {
    true
}

#[test]
fn config_errors() {
    assert_eq!(
        SliceVector::try_new(0, MS).unwrap_err(),
        ConfigError::NoSlots
    );
    assert_eq!(
        SliceVector::try_new(MAX_SLOTS + 1, MS).unwrap_err(),
        ConfigError::TooManySlots
    );
    assert_eq!(
        SliceVector::try_new(4, 0).unwrap_err(),
        ConfigError::ZeroSlice
    );
    assert_eq!(
        SliceVector::try_new(MAX_SLOTS, MS).unwrap().len(),
        MAX_SLOTS
    );
    let mut v = SliceVector::new(4, MS);
    let bad = |repossessions, window| OffenderPolicy {
        repossessions,
        window,
    };
    assert_eq!(
        v.set_offender_policy(bad(1, 0)),
        Err(ConfigError::BadWindow)
    );
    assert_eq!(
        v.set_offender_policy(bad(1, 65)),
        Err(ConfigError::BadWindow)
    );
    assert_eq!(
        v.set_offender_policy(bad(5, 4)),
        Err(ConfigError::LimitOverWindow)
    );
    assert_eq!(v.offender_policy(), OffenderPolicy::NEVER);
    v.set_offender_policy(bad(2, 64)).unwrap();
    assert_eq!(v.offender_policy(), bad(2, 64));
    v.set_offender_limit(40);
    assert_eq!(v.offender_policy(), bad(32, 32));
}

#[test]
#[should_panic]
fn new_panics_on_a_bad_config() {
    let _ = SliceVector::new(0, MS);
}

#[test]
fn named_any_free_and_errors() {
    let qa = Quota::new(2);
    let qb = Quota::new(10);
    let mut v = SliceVector::new(3, MS);
    assert_eq!(v.free_count(), 3);
    v.alloc_named(1, A, &qa).unwrap();
    assert_eq!(v.alloc_named(1, B, &qb), Err(SliceError::SlotTaken));
    assert_eq!(v.alloc_named(3, B, &qb), Err(SliceError::NoSuchSlot));
    // Failed allocations take no quota.
    assert_eq!(qb.held(), 0);
    assert_eq!(v.alloc_any(A, &qa), Ok(0));
    assert_eq!(qa.held(), 2);
    assert_eq!(v.alloc_any(A, &qa), Err(SliceError::QuotaExceeded));
    assert_eq!(v.owner(2), Ok(None));
    assert_eq!(v.alloc_any(B, &qb), Ok(2));
    assert_eq!(v.alloc_any(B, &qb), Err(SliceError::NoFreeSlot));
    assert_eq!(qb.held(), 1);
    assert_eq!(v.free(1, B, &qb), Err(SliceError::NotOwner));
    assert_eq!(v.free(7, A, &qa), Err(SliceError::NoSuchSlot));
    assert_eq!(v.owner(7), Err(SliceError::NoSuchSlot));
    assert_eq!(v.debt(7), Err(SliceError::NoSuchSlot));
    assert_eq!(v.slot_info(7), Err(SliceError::NoSuchSlot));
    assert_eq!(v.held_by(A), 2);
    assert_eq!(v.slots_of(A).collect::<Vec<_>>(), [0, 1]);
    v.free(1, A, &qa).unwrap();
    assert_eq!(v.free(1, A, &qa), Err(SliceError::NotOwner));
    assert_eq!(qa.held(), 1);
    assert_eq!(v.owner(1), Ok(None));
    assert_eq!(v.free_count(), 1);
    assert_eq!(v.free_all(A, &qa), 1);
    assert_eq!(v.free_all(A, &qa), 0);
    assert_eq!(qa.held(), 0);
    assert_eq!(v.free_count(), 2);
    assert_eq!(v.slots_of(B).collect::<Vec<_>>(), [2]);
}

#[test]
fn quota_spans_vectors() {
    let q = Quota::new(3);
    let mut cores = [SliceVector::new(2, MS), SliceVector::new(2, MS)];
    assert_eq!(cores[0].alloc_any(A, &q), Ok(0));
    assert_eq!(cores[1].alloc_any(A, &q), Ok(0));
    assert_eq!(cores[1].alloc_any(A, &q), Ok(1));
    assert_eq!(cores[0].alloc_any(A, &q), Err(SliceError::QuotaExceeded));
    cores[1].free(0, A, &q).unwrap();
    assert_eq!(cores[0].alloc_any(A, &q), Ok(1));
    assert_eq!(q.held(), 3);
    let freed: usize = cores.iter_mut().map(|c| c.free_all(A, &q)).sum();
    assert_eq!((freed, q.held()), (3, 0));
    assert!(!q.give_back(), "nothing held");
    assert_eq!(q.held(), 0);
    assert_eq!(q.limit(), 3);
}

#[test]
fn walk_is_round_robin_skips_sleepers_and_idles_unowned() {
    let q = Quota::new(10);
    let mut v = SliceVector::new(5, MS);
    v.alloc_named(0, A, &q).unwrap();
    v.alloc_named(1, B, &q).unwrap();
    v.alloc_named(3, A, &q).unwrap();
    v.alloc_named(4, C, &q).unwrap();
    let asleep: BTreeSet<_> = [B].into();
    let mut w = awake(&asleep);
    let run = |slot, owner| Turn::Run {
        slot,
        owner,
        length_ns: MS,
    };
    assert_eq!(v.current(), None);
    assert_eq!(v.next_turn(10, &mut w), run(0, A));
    assert_eq!((v.current(), v.turn_started_ns()), (Some(0), 10));
    // Slot 1's owner sleeps: skipped, not charged.
    assert_eq!(
        v.next_turn(20, &mut w),
        Turn::Idle {
            slot: 2,
            length_ns: MS
        }
    );
    assert_eq!((v.current(), v.turn_started_ns()), (Some(2), 20));
    assert_eq!(v.next_turn(30, &mut w), run(3, A));
    assert_eq!(v.next_turn(40, &mut w), run(4, C));
    assert_eq!(v.stats().rounds, 1);
    assert_eq!(v.next_slot(), 0);
    assert_eq!(v.next_turn(50, &mut w), run(0, A));
    assert_eq!(w.asked, [A, B, A, C, A]);
    let s = v.stats();
    assert_eq!((s.turns, s.idle_turns, s.skipped, s.forfeits), (4, 1, 1, 0));
    assert_eq!((s.granted_ns, s.idle_ns, s.repaid_ns), (4 * MS, MS, 0));
    let info = v.slot_info(1).unwrap();
    assert_eq!((info.turns, info.forfeits, info.debt_ns), (0, 0, 0));
    assert_eq!(v.slot_info(0).unwrap().turns, 2);
}

#[test]
fn nothing_runnable_after_a_full_pass() {
    let q = Quota::new(10);
    let mut v = SliceVector::new(3, MS);
    for s in 0..3 {
        v.alloc_named(s, A, &q).unwrap();
    }
    let asleep: BTreeSet<_> = [A].into();
    let mut w = awake(&asleep);
    assert_eq!(v.next_turn(0, &mut w), Turn::NothingRunnable);
    assert_eq!(w.asked.len(), 3, "one pass, no spinning");
    assert_eq!(v.current(), None);
    assert_eq!(v.next_slot(), 0);
    let s = v.stats();
    assert_eq!((s.nothing_runnable, s.skipped, s.rounds), (1, 3, 1));
    // It wakes: its next slot runs.
    assert!(matches!(
        v.next_turn(5, &mut all_awake),
        Turn::Run { slot: 0, .. }
    ));
}

#[test]
fn a_parked_owners_turns_go_to_the_next_runnable_slot_uncharged_until_its_deadline() {
    let q = Quota::new(10);
    let mut v = SliceVector::new(3, MS);
    v.alloc_named(0, A, &q).unwrap();
    v.alloc_named(1, A, &q).unwrap();
    v.alloc_named(2, B, &q).unwrap();
    // A overran: one slice of debt, which a parked turn must not repay.
    assert!(v.charge_overrun(0, MS));
    assert_eq!(v.park(A, 3 * MS), 2, "both of A's slots");
    assert_eq!(v.park(C, 3 * MS), 0, "C holds no slot here");
    assert_eq!(v.next_unpark(0), Some(3 * MS));
    let none = BTreeSet::new();
    let mut w = awake(&none);
    for now in [0, MS, 2 * MS] {
        assert_eq!(
            v.next_turn(now, &mut w),
            Turn::Run {
                slot: 2,
                owner: B,
                length_ns: MS
            },
            "at {now}"
        );
    }
    assert!(!w.asked.contains(&A), "a parked owner is not even asked");
    assert_eq!(v.debt(0), Ok(MS), "nothing repaid while parked");
    assert_eq!(v.slot_info(0).unwrap().forfeits, 0);
    assert_eq!(v.slot_info(1).unwrap().turns, 0);
    // At the deadline A is back: its debt forfeits slot 0, slot 1 runs.
    assert_eq!(v.next_unpark(3 * MS), None);
    assert_eq!(
        v.next_turn(3 * MS, &mut w),
        Turn::Run {
            slot: 1,
            owner: A,
            length_ns: MS
        }
    );
}

#[test]
fn a_core_whose_owners_are_all_parked_has_nothing_runnable_until_the_earliest_deadline() {
    let q = Quota::new(10);
    let mut v = SliceVector::new(2, MS);
    v.alloc_named(0, A, &q).unwrap();
    v.alloc_named(1, B, &q).unwrap();
    v.park(A, 5 * MS);
    v.park(B, 4 * MS);
    assert_eq!(v.next_turn(0, &mut all_awake), Turn::NothingRunnable);
    assert_eq!(v.stats().skipped, 2);
    assert_eq!(v.next_unpark(0), Some(4 * MS));
    assert!(matches!(
        v.next_turn(4 * MS, &mut all_awake),
        Turn::Run { owner: B, .. }
    ));
    // A later park replaces an earlier one; a freed slot forgets it.
    v.park(A, 9 * MS);
    assert_eq!(v.next_unpark(5 * MS), Some(9 * MS));
    v.free(0, A, &q).unwrap();
    assert_eq!(v.next_unpark(5 * MS), None);
    v.alloc_named(0, C, &q).unwrap();
    assert!(matches!(
        v.next_turn(5 * MS, &mut all_awake),
        Turn::Run { owner: C, .. }
    ));
}

#[test]
fn overrun_is_charged_back_exactly() {
    let q = Quota::new(10);
    let mut v = SliceVector::new(2, 1000);
    v.alloc_named(0, A, &q).unwrap();
    v.alloc_named(1, B, &q).unwrap();
    let none = BTreeSet::new();
    let mut w = awake(&none);
    assert!(matches!(v.next_turn(0, &mut w), Turn::Run { slot: 0, .. }));
    let r = v.record_repossession(0, 1_300, 2_300, &q).unwrap();
    assert_eq!(
        r,
        Repossessed {
            env: A,
            debt_ns: 2_300,
            lost_slot: false
        }
    );
    assert!(matches!(
        v.next_turn(1_300, &mut w),
        Turn::Run { slot: 1, .. }
    ));
    // 2300 of debt: two whole turns forfeited, then 700 off the third.
    assert!(matches!(
        v.next_turn(2_300, &mut w),
        Turn::Run { slot: 1, .. }
    ));
    assert_eq!(w.forfeits, [A]);
    assert_eq!(v.debt(0), Ok(1_300));
    assert!(matches!(
        v.next_turn(3_300, &mut w),
        Turn::Run { slot: 1, .. }
    ));
    assert_eq!(w.forfeits, [A, A]);
    assert_eq!(
        v.next_turn(4_300, &mut w),
        Turn::Run {
            slot: 0,
            owner: A,
            length_ns: 700
        }
    );
    assert_eq!(v.debt(0), Ok(0));
    let s = v.stats();
    assert_eq!((s.forfeits, s.repaid_ns), (2, 2_300));
    assert_eq!(v.slot_info(0).unwrap().forfeits, 2);
    let log: Vec<_> = v.repossessions().copied().collect();
    assert_eq!(
        log,
        [Repossession {
            slot: 0,
            env: A,
            time_ns: 1_300,
            overrun_ns: 2_300,
            lost_slot: false
        }]
    );
}

#[test]
fn late_yields_are_charged_like_repossessions_but_not_logged() {
    let q = Quota::new(10);
    let mut v = SliceVector::new(2, 1000);
    v.alloc_named(0, EnvId(1), &q).unwrap();
    assert!(v.charge_overrun(0, 300));
    assert!(!v.charge_overrun(1, 300)); // unowned: nothing to charge
    assert!(!v.charge_overrun(9, 300));
    assert_eq!(v.debt(0), Ok(300));
    assert_eq!(v.debt(1), Ok(0));
    assert_eq!(v.repossessions().count(), 0);
}

/// Issue 14, hole 8: `A` frees the slot of its running turn and `B`
/// allocates it; `A`'s overrun and offender record must land on `A`, not
/// on `B`, who did not run over.
#[test]
fn a_turns_overrun_is_charged_to_its_owner_not_to_whoever_holds_the_slot_now() {
    let (qa, qb) = (Quota::new(10), Quota::new(10));
    let (a, b) = (EnvId(1), EnvId(2));
    let mut v = SliceVector::new(3, 1000);
    v.set_offender_limit(1);
    v.alloc_named(0, a, &qa).unwrap();
    assert!(matches!(
        v.next_turn(0, &mut |_| true),
        Turn::Run { slot: 0, .. }
    ));
    v.free(0, a, &qa).unwrap();
    v.alloc_named(0, b, &qb).unwrap();
    // Repossessed: `A` holds nothing here, so its debt is carried.
    let r = v.record_repossession_of(0, a, 1_500, 500, &qa).unwrap();
    assert_eq!((r.env, r.debt_ns, r.lost_slot), (a, 500, false));
    assert_eq!(
        v.owner(0),
        Ok(Some(b)),
        "B keeps the slot (offender limit 1)"
    );
    assert_eq!(v.debt(0), Ok(0));
    assert_eq!(v.slot_info(0).unwrap().recent_repossessions, 0);
    assert_eq!(v.carried_debt(a), 500);
    assert_eq!(v.repossessions().last().unwrap().env, a);
    // A late yield of `A`'s, with `A` now holding slot 2: charged there.
    v.alloc_named(2, a, &qa).unwrap();
    assert_eq!(
        v.debt(2),
        Ok(500),
        "the carried debt moved onto the new slot"
    );
    assert_eq!(v.charge_overrun_of(0, a, 200), 700);
    assert_eq!((v.debt(0), v.debt(2)), (Ok(0), Ok(700)));
    // The owner still holding the slot: exactly `record_repossession`.
    let r = v.record_repossession_of(2, a, 3_000, 100, &qa).unwrap();
    assert!(r.lost_slot, "A's own slot, A's own offence");
    assert_eq!(qb.held(), 1);
}

#[test]
fn repossession_errors() {
    let q = Quota::new(10);
    let mut v = SliceVector::new(2, 1000);
    assert_eq!(
        v.record_repossession(2, 0, 5, &q),
        Err(SliceError::NoSuchSlot)
    );
    assert_eq!(v.record_repossession(1, 0, 5, &q), Err(SliceError::Unowned));
    assert_eq!(v.repossessions_logged(), 0);
    assert_eq!(v.stats().repossessions, 0);
}

#[test]
fn repeat_offenders_lose_the_slot() {
    let q = Quota::new(10);
    let mut v = SliceVector::new(2, 1000);
    v.set_offender_policy(OffenderPolicy {
        repossessions: 2,
        window: 3,
    })
    .unwrap();
    v.alloc_named(0, A, &q).unwrap();
    v.alloc_named(1, B, &q).unwrap();
    let mut t = 0;
    let mut turn_of_a = |v: &mut SliceVector| loop {
        t += 1000;
        if let Turn::Run { slot: 0, .. } = v.next_turn(t, &mut all_awake) {
            return t;
        }
    };
    // Repossessed in turns 1 and 4: three turns apart, never two within a
    // window of three.
    let at = turn_of_a(&mut v);
    assert!(!v.record_repossession(0, at, 10, &q).unwrap().lost_slot);
    for _ in 0..2 {
        turn_of_a(&mut v);
    }
    assert_eq!(v.slot_info(0).unwrap().recent_repossessions, 1);
    let at = turn_of_a(&mut v);
    assert!(!v.record_repossession(0, at, 10, &q).unwrap().lost_slot);
    // Turn 5 too: two within three turns.
    let at = turn_of_a(&mut v);
    let r = v.record_repossession(0, at, 10, &q).unwrap();
    assert_eq!(
        r,
        Repossessed {
            env: A,
            debt_ns: 10,
            lost_slot: true
        }
    );
    assert_eq!(v.owner(0), Ok(None));
    assert_eq!(q.held(), 1, "the lost slot's unit is back");
    // The debt stays with A on this core.
    assert_eq!(v.carried_debt(A), 10);
    assert_eq!(v.stats().revocations, 1);
    let log: Vec<_> = v.repossessions().map(|r| r.lost_slot).collect();
    assert_eq!(log, [false, false, true]);
    // Getting a slot back brings the debt along.
    v.alloc_named(0, A, &q).unwrap();
    assert_eq!((v.debt(0), v.carried_debt(A)), (Ok(10), 0));
    assert_eq!(v.slot_info(0).unwrap().recent_repossessions, 0);
}

#[test]
fn offender_limit_compat_counts_the_last_32_turns() {
    let q = Quota::new(10);
    let mut v = SliceVector::new(1, 1000);
    v.set_offender_limit(1);
    v.alloc_named(0, A, &q).unwrap();
    v.next_turn(0, &mut all_awake);
    assert!(v.record_repossession(0, 0, 1, &q).unwrap().lost_slot);
    v.set_offender_limit(0);
    v.alloc_named(0, A, &q).unwrap();
    for t in 0..100 {
        v.next_turn(t, &mut all_awake);
        assert!(!v.record_repossession(0, t, 0, &q).unwrap().lost_slot);
    }
}

#[test]
fn freeing_does_not_wipe_debt() {
    let q = Quota::new(10);
    let mut v = SliceVector::new(4, 1000);
    v.alloc_named(0, A, &q).unwrap();
    v.alloc_named(2, A, &q).unwrap();
    v.charge_overrun(0, 1500);
    // Moves to A's other slot here.
    v.free(0, A, &q).unwrap();
    assert_eq!(v.debt(2), Ok(1500));
    // Then carried while A has no slot here.
    v.free(2, A, &q).unwrap();
    assert_eq!(v.carried_debt(A), 1500);
    assert_eq!(v.alloc_any(A, &q), Ok(0));
    assert_eq!(v.debt(0), Ok(1500));
    // Teardown forgets it.
    v.free(0, A, &q).unwrap();
    assert_eq!(v.free_all(A, &q), 0);
    assert_eq!(v.carried_debt(A), 0);
    assert_eq!(q.held(), 0);
}

#[test]
fn carried_debt_is_bounded() {
    let q = Quota::new(100);
    let mut v = SliceVector::new(1, 1000);
    // CARRY_LEN + 1 debtors: the smallest debt is dropped.
    for e in 0..=CARRY_LEN as u32 {
        v.alloc_named(0, EnvId(e), &q).unwrap();
        v.charge_overrun(0, u64::from(e) + 1);
        v.free(0, EnvId(e), &q).unwrap();
    }
    assert_eq!(v.carried_debt(EnvId(0)), 0);
    for e in 1..=CARRY_LEN as u32 {
        assert_eq!(v.carried_debt(EnvId(e)), u64::from(e) + 1);
    }
    // A debt smaller than all remembered ones is the one dropped.
    v.alloc_named(0, EnvId(50), &q).unwrap();
    v.charge_overrun(0, 1);
    v.free(0, EnvId(50), &q).unwrap();
    assert_eq!(v.carried_debt(EnvId(50)), 0);
}

#[test]
fn repossession_log_is_a_bounded_ring() {
    let q = Quota::new(10);
    let mut v = SliceVector::new(1, 1000);
    v.alloc_named(0, A, &q).unwrap();
    for t in 0..(LOG_LEN as u64 + 5) {
        v.record_repossession(0, t, 1, &q).unwrap();
    }
    assert_eq!(v.repossessions_logged(), LOG_LEN as u64 + 5);
    let times: Vec<u64> = v.repossessions().map(|r| r.time_ns).collect();
    assert_eq!(times, (5..LOG_LEN as u64 + 5).collect::<Vec<_>>());
    assert_eq!(v.debt(0), Ok(LOG_LEN as u64 + 5));
}

#[test]
fn the_kernels_walker_struct_still_works() {
    struct Walker {
        forfeits: u32,
    }
    impl Walk for Walker {
        fn runnable(&mut self, _: EnvId) -> bool {
            true
        }
        fn forfeited(&mut self, _: EnvId) {
            self.forfeits += 1;
        }
    }
    let q = Quota::new(10);
    let mut v = SliceVector::new(2, 1000);
    v.alloc_named(0, A, &q).unwrap();
    v.alloc_named(1, B, &q).unwrap();
    v.charge_overrun(0, 1000);
    let mut w = Walker { forfeits: 0 };
    let dynamic: &mut dyn Walk = &mut w;
    assert!(matches!(v.next_turn(0, dynamic), Turn::Run { slot: 1, .. }));
    assert_eq!(w.forfeits, 1);
}

// ---- Plain data -----------------------------------------------------------

#[test]
fn plain_data_layouts() {
    // Fixed sizes (no pointers), so the kernel can export them.
    assert_eq!(core::mem::size_of::<WalkStats>(), 11 * 8);
    assert_eq!(core::mem::size_of::<Repossession>(), 32);
    assert_eq!(core::mem::size_of::<EnvId>(), 4);
}

#[test]
fn a_quota_lends_what_it_has_left_and_takes_it_back() {
    let q = Quota::new(5);
    assert!(q.try_take() && q.try_take());
    assert_eq!(q.take_up_to(1000), 3, "only what the limit leaves");
    assert_eq!(q.held(), 5);
    assert!(!q.try_take());
    assert_eq!(q.take_up_to(7), 0);
    assert!(q.give_back_n(3));
    assert!(!q.give_back_n(3), "more than held");
    assert_eq!(q.held(), 2);
    let unlimited = Quota::new(u32::MAX);
    assert_eq!(unlimited.take_up_to(u32::MAX), u32::MAX);
    assert_eq!(unlimited.take_up_to(1), 0);
}
