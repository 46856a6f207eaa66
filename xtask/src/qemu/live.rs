//! The live share table of a scenario run, with a loud line under it
//! whenever its shares cannot be trusted.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::trust::{self, Limits, Mode, Windows};

/// The live table of a scenario run: fed every console line, printed about
/// once a second (when streaming).
pub(super) struct Live {
    tracker: crate::scenario_run::Tracker,
    names: std::collections::BTreeMap<(String, u32), String>,
    stream: bool,
    last_print: Instant,
    /// The per-sample trust checks, as samples arrive.
    windows: Windows,
    mode: Mode,
    /// Windows charged more than could have run, so far.
    overcharged: u64,
    /// The latest of them, described.
    last_overcharge: Option<String>,
}

impl Live {
    pub(super) fn new(s: &crate::scenario::Scenario, cpus: u32, stream: bool, mode: Mode) -> Live {
        let limits = Limits::from_cmdline(&s.cmdline().join(" "));
        Live {
            tracker: crate::scenario_run::Tracker::new(s.capacities(cpus)),
            names: crate::scenario_run::thread_names(s),
            stream,
            last_print: Instant::now(),
            windows: Windows::new(limits, s.capacities(cpus)),
            mode,
            overcharged: 0,
            last_overcharge: None,
        }
    }

    pub(super) fn line(&mut self, line: &str) {
        let Some((abi::record::RecordKind::User, payload)) = abi::record::parse_record_line(line)
        else {
            return;
        };
        let Ok(v) = serde_json::from_str::<Value>(payload) else {
            return;
        };
        for o in self.windows.record(&v) {
            self.overcharged += 1;
            self.last_overcharge = Some(o.describe());
        }
        if self.tracker.record(&v)
            && self.stream
            && self.last_print.elapsed() >= Duration::from_secs(1)
        {
            self.last_print = Instant::now();
            println!("{}", self.tracker.table(&self.names));
            if let Some(why) = self.untrusted() {
                println!("!! SHARES CANNOT BE TRUSTED: {why}\n");
            }
        }
    }

    /// Why the shares so far cannot be trusted, if they cannot.
    fn untrusted(&self) -> Option<String> {
        match (&self.last_overcharge, self.mode.why_untrusted()) {
            (Some(o), _) => Some(format!(
                "{} sample windows charged more than could run (latest {o}); mode {}",
                self.overcharged,
                self.mode.name()
            )),
            (None, Some(why)) => Some(format!("{} — {why}", self.mode.name())),
            (None, None) => None,
        }
    }

    /// The final table, and the run's verdict (`summary.json`'s `trust`)
    /// under it when the shares cannot be trusted.
    pub(super) fn finish(&mut self, trust: &Value) {
        self.tracker.flush();
        if self.stream {
            println!(
                "== final shares (within each application)\n{}",
                self.tracker.table(&self.names)
            );
            match trust::warning(trust) {
                Some(w) => println!("{w}\n"),
                None => println!(
                    "== shares trusted ({}: every consistency check passed)\n",
                    trust["mode"].as_str().unwrap_or("?")
                ),
            }
        }
    }
}
