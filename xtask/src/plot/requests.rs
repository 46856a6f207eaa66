//! A run's request figures, for an application that serves a request
//! stream (docs/metrics.md, "Request latency"): how long its requests took
//! (`requests.png`) and how many were waiting over time (`backlog.png`),
//! one line per serving application that had a request arrive.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::frame::{self, line_figure, Colour, Line, Ranges};
use super::style::Style;
use super::{event_lines, extent, fraction_axis, log_x, secs, steps, title, up_to, PlotOptions};
use crate::metrics::requests::{kept_up, latencies};
use crate::rundata::{RequestLog, RunData};

/// A stream's requests arrived and completed by its last report.
fn ends(log: &RequestLog) -> (u64, u64) {
    log.intervals
        .last()
        .map_or((0, 0), |l| (l.arrived, l.completed))
}

/// The streams drawn: those that had a request arrive.
fn streams(data: &RunData) -> impl Iterator<Item = &RequestLog> {
    data.requests.iter().filter(|log| ends(log).0 > 0)
}

/// Whether the run has a stream to draw.
pub fn any(data: &RunData) -> bool {
    streams(data).next().is_some()
}

const BEHIND: &str = "†";

/// Whether a stream's servers kept up ([`kept_up`]).
fn kept_up_by(log: &RequestLog) -> bool {
    let (arrived, completed) = ends(log);
    kept_up(arrived.saturating_sub(completed), arrived)
}

/// The run's title for `what`, and on a line of its own what † means
/// when a stream carries it (a legend has no room to say it, and the
/// first line is cut when a scenario's name is long).
fn caption(data: &RunData, what: &str) -> String {
    let title = title(data, what);
    if streams(data).any(|log| !kept_up_by(log)) {
        format!("{title}\n{BEHIND} over 1% of arrivals left waiting")
    } else {
        title
    }
}

/// One line per stream drawn, in the run's order, of `points`, its name
/// the application's, marked † when it did not keep up; a dot at each
/// point when `dots`.
fn stream_lines(
    data: &RunData,
    dots: bool,
    points: impl Fn(&RequestLog) -> Vec<(f64, f64)>,
) -> Vec<Line> {
    let drawn: Vec<&RequestLog> = streams(data).collect();
    let n = drawn.len();
    drawn
        .into_iter()
        .enumerate()
        .map(|(k, log)| {
            let app = data
                .apps
                .get(log.app as usize)
                .map_or(format!("app {}", log.app), |a| a.name.clone());
            let points = points(log);
            Line {
                name: if kept_up_by(log) {
                    app
                } else {
                    format!("{app} {BEHIND}")
                },
                ranges: Ranges {
                    what: "",
                    bars: if dots {
                        points.iter().map(|&(x, y)| (x, y, y, y)).collect()
                    } else {
                        Vec::new()
                    },
                },
                points,
                rank: (n - k) as f64,
                colour: Colour::ByRank,
            }
        })
        .collect()
}

/// Each stream's latencies as the fraction of its *arrived* requests
/// completed within each latency (ms): a stream that left requests waiting
/// levels off below 1, at the part it completed, where a fraction of the
/// completed ones would reach 1 and hide them.
fn latency_lines(data: &RunData) -> Vec<Line> {
    stream_lines(data, false, |log| {
        let (arrived, completed) = ends(log);
        let part = completed as f64 / arrived.max(1) as f64;
        steps(&latencies(log), |ns| ns.max(1_000) as f64 / 1e6)
            .into_iter()
            .map(|(ms, f)| (ms, f * part))
            .collect()
    })
}

/// Each stream's requests arrived and not completed at each report (the
/// line only joins the reports, each a dot).
fn backlog_lines(data: &RunData) -> Vec<Line> {
    stream_lines(data, true, |log| {
        log.intervals
            .iter()
            .map(|i| {
                let waiting = i.arrived.saturating_sub(i.completed);
                (secs(data, i.t_ns), waiting as f64)
            })
            .collect()
    })
}

/// [`latency_lines`], the latency axis logarithmic.
pub fn latency<DB: DrawingBackend>(
    data: &RunData,
    _: &PlotOptions,
    style: &Style,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    let lines = latency_lines(data);
    let (lo, hi) = extent(&lines);
    line_figure(
        area,
        style,
        &caption(data, "request latency, of all arrivals"),
        frame::decades_axis("arrival to completion (ms)".to_string(), lo, hi),
        fraction_axis("fraction completed within"),
        log_x(lines),
        &[],
    )
}

/// [`backlog_lines`], with the run's events: when a stream fell behind,
/// and whether a swap or a change of load did it.
pub fn backlog<DB: DrawingBackend>(
    data: &RunData,
    _: &PlotOptions,
    style: &Style,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    let lines = backlog_lines(data);
    let points = || lines.iter().flat_map(|l| l.points.iter());
    let t_max = points().map(|p| p.0).fold(0.1, f64::max);
    let y_max = points().map(|p| p.1).fold(1.0, f64::max) * 1.05;
    line_figure(
        area,
        style,
        &caption(data, "requests waiting at each report"),
        frame::seconds_axis(t_max),
        up_to(y_max, "requests waiting"),
        lines,
        &event_lines(data),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rundata::{App, RequestInterval};
    use abi::waits::bucket_of;

    const MS: u64 = 1_000_000;

    /// A stream of application `app` reporting every 100 ms from 100 ms:
    /// `arrived` and `completed` by each report, 90 requests of ~1 ms and
    /// 10 of ~9 ms in all.
    fn stream(app: u32, reports: &[(u64, u64)]) -> RequestLog {
        RequestLog {
            app,
            intervals: reports
                .iter()
                .enumerate()
                .map(|(k, &(arrived, completed))| RequestInterval {
                    t_ns: (k as u64 + 1) * 100 * MS,
                    arrived,
                    completed,
                    max_ns: 9 * MS,
                    buckets: if k == 0 {
                        vec![(bucket_of(MS) as u32, 90), (bucket_of(9 * MS) as u32, 10)]
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
            ..Default::default()
        }
    }

    fn run(requests: Vec<RequestLog>) -> RunData {
        let app = |name: &str| App {
            name: name.into(),
            ..Default::default()
        };
        RunData {
            apps: vec![app("fast"), app("slow"), app("idle")],
            requests,
            ..Default::default()
        }
    }

    #[test]
    fn latency_is_a_fraction_of_what_arrived_in_ms() {
        // `slow` completed 100 of 200: half its arrivals waited to the end.
        let data = run(vec![
            stream(0, &[(100, 100)]),
            stream(1, &[(100, 100), (200, 100)]),
        ]);
        let lines = latency_lines(&data);
        let names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["fast", "slow †"]);
        let last = |l: &Line| *l.points.last().unwrap();
        let (ms, f) = last(&lines[0]);
        // The 9 ms bucket's upper end, in ms (not µs, not ns).
        assert!((9.0..12.0).contains(&ms), "{ms}");
        assert_eq!(f, 1.0);
        assert_eq!(last(&lines[1]).1, 0.5);
        // The first step: 90 of `fast`'s 100 within about a millisecond.
        let at_1ms = lines[0].points.iter().find(|p| p.1 > 0.0).unwrap();
        assert!(
            (1.0..1.3).contains(&at_1ms.0) && at_1ms.1 == 0.9,
            "{at_1ms:?}"
        );
        assert!(caption(&data, "x").ends_with("\n† over 1% of arrivals left waiting"));
    }

    #[test]
    fn the_backlog_is_what_arrived_and_did_not_complete_at_each_report() {
        let data = run(vec![
            stream(0, &[(100, 100)]),
            stream(1, &[(100, 90), (200, 100)]),
            // Nothing arrived: not drawn.
            stream(2, &[(0, 0)]),
        ]);
        let lines = backlog_lines(&data);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].points, vec![(0.1, 10.0), (0.2, 100.0)]);
        // Each report a dot, no range.
        assert_eq!(lines[1].ranges.bars[1], (0.2, 100.0, 100.0, 100.0));
        assert!(!caption(&run(vec![stream(0, &[(100, 100)])]), "x").contains('†'));
        assert!(any(&data) && !any(&run(vec![stream(2, &[(0, 0)])])));
    }
}
