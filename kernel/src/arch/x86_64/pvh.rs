//! The PVH `hvm_start_info` handed over by the loader, copied into kernel
//! memory at boot so nothing depends on the loader's pages afterwards.

use core::mem::size_of;

use crate::sync::BootCell;

const START_INFO_MAGIC: u32 = 0x336e_c578;
const MAX_MEMMAP: usize = 128;
const MAX_MODULES: usize = 16;
const MAX_CMDLINE: usize = 1024;

#[repr(C)]
#[derive(Clone, Copy)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct MemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct ModlistEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

/// A boot module (`-initrd`): physical placement only.
#[derive(Clone, Copy, Debug, Default)]
pub struct Module {
    pub paddr: u64,
    pub size: u64,
}

/// What the kernel keeps from the start info.
pub struct BootInfo {
    pub rsdp_paddr: u64,
    memmap: [kernel::memmap::Region; MAX_MEMMAP],
    memmap_len: usize,
    modules: [Module; MAX_MODULES],
    modules_len: usize,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
}

impl BootInfo {
    pub fn memory_map(&self) -> &[kernel::memmap::Region] {
        &self.memmap[..self.memmap_len]
    }

    pub fn modules(&self) -> &[Module] {
        &self.modules[..self.modules_len]
    }

    /// The command line, or "" if it was not valid UTF-8 (reported at parse).
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("\u{fffd}")
    }
}

static BOOT_INFO: BootCell<BootInfo> = BootCell::new();

/// Why the start info was unusable (read through `Debug`, in the boot log).
#[derive(Debug)]
#[allow(dead_code)]
pub enum PvhError {
    BadMagic(u32),
    NoMemoryMap,
}

/// Reads the start info at `paddr` through the boot identity map.
///
/// # Safety
/// Must be called once, on the BSP, while the boot page tables (identity map
/// of the low 4 GiB) are active, with `paddr` as given by the loader.
pub unsafe fn capture(paddr: u64) -> Result<&'static BootInfo, PvhError> {
    // SAFETY: per the contract, the identity map covers the loader's
    // structures, which stay untouched until we copied them here.
    let si: StartInfo = unsafe { core::ptr::read_unaligned(paddr as *const StartInfo) };
    if si.magic != START_INFO_MAGIC {
        return Err(PvhError::BadMagic(si.magic));
    }
    if si.version < 1 || si.memmap_entries == 0 {
        return Err(PvhError::NoMemoryMap);
    }
    let mut info = BootInfo {
        rsdp_paddr: si.rsdp_paddr,
        memmap: [kernel::memmap::Region {
            start: 0,
            len: 0,
            usable: false,
        }; MAX_MEMMAP],
        memmap_len: 0,
        modules: [Module::default(); MAX_MODULES],
        modules_len: 0,
        cmdline: [0; MAX_CMDLINE],
        cmdline_len: 0,
    };
    for i in 0..(si.memmap_entries as usize).min(MAX_MEMMAP) {
        let at = si.memmap_paddr + (i * size_of::<MemmapEntry>()) as u64;
        // SAFETY: entry `i` of the loader's memory map, identity-mapped.
        let e: MemmapEntry = unsafe { core::ptr::read_unaligned(at as *const MemmapEntry) };
        info.memmap[i] = kernel::memmap::Region {
            start: e.addr,
            len: e.size,
            usable: e.kind == 1,
        };
        info.memmap_len = i + 1;
    }
    for i in 0..(si.nr_modules as usize).min(MAX_MODULES) {
        let at = si.modlist_paddr + (i * size_of::<ModlistEntry>()) as u64;
        // SAFETY: entry `i` of the loader's module list, identity-mapped.
        let e: ModlistEntry = unsafe { core::ptr::read_unaligned(at as *const ModlistEntry) };
        info.modules[i] = Module {
            paddr: e.paddr,
            size: e.size,
        };
        info.modules_len = i + 1;
    }
    if si.cmdline_paddr != 0 {
        let mut n = 0;
        while n < MAX_CMDLINE {
            // SAFETY: the NUL-terminated command line, identity-mapped; we
            // stop at the NUL or at our buffer's size.
            let b = unsafe { core::ptr::read((si.cmdline_paddr + n as u64) as *const u8) };
            if b == 0 {
                break;
            }
            info.cmdline[n] = b;
            n += 1;
        }
        info.cmdline_len = n;
    }
    Ok(BOOT_INFO.init(info))
}
