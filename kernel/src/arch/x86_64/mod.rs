//! x86_64 specifics: boot entry, descriptor tables, interrupt entry.
pub mod boot;
pub mod cpu;
pub mod gdt;
pub mod interrupts;
pub mod pvh;
