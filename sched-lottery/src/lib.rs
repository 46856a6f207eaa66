//! Lottery scheduling (Waldspurger & Weihl, OSDI 1994), on P cores.
//!
//! Each thread holds tickets; every decision draws one ticket uniformly,
//! so a thread's share follows its tickets in expectation, with binomial
//! error (relative error shrinking as 1/sqrt(n) over n draws).
//!
//! - **Draws** are O(log n) over a tree of prefix sums (see `sumtree`)
//!   holding every active ticket's value in base units (a fixed point of
//!   `FX` per base ticket); see `draw`.
//! - **Currencies** (`currency`): a currency is funded by tickets in a
//!   parent currency (the base currency [`BASE`] at the top). A ticket's
//!   base value is its share of its currency's active issue times the
//!   currency's value, so issuing more tickets inside a currency
//!   (inflation) only dilutes that currency: adding a thread to A never
//!   changes B's total share. Only active tickets (of threads not
//!   sleeping) count, as in the paper; a currency with no active tickets is
//!   inactive in its parent.
//! - **Compensation tickets** (`credit`): a thread that used only a
//!   fraction f of its quantum (yielding or blocking early) has its value
//!   multiplied by 1/f until it next wins (capped at `MAX_COMPENSATION`).
//! - **Ticket transfers** (`loans`): a sleeping thread (blocked on
//!   another) lends its tickets with [`Lottery::transfer`]; a draw that
//!   lands on them picks the borrower (following chains of loans). The loan
//!   returns at [`Lottery::take_back`] or when the lender wakes.
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
//!   usually hold less than (P-1)/P of the drawn tickets, so a decision
//!   takes fewer than P draws in expectation; after `8P + 8` draws it draws
//!   once among the idle threads only (and debits the winner a credit).
//! - **Cost**: every operation keeps the derived values (currency values,
//!   each thread's base value and demand, the cap, the draw's values, the
//!   ready sets) up to date as it goes (`derived`), so none is ever
//!   rebuilt. `pick` and `charge` are O(log n) (plus one O(log n) step per
//!   redraw); add, remove, sleep, wake, a weight change and a loan of a
//!   thread in the base currency are O(g log n + P), g being the thread and
//!   the threads lending to it (1 without loans) and P the cores (the cap
//!   is found among the P largest weights). Inside another currency, a
//!   change of its active issue changes the base value of every ticket it
//!   issued, so it also re-values the currency's h active holders: O(h log
//!   n); a currency turning active or inactive, or refunded, re-values the
//!   currencies below its parent the same way. A currency is one
//!   application's or user's group of threads, so that is the size of the
//!   group, not of the system, and threads in the base currency (every
//!   thread added through [`Policy`], every imported one) never pay it.
//!   Threads live in a dense table indexed by their draw slot, so the
//!   usual decision (a draw, then the charge of the thread it picked)
//!   looks no thread up by id: the draw lands on a slot and the charge
//!   finds the thread through its core.
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

mod charge;
mod credit;
mod currency;
mod derived;
mod draw;
mod loans;
mod policy;
mod rng;
mod sumtree;
mod thread;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::cmp::Reverse;
use core::hash::BuildHasherDefault;

use hashbrown::HashMap;

use rng::Rng;
use sched_api::table::IdHasher;
use sched_api::{check_cores, Ledger, Params, PolicyInfo, PolicyKind, SchedError, Snapshot};
use sched_api::{Policy, ThreadId};
use sumtree::Tree;

pub use credit::MAX_COMPENSATION;
pub use currency::{CurrencyId, BASE};

use currency::Currency;
use derived::Pending;
use thread::{Slot, Thread};

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

/// Fixed point of base values: units per base ticket.
const FX: u128 = 1 << 20;

/// A lottery scheduler.
#[derive(Clone, Debug)]
pub struct Lottery {
    quantum_ns: u64,
    rng: Rng,
    /// Every thread's slot, by id.
    threads: HashMap<ThreadId, Slot, BuildHasherDefault<IdHasher>>,
    /// The threads, by slot (`None`: a free slot).
    slots: Vec<Option<Thread>>,
    /// Derived, by slot: the base value of the tickets lent to the thread
    /// (those of the threads whose loans resolve to it), 0 while it sleeps.
    /// Only loans touch it, so it is kept out of the threads' records.
    lent: Vec<u128>,
    /// The lenders of each borrower (only while some thread lends).
    lenders: BTreeMap<ThreadId, BTreeSet<ThreadId>>,
    currencies: BTreeMap<CurrencyId, Currency>,
    next_currency: CurrencyId,
    tree: Tree,
    free_slots: Vec<Slot>,
    /// Active demands (feasible on P cores) and the global virtual time.
    ledger: Ledger,
    /// Counts the ledger's changes: a capped thread's effective weight
    /// depends on every active weight, so its memo of a quantum's virtual
    /// time holds only within one epoch (see `Thread::quantum_vt_key_now`).
    epoch: u64,
    /// The slots of the capped threads (at most one per core).
    capped: Vec<Slot>,
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
    /// What the operation under way has left for `Lottery::settle`.
    pending: Pending,
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
            threads: HashMap::default(),
            slots: Vec::new(),
            lent: Vec::new(),
            lenders: BTreeMap::new(),
            currencies,
            next_currency: BASE + 1,
            tree: Tree::default(),
            free_slots: Vec::new(),
            ledger: Ledger::new(cores.clamp(1, sched_api::MAX_CORES), FX),
            epoch: 1,
            capped: Vec::new(),
            running: Vec::new(),
            capped_ready: Vec::new(),
            owed: BTreeSet::new(),
            pending: Pending::default(),
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
}

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
