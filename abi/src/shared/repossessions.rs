//! The repossession vector (Aegis exposes revocation and repossession to
//! applications): per core, a ring of the last [`REPOSSESSION_LOG_LEN`]
//! times the kernel took that core back by force, exported read-only in
//! the core's [`super::CoreSlices`].
//!
//! One writer per ring (the core itself, in its timer interrupt), any
//! number of readers on any core. Each entry is a seqlock: its `seq` is
//! odd while the kernel writes it and `2 * (n + 1)` once repossession `n`
//! (counting from 0 since boot, on this core) is in it, so a reader that
//! finds the same even `seq` before and after copying the fields has one
//! repossession whole, and knows which; an entry being rewritten, or
//! already holding a later repossession, is reported as gone.

use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use crate::syscall::NO_ENV;

/// Repossessions each core's ring keeps.
pub const REPOSSESSION_LOG_LEN: usize = 64;

/// Why the kernel took the core back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum RepossessionCause {
    /// Told by its epilogue upcall, it did not yield within the grace.
    Grace = 0,
    /// Told by the pending flag — it was disabled at its deadline, or it
    /// received a donation after the turn was told to end — it did not
    /// yield within the grace.
    Disabled = 1,
    /// It stayed inside its resume range until the grace ended.
    ResumeRange = 2,
    /// It registered no epilogue: taken at the turn's end.
    NoEpilogue = 3,
}

impl RepossessionCause {
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Grace,
            1 => Self::Disabled,
            2 => Self::ResumeRange,
            3 => Self::NoEpilogue,
            _ => return None,
        })
    }

    /// The variant's name, as records print it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Grace => "Grace",
            Self::Disabled => "Disabled",
            Self::ResumeRange => "ResumeRange",
            Self::NoEpilogue => "NoEpilogue",
        }
    }
}

/// [`Repossession::flags`]: the owner lost the slot as a repeat offender.
pub const REPOSSESSION_LOST_SLOT: u32 = 1;
/// [`Repossession::flags`]: the context was caught disabled (or in its
/// resume range) and is resumed directly, not upcalled.
pub const REPOSSESSION_KEPT_DISABLED: u32 = 1 << 1;

/// One repossession, as read (plain data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repossession {
    /// Its number on this core, from 0 since boot.
    pub n: u64,
    /// When the core was taken (ns since boot).
    pub time_ns: u64,
    /// How long the turn ran past its end.
    pub overrun_ns: u64,
    /// The part of `overrun_ns` this repossession charged to the owner (a
    /// donation past the end charges its part earlier; a dead owner is
    /// charged nothing).
    pub charged_ns: u64,
    /// Grace given again within the turn because the environment had not
    /// run at all since it was told (its vCPU was off the host CPU): the
    /// overrun is at most the grace, this, and how late the telling was.
    pub renewed_ns: u64,
    /// When its grace ended (the grace runs from when the revocation was
    /// told, so a late telling moves it): the core is taken at or just
    /// after it.
    pub grace_end_ns: u64,
    pub slot: u32,
    /// The turn's owner, who pays (`NO_ENV`: unowned time lent out, or an
    /// owner that died during the turn).
    pub owner: u32,
    /// Who was running (the owner, or the recipient of a donation).
    pub ran: u32,
    /// A [`RepossessionCause`] (as a number, for forward compatibility).
    pub cause: u32,
    /// `REPOSSESSION_*` bits.
    pub flags: u32,
}

impl Repossession {
    /// No repossession: a base for the writer's fields (it numbers `n`).
    pub const EMPTY: Repossession = Repossession {
        n: 0,
        time_ns: 0,
        overrun_ns: 0,
        charged_ns: 0,
        renewed_ns: 0,
        grace_end_ns: 0,
        slot: 0,
        owner: NO_ENV,
        ran: NO_ENV,
        cause: 0,
        flags: 0,
    };
}

/// One entry of the ring, as exported.
#[repr(C)]
pub struct RepossessionEntry {
    seq: AtomicU64,
    time_ns: AtomicU64,
    overrun_ns: AtomicU64,
    charged_ns: AtomicU64,
    renewed_ns: AtomicU64,
    grace_end_ns: AtomicU64,
    slot: AtomicU32,
    owner: AtomicU32,
    ran: AtomicU32,
    cause: AtomicU32,
    flags: AtomicU32,
    _pad: u32,
}

/// One core's repossession vector: [`Self::written`] repossessions since
/// boot, the last [`REPOSSESSION_LOG_LEN`] of them readable.
#[repr(C)]
pub struct RepossessionLog {
    written: AtomicU64,
    entries: [RepossessionEntry; REPOSSESSION_LOG_LEN],
}

impl RepossessionLog {
    /// Repossessions this core has published since boot.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Repossession `n`, whole, or `None` if it is not written yet, was
    /// overwritten by a later one, or is being overwritten now.
    pub fn get(&self, n: u64) -> Option<Repossession> {
        let e = &self.entries[(n % REPOSSESSION_LOG_LEN as u64) as usize];
        let want = n.checked_add(1)?.checked_mul(2)?;
        if e.seq.load(Ordering::Acquire) != want {
            return None;
        }
        let r = Repossession {
            n,
            time_ns: e.time_ns.load(Ordering::Relaxed),
            overrun_ns: e.overrun_ns.load(Ordering::Relaxed),
            charged_ns: e.charged_ns.load(Ordering::Relaxed),
            renewed_ns: e.renewed_ns.load(Ordering::Relaxed),
            grace_end_ns: e.grace_end_ns.load(Ordering::Relaxed),
            slot: e.slot.load(Ordering::Relaxed),
            owner: e.owner.load(Ordering::Relaxed),
            ran: e.ran.load(Ordering::Relaxed),
            cause: e.cause.load(Ordering::Relaxed),
            flags: e.flags.load(Ordering::Relaxed),
        };
        // The fields' loads before the second look at `seq`: a writer that
        // began meanwhile made it odd (or later) first.
        fence(Ordering::Acquire);
        (e.seq.load(Ordering::Relaxed) == want).then_some(r)
    }

    /// The repossessions still in the ring from number `from` on (`0`:
    /// every one kept), oldest first; entries overwritten while this reads
    /// are left out (a reader sees each number at most once).
    pub fn since(&self, from: u64) -> impl Iterator<Item = Repossession> + '_ {
        let end = self.written();
        let start = from.max(end.saturating_sub(REPOSSESSION_LOG_LEN as u64));
        (start..end).filter_map(move |n| self.get(n))
    }

    /// Appends `r` (its `n` is ignored: it becomes the next number).
    /// The kernel's side; **one writer per ring** (the core it describes,
    /// with interrupts off).
    pub fn publish(&self, r: &Repossession) {
        let n = self.written.load(Ordering::Relaxed);
        let e = &self.entries[(n % REPOSSESSION_LOG_LEN as u64) as usize];
        e.seq.store(2 * n + 1, Ordering::Relaxed);
        // The odd `seq` before any field: a reader that sees a new field
        // sees the entry being written.
        fence(Ordering::Release);
        e.time_ns.store(r.time_ns, Ordering::Relaxed);
        e.overrun_ns.store(r.overrun_ns, Ordering::Relaxed);
        e.charged_ns.store(r.charged_ns, Ordering::Relaxed);
        e.renewed_ns.store(r.renewed_ns, Ordering::Relaxed);
        e.grace_end_ns.store(r.grace_end_ns, Ordering::Relaxed);
        e.slot.store(r.slot, Ordering::Relaxed);
        e.owner.store(r.owner, Ordering::Relaxed);
        e.ran.store(r.ran, Ordering::Relaxed);
        e.cause.store(r.cause, Ordering::Relaxed);
        e.flags.store(r.flags, Ordering::Relaxed);
        e.seq.store(2 * n + 2, Ordering::Release);
        self.written.store(n + 1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_is_named_as_debug_prints_it_and_its_number_round_trips() {
        for v in 0..4 {
            let cause = RepossessionCause::from_u32(v).unwrap();
            assert_eq!(cause.name(), format!("{cause:?}"));
            assert_eq!(cause as u32, v);
        }
        assert_eq!(RepossessionCause::from_u32(4), None);
    }

    fn log() -> Box<RepossessionLog> {
        let entry = || RepossessionEntry {
            seq: AtomicU64::new(0),
            time_ns: AtomicU64::new(0),
            overrun_ns: AtomicU64::new(0),
            charged_ns: AtomicU64::new(0),
            renewed_ns: AtomicU64::new(0),
            grace_end_ns: AtomicU64::new(0),
            slot: AtomicU32::new(0),
            owner: AtomicU32::new(0),
            ran: AtomicU32::new(0),
            cause: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            _pad: 0,
        };
        Box::new(RepossessionLog {
            written: AtomicU64::new(0),
            entries: core::array::from_fn(|_| entry()),
        })
    }

    /// Repossession `n` as a test writes it: every field derived from `n`,
    /// so a torn read shows.
    fn nth(n: u64) -> Repossession {
        Repossession {
            n,
            time_ns: n * 1000,
            overrun_ns: n * 7,
            charged_ns: n * 5,
            renewed_ns: n * 11,
            grace_end_ns: n * 13,
            slot: n as u32 % 256,
            owner: n as u32 * 3,
            ran: n as u32 * 3 + 1,
            cause: (n % 4) as u32,
            flags: (n % 3) as u32,
        }
    }

    #[test]
    fn a_zeroed_ring_holds_nothing() {
        let l = log();
        assert_eq!(l.written(), 0);
        assert_eq!(l.get(0), None);
        assert_eq!(l.since(0).count(), 0);
    }

    #[test]
    fn the_ring_keeps_the_last_len_and_numbers_them() {
        let l = log();
        let total = REPOSSESSION_LOG_LEN as u64 + 10;
        for n in 0..total {
            l.publish(&Repossession { n: 999, ..nth(n) });
        }
        assert_eq!(l.written(), total);
        assert_eq!(l.get(9), None, "overwritten");
        assert_eq!(l.get(total), None, "not yet written");
        let kept: Vec<_> = l.since(0).collect();
        assert_eq!(kept.len(), REPOSSESSION_LOG_LEN);
        for (i, r) in kept.iter().enumerate() {
            assert_eq!(*r, nth(10 + i as u64));
        }
        assert_eq!(l.since(total - 2).count(), 2);
    }

    /// A reader racing the writer sees only whole entries, each once, in
    /// order.
    #[test]
    fn a_racing_reader_never_sees_a_torn_entry() {
        let l = log();
        let total = 200_000u64;
        std::thread::scope(|s| {
            s.spawn(|| {
                for n in 0..total {
                    l.publish(&nth(n));
                }
            });
            let mut next = 0;
            let mut seen = 0u64;
            while next < total {
                for r in l.since(next) {
                    assert_eq!(r, nth(r.n), "torn");
                    assert!(r.n >= next);
                    next = r.n + 1;
                    seen += 1;
                }
            }
            assert!(seen > 0);
        });
    }
}
