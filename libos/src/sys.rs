//! Typed wrappers for every system call, and views of the exported pages.

use core::arch::asm;

use abi::shared::{va, CoreSlices, Dispatch, EnvAccount, RepossessionLog, SysInfo, UpcallTable};
use abi::syscall::{Error, SaveArea, Syscall, ANY_ENV, ANY_FRAME, ANY_SLOT, NO_ENV, YIELD_SAVE};

/// Raw `syscall`: number and up to six arguments; returns (rax, rdx).
///
/// # Safety
/// The arguments must be valid for the call (pointers readable, ...); the
/// kernel checks them, so a wrong one yields an error, but calls that
/// switch context (yield, resume, exit) do not return normally.
#[inline(always)]
pub unsafe fn raw(n: u64, a: [u64; 6]) -> (u64, u64) {
    let (rax, rdx);
    // SAFETY: per this function's contract; rcx and r11 are clobbered by
    // the instruction, everything else is preserved by the kernel.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n => rax,
            in("rdi") a[0],
            in("rsi") a[1],
            inlateout("rdx") a[2] => rdx,
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    (rax, rdx)
}

#[inline]
fn call(n: Syscall, a: [u64; 6]) -> Result<u64, Error> {
    // SAFETY: every wrapper below passes arguments the kernel validates.
    Error::decode(unsafe { raw(n as u64, a) }.0)
}

#[inline]
pub fn null() -> Result<u64, Error> {
    call(Syscall::Null, [0; 6])
}

/// The floor under [`null`]: a `syscall` the kernel's entry stub returns
/// from at once (`abi::syscall::FLOOR`).
pub fn floor() {
    // SAFETY: the kernel returns from FLOOR before reading any argument.
    let _ = unsafe { raw(abi::syscall::FLOOR, [0; 6]) };
}

pub fn log(text: &str) -> Result<u64, Error> {
    call(
        Syscall::Log,
        [text.as_ptr() as u64, text.len() as u64, 0, 0, 0, 0],
    )
}

/// Emits a `user` record; `fields` is the inside of a JSON object.
pub fn report(fields: &str) -> Result<u64, Error> {
    call(
        Syscall::Report,
        [fields.as_ptr() as u64, fields.len() as u64, 0, 0, 0, 0],
    )
}

/// (my env id, the core I run on).
pub fn self_info() -> (u32, usize) {
    // SAFETY: no arguments.
    let (rax, rdx) = unsafe { raw(Syscall::SelfInfo as u64, [0; 6]) };
    (rax as u32, rdx as usize)
}

pub fn exit(code: u64) -> ! {
    // SAFETY: exit does not return.
    unsafe { raw(Syscall::Exit as u64, [code, 0, 0, 0, 0, 0]) };
    unreachable!("exit returned")
}

pub fn set_upcalls(table: &UpcallTable) -> Result<u64, Error> {
    call(
        Syscall::SetUpcalls,
        [table as *const UpcallTable as u64, 0, 0, 0, 0, 0],
    )
}

pub fn slice_alloc(core: usize, slot: Option<usize>) -> Result<usize, Error> {
    call(
        Syscall::SliceAlloc,
        [core as u64, slot.map_or(ANY_SLOT, |s| s as u64), 0, 0, 0, 0],
    )
    .map(|s| s as usize)
}

pub fn slice_free(core: usize, slot: usize) -> Result<u64, Error> {
    call(Syscall::SliceFree, [core as u64, slot as u64, 0, 0, 0, 0])
}

/// Who owns slot `slot` of `core` (`None`: free).
pub fn slice_owner(core: usize, slot: usize) -> Result<Option<u32>, Error> {
    call(Syscall::SliceOwner, [core as u64, slot as u64, 0, 0, 0, 0])
        .map(|id| (id != u64::from(NO_ENV)).then_some(id as u32))
}

/// Gives up (or donates, `Some(env)`) the rest of this slice. With `save`,
/// returns `Ok` when this context is resumed at a later prologue.
pub fn yield_to(target: Option<u32>, save: bool) -> Result<u64, Error> {
    let flags = if save { YIELD_SAVE } else { 0 };
    call(
        Syscall::Yield,
        [target.map_or(ANY_ENV, u64::from), flags, 0, 0, 0, 0],
    )
}

/// Sleeps until the installed predicate holds; with `save`, returns then.
pub fn sleep(save: bool) -> Result<u64, Error> {
    call(
        Syscall::Sleep,
        [if save { YIELD_SAVE } else { 0 }, 0, 0, 0, 0, 0],
    )
}

/// Gives up the rest of this slice and has the kernel pass over this
/// application's slots on this core until the clock reaches
/// `deadline_ns` (`Syscall::Park`). Returns only on an error (a deadline
/// not in the future or too far off), the turn kept.
pub fn park(deadline_ns: u64) -> Result<u64, Error> {
    call(Syscall::Park, [deadline_ns, 0, 0, 0, 0, 0])
}

/// Installs a wakeup predicate; on rejection also returns the verifier's
/// packed detail (`kind << 32 | position`).
pub fn predicate_install(program: &[u8]) -> Result<u64, (Error, u64)> {
    // SAFETY: a pointer and length into our own memory.
    let (rax, rdx) = unsafe {
        raw(
            Syscall::PredicateInstall as u64,
            [program.as_ptr() as u64, program.len() as u64, 0, 0, 0, 0],
        )
    };
    Error::decode(rax).map_err(|e| (e, rdx))
}

/// Removes the installed wakeup predicate.
pub fn predicate_clear() -> Result<u64, Error> {
    call(Syscall::PredicateClear, [0; 6])
}

pub fn resume(which: SaveArea) -> Result<u64, Error> {
    call(Syscall::Resume, [which as u64, 0, 0, 0, 0, 0])
}

pub fn frame_alloc(pfn: Option<u64>) -> Result<u64, Error> {
    call(
        Syscall::FrameAlloc,
        [pfn.unwrap_or(ANY_FRAME), 0, 0, 0, 0, 0],
    )
}

pub fn frame_free(pfn: u64) -> Result<u64, Error> {
    call(Syscall::FrameFree, [pfn, 0, 0, 0, 0, 0])
}

pub fn map(addr: u64, pfn: u64, flags: u64) -> Result<u64, Error> {
    call(Syscall::Map, [addr, pfn, flags, 0, 0, 0])
}

/// Maps `pages` fresh frames from `addr` on (see `Syscall::MapFresh`):
/// how many were mapped.
pub fn map_fresh(addr: u64, pages: u64, flags: u64) -> Result<u64, Error> {
    call(Syscall::MapFresh, [addr, pages, flags, 0, 0, 0])
}

pub fn unmap(addr: u64) -> Result<u64, Error> {
    call(Syscall::Unmap, [addr, 0, 0, 0, 0, 0])
}

/// Loads boot-module program `program` as a new environment allowed
/// `quota` slots; returns its env id.
pub fn spawn(program: usize, quota: u32, flags: u64) -> Result<u32, Error> {
    call(
        Syscall::Spawn,
        [program as u64, u64::from(quota), flags, 0, 0, 0],
    )
    .map(|id| id as u32)
}

/// Ends an environment this one created.
pub fn kill(env: u32) -> Result<u64, Error> {
    call(Syscall::Kill, [u64::from(env), 0, 0, 0, 0, 0])
}

// ---- Exported state ---------------------------------------------------------

pub fn sysinfo() -> &'static SysInfo {
    // SAFETY: the kernel maps SysInfo read-only at this address in every
    // environment for its whole life.
    unsafe { &*(va::SYSINFO as *const SysInfo) }
}

pub fn core_slices(core: usize) -> &'static CoreSlices {
    // SAFETY: as `sysinfo`, for each online core.
    unsafe { &*((va::CORE_SLICES + core as u64 * va::CORE_SLICES_STRIDE) as *const CoreSlices) }
}

/// Core `core`'s repossession vector: the last times the kernel took that
/// core back by force, whose turn it was and by how much it overran (read
/// entries with `RepossessionLog::since` or `get`, which see each one whole).
pub fn repossessions(core: usize) -> &'static RepossessionLog {
    &core_slices(core).repossessions
}

pub fn account(env_slot: usize) -> &'static EnvAccount {
    // SAFETY: as `sysinfo`, for every environment-table slot.
    unsafe {
        &*((va::ENV_ACCOUNTS + env_slot as u64 * va::ENV_ACCOUNT_STRIDE) as *const EnvAccount)
    }
}

/// This environment's own account. Its table slot is its id's low byte
/// (the kernel's `env::slot_of`); the id is asked for once.
pub fn own_account() -> &'static EnvAccount {
    let (me, _) = self_info_cached();
    account((me & 0xff) as usize % abi::shared::MAX_ENVS)
}

/// The text this environment was launched with (empty when it has none):
/// a scenario application's part of the scenario.
pub fn args() -> &'static str {
    // SAFETY: the kernel maps `Args` read-only at this address in every
    // environment for its whole life, `len` bytes of it filled.
    let args = unsafe { &*(va::ARGS as *const abi::shared::Args) };
    let len = (args.len as usize).min(args.bytes.len());
    core::str::from_utf8(&args.bytes[..len]).unwrap_or("")
}

/// This environment's console inbox (see `abi::shared::Inbox`).
pub fn inbox() -> &'static abi::shared::Inbox {
    // SAFETY: mapped read-only for the environment's whole life; the kernel
    // publishes each message before bumping `written`.
    unsafe { &*(va::INBOX as *const abi::shared::Inbox) }
}

/// This environment's dispatch page for `core`.
/// Sets the disabled flag of the core this code runs on, in one
/// instruction: the kernel points FS at each core's dispatch page, so a
/// preemption can come before or after the store, never between finding
/// the core and writing its flag (a thread preempted there could be resumed
/// on another core and set the wrong core's flag). Once it is set, the
/// caller stays on this core until it clears it.
#[inline(always)]
pub fn disable_here() {
    // SAFETY: FS is the kernel-set base of this core's dispatch page, mapped
    // read-write for us; `disabled` is an aligned u32 in it.
    unsafe {
        core::arch::asm!(
            "mov dword ptr fs:[{off}], 1",
            off = const core::mem::offset_of!(Dispatch, disabled),
            options(nostack, preserves_flags)
        )
    };
}

/// Like [`disable_here`], returning the flag's previous value on this core
/// (one atomic exchange), so nested critical sections restore it.
#[inline(always)]
pub fn disable_here_swap() -> u32 {
    let mut old: u32 = 1;
    // SAFETY: as `disable_here`; xchg with memory is atomic.
    unsafe {
        core::arch::asm!(
            "xchg dword ptr fs:[{off}], {old:e}",
            off = const core::mem::offset_of!(Dispatch, disabled),
            old = inout(reg) old,
            options(nostack, preserves_flags)
        )
    };
    old
}

/// Clears this core's disabled flag (the end of a critical section begun
/// with [`disable_here`] or [`disable_here_swap`] on the same core).
#[inline(always)]
pub fn enable_here() {
    // SAFETY: as `disable_here`.
    unsafe {
        core::arch::asm!(
            "mov dword ptr fs:[{off}], 0",
            off = const core::mem::offset_of!(Dispatch, disabled),
            options(nostack, preserves_flags)
        )
    };
}

/// Runs `f` with this core's disabled flag set ([`disable_here_swap`]),
/// then clears the flag only if it was clear before, so a section nested
/// in another (an upcall, a runtime call) leaves it set. A revocation that
/// comes meanwhile stays pending: the thread hands itself back at its next
/// runtime call, or is taken at the end of grace. It never yields here,
/// unlike [`crate::rt::critical`] and the thread runtime's sections, which
/// honour a deferred revocation on their way out.
#[inline]
pub fn with_disabled<R>(f: impl FnOnce() -> R) -> R {
    let was = disable_here_swap();
    let r = f();
    if was == 0 {
        enable_here();
    }
    r
}

pub fn dispatch(core: usize) -> &'static mut Dispatch {
    // SAFETY: the kernel maps our own dispatch page for each core read-write
    // at this address; only code running on `core` uses it.
    unsafe { &mut *((va::DISPATCH + core as u64 * 0x1000) as *mut Dispatch) }
}

/// This environment's CPU time on `core` so far, in ns, exact while it
/// runs there: the kernel's accounting of its finished turns plus the time
/// since its current turn started. Differences of it charge threads only
/// for time the environment really had the core (not for time it was
/// repossessed or another environment ran).
pub fn cpu_clock(core: usize) -> u64 {
    cpu_clock_at(core, now_ns())
}

/// [`cpu_clock`] at global clock `now` (just read by the caller: one
/// clock read serves both figures of a thread's stop or start).
#[inline]
pub fn cpu_clock_at(core: usize, now: u64) -> u64 {
    cpu_done(core)
        + now.saturating_sub(
            dispatch(core)
                .run_started_ns
                .load(core::sync::atomic::Ordering::Acquire),
        )
}

/// This environment's CPU time on `core` in its finished turns (ns): the
/// kernel's accounting, which moves only when a turn ends.
pub fn cpu_done(core: usize) -> u64 {
    own_account().cpu_ns[core].load(core::sync::atomic::Ordering::Acquire)
}

/// This environment's id (`self_info`'s), asked of the kernel once.
pub fn env_id() -> u32 {
    self_info_cached().0
}

/// `self_info`'s environment id, asked of the kernel once.
fn self_info_cached() -> (u32, ()) {
    static ID: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(u32::MAX);
    let id = ID.load(core::sync::atomic::Ordering::Relaxed);
    if id != u32::MAX {
        return (id, ());
    }
    let (me, _) = self_info();
    ID.store(me, core::sync::atomic::Ordering::Relaxed);
    (me, ())
}

/// The global clock in ns, from the TSC and the exported calibration.
pub fn now_ns() -> u64 {
    let info = sysinfo();
    // SAFETY: rdtsc is allowed in ring 3 (CR4.TSD clear).
    let tsc = unsafe { core::arch::x86_64::_rdtsc() };
    abi::clock::ticks_to_ns(tsc.saturating_sub(info.tsc_base), info.tsc_ns_scale)
}
