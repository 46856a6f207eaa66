//! ACPI: find the RSDP (boot info first, then the BIOS areas), and read the
//! MADT (processors and their APIC ids) and the FADT (PM timer) with the
//! `acpi` crate. Tables are reached through the direct map; nothing is
//! mapped or unmapped.

use core::ptr::NonNull;

use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use alloc::vec::Vec;

#[derive(Clone, Copy)]
struct DirectMap;

impl AcpiHandler for DirectMap {
    unsafe fn map_physical_region<T>(&self, pa: usize, size: usize) -> PhysicalMapping<Self, T> {
        let va = crate::arch::mm::phys_to_virt(pa as u64) as *mut T;
        // SAFETY: the direct map covers all physical memory the firmware
        // describes (RAM and the low 4 GiB), so `va` is valid for `size`.
        unsafe { PhysicalMapping::new(pa, NonNull::new_unchecked(va), size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// A processor the firmware describes.
#[derive(Clone, Copy, Debug)]
pub struct Processor {
    pub apic_id: u32,
    /// Usable now (as opposed to "online capable" hot-plug slots).
    pub enabled: bool,
}

/// What the kernel takes from ACPI.
pub struct Platform {
    pub processors: Vec<Processor>,
    pub pm_timer_port: Option<u16>,
}

/// Why ACPI could not be read (the payloads are read through `Debug`, in
/// the boot log).
#[derive(Debug)]
#[allow(dead_code)]
pub enum AcpiError {
    NoRsdp(acpi::AcpiError),
    NoMadt(acpi::AcpiError),
}

/// Parses the tables. `rsdp_hint` is the boot info's RSDP address (0 = none).
pub fn parse(rsdp_hint: u64) -> Result<Platform, AcpiError> {
    // SAFETY: the RSDP address comes from the loader (or the BIOS area scan
    // validates the signature and checksum); the handler maps via the
    // direct map, which covers all firmware tables.
    let tables = unsafe {
        if rsdp_hint != 0 {
            AcpiTables::from_rsdp(DirectMap, rsdp_hint as usize)
        } else {
            AcpiTables::search_for_rsdp_bios(DirectMap)
        }
    }
    .map_err(AcpiError::NoRsdp)?;
    let madt = tables.find_table::<Madt>().map_err(AcpiError::NoMadt)?;
    let mut processors = Vec::new();
    for entry in madt.get().entries() {
        match entry {
            MadtEntry::LocalApic(e) => processors.push(Processor {
                apic_id: u32::from(e.apic_id),
                enabled: e.flags & 1 != 0,
            }),
            MadtEntry::LocalX2Apic(e) => processors.push(Processor {
                apic_id: e.x2apic_id,
                enabled: e.flags & 1 != 0,
            }),
            _ => {}
        }
    }
    let pm_timer_port = tables
        .find_table::<acpi::fadt::Fadt>()
        .ok()
        .and_then(|fadt| fadt.pm_timer_block().ok().flatten())
        .filter(|g| g.address_space == acpi::address::AddressSpace::SystemIo)
        .map(|g| g.address as u16);
    Ok(Platform {
        processors,
        pm_timer_port,
    })
}
