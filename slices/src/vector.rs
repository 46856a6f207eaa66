//! One core's slice vector: slots, the walk, debt, repossessions.

use crate::{EnvId, Quota, SliceError, CARRY_LEN, LOG_LEN, MAX_SLOTS, MAX_WINDOW};

/// What a core does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// Run `owner` in its `slot` for `length_ns`: a full slice less any
    /// overrun debt it still owed (which is now paid).
    Run {
        slot: usize,
        owner: EnvId,
        length_ns: u64,
    },
    /// `slot` is unowned: its time is idle.
    Idle { slot: usize, length_ns: u64 },
    /// A whole pass found no turn to give: every slot is owned and each
    /// owner is asleep or forfeited its turn to debt. The core may halt
    /// until something wakes (sleepers are asked again next time).
    NothingRunnable,
}

/// What the walk asks of the kernel about owners. Any
/// `FnMut(EnvId) -> bool` is a `Walk` (runnable or not; forfeits ignored).
pub trait Walk {
    /// Whether `env` may run now (awake, or its wakeup predicate holds).
    fn runnable(&mut self, env: EnvId) -> bool;
    /// `env` forfeited a turn to pay back overrun debt.
    fn forfeited(&mut self, env: EnvId) {
        let _ = env;
    }
}

impl<F: FnMut(EnvId) -> bool> Walk for F {
    fn runnable(&mut self, env: EnvId) -> bool {
        self(env)
    }
}

/// When a repeat offender loses its slot: after `repossessions`
/// repossessions within the slot's last `window` turns (0 repossessions:
/// never).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffenderPolicy {
    pub repossessions: u32,
    /// In turns of that slot (1..=[`MAX_WINDOW`]).
    pub window: u32,
}

impl OffenderPolicy {
    /// Offenders never lose a slot.
    pub const NEVER: OffenderPolicy = OffenderPolicy {
        repossessions: 0,
        window: MAX_WINDOW,
    };
}

/// A slice-vector configuration the vector cannot have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    NoSlots,
    /// More than [`MAX_SLOTS`].
    TooManySlots,
    ZeroSlice,
    /// Window 0 or above [`MAX_WINDOW`].
    BadWindow,
    /// More repossessions than the window has turns: could never trigger.
    LimitOverWindow,
}

/// One repossession, as logged (plain data, exportable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Repossession {
    pub slot: u32,
    /// The slot's owner (charged with the overrun).
    pub env: EnvId,
    pub time_ns: u64,
    pub overrun_ns: u64,
    /// The owner lost the slot as a repeat offender.
    pub lost_slot: bool,
}

impl Repossession {
    const EMPTY: Repossession = Repossession {
        slot: 0,
        env: EnvId(crate::NO_ENV),
        time_ns: 0,
        overrun_ns: 0,
        lost_slot: false,
    };
}

/// What [`SliceVector::record_repossession`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repossessed {
    /// The slot's owner, now charged.
    pub env: EnvId,
    /// The debt that owner now owes on this slot (or carries, if it lost
    /// the slot).
    pub debt_ns: u64,
    /// The owner lost the slot (freed, quota unit returned).
    pub lost_slot: bool,
}

/// One slot, as queried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotInfo {
    pub owner: Option<EnvId>,
    /// Overrun not yet paid back (ns).
    pub debt_ns: u64,
    /// Turns run since the current owner got the slot.
    pub turns: u64,
    /// Turns forfeited to debt since the current owner got the slot.
    pub forfeits: u64,
    /// Repossessions within the offender window.
    pub recent_repossessions: u32,
}

/// The walk's running totals on this core (plain data, exportable).
/// Per pass over the slots, `granted_ns + repaid_ns + idle_ns`
/// is the slice length times the slots whose owner was not asleep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct WalkStats {
    /// Passes completed (counted as the walk moves past the last slot).
    pub rounds: u64,
    /// Turns given to owners.
    pub turns: u64,
    /// Unowned slots left idle.
    pub idle_turns: u64,
    /// Turns forfeited to debt.
    pub forfeits: u64,
    /// Slots passed over because the owner was asleep or parked (not
    /// charged).
    pub skipped: u64,
    /// Walks that found nothing to run.
    pub nothing_runnable: u64,
    /// Time given to owners.
    pub granted_ns: u64,
    /// Time of unowned slots left idle.
    pub idle_ns: u64,
    /// Debt paid back: shortened turns and forfeited slices.
    pub repaid_ns: u64,
    pub repossessions: u64,
    /// Slots taken from repeat offenders.
    pub revocations: u64,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    owner: Option<EnvId>,
    debt_ns: u64,
    /// One bit per turn of this slot, newest in bit 0: repossessed.
    history: u64,
    turns: u64,
    forfeits: u64,
    /// The owner parked its turns here until then ([`SliceVector::park`]);
    /// 0 or past: not parked.
    parked_until: u64,
}

impl Slot {
    const FREE: Slot = Slot {
        owner: None,
        debt_ns: 0,
        history: 0,
        turns: 0,
        forfeits: 0,
        parked_until: 0,
    };
}

fn window_mask(window: u32) -> u64 {
    if window >= 64 {
        u64::MAX
    } else {
        (1u64 << window) - 1
    }
}

/// One core's slice vector: plain data of fixed size (no heap), so it can
/// live in a static or a per-core structure behind that core's lock.
#[derive(Clone, Debug)]
pub struct SliceVector {
    slots: [Slot; MAX_SLOTS],
    len: usize,
    slice_ns: u64,
    /// Next slot the walk looks at.
    cursor: usize,
    /// The slot of the turn in progress.
    current: Option<usize>,
    started_ns: u64,
    offenders: OffenderPolicy,
    /// Debt of environments that gave up their last slot here.
    carried: [Option<(EnvId, u64)>; CARRY_LEN],
    log: [Repossession; LOG_LEN],
    logged: u64,
    stats: WalkStats,
}

impl SliceVector {
    /// A vector of `slots` free slots of `slice_ns` each, offenders never
    /// losing a slot.
    pub const fn try_new(slots: usize, slice_ns: u64) -> Result<Self, ConfigError> {
        if slots == 0 {
            return Err(ConfigError::NoSlots);
        }
        if slots > MAX_SLOTS {
            return Err(ConfigError::TooManySlots);
        }
        if slice_ns == 0 {
            return Err(ConfigError::ZeroSlice);
        }
        Ok(SliceVector {
            slots: [Slot::FREE; MAX_SLOTS],
            len: slots,
            slice_ns,
            cursor: 0,
            current: None,
            started_ns: 0,
            offenders: OffenderPolicy::NEVER,
            carried: [None; CARRY_LEN],
            log: [Repossession::EMPTY; LOG_LEN],
            logged: 0,
            stats: WalkStats {
                rounds: 0,
                turns: 0,
                idle_turns: 0,
                forfeits: 0,
                skipped: 0,
                nothing_runnable: 0,
                granted_ns: 0,
                idle_ns: 0,
                repaid_ns: 0,
                repossessions: 0,
                revocations: 0,
            },
        })
    }

    /// [`Self::try_new`] for a configuration checked already (the boot
    /// command line).
    ///
    /// # Panics
    /// If `slots` is 0 or above [`MAX_SLOTS`], or `slice_ns` is 0.
    pub const fn new(slots: usize, slice_ns: u64) -> Self {
        match Self::try_new(slots, slice_ns) {
            Ok(v) => v,
            Err(_) => panic!("slice vector: 1..=MAX_SLOTS slots of a nonzero length"),
        }
    }

    /// Sets when repeat offenders lose their slot.
    pub fn set_offender_policy(&mut self, policy: OffenderPolicy) -> Result<(), ConfigError> {
        if policy.window == 0 || policy.window > MAX_WINDOW {
            return Err(ConfigError::BadWindow);
        }
        if policy.repossessions > policy.window {
            return Err(ConfigError::LimitOverWindow);
        }
        self.offenders = policy;
        Ok(())
    }

    /// Repeat offenders lose a slot after `limit` repossessions within its
    /// last 32 turns (0 disables this; above 32 counts as 32).
    pub fn set_offender_limit(&mut self, limit: u32) {
        self.offenders = OffenderPolicy {
            repossessions: limit.min(32),
            window: 32,
        };
    }

    pub fn offender_policy(&self) -> OffenderPolicy {
        self.offenders
    }

    /// Slots in this vector.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: a vector has at least one slot.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Length of every slot (ns).
    pub fn slice_ns(&self) -> u64 {
        self.slice_ns
    }

    /// The slot of the turn in progress (none before the first turn or
    /// after a walk found nothing runnable).
    pub fn current(&self) -> Option<usize> {
        self.current
    }

    /// When the turn in progress started (the `now` given to the walk).
    pub fn turn_started_ns(&self) -> u64 {
        self.started_ns
    }

    /// The slot the next walk looks at first.
    pub fn next_slot(&self) -> usize {
        self.cursor
    }

    /// Running totals of the walk.
    pub fn stats(&self) -> WalkStats {
        self.stats
    }

    fn slot(&self, slot: usize) -> Result<&Slot, SliceError> {
        self.slots[..self.len]
            .get(slot)
            .ok_or(SliceError::NoSuchSlot)
    }

    /// Owner of `slot`.
    pub fn owner(&self, slot: usize) -> Result<Option<EnvId>, SliceError> {
        self.slot(slot).map(|s| s.owner)
    }

    /// Overrun debt still owed on `slot`.
    pub fn debt(&self, slot: usize) -> Result<u64, SliceError> {
        self.slot(slot).map(|s| s.debt_ns)
    }

    /// Everything about `slot`.
    pub fn slot_info(&self, slot: usize) -> Result<SlotInfo, SliceError> {
        let window = window_mask(self.offenders.window);
        self.slot(slot).map(|s| SlotInfo {
            owner: s.owner,
            debt_ns: s.debt_ns,
            turns: s.turns,
            forfeits: s.forfeits,
            recent_repossessions: (s.history & window).count_ones(),
        })
    }

    /// Slots `env` holds on this core.
    pub fn held_by(&self, env: EnvId) -> usize {
        self.slots_of(env).count()
    }

    /// The slots `env` holds on this core, in order.
    pub fn slots_of(&self, env: EnvId) -> impl Iterator<Item = usize> + '_ {
        self.slots[..self.len]
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.owner == Some(env))
            .map(|(i, _)| i)
    }

    /// Unowned slots.
    pub fn free_count(&self) -> usize {
        self.slots[..self.len]
            .iter()
            .filter(|s| s.owner.is_none())
            .count()
    }

    /// Debt `env` carries on this core without a slot to pay it from (it
    /// is charged to the next slot it gets here).
    pub fn carried_debt(&self, env: EnvId) -> u64 {
        self.carried
            .iter()
            .flatten()
            .find(|(e, _)| *e == env)
            .map_or(0, |&(_, d)| d)
    }

    fn take_carried(&mut self, env: EnvId) -> u64 {
        for c in &mut self.carried {
            if let Some((e, d)) = *c {
                if e == env {
                    *c = None;
                    return d;
                }
            }
        }
        0
    }

    /// Keeps `debt` for `env`. With the table full, the smallest debt is
    /// dropped (bounded memory; at most [`CARRY_LEN`] slot-less debtors
    /// per core are remembered).
    fn carry(&mut self, env: EnvId, debt: u64) {
        if debt == 0 {
            return;
        }
        if let Some(Some((_, d))) = self
            .carried
            .iter_mut()
            .find(|c| c.is_some_and(|(e, _)| e == env))
        {
            *d = d.saturating_add(debt);
            return;
        }
        if let Some(free) = self.carried.iter_mut().find(|c| c.is_none()) {
            *free = Some((env, debt));
            return;
        }
        let smallest = self
            .carried
            .iter_mut()
            .min_by_key(|c| c.map_or(0, |(_, d)| d))
            .expect("CARRY_LEN > 0");
        if smallest.is_some_and(|(_, d)| d < debt) {
            *smallest = Some((env, debt));
        }
    }

    /// Frees `slot`; its debt moves to another slot the owner holds here,
    /// or is carried until it gets one.
    fn unbind(&mut self, slot: usize) {
        let s = core::mem::replace(&mut self.slots[slot], Slot::FREE);
        let (Some(env), debt) = (s.owner, s.debt_ns) else {
            return;
        };
        if debt == 0 {
            return;
        }
        if let Some(other) = self.slots[..self.len]
            .iter_mut()
            .find(|o| o.owner == Some(env))
        {
            other.debt_ns = other.debt_ns.saturating_add(debt);
        } else {
            self.carry(env, debt);
        }
    }

    /// Gives the named slot to `env`, taking a unit of its quota. Debt it
    /// carries on this core moves onto the slot.
    pub fn alloc_named(
        &mut self,
        slot: usize,
        env: EnvId,
        quota: &Quota,
    ) -> Result<(), SliceError> {
        if self.slot(slot)?.owner.is_some() {
            return Err(SliceError::SlotTaken);
        }
        if !quota.try_take() {
            return Err(SliceError::QuotaExceeded);
        }
        let debt_ns = self.take_carried(env);
        self.slots[slot] = Slot {
            owner: Some(env),
            debt_ns,
            ..Slot::FREE
        };
        Ok(())
    }

    /// Gives the lowest free slot to `env`.
    pub fn alloc_any(&mut self, env: EnvId, quota: &Quota) -> Result<usize, SliceError> {
        let slot = self.slots[..self.len]
            .iter()
            .position(|s| s.owner.is_none())
            .ok_or(SliceError::NoFreeSlot)?;
        self.alloc_named(slot, env, quota).map(|()| slot)
    }

    /// Takes `slot` back from its owner `env` and returns the quota unit.
    /// Any debt stays with `env` on this core.
    pub fn free(&mut self, slot: usize, env: EnvId, quota: &Quota) -> Result<(), SliceError> {
        if self.slot(slot)?.owner != Some(env) {
            return Err(SliceError::NotOwner);
        }
        self.unbind(slot);
        quota.give_back();
        Ok(())
    }

    /// Teardown: frees every slot of `env` here, returns their quota units
    /// and forgets its debt; returns how many slots were freed.
    pub fn free_all(&mut self, env: EnvId, quota: &Quota) -> usize {
        let mut n = 0;
        for s in self.slots[..self.len]
            .iter_mut()
            .filter(|s| s.owner == Some(env))
        {
            *s = Slot::FREE;
            quota.give_back();
            n += 1;
        }
        self.take_carried(env);
        n
    }

    /// The next turn, round-robin from the slot after the last one (the
    /// hot path: allocation-free, at most one pass over the slots).
    ///
    /// * An owned slot whose owner is not runnable is skipped and not
    ///   charged (no debt paid, no turn counted).
    /// * A runnable owner whose debt covers a whole slice forfeits the
    ///   turn: the debt drops by one slice, [`Walk::forfeited`] is told,
    ///   and the walk goes on.
    /// * Otherwise the owner runs for the slice less its debt, and the debt
    ///   is cleared.
    /// * An unowned slot is idle time (the kernel may lend it: the
    ///   vector only says it is unowned).
    /// * If a whole pass gives no turn, [`Turn::NothingRunnable`].
    ///
    /// `now_ns` is recorded as the start of the turn.
    pub fn next_turn<W: Walk + ?Sized>(&mut self, now_ns: u64, walk: &mut W) -> Turn {
        let n = self.len;
        let slice = self.slice_ns;
        for _ in 0..n {
            let at = self.cursor;
            self.cursor = if at + 1 == n {
                self.stats.rounds += 1;
                0
            } else {
                at + 1
            };
            let s = &mut self.slots[at];
            let Some(owner) = s.owner else {
                self.current = Some(at);
                self.started_ns = now_ns;
                self.stats.idle_turns += 1;
                self.stats.idle_ns += slice;
                return Turn::Idle {
                    slot: at,
                    length_ns: slice,
                };
            };
            // Parked (it said it has nothing to run here) or asleep: the
            // turn is passed on, uncharged. Parked is asked first: the
            // walk's question may wake a sleeper, which a parked slot
            // would then not run (another core, or `idle`'s lending, does).
            if s.parked_until > now_ns || !walk.runnable(owner) {
                self.stats.skipped += 1;
                continue;
            }
            if s.debt_ns >= slice {
                s.debt_ns -= slice;
                s.forfeits += 1;
                self.stats.forfeits += 1;
                self.stats.repaid_ns += slice;
                walk.forfeited(owner);
                continue;
            }
            let length_ns = slice - s.debt_ns;
            self.stats.repaid_ns += s.debt_ns;
            self.stats.granted_ns += length_ns;
            self.stats.turns += 1;
            s.debt_ns = 0;
            s.history <<= 1;
            s.turns += 1;
            self.current = Some(at);
            self.started_ns = now_ns;
            return Turn::Run {
                slot: at,
                owner,
                length_ns,
            };
        }
        self.current = None;
        self.stats.nothing_runnable += 1;
        Turn::NothingRunnable
    }

    /// Parks `env`'s turns on this core until `until_ns`: the walk passes
    /// over its slots, uncharged, as over a sleeper's (the time goes to
    /// the next runnable slot, or is idle), until then. A libOS with
    /// nothing to run on this core says so once instead of taking and
    /// yielding turn after turn. A later park replaces an earlier one;
    /// a slot freed forgets it. Returns the slots parked.
    pub fn park(&mut self, env: EnvId, until_ns: u64) -> usize {
        let mut n = 0;
        for s in self.slots[..self.len]
            .iter_mut()
            .filter(|s| s.owner == Some(env))
        {
            s.parked_until = until_ns;
            n += 1;
        }
        n
    }

    /// The earliest park on this core still running at `now_ns`: when
    /// an idle core should look at its slots again.
    pub fn next_unpark(&self, now_ns: u64) -> Option<u64> {
        self.slots[..self.len]
            .iter()
            .filter(|s| s.owner.is_some() && s.parked_until > now_ns)
            .map(|s| s.parked_until)
            .min()
    }

    /// Adds `overrun_ns` used past the end of a turn in `slot` that ended
    /// without a repossession (a late yield) to the owner's debt, paid back
    /// like any other; nothing is logged. Returns whether the slot had an
    /// owner to charge. It charges whoever holds the slot *now*: for a turn
    /// whose owner may have given the slot up meanwhile, use
    /// [`Self::charge_overrun_of`].
    pub fn charge_overrun(&mut self, slot: usize, overrun_ns: u64) -> bool {
        match self.slots[..self.len].get_mut(slot) {
            Some(s) if s.owner.is_some() => {
                s.debt_ns = s.debt_ns.saturating_add(overrun_ns);
                true
            }
            _ => false,
        }
    }

    /// Adds `overrun_ns` to the debt of `owner`, the environment whose turn
    /// in `slot` ran over, wherever it is on this core now: on `slot` if it
    /// still holds it, else on another slot it holds here, else carried
    /// until it gets one. Whoever holds `slot` now pays nothing for a turn
    /// that was not theirs (`owner` may have freed the slot during its turn
    /// and another environment allocated it). Returns the owner's debt on
    /// this core after the charge.
    pub fn charge_overrun_of(&mut self, slot: usize, owner: EnvId, overrun_ns: u64) -> u64 {
        let len = self.len;
        let held = match self.slots[..len].get(slot) {
            Some(s) if s.owner == Some(owner) => Some(slot),
            _ => self.slots[..len]
                .iter()
                .position(|s| s.owner == Some(owner)),
        };
        match held {
            Some(at) => {
                let s = &mut self.slots[at];
                s.debt_ns = s.debt_ns.saturating_add(overrun_ns);
                s.debt_ns
            }
            None => {
                self.carry(owner, overrun_ns);
                self.carried_debt(owner)
            }
        }
    }

    /// [`Self::record_repossession`] of a turn owned by `owner`: if `owner`
    /// still holds `slot`, exactly that (debt, offender record, perhaps the
    /// slot lost; `quota` must be `owner`'s). If it gave the slot up during
    /// the turn, the overrun is charged to it by [`Self::charge_overrun_of`]
    /// and logged under its name; the slot's present owner is not touched
    /// (its offender record is its own turns'), and `owner` has no slot
    /// here to lose for it.
    pub fn record_repossession_of(
        &mut self,
        slot: usize,
        owner: EnvId,
        now_ns: u64,
        overrun_ns: u64,
        quota: &Quota,
    ) -> Result<Repossessed, SliceError> {
        let current = self.slot(slot)?.owner;
        if current == Some(owner) {
            return self.record_repossession(slot, now_ns, overrun_ns, quota);
        }
        let debt_ns = self.charge_overrun_of(slot, owner, overrun_ns);
        self.stats.repossessions += 1;
        self.log_repossession(Repossession {
            slot: slot as u32,
            env: owner,
            time_ns: now_ns,
            overrun_ns,
            lost_slot: false,
        });
        Ok(Repossessed {
            env: owner,
            debt_ns,
            lost_slot: false,
        })
    }

    fn log_repossession(&mut self, r: Repossession) {
        self.log[(self.logged % LOG_LEN as u64) as usize] = r;
        self.logged += 1;
    }

    /// Records that the latest turn in `slot` was repossessed `overrun_ns`
    /// past its end, at `now_ns`: the overrun becomes the owner's debt and
    /// the event is logged. If that makes the owner a repeat offender (see
    /// [`OffenderPolicy`]) it loses the slot: the slot is freed and a unit
    /// returned to `quota`, **which must be the slot owner's** (the owner
    /// is charged even if a donation recipient ran; the owner keeps the
    /// debt).
    pub fn record_repossession(
        &mut self,
        slot: usize,
        now_ns: u64,
        overrun_ns: u64,
        quota: &Quota,
    ) -> Result<Repossessed, SliceError> {
        let policy = self.offenders;
        let s = self.slots[..self.len]
            .get_mut(slot)
            .ok_or(SliceError::NoSuchSlot)?;
        let env = s.owner.ok_or(SliceError::Unowned)?;
        s.debt_ns = s.debt_ns.saturating_add(overrun_ns);
        s.history |= 1;
        let recent = (s.history & window_mask(policy.window)).count_ones();
        let lost_slot = policy.repossessions != 0 && recent >= policy.repossessions;
        let debt_ns = s.debt_ns;
        self.stats.repossessions += 1;
        if lost_slot {
            self.unbind(slot);
            quota.give_back();
            self.stats.revocations += 1;
        }
        self.log_repossession(Repossession {
            slot: slot as u32,
            env,
            time_ns: now_ns,
            overrun_ns,
            lost_slot,
        });
        Ok(Repossessed {
            env,
            debt_ns,
            lost_slot,
        })
    }

    /// The most recent repossessions, oldest first (at most [`LOG_LEN`]).
    pub fn repossessions(&self) -> impl Iterator<Item = &Repossession> + '_ {
        let n = self.logged.min(LOG_LEN as u64);
        (self.logged - n..self.logged).map(|i| &self.log[(i % LOG_LEN as u64) as usize])
    }

    /// Repossessions logged since boot (including those the ring dropped).
    pub fn repossessions_logged(&self) -> u64 {
        self.logged
    }
}
