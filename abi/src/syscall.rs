//! The system-call interface between libOSes and the kernel.
//!
//! Convention (x86_64 `syscall`): number in `rax`; arguments in `rdi`, `rsi`,
//! `rdx`, `r10`, `r8`, `r9`; results in `rax` (and `rdx` where a call says so).
//! A negative `rax` is `-(Error as i64)`. `rcx` and `r11` are clobbered (the
//! instruction itself uses them); every other register is preserved.

/// System-call numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Syscall {
    /// Returns 0 at once (the null-syscall benchmark).
    Null = 0,
    /// `log(ptr, len)`: writes UTF-8 bytes to the console, prefixed by the env id.
    Log = 1,
    /// `self_info() -> env id`; `rdx` = the core the caller runs on.
    SelfInfo = 2,
    /// `exit(code)`: ends the calling environment on every core. Never returns.
    Exit = 3,
    /// `set_upcalls(&UpcallTable)`: registers entry points and the resume range.
    SetUpcalls = 4,
    /// `report(ptr, len)`: emits a `user` record with the given JSON object body.
    Report = 5,

    /// `slice_alloc(core, slot | ANY_SLOT) -> slot`.
    SliceAlloc = 10,
    /// `slice_free(core, slot)`.
    SliceFree = 11,
    /// `slice_owner(core, slot) -> env id | NO_ENV`.
    SliceOwner = 12,

    /// `yield(target env | ANY_ENV, flags)`: donates the rest of this core's
    /// slice to `target`, or gives it up. On success does not return to the
    /// caller's context: the caller gets a prologue upcall at its next slice.
    /// With [`YIELD_SAVE`] the kernel first saves the caller's context (as if
    /// the call returned 0) in this core's `Dispatch::enabled` area, so that
    /// prologue can `resume(Enabled)` right after the yield.
    Yield = 20,
    /// `sleep(flags)`: gives up the slice and sleeps until the installed
    /// predicate holds (on every core the environment holds slots on).
    /// [`YIELD_SAVE`] as for `yield`.
    Sleep = 21,
    /// `predicate_install(ptr, len)`: verifies and installs the wakeup
    /// predicate. On rejection `rax` = `-PredicateRejected` and `rdx` packs
    /// the verifier's error: `(kind << 32) | instruction_index`.
    PredicateInstall = 22,
    /// `predicate_clear()`.
    PredicateClear = 23,
    /// `resume(which)`: restores the context saved in this core's dispatch
    /// page (`SaveArea::Enabled` or `SaveArea::Preempted`), clearing the
    /// disabled flag atomically with the return (no resume race).
    Resume = 24,
    /// `park(deadline_ns)`: gives up the rest of this core's slice, as
    /// `yield(ANY_ENV, 0)` does, and has the kernel pass over the caller's
    /// slots on this core (their time going to the next runnable slot, or
    /// idle, uncharged) until the global clock reaches `deadline_ns`: a
    /// libOS with nothing to run here says so once rather than taking and
    /// giving up turn after turn. `BadArgument` (and the caller keeps its
    /// turn) for a deadline not in the future or more than
    /// [`PARK_MAX_NS`] ahead. Its other cores, and a wake-up of its
    /// sleeping predicate, are not affected.
    Park = 25,

    /// `frame_alloc(pfn | ANY_FRAME) -> pfn`.
    FrameAlloc = 30,
    /// `frame_free(pfn)`: a frame from `frame_alloc`, unmapped everywhere
    /// first (`Taken` while any page maps it).
    FrameFree = 31,
    /// `map(va, pfn, flags)`: maps a frame from `frame_alloc` at a user
    /// address (one frame may be mapped at several).
    Map = 32,
    /// `unmap(va) -> pfn`.
    Unmap = 33,
    /// `map_fresh(va, pages, flags) -> pages mapped`: `frame_alloc` and
    /// `map` for each of `pages` (1..=[`MAP_FRESH_MAX_PAGES`]) pages from
    /// `va` on, in one call. It stops at the first page that fails: the
    /// count mapped before it, or that page's error when it is the first.
    MapFresh = 34,

    /// `spawn(program index, quota, flags) -> env id`: loads a boot-module
    /// program as a new environment.
    Spawn = 40,
    /// `kill(env)`: ends an environment the caller created.
    Kill = 41,
}

impl Syscall {
    /// Every call, for tables and fuzzers.
    pub const ALL: [Syscall; 22] = [
        Syscall::Null,
        Syscall::Log,
        Syscall::SelfInfo,
        Syscall::Exit,
        Syscall::SetUpcalls,
        Syscall::Report,
        Syscall::SliceAlloc,
        Syscall::SliceFree,
        Syscall::SliceOwner,
        Syscall::Yield,
        Syscall::Sleep,
        Syscall::PredicateInstall,
        Syscall::PredicateClear,
        Syscall::Resume,
        Syscall::Park,
        Syscall::FrameAlloc,
        Syscall::FrameFree,
        Syscall::Map,
        Syscall::Unmap,
        Syscall::MapFresh,
        Syscall::Spawn,
        Syscall::Kill,
    ];

    /// The call numbered `n`, if any.
    pub fn from_number(n: u64) -> Option<Syscall> {
        Self::ALL.into_iter().find(|s| *s as u64 == n)
    }
}

/// A `syscall` with this number returns at once through `sysret`, in the
/// entry stub, before any Rust runs (rax unchanged): the floor the null
/// system call is measured against. Not a [`Syscall`]; every call's
/// number is below it (the kernel's entry stub sorts a number with one
/// compare against it).
pub const FLOOR: u64 = 63;

/// A test-only call, above every [`Syscall`]: a kernel booted for the
/// `bad_iret` or `bad_iret_bare` experiment returns from it by an `iretq`
/// with a null SS, which faults in ring 0 (the test of the kernel's fix-up
/// for a faulting return to ring 3); every other kernel answers
/// `BadSyscall`.
pub const TEST_BAD_IRET: u64 = FLOOR + 1;

/// `slice_alloc`: any free slot on the core.
pub const ANY_SLOT: u64 = u64::MAX;
/// `yield`: no particular recipient.
pub const ANY_ENV: u64 = u64::MAX;
/// An unowned slot.
pub const NO_ENV: u32 = u32::MAX;
/// `yield`/`sleep` flag: save the caller's context for a later `resume`.
pub const YIELD_SAVE: u64 = 1;

/// Longest `park`, ns: a libOS parks for about a slice; a deadline
/// further off is a mistake (or garbage), refused rather than kept.
pub const PARK_MAX_NS: u64 = 1_000_000_000;

/// `park`'s check of its deadline at `now_ns`: how long the park lasts,
/// or `BadArgument` for a deadline not after `now_ns` or more than
/// [`PARK_MAX_NS`] after it.
pub const fn park_length(now_ns: u64, deadline_ns: u64) -> Result<u64, Error> {
    if deadline_ns <= now_ns || deadline_ns - now_ns > PARK_MAX_NS {
        return Err(Error::BadArgument);
    }
    Ok(deadline_ns - now_ns)
}

/// `frame_alloc`: any free frame.
pub const ANY_FRAME: u64 = u64::MAX;

/// Most pages one `map_fresh` maps: it runs with interrupts off, ~1,100
/// instructions a page (a frame zeroed, recorded and mapped).
pub const MAP_FRESH_MAX_PAGES: u64 = 16;

/// `map` and `map_fresh` flags.
pub mod map_flags {
    pub const WRITABLE: u64 = 1;
    pub const EXECUTABLE: u64 = 2;
}

/// Which save area `resume` restores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum SaveArea {
    /// Saved by the kernel when it revoked the slice while enabled.
    Enabled = 0,
    /// Saved by the kernel when it repossessed the core (abort).
    Preempted = 1,
    /// Saved by the kernel at a user fault.
    Fault = 2,
}

/// Error codes (returned negated in `rax`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i64)]
pub enum Error {
    /// No such system call.
    BadSyscall = 1,
    /// A pointer or length outside the caller's own mappings.
    BadPointer = 2,
    /// No such environment (or it is gone).
    BadEnv = 3,
    /// No such core or slot.
    BadSlot = 4,
    /// The caller does not own (or may not use) the named resource.
    NotOwner = 5,
    /// The named slot or frame is taken (a frame to free: still mapped).
    Taken = 6,
    /// The caller's quota is used up.
    QuotaExceeded = 7,
    /// No free slot / frame left.
    Exhausted = 8,
    /// The yield target is not runnable right now.
    NotRunnable = 9,
    /// The operation is not permitted to the caller (a frame to free or
    /// map: one the kernel installed).
    NotPermitted = 10,
    /// The predicate failed verification (details in `rdx`).
    PredicateRejected = 11,
    /// An argument is out of range.
    BadArgument = 12,
    /// The address is not user-space, not aligned, or already in use.
    BadAddress = 13,
    /// Nothing is mapped there / nothing to resume.
    NotMapped = 14,
}

impl Error {
    /// Every code, for fuzzers and tables.
    pub const ALL: [Error; 14] = [
        Error::BadSyscall,
        Error::BadPointer,
        Error::BadEnv,
        Error::BadSlot,
        Error::NotOwner,
        Error::Taken,
        Error::QuotaExceeded,
        Error::Exhausted,
        Error::NotRunnable,
        Error::NotPermitted,
        Error::PredicateRejected,
        Error::BadArgument,
        Error::BadAddress,
        Error::NotMapped,
    ];

    /// Decodes a raw `rax`: `Ok(value)` or the error. Inline: every
    /// system-call wrapper runs it, and a caller that ignores the result
    /// should not pay for it.
    #[inline]
    pub fn decode(rax: u64) -> Result<u64, Error> {
        let signed = rax as i64;
        if signed >= 0 {
            return Ok(rax);
        }
        Err(Self::ALL
            .into_iter()
            .find(|e| *e as i64 == signed.wrapping_neg())
            .unwrap_or(Error::BadSyscall))
    }

    /// The raw `rax` for this error.
    pub const fn encode(self) -> u64 {
        (-(self as i64)) as u64
    }

    /// Stable lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Error::BadSyscall => "bad_syscall",
            Error::BadPointer => "bad_pointer",
            Error::BadEnv => "bad_env",
            Error::BadSlot => "bad_slot",
            Error::NotOwner => "not_owner",
            Error::Taken => "taken",
            Error::QuotaExceeded => "quota_exceeded",
            Error::Exhausted => "exhausted",
            Error::NotRunnable => "not_runnable",
            Error::NotPermitted => "not_permitted",
            Error::PredicateRejected => "predicate_rejected",
            Error::BadArgument => "bad_argument",
            Error::BadAddress => "bad_address",
            Error::NotMapped => "not_mapped",
        }
    }
}

/// Longest `log` or `report` message, in bytes: a longer one is refused.
pub const MAX_MESSAGE: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_round_trip_and_values_pass_through() {
        for e in Error::ALL {
            assert_eq!(Error::decode(e.encode()), Err(e));
        }
        assert_eq!(Error::decode(0), Ok(0));
        assert_eq!(Error::decode(12345), Ok(12345));
    }

    #[test]
    fn syscall_numbers_are_unique_and_decode() {
        for s in Syscall::ALL {
            assert_eq!(Syscall::from_number(s as u64), Some(s));
        }
        assert_eq!(Syscall::from_number(9999), None);
    }

    #[test]
    fn a_park_must_end_in_the_future_and_within_the_bound() {
        assert_eq!(park_length(100, 0), Err(Error::BadArgument));
        assert_eq!(park_length(100, 100), Err(Error::BadArgument));
        assert_eq!(park_length(100, 101), Ok(1));
        assert_eq!(park_length(100, 100 + PARK_MAX_NS), Ok(PARK_MAX_NS));
        assert_eq!(park_length(100, 101 + PARK_MAX_NS), Err(Error::BadArgument));
        assert_eq!(park_length(100, u64::MAX), Err(Error::BadArgument));
        assert_eq!(park_length(u64::MAX, u64::MAX), Err(Error::BadArgument));
    }

    #[test]
    fn every_number_is_below_the_floor() {
        assert!(Syscall::ALL.iter().all(|s| (*s as u64) < FLOOR));
        assert_eq!(Syscall::from_number(FLOOR), None);
    }
}
