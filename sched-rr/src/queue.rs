//! The run queue: runnable threads that are not running, first come first
//! served, as a ring buffer with lazy deletion
//! ([`sched_api::lazy::Lazy`], shared with stride and EEVDF, over
//! [`Ring`]).
//!
//! Why not a `BTreeMap<seq, id>`: every decision pops the head and appends
//! one thread, and a B-tree allocates and frees nodes as it goes; a ring
//! buffer reuses its space. Every operation is O(1) amortized.
//!
//! An entry's `seq` is its place in line: the owner numbers entries pushed
//! at the back upwards and those put at the front downwards, so the ring's
//! order is the order of the live entries' numbers (what `export` sorts
//! by).

use alloc::vec::Vec;

use sched_api::lazy::{Lazy, Order, Ticket};
use sched_api::table::Slot;

/// One queued thread: `seq` is its place in line, `slot` finds its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub seq: u64,
    pub slot: Slot,
}

impl Ticket for Entry {
    #[inline]
    fn slot(&self) -> Slot {
        self.slot
    }
    #[inline]
    fn seq(&self) -> u64 {
        self.seq
    }
}

/// A FIFO of entries with lazy deletion.
pub(crate) type Queue = Lazy<Ring>;

/// A ring buffer of entries whose capacity is a power of two, so a place
/// wraps with a mask. A `VecDeque` would do, but its `push_back` is a call
/// (`push_back_mut`, not inlined: 22 instructions of the decision's
/// ~230 under callgrind, with its register saves) and its index wraps by a
/// compare and a conditional move.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ring {
    /// The slots; `buf.len()` is 0 or a power of two.
    buf: Vec<Entry>,
    /// Where the first entry is.
    head: usize,
    /// Entries held.
    len: usize,
}

impl Ring {
    /// Puts `e` first.
    #[inline(always)]
    pub fn push_front(&mut self, e: Entry) {
        if self.len == self.buf.len() {
            return self.grow_and_push_front(e);
        }
        let mask = self.buf.len() - 1;
        self.head = self.head.wrapping_sub(1) & mask;
        self.buf[self.head] = e;
        self.len += 1;
    }

    /// A push that finds the ring full: out of line, whole, so the usual
    /// push keeps nothing across a call.
    #[cold]
    #[inline(never)]
    fn grow_and_push(&mut self, e: Entry) {
        self.grow(1);
        let mask = self.buf.len() - 1;
        self.buf[(self.head + self.len) & mask] = e;
        self.len += 1;
    }

    #[cold]
    #[inline(never)]
    fn grow_and_push_front(&mut self, e: Entry) {
        self.grow(1);
        let mask = self.buf.len() - 1;
        self.head = self.head.wrapping_sub(1) & mask;
        self.buf[self.head] = e;
        self.len += 1;
    }

    /// The entries, first to last.
    fn iter(&self) -> impl Iterator<Item = Entry> + '_ {
        let mask = self.buf.len().wrapping_sub(1);
        (0..self.len).map(move |i| self.buf[(self.head + i) & mask])
    }

    /// Makes room for at least `additional` more entries, the entries
    /// moved to the front of a buffer of the next power of two.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, additional: usize) {
        let want = (self.len + additional).max(4).next_power_of_two();
        if want <= self.buf.len() {
            return;
        }
        let mut buf = Vec::with_capacity(want);
        buf.extend(self.iter());
        buf.resize(want, Entry { seq: 0, slot: 0 });
        self.buf = buf;
        self.head = 0;
    }
}

impl Order for Ring {
    type Entry = Entry;
    type At = ();

    #[inline(always)]
    fn push(&mut self, e: Entry) {
        if self.len == self.buf.len() {
            return self.grow_and_push(e);
        }
        let mask = self.buf.len() - 1;
        self.buf[(self.head + self.len) & mask] = e;
        self.len += 1;
    }

    #[inline]
    fn pop(&mut self, _: ()) -> Option<Entry> {
        if self.len == 0 {
            return None;
        }
        let e = self.buf[self.head];
        self.head = (self.head + 1) & (self.buf.len() - 1);
        self.len -= 1;
        Some(e)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        let kept: Vec<Entry> = self.iter().filter(|e| keep(e)).collect();
        let (mut i, n) = (0, kept.len());
        let mask = self.buf.len().wrapping_sub(1);
        for e in kept {
            self.buf[(self.head + i) & mask] = e;
            i += 1;
        }
        self.len = n;
    }

    fn reserve(&mut self, additional: usize) {
        if self.len + additional > self.buf.len() {
            self.grow(additional);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::VecDeque;
    use proptest::prelude::*;

    proptest! {
        /// The ring behaves as a `VecDeque` under pushes at either end,
        /// pops, filters and reservations, across its growth.
        #[test]
        fn behaves_as_a_deque(ops in proptest::collection::vec((0u8..5, 0u32..1000), 1..400)) {
            let mut ring = Ring::default();
            let mut model = VecDeque::new();
            for (i, (op, x)) in ops.into_iter().enumerate() {
                let e = Entry { seq: i as u64, slot: x };
                match op {
                    0 => { ring.push(e); model.push_back(e); }
                    1 => { ring.push_front(e); model.push_front(e); }
                    2 => prop_assert_eq!(ring.pop(()), model.pop_front()),
                    3 => {
                        ring.retain(|e| e.slot % 3 != 0);
                        model.retain(|e| e.slot % 3 != 0);
                    }
                    _ => ring.reserve(x as usize % 40),
                }
                prop_assert_eq!(ring.len, model.len());
                prop_assert!(ring.buf.is_empty() || ring.buf.len().is_power_of_two());
                let got: Vec<Entry> = ring.iter().collect();
                let want: Vec<Entry> = model.iter().copied().collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}
