//! SVG line plots of a study table: metrics against the table's abscissa
//! (fraction of pairs, drop rate), mean with ± std error bars over seeds,
//! and the table's reference lines without an abscissa (no adaptation)
//! drawn dashed across the plot.

use plotters::prelude::*;

use super::report::TableSummary;

/// The plotted metrics and their colours.
const SERIES: [(&str, RGBColor); 3] = [
    ("Edit", RGBColor(31, 119, 180)),
    ("F1@25", RGBColor(255, 127, 14)),
    ("MoF", RGBColor(44, 160, 44)),
];

/// Renders `table` as an SVG document; `x_label` names the abscissa, whose
/// values are shown ×100 (percent).
pub fn study_svg(table: &TableSummary, x_label: &str) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let points: Vec<_> = table
            .lines
            .iter()
            .filter(|l| l.x.is_some() && !l.seeds.is_empty())
            .collect();
        let x_max = points
            .iter()
            .filter_map(|l| l.x)
            .fold(0.0f64, f64::max)
            .max(1e-3)
            * 100.0;
        let y_max = table
            .lines
            .iter()
            .filter(|l| !l.seeds.is_empty())
            .flat_map(|l| SERIES.iter().map(|(m, _)| l.stat(m)))
            .map(|s| s.mean + s.std)
            .fold(10.0f64, f64::max);
        let y_max = (y_max / 10.0).ceil() * 10.0;
        let mut chart = ChartBuilder::on(&root)
            .caption(&table.title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..x_max * 1.04, 0.0..y_max)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc("score (%)")
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(plot_err)?;
        for (metric, colour) in SERIES {
            let xy: Vec<(f64, f64, f64)> = points
                .iter()
                .map(|l| {
                    let s = l.stat(metric);
                    (l.x.unwrap_or(0.0) * 100.0, s.mean, s.std)
                })
                .collect();
            chart
                .draw_series(LineSeries::new(
                    xy.iter().map(|&(x, y, _)| (x, y)),
                    colour.stroke_width(2),
                ))
                .map_err(plot_err)?
                .label(metric)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(xy.iter().map(|&(x, y, e)| {
                    ErrorBar::new_vertical(x, y - e, y, y + e, colour.filled(), 6)
                }))
                .map_err(plot_err)?;
            // Reference lines (no abscissa): dashed, across the plot.
            for l in table
                .lines
                .iter()
                .filter(|l| l.x.is_none() && !l.seeds.is_empty())
            {
                let y = l.stat(metric).mean;
                let drawn = chart
                    .draw_series(DashedLineSeries::new(
                        [(0.0, y), (x_max * 1.04, y)],
                        6,
                        4,
                        colour.mix(0.6).stroke_width(1),
                    ))
                    .map_err(plot_err)?;
                if metric == SERIES[0].0 {
                    let name = format!("{} (dashed)", l.label.to_lowercase());
                    drawn.label(name).legend(|(x, y)| {
                        PathElement::new(vec![(x, y), (x + 6, y)], BLACK.mix(0.5))
                    });
                }
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::bench_paper::plan::tables;
    use crate::commands::bench_paper::report::{summarize, CellResult};
    use syncseg_core::metrics::Scores;

    #[test]
    fn draws_each_point_with_its_error_bar() {
        let tables = tables();
        let t4 = tables.iter().position(|t| t.id == "table4").unwrap();
        let results: Vec<CellResult> = tables[t4]
            .lines
            .iter()
            .enumerate()
            .flat_map(|(i, l)| {
                (0..2).map(move |seed| CellResult {
                    cell: l.cell.clone(),
                    seed,
                    scores: [(
                        l.test_view.to_string(),
                        Scores {
                            edit: 10.0 * i as f64 + seed as f64,
                            f1_10: 0.0,
                            f1_25: 5.0,
                            f1_50: 0.0,
                            mof: 50.0,
                            videos: 1,
                        },
                    )]
                    .into_iter()
                    .collect(),
                    pairs: Some(4),
                    seconds: 0.0,
                })
            })
            .collect();
        let summary = summarize(&tables, &results);
        let svg = study_svg(&summary[t4], "pairs used (%)").unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        assert!(svg.contains("pairs used (%)"));
        assert!(svg.contains("Edit") && svg.contains("MoF"));
        // Six points per series, each with an error bar (three lines).
        assert!(svg.matches("<polyline").count() >= 3, "one line per metric");
    }
}
