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
//!    every frame it can (and frees them), and reports how many. A child's
//!    slot quota is capped by what its parent has left (here nothing), and
//!    its frames are charged to its parent too: about 2000 are left;
//! 3. maps on, up to 5000 addresses: stopped at its quota;
//! 4. exits: its child, left behind, must die with it (an orphan nobody
//!    could kill).
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use core::sync::atomic::{AtomicBool, Ordering};

use libos::abi::syscall::{map_flags, Error};
use libos::{report, sys, App, Epilogue};

const MAPS_BEFORE_CHILD: u64 = 2000;
const MAPS_TRIED: u64 = 5000;
/// Turns donated to the child (of 20 ms each in the suite).
const CHILD_TURNS: usize = 5;
const BASE: u64 = 0x1000_0000_0000;
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
    let mut frames = alloc::vec::Vec::new();
    let frames_stop = loop {
        match sys::frame_alloc(None) {
            Ok(pfn) => frames.push(pfn),
            Err(e) => break e.name(),
        }
    };
    let taken_frames = frames.len();
    let all_freed = frames.drain(..).all(|pfn| sys::frame_free(pfn).is_ok());
    report!("\"kind\":\"hoarder_child\",\"slots_taken\":{taken},\"first_error\":\"{first_error}\",\"frames_taken\":{taken_frames},\"frames_stopped_by\":\"{frames_stop}\",\"frames_freed\":{all_freed}");
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
