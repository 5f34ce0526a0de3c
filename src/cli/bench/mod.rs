//! `wgpu-loss bench`, the main job: a loss on generated data (`data`), on the GPU (inputs
//! resident on the device, `resident`, and end-to-end with upload and readback) and on the
//! CPU (the fast backend, and the f64 reference). Every GPU and fast-CPU result is checked
//! against the reference (`check`) before it is timed (`timing`): a mismatch is an error,
//! not a row. Each row is stated against the ceiling of the side it ran on, measured in the
//! same run at the shape's byte count (`wgpu_loss::ceiling`: the adapter's streaming read,
//! or its copy with `--grad`; the host's read with every thread), and the machine's
//! single-thread read bandwidth is kept beside them. Results are printed as a table or
//! JSON (`report`) and optionally plotted (`svg`).
//!
//! Written once for every loss: the loss is a `Box<dyn Loss>` at its defaults, run with
//! `forward` on `Backend::Reference`, `Backend::Cpu` and `Backend::Gpu`, and recorded with
//! `encode` for the resident mode.

mod check;
mod data;
mod linear;
mod progress;
mod report;
mod resident;
mod svg;
mod timing;

use std::time::{Duration, Instant};

use wgpu_loss::{ceiling, Backend, GpuContext, Loss, LossValue, Upstream};

use super::args::{spelled, BenchArgs, BenchLoss, LossName, Which};
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
    if args.loss == BenchLoss::LinearCrossEntropy {
        return linear::run(&args);
    }
    if args.hidden.is_some() || args.tile_bytes.is_some() {
        return Err("--hidden and --tile-bytes apply only to --loss linear-cross-entropy".into());
    }
    let name = LossName::from(args.loss);
    let shapes = match (&args.shape, args.rows, args.classes) {
        (Some(shape), _, _) => vec![data::check_any_shape(shape, name)?],
        (None, Some(rows), Some(classes)) => vec![data::check_shape(rows, classes)?],
        _ => DEFAULT_SHAPES
            .iter()
            .map(|&(rows, classes)| vec![rows, classes])
            .collect(),
    };
    let ctx = context(&args)?;
    let adapter = ctx
        .as_ref()
        .map_or_else(|| "none".to_string(), |c| c.adapter_info().name.clone());
    let bandwidth = timing::read_bandwidth();
    let per_shape = if args.backend == Which::Both { 4 } else { 2 };
    let mut progress = Progress::new(shapes.len() * (per_shape + 1));
    let loss = name.default_loss();
    let mut results = Vec::new();
    let rates = MathRates::measure(ctx.as_ref())?;
    for dims in shapes {
        let mut shape = Shape::new(&args, &*loss, Generated::new(name, dims));
        progress.step(&format!("{} ceilings", shape.label));
        shape.ceilings = Ceilings::measure(ctx.as_ref(), &shape, args.loss, rates)?;
        results.extend(shape.run(ctx.as_ref(), &mut progress)?);
    }
    progress.finish();
    let report = Report {
        results,
        loss: spelled(args.loss),
        bandwidth,
        adapter,
        repeat: args.repeat,
        grad: args.grad,
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

/// The ceilings of one shape's byte count, GB/s: the adapter's (streaming read, or copy for
/// forward + backward) and the host's read with every thread; and why a loss may stay
/// below them: its loads alone on the adapter, and the least time each side's exp and log
/// rates allow for the call's math.
#[derive(Clone, Copy, Default)]
struct Ceilings {
    gpu: f64,
    host: f64,
    /// GB/s of the cross-entropy forward's loads alone on this shape (`ceiling::gpu_loss_loads`).
    gpu_loads: Option<f64>,
    /// Seconds the call's exps and logs take at least on the adapter and on the host.
    gpu_math: Option<f64>,
    host_math: Option<f64>,
}

/// Each side's (exp, log) rates (10^9 per second), measured once per run.
#[derive(Clone, Copy)]
struct MathRates {
    gpu: Option<(f64, f64)>,
    host: (f64, f64),
}

impl MathRates {
    fn measure(ctx: Option<&GpuContext>) -> Result<Self, String> {
        let gpu = ctx
            .map(|ctx| Ok::<_, wgpu_loss::LossError>((ceiling::gpu_exp_rate(ctx)?, ceiling::gpu_log_rate(ctx)?)))
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            gpu,
            host: (ceiling::host_exp_rate(), ceiling::host_log_rate()),
        })
    }
}

/// (exps, logs) per input element of a timed call, as the kernels compute them: the
/// forward's, plus the backward's with `grad` (the softmax family's timed `--grad` call is
/// its VJP alone, which reads each row three times); `None` for a loss without either.
fn math_per_element(loss: BenchLoss, grad: bool) -> Option<(f64, f64)> {
    let (forward, with_grad) = match loss {
        BenchLoss::CrossEntropy => ((1.0, 0.0), (2.0, 0.0)),
        BenchLoss::LogSoftmax => ((1.0, 0.0), (2.0, 0.0)),
        BenchLoss::Softmax | BenchLoss::Entropy => ((2.0, 0.0), (3.0, 0.0)),
        BenchLoss::Bce => ((0.0, 2.0), (0.0, 2.0)),
        BenchLoss::BceWithLogits => ((1.0, 1.0), (2.0, 1.0)),
        BenchLoss::KlDiv => ((0.0, 1.0), (0.0, 1.0)),
        BenchLoss::Nll | BenchLoss::Mse | BenchLoss::LinearCrossEntropy => return None,
    };
    Some(if grad { with_grad } else { forward })
}

/// Seconds `count` elements' math takes at `(exp, log)` rates.
fn math_seconds((exps, logs): (f64, f64), count: f64, (exp_rate, log_rate): (f64, f64)) -> f64 {
    count * (exps / exp_rate + logs / log_rate) / 1e9
}

impl Ceilings {
    /// At `bytes` of traffic: the adapter's copy when the call `writes` a tensor as large as
    /// its input (half the traffic each way), else its read.
    fn measure(ctx: Option<&GpuContext>, shape: &Shape<'_>, loss: BenchLoss, rates: MathRates) -> Result<Self, String> {
        let bytes = shape.bytes as u64;
        let (rows, classes) = (shape.data.rows as u64, shape.data.classes as u64);
        let gpu = match ctx {
            Some(ctx) if shape.writes => ceiling::gpu_copy(ctx, bytes),
            Some(ctx) => ceiling::gpu_read(ctx, bytes),
            None => Ok(f64::NAN),
        };
        let gpu_loads = match ctx {
            Some(ctx) if loss == BenchLoss::CrossEntropy && !shape.writes => {
                Some(ceiling::gpu_loss_loads(ctx, rows, classes).map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        let math = math_per_element(loss, shape.grad);
        let count = (rows * classes) as f64;
        Ok(Self {
            gpu: gpu.map_err(|e| e.to_string())?,
            host: ceiling::host_read(bytes as usize),
            gpu_loads,
            gpu_math: math.zip(rates.gpu).map(|(m, r)| math_seconds(m, count, r)),
            host_math: math.map(|m| math_seconds(m, count, rates.host)),
        })
    }
}

/// One shape's measurements: the loss, its generated data, and how they are timed.
struct Shape<'a> {
    loss: &'a dyn Loss,
    data: Generated,
    which: Which,
    repeat: u32,
    /// Forward + backward (`--grad`) rather than the forward alone.
    grad: bool,
    /// `ROWSxCLASSES`, as errors and progress name it.
    label: String,
    /// Bytes a call moves (read, and written when `writes`).
    bytes: f64,
    /// The call writes a tensor the size of its input: the gradient (`grad`), or the
    /// output of a softmax / log-softmax.
    writes: bool,
    ceilings: Ceilings,
}

impl<'a> Shape<'a> {
    fn new(args: &BenchArgs, loss: &'a dyn Loss, data: Generated) -> Self {
        let tensor_out = matches!(args.loss, BenchLoss::Softmax | BenchLoss::LogSoftmax);
        Self {
            loss,
            label: data.label(),
            bytes: data.bytes_moved(args.grad, tensor_out) as f64,
            writes: args.grad || tensor_out,
            data,
            which: args.backend,
            repeat: args.repeat,
            grad: args.grad,
            ceilings: Ceilings::default(),
        }
    }

    /// One call on `backend`, what is timed: the forward, or with `grad` forward and
    /// backward for `ones` (the upstream of a tensor output) or 1.
    fn call(&self, backend: Backend<'_>, ones: &[f32]) -> Result<(LossValue, Vec<f32>), String> {
        let batch = self.data.batch();
        let out = if self.grad {
            let upstream = if ones.is_empty() {
                Upstream::Scalar(1.0)
            } else {
                Upstream::Values(ones)
            };
            self.loss
                .forward_backward(backend, &batch, upstream)
                .map(|out| (out.loss, out.grad))
        } else {
            self.loss.forward(backend, &batch).map(|loss| (loss, Vec::new()))
        };
        out.map_err(|e| e.to_string())
    }

    /// What a call gives, to check: the loss (unless it is a tensor and `grad` is on: the
    /// softmax family's gradient is a vector-Jacobian product alone), then the gradient.
    fn values(&self, backend: Backend<'_>, ones: &[f32]) -> Result<Vec<f32>, String> {
        let (loss, grad) = self.call(backend, ones)?;
        let mut values = if ones.is_empty() {
            loss.values().to_vec()
        } else {
            Vec::new()
        };
        values.extend(grad);
        Ok(values)
    }

    fn row(&self, backend: &'static str, mode: &'static str, median: Duration, err: f64) -> Row {
        Row {
            shape: self.label.clone(),
            rows: self.data.rows,
            classes: self.data.classes,
            backend,
            mode,
            median,
            bytes: self.bytes,
            max_abs_err: Some(err),
            ceiling: if backend == "gpu" {
                self.ceilings.gpu
            } else {
                self.ceilings.host
            },
            loads_only: self.ceilings.gpu_loads.filter(|_| backend == "gpu"),
            math_bound: match backend {
                "gpu" => self.ceilings.gpu_math,
                "cpu" => self.ceilings.host_math,
                _ => None,
            }
            .map(Duration::from_secs_f64),
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
        // A tensor output's upstream, for the gradient: ones.
        let ones = match &reference {
            LossValue::Tensor { values, .. } if self.grad => vec![1.0_f32; values.len()],
            _ => Vec::new(),
        };
        let want = if self.grad {
            self.values(Backend::Reference, &ones)?
        } else {
            reference.values().to_vec()
        };
        let reference_time = start.elapsed();
        let mut rows = Vec::new();
        if self.which != Which::Gpu {
            rows.extend(self.cpu(&want, &ones, reference_time, progress)?);
        }
        if let Some(ctx) = ctx {
            rows.extend(self.gpu(ctx, &reference, &want, &ones, progress)?);
        }
        Ok(rows)
    }

    /// The f64 reference and the fast CPU backend, end-to-end.
    fn cpu(
        &self,
        want: &[f32],
        ones: &[f32],
        reference_time: Duration,
        progress: &mut Progress,
    ) -> Result<Vec<Row>, String> {
        let t = if self.repeat == 1 && !self.grad {
            reference_time
        } else {
            time(self.repeat, || self.call(Backend::Reference, ones))?
        };
        let mut rows = vec![self.row("cpu-reference", "end-to-end", t, 0.0)];
        progress.step(&format!("{} cpu fast", self.label));
        let err = check("fast CPU", &self.label, &self.values(Backend::Cpu, ones)?, want)?;
        let t = time(self.repeat, || self.call(Backend::Cpu, ones))?;
        rows.push(self.row("cpu", "end-to-end", t, err));
        Ok(rows)
    }

    /// The GPU with the inputs resident, then end-to-end (upload, compute, readback).
    fn gpu(
        &self,
        ctx: &GpuContext,
        reference: &LossValue,
        want: &[f32],
        ones: &[f32],
        progress: &mut Progress,
    ) -> Result<Vec<Row>, String> {
        progress.step(&format!("{} gpu resident", self.label));
        let resident = Resident::new(ctx, self.loss, &self.data, reference, self.grad);
        let err = check("GPU (resident)", &self.label, &resident.run(true)?, want)?;
        let t = time(self.repeat, || resident.run(false))?;
        let mut rows = vec![self.row("gpu", "resident", t, err)];
        progress.step(&format!("{} gpu end-to-end", self.label));
        let gpu = Backend::Gpu(ctx);
        let err = check("GPU (end-to-end)", &self.label, &self.values(gpu, ones)?, want)?;
        let t = time(self.repeat, || self.call(gpu, ones))?;
        rows.push(self.row("gpu", "end-to-end", t, err));
        Ok(rows)
    }
}
