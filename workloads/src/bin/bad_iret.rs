//! Asks the kernel, through the test-only call `TEST_BAD_IRET` (honoured
//! only in the `bad_iret` experiment), to return to it by an `iretq` whose
//! frame has a null SS: that `iretq` faults in ring 0, after the swap to
//! the user's GS (issue 14, hole 3). The kernel must take it as this
//! program's fault: an exception upcall (#GP, error code 0) at the
//! instruction after the call, from which the handler resumes; then the
//! call "returns" 0. Reports what it saw after `CALLS` calls on core 0.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::{AtomicU64, Ordering};

use libos::abi::shared::{va, FaultInfo};
use libos::abi::syscall::TEST_BAD_IRET;
use libos::{report, sys, App, Epilogue, FaultAction};

const CALLS: u64 = 8;

static FAULTS: AtomicU64 = AtomicU64::new(0);
static LAST_VECTOR: AtomicU64 = AtomicU64::new(u64::MAX);
static LAST_ERROR: AtomicU64 = AtomicU64::new(u64::MAX);
static LAST_RIP: AtomicU64 = AtomicU64::new(0);

fn on_fault(_core: usize, info: &FaultInfo) -> FaultAction {
    FAULTS.fetch_add(1, Ordering::Relaxed);
    LAST_VECTOR.store(info.vector, Ordering::Relaxed);
    LAST_ERROR.store(info.error_code, Ordering::Relaxed);
    LAST_RIP.store(info.rip, Ordering::Relaxed);
    // The context is the one the kernel was returning to: after the call.
    FaultAction::Resume { skip: 0 }
}

fn worker(core: usize) -> ! {
    if core == 0 {
        let mut results_ok = true;
        for _ in 0..CALLS {
            // SAFETY: an unknown call number elsewhere (`BadSyscall`); in
            // the experiment it returns, through the fault, with rax 0.
            let (rax, _) = unsafe { sys::raw(TEST_BAD_IRET, [0; 6]) };
            results_ok &= rax == 0;
        }
        let rip = LAST_RIP.load(Ordering::Relaxed);
        report!(
            "\"kind\":\"bad_iret\",\"calls\":{CALLS},\"faults\":{},\"vector\":{},\"error_code\":{},\"rip_in_program\":{},\"results_ok\":{results_ok}",
            FAULTS.load(Ordering::Relaxed),
            LAST_VECTOR.load(Ordering::Relaxed),
            LAST_ERROR.load(Ordering::Relaxed),
            (va::PROGRAM_BASE..va::USER_MAP_START).contains(&rip)
        );
    }
    loop {
        core::hint::spin_loop();
    }
}

libos::program!(App {
    name: "bad_iret",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: Some(on_fault)
});
