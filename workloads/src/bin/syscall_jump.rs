//! Hostile: jumps to the kernel's `syscall` entry instead of executing
//! `syscall` (issue 14, hole 3).
//!
//! Nested KVM on the development machines sometimes performs `syscall`
//! without entering ring 0, and the kernel completes such a call from the
//! page fault at the entry: return address from RCX. A user `jmp` to the
//! entry faults the same way. The address is no secret (the kernel has no
//! address-space randomisation; the experiment hands it over in the
//! program's arguments, as reading the kernel image would).
//!
//! On core 0, once:
//! 1. the jump with RCX at the next instruction and the null call in RAX:
//!    completed as a syscall (the same rights as `syscall`), it returns;
//! 2. the jump with a non-canonical RCX. The kernel used to return to it
//!    with `iretq` after `swapgs`: the `iretq` faulted in ring 0 with the
//!    user's GS, and the machine went down. Now the jump is the fault it
//!    looks like, and this program (no fault handler) is killed.
#![cfg_attr(target_os = "none", no_std, no_main)]

use libos::{report, sys, App, Epilogue};

fn entry() -> Option<u64> {
    let text = sys::args().trim();
    u64::from_str_radix(text.strip_prefix("0x")?, 16).ok()
}

fn worker(core: usize) -> ! {
    if core == 0 {
        let Some(entry) = entry() else {
            report!("\"kind\":\"syscall_jump\",\"entry_known\":false");
            loop {
                core::hint::spin_loop();
            }
        };
        let rax: u64;
        // SAFETY: a jump to the kernel's syscall entry with RCX naming the
        // instruction after it: the kernel completes it as `syscall` (the
        // null call, which changes nothing) and returns there; RCX and R11
        // are clobbered as by `syscall`.
        #[cfg(target_os = "none")]
        unsafe {
            core::arch::asm!(
                "lea rcx, [rip + 2f]",
                "jmp {entry}",
                "2:",
                entry = in(reg) entry,
                inlateout("rax") 0u64 => rax,
                out("rcx") _,
                out("r11") _,
            );
        }
        #[cfg(not(target_os = "none"))]
        {
            // (Host builds only lint this program.)
            let _ = entry;
            rax = u64::MAX;
        }
        report!(
            "\"kind\":\"syscall_jump\",\"entry_known\":true,\"jump_returned\":true,\"rax\":{rax}"
        );
        // SAFETY: the same jump with a return address no `syscall` could
        // leave: it must not come back (the program is killed).
        #[cfg(target_os = "none")]
        unsafe {
            core::arch::asm!(
                "jmp {entry}",
                entry = in(reg) entry,
                in("rax") 0u64,
                in("rcx") 0x8000_0000_0000_0000u64,
                out("r11") _,
            );
        }
        report!("\"kind\":\"syscall_jump_survived\"");
    }
    loop {
        core::hint::spin_loop();
    }
}

libos::program!(App {
    name: "syscall_jump",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
