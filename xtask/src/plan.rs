//! `dry_run=1`: what a command would do, checked as far as it can be
//! without building or booting — the scenario parsed and validated, the
//! kernel test known, the accelerator resolved — and printed: the QEMU
//! command line, the kernel's command line, where the results would go.

use std::fmt::Write as _;
use std::io::IsTerminal;

use crate::qemu::{
    choose, describe_choice, kernel_cmdline, kvm_kind, kvm_usable, prepare, qemu_args, KvmKind,
};
use crate::{Accel, RunOptions};

/// The first line of every dry run (the docs test looks for it).
pub const HEADER: &str = "dry run: checked, nothing built or booted";

/// `word` quoted for a POSIX shell when it needs it.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=+/.,:@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// What accelerator `accel` is on this host for the benchmark, in words
/// ([`crate::Accel::resolve`]: `auto` takes `/dev/kvm` only when it is
/// hardware-assisted).
pub fn accel_line(accel: Accel, det: bool) -> String {
    if det {
        return "tcg, deterministic (one thread, -icount): same scenario, same measurements".into();
    }
    let resolved = accel.resolve();
    let what = if resolved == Accel::Tcg {
        "emulated".to_string()
    } else {
        format!("KVM {}", kvm_kind())
    };
    if accel == Accel::Auto {
        let why = if resolved == Accel::Tcg && kvm_usable() {
            format!(
                "; KVM here is {}, whose times are not hardware's",
                KvmKind::of_host().short()
            )
        } else {
            String::new()
        };
        format!("auto -> {} ({what}{why})", resolved.name())
    } else {
        format!("{} ({what})", resolved.name())
    }
}

/// What a scenario run with `accel` runs on here, in words
/// ([`crate::qemu::choose`]).
pub fn scenario_accel_line(accel: Accel) -> String {
    describe_choice(&choose(
        accel,
        false,
        true,
        kvm_usable(),
        KvmKind::of_host(),
    ))
}

/// Checks a run's inputs as [`crate::run`] would before it builds and
/// describes the run: scenario, kernel and QEMU command lines, results
/// directory.
pub fn run(opts: &RunOptions) -> Result<String, String> {
    let mut t = String::new();
    if let Some(test) = &opts.test {
        crate::kernel_tests::check(test)?;
        let _ = writeln!(t, "test       {test} (a kernel test)");
    }
    // What the run does before it builds: the same step.
    let p = prepare(opts, std::io::stdin().is_terminal()).map_err(|e| e.to_string())?;
    let o = &p.opts;
    match (&p.scenario, &opts.scenario) {
        (Some(s), Some(path)) => {
            let threads: usize = s
                .apps
                .iter()
                .map(|a| crate::scenario::expand_threads(a.get_ref()).len())
                .sum();
            let _ = writeln!(
                t,
                "scenario   {} (\"{}\": {} application(s), {threads} thread(s), {} ms; valid on {} cores)",
                path.display(),
                s.name,
                s.apps.len(),
                s.duration_ms,
                o.cpus
            );
        }
        _ if o.test.is_none() => {
            let _ = writeln!(t, "scenario   none: the platform alone, its cores ticking");
        }
        _ => {}
    }
    if let (Some(script), Some(path)) = (&p.script, &opts.console) {
        let n = abi::console_script::Script::parse(script).map_or(0, |s| s.len());
        let _ = writeln!(t, "console    {} ({n} timed commands)", path.display());
    }
    let _ = writeln!(t, "cores      {}", o.cpus);
    let _ = writeln!(t, "accel      {}", describe_choice(&p.choice));
    let cmdline = kernel_cmdline(o);
    let _ = writeln!(t, "kernel     {cmdline}");
    let kernel = "target/x86_64-unknown-none/release/kernel";
    let initrd = (o.scenario.is_some() || o.programs).then_some("target/boot-modules.bin");
    let args = qemu_args(o, o.accel, kernel, initrd, &cmdline);
    let _ = writeln!(
        t,
        "would run  qemu-system-x86_64 {}",
        args.iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(
        t,
        "timeout    {}",
        if o.timeout.is_zero() {
            "none".to_string()
        } else {
            format!("{} s", o.timeout.as_secs())
        }
    );
    let _ = writeln!(
        t,
        "results    {}/{}",
        o.runs_dir
            .as_ref()
            .map_or("results/runs".to_string(), |d| d.display().to_string()),
        o.name
            .clone()
            .unwrap_or_else(|| format!("<UTC yyyymmdd-hhmmss>-{}-{}c", p.sched_label, o.cpus))
    );
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_a_shell_would_split_are_quoted() {
        assert_eq!(shell_quote("-smp"), "-smp");
        assert_eq!(
            shell_quote("sched=stride run_ms=5"),
            "'sched=stride run_ms=5'"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn a_scenario_run_is_described_with_the_scenario_s_kernel_words() {
        let opts = RunOptions {
            scenario: Some(crate::build::workspace_root().join("scenarios/default.toml")),
            sched: "lottery".into(),
            sched_override: true,
            cpus: 2,
            accel: Accel::Tcg,
            qemu_extra: vec!["-cpu".into(), "qemu64".into()],
            name: Some("mine".into()),
            ..RunOptions::default()
        };
        let t = run(&opts).unwrap();
        assert!(t.contains("\"default\""), "{t}");
        assert!(t.contains("sched=lottery"), "{t}");
        assert!(t.contains("-smp 2"), "{t}");
        assert!(t.contains("-cpu qemu64"), "{t}");
        assert!(t.contains("results/runs/mine"), "{t}");
        assert!(t.contains("run_ms="), "{t}");
    }

    #[test]
    fn a_dry_run_describes_what_the_run_would_really_do() {
        let script = crate::build::workspace_root().join("scenarios/console-demo.txt");
        let lottery = std::env::temp_dir().join(format!("exo-plan-{}.toml", std::process::id()));
        std::fs::write(
            &lottery,
            "[[app]]\nname = \"a\"\nscheduler = \"lottery\"\n[[app.thread]]\nbehaviour = \"cpu\"\n",
        )
        .unwrap();
        let opts = RunOptions {
            scenario: Some(lottery.clone()),
            console: Some(script),
            cpus: 2,
            det: true,
            ..RunOptions::default()
        };
        let t = run(&opts).unwrap();
        assert!(t.contains("console-demo.txt (9 timed commands)"), "{t}");
        assert!(t.contains("interleave_us=50"), "{t}");
        assert!(t.contains("-lottery-2c"), "named after its scheduler: {t}");
        assert!(t.contains("accel      deterministic TCG"), "{t}");
        let bad = RunOptions {
            console: Some(lottery.clone()),
            ..opts
        };
        assert!(run(&bad).unwrap_err().contains("console script rejected"));
        std::fs::remove_file(&lottery).unwrap();
    }

    #[test]
    fn a_bad_scenario_or_test_is_refused() {
        let missing = RunOptions {
            scenario: Some("scenarios/nonesuch.toml".into()),
            ..RunOptions::default()
        };
        assert!(run(&missing).is_err());
        let bad = RunOptions {
            test: Some("nonesuch".into()),
            ..RunOptions::default()
        };
        let e = run(&bad).unwrap_err();
        assert!(e.contains("sched_env"), "{e}");
    }

    #[test]
    fn a_deterministic_run_says_so_and_asks_qemu_for_icount() {
        let opts = RunOptions {
            det: true,
            test: Some("boot".into()),
            ..RunOptions::default()
        };
        let t = run(&opts).unwrap();
        assert!(t.contains("deterministic"), "{t}");
        assert!(t.contains("-icount shift=1,"), "{t}");
        assert!(t.contains("test=boot"), "{t}");
        assert!(t.contains("interleave_us="), "{t}");
        let one = run(&RunOptions {
            cpus: 1,
            ..opts.clone()
        })
        .unwrap();
        assert!(!one.contains("interleave_us="), "{one}");
    }
}
