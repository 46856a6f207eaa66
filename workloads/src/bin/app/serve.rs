//! The `serve` behaviour: the application's threads serving its open-loop
//! request stream (`workloads::requests`), first come, first served, and
//! each request's latency from its arrival to its completion.
//!
//! A server claims the next request (`Queue::claim`: one compare-and-swap
//! on the next arrival time, no lock a preempted server could hold),
//! sleeps until it arrives if it has not, performs its service demand as
//! loop iterations (CPU work, at the deterministic run's stated core speed
//! or calibrated by the clock at start: a server preempted
//! mid-request finishes later, as a real one would), and records arrival →
//! completion in the queue's histogram (`abi::waits`' buckets; one atomic
//! add). The sampler reports what arrived, what completed and the
//! latencies since its last report (`requests` records).

use alloc::string::String;
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

use abi::busy::{countdown, INSTRUCTIONS_PER_ITERATION};
use workloads::requests::{Queue, Requests, Sampler};

static QUEUE: Queue = Queue::new();
/// The stream's start on the global clock: its time 0.
static STREAM_T0: AtomicU64 = AtomicU64::new(0);
/// Loop iterations per ms of CPU time, set by [`start`].
static ITERATIONS_PER_MS: AtomicU64 = AtomicU64::new(0);

/// Iterations per chunk of the clock calibration, and chunks: the median
/// chunk is the speed (an interrupt or another environment's turn
/// stretches a few chunks, not half of them; the fastest would take a
/// burst above the core's average speed for it).
const CALIBRATION_CHUNK: u64 = 10_000;
const CALIBRATION_CHUNKS: usize = 9;
/// The service loop: `n` iterations of work nothing can optimise away
/// (`abi::busy::countdown`: two instructions each, written out, so a
/// deterministic run's demand in instructions is exact), kept out of line
/// so calibration and service run the same code. Returns `n`.
#[inline(never)]
fn work(n: u64) -> u64 {
    countdown(n);
    n
}

/// The service loop's iterations per ms of CPU time. In a deterministic
/// run the runner states each core's speed (`core_speed`, instructions per
/// second): the emulator holds a core to it only on average, and over a
/// calibration's few milliseconds a core whose neighbours idle runs up to
/// N times faster (1.75x to 1.84x on 2 cores, in lottery and stride runs:
/// every request then took that many times its demand). Elsewhere the
/// median of a few timed chunks.
fn iterations_per_ms(core_speed: Option<u64>) -> u64 {
    if let Some(speed) = core_speed {
        return (speed / 1000 / INSTRUCTIONS_PER_ITERATION).max(1);
    }
    let mut chunks = [0u64; CALIBRATION_CHUNKS];
    for c in &mut chunks {
        let from = libos::sys::now_ns();
        work(CALIBRATION_CHUNK);
        *c = libos::sys::now_ns().saturating_sub(from).max(1);
    }
    chunks.sort_unstable();
    CALIBRATION_CHUNK * 1_000_000 / chunks[CALIBRATION_CHUNKS / 2]
}

/// Sets the service loop's speed, then starts the stream (its time 0 is
/// now). Called once, before any server runs.
pub fn start(requests: &Requests, seed: u64, core_speed: Option<u64>) {
    let per_ms = iterations_per_ms(core_speed);
    ITERATIONS_PER_MS.store(per_ms, Ordering::Relaxed);
    let t0 = libos::sys::now_ns();
    STREAM_T0.store(t0, Ordering::Relaxed);
    QUEUE.start(requests, seed);
    libos::report!(
        "\"kind\":\"requests_start\",\"t_ns\":{t0},\"rate_per_s\":{},\"mean_service_ns\":{},\"iterations_per_ms\":{per_ms},\"from_core_speed\":{}",
        requests.rate_per_s,
        requests.mean_service_ns(),
        core_speed.is_some()
    );
}

/// Now on the stream's clock.
fn stream_now() -> u64 {
    libos::sys::now_ns().saturating_sub(STREAM_T0.load(Ordering::Relaxed))
}

/// Serves requests until `leave` (global clock), counting the work in
/// `counter` once per request. `sleep_until` sleeps the calling thread
/// until a global time, logging the sleep as the thread's.
pub fn serve(
    requests: &Requests,
    seed: u64,
    leave: u64,
    counter: &AtomicU64,
    sleep_until: impl Fn(u64),
) {
    let per_ms = ITERATIONS_PER_MS.load(Ordering::Relaxed);
    let t0 = STREAM_T0.load(Ordering::Relaxed);
    while libos::sys::now_ns() < leave {
        let arrival = QUEUE.claim(requests, seed);
        if stream_now() < arrival {
            sleep_until(t0 + arrival);
        }
        let n = requests.service_ns(seed, arrival) * per_ms / 1_000_000;
        counter.fetch_add(work(n), Ordering::Relaxed);
        QUEUE.record(stream_now().saturating_sub(arrival));
    }
}

/// `requests` records of the stream, one report at a time.
pub struct Reporter(Sampler);

impl Reporter {
    pub fn new(requests: Requests, seed: u64) -> Reporter {
        Reporter(Sampler::new(requests, seed))
    }

    /// `requests` records for now: requests arrived and completed so far
    /// (completed: the latencies reported so far, none of a request that
    /// had not arrived), the longest latency so far, and the latencies
    /// since the last call as `[bucket, count, ...]` (several records when
    /// they do not fit one; the runner adds them up). `t_ns` is global.
    pub fn report(&mut self) {
        let r = self.0.report(&QUEUE, stream_now);
        let t = r.t_ns + STREAM_T0.load(Ordering::Relaxed);
        let head = alloc::format!(
            "\"kind\":\"requests\",\"t_ns\":{t},\"arrived\":{},\"completed\":{},\"max_ns\":{}",
            r.arrived,
            r.completed,
            r.longest_ns
        );
        let mut b = String::new();
        let send = |b: &mut String| {
            let record = alloc::format!("{head},\"b\":[{b}]");
            if libos::sys::report(&record).is_err() {
                libos::log!("requests record refused ({} bytes)", record.len());
            }
            b.clear();
        };
        for (k, n) in r.buckets {
            // A pair is at most 16 bytes, the head ~110.
            if b.len() > 800 {
                send(&mut b);
            }
            let _ = write!(b, "{}{k},{n}", if b.is_empty() { "" } else { "," });
        }
        send(&mut b);
    }
}
