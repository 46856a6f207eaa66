//! How the figures look in a paper: their print size (one or two columns),
//! fonts in points at that size, and a colour-blind-safe palette
//! (Okabe–Ito for up to eight series, viridis beyond).

use plotters::style::colors::colormaps::ViridisRGB;
pub use plotters::style::RGBColor;
use plotters::style::{FontDesc, IntoFont};

/// What plotters divides a font's size by to get its pixels per em.
const PLOTTERS_EM: f64 = 1.24;

/// Okabe & Ito's eight colours, distinguishable with every common colour
/// vision deficiency ("Color Universal Design", 2008), black first.
pub const OKABE_ITO: [RGBColor; 8] = [
    RGBColor(0x00, 0x00, 0x00),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0xCC, 0x79, 0xA7),
    // Yellow last: the palette's faintest on white.
    RGBColor(0xF0, 0xE4, 0x42),
];

/// The series a legend folds into "others" (a 100-thread run): light grey,
/// behind the named ones.
pub const OTHERS: RGBColor = RGBColor(0xBB, 0xBB, 0xBB);

/// Reference marks that are not a series (the ideal, event lines).
pub const INK: RGBColor = RGBColor(0x00, 0x00, 0x00);

/// Series a line figure names, at most: the rest become "others".
pub const NAMED_MAX: usize = 7;

/// The colour of series `i` of `n`: Okabe–Ito without black (kept for
/// ideal lines and events) for up to seven, viridis spread evenly beyond.
pub fn series(i: usize, n: usize) -> RGBColor {
    if n < OKABE_ITO.len() {
        OKABE_ITO[1 + i % (OKABE_ITO.len() - 1)]
    } else {
        // Viridis' yellow end is unreadable on white: stop at 0.9.
        let h = i as f32 / (n - 1).max(1) as f32 * 0.9;
        plotters::style::colors::colormaps::ColorMap::get_color(&ViridisRGB, h)
    }
}

/// Which paper layout a figure is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paper {
    /// One column of a two-column paper: 3.5 in wide.
    Column,
    /// The full text width (or two columns): 7 in wide.
    Page,
}

impl std::str::FromStr for Paper {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "column" | "1" => Ok(Paper::Column),
            "page" | "2" => Ok(Paper::Page),
            _ => Err(format!("{s}: size is column (3.5 in) or page (7 in)")),
        }
    }
}

impl Paper {
    /// Width and height at print size, in inches.
    pub fn inches(self) -> (f64, f64) {
        match self {
            Paper::Column => (3.5, 2.6),
            Paper::Page => (7.0, 3.0),
        }
    }
}

/// CSS pixels per inch: what an SVG's unitless lengths mean, and so what
/// LaTeX's svg package, Inkscape and browsers assume.
pub const SVG_PX_PER_IN: f64 = 96.0;
/// The PNGs' resolution, enough for print.
pub const PNG_DPI: f64 = 300.0;
/// The smallest text any figure draws, in points at print size.
pub const MIN_PT: f64 = 8.0;

/// One figure's geometry: its paper size and how many pixels an inch is
/// in the backend it is drawn on.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub paper: Paper,
    pub px_per_in: f64,
    /// Whether the figure carries its own title (papers put it in the
    /// caption instead).
    pub title: bool,
}

impl Style {
    pub fn svg(paper: Paper, title: bool) -> Self {
        Style {
            paper,
            px_per_in: SVG_PX_PER_IN,
            title,
        }
    }

    pub fn png(paper: Paper, title: bool) -> Self {
        Style {
            paper,
            px_per_in: PNG_DPI,
            title,
        }
    }

    /// The backend's size in pixels.
    pub fn pixels(&self) -> (u32, u32) {
        let (w, h) = self.paper.inches();
        (
            (w * self.px_per_in).round() as u32,
            (h * self.px_per_in).round() as u32,
        )
    }

    /// `pt` points in pixels.
    pub fn pt(&self, pt: f64) -> f64 {
        pt * self.px_per_in / 72.0
    }

    /// `pt` points in whole pixels (margins, label areas, marks).
    pub fn px(&self, pt: f64) -> u32 {
        self.pt(pt).round().max(1.0) as u32
    }

    /// A font of `pt` points. Plotters draws a font "size" at size / 1.24
    /// pixels per em (its SVG writes that as font-size), so the size it is
    /// given is the em scaled back up; and a FontDesc keeps the fraction
    /// that a (family, f64) pair would truncate to whole pixels.
    pub fn font(&self, pt: f64) -> FontDesc<'static> {
        ("sans-serif", self.pt(pt) * PLOTTERS_EM).into_font()
    }

    /// Tick labels, legend entries and event names.
    pub fn small(&self) -> FontDesc<'static> {
        self.font(MIN_PT)
    }

    /// Axis descriptions.
    pub fn label(&self) -> FontDesc<'static> {
        self.font(9.0)
    }

    pub fn heading(&self) -> FontDesc<'static> {
        self.font(10.0)
    }

    /// A series line's width.
    pub fn line(&self) -> u32 {
        self.px(1.0)
    }

    /// The legend's column to the right of the data, in pixels.
    pub fn legend_width(&self) -> u32 {
        match self.paper {
            Paper::Column => self.px(68.0),
            Paper::Page => self.px(100.0),
        }
    }
}

/// Rewrites an SVG's unitless width and height into inches, keeping its
/// viewBox, so it imports at its print size (and fonts at their points).
pub fn declare_print_size(svg: &str, paper: Paper) -> String {
    let (w, h) = paper.inches();
    let px = Style::svg(paper, false).pixels();
    svg.replacen(
        &format!("width=\"{}\" height=\"{}\"", px.0, px.1),
        &format!("width=\"{w}in\" height=\"{h}in\""),
        1,
    )
}
