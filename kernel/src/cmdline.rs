//! The kernel command line (`-append` in QEMU): space-separated `key=value`.
//!
//! Parsing is strict: an unknown key or a malformed value is an error naming
//! the word at fault, so a typo on the runner side is caught at boot instead
//! of silently running the wrong experiment.

use core::fmt;

/// Everything the kernel reads from its command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootArgs<'a> {
    /// Kernel-side test to run instead of a normal run.
    pub test: Option<&'a str>,
    /// How long a normal run lasts, in milliseconds; 0 means until `quit`.
    pub run_ms: u64,
    /// Period of the per-core tick in a normal run, in microseconds.
    pub tick_us: u64,
    /// Requested scheduler for the default scenario (used by later layers).
    pub sched: Option<&'a str>,
    /// Log verbosity: error, warn, info, debug or trace.
    pub log: LogLevel,
    /// Slots in each core's slice vector.
    pub slots: usize,
    /// Length of one slice, in microseconds.
    pub slice_us: u64,
    /// Grace period after a revocation, in microseconds.
    pub grace_us: u64,
    /// Repossessions within a slot's last 32 turns that cost its owner the
    /// slot; 0 never revokes.
    pub offender_limit: u32,
    /// Longest a core's timer is armed ahead while an environment runs, in
    /// microseconds (0: as far as the turn's end). The runner sets it for
    /// deterministic runs on several cores, whose emulator runs one vCPU
    /// at a time up to the next timer deadline (see the kernel's `sched`).
    pub interleave_us: u64,
    /// Each core starts its first turn a moment (under 50 µs) late, the
    /// moment derived from this seed and the core (0: none): trials of a
    /// deterministic run (see `slices::stagger_ns`). The runner passes the
    /// scenario's seed.
    pub stagger_seed: u64,
    /// Core k of N starts its slice vector k/N of a slice late, so the
    /// cores' turns do not all begin together (see `slices::spread_ns`).
    /// Off by default: applications holding slots on several cores then
    /// no longer start their turns on every core at once.
    pub spread_turns: bool,
    /// Idle cores wait for their next interrupt spinning rather than
    /// halted. The runner sets it for deterministic runs on several cores:
    /// QEMU moves the clock of a machine whose vCPUs have all halted to
    /// the next timer at a moment host timing picks, so such runs did not
    /// repeat (see the kernel's `sched::turn::wait_for_interrupt`).
    pub idle_spin: bool,
}

/// Most slots a vector may have (the exported layout's size).
pub const MAX_SLOTS: usize = abi::shared::MAX_SLOTS;

/// Verbosity of the console log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Default for BootArgs<'_> {
    fn default() -> Self {
        BootArgs {
            test: None,
            run_ms: 3000,
            tick_us: 1000,
            sched: None,
            log: LogLevel::Info,
            slots: 16,
            slice_us: 2000,
            grace_us: 200,
            offender_limit: 0,
            interleave_us: 0,
            stagger_seed: 0,
            spread_turns: false,
            idle_spin: false,
        }
    }
}

/// Why a command line was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdlineError<'a> {
    /// A word without `=`.
    NotKeyValue(&'a str),
    /// A key this kernel does not know.
    UnknownKey(&'a str),
    /// A value that does not parse for its key.
    BadValue { key: &'a str, value: &'a str },
}

impl fmt::Display for CmdlineError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdlineError::NotKeyValue(w) => write!(f, "`{w}` is not key=value"),
            CmdlineError::UnknownKey(k) => write!(f, "unknown key `{k}`"),
            CmdlineError::BadValue { key, value } => write!(f, "bad value `{value}` for `{key}`"),
        }
    }
}

/// Parses a command line. Empty input gives the defaults.
pub fn parse(line: &str) -> Result<BootArgs<'_>, CmdlineError<'_>> {
    let mut args = BootArgs::default();
    for word in line.split_ascii_whitespace() {
        let (key, value) = word
            .split_once('=')
            .ok_or(CmdlineError::NotKeyValue(word))?;
        let bad = CmdlineError::BadValue { key, value };
        match key {
            "test" if !value.is_empty() => args.test = Some(value),
            "run_ms" => args.run_ms = value.parse().map_err(|_| bad)?,
            "tick_us" => {
                args.tick_us = value.parse().map_err(|_| bad)?;
                if !(10..=1_000_000).contains(&args.tick_us) {
                    return Err(bad);
                }
            }
            "sched" if sched_registry::by_name(value).is_some() => args.sched = Some(value),
            "log" => {
                args.log = match value {
                    "error" => LogLevel::Error,
                    "warn" => LogLevel::Warn,
                    "info" => LogLevel::Info,
                    "debug" => LogLevel::Debug,
                    "trace" => LogLevel::Trace,
                    _ => return Err(bad),
                }
            }
            "slots" => {
                args.slots = value.parse().map_err(|_| bad)?;
                if !(1..=MAX_SLOTS).contains(&args.slots) {
                    return Err(bad);
                }
            }
            "slice_us" => {
                args.slice_us = value.parse().map_err(|_| bad)?;
                if !(50..=1_000_000).contains(&args.slice_us) {
                    return Err(bad);
                }
            }
            "grace_us" => {
                args.grace_us = value.parse().map_err(|_| bad)?;
                if args.grace_us > 1_000_000 {
                    return Err(bad);
                }
            }
            "interleave_us" => {
                args.interleave_us = value.parse().map_err(|_| bad)?;
                if args.interleave_us > 1_000_000 {
                    return Err(bad);
                }
            }
            "stagger_seed" => args.stagger_seed = value.parse().map_err(|_| bad)?,
            "spread_turns" => args.spread_turns = flag(value).ok_or(bad)?,
            "idle_spin" => args.idle_spin = flag(value).ok_or(bad)?,
            "offender_limit" => {
                args.offender_limit = value.parse().map_err(|_| bad)?;
                if args.offender_limit > 32 {
                    return Err(bad);
                }
            }
            "test" | "sched" => return Err(bad),
            _ => return Err(CmdlineError::UnknownKey(key)),
        }
    }
    Ok(args)
}

/// A switch's value: `0` or `1`.
fn flag(value: &str) -> Option<bool> {
    match value {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_gives_defaults() {
        assert_eq!(parse("").unwrap(), BootArgs::default());
        assert_eq!(parse("   ").unwrap(), BootArgs::default());
    }

    #[test]
    fn parses_every_key() {
        let a = parse("test=ipi run_ms=50 tick_us=250 sched=lottery log=debug slots=8 slice_us=500 grace_us=50 interleave_us=100").unwrap();
        assert_eq!((a.slots, a.slice_us, a.grace_us), (8, 500, 50));
        assert_eq!(a.interleave_us, 100);
        assert!(parse("interleave_us=2000000").is_err());
        assert_eq!(parse("stagger_seed=7").unwrap().stagger_seed, 7);
        assert!(parse("stagger_seed=-1").is_err());
        assert!(!parse("").unwrap().spread_turns);
        assert!(parse("spread_turns=1").unwrap().spread_turns);
        assert!(!parse("spread_turns=0").unwrap().spread_turns);
        assert!(parse("spread_turns=yes").is_err());
        assert!(!parse("").unwrap().idle_spin);
        assert!(parse("idle_spin=1").unwrap().idle_spin);
        assert!(parse("idle_spin=2").is_err());
        assert_eq!(a.test, Some("ipi"));
        assert_eq!(a.run_ms, 50);
        assert_eq!(a.tick_us, 250);
        assert_eq!(a.sched, Some("lottery"));
        assert_eq!(a.log, LogLevel::Debug);
    }

    #[test]
    fn rejects_bad_words_with_the_word_at_fault() {
        assert_eq!(parse("run_ms"), Err(CmdlineError::NotKeyValue("run_ms")));
        assert_eq!(parse("colour=red"), Err(CmdlineError::UnknownKey("colour")));
        assert_eq!(
            parse("run_ms=soon"),
            Err(CmdlineError::BadValue {
                key: "run_ms",
                value: "soon"
            })
        );
        assert!(parse("tick_us=1").is_err());
        assert!(parse("log=loud").is_err());
        assert!(parse("slots=0").is_err());
        assert!(parse("slots=100000").is_err());
        assert!(parse("slice_us=1").is_err());
        assert!(parse("offender_limit=33").is_err());
        assert_eq!(parse("offender_limit=4").unwrap().offender_limit, 4);
        assert!(parse("test=").is_err());
        assert!(parse("sched=fifo").is_err());
    }

    #[test]
    fn accepts_every_registered_policy() {
        for name in sched_registry::names() {
            let line = format!("sched={name}");
            assert_eq!(parse(&line).unwrap().sched, Some(name));
        }
    }
}
