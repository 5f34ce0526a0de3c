//! `bench --loss linear-cross-entropy`: forward + backward (∂h, ∂W, ∂b) of the fused
//! linear cross-entropy against the unfused path (our matmul writing the whole logits,
//! then our cross-entropy, then the products) in the same run, alternated, with the
//! inputs resident on the GPU; and the fast CPU backend. Each result is checked against
//! the f64 reference first. Each row states its GFLOP/s (the 6·N·D·V flops of the three
//! products) against its side's multiply-add rate measured in this run, the plain
//! product's rate on the logits' shape beside it, and the device bytes the call
//! allocated beyond its inputs and outputs.

use std::time::Duration;

use wgpu_loss::wgpu::{self, util::DeviceExt};
use wgpu_loss::{
    ceiling, Backend, BufferAt, CrossEntropy, GpuContext, Grads, LinearBatch, LinearBatchAt, LinearCrossEntropy,
    LinearForwardBackward, LinearMode, LinearOutputs, TargetsAt, Upstream, DEFAULT_TILE_BYTES,
};

use super::check::check;
use super::data::Rng;
use super::timing::time;
use crate::cli::args::{BenchArgs, Which};

/// The shape: 1024 tokens, 128 hidden features, a 32000-token vocabulary.
const DEFAULT: [usize; 3] = [1024, 128, 32_000];

/// The generated data of one shape.
struct Data {
    shape: [usize; 3],
    h: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    targets: Vec<i64>,
}

impl Data {
    fn new(shape: [usize; 3]) -> Self {
        let [rows, hidden, classes] = shape;
        let mut rng = Rng((rows * 31 + hidden * 7 + classes) as u64);
        let mut values =
            |len: usize, scale: f32| -> Vec<f32> { (0..len).map(|_| (rng.unit() * 2.0 - 1.0) * scale).collect() };
        let h = values(rows * hidden, 1.0);
        let w = values(classes * hidden, 0.2);
        let b = values(classes, 0.1);
        let targets = (0..rows).map(|i| ((i * 7919) % classes) as i64).collect();
        Self {
            shape,
            h,
            w,
            b,
            targets,
        }
    }

    fn batch(&self) -> LinearBatch<'_> {
        LinearBatch::new(&self.h, &self.w, self.shape, &self.targets).bias(&self.b)
    }

    /// Flops of forward + backward: three products of N·D·V multiply-adds.
    fn flops(&self) -> f64 {
        let [rows, hidden, classes] = self.shape;
        6.0 * rows as f64 * hidden as f64 * classes as f64
    }
}

/// The loss, ∂h, ∂W and ∂b in one vector, to check.
fn flat(out: &LinearForwardBackward) -> Vec<f32> {
    let mut values = out.loss.values().to_vec();
    for grad in [&out.grad_h, &out.grad_w, &out.grad_b] {
        values.extend(grad.iter().flatten());
    }
    values
}

/// One timed result.
struct Row {
    backend: &'static str,
    mode: &'static str,
    median: Duration,
    ceiling: f64,
    matmul: Option<f64>,
    peak_device_bytes: Option<u64>,
    err: f64,
}

/// The inputs and outputs resident on the device, as a wgpu app holds them.
struct Resident {
    h: wgpu::Buffer,
    w: wgpu::Buffer,
    b: wgpu::Buffer,
    targets: wgpu::Buffer,
    loss: wgpu::Buffer,
    grad_h: wgpu::Buffer,
    grad_w: wgpu::Buffer,
    grad_b: wgpu::Buffer,
}

impl Resident {
    fn new(ctx: &GpuContext, data: &Data) -> Self {
        let make = |contents: &[u8]| {
            ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("bench.linear"),
                contents,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            })
        };
        let zeros = |len: usize| make(&vec![0_u8; len * 4]);
        Self {
            h: make(bytemuck::cast_slice(&data.h)),
            w: make(bytemuck::cast_slice(&data.w)),
            b: make(bytemuck::cast_slice(&data.b)),
            targets: make(bytemuck::cast_slice(&data.targets)),
            loss: zeros(2),
            grad_h: zeros(data.h.len()),
            grad_w: zeros(data.w.len()),
            grad_b: zeros(data.b.len()),
        }
    }

    /// One call recorded and submitted, waiting for the loss; with `read`, every result.
    fn run(&self, ctx: &GpuContext, loss: &LinearCrossEntropy, data: &Data, read: bool) -> Result<Vec<f32>, String> {
        let batch =
            LinearBatchAt::new(&self.h, &self.w, data.shape, TargetsAt::I64((&self.targets).into())).bias(&self.b);
        let outputs = LinearOutputs {
            loss: Some((&self.loss).into()),
            grad_h: Some((&self.grad_h).into()),
            grad_w: Some((&self.grad_w).into()),
            grad_b: Some((&self.grad_b).into()),
            upstream: Upstream::Scalar(1.0),
            ..LinearOutputs::default()
        };
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        loss.encode(ctx, &mut encoder, &batch, &outputs)
            .map_err(|e| e.to_string())?;
        let mut values = wgpu_loss::submit_and_read::<f32>(ctx, encoder, BufferAt::from(&self.loss), 1)
            .map_err(|e| e.to_string())?;
        if read {
            for (buffer, len) in [
                (&self.grad_h, data.h.len()),
                (&self.grad_w, data.w.len()),
                (&self.grad_b, data.b.len()),
            ] {
                values.extend(wgpu_loss::read::<f32>(ctx, buffer.into(), len).map_err(|e| e.to_string())?);
            }
        }
        Ok(values)
    }
}

/// The shape from `--rows --hidden --classes`, or the default.
fn shape_of(args: &BenchArgs) -> Result<[usize; 3], String> {
    if args.shape.is_some() {
        return Err("--loss linear-cross-entropy takes --rows N --hidden D --classes V, not --shape".into());
    }
    let shape = [
        args.rows.unwrap_or(DEFAULT[0]),
        args.hidden.unwrap_or(DEFAULT[1]),
        args.classes.unwrap_or(DEFAULT[2]),
    ];
    if shape.contains(&0) {
        return Err(format!(
            "--rows, --hidden and --classes must be at least 1, got {shape:?}"
        ));
    }
    // The f64 reference holds the logits and their gradient: 16 bytes per logit.
    super::data::check_shape(shape[0], shape[2].checked_mul(2).ok_or("--classes overflows")?)?;
    super::data::check_shape(shape[0], shape[1])?;
    super::data::check_shape(shape[2], shape[1])?;
    Ok(shape)
}

/// Runs the linear cross-entropy bench.
pub fn run(args: &BenchArgs) -> Result<(), String> {
    let shape = shape_of(args)?;
    let data = Data::new(shape);
    let fused =
        LinearCrossEntropy::new(CrossEntropy::default()).tile_bytes(args.tile_bytes.unwrap_or(DEFAULT_TILE_BYTES));
    let unfused = fused.clone().mode(LinearMode::Unfused);
    eprintln!("bench: {shape:?} reference (f64)");
    let reference = fused
        .forward_backward(Backend::Reference, &data.batch(), Upstream::Scalar(1.0), Grads::ALL)
        .map_err(|e| e.to_string())?;
    let want = flat(&reference);
    let label = format!("{}x{}x{}", shape[0], shape[1], shape[2]);
    let mut rows = Vec::new();
    if args.backend != Which::Gpu {
        eprintln!("bench: {label} cpu");
        let call = || {
            fused
                .forward_backward(Backend::Cpu, &data.batch(), Upstream::Scalar(1.0), Grads::ALL)
                .map_err(|e| e.to_string())
        };
        let err = check("fast CPU", &label, &flat(&call()?), &want)?;
        let median = time(args.repeat, call)?;
        rows.push(Row {
            backend: "cpu",
            mode: "fused",
            median,
            ceiling: ceiling::host_fma_rate(),
            matmul: None,
            peak_device_bytes: None,
            err,
        });
    }
    let mut adapter = "none".to_string();
    if args.backend != Which::Cpu {
        let ctx = crate::cli::device::gpu_context()?;
        adapter = ctx.adapter_info().name.clone();
        rows.extend(gpu_rows(&ctx, &data, [&fused, &unfused], &want, args.repeat)?);
    }
    print(args, &data, &rows, &adapter);
    Ok(())
}

/// Fused and unfused on the GPU: each checked, its allocation counted on an empty pool,
/// then both timed alternately.
fn gpu_rows(
    ctx: &GpuContext,
    data: &Data,
    losses: [&LinearCrossEntropy; 2],
    want: &[f32],
    repeat: u32,
) -> Result<Vec<Row>, String> {
    let resident = Resident::new(ctx, data);
    let label = format!("{:?}", data.shape);
    let mut peaks = Vec::new();
    let mut errs = Vec::new();
    for loss in losses {
        errs.push(check(
            "GPU (resident)",
            &label,
            &resident.run(ctx, loss, data, true)?,
            want,
        )?);
        // A timed call (the loss alone read back) on an empty pool: every scratch buffer it
        // needs is created anew and counted (small parameter buffers stay cached).
        ctx.release_pooled();
        let before = ctx.bytes_allocated();
        resident.run(ctx, loss, data, false)?;
        peaks.push(ctx.bytes_allocated() - before);
    }
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..repeat {
        for (i, loss) in losses.iter().enumerate() {
            times[i].push(time(1, || resident.run(ctx, loss, data, false))?);
        }
    }
    let ceiling = ceiling::gpu_fma_rate(ctx).map_err(|e| e.to_string())?;
    let [rows, hidden, classes] = data.shape;
    let matmul = ceiling::gpu_matmul_rate(ctx, (rows, classes, hidden)).map_err(|e| e.to_string())?;
    let median = |mut t: Vec<Duration>| {
        t.sort();
        t[t.len() / 2]
    };
    let [fused_t, unfused_t] = times;
    Ok(vec![
        Row {
            backend: "gpu",
            mode: "fused",
            median: median(fused_t),
            ceiling,
            matmul: Some(matmul),
            peak_device_bytes: Some(peaks[0]),
            err: errs[0],
        },
        Row {
            backend: "gpu",
            mode: "unfused",
            median: median(unfused_t),
            ceiling,
            matmul: Some(matmul),
            peak_device_bytes: Some(peaks[1]),
            err: errs[1],
        },
    ])
}

fn print(args: &BenchArgs, data: &Data, rows: &[Row], adapter: &str) {
    let [n, d, v] = data.shape;
    let logits_bytes = (n * v * 4) as u64;
    let gflops = |r: &Row| data.flops() / r.median.as_secs_f64() / 1e9;
    if args.json {
        let objects: Vec<String> = rows
            .iter()
            .map(|r| {
                let opt = |v: Option<String>| v.unwrap_or_else(|| "null".into());
                format!(
                    "{{\"loss\":\"linear-cross-entropy\",\"shape\":[{n},{d},{v}],\"rows\":{n},\"hidden\":{d},\"classes\":{v},\"backend\":\"{}\",\"mode\":\"{}\",\"grad\":true,\"median_ms\":{:.4},\"gflop_per_s\":{:.4},\"ceiling_gflop_per_s\":{:.4},\"fraction_of_ceiling\":{:.4},\"matmul_gflop_per_s\":{},\"peak_device_bytes\":{},\"logits_bytes\":{logits_bytes},\"adapter\":\"{}\",\"max_abs_err\":{:e}}}",
                    r.backend,
                    r.mode,
                    r.median.as_secs_f64() * 1e3,
                    gflops(r),
                    r.ceiling,
                    gflops(r) / r.ceiling,
                    opt(r.matmul.map(|m| format!("{m:.4}"))),
                    opt(r.peak_device_bytes.map(|p| p.to_string())),
                    adapter.replace('\\', "\\\\").replace('"', "\\\""),
                    r.err
                )
            })
            .collect();
        println!("[{}]", objects.join(","));
        return;
    }
    println!("linear-cross-entropy forward + backward (∂h, ∂W, ∂b), reduction mean, h [{n}, {d}], W [{v}, {d}], b [{v}]; median of {} runs, fused and unfused alternated; adapter: {adapter}", args.repeat);
    println!("ceiling: the side's multiply-add rate (this run); matmul: our product alone on the logits' shape [{n}, {v}] x {d}; peak: device bytes allocated beyond the inputs and outputs (the logits are {logits_bytes} bytes)");
    println!(
        "{:<6} {:<8} {:>10} {:>8} {:>8} {:>7} {:>8} {:>12} {:>7} {:>9}",
        "side", "mode", "median ms", "GFLOP/s", "ceiling", "% ceil", "matmul", "peak bytes", "% lgts", "max |err|"
    );
    for r in rows {
        let peak = r.peak_device_bytes.map_or("-".into(), |p| p.to_string());
        let share = r.peak_device_bytes.map_or("-".into(), |p| {
            format!("{:.1}%", 100.0 * p as f64 / logits_bytes as f64)
        });
        let matmul = r.matmul.map_or("-".into(), |m| format!("{m:.2}"));
        println!(
            "{:<6} {:<8} {:>10.1} {:>8.2} {:>8.2} {:>6.0}% {:>8} {:>12} {:>7} {:>9.1e}",
            r.backend,
            r.mode,
            r.median.as_secs_f64() * 1e3,
            gflops(r),
            r.ceiling,
            100.0 * gflops(r) / r.ceiling,
            matmul,
            peak,
            share,
            r.err
        );
    }
    if let (Some(f), Some(u)) = (
        rows.iter().find(|r| r.mode == "fused" && r.backend == "gpu"),
        rows.iter().find(|r| r.mode == "unfused"),
    ) {
        println!(
            "gpu fused / unfused time: {:.2}x",
            f.median.as_secs_f64() / u.median.as_secs_f64()
        );
    }
}
