//! One thread recurses without end (a KiB a frame) and must be ended by
//! the libOS when it reaches its stack's guard gap, while three counting
//! threads go on: reports `toverflow` with the overflows the libOS saw,
//! whether the overflowing thread is gone (joined), and each counter's
//! progress before and after.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::{AtomicU64, Ordering};

use libos::threads;

static COUNTS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
static DEPTH: AtomicU64 = AtomicU64::new(0);

fn count(i: usize) {
    loop {
        COUNTS[i].fetch_add(1, Ordering::Relaxed);
    }
}

#[inline(never)]
fn recurse(level: u64) -> u64 {
    // Never true: only there so that the recursion has an end in form.
    if core::hint::black_box(level) == u64::MAX {
        return 0;
    }
    let frame = core::hint::black_box([level as u8; 1024]);
    DEPTH.store(level, Ordering::Relaxed);
    let below = recurse(level + 1);
    core::hint::black_box(below) + u64::from(frame[7])
}

fn overflow(_: usize) {
    let _ = core::hint::black_box(recurse(0));
}

fn snapshot() -> [u64; 3] {
    core::array::from_fn(|i| COUNTS[i].load(Ordering::Relaxed))
}

fn main_thread(_: usize) {
    threads::set_weight(threads::self_id(), 16);
    for i in 0..3 {
        let _ = threads::spawn(count, i, 1);
    }
    let before = snapshot();
    let deep = threads::spawn(overflow, 0, 1);
    // Returns once the overflowing thread has been ended.
    if let Some(tid) = deep {
        threads::join(tid);
    }
    let ended = snapshot();
    threads::sleep_until(libos::sys::now_ns() + 200_000_000);
    let after = snapshot();
    libos::report!(
        "\"kind\":\"toverflow\",\"spawned\":{},\"overflows\":{},\"depth\":{},\"before\":[{},{},{}],\"ended\":[{},{},{}],\"after\":[{},{},{}]",
        deep.is_some(),
        threads::stack_overflows(),
        DEPTH.load(Ordering::Relaxed),
        before[0],
        before[1],
        before[2],
        ended[0],
        ended[1],
        ended[2],
        after[0],
        after[1],
        after[2]
    );
    libos::sys::exit(0);
}

libos::threaded_program!(main_thread);
