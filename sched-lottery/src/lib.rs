//! Lottery scheduling (Waldspurger & Weihl, OSDI 1994). Each runnable
//! thread holds tickets; every decision draws one ticket uniformly, so a
//! thread's share follows its tickets in expectation with binomial error.
//!
//! - Draws are O(log n) over a Fenwick tree of ticket values.
//! - Currencies: an application funds a group of threads with base tickets;
//!   tickets issued inside the currency divide that funding, so inflation
//!   inside a currency stays inside it. Only active (not sleeping) threads
//!   count toward a currency's issue, as in the paper.
//! - Compensation tickets: a thread that used a fraction f of its quantum
//!   has its value multiplied by 1/f until it next wins.
//! - Transfers: a thread blocked on another lends it its value until it
//!   takes the loan back.
//! - The generator is seedable (xoshiro256**), so runs repeat exactly.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod fenwick;
mod rng;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use fenwick::Fenwick;
use rng::Rng;
use sched_api::{
    vtime_for, CoreId, Policy, PolicyKind, RunEnd, SchedError, Snapshot, ThreadId, ThreadRecord,
    ThreadState,
};

/// How far ahead of its share (in its own quanta) a thread may get on P cores.
const LAG_QUANTA: u128 = 2;
/// Redraws allowed per decision.
const MAX_REDRAWS: usize = 16;

/// Fixed-point scale of ticket values in the tree.
const VALUE_SCALE: f64 = 1024.0;

/// A currency's id.
pub type CurrencyId = u32;

#[derive(Clone, Copy, Debug)]
struct Currency {
    /// Base tickets backing the currency.
    funding: u32,
    /// Tickets issued to its active (not sleeping) threads; recounted on
    /// membership changes only, so draws and charges stay O(log n).
    issued: u64,
}

#[derive(Clone, Copy, Debug)]
struct Thread {
    tickets: u32,
    currency: Option<CurrencyId>,
    state: ThreadState,
    service_ns: u64,
    vtime: u128,
    slot: usize,
    /// Compensation multiplier (1.0 unless it used a partial quantum).
    compensation: f64,
    /// Value lent to this thread by blocked threads (base units).
    borrowed: f64,
    /// Whom this thread lends its value to.
    lent_to: Option<ThreadId>,
}

/// A lottery scheduler.
pub struct Lottery {
    quantum_ns: u64,
    cores: usize,
    rng: Rng,
    threads: BTreeMap<ThreadId, Thread>,
    tree: Fenwick,
    slot_owner: Vec<Option<ThreadId>>,
    free_slots: Vec<usize>,
    currencies: BTreeMap<CurrencyId, Currency>,
    next_currency: CurrencyId,
    global_vtime: u128,
    active_weight: u64,
}

impl Lottery {
    pub fn new(quantum_ns: u64, cores: usize, seed: u64) -> Self {
        Lottery {
            quantum_ns,
            cores: cores.max(1),
            rng: Rng::new(seed),
            threads: BTreeMap::new(),
            tree: Fenwick::new(),
            slot_owner: Vec::new(),
            free_slots: Vec::new(),
            currencies: BTreeMap::new(),
            next_currency: 1,
            global_vtime: 0,
            active_weight: 0,
        }
    }

    pub fn from_snapshot(
        quantum_ns: u64,
        cores: usize,
        seed: u64,
        snapshot: Snapshot,
    ) -> Result<Self, SchedError> {
        let mut l = Lottery::new(quantum_ns, cores, seed);
        l.import(snapshot)?;
        Ok(l)
    }

    /// Creates a currency backed by `funding` base tickets.
    pub fn create_currency(&mut self, funding: u32) -> CurrencyId {
        let id = self.next_currency;
        self.next_currency += 1;
        self.currencies.insert(id, Currency { funding, issued: 0 });
        id
    }

    /// Adds a thread holding `tickets` in `currency`.
    pub fn add_in_currency(
        &mut self,
        id: ThreadId,
        tickets: u32,
        currency: CurrencyId,
    ) -> Result<(), SchedError> {
        if !self.currencies.contains_key(&currency) {
            return Err(SchedError::UnknownThread);
        }
        self.add(id, tickets)?;
        if let Some(t) = self.threads.get_mut(&id) {
            t.currency = Some(currency);
        }
        self.revalue_currency(Some(currency));
        Ok(())
    }

    /// `from` (blocked on `to`) lends `to` its value until `take_back`.
    pub fn transfer(&mut self, from: ThreadId, to: ThreadId) -> Result<(), SchedError> {
        if from == to || !self.threads.contains_key(&to) {
            return Err(SchedError::UnknownThread);
        }
        let value = self.base_value(self.threads.get(&from).ok_or(SchedError::UnknownThread)?);
        self.take_back(from)?;
        if let Some(f) = self.threads.get_mut(&from) {
            f.lent_to = Some(to);
        }
        if let Some(t) = self.threads.get_mut(&to) {
            t.borrowed += value;
        }
        self.revalue(to);
        Ok(())
    }

    /// `from` takes back whatever it lent.
    pub fn take_back(&mut self, from: ThreadId) -> Result<(), SchedError> {
        let f = self.threads.get(&from).ok_or(SchedError::UnknownThread)?;
        let Some(to) = f.lent_to else { return Ok(()) };
        let value = self.base_value(f);
        if let Some(f) = self.threads.get_mut(&from) {
            f.lent_to = None;
        }
        if let Some(t) = self.threads.get_mut(&to) {
            t.borrowed = (t.borrowed - value).max(0.0);
        }
        self.revalue(to);
        Ok(())
    }

    /// A thread's own value in base tickets (currency converted).
    fn base_value(&self, t: &Thread) -> f64 {
        match t
            .currency
            .and_then(|c| self.currencies.get(&c).map(|cur| (c, cur)))
        {
            None => f64::from(t.tickets),
            Some((_, cur)) => {
                f64::from(cur.funding) * f64::from(t.tickets) / cur.issued.max(1) as f64
            }
        }
    }

    /// Updates `id`'s entry in the draw tree.
    fn revalue(&mut self, id: ThreadId) {
        let Some(t) = self.threads.get(&id).copied() else {
            return;
        };
        let value = if t.state == ThreadState::Runnable && t.lent_to.is_none() {
            ((self.base_value(&t) * t.compensation + t.borrowed) * VALUE_SCALE).max(1.0) as u64
        } else {
            0
        };
        self.tree.set(t.slot, value);
    }

    /// Recounts `currency`'s issue and revalues its threads.
    fn revalue_currency(&mut self, currency: Option<CurrencyId>) {
        let Some(c) = currency else { return };
        let issued = self
            .threads
            .values()
            .filter(|o| o.currency == Some(c) && o.state != ThreadState::Sleeping)
            .map(|o| u64::from(o.tickets))
            .sum();
        if let Some(cur) = self.currencies.get_mut(&c) {
            cur.issued = issued;
        }
        let ids: Vec<ThreadId> = self
            .threads
            .iter()
            .filter(|(_, t)| t.currency == currency)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            self.revalue(id);
        }
    }

    fn set_state(&mut self, id: ThreadId, state: ThreadState) {
        let currency = self.threads.get(&id).and_then(|t| t.currency);
        let was = self.threads.get(&id).map(|t| t.state);
        if let Some(t) = self.threads.get_mut(&id) {
            t.state = state;
        }
        self.revalue(id);
        let sleeping_changed =
            was.is_some_and(|w| (w == ThreadState::Sleeping) != (state == ThreadState::Sleeping));
        if sleeping_changed {
            self.revalue_currency(currency);
            self.recount();
        }
    }

    fn recount(&mut self) {
        self.active_weight = self
            .threads
            .values()
            .filter(|t| t.state != ThreadState::Sleeping)
            .map(|t| u64::from(t.tickets))
            .sum();
    }
}

impl Policy for Lottery {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Lottery
    }

    fn add(&mut self, id: ThreadId, weight: u32) -> Result<(), SchedError> {
        if weight == 0 {
            return Err(SchedError::ZeroWeight);
        }
        if self.threads.contains_key(&id) {
            return Err(SchedError::DuplicateThread);
        }
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.slot_owner.push(None);
            self.tree.push()
        });
        self.slot_owner[slot] = Some(id);
        let t = Thread {
            tickets: weight,
            currency: None,
            state: ThreadState::Runnable,
            service_ns: 0,
            vtime: self.global_vtime,
            slot,
            compensation: 1.0,
            borrowed: 0.0,
            lent_to: None,
        };
        self.threads.insert(id, t);
        self.revalue(id);
        self.recount();
        Ok(())
    }

    fn remove(&mut self, id: ThreadId) -> Result<ThreadRecord, SchedError> {
        let record = self.record(id).ok_or(SchedError::UnknownThread)?;
        self.take_back(id)?;
        let t = self.threads.remove(&id).ok_or(SchedError::UnknownThread)?;
        self.tree.set(t.slot, 0);
        self.slot_owner[t.slot] = None;
        self.free_slots.push(t.slot);
        self.revalue_currency(t.currency);
        self.recount();
        Ok(record)
    }

    fn set_weight(&mut self, id: ThreadId, weight: u32) -> Result<(), SchedError> {
        if weight == 0 {
            return Err(SchedError::ZeroWeight);
        }
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        t.tickets = weight;
        let currency = t.currency;
        self.revalue(id);
        self.revalue_currency(currency);
        self.recount();
        Ok(())
    }

    fn sleep(&mut self, id: ThreadId) -> Result<(), SchedError> {
        match self
            .threads
            .get(&id)
            .ok_or(SchedError::UnknownThread)?
            .state
        {
            ThreadState::Running(_) => Err(SchedError::IsRunning),
            ThreadState::Sleeping => Ok(()),
            ThreadState::Runnable => {
                self.set_state(id, ThreadState::Sleeping);
                Ok(())
            }
        }
    }

    fn wake(&mut self, id: ThreadId) -> Result<(), SchedError> {
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        if t.state != ThreadState::Sleeping {
            return Err(SchedError::NotSleeping);
        }
        // Like stride's remaining pass: it does not catch up on time asleep.
        t.vtime = t.vtime.max(self.global_vtime);
        self.set_state(id, ThreadState::Runnable);
        Ok(())
    }

    fn pick(&mut self, core: CoreId) -> Option<ThreadId> {
        let total = self.tree.total();
        if total == 0 {
            return None;
        }
        // On P cores each core draws among the threads not already running,
        // which on its own drifts toward equal shares (a heavy thread is
        // more often the one already running). A draw whose thread is more
        // than LAG_QUANTA of its own quanta ahead of the system's virtual
        // time is drawn again (a few times at most), which keeps every
        // thread within a bounded lag of its share and leaves single-core
        // behaviour a plain lottery.
        let mut id = None;
        for _ in 0..MAX_REDRAWS {
            let slot = self.tree.find(self.rng.below(total));
            let Some(candidate) = self.slot_owner.get(slot).copied().flatten() else {
                continue;
            };
            id = Some(candidate);
            let t = &self.threads[&candidate];
            if self.cores == 1
                || t.vtime <= self.global_vtime + LAG_QUANTA * vtime_for(self.quantum_ns, t.tickets)
            {
                break;
            }
        }
        let id = id?;
        if let Some(t) = self.threads.get_mut(&id) {
            // A win ends any compensation.
            t.compensation = 1.0;
        }
        self.set_state(id, ThreadState::Running(core));
        Some(id)
    }

    fn charge(
        &mut self,
        id: ThreadId,
        core: CoreId,
        ran_ns: u64,
        end: RunEnd,
    ) -> Result<(), SchedError> {
        let q = self.quantum_ns.max(1);
        let active = self.active_weight.max(1);
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        if t.state != ThreadState::Running(core) {
            return Err(SchedError::NotRunning);
        }
        t.service_ns += ran_ns;
        t.vtime += vtime_for(ran_ns, t.tickets);
        self.global_vtime += vtime_for(ran_ns, u32::try_from(active).unwrap_or(u32::MAX));
        if ran_ns > 0 && ran_ns < q && end != RunEnd::Preempted {
            // Used a fraction f of its quantum: 1/f compensation until it wins.
            t.compensation = q as f64 / ran_ns as f64;
        }
        let next = if end == RunEnd::Blocked {
            ThreadState::Sleeping
        } else {
            ThreadState::Runnable
        };
        self.set_state(id, next);
        Ok(())
    }

    fn set_cores(&mut self, cores: usize) {
        self.cores = cores.max(1);
    }

    fn quantum_ns(&self) -> u64 {
        self.quantum_ns
    }

    fn export(&self) -> Snapshot {
        Snapshot {
            threads: self
                .threads
                .keys()
                .filter_map(|&id| self.record(id))
                .collect(),
            global_vtime: self.global_vtime,
        }
    }

    fn import(&mut self, snapshot: Snapshot) -> Result<(), SchedError> {
        snapshot.validate()?;
        let mut fresh = Lottery::new(self.quantum_ns, self.cores, self.rng.next_u64());
        fresh.global_vtime = snapshot.global_vtime;
        for r in &snapshot.threads {
            fresh.add(r.id, r.weight)?;
            let vtime =
                sched_api::bounded_vtime(r.vtime, snapshot.global_vtime, self.quantum_ns, r.weight);
            if let Some(t) = fresh.threads.get_mut(&r.id) {
                t.service_ns = r.service_ns;
                t.vtime = vtime;
            }
            fresh.set_state(r.id, r.state);
        }
        *self = fresh;
        Ok(())
    }

    fn record(&self, id: ThreadId) -> Option<ThreadRecord> {
        let t = self.threads.get(&id)?;
        Some(ThreadRecord {
            id,
            weight: t.tickets,
            state: t.state,
            service_ns: t.service_ns,
            vtime: t.vtime,
        })
    }

    fn len(&self) -> usize {
        self.threads.len()
    }
}

#[cfg(test)]
mod tests;
