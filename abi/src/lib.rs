//! Definitions shared by every side of the platform: the kernel, the libOSes
//! running in ring 3 and the host-side runner. Keeping them in one crate means
//! there is exactly one copy of each table (exit codes, record names, system
//! calls, shared-page layouts), never a hand-maintained duplicate.
#![cfg_attr(not(test), no_std)]
// Denied rather than forbidden: the one exception is `busy::countdown`'s
// two-instruction asm loop, allowed on that function alone.
#![deny(unsafe_code)]

pub mod boot_archive;
pub mod busy;
pub mod clock;
pub mod console_script;
pub mod exit;
pub mod record;
pub mod shared;
pub mod syscall;
pub mod waits;

pub use exit::ExitCode;
