//! Ending the run: QEMU's `isa-debug-exit` device turns a byte written to its
//! port into QEMU's exit status (see `abi::exit`).

use abi::ExitCode;

/// Stops the machine with `code`. If the exit device is missing (a machine
/// configured without it), halts forever instead.
pub fn exit(code: ExitCode) -> ! {
    // SAFETY: the debug-exit port is reserved for this purpose by the runner;
    // writing it terminates the virtual machine.
    unsafe { x86::io::outl(abi::exit::DEBUG_EXIT_PORT, code as u32) };
    halt_forever()
}

/// Disables interrupts and halts this core for good.
pub fn halt_forever() -> ! {
    crate::arch::irq::halt_forever()
}
