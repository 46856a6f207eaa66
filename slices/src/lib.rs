//! Per-core slice vectors (Aegis/Xok): a fixed number of slots, each owned
//! by at most one environment, walked round-robin. Sleeping owners are
//! skipped without charge; owners that overran a previous turn pay the
//! overrun back out of their next turns; repeat offenders may lose the slot.
//!
//! Pure bookkeeping: the kernel wraps one [`SliceVector`] per core in that
//! core's lock and does the hardware side.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

/// An environment, as the slice vectors name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnvId(pub u32);

/// How many slots an environment may hold over all cores. Shared by the
/// vectors of every core, so it is atomic rather than behind a global lock.
#[derive(Debug)]
pub struct Quota {
    limit: u32,
    held: AtomicU32,
}

impl Quota {
    pub const fn new(limit: u32) -> Self {
        Quota {
            limit,
            held: AtomicU32::new(0),
        }
    }

    /// Takes one unit if the limit allows.
    pub fn try_take(&self) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                (h < self.limit).then_some(h + 1)
            })
            .is_ok()
    }

    /// Returns one unit.
    pub fn give_back(&self) {
        let _ = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| h.checked_sub(1));
    }

    pub fn held(&self) -> u32 {
        self.held.load(Ordering::Acquire)
    }
}

/// Why a slot operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SliceError {
    NoSuchSlot,
    SlotTaken,
    NotOwner,
    QuotaExceeded,
    NoFreeSlot,
}

/// What a core does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// Run `owner` in `slot` for `length_ns` (a full slice less any debt).
    Run {
        slot: usize,
        owner: EnvId,
        length_ns: u64,
    },
    /// `slot` is unowned: its time is idle.
    Idle { slot: usize, length_ns: u64 },
    /// A whole round found every owner asleep (and no unowned slot).
    NothingRunnable,
}

/// One repossession, as logged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Repossession {
    pub slot: usize,
    pub env: u32,
    pub time_ns: u64,
    pub overrun_ns: u64,
}

/// What the walk asks of the kernel about owners.
pub trait Walk {
    /// Whether `env` may run now (awake, or its predicate just held).
    fn runnable(&mut self, env: EnvId) -> bool;
    /// `env` forfeited a turn to pay back overrun debt.
    fn forfeited(&mut self, env: EnvId);
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    owner: Option<EnvId>,
    /// Overrun not yet paid back (ns).
    debt_ns: u64,
    /// One bit per recent turn of this slot, newest in bit 0: repossessed.
    history: u32,
}

/// Repossessions kept in the log.
pub const LOG_LEN: usize = 64;

/// One core's slice vector.
pub struct SliceVector {
    slots: Vec<Slot>,
    slice_ns: u64,
    /// Next slot the walk looks at.
    cursor: usize,
    /// The slot of the current (or last) turn.
    current: usize,
    /// Repossessions within the last 32 turns of a slot that cost the
    /// owner the slot (0 = never).
    offender_limit: u32,
    log: [Repossession; LOG_LEN],
    logged: usize,
}

impl SliceVector {
    /// A vector of `slots` free slots of `slice_ns` each.
    pub fn new(slots: usize, slice_ns: u64) -> Self {
        SliceVector {
            slots: alloc::vec![Slot::default(); slots],
            slice_ns,
            cursor: 0,
            current: 0,
            offender_limit: 0,
            log: [Repossession::default(); LOG_LEN],
            logged: 0,
        }
    }

    /// Repeat offenders lose a slot after `limit` repossessions within its
    /// last 32 turns (0 disables this).
    pub fn set_offender_limit(&mut self, limit: u32) {
        self.offender_limit = limit.min(32);
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn slice_ns(&self) -> u64 {
        self.slice_ns
    }

    /// The slot of the current turn.
    pub fn current(&self) -> usize {
        self.current
    }

    fn slot_mut(&mut self, slot: usize) -> Result<&mut Slot, SliceError> {
        self.slots.get_mut(slot).ok_or(SliceError::NoSuchSlot)
    }

    /// Owner of `slot`.
    pub fn owner(&self, slot: usize) -> Result<Option<EnvId>, SliceError> {
        self.slots
            .get(slot)
            .map(|s| s.owner)
            .ok_or(SliceError::NoSuchSlot)
    }

    /// Overrun debt still owed on `slot`.
    pub fn debt(&self, slot: usize) -> Result<u64, SliceError> {
        self.slots
            .get(slot)
            .map(|s| s.debt_ns)
            .ok_or(SliceError::NoSuchSlot)
    }

    /// Gives the named slot to `env`.
    pub fn alloc_named(
        &mut self,
        slot: usize,
        env: EnvId,
        quota: &Quota,
    ) -> Result<(), SliceError> {
        let s = self.slot_mut(slot)?;
        if s.owner.is_some() {
            return Err(SliceError::SlotTaken);
        }
        if !quota.try_take() {
            return Err(SliceError::QuotaExceeded);
        }
        *s = Slot {
            owner: Some(env),
            debt_ns: 0,
            history: 0,
        };
        Ok(())
    }

    /// Gives any free slot to `env`.
    pub fn alloc_any(&mut self, env: EnvId, quota: &Quota) -> Result<usize, SliceError> {
        let slot = self
            .slots
            .iter()
            .position(|s| s.owner.is_none())
            .ok_or(SliceError::NoFreeSlot)?;
        self.alloc_named(slot, env, quota).map(|()| slot)
    }

    /// Takes `slot` back from its owner `env`.
    pub fn free(&mut self, slot: usize, env: EnvId, quota: &Quota) -> Result<(), SliceError> {
        let s = self.slot_mut(slot)?;
        if s.owner != Some(env) {
            return Err(SliceError::NotOwner);
        }
        *s = Slot::default();
        quota.give_back();
        Ok(())
    }

    /// Frees every slot of `env` (teardown); returns how many.
    pub fn free_all(&mut self, env: EnvId, quota: &Quota) -> usize {
        let mut n = 0;
        for s in self.slots.iter_mut().filter(|s| s.owner == Some(env)) {
            *s = Slot::default();
            quota.give_back();
            n += 1;
        }
        n
    }

    /// Slots `env` holds here.
    pub fn held_by(&self, env: EnvId) -> usize {
        self.slots.iter().filter(|s| s.owner == Some(env)).count()
    }

    /// Free slots.
    pub fn free_count(&self) -> usize {
        self.slots.iter().filter(|s| s.owner.is_none()).count()
    }

    /// The next turn, round-robin from the slot after the last one. Slots
    /// whose owner is not runnable are skipped and not charged; a slot
    /// whose debt covers a whole slice is forfeited (debt reduced by one
    /// slice); otherwise the turn is shortened by the debt. Allocation-free.
    pub fn next_turn(&mut self, walk: &mut dyn Walk) -> Turn {
        let n = self.slots.len();
        for _ in 0..n {
            let at = self.cursor;
            self.cursor = (at + 1) % n;
            let slice = self.slice_ns;
            let slot = &mut self.slots[at];
            let Some(owner) = slot.owner else {
                self.current = at;
                return Turn::Idle {
                    slot: at,
                    length_ns: slice,
                };
            };
            if !walk.runnable(owner) {
                continue;
            }
            slot.history <<= 1;
            if slot.debt_ns >= slice {
                slot.debt_ns -= slice;
                walk.forfeited(owner);
                continue;
            }
            let length_ns = slice - slot.debt_ns;
            slot.debt_ns = 0;
            self.current = at;
            return Turn::Run {
                slot: at,
                owner,
                length_ns,
            };
        }
        Turn::NothingRunnable
    }

    /// Charges `overrun_ns` used past the end of a turn in `slot` that ended
    /// without a repossession (a late yield): paid back like any debt.
    pub fn charge_overrun(&mut self, slot: usize, overrun_ns: u64) {
        if let Some(s) = self.slots.get_mut(slot).filter(|s| s.owner.is_some()) {
            s.debt_ns = s.debt_ns.saturating_add(overrun_ns);
        }
    }

    /// Records that the turn in `slot` was repossessed `overrun_ns` past
    /// its end: the overrun becomes debt, the event is logged, and a repeat
    /// offender loses the slot. Returns whether the slot was taken away (its
    /// quota unit is the caller's to give back).
    pub fn record_repossession(&mut self, slot: usize, now_ns: u64, overrun_ns: u64) -> bool {
        let limit = self.offender_limit;
        let Some(s) = self.slots.get_mut(slot) else {
            return false;
        };
        let Some(owner) = s.owner else { return false };
        s.debt_ns = s.debt_ns.saturating_add(overrun_ns);
        s.history |= 1;
        let revoke = limit != 0 && s.history.count_ones() >= limit;
        if revoke {
            *s = Slot::default();
        }
        self.log[self.logged % LOG_LEN] = Repossession {
            slot,
            env: owner.0,
            time_ns: now_ns,
            overrun_ns,
        };
        self.logged += 1;
        revoke
    }

    /// The most recent repossessions, oldest first (at most [`LOG_LEN`]).
    pub fn repossessions(&self) -> impl Iterator<Item = &Repossession> {
        let n = self.logged.min(LOG_LEN);
        (self.logged - n..self.logged).map(|i| &self.log[i % LOG_LEN])
    }
}

#[cfg(test)]
mod tests;
