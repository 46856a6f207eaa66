//! Which thread ran on which core, when: per core, a small ring of switch
//! points `(t_ns, tid)` — from `t_ns` on, thread `tid` ran there (or none,
//! [`NONE`], once it stopped) — for the Perfetto trace's per-thread tracks.
//!
//! Off until the application asks ([`enable`]): a relaxed load per switch.
//! On, recording is two relaxed stores and a release store on the core's
//! own ring, no lock, no clock read (the dispatch's and the stop's times are
//! reused), no allocation. Each ring has one writer: its core, in an
//! upcall, disabled (the kernel never re-enters a disabled upcall; it
//! resumes it). The reader is the application's sampler ([`drain`]), on
//! any core: single producer, single consumer. A full ring drops the
//! switch and counts it, so a reader that fell behind gets a count, not a
//! wrong interval.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::rt::MAX_WORKERS;

use super::table::NONE;

/// Switch points a ring holds between drains: the sampler drains every
/// 50 ms at most, so a core can switch threads ~1,200 times a second
/// before it drops any.
pub const CAPACITY: usize = 64;

/// One core's ring.
pub struct Ring {
    /// Switches written (the writer's index).
    head: AtomicU64,
    /// Switches read (the reader's index).
    tail: AtomicU64,
    /// Switches dropped because the ring was full.
    dropped: AtomicU64,
    /// `[t_ns, tid]`.
    slots: [[AtomicU64; 2]; CAPACITY],
}

impl Ring {
    pub const fn new() -> Ring {
        Ring {
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            slots: [const { [const { AtomicU64::new(0) }; 2] }; CAPACITY],
        }
    }

    /// The writer: from `t_ns` on, `tid` ran (`NONE`: no thread).
    #[inline(never)]
    pub fn push(&self, t_ns: u64, tid: usize) {
        let head = self.head.load(Ordering::Relaxed);
        if head - self.tail.load(Ordering::Acquire) >= CAPACITY as u64 {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let slot = &self.slots[head as usize % CAPACITY];
        slot[0].store(t_ns, Ordering::Relaxed);
        slot[1].store(tid as u64, Ordering::Relaxed);
        self.head.store(head + 1, Ordering::Release);
    }

    /// The reader: hands every switch written since the last drain to
    /// `each` as `(t_ns, tid)` in order (`tid` [`NONE`]: stopped); returns
    /// how many were dropped so far.
    pub fn drain(&self, mut each: impl FnMut(u64, usize)) -> u64 {
        let head = self.head.load(Ordering::Acquire);
        let mut tail = self.tail.load(Ordering::Relaxed);
        while tail < head {
            let slot = &self.slots[tail as usize % CAPACITY];
            each(
                slot[0].load(Ordering::Relaxed),
                slot[1].load(Ordering::Relaxed) as usize,
            );
            tail += 1;
        }
        // The writer may reuse the slots only after they were read.
        self.tail.store(tail, Ordering::Release);
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Default for Ring {
    fn default() -> Self {
        Ring::new()
    }
}

static RINGS: [Ring; MAX_WORKERS] = [const { Ring::new() }; MAX_WORKERS];
static ON: AtomicBool = AtomicBool::new(false);

/// Starts logging every core's switches (for good: the application then
/// drains them, or the rings fill and count what they drop).
pub fn enable() {
    ON.store(true, Ordering::Relaxed);
}

/// From `t_ns` on, thread `tid` runs on `core`. (Inlined, like
/// [`stopped`]: off, it is a load and a branch on every switch; the
/// ring's push stays out of line.)
#[inline(always)]
pub fn started(core: usize, t_ns: u64, tid: usize) {
    if ON.load(Ordering::Relaxed) {
        RINGS[core].push(t_ns, tid);
    }
}

/// From `t_ns` on, no thread runs on `core`.
#[inline(always)]
pub fn stopped(core: usize, t_ns: u64) {
    if ON.load(Ordering::Relaxed) {
        RINGS[core].push(t_ns, NONE);
    }
}

/// Core `core`'s switches since the last drain, in order, to `each` as
/// `(t_ns, Some(tid))` or `(t_ns, None)` (stopped); returns how many
/// switches the core dropped so far.
pub fn drain(core: usize, mut each: impl FnMut(u64, Option<usize>)) -> u64 {
    RINGS.get(core).map_or(0, |r| {
        r.drain(|t, tid| each(t, (tid != NONE).then_some(tid)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drained(r: &Ring) -> (Vec<(u64, usize)>, u64) {
        let mut got = Vec::new();
        let dropped = r.drain(|t, tid| got.push((t, tid)));
        (got, dropped)
    }

    #[test]
    fn switches_come_out_in_order_once() {
        let r = Ring::new();
        r.push(10, 1);
        r.push(20, NONE);
        r.push(30, 2);
        assert_eq!(drained(&r), (vec![(10, 1), (20, NONE), (30, 2)], 0));
        assert_eq!(drained(&r), (vec![], 0));
        r.push(40, NONE);
        assert_eq!(drained(&r), (vec![(40, NONE)], 0));
    }

    #[test]
    fn a_full_ring_counts_what_it_drops_and_keeps_the_oldest() {
        let r = Ring::new();
        for k in 0..CAPACITY as u64 + 5 {
            r.push(k, k as usize);
        }
        let (got, dropped) = drained(&r);
        assert_eq!(dropped, 5);
        assert_eq!(got.len(), CAPACITY);
        assert_eq!(got.last(), Some(&(CAPACITY as u64 - 1, CAPACITY - 1)));
        // Drained, it records again (across the wrap).
        r.push(1000, 7);
        assert_eq!(drained(&r), (vec![(1000, 7)], 5));
    }

    #[test]
    fn a_reader_on_another_core_sees_every_switch_in_order() {
        let r = std::sync::Arc::new(Ring::new());
        let w = r.clone();
        let writer = std::thread::spawn(move || {
            for k in 1..=100_000u64 {
                w.push(k, k as usize);
            }
        });
        let mut last = 0;
        let mut seen = 0u64;
        let mut dropped = 0;
        while !writer.is_finished() || seen + dropped < 100_000 {
            dropped = r.drain(|t, tid| {
                assert!(t > last, "{t} after {last}");
                assert_eq!(tid as u64, t);
                last = t;
                seen += 1;
            });
        }
        writer.join().unwrap();
        assert_eq!(seen + dropped, 100_000);
    }
}
