//! Latency distributions as an SVG chart: one empirical CDF per architecture on a log-scaled
//! latency axis (0.1 ms loopback and 100 ms Lambda cold paths fit on one chart).
//!
//! plotters' SVG backend writes text as SVG `<text>` elements and sizes it with built-in
//! metrics, so nothing reads font files or the network: it renders the same anywhere.

use plotters::prelude::*;

use crate::error::Error;

/// At most this many points per line: a 100 000-sample CDF looks the same with 400 and the SVG
/// stays small.
const MAX_POINTS: usize = 400;

/// `(latency, fraction ≤ latency)` points of the empirical CDF, thinned evenly by rank and always
/// keeping the minimum and the maximum.
pub fn cdf_points(samples_ms: &[f64]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<f64> = samples_ms.iter().copied().filter(|v| v.is_finite() && *v > 0.0).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let step = n.div_ceil(MAX_POINTS).max(1);
    let mut points: Vec<(f64, f64)> =
        (0..n).step_by(step).map(|i| (sorted[i], (i + 1) as f64 / n as f64)).collect();
    if points.last().map(|p| p.1) != Some(1.0) {
        points.push((sorted[n - 1], 1.0));
    }
    points
}

/// The CDF of a load run's histogram through its percentiles — (min, 0), (p50, 0.5), (p90,
/// 0.9), (p95, 0.95), (p99, 0.99), (p99.9, 0.999), (max, 1) — for a line joining them: exact
/// at those points (to the histogram's three significant figures), straight in between.
pub fn percentile_points(trend: &probe::load::Trend) -> Vec<(f64, f64)> {
    let t = trend;
    let known = [(t.min, 0.0), (t.med, 0.5), (t.p90, 0.9), (t.p95, 0.95), (t.p99, 0.99), (t.p999, 0.999)];
    let mut points: Vec<(f64, f64)> = known.into_iter().filter(|(v, _)| v.is_finite() && *v > 0.0).collect();
    if t.max.is_finite() && t.max > 0.0 {
        points.push((t.max, 1.0));
    }
    // Percentiles never fall as the fraction rises; guard the line against rounding anyway.
    let mut highest = 0.0_f64;
    for point in &mut points {
        highest = highest.max(point.0);
        point.0 = highest;
    }
    points
}

/// Renders the CDF chart as an SVG document: one line per `(label, points)`, the points
/// `(latency, fraction ≤ latency)` with rising latencies ([`cdf_points`] of samples, or
/// [`percentile_points`] of a histogram); lines without points are left out.
pub fn cdf_svg(title: &str, lines: Vec<(&str, Vec<(f64, f64)>)>) -> Result<String, Error> {
    let lines: Vec<(&str, Vec<(f64, f64)>)> = lines.into_iter().filter(|(_, p)| !p.is_empty()).collect();
    if lines.is_empty() {
        return Err(Error::Invalid("no successful requests to chart".into()));
    }
    let (lo, hi) = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    // Whole decades around the data, so the log axis has readable ticks.
    let x_min = 10f64.powf(lo.log10().floor());
    let x_max = 10f64.powf(hi.log10().ceil()).max(x_min * 10.0);

    let mut svg = String::new();
    {
        let height = 420 + 22 * lines.len() as u32;
        let root = SVGBackend::with_string(&mut svg, (900, height)).into_drawing_area();
        let chart_error = |err: &dyn std::fmt::Display| Error::Invalid(format!("chart: {err}"));
        root.fill(&WHITE).map_err(|e| chart_error(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d((x_min..x_max).log_scale(), 0.0..1.0)
            .map_err(|e| chart_error(&e))?;
        chart
            .configure_mesh()
            .x_desc("latency (ms, log scale)")
            .y_desc("fraction of requests ≤ latency")
            .x_label_formatter(&|v| format_ms(*v))
            .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .draw()
            .map_err(|e| chart_error(&e))?;
        for (i, (label, points)) in lines.into_iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| chart_error(&e))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| chart_error(&e))?;
        root.present().map_err(|e| chart_error(&e))?;
    }
    Ok(svg)
}

/// One memory size on the memory sweep's chart.
pub struct MemoryPoint {
    pub label: String,
    pub p90_ms: f64,
    pub usd_per_million: f64,
}

/// The memory sweep's chart, power-tuning style: cost per 1M calls against p90 duration, one
/// labelled point per size, joined in memory order (the curve a bigger size moves along).
pub fn memory_svg(title: &str, points: &[MemoryPoint]) -> Result<String, Error> {
    let points: Vec<&MemoryPoint> =
        points.iter().filter(|p| p.p90_ms.is_finite() && p.usd_per_million.is_finite()).collect();
    if points.is_empty() {
        return Err(Error::Invalid("no memory size with figures to chart".into()));
    }
    let padded = |values: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let pad = ((hi - lo) * 0.12).max(hi.abs() * 0.02).max(1e-9);
        ((lo - pad).max(0.0), hi + pad * 2.5)
    };
    let (x_min, x_max) = padded(&mut points.iter().map(|p| p.p90_ms));
    let (y_min, y_max) = padded(&mut points.iter().map(|p| p.usd_per_million));

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 560)).into_drawing_area();
        let chart_error = |err: &dyn std::fmt::Display| Error::Invalid(format!("chart: {err}"));
        root.fill(&WHITE).map_err(|e| chart_error(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(76)
            .build_cartesian_2d(x_min..x_max, y_min..y_max)
            .map_err(|e| chart_error(&e))?;
        chart
            .configure_mesh()
            .x_desc("p90 duration (ms)")
            .y_desc("$ per 1M calls (Lambda requests + GB-s)")
            .x_label_formatter(&|v| format!("{v:.2}"))
            .y_label_formatter(&|v| format!("${v:.4}"))
            .draw()
            .map_err(|e| chart_error(&e))?;
        let line = Palette99::pick(0).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.p90_ms, p.usd_per_million)),
                line.mix(0.5).stroke_width(1),
            ))
            .map_err(|e| chart_error(&e))?;
        chart
            .draw_series(points.iter().enumerate().map(|(i, p)| {
                // Above and below in turn: neighbouring sizes often sit close together.
                let dy = if i % 2 == 0 { -18 } else { 6 };
                EmptyElement::at((p.p90_ms, p.usd_per_million))
                    + Circle::new((0, 0), 5, line.filled())
                    + Text::new(p.label.clone(), (8, dy), ("sans-serif", 14))
            }))
            .map_err(|e| chart_error(&e))?;
        root.present().map_err(|e| chart_error(&e))?;
    }
    Ok(svg)
}

/// A latency figure of one second of a load run, and a count.
type Latency = fn(&probe::load::Second) -> Option<f64>;
type Count = fn(&probe::load::Second) -> u64;

/// A load run's timeline: p50 and p99 latency per second (log scale, left) and requests and
/// failures per second (right). A backlog shows as a rising latency line; a stall as a gap in
/// requests and a spike in p99.
pub fn timeline_svg(title: &str, seconds: &[probe::load::Second]) -> Result<String, Error> {
    let latencies: Vec<f64> = seconds
        .iter()
        .flat_map(|s| [s.p50_ms, s.p99_ms])
        .flatten()
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    if latencies.is_empty() {
        return Err(Error::Invalid("no answered requests to chart".into()));
    }
    let (lo, hi) = latencies.iter().fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let y_min = 10f64.powf(lo.log10().floor());
    let y_max = 10f64.powf(hi.log10().ceil()).max(y_min * 10.0);
    let x_max = seconds.last().map_or(1, |s| s.t + 1) as f64;
    let rate_max = seconds.iter().map(|s| s.requests).max().unwrap_or(1).max(1) as f64 * 1.15;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 480)).into_drawing_area();
        let chart_error = |err: &dyn std::fmt::Display| Error::Invalid(format!("chart: {err}"));
        root.fill(&WHITE).map_err(|e| chart_error(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .right_y_label_area_size(64)
            .build_cartesian_2d(0.0..x_max, (y_min..y_max).log_scale())
            .map_err(|e| chart_error(&e))?
            .set_secondary_coord(0.0..x_max, 0.0..rate_max);
        chart
            .configure_mesh()
            .x_desc("seconds from the start")
            .y_desc("latency (ms, log scale)")
            .y_label_formatter(&|v| format_ms(*v))
            .draw()
            .map_err(|e| chart_error(&e))?;
        chart
            .configure_secondary_axes()
            .y_desc("requests per second")
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| chart_error(&e))?;
        let centre = |s: &probe::load::Second| s.t as f64 + 0.5;
        let lines: [(&str, Latency, usize); 2] = [("p50", |s| s.p50_ms, 0), ("p99", |s| s.p99_ms, 1)];
        for (label, value, colour) in lines {
            let color = Palette99::pick(colour).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    seconds.iter().filter_map(|s| value(s).map(|v| (centre(s), v))),
                    color.stroke_width(2),
                ))
                .map_err(|e| chart_error(&e))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        let counts: [(&str, Count, RGBAColor); 2] =
            [("requests/s", |s| s.requests, BLACK.mix(0.35)), ("failed/s", |s| s.failed, RED.mix(0.8))];
        for (label, value, color) in counts {
            chart
                .draw_secondary_series(LineSeries::new(
                    seconds.iter().map(|s| (centre(s), value(s) as f64)),
                    color.stroke_width(1),
                ))
                .map_err(|e| chart_error(&e))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(1)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| chart_error(&e))?;
        root.present().map_err(|e| chart_error(&e))?;
    }
    Ok(svg)
}

/// At most this many dots on the latency-over-time chart (every n-th by send time, and the
/// slowest item always): the shape of 20 000 items shows as well with 4 000.
const MAX_DOTS: usize = 4000;

/// Every n-th point, at most [`MAX_DOTS`], and the slowest one whatever its rank.
fn thin_dots(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let step = points.len().div_ceil(MAX_DOTS).max(1);
    let slowest = points.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1));
    let mut dots: Vec<(f64, f64)> = points.iter().copied().step_by(step).collect();
    dots.extend(slowest.filter(|s| !dots.contains(s)));
    dots
}

/// Latency against send time, one dot per item: `points` are `(seconds from the start, ms)`
/// sorted by send time; a vertical line marks `load_end_s`, when the last request was sent. A
/// pipeline that keeps up is a flat band; a backlog is a slope (each item waits behind more).
pub fn latency_over_time_svg(title: &str, points: &[(f64, f64)], load_end_s: f64) -> Result<String, Error> {
    let points: Vec<(f64, f64)> =
        points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    if points.is_empty() {
        return Err(Error::Invalid("no items to chart".into()));
    }
    let dots = thin_dots(&points);
    let x_lo = points.iter().map(|p| p.0).fold(0.0_f64, f64::min);
    let x_hi = points.iter().map(|p| p.0).fold(load_end_s.max(1.0), f64::max) * 1.02;
    let y_lo = points.iter().map(|p| p.1).fold(0.0_f64, f64::min);
    let y_hi = points.iter().map(|p| p.1).fold(1.0_f64, f64::max) * 1.08;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 480)).into_drawing_area();
        let chart_error = |err: &dyn std::fmt::Display| Error::Invalid(format!("chart: {err}"));
        root.fill(&WHITE).map_err(|e| chart_error(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
            .map_err(|e| chart_error(&e))?;
        chart
            .configure_mesh()
            .x_desc("send time (seconds from the start)")
            .y_desc("end-to-end latency (ms)")
            .y_label_formatter(&|v| format_ms(*v))
            .draw()
            .map_err(|e| chart_error(&e))?;
        let color = Palette99::pick(0).to_rgba();
        chart
            .draw_series(dots.iter().map(|&p| Circle::new(p, 2, color.mix(0.5).filled())))
            .map_err(|e| chart_error(&e))?
            .label("items")
            .legend(move |(x, y)| Circle::new((x + 9, y), 3, color.filled()));
        chart
            .draw_series(LineSeries::new(
                [(load_end_s, y_lo), (load_end_s, y_hi)],
                BLACK.mix(0.5).stroke_width(1),
            ))
            .map_err(|e| chart_error(&e))?
            .label("last request")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.5).stroke_width(1)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| chart_error(&e))?;
        root.present().map_err(|e| chart_error(&e))?;
    }
    Ok(svg)
}

fn format_ms(v: f64) -> String {
    if v >= 1.0 { format!("{v:.0}") } else { format!("{v}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_points_end_at_the_maximum_with_fraction_one() {
        let samples: Vec<f64> = (1..=1000).map(f64::from).collect();
        let points = cdf_points(&samples);
        assert!(points.len() <= MAX_POINTS + 1);
        assert_eq!(points.first(), Some(&(1.0, 0.001)));
        assert_eq!(points.last(), Some(&(1000.0, 1.0)));
        assert!(points.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
    }

    #[test]
    fn cdf_points_ignore_values_a_log_axis_cannot_show() {
        assert_eq!(cdf_points(&[0.0, f64::NAN, 2.0]), vec![(2.0, 1.0)]);
        assert!(cdf_points(&[]).is_empty());
    }

    #[test]
    fn a_load_runs_percentiles_make_a_rising_cdf_that_ends_at_its_maximum() {
        let trend = probe::load::Trend {
            count: 1000,
            min: 0.2,
            avg: 1.1,
            med: 1.0,
            p90: 2.0,
            p95: 3.0,
            p99: 8.0,
            p999: 8.0,
            max: 40.0,
        };
        assert_eq!(
            percentile_points(&trend),
            vec![(0.2, 0.0), (1.0, 0.5), (2.0, 0.9), (3.0, 0.95), (8.0, 0.99), (8.0, 0.999), (40.0, 1.0)]
        );
        let svg = cdf_svg("t", vec![("load run", percentile_points(&trend)), ("empty", Vec::new())])
            .expect("renders");
        assert!(svg.contains("load run") && !svg.contains("empty"));
    }

    #[test]
    fn the_chart_is_an_svg_with_one_labelled_line_per_series() {
        let fast: Vec<f64> = (1..=500).map(|i| 0.1 + f64::from(i) / 1000.0).collect();
        let slow: Vec<f64> = (1..=500).map(|i| 20.0 + f64::from(i) / 10.0).collect();
        let svg = cdf_svg(
            "hits latency",
            vec![("hits-server memory", cdf_points(&fast)), ("lambda", cdf_points(&slow))],
        )
        .expect("renders");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.contains("\nhits-server memory\n") && svg.contains("\nlambda\n"));
        assert!(svg.matches("<polyline").count() >= 2);
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn the_memory_chart_has_a_labelled_point_per_size() {
        let points: Vec<MemoryPoint> = [(128, 9.5, 0.2021), (512, 2.5, 0.2032), (1769, 1.1, 0.2071)]
            .into_iter()
            .map(|(mb, p90_ms, usd_per_million)| MemoryPoint {
                label: format!("{mb} MB"),
                p90_ms,
                usd_per_million,
            })
            .collect();
        let svg = memory_svg("memory", &points).expect("renders");
        assert!(svg.starts_with("<svg"));
        for label in ["128 MB", "512 MB", "1769 MB"] {
            assert!(svg.contains(label), "no {label} in the chart");
        }
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(!svg.contains("NaN"));
        // One size alone still makes a chart (a range around the point).
        assert!(memory_svg("one", &points[..1]).is_ok());
        assert!(memory_svg("none", &[]).is_err());
    }

    #[test]
    fn the_timeline_shows_latency_and_rate_per_second() {
        let seconds: Vec<probe::load::Second> = (0..10)
            .map(|t| probe::load::Second {
                t,
                requests: 100 + t,
                failed: u64::from(t == 5),
                p50_ms: Some(1.0 + t as f64),
                p99_ms: (t != 3).then_some(20.0),
                max_ms: Some(25.0),
            })
            .collect();
        let svg = timeline_svg("load", &seconds).expect("renders");
        assert!(svg.starts_with("<svg"));
        for label in ["p50", "p99", "requests/s", "failed/s"] {
            assert!(svg.contains(label), "no {label}");
        }
        assert!(!svg.contains("NaN"));
        assert!(timeline_svg("empty", &[]).is_err());
    }

    #[test]
    fn latency_over_time_has_a_dot_per_item_up_to_a_cap_and_keeps_the_slowest() {
        let points: Vec<(f64, f64)> =
            (0..10_000).map(|i| (f64::from(i) / 100.0, 20.0 + f64::from(i % 7))).collect();
        let mut with_outlier = points.clone();
        with_outlier[4321].1 = 5000.0;
        let svg = latency_over_time_svg("pipeline", &with_outlier, 100.0).expect("renders");
        assert!(svg.starts_with("<svg") && svg.contains("last request"));
        let dots = svg.matches("<circle").count();
        assert!(dots <= MAX_DOTS + 2 && dots > MAX_DOTS / 2, "{dots} dots");
        let thinned = thin_dots(&with_outlier);
        assert!(
            thinned.len() <= MAX_DOTS + 1 && thinned.contains(&(43.21, 5000.0)),
            "the slowest item is kept"
        );
        let few = latency_over_time_svg("few", &points[..3], 1.0).expect("renders");
        assert_eq!(few.matches("<circle").count(), 3 + 1, "three items and the legend's dot");
        assert!(latency_over_time_svg("none", &[], 1.0).is_err());
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn a_chart_without_samples_is_an_error_not_an_empty_picture() {
        assert!(cdf_svg("empty", vec![("none", cdf_points(&[]))]).is_err());
    }
}
