//! The live share table of a scenario run, with a loud line under it
//! whenever its shares cannot be trusted.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use abi::record::RecordKind;
use serde_json::Value;

use crate::trust::{self, Limits, Mode, Windows};

/// The live table of a scenario run: fed every console line, printed about
/// once a second (when streaming).
pub(super) struct Live {
    tracker: crate::scenario_run::Tracker,
    names: std::collections::BTreeMap<(String, u32), String>,
    stream: bool,
    last_print: Instant,
    /// The per-sample trust checks, as samples arrive.
    windows: Windows,
    mode: Mode,
    /// Windows charged more than could have run, so far.
    overcharged: u64,
    /// The latest of them, described.
    last_overcharge: Option<String>,
    /// The windowed view (`window <s>` on the console; 0: off).
    window_s: u32,
    /// Per application: its snapshots so far (time, per thread (CPU,
    /// ideal CPU)), for the windowed view; and the time of the snapshot
    /// being collected.
    history: BTreeMap<String, VecDeque<Point>>,
    collecting: BTreeMap<String, u64>,
}

/// One application's figures after a snapshot: its time, and per thread
/// (CPU, ideal CPU).
type Point = (u64, BTreeMap<u32, (u64, f64)>);

/// How much history the windowed view keeps (its longest window).
const MAX_WINDOW_NS: u64 = 3600 * 1_000_000_000;

impl Live {
    pub(super) fn new(s: &crate::scenario::Scenario, cpus: u32, stream: bool, mode: Mode) -> Live {
        let limits = Limits::from_cmdline(&s.cmdline().join(" "));
        Live {
            tracker: crate::scenario_run::Tracker::new(s.capacities(cpus))
                .with_currencies(s.currency_plans()),
            names: crate::scenario_run::thread_names(s),
            stream,
            last_print: Instant::now(),
            windows: Windows::new(limits, s.capacities(cpus))
                .with_names(crate::scenario_run::thread_names(s)),
            mode,
            overcharged: 0,
            last_overcharge: None,
            window_s: 0,
            history: BTreeMap::new(),
            collecting: BTreeMap::new(),
        }
    }

    pub(super) fn line(&mut self, line: &str) {
        if let Some(text) = self.take(line) {
            print!("{text}");
        }
    }

    /// Takes one console line; returns the live table if one is due.
    fn take(&mut self, line: &str) -> Option<String> {
        let (kind, payload) = abi::record::parse_record_line(line)?;
        let v = serde_json::from_str::<Value>(payload).ok()?;
        if kind == RecordKind::Event {
            self.console_event(&v);
            return None;
        }
        if kind != RecordKind::User {
            return None;
        }
        self.name_instance(&v);
        let snapshot_done = self.note_snapshot(&v);
        for o in self.windows.record(&v) {
            self.overcharged += 1;
            self.last_overcharge = Some(o.describe(self.windows.start_ns()));
        }
        let completed = self.tracker.record(&v);
        if let Some((app, t)) = snapshot_done.filter(|_| completed) {
            self.remember(&app, t);
        }
        self.due(completed)
    }

    /// What to print after a record: the live table (with the windowed
    /// view and the trust line) when a snapshot completed, at most once a
    /// second when streaming, and only once some thread has run: the first
    /// snapshot, at an application's start, is all zeros, and a table of
    /// them read as a run where nothing ran.
    fn due(&mut self, completed: bool) -> Option<String> {
        let ran = || {
            self.tracker
                .apps
                .values()
                .any(|f| f.threads.values().any(|t| t.cpu_ns > 0))
        };
        if !(completed
            && self.stream
            && self.last_print.elapsed() >= Duration::from_secs(1)
            && ran())
        {
            return None;
        }
        self.last_print = Instant::now();
        let mut out = format!("{}\n", self.tracker.table(&self.names));
        if let Some(table) = self.window_table() {
            out.push_str(&format!("{table}\n"));
        }
        if let Some(why) = self.untrusted() {
            out.push_str(&format!("!! SHARES CANNOT BE TRUSTED: {why}\n\n"));
        }
        Some(out)
    }

    /// `window <s>` taken by the console sets the windowed view.
    fn console_event(&mut self, v: &Value) {
        if v["event"] != "console" || v["outcome"] != "ok" {
            return;
        }
        let mut words = v["command"].as_str().unwrap_or("").split_whitespace();
        if let (Some("window"), Some(Ok(s)), None) = (
            words.next(),
            words.next().map(str::parse::<u32>),
            words.next(),
        ) {
            self.window_s = s;
            if self.stream {
                match s {
                    0 => println!("== windowed view off"),
                    s => println!("== shares over the last {s} s shown under the cumulative table"),
                }
            }
        }
    }

    /// A restarted instance (`demo#2`) shows its threads' names.
    fn name_instance(&mut self, v: &Value) {
        let Some(name) = v["name"].as_str() else {
            return;
        };
        let Some((base, _)) = name.split_once('#') else {
            return;
        };
        if self.names.keys().any(|(app, _)| app == name) {
            return;
        }
        let theirs: Vec<(u32, String)> = self
            .names
            .iter()
            .filter(|((app, _), _)| app == base)
            .map(|((_, id), n)| (*id, n.clone()))
            .collect();
        for (id, n) in theirs {
            self.names.insert((name.to_string(), id), n);
        }
    }

    /// Which application's snapshot a sample record completes (the
    /// previous one, when the record starts a new snapshot), and its time.
    fn note_snapshot(&mut self, v: &Value) -> Option<(String, u64)> {
        if v["kind"] != "sample" {
            return None;
        }
        let (app, t) = (v["name"].as_str()?, v["t_ns"].as_u64()?);
        let before = self.collecting.insert(app.to_string(), t)?;
        (before != t).then(|| (app.to_string(), before))
    }

    /// Keeps `app`'s figures after its snapshot at `t`.
    fn remember(&mut self, app: &str, t: u64) {
        let Some(f) = self.tracker.apps.get(app) else {
            return;
        };
        let point = f
            .threads
            .iter()
            .map(|(&id, x)| (id, (x.cpu_ns, x.ideal_ns)))
            .collect();
        let h = self.history.entry(app.to_string()).or_default();
        h.push_back((t, point));
        while h.front().is_some_and(|(t0, _)| t0 + MAX_WINDOW_NS < t) {
            h.pop_front();
        }
    }

    /// Shares over the last `window_s` seconds, per application and thread.
    fn window_table(&self) -> Option<String> {
        if self.window_s == 0 {
            return None;
        }
        let window = u64::from(self.window_s) * 1_000_000_000;
        let mut out = format!(
            "{:<22} {:<12} {:>9} {:>9} {:>10}\n",
            format!("last {} s", self.window_s),
            "thread",
            "share(%)",
            "ideal(%)",
            "error(pp)"
        );
        for (app, h) in &self.history {
            let Some((t1, now)) = h.back() else { continue };
            let Some((t0, then)) = h.iter().find(|(t, _)| t + window >= *t1) else {
                continue;
            };
            let delta: BTreeMap<u32, (f64, f64)> = now
                .iter()
                .map(|(id, (cpu, ideal))| {
                    let (cpu0, ideal0) = then.get(id).copied().unwrap_or((0, 0.0));
                    (*id, (cpu.saturating_sub(cpu0) as f64, ideal - ideal0))
                })
                .collect();
            let (cpu, ideal): (f64, f64) = delta
                .values()
                .fold((0.0, 0.0), |(a, b), (c, i)| (a + c, b + i));
            let frac = |x: f64, of: f64| if of > 0.0 { x / of } else { 0.0 };
            for (id, (c, i)) in &delta {
                let name = self
                    .names
                    .get(&(app.clone(), *id))
                    .cloned()
                    .unwrap_or_else(|| format!("t{id}"));
                let (share, want) = (frac(*c, cpu), frac(*i, ideal));
                out.push_str(&format!(
                    "{:<22} {:<12} {:>9.1} {:>9.1} {:>+10.1}\n",
                    format!("{app} ({:.1} s)", (t1 - t0) as f64 / 1e9),
                    name,
                    share * 100.0,
                    want * 100.0,
                    crate::metrics::share_error_pp(share, want)
                ));
            }
        }
        Some(out)
    }

    /// Why the shares so far cannot be trusted, if they cannot.
    fn untrusted(&self) -> Option<String> {
        match (&self.last_overcharge, self.mode.why_untrusted()) {
            (Some(o), _) => Some(format!(
                "{} sample windows charged more than could run (latest {o}); mode {}",
                self.overcharged,
                self.mode.name()
            )),
            (None, Some(why)) => Some(format!("{} — {why}", self.mode.name())),
            (None, None) => None,
        }
    }

    /// The final table, each environment's turns repossessed, and the
    /// run's verdict (`summary.json`'s `trust`) under them.
    pub(super) fn finish(&mut self, summary: &Value) {
        self.tracker.flush();
        for (app, t) in std::mem::take(&mut self.collecting) {
            // Not one the flush left out as cut short: the windowed view's
            // last point would carry its time and the sample before's
            // figures.
            if self.tracker.apps.get(&app).and_then(|f| f.last_time()) == Some(t) {
                self.remember(&app, t);
            }
        }
        if self.stream {
            println!(
                "== final shares (within each application)\n{}",
                self.tracker.table(&self.names)
            );
            if let Some(table) = self.window_table() {
                println!("{table}");
            }
            if let Some(each) = crate::summary::turns_repossessed(summary) {
                println!("== turns repossessed: {each}");
            }
            println!("{}\n", trust::verdict(&summary["trust"]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCENARIO: &str = "[[app]]\nname = \"demo\"\nscheduler = \"stride\"\ncores = [0]\n\
        [[app.thread]]\nname = \"low\"\nbehaviour = \"cpu\"\ntickets = 100\n\
        [[app.thread]]\nname = \"high\"\nbehaviour = \"cpu\"\ntickets = 100\n";

    fn live() -> Live {
        let s = crate::scenario::parse(SCENARIO, "live", 1).unwrap();
        Live::new(&s, 1, false, Mode::DetTcg)
    }

    fn sample(live: &mut Live, app: &str, env: u64, t_ms: u64, low_ms: u64, high_ms: u64) {
        live.line(&format!(
            "@@exo user {{\"env\":{env},\"name\":\"{app}\",\"core\":0,\"kind\":\"sample\",\"t_ns\":{},\"policy\":\"stride\",\"th\":[[1,100,{},0,0,0],[2,100,{},0,0,0]]}}",
            t_ms * 1_000_000,
            low_ms * 1_000_000,
            high_ms * 1_000_000
        ));
    }

    fn console(live: &mut Live, command: &str, outcome: &str) {
        live.line(&format!(
            "@@exo event {{\"event\":\"console\",\"env\":4294967295,\"core\":0,\"t_ns\":1,\"command\":\"{command}\",\"outcome\":\"{outcome}\",\"source\":\"console\"}}"
        ));
    }

    #[test]
    fn the_window_shows_recent_shares_beside_the_cumulative_ones() {
        let mut l = live();
        // 5 s at 75:25, then 5 s at 25:75: 50:50 overall.
        for k in 0..=10u64 {
            let (low, high) = if k <= 5 {
                (k * 750, k * 250)
            } else {
                (3750 + (k - 5) * 250, 1250 + (k - 5) * 750)
            };
            sample(&mut l, "demo", 256, k * 1000, low, high);
        }
        l.finish(&serde_json::json!({"trust": {"trusted": true}}));
        assert!(l.window_table().is_none(), "off until asked for");
        console(&mut l, "window 5", "no such thing");
        assert!(
            l.window_table().is_none(),
            "a refused command changes nothing"
        );
        console(&mut l, "window 5", "ok");
        let table = l.window_table().unwrap();
        let row = |name: &str| {
            table
                .lines()
                .find(|r| r.contains(name))
                .unwrap_or_else(|| panic!("{name} in {table}"))
                .to_string()
        };
        assert!(row("low").contains(" 25.0 "), "{table}");
        assert!(row("high").contains(" 75.0 "), "{table}");
        assert!(row("low").starts_with("demo (5.0 s)"), "{table}");
        let cumulative = l.tracker.apps["demo"].shares();
        assert!((cumulative[&1].0 - 0.5).abs() < 1e-9);
        console(&mut l, "window 0", "ok");
        assert!(l.window_table().is_none());
    }

    #[test]
    fn a_last_sample_the_end_cut_off_is_no_point_of_the_windowed_view() {
        let mut l = live();
        // 1:1 but for 3-4 s (1:9) and 4-5 s (9:1).
        for (k, (low, high)) in [
            (0, 0),
            (500, 500),
            (1000, 1000),
            (1500, 1500),
            (1600, 2400),
            (2500, 2500),
        ]
        .into_iter()
        .enumerate()
        {
            sample(&mut l, "demo", 256, k as u64 * 1000, low, high);
        }
        // At 6 s `high` reports 400 ms asleep, and the run ends before the
        // `sleeps` record that places it.
        l.line(&format!(
            "@@exo user {{\"env\":256,\"name\":\"demo\",\"core\":0,\"kind\":\"sample\",\"t_ns\":{},\"policy\":\"stride\",\"th\":[[1,100,{},0,0,0],[2,100,{},0,{},0]]}}",
            6_000_000_000u64,
            3_300_000_000u64,
            3_300_000_000u64,
            400_000_000u64
        ));
        l.finish(&serde_json::json!({"trust": {"trusted": true}}));
        console(&mut l, "window 2", "ok");
        let table = l.window_table().unwrap();
        // The window is 3-5 s, ending at the last sample taken in (1:1),
        // not "4-6 s" with 5 s's figures (9:1).
        let low: Vec<&str> = table
            .lines()
            .find(|r| r.contains(" low "))
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(low[..5], ["demo", "(2.0", "s)", "low", "50.0"], "{table}");
    }

    #[test]
    fn a_restarted_instance_keeps_its_threads_names_and_its_own_shares() {
        let mut l = live();
        sample(&mut l, "demo", 256, 0, 0, 0);
        sample(&mut l, "demo", 256, 1000, 900, 100);
        sample(&mut l, "demo#2", 512, 2000, 0, 0);
        sample(&mut l, "demo#2", 512, 3000, 300, 700);
        l.finish(&serde_json::json!({"trust": {"trusted": true}}));
        let table = l.tracker.table(&l.names);
        assert!(
            table
                .lines()
                .any(|r| r.starts_with("demo#2") && r.contains("low") && r.contains(" 30.0 ")),
            "{table}"
        );
        assert!(
            table
                .lines()
                .any(|r| r.starts_with("demo(") && r.contains("low") && r.contains(" 90.0 ")),
            "{table}"
        );
    }

    #[test]
    fn no_live_table_is_printed_before_any_thread_has_run() {
        let mut l = live();
        l.stream = true;
        // What a sample line prints, a second or more after the last table.
        let printed = |l: &mut Live, t_ms: u64, low_ms: u64, high_ms: u64| {
            l.last_print = Instant::now().checked_sub(Duration::from_secs(2)).unwrap();
            l.take(&format!(
                "@@exo user {{\"env\":256,\"name\":\"demo\",\"core\":0,\"kind\":\"sample\",\"t_ns\":{},\"policy\":\"stride\",\"th\":[[1,100,{},0,0,0],[2,100,{},0,0,0]]}}",
                t_ms * 1_000_000,
                low_ms * 1_000_000,
                high_ms * 1_000_000
            ))
        };
        assert_eq!(printed(&mut l, 0, 0, 0), None, "nothing completed yet");
        // Completes the first snapshot, where nothing has run yet.
        assert_eq!(printed(&mut l, 1000, 600, 400), None, "a table of zeros");
        // Completes the second: 60:40.
        let table = printed(&mut l, 2000, 1200, 800).expect("a table once a thread has run");
        assert!(table.contains(" 60.0 "), "{table}");
    }

    #[test]
    fn overcharged_windows_make_the_live_table_say_so() {
        let mut l = live();
        assert!(l.untrusted().is_none());
        // The run starts at 10 ms (boot clock): its instants count from
        // there, its threads are named as in the tables.
        l.line("@@exo user {\"env\":256,\"name\":\"demo\",\"core\":0,\"kind\":\"app_start\",\"t_ns\":10000000,\"policy\":\"stride\",\"threads\":2}");
        sample(&mut l, "demo", 256, 10, 0, 0);
        sample(&mut l, "demo", 256, 108, 633, 0);
        let why = l.untrusted().unwrap();
        assert!(
            why.contains("demo/low: 633.0 ms charged in a 98.0 ms window"),
            "{why}"
        );
        assert!(
            why.contains("98.0 ms into the run (t_ns 108000000)"),
            "{why}"
        );
        let mut l = Live::new(
            &crate::scenario::parse(SCENARIO, "live", 1).unwrap(),
            1,
            false,
            Mode::Tcg,
        );
        assert!(l.untrusted().unwrap().starts_with("tcg"));
        l.finish(&serde_json::json!({"trust": {"trusted": false}}));
    }
}
