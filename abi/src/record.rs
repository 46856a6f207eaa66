//! Machine-readable records on the serial console.
//!
//! Human-readable log lines and records share one serial line. A record is a
//! line `@@exo <kind> <json-object>`; the runner picks them out by
//! [`RECORD_PREFIX`] and parses the object with a JSON parser. The kernel emits
//! them with plain `write!`, so their payloads stay flat (numbers, strings,
//! arrays of numbers).

/// Start of every record line.
pub const RECORD_PREFIX: &str = "@@exo ";

/// The kinds of record the kernel emits. The payload fields of each are
/// documented on the variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// Once, after all cores are up: `cpus_online`, `cpus_described`,
    /// `apic_mode` ("x2apic" | "xapic"), `tsc_khz`, `timer_source`,
    /// `hypervisor` (CPUID leaf 0x40000000: "KVM", "TCG", ... or "none"),
    /// `rdtsc_cycles` (fewest TSC cycles between two back-to-back
    /// `rdtsc`s: thousands when every read traps, as under PVM),
    /// `free_frames`, `cmdline`.
    Boot,
    /// Per core, when it comes online: `core`, `apic_id`.
    CoreOnline,
    /// Per core, at the end of a run: `core`, `apic_id`, `ticks`, `ipis`.
    CoreStats,
    /// One per kernel-side test check: `test`, `check`, `ok` (bool), `detail`.
    Check,
    /// Last record of a run: `exit` (an [`crate::ExitCode`] name), `uptime_ns`;
    /// after environments ran also `predicate_evals`, `predicate_steps`,
    /// `predicate_eval_ns_mean` and `predicate_eval_by_length`
    /// (`[[instructions, evaluations, mean ns], ...]`).
    End,
    /// From an environment's `report` syscall: `env`, `core`, plus the
    /// fields the environment wrote.
    User,
    /// Per environment at the end of a run: `env`, `name`, `cpu_ns` (array
    /// per core), `slots_held`, `donations_given`, `donations_received`,
    /// `repossessions`, `forfeits`, `slots_revoked`, `wakeups`, `state`.
    EnvStats,
    /// A kernel event: `event` ("repossession" | "slot_revoked" | "killed" |
    /// "exited" | "spawned"), `env`, `core`, `t_ns`, and event fields (a
    /// repossession's: `slot`, `overrun_ns`, `slot_revoked`, `cause` as in
    /// `shared::RepossessionCause`, `kept_disabled`, and `rip`, where the
    /// context was taken).
    Event,
    /// Who ran on one core, at the end of a scenario run, in chunks: `core`,
    /// `runs` (`[[t_ns, env], ...]`: from `t_ns` on, `env` ran; `NO_ENV`
    /// (4294967295) is idle), `dropped` (changes not recorded, buffer full).
    Trace,
    /// Kernel-timed latencies at the end of a run, in chunks: `kind`
    /// ("revocation": deadline → epilogue entry; "abort": grace end → the
    /// core entering another environment), `ns` (samples).
    Latency,
    /// Once at the end of a run of environments: the invariants checked
    /// all along (`checked`: name -> [checks, violations]) and the time
    /// ledger (`core_ns`, `env_pct`, `idle_pct`, `kernel_pct`,
    /// `in_flight_ns`, `conservation_error`, `environments_reaped`).
    Invariants,
}

impl RecordKind {
    /// Every kind, for parsers.
    pub const ALL: [RecordKind; 11] = [
        RecordKind::Boot,
        RecordKind::CoreOnline,
        RecordKind::CoreStats,
        RecordKind::Check,
        RecordKind::End,
        RecordKind::User,
        RecordKind::EnvStats,
        RecordKind::Event,
        RecordKind::Trace,
        RecordKind::Latency,
        RecordKind::Invariants,
    ];

    /// The word written after the prefix.
    pub const fn name(self) -> &'static str {
        match self {
            RecordKind::Boot => "boot",
            RecordKind::CoreOnline => "core_online",
            RecordKind::CoreStats => "core_stats",
            RecordKind::Check => "check",
            RecordKind::End => "end",
            RecordKind::User => "user",
            RecordKind::EnvStats => "env_stats",
            RecordKind::Event => "event",
            RecordKind::Trace => "trace",
            RecordKind::Latency => "latency",
            RecordKind::Invariants => "invariants",
        }
    }

    /// The kind named `name`, if any.
    pub fn from_name(name: &str) -> Option<RecordKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Splits a console line into a record kind and its JSON payload text, or
/// `None` when the line is not a record. A record starts its line: the
/// kernel prints every line whole under the console lock, and the text of
/// an environment's log comes after the kernel's prefix on a line of its
/// own (the `Log` call refuses line breaks), so a prefix anywhere else is
/// an environment's text, never a record.
pub fn parse_record_line(line: &str) -> Option<(RecordKind, &str)> {
    let rest = line.trim_start_matches('\r').strip_prefix(RECORD_PREFIX)?;
    let (kind, payload) = rest.split_once(' ')?;
    Some((RecordKind::from_name(kind)?, payload.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_and_ignores_log_lines() {
        assert_eq!(
            parse_record_line("@@exo core_online {\"core\":1,\"apic_id\":1}"),
            Some((RecordKind::CoreOnline, "{\"core\":1,\"apic_id\":1}"))
        );
        assert_eq!(parse_record_line("[c0 INFO] hello"), None);
        assert_eq!(parse_record_line("@@exo nosuchkind {}"), None);
        assert_eq!(parse_record_line("@@exo end"), None);
        assert_eq!(
            parse_record_line("[c0 INFO ] env 3 (x): line @@exo check {\"ok\":true}"),
            None,
            "an environment's text after the log prefix is not a record"
        );
    }

    #[test]
    fn names_round_trip() {
        for k in RecordKind::ALL {
            assert_eq!(RecordKind::from_name(k.name()), Some(k));
        }
    }
}
