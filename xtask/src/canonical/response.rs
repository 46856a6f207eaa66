//! The stride paper's response-time comparison: the time between a
//! client's quanta under every registered policy for the same tickets
//! (7:1, and 101 clients 100:1:…:1), beside what each policy predicts,
//! from every wait the libOS recorded (docs/metrics.md, "Wait time").
//! Stride spaces a client's quanta evenly, so its waits are narrow;
//! lottery draws every quantum, so they are geometric.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::experiments::{scenario_job, scenario_with, Job};
use crate::metrics::waits::{per_thread, WaitDist};
use crate::rundata::RunData;
use crate::{Accel, RunOutcome};

/// The schedulers compared: every registered policy, in the registry's
/// order.
pub fn schedulers() -> impl Iterator<Item = &'static str> + Clone {
    sched_registry::names()
}

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
    /// Each thread's tickets.
    pub tickets: u64,
    /// How many threads (a class's are named `<prefix><index>`).
    pub count: u32,
}

impl Client {
    /// Whether the thread named `thread` is this client (or one of its class).
    fn matches(&self, thread: &str) -> bool {
        name_matches(self.name, thread)
    }
}

/// Whether `thread` is the thread `name` or, when `name` ends in `.`, one
/// of the class it prefixes.
fn name_matches(name: &str, thread: &str) -> bool {
    if name.ends_with('.') {
        thread.starts_with(name)
    } else {
        thread == name
    }
}

impl Experiment {
    /// Every thread of the application in the scenario's order, with its
    /// tickets: the order the libOS adds them to its policy.
    fn population(&self) -> Vec<(String, u64)> {
        self.clients
            .iter()
            .flat_map(|c| {
                (0..c.count).map(move |i| {
                    let name = if c.count == 1 {
                        c.name.to_string()
                    } else {
                        format!("{}{i}", c.name)
                    };
                    (name, c.tickets)
                })
            })
            .collect()
    }
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
                count: 1,
            },
            Client {
                name: "B",
                label: "B (1)",
                tickets: 100,
                count: 1,
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
                count: 1,
            },
            Client {
                name: "small.",
                label: "each small (1), all 100 together",
                tickets: 1,
                count: 100,
            },
        ],
    },
];

/// The job's name for experiment `e` under `sched`.
pub fn job_name(e: &Experiment, sched: &str) -> String {
    format!("canon-response-{}-{sched}", e.key)
}

/// One deterministic run per experiment and scheduler.
pub fn jobs(accel: Accel, scenario: &dyn Fn(&str) -> PathBuf) -> Result<Vec<Job>, String> {
    let mut jobs = Vec::new();
    for e in &EXPERIMENTS {
        for sched in schedulers() {
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
/// others between two of its own (switches not counted): `(p50, p99,
/// max)`, the maximum `None` where the policy sets no bound.
///
/// A deterministic policy is asked itself: the registered policy runs the
/// experiment's clients on one core in whole quanta ([`simulated_waits`]),
/// so its tie-breaks and its start are in the prediction. (A formula of
/// even spacing said the big client of 100:1:…:1 waits one quantum at
/// most; flat stride runs it a hundred times in a row and then keeps it
/// waiting a hundred, the absolute error the stride paper reports.) A
/// randomized one is its distribution: every quantum a draw won with
/// probability f, so the quanta lost before the next win are geometric,
/// P(K >= k) = (1 - f)^k.
pub fn predicted(sched: &str, e: &Experiment, client: &Client) -> Result<Prediction, String> {
    let total: u64 = e.population().iter().map(|(_, t)| t).sum();
    let info = sched_registry::by_name(sched).ok_or(format!("no policy {sched}"))?;
    if info.randomized {
        let f = client.tickets as f64 / total as f64;
        let q = |q: f64| (((1.0 - q).ln() / (1.0 - f).ln()).ceil() - 1.0).max(0.0);
        return Ok(Prediction {
            p50: q(0.5),
            p99: q(0.99),
            max: None,
        });
    }
    let clients = e.population();
    let tickets: Vec<u64> = clients.iter().map(|(_, t)| *t).collect();
    let waits = simulated_waits(sched, &tickets, SIMULATED_QUANTA)?;
    let mut mine: Vec<u64> = clients
        .iter()
        .zip(waits)
        .filter(|((name, _), _)| client.matches(name))
        .flat_map(|(_, w)| w)
        .collect();
    mine.sort_unstable();
    let rank = |q: f64| {
        let i = ((q * mine.len() as f64).ceil() as usize).clamp(1, mine.len());
        mine[i - 1] as f64
    };
    if mine.is_empty() {
        return Err(format!(
            "{sched}: {} never waited in {SIMULATED_QUANTA} quanta",
            client.label
        ));
    }
    Ok(Prediction {
        p50: rank(0.5),
        p99: rank(0.99),
        max: mine.last().map(|&m| m as f64),
    })
}

/// How many whole quanta [`predicted`] simulates: as many as the longer
/// experiment's run holds (10 s of 1 ms quanta).
const SIMULATED_QUANTA: u64 = 10_000;

/// A prediction of one client's waits, in quanta.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    pub p50: f64,
    pub p99: f64,
    pub max: Option<f64>,
}

/// The registered policy `sched` on one core, threads added in order with
/// `tickets` as their weights, each charged a whole quantum and preempted,
/// for `quanta` decisions: every thread's waits, in quanta (how many of the
/// others' quanta ran between two of its own; the wait before its first
/// quantum counts too, as the libOS records it from the thread's start).
pub fn simulated_waits(sched: &str, tickets: &[u64], quanta: u64) -> Result<Vec<Vec<u64>>, String> {
    const QUANTUM_NS: u64 = 1_000_000;
    let kind = sched_registry::kind(sched).ok_or(format!("no policy {sched}"))?;
    let params = sched_api::Params {
        quantum_ns: QUANTUM_NS,
        cores: 1,
        seed: 1,
    };
    let mut policy = sched_registry::build(kind, &params).map_err(|e| format!("{sched}: {e}"))?;
    for (id, &t) in tickets.iter().enumerate() {
        let weight = u32::try_from(t).map_err(|_| format!("{t} tickets"))?;
        policy
            .add(id as u32, weight)
            .map_err(|e| format!("{sched}: add: {e}"))?;
    }
    let mut last = vec![0u64; tickets.len()];
    let mut waits = vec![Vec::new(); tickets.len()];
    for now in 0..quanta {
        let id = policy
            .try_pick(0)
            .map_err(|e| format!("{sched}: pick: {e}"))?
            .ok_or(format!("{sched}: nothing to run"))?;
        let i = id as usize;
        waits[i].push(now - last[i]);
        last[i] = now + 1;
        policy
            .charge(id, 0, QUANTUM_NS, sched_api::RunEnd::Preempted)
            .map_err(|e| format!("{sched}: charge: {e}"))?;
    }
    Ok(waits)
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
        .filter(|t| name_matches(name, &t.name))
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
    let mut md = format!(
        "### {}\n\n| scheduler | client | waits | p50 (quanta) | p99 | max | predicted p50 / p99 / max | core time the threads got |\n|---|---|---|---|---|---|---|---|\n",
        e.what
    );
    let mut series = Vec::new();
    for (sched, dir, quantum) in runs {
        let busy = threads_share(dir)?;
        for c in e.clients {
            let d = client_waits(dir, e.app, c.name)?;
            let q = |ns: Option<u64>| ns.map_or(f64::NAN, |v| v as f64 / quantum);
            let p = predicted(sched, e, c)?;
            let max = p.max.map_or("—".to_string(), |m| format!("{m:.0}"));
            let _ = writeln!(
                md,
                "| {sched} | {} | {} | {:.2} | {:.2} | {:.2} | {:.0} / {:.0} / {max} | {:.1}% |",
                c.label,
                d.count(),
                q(d.percentile(0.5)),
                q(d.percentile(0.99)),
                q(Some(d.max_ns)),
                p.p50,
                p.p99,
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
                &format!(
                    "{}: waits of the smallest client ({})",
                    e.what,
                    super::SOURCE
                ),
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
    let mut md = intro(cite);
    for e in &EXPERIMENTS {
        let mut runs = Vec::new();
        for sched in schedulers() {
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

/// The section's opening paragraph: what is measured and predicted, for
/// every registered policy.
fn intro(cite: &str) -> String {
    let (randomized, deterministic): (Vec<&str>, Vec<&str>) =
        schedulers().partition(|s| sched_registry::by_name(s).is_some_and(|p| p.randomized));
    format!(
        "## Response time: the time between a client's quanta\n\n\
         Every wait of every thread for a core, from the instant it became runnable (here: the end of its own quantum) to the instant it was picked again, \
         recorded by the libOS (`docs/metrics.md`, Wait time; percentiles within 1/16), in quanta of the run's slice. \
         The same tickets under each registered scheduler ({all}), one core, deterministic runs. \
         *Predicted* is the policy's own arithmetic in whole quanta of the other clients, without the switch between slots (about 50 µs here): \
         for a deterministic policy ({deterministic}), the registered policy itself run on the host over 10,000 whole quanta with the same clients added in the scenario's order \
         (flat stride runs the big client of 100:1:…:1 a hundred times in a row and then keeps it waiting while the hundred small ones run: \
         the absolute error of {cite}, so its predicted p99 is 0 and its maximum 100; EEVDF, whose lag stays within one request, runs it between the small ones: \
         it waits one quantum at most); for a randomized one ({randomized}), whose maximum is unbounded, \
         the quanta lost before the next win are geometric, P(K ≥ k) = (1−f)^k with f its share of the tickets. Stride's narrow waits against lottery's geometric tail are the comparison of {cite} (shape only; we have no published number for it). \
         The last column is what the threads were charged over the run: the rest of each slot went to the libOS's switch and to the application's control thread (its samples), \
         which stretch a client's waits beyond the prediction; round robin gives a client cut short the rest of its quantum first (`sched-rr`), so where a slot yields less than a quantum of CPU a client keeps the core for a second slot (its waits near 0), \
         and the other policies charge the time used, not whole quanta.\n\n",
        all = and_list(&schedulers().collect::<Vec<_>>()),
        deterministic = and_list(&deterministic),
        randomized = and_list(&randomized),
    )
}

/// `a`, `a and b`, `a, b and c`; `none` for no names.
fn and_list(names: &[&str]) -> String {
    match names {
        [] => "none".into(),
        [one] => (*one).into(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
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
        let eevdf = run_with_waits(
            "v",
            "pair",
            &[("A", &[50_000, 2_000_000]), ("B", &[14_000_000; 2])],
        );
        let figures = std::env::temp_dir().join(format!("exo-response-{}-fig", std::process::id()));
        std::fs::create_dir_all(&figures).unwrap();
        let runs = [
            ("stride", stride, q),
            ("lottery", lottery.clone(), q),
            ("rr", rr, q),
            ("eevdf", eevdf, q),
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
            ["3", "7.00", "7.00", "7.00", "7 / 7 / 7", "50.0%", ""],
            "{md}"
        );
        let b = cells(row("lottery", "B (1)"));
        assert_eq!(b[3], "3");
        assert_eq!(b[6], "35.00", "max exact, in quanta");
        assert_eq!(b[7], "5 / 34 / —", "lottery sets no maximum");
        assert_eq!(cells(row("rr", "A (7)"))[7], "1 / 1 / 1");
        assert_eq!(cells(row("eevdf", "B (1)"))[7], "7 / 7 / 7");
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
        let p = |sched: &str, e: usize, c: usize| {
            predicted(sched, &EXPERIMENTS[e], &EXPERIMENTS[e].clients[c]).unwrap()
        };
        let at = |p50: f64, p99: f64, max: Option<f64>| Prediction { p50, p99, max };
        // 7:1 under stride: A runs seven quanta in a row, then B one.
        assert_eq!(p("stride", 0, 1), at(7.0, 7.0, Some(7.0)));
        assert_eq!(p("stride", 0, 0), at(0.0, 1.0, Some(1.0)));
        // Round robin: every other client once.
        assert_eq!(p("rr", 0, 0), at(1.0, 1.0, Some(1.0)));
        assert_eq!(p("rr", 1, 1), at(100.0, 100.0, Some(100.0)));
        // Flat stride, 100:1:…:1: each small waits the other 199 quanta of
        // a cycle; the big client runs on, and waits for the smalls'
        // burst once a cycle: the absolute error the stride paper reports.
        let small = p("stride", 1, 1);
        assert_eq!((small.p50, small.p99), (199.0, 199.0));
        let big = p("stride", 1, 0);
        assert_eq!(big.p50, 0.0);
        assert_eq!(big.max, Some(100.0), "{big:?}");
        // Geometric with p = 1/8: P(K >= 5) = 0.51, P(K >= 6) = 0.45;
        // P(K >= 34) = 0.0107, P(K >= 35) = 0.0094.
        assert_eq!(p("lottery", 0, 1), at(5.0, 34.0, None));
        // The big client wins half the draws: it loses none half the time.
        assert_eq!(p("lottery", 1, 0), at(0.0, 6.0, None));
        // EEVDF: 7:1 as stride; 100:1:…:1 interleaves the big client with
        // the smalls (its lag stays within one request).
        assert_eq!(p("eevdf", 0, 1), at(7.0, 7.0, Some(7.0)));
        assert_eq!(p("eevdf", 1, 0), at(1.0, 1.0, Some(1.0)));
        assert_eq!(p("eevdf", 1, 1), at(199.0, 199.0, Some(199.0)));
        // Every registered policy predicts every client: a bounded maximum
        // unless its decisions are draws.
        for info in sched_registry::POLICIES {
            for (i, e) in EXPERIMENTS.iter().enumerate() {
                for c in 0..e.clients.len() {
                    let got = p(info.kind.name(), i, c);
                    assert_eq!(
                        got.max.is_none(),
                        info.randomized,
                        "{info:?}",
                        info = info.kind
                    );
                    assert!(got.p50 <= got.p99, "{}: {got:?}", info.kind);
                }
            }
        }
    }

    #[test]
    fn every_registered_policy_runs_each_experiment() {
        let scenario = |name: &str| {
            crate::build::workspace_root()
                .join("scenarios")
                .join(format!("{name}.toml"))
        };
        let jobs = jobs(crate::Accel::Tcg, &scenario).unwrap();
        assert_eq!(
            jobs.len(),
            EXPERIMENTS.len() * sched_registry::POLICIES.len()
        );
        for e in &EXPERIMENTS {
            for name in sched_registry::names() {
                let job = jobs
                    .iter()
                    .find(|j| j.name == job_name(e, name))
                    .unwrap_or_else(|| panic!("{}: no run under {name}", e.key));
                let path = job.opts.scenario.as_ref().unwrap();
                let doc: toml::Value =
                    toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
                assert_eq!(doc["app"][0]["scheduler"].as_str(), Some(name));
            }
        }
    }

    #[test]
    fn the_opening_names_every_registered_policy_by_how_it_is_predicted() {
        let md = intro("[WW95]");
        // The names in the parentheses after `after`.
        let listed = |after: &str| -> Vec<String> {
            let rest = &md[md.find(after).unwrap_or_else(|| panic!("{after}")) + after.len()..];
            let list = rest.strip_prefix(" (").unwrap();
            let list = &list[..list.find(')').unwrap()];
            list.split(", ")
                .flat_map(|n| n.split(" and "))
                .map(String::from)
                .collect()
        };
        let names = |randomized: Option<bool>| -> Vec<String> {
            sched_registry::POLICIES
                .iter()
                .filter(|p| randomized.is_none_or(|r| p.randomized == r))
                .map(|p| p.kind.name().to_string())
                .collect()
        };
        assert_eq!(listed("under each registered scheduler"), names(None));
        assert_eq!(listed("for a deterministic policy"), names(Some(false)));
        assert_eq!(listed("for a randomized one"), names(Some(true)));
        assert_eq!(and_list(&[]), "none");
        assert_eq!(and_list(&["a", "b", "c"]), "a, b and c");
    }

    #[test]
    fn the_simulation_charges_whole_quanta_in_the_policys_order() {
        let w = simulated_waits("stride", &[3, 1], 8).unwrap();
        // 3:1 — the heavy thread's waits are one of the light's quanta
        // once in four; the light's the heavy's three.
        assert_eq!(w[0].len() + w[1].len(), 8);
        assert_eq!(w[0].len(), 6);
        assert!(w[1][1..].iter().all(|&k| k == 3), "{w:?}");
        assert!(simulated_waits("nonesuch", &[1], 1).is_err());
    }
}
