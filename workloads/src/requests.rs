//! The request-serving workload's model (issue 17): an open-loop stream of
//! requests into one queue per application, served first come, first
//! served by its `serve` threads. Pure and host-tested; the `app` program
//! drives it.
//!
//! **Open loop.** Arrivals do not wait for completions: request `k + 1`
//! arrives an exponentially distributed gap (mean `1 / rate`) after request
//! `k`, whatever the servers are doing — so a slow server builds a queue
//! and its latency shows it, as in a real service (a closed loop would
//! hide it: Schroeder et al., "Open versus closed", NSDI '06).
//!
//! **Seeded and lock-free.** Each request's gap and service demand are a
//! hash of the seed and its arrival time on the stream's own clock (time
//! since the stream started), so the stream is a function of the seed
//! alone: runs with one seed see the same requests whatever the scheduler,
//! seeds differ. A server claims the next request with one
//! compare-and-swap on the next arrival time — no lock a preempted server
//! could hold. The draws are integer arithmetic (the guest is soft-float).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use abi::waits::{bucket_of, BUCKETS};

/// How much CPU work a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// Every request `us` µs.
    Fixed { us: u64 },
    /// Exponentially distributed with mean `mean_us` µs.
    Exponential { mean_us: u64 },
    /// `short_us`, or `long_us` for `long_permille` of the requests.
    Bimodal {
        short_us: u64,
        long_us: u64,
        long_permille: u64,
    },
}

/// The highest request rate (the sampler walks every arrival).
pub const MAX_RATE_PER_S: u64 = 1_000_000;
/// The longest service demand (or mean), µs.
pub const MAX_SERVICE_US: u64 = 10_000_000;

/// An application's request stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requests {
    /// Mean arrivals per second (Poisson).
    pub rate_per_s: u64,
    pub service: Service,
}

/// A 64-bit mix of `x` (SplitMix64's finaliser): consecutive inputs give
/// unrelated outputs.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// `log2(x)` for `x` in [1, 2] given in Q62, as a Q32 fraction: digit by
/// digit (square; each time the square reaches 2, a one bit and halve).
const fn log2_q62_to_q32(mut x: u128) -> u64 {
    let mut bits = 0u64;
    let mut i = 0;
    while i < 32 {
        x = (x * x) >> 62;
        bits <<= 1;
        if x >= 2 << 62 {
            x >>= 1;
            bits |= 1;
        }
        i += 1;
    }
    bits
}

/// `log2(1 + i/256)` in Q32 for `i` in 0..=256, computed at compile time.
const LOG2_TABLE: [u64; 257] = {
    let mut t = [0u64; 257];
    let mut i = 0;
    while i < 256 {
        t[i] = log2_q62_to_q32(((256 + i) as u128) << (62 - 8));
        i += 1;
    }
    t[256] = 1 << 32;
    t
};

/// `ln 2` in Q32.
const LN2_Q32: u128 = 2_977_044_472;

/// `-ln(u)` in Q32 for the uniform `u = k / 2^53` drawn from `bits` (`k`
/// in 1..=2^53): the exponential variate of mean 1. Integer only — the
/// guest has no floating-point unit enabled (x86_64-unknown-none is
/// soft-float, where one `ln` costs thousands of instructions): a table
/// of `log2` at 1/256 steps, linearly interpolated (error below 3e-6).
pub fn neg_ln_unit_q32(bits: u64) -> u64 {
    let k = (bits >> 11) + 1;
    let lz = k.leading_zeros();
    let e = u64::from(63 - lz);
    let m = k << lz;
    let i = ((m >> 55) & 0xff) as usize;
    let rem = (m >> 23) & 0xffff_ffff;
    let (lo, hi) = (LOG2_TABLE[i], LOG2_TABLE[i + 1]);
    let log2_k = (e << 32) + lo + (((hi - lo) * rem) >> 32);
    let neg_log2_u = (53u64 << 32).saturating_sub(log2_k);
    ((u128::from(neg_log2_u) * LN2_Q32) >> 32) as u64
}

/// An exponentially distributed value with mean `mean` from `bits`.
fn exponential(mean: u64, bits: u64) -> u64 {
    ((u128::from(mean) * u128::from(neg_ln_unit_q32(bits))) >> 32) as u64
}

impl Requests {
    /// The gap (ns) from the request arriving `at_ns` after the stream's
    /// start to the next. At least 1 ns, so arrival times strictly
    /// increase (a server claims a request by its arrival time). A
    /// function of the seed and the stream's own time, so two runs with
    /// one seed see one stream wherever they start it.
    pub fn gap_ns(&self, seed: u64, at_ns: u64) -> u64 {
        let mean = 1_000_000_000 / self.rate_per_s.max(1);
        exponential(mean, mix(seed ^ mix(at_ns))).max(1)
    }

    /// The CPU work (ns) of the request arriving `at_ns` after the
    /// stream's start.
    pub fn service_ns(&self, seed: u64, at_ns: u64) -> u64 {
        let bits = mix(mix(seed ^ 0x5EED) ^ at_ns);
        match self.service {
            Service::Fixed { us } => us * 1000,
            Service::Exponential { mean_us } => exponential(mean_us * 1000, bits).max(1),
            Service::Bimodal {
                short_us,
                long_us,
                long_permille,
            } => {
                if bits % 1000 < long_permille {
                    long_us * 1000
                } else {
                    short_us * 1000
                }
            }
        }
    }

    /// The mean service demand (ns).
    pub fn mean_service_ns(&self) -> u64 {
        match self.service {
            Service::Fixed { us } => us * 1000,
            Service::Exponential { mean_us } => mean_us * 1000,
            Service::Bimodal {
                short_us,
                long_us,
                long_permille,
            } => short_us * (1000 - long_permille) + long_us * long_permille,
        }
    }

    /// Requests arriving in `(from_ns, to_ns]` (stream time) when one
    /// arrives (or the stream starts) at `from_ns` — the stream's own walk
    /// — and the last of them (`from_ns` if none). For counting arrivals
    /// off the hot path (the sampler).
    pub fn arrivals(&self, seed: u64, from_ns: u64, to_ns: u64) -> (u64, u64) {
        let (mut at, mut n) = (from_ns, 0);
        loop {
            let next = at + self.gap_ns(seed, at);
            if next > to_ns {
                return (n, at);
            }
            n += 1;
            at = next;
        }
    }
}

/// The shared state of one application's stream: the next arrival (stream
/// time) and the latencies recorded so far. The servers [`Queue::claim`]
/// requests and [`Queue::record`] them; the sampler reads it with a
/// [`Sampler`]. Lock-free: one compare-and-swap per claim, one atomic add
/// per completion.
pub struct Queue {
    next_arrival: AtomicU64,
    latency: [AtomicU32; BUCKETS],
    longest: AtomicU64,
}

impl Default for Queue {
    fn default() -> Self {
        Self::new()
    }
}

impl Queue {
    pub const fn new() -> Queue {
        Queue {
            next_arrival: AtomicU64::new(u64::MAX),
            latency: [const { AtomicU32::new(0) }; BUCKETS],
            longest: AtomicU64::new(0),
        }
    }

    /// Starts the stream (its time 0 is the caller's choice).
    pub fn start(&self, r: &Requests, seed: u64) {
        self.next_arrival
            .store(r.gap_ns(seed, 0), Ordering::Release);
    }

    /// Claims the next request: its arrival (stream time). Every arrival
    /// is claimed by exactly one caller, in arrival order.
    pub fn claim(&self, r: &Requests, seed: u64) -> u64 {
        let mut at = self.next_arrival.load(Ordering::Acquire);
        loop {
            let next = at + r.gap_ns(seed, at);
            match self.next_arrival.compare_exchange_weak(
                at,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return at,
                Err(now) => at = now,
            }
        }
    }

    /// A request completed `latency_ns` after its arrival.
    pub fn record(&self, latency_ns: u64) {
        if latency_ns > self.longest.load(Ordering::Relaxed) {
            self.longest.fetch_max(latency_ns, Ordering::Relaxed);
        }
        self.latency[bucket_of(latency_ns)].fetch_add(1, Ordering::Release);
    }
}

/// The sampler's view of a stream: its own walk of the arrivals (to count
/// those up to a report's time) and the buckets it last reported.
pub struct Sampler {
    requests: Requests,
    seed: u64,
    /// The last arrival counted (stream time), and how many up to it.
    walked_to: u64,
    arrived: u64,
    completed: u64,
    reported: Vec<u32>,
}

/// One report: at stream time `t_ns`, requests arrived and completed so
/// far (`completed` is the sum of every report's `buckets`: one latency
/// per completed request, and none for a request that had not arrived by
/// `t_ns`), the longest latency so far, and the latencies recorded since
/// the last report as `(bucket, count)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub t_ns: u64,
    pub arrived: u64,
    pub completed: u64,
    pub longest_ns: u64,
    pub buckets: Vec<(usize, u32)>,
}

impl Sampler {
    pub fn new(requests: Requests, seed: u64) -> Sampler {
        Sampler {
            requests,
            seed,
            walked_to: 0,
            arrived: 0,
            completed: 0,
            reported: alloc::vec![0; BUCKETS],
        }
    }

    /// Reads `queue`: the latencies first, then the time (`now`, stream
    /// time), then the arrivals up to it — so every latency counted belongs
    /// to a request that arrived by `t_ns`.
    pub fn report(&mut self, queue: &Queue, now: impl FnOnce() -> u64) -> Report {
        let mut buckets = Vec::new();
        for (k, seen) in self.reported.iter_mut().enumerate() {
            let n = queue.latency[k].load(Ordering::Acquire);
            if n != *seen {
                buckets.push((k, n.wrapping_sub(*seen)));
                self.completed += u64::from(n.wrapping_sub(*seen));
                *seen = n;
            }
        }
        let longest_ns = queue.longest.load(Ordering::Relaxed);
        let t_ns = now();
        let (n, last) = self.requests.arrivals(self.seed, self.walked_to, t_ns);
        self.walked_to = last;
        self.arrived += n;
        Report {
            t_ns,
            arrived: self.arrived,
            completed: self.completed,
            longest_ns,
            buckets,
        }
    }
}

impl core::fmt::Display for Requests {
    /// The words of a `requests` line that [`Requests::parse_words`] reads back.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ", self.rate_per_s)?;
        match self.service {
            Service::Fixed { us } => write!(f, "fixed {us}"),
            Service::Exponential { mean_us } => write!(f, "exponential {mean_us}"),
            Service::Bimodal {
                short_us,
                long_us,
                long_permille,
            } => write!(f, "bimodal {short_us} {long_us} {long_permille}"),
        }
    }
}

impl Requests {
    /// Reads `<rate_per_s> fixed <us> | exponential <mean_us> | bimodal
    /// <short_us> <long_us> <long_permille>`.
    pub fn parse_words<'a>(
        mut words: impl Iterator<Item = &'a str>,
    ) -> Result<Requests, &'static str> {
        let num = |w: Option<&str>, what| w.and_then(|w| w.parse::<u64>().ok()).ok_or(what);
        let positive = |v: u64, what| if v == 0 { Err(what) } else { Ok(v) };
        let rate_per_s = positive(
            num(words.next(), "requests needs <rate_per_s>")?,
            "the request rate must be positive",
        )?;
        if rate_per_s > MAX_RATE_PER_S {
            return Err("the request rate must be at most 1,000,000 per second");
        }
        let service = match words.next() {
            Some("fixed") => Service::Fixed {
                us: positive(
                    num(words.next(), "fixed needs <us>")?,
                    "service must be positive",
                )?,
            },
            Some("exponential") => Service::Exponential {
                mean_us: positive(
                    num(words.next(), "exponential needs <mean_us>")?,
                    "service must be positive",
                )?,
            },
            Some("bimodal") => {
                let need = "bimodal needs <short_us> <long_us> <long_permille>";
                let short_us = positive(num(words.next(), need)?, "service must be positive")?;
                let long_us = positive(num(words.next(), need)?, "service must be positive")?;
                let long_permille = num(words.next(), need)?;
                if long_permille > 1000 {
                    return Err("long_permille must be at most 1000");
                }
                Service::Bimodal {
                    short_us,
                    long_us,
                    long_permille,
                }
            }
            _ => return Err("service must be fixed, exponential or bimodal"),
        };
        let longest = match service {
            Service::Fixed { us } => us,
            Service::Exponential { mean_us } => mean_us,
            Service::Bimodal {
                short_us, long_us, ..
            } => short_us.max(long_us),
        };
        if longest > MAX_SERVICE_US {
            return Err("a service demand must be at most 10 s");
        }
        Ok(Requests {
            rate_per_s,
            service,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(rate: u64, service: Service) -> Requests {
        Requests {
            rate_per_s: rate,
            service,
        }
    }

    #[test]
    fn the_integer_logarithm_is_within_3e_6_of_ln() {
        for k in (0..200_000u64).map(|i| mix(i) >> 11).chain([
            0,
            1,
            2,
            255,
            256,
            (1 << 53) - 1,
            (1 << 52),
            12_345,
        ]) {
            let bits = k << 11;
            let u = ((bits >> 11) + 1) as f64 / (1u64 << 53) as f64;
            let want = -u.ln();
            let got = neg_ln_unit_q32(bits) as f64 / (1u64 << 32) as f64;
            assert!((got - want).abs() < 3e-6, "k {k}: {got} vs {want}");
        }
    }

    #[test]
    fn gaps_are_exponential_with_the_rate_s_mean() {
        let r = stream(10_000, Service::Fixed { us: 10 });
        let (n, _) = r.arrivals(7, 0, 1_000_000_000);
        // 10,000 expected; Poisson's standard deviation is 100.
        assert!((9_600..=10_400).contains(&n), "{n}");
        // Exponential: the fraction of gaps above the mean is 1/e, above
        // three means 1/e^3.
        let mut at = 0;
        let (mut above, mut far) = (0u32, 0u32);
        for _ in 0..50_000 {
            let g = r.gap_ns(7, at);
            above += u32::from(g > 100_000);
            far += u32::from(g > 300_000);
            at += g;
        }
        let (f, f3) = (f64::from(above) / 50_000.0, f64::from(far) / 50_000.0);
        assert!((f - (-1f64).exp()).abs() < 0.01, "{f}");
        assert!((f3 - (-3f64).exp()).abs() < 0.005, "{f3}");
    }

    #[test]
    fn walking_in_pieces_counts_what_one_walk_counts() {
        let r = stream(3000, Service::Fixed { us: 1 });
        let (all, last) = r.arrivals(5, 0, 2_000_000_000);
        let (mut at, mut n) = (0, 0);
        for k in 1..=20u64 {
            let (m, l) = r.arrivals(5, at, k * 100_000_000);
            n += m;
            at = l;
        }
        assert_eq!((n, at), (all, last));
        assert!(last <= 2_000_000_000 && last + r.gap_ns(5, last) > 2_000_000_000);
    }

    #[test]
    fn the_stream_is_the_seed_s() {
        let r = stream(1000, Service::Exponential { mean_us: 50 });
        assert_eq!(
            r.arrivals(3, 0, 5_000_000_000),
            r.arrivals(3, 0, 5_000_000_000)
        );
        assert_ne!(
            r.arrivals(3, 0, 5_000_000_000),
            r.arrivals(4, 0, 5_000_000_000)
        );
        let demands = |seed| {
            (0..100u64)
                .map(|k| r.service_ns(seed, k * 977))
                .collect::<Vec<_>>()
        };
        assert_eq!(demands(3), demands(3));
        assert_ne!(demands(3), demands(4), "the seed changes the demands too");
    }

    #[test]
    fn service_demands_follow_their_distribution() {
        let mean_of = |r: &Requests| {
            (0..50_000u64)
                .map(|k| r.service_ns(1, k * 977))
                .sum::<u64>() as f64
                / 50_000.0
        };
        let fixed = stream(1, Service::Fixed { us: 25 });
        assert_eq!(fixed.service_ns(1, 99), 25_000);
        let exp = stream(1, Service::Exponential { mean_us: 100 });
        assert!(
            (mean_of(&exp) / 100_000.0 - 1.0).abs() < 0.03,
            "{}",
            mean_of(&exp)
        );
        let bi = stream(
            1,
            Service::Bimodal {
                short_us: 10,
                long_us: 1000,
                long_permille: 20,
            },
        );
        assert_eq!(bi.mean_service_ns(), 29_800);
        assert!(
            (mean_of(&bi) / 29_800.0 - 1.0).abs() < 0.1,
            "{}",
            mean_of(&bi)
        );
        let long = (0..10_000u64)
            .filter(|k| bi.service_ns(1, k * 31) == 1_000_000)
            .count();
        assert!(
            (150..=250).contains(&long),
            "{long} of 10,000 long, want ~200"
        );
    }

    #[test]
    fn servers_claim_each_arrival_once_and_reports_never_count_what_has_not_arrived() {
        use std::sync::atomic::AtomicBool;
        let r = stream(50_000, Service::Fixed { us: 1 });
        let queue = Queue::new();
        queue.start(&r, 9);
        // A shared clock the servers move forward as they complete.
        let clock = AtomicU64::new(0);
        let done = AtomicBool::new(false);
        let claimed: Vec<Vec<u64>> = std::thread::scope(|s| {
            let servers: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        for _ in 0..5_000 {
                            let at = queue.claim(&r, 9);
                            // Served at or after its arrival.
                            let now = clock.fetch_max(at, Ordering::AcqRel).max(at) + 10;
                            clock.fetch_max(now, Ordering::AcqRel);
                            queue.record(now - at);
                            mine.push(at);
                        }
                        mine
                    })
                })
                .collect();
            let sampler = s.spawn(|| {
                let mut sampler = Sampler::new(r, 9);
                let mut last = None;
                while !done.load(Ordering::Acquire) {
                    let rep = sampler.report(&queue, || clock.load(Ordering::Acquire));
                    assert!(rep.completed <= rep.arrived, "{rep:?}");
                    last = Some(rep);
                }
                last
            });
            let claimed = servers.into_iter().map(|h| h.join().unwrap()).collect();
            done.store(true, Ordering::Release);
            sampler.join().unwrap();
            claimed
        });
        let mut all: Vec<u64> = claimed.into_iter().flatten().collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "an arrival claimed twice");
        // In arrival order: the claims are the stream's first n arrivals.
        let (walked, last) = r.arrivals(9, 0, *all.last().unwrap());
        assert_eq!((walked as usize, last), (n, *all.last().unwrap()));
        let mut final_sampler = Sampler::new(r, 9);
        let rep = final_sampler.report(&queue, || *all.last().unwrap());
        assert_eq!((rep.completed, rep.arrived), (n as u64, n as u64));
    }

    #[test]
    fn written_words_read_back_and_bad_ones_are_refused() {
        for r in [
            stream(100, Service::Fixed { us: 5 }),
            stream(7, Service::Exponential { mean_us: 80 }),
            stream(
                9,
                Service::Bimodal {
                    short_us: 1,
                    long_us: 2,
                    long_permille: 3,
                },
            ),
        ] {
            let text = alloc::format!("{r}");
            assert_eq!(
                Requests::parse_words(text.split_ascii_whitespace()),
                Ok(r),
                "{text}"
            );
        }
        for bad in [
            "",
            "0 fixed 5",
            "5 fixed 0",
            "5 gamma 3",
            "5 bimodal 1 2",
            "5 bimodal 1 2 1001",
            "x fixed 1",
            "2000000 fixed 1",
            "5 fixed 10000001",
        ] {
            assert!(
                Requests::parse_words(bad.split_ascii_whitespace()).is_err(),
                "{bad}"
            );
        }
    }
}
