//! Console records → `summary.json`.

use abi::record::{parse_record_line, RecordKind};
use serde_json::{json, Map, Value};

use crate::qemu::RunOptions;

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

/// Facts about a run that the records do not carry.
pub struct RunFacts<'a> {
    pub commit: String,
    pub opts: &'a RunOptions,
    pub accel_requested: &'a str,
    pub accel: &'a str,
    pub machine: String,
    pub cpu_model: String,
    pub qemu_args: &'a [String],
    pub cmdline: &'a str,
    pub exit: &'a str,
    pub wall_ms: u64,
    pub qemu_stderr: &'a str,
}

/// The summary object.
pub fn build(f: &RunFacts<'_>, r: &Records) -> Value {
    let boot = r.first(RecordKind::Boot).cloned().unwrap_or(Value::Null);
    let mut cores: Vec<Value> = r
        .of(RecordKind::CoreStats)
        .map(|c| {
            json!({
                "core": c["core"], "apic_id": c["apic_id"], "ticks": c["ticks"], "ipis": c["ipis"],
                "idle_ns": c.get("idle_ns").cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    if cores.is_empty() {
        // No stats (the run ended early): still list the cores that came up.
        cores = r
            .of(RecordKind::CoreOnline)
            .map(|c| json!({"core": c["core"], "apic_id": c["apic_id"], "ticks": null}))
            .collect();
    }
    let hypervisor = boot.get("hypervisor").and_then(Value::as_str).unwrap_or("");
    let accel_seen = match hypervisor {
        "KVM" => "kvm",
        "TCG" => "tcg",
        _ => f.accel,
    };
    let mut m = Map::new();
    m.insert("commit".into(), json!(f.commit));
    m.insert("sched".into(), json!(f.opts.sched));
    m.insert("cpus_requested".into(), json!(f.opts.cpus));
    m.insert(
        "cpus_online".into(),
        boot.get("cpus_online").cloned().unwrap_or(Value::Null),
    );
    m.insert("accel_requested".into(), json!(f.accel_requested));
    m.insert("accel".into(), json!(accel_seen));
    m.insert("machine".into(), json!(f.machine));
    m.insert("cpu_model".into(), json!(f.cpu_model));
    m.insert("qemu_args".into(), json!(f.qemu_args));
    m.insert("cmdline".into(), json!(f.cmdline));
    m.insert("exit".into(), json!(f.exit));
    m.insert("wall_ms".into(), json!(f.wall_ms));
    m.insert(
        "apic_mode".into(),
        boot.get("apic_mode").cloned().unwrap_or(Value::Null),
    );
    m.insert(
        "tsc_khz".into(),
        boot.get("tsc_khz").cloned().unwrap_or(Value::Null),
    );
    m.insert(
        "timer_source".into(),
        boot.get("timer_source").cloned().unwrap_or(Value::Null),
    );
    m.insert("cores".into(), Value::Array(cores));
    m.insert(
        "envs".into(),
        Value::Array(r.of(RecordKind::EnvStats).cloned().collect()),
    );
    m.insert(
        "events".into(),
        Value::Array(r.of(RecordKind::Event).cloned().collect()),
    );
    m.insert(
        "checks".into(),
        Value::Array(r.of(RecordKind::Check).cloned().collect()),
    );
    m.insert(
        "reports".into(),
        Value::Array(r.of(RecordKind::User).cloned().collect()),
    );
    if !f.qemu_stderr.trim().is_empty() {
        m.insert("qemu_stderr".into(), json!(f.qemu_stderr.trim()));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "[c0 INFO ] hello\n\
        @@exo core_online {\"core\":0,\"apic_id\":0}\n\
        @@exo core_online {\"core\":1,\"apic_id\":1}\n\
        @@exo boot {\"cpus_online\":2,\"apic_mode\":\"xapic\",\"tsc_khz\":2000000,\"hypervisor\":\"TCG\",\"timer_source\":\"pit\"}\n\
        @@exo check {\"test\":\"t\",\"check\":\"a\",\"ok\":true,\"detail\":\"\"}\n\
        @@exo check {\"test\":\"t\",\"check\":\"b\",\"ok\":false,\"detail\":\"x\"}\n\
        @@exo core_stats {\"core\":0,\"apic_id\":0,\"ticks\":10,\"ipis\":0}\n\
        @@exo core_stats {\"core\":1,\"apic_id\":1,\"ticks\":11,\"ipis\":1}\n\
        @@exo end {\"exit\":\"success\"\n";

    #[test]
    fn records_are_parsed_and_broken_ones_skipped() {
        let r = parse_records(LOG);
        assert_eq!(r.of(RecordKind::CoreOnline).count(), 2);
        assert_eq!(r.failed_checks().len(), 1);
        assert!(
            r.first(RecordKind::End).is_none(),
            "truncated JSON is skipped"
        );
    }

    #[test]
    fn summary_has_the_promised_fields() {
        let opts = RunOptions::default();
        let r = parse_records(LOG);
        let s = build(
            &RunFacts {
                commit: "abc".into(),
                opts: &opts,
                accel_requested: "auto",
                accel: "tcg",
                machine: "pc".into(),
                cpu_model: "max".into(),
                qemu_args: &["-smp".into(), "4".into()],
                cmdline: "sched=stride",
                exit: "success",
                wall_ms: 5,
                qemu_stderr: "",
            },
            &r,
        );
        for key in [
            "commit",
            "cpus_requested",
            "cpus_online",
            "accel",
            "machine",
            "qemu_args",
            "cores",
        ] {
            assert!(s.get(key).is_some(), "missing {key}");
        }
        assert_eq!(s["cpus_online"], 2);
        assert_eq!(s["accel"], "tcg");
        assert_eq!(s["cores"][1]["ticks"], 11);
        assert_eq!(s["cores"][1]["apic_id"], 1);
    }
}
