//! Whether a run's times can be trusted, and the evidence.
//!
//! Every figure a run reports is built on the guest's clock. That clock is
//! right only where a vCPU runs whenever the guest thinks it does:
//! hardware-assisted KVM on an idle host, or deterministic TCG (`-icount`),
//! where time *is* executed instructions. Elsewhere the host deschedules a
//! vCPU thread while the guest's clock keeps following the host's, and the
//! time it was away is charged to whatever that core was running. Under
//! plain TCG on this 2-core host, a vCPU away for 480 ms came back to a
//! slice-end timer 482 ms late, and the libOS (which then charged a thread
//! `cpu_clock(core) - started[core]` when its epilogue finally ran; since
//! 57ae1a5 the charge stops at the revocation instant, but time away before
//! it still reads as CPU) charged one thread 484 ms inside a 221 ms sample
//! window.
//!
//! So a run is assessed twice: by its mode (what it ran on), and by
//! consistency checks on what it recorded, each with its figure and limit.
//! [`Windows`] runs the per-sample checks as samples arrive (the live
//! table), [`assess`] everything at the end (`summary.json`'s `trust`).

use std::collections::BTreeMap;

use abi::record::RecordKind;
use serde_json::{json, Value};

use crate::records::Records;

/// What a run's time came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// KVM on a host whose CPU has VMX or SVM.
    HardwareKvm,
    /// KVM served by `kvm_pvm`: the guest kernel runs deprivileged, every
    /// kernel entry and `rdtsc` traps; its times are PVM's, not hardware's.
    PvmKvm,
    /// KVM on a host that shows neither VMX/SVM nor `kvm_pvm`.
    UnknownKvm,
    /// TCG with one host thread per vCPU: guest time follows the host's.
    Tcg,
    /// Deterministic TCG (`-icount`): guest time counts instructions.
    DetTcg,
}

impl Mode {
    /// The name written to `summary.json` (`trust.mode`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::HardwareKvm => "hardware-kvm",
            Mode::PvmKvm => "pvm-kvm",
            Mode::UnknownKvm => "unknown-kvm",
            Mode::Tcg => "tcg",
            Mode::DetTcg => "det-tcg",
        }
    }

    /// Whether the guest's time is virtual (instructions, not the host's
    /// clock): then host load cannot bend it.
    pub fn virtual_time(self) -> bool {
        self == Mode::DetTcg
    }

    /// Why the mode alone makes figures inexact, if it does.
    pub fn why_untrusted(self) -> Option<&'static str> {
        match self {
            Mode::HardwareKvm | Mode::DetTcg => None,
            Mode::PvmKvm => Some(
                "KVM here is PVM (kvm_pvm, no VMX): every kernel entry and clock read traps, \
                 and host preemption is charged as CPU; det=1 gives exact figures",
            ),
            Mode::UnknownKvm => Some(
                "KVM on a host showing neither VMX/SVM nor kvm_pvm: not known to be hardware; \
                 det=1 gives exact figures",
            ),
            Mode::Tcg => Some(
                "non-deterministic TCG: guest time follows the host's, and time a vCPU is \
                 descheduled by the host is charged as CPU; det=1 gives exact figures",
            ),
        }
    }
}

/// A back-to-back `rdtsc` costing at least this many cycles traps to the
/// hypervisor (measured: 56 under TCG, ~6,000 under PVM).
pub const RDTSC_TRAP_CYCLES: u64 = 1000;

/// A slice-end timer later than this many slices means the core was away
/// (its vCPU descheduled). Measured at 2 ms slices: deterministic runs of
/// the default scenario 0.15 ms (4 cores) and 1.8 ms (8 cores) at most
/// (before the kernel kept det cores' deadlines interleaved, 2.9-10 ms);
/// plain TCG beside one busy process 71-482 ms; this machine's PVM 133 ms.
pub const LATE_TIMER_SLICES: u64 = 5;

/// The kernel's slice and grace (from the boot record's command line,
/// else the kernel's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub slice_ns: u64,
    pub grace_ns: u64,
}

impl Limits {
    /// One charge can legitimately reach back this far before a window
    /// opened: a thread charged at its epilogue for a whole turn.
    pub fn slack_ns(self) -> u64 {
        self.slice_ns + self.grace_ns
    }

    pub fn from_records(r: &Records) -> Limits {
        let cmdline = r
            .first(RecordKind::Boot)
            .and_then(|b| b["cmdline"].as_str())
            .unwrap_or("");
        Limits::from_cmdline(cmdline)
    }

    /// From kernel command-line words (`slice_us=`, `grace_us=`; the
    /// kernel's defaults 2000 and 200 otherwise; the last word wins, as in
    /// the kernel).
    pub fn from_cmdline(cmdline: &str) -> Limits {
        let mut l = Limits {
            slice_ns: 2_000_000,
            grace_ns: 200_000,
        };
        for w in cmdline.split_whitespace() {
            if let Some(v) = w
                .strip_prefix("slice_us=")
                .and_then(|v| v.parse::<u64>().ok())
            {
                l.slice_ns = v * 1000;
            }
            if let Some(v) = w
                .strip_prefix("grace_us=")
                .and_then(|v| v.parse::<u64>().ok())
            {
                l.grace_ns = v * 1000;
            }
        }
        l
    }
}

/// One window in which more was charged than could have run.
#[derive(Clone, Debug, PartialEq)]
pub struct Overcharge {
    /// `app/thread` (thread check; the thread named as the tables name it)
    /// or `app` (application check).
    pub who: String,
    /// End of the window, ns since boot.
    pub t_ns: u64,
    pub charged_ns: u64,
    pub window_ns: u64,
    /// How many cores it could have used: 1 for a thread.
    pub cores: u32,
}

impl Overcharge {
    /// Charged time over what `cores` cores could give in the window.
    pub fn ratio(&self) -> f64 {
        self.charged_ns as f64 / (self.window_ns.max(1) as f64 * f64::from(self.cores))
    }

    /// What it was, its window's end on the clock of the run that started
    /// at `start_ns` (ns since boot): see [`run_time`].
    pub fn describe(&self, start_ns: u64) -> String {
        format!(
            "{}: {:.1} ms charged in a {:.1} ms window{} ending {}",
            self.who,
            self.charged_ns as f64 / 1e6,
            self.window_ns as f64 / 1e6,
            if self.cores > 1 {
                format!(" on {} cores", self.cores)
            } else {
                String::new()
            },
            run_time(self.t_ns, start_ns)
        )
    }
}

/// An instant `t_ns` (ns since boot, as records give it) on the run's
/// clock, which the figures count from (the run's start, `start_ns`):
/// `412.0 ms into the run`, with the `t_ns` the run's CSV files list it
/// under.
pub fn run_time(t_ns: u64, start_ns: u64) -> String {
    format!(
        "{:.1} ms into the run (t_ns {t_ns})",
        t_ns.saturating_sub(start_ns) as f64 / 1e6
    )
}

/// The worst window of one check and how many broke the limit.
#[derive(Clone, Debug, Default)]
pub struct WindowCheck {
    pub windows: u64,
    pub violations: u64,
    pub worst: Option<Overcharge>,
}

impl WindowCheck {
    /// Takes one window; returns it when it breaks the limit (`slack_ns`
    /// of legitimate reach-back per core).
    fn take(&mut self, o: Overcharge, slack_ns: u64) -> Option<Overcharge> {
        self.windows += 1;
        if self.worst.as_ref().is_none_or(|w| o.ratio() > w.ratio()) {
            self.worst = Some(o.clone());
        }
        let allowed = (o.window_ns + slack_ns) * u64::from(o.cores);
        (o.charged_ns > allowed).then(|| {
            self.violations += 1;
            o
        })
    }

    fn to_json(&self, check: &str, what: &str, start_ns: u64) -> Value {
        let worst = self.worst.as_ref();
        json!({
            "check": check,
            "ok": if self.windows == 0 { Value::Null } else { json!(self.violations == 0) },
            "figure": worst.map(Overcharge::ratio),
            "limit": 1.0,
            "unit": "charged / (window x cores), each core allowed one slice + grace of reach-back",
            "windows": self.windows,
            "violations": self.violations,
            "detail": match worst {
                None => format!("no sample windows: {what} not checked"),
                Some(w) => format!("worst {}", w.describe(start_ns)),
            },
        })
    }
}

/// The per-sample checks, fed `user` records as they arrive: no thread is
/// charged more than its window (one core), no application more than its
/// window times the cores it holds slots on.
#[derive(Clone, Debug)]
pub struct Windows {
    limits: Limits,
    /// Cores each application (by name) can use at once.
    capacities: BTreeMap<String, u32>,
    /// Thread names by (application, id), from the scenario, as the tables
    /// name threads (`crate::scenario_run::thread_names`).
    names: BTreeMap<(String, u32), String>,
    /// The run's start so far (ns since boot): the earliest `app_start`.
    start_ns: Option<u64>,
    /// Per (env, thread id): the last sample's time and CPU.
    last: BTreeMap<(u64, u64), (u64, u64)>,
    /// Per env: the snapshot being collected (its time, the application's
    /// name, CPU charged since each thread's previous sample, the
    /// longest such window).
    open: BTreeMap<u64, (u64, String, u64, u64)>,
    pub thread: WindowCheck,
    pub app: WindowCheck,
}

impl Windows {
    pub fn new(limits: Limits, capacities: BTreeMap<String, u32>) -> Windows {
        Windows {
            limits,
            capacities,
            names: BTreeMap::new(),
            start_ns: None,
            last: BTreeMap::new(),
            open: BTreeMap::new(),
            thread: WindowCheck::default(),
            app: WindowCheck::default(),
        }
    }

    /// Names threads as the tables do (by (application, id); a thread
    /// without a name is `t<id>`).
    pub fn with_names(self, names: BTreeMap<(String, u32), String>) -> Windows {
        Windows { names, ..self }
    }

    /// The run's start as far as the records taken show it (ns since boot;
    /// 0 before any application started), as
    /// [`crate::scenario_run::run_start_ns`] reads it from them all.
    pub fn start_ns(&self) -> u64 {
        self.start_ns.unwrap_or(0)
    }

    /// Takes one `user` record (others are ignored); returns the windows it
    /// showed overcharged.
    pub fn record(&mut self, v: &Value) -> Vec<Overcharge> {
        let mut bad = Vec::new();
        if let Some(t) = crate::scenario_run::app_start_ns(v) {
            self.start_ns = Some(self.start_ns.map_or(t, |s| s.min(t)));
        }
        if v["kind"] != "sample" {
            return bad;
        }
        let (Some(env), Some(t), Some(app)) =
            (v["env"].as_u64(), v["t_ns"].as_u64(), v["name"].as_str())
        else {
            return bad;
        };
        if self.open.get(&env).is_some_and(|o| o.0 != t) {
            bad.extend(self.close(env));
        }
        let slack = self.limits.slack_ns();
        // A restarted instance (`demo#2`) has its application's threads.
        let base = app.split_once('#').map_or(app, |(base, _)| base);
        let open = self
            .open
            .entry(env)
            .or_insert_with(|| (t, app.to_string(), 0, 0));
        for row in v["th"].as_array().into_iter().flatten() {
            let (Some(id), Some(cpu)) = (row[0].as_u64(), row[2].as_u64()) else {
                continue;
            };
            let Some((t0, cpu0)) = self.last.insert((env, id), (t, cpu)) else {
                continue;
            };
            if t <= t0 {
                continue;
            }
            let charged = cpu.saturating_sub(cpu0);
            open.2 += charged;
            open.3 = open.3.max(t - t0);
            let thread = u32::try_from(id)
                .ok()
                .and_then(|id| self.names.get(&(base.to_string(), id)))
                .cloned()
                .unwrap_or_else(|| format!("t{id}"));
            bad.extend(self.thread.take(
                Overcharge {
                    who: format!("{app}/{thread}"),
                    t_ns: t,
                    charged_ns: charged,
                    window_ns: t - t0,
                    cores: 1,
                },
                slack,
            ));
        }
        bad
    }

    /// Closes every open snapshot (at the end of a run).
    pub fn finish(&mut self) -> Vec<Overcharge> {
        let envs: Vec<u64> = self.open.keys().copied().collect();
        envs.into_iter().flat_map(|e| self.close(e)).collect()
    }

    fn close(&mut self, env: u64) -> Option<Overcharge> {
        let (t, app, charged, window) = self.open.remove(&env)?;
        if window == 0 {
            return None;
        }
        // A restarted instance (`demo#2`) holds its application's slots.
        let base = app.split_once('#').map_or(app.as_str(), |(base, _)| base);
        let cores = self.capacities.get(base).copied().unwrap_or(1).max(1);
        self.app.take(
            Overcharge {
                who: app,
                t_ns: t,
                charged_ns: charged,
                window_ns: window,
                cores,
            },
            self.limits.slack_ns(),
        )
    }
}

fn check(name: &str, ok: Option<bool>, figure: Value, limit: Value, detail: String) -> Value {
    json!({"check": name, "ok": ok, "figure": figure, "limit": limit, "detail": detail})
}

/// The mode itself: only hardware KVM and deterministic TCG give exact times.
fn mode_check(mode: Mode) -> Value {
    check(
        "mode",
        Some(mode.why_untrusted().is_none()),
        json!(mode.name()),
        json!("hardware-kvm or det-tcg"),
        mode.why_untrusted()
            .unwrap_or("time is the hardware's or virtual")
            .to_string(),
    )
}

/// The guest's own view: a trapping `rdtsc` is not hardware-assisted KVM.
fn rdtsc_check(r: &Records) -> Value {
    let cycles = r
        .first(RecordKind::Boot)
        .and_then(|b| b["rdtsc_cycles"].as_u64());
    check(
        "guest_rdtsc_native",
        cycles.map(|c| c < RDTSC_TRAP_CYCLES),
        json!(cycles),
        json!(RDTSC_TRAP_CYCLES),
        match cycles {
            None => "the guest did not say (no boot record)".into(),
            Some(c) if c < RDTSC_TRAP_CYCLES => {
                format!("back-to-back rdtsc: {c} cycles (runs without trapping)")
            }
            Some(c) => format!(
                "back-to-back rdtsc: {c} cycles: every clock read traps to the hypervisor (PVM does this)"
            ),
        },
    )
}

/// Per core, what the kernel charged (environments and idle) within the
/// time that passed.
fn core_charge_check(r: &Records, limits: Limits) -> Value {
    let duration = r
        .of(RecordKind::EnvStats)
        .find_map(|e| e["duration_ns"].as_u64());
    let mut per_core: BTreeMap<usize, u64> = BTreeMap::new();
    for e in r.of(RecordKind::EnvStats) {
        for (c, ns) in e["cpu_ns"].as_array().into_iter().flatten().enumerate() {
            *per_core.entry(c).or_default() += ns.as_u64().unwrap_or(0);
        }
    }
    for c in r.of(RecordKind::CoreStats) {
        if let (Some(core), Some(idle)) = (c["core"].as_u64(), c["idle_ns"].as_u64()) {
            *per_core.entry(core as usize).or_default() += idle;
        }
    }
    let Some(duration) = duration.filter(|&d| d > 0 && !per_core.is_empty()) else {
        return check(
            "core_charge_within_elapsed",
            None,
            Value::Null,
            json!(1.0),
            "no environment statistics: not checked".into(),
        );
    };
    let (core, charged) = per_core
        .iter()
        .max_by_key(|(_, ns)| **ns)
        .map(|(c, ns)| (*c, *ns))
        .expect("not empty");
    let ratio = charged as f64 / duration as f64;
    let limit = 1.0 + limits.slack_ns() as f64 / duration as f64;
    check(
        "core_charge_within_elapsed",
        Some(ratio <= limit),
        json!(ratio),
        json!(limit),
        format!(
            "core {core}: {:.1} ms charged (environments + idle) in {:.1} ms",
            charged as f64 / 1e6,
            duration as f64 / 1e6
        ),
    )
}

/// Per application instance: its threads' CPU (last sample) within what
/// the kernel charged its environment.
fn threads_within_env_check(r: &Records) -> Value {
    let env_cpu: BTreeMap<u64, u64> = r
        .of(RecordKind::EnvStats)
        .filter_map(|e| {
            let cpu = e["cpu_ns"]
                .as_array()?
                .iter()
                .filter_map(Value::as_u64)
                .sum();
            Some((e["env"].as_u64()?, cpu))
        })
        .collect();
    let mut threads: BTreeMap<u64, (String, BTreeMap<u64, u64>)> = BTreeMap::new();
    for v in r.of(RecordKind::User).filter(|v| v["kind"] == "sample") {
        let (Some(env), Some(name)) = (v["env"].as_u64(), v["name"].as_str()) else {
            continue;
        };
        let entry = threads
            .entry(env)
            .or_insert_with(|| (name.to_string(), BTreeMap::new()));
        for row in v["th"].as_array().into_iter().flatten() {
            if let (Some(id), Some(cpu)) = (row[0].as_u64(), row[2].as_u64()) {
                entry.1.insert(id, cpu);
            }
        }
    }
    let mut worst: Option<(f64, String)> = None;
    for (env, (name, th)) in &threads {
        let Some(&kernel) = env_cpu.get(env) else {
            continue;
        };
        let sum: u64 = th.values().sum();
        let ratio = sum as f64 / kernel.max(1) as f64;
        if worst.as_ref().is_none_or(|w| ratio > w.0) {
            worst = Some((
                ratio,
                format!(
                    "{name} (env {env}): threads {:.1} ms, environment {:.1} ms",
                    sum as f64 / 1e6,
                    kernel as f64 / 1e6
                ),
            ));
        }
    }
    match worst {
        None => check(
            "threads_within_env",
            None,
            Value::Null,
            json!(1.0),
            "no samples from a live environment: not checked".into(),
        ),
        Some((ratio, detail)) => check(
            "threads_within_env",
            Some(ratio <= 1.0),
            json!(ratio),
            json!(1.0),
            detail,
        ),
    }
}

/// How late slice-end timers fired (the kernel's `revocation` latencies):
/// a core whose vCPU the host descheduled comes back to a timer late by
/// the time it was away — the gaps between a core's ticks.
fn late_timer_check(r: &Records, limits: Limits) -> Value {
    let late: Vec<u64> = r
        .of(RecordKind::Latency)
        .filter(|l| l["kind"] == "revocation")
        .flat_map(|l| {
            l["ns"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .collect::<Vec<_>>()
        })
        .collect();
    let limit = LATE_TIMER_SLICES * limits.slice_ns;
    let Some(&max) = late.iter().max() else {
        return check(
            "timer_gaps",
            None,
            Value::Null,
            json!(limit),
            "no revocations recorded: not checked".into(),
        );
    };
    let over = late.iter().filter(|&&l| l > limit).count();
    let over_slice = late.iter().filter(|&&l| l > limits.slice_ns).count();
    let mut c = check(
        "timer_gaps",
        Some(max <= limit),
        json!(max),
        json!(limit),
        format!(
            "latest slice-end timer {:.2} ms after its deadline; {over} of {} later than {LATE_TIMER_SLICES} slices, {over_slice} later than one",
            max as f64 / 1e6,
            late.len()
        ),
    );
    c["unit"] = json!("ns");
    c
}

/// Every application that exited did so with code 0: one that died (a
/// libOS panic is code 101) leaves figures of an experiment that did not
/// run as planned. Kills are the kernel's or the console's and show as
/// `killed` events, not here.
fn clean_exits_check(r: &Records, start_ns: u64) -> Value {
    let died: Vec<String> = r
        .of(RecordKind::Event)
        .filter(|e| e["event"] == "exited")
        .filter(|e| e["code"].as_u64() != Some(0))
        .map(|e| {
            format!(
                "{} (env {}) exited with code {}, {}",
                e["name"].as_str().unwrap_or("?"),
                e["env"],
                e["code"],
                run_time(e["t_ns"].as_u64().unwrap_or(0), start_ns)
            )
        })
        .collect();
    if died.is_empty() && r.of(RecordKind::User).next().is_none() {
        return check(
            "applications_exited_cleanly",
            None,
            Value::Null,
            json!(0),
            "no application reported: not checked".into(),
        );
    }
    let detail = if died.is_empty() {
        "no application exited with an error".to_string()
    } else {
        died.join("; ")
    };
    check(
        "applications_exited_cleanly",
        Some(died.is_empty()),
        json!(died.len()),
        json!(0),
        detail,
    )
}

/// The `trust` object of `summary.json`: the mode, whether time is
/// virtual, every check with its figure and limit, and the verdict.
/// `windows` is the per-sample checker after every record went through it
/// and [`Windows::finish`].
pub fn assess(mode: Mode, r: &Records, windows: &Windows) -> Value {
    let limits = Limits::from_records(r);
    // The clock details give instants on: the run's, as its figures.
    let start = crate::scenario_run::run_start_ns(r.of(RecordKind::User));
    let checks = vec![
        mode_check(mode),
        rdtsc_check(r),
        windows
            .thread
            .to_json("thread_charge_within_window", "per-thread charges", start),
        windows
            .app
            .to_json("app_charge_within_window", "per-application charges", start),
        core_charge_check(r, limits),
        threads_within_env_check(r),
        late_timer_check(r, limits),
        clean_exits_check(r, start),
    ];
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c["ok"] == json!(false))
        .map(|c| {
            format!(
                "{}: {}",
                c["check"].as_str().unwrap_or(""),
                c["detail"].as_str().unwrap_or("")
            )
        })
        .collect();
    json!({
        "mode": mode.name(),
        "virtual_time": mode.virtual_time(),
        "slice_ns": limits.slice_ns,
        "grace_ns": limits.grace_ns,
        "trusted": failed.is_empty(),
        "why_not": failed,
        "checks": checks,
    })
}

/// `sleeps_placed`: no thread's sleep left unplaced in time by more than
/// one slice (`apps` is `summary.json`'s, `sleep_unlogged_ns` per thread).
/// Unplaced sleep counts as runnable, so it moves the ideal shares: a
/// sleep log that overflowed, or records lost. `ok` is null when no
/// thread slept.
pub fn sleeps_placed_check(apps: &Value, slice_ns: u64) -> Value {
    let mut slept = false;
    let mut worst: Option<(u64, String)> = None;
    for app in apps.as_array().into_iter().flatten() {
        for t in app["threads"].as_array().into_iter().flatten() {
            slept |= t["sleep_ns"].as_u64().is_some_and(|s| s > 0);
            let unplaced = t["sleep_unlogged_ns"].as_u64().unwrap_or(0);
            if worst.as_ref().is_none_or(|w| unplaced > w.0) {
                let who = format!(
                    "{}/{}",
                    app["name"].as_str().unwrap_or("?"),
                    t["name"].as_str().unwrap_or("?")
                );
                worst = Some((unplaced, who));
            }
        }
    }
    let (figure, who) = worst.unwrap_or((0, String::new()));
    json!({
        "check": "sleeps_placed",
        "detail": format!(
            "worst {who}: {:.3} ms of sleep not placed in time (counted as runnable)",
            figure as f64 / 1e6
        ),
        "figure": figure,
        "limit": slice_ns,
        "unit": "ns of a thread's sleep its records did not place; one slice allowed",
        "ok": slept.then_some(figure <= slice_ns),
    })
}

/// Adds `check` to a `trust` object made by [`assess`], updating its
/// verdict (a check whose `ok` is false makes the run not trusted).
pub fn add_check(trust: &mut Value, check: Value) {
    if check["ok"] == json!(false) {
        trust["trusted"] = json!(false);
        let why = format!(
            "{}: {}",
            check["check"].as_str().unwrap_or(""),
            check["detail"].as_str().unwrap_or("")
        );
        if let Some(list) = trust["why_not"].as_array_mut() {
            list.push(json!(why));
        } else {
            trust["why_not"] = json!([why]);
        }
    }
    if let Some(list) = trust["checks"].as_array_mut() {
        list.push(check);
    } else {
        trust["checks"] = json!([check]);
    }
}

/// Runs every `user` record through a fresh [`Windows`] and assesses.
pub fn assess_records(
    mode: Mode,
    r: &Records,
    capacities: BTreeMap<String, u32>,
    names: BTreeMap<(String, u32), String>,
) -> Value {
    let mut w = Windows::new(Limits::from_records(r), capacities).with_names(names);
    for v in r.of(RecordKind::User) {
        w.record(v);
    }
    w.finish();
    assess(mode, r, &w)
}

/// The loud line the tables print when a run's shares cannot be trusted.
pub fn warning(trust: &Value) -> Option<String> {
    if trust["trusted"] != json!(false) {
        return None;
    }
    let why: Vec<&str> = trust["why_not"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    Some(format!(
        "!! THESE SHARES CANNOT BE TRUSTED ({}):\n!!   {}",
        trust["mode"].as_str().unwrap_or("?"),
        why.join("\n!!   ")
    ))
}

/// The line the tables end with: the loud [`warning`], or what was
/// checked. A run that measured nothing (it ended before any sample) is
/// not called trusted: there is nothing to trust.
pub fn verdict(trust: &Value) -> String {
    if let Some(w) = warning(trust) {
        return w;
    }
    let mode = trust["mode"].as_str().unwrap_or("?");
    let checks = trust["checks"].as_array().map_or(&[][..], Vec::as_slice);
    let measured: Vec<&Value> = checks.iter().filter(|c| c["check"] != "mode").collect();
    let passed = measured.iter().filter(|c| c["ok"] == json!(true)).count();
    if passed == 0 {
        format!("== nothing measured to check ({mode}): the run reported no samples or statistics")
    } else {
        format!(
            "== shares trusted ({mode}: {passed} of {} consistency checks passed, the rest had nothing to check)",
            measured.len()
        )
    }
}

#[cfg(test)]
mod tests;
