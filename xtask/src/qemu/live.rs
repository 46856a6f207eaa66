//! The live share table of a scenario run.

use std::time::{Duration, Instant};

/// The live table of a scenario run: fed every console line, printed about
/// once a second (when streaming).
pub(super) struct Live {
    tracker: crate::scenario_run::Tracker,
    names: std::collections::BTreeMap<(String, u32), String>,
    stream: bool,
    last_print: Instant,
}

impl Live {
    pub(super) fn new(s: &crate::scenario::Scenario, cpus: u32, stream: bool) -> Live {
        Live {
            tracker: crate::scenario_run::Tracker::new(s.capacities(cpus)),
            names: crate::scenario_run::thread_names(s),
            stream,
            last_print: Instant::now(),
        }
    }

    pub(super) fn line(&mut self, line: &str) {
        let Some((abi::record::RecordKind::User, payload)) = abi::record::parse_record_line(line)
        else {
            return;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(payload) else {
            return;
        };
        if self.tracker.record(&v)
            && self.stream
            && self.last_print.elapsed() >= Duration::from_secs(1)
        {
            self.last_print = Instant::now();
            println!("{}", self.tracker.table(&self.names));
        }
    }

    pub(super) fn finish(&mut self) {
        self.tracker.flush();
        if self.stream {
            println!(
                "== final shares (within each application)\n{}",
                self.tracker.table(&self.names)
            );
        }
    }
}
