//! Hostile: plays with segment registers (issue 14, holes 2 and 4).
//!
//! - On core 0, first: a far jump to selector 0x1B, the GDT's 32-bit user
//!   code descriptor (kept only for the `sysret` layout), and a `syscall`
//!   from compatibility mode there. Were the descriptor present, the CPU
//!   would enter ring 0 at `IA32_CSTAR` on the user's stack (AMD's rule,
//!   which TCG follows): with CSTAR unset, at address 0 — #PF, #DF, panic.
//!   The jump must fault in ring 3 instead (reported by the handler).
//! - On every core, for ever: loads FS with the user data selector, which
//!   sets the FS base to 0. Every libOS reaches its dispatch page through
//!   FS (`mov dword ptr fs:[0], 1` sets its disabled flag), so the next
//!   environment on the core would fault — unless the kernel restores FS
//!   on every entry to an environment.
//! - Right after each such load, an `int3`: the exception upcall must find
//!   FS at the dispatch page again (its handler reaches the page through
//!   FS; a fault there, disabled, would kill the environment). The 100th
//!   breakpoint is reported.
//! - On every core, for ever: sets RFLAGS.AC, which interrupt gates keep:
//!   the kernel's handlers must clear it, or SMAP does not guard them
//!   (issue 14, hole 10: `clac`).
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::{AtomicU64, Ordering};

use libos::abi::shared::FaultInfo;
use libos::{report, App, Epilogue, FaultAction};

/// Length of `jmp fword ptr [rip + x]` (FF 2D rel32).
const FAR_JMP_LEN: u64 = 6;
static FAR_JUMP_FAULTS: AtomicU64 = AtomicU64::new(0);

// Bare metal only: the 32-bit absolute address needs the kernel target's
// static relocation model.
#[cfg(target_os = "none")]
core::arch::global_asm!(
    ".pushsection .rodata.segments, \"a\"",
    ".balign 8",
    "segments_far_target:",
    ".long segments_compat32",
    ".short 0x1b",
    ".popsection",
    ".pushsection .text.segments, \"ax\"",
    ".code32",
    "segments_compat32:",
    "syscall",
    "2: jmp 2b",
    ".code64",
    ".popsection",
);

static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);
/// Breakpoints whose handler found its core's disabled flag clear.
static ENABLED_IN_UPCALL: AtomicU64 = AtomicU64::new(0);
/// The breakpoint whose handler reports the counts (once).
const BREAKPOINTS_REPORTED_AT: u64 = 100;

fn on_fault(core: usize, info: &FaultInfo) -> FaultAction {
    if info.vector == 3 {
        // Through FS, as every libOS critical section reaches its flag:
        // with FS left at base 0 this write faults, disabled, and the
        // environment dies. An upcall runs disabled: the flag was set.
        if libos::sys::disable_here_swap() != 1 {
            ENABLED_IN_UPCALL.fetch_add(1, Ordering::Relaxed);
        }
        if BREAKPOINTS.fetch_add(1, Ordering::Relaxed) + 1 == BREAKPOINTS_REPORTED_AT {
            report!(
                "\"kind\":\"segments_breakpoints\",\"count\":{BREAKPOINTS_REPORTED_AT},\"enabled_in_upcall\":{}",
                ENABLED_IN_UPCALL.load(Ordering::Relaxed)
            );
        }
        // #BP is a trap: the saved rip is already past the int3.
        return FaultAction::Resume { skip: 0 };
    }
    report!(
        "\"kind\":\"segments_fault\",\"core\":{core},\"vector\":{},\"error_code\":{}",
        info.vector,
        info.error_code
    );
    FAR_JUMP_FAULTS.fetch_add(1, Ordering::Relaxed);
    FaultAction::Resume { skip: FAR_JMP_LEN }
}

fn worker(core: usize) -> ! {
    if core == 0 {
        // SAFETY: a far jump that must fault (resumed past it by the
        // handler); were it taken, the 32-bit code issues `syscall`.
        #[cfg(target_os = "none")]
        unsafe {
            core::arch::asm!("jmp fword ptr [rip + segments_far_target]");
        }
        report!(
            "\"kind\":\"segments_far_jump\",\"faulted\":{}",
            FAR_JUMP_FAULTS.load(Ordering::Relaxed)
        );
    }
    loop {
        // SAFETY: loads FS with the user data selector (base 0): only
        // this environment's own view changes, for as long as the
        // kernel leaves it.
        unsafe {
            core::arch::asm!("mov ax, 0x23", "mov fs, ax", out("ax") _, options(nostack));
        }
        // SAFETY: traps to the kernel, which reflects it to `on_fault` with
        // FS at the dispatch page again; the handler resumes right after.
        unsafe { core::arch::asm!("int3") };
        // SAFETY: sets RFLAGS.AC (ring 3 may; CR0.AM is clear, so no
        // alignment checks follow). The kernel's handlers must not run
        // with it: AC set lifts SMAP for them.
        unsafe {
            core::arch::asm!("pushfq", "or qword ptr [rsp], 0x40000", "popfq");
        }
        for _ in 0..1000 {
            core::hint::spin_loop();
        }
    }
}

libos::program!(App {
    name: "segments",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: Some(on_fault)
});
