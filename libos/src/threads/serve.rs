//! What the runtime lock's holder answers a core waiting for a pick
//! ([`super::combine`]), apart from the libOS's system calls so that the
//! host tests run this very code.
//!
//! The holder has charged every published stop and woken the sleepers due
//! first (`threads::catch_up`, the same for `decide` and for a thread's
//! own hold): a core told to park while a runnable thread, or a sleeper's
//! deadline, still sat in another core's stop would park past it, and
//! nothing would bring it back (review r-s33: a thread's hold served the
//! waiting cores after `wake_due` alone).

use super::combine::Reply;
use super::handoff::{self, Stops};
use super::table::{Table, NONE};

/// The reply for waiting core `k` at global clock `at`: its pending stop
/// charged first, then the policy's pick for it (its charge starting at
/// `clock()`, the core's CPU clock); with nothing to run while threads
/// run elsewhere, a park until `park_until` works out (`park_ns()` from
/// now or a sleeper's deadline); else declined (the whole application
/// asleep, which the core sees for itself). From a thread's own hold
/// something always runs (the holder), so it never declines for that.
pub(super) fn reply<R: Fn(u64) -> u64>(
    rt: &mut Table,
    stops: &Stops,
    k: usize,
    at: u64,
    clock: impl FnOnce() -> u64,
    park_ns: impl FnOnce() -> u64,
    read: &R,
) -> Reply {
    // Its stop was published before it asked, maybe after the holder's
    // drain: charged first, as a pick on that core requires.
    if let Some(stop) = stops.take(k) {
        handoff::charge(rt, k, stop, at, read);
    }
    if rt.current(k) != NONE {
        return Reply::Decline;
    }
    if let Some(tid) = rt.start_at(k, clock(), at) {
        Reply::Run(tid)
    } else if rt.running_anywhere() {
        Reply::Park(rt.park_until(k, at, park_ns()))
    } else {
        Reply::Decline
    }
}

/// Takes back a reply whose request was withdrawn before it landed: a pick
/// goes back to the policy as a preempted thread that ran for no time and
/// waits on as before its pick ([`Table::hand_back`]), a
/// park is forgotten (the core watches for no sleeper's deadline).
pub(super) fn undo<R: Fn(u64) -> u64>(rt: &mut Table, k: usize, reply: Reply, at: u64, read: &R) {
    match reply {
        Reply::Run(tid) => rt.hand_back(k, tid, 0, at, at, read),
        Reply::Park(_) => rt.forget_park(k),
        Reply::Decline => {}
    }
}
