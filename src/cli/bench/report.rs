//! The results of `bench`: one row per shape, backend and mode, printed as a table or as
//! one JSON array.

use std::time::Duration;

/// One timed result.
pub struct Row {
    pub rows: usize,
    pub classes: usize,
    pub backend: &'static str,
    pub mode: &'static str,
    pub median: Duration,
    pub bytes: f64,
    pub max_abs_err: Option<f64>,
}

impl Row {
    pub fn gb_per_s(&self) -> f64 {
        self.bytes / self.median.as_secs_f64() / 1e9
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
}

impl Report {
    pub fn print_table(&self) {
        let (loss, adapter, bandwidth, repeat) = (&self.loss, &self.adapter, self.bandwidth, self.repeat);
        println!("{loss}, reduction mean, generated data; median of {repeat} runs; adapter: {adapter}");
        println!("single-thread memory-read bandwidth (sum over 256 MiB, this run): {bandwidth:.2} GB/s");
        println!(
            "{:>16}  {:<14} {:<11} {:>10} {:>8} {:>7} {:>9} {:>10}",
            "shape", "backend", "mode", "median ms", "GB/s", "% read", "gpu/cpu", "max |err|"
        );
        for r in &self.results {
            let err = r.max_abs_err.map_or("-".into(), |e| format!("{e:.1e}"));
            println!(
                "{:>16}  {:<14} {:<11} {:>10.2} {:>8.2} {:>6.0}% {:>9} {:>10}",
                format!("{}x{}", r.rows, r.classes),
                r.backend,
                r.mode,
                r.median.as_secs_f64() * 1e3,
                r.gb_per_s(),
                100.0 * r.gb_per_s() / bandwidth,
                self.speedup(r),
                err
            );
        }
    }

    /// A GPU row's speed-up over the fast CPU on its shape, or `-`.
    fn speedup(&self, r: &Row) -> String {
        let cpu = self
            .results
            .iter()
            .find(|c| c.rows == r.rows && c.classes == r.classes && c.backend == "cpu");
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
                format!(
                    "{{\"loss\":\"{}\",\"rows\":{},\"classes\":{},\"backend\":\"{}\",\"mode\":\"{}\",\"median_ms\":{:.4},\"gb_per_s\":{:.4},\"read_bandwidth_gb_per_s\":{:.4},\"adapter\":\"{}\",\"max_abs_err\":{}}}",
                    escape(&self.loss),
                    r.rows,
                    r.classes,
                    r.backend,
                    r.mode,
                    r.median.as_secs_f64() * 1e3,
                    r.gb_per_s(),
                    self.bandwidth,
                    escape(&self.adapter),
                    err
                )
            })
            .collect();
        println!("[{}]", objects.join(","));
    }
}
