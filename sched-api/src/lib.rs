//! The policy seam of the libOS: one small trait that stride, lottery,
//! round robin and EEVDF implement, so an application can swap its
//! scheduler at run time without losing a thread.
//!
//! # Fairness across a swap
//!
//! Every policy keeps, for every thread, a *virtual time* in one shared,
//! policy-neutral unit: `VT_SCALE` per nanosecond of service per ticket of
//! effective weight. A [`Snapshot`] carries each thread's virtual time and
//! the system's virtual time `global_vtime`; their difference is the
//! thread's *lag*: negative when the thread is owed service, positive when
//! it is ahead, and `-lag * weight / VT_SCALE` is the service it is owed in
//! ns. A sleeping thread's lag is frozen (the "remaining pass" of stride
//! scheduling), so nobody gains or loses by sleeping either.
//!
//! Each policy measures lag against what *it* promises: stride and lottery
//! against the weighted share (made feasible on P cores, see
//! [`feasible_weights`]), round robin against an equal share (it ignores
//! weights by design). A swap moves every lag unchanged, so the new policy
//! starts each thread exactly where its service says it should be; time
//! spent under round robin is not billed afterwards as weighted debt.
//! Stride uses the virtual time directly as its pass, so a stride → stride
//! round trip is exact.
//!
//! # Composition
//!
//! This crate cannot name the policies (they depend on it), so there is no
//! list of them here: each policy crate declares its identity, capabilities
//! and constructor as a [`PolicyInfo`], and the crate `sched-registry` lists
//! every policy once; everything else (the libOS, the kernel's command line,
//! the runner) derives names and constructors from it and swaps with
//! [`swap`].
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

pub mod feasible;
pub mod heap;
pub mod info;
pub mod lazy;
pub mod ledger;
pub mod sim;
pub mod table;

pub use feasible::{feasible_weights, Cap, Ratio};
pub use info::{Entitlement, Params, PolicyInfo, PolicyKind};
pub use ledger::{Ledger, VtMemo};

/// Virtual time of one ns of service at one ticket of effective weight.
pub const VT_SCALE: u128 = 1 << 32;

/// Largest core count a policy accepts (core ids are `0..MAX_CORES`).
pub const MAX_CORES: usize = 4096;

/// A thread, as the policies name it (the libOS's own thread or
/// environment number).
pub type ThreadId = u32;

/// A core index, `0..MAX_CORES`.
pub type CoreId = usize;

/// Where a thread is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadState {
    /// Wants a core and has none.
    Runnable,
    /// Picked for this core and not charged yet.
    Running(CoreId),
    /// Blocked until [`Policy::wake`].
    Sleeping,
}

/// How a run ended, for [`Policy::charge`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// The quantum ran out (or the slice was revoked): stays runnable.
    Preempted,
    /// The thread gave the core up early: stays runnable.
    Yielded,
    /// The thread blocked: it sleeps until woken.
    Blocked,
    /// The thread ended: the policy forgets it.
    Exited,
}

/// Why a call was refused. Every public function of the policies reports
/// bad input with one of these and leaves its state unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedError {
    /// No thread with that id.
    UnknownThread,
    /// `add` of an id that is already there.
    DuplicateThread,
    /// A weight (tickets, funding) of 0.
    ZeroWeight,
    /// `charge` for a thread that is not running on that core.
    NotRunning,
    /// The operation needs a thread that is not running (charge it first).
    AlreadyRunning,
    /// `wake` (or a transfer) needs a sleeping thread.
    NotSleeping,
    /// `sleep` of a thread that already sleeps.
    AlreadySleeping,
    /// `pick` on a core whose thread has not been charged yet.
    CoreBusy,
    /// A core id of `MAX_CORES` or more.
    BadCore,
    /// A core count of 0 or more than `MAX_CORES`.
    BadCores,
    /// A quantum of 0 ns.
    BadQuantum,
    /// A snapshot naming a thread twice, with a zero weight, or with two
    /// threads running on one core.
    BadSnapshot,
    /// Lottery: no currency with that id.
    UnknownCurrency,
    /// Lottery: the currency still funds threads or other currencies.
    CurrencyInUse,
    /// Lottery: the transfer would lend a thread's tickets to itself.
    TransferCycle,
    /// Lottery: `take_back` of a thread that lends nothing.
    NotLending,
    /// The policy has no such operation (ticket transfers outside lottery).
    Unsupported,
}

impl fmt::Display for SchedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            SchedError::UnknownThread => "unknown thread",
            SchedError::DuplicateThread => "thread already added",
            SchedError::ZeroWeight => "weight must be at least 1",
            SchedError::NotRunning => "thread is not running on that core",
            SchedError::AlreadyRunning => "thread is running",
            SchedError::NotSleeping => "thread is not sleeping",
            SchedError::AlreadySleeping => "thread already sleeps",
            SchedError::CoreBusy => "core still has a running thread",
            SchedError::BadCore => "core id out of range",
            SchedError::BadCores => "core count out of range",
            SchedError::BadQuantum => "quantum must be at least 1 ns",
            SchedError::BadSnapshot => "inconsistent snapshot",
            SchedError::UnknownCurrency => "unknown currency",
            SchedError::CurrencyInUse => "currency still in use",
            SchedError::TransferCycle => "transfer would form a cycle",
            SchedError::NotLending => "thread lends nothing",
            SchedError::Unsupported => "the policy does not support this",
        };
        f.write_str(s)
    }
}

/// A ticket currency's id (see [`Policy::create_currency`]).
pub type CurrencyId = u32;

/// The base currency: one of its tickets is one unit of weight, what every
/// policy without currencies counts in.
pub const BASE_CURRENCY: CurrencyId = 0;

/// Everything a policy knows about one thread, in neutral terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadRecord {
    pub id: ThreadId,
    /// Tickets, as given to `add`/`set_weight` (at least 1), in the base
    /// currency: a thread in another currency carries what its tickets are
    /// worth in base tickets, so that a policy without currencies gives it
    /// the same share.
    pub weight: u32,
    pub state: ThreadState,
    /// CPU time received, exactly the sum of what was charged.
    pub service_ns: u64,
    /// Virtual time (see the crate docs); for a sleeper, the global
    /// virtual time plus its frozen lag.
    pub vtime: i128,
}

impl ThreadRecord {
    /// The record of a thread whose policy keeps `time` as its virtual
    /// time while it is active and as its lag while it sleeps (stride's
    /// pass, EEVDF's eligible time, lottery's virtual time), the system's
    /// virtual time being `global`.
    pub fn keeping_lag(
        id: ThreadId,
        weight: u32,
        state: ThreadState,
        service_ns: u64,
        time: i128,
        global: i128,
    ) -> ThreadRecord {
        let vtime = match state {
            ThreadState::Sleeping => global.saturating_add(time),
            _ => time,
        };
        ThreadRecord {
            id,
            weight,
            state,
            service_ns,
            vtime,
        }
    }
}

/// The whole state of a policy, for a swap.
///
/// `threads` lists runnable threads first, in the exporting policy's order
/// of preference (round robin keeps this as its queue order), then running
/// and sleeping ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The system's virtual time.
    pub global_vtime: i128,
    pub threads: Vec<ThreadRecord>,
}

impl Snapshot {
    /// Checks ids are unique, weights non-zero, cores in range and no core
    /// runs two threads.
    ///
    /// One pass, no allocation: the cores seen and the ids seen, one bit
    /// each (cores are under `MAX_CORES`; ids usually are too, the libOS
    /// numbering its threads by slot). Only ids beyond that are sorted, as
    /// every id and every core were before (two lists made and sorted for
    /// every swap).
    pub fn validate(&self) -> Result<(), SchedError> {
        const BITS: usize = MAX_CORES;
        let mut cores = [0u64; BITS / 64];
        let mut ids = [0u64; BITS / 64];
        let mut large = 0;
        for t in &self.threads {
            let core_ok = match t.state {
                ThreadState::Running(c) => c < BITS && first_time(&mut cores, c),
                _ => true,
            };
            let id_ok = match usize::try_from(t.id) {
                Ok(i) if i < BITS => first_time(&mut ids, i),
                _ => {
                    large += 1;
                    true
                }
            };
            if !core_ok || !id_ok || t.weight == 0 {
                return Err(SchedError::BadSnapshot);
            }
        }
        if large > 1 {
            let mut ids: Vec<ThreadId> = Vec::with_capacity(large);
            ids.extend(
                self.threads
                    .iter()
                    .map(|t| t.id)
                    .filter(|&id| usize::try_from(id).map_or(true, |i| i >= BITS)),
            );
            ids.sort_unstable();
            if ids.windows(2).any(|w| w[0] == w[1]) {
                return Err(SchedError::BadSnapshot);
            }
        }
        Ok(())
    }

    /// `thread`'s lag: its virtual time minus the global one (negative:
    /// owed service).
    pub fn lag(&self, thread: &ThreadRecord) -> i128 {
        thread.vtime.saturating_sub(self.global_vtime)
    }

    /// A snapshot at `global_vtime` of `records`, in their order, with
    /// room made for `len` of them at once (an export knows how many it
    /// lists: collected from a filtering iterator the list grew by
    /// doubling, a copy each step).
    pub fn with_records(
        global_vtime: i128,
        len: usize,
        records: impl Iterator<Item = ThreadRecord>,
    ) -> Snapshot {
        let mut threads = Vec::with_capacity(len);
        threads.extend(records);
        Snapshot {
            global_vtime,
            threads,
        }
    }

    /// The id and weight of every thread that is not sleeping (the
    /// weights a policy's ledger holds), for [`Ledger::insert_all`].
    pub fn active_weights(&self) -> impl Iterator<Item = (ThreadId, u64)> + '_ {
        self.threads
            .iter()
            .filter(|t| t.state != ThreadState::Sleeping)
            .map(|t| (t.id, u64::from(t.weight)))
    }

    /// The record of `id`.
    pub fn get(&self, id: ThreadId) -> Option<&ThreadRecord> {
        self.threads.iter().find(|t| t.id == id)
    }
}

/// The scheduler interface.
///
/// A policy tracks threads and decides which runs next on each core. The
/// caller (the libOS) owns the cores and the clock; the policy never blocks
/// and never allocates on `pick`/`charge` except when a collection grows.
///
/// The life of a run: `pick(core)` marks the chosen thread `Running(core)`;
/// when the run ends the caller reports the time it actually used with
/// `charge(thread, core, ran_ns, end)`. Rules every policy keeps:
/// - `pick` never returns a thread that is running (on any core) or sleeping;
/// - `pick` returns a thread whenever some thread is runnable and the core
///   is free (no core idles while a thread waits);
/// - only what was used is charged: a thread that ran half a quantum pays
///   half;
/// - every call with bad input returns a [`SchedError`] and changes nothing.
///
/// Queries: [`Policy::record`] for one thread, [`Policy::len`], and
/// [`Policy::export`] for every record at once (it allocates; keep it off
/// the hot path).
pub trait Policy: Send {
    /// Which policy this is.
    fn kind(&self) -> PolicyKind;

    /// Adds a runnable thread holding `weight` tickets (at least 1). It
    /// starts with zero lag.
    fn add(&mut self, id: ThreadId, weight: u32) -> Result<(), SchedError>;

    /// Removes a thread in any state and returns its last record. A running
    /// thread's core becomes free.
    fn remove(&mut self, id: ThreadId) -> Result<ThreadRecord, SchedError>;

    /// Chooses a thread for the free core `core` and marks it running there;
    /// `Ok(None)` when no thread is runnable. Errors: `BadCore`, `CoreBusy`
    /// (the core's last thread was not charged).
    fn try_pick(&mut self, core: CoreId) -> Result<Option<ThreadId>, SchedError>;

    /// [`Policy::try_pick`] with errors read as "nothing to run".
    fn pick(&mut self, core: CoreId) -> Option<ThreadId> {
        self.try_pick(core).ok().flatten()
    }

    /// Charges `id`, running on `core`, the `ran_ns` it actually used, and
    /// ends its run as `end` says.
    fn charge(
        &mut self,
        id: ThreadId,
        core: CoreId,
        ran_ns: u64,
        end: RunEnd,
    ) -> Result<(), SchedError>;

    /// A runnable thread goes to sleep, keeping its lag. (A running thread
    /// blocks through `charge(.., RunEnd::Blocked)`.)
    fn sleep(&mut self, id: ThreadId) -> Result<(), SchedError>;

    /// A sleeping thread becomes runnable with the lag it had.
    fn wake(&mut self, id: ThreadId) -> Result<(), SchedError>;

    /// Ticket transfer: sleeping `from` lends its tickets to `to` (a thread
    /// blocked on a lock lends them to the holder) until
    /// [`take_back`](Policy::take_back). Lottery implements it; the others
    /// say [`SchedError::Unsupported`].
    fn lend(&mut self, from: ThreadId, to: ThreadId) -> Result<(), SchedError> {
        let _ = (from, to);
        Err(SchedError::Unsupported)
    }

    /// Ends `from`'s loan (before it wakes).
    fn take_back(&mut self, from: ThreadId) -> Result<(), SchedError> {
        let _ = from;
        Err(SchedError::Unsupported)
    }

    /// Currencies (lottery's; see [`PolicyInfo::currencies`]): a new
    /// currency funded by `funding` tickets of `parent` ([`BASE_CURRENCY`]
    /// or one made here). A thread's tickets in it are worth their share of
    /// its active issue times its value, so issuing more inside it dilutes
    /// only it. The others say [`SchedError::Unsupported`].
    fn create_currency(
        &mut self,
        parent: CurrencyId,
        funding: u32,
    ) -> Result<CurrencyId, SchedError> {
        let _ = (parent, funding);
        Err(SchedError::Unsupported)
    }

    /// Changes how many of its parent's tickets fund `currency`.
    fn fund_currency(&mut self, currency: CurrencyId, funding: u32) -> Result<(), SchedError> {
        let _ = (currency, funding);
        Err(SchedError::Unsupported)
    }

    /// Gives thread `id` `tickets` of `currency` in place of what it
    /// holds: a change of denomination, its lag kept as it is (in virtual
    /// time, so the service it is owed follows its new worth; unlike
    /// [`Policy::set_weight`], which keeps the service owed).
    fn move_to_currency(
        &mut self,
        id: ThreadId,
        currency: CurrencyId,
        tickets: u32,
    ) -> Result<(), SchedError> {
        let _ = (id, currency, tickets);
        Err(SchedError::Unsupported)
    }

    /// Changes a thread's tickets; the service it is owed or is ahead by is
    /// kept (its lag is rescaled, as stride scheduling prescribes).
    fn set_weight(&mut self, id: ThreadId, weight: u32) -> Result<(), SchedError>;

    /// Sets the number of cores P that shares are computed for (weights
    /// asking for more than one core are capped, see [`feasible_weights`]).
    fn set_cores(&mut self, cores: usize) -> Result<(), SchedError>;

    /// The number of cores shares are computed for.
    fn cores(&self) -> usize;

    /// The quantum this policy intends; a run should not exceed it.
    fn quantum_ns(&self) -> u64;

    /// The whole state, policy-neutral.
    fn export(&self) -> Snapshot;

    /// Replaces the whole state with `snapshot`: every thread keeps its
    /// weight, state (a thread running on core c stays running on c and is
    /// charged as usual), service and lag. On error nothing changes.
    fn import(&mut self, snapshot: Snapshot) -> Result<(), SchedError>;

    /// One thread's record.
    fn record(&self, id: ThreadId) -> Option<ThreadRecord>;

    /// Number of threads (in any state).
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Swaps `current` for `next` (a freshly built policy with the quantum and
/// core count wanted): `next` imports `current`'s state and takes its place.
/// On error `current` is unchanged.
///
/// Returns the policy replaced, for the caller to drop where that is
/// cheap: freeing its every table, node and queue is a walk of the
/// allocator's free list each, and the libOS swaps under its runtime lock
/// (dropped there, the old policy was ~5% of a one-core swap's hold).
pub fn swap(
    current: &mut Box<dyn Policy>,
    mut next: Box<dyn Policy>,
) -> Result<Box<dyn Policy>, SchedError> {
    next.import(current.export())?;
    Ok(core::mem::replace(current, next))
}

/// Sets bit `i` of `bits`; whether it was clear.
fn first_time(bits: &mut [u64], i: usize) -> bool {
    let (word, bit) = (i / 64, 1u64 << (i % 64));
    let clear = bits[word] & bit == 0;
    bits[word] |= bit;
    clear
}

/// Checks a core id for `pick`.
pub fn check_core(core: CoreId) -> Result<(), SchedError> {
    if core < MAX_CORES {
        Ok(())
    } else {
        Err(SchedError::BadCore)
    }
}

/// Checks a core count.
pub fn check_cores(cores: usize) -> Result<usize, SchedError> {
    if (1..=MAX_CORES).contains(&cores) {
        Ok(cores)
    } else {
        Err(SchedError::BadCores)
    }
}

/// `a + b`, saturating, as [`i128::saturating_add`]: the overflow test
/// is a branch to a cold path (a virtual time reaches the limits only in
/// tests of the extremes), where the standard one computes the saturated
/// value and selects it on every call (two selects of two halves: ~7
/// instructions a charge each).
#[inline(always)]
pub fn add_sat(a: i128, b: i128) -> i128 {
    match a.checked_add(b) {
        Some(s) => s,
        None => saturated(b),
    }
}

/// The limit an overflowing `_ + b` saturates at.
#[cold]
#[inline(never)]
fn saturated(b: i128) -> i128 {
    if b > 0 {
        i128::MAX
    } else {
        i128::MIN
    }
}

/// `a * b / c` in u128, exact unless the product overflows (then a close
/// approximation, saturating); `c == 0` gives `u128::MAX`.
pub fn mul_div(a: u128, b: u128, c: u128) -> u128 {
    if c == 0 {
        return u128::MAX;
    }
    match a.checked_mul(b) {
        Some(p) => p / c,
        None => (a / c)
            .saturating_mul(b)
            .saturating_add((a % c).saturating_mul(b) / c),
    }
}

/// Signed `a * num / den` (toward zero), saturating.
pub fn scale_signed(a: i128, num: u128, den: u128) -> i128 {
    let m = mul_div(a.unsigned_abs(), num, den).min(i128::MAX as u128) as i128;
    if a < 0 {
        -m
    } else {
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: ThreadId, weight: u32, state: ThreadState) -> ThreadRecord {
        ThreadRecord {
            id,
            weight,
            state,
            service_ns: 0,
            vtime: 0,
        }
    }

    #[test]
    fn snapshots_are_validated() {
        let snap = |threads| Snapshot {
            global_vtime: 0,
            threads,
        };
        use ThreadState::*;
        assert!(snap(vec![r(1, 1, Runnable), r(2, 3, Running(0))])
            .validate()
            .is_ok());
        // Ids on both sides of the bitmap's end, cores at its last.
        assert!(snap(vec![
            r(u32::MAX, 1, Runnable),
            r(4095, 1, Running(MAX_CORES - 1)),
            r(4096, 1, Running(0)),
            r(0, 1, Sleeping),
            r(4097, 1, Sleeping),
        ])
        .validate()
        .is_ok());
        let bad = [
            vec![r(1, 1, Runnable), r(1, 3, Sleeping)],
            vec![r(1, 0, Runnable)],
            vec![r(1, 1, Running(2)), r(2, 1, Running(2))],
            vec![r(1, 1, Running(MAX_CORES))],
            vec![
                r(1, 1, Running(MAX_CORES - 1)),
                r(2, 1, Running(MAX_CORES - 1)),
            ],
            vec![
                r(4095, 1, Runnable),
                r(7, 1, Runnable),
                r(4095, 2, Sleeping),
            ],
            vec![
                r(4096, 1, Runnable),
                r(7, 1, Runnable),
                r(4096, 2, Sleeping),
            ],
            vec![
                r(u32::MAX, 1, Runnable),
                r(9, 1, Running(1)),
                r(u32::MAX, 2, Running(0)),
            ],
        ];
        for threads in bad {
            assert_eq!(snap(threads).validate(), Err(SchedError::BadSnapshot));
        }
    }

    proptest::proptest! {
        /// `validate` says what sorting every id and every core says.
        #[test]
        fn validate_is_the_sorting_check(
            threads in proptest::collection::vec(
                (
                    proptest::prop_oneof![0u32..8, 4090u32..4100, proptest::strategy::Just(u32::MAX)],
                    0u32..3,
                    proptest::prop_oneof![0usize..4, (MAX_CORES - 2)..(MAX_CORES + 2)],
                    0u8..3,
                ),
                0..12,
            ),
        ) {
            let threads: Vec<ThreadRecord> = threads
                .into_iter()
                .map(|(id, weight, core, state)| {
                    let state = match state {
                        0 => ThreadState::Runnable,
                        1 => ThreadState::Running(core),
                        _ => ThreadState::Sleeping,
                    };
                    r(id, weight, state)
                })
                .collect();
            let mut ids: Vec<ThreadId> = threads.iter().map(|t| t.id).collect();
            ids.sort_unstable();
            let mut cores: Vec<CoreId> = threads
                .iter()
                .filter_map(|t| match t.state {
                    ThreadState::Running(c) => Some(c),
                    _ => None,
                })
                .collect();
            cores.sort_unstable();
            let ok = ids.windows(2).all(|w| w[0] != w[1])
                && cores.windows(2).all(|w| w[0] != w[1])
                && cores.iter().all(|&c| c < MAX_CORES)
                && threads.iter().all(|t| t.weight > 0);
            let snap = Snapshot { global_vtime: 0, threads };
            proptest::prop_assert_eq!(snap.validate().is_ok(), ok);
        }
    }

    #[test]
    fn arithmetic_helpers_do_not_panic() {
        assert_eq!(mul_div(10, 3, 4), 7);
        assert_eq!(mul_div(1, 1, 0), u128::MAX);
        assert!(mul_div(u128::MAX, u128::MAX, 3) == u128::MAX);
        assert_eq!(mul_div(u128::MAX, 2, 2), u128::MAX);
        assert_eq!(scale_signed(-10, 3, 4), -7);
        assert_eq!(scale_signed(i128::MIN, 2, 1), -i128::MAX);
        assert_eq!(check_core(MAX_CORES), Err(SchedError::BadCore));
        assert_eq!(check_cores(0), Err(SchedError::BadCores));
        assert_eq!(check_cores(4), Ok(4));
    }

    #[test]
    fn add_sat_is_saturating_add() {
        let edges = [i128::MIN, i128::MIN + 1, -1, 0, 1, i128::MAX - 1, i128::MAX];
        for a in edges {
            for b in edges {
                assert_eq!(add_sat(a, b), a.saturating_add(b), "{a} + {b}");
            }
        }
    }

    /// A policy of one thread (id 1) that refuses every import or none.
    struct One {
        kind: PolicyKind,
        refuses: bool,
        has_thread: bool,
    }

    impl Policy for One {
        fn kind(&self) -> PolicyKind {
            self.kind
        }
        fn add(&mut self, _: ThreadId, _: u32) -> Result<(), SchedError> {
            Err(SchedError::DuplicateThread)
        }
        fn remove(&mut self, _: ThreadId) -> Result<ThreadRecord, SchedError> {
            Err(SchedError::UnknownThread)
        }
        fn try_pick(&mut self, _: CoreId) -> Result<Option<ThreadId>, SchedError> {
            Ok(None)
        }
        fn charge(&mut self, _: ThreadId, _: CoreId, _: u64, _: RunEnd) -> Result<(), SchedError> {
            Err(SchedError::NotRunning)
        }
        fn sleep(&mut self, _: ThreadId) -> Result<(), SchedError> {
            Err(SchedError::UnknownThread)
        }
        fn wake(&mut self, _: ThreadId) -> Result<(), SchedError> {
            Err(SchedError::UnknownThread)
        }
        fn set_weight(&mut self, _: ThreadId, _: u32) -> Result<(), SchedError> {
            Err(SchedError::UnknownThread)
        }
        fn set_cores(&mut self, _: usize) -> Result<(), SchedError> {
            Ok(())
        }
        fn cores(&self) -> usize {
            1
        }
        fn quantum_ns(&self) -> u64 {
            1
        }
        fn export(&self) -> Snapshot {
            let records = self.has_thread.then(|| r(1, 5, ThreadState::Runnable));
            Snapshot::with_records(0, 1, records.into_iter())
        }
        fn import(&mut self, snapshot: Snapshot) -> Result<(), SchedError> {
            if self.refuses {
                return Err(SchedError::BadSnapshot);
            }
            self.has_thread = snapshot.get(1).is_some();
            Ok(())
        }
        fn record(&self, id: ThreadId) -> Option<ThreadRecord> {
            (self.has_thread && id == 1).then(|| r(1, 5, ThreadState::Runnable))
        }
        fn len(&self) -> usize {
            usize::from(self.has_thread)
        }
    }

    fn one(name: &'static str, refuses: bool, has_thread: bool) -> Box<dyn Policy> {
        Box::new(One {
            kind: PolicyKind::new(name),
            refuses,
            has_thread,
        })
    }

    #[test]
    fn a_swap_hands_back_the_old_policy_and_a_refused_one_changes_nothing() {
        let mut current = one("old", false, true);
        let err = swap(&mut current, one("refuses", true, false)).map(|p| p.kind());
        assert_eq!(err, Err(SchedError::BadSnapshot));
        assert_eq!(current.kind(), PolicyKind::new("old"), "still in place");
        assert_eq!(current.len(), 1, "with its thread");
        let old = swap(&mut current, one("new", false, false)).unwrap();
        assert_eq!(old.kind(), PolicyKind::new("old"), "the old one back");
        assert_eq!(current.kind(), PolicyKind::new("new"));
        assert!(current.record(1).is_some(), "the thread carried");
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            alloc::format!("{}", SchedError::CoreBusy),
            "core still has a running thread"
        );
    }
}
