//! User-level threads, scheduled across every core the application holds
//! slices on by ONE policy object (any registered one: stride, lottery,
//! round robin, EEVDF) that the application can swap at run time.
//!
//! Every thread is kept as one full [`UserContext`], whichever way it
//! stopped, and every switch happens in user mode ([`crate::context`]):
//! - preemption: at a revocation the kernel saved the running thread in
//!   `Dispatch::enabled`; the epilogue copies it into the thread;
//! - voluntary switches (yield, sleep, exit): [`context::leave`] records
//!   the thread at a call boundary (callee-saved registers and FPU control
//!   state; the whole FPU image for threads spawned with [`spawn_sse`])
//!   and moves the core to its scheduler stack;
//! - dispatch: [`context::resume`] restores the chosen thread from its
//!   slot in the table and clears the disabled flag as its last step; a
//!   revocation deferred until then hands the thread back and yields.
//!
//! The policy lock is only taken with the disabled flag set (upcalls, or
//! [`critical`](crate::rt::critical) sections), so a lock holder is never
//! revoked in the middle and never deadlocks against its own epilogue.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use abi::shared::{events, va, Dispatch, FaultInfo, UpcallReason, UserContext};
pub use sched_api::{CurrencyId, PolicyKind, SchedError, ThreadState, BASE_CURRENCY};
use sched_api::{Policy, RunEnd};
use spin::Mutex;

use crate::rt::{FaultAction, MAX_WORKERS};
use crate::{context, sys, wakeup};

mod combine;
mod handoff;
mod report;
mod runlog;
mod serve;
mod table;
use combine::{Answer, Reply};
pub use report::Report;
pub use runlog::{drain as drain_switches, enable as log_switches};
pub use table::Audit;
pub use table::MAX_THREADS;
use table::{Table, NONE};

/// A thread's stack: mapped at the top of its stride of
/// `va::THREAD_STACKS`, the rest of the stride an unmapped guard gap.
const STACK: usize = 16 * 1024;
const STACK_PAGES: usize = STACK / 4096;
const STRIDE: u64 = va::THREAD_STACK_STRIDE;
const STRIDE_SHIFT: u32 = STRIDE.trailing_zeros();
const _: () = assert!(STRIDE.is_power_of_two() && STACK as u64 + 4096 <= STRIDE);
// A stop published in a core's word carries the thread id in 18 bits.
const _: () = assert!(MAX_THREADS <= handoff::MAX_TID + 1);
const _: () = assert!(
    va::THREAD_STACKS + MAX_THREADS as u64 * STRIDE <= va::HEAP_GROWTH
        && va::THREAD_STACKS >= va::USER_MAP_START
);
/// The lowest word of every thread stack: an overflow that skips the
/// guard gap (a large frame) still overwrites it first, when it does not
/// fault.
const CANARY: u64 = 0x5afe_57ac_c0ff_ee00;

static RT: Mutex<Table> = Mutex::new(Table::new());
/// Stack pages mapped so far, stack by stack from thread 0's (the table
/// hands out the lowest free slot, so the slots ever used are a prefix).
/// Written under the runtime lock.
static STACK_PAGES_MAPPED: AtomicUsize = AtomicUsize::new(0);
/// Held (disabled) while stack pages are mapped: by a spawn before it
/// takes the runtime lock, or under it.
static STACK_MAPPING: Mutex<()> = Mutex::new(());
/// One more than the highest thread id ever used (under the runtime lock).
static SLOTS_USED: AtomicUsize = AtomicUsize::new(0);

/// Maps the stack the next new thread id would need, before the runtime
/// lock is taken: its mapping would otherwise keep every
/// other core's dispatch waiting for the lock. Under the lock the stack
/// is then there (unless another core's spawn took that id first).
fn premap_next_stack() {
    let next = SLOTS_USED.load(Ordering::Relaxed);
    if next < MAX_THREADS && STACK_PAGES_MAPPED.load(Ordering::Relaxed) < (next + 1) * STACK_PAGES {
        let _ = sys::with_disabled(|| map_stacks_through(next));
    }
}

/// The core each thread last ran on (read by the thread itself, lock-free).
static THREAD_CORE: [AtomicUsize; MAX_THREADS] = [const { AtomicUsize::new(0) }; MAX_THREADS];
/// Thread-local data: one word per thread.
static TLS: [AtomicU64; MAX_THREADS] = [const { AtomicU64::new(0) }; MAX_THREADS];

/// Top of thread `tid`'s stack.
fn stack_top(tid: usize) -> u64 {
    va::THREAD_STACKS + (tid as u64 + 1) * STRIDE
}

fn canary(tid: usize) -> *mut u64 {
    (stack_top(tid) - STACK as u64) as *mut u64
}

/// The calling thread's id, from its stack pointer (each thread has its own
/// fixed stack), without a lock or a system call.
pub fn self_id() -> usize {
    let rsp: u64;
    // SAFETY: reads the stack pointer.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags))
    };
    (rsp.wrapping_sub(va::THREAD_STACKS) >> STRIDE_SHIFT) as usize
}

/// Maps stacks up to thread `tid`'s (under the runtime lock): false if
/// the frames could not be had (the frame quota is used up). Pages are
/// mapped in order, the rest of a stack in one system call, so a failed
/// attempt resumes where it stopped.
fn map_stacks_through(tid: usize) -> bool {
    let _mapping = STACK_MAPPING.lock();
    let mut pages = STACK_PAGES_MAPPED.load(Ordering::Relaxed);
    while pages < (tid + 1) * STACK_PAGES {
        let (t, p) = (pages / STACK_PAGES, pages % STACK_PAGES);
        let at = stack_top(t) - STACK as u64 + (p * 4096) as u64;
        match crate::heap::map_fresh_pages(at, STACK_PAGES - p) {
            0 => return false,
            n => pages += n,
        }
        STACK_PAGES_MAPPED.store(pages, Ordering::Relaxed);
    }
    true
}

/// The core thread `tid` last ran on.
pub fn last_core(tid: usize) -> usize {
    THREAD_CORE
        .get(tid)
        .map_or(0, |c| c.load(Ordering::Relaxed))
}

/// This thread's thread-local word.
pub fn tls() -> u64 {
    TLS[self_id()].load(Ordering::Relaxed)
}

pub fn set_tls(value: u64) {
    TLS[self_id()].store(value, Ordering::Relaxed);
}

/// A fresh policy of `kind` for `cores` cores, with this run's slice as
/// quantum (built by `sched_registry`, the one list of policies); `None`
/// for a kind the registry does not know or a core count out of range.
///
/// Every policy gets the application's cores (rr too: its lag, carried into
/// the next policy at a swap, is measured against an equal share of them;
/// built for one core, a capped thread's 19.2 ms debt came out of an
/// rr -> stride swap as 0.26 ms).
pub fn new_policy(kind: PolicyKind, cores: usize) -> Option<Box<dyn Policy>> {
    let params = sched_registry::Params {
        quantum_ns: sys::sysinfo().slice_ns,
        cores,
        seed: next_policy_seed(),
    };
    sched_registry::build(kind, &params).ok()
}

/// The application's seed ([`start_policy`]), if it gave one.
static POLICY_SEED: AtomicU64 = AtomicU64::new(0);
static POLICY_SEEDED: AtomicBool = AtomicBool::new(false);
/// Policies built so far: each gets its own seed.
static POLICIES_BUILT: AtomicU64 = AtomicU64::new(0);

/// Starts the application under `kind`, seeded with the application's
/// seed: the policies built from now on (lottery draws from it) take it,
/// so that deterministic runs repeat exactly and runs with different seeds
/// are different trials. Without it a policy is seeded from the clock,
/// which under `-icount` reads the same every run: three det lottery runs
/// with seeds 1, 2 and 3 charged every thread the same nanoseconds.
///
/// The policy the libOS started with (the run's, `SysInfo::sched`) was
/// built before the application could give its seed or its own policy: it
/// is replaced by `kind`, seeded, every thread carried. That is the
/// application's start, not a swap: it is not counted as one, and a
/// policy is the first seeded one whichever way it was asked for (by the
/// run, or by the application), so both draw the same.
pub fn start_policy(seed: u64, kind: PolicyKind) -> bool {
    POLICY_SEED.store(seed, Ordering::Relaxed);
    POLICY_SEEDED.store(true, Ordering::Release);
    let Some(seeded) = new_policy(kind, crate::slices::capacity()) else {
        return false;
    };
    // The policy replaced is freed after the lock, as a swap's is.
    with_rt(|rt| rt.reseat_policy(seeded)).is_ok()
}

/// The seed of the next policy built: the application's seed mixed with
/// how many were built before (a swap back to lottery does not replay the
/// first policy's draws), else the clock; never zero.
fn next_policy_seed() -> u64 {
    let n = POLICIES_BUILT.fetch_add(1, Ordering::Relaxed);
    if !POLICY_SEEDED.load(Ordering::Acquire) {
        return sys::now_ns() | 1;
    }
    splitmix64(POLICY_SEED.load(Ordering::Relaxed) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1
}

/// SplitMix64's output function: nearby seeds give unrelated streams.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The kind the run asked for (`SysInfo::sched`, the policy's number in the
/// registry; the registry's default if the number is not one).
pub fn requested_policy() -> PolicyKind {
    sched_registry::by_index(sys::sysinfo().sched)
        .unwrap_or_else(sched_registry::default_policy)
        .kind
}

/// The registered policy named `name` (`"stride"`, `"eevdf"`, ...).
pub fn policy_named(name: &str) -> Option<PolicyKind> {
    sched_registry::kind(name)
}

/// Runs `f` on the thread table with the disabled flag set (see module
/// docs). If the slice was revoked meanwhile, the thread is handed back to
/// the policy and the core given up (the pending bit makes `dispatch` yield).
fn with_rt<R>(f: impl FnOnce(&mut Table) -> R) -> R {
    hold_rt(f, false).0
}

/// [`with_rt`], and if `timed`, how long the lock was held (ns; 0 if not
/// timed): from taking it to letting it go, the waits of other cores'
/// decisions it can cause.
#[inline(always)]
fn hold_rt<R>(f: impl FnOnce(&mut Table) -> R, timed: bool) -> (R, u64) {
    let (d, mut rt) = lock_rt();
    let taken = if timed { sys::now_ns() } else { 0 };
    let r = f(&mut rt);
    // The cores that asked for a pick meanwhile are served before the lock
    // goes, as `decide` serves them: a hold from a thread (the sampler
    // reads every thread's waits in a few) otherwise left them to give up
    // and run on undecided (the 64-core CPU-bound row lost 0.3 points).
    // After the same catch-up as `decide`'s: a core told to park past a
    // thread, or a deadline, still in another core's stop would not come
    // back for it (review r-s33). Not with this core's turn over: the
    // lock goes at once, and the waiting cores take it. The time is this
    // thread's.
    if REQUESTS.any() && d.events.load(Ordering::Acquire) & events::REVOCATION_PENDING == 0 {
        let now = catch_up(&mut rt, d.core as usize, None);
        serve_waiters(&mut rt, now);
    }
    drop(rt);
    let held = if timed {
        sys::now_ns().saturating_sub(taken)
    } else {
        0
    };
    d.disabled.store(0, Ordering::Release);
    if d.events.load(Ordering::Acquire) & events::REVOCATION_PENDING != 0 {
        switch_out(RunEnd::Preempted);
    }
    (r, held)
}

/// The runtime lock for a thread, with the disabled flag set, and the
/// dispatch page of the core it holds it on. A revocation deferred before
/// the lock is held (in a [`sys::with_disabled`] section before it, such
/// as a spawn's stack mapping, or while the lock is busy) hands the thread
/// back first; it takes the lock in its next turn. Waiting for the lock
/// through the grace instead, behind every core's dispatch at the slot
/// boundary, had the kernel repossess the core, often with the lock then
/// held, and every other core's dispatch waited for that core's next turn
/// (det, 1,000 threads on 16 cores, seeds 1..5: 34 cores repossessed kept
/// disabled before the first sample, in `spawn`; 3 with this).
fn lock_rt() -> (&'static Dispatch, spin::MutexGuard<'static, Table>) {
    loop {
        // Disabled first: from then on this thread stays on this core, and
        // the core it was last resumed on is the one it is on.
        sys::disable_here();
        let core = THREAD_CORE[self_id()].load(Ordering::Acquire);
        let d = sys::dispatch(core);
        while d.events.load(Ordering::Acquire) & events::REVOCATION_PENDING == 0 {
            if let Some(rt) = RT.try_lock() {
                return (d, rt);
            }
            core::hint::spin_loop();
        }
        d.disabled.store(0, Ordering::Release);
        switch_out(RunEnd::Preempted);
    }
}

static READY: AtomicBool = AtomicBool::new(false);

/// Starts a thread running `entry(arg)` with `weight` tickets.
pub fn spawn(entry: fn(usize), arg: usize, weight: u32) -> Option<usize> {
    premap_next_stack();
    with_rt(|rt| spawn_locked(rt, entry, arg, weight, false))
}

/// Like [`spawn`], with `tickets` of `currency` (see [`create_currency`]),
/// in one hold of the runtime lock: no core picks it before it is in its
/// currency. Under a policy without currencies (swapped to since they were
/// made) it starts with `tickets` base tickets, its currency remembered
/// for a swap back: there is no worth of its tickets to go by until then.
/// `None` if it could not be started or the currency is unknown (it is
/// then not started).
pub fn spawn_in_currency(
    entry: fn(usize),
    arg: usize,
    currency: CurrencyId,
    tickets: u32,
) -> Option<usize> {
    if currency == BASE_CURRENCY {
        return spawn(entry, arg, tickets);
    }
    premap_next_stack();
    with_rt(|rt| {
        let tid = spawn_locked(rt, entry, arg, tickets, false)?;
        rt.place_in_currency(tid, currency, tickets).then_some(tid)
    })
}

/// Like [`spawn`], for a thread that keeps vector (SSE) state live across
/// its own calls into the libOS: its voluntary switches save the whole FPU
/// image, not only the control state.
pub fn spawn_sse(entry: fn(usize), arg: usize, weight: u32) -> Option<usize> {
    premap_next_stack();
    with_rt(|rt| spawn_locked(rt, entry, arg, weight, true))
}

fn spawn_locked(
    rt: &mut Table,
    entry: fn(usize),
    arg: usize,
    weight: u32,
    sse: bool,
) -> Option<usize> {
    rt.spawn_with(entry, arg, weight, sse, first_context)
}

/// The application's control thread (`main`), outside the policy.
fn spawn_control_locked(rt: &mut Table, entry: fn(usize)) -> Option<usize> {
    rt.spawn_control_with(entry, 0, first_context)
}

/// A new thread's first context: `thread_start(tid)` on its own stack
/// (mapped now if it never was); `None` when there is no memory for it.
fn first_context(tid: usize) -> Option<UserContext> {
    if tid >= MAX_THREADS || !map_stacks_through(tid) {
        return None;
    }
    SLOTS_USED.fetch_max(tid + 1, Ordering::Relaxed);
    prepare_stack(tid);
    let mut ctx = UserContext::ZERO;
    ctx.rip = thread_start as *const () as u64;
    ctx.rsp = stack_top(tid) - 8;
    ctx.rdi = tid as u64;
    ctx.rflags = 0x202;
    ctx.fx[0..2].copy_from_slice(&0x037fu16.to_le_bytes()); // FCW
    ctx.fx[24..28].copy_from_slice(&0x1f80u32.to_le_bytes()); // MXCSR
    ctx.valid = 1;
    Some(ctx)
}

fn prepare_stack(tid: usize) {
    TLS[tid].store(0, Ordering::Relaxed);
    // SAFETY: the lowest word of the new thread's own stack, unused yet.
    unsafe { canary(tid).write_volatile(CANARY) };
}

extern "C" fn thread_start(tid: usize) -> ! {
    // Under `with_rt`: a revocation while this core holds the runtime lock
    // would have the epilogue wait for its own preempted thread.
    let (entry, arg) = with_rt(|rt| (rt.threads[tid].entry, rt.threads[tid].arg));
    if let Some(f) = entry {
        f(arg);
    }
    exit()
}

/// Gives the core to the next thread; this one stays runnable.
pub fn yield_now() {
    switch_out(RunEnd::Yielded);
}

/// Sleeps until the global clock reaches `deadline_ns`. The deadline goes
/// with the thread's stop and is set when the stop is charged, under the
/// runtime lock someone holds then: taking the lock here, from the
/// thread's own context, had the sleepers of an undersubscribed
/// application on 64 cores spin for it 79% of the machine's time (det,
/// `h-decline`).
pub fn sleep_until(deadline_ns: u64) {
    switch_out_until(RunEnd::Blocked, deadline_ns.max(1));
}

/// Sleeps until the 8-byte-aligned word at `addr` no longer holds `old`
/// (another thread, another core, or the kernel's exported pages).
pub fn sleep_until_changed(addr: &AtomicU64, old: u64) {
    let tid = self_id();
    let at = addr as *const AtomicU64 as u64;
    with_rt(|rt| rt.watch(tid, at, old));
    switch_out(RunEnd::Blocked);
}

/// Sleeps until another thread calls [`unblock`] on this one (returns at
/// once if that already happened since the last `block`).
pub fn block() {
    let tid = self_id();
    if with_rt(|rt| rt.block(tid)) {
        switch_out(RunEnd::Blocked);
    }
}

/// Like [`block`], lending this thread's tickets to thread `to` while it
/// sleeps (lottery's ticket transfers: a waiter funds the lock holder it
/// waits for; other policies ignore the loan). The loan ends when it wakes.
pub fn block_lending(to: usize) {
    let tid = self_id();
    if with_rt(|rt| {
        let must = rt.block(tid);
        if must {
            rt.lend_while_blocked(tid, to);
        }
        must
    }) {
        switch_out(RunEnd::Blocked);
    }
}

/// Ticket loans made so far (see [`block_lending`]).
pub fn lends() -> u64 {
    with_rt(|rt| rt.lends)
}

/// Wakes thread `tid` from [`block`] (or any sleep), or makes its next
/// `block` return at once. False if there is no such live thread.
pub fn unblock(tid: usize) -> bool {
    with_rt(|rt| rt.unblock(tid))
}

/// Reads a watched word (see [`sleep_until_changed`]).
fn read_word(addr: u64) -> u64 {
    // SAFETY: watched addresses come from `&AtomicU64`s of this program
    // (statics, or the stack of a thread that stays asleep meanwhile).
    unsafe { &*(addr as *const AtomicU64) }.load(Ordering::Acquire)
}

/// Ends the calling thread.
pub fn exit() -> ! {
    let tid = self_id();
    with_rt(|rt| rt.exit(tid));
    switch_out(RunEnd::Exited);
    unreachable!("an exited thread was resumed")
}

/// Waits until thread `tid` has exited (at once if there is no such thread).
pub fn join(tid: usize) {
    let me = self_id();
    // A wake-up meant for something else ends a wait early: wait again
    // while the thread is still there.
    while with_rt(|rt| rt.join(tid, me)) {
        block();
    }
}

/// Swaps the application's policy: atomic across its cores (they all take
/// the same lock), every thread, weight, sleep state and service carried;
/// threads running on other cores stay running and are charged on return.
pub fn swap_policy(kind: PolicyKind) -> bool {
    swap_policy_held(kind).is_some()
}

/// [`swap_policy`], and if it was made, how long it held the runtime lock
/// (ns): the time it held the application's threads off the cores (no core
/// decides what runs meanwhile). The call can take longer as its caller
/// sees it: the new policy is built before the lock, and a turn's end
/// during the call hands the caller's core to another thread first.
pub fn swap_policy_held(kind: PolicyKind) -> Option<u64> {
    let next = new_policy(kind, crate::slices::capacity())?;
    // The policy replaced comes out of the lock and is freed here, after
    // it: its frees held every core's threads off for nothing.
    let (old, held) = hold_rt(|rt| rt.set_policy(next), true);
    let made = old.is_ok();
    drop(old);
    made.then_some(held)
}

/// Changes a thread's weight: tickets of its currency if it is in one and
/// the policy has currencies, else base tickets (see [`set_currency`]).
pub fn set_weight(tid: usize, weight: u32) -> bool {
    with_rt(|rt| rt.set_weight(tid, weight))
}

/// A ticket currency funded by `funding` tickets of `parent`
/// ([`BASE_CURRENCY`], or a currency made here): its id. Issuing more
/// tickets inside a currency dilutes only its own threads (Waldspurger &
/// Weihl's currencies). Only a policy with currencies makes one
/// (`sched_registry`'s `currencies`: lottery); the others say
/// `Unsupported`. The application's currencies outlive a swap: under a
/// policy without them each thread weighs what its tickets were worth in
/// base tickets at the swap, and a swap back makes them again with every
/// thread in its own.
pub fn create_currency(parent: CurrencyId, funding: u32) -> Result<CurrencyId, SchedError> {
    with_rt(|rt| rt.create_currency(parent, funding))
}

/// Changes how many of its parent's tickets back `currency`.
pub fn fund_currency(currency: CurrencyId, funding: u32) -> Result<(), SchedError> {
    with_rt(|rt| rt.fund_currency(currency, funding))
}

/// Gives thread `tid` `tickets` of `currency`: a change of denomination,
/// its lag kept as it is (so the service it is owed follows its new worth;
/// a new thread's lag is 0).
pub fn set_currency(tid: usize, currency: CurrencyId, tickets: u32) -> Result<(), SchedError> {
    with_rt(|rt| rt.set_currency(tid, currency, tickets))
}

/// CPU time the application's control thread (its `main`, outside the
/// policy) has had so far, in ns.
pub fn control_ns() -> u64 {
    with_rt(|rt| rt.control_service_ns())
}

/// The longest CPU time charged to one of the policy's threads in one
/// stop so far (ns): a thread's charge ends at its turn's end, so this is
/// at most a slot unless something charges past it.
pub fn longest_charge_ns() -> u64 {
    with_rt(|rt| rt.longest_charge_ns())
}

/// Audits the thread table against its policy (see [`Audit`]).
pub fn audit() -> Audit {
    with_rt(|rt| rt.audit())
}

/// One thread's part of [`waits_since_each`]: its id and the caller's copy
/// of its histogram in; the longest wait since (`None`: not live) and its
/// grown buckets' place in the shared list out.
pub struct WaitsSince {
    pub tid: usize,
    pub seen: abi::waits::WaitHistogram,
    pub imax: Option<u64>,
    pub grew: core::ops::Range<usize>,
}

/// Each entry's thread's waits for a core since the caller's last call, in
/// one hold of the runtime lock: brings the entry's `seen` (the caller's
/// copy of that thread's histogram) up to date, notes the longest wait
/// since (`None` if the thread is not live), and puts each bucket that
/// grew, with how much, in `grew`, noting the entry's range there. Under
/// the lock it looks only at the buckets counted since
/// (`WaitHistogram::catch_up`): copying every thread's whole histogram
/// there (1.2 KB each) stalled every dispatch of a 1,000-thread
/// application. One hold a sample instead of one a thread: on 64 cores the
/// sampler, taking the lock 256 times a sample against sleepers spinning
/// for it, stopped getting it a tenth of the way into a run.
pub fn waits_since_each(entries: &mut [WaitsSince], grew: &mut alloc::vec::Vec<(usize, u32)>) {
    grew.clear();
    // No allocation under the lock.
    grew.reserve(entries.len() * abi::waits::BUCKETS);
    with_rt(|rt| {
        for e in entries.iter_mut() {
            let start = grew.len();
            e.imax = rt
                .threads
                .get_mut(e.tid)
                .filter(|t| t.life == table::Life::Live)
                .map(|t| t.waits.catch_up(&mut e.seen, |k, n| grew.push((k, n))));
            e.grew = start..grew.len();
        }
    })
}

/// Every figure of a sample in one hold of the runtime lock, after every
/// published stop is charged, as of one instant: the per-thread figures
/// of [`snapshot`] into `out`, the audit, the control thread's time, the
/// longest charge and the runs in progress on the other cores (see
/// [`Report`]). One hold, not four: on 64 cores the sampler's every
/// request for the lock queues behind the cores' prologues, and the
/// threads' figures and the sample's instant drifted apart.
pub fn report(out: &mut [(u32, u32, u64, ThreadState)]) -> Report {
    with_rt(|rt| {
        let here = THREAD_CORE[self_id()].load(Ordering::Relaxed);
        let at = catch_up(rt, here, None);
        let control = rt.control_tid();
        let cores = (sys::sysinfo().cores as usize).min(MAX_WORKERS);
        let running_ns = (0..cores)
            .filter(|&k| k != here)
            .map(|k| {
                let tid = ON_CORE[k].load(Ordering::Acquire);
                if tid == NONE || tid == control {
                    return 0;
                }
                let page = sys::dispatch(k);
                // The turn's end before its start (the kernel writes them
                // the other way round): a read torn between two turns then
                // pairs a new start with an old end, which counts nothing.
                let run = report::RunSeen {
                    since: ON_CORE_AT[k].load(Ordering::Relaxed),
                    turn_end: page.slice_end_ns.load(Ordering::Acquire),
                    turn_start: page.run_started_ns.load(Ordering::Acquire),
                    last_repossession: page.last_repossession_ns.load(Ordering::Acquire),
                };
                // Another run there meanwhile: not the one read.
                if ON_CORE[k].load(Ordering::Acquire) != tid {
                    return 0;
                }
                report::in_turn_ns(run, at)
            })
            .sum();
        let (rows, policy, swaps) = rt.snapshot(out);
        Report {
            at_ns: at,
            rows,
            policy,
            swaps,
            audit: rt.audit(),
            control_ns: rt.control_service_ns(),
            longest_charge_ns: rt.longest_charge_ns(),
            running_ns,
        }
    })
}

/// Per-thread figures for reports: (id, weight, service_ns, state) of the
/// live threads; the policy; how many swaps so far.
pub fn snapshot(out: &mut [(u32, u32, u64, ThreadState)]) -> (usize, PolicyKind, u64) {
    with_rt(|rt| rt.snapshot(out))
}

// ---- Switching ------------------------------------------------------------
//
// A thread leaves a core in one of four ways, and none of them waits for
// the runtime lock: its context goes to its own slot (nobody else touches
// it while the policy has the thread running), and the stop — who, how it
// ended, how long it ran — is published in the core's word in
// [`handoff`]; `decide` (from `dispatch`) charges every published stop to
// the policy under the lock, then picks. A voluntary switch that finds
// the lock free (`try_lock`) and no revocation pending charges its own
// stop there at once instead of publishing it (`after_switch_out`); one
// that does not publishes as the others do. So the epilogue is wait-free,
// and a core repossessed in the middle of a dispatch stalls nobody's
// epilogue.

/// The pending stops of every core (see [`handoff`]).
static STOPS: handoff::Stops = handoff::Stops::new();
/// The prologues waiting for a decision (see [`combine`]).
static REQUESTS: combine::Requests = combine::Requests::new();
/// Per core: the thread running there ([`NONE`] between threads) and the
/// CPU clock (`sys::cpu_clock`) it started at: lock-free copies of the
/// table's, for the epilogue.
static ON_CORE: [AtomicUsize; MAX_WORKERS] = [const { AtomicUsize::new(NONE) }; MAX_WORKERS];
static ON_CORE_SINCE: [AtomicU64; MAX_WORKERS] = [const { AtomicU64::new(0) }; MAX_WORKERS];
/// Per core: when (global clock) the thread in `ON_CORE` started there,
/// stored before it (for the runs in progress at a sample: [`report`]).
static ON_CORE_AT: [AtomicU64; MAX_WORKERS] = [const { AtomicU64::new(0) }; MAX_WORKERS];
/// The table's threads, for their context slots without the lock (set once,
/// under the lock, before any thread runs).
static THREADS: AtomicPtr<table::Threads> = AtomicPtr::new(core::ptr::null_mut());
/// Bounded wait for the runtime lock in a prologue before giving up (about
/// a few microseconds: longer than any dispatch holds it, shorter than a
/// grace period).
const LOCK_SPINS: u32 = 2_000;
/// Turns a preempted thread ran on without the policy's decision (the lock
/// stayed busy), and turns the policy decided: see [`decided_turns`].
static TURNS_RUN_ON: AtomicU64 = AtomicU64::new(0);
static TURNS_DECIDED: AtomicU64 = AtomicU64::new(0);

/// Turns given by the policy's decision and turns a preempted thread ran on
/// without one because the runtime lock was busy: the share of turns the
/// policy did not order, for the application's reports.
pub fn decided_turns() -> (u64, u64) {
    (
        TURNS_DECIDED.load(Ordering::Relaxed),
        TURNS_RUN_ON.load(Ordering::Relaxed),
    )
}

/// Thread `tid`'s context slot in the table, reached without the lock.
///
/// # Safety
/// Only while the policy has `tid` running on the calling core (or it is
/// the calling thread): then no other core reads or writes that slot.
#[inline]
unsafe fn ctx_slot(tid: usize) -> *mut UserContext {
    // SAFETY: the static table's threads (set before any thread runs),
    // whose slots never move; only a place is computed (no reference to
    // the shared table).
    unsafe { &raw mut (*thread_slot(tid)).ctx }
}

/// Thread `tid`'s slot in the table, reached without the lock (see
/// [`ctx_slot`]).
///
/// # Safety
/// As for [`ctx_slot`].
#[inline(always)]
unsafe fn thread_slot(tid: usize) -> *mut table::Thread {
    let threads = THREADS.load(Ordering::Acquire);
    debug_assert!(!threads.is_null());
    // SAFETY: the static table's directory: `slot_ptr` only reads its
    // atomic chunk pointers, set before `tid` was first spawned.
    let slot = unsafe { table::Threads::slot_ptr_raw(threads, tid) };
    debug_assert!(!slot.is_null());
    slot
}

/// Takes `tid` off `core` with its charge ending at CPU clock `clock`
/// (global clock `at`), to be charged with `end` by the next dispatch.
/// Its context must already be in its slot (unless it ended). No canary
/// check: that is [`stop_here`]; an overflowed thread's canary is gone.
fn publish_stop(core: usize, tid: usize, end: RunEnd, clock: u64, at: u64) {
    publish(core, take_off(core, tid, end, clock, at));
}

/// Publishes `core`'s `stop` for the next dispatch to charge.
fn publish(core: usize, stop: handoff::Stop) {
    if !STOPS.publish(core, stop) {
        crate::log!(
            "core {core}: thread {} stopped over an undrained stop",
            stop.tid
        );
        sys::exit(13);
    }
}

/// Per core: the deadline of the thread switching out there to sleep
/// (0: none), from [`switch_out_until`] to its [`after_switch_out`].
static SLEEPS_UNTIL: [AtomicU64; MAX_WORKERS] = [const { AtomicU64::new(0) }; MAX_WORKERS];

/// Leaves the calling thread (saved at this call) and dispatches another
/// on this core from the core's scheduler stack.
fn switch_out(end: RunEnd) {
    switch_out_until(end, 0)
}

/// [`switch_out`] of a thread that sleeps until `wake_at_ns` (0: no
/// deadline), which its stop carries.
fn switch_out_until(end: RunEnd, wake_at_ns: u64) {
    let tid = self_id();
    sys::disable_here();
    let core = THREAD_CORE[tid].load(Ordering::Acquire);
    // Only a sleep carries a deadline (`after_switch_out` reads it for
    // Blocked stops alone, so any other would be left for the next).
    debug_assert!(wake_at_ns == 0 || end == RunEnd::Blocked);
    if wake_at_ns != 0 {
        // Disabled: this thread stays on this core until the stop is made.
        SLEEPS_UNTIL[core].store(wake_at_ns, Ordering::Relaxed);
    }
    // SAFETY: this thread's own slot, and it is running (see `ctx_slot`).
    let (ctx, sse) = unsafe {
        let slot = thread_slot(tid);
        (&raw mut (*slot).ctx, (*slot).sse)
    };
    let end = match end {
        RunEnd::Preempted => 0,
        RunEnd::Yielded => 1,
        RunEnd::Blocked => 2,
        RunEnd::Exited => 3,
    };
    let top = crate::rt::scheduler_stack_top(core);
    // SAFETY: `ctx` is this thread's own save slot, which no other core
    // reads or writes while the policy says the thread is Running (it is,
    // until its stop is charged, which `after_switch_out` does at once or
    // publishes for the next `decide`). The
    // scheduler stack is unused while a thread runs on this core, and this
    // thread's stack is not touched again until it is resumed (which
    // returns here, the disabled flag cleared by the resume).
    unsafe { context::leave(ctx, sse, top, after_switch_out, core, tid << 2 | end) }
}

extern "C" fn after_switch_out(core: usize, packed: usize) -> ! {
    let end = match packed & 3 {
        0 => RunEnd::Preempted,
        1 => RunEnd::Yielded,
        2 => RunEnd::Blocked,
        _ => RunEnd::Exited,
    };
    let tid = packed >> 2;
    let at = sys::now_ns();
    let clock = sys::cpu_clock_at(core, at);
    check_canary(tid);
    let d = sys::dispatch(core);
    let mut stop = take_off(core, tid, end, clock, at);
    if end == RunEnd::Blocked {
        stop.wake_at_ns = SLEEPS_UNTIL[core].load(Ordering::Relaxed);
        if stop.wake_at_ns != 0 {
            SLEEPS_UNTIL[core].store(0, Ordering::Relaxed);
        }
    }
    // The usual voluntary switch: no revocation pending and the runtime
    // lock free. The stop is then charged under the lock right away, not
    // published for a drain to take back (a publish and a drain were ~90
    // instructions of a yield's ~1,000). Otherwise the lock-free hand-off
    // as for any stop: `dispatch` yields the core first, or waits for the
    // lock, and this core's stop must be there for whoever charges next.
    if d.events.load(Ordering::Acquire) & events::REVOCATION_PENDING == 0 {
        if let Some(rt) = RT.try_lock() {
            decide(core, d, rt, Some(stop))
        }
    }
    publish(core, stop);
    dispatch(core)
}

/// Takes `tid` off `core` (the lock-free copies, the switch log) with its
/// charge ending at CPU clock `clock`, global clock `at`: its stop, to be
/// charged to the policy. Always inlined (each of its two callers is on
/// a switch's path).
#[inline(always)]
fn take_off(core: usize, tid: usize, end: RunEnd, clock: u64, at: u64) -> handoff::Stop {
    let ran = clock.saturating_sub(ON_CORE_SINCE[core].load(Ordering::Relaxed));
    runlog::stopped(core, at);
    ON_CORE[core].store(NONE, Ordering::Relaxed);
    handoff::Stop {
        tid,
        end,
        // As the hand-off's word would carry it.
        ran_ns: ran.min(handoff::RAN_MAX),
        at_ns: at,
        wake_at_ns: 0,
        unrun: false,
    }
}

/// Ends the application if `tid` overflowed its stack (its canary gone).
fn check_canary(tid: usize) {
    // SAFETY: the lowest word of that thread's stack.
    if unsafe { canary(tid).read_volatile() } != CANARY {
        crate::log!("thread {tid} overflowed its {STACK}-byte stack");
        sys::exit(12);
    }
}

/// [`publish_stop`], after checking `tid`'s stack canary.
fn stop_here(core: usize, tid: usize, end: RunEnd, clock: u64, at: u64) {
    check_canary(tid);
    publish_stop(core, tid, end, clock, at);
}

/// The runtime lock for a prologue: a short bounded wait. `None` means a
/// core holding it is not running (repossessed, or its vCPU descheduled):
/// waiting here, disabled, would only spread the stall.
fn lock_briefly() -> Option<spin::MutexGuard<'static, Table>> {
    for _ in 0..LOCK_SPINS {
        if let Some(rt) = RT.try_lock() {
            return Some(rt);
        }
        core::hint::spin_loop();
    }
    None
}

/// Resumes the thread this core was revoked from, if it was preempted and
/// nobody has charged its stop yet (it is then still the policy's running
/// thread here); returns if not.
fn run_on(core: usize, d: &Dispatch) {
    if let Some(stop) = STOPS.take(core) {
        if stop.end == RunEnd::Preempted {
            TURNS_RUN_ON.fetch_add(1, Ordering::Relaxed);
            runlog::started(core, sys::now_ns(), stop.tid);
            // Unrun still if its stop was a hand-back: it has not run
            // since its pick either.
            resume_on(core, stop.tid, d, stop.unrun)
        }
        let _ = STOPS.publish(core, stop);
    }
}

/// Picks the next thread for `core` and resumes it; with none runnable,
/// gives the slice up (or sleeps the whole application on one predicate
/// for every sleeping thread when no thread runs anywhere).
///
/// The pick is asked for ([`combine`]): whichever core holds the runtime
/// lock in [`decide`] makes it for this core, or this core takes the
/// lock itself, whichever comes first.
pub fn dispatch(core: usize) -> ! {
    let d = sys::dispatch(core);
    if d.events
        .fetch_and(!events::REVOCATION_PENDING, Ordering::AcqRel)
        & events::REVOCATION_PENDING
        != 0
    {
        let _ = sys::yield_to(None, false);
    }
    // A free lock is taken at once: asking costs a locked instruction
    // and a combiner's visit, worth it only when the lock is busy.
    if let Some(rt) = RT.try_lock() {
        decide(core, d, rt, None)
    }
    REQUESTS.ask(core);
    for _ in 0..LOCK_SPINS {
        // The turn ended while asking: stop waiting (an answer that came
        // first is run, and handed back at once as preempted).
        if d.events.load(Ordering::Acquire) & events::REVOCATION_PENDING != 0 {
            break;
        }
        match REQUESTS.poll(core) {
            Answer::Decided(tid) => run_decided(core, d, tid),
            Answer::Park(until) => park_or_ask_again(core, until),
            Answer::Declined | Answer::Idle => decide_locked(core, d),
            Answer::Waiting => {}
        }
        if let Some(rt) = RT.try_lock() {
            // No combiner runs while this core holds the lock: the
            // request is still open, or was answered before.
            if let Answer::Decided(tid) = REQUESTS.withdraw(core) {
                drop(rt);
                run_decided(core, d, tid)
            }
            decide(core, d, rt, None)
        }
        core::hint::spin_loop();
    }
    match REQUESTS.withdraw(core) {
        Answer::Decided(tid) => run_decided(core, d, tid),
        Answer::Park(until) => {
            let _ = sys::park(until);
        }
        _ => {}
    }
    // The lock is stuck on a core that is not running, or the turn ended:
    // run on, or give the turn up rather than spin through it.
    run_on_or_give_up(core, d)
}

/// [`dispatch`] for a core whose request was declined: it decides under
/// the lock itself (a bounded wait, as `dispatch`'s).
fn decide_locked(core: usize, d: &Dispatch) -> ! {
    let Some(rt) = lock_briefly() else {
        run_on_or_give_up(core, d)
    };
    decide(core, d, rt, None)
}

/// Runs thread `tid`, which a combiner's pick has running on `core`. Its
/// charge starts here, when it is resumed, not at the pick: the wait for
/// this core to see its answer is not the thread's.
fn run_decided(core: usize, d: &Dispatch, tid: usize) -> ! {
    let now = sys::now_ns();
    ON_CORE_SINCE[core].store(sys::cpu_clock_at(core, now), Ordering::Relaxed);
    ON_CORE_AT[core].store(now, Ordering::Relaxed);
    runlog::started(core, now, tid);
    resume_on(core, tid, d, true)
}

/// Answers every core waiting in [`dispatch`] (see [`combine`]) under
/// the runtime lock, at global clock `at`: each gets the pick the policy
/// makes for its own core, as if it held the lock. Out of line: a decide
/// that finds nobody waiting pays one load per 64 cores.
#[inline(never)]
fn serve_waiters(rt: &mut Table, at: u64) {
    let me = sys::env_id();
    // Only a core that runs this environment now: one the kernel has
    // given to another would leave the thread picked for it unrun, and
    // counted as running, until its next turn here.
    let serves = |k: usize| sys::core_slices(k).running_env.load(Ordering::Acquire) == me;
    // A reply whose asker gave up meanwhile is taken back (`serve::undo`).
    let rt = core::cell::RefCell::new(rt);
    REQUESTS.serve(
        serves,
        |k| {
            let clock = || sys::cpu_clock_at(k, at);
            let r = serve::reply(
                &mut rt.borrow_mut(),
                &STOPS,
                k,
                at,
                clock,
                || park_ns(k),
                &read_word,
            );
            if let Reply::Run(_) = r {
                TURNS_DECIDED.fetch_add(1, Ordering::Relaxed);
            }
            r
        },
        |k, reply| {
            if let Reply::Run(_) = reply {
                TURNS_DECIDED.fetch_sub(1, Ordering::Relaxed);
            }
            serve::undo(&mut rt.borrow_mut(), k, reply, at, &read_word)
        },
    );
}

/// What a holder of the runtime lock does before it picks for anyone
/// (`decide`, and a thread's own hold that serves the waiting cores):
/// charges `own` (`core`'s stop, not published: see `after_switch_out`)
/// and every published stop, follows the slots the application holds,
/// and wakes the sleepers due; returns the instant it went on from.
#[inline(always)]
fn catch_up(rt: &mut Table, core: usize, own: Option<handoff::Stop>) -> u64 {
    let now = handoff::charge_all(rt, &STOPS, core, own, sys::now_ns, &read_word);
    let account = sys::own_account();
    // Held and revoked together: a slot taken back on one core and one
    // granted on another leave the count held as it was.
    let slots_seen = u64::from(account.slots_held.load(Ordering::Acquire))
        | account.slots_revoked.load(Ordering::Acquire) << 32;
    rt.follow_slots(slots_seen, crate::slices::capacity);
    rt.wake_due(now, &read_word);
    now
}

/// The rest of [`dispatch`], under the runtime lock `rt`: charges `own`
/// (this core's stop, not published: see `after_switch_out`) and every
/// published stop, then picks for `core` and resumes the choice. Always
/// inlined (into `dispatch` and `after_switch_out`, +1 KB of code): as a
/// call, with the stop passed through memory, a yield cost ~11
/// instructions more (`#[inline]` alone was not taken).
#[inline(always)]
fn decide(
    core: usize,
    d: &Dispatch,
    mut rt: spin::MutexGuard<'static, Table>,
    own: Option<handoff::Stop>,
) -> ! {
    // A voluntary stop's instant serves as the dispatch's own (see
    // `charge_all`). Not for the next thread's start, though: its charge
    // would then take in the dispatch, whose length varies with the queue,
    // and a charge that is not the same from run to run misses the
    // policies' remembered figures (measured: a yield 42 instructions
    // dearer, not 15 cheaper).
    let now = catch_up(&mut rt, core, own);
    // The cores waiting for a pick get theirs first: this core's own
    // thread is then not charged for the picks made for others (its
    // charge starts at the clock read below).
    if REQUESTS.any() {
        serve_waiters(&mut rt, now);
    }
    // Threads are charged on the environment's CPU clock of this core;
    // the one clock read also ends the chosen thread's wait.
    let at = sys::now_ns();
    let since = sys::cpu_clock_at(core, at);
    if let Some(tid) = rt.start_at(core, since, at) {
        TURNS_DECIDED.fetch_add(1, Ordering::Relaxed);
        drop(rt);
        ON_CORE_SINCE[core].store(since, Ordering::Relaxed);
        ON_CORE_AT[core].store(at, Ordering::Relaxed);
        runlog::started(core, now, tid);
        resume_on(core, tid, d, true)
    }
    if rt.live() == 0 {
        drop(rt);
        sys::exit(0);
    }
    let wakeup = if rt.running_anywhere() {
        None
    } else {
        wakeup::fold(0, rt.waits(), now, sys::sysinfo().slice_ns)
    };
    let park_until = match wakeup {
        None => rt.park_until(core, at, park_ns(core)),
        Some(_) => 0,
    };
    drop(rt);
    if let Some(w) = wakeup {
        // Every thread sleeps: one predicate for all of them, and the
        // application sleeps; it costs no slices meanwhile.
        if sys::predicate_install(w.program.as_bytes()).is_ok() {
            let _ = sys::sleep(false);
        }
    } else {
        // Threads run elsewhere, none here: park this core rather than
        // yield. Yielding, an idle core came back turn after turn (102,409
        // turns in 1 s on 4 deterministic cores of scale-wakeups, against
        // 2,379 parking), each prologue taking `RT` from the cores with
        // work only to find nothing. A thread woken meanwhile is picked up
        // by a core that decides: its running thread's end, a park's end,
        // or a core parked until that thread's deadline
        // (`Table::park_until`). The whole application asleep is the
        // predicate's case above, not this one.
        let _ = sys::park(park_until);
    }
    give_up_turn()
}

/// Parks `core` until global clock `until`, a combiner's answer to its
/// request (see [`dispatch`]). A park the kernel refuses (its instant
/// passed while the answer waited to be read: under det QEMU a vCPU reads
/// it late) keeps the turn, and the reason to wake is now: the core asks
/// again, in `dispatch`'s bounded wait. Not the lock in turn
/// (`decide_locked`): the cores whose parks came late queued for it and
/// were repossessed there (det, scale-wakeups: 20% of the turns on 32 and
/// 64 cores). Nor `dispatch` again, which would grow the scheduler stack
/// with every refusal.
#[inline]
fn park_or_ask_again(core: usize, until: u64) {
    let _ = sys::park(until);
    REQUESTS.ask(core);
}

/// Gives this core's turn up. The kernel enters the application afresh at
/// its next turn (a new upcall), so the yield does not return; if it did,
/// the libOS's own state would be wrong, and the application ends (9).
fn give_up_turn() -> ! {
    let _ = sys::yield_to(None, false);
    sys::exit(9)
}

/// Resumes the thread preempted here if nobody charged its stop yet
/// ([`run_on`]), else gives the turn up: a prologue that could not have a
/// decision made in time.
fn run_on_or_give_up(core: usize, d: &Dispatch) -> ! {
    run_on(core, d);
    give_up_turn()
}

/// How long an idle `core` parks: a quarter slice plus the core's
/// spread (`slices::park_ns`), so cores parked at one instant come back
/// apart rather than all queueing for `RT` at once.
fn park_ns(core: usize) -> u64 {
    let info = sys::sysinfo();
    // Within the kernel's bound, or slices over ~0.8 s would have every
    // park refused (and the core yield turn after turn).
    ::slices::park_ns(core, info.cores as usize, info.slice_ns).min(abi::syscall::PARK_MAX_NS)
}

/// Per core: whether the thread being resumed there has not run since the
/// pick that put it there, for [`resume_pending`] (set by [`resume_on`];
/// only that core reads it, disabled, before the thread runs).
static RESUMING_UNRUN: [AtomicBool; MAX_WORKERS] = [const { AtomicBool::new(false) }; MAX_WORKERS];

/// Resumes thread `tid`, which the policy has running on `core`; `unrun`:
/// it has not run since the pick that put it there (a fresh pick, or a
/// hand-back run on), so a revocation that stops the resume hands it back
/// still waiting from before that pick (`Table::hand_back`). A thread
/// resumed after running (its own stop run on, a fault's handler) is not.
#[inline(always)]
fn resume_on(core: usize, tid: usize, d: &Dispatch, unrun: bool) -> ! {
    RESUMING_UNRUN[core].store(unrun, Ordering::Relaxed);
    THREAD_CORE[tid].store(core, Ordering::Relaxed);
    // Release: a sampler that reads `tid` here reads its `ON_CORE_AT`.
    ON_CORE[core].store(tid, Ordering::Release);
    let top = crate::rt::scheduler_stack_top(core);
    // SAFETY: disabled (an upcall, or `switch_out`), the resume range
    // registered; the thread is Running on this core, so nobody else
    // touches its context; our own frames are abandoned.
    unsafe { context::resume(&*ctx_slot(tid), d, resume_pending, top) }
}

/// Threads ended because they overflowed their stacks.
static OVERFLOWS: AtomicU64 = AtomicU64::new(0);

/// How many threads have been ended for overflowing their stacks.
pub fn stack_overflows() -> u64 {
    OVERFLOWS.load(Ordering::Relaxed)
}

/// A thread's fault handler: given the faulting thread and the fault,
/// decides whether it resumes (past the faulting instruction) or the
/// application ends.
pub type FaultHandler = fn(tid: usize, info: &FaultInfo) -> FaultAction;

static FAULT_HANDLER: Mutex<Option<FaultHandler>> = Mutex::new(None);

/// Routes the application's thread faults to `handler` (default: log the
/// fault and end the application). A fault inside the handler, or in the
/// libOS while disabled, ends the application (the kernel kills it).
pub fn on_fault(handler: FaultHandler) {
    *FAULT_HANDLER.lock() = Some(handler);
}

/// The thread whose stack's guard gap holds `address`, if any.
fn guard_of(address: u64) -> Option<usize> {
    let offset = address.checked_sub(va::THREAD_STACKS)?;
    let tid = (offset >> STRIDE_SHIFT) as usize;
    (tid < MAX_THREADS && offset % STRIDE < STRIDE - STACK as u64).then_some(tid)
}

/// The exception upcall: the thread running on `core` faulted.
fn on_exception(core: usize) -> ! {
    let d = sys::dispatch(core);
    let info = d.fault_info;
    let tid = ON_CORE[core].load(Ordering::Relaxed);
    // A page fault in the running thread's own guard gap: it overflowed
    // its stack. That thread ends (its stack, left as it is, is the
    // evidence it overflowed; the slot and stack are used again); the
    // others go on.
    if info.vector == 14 && tid != NONE && guard_of(info.address) == Some(tid) {
        crate::log!(
            "thread {tid} overflowed its {STACK}-byte stack (fault at {:#x}, rip {:#x}): ended",
            info.address,
            info.rip
        );
        OVERFLOWS.fetch_add(1, Ordering::Relaxed);
        d.fault.valid = 0;
        RT.lock().exit(tid);
        let at = sys::now_ns();
        // Its canary is likely gone with the overflow: `publish_stop`,
        // not `stop_here`, which would end the application over it.
        publish_stop(core, tid, RunEnd::Exited, sys::cpu_clock_at(core, at), at);
        dispatch(core)
    }
    let handler = *FAULT_HANDLER.lock();
    let action = match handler {
        Some(h) if tid != NONE => h(tid, &info),
        _ => {
            crate::log!(
                "thread {tid} fault: vector {} error {:#x} address {:#x} at {:#x}",
                info.vector,
                info.error_code,
                info.address,
                info.rip
            );
            FaultAction::Exit
        }
    };
    match action {
        FaultAction::Resume { skip } if tid != NONE => {
            let mut ctx = d.fault;
            ctx.rip += skip;
            d.fault.valid = 0;
            // SAFETY: the faulting thread is still running on this core.
            unsafe { ctx_slot(tid).write(ctx) };
            resume_on(core, tid, d, false)
        }
        _ => sys::exit(1),
    }
}

/// A revocation was deferred until the very end of a resume: the thread
/// did not run; hand it back (as not run since its pick if it had not
/// before this resume either: [`resume_on`]) and give the slice up
/// (`dispatch` clears the pending bit and yields).
extern "C" fn resume_pending(d: &Dispatch) -> ! {
    let core = d.core as usize;
    let tid = ON_CORE[core].load(Ordering::Relaxed);
    if tid != NONE {
        let at = sys::now_ns();
        check_canary(tid);
        // Its context untouched (see `context::resume`): this resume did
        // not run it.
        let stop = take_off(
            core,
            tid,
            RunEnd::Preempted,
            sys::cpu_clock_at(core, at),
            at,
        );
        publish(
            core,
            handoff::Stop {
                unrun: RESUMING_UNRUN[core].load(Ordering::Relaxed),
                ..stop
            },
        );
    }
    dispatch(core)
}

/// The upcall handler of a threaded program.
pub fn upcall(reason: u64, core: usize, main: fn(usize)) -> ! {
    match UpcallReason::from_u64(reason) {
        Some(UpcallReason::Start) if crate::rt::first_start() => {
            {
                let mut rt = RT.lock();
                rt.set_clock(sys::now_ns);
                THREADS.store(&raw mut rt.threads, Ordering::Release);
                let policy = new_policy(requested_policy(), crate::slices::capacity())
                    .expect("a registered policy builds for the cores an application holds");
                if rt.set_policy(policy).is_err() || spawn_control_locked(&mut rt, main).is_none() {
                    sys::exit(7);
                }
            }
            READY.store(true, Ordering::Release);
            dispatch(core)
        }
        Some(UpcallReason::Start) => {
            while !READY.load(Ordering::Acquire) {
                core::hint::spin_loop();
            }
            dispatch(core)
        }
        // The epilogue: wait-free (no lock, no policy call, no clock read).
        Some(UpcallReason::Revoke) => {
            let d = sys::dispatch(core);
            d.events
                .fetch_and(!events::RESUMED_DISABLED, Ordering::AcqRel);
            let tid = ON_CORE[core].load(Ordering::Relaxed);
            if tid != NONE {
                // SAFETY: the thread the kernel just took off this core,
                // still running as far as the policy knows.
                unsafe { ctx_slot(tid).write(d.enabled) };
                d.enabled.valid = 0;
                // Its charge stops at the revocation instant, however late
                // this runs (the kernel's figure: no clock read), and it
                // waits for a core from then: the turn's end.
                let clock = d.deadline_clock_ns.load(Ordering::Relaxed);
                let at = d.slice_end_ns.load(Ordering::Relaxed);
                stop_here(core, tid, RunEnd::Preempted, clock, at);
            }
            if d.events
                .fetch_and(!events::RESUMED_DISABLED, Ordering::AcqRel)
                & events::RESUMED_DISABLED
                != 0
            {
                // Repossessed on the way and resumed in a later turn of
                // ours: that turn is not over, so it runs a thread.
                dispatch(core)
            }
            let _ = sys::yield_to(None, false);
            sys::exit(10)
        }
        Some(UpcallReason::Repossessed) => {
            let d = sys::dispatch(core);
            let tid = ON_CORE[core].load(Ordering::Relaxed);
            if tid != NONE {
                // Preempted in the thread itself, or in our epilogue before it
                // saved the thread: the enabled area is the thread then.
                let ctx = if d.enabled.valid == 1 {
                    d.enabled
                } else if d.preempted.valid == 1 {
                    d.preempted
                } else {
                    // The kernel keeps a context it took while we were
                    // disabled to itself, so this cannot happen; running
                    // the thread from a stale context would be worse than
                    // stopping.
                    crate::log!("core {core}: thread {tid} repossessed but no context saved");
                    sys::exit(11)
                };
                // SAFETY: as for the epilogue.
                unsafe { ctx_slot(tid).write(ctx) };
                d.enabled.valid = 0;
                d.preempted.valid = 0;
                // Charged up to its deadline: the overrun was the kernel's
                // to charge (it was, to the environment), not the thread's.
                let clock = d.deadline_clock_ns.load(Ordering::Relaxed);
                // It waits from the end of the turn it overran.
                let at = d
                    .last_repossession_ns
                    .load(Ordering::Relaxed)
                    .saturating_sub(d.last_overrun_ns.load(Ordering::Relaxed));
                stop_here(core, tid, RunEnd::Preempted, clock, at);
            }
            dispatch(core)
        }
        Some(UpcallReason::Exception) => on_exception(core),
        _ => dispatch(core),
    }
}

#[cfg(test)]
mod seed_tests {
    use super::*;

    #[test]
    fn splitmix64_is_the_reference_output_function() {
        // SplitMix64 seeded with 0: its first two outputs.
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn each_policy_built_after_a_seed_gets_its_own_odd_seed_from_it() {
        const SEED: u64 = 12_345;
        POLICY_SEED.store(SEED, Ordering::Relaxed);
        POLICY_SEEDED.store(true, Ordering::Release);
        let mut seen = alloc::vec::Vec::new();
        for _ in 0..4 {
            let n = POLICIES_BUILT.load(Ordering::Relaxed);
            let seed = next_policy_seed();
            let want = splitmix64(SEED ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
            // Odd, so never zero: `want` is.
            assert_eq!(seed, want, "the application's seed, mixed with {n}");
            assert!(!seen.contains(&seed), "a swap back does not replay");
            seen.push(seed);
        }
    }
}
