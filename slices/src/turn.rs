//! One core's turn in progress, as a pure state machine: when the turn is
//! over, when and how its environment is told (epilogue upcall, or a
//! pending flag while it is disabled), its grace period and the grace's
//! renewal, a donation's hand-over, the repossession, and what each way
//! of ending charges the turn's owner. The kernel feeds it the clock and
//! what it saw of the interrupted context, does what it answers, and keeps
//! the hardware side (contexts, upcalls, the timer) to itself.
//!
//! Two rules the kernel once broke (issue 14) are kept here, where the
//! model test in `tests/turn_model.rs` checks them:
//! - a donation hands over the turn's deadline: once the turn has been
//!   told to end, the recipient is told at once and gets only what is left
//!   of the grace (hole 5: a fresh grace per donation let two environments
//!   keep a core for ever);
//! - overrun is charged to the turn's owner — the slot's owner when the
//!   turn began — wherever it is on the core, never to whoever holds the
//!   slot by then (hole 8).

use crate::{EnvId, Quota, SliceVector};

/// Where the running environment is in its turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Inside its turn.
    Running,
    /// Turn over while disabled: revocation pending, waiting for its yield.
    Deferred,
    /// Turn over while restoring a context in user mode (the registered
    /// resume range): revoked once out of it, taken at grace's end.
    Resuming,
    /// Turn over, epilogue entered: waiting for its yield.
    Revoking,
}

/// What the kernel saw of the interrupted context at a timer interrupt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The environment's disabled flag (a critical section, or an upcall).
    pub disabled: bool,
    /// Its program counter is inside its registered resume range.
    pub in_resume_range: bool,
    /// The context is exactly the epilogue's entry frame: not one
    /// instruction ran since it was told (only asked in `Revoking`).
    pub untouched_since_told: bool,
    /// The hypervisor's steal-time clock of this core's vCPU: how long it
    /// ran something else while the vCPU was runnable, so far (KVM's
    /// paravirtual clock; 0 for ever where none is offered, as under TCG).
    /// The turn notes it when it is told, and gives the steal since back
    /// at the grace's end.
    pub steal_clock_ns: u64,
}

/// What the kernel does at a timer interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tick {
    /// Nothing changes; the next interrupt is due at `until` (the turn's
    /// end while it runs, else its grace's end).
    Continue { until: u64 },
    /// In the resume range past the end: look again soon, at the latest
    /// at `grace_end`.
    RetryResume { grace_end: u64 },
    /// Disabled: leave the revocation pending; taken at `grace_end`.
    Defer { grace_end: u64 },
    /// Enter the epilogue; taken at `grace_end`.
    Revoke { grace_end: u64 },
    /// Its epilogue had not run one instruction, or the hypervisor took
    /// its vCPU for part of the grace (its vCPU was off the host CPU): the
    /// grace is given again, to `grace_end`.
    Renewed { grace_end: u64 },
    /// Take the core by force ([`TurnClock::repossess`]).
    Repossess,
}

/// A repossession, as charged by [`TurnClock::repossess`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    /// Time past the turn's end.
    pub overrun_ns: u64,
    /// The owner lost the slot as a repeat offender.
    pub lost_slot: bool,
}

/// The grace period and its renewal bound, fixed at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grace {
    pub grace_ns: u64,
    /// Most grace given again over one turn (the kernel: one slice).
    pub renew_limit_ns: u64,
}

/// One turn: whose it is, its deadlines, and what its owner was charged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TurnClock {
    /// The slot's owner when the turn began (`None`: borrowed idle time,
    /// which no slot pays for).
    owner: Option<EnvId>,
    slot: usize,
    phase: Phase,
    end: u64,
    grace_end: u64,
    /// Grace given again so far (see [`Tick::Renewed`]).
    renewed_ns: u64,
    /// The steal-time clock when the environment was told the turn's end.
    steal_at_told_ns: u64,
    /// Of the time stolen since the environment was told, how much was
    /// given back already (a renewal from its grace's end covers all of it
    /// until then).
    stolen_given_ns: u64,
    /// Overrun charged to `owner` so far (never the same time twice).
    charged_ns: u64,
}

impl TurnClock {
    /// A turn of `owner` in `slot` from `now` for `length_ns`.
    pub fn begin(owner: Option<EnvId>, slot: usize, now: u64, length_ns: u64, g: Grace) -> Self {
        TurnClock {
            owner,
            slot,
            phase: Phase::Running,
            end: now + length_ns,
            grace_end: now + length_ns + g.grace_ns,
            renewed_ns: 0,
            steal_at_told_ns: 0,
            stolen_given_ns: 0,
            charged_ns: 0,
        }
    }

    pub fn owner(&self) -> Option<EnvId> {
        self.owner
    }
    pub fn slot(&self) -> usize {
        self.slot
    }
    pub fn phase(&self) -> Phase {
        self.phase
    }
    /// When the turn ends.
    pub fn end(&self) -> u64 {
        self.end
    }
    /// When its grace ends (moves only when the revocation is first told,
    /// and at a renewal).
    pub fn grace_end(&self) -> u64 {
        self.grace_end
    }
    pub fn renewed_ns(&self) -> u64 {
        self.renewed_ns
    }
    pub fn charged_ns(&self) -> u64 {
        self.charged_ns
    }

    /// Whether a tick at `now` reads the `Seen` it is given: only when the
    /// turn ends then (running or resuming, past its end) or its grace
    /// does. The kernel reads the context (a lock for the resume range)
    /// only then, not on every interleave step between.
    pub fn sees_at(&self, now: u64) -> bool {
        match self.phase {
            Phase::Running | Phase::Resuming => now >= self.end,
            Phase::Deferred | Phase::Revoking => now >= self.grace_end,
        }
    }

    /// The timer fired at `now`; `seen` is what the kernel saw of the
    /// interrupted context.
    pub fn tick(&mut self, now: u64, seen: Seen, g: Grace) -> Tick {
        match self.phase {
            Phase::Running | Phase::Resuming if now >= self.end => {
                if self.phase == Phase::Running {
                    // Told now, one way or another.
                    self.steal_at_told_ns = seen.steal_clock_ns;
                }
                if seen.in_resume_range {
                    // Restoring a context (a few instructions): revoke once
                    // it is in; still there at the end of the grace it is
                    // owed, it is taken (a range over a loop would keep the
                    // core for ever).
                    if self.phase == Phase::Running {
                        self.grace_end = self.grace_end.max(now + g.grace_ns);
                        self.phase = Phase::Resuming;
                    } else if now >= self.grace_end {
                        return Tick::Repossess;
                    }
                    return Tick::RetryResume {
                        grace_end: self.grace_end,
                    };
                }
                // The grace runs from when the revocation is told: a late
                // timer must not eat the time the environment is owed to
                // save its state (the lateness is charged as overrun). A
                // turn that was in its resume range was told when the
                // kernel first tried: its grace has been running since,
                // and starting it again would let a libOS that lingers in
                // its range until just before the grace ends run twice
                // the grace uncharged (found by slices/tests/turn_model.rs).
                if self.phase == Phase::Running {
                    self.grace_end = self.grace_end.max(now + g.grace_ns);
                }
                if seen.disabled {
                    self.phase = Phase::Deferred;
                    Tick::Defer {
                        grace_end: self.grace_end,
                    }
                } else {
                    self.phase = Phase::Revoking;
                    Tick::Revoke {
                        grace_end: self.grace_end,
                    }
                }
            }
            Phase::Deferred | Phase::Revoking if now >= self.grace_end => {
                let left = g
                    .renew_limit_ns
                    .max(g.grace_ns)
                    .saturating_sub(self.renewed_ns);
                let renewable = self.phase == Phase::Revoking
                    && seen.untouched_since_told
                    && g.grace_ns <= left;
                // The time the hypervisor took from the vCPU since the
                // environment was told is time it did not have: its grace
                // ends that much later, within the same bound (issue 13:
                // extend grace by the steal time, as Linux leaves steal
                // out of a task's runtime). A libOS that ignores the
                // revocation gains no more than what was stolen.
                let stolen_since_told = seen.steal_clock_ns.saturating_sub(self.steal_at_told_ns);
                let stolen = stolen_since_told
                    .saturating_sub(self.stolen_given_ns)
                    .min(left);
                let extended = self.grace_end + stolen;
                if renewable {
                    self.renewed_ns += now - self.grace_end + g.grace_ns;
                    self.grace_end = now + g.grace_ns;
                } else if extended > now {
                    self.renewed_ns += stolen;
                    self.grace_end = extended;
                } else {
                    return Tick::Repossess;
                }
                // What was stolen until now is given back either way.
                self.stolen_given_ns = stolen_since_told;
                Tick::Renewed {
                    grace_end: self.grace_end,
                }
            }
            Phase::Running => Tick::Continue { until: self.end },
            Phase::Deferred | Phase::Revoking | Phase::Resuming => Tick::Continue {
                until: self.grace_end,
            },
        }
    }

    /// Overrun owed at `now` by a turn that ends (or is donated) without a
    /// repossession: its time past the end beyond the grace period and
    /// beyond the host's steal given back (time its vCPU did not run is
    /// not the environment's overrun). A repossession charges all of it.
    fn past_grace(&self, now: u64, g: Grace) -> u64 {
        now.saturating_sub(self.end)
            .saturating_sub(g.grace_ns)
            .saturating_sub(self.stolen_given_ns)
    }

    /// Brings the overrun charged to the owner up to `total_ns`, charging
    /// the part not charged yet to the owner wherever it is on this core
    /// ([`SliceVector::charge_overrun_of`]); `owner_alive` false (its slots
    /// and debts are gone) charges nothing. Returns what was charged now.
    fn charge_up_to(&mut self, v: &mut SliceVector, total_ns: u64, owner_alive: bool) -> u64 {
        let due = total_ns.saturating_sub(self.charged_ns);
        self.charged_ns = self.charged_ns.max(total_ns);
        match self.owner {
            Some(owner) if due > 0 && owner_alive => {
                v.charge_overrun_of(self.slot, owner, due);
                due
            }
            _ => 0,
        }
    }

    /// The running environment donates the rest of the turn at `now`. The
    /// recipient inherits the deadline: before the end, the rest of the
    /// slice; once the turn has been told to end, only what is left of its
    /// grace, told at once (returns `true`: the kernel sets the recipient's
    /// pending flag). What the donor ran past its grace is charged now.
    pub fn donate(&mut self, now: u64, v: &mut SliceVector, owner_alive: bool, g: Grace) -> bool {
        let told = self.phase != Phase::Running;
        if told {
            self.phase = Phase::Deferred;
        }
        self.charge_up_to(v, self.past_grace(now, g), owner_alive);
        told
    }

    /// The turn ends at `now` by a yield: time past the end beyond the
    /// grace is charged (a yield within grace costs nothing). Returns the
    /// charge.
    pub fn end_by_yield(
        &mut self,
        now: u64,
        v: &mut SliceVector,
        owner_alive: bool,
        g: Grace,
    ) -> u64 {
        self.charge_up_to(v, self.past_grace(now, g), owner_alive)
    }

    /// The core is taken back at `now`: the whole time past the end is
    /// the owner's overrun (less what a donation charged already), logged
    /// as a repossession; if the owner still holds the slot it may lose it
    /// as a repeat offender (`owner_quota`, the owner's, gets the unit
    /// back). `owner_quota` `None`: the owner is dead, nothing is charged.
    pub fn repossess(
        &mut self,
        now: u64,
        v: &mut SliceVector,
        owner_quota: Option<&Quota>,
    ) -> Taken {
        let overrun_ns = now.saturating_sub(self.end);
        let due = overrun_ns.saturating_sub(self.charged_ns);
        self.charged_ns = self.charged_ns.max(overrun_ns);
        let lost_slot = match (self.owner, owner_quota) {
            (Some(owner), Some(quota)) => v
                .record_repossession_of(self.slot, owner, now, due, quota)
                .is_ok_and(|r| r.lost_slot),
            _ => false,
        };
        Taken {
            overrun_ns,
            lost_slot,
        }
    }

    /// Time the turn has run past its end by `now` without its owner being
    /// charged for it, less grace given again: at most the grace plus how
    /// late the revocation was told, unless the turn was kept past its
    /// grace uncharged. Borrowed idle time counts nothing.
    pub fn uncharged(&self, now: u64) -> u64 {
        if self.owner.is_none() {
            return 0;
        }
        now.saturating_sub(self.end)
            .saturating_sub(self.charged_ns)
            .saturating_sub(self.renewed_ns)
    }
}
