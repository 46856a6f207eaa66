use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

struct Awake<'a> {
    asleep: &'a BTreeSet<u32>,
    forfeits: BTreeMap<u32, u32>,
}

impl Walk for Awake<'_> {
    fn runnable(&mut self, env: EnvId) -> bool {
        !self.asleep.contains(&env.0)
    }
    fn forfeited(&mut self, env: EnvId) {
        *self.forfeits.entry(env.0).or_default() += 1;
    }
}

fn walk(asleep: &BTreeSet<u32>) -> Awake<'_> {
    Awake {
        asleep,
        forfeits: BTreeMap::new(),
    }
}

#[test]
fn named_any_free_and_errors() {
    let q = Quota::new(2);
    let mut v = SliceVector::new(4, 1000);
    assert_eq!(v.alloc_named(1, EnvId(7), &q), Ok(()));
    assert_eq!(v.alloc_named(1, EnvId(8), &q), Err(SliceError::SlotTaken));
    assert_eq!(v.alloc_named(9, EnvId(7), &q), Err(SliceError::NoSuchSlot));
    assert_eq!(v.alloc_any(EnvId(7), &q), Ok(0));
    assert_eq!(v.alloc_any(EnvId(7), &q), Err(SliceError::QuotaExceeded));
    assert_eq!(v.free(1, EnvId(8), &q), Err(SliceError::NotOwner));
    assert_eq!(v.free(1, EnvId(7), &q), Ok(()));
    assert_eq!(q.held(), 1);
    assert_eq!(v.free_all(EnvId(7), &q), 1);
    assert_eq!(q.held(), 0);
    let big = Quota::new(10);
    for _ in 0..4 {
        v.alloc_any(EnvId(1), &big).unwrap();
    }
    assert_eq!(v.alloc_any(EnvId(1), &big), Err(SliceError::NoFreeSlot));
}

#[test]
fn walk_is_round_robin_skips_sleepers_and_idles_unowned() {
    let q = Quota::new(10);
    let mut v = SliceVector::new(4, 1000);
    v.alloc_named(0, EnvId(1), &q).unwrap();
    v.alloc_named(1, EnvId(2), &q).unwrap();
    v.alloc_named(3, EnvId(3), &q).unwrap();
    let asleep: BTreeSet<u32> = [2].into();
    let mut w = walk(&asleep);
    assert_eq!(
        v.next_turn(&mut w),
        Turn::Run {
            slot: 0,
            owner: EnvId(1),
            length_ns: 1000
        }
    );
    assert_eq!(
        v.next_turn(&mut w),
        Turn::Idle {
            slot: 2,
            length_ns: 1000
        }
    );
    assert_eq!(
        v.next_turn(&mut w),
        Turn::Run {
            slot: 3,
            owner: EnvId(3),
            length_ns: 1000
        }
    );
    assert_eq!(
        v.next_turn(&mut w),
        Turn::Run {
            slot: 0,
            owner: EnvId(1),
            length_ns: 1000
        }
    );
    let all: BTreeSet<u32> = [1, 2, 3].into();
    let mut v2 = SliceVector::new(2, 10);
    v2.alloc_named(0, EnvId(1), &q).unwrap();
    v2.alloc_named(1, EnvId(2), &q).unwrap();
    assert_eq!(v2.next_turn(&mut walk(&all)), Turn::NothingRunnable);
}

#[test]
fn overrun_is_charged_back_exactly() {
    let q = Quota::new(10);
    let mut v = SliceVector::new(2, 1000);
    v.alloc_named(0, EnvId(1), &q).unwrap();
    v.alloc_named(1, EnvId(2), &q).unwrap();
    let none = BTreeSet::new();
    let mut w = walk(&none);
    assert!(matches!(v.next_turn(&mut w), Turn::Run { slot: 0, .. }));
    assert!(!v.record_repossession(0, 5, 2300));
    assert!(matches!(v.next_turn(&mut w), Turn::Run { slot: 1, .. }));
    // Debt 2300: two whole turns forfeited, then a turn of 700.
    assert!(matches!(v.next_turn(&mut w), Turn::Run { slot: 1, .. }));
    assert!(matches!(v.next_turn(&mut w), Turn::Run { slot: 1, .. }));
    assert_eq!(
        v.next_turn(&mut w),
        Turn::Run {
            slot: 0,
            owner: EnvId(1),
            length_ns: 700
        }
    );
    assert_eq!(w.forfeits.get(&1), Some(&2));
    assert_eq!(v.repossessions().count(), 1);
}

#[test]
fn late_yields_are_charged_like_repossessions_but_not_logged() {
    let q = Quota::new(10);
    let mut v = SliceVector::new(2, 1000);
    v.alloc_named(0, EnvId(1), &q).unwrap();
    v.charge_overrun(0, 300);
    v.charge_overrun(1, 300); // unowned: nothing to charge
    assert_eq!(v.debt(0), Ok(300));
    assert_eq!(v.debt(1), Ok(0));
    assert_eq!(v.repossessions().count(), 0);
}

#[test]
fn repeat_offenders_lose_the_slot() {
    let q = Quota::new(10);
    let mut v = SliceVector::new(1, 1000);
    v.set_offender_limit(3);
    v.alloc_named(0, EnvId(1), &q).unwrap();
    let none = BTreeSet::new();
    let mut revoked = false;
    for t in 0..10 {
        if let Turn::Run { .. } = v.next_turn(&mut walk(&none)) {
            revoked = v.record_repossession(0, t, 1);
            if revoked {
                break;
            }
        }
    }
    assert!(revoked);
    assert_eq!(v.owner(0), Ok(None));
}

#[derive(Debug, Clone)]
enum Op {
    Named(usize, usize, u32),
    Any(usize, u32),
    Free(usize, usize, u32),
    FreeAll(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize, 0..6usize, 0..4u32).prop_map(|(c, s, e)| Op::Named(c, s, e)),
        (0..3usize, 0..4u32).prop_map(|(c, e)| Op::Any(c, e)),
        (0..3usize, 0..6usize, 0..4u32).prop_map(|(c, s, e)| Op::Free(c, s, e)),
        (0..4u32).prop_map(Op::FreeAll),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random allocation traffic over three cores sharing quotas, against a
    /// map model: ownership agrees, quotas are never exceeded, free_all
    /// returns everything.
    #[test]
    fn allocation_matches_model(ops in proptest::collection::vec(op(), 1..200)) {
        let quotas: Vec<Quota> = (0..4).map(|e| Quota::new(e + 2)).collect();
        let mut vecs: Vec<SliceVector> = (0..3).map(|_| SliceVector::new(5, 100)).collect();
        let mut model: BTreeMap<(usize, usize), u32> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Named(c, s, e) => {
                    let ok = vecs[c].alloc_named(s, EnvId(e), &quotas[e as usize]).is_ok();
                    let held = model.values().filter(|&&o| o == e).count() as u32;
                    let expect = s < 5 && !model.contains_key(&(c, s)) && held < e + 2;
                    prop_assert_eq!(ok, expect);
                    if ok { model.insert((c, s), e); }
                }
                Op::Any(c, e) => {
                    if let Ok(s) = vecs[c].alloc_any(EnvId(e), &quotas[e as usize]) {
                        prop_assert!(model.insert((c, s), e).is_none());
                    }
                }
                Op::Free(c, s, e) => {
                    let ok = vecs[c].free(s, EnvId(e), &quotas[e as usize]).is_ok();
                    prop_assert_eq!(ok, model.get(&(c, s)) == Some(&e));
                    if ok { model.remove(&(c, s)); }
                }
                Op::FreeAll(e) => {
                    let n: usize = vecs.iter_mut().map(|v| v.free_all(EnvId(e), &quotas[e as usize])).sum();
                    let before = model.len();
                    model.retain(|_, o| *o != e);
                    prop_assert_eq!(n, before - model.len());
                }
            }
            for (e, q) in quotas.iter().enumerate() {
                let held = model.values().filter(|&&o| o == e as u32).count() as u32;
                prop_assert_eq!(q.held(), held);
                prop_assert!(held <= e as u32 + 2);
            }
            for (c, v) in vecs.iter().enumerate() {
                for s in 0..5 {
                    prop_assert_eq!(v.owner(s).unwrap().map(|x| x.0), model.get(&(c, s)).copied());
                }
            }
        }
    }

    /// Over whole rounds: each owned runnable slot gets exactly one turn,
    /// sleepers none, unowned slots are idle; time is conserved with debt
    /// (granted + forfeited + idle + paid-back = slots * length).
    #[test]
    fn walk_gives_one_turn_per_round_and_conserves_time(
        owners in proptest::collection::vec(proptest::option::of(0..4u32), 1..12),
        asleep in proptest::collection::btree_set(0..4u32, 0..3),
        overruns in proptest::collection::vec(0..2500u64, 0..6),
    ) {
        let q = Quota::new(100);
        let slice = 1000;
        let mut v = SliceVector::new(owners.len(), slice);
        for (s, o) in owners.iter().enumerate() {
            if let Some(e) = o { v.alloc_named(s, EnvId(*e), &q).unwrap(); }
        }
        let runnable_slots = owners.iter().filter(|o| o.is_some_and(|e| !asleep.contains(&e))).count();
        let idle_slots = owners.iter().filter(|o| o.is_none()).count();
        let mut debt_total: u64 = 0;
        for (i, &o) in overruns.iter().enumerate() {
            let slot = i % owners.len();
            if owners[slot].is_some() {
                v.record_repossession(slot, 0, o);
                debt_total += o;
            }
        }
        let mut w = walk(&asleep);
        let mut turns = BTreeMap::new();
        let mut granted = 0u64;
        let decisions = runnable_slots + idle_slots;
        // One round of decisions (forfeits are consumed inside the walk).
        for _ in 0..decisions {
            match v.next_turn(&mut w) {
                Turn::Run { slot, owner, length_ns } => {
                    prop_assert!(!asleep.contains(&owner.0));
                    *turns.entry(slot).or_insert(0) += 1;
                    granted += length_ns;
                }
                Turn::Idle { slot, .. } => { *turns.entry(slot).or_insert(0) += 1; }
                // Every runnable owner asleep or paying debt: the core idles a slice.
                Turn::NothingRunnable => break,
            }
            if turns.values().sum::<usize>() >= decisions { break; }
        }
        for (&slot, &n) in &turns {
            if let Some(e) = owners[slot] { prop_assert!(!asleep.contains(&e)); }
            // Without debt, one round gives every runnable or idle slot
            // exactly one turn. (With debt, forfeits shorten the round, so
            // the same slot can come up again within `decisions` calls.)
            if debt_total == 0 {
                prop_assert_eq!(n, 1, "slot {} got {} turns", slot, n);
            }
        }
        if debt_total == 0 {
            prop_assert_eq!(turns.len(), decisions);
        }
        let forfeits: u64 = w.forfeits.values().map(|&n| u64::from(n)).sum();
        let remaining: u64 = (0..owners.len()).map(|s| v.debt(s).unwrap()).sum();
        // Debt is either still owed or was paid by shortened or forfeited turns.
        let paid = debt_total - remaining;
        let run_turns = turns.iter().filter(|(s, _)| owners[**s].is_some()).map(|(_, n)| *n as u64).sum::<u64>();
        prop_assert_eq!(granted + paid, (run_turns + forfeits) * slice);
    }
}
