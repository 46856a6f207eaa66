//! Validating parser for the programs environments run: static ELF64
//! x86_64 executables. Untrusted input: every field is checked before the
//! loader acts on it, and the result says exactly what to map where.

use core::ops::Range;

/// Most loadable segments a program may have.
pub const MAX_SEGMENTS: usize = 8;

/// A loadable segment, validated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Virtual address and size in memory.
    pub vaddr: u64,
    pub mem_size: u64,
    /// Bytes of the file copied to `vaddr` (the rest is zeroed).
    pub file_offset: u64,
    pub file_size: u64,
    pub writable: bool,
    pub executable: bool,
}

/// A program ready to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Program {
    pub entry: u64,
    segments: [Segment; MAX_SEGMENTS],
    count: usize,
}

impl Program {
    pub fn segments(&self) -> &[Segment] {
        &self.segments[..self.count]
    }
}

/// Why a program was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    TooShort,
    BadMagic,
    NotElf64LittleEndian,
    NotX86_64,
    NotExecutable,
    BadHeaderSize,
    ProgramHeadersOutOfFile,
    TooManySegments,
    /// File size larger than memory size, or offset/size beyond the file.
    SegmentOutOfFile,
    /// A segment outside the allowed address range or not page-aligned
    /// consistently with its file offset.
    SegmentOutOfRange,
    SegmentsOverlap,
    EntryNotExecutable,
    NoSegments,
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, ElfError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(ElfError::TooShort)
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, ElfError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap_or([0; 4])))
        .ok_or(ElfError::TooShort)
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, ElfError> {
    b.get(at..at + 8)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
        .ok_or(ElfError::TooShort)
}

const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PAGE: u64 = 4096;

/// Parses and validates `image`; every segment must lie inside `allowed`.
pub fn parse(image: &[u8], allowed: Range<u64>) -> Result<Program, ElfError> {
    if image.len() < 64 {
        return Err(ElfError::TooShort);
    }
    if image[0..4] != *b"\x7fELF" {
        return Err(ElfError::BadMagic);
    }
    if image[4] != 2 || image[5] != 1 {
        return Err(ElfError::NotElf64LittleEndian);
    }
    if u16_at(image, 18)? != 62 {
        return Err(ElfError::NotX86_64);
    }
    if u16_at(image, 16)? != 2 {
        return Err(ElfError::NotExecutable);
    }
    let entry = u64_at(image, 24)?;
    let phoff = u64_at(image, 32)?;
    let phentsize = u64::from(u16_at(image, 54)?);
    let phnum = u64::from(u16_at(image, 56)?);
    if phentsize < 56 {
        return Err(ElfError::BadHeaderSize);
    }
    let table_end = phnum
        .checked_mul(phentsize)
        .and_then(|n| n.checked_add(phoff))
        .ok_or(ElfError::ProgramHeadersOutOfFile)?;
    if table_end > image.len() as u64 {
        return Err(ElfError::ProgramHeadersOutOfFile);
    }
    let mut program = Program {
        entry,
        segments: [Segment::default(); MAX_SEGMENTS],
        count: 0,
    };
    for i in 0..phnum {
        let at = (phoff + i * phentsize) as usize;
        if u32_at(image, at)? != PT_LOAD {
            continue;
        }
        let flags = u32_at(image, at + 4)?;
        let seg = Segment {
            file_offset: u64_at(image, at + 8)?,
            vaddr: u64_at(image, at + 16)?,
            file_size: u64_at(image, at + 32)?,
            mem_size: u64_at(image, at + 40)?,
            writable: flags & PF_W != 0,
            executable: flags & PF_X != 0,
        };
        if seg.mem_size == 0 {
            continue;
        }
        let file_end = seg
            .file_offset
            .checked_add(seg.file_size)
            .ok_or(ElfError::SegmentOutOfFile)?;
        if seg.file_size > seg.mem_size || file_end > image.len() as u64 {
            return Err(ElfError::SegmentOutOfFile);
        }
        let end = seg
            .vaddr
            .checked_add(seg.mem_size)
            .ok_or(ElfError::SegmentOutOfRange)?;
        if seg.vaddr < allowed.start
            || end > allowed.end
            || seg.vaddr % PAGE != seg.file_offset % PAGE
        {
            return Err(ElfError::SegmentOutOfRange);
        }
        let pages = |s: &Segment| s.vaddr / PAGE..(s.vaddr + s.mem_size).div_ceil(PAGE);
        if program.segments().iter().any(|o| {
            let (a, b) = (pages(o), pages(&seg));
            a.start < b.end && b.start < a.end
        }) {
            return Err(ElfError::SegmentsOverlap);
        }
        if program.count == MAX_SEGMENTS {
            return Err(ElfError::TooManySegments);
        }
        program.segments[program.count] = seg;
        program.count += 1;
    }
    if program.count == 0 {
        return Err(ElfError::NoSegments);
    }
    if !program
        .segments()
        .iter()
        .any(|s| s.executable && s.vaddr <= entry && entry < s.vaddr + s.mem_size)
    {
        return Err(ElfError::EntryNotExecutable);
    }
    Ok(program)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::vec::Vec;

    const ALLOWED: Range<u64> = 0x40_0000..0x1000_0000_0000;

    /// Builds a minimal ELF with the given (vaddr, offset, filesz, memsz, flags) segments.
    pub(crate) fn build(entry: u64, segs: &[(u64, u64, u64, u64, u32)]) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56 * segs.len()];
        b[0..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[6] = 1;
        b[16..18].copy_from_slice(&2u16.to_le_bytes());
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[24..32].copy_from_slice(&entry.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[52..54].copy_from_slice(&64u16.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        let mut max_file = b.len() as u64;
        for (i, &(vaddr, off, filesz, memsz, flags)) in segs.iter().enumerate() {
            let at = 64 + 56 * i;
            b[at..at + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            b[at + 4..at + 8].copy_from_slice(&flags.to_le_bytes());
            b[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
            b[at + 16..at + 24].copy_from_slice(&vaddr.to_le_bytes());
            b[at + 32..at + 40].copy_from_slice(&filesz.to_le_bytes());
            b[at + 40..at + 48].copy_from_slice(&memsz.to_le_bytes());
            max_file = max_file.max(off + filesz);
        }
        b.resize(max_file as usize, 0xAA);
        b
    }

    #[test]
    fn accepts_a_well_formed_program() {
        let img = build(
            0x40_1000,
            &[
                (0x40_1000, 0x1000, 0x200, 0x200, PF_X),
                (0x40_3000, 0x2000, 0x10, 0x5000, PF_W),
            ],
        );
        let p = parse(&img, ALLOWED).unwrap();
        assert_eq!(p.entry, 0x40_1000);
        assert_eq!(p.segments().len(), 2);
        assert!(p.segments()[1].writable && !p.segments()[1].executable);
    }

    #[test]
    fn rejects_each_kind_of_bad_input() {
        let ok = build(0x40_1000, &[(0x40_1000, 0x1000, 0x200, 0x200, PF_X)]);
        assert_eq!(parse(&ok[..10], ALLOWED), Err(ElfError::TooShort));
        let mut bad = ok.clone();
        bad[0] = 0;
        assert_eq!(parse(&bad, ALLOWED), Err(ElfError::BadMagic));
        let mut bad = ok.clone();
        bad[18] = 3;
        assert_eq!(parse(&bad, ALLOWED), Err(ElfError::NotX86_64));
        let mut bad = ok.clone();
        bad[16] = 3;
        assert_eq!(parse(&bad, ALLOWED), Err(ElfError::NotExecutable));
        assert_eq!(
            parse(
                &build(0x40_1000, &[(0xffff_8000_0000_0000, 0, 0x10, 0x10, PF_X)]),
                ALLOWED
            ),
            Err(ElfError::SegmentOutOfRange)
        );
        assert_eq!(
            parse(
                &build(0x40_1000, &[(0x40_1000, 0x1000, 0x300, 0x200, PF_X)]),
                ALLOWED
            ),
            Err(ElfError::SegmentOutOfFile)
        );
        assert_eq!(
            parse(
                &build(
                    0x40_1000,
                    &[
                        (0x40_1000, 0x1000, 0x10, 0x2000, PF_X),
                        (0x40_2000, 0x2000, 0x10, 0x10, PF_W)
                    ]
                ),
                ALLOWED
            ),
            Err(ElfError::SegmentsOverlap)
        );
        assert_eq!(
            parse(
                &build(0x50_0000, &[(0x40_1000, 0x1000, 0x10, 0x10, PF_X)]),
                ALLOWED
            ),
            Err(ElfError::EntryNotExecutable)
        );
        assert_eq!(
            parse(
                &build(0x40_1000, &[(0x40_1000, 0x1000, 0x10, 0x10, PF_W)]),
                ALLOWED
            ),
            Err(ElfError::EntryNotExecutable)
        );
        assert_eq!(
            parse(
                &build(0x40_1000, &[(u64::MAX - 0x10, 0x1000, 0x10, 0x100, PF_X)]),
                ALLOWED
            ),
            Err(ElfError::SegmentOutOfRange)
        );
    }

    #[test]
    fn random_corruption_never_panics_and_accepted_segments_stay_in_range() {
        let base = build(
            0x40_1000,
            &[
                (0x40_1000, 0x1000, 0x200, 0x200, PF_X),
                (0x40_3000, 0x2000, 0x10, 0x5000, PF_W),
            ],
        );
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut img = base.clone();
            for _ in 0..1 + rnd() % 8 {
                let at = (rnd() % 180) as usize;
                img[at] = rnd() as u8;
            }
            let cut = (rnd() % img.len() as u64) as usize;
            let img = if rnd() % 8 == 0 {
                &img[..cut]
            } else {
                &img[..]
            };
            if let Ok(p) = parse(img, ALLOWED) {
                for s in p.segments() {
                    assert!(s.vaddr >= ALLOWED.start && s.vaddr + s.mem_size <= ALLOWED.end);
                    assert!(s.file_offset + s.file_size <= img.len() as u64);
                    assert!(s.file_size <= s.mem_size);
                }
            }
        }
    }
}
