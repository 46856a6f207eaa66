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
//! hash of the seed and its arrival time, so the stream is a function of
//! the seed alone (`det=1` runs repeat exactly, seeds differ), and a
//! server claims the next request with one compare-and-swap on the next
//! arrival time — no lock a preempted server could hold.

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

/// A uniform value in (0, 1] from 53 random bits.
fn unit(bits: u64) -> f64 {
    ((bits >> 11) + 1) as f64 / (1u64 << 53) as f64
}

/// An exponentially distributed value with mean `mean` from `bits`.
fn exponential(mean: f64, bits: u64) -> f64 {
    -libm::log(unit(bits)) * mean
}

impl Requests {
    /// The gap (ns) from the request arriving at `arrival_ns` to the next.
    /// At least 1 ns, so arrival times strictly increase (a server claims
    /// a request by its arrival time).
    pub fn gap_ns(&self, seed: u64, arrival_ns: u64) -> u64 {
        let mean = 1e9 / self.rate_per_s.max(1) as f64;
        (exponential(mean, mix(seed ^ mix(arrival_ns))) as u64).max(1)
    }

    /// The CPU work (ns) the request arriving at `arrival_ns` needs.
    pub fn service_ns(&self, seed: u64, arrival_ns: u64) -> u64 {
        let bits = mix(mix(seed ^ 0x5EED) ^ arrival_ns);
        match self.service {
            Service::Fixed { us } => us * 1000,
            Service::Exponential { mean_us } => {
                (exponential(mean_us as f64 * 1e3, bits) as u64).max(1)
            }
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
    pub fn mean_service_ns(&self) -> f64 {
        match self.service {
            Service::Fixed { us } => us as f64 * 1e3,
            Service::Exponential { mean_us } => mean_us as f64 * 1e3,
            Service::Bimodal {
                short_us,
                long_us,
                long_permille,
            } => {
                let p = long_permille as f64 / 1000.0;
                ((1.0 - p) * short_us as f64 + p * long_us as f64) * 1e3
            }
        }
    }

    /// Requests arriving in `(from_ns, to_ns]` when one arrives (or the
    /// stream starts) at `from_ns` — the stream's own walk — and the last
    /// of them (`from_ns` if none). For counting arrivals off the hot path
    /// (the sampler).
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
    fn gaps_are_exponential_with_the_rate_s_mean() {
        let r = stream(10_000, Service::Fixed { us: 10 });
        let (n, _) = r.arrivals(7, 0, 1_000_000_000);
        // 10,000 expected; Poisson's standard deviation is 100.
        assert!((9_600..=10_400).contains(&n), "{n}");
        // Exponential: the fraction of gaps above the mean is 1/e.
        let mut at = 0;
        let mut above = 0;
        for _ in 0..20_000 {
            let g = r.gap_ns(7, at);
            above += u32::from(g > 100_000);
            at += g;
        }
        let f = f64::from(above) / 20_000.0;
        assert!((f - (-1f64).exp()).abs() < 0.015, "{f}");
    }

    #[test]
    fn walking_in_pieces_counts_what_one_walk_counts() {
        let r = stream(3000, Service::Fixed { us: 1 });
        let (all, last) = r.arrivals(5, 1000, 2_000_000_000);
        let (mut at, mut n) = (1000, 0);
        for k in 1..=20u64 {
            let (m, l) = r.arrivals(5, at, 1000 + k * 100_000_000);
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
        assert_eq!(r.service_ns(3, 12_345), r.service_ns(3, 12_345));
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
        assert!((bi.mean_service_ns() - 29_800.0).abs() < 1e-6);
        assert!(
            (mean_of(&bi) / bi.mean_service_ns() - 1.0).abs() < 0.1,
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
        ] {
            assert!(
                Requests::parse_words(bad.split_ascii_whitespace()).is_err(),
                "{bad}"
            );
        }
    }
}
