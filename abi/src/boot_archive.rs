//! The boot-module archive (`-initrd`): the programs, the scenario's launch
//! plan and its console script, as the runner passes them to the kernel.
//! Written ([`pack_into`]) and read ([`Archive`]) here, in one place, so
//! the two sides cannot drift; the round trip is tested below.
//!
//! Layout: [`MODULE_MAGIC`], a little-endian `u32` count, `count` headers
//! (a name NUL-padded to [`NAME_BYTES`], then the entry's offset and length
//! as little-endian `u64`s from the start of the archive), then the data.

use crate::shared::MODULE_MAGIC;

/// Bytes of one entry header: a NUL-padded name, offset, length.
pub const HEADER_SIZE: usize = NAME_BYTES + 8 + 8;
/// Bytes of an entry's name field; a name fills at most all but one.
pub const NAME_BYTES: usize = 48;

/// Why an archive was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveError {
    BadMagic,
    Truncated,
    EntryOutOfRange,
    BadName,
}

/// A validated view of an archive.
#[derive(Clone, Copy)]
pub struct Archive<'a> {
    bytes: &'a [u8],
    count: usize,
}

impl<'a> Archive<'a> {
    /// Validates the header and every entry.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ArchiveError> {
        if bytes.len() < 12 || bytes[..8] != MODULE_MAGIC {
            return Err(ArchiveError::BadMagic);
        }
        let count = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        let headers_end = count
            .checked_mul(HEADER_SIZE)
            .and_then(|n| n.checked_add(12))
            .ok_or(ArchiveError::Truncated)?;
        if headers_end > bytes.len() {
            return Err(ArchiveError::Truncated);
        }
        let archive = Archive { bytes, count };
        for i in 0..count {
            let (name, data) = archive.raw_entry(i);
            core::str::from_utf8(name).map_err(|_| ArchiveError::BadName)?;
            data.ok_or(ArchiveError::EntryOutOfRange)?;
        }
        Ok(archive)
    }

    fn raw_entry(&self, i: usize) -> (&'a [u8], Option<&'a [u8]>) {
        let at = 12 + i * HEADER_SIZE;
        let h = &self.bytes[at..at + HEADER_SIZE];
        let name_len = h[..48].iter().position(|&b| b == 0).unwrap_or(48);
        let word = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().unwrap_or([0xff; 8]));
        let (off, len) = (word(48), word(56));
        let data = off
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len() as u64)
            .map(|end| &self.bytes[off as usize..end as usize]);
        (&h[..name_len], data)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Entry `i`: its name and bytes.
    pub fn entry(&self, i: usize) -> Option<(&'a str, &'a [u8])> {
        if i >= self.count {
            return None;
        }
        let (name, data) = self.raw_entry(i);
        Some((core::str::from_utf8(name).ok()?, data?))
    }

    /// The entry named `name`, with its index.
    pub fn find(&self, name: &str) -> Option<(usize, &'a [u8])> {
        (0..self.count).find_map(|i| {
            self.entry(i)
                .filter(|(n, _)| *n == name)
                .map(|(_, d)| (i, d))
        })
    }
}

/// Why entries could not be packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackError {
    /// Entry `index`'s name does not fit [`NAME_BYTES`] - 1 bytes (or is empty).
    BadName { index: usize },
    /// The output is shorter than [`packed_len`].
    TooSmall,
}

/// The archive's size for `entries`.
pub fn packed_len(entries: &[(&str, &[u8])]) -> usize {
    12 + entries.len() * HEADER_SIZE + entries.iter().map(|(_, d)| d.len()).sum::<usize>()
}

/// Packs `(name, bytes)` entries into `out` (at least [`packed_len`]
/// bytes); returns the bytes written.
pub fn pack_into(entries: &[(&str, &[u8])], out: &mut [u8]) -> Result<usize, PackError> {
    if let Some(index) = entries
        .iter()
        .position(|(n, _)| n.is_empty() || n.len() >= NAME_BYTES || n.contains('\0'))
    {
        return Err(PackError::BadName { index });
    }
    let len = packed_len(entries);
    let out = out.get_mut(..len).ok_or(PackError::TooSmall)?;
    out[..8].copy_from_slice(&MODULE_MAGIC);
    out[8..12].copy_from_slice(&(entries.len() as u32).to_le_bytes());
    let mut offset = 12 + entries.len() * HEADER_SIZE;
    for (i, (name, data)) in entries.iter().enumerate() {
        let h = &mut out[12 + i * HEADER_SIZE..12 + (i + 1) * HEADER_SIZE];
        h.fill(0);
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[NAME_BYTES..NAME_BYTES + 8].copy_from_slice(&(offset as u64).to_le_bytes());
        h[NAME_BYTES + 8..].copy_from_slice(&(data.len() as u64).to_le_bytes());
        out[offset..offset + data.len()].copy_from_slice(data);
        offset += data.len();
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = vec![0xaa; packed_len(entries)];
        assert_eq!(pack_into(entries, &mut out), Ok(out.len()));
        out
    }

    #[test]
    fn round_trips_entries() {
        let entries: [(&str, &[u8]); 4] = [
            ("spin", b"abc"),
            ("hog", b""),
            ("scenario", b"exo-launch 1\n"),
            (&"n".repeat(47), &[0, 1, 2, 255]),
        ];
        let a = build(&entries);
        let ar = Archive::parse(&a).unwrap();
        assert_eq!(ar.len(), entries.len());
        for (i, (name, data)) in entries.iter().enumerate() {
            assert_eq!(ar.entry(i), Some((*name, *data)));
            assert_eq!(ar.find(name), Some((i, *data)));
        }
        assert_eq!(ar.find("nope"), None);
        assert_eq!(ar.entry(4), None);
        assert!(Archive::parse(&build(&[])).unwrap().is_empty());
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let a = build(&[("spin", b"abc"), ("hog", b"")]);
        assert_eq!(&a[..8], b"EXOMOD01");
        assert_eq!(u32::from_le_bytes(a[8..12].try_into().unwrap()), 2);
        assert_eq!(&a[12..16], b"spin");
        assert!(a[16..12 + NAME_BYTES].iter().all(|&b| b == 0));
        let off = u64::from_le_bytes(a[12 + 48..12 + 56].try_into().unwrap()) as usize;
        assert_eq!(off, 12 + 2 * HEADER_SIZE);
        assert_eq!(&a[off..off + 3], b"abc");
        assert_eq!(
            HEADER_SIZE,
            core::mem::size_of::<crate::shared::ModuleHeader>()
        );
    }

    #[test]
    fn bad_names_and_short_buffers_are_refused() {
        let mut out = [0u8; 4096];
        let long = "x".repeat(48);
        assert_eq!(
            pack_into(&[("a", b""), (&long, b"")], &mut out),
            Err(PackError::BadName { index: 1 })
        );
        assert_eq!(
            pack_into(&[("", b"")], &mut out),
            Err(PackError::BadName { index: 0 })
        );
        assert_eq!(
            pack_into(&[("a", &[0; 5000])], &mut out),
            Err(PackError::TooSmall)
        );
    }

    #[test]
    fn rejects_bad_archives_and_never_panics() {
        assert_eq!(Archive::parse(b"nope").err(), Some(ArchiveError::BadMagic));
        let mut a = build(&[("spin", b"abcdef")]);
        a.truncate(a.len() - 1);
        assert_eq!(
            Archive::parse(&a).err(),
            Some(ArchiveError::EntryOutOfRange)
        );
        let good = build(&[("a", b"12345678"), ("b", b"xyz")]);
        let mut seed = 7u64;
        for _ in 0..20_000 {
            let mut x = good.clone();
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (seed >> 33) as usize % x.len();
            x[at] = (seed >> 17) as u8;
            if let Ok(ar) = Archive::parse(&x) {
                for i in 0..ar.len() {
                    assert!(ar.entry(i).is_some());
                }
            }
        }
    }
}
