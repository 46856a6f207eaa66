//! The stride paper's response-time comparison: the time between a
//! client's quanta under stride, lottery and round robin for the same
//! tickets (7:1, and 101 clients 100:1:…:1), beside what each policy
//! predicts, from every wait the libOS recorded (docs/metrics.md, "Wait
//! time"). Stride spaces a client's quanta evenly, so its waits are
//! narrow; lottery draws every quantum, so they are geometric.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::experiments::{scenario_job, scenario_with, Job};
use crate::metrics::waits::{per_thread, WaitDist};
use crate::rundata::RunData;
use crate::{Accel, RunOutcome};

/// The schedulers compared.
pub const SCHEDULERS: [&str; 3] = ["stride", "lottery", "rr"];

/// One experiment: a scenario on one core, and the clients whose waits it
/// reports (application, thread-name prefix, tickets of one, total tickets,
/// how many clients).
pub struct Experiment {
    pub key: &'static str,
    pub scenario: &'static str,
    pub what: &'static str,
    pub app: &'static str,
    pub clients: &'static [Client],
}

pub struct Client {
    /// The thread's name, or the prefix of a class of threads (`small.`).
    pub name: &'static str,
    pub label: &'static str,
    pub tickets: u64,
}

pub const EXPERIMENTS: [Experiment; 2] = [
    Experiment {
        key: "7to1",
        scenario: "response-7to1",
        what: "two clients 7:1, one core, 5 s of 2 ms quanta",
        app: "pair",
        clients: &[
            Client {
                name: "A",
                label: "A (7)",
                tickets: 700,
            },
            Client {
                name: "B",
                label: "B (1)",
                tickets: 100,
            },
        ],
    },
    Experiment {
        key: "101",
        scenario: "stride-101",
        what: "101 clients 100:1:…:1, one core, 10 s of 1 ms quanta",
        app: "many",
        clients: &[
            Client {
                name: "big",
                label: "big (100)",
                tickets: 100,
            },
            Client {
                name: "small.",
                label: "each small (1), all 100 together",
                tickets: 1,
            },
        ],
    },
];

/// Total tickets and client count of each experiment's application.
fn population(e: &Experiment) -> (u64, u64) {
    match e.key {
        "7to1" => (800, 2),
        _ => (200, 101),
    }
}

/// The job's name for experiment `e` under `sched`.
pub fn job_name(e: &Experiment, sched: &str) -> String {
    format!("canon-response-{}-{sched}", e.key)
}

/// One deterministic run per experiment and scheduler.
pub fn jobs(accel: Accel, scenario: &dyn Fn(&str) -> PathBuf) -> Result<Vec<Job>, String> {
    let mut jobs = Vec::new();
    for e in &EXPERIMENTS {
        for sched in SCHEDULERS {
            let path = scenario_with(
                &scenario(e.scenario),
                &[("app.0.scheduler".into(), sched.into())],
                &format!("response-{sched}"),
            )?;
            jobs.push(scenario_job(&job_name(e, sched), path, 1, accel));
        }
    }
    Ok(jobs)
}

/// What each policy predicts for one client's waits, in quanta of the
/// others between two of its own (switches not counted): `(p50, p99)`.
pub fn predicted(sched: &str, tickets: u64, total: u64, clients: u64) -> (f64, f64) {
    let f = tickets as f64 / total as f64;
    match sched {
        // Evenly spaced quanta: a client with share f <= 1/2 runs once
        // every 1/f quanta; one above 1/2 runs on, and waits one quantum
        // each time another runs ((1 - f)/f of its waits are one quantum).
        "stride" if f <= 0.5 => {
            let k = (1.0 - f) / f;
            (k, k)
        }
        "stride" => {
            let long = (1.0 - f) / f;
            (
                if long > 0.5 { 1.0 } else { 0.0 },
                if long >= 0.01 { 1.0 } else { 0.0 },
            )
        }
        // Every quantum a draw won with probability f: the quanta lost
        // before the next win are geometric, P(K >= k) = (1 - f)^k.
        "lottery" => {
            let q = |q: f64| ((1.0 - q).ln() / (1.0 - f).ln()).ceil() - 1.0;
            (q(0.5).max(0.0), q(0.99).max(0.0))
        }
        // Turns: every other client once.
        _ => {
            let k = clients as f64 - 1.0;
            (k, k)
        }
    }
}

/// What the run's threads were charged, over its duration and cores:
/// the rest went to the libOS's switches and the application's own
/// control thread (sampling), which stretch the time between quanta.
pub fn threads_share(run_dir: &Path) -> Result<f64, String> {
    let data = load(run_dir)?;
    let last = data.samples.iter().map(|s| s.t_ns).max().unwrap_or(0);
    let cpu: u64 = data
        .samples
        .iter()
        .filter(|s| s.t_ns == last)
        .map(|s| s.cpu_ns)
        .sum();
    let span = last.saturating_sub(data.start_ns) as f64 * f64::from(data.cpus_online.max(1));
    Ok(if span > 0.0 {
        cpu as f64 / span
    } else {
        f64::NAN
    })
}

fn load(run_dir: &Path) -> Result<RunData, String> {
    let path = run_dir.join("rundata.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The waits of the threads of `app` named `name` (or, ending in `.`,
/// every thread whose name starts with it), merged.
pub fn client_waits(run_dir: &Path, app: &str, name: &str) -> Result<WaitDist, String> {
    let path = run_dir.join("rundata.json");
    let data = load(run_dir)?;
    let (index, a) = data
        .apps
        .iter()
        .enumerate()
        .find(|(_, a)| a.name == app)
        .ok_or(format!("{}: no application {app}", path.display()))?;
    let ids: Vec<u32> = a
        .threads
        .iter()
        .filter(|t| {
            if name.ends_with('.') {
                t.name.starts_with(name)
            } else {
                t.name == name
            }
        })
        .map(|t| t.id)
        .collect();
    let mut all = WaitDist::default();
    for ((app, id), d) in per_thread(&data.waits) {
        if app == index as u32 && ids.contains(&id) {
            all.merge(&d);
        }
    }
    if all.count() == 0 {
        return Err(format!("{}: {name} of {app} never waited", path.display()));
    }
    Ok(all)
}

/// One experiment's table and CDF figure (`figures/response-<key>.png`)
/// from its runs: `(scheduler, run directory, quantum in ns)`.
pub fn experiment(
    e: &Experiment,
    runs: &[(&str, PathBuf, f64)],
    figures: &Path,
) -> Result<String, String> {
    let (total, clients) = population(e);
    let mut md = format!(
        "### {}\n\n| scheduler | client | waits | p50 (quanta) | p99 | max | predicted p50 / p99 | core time the threads got |\n|---|---|---|---|---|---|---|---|\n",
        e.what
    );
    let mut series = Vec::new();
    for (sched, dir, quantum) in runs {
        let busy = threads_share(dir)?;
        for c in e.clients {
            let d = client_waits(dir, e.app, c.name)?;
            let q = |ns: Option<u64>| ns.map_or(f64::NAN, |v| v as f64 / quantum);
            let (p50, p99) = predicted(sched, c.tickets, total, clients);
            let _ = writeln!(
                md,
                "| {sched} | {} | {} | {:.2} | {:.2} | {:.2} | {p50:.0} / {p99:.0} | {:.1}% |",
                c.label,
                d.count(),
                q(d.percentile(0.5)),
                q(d.percentile(0.99)),
                q(Some(d.max_ns)),
                busy * 100.0,
            );
            if std::ptr::eq(c, e.clients.last().expect("clients")) {
                series.push((format!("{sched}: {}", c.label), d, *quantum));
            }
        }
    }
    super::embed_figure(
        &mut md,
        figures,
        &format!("response-{}.png", e.key),
        |path| {
            crate::plot::wait_cdfs(
                path,
                &format!("{}: waits of the smallest client", e.what),
                &series,
            )
        },
    )?;
    Ok(md)
}

/// The README section: a table per experiment and the CDF figures; `get`
/// gives each job's outcome.
pub fn section<'a>(
    get: impl Fn(&str) -> Result<&'a RunOutcome, String>,
    figures: &Path,
    cite: &str,
) -> Result<String, String> {
    let mut md = format!(
        "## Response time: the time between a client's quanta\n\n\
         Every wait of every thread for a core, from the instant it became runnable (here: the end of its own quantum) to the instant it was picked again, \
         recorded by the libOS (`docs/metrics.md`, Wait time; percentiles within 1/16), in quanta of the run's slice. \
         The same tickets under each scheduler, one core, deterministic runs. \
         *Predicted* is the policy's own arithmetic in whole quanta of the other clients, without the switch between slots (about 50 µs here): \
         stride runs a client with share f ≤ 1/2 once every 1/f quanta, lottery's quanta lost before the next win are geometric, P(K ≥ k) = (1−f)^k, \
         round robin gives every other client a turn. Stride's narrow waits against lottery's geometric tail are the comparison of {cite} (shape only; we have no published number for it). \
         The last column is what the threads were charged over the run: the rest of each slot went to the libOS's switch and to the application's control thread (its samples), \
         which stretch a client's waits beyond the prediction; round robin gives a client cut short the rest of its quantum first (`sched-rr`), so where a slot yields less than a quantum of CPU a client keeps the core for a second slot (its waits near 0), \
         and stride and lottery charge the time used, not whole quanta.\n\n"
    );
    for e in &EXPERIMENTS {
        let mut runs = Vec::new();
        for sched in SCHEDULERS {
            let out = get(&job_name(e, sched))?;
            let quantum = out.summary["slice_ns"]
                .as_f64()
                .filter(|q| *q > 0.0)
                .ok_or("summary.json has no slice_ns")?;
            runs.push((sched, out.run_dir.clone(), quantum));
        }
        md.push_str(&experiment(e, &runs, figures)?);
    }
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run directory whose `rundata.json` holds, for each thread of
    /// `app` named in `waits`, those waits (ns).
    fn run_with_waits(tag: &str, app: &str, waits: &[(&str, &[u64])]) -> PathBuf {
        use crate::rundata::{App, Thread, WaitInterval};
        let dir = std::env::temp_dir().join(format!("exo-response-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut data = RunData {
            apps: vec![App {
                name: app.into(),
                ..App::default()
            }],
            cpus_online: 1,
            samples: vec![crate::rundata::Sample {
                t_ns: 1_000_000_000,
                thread: 1,
                cpu_ns: 500_000_000,
                ..Default::default()
            }],
            ..RunData::default()
        };
        for (k, (name, values)) in waits.iter().enumerate() {
            let id = k as u32 + 1;
            data.apps[0].threads.push(Thread {
                id,
                name: (*name).into(),
                ..Thread::default()
            });
            let mut buckets = std::collections::BTreeMap::new();
            for &v in *values {
                *buckets.entry(abi::waits::bucket_of(v) as u32).or_insert(0) += 1;
            }
            data.waits.push(WaitInterval {
                t_ns: 1,
                app: 0,
                thread: id,
                buckets: buckets.into_iter().collect(),
                max_ns: values.iter().copied().max().unwrap_or(0),
                total: values.len() as u64,
            });
        }
        std::fs::write(
            dir.join("rundata.json"),
            serde_json::to_string(&data).unwrap(),
        )
        .unwrap();
        dir
    }

    #[test]
    fn a_table_row_per_scheduler_and_client_in_quanta_and_a_figure() {
        let q = 2_000_000.0;
        let stride = run_with_waits(
            "s",
            "pair",
            &[("A", &[50_000, 2_000_000]), ("B", &[14_000_000; 3])],
        );
        let lottery = run_with_waits(
            "l",
            "pair",
            &[
                ("A", &[50_000]),
                ("B", &[2_000_000, 10_000_000, 70_000_000]),
            ],
        );
        let rr = run_with_waits("r", "pair", &[("A", &[2_000_000]), ("B", &[2_000_000])]);
        let figures = std::env::temp_dir().join(format!("exo-response-{}-fig", std::process::id()));
        std::fs::create_dir_all(&figures).unwrap();
        let runs = [
            ("stride", stride, q),
            ("lottery", lottery.clone(), q),
            ("rr", rr, q),
        ];
        let md = experiment(&EXPERIMENTS[0], &runs, &figures).unwrap();
        let row = |s: &str, c: &str| {
            md.lines()
                .find(|l| l.starts_with(&format!("| {s} | {c} |")))
                .unwrap_or_else(|| panic!("no row {s} {c} in {md}"))
                .to_string()
        };
        let cells =
            |l: String| -> Vec<String> { l.split('|').map(|c| c.trim().to_string()).collect() };
        let b = cells(row("stride", "B (1)"));
        assert_eq!(
            &b[3..],
            ["3", "7.00", "7.00", "7.00", "7 / 7", "50.0%", ""],
            "{md}"
        );
        let b = cells(row("lottery", "B (1)"));
        assert_eq!(b[3], "3");
        assert_eq!(b[6], "35.00", "max exact, in quanta");
        assert_eq!(b[7], "5 / 34");
        assert_eq!(cells(row("rr", "A (7)"))[7], "1 / 1");
        assert!(figures.join("response-7to1.png").is_file());
        // A client that never waited is an error, not a row of zeros.
        let empty = run_with_waits("e", "pair", &[("A", &[1]), ("B", &[])]);
        assert!(client_waits(&empty, "pair", "B").is_err());
        assert!(client_waits(&lottery, "other", "B").is_err());
    }

    #[test]
    fn a_class_of_clients_is_merged_by_prefix() {
        let dir = run_with_waits(
            "m",
            "many",
            &[
                ("big", &[1_000]),
                ("small.0", &[5_000]),
                ("small.1", &[6_000, 7_000]),
            ],
        );
        assert_eq!(client_waits(&dir, "many", "small.").unwrap().count(), 3);
        assert_eq!(client_waits(&dir, "many", "big").unwrap().count(), 1);
    }

    #[test]
    fn predictions_follow_each_policy() {
        assert_eq!(predicted("stride", 100, 800, 2), (7.0, 7.0));
        assert_eq!(predicted("stride", 700, 800, 2), (0.0, 1.0));
        assert_eq!(predicted("stride", 1, 200, 101), (199.0, 199.0));
        assert_eq!(predicted("rr", 1, 200, 101), (100.0, 100.0));
        // Geometric with p = 1/8: P(K >= 5) = 0.51, P(K >= 6) = 0.45;
        // P(K >= 34) = 0.0107, P(K >= 35) = 0.0094.
        assert_eq!(predicted("lottery", 100, 800, 2), (5.0, 34.0));
        // The big client wins half the draws: it loses none half the time.
        assert_eq!(predicted("lottery", 100, 200, 101), (0.0, 6.0));
    }
}
