//! The turn loop: a core picks its next turn from its slice vector (or
//! idles, or lends the time to a sleeper whose predicate holds, or to the
//! default environment), claims the environment, and charges it for its
//! time when the turn ends.

use super::entry::{enter_prologue, Timer};
use super::kill::reap;
use super::revocation::note_uncharged_overrun;
use super::*;

/// The environment that receives unowned time (`NO_ENV`: the core idles).
static DEFAULT_ENV: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(NO_ENV);

/// Makes `id` the receiver of unowned time on every core.
pub fn set_default_env(id: u32) {
    DEFAULT_ENV.store(id, Ordering::Release);
}

/// Slot number of a turn on borrowed idle time (no slot is charged for it).
const NO_SLOT: usize = usize::MAX;

/// Longest a core's first turn starts late under a stagger seed.
const STAGGER_MAX_NS: u64 = 50_000;

/// How late each core's first turn was asked to start (spread and
/// stagger) and how late it started, in ns after the core entered
/// [`run_core`]: the end's `core_stats` report both, so a run shows that
/// its trial was the one its seed asked for.
static LATE_START: [[AtomicU64; 2]; percpu::MAX_CPUS] =
    [const { [AtomicU64::new(0), AtomicU64::new(0)] }; percpu::MAX_CPUS];

/// `(asked, taken)`: how late `core`'s first turn was asked to start and
/// how late it did; `None` while it has not started (both are written
/// before the core is marked active, which is read first).
pub fn late_start(core: usize) -> Option<(u64, u64)> {
    let [asked, taken] = &LATE_START[core];
    active(core).then(|| (asked.load(Ordering::Relaxed), taken.load(Ordering::Relaxed)))
}

/// Makes this core a scheduling core. Never returns.
pub fn run_core() -> ! {
    // The scheduler runs with interrupts off (the mailbox that started
    // this core ran its work with them on).
    irq::disable();
    let core = percpu::core_id();
    let entered = time::now_ns();
    // A trial's perturbation, before anything of the run has happened on
    // this core: its slice vector starts this much later. Spread, the
    // cores' turns also begin a slice over the cores apart (on 32
    // deterministic cores, turns begun together had every prologue queue
    // for its application's runtime lock: see `slices::spread_ns`).
    let spread = if config().spread_turns {
        slices::spread_ns(core, exported::sysinfo().cores as usize, config().slice_ns)
    } else {
        0
    };
    let late = spread + slices::stagger_ns(config().stagger_seed, core, STAGGER_MAX_NS);
    wait_on_timer_until(entered + late);
    LATE_START[core][0].store(late, Ordering::Relaxed);
    LATE_START[core][1].store(time::now_ns() - entered, Ordering::Relaxed);
    ACTIVE[core].store(true, Ordering::Release);
    next_turn()
}

/// Waits until `until` on this core's timer, charging no one: before its
/// first turn the core's time is not yet the run's.
///
/// Not a spin on the clock. In a deterministic multicore run a core
/// spinning on `rdtsc` saw it pass its end only at the machine's next
/// timer deadline: on 16 cores, once one core ran a turn (its timer a
/// 50 µs interleave step ahead), the others' staggers of 2.6 to 39 µs all
/// ended 54 to 75 µs after they began, at that step and then in core
/// order, and two seeds of the 64-core row gave the very same run. A
/// timer deadline is one the emulator schedules its vCPUs around, so the
/// wait ends when it next reaches the core after that deadline: a few µs
/// late while the other cores wait too, tens of µs when they run turns
/// meanwhile (`spread_turns`; both measured in s14).
fn wait_on_timer_until(until: u64) {
    loop {
        let now = time::now_ns();
        if now >= until {
            return;
        }
        apic::arm_timer_ns(until - now);
        // The timer (or a kick, or a periodic tick) wakes it.
        wait_for_interrupt();
    }
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
pub(super) fn entering(core: usize) -> u64 {
    let now = time::now_ns();
    core_state(core).lock().turn.as_mut().map_or(now, |t| {
        if core::mem::take(&mut t.awaiting_entry) {
            t.run_start = t.run_start.max(now);
        }
        t.run_start
    })
}

/// Charges the running environment for its time on this core and forgets it.
pub(super) fn stop_running(core: usize, turn: Turn, now: u64) {
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
pub(super) fn release_running(env: &Env) {
    crate::arch::mm::leave_root(env.pml4);
    if env.running_on.fetch_sub(1, Ordering::SeqCst) == 1 && !env.alive() {
        reap(env.id);
    }
}

/// Claims `env` for this core; fails if it died meanwhile.
pub(super) fn claim_running(env: &Env) -> bool {
    env.running_on.fetch_add(1, Ordering::SeqCst);
    if env.alive() {
        return true;
    }
    release_running(env);
    false
}

/// Whether `env` may run now: alive, and awake or woken by its predicate.
/// Returns the wake tag when its predicate just woke it.
pub(super) fn runnable(env: &Env) -> Option<Option<u64>> {
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
pub(super) fn next_turn() -> ! {
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
                enter_prologue(core, env, reason, end, grace_end, Timer::Arm);
            }
            // An unowned slot's turn (the kernel lends it in `idle_taker`:
            // to a sleeper its predicate woke, or the default environment),
            // or nothing runnable at all: one slice of borrowed time, or of
            // idling, after which sleepers' predicates are looked at again.
            turn => {
                let length_ns = match turn {
                    slices::Turn::Idle { slot, length_ns } => {
                        slices_page
                            .current_slot
                            .store(slot as u32, Ordering::Relaxed);
                        length_ns
                    }
                    _ => config().slice_ns,
                };
                if let Some((env, reason)) = idle_taker(&c.vector) {
                    // Borrowed: no slot, no owner to charge. Still a turn:
                    // the exported start says so (a libOS tells its turns
                    // apart by it).
                    slices_page.turn_started_ns.store(now, Ordering::Relaxed);
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
                    enter_prologue(core, env, reason, end, grace_end, Timer::Arm);
                }
                slices_page.running_env.store(NO_ENV, Ordering::Relaxed);
                crate::trace::note(core, now, NO_ENV);
                // Halt to the slice's end, or to the earliest instant a
                // sleeper holding a slot here may wake because time passed
                // (or a parked owner's park ends):
                // then the walk asks it again (a timed sleep wakes at its
                // deadline, not at the next slice boundary).
                // An owner's park here ending is such an instant too.
                let wake = sleepers_next_edge(&c.vector, now)
                    .into_iter()
                    .chain(c.vector.next_unpark(now))
                    .min();
                drop(c);
                idle_until(core, (now + length_ns).min(wake.unwrap_or(u64::MAX)));
            }
        }
    }
}

/// The earliest clock edge (`wakeup::next_clock_edge`) of the asleep
/// owners of `vector`'s slots.
fn sleepers_next_edge(vector: &slices::SliceVector, now: u64) -> Option<u64> {
    (0..vector.len())
        .filter_map(|slot| vector.owner(slot).ok().flatten())
        .filter_map(|owner| env::get(owner.0))
        .filter(|e| e.asleep.load(Ordering::Acquire))
        .filter_map(|e| crate::wakeup::next_clock_edge(&e, now))
        .min()
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

/// Lets interrupts in until one has run (a timer tick or a kick), then
/// masks them again: halted, or spinning when `idle_spin` is set.
///
/// Deterministic runs on several cores spin. QEMU 7.2's `-icount
/// sleep=off` moves the virtual clock of a machine whose vCPUs have all
/// halted to the next timer deadline, and when it does so, against where
/// its one thread is in the round robin of vCPUs, is host timing: 2-core
/// runs of sleepers (idle a quarter of the time) gave a different
/// `samples.csv` on each of four reruns, where runs whose cores never all
/// idled repeated exactly. A spinning core never halts.
fn wait_for_interrupt() {
    if !config().idle_spin {
        irq::enable_halt_disable();
        return;
    }
    let cpu = percpu::this();
    let taken = || cpu.ticks.load(Ordering::Relaxed) + cpu.ipis.load(Ordering::Relaxed);
    // Read with interrupts masked: one pending already runs after `sti`
    // and changes the count, so none is missed.
    let before = taken();
    irq::enable();
    // `pause` matters: QEMU's TCG ends the vCPU's run at one (it hands
    // the round robin on), so a spinning core takes next to none of the
    // machine's instructions. Without it, a lone CPU-bound thread on 2
    // cores did a tenth of the work (0.0029 iterations per charged ns,
    // against 0.0301 with the idle core halted or pausing).
    while taken() == before {
        core::hint::spin_loop();
    }
    irq::disable();
}

/// Halts until `until` (timer armed for it), accounting idle time.
fn idle_until(core: usize, until: u64) {
    let start = time::now_ns();
    apic::arm_timer_ns(until.saturating_sub(start).max(1));
    loop {
        // The timer (or a kick) wakes it.
        wait_for_interrupt();
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
