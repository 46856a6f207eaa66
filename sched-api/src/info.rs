//! A policy's identity and what it can do, as its own crate declares it
//! (`pub const INFO: PolicyInfo`). The crate `sched-registry` lists every
//! policy's `INFO` once; every other layer (the kernel's command line, the
//! libOS, the applications' console, the runner's schema and value lists,
//! the benchmarks) reads names, capabilities and constructors from there.

use alloc::boxed::Box;
use core::fmt;

use crate::{Policy, SchedError};

/// Which policy a value is: its stable name (`"stride"`, `"eevdf"`, ...),
/// the word scenarios, the command line and the console use. Two kinds are
/// the same policy exactly when their names are equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyKind(&'static str);

impl PolicyKind {
    /// The kind named `name` (a policy crate's own constant).
    pub const fn new(name: &'static str) -> Self {
        PolicyKind(name)
    }

    /// The stable name.
    pub const fn name(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// What a thread is entitled to under a policy: the share its lag, and every
/// share figure, is measured against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entitlement {
    /// In proportion to tickets, capped at one core (see
    /// [`crate::feasible_weights`]).
    Tickets,
    /// An equal share of the cores, whatever the tickets.
    Equal,
}

/// What a constructor is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// The quantum the policy should intend (ns, at least 1).
    pub quantum_ns: u64,
    /// The cores shares are computed for (`1..=MAX_CORES`).
    pub cores: usize,
    /// Seed for a randomized policy (ignored by the others); a run that
    /// passes the same seed repeats the same decisions.
    pub seed: u64,
}

/// A policy's identity, capabilities and constructor.
#[derive(Clone, Copy)]
pub struct PolicyInfo {
    pub kind: PolicyKind,
    /// One line for lists and `--help`.
    pub description: &'static str,
    pub entitlement: Entitlement,
    /// Decisions are random draws: shares hold in expectation only (figures
    /// get a binomial envelope instead of a lag bound).
    pub randomized: bool,
    /// Ticket currencies (funding trees) are supported.
    pub currencies: bool,
    /// [`Policy::lend`] / [`Policy::take_back`] work (others say
    /// [`SchedError::Unsupported`]).
    pub ticket_transfers: bool,
    /// A fresh, empty policy.
    pub build: fn(&Params) -> Result<Box<dyn Policy>, SchedError>,
}

impl PolicyInfo {
    /// Weights change shares under this policy.
    pub fn uses_tickets(&self) -> bool {
        self.entitlement == Entitlement::Tickets
    }
}

impl fmt::Debug for PolicyInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyInfo")
            .field("kind", &self.kind)
            .field("entitlement", &self.entitlement)
            .field("randomized", &self.randomized)
            .field("currencies", &self.currencies)
            .field("ticket_transfers", &self.ticket_transfers)
            .finish_non_exhaustive()
    }
}
