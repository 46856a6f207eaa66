//! `just sweep`: one run of a scenario per value of one field, several
//! QEMUs at once, then every thread's share per value.

use std::path::Path;

use crate::experiments::{run_all, scenario_job, scenario_with, Job};
use crate::Accel;

/// What to sweep.
pub struct Sweep<'a> {
    pub scenario: &'a Path,
    /// Dotted path of the field (`app.0.thread.0.tickets`).
    pub key: &'a str,
    /// Comma-separated values.
    pub values: &'a str,
    pub cpus: Option<u32>,
    pub accel: Accel,
    /// Each run's length (default: the scenario's `duration_ms`).
    pub run_ms: Option<u64>,
    /// Deterministic runs (`det=1`).
    pub det: bool,
}

/// The scenario's own `cores`, if it sets them.
pub fn scenario_cores(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("cores")?.as_integer())
        .and_then(|c| u32::try_from(c).ok())
}

/// One job per value, each scenario variant written and validated (so a
/// value the field cannot take is reported before anything boots).
pub fn jobs(s: &Sweep<'_>) -> Result<Vec<(String, Job)>, String> {
    if !s.scenario.is_file() {
        return Err(format!("{}: no such scenario file", s.scenario.display()));
    }
    let cpus = s.cpus.or(scenario_cores(s.scenario)).unwrap_or(4);
    let values: Vec<&str> = s
        .values
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Err(format!("no values to sweep in `{}`", s.values));
    }
    let mut out = Vec::new();
    for v in values {
        let tag = format!("{}-{v}", s.key.replace('.', "_"));
        let path = scenario_with(s.scenario, &[(s.key.to_string(), v.to_string())], &tag)?;
        crate::scenario::load(&path, cpus).map_err(|e| format!("{} = {v}: {e}", s.key))?;
        let stem = path
            .file_stem()
            .map_or(String::new(), |s| s.to_string_lossy().into_owned());
        let mut job = scenario_job(&format!("sweep-{stem}"), path, cpus, s.accel);
        if s.run_ms.is_some() {
            job.opts.run_ms = s.run_ms;
        }
        job.opts.det = s.det;
        out.push((v.to_string(), job));
    }
    Ok(out)
}

/// Runs every job, `parallel` at once, prints a table of shares and
/// writes it as CSV beside the runs (`<runs>/sweep-<scenario>-<key>.csv`);
/// `Err` when any run failed.
pub fn run(s: &Sweep<'_>, jobs: Vec<(String, Job)>, parallel: usize) -> Result<(), String> {
    let (values, jobs): (Vec<String>, Vec<Job>) = jobs.into_iter().unzip();
    let mut failed = 0;
    let mut csv = String::from("value,app,thread,tickets,cpu_ns,measured_share,ideal_share,run\n");
    let mut runs_dir = None;
    println!("value\tapp\tthread\ttickets\tcpu_ns\tmeasured\tideal");
    for (value, (job, out)) in values.iter().zip(run_all(jobs, parallel)) {
        match out {
            Ok(out) => {
                let run = out
                    .run_dir
                    .file_name()
                    .map_or(String::new(), |n| n.to_string_lossy().into_owned());
                runs_dir = runs_dir.or(out.run_dir.parent().map(Path::to_path_buf));
                for app in out.summary["apps"].as_array().into_iter().flatten() {
                    for t in app["threads"].as_array().into_iter().flatten() {
                        let (name, thread) = (
                            app["name"].as_str().unwrap_or(""),
                            t["name"].as_str().unwrap_or(""),
                        );
                        let measured = t["measured_share"].as_f64().unwrap_or(f64::NAN);
                        let ideal = t["ideal_share"].as_f64().unwrap_or(f64::NAN);
                        println!(
                            "{value}\t{name}\t{thread}\t{}\t{}\t{measured:.4}\t{ideal:.4}",
                            t["tickets"], t["cpu_ns"],
                        );
                        csv.push_str(&format!(
                            "{},{},{},{},{},{measured},{ideal},{}\n",
                            field(value),
                            field(name),
                            field(thread),
                            t["tickets"],
                            t["cpu_ns"],
                            field(&run)
                        ));
                    }
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e}", job.name);
            }
        }
    }
    if let Some(dir) = runs_dir {
        let stem = s
            .scenario
            .file_stem()
            .map_or("scenario".into(), |n| n.to_string_lossy().into_owned());
        let path = dir.join(format!("sweep-{stem}-{}.csv", s.key.replace('.', "_")));
        std::fs::write(&path, csv).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("== table in {}", path.display());
    }
    if failed > 0 {
        Err(format!("{failed} of the sweep's runs failed"))
    } else {
        Ok(())
    }
}

/// A CSV field, quoted when it holds a comma, quote or newline (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_fields_are_quoted_only_when_they_must_be() {
        assert_eq!(super::field("lotto"), "lotto");
        assert_eq!(super::field("a,b"), "\"a,b\"");
        assert_eq!(super::field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
