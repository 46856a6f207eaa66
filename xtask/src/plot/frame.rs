//! What every figure shares: an optional title, the data on the left, the
//! legend in its own column to the right (never over the data), and line
//! figures whose many series fold into the top few plus "others".

use std::ops::Range;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::events::stack;
use super::style::{self, Style};

pub fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

pub type Area<DB> = DrawingArea<DB, Shift>;

/// How a legend entry shows its series.
#[derive(Clone, Copy, Debug)]
pub enum Mark {
    Line(RGBColor),
    Block(RGBColor),
    /// A vertical bar with whiskers (an error bar or envelope).
    Whisker(RGBColor),
}

/// Clears `area`, draws the title when the style has one (its first line
/// as the heading, any further line under it in the axis labels' size),
/// and splits the rest into the data's area and the legend's column.
pub fn frame<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    style: &Style,
    title: &str,
) -> Result<(Area<DB>, Area<DB>), String> {
    area.fill(&WHITE).map_err(err)?;
    let body = if style.title {
        // A title wider than a column figure is cut rather than clipped,
        // each line on its own.
        let room = area.dim_in_pixel().0 as f64 - style.pt(8.0);
        let mut body = area.margin(style.px(3.0), 0, 0, 0);
        for (k, line) in title.lines().enumerate() {
            let font = if k == 0 {
                style.heading()
            } else {
                style.label()
            };
            let line = fit(area, line, &font, room);
            body = body.titled(&line, font).map_err(err)?;
        }
        body
    } else {
        area.clone()
    };
    let width = body.dim_in_pixel().0;
    Ok(body.split_horizontally(width.saturating_sub(style.legend_width())))
}

/// The legend, top down in its column; names too long for it are cut with
/// an ellipsis, entries past its height summed up in a last line.
pub fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    style: &Style,
    entries: &[(String, Mark)],
) -> Result<(), String> {
    let font = style.small();
    let row = style.pt(style::MIN_PT * 1.35);
    let mark = style.pt(12.0);
    let pad = style.pt(4.0);
    let (w, h) = area.dim_in_pixel();
    let text_w = w as f64 - mark - 2.0 * pad;
    let fits = ((h as f64 - row) / row).floor().max(1.0) as usize;
    let shown = if entries.len() > fits {
        fits - 1
    } else {
        entries.len()
    };
    let text = TextStyle::from(font.clone()).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (name, m)) in entries.iter().take(shown).enumerate() {
        let y = (row * (i as f64 + 1.0)) as i32;
        let x0 = pad as i32;
        let x1 = (pad + mark * 0.8) as i32;
        let lw = style.px(1.5);
        match *m {
            Mark::Line(c) => area
                .draw(&PathElement::new([(x0, y), (x1, y)], c.stroke_width(lw)))
                .map_err(err)?,
            Mark::Block(c) => area
                .draw(&Rectangle::new(
                    [(x0, y - (row / 3.0) as i32), (x1, y + (row / 3.0) as i32)],
                    c.filled(),
                ))
                .map_err(err)?,
            Mark::Whisker(c) => {
                let mid = (x0 + x1) / 2;
                let r = (row / 3.0) as i32;
                area.draw(&PathElement::new(
                    [(mid, y - r), (mid, y + r)],
                    c.stroke_width(lw),
                ))
                .map_err(err)?;
                for yy in [y - r, y + r] {
                    area.draw(&PathElement::new(
                        [(mid - r / 2, yy), (mid + r / 2, yy)],
                        c.stroke_width(lw),
                    ))
                    .map_err(err)?;
                }
            }
        }
        let name = fit(area, name, &font, text_w);
        area.draw(&Text::new(name, ((pad + mark) as i32, y), text.clone()))
            .map_err(err)?;
    }
    if shown < entries.len() {
        let y = (row * (shown as f64 + 1.0)) as i32;
        let more = format!("+{} more", entries.len() - shown);
        area.draw(&Text::new(more, (pad as i32, y), text))
            .map_err(err)?;
    }
    Ok(())
}

/// `name` cut (with "…") to `width` pixels in `font`.
fn fit<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    name: &str,
    font: &FontDesc,
    width: f64,
) -> String {
    let wide = |s: &str| {
        area.estimate_text_size(s, &TextStyle::from(font.clone()))
            .map_or(0, |d| d.0) as f64
    };
    if wide(name) <= width {
        return name.to_string();
    }
    let mut chars: Vec<char> = name.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let s: String = chars.iter().collect::<String>() + "…";
        if wide(&s) <= width {
            return s;
        }
    }
    String::new()
}

/// One axis of a line figure.
#[derive(Clone)]
pub struct Axis {
    pub desc: String,
    pub range: Range<f64>,
    /// At most this many ticks.
    pub ticks: usize,
    pub format: fn(f64) -> String,
}

/// A time axis in whole seconds: it ends on the whole second at or after
/// `t_max`, and plotters' 1-2-5 steps over an integer range with fewer
/// ticks than seconds land on whole seconds.
pub fn seconds_axis(t_max: f64) -> Axis {
    let end = t_max.ceil().max(1.0);
    Axis {
        desc: "time since start (s)".to_string(),
        range: 0.0..end,
        ticks: (end as usize + 1).min(8),
        format: |x| format!("{x:.0}"),
    }
}

/// A logarithmic axis drawn as a linear one over log10 of the values,
/// spanning whole decades so its ticks are powers of ten.
pub fn decades_axis(desc: String, lo: f64, hi: f64) -> Axis {
    let (a, b) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    Axis {
        desc,
        range: a..b,
        ticks: (b - a) as usize + 1,
        format: |x| {
            let v = 10f64.powf(x);
            if v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v}")
            }
        },
    }
}

/// One series: its name, its points, and the number that ranks it for a
/// legend with room for only some (largest first).
#[derive(Clone)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub rank: f64,
    /// Bars in the line's colour (none for most lines).
    pub ranges: Ranges,
    /// How it is coloured and whether it is named.
    pub colour: Colour,
}

/// A line's bars, each `(x, lowest, middle, highest)`: the range a point
/// of the line stands for, a dot at its middle; `what` names the ranges in
/// the legend ("range of trials", "95% interval").
#[derive(Clone, Debug, PartialEq)]
pub struct Ranges {
    pub what: &'static str,
    pub bars: Vec<(f64, f64, f64, f64)>,
}

impl Ranges {
    /// No bars.
    pub const NONE: Ranges = Ranges {
        what: "",
        bars: Vec::new(),
    };
}

/// A line's colour: the figure's own choice, or the run's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colour {
    /// The figure names its top lines by rank and colours them in the
    /// caller's order (a figure whose lines are not a run's threads).
    ByRank,
    /// Named, in colour `slot` of `of`, in every figure of the run.
    Slot(usize, usize),
    /// One of the run's threads it does not name: among "others".
    Other,
}

/// A vertical line at `x`, named at the top of the data.
pub struct EventLine {
    pub x: f64,
    pub label: String,
}

/// Lines over two axes: when there are more than the palette names, the
/// top ones by rank are coloured and named and the rest are drawn thin and
/// grey beneath them as one "others" entry. Events are dashed-grey lines,
/// their names stacked in up to three rows so none overprints another.
pub fn line_figure<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    style: &Style,
    title: &str,
    x: Axis,
    y: Axis,
    lines: Vec<Line>,
    events: &[EventLine],
) -> Result<(), String> {
    let (data, key) = frame(area, style, title)?;
    let mut chart = ChartBuilder::on(&data)
        .margin(style.px(4.0))
        .margin_top(style.px(if events.is_empty() {
            4.0
        } else {
            4.0 + 3.0 * 10.0
        }))
        .x_label_area_size(style.px(24.0))
        .y_label_area_size(style.px(34.0))
        .build_cartesian_2d(x.range.clone(), y.range.clone())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(x.ticks)
        .y_labels(y.ticks)
        .x_label_formatter(&|v| (x.format)(*v))
        .y_label_formatter(&|v| (y.format)(*v))
        .x_desc(x.desc.as_str())
        .y_desc(y.desc.as_str())
        .label_style(style.small())
        .axis_desc_style(style.label())
        .light_line_style(WHITE)
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(err)?;
    // The lines named, each with its colour (slot of so many), and the
    // others: a run's threads by the colours chosen for the run, so a
    // thread has one colour and the same threads are named in each of its
    // figures (by each figure's rank, the named set and every colour
    // changed from one figure to the next); other figures' lines by rank,
    // the top few named and coloured in the caller's order.
    let (named, others): (Vec<(Line, usize, usize)>, Vec<Line>) =
        if lines.iter().any(|l| l.colour != Colour::ByRank) {
            let (mut named, mut others) = (Vec::new(), Vec::new());
            for l in lines {
                match l.colour {
                    Colour::Slot(slot, of) => named.push((l, slot, of)),
                    Colour::Other | Colour::ByRank => others.push(l),
                }
            }
            named.sort_by_key(|n| n.1);
            (named, others)
        } else {
            let mut lines: Vec<(usize, Line)> = lines.into_iter().enumerate().collect();
            lines.sort_by(|(_, a), (_, b)| b.rank.total_cmp(&a.rank));
            let n = lines.len().min(style::NAMED_MAX);
            let others = lines.split_off(n).into_iter().map(|(_, l)| l).collect();
            lines.sort_by_key(|(k, _)| *k);
            let named = lines
                .into_iter()
                .enumerate()
                .map(|(slot, (_, l))| (l, slot, n))
                .collect();
            (named, others)
        };
    let mut entries = Vec::new();
    let bars = |l: &Line, c: ShapeStyle| {
        l.ranges
            .bars
            .iter()
            .map(move |&(x, lo, mid, hi)| ErrorBar::new_vertical(x, lo, mid, hi, c, style.px(5.0)))
            .collect::<Vec<_>>()
    };
    for l in &others {
        let c = style::OTHERS.stroke_width(style.px(0.5));
        chart
            .draw_series(LineSeries::new(l.points.iter().copied(), c))
            .map_err(err)?;
        chart.draw_series(bars(l, c)).map_err(err)?;
    }
    for (l, slot, of) in &named {
        let c = style::series(*slot, *of);
        chart
            .draw_series(LineSeries::new(
                l.points.iter().copied(),
                c.stroke_width(style.line()),
            ))
            .map_err(err)?;
        chart
            .draw_series(bars(l, c.stroke_width(style.px(1.0))))
            .map_err(err)?;
        entries.push((l.name.clone(), Mark::Line(c)));
    }
    if !others.is_empty() {
        entries.push((
            match others.len() {
                1 => "1 other".to_string(),
                n => format!("{n} others"),
            },
            Mark::Line(style::OTHERS),
        ));
    }
    // A bar that is only a dot (one run) is no range to name.
    let mut kinds: Vec<&str> = Vec::new();
    for l in named.iter().map(|n| &n.0).chain(&others) {
        if l.ranges.bars.iter().any(|b| b.1 < b.3) && !kinds.contains(&l.ranges.what) {
            kinds.push(l.ranges.what);
        }
    }
    for what in kinds {
        entries.push((what.to_string(), Mark::Whisker(style::INK)));
    }
    draw_events(&mut chart, &data, style, &y.range, events)?;
    legend(&key, style, &entries)?;
    area.present().map_err(err)
}

fn draw_events<DB: DrawingBackend>(
    chart: &mut ChartContext<
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    root: &DrawingArea<DB, Shift>,
    style: &Style,
    y: &Range<f64>,
    events: &[EventLine],
) -> Result<(), String> {
    let font = style.small();
    let mut sorted: Vec<&EventLine> = events.iter().collect();
    sorted.sort_by(|a, b| a.x.total_cmp(&b.x));
    let spans: Vec<(f64, f64)> = sorted
        .iter()
        .map(|e| {
            let left = chart.backend_coord(&(e.x, y.end)).0 as f64;
            let w = root
                .estimate_text_size(&e.label, &TextStyle::from(font.clone()))
                .map_or(0, |d| d.0) as f64;
            (left - w / 2.0, w)
        })
        .collect();
    let rows = stack(&spans, 3, style.pt(2.0));
    let row_h = style.pt(10.0) as i32;
    for (e, row) in sorted.iter().zip(rows) {
        chart
            .draw_series(std::iter::once(PathElement::new(
                [(e.x, y.start), (e.x, y.end)],
                style::INK.mix(0.45).stroke_width(style.px(0.5)),
            )))
            .map_err(err)?;
        if let Some(r) = row {
            let text = TextStyle::from(font.clone()).pos(Pos::new(HPos::Center, VPos::Bottom));
            let dy = -(style.pt(2.0) as i32) - row_h * r as i32;
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((e.x, y.end)) + Text::new(e.label.clone(), (0, dy), text),
                ))
                .map_err(err)?;
        }
    }
    Ok(())
}
