//! Physical memory: the frame allocator, the kernel's page tables (a direct
//! map of all physical memory plus the kernel image), and the kernel heap.
//!
//! Address-space layout (every environment shares the upper half):
//! - `0 .. 0x0000_8000_0000_0000`: user half, private to each environment;
//! - `PHYS_OFFSET ..`: all physical memory, supervisor-only, non-executable;
//!   MMIO holes are mapped uncached;
//! - `KERNEL_VMA ..`: the kernel image.

use core::marker::PhantomData;
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

use kernel::frames::{FrameBitmap, FrameError};
use kernel::memmap::{self, PAGE_SIZE};
use spin::Mutex;

use crate::arch::boot::KERNEL_VMA;

/// Virtual base of the direct map of physical memory (PML4 slot 256).
pub const PHYS_OFFSET: u64 = 0xFFFF_8000_0000_0000;
const HUGE: u64 = 2 * 1024 * 1024;
const HEAP_SIZE: u64 = 32 * 1024 * 1024;

/// Page-table entry bits.
pub mod pte {
    pub const PRESENT: u64 = 1;
    pub const WRITABLE: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const WRITE_THROUGH: u64 = 1 << 3;
    pub const NO_CACHE: u64 = 1 << 4;
    pub const HUGE: u64 = 1 << 7;
    pub const GLOBAL: u64 = 1 << 8;
    pub const NO_EXECUTE: u64 = 1 << 63;
    pub const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
}

static FRAMES: Mutex<Option<FrameBitmap<'static>>> = Mutex::new(None);
static KERNEL_PML4: AtomicU64 = AtomicU64::new(0);

/// Virtual address at which the kernel reaches physical address `pa`. The
/// boot tables already alias the low 4 GiB there, so this holds from the
/// first instruction of `kernel_main`.
pub const fn phys_to_virt(pa: u64) -> u64 {
    PHYS_OFFSET + pa
}

/// Physical address of the kernel's PML4 (the template every address space copies).
pub fn kernel_pml4() -> u64 {
    KERNEL_PML4.load(Ordering::Relaxed)
}

/// Makes `pml4` this core's page-table root, unless it already is (a CR3
/// write flushes the TLB: not for nothing).
///
/// `pml4` is the root of an address space built on the kernel's template
/// (`aspace::AddressSpace::new`: the kernel half mapped as here), kept
/// allocated by its owner while any core may run on it (the scheduler's
/// claim on a running environment), like the roots `map_page` takes.
pub fn switch_root(pml4: u64) {
    // SAFETY: per the contract above, `pml4` maps the kernel half exactly
    // as the current root does, so the kernel's own code and data stay
    // mapped; only the user half changes.
    unsafe {
        if x86::controlregs::cr3() != pml4 {
            x86::controlregs::cr3_write(pml4);
        }
    }
}

/// If `pml4` is this core's root, goes back to the kernel's own, so the
/// caller may let `pml4` be freed.
pub fn leave_root(pml4: u64) {
    // SAFETY: the kernel's own tables map everything the kernel uses.
    unsafe {
        if x86::controlregs::cr3() == pml4 {
            x86::controlregs::cr3_write(kernel_pml4());
        }
    }
}

/// Allocates one zeroed frame; returns its physical address.
pub fn alloc_frame() -> Result<u64, FrameError> {
    let pfn = FRAMES
        .lock()
        .as_mut()
        .ok_or(FrameError::Exhausted)?
        .alloc_any()?;
    let pa = pfn * PAGE_SIZE;
    // SAFETY: the frame was just allocated: nobody else references it.
    unsafe { core::ptr::write_bytes(phys_to_virt(pa) as *mut u8, 0, PAGE_SIZE as usize) };
    Ok(pa)
}

/// Types zeroed frames hold a valid value of.
///
/// # Safety
/// All-zero bytes are a valid `Self`, aligned to at most a page.
/// ([`alloc_frame_as`] checks at compile time that it fits in one page;
/// [`alloc_adjacent_frames_as`] gives it as many as it needs.)
pub unsafe trait Zeroable {}

/// A typed view of a frame the kernel owns, through the direct map (what
/// Theseus' `MappedPages::as_type` gives for a mapping), made by allocating
/// the frame ([`alloc_frame_as`]): fresh and zeroed, it holds a valid `T`.
///
/// Like every frame address it is valid until the frame's owner frees the
/// frame ([`free_frame`], a safe function: a frame's owner frees it only
/// after its last use is the kernel-wide rule; `env` frees an environment's
/// frames when it reaps it). It gives a raw pointer only: how a `T` that
/// ring 3 may write at the same time can be touched is the business of the
/// type's own module (`dispatch_page`, `exported`).
pub struct FrameRef<T> {
    pa: u64,
    _holds: PhantomData<fn() -> T>,
}

impl<T> Clone for FrameRef<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for FrameRef<T> {}

impl<T> FrameRef<T> {
    /// The frame's physical address.
    pub fn pa(&self) -> u64 {
        self.pa
    }

    /// The `T`'s kernel (direct-map) address.
    pub fn as_ptr(&self) -> *mut T {
        phys_to_virt(self.pa) as *mut T
    }
}

/// Allocates a zeroed frame, viewed as the `T` it holds.
pub fn alloc_frame_as<T: Zeroable>() -> Result<FrameRef<T>, FrameError> {
    const { assert!(core::mem::size_of::<T>() <= PAGE_SIZE as usize) };
    Ok(FrameRef {
        pa: alloc_frame()?,
        _holds: PhantomData,
    })
}

/// Allocates `frames` adjacent zeroed frames, viewed as the `T` they
/// hold (the kernel sees it through the direct map as one object; `T`
/// must fit). Adjacency is asked of the allocator frame by frame, as at
/// boot, when the frames after the first are still free: an error if one
/// is not (the frames taken are kept: at boot that is fatal anyway).
pub fn alloc_adjacent_frames_as<T: Zeroable>(frames: u64) -> Result<FrameRef<T>, FrameError> {
    assert!(core::mem::size_of::<T>() as u64 <= frames * PAGE_SIZE);
    let first = alloc_frame()?;
    for i in 1..frames {
        alloc_named_frame(first / PAGE_SIZE + i)?;
    }
    Ok(FrameRef {
        pa: first,
        _holds: PhantomData,
    })
}

/// Allocates a zeroed frame and lets `fill` write it before anyone else can
/// reach it; returns its physical address.
pub fn alloc_frame_with(
    fill: impl FnOnce(&mut [u8; PAGE_SIZE as usize]),
) -> Result<u64, FrameError> {
    let pa = alloc_frame()?;
    // SAFETY: the frame was just allocated: nothing else references it; it
    // is PAGE_SIZE bytes at its direct-map address.
    fill(unsafe { &mut *(phys_to_virt(pa) as *mut [u8; PAGE_SIZE as usize]) });
    Ok(pa)
}

/// Allocates the named frame `pfn` (zeroed); returns its physical address.
pub fn alloc_named_frame(pfn: u64) -> Result<u64, FrameError> {
    FRAMES
        .lock()
        .as_mut()
        .ok_or(FrameError::Exhausted)?
        .alloc_named(pfn)?;
    let pa = pfn * PAGE_SIZE;
    // SAFETY: the frame was just allocated: nobody else references it.
    unsafe { core::ptr::write_bytes(phys_to_virt(pa) as *mut u8, 0, PAGE_SIZE as usize) };
    Ok(pa)
}

/// Returns a frame to the allocator.
pub fn free_frame(pa: u64) -> Result<(), FrameError> {
    FRAMES
        .lock()
        .as_mut()
        .ok_or(FrameError::OutOfRange)?
        .free(pa / PAGE_SIZE)
}

/// Free frames left, for statistics and leak checks.
pub fn free_frames() -> u64 {
    FRAMES.lock().as_ref().map_or(0, |f| f.free_frames())
}

extern "C" {
    static __kernel_phys_start: u8;
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __kernel_end: u8;
}

/// Pages of the kernel image's 2 MiB-aligned span that are mapped both
/// writable and executable, and pages of its read-only data that are
/// writable, in the kernel tables: `(pages looked at, violations, first)`.
pub fn image_w_xor_x_violations() -> (u64, u64, Option<u64>) {
    let phys_start = &raw const __kernel_phys_start as u64;
    let end = &raw const __kernel_end as u64;
    let rodata = &raw const __text_end as u64..&raw const __rodata_end as u64;
    let span = KERNEL_VMA + (phys_start & !(HUGE - 1))..end.next_multiple_of(HUGE);
    let (mut pages, mut bad, mut first) = (0, 0, None);
    for va in span.step_by(PAGE_SIZE as usize) {
        pages += 1;
        let Some(e) = lookup(kernel_pml4(), va) else {
            continue;
        };
        let writable = e & pte::WRITABLE != 0;
        let executable = e & pte::NO_EXECUTE == 0;
        if writable && (executable || rodata.contains(&va)) {
            bad += 1;
            first.get_or_insert(va);
        }
    }
    (pages, bad, first)
}

/// Sets up the frame allocator from the boot memory map, builds and loads the
/// kernel page tables, and initialises the heap.
///
/// # Safety
/// Called once, on the BSP, with the boot page tables active.
pub unsafe fn init(map: &[memmap::Region], keep: &[Range<u64>]) {
    let kernel_phys =
        &raw const __kernel_phys_start as u64..(&raw const __kernel_end as u64 - KERNEL_VMA);
    // Low 1 MiB: firmware data, and the AP trampoline lives there.
    let mut reserved = [0..0x10_0000, kernel_phys.clone(), 0..0, 0..0, 0..0, 0..0];
    for (slot, r) in reserved[2..].iter_mut().zip(keep) {
        *slot = r.clone();
    }
    let mut top = 0;
    memmap::usable_ranges(map, &reserved, |r| top = top.max(r.end));
    let frames = top / PAGE_SIZE;

    // Place the bitmap in the first usable range that fits it (below 4 GiB,
    // reachable through the boot identity map).
    let words = FrameBitmap::words_for(frames);
    let bytes = memmap::page_up(words as u64 * 8);
    let mut place = None;
    memmap::usable_ranges(map, &reserved, |r| {
        if place.is_none() && r.end - r.start >= bytes && r.end <= 1 << 32 {
            place = Some(r.start);
        }
    });
    let place = place.expect("no memory for the frame bitmap");
    // SAFETY: `place..place+bytes` is usable RAM that nothing else uses (it
    // is taken out of the allocator below), reachable through the direct map.
    let storage =
        unsafe { core::slice::from_raw_parts_mut(phys_to_virt(place) as *mut u64, words) };
    let mut bitmap = FrameBitmap::new(storage, frames);
    memmap::usable_ranges(map, &reserved, |r| {
        bitmap.release_range(r.start / PAGE_SIZE, r.end / PAGE_SIZE)
    });
    for pfn in place / PAGE_SIZE..(place + bytes) / PAGE_SIZE {
        bitmap.alloc_named(pfn).expect("bitmap frames are free");
    }
    let free = bitmap.free_frames();
    *FRAMES.lock() = Some(bitmap);

    let ram_ranges = |pa: u64| {
        let mut ram = false;
        memmap::usable_ranges(map, &[], |r| ram |= r.start < pa + HUGE && pa < r.end);
        ram
    };
    let pml4 = alloc_frame().expect("frame for the kernel PML4");
    // Direct map: all of [0, max(4 GiB, top of RAM)).
    let direct_end = top.max(1 << 32).next_multiple_of(HUGE);
    for pa in (0..direct_end).step_by(HUGE as usize) {
        let cache = if ram_ranges(pa) {
            0
        } else {
            pte::NO_CACHE | pte::WRITE_THROUGH
        };
        let flags = pte::PRESENT | pte::WRITABLE | pte::GLOBAL | pte::NO_EXECUTE | cache;
        map_huge(pml4, PHYS_OFFSET + pa, pa, flags).expect("direct map");
    }
    // Kernel image at -2 GiB, in 4 KiB pages so that no page is both
    // writable and executable: code read-only, read-only data neither
    // writable nor executable, the rest (boot leftovers, data, bss) not
    // executable. Nothing past the image is mapped here.
    let text = &raw const __text_start as u64..&raw const __text_end as u64;
    let rodata = text.end..&raw const __rodata_end as u64;
    let image = KERNEL_VMA + memmap::page_down(kernel_phys.start)..KERNEL_VMA + kernel_phys.end;
    for va in image.step_by(PAGE_SIZE as usize) {
        let flags = if text.contains(&va) {
            pte::PRESENT | pte::GLOBAL
        } else if rodata.contains(&va) {
            pte::PRESENT | pte::GLOBAL | pte::NO_EXECUTE
        } else {
            pte::PRESENT | pte::WRITABLE | pte::GLOBAL | pte::NO_EXECUTE
        };
        map_page(pml4, va, va - KERNEL_VMA, flags).expect("kernel image map");
    }
    KERNEL_PML4.store(pml4, Ordering::Relaxed);
    // SAFETY: the new tables map the kernel image (where we execute), our
    // stack (in the image's .bss) and all RAM; the identity map goes away.
    unsafe { x86::controlregs::cr3_write(pml4) };
    log::info!(
        "memory: {} MiB usable RAM, {} free frames, direct map {} GiB",
        (free * PAGE_SIZE) >> 20,
        free,
        direct_end >> 30
    );
    init_heap();
}

/// Returns the entry `index` of the table at physical `table`, creating the
/// next-level table if it is missing.
fn next_table(table: u64, index: usize, user: bool) -> Result<u64, FrameError> {
    let entry = (phys_to_virt(table) as *mut u64).wrapping_add(index);
    // SAFETY: `table` is a page-table frame owned by the caller's address
    // space; `index` < 512.
    let value = unsafe { entry.read_volatile() };
    if value & pte::PRESENT != 0 {
        if user && value & pte::USER == 0 {
            // SAFETY: as above; widening an intermediate entry to user.
            unsafe { entry.write_volatile(value | pte::USER) };
        }
        return Ok(value & pte::ADDR_MASK);
    }
    let frame = alloc_frame()?;
    let flags = pte::PRESENT | pte::WRITABLE | if user { pte::USER } else { 0 };
    // SAFETY: as above; the entry was empty.
    unsafe { entry.write_volatile(frame | flags) };
    Ok(frame)
}

const fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * (level - 1))) & 511) as usize
}

/// Maps a 2 MiB page (kernel half only).
pub fn map_huge(pml4: u64, va: u64, pa: u64, flags: u64) -> Result<(), FrameError> {
    let pdpt = next_table(pml4, index(va, 4), false)?;
    let pd = next_table(pdpt, index(va, 3), false)?;
    let entry = (phys_to_virt(pd) as *mut u64).wrapping_add(index(va, 2));
    // SAFETY: `pd` is a page-directory frame of `pml4`.
    unsafe { entry.write_volatile(pa | flags | pte::HUGE) };
    Ok(())
}

/// Maps a 4 KiB page, creating intermediate tables. `flags` must include
/// `PRESENT`; `USER` also marks the intermediate entries user-accessible.
pub fn map_page(pml4: u64, va: u64, pa: u64, flags: u64) -> Result<(), FrameError> {
    let user = flags & pte::USER != 0;
    let pdpt = next_table(pml4, index(va, 4), user)?;
    let pd = next_table(pdpt, index(va, 3), user)?;
    let pt = next_table(pd, index(va, 2), user)?;
    let entry = (phys_to_virt(pt) as *mut u64).wrapping_add(index(va, 1));
    // SAFETY: `pt` is a page-table frame of `pml4`.
    unsafe { entry.write_volatile(pa | flags) };
    Ok(())
}

/// The leaf entry for `va` (4 KiB mappings only), if present.
pub fn lookup(pml4: u64, va: u64) -> Option<u64> {
    let mut table = pml4;
    for level in (1..=4).rev() {
        let entry = (phys_to_virt(table) as *const u64).wrapping_add(index(va, level));
        // SAFETY: walking tables reachable from `pml4`.
        let value = unsafe { entry.read_volatile() };
        if value & pte::PRESENT == 0 {
            return None;
        }
        if level == 1 || value & pte::HUGE != 0 {
            return Some(value);
        }
        table = value & pte::ADDR_MASK;
    }
    None
}

#[global_allocator]
static HEAP: linked_list_allocator::LockedHeap = linked_list_allocator::LockedHeap::empty();

fn init_heap() {
    let frames = HEAP_SIZE / PAGE_SIZE;
    let pfn = FRAMES
        .lock()
        .as_mut()
        .expect("frame allocator ready")
        .alloc_contiguous(frames, 1)
        .expect("contiguous memory for the kernel heap");
    let start = phys_to_virt(pfn * PAGE_SIZE);
    // SAFETY: the frames were just taken from the allocator for the heap
    // alone and are mapped through the direct map.
    unsafe { HEAP.lock().init(start as *mut u8, HEAP_SIZE as usize) };
}
