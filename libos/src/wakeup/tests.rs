//! Folded predicates checked with the kernel's own verifier and evaluator.

use std::cell::RefCell;
use std::collections::HashMap;

use predicate::{verify, AddressCheck, EvalEnv, Limits, Verified};

use super::*;

/// A sleeper's memory and the clock, as the kernel would see them.
#[derive(Default)]
struct World {
    words: RefCell<HashMap<u64, u64>>,
    clock: u64,
}

impl AddressCheck for World {
    fn allowed(&self, addr: u64, len: u64) -> bool {
        addr.checked_add(len).is_some()
    }
}

impl EvalEnv for World {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        Some(self.words.borrow().get(&addr).copied().unwrap_or(0))
    }
    fn clock_ns(&self) -> u64 {
        self.clock
    }
    fn counter(&self, _: u32) -> Option<u64> {
        None
    }
}

fn check(f: &Folded, world: &World) -> Verified {
    verify(f.program.as_bytes(), &Limits::DEFAULT, world).expect("the kernel accepts the fold")
}

fn holds(v: &Verified, world: &World) -> bool {
    v.eval(world).expect("evaluates").value
}

const BASE: u64 = 0x1000_0000_0000;

#[test]
fn nothing_waiting_needs_no_predicate() {
    assert!(fold(0, [], 0, 1000).is_none());
}

#[test]
fn wakes_at_the_earliest_deadline() {
    let f = fold(
        3,
        [Wait::Until(900), Wait::Until(500), Wait::Until(700)],
        0,
        1,
    )
    .unwrap();
    let mut w = World::default();
    let v = check(&f, &w);
    assert_eq!(v.tag(), 3);
    w.clock = 499;
    assert!(!holds(&v, &w));
    w.clock = 500;
    assert!(holds(&v, &w));
}

#[test]
fn wakes_when_any_watched_word_changes() {
    let waits = (0..5).map(|i| Wait::Changed {
        addr: BASE + 8 * i,
        old: i,
    });
    let mut w = World::default();
    for i in 0..5 {
        w.words.borrow_mut().insert(BASE + 8 * i, i);
    }
    let f = fold(0, waits.chain([Wait::Until(10_000)]), 0, 1).unwrap();
    assert_eq!((f.words, f.dropped), (5, 0));
    let v = check(&f, &w);
    w.clock = 9_999;
    assert!(!holds(&v, &w), "nothing changed yet");
    for i in 0..5 {
        w.words.borrow_mut().insert(BASE + 8 * i, 100);
        assert!(holds(&v, &w), "word {i} changed");
        w.words.borrow_mut().insert(BASE + 8 * i, i);
    }
    w.clock = 10_000;
    assert!(holds(&v, &w));
}

#[test]
fn duplicate_watches_are_folded_once() {
    let same = Wait::Changed { addr: BASE, old: 7 };
    let f = fold(0, [same, same, same], 0, 1).unwrap();
    assert_eq!((f.words, f.dropped), (1, 0));
}

#[test]
fn words_that_do_not_fit_are_polled() {
    let n = 40;
    let waits = (0..n).map(|i| Wait::Changed {
        addr: BASE + 8 * i,
        old: 0,
    });
    let f = fold(0, waits, 1_000, 250).unwrap();
    assert!(
        f.dropped > 0 && f.words > 0,
        "{} in, {} out",
        f.words,
        f.dropped
    );
    assert_eq!(f.words + f.dropped, n as usize);
    let mut w = World::default();
    let v = check(&f, &w);
    w.clock = 1_249;
    assert!(!holds(&v, &w));
    // A word inside the predicate wakes it at once...
    w.words.borrow_mut().insert(BASE, 1);
    assert!(holds(&v, &w));
    // ...one left out is seen at the poll time.
    w.words.borrow_mut().insert(BASE, 0);
    w.words.borrow_mut().insert(BASE + 8 * (n - 1), 1);
    assert!(!holds(&v, &w));
    w.clock = 1_250;
    assert!(holds(&v, &w));
}
