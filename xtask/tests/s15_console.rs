//! Layer 15: the console as an experiment drives it — a scripted session
//! from a file (`console=`), the same session piped into the runner's
//! stdin, and a command typed on a terminal during the boot, all
//! deterministic: a scheduler swapped and tickets set by
//! thread name take effect, and failed commands are logged as failed,
//! never as `ok`.
mod common;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;
use xtask::{Accel, RunOptions};

const SCENARIO: &str = r#"
duration_ms = 3000
slice_us = 1000
[[app]]
name = "w"
scheduler = "stride"
[[app.thread]]
name = "t100"
tickets = 100
behaviour = "cpu"
[[app.thread]]
name = "t200"
tickets = 200
behaviour = "cpu"
[[app.thread]]
name = "t300"
tickets = 300
behaviour = "cpu"
"#;

/// The session, in order; the last two fail (no such scheduler, no such
/// thread), as does a command the kernel does not know.
const COMMANDS: [&str; 5] = [
    "swap w lottery",
    "tickets w t300 900",
    "swap w foo",
    "tickets w nobody 5",
    "frobnicate",
];

fn file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("exo-s15-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The `console` rows of events.csv, in order: the command line and what
/// happened (`<command> -> <outcome>`).
fn console_rows(run_dir: &Path) -> Vec<String> {
    let events = std::fs::read_to_string(run_dir.join("events.csv")).unwrap();
    events
        .lines()
        .filter(|l| l.split(',').nth(1) == Some("console"))
        .map(|l| {
            let detail = l.splitn(6, ',').nth(5).unwrap_or("");
            detail.trim_matches('"').to_string()
        })
        .collect()
}

/// What every session must show, in the run's rows and summary.
fn assert_session(rows: &[String], summary: &Value, suffix: &str) {
    let want = [
        format!("swap w lottery -> ok{suffix}"),
        format!("tickets w t300 900 -> ok{suffix}"),
        format!(
            "swap w foo -> no scheduler `foo` ({}){suffix}",
            sched_registry::names_sentence()
        ),
        format!("tickets w nobody 5 -> no thread `nobody` (a thread's name or id){suffix}"),
        format!("frobnicate -> unknown command or wrong arguments (try `help`){suffix}"),
    ];
    assert_eq!(rows, want, "events.csv console rows");
    for row in rows.iter().skip(2) {
        assert!(
            !row.contains("-> ok"),
            "a failed command logged as ok: {row}"
        );
    }
    let app = &summary["apps"][0];
    let timeline = app["scheduler_timeline"].as_array().unwrap();
    assert_eq!(timeline.last().unwrap()["scheduler"], "lottery", "{app:#}");
    let t300 = app["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "t300")
        .unwrap();
    assert_eq!(t300["tickets"], 900);
    assert_eq!(summary["trust"]["mode"], "det-tcg");
    assert_eq!(summary["trust"]["virtual_time"], true);
}

#[test]
fn a_console_script_swaps_and_sets_tickets_by_name_and_logs_failures() {
    let scenario = file("console.toml", SCENARIO);
    let script: String = COMMANDS
        .iter()
        .enumerate()
        .map(|(k, c)| format!("{} {c}\n", 800 + 100 * k))
        .collect();
    // Then the script stops the application: its `killed` event says who
    // stopped it.
    let script = file(
        "session.txt",
        &format!("# the session\n{script}2000 stop w\n"),
    );
    let opts = RunOptions {
        scenario: Some(scenario),
        console: Some(script),
        det: true,
        ..options("console-script", 2, Accel::Tcg, "pc", &[], &[])
    };
    let out = run(&opts);
    assert_exit(&out, abi::ExitCode::Success);
    let rows = console_rows(&out.run_dir);
    assert_session(&rows[..5], &out.summary, " (script)");
    assert_eq!(rows[5..], ["stop w -> ok (script)"]);
    let killed: Vec<&Value> = out
        .records
        .of(abi::record::RecordKind::Event)
        .filter(|e| e["event"] == "killed")
        .collect();
    assert_eq!(killed.len(), 1, "{killed:?}");
    assert_eq!(killed[0]["reason"], "stopped by the console script");
    // The application's swap names the inbox message it carried out, and
    // the figures' events mark it as the script's.
    let swap = out
        .records
        .of(abi::record::RecordKind::User)
        .find(|r| r["kind"] == "app_event" && r["what"] == "swap")
        .expect("the swap's record");
    assert_eq!(
        (&swap["source"], &swap["seq"]),
        (&Value::from("console"), &Value::from(0))
    );
    let events = std::fs::read_to_string(out.run_dir.join("events.csv")).unwrap();
    assert!(
        events
            .lines()
            .any(|l| l.split(',').nth(1) == Some("swap") && l.ends_with("(script)\"")),
        "{events}"
    );
    // The commands ran at their times on the run's clock.
    let times: Vec<u64> = out
        .records
        .of(abi::record::RecordKind::Event)
        .filter(|e| e["event"] == "console")
        .filter_map(|e| e["t_ns"].as_u64())
        .collect();
    let start = out.summary["apps"][0]["scheduler_timeline"][0]["t_ns"]
        .as_u64()
        .unwrap();
    assert_eq!(times.len(), 6);
    for (k, t) in times.iter().take(5).enumerate() {
        let due = start + 800_000_000 + 100_000_000 * k as u64;
        // Run time counts from the run's start, just before the
        // application's; the monitor runs within a slice or two.
        assert!(
            *t + 5_000_000 >= due && *t <= due + 10_000_000,
            "command {k} at {t} ns, due at {due} ns"
        );
    }
}

#[test]
fn piped_console_input_is_carried_out_in_order_and_failures_are_logged() {
    let scenario = file("console-piped.toml", SCENARIO);
    let runs = test_runs_dir();
    let _serial = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "run",
            "--det",
            "--cpus",
            "2",
            "--name",
            "test-console-piped",
        ])
        .arg("--scenario")
        .arg(&scenario)
        .arg("--runs-dir")
        .arg(&runs)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the runner starts");
    let mut stdin = child.stdin.take().unwrap();
    for c in COMMANDS {
        writeln!(stdin, "{c}").unwrap();
    }
    // End of input is not `quit`: the run lasts its length.
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "runner failed: {stderr}");
    assert!(
        stderr
            .lines()
            .next()
            .unwrap_or("")
            .contains("deterministic TCG"),
        "first line: {stderr}"
    );
    let run_dir = stderr
        .lines()
        .rev()
        .find_map(|l| l.split("results in ").nth(1))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no results line in {stderr}"));
    assert!(run_dir.starts_with(&runs), "{}", run_dir.display());
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["exit"], "success");
    assert_session(&console_rows(&run_dir), &summary, "");
    // The final lines: the table with each thread's longest wait, the
    // turns repossessed, the verdict.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tail: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("== final shares"))
        .collect();
    assert!(
        tail.get(1).is_some_and(|h| h.ends_with("max(ms)")),
        "{stdout}"
    );
    assert!(
        tail.iter()
            .any(|l| l.starts_with("== turns repossessed: w ")),
        "{stdout}"
    );
    assert!(
        tail.iter().any(|l| l.starts_with("== shares trusted")),
        "{stdout}"
    );
}

/// A terminal on stdin (a pty, from `script`): a `quit` typed before the
/// kernel has booted is carried out once it is up, not lost with the
/// bytes the kernel's UART set-up drops (the run then lasted its length).
#[test]
fn a_command_typed_on_a_terminal_during_the_boot_is_carried_out() {
    let scenario = file("console-tty.toml", SCENARIO);
    let runs = test_runs_dir();
    let _serial = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
    let runner = format!(
        "{} run --det --cpus 2 --name test-console-tty --scenario {} --runs-dir {}",
        quote(Path::new(env!("CARGO_BIN_EXE_xtask"))),
        quote(&scenario),
        quote(&runs)
    );
    let mut child = Command::new("script")
        .args(["-qfec", &runner, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) (util-linux) starts");
    let mut stdin = child.stdin.take().unwrap();
    // At once: QEMU has not even started.
    stdin.write_all(b"quit\r").unwrap();
    stdin.flush().unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let run_dir = text
        .lines()
        .rev()
        .find_map(|l| l.split("results in ").nth(1))
        .map(|d| PathBuf::from(d.trim_end_matches('\r')))
        .unwrap_or_else(|| panic!("no results line in {text}"));
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["exit"], "user_quit", "{text}");
    drop(stdin);
}

/// A walk through the registered policies that takes every ordered pair
/// at least once: `0 -> 1 -> 0 -> 2 -> 0 ... -> 1 -> 2 -> 1 ...`.
fn every_pair_walk(n: usize) -> Vec<usize> {
    let mut walk = vec![0];
    for i in 0..n {
        if *walk.last().unwrap() != i {
            walk.push(i);
        }
        for j in i + 1..n {
            walk.extend([j, i]);
        }
    }
    walk
}

#[test]
fn the_walk_covers_every_ordered_pair() {
    for n in 1..6 {
        let walk = every_pair_walk(n);
        for i in 0..n {
            for j in (0..n).filter(|&j| j != i) {
                assert!(walk.windows(2).any(|w| w == [i, j]), "{n}: {i} -> {j}");
            }
        }
        assert!(walk.windows(2).all(|w| w[0] != w[1]));
    }
}

/// The console swaps one application, under load, from every registered
/// policy to every other (so a new policy is swapped to and from each of
/// the others by registering it); every swap is carried out, and the
/// application's scheduler timeline shows each one.
#[test]
fn the_console_swaps_between_every_ordered_pair_of_policies() {
    let names: Vec<&str> = sched_registry::names().collect();
    let walk = every_pair_walk(names.len());
    // A swap every 150 ms from 500 ms, and half a second after the last:
    // the run grows with the number of registered policies (four make 15
    // swaps, the last at 2.6 s: 3.1 s; a fifth 24, the last at 3.95 s).
    let last_swap_ms = 500 + 150 * walk.len().saturating_sub(2);
    let duration_ms = (last_swap_ms + 500).max(3000);
    assert!(SCENARIO.contains("duration_ms = 3000"));
    let text = SCENARIO.replace(
        "duration_ms = 3000",
        &format!("duration_ms = {duration_ms}"),
    );
    let scenario = file("pairs.toml", &text);
    let script: String = walk
        .iter()
        .skip(1)
        .enumerate()
        .map(|(k, &p)| format!("{} swap w {}\n", 500 + 150 * k, names[p]))
        .collect();
    let script = file("pairs.txt", &script);
    let opts = RunOptions {
        scenario: Some(scenario),
        console: Some(script),
        det: true,
        ..options("console-pairs", 2, Accel::Tcg, "pc", &[], &[])
    };
    let out = run(&opts);
    assert_exit(&out, abi::ExitCode::Success);
    let rows = console_rows(&out.run_dir);
    assert_eq!(rows.len(), walk.len() - 1, "{rows:#?}");
    for row in &rows {
        assert!(row.ends_with("-> ok (script)"), "{row}");
    }
    let app = &out.summary["apps"][0];
    let timeline: Vec<&str> = app["scheduler_timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["scheduler"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = walk.iter().map(|&p| names[p]).collect();
    assert_eq!(timeline, want, "{app:#}");
    // Nobody lost: every thread is still there and ran.
    for t in app["threads"].as_array().unwrap() {
        assert!(t["cpu_ns"].as_u64().unwrap_or(0) > 0, "{t:#}");
    }
    assert_eq!(out.summary["trust"]["mode"], "det-tcg");
}
