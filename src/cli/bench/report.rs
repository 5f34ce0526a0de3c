//! The results of `bench`: one row per shape, backend and mode, printed as a table or as
//! one JSON array.

use std::time::Duration;

/// One timed result.
pub struct Row {
    /// The shape as a label (`4096x4096`, `8x21x512x512`).
    pub shape: String,
    /// Positions and classes of the shape.
    pub rows: usize,
    pub classes: usize,
    pub backend: &'static str,
    pub mode: &'static str,
    pub median: Duration,
    pub bytes: f64,
    pub max_abs_err: Option<f64>,
    /// The ceiling that applies to this row's side and mode, GB/s (measured in this run).
    pub ceiling: f64,
    /// GB/s of the loss's loads alone on this shape (GPU cross-entropy forward).
    pub loads_only: Option<f64>,
    /// The least time this side's exp and log rates allow for the call's math.
    pub math_bound: Option<Duration>,
}

impl Row {
    pub fn gb_per_s(&self) -> f64 {
        self.bytes / self.median.as_secs_f64() / 1e9
    }

    /// The share of the ceiling reached, 0..1 (about).
    pub fn fraction_of_ceiling(&self) -> f64 {
        self.gb_per_s() / self.ceiling
    }
}

/// Every row of a run, and what they were measured on.
pub struct Report {
    pub results: Vec<Row>,
    /// The loss, as spelled on the command line.
    pub loss: String,
    /// Single-thread memory-read bandwidth, GB/s.
    pub bandwidth: f64,
    pub adapter: String,
    pub repeat: u32,
    /// Forward + backward rather than the forward alone.
    pub grad: bool,
}

impl Report {
    pub fn print_table(&self) {
        let (loss, adapter, bandwidth, repeat) = (&self.loss, &self.adapter, self.bandwidth, self.repeat);
        let what = if self.grad { "forward + backward" } else { "forward" };
        println!("{loss} {what}, reduction mean, generated data; median of {repeat} runs; adapter: {adapter}");
        println!("single-thread memory-read bandwidth (sum over 256 MiB, this run): {bandwidth:.2} GB/s");
        println!(
            "ceilings at each shape's bytes, this run: GPU = the adapter's read kernel (its copy kernel where a tensor the size of the input is written), CPU = the host's read with all threads"
        );
        println!(
            "loads %: the loss's loads alone (no math) on the shape, % of the ceiling; math ms: the least time the side's exp and log rates (measured in this run) allow for the call's exps and logs"
        );
        println!(
            "{:>16}  {:<14} {:<11} {:>10} {:>8} {:>8} {:>7} {:>8} {:>8} {:>9} {:>10}",
            "shape",
            "backend",
            "mode",
            "median ms",
            "GB/s",
            "ceiling",
            "% ceil",
            "loads %",
            "math ms",
            "gpu/cpu",
            "max |err|"
        );
        for r in &self.results {
            let err = r.max_abs_err.map_or("-".into(), |e| format!("{e:.1e}"));
            let loads = r
                .loads_only
                .map_or("-".into(), |l| format!("{:.0}%", 100.0 * l / r.ceiling));
            let math = r
                .math_bound
                .map_or("-".into(), |t| format!("{:.1}", t.as_secs_f64() * 1e3));
            println!(
                "{:>16}  {:<14} {:<11} {:>10.2} {:>8.2} {:>8.2} {:>6.0}% {:>8} {:>8} {:>9} {:>10}",
                r.shape,
                r.backend,
                r.mode,
                r.median.as_secs_f64() * 1e3,
                r.gb_per_s(),
                r.ceiling,
                100.0 * r.fraction_of_ceiling(),
                loads,
                math,
                self.speedup(r),
                err
            );
        }
    }

    /// A GPU row's speed-up over the fast CPU on its shape, or `-`.
    fn speedup(&self, r: &Row) -> String {
        let cpu = self.results.iter().find(|c| c.shape == r.shape && c.backend == "cpu");
        match (r.backend, cpu) {
            ("gpu", Some(c)) => format!("{:.2}x", c.median.as_secs_f64() / r.median.as_secs_f64()),
            _ => "-".into(),
        }
    }

    pub fn print_json(&self) {
        let escape = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let objects: Vec<String> = self
            .results
            .iter()
            .map(|r| {
                let err = r.max_abs_err.map_or("null".into(), |e| format!("{e:e}"));
                let loads = r.loads_only.map_or("null".into(), |l| format!("{l:.4}"));
                let math = r.math_bound.map_or("null".into(), |t| format!("{:.4}", t.as_secs_f64() * 1e3));
                format!(
                    "{{\"loss\":\"{}\",\"shape\":[{}],\"rows\":{},\"classes\":{},\"backend\":\"{}\",\"mode\":\"{}\",\"grad\":{},\"median_ms\":{:.4},\"gb_per_s\":{:.4},\"read_bandwidth_gb_per_s\":{:.4},\"ceiling_gb_per_s\":{:.4},\"fraction_of_ceiling\":{:.4},\"loads_only_gb_per_s\":{},\"math_bound_ms\":{},\"adapter\":\"{}\",\"max_abs_err\":{}}}",
                    escape(&self.loss),
                    r.shape.replace('x', ","),
                    r.rows,
                    r.classes,
                    r.backend,
                    r.mode,
                    self.grad,
                    r.median.as_secs_f64() * 1e3,
                    r.gb_per_s(),
                    self.bandwidth,
                    r.ceiling,
                    r.fraction_of_ceiling(),
                    loads,
                    math,
                    escape(&self.adapter),
                    err
                )
            })
            .collect();
        println!("[{}]", objects.join(","));
    }
}
