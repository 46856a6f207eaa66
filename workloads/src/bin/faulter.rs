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
    FaultAction::Resume {
        skip: workloads::fault_length(info.vector),
    }
}

fn victim(_: usize) {
    workloads::take_each_fault();
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
