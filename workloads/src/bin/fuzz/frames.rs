//! One frame through its whole life, every answer checked: mapped at two
//! addresses, written through one and read through the other, refused
//! while mapped, freed once unmapped.

use core::sync::atomic::Ordering;

use libos::abi::shared::{va, MAX_ENVS};
use libos::abi::syscall::{map_flags::WRITABLE, Error};
use libos::sys;

use crate::calls::Rng;
use crate::tally::{expect, ran, violation, Op};

/// Whether a random call on another core could name frame `pfn` (see
/// `calls::arg`: small numbers, powers of two, live environments' ids): it
/// could free it or map it under this sequence, which would then count
/// answers the ABI rightly gave as violations.
fn named_by_random_calls(pfn: u64) -> bool {
    pfn < 64
        || pfn.is_power_of_two()
        || (0..MAX_ENVS)
            .any(|slot| u64::from(sys::account(slot).env.load(Ordering::Relaxed)) == pfn)
}

/// Where this core's sequences map: past any address the random arguments
/// name (`USER_MAP_START` plus up to 64 pages, powers of two), a MiB per
/// core, so no other core's sequence and no random call touches it.
fn sequence_base(core: usize) -> u64 {
    va::USER_MAP_START + (1 << 32) + core as u64 * 0x10_0000
}

/// A refused allocation (quota, memory) is no violation: the sequence
/// just does not run.
pub fn frame_sequence(core: usize, rng: &mut Rng) {
    const OP: Op = Op::Frame;
    let Ok(pfn) = sys::frame_alloc(None) else {
        return;
    };
    if named_by_random_calls(pfn) {
        let _ = sys::frame_free(pfn);
        return;
    }
    let a = sequence_base(core);
    let b = a + 4096 * (1 + rng.below(16));
    // A mapping may need page-table frames, which count against the
    // quota the random calls have been spending: running out is an
    // answer the ABI allows (then nothing is mapped and the sequence ends
    // here); any other refusal is not.
    for (i, at) in [a, b].into_iter().enumerate() {
        if let Err(e) = sys::map(at, pfn, WRITABLE) {
            if !matches!(e, Error::QuotaExceeded | Error::Exhausted) {
                violation(OP, e as u64);
            }
            if i == 1 {
                expect(OP, sys::unmap(a), Ok(()));
            }
            expect(OP, sys::frame_free(pfn), Ok(()));
            return;
        }
    }
    expect(OP, sys::map(a, pfn, WRITABLE), Err(Error::BadAddress));
    let word = rng.next();
    // SAFETY: `a` and `b` were just mapped writable to one frame of this
    // environment's, at addresses nothing else here uses.
    let seen = unsafe {
        core::ptr::write_volatile(a as *mut u64, word);
        core::ptr::read_volatile(b as *const u64)
    };
    if seen != word {
        violation(OP, 0);
    }
    expect(OP, sys::frame_free(pfn), Err(Error::Taken));
    expect(OP, sys::unmap(a), Ok(()));
    expect(OP, sys::frame_free(pfn), Err(Error::Taken));
    expect(OP, sys::unmap(b), Ok(()));
    expect(OP, sys::unmap(b), Err(Error::NotMapped));
    expect(OP, sys::frame_free(pfn), Ok(()));
    // Not "freeing it again is refused": this environment's other cores
    // allocate frames too, and may just have been given this one.
    expect(OP, sys::unmap(a), Err(Error::NotMapped));
    ran(OP);
}
