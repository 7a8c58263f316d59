//! The monthly chart: one line per station through its monthly mean `degrees`.

use plotters::prelude::*;

use crate::view::{Month, Station};

/// One station's line.
pub struct Series<'a> {
    pub station: &'a str,
    /// Palette index, so a station keeps its colour whichever others are shown.
    pub colour: usize,
    pub station_data: &'a Station,
}

/// The colour of palette entry `index`, as CSS `#RRGGBB` (written as the SVG writes it).
pub fn css_colour(index: usize) -> String {
    let RGBAColor(r, g, b, _) = Palette99::pick(index).to_rgba();
    format!("#{r:02X}{g:02X}{b:02X}")
}

/// Renders the chart as an SVG document of `width` × `height` pixels: exactly
/// one `<polyline>` per series (the legend uses boxes, not lines), so a reader
/// of the SVG can find each station's line.
pub fn monthly_svg(series: &[Series<'_>], width: u32, height: u32) -> Result<String, String> {
    let months = series
        .iter()
        .flat_map(|s| s.station_data.months.keys().copied());
    let (first, last) = months.fold((None::<Month>, None::<Month>), |(lo, hi), m| {
        (
            Some(lo.map_or(m, |lo| lo.min(m))),
            Some(hi.map_or(m, |hi| hi.max(m))),
        )
    });
    let means = series
        .iter()
        .flat_map(|s| s.station_data.months.values().map(|t| t.mean()));
    let (low, high) = means.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let (Some(first), Some(last)) = (first, last) else {
            root.draw(&Text::new(
                "No committed readings yet",
                (20, 30),
                ("sans-serif", 18).into_font(),
            ))
            .map_err(draw_error)?;
            root.present().map_err(draw_error)?;
            drop(root);
            return Ok(svg);
        };
        // A month's worth of margin either side, and room above and below the lines.
        let x_range = (first.index() - 1)..(last.index() + 1);
        let pad = ((high - low) * 0.08).max(1.0);
        let y_range = (low - pad)..(high + pad);

        let mut chart = ChartBuilder::on(&root)
            .caption("Monthly mean temperature", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(x_range, y_range)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_labels(12)
            .x_label_formatter(&|index| Month::from_index(*index).to_string())
            .y_desc("degrees")
            .draw()
            .map_err(draw_error)?;
        for s in series {
            let colour = Palette99::pick(s.colour).to_rgba();
            let points = s
                .station_data
                .months
                .iter()
                .map(|(month, total)| (month.index(), total.mean()));
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(draw_error)?
                .label(s.station)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
        }
        if !series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(draw_error)?;
        }
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

fn draw_error<E: std::fmt::Debug>(err: E) -> String {
    format!("cannot draw the chart: {err:?}")
}
