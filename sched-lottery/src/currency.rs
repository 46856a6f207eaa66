//! Currencies: the tree of currencies (each funded by tickets of its
//! parent, [`BASE`] at the top), the operations on it, and how a change of
//! a currency's active issue reaches the base values of its tickets.
//!
//! A currency's *issue* is the tickets it has out that are active: those of
//! its threads whose tickets resolve to a thread not sleeping, and the
//! funding of its child currencies that are themselves active (issue above
//! 0). Its *value* in base units is `funding * FX` under the base currency
//! and `funding * value(parent) / issue(parent)` below another one; a
//! thread's own tickets are worth `tickets * value / issue` (`tickets *
//! FX` in the base currency). So a change of a currency's issue re-values
//! every active ticket it issued and every currency below it, and none
//! elsewhere — except when it turns active or inactive, which changes its
//! parent's issue the same way.

use alloc::collections::BTreeSet;

use sched_api::{mul_div, SchedError, ThreadId, ThreadState};

use crate::{Lottery, FX};

/// A currency's id.
pub use sched_api::CurrencyId;

/// The base currency: one ticket is one unit of base value.
pub const BASE: CurrencyId = sched_api::BASE_CURRENCY;

#[derive(Clone, Debug)]
pub(crate) struct Currency {
    pub parent: CurrencyId,
    /// Tickets of the parent currency backing this one.
    pub funding: u32,
    pub threads: BTreeSet<ThreadId>,
    pub children: BTreeSet<CurrencyId>,
    /// Derived: active tickets issued (threads' and child currencies').
    pub issue: u128,
    /// Derived: total base value (FX units) while active, 0 while not.
    pub value: u128,
    /// `issue` when `value` was last brought up to date (and with it the
    /// children's values, which follow from both).
    pub settled_issue: u128,
}

impl Currency {
    pub fn new(parent: CurrencyId, funding: u32) -> Currency {
        Currency {
            parent,
            funding,
            threads: BTreeSet::new(),
            children: BTreeSet::new(),
            issue: 0,
            value: 0,
            settled_issue: 0,
        }
    }
}

impl Lottery {
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
        // Issuing nothing yet, it is inactive: nothing derived changes.
        self.currencies.insert(id, Currency::new(parent, funding));
        self.next_currency = id.saturating_add(1);
        Ok(id)
    }

    /// Changes how many parent tickets back `currency`. Every active ticket
    /// it issued changes base value, and so does every ticket of the
    /// currencies below it and, through the parent's issue, of the
    /// parent's other holders and children: O(h log n) for the h active
    /// holders re-valued (a currency's value is its funding's share of its
    /// parent's, so there is no cheaper exact way with one draw value per
    /// thread; the base currency's holders are never among them).
    pub fn fund(&mut self, currency: CurrencyId, funding: u32) -> Result<(), SchedError> {
        if funding == 0 {
            return Err(SchedError::ZeroWeight);
        }
        let (parent, old, active) = match self.currencies.get_mut(&currency) {
            Some(c) if currency != BASE => {
                let old = core::mem::replace(&mut c.funding, funding);
                (c.parent, old, c.issue > 0)
            }
            _ => return Err(SchedError::UnknownCurrency),
        };
        if active {
            // Its funding is part of its parent's issue; its value changes
            // even when the parent is the base currency.
            let (add, diff) = (funding > old, u128::from(funding.abs_diff(old)));
            self.add_issue(parent, add, diff);
            self.pending.currencies.insert(currency);
            self.settle();
        }
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
        // Empty, so inactive: nothing derived changes.
        let parent = c.parent;
        self.currencies.remove(&currency);
        if let Some(p) = self.currencies.get_mut(&parent) {
            p.children.remove(&currency);
        }
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
        self.place_thread(id, tickets, currency, ThreadState::Runnable, 0, vtime);
        self.settle();
        Ok(())
    }

    /// Moves a thread's tickets to `currency` (same face value).
    pub fn move_to_currency(
        &mut self,
        id: ThreadId,
        currency: CurrencyId,
    ) -> Result<(), SchedError> {
        let tickets = self.get(id).ok_or(SchedError::UnknownThread)?.tickets;
        self.redenominate(id, currency, tickets)
    }

    /// Gives a thread `tickets` of `currency` in place of what it holds, as
    /// a change of denomination: its virtual time (its lag, asleep) stays
    /// as it is, so the service it is owed follows its new worth, as when
    /// its currency is refunded. (A weight change instead rescales the lag
    /// by its worth before and after: a libOS putting its threads back in
    /// their currencies one by one after a swap would scale each by a
    /// worth that holds only until the rest are back.)
    pub fn redenominate(
        &mut self,
        id: ThreadId,
        currency: CurrencyId,
        tickets: u32,
    ) -> Result<(), SchedError> {
        if tickets == 0 {
            return Err(SchedError::ZeroWeight);
        }
        if !self.currencies.contains_key(&currency) {
            return Err(SchedError::UnknownCurrency);
        }
        let slot = self.slot_of(id).ok_or(SchedError::UnknownThread)?;
        self.rework_one(slot, |l| {
            let Some(t) = l.at_mut(slot) else {
                return;
            };
            let old = core::mem::replace(&mut t.currency, currency);
            t.tickets = tickets;
            if let Some(c) = l.currencies.get_mut(&old) {
                c.threads.remove(&id);
            }
            if let Some(c) = l.currencies.get_mut(&currency) {
                c.threads.insert(id);
            }
        });
        Ok(())
    }

    /// The currency a thread's tickets are in.
    pub fn currency_of(&self, id: ThreadId) -> Option<CurrencyId> {
        self.get(id).map(|t| t.currency)
    }

    /// The base value of `tickets` of `currency` while active (at least 1:
    /// an active thread always has a chance), from the currency's value
    /// and issue as they stand.
    pub(crate) fn own_value(&self, tickets: u32, currency: CurrencyId) -> u64 {
        let tickets = u128::from(tickets);
        let value = if currency == BASE {
            tickets * FX
        } else {
            self.currencies
                .get(&currency)
                .map_or(0, |c| mul_div(tickets, c.value, c.issue))
        };
        u64::try_from(value.max(1)).unwrap_or(u64::MAX)
    }

    /// The base-currency tickets a thread holding `tickets` of `currency`
    /// is worth, whose own tickets are worth `own` (FX units; 0 while they
    /// are inactive): what its record carries as its weight, so that a
    /// policy without currencies, which takes the weight as base tickets,
    /// gives it the share it had here (a currency's threads by face value
    /// would get their tickets' worth in the base currency instead: a
    /// thread with 1,000 tickets of a currency funded with 100 would count
    /// 1,000). Exact in the base currency. Elsewhere rounded to whole base
    /// tickets, at least 1: a currency whose tickets are worth less than a
    /// base ticket each loses its threads' differences below that. Loans
    /// and compensation are not in it: the thread's own tickets only.
    /// Inactive tickets (a sleeper's) are valued as if they joined their
    /// currency now, growing its issue; in a currency with no active
    /// tickets they would be its whole issue, worth its funding joining its
    /// parent.
    pub(crate) fn base_tickets(&self, tickets: u32, currency: CurrencyId, own: u64) -> u32 {
        if currency == BASE {
            return tickets;
        }
        let value = if own > 0 {
            u128::from(own)
        } else {
            self.value_joining(u128::from(tickets), currency)
        };
        u32::try_from((value + FX / 2) / FX)
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// The base value (FX units) `tickets` of `currency` would have if they
    /// joined its active issue now.
    fn value_joining(&self, mut tickets: u128, mut currency: CurrencyId) -> u128 {
        loop {
            if currency == BASE {
                return tickets.saturating_mul(FX);
            }
            let Some(c) = self.currencies.get(&currency) else {
                return 0;
            };
            if c.issue > 0 {
                return mul_div(tickets, c.value, c.issue.saturating_add(tickets));
            }
            (tickets, currency) = (u128::from(c.funding), c.parent);
        }
    }

    /// Adds `amount` to (`add`) or takes it from `currency`'s issue. A
    /// currency other than the base one is left for `settle_currencies`
    /// to re-value, and one turning active or inactive passes its funding
    /// on to its parent's issue. The base currency's issue changes nothing
    /// else: its tickets and its children's are worth a fixed amount.
    pub(crate) fn add_issue(&mut self, mut currency: CurrencyId, mut add: bool, mut amount: u128) {
        while let Some(c) = self.currencies.get_mut(&currency) {
            let was_active = c.issue > 0;
            c.issue = if add {
                c.issue.saturating_add(amount)
            } else {
                c.issue.saturating_sub(amount)
            };
            if currency == BASE {
                return;
            }
            self.pending.currencies.insert(currency);
            let active = c.issue > 0;
            if active == was_active {
                return;
            }
            (currency, add, amount) = (c.parent, active, u128::from(c.funding));
        }
    }

    /// Brings the values of the currencies whose issue (or funding, or
    /// parent's value) changed up to date, parents first (a child's id is
    /// larger than its parent's), and with them their active holders' own
    /// values and the currencies below them. O((h + 1) log n) per currency
    /// for its h holders.
    pub(crate) fn settle_currencies(&mut self) {
        while let Some(id) = self.pending.currencies.pop_first() {
            let Some(c) = self.currencies.get(&id) else {
                continue;
            };
            let value = if c.issue == 0 {
                0
            } else if c.parent == BASE {
                u128::from(c.funding) * FX
            } else {
                self.currencies
                    .get(&c.parent)
                    .map_or(0, |p| mul_div(u128::from(c.funding), p.value, p.issue))
            };
            let moved = value != c.value || c.issue != c.settled_issue;
            let holders: alloc::vec::Vec<ThreadId> = c.threads.iter().copied().collect();
            if let Some(c) = self.currencies.get_mut(&id) {
                c.value = value;
                c.settled_issue = c.issue;
            }
            // Every holder, moved or not: one attached in this operation
            // was given a provisional value (see `Lottery::attach`).
            for h in holders {
                if let Some(slot) = self.slot_of(h) {
                    self.revalue_own(slot);
                }
            }
            if moved {
                if let Some(c) = self.currencies.get(&id) {
                    self.pending.currencies.extend(c.children.iter().copied());
                }
            }
        }
    }
}
