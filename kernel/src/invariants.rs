//! Invariants checked continuously while environments run (every run, not
//! only the soak): time is conserved on every core (the ledger), an
//! environment that exits gives back every frame and slot (and its kernel
//! state, checked at the end of the run), and once every
//! environment is gone the machine is back to its baseline.
//!
//! Core 0's monitor calls `on_monitor` at every decision and tick; the
//! audit itself runs every `AUDIT_PERIOD_NS`. A violation is printed at
//! once as a failed `check` record with its time (the first few of each
//! kind); the end of the run adds one summary record and a check per
//! invariant.
#![deny(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use abi::record::RecordKind;

use crate::arch::{mm, smp};
use crate::ledger::{self, Audit};
use crate::{env, exported, record};

const AUDIT_PERIOD_NS: u64 = 100_000_000;
/// The conservation bound: accounted time within 0.1% of core time.
const CONSERVATION_BOUND: f64 = 0.001;
/// Violation records printed per invariant (all are counted).
const PRINTED_PER_KIND: u64 = 5;

/// One checked invariant: how often it was checked and violated.
struct Invariant {
    name: &'static str,
    checks: AtomicU64,
    violations: AtomicU64,
}

impl Invariant {
    const fn new(name: &'static str) -> Invariant {
        Invariant {
            name,
            checks: AtomicU64::new(0),
            violations: AtomicU64::new(0),
        }
    }

    /// Counts one check; prints a failed check record when `ok` is false.
    fn check(&self, ok: bool, detail: core::fmt::Arguments<'_>) {
        self.checks.fetch_add(1, Ordering::Relaxed);
        if ok {
            return;
        }
        if self.violations.fetch_add(1, Ordering::Relaxed) < PRINTED_PER_KIND {
            let t = ledger::elapsed_ns();
            record::check(
                "invariants",
                self.name,
                false,
                format_args!(
                    "at t={}.{:03}s: {detail}",
                    t / 1_000_000_000,
                    t / 1_000_000 % 1000
                ),
            );
        }
    }
}

static TIME_CONSERVED: Invariant = Invariant::new("time_conserved");
static ACCOUNTS_MATCH_LEDGER: Invariant = Invariant::new("accounts_match_ledger");
static NO_TIME_CHARGED_TWICE: Invariant = Invariant::new("no_time_charged_twice");
static EXITED_ENV_RETURNS_FRAMES: Invariant = Invariant::new("exited_env_returns_frames");
static EXITED_ENV_RETURNS_SLOTS: Invariant = Invariant::new("exited_env_returns_slots");
static BASELINE_WHEN_ALL_GONE: Invariant = Invariant::new("baseline_when_all_gone");
static REAPED_ENV_STATE_FREED: Invariant = Invariant::new("reaped_env_state_freed");

static ALL: [&Invariant; 7] = [
    &TIME_CONSERVED,
    &ACCOUNTS_MATCH_LEDGER,
    &NO_TIME_CHARGED_TWICE,
    &EXITED_ENV_RETURNS_FRAMES,
    &EXITED_ENV_RETURNS_SLOTS,
    &BASELINE_WHEN_ALL_GONE,
    &REAPED_ENV_STATE_FREED,
];

static NEXT_AUDIT_NS: AtomicU64 = AtomicU64::new(0);
/// Free frames before the first environment was created.
static BASELINE_FREE_FRAMES: AtomicU64 = AtomicU64::new(0);
/// Environments reaped so far, and how many of them the baseline check has seen.
static REAPED: AtomicU64 = AtomicU64::new(0);
static REAPED_AT_LAST_BASELINE: AtomicU64 = AtomicU64::new(0);
static OVERLAPS_SEEN: AtomicU64 = AtomicU64::new(0);

/// Environments reaped so far.
pub fn reaped() -> u64 {
    REAPED.load(Ordering::Acquire)
}

/// Records the machine's baseline; call before the first environment is created.
pub fn set_baseline() {
    BASELINE_FREE_FRAMES.store(mm::free_frames(), Ordering::Relaxed);
}

/// Core 0's monitor, at `now`. `slots_owned` counts the slots owned in
/// every core's vector (the scheduler's: it sits above this module).
pub fn on_monitor(now: u64, slots_owned: fn() -> usize) {
    let next = NEXT_AUDIT_NS.load(Ordering::Relaxed);
    if now < next {
        return;
    }
    NEXT_AUDIT_NS.store(now + AUDIT_PERIOD_NS, Ordering::Relaxed);
    audit_time();
    let reaped = REAPED.load(Ordering::Acquire);
    if reaped != REAPED_AT_LAST_BASELINE.load(Ordering::Relaxed) && env::all_reaped() {
        REAPED_AT_LAST_BASELINE.store(reaped, Ordering::Relaxed);
        check_baseline(slots_owned);
    }
}

fn audit_time() -> Audit {
    let a = ledger::audit();
    if a.skipped_cores == 0 {
        let err = a.conservation_error();
        TIME_CONSERVED.check(
            err <= CONSERVATION_BOUND,
            format_args!(
                "accounted {} ns of {} ns core time (error {:.5})",
                a.env_ns + a.idle_ns + a.kernel_ns + a.in_flight_ns,
                a.core_ns,
                err
            ),
        );
        ACCOUNTS_MATCH_LEDGER.check(
            a.mismatched_cores == 0,
            format_args!(
                "{} cores' environment accounts differ from their ledgers, by up to {} ns",
                a.mismatched_cores, a.mismatch_ns
            ),
        );
    }
    let before = OVERLAPS_SEEN.swap(a.overlaps, Ordering::Relaxed);
    NO_TIME_CHARGED_TWICE.check(
        a.overlaps == before,
        format_args!(
            "{} charges overlapped the previous one ({} ns in all)",
            a.overlaps, a.overlap_ns
        ),
    );
    a
}

/// Every environment is gone: every frame and slot must be free again.
fn check_baseline(slots_owned: fn() -> usize) {
    let baseline = BASELINE_FREE_FRAMES.load(Ordering::Relaxed);
    let free = mm::free_frames();
    let (owned, shown) = (slots_owned(), exported::slots_owned_by(None));
    BASELINE_WHEN_ALL_GONE.check(
        free == baseline && owned == 0 && shown == 0,
        format_args!("free frames {free} (baseline {baseline}), {owned} slots still owned ({shown} in the exported vectors)"),
    );
}

/// An environment was reaped: `freed` of its `owned` frames went back to
/// the allocator. Lock-free (reaping happens under core locks).
pub fn on_reaped(id: u32, owned: usize, freed: usize) {
    EXITED_ENV_RETURNS_FRAMES.check(
        freed == owned,
        format_args!("env {id}: {freed} of {owned} frames returned"),
    );
    let slots = exported::slots_owned_by(Some(id));
    EXITED_ENV_RETURNS_SLOTS.check(
        slots == 0,
        format_args!("env {id}: still owns {slots} slots"),
    );
    REAPED.fetch_add(1, Ordering::Release);
}

/// End of the run: one last audit, a summary record, one check per
/// invariant (`slots_owned` as for [`on_monitor`]).
pub fn finish(slots_owned: fn() -> usize) -> bool {
    let a = audit_time();
    if env::all_reaped() {
        check_baseline(slots_owned);
    }
    // With the other cores parked nothing holds a reference for a moment
    // only: every environment object left is in the table.
    let (objects, live) = (env::objects(), env::in_table());
    REAPED_ENV_STATE_FREED.check(
        objects == live,
        format_args!(
            "{objects} environment objects for {live} environments ({} reaped)",
            REAPED.load(Ordering::Relaxed)
        ),
    );
    let pct = |ns: u64| 100.0 * ns as f64 / a.core_ns.max(1) as f64;
    let mut checked = alloc::string::String::new();
    for (i, inv) in ALL.iter().enumerate() {
        use core::fmt::Write;
        let _ = write!(
            checked,
            "{}\"{}\":[{},{}]",
            if i == 0 { "" } else { "," },
            inv.name,
            inv.checks.load(Ordering::Relaxed),
            inv.violations.load(Ordering::Relaxed)
        );
    }
    record::emit(
        RecordKind::Invariants,
        format_args!(
            "\"t_ns\":{},\"cores\":{},\"core_ns\":{},\"env_pct\":{:.3},\"idle_pct\":{:.3},\"kernel_pct\":{:.3},\"in_flight_ns\":{},\"conservation_error\":{:.6},\"environments_reaped\":{},\"checked\":{{{checked}}}",
            a.elapsed_ns,
            smp::cores(),
            a.core_ns,
            pct(a.env_ns),
            pct(a.idle_ns),
            pct(a.kernel_ns),
            a.in_flight_ns,
            a.conservation_error(),
            REAPED.load(Ordering::Relaxed),
        ),
    );
    let mut ok = true;
    for inv in ALL {
        let (n, bad) = (
            inv.checks.load(Ordering::Relaxed),
            inv.violations.load(Ordering::Relaxed),
        );
        ok &= record::check(
            "invariants",
            inv.name,
            bad == 0,
            format_args!("{bad} violations in {n} checks"),
        );
    }
    ok
}
