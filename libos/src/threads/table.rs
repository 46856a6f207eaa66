//! The thread table and its state machine, without any mechanism: no
//! system calls, no stacks, no locks (the caller holds the runtime lock).
//! Tested on the host with the real policies.
//!
//! A thread is `Free`, `Live` or `Exited` here; the policy knows whether a
//! live thread is runnable, running on a core, or sleeping. Wake-up
//! conditions (a deadline, a watched word, a pending unblock) are only
//! cleared when they actually wake a *sleeping* thread: a condition met
//! while its thread is still on its way to sleep is seen when that thread
//! is charged as blocked, so no wake-up is lost.

use alloc::boxed::Box;

use abi::shared::UserContext;
use abi::waits::WaitHistogram;
use sched_api::{CurrencyId, Policy, PolicyKind, RunEnd, SchedError, ThreadState, BASE_CURRENCY};

use crate::rt::MAX_WORKERS;
use crate::wakeup::Wait;

mod currencies;
mod slots;
use currencies::Currencies;
use slots::Bits;
pub use slots::Threads;

/// Most threads an application may have: the table grows to it as threads
/// are spawned (see [`slots`]); stacks are mapped as they are first used.
pub const MAX_THREADS: usize = 16_384;
/// No thread.
pub const NONE: usize = usize::MAX;
/// `Thread::runnable_since` of a thread that is not waiting for a core.
const NOT_WAITING: u64 = u64::MAX;

/// A clock for tables not given one (host tests of other things).
fn no_clock() -> u64 {
    0
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    Free,
    Live,
    Exited,
}

pub struct Thread {
    pub life: Life,
    pub ctx: UserContext,
    pub entry: Option<fn(usize)>,
    pub arg: usize,
    /// Saves the whole FPU image at voluntary switches.
    pub sse: bool,
    /// Wake at this clock value (0: not sleeping on time).
    wake_at: u64,
    /// Wake when the word at this address differs from the value (0: none).
    watch: (u64, u64),
    /// An unblock came while the thread was not asleep: its next block
    /// returns at once.
    wake_pending: bool,
    /// The thread waiting in `join` for this one, or [`NONE`].
    pub joiner: usize,
    /// The core the table has it running on, or [`NONE`]: `current`
    /// seen from the thread, so a pick is checked against every core in
    /// one load (a scan of `current` walked all 128 cores per switch).
    on_core: usize,
    /// While blocked, lends its tickets to this thread (a lock's holder),
    /// or [`NONE`].
    pub lend_to: usize,
    /// Since when (global clock, ns) it has been runnable without running,
    /// or [`NOT_WAITING`].
    runnable_since: u64,
    /// Where the wait its last pick ended had begun (or [`NOT_WAITING`]):
    /// if it is handed back before it runs, that wait goes on
    /// ([`Thread::picked_but_not_run`]).
    wait_began: u64,
    /// Every wait it has had for a core (docs/metrics.md, "Wait time").
    pub waits: WaitHistogram,
    /// The currency its tickets are in (the table's id, see
    /// [`currencies`]) and how many: what a swap back to a policy with
    /// currencies gives it again.
    currency: CurrencyId,
    face: u32,
}

impl Thread {
    const FREE: Thread = Thread {
        life: Life::Free,
        ctx: UserContext::ZERO,
        entry: None,
        arg: 0,
        sse: false,
        wake_at: 0,
        watch: (0, 0),
        wake_pending: false,
        joiner: NONE,
        on_core: NONE,
        lend_to: NONE,
        currency: BASE_CURRENCY,
        face: 0,
        runnable_since: NOT_WAITING,
        wait_began: NOT_WAITING,
        waits: WaitHistogram::EMPTY,
    };

    /// Runnable from `at` on (the earliest such instant, if already so).
    fn runnable_from(&mut self, at: u64) {
        if self.runnable_since == NOT_WAITING {
            self.runnable_since = at;
        }
    }

    /// Runs from `now` on: ends its wait, if it was waiting.
    fn runs_from(&mut self, now: u64) {
        let since = core::mem::replace(&mut self.runnable_since, NOT_WAITING);
        self.wait_began = since;
        if since != NOT_WAITING {
            self.waits.record(now.saturating_sub(since));
        }
    }

    /// Picked, but handed back before it ran (its core's turn ended
    /// between the pick and the resume), runnable again since the hand-back:
    /// it waits on, from where the wait its pick ended began (if it had
    /// one: the control thread's are not recorded).
    /// The pick's record is taken back; one the sampler has already sent
    /// stays, and the whole wait is recorded again at its end (one wait
    /// too many, the longest still exact). Recording both halves instead
    /// lost the time between pick and hand-back, up to the rest of a turn,
    /// and cut a long wait in two (an audit: 10.05 ms read as 6.24 ms).
    fn picked_but_not_run(&mut self) {
        let began = core::mem::replace(&mut self.wait_began, NOT_WAITING);
        if began != NOT_WAITING {
            self.waits.undo_last();
            self.runnable_since = began;
        }
    }

    fn due(&self, now: u64, read: &dyn Fn(u64) -> u64) -> bool {
        self.wake_pending
            || (self.wake_at != 0 && self.wake_at <= now)
            || (self.watch.0 != 0 && read(self.watch.0) != self.watch.1)
    }

    fn has_waits(&self) -> bool {
        self.wake_pending || self.wake_at != 0 || self.watch.0 != 0
    }

    fn clear_waits(&mut self) {
        self.wake_at = 0;
        self.watch = (0, 0);
        self.wake_pending = false;
    }
}

/// Wakes sleeping `tid` in the policy, ending a ticket loan first; it
/// waits for a core from `at` on.
fn wake(p: &mut dyn Policy, t: &mut Thread, tid: usize, at: u64) {
    if core::mem::replace(&mut t.lend_to, NONE) != NONE {
        let _ = p.take_back(tid as u32);
    }
    if p.wake(tid as u32).is_ok() {
        t.runnable_from(at);
    }
}

/// What the table checks of itself (the soak reads these): a thread
/// picked while it runs on another core or is not alive, and threads the
/// table and its policy disagree about (lost, or unknown to the table).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    /// Full audits run (each pick is also checked).
    pub audits: u64,
    pub double_runs: u64,
    pub dead_picked: u64,
    /// Live threads the policy has no record of.
    pub lost: u64,
    /// Policy records of threads that are not live.
    pub ghosts: u64,
}

impl Audit {
    pub fn violations(&self) -> u64 {
        self.double_runs + self.dead_picked + self.lost + self.ghosts
    }
}

/// Every thread of the application, the one policy, who runs where.
pub struct Table {
    pub threads: Threads,
    /// Live threads (`Life::Live`).
    lives: usize,
    /// No slot below this one is free.
    free_from: usize,
    policy: Option<Box<dyn Policy>>,
    current: [usize; MAX_WORKERS],
    /// The threads that may have a wake-up condition set (a superset:
    /// members leave when checked), so a dispatch looks at the sleepers
    /// only, not at every slot.
    waiting: Bits,
    /// No member of `waiting` is due before this instant, unless one
    /// watches a word or has a wake-up pending (`untimed`): until then a
    /// dispatch skips the walk (most dispatches, when the only sleeper is
    /// the control thread between samples). Lowered as deadlines are set,
    /// recomputed by each walk.
    next_due: u64,
    untimed: bool,
    /// Per core, the sleeper's deadline it parked until, or its park's
    /// end ([`Table::park_until`]).
    watch: [u64; MAX_WORKERS],
    /// Walks of `waiting` made (skipped ones not counted).
    walks: u64,
    started: [u64; MAX_WORKERS],
    swaps: u64,
    /// Ticket loans the policy took (a blocked thread lending to a holder;
    /// a loan given again after a swap counts again).
    pub lends: u64,
    /// A thread has blocked lending its tickets: a swap gives the loans
    /// of those still blocked again.
    lenders: bool,
    /// The application's ticket currencies.
    currencies: Currencies,
    audit: Audit,
    /// The application's control thread (its `main`: samples, timed
    /// events, the console), or [`NONE`]. It is outside the policy: it runs
    /// first whenever it is runnable, so no weight given to the others can
    /// starve it (with tickets of 1e8 beside its 1 it never ran again), and
    /// its time is not in the policy's figures.
    control: usize,
    control_state: ThreadState,
    control_service_ns: u64,
    /// The longest single charge of a policy's thread so far (ns): issue
    /// 13 bounds it by a slot and its grace.
    longest_charge_ns: u64,
    /// The global clock (ns), for the instants threads start and stop
    /// waiting (`sys::now_ns` in the libOS).
    clock: fn() -> u64,
    /// The application's slot counts when [`Table::follow_slots`] last
    /// looked; `u64::MAX` before it first did.
    slots_seen: u64,
}

impl Default for Table {
    fn default() -> Self {
        Self::new()
    }
}

impl Table {
    pub const fn new() -> Table {
        Table {
            threads: Threads::new(),
            lives: 0,
            free_from: 0,
            policy: None,
            current: [NONE; MAX_WORKERS],
            waiting: Bits::new(),
            next_due: 0,
            untimed: false,
            watch: [0; MAX_WORKERS],
            walks: 0,
            started: [0; MAX_WORKERS],
            swaps: 0,
            lends: 0,
            lenders: false,
            currencies: Currencies::new(),
            audit: Audit {
                audits: 0,
                double_runs: 0,
                dead_picked: 0,
                lost: 0,
                ghosts: 0,
            },
            control: NONE,
            control_state: ThreadState::Sleeping,
            control_service_ns: 0,
            longest_charge_ns: 0,
            clock: no_clock,
            slots_seen: u64::MAX,
        }
    }

    /// The clock wait times are measured on.
    pub fn set_clock(&mut self, clock: fn() -> u64) {
        self.clock = clock;
    }

    /// Installs the first policy, or swaps to `policy` carrying every
    /// thread (weights, states, service, lag; running ones stay running).
    /// Returns the policy replaced (`None` for the first): the caller
    /// drops it after the runtime lock, not under it (see
    /// [`sched_api::swap`]).
    pub fn set_policy(
        &mut self,
        policy: Box<dyn Policy>,
    ) -> Result<Option<Box<dyn Policy>>, SchedError> {
        let old = self.reseat_policy(policy)?;
        if old.is_some() {
            self.swaps += 1;
        }
        Ok(old)
    }

    /// Keeps the policy's core count P (how many of the application's
    /// threads can run at once) at the number of cores it holds slots on.
    /// `slots_seen` is what the kernel counts of its slots (held, and
    /// taken back: a few loads); only when it moved since the last call is
    /// `capacity` asked (it walks every core's slot vector). Its own
    /// `slices` calls move it as much as the kernel's grants and
    /// revocations. Whether P changed; a count the policy refuses
    /// leaves it as it was.
    ///
    /// The policy is built for the cores held when the libOS starts or
    /// swaps; without this nothing told it later: a late-started scenario
    /// application begins on its first granted core while the kernel still
    /// grants it the others, `slices::hold`/`release`/`resize` move slots,
    /// and the kernel takes a repeat offender's.
    pub fn follow_slots(&mut self, slots_seen: u64, capacity: impl FnOnce() -> usize) -> bool {
        if core::mem::replace(&mut self.slots_seen, slots_seen) == slots_seen {
            return false;
        }
        let cores = capacity();
        match self.policy.as_mut() {
            Some(p) if p.cores() != cores => p.set_cores(cores).is_ok(),
            _ => false,
        }
    }

    /// Replaces the policy with `policy`, carrying every thread; not
    /// counted as a swap (a swap is this, counted: [`Table::set_policy`]).
    /// Alone, at the application's start: its own policy, seeded, in place
    /// of the run's.
    /// Returns the policy replaced, as [`Table::set_policy`] does.
    pub fn reseat_policy(
        &mut self,
        policy: Box<dyn Policy>,
    ) -> Result<Option<Box<dyn Policy>>, SchedError> {
        match self.policy.as_mut() {
            None => {
                self.policy = Some(policy);
                Ok(None)
            }
            Some(current) => {
                let old = sched_api::swap(current, policy)?;
                self.reseat_currencies_and_loans();
                Ok(Some(old))
            }
        }
    }

    /// The state of `tid`: the policy's, or the control thread's own.
    pub fn state(&self, tid: usize) -> Option<ThreadState> {
        if tid == self.control {
            return Some(self.control_state);
        }
        self.policy.as_ref()?.record(tid as u32).map(|r| r.state)
    }

    /// Takes a free slot for the application's control thread, outside the
    /// policy (see `control`); at most one.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn spawn_control(
        &mut self,
        entry: fn(usize),
        arg: usize,
        ctx: impl FnOnce(usize) -> UserContext,
    ) -> Option<usize> {
        self.spawn_control_with(entry, arg, |tid| Some(ctx(tid)))
    }

    /// As [`spawn_control`](Table::spawn_control); `ctx` may refuse the
    /// slot (no stack for it).
    pub fn spawn_control_with(
        &mut self,
        entry: fn(usize),
        arg: usize,
        ctx: impl FnOnce(usize) -> Option<UserContext>,
    ) -> Option<usize> {
        if self.control != NONE {
            return None;
        }
        let tid = self.free_slot()?;
        let ctx = ctx(tid)?;
        self.lives += 1;
        self.threads[tid] = Thread {
            life: Life::Live,
            ctx,
            entry: Some(entry),
            arg,
            ..Thread::FREE
        };
        self.control = tid;
        self.control_state = ThreadState::Runnable;
        self.control_service_ns = 0;
        Some(tid)
    }

    /// The control thread's id ([`NONE`] before it is spawned).
    pub fn control_tid(&self) -> usize {
        self.control
    }

    /// CPU time the control thread has had (ns).
    pub fn control_service_ns(&self) -> u64 {
        self.control_service_ns
    }

    /// The longest CPU time charged to a policy's thread in one stop (ns).
    pub fn longest_charge_ns(&self) -> u64 {
        self.longest_charge_ns
    }

    /// Wakes sleeping `tid`, runnable from `at`: the policy's thread
    /// (ending a ticket loan first), or the control thread.
    fn wake_thread(&mut self, tid: usize, at: u64) {
        if tid == self.control {
            self.control_state = ThreadState::Runnable;
        } else if let Some(p) = self.policy.as_mut() {
            wake(p.as_mut(), &mut self.threads[tid], tid, at);
        }
    }

    /// Takes a free slot for a runnable thread; `ctx(tid)` gives its
    /// first context.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn spawn(
        &mut self,
        entry: fn(usize),
        arg: usize,
        weight: u32,
        sse: bool,
        ctx: impl FnOnce(usize) -> UserContext,
    ) -> Option<usize> {
        self.spawn_with(entry, arg, weight, sse, |tid| Some(ctx(tid)))
    }

    /// As [`spawn`](Table::spawn); `ctx` may refuse the slot (no stack
    /// for it), and then nothing changes.
    pub fn spawn_with(
        &mut self,
        entry: fn(usize),
        arg: usize,
        weight: u32,
        sse: bool,
        ctx: impl FnOnce(usize) -> Option<UserContext>,
    ) -> Option<usize> {
        let tid = self.free_slot()?;
        let policy = self.policy.as_mut()?;
        let ctx = ctx(tid)?;
        policy.add(tid as u32, weight).ok()?;
        self.lives += 1;
        let runnable_since = (self.clock)();
        // A free slot holds `Thread::FREE` (`free`, `Threads::grow`): only
        // what differs is written, under the runtime lock every dispatch
        // waits for (a whole `Thread`, ~2 KB with its wait histogram, was
        // built and copied in).
        let t = &mut self.threads[tid];
        debug_assert!(t.life == Life::Free && t.waits.count() == 0);
        t.life = Life::Live;
        t.ctx = ctx;
        t.entry = Some(entry);
        t.arg = arg;
        t.sse = sse;
        t.runnable_since = runnable_since;
        Some(tid)
    }

    /// The lowest free slot, the table grown by a chunk when it has none
    /// (the lowest first: the slots ever used are always `0..n`, so the
    /// libOS maps stacks up to a high-water mark).
    fn free_slot(&mut self) -> Option<usize> {
        loop {
            let found = (self.free_from..self.threads.len())
                .find(|&tid| self.threads[tid].life == Life::Free);
            match found {
                Some(tid) => {
                    self.free_from = tid;
                    return Some(tid);
                }
                None => {
                    self.free_from = self.threads.len();
                    if !self.threads.grow() {
                        return None;
                    }
                }
            }
        }
    }

    /// Takes back thread `tid`, just spawned and never run (a spawn that
    /// could not be completed): out of the policy, its slot free.
    pub fn unspawn(&mut self, tid: usize) {
        let never_ran = self.threads.get(tid).is_some_and(|t| t.life == Life::Live)
            && self.current.iter().all(|&c| c != tid);
        if never_ran {
            if let Some(p) = self.policy.as_mut() {
                let _ = p.remove(tid as u32);
            }
            self.lives -= 1;
            self.free(tid);
        }
    }

    /// Frees slot `tid` (its thread has stopped for the last time).
    fn free(&mut self, tid: usize) {
        self.threads[tid] = Thread::FREE;
        self.free_from = self.free_from.min(tid);
    }

    /// Gives live thread `tid` `weight` tickets: of its currency if it is
    /// in one and the policy has currencies; otherwise base tickets (a
    /// thread in a currency then leaves it: see [`Table::set_currency`]).
    pub fn set_weight(&mut self, tid: usize, weight: u32) -> bool {
        let live = self.threads.get(tid).is_some_and(|t| t.life == Life::Live);
        // The control thread has no weight (it is outside the policy).
        let set = live
            && self
                .policy
                .as_mut()
                .is_some_and(|p| p.set_weight(tid as u32, weight).is_ok());
        if set {
            self.weight_set(tid, weight);
        }
        set
    }

    /// Blocked thread `tid` lends its tickets to `to` while it sleeps
    /// (given to the policy when it is charged as blocked).
    pub fn lend_while_blocked(&mut self, tid: usize, to: usize) {
        self.threads[tid].lend_to = to;
        self.lenders = true;
    }

    /// The thread running on `core`, or [`NONE`].
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn current(&self, core: usize) -> usize {
        self.current.get(core).copied().unwrap_or(NONE)
    }

    pub fn running_anywhere(&self) -> bool {
        self.current.iter().any(|&t| t != NONE)
    }

    pub fn live(&self) -> usize {
        self.lives
    }

    /// `tid` (about to block) wakes once the clock reaches `deadline`.
    pub fn wake_at(&mut self, tid: usize, deadline: u64) {
        self.threads[tid].wake_at = deadline.max(1);
        self.next_due = self.next_due.min(deadline.max(1));
        self.waiting.insert(tid);
    }

    /// `tid` (about to block) wakes once the word at `addr` differs from `old`.
    pub fn watch(&mut self, tid: usize, addr: u64, old: u64) {
        self.threads[tid].watch = (addr, old);
        self.untimed = true;
        self.waiting.insert(tid);
    }

    /// Wakes every sleeping thread whose condition holds at `now`
    /// (`read` reads a watched word). Looks only at threads with a
    /// condition set: a dispatch costs the same with 3 threads or 10,000.
    ///
    /// Inlined down to its first test (nothing watched, nothing due before
    /// `next_due`), which most dispatches stop at (a call for it cost a
    /// yield ~20 instructions); the walk is out of line.
    #[inline]
    pub fn wake_due(&mut self, now: u64, read: &dyn Fn(u64) -> u64) {
        if !self.untimed && now < self.next_due {
            return;
        }
        self.walk_waiting(now, read);
    }

    /// Until when `core`, with nothing to run at `now`, parks: `park_ns`
    /// from now, or less, to the earliest sleeper's deadline no other
    /// parked core is coming back for, when that comes first. Parked
    /// cores come back one a deadline, not all at each one: all coming
    /// back at every sleeper's deadline, they would queue for the runtime
    /// lock as yielding ones did. Without it, a sleeper due while every
    /// core runs a thread or is parked waited for the next park to end
    /// (scale-wakeups, 4 cores, det: median wait 94.2 µs, against 34.8 µs
    /// yielding; one core for the earliest sleeper only, 55.3 µs).
    pub fn park_until(&mut self, core: usize, now: u64, park_ns: u64) -> u64 {
        let plain = now.saturating_add(park_ns);
        self.watch[core] = 0;
        if self.next_due >= plain {
            return plain;
        }
        // A walk of the sleepers, made only when a core parks.
        let mut due = plain;
        let mut from = 0;
        while let Some(tid) = self.waiting.next_from(from) {
            from = tid + 1;
            let t = &self.threads[tid];
            let d = t.wake_at;
            if t.life == Life::Live && d > now && d < due && !self.watch.contains(&d) {
                due = d;
            }
        }
        self.watch[core] = due;
        due
    }

    /// `core` did not park after all (a park worked out for it that it
    /// never took): it watches for no sleeper's deadline.
    pub fn forget_park(&mut self, core: usize) {
        self.watch[core] = 0;
    }

    /// [`Table::wake_due`]'s walk of the sleepers.
    #[inline(never)]
    fn walk_waiting(&mut self, now: u64, read: &dyn Fn(u64) -> u64) {
        self.walks += 1;
        // Recomputed over the threads that stay (a condition set during
        // the walk lowers them as it is set).
        self.next_due = u64::MAX;
        self.untimed = false;
        let mut from = 0;
        while let Some(tid) = self.waiting.next_from(from) {
            from = tid + 1;
            let t = &self.threads[tid];
            if t.life != Life::Live || !t.has_waits() {
                self.waiting.remove(tid);
                continue;
            }
            let stays = !(t.due(now, read) && self.state(tid) == Some(ThreadState::Sleeping));
            if stays {
                let t = &self.threads[tid];
                self.untimed |= t.wake_pending || t.watch.0 != 0;
                if t.wake_at != 0 {
                    self.next_due = self.next_due.min(t.wake_at);
                }
            } else {
                // A timed sleep ends at its deadline (it has been runnable
                // since), anything else when it is seen to be due.
                let at = match t.wake_at {
                    0 => now,
                    deadline => deadline.min(now),
                };
                self.threads[tid].clear_waits();
                self.waiting.remove(tid);
                self.wake_thread(tid, at);
            }
        }
    }

    /// Picks the next thread for `core` and marks it running there since `now`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn start(&mut self, core: usize, now: u64) -> Option<usize> {
        let at = (self.clock)();
        self.start_at(core, now, at)
    }

    /// As [`start`](Table::start), the thread's wait for a core ending at
    /// `at` (global clock, read by the caller).
    ///
    /// Inlined, like [`Table::stop_ran_at`]: the dispatch calls each once
    /// per switch, and as calls, with their arguments marshalled and their
    /// registers saved, they cost a yield ~60 instructions more (+1.4 KB of
    /// code). Always: once the dispatch's body was inlined in its two
    /// callers, `#[inline]` alone left this one a call (~30 more).
    #[inline(always)]
    pub fn start_at(&mut self, core: usize, now: u64, at: u64) -> Option<usize> {
        let tid = if self.control != NONE && self.control_state == ThreadState::Runnable {
            self.control_state = ThreadState::Running(core);
            self.control
        } else {
            self.policy.as_mut()?.pick(core)? as usize
        };
        let before = core::mem::replace(&mut self.current[core], tid);
        if before != tid {
            if let Some(t) = self.threads.get_mut(before) {
                // Overwritten without a stop (only a broken caller does that).
                if t.on_core == core {
                    t.on_core = NONE;
                }
            }
        }
        // One look at the slot (this runs under the lock every core's
        // dispatch waits for).
        match self.threads.get_mut(tid) {
            None => self.audit.dead_picked += 1,
            Some(t) => {
                // The policy promises both; a broken one must not go
                // unnoticed.
                self.audit.double_runs += u64::from(t.on_core != NONE);
                self.audit.dead_picked += u64::from(t.life == Life::Free);
                if tid != self.control {
                    t.runs_from(at);
                }
                t.on_core = core;
            }
        }
        self.started[core] = now;
        Some(tid)
    }

    /// Ends the run of `tid` on `core` at `now`: charges the time it ran,
    /// frees an exited thread (waking its joiner), and wakes a thread that
    /// blocked with its condition already met. Returns the ns charged.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn stop(
        &mut self,
        core: usize,
        tid: usize,
        now: u64,
        end: RunEnd,
        read: &dyn Fn(u64) -> u64,
    ) -> u64 {
        self.stop_charging(core, tid, now, now, end, read)
    }

    /// As [`stop`](Table::stop), charging `clock - ` the value given to
    /// [`start`](Table::start) (the environment's CPU clock on `core`, so
    /// time off the core is not charged) and checking wake-ups at `now`.
    pub fn stop_charging(
        &mut self,
        core: usize,
        tid: usize,
        now: u64,
        clock: u64,
        end: RunEnd,
        read: &dyn Fn(u64) -> u64,
    ) -> u64 {
        let ran = clock.saturating_sub(self.started[core]);
        self.stop_ran(core, tid, ran, now, end, read);
        ran
    }

    /// Ends the run of `tid` on `core`, charging it `ran` ns (measured by
    /// the caller: the epilogue stops the charge at the revocation
    /// instant), and checks wake-ups at `now`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn stop_ran(
        &mut self,
        core: usize,
        tid: usize,
        ran: u64,
        now: u64,
        end: RunEnd,
        read: &dyn Fn(u64) -> u64,
    ) {
        self.stop_ran_at(core, tid, ran, now, now, end, read);
    }

    /// Ends the run of `tid`, picked for `core` but handed back at `at`
    /// before it was resumed there (see [`Thread::picked_but_not_run`]):
    /// charged `ran` ns (the dispatch's, from its start to the hand-back) as
    /// a preemption, and still waiting since before its pick.
    pub fn hand_back(
        &mut self,
        core: usize,
        tid: usize,
        ran: u64,
        at: u64,
        now: u64,
        read: &dyn Fn(u64) -> u64,
    ) {
        self.stop_ran_at(core, tid, ran, at, now, RunEnd::Preempted, read);
        // Only a thread the stop left waiting (not one that ended).
        if let Some(t) = self.threads.get_mut(tid) {
            if t.runnable_since != NOT_WAITING {
                t.picked_but_not_run();
            }
        }
    }

    /// As [`stop_ran`](Table::stop_ran) for a thread that left its core at
    /// `at` (global clock): a thread still runnable waits from then on.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn stop_ran_at(
        &mut self,
        core: usize,
        tid: usize,
        ran: u64,
        at: u64,
        now: u64,
        end: RunEnd,
        read: &dyn Fn(u64) -> u64,
    ) {
        let here = self.current[core] == tid;
        if here {
            self.current[core] = NONE;
        }
        // One look at the slot on the usual path (under the lock every
        // core's dispatch waits for; a second one for `on_core` cost a
        // switch ~15 instructions).
        let mut t = self.threads.get_mut(tid);
        if here {
            if let Some(t) = &mut t {
                t.on_core = NONE;
            }
        }
        if tid == self.control {
            self.stop_control(tid, ran, now, end, read);
            return;
        }
        let Some(p) = self.policy.as_mut() else {
            return;
        };
        self.longest_charge_ns = self.longest_charge_ns.max(ran);
        let t = t.expect("a thread slot");
        let exited = t.life == Life::Exited;
        let end = if exited { RunEnd::Exited } else { end };
        if p.charge(tid as u32, core, ran, end).is_err() && exited {
            let _ = p.remove(tid as u32);
        }
        if !exited && matches!(end, RunEnd::Preempted | RunEnd::Yielded) {
            t.runnable_from(at);
            return;
        }
        if exited {
            let joiner = self.threads[tid].joiner;
            self.free(tid);
            if joiner != NONE {
                self.unblock(joiner);
            }
        } else if end == RunEnd::Blocked && self.threads[tid].due(now, read) {
            // Its condition came before it slept: it never stopped wanting
            // the CPU.
            self.threads[tid].clear_waits();
            self.threads[tid].lend_to = NONE;
            if p.wake(tid as u32).is_ok() {
                self.threads[tid].runnable_from(at);
            }
        } else if end == RunEnd::Blocked && self.threads[tid].lend_to != NONE {
            // Asleep now: its tickets go to the thread it waits for.
            let to = self.threads[tid].lend_to;
            if p.lend(tid as u32, to as u32).is_ok() {
                self.lends += 1;
            }
        }
    }

    /// [`stop_ran`](Table::stop_ran) for the control thread: no policy.
    fn stop_control(
        &mut self,
        tid: usize,
        ran: u64,
        now: u64,
        end: RunEnd,
        read: &dyn Fn(u64) -> u64,
    ) {
        self.control_service_ns += ran;
        let t = &mut self.threads[tid];
        self.control_state = if t.life == Life::Exited {
            let joiner = t.joiner;
            self.free(tid);
            self.control = NONE;
            if joiner != NONE {
                self.unblock(joiner);
            }
            ThreadState::Sleeping
        } else if end == RunEnd::Blocked && !t.due(now, read) {
            ThreadState::Sleeping
        } else {
            if end == RunEnd::Blocked {
                t.clear_waits();
            }
            ThreadState::Runnable
        };
    }

    /// Whether `tid`, about to block, must really sleep (false: an
    /// unblock already came, and is consumed).
    pub fn block(&mut self, tid: usize) -> bool {
        !core::mem::take(&mut self.threads[tid].wake_pending)
    }

    /// Wakes `tid` if it sleeps (whatever it waits for), or makes its next
    /// block return at once. False if there is no such live thread.
    pub fn unblock(&mut self, tid: usize) -> bool {
        if self.threads.get(tid).is_none_or(|t| t.life != Life::Live) {
            return false;
        }
        if self.state(tid) == Some(ThreadState::Sleeping) {
            self.threads[tid].clear_waits();
            let at = (self.clock)();
            self.wake_thread(tid, at);
        } else {
            self.threads[tid].wake_pending = true;
            self.untimed = true;
            self.waiting.insert(tid);
        }
        true
    }

    /// Marks the calling thread exited (the slot is freed when it stops).
    pub fn exit(&mut self, tid: usize) {
        let t = &mut self.threads[tid];
        if t.life == Life::Live {
            self.lives -= 1;
        }
        t.life = Life::Exited;
    }

    /// `me` waits for `target` to end: true if it must block (it will be
    /// unblocked when `target` stops for the last time).
    pub fn join(&mut self, target: usize, me: usize) -> bool {
        match self.threads.get_mut(target) {
            Some(t) if t.life != Life::Free && target != me => {
                t.joiner = me;
                true
            }
            _ => false,
        }
    }

    /// What every sleeping thread waits for, for the one predicate.
    pub fn waits(&self) -> impl Iterator<Item = Wait> + '_ {
        let mut from = 0;
        core::iter::from_fn(move || {
            let tid = self.waiting.next_from(from)?;
            from = tid + 1;
            Some(&self.threads[tid])
        })
        .filter(|t| t.life == Life::Live)
        .flat_map(|t| {
            let time = (t.wake_at != 0).then_some(Wait::Until(t.wake_at));
            let word = (t.watch.0 != 0).then_some(Wait::Changed {
                addr: t.watch.0,
                old: t.watch.1,
            });
            time.into_iter().chain(word)
        })
    }

    /// Checks that the table and its policy agree on every thread (each
    /// live or exiting thread has a policy record, nothing else has one)
    /// and returns every check's count so far.
    pub fn audit(&mut self) -> Audit {
        if let Some(p) = self.policy.as_ref() {
            self.audit.audits += 1;
            for (tid, t) in self.threads.iter().enumerate() {
                match (t.life, p.record(tid as u32).is_some()) {
                    (Life::Live, false) if tid != self.control => self.audit.lost += 1,
                    (Life::Free, true) => self.audit.ghosts += 1,
                    _ => {}
                }
            }
        }
        self.audit
    }

    /// Per-thread figures for reports: (id, weight, service_ns, state) of
    /// live threads, the policy and the number of swaps so far.
    pub fn snapshot(&self, out: &mut [(u32, u32, u64, ThreadState)]) -> (usize, PolicyKind, u64) {
        let Some(p) = self.policy.as_ref() else {
            return (0, sched_registry::default_policy().kind, self.swaps);
        };
        let mut n = 0;
        for tid in (0..self.threads.len()).filter(|&t| self.threads[t].life == Life::Live) {
            if n == out.len() {
                break;
            }
            if let Some(r) = p.record(tid as u32) {
                out[n] = (r.id, r.weight, r.service_ns, r.state);
                n += 1;
            }
        }
        (n, p.kind(), self.swaps)
    }
}

#[cfg(test)]
mod tests;
