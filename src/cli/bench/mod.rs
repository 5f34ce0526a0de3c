//! `wgpu-loss bench`, the main job: a loss on generated data (`data`), on the GPU (inputs
//! resident on the device, `resident`, and end-to-end with upload and readback) and on the
//! CPU (the fast backend, and the f64 reference). Every GPU and fast-CPU result is checked
//! against the reference (`check`) before it is timed (`timing`): a mismatch is an error,
//! not a row. The machine's single-thread memory-read bandwidth is measured in the same
//! run. Results are printed as a table or JSON (`report`) and optionally plotted (`svg`).
//!
//! Written once for every loss: the loss is a `Box<dyn Loss>` at its defaults, run with
//! `forward` on `Backend::Reference`, `Backend::Cpu` and `Backend::Gpu`, and recorded with
//! `encode` for the resident mode.

mod check;
mod data;
mod progress;
mod report;
mod resident;
mod svg;
mod timing;

use std::time::{Duration, Instant};

use wgpu_loss::{Backend, GpuContext, Loss, LossValue};

use super::args::{spelled, BenchArgs, LossName, Which};
use check::check;
use data::Generated;
use progress::Progress;
use report::{Report, Row};
use resident::Resident;
use timing::time;

/// The shapes run when none is given.
const DEFAULT_SHAPES: [(usize, usize); 5] = [
    (4096, 4096),
    (65536, 128),
    (16, 262_144),
    (2048, 32_000),
    (4_000_000, 10),
];

/// Runs `bench`.
pub fn run(args: BenchArgs) -> Result<(), String> {
    let shapes = match (args.rows, args.classes) {
        (Some(rows), Some(classes)) => vec![data::check_shape(rows, classes)?],
        _ => DEFAULT_SHAPES.to_vec(),
    };
    let ctx = context(&args)?;
    let adapter = ctx
        .as_ref()
        .map_or_else(|| "none".to_string(), |c| c.adapter_info().name.clone());
    let bandwidth = timing::read_bandwidth();
    let per_shape = if args.backend == Which::Both { 4 } else { 2 };
    let mut progress = Progress::new(shapes.len() * per_shape);
    let name = LossName::from(args.loss);
    let loss = name.default_loss();
    let mut results = Vec::new();
    for &(rows, classes) in &shapes {
        let shape = Shape::new(&args, &*loss, Generated::new(name, rows, classes));
        results.extend(shape.run(ctx.as_ref(), &mut progress)?);
    }
    progress.finish();
    let report = Report {
        results,
        loss: spelled(args.loss),
        bandwidth,
        adapter,
        repeat: args.repeat,
    };
    if args.json {
        report.print_json();
    } else {
        report.print_table();
    }
    if let Some(path) = &args.plot {
        svg::write(path, &report.results, &report.loss).map_err(|e| format!("--plot {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The GPU context (with the strategy forced, if asked), unless only the CPU is timed.
fn context(args: &BenchArgs) -> Result<Option<GpuContext>, String> {
    if args.backend == Which::Cpu {
        return Ok(None);
    }
    let ctx = crate::cli::device::gpu_context()?;
    Ok(Some(match args.strategy.forced() {
        Some(strategy) => ctx.with_strategy(strategy),
        None => ctx,
    }))
}

/// One shape's measurements: the loss, its generated data, and how they are timed.
struct Shape<'a> {
    loss: &'a dyn Loss,
    data: Generated,
    which: Which,
    repeat: u32,
    /// `ROWSxCLASSES`, as errors and progress name it.
    label: String,
    bytes: f64,
}

impl<'a> Shape<'a> {
    fn new(args: &BenchArgs, loss: &'a dyn Loss, data: Generated) -> Self {
        Self {
            loss,
            label: format!("{}x{}", data.rows, data.classes),
            bytes: data.bytes_read() as f64,
            data,
            which: args.backend,
            repeat: args.repeat,
        }
    }

    /// The loss's values on `backend`.
    fn values(&self, backend: Backend<'_>) -> Result<Vec<f32>, String> {
        let value = self
            .loss
            .forward(backend, &self.data.batch())
            .map_err(|e| e.to_string())?;
        Ok(value.values().to_vec())
    }

    fn row(&self, backend: &'static str, mode: &'static str, median: Duration, err: f64) -> Row {
        Row {
            rows: self.data.rows,
            classes: self.data.classes,
            backend,
            mode,
            median,
            bytes: self.bytes,
            max_abs_err: Some(err),
        }
    }

    /// The reference (run once, to check the others), then the rows of each side timed.
    fn run(&self, ctx: Option<&GpuContext>, progress: &mut Progress) -> Result<Vec<Row>, String> {
        progress.step(&format!("{} reference", self.label));
        let start = Instant::now();
        let reference = self
            .loss
            .forward(Backend::Reference, &self.data.batch())
            .map_err(|e| e.to_string())?;
        let want = reference.values().to_vec();
        let reference_time = start.elapsed();
        let mut rows = Vec::new();
        if self.which != Which::Gpu {
            rows.extend(self.cpu(&want, reference_time, progress)?);
        }
        if let Some(ctx) = ctx {
            rows.extend(self.gpu(ctx, &reference, progress)?);
        }
        Ok(rows)
    }

    /// The f64 reference and the fast CPU backend, end-to-end.
    fn cpu(&self, want: &[f32], reference_time: Duration, progress: &mut Progress) -> Result<Vec<Row>, String> {
        let t = if self.repeat == 1 {
            reference_time
        } else {
            time(self.repeat, || self.values(Backend::Reference))?
        };
        let mut rows = vec![self.row("cpu-reference", "end-to-end", t, 0.0)];
        progress.step(&format!("{} cpu fast", self.label));
        let err = check("fast CPU", &self.label, &self.values(Backend::Cpu)?, want)?;
        let t = time(self.repeat, || self.values(Backend::Cpu))?;
        rows.push(self.row("cpu", "end-to-end", t, err));
        Ok(rows)
    }

    /// The GPU with the inputs resident, then end-to-end (upload, compute, readback).
    fn gpu(&self, ctx: &GpuContext, reference: &LossValue, progress: &mut Progress) -> Result<Vec<Row>, String> {
        progress.step(&format!("{} gpu resident", self.label));
        let resident = Resident::new(ctx, self.loss, &self.data, reference);
        let err = check("GPU (resident)", &self.label, &resident.run(true)?, reference.values())?;
        let t = time(self.repeat, || resident.run(false))?;
        let mut rows = vec![self.row("gpu", "resident", t, err)];
        progress.step(&format!("{} gpu end-to-end", self.label));
        let gpu = Backend::Gpu(ctx);
        let err = check("GPU (end-to-end)", &self.label, &self.values(gpu)?, reference.values())?;
        let t = time(self.repeat, || self.values(gpu))?;
        rows.push(self.row("gpu", "end-to-end", t, err));
        Ok(rows)
    }
}
