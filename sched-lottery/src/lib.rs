//! Lottery scheduling (Waldspurger & Weihl, OSDI 1994), on P cores.
//!
//! Each thread holds tickets; every decision draws one ticket uniformly,
//! so a thread's share follows its tickets in expectation, with binomial
//! error (relative error shrinking as 1/sqrt(n) over n draws).
//!
//! - **Draws** are O(log n) over a Fenwick tree holding every active
//!   ticket's value in base units (a fixed point of `FX` per base ticket).
//! - **Currencies**: a currency is funded by tickets in a parent currency
//!   (the base currency [`BASE`] at the top). A ticket's base value is its
//!   share of its currency's active issue times the currency's value, so
//!   issuing more tickets inside a currency (inflation) only dilutes that
//!   currency: adding a thread to A never changes B's total share. Only
//!   active tickets (of threads not sleeping) count, as in the paper; a
//!   currency with no active tickets is inactive in its parent.
//! - **Compensation tickets**: a thread that used only a fraction f of its
//!   quantum (yielding or blocking early) has its value multiplied by 1/f
//!   until it next wins (capped at `MAX_COMPENSATION`).
//! - **Ticket transfers**: a sleeping thread (blocked on another) lends its
//!   tickets with [`Lottery::transfer`]; a draw that lands on them picks
//!   the borrower (following chains of loans). The loan returns at
//!   [`Lottery::take_back`] or when the lender wakes.
//! - **P cores**: the draw is over the tickets of *all* active threads,
//!   running ones included. A ticket of a thread already running on another
//!   core cannot be used now, so that thread gets a *credit* (one quantum
//!   it won) and the draw is repeated; a runnable thread with credit runs
//!   before any draw. Every quantum is thus backed by one fair draw, and
//!   shares follow tickets on P cores (drawing only among idle threads
//!   would drift toward equal shares, since heavy threads are more often
//!   the running ones). Weights are first made feasible (see
//!   [`sched_api::feasible_weights`]): a thread entitled to more than one
//!   core is capped at exactly one, takes no part in draws and runs
//!   whenever a core is free — unless its virtual time is more than a
//!   quantum ahead of the system's (it got more than one core's worth of
//!   the application's time, as happens when the application holds only a
//!   part of each of its cores); then it waits, running only rather than
//!   leave a core idle. With capped threads out, the running threads
//!   hold less than (P-1)/P of the drawn tickets, so a decision takes fewer
//!   than P draws in expectation; after `8P + 8` draws it falls back to one
//!   draw among the idle threads (and debits the winner a credit).
//! - **Cost**: `pick` and `charge` are O(log n) (plus one O(log n) step per
//!   redraw); a change of membership (add, remove, sleep, wake, block,
//!   weight, currency, transfer, cores) marks the derived values stale and
//!   the next decision recomputes them in O(n log n), since currency values
//!   and the cap depend on every active thread.
//! - The generator is seedable (xoshiro256**), so runs repeat exactly.
//!
//! Fairness across swaps: the lag against the weighted, feasible share is
//! kept as virtual time ([`sched_api::Ledger`]). A thread imported with a
//! debt gets it as credits (whole quanta owed), so it is paid back here
//! too. Currencies and loans are lottery's own: a snapshot carries each
//! thread's face tickets as its weight, and importing places every thread
//! in the base currency.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod fenwick;
mod rng;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::cmp::Reverse;

use fenwick::Fenwick;
use rng::Rng;
use sched_api::{
    check_core, check_cores, mul_div, scale_signed, CoreId, Ledger, Policy, PolicyKind, RunEnd,
    SchedError, Snapshot, ThreadId, ThreadRecord, ThreadState, VT_SCALE,
};

/// A currency's id.
pub type CurrencyId = u32;

/// The base currency: one ticket is one unit of base value.
pub const BASE: CurrencyId = 0;

/// Fixed point of base values: units per base ticket.
const FX: u128 = 1 << 20;
/// Most quanta a thread can be owed as credit.
const MAX_CREDIT: i32 = 1 << 16;
/// Largest compensation factor (a thread using 1/65536 of its quantum).
pub const MAX_COMPENSATION: u64 = 1 << 16;

#[derive(Clone, Debug)]
struct Currency {
    parent: CurrencyId,
    /// Tickets of the parent currency backing this one.
    funding: u32,
    threads: BTreeSet<ThreadId>,
    children: BTreeSet<CurrencyId>,
    /// Derived: active tickets issued (threads' and child currencies').
    issue: u128,
    /// Derived: total base value (FX units) while active.
    value: u128,
}

impl Currency {
    fn new(parent: CurrencyId, funding: u32) -> Currency {
        Currency {
            parent,
            funding,
            threads: BTreeSet::new(),
            children: BTreeSet::new(),
            issue: 0,
            value: 0,
        }
    }
}

#[derive(Clone, Debug)]
struct Thread {
    tickets: u32,
    currency: CurrencyId,
    state: ThreadState,
    service_ns: u64,
    /// Virtual time while active; the lag it left with while sleeping.
    vtime: i128,
    slot: usize,
    /// Compensation factor `num / den` (1/1 when none).
    comp: (u64, u64),
    /// Quanta won but not yet run (negative: run but not yet won).
    credit: i32,
    lent_to: Option<ThreadId>,
    lenders: BTreeSet<ThreadId>,
    /// Derived: base value of its own tickets (0 when inactive).
    own: u128,
    /// Derived: base value of all tickets that resolve to it.
    demand: u128,
    /// Derived: entitled to more than one core, so capped at one.
    capped: bool,
}

/// A lottery scheduler.
#[derive(Clone, Debug)]
pub struct Lottery {
    quantum_ns: u64,
    rng: Rng,
    threads: BTreeMap<ThreadId, Thread>,
    currencies: BTreeMap<CurrencyId, Currency>,
    next_currency: CurrencyId,
    tree: Fenwick,
    slot_owner: Vec<Option<ThreadId>>,
    free_slots: Vec<usize>,
    /// Active demands (feasible on P cores) and the global virtual time.
    ledger: Ledger,
    running: BTreeMap<CoreId, ThreadId>,
    /// Capped threads that are runnable and not running.
    capped_ready: BTreeSet<ThreadId>,
    /// Uncapped runnable threads with credit, most credit first.
    owed: BTreeSet<(Reverse<i32>, ThreadId)>,
    /// Derived values are stale.
    dirty: bool,
}

impl Lottery {
    /// A lottery scheduler whose draws follow `seed`. Never fails: a quantum
    /// of 0 is taken as 1 ns and a core count out of range as the nearest
    /// valid one; use [`Lottery::try_new`] to have them refused.
    pub fn new(quantum_ns: u64, cores: usize, seed: u64) -> Self {
        let mut currencies = BTreeMap::new();
        currencies.insert(BASE, Currency::new(BASE, 1));
        Lottery {
            quantum_ns: quantum_ns.max(1),
            rng: Rng::new(seed),
            threads: BTreeMap::new(),
            currencies,
            next_currency: BASE + 1,
            tree: Fenwick::default(),
            slot_owner: Vec::new(),
            free_slots: Vec::new(),
            ledger: Ledger::new(cores.clamp(1, sched_api::MAX_CORES), FX),
            running: BTreeMap::new(),
            capped_ready: BTreeSet::new(),
            owed: BTreeSet::new(),
            dirty: false,
        }
    }

    /// A lottery scheduler; `BadQuantum`/`BadCores` for a quantum of 0 or a
    /// core count out of range.
    pub fn try_new(quantum_ns: u64, cores: usize, seed: u64) -> Result<Self, SchedError> {
        if quantum_ns == 0 {
            return Err(SchedError::BadQuantum);
        }
        Ok(Lottery::new(quantum_ns, check_cores(cores)?, seed))
    }

    /// A lottery scheduler holding `snapshot`'s threads.
    pub fn from_snapshot(
        quantum_ns: u64,
        cores: usize,
        seed: u64,
        snapshot: Snapshot,
    ) -> Result<Self, SchedError> {
        let mut l = Lottery::try_new(quantum_ns, cores, seed)?;
        l.import(snapshot)?;
        Ok(l)
    }

    // ---- Currencies and transfers ----------------------------------------

    /// Creates a currency funded by `funding` tickets of `parent`.
    pub fn create_currency(
        &mut self,
        parent: CurrencyId,
        funding: u32,
    ) -> Result<CurrencyId, SchedError> {
        if funding == 0 {
            return Err(SchedError::ZeroWeight);
        }
        let id = self.next_currency;
        if self.currencies.contains_key(&id) {
            return Err(SchedError::CurrencyInUse); // ids exhausted
        }
        self.currencies
            .get_mut(&parent)
            .ok_or(SchedError::UnknownCurrency)?
            .children
            .insert(id);
        self.currencies.insert(id, Currency::new(parent, funding));
        self.next_currency = id.saturating_add(1);
        self.dirty = true;
        Ok(id)
    }

    /// Changes how many parent tickets back `currency`.
    pub fn fund(&mut self, currency: CurrencyId, funding: u32) -> Result<(), SchedError> {
        if funding == 0 {
            return Err(SchedError::ZeroWeight);
        }
        match self.currencies.get_mut(&currency) {
            Some(c) if currency != BASE => c.funding = funding,
            _ => return Err(SchedError::UnknownCurrency),
        }
        self.dirty = true;
        Ok(())
    }

    /// Removes a currency that funds no thread and no other currency.
    pub fn destroy_currency(&mut self, currency: CurrencyId) -> Result<(), SchedError> {
        let c = match self.currencies.get(&currency) {
            Some(c) if currency != BASE => c,
            _ => return Err(SchedError::UnknownCurrency),
        };
        if !c.threads.is_empty() || !c.children.is_empty() {
            return Err(SchedError::CurrencyInUse);
        }
        let parent = c.parent;
        self.currencies.remove(&currency);
        if let Some(p) = self.currencies.get_mut(&parent) {
            p.children.remove(&currency);
        }
        self.dirty = true;
        Ok(())
    }

    /// Adds a runnable thread holding `tickets` of `currency`.
    pub fn add_in_currency(
        &mut self,
        id: ThreadId,
        tickets: u32,
        currency: CurrencyId,
    ) -> Result<(), SchedError> {
        if tickets == 0 {
            return Err(SchedError::ZeroWeight);
        }
        if self.threads.contains_key(&id) {
            return Err(SchedError::DuplicateThread);
        }
        self.currencies
            .get_mut(&currency)
            .ok_or(SchedError::UnknownCurrency)?
            .threads
            .insert(id);
        let vtime = self.ledger.now();
        self.insert_thread(id, tickets, currency, ThreadState::Runnable, 0, vtime);
        Ok(())
    }

    /// Moves a thread's tickets to `currency` (same face value).
    pub fn move_to_currency(
        &mut self,
        id: ThreadId,
        currency: CurrencyId,
    ) -> Result<(), SchedError> {
        if !self.currencies.contains_key(&currency) {
            return Err(SchedError::UnknownCurrency);
        }
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        let old = core::mem::replace(&mut t.currency, currency);
        if let Some(c) = self.currencies.get_mut(&old) {
            c.threads.remove(&id);
        }
        if let Some(c) = self.currencies.get_mut(&currency) {
            c.threads.insert(id);
        }
        self.dirty = true;
        Ok(())
    }

    /// The currency a thread's tickets are in.
    pub fn currency_of(&self, id: ThreadId) -> Option<CurrencyId> {
        self.threads.get(&id).map(|t| t.currency)
    }

    /// `from`, sleeping (blocked on `to`), lends `to` its tickets until
    /// [`Lottery::take_back`] or until `from` wakes. A new loan replaces an
    /// old one.
    pub fn transfer(&mut self, from: ThreadId, to: ThreadId) -> Result<(), SchedError> {
        let f = self.threads.get(&from).ok_or(SchedError::UnknownThread)?;
        match f.state {
            ThreadState::Sleeping => {}
            ThreadState::Running(_) => return Err(SchedError::AlreadyRunning),
            ThreadState::Runnable => return Err(SchedError::NotSleeping),
        }
        if !self.threads.contains_key(&to) {
            return Err(SchedError::UnknownThread);
        }
        if to == from || self.chain(to).any(|x| x == from) {
            return Err(SchedError::TransferCycle);
        }
        self.unlink(from);
        if let Some(f) = self.threads.get_mut(&from) {
            f.lent_to = Some(to);
        }
        if let Some(t) = self.threads.get_mut(&to) {
            t.lenders.insert(from);
        }
        self.dirty = true;
        Ok(())
    }

    /// `from` takes back the tickets it lent.
    pub fn take_back(&mut self, from: ThreadId) -> Result<(), SchedError> {
        let f = self.threads.get(&from).ok_or(SchedError::UnknownThread)?;
        if f.lent_to.is_none() {
            return Err(SchedError::NotLending);
        }
        self.unlink(from);
        self.dirty = true;
        Ok(())
    }

    // ---- Internals --------------------------------------------------------

    fn insert_thread(
        &mut self,
        id: ThreadId,
        tickets: u32,
        currency: CurrencyId,
        state: ThreadState,
        service_ns: u64,
        vtime: i128,
    ) {
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.slot_owner.push(None);
            self.tree.push()
        });
        self.slot_owner[slot] = Some(id);
        self.threads.insert(
            id,
            Thread {
                tickets,
                currency,
                state,
                service_ns,
                vtime,
                slot,
                comp: (1, 1),
                credit: 0,
                lent_to: None,
                lenders: BTreeSet::new(),
                own: 0,
                demand: 0,
                capped: false,
            },
        );
        if let ThreadState::Running(core) = state {
            self.running.insert(core, id);
        }
        self.dirty = true;
    }

    fn remove_thread(&mut self, id: ThreadId) -> Option<Thread> {
        self.unlink(id);
        let t = self.threads.remove(&id)?;
        for l in &t.lenders {
            if let Some(l) = self.threads.get_mut(l) {
                l.lent_to = None;
            }
        }
        if let Some(c) = self.currencies.get_mut(&t.currency) {
            c.threads.remove(&id);
        }
        self.tree.set(t.slot, 0);
        self.slot_owner[t.slot] = None;
        self.free_slots.push(t.slot);
        if let ThreadState::Running(core) = t.state {
            self.running.remove(&core);
        }
        self.capped_ready.remove(&id);
        self.owed.remove(&(Reverse(t.credit), id));
        self.dirty = true;
        Some(t)
    }

    /// Ends `from`'s loan, if any.
    fn unlink(&mut self, from: ThreadId) {
        let Some(to) = self.threads.get_mut(&from).and_then(|f| f.lent_to.take()) else {
            return;
        };
        if let Some(t) = self.threads.get_mut(&to) {
            t.lenders.remove(&from);
        }
    }

    /// The threads `x`'s loans lead to, in order (not `x` itself).
    fn chain(&self, x: ThreadId) -> impl Iterator<Item = ThreadId> + '_ {
        let mut cur = x;
        (0..self.threads.len()).map_while(move |_| {
            cur = self.threads.get(&cur)?.lent_to?;
            Some(cur)
        })
    }

    /// Who a draw on `x`'s tickets picks: the end of its chain of loans.
    fn resolve(&self, x: ThreadId) -> ThreadId {
        self.chain(x).last().unwrap_or(x)
    }

    /// Every thread whose tickets resolve to `t` (itself included).
    fn funding_of(&self, t: ThreadId) -> Vec<ThreadId> {
        let mut out = alloc::vec![t];
        let mut i = 0;
        while let Some(&x) = out.get(i) {
            if let Some(th) = self.threads.get(&x) {
                out.extend(th.lenders.iter().copied());
            }
            i += 1;
        }
        out
    }

    fn is_active(&self, id: ThreadId) -> bool {
        self.threads
            .get(&id)
            .is_some_and(|t| t.state != ThreadState::Sleeping)
    }

    /// Draw value of slot owner `x`, whose tickets resolve to `target`.
    fn slot_value(&self, x: ThreadId, target: ThreadId) -> u128 {
        let (Some(t), Some(tt)) = (self.threads.get(&x), self.threads.get(&target)) else {
            return 0;
        };
        if tt.state == ThreadState::Sleeping || tt.capped || t.own == 0 {
            return 0;
        }
        mul_div(t.own, u128::from(tt.comp.0), u128::from(tt.comp.1)).max(1)
    }

    /// Re-enters the draw values of every slot resolving to `t`.
    fn revalue_target(&mut self, t: ThreadId) {
        for x in self.funding_of(t) {
            let v = self.slot_value(x, t);
            if let Some(slot) = self.threads.get(&x).map(|th| th.slot) {
                self.tree.set(slot, v);
            }
        }
    }

    fn set_comp(&mut self, id: ThreadId, comp: (u64, u64)) {
        let changed = match self.threads.get_mut(&id) {
            Some(t) if t.comp != comp => {
                t.comp = comp;
                true
            }
            _ => false,
        };
        if changed && !self.dirty {
            self.revalue_target(id);
        }
    }

    /// Recomputes currency values, demands, the cap, draw values and the
    /// ready sets, if anything changed since the last time. O(n log n).
    fn refresh(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let targets: Vec<(ThreadId, ThreadId)> =
            self.threads.keys().map(|&x| (x, self.resolve(x))).collect();
        // Active issue, leaves up: children have larger ids than parents.
        for c in self.currencies.values_mut() {
            c.issue = 0;
            c.value = 0;
        }
        for &(x, t) in &targets {
            if self.is_active(t) {
                let th = &self.threads[&x];
                if let Some(c) = self.currencies.get_mut(&th.currency) {
                    c.issue += u128::from(th.tickets);
                }
            }
        }
        let ids: Vec<CurrencyId> = self.currencies.keys().copied().collect();
        for &c in ids.iter().rev() {
            let cur = &self.currencies[&c];
            if c != BASE && cur.issue > 0 {
                let (parent, funding) = (cur.parent, cur.funding);
                if let Some(p) = self.currencies.get_mut(&parent) {
                    p.issue += u128::from(funding);
                }
            }
        }
        // Values, root down.
        for &c in &ids {
            let cur = &self.currencies[&c];
            if c == BASE || cur.issue == 0 {
                continue;
            }
            let p = &self.currencies[&cur.parent];
            let value = if cur.parent == BASE {
                u128::from(cur.funding) * FX
            } else {
                mul_div(u128::from(cur.funding), p.value, p.issue)
            };
            if let Some(cur) = self.currencies.get_mut(&c) {
                cur.value = value;
            }
        }
        // Own values and demands.
        for t in self.threads.values_mut() {
            t.own = 0;
            t.demand = 0;
        }
        for &(x, t) in &targets {
            if !self.is_active(t) {
                continue;
            }
            let th = &self.threads[&x];
            let c = &self.currencies[&th.currency];
            let own = if th.currency == BASE {
                u128::from(th.tickets) * FX
            } else {
                mul_div(u128::from(th.tickets), c.value, c.issue)
            }
            .max(1);
            if let Some(th) = self.threads.get_mut(&x) {
                th.own = own;
            }
            if let Some(tt) = self.threads.get_mut(&t) {
                tt.demand += own;
            }
        }
        // The cap on active demands.
        self.ledger.clear();
        for (&id, t) in &self.threads {
            if t.state != ThreadState::Sleeping {
                self.ledger.insert(id, Self::weight(t));
            }
        }
        let ledger = &self.ledger;
        for t in self.threads.values_mut() {
            t.capped = t.state != ThreadState::Sleeping && ledger.is_capped(Self::weight(t));
        }
        // Draw values and ready sets.
        for &(x, t) in &targets {
            let v = self.slot_value(x, t);
            self.tree.set(self.threads[&x].slot, v);
        }
        self.capped_ready.clear();
        self.owed.clear();
        for (&id, t) in &self.threads {
            if t.state == ThreadState::Runnable {
                if t.capped {
                    self.capped_ready.insert(id);
                } else if t.credit > 0 {
                    self.owed.insert((Reverse(t.credit), id));
                }
            }
        }
    }

    /// A thread's demand as a ledger weight.
    fn weight(t: &Thread) -> u64 {
        u64::try_from(t.demand.max(1)).unwrap_or(u64::MAX)
    }

    /// One fair draw after another until one lands on an idle thread; see
    /// the crate docs.
    fn draw(&mut self) -> Option<ThreadId> {
        let attempts = 8 * self.ledger.cores() + 8;
        for _ in 0..attempts {
            let total = self.tree.total();
            if total == 0 {
                break;
            }
            let slot = self.tree.find(self.rng.below(total));
            let Some(x) = self.slot_owner.get(slot).copied().flatten() else {
                break;
            };
            let t = self.resolve(x);
            let th = self.threads.get_mut(&t)?;
            match th.state {
                ThreadState::Running(_) => {
                    // Won while busy: the quantum is owed. A win ends any
                    // compensation.
                    th.credit = (th.credit + 1).min(MAX_CREDIT);
                    self.set_comp(t, (1, 1));
                }
                ThreadState::Runnable if th.credit < 0 => th.credit += 1,
                ThreadState::Runnable => return Some(t),
                ThreadState::Sleeping => break,
            }
        }
        self.fallback()
    }

    /// One draw among the idle uncapped threads by value (a linear scan,
    /// rare); the winner owes a fair win.
    fn fallback(&mut self) -> Option<ThreadId> {
        let idle: Vec<(ThreadId, u128)> = self
            .threads
            .iter()
            .filter(|(_, t)| t.state == ThreadState::Runnable && !t.capped)
            .map(|(&id, t)| {
                let v = mul_div(t.demand, u128::from(t.comp.0), u128::from(t.comp.1));
                (id, v.max(1))
            })
            .collect();
        let total: u128 = idle.iter().map(|&(_, v)| v).sum();
        let mut r = self.rng.below(total);
        let &(id, _) = idle.iter().find(|&&(_, v)| {
            let hit = r < v;
            r = r.saturating_sub(v);
            hit
        })?;
        if let Some(t) = self.threads.get_mut(&id) {
            t.credit = (t.credit - 1).max(-MAX_CREDIT);
        }
        Some(id)
    }

    /// A runnable capped thread not ahead of its entitlement (one core's
    /// worth of the application's time, as virtual time) by more than a
    /// quantum. Capped threads used to run whenever a core was free, which
    /// is exactly one core only when the application has its P cores all
    /// the time; sharing its cores (a third of each, say), that gave capped
    /// threads nearly all its time and starved the rest for seconds.
    fn capped_owed(&self) -> Option<ThreadId> {
        let now = self.ledger.now();
        self.capped_ready.iter().copied().find(|id| {
            self.threads.get(id).is_some_and(|t| {
                let quantum = self.ledger.vt(self.quantum_ns, Self::weight(t));
                t.vtime <= now.saturating_add(quantum)
            })
        })
    }

    /// Marks `id` running on `core`.
    fn start(&mut self, id: ThreadId, core: CoreId) {
        if let Some(t) = self.threads.get_mut(&id) {
            self.owed.remove(&(Reverse(t.credit), id));
            t.state = ThreadState::Running(core);
        }
        self.capped_ready.remove(&id);
        self.running.insert(core, id);
        self.set_comp(id, (1, 1));
    }
}

impl Policy for Lottery {
    fn lend(&mut self, from: ThreadId, to: ThreadId) -> Result<(), SchedError> {
        self.transfer(from, to)
    }

    fn take_back(&mut self, from: ThreadId) -> Result<(), SchedError> {
        Lottery::take_back(self, from)
    }

    fn kind(&self) -> PolicyKind {
        PolicyKind::Lottery
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
        check_core(core)?;
        if self.running.contains_key(&core) {
            return Err(SchedError::CoreBusy);
        }
        self.refresh();
        let chosen = if let Some(id) = self.capped_owed() {
            Some(id)
        } else if let Some((_, id)) = self.owed.pop_first() {
            if let Some(t) = self.threads.get_mut(&id) {
                t.credit -= 1;
            }
            Some(id)
        } else {
            // A capped thread a quantum ahead of its one core's worth still
            // runs rather than leave the core idle.
            self.draw().or_else(|| self.capped_ready.first().copied())
        };
        if let Some(id) = chosen {
            self.start(id, core);
        }
        Ok(chosen)
    }

    fn charge(
        &mut self,
        id: ThreadId,
        core: CoreId,
        ran_ns: u64,
        end: RunEnd,
    ) -> Result<(), SchedError> {
        let t = self.threads.get(&id).ok_or(SchedError::UnknownThread)?;
        if t.state != ThreadState::Running(core) {
            return Err(SchedError::NotRunning);
        }
        self.refresh();
        let w = self.threads.get(&id).map_or(1, Self::weight);
        let q = self.quantum_ns;
        let comp = if matches!(end, RunEnd::Yielded | RunEnd::Blocked) && ran_ns > 0 && ran_ns < q {
            // Used f = ran/q of its quantum: worth 1/f until it next wins.
            if q / ran_ns >= MAX_COMPENSATION {
                (MAX_COMPENSATION, 1)
            } else {
                (q, ran_ns)
            }
        } else {
            (1, 1)
        };
        let vt = self.ledger.vt(ran_ns, w);
        self.ledger.advance(ran_ns);
        self.running.remove(&core);
        let global = self.ledger.now();
        let Some(t) = self.threads.get_mut(&id) else {
            return Err(SchedError::UnknownThread);
        };
        t.service_ns = t.service_ns.saturating_add(ran_ns);
        t.vtime = t.vtime.saturating_add(vt);
        match end {
            RunEnd::Preempted | RunEnd::Yielded => {
                t.state = ThreadState::Runnable;
                if t.capped {
                    self.capped_ready.insert(id);
                } else if t.credit > 0 {
                    self.owed.insert((Reverse(t.credit), id));
                }
                self.set_comp(id, comp);
            }
            RunEnd::Blocked => {
                t.state = ThreadState::Sleeping;
                t.vtime = t.vtime.saturating_sub(global);
                t.comp = comp;
                self.dirty = true;
            }
            RunEnd::Exited => {
                self.remove_thread(id);
            }
        }
        Ok(())
    }

    fn sleep(&mut self, id: ThreadId) -> Result<(), SchedError> {
        let global = self.ledger.now();
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        match t.state {
            ThreadState::Running(_) => return Err(SchedError::AlreadyRunning),
            ThreadState::Sleeping => return Err(SchedError::AlreadySleeping),
            ThreadState::Runnable => {}
        }
        t.state = ThreadState::Sleeping;
        t.vtime = t.vtime.saturating_sub(global);
        self.dirty = true;
        Ok(())
    }

    fn wake(&mut self, id: ThreadId) -> Result<(), SchedError> {
        let global = self.ledger.now();
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        if t.state != ThreadState::Sleeping {
            return Err(SchedError::NotSleeping);
        }
        t.state = ThreadState::Runnable;
        t.vtime = global.saturating_add(t.vtime);
        // Unblocked: the loan returns.
        self.unlink(id);
        self.dirty = true;
        Ok(())
    }

    fn set_weight(&mut self, id: ThreadId, weight: u32) -> Result<(), SchedError> {
        if weight == 0 {
            return Err(SchedError::ZeroWeight);
        }
        let global = self.ledger.now();
        let t = self.threads.get_mut(&id).ok_or(SchedError::UnknownThread)?;
        let (old, new) = (u128::from(t.tickets), u128::from(weight));
        t.vtime = match t.state {
            ThreadState::Sleeping => scale_signed(t.vtime, old, new),
            _ => global.saturating_add(scale_signed(t.vtime.saturating_sub(global), old, new)),
        };
        t.tickets = weight;
        self.dirty = true;
        Ok(())
    }

    fn set_cores(&mut self, cores: usize) -> Result<(), SchedError> {
        self.ledger.set_cores(check_cores(cores)?);
        self.dirty = true;
        Ok(())
    }

    fn cores(&self) -> usize {
        self.ledger.cores()
    }

    fn quantum_ns(&self) -> u64 {
        self.quantum_ns
    }

    fn export(&self) -> Snapshot {
        // Runnable threads most owed first, then running, then sleeping.
        let mut runnable: Vec<(i128, ThreadId)> = self
            .threads
            .iter()
            .filter(|(_, t)| t.state == ThreadState::Runnable)
            .map(|(&id, t)| (t.vtime, id))
            .collect();
        runnable.sort_unstable();
        let sleeping = self
            .threads
            .iter()
            .filter(|(_, t)| t.state == ThreadState::Sleeping)
            .map(|(&id, _)| id);
        Snapshot {
            global_vtime: self.ledger.now(),
            threads: runnable
                .into_iter()
                .map(|(_, id)| id)
                .chain(self.running.values().copied())
                .chain(sleeping)
                .filter_map(|id| self.record(id))
                .collect(),
        }
    }

    fn import(&mut self, snapshot: Snapshot) -> Result<(), SchedError> {
        snapshot.validate()?;
        let mut fresh = Lottery::new(self.quantum_ns, self.cores(), 0);
        fresh.rng = self.rng.clone();
        let global = snapshot.global_vtime;
        fresh.ledger.set_now(global);
        for r in &snapshot.threads {
            if let Some(c) = fresh.currencies.get_mut(&BASE) {
                c.threads.insert(r.id);
            }
            let vtime = match r.state {
                ThreadState::Sleeping => snapshot.lag(r),
                _ => r.vtime,
            };
            fresh.insert_thread(r.id, r.weight, BASE, r.state, r.service_ns, vtime);
        }
        fresh.refresh();
        // Debts come in as credits. A thread owed `owed` ns at adjusted
        // weight e gains on its ideal only 1 - P e / E per ns it runs (the
        // ideal keeps growing meanwhile), so it is owed owed / (1 - P e / E)
        // ns of running: that many whole quanta.
        let q = fresh.quantum_ns as f64;
        let cores = fresh.cores() as f64;
        let ledger = &fresh.ledger;
        let total = ledger.total_effective().as_f64();
        for t in fresh.threads.values_mut() {
            let lag = t.vtime.saturating_sub(global);
            if t.state == ThreadState::Sleeping || t.capped || lag >= 0 {
                continue;
            }
            let e = ledger.effective(Self::weight(t));
            let owed_ns = mul_div(lag.unsigned_abs(), e.num, e.den.saturating_mul(VT_SCALE));
            let gain = 1.0 - cores * e.as_f64() / total;
            if gain > 0.0 {
                let quanta = owed_ns as f64 / q / gain;
                t.credit = if quanta >= f64::from(MAX_CREDIT) {
                    MAX_CREDIT
                } else {
                    quanta as i32
                };
            }
        }
        fresh.dirty = true;
        *self = fresh;
        Ok(())
    }

    fn record(&self, id: ThreadId) -> Option<ThreadRecord> {
        let t = self.threads.get(&id)?;
        let vtime = match t.state {
            ThreadState::Sleeping => self.ledger.now().saturating_add(t.vtime),
            _ => t.vtime,
        };
        Some(ThreadRecord {
            id,
            weight: t.tickets,
            state: t.state,
            service_ns: t.service_ns,
            vtime,
        })
    }

    fn len(&self) -> usize {
        self.threads.len()
    }
}

#[cfg(test)]
mod tests;
