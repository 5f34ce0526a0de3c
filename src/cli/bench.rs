//! `wgpu-loss bench`, the main job: a loss on generated data, on the GPU (inputs resident on
//! the device, and end-to-end with upload and readback) and on the CPU (the fast backend,
//! and the f64 reference). Every GPU and fast-CPU result is checked against the reference
//! before it is timed: a mismatch is an error, not a row. The machine's single-thread
//! memory-read bandwidth is measured in the same run.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use wgpu_loss::wgpu::{self, util::DeviceExt};
use wgpu_loss::{
    BufferAt, CrossEntropy, CrossEntropyOutputs, ElementwiseLoss, ElementwiseOutputs, GpuContext, GpuTargets,
    LossValue, RowOp, Strategy, TargetWidth,
};

/// f32 GPU or fast-CPU results against the f64 reference, on means and sums over generated
/// batches, or elementwise values: the kernels' row error (~1e-5 at C = 50257) plus f32
/// rounding of the result.
const ATOL: f64 = 1e-4;
const RTOL: f64 = 1e-4;

/// The shapes run when none is given.
const DEFAULT_SHAPES: [(usize, usize); 5] = [
    (4096, 4096),
    (65536, 128),
    (16, 262_144),
    (2048, 32_000),
    (4_000_000, 10),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Gpu,
    Cpu,
    Both,
}

/// The losses `bench` can time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchLoss {
    CrossEntropy,
    Nll,
    Mse,
    Bce,
    BceWithLogits,
    KlDiv,
    Softmax,
    LogSoftmax,
    Entropy,
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
    /// Which side to time (the reference always runs once, to check the others).
    #[arg(long, value_enum, default_value = "both")]
    backend: Which,
    /// The loss (mean reduction; softmax, log-softmax and entropy write per-row outputs).
    #[arg(long, value_enum, default_value = "cross-entropy")]
    loss: BenchLoss,
    /// Write throughput against input size as an SVG chart, one line per backend and mode.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print one JSON array of result objects instead of the table.
    #[arg(long)]
    json: bool,
    /// Force one row-kernel strategy instead of the plan's choice per shape.
    #[arg(long, value_enum, default_value = "auto")]
    strategy: StrategyArg,
}

/// `--strategy`: the plan's choice, or one forced (see `wgpu_loss::Strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StrategyArg {
    /// Chosen per shape and adapter.
    Auto,
    /// One invocation per row.
    Invocation,
    /// One subgroup per row.
    Subgroup,
    /// One workgroup per row.
    Workgroup,
    /// Several workgroups per row (cross-entropy / NLL).
    Split,
}

/// One timed result.
struct Row {
    rows: usize,
    classes: usize,
    backend: &'static str,
    mode: &'static str,
    median: Duration,
    bytes: f64,
    max_abs_err: Option<f64>,
}

impl Row {
    fn gb_per_s(&self) -> f64 {
        self.bytes / self.median.as_secs_f64() / 1e9
    }
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

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
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

/// Single-thread memory-read bandwidth: a plain sum over a 256 MiB f32 array, best of 3.
fn read_bandwidth() -> f64 {
    let data = vec![1.0_f32; 64 << 20];
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let mut acc = [0.0_f32; 16];
        for chunk in data.chunks_exact(16) {
            for i in 0..16 {
                acc[i] += chunk[i];
            }
        }
        std::hint::black_box(acc);
        best = best.min(start.elapsed().as_secs_f64());
    }
    (data.len() * 4) as f64 / best / 1e9
}

/// The generated inputs of one shape, for any loss.
struct Batch {
    input: Vec<f32>,
    target: Vec<f32>,
    indices: Vec<i64>,
}

fn batch(loss: BenchLoss, rows: usize, classes: usize) -> Batch {
    let mut rng = Rng(rows as u64 * 1_000_003 + classes as u64);
    let n = rows * classes;
    let logits: Vec<f32> = (0..n).map(|_| (rng.unit() - 0.5) * 16.0).collect();
    let indices: Vec<i64> = (0..rows).map(|_| (rng.next() % classes as u64) as i64).collect();
    let unit: Vec<f32> = (0..n).map(|_| rng.unit() * 0.98 + 0.01).collect();
    let log_softmax = |x: &[f32]| -> Vec<f32> {
        x.chunks(classes)
            .flat_map(|row| {
                let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f32>().ln();
                row.iter().map(move |v| v - lse).collect::<Vec<_>>()
            })
            .collect()
    };
    match loss {
        BenchLoss::Nll => Batch {
            input: log_softmax(&logits),
            target: Vec::new(),
            indices,
        },
        BenchLoss::Bce => Batch {
            input: unit.clone(),
            target: unit.iter().map(|u| 1.0 - u).collect(),
            indices,
        },
        BenchLoss::KlDiv => {
            let target = log_softmax(&unit).iter().map(|v| v.exp()).collect();
            Batch {
                input: log_softmax(&logits),
                target,
                indices,
            }
        }
        _ => Batch {
            input: logits,
            target: unit,
            indices,
        },
    }
}

fn buffer(ctx: &GpuContext, label: &str, contents: &[u8]) -> wgpu::Buffer {
    ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
    })
}

/// The largest absolute difference, or an error naming the first value out of tolerance.
fn check(what: &str, shape: &str, got: &[f32], want: &[f32]) -> Result<f64, String> {
    if got.len() != want.len() {
        return Err(format!(
            "{shape}: {what} gave {} values, the reference {}",
            got.len(),
            want.len()
        ));
    }
    let mut worst = 0.0_f64;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (f64::from(g), f64::from(w));
        let err = (g - w).abs();
        if err.is_nan() && !(g.is_nan() && w.is_nan()) || err > ATOL + RTOL * w.abs() {
            return Err(format!("{shape}: {what} value {i} is {g}, the CPU reference says {w}"));
        }
        if err.is_finite() {
            worst = worst.max(err);
        }
    }
    Ok(worst)
}

/// A progress line on stderr (only on a terminal).
struct Progress {
    total: usize,
    done: usize,
    on: bool,
}

impl Progress {
    fn step(&mut self, what: &str) {
        if !self.on {
            return;
        }
        let width = 30;
        let filled = width * self.done / self.total.max(1);
        eprint!(
            "\r[{}{}] {}/{} {what:<40}",
            "=".repeat(filled),
            " ".repeat(width - filled),
            self.done,
            self.total
        );
        let _ = std::io::stderr().flush();
        self.done += 1;
    }

    fn finish(&self) {
        if self.on {
            eprint!("\r{}\r", " ".repeat(90));
        }
    }
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
    let forced = match args.strategy {
        StrategyArg::Auto => None,
        StrategyArg::Invocation => Some(Strategy::InvocationPerRow),
        StrategyArg::Subgroup => Some(Strategy::SubgroupPerRow),
        StrategyArg::Workgroup => Some(Strategy::WorkgroupPerRow),
        StrategyArg::Split => Some(Strategy::SplitRow),
    };
    let ctx = match (ctx, forced) {
        (Some(ctx), Some(strategy)) => Some(ctx.with_strategy(strategy)),
        (ctx, _) => ctx,
    };
    let adapter = ctx
        .as_ref()
        .map_or_else(|| "none".to_string(), |c| c.adapter_info().name.clone());
    let bandwidth = read_bandwidth();
    let per_shape = match args.backend {
        Which::Gpu => 2,
        Which::Cpu => 2,
        Which::Both => 4,
    };
    let mut progress = Progress {
        total: shapes.len() * per_shape,
        done: 0,
        on: std::io::stderr().is_terminal(),
    };
    let mut results = Vec::new();
    for &(rows, classes) in &shapes {
        let shape = format!("{rows}x{classes}");
        let data = batch(args.loss, rows, classes);
        let bytes = bytes_read(args.loss, &data) as f64;
        progress.step(&format!("{shape} reference"));
        let start = Instant::now();
        let reference = cpu_run(args.loss, &data, rows, classes, false)?;
        let reference_time = start.elapsed();
        let mut push = |backend, mode, median, err| {
            results.push(Row {
                rows,
                classes,
                backend,
                mode,
                median,
                bytes,
                max_abs_err: err,
            });
        };
        if args.backend != Which::Gpu {
            let t = if args.repeat == 1 {
                reference_time
            } else {
                time(args.repeat, || cpu_run(args.loss, &data, rows, classes, false))?
            };
            push("cpu-reference", "end-to-end", t, Some(0.0));
            progress.step(&format!("{shape} cpu fast"));
            let err = check(
                "fast CPU",
                &shape,
                &cpu_run(args.loss, &data, rows, classes, true)?,
                &reference,
            )?;
            push(
                "cpu",
                "end-to-end",
                time(args.repeat, || cpu_run(args.loss, &data, rows, classes, true))?,
                Some(err),
            );
        }
        if let Some(ctx) = &ctx {
            progress.step(&format!("{shape} gpu resident"));
            let resident = Resident::new(ctx, args.loss, &data, rows, classes);
            let err = check("GPU (resident)", &shape, &resident.run(true)?, &reference)?;
            push("gpu", "resident", time(args.repeat, || resident.run(false))?, Some(err));
            progress.step(&format!("{shape} gpu end-to-end"));
            let err = check(
                "GPU (end-to-end)",
                &shape,
                &gpu_end_to_end(ctx, args.loss, &data, rows, classes)?,
                &reference,
            )?;
            push(
                "gpu",
                "end-to-end",
                time(args.repeat, || gpu_end_to_end(ctx, args.loss, &data, rows, classes))?,
                Some(err),
            );
        }
    }
    progress.finish();
    let loss_name = args
        .loss
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default();
    if args.json {
        print_json(&results, &loss_name, bandwidth, &adapter);
    } else {
        print_table(&results, &loss_name, bandwidth, &adapter, args.repeat);
    }
    if let Some(path) = &args.plot {
        write_plot(path, &results, &loss_name).map_err(|e| format!("--plot {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Bytes of input a loss reads: the input, and its targets.
fn bytes_read(loss: BenchLoss, data: &Batch) -> usize {
    let input = data.input.len() * 4;
    match loss {
        BenchLoss::CrossEntropy | BenchLoss::Nll => input + data.indices.len() * 8,
        BenchLoss::Softmax | BenchLoss::LogSoftmax | BenchLoss::Entropy => input,
        _ => 2 * input,
    }
}

fn elementwise(loss: BenchLoss) -> Option<ElementwiseLoss> {
    match loss {
        BenchLoss::Mse => Some(ElementwiseLoss::mse()),
        BenchLoss::Bce => Some(ElementwiseLoss::bce()),
        BenchLoss::BceWithLogits => Some(ElementwiseLoss::bce_with_logits()),
        BenchLoss::KlDiv => Some(ElementwiseLoss::kl_div()),
        _ => None,
    }
}

fn row_op(loss: BenchLoss) -> Option<RowOp> {
    match loss {
        BenchLoss::Softmax => Some(RowOp::Softmax),
        BenchLoss::LogSoftmax => Some(RowOp::LogSoftmax),
        BenchLoss::Entropy => Some(RowOp::Entropy),
        _ => None,
    }
}

fn cross_entropy(loss: BenchLoss) -> CrossEntropy {
    if loss == BenchLoss::Nll {
        CrossEntropy::nll()
    } else {
        CrossEntropy::default()
    }
}

/// The CPU result: the fast backend or the f64 reference.
fn cpu_run(loss: BenchLoss, d: &Batch, rows: usize, classes: usize, fast: bool) -> Result<Vec<f32>, String> {
    let value: LossValue = if let Some(e) = elementwise(loss) {
        if fast {
            e.forward_cpu_fast(&d.input, &d.target, &[rows, classes])
        } else {
            e.forward_cpu(&d.input, &d.target, &[rows, classes])
        }
    } else if let Some(op) = row_op(loss) {
        if fast {
            op.forward_cpu_fast(&d.input, rows, classes)
        } else {
            op.forward_cpu(&d.input, rows, classes)
        }
    } else if fast {
        cross_entropy(loss).forward_cpu_fast(&d.input, rows, classes, &d.indices)
    } else {
        cross_entropy(loss).forward_cpu(&d.input, rows, classes, &d.indices)
    }
    .map_err(|e| e.to_string())?;
    Ok(value.values().to_vec())
}

fn gpu_end_to_end(
    ctx: &GpuContext,
    loss: BenchLoss,
    d: &Batch,
    rows: usize,
    classes: usize,
) -> Result<Vec<f32>, String> {
    let value = if let Some(e) = elementwise(loss) {
        e.forward(ctx, &d.input, &d.target, &[rows, classes])
    } else if let Some(op) = row_op(loss) {
        op.forward(ctx, &d.input, rows, classes)
    } else {
        cross_entropy(loss).forward(ctx, &d.input, rows, classes, &d.indices)
    }
    .map_err(|e| e.to_string())?;
    Ok(value.values().to_vec())
}

/// Inputs uploaded once, as a wgpu app holds them; each run records, submits and waits,
/// reading back only a scalar (or nothing, for the row outputs, unless checking).
struct Resident<'a> {
    ctx: &'a GpuContext,
    loss: BenchLoss,
    rows: usize,
    classes: usize,
    input: wgpu::Buffer,
    target: wgpu::Buffer,
    out: wgpu::Buffer,
}

impl<'a> Resident<'a> {
    fn new(ctx: &'a GpuContext, loss: BenchLoss, d: &Batch, rows: usize, classes: usize) -> Self {
        let target: &[u8] = if matches!(loss, BenchLoss::CrossEntropy | BenchLoss::Nll) {
            bytemuck::cast_slice(&d.indices)
        } else {
            bytemuck::cast_slice(&d.target)
        };
        let out_len = if row_op(loss).is_some() { d.input.len() * 4 } else { 8 };
        Self {
            ctx,
            loss,
            rows,
            classes,
            input: buffer(ctx, "bench.input", bytemuck::cast_slice(&d.input)),
            target: buffer(ctx, "bench.target", target),
            out: buffer(ctx, "bench.out", &vec![0; out_len]),
        }
    }

    fn run(&self, read_all: bool) -> Result<Vec<f32>, String> {
        let (ctx, rows, classes) = (self.ctx, self.rows, self.classes);
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        let out: BufferAt<'_> = (&self.out).into();
        let result = if let Some(e) = elementwise(self.loss) {
            let outputs = ElementwiseOutputs { loss: out, grad: None };
            e.encode(
                ctx,
                &mut encoder,
                (&self.input).into(),
                (&self.target).into(),
                &[rows, classes],
                &outputs,
            )
        } else if let Some(op) = row_op(self.loss) {
            op.encode(ctx, &mut encoder, &self.input, rows, classes, out)
        } else {
            let targets = GpuTargets {
                at: (&self.target).into(),
                width: TargetWidth::I64,
            };
            cross_entropy(self.loss).encode(
                ctx,
                &mut encoder,
                &self.input,
                rows,
                classes,
                targets,
                &CrossEntropyOutputs::loss(out),
            )
        };
        result.map_err(|e| e.to_string())?;
        ctx.queue().submit(Some(encoder.finish()));
        let count = match (row_op(self.loss), read_all) {
            (Some(RowOp::Entropy), true) => rows,
            (Some(_), true) => rows * classes,
            (Some(_), false) => {
                ctx.device()
                    .poll(wgpu::PollType::wait_indefinitely())
                    .map_err(|e| e.to_string())?;
                return Ok(Vec::new());
            }
            (None, _) => 1,
        };
        wgpu_loss::read_f32(ctx, out, count).map_err(|e| e.to_string())
    }
}

fn print_table(results: &[Row], loss: &str, bandwidth: f64, adapter: &str, repeat: u32) {
    println!("{loss}, reduction mean, generated data; median of {repeat} runs; adapter: {adapter}");
    println!("single-thread memory-read bandwidth (sum over 256 MiB, this run): {bandwidth:.2} GB/s");
    println!(
        "{:>16}  {:<14} {:<11} {:>10} {:>8} {:>7} {:>9} {:>10}",
        "shape", "backend", "mode", "median ms", "GB/s", "% read", "gpu/cpu", "max |err|"
    );
    for r in results {
        let cpu = results
            .iter()
            .find(|c| c.rows == r.rows && c.classes == r.classes && c.backend == "cpu");
        let speedup = match (r.backend, cpu) {
            ("gpu", Some(c)) => format!("{:.2}x", c.median.as_secs_f64() / r.median.as_secs_f64()),
            _ => "-".into(),
        };
        let err = r.max_abs_err.map_or("-".into(), |e| format!("{e:.1e}"));
        println!(
            "{:>16}  {:<14} {:<11} {:>10.2} {:>8.2} {:>6.0}% {:>9} {:>10}",
            format!("{}x{}", r.rows, r.classes),
            r.backend,
            r.mode,
            r.median.as_secs_f64() * 1e3,
            r.gb_per_s(),
            100.0 * r.gb_per_s() / bandwidth,
            speedup,
            err
        );
    }
}

fn print_json(results: &[Row], loss: &str, bandwidth: f64, adapter: &str) {
    let escape = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let objects: Vec<String> = results
        .iter()
        .map(|r| {
            let err = r.max_abs_err.map_or("null".into(), |e| format!("{e:e}"));
            format!(
                "{{\"loss\":\"{}\",\"rows\":{},\"classes\":{},\"backend\":\"{}\",\"mode\":\"{}\",\"median_ms\":{:.4},\"gb_per_s\":{:.4},\"read_bandwidth_gb_per_s\":{:.4},\"adapter\":\"{}\",\"max_abs_err\":{}}}",
                escape(loss),
                r.rows,
                r.classes,
                r.backend,
                r.mode,
                r.median.as_secs_f64() * 1e3,
                r.gb_per_s(),
                bandwidth,
                escape(adapter),
                err
            )
        })
        .collect();
    println!("[{}]", objects.join(","));
}

/// Throughput (GB/s) against input size (bytes, log scale), one polyline per backend+mode.
fn write_plot(path: &PathBuf, results: &[Row], loss: &str) -> std::io::Result<()> {
    let (width, height, margin) = (720.0, 420.0, 60.0);
    let sizes: Vec<f64> = results.iter().map(|r| r.bytes.log10()).collect();
    let (x0, x1) = sizes
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let (x0, x1) = if x1 - x0 < 1e-9 { (x0 - 0.5, x1 + 0.5) } else { (x0, x1) };
    let y1 = results.iter().map(Row::gb_per_s).fold(0.0, f64::max).max(1e-9) * 1.1;
    let sx = |v: f64| margin + (v - x0) / (x1 - x0) * (width - 2.0 * margin);
    let sy = |v: f64| height - margin - v / y1 * (height - 2.0 * margin);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{margin}\" y=\"24\" font-size=\"14\">{loss}: throughput against input size</text>\n<line x1=\"{margin}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/>\n<line x1=\"{margin}\" y1=\"{margin}\" x2=\"{margin}\" y2=\"{b}\" stroke=\"black\"/>\n<text x=\"{cx}\" y=\"{bl}\" text-anchor=\"middle\">input bytes read (log scale)</text>\n<text x=\"16\" y=\"{cy}\" transform=\"rotate(-90 16 {cy})\" text-anchor=\"middle\">GB/s</text>\n",
        b = height - margin,
        r = width - margin,
        cx = width / 2.0,
        bl = height - 8.0,
        cy = height / 2.0,
    );
    for i in 0..=4 {
        let v = y1 * f64::from(i) / 4.0;
        svg += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{v:.1}</text>\n",
            margin - 6.0,
            sy(v) + 4.0
        );
    }
    let mut ticks: Vec<f64> = results.iter().map(|r| r.bytes).collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    for (i, bytes) in ticks.iter().enumerate() {
        let label = if *bytes >= 1e6 {
            format!("{:.0} MB", bytes / 1e6)
        } else {
            format!("{:.0} kB", bytes / 1e3)
        };
        let y = height - margin + 16.0 + 12.0 * (i % 2) as f64;
        svg += &format!(
            "<text x=\"{:.1}\" y=\"{y}\" text-anchor=\"middle\">{label}</text>\n",
            sx(bytes.log10())
        );
    }
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let mut series: Vec<(String, Vec<&Row>)> = Vec::new();
    for r in results {
        let name = format!("{} {}", r.backend, r.mode);
        match series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, rows)) => rows.push(r),
            None => series.push((name, vec![r])),
        }
    }
    for (k, (name, rows)) in series.iter_mut().enumerate() {
        rows.sort_by(|a, b| a.bytes.total_cmp(&b.bytes));
        let color = colors[k % colors.len()];
        let points: Vec<String> = rows
            .iter()
            .map(|r| format!("{:.1},{:.1}", sx(r.bytes.log10()), sy(r.gb_per_s())))
            .collect();
        svg += &format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n",
            points.join(" ")
        );
        for r in rows.iter() {
            svg += &format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>\n",
                sx(r.bytes.log10()),
                sy(r.gb_per_s())
            );
        }
        svg += &format!(
            "<text x=\"{}\" y=\"{}\" fill=\"{color}\">{name}</text>\n",
            width - margin - 140.0,
            margin + 16.0 * k as f64
        );
    }
    svg += "</svg>\n";
    // Written whole, via a temporary file, like the .npy outputs.
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, svg).and_then(|()| std::fs::rename(&tmp, path))
}
