//! The bottom layer: everything that touches the hardware — boot entry,
//! descriptor tables, interrupt and system-call entry, the local APIC, the
//! clocks, per-core data, the console, paging and the frame allocator,
//! starting and signalling the other cores. Nothing here names a module
//! above it: the kernel's interrupt and system-call handlers are installed
//! at boot ([`interrupts::install`]).
//!
//! One architecture today; its modules are re-exported so the rest of the
//! kernel names `arch::apic`, not `arch::x86_64::apic`.
mod x86_64;

pub use self::x86_64::*;
