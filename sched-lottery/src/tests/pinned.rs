//! The decision path pinned as `incremental::pinned_draws_and_records`
//! pins it, for what that test does not reach: `Policy::pick` itself (not
//! only `try_pick`), the answers to refused picks and charges (a busy core,
//! a core out of range, the wrong thread, a core running nothing), every
//! kind of charge of the steady state (a full quantum, a short one, a yield,
//! a block and its wake) on one to three cores, and each thread's credit
//! and compensation, which no record shows. The values are those the code
//! gave when this was written; a change *meant* to change them says so and
//! pins the new ones (as Lemire's draw did, replacing the rejection
//! sampling over powers of two: the draws changed, their distribution
//! did not).

use super::*;

/// FNV-1a, 64 bits.
fn mix(h: &mut u64, x: u128) {
    for b in x.to_le_bytes() {
        *h = (*h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
}

/// Mixes an answer in, and lists it among those seen.
fn mix_result<T: core::fmt::Debug>(h: &mut u64, r: &T) -> String {
    let s = format!("{r:?}");
    for b in s.bytes() {
        mix(h, u128::from(b));
    }
    s
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Every thread's record, credit and compensation, and the virtual time.
fn mix_state(h: &mut u64, l: &Lottery, n: u32) {
    for id in 0..n {
        match (l.record(id), l.get(id)) {
            (Some(r), Some(t)) => {
                mix(h, u128::from(r.weight));
                mix(h, u128::from(r.service_ns));
                mix(h, r.vtime as u128);
                mix_result(h, &r.state);
                mix(h, t.credit as u128);
                mix(h, u128::from(t.comp.0) << 64 | u128::from(t.comp.1));
            }
            _ => mix(h, u128::MAX),
        }
    }
    mix(h, l.ledger.now() as u128);
}

/// `rounds` rounds of: a pick on every core (through `Policy::pick`, and
/// now and then a refused one), then a charge of every core's thread of a
/// kind drawn from `seed` (now and then a refused charge first), the
/// blocked ones woken at the end of the round. The hash of every answer,
/// and of every state (each round's for few threads, the last one's for
/// many); and the answers seen.
fn run(n: u32, cores: usize, seed: u64, rounds: u32) -> (u64, BTreeSet<String>) {
    let mut l = Lottery::new(Q, cores, seed);
    for id in 0..n {
        l.add(id, 1 + id % 10).unwrap();
    }
    let mut g = seed;
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut seen = BTreeSet::new();
    for _ in 0..rounds {
        for core in 0..cores {
            let picked = l.pick(core);
            mix(&mut h, picked.map_or(u128::MAX, u128::from));
        }
        let r = splitmix(&mut g);
        if r.is_multiple_of(16) {
            seen.insert(mix_result(&mut h, &l.try_pick(0))); // busy
            seen.insert(mix_result(&mut h, &l.try_pick(sched_api::MAX_CORES)));
            seen.insert(mix_result(
                &mut h,
                &l.charge(0, cores, Q, RunEnd::Preempted),
            ));
        }
        let mut blocked = Vec::new();
        for core in 0..cores {
            let Some(id) = l.running_on(core).and_then(|s| l.at(s)).map(|t| t.id) else {
                continue;
            };
            let r = splitmix(&mut g);
            if r % 16 == 1 {
                // The wrong thread: one not running there, or unknown.
                seen.insert(mix_result(
                    &mut h,
                    &l.charge(id + 1, core, Q, RunEnd::Preempted),
                ));
            }
            let (ran, end) = match r % 10 {
                0..=5 => (Q, RunEnd::Preempted),
                6 => (Q / 2, RunEnd::Preempted),
                7 => (Q / 3, RunEnd::Yielded),
                8 => (Q / 4, RunEnd::Blocked),
                _ => (Q, RunEnd::Blocked),
            };
            seen.insert(mix_result(&mut h, &l.charge(id, core, ran, end)));
            if end == RunEnd::Blocked {
                blocked.push(id);
            }
        }
        for id in blocked {
            seen.insert(mix_result(&mut h, &l.wake(id)));
        }
        if n <= 16 {
            mix_state(&mut h, &l, n);
        }
    }
    mix_state(&mut h, &l, n);
    (h, seen)
}

#[test]
fn pinned_picks_charges_and_refusals() {
    let mut seen = BTreeSet::new();
    let got: Vec<u64> = [
        (1, 1),
        (2, 1),
        (10, 1),
        (1000, 1),
        (1, 2),
        (10, 3),
        (100, 3),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (n, cores))| {
        let (h, s) = run(n, cores, 11 + i as u64, 3000);
        seen.extend(s);
        h
    })
    .collect();
    // Every refusal was met (and every kind of success).
    for answer in [
        "Ok(())",
        "Err(CoreBusy)",
        "Err(BadCore)",
        "Err(NotRunning)",
        "Err(UnknownThread)",
    ] {
        assert!(seen.contains(answer), "{answer} not met: {seen:?}");
    }
    assert_eq!(
        got,
        [
            0x08d8_e6df_9018_46c3,
            0x386b_4e30_f7be_e1b1,
            0x5e3c_367e_7e1c_5e7e,
            0x98c1_bd76_4d99_aaf8,
            0x87ed_751a_d5d2_8f2c,
            0x120c_28a7_5162_bb41,
            0x86c6_656a_4a48_dff6,
        ],
        "{got:#x?}"
    );
}
