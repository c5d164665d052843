//! The report's charts, drawn with plotters' SVG backend. Each function takes plain series and
//! returns one `<svg>` element; colours are the Okabe–Ito palette (told apart by readers with
//! any common colour-vision deficiency) and every series also has its own marker shape, so the
//! charts survive printing in grey.

use std::ops::Range;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::activations::Quantiles;
use crate::error::{Error, Result};

/// Size of every chart, in CSS pixels.
const SIZE: (u32, u32) = (820, 420);
const FONT: &str = "sans-serif";

/// Okabe & Ito's colour-blind-safe palette, darkest-contrast colours first (yellow last: it is
/// faint on white).
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(230, 159, 0),   // orange
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
    RGBColor(240, 228, 66),  // yellow
];

/// The colour of the cut lines and the chosen point.
const MARK: RGBColor = RGBColor(213, 94, 0);

/// Colour of series `i`.
pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A named series of (x, y) points.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// How a y axis is scaled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    Linear,
    Log,
}

/// Axis titles and the chart's caption.
pub struct Labels<'a> {
    pub caption: &'a str,
    pub x: &'a str,
    pub y: &'a str,
}

fn chart_error(caption: &str, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("drawing the chart '{caption}': {e}"))
}

/// Runs `draw` on a fresh SVG canvas and returns the SVG text.
fn svg(
    caption: &str,
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>,
) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| chart_error(caption, e))?;
        draw(&root)?;
        root.present().map_err(|e| chart_error(caption, e))?;
    }
    Ok(out)
}

/// The range of `values` widened a little, for an axis; on a log axis only positive values
/// count and the range spans at least one decade.
fn axis_range(values: impl Iterator<Item = f64>, scale: Scale, from_zero: bool) -> Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && (scale == Scale::Linear || *v > 0.0)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return match scale {
            Scale::Linear => 0.0..1.0,
            Scale::Log => 0.1..10.0,
        };
    }
    match scale {
        Scale::Log => {
            let (lo, hi) = (lo.log10().floor(), hi.log10().ceil());
            let hi = if hi <= lo { lo + 1.0 } else { hi };
            10f64.powf(lo)..10f64.powf(hi)
        }
        Scale::Linear => {
            let lo = if from_zero { lo.min(0.0) } else { lo };
            let pad = if hi > lo {
                (hi - lo) * 0.05
            } else {
                hi.abs().max(1.0) * 0.05
            };
            (if from_zero && lo >= 0.0 { lo } else { lo - pad })..hi + pad
        }
    }
}

/// A chart builder with the caption and the room for axis labels every chart has.
fn builder<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
    y_label_width: u32,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(area);
    b.caption(caption, (FONT, 20))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(y_label_width);
    b
}

/// Axes with their titles and short tick labels.
fn draw_mesh<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    labels: &Labels,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(labels.x)
        .y_desc(labels.y)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(|e| chart_error(labels.caption, e))
}

/// The legend of the labelled series, at the upper right (where the axis ranges leave room).
fn draw_legend<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    caption: &str,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| chart_error(caption, e))
}

/// `range` with its top raised so that the data fill the lower 75% and the legend, drawn at the
/// upper right, covers none of it.
fn with_legend_room(range: Range<f64>, scale: Scale) -> Range<f64> {
    const DATA_SHARE: f64 = 0.75;
    match scale {
        Scale::Linear => range.start..range.start + (range.end - range.start) / DATA_SHARE,
        Scale::Log => {
            let (lo, hi) = (range.start.log10(), range.end.log10());
            range.start..10f64.powf(lo + (hi - lo) / DATA_SHARE)
        }
    }
}

/// A label for an axis tick: short, with an exponent for very large or small values.
pub fn tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e4).contains(&a) {
        format!("{v:.0e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Lines with markers, one per series, over a numeric x axis.
pub fn lines(
    labels: &Labels,
    series: &[Series],
    scale: Scale,
    y_from_zero: bool,
) -> Result<String> {
    let xs = || series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let x = axis_range(xs(), Scale::Linear, false);
    let mut y = axis_range(ys(), scale, y_from_zero);
    if series.len() > 1 {
        y = with_legend_room(y, scale);
    }
    let caption = labels.caption;
    svg(caption, |root| {
        let err = |e: DrawingAreaErrorKind<_>| chart_error(caption, e);
        let mut b = builder(root, caption, 78);
        macro_rules! body {
            ($chart:expr) => {{
                let mut chart = $chart;
                draw_mesh(&mut chart, labels)?;
                for (i, s) in series.iter().enumerate() {
                    let style = ShapeStyle::from(colour(i)).stroke_width(2);
                    let anno = chart
                        .draw_series(LineSeries::new(
                            s.points.iter().copied().filter(|p| p.1.is_finite()),
                            style,
                        ))
                        .map_err(err)?
                        .label(s.label.as_str());
                    let line = move |(lx, ly): (i32, i32)| {
                        EmptyElement::at((lx + 10, ly))
                            + PathElement::new(vec![(-10, 0), (10, 0)], style)
                    };
                    let c = ShapeStyle::from(colour(i));
                    match i % 4 {
                        0 => anno.legend(move |p| line(p) + Circle::new((0, 0), 4, c.filled())),
                        1 => anno
                            .legend(move |p| line(p) + TriangleMarker::new((0, 0), 5, c.filled())),
                        2 => anno.legend(move |p| {
                            line(p) + Rectangle::new([(-4, -4), (4, 4)], c.filled())
                        }),
                        _ => {
                            anno.legend(move |p| line(p) + Cross::new((0, 0), 4, c.stroke_width(2)))
                        }
                    };
                    // Markers: circle, triangle, square, cross, cycling with the colours.
                    let points = s.points.iter().copied().filter(|p| p.1.is_finite());
                    let at = EmptyElement::at;
                    match i % 4 {
                        0 => chart
                            .draw_series(points.map(|p| at(p) + Circle::new((0, 0), 4, c.filled())))
                            .map(|_| ()),
                        1 => chart
                            .draw_series(
                                points.map(|p| at(p) + TriangleMarker::new((0, 0), 5, c.filled())),
                            )
                            .map(|_| ()),
                        2 => {
                            chart
                                .draw_series(points.map(|p| {
                                    at(p) + Rectangle::new([(-4, -4), (4, 4)], c.filled())
                                }))
                                .map(|_| ())
                        }
                        _ => chart
                            .draw_series(
                                points.map(|p| at(p) + Cross::new((0, 0), 4, c.stroke_width(2))),
                            )
                            .map(|_| ()),
                    }
                    .map_err(err)?;
                }
                if series.len() > 1 {
                    draw_legend(&mut chart, caption)?;
                }
                Ok(())
            }};
        }
        match scale {
            Scale::Linear => body!(b.build_cartesian_2d(x.clone(), y.clone()).map_err(err)?),
            Scale::Log => body!(b
                .build_cartesian_2d(x.clone(), y.clone().log_scale())
                .map_err(err)?),
        }
    })
}

/// A grid of cells: columns at integer x (layers), one row per name, each cell coloured by its
/// value on the viridis scale over `range` (dark to light: readable by colour-blind readers and
/// in grey) and labelled with the value rounded; a colour bar at the right. Missing cells stay
/// white.
pub fn heatmap(
    labels: &Labels,
    rows: &[String],
    cells: &[(f64, usize, f64)],
    range: Range<f64>,
    cell_text: &dyn Fn(f64) -> String,
) -> Result<String> {
    let x = axis_range(cells.iter().map(|c| c.0), Scale::Linear, false);
    let x = (x.start.min(0.0).floor() - 0.5)..(x.end.ceil() + 0.5);
    let n_rows = rows.len().max(1);
    let y = -0.5..n_rows as f64 - 0.5;
    let caption = labels.caption;
    let span = (range.end - range.start).max(f64::MIN_POSITIVE);
    let shade = |v: f64| ViridisRGB.get_color(((v - range.start) / span).clamp(0.0, 1.0) as f32);
    svg(caption, |root| {
        let err = |e: DrawingAreaErrorKind<_>| chart_error(caption, e);
        let (plot, bar) = root.split_horizontally(SIZE.0 - 90);
        let label_width = rows.iter().map(|r| r.len()).max().unwrap_or(4) as u32 * 8 + 16;
        let mut chart = builder(&plot, caption, label_width.max(60))
            .build_cartesian_2d(x.clone(), y.clone())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(labels.x)
            .y_desc(labels.y)
            .x_label_formatter(&|v| tick(*v))
            .y_labels(n_rows)
            .y_label_formatter(&|v| {
                let i = v.round();
                if (v - i).abs() < 1e-6 && i >= 0.0 {
                    rows.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(cells.iter().map(|&(cx, row, v)| {
                let r = row as f64;
                Rectangle::new(
                    [(cx - 0.5, r - 0.5), (cx + 0.5, r + 0.5)],
                    shade(v).filled(),
                )
            }))
            .map_err(err)?;
        // Values in the cells when they fit (up to 40 columns), dark text on light cells.
        if x.end - x.start <= 41.0 {
            chart
                .draw_series(cells.iter().map(|&(cx, row, v)| {
                    let light = (v - range.start) / span > 0.6;
                    let colour = if light { BLACK } else { WHITE };
                    Text::new(
                        cell_text(v),
                        (cx, row as f64),
                        (FONT, 10)
                            .into_font()
                            .color(&colour)
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    )
                }))
                .map_err(err)?;
        }
        // The colour bar.
        let mut key = ChartBuilder::on(&bar)
            .margin_top(50)
            .margin_bottom(60)
            .margin_right(40)
            .y_label_area_size(0)
            .right_y_label_area_size(40)
            .build_cartesian_2d(0.0..1.0, range.clone())
            .map_err(err)?;
        key.configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_label_formatter(&|v| tick(*v))
            .label_style((FONT, 12))
            .draw()
            .map_err(err)?;
        let steps = 64;
        key.draw_series((0..steps).map(|i| {
            let lo = range.start + span * i as f64 / steps as f64;
            let hi = range.start + span * (i + 1) as f64 / steps as f64;
            Rectangle::new([(0.0, lo), (1.0, hi)], shade((lo + hi) / 2.0).filled())
        }))
        .map_err(err)?;
        Ok(())
    })
}

/// Bars at integer x positions (one per layer), with an optional dashed reference level.
pub fn bars(
    labels: &Labels,
    values: &[(f64, f64)],
    reference: Option<(f64, &str)>,
) -> Result<String> {
    let x = axis_range(values.iter().map(|v| v.0), Scale::Linear, false);
    let x = (x.start.min(-0.5))..(x.end.max(0.5));
    let y = axis_range(
        values.iter().map(|v| v.1).chain(reference.map(|r| r.0)),
        Scale::Linear,
        true,
    );
    let y = match reference {
        Some(_) => with_legend_room(y, Scale::Linear),
        None => y,
    };
    let caption = labels.caption;
    svg(caption, |root| {
        let err = |e: DrawingAreaErrorKind<_>| chart_error(caption, e);
        let mut chart = builder(root, caption, 78)
            .build_cartesian_2d(x.clone(), y)
            .map_err(err)?;
        draw_mesh(&mut chart, labels)?;
        let fill = colour(0);
        chart
            .draw_series(values.iter().map(|&(bx, by)| {
                Rectangle::new([(bx - 0.35, 0.0), (bx + 0.35, by)], fill.filled())
            }))
            .map_err(err)?;
        if let Some((level, label)) = reference {
            let style = ShapeStyle::from(BLACK).stroke_width(2);
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(x.start, level), (x.end, level)],
                    8,
                    5,
                    style,
                ))
                .map_err(err)?
                .label(label)
                .legend(move |(lx, ly)| PathElement::new(vec![(lx, ly), (lx + 20, ly)], style));
            draw_legend(&mut chart, caption)?;
        }
        Ok(())
    })
}

/// One layer's distribution: its quantiles and, where channels were cut, the cut.
pub struct Spread {
    pub x: f64,
    pub q: Quantiles,
    pub cut: Option<f64>,
}

/// Per-layer distributions as boxes: a thin line from min to max, a light box from the 10th to
/// the 90th percentile, a dark box over the quartiles, a white median tick, and the cut as a
/// thick vermillion line across the box. Log scale when every value drawn is positive.
pub fn spreads(labels: &Labels, spreads: &[Spread], cut_label: &str) -> Result<String> {
    let all = || {
        spreads
            .iter()
            .flat_map(|s| [s.q.min, s.q.max].into_iter().chain(s.cut))
    };
    let scale = if all().all(|v| v > 0.0) {
        Scale::Log
    } else {
        Scale::Linear
    };
    let x = axis_range(spreads.iter().map(|s| s.x), Scale::Linear, false);
    let x = (x.start - 0.5)..(x.end + 0.5);
    let y = with_legend_room(axis_range(all(), scale, false), scale);
    let caption = labels.caption;
    let light = colour(5).mix(0.55);
    let dark = colour(0);
    svg(caption, |root| {
        let err = |e: DrawingAreaErrorKind<_>| chart_error(caption, e);
        let mut b = builder(root, caption, 78);
        macro_rules! body {
            ($chart:expr) => {{
                let mut chart = $chart;
                draw_mesh(&mut chart, labels)?;
                let w = 0.36;
                chart
                    .draw_series(spreads.iter().map(|s| {
                        PathElement::new(
                            vec![(s.x, s.q.min), (s.x, s.q.max)],
                            BLACK.stroke_width(1),
                        )
                    }))
                    .map_err(err)?
                    .label("min to max")
                    .legend(|(lx, ly)| {
                        PathElement::new(vec![(lx, ly), (lx + 20, ly)], BLACK.stroke_width(1))
                    });
                chart
                    .draw_series(spreads.iter().map(|s| {
                        Rectangle::new([(s.x - w, s.q.p10), (s.x + w, s.q.p90)], light.filled())
                    }))
                    .map_err(err)?
                    .label("10th to 90th percentile")
                    .legend(move |(lx, ly)| {
                        Rectangle::new([(lx, ly - 5), (lx + 20, ly + 5)], light.filled())
                    });
                chart
                    .draw_series(spreads.iter().map(|s| {
                        Rectangle::new(
                            [(s.x - w * 0.6, s.q.p25), (s.x + w * 0.6, s.q.p75)],
                            dark.filled(),
                        )
                    }))
                    .map_err(err)?
                    .label("quartiles, median in white")
                    .legend(move |(lx, ly)| {
                        Rectangle::new([(lx, ly - 5), (lx + 20, ly + 5)], dark.filled())
                    });
                chart
                    .draw_series(spreads.iter().map(|s| {
                        PathElement::new(
                            vec![(s.x - w * 0.6, s.q.median), (s.x + w * 0.6, s.q.median)],
                            WHITE.stroke_width(2),
                        )
                    }))
                    .map_err(err)?;
                if spreads.iter().any(|s| s.cut.is_some()) {
                    chart
                        .draw_series(spreads.iter().filter_map(|s| {
                            s.cut.map(|c| {
                                PathElement::new(
                                    vec![(s.x - w, c), (s.x + w, c)],
                                    MARK.stroke_width(3),
                                )
                            })
                        }))
                        .map_err(err)?
                        .label(cut_label)
                        .legend(|(lx, ly)| {
                            PathElement::new(vec![(lx, ly), (lx + 20, ly)], MARK.stroke_width(3))
                        });
                }
                draw_legend(&mut chart, caption)?;
                Ok(())
            }};
        }
        match scale {
            Scale::Linear => body!(b.build_cartesian_2d(x.clone(), y.clone()).map_err(err)?),
            Scale::Log => body!(b
                .build_cartesian_2d(x.clone(), y.clone().log_scale())
                .map_err(err)?),
        }
    })
}

/// One measured model of a sweep.
pub struct Point {
    /// Shown beside the point (the candidate's number).
    pub tag: String,
    pub size_mb: f64,
    pub ppl: f64,
    pub plus_minus: f64,
    pub baseline: bool,
    pub chosen: bool,
}

/// Perplexity against file size: each candidate numbered, ± as a vertical bar, the model as it
/// is as a black square, the chosen candidate ringed.
pub fn tradeoff(labels: &Labels, points: &[Point]) -> Result<String> {
    let x = axis_range(points.iter().map(|p| p.size_mb), Scale::Linear, false);
    let y = with_legend_room(
        axis_range(
            points
                .iter()
                .flat_map(|p| [p.ppl - p.plus_minus, p.ppl + p.plus_minus]),
            Scale::Linear,
            false,
        ),
        Scale::Linear,
    );
    let caption = labels.caption;
    svg(caption, |root| {
        let err = |e: DrawingAreaErrorKind<_>| chart_error(caption, e);
        let mut chart = builder(root, caption, 78)
            .build_cartesian_2d(x, y)
            .map_err(err)?;
        draw_mesh(&mut chart, labels)?;
        let blue = colour(0);
        chart
            .draw_series(points.iter().map(|p| {
                PathElement::new(
                    vec![
                        (p.size_mb, p.ppl - p.plus_minus),
                        (p.size_mb, p.ppl + p.plus_minus),
                    ],
                    BLACK.mix(0.5).stroke_width(1),
                )
            }))
            .map_err(err)?
            .label("± as llama-perplexity prints it")
            .legend(|(lx, ly)| {
                PathElement::new(vec![(lx + 10, ly - 6), (lx + 10, ly + 6)], BLACK.mix(0.5))
            });
        chart
            .draw_series(points.iter().filter(|p| !p.baseline).map(|p| {
                EmptyElement::at((p.size_mb, p.ppl))
                    + Circle::new((0, 0), 5, blue.filled())
                    + Text::new(p.tag.clone(), (7, -16), (FONT, 13))
            }))
            .map_err(err)?
            .label("candidate (numbered as in the table)")
            .legend(move |(lx, ly)| Circle::new((lx + 10, ly), 5, blue.filled()));
        chart
            .draw_series(points.iter().filter(|p| p.baseline).map(|p| {
                EmptyElement::at((p.size_mb, p.ppl))
                    + Rectangle::new([(-6, -6), (6, 6)], BLACK.filled())
                    + Text::new("as it is", (8, -18), (FONT, 13))
            }))
            .map_err(err)?
            .label("the model as it is")
            .legend(|(lx, ly)| {
                Rectangle::new([(lx + 4, ly - 6), (lx + 16, ly + 6)], BLACK.filled())
            });
        chart
            .draw_series(points.iter().filter(|p| p.chosen).map(|p| {
                EmptyElement::at((p.size_mb, p.ppl)) + Circle::new((0, 0), 11, MARK.stroke_width(3))
            }))
            .map_err(err)?
            .label("chosen (lowest perplexity)")
            .legend(|(lx, ly)| Circle::new((lx + 10, ly), 7, MARK.stroke_width(3)));
        draw_legend(&mut chart, caption)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(0.5), "0.5");
        assert_eq!(tick(12.25), "12.25");
        assert_eq!(tick(1536.0), "1536");
        assert_eq!(tick(10000.0), "1e4");
        assert_eq!(tick(1e-6), "1e-6");
        assert_eq!(tick(2.5e7), "2e7");
    }

    #[test]
    fn log_ranges_span_whole_decades_of_positive_values() {
        let r = axis_range([0.0, 0.03, 40.0, f64::NAN].into_iter(), Scale::Log, false);
        assert_eq!((r.start, r.end), (0.01, 100.0));
        let r = axis_range([5.0].into_iter(), Scale::Log, false);
        assert_eq!((r.start, r.end), (1.0, 10.0));
        let r = axis_range([0.2, 0.6].into_iter(), Scale::Linear, true);
        assert!(r.start == 0.0 && r.end > 0.6);
        let r = with_legend_room(0.0..6.0, Scale::Linear);
        assert_eq!((r.start, r.end), (0.0, 8.0));
        let r = with_legend_room(0.01..100.0, Scale::Log);
        assert!(r.start == 0.01 && (r.end / 10f64.powf(10.0 / 3.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn every_chart_draws_with_its_labels() {
        let labels = Labels {
            caption: "Caption <&>",
            x: "layer",
            y: "share (%)",
        };
        let series = vec![Series {
            label: "ffn_up".into(),
            points: vec![(0.0, 50.0), (1.0, f64::NAN), (2.0, 49.0)],
        }];
        let q = Quantiles::of([1e-4, 1.0, 3.0, 100.0]).unwrap();
        let charts = [
            lines(&labels, &series, Scale::Linear, true).unwrap(),
            lines(&labels, &series, Scale::Log, false).unwrap(),
            lines(&labels, &[], Scale::Log, false).unwrap(),
            bars(
                &labels,
                &[(0.0, 1152.0), (1.0, 1024.0)],
                Some((1536.0, "before")),
            )
            .unwrap(),
            heatmap(
                &labels,
                &["attn_q".into(), "ffn_up".into()],
                &[(0.0, 0, 50.0), (1.0, 1, 25.0)],
                0.0..100.0,
                &|v| format!("{v:.0}"),
            )
            .unwrap(),
            heatmap(&labels, &[], &[], 0.0..100.0, &|v| format!("{v:.0}")).unwrap(),
            spreads(
                &labels,
                &[Spread {
                    x: 0.0,
                    q,
                    cut: Some(0.5),
                }],
                "cut",
            )
            .unwrap(),
            spreads(
                &labels,
                &[Spread {
                    x: 0.0,
                    q: Quantiles { min: 0.0, ..q },
                    cut: None,
                }],
                "cut",
            )
            .unwrap(),
            tradeoff(
                &labels,
                &[
                    Point {
                        tag: "1".into(),
                        size_mb: 100.0,
                        ppl: 12.0,
                        plus_minus: 0.4,
                        baseline: false,
                        chosen: true,
                    },
                    Point {
                        tag: String::new(),
                        size_mb: 200.0,
                        ppl: 10.0,
                        plus_minus: 0.3,
                        baseline: true,
                        chosen: false,
                    },
                ],
            )
            .unwrap(),
        ];
        for svg in charts {
            assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
            assert!(
                svg.contains("Caption &lt;&amp;&gt;"),
                "the caption, escaped"
            );
            assert!(
                svg.contains(">\nlayer\n<") || svg.contains(">layer<"),
                "x label"
            );
        }
    }
}
