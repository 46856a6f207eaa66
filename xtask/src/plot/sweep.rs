//! A sweep's figures (`just sweep`): a figure against the swept value, one
//! line per thread or application, each point with the range it stands
//! for.

use std::path::Path;

use super::frame::{self, line_figure, Axis, Colour, Line, Ranges};
use super::style::Paper;
use super::{figure_at, num, positive_extent, register_font, Backend};

/// One point of a sweep's line: the swept value, the figure, and the
/// range it stands for (a mean's 95% interval, or the lowest and highest
/// of some trials); none for a single run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ValuePoint {
    pub x: f64,
    pub y: f64,
    pub range: Option<(f64, f64)>,
}

/// How a sweep figure's y axis is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Linear, through zero.
    Linear,
    /// Logarithmic (decades): points without a positive figure are left
    /// out.
    Log,
}

/// Draws `series` (a name and its points, in the caller's order) against
/// the swept value `key`, the points' ranges named `ranges_are` in the
/// legend: PNG `path` and the SVG beside it.
pub fn value_lines(
    path: &Path,
    caption: &str,
    (key, y_desc): (&str, &str),
    scale: Scale,
    ranges_are: &'static str,
    series: &[(String, Vec<ValuePoint>)],
) -> Result<(), String> {
    register_font()?;
    let lines = lines(series, scale, ranges_are);
    let xs = || lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let (x_lo, x_hi) = (xs().fold(f64::MAX, f64::min), xs().fold(f64::MIN, f64::max));
    let (x_lo, x_hi) = if x_lo > x_hi {
        (0.0, 1.0)
    } else {
        (x_lo, x_hi)
    };
    let pad = ((x_hi - x_lo) * 0.05).max(0.5);
    let x = Axis {
        desc: key.to_string(),
        range: x_lo - pad..x_hi + pad,
        ticks: 6,
        format: num,
    };
    let ys = series
        .iter()
        .flat_map(|(_, p)| p.iter())
        .flat_map(|p| {
            let (lo, hi) = p.range.unwrap_or((p.y, p.y));
            [p.y, lo, hi]
        })
        .filter(|v| v.is_finite());
    let y = match scale {
        Scale::Log => {
            let (lo, hi) = positive_extent(ys);
            frame::decades_axis(y_desc.to_string(), lo, hi)
        }
        Scale::Linear => {
            let (lo, hi) = ys.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let pad = ((hi - lo) * 0.08).max(1e-9);
            Axis {
                desc: y_desc.to_string(),
                range: lo - pad..hi + pad,
                ticks: 6,
                format: num,
            }
        }
    };
    figure_at(path, Paper::Page, &|s, b| {
        let (x, y, lines) = (x.clone(), y.clone(), lines.clone());
        match b {
            Backend::Png(a) => line_figure(&a, s, caption, x, y, lines, &[]),
            Backend::Svg(a) => line_figure(&a, s, caption, x, y, lines, &[]),
        }
    })
}

/// The figure's lines: on a log axis each figure as its log10, a point
/// without a positive figure (or range) left out; ranked in the caller's
/// order.
fn lines(series: &[(String, Vec<ValuePoint>)], scale: Scale, what: &'static str) -> Vec<Line> {
    let n = series.len();
    let y = |v: f64| match scale {
        Scale::Linear => Some(v).filter(|v| v.is_finite()),
        Scale::Log => Some(v)
            .filter(|v| v.is_finite() && *v > 0.0)
            .map(f64::log10),
    };
    series
        .iter()
        .enumerate()
        .map(|(k, (name, points))| {
            // The points in the axis' units.
            let kept: Vec<ValuePoint> = points
                .iter()
                .filter_map(|p| {
                    let range = match p.range {
                        Some((lo, hi)) => Some((y(lo)?, y(hi)?)),
                        None => None,
                    };
                    Some(ValuePoint {
                        x: p.x,
                        y: y(p.y)?,
                        range,
                    })
                })
                .collect();
            Line {
                name: name.clone(),
                points: kept.iter().map(|p| (p.x, p.y)).collect(),
                rank: (n - k) as f64,
                // Every point marked (a dot, and its range's bar): a line
                // between a few values would hide where they were.
                ranges: Ranges {
                    what,
                    bars: kept
                        .iter()
                        .map(|p| {
                            let (lo, hi) = p.range.unwrap_or((p.y, p.y));
                            (p.x, lo, p.y, hi)
                        })
                        .collect(),
                },
                colour: Colour::ByRank,
            }
        })
        .collect()
}
