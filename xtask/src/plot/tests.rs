//! The figures' print sizes, fonts and palette, read back from the SVGs
//! they write; which events get markers and that their names never overlap.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::events::{markers, stack};
use super::style::{self, Paper, Style, MIN_PT, OKABE_ITO, OTHERS, SVG_PX_PER_IN};
use super::{labels, plot_run_with, window, PlotOptions, Plotted};
use crate::rundata::{
    App, CoreRun, Event, RequestInterval, RequestLog, RunData, Sample, Thread, WaitInterval,
};

const MS: u64 = 1_000_000;

fn event(t_ms: u64, kind: &str, detail: &str) -> Event {
    Event {
        t_ns: 100 * MS + t_ms * MS,
        kind: kind.into(),
        detail: detail.into(),
        ..Default::default()
    }
}

/// Two applications, a lottery one with `threads - 2` threads and a
/// stride one with 2, on 2 cores for 2.5 s: samples, waits, who ran
/// where, changes and console commands (one failed).
fn run(threads: u32) -> RunData {
    let start = 100 * MS;
    let app = |name: &str, policy: &str, ids: std::ops::Range<u32>| App {
        name: name.into(),
        scheduler_timeline: vec![(0, policy.into())],
        capacity: 1,
        threads: ids
            .map(|id| Thread {
                id,
                name: format!("worker-{id}"),
                tickets_timeline: vec![(0, 100 + 10 * id as u64)],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let apps = vec![
        app("lotto", "lottery", 0..threads - 2),
        app("strider", "stride", 0..2),
    ];
    let mut samples = Vec::new();
    let mut waits = Vec::new();
    for k in 1..=25u64 {
        for (a, app) in apps.iter().enumerate() {
            for t in &app.threads {
                let t_ns = start + k * 100 * MS;
                samples.push(Sample {
                    t_ns,
                    app: a as u32,
                    thread: t.id,
                    cpu_ns: k * (MS + t.id as u64 * 10_000),
                    ..Default::default()
                });
                waits.push(WaitInterval {
                    t_ns,
                    app: a as u32,
                    thread: t.id,
                    buckets: vec![(40 + t.id, 3), (60 + a as u32, 1)],
                    max_ns: 20 * MS,
                    total: 4 * k,
                });
            }
        }
    }
    let runs = (0..2500u64)
        .map(|q| CoreRun {
            core: (q % 2) as u32,
            start_ns: start + q * MS,
            end_ns: start + (q + 2) * MS,
            app: Some(((q / 2) % 2) as u32),
            thread: None,
        })
        .collect();
    RunData {
        scenario_name: "synthetic".into(),
        deterministic: true,
        trusted: Some(true),
        cpus_online: 2,
        slice_ns: 2 * MS,
        start_ns: start,
        duration_ns: 2500 * MS,
        apps,
        samples,
        waits,
        runs,
        events: vec![
            event(400, "console", "swap strider rr -> ok"),
            event(401, "swap", "stride -> rr (console)"),
            event(402, "repossession", "overrun 1038717 ns"),
            event(
                900,
                "console",
                "frobnicate -> unknown command or wrong arguments",
            ),
            event(1200, "tickets", "tickets 100 -> 900"),
            event(1201, "thread_leave", ""),
            event(1202, "thread_join", ""),
            event(1800, "console", "slices 1 -> ok (script)"),
            event(1850, "console", "window 5 -> ok"),
            event(1900, "console", "start lotto -> ok"),
        ],
        ..Default::default()
    }
}

/// Draws `data` into a fresh temporary directory.
fn draw(data: &RunData, name: &str, opts: &PlotOptions) -> Vec<PathBuf> {
    draw_plotted(data, name, opts).files
}

/// Draws `data` into a fresh temporary directory; with what `just plot`
/// says of the run.
fn draw_plotted(data: &RunData, name: &str, opts: &PlotOptions) -> Plotted {
    let dir = std::env::temp_dir().join(format!("xtask-plot-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("rundata.json"),
        serde_json::to_string(data).unwrap(),
    )
    .unwrap();
    plot_run_with(&dir, opts).unwrap()
}

/// The text of `<stem>.svg` among `files`.
fn svg_named(files: &[PathBuf], stem: &str) -> String {
    let f = files
        .iter()
        .find(|f| f.file_name().unwrap().to_string_lossy() == format!("{stem}.svg"))
        .unwrap_or_else(|| panic!("no {stem}.svg in {files:?}"));
    std::fs::read_to_string(f).unwrap()
}

fn remove(files: &[PathBuf]) {
    if let Some(dir) = files.first().and_then(|f| f.parent()) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Every `name="value"` in `svg`.
fn attributes<'a>(svg: &'a str, name: &str) -> Vec<&'a str> {
    let key = format!(" {name}=\"");
    svg.match_indices(&key)
        .map(|(i, _)| {
            let rest = &svg[i + key.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect()
}

fn hex(c: style::RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

fn check_svgs(files: &[PathBuf], paper: Paper, series_max: usize) {
    let (w_in, h_in) = paper.inches();
    let mut palette: BTreeSet<String> = OKABE_ITO.iter().map(|&c| hex(c)).collect();
    palette.insert(hex(OTHERS));
    for n in 1..=series_max {
        palette.extend((0..n).map(|i| hex(style::series(i, n))));
    }
    // Background, and the axes' and grid's ink (black, made lighter by
    // opacity, never by hue).
    let neutral = ["#FFFFFF".to_string(), "#000000".to_string()];
    let svgs: Vec<&PathBuf> = files
        .iter()
        .filter(|f| f.extension().unwrap() == "svg")
        .collect();
    assert!(svgs.len() >= 5, "{files:?}");
    for f in svgs {
        let svg = std::fs::read_to_string(f).unwrap();
        assert_eq!(attributes(&svg, "width")[0], format!("{w_in}in"), "{f:?}");
        assert_eq!(attributes(&svg, "height")[0], format!("{h_in}in"), "{f:?}");
        assert_eq!(
            attributes(&svg, "viewBox")[0],
            {
                let (w, h) = Style::svg(paper, false).pixels();
                assert!((w as f64 - w_in * SVG_PX_PER_IN).abs() <= 0.5);
                assert!((h as f64 - h_in * SVG_PX_PER_IN).abs() <= 0.5);
                format!("0 0 {w} {h}")
            },
            "{f:?}"
        );
        // SVG pixels are 1/96 in; a point is 1/72 in.
        let sizes = attributes(&svg, "font-size");
        assert!(!sizes.is_empty(), "{f:?}: no text");
        for s in sizes {
            let pt = s.parse::<f64>().unwrap() * 72.0 / SVG_PX_PER_IN;
            assert!(pt >= MIN_PT - 1e-9, "{f:?}: a {pt} pt font");
        }
        let mut coloured = 0;
        for c in attributes(&svg, "stroke")
            .into_iter()
            .chain(attributes(&svg, "fill"))
            .filter(|c| *c != "none")
        {
            assert!(
                palette.contains(c) || neutral.iter().any(|n| n == c),
                "{f:?}: {c} is not in the palette"
            );
            coloured += usize::from(palette.contains(c) && !neutral.iter().any(|n| n == c));
        }
        assert!(coloured > 0, "{f:?}: no series drawn");
    }
}

#[test]
fn column_figures_are_3_5_inches_wide_with_8_point_fonts_in_the_palette() {
    let files = draw(
        &run(6),
        "column",
        &PlotOptions {
            paper: Paper::Column,
            title: false,
            ..Default::default()
        },
    );
    check_svgs(&files, Paper::Column, style::NAMED_MAX);
    let pngs = files
        .iter()
        .filter(|f| f.extension().unwrap() == "png")
        .count();
    assert_eq!(pngs, 5, "{files:?}");
    remove(&files);
}

#[test]
fn page_figures_of_a_hundred_threads_name_the_top_few_and_fold_the_rest() {
    let files = draw(&run(102), "page", &PlotOptions::default());
    check_svgs(&files, Paper::Page, style::NAMED_MAX);
    let lag = files.iter().find(|f| f.ends_with("lag.svg")).unwrap();
    let svg = std::fs::read_to_string(lag).unwrap();
    assert!(
        svg.contains("95 others"),
        "the legend folds 95 of 102 threads"
    );
    let named = svg.matches("worker-").count();
    assert!(
        named <= style::NAMED_MAX,
        "{named} threads named in the legend"
    );
    remove(&files);
}

#[test]
fn png_is_300_dpi_and_svg_96_px_per_inch() {
    assert_eq!(Style::png(Paper::Page, true).pixels(), (2100, 900));
    assert_eq!(Style::svg(Paper::Column, true).pixels(), (336, 250));
    assert!((Style::svg(Paper::Page, true).pt(72.0) - 96.0).abs() < 1e-9);
}

#[test]
fn palette_is_okabe_ito_up_to_seven_series_and_distinct_viridis_beyond() {
    for n in 1..=7 {
        let colours: BTreeSet<String> = (0..n).map(|i| hex(style::series(i, n))).collect();
        assert_eq!(colours.len(), n);
        assert!(colours
            .iter()
            .all(|c| OKABE_ITO[1..].iter().any(|&o| hex(o) == *c)));
    }
    let many: BTreeSet<String> = (0..20).map(|i| hex(style::series(i, 20))).collect();
    assert_eq!(many.len(), 20, "viridis gives 20 series 20 colours");
    assert!(!many.iter().any(|c| OKABE_ITO.iter().any(|&o| hex(o) == *c)));
}

#[test]
fn a_failed_console_command_draws_nothing_and_a_change_is_marked_once() {
    let data = run(4);
    let labels: Vec<String> = markers(&data.events).into_iter().map(|m| m.label).collect();
    // The swap is marked by its own event, named by the policy it swapped
    // to, not again by its command; the repossession and the failed
    // frobnicate draw nothing; nor do `slices 1` and `window 5`, which
    // only show something; a `start` with no event of its own is marked
    // by its command.
    assert_eq!(
        labels,
        [
            "swap to rr",
            "tickets",
            "thread leave",
            "thread join",
            "start"
        ]
    );
}

#[test]
fn the_progress_and_lag_figures_mark_the_run_s_changes() {
    let files = draw(&run(4), "changes", &PlotOptions::default());
    for stem in ["progress", "lag"] {
        let svg = svg_named(&files, stem);
        for label in ["swap to rr", "tickets", "start"] {
            assert!(svg.contains(&format!(">\n{label}\n<")), "{stem}: {label}");
        }
    }
    remove(&files);
}

#[test]
fn event_names_stacked_in_rows_never_overlap() {
    // Clusters of names closer than their widths, and lone ones.
    let spans: Vec<(f64, f64)> = (0..40)
        .map(|i| {
            (
                (i / 4 * 100 + i % 4 * 7) as f64,
                30.0 + (i % 3) as f64 * 10.0,
            )
        })
        .collect();
    let rows = stack(&spans, 3, 2.0);
    assert!(rows.iter().filter(|r| r.is_some()).count() >= 10);
    for r in 0..3 {
        let mut placed: Vec<(f64, f64)> = spans
            .iter()
            .zip(&rows)
            .filter(|(_, row)| **row == Some(r))
            .map(|(s, _)| *s)
            .collect();
        placed.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in placed.windows(2) {
            assert!(w[1].0 >= w[0].0 + w[0].1 + 2.0, "row {r}: {w:?} overlap");
        }
    }
}

#[test]
fn slice_map_window_defaults_to_fifty_quanta_and_refuses_an_empty_one() {
    let data = run(4);
    let (from, to) = window(&data, &PlotOptions::default()).unwrap();
    assert_eq!(from, 0.0);
    assert!((to - 0.1).abs() < 1e-9, "50 quanta of 2 ms: {to}");
    let opts = |from, to| PlotOptions {
        from_s: from,
        to_s: to,
        ..Default::default()
    };
    assert!(window(&data, &opts(Some(1.0), Some(1.2))).is_ok());
    assert!(
        window(&data, &opts(Some(3.0), None)).is_err(),
        "after the run's end"
    );
    assert!(
        window(&data, &opts(Some(1.0), Some(0.5))).is_err(),
        "to before from"
    );
}

/// The `<line>` elements of `svg` drawn in colour `c`, as `(x1, y1, x2, y2)`.
fn lines_in(svg: &str, c: &str) -> Vec<(f64, f64, f64, f64)> {
    svg.split("<line")
        .skip(1)
        .map(|l| &l[..l.find("/>").unwrap()])
        .filter(|l| attributes(l, "stroke").first() == Some(&c))
        .map(|l| {
            let at = |n: &str| attributes(l, n)[0].parse::<f64>().unwrap();
            (at("x1"), at("y1"), at("x2"), at("y2"))
        })
        .collect()
}

#[test]
fn the_lottery_sweep_draws_each_mean_with_its_interval_as_an_error_bar() {
    let dir = std::env::temp_dir().join(format!("xtask-plot-{}-sweep", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Half-widths 0.1, 0.4, 0.2; the last ratio had one trial (no bar).
    let points = [
        (1.0, 1.02, Some(0.1)),
        (4.0, 3.9, Some(0.4)),
        (7.0, 7.1, Some(0.2)),
        (10.0, 10.3, None),
    ];
    super::ratio_sweep(&dir.join("sweep.png"), "lottery sweep", &points).unwrap();
    let svg = std::fs::read_to_string(dir.join("sweep.svg")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let (w_in, _) = Paper::Column.inches();
    assert_eq!(attributes(&svg, "width")[0], format!("{w_in}in"));
    for s in attributes(&svg, "font-size") {
        assert!(s.parse::<f64>().unwrap() * 72.0 / SVG_PX_PER_IN >= MIN_PT - 1e-9);
    }
    let c = hex(style::series(0, 1));
    let lines = lines_in(&svg, &c);
    let vertical: Vec<f64> = lines
        .iter()
        .filter(|l| l.0 == l.2 && l.1 != l.3)
        .map(|l| (l.3 - l.1).abs())
        .collect();
    // One bar per interval, each as long as its interval on one scale
    // (pixels per unit of ratio), with a cap at either end.
    assert_eq!(vertical.len(), 3, "{lines:?}");
    let scale = vertical[0] / 0.2;
    for (len, half) in vertical.iter().zip([0.1, 0.4, 0.2]) {
        assert!((len - 2.0 * half * scale).abs() <= 2.0, "{vertical:?}");
    }
    assert_eq!(lines.iter().filter(|l| l.1 == l.3).count(), 6, "{lines:?}");
}

#[test]
fn the_latency_figure_draws_each_point_s_range_on_its_log_axis_and_drops_empty_points() {
    use super::{load_lines, LoadPoint};
    let point = |x: f64, lo: f64, mid: f64, hi: f64| LoadPoint {
        used_percent: x,
        median_ms: mid,
        lowest_ms: lo,
        highest_ms: hi,
    };
    let series = vec![(
        "stride".to_string(),
        vec![point(10.0, 1.0, 10.0, 100.0), point(30.0, 0.0, 2.0, 4.0)],
    )];
    let (lines, lo, hi) = load_lines(&series);
    // The point with no positive lowest latency is not drawn.
    assert_eq!(lines[0].points, vec![(10.0, 1.0)]);
    assert_eq!(lines[0].ranges.bars, vec![(10.0, 0.0, 1.0, 2.0)]);
    // The axis spans the bars, not only the medians.
    assert_eq!((lo, hi), (1.0, 100.0));
}

/// The colour of the legend's mark for `name` in `svg`: the last stroke
/// before its label.
fn legend_colour<'a>(svg: &'a str, name: &str) -> &'a str {
    let label = svg.find(&format!(">\n{name}\n<")).expect("a legend label");
    attributes(&svg[..label], "stroke").last().copied().unwrap()
}

#[test]
fn a_line_keeps_its_colour_in_every_figure_whatever_its_rank_there() {
    use super::frame::{Colour, Line, Ranges};
    let svg_of = |ranks: [f64; 3]| {
        let lines = ["alpha", "beta", "gamma"]
            .iter()
            .zip(ranks)
            .enumerate()
            .map(|(k, (name, rank))| Line {
                name: name.to_string(),
                points: vec![(0.0, k as f64), (1.0, k as f64)],
                rank,
                ranges: Ranges::NONE,
                colour: Colour::ByRank,
            })
            .collect();
        line_svg(lines)
    };
    // In one figure alpha ranks first, in the other last (a thread with
    // the most CPU need not have the longest waits).
    let (one, other) = (svg_of([3.0, 2.0, 1.0]), svg_of([1.0, 2.0, 3.0]));
    for name in ["alpha", "beta", "gamma"] {
        assert_eq!(
            legend_colour(&one, name),
            legend_colour(&other, name),
            "{name}"
        );
    }
    assert_ne!(legend_colour(&one, "alpha"), legend_colour(&one, "gamma"));
}

#[test]
fn a_run_s_figures_name_the_same_threads_in_the_same_colours() {
    // Twelve threads: more than the figures name. Progress ranks them by
    // CPU, lag by |lag| and waits by p99, which disagree.
    let files = draw(&run(12), "colours", &PlotOptions::default());
    let svg = |stem: &str| svg_named(&files, stem);
    let figures = [svg("progress"), svg("lag"), svg("waits")];
    let named: Vec<String> = labels(&run(12))
        .into_iter()
        .map(|(_, _, name)| name)
        .filter(|name| figures[0].contains(&format!(">\n{name}\n<")))
        .collect();
    assert_eq!(named.len(), style::NAMED_MAX, "{named:?}");
    for name in &named {
        let colours: Vec<&str> = figures.iter().map(|f| legend_colour(f, name)).collect();
        assert!(
            colours.iter().all(|c| *c == colours[0]),
            "{name}: {colours:?}"
        );
    }
    remove(&files);
}

#[test]
fn a_run_s_thread_it_does_not_name_stays_unnamed_when_no_named_one_is_drawn() {
    use super::frame::{Colour, Line, Ranges};
    // A waits figure in which none of the run's named threads waited:
    // its lines are the run's others, not the figure's own top few.
    let others = |names: &[&str]| -> Vec<Line> {
        names
            .iter()
            .map(|name| Line {
                name: name.to_string(),
                points: vec![(0.0, 1.0), (1.0, 2.0)],
                rank: 1.0,
                ranges: Ranges::NONE,
                colour: Colour::Other,
            })
            .collect()
    };
    let svg = line_svg(others(&["delta", "epsilon"]));
    assert!(svg.contains(">\n2 others\n<"), "{svg}");
    assert!(!svg.contains(">\ndelta\n<"));
    let svg = line_svg(others(&["delta"]));
    assert!(svg.contains(">\n1 other\n<"), "{svg}");
}

#[test]
fn without_samples_each_figure_ranks_its_own_threads() {
    use super::frame::Colour;
    let mut data = run(12);
    data.samples.clear();
    let colour = super::thread_colours(&data);
    assert_eq!(colour(0, 3), Colour::ByRank);
    let colour = super::thread_colours(&run(12));
    assert!(matches!(colour(0, 9), Colour::Slot(_, 7)));
    assert_eq!(colour(0, 0), Colour::Other);
}

/// One line figure of `lines` on axes 0 to 3, as SVG.
fn line_svg(lines: Vec<super::frame::Line>) -> String {
    use super::frame::{line_figure, Axis};
    use plotters::prelude::*;
    let mut svg = String::new();
    {
        let style = Style::svg(Paper::Column, false);
        let area = SVGBackend::with_string(&mut svg, style.pixels()).into_drawing_area();
        let axis = |desc: &str| Axis {
            desc: desc.into(),
            range: 0.0..3.0,
            ticks: 2,
            format: |v| format!("{v}"),
        };
        line_figure(&area, &style, "", axis("x"), axis("y"), lines, &[]).unwrap();
    }
    svg
}

#[test]
fn a_serving_run_gets_its_request_figures_and_says_which_stream_fell_behind() {
    use abi::waits::bucket_of;
    let stream = |app: u32, waiting: u64| RequestLog {
        app,
        t0_ns: 100 * MS,
        rate_per_s: 1000,
        mean_service_ns: 200_000.0,
        iterations_per_ms: 1,
        intervals: (1..=10u64)
            .map(|k| RequestInterval {
                t_ns: 100 * MS + k * 100 * MS,
                arrived: 100 * k,
                completed: 100 * k - waiting.min(k * 10),
                max_ns: 9 * MS,
                buckets: vec![(bucket_of(MS) as u32, 90), (bucket_of(9 * MS) as u32, 10)],
            })
            .collect(),
    };
    let mut data = run(4);
    // `strider` ends with 100 of its 1,000 arrivals waiting: 10%.
    data.requests = vec![stream(0, 0), stream(1, 100)];
    // A long scenario name, and a column's width too: the † line and
    // whether the run was deterministic survive the cut of the first.
    data.scenario_name = "a-scenario-named-at-length-by-a-sweep-app_0_requests-4000-seed1".into();
    for paper in [Paper::Page, Paper::Column] {
        let opts = PlotOptions {
            paper,
            ..PlotOptions::default()
        };
        let files = draw(&data, "requests", &opts);
        let svg = |stem: &str| svg_named(&files, stem);
        for stem in ["requests", "backlog"] {
            let svg = svg(stem);
            assert!(svg.contains(">\nlotto\n<"), "{stem}: {svg}");
            assert!(
                svg.contains(">\nstrider †\n<")
                    && svg.contains(">\n† over 1% of arrivals left waiting\n<")
                    && svg.contains(">\n2 cores, det; "),
                "{stem}: {svg}"
            );
        }
        remove(&files);
    }
    // A run without a stream has neither.
    let files = draw(&run(4), "no-requests", &PlotOptions::default());
    assert!(files
        .iter()
        .all(|f| !f.to_string_lossy().contains("requests.")
            && !f.to_string_lossy().contains("backlog.")));
    remove(&files);
}

#[test]
fn a_run_whose_data_predates_its_verdict_takes_it_from_its_summary() {
    // rundata.json without `trusted`, summary.json saying the run was not
    // trusted: every figure says so, and so does what `just plot` prints
    // for a caption. Without a summary either, the trust is unknown.
    let mut data = run(2);
    data.trusted = None;
    let dir = std::env::temp_dir().join(format!("xtask-plot-{}-verdict", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut json: serde_json::Value = serde_json::to_value(&data).unwrap();
    json.as_object_mut().unwrap().remove("trusted");
    std::fs::write(dir.join("rundata.json"), json.to_string()).unwrap();
    assert_eq!(
        super::about(&super::load(&dir).unwrap()),
        "synthetic: 2 cores, det, trust unknown (no verdict recorded); lotto under lottery; strider under stride"
    );
    std::fs::write(
        dir.join("summary.json"),
        r#"{"trust": {"trusted": false, "why_not": ["a window charged 1.4x"]}}"#,
    )
    .unwrap();
    let files = plot_run_with(&dir, &PlotOptions::default()).unwrap().files;
    for stem in ["progress", "shares", "lag", "slicemap"] {
        let svg = svg_named(&files, stem);
        assert!(
            svg.contains(">\n2 cores, det, NOT trusted; "),
            "{stem}: {svg}"
        );
    }
    assert_eq!(
        super::about(&super::load(&dir).unwrap()),
        "synthetic: 2 cores, det, NOT trusted (summary.json's trust says why); lotto under lottery; strider under stride"
    );
    // And how it ended, when not well.
    std::fs::write(
        dir.join("summary.json"),
        r#"{"exit": "timeout", "trust": {"trusted": true}}"#,
    )
    .unwrap();
    assert_eq!(
        super::about(&super::load(&dir).unwrap()),
        "synthetic: 2 cores, det, trusted, ended: timeout; lotto under lottery; strider under stride"
    );
    remove(&files);
}

#[test]
fn only_a_sound_run_s_figures_drop_their_titles() {
    let no_title = PlotOptions {
        title: false,
        ..PlotOptions::default()
    };
    let has_title =
        |files: &[PathBuf]| svg_named(files, "lag").contains("lag: ideal minus received");
    // Trusted and ended well: as asked, no title; what `just plot` says
    // of the run (its caption's facts, the titles dropped) from the data
    // the figures were drawn from.
    let p = draw_plotted(&run(2), "sound", &no_title);
    assert!(!has_title(&p.files) && !p.titles_kept);
    assert_eq!(
        p.about,
        "synthetic: 2 cores, det, trusted; lotto under lottery; strider under stride"
    );
    remove(&p.files);
    // Not trusted, or cut short: the title stays, saying so.
    let mut untrusted = run(2);
    untrusted.trusted = Some(false);
    let p = draw_plotted(&untrusted, "untrusted", &no_title);
    assert!(has_title(&p.files) && svg_named(&p.files, "lag").contains("NOT trusted"));
    assert!(
        p.titles_kept
            && p.about
                .contains("NOT trusted (summary.json's trust says why)")
    );
    remove(&p.files);
    let mut cut = run(2);
    cut.ended = Some("sampling_stopped".into());
    let p = draw_plotted(&cut, "cut", &no_title);
    assert!(has_title(&p.files) && svg_named(&p.files, "lag").contains("ended: sampling stopped"));
    assert!(p.titles_kept && p.about.contains("trusted, ended: sampling stopped"));
    remove(&p.files);
}

#[test]
fn a_thread_capped_at_one_core_gets_no_lottery_envelope() {
    use super::envelope;
    // Four cores: a thread owed 25% is capped; one owed 10% is drawn for.
    assert_eq!(envelope(true, 0.25, 4, 1000.0), None);
    assert_eq!(envelope(true, 0.2499, 4, 1000.0), None);
    let drawn = envelope(true, 0.10, 4, 1000.0).unwrap();
    assert!((drawn - 1.96 * (0.1f64 * 0.9 / 1000.0).sqrt()).abs() < 1e-12);
    // Just under a core's share: drawn for.
    assert!(envelope(true, 0.24, 4, 1000.0).is_some());
    // One core: nobody is capped, a lone thread neither; not lottery: no
    // envelope at all.
    assert!(envelope(true, 0.9, 1, 1000.0).is_some());
    assert!(envelope(true, 1.0, 1, 1000.0).is_some());
    assert_eq!(envelope(false, 0.10, 4, 1000.0), None);
}
