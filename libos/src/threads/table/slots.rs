//! Storage of the thread table that grows with the application without
//! ever moving: threads live in chunks allocated as they are first needed
//! and kept for the table's life, found through a fixed directory, so a
//! thread's context slot stays where the epilogue (which takes no lock)
//! writes it however many threads come later; and the set of threads that
//! may have a wake-up condition, as two levels of bits, so that a dispatch
//! looks at the sleepers only, with 10,000 threads as with 3.

use alloc::alloc::{alloc, dealloc, handle_alloc_error};
use core::alloc::Layout;
use core::sync::atomic::{AtomicPtr, Ordering};

use super::{Thread, MAX_THREADS};

/// Threads per chunk (a chunk is ~64 KiB).
pub const CHUNK: usize = 32;
const CHUNKS: usize = MAX_THREADS / CHUNK;
const _: () = assert!(MAX_THREADS.is_multiple_of(CHUNK));

type Chunk = [Thread; CHUNK];

/// The table's threads: slots `0..len()`, each `Free` until spawned.
pub struct Threads {
    chunks: [AtomicPtr<Chunk>; CHUNKS],
    /// Chunks allocated (the first `chunks_used` entries are set).
    chunks_used: usize,
}

impl Threads {
    pub const fn new() -> Threads {
        Threads {
            chunks: [const { AtomicPtr::new(core::ptr::null_mut()) }; CHUNKS],
            chunks_used: 0,
        }
    }

    /// Slots there are (free or not).
    pub fn len(&self) -> usize {
        self.chunks_used * CHUNK
    }

    /// Adds a chunk of free slots; false when the table is at
    /// [`MAX_THREADS`] (or the heap has no room: never, as it grows).
    pub fn grow(&mut self) -> bool {
        if self.chunks_used == CHUNKS {
            return false;
        }
        let layout = Layout::new::<Chunk>();
        // SAFETY: a non-zero-sized layout; every slot is written below
        // before the chunk is published (element by element: the chunk
        // is too large for a thread stack).
        let chunk = unsafe {
            let p = alloc(layout).cast::<Thread>();
            if p.is_null() {
                handle_alloc_error(layout);
            }
            for k in 0..CHUNK {
                p.add(k).write(Thread::FREE);
            }
            p.cast::<Chunk>()
        };
        self.chunks[self.chunks_used].store(chunk, Ordering::Release);
        self.chunks_used += 1;
        true
    }

    /// Slot `tid`'s place: null if there is no such slot. The place stays
    /// valid for the table's life.
    pub fn slot_ptr(&self, tid: usize) -> *mut Thread {
        // SAFETY: `self` is a live table.
        unsafe { Self::slot_ptr_raw(self, tid) }
    }

    /// [`slot_ptr`](Threads::slot_ptr) for the lock-free epilogue, which
    /// must not borrow a table another core may hold the lock of: only
    /// the directory entry (an atomic) is read.
    ///
    /// # Safety
    /// `this` points to a live table.
    #[inline]
    pub unsafe fn slot_ptr_raw(this: *const Threads, tid: usize) -> *mut Thread {
        if tid / CHUNK >= CHUNKS {
            return core::ptr::null_mut();
        }
        // SAFETY: inside the directory of a live table; an atomic is
        // shared, whoever holds the table's lock.
        let dir = unsafe {
            &*(&raw const (*this).chunks)
                .cast::<AtomicPtr<Chunk>>()
                .add(tid / CHUNK)
        };
        let chunk = dir.load(Ordering::Acquire);
        if chunk.is_null() {
            return chunk.cast();
        }
        // SAFETY: `tid % CHUNK` is inside the chunk; only a place.
        unsafe { chunk.cast::<Thread>().add(tid % CHUNK) }
    }

    pub fn get(&self, tid: usize) -> Option<&Thread> {
        if tid >= self.len() {
            return None;
        }
        // SAFETY: an allocated, initialised slot; shared borrow of `self`.
        Some(unsafe { &*self.slot_ptr(tid) })
    }

    pub fn get_mut(&mut self, tid: usize) -> Option<&mut Thread> {
        if tid >= self.len() {
            return None;
        }
        // SAFETY: an allocated, initialised slot; unique borrow of `self`.
        Some(unsafe { &mut *self.slot_ptr(tid) })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Thread> + '_ {
        (0..self.len()).map(|tid| &self[tid])
    }
}

impl Default for Threads {
    fn default() -> Self {
        Self::new()
    }
}

impl core::ops::Index<usize> for Threads {
    type Output = Thread;
    fn index(&self, tid: usize) -> &Thread {
        self.get(tid).expect("a thread slot")
    }
}

impl core::ops::IndexMut<usize> for Threads {
    fn index_mut(&mut self, tid: usize) -> &mut Thread {
        self.get_mut(tid).expect("a thread slot")
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        for dir in &self.chunks[..self.chunks_used] {
            let chunk = dir.load(Ordering::Acquire);
            // SAFETY: allocated by `grow` with this layout, initialised,
            // and no longer reachable (the table is being dropped).
            unsafe {
                core::ptr::drop_in_place(chunk);
                dealloc(chunk.cast(), Layout::new::<Chunk>());
            }
        }
    }
}

const WORDS: usize = MAX_THREADS / 64;
const SUMMARY: usize = WORDS.div_ceil(64);

/// A set of thread ids: one bit per thread, and one summary bit per word
/// of those that is not zero, so finding the members costs a few words
/// plus one per member's word, not one per thread.
pub struct Bits {
    words: [u64; WORDS],
    summary: [u64; SUMMARY],
}

impl Bits {
    pub const fn new() -> Bits {
        Bits {
            words: [0; WORDS],
            summary: [0; SUMMARY],
        }
    }

    pub fn insert(&mut self, tid: usize) {
        let w = tid / 64;
        self.words[w] |= 1 << (tid % 64);
        self.summary[w / 64] |= 1 << (w % 64);
    }

    pub fn remove(&mut self, tid: usize) {
        let w = tid / 64;
        self.words[w] &= !(1 << (tid % 64));
        if self.words[w] == 0 {
            self.summary[w / 64] &= !(1 << (w % 64));
        }
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub fn is_empty(&self) -> bool {
        self.summary.iter().all(|&s| s == 0)
    }

    /// The least member at or above `from`: a walk that may change the
    /// set as it goes asks for the next one each time.
    pub fn next_from(&self, from: usize) -> Option<usize> {
        let w = from / 64;
        let here = self.words.get(w)? & (u64::MAX << (from % 64));
        if here != 0 {
            return Some(w * 64 + here.trailing_zeros() as usize);
        }
        let next = w + 1;
        for s in next / 64..SUMMARY {
            let mut sum = self.summary[s];
            if s == next / 64 {
                sum &= u64::MAX.checked_shl((next % 64) as u32).unwrap_or(0);
            }
            if sum != 0 {
                let w = s * 64 + sum.trailing_zeros() as usize;
                return Some(w * 64 + self.words[w].trailing_zeros() as usize);
            }
        }
        None
    }
}

impl Default for Bits {
    fn default() -> Self {
        Self::new()
    }
}
