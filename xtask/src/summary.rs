//! Console records → `summary.json`.

use std::collections::BTreeMap;

use abi::record::RecordKind;
use serde_json::{json, Map, Value};

pub use crate::records::{parse_records, Records};
use crate::trust::{self, Mode};

/// Facts about a run that the records do not carry.
pub struct RunFacts<'a> {
    /// The results directory's name.
    pub run_name: String,
    /// When the run started, `yyyymmdd-hhmmss` UTC.
    pub started_utc: String,
    pub commit: String,
    /// The scheduler asked for (`sched=`).
    pub sched: &'a str,
    /// Cores asked for (QEMU's `-smp`).
    pub cpus_requested: u32,
    /// `auto`, `kvm` or `tcg`, as asked.
    pub accel_requested: &'a str,
    /// The accelerator QEMU was started with (`kvm` or `tcg`).
    pub accel: &'a str,
    pub machine: String,
    pub cpu_model: String,
    pub qemu_args: &'a [String],
    pub cmdline: &'a str,
    pub exit: &'a str,
    pub wall_ms: u64,
    pub qemu_stderr: &'a str,
    /// What the run's time came from (see [`crate::trust`]).
    pub mode: Mode,
    /// Cores each application can use at once (empty without a scenario).
    pub capacities: BTreeMap<String, u32>,
    /// Thread names by (application, id), as the tables name them (empty
    /// without a scenario): [`crate::scenario_run::thread_names`].
    pub thread_names: BTreeMap<(String, u32), String>,
}

/// Whether the guest's view (the boot record's `hypervisor`, from CPUID)
/// agrees with the accelerator QEMU was started with; null when the guest
/// did not say (it never booted, or named another hypervisor).
fn accel_confirmed(accel: &str, hypervisor: &Value) -> Value {
    match hypervisor.as_str() {
        Some("KVM") => json!(accel == "kvm"),
        Some("TCG") => json!(accel == "tcg"),
        _ => Value::Null,
    }
}

/// A warning when the guest saw a different accelerator than the one QEMU
/// was started with.
pub fn accel_mismatch(summary: &Value) -> Option<String> {
    (summary["accel_confirmed"] == json!(false)).then(|| {
        format!(
            "QEMU ran with {} but the guest reports hypervisor {}",
            summary["accel"], summary["hypervisor"]
        )
    })
}

/// The summary object (the README lists its fields).
pub fn build(f: &RunFacts<'_>, r: &Records) -> Value {
    let boot = r.first(RecordKind::Boot).cloned().unwrap_or(Value::Null);
    let mut cores: Vec<Value> = r
        .of(RecordKind::CoreStats)
        .map(|c| {
            json!({
                "core": c["core"], "apic_id": c["apic_id"], "ticks": c["ticks"], "ipis": c["ipis"],
                "idle_ns": c.get("idle_ns").cloned().unwrap_or(Value::Null),
                "stolen_ns": c.get("stolen_ns").cloned().unwrap_or(Value::Null),
                "late_start_asked_ns": c.get("late_start_asked_ns").cloned().unwrap_or(Value::Null),
                "late_start_ns": c.get("late_start_ns").cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    if cores.is_empty() {
        // No stats (the run ended early): still list the cores that came up.
        cores = r
            .of(RecordKind::CoreOnline)
            .map(|c| {
                json!({
                    "core": c["core"], "apic_id": c["apic_id"],
                    "ticks": null, "ipis": null, "idle_ns": null,
                })
            })
            .collect();
    }
    let hypervisor = boot.get("hypervisor").cloned().unwrap_or(Value::Null);
    let mut m = Map::new();
    m.insert("run_name".into(), json!(f.run_name));
    m.insert("started_utc".into(), json!(f.started_utc));
    m.insert("commit".into(), json!(f.commit));
    m.insert("sched".into(), json!(f.sched));
    m.insert("cpus_requested".into(), json!(f.cpus_requested));
    m.insert(
        "cpus_online".into(),
        boot.get("cpus_online").cloned().unwrap_or(Value::Null),
    );
    m.insert("accel_requested".into(), json!(f.accel_requested));
    m.insert("accel".into(), json!(f.accel));
    m.insert(
        "accel_confirmed".into(),
        accel_confirmed(f.accel, &hypervisor),
    );
    m.insert("hypervisor".into(), hypervisor);
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
    m.insert(
        "trust".into(),
        trust::assess_records(f.mode, r, f.capacities.clone(), f.thread_names.clone()),
    );
    if !f.qemu_stderr.trim().is_empty() {
        m.insert("qemu_stderr".into(), json!(f.qemu_stderr.trim()));
    }
    Value::Object(m)
}

/// Each environment with how many of its turns the kernel repossessed
/// (took the core back past the grace period), the abort protocol's
/// figure, from a run's `summary.json`: `demo 3 of 2952 (0.10%); …`, for
/// the final table and `just compare`. An environment that ended before
/// the run did has no end-of-run figures (`envs`): its repossessions are
/// counted from the events, without the turns they were of.
pub fn turns_repossessed(summary: &Value) -> Option<String> {
    let envs = summary["envs"].as_array().map_or(&[][..], Vec::as_slice);
    let events = summary["events"].as_array().map_or(&[][..], Vec::as_slice);
    let mut each: Vec<String> = envs
        .iter()
        .filter_map(|e| {
            let turns = e["turns"].as_u64().filter(|&t| t > 0)?;
            let taken = e["repossessions"].as_u64()?;
            Some(format!(
                "{} {taken} of {turns} ({:.2}%)",
                e["name"].as_str().unwrap_or("?"),
                100.0 * taken as f64 / turns as f64
            ))
        })
        .collect();
    let at_end = |env: &Value| envs.iter().any(|e| e["env"] == *env);
    // A run cut short (interrupted, timed out) has no end-of-run figures
    // at all: no environment ended before it.
    let why = if envs.is_empty() {
        "the run was cut short before its end-of-run figures: turns not counted"
    } else {
        "ended before the run: its turns not counted"
    };
    for spawned in events.iter().filter(|e| e["event"] == "spawned") {
        if at_end(&spawned["env"]) {
            continue;
        }
        let taken = events
            .iter()
            .filter(|e| e["event"] == "repossession" && e["env"] == spawned["env"])
            .count();
        each.push(format!(
            "{} {taken} ({why})",
            spawned["name"].as_str().unwrap_or("?")
        ));
    }
    (!each.is_empty()).then(|| each.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_lines_give_each_environment_s_turns_repossessed() {
        let summary = serde_json::json!({
            "envs": [
                {"env": 512, "name": "demo#2", "turns": 2952, "repossessions": 3},
                {"env": 9, "name": "idle-helper", "turns": 0, "repossessions": 0},
                {"env": 768, "name": "batch", "turns": 400, "repossessions": 0},
            ],
            "events": [
                {"event": "spawned", "env": 256, "name": "demo"},
                {"event": "repossession", "env": 256},
                {"event": "repossession", "env": 512},
                {"event": "repossession", "env": 256},
                {"event": "killed", "env": 256},
                {"event": "spawned", "env": 512, "name": "demo#2"},
                {"event": "spawned", "env": 768, "name": "batch"},
            ],
        });
        assert_eq!(
            turns_repossessed(&summary).unwrap(),
            "demo#2 3 of 2952 (0.10%); batch 0 of 400 (0.00%); \
             demo 2 (ended before the run: its turns not counted)"
        );
        assert_eq!(turns_repossessed(&serde_json::json!({"envs": []})), None);
        // Cut short: no environment has end-of-run figures.
        let cut = serde_json::json!({"events": summary["events"].clone()});
        assert_eq!(
            turns_repossessed(&cut).unwrap(),
            "demo 2 (the run was cut short before its end-of-run figures: turns not counted); \
             demo#2 1 (the run was cut short before its end-of-run figures: turns not counted); \
             batch 0 (the run was cut short before its end-of-run figures: turns not counted)"
        );
        assert_eq!(turns_repossessed(&Value::Null), None);
    }

    const LOG: &str = "[c0 INFO ] hello\n\
        @@exo core_online {\"core\":0,\"apic_id\":0}\n\
        [c1 INFO ] noise @@exo core_online {\"core\":1,\"apic_id\":1}\n\
        @@exo boot {\"cpus_online\":2,\"cpus_described\":2,\"apic_mode\":\"xapic\",\"tsc_khz\":2000000,\"hypervisor\":\"TCG\",\"timer_source\":\"pit\",\"a_later_field\":[1,2]}\n\
        @@exo check {\"test\":\"t\",\"check\":\"a\",\"ok\":true,\"detail\":\"\"}\n\
        @@exo check {\"test\":\"t\",\"check\":\"b\",\"ok\":false,\"detail\":\"x\"}\n\
        @@exo core_stats {\"core\":0,\"apic_id\":0,\"ticks\":10,\"ipis\":0}\n\
        @@exo core_stats {\"core\":1,\"apic_id\":1,\"ticks\":11,\"ipis\":1,\"idle_ns\":5,\"stolen_ns\":7,\"late_start_asked_ns\":30,\"late_start_ns\":31}\n\
        @@exo end {\"exit\":\"success\"\n";

    fn facts<'a>(accel: &'a str, args: &'a [String]) -> RunFacts<'a> {
        RunFacts {
            run_name: "r".into(),
            started_utc: "20260101-000000".into(),
            commit: "abc".into(),
            sched: "stride",
            cpus_requested: 4,
            accel_requested: "auto",
            accel,
            machine: "pc".into(),
            cpu_model: "max".into(),
            qemu_args: args,
            cmdline: "sched=stride",
            exit: "success",
            wall_ms: 5,
            qemu_stderr: "",
            mode: Mode::Tcg,
            capacities: BTreeMap::new(),
            thread_names: BTreeMap::new(),
        }
    }

    #[test]
    fn records_are_parsed_and_broken_ones_skipped() {
        let r = parse_records(LOG);
        assert_eq!(
            r.of(RecordKind::CoreOnline).count(),
            1,
            "a record mid-line is someone's text, not a record"
        );
        assert_eq!(r.failed_checks().len(), 1);
        assert!(
            r.first(RecordKind::End).is_none(),
            "truncated JSON is skipped"
        );
        assert_eq!(r.first(RecordKind::Boot).unwrap()["a_later_field"][1], 2);
    }

    #[test]
    fn summary_has_the_promised_fields() {
        let args = ["-smp".to_string(), "4".to_string()];
        let s = build(&facts("tcg", &args), &parse_records(LOG));
        for key in [
            "commit",
            "cpus_requested",
            "cpus_online",
            "accel",
            "accel_requested",
            "hypervisor",
            "machine",
            "cpu_model",
            "qemu_args",
            "cmdline",
            "exit",
            "wall_ms",
            "apic_mode",
            "tsc_khz",
            "cores",
            "checks",
        ] {
            assert!(s.get(key).is_some(), "missing {key}");
        }
        assert_eq!(s["cpus_requested"], 4);
        assert_eq!(s["cpus_online"], 2);
        assert_eq!(s["accel"], "tcg");
        assert_eq!(s["accel_requested"], "auto");
        assert_eq!(s["hypervisor"], "TCG");
        assert_eq!(s["accel_confirmed"], true);
        assert_eq!(s["apic_mode"], "xapic");
        assert_eq!(s["tsc_khz"], 2_000_000);
        assert_eq!(s["qemu_args"][1], "4");
        assert_eq!(s["cores"][1]["ticks"], 11);
        assert_eq!(s["cores"][1]["apic_id"], 1);
        assert_eq!(s["cores"][1]["idle_ns"], 5);
        assert_eq!(s["cores"][1]["stolen_ns"], 7);
        assert_eq!(s["cores"][1]["late_start_asked_ns"], 30);
        assert_eq!(s["cores"][1]["late_start_ns"], 31);
        assert_eq!(s["cores"][0]["late_start_ns"], Value::Null);
        assert_eq!(s["checks"].as_array().unwrap().len(), 2);
        assert_eq!(s["checks"][1]["ok"], false);
        assert!(accel_mismatch(&s).is_none());
    }

    #[test]
    fn guest_contradicting_the_accelerator_is_flagged() {
        let s = build(&facts("kvm", &[]), &parse_records(LOG));
        assert_eq!(s["accel_confirmed"], false);
        assert!(accel_mismatch(&s).unwrap().contains("TCG"));
    }

    #[test]
    fn a_run_that_never_booted_still_summarises() {
        let early = "@@exo core_online {\"core\":0,\"apic_id\":0}\n[c0 PANIC] oops\n";
        let s = build(&facts("tcg", &[]), &parse_records(early));
        assert_eq!(s["cpus_online"], Value::Null);
        assert_eq!(s["hypervisor"], Value::Null);
        assert_eq!(s["accel_confirmed"], Value::Null);
        assert_eq!(s["cores"][0]["apic_id"], 0);
        assert_eq!(s["cores"][0]["ticks"], Value::Null);
        assert_eq!(s["checks"], json!([]));
        let s = build(&facts("tcg", &[]), &parse_records(""));
        assert_eq!(s["cores"], json!([]));
    }
}
