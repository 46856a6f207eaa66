//! Takes #UD, #PF, #DE, #GP and #BP in its worker on core 0; its exception
//! handler reports each and resumes past the instruction. Finally it faults
//! inside the handler itself, which must get it killed (and nobody else).
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::{AtomicBool, Ordering};

use libos::abi::shared::FaultInfo;
use libos::{report, App, Epilogue, FaultAction};

static FAULT_IN_HANDLER: AtomicBool = AtomicBool::new(false);

fn on_fault(core: usize, info: &FaultInfo) -> FaultAction {
    report!(
        "\"kind\":\"fault\",\"core\":{core},\"vector\":{},\"error_code\":{},\"address\":{},\"rip\":{}",
        info.vector,
        info.error_code,
        info.address,
        info.rip
    );
    if FAULT_IN_HANDLER.load(Ordering::Acquire) {
        // SAFETY: a deliberate #UD while the disabled flag is set.
        unsafe { core::arch::asm!("ud2") };
    }
    // Instruction lengths of the faulting instructions in `worker` (#BP is a
    // trap: rip is already past it).
    let skip = match info.vector {
        6 => 2,  // ud2
        14 => 8, // mov rax, [0x10]
        0 => 2,  // div ecx
        13 => 3, // mov rax, [rcx]
        _ => 0,
    };
    FaultAction::Resume { skip }
}

fn worker(core: usize) -> ! {
    if core == 0 {
        // SAFETY: each instruction faults by design and is skipped by the
        // handler; the registers named are clobbered.
        unsafe {
            core::arch::asm!("ud2");
            core::arch::asm!(".byte 0x48, 0x8b, 0x04, 0x25, 0x10, 0x00, 0x00, 0x00", out("rax") _);
            core::arch::asm!(".byte 0xf7, 0xf1", in("ecx") 0u32, inout("eax") 1u32 => _, inout("edx") 0u32 => _);
            core::arch::asm!(".byte 0x48, 0x8b, 0x01", in("rcx") 0x8000_0000_0000_0000u64, out("rax") _);
            core::arch::asm!("int3");
        }
        report!("\"kind\":\"faults_survived\",\"core\":{core}");
        FAULT_IN_HANDLER.store(true, Ordering::Release);
        // SAFETY: one more #UD, whose handler faults in turn.
        unsafe { core::arch::asm!("ud2") };
    }
    loop {
        core::hint::spin_loop();
    }
}

libos::program!(App {
    name: "user_fault",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: Some(on_fault)
});
