//! The CPU interface: each core walks its slice vector, enters the owner of
//! each turn at its prologue, revokes visibly at the turn's end (epilogue
//! upcall, or a pending flag while the environment is disabled), and past
//! the grace period repossesses the core by force. Directed yield hands the
//! rest of a turn to another environment; sleepers are skipped (and not
//! charged) until their wakeup predicate holds.
//!
//! Everything here runs with interrupts off, on the core it concerns, under
//! that core's lock. Paths that switch context end in `enter_user` (they do
//! not return); paths that continue the interrupted context return.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use abi::record::RecordKind;
use abi::shared::{events, va, UpcallReason, UserContext, MAX_CORES};
use abi::syscall::{Error, SaveArea, NO_ENV};
use spin::Mutex;

use crate::arch::cpu::{self, CLEAN_FX};
use crate::arch::gdt::{USER_CODE, USER_DATA};
use crate::arch::interrupts::{enter_user, TrapFrame};
use crate::arch::{apic, irq, percpu, time};
use crate::env::{self, Env};
use crate::sync::BootCell;
use crate::{dispatch_page, exported, record};
use slices::Tick;

/// Boot-time configuration of the slice vectors.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub slots: usize,
    pub slice_ns: u64,
    pub grace_ns: u64,
    /// Longest the timer is armed ahead while an environment runs (0: to
    /// its turn's end): see [`arm_running`].
    pub interleave_ns: u64,
    /// Repossessions within a slot's last 32 turns that cost the owner the
    /// slot (0 = never).
    pub offender_limit: u32,
    /// Scheduler applications start with (exported in `SysInfo::sched`).
    pub app_sched: u32,
}

/// The environment that receives unowned time (`NO_ENV`: the core idles).
static DEFAULT_ENV: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(NO_ENV);

/// Makes `id` the receiver of unowned time on every core.
pub fn set_default_env(id: u32) {
    DEFAULT_ENV.store(id, Ordering::Release);
}

/// Slot number of a turn on borrowed idle time (no slot is charged for it).
const NO_SLOT: usize = usize::MAX;

/// The turn in progress on a core: its clock (deadlines, phase, whose turn
/// it is and what that owner was charged: [`slices::TurnClock`], the pure
/// turn machine, model-tested on the host) and who runs in it.
struct Turn {
    /// Who runs: the slot's owner or the recipient of a donation.
    env: Arc<Env>,
    clock: slices::TurnClock,
    /// From when `env` is charged (CPU time is charged to whoever ran):
    /// its entry into user mode (see [`entering`]); at its deadline the
    /// charge so far is made, and runs again from the kernel's return to
    /// it (its epilogue's entry, or the critical section it was in).
    run_start: u64,
    /// From the turn's start, a revocation or a donation until `env`
    /// enters user mode: `run_start` then moves to the entry instant.
    awaiting_entry: bool,
    /// [`context_mark`] of the epilogue upcall's entry frame.
    grace_mark: u64,
}

/// The grace period and its renewal bound: an epilogue that has not
/// executed one instruction when its grace ends (its vCPU was off the
/// host CPU) gets it again, for at most one slice's worth in all.
///
/// A vCPU is not a CPU. A host under load deschedules vCPU threads for
/// longer than a grace period, and QEMU's one-thread round robin (TCG, so
/// every deterministic run on several cores) runs the other vCPUs up to
/// the machine's next timer deadline when a core arms one — the grace's
/// end — so the core that told its environment to yield comes back only
/// when its grace is over (measured, 2 cores: one revocation in two
/// reached its grace's end at the epilogue's first instruction; see also
/// [`arm_running`], which keeps deterministic runs from doing it). Taking
/// the core then would repossess a cooperative environment for time it
/// never had. The bound keeps a context that is really stuck where it was
/// told (`jmp .` at the epilogue's entry) from holding the core: it is
/// taken after one slice more, its whole overrun charged as always.
fn grace() -> slices::Grace {
    let c = config();
    slices::Grace {
        grace_ns: c.grace_ns,
        renew_limit_ns: c.slice_ns,
    }
}

/// A fingerprint of a user context: its instruction and stack pointers and
/// every general register. Unchanged across a grace period, the context
/// has not run (or has run only a loop that changes nothing, `jmp .`,
/// which the renewal bound catches).
fn context_mark(f: &TrapFrame) -> u64 {
    [
        f.rip, f.rsp, f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp, f.r8, f.r9, f.r10, f.r11,
        f.r12, f.r13, f.r14, f.r15, f.rflags,
    ]
    .iter()
    .fold(0xcbf2_9ce4_8422_2325, |h: u64, &w| {
        (h ^ w).wrapping_mul(0x0100_0000_01b3).rotate_left(29)
    })
}

struct Core {
    vector: slices::SliceVector,
    turn: Option<Turn>,
}

/// Per core: the environment of its turn (null between turns), so the
/// system-call and fault paths find the caller without the core's lock or
/// a reference count. Written only by the core itself, with its turn.
static RUNNING: [AtomicPtr<Env>; MAX_CORES] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CORES];

impl Core {
    fn begin_turn(&mut self, core: usize, turn: Turn) {
        RUNNING[core].store(Arc::as_ptr(&turn.env).cast_mut(), Ordering::Relaxed);
        self.turn = Some(turn);
    }

    fn end_turn(&mut self, core: usize) -> Option<Turn> {
        RUNNING[core].store(core::ptr::null_mut(), Ordering::Relaxed);
        self.turn.take()
    }
}

/// The environment whose turn this core is in, borrowed from the turn.
///
/// # Safety
/// Only for code entered from that environment's user mode on this core (a
/// system call or a fault), and only until that code ends this core's turn:
/// the turn's `Arc` keeps the environment alive; only this core ends its
/// turn, and every path that does so leaves through a call that never
/// returns (`next_turn`, `enter_prologue`, `enter_user`).
pub unsafe fn running_here<'a>() -> Option<&'a Env> {
    let env = RUNNING[percpu::core_id()].load(Ordering::Relaxed);
    // SAFETY: null, or the environment held by this core's turn, which (per
    // the contract) outlives the borrow.
    unsafe { env.as_ref() }
}

static CONFIG: BootCell<Config> = BootCell::new();
static CORES: BootCell<Vec<Mutex<Core>>> = BootCell::new();
/// Cores that have entered the scheduler (the timer then drives slices).
static ACTIVE: [AtomicBool; percpu::MAX_CPUS] =
    [const { AtomicBool::new(false) }; percpu::MAX_CPUS];
/// The run is ending: cores park ([`park_if_stopping`]) and idle cores
/// stop waiting.
static STOPPING: AtomicBool = AtomicBool::new(false);
/// Core 0's monitor of the run (`run::monitor`, installed by [`init`]: it
/// sits above the scheduler), called at every decision and timer tick.
static MONITOR: BootCell<fn(u64, bool)> = BootCell::new();
/// Cores parked at the end of a run.
static PARKED: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Ends the run: every core but the BSP parks at its next decision.
pub fn stop() {
    STOPPING.store(true, Ordering::Release);
}

/// Whether the run is ending.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::Acquire)
}

/// Core 0's monitor at `now` (`may_finish`: no environment runs on core 0).
fn monitor(now: u64, may_finish: bool) {
    (MONITOR.get())(now, may_finish)
}

/// Number of cores parked so far.
pub fn parked() -> usize {
    PARKED.load(Ordering::Acquire)
}

/// At the end of a run every core but the BSP stops here, after charging
/// its current turn, so the final figures are read from a still machine.
fn park_if_stopping(core: usize) {
    if core == 0 || !stopping() {
        return;
    }
    let turn = core_state(core).lock().end_turn(core);
    if let Some(t) = turn {
        stop_running(core, t, time::now_ns());
    }
    apic::stop_timer();
    PARKED.fetch_add(1, Ordering::AcqRel);
    crate::exit::halt_forever()
}

/// A resume-range retry: how soon to look again.
const RESUME_RETRY_NS: u64 = 5_000;

/// Sets up every core's slice vector and the exported pages; `monitor` is
/// core 0's monitor of the run (`run::monitor`).
pub fn init(cores: usize, config: Config, monitor: fn(u64, bool)) {
    CONFIG.init(config);
    MONITOR.init(monitor);
    exported::init(
        cores,
        config.slots as u32,
        config.slice_ns,
        config.grace_ns,
        config.app_sched,
    );
    CORES.init(
        (0..cores)
            .map(|_| {
                let mut vector = slices::SliceVector::new(config.slots, config.slice_ns);
                vector.set_offender_limit(config.offender_limit);
                Mutex::new(Core { vector, turn: None })
            })
            .collect(),
    );
}

pub fn config() -> Config {
    *CONFIG.get()
}

fn core_state(core: usize) -> &'static Mutex<Core> {
    &CORES.get()[core]
}

/// Whether `core` runs the scheduler.
pub fn active(core: usize) -> bool {
    ACTIVE[core].load(Ordering::Acquire)
}

// ---- Slot allocation (kernel side of slice_alloc / slice_free) -------------

/// Gives `env` slot `slot` (or any free slot) on `core`.
pub fn alloc_slot(env: &Env, core: usize, slot: Option<usize>) -> Result<usize, Error> {
    let cores = CORES.get();
    let state = cores.get(core).ok_or(Error::BadSlot)?;
    let mut c = state.lock();
    // `env_dying` marks the environment dying before it frees its slots
    // core by core, each under that core's lock: checked under the same
    // lock, an allocation either comes before the teardown reaches this
    // core (and is freed by it) or sees the mark. Unchecked, a dying
    // environment's allocation on a core the teardown had passed kept the
    // slot for ever (issue 14, hole 9).
    if !env.alive() {
        return Err(Error::BadEnv);
    }
    let id = slices::EnvId(env.id);
    let got = match slot {
        Some(s) => c.vector.alloc_named(s, id, &env.slot_quota).map(|()| s),
        None => c.vector.alloc_any(id, &env.slot_quota),
    }
    .map_err(slice_error)?;
    exported::core_slices_of(core).owners[got].store(env.id, Ordering::Release);
    env.account().slots_held.fetch_add(1, Ordering::Release);
    Ok(got)
}

/// Hands each `(env, n)` `n` free slots on `core`, interleaved: slot after
/// slot goes to the next environment in round-robin order among those
/// still wanting one, so nobody's turns bunch up in the walk.
pub fn grant_interleaved(core: usize, wants: &[(&Env, usize)]) -> Result<(), Error> {
    let mut wanted: alloc::vec::Vec<usize> = wants.iter().map(|&(_, n)| n).collect();
    let mut slot = 0;
    while wanted.iter().any(|&w| w > 0) {
        for (i, &(e, _)) in wants.iter().enumerate() {
            if wanted[i] > 0 {
                while slot_owner(core, slot).is_ok_and(|o| o != abi::syscall::NO_ENV) {
                    slot += 1;
                }
                alloc_slot(e, core, Some(slot))?;
                wanted[i] -= 1;
                slot += 1;
            }
        }
    }
    Ok(())
}

/// Takes slot `slot` on `core` back from `env`.
pub fn free_slot(env: &Env, core: usize, slot: usize) -> Result<(), Error> {
    let state = CORES.get().get(core).ok_or(Error::BadSlot)?;
    let mut c = state.lock();
    c.vector
        .free(slot, slices::EnvId(env.id), &env.slot_quota)
        .map_err(slice_error)?;
    exported::core_slices_of(core).owners[slot].store(NO_ENV, Ordering::Release);
    env.account().slots_held.fetch_sub(1, Ordering::Release);
    Ok(())
}

/// Owner of `slot` on `core`.
pub fn slot_owner(core: usize, slot: usize) -> Result<u32, Error> {
    let state = CORES.get().get(core).ok_or(Error::BadSlot)?;
    let c = state.lock();
    c.vector
        .owner(slot)
        .map(|o| o.map_or(NO_ENV, |e| e.0))
        .map_err(slice_error)
}

/// Slots owned by anyone in every core's vector. Takes every core's lock:
/// never call it holding one.
pub fn slots_owned() -> usize {
    CORES
        .get()
        .iter()
        .map(|state| {
            let c = state.lock();
            c.vector.len() - c.vector.free_count()
        })
        .sum()
}

fn slice_error(e: slices::SliceError) -> Error {
    use slices::SliceError as S;
    match e {
        S::NoSuchSlot => Error::BadSlot,
        S::SlotTaken => Error::Taken,
        S::NotOwner => Error::NotOwner,
        S::QuotaExceeded => Error::QuotaExceeded,
        S::NoFreeSlot => Error::Exhausted,
        S::Unowned => Error::BadSlot,
    }
}

// ---- Entering and leaving environments ------------------------------------

/// Makes this core a scheduling core. Never returns.
pub fn run_core() -> ! {
    // The scheduler runs with interrupts off (the mailbox that started
    // this core ran its work with them on).
    irq::disable();
    ACTIVE[percpu::core_id()].store(true, Ordering::Release);
    next_turn()
}

/// The running turn's environment on `core` enters user mode now: its
/// charge runs from here, and the instant is what `cpu_ns` will be charged
/// from (exported as `run_started_ns`).
///
/// The kernel's own work before it — choosing the turn, loading the
/// environment's tables, arming the timer, or taking the slice-end
/// interrupt and delivering the revocation — is the kernel's time, not
/// the environment's: no instruction of the environment runs in it. On
/// hardware that is a few microseconds a turn; in a deterministic run on
/// several cores it is also where QEMU's one thread runs the other vCPUs
/// (the timer write hands them the thread): measured (multicore-16) at
/// 32-39 µs from a turn's start to its entry on 2 cores beside 7.6 µs on
/// one, and slice-end timers firing 40-75 µs late on 4 and 8 cores.
/// Charged to the environment, that was time its threads could never get
/// (1.8% of it on 2 cores, 3.8% on 8).
///
/// An upcall within a stretch already charged (an exception's) changes
/// nothing.
fn entering(core: usize) -> u64 {
    let now = time::now_ns();
    core_state(core).lock().turn.as_mut().map_or(now, |t| {
        if core::mem::take(&mut t.awaiting_entry) {
            t.run_start = t.run_start.max(now);
        }
        t.run_start
    })
}

/// Charges the running environment for its time on this core and forgets it.
fn stop_running(core: usize, turn: Turn, now: u64) {
    note_uncharged_overrun(core, &turn, now);
    crate::ledger::charge(
        core,
        turn.run_start,
        now,
        crate::ledger::Charge::Env(turn.env.account()),
    );
    release_running(&turn.env);
}

/// Drops this core's claim on `env`; the last core off a dead env reaps it.
///
/// First this core stops using the environment's page tables: once the
/// claim is dropped another core may reap the environment and free (and
/// re-zero) its PML4, which must not be this core's CR3 any more.
fn release_running(env: &Env) {
    crate::arch::mm::leave_root(env.pml4);
    if env.running_on.fetch_sub(1, Ordering::SeqCst) == 1 && !env.alive() {
        reap(env.id);
    }
}

/// Claims `env` for this core; fails if it died meanwhile.
fn claim_running(env: &Env) -> bool {
    env.running_on.fetch_add(1, Ordering::SeqCst);
    if env.alive() {
        return true;
    }
    release_running(env);
    false
}

/// Whether `env` may run now: alive, and awake or woken by its predicate.
/// Returns the wake tag when its predicate just woke it.
fn runnable(env: &Env) -> Option<Option<u64>> {
    if !env.alive() {
        return None;
    }
    if !env.asleep.load(Ordering::Acquire) {
        return Some(None);
    }
    let tag = crate::wakeup::evaluate(env)?;
    env.asleep.store(false, Ordering::Release);
    env.account().wakeups.fetch_add(1, Ordering::Relaxed);
    Some(Some(tag))
}

/// The walk's questions, answered from the environment table.
struct Walker {
    /// Tag of the predicate that woke the chosen owner, if one did.
    woken: Option<u64>,
}

impl slices::Walk for Walker {
    fn runnable(&mut self, id: slices::EnvId) -> bool {
        match env::get(id.0).and_then(|e| runnable(&e)) {
            Some(tag) => {
                self.woken = tag;
                true
            }
            None => false,
        }
    }

    fn forfeited(&mut self, id: slices::EnvId) {
        if let Some(e) = env::get(id.0) {
            e.account().forfeits.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Picks and enters the next turn on this core; idles while nothing is
/// runnable. Never returns.
pub fn next_turn() -> ! {
    let core = percpu::core_id();
    loop {
        park_if_stopping(core);
        let now = time::now_ns();
        exported::sysinfo()
            .clock_ns
            .fetch_max(now, Ordering::Relaxed);
        if core == 0 {
            monitor(now, true);
        }
        let mut c = core_state(core).lock();
        debug_assert!(c.turn.is_none());
        let mut walk = Walker { woken: None };
        let decision = c.vector.next_turn(now, &mut walk);
        let woken = walk.woken;
        let slices_page = exported::core_slices_of(core);
        match decision {
            slices::Turn::Run {
                slot,
                owner,
                length_ns,
            } => {
                let Some(env) = env::get(owner.0).filter(|e| claim_running(e)) else {
                    continue;
                };
                slices_page
                    .current_slot
                    .store(slot as u32, Ordering::Relaxed);
                slices_page.turn_started_ns.store(now, Ordering::Relaxed);
                let reason = match woken {
                    Some(tag) => (UpcallReason::Woken, tag),
                    None => (UpcallReason::NewSlice, 0),
                };
                let clock = slices::TurnClock::begin(Some(owner), slot, now, length_ns, grace());
                let (end, grace_end) = (clock.end(), clock.grace_end());
                c.begin_turn(
                    core,
                    Turn {
                        env: env.clone(),
                        clock,
                        run_start: now,
                        awaiting_entry: true,
                        grace_mark: 0,
                    },
                );
                drop(c);
                env.account().turns.fetch_add(1, Ordering::Relaxed);
                enter_prologue(core, env, reason, end, grace_end);
            }
            // An unowned slot's turn (the kernel picks the default
            // environment itself in `idle_taker`, which also wakes sleepers
            // first; the vector never has one set), or nothing runnable at
            // all: one slice of borrowed time, or of idling, after which
            // sleepers' predicates are looked at again.
            turn => {
                let length_ns = match turn {
                    slices::Turn::Idle { slot, length_ns }
                    | slices::Turn::Default {
                        slot, length_ns, ..
                    } => {
                        slices_page
                            .current_slot
                            .store(slot as u32, Ordering::Relaxed);
                        length_ns
                    }
                    _ => config().slice_ns,
                };
                if let Some((env, reason)) = idle_taker(&c.vector) {
                    // Borrowed: no slot, no owner to charge.
                    let clock = slices::TurnClock::begin(None, NO_SLOT, now, length_ns, grace());
                    let (end, grace_end) = (clock.end(), clock.grace_end());
                    c.begin_turn(
                        core,
                        Turn {
                            env: env.clone(),
                            clock,
                            run_start: now,
                            awaiting_entry: true,
                            grace_mark: 0,
                        },
                    );
                    drop(c);
                    env.account().turns.fetch_add(1, Ordering::Relaxed);
                    enter_prologue(core, env, reason, end, grace_end);
                }
                slices_page.running_env.store(NO_ENV, Ordering::Relaxed);
                crate::trace::note(core, now, NO_ENV);
                drop(c);
                idle_until(core, now + length_ns);
            }
        }
    }
}

/// Who gets time this core would otherwise idle: first a sleeper holding a
/// slot here whose predicate now holds (woken at once rather than at its
/// slot), then the configured default environment. The returned env is
/// already claimed for this core.
fn idle_taker(vector: &slices::SliceVector) -> Option<(Arc<Env>, (UpcallReason, u64))> {
    for slot in 0..vector.len() {
        let Ok(Some(owner)) = vector.owner(slot) else {
            continue;
        };
        let Some(env) = env::get(owner.0) else {
            continue;
        };
        if env.asleep.load(Ordering::Acquire) {
            if let Some(Some(tag)) = runnable(&env) {
                if claim_running(&env) {
                    return Some((env, (UpcallReason::Woken, tag)));
                }
            }
        }
    }
    let env = env::get(DEFAULT_ENV.load(Ordering::Acquire))?;
    let wake = runnable(&env)?;
    claim_running(&env).then(|| {
        let reason = wake.map_or((UpcallReason::NewSlice, 0), |tag| {
            (UpcallReason::Woken, tag)
        });
        (env, reason)
    })
}

/// Halts until `until` (timer armed for it), accounting idle time.
fn idle_until(core: usize, until: u64) {
    let start = time::now_ns();
    apic::arm_timer_ns(until.saturating_sub(start).max(1));
    loop {
        // The timer (or a kick) wakes it.
        irq::enable_halt_disable();
        let now = time::now_ns();
        if now >= until || stopping() {
            crate::ledger::charge(core, start, now, crate::ledger::Charge::Idle);
            return;
        }
        if core == 0 {
            monitor(now, true);
        }
    }
}

/// Enters `env` at its prologue (or first entry) on this core.
///
/// Every function that enters user mode takes the environment by value and
/// drops it just before: a reference held across a call that never returns
/// would never be dropped, and the environment's kernel state would outlive
/// its reaping (the `reaped_env_state_freed` invariant). The turn's own
/// reference keeps it alive meanwhile.
fn enter_prologue(
    core: usize,
    env: Arc<Env>,
    (mut reason, mut arg): (UpcallReason, u64),
    end: u64,
    grace_end: u64,
) -> ! {
    if let Some(kept) = env.take_disabled_context(core) {
        resume_disabled(core, env, kept, end);
    }
    if env.take_start(core) {
        reason = UpcallReason::Start;
        arg = 0;
    } else if env.take_repossessed(core) {
        reason = UpcallReason::Repossessed;
        arg = 0;
    }
    let entry = {
        let t = env.upcalls.lock();
        if t.prologue != 0 {
            t.prologue
        } else {
            env.entry
        }
    };
    upcall(core, env, entry, reason, arg, end, grace_end)
}

/// Resumes the context a repossession caught disabled, with the disabled
/// flag it had (so its own revocation will be deferred until it leaves the
/// critical section).
fn resume_disabled(core: usize, env: Arc<Env>, kept: env::DisabledContext, end: u64) -> ! {
    let env::DisabledContext { mut ctx, flag } = kept;
    exported::core_slices_of(core)
        .running_env
        .store(env.id, Ordering::Relaxed);
    let now = time::now_ns();
    crate::trace::note(core, now, env.id);
    crate::latency::entering(core, now);
    let d = env.dispatch(core);
    d.events()
        .fetch_or(events::RESUMED_DISABLED, Ordering::AcqRel);
    d.slice_end_ns().store(end, Ordering::Relaxed);
    d.grace_end_ns()
        .store(end + config().grace_ns, Ordering::Relaxed);
    d.disabled().store(flag, Ordering::Release);
    switch_address_space(env.pml4);
    cpu::restore_user_fs(core);
    cpu::sanitise_fx(&mut ctx.fx);
    cpu::fxrstor(&ctx.fx);
    arm_for(time::now_ns(), end);
    match frame_from_context(&ctx) {
        Some(frame) => {
            d.run_started_ns().store(entering(core), Ordering::Relaxed);
            drop(env);
            enter_user(&frame)
        }
        None => {
            kill(
                &env,
                env::ExitReason::Killed("preempted context not in user space"),
            );
            drop(env);
            leave_current()
        }
    }
}

/// Enters `env` at `entry` on this core's upcall stack with the disabled
/// flag set and a clean FPU.
fn upcall(
    core: usize,
    env: Arc<Env>,
    entry: u64,
    reason: UpcallReason,
    arg: u64,
    end: u64,
    grace_end: u64,
) -> ! {
    exported::core_slices_of(core)
        .running_env
        .store(env.id, Ordering::Relaxed);
    let now = time::now_ns();
    crate::trace::note(core, now, env.id);
    crate::latency::entering(core, now);
    let d = env.dispatch(core);
    d.disabled().store(1, Ordering::Release);
    d.slice_end_ns().store(end, Ordering::Relaxed);
    d.grace_end_ns().store(grace_end, Ordering::Relaxed);
    switch_address_space(env.pml4);
    cpu::restore_user_fs(core);
    cpu::fxrstor(&CLEAN_FX.0);
    let now = time::now_ns();
    if reason == UpcallReason::Revoke {
        arm_for(now, grace_end);
    } else {
        arm_running(now, end);
    }
    let frame = upcall_frame(core, entry, reason, arg);
    d.run_started_ns().store(entering(core), Ordering::Relaxed);
    drop(env);
    enter_user(&frame)
}

/// The frame an upcall enters user mode with: `entry(reason, arg,
/// dispatch page, core)` on this core's upcall stack.
fn upcall_frame(core: usize, entry: u64, reason: UpcallReason, arg: u64) -> TrapFrame {
    TrapFrame {
        rip: entry,
        cs: u64::from(USER_CODE),
        rflags: 0x202,
        rsp: va::UPCALL_STACKS + (core as u64 + 1) * va::UPCALL_STACK_STRIDE - 8,
        ss: u64::from(USER_DATA),
        rdi: reason as u64,
        rsi: arg,
        rdx: va::DISPATCH + core as u64 * 0x1000,
        rcx: core as u64,
        ..TrapFrame::default()
    }
}

/// Arms the timer for a running turn's end, in steps of at most
/// `interleave_ns` when that is set.
///
/// A deterministic run on several cores is QEMU's one-thread round robin
/// with `-icount`: each vCPU runs until the machine's next timer deadline
/// before the next vCPU gets a turn (QEMU 7.2). A core that arms a short
/// deadline — the end of a grace period — is stopped at once and every
/// other vCPU runs that whole interval first: its environment, told to
/// yield, gets no instruction of its grace (measured on 2 cores before
/// this: one revocation in two repossessed at the epilogue's entry, and
/// with the grace renewal below, threads received 50% of their
/// application's time). With every running core's deadline at most
/// `interleave_ns` ahead, the vCPUs take turns at that grain, as cores of
/// a real machine run side by side. The step's interrupt only re-arms.
fn arm_running(now: u64, end: u64) {
    let step = config().interleave_ns;
    arm_for(now, if step == 0 { end } else { end.min(now + step) });
}

fn arm_for(now: u64, deadline: u64) {
    apic::arm_timer_ns(deadline.saturating_sub(now).max(1));
}

/// `pml4` is a claimed environment's root (`claim_running`): it stays
/// allocated while this core runs on it.
fn switch_address_space(pml4: u64) {
    crate::arch::mm::switch_root(pml4);
}

/// A trap frame resuming `ctx` in ring 3, with the user-controlled fields
/// made safe (user selectors, IF on, IOPL 0), or `None` for a non-user rip
/// or stack. `ctx` is a kernel-owned copy (a dispatch page snapshot, or a
/// context the kernel kept): what is checked here is what `iretq` gets.
fn frame_from_context(ctx: &UserContext) -> Option<TrapFrame> {
    if ctx.rip >= crate::aspace::USER_END || ctx.rsp >= crate::aspace::USER_END {
        return None;
    }
    // Keep the arithmetic flags, DF and TF; force IF; drop IOPL, NT, VM, AC, RF.
    let rflags = (ctx.rflags & 0x0000_0dd5) | 0x202;
    Some(TrapFrame {
        rax: ctx.rax,
        rbx: ctx.rbx,
        rcx: ctx.rcx,
        rdx: ctx.rdx,
        rsi: ctx.rsi,
        rdi: ctx.rdi,
        rbp: ctx.rbp,
        rsp: ctx.rsp,
        r8: ctx.r8,
        r9: ctx.r9,
        r10: ctx.r10,
        r11: ctx.r11,
        r12: ctx.r12,
        r13: ctx.r13,
        r14: ctx.r14,
        r15: ctx.r15,
        rip: ctx.rip,
        cs: u64::from(USER_CODE),
        rflags,
        ss: u64::from(USER_DATA),
        ..TrapFrame::default()
    })
}

// ---- Timer: revocation and repossession ------------------------------------

/// The timer fired on a scheduling core. Returns if the interrupted
/// context continues.
pub fn on_timer(frame: &mut TrapFrame) {
    let core = percpu::core_id();
    if !active(core) || !frame.is_user() {
        return; // idle loop or boot code: it checks the time itself
    }
    park_if_stopping(core);
    let now = time::now_ns();
    if core == 0 {
        monitor(now, false);
    }
    let mut c = core_state(core).lock();
    let Some(turn) = c.turn.as_mut() else { return };
    if !turn.env.alive() {
        let t = c.end_turn(core).expect("turn checked");
        drop(c);
        stop_running(core, t, now);
        next_turn();
    }
    // What the machine is told of the context matters only past the end
    // (reading the resume range takes a lock: not on every interleave tick).
    let seen = if now >= turn.clock.end() {
        slices::Seen {
            disabled: turn.env.dispatch(core).disabled().load(Ordering::Acquire) != 0,
            in_resume_range: turn.env.in_resume_range(frame.rip),
            untouched_since_told: turn.clock.phase() == slices::Phase::Revoking
                && context_mark(frame) == turn.grace_mark,
        }
    } else {
        slices::Seen::default()
    };
    match turn.clock.tick(now, seen, grace()) {
        Tick::Continue { until } if turn.clock.phase() == slices::Phase::Running => {
            arm_running(now, until)
        }
        Tick::Continue { until } => arm_for(now, until),
        // Restoring a context (a few instructions): revoked once it is in,
        // taken if it is still there at its grace's end (a range covering a
        // loop would keep the core for ever: the resume_hog experiment).
        Tick::RetryResume { grace_end } => {
            arm_for(now, grace_end.min(now + RESUME_RETRY_NS));
        }
        Tick::Defer { grace_end } => {
            let d = turn.env.dispatch(core);
            d.events()
                .fetch_or(events::REVOCATION_PENDING, Ordering::AcqRel);
            arm_for(now, grace_end);
            // As for a revocation told by an upcall: charged up to the
            // deadline, and again from its return to the interrupted code.
            let ran_from = turn.run_start;
            let end = turn.clock.end().max(ran_from);
            turn.run_start = time::now_ns().max(end);
            d.run_started_ns().store(turn.run_start, Ordering::Relaxed);
            crate::ledger::charge(
                core,
                ran_from,
                end,
                crate::ledger::Charge::Env(turn.env.account()),
            );
        }
        // Not one instruction ran since it was told: its vCPU was off the
        // host CPU, so the grace starts again from now.
        Tick::Renewed { grace_end } => {
            turn.env
                .account()
                .grace_renewals
                .fetch_add(1, Ordering::Relaxed);
            arm_for(now, grace_end);
        }
        Tick::Repossess => {
            drop(c);
            repossess(core, frame, now)
        }
        Tick::Revoke { grace_end } => {
            let entry = turn.env.upcalls.lock().epilogue;
            turn.grace_mark = context_mark(&upcall_frame(core, entry, UpcallReason::Revoke, 0));
            let env = turn.env.clone();
            let end = turn.clock.end();
            let deadline_clock = clock_at_deadline(&env, core, turn);
            // Charged up to its deadline now; from there until its epilogue
            // is entered the core is the kernel's (see `entering`).
            let ran_from = turn.run_start;
            turn.run_start = end.max(ran_from);
            turn.awaiting_entry = true;
            let ran_to = turn.run_start;
            drop(c);
            crate::ledger::charge(
                core,
                ran_from,
                ran_to,
                crate::ledger::Charge::Env(env.account()),
            );
            let d = env.dispatch(core);
            d.save(SaveArea::Enabled, frame);
            d.deadline_clock_ns()
                .store(deadline_clock, Ordering::Relaxed);
            if entry == 0 {
                // No epilogue: nothing to tell; take the core at once.
                drop(env);
                repossess(core, frame, now)
            }
            crate::latency::revocation(time::now_ns().saturating_sub(end));
            upcall(core, env, entry, UpcallReason::Revoke, 0, end, grace_end);
        }
    }
}

/// `env`'s CPU clock on `core` at `turn`'s deadline (its account moves
/// only when a turn ends, so it holds the time before this turn).
fn clock_at_deadline(env: &Env, core: usize, turn: &Turn) -> u64 {
    env.account().cpu_ns[core].load(Ordering::Relaxed)
        + turn.clock.end().saturating_sub(turn.run_start)
}

/// Whether `turn`'s owner is alive to be charged (a dead owner's slots and
/// debts are gone).
fn owner_alive(turn: &Turn) -> bool {
    turn.clock.owner().is_some_and(|o| env::get(o.0).is_some())
}

/// Per core: the most a turn ran past its end without being charged for
/// it, beyond the renewed grace it was given (see [`note_uncharged_overrun`]).
static UNCHARGED_MAX: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];

fn note_uncharged_overrun(core: usize, turn: &Turn, now: u64) {
    UNCHARGED_MAX[core].fetch_max(turn.clock.uncharged(now), Ordering::Relaxed);
}

/// The most any turn, ended or in progress, has run past its end without
/// its owner being charged (less renewed grace), over every core. Bounded
/// by the grace period (plus a revocation's lateness) unless a turn was
/// kept past its grace uncharged. Takes every core's lock: never call it
/// holding one.
pub fn uncharged_overrun_max_ns() -> u64 {
    let now = time::now_ns();
    CORES
        .get()
        .iter()
        .enumerate()
        .map(|(core, state)| {
            let live = state
                .lock()
                .turn
                .as_ref()
                .map_or(0, |t| t.clock.uncharged(now));
            live.max(UNCHARGED_MAX[core].load(Ordering::Relaxed))
        })
        .max()
        .unwrap_or(0)
}

/// Takes the core back by force: full context into the preempted save
/// area, the repossession recorded and charged, and on to the next turn.
fn repossess(core: usize, frame: &TrapFrame, now: u64) -> ! {
    let mut c = core_state(core).lock();
    let mut turn = c.end_turn(core).expect("repossess with a turn");
    crate::latency::repossessed(core, turn.clock.grace_end());
    // The turn's owner pays (even if a donation recipient ran, and even if
    // it gave the slot up meanwhile: then whoever holds it now is not
    // touched); what a donation past the end charged already is not
    // charged again. The vector returns the owner's quota unit itself if
    // it loses the slot.
    let slot = turn.clock.slot();
    let (overrun, lost_slot) = {
        let owner = turn.clock.owner().and_then(|o| env::get(o.0));
        let taken = turn
            .clock
            .repossess(now, &mut c.vector, owner.as_ref().map(|o| &o.slot_quota));
        if taken.lost_slot {
            exported::core_slices_of(core).owners[slot].store(NO_ENV, Ordering::Release);
            if let Some(owner) = &owner {
                owner.account().slots_held.fetch_sub(1, Ordering::Release);
                owner
                    .account()
                    .slots_revoked
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        (taken.overrun_ns, taken.lost_slot)
    };
    let env = &turn.env;
    drop(c);
    let d = env.dispatch(core);
    let flag = d.disabled().load(Ordering::Acquire);
    let was_disabled = flag != 0 || env.in_resume_range(frame.rip);
    if was_disabled {
        // It holds its own locks or runs on its upcall stack: an upcall now
        // could deadlock or clobber that stack, so it is resumed directly,
        // from the kernel's copy (the preempted area may hold the context
        // the interrupted upcall has yet to resume).
        let ctx = dispatch_page::context_of(frame);
        env.keep_disabled_context(core, env::DisabledContext { ctx, flag });
    } else {
        d.save(SaveArea::Preempted, frame);
        d.deadline_clock_ns()
            .store(clock_at_deadline(env, core, &turn), Ordering::Relaxed);
        env.set_repossessed(core);
    }
    d.events().fetch_or(events::REPOSSESSED, Ordering::AcqRel);
    d.repossessions().fetch_add(1, Ordering::Relaxed);
    d.last_repossession_ns().store(now, Ordering::Relaxed);
    d.last_overrun_ns().store(overrun, Ordering::Relaxed);
    env.account().repossessions.fetch_add(1, Ordering::Relaxed);
    record::emit(
        RecordKind::Event,
        format_args!(
            "\"event\":\"repossession\",\"env\":{},\"core\":{core},\"slot\":{},\"t_ns\":{now},\"overrun_ns\":{overrun},\"slot_revoked\":{lost_slot}",
            env.id, slot
        ),
    );
    stop_running(core, turn, now);
    next_turn()
}

/// A kick IPI on a scheduling core: drop the running env if it is dying.
pub fn on_kick(frame: &TrapFrame) {
    let core = percpu::core_id();
    if !active(core) || !frame.is_user() {
        return;
    }
    park_if_stopping(core);
    let mut c = core_state(core).lock();
    if c.turn.as_ref().is_some_and(|t| !t.env.alive()) {
        let t = c.end_turn(core).expect("checked");
        drop(c);
        stop_running(core, t, time::now_ns());
        next_turn();
    }
}

/// Kills `env` (its `exit`, or a kill): marks it dying, takes its slots
/// and lets the cores running it go ([`env_dying`]); its children die with
/// it (nobody else may kill them, and what they hold was lent by it). The
/// last core to let go of it reaps it.
pub fn kill(env: &Env, reason: env::ExitReason) {
    if !env::mark_dying(env, reason) {
        return;
    }
    env_dying(env);
    for child in env::all().iter().filter(|c| c.parent == env.id) {
        kill(child, env::ExitReason::Killed("its parent died"));
    }
}

/// Reaps environment `id` if it is dead and let go of everywhere, and
/// checks what came back.
fn reap(id: u32) {
    if let Some(r) = env::reap(id) {
        crate::invariants::on_reaped(r.id, r.owned, r.freed);
    }
}

/// An environment was killed: kick every other scheduling core so the ones
/// running it let go now rather than at their turn's end.
fn env_dying(env: &Env) {
    let me = percpu::core_id();
    for core in (0..crate::arch::smp::cores()).filter(|&c| c != me && active(c)) {
        apic::send_ipi(
            crate::arch::smp::apic_id(core),
            crate::arch::interrupts::vector::IPI_KICK,
        );
    }
    // Free its slots everywhere; the walk skips them from now on.
    for (core, state) in CORES.get().iter().enumerate() {
        let mut c = state.lock();
        let freed = c.vector.free_all(slices::EnvId(env.id), &env.slot_quota);
        if freed > 0 {
            let page = exported::core_slices_of(core);
            for o in page.owners.iter() {
                let _ = o.compare_exchange(env.id, NO_ENV, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
    }
    env.account().slots_held.store(0, Ordering::Relaxed);
    // The last core to let go reaps it, unless it let go before this point;
    // then this does (SeqCst on both sides: one of the two sees the other).
    env.slots_released.store(true, Ordering::SeqCst);
    if env.running_on.load(Ordering::SeqCst) == 0 {
        reap(env.id);
    }
}

// ---- System calls that end or hand over the turn ---------------------------

/// The caller (running on this core) gives up the rest of its turn, or
/// donates it to `target`. Errors leave the caller running.
///
/// With `save`, the caller's syscall frame is saved (returning 0) in its
/// enabled save area once the yield is certain to happen; with `sleep`, the
/// caller is marked asleep then too (never before a donation that may
/// still be refused: it would be left running, marked asleep).
fn give_up_turn(
    caller: &Env,
    target: Option<u32>,
    save: Option<&TrapFrame>,
    sleep: bool,
) -> Result<core::convert::Infallible, Error> {
    let core = percpu::core_id();
    let save_caller = || {
        if let Some(frame) = save {
            let mut f = *frame;
            f.rax = 0;
            caller.dispatch(core).save(SaveArea::Enabled, &f);
        }
        if sleep {
            caller.asleep.store(true, Ordering::Release);
        }
    };
    let now = time::now_ns();
    let target = target.or_else(|| {
        let t = caller.dispatch(core).donate_to().load(Ordering::Acquire);
        (t != NO_ENV).then_some(t)
    });
    let mut c = core_state(core).lock();
    if c.turn.is_none() {
        return Err(Error::NotPermitted);
    }
    match target {
        None => {
            let mut t = c.end_turn(core).expect("turn checked");
            // Time used past the turn's end beyond the grace allowance (a
            // long system call that ran over, say) is paid back like a
            // repossession's overrun, by the turn's owner; a yield within
            // grace costs nothing.
            let alive = owner_alive(&t);
            t.clock.end_by_yield(now, &mut c.vector, alive, grace());
            drop(c);
            save_caller();
            stop_running(core, t, now);
            next_turn()
        }
        Some(id) => {
            if id == caller.id {
                return Err(Error::BadArgument);
            }
            let recipient = env::get(id).ok_or(Error::BadEnv)?;
            if recipient.upcalls.lock().prologue == 0 && recipient.entry == 0 {
                return Err(Error::NotPermitted);
            }
            let wake = runnable(&recipient).ok_or(Error::NotRunnable)?;
            if !claim_running(&recipient) {
                return Err(Error::BadEnv);
            }
            save_caller();
            let Core {
                vector,
                turn: Some(turn),
            } = &mut *c
            else {
                unreachable!("turn checked, lock held");
            };
            caller
                .account()
                .donations_given
                .fetch_add(1, Ordering::Relaxed);
            recipient
                .account()
                .donations_received
                .fetch_add(1, Ordering::Relaxed);
            let donor = core::mem::replace(&mut turn.env, recipient.clone());
            RUNNING[core].store(Arc::as_ptr(&recipient).cast_mut(), Ordering::Relaxed);
            let ran_from = core::mem::replace(&mut turn.run_start, now);
            turn.awaiting_entry = true;
            // The recipient gets the rest of the donor's turn, deadline
            // and all: before the end, the rest of the slice; once the
            // donor has been told to yield, only what is left of its grace,
            // told at once (pending, as to a disabled context). A fresh
            // phase here would tell the recipient again with a grace from
            // now, and two environments donating to each other would keep
            // the core for ever (issue 14, hole 5). What the donor used
            // past its grace is charged now, like a late yield's.
            let alive = owner_alive(turn);
            if turn.clock.donate(now, vector, alive, grace()) {
                recipient
                    .dispatch(core)
                    .events()
                    .fetch_or(events::REVOCATION_PENDING, Ordering::AcqRel);
            }
            let (end, grace_end) = (turn.clock.end(), turn.clock.grace_end());
            drop(c);
            crate::ledger::charge(
                core,
                ran_from,
                now,
                crate::ledger::Charge::Env(donor.account()),
            );
            // Straight to the recipient's tables (claimed above, so they
            // stay): `release_running` then has no reason to pass through
            // the kernel's, which cost a second CR3 write per donation.
            switch_address_space(recipient.pml4);
            release_running(&donor);
            let reason = match wake {
                Some(tag) => (UpcallReason::Woken, tag),
                None => (UpcallReason::Donated, u64::from(donor.id)),
            };
            drop(donor);
            enter_prologue(core, recipient, reason, end, grace_end)
        }
    }
}

/// The caller (running on this core) gives up the rest of its turn, or
/// donates it to `target` (see [`give_up_turn`]). Errors leave the caller
/// running.
pub fn yield_turn(
    caller: &Env,
    target: Option<u32>,
    save: Option<&TrapFrame>,
) -> Result<core::convert::Infallible, Error> {
    give_up_turn(caller, target, save, false)
}

/// `sleep`: the caller sleeps until its predicate holds (its turn given
/// up, or donated to its `donate_to`). A refused donation leaves it
/// running and awake, with the error.
pub fn sleep(caller: &Env, save: Option<&TrapFrame>) -> Result<core::convert::Infallible, Error> {
    if caller.predicate.lock().is_none() {
        return Err(Error::BadArgument);
    }
    give_up_turn(caller, None, save, true)
}

/// `exit` or a kill of the running environment: leave it now.
pub fn leave_current() -> ! {
    let core = percpu::core_id();
    let t = core_state(core).lock().end_turn(core);
    if let Some(t) = t {
        stop_running(core, t, time::now_ns());
    }
    next_turn()
}

/// `resume(which)`: restore a save area of the caller's dispatch page for
/// this core, clearing the disabled flag as it returns.
pub fn resume(caller: &Env, which: SaveArea) -> Result<core::convert::Infallible, Error> {
    let core = percpu::core_id();
    let d = caller.dispatch(core);
    // One snapshot, checked and then used: the environment may rewrite the
    // area from another core while this runs (flip `rip` between a user
    // and a kernel address, say), and a second read of the page after the
    // checks would hand `iretq` a value nobody checked (a #GP in ring 0) or
    // `fxrstor` reserved MXCSR bits.
    let mut ctx = d.snapshot(which);
    if ctx.valid != 1 {
        return Err(Error::NotMapped);
    }
    let frame = frame_from_context(&ctx).ok_or(Error::BadAddress)?;
    d.mark_consumed(which);
    cpu::sanitise_fx(&mut ctx.fx);
    cpu::fxrstor(&ctx.fx);
    d.disabled().store(0, Ordering::Release);
    enter_user(&frame)
}

/// A fault in user code: reflect it to the environment's exception entry,
/// or kill the environment if it cannot take it.
pub fn on_user_fault(frame: &TrapFrame, cr2: u64) -> ! {
    let core = percpu::core_id();
    let turn = core_state(core)
        .lock()
        .turn
        .as_ref()
        .map(|t| (t.env.clone(), t.clock.end(), t.clock.grace_end()));
    let Some((env, end, grace_end)) = turn else {
        panic!("user fault with no environment on core {core}");
    };
    // (`env` is dropped on the way to user mode: see `enter_prologue`.)
    let d = env.dispatch(core);
    let entry = env.upcalls.lock().exception;
    let disabled = d.disabled().load(Ordering::Acquire) != 0;
    if entry == 0 || disabled {
        kill(
            &env,
            env::ExitReason::Killed(if entry == 0 {
                "fault with no exception handler"
            } else {
                "fault while disabled"
            }),
        );
        log::warn!(
            "env {} fault: {} at rip {:#x} addr {cr2:#x} error {:#x} cs {:#x} rsp {:#x} rcx {:#x} r11 {:#x} rax {}",
            env.id,
            crate::arch::interrupts::exception_name(frame.vector),
            frame.rip,
            frame.error_code,
            frame.cs,
            frame.rsp,
            frame.rcx,
            frame.r11,
            frame.rax
        );
        drop(env);
        leave_current();
    }
    d.set_fault_info(abi::shared::FaultInfo {
        vector: frame.vector,
        error_code: frame.error_code,
        address: cr2,
        rip: frame.rip,
    });
    d.save(SaveArea::Fault, frame);
    upcall(
        core,
        env,
        entry,
        UpcallReason::Exception,
        frame.vector,
        end,
        grace_end,
    )
}
