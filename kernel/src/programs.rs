//! The programs the runner booted with (the boot-module archive, its
//! `-initrd`): what environments are spawned from.

use kernel::bootmod::Archive;

use crate::sync::BootCell;

static ARCHIVE: BootCell<Archive<'static>> = BootCell::new();

/// Takes the boot-module archive (the runner's `-initrd`), if any.
pub fn set_archive(bytes: &'static [u8]) -> Result<(), kernel::bootmod::ArchiveError> {
    ARCHIVE.init(Archive::parse(bytes)?);
    Ok(())
}

/// Program `index` of the archive: name and ELF bytes.
pub fn program(index: usize) -> Option<(&'static str, &'static [u8])> {
    ARCHIVE.try_get()?.entry(index)
}

/// The program named `name`.
pub fn program_named(name: &str) -> Option<&'static [u8]> {
    ARCHIVE.try_get()?.find(name).map(|(_, bytes)| bytes)
}

/// The boot-module index of the program named `name`.
pub fn program_index(name: &str) -> Option<usize> {
    ARCHIVE.try_get()?.find(name).map(|(index, _)| index)
}
