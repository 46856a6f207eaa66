//! The CPU interface: each core walks its slice vector, enters the owner of
//! each turn at its prologue, revokes visibly at the turn's end (epilogue
//! upcall, or a pending flag while the environment is disabled), and past
//! the grace period repossesses the core by force. Directed yield hands the
//! rest of a turn to another environment; sleepers are skipped (and not
//! charged) until their wakeup predicate holds.
//!
//! Everything here runs with interrupts off, on the core it concerns, under
//! that core's lock (but a user fault's reflection, which reads and changes
//! nothing of the core's turn: `entry::reflect`). Paths that switch context
//! end in `enter_user` (they do not return); paths that continue the
//! interrupted context return (a fault reflected to the environment's
//! exception entry too: the entry's own frame is rewritten,
//! `entry::reflect_exception`).
//!
//! Here: the per-core state (a turn, its clock and who runs in it) and the
//! run's start and end. Along the turn's own seams:
//!  - [`turn`]: the loop that picks, claims and charges each turn;
//!  - [`entry`]: into user mode (prologue and other upcalls, resuming a
//!    kept or saved context) and faults reflected to the environment;
//!  - [`revocation`]: the timer at a turn's end, the grace period, and
//!    repossession;
//!  - [`handoff`]: yield, donation, sleep, exit and resume;
//!  - [`slots`]: slot allocation;
//!  - [`kill`]: an environment's death, and its reaping.
#![deny(unsafe_code)]

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use abi::shared::{events, va, UpcallReason, UserContext, MAX_CORES};
use abi::syscall::{Error, SaveArea, NO_ENV};
use spin::Mutex;

use crate::arch::cpu::{self, CLEAN_FX};
use crate::arch::gdt::{USER_CODE, USER_DATA};
use crate::arch::interrupts::{enter_user, TrapFrame};
use crate::arch::percpu::CurrentRef;
use crate::arch::{apic, irq, percpu, time};
use crate::env::{self, Env};
use crate::sync::BootCell;
use crate::{dispatch_page, exported, record};
use slices::Tick;

mod entry;
mod handoff;
mod kill;
mod revocation;
mod slots;
mod turn;

pub use entry::{on_user_fault, reflect_exception};
pub use handoff::{leave_current, park, resume, sleep, yield_turn};
pub use kill::{kill, on_kick};
pub use revocation::{on_timer, uncharged_overrun_max_ns};
pub use slots::{alloc_slot, free_slot, grant_interleaved, slot_owner, slots_owned};
use turn::stop_running;
pub use turn::{late_start, run_core, set_default_env};

/// Boot-time configuration of the slice vectors.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub slots: usize,
    pub slice_ns: u64,
    pub grace_ns: u64,
    /// Longest the timer is armed ahead while an environment runs (0: to
    /// its turn's end): see `entry::arm_in_steps`.
    pub interleave_ns: u64,
    /// Seed of each core's late start (0: none): see `turn::run_core`.
    pub stagger_seed: u64,
    /// Cores' slice vectors start evenly apart within a slice: see
    /// `turn::run_core`.
    pub spread_turns: bool,
    /// Idle cores spin instead of halting: see `turn::wait_for_interrupt`.
    pub idle_spin: bool,
    /// Repossessions within a slot's last 32 turns that cost the owner the
    /// slot (0 = never).
    pub offender_limit: u32,
    /// Scheduler applications start with (exported in `SysInfo::sched`).
    pub app_sched: u32,
}

/// The turn in progress on a core: its clock (deadlines, phase, whose turn
/// it is and what that owner was charged: [`slices::TurnClock`], the pure
/// turn machine, model-tested on the host) and who runs in it.
struct Turn {
    /// Who runs: the slot's owner or the recipient of a donation.
    env: Arc<Env>,
    clock: slices::TurnClock,
    /// From when `env` is charged (CPU time is charged to whoever ran):
    /// its entry into user mode (see `turn::entering`); at its deadline the
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
/// `entry::arm_in_steps`, which keeps deterministic runs from doing it). Taking
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

/// Per core: the environment of its turn (none between turns), so the
/// system-call and fault paths find the caller without the core's lock or
/// a reference count. Written only by the core itself, with its turn.
///
/// Borrowing from it (`RUNNING.here()`) is for code entered from that
/// environment's user mode on this core (a system call or a fault), and
/// only until that code ends this core's turn: the turn's `Arc` keeps the
/// environment alive; only this core ends its turn, and every path that
/// does so leaves through a call that never returns (`next_turn`,
/// `enter_prologue`, `enter_user`).
pub static RUNNING: CurrentRef<Env> = CurrentRef::new();

impl Core {
    fn begin_turn(&mut self, core: usize, turn: Turn) {
        RUNNING.set(core, &turn.env);
        self.turn = Some(turn);
    }

    fn end_turn(&mut self, core: usize) -> Option<Turn> {
        RUNNING.clear(core);
        // No user code runs here until the next entry names its own area
        // (`entry::save_exceptions_at`); none is left naming the turn's.
        percpu::this().clear_user_exception_area();
        self.turn.take()
    }
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
