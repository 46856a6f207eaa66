//! `bad_iret` without an exception handler: asks the kernel, through the
//! test-only call `TEST_BAD_IRET` (honoured only in the `bad_iret`
//! experiments), to return to it by an `iretq` with a null SS, which
//! faults in ring 0 after the swap to the user's GS (issue 14, hole 3).
//! With no handler to reflect the #GP to, the kernel must kill this
//! program, and only it: the call never returns here.
#![cfg_attr(target_os = "none", no_std, no_main)]

use libos::abi::syscall::TEST_BAD_IRET;
use libos::{report, sys, App, Epilogue};

fn worker(core: usize) -> ! {
    if core == 0 {
        report!("\"kind\":\"bad_iret_bare_calling\"");
        // SAFETY: an unknown call number elsewhere (`BadSyscall`); in the
        // experiment its return faults and the kernel kills the caller.
        let (rax, _) = unsafe { sys::raw(TEST_BAD_IRET, [0; 6]) };
        report!("\"kind\":\"bad_iret_bare_survived\",\"rax\":{rax}");
    }
    loop {
        core::hint::spin_loop();
    }
}

libos::program!(App {
    name: "bad_iret_bare",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
