//! A run's request figures, for an application that serves a request
//! stream (docs/metrics.md, "Request latency"): how long its requests took
//! (`requests.png`) and how many were waiting over time (`backlog.png`),
//! one line per serving application.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::frame::{self, line_figure, Axis, Colour, Line, Ranges};
use super::style::Style;
use super::{event_lines, extent, fraction_axis, log_x, num, secs, steps, title, PlotOptions};
use crate::metrics::requests::{kept_up, latencies};
use crate::rundata::{RequestLog, RunData};

/// The application's name, marked † when its servers did not keep up: its
/// percentiles then leave out the requests still waiting at the end (the
/// title says so; a legend has no room for it).
fn name(data: &RunData, log: &RequestLog) -> String {
    let app = data
        .apps
        .get(log.app as usize)
        .map_or(format!("app {}", log.app), |a| a.name.clone());
    let last = log.intervals.last();
    let (arrived, completed) = last.map_or((0, 0), |l| (l.arrived, l.completed));
    if kept_up(arrived.saturating_sub(completed), arrived) {
        app
    } else {
        format!("{app} {BEHIND}")
    }
}

const BEHIND: &str = "†";

/// `what`, and what † means when a line carries it.
fn what(lines: &[Line], what: &str) -> String {
    if lines.iter().any(|l| l.name.ends_with(BEHIND)) {
        format!("{what}; {BEHIND} did not keep up")
    } else {
        what.to_string()
    }
}

/// One line per serving application, in the run's order, of `points`.
fn stream_lines(data: &RunData, points: impl Fn(&RequestLog) -> Vec<(f64, f64)>) -> Vec<Line> {
    let n = data.requests.len();
    data.requests
        .iter()
        .enumerate()
        .map(|(k, log)| Line {
            name: name(data, log),
            points: points(log),
            rank: (n - k) as f64,
            ranges: Ranges::NONE,
            colour: Colour::ByRank,
        })
        .collect()
}

/// Each serving application's completed requests' latencies as a CDF, the
/// latency axis logarithmic.
pub fn latency<DB: DrawingBackend>(
    data: &RunData,
    _: &PlotOptions,
    style: &Style,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    let lines: Vec<Line> = stream_lines(data, |log| {
        steps(&latencies(log), |ns| ns.max(1_000) as f64 / 1e6)
    })
    .into_iter()
    .filter(|l| !l.points.is_empty())
    .collect();
    let (lo, hi) = extent(&lines);
    let caption = title(data, &what(&lines, "latency of the completed requests"));
    line_figure(
        area,
        style,
        &caption,
        frame::decades_axis("arrival to completion (ms)".to_string(), lo, hi),
        fraction_axis("fraction of completed requests"),
        log_x(lines),
        &[],
    )
}

/// Each serving application's requests arrived and not yet completed at
/// each report, with the run's events: when a stream fell behind, and
/// whether a swap or a change of load did it.
pub fn backlog<DB: DrawingBackend>(
    data: &RunData,
    _: &PlotOptions,
    style: &Style,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    let lines = stream_lines(data, |log| {
        log.intervals
            .iter()
            .map(|i| {
                let waiting = i.arrived.saturating_sub(i.completed);
                (secs(data, i.t_ns), waiting as f64)
            })
            .collect()
    });
    let points = || lines.iter().flat_map(|l| l.points.iter());
    let t_max = points().map(|p| p.0).fold(0.1, f64::max);
    let y_max = points().map(|p| p.1).fold(1.0, f64::max) * 1.05;
    line_figure(
        area,
        style,
        &title(data, &what(&lines, "requests arrived and not completed")),
        frame::seconds_axis(t_max),
        Axis {
            desc: "requests waiting at the report".to_string(),
            range: 0.0..y_max,
            ticks: 6,
            format: num,
        },
        lines,
        &event_lines(data),
    )
}
