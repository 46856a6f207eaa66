//! Reader for the boot-module archive: the format is `abi::boot_archive`,
//! where the runner's writer lives too.

pub use abi::boot_archive::{Archive, ArchiveError};
