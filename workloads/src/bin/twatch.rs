//! Threads sleeping on a memory word and on time: a waiter sleeps until a
//! flag changes; the main thread sleeps 20 ms, then flips the flag. Between
//! the two the whole application sleeps on one folded wakeup predicate and
//! must cost no slices; the waiter reports how fast it woke.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::{AtomicU64, Ordering};

use libos::{report, sys, threads};

static FLAG: AtomicU64 = AtomicU64::new(0);
static FLIPPED_AT: AtomicU64 = AtomicU64::new(0);

fn waiter(_: usize) {
    let mut seen = 0;
    let mut worst = 0u64;
    loop {
        threads::sleep_until_changed(&FLAG, seen);
        seen = FLAG.load(Ordering::Acquire);
        let late = sys::now_ns().saturating_sub(FLIPPED_AT.load(Ordering::Acquire));
        worst = worst.max(late);
        if seen % 10 == 0 {
            report!("\"kind\":\"watch\",\"wakeups\":{seen},\"worst_wake_ns\":{worst}");
        }
    }
}

fn main_thread(_: usize) {
    let _ = threads::spawn(waiter, 0, 1);
    loop {
        threads::sleep_until(sys::now_ns() + 20_000_000);
        FLIPPED_AT.store(sys::now_ns(), Ordering::Release);
        FLAG.fetch_add(1, Ordering::AcqRel);
    }
}

libos::threaded_program!(main_thread);
