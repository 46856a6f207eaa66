//! What a run's options become before anything is built: the scenario and
//! console script validated, the accelerator chosen, the kernel command
//! line completed. One step, shared by the run itself and its dry run
//! (`plan`), so what a dry run describes is what a run does.

use super::{choose, kvm_usable, Accel, Choice, KvmKind, RunOptions, DET_INTERLEAVE_US};
use crate::scenario::Scenario;
use crate::Error;

/// A run's options as it will run.
#[derive(Debug)]
pub struct Prepared {
    /// `accel` is `Kvm` or `Tcg` and `det` as chosen; the kernel command
    /// line carries the scenario's words (and `interleave_us=` for a
    /// deterministic run on several cores); `run_ms` is set for a scenario.
    pub opts: RunOptions,
    /// The scenario, validated (with `sched=` applied).
    pub scenario: Option<Scenario>,
    /// The console script's text, validated.
    pub script: Option<String>,
    pub choice: Choice,
    /// The accelerator asked for.
    pub accel_requested: Accel,
    /// What the run is called after and reports as its scheduler: the one
    /// `sched=` imposed, else the scenario's own (`mixed` when its
    /// applications differ).
    pub sched_label: String,
}

/// Validates and resolves `opts`. `terminal`: whether stdin is a terminal
/// (an interactive run of the default scenario then lasts until `quit`).
pub fn prepare(opts: &RunOptions, terminal: bool) -> Result<Prepared, Error> {
    let scenario = match &opts.scenario {
        Some(path) => {
            let mut s = crate::scenario::load(path, opts.cpus).map_err(Error::Scenario)?;
            s.check_memory(opts.memory_mib)
                .map_err(|e| Error::Scenario(format!("{}: {e}", path.display())))?;
            if opts.sched_override {
                let dropped = s.override_scheduler(&opts.sched);
                if dropped > 0 {
                    eprintln!(
                        "sched={}: every application starts under it; the scenario's {dropped} swap event(s) are left out (drop sched= to keep them)",
                        opts.sched
                    );
                }
            }
            Some(s)
        }
        None => None,
    };
    let script = match &opts.console {
        Some(path) if scenario.is_some() => Some(load_console_script(path)?),
        Some(_) => {
            return Err(Error::ConsoleScript(
                "console= needs a scenario run (the console script drives its applications)".into(),
            ))
        }
        None => None,
    };
    let interactive = opts.stream && terminal && opts.input.is_empty();
    let mut o = opts.clone();
    if let Some(s) = &scenario {
        o.cmdline.splice(0..0, s.cmdline());
        if interactive && o.until_quit {
            // Until `quit` (kernel run_ms=0), however long that is.
            o.run_ms = Some(0);
            o.timeout = std::time::Duration::ZERO;
        }
        o.run_ms.get_or_insert(s.duration_ms);
    }
    let sched_label = match &scenario {
        Some(s) if !o.sched_override => scheduler_label(s),
        _ => o.sched.clone(),
    };
    let choice = choose(
        o.accel,
        o.det,
        scenario.is_some(),
        kvm_usable(),
        KvmKind::of_host(),
    );
    let accel_requested = o.accel;
    o.accel = choice.accel;
    o.det = choice.det;
    if o.det && o.cpus > 1 {
        let asked = |cmdline: &[String], key: &str| cmdline.iter().any(|w| w.starts_with(key));
        if !asked(&o.cmdline, "interleave_us=") {
            o.cmdline.push(format!("interleave_us={DET_INTERLEAVE_US}"));
        }
        // Idle cores spin: QEMU moves the clock of a machine whose vCPUs
        // have all halted at a moment host timing picks (the kernel's
        // `idle_spin`), so runs with idle time did not repeat.
        if !asked(&o.cmdline, "idle_spin=") {
            o.cmdline.push("idle_spin=1".into());
        }
        // A deterministic multicore run is one sample of how the emulator
        // interleaves its vCPUs: the seed picks the sample (each core
        // starts a seed-derived moment late), so runs differing in seed
        // are trials of one build (`trials=`, the canonical experiments).
        if let Some(s) = scenario
            .as_ref()
            .filter(|_| !asked(&o.cmdline, "stagger_seed="))
        {
            o.cmdline.push(format!("stagger_seed={}", s.seed));
        }
    }
    Ok(Prepared {
        opts: o,
        scenario,
        script,
        choice,
        accel_requested,
        sched_label,
    })
}

/// Reads and validates a console script (`abi::console_script`).
fn load_console_script(path: &std::path::Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
    abi::console_script::Script::parse(&text)
        .map_err(|e| Error::ConsoleScript(format!("{}: {e}", path.display())))?;
    Ok(text)
}

/// The scheduler a scenario's applications start with: theirs when they
/// agree, else `mixed`.
fn scheduler_label(s: &crate::scenario::Scenario) -> String {
    let mut scheds = s.apps.iter().map(|a| a.get_ref().scheduler.as_str());
    let first = scheds
        .next()
        .unwrap_or(sched_registry::default_policy().kind.name());
    if scheds.all(|x| x == first) {
        first.to_string()
    } else {
        "mixed".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_named_after_the_scheduler_its_applications_use() {
        let app = |name: &str, sched: &str| {
            format!("[[app]]\nname = \"{name}\"\nscheduler = \"{sched}\"\n[[app.thread]]\nbehaviour = \"cpu\"\n")
        };
        let parse = |text: &str| crate::scenario::parse(text, "s", 2).unwrap();
        assert_eq!(scheduler_label(&parse(&app("a", "lottery"))), "lottery");
        let both = app("a", "rr") + &app("b", "rr");
        assert_eq!(scheduler_label(&parse(&both)), "rr");
        let mixed = app("a", "lottery") + &app("b", "stride");
        assert_eq!(scheduler_label(&parse(&mixed)), "mixed");
    }

    #[test]
    fn a_console_script_is_checked_before_anything_runs() {
        let dir = std::env::temp_dir().join(format!("exo-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.txt");
        std::fs::write(&good, "# hi\n100 swap demo rr\n200 quit\n").unwrap();
        assert_eq!(
            load_console_script(&good).unwrap(),
            "# hi\n100 swap demo rr\n200 quit\n"
        );
        let bad = dir.join("bad.txt");
        std::fs::write(&bad, "100 swap demo rr\n50 quit\n").unwrap();
        let why = load_console_script(&bad).unwrap_err().to_string();
        assert!(
            why.contains("bad.txt") && why.contains("line 2") && why.contains("decrease"),
            "{why}"
        );
        let opts = RunOptions {
            console: Some(good),
            ..RunOptions::default()
        };
        let why = prepare(&opts, false).unwrap_err().to_string();
        assert!(why.contains("needs a scenario"), "{why}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_interactive_default_run_lasts_until_quit() {
        let scenario = crate::build::workspace_root().join("scenarios/default.toml");
        let opts = RunOptions {
            scenario: Some(scenario),
            until_quit: true,
            stream: true,
            det: true,
            ..RunOptions::default()
        };
        let at_terminal = prepare(&opts, true).unwrap();
        assert_eq!(at_terminal.opts.run_ms, Some(0));
        assert!(at_terminal.opts.timeout.is_zero());
        let piped = prepare(&opts, false).unwrap();
        assert_eq!(piped.opts.run_ms, Some(5000));
        assert!(!piped.opts.timeout.is_zero());
        // det on 4 cores: the scenario's words, then the interleave, idle
        // cores that spin and the scenario's seed for the cores' staggered
        // starts.
        assert_eq!(
            piped.opts.cmdline,
            [
                "slice_us=2000",
                "grace_us=200",
                "interleave_us=50",
                "idle_spin=1",
                "stagger_seed=1"
            ]
        );
        assert_eq!((piped.opts.accel, piped.opts.det), (Accel::Tcg, true));
        assert_eq!(piped.sched_label, "stride");
    }
}
