//! Property tests against simple models: allocation across several cores'
//! vectors sharing quotas; the walk, visit by visit.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use slices::{EnvId, OffenderPolicy, Quota, SliceError, SliceVector, Turn, Walk};

// ---- Allocation across cores ----------------------------------------------

const CORES: usize = 3;
const SLOTS: usize = 6;
const ENVS: u32 = 4;

#[derive(Debug, Clone)]
enum Op {
    Named(usize, usize, u32),
    Any(usize, u32),
    Free(usize, usize, u32),
    FreeAll(usize, u32),
    /// `free_all` on every core (teardown).
    Teardown(u32),
    /// A turn on a core, then maybe a repossession in it.
    Turn(usize, Option<u64>),
    Repossess(usize, usize, u64),
}

fn op() -> impl Strategy<Value = Op> {
    let core = 0..CORES;
    let slot = 0..SLOTS + 2; // some out of range
    let env = 0..ENVS;
    prop_oneof![
        4 => (core.clone(), slot.clone(), env.clone()).prop_map(|(c, s, e)| Op::Named(c, s, e)),
        4 => (core.clone(), env.clone()).prop_map(|(c, e)| Op::Any(c, e)),
        3 => (core.clone(), slot.clone(), env.clone()).prop_map(|(c, s, e)| Op::Free(c, s, e)),
        1 => (core.clone(), env.clone()).prop_map(|(c, e)| Op::FreeAll(c, e)),
        1 => env.prop_map(Op::Teardown),
        3 => (core.clone(), proptest::option::of(0u64..3000)).prop_map(|(c, r)| Op::Turn(c, r)),
        1 => (core, slot, 0u64..3000).prop_map(|(c, s, o)| Op::Repossess(c, s, o)),
    ]
}

struct Model {
    owners: [[Option<u32>; SLOTS]; CORES],
    limits: Vec<u32>,
}

impl Model {
    fn held(&self, env: u32) -> u32 {
        self.owners
            .iter()
            .flatten()
            .filter(|&&o| o == Some(env))
            .count() as u32
    }
}

fn check(model: &Model, cores: &[SliceVector], quotas: &[Quota]) -> Result<(), TestCaseError> {
    for (c, v) in cores.iter().enumerate() {
        for s in 0..SLOTS {
            prop_assert_eq!(v.owner(s).unwrap(), model.owners[c][s].map(EnvId));
        }
        prop_assert_eq!(
            v.free_count(),
            model.owners[c].iter().filter(|o| o.is_none()).count()
        );
        for e in 0..ENVS {
            let mine: Vec<usize> = (0..SLOTS)
                .filter(|&s| model.owners[c][s] == Some(e))
                .collect();
            prop_assert_eq!(v.slots_of(EnvId(e)).collect::<Vec<_>>(), mine.clone());
            prop_assert_eq!(v.held_by(EnvId(e)), mine.len());
        }
    }
    for e in 0..ENVS {
        let q = &quotas[e as usize];
        prop_assert_eq!(q.held(), model.held(e));
        prop_assert!(q.held() <= model.limits[e as usize], "quota exceeded");
    }
    Ok(())
}

// ---- The walk, visit by visit ----------------------------------------------

/// A walk whose answers come from a set of sleepers, counting forfeits.
struct Sleepers<'a> {
    asleep: &'a BTreeSet<u32>,
    forfeits: Vec<EnvId>,
}

impl Walk for Sleepers<'_> {
    fn runnable(&mut self, env: EnvId) -> bool {
        !self.asleep.contains(&env.0)
    }
    fn forfeited(&mut self, env: EnvId) {
        self.forfeits.push(env);
    }
}

#[derive(Debug, Clone)]
struct WalkCase {
    slice: u64,
    owners: Vec<Option<u32>>,
    debts: Vec<u64>,
    /// Per call: who sleeps, and an overrun charged in the turn (if any).
    calls: Vec<(BTreeSet<u32>, Option<u64>)>,
}

fn walk_case() -> impl Strategy<Value = WalkCase> {
    (1usize..12, 1u64..5000).prop_flat_map(|(n, slice)| {
        (
            Just(slice),
            proptest::collection::vec(proptest::option::weighted(0.8, 0..4u32), n),
            proptest::collection::vec(prop_oneof![Just(0u64), 0..3 * slice], n),
            proptest::collection::vec(
                (
                    proptest::collection::btree_set(0..4u32, 0..3),
                    proptest::option::weighted(0.3, 0..3 * slice),
                ),
                1..80,
            ),
        )
            .prop_map(|(slice, owners, debts, calls)| WalkCase {
                slice,
                owners,
                debts,
                calls,
            })
    })
}

// ---- Properties -------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random operations on three cores' vectors sharing per-environment
    /// quotas agree with a map of owners: ownership consistent, errors as
    /// predicted, quotas never exceeded and equal to the slots held,
    /// `free_all` returns everything.
    #[test]
    fn allocation_matches_model(
        limits in proptest::collection::vec(0u32..8, ENVS as usize),
        policy in (1u32..4, 0u32..4).prop_map(|(w, k)| OffenderPolicy { repossessions: k.min(w), window: w }),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let quotas: Vec<Quota> = limits.iter().map(|&l| Quota::new(l)).collect();
        let mut cores: Vec<SliceVector> = (0..CORES).map(|_| SliceVector::new(SLOTS, 1000)).collect();
        for v in &mut cores {
            v.set_offender_policy(policy).unwrap();
        }
        let mut model = Model { owners: [[None; SLOTS]; CORES], limits: limits.clone() };
        let mut now = 0;
        for op in ops {
            now += 1000;
            match op {
                Op::Named(c, s, e) => {
                    let expect = if s >= SLOTS {
                        Err(SliceError::NoSuchSlot)
                    } else if model.owners[c][s].is_some() {
                        Err(SliceError::SlotTaken)
                    } else if model.held(e) >= limits[e as usize] {
                        Err(SliceError::QuotaExceeded)
                    } else {
                        model.owners[c][s] = Some(e);
                        Ok(())
                    };
                    prop_assert_eq!(cores[c].alloc_named(s, EnvId(e), &quotas[e as usize]), expect);
                }
                Op::Any(c, e) => {
                    let free = model.owners[c].iter().position(|o| o.is_none());
                    let expect = match free {
                        None => Err(SliceError::NoFreeSlot),
                        Some(_) if model.held(e) >= limits[e as usize] => Err(SliceError::QuotaExceeded),
                        Some(s) => {
                            model.owners[c][s] = Some(e);
                            Ok(s)
                        }
                    };
                    prop_assert_eq!(cores[c].alloc_any(EnvId(e), &quotas[e as usize]), expect);
                }
                Op::Free(c, s, e) => {
                    let expect = if s >= SLOTS {
                        Err(SliceError::NoSuchSlot)
                    } else if model.owners[c][s] != Some(e) {
                        Err(SliceError::NotOwner)
                    } else {
                        model.owners[c][s] = None;
                        Ok(())
                    };
                    prop_assert_eq!(cores[c].free(s, EnvId(e), &quotas[e as usize]), expect);
                }
                Op::FreeAll(c, e) => {
                    let mut n = 0;
                    for o in model.owners[c].iter_mut().filter(|o| **o == Some(e)) {
                        *o = None;
                        n += 1;
                    }
                    prop_assert_eq!(cores[c].free_all(EnvId(e), &quotas[e as usize]), n);
                }
                Op::Teardown(e) => {
                    let held = model.held(e) as usize;
                    let freed: usize = cores.iter_mut().map(|v| v.free_all(EnvId(e), &quotas[e as usize])).sum();
                    prop_assert_eq!(freed, held);
                    prop_assert_eq!(quotas[e as usize].held(), 0);
                    for core in &mut model.owners {
                        for o in core.iter_mut().filter(|o| **o == Some(e)) {
                            *o = None;
                        }
                    }
                }
                Op::Turn(c, overrun) => {
                    let turn = cores[c].next_turn(now, &mut |_| true);
                    if let (Turn::Run { slot, owner, .. }, Some(o)) = (turn, overrun) {
                        prop_assert_eq!(model.owners[c][slot], Some(owner.0));
                        let r = cores[c].record_repossession(slot, now, o, &quotas[owner.0 as usize]).unwrap();
                        prop_assert_eq!(r.env, owner);
                        if r.lost_slot {
                            model.owners[c][slot] = None;
                        }
                    }
                }
                Op::Repossess(c, s, o) => {
                    let owner = if s < SLOTS { Ok(model.owners[c][s]) } else { Err(SliceError::NoSuchSlot) };
                    match owner {
                        Ok(Some(e)) => {
                            let r = cores[c].record_repossession(s, now, o, &quotas[e as usize]).unwrap();
                            prop_assert_eq!(r.env, EnvId(e));
                            if r.lost_slot {
                                model.owners[c][s] = None;
                            }
                        }
                        Ok(None) => prop_assert_eq!(
                            cores[c].record_repossession(s, now, o, &quotas[0]).unwrap_err(),
                            SliceError::Unowned
                        ),
                        Err(e) => prop_assert_eq!(cores[c].record_repossession(s, now, o, &quotas[0]).unwrap_err(), e),
                    }
                }
            }
            check(&model, &cores, &quotas)?;
        }
        // Teardown of everyone returns every unit.
        for e in 0..ENVS {
            let held = model.held(e) as usize;
            let freed: usize = cores.iter_mut().map(|v| v.free_all(EnvId(e), &quotas[e as usize])).sum();
            prop_assert_eq!(freed, held);
            prop_assert_eq!(quotas[e as usize].held(), 0);
        }
        for v in &cores {
            prop_assert_eq!(v.free_count(), SLOTS);
        }
    }

    /// The walk against a visit-by-visit model: strictly round-robin, one
    /// visit per slot per round; sleepers skipped and not charged; debt
    /// shortens or forfeits turns exactly; unowned slots idle; nothing
    /// runnable after one fruitless pass; and time conserved: granted +
    /// repaid + idle = slice × visits
    /// to slots whose owner was awake.
    #[test]
    fn walk_matches_model_and_conserves_time(case in walk_case()) {
        let n = case.owners.len();
        let slice = case.slice;
        let q = Quota::new(1000);
        let mut v = SliceVector::new(n, slice);
        let mut debts = case.debts.clone();
        for (s, o) in case.owners.iter().enumerate() {
            if let Some(e) = o {
                v.alloc_named(s, EnvId(*e), &q).unwrap();
                v.charge_overrun(s, debts[s]);
            } else {
                debts[s] = 0;
            }
        }
        // Model state.
        let mut cursor = 0usize;
        let mut visits = 0u64;
        let mut awake_visits = 0u64;
        let mut repossessed = 0u64;
        // Per round and slot, from the implementation's own counters: turns
        // given (run, forfeited or idle) and turns due (the slot
        // was visited while unowned or its owner was awake).
        let mut given: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        let mut due: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for (now, (asleep, overrun)) in case.calls.iter().enumerate() {
            let before = v.stats();
            let first = before.rounds * n as u64 + v.next_slot() as u64;
            let infos: Vec<_> = (0..n).map(|s| v.slot_info(s).unwrap()).collect();
            let mut w = Sleepers { asleep, forfeits: Vec::new() };
            let turn = v.next_turn(now as u64, &mut w);
            // Model: walk from the cursor.
            let mut expect = Turn::NothingRunnable;
            let mut forfeits = Vec::new();
            let mut call_awake = 0;
            for _ in 0..n {
                let at = cursor;
                cursor = (cursor + 1) % n;
                visits += 1;
                match case.owners[at] {
                    None => {
                        call_awake += 1;
                        expect = Turn::Idle { slot: at, length_ns: slice };
                        break;
                    }
                    Some(e) if asleep.contains(&e) => {}
                    Some(e) => {
                        call_awake += 1;
                        if debts[at] >= slice {
                            debts[at] -= slice;
                            forfeits.push(EnvId(e));
                            continue;
                        }
                        expect = Turn::Run { slot: at, owner: EnvId(e), length_ns: slice - debts[at] };
                        debts[at] = 0;
                        break;
                    }
                }
            }
            awake_visits += call_awake;
            prop_assert_eq!(turn, expect);
            prop_assert_eq!(&w.forfeits, &forfeits);
            prop_assert_eq!(v.next_slot(), cursor);
            prop_assert_eq!(v.stats().rounds, visits / n as u64);
            let after = v.stats();
            let d = |f: fn(&slices::WalkStats) -> u64| f(&after) - f(&before);
            prop_assert_eq!(
                d(|s| s.granted_ns) + d(|s| s.repaid_ns) + d(|s| s.idle_ns),
                slice * call_awake,
                "time conserved in this walk"
            );
            prop_assert_eq!(d(|s| s.forfeits), forfeits.len() as u64);
            // Attribute this walk's visits to rounds, from the
            // implementation's cursor and counters alone.
            let last = after.rounds * n as u64 + v.next_slot() as u64;
            let last = if matches!(turn, Turn::NothingRunnable) { first + n as u64 } else { last };
            prop_assert!(last > first && last - first <= n as u64, "one pass at most");
            for idx in first..last {
                let s = (idx % n as u64) as usize;
                let awake = case.owners[s].is_none_or(|e| !asleep.contains(&e));
                due.entry(idx / n as u64).or_insert_with(|| vec![0; n])[s] += u64::from(awake);
                let info = v.slot_info(s).unwrap();
                let mut got = info.turns - infos[s].turns + info.forfeits - infos[s].forfeits;
                if matches!(turn, Turn::Idle { slot, .. } if slot == s) {
                    got += 1;
                }
                given.entry(idx / n as u64).or_insert_with(|| vec![0; n])[s] += got;
            }
            // The turn in progress.
            match turn {
                Turn::Run { slot, .. } | Turn::Idle { slot, .. } => {
                    prop_assert_eq!(v.current(), Some(slot));
                    prop_assert_eq!(v.turn_started_ns(), now as u64);
                }
                Turn::NothingRunnable => prop_assert_eq!(v.current(), None),
            }
            // Overrun in this turn: more debt, exactly.
            if let (Turn::Run { slot, .. }, Some(o)) = (turn, overrun) {
                v.record_repossession(slot, now as u64, *o, &q).unwrap();
                debts[slot] += o;
                repossessed += o;
            }
            // Sleepers' and everyone's debt exactly as modelled.
            for (s, &debt) in debts.iter().enumerate() {
                prop_assert_eq!(v.debt(s).unwrap(), debt);
            }
        }
        // Whole-run totals: time conserved, debt paid back exactly.
        let s = v.stats();
        prop_assert_eq!(s.granted_ns + s.repaid_ns + s.idle_ns, slice * awake_visits);
        let owed: u64 = debts.iter().sum();
        let initial: u64 = case.debts.iter().zip(&case.owners).filter(|(_, o)| o.is_some()).map(|(d, _)| d).sum();
        prop_assert_eq!(initial + repossessed, owed + s.repaid_ns, "debt in = debt out + debt owed");
        // Exactly one turn per slot per round when due (unowned, or owner
        // awake at the visit), none to sleepers.
        prop_assert_eq!(&given, &due);
        for counts in given.values() {
            prop_assert!(counts.iter().all(|&c| c <= 1));
        }
    }
}
