//! A threaded program whose victim thread takes #UD, #PF, #DE, #GP and #BP;
//! the application's fault handler (`threads::on_fault`) reports each and
//! resumes the thread past the instruction, while another thread keeps
//! counting. Finally the handler itself faults, which must get the
//! application killed (faults while disabled are fatal), and nobody else.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use libos::abi::shared::FaultInfo;
use libos::{report, threads, FaultAction};

static FAULT_IN_HANDLER: AtomicBool = AtomicBool::new(false);
static FAULTS: AtomicU64 = AtomicU64::new(0);
static COUNTED: AtomicU64 = AtomicU64::new(0);

fn on_fault(tid: usize, info: &FaultInfo) -> FaultAction {
    let n = FAULTS.fetch_add(1, Ordering::AcqRel) + 1;
    report!(
        "\"kind\":\"thread_fault\",\"tid\":{tid},\"n\":{n},\"vector\":{},\"error_code\":{},\"address\":{},\"rip\":{}",
        info.vector,
        info.error_code,
        info.address,
        info.rip
    );
    if FAULT_IN_HANDLER.load(Ordering::Acquire) {
        // SAFETY: a deliberate #UD inside the handler (disabled): fatal.
        unsafe { core::arch::asm!("ud2") };
    }
    // Lengths of the faulting instructions in `victim` (#BP is a trap: rip
    // is already past it).
    let skip = match info.vector {
        6 => 2,  // ud2
        14 => 8, // mov rax, [0x10]
        0 => 2,  // div ecx
        13 => 3, // mov rax, [rcx] with a non-canonical rcx
        _ => 0,
    };
    FaultAction::Resume { skip }
}

fn victim(_: usize) {
    // SAFETY: each instruction faults by design and is skipped by the
    // handler; the registers named are clobbered.
    unsafe {
        core::arch::asm!("ud2");
        core::arch::asm!(".byte 0x48, 0x8b, 0x04, 0x25, 0x10, 0x00, 0x00, 0x00", out("rax") _);
        core::arch::asm!(".byte 0xf7, 0xf1", in("ecx") 0u32, inout("eax") 1u32 => _, inout("edx") 0u32 => _);
        core::arch::asm!(".byte 0x48, 0x8b, 0x01", in("rcx") 0x8000_0000_0000_0000u64, out("rax") _);
        core::arch::asm!("int3");
    }
    report!(
        "\"kind\":\"thread_faults_survived\",\"tid\":{},\"faults\":{},\"other_thread_counted\":{}",
        threads::self_id(),
        FAULTS.load(Ordering::Acquire),
        COUNTED.load(Ordering::Acquire) > 0
    );
    FAULT_IN_HANDLER.store(true, Ordering::Release);
    // SAFETY: one more #UD, whose handler faults in turn.
    unsafe { core::arch::asm!("ud2") };
}

fn counter(_: usize) {
    loop {
        COUNTED.fetch_add(1, Ordering::Relaxed);
    }
}

fn main_thread(_: usize) {
    threads::on_fault(on_fault);
    let _ = threads::spawn(counter, 0, 1);
    // Let the counter run first, so the report shows both threads ran.
    threads::sleep_until(libos::sys::now_ns() + 20_000_000);
    if let Some(t) = threads::spawn(victim, 0, 1) {
        threads::join(t);
    }
}

libos::threaded_program!(main_thread);
