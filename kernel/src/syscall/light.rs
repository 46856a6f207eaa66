//! Light system calls: every call that always returns straight to its
//! caller. They enter through a short path of the `syscall` stub
//! (`arch::interrupts`, label `syscall_light`) that builds no `TrapFrame`:
//! it keeps the caller's RSP in this core's `light_caller_rsp`, pushes
//! only what the handler may clobber and the ABI (`abi::syscall`) promises
//! to keep — RCX and R11 (the caller's RIP and RFLAGS, for `sysret`), RDI,
//! RSI, R8, R9, R10 — calls the call's entry in [`ENTRIES`] on the
//! kernel stack, restores them and `sysret`s. The callee-saved registers
//! (RBX, RBP, R12–R15) never leave the registers: the System V ABI makes
//! the handler keep them. RAX and RDX carry the answer back ([`Reply`]).
//! The boot installs [`ENTRIES`] as the stub's table (`start`).
//! The null system call is this path and nothing else.
//!
//! Why the split is sound. A light call's caller context exists only in
//! the registers and on this core's kernel stack, so a light handler that
//! switched context — ended or handed over the turn, resumed a saved
//! context, entered an upcall — would lose it. A call is therefore light
//! only if its handler returns to its caller on every path; the four that
//! may not (`exit`, `yield`, `sleep`, `resume`: see [`FULL`]) keep the full
//! path and its frame. Each handler below says why it returns. What holds
//! them to it:
//!  - a [`Handler`] gets a [`Caller`], three arguments and the caller's RDX
//!    and returns a value: it has no `TrapFrame`, which the scheduler's
//!    switch functions that preserve a context (`yield_turn`, `sleep`)
//!    need, and no interrupt can switch under it (the stub runs it with
//!    interrupts off: IA32_FMASK clears IF, as on the full path);
//!  - the partition of `Syscall::ALL` into light calls and [`FULL`] is
//!    checked at compile time (below), so a new call is classified, never
//!    silently routed;
//!  - every path that switches context ends in `arch::interrupts::
//!    enter_user`, which panics while `light_caller_rsp` is set on the core:
//!    a light handler that switched would stop the kernel with that message
//!    instead of losing its caller's registers. (A caller whose RSP is 0
//!    hides its call from that check; it guards the kernel's own handlers,
//!    which do not depend on the caller's RSP.)
//!
//! Light calls take at most three arguments (RDI, RSI, RDX: the stub does
//! not move R10 into RCX) — all do. They are not traced with `log=trace`
//! (a level check on every call would be a tenth of the null call).

use abi::shared::UpcallTable;
use abi::syscall::{map_flags, Error, Syscall, ANY_FRAME, ANY_SLOT, MAP_FRESH_MAX_PAGES};

use super::{core_arg, env_arg, slot_arg, user_bytes, MAX_MESSAGE, MAX_PREDICATE};
use crate::arch::interrupts::{
    LightEntry as Entry, LightReply as Reply, LIGHT_TABLE_LEN as TABLE_LEN,
};
use crate::arch::percpu;
use crate::env::{self, Env};
use crate::{record, sched};
use abi::record::RecordKind;

/// The environment making a light call, looked up only by the calls that
/// act for it (the null call and `slice_owner` do not).
#[derive(Clone, Copy)]
pub struct Caller(());

impl Caller {
    /// # Safety
    /// Only in code entered by a system call from ring 3 on this core,
    /// until it returns there: then the environment running here (if any)
    /// is the caller, and its turn outlives the call (a light call never
    /// ends it).
    pub unsafe fn here() -> Caller {
        Caller(())
    }

    /// The calling environment (`NotPermitted` if none runs on this core).
    fn env(&self) -> Result<&Env, Error> {
        // SAFETY: a `Caller` exists only within a system call from the
        // environment running on this core (`here`), and a light call
        // never ends its turn, so the borrow cannot outlive the turn.
        unsafe { sched::RUNNING.here() }.ok_or(Error::NotPermitted)
    }
}

/// A light call's handler: the caller, its first three arguments, and the
/// caller's RDX, which the caller gets back as the handler leaves it (the
/// calls that answer in RDX write it). `Ok` is the caller's RAX; `Err`, the
/// negated code.
pub type Handler = fn(Caller, [u64; 3], &mut u64) -> Result<u64, Error>;

/// The calls that may not return to their caller: they keep the full path,
/// whose frame the scheduler saves, resumes or abandons.
pub const FULL: [Syscall; 5] = [
    Syscall::Exit,
    Syscall::Yield,
    Syscall::Sleep,
    Syscall::Resume,
    Syscall::Park,
];

#[inline(always)]
fn enter(
    handler: impl Fn(Caller, [u64; 3], &mut u64) -> Result<u64, Error>,
    args: [u64; 3],
) -> Reply {
    let mut rdx = args[2];
    // SAFETY: entries are called only by the stub's light path, entered by
    // `syscall` from ring 3 on this core, and return there.
    let caller = unsafe { Caller::here() };
    let rax = match handler(caller, args, &mut rdx) {
        Ok(v) => v,
        Err(e) => e.encode(),
    };
    Reply { rax, rdx }
}

/// Declares the light calls: `handler` for `syscall::handle` and the
/// stub's table, one `extern "C"` entry per call.
macro_rules! light_calls {
    ($($call:ident => $handler:ident,)*) => {
        /// The handler of `call`, if the call is light.
        pub fn handler(call: Syscall) -> Option<Handler> {
            match call {
                $(Syscall::$call => Some($handler),)*
                _ => None,
            }
        }

        /// The light path's table: entry `n` is light call `n`'s (`None`:
        /// not light; the stub sends such a number down the full path).
        pub const ENTRIES: [Option<Entry>; TABLE_LEN] = {
            let mut t: [Option<Entry>; TABLE_LEN] = [None; TABLE_LEN];
            $(
                t[Syscall::$call as usize] = Some({
                    extern "C" fn entry(a0: u64, a1: u64, a2: u64) -> Reply {
                        enter($handler, [a0, a1, a2])
                    }
                    entry as Entry
                });
            )*
            t
        };
    };
}

light_calls! {
    Null => null,
    Log => log,
    SelfInfo => self_info,
    SetUpcalls => set_upcalls,
    Report => report,
    SliceAlloc => slice_alloc,
    SliceFree => slice_free,
    SliceOwner => slice_owner,
    PredicateInstall => predicate_install,
    PredicateClear => predicate_clear,
    FrameAlloc => frame_alloc,
    FrameFree => frame_free,
    Map => map,
    MapFresh => map_fresh,
    Unmap => unmap,
    Spawn => spawn,
    Kill => kill,
}

// Every call is light or in FULL, never both.
const _: () = {
    let mut i = 0;
    while i < Syscall::ALL.len() {
        let n = Syscall::ALL[i] as u64;
        let light = (n as usize) < TABLE_LEN && ENTRIES[n as usize].is_some();
        let mut full = false;
        let mut j = 0;
        while j < FULL.len() {
            full |= FULL[j] as u64 == n;
            j += 1;
        }
        assert!(
            light != full,
            "a system call is neither light nor full, or both"
        );
        i += 1;
    }
};

// ---- The handlers. Each returns to its caller on every path. ---------------

/// Touches nothing.
fn null(_: Caller, _: [u64; 3], _: &mut u64) -> Result<u64, Error> {
    Ok(0)
}

/// Copies the text in and writes a console line.
fn log(c: Caller, a: [u64; 3], _: &mut u64) -> Result<u64, Error> {
    let env = c.env()?;
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

/// Copies the fields in and emits a record.
fn report(c: Caller, a: [u64; 3], _: &mut u64) -> Result<u64, Error> {
    let env = c.env()?;
    let mut buf = [0u8; MAX_MESSAGE];
    let bytes = user_bytes(env, a[0], a[1], &mut buf)?;
    // One line per record: a newline would let an environment forge records.
    // (Byte searches, word-at-a-time: a char-set `contains` took ~6
    // instructions a byte of every record.)
    if bytes.contains(&b'\n') || bytes.contains(&b'\r') {
        return Err(Error::BadArgument);
    }
    let text = core::str::from_utf8(bytes).map_err(|_| Error::BadArgument)?;
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

/// Reads two numbers.
fn self_info(c: Caller, _: [u64; 3], rdx: &mut u64) -> Result<u64, Error> {
    let env = c.env()?;
    *rdx = percpu::core_id() as u64;
    Ok(u64::from(env.id))
}

/// Writes the caller's upcall table; the entries take effect at the next
/// upcall, not now.
fn set_upcalls(c: Caller, a: [u64; 3], _: &mut u64) -> Result<u64, Error> {
    let env = c.env()?;
    let mut buf = [0u8; core::mem::size_of::<UpcallTable>()];
    user_bytes(env, a[0], buf.len() as u64, &mut buf)?;
    let word = |i: usize| u64::from_le_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
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

/// Changes a slice vector under its core's lock; the turn this core is in
/// goes on (a vector's change shows at its next decision).
fn slice_alloc(c: Caller, a: [u64; 3], _: &mut u64) -> Result<u64, Error> {
    let env = c.env()?;
    let core = core_arg(a[0])?;
    let slot = if a[1] == ANY_SLOT {
        None
    } else {
        Some(slot_arg(a[1])?)
    };
    sched::alloc_slot(env, core, slot).map(|s| s as u64)
}

/// As `slice_alloc`: freeing the slot of the turn under way does not end
/// the turn.
fn slice_free(c: Caller, a: [u64; 3], _: &mut u64) -> Result<u64, Error> {
    let env = c.env()?;
    sched::free_slot(env, core_arg(a[0])?, slot_arg(a[1])?).map(|()| 0)
}

/// Reads a slice vector.
fn slice_owner(_: Caller, a: [u64; 3], _: &mut u64) -> Result<u64, Error> {
    sched::slot_owner(core_arg(a[0])?, slot_arg(a[1])?).map(u64::from)
}

/// Verifies and stores a predicate; it is evaluated at the caller's next
/// `sleep`, not now.
fn predicate_install(c: Caller, a: [u64; 3], rdx: &mut u64) -> Result<u64, Error> {
    let env = c.env()?;
    let mut buf = [0u8; MAX_PREDICATE];
    let bytes = user_bytes(env, a[0], a[1], &mut buf)?;
    crate::wakeup::install(env, bytes)
        .map(|()| 0)
        .map_err(|(e, detail)| {
            *rdx = detail;
            e
        })
}

/// Drops the predicate.
fn predicate_clear(c: Caller, _: [u64; 3], _: &mut u64) -> Result<u64, Error> {
    *c.env()?.predicate.lock() = None;
    Ok(0)
}

/// Takes a frame from the pool.
fn frame_alloc(c: Caller, a: [u64; 3], _: &mut u64) -> Result<u64, Error> {
    c.env()?
        .frame_alloc(if a[0] == ANY_FRAME { None } else { Some(a[0]) })
}

/// Returns a frame to the pool.
fn frame_free(c: Caller, a: [u64; 3], _: &mut u64) -> Result<u64, Error> {
    c.env()?.frame_free(a[0]).map(|()| 0)
}

/// `map`'s and `map_fresh`'s flags: (writable, executable).
fn map_flags_arg(flags: u64) -> Result<(bool, bool), Error> {
    if flags & !(map_flags::WRITABLE | map_flags::EXECUTABLE) != 0 {
        return Err(Error::BadArgument);
    }
    Ok((
        flags & map_flags::WRITABLE != 0,
        flags & map_flags::EXECUTABLE != 0,
    ))
}

/// Edits the caller's page tables.
fn map(c: Caller, a: [u64; 3], _: &mut u64) -> Result<u64, Error> {
    let env = c.env()?;
    let (writable, executable) = map_flags_arg(a[2])?;
    env.map(a[0], a[1], writable, executable).map(|()| 0)
}

/// Takes frames from the pool and edits the caller's page tables, at most
/// `MAP_FRESH_MAX_PAGES` pages (interrupts are off throughout).
fn map_fresh(c: Caller, a: [u64; 3], _: &mut u64) -> Result<u64, Error> {
    let env = c.env()?;
    let (writable, executable) = map_flags_arg(a[2])?;
    if !(1..=MAP_FRESH_MAX_PAGES).contains(&a[1]) {
        return Err(Error::BadArgument);
    }
    env.map_fresh(a[0], a[1] as usize, writable, executable)
        .map(|n| n as u64)
}

/// Edits the caller's page tables and waits for the other cores' TLB
/// shootdown, with interrupts off as on the full path.
fn unmap(c: Caller, a: [u64; 3], _: &mut u64) -> Result<u64, Error> {
    c.env()?.unmap(a[0])
}

/// Builds a new environment; it runs only in the slots it is later given,
/// never in this turn.
fn spawn(c: Caller, a: [u64; 3], _: &mut u64) -> Result<u64, Error> {
    let env = c.env()?;
    let index = usize::try_from(a[0]).map_err(|_| Error::BadArgument)?;
    let quota = u32::try_from(a[1]).map_err(|_| Error::BadArgument)?;
    let (name, image) = crate::programs::program(index).ok_or(Error::BadArgument)?;
    env::spawn_child(env, name, image, quota)
        .map(|e| u64::from(e.id))
        .map_err(|_| Error::Exhausted)
}

/// Ends a child of the caller (and its descendants), never the caller: an
/// environment is not its own parent (a child's id is new when its
/// parent's is taken), so the caller's turn goes on; the cores that run
/// the child are kicked and let go of it themselves.
fn kill(c: Caller, a: [u64; 3], _: &mut u64) -> Result<u64, Error> {
    let env = c.env()?;
    let target = env::get(env_arg(a[0])?).ok_or(Error::BadEnv)?;
    if target.parent != env.id {
        return Err(Error::NotPermitted);
    }
    crate::sched::kill(&target, env::ExitReason::Killed("killed by its parent"));
    Ok(0)
}
