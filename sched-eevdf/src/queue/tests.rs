use super::*;
use alloc::collections::BTreeMap;
use proptest::prelude::*;

/// A thread's entry (its slot is its id, here).
fn item(ve: i128, vd: i128, id: ThreadId, seq: u64) -> Item {
    Item {
        ve,
        vd,
        id,
        slot: id,
        seq,
    }
}

/// What a pick should take from `model` (id: `(ve, vd, seq)`) at `now`,
/// by a scan: the earliest deadline among the eligible (ties by id), else
/// the earliest eligible time.
fn scan_pick(model: &BTreeMap<ThreadId, (i128, i128, u64)>, now: i128) -> Option<ThreadId> {
    model
        .iter()
        .filter(|(_, &(ve, _, _))| ve <= now)
        .map(|(&id, &(_, vd, _))| (vd, id))
        .min()
        .or_else(|| model.iter().map(|(&id, &(ve, _, _))| (ve, id)).min())
        .map(|(_, id)| id)
}

#[test]
fn entries_are_32_and_48_bytes() {
    assert_eq!(core::mem::size_of::<Narrow>(), 32);
    assert_eq!(core::mem::size_of::<Wide>(), 48);
}

#[test]
fn a_queue_goes_wide_when_times_are_too_far_apart() {
    let mut q = Queue::default();
    q.push_at(item(0, 10, 1, 1), 0, |_| true);
    assert!(matches!(q, Queue::Narrow { .. }));
    q.push_at(item(1 << 70, 1 << 71, 2, 2), 0, |_| true);
    assert!(matches!(q, Queue::Wide(_)));
    assert_eq!(q.pop(0, |_| true), Some((1, 1)));
    assert_eq!(q.pop(0, |_| true), Some((2, 2)));
    assert_eq!(q.pop(0, |_| true), None);
}

/// A time about `at`: at it, a little off, or at the edges of a
/// 64-bit offset (`±2^63`, one either side) or of `i128`.
pub(crate) fn near() -> impl Strategy<Value = i128> {
    let edge = 1i128 << 63;
    prop_oneof![
        3 => -40i128..40,
        1 => (-3i128..3).prop_map(move |k| edge + k),
        1 => (-3i128..3).prop_map(move |k| -edge + k),
        1 => (-3i128..3).prop_map(move |k| 2 * edge + k),
        1 => (-3i128..3).prop_map(move |k| -2 * edge + k),
        2 => any::<i64>().prop_map(i128::from),
        1 => Just(i128::MAX),
        1 => Just(i128::MIN),
        1 => any::<i128>(),
    ]
}

/// A request's length: short, or about `2^63` and `2^64`, or any.
fn span() -> impl Strategy<Value = i128> {
    let edge = 1i128 << 63;
    prop_oneof![
        4 => 0i128..40,
        1 => (-3i128..3).prop_map(move |k| edge + k),
        1 => (-3i128..3).prop_map(move |k| 2 * edge + k),
        1 => any::<u64>().prop_map(i128::from),
        1 => 0..i128::MAX,
    ]
}

#[derive(Clone, Debug)]
enum QOp {
    /// Queue `id` (again, its old entry going stale) at `ve = V + lag`,
    /// `vd = ve + span` (saturating).
    Push(ThreadId, i128, i128),
    /// `id` leaves the queue (sleeps, or is removed).
    Leave(ThreadId),
    /// `id`, if queued, queued again this many times at the same times
    /// (enough stale entries for the lazy deletion to drop them all).
    Churn(ThreadId, usize),
    /// `V` moves on by this much (saturating).
    Advance(i128),
    Pop,
}

fn qop() -> impl Strategy<Value = QOp> {
    prop_oneof![
        4 => (0u32..12, near(), span()).prop_map(|(id, lag, span)| QOp::Push(id, lag, span)),
        1 => (0u32..12).prop_map(QOp::Leave),
        1 => (0u32..12, 1usize..50).prop_map(|(id, n)| QOp::Churn(id, n)),
        2 => prop_oneof![0i128..40, near().prop_map(|t| t.saturating_abs())].prop_map(QOp::Advance),
        4 => Just(QOp::Pop),
    ]
}

proptest! {
    /// Used as the policy uses it (`push_at` at a `V` that never goes
    /// back; a requeued thread's old entry reported stale first),
    /// from any base, with times at the edges of the narrow entries'
    /// offsets and of `i128`: every pop is what a scan of the live
    /// entries picks, ties by id.
    #[test]
    fn pops_what_a_scan_would_at_the_edges(
        base in near(),
        // Or every lag, request and step of `V` cut to under 2^62: the
        // queue stays narrow longer, repacking as `V` moves on.
        tame in any::<bool>(),
        ops in proptest::collection::vec(qop(), 1..120),
    ) {
        let cut = |t: i128| if tame { t % (1 << 62) } else { t };
        let mut q = Queue::at(base);
        let mut now = base;
        // id -> (ve, vd, seq) of its live entry.
        let mut model: BTreeMap<ThreadId, (i128, i128, u64)> = BTreeMap::new();
        let mut seq = 0u64;
        for op in ops {
            match op {
                QOp::Push(id, lag, span) => {
                    seq += 1;
                    let ve = now.saturating_add(cut(lag));
                    let vd = ve.saturating_add(cut(span));
                    if model.insert(id, (ve, vd, seq)).is_some() {
                        let m = model.clone();
                        q.forget_one(|e: &Mark| m.get(&e.0).is_some_and(|&(_, _, s)| s == e.1));
                    }
                    let m = model.clone();
                    q.push_at(item(ve, vd, id, seq), now, |e: &Mark| {
                        m.get(&e.0).is_some_and(|&(_, _, s)| s == e.1)
                    });
                }
                QOp::Leave(id) => {
                    if model.remove(&id).is_some() {
                        let m = model.clone();
                        q.forget_one(|e: &Mark| m.get(&e.0).is_some_and(|&(_, _, s)| s == e.1));
                    }
                }
                QOp::Churn(id, n) => {
                    let Some(&(ve, vd, _)) = model.get(&id) else { continue };
                    for _ in 0..n {
                        seq += 1;
                        model.insert(id, (ve, vd, seq));
                        let m = model.clone();
                        let live = |e: &Mark| m.get(&e.0).is_some_and(|&(_, _, s)| s == e.1);
                        q.forget_one(live);
                        q.push_at(item(ve, vd, id, seq), now, live);
                    }
                }
                QOp::Advance(dt) => now = now.saturating_add(cut(dt)),
                QOp::Pop => {
                    let want = scan_pick(&model, now);
                    let m = model.clone();
                    let got = q
                        .pop(now, |e: &Mark| m.get(&e.0).is_some_and(|&(_, _, s)| s == e.1))
                        .map(|(id, _)| id);
                    prop_assert_eq!(got, want, "at V = {}", now);
                    if let Some(id) = got {
                        model.remove(&id);
                    }
                }
            }
            // The lazy deletion's count is exact (a repack drops every
            // stale entry and counts none), so it rebuilds when it should.
            prop_assert_eq!(q.held() - q.stale(), model.len(), "live entries held");
        }
    }
}

proptest! {
    /// Against a plain scan: the earliest deadline among the eligible,
    /// else the earliest eligible time; stale entries never come out.
    /// Times are scaled so that some runs stay narrow, some repack at a
    /// new base and some go wide.
    #[test]
    fn pops_what_a_scan_would(
        scale in prop_oneof![Just(1i128), Just(1i128 << 56), Just(1i128 << 57), Just(1i128 << 62), Just(1i128 << 100)],
        // Times about `V` as it moves (a narrow queue repacks at a new
        // base), or about 0.
        relative in any::<bool>(),
        ops in proptest::collection::vec((0u32..16, -50i128..50, 0i128..40, any::<bool>()), 1..200),
    ) {
        let mut q = Queue::default();
        // id -> (ve, vd, seq) of its live entry.
        let mut model: BTreeMap<ThreadId, (i128, i128, u64)> = BTreeMap::new();
        let mut seq = 0u64;
        let mut now = -60 * scale;
        for (id, ve, d, pop) in ops {
            now += scale;
            let (ve, d) = (ve * scale + if relative { now } else { 0 }, d * scale);
            let m = model.clone();
            // Slots are ids here.
            let live = |e: &Mark| m.get(&e.0).is_some_and(|&(_, _, s)| s == e.1);
            if pop {
                let want = scan_pick(&model, now);
                let got = q.pop(now, live).map(|(id, _)| id);
                prop_assert_eq!(got, want);
                if let Some(id) = got {
                    model.remove(&id);
                }
            } else {
                seq += 1;
                let old = model.insert(id, (ve, ve + d, seq));
                let m = model.clone();
                let live = |e: &Mark| m.get(&e.0).is_some_and(|&(_, _, s)| s == e.1);
                if old.is_some() {
                    q.forget_one(live);
                }
                // Either way in: straight to where it belongs now, or
                // to `waiting` for the next pop to sort out.
                if seq.is_multiple_of(2) {
                    q.push_at(item(ve, ve + d, id, seq), now, live);
                } else {
                    q.push(item(ve, ve + d, id, seq), now, live);
                }
            }
            let ids: Vec<_> = model.keys().collect();
            prop_assert!(q.held() <= 2 * ids.len() + 34, "{} held for {} live", q.held(), ids.len());
        }
    }
}

/// A crowd of waiting entries falling due at once (past the first few
/// pops, the rest move in one pass over `waiting`), some stale, some not
/// yet due: every pop is what a scan of the live entries picks.
#[test]
fn a_crowd_falling_due_pops_what_a_scan_would() {
    // `V` before, between and exactly at the eligible times (10, 11, 20,
    // 21, 30, 31): an entry is due at its own time.
    for now in [5i128, 15, 20, 25, 30, 35] {
        let mut q = Queue::default();
        // id -> (ve, vd, seq) of its live entry.
        let mut model: BTreeMap<ThreadId, (i128, i128, u64)> = BTreeMap::new();
        let mut seq = 0u64;
        // Every seventh thread queued twice: its first entry goes stale.
        let ids = (0..300u32).chain((0..300).step_by(7));
        for id in ids {
            seq += 1;
            let ve = 10 + 10 * i128::from(id % 3) + i128::from(seq % 2);
            let vd = ve + i128::from(id % 11);
            if model.insert(id, (ve, vd, seq)).is_some() {
                let m = model.clone();
                q.forget_one(|e: &Mark| m.get(&e.0).is_some_and(|&(_, _, s)| s == e.1));
            }
            let m = model.clone();
            q.push(item(ve, vd, id, seq), 0, |e: &Mark| {
                m.get(&e.0).is_some_and(|&(_, _, s)| s == e.1)
            });
        }
        while !model.is_empty() {
            let want = scan_pick(&model, now);
            let m = model.clone();
            let got = q
                .pop(now, |e: &Mark| {
                    m.get(&e.0).is_some_and(|&(_, _, s)| s == e.1)
                })
                .map(|(id, _)| id);
            assert_eq!(got, want, "at V = {now}");
            if let Some(id) = got {
                model.remove(&id);
            }
        }
        assert_eq!(q.pop(now, |_| false), None);
    }
}
