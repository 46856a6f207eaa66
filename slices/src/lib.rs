//! Per-core slice vectors (Aegis/Xok): each core has a fixed number of
//! slots of one length, each owned by at most one environment and walked
//! round-robin. Sleeping owners are skipped without charge; owners that
//! overran a turn pay the overrun back out of their next turns (a whole
//! slice of debt forfeits the turn); repeat offenders lose the slot.
//!
//! Pure bookkeeping, no allocation anywhere: the kernel wraps one
//! [`SliceVector`] per core in that core's lock and does the hardware side.
//! A per-environment [`Quota`] bounds slots across *all* cores with atomics
//! rather than a global lock. [`TurnClock`] is the turn in progress on a
//! core: its deadline and grace, how its environment is told, donations,
//! repossession, and whom each way of ending charges.
//!
//! ```
//! use slices::{EnvId, Quota, SliceVector, Turn};
//!
//! let quota = Quota::new(4);
//! let mut core0 = SliceVector::new(4, 1_000_000); // 4 slots of 1 ms
//! let a = EnvId(1);
//! core0.alloc_named(0, a, &quota).unwrap();
//! let got = core0.alloc_any(a, &quota).unwrap(); // slot 1
//! assert_eq!((got, quota.held()), (1, 2));
//!
//! // The walk: `a` is awake, slots 2 and 3 are unowned (idle time).
//! let mut awake = |_env: EnvId| true;
//! assert_eq!(
//!     core0.next_turn(0, &mut awake),
//!     Turn::Run { slot: 0, owner: a, length_ns: 1_000_000 }
//! );
//! // `a` overran slot 0 by 0.3 ms and was repossessed: debt.
//! core0.record_repossession(0, 1_300_000, 300_000, &quota).unwrap();
//! assert!(matches!(core0.next_turn(1_300_000, &mut awake), Turn::Run { slot: 1, .. }));
//! assert!(matches!(core0.next_turn(2_300_000, &mut awake), Turn::Idle { slot: 2, .. }));
//! assert!(matches!(core0.next_turn(3_300_000, &mut awake), Turn::Idle { slot: 3, .. }));
//! // Slot 0's next turn is shortened by the debt.
//! assert_eq!(
//!     core0.next_turn(4_300_000, &mut awake),
//!     Turn::Run { slot: 0, owner: a, length_ns: 700_000 }
//! );
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU32, Ordering};

mod stagger;
mod turn;
mod vector;

pub use stagger::{park_ns, spread_ns, stagger_ns};

pub use turn::{Grace, Phase, Seen, Taken, Tick, TurnClock};
pub use vector::{
    ConfigError, OffenderPolicy, Repossessed, Repossession, SliceVector, SlotInfo, Turn, Walk,
    WalkStats,
};

/// Most slots a core's slice vector may have (the ABI's `MAX_SLOTS`).
pub const MAX_SLOTS: usize = 256;
/// Repossessions kept in each core's log.
pub const LOG_LEN: usize = 64;
/// Longest repeat-offender window, in turns.
pub const MAX_WINDOW: u32 = 64;
/// Environments per core whose overrun debt is remembered after they gave
/// up their last slot on that core (so freeing and re-allocating a slot
/// does not wipe a debt).
pub const CARRY_LEN: usize = 8;
/// The raw id that means "no environment" in exported plain data (the
/// ABI's `NO_ENV`); never a real environment's id.
pub const NO_ENV: u32 = u32::MAX;

/// An environment, as the slice vectors name it (the kernel
/// reuses it). Opaque: the kernel decides what the number means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct EnvId(pub u32);

/// How many slots an environment may hold over all cores. Shared by the
/// slice vectors of every core, so it is atomic rather than behind a global
/// lock: a slot is only bound after [`Quota::try_take`] succeeded, and
/// every unbinding gives the unit back.
#[derive(Debug)]
pub struct Quota {
    limit: u32,
    held: AtomicU32,
}

impl Quota {
    /// A quota of `limit` slots, none held.
    pub const fn new(limit: u32) -> Self {
        Quota {
            limit,
            held: AtomicU32::new(0),
        }
    }

    /// Takes one unit if the limit allows; never exceeds it, whatever
    /// other cores do at the same time.
    pub fn try_take(&self) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                (h < self.limit).then_some(h + 1)
            })
            .is_ok()
    }

    /// Returns one unit. `false` (and nothing changes) if none was held,
    /// which means the caller's bookkeeping is wrong.
    pub fn give_back(&self) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| h.checked_sub(1))
            .is_ok()
    }

    /// Takes up to `n` units, as many as the limit leaves (all at once,
    /// whatever other cores do); returns how many. Lends a share of this
    /// quota to a child environment, whose slots then count here too.
    pub fn take_up_to(&self, n: u32) -> u32 {
        let mut taken = 0;
        let _ = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                taken = n.min(self.limit.saturating_sub(h));
                Some(h + taken)
            });
        taken
    }

    /// Returns `n` units taken with [`Quota::take_up_to`]. `false` (and
    /// nothing changes) if fewer are held, which means the caller's
    /// bookkeeping is wrong.
    pub fn give_back_n(&self, n: u32) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| h.checked_sub(n))
            .is_ok()
    }

    /// Units held now (a snapshot).
    pub fn held(&self) -> u32 {
        self.held.load(Ordering::Acquire)
    }

    /// The limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }
}

/// Why a slot operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SliceError {
    /// The slot number is not below the vector's length.
    NoSuchSlot,
    /// The slot already has an owner.
    SlotTaken,
    /// The caller does not own the slot (or nobody does).
    NotOwner,
    /// The environment holds as many slots as its quota allows.
    QuotaExceeded,
    /// Every slot on this core is owned.
    NoFreeSlot,
    /// The operation needs an owned slot and this one is free.
    Unowned,
}

#[cfg(test)]
mod tests;
