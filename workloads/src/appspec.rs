//! The arguments of a scenario application (`app`): its scheduler, its
//! threads and their behaviours, and its timed events. The runner writes
//! them from the user's scenario (already validated there); this parser
//! still rejects anything malformed, naming the line, because a libOS must
//! not trust its input either.
//!
//! ```text
//! sched <policy>                   (a name in `sched_registry`)
//! sample_ms <ms>
//! seed <n>
//! core_speed <instructions/s>      (optional, deterministic runs only: each core's speed)
//! thread_trace                     (optional: report who ran on each core)
//! thread <id> <tickets> <join_ms> <leave_ms|-> <behaviour> [params]
//! threads <first id> <count> <tickets> <join_ms> <leave_ms|-> <behaviour> [params]
//!                                  (ids first..first+count-1, alike)
//! name <thread id> <name>          (optional: the console accepts it for the id)
//! names <first id> <count> <base>  (threads first.. named base.0, base.1, ...)
//! currency <parent> <funding>      (ticket currency 1, 2, ... in order, funded by
//!                                  that many tickets of <parent>: 0 the base currency
//!                                  or an earlier one)
//! in_currency <currency> <first id> <count>
//!                                  (those threads' tickets are of that currency)
//! event <t_ms> swap <policy>
//! event <t_ms> tickets <thread id> <tickets>
//! event <t_ms> slices <per core>
//! requests <rate_per_s> fixed <us> | exponential <mean_us> | bimodal <short_us> <long_us> <long_permille>
//! ```
//! Behaviours: `cpu`; `sleep <run_us> <sleep_us>` (compute, then sleep);
//! `fraction <permille>` (use that much of each quantum, then block for the
//! rest); `bursty <on_us> <off_us>` (random bursts and pauses averaging
//! those); `watch` (sleep until the application's shared word changes);
//! `poke <period_us>` (sleep, and change the shared word every period);
//! `lock <hold_us> <think_us>` (take the application's lock, compute
//! holding it, release, compute; waiters lend the holder their tickets);
//! `serve` (serve the application's request stream, its `requests` line:
//! see [`crate::requests`]).
//!
//! The group lines keep an application of 10,000 threads inside the
//! kernel's `ARGS_MAX` (16 KiB): one line per run of alike threads. A
//! thread without a name answers to `t<id>` on the console.

use alloc::string::String;
use alloc::vec::Vec;

pub use crate::requests::{Requests, Service};

/// Most threads an application can describe (the libOS's table holds more,
/// and the main thread: this is what a scenario is allowed).
pub const MAX_THREADS: usize = 10_000;
const _: () = assert!(MAX_THREADS < libos::threads::MAX_THREADS);

/// A scheduling policy, as the registry names it (`sched_registry`, the
/// one list of policies): the word the arguments use is its name.
pub use libos::threads::PolicyKind as Policy;

/// The registered policy a word names.
fn policy(word: &str) -> Option<Policy> {
    libos::threads::policy_named(word)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Cpu,
    Sleep {
        run_us: u64,
        sleep_us: u64,
    },
    Fraction {
        permille: u64,
    },
    Bursty {
        on_us: u64,
        off_us: u64,
    },
    Watch,
    Poke {
        period_us: u64,
    },
    /// Takes the application's lock, computes `hold_us` holding it,
    /// releases it, computes `think_us`; blocked waiters lend the holder
    /// their tickets (lottery's ticket transfers).
    Lock {
        hold_us: u64,
        think_us: u64,
    },
    /// Serves the application's requests, first come first served with
    /// its other `serve` threads (the `requests` line).
    Serve,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadSpec {
    pub id: u32,
    pub tickets: u32,
    /// The currency its tickets are of (0: the base currency; else
    /// `AppSpec::currencies[currency - 1]`).
    pub currency: u32,
    pub join_ms: u64,
    pub leave_ms: Option<u64>,
    pub behaviour: Behaviour,
}

/// A ticket currency (lottery's: `libos::threads::create_currency`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CurrencySpec {
    /// The currency funding it: 0 for the base one, else an earlier one.
    pub parent: u32,
    /// Tickets of the parent backing it.
    pub funding: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Swap(Policy),
    /// Hold this many slots per core (on the cores it holds slots on).
    Slices(u32),
    Tickets {
        thread: u32,
        tickets: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub at_ms: u64,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSpec {
    pub policy: Option<Policy>,
    pub sample_ms: u64,
    pub seed: u64,
    /// Report which thread ran on which core, when (`runs` records, for
    /// the trace's thread tracks): off unless asked, as the records cost
    /// the application time (see `src/bin/app.rs`).
    pub thread_trace: bool,
    pub threads: Vec<ThreadSpec>,
    /// Its ticket currencies: currency `k` (from 1) is `currencies[k - 1]`.
    pub currencies: Vec<CurrencySpec>,
    /// Thread names (by id) the console accepts for ids.
    pub names: Vec<(u32, String)>,
    /// In time order.
    pub events: Vec<Event>,
    /// The request stream its `serve` threads serve.
    pub requests: Option<Requests>,
    /// Instructions per second each core executes, written by the runner
    /// for deterministic runs only: there a `serve` demand is that many
    /// instructions per ns of it. A clock calibration is misled over a
    /// det run's short windows (an emulated core runs up to N times its
    /// stated speed while the other N − 1 are idle: 1.75x to 1.84x in
    /// 2-core lottery and stride runs, and every request then took that
    /// many times its demand).
    pub core_speed: Option<u64>,
}

/// A rejected line (1-based) and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecError {
    pub line: usize,
    pub what: &'static str,
}

impl core::fmt::Display for Behaviour {
    /// The words of a `thread` line that [`behaviour`] reads back.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Behaviour::Cpu => write!(f, "cpu"),
            Behaviour::Sleep { run_us, sleep_us } => write!(f, "sleep {run_us} {sleep_us}"),
            Behaviour::Fraction { permille } => write!(f, "fraction {permille}"),
            Behaviour::Bursty { on_us, off_us } => write!(f, "bursty {on_us} {off_us}"),
            Behaviour::Watch => write!(f, "watch"),
            Behaviour::Poke { period_us } => write!(f, "poke {period_us}"),
            Behaviour::Lock { hold_us, think_us } => write!(f, "lock {hold_us} {think_us}"),
            Behaviour::Serve => write!(f, "serve"),
        }
    }
}

fn num<T: core::str::FromStr>(w: Option<&str>, what: &'static str) -> Result<T, &'static str> {
    w.and_then(|w| w.parse().ok()).ok_or(what)
}

fn behaviour(words: &mut core::str::SplitAsciiWhitespace<'_>) -> Result<Behaviour, &'static str> {
    let b = match words.next() {
        Some("cpu") => Behaviour::Cpu,
        Some("sleep") => Behaviour::Sleep {
            run_us: num(words.next(), "sleep needs <run_us> <sleep_us>")?,
            sleep_us: num(words.next(), "sleep needs <run_us> <sleep_us>")?,
        },
        Some("fraction") => {
            let permille = num(words.next(), "fraction needs <permille>")?;
            if !(1..=1000).contains(&permille) {
                return Err("fraction must be 1..=1000 permille");
            }
            Behaviour::Fraction { permille }
        }
        Some("bursty") => Behaviour::Bursty {
            on_us: num(words.next(), "bursty needs <on_us> <off_us>")?,
            off_us: num(words.next(), "bursty needs <on_us> <off_us>")?,
        },
        Some("watch") => Behaviour::Watch,
        Some("poke") => Behaviour::Poke {
            period_us: num(words.next(), "poke needs <period_us>")?,
        },
        Some("lock") => Behaviour::Lock {
            hold_us: num(words.next(), "lock needs <hold_us> <think_us>")?,
            think_us: num(words.next(), "lock needs <hold_us> <think_us>")?,
        },
        Some("serve") => Behaviour::Serve,
        _ => return Err("unknown behaviour"),
    };
    Ok(b)
}

fn line(spec: &mut AppSpec, text: &str) -> Result<(), &'static str> {
    let mut words = text.split_ascii_whitespace();
    match words.next() {
        None => return Ok(()),
        Some("sched") => {
            spec.policy = Some(words.next().and_then(policy).ok_or("unknown scheduler")?)
        }
        Some("sample_ms") => {
            spec.sample_ms = num(words.next(), "sample_ms needs a number")?;
            if spec.sample_ms == 0 {
                return Err("sample_ms must be positive");
            }
        }
        Some("seed") => spec.seed = num(words.next(), "seed needs a number")?,
        Some("core_speed") => {
            let speed: u64 = num(words.next(), "core_speed needs a number")?;
            if speed == 0 {
                return Err("core_speed must be positive");
            }
            spec.core_speed = Some(speed);
        }
        Some("thread_trace") => spec.thread_trace = true,
        Some(kind @ ("thread" | "threads")) => {
            let id: u32 = num(words.next(), "thread needs an id")?;
            let count: u32 = if kind == "threads" {
                num(words.next(), "threads needs a count")?
            } else {
                1
            };
            if count == 0 || spec.threads.len() + count as usize > MAX_THREADS {
                return Err("too many threads (or a count of 0)");
            }
            let tickets = num(words.next(), "thread needs tickets")?;
            if tickets == 0 {
                return Err("tickets must be positive");
            }
            let join_ms = num(words.next(), "thread needs join_ms")?;
            let leave_ms = match words.next() {
                Some("-") => None,
                w => Some(num(w, "thread needs leave_ms or -")?),
            };
            let behaviour = behaviour(&mut words)?;
            let last = id.checked_add(count - 1).ok_or("thread ids overflow")?;
            // The threads are kept in id order, so ids in increasing order
            // (as the runner writes them) are checked in one comparison
            // with the last; others by a search (and put in their place).
            let at = match spec.threads.last() {
                Some(t) if t.id >= id => {
                    let at = spec.threads.partition_point(|t| t.id < id);
                    if spec.threads.get(at).is_some_and(|t| t.id <= last) {
                        return Err("duplicate thread id");
                    }
                    at
                }
                _ => spec.threads.len(),
            };
            let new = (id..=last).map(|id| ThreadSpec {
                id,
                tickets,
                currency: 0,
                join_ms,
                leave_ms,
                behaviour,
            });
            spec.threads.splice(at..at, new);
        }
        Some("currency") => {
            let parent: u32 = num(words.next(), "currency needs <parent> <funding>")?;
            let funding: u32 = num(words.next(), "currency needs <parent> <funding>")?;
            if parent as usize > spec.currencies.len() {
                return Err("a currency's parent must be 0 or an earlier currency");
            }
            if funding == 0 {
                return Err("a currency's funding must be positive");
            }
            spec.currencies.push(CurrencySpec { parent, funding });
        }
        Some("in_currency") => {
            let currency: u32 = num(
                words.next(),
                "in_currency needs <currency> <first id> <count>",
            )?;
            let first: u32 = num(
                words.next(),
                "in_currency needs <currency> <first id> <count>",
            )?;
            let count: u32 = num(
                words.next(),
                "in_currency needs <currency> <first id> <count>",
            )?;
            if currency == 0 || currency as usize > spec.currencies.len() {
                return Err("in_currency names an unknown currency");
            }
            let last = first
                .checked_add(count.max(1) - 1)
                .ok_or("thread ids overflow")?;
            let at = spec.threads.partition_point(|t| t.id < first);
            let run = spec.threads.get_mut(at..at + count as usize);
            match run {
                Some(run) if count > 0 && run.last().is_some_and(|t| t.id == last) => {
                    run.iter_mut().for_each(|t| t.currency = currency);
                }
                _ => return Err("in_currency for an unknown thread (or a count of 0)"),
            }
        }
        Some("names") => {
            let first: u32 = num(words.next(), "names needs a first thread id")?;
            let count: u32 = num(words.next(), "names needs a count")?;
            let base = words.next().ok_or("names needs a base name")?;
            let last = first
                .checked_add(count.max(1) - 1)
                .ok_or("thread ids overflow")?;
            if count == 0 || !AppSpec::nameable(base) {
                return Err("names needs a count and a base that is not a number");
            }
            if !(first..=last).all(|id| spec.has_thread(id)) {
                return Err("names for an unknown thread");
            }
            for (k, id) in (first..=last).enumerate() {
                spec.names.push((id, alloc::format!("{base}.{k}")));
            }
        }
        Some("name") => {
            let id: u32 = num(words.next(), "name needs a thread id")?;
            let name = words.next().ok_or("name needs a name")?;
            if !spec.has_thread(id) {
                return Err("name for an unknown thread");
            }
            if !AppSpec::nameable(name) {
                return Err("a name must not be a number (it would read as an id)");
            }
            if spec.names.iter().any(|(i, n)| *i == id || n == name) {
                return Err("duplicate name");
            }
            spec.names.push((id, String::from(name)));
        }
        Some("event") => {
            let at_ms = num(words.next(), "event needs a time")?;
            let action = match words.next() {
                Some("swap") => {
                    Action::Swap(words.next().and_then(policy).ok_or("unknown scheduler")?)
                }
                Some("slices") => {
                    let n = num(words.next(), "slices needs a count")?;
                    if n == 0 {
                        return Err("slices must be positive");
                    }
                    Action::Slices(n)
                }
                Some("tickets") => {
                    let thread = num(words.next(), "tickets needs a thread id")?;
                    let tickets = num(words.next(), "tickets needs a count")?;
                    if tickets == 0 {
                        return Err("tickets must be positive");
                    }
                    Action::Tickets { thread, tickets }
                }
                _ => return Err("unknown event"),
            };
            spec.events.push(Event { at_ms, action });
        }
        Some("requests") => {
            if spec.requests.is_some() {
                return Err("a second requests line");
            }
            spec.requests = Some(Requests::parse_words(&mut words)?);
        }
        Some(_) => return Err("unknown line"),
    }
    if words.next().is_some() {
        return Err("extra words");
    }
    Ok(())
}

/// `threads` cut into runs of consecutive ids alike by `same` (with the
/// run's first thread): each run is one line of the arguments.
fn runs(
    threads: &[ThreadSpec],
    same: impl Fn(&ThreadSpec, &ThreadSpec) -> bool,
) -> impl Iterator<Item = &[ThreadSpec]> {
    let mut rest = threads;
    core::iter::from_fn(move || {
        let t = rest.first()?;
        let len = rest
            .iter()
            .enumerate()
            .take_while(|(k, o)| o.id == t.id.wrapping_add(*k as u32) && same(o, t))
            .count();
        let (run, after) = rest.split_at(len);
        rest = after;
        Some(run)
    })
}

impl AppSpec {
    pub fn parse(text: &str) -> Result<AppSpec, SpecError> {
        let mut spec = AppSpec {
            policy: None,
            sample_ms: 100,
            seed: 1,
            thread_trace: false,
            threads: Vec::new(),
            currencies: Vec::new(),
            names: Vec::new(),
            events: Vec::new(),
            requests: None,
            core_speed: None,
        };
        for (i, l) in text.lines().enumerate() {
            line(&mut spec, l).map_err(|what| SpecError { line: i + 1, what })?;
        }
        for e in &spec.events {
            if let Action::Tickets { thread, .. } = e.action {
                if !spec.threads.iter().any(|t| t.id == thread) {
                    return Err(SpecError {
                        line: 0,
                        what: "event names an unknown thread",
                    });
                }
            }
        }
        let serves = spec.threads.iter().any(|t| t.behaviour == Behaviour::Serve);
        if serves != spec.requests.is_some() {
            return Err(SpecError {
                line: 0,
                what: if serves {
                    "serve threads without a requests line"
                } else {
                    "a requests line without serve threads"
                },
            });
        }
        spec.events.sort_by_key(|e| e.at_ms);
        Ok(spec)
    }

    /// Writes the arguments [`AppSpec::parse`] reads back: the runner's
    /// side of the format, kept beside the reader (the round trip is
    /// tested).
    pub fn write(&self, out: &mut impl core::fmt::Write) -> core::fmt::Result {
        if let Some(p) = self.policy {
            writeln!(out, "sched {}", p.name())?;
        }
        writeln!(out, "sample_ms {}\nseed {}", self.sample_ms, self.seed)?;
        if let Some(speed) = self.core_speed {
            writeln!(out, "core_speed {speed}")?;
        }
        if self.thread_trace {
            writeln!(out, "thread_trace")?;
        }
        // A run of alike threads with consecutive ids: one line.
        let alike = |o: &ThreadSpec, t: &ThreadSpec| {
            (o.tickets, o.join_ms, o.leave_ms, o.behaviour)
                == (t.tickets, t.join_ms, t.leave_ms, t.behaviour)
        };
        for run in runs(&self.threads, alike) {
            let t = &run[0];
            match run.len() {
                1 => write!(out, "thread {} ", t.id)?,
                n => write!(out, "threads {} {n} ", t.id)?,
            }
            write!(out, "{} {} ", t.tickets, t.join_ms)?;
            match t.leave_ms {
                Some(ms) => write!(out, "{ms}")?,
                None => write!(out, "-")?,
            }
            writeln!(out, " {}", t.behaviour)?;
        }
        for c in &self.currencies {
            writeln!(out, "currency {} {}", c.parent, c.funding)?;
        }
        // A run of consecutive ids in one currency: one line.
        for run in runs(&self.threads, |o, t| o.currency == t.currency) {
            let t = &run[0];
            if t.currency != 0 {
                writeln!(out, "in_currency {} {} {}", t.currency, t.id, run.len())?;
            }
        }
        let mut rest = &self.names[..];
        while let Some((id, name)) = rest.first() {
            // `base.0`, `base.1`, ... on consecutive ids: one line.
            let run = name
                .strip_suffix(".0")
                .filter(|base| Self::nameable(base))
                .map_or(1, |base| {
                    rest.iter()
                        .enumerate()
                        .take_while(|(k, (i, n))| {
                            *i == id.wrapping_add(*k as u32)
                                && n.strip_prefix(base)
                                    .and_then(|n| n.strip_prefix('.'))
                                    .and_then(|n| n.parse::<usize>().ok())
                                    == Some(*k)
                        })
                        .count()
                });
            match (run, name.strip_suffix(".0")) {
                (2.., Some(base)) => writeln!(out, "names {id} {run} {base}")?,
                _ => writeln!(out, "name {id} {name}")?,
            }
            rest = &rest[run.max(1)..];
        }
        if let Some(r) = &self.requests {
            writeln!(out, "requests {r}")?;
        }
        for e in &self.events {
            write!(out, "event {} ", e.at_ms)?;
            match e.action {
                Action::Swap(p) => writeln!(out, "swap {}", p.name())?,
                Action::Slices(n) => writeln!(out, "slices {n}")?,
                Action::Tickets { thread, tickets } => writeln!(out, "tickets {thread} {tickets}")?,
            }
        }
        Ok(())
    }

    /// Whether `name` can name a thread on a `name` line (and so on the
    /// console): one word, not a number (it would read as an id).
    pub fn nameable(name: &str) -> bool {
        !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_graphic())
            && name.parse::<u32>().is_err()
    }

    /// The thread a console word names: its name, else its id, else
    /// `t<id>` for a thread without a name.
    pub fn thread_named(&self, word: &str) -> Option<u32> {
        self.names
            .iter()
            .find(|(_, n)| n == word)
            .map(|(id, _)| *id)
            .or_else(|| word.parse().ok().filter(|&id| self.has_thread(id)))
            .or_else(|| {
                word.strip_prefix('t')
                    .and_then(|id| id.parse().ok())
                    .filter(|&id| self.has_thread(id) && self.name_of(id).is_none())
            })
    }

    /// Whether a thread has id `id`.
    pub fn has_thread(&self, id: u32) -> bool {
        // Kept in id order by the parser: a binary search (10,000 `names`
        // cost no 10^8 comparisons).
        self.threads.binary_search_by_key(&id, |t| t.id).is_ok()
    }

    /// A thread's name, if it has one.
    pub fn name_of(&self, id: u32) -> Option<&str> {
        self.names
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, n)| n.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_line_kind() {
        let s = AppSpec::parse(
            "sched lottery\nsample_ms 50\nseed 7\n\
             thread 1 200 0 - cpu\n\
             thread 2 100 500 1500 sleep 1000 3000\n\
             thread 3 100 0 - fraction 250\n\
             thread 4 100 0 - bursty 2000 1000\n\
             thread 5 100 0 - watch\n\
             thread 6 100 0 - poke 10000\n\
             thread 7 100 0 - lock 500 1500\n\
             thread 8 100 0 - serve\n\
             requests 2000 bimodal 10 500 25\n\
             event 2000 swap rr\nevent 1000 tickets 1 400\nevent 3000 slices 3\n",
        )
        .unwrap();
        assert_eq!(
            (s.policy, s.sample_ms, s.seed),
            (Some(Policy::new("lottery")), 50, 7)
        );
        assert_eq!(s.threads.len(), 8);
        assert_eq!(s.threads[7].behaviour, Behaviour::Serve);
        assert_eq!(
            s.requests,
            Some(Requests {
                rate_per_s: 2000,
                service: Service::Bimodal {
                    short_us: 10,
                    long_us: 500,
                    long_permille: 25
                }
            })
        );
        assert!(!s.thread_trace, "off unless asked");
        assert!(AppSpec::parse("thread_trace\n").unwrap().thread_trace);
        assert!(AppSpec::parse("thread_trace 1\n").is_err());
        assert_eq!(s.core_speed, None, "a clock calibration unless told");
        assert_eq!(
            AppSpec::parse("core_speed 62500000\n").unwrap().core_speed,
            Some(62_500_000)
        );
        assert_eq!(
            s.threads[6].behaviour,
            Behaviour::Lock {
                hold_us: 500,
                think_us: 1500
            }
        );
        assert_eq!(s.threads[1].leave_ms, Some(1500));
        assert_eq!(
            s.threads[1].behaviour,
            Behaviour::Sleep {
                run_us: 1000,
                sleep_us: 3000
            }
        );
        assert_eq!(
            s.events[0],
            Event {
                at_ms: 1000,
                action: Action::Tickets {
                    thread: 1,
                    tickets: 400
                }
            }
        );
        assert_eq!(s.events[1].action, Action::Swap(Policy::new("rr")));
        assert_eq!(s.events[2].action, Action::Slices(3));
    }

    #[test]
    fn written_arguments_read_back() {
        use alloc::string::String;
        let spec = AppSpec {
            policy: Some(Policy::new("lottery")),
            sample_ms: 50,
            seed: 7,
            thread_trace: true,
            threads: [
                Behaviour::Cpu,
                Behaviour::Sleep {
                    run_us: 1000,
                    sleep_us: 3000,
                },
                Behaviour::Fraction { permille: 250 },
                Behaviour::Bursty {
                    on_us: 2000,
                    off_us: 1000,
                },
                Behaviour::Watch,
                Behaviour::Poke { period_us: 10_000 },
                Behaviour::Lock {
                    hold_us: 500,
                    think_us: 1500,
                },
                Behaviour::Serve,
            ]
            .into_iter()
            .enumerate()
            .map(|(k, behaviour)| ThreadSpec {
                id: k as u32 + 1,
                tickets: 100 * (k as u32 + 1),
                // Threads 2 and 3 in currency 2, 5 in 1.
                currency: [0, 2, 2, 0, 1, 0, 0, 0][k],
                join_ms: 10 * k as u64,
                leave_ms: (k % 2 == 1).then_some(5000),
                behaviour,
            })
            .collect(),
            currencies: alloc::vec![
                CurrencySpec {
                    parent: 0,
                    funding: 300
                },
                CurrencySpec {
                    parent: 1,
                    funding: 20
                }
            ],
            names: alloc::vec![(1, String::from("t100")), (7, String::from("w.1"))],
            events: alloc::vec![
                Event {
                    at_ms: 1000,
                    action: Action::Tickets {
                        thread: 1,
                        tickets: 400
                    }
                },
                Event {
                    at_ms: 2000,
                    action: Action::Swap(Policy::new("rr"))
                },
                Event {
                    at_ms: 3000,
                    action: Action::Slices(3)
                },
            ],
            requests: Some(Requests {
                rate_per_s: 500,
                service: Service::Exponential { mean_us: 300 },
            }),
            core_speed: Some(125_000_000),
        };
        let mut text = String::new();
        spec.write(&mut text).unwrap();
        assert_eq!(AppSpec::parse(&text), Ok(spec.clone()), "{text}");
        let unset = AppSpec {
            policy: None,
            thread_trace: false,
            names: Vec::new(),
            core_speed: None,
            ..spec
        };
        let mut text = String::new();
        unset.write(&mut text).unwrap();
        assert_eq!(AppSpec::parse(&text), Ok(unset), "{text}");
    }

    #[test]
    fn threads_are_found_by_name_or_id() {
        let s = AppSpec::parse(
            "thread 1 100 0 - cpu\nthread 2 200 0 - cpu\nthread 3 300 0 - cpu\nname 1 low\nname 3 t300\n",
        )
        .unwrap();
        assert_eq!(s.thread_named("t300"), Some(3));
        assert_eq!(s.thread_named("low"), Some(1));
        assert_eq!(s.thread_named("2"), Some(2));
        assert_eq!(s.thread_named("1"), Some(1));
        assert_eq!(s.thread_named("9"), None);
        assert_eq!(s.thread_named("t200"), None);
        assert_eq!(s.name_of(3), Some("t300"));
        assert_eq!(s.name_of(2), None);
    }

    #[test]
    fn rejects_bad_lines_by_number() {
        let bad = |text: &str, line: usize| {
            assert_eq!(AppSpec::parse(text).unwrap_err().line, line, "{text}")
        };
        bad("sched fifo\n", 1);
        bad("sched rr\nsample_ms 0\n", 2);
        bad("core_speed 0\n", 1);
        bad("core_speed\n", 1);
        bad("core_speed fast\n", 1);
        bad("thread 1 0 0 - cpu\n", 1);
        bad("thread 1 5 0 - spin\n", 1);
        bad("thread 1 5 0 - fraction 0\n", 1);
        bad("thread 1 5 0 - cpu extra\n", 1);
        bad("thread 1 5 0 - cpu\nthread 1 5 0 - cpu\n", 2);
        // Out of order: the check is not fooled by the last line's id.
        bad(
            "thread 5 5 0 - cpu\nthread 1 5 0 - cpu\nthread 5 5 0 - cpu\n",
            3,
        );
        bad(
            "threads 5 3 5 0 - cpu\nthread 1 5 0 - cpu\nthread 6 5 0 - cpu\n",
            3,
        );
        bad("thread 7 5 0 - cpu\nthreads 5 3 5 0 - cpu\n", 2);
        bad("event 5 swap fifo\n", 1);
        bad("event 5 tickets 9 10\n", 0);
        bad("name 1 t1\n", 1);
        bad("thread 1 5 0 - cpu\nname 1 7\n", 2);
        bad(
            "thread 1 5 0 - cpu\nthread 2 5 0 - cpu\nname 1 a\nname 2 a\n",
            4,
        );
        bad("thread 1 5 0 - cpu\nname 1\n", 2);
        bad("hello\n", 1);
        bad("thread 1 5 0 - serve\n", 0);
        bad("thread 1 5 0 - cpu\nrequests 10 fixed 5\n", 0);
        bad(
            "thread 1 5 0 - serve\nrequests 10 fixed 5\nrequests 10 fixed 5\n",
            3,
        );
        bad("thread 1 5 0 - serve\nrequests 10 fixed\n", 2);
    }

    #[test]
    fn alike_threads_and_numbered_names_travel_as_one_line_each() {
        let mut spec = AppSpec::parse("sched stride\n").unwrap();
        let cpu = |id| ThreadSpec {
            id,
            tickets: 100,
            currency: 0,
            join_ms: 0,
            leave_ms: None,
            behaviour: Behaviour::Cpu,
        };
        spec.threads = (1..=MAX_THREADS as u32).map(cpu).collect();
        spec.threads[4].tickets = 7;
        spec.names = (1..=5000)
            .map(|id| (id, alloc::format!("w.{}", id - 1)))
            .chain([(6000, String::from("solo"))])
            .collect();
        let mut text = String::new();
        spec.write(&mut text).unwrap();
        assert!(text.len() < 200, "{} bytes:\n{text}", text.len());
        let back = AppSpec::parse(&text).unwrap();
        assert_eq!(back, spec);
        assert_eq!(back.thread_named("w.4999"), Some(5000));
        assert_eq!(back.thread_named("t7000"), Some(7000));
        assert_eq!(back.thread_named("t6000"), None, "it has a name");
        assert!(AppSpec::parse("threads 1 10001 1 0 - cpu\n").is_err());
        assert!(AppSpec::parse("threads 1 0 1 0 - cpu\n").is_err());
        assert!(AppSpec::parse("threads 1 5 1 0 - cpu\nthread 3 1 0 - cpu\n").is_err());
        assert!(AppSpec::parse("thread 1 1 0 - cpu\nnames 1 2 x\n").is_err());
    }

    #[test]
    fn currencies_are_made_in_order_and_name_known_threads() {
        let s = AppSpec::parse(
            "threads 1 4 10 0 - cpu\ncurrency 0 100\ncurrency 1 50\nin_currency 2 2 2\n",
        )
        .unwrap();
        assert_eq!(
            s.currencies,
            [
                CurrencySpec {
                    parent: 0,
                    funding: 100
                },
                CurrencySpec {
                    parent: 1,
                    funding: 50
                }
            ]
        );
        let currencies: alloc::vec::Vec<u32> = s.threads.iter().map(|t| t.currency).collect();
        assert_eq!(currencies, [0, 2, 2, 0]);
        let bad = |text: &str, line: usize| {
            assert_eq!(AppSpec::parse(text).unwrap_err().line, line, "{text}")
        };
        let four = "threads 1 4 10 0 - cpu\n";
        bad(&alloc::format!("{four}currency 1 100\n"), 2); // no currency 1 yet
        bad(&alloc::format!("{four}currency 0 0\n"), 2);
        bad(&alloc::format!("{four}currency 0\n"), 2);
        bad(&alloc::format!("{four}in_currency 1 1 1\n"), 2); // no currency
        bad(
            &alloc::format!("{four}currency 0 5\nin_currency 0 1 1\n"),
            3,
        );
        bad(
            &alloc::format!("{four}currency 0 5\nin_currency 1 3 3\n"),
            3,
        ); // 3..5
        bad(
            &alloc::format!("{four}currency 0 5\nin_currency 1 9 1\n"),
            3,
        );
        bad(
            &alloc::format!("{four}currency 0 5\nin_currency 1 1 0\n"),
            3,
        );
    }
}
