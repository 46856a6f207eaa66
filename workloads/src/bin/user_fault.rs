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
    FaultAction::Resume {
        skip: workloads::fault_length(info.vector),
    }
}

fn worker(core: usize) -> ! {
    if core == 0 {
        workloads::take_each_fault();
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
