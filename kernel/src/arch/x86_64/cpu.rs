//! Per-core CPU configuration for running environments: `syscall`/`sysret`,
//! SSE state for user code, SMEP/SMAP, and the FPU save/restore helpers.

use raw_cpuid::CpuId;
use x86::controlregs::{cr0, cr0_write, cr4, cr4_write, Cr0, Cr4};
use x86::msr::{
    rdmsr, wrmsr, IA32_CSTAR, IA32_EFER, IA32_FMASK, IA32_FS_BASE, IA32_KERNEL_GSBASE, IA32_LSTAR,
    IA32_STAR,
};

use super::gdt::{KERNEL_CODE, USER_BASE};

/// A clean FPU/SSE image (`fninit` defaults, MXCSR 0x1f80) loaded on every
/// upcall so no environment sees another's registers.
#[repr(C, align(16))]
pub struct FxArea(pub [u8; 512]);

pub static CLEAN_FX: FxArea = {
    let mut a = [0u8; 512];
    a[0] = 0x7f; // FCW = 0x037f
    a[1] = 0x03;
    a[24] = 0x80; // MXCSR = 0x1f80
    a[25] = 0x1f;
    a[28] = 0xff; // MXCSR_MASK = 0xffff
    a[29] = 0xff;
    FxArea(a)
};

/// Configures this core to run user code. Called once per core at boot.
pub fn init_this_core(kernel_stack_top: u64) {
    let features = CpuId::new().get_extended_feature_info();
    let smep = features.as_ref().is_some_and(|f| f.has_smep());
    let smap = features.as_ref().is_some_and(|f| f.has_smap());
    // SAFETY: these registers configure only this core; the values follow
    // the GDT layout of `gdt` (STAR) and the entry stub (LSTAR). The kernel
    // never touches user memory through user addresses (only through the
    // direct map after a page-table walk), so SMAP needs no stac/clac.
    unsafe {
        wrmsr(IA32_EFER, rdmsr(IA32_EFER) | 1); // SCE
        wrmsr(
            IA32_STAR,
            (u64::from(USER_BASE) << 48) | (u64::from(KERNEL_CODE) << 32),
        );
        wrmsr(IA32_LSTAR, super::interrupts::syscall_entry_address());
        // `syscall` from compatibility mode lands here: it kills the caller.
        // (No present 32-bit code descriptor is left to reach that mode;
        // this is the second wall.)
        wrmsr(
            IA32_CSTAR,
            super::interrupts::compat_syscall_entry_address(),
        );
        // Clear IF, TF, DF, AC, NT on entry: the kernel runs its syscalls
        // with interrupts off.
        wrmsr(
            IA32_FMASK,
            (1 << 9) | (1 << 8) | (1 << 10) | (1 << 18) | (1 << 14),
        );
        wrmsr(IA32_KERNEL_GSBASE, 0);
        // User FS points at this core's dispatch page (the same address in
        // every environment), so a libOS can set its disabled flag with one
        // instruction on whatever core it runs: `mov dword ptr fs:[0], 1`
        // cannot be split by a preemption that moves it to another core.
        // The kernel itself never uses FS.
        restore_user_fs(crate::arch::percpu::core_id());
        let mut c0 = cr0();
        c0.remove(Cr0::CR0_EMULATE_COPROCESSOR | Cr0::CR0_TASK_SWITCHED);
        c0.insert(Cr0::CR0_MONITOR_COPROCESSOR);
        cr0_write(c0);
        let mut c4 = cr4();
        c4.insert(Cr4::CR4_ENABLE_SSE | Cr4::CR4_UNMASKED_SSE);
        if smep {
            c4.insert(Cr4::CR4_ENABLE_SMEP);
        }
        if smap {
            c4.insert(Cr4::CR4_ENABLE_SMAP);
        }
        cr4_write(c4);
    }
    // Both syscall entries call Rust with RSP 16-byte aligned only if the
    // top is (the full one pushes 22 words, the light one 7 from 8 below).
    assert!(
        kernel_stack_top.is_multiple_of(16),
        "kernel stack top {kernel_stack_top:#x} not 16-byte aligned"
    );
    let cpu = crate::arch::percpu::this();
    cpu.kernel_rsp
        .store(kernel_stack_top, core::sync::atomic::Ordering::Relaxed);
    cpu.light_stack_top
        .store(kernel_stack_top - 8, core::sync::atomic::Ordering::Relaxed);
    super::gdt::set_ring0_stack(cpu.core(), kernel_stack_top);
}

/// Saves the live FPU/SSE state into `area` (16-byte aligned, 512 bytes).
///
/// # Safety
/// `area` is 512 writable, 16-byte-aligned bytes. A raw pointer, not a
/// reference: the area may be in a page ring 3 writes concurrently (a
/// dispatch page's save area), which no Rust reference may cover.
pub unsafe fn fxsave(area: *mut [u8; 512]) {
    debug_assert_eq!(area as usize % 16, 0);
    // SAFETY: the caller's contract (UserContext and FxArea are align(16)
    // with `fx` at an aligned offset).
    unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) area.cast::<u8>(), options(nostack)) };
}

/// Loads FPU/SSE state from `area`.
pub fn fxrstor(area: &[u8; 512]) {
    debug_assert_eq!(area.as_ptr() as usize % 16, 0);
    // SAFETY: as for `fxsave`; reserved MXCSR bits in an untrusted image
    // would #GP, so callers sanitise user-written images first.
    unsafe {
        core::arch::asm!("fxrstor64 [{}]", in(reg) area.as_ptr(), options(nostack, readonly))
    };
}

/// Makes an untrusted fxsave image safe to load: MXCSR reserved bits clear.
pub fn sanitise_fx(area: &mut [u8; 512]) {
    let mxcsr = u32::from_le_bytes([area[24], area[25], area[26], area[27]]) & 0xffff;
    area[24..28].copy_from_slice(&mxcsr.to_le_bytes());
}

/// Points user FS at `core`'s dispatch page again (selector null, base the
/// page), on every entry to an environment: ring 3 can load FS with a data
/// selector (base 0), and the next environment on the core would then
/// write its disabled flag to address 0.
pub fn restore_user_fs(core: usize) {
    // SAFETY: FS is user state only (the kernel never uses it); a null
    // selector is always loadable in 64-bit mode, and the base written is
    // this core's dispatch page, the same address in every environment.
    unsafe {
        core::arch::asm!("mov fs, {0:x}", in(reg) 0u16, options(nomem, nostack, preserves_flags));
        wrmsr(
            IA32_FS_BASE,
            abi::shared::va::DISPATCH + core as u64 * 0x1000,
        );
    }
}
