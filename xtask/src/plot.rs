//! Figures of a scenario run, as PNG and SVG next to its data, sized for a
//! paper (see [`style`]): cumulative CPU time per thread with events
//! marked, measured against ideal share (lottery with its binomial
//! envelope), lag in quanta over time, the distribution (CDF) of each
//! thread's waits for a core, and the per-core slice map over a window
//! when the run recorded who ran where.

mod events;
mod frame;
#[cfg(test)]
mod marker_tests;
mod requests;
pub mod style;
pub mod sweep;
#[cfg(test)]
mod sweep_tests;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::metrics;
use crate::rundata::RunData;
use crate::scenario_run::replay;
use frame::{err, frame, legend, line_figure, Axis, Colour, EventLine, Line, Mark, Ranges};
use style::{Paper, Style};

/// Where the plots' font lives (Debian's fonts-dejavu-core, installed by
/// `./just`).
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// The slice map's window when none is asked for: this many quanta from
/// the start, where single slices are still visible.
const SLICE_MAP_QUANTA: u64 = 50;

fn register_font() -> Result<(), String> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = std::fs::read(FONT)
            .map_err(|e| format!("{FONT}: {e} (install fonts-dejavu-core; ./just does)"))?;
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            Box::leak(bytes.into_boxed_slice()),
        )
        .map_err(|_| format!("{FONT}: not a usable font"))
    })
    .clone()
}

/// How `just plot` draws a run.
#[derive(Clone, Debug)]
pub struct PlotOptions {
    pub paper: Paper,
    /// Titles on the figures (off for a paper, whose caption names them).
    pub title: bool,
    /// The slice map's window, seconds since the run's start.
    pub from_s: Option<f64>,
    pub to_s: Option<f64>,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            paper: Paper::Page,
            title: true,
            from_s: None,
            to_s: None,
        }
    }
}

/// Writes every figure of the run in `dir` (its `rundata.json`) as `just
/// plot` draws them by default; returns the files written.
pub fn plot_run(dir: &Path) -> Result<Vec<PathBuf>, String> {
    plot_run_with(dir, &PlotOptions::default()).map(|p| p.files)
}

/// What [`plot_run_with`] drew, and what `just plot` says of the run,
/// all from one reading of its data.
#[derive(Clone, Debug)]
pub struct Plotted {
    /// The files written: each figure's PNG and SVG.
    pub files: Vec<PathBuf>,
    /// What the figures stand on, as a caption would say it ([`about`]).
    pub about: String,
    /// Whether the figures keep their titles even with `title=0` (see
    /// [`may_drop_title`]).
    pub titles_kept: bool,
}

/// Calls a figure's function on whichever backend `$b` holds.
macro_rules! on {
    ($b:expr, $f:path, $($arg:expr),*) => {
        match $b {
            Backend::Png(a) => $f($($arg,)* &a),
            Backend::Svg(a) => $f($($arg,)* &a),
        }
    };
}

type Draw<'a> = &'a dyn Fn(&RunData, &PlotOptions, &Style, Backend<'_>) -> Result<(), String>;

/// The two backends a figure is drawn on.
pub enum Backend<'a> {
    Png(DrawingArea<BitMapBackend<'a>, Shift>),
    Svg(DrawingArea<SVGBackend<'a>, Shift>),
}

/// Draws `draw` as `<dir>/<name>.png` (300 dpi) and `<name>.svg` (its
/// print size declared in inches).
fn both(
    dir: &Path,
    name: &str,
    paper: Paper,
    title: bool,
    draw: &dyn Fn(&Style, Backend<'_>) -> Result<(), String>,
) -> Result<[PathBuf; 2], String> {
    let png = dir.join(format!("{name}.png"));
    let svg = dir.join(format!("{name}.svg"));
    let s = Style::png(paper, title);
    draw(
        &s,
        Backend::Png(BitMapBackend::new(&png, s.pixels()).into_drawing_area()),
    )
    .map_err(|e| format!("{name}: {e}"))?;
    let s = Style::svg(paper, title);
    let mut text = String::new();
    draw(
        &s,
        Backend::Svg(SVGBackend::with_string(&mut text, s.pixels()).into_drawing_area()),
    )
    .map_err(|e| format!("{name}: {e}"))?;
    std::fs::write(&svg, style::declare_print_size(&text, paper))
        .map_err(|e| format!("{}: {e}", svg.display()))?;
    Ok([png, svg])
}

fn load(dir: &Path) -> Result<RunData, String> {
    let path = dir.join("rundata.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e} (not a scenario run?)", path.display()))?;
    let mut data: RunData =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if data.trusted.is_none() {
        // A run made before its data kept the verdict and how it ended:
        // its summary has them.
        let summary = std::fs::read_to_string(dir.join("summary.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .unwrap_or_default();
        data.trusted = summary["trust"]["trusted"].as_bool();
        data.ended = crate::scenario_run::ended_badly(&summary["exit"]);
    }
    Ok(data)
}

/// Whether a figure of the run may go without its title (`title=0`): only
/// one of a run trusted that ended well, so a figure of any other always
/// says what it is.
fn may_drop_title(data: &RunData) -> bool {
    data.trusted == Some(true) && data.ended.is_none()
}

/// What a figure of the run stands on, as its title's second line says it
/// (cores, deterministic or not, the schedulers) with whether its
/// measurements were trusted spelled out: `just plot` prints it, the
/// caption's facts for figures drawn without a title (`title=0`).
fn about(data: &RunData) -> String {
    let trust = match data.trusted {
        Some(true) => "trusted",
        Some(false) => "NOT trusted (summary.json's trust says why)",
        None => "trust unknown (no verdict recorded)",
    };
    let (cores, source, schedulers) = facts(data);
    format!(
        "{}: {cores}, {source}, {trust}{}{schedulers}",
        data.scenario_name,
        ended(data)
    )
}

/// `, ended: <exit>` for a run that did not end well, else nothing.
fn ended(data: &RunData) -> String {
    data.ended.as_ref().map_or(String::new(), |e| {
        format!(", ended: {}", e.replace('_', " "))
    })
}

/// Checks that the run in `dir` can be drawn as `opts` asks (its data reads,
/// the slice map's window lies in it) without drawing: `dry_run=1`.
pub fn check(dir: &Path, opts: &PlotOptions) -> Result<(), String> {
    let data = load(dir)?;
    if data.runs.is_empty() {
        return Ok(());
    }
    window(&data, opts).map(|_| ())
}

/// Writes every figure of the run in `dir` drawn as `opts` asks; with what
/// `just plot` says of the run, from the same reading of its data.
pub fn plot_run_with(dir: &Path, opts: &PlotOptions) -> Result<Plotted, String> {
    register_font()?;
    let data = load(dir)?;
    if !data.runs.is_empty() {
        window(&data, opts)?;
    }
    let mut figures: Vec<(&str, Draw)> = vec![
        ("progress", &|d, o, s, b| on!(b, progress, d, o, s)),
        ("shares", &|d, o, s, b| on!(b, shares, d, o, s)),
        ("lag", &|d, o, s, b| on!(b, lag, d, o, s)),
    ];
    if !data.waits.is_empty() {
        figures.push(("waits", &|d, o, s, b| on!(b, waits, d, o, s)));
    }
    if requests::any(&data) {
        figures.push(("requests", &|d, o, s, b| on!(b, requests::latency, d, o, s)));
        figures.push(("backlog", &|d, o, s, b| on!(b, requests::backlog, d, o, s)));
    }
    if !data.runs.is_empty() {
        figures.push(("slicemap", &|d, o, s, b| on!(b, slice_map, d, o, s)));
    }
    // A figure of a run not trusted, or cut short, keeps its title even
    // when asked to drop it: placed in a paper it must not pass for one of
    // a sound run.
    let titled = opts.title || !may_drop_title(&data);
    let opts = &PlotOptions {
        title: titled,
        ..opts.clone()
    };
    let mut written = Vec::new();
    for (name, draw) in figures {
        written.extend(both(dir, name, opts.paper, opts.title, &|s, b| {
            draw(&data, opts, s, b)
        })?);
    }
    Ok(Plotted {
        files: written,
        about: about(&data),
        titles_kept: !may_drop_title(&data),
    })
}

/// A figure's title: the scenario and what the figure shows; under it
/// the run's cores, where its time came from, a warning when its
/// measurements were not trusted or the run did not end well, and the
/// schedulers (each application's,
/// in the order they ran, as a swap changes what the figure means; named
/// once when all ran the same). [`frame::frame`] draws each line cut to
/// the figure's width.
fn title(data: &RunData, what: &str) -> String {
    let (cores, source, schedulers) = facts(data);
    // Where its time came from, and whether it can be trusted, open the
    // second line, so a title cut to the figure's width never loses them
    // (a long scenario name, a list of schedulers).
    let trust = match data.trusted {
        Some(true) => "",
        Some(false) => ", NOT trusted",
        None => ", trust unknown",
    };
    format!(
        "{}: {what}\n{cores}, {source}{trust}{}{schedulers}",
        data.scenario_name,
        ended(data)
    )
}

/// A run's cores, where its time came from, and its schedulers (`; under
/// …`, or empty when none is known).
fn facts(data: &RunData) -> (String, &'static str, String) {
    let cores = if data.cpus_online == 1 {
        "1 core".to_string()
    } else {
        format!("{} cores", data.cpus_online)
    };
    let ran: Vec<(&str, String)> = data
        .apps
        .iter()
        .map(|a| (a.name.as_str(), a.schedulers()))
        .filter(|(_, s)| !s.is_empty())
        .collect();
    let schedulers = match ran.first() {
        None => String::new(),
        Some((_, s)) if ran.iter().all(|(_, t)| t == s) => format!("; under {s}"),
        Some(_) => {
            let each: Vec<String> = ran.iter().map(|(a, s)| format!("{a} under {s}")).collect();
            format!("; {}", each.join("; "))
        }
    };
    let source = if data.deterministic {
        "det"
    } else {
        "not det: host-timed"
    };
    (cores, source, schedulers)
}

/// A thread's 95% binomial envelope on the shares figure, under a
/// randomized policy (lottery) only: none for a thread capped at one core,
/// whose ideal share is a core's (1/capacity of the application's time):
/// it runs whenever a core is free, not by the draws the envelope is of
/// (an audit: ±2.3 points drawn on two capped threads measured within
/// 0.07 of their 25%).
fn envelope(randomized: bool, ideal: f64, capacity: u32, quanta: f64) -> Option<f64> {
    let capped = capacity > 1 && ideal >= 0.995 / f64::from(capacity);
    (randomized && !capped).then(|| metrics::lottery_envelope(ideal, quanta))
}

fn secs(data: &RunData, t: u64) -> f64 {
    t.saturating_sub(data.start_ns) as f64 / 1e9
}

/// A tick's number without trailing zeros.
fn num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Every (app index, thread id, label).
fn labels(data: &RunData) -> Vec<(u32, u32, String)> {
    let multi = data.apps.len() > 1;
    data.apps
        .iter()
        .enumerate()
        .flat_map(|(a, app)| {
            app.threads.iter().map(move |t| {
                let label = if multi {
                    format!("{}/{}", app.name, t.name)
                } else {
                    t.name.clone()
                };
                (a as u32, t.id, label)
            })
        })
        .collect()
}

fn label_of(labels: &[(u32, u32, String)], app: u32, id: u32) -> String {
    labels
        .iter()
        .find(|l| l.0 == app && l.1 == id)
        .map_or(format!("t{id}"), |l| l.2.clone())
}

/// Each thread's colour for every figure of the run: the [`style::NAMED_MAX`]
/// threads that received the most CPU time are named, in colour slots in
/// the run's thread order (`labels`); the rest are "others". Chosen once a
/// run, so a thread has one colour and the same threads are named in its
/// progress, lag and waits figures. A run without CPU figures (no samples)
/// has nothing to choose by: each figure then ranks its own lines.
fn thread_colours(data: &RunData) -> impl Fn(u32, u32) -> Colour {
    let cpu = |app: u32, id: u32| {
        data.samples
            .iter()
            .filter(|s| s.app == app && s.thread == id)
            .map(|s| s.cpu_ns)
            .max()
            .unwrap_or(0)
    };
    let mut threads: Vec<(usize, u32, u32, u64)> = labels(data)
        .into_iter()
        .enumerate()
        .map(|(k, (app, id, _))| (k, app, id, cpu(app, id)))
        .collect();
    let measured = threads.iter().any(|t| t.3 > 0);
    // Most CPU first; ties in the run's order.
    threads.sort_by_key(|&(k, _, _, cpu)| (std::cmp::Reverse(cpu), k));
    threads.truncate(style::NAMED_MAX);
    threads.sort_by_key(|&(k, ..)| k);
    let of = threads.len();
    move |app, id| {
        if !measured {
            return Colour::ByRank;
        }
        match threads.iter().position(|&(_, a, i, _)| a == app && i == id) {
            Some(slot) => Colour::Slot(slot, of),
            None => Colour::Other,
        }
    }
}

/// The run's changes as vertical lines of a figure over time.
fn event_lines(data: &RunData) -> Vec<EventLine> {
    events::markers(&data.events)
        .into_iter()
        .map(|m| EventLine {
            x: secs(data, m.t_ns),
            label: m.label,
        })
        .collect()
}

/// Cumulative CPU time of every thread over time, events as vertical lines.
fn progress<DB: DrawingBackend>(
    data: &RunData,
    _: &PlotOptions,
    style: &Style,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    let t_max = data
        .samples
        .iter()
        .map(|s| secs(data, s.t_ns))
        .fold(0.1, f64::max);
    let y_max = data
        .samples
        .iter()
        .map(|s| s.cpu_ns as f64 / 1e9)
        .fold(0.01, f64::max)
        * 1.05;
    let colour = thread_colours(data);
    let lines = labels(data)
        .into_iter()
        .map(|(app, id, name)| {
            let points: Vec<(f64, f64)> = data
                .samples
                .iter()
                .filter(|s| s.app == app && s.thread == id)
                .map(|s| (secs(data, s.t_ns), s.cpu_ns as f64 / 1e9))
                .collect();
            let rank = points.last().map_or(0.0, |p| p.1);
            Line {
                name,
                points,
                rank,
                ranges: Ranges::NONE,
                colour: colour(app, id),
            }
        })
        .collect();
    let events = event_lines(data);
    line_figure(
        area,
        style,
        &title(data, "cumulative CPU time per thread"),
        frame::seconds_axis(t_max),
        up_to(y_max, "CPU time received (s)"),
        lines,
        &events,
    )
}

/// Measured (bars) against ideal (black marks, each within its bar) share
/// of every thread within its application; lottery applications get the
/// 95% binomial envelope.
fn shares<DB: DrawingBackend>(
    data: &RunData,
    _: &PlotOptions,
    style: &Style,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    let (chart_area, key) = frame(
        area,
        style,
        &title(data, "measured vs ideal share within each application"),
    )?;
    let replayed = replay(data);
    let mut rows = Vec::new();
    for (a, (app, (f, _))) in data.apps.iter().zip(&replayed).enumerate() {
        // A randomized policy's shares hold in expectation: they get the
        // binomial envelope (lottery's).
        let lottery = app
            .scheduler_timeline
            .iter()
            .all(|(_, s)| sched_registry::by_name(s).is_some_and(|p| p.randomized));
        let quanta =
            f.threads.values().map(|t| t.cpu_ns as f64).sum::<f64>() / data.slice_ns.max(1) as f64;
        for (id, (measured, ideal)) in f.shares() {
            let name = app
                .threads
                .iter()
                .find(|t| t.id == id)
                .map_or(format!("t{id}"), |t| t.name.clone());
            let envelope = envelope(lottery, ideal, app.capacity, quanta);
            rows.push((a, name, measured, ideal, envelope));
        }
    }
    let n = rows.len().max(1) as u32;
    let y_max = rows
        .iter()
        .map(|r| r.2.max(r.3) + r.4.unwrap_or(0.0))
        .fold(0.05, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&chart_area)
        .margin(style.px(4.0))
        .x_label_area_size(style.px(24.0))
        .y_label_area_size(style.px(34.0))
        .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..y_max)
        .map_err(err)?;
    let names: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
    // Every thread named when the names fit beside each other; a 101-thread
    // run names every k-th.
    let plot_w = chart.plotting_area().dim_in_pixel().0 as f64;
    let widest = names.iter().map(|s| s.chars().count()).max().unwrap_or(1) as f64;
    let per_name = style.pt(style::MIN_PT) * 0.6 * widest + style.pt(3.0);
    let every = ((n as f64 * per_name / plot_w).ceil() as usize).max(1);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n as usize + 1)
        .y_labels(6)
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) if (*i as usize).is_multiple_of(every) => {
                names.get(*i as usize).cloned().unwrap_or_default()
            }
            _ => String::new(),
        })
        .y_label_formatter(&|v| num(*v))
        .x_desc("thread")
        .y_desc("share of its application")
        .label_style(style.small())
        .axis_desc_style(style.label())
        .light_line_style(WHITE)
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(err)?;
    let at = |i: usize| SegmentValue::Exact(i as u32);
    let bar_w = plot_w / n as f64;
    let inset = ((bar_w * 0.15) as u32).min(style.px(6.0));
    let apps = data.apps.len();
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            let mut bar = Rectangle::new(
                [(at(i), 0.0), (at(i + 1), r.2)],
                style::series(r.0, apps).filled(),
            );
            bar.set_margin(0, 0, inset, inset);
            bar
        }))
        .map_err(err)?;
    // The ideal as a flat rectangle with the bar's own insets: it never
    // reaches into the neighbouring bar.
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            let mut mark = Rectangle::new(
                [(at(i), r.3), (at(i + 1), r.3)],
                style::INK.stroke_width(style.px(1.5)),
            );
            mark.set_margin(0, 0, inset, inset);
            mark
        }))
        .map_err(err)?;
    let whiskers = (bar_w * 0.35).min(style.pt(4.0)) as u32;
    chart
        .draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
            r.4.map(|e| {
                ErrorBar::new_vertical(
                    SegmentValue::CenterOf(i as u32),
                    (r.3 - e).max(0.0),
                    r.3,
                    r.3 + e,
                    style::INK.stroke_width(style.px(0.75)),
                    whiskers.max(1),
                )
            })
        }))
        .map_err(err)?;
    let mut entries: Vec<(String, Mark)> = data
        .apps
        .iter()
        .enumerate()
        .map(|(a, app)| (app.name.clone(), Mark::Block(style::series(a, apps))))
        .collect();
    entries.push(("ideal".to_string(), Mark::Line(style::INK)));
    if rows.iter().any(|r| r.4.is_some()) {
        entries.push(("95% envelope".to_string(), Mark::Whisker(style::INK)));
    }
    legend(&key, style, &entries)?;
    area.present().map_err(err)
}

/// Lag (ideal minus received CPU time, in quanta) of every thread over time.
fn lag<DB: DrawingBackend>(
    data: &RunData,
    _: &PlotOptions,
    style: &Style,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    let quantum = data.slice_ns.max(1) as f64;
    let replayed = replay(data);
    // (app, thread, points)
    type Points = Vec<(f64, f64)>;
    let mut series: Vec<(u32, u32, Points)> = Vec::new();
    for (a, (_, history)) in replayed.iter().enumerate() {
        for (t, threads) in history {
            for (&id, &(ideal, cpu)) in threads {
                let point = (secs(data, *t), (ideal - cpu as f64) / quantum);
                match series.iter_mut().find(|s| s.0 == a as u32 && s.1 == id) {
                    Some(s) => s.2.push(point),
                    None => series.push((a as u32, id, vec![point])),
                }
            }
        }
    }
    let t_max = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.0))
        .fold(0.1, f64::max);
    let y = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1.abs()))
        .fold(1.0, f64::max)
        * 1.1;
    let labels = labels(data);
    let colour = thread_colours(data);
    let lines = series
        .into_iter()
        .map(|(app, id, points)| Line {
            name: label_of(&labels, app, id),
            rank: points.iter().map(|p| p.1.abs()).fold(0.0, f64::max),
            ranges: Ranges::NONE,
            colour: colour(app, id),
            points,
        })
        .collect();
    line_figure(
        area,
        style,
        &title(data, "lag: ideal minus received CPU time"),
        frame::seconds_axis(t_max),
        Axis {
            desc: "lag (quanta; > 0: owed)".to_string(),
            range: -y..y,
            ticks: 7,
            format: num,
        },
        lines,
        // A swap's or a ticket change's effect shows here first: the
        // changes are marked, as on the progress figure.
        &event_lines(data),
    )
}

/// Each thread's waits for a core (docs/metrics.md, "Wait time") as an
/// empirical CDF on a log time axis: the fraction of its waits at or below
/// each length, stepping at its buckets' upper ends.
fn waits<DB: DrawingBackend>(
    data: &RunData,
    _: &PlotOptions,
    style: &Style,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    let dists = metrics::waits::per_thread(&data.waits);
    let ms = |ns: u64| (ns.max(1_000) as f64) / 1e6;
    let labels = labels(data);
    let colour = thread_colours(data);
    let lines: Vec<Line> = dists
        .iter()
        .filter(|(_, d)| d.count() > 0)
        .map(|(&(app, id), d)| Line {
            name: label_of(&labels, app, id),
            points: steps(d, ms),
            rank: d.percentile(0.99).unwrap_or(0) as f64,
            ranges: Ranges::NONE,
            colour: colour(app, id),
        })
        .collect();
    let (lo, hi) = extent(&lines);
    line_figure(
        area,
        style,
        &title(data, "waits for a core: fraction at or below"),
        frame::decades_axis(
            format!(
                "wait for a core (ms; quantum {} ms)",
                num(data.slice_ns as f64 / 1e6)
            ),
            lo,
            hi,
        ),
        fraction_axis("fraction of the thread's waits"),
        log_x(lines),
        &[],
    )
}

/// A distribution's CDF as steps at its buckets' upper ends, `x` mapping
/// nanoseconds to the axis' unit.
fn steps(d: &metrics::waits::WaitDist, x: impl Fn(u64) -> f64) -> Vec<(f64, f64)> {
    let mut points = Vec::new();
    let mut below = 0.0;
    for (ns, f) in d.cdf() {
        points.extend([(x(ns), below), (x(ns), f)]);
        below = f;
    }
    points
}

/// The smallest and largest x of `lines` (positive; for a log axis).
fn extent(lines: &[Line]) -> (f64, f64) {
    positive_extent(lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)))
}

/// The smallest positive and the largest of `values` (for a log axis;
/// (0.1, 1) when there are none).
fn positive_extent(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let lo = values.clone().filter(|&x| x > 0.0).fold(f64::MAX, f64::min);
    let hi = values.fold(0.0, f64::max);
    if lo > hi {
        (0.1, 1.0)
    } else {
        (lo, hi.max(lo * 1.01))
    }
}

/// `lines` with x as its log10, for [`frame::decades_axis`].
fn log_x(lines: Vec<Line>) -> Vec<Line> {
    lines
        .into_iter()
        .map(|mut l| {
            for p in &mut l.points {
                p.0 = p.0.max(f64::MIN_POSITIVE).log10();
            }
            l
        })
        .collect()
}

/// A linear axis from 0 to `max`.
fn up_to(max: f64, desc: &str) -> Axis {
    Axis {
        desc: desc.to_string(),
        range: 0.0..max,
        ticks: 6,
        format: num,
    }
}

fn fraction_axis(desc: &str) -> Axis {
    Axis {
        desc: desc.to_string(),
        range: 0.0..1.02,
        ticks: 6,
        format: num,
    }
}

/// Several wait distributions' CDFs in one figure (`label`, waits, the
/// run's quantum in ns), the time axis in quanta (log): the response-time
/// comparison of `results/README.md`. Writes `path` (PNG) and the SVG
/// beside it.
pub fn wait_cdfs(
    path: &Path,
    caption: &str,
    series: &[(String, metrics::waits::WaitDist, f64)],
) -> Result<(), String> {
    register_font()?;
    let n = series.len();
    let lines: Vec<Line> = series
        .iter()
        .enumerate()
        .map(|(k, (label, d, quantum))| Line {
            name: label.clone(),
            points: steps(d, |ns| (ns as f64 / quantum).max(0.01)),
            // Kept in the caller's order.
            rank: (n - k) as f64,
            ranges: Ranges::NONE,
            colour: Colour::ByRank,
        })
        .collect();
    let (lo, hi) = extent(&lines);
    let lines = log_x(lines);
    figure_at(path, Paper::Page, &|s, b| {
        let lines = lines.clone();
        let x = frame::decades_axis("wait for a core (quanta)".to_string(), lo, hi);
        let y = fraction_axis("fraction of the client's waits");
        match b {
            Backend::Png(a) => line_figure(&a, s, caption, x, y, lines, &[]),
            Backend::Svg(a) => line_figure(&a, s, caption, x, y, lines, &[]),
        }
    })
}

/// One point of [`latency_vs_load`]: the server's CPU used (% of its
/// share), and the latency in ms as the median of some trials with their
/// lowest and highest.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadPoint {
    pub used_percent: f64,
    pub median_ms: f64,
    pub lowest_ms: f64,
    pub highest_ms: f64,
}

/// Latency against load, one line per series (`label` and its points)
/// through the medians, each point's range of trials a bar, the latency
/// axis logarithmic: the serving experiment of `results/README.md`. Writes
/// `path` (PNG) and the SVG beside it.
pub fn latency_vs_load(
    path: &Path,
    caption: &str,
    series: &[(String, Vec<LoadPoint>)],
) -> Result<(), String> {
    register_font()?;
    let (lines, lo, hi) = load_lines(series);
    figure_at(path, Paper::Page, &|s, b| {
        let x = Axis {
            desc: "server CPU used (% of its share)".to_string(),
            range: 0.0..100.0,
            ticks: 6,
            format: |v| format!("{v:.0}"),
        };
        let y = frame::decades_axis("request latency (ms)".to_string(), lo, hi);
        match b {
            Backend::Png(a) => line_figure(&a, s, caption, x, y, lines.clone(), &[]),
            Backend::Svg(a) => line_figure(&a, s, caption, x, y, lines.clone(), &[]),
        }
    })
}

/// [`latency_vs_load`]'s lines, latencies as their log10 (the axis is
/// logarithmic), with the lowest and highest latency drawn: points
/// without a positive latency are left out.
fn load_lines(series: &[(String, Vec<LoadPoint>)]) -> (Vec<Line>, f64, f64) {
    let n = series.len();
    let kept = |points: &[LoadPoint]| -> Vec<LoadPoint> {
        points
            .iter()
            .copied()
            .filter(|p| {
                [p.median_ms, p.lowest_ms, p.highest_ms]
                    .iter()
                    .all(|v| v.is_finite() && *v > 0.0)
            })
            .collect()
    };
    let (lo, hi) = positive_extent(
        series
            .iter()
            .flat_map(|(_, p)| kept(p))
            .flat_map(|p| [p.lowest_ms, p.highest_ms]),
    );
    let lines = series
        .iter()
        .enumerate()
        .map(|(k, (label, points))| {
            let points = kept(points);
            Line {
                name: label.clone(),
                points: points
                    .iter()
                    .map(|p| (p.used_percent, p.median_ms.log10()))
                    .collect(),
                rank: (n - k) as f64,
                ranges: Ranges {
                    what: "range of trials",
                    bars: points
                        .iter()
                        .map(|p| {
                            let (lo, mid, hi) = (p.lowest_ms, p.median_ms, p.highest_ms);
                            (p.used_percent, lo.log10(), mid.log10(), hi.log10())
                        })
                        .collect(),
                },
                colour: Colour::ByRank,
            }
        })
        .collect();
    (lines, lo, hi)
}

/// Draws a figure as the PNG `path` and the SVG beside it, with a title.
fn figure_at(
    path: &Path,
    paper: Paper,
    draw: &dyn Fn(&Style, Backend<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| format!("{}: no file name", path.display()))?;
    both(dir, stem, paper, true, draw).map(|_| ())
}

/// Who ran on each core, when, over a window of the run (`from=`/`to=`,
/// default the first [`SLICE_MAP_QUANTA`] quanta): one row per core, one
/// colour per application, each run inset so consecutive slices of one
/// application stay apart.
fn slice_map<DB: DrawingBackend>(
    data: &RunData,
    opts: &PlotOptions,
    style: &Style,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    let (from, to) = window(data, opts)?;
    let (chart_area, key) = frame(
        area,
        style,
        &title(data, &format!("who ran where, {}-{} s", num(from), num(to))),
    )?;
    let cores = data.cpus_online.max(1);
    let ms = |t: u64| secs(data, t) * 1e3;
    let mut chart = ChartBuilder::on(&chart_area)
        .margin(style.px(4.0))
        .x_label_area_size(style.px(24.0))
        .y_label_area_size(style.px(34.0))
        // Core c is the band c ± 0.5 (a segmented axis of one core is
        // degenerate: 0..0).
        .build_cartesian_2d(from * 1e3..to * 1e3, -0.5..cores as f64 - 0.5)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_max_light_lines(0)
        .x_labels(8)
        .x_label_formatter(&|v| num(*v))
        .y_labels(cores as usize)
        .y_label_formatter(&|y| {
            if y.fract() == 0.0 && *y >= 0.0 {
                format!("core {y}")
            } else {
                String::new()
            }
        })
        .x_desc("time since start (ms)")
        .label_style(style.small())
        .axis_desc_style(style.label())
        .light_line_style(WHITE)
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(err)?;
    let apps = data.apps.len();
    let (lo_ms, hi_ms) = (from * 1e3, to * 1e3);
    for a in 0..apps {
        let runs = data
            .runs
            .iter()
            .filter(|r| r.app == Some(a as u32) && ms(r.end_ns) > lo_ms && ms(r.start_ns) < hi_ms);
        chart
            .draw_series(runs.map(|r| {
                let (lo, hi) = (r.core as f64 - 0.4, r.core as f64 + 0.4);
                let (s, e) = (ms(r.start_ns).max(lo_ms), ms(r.end_ns).min(hi_ms));
                let mut bar = Rectangle::new([(s, lo), (e, hi)], style::series(a, apps).filled());
                bar.set_margin(0, 0, 0, style.px(0.5));
                bar
            }))
            .map_err(err)?;
    }
    let entries: Vec<(String, Mark)> = data
        .apps
        .iter()
        .enumerate()
        .map(|(a, app)| (app.name.clone(), Mark::Block(style::series(a, apps))))
        .collect();
    legend(&key, style, &entries)?;
    area.present().map_err(err)
}

/// The slice map's window in seconds since the run's start.
pub fn window(data: &RunData, opts: &PlotOptions) -> Result<(f64, f64), String> {
    let end = data
        .runs
        .iter()
        .map(|r| secs(data, r.end_ns))
        .fold(0.0, f64::max);
    let from = opts.from_s.unwrap_or(0.0);
    let default_span = (SLICE_MAP_QUANTA * data.slice_ns.max(1)) as f64 / 1e9;
    let to = opts.to_s.unwrap_or((from + default_span).min(end));
    if !(from >= 0.0 && from < end) {
        return Err(format!(
            "from={from}: the run's slices span 0-{} s",
            num(end)
        ));
    }
    if to.partial_cmp(&from) != Some(std::cmp::Ordering::Greater) {
        return Err(format!("to={to} is not after from={from}"));
    }
    Ok((from, to))
}

/// One ticket ratio of the lottery sweep: `(ticket ratio, mean CPU ratio
/// over its trials, half-width of the mean's 95% confidence interval)`,
/// the half-width `None` for a single trial.
pub type SweepPoint = (f64, f64, Option<f64>);

/// The lottery ratio sweep: observed CPU ratio against the ticket ratio,
/// with the ideal diagonal and, where there were trials, each mean's 95%
/// confidence interval as an error bar; PNG `path` and the SVG beside it.
pub fn ratio_sweep(path: &Path, caption: &str, points: &[SweepPoint]) -> Result<(), String> {
    register_font()?;
    figure_at(path, Paper::Column, &|s, b| match b {
        Backend::Png(a) => sweep_figure(&a, s, caption, points),
        Backend::Svg(a) => sweep_figure(&a, s, caption, points),
    })
}

/// The axes' ranges `(x_max, y_min, y_max)`: the ticket axis as long as
/// the ticket ratios, the CPU axis holding every interval (below zero too:
/// two trials' t is 12.7, so an interval can reach under it) and the
/// ideal line (y = x) to the ticket axis's end.
fn sweep_axes(points: &[SweepPoint]) -> (f64, f64, f64) {
    let end = |values: &mut dyn Iterator<Item = f64>| {
        values.filter(|v| v.is_finite()).fold(1.0, f64::max) * 1.1
    };
    let x_max = end(&mut points.iter().map(|p| p.0));
    let y_max = end(&mut points.iter().map(|&(_, y, h)| y + h.unwrap_or(0.0))).max(x_max);
    let y_min = points
        .iter()
        .map(|&(_, y, h)| y - h.unwrap_or(0.0))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::min)
        * 1.1;
    (x_max, y_min, y_max)
}

fn sweep_figure<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    style: &Style,
    caption: &str,
    points: &[SweepPoint],
) -> Result<(), String> {
    let (chart_area, key) = frame(area, style, caption)?;
    let (x_max, y_min, y_max) = sweep_axes(points);
    let mut chart = ChartBuilder::on(&chart_area)
        .margin(style.px(4.0))
        .x_label_area_size(style.px(24.0))
        .y_label_area_size(style.px(30.0))
        .build_cartesian_2d(0.0..x_max, y_min..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|v| num(*v))
        .y_label_formatter(&|v| num(*v))
        .x_desc("ticket ratio A:B")
        .y_desc("CPU time ratio A:B")
        .label_style(style.small())
        .axis_desc_style(style.label())
        .light_line_style(WHITE)
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            [(0.0, 0.0), (x_max, x_max)],
            style::INK.stroke_width(style.line()),
        ))
        .map_err(err)?;
    let c = style::series(0, 1);
    chart
        .draw_series(points.iter().filter_map(|&(x, y, h)| {
            let h = h?;
            Some(ErrorBar::new_vertical(
                x,
                y - h,
                y,
                y + h,
                c.stroke_width(style.line()),
                style.px(5.0),
            ))
        }))
        .map_err(err)?;
    chart
        .draw_series(
            points
                .iter()
                .map(|&(x, y, _)| Circle::new((x, y), style.px(2.5), c.filled())),
        )
        .map_err(err)?;
    let mut keys = vec![("ideal".to_string(), Mark::Line(style::INK))];
    if points.iter().any(|p| p.2.is_some()) {
        keys.push(("mean".to_string(), Mark::Block(c)));
        keys.push(("95% CI".to_string(), Mark::Whisker(c)));
    } else {
        keys.push(("measured".to_string(), Mark::Block(c)));
    }
    legend(&key, style, &keys)?;
    area.present().map_err(err)
}
