//! Hostile: takes memory and slots it was never given (issue 14, hole 6).
//!
//! Launched with `parent <its own program index>` and a slot quota exactly
//! as large as the slots it holds. On core 0, once:
//! 1. maps its one frame at 2000 addresses 2 MiB apart: each needs a page
//!    table of its own, which the kernel used to build for nobody's
//!    account (a frame mapped at every 2 MiB of the address space is 4 KiB
//!    of page table per 2 MiB: all of RAM). Page tables now count against
//!    its frame quota (4096);
//! 2. spawns itself as a child asking for 1000 slots, and donates its turn
//!    to it: the child (no arguments) takes every free slot it can, then
//!    every page `map_fresh` gives it (and unmaps and frees them), then
//!    every frame it can (and frees them), and reports how many. A child's
//!    slot quota is capped by what its parent has left (here nothing), and
//!    its frames are charged to its parent too: about 2000 are left;
//! 3. maps on, up to 5000 addresses: stopped at its quota;
//! 4. exits: its child, left behind, must die with it (an orphan nobody
//!    could kill).
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use core::sync::atomic::{AtomicBool, Ordering};

use libos::abi::syscall::{map_flags, Error, MAP_FRESH_MAX_PAGES};
use libos::{report, sys, App, Epilogue};

const MAPS_BEFORE_CHILD: u64 = 2000;
const MAPS_TRIED: u64 = 5000;
/// Turns donated to the child (of 20 ms each in the suite).
const CHILD_TURNS: usize = 5;
const BASE: u64 = 0x1000_0000_0000;
/// Where the child maps its fresh pages (clear of its parent's).
const CHILD_FRESH: u64 = 0x2000_0000_0000;
/// The page there mapped in the way of a 16-page call.
const BLOCKER: u64 = 8;
const STRIDE: u64 = 2 << 20;
static REPORTED: AtomicBool = AtomicBool::new(false);

fn name(r: Result<u64, Error>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.name(),
    }
}

fn worker(core: usize) -> ! {
    let args = sys::args();
    if let Some(index) = args.strip_prefix("parent ") {
        if core == 0 {
            parent(index.trim().parse().unwrap_or(usize::MAX));
        }
    } else if !REPORTED.swap(true, Ordering::AcqRel) {
        child();
    }
    loop {
        core::hint::spin_loop();
    }
}

/// The child: every free slot on every core it can get.
fn child() {
    let cores = sys::sysinfo().cores as usize;
    let (mut taken, mut first_error) = (0u32, "none");
    for core in 0..cores {
        loop {
            match sys::slice_alloc(core, None) {
                Ok(_) => taken += 1,
                Err(e) => {
                    if first_error == "none" {
                        first_error = e.name();
                    }
                    break;
                }
            }
        }
    }
    let (short_mapped, frames_before_short, frames_after_short) = fresh_stopped_short();
    // Fresh pages, 16 a call, until its parent's quota (which pays for
    // them too) stops it; then every one of them back.
    let mut fresh = 0;
    let fresh_stop = loop {
        let at = CHILD_FRESH + fresh * 4096;
        match sys::map_fresh(at, MAP_FRESH_MAX_PAGES, map_flags::WRITABLE) {
            Ok(n) => fresh += n,
            Err(e) => break e.name(),
        }
    };
    let fresh_freed = free_fresh(fresh);
    let (taken_frames, frames_stop, all_freed) = frames_to_quota();
    report!("\"kind\":\"hoarder_child\",\"slots_taken\":{taken},\"first_error\":\"{first_error}\",\"frames_taken\":{taken_frames},\"frames_stopped_by\":\"{frames_stop}\",\"frames_freed\":{all_freed},\"fresh_pages\":{fresh},\"fresh_stopped_by\":\"{fresh_stop}\",\"fresh_freed\":{fresh_freed},\"short_mapped\":{short_mapped},\"frames_before_short\":{frames_before_short},\"frames_after_short\":{frames_after_short}");
}

/// A 16-page `map_fresh` stopped short by a page mapped in its way, at
/// `CHILD_FRESH` whose page tables are built first: how many it mapped,
/// and the frames `frame_alloc` could take before and after it (its pages
/// unmapped and freed). Its parent pays for its frames too, charged for
/// the whole call at once: what it did not map must be given back.
fn fresh_stopped_short() -> (u64, u64, u64) {
    let tables_built = sys::map_fresh(CHILD_FRESH, 1, map_flags::WRITABLE) == Ok(1);
    if !tables_built || !free_fresh(1) {
        return (0, 0, 0);
    }
    let (before, _, _) = frames_to_quota();
    let blocker = CHILD_FRESH + BLOCKER * 4096;
    if sys::map_fresh(blocker, 1, map_flags::WRITABLE) != Ok(1) {
        return (0, before, 0);
    }
    let mapped = sys::map_fresh(CHILD_FRESH, MAP_FRESH_MAX_PAGES, map_flags::WRITABLE).unwrap_or(0);
    let freed = free_fresh(mapped) && sys::unmap(blocker).and_then(sys::frame_free).is_ok();
    let (after, _, _) = frames_to_quota();
    (mapped, before, if freed { after } else { 0 })
}

/// Unmaps and frees the first `pages` pages from `CHILD_FRESH`.
fn free_fresh(pages: u64) -> bool {
    (0..pages).all(|i| {
        sys::unmap(CHILD_FRESH + i * 4096)
            .and_then(sys::frame_free)
            .is_ok()
    })
}

/// Takes every frame `frame_alloc` gives, then frees them: how many, what
/// stopped it, whether every one freed.
fn frames_to_quota() -> (u64, &'static str, bool) {
    let mut frames = alloc::vec::Vec::new();
    let stop = loop {
        match sys::frame_alloc(None) {
            Ok(pfn) => frames.push(pfn),
            Err(e) => break e.name(),
        }
    };
    let taken = frames.len() as u64;
    let freed = frames.into_iter().all(|pfn| sys::frame_free(pfn).is_ok());
    (taken, stop, freed)
}

fn parent(index: usize) {
    let Ok(frame) = sys::frame_alloc(None) else {
        report!("\"kind\":\"hoarder_tables\",\"frame\":false");
        sys::exit(1);
    };
    let mut stop = "none";
    let before_child = (0..MAPS_BEFORE_CHILD)
        .take_while(|i| sys::map(BASE + i * STRIDE, frame, map_flags::WRITABLE).is_ok())
        .count() as u64;
    let mut mapped = before_child;
    let child = sys::spawn(index, 1000, 0);
    if let Ok(child) = child {
        // Its turns on this core to the child, which has no slot of its
        // own: one (what is left of it) may be too short for its work.
        for _ in 0..CHILD_TURNS {
            let _ = sys::yield_to(Some(child), true);
        }
    }
    for i in before_child..MAPS_TRIED {
        match sys::map(BASE + i * STRIDE, frame, map_flags::WRITABLE) {
            Ok(_) => mapped += 1,
            Err(e) => {
                stop = e.name();
                break;
            }
        }
    }
    let unmapped = (0..mapped)
        .filter(|i| sys::unmap(BASE + i * STRIDE) == Ok(frame))
        .count();
    let freed = sys::frame_free(frame);
    report!(
        "\"kind\":\"hoarder_tables\",\"frame\":true,\"spawned_child\":{},\"mapped\":{mapped},\"stopped_by\":\"{stop}\",\"unmapped\":{unmapped},\"freed\":\"{}\"",
        child.is_ok(),
        name(freed)
    );
    sys::exit(0);
}

libos::program!(App {
    name: "hoarder",
    main: worker,
    epilogue: Epilogue::Cooperative,
    on_fault: None
});
