//! Pure logic of the kernel, kept apart from the hardware code so that it is
//! tested on the host with plain `cargo test -p kernel`. The kernel binary
//! (`main.rs`) uses these modules; nothing here touches hardware.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod bootmod;
pub mod bursts;
pub mod cmdline;
pub mod elf;
pub mod frames;
pub mod launch;
pub mod memmap;
pub mod record_line;
pub mod shootdown;
