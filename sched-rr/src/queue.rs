//! The run queue: runnable threads that are not running, first come first
//! served, as a ring buffer with lazy deletion
//! ([`sched_api::lazy::Lazy`] over a `VecDeque`, shared with stride and
//! EEVDF).
//!
//! Why not a `BTreeMap<seq, id>`: every decision pops the head and appends
//! one thread, and a B-tree allocates and frees nodes as it goes; a ring
//! buffer reuses its space. Every operation is O(1) amortized.
//!
//! An entry's `seq` is its place in line: the owner numbers entries pushed
//! at the back upwards and those put at the front downwards, so the ring's
//! order is the order of the live entries' numbers (what `export` sorts
//! by).

use alloc::collections::VecDeque;

use sched_api::lazy::{Lazy, Ticket};
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
pub(crate) type Queue = Lazy<VecDeque<Entry>>;
