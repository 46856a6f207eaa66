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
    let (x, y) = axes(series, scale, key, y_desc);
    figure_at(path, Paper::Page, &|s, b| {
        let (x, y, lines) = (x.clone(), y.clone(), lines.clone());
        match b {
            Backend::Png(a) => line_figure(&a, s, caption, x, y, lines, &[]),
            Backend::Svg(a) => line_figure(&a, s, caption, x, y, lines, &[]),
        }
    })
}

/// The axes: x over the values, padded a twentieth of their span each
/// side (or a tenth of the value, for one); y over every figure and range
/// (a range clipped would hide how far a trial went), through zero when
/// linear, in decades when logarithmic.
fn axes(
    series: &[(String, Vec<ValuePoint>)],
    scale: Scale,
    key: &str,
    y_desc: &str,
) -> (Axis, Axis) {
    let points = || series.iter().flat_map(|(_, p)| p.iter());
    let xs = || points().map(|p| p.x).filter(|x| x.is_finite());
    let (x_lo, x_hi) = (xs().fold(f64::MAX, f64::min), xs().fold(f64::MIN, f64::max));
    let (x_lo, x_hi) = if x_lo > x_hi {
        (0.0, 1.0)
    } else {
        (x_lo, x_hi)
    };
    let pad = if x_hi > x_lo {
        (x_hi - x_lo) * 0.05
    } else {
        (x_lo.abs() * 0.1).max(0.5)
    };
    let x = Axis {
        desc: key.to_string(),
        range: x_lo - pad..x_hi + pad,
        ticks: 6,
        format: num,
    };
    let ys = points()
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
    (x, y)
}

/// The figure's lines, each in the order of its values (a sweep's values
/// come in the order asked, `4000,1000,2000` say): on a log axis each
/// figure as its log10, a point
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
            // The points in the axis' units, by value.
            let mut kept: Vec<ValuePoint> = points
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
            kept.sort_by(|a, b| a.x.total_cmp(&b.x));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn point(x: f64, y: f64, range: Option<(f64, f64)>) -> ValuePoint {
        ValuePoint { x, y, range }
    }

    #[test]
    fn lines_run_by_value_in_the_axis_units_each_point_marked() {
        // Asked as 4000,1000,2000; the log axis takes log10 of ms.
        let series = vec![(
            "srv".to_string(),
            vec![
                point(4000.0, 100.0, Some((10.0, 1000.0))),
                point(1000.0, 1.0, None),
                point(2000.0, 10.0, None),
            ],
        )];
        let drawn = lines(&series, Scale::Log, "range of trials");
        assert_eq!(
            drawn[0].points,
            vec![(1000.0, 0.0), (2000.0, 1.0), (4000.0, 2.0)]
        );
        assert_eq!(
            drawn[0].ranges.bars,
            vec![
                (1000.0, 0.0, 0.0, 0.0),
                (2000.0, 1.0, 1.0, 1.0),
                (4000.0, 1.0, 2.0, 3.0)
            ]
        );
        // Not positive: no place on a log axis.
        let zero = vec![("srv".to_string(), vec![point(1.0, 0.0, None)])];
        assert!(lines(&zero, Scale::Log, "")
            .first()
            .unwrap()
            .points
            .is_empty());
        let linear = lines(&series, Scale::Linear, "");
        assert_eq!(linear[0].points[2], (4000.0, 100.0));
    }

    #[test]
    fn the_axes_hold_every_range_and_pad_the_values_by_their_span() {
        let series = vec![(
            "a/t".to_string(),
            vec![point(0.1, 1.0, Some((-3.0, 5.0))), point(0.3, -0.5, None)],
        )];
        let (x, y) = axes(&series, Scale::Linear, "frac", "error");
        assert!((x.range.start - 0.09).abs() < 1e-9 && (x.range.end - 0.31).abs() < 1e-9);
        assert!(y.range.start < -3.0 && y.range.end > 5.0, "{:?}", y.range);
        // One value: padded by a tenth of it, or half a unit near zero.
        let one = vec![("a".to_string(), vec![point(1000.0, 2.0, None)])];
        assert_eq!(axes(&one, Scale::Linear, "k", "y").0.range, 900.0..1100.0);
        let (_, y) = axes(&series, Scale::Log, "frac", "ms");
        // 1 to 5 ms (the log axis has no room for the negative).
        assert_eq!(y.range, 0.0..1.0);
    }
}
