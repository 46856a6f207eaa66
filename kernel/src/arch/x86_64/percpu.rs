//! Per-CPU data, reached through the GS base: `gs:0` holds a pointer to the
//! core's own `PerCpu`, so `core_id()` is one load and needs no lock.

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

use abi::shared::UserContext;
use x2apic::lapic::LocalApic;

/// Most cores the kernel supports.
pub const MAX_CPUS: usize = 128;

/// One core's private state. Fields are either atomics (read by other cores
/// for statistics) or touched only by the owning core (`UnsafeCell`s).
#[repr(C, align(64))]
pub struct PerCpu {
    /// `gs:0`: this structure's own address.
    self_ptr: AtomicU64,
    /// `gs:8`: dense core index (0 = BSP), in MADT order.
    core: AtomicU32,
    /// The core's local APIC id.
    pub apic_id: AtomicU32,
    /// `gs:16`: kernel stack top, loaded by the syscall entry.
    pub kernel_rsp: AtomicU64,
    /// `gs:24`: scratch for the user stack pointer during syscall entry.
    pub user_rsp_scratch: AtomicU64,
    /// The caller's stack pointer while a light system call runs on this
    /// core (`syscall::light`), 0 otherwise: the light entry keeps it here
    /// rather than on the kernel stack, and clears it on the way out, so
    /// `enter_user` can tell that a light call is under way.
    pub light_caller_rsp: AtomicU64,
    /// Where the light entry starts its stack: 8 bytes below the kernel
    /// stack top, so that after its seven pushes the call to the handler
    /// finds RSP 16-byte aligned, as the System V ABI requires.
    pub light_stack_top: AtomicU64,
    /// Timer interrupts taken.
    pub ticks: AtomicU64,
    /// Absolute time (ns) of this core's next periodic tick.
    pub next_tick_ns: AtomicU64,
    /// Fixed-vector IPIs received.
    pub ipis: AtomicU64,
    /// NMIs received.
    pub nmis: AtomicU64,
    /// Where a kernel fault at an expected spot resumes (0 = none): the
    /// exception-fixup mechanism used by kernel accesses to untrusted memory.
    pub fault_fixup: AtomicU64,
    /// Vector of the last fault that was fixed up.
    pub last_fixed_vector: AtomicU64,
    /// Where an exception from ring 3 saves the general registers (the
    /// kernel address of a [`UserContext`]: the running environment's
    /// fault save area on this core), 0 when no environment runs here.
    /// Set by the scheduler with its running environment, under
    /// [`CurrentRef`]'s contract: whoever sets it keeps that memory alive
    /// until it clears or replaces it (see `interrupts`' user-exception
    /// entry, its only reader).
    user_exception_area: AtomicU64,
    /// The core's local APIC driver: only the owning core uses it.
    apic: UnsafeCell<Option<LocalApic>>,
}

// SAFETY: all shared fields are atomics; `apic` is only reached through
// `apic()`, which hands it to the owning core alone (it reads `gs`).
unsafe impl Sync for PerCpu {}

impl PerCpu {
    const fn new() -> Self {
        PerCpu {
            self_ptr: AtomicU64::new(0),
            core: AtomicU32::new(0),
            apic_id: AtomicU32::new(0),
            kernel_rsp: AtomicU64::new(0),
            user_rsp_scratch: AtomicU64::new(0),
            light_caller_rsp: AtomicU64::new(0),
            light_stack_top: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
            next_tick_ns: AtomicU64::new(0),
            ipis: AtomicU64::new(0),
            nmis: AtomicU64::new(0),
            fault_fixup: AtomicU64::new(0),
            last_fixed_vector: AtomicU64::new(0),
            user_exception_area: AtomicU64::new(0),
            apic: UnsafeCell::new(None),
        }
    }

    pub fn core(&self) -> usize {
        self.core.load(Ordering::Relaxed) as usize
    }

    /// Exceptions from ring 3 on this core save the general registers at
    /// `area` from now on (the user-exception entry writes through it).
    ///
    /// # Safety
    /// `area` must stay a live, writable `UserContext`, written by nothing
    /// else while user code runs on this core, until the caller clears
    /// ([`PerCpu::clear_user_exception_area`]) or replaces it, as a
    /// [`CurrentRef`] setter keeps its object alive.
    #[inline]
    pub unsafe fn set_user_exception_area(&self, area: NonNull<UserContext>) {
        self.user_exception_area
            .store(area.as_ptr() as u64, Ordering::Relaxed);
    }

    /// Exceptions from ring 3 on this core go through the trap frame again
    /// (no area is named).
    #[inline]
    pub fn clear_user_exception_area(&self) {
        self.user_exception_area.store(0, Ordering::Relaxed);
    }
}

/// `gs:` offset of [`PerCpu::user_exception_area`], for the entry stub.
pub const USER_EXCEPTION_AREA: usize = core::mem::offset_of!(PerCpu, user_exception_area);

static CPUS: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

/// Number of cores that completed bring-up.
pub static ONLINE: AtomicU32 = AtomicU32::new(0);

/// Points this core's GS base at `CPUS[core]`.
///
/// # Safety
/// Called once per core, on that core, before anything reads `gs`.
pub unsafe fn install(core: usize, apic_id: u32) {
    let cpu = &CPUS[core];
    cpu.self_ptr
        .store(cpu as *const PerCpu as u64, Ordering::Relaxed);
    cpu.core.store(core as u32, Ordering::Relaxed);
    cpu.apic_id.store(apic_id, Ordering::Relaxed);
    // SAFETY: writing GS_BASE only changes how this core resolves `gs:`.
    unsafe {
        x86::msr::wrmsr(x86::msr::IA32_GS_BASE, cpu as *const PerCpu as u64);
    }
}

/// This core's per-CPU data (inlined: one `gs` load, where a call and
/// return cost as much again on every path that asks).
#[inline]
pub fn this() -> &'static PerCpu {
    let ptr: u64;
    // SAFETY: `gs:0` holds the pointer stored by `install`, which every core
    // runs before its first use of `this()`; the BSP runs it first thing.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) ptr, options(nostack, readonly, preserves_flags));
        &*(ptr as *const PerCpu)
    }
}

/// This core's index.
#[inline]
pub fn core_id() -> usize {
    this().core()
}

/// Any core's per-CPU data, for statistics and tests.
pub fn of(core: usize) -> &'static PerCpu {
    &CPUS[core]
}

/// Runs `f` with this core's local APIC driver.
pub fn with_apic<R>(f: impl FnOnce(&mut LocalApic) -> R) -> R {
    let cpu = this();
    // SAFETY: `apic` belongs to the current core; interrupts are disabled
    // for the duration so no handler on this core re-enters it.
    super::irq::without_interrupts(|| unsafe {
        let apic = (*cpu.apic.get())
            .as_mut()
            .expect("local APIC used before init");
        f(apic)
    })
}

/// Stores this core's local APIC driver.
pub fn set_apic(apic: LocalApic) {
    let cpu = this();
    // SAFETY: only the owning core writes its slot, with interrupts off.
    super::irq::without_interrupts(|| unsafe { *cpu.apic.get() = Some(apic) });
}

/// Per core: the object the core works for now (the scheduler's running
/// environment), found by code running on that core without a lock or a
/// reference count. Each core sets and clears only its own entry, and
/// whoever sets it keeps the object alive until it clears or replaces it.
pub struct CurrentRef<T>([AtomicPtr<T>; MAX_CPUS]);

impl<T: Sync> CurrentRef<T> {
    pub const fn new() -> Self {
        CurrentRef([const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS])
    }

    /// Core `core` (the caller's) works for `obj` now; the caller keeps it
    /// alive until [`clear`](Self::clear) or the next `set`.
    #[inline]
    pub fn set(&self, core: usize, obj: &T) {
        self.0[core].store(core::ptr::from_ref(obj).cast_mut(), Ordering::Relaxed);
    }

    /// Core `core` (the caller's) works for nothing now.
    #[inline]
    pub fn clear(&self, core: usize) {
        self.0[core].store(core::ptr::null_mut(), Ordering::Relaxed);
    }

    /// What this core works for, borrowed.
    ///
    /// # Safety
    /// The borrow must end before this core clears or replaces its entry
    /// (before the setter lets go of the object): what the setter promises
    /// for how long is its own contract (the scheduler's: `sched::RUNNING`).
    #[inline]
    pub unsafe fn here<'a>(&self) -> Option<&'a T> {
        let obj = self.0[core_id()].load(Ordering::Relaxed);
        // SAFETY: null, or an object its setter keeps alive until it
        // clears or replaces the entry, which the caller's borrow precedes.
        unsafe { obj.as_ref() }
    }
}
