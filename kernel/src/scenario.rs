//! A scenario run. The runner compiles the user's scenario into a launch
//! plan (boot module `scenario`, see `kernel::launch`); this module starts
//! each application as an environment of the `app` program with its part
//! of the scenario as arguments, hands out its slots, starts and stops
//! applications on time, and serves the interactive console.
//!
//! Only mechanism lives here: which threads an application runs and which
//! scheduler it uses is its libOS's business. Console commands about threads
//! and schedulers are forwarded to the application's inbox; the kernel does
//! not interpret them.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Write;

use abi::console_script::Script;
use abi::record::RecordKind;
use abi::ExitCode;
use kernel::launch::{AppLaunch, Plan, APP_PROGRAM, DEFAULT_FRAME_QUOTA};
use spin::Mutex;

use crate::arch::{smp, time};
use crate::sync::BootCell;
use crate::{env, exported, record, run, sched};

static PLAN: BootCell<Plan<'static>> = BootCell::new();

struct State {
    /// Per plan application: its environment's id while it runs (an id,
    /// not a reference: an application that exits must not keep its
    /// environment's kernel state alive).
    running: Vec<Option<u32>>,
    /// Per plan application: whether its scheduled start/stop has happened.
    started: Vec<bool>,
    stopped: Vec<bool>,
    /// Per plan application: how many instances have been started (the
    /// second is named `<name>#2`, and so on, in every record).
    instances: Vec<u32>,
    /// The console line being typed.
    line: String,
    /// The runner's console script (boot module `console`), if any, and
    /// how many of its commands have run.
    script: Option<Script<'static>>,
    script_done: usize,
    /// When (ms into the run) the plan's next start or stop, and the
    /// script's next command, are due. The monitor runs at every one of
    /// core 0's scheduling decisions, and parsing the plan's text there
    /// each time cost 42 µs per decision (deterministic, 2 cores: 2% of
    /// core 0, charged to whichever environment it entered next; 1 µs
    /// since), so the plan, and likewise the script, is walked only when
    /// something in it is due.
    plan_due_ms: u64,
    script_due_ms: u64,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// The launch plan, when the runner passed one.
pub fn plan() -> Option<Result<Plan<'static>, kernel::launch::LaunchError>> {
    let bytes = crate::programs::program_named("scenario")?;
    let text = core::str::from_utf8(bytes).map_err(|_| kernel::launch::LaunchError {
        line: 0,
        what: "not UTF-8",
    });
    Some(text.and_then(Plan::parse))
}

/// The console script, when the runner passed one.
fn script() -> Option<Result<Script<'static>, abi::console_script::ScriptError>> {
    let bytes = crate::programs::program_named("console")?;
    Some(
        core::str::from_utf8(bytes)
            .map_err(|_| abi::console_script::ScriptError {
                line: 0,
                what: "not UTF-8",
            })
            .and_then(Script::parse),
    )
}

/// Slots every core's vector needs: the most any core's applications hold
/// at one time (applications that come and go share slots), or the plan's
/// `slots` when larger (room for slice changes).
pub fn slots_needed(plan: &Plan<'_>) -> usize {
    (0..smp::cores())
        .map(|core| plan.slots_at_once(core))
        .max()
        .unwrap_or(0)
        .max(plan.slots.unwrap_or(0))
        .max(1)
}

/// Starts the applications due at time 0 and the run itself.
pub fn setup(plan: Plan<'static>, run_ms: u64) -> Result<(), &'static str> {
    let plan = *PLAN.init(plan);
    if crate::programs::program_named(APP_PROGRAM).is_none() {
        return Err("the `app` program is missing from the boot modules");
    }
    if plan
        .apps()
        .any(|a| crate::programs::program_named(a.program).is_none())
    {
        return Err("a plan entry names a program missing from the boot modules");
    }
    let n = plan.len();
    crate::invariants::set_baseline();
    let script = script()
        .transpose()
        .map_err(|_| "the console script is malformed")?;
    if let Some(s) = &script {
        log::info!("console script: {} commands", s.len());
    }
    *STATE.lock() = Some(State {
        running: (0..n).map(|_| None).collect(),
        started: alloc::vec![false; n],
        stopped: alloc::vec![false; n],
        instances: alloc::vec![0; n],
        line: String::new(),
        script,
        script_done: 0,
        plan_due_ms: 0,
        script_due_ms: 0,
    });
    // Everything due at 0 starts together, interleaved in every vector.
    let due: Vec<(usize, Arc<env::Env>)> = plan
        .apps()
        .enumerate()
        .filter(|(_, a)| a.start_ms == 0)
        .map(|(i, a)| spawn(&a, a.name).map(|e| (i, e)))
        .collect::<Result<_, _>>()?;
    for core in 0..smp::cores() {
        let wants: Vec<(&env::Env, usize)> = due
            .iter()
            .map(|(i, e)| {
                (
                    &**e,
                    plan.apps()
                        .nth(*i)
                        .filter(|a| a.on_core(core))
                        .map_or(0, |a| a.slots_per_core),
                )
            })
            .collect();
        sched::grant_interleaved(core, &wants).map_err(|_| "slot allocation failed")?;
    }
    {
        let mut state = STATE.lock();
        let state = state.as_mut().expect("set above");
        for (i, e) in due {
            state.started[i] = true;
            state.instances[i] = 1;
            state.running[i] = Some(e.id);
        }
    }
    run::start(run_ms, || true, || true, Some(on_monitor));
    Ok(())
}

fn spawn(app: &AppLaunch<'_>, name: &str) -> Result<Arc<env::Env>, &'static str> {
    let image = crate::programs::program_named(app.program).ok_or("no such program")?;
    env::spawn_with_frames(
        name,
        image,
        u32::MAX,
        app.frame_quota.unwrap_or(DEFAULT_FRAME_QUOTA),
        abi::syscall::NO_ENV,
        app.args.as_bytes(),
    )
    .map_err(|_| "spawn failed")
}

/// Starts `app` now, with its slots taken wherever they are free. A
/// restarted application is a new instance with its own accounting and
/// its own name: `<name>#2`, `#3`, ...
fn start(state: &mut State, i: usize, app: &AppLaunch<'_>) -> Result<(), &'static str> {
    if state.running[i].and_then(env::get).is_some() {
        return Err("already running");
    }
    let instance = state.instances[i] + 1;
    let name = if instance == 1 {
        String::from(app.name)
    } else {
        alloc::format!("{}#{instance}", app.name)
    };
    let e = spawn(app, &name)?;
    state.instances[i] = instance;
    // A scheduler environment's client holds none: its time is donated.
    for core in (0..smp::cores()).filter(|&c| app.on_core(c) && app.slots_per_core > 0) {
        sched::grant_interleaved(core, &[(&*e, app.slots_per_core)])
            .map_err(|_| "no free slots")?;
    }
    state.running[i] = Some(e.id);
    Ok(())
}

/// Stops application `i`; `why` is the reason its `killed` event gives.
fn stop(state: &mut State, i: usize, why: &'static str) -> Result<(), &'static str> {
    let e = state.running[i]
        .take()
        .and_then(env::get)
        .ok_or("not running")?;
    crate::sched::kill(&e, env::ExitReason::Killed(why));
    Ok(())
}

/// Core 0's monitor: starts and stops applications whose time has come and
/// runs console commands. Returns the exit code when the console quits.
pub fn on_monitor() -> Option<ExitCode> {
    let plan = *PLAN.try_get()?;
    let mut guard = STATE.try_lock()?;
    let state = guard.as_mut()?;
    let elapsed_ms = run::elapsed_ns() / 1_000_000;
    if elapsed_ms >= state.plan_due_ms {
        let mut due = u64::MAX;
        for (i, app) in plan.apps().enumerate() {
            if !state.started[i] && elapsed_ms >= app.start_ms {
                state.started[i] = true;
                if let Err(e) = start(state, i, &app) {
                    log::warn!("scenario: starting {} failed: {e}", app.name);
                }
            }
            if !state.stopped[i] && app.stop_ms.is_some_and(|t| elapsed_ms >= t) {
                state.stopped[i] = true;
                let _ = stop(state, i, "stopped by the scenario");
            }
            if !state.started[i] {
                due = due.min(app.start_ms);
            }
            if let Some(t) = app.stop_ms.filter(|_| !state.stopped[i]) {
                due = due.min(t);
            }
        }
        state.plan_due_ms = due;
    }
    // The script's commands whose time has come, as if typed.
    if elapsed_ms >= state.script_due_ms {
        while let Some((_, cmd)) = state
            .script
            .and_then(|s| s.commands().nth(state.script_done))
            .filter(|&(t, _)| elapsed_ms >= t)
        {
            state.script_done += 1;
            if let Some(code) = command(plan, state, cmd, "script") {
                return Some(code);
            }
        }
        state.script_due_ms = state
            .script
            .and_then(|s| s.commands().nth(state.script_done))
            .map_or(u64::MAX, |(t, _)| t);
    }
    crate::arch::serial::poll_input();
    while let Some(b) = crate::arch::serial::read_byte() {
        match b {
            b'\r' | b'\n' => {
                let line = core::mem::take(&mut state.line);
                if let Some(code) = command(plan, state, line.trim(), "console") {
                    return Some(code);
                }
            }
            0x08 | 0x7f => {
                state.line.pop();
            }
            b if b.is_ascii() && !b.is_ascii_control() && state.line.len() < 200 => {
                state.line.push(b as char)
            }
            _ => {}
        }
    }
    None
}

/// The reason a `stop` command gives its application's `killed` event:
/// a user reading the events tells a console's stop from the plan's.
fn stopped_by(source: &str) -> &'static str {
    if source == "script" {
        "stopped by the console script"
    } else {
        "stopped from the console"
    }
}

/// Runs one console command (`source`: typed on the `console` or from the
/// `script`); every command is also recorded as an event with its outcome:
/// `ok`, the error, or `forwarded` with the inbox message's sequence number
/// for commands the application carries out (it reports their outcome).
fn command(plan: Plan<'static>, state: &mut State, line: &str, source: &str) -> Option<ExitCode> {
    if line.is_empty() {
        return None;
    }
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    // An instance's name (`demo#2`) names its application.
    let app_index = |name: &str| {
        let base = name.split_once('#').map_or(name, |(base, _)| base);
        plan.apps().position(|a| a.name == base)
    };
    let target = words.get(1).and_then(|n| app_index(n));
    let env_of = |state: &State, i: usize| state.running[i].and_then(env::get);
    // The environment the command concerned: the one running before it (a
    // `stop` ends it), else the one after (a `start` makes it).
    let env_before = target.and_then(|i| state.running[i]);
    let mut forwarded = None;
    let outcome: Result<(), &str> = match (words[0], words.len()) {
        ("q" | "quit", 1) => {
            console_event(line, abi::syscall::NO_ENV as u64, "ok", source, None);
            return Some(ExitCode::UserQuit);
        }
        ("help", _) => {
            log::info!(
                "commands: list | slices <core> | swap <app> <policy> | tickets <app> <thread name or id> <n> | window <seconds> | start <app> | stop <app> | quit (policies: {})",
                sched_registry::names_sentence()
            );
            Ok(())
        }
        // The runner's live table shows shares over the last `s` seconds
        // beside the cumulative ones (0: cumulative only); the kernel only
        // checks and records it.
        ("window", 2) => match words[1].parse::<u32>() {
            Ok(s) if s <= 3600 => Ok(()),
            _ => Err("window takes whole seconds, 0..=3600"),
        },
        ("list", 1) => {
            list(plan, state);
            Ok(())
        }
        ("slices", 2) => match words[1].parse::<usize>() {
            Ok(core) if core < smp::cores() => {
                show_slices(core);
                Ok(())
            }
            _ => Err("no such core"),
        },
        ("swap", 3) | ("tickets", 4) => match target.map(|i| env_of(state, i)) {
            Some(Some(e)) => {
                // The application's libOS does the work; it replies in its log.
                let mut msg = String::from(words[0]);
                for w in &words[2..] {
                    msg.push(' ');
                    msg.push_str(w);
                }
                forwarded = Some(e.post(&msg));
                Ok(())
            }
            Some(None) => Err("application not running"),
            None => Err("no such application"),
        },
        ("start", 2) => match target {
            Some(i) => plan
                .apps()
                .nth(i)
                .ok_or("no such application")
                .and_then(|a| start(state, i, &a)),
            None => Err("no such application"),
        },
        ("stop", 2) => target
            .ok_or("no such application")
            .and_then(|i| stop(state, i, stopped_by(source))),
        _ => Err("unknown command or wrong arguments (try `help`)"),
    };
    let env = env_before
        .or_else(|| target.and_then(|i| state.running[i]))
        .unwrap_or(abi::syscall::NO_ENV);
    match (outcome, forwarded) {
        (Ok(()), Some(seq)) => console_event(line, u64::from(env), "forwarded", source, Some(seq)),
        (Ok(()), None) => console_event(line, u64::from(env), "ok", source, None),
        (Err(why), _) => {
            log::warn!("console: `{line}`: {why}");
            console_event(line, u64::from(env), why, source, None)
        }
    }
    None
}

fn console_event(line: &str, env: u64, outcome: &str, source: &str, seq: Option<u64>) {
    let mut seq_field = String::new();
    if let Some(seq) = seq {
        let _ = write!(seq_field, ",\"seq\":{seq}");
    }
    record::emit(
        RecordKind::Event,
        format_args!(
            "\"event\":\"console\",\"env\":{env},\"core\":0,\"t_ns\":{},\"command\":\"{}\",\"outcome\":\"{outcome}\",\"source\":\"{source}\"{seq_field}",
            time::now_ns(),
            line.replace(['"', '\\'], "'")
        ),
    );
}

fn list(plan: Plan<'static>, state: &State) {
    for (i, app) in plan.apps().enumerate() {
        match state.running[i].and_then(env::get) {
            Some(e) => {
                let cpu: u64 = e
                    .account()
                    .cpu_ns
                    .iter()
                    .take(smp::cores())
                    .map(|c| c.load(core::sync::atomic::Ordering::Relaxed))
                    .sum();
                log::info!(
                    "app {} env {} running: {} slots, cpu {} ms",
                    app.name,
                    e.id,
                    e.account()
                        .slots_held
                        .load(core::sync::atomic::Ordering::Relaxed),
                    cpu / 1_000_000
                );
                // Its threads are the libOS's to list.
                e.post("list");
            }
            None => log::info!("app {} not running", app.name),
        }
    }
}

/// An environment's name as the console shows it (`-` for none).
fn env_name(id: u32) -> String {
    if id == abi::syscall::NO_ENV {
        return String::from("-");
    }
    env::get(id).map_or_else(
        || alloc::format!("(gone: env {id})"),
        |e| String::from(e.name()),
    )
}

fn show_slices(core: usize) {
    let slices = exported::core_slices_of(core);
    let mut line = String::new();
    for slot in 0..sched::config().slots {
        let owner = slices.owners[slot].load(core::sync::atomic::Ordering::Relaxed);
        let _ = write!(line, " {slot}:{}", env_name(owner));
    }
    let running = slices
        .running_env
        .load(core::sync::atomic::Ordering::Relaxed);
    log::info!(
        "core {core}: current slot {}, running {}; slots (slot:owner):{line}",
        slices
            .current_slot
            .load(core::sync::atomic::Ordering::Relaxed),
        if running == abi::syscall::NO_ENV {
            String::from("nothing (idle)")
        } else {
            alloc::format!("{} (env {running})", env_name(running))
        }
    );
}
