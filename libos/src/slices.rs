//! The slice manager: how many slots this application holds, on which
//! cores. Policy lives here, in the libOS; the kernel only grants named
//! slots under the quota it was given.

use abi::syscall::Error;

use crate::sys;

/// Makes sure this application holds at least `per_core` slots on each of
/// `cores` (all online cores when `None`); returns how many it acquired.
/// Stops at the first refusal (quota or a full vector) and reports it.
pub fn hold(per_core: usize, cores: Option<&[usize]>) -> Result<usize, (usize, Error)> {
    let (me, _) = sys::self_info();
    let online = sys::sysinfo().cores as usize;
    let slots = sys::sysinfo().slots as usize;
    let mut acquired = 0;
    let mut each = |core: usize| -> Result<(), (usize, Error)> {
        let held = (0..slots)
            .filter(|&s| {
                sys::core_slices(core).owners[s].load(core::sync::atomic::Ordering::Acquire) == me
            })
            .count();
        for _ in held..per_core {
            sys::slice_alloc(core, None).map_err(|e| (acquired, e))?;
            acquired += 1;
        }
        Ok(())
    };
    match cores {
        Some(list) => list.iter().try_for_each(|&c| each(c))?,
        None => (0..online).try_for_each(&mut each)?,
    }
    Ok(acquired)
}

/// Gives back every slot this application holds on `core`.
pub fn release(core: usize) -> usize {
    let (me, _) = sys::self_info();
    let slots = sys::sysinfo().slots as usize;
    (0..slots)
        .filter(|&s| {
            sys::core_slices(core).owners[s].load(core::sync::atomic::Ordering::Acquire) == me
        })
        .filter(|&s| sys::slice_free(core, s).is_ok())
        .count()
}

/// How many of its threads can run at once: the number of cores this
/// application holds slots on (its slots on different cores run side by
/// side, so a thread can use at most one of them). Its policy applies the
/// feasibility rule (a thread uses at most one core) against this.
pub fn capacity() -> usize {
    let (me, _) = sys::self_info();
    let info = sys::sysinfo();
    (0..info.cores as usize)
        .filter(|&core| {
            (0..info.slots as usize).any(|s| {
                sys::core_slices(core).owners[s].load(core::sync::atomic::Ordering::Acquire) == me
            })
        })
        .count()
        .max(1)
}

/// Holds exactly `per_core` slots on every core where it holds any now
/// (allocating free ones, giving back its highest-numbered ones); returns
/// the slots held per core before, or the first refusal.
pub fn resize(per_core: usize) -> Result<usize, Error> {
    let (me, _) = sys::self_info();
    let info = sys::sysinfo();
    let owned = |core: usize| -> alloc::vec::Vec<usize> {
        (0..info.slots as usize)
            .filter(|&s| {
                sys::core_slices(core).owners[s].load(core::sync::atomic::Ordering::Acquire) == me
            })
            .collect()
    };
    let mut before = 0;
    for core in 0..info.cores as usize {
        let mine = owned(core);
        if mine.is_empty() {
            continue;
        }
        before = before.max(mine.len());
        for _ in mine.len()..per_core {
            sys::slice_alloc(core, None)?;
        }
        for &slot in mine.iter().rev().take(mine.len().saturating_sub(per_core)) {
            sys::slice_free(core, slot)?;
        }
    }
    Ok(before)
}
