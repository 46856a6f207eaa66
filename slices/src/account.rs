//! Per-environment accounting: plain `repr(C)` data the kernel can export
//! read-only to user space.

use crate::{EnvId, MAX_CORES, MAX_ENVS, NO_ENV};

/// One environment's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct EnvAccount {
    /// Its id, or [`NO_ENV`] for an unused entry.
    pub env: u32,
    /// Slots held across all cores (as last reported by the kernel).
    pub slots_held: u32,
    /// CPU time it received on each core (ns), on whoever's slot.
    pub cpu_ns: [u64; MAX_CORES],
    /// Time of its own slots, whoever ran in them (the slot is charged to
    /// its owner).
    pub slot_ns: u64,
    /// Of `slot_ns`, time others ran in its slots (its donations).
    pub donated_ns: u64,
    /// CPU time it received in others' slots (donations to it).
    pub received_ns: u64,
    /// CPU time it received in unowned slots (as the default environment).
    pub unowned_ns: u64,
    /// Directed yields it made to another environment.
    pub donations_given: u64,
    /// Directed yields it received.
    pub donations_received: u64,
    /// Times a core was taken back from it by force.
    pub repossessions: u64,
    /// Turns it forfeited to pay back overrun debt.
    pub forfeits: u64,
    /// Slots it lost as a repeat offender.
    pub slots_revoked: u64,
}

impl EnvAccount {
    /// An unused entry.
    pub const EMPTY: EnvAccount = EnvAccount {
        env: NO_ENV,
        slots_held: 0,
        cpu_ns: [0; MAX_CORES],
        slot_ns: 0,
        donated_ns: 0,
        received_ns: 0,
        unowned_ns: 0,
        donations_given: 0,
        donations_received: 0,
        repossessions: 0,
        forfeits: 0,
        slots_revoked: 0,
    };

    /// A fresh entry for `env`.
    pub const fn new(env: EnvId) -> Self {
        EnvAccount {
            env: env.0,
            ..EnvAccount::EMPTY
        }
    }

    /// CPU time over all cores.
    pub fn cpu_total_ns(&self) -> u64 {
        self.cpu_ns.iter().fold(0u64, |a, &b| a.saturating_add(b))
    }
}

/// Why an accounting operation failed (nothing was changed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountError {
    /// No entry for this environment.
    UnknownEnv(EnvId),
    /// The core number is not below [`MAX_CORES`].
    NoSuchCore(usize),
    /// All [`MAX_ENVS`] entries are in use.
    Full,
    AlreadyOpen(EnvId),
    /// [`NO_ENV`] is not an environment.
    Reserved,
}

/// The accounting of every environment: plain data of fixed size (about
/// 70 KiB; make it `const`ly, e.g. in a static, not on a small stack).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Accounting {
    /// Entry `i`'s environment (dense, for a quick search), [`NO_ENV`] if
    /// unused. Mirrors `accounts[i].env`.
    ids: [u32; MAX_ENVS],
    accounts: [EnvAccount; MAX_ENVS],
}

impl Default for Accounting {
    fn default() -> Self {
        Accounting::new()
    }
}

impl Accounting {
    /// No environments.
    pub const fn new() -> Self {
        Accounting {
            ids: [NO_ENV; MAX_ENVS],
            accounts: [EnvAccount::EMPTY; MAX_ENVS],
        }
    }

    fn index(&self, env: EnvId) -> Result<usize, AccountError> {
        if env.0 == NO_ENV {
            return Err(AccountError::UnknownEnv(env));
        }
        self.ids
            .iter()
            .position(|&e| e == env.0)
            .ok_or(AccountError::UnknownEnv(env))
    }

    /// Starts accounting for `env`; returns its entry's index (stable until
    /// [`Self::close`]; the kernel may export entries by index).
    pub fn open(&mut self, env: EnvId) -> Result<usize, AccountError> {
        if env.0 == NO_ENV {
            return Err(AccountError::Reserved);
        }
        if self.index(env).is_ok() {
            return Err(AccountError::AlreadyOpen(env));
        }
        let i = self
            .ids
            .iter()
            .position(|&e| e == NO_ENV)
            .ok_or(AccountError::Full)?;
        self.ids[i] = env.0;
        self.accounts[i] = EnvAccount::new(env);
        Ok(i)
    }

    /// Stops accounting for `env`; returns its final figures.
    pub fn close(&mut self, env: EnvId) -> Result<EnvAccount, AccountError> {
        let i = self.index(env)?;
        self.ids[i] = NO_ENV;
        Ok(core::mem::replace(&mut self.accounts[i], EnvAccount::EMPTY))
    }

    /// `env`'s figures.
    pub fn get(&self, env: EnvId) -> Option<&EnvAccount> {
        self.index(env).ok().map(|i| &self.accounts[i])
    }

    /// Entries in use.
    pub fn iter(&self) -> impl Iterator<Item = &EnvAccount> + '_ {
        self.accounts.iter().filter(|a| a.env != NO_ENV)
    }

    /// All entries, by index (unused ones have `env == NO_ENV`): the layout
    /// to export.
    pub fn entries(&self) -> &[EnvAccount; MAX_ENVS] {
        &self.accounts
    }

    /// Charges `ns` of a turn on `core` (Xok's directed-yield rule): the
    /// CPU time to `runner`, whoever ran; the slot time to `slot_owner`
    /// (`None`: an unowned slot, e.g. the default environment's turn). When
    /// they differ the owner donated and the runner received.
    pub fn charge(
        &mut self,
        slot_owner: Option<EnvId>,
        runner: EnvId,
        core: usize,
        ns: u64,
    ) -> Result<(), AccountError> {
        if core >= MAX_CORES {
            return Err(AccountError::NoSuchCore(core));
        }
        let r = self.index(runner)?;
        let o = slot_owner.map(|o| self.index(o)).transpose()?;
        let run = &mut self.accounts[r];
        run.cpu_ns[core] = run.cpu_ns[core].saturating_add(ns);
        match o {
            None => run.unowned_ns = run.unowned_ns.saturating_add(ns),
            Some(o) if o == r => run.slot_ns = run.slot_ns.saturating_add(ns),
            Some(o) => {
                run.received_ns = run.received_ns.saturating_add(ns);
                let own = &mut self.accounts[o];
                own.slot_ns = own.slot_ns.saturating_add(ns);
                own.donated_ns = own.donated_ns.saturating_add(ns);
            }
        }
        Ok(())
    }

    fn bump(&mut self, env: EnvId, f: impl FnOnce(&mut EnvAccount)) -> Result<(), AccountError> {
        let i = self.index(env)?;
        f(&mut self.accounts[i]);
        Ok(())
    }

    /// `from` made a directed yield to `to`.
    pub fn record_donation(&mut self, from: EnvId, to: EnvId) -> Result<(), AccountError> {
        let (f, t) = (self.index(from)?, self.index(to)?);
        self.accounts[f].donations_given += 1;
        self.accounts[t].donations_received += 1;
        Ok(())
    }

    /// `env` forfeited a turn to debt (e.g. from [`crate::Walk::forfeited`]).
    pub fn record_forfeit(&mut self, env: EnvId) -> Result<(), AccountError> {
        self.bump(env, |a| a.forfeits += 1)
    }

    /// A core was taken back from `env` by force; `lost_slot` if it lost
    /// the slot as a repeat offender.
    pub fn record_repossession(&mut self, env: EnvId, lost_slot: bool) -> Result<(), AccountError> {
        self.bump(env, |a| {
            a.repossessions += 1;
            a.slots_revoked += u64::from(lost_slot);
        })
    }

    /// `env` now holds `slots` slots across all cores (e.g.
    /// [`crate::Quota::held`]).
    pub fn set_slots_held(&mut self, env: EnvId, slots: u32) -> Result<(), AccountError> {
        self.bump(env, |a| a.slots_held = slots)
    }
}
