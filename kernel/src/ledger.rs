//! Every core's time ledger: from the start of a run, each nanosecond of a
//! core is charged once — to an environment, to idle, or to the kernel
//! itself (the gaps between charges: decisions, switches, upcall entry).
//! Charges go through here in time order on their own core, so the ledger
//! sees a charge that begins before the previous one ended (time counted
//! twice), and `audit` cross-checks the per-environment accounts that
//! libOSes read (`EnvAccount::cpu_ns`) against what was charged, exactly.
//!
//! A charge costs a few relaxed atomics and no lock; `audit` runs on core
//! 0's monitor (see `run`) and never blocks a charging core: it retries a
//! core whose charge was in flight.
#![deny(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use abi::shared::{MAX_CORES, MAX_ENVS};

use crate::arch::smp;
use crate::exported;

struct CoreLedger {
    /// Odd while a charge is being written (a seqlock for `audit`).
    seq: AtomicU64,
    /// Everything before this instant is charged.
    until: AtomicU64,
    /// Charged to environments, dead ones included.
    env_ns: AtomicU64,
    /// Not charged to anyone: the kernel's own time.
    kernel_ns: AtomicU64,
    /// Charges that began before the previous one ended, and by how much.
    overlaps: AtomicU64,
    overlap_ns: AtomicU64,
    /// CPU time of environments whose accounts were reset for a new
    /// environment in the same table slot.
    retired_ns: AtomicU64,
}

static LEDGERS: [CoreLedger; MAX_CORES] = [const {
    CoreLedger {
        seq: AtomicU64::new(0),
        until: AtomicU64::new(0),
        env_ns: AtomicU64::new(0),
        kernel_ns: AtomicU64::new(0),
        overlaps: AtomicU64::new(0),
        overlap_ns: AtomicU64::new(0),
        retired_ns: AtomicU64::new(0),
    }
}; MAX_CORES];

/// Changes while an account is being reset (odd: in progress).
static ACCOUNT_RESETS: AtomicU64 = AtomicU64::new(0);
static START_NS: AtomicU64 = AtomicU64::new(0);

/// What a charge pays for.
pub enum Charge<'a> {
    /// An environment, by its account.
    Env(&'a abi::shared::EnvAccount),
    Idle,
}

/// Opens every core's ledger at `now` (the start of the run).
pub fn start(now: u64) {
    START_NS.store(now, Ordering::Relaxed);
    for l in LEDGERS.iter().take(smp::cores()) {
        l.until.store(now, Ordering::Relaxed);
    }
}

/// Charges `[from, to)` on this core `core` to `to_whom`; the gap since the
/// previous charge is the kernel's.
pub fn charge(core: usize, from: u64, to: u64, to_whom: Charge<'_>) {
    debug_assert_eq!(
        core,
        crate::arch::percpu::core_id(),
        "charges are made on their own core"
    );
    let l = &LEDGERS[core];
    let ran = to.saturating_sub(from);
    l.seq.fetch_add(1, Ordering::AcqRel);
    let until = l.until.load(Ordering::Relaxed);
    if from >= until {
        l.kernel_ns.fetch_add(from - until, Ordering::Relaxed);
    } else {
        l.overlaps.fetch_add(1, Ordering::Relaxed);
        l.overlap_ns.fetch_add(until - from, Ordering::Relaxed);
    }
    match to_whom {
        Charge::Env(account) => {
            account.cpu_ns[core].fetch_add(ran, Ordering::Relaxed);
            l.env_ns.fetch_add(ran, Ordering::Relaxed);
        }
        Charge::Idle => {
            exported::core_slices_of(core)
                .idle_ns
                .fetch_add(ran, Ordering::Relaxed);
        }
    }
    exported::core_slices_of(core)
        .kernel_ns
        .store(l.kernel_ns.load(Ordering::Relaxed), Ordering::Relaxed);
    l.until.store(until.max(to), Ordering::Relaxed);
    l.seq.fetch_add(1, Ordering::Release);
}

/// Zeroes environment-table slot `slot`'s account for a new environment
/// `id`, first moving its CPU time to the retired totals (the ledger's
/// figures add up across environments that come and go).
pub fn reset_account(slot: usize, id: u32, name: &str) {
    let a = exported::account(slot);
    ACCOUNT_RESETS.fetch_add(1, Ordering::AcqRel);
    for (core, c) in a.cpu_ns.iter().enumerate().take(smp::cores()) {
        LEDGERS[core]
            .retired_ns
            .fetch_add(c.load(Ordering::Relaxed), Ordering::Relaxed);
    }
    for c in a.cpu_ns.iter() {
        c.store(0, Ordering::Relaxed);
    }
    ACCOUNT_RESETS.fetch_add(1, Ordering::Release);
    exported::reset_account_counters(a, id, name);
}

/// Time since the run started ([`start`]).
pub fn elapsed_ns() -> u64 {
    crate::arch::time::now_ns() - START_NS.load(Ordering::Relaxed)
}

/// One audit of the whole machine.
#[derive(Clone, Copy, Debug, Default)]
pub struct Audit {
    pub elapsed_ns: u64,
    /// Core time since the start, over all cores.
    pub core_ns: u64,
    /// Charged to environments according to their own accounts.
    pub env_ns: u64,
    pub idle_ns: u64,
    pub kernel_ns: u64,
    /// Not yet charged (turns in progress).
    pub in_flight_ns: u64,
    /// Cores whose environments' accounts disagree with the ledger.
    pub mismatched_cores: u32,
    /// The largest such disagreement.
    pub mismatch_ns: u64,
    pub overlaps: u64,
    pub overlap_ns: u64,
    /// Cores skipped because a charge stayed in flight.
    pub skipped_cores: u32,
}

impl Audit {
    /// |accounted − core time| as a fraction of core time, where
    /// accounted = environments' accounts + idle + kernel + in flight.
    pub fn conservation_error(&self) -> f64 {
        let accounted = self.env_ns + self.idle_ns + self.kernel_ns + self.in_flight_ns;
        accounted.abs_diff(self.core_ns) as f64 / self.core_ns.max(1) as f64
    }
}

/// Reads every core's ledger and the environments' accounts. Each core is
/// read against the clock taken with its own view: the auditing core may be
/// descheduled between two cores for longer than a turn (a vCPU on a busy
/// host), and one `now` for all would then count the others' later charges
/// against an earlier instant.
pub fn audit() -> Audit {
    let start = START_NS.load(Ordering::Relaxed);
    let mut a = Audit {
        elapsed_ns: crate::arch::time::now_ns().saturating_sub(start),
        ..Audit::default()
    };
    for (core, l) in LEDGERS.iter().enumerate().take(smp::cores()) {
        let Some(view) = (0..64).find_map(|_| read_core(core, l)) else {
            a.skipped_cores += 1;
            continue;
        };
        a.core_ns += view.now.saturating_sub(start);
        a.env_ns += view.accounts_ns;
        a.idle_ns += view.idle_ns;
        a.kernel_ns += view.kernel_ns;
        a.in_flight_ns += view.now.saturating_sub(view.until);
        if view.accounts_ns != view.ledger_env_ns {
            a.mismatched_cores += 1;
            a.mismatch_ns = a
                .mismatch_ns
                .max(view.accounts_ns.abs_diff(view.ledger_env_ns));
        }
        a.overlaps += l.overlaps.load(Ordering::Relaxed);
        a.overlap_ns += l.overlap_ns.load(Ordering::Relaxed);
    }
    a
}

struct CoreView {
    /// The clock, read after the rest (so at or after `until`).
    now: u64,
    until: u64,
    ledger_env_ns: u64,
    accounts_ns: u64,
    idle_ns: u64,
    kernel_ns: u64,
}

/// A consistent view of one core, or `None` if a charge or an account
/// reset raced with the reading.
fn read_core(core: usize, l: &CoreLedger) -> Option<CoreView> {
    let resets = ACCOUNT_RESETS.load(Ordering::Acquire);
    let seq = l.seq.load(Ordering::Acquire);
    if seq % 2 == 1 || resets % 2 == 1 {
        core::hint::spin_loop();
        return None;
    }
    let mut view = CoreView {
        now: 0,
        until: l.until.load(Ordering::Relaxed),
        ledger_env_ns: l.env_ns.load(Ordering::Relaxed),
        accounts_ns: l.retired_ns.load(Ordering::Relaxed)
            + (0..MAX_ENVS)
                .map(|slot| exported::account(slot).cpu_ns[core].load(Ordering::Relaxed))
                .sum::<u64>(),
        idle_ns: exported::core_slices_of(core)
            .idle_ns
            .load(Ordering::Relaxed),
        kernel_ns: l.kernel_ns.load(Ordering::Relaxed),
    };
    view.now = crate::arch::time::now_ns();
    let unchanged =
        l.seq.load(Ordering::Acquire) == seq && ACCOUNT_RESETS.load(Ordering::Acquire) == resets;
    unchanged.then_some(view)
}
