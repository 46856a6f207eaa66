//! Slot allocation: the kernel side of `slice_alloc` and `slice_free`, and
//! the counts the invariants check.

use super::*;

/// Gives `env` slot `slot` (or any free slot) on `core`.
pub fn alloc_slot(env: &Env, core: usize, slot: Option<usize>) -> Result<usize, Error> {
    let cores = CORES.get();
    let state = cores.get(core).ok_or(Error::BadSlot)?;
    let mut c = state.lock();
    // `env_dying` marks the environment dying before it frees its slots
    // core by core, each under that core's lock: checked under the same
    // lock, an allocation either comes before the teardown reaches this
    // core (and is freed by it) or sees the mark. Unchecked, a dying
    // environment's allocation on a core the teardown had passed kept the
    // slot for ever (issue 14, hole 9).
    if !env.alive() {
        return Err(Error::BadEnv);
    }
    let id = slices::EnvId(env.id);
    let got = match slot {
        Some(s) => c.vector.alloc_named(s, id, &env.slot_quota).map(|()| s),
        None => c.vector.alloc_any(id, &env.slot_quota),
    }
    .map_err(slice_error)?;
    exported::core_slices_of(core).owners[got].store(env.id, Ordering::Release);
    env.account().slots_held.fetch_add(1, Ordering::Release);
    Ok(got)
}

/// Hands each `(env, n)` `n` free slots on `core`, interleaved: slot after
/// slot goes to the next environment in round-robin order among those
/// still wanting one, so nobody's turns bunch up in the walk.
pub fn grant_interleaved(core: usize, wants: &[(&Env, usize)]) -> Result<(), Error> {
    let mut wanted: alloc::vec::Vec<usize> = wants.iter().map(|&(_, n)| n).collect();
    let mut slot = 0;
    while wanted.iter().any(|&w| w > 0) {
        for (i, &(e, _)) in wants.iter().enumerate() {
            if wanted[i] > 0 {
                while slot_owner(core, slot).is_ok_and(|o| o != abi::syscall::NO_ENV) {
                    slot += 1;
                }
                alloc_slot(e, core, Some(slot))?;
                wanted[i] -= 1;
                slot += 1;
            }
        }
    }
    Ok(())
}

/// Takes slot `slot` on `core` back from `env`.
pub fn free_slot(env: &Env, core: usize, slot: usize) -> Result<(), Error> {
    let state = CORES.get().get(core).ok_or(Error::BadSlot)?;
    let mut c = state.lock();
    c.vector
        .free(slot, slices::EnvId(env.id), &env.slot_quota)
        .map_err(slice_error)?;
    exported::core_slices_of(core).owners[slot].store(NO_ENV, Ordering::Release);
    env.account().slots_held.fetch_sub(1, Ordering::Release);
    Ok(())
}

/// Owner of `slot` on `core`.
pub fn slot_owner(core: usize, slot: usize) -> Result<u32, Error> {
    let state = CORES.get().get(core).ok_or(Error::BadSlot)?;
    let c = state.lock();
    c.vector
        .owner(slot)
        .map(|o| o.map_or(NO_ENV, |e| e.0))
        .map_err(slice_error)
}

/// Slots owned by anyone in every core's vector. Takes every core's lock:
/// never call it holding one.
pub fn slots_owned() -> usize {
    CORES
        .get()
        .iter()
        .map(|state| {
            let c = state.lock();
            c.vector.len() - c.vector.free_count()
        })
        .sum()
}

fn slice_error(e: slices::SliceError) -> Error {
    use slices::SliceError as S;
    match e {
        S::NoSuchSlot => Error::BadSlot,
        S::SlotTaken => Error::Taken,
        S::NotOwner => Error::NotOwner,
        S::QuotaExceeded => Error::QuotaExceeded,
        S::NoFreeSlot => Error::Exhausted,
        S::Unowned => Error::BadSlot,
    }
}
