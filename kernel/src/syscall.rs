//! System-call dispatch. Every argument is checked against what the caller
//! owns; a bad one returns an error code and changes nothing. The calls
//! that always return to their caller are in [`light`], entered by a
//! shorter path; the ones that may switch context are here.

pub mod light;

use core::sync::atomic::{AtomicBool, Ordering};

use abi::syscall::{Error, SaveArea, Syscall, ANY_ENV, YIELD_SAVE};

use crate::arch::interrupts::TrapFrame;
use crate::arch::smp;
use crate::env::{self, Env};
use crate::sched;

/// Longest `log`/`report` message.
const MAX_MESSAGE: usize = abi::syscall::MAX_MESSAGE;
/// Longest predicate program.
const MAX_PREDICATE: usize = 1024;

/// Whether [`abi::syscall::TEST_BAD_IRET`] is honoured: set by the
/// `bad_iret` and `bad_iret_bare` experiments only.
pub static TEST_BAD_IRET_ENABLED: AtomicBool = AtomicBool::new(false);

/// Returns to the caller, with `rax` 0, by an `iretq` whose frame has a
/// null SS: the return faults in ring 0, after the swap to the user's GS,
/// as a corrupt or hostile frame would; the fix-up must make it the
/// caller's fault (`trap::return_to_user_faulted`). Only a kernel booted
/// for that test does this.
fn return_by_faulting_iretq(frame: &TrapFrame) -> ! {
    crate::arch::interrupts::enter_user(&TrapFrame {
        rax: 0,
        ss: 0,
        ..*frame
    })
}

/// A `syscall` from compatibility mode: never legitimate here (no 32-bit
/// code descriptor is present); the caller is killed.
pub fn from_compat_mode() -> ! {
    // SAFETY: entered from the running environment's user mode on this
    // core; `leave_current` ends the turn and never returns.
    if let Some(env) = unsafe { sched::RUNNING.here() } {
        log::warn!("env {}: syscall from compatibility mode", env.id);
        crate::sched::kill(
            env,
            env::ExitReason::Killed("syscall from compatibility mode"),
        );
    }
    sched::leave_current()
}

/// The full path's entry (installed at boot: `arch::interrupts::Handlers`).
pub extern "C" fn full_entry(frame: &mut TrapFrame) {
    handle_full(frame)
}

/// The compatibility-mode entry (installed at boot).
pub extern "C" fn compat_entry(_frame: &mut TrapFrame) -> ! {
    from_compat_mode()
}

/// Handles any syscall in `frame` (from the running environment), light
/// or not: the nested-KVM fix-up's way in (`trap::complete_syscall`), which
/// has built a frame. Writes the result into `rax` (and `rdx`). Calls that
/// switch context do not return.
pub fn handle(frame: &mut TrapFrame) {
    let Some(light) = Syscall::from_number(frame.rax).and_then(light::handler) else {
        return handle_full(frame);
    };
    // SAFETY: entered by a system call from ring 3 on this core.
    let caller = unsafe { light::Caller::here() };
    let args = [frame.rdi, frame.rsi, frame.rdx];
    frame.rax = match light(caller, args, &mut frame.rdx) {
        Ok(v) => v,
        Err(e) => e.encode(),
    };
}

/// Handles a syscall the entry stub sent down its full path: one of
/// [`light::FULL`], or an unknown number (the stub sends every light call
/// down its light path). Writes the result into `rax`; calls that switch
/// context do not return.
pub fn handle_full(frame: &mut TrapFrame) {
    // SAFETY: entered from the running environment's user mode on this
    // core; the calls that end its turn leave through paths that never
    // return here, and nothing below uses `env` after them.
    let Some(env) = (unsafe { sched::RUNNING.here() }) else {
        frame.rax = Error::NotPermitted.encode();
        return;
    };
    log::trace!(
        "syscall {} from env {} rip {:#x} rsp {:#x} cs {:#x}",
        frame.rax,
        env.id,
        frame.rip,
        frame.rsp,
        frame.cs
    );
    let args = [
        frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
    ];
    let result = match Syscall::from_number(frame.rax) {
        None if frame.rax == abi::syscall::TEST_BAD_IRET
            && TEST_BAD_IRET_ENABLED.load(Ordering::Relaxed) =>
        {
            return_by_faulting_iretq(frame)
        }
        None => Err(Error::BadSyscall),
        Some(call) => dispatch(env, call, args, frame),
    };
    frame.rax = match result {
        Ok(v) => v,
        Err(e) => e.encode(),
    };
}

fn user_bytes<'b>(env: &Env, ptr: u64, len: u64, buf: &'b mut [u8]) -> Result<&'b [u8], Error> {
    let len = usize::try_from(len).map_err(|_| Error::BadArgument)?;
    if len > buf.len() {
        return Err(Error::BadArgument);
    }
    env.with_aspace(|a| a.copy_in(ptr, &mut buf[..len]))
        .map_err(|_| Error::BadPointer)?;
    Ok(&buf[..len])
}

fn core_arg(core: u64) -> Result<usize, Error> {
    let core = usize::try_from(core).map_err(|_| Error::BadSlot)?;
    (core < smp::cores()).then_some(core).ok_or(Error::BadSlot)
}

fn slot_arg(slot: u64) -> Result<usize, Error> {
    let slot = usize::try_from(slot).map_err(|_| Error::BadSlot)?;
    (slot < sched::config().slots)
        .then_some(slot)
        .ok_or(Error::BadSlot)
}

fn env_arg(id: u64) -> Result<u32, Error> {
    u32::try_from(id).map_err(|_| Error::BadEnv)
}

/// The calls that may switch context ([`light::FULL`]), with the caller's
/// frame to save, resume from or abandon.
fn dispatch(env: &Env, call: Syscall, a: [u64; 6], frame: &mut TrapFrame) -> Result<u64, Error> {
    match call {
        Syscall::Exit => {
            crate::sched::kill(env, env::ExitReason::Exited(a[0]));
            sched::leave_current()
        }
        Syscall::Yield => {
            let target = if a[0] == ANY_ENV {
                None
            } else {
                Some(env_arg(a[0])?)
            };
            if a[1] & !YIELD_SAVE != 0 {
                return Err(Error::BadArgument);
            }
            let save = (a[1] & YIELD_SAVE != 0).then_some(&*frame);
            match sched::yield_turn(env, target, save)? {}
        }
        Syscall::Sleep => {
            if a[0] & !YIELD_SAVE != 0 {
                return Err(Error::BadArgument);
            }
            match sched::sleep(env, (a[0] & YIELD_SAVE != 0).then_some(&*frame))? {}
        }
        Syscall::Park => {
            abi::syscall::park_length(crate::arch::time::now_ns(), a[0])?;
            match sched::park(env, a[0])? {}
        }
        Syscall::Resume => {
            let which = match a[0] {
                0 => SaveArea::Enabled,
                1 => SaveArea::Preempted,
                2 => SaveArea::Fault,
                _ => return Err(Error::BadArgument),
            };
            match sched::resume(env, which)? {}
        }
        // Not reached: every other call is light, and went down the light
        // path or through `handle` (the partition is checked at compile
        // time, in `light`).
        _ => Err(Error::BadSyscall),
    }
}
