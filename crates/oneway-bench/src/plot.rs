//! SVG plots: latency CDFs (one-way against the baseline) and the capacity curve.

use std::path::Path;

use plotters::prelude::*;

use crate::BenchError;
use crate::capacity::CapacityReport;
use crate::latency::LatencyReport;
use crate::stats::cdf;

/// Twelve distinguishable colours (matplotlib's tab10 plus two), so that every series of a
/// latency run with the browser (11) has its own.
const PALETTE: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(120, 30, 90),
];

fn plot_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Plot(e.to_string())
}

/// Writes the empirical CDF of first-echo times of every latency series to `path`.
pub fn latency_cdf(report: &LatencyReport, path: &Path) -> Result<(), BenchError> {
    // (label, line width, CDF points)
    type Curve = (String, u32, Vec<(f64, f64)>);
    let series: Vec<Curve> = report
        .series
        .iter()
        .map(|s| {
            let totals: Vec<f64> = s.runs.iter().map(|r| r.first_echo).collect();
            // Baselines are drawn thicker.
            let width = if s.mode.is_baseline() { 4 } else { 2 };
            (s.label(), width, cdf(&totals))
        })
        .filter(|(_, _, points)| !points.is_empty())
        .collect();
    // A log scale: series differ by orders of magnitude (a few ms to hundreds).
    let xs = || {
        series
            .iter()
            .flat_map(|(_, _, p)| p.iter().map(|(x, _)| *x))
    };
    let max_x = xs().fold(0.0_f64, f64::max).max(1.0) * 1.2;
    let min_x = xs().fold(f64::INFINITY, f64::min).clamp(0.01, max_x / 2.0) / 1.2;
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Connect latency CDF: token decoded / offer created → first echo",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((min_x..max_x).log_scale(), 0.0..1.0)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("milliseconds (log scale)")
        .y_desc("fraction of runs")
        .draw()
        .map_err(plot_err)?;
    for (i, (label, width, points)) in series.into_iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        // A step function: each sample raises the curve.
        let mut steps = Vec::with_capacity(points.len() * 2);
        let mut previous = 0.0;
        for (x, y) in points {
            steps.push((x, previous));
            steps.push((x, y));
            previous = y;
        }
        chart
            .draw_series(LineSeries::new(steps, color.stroke_width(width)))
            .map_err(plot_err)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)
}

/// Writes handshakes per second and p99 connect time against the burst size to `path`.
pub fn capacity_curve(report: &CapacityReport, path: &Path) -> Result<(), BenchError> {
    let rate: Vec<(f64, f64)> = report
        .points
        .iter()
        .map(|p| (p.dialers as f64, p.handshakes_per_second))
        .collect();
    let p99: Vec<(f64, f64)> = report
        .points
        .iter()
        .filter_map(|p| Some((p.dialers as f64, p.connect_ms?.p99)))
        .collect();
    let max_n = rate.iter().map(|(x, _)| *x).fold(1.0_f64, f64::max) * 1.2;
    let max_rate = rate.iter().map(|(_, y)| *y).fold(1.0_f64, f64::max) * 1.2;
    let max_ms = p99.iter().map(|(_, y)| *y).fold(1.0_f64, f64::max) * 1.2;
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Listener capacity: N dialers at once on one socket",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .right_y_label_area_size(60)
        .build_cartesian_2d((1.0..max_n).log_scale(), 0.0..max_rate)
        .map_err(plot_err)?
        .set_secondary_coord((1.0..max_n).log_scale(), 0.0..max_ms);
    chart
        .configure_mesh()
        .x_desc("dialers at once")
        .y_desc("handshakes per second")
        .draw()
        .map_err(plot_err)?;
    chart
        .configure_secondary_axes()
        .y_desc("p99 connect time, ms")
        .draw()
        .map_err(plot_err)?;
    let (blue, red) = (PALETTE[0], PALETTE[3]);
    chart
        .draw_series(LineSeries::new(rate.clone(), blue.stroke_width(2)))
        .map_err(plot_err)?
        .label("handshakes/s")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(2)));
    chart
        .draw_series(rate.into_iter().map(|p| Circle::new(p, 4, blue.filled())))
        .map_err(plot_err)?;
    chart
        .draw_secondary_series(LineSeries::new(p99.clone(), red.stroke_width(2)))
        .map_err(plot_err)?
        .label("p99 connect ms")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red.stroke_width(2)));
    chart
        .draw_secondary_series(p99.into_iter().map(|p| Circle::new(p, 4, red.filled())))
        .map_err(plot_err)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)
}
