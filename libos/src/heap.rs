//! The program's heap: first the one in its image (BSS: loaded with it,
//! no system call to set up, not counted against the frame quota), then,
//! once that is full, a second one the libOS grows by mapping frames at
//! `va::HEAP_GROWTH` as allocations need them (counted against the quota).
//! An application of 10,000 threads needs far more than the image's heap
//! (its thread table alone is ~20 MiB); an application of three threads
//! never maps a frame.
//!
//! Allocation runs with the disabled flag set on the core doing it: a
//! thread revoked while holding a heap lock would otherwise leave every
//! core of its application spinning on it in the libOS's own scheduler
//! (which allocates) — found by the soak, where an application's threads
//! all stopped while it kept burning its slices.

use core::alloc::{GlobalAlloc, Layout};

use abi::shared::va;
use abi::syscall::{map_flags, MAP_FRESH_MAX_PAGES};
use linked_list_allocator::{Heap, LockedHeap};
use spin::Mutex;

use crate::sys;

/// The image's heap: 1 MiB, what most programs ever use. The kernel
/// zeroes an image's every page when it creates the environment, with
/// interrupts off: at 8 MiB (10 MiB of BSS with the workers' stacks) a
/// `spawn` took 11.6 ms on average in a deterministic 4-core run, and
/// held its core's timer off as long. Programs that need more (a lottery
/// policy of 10,000 threads peaks near 4.5 MiB) grow the second heap.
const IMAGE_HEAP_BYTES: usize = 1 << 20;
/// Least the grown heap grows by at once: a table chunk (~64 KiB). The
/// frames are mapped with the disabled flag set (the heap lock is held):
/// a 1 MiB step, 512 system calls, outlasted a 200 us grace.
const GROW_STEP: usize = 64 << 10;
const PAGE: usize = 4096;

pub struct ProgramHeap {
    image: LockedHeap,
    grown: Mutex<Grown>,
}

struct Grown {
    heap: Heap,
    /// Bytes mapped at `va::HEAP_GROWTH` so far.
    mapped: usize,
}

impl ProgramHeap {
    pub const fn new() -> ProgramHeap {
        ProgramHeap {
            image: LockedHeap::empty(),
            grown: Mutex::new(Grown {
                heap: Heap::empty(),
                mapped: 0,
            }),
        }
    }

    /// Gives the image's heap its space, once, before any allocation.
    ///
    /// # Safety
    /// `space` is `IMAGE_HEAP_BYTES` bytes the heap alone uses from now on.
    pub unsafe fn init(&self, space: *mut u8) {
        // SAFETY: passed on from the caller.
        unsafe { self.image.lock().init(space, IMAGE_HEAP_BYTES) };
    }

    fn in_image(&self, ptr: *mut u8) -> bool {
        let h = self.image.lock();
        (h.bottom()..h.top()).contains(&ptr)
    }

    /// From the grown heap, mapping more of it when it has no room.
    fn alloc_grown(&self, layout: Layout) -> *mut u8 {
        let mut g = self.grown.lock();
        if g.mapped > 0 {
            if let Ok(p) = g.heap.allocate_first_fit(layout) {
                return p.as_ptr();
            }
        }
        // Room for the block, its alignment and the allocator's own words.
        let want = (layout.size() + layout.align() + 64).max(GROW_STEP);
        let want = want.div_ceil(PAGE) * PAGE;
        let mut added = 0;
        while added < want {
            let at = g.mapped + added;
            let room = (va::HEAP_GROWTH_MAX as usize).saturating_sub(at) / PAGE;
            let pages = ((want - added) / PAGE).min(room);
            match map_fresh_pages(va::HEAP_GROWTH + at as u64, pages) {
                0 => break,
                n => added += n * PAGE,
            }
        }
        if added == 0 {
            return core::ptr::null_mut();
        }
        if g.mapped == 0 {
            // SAFETY: freshly mapped, writable, used by this heap alone.
            unsafe { g.heap.init(va::HEAP_GROWTH as *mut u8, added) };
        } else {
            // SAFETY: the pages right above its top, freshly mapped.
            unsafe { g.heap.extend(added) };
        }
        g.mapped += added;
        g.heap
            .allocate_first_fit(layout)
            .map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }
}

impl Default for ProgramHeap {
    fn default() -> Self {
        Self::new()
    }
}

/// Maps fresh frames, writable, at up to `pages` pages from `addr` on,
/// at most `MAP_FRESH_MAX_PAGES` in one system call (`frame_alloc` and
/// `map` a page took two, ~3,100 kernel instructions a page): how many
/// were mapped (0: none could be, or `pages` is 0).
pub(crate) fn map_fresh_pages(addr: u64, pages: usize) -> usize {
    let pages = pages.min(MAP_FRESH_MAX_PAGES as usize);
    if pages == 0 {
        return 0;
    }
    sys::map_fresh(addr, pages as u64, map_flags::WRITABLE).map_or(0, |n| n as usize)
}

// SAFETY: both heaps are linked_list_allocator heaps (a correct
// allocator), each block freed to the heap whose range holds it; the flag
// handling around them does not touch the memory they hand out.
unsafe impl GlobalAlloc for ProgramHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        sys::with_disabled(|| {
            // SAFETY: the caller's contract is passed on unchanged.
            let p = unsafe { self.image.alloc(layout) };
            if p.is_null() {
                self.alloc_grown(layout)
            } else {
                p
            }
        })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        sys::with_disabled(|| {
            if self.in_image(ptr) {
                // SAFETY: as above; the block came from the image's heap.
                unsafe { self.image.dealloc(ptr, layout) }
            } else if let Some(ptr) = core::ptr::NonNull::new(ptr) {
                // SAFETY: not in the image's heap, so from the grown one.
                unsafe { self.grown.lock().heap.deallocate(ptr, layout) }
            }
        })
    }
}

/// The image's heap space, handed to [`ProgramHeap::init`].
pub fn image_space() -> *mut u8 {
    static mut SPACE: [u8; IMAGE_HEAP_BYTES] = [0; IMAGE_HEAP_BYTES];
    (&raw mut SPACE).cast::<u8>()
}
