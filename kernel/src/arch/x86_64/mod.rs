//! x86_64: boot entry, descriptor tables, interrupt entry, and the devices
//! and memory of a PC.
pub mod acpi;
pub mod apic;
pub mod boot;
pub mod cpu;
pub mod gdt;
pub mod interrupts;
pub mod irq;
pub mod mm;
pub mod percpu;
pub mod pvh;
pub mod serial;
pub mod smp;
pub mod steal;
pub mod time;
