//! Physical frame bitmap: every 4 KiB frame of RAM is one bit (1 = in use).
//!
//! Frames are named by their frame number (physical address / 4096), so an
//! environment can ask for a specific frame (expose names) or for any free one.
//! The bitmap's storage is handed in by the caller, so the kernel can place it
//! in memory it found at boot before it has a heap.

/// Why a frame request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The frame number is not RAM managed by this allocator.
    OutOfRange,
    /// The named frame is already allocated.
    InUse,
    /// Freeing a frame that is not allocated.
    NotAllocated,
    /// No free frame (or run of frames) is left.
    Exhausted,
}

/// A bitmap allocator over frames `0..frames`.
pub struct FrameBitmap<'a> {
    words: &'a mut [u64],
    frames: u64,
    free: u64,
    /// Word index to start the next search from (keeps `alloc_any` O(1)
    /// amortised instead of rescanning the full prefix every time).
    hint: usize,
}

impl<'a> FrameBitmap<'a> {
    /// Words needed to track `frames` frames.
    pub const fn words_for(frames: u64) -> usize {
        frames.div_ceil(64) as usize
    }

    /// A bitmap over `frames` frames, all marked in use until [`Self::release_range`]
    /// declares usable RAM. `words` must hold at least `words_for(frames)`.
    pub fn new(words: &'a mut [u64], frames: u64) -> Self {
        let n = Self::words_for(frames);
        assert!(words.len() >= n, "bitmap storage too small");
        let words = &mut words[..n];
        words.fill(u64::MAX);
        FrameBitmap {
            words,
            frames,
            free: 0,
            hint: 0,
        }
    }

    /// Number of frames covered.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Number of free frames.
    pub fn free_frames(&self) -> u64 {
        self.free
    }

    /// Whether frame `pfn` is allocated (frames out of range count as allocated).
    pub fn is_used(&self, pfn: u64) -> bool {
        pfn >= self.frames || self.words[(pfn / 64) as usize] & (1 << (pfn % 64)) != 0
    }

    /// Marks frames `start..end` free (usable RAM found at boot). Frames
    /// outside the covered range are ignored; already-free frames stay free.
    pub fn release_range(&mut self, start: u64, end: u64) {
        for pfn in start..end.min(self.frames) {
            if self.is_used(pfn) {
                self.clear(pfn);
            }
        }
    }

    /// Allocates the named frame.
    pub fn alloc_named(&mut self, pfn: u64) -> Result<(), FrameError> {
        if pfn >= self.frames {
            return Err(FrameError::OutOfRange);
        }
        if self.is_used(pfn) {
            return Err(FrameError::InUse);
        }
        self.set(pfn);
        Ok(())
    }

    /// Allocates any free frame.
    pub fn alloc_any(&mut self) -> Result<u64, FrameError> {
        let n = self.words.len();
        for i in (self.hint..n).chain(0..self.hint) {
            let w = self.words[i];
            if w != u64::MAX {
                let pfn = i as u64 * 64 + u64::from((!w).trailing_zeros());
                if pfn >= self.frames {
                    continue;
                }
                self.hint = i;
                self.set(pfn);
                return Ok(pfn);
            }
        }
        Err(FrameError::Exhausted)
    }

    /// Allocates `count` physically contiguous frames aligned to `align`
    /// frames; returns the first. Used at boot for the heap and tables.
    pub fn alloc_contiguous(&mut self, count: u64, align: u64) -> Result<u64, FrameError> {
        let align = align.max(1);
        let mut start = 0;
        while start + count <= self.frames {
            match (start..start + count).find(|&p| self.is_used(p)) {
                Some(used) => start = (used + 1).div_ceil(align) * align,
                None => {
                    for p in start..start + count {
                        self.set(p);
                    }
                    return Ok(start);
                }
            }
        }
        Err(FrameError::Exhausted)
    }

    /// Frees an allocated frame.
    pub fn free(&mut self, pfn: u64) -> Result<(), FrameError> {
        if pfn >= self.frames {
            return Err(FrameError::OutOfRange);
        }
        if !self.is_used(pfn) {
            return Err(FrameError::NotAllocated);
        }
        self.clear(pfn);
        Ok(())
    }

    fn set(&mut self, pfn: u64) {
        self.words[(pfn / 64) as usize] |= 1 << (pfn % 64);
        self.free -= 1;
    }

    fn clear(&mut self, pfn: u64) {
        let i = (pfn / 64) as usize;
        self.words[i] &= !(1 << (pfn % 64));
        self.free += 1;
        self.hint = self.hint.min(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn starts_full_and_releases_ranges() {
        let mut store = [0u64; 4];
        let mut b = FrameBitmap::new(&mut store, 200);
        assert_eq!(b.free_frames(), 0);
        assert_eq!(b.alloc_any(), Err(FrameError::Exhausted));
        b.release_range(10, 20);
        b.release_range(15, 300);
        assert_eq!(b.free_frames(), 190);
        assert!(b.is_used(9) && !b.is_used(10) && b.is_used(200));
    }

    #[test]
    fn named_any_and_free() {
        let mut store = [0u64; 2];
        let mut b = FrameBitmap::new(&mut store, 100);
        b.release_range(0, 100);
        assert_eq!(b.alloc_named(5), Ok(()));
        assert_eq!(b.alloc_named(5), Err(FrameError::InUse));
        assert_eq!(b.alloc_named(100), Err(FrameError::OutOfRange));
        assert_eq!(b.alloc_any(), Ok(0));
        assert_eq!(b.free(5), Ok(()));
        assert_eq!(b.free(5), Err(FrameError::NotAllocated));
        assert_eq!(b.free(1000), Err(FrameError::OutOfRange));
    }

    #[test]
    fn contiguous_respects_alignment_and_holes() {
        let mut store = [0u64; 4];
        let mut b = FrameBitmap::new(&mut store, 256);
        b.release_range(0, 256);
        b.alloc_named(3).unwrap();
        assert_eq!(b.alloc_contiguous(8, 8), Ok(8));
        assert_eq!(b.alloc_contiguous(4, 1), Ok(4));
        assert_eq!(b.alloc_contiguous(300, 1), Err(FrameError::Exhausted));
    }

    #[test]
    fn matches_a_set_model_under_random_operations() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut rnd = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        let frames = 333;
        let mut store = [0u64; 6];
        let mut b = FrameBitmap::new(&mut store, frames);
        b.release_range(0, frames);
        let mut used = BTreeSet::new();
        for _ in 0..20_000 {
            match rnd(3) {
                0 => match b.alloc_any() {
                    Ok(p) => assert!(used.insert(p), "handed out {p} twice"),
                    Err(e) => {
                        assert_eq!(e, FrameError::Exhausted);
                        assert_eq!(used.len() as u64, frames);
                    }
                },
                1 => {
                    let p = rnd(frames + 10);
                    let r = b.alloc_named(p);
                    assert_eq!(r.is_ok(), p < frames && used.insert(p));
                }
                _ => {
                    let p = rnd(frames + 10);
                    assert_eq!(b.free(p).is_ok(), used.remove(&p));
                }
            }
            assert_eq!(b.free_frames(), frames - used.len() as u64);
        }
    }
}
