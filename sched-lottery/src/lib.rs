//! Lottery scheduling (Waldspurger & Weihl, OSDI 1994), on P cores.
//!
//! Each thread holds tickets; every decision draws one ticket uniformly,
//! so a thread's share follows its tickets in expectation, with binomial
//! error (relative error shrinking as 1/sqrt(n) over n draws).
//!
//! - **Draws** are O(log n) over a tree of prefix sums (see `sumtree`)
//!   holding every active ticket's value in base units (a fixed point of
//!   `FX` per base ticket).
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
//!   and the cap depend on every active thread. Threads live in a dense
//!   table indexed by their draw slot, so the usual decision (a draw, then
//!   the charge of the thread it picked) looks no thread up by id: the draw
//!   lands on a slot and the charge finds the thread through its core.
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

mod rng;
mod sumtree;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::cmp::Reverse;

use rng::Rng;
use sched_api::{
    check_core, check_cores, mul_div, scale_signed, CoreId, Ledger, Params, Policy, PolicyInfo,
    PolicyKind, RunEnd, SchedError, Snapshot, ThreadId, ThreadRecord, ThreadState, VT_SCALE,
};
use sumtree::Tree;

/// This policy's name.
pub const KIND: PolicyKind = PolicyKind::new("lottery");

/// Lottery's identity and capabilities, for `sched-registry`.
pub const INFO: PolicyInfo = PolicyInfo {
    kind: KIND,
    description: "lottery scheduling: a random draw weighted by tickets, with currencies and transfers (Waldspurger & Weihl 1994)",
    entitlement: sched_api::Entitlement::Tickets,
    randomized: true,
    currencies: true,
    ticket_transfers: true,
    build: |p: &Params| {
        Ok(alloc::boxed::Box::new(Lottery::try_new(
            p.quantum_ns,
            p.cores,
            p.seed,
        )?))
    },
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

/// A thread's draw slot: its index in the draw's tree and in
/// `Lottery::slots`.
type Slot = usize;

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

/// A thread. Laid out by hand (`repr(C)`, aligned to a cache line) in two
/// cache lines: a draw lands on a thread nowhere near the last one, and at
/// 10,000 threads the cost of a decision grows with the size of this
/// record (in a benchmark, 256-byte records cost about a fifth more than
/// 192-byte ones). The first line holds all a pick reads and most of what
/// the charge then writes; the second the rest of a charge's and a
/// recomputation's data. What only recomputations and loans use lives
/// outside (`Lottery::own`, `Lottery::lenders`).
#[derive(Clone, Debug)]
#[repr(C, align(64))]
struct Thread {
    // -- First line: what a pick reads.
    state: ThreadState,
    /// Compensation factor `num / den` (1/1 when none).
    comp: (u64, u64),
    /// Virtual time while active; the lag it left with while sleeping.
    vtime: i128,
    id: ThreadId,
    /// Quanta won but not yet run (negative: run but not yet won).
    credit: i32,
    lent_to: Option<ThreadId>,
    // -- Second line: the rest.
    /// Derived, on demand: the virtual time of a full quantum at its
    /// weight, if `quantum_vt_known`. Charging a full quantum is the usual
    /// case, and the ledger's conversion costs a 128-bit division. (Not an
    /// `Option<i128>`: its tag would take 16 bytes.)
    quantum_vt: i128,
    /// Derived: base value of all tickets that resolve to it.
    demand: u128,
    service_ns: u64,
    tickets: u32,
    currency: CurrencyId,
    quantum_vt_known: bool,
    /// Derived: entitled to more than one core, so capped at one.
    capped: bool,
}

/// A lottery scheduler.
#[derive(Clone, Debug)]
pub struct Lottery {
    quantum_ns: u64,
    rng: Rng,
    /// Every thread's slot, by id (ordered: the fallback draw and the
    /// export walk threads in id order).
    threads: BTreeMap<ThreadId, Slot>,
    /// The threads, by slot (`None`: a free slot).
    slots: Vec<Option<Thread>>,
    /// Derived, by slot: the base value of the thread's own tickets (0 when
    /// inactive). Only recomputations read it, so it is kept out of the
    /// threads' records.
    own: Vec<u128>,
    /// The lenders of each borrower (only while some thread lends).
    lenders: BTreeMap<ThreadId, BTreeSet<ThreadId>>,
    currencies: BTreeMap<CurrencyId, Currency>,
    next_currency: CurrencyId,
    tree: Tree,
    free_slots: Vec<Slot>,
    /// Active demands (feasible on P cores) and the global virtual time.
    ledger: Ledger,
    /// The slot running on each core (grown on demand: a plain index, no
    /// allocation per decision as a map's node would be).
    running: Vec<Option<Slot>>,
    /// Capped threads that are runnable and not running, with their slots,
    /// in id order. A sorted vector: there are at most as many capped
    /// threads as cores, and with one thread per core (all capped) a set
    /// would allocate and free a node on every decision.
    capped_ready: Vec<(ThreadId, Slot)>,
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
            slots: Vec::new(),
            own: Vec::new(),
            lenders: BTreeMap::new(),
            currencies,
            next_currency: BASE + 1,
            tree: Tree::default(),
            free_slots: Vec::new(),
            ledger: Ledger::new(cores.clamp(1, sched_api::MAX_CORES), FX),
            running: Vec::new(),
            capped_ready: Vec::new(),
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
        let t = self.get_mut(id).ok_or(SchedError::UnknownThread)?;
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
        self.get(id).map(|t| t.currency)
    }

    /// `from`, sleeping (blocked on `to`), lends `to` its tickets until
    /// [`Lottery::take_back`] or until `from` wakes. A new loan replaces an
    /// old one.
    pub fn transfer(&mut self, from: ThreadId, to: ThreadId) -> Result<(), SchedError> {
        let f = self.get(from).ok_or(SchedError::UnknownThread)?;
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
        if let Some(f) = self.get_mut(from) {
            f.lent_to = Some(to);
        }
        self.lenders.entry(to).or_default().insert(from);
        self.dirty = true;
        Ok(())
    }

    /// `from` takes back the tickets it lent.
    pub fn take_back(&mut self, from: ThreadId) -> Result<(), SchedError> {
        let f = self.get(from).ok_or(SchedError::UnknownThread)?;
        if f.lent_to.is_none() {
            return Err(SchedError::NotLending);
        }
        self.unlink(from);
        self.dirty = true;
        Ok(())
    }

    // ---- Internals --------------------------------------------------------

    fn slot_of(&self, id: ThreadId) -> Option<Slot> {
        self.threads.get(&id).copied()
    }

    fn at(&self, slot: Slot) -> Option<&Thread> {
        self.slots.get(slot)?.as_ref()
    }

    fn at_mut(&mut self, slot: Slot) -> Option<&mut Thread> {
        self.slots.get_mut(slot)?.as_mut()
    }

    fn get(&self, id: ThreadId) -> Option<&Thread> {
        self.at(self.slot_of(id)?)
    }

    fn get_mut(&mut self, id: ThreadId) -> Option<&mut Thread> {
        let slot = self.slot_of(id)?;
        self.at_mut(slot)
    }

    /// The slot running on `core`, if any.
    fn running_on(&self, core: CoreId) -> Option<Slot> {
        self.running.get(core).copied().flatten()
    }

    fn set_running(&mut self, core: CoreId, slot: Option<Slot>) {
        if core >= self.running.len() {
            if slot.is_none() {
                return;
            }
            self.running.resize(core + 1, None);
        }
        self.running[core] = slot;
    }

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
            self.slots.push(None);
            self.own.push(0);
            self.tree.push()
        });
        self.slots[slot] = Some(Thread {
            id,
            tickets,
            currency,
            state,
            service_ns,
            vtime,
            comp: (1, 1),
            credit: 0,
            lent_to: None,
            demand: 0,
            capped: false,
            quantum_vt: 0,
            quantum_vt_known: false,
        });
        self.threads.insert(id, slot);
        if let ThreadState::Running(core) = state {
            self.set_running(core, Some(slot));
        }
        self.dirty = true;
    }

    fn remove_thread(&mut self, id: ThreadId) -> Option<Thread> {
        self.unlink(id);
        let slot = self.threads.remove(&id)?;
        let t = self.slots.get_mut(slot)?.take()?;
        for l in self.lenders.remove(&id).unwrap_or_default() {
            if let Some(l) = self.get_mut(l) {
                l.lent_to = None;
            }
        }
        if let Some(c) = self.currencies.get_mut(&t.currency) {
            c.threads.remove(&id);
        }
        self.tree.set(slot, 0);
        self.own[slot] = 0;
        self.free_slots.push(slot);
        if let ThreadState::Running(core) = t.state {
            self.set_running(core, None);
        }
        self.ready_remove(id);
        self.owed.remove(&(Reverse(t.credit), id));
        self.dirty = true;
        Some(t)
    }

    /// Ends `from`'s loan, if any.
    fn unlink(&mut self, from: ThreadId) {
        let Some(to) = self.get_mut(from).and_then(|f| f.lent_to.take()) else {
            return;
        };
        if let Some(lenders) = self.lenders.get_mut(&to) {
            lenders.remove(&from);
            if lenders.is_empty() {
                self.lenders.remove(&to);
            }
        }
    }

    /// The threads `x`'s loans lead to, in order (not `x` itself).
    fn chain(&self, x: ThreadId) -> impl Iterator<Item = ThreadId> + '_ {
        let mut cur = x;
        (0..self.threads.len()).map_while(move |_| {
            cur = self.get(cur)?.lent_to?;
            Some(cur)
        })
    }

    /// Who a draw on `x`'s tickets picks: the end of its chain of loans.
    fn resolve(&self, x: ThreadId) -> ThreadId {
        self.chain(x).last().unwrap_or(x)
    }

    /// [`Lottery::resolve`] by slot; a thread lending nothing (the usual
    /// case) resolves to itself without a lookup.
    fn resolve_slot(&self, slot: Slot) -> Option<Slot> {
        match self.at(slot)?.lent_to {
            None => Some(slot),
            Some(_) => self.slot_of(self.resolve(self.at(slot)?.id)),
        }
    }

    /// Every thread whose tickets resolve to `t` (itself included).
    fn funding_of(&self, t: ThreadId) -> Vec<ThreadId> {
        let mut out = alloc::vec![t];
        let mut i = 0;
        while let Some(&x) = out.get(i) {
            if let Some(lenders) = self.lenders.get(&x) {
                out.extend(lenders.iter().copied());
            }
            i += 1;
        }
        out
    }

    /// Draw value of a slot whose own tickets are worth `own` and resolve
    /// to `target`.
    fn slot_value(own: u128, target: &Thread) -> u128 {
        if target.state == ThreadState::Sleeping || target.capped || own == 0 {
            return 0;
        }
        mul_div(own, u128::from(target.comp.0), u128::from(target.comp.1)).max(1)
    }

    /// Re-enters the draw values of every slot resolving to the thread in
    /// `slot`. (Kept out of line, so that the check before it inlines.)
    #[inline(never)]
    fn revalue_target(&mut self, slot: Slot) {
        let Some(t) = self.at(slot) else {
            return;
        };
        let id = t.id;
        if !self.lenders.contains_key(&id) {
            // Nobody lends to it (the usual case): only its own slot.
            let v = Self::slot_value(self.own[slot], t);
            self.tree.set(slot, v);
            return;
        }
        for x in self.funding_of(id) {
            let Some(xs) = self.slot_of(x) else {
                continue;
            };
            let v = self
                .at(slot)
                .map_or(0, |t| Self::slot_value(self.own[xs], t));
            self.tree.set(xs, v);
        }
    }

    /// Sets the compensation of the thread in `slot`, re-entering its draw
    /// values only when it changed (and they are not about to be
    /// recomputed anyway).
    #[inline]
    fn set_comp(&mut self, slot: Slot, comp: (u64, u64)) {
        let Some(t) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if t.comp != comp {
            t.comp = comp;
            if !self.dirty {
                self.revalue_target(slot);
            }
        }
    }

    /// Recomputes the derived values if anything changed since the last
    /// time (checked inline: every decision asks).
    #[inline]
    fn refresh(&mut self) {
        if self.dirty {
            self.recompute();
        }
    }

    /// Recomputes currency values, demands, the cap, draw values and the
    /// ready sets. O(n log n). Everything it computes is a sum or a set, so
    /// it walks the threads in slot order.
    fn recompute(&mut self) {
        self.dirty = false;
        // (slot, slot its tickets resolve to, that one is active)
        let targets: Vec<(Slot, Slot, bool)> = (0..self.slots.len())
            .filter_map(|x| {
                let t = self.resolve_slot(x)?;
                let active = self.at(t)?.state != ThreadState::Sleeping;
                Some((x, t, active))
            })
            .collect();
        // Active issue, leaves up: children have larger ids than parents.
        for c in self.currencies.values_mut() {
            c.issue = 0;
            c.value = 0;
        }
        for &(x, _, active) in &targets {
            let Some(th) = self.slots[x].as_ref().filter(|_| active) else {
                continue;
            };
            if let Some(c) = self.currencies.get_mut(&th.currency) {
                c.issue += u128::from(th.tickets);
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
        self.own.fill(0);
        for t in self.slots.iter_mut().flatten() {
            t.demand = 0;
            t.quantum_vt_known = false;
        }
        for &(x, t, active) in &targets {
            if !active {
                continue;
            }
            let Some(th) = self.slots[x].as_ref() else {
                continue;
            };
            let c = &self.currencies[&th.currency];
            let own = if th.currency == BASE {
                u128::from(th.tickets) * FX
            } else {
                mul_div(u128::from(th.tickets), c.value, c.issue)
            }
            .max(1);
            self.own[x] = own;
            if let Some(tt) = self.slots[t].as_mut() {
                tt.demand += own;
            }
        }
        // The cap on active demands.
        self.ledger.clear();
        for t in self.slots.iter().flatten() {
            if t.state != ThreadState::Sleeping {
                self.ledger.insert(t.id, Self::weight(t));
            }
        }
        let ledger = &self.ledger;
        for t in self.slots.iter_mut().flatten() {
            t.capped = t.state != ThreadState::Sleeping && ledger.is_capped(Self::weight(t));
        }
        // Draw values and ready sets.
        for &(x, t, _) in &targets {
            let v = match (&self.slots[x], &self.slots[t]) {
                (Some(_), Some(t)) => Self::slot_value(self.own[x], t),
                _ => 0,
            };
            self.tree.set(x, v);
        }
        self.tree.narrow();
        self.capped_ready.clear();
        self.owed.clear();
        for (slot, t) in self.slots.iter().enumerate() {
            let Some(t) = t.as_ref().filter(|t| t.state == ThreadState::Runnable) else {
                continue;
            };
            if t.capped {
                self.capped_ready.push((t.id, slot));
            } else if t.credit > 0 {
                self.owed.insert((Reverse(t.credit), t.id));
            }
        }
        self.capped_ready.sort_unstable();
    }

    /// A thread's demand as a ledger weight.
    fn weight(t: &Thread) -> u64 {
        u64::try_from(t.demand.max(1)).unwrap_or(u64::MAX)
    }

    /// One fair draw after another until one lands on an idle thread; see
    /// the crate docs. The winner's slot.
    fn draw(&mut self) -> Option<Slot> {
        let attempts = 8 * self.ledger.cores() + 8;
        for _ in 0..attempts {
            let total = self.tree.total();
            if total == 0 {
                break;
            }
            let slot = self.tree.find(self.rng.below(total));
            let Some(x) = self.at(slot) else {
                break;
            };
            let t = match x.lent_to {
                None => slot,
                Some(_) => self.resolve_slot(slot)?,
            };
            let th = self.at_mut(t)?;
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

    /// One draw among the idle uncapped threads by value (a linear scan in
    /// id order, rare); the winner owes a fair win. The winner's slot.
    fn fallback(&mut self) -> Option<Slot> {
        let idle: Vec<(Slot, u128)> = self
            .threads
            .values()
            .filter_map(|&s| Some((s, self.at(s)?)))
            .filter(|(_, t)| t.state == ThreadState::Runnable && !t.capped)
            .map(|(s, t)| {
                let v = mul_div(t.demand, u128::from(t.comp.0), u128::from(t.comp.1));
                (s, v.max(1))
            })
            .collect();
        let total: u128 = idle.iter().map(|&(_, v)| v).sum();
        let mut r = self.rng.below(total);
        let &(slot, _) = idle.iter().find(|&&(_, v)| {
            let hit = r < v;
            r = r.saturating_sub(v);
            hit
        })?;
        if let Some(t) = self.at_mut(slot) {
            t.credit = (t.credit - 1).max(-MAX_CREDIT);
        }
        Some(slot)
    }

    /// A runnable capped thread not ahead of its entitlement (one core's
    /// worth of the application's time, as virtual time) by more than a
    /// quantum. Capped threads used to run whenever a core was free, which
    /// is exactly one core only when the application has its P cores all
    /// the time; sharing its cores (a third of each, say), that gave capped
    /// threads nearly all its time and starved the rest for seconds.
    fn capped_owed(&mut self) -> Option<Slot> {
        let now = self.ledger.now();
        for i in 0..self.capped_ready.len() {
            let (_, slot) = self.capped_ready[i];
            let quantum = self.vt_of(slot, self.quantum_ns);
            if self
                .at(slot)
                .is_some_and(|t| t.vtime <= now.saturating_add(quantum))
            {
                return Some(slot);
            }
        }
        None
    }

    /// Adds a thread to `capped_ready` (if not there).
    fn ready_insert(&mut self, id: ThreadId, slot: Slot) {
        if let Err(i) = self.capped_ready.binary_search_by_key(&id, |&(id, _)| id) {
            self.capped_ready.insert(i, (id, slot));
        }
    }

    /// Takes a thread out of `capped_ready` (if there).
    fn ready_remove(&mut self, id: ThreadId) {
        if let Ok(i) = self.capped_ready.binary_search_by_key(&id, |&(id, _)| id) {
            self.capped_ready.remove(i);
        }
    }

    /// The virtual time of `ran_ns` of service for the thread in `slot`
    /// (its weight and the cap as of the last refresh), from the memo for a
    /// full quantum.
    fn vt_of(&mut self, slot: Slot, ran_ns: u64) -> i128 {
        let Some(t) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return self.ledger.vt(ran_ns, 1);
        };
        if ran_ns != self.quantum_ns {
            return self.ledger.vt(ran_ns, Self::weight(t));
        }
        if !t.quantum_vt_known {
            t.quantum_vt = self.ledger.vt(ran_ns, Self::weight(t));
            t.quantum_vt_known = true;
        }
        t.quantum_vt
    }

    /// Marks the thread in `slot` running on `core`.
    fn start(&mut self, slot: Slot, core: CoreId) {
        let Some(t) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        // Only a runnable thread with credit is in `owed` (under its
        // current credit), and only a capped one in `capped_ready`: most
        // starts need neither lookup.
        if t.credit > 0 {
            self.owed.remove(&(Reverse(t.credit), t.id));
        }
        t.state = ThreadState::Running(core);
        if t.capped {
            let id = t.id;
            self.ready_remove(id);
        }
        self.set_running(core, Some(slot));
        self.set_comp(slot, (1, 1));
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
        check_core(core)?;
        if self.running_on(core).is_some() {
            return Err(SchedError::CoreBusy);
        }
        self.refresh();
        let chosen = if let Some(slot) = self.capped_owed() {
            Some(slot)
        } else if let Some((_, id)) = self.owed.pop_first() {
            let slot = self.slot_of(id);
            if let Some(t) = slot.and_then(|s| self.at_mut(s)) {
                t.credit -= 1;
            }
            slot
        } else {
            // A capped thread a quantum ahead of its one core's worth still
            // runs rather than leave the core idle.
            self.draw().or_else(|| {
                let &(_, slot) = self.capped_ready.first()?;
                Some(slot)
            })
        };
        let Some(slot) = chosen else {
            return Ok(None);
        };
        self.start(slot, core);
        Ok(self.at(slot).map(|t| t.id))
    }

    fn charge(
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
        self.refresh();
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
        let vt = self.vt_of(slot, ran_ns);
        self.ledger.advance(ran_ns);
        self.set_running(core, None);
        let global = self.ledger.now();
        let Some(t) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return Err(SchedError::UnknownThread);
        };
        t.service_ns = t.service_ns.saturating_add(ran_ns);
        t.vtime = t.vtime.saturating_add(vt);
        match end {
            RunEnd::Preempted | RunEnd::Yielded => {
                t.state = ThreadState::Runnable;
                if t.capped {
                    self.ready_insert(id, slot);
                } else if t.credit > 0 {
                    self.owed.insert((Reverse(t.credit), id));
                }
                self.set_comp(slot, comp);
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
        let t = self.get_mut(id).ok_or(SchedError::UnknownThread)?;
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
        let t = self.get_mut(id).ok_or(SchedError::UnknownThread)?;
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
        let t = self.get_mut(id).ok_or(SchedError::UnknownThread)?;
        let (old, new) = (u128::from(t.tickets), u128::from(weight));
        if t.state == ThreadState::Sleeping {
            // A sleeper has no effective weight: its tickets it is.
            t.vtime = scale_signed(t.vtime, old, new);
            t.tickets = weight;
            self.dirty = true;
            return Ok(());
        }
        // The remaining lag is rescaled by the *effective* weights, before
        // and after (currency values and the cap on P cores applied): a
        // capped thread whose tickets change but stays capped keeps the
        // service it is owed (by face value it would lose or gain it).
        self.refresh();
        let before = self.get(id).map(|t| self.ledger.effective(Self::weight(t)));
        if let Some(t) = self.get_mut(id) {
            t.tickets = weight;
        }
        self.dirty = true;
        self.refresh();
        let after = self.get(id).map(|t| self.ledger.effective(Self::weight(t)));
        if let (Some(before), Some(after), Some(t)) = (before, after, self.get_mut(id)) {
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
            .slots
            .iter()
            .flatten()
            .filter(|t| t.state == ThreadState::Runnable)
            .map(|t| (t.vtime, t.id))
            .collect();
        runnable.sort_unstable();
        let sleeping = self
            .threads
            .values()
            .filter_map(|&s| self.at(s))
            .filter(|t| t.state == ThreadState::Sleeping)
            .map(|t| t.id);
        let running = self
            .running
            .iter()
            .filter_map(|&s| self.at(s?))
            .map(|t| t.id);
        Snapshot {
            global_vtime: self.ledger.now(),
            threads: runnable
                .into_iter()
                .map(|(_, id)| id)
                .chain(running)
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
        for t in fresh.slots.iter_mut().flatten() {
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
        let t = self.get(id)?;
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
