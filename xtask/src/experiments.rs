//! The canonical experiments (`just experiments`) and parameter sweeps
//! (`just sweep`): several QEMU runs at once with progress, figures drawn
//! and copied to `results/figures/`, and `results/README.md` written with
//! each measured figure beside the published one.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::{build, plot, Accel, RunOptions, RunOutcome};

/// One run of a sweep or of the canonical set.
#[derive(Clone, Debug)]
pub struct Job {
    pub name: String,
    pub opts: RunOptions,
}

/// A scenario file with `key=value` overrides (`key` a dotted TOML path;
/// array elements by index: `app.0.thread.1.tickets=300`), written to a
/// temporary file.
pub fn scenario_with(
    base: &Path,
    overrides: &[(String, String)],
    tag: &str,
) -> Result<PathBuf, String> {
    let text = std::fs::read_to_string(base).map_err(|e| format!("{}: {e}", base.display()))?;
    let mut doc: toml::Value =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", base.display()))?;
    for (key, value) in overrides {
        set(&mut doc, key, value)?;
    }
    let dir = variants_dir();
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let stem = base
        .file_stem()
        .map_or("scenario".into(), |s| s.to_string_lossy().into_owned());
    let path = dir.join(format!("{stem}-{tag}.toml"));
    if let Some(t) = doc.as_table_mut() {
        t.insert("name".into(), toml::Value::String(format!("{stem}-{tag}")));
    }
    // Written beside it and renamed into place, so that two callers making
    // the same file at once (tests in one process share `dir`) never read
    // each other's half-written one.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let partial = dir.join(format!(".{stem}-{tag}.toml.{n}"));
    let text = toml::to_string(&doc).map_err(|e| e.to_string())?;
    if let Err(e) = std::fs::write(&partial, text).and_then(|()| std::fs::rename(&partial, &path)) {
        let _ = std::fs::remove_file(&partial);
        return Err(format!("{}: {e}", path.display()));
    }
    Ok(path)
}

/// This process's directory of scenario variants (`<tmp>/exo-sweep-<pid>`).
/// Those of processes that have ended are removed the first time: each
/// run keeps its own copy of its scenario (`scenario.toml`), so a variant
/// is needed only until its run has started, and a sweep or the
/// experiments left some 190 behind every time (a run stopped by Ctrl-C
/// cannot remove its own).
fn variants_dir() -> PathBuf {
    const PREFIX: &str = "exo-sweep-";
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let tmp = std::env::temp_dir();
    let me = std::process::id();
    SWEPT.call_once(|| remove_ended(&tmp, PREFIX));
    tmp.join(format!("{PREFIX}{me}"))
}

/// Removes the directories `<prefix><pid>` in `dir` whose process has
/// ended (no `/proc/<pid>`), ours (our uid) and untouched for an hour: a
/// process of another PID namespace sharing `dir` has no `/proc/<pid>`
/// here, and a sweep writes its variants when it starts. Nothing without
/// a `/proc` to tell by.
fn remove_ended(dir: &Path, prefix: &str) {
    use std::os::unix::fs::MetadataExt;
    let Ok(me) = std::fs::metadata("/proc/self") else {
        return;
    };
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|p| p.parse::<u32>().ok());
        let ended = pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
        let stale = entry
            .metadata()
            .is_ok_and(|m| m.uid() == me.uid() && m.modified().is_ok_and(|t| t < hour_ago));
        if ended && stale {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Sets the value at dotted `key` (numbers stay numbers, `true` and
/// `false` booleans).
fn set(doc: &mut toml::Value, key: &str, value: &str) -> Result<(), String> {
    let mut at = doc;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let next = match at {
            toml::Value::Table(t) => {
                // `app` and `thread` are arrays of tables named `app`/`thread` in TOML.
                if last {
                    let v = value
                        .parse::<bool>()
                        .map(toml::Value::Boolean)
                        .or_else(|_| value.parse::<i64>().map(toml::Value::Integer))
                        .unwrap_or_else(|_| {
                            value
                                .parse::<f64>()
                                .map(toml::Value::Float)
                                .unwrap_or_else(|_| toml::Value::String(value.into()))
                        });
                    t.insert(part.to_string(), v);
                    return Ok(());
                }
                t.get_mut(*part)
            }
            toml::Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        };
        at = next.ok_or_else(|| format!("`{key}`: no `{part}` in the scenario"))?;
    }
    Err(format!("`{key}`: not a settable path"))
}

/// Runs `jobs` with at most `parallel` QEMUs at once, printing progress;
/// results in job order.
pub fn run_all(jobs: Vec<Job>, parallel: usize) -> Vec<(Job, Result<RunOutcome, String>)> {
    let total = jobs.len();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<RunOutcome, String>>>> =
        Mutex::new((0..total).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..parallel.clamp(1, total.max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { return };
                let out = crate::run(&job.opts).map_err(|e| e.to_string());
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                let how = match &out {
                    Ok(o) => o.exit_name.clone(),
                    Err(e) => format!("error: {e}"),
                };
                eprintln!("[{n}/{total}] {}: {how}", job.name);
                results.lock().expect("no panics while held")[i] = Some(out);
            });
        }
    });
    let results = results.into_inner().expect("threads joined");
    jobs.into_iter()
        .zip(results)
        .map(|(j, r)| (j, r.unwrap_or_else(|| Err("not run".into()))))
        .collect()
}

/// Options for a scenario run named `name` (results/runs/<name>).
pub fn scenario_job(name: &str, scenario: PathBuf, cpus: u32, accel: Accel) -> Job {
    let timeout = timeout_for(&scenario, cpus);
    Job {
        name: name.into(),
        opts: RunOptions {
            cpus,
            accel,
            scenario: Some(scenario),
            name: Some(name.into()),
            timeout,
            ..RunOptions::default()
        },
    }
}

/// The virtual length of `scenario` (its `duration_ms`; 5 s if it says
/// none or cannot be read).
pub fn scenario_ms(scenario: &Path) -> u64 {
    std::fs::read_to_string(scenario)
        .ok()
        .and_then(|t| toml::from_str::<toml::Value>(&t).ok())
        .and_then(|v| v.get("duration_ms")?.as_integer())
        .and_then(|ms| u64::try_from(ms).ok())
        .unwrap_or(5000)
}

/// How long a run of `virtual_ms` on `cpus` cores may take: five minutes
/// for booting and building, plus, per virtual second, four seconds and
/// three more per core. A deterministic run executes every core's
/// instructions on one host thread: a 2-core run on a loaded 2-core host
/// took up to a third of its virtual length, 16 busy cores about 16 s per
/// virtual second, 64 about 140 s (a flat limit stopped a 64-core run at a
/// quarter of its length).
pub fn run_timeout(cpus: u32, virtual_ms: u64) -> Duration {
    Duration::from_secs(300) + Duration::from_millis(virtual_ms) * (4 + 3 * cpus)
}

fn timeout_for(scenario: &Path, cpus: u32) -> Duration {
    run_timeout(cpus, scenario_ms(scenario))
}

/// `cpu_ns` of thread `name` of application `app` in a run's summary.
pub fn thread_cpu(out: &RunOutcome, app: &str, name: &str) -> f64 {
    thread(out, app, name)["cpu_ns"].as_f64().unwrap_or(0.0)
}

fn thread<'a>(out: &'a RunOutcome, app: &str, name: &str) -> &'a Value {
    out.summary["apps"]
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["name"] == app))
        .and_then(|a| a["threads"].as_array())
        .and_then(|ts| ts.iter().find(|t| t["name"] == name))
        .unwrap_or(&Value::Null)
}

/// The greatest `max_abs_lag_quanta` over an application's threads.
pub fn max_lag(out: &RunOutcome, app: &str) -> f64 {
    out.summary["apps"]
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["name"] == app))
        .and_then(|a| a["threads"].as_array())
        .map_or(0.0, |ts| {
            ts.iter()
                .filter_map(|t| t["max_abs_lag_quanta"].as_f64())
                .fold(0.0, f64::max)
        })
}

/// The greatest |measured - ideal| share over an application's threads.
pub fn max_share_error(out: &RunOutcome, app: &str) -> f64 {
    out.summary["apps"]
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["name"] == app))
        .and_then(|a| a["threads"].as_array())
        .map_or(f64::NAN, |ts| {
            ts.iter()
                .filter_map(|t| {
                    Some((t["measured_share"].as_f64()? - t["ideal_share"].as_f64()?).abs())
                })
                .fold(0.0, f64::max)
        })
}

/// Draws a run's figures and copies them to `results/figures/<name>-<figure>.png`;
/// returns the copied paths relative to `results/`.
pub fn keep_figures(out: &RunOutcome, name: &str, which: &[&str]) -> Vec<String> {
    let figures = build::workspace_root().join("results/figures");
    let _ = std::fs::create_dir_all(&figures);
    if let Err(e) = plot::plot_run(&out.run_dir) {
        eprintln!("{name}: plotting failed: {e}");
        return Vec::new();
    }
    which
        .iter()
        .filter_map(|f| {
            let to = format!("{name}-{f}.png");
            std::fs::copy(out.run_dir.join(format!("{f}.png")), figures.join(&to)).ok()?;
            Some(format!("figures/{to}"))
        })
        .collect()
}

/// A markdown image list.
pub fn images(paths: &[String]) -> String {
    let mut s = String::new();
    for p in paths {
        let _ = writeln!(s, "![{p}]({p})");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_of_ended_processes_are_removed_and_a_live_one_s_kept() {
        let dir = std::env::temp_dir().join(format!("exo-ended-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // A pid no process has: past the kernel's largest.
        let ended = dir.join("exo-sweep-4194305");
        let live = dir.join(format!("exo-sweep-{}", std::process::id()));
        let other = dir.join("exo-sweep-figures-4194305");
        let recent = dir.join("exo-sweep-4194306");
        for d in [&ended, &live, &other, &recent] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("a.toml"), "").unwrap();
        }
        // Untouched for two hours, but the recent one.
        let old = std::time::SystemTime::now() - Duration::from_secs(7200);
        for d in [&ended, &live, &other] {
            std::fs::File::open(d).unwrap().set_modified(old).unwrap();
        }
        remove_ended(&dir, "exo-sweep-");
        assert!(!ended.exists());
        assert!(live.join("a.toml").exists());
        assert!(other.exists(), "not a pid after the prefix: not ours");
        assert!(
            recent.exists(),
            "touched within the hour: maybe a process elsewhere"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn overrides_reach_nested_fields_and_keep_types() {
        let base = build::workspace_root().join("scenarios/lottery-2to1.toml");
        let over = [
            ("app.0.thread.0.tickets".to_string(), "700".to_string()),
            ("duration_ms".into(), "1234".into()),
            ("app.0.scheduler".into(), "stride".into()),
        ];
        let path = scenario_with(&base, &over, "test").unwrap();
        let s = crate::scenario::load(&path, 1).unwrap();
        assert_eq!(s.duration_ms, 1234);
        assert_eq!(s.apps[0].get_ref().scheduler, "stride");
        assert_eq!(s.apps[0].get_ref().threads[0].get_ref().tickets, 700);
        assert_eq!(s.name, "lottery-2to1-test");
        assert!(!s.thread_trace, "off unless asked");
        let traced = scenario_with(&base, &[("thread_trace".into(), "true".into())], "t").unwrap();
        assert!(crate::scenario::load(&traced, 1).unwrap().thread_trace);
        // A run's time limit grows with its length.
        assert_eq!(
            timeout_for(&path, 1),
            Duration::from_millis(300_000 + 7 * 1234)
        );
        // And with its cores: 64 cores for 2 s need about 330 s here.
        assert!(run_timeout(64, 2000) >= Duration::from_secs(600));
        for bad in ["app.5.name", "app.0.thread.x.tickets", "nothing.here"] {
            assert!(
                scenario_with(&base, &[(bad.into(), "1".into())], "bad").is_err(),
                "{bad}"
            );
        }
    }
}
