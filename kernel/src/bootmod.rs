//! Reader for the boot-module archive (`abi::shared::MODULE_MAGIC`): the
//! programs (and later the scenario) the runner passes with `-initrd`.

use abi::shared::MODULE_MAGIC;

const HEADER_SIZE: usize = 48 + 8 + 8;

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

/// Builds an archive (the runner's side; here for tests and the host tools).
#[cfg(test)]
pub fn build(entries: &[(&str, &[u8])]) -> std::vec::Vec<u8> {
    let mut out = MODULE_MAGIC.to_vec();
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    let mut offset = (12 + entries.len() * HEADER_SIZE) as u64;
    for (name, data) in entries {
        let mut n = [0u8; 48];
        n[..name.len()].copy_from_slice(name.as_bytes());
        out.extend_from_slice(&n);
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        offset += data.len() as u64;
    }
    for (_, data) in entries {
        out.extend_from_slice(data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_entries() {
        let a = build(&[("spin", b"abc"), ("hog", b"")]);
        let ar = Archive::parse(&a).unwrap();
        assert_eq!(ar.len(), 2);
        assert_eq!(ar.entry(0), Some(("spin", &b"abc"[..])));
        assert_eq!(ar.find("hog"), Some((1, &b""[..])));
        assert_eq!(ar.find("nope"), None);
        assert_eq!(ar.entry(2), None);
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
