//! The kernel's view of an environment's dispatch page ([`Dispatch`]).
//!
//! The page is mapped writable in the environment's address space, so ring
//! 3 on any core may write any byte of it at any moment, including while
//! the kernel reads or writes it. No Rust reference to the whole page, or
//! to its plain (non-atomic) fields, is ever made here: a `&mut Dispatch`
//! or `&UserContext` would promise the compiler that nobody else writes
//! that memory, and it could then read a field twice where the source
//! reads it once (so a value checked is not the value used). Instead:
//!
//! - the atomic fields are handed out as references to those fields only
//!   (shared access to atomics is what atomics are for);
//! - a save area is read only as a whole [`UserContext`] *snapshot*, one
//!   volatile load per word into a kernel-owned value, which the caller
//!   validates and then uses (validate-then-use on one copy);
//! - the kernel's own writes (save areas, fault details) are volatile
//!   stores through raw pointers.
//!
//! What the environment writes concurrently only garbles its own snapshot
//! or its own saved state, which the kernel treats as untrusted anyway.

use core::marker::PhantomData;
use core::ptr::{addr_of, addr_of_mut, NonNull};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use abi::shared::{Dispatch, FaultInfo, UserContext};
use abi::syscall::{SaveArea, NO_ENV};

use crate::arch::cpu;
use crate::arch::interrupts::TrapFrame;
use crate::arch::mm::{FrameRef, Zeroable};

/// One environment's dispatch page for one core, valid while `'a` (the
/// environment, which owns the page until it is reaped) lives.
#[derive(Clone, Copy)]
pub struct DispatchPage<'a> {
    page: NonNull<Dispatch>,
    _env: PhantomData<&'a Dispatch>,
}

/// Accessors for the page's atomic fields (the same names as in
/// [`Dispatch`]), each a reference to that field alone.
macro_rules! atomic_fields {
    ($($(#[$doc:meta])* $field:ident: $ty:ty,)*) => {
        $(
            $(#[$doc])*
            pub fn $field(&self) -> &'a $ty {
                // SAFETY: the page is live for 'a (see `new`); the field is
                // an atomic, whose every access is atomic on both sides, so
                // a shared reference to it alone is sound however the
                // environment writes the page.
                unsafe { &*addr_of!((*self.page.as_ptr()).$field) }
            }
        )*
    };
}

// SAFETY: a `Dispatch` is integers and atomics (all-zero is valid), and
// one page (checked below).
unsafe impl Zeroable for Dispatch {}
const _: () = assert!(core::mem::size_of::<Dispatch>() <= 4096);

impl<'a> DispatchPage<'a> {
    /// The dispatch page in `frame`, allocated as one (`mm::alloc_frame_as`)
    /// and lent by its owner for `'a`.
    pub fn of(frame: &'a FrameRef<Dispatch>) -> DispatchPage<'a> {
        // SAFETY: the frame holds a dispatch page, and its owner (the
        // environment, which frees it only when reaped) holds it for 'a.
        unsafe { DispatchPage::new(frame.as_ptr()) }
    }

    /// # Safety
    /// `page` is the kernel's (direct-map) address of a dispatch page that
    /// stays allocated, and never becomes anything but a dispatch page,
    /// for `'a`.
    pub unsafe fn new(page: *mut Dispatch) -> DispatchPage<'a> {
        DispatchPage {
            // SAFETY: a live page's address (the caller's contract) is not 0.
            page: unsafe { NonNull::new_unchecked(page) },
            _env: PhantomData,
        }
    }

    atomic_fields! {
        /// The disabled (critical-section) flag.
        disabled: AtomicU32,
        /// Pending-event bits.
        events: AtomicU64,
        /// Where `yield(ANY_ENV)` from the epilogue donates.
        donate_to: AtomicU32,
        slice_end_ns: AtomicU64,
        grace_end_ns: AtomicU64,
        repossessions: AtomicU64,
        last_repossession_ns: AtomicU64,
        last_overrun_ns: AtomicU64,
        run_started_ns: AtomicU64,
        deadline_clock_ns: AtomicU64,
    }

    fn area(&self, which: SaveArea) -> *mut UserContext {
        let page = self.page.as_ptr();
        // SAFETY: projections inside the live page; no reference is made.
        unsafe {
            match which {
                SaveArea::Enabled => addr_of_mut!((*page).enabled),
                SaveArea::Preempted => addr_of_mut!((*page).preempted),
                SaveArea::Fault => addr_of_mut!((*page).fault),
            }
        }
    }

    /// A copy of save area `which` as it is now. The environment may be
    /// writing it meanwhile, so the copy may mix old and new words: it is
    /// untrusted, and whatever the kernel checks of it (`valid`, `rip`,
    /// `rsp`, MXCSR) it must check on this copy and then use this copy,
    /// never the page again.
    pub fn snapshot(&self, which: SaveArea) -> UserContext {
        let mut ctx = UserContext::ZERO;
        // SAFETY: the area is live and 16-byte aligned (Dispatch is
        // page-aligned, UserContext align(16)); `ctx` is a local of the
        // same type, and every bit pattern is a valid UserContext (plain
        // integers and bytes). Each word is read exactly once, volatile:
        // the environment may write the area concurrently (a torn mix is
        // what it asked for), but the compiler may not re-read the page
        // later in place of the copy.
        unsafe { copy_words_volatile(self.area(which), &mut ctx) };
        ctx
    }

    /// Saves `frame` and this core's live FPU state into save area
    /// `which`, marked valid.
    pub fn save(&self, which: SaveArea, frame: &TrapFrame) {
        // SAFETY: the area is live and 16-byte aligned (see `snapshot`).
        // The environment may write it concurrently: what it then finds
        // there is its own doing; the kernel never reads back what it
        // wrote except through `snapshot`.
        unsafe { store_context(self.area(which), frame) }
    }

    /// Where save area `which` lies (the kernel's address: for the
    /// user-exception entry, which saves the general registers there).
    #[inline]
    pub fn area_address(&self, which: SaveArea) -> NonNull<UserContext> {
        // SAFETY: an area inside the live page (not at address 0).
        unsafe { NonNull::new_unchecked(self.area(which)) }
    }

    /// Completes save area `which`, whose general registers are saved
    /// there already (by the user-exception entry): the instruction
    /// pointer, flags and stack pointer given and this core's live FPU
    /// state, marked valid.
    pub fn save_rest(&self, which: SaveArea, rip: u64, rflags: u64, rsp: u64) {
        // SAFETY: as in `save`.
        unsafe { store_rest(self.area(which), rip, rflags, rsp) }
    }

    /// Marks save area `which` consumed (its context was resumed).
    pub fn mark_consumed(&self, which: SaveArea) {
        // SAFETY: a field of the live area; volatile, as the environment
        // may write it concurrently (then its value is the environment's).
        unsafe { addr_of_mut!((*self.area(which)).valid).write_volatile(0) }
    }

    /// Records the details of a user fault.
    pub fn set_fault_info(&self, info: FaultInfo) {
        let at = self.page.as_ptr();
        // SAFETY: fields of the live page, written volatile as the
        // environment may write them concurrently; the kernel never reads
        // them. (Field by field: a volatile write of the whole struct was
        // made through a copy on the stack, 7 instructions more a fault.)
        unsafe {
            addr_of_mut!((*at).fault_info.vector).write_volatile(info.vector);
            addr_of_mut!((*at).fault_info.error_code).write_volatile(info.error_code);
            addr_of_mut!((*at).fault_info.address).write_volatile(info.address);
            addr_of_mut!((*at).fault_info.rip).write_volatile(info.rip);
        }
    }

    /// Fills in the fields the kernel sets once, before the environment
    /// first runs: the page's core and no donation target.
    pub fn init(&self, core: usize) {
        // SAFETY: a field of the live page (volatile for uniformity: the
        // environment has not run yet, so nobody else writes it).
        unsafe { addr_of_mut!((*self.page.as_ptr()).core).write_volatile(core as u32) };
        self.donate_to().store(NO_ENV, Ordering::Relaxed);
    }
}

/// A save area's worth of `frame` and the live FPU state, in a
/// kernel-owned value (a repossession caught disabled keeps it in the
/// kernel, not on the page).
pub fn context_of(frame: &TrapFrame) -> UserContext {
    let mut ctx = UserContext::ZERO;
    // SAFETY: `ctx` is a local UserContext, aligned and exclusively ours.
    unsafe { store_context(&mut ctx, frame) };
    ctx
}

/// Copies `*src` into `*dst` one `u64` at a time, each read volatile.
///
/// # Safety
/// `src` is readable for a `UserContext`, `dst` writable, both 8-aligned.
unsafe fn copy_words_volatile(src: *const UserContext, dst: *mut UserContext) {
    const WORDS: usize = core::mem::size_of::<UserContext>() / 8;
    const _: () = assert!(core::mem::size_of::<UserContext>().is_multiple_of(8));
    let (src, dst) = (src.cast::<u64>(), dst.cast::<u64>());
    for i in 0..WORDS {
        // SAFETY: `i` < WORDS words lie inside both (caller's contract).
        unsafe { dst.add(i).write(src.add(i).read_volatile()) };
    }
}

/// Writes `frame` and the live FPU state into `*area` field by field
/// (building a whole `UserContext` first would copy its 512-byte FPU image
/// twice), volatile, with `valid` last: an environment's thread on another
/// core that sees the area valid sees the whole context (x86 stores are
/// seen in order; the compiler keeps volatile stores and the `fxsave` asm
/// in program order).
///
/// # Safety
/// `area` is writable for a `UserContext` and 16-byte aligned.
unsafe fn store_context(area: *mut UserContext, frame: &TrapFrame) {
    macro_rules! store {
        ($($field:ident),*) => {
            // SAFETY: fields of `*area` (caller's contract).
            $(unsafe { addr_of_mut!((*area).$field).write_volatile(frame.$field) };)*
        };
    }
    store!(rax, rbx, rcx, rdx, rsi, rdi, rbp, r8, r9, r10, r11, r12, r13, r14, r15);
    // SAFETY: the caller's contract.
    unsafe { store_rest(area, frame.rip, frame.rflags, frame.rsp) }
}

/// Writes what a context holds beside its general registers into `*area`
/// (`rip`, `rflags`, `rsp`, no FS base, the live FPU state), volatile,
/// then marks it valid, last (see `store_context`).
///
/// # Safety
/// `area` is writable for a `UserContext` and 16-byte aligned.
unsafe fn store_rest(area: *mut UserContext, rip: u64, rflags: u64, rsp: u64) {
    // SAFETY: fields of `*area` (caller's contract); `fx` is 512 bytes at
    // a 16-aligned offset.
    unsafe {
        addr_of_mut!((*area).rip).write_volatile(rip);
        addr_of_mut!((*area).rflags).write_volatile(rflags);
        addr_of_mut!((*area).rsp).write_volatile(rsp);
        addr_of_mut!((*area).fs_base).write_volatile(0);
        cpu::fxsave(addr_of_mut!((*area).fx));
        addr_of_mut!((*area).valid).write_volatile(1);
    }
}
