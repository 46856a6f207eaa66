//! User address spaces. The kernel half (PML4 slots 256..512) is shared
//! with the kernel's own tables; the user half is private. The kernel only
//! touches user memory after walking the environment's own tables, so a
//! pointer the environment does not map (or maps read-only, or that points
//! into the kernel half) is an error, never an access.

use abi::shared::va;
use kernel::frames::FrameError;

use crate::arch::mm::{self, phys_to_virt, pte};

/// Highest user address + 1 (the canonical lower half).
pub const USER_END: u64 = 0x0000_8000_0000_0000;

// `sysret` returns to the RCX `syscall` saved (the address after the
// caller's `syscall`); a non-canonical one would fault in ring 0 on Intel,
// on the user's RSP and GS (arch::interrupts). It cannot occur because no
// page in the lower half's last page is executable by ring 3: programs load
// below USER_MAP_START (`elf::parse`), environments map frames below
// USER_MAP_END ([`mappable`]), and the kernel's own user pages are
// no-execute. (The nested-KVM fix-up, which takes RCX from a fault rather
// than from `syscall`, checks it: `trap::is_unprivileged_syscall`.)
const _: () =
    assert!(va::USER_MAP_START <= va::USER_MAP_END && va::USER_MAP_END <= USER_END - 0x1000);

/// An address space; `pml4` is the physical address of its root.
pub struct AddressSpace {
    pub pml4: u64,
}

/// A kernel view of user memory failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadUserPointer;

impl AddressSpace {
    /// A new address space with the kernel half shared and the user half empty.
    pub fn new() -> Result<Self, FrameError> {
        let pml4 = mm::alloc_frame()?;
        let src = phys_to_virt(mm::kernel_pml4()) as *const u64;
        let dst = phys_to_virt(pml4) as *mut u64;
        // SAFETY: both are page-table frames; the new one was just allocated
        // and zeroed. Copying the upper 256 entries shares the kernel half.
        unsafe { core::ptr::copy_nonoverlapping(src.add(256), dst.add(256), 256) };
        Ok(AddressSpace { pml4 })
    }

    /// Maps the frame at `pa` at user address `va` (4 KiB).
    pub fn map(
        &self,
        va: u64,
        pa: u64,
        writable: bool,
        executable: bool,
    ) -> Result<(), FrameError> {
        let mut flags = pte::PRESENT | pte::USER;
        if writable {
            flags |= pte::WRITABLE;
        }
        if !executable {
            flags |= pte::NO_EXECUTE;
        }
        mm::map_page(self.pml4, va, pa, flags)
    }

    /// Removes the mapping at `va`, returning the frame it mapped.
    pub fn unmap(&self, va: u64) -> Option<u64> {
        let entry = self.leaf_entry(va)?;
        // SAFETY: `entry` points into one of this space's page tables.
        let old = unsafe { entry.read_volatile() };
        if old & pte::PRESENT == 0 {
            return None;
        }
        // SAFETY: as above.
        unsafe { entry.write_volatile(0) };
        Some(old & pte::ADDR_MASK)
    }

    /// How many page tables mapping `va` (4 KiB) would build: 3 in an
    /// empty 512 GiB region, 0 where its last-level table exists.
    pub fn tables_missing(&self, va: u64) -> usize {
        let mut table = self.pml4;
        for level in (2..=4).rev() {
            let idx = ((va >> (12 + 9 * (level - 1))) & 511) as usize;
            // SAFETY: walking this space's own tables through the direct map.
            let e = unsafe { (phys_to_virt(table) as *const u64).add(idx).read_volatile() };
            if e & pte::PRESENT == 0 {
                return level as usize - 1;
            }
            table = e & pte::ADDR_MASK;
        }
        0
    }

    /// The leaf PTE slot for `va` (4 KiB mappings), if its tables exist.
    fn leaf_entry(&self, va: u64) -> Option<*mut u64> {
        if va >= USER_END {
            return None;
        }
        let mut table = self.pml4;
        for level in (2..=4).rev() {
            let idx = ((va >> (12 + 9 * (level - 1))) & 511) as usize;
            // SAFETY: walking this space's own tables through the direct map.
            let e = unsafe { (phys_to_virt(table) as *const u64).add(idx).read_volatile() };
            if e & pte::PRESENT == 0 || e & pte::HUGE != 0 {
                return None;
            }
            table = e & pte::ADDR_MASK;
        }
        Some((phys_to_virt(table) as *mut u64).wrapping_add(((va >> 12) & 511) as usize))
    }

    /// The physical address behind user address `va`, if the environment
    /// maps it user-accessible (and writable, when `write`).
    pub fn translate(&self, va: u64, write: bool) -> Option<u64> {
        if va >= USER_END {
            return None;
        }
        let e = mm::lookup(self.pml4, va)?;
        let need = pte::PRESENT | pte::USER | if write { pte::WRITABLE } else { 0 };
        (e & need == need && e & pte::HUGE == 0).then(|| (e & pte::ADDR_MASK) + (va & 0xfff))
    }

    /// Whether `[va, va+len)` is mapped user-readable.
    pub fn readable(&self, va: u64, len: u64) -> bool {
        let Some(end) = va.checked_add(len) else {
            return false;
        };
        if end > USER_END {
            return false;
        }
        let mut page = va & !0xfff;
        while page < end {
            if self.translate(page, false).is_none() {
                return false;
            }
            page += 0x1000;
        }
        true
    }

    /// Copies `out.len()` bytes from user address `va`.
    pub fn copy_in(&self, va: u64, out: &mut [u8]) -> Result<(), BadUserPointer> {
        self.for_each_chunk(va, out.len(), false, |pa, at, n| {
            // SAFETY: `pa..pa+n` is user memory of this space (translated),
            // reached via the direct map; `out[at..at+n]` is in bounds.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    phys_to_virt(pa) as *const u8,
                    out[at..].as_mut_ptr(),
                    n,
                )
            };
        })
    }

    /// Reads a u64 at a user address (any alignment within a page is fine).
    pub fn read_u64(&self, va: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.copy_in(va, &mut b).ok()?;
        Some(u64::from_le_bytes(b))
    }

    fn for_each_chunk(
        &self,
        va: u64,
        len: usize,
        write: bool,
        mut f: impl FnMut(u64, usize, usize),
    ) -> Result<(), BadUserPointer> {
        let end = va.checked_add(len as u64).ok_or(BadUserPointer)?;
        if end > USER_END {
            return Err(BadUserPointer);
        }
        // Check everything first, so a bad tail never leaves a partial copy.
        let mut at = va;
        while at < end {
            self.translate(at, write).ok_or(BadUserPointer)?;
            at = (at & !0xfff) + 0x1000;
        }
        let mut at = va;
        while at < end {
            let n = (((at & !0xfff) + 0x1000).min(end) - at) as usize;
            let pa = self.translate(at, write).ok_or(BadUserPointer)?;
            f(pa, (at - va) as usize, n);
            at += n as u64;
        }
        Ok(())
    }

    /// Frees the page-table frames of the user half (not the frames they
    /// map: those are owned and freed by the environment) and the root.
    pub fn destroy(self) {
        fn free_level(table: u64, level: u32) {
            for i in 0..512 {
                // SAFETY: `table` is one of this space's page tables.
                let e = unsafe { (phys_to_virt(table) as *const u64).add(i).read_volatile() };
                if e & pte::PRESENT != 0 && e & pte::HUGE == 0 && level > 2 {
                    free_level(e & pte::ADDR_MASK, level - 1);
                }
                if e & pte::PRESENT != 0 && level > 1 && e & pte::HUGE == 0 {
                    let _ = mm::free_frame(e & pte::ADDR_MASK);
                }
            }
        }
        for i in 0..256 {
            // SAFETY: reading the root's user-half entries.
            let e = unsafe {
                (phys_to_virt(self.pml4) as *const u64)
                    .add(i)
                    .read_volatile()
            };
            if e & pte::PRESENT != 0 {
                free_level(e & pte::ADDR_MASK, 3);
                let _ = mm::free_frame(e & pte::ADDR_MASK);
            }
        }
        let _ = mm::free_frame(self.pml4);
    }
}

/// Whether `va` may be named by an environment for its own mappings.
pub fn mappable(va: u64) -> bool {
    va.is_multiple_of(0x1000) && (va::USER_MAP_START..va::USER_MAP_END).contains(&va)
}
