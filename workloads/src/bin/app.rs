//! A scenario application: runs the threads its launch arguments describe
//! (see `workloads::appspec`) under its scheduler, applies its timed events
//! and console commands, and reports cumulative per-thread samples.
//!
//! Records (`user`, `kind` field):
//! - `app_start`: `t_ns`, `policy`, `threads` (how many it will run);
//! - `sample`: `t_ns`, `rows` (how many rows the whole sample has, over
//!   its records), `policy`, `audit`: `[audits, double_runs,
//!   dead_picked, lost, ghosts]` (the thread table's self-checks so far,
//!   see `libos::threads::Audit`), `turns`: `[decided, run_on]` (turns
//!   the policy gave so far, and turns a preempted thread ran on without
//!   its decision because the runtime lock was busy: see
//!   `libos::threads::decided_turns`), `control_ns` (this control
//!   thread's CPU time so far: sampling and reporting are part of it),
//!   `longest_charge_ns` (the longest CPU time one of the policy's
//!   threads was charged in one stop so far), `running_ns` (the policy's
//!   threads' runs in progress on other cores at `t_ns`, on the global
//!   clock: not yet in their `cpu_ns`; see `libos::threads::Report`),
//!   all read in one hold of the runtime lock at `t_ns`,
//!   `th`: `[[id, tickets, cpu_ns,
//!   iterations, sleep_ns, core, alive_ns], ...]` (chunked so each record
//!   fits a report). `sleep_ns` is the thread's sleep up to `t_ns`,
//!   including a sleep still in progress, ending a timed sleep at its
//!   deadline (after it the thread wants the CPU again): the total of its
//!   `sleeps` intervals so far, and of any its log dropped; `alive_ns` is
//!   the time from its start to `t_ns` or to when it left;
//! - `sleeps`: `t_ns` (the sample's), `from_ns` (the previous sample's),
//!   `id`, `dropped` (sleeps its log lost so far), `iv`: `[start, end,
//!   ...]`, the thread's sleeps inside `(from_ns, t_ns]` as offsets from
//!   `from_ns` (several records when they do not fit one; none when it did
//!   not sleep);
//! - `waits`: `t_ns` (the sample's), `w`: per thread that waited since the
//!   last sample `[id, n, max_ns, imax_ns, bucket, count, ...]`: its waits
//!   for a core so far, the longest so far, the longest since the last
//!   sample, and the waits since the last sample per bucket of
//!   `abi::waits` (several records when they do not fit one; a thread's
//!   entry may continue, with the same head, in the next);
//! - `runs` (only with `thread_trace`: the records cost the application
//!   time, 0.7–1.7% of its threads' CPU in a 2-core det demo with 2 ms
//!   slices, mostly the serial console's bytes): `t_ns` (the sample's), `log_core` (whose switch log: the
//!   record's own `core` is the reporting core's), `dropped` (switches
//!   that core's log lost so far), `r`: `[t_ns, id, ...]`, who ran on the core
//!   from `t_ns` on since the last sample: the thread with scenario id
//!   `id`, `-1` none, `-2` a thread outside the scenario (the control
//!   thread) (several records when they do not fit one; none for a core
//!   with no switch);
//! - `sample_end`: `t_ns` (the sample's), `records` (how many records the
//!   sample sent before it, any the kernel refused included): a sample's
//!   last record, after its `sample`, `sleeps`, `waits` and `runs`
//!   records. The runner takes a sample as whole only if its `sample_end`
//!   came and that many of its records with it, and leaves out as cut any
//!   other (the run's end falls between a sample's records). It says
//!   nothing of sleep a thread's log lost (`dropped`): that is a finding
//!   of the run, not a cut. None for a sample that sent no record (before
//!   any thread started). `requests` records are not a sample's: they
//!   carry their own time and follow it;
//! - `app_event`: `t_ns`, `what` (`swap`, `tickets`, `join`, `leave`,
//!   `slices`), `thread`, `detail`, `source` (`scenario` or `console`),
//!   and for `console` the command's `seq` (its inbox sequence number, as
//!   below: the kernel's `console` event for it says whether it was typed
//!   or a script's);
//! - `requests_start` and `requests` (applications with `serve` threads):
//!   see `serve`;
//! - `app_event` with `what` `console`: the outcome of a console command
//!   the kernel forwarded: `seq` (its inbox sequence number, which the
//!   kernel's `console` event carries too), `detail` (the command as the
//!   application received it), `outcome` (`ok` or why not).
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

#[path = "app/serve.rs"]
mod serve;

use alloc::boxed::Box;
use alloc::string::String;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use abi::waits::WaitHistogram;
use alloc::vec::Vec;
use libos::threads::{self, PolicyKind};
use workloads::appspec::{Action, AppSpec, Behaviour};
use workloads::sleep_log::{SleepLog, SleepReport};
use workloads::text::push_list;

static SPEC: AtomicPtr<AppSpec> = AtomicPtr::new(core::ptr::null_mut());

/// What the application keeps of one spec thread: work done, its sleeps,
/// libOS thread id + 1 (0: not started), when it started and when it left
/// (0: has not), its tickets and its last reported service. On the heap,
/// one per thread the spec describes (up to 10,000: static arrays of that
/// many would weigh on every application's image).
struct PerThread {
    iterations: AtomicU64,
    /// Its own log if its behaviour sleeps, else [`NO_SLEEPS`] (8 KiB a
    /// log: 80 MiB for 10,000 CPU-bound threads that never sleep).
    sleep: &'static SleepLog,
    tid: AtomicUsize,
    /// Its slot went to a thread started after it left (see [`hand_over`]).
    gone: AtomicBool,
    started_ns: AtomicU64,
    left_ns: AtomicU64,
    tickets: AtomicU64,
    last_service: AtomicU64,
}

/// The sleep log of threads that never sleep: always empty.
static NO_SLEEPS: SleepLog = SleepLog::new();
static PER_THREAD: AtomicPtr<PerThread> = AtomicPtr::new(core::ptr::null_mut());

/// Spec thread `i`'s data.
fn thread_data(i: usize) -> &'static PerThread {
    assert!(i < spec().threads.len());
    // SAFETY: set once (a leaked slice of one per spec thread) before any
    // worker is spawned, never freed; `i` is in range.
    unsafe { &*PER_THREAD.load(Ordering::Acquire).add(i) }
}

/// Every spec thread's data, in spec order.
fn per_thread() -> impl Iterator<Item = &'static PerThread> {
    (0..spec().threads.len()).map(thread_data)
}

impl PerThread {
    fn new(tickets: u32, sleep: &'static SleepLog) -> PerThread {
        PerThread {
            iterations: AtomicU64::new(0),
            sleep,
            tid: AtomicUsize::new(0),
            gone: AtomicBool::new(false),
            started_ns: AtomicU64::new(0),
            left_ns: AtomicU64::new(0),
            tickets: AtomicU64::new(u64::from(tickets)),
            last_service: AtomicU64::new(0),
        }
    }

    /// Whether it has a sleep log of its own (a behaviour that sleeps):
    /// the sampler drains and reads only those (1,000 CPU-bound threads'
    /// empty logs cost it ~90 instructions each a sample, and ~20 each of
    /// its wakes every 50 ms).
    fn logs_sleeps(&self) -> bool {
        !core::ptr::eq(self.sleep, &NO_SLEEPS)
    }

    /// Its libOS thread while the slot is still its own: not once another
    /// spec thread was started in it.
    fn own_tid(&self) -> Option<usize> {
        if self.gone.load(Ordering::Relaxed) {
            return None;
        }
        self.tid.load(Ordering::Relaxed).checked_sub(1)
    }
}

/// Spec thread `new` was started in libOS slot `tid`: a spec thread that
/// held the slot before has left (the libOS frees an exited thread's slot
/// and gives the lowest free one to the next thread), and nothing in it is
/// that thread's any more (its service, its waits, its switches). `high`
/// is one past the highest slot handed out so far: a slot above it was
/// nobody's, and its start looks at no other thread (10,000 threads start
/// without a walk each).
fn hand_over<'a>(
    all: impl Iterator<Item = &'a PerThread>,
    new: usize,
    tid: usize,
    high: &mut usize,
) {
    if tid >= *high {
        *high = tid + 1;
        return;
    }
    for (i, p) in all.enumerate() {
        if i != new && p.tid.load(Ordering::Relaxed) == tid + 1 {
            p.gone.store(true, Ordering::Relaxed);
        }
    }
}

fn init_per_thread(spec: &AppSpec) {
    let all: Vec<PerThread> = spec
        .threads
        .iter()
        .map(|t| {
            PerThread::new(
                t.tickets,
                match t.behaviour {
                    Behaviour::Cpu | Behaviour::Lock { .. } => &NO_SLEEPS,
                    _ => Box::leak(Box::new(SleepLog::new())),
                },
            )
        })
        .collect();
    PER_THREAD.store(
        Box::leak(all.into_boxed_slice()).as_mut_ptr(),
        Ordering::Release,
    );
}
/// The word `watch` threads sleep on and `poke` threads change, and when
/// it last changed (when a watcher woken by it became runnable).
static SHARED_WORD: AtomicU64 = AtomicU64::new(0);
static POKED_NS: AtomicU64 = AtomicU64::new(0);
/// The application's lock: holder's libOS thread id + 1, or 0 when free.
static LOCK_HOLDER: AtomicUsize = AtomicUsize::new(0);
/// Threads blocked on the lock, one bit per libOS thread id.
static LOCK_WAITERS: [AtomicU64; threads::MAX_THREADS / 64] =
    [const { AtomicU64::new(0) }; threads::MAX_THREADS / 64];

fn lock() {
    let me = threads::self_id();
    let (word, bit) = (&LOCK_WAITERS[me / 64], 1u64 << (me % 64));
    loop {
        if LOCK_HOLDER
            .compare_exchange(0, me + 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
        // Announce, then look again: an unlock either sees the bit (and
        // unblocks us, possibly before we sleep) or happened before the look.
        word.fetch_or(bit, Ordering::SeqCst);
        match LOCK_HOLDER.load(Ordering::SeqCst) {
            0 => {}
            holder => threads::block_lending(holder - 1),
        }
        word.fetch_and(!bit, Ordering::SeqCst);
    }
}

fn unlock() {
    LOCK_HOLDER.store(0, Ordering::SeqCst);
    for (k, word) in LOCK_WAITERS.iter().enumerate() {
        let mut bits = word.load(Ordering::SeqCst);
        while bits != 0 {
            threads::unblock(k * 64 + bits.trailing_zeros() as usize);
            bits &= bits - 1;
        }
    }
}

/// When the application started (its time 0 for the scenario's times).
static T0: AtomicU64 = AtomicU64::new(0);

fn spec() -> &'static AppSpec {
    // SAFETY: set once by the main thread before any worker is spawned,
    // never freed.
    unsafe { &*SPEC.load(Ordering::Acquire) }
}

fn at_ms(ms: u64) -> u64 {
    T0.load(Ordering::Relaxed) + ms * 1_000_000
}

/// Sleeps until `deadline`, counting the time until then as not wanting
/// the CPU (from the deadline on the thread is runnable, waiting for it).
fn sleep_until(i: usize, deadline: u64) {
    thread_data(i).sleep.begin(libos::sys::now_ns(), deadline);
    threads::sleep_until(deadline);
    thread_data(i).sleep.end(libos::sys::now_ns());
}

/// Counts iterations until the clock reaches `until` (checked every 256).
fn compute_until(i: usize, until: u64) {
    loop {
        for _ in 0..256 {
            thread_data(i).iterations.fetch_add(1, Ordering::Relaxed);
        }
        if libos::sys::now_ns() >= until {
            return;
        }
    }
}

fn worker(i: usize) {
    let t = spec().threads[i];
    let leave = t.leave_ms.map_or(u64::MAX, at_ms);
    let mut rng = spec().seed ^ (u64::from(t.id) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let quantum = libos::sys::sysinfo().slice_ns;
    while libos::sys::now_ns() < leave {
        let now = libos::sys::now_ns();
        match t.behaviour {
            Behaviour::Cpu => compute_until(i, now.saturating_add(1_000_000).min(leave)),
            Behaviour::Sleep { run_us, sleep_us } => {
                compute_until(i, now + run_us * 1000);
                sleep_until(i, libos::sys::now_ns() + sleep_us * 1000);
            }
            Behaviour::Fraction { permille } => {
                compute_until(i, now + quantum * permille / 1000);
                sleep_until(i, now + quantum);
            }
            Behaviour::Bursty { on_us, off_us } => {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                compute_until(i, now + (rng % (2 * on_us + 1)) * 1000);
                sleep_until(
                    i,
                    libos::sys::now_ns() + (rng >> 32) % (2 * off_us + 1) * 1000,
                );
            }
            Behaviour::Watch => {
                let seen = SHARED_WORD.load(Ordering::Acquire);
                thread_data(i).sleep.begin(libos::sys::now_ns(), u64::MAX);
                threads::sleep_until_changed(&SHARED_WORD, seen);
                let poked = POKED_NS.load(Ordering::Acquire);
                thread_data(i).sleep.end(libos::sys::now_ns().min(poked));
                thread_data(i).iterations.fetch_add(1, Ordering::Relaxed);
            }
            Behaviour::Serve => {
                let requests = spec()
                    .requests
                    .expect("validated: serve threads have requests");
                serve::serve(
                    &requests,
                    spec().seed,
                    leave,
                    &thread_data(i).iterations,
                    |t| sleep_until(i, t),
                );
            }
            Behaviour::Lock { hold_us, think_us } => {
                lock();
                compute_until(i, libos::sys::now_ns() + hold_us * 1000);
                unlock();
                compute_until(i, libos::sys::now_ns() + think_us * 1000);
            }
            Behaviour::Poke { period_us } => {
                sleep_until(i, now + period_us * 1000);
                POKED_NS.store(libos::sys::now_ns(), Ordering::Release);
                SHARED_WORD.fetch_add(1, Ordering::Release);
                thread_data(i).iterations.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    thread_data(i)
        .left_ns
        .store(libos::sys::now_ns(), Ordering::Relaxed);
    event("leave", t.id, "", Asker::Scenario);
}

/// Who asked for a change the application reports: its scenario's plan,
/// or a console command the kernel forwarded, by its inbox number. The
/// application cannot tell a typed command from a console script's; the
/// kernel's `console` event for that number can, so the number goes with
/// the change.
#[derive(Clone, Copy)]
enum Asker {
    Scenario,
    Console(u64),
}

fn event(what: &str, thread: u32, detail: &str, asker: Asker) {
    let t_ns = libos::sys::now_ns();
    let head = "\"kind\":\"app_event\",\"t_ns\":";
    match asker {
        Asker::Scenario => {
            libos::report!(
                "{head}{t_ns},\"what\":\"{what}\",\"thread\":{thread},\"detail\":\"{detail}\",\"source\":\"scenario\""
            );
        }
        Asker::Console(seq) => {
            libos::report!(
                "{head}{t_ns},\"what\":\"{what}\",\"thread\":{thread},\"detail\":\"{detail}\",\"source\":\"console\",\"seq\":{seq}"
            );
        }
    }
}

/// Swaps to `to`; `Err` when the libOS refused.
fn swap(to: PolicyKind, asker: Asker) -> Result<(), &'static str> {
    let (_, from, _) = threads::snapshot(&mut []);
    if from == to {
        return Ok(());
    }
    if !threads::swap_policy(to) {
        return Err("the libOS refused the swap");
    }
    let detail = libos::fmt::format(format_args!("{} -> {}", from.name(), to.name()));
    event("swap", 0, detail.as_str(), asker);
    Ok(())
}

fn set_tickets(id: u32, tickets: u32, asker: Asker) -> bool {
    let Some(i) = spec().threads.iter().position(|t| t.id == id) else {
        return false;
    };
    let old = thread_data(i)
        .tickets
        .swap(u64::from(tickets), Ordering::Relaxed);
    if let Some(tid) = thread_data(i).own_tid() {
        threads::set_weight(tid, tickets);
    }
    let detail = libos::fmt::format(format_args!("{old} -> {tickets}"));
    event("tickets", id, detail.as_str(), asker);
    true
}

/// Carries out console command `text`, inbox message `seq`, which the
/// kernel forwarded: `swap <policy>`, `tickets <thread name or id> <n>`,
/// `list`. `Err` says why not.
fn console_command(text: &str, seq: u64) -> Result<(), String> {
    let mut words = text.split_ascii_whitespace();
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("swap"), Some(p), None, None) => {
            let to = threads::policy_named(p).ok_or_else(|| {
                let names = libos::sched_registry::names_sentence();
                alloc::format!("no scheduler `{p}` ({names})")
            })?;
            swap(to, Asker::Console(seq)).map_err(String::from)
        }
        (Some("tickets"), Some(who), Some(n), None) => {
            let id = spec()
                .thread_named(who)
                .ok_or_else(|| alloc::format!("no thread `{who}` (a thread's name or id)"))?;
            let n = n
                .parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| alloc::format!("tickets must be 1..=4294967295, not `{n}`"))?;
            set_tickets(id, n, Asker::Console(seq))
                .then_some(())
                .ok_or_else(|| alloc::format!("no thread {id}"))
        }
        (Some("list"), None, None, None) => {
            list();
            Ok(())
        }
        _ => Err(String::from("unknown command or wrong arguments")),
    }
}

/// Text safe inside a JSON string of a record.
fn json_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// Console commands the kernel forwarded, each answered with its outcome.
fn inbox(seen: &mut u64) {
    let inbox = libos::sys::inbox();
    let written = inbox.written.load(Ordering::Acquire);
    *seen = (*seen).max(written.saturating_sub(abi::shared::INBOX_SLOTS as u64));
    while *seen < written {
        let m = &inbox.messages[*seen as usize % abi::shared::INBOX_SLOTS];
        let text =
            core::str::from_utf8(&m.text[..(m.len as usize).min(m.text.len())]).unwrap_or("");
        let outcome = match console_command(text, *seen) {
            Ok(()) => String::from("ok"),
            Err(why) => {
                libos::log!("console: `{text}`: {why}");
                why
            }
        };
        libos::report!(
            "\"kind\":\"app_event\",\"t_ns\":{},\"what\":\"console\",\"thread\":0,\"seq\":{},\"detail\":\"{}\",\"outcome\":\"{}\",\"source\":\"console\"",
            libos::sys::now_ns(),
            *seen,
            json_safe(text),
            json_safe(&outcome)
        );
        *seen += 1;
    }
}

fn list() {
    let (_, policy, swaps) = threads::snapshot(&mut []);
    libos::log!("policy {} ({swaps} swaps so far)", policy.name());
    for (i, t) in spec().threads.iter().enumerate() {
        libos::log!(
            "  thread {} ({}) tickets {} {:?} iterations {} {}",
            t.id,
            spec().name_of(t.id).unwrap_or("-"),
            thread_data(i).tickets.load(Ordering::Relaxed),
            t.behaviour,
            thread_data(i).iterations.load(Ordering::Relaxed),
            if thread_data(i).tid.load(Ordering::Relaxed) == 0 {
                "not started"
            } else {
                "started"
            }
        );
    }
}

/// The records the sample being sent has sent so far, any the kernel
/// refused included: its `sample_end` says how many (only the control
/// thread samples).
static SAMPLE_RECORDS: AtomicU64 = AtomicU64::new(0);

/// Sends one of a sample's records (`kind`, for the log if the kernel
/// refuses it), counted for the sample's `sample_end`.
fn send_sample_record(record: &str, kind: &str) {
    SAMPLE_RECORDS.fetch_add(1, Ordering::Relaxed);
    if libos::sys::report(record).is_err() {
        libos::log!("{kind} record refused ({} bytes)", record.len());
    }
}

/// One `sample` record per chunk of threads that fits a report, then the
/// threads' sleeps since the last sample (at `from`), their waits, who
/// ran on each core, and last its `sample_end`; returns its time.
fn sample(
    from: u64,
    sleeps: &mut [SleepReport],
    waits: &mut Waits,
    switches: &mut Switches,
) -> u64 {
    // On the heap: the control thread's stack is small.
    let mut table =
        alloc::vec![(0u32, 0u32, 0u64, threads::ThreadState::Runnable); spec().threads.len() + 1];
    // Every figure as of one instant, the runs in progress then included
    // (`threads::report`): the sample's time is that instant.
    let r = threads::report(&mut table);
    let (n, policy, a, now) = (r.rows, r.policy, r.audit, r.at_ns);
    let (decided, run_on) = threads::decided_turns();
    let mut th = String::new();
    // Every record says how many rows the sample has, so the runner can
    // tell a sample the run's end cut between its records from a whole one
    // (threads only ever start: the loop below sends at least these).
    let rows = (0..spec().threads.len())
        .filter(|&i| thread_data(i).tid.load(Ordering::Relaxed) != 0)
        .count();
    // Formatted here, not by `report!` (whose stack buffer holds 480
    // bytes): each record is filled up to the kernel's limit.
    let head = alloc::format!(
        "\"kind\":\"sample\",\"t_ns\":{now},\"rows\":{rows},\"policy\":\"{}\",\"audit\":[{},{},{},{},{}],\"turns\":[{decided},{run_on}],\"control_ns\":{},\"longest_charge_ns\":{},\"running_ns\":{},\"th\":[",
        policy.name(),
        a.audits,
        a.double_runs,
        a.dead_picked,
        a.lost,
        a.ghosts,
        r.control_ns,
        r.longest_charge_ns,
        r.running_ns
    );
    // What one record's rows may take: the limit less the header and `]`.
    let room = abi::syscall::MAX_MESSAGE - head.len() - 1;
    let mut record = String::with_capacity(abi::syscall::MAX_MESSAGE);
    let mut flush = |th: &mut String| {
        if !th.is_empty() {
            record.clear();
            record.push_str(&head);
            record.push_str(th);
            record.push(']');
            send_sample_record(&record, "sample");
            th.clear();
        }
    };
    let mut row = String::new();
    // The sleeps first: a row's sleep_ns is theirs, up to `now`.
    let intervals: Vec<Vec<(u64, u64)>> = sleeps
        .iter_mut()
        .enumerate()
        .map(|(i, r)| {
            if thread_data(i).logs_sleeps() {
                r.take(thread_data(i).sleep, from, now)
            } else {
                Vec::new()
            }
        })
        .collect();
    // Where each libOS thread is in the snapshot, which lists them by id:
    // one pass here rather than a search per row (~70 instructions each).
    let listed = listed_at(&table[..n]);
    for (i, t) in spec().threads.iter().enumerate() {
        let p = thread_data(i);
        let Some(tid) = p.tid.load(Ordering::Relaxed).checked_sub(1) else {
            continue;
        };
        // A thread that left keeps its last service (it is no longer listed,
        // or its slot is a later thread's).
        let service = p.own_tid().and_then(|tid| {
            listed
                .get(tid)
                .and_then(|&k| table[..n].get(k as usize))
                .map(|e| e.2)
        });
        // Its tickets as given, of its currency if it is in one: the
        // figures value them through the scenario's currencies.
        let tickets = p.tickets.load(Ordering::Relaxed);
        let cpu = match service {
            Some(s) => {
                p.last_service.store(s, Ordering::Relaxed);
                s
            }
            None => p.last_service.load(Ordering::Relaxed),
        };
        let alive = match p.left_ns.load(Ordering::Relaxed) {
            0 => now,
            left => left.min(now),
        }
        .saturating_sub(p.started_ns.load(Ordering::Relaxed));
        row.clear();
        row.push('[');
        push_list(
            &mut row,
            &[
                u64::from(t.id),
                tickets,
                cpu,
                p.iterations.load(Ordering::Relaxed),
                sleeps[i].asleep_ns(p.sleep),
                threads::last_core(tid) as u64,
                alive,
            ],
        );
        row.push(']');
        if !th.is_empty() && th.len() + 1 + row.len() > room {
            flush(&mut th);
        }
        if !th.is_empty() {
            th.push(',');
        }
        th.push_str(&row);
    }
    flush(&mut th);
    for (i, t) in spec().threads.iter().enumerate() {
        if thread_data(i).tid.load(Ordering::Relaxed) != 0 {
            report_sleeps(
                t.id,
                from,
                now,
                &intervals[i],
                thread_data(i).sleep.dropped().0,
            );
        }
    }
    let live: Vec<(usize, u32, usize)> = spec()
        .threads
        .iter()
        .enumerate()
        .filter_map(|(i, t)| Some((i, t.id, thread_data(i).own_tid()?)))
        .collect();
    waits.add_all(&live, now);
    waits.flush(now);
    if spec().thread_trace {
        switches.report(now);
    }
    // The sample's records are all sent: the runner tells a whole sample
    // from one the run's end cut by this record, not by inference.
    let records = SAMPLE_RECORDS.swap(0, Ordering::Relaxed);
    if records > 0 {
        libos::report!("\"kind\":\"sample_end\",\"t_ns\":{now},\"records\":{records}");
    }
    now
}

/// Per libOS thread id, its index in `listed` (a snapshot's rows, by id);
/// `u32::MAX` for an id not listed.
fn listed_at(listed: &[(u32, u32, u64, threads::ThreadState)]) -> Vec<u32> {
    let mut at = alloc::vec![u32::MAX; listed.last().map_or(0, |e| e.0 as usize + 1)];
    for (k, e) in listed.iter().enumerate() {
        at[e.0 as usize] = k as u32;
    }
    at
}

/// Who ran on each core since the last sample, drained from the libOS's
/// per-core switch logs (`libos::threads::drain_switches`) as often as the
/// sleep logs and reported with each sample (kept on the heap: the
/// control thread's stack is small).
struct Switches {
    /// Per core: `(t_ns, id)` as the `runs` record gives them.
    cores: Vec<Vec<(u64, i64)>>,
    dropped: Vec<u64>,
}

impl Switches {
    fn new() -> Switches {
        Switches {
            cores: (0..libos::rt::MAX_WORKERS).map(|_| Vec::new()).collect(),
            dropped: alloc::vec![0; libos::rt::MAX_WORKERS],
        }
    }

    /// Moves every core's new switches here, each libOS thread named by
    /// its scenario id while the mapping is current.
    fn drain(&mut self) {
        for (core, log) in self.cores.iter_mut().enumerate() {
            self.dropped[core] = threads::drain_switches(core, |t, tid| {
                let id = match tid {
                    None => -1,
                    Some(tid) => per_thread()
                        .position(|x| x.own_tid() == Some(tid))
                        .and_then(|i| spec().threads.get(i))
                        .map_or(-2, |t| i64::from(t.id)),
                };
                log.push((t, id));
            });
        }
    }

    /// `runs` records of what was drained, for the sample at `t`.
    fn report(&mut self, t: u64) {
        self.drain();
        let mut r = String::new();
        for (core, log) in self.cores.iter_mut().enumerate() {
            let dropped = self.dropped[core];
            let flush = |r: &mut String| {
                let record = alloc::format!(
                    "\"kind\":\"runs\",\"t_ns\":{t},\"log_core\":{core},\"dropped\":{dropped},\"r\":[{r}]"
                );
                send_sample_record(&record, "runs");
                r.clear();
            };
            for &(at, id) in log.iter() {
                // A pair is at most 32 bytes, the rest of the record ~190.
                if r.len() > 760 {
                    flush(&mut r);
                }
                let sep = if r.is_empty() { "" } else { "," };
                let _ = write!(r, "{sep}{at},{id}");
            }
            if !r.is_empty() {
                flush(&mut r);
            }
            log.clear();
        }
    }
}

/// What the sampler last reported of each thread's waits, to report the
/// waits since then (kept on the heap: the control thread's stack is small).
struct Waits {
    seen: Vec<WaitHistogram>,
    /// The buckets that grew since the last sample, and by how much.
    grew: Vec<(usize, u32)>,
    /// The record being filled: `[id, n, max_ns, imax_ns, bucket, count,
    /// ...]` per thread, comma-separated.
    w: String,
    /// One thread's `[id, n, max_ns, imax_ns`, repeated when its buckets
    /// continue in the next record.
    head: String,
    /// The chunk being read (`add_all`).
    batch: Vec<threads::WaitsSince>,
}

/// Threads whose waits the sampler reads in one hold of the runtime lock.
const WAITS_CHUNK: usize = 64;

impl Waits {
    fn new(threads: usize) -> Waits {
        Waits {
            seen: (0..threads).map(|_| WaitHistogram::EMPTY).collect(),
            grew: Vec::with_capacity(abi::waits::BUCKETS),
            w: String::new(),
            head: String::new(),
            batch: Vec::with_capacity(WAITS_CHUNK),
        }
    }

    /// Adds the waits since the last sample of each `(i, id, tid)` (spec
    /// thread `i`, its `id`, its libOS thread `tid`), per bucket, to the
    /// records for time `t` (sending each when full; a thread's entry may
    /// continue in the next record). Read under the runtime lock in
    /// chunks of [`WAITS_CHUNK`] threads, one hold a chunk.
    fn add_all(&mut self, threads_now: &[(usize, u32, usize)], t: u64) {
        let mut grew = core::mem::take(&mut self.grew);
        for chunk in threads_now.chunks(WAITS_CHUNK) {
            self.batch.clear();
            self.batch
                .extend(chunk.iter().map(|&(i, _, tid)| threads::WaitsSince {
                    tid,
                    seen: core::mem::replace(&mut self.seen[i], WaitHistogram::EMPTY),
                    imax: None,
                    grew: 0..0,
                }));
            let before: Vec<u64> = self.batch.iter().map(|e| e.seen.count()).collect();
            threads::waits_since_each(&mut self.batch, &mut grew);
            let batch = core::mem::take(&mut self.batch);
            for ((e, &(i, id, _)), before) in batch.into_iter().zip(chunk).zip(before) {
                if let Some(imax) = e.imax.filter(|_| e.seen.count() != before) {
                    self.record(id, &e.seen, imax, &grew[e.grew.clone()], t);
                }
                self.seen[i] = e.seen;
            }
        }
        self.grew = grew;
    }

    /// One thread's entry: its totals, then each grown bucket.
    fn record(&mut self, id: u32, seen: &WaitHistogram, imax: u64, grew: &[(usize, u32)], t: u64) {
        let head = &mut self.head;
        head.clear();
        head.push('[');
        push_list(head, &[u64::from(id), seen.count(), seen.max_ns(), imax]);
        if !self.w.is_empty() {
            self.w.push(',');
        }
        self.w.push_str(head);
        for &(k, increase) in grew {
            // A pair is at most 15 bytes, the rest of the record ~150.
            if self.w.len() > 800 {
                self.w.push(']');
                Self::send(&mut self.w, t);
                self.w.push_str(head);
            }
            self.w.push(',');
            push_list(&mut self.w, &[k as u64, u64::from(increase)]);
        }
        self.w.push(']');
        if self.w.len() > 700 {
            Self::send(&mut self.w, t);
        }
    }

    /// Sends what `add` gathered for time `t`.
    fn flush(&mut self, t: u64) {
        Self::send(&mut self.w, t);
    }

    fn send(w: &mut String, t: u64) {
        if w.is_empty() {
            return;
        }
        let record = alloc::format!("\"kind\":\"waits\",\"t_ns\":{t},\"w\":[{w}]");
        send_sample_record(&record, "waits");
        w.clear();
    }
}

/// `sleeps` records for thread `id`'s sleep intervals in `(from, to]`.
fn report_sleeps(id: u32, from: u64, to: u64, intervals: &[(u64, u64)], dropped: u64) {
    if intervals.is_empty() && dropped == 0 {
        return;
    }
    let mut iv = String::new();
    let flush = |iv: &mut String| {
        let record = alloc::format!(
            "\"kind\":\"sleeps\",\"t_ns\":{to},\"from_ns\":{from},\"id\":{id},\"dropped\":{dropped},\"iv\":[{iv}]"
        );
        send_sample_record(&record, "sleeps");
        iv.clear();
    };
    for &(start, end) in intervals {
        // An interval is at most 21 bytes, the rest of the record ~180.
        if iv.len() > 780 {
            flush(&mut iv);
        }
        let sep = if iv.is_empty() { "" } else { "," };
        let _ = write!(iv, "{sep}{},{}", start - from, end - from);
    }
    flush(&mut iv);
}

fn main_thread(_: usize) {
    let spec = match AppSpec::parse(libos::sys::args()) {
        Ok(s) => Box::leak(Box::new(s)),
        Err(e) => {
            libos::log!("bad application arguments, line {}: {}", e.line, e.what);
            libos::sys::exit(2);
        }
    };
    init_per_thread(spec);
    SPEC.store(spec, Ordering::Release);
    T0.store(libos::sys::now_ns(), Ordering::Relaxed);
    // The main thread sleeps between samples; a high weight makes it run
    // promptly when it wakes and costs nothing while it sleeps.
    threads::set_weight(threads::self_id(), 1000);
    // Its own policy, in place of the run's, seeded with the scenario's
    // seed: the seed drives the policy's draws (lottery), so runs with
    // different seeds are different trials. Not a swap: none is reported
    // (a scenario naming lottery showed a swap from stride at its start).
    let mut policy = spec.policy.unwrap_or_else(threads::requested_policy);
    if !threads::start_policy(spec.seed, policy) {
        libos::log!(
            "could not start under {} seeded with {}",
            policy.name(),
            spec.seed
        );
        // The run's policy, seeded at least (`app_start` says which runs,
        // and the soak's audit flags it).
        policy = threads::requested_policy();
        if !threads::start_policy(spec.seed, policy) {
            libos::log!("the run's {} not seeded either", policy.name());
            let (_, running, _) = threads::snapshot(&mut []);
            policy = running;
        }
    }
    // The scenario's ticket currencies, in its order: the libOS numbers
    // them as the arguments do (1, 2, ...). Under a policy without them
    // (refused) every thread starts in the base currency at its tickets.
    let currencies =
        spec.currencies.iter().enumerate().all(|(k, c)| {
            match threads::create_currency(c.parent, c.funding) {
                Ok(id) => id as usize == k + 1,
                Err(why) => {
                    libos::log!("currency {}: {why}", k + 1);
                    false
                }
            }
        });
    libos::report!(
        "\"kind\":\"app_start\",\"t_ns\":{},\"policy\":\"{}\",\"threads\":{}",
        T0.load(Ordering::Relaxed),
        policy.name(),
        spec.threads.len()
    );
    let mut requests = spec.requests.map(|r| {
        serve::start(&r, spec.seed, spec.core_speed);
        serve::Reporter::new(r, spec.seed)
    });
    let sample_ns = spec.sample_ms * 1_000_000;
    let mut next_sample = T0.load(Ordering::Relaxed);
    let mut last_sample = next_sample;
    let mut sleeps: Vec<SleepReport> = spec
        .threads
        .iter()
        .map(|_| SleepReport::default())
        .collect();
    let sleepers: Vec<usize> = (0..spec.threads.len())
        .filter(|&i| thread_data(i).logs_sleeps())
        .collect();
    let mut waits = Waits::new(spec.threads.len());
    let mut switches = Switches::new();
    if spec.thread_trace {
        threads::log_switches();
    }
    let mut next_event = 0;
    let mut seen = 0;
    // One past the highest libOS slot a spec thread was started in.
    let mut slots_high = 0;
    // The spec threads not started yet, by join time: each wake looks at
    // the due ones only, not at every thread (1,000 threads, a wake every
    // 50 ms at least). One that could not be started stays, tried again.
    let mut unstarted: Vec<usize> = (0..spec.threads.len()).collect();
    unstarted.sort_by_key(|&i| spec.threads[i].join_ms);
    loop {
        let now = libos::sys::now_ns();
        let due = unstarted.partition_point(|&i| now >= at_ms(spec.threads[i].join_ms));
        let mut starting: Vec<usize> = unstarted.drain(..due).collect();
        starting.sort_unstable();
        let mut failed = Vec::new();
        for i in starting {
            let t = &spec.threads[i];
            thread_data(i).started_ns.store(now, Ordering::Relaxed);
            let started = if t.currency != 0 && currencies {
                threads::spawn_in_currency(worker, i, t.currency, t.tickets)
            } else {
                threads::spawn(worker, i, t.tickets)
            };
            match started {
                Some(tid) => {
                    thread_data(i).tid.store(tid + 1, Ordering::Relaxed);
                    hand_over(per_thread(), i, tid, &mut slots_high);
                }
                None => {
                    libos::log!("thread {} could not be started", t.id);
                    failed.push(i);
                }
            }
            if t.join_ms > 0 {
                event("join", t.id, "", Asker::Scenario);
            }
        }
        failed.sort_by_key(|&i| spec.threads[i].join_ms);
        unstarted.splice(0..0, failed);
        while let Some(e) = spec
            .events
            .get(next_event)
            .filter(|e| now >= at_ms(e.at_ms))
        {
            match e.action {
                Action::Swap(p) => {
                    if let Err(why) = swap(p, Asker::Scenario) {
                        libos::log!("swap to {}: {why}", p.name());
                    }
                }
                Action::Tickets { thread, tickets } => {
                    set_tickets(thread, tickets, Asker::Scenario);
                }
                Action::Slices(n) => match libos::slices::resize(n as usize) {
                    Ok(before) => {
                        let detail = libos::fmt::format(format_args!("{before} -> {n} per core"));
                        event("slices", 0, detail.as_str(), Asker::Scenario);
                    }
                    Err(e) => {
                        libos::log!("slices -> {n}: refused ({e:?})");
                        event("slices", 0, "refused", Asker::Scenario);
                    }
                },
            }
            next_event += 1;
        }
        inbox(&mut seen);
        // Often enough that no thread's log fills (see `LOG_SLOTS`).
        for &i in &sleepers {
            sleeps[i].drain(thread_data(i).sleep);
        }
        if spec.thread_trace {
            switches.drain();
        }
        if now >= next_sample {
            last_sample = sample(last_sample, &mut sleeps, &mut waits, &mut switches);
            if let Some(r) = &mut requests {
                r.report();
            }
            next_sample += sample_ns;
        }
        let next_join = unstarted
            .first()
            .map_or(u64::MAX, |&i| at_ms(spec.threads[i].join_ms));
        let next_timed = spec
            .events
            .get(next_event)
            .map_or(u64::MAX, |e| at_ms(e.at_ms));
        // Console commands wait at most 50 ms.
        let wake = next_sample
            .min(next_join)
            .min(next_timed)
            .min(now + 50_000_000);
        threads::sleep_until(wake);
    }
}

libos::threaded_program!(main_thread);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_left_stops_reading_the_slot_a_later_thread_was_started_in() {
        // Thread 0 starts in slot 0, thread 1 in slot 1; thread 0 leaves and
        // thread 2 is started in its freed slot (the lowest free one).
        let all: Vec<PerThread> = (0..3).map(|_| PerThread::new(1, &NO_SLEEPS)).collect();
        let mut high = 0;
        for (i, tid, then) in [(0, 0, 1), (1, 1, 2), (2, 0, 2)] {
            all[i].tid.store(tid + 1, Ordering::Relaxed);
            hand_over(all.iter(), i, tid, &mut high);
            assert_eq!(high, then, "one past the highest slot handed out");
        }
        // Read through thread 0 the sampler would catch up thread 2's
        // histogram with thread 0's old copy: wrong increases for thread
        // 0, and thread 2's own catch-up would find nothing new.
        assert_eq!(all[0].own_tid(), None, "thread 0's slot is thread 2's");
        assert_eq!(all[1].own_tid(), Some(1));
        assert_eq!(all[2].own_tid(), Some(0));
    }

    #[test]
    fn a_snapshot_row_is_found_by_its_thread_id() {
        let row = |id| (id, 1, u64::from(id) * 10, threads::ThreadState::Runnable);
        let listed = [row(0), row(2), row(3), row(7)];
        let at = listed_at(&listed);
        for (k, e) in listed.iter().enumerate() {
            assert_eq!(at[e.0 as usize], k as u32);
        }
        for missing in [1, 4, 5, 6] {
            assert_eq!(at[missing], u32::MAX);
        }
        assert_eq!(at.len(), 8, "nothing past the highest id listed");
        assert!(listed_at(&[]).is_empty());
    }

    #[test]
    fn only_a_thread_with_its_own_sleep_log_is_drained() {
        let own: &'static SleepLog = Box::leak(Box::new(SleepLog::new()));
        assert!(PerThread::new(1, own).logs_sleeps());
        assert!(!PerThread::new(1, &NO_SLEEPS).logs_sleeps());
    }
}
