//! `wgpu-loss bench`: cross-entropy (mean) on generated data, on the GPU (logits resident
//! on the device, and end-to-end with upload and readback) and on the CPU reference. Each
//! GPU result is checked against the CPU result before it is timed; a mismatch is an error.

use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use wgpu_loss::wgpu::{self, util::DeviceExt};
use wgpu_loss::{CrossEntropy, GpuContext, GpuTargets, TargetWidth};

/// GPU (f32) against the f64 reference on a mean over a generated batch: the kernel's
/// row error (~1e-5 at C = 50257) averaged, plus f32 rounding of the result.
const MEAN_ATOL: f64 = 1e-4;
const MEAN_RTOL: f64 = 1e-4;

/// The shapes run when none is given: square, many short rows, LLM-like vocabulary.
const DEFAULT_SHAPES: [(usize, usize); 3] = [(4096, 4096), (65536, 128), (2048, 32000)];

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Gpu,
    Cpu,
    Both,
}

/// Arguments of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Rows of one shape to run instead of the default set (needs --classes).
    #[arg(long, requires = "classes")]
    rows: Option<usize>,
    /// Classes of that shape (needs --rows).
    #[arg(long, requires = "rows")]
    classes: Option<usize>,
    /// Timed runs per shape and backend; the median is reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Which side to time (the CPU reference always runs once, to check the GPU).
    #[arg(long, value_enum, default_value = "both")]
    backend: Which,
}

/// SplitMix64, for reproducible generated batches.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time<T>(repeat: u32, mut f: impl FnMut() -> Result<T, String>) -> Result<Duration, String> {
    let mut times = Vec::new();
    for _ in 0..repeat {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed());
    }
    Ok(median(times))
}

/// Runs `bench`.
pub fn run(args: BenchArgs) -> Result<(), String> {
    let shapes = match (args.rows, args.classes) {
        (Some(rows), Some(classes)) => vec![(rows, classes)],
        _ => DEFAULT_SHAPES.to_vec(),
    };
    let ctx = match args.backend {
        Which::Cpu => None,
        _ => Some(super::gpu_context()?),
    };
    if let Some(ctx) = &ctx {
        let info = ctx.adapter_info();
        println!(
            "adapter: {} ({:?}, {:?}), subgroups: {}",
            info.name,
            info.backend,
            info.device_type,
            ctx.uses_subgroups()
        );
    }
    println!(
        "cross-entropy, reduction mean, f32 logits + i64 targets; median of {} runs",
        args.repeat
    );
    println!(
        "{:>18}  {:<16} {:>10} {:>9} {:>12}",
        "shape", "backend", "median ms", "GB/s", "|gpu - cpu|"
    );
    let loss = CrossEntropy::default();
    for (rows, classes) in shapes {
        let mut rng = Rng(rows as u64 * 1_000_003 + classes as u64);
        let logits: Vec<f32> = (0..rows * classes)
            .map(|_| ((rng.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 16.0)
            .collect();
        let targets: Vec<i64> = (0..rows).map(|_| (rng.next() % classes as u64) as i64).collect();
        let bytes = (logits.len() * 4 + targets.len() * 8) as f64;
        let shape = format!("{rows}x{classes}");
        let row = |backend: &str, t: Duration, err: Option<f64>| {
            let err = err.map_or(String::from("-"), |e| format!("{e:.2e}"));
            println!(
                "{shape:>18}  {backend:<16} {:>10.2} {:>9.2} {err:>12}",
                t.as_secs_f64() * 1e3,
                bytes / t.as_secs_f64() / 1e9
            );
        };
        let start = Instant::now();
        let reference = loss
            .forward_cpu(&logits, rows, classes, &targets)
            .map_err(|e| e.to_string())?;
        let reference = f64::from(reference.scalar().unwrap_or(f32::NAN));
        let cpu_once = start.elapsed();
        let check = |what: &str, value: f32| -> Result<f64, String> {
            let err = (f64::from(value) - reference).abs();
            if err.is_nan() || err > MEAN_ATOL + MEAN_RTOL * reference.abs() {
                return Err(format!(
                    "{shape}: {what} loss {value} differs from the CPU reference {reference} by {err:e}"
                ));
            }
            Ok(err)
        };
        if args.backend != Which::Gpu {
            let t = if args.repeat == 1 {
                cpu_once
            } else {
                time(args.repeat, || {
                    loss.forward_cpu(&logits, rows, classes, &targets)
                        .map_err(|e| e.to_string())
                })?
            };
            row("cpu reference", t, None);
            let fast_run = || {
                loss.forward_cpu_fast(&logits, rows, classes, &targets)
                    .map(|v| v.scalar().unwrap_or(f32::NAN))
                    .map_err(|e| e.to_string())
            };
            let err = check("fast CPU", fast_run()?)?;
            row(
                &format!("cpu fast ({}t)", rayon::current_num_threads()),
                time(args.repeat, fast_run)?,
                Some(err),
            );
        }
        let Some(ctx) = &ctx else { continue };
        let (logits_buf, targets_buf) = resident(ctx, &logits, &targets);
        let gpu_targets = GpuTargets {
            at: (&targets_buf).into(),
            width: TargetWidth::I64,
        };
        let resident_run = || {
            loss.forward_buffers(ctx, &logits_buf, rows, classes, gpu_targets)
                .map(|v| v.scalar().unwrap_or(f32::NAN))
                .map_err(|e| e.to_string())
        };
        let err = check("GPU", resident_run()?)?;
        row("gpu resident", time(args.repeat, resident_run)?, Some(err));
        let e2e_run = || {
            loss.forward(ctx, &logits, rows, classes, &targets)
                .map(|v| v.scalar().unwrap_or(f32::NAN))
                .map_err(|e| e.to_string())
        };
        let err = check("GPU", e2e_run()?)?;
        row("gpu end-to-end", time(args.repeat, e2e_run)?, Some(err));
    }
    Ok(())
}

/// Logits and targets uploaded once, as a wgpu app would hold them.
fn resident(ctx: &GpuContext, logits: &[f32], targets: &[i64]) -> (wgpu::Buffer, wgpu::Buffer) {
    let make = |label, contents: &[u8]| {
        ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        })
    };
    (
        make("bench.logits", bytemuck::cast_slice(logits)),
        make("bench.targets", bytemuck::cast_slice(targets)),
    )
}
