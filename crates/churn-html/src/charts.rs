//! Charts as SVG strings: line charts (ROC, PR, reliability, gains, Qini),
//! horizontal bar charts (importance) and beeswarms (per-row SHAP values).
//!
//! Text is written as SVG `<text>` and laid out by the browser's fonts, so no
//! font file is embedded (plotters' bitmap backends would need one).

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::ReportError;

/// Size of a chart in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub width: u32,
    pub height: u32,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            width: 560,
            height: 420,
        }
    }
}

/// Line colours, distinguishable for common colour-vision deficiencies (Okabe–Ito).
const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
];
const REFERENCE: RGBColor = RGBColor(130, 130, 130);
const FONT: &str = "sans-serif";
/// Points kept per line: enough for a smooth curve, small enough for a light file.
const MAX_POINTS: usize = 600;

/// One line of a [`LineChart`].
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Draw a dot at each point (for binned curves such as reliability).
    pub markers: bool,
}

/// Where the legend goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legend {
    UpperLeft,
    UpperRight,
    LowerRight,
}

/// A line chart with an optional dashed reference line.
#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_range: (f64, f64),
    pub y_range: (f64, f64),
    pub series: Vec<Series>,
    /// A dashed grey reference (e.g. the diagonal of a random ranking) and its name.
    pub reference: Option<(String, Vec<(f64, f64)>)>,
    pub legend: Legend,
    pub style: Style,
}

fn fail(title: &str) -> impl Fn(String) -> ReportError + '_ {
    move |reason| ReportError::Chart {
        title: title.to_owned(),
        reason,
    }
}

/// Drops attributes that only restate SVG defaults (plotters writes them on
/// every shape): a beeswarm has thousands of dots.
fn compact(svg: String) -> String {
    svg.replace(" stroke=\"none\" stroke-width=\"1\"", "")
        .replace(" opacity=\"1\"", "")
}

type Root<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws on a fresh SVG canvas of `style`'s size and returns the document.
fn render(
    title: &str,
    style: Style,
    draw: impl FnOnce(&Root<'_>) -> Result<(), String>,
) -> Result<String, ReportError> {
    let fail = fail(title);
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (style.width, style.height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        draw(&root).map_err(&fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    Ok(compact(svg))
}

type RowChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A chart with one horizontal row per item (row 0 on top), names drawn by
/// [`draw_row_names`], and `x` as the value axis.
fn row_chart<'a, 'b>(
    root: &'a Root<'b>,
    title: &str,
    x_label: &str,
    x: std::ops::Range<f64>,
    rows: usize,
) -> Result<RowChart<'a, 'b>, String> {
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 17))
        .margin(14)
        .x_label_area_size(42)
        .y_label_area_size(NAME_AREA)
        .build_cartesian_2d(x, -0.5..rows as f64 - 0.5)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc(x_label)
        .light_line_style(RGBColor(238, 238, 238))
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart)
}

/// Keeps at most [`MAX_POINTS`] points, evenly spaced by index, always the last.
fn thin(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    if points.len() <= MAX_POINTS {
        return points.to_vec();
    }
    let step = points.len().div_ceil(MAX_POINTS);
    let mut kept: Vec<(f64, f64)> = points.iter().step_by(step).copied().collect();
    if let Some(&last) = points.last()
        && kept.last() != Some(&last)
    {
        kept.push(last);
    }
    kept
}

fn check_range(title: &str, what: &str, (low, high): (f64, f64)) -> Result<(), ReportError> {
    if low.is_finite() && high.is_finite() && low < high {
        Ok(())
    } else {
        Err(fail(title)(format!(
            "{what} range [{low}, {high}] is empty or not finite"
        )))
    }
}

impl LineChart {
    /// The chart as an `<svg>` element.
    pub fn svg(&self) -> Result<String, ReportError> {
        check_range(&self.title, "x", self.x_range)?;
        check_range(&self.title, "y", self.y_range)?;
        render(&self.title, self.style, |root| self.draw(root))
    }

    fn draw(&self, root: &Root<'_>) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, 17))
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(58)
            .build_cartesian_2d(
                self.x_range.0..self.x_range.1,
                self.y_range.0..self.y_range.1,
            )
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .light_line_style(RGBColor(238, 238, 238))
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .draw()
            .map_err(|e| err(&e))?;
        let clip = |(x, y): (f64, f64)| {
            (
                x.clamp(self.x_range.0, self.x_range.1),
                y.clamp(self.y_range.0, self.y_range.1),
            )
        };
        if let Some((name, points)) = &self.reference {
            chart
                .draw_series(DashedLineSeries::new(
                    thin(points).into_iter().map(clip),
                    6,
                    4,
                    REFERENCE.stroke_width(1),
                ))
                .map_err(|e| err(&e))?
                .label(name.as_str())
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], REFERENCE));
        }
        for (i, series) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let points: Vec<(f64, f64)> = thin(&series.points).into_iter().map(clip).collect();
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| err(&e))?
                .label(series.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            if series.markers {
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| err(&e))?;
            }
        }
        chart
            .configure_series_labels()
            .position(match self.legend {
                Legend::UpperLeft => SeriesLabelPosition::UpperLeft,
                Legend::UpperRight => SeriesLabelPosition::UpperRight,
                Legend::LowerRight => SeriesLabelPosition::LowerRight,
            })
            .label_font((FONT, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .draw()
            .map_err(|e| err(&e))?;
        Ok(())
    }
}

/// Horizontal bars, first bar on top (e.g. mean |SHAP| importance).
#[derive(Debug, Clone)]
pub struct BarChart {
    pub title: String,
    pub x_label: String,
    pub bars: Vec<(String, f64)>,
    pub style: Style,
}

/// Room for row names left of the plot.
const NAME_AREA: u32 = 200;

/// Writes row names right-aligned just left of the plot, at each row's height.
fn draw_row_names(
    root: &Root<'_>,
    names: impl Iterator<Item = (String, (i32, i32))>,
) -> Result<(), String> {
    let style = TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (name, (x, y)) in names {
        root.draw(&Text::new(name, (x - 6, y), style.clone()))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

impl BarChart {
    /// The chart as an `<svg>` element.
    pub fn svg(&self) -> Result<String, ReportError> {
        let fail = fail(&self.title);
        let max = self.bars.iter().map(|b| b.1).fold(0.0_f64, f64::max);
        if self.bars.is_empty() || !(max.is_finite() && max > 0.0) {
            return Err(fail("no positive bar to draw".into()));
        }
        let n = self.bars.len();
        render(&self.title, self.style, |root| {
            let mut chart = row_chart(root, &self.title, &self.x_label, 0.0..max * 1.05, n)?;
            let row = |i: usize| (n - 1 - i) as f64;
            chart
                .draw_series(self.bars.iter().enumerate().map(|(i, (_, v))| {
                    Rectangle::new(
                        [(0.0, row(i) - 0.36), (v.max(0.0), row(i) + 0.36)],
                        PALETTE[0].filled(),
                    )
                }))
                .map_err(|e| e.to_string())?;
            draw_row_names(
                root,
                self.bars
                    .iter()
                    .enumerate()
                    .map(|(i, (name, _))| (name.clone(), chart.backend_coord(&(0.0, row(i))))),
            )
        })
    }
}

/// One row of an [`IntervalChart`].
#[derive(Debug, Clone)]
pub struct IntervalRow {
    pub name: String,
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    /// Highlighted (drawn in the accent colour), e.g. the recommended policy.
    pub highlight: bool,
}

/// Estimates with intervals, one row each, first on top (a forest plot),
/// with an optional dashed vertical reference (e.g. 0 or the control rate).
#[derive(Debug, Clone)]
pub struct IntervalChart {
    pub title: String,
    pub x_label: String,
    pub rows: Vec<IntervalRow>,
    pub reference: Option<f64>,
    pub style: Style,
}

impl IntervalChart {
    /// The chart as an `<svg>` element.
    pub fn svg(&self) -> Result<String, ReportError> {
        let fail = fail(&self.title);
        let finite =
            |r: &&IntervalRow| r.low.is_finite() && r.high.is_finite() && r.estimate.is_finite();
        let (mut low, mut high) = self
            .rows
            .iter()
            .filter(finite)
            .fold((f64::MAX, f64::MIN), |(l, h), r| {
                (l.min(r.low), h.max(r.high))
            });
        if let Some(x) = self.reference {
            (low, high) = (low.min(x), high.max(x));
        }
        if !(low.is_finite() && high.is_finite() && low <= high) {
            return Err(fail("no finite interval to draw".into()));
        }
        let pad = ((high - low) * 0.06).max(1e-9);
        let n = self.rows.len();
        render(&self.title, self.style, |root| {
            let mut chart = row_chart(root, &self.title, &self.x_label, low - pad..high + pad, n)?;
            let row = |i: usize| (n - 1 - i) as f64;
            if let Some(x) = self.reference {
                chart
                    .draw_series(DashedLineSeries::new(
                        [(x, -0.5), (x, n as f64 - 0.5)],
                        5,
                        4,
                        RGBColor(150, 150, 150).stroke_width(1),
                    ))
                    .map_err(|e| e.to_string())?;
            }
            for (i, r) in self.rows.iter().enumerate().filter(|(_, r)| finite(r)) {
                let color = if r.highlight { PALETTE[1] } else { PALETTE[0] };
                chart
                    .draw_series([
                        PathElement::new(
                            [(r.low, row(i)), (r.high, row(i))],
                            color.stroke_width(2),
                        ),
                        PathElement::new(
                            [(r.low, row(i) - 0.18), (r.low, row(i) + 0.18)],
                            color.stroke_width(2),
                        ),
                        PathElement::new(
                            [(r.high, row(i) - 0.18), (r.high, row(i) + 0.18)],
                            color.stroke_width(2),
                        ),
                    ])
                    .map_err(|e| e.to_string())?;
                chart
                    .draw_series([Circle::new((r.estimate, row(i)), 4, color.filled())])
                    .map_err(|e| e.to_string())?;
            }
            draw_row_names(
                root,
                self.rows
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (r.name.clone(), chart.backend_coord(&(low - pad, row(i))))),
            )
        })
    }
}

/// One row of a beeswarm: a feature and, per example, its contribution and
/// its value's rank in [0, 1] (`None`: missing or categorical, drawn grey).
#[derive(Debug, Clone)]
pub struct BeeswarmRow {
    pub name: String,
    pub points: Vec<(f64, Option<f64>)>,
}

/// A SHAP-style beeswarm: one row per feature, a dot per example at its
/// contribution, coloured by the feature's value (blue low, red high).
#[derive(Debug, Clone)]
pub struct Beeswarm {
    pub title: String,
    pub x_label: String,
    pub rows: Vec<BeeswarmRow>,
    pub style: Style,
}

/// Blue (low) to red (high), SHAP's colours.
fn value_color(rank: Option<f64>) -> RGBColor {
    let Some(t) = rank.filter(|t| t.is_finite()) else {
        return RGBColor(170, 170, 170);
    };
    let t = t.clamp(0.0, 1.0);
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    RGBColor(mix(0, 255), mix(139, 0), mix(251, 82))
}

/// Vertical offsets that pile up dots sharing an x bin, alternately above and
/// below the row's line: a deterministic swarm.
fn swarm_offsets(xs: &[f64], low: f64, high: f64, bins: usize, spread: f64) -> Vec<f64> {
    let mut in_bin = vec![0usize; bins];
    let width = (high - low) / bins as f64;
    let counts_max = {
        let mut counts = vec![0usize; bins];
        for &x in xs {
            let b = (((x - low) / width) as usize).min(bins - 1);
            counts[b] += 1;
        }
        counts.into_iter().max().unwrap_or(1).max(1)
    };
    let step = (spread / counts_max as f64).min(0.06);
    xs.iter()
        .map(|&x| {
            let b = (((x - low) / width) as usize).min(bins - 1);
            let k = in_bin[b];
            in_bin[b] += 1;
            let level = k.div_ceil(2) as f64 * step;
            if k % 2 == 1 { level } else { -level }
        })
        .collect()
}

impl Beeswarm {
    /// The chart as an `<svg>` element.
    pub fn svg(&self) -> Result<String, ReportError> {
        let fail = fail(&self.title);
        let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
        for row in &self.rows {
            for &(x, _) in &row.points {
                if x.is_finite() {
                    low = low.min(x);
                    high = high.max(x);
                }
            }
        }
        if !(low.is_finite() && high.is_finite()) {
            return Err(fail("no points to draw".into()));
        }
        let pad = ((high - low) * 0.05).max(1e-6);
        let (low, high) = (low.min(0.0) - pad, high.max(0.0) + pad);
        let n = self.rows.len();
        render(&self.title, self.style, |root| {
            let mut chart = row_chart(root, &self.title, &self.x_label, low..high, n)?;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(0.0, -0.5), (0.0, n as f64 - 0.5)],
                    REFERENCE,
                )))
                .map_err(|e| e.to_string())?;
            let row_y = |i: usize| (n - 1 - i) as f64;
            for (i, row) in self.rows.iter().enumerate() {
                let points: Vec<(f64, Option<f64>)> = row
                    .points
                    .iter()
                    .copied()
                    .filter(|p| p.0.is_finite())
                    .collect();
                let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
                let offsets = swarm_offsets(&xs, low, high, 120, 0.4);
                chart
                    .draw_series(points.iter().zip(&offsets).map(|(&(x, rank), dy)| {
                        Circle::new((x, row_y(i) + dy), 2, value_color(rank).mix(0.8).filled())
                    }))
                    .map_err(|e| e.to_string())?;
            }
            draw_row_names(
                root,
                self.rows
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (r.name.clone(), chart.backend_coord(&(low, row_y(i))))),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_chart_has_its_title_labels_and_legend_as_text() {
        let chart = LineChart {
            title: "ROC curve".into(),
            x_label: "false positive rate".into(),
            y_label: "true positive rate".into(),
            x_range: (0.0, 1.0),
            y_range: (0.0, 1.0),
            series: vec![Series {
                name: "gbdt (AUC 0.9)".into(),
                points: (0..=2000)
                    .map(|i| (i as f64 / 2000.0, (i as f64 / 2000.0).sqrt()))
                    .collect(),
                markers: false,
            }],
            reference: Some(("random".into(), vec![(0.0, 0.0), (1.0, 1.0)])),
            legend: Legend::LowerRight,
            style: Style::default(),
        };
        let svg = chart.svg().unwrap();
        assert!(svg.starts_with("<svg"));
        for text in [
            "ROC curve",
            "false positive rate",
            "true positive rate",
            "gbdt (AUC 0.9)",
            "random",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        // 2001 points are thinned to a light polyline.
        assert!(svg.len() < 60_000, "{} bytes", svg.len());
    }

    #[test]
    fn an_interval_chart_names_its_rows_and_skips_what_it_cannot_draw() {
        let row = |name: &str, e: f64, low: f64, high: f64| IntervalRow {
            name: name.into(),
            estimate: e,
            low,
            high,
            highlight: name == "arm-b",
        };
        let chart = IntervalChart {
            title: "effects".into(),
            x_label: "difference".into(),
            rows: vec![
                row("arm-a", -0.1, -0.2, 0.0),
                row("arm-b", 0.05, 0.01, 0.09),
                row("arm-c", f64::NAN, f64::NAN, 1.0),
            ],
            reference: Some(0.0),
            style: Style::default(),
        };
        let svg = chart.svg().unwrap();
        for text in ["effects", "difference", "arm-a", "arm-b", "arm-c"] {
            assert!(svg.contains(text), "{text} missing");
        }
        // Two drawable rows: two dots.
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        let empty = IntervalChart {
            rows: vec![row("c", f64::NAN, f64::NAN, f64::NAN)],
            reference: None,
            ..chart
        };
        assert!(empty.svg().is_err());
    }

    #[test]
    fn bar_and_beeswarm_name_their_rows_and_refuse_nothing_to_draw() {
        let bars = BarChart {
            title: "importance".into(),
            x_label: "mean |SHAP|".into(),
            bars: vec![
                ("days_since_last_login".into(), 0.5),
                ("tenure_days".into(), 0.1),
            ],
            style: Style::default(),
        };
        let svg = bars.svg().unwrap();
        assert!(svg.contains("days_since_last_login") && svg.contains("tenure_days"));
        let empty = BarChart {
            bars: vec![],
            ..bars
        };
        assert!(empty.svg().unwrap_err().to_string().contains("importance"));

        let swarm = Beeswarm {
            title: "SHAP".into(),
            x_label: "log-odds".into(),
            rows: vec![BeeswarmRow {
                name: "completion_rate".into(),
                points: vec![
                    (0.2, Some(0.0)),
                    (0.21, Some(1.0)),
                    (-0.3, None),
                    (f64::NAN, None),
                ],
            }],
            style: Style::default(),
        };
        let svg = swarm.svg().unwrap();
        assert!(svg.contains("completion_rate"));
        assert_eq!(svg.matches("<circle").count(), 3, "NaN is not drawn");
        assert!(svg.contains("#FF0052") && svg.contains("#008BFB") && svg.contains("#AAAAAA"));
    }

    #[test]
    fn swarm_offsets_alternate_and_stay_in_the_row() {
        let offsets = swarm_offsets(&[0.5, 0.5, 0.5, 0.9], 0.0, 1.0, 10, 0.4);
        assert_eq!(offsets[0], 0.0);
        assert!(offsets[1] > 0.0 && offsets[2] < 0.0 && offsets[1] == -offsets[2]);
        assert_eq!(offsets[3], 0.0);
        assert!(offsets.iter().all(|o| o.abs() <= 0.4));
    }

    #[test]
    fn value_colours_run_from_blue_to_red() {
        assert_eq!(value_color(Some(0.0)), RGBColor(0, 139, 251));
        assert_eq!(value_color(Some(1.0)), RGBColor(255, 0, 82));
        assert_eq!(value_color(None), RGBColor(170, 170, 170));
    }
}
