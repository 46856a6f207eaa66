//! The derived values, kept up to date by every operation as it goes.
//!
//! Inputs: each thread's state, tickets, currency, loan and compensation;
//! each currency's funding; the core count. Derived from them, each from
//! the ones before:
//!
//! 1. each currency's active issue and value (see `currency`);
//! 2. each thread's own base value (`Thread::own`: 0 while the thread its
//!    tickets resolve to sleeps, else at least 1) and its demand (the base
//!    value of all tickets resolving to it: its own and `Lottery::lent`);
//! 3. the ledger's weights (the demands of the active threads), hence the
//!    cap and each thread's `capped`;
//! 4. each slot's value in the draw (its own value times its target's
//!    compensation; 0 if the target sleeps or is capped), and the ready
//!    sets.
//!
//! An operation that moves tickets takes them out of everything derived
//! first (`detach`: out of their currency's issue, their target's demand
//! and the draw), changes its inputs, puts them back (`attach`), and calls
//! `settle`, which re-values the currencies whose issue changed and their
//! holders, moves the ledger weights that changed and re-caps. Every step
//! is an exact integer update, so the result is the very values a
//! recomputation from scratch gives (`reference`; property tests compare
//! the two after every operation).

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use sched_api::{mul_div, ThreadState};

use crate::thread::Thread;
use crate::{CurrencyId, Lottery, Slot};

/// What an operation under way leaves for [`Lottery::settle`], and buffers
/// reused from one operation to the next (no allocation per decision).
#[derive(Clone, Debug, Default)]
pub(crate) struct Pending {
    /// Currencies (not the base one) whose issue or funding changed.
    pub currencies: BTreeSet<CurrencyId>,
    /// Threads whose demand or state may have changed, so their ledger
    /// weight too (repeats do no harm).
    pub targets: Vec<Slot>,
    /// The ledger changed (a weight, a thread in or out, the cores): the
    /// cap may have moved.
    pub ledger_changed: bool,
    /// Buffer of [`Lottery::group`].
    pub group: Vec<Slot>,
    /// Buffer of the threads whose cap to check.
    pub candidates: Vec<Slot>,
    /// Buffer of the draw values hidden by an idle-only draw.
    pub hidden: Vec<(Slot, u128)>,
}

/// The draw value of a slot whose own tickets are worth `own` and resolve
/// to `target`.
pub(crate) fn slot_value(own: u64, target: &Thread) -> u128 {
    if target.state == ThreadState::Sleeping || target.capped || own == 0 {
        return 0;
    }
    let own = u128::from(own);
    if target.comp == (1, 1) {
        return own; // the usual case, without a 128-bit division
    }
    mul_div(own, u128::from(target.comp.0), u128::from(target.comp.1)).max(1)
}

impl Lottery {
    /// Takes the own tickets of the thread in `x` out of everything
    /// derived: its currency's issue, its target's demand and the draw.
    /// Nothing to do if they are inactive.
    pub(crate) fn detach(&mut self, x: Slot) {
        let Some(th) = self.at_mut(x) else {
            return;
        };
        let own = core::mem::take(&mut th.own);
        if own == 0 {
            return;
        }
        let (tickets, currency) = (th.tickets, th.currency);
        self.tree.set(x, 0);
        self.shift_demand(x, own, 0);
        self.add_issue(currency, false, u128::from(tickets));
    }

    /// Puts the own tickets of the thread in `x` back, if the thread they
    /// resolve to is active. In a currency other than the base one the
    /// value given here is provisional (the currency's value is not yet up
    /// to date): `settle` re-values every holder of a currency whose issue
    /// changed, and this one's just did.
    pub(crate) fn attach(&mut self, x: Slot) {
        let Some(th) = self.at(x).filter(|th| th.own == 0) else {
            return;
        };
        let (tickets, currency) = (th.tickets, th.currency);
        let Some(t) = self.resolve_slot(x) else {
            return;
        };
        if self.at(t).is_none_or(|t| t.state == ThreadState::Sleeping) {
            return;
        }
        self.add_issue(currency, true, u128::from(tickets));
        let own = self.own_value(tickets, currency);
        if let Some(th) = self.at_mut(x) {
            th.own = own;
        }
        self.shift_demand(x, 0, own);
        let v = self.at(t).map_or(0, |t| slot_value(own, t));
        self.tree.set(x, v);
    }

    /// Recomputes the own value of the active tickets of the thread in `x`
    /// from its currency's value and issue as they stand.
    pub(crate) fn revalue_own(&mut self, x: Slot) {
        let Some(th) = self.at(x).filter(|th| th.own != 0) else {
            return;
        };
        let (old, new) = (th.own, self.own_value(th.tickets, th.currency));
        if new == old {
            return;
        }
        if let Some(th) = self.at_mut(x) {
            th.own = new;
        }
        if let Some(t) = self.shift_demand(x, old, new) {
            let v = self.at(t).map_or(0, |t| slot_value(new, t));
            self.tree.set(x, v);
        }
    }

    /// The own value of the thread in `x` went from `old` to `new` (already
    /// stored): its target's demand follows (`lent`, if the target is
    /// another thread: its own is in its record), and the target's weight
    /// is left for `settle`. The target.
    fn shift_demand(&mut self, x: Slot, old: u64, new: u64) -> Option<Slot> {
        let t = self.resolve_slot(x)?;
        if t != x {
            self.lent[t] = self.lent[t] - u128::from(old) + u128::from(new);
        }
        self.pending.targets.push(t);
        Some(t)
    }

    /// Re-enters the draw values of every slot resolving to the thread in
    /// `slot` (after its compensation or cap changed). (Kept out of line,
    /// so that the checks before it inline.)
    #[inline(never)]
    pub(crate) fn revalue_target(&mut self, slot: Slot) {
        let Some(t) = self.at(slot) else {
            return;
        };
        if !self.lenders.contains_key(&t.id) {
            // Nobody lends to it (the usual case): only its own slot.
            let v = slot_value(t.own, t);
            self.tree.set(slot, v);
            return;
        }
        let group = self.group(slot);
        for &x in &group {
            let own = self.at(x).map_or(0, |x| x.own);
            let v = self.at(slot).map_or(0, |t| slot_value(own, t));
            self.tree.set(x, v);
        }
        self.give_back(group);
    }

    /// Applies `change` to the thread in `slot` alone (its tickets, its
    /// currency): its own tickets are out of the derived values meanwhile.
    pub(crate) fn rework_one(&mut self, slot: Slot, change: impl FnOnce(&mut Self)) {
        self.detach(slot);
        change(self);
        self.attach(slot);
        self.settle();
    }

    /// Applies `change` to the thread in `slot` when it changes where its
    /// own tickets and those lent to it resolve, or whether they count
    /// (its state, its loan): all of them are out of the derived values
    /// meanwhile. O(g log n) for the g threads of its group.
    pub(crate) fn rework_group(&mut self, slot: Slot, change: impl FnOnce(&mut Self)) {
        if self.lenders.is_empty() {
            // Nobody lends (the usual case): the thread alone.
            return self.rework_one(slot, change);
        }
        let group = self.group(slot);
        for &x in &group {
            self.detach(x);
        }
        change(self);
        for &x in &group {
            self.attach(x);
        }
        self.give_back(group);
        self.settle();
    }

    /// Finishes an operation: currency values, then the ledger weights of
    /// the threads whose demand or state changed, then the cap.
    pub(crate) fn settle(&mut self) {
        self.settle_currencies();
        let mut targets = core::mem::take(&mut self.pending.targets);
        for &t in &targets {
            let weight = self.ledger_weight(t);
            self.set_weight_in_ledger(t, weight);
        }
        if core::mem::take(&mut self.pending.ledger_changed) {
            self.recap(&targets);
        }
        targets.clear();
        self.pending.targets = targets;
    }

    /// The ledger weight the thread in `slot` should have: its demand
    /// while active, 0 while it sleeps.
    #[inline]
    fn ledger_weight(&self, slot: Slot) -> u64 {
        match self.at(slot) {
            Some(th) if th.state != ThreadState::Sleeping => {
                // Nothing is lent to anyone without loans: no need to
                // look (the usual case).
                let lent = if self.lenders.is_empty() {
                    0
                } else {
                    self.lent[slot]
                };
                let demand = u128::from(th.own) + lent;
                u64::try_from(demand.max(1)).unwrap_or(u64::MAX)
            }
            _ => 0,
        }
    }

    /// Before [`Lottery::settle`] when many threads were placed at once
    /// (an import): the ledger weights of those of its targets not in the
    /// ledger yet go in together ([`Ledger::insert_all`]), so that the cap
    /// is computed once, not after each; `settle` then finds them in place
    /// and does the rest.
    pub(crate) fn preload_weights(&mut self) {
        self.settle_currencies();
        let targets = core::mem::take(&mut self.pending.targets);
        let mut weights = Vec::with_capacity(targets.len());
        for &t in &targets {
            let weight = self.ledger_weight(t);
            if let Some(th) = self.at_mut(t).filter(|th| th.weight == 0 && weight != 0) {
                th.weight = weight;
                weights.push((th.id, weight));
            }
        }
        if !weights.is_empty() {
            self.ledger.insert_all(weights);
            self.pending.ledger_changed = true;
        }
        self.pending.targets = targets;
    }

    /// Puts the thread in `slot` in the ledger with `weight` (0: out).
    pub(crate) fn set_weight_in_ledger(&mut self, slot: Slot, weight: u64) {
        let Some(t) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if t.weight == weight {
            return;
        }
        let (id, old) = (t.id, core::mem::replace(&mut t.weight, weight));
        if old != 0 {
            self.ledger.remove(id, old);
        }
        if weight != 0 {
            self.ledger.insert(id, weight);
        }
        self.pending.ledger_changed = true;
    }

    /// After the ledger changed: a new epoch (capped threads' memos are
    /// stale), and `capped` brought up to date. Only the threads whose
    /// weight changed (`changed`), those capped before and those capped now
    /// (the largest weights, at most one per core) can have changed.
    pub(crate) fn recap(&mut self, changed: &[Slot]) {
        self.epoch += 1;
        if self.capped.is_empty() && self.ledger.cap().capped == 0 {
            return; // nobody capped before or after (the usual case)
        }
        let mut candidates = core::mem::take(&mut self.pending.candidates);
        candidates.extend_from_slice(changed);
        candidates.extend_from_slice(&self.capped);
        let now = self.ledger.cap().capped;
        for (_, id) in self.ledger.largest().take(now) {
            candidates.extend(self.slot_of(id));
        }
        for &s in &candidates {
            let Some(t) = self.at(s) else {
                continue;
            };
            let capped = t.weight != 0 && self.ledger.is_capped(t.weight);
            if t.capped != capped {
                self.set_capped(s, capped);
            }
        }
        candidates.clear();
        self.pending.candidates = candidates;
    }

    /// Caps or uncaps the thread in `slot`: its draw values, its ready set.
    fn set_capped(&mut self, slot: Slot, capped: bool) {
        let Some(t) = self.at_mut(slot) else {
            return;
        };
        t.capped = capped;
        t.quantum_vt_key = 0;
        let (id, credit, state) = (t.id, t.credit, t.state);
        if capped {
            self.capped.push(slot);
        } else {
            self.capped.retain(|&s| s != slot);
        }
        if state == ThreadState::Runnable {
            let owed = (core::cmp::Reverse(credit), id);
            if capped {
                self.owed.remove(&owed);
                self.ready_insert(id, slot);
            } else {
                self.ready_remove(id);
                if credit > 0 {
                    self.owed.insert(owed);
                }
            }
        }
        // A sleeper's tickets and those lent to it are out of the draw
        // already.
        if state != ThreadState::Sleeping {
            self.revalue_target(slot);
        }
    }
}
