//! System-call dispatch. Every argument is checked against what the caller
//! owns; a bad one returns an error code and changes nothing.

use core::sync::atomic::Ordering;

use abi::record::RecordKind;
use abi::shared::UpcallTable;
use abi::syscall::{map_flags, Error, SaveArea, Syscall, ANY_ENV, ANY_FRAME, ANY_SLOT, YIELD_SAVE};

use crate::arch::interrupts::TrapFrame;
use crate::env::{self, Env};
use crate::{percpu, record, sched, smp};

/// Longest `log`/`report` message.
const MAX_MESSAGE: usize = 1024;
/// Longest predicate program.
const MAX_PREDICATE: usize = 1024;

/// Handles the syscall in `frame` (from the running environment); writes
/// the result into `rax` (and `rdx`). Calls that switch context do not return.
/// A `syscall` from compatibility mode: never legitimate here (no 32-bit
/// code descriptor is present); the caller is killed.
pub fn from_compat_mode() -> ! {
    // SAFETY: entered from the running environment's user mode on this
    // core; `leave_current` ends the turn and never returns.
    if let Some(env) = unsafe { sched::running_here() } {
        log::warn!("env {}: syscall from compatibility mode", env.id);
        env::kill(
            env,
            env::ExitReason::Killed("syscall from compatibility mode"),
        );
    }
    sched::leave_current()
}

pub fn handle(frame: &mut TrapFrame) {
    // SAFETY: entered from the running environment's user mode on this
    // core; the calls that end its turn leave through paths that never
    // return here, and nothing below uses `env` after them.
    let Some(env) = (unsafe { sched::running_here() }) else {
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

fn dispatch(env: &Env, call: Syscall, a: [u64; 6], frame: &mut TrapFrame) -> Result<u64, Error> {
    match call {
        Syscall::Null => Ok(0),
        Syscall::Log => {
            let mut buf = [0u8; MAX_MESSAGE];
            let bytes = user_bytes(env, a[0], a[1], &mut buf)?;
            let text = core::str::from_utf8(bytes).map_err(|_| Error::BadArgument)?;
            let text = text.trim_end();
            // One console line: after a line break, the text would start a
            // line of its own, which the runner could take for a record.
            if text.contains(['\n', '\r']) {
                return Err(Error::BadArgument);
            }
            log::info!("env {} ({}): {text}", env.id, env.name());
            Ok(0)
        }
        Syscall::Report => {
            let mut buf = [0u8; MAX_MESSAGE];
            let bytes = user_bytes(env, a[0], a[1], &mut buf)?;
            let text = core::str::from_utf8(bytes).map_err(|_| Error::BadArgument)?;
            // One line per record: a newline would let an environment forge records.
            if text.contains(['\n', '\r']) {
                return Err(Error::BadArgument);
            }
            record::emit(
                RecordKind::User,
                format_args!(
                    "\"env\":{},\"name\":\"{}\",\"core\":{},{text}",
                    env.id,
                    env.name(),
                    percpu::core_id()
                ),
            );
            Ok(0)
        }
        Syscall::SelfInfo => {
            frame.rdx = percpu::core_id() as u64;
            Ok(u64::from(env.id))
        }
        Syscall::Exit => {
            env::kill(env, env::ExitReason::Exited(a[0]));
            sched::leave_current()
        }
        Syscall::SetUpcalls => {
            let mut buf = [0u8; core::mem::size_of::<UpcallTable>()];
            user_bytes(env, a[0], buf.len() as u64, &mut buf)?;
            let word =
                |i: usize| u64::from_le_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
            let table = UpcallTable {
                prologue: word(0),
                epilogue: word(1),
                exception: word(2),
                resume_start: word(3),
                resume_end: word(4),
            };
            let user = |v: u64| v < crate::aspace::USER_END;
            if ![
                table.prologue,
                table.epilogue,
                table.exception,
                table.resume_start,
                table.resume_end,
            ]
            .into_iter()
            .all(user)
                || table.resume_start > table.resume_end
            {
                return Err(Error::BadAddress);
            }
            *env.upcalls.lock() = table;
            Ok(0)
        }
        Syscall::SliceAlloc => {
            let core = core_arg(a[0])?;
            let slot = if a[1] == ANY_SLOT {
                None
            } else {
                Some(slot_arg(a[1])?)
            };
            sched::alloc_slot(env, core, slot).map(|s| s as u64)
        }
        Syscall::SliceFree => sched::free_slot(env, core_arg(a[0])?, slot_arg(a[1])?).map(|()| 0),
        Syscall::SliceOwner => sched::slot_owner(core_arg(a[0])?, slot_arg(a[1])?).map(u64::from),
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
        Syscall::PredicateInstall => {
            let mut buf = [0u8; MAX_PREDICATE];
            let bytes = user_bytes(env, a[0], a[1], &mut buf)?;
            crate::wakeup::install(env, bytes)
                .map(|()| 0)
                .map_err(|(e, detail)| {
                    frame.rdx = detail;
                    e
                })
        }
        Syscall::PredicateClear => {
            *env.predicate.lock() = None;
            Ok(0)
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
        Syscall::FrameAlloc => env.frame_alloc(if a[0] == ANY_FRAME { None } else { Some(a[0]) }),
        Syscall::FrameFree => env.frame_free(a[0]).map(|()| 0),
        Syscall::Map => {
            if a[2] & !(map_flags::WRITABLE | map_flags::EXECUTABLE) != 0 {
                return Err(Error::BadArgument);
            }
            env.map(
                a[0],
                a[1],
                a[2] & map_flags::WRITABLE != 0,
                a[2] & map_flags::EXECUTABLE != 0,
            )
            .map(|()| 0)
        }
        Syscall::Unmap => env.unmap(a[0]),
        Syscall::Spawn => {
            let index = usize::try_from(a[0]).map_err(|_| Error::BadArgument)?;
            let quota = u32::try_from(a[1]).map_err(|_| Error::BadArgument)?;
            let (name, image) = crate::run::program(index).ok_or(Error::BadArgument)?;
            env::spawn_child(env, name, image, quota)
                .map(|e| u64::from(e.id))
                .map_err(|_| Error::Exhausted)
        }
        Syscall::Kill => {
            let target = env::get(env_arg(a[0])?).ok_or(Error::BadEnv)?;
            if target.parent != env.id {
                return Err(Error::NotPermitted);
            }
            env::kill(&target, env::ExitReason::Killed("killed by its parent"));
            let _ = Ordering::Relaxed;
            Ok(0)
        }
    }
}
