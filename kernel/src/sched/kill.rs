//! Killing an environment: its slots go at once, the cores running it let
//! go of it (kicked), and the last one reaps it.

use super::turn::{next_turn, stop_running};
use super::*;

/// A kick IPI on a scheduling core: drop the running env if it is dying.
pub fn on_kick(frame: &TrapFrame) {
    let core = percpu::core_id();
    if !active(core) || !frame.is_user() {
        return;
    }
    park_if_stopping(core);
    let mut c = core_state(core).lock();
    if c.turn.as_ref().is_some_and(|t| !t.env.alive()) {
        let t = c.end_turn(core).expect("checked");
        drop(c);
        stop_running(core, t, time::now_ns());
        next_turn();
    }
}

/// Kills `env` (its `exit`, or a kill): marks it dying, takes its slots
/// and lets the cores running it go ([`env_dying`]); its children die with
/// it (nobody else may kill them, and what they hold was lent by it). The
/// last core to let go of it reaps it.
pub fn kill(env: &Env, reason: env::ExitReason) {
    if !env::mark_dying(env, reason) {
        return;
    }
    env_dying(env);
    for child in env::all().iter().filter(|c| c.parent == env.id) {
        kill(child, env::ExitReason::Killed("its parent died"));
    }
}

/// Reaps environment `id` if it is dead and let go of everywhere, and
/// checks what came back.
pub(super) fn reap(id: u32) {
    if let Some(r) = env::reap(id) {
        crate::invariants::on_reaped(r.id, r.owned, r.freed);
    }
}

/// An environment was killed: kick every other scheduling core so the ones
/// running it let go now rather than at their turn's end.
pub(super) fn env_dying(env: &Env) {
    let me = percpu::core_id();
    for core in (0..crate::arch::smp::cores()).filter(|&c| c != me && active(c)) {
        apic::send_ipi(
            crate::arch::smp::apic_id(core),
            crate::arch::interrupts::vector::IPI_KICK,
        );
    }
    // Free its slots everywhere; the walk skips them from now on.
    for (core, state) in CORES.get().iter().enumerate() {
        let mut c = state.lock();
        let freed = c.vector.free_all(slices::EnvId(env.id), &env.slot_quota);
        if freed > 0 {
            let page = exported::core_slices_of(core);
            for o in page.owners.iter() {
                let _ = o.compare_exchange(env.id, NO_ENV, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
    }
    env.account().slots_held.store(0, Ordering::Relaxed);
    // The last core to let go reaps it, unless it let go before this point;
    // then this does (SeqCst on both sides: one of the two sees the other).
    env.slots_released.store(true, Ordering::SeqCst);
    if env.running_on.load(Ordering::SeqCst) == 0 {
        reap(env.id);
    }
}
