//! Hostile: frees frames it still maps (issue 14, hole 1).
//!
//! On core 0, once:
//! - allocates a frame, maps it writable, and frees it while it is still
//!   mapped. Were that allowed, the allocator would hand the frame to the
//!   next taker while this environment keeps writing it: the program then
//!   maps another frame in a fresh part of its address space, so the next
//!   frames taken are page tables, and looks through its old mapping for a
//!   page-table entry (the one naming the frame it just mapped) — its own
//!   page table, writable from ring 3, is every byte of physical memory;
//! - maps one frame at two addresses and frees it after each unmap: only
//!   the last unmap makes it free-able (mappings are counted per frame);
//! - tries to free every frame number of the machine: the frames the
//!   kernel installed for it (image, arguments, inbox, dispatch pages,
//!   upcall stacks — the kernel keeps writing the dispatch pages) must all
//!   be refused, and everyone else's are not its own.
//!
//! It reports what it saw; the host suite asserts on the report.
#![cfg_attr(target_os = "none", no_std, no_main)]

use libos::abi::syscall::{map_flags, Error};
use libos::{report, sys, App, Epilogue};

/// Its own mappings: in the libOS range, the second in another PML4 slot
/// (so mapping there builds three fresh page tables).
const VA1: u64 = 0x1000_0000_0000;
const VA2: u64 = 0x2000_0000_0000;
const VA3: u64 = 0x2000_0000_1000;
const PATTERN: u64 = 0x5a5a_1234_5a5a_1234;
/// Frame numbers tried: 1 GiB, the suites' guest memory.
const FRAMES_TRIED: u64 = 1 << 18;

fn name(r: Result<u64, Error>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.name(),
    }
}

fn word(at: u64) -> u64 {
    // SAFETY: `at` is mapped by this program (checked by the caller).
    unsafe { (at as *const u64).read_volatile() }
}

fn worker(core: usize) -> ! {
    if core == 0 {
        probe();
    }
    loop {
        core::hint::spin_loop();
    }
}

fn probe() {
    let (Ok(a), Ok(c)) = (sys::frame_alloc(None), sys::frame_alloc(None)) else {
        report!("\"kind\":\"free_mapped_done\",\"setup\":false");
        return;
    };
    let mut setup = sys::map(VA1, a, map_flags::WRITABLE).is_ok();
    if setup {
        // SAFETY: VA1 was just mapped writable.
        unsafe { (VA1 as *mut u64).write_volatile(PATTERN) };
    }
    // 1. Free a mapped frame, then make the kernel take frames.
    let mapped_free = sys::frame_free(a);
    setup &= sys::map(VA2, c, map_flags::WRITABLE).is_ok();
    let seen = word(VA1);
    // A page-table entry naming frame `c`, present and user.
    let table_entry_seen = (0..512u64).any(|i| {
        let e = word(VA1 + i * 8);
        e & 0x000f_ffff_ffff_f000 == c << 12 && e & 0b101 == 0b101
    });
    // 2. One frame at two addresses: free-able only after both unmaps.
    setup &= sys::map(VA3, c, 0).is_ok();
    setup &= sys::unmap(VA2) == Ok(c);
    let free_one_left = sys::frame_free(c);
    setup &= sys::unmap(VA3) == Ok(c);
    let free_none_left = sys::frame_free(c);
    // 3. Every frame number: its own kernel-installed frames refused.
    let (mut freed, mut refused, mut not_owner, mut other) = (0u64, 0u64, 0u64, 0u64);
    for pfn in 0..FRAMES_TRIED {
        if pfn == a || pfn == c {
            continue;
        }
        match sys::frame_free(pfn) {
            Ok(_) => freed += 1,
            Err(Error::NotPermitted) => refused += 1,
            Err(Error::NotOwner) => not_owner += 1,
            Err(_) => other += 1,
        }
    }
    // 4. Back to nothing: unmapped, `a` is free-able.
    let unmapped = sys::unmap(VA1);
    let last_free = sys::frame_free(a);
    report!(
        "\"kind\":\"free_mapped_done\",\"setup\":{setup},\"mapped_free\":\"{}\",\"word_seen\":{seen},\"pattern_kept\":{},\"table_entry_seen\":{table_entry_seen},\"free_one_mapping_left\":\"{}\",\"free_no_mapping_left\":\"{}\",\"kernel_frames_freed\":{freed},\"kernel_frames_refused\":{refused},\"not_owner\":{not_owner},\"other_errors\":{other},\"unmap_after\":\"{}\",\"free_after_unmap\":\"{}\"",
        name(mapped_free),
        seen == PATTERN,
        name(free_one_left),
        name(free_none_left),
        name(unmapped),
        name(last_free),
    );
}

libos::program!(App {
    name: "free_mapped",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
