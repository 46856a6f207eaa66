//! A panic on any core: print core, message and location, stop every other
//! core with an NMI, and end the run with `ExitCode::Panic`.

use core::panic::PanicInfo;
use core::sync::atomic::Ordering;

use abi::ExitCode;

use crate::arch::{apic, irq, percpu, serial, smp};
use crate::trap::PANICKING;

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    // From here on this core only prints and stops the machine.
    irq::disable();
    let first = !PANICKING.swap(true, Ordering::AcqRel);
    let core = percpu::core_id();
    // The panicking core may hold the console lock (or a stopped core may):
    // write past it rather than deadlock.
    let (file, line, col) = info
        .location()
        .map_or(("?", 0, 0), |l| (l.file(), l.line(), l.column()));
    serial::print_unlocked(format_args!(
        "\n[c{core} PANIC] {} at {file}:{line}:{col}\n",
        info.message()
    ));
    if !first {
        // Another core is already stopping the machine.
        crate::exit::halt_forever();
    }
    for other in (0..smp::cores()).filter(|&c| c != core) {
        let id = smp::apic_id(other);
        if id != u32::MAX {
            apic::send_nmi(id);
        }
    }
    serial::print_unlocked(format_args!(
        "{}end {{\"exit\":\"panic\",\"core\":{core}}}\n",
        abi::record::RECORD_PREFIX
    ));
    crate::exit::exit(ExitCode::Panic)
}
