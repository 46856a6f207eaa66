//! Figures of a scenario run, as PNG and SVG next to its data: cumulative
//! CPU time per thread with events marked, measured against ideal share
//! (lottery with its binomial envelope), lag in quanta over time, the
//! distribution (CDF) of each thread's waits for a core, and the per-core
//! slice map when the run recorded who ran where.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::metrics;
use crate::rundata::RunData;
use crate::scenario_run::replay;

/// Where the plots' font lives (Debian's fonts-dejavu-core, installed by
/// `./just`).
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const SIZE: (u32, u32) = (1100, 650);
/// Series beyond this many get no legend entry (a 101-thread run).
const LEGEND_MAX: usize = 12;

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

/// Writes every figure of the run in `dir` (its `rundata.json`); returns the
/// files written.
pub fn plot_run(dir: &Path) -> Result<Vec<PathBuf>, String> {
    register_font()?;
    let path = dir.join("rundata.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e} (not a scenario run?)", path.display()))?;
    let data: RunData =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut written = Vec::new();
    macro_rules! figure {
        ($name:literal, $draw:ident) => {{
            let png = dir.join(concat!($name, ".png"));
            let svg = dir.join(concat!($name, ".svg"));
            $draw(&data, &BitMapBackend::new(&png, SIZE).into_drawing_area())
                .and_then(|()| $draw(&data, &SVGBackend::new(&svg, SIZE).into_drawing_area()))
                .map_err(|e| format!("{}: {e}", $name))?;
            written.extend([png, svg]);
        }};
    }
    figure!("progress", progress);
    figure!("shares", shares);
    figure!("lag", lag);
    if !data.waits.is_empty() {
        figure!("waits", waits);
    }
    if !data.runs.is_empty() {
        figure!("slicemap", slice_map);
    }
    Ok(written)
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

fn title(data: &RunData, what: &str) -> String {
    let cores = if data.cpus_online == 1 {
        "1 core".to_string()
    } else {
        format!("{} cores", data.cpus_online)
    };
    format!(
        "{}: {what} ({cores}{})",
        data.scenario_name,
        if data.deterministic { ", det" } else { "" }
    )
}

fn secs(data: &RunData, t: u64) -> f64 {
    t.saturating_sub(data.start_ns) as f64 / 1e9
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

fn color(i: usize) -> RGBColor {
    let c = Palette99::pick(i).to_rgba();
    RGBColor(c.0, c.1, c.2)
}

/// Cumulative CPU time of every thread over time, events as vertical lines.
fn progress<DB: DrawingBackend>(
    data: &RunData,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    area.fill(&WHITE).map_err(err)?;
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
    let mut chart = ChartBuilder::on(area)
        .caption(
            title(data, "cumulative CPU time per thread"),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time since start (s)")
        .y_desc("CPU time received (s)")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    for (k, (app, id, label)) in labels(data).into_iter().enumerate() {
        let points = data
            .samples
            .iter()
            .filter(|s| s.app == app && s.thread == id)
            .map(|s| (secs(data, s.t_ns), s.cpu_ns as f64 / 1e9));
        let style = color(k).stroke_width(2);
        let series = chart
            .draw_series(LineSeries::new(points, style))
            .map_err(err)?;
        if k < LEGEND_MAX {
            series.label(label).legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 18, y)], color(k).stroke_width(3))
            });
        }
    }
    for e in data
        .events
        .iter()
        .filter(|e| !matches!(e.kind.as_str(), "repossession" | "spawned"))
    {
        let x = secs(data, e.t_ns);
        chart
            .draw_series(std::iter::once(PathElement::new(
                [(x, 0.0), (x, y_max)],
                BLACK.mix(0.35),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                e.kind.clone(),
                (x, y_max * 0.97),
                ("sans-serif", 13),
            )))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    area.present().map_err(err)
}

/// Measured (bars) against ideal (black marks) share of every thread within
/// its application; lottery applications get the 95% binomial envelope.
fn shares<DB: DrawingBackend>(data: &RunData, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
    area.fill(&WHITE).map_err(err)?;
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
            let envelope = lottery.then(|| metrics::lottery_envelope(ideal, quanta));
            rows.push((a, name, measured, ideal, envelope));
        }
    }
    let n = rows.len().max(1) as u32;
    let y_max = rows
        .iter()
        .map(|r| r.2.max(r.3) + r.4.unwrap_or(0.0))
        .fold(0.05, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(
            title(data, "measured vs ideal share within each application"),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(70)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..y_max)
        .map_err(err)?;
    let names: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
    // Every thread named when they fit; a 101-thread run names some.
    let every = (n as usize).div_ceil(24).max(1);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n as usize + 1)
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) if (*i as usize).is_multiple_of(every) => {
                names.get(*i as usize).cloned().unwrap_or_default()
            }
            _ => String::new(),
        })
        .x_desc("thread")
        .y_desc("share of its application's CPU time")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    let at = |i: usize| SegmentValue::Exact(i as u32);
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            let mut bar = Rectangle::new(
                [(at(i), 0.0), (at(i + 1), r.2)],
                color(r.0).mix(0.7).filled(),
            );
            bar.set_margin(0, 0, 6, 6);
            bar
        }))
        .map_err(err)?
        .label("measured")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color(0).mix(0.7).filled()));
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            PathElement::new([(at(i), r.3), (at(i + 1), r.3)], BLACK.stroke_width(3))
        }))
        .map_err(err)?
        .label("ideal")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], BLACK.stroke_width(3)));
    let bars = rows.iter().enumerate().filter_map(|(i, r)| {
        r.4.map(|e| {
            ErrorBar::new_vertical(
                SegmentValue::CenterOf(i as u32),
                (r.3 - e).max(0.0),
                r.3,
                r.3 + e,
                RED.stroke_width(2),
                10,
            )
        })
    });
    chart
        .draw_series(bars)
        .map_err(err)?
        .label("lottery 95% envelope")
        .legend(|(x, y)| PathElement::new([(x + 7, y - 6), (x + 7, y + 6)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    area.present().map_err(err)
}

/// Lag (ideal minus received CPU time, in quanta) of every thread over time.
fn lag<DB: DrawingBackend>(data: &RunData, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
    area.fill(&WHITE).map_err(err)?;
    let quantum = data.slice_ns.max(1) as f64;
    let replayed = replay(data);
    // (app, thread, points)
    type Line = (u32, u32, Vec<(f64, f64)>);
    let mut series: Vec<Line> = Vec::new();
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
    let mut chart = ChartBuilder::on(area)
        .caption(
            title(data, "lag: ideal minus received CPU time"),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, -y..y)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time since start (s)")
        .y_desc("lag (quanta; > 0: owed time)")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    let labels = labels(data);
    for (k, (app, id, points)) in series.into_iter().enumerate() {
        let label = labels
            .iter()
            .find(|l| l.0 == app && l.1 == id)
            .map_or(String::new(), |l| l.2.clone());
        let s = chart
            .draw_series(LineSeries::new(points, color(k).stroke_width(2)))
            .map_err(err)?;
        if k < LEGEND_MAX {
            s.label(label).legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 18, y)], color(k).stroke_width(3))
            });
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    area.present().map_err(err)
}

/// Each thread's waits for a core (docs/metrics.md, "Wait time") as an
/// empirical CDF on a log time axis: the fraction of its waits at or below
/// each length, stepping at its buckets' upper ends.
fn waits<DB: DrawingBackend>(data: &RunData, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
    area.fill(&WHITE).map_err(err)?;
    let dists = metrics::waits::per_thread(&data.waits);
    let ms = |ns: u64| (ns.max(1_000) as f64) / 1e6;
    // (app, thread, points)
    type Line = (u32, u32, Vec<(f64, f64)>);
    let lines: Vec<Line> = dists
        .iter()
        .filter(|(_, d)| d.count() > 0)
        .map(|(&(app, id), d)| {
            let mut points = Vec::new();
            let mut below = 0.0;
            for (ns, f) in d.cdf() {
                points.extend([(ms(ns), below), (ms(ns), f)]);
                below = f;
            }
            (app, id, points)
        })
        .collect();
    let lo = lines
        .iter()
        .flat_map(|l| l.2.iter().map(|p| p.0))
        .fold(f64::MAX, f64::min)
        .min(1.0)
        / 1.5;
    let hi = lines
        .iter()
        .flat_map(|l| l.2.iter().map(|p| p.0))
        .fold(0.01, f64::max)
        * 1.5;
    let mut chart = ChartBuilder::on(area)
        .caption(
            title(data, "waits for a core: fraction at or below"),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.02)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(format!(
            "wait from runnable to running (ms, log; quantum {} ms)",
            data.slice_ns as f64 / 1e6
        ))
        .y_desc("fraction of the thread's waits")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    let labels = labels(data);
    for (k, (app, id, points)) in lines.into_iter().enumerate() {
        let label = labels
            .iter()
            .find(|l| l.0 == app && l.1 == id)
            .map_or(String::new(), |l| l.2.clone());
        let s = chart
            .draw_series(LineSeries::new(points, color(k).stroke_width(2)))
            .map_err(err)?;
        if k < LEGEND_MAX {
            s.label(label).legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 18, y)], color(k).stroke_width(3))
            });
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)?;
    area.present().map_err(err)
}

/// Several wait distributions' CDFs in one figure (`label`, waits, the
/// run's quantum in ns), the time axis in quanta (log): the response-time
/// comparison of `results/README.md`.
pub fn wait_cdfs(
    path: &Path,
    caption: &str,
    series: &[(String, metrics::waits::WaitDist, f64)],
) -> Result<(), String> {
    register_font()?;
    let area = BitMapBackend::new(path, SIZE).into_drawing_area();
    area.fill(&WHITE).map_err(err)?;
    let steps: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|(_, d, quantum)| {
            let mut points = Vec::new();
            let mut below = 0.0;
            for (ns, f) in d.cdf() {
                let x = (ns as f64 / quantum).max(0.01);
                points.extend([(x, below), (x, f)]);
                below = f;
            }
            points
        })
        .collect();
    let xs = || steps.iter().flatten().map(|p| p.0);
    let lo = xs().fold(1.0, f64::min) / 1.5;
    let hi = xs().fold(2.0, f64::max) * 1.5;
    let mut chart = ChartBuilder::on(&area)
        .caption(caption, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.02)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("wait from runnable to running (quanta, log)")
        .y_desc("fraction of the client's waits")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    for (k, ((label, _, _), points)) in series.iter().zip(steps).enumerate() {
        chart
            .draw_series(LineSeries::new(points, color(k).stroke_width(2)))
            .map_err(err)?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 18, y)], color(k).stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    area.present().map_err(err)
}

/// Who ran on each core, when: one row per core, one colour per application.
fn slice_map<DB: DrawingBackend>(
    data: &RunData,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    area.fill(&WHITE).map_err(err)?;
    let t_max = data
        .runs
        .iter()
        .map(|r| secs(data, r.end_ns))
        .fold(0.1, f64::max);
    let cores = data.cpus_online.max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(title(data, "slice map: who ran where"), ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, (0..cores - 1).into_segmented())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(cores as usize + 1)
        .y_label_formatter(&|y| match y {
            SegmentValue::CenterOf(c) => format!("core {c}"),
            _ => String::new(),
        })
        .x_desc("time since start (s)")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    for (a, app) in data.apps.iter().enumerate() {
        let runs = data.runs.iter().filter(|r| r.app == Some(a as u32));
        chart
            .draw_series(runs.map(|r| {
                let (lo, hi) = (SegmentValue::Exact(r.core), SegmentValue::Exact(r.core + 1));
                let mut bar = Rectangle::new(
                    [(secs(data, r.start_ns), lo), (secs(data, r.end_ns), hi)],
                    color(a).filled(),
                );
                bar.set_margin(8, 8, 0, 0);
                bar
            }))
            .map_err(err)?
            .label(app.name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color(a).filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    area.present().map_err(err)
}

/// The lottery ratio sweep: observed CPU ratio against the ticket ratio,
/// with the ideal diagonal.
pub fn ratio_sweep(path: &Path, points: &[(f64, f64)]) -> Result<(), String> {
    register_font()?;
    let area = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    area.fill(&WHITE).map_err(err)?;
    let max = points.iter().map(|p| p.0.max(p.1)).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&area)
        .caption(
            "lottery: observed CPU ratio vs ticket ratio (one core)",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max, 0.0..max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("ticket ratio A:B")
        .y_desc("observed CPU time ratio A:B")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            [(0.0, 0.0), (max, max)],
            BLACK.mix(0.5).stroke_width(2),
        ))
        .map_err(err)?
        .label("ideal")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK.stroke_width(2)));
    chart
        .draw_series(
            points
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 6, RED.filled())),
        )
        .map_err(err)?
        .label("measured")
        .legend(|(x, y)| Circle::new((x + 9, y), 5, RED.filled()));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    area.present().map_err(err)
}
