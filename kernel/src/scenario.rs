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

use abi::record::RecordKind;
use abi::ExitCode;
use kernel::launch::{AppLaunch, Plan};
use spin::Mutex;

use crate::sync::BootCell;
use crate::{env, exported, record, run, sched, smp, time};

/// The program every scenario application runs.
const APP_PROGRAM: &str = "app";

static PLAN: BootCell<Plan<'static>> = BootCell::new();

struct State {
    /// Per plan application: its environment's id while it runs (an id,
    /// not a reference: an application that exits must not keep its
    /// environment's kernel state alive).
    running: Vec<Option<u32>>,
    /// Per plan application: whether its scheduled start/stop has happened.
    started: Vec<bool>,
    stopped: Vec<bool>,
    /// The console line being typed.
    line: String,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// The launch plan, when the runner passed one.
pub fn plan() -> Option<Result<Plan<'static>, kernel::launch::LaunchError>> {
    let bytes = run::program_named("scenario")?;
    let text = core::str::from_utf8(bytes).map_err(|_| kernel::launch::LaunchError {
        line: 0,
        what: "not UTF-8",
    });
    Some(text.and_then(Plan::parse))
}

/// Whether this is a scenario run.
pub fn active() -> bool {
    PLAN.try_get().is_some()
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
    if run::program_named(APP_PROGRAM).is_none() {
        return Err("the `app` program is missing from the boot modules");
    }
    let n = plan.len();
    crate::invariants::set_baseline();
    *STATE.lock() = Some(State {
        running: (0..n).map(|_| None).collect(),
        started: alloc::vec![false; n],
        stopped: alloc::vec![false; n],
        line: String::new(),
    });
    // Everything due at 0 starts together, interleaved in every vector.
    let due: Vec<(usize, Arc<env::Env>)> = plan
        .apps()
        .enumerate()
        .filter(|(_, a)| a.start_ms == 0)
        .map(|(i, a)| spawn(&a).map(|e| (i, e)))
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
            state.running[i] = Some(e.id);
        }
    }
    run::start(run_ms, || true);
    Ok(())
}

fn spawn(app: &AppLaunch<'_>) -> Result<Arc<env::Env>, &'static str> {
    let image = run::program_named(APP_PROGRAM).ok_or("no app program")?;
    env::spawn(
        app.name,
        image,
        u32::MAX,
        abi::syscall::NO_ENV,
        app.args.as_bytes(),
    )
    .map_err(|_| "spawn failed")
}

/// Starts `app` now, with its slots taken wherever they are free.
fn start(state: &mut State, i: usize, app: &AppLaunch<'_>) -> Result<(), &'static str> {
    if state.running[i].and_then(env::get).is_some() {
        return Err("already running");
    }
    let e = spawn(app)?;
    for core in (0..smp::cores()).filter(|&c| app.on_core(c)) {
        sched::grant_interleaved(core, &[(&*e, app.slots_per_core)])
            .map_err(|_| "no free slots")?;
    }
    state.running[i] = Some(e.id);
    Ok(())
}

fn stop(state: &mut State, i: usize) -> Result<(), &'static str> {
    let e = state.running[i]
        .take()
        .and_then(env::get)
        .ok_or("not running")?;
    env::kill(&e, env::ExitReason::Killed("stopped by the scenario"));
    Ok(())
}

/// Core 0's monitor: starts and stops applications whose time has come and
/// runs console commands. Returns the exit code when the console quits.
pub fn on_monitor() -> Option<ExitCode> {
    let plan = *PLAN.try_get()?;
    let mut guard = STATE.try_lock()?;
    let state = guard.as_mut()?;
    let elapsed_ms = run::elapsed_ns() / 1_000_000;
    for (i, app) in plan.apps().enumerate() {
        if !state.started[i] && elapsed_ms >= app.start_ms {
            state.started[i] = true;
            if let Err(e) = start(state, i, &app) {
                log::warn!("scenario: starting {} failed: {e}", app.name);
            }
        }
        if !state.stopped[i] && app.stop_ms.is_some_and(|t| elapsed_ms >= t) {
            state.stopped[i] = true;
            let _ = stop(state, i);
        }
    }
    crate::serial::poll_input();
    while let Some(b) = crate::serial::read_byte() {
        match b {
            b'\r' | b'\n' => {
                let line = core::mem::take(&mut state.line);
                if let Some(code) = command(plan, state, line.trim()) {
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

/// Runs one console command; every command is also recorded as an event.
fn command(plan: Plan<'static>, state: &mut State, line: &str) -> Option<ExitCode> {
    if line.is_empty() {
        return None;
    }
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    let app_index = |name: &str| plan.apps().position(|a| a.name == name);
    let target = words.get(1).and_then(|n| app_index(n));
    let env_of = |state: &State, i: usize| state.running[i].and_then(env::get);
    let outcome: Result<(), &str> = match (words[0], words.len()) {
        ("q" | "quit", 1) => {
            console_event(line, abi::syscall::NO_ENV as u64, "ok");
            return Some(ExitCode::UserQuit);
        }
        ("help", _) => {
            log::info!("commands: list | slices <core> | swap <app> <stride|lottery|rr> | tickets <app> <thread> <n> | start <app> | stop <app> | quit");
            Ok(())
        }
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
                e.post(&msg);
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
            .and_then(|i| stop(state, i)),
        _ => Err("unknown command or wrong arguments (try `help`)"),
    };
    let env = target
        .and_then(|i| state.running[i])
        .unwrap_or(abi::syscall::NO_ENV);
    match outcome {
        Ok(()) => console_event(line, u64::from(env), "ok"),
        Err(why) => {
            log::warn!("console: `{line}`: {why}");
            console_event(line, u64::from(env), why)
        }
    }
    None
}

fn console_event(line: &str, env: u64, outcome: &str) {
    record::emit(
        RecordKind::Event,
        format_args!(
            "\"event\":\"console\",\"env\":{env},\"core\":0,\"t_ns\":{},\"command\":\"{}\",\"outcome\":\"{outcome}\"",
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

fn show_slices(core: usize) {
    let slices = exported::core_slices_of(core);
    let mut line = String::new();
    for slot in 0..sched::config().slots {
        let owner = slices.owners[slot].load(core::sync::atomic::Ordering::Relaxed);
        let name = env::get(owner).map_or(String::from("-"), |e| String::from(e.name()));
        let _ = write!(line, " {slot}:{name}");
    }
    log::info!(
        "core {core}: current slot {}, running env {}:{line}",
        slices
            .current_slot
            .load(core::sync::atomic::Ordering::Relaxed),
        slices
            .running_env
            .load(core::sync::atomic::Ordering::Relaxed)
    );
}
