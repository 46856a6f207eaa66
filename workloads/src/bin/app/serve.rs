//! The `serve` behaviour: the application's threads serving its open-loop
//! request stream (`workloads::requests`), first come first served, and
//! each request's latency from its arrival to its completion.
//!
//! A server claims the next request by moving the stream's next arrival
//! time forward with a compare-and-swap (no lock a preempted server could
//! hold), sleeps until the request arrives if it has not, performs its
//! service demand as loop iterations (calibrated at start: CPU work, so a
//! server preempted mid-request finishes later, as a real one would), and
//! records arrival → completion in a fixed histogram (`abi::waits`'
//! buckets; one atomic add per request). The sampler reports the buckets
//! filled since its last report, and how many requests had arrived and
//! completed (`requests` records).

use alloc::string::String;
use core::fmt::Write;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use abi::waits::{bucket_of, BUCKETS};
use workloads::requests::Requests;

/// The next request's arrival time (global clock); 0 before the stream
/// starts.
static NEXT_ARRIVAL: AtomicU64 = AtomicU64::new(0);
static COMPLETED: AtomicU64 = AtomicU64::new(0);
static LONGEST_NS: AtomicU64 = AtomicU64::new(0);
static LATENCY: [AtomicU32; BUCKETS] = [const { AtomicU32::new(0) }; BUCKETS];
/// Loop iterations per ms of CPU time, measured by [`start`].
static ITERATIONS_PER_MS: AtomicU64 = AtomicU64::new(0);

/// Iterations per chunk of the calibration; the fastest of
/// [`CALIBRATION_CHUNKS`] chunks is the one no interrupt or other
/// environment's turn stretched.
const CALIBRATION_CHUNK: u64 = 10_000;
const CALIBRATION_CHUNKS: usize = 8;

/// The service loop: `n` iterations, each counted in `counter` (the
/// thread's work, as every behaviour counts it).
fn work(counter: &AtomicU64, n: u64) {
    for _ in 0..n {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Measures the service loop's speed and starts the stream at `t0`.
/// Called once, before any server runs.
pub fn start(requests: &Requests, seed: u64, t0: u64) {
    let scratch = AtomicU64::new(0);
    let fastest = (0..CALIBRATION_CHUNKS)
        .map(|_| {
            let from = libos::sys::now_ns();
            work(&scratch, CALIBRATION_CHUNK);
            libos::sys::now_ns().saturating_sub(from).max(1)
        })
        .min()
        .unwrap_or(1);
    let per_ms = CALIBRATION_CHUNK * 1_000_000 / fastest;
    ITERATIONS_PER_MS.store(per_ms, Ordering::Relaxed);
    NEXT_ARRIVAL.store(t0 + requests.gap_ns(seed, t0), Ordering::Release);
    libos::report!(
        "\"kind\":\"requests_start\",\"t_ns\":{t0},\"rate_per_s\":{},\"mean_service_ns\":{:.0},\"iterations_per_ms\":{per_ms}",
        requests.rate_per_s,
        requests.mean_service_ns()
    );
}

/// Serves requests until `leave` (global clock). `sleep_until` sleeps the
/// calling thread, logging the sleep as the thread's.
pub fn serve(
    requests: &Requests,
    seed: u64,
    leave: u64,
    counter: &AtomicU64,
    sleep_until: impl Fn(u64),
) {
    let per_ms = ITERATIONS_PER_MS.load(Ordering::Relaxed);
    while libos::sys::now_ns() < leave {
        let arrival = NEXT_ARRIVAL.load(Ordering::Acquire);
        let next = arrival + requests.gap_ns(seed, arrival);
        if NEXT_ARRIVAL
            .compare_exchange(arrival, next, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            continue;
        }
        if libos::sys::now_ns() < arrival {
            sleep_until(arrival);
        }
        work(
            counter,
            requests.service_ns(seed, arrival) * per_ms / 1_000_000,
        );
        let latency = libos::sys::now_ns().saturating_sub(arrival);
        LATENCY[bucket_of(latency)].fetch_add(1, Ordering::Relaxed);
        LONGEST_NS.fetch_max(latency, Ordering::Relaxed);
        COMPLETED.fetch_add(1, Ordering::Release);
    }
}

/// The sampler's view of the stream: its own walk of the arrivals (to
/// count those up to a sample's time) and the buckets it last reported.
pub struct Sampler {
    requests: Requests,
    seed: u64,
    /// The last arrival counted, and how many up to it.
    walked_to: u64,
    arrived: u64,
    reported: alloc::vec::Vec<u32>,
}

impl Sampler {
    pub fn new(requests: Requests, seed: u64, t0: u64) -> Sampler {
        Sampler {
            requests,
            seed,
            walked_to: t0,
            arrived: 0,
            reported: alloc::vec![0; BUCKETS],
        }
    }

    /// `requests` records for now: requests arrived and completed so far,
    /// the longest latency so far, and the latencies recorded since the
    /// last call as `[bucket, count, ...]` (several records when they
    /// do not fit one; the runner adds them up).
    pub fn report(&mut self) {
        // Completions first, then the time: every request counted
        // completed has arrived by `t`.
        let completed = COMPLETED.load(Ordering::Acquire);
        let longest = LONGEST_NS.load(Ordering::Relaxed);
        let t = libos::sys::now_ns();
        // The stream's own sequence, so the count is exact.
        let (n, last) = self.requests.arrivals(self.seed, self.walked_to, t);
        self.walked_to = last;
        self.arrived += n;
        let head = alloc::format!(
            "\"kind\":\"requests\",\"t_ns\":{t},\"arrived\":{},\"completed\":{completed},\"max_ns\":{longest}",
            self.arrived,
        );
        let mut b = String::new();
        let send = |b: &mut String| {
            let record = alloc::format!("{head},\"b\":[{b}]");
            if libos::sys::report(&record).is_err() {
                libos::log!("requests record refused ({} bytes)", record.len());
            }
            b.clear();
        };
        for (k, seen) in self.reported.iter_mut().enumerate() {
            let now = LATENCY[k].load(Ordering::Relaxed);
            if now == *seen {
                continue;
            }
            // A pair is at most 16 bytes, the head ~110.
            if b.len() > 800 {
                send(&mut b);
            }
            let _ = write!(
                b,
                "{}{k},{}",
                if b.is_empty() { "" } else { "," },
                now.wrapping_sub(*seen)
            );
            *seen = now;
        }
        send(&mut b);
    }
}
