//! `bench --plot`: throughput (GB/s) against input size (bytes, log scale) as an SVG chart,
//! one polyline per backend and mode, written whole through a temporary file.

use std::path::Path;

use super::report::Row;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const MARGIN: f64 = 60.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// The axes' ranges: log10 bytes from `x0` to `x1`, GB/s from 0 to `y1`.
struct Scale {
    x0: f64,
    x1: f64,
    y1: f64,
}

impl Scale {
    fn new(results: &[Row]) -> Self {
        let (x0, x1) = results
            .iter()
            .map(|r| r.bytes.log10())
            .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let (x0, x1) = if x1 - x0 < 1e-9 { (x0 - 0.5, x1 + 0.5) } else { (x0, x1) };
        let y1 = results.iter().map(Row::gb_per_s).fold(0.0, f64::max).max(1e-9) * 1.1;
        Self { x0, x1, y1 }
    }

    /// The x of `bytes` (plain, not its log).
    fn x(&self, bytes: f64) -> f64 {
        MARGIN + (bytes.log10() - self.x0) / (self.x1 - self.x0) * (WIDTH - 2.0 * MARGIN)
    }

    /// The y of `gb_per_s`.
    fn y(&self, gb_per_s: f64) -> f64 {
        HEIGHT - MARGIN - gb_per_s / self.y1 * (HEIGHT - 2.0 * MARGIN)
    }
}

/// Writes the chart of `results` to `path`.
pub fn write(path: &Path, results: &[Row], loss: &str) -> std::io::Result<()> {
    let scale = Scale::new(results);
    let mut svg = frame(loss);
    svg += &y_labels(&scale);
    svg += &x_ticks(&scale, results);
    svg += &lines(&scale, results);
    svg += "</svg>\n";
    // Written whole, via a temporary file, like the .npy outputs.
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, svg).and_then(|()| std::fs::rename(&tmp, path))
}

/// The header, title, axes and axis names.
fn frame(loss: &str) -> String {
    let (width, height, margin) = (WIDTH, HEIGHT, MARGIN);
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{margin}\" y=\"24\" font-size=\"14\">{loss}: throughput against input size</text>\n<line x1=\"{margin}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/>\n<line x1=\"{margin}\" y1=\"{margin}\" x2=\"{margin}\" y2=\"{b}\" stroke=\"black\"/>\n<text x=\"{cx}\" y=\"{bl}\" text-anchor=\"middle\">input bytes read (log scale)</text>\n<text x=\"16\" y=\"{cy}\" transform=\"rotate(-90 16 {cy})\" text-anchor=\"middle\">GB/s</text>\n",
        b = height - margin,
        r = width - margin,
        cx = width / 2.0,
        bl = height - 8.0,
        cy = height / 2.0,
    )
}

/// Five GB/s labels on the y axis.
fn y_labels(scale: &Scale) -> String {
    let mut svg = String::new();
    for i in 0..=4 {
        let v = scale.y1 * f64::from(i) / 4.0;
        svg += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{v:.1}</text>\n",
            MARGIN - 6.0,
            scale.y(v) + 4.0
        );
    }
    svg
}

/// One label per input size measured, alternating between two lines.
fn x_ticks(scale: &Scale, results: &[Row]) -> String {
    let mut ticks: Vec<f64> = results.iter().map(|r| r.bytes).collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    let mut svg = String::new();
    for (i, bytes) in ticks.iter().enumerate() {
        let label = if *bytes >= 1e6 {
            format!("{:.0} MB", bytes / 1e6)
        } else {
            format!("{:.0} kB", bytes / 1e3)
        };
        let y = HEIGHT - MARGIN + 16.0 + 12.0 * (i % 2) as f64;
        svg += &format!(
            "<text x=\"{:.1}\" y=\"{y}\" text-anchor=\"middle\">{label}</text>\n",
            scale.x(*bytes)
        );
    }
    svg
}

/// The rows grouped by backend and mode, in order of first appearance.
fn series(results: &[Row]) -> Vec<(String, Vec<&Row>)> {
    let mut series: Vec<(String, Vec<&Row>)> = Vec::new();
    for r in results {
        let name = format!("{} {}", r.backend, r.mode);
        match series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, rows)) => rows.push(r),
            None => series.push((name, vec![r])),
        }
    }
    for (_, rows) in &mut series {
        rows.sort_by(|a, b| a.bytes.total_cmp(&b.bytes));
    }
    series
}

/// Each series as a polyline with its points and its name.
fn lines(scale: &Scale, results: &[Row]) -> String {
    let mut svg = String::new();
    for (k, (name, rows)) in series(results).iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let points: Vec<String> = rows
            .iter()
            .map(|r| format!("{:.1},{:.1}", scale.x(r.bytes), scale.y(r.gb_per_s())))
            .collect();
        svg += &format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n",
            points.join(" ")
        );
        for r in rows {
            svg += &format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>\n",
                scale.x(r.bytes),
                scale.y(r.gb_per_s())
            );
        }
        svg += &format!(
            "<text x=\"{}\" y=\"{}\" fill=\"{color}\">{name}</text>\n",
            WIDTH - MARGIN - 140.0,
            MARGIN + 16.0 * k as f64
        );
    }
    svg
}
