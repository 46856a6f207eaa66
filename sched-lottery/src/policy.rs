//! The [`Policy`] interface: decisions, accounting, membership, swaps.

use alloc::vec::Vec;

use sched_api::{
    check_core, check_cores, scale_signed, CoreId, Policy, PolicyKind, RunEnd, SchedError,
    Snapshot, ThreadId, ThreadRecord, ThreadState,
};

use crate::thread::Thread;
use crate::{CurrencyId, Lottery, BASE, KIND};

impl Lottery {
    /// [`Policy::try_pick`], inlined into it and into [`Policy::pick`].
    #[inline(always)]
    fn pick_on(&mut self, core: CoreId) -> Result<Option<ThreadId>, SchedError> {
        check_core(core)?;
        if self.running_on(core).is_some() {
            return Err(SchedError::CoreBusy);
        }
        Ok(self.pick_free(core))
    }

    /// The record of thread `t`: its weight is what its tickets are worth
    /// in the base currency ([`Lottery::base_tickets`]), the unit of every
    /// other policy's weights and of its virtual time's lag.
    fn record_of(&self, t: &Thread) -> ThreadRecord {
        let (id, state, service) = (t.id, t.state, t.service_ns);
        let weight = self.base_tickets(t.tickets, t.currency, t.own);
        ThreadRecord::keeping_lag(id, weight, state, service, t.vtime, self.ledger.now())
    }
}

impl Policy for Lottery {
    fn lend(&mut self, from: ThreadId, to: ThreadId) -> Result<(), SchedError> {
        self.transfer(from, to)
    }

    fn take_back(&mut self, from: ThreadId) -> Result<(), SchedError> {
        Lottery::take_back(self, from)
    }

    fn create_currency(
        &mut self,
        parent: CurrencyId,
        funding: u32,
    ) -> Result<CurrencyId, SchedError> {
        Lottery::create_currency(self, parent, funding)
    }

    fn fund_currency(&mut self, currency: CurrencyId, funding: u32) -> Result<(), SchedError> {
        self.fund(currency, funding)
    }

    fn move_to_currency(
        &mut self,
        id: ThreadId,
        currency: CurrencyId,
        tickets: u32,
    ) -> Result<(), SchedError> {
        self.redenominate(id, currency, tickets)
    }

    fn kind(&self) -> PolicyKind {
        KIND
    }

    fn add(&mut self, id: ThreadId, weight: u32) -> Result<(), SchedError> {
        self.add_in_currency(id, weight, BASE)
    }

    fn remove(&mut self, id: ThreadId) -> Result<ThreadRecord, SchedError> {
        let record = self.record(id).ok_or(SchedError::UnknownThread)?;
        self.remove_thread(id);
        Ok(record)
    }

    fn try_pick(&mut self, core: CoreId) -> Result<Option<ThreadId>, SchedError> {
        self.pick_on(core)
    }

    /// [`Policy::try_pick`]'s work here too: no `Result` made and taken
    /// apart, no call to `try_pick`.
    fn pick(&mut self, core: CoreId) -> Option<ThreadId> {
        match self.running.get(core) {
            Some(Some(_)) => None, // busy
            // A core with an entry is valid (see `Lottery::set_running`):
            // only one without is checked.
            Some(None) => self.pick_free(core),
            None if check_core(core).is_err() => None,
            None => self.pick_free(core),
        }
    }

    fn charge(
        &mut self,
        id: ThreadId,
        core: CoreId,
        ran_ns: u64,
        end: RunEnd,
    ) -> Result<(), SchedError> {
        self.charge_run(id, core, ran_ns, end)
    }

    fn sleep(&mut self, id: ThreadId) -> Result<(), SchedError> {
        let global = self.ledger.now();
        let slot = self.slot_of(id).ok_or(SchedError::UnknownThread)?;
        match self.at(slot).map(|t| t.state) {
            Some(ThreadState::Running(_)) => return Err(SchedError::AlreadyRunning),
            Some(ThreadState::Sleeping) => return Err(SchedError::AlreadySleeping),
            Some(ThreadState::Runnable) => {}
            None => return Err(SchedError::UnknownThread),
        }
        self.delist(slot);
        self.rework_group(slot, |l| {
            if let Some(t) = l.at_mut(slot) {
                t.state = ThreadState::Sleeping;
                t.vtime = t.vtime.saturating_sub(global);
            }
        });
        Ok(())
    }

    fn wake(&mut self, id: ThreadId) -> Result<(), SchedError> {
        let global = self.ledger.now();
        let slot = self.slot_of(id).ok_or(SchedError::UnknownThread)?;
        if self
            .at(slot)
            .is_none_or(|t| t.state != ThreadState::Sleeping)
        {
            return Err(SchedError::NotSleeping);
        }
        self.rework_group(slot, |l| {
            if let Some(t) = l.at_mut(slot) {
                t.state = ThreadState::Runnable;
                t.vtime = global.saturating_add(t.vtime);
            }
            // Unblocked: the loan returns.
            l.unlink(slot);
            l.enlist(slot);
        });
        Ok(())
    }

    fn set_weight(&mut self, id: ThreadId, weight: u32) -> Result<(), SchedError> {
        if weight == 0 {
            return Err(SchedError::ZeroWeight);
        }
        let global = self.ledger.now();
        let slot = self.slot_of(id).ok_or(SchedError::UnknownThread)?;
        let set_tickets = |l: &mut Lottery| {
            if let Some(t) = l.at_mut(slot) {
                t.tickets = weight;
            }
        };
        let Some(t) = self.at_mut(slot) else {
            return Err(SchedError::UnknownThread);
        };
        if t.state == ThreadState::Sleeping {
            // A sleeper has no effective weight: its tickets it is.
            t.vtime = scale_signed(t.vtime, t.tickets.into(), weight.into());
            self.rework_one(slot, set_tickets);
            return Ok(());
        }
        // The remaining lag is rescaled by the *effective* weights, before
        // and after (currency values and the cap on P cores applied): a
        // capped thread whose tickets change but stays capped keeps the
        // service it is owed (by face value it would lose or gain it).
        let effective = |l: &Lottery| l.at(slot).map(|t| l.ledger.effective(t.weight.max(1)));
        let before = effective(self);
        self.rework_one(slot, set_tickets);
        let after = effective(self);
        if let (Some(before), Some(after), Some(t)) = (before, after, self.at_mut(slot)) {
            let lag = scale_signed(
                t.vtime.saturating_sub(global),
                before.num.saturating_mul(after.den),
                before.den.saturating_mul(after.num).max(1),
            );
            t.vtime = global.saturating_add(lag);
        }
        Ok(())
    }

    fn set_cores(&mut self, cores: usize) -> Result<(), SchedError> {
        self.ledger.set_cores(check_cores(cores)?);
        self.pending.ledger_changed = true;
        self.settle();
        Ok(())
    }

    fn cores(&self) -> usize {
        self.ledger.cores()
    }

    fn quantum_ns(&self) -> u64 {
        self.quantum_ns
    }

    fn export(&self) -> Snapshot {
        // Runnable threads most owed first, then running, then sleeping;
        // each record made from the thread at hand (not looked up by id).
        let mut runnable: Vec<&Thread> = Vec::with_capacity(self.threads.len());
        runnable.extend(
            self.slots
                .iter()
                .flatten()
                .filter(|t| t.state == ThreadState::Runnable),
        );
        runnable.sort_unstable_by_key(|t| (t.vtime, t.id));
        let mut sleeping: Vec<&Thread> = self
            .slots
            .iter()
            .flatten()
            .filter(|t| t.state == ThreadState::Sleeping)
            .collect();
        sleeping.sort_unstable_by_key(|t| t.id);
        let running = self.running.iter().filter_map(|&s| self.at(s?));
        Snapshot::with_records(
            self.ledger.now(),
            self.threads.len(),
            runnable
                .into_iter()
                .chain(running)
                .chain(sleeping)
                .map(|t| self.record_of(t)),
        )
    }

    fn import(&mut self, snapshot: Snapshot) -> Result<(), SchedError> {
        snapshot.validate()?;
        let mut fresh = Lottery::new(self.quantum_ns, self.cores(), 0);
        fresh.rng = self.rng.clone();
        let global = snapshot.global_vtime;
        fresh.ledger.set_now(global);
        fresh.reserve(snapshot.threads.len());
        if let Some(c) = fresh.currencies.get_mut(&BASE) {
            // Every thread, listed at once (the fresh base currency lists
            // none): built from the sorted ids, not node by node.
            c.threads = snapshot.threads.iter().map(|r| r.id).collect();
        }
        for r in &snapshot.threads {
            let vtime = match r.state {
                ThreadState::Sleeping => snapshot.lag(r),
                _ => r.vtime,
            };
            fresh.place_thread(r.id, r.weight, BASE, r.state, r.service_ns, vtime);
        }
        // Once for every thread: the derived values are exact, so they are
        // those that settling after each one gives.
        fresh.preload_weights();
        fresh.settle();
        fresh.credit_debts();
        *self = fresh;
        Ok(())
    }

    fn record(&self, id: ThreadId) -> Option<ThreadRecord> {
        Some(self.record_of(self.get(id)?))
    }

    fn len(&self) -> usize {
        self.threads.len()
    }
}
