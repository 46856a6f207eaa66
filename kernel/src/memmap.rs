//! Turns the firmware's physical memory map into page-aligned usable ranges,
//! with the ranges the kernel already occupies (its image, boot data, the AP
//! trampoline) cut out.

use core::ops::Range;

/// Size of a page frame.
pub const PAGE_SIZE: u64 = 4096;

/// One entry of the boot memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub len: u64,
    pub usable: bool,
}

/// Rounds `x` up to a page boundary (saturating at the top of memory).
pub const fn page_up(x: u64) -> u64 {
    match x.checked_add(PAGE_SIZE - 1) {
        Some(v) => v & !(PAGE_SIZE - 1),
        None => !(PAGE_SIZE - 1),
    }
}

/// Rounds `x` down to a page boundary.
pub const fn page_down(x: u64) -> u64 {
    x & !(PAGE_SIZE - 1)
}

/// Calls `out` with every page-aligned range that is usable RAM in `map`,
/// not inside any `reserved` range, and not overlapped by an unusable entry
/// (firmware maps can overlap; unusable wins). Ranges come out in map order
/// and may be empty-free but unsorted.
pub fn usable_ranges(map: &[Region], reserved: &[Range<u64>], mut out: impl FnMut(Range<u64>)) {
    for r in map.iter().filter(|r| r.usable) {
        let end = r.start.saturating_add(r.len);
        let range = page_up(r.start)..page_down(end);
        let holes = reserved.iter().cloned().chain(
            map.iter()
                .filter(|o| !o.usable)
                .map(|o| o.start..o.start.saturating_add(o.len)),
        );
        subtract(range, holes, &mut out);
    }
}

/// Emits the parts of `range` not covered by any of `holes`, page-aligned.
fn subtract(
    range: Range<u64>,
    holes: impl Iterator<Item = Range<u64>> + Clone,
    out: &mut impl FnMut(Range<u64>),
) {
    let mut cursor = range.start;
    while cursor < range.end {
        // The hole that covers `cursor`, if any: skip past it.
        if let Some(h) = holes.clone().find(|h| h.start <= cursor && cursor < h.end) {
            cursor = page_up(h.end);
            continue;
        }
        // Otherwise run up to the next hole start (or the range end).
        let stop = holes
            .clone()
            .filter(|h| h.start > cursor && h.start < range.end)
            .map(|h| page_down(h.start))
            .min()
            .unwrap_or(range.end);
        if stop > cursor {
            out(cursor..stop);
        }
        cursor = stop.max(cursor + PAGE_SIZE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn collect(map: &[Region], reserved: &[Range<u64>]) -> Vec<Range<u64>> {
        let mut v = Vec::new();
        usable_ranges(map, reserved, |r| v.push(r));
        v
    }

    const RAM: Region = Region {
        start: 0,
        len: 0x100_0000,
        usable: true,
    };

    #[test]
    fn aligns_and_cuts_reserved() {
        let map = [Region {
            start: 0x1001,
            len: 0x5000,
            usable: true,
        }];
        assert_eq!(collect(&map, &[]), vec![0x2000..0x6000]);
        assert_eq!(
            collect(&[RAM], &[0..0x10_0000, 0x20_0000..0x30_0800]),
            vec![0x10_0000..0x20_0000, 0x30_1000..0x100_0000]
        );
    }

    #[test]
    fn unusable_entries_win_over_overlapping_ram() {
        let map = [
            RAM,
            Region {
                start: 0x80_0000,
                len: 0x1000,
                usable: false,
            },
        ];
        assert_eq!(
            collect(&map, &[]),
            vec![0..0x80_0000, 0x80_1000..0x100_0000]
        );
    }

    #[test]
    fn never_emits_reserved_or_unaligned_pages() {
        // Deterministic pseudo-random maps checked against a page-by-page model.
        let mut seed = 0x1234_5678_u64;
        let mut rnd = |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        for _ in 0..300 {
            let map: Vec<Region> = (0..4)
                .map(|_| Region {
                    start: rnd(0x40_000),
                    len: rnd(0x20_000),
                    usable: rnd(4) != 0,
                })
                .collect();
            let reserved: Vec<Range<u64>> = (0..3)
                .map(|_| {
                    let s = rnd(0x40_000);
                    s..s + rnd(0x8000)
                })
                .collect();
            let got = collect(&map, &reserved);
            for page in (0..0x80_000).step_by(PAGE_SIZE as usize) {
                let inside = |r: &Range<u64>| r.start < page + PAGE_SIZE && page < r.end;
                let expect = map
                    .iter()
                    .any(|m| m.usable && m.start <= page && page + PAGE_SIZE <= m.start + m.len)
                    && !reserved.iter().any(inside)
                    && !map
                        .iter()
                        .filter(|m| !m.usable)
                        .any(|m| inside(&(m.start..m.start + m.len)));
                let covered = got
                    .iter()
                    .any(|r| r.start <= page && page + PAGE_SIZE <= r.end);
                assert_eq!(
                    covered, expect,
                    "page {page:#x} map {map:?} reserved {reserved:?}"
                );
            }
            for r in &got {
                assert_eq!(r.start % PAGE_SIZE, 0);
                assert_eq!(r.end % PAGE_SIZE, 0);
                assert!(r.start < r.end);
            }
        }
    }
}
