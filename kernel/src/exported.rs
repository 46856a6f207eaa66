//! The kernel state every environment may read (expose information): the
//! system page, each core's slice vector and every environment's
//! accounting. Allocated once at boot; mapped read-only into each
//! environment at the fixed addresses of `abi::shared::va`.

use core::sync::atomic::Ordering;

use abi::shared::{va, CoreSlices, EnvAccount, Inbox, SysInfo, MAX_ENVS, MAX_SLOTS, SYSINFO_MAGIC};
use abi::syscall::NO_ENV;
use kernel::frames::FrameError;

use crate::arch::mm::{self, FrameRef, Zeroable};
use crate::aspace::AddressSpace;
use crate::sync::BootCell;

struct Pages {
    sysinfo: FrameRef<SysInfo>,
    /// Each core's `CoreSlices` (adjacent frames, `SLICE_PAGES` each).
    core_slices: alloc::vec::Vec<FrameRef<CoreSlices>>,
    accounts: [FrameRef<EnvAccount>; MAX_ENVS],
}

static PAGES: BootCell<Pages> = BootCell::new();

const SLICE_PAGES: u64 = va::CORE_SLICES_STRIDE / 4096;

// SAFETY: integers and atomics (all-zero is valid); sizes checked in `abi`
// (a page each, `CoreSlices` its stride).
unsafe impl Zeroable for SysInfo {}
// SAFETY: as `SysInfo`.
unsafe impl Zeroable for CoreSlices {}
// SAFETY: as `SysInfo`.
unsafe impl Zeroable for EnvAccount {}

/// The `T` an exported frame holds, for the kernel's whole life.
fn exported<T: Sync>(frame: &FrameRef<T>) -> &'static T {
    // SAFETY: exported frames are allocated once at boot, zeroed (a valid
    // `T`: `Zeroable`), and never freed; environments map them read-only,
    // and every field the kernel changes after `init` is an atomic.
    unsafe { &*frame.as_ptr() }
}

/// Allocates and initialises the exported pages for `cores` cores.
pub fn init(cores: usize, slots: u32, slice_ns: u64, grace_ns: u64, sched: u32) {
    let sysinfo = mm::alloc_frame_as::<SysInfo>().expect("memory for exported pages");
    let core_slices = (0..cores)
        .map(|_| {
            // Contiguity is not required by users (each stride is mapped
            // page by page), but the kernel views a CoreSlices as one
            // object through the direct map.
            mm::alloc_adjacent_frames_as::<CoreSlices>(SLICE_PAGES)
                .expect("adjacent frames for a slice vector")
        })
        .collect();
    let accounts = core::array::from_fn(|_| {
        mm::alloc_frame_as::<EnvAccount>().expect("memory for exported pages")
    });
    // SAFETY: the sysinfo frame was just allocated (zeroed: a valid
    // `SysInfo`), not yet published or mapped: this is its only reference.
    let info = unsafe { &mut *sysinfo.as_ptr() };
    info.magic = SYSINFO_MAGIC;
    info.cores = cores as u32;
    info.slots = slots;
    info.slice_ns = slice_ns;
    info.grace_ns = grace_ns;
    info.sched = sched;
    info.tsc_khz = crate::arch::time::tsc_khz();
    info.tsc_base = crate::arch::time::tsc_base();
    info.tsc_ns_scale = crate::arch::time::tsc_ns_scale();
    PAGES.init(Pages {
        sysinfo,
        core_slices,
        accounts,
    });
    for core in 0..cores {
        let s = core_slices_of(core);
        s.current_slot.store(0, Ordering::Relaxed);
        s.running_env.store(NO_ENV, Ordering::Relaxed);
        for o in &s.owners[..MAX_SLOTS] {
            o.store(NO_ENV, Ordering::Relaxed);
        }
    }
    for i in 0..MAX_ENVS {
        account(i).env.store(NO_ENV, Ordering::Relaxed);
    }
}

/// The system page.
pub fn sysinfo() -> &'static SysInfo {
    exported(&PAGES.get().sysinfo)
}

/// Core `core`'s exported slice vector.
pub fn core_slices_of(core: usize) -> &'static CoreSlices {
    exported(&PAGES.get().core_slices[core])
}

/// Accounting of environment-table slot `slot`.
pub fn account(slot: usize) -> &'static EnvAccount {
    exported(&PAGES.get().accounts[slot])
}

/// Zeroes account `a`'s counters but its CPU time (`ledger::reset_account`
/// zeroes that, keeping the ledger's totals) and gives it to environment
/// `id`, named `name`.
pub fn reset_account_counters(a: &EnvAccount, id: u32, name: &str) {
    for c in [
        &a.donations_given,
        &a.donations_received,
        &a.repossessions,
        &a.forfeits,
        &a.slots_revoked,
        &a.wakeups,
        &a.turns,
        &a.grace_renewals,
    ] {
        c.store(0, Ordering::Relaxed);
    }
    a.slots_held.store(0, Ordering::Relaxed);
    // The name before the id: a reader that sees the id sees its name
    // (`EnvAccount::named` reads the id again after the name).
    a.set_name(name);
    a.env.store(id, Ordering::Release);
}

/// Marks slot `slot`'s accounting free (its figures stay readable).
pub fn retire_account(slot: usize) {
    account(slot).env.store(NO_ENV, Ordering::Release);
}

/// Maps every exported page read-only into `aspace`.
pub fn map_into(aspace: &AddressSpace) -> Result<(), FrameError> {
    let p = PAGES.get();
    aspace.map(va::SYSINFO, p.sysinfo.pa(), false, false)?;
    for (core, first) in p.core_slices.iter().enumerate() {
        for i in 0..SLICE_PAGES {
            let at = va::CORE_SLICES + core as u64 * va::CORE_SLICES_STRIDE + i * 4096;
            aspace.map(at, first.pa() + i * 4096, false, false)?;
        }
    }
    for (slot, frame) in p.accounts.iter().enumerate() {
        aspace.map(
            va::ENV_ACCOUNTS + slot as u64 * va::ENV_ACCOUNT_STRIDE,
            frame.pa(),
            false,
            false,
        )?;
    }
    Ok(())
}

/// Slots the exported vectors show as owned by `id` (`None`: by anyone).
/// Lock-free: reads the pages environments read.
pub fn slots_owned_by(id: Option<u32>) -> usize {
    (0..crate::arch::smp::cores())
        .map(|core| {
            let owners = &core_slices_of(core).owners[..sysinfo().slots as usize];
            owners
                .iter()
                .map(|o| o.load(Ordering::Acquire))
                .filter(|&o| o != NO_ENV && id.is_none_or(|id| o == id))
                .count()
        })
        .sum()
}

// SAFETY: an `Inbox` is integers and atomics (all-zero is valid), and one
// page (checked below).
unsafe impl Zeroable for Inbox {}
const _: () = assert!(core::mem::size_of::<Inbox>() <= 4096);

/// Posts a console message to the inbox in `frame` (text cut to
/// `INBOX_MESSAGE` bytes); returns its sequence number (the count of
/// messages before it), by which the environment names it when it reports
/// the outcome.
pub fn post(frame: &FrameRef<Inbox>, text: &str) -> u64 {
    // SAFETY: the frame holds an inbox, held by its owner (the environment,
    // until it is reaped) while `frame` is borrowed; the environment maps it
    // read-only, and only the console (core 0's monitor) posts: the kernel
    // is its one writer.
    let inbox = unsafe { &mut *frame.as_ptr() };
    let n = inbox.written.load(Ordering::Relaxed);
    let slot = &mut inbox.messages[n as usize % abi::shared::INBOX_SLOTS];
    let len = text.len().min(abi::shared::INBOX_MESSAGE);
    slot.text[..len].copy_from_slice(&text.as_bytes()[..len]);
    slot.len = len as u64;
    inbox.written.store(n + 1, Ordering::Release);
    n
}
