//! The charge: the usual one (a full quantum ending in a preemption) on a
//! fast path that checks everything first and calls nothing, every other
//! out of line.

use sched_api::{CoreId, RunEnd, SchedError, ThreadId, ThreadState};

use crate::credit::compensation;
use crate::thread::Slot;
use crate::Lottery;

/// What [`Lottery::charge_full_quantum`] did.
enum Fast {
    Done,
    /// Done but for the capped thread's return to its ready set.
    Rejoin(Slot),
    /// Nothing: the thread is capped, and this was the uncapped path.
    Capped,
    /// Nothing: not the usual charge.
    NotUsual,
}

impl Lottery {
    /// The end of a run in a block: the thread goes to sleep with its lag
    /// and its compensation. (It was running, so in no ready set.) Out of
    /// line: a block re-values the thread's tickets, and the usual charge
    /// (a preemption) should not carry its code.
    #[inline(never)]
    fn block_after_run(&mut self, slot: Slot, global: i128, comp: (u64, u64)) {
        self.rework_group(slot, |l| {
            if let Some(t) = l.at_mut(slot) {
                t.state = ThreadState::Sleeping;
                t.vtime = t.vtime.saturating_sub(global);
                t.comp = comp;
            }
        });
    }

    /// The end of a run in an exit. Out of line: the record that
    /// `remove_thread` hands back (aligned to a cache line) would otherwise
    /// be given room in every charge's frame, which every charge then
    /// aligns.
    #[inline(never)]
    fn exit_after_run(&mut self, id: ThreadId) {
        self.remove_thread(id);
    }

    /// The usual charge: a full quantum ending in a preemption, of a
    /// thread owed no quantum and without compensation, whose quantum's
    /// virtual time and the ledger's step are remembered. Done if it is
    /// that (but for a capped thread's return to its ready set, left to the
    /// caller); nothing changed if not (`NotUsual`:
    /// [`Lottery::charge_general`] does it, and answers the refusals). What
    /// it does is what the general path does then; it calls nothing, so
    /// it keeps to the registers a call may clobber: no saves and restores.
    ///
    /// Made twice: for uncapped threads (`CAPPED` false: the usual with
    /// more threads than cores), which then need neither the slot nor the
    /// id once checked, and for capped ones, out of line, which return to
    /// their ready set; with one path for both, the charge held so many
    /// figures at once that it saved registers.
    #[inline(always)]
    fn charge_full_quantum<const CAPPED: bool>(
        &mut self,
        id: ThreadId,
        core: CoreId,
        ran_ns: u64,
    ) -> Fast {
        if ran_ns != self.quantum_ns {
            return Fast::NotUsual;
        }
        let Some(on) = self.running.get_mut(core) else {
            return Fast::NotUsual;
        };
        let Some(slot) = *on else {
            return Fast::NotUsual;
        };
        let Some(t) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return Fast::NotUsual;
        };
        // First, so that a capped thread leaves the uncapped path early.
        if t.capped != CAPPED {
            return if t.capped {
                Fast::Capped
            } else {
                Fast::NotUsual
            };
        }
        if t.id != id || t.credit > 0 || t.comp != (1, 1) {
            return Fast::NotUsual;
        }
        // The memo's key (see `Thread::quantum_vt_key_now`; 0 is no memo).
        let key = if CAPPED { self.epoch } else { t.weight };
        if t.quantum_vt_key == 0 || t.quantum_vt_key != key {
            return Fast::NotUsual;
        }
        let Some(step) = self.ledger.remembered_step(ran_ns) else {
            return Fast::NotUsual;
        };
        // The virtual times as the general path adds them, where they do
        // not saturate (the general path's cold case).
        let Some(now) = self.ledger.now().checked_add(step) else {
            return Fast::NotUsual;
        };
        let Some(vtime) = t.vtime.checked_add(t.quantum_vt) else {
            return Fast::NotUsual;
        };
        *on = None;
        self.ledger.set_now(now);
        t.vtime = vtime;
        // Stored last, so that fewer figures are held at once (the service
        // saturates in both paths alike).
        t.service_ns = t.service_ns.saturating_add(ran_ns);
        t.state = ThreadState::Runnable;
        if CAPPED {
            return Fast::Rejoin(slot);
        }
        Fast::Done
    }

    /// The usual charge of a capped thread (with one thread per core,
    /// every charge): [`Lottery::charge_full_quantum`]'s capped path, then
    /// the thread back in its ready set. Out of line (a `Vec` may grow).
    #[inline(never)]
    fn charge_capped(&mut self, id: ThreadId, core: CoreId, ran_ns: u64) -> Result<(), SchedError> {
        match self.charge_full_quantum::<true>(id, core, ran_ns) {
            Fast::Rejoin(slot) => {
                self.ready_insert(id, slot);
                Ok(())
            }
            _ => self.charge_general(id, core, ran_ns, RunEnd::Preempted),
        }
    }

    /// [`Policy::charge`], every case: out of line, for what
    /// [`Lottery::charge_full_quantum`] leaves.
    #[inline(never)]
    fn charge_general(
        &mut self,
        id: ThreadId,
        core: CoreId,
        ran_ns: u64,
        end: RunEnd,
    ) -> Result<(), SchedError> {
        // The thread running on `core` is found through the core, not by id.
        let slot = match self.running_on(core) {
            Some(s) if self.at(s).is_some_and(|t| t.id == id) => s,
            _ if self.threads.contains_key(&id) => return Err(SchedError::NotRunning),
            _ => return Err(SchedError::UnknownThread),
        };
        let comp = compensation(self.quantum_ns, ran_ns, end);
        // One lookup of the record serves the whole charge; the fields are
        // reached directly (not through `&mut self` methods) so that it
        // stays borrowed alongside the ledger and the cores.
        let (epoch, quantum_ns) = (self.epoch, self.quantum_ns);
        let Some(t) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return Err(SchedError::UnknownThread);
        };
        let vt = t.vt(&self.ledger, epoch, quantum_ns, ran_ns);
        self.ledger.advance(ran_ns);
        if let Some(r) = self.running.get_mut(core) {
            *r = None;
        }
        let global = self.ledger.now();
        t.service_ns = t.service_ns.saturating_add(ran_ns);
        // Saturating, as every virtual time here (`add_sat`: the overflow,
        // never in practice, is a cold branch, cheaper than
        // `saturating_add`'s selects on 128 bits).
        t.vtime = sched_api::add_sat(t.vtime, vt);
        match end {
            RunEnd::Preempted | RunEnd::Yielded => {
                t.state = ThreadState::Runnable;
                let (capped, credit) = (t.capped, t.credit);
                let comp_changed = t.comp != comp;
                t.comp = comp;
                self.enlist_as(id, slot, capped, credit);
                if comp_changed {
                    self.revalue_target(slot);
                }
            }
            RunEnd::Blocked => self.block_after_run(slot, global, comp),
            RunEnd::Exited => self.exit_after_run(id),
        }
        Ok(())
    }

    /// [`sched_api::Policy::charge`].
    #[inline(always)]
    pub(crate) fn charge_run(
        &mut self,
        id: ThreadId,
        core: CoreId,
        ran_ns: u64,
        end: RunEnd,
    ) -> Result<(), SchedError> {
        if end == RunEnd::Preempted {
            match self.charge_full_quantum::<false>(id, core, ran_ns) {
                Fast::Done => return Ok(()),
                Fast::Capped => return self.charge_capped(id, core, ran_ns),
                Fast::Rejoin(_) | Fast::NotUsual => {}
            }
        }
        self.charge_general(id, core, ran_ns, end)
    }
}
