//! The application's ticket currencies, kept by the table so that they
//! outlive the policy: made in a policy that has them (lottery's, see
//! `sched_api::Policy::create_currency`), carried through a swap to one
//! that has not (its threads then weigh what their tickets were worth in
//! base tickets: the policy's export says so) and made again, with every
//! thread back in its currency at its face value, when a swap comes back
//! to one that has. The table's ids are its own (`1..`, the base currency
//! `0`), so they stay the same whichever policy made them last.
//!
//! A blocked thread's ticket loan is given again after a swap the same
//! way: a policy's snapshot has no loans, so without it a lock's holder
//! ran on its own tickets until its waiters woke.

use alloc::vec::Vec;

use sched_api::{CurrencyId, Policy, SchedError, BASE_CURRENCY};

use super::{Life, Table, NONE};

/// One currency as the application made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Currency {
    /// The table's id of the currency funding it (`BASE_CURRENCY` or a
    /// lower id: parents are made first).
    pub parent: CurrencyId,
    /// Tickets of the parent backing it.
    pub funding: u32,
    /// Its id in the policy, while the policy has currencies.
    in_policy: Option<CurrencyId>,
}

/// The table's currencies: id `k` (from 1) is `list[k - 1]`.
#[derive(Debug, Default)]
pub struct Currencies {
    list: Vec<Currency>,
}

impl Currencies {
    pub const fn new() -> Currencies {
        Currencies { list: Vec::new() }
    }

    /// Currency `id` (`None` for the base currency and unknown ids).
    pub fn get(&self, id: CurrencyId) -> Option<&Currency> {
        self.list.get((id as usize).checked_sub(1)?)
    }

    /// The policy's id of the table's currency `id`: `UnknownCurrency` if
    /// the application made none such, `Unsupported` if the policy has no
    /// currencies now.
    fn in_policy(&self, id: CurrencyId) -> Result<CurrencyId, SchedError> {
        if id == BASE_CURRENCY {
            return Ok(BASE_CURRENCY);
        }
        let c = self.get(id).ok_or(SchedError::UnknownCurrency)?;
        c.in_policy.ok_or(SchedError::Unsupported)
    }
}

impl Table {
    /// A currency funded by `funding` tickets of `parent` (the table's id;
    /// `BASE_CURRENCY` is the base). Its id, from 1. Refused as the policy
    /// refuses it (`Unsupported` by a policy without currencies).
    pub fn create_currency(
        &mut self,
        parent: CurrencyId,
        funding: u32,
    ) -> Result<CurrencyId, SchedError> {
        let parent_here = self.currencies.in_policy(parent)?;
        let policy = self.policy.as_mut().ok_or(SchedError::Unsupported)?;
        let made = policy.create_currency(parent_here, funding)?;
        self.currencies.list.push(Currency {
            parent,
            funding,
            in_policy: Some(made),
        });
        Ok(self.currencies.list.len() as CurrencyId)
    }

    /// Changes how many of its parent's tickets back `currency`.
    pub fn fund_currency(&mut self, currency: CurrencyId, funding: u32) -> Result<(), SchedError> {
        if currency == BASE_CURRENCY {
            return Err(SchedError::UnknownCurrency);
        }
        let here = self.currencies.in_policy(currency)?;
        let policy = self.policy.as_mut().ok_or(SchedError::Unsupported)?;
        policy.fund_currency(here, funding)?;
        if let Some(c) = self.currencies.list.get_mut(currency as usize - 1) {
            c.funding = funding;
        }
        Ok(())
    }

    /// Gives live thread `tid` `tickets` of `currency`: a change of
    /// denomination (`Policy::move_to_currency`), its lag kept as it is.
    pub fn set_currency(
        &mut self,
        tid: usize,
        currency: CurrencyId,
        tickets: u32,
    ) -> Result<(), SchedError> {
        if tickets == 0 {
            return Err(SchedError::ZeroWeight);
        }
        let live = self.threads.get(tid).is_some_and(|t| t.life == Life::Live);
        if !live || tid == self.control {
            return Err(SchedError::UnknownThread);
        }
        let here = self.currencies.in_policy(currency)?;
        let policy = self.policy.as_mut().ok_or(SchedError::Unsupported)?;
        policy.move_to_currency(tid as u32, here, tickets)?;
        let t = &mut self.threads[tid];
        (t.currency, t.face) = (currency, tickets);
        Ok(())
    }

    /// Puts live thread `tid`, just started with `tickets` base tickets,
    /// in `currency` with those tickets: in the policy's currency if it
    /// has currencies; else remembered for a swap back (its tickets count
    /// as base tickets until then: there is no worth to go by). A currency
    /// unknown, or tickets refused, take the thread back ([`Table::unspawn`])
    /// and answer `false`.
    pub fn place_in_currency(&mut self, tid: usize, currency: CurrencyId, tickets: u32) -> bool {
        match self.set_currency(tid, currency, tickets) {
            Ok(()) => true,
            Err(SchedError::Unsupported) => {
                self.remember_currency(tid, currency, tickets);
                true
            }
            Err(_) => {
                self.unspawn(tid);
                false
            }
        }
    }

    /// Notes that live thread `tid` (in the base currency of a policy
    /// without currencies) holds `tickets` of `currency`: a swap to a
    /// policy with currencies puts it there. Nothing for an unknown
    /// currency.
    pub fn remember_currency(&mut self, tid: usize, currency: CurrencyId, tickets: u32) {
        let known = self.currencies.get(currency).is_some();
        if let Some(t) = self
            .threads
            .get_mut(tid)
            .filter(|t| t.life == Life::Live && known)
        {
            (t.currency, t.face) = (currency, tickets);
        }
    }

    /// The currency live thread `tid`'s tickets are in, and how many
    /// (`None` for a thread in the base currency: its weight is the
    /// policy's to tell).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn currency_of(&self, tid: usize) -> Option<(CurrencyId, u32)> {
        let t = self.threads.get(tid)?;
        (t.life == Life::Live && t.currency != BASE_CURRENCY).then_some((t.currency, t.face))
    }

    /// A weight set by `set_weight` under the current policy: in the
    /// thread's currency if the policy has currencies; otherwise it is in
    /// base tickets, and the thread leaves its currency for good.
    pub(super) fn weight_set(&mut self, tid: usize, weight: u32) {
        let in_policy = self
            .currencies
            .in_policy(self.threads[tid].currency)
            .is_ok();
        let t = &mut self.threads[tid];
        if in_policy {
            t.face = weight;
        } else {
            (t.currency, t.face) = (BASE_CURRENCY, 0);
        }
    }

    /// After a swap to `self.policy`: the currencies made again in it (if
    /// it has them), every thread in one back in it at its face value, and
    /// every blocked lender's loan given again. Nothing to walk in an
    /// application with neither (the usual swap).
    pub(super) fn reseat_currencies_and_loans(&mut self) {
        let Some(policy) = self.policy.as_mut() else {
            return;
        };
        if !self.currencies.list.is_empty() {
            remake(policy.as_mut(), &mut self.currencies);
            for tid in 0..self.threads.len() {
                let t = &self.threads[tid];
                if t.life != Life::Live || t.currency == BASE_CURRENCY {
                    continue;
                }
                let (currency, face) = (t.currency, t.face);
                // A change of denomination, its lag as imported: the
                // lag is per base ticket of the worth it had at the swap,
                // which it has again once every thread is back (a weight
                // change here would scale it by a worth that holds only
                // until the rest are back: 90% of a debt lost).
                if let Ok(here) = self.currencies.in_policy(currency) {
                    let _ = policy.move_to_currency(tid as u32, here, face);
                }
            }
        }
        if self.lenders {
            for tid in 0..self.threads.len() {
                let to = self.threads[tid].lend_to;
                if to != NONE && policy.lend(tid as u32, to as u32).is_ok() {
                    self.lends += 1;
                }
            }
        }
    }
}

/// Makes `currencies` again in `policy`, parents first; each one's id
/// there, or `None` for all if the policy has no currencies.
fn remake(policy: &mut dyn Policy, currencies: &mut Currencies) {
    for k in 0..currencies.list.len() {
        let Currency {
            parent, funding, ..
        } = currencies.list[k];
        let made = currencies
            .in_policy(parent)
            .ok()
            .and_then(|p| policy.create_currency(p, funding).ok());
        currencies.list[k].in_policy = made;
    }
}
