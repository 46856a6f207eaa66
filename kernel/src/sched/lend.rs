//! Idle time lent back to an awake environment that asked for a core again
//! (`YIELD_WAKE_AT`), and the request made for it when its predicate wakes
//! it on another core.
//!
//! The predicate is environment-wide: it wakes a sleeping environment on
//! the first core that finds it true, and the others, idle, halt on. A
//! libOS with several threads due at different instants then runs the
//! first one there while the next one's deadline passes beside idle cores
//! it holds slots on (measured, det, two sleepers on two cores: one waited
//! a median 70 µs for the other to finish, every period). So a wake-up by
//! predicate asks each other idle core holding one of its slots to lend it
//! the core at once: its libOS there runs what is due, or gives the core
//! up again asking for it back at its next sleeper's deadline.

use super::*;

/// Per core: a lend-back request arrived while it idled (its halt loop
/// goes back to the walk instead of sleeping to its old deadline).
static LEND_KICK: [AtomicBool; percpu::MAX_CPUS] =
    [const { AtomicBool::new(false) }; percpu::MAX_CPUS];

/// Records on core `core`'s state that `env` wants the core back from
/// `at`, unless another environment's request is there.
pub(super) fn request(c: &mut Core, env: u32, at: u64) {
    if c.lend_back.is_none_or(|(id, _)| id == env) {
        c.lend_back = Some((env, at));
    }
}

/// `env` was just woken by its predicate on this core: every other
/// scheduling core holding one of its slots is asked to lend it the core
/// now, and kicked out of its halt if it idles.
pub(super) fn wake_siblings(env: &Env, now: u64) {
    let me = percpu::core_id();
    let id = slices::EnvId(env.id);
    for core in (0..crate::arch::smp::cores()).filter(|&c| c != me && active(c)) {
        {
            let mut c = core_state(core).lock();
            let holds = (0..c.vector.len()).any(|s| c.vector.owner(s) == Ok(Some(id)));
            if !holds {
                continue;
            }
            request(&mut c, env.id, now);
        }
        if exported::core_slices_of(core)
            .running_env
            .load(Ordering::Relaxed)
            == NO_ENV
        {
            LEND_KICK[core].store(true, Ordering::Release);
            apic::send_ipi(
                crate::arch::smp::apic_id(core),
                crate::arch::interrupts::vector::IPI_KICK,
            );
        }
    }
}

/// Whether an idle `core` was asked to lend itself since it last looked.
pub(super) fn kicked(core: usize) -> bool {
    LEND_KICK[core].swap(false, Ordering::AcqRel)
}
