//! A thread's sleep as the application reports it in its samples
//! (`src/bin/app.rs`): recorded when the sleep begins and when it ends, so
//! a sample taken in the middle counts the part already slept, and each
//! sleep's interval is passed to the sampler ([`SleepLog`]) so the runner
//! knows which threads wanted the CPU at every instant, not only for how
//! long in total.

use alloc::vec::Vec;

use core::sync::atomic::{fence, AtomicU64, Ordering};

/// A thread's sleep, readable by the sampler at any instant: the sleep it
/// finished, and the one it is in (from `since` to `until`, `u64::MAX`
/// when the end is not known in advance). Crediting sleep only at wake-up
/// made a thread asleep across a sample look awake in that interval.
///
/// The owner writes a new state into the buffer readers are not using and
/// then publishes it by bumping `generation`; a reader retries when the
/// generation moved while it read. The owner never waits for a reader (it
/// may be preempted at any point without blocking the sampler).
pub struct SleepClock {
    generation: AtomicU64,
    /// Per buffer: `[done_ns, since_ns (0: awake), until_ns]`.
    states: [[AtomicU64; 3]; 2],
}

impl Default for SleepClock {
    fn default() -> Self {
        SleepClock::new()
    }
}

impl SleepClock {
    pub const fn new() -> SleepClock {
        SleepClock {
            generation: AtomicU64::new(0),
            states: [const { [const { AtomicU64::new(0) }; 3] }; 2],
        }
    }

    fn read(&self) -> [u64; 3] {
        loop {
            let g = self.generation.load(Ordering::Acquire);
            let state = self.states[g as usize % 2]
                .each_ref()
                .map(|x| x.load(Ordering::Relaxed));
            fence(Ordering::Acquire);
            if self.generation.load(Ordering::Relaxed) == g {
                return state;
            }
        }
    }

    /// Only the owning thread writes.
    fn write(&self, state: [u64; 3]) {
        let g = self.generation.load(Ordering::Relaxed) + 1;
        // A reader still on generation g - 2 reads this buffer: if it sees
        // these stores it must also see generation g - 1, and retry.
        fence(Ordering::Release);
        for (x, v) in self.states[g as usize % 2].iter().zip(state) {
            x.store(v, Ordering::Relaxed);
        }
        self.generation.store(g, Ordering::Release);
    }

    /// The owner starts sleeping at `now` until `until` (`u64::MAX`: until
    /// woken).
    pub fn begin(&self, now: u64, until: u64) {
        let [done, ..] = self.read();
        self.write([done, now.max(1), until]);
    }

    /// The owner's sleep ended at `now` (it was runnable from then, or
    /// from its deadline if that came first); returns the sleep as
    /// credited, `(since, end)`.
    pub fn end(&self, now: u64) -> (u64, u64) {
        let [done, since, until] = self.read();
        let end = now.min(until).max(since);
        self.write([done + (end - since), 0, 0]);
        (since, end)
    }

    /// The sleep in progress, `(since, until)`, if any.
    pub fn current(&self) -> Option<(u64, u64)> {
        let [_, since, until] = self.read();
        (since != 0).then_some((since, until))
    }

    /// Sleep up to `now`.
    pub fn asleep_by(&self, now: u64) -> u64 {
        let [done, since, until] = self.read();
        if since == 0 {
            done
        } else {
            done + now.min(until).saturating_sub(since)
        }
    }
}

/// Most completed sleeps a thread's log holds before the sampler drains
/// it (the application drains every log at least every 50 ms).
pub const LOG_SLOTS: usize = 512;

/// A thread's sleeps, from the thread to the sampler: its [`SleepClock`]
/// and a single-producer single-consumer ring of the sleeps it finished.
pub struct SleepLog {
    clock: SleepClock,
    /// Sleeps pushed (by the owner) and taken (by the sampler).
    head: AtomicU64,
    tail: AtomicU64,
    /// Sleeps lost because the ring was full, and their total length.
    dropped: AtomicU64,
    dropped_ns: AtomicU64,
    slots: [[AtomicU64; 2]; LOG_SLOTS],
}

impl Default for SleepLog {
    fn default() -> Self {
        SleepLog::new()
    }
}

impl SleepLog {
    pub const fn new() -> SleepLog {
        SleepLog {
            clock: SleepClock::new(),
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            dropped_ns: AtomicU64::new(0),
            slots: [const { [const { AtomicU64::new(0) }; 2] }; LOG_SLOTS],
        }
    }

    /// Owner: starts sleeping at `now` until `until` (`u64::MAX`: until
    /// woken).
    pub fn begin(&self, now: u64, until: u64) {
        self.clock.begin(now, until);
    }

    /// Owner: the sleep ended at `now` (see [`SleepClock::end`]).
    pub fn end(&self, now: u64) {
        let (since, end) = self.clock.end(now);
        if end <= since {
            return;
        }
        let head = self.head.load(Ordering::Relaxed);
        if head - self.tail.load(Ordering::Acquire) == LOG_SLOTS as u64 {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.dropped_ns.fetch_add(end - since, Ordering::Relaxed);
            return;
        }
        let slot = &self.slots[head as usize % LOG_SLOTS];
        slot[0].store(since, Ordering::Relaxed);
        slot[1].store(end, Ordering::Relaxed);
        self.head.store(head + 1, Ordering::Release);
    }

    /// Sleeps the ring lost so far, and their total length.
    pub fn dropped(&self) -> (u64, u64) {
        (
            self.dropped.load(Ordering::Relaxed),
            self.dropped_ns.load(Ordering::Relaxed),
        )
    }

    /// Sampler: moves the finished sleeps into `into`.
    fn drain(&self, into: &mut Vec<(u64, u64)>) {
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        for k in tail..head {
            let slot = &self.slots[k as usize % LOG_SLOTS];
            into.push((
                slot[0].load(Ordering::Relaxed),
                slot[1].load(Ordering::Relaxed),
            ));
        }
        self.tail.store(head, Ordering::Release);
    }
}

/// The sampler's side of one thread's [`SleepLog`]: sleeps drained but not
/// yet reported in full.
#[derive(Default)]
pub struct SleepReport {
    finished: Vec<(u64, u64)>,
    /// Total length of the intervals taken so far.
    taken_ns: u64,
}

impl SleepReport {
    /// Empties the log's ring (call often: a full ring drops sleeps).
    pub fn drain(&mut self, log: &SleepLog) {
        log.drain(&mut self.finished);
    }

    /// The thread's sleep inside `(from, to]`, as sorted intervals clipped
    /// to it: the sleeps it finished and the one it is in. The part of a
    /// sleep after `to` is kept for the next call.
    pub fn take(&mut self, log: &SleepLog, from: u64, to: u64) -> Vec<(u64, u64)> {
        // The sleep in progress first: one that ends meanwhile is then in
        // the ring, found below, and not counted twice.
        let current = log.clock.current();
        self.drain(log);
        let mut out: Vec<(u64, u64)> = Vec::new();
        let clip = |(s, e): (u64, u64)| (s.max(from), e.min(to));
        if let Some((since, until)) = current {
            if !self.finished.iter().any(|f| f.0 == since) {
                out.push(clip((since, until)));
            }
        }
        out.extend(self.finished.iter().map(|&f| clip(f)));
        self.finished.retain(|f| f.1 > to);
        for f in &mut self.finished {
            f.0 = f.0.max(to);
        }
        out.retain(|(s, e)| s < e);
        out.sort_unstable();
        self.taken_ns += out.iter().map(|(s, e)| e - s).sum::<u64>();
        out
    }

    /// The thread's sleep up to the last [`take`](Self::take)'s `to`, the
    /// sleeps its log dropped included. (The clock's own total would also
    /// count sleeps that ended after `to` but before the sampler read it.)
    pub fn asleep_ns(&self, log: &SleepLog) -> u64 {
        self.taken_ns + log.dropped().1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleep_counts_from_its_start_to_its_deadline_even_unfinished() {
        let c = SleepClock::new();
        assert_eq!(c.asleep_by(50), 0);
        c.begin(100, 300);
        // Sampled mid-sleep: the part slept so far.
        assert_eq!(c.asleep_by(99), 0);
        assert_eq!(c.asleep_by(180), 80);
        // Past the deadline the thread wants the CPU again, even before
        // it has run.
        assert_eq!(c.asleep_by(350), 200);
        c.end(360);
        assert_eq!(c.asleep_by(1000), 200);
        // A sleep with no deadline counts until it ends.
        c.begin(1000, u64::MAX);
        assert_eq!(c.asleep_by(1500), 700);
        c.end(1600);
        assert_eq!(c.asleep_by(5000), 800);
        // A deadline already past when the sleep began counts nothing.
        c.begin(6000, 5900);
        c.end(6010);
        assert_eq!(c.asleep_by(7000), 800);
    }

    #[test]
    fn a_sample_gets_the_sleeps_inside_its_interval_clipped_once_each() {
        let log = SleepLog::new();
        let mut r = SleepReport::default();
        log.begin(10, 30);
        log.end(35); // credited 10..30: runnable from its deadline
        log.begin(40, u64::MAX);
        r.drain(&log);
        // Sample at 100: the finished sleep, and the one in progress.
        assert_eq!(r.take(&log, 0, 100), [(10, 30), (40, 100)]);
        log.end(150);
        log.begin(160, 170);
        log.end(170);
        log.begin(180, 250);
        // Sample at 200: the rest of the long sleep, one whole, one begun.
        assert_eq!(r.take(&log, 100, 200), [(100, 150), (160, 170), (180, 200)]);
        // It ends after the sample at 300 was due but before it was
        // taken: only the part before 300 is in that interval.
        log.end(260);
        assert_eq!(r.take(&log, 200, 300), [(200, 250)]);
        assert_eq!(r.take(&log, 300, 400), []);
        assert_eq!(r.asleep_ns(&log), 20 + 110 + 10 + 70);
        assert_eq!(log.dropped(), (0, 0));
    }

    #[test]
    fn a_sleep_finishing_after_the_sample_time_is_split_between_samples() {
        let log = SleepLog::new();
        let mut r = SleepReport::default();
        log.begin(50, u64::MAX);
        log.end(150);
        // The sampler drained it before its sample at 100 was taken.
        r.drain(&log);
        assert_eq!(r.take(&log, 0, 100), [(50, 100)]);
        assert_eq!(r.take(&log, 100, 200), [(100, 150)]);
    }

    #[test]
    fn a_sleep_after_the_sample_time_is_not_in_that_sample() {
        // The sampler reads the logs a little after its sample time; a
        // whole sleep may begin and end in between.
        let log = SleepLog::new();
        let mut r = SleepReport::default();
        log.begin(10, 20);
        log.end(20);
        log.begin(110, 120);
        log.end(120);
        assert_eq!(r.take(&log, 0, 100), [(10, 20)]);
        assert_eq!(r.asleep_ns(&log), 10);
        assert_eq!(r.take(&log, 100, 200), [(110, 120)]);
        assert_eq!(r.asleep_ns(&log), 20);
    }

    #[test]
    fn a_full_log_drops_and_counts() {
        let log = SleepLog::new();
        for k in 0..LOG_SLOTS as u64 + 3 {
            log.begin(10 * k + 1, 10 * k + 5);
            log.end(10 * k + 5);
        }
        assert_eq!(log.dropped(), (3, 12));
        let mut r = SleepReport::default();
        assert_eq!(r.take(&log, 0, u64::MAX).len(), LOG_SLOTS);
        // The total still counts what was dropped.
        assert_eq!(r.asleep_ns(&log), 4 * (LOG_SLOTS as u64 + 3));
    }

    #[test]
    fn a_reader_never_sees_a_torn_state() {
        // The owner alternates sleeping and waking at known instants; a
        // reader on another thread must only ever see totals the owner
        // published, never one mixing two states (which would show a total
        // that goes backwards or jumps).
        let c = std::sync::Arc::new(SleepClock::new());
        let owner = {
            let c = c.clone();
            std::thread::spawn(move || {
                for k in 0..20_000u64 {
                    c.begin(10 * k + 1, 10 * k + 6);
                    c.end(10 * k + 9);
                }
            })
        };
        let mut last = 0;
        while !owner.is_finished() {
            let [done, since, until] = c.read();
            assert!(done.is_multiple_of(5), "torn: done {done}");
            if since != 0 {
                assert_eq!(until, since + 5, "torn: {since}..{until}");
                assert_eq!(done, (since - 1) / 10 * 5, "torn: {done} at {since}");
            }
            assert!(done >= last, "went back: {done} < {last}");
            last = done;
        }
        owner.join().unwrap();
        assert_eq!(c.asleep_by(u64::MAX), 100_000);
    }
}
