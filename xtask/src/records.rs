//! The kernel's console records of one run, parsed (`abi::record`).

use abi::record::{parse_record_line, RecordKind};
use serde_json::Value;

/// The records of one run, by kind, in console order.
#[derive(Debug, Default, Clone)]
pub struct Records {
    pub all: Vec<(RecordKind, Value)>,
}

impl Records {
    /// Every record of `kind`.
    pub fn of(&self, kind: RecordKind) -> impl Iterator<Item = &Value> {
        self.all
            .iter()
            .filter(move |(k, _)| *k == kind)
            .map(|(_, v)| v)
    }

    /// The first record of `kind`.
    pub fn first(&self, kind: RecordKind) -> Option<&Value> {
        self.of(kind).next()
    }

    /// `check` records that failed.
    pub fn failed_checks(&self) -> Vec<&Value> {
        self.of(RecordKind::Check)
            .filter(|c| c["ok"] != Value::Bool(true))
            .collect()
    }
}

/// Picks the records out of a console log. Lines whose payload is not JSON
/// are skipped (a record cut by a panic, say).
pub fn parse_records(console: &str) -> Records {
    let all = console
        .lines()
        .filter_map(parse_record_line)
        .filter_map(|(k, payload)| serde_json::from_str::<Value>(payload).ok().map(|v| (k, v)))
        .collect();
    Records { all }
}
