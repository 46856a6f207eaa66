//! Revocation and abort latencies, timed by the kernel itself (`just
//! bench` reads them): from a slice's deadline to the owner entering its
//! epilogue, and from the end of a grace period to the core entering
//! another environment after a repossession. A fixed ring of samples per
//! kind, written with one atomic add and one store (no allocation), printed
//! as `latency` records at the end of a run.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use abi::record::RecordKind;

use crate::record;

const SAMPLES: usize = 4096;

struct Ring {
    next: AtomicUsize,
    ns: [AtomicU64; SAMPLES],
}

impl Ring {
    const fn new() -> Ring {
        Ring {
            next: AtomicUsize::new(0),
            ns: [const { AtomicU64::new(0) }; SAMPLES],
        }
    }

    fn add(&self, ns: u64) {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.ns[i % SAMPLES].store(ns, Ordering::Relaxed);
    }
}

static REVOCATION: Ring = Ring::new();
static ABORT: Ring = Ring::new();
/// Per core: the grace end of a repossession whose core has not yet
/// entered the next environment (0: none).
static ABORT_FROM: [AtomicU64; abi::shared::MAX_CORES] =
    [const { AtomicU64::new(0) }; abi::shared::MAX_CORES];

/// The owner is about to enter its epilogue `late_ns` after its deadline.
pub fn revocation(late_ns: u64) {
    REVOCATION.add(late_ns);
}

/// `core` was taken back by force; its grace period ended at `grace_end`.
pub fn repossessed(core: usize, grace_end: u64) {
    ABORT_FROM[core].store(grace_end.max(1), Ordering::Relaxed);
}

/// `core` enters an environment at `now`: closes a pending abort interval.
pub fn entering(core: usize, now: u64) {
    let from = ABORT_FROM[core].swap(0, Ordering::Relaxed);
    if from != 0 {
        ABORT.add(now.saturating_sub(from));
    }
}

/// Prints both sample sets (at the end of a run, every core parked).
pub fn emit() {
    for (kind, ring) in [("revocation", &REVOCATION), ("abort", &ABORT)] {
        let n = ring.next.load(Ordering::Relaxed).min(SAMPLES);
        for chunk in (0..n).collect::<alloc::vec::Vec<_>>().chunks(64) {
            let mut list = alloc::string::String::new();
            for (k, &i) in chunk.iter().enumerate() {
                use core::fmt::Write;
                let _ = write!(
                    list,
                    "{}{}",
                    if k == 0 { "" } else { "," },
                    ring.ns[i].load(Ordering::Relaxed)
                );
            }
            record::emit(
                RecordKind::Latency,
                format_args!("\"kind\":\"{kind}\",\"ns\":[{list}]"),
            );
        }
    }
}
