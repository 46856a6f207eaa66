//! Entering an environment: at its prologue or another upcall (on its
//! upcall stack, disabled, with a clean FPU), or resuming a context the
//! kernel kept or the environment saved; and reflecting its faults to its
//! exception entry.

use super::handoff::leave_current;
use super::kill::kill;
use super::turn::entering;
use super::*;
use crate::arch::interrupts::UserException;
use core::ptr::NonNull;

/// Whether entering an environment arms this core's timer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Timer {
    /// For the turn's deadline: its end, or its grace's end at a revocation.
    Arm,
    /// Armed already for the deadline the entry keeps: a donation before
    /// the turn's end hands the recipient the donor's deadline, and the
    /// timer is still armed for it (or for a step towards it) from the
    /// donor's entry — a turn's running phase arms nothing else. Re-arming
    /// cost a clock read and a timer write (~60 instructions) a donation.
    /// (A recipient resumed from a context the kernel kept disabled is
    /// armed anyway, as every such resume is.)
    Armed,
}

/// Enters `env` at its prologue (or first entry) on this core.
///
/// Every function that enters user mode takes the environment by value and
/// drops it just before: a reference held across a call that never returns
/// would never be dropped, and the environment's kernel state would outlive
/// its reaping (the `reaped_env_state_freed` invariant). The turn's own
/// reference keeps it alive meanwhile.
pub(super) fn enter_prologue(
    core: usize,
    env: Arc<Env>,
    (mut reason, mut arg): (UpcallReason, u64),
    end: u64,
    grace_end: u64,
    timer: Timer,
) -> ! {
    if let Some(kept) = env.take_disabled_context(core) {
        resume_disabled(core, env, kept, end, grace_end);
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
    upcall(core, env, entry, reason, arg, end, grace_end, timer)
}

/// Resumes the context a repossession caught disabled, with the disabled
/// flag it had (so its own revocation will be deferred until it leaves the
/// critical section). `end` and `grace_end` are the turn's (a donation
/// told to end hands over a grace that may end later than `end` plus one
/// grace period: told late, or renewed); the page shows them as they are,
/// as a fault reflected later does not write them again.
fn resume_disabled(
    core: usize,
    env: Arc<Env>,
    kept: env::DisabledContext,
    end: u64,
    grace_end: u64,
) -> ! {
    let env::DisabledContext { mut ctx, flag } = kept;
    exported::core_slices_of(core)
        .running_env
        .store(env.id, Ordering::Relaxed);
    let now = time::now_ns();
    crate::trace::note(core, now, env.id);
    crate::latency::entering(core, now);
    let d = env.dispatch(core);
    save_exceptions_at(&d);
    d.events()
        .fetch_or(events::RESUMED_DISABLED, Ordering::AcqRel);
    d.slice_end_ns().store(end, Ordering::Relaxed);
    d.grace_end_ns().store(grace_end, Ordering::Relaxed);
    d.disabled().store(flag, Ordering::Release);
    switch_address_space(env.pml4);
    cpu::restore_user_fs(core);
    cpu::sanitise_fx(&mut ctx.fx);
    cpu::fxrstor(&ctx.fx);
    arm_in_steps(time::now_ns(), end);
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
#[allow(clippy::too_many_arguments)] // each is a field of the entry, told apart by name
pub(super) fn upcall(
    core: usize,
    env: Arc<Env>,
    entry: u64,
    reason: UpcallReason,
    arg: u64,
    end: u64,
    grace_end: u64,
    timer: Timer,
) -> ! {
    exported::core_slices_of(core)
        .running_env
        .store(env.id, Ordering::Relaxed);
    let d = env.dispatch(core);
    save_exceptions_at(&d);
    switch_address_space(env.pml4);
    promise_upcall(&d, core, end, grace_end);
    // One clock read for the trace, the abort latency and the timer (two
    // before). The run's start is read after the timer write, which in a
    // deterministic run can stall this vCPU (see `entering`).
    let now = time::now_ns();
    crate::trace::note(core, now, env.id);
    crate::latency::entering(core, now);
    if timer == Timer::Arm {
        arm_in_steps(
            now,
            if reason == UpcallReason::Revoke {
                grace_end
            } else {
                end
            },
        );
    }
    let frame = upcall_frame(core, entry, reason, arg);
    d.run_started_ns().store(entering(core), Ordering::Relaxed);
    drop(env);
    enter_user(&frame)
}

/// The environment whose dispatch page for this core is `d` is entered
/// here now (its turn holds it until `end_turn`, which clears this): its
/// exceptions save their registers straight into its fault area (the
/// user-exception entry; see [`reflect_exception`]). Every entry of an
/// environment not running here already (`upcall`, `resume_disabled`)
/// passes here, so the area is always the running environment's: the
/// reflection checks it.
#[inline(always)]
#[allow(unsafe_code)]
fn save_exceptions_at(d: &crate::dispatch_page::DispatchPage<'_>) {
    // SAFETY: the fault area is in the environment's dispatch page for
    // this core, which lives while the environment has a claim on the
    // core (its turn, `RUNNING`); every path that ends the claim here
    // clears the area first (`end_turn`, a donation's hand-over), and only
    // this core's user-exception entry writes it while user code runs.
    unsafe { percpu::this().set_user_exception_area(d.area_address(SaveArea::Fault)) };
}

/// What every upcall promises the environment it enters on `core`, whose
/// dispatch page is `d`: disabled, the turn's end and grace end in the
/// page (see [`promise_entry`] for the rest).
#[inline(always)]
fn promise_upcall(
    d: &crate::dispatch_page::DispatchPage<'_>,
    core: usize,
    end: u64,
    grace_end: u64,
) {
    d.slice_end_ns().store(end, Ordering::Relaxed);
    d.grace_end_ns().store(grace_end, Ordering::Relaxed);
    promise_entry(d, core);
}

/// What every upcall promises beside the turn's times: disabled, FS at the
/// dispatch page, a clean FPU (`upcall`, and a fault reflected in place by
/// `reflect`, which leaves the times as the kernel last wrote them: every
/// change of them within a turn is written to the page, see `revocation`).
#[inline(always)]
fn promise_entry(d: &crate::dispatch_page::DispatchPage<'_>, core: usize) {
    d.disabled().store(1, Ordering::Release);
    cpu::restore_user_fs(core);
    cpu::fxrstor(&CLEAN_FX.0);
}

/// The frame an upcall enters user mode with: `entry(reason, arg,
/// dispatch page, core)` on this core's upcall stack, every other
/// register zero.
pub(super) fn upcall_frame(core: usize, entry: u64, reason: UpcallReason, arg: u64) -> TrapFrame {
    let mut upcall = UserException::default();
    aim_at_upcall(&mut upcall, core, entry, reason, arg);
    upcall.leaving()
}

/// Rewrites `frame` into the entry of an upcall (see [`upcall_frame`]).
#[inline(always)]
fn aim_at_upcall(
    frame: &mut UserException,
    core: usize,
    entry: u64,
    reason: UpcallReason,
    arg: u64,
) {
    frame.args = [
        reason as u64,
        arg,
        va::DISPATCH + core as u64 * 0x1000,
        core as u64,
    ];
    frame.rip = entry;
    frame.cs = u64::from(USER_CODE);
    frame.rflags = 0x202;
    frame.rsp = va::UPCALL_STACKS + (core as u64 + 1) * va::UPCALL_STACK_STRIDE - 8;
    frame.ss = u64::from(USER_DATA);
}

/// Arms the timer for `deadline` — a turn's end, or its grace's end —
/// while an environment runs, in steps of at most `interleave_ns` when
/// that is set.
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
/// A grace is stepped too: when every core was in one at once (slices end
/// together), each vCPU ran a whole grace before the next, and a core saw
/// its grace's end one grace late (15.0 ms at 15 ms graces on 4 cores).
pub(super) fn arm_in_steps(now: u64, deadline: u64) {
    let step = config().interleave_ns;
    arm_for(
        now,
        if step == 0 {
            deadline
        } else {
            deadline.min(now + step)
        },
    );
}

pub(super) fn arm_for(now: u64, deadline: u64) {
    apic::arm_timer_ns(deadline.saturating_sub(now).max(1));
}

/// `pml4` is a claimed environment's root (`claim_running`): it stays
/// allocated while this core runs on it.
pub(super) fn switch_address_space(pml4: u64) {
    crate::arch::mm::switch_root(pml4);
}

/// A trap frame resuming `ctx` in ring 3, with the user-controlled fields
/// made safe (user selectors, IF on, IOPL 0), or `None` for a non-user rip
/// or stack. `ctx` is a kernel-owned copy (a dispatch page snapshot, or a
/// context the kernel kept): what is checked here is what `iretq` gets.
pub(super) fn frame_from_context(ctx: &UserContext) -> Option<TrapFrame> {
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

/// Where a user fault's general registers are: saved in the fault area
/// by the user-exception entry already (at the address it used), or in a
/// trap frame.
#[derive(Clone, Copy)]
enum FaultRegisters<'a> {
    Saved(NonNull<UserContext>),
    In(&'a TrapFrame),
}

/// A fault in user code whose general registers the user-exception entry
/// saved at `area` (the running environment's fault area on this core):
/// reflected to the environment's exception entry by rewriting `frame`
/// into that upcall's entry, which the entry's return enters; or the
/// environment is killed if it cannot take it (and this does not return).
/// The context is saved once, where the environment reads it (the general
/// registers by the entry, the rest here); through a trap frame it was
/// saved on the kernel stack and copied (#BP → upcall → resume: 368
/// instructions in a det run that way).
#[inline]
pub fn reflect_exception(
    env: &Env,
    frame: &mut UserException,
    area: NonNull<UserContext>,
    cr2: u64,
) {
    reflect(env, frame, FaultRegisters::Saved(area), cr2);
}

/// A fault in user code taken through a trap frame (an `iretq` to ring 3
/// that faulted; a fault at the syscall entry that was no syscall):
/// reflected as [`reflect_exception`] does, `frame` rewritten into the
/// upcall's entry; or the environment is killed (and this does not
/// return).
pub fn on_user_fault(env: &Env, frame: &mut TrapFrame, cr2: u64) {
    let mut exception = UserException::of(frame);
    reflect(env, &mut exception, FaultRegisters::In(frame), cr2);
    *frame = exception.leaving();
}

/// Reflects a user fault of `env`, the environment running on this core
/// (`RUNNING`, borrowed by the caller, which is entered from its user
/// mode), to its exception entry, or kills it if it cannot take it (and
/// does not return).
///
/// The environment is inside its running stretch on this core (a fault is
/// taken in its code, or in the `iretq` entering it after every entry's
/// bookkeeping), so what `upcall` does for a new stretch already holds:
/// its address space is loaded, it is the core's running environment and
/// the trace's, its run start is set (no entry awaited: every path that
/// sets `awaiting_entry` enters through `upcall` or `resume_disabled`,
/// which clear it), the timer is armed for its deadline or the next step
/// and the turn's times are in the page. Only what an upcall promises
/// besides is done: disabled, FS at the dispatch page, a clean FPU, the
/// entry frame. (`run_started_ns` in the page is not stored again:
/// unchanged within a stretch, and the kernel never reads it back.) No
/// lock of the core's is taken: nothing here reads or changes its turn.
/// (Through `upcall` it also re-armed the timer, read the clock twice,
/// took the core's lock again and copied the frame to the stack top: #BP
/// → upcall → resume took 595 instructions in a det run, 371 this way;
/// holding the core's lock to store the turn's times again cost ~20.)
#[inline(always)]
fn reflect(env: &Env, frame: &mut UserException, registers: FaultRegisters<'_>, cr2: u64) {
    let core = percpu::core_id();
    let entry = env.upcalls.lock().exception;
    let d = env.dispatch(core);
    if let FaultRegisters::Saved(area) = registers {
        // The entry found the area where `save_exceptions_at` put it:
        // anything else is a scheduler bug that has written over memory
        // already.
        assert!(
            area == d.area_address(SaveArea::Fault),
            "user exception saved at {area:p}, not the running environment's fault area"
        );
    }
    if entry == 0 || d.disabled().load(Ordering::Acquire) != 0 {
        let why = if entry == 0 {
            "fault with no exception handler"
        } else {
            "fault while disabled"
        };
        kill_for_fault(env, why, frame, registers, cr2);
    }
    d.set_fault_info(abi::shared::FaultInfo {
        vector: frame.vector,
        error_code: frame.error_code,
        address: cr2,
        rip: frame.rip,
    });
    match registers {
        FaultRegisters::Saved(_) => {
            d.save_rest(SaveArea::Fault, frame.rip, frame.rflags, frame.rsp)
        }
        FaultRegisters::In(f) => d.save(SaveArea::Fault, f),
    }
    promise_entry(&d, core);
    aim_at_upcall(frame, core, entry, UpcallReason::Exception, frame.vector);
}

/// Kills `env`, whose fault on this core it cannot take (`why`), and
/// leaves it. Out of line: its log's registers (a snapshot of the fault
/// area) and its calls kept the reflection's frame and pushes large.
#[cold]
#[inline(never)]
fn kill_for_fault(
    env: &Env,
    why: &'static str,
    frame: &UserException,
    registers: FaultRegisters<'_>,
    cr2: u64,
) -> ! {
    let (rcx, r11, rax) = match registers {
        FaultRegisters::In(f) => (f.rcx, f.r11, f.rax),
        FaultRegisters::Saved(_) => {
            let saved = env.dispatch(percpu::core_id()).snapshot(SaveArea::Fault);
            (saved.rcx, saved.r11, saved.rax)
        }
    };
    kill(env, env::ExitReason::Killed(why));
    log::warn!(
        "env {} fault: {} at rip {:#x} addr {cr2:#x} error {:#x} cs {:#x} rsp {:#x} rcx {rcx:#x} r11 {r11:#x} rax {rax}",
        env.id,
        crate::arch::interrupts::exception_name(frame.vector),
        frame.rip,
        frame.error_code,
        frame.cs,
        frame.rsp,
    );
    // The borrow of `env` ends here: leaving ends the turn that holds it.
    leave_current()
}
