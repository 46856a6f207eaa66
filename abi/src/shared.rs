//! Memory the kernel shares with environments, and the upcall protocol.
//!
//! Expose information: every environment maps, read-only, the [`SysInfo`]
//! page, each core's [`CoreSlices`] (the slice vector: owner of every slot,
//! the current slot and when it started; the repossession vector: the
//! core's last repossessions, [`RepossessionLog`]) and every environment's
//! [`EnvAccount`]. Writable, per environment and core: a [`Dispatch`] page
//! with the disabled (critical-section) flag, pending events, save areas
//! and the donation target.
//!
//! All fields either side may change while the other reads are atomics;
//! layouts are `repr(C)` and checked by size assertions below.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

mod repossessions;
pub use repossessions::{
    Repossession, RepossessionCause, RepossessionEntry, RepossessionLog,
    REPOSSESSION_KEPT_DISABLED, REPOSSESSION_LOG_LEN, REPOSSESSION_LOST_SLOT,
};

/// Most cores the exported tables describe.
pub const MAX_CORES: usize = 128;
/// Most slots per core's slice vector.
pub const MAX_SLOTS: usize = 256;
/// Most environments alive at once.
pub const MAX_ENVS: usize = 64;

/// User virtual addresses fixed by the ABI (all in the user half).
pub mod va {
    /// Programs are linked here (see `workloads/user.ld`).
    pub const PROGRAM_BASE: u64 = 0x40_0000;
    /// [`super::SysInfo`], read-only.
    pub const SYSINFO: u64 = 0x7F00_0000_0000;
    /// [`super::CoreSlices`] of core `c` at `CORE_SLICES + c * CORE_SLICES_STRIDE`, read-only.
    pub const CORE_SLICES: u64 = 0x7F00_0010_0000;
    pub const CORE_SLICES_STRIDE: u64 = 0x2000;
    /// [`super::EnvAccount`] of env slot `e` at `ENV_ACCOUNTS + e * ENV_ACCOUNT_STRIDE`, read-only.
    pub const ENV_ACCOUNTS: u64 = 0x7F00_0100_0000;
    pub const ENV_ACCOUNT_STRIDE: u64 = 0x1000;
    /// This environment's [`super::Dispatch`] page for core `c` at `DISPATCH + c * 0x1000`.
    pub const DISPATCH: u64 = 0x7E00_0000_0000;
    /// Upcall stack for core `c`: top at `UPCALL_STACKS + (c + 1) * UPCALL_STACK_STRIDE`,
    /// `UPCALL_STACK_SIZE` bytes mapped below the top, the rest of the stride a guard gap.
    pub const UPCALL_STACKS: u64 = 0x7D00_0000_0000;
    pub const UPCALL_STACK_STRIDE: u64 = 0x1_0000;
    pub const UPCALL_STACK_SIZE: u64 = 0x8000;
    /// This environment's [`super::Args`] (what its launcher asked of it),
    /// read-only; `ARGS_MAX` bytes at most.
    pub const ARGS: u64 = 0x7C00_0000_0000;
    /// This environment's [`super::Inbox`] (console commands), read-only.
    pub const INBOX: u64 = 0x7C00_0010_0000;
    /// Lowest address of the region libOSes may map frames into.
    pub const USER_MAP_START: u64 = 0x1000_0000_0000;
    /// End of that region (exclusive).
    pub const USER_MAP_END: u64 = 0x7000_0000_0000;
    /// The libOS's thread stacks, inside the mappable region (the libOS
    /// maps them itself, as threads are first spawned): thread `t`'s stack
    /// is the top `size` bytes of `THREAD_STACKS + t * THREAD_STACK_STRIDE
    /// .. + THREAD_STACK_STRIDE`, the rest of the stride an unmapped guard
    /// gap, so an overflow faults instead of writing its neighbour.
    pub const THREAD_STACKS: u64 = 0x6000_0000_0000;
    /// A power of two: a thread's id is its stack pointer's offset shifted.
    pub const THREAD_STACK_STRIDE: u64 = 0x8000;
    /// Where the libOS grows its heap beyond the one in its image, mapping
    /// frames as it needs them (`HEAP_GROWTH_MAX` bytes at most).
    pub const HEAP_GROWTH: u64 = 0x6800_0000_0000;
    pub const HEAP_GROWTH_MAX: u64 = 0x4000_0000;
}

/// Global, read-only information.
#[repr(C)]
pub struct SysInfo {
    /// [`SYSINFO_MAGIC`].
    pub magic: u64,
    /// Cores online.
    pub cores: u32,
    /// Slots per core's slice vector.
    pub slots: u32,
    /// Slice length in ns.
    pub slice_ns: u64,
    /// Grace period after a revocation, in ns.
    pub grace_ns: u64,
    /// TSC rate in kHz.
    pub tsc_khz: u64,
    pub tsc_base: u64,
    /// `now_ns = clock::ticks_to_ns(rdtsc - tsc_base, tsc_ns_scale)`
    /// ([`crate::clock`]: the kernel's own clock, to the nanosecond).
    pub tsc_ns_scale: u64,
    /// The global clock (ns since boot), updated at every slice switch on
    /// any core; predicates read it as `clock`.
    pub clock_ns: AtomicU64,
    /// Environments created since boot (also the env-id generation source).
    pub envs_created: AtomicU64,
    /// The scheduler the run asked applications to start with:
    /// its position in `sched_registry::POLICIES` (`sched=` on the command
    /// line; 0, the registry's default, when it names none).
    pub sched: u32,
}

pub const SYSINFO_MAGIC: u64 = 0x4558_4f53_5953_4e46; // "EXOSYSNF"

/// One core's slice vector, read-only to environments.
#[repr(C)]
pub struct CoreSlices {
    /// The slot whose turn it is.
    pub current_slot: AtomicU32,
    /// Who runs now (owner, or the recipient of a donation), or `NO_ENV`.
    pub running_env: AtomicU32,
    /// When the current turn started (ns).
    pub turn_started_ns: AtomicU64,
    /// Idle time on this core (ns): turns with no runnable owner.
    pub idle_ns: AtomicU64,
    /// Time this core spent in the kernel itself (ns): decisions, switches,
    /// upcall entry — what is charged neither to an environment nor to idle.
    pub kernel_ns: AtomicU64,
    /// Owner of each slot (`NO_ENV` when free).
    pub owners: [AtomicU32; MAX_SLOTS],
    /// The repossession vector: the last repossessions on this core, each
    /// with its owner, slot, time, overrun and cause.
    pub repossessions: RepossessionLog,
}

/// Per-environment accounting, read-only to environments.
#[repr(C)]
pub struct EnvAccount {
    /// The env id occupying this table slot (`NO_ENV` when free).
    pub env: AtomicU32,
    /// Slots held across all cores.
    pub slots_held: AtomicU32,
    /// Donations made (directed yields to another environment).
    pub donations_given: AtomicU64,
    /// Donations received.
    pub donations_received: AtomicU64,
    /// Times the kernel took a core back by force.
    pub repossessions: AtomicU64,
    /// Turns forfeited to pay back overrun debt.
    pub forfeits: AtomicU64,
    /// Slot bindings lost as a repeat offender.
    pub slots_revoked: AtomicU64,
    /// Predicate wakeups.
    pub wakeups: AtomicU64,
    /// Turns begun (its own slots', and idle time it was given).
    pub turns: AtomicU64,
    /// Grace periods given again because the environment had not run at all
    /// since its revocation was delivered (its vCPU was descheduled by the
    /// host, or QEMU ran other vCPUs meanwhile): see the kernel's `sched`.
    pub grace_renewals: AtomicU64,
    /// CPU time received on each core (ns), whoever's slot it was: from
    /// each entry into user mode until the turn ends (a yield, a
    /// repossession), less the time from a revocation's deadline to its
    /// epilogue's entry. The kernel's work choosing, entering and telling
    /// an environment is the kernel's, not the environment's.
    pub cpu_ns: [AtomicU64; MAX_CORES],
    /// The environment's name (what a scenario calls its application),
    /// NUL-padded, truncated to [`ENV_NAME_MAX`] bytes: so an environment
    /// can find another by name (a scheduler environment its clients).
    /// Written by the kernel before it publishes `env`; a reader checks
    /// `env` again after reading it ([`EnvAccount::named`]).
    pub name: [AtomicU64; ENV_NAME_MAX / 8],
}

/// Bytes of an environment's name its account holds.
pub const ENV_NAME_MAX: usize = 32;

impl EnvAccount {
    /// Writes `name` (truncated, NUL-padded): the kernel's side.
    pub fn set_name(&self, name: &str) {
        let mut bytes = [0u8; ENV_NAME_MAX];
        let n = name.len().min(ENV_NAME_MAX);
        bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
        for (word, chunk) in self.name.iter().zip(bytes.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            word.store(u64::from_le_bytes(w), Ordering::Relaxed);
        }
    }

    /// The name as written (NUL padding cut).
    pub fn name_bytes(&self) -> ([u8; ENV_NAME_MAX], usize) {
        let mut bytes = [0u8; ENV_NAME_MAX];
        for (word, chunk) in self.name.iter().zip(bytes.chunks_exact_mut(8)) {
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        }
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(ENV_NAME_MAX);
        (bytes, len)
    }

    /// The env id in this slot if it is named `name` (compared on its
    /// first [`ENV_NAME_MAX`] bytes), read consistently: the id is read
    /// before and after the name, and a slot reused meanwhile gives `None`.
    pub fn named(&self, name: &str) -> Option<u32> {
        let id = self.env.load(Ordering::Acquire);
        let (bytes, len) = self.name_bytes();
        let want = &name.as_bytes()[..name.len().min(ENV_NAME_MAX)];
        let same = &bytes[..len] == want;
        (same && id != crate::syscall::NO_ENV && self.env.load(Ordering::Acquire) == id)
            .then_some(id)
    }
}

/// Why the kernel entered an environment at its prologue (or exception) entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum UpcallReason {
    /// First entry of a new environment on this core.
    Start = 0,
    /// Its slot's turn came round.
    NewSlice = 1,
    /// Its predicate became true; the argument is the predicate's tag.
    Woken = 2,
    /// Another environment donated its slice; the argument is the donor's id.
    Donated = 3,
    /// The previous slice on this core ended in a repossession while the
    /// environment was enabled: the full context is in `Dispatch::preempted`
    /// (resume it with `resume(Preempted)`). A repossession while disabled
    /// (or in the resume range) is not upcalled: the kernel resumes that
    /// context directly, with the disabled flag it had, and sets
    /// `events::RESUMED_DISABLED` (Barrelfish's rule).
    Repossessed = 4,
    /// End of slice: save state and yield within the grace period. The
    /// interrupted context is in `Dispatch::enabled`.
    Revoke = 5,
    /// A fault in user code: details in `Dispatch::fault_info`, context in
    /// `Dispatch::fault`.
    Exception = 6,
}

impl UpcallReason {
    pub fn from_u64(v: u64) -> Option<UpcallReason> {
        Some(match v {
            0 => UpcallReason::Start,
            1 => UpcallReason::NewSlice,
            2 => UpcallReason::Woken,
            3 => UpcallReason::Donated,
            4 => UpcallReason::Repossessed,
            5 => UpcallReason::Revoke,
            6 => UpcallReason::Exception,
            _ => return None,
        })
    }
}

/// Entry points an environment registers with `set_upcalls`.
///
/// Every upcall starts on this core's upcall stack with the disabled flag
/// set, `rdi` = [`UpcallReason`], `rsi` = its argument, `rdx` = the address
/// of this core's [`Dispatch`] page, `rcx` = the core index. While the
/// program counter is inside `resume_start..resume_end` the environment
/// counts as disabled even if the flag is clear (closes the resume race).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpcallTable {
    pub prologue: u64,
    pub epilogue: u64,
    pub exception: u64,
    pub resume_start: u64,
    pub resume_end: u64,
}

/// A full user context, as the kernel saves it. `fx` is an `fxsave` image.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
pub struct UserContext {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rsp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
    pub fs_base: u64,
    /// 1 when the area holds a context not yet resumed or consumed.
    pub valid: u64,
    pub fx: [u8; 512],
}

impl UserContext {
    pub const ZERO: UserContext = UserContext {
        rax: 0,
        rbx: 0,
        rcx: 0,
        rdx: 0,
        rsi: 0,
        rdi: 0,
        rbp: 0,
        rsp: 0,
        r8: 0,
        r9: 0,
        r10: 0,
        r11: 0,
        r12: 0,
        r13: 0,
        r14: 0,
        r15: 0,
        rip: 0,
        rflags: 0,
        fs_base: 0,
        valid: 0,
        fx: [0; 512],
    };
}

/// Details of the last user fault.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FaultInfo {
    pub vector: u64,
    pub error_code: u64,
    /// CR2 for page faults.
    pub address: u64,
    pub rip: u64,
}

/// Pending-event bits in [`Dispatch::events`].
pub mod events {
    /// The kernel revoked the slice while the environment was disabled: yield
    /// on leaving the critical section.
    pub const REVOCATION_PENDING: u64 = 1;
    /// A repossession happened since the last prologue.
    pub const REPOSSESSED: u64 = 1 << 1;
    /// The repossession caught the environment disabled: the kernel resumed
    /// that context directly (still disabled) instead of an upcall.
    pub const RESUMED_DISABLED: u64 = 1 << 2;
}

/// Most bytes of arguments an environment can be given (the header included).
pub const ARGS_MAX: usize = 16 * 1024;

/// The arguments an environment was launched with (a scenario application's
/// part of the scenario), read-only at [`va::ARGS`]. Environments spawned by
/// other environments get none (`len` 0).
#[repr(C)]
pub struct Args {
    pub len: u64,
    /// `len` bytes of UTF-8 text follow.
    pub bytes: [u8; ARGS_MAX - 8],
}

/// Messages one inbox holds before the oldest is overwritten.
pub const INBOX_SLOTS: usize = 15;
/// Longest message, in bytes.
pub const INBOX_MESSAGE: usize = 256 - 8;

/// Console commands addressed to one environment, written by the kernel,
/// read-only to the environment at [`va::INBOX`]. Message `n` (counting from
/// 0) is in `messages[n % INBOX_SLOTS]`; `written` counts messages and is
/// published after the message (Release), so a reader that has seen `k`
/// messages reads `k..written` (and knows it lost some when
/// `written - k > INBOX_SLOTS`).
#[repr(C, align(4096))]
pub struct Inbox {
    pub written: AtomicU64,
    _reserved: [u64; 31],
    pub messages: [InboxMessage; INBOX_SLOTS],
}

/// One inbox message: `len` bytes of UTF-8 text.
#[repr(C)]
pub struct InboxMessage {
    pub len: u64,
    pub text: [u8; INBOX_MESSAGE],
}

/// Per environment and core, read-write: the dispatcher page.
#[repr(C, align(4096))]
pub struct Dispatch {
    /// Non-zero while the libOS is in a critical section (or an upcall):
    /// revocation is deferred, not delivered, until the grace period ends.
    pub disabled: AtomicU32,
    /// The core this page belongs to.
    pub core: u32,
    /// [`events`] bits set by the kernel.
    pub events: AtomicU64,
    /// Default recipient for `yield(ANY_ENV)` issued from the epilogue, or
    /// `NO_ENV` (u32::MAX) to give the slice up.
    pub donate_to: AtomicU32,
    /// When the current turn must end (ns), and the end of its grace period:
    /// written at every prologue and epilogue upcall and whenever they move
    /// within a turn (a deferred revocation, a renewed grace); an exception
    /// upcall leaves them as they are.
    pub slice_end_ns: AtomicU64,
    pub grace_end_ns: AtomicU64,
    /// Repossessions on this core since the environment started.
    pub repossessions: AtomicU64,
    /// The last repossession: time (ns) and overrun past the slice end (ns).
    pub last_repossession_ns: AtomicU64,
    pub last_overrun_ns: AtomicU64,
    /// When the environment last entered user mode on this core at the
    /// start of a turn (its own slot, a donation, a resumption) or of its
    /// epilogue. With `EnvAccount::cpu_ns` it gives the environment's CPU
    /// time here so far, to the ns: `cpu_ns[core] + (now - run_started_ns)`
    /// while it runs.
    pub run_started_ns: AtomicU64,
    /// This environment's CPU time on this core (as `cpu_ns[core]` counts
    /// it) at the deadline of the turn it is being told the end of:
    /// written by the kernel just before the epilogue upcall and at a
    /// repossession taken while enabled (told at the next prologue). A
    /// thread preempted there is charged up to this instant, not for the
    /// grace period or the overrun after it. Stable until the environment
    /// has handled it (the next such write needs it enabled again).
    pub deadline_clock_ns: AtomicU64,
    pub fault_info: FaultInfo,
    /// Context at a revocation while enabled (the interrupted thread).
    pub enabled: UserContext,
    /// Context at a repossession (abort) while enabled: resume it exactly.
    /// (One taken while disabled stays in the kernel, which resumes it
    /// directly, so this area is never overwritten under an upcall that has
    /// yet to resume it.)
    pub preempted: UserContext,
    /// Context at a user fault.
    pub fault: UserContext,
}

/// Boot modules: the runner packs programs (and later the scenario) into one
/// archive passed with `-initrd`. Layout: [`MODULE_MAGIC`], a `u32` count,
/// then `count` headers of [`ModuleHeader`], then the data.
pub const MODULE_MAGIC: [u8; 8] = *b"EXOMOD01";

/// One archive entry: a NUL-padded name, and where its bytes are.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ModuleHeader {
    pub name: [u8; 48],
    pub offset: u64,
    pub len: u64,
}

const _: () = assert!(core::mem::size_of::<Dispatch>() == 4096);
const _: () = assert!(core::mem::size_of::<CoreSlices>() <= va::CORE_SLICES_STRIDE as usize);
const _: () = assert!(core::mem::size_of::<EnvAccount>() <= va::ENV_ACCOUNT_STRIDE as usize);
const _: () = assert!(core::mem::size_of::<SysInfo>() <= 4096);
const _: () = assert!(core::mem::size_of::<UserContext>() == 672);
const _: () = assert!(core::mem::size_of::<Inbox>() == 4096);
const _: () = assert!(core::mem::size_of::<Args>() == ARGS_MAX);

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> EnvAccount {
        let z = || AtomicU64::new(0);
        EnvAccount {
            env: AtomicU32::new(0),
            slots_held: AtomicU32::new(0),
            donations_given: z(),
            donations_received: z(),
            repossessions: z(),
            forfeits: z(),
            slots_revoked: z(),
            wakeups: z(),
            turns: z(),
            grace_renewals: z(),
            cpu_ns: [const { AtomicU64::new(0) }; MAX_CORES],
            name: [const { AtomicU64::new(0) }; ENV_NAME_MAX / 8],
        }
    }

    #[test]
    fn a_name_is_found_only_in_the_slot_that_holds_it() {
        let a = account();
        a.set_name("server");
        a.env.store(0x0105, Ordering::Release);
        assert_eq!(a.named("server"), Some(0x0105));
        assert_eq!(a.named("serve"), None, "a prefix is not the name");
        assert_eq!(a.named("server2"), None);
        let (bytes, len) = a.name_bytes();
        assert_eq!(&bytes[..len], b"server");
        // Truncated to ENV_NAME_MAX bytes, and found by its long name.
        let long = "a-name-of-forty-characters-for-the-test";
        a.set_name(long);
        assert_eq!(a.name_bytes().1, ENV_NAME_MAX);
        assert_eq!(a.named(long), Some(0x0105));
        // A free slot names nobody.
        a.set_name("server");
        a.env.store(crate::syscall::NO_ENV, Ordering::Release);
        assert_eq!(a.named("server"), None);
    }
}
