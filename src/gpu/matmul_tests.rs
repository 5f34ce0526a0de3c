//! `gpu::matmul` against the CPU's f64 loop: odd shapes that do not divide the 32×32
//! tile, every transpose the fused linear cross-entropy uses, f16 / bf16 operands,
//! accumulation, the bias, column sums, and products cut into blocks under a lowered
//! binding limit.

use wgpu::util::DeviceExt;

use crate::api::kinds::InputFormat;
use crate::cpu::matmul::{matmul64, MatRef, Write};
use crate::gpu::context::GpuContext;
use crate::gpu::io::read;
use crate::gpu::matmul::{encode_column_sums, encode_matmul, Product, View};
use crate::half::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
use crate::testing::{close, Rng, Tolerance};

/// f32 products of K terms of magnitude ≤ 1: each f32 sum's rounding error is below
/// K·2^-24 of the sum of magnitudes, so 1e-6 per term covers any order.
fn tolerance(depth: usize) -> Tolerance {
    Tolerance {
        name: "gpu.matmul",
        atol: 1e-6 * (depth as f64 + 1.0),
        rtol: 1e-6,
    }
}

fn buffer(ctx: &GpuContext, bytes: &[u8]) -> wgpu::Buffer {
    ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
    })
}

/// Values in the format, and their exact f32 values.
fn encoded(values: &[f32], format: InputFormat) -> (Vec<u8>, Vec<f64>) {
    match format {
        InputFormat::F32 => (
            bytemuck::cast_slice(values).to_vec(),
            values.iter().map(|&v| f64::from(v)).collect(),
        ),
        InputFormat::F16 => {
            let bits: Vec<u16> = values.iter().map(|&v| f32_to_f16(v)).collect();
            let exact = bits.iter().map(|&b| f64::from(f16_to_f32(b))).collect();
            (bytemuck::cast_slice(&bits).to_vec(), exact)
        }
        InputFormat::Bf16 => {
            let bits: Vec<u16> = values.iter().map(|&v| f32_to_bf16(v)).collect();
            let exact = bits.iter().map(|&b| f64::from(bf16_to_f32(b))).collect();
            (bytemuck::cast_slice(&bits).to_vec(), exact)
        }
    }
}

struct Case {
    m: usize,
    n: usize,
    depth: usize,
    transpose_a: bool,
    transpose_b: bool,
    formats: (InputFormat, InputFormat),
    accumulate: bool,
    bias: bool,
}

/// The f64 loop's C for `case` over the exact operand values.
fn expected(case: &Case, (a64, b64): (&[f64], &[f64]), bias: &[f32], start: &[f32]) -> Vec<f64> {
    let Case { m, n, depth, .. } = *case;
    let a_ref = if case.transpose_a {
        MatRef::rows(a64, m).t()
    } else {
        MatRef::rows(a64, depth)
    };
    let b_ref = if case.transpose_b {
        MatRef::rows(b64, depth).t()
    } else {
        MatRef::rows(b64, n)
    };
    let bias64: Vec<f64> = bias.iter().map(|&v| f64::from(v)).collect();
    let mut want: Vec<f64> = start.iter().map(|&v| f64::from(v)).collect();
    let write = Write {
        accumulate: case.accumulate,
        bias: case.bias.then_some(&bias64[..]),
    };
    matmul64((a_ref, b_ref), (m, n, depth), (&mut want, n), write);
    want
}

fn run(ctx: &GpuContext, case: &Case, rng: &mut Rng) {
    let Case { m, n, depth, .. } = *case;
    let values = |len: usize, rng: &mut Rng| -> Vec<f32> { (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect() };
    let (a_bytes, a64) = encoded(&values(m * depth, rng), case.formats.0);
    let (b_bytes, b64) = encoded(&values(depth * n, rng), case.formats.1);
    let bias = values(n, rng);
    let start = values(m * n, rng);
    // Operands at odd element offsets (3 elements in), as an app's buffers may be.
    let pad = |bytes: &[u8], element: usize| [vec![0_u8; 3 * element], bytes.to_vec()].concat();
    let (ea, eb) = (case.formats.0.bytes() as usize, case.formats.1.bytes() as usize);
    let a_buf = buffer(ctx, &pad(&a_bytes, ea));
    let b_buf = buffer(ctx, &pad(&b_bytes, eb));
    let bias_buf = buffer(ctx, bytemuck::cast_slice(&bias));
    let c_buf = buffer(ctx, bytemuck::cast_slice(&start));
    // A row-major [_, cols] matrix 3 elements into `buffer`, transposed or not.
    let view = |buffer, format: InputFormat, cols: usize, transpose: bool| {
        let at = crate::api::buffers::BufferAt {
            buffer,
            offset: 3 * format.bytes(),
        };
        let v = View::rows(at, format, cols as u64);
        if transpose {
            v.t()
        } else {
            v
        }
    };
    // A is stored [m, depth] or, transposed, [depth, m]; B [depth, n] or [n, depth].
    let a_view = view(
        &a_buf,
        case.formats.0,
        if case.transpose_a { m } else { depth },
        case.transpose_a,
    );
    let b_view = view(
        &b_buf,
        case.formats.1,
        if case.transpose_b { depth } else { n },
        case.transpose_b,
    );
    let product = Product {
        a: a_view,
        b: b_view,
        c: View::rows((&c_buf).into(), InputFormat::F32, n as u64),
        bias: case
            .bias
            .then(|| View::rows((&bias_buf).into(), InputFormat::F32, n as u64)),
        m: m as u64,
        n: n as u64,
        depth: depth as u64,
        accumulate: case.accumulate,
    };
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    encode_matmul(ctx, &mut encoder, &product).expect("records");
    ctx.queue().submit(Some(encoder.finish()));
    let got: Vec<f32> = read(ctx, (&c_buf).into(), m * n).expect("reads");
    let want = expected(case, (&a64, &b64), &bias, &start);
    for (index, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            close(f64::from(*g), *w, tolerance(depth)),
            "{m}×{n}×{depth} {:?} t=({}, {}): C[{index}] = {g}, want {w}",
            case.formats,
            case.transpose_a,
            case.transpose_b
        );
    }
}

#[test]
fn products_agree_with_the_f64_loop() {
    let ctx = GpuContext::new_blocking().expect("GPU tests need a GPU adapter");
    let mut rng = Rng::new(15);
    let f32s = (InputFormat::F32, InputFormat::F32);
    let shapes = [
        (1, 1, 1),
        (31, 33, 17),
        (64, 96, 48),
        (5, 70, 129),
        (33, 1, 200),
        (2, 3, 0),
    ];
    for (m, n, depth) in shapes {
        for (transpose_a, transpose_b) in [(false, false), (false, true), (true, false), (true, true)] {
            let case = Case {
                m,
                n,
                depth,
                transpose_a,
                transpose_b,
                formats: f32s,
                accumulate: false,
                bias: false,
            };
            run(&ctx, &case, &mut rng);
        }
    }
    for formats in [
        (InputFormat::F16, InputFormat::Bf16),
        (InputFormat::Bf16, InputFormat::F16),
        (InputFormat::F16, InputFormat::F16),
    ] {
        let case = Case {
            m: 19,
            n: 37,
            depth: 41,
            transpose_a: false,
            transpose_b: true,
            formats,
            accumulate: true,
            bias: true,
        };
        run(&ctx, &case, &mut rng);
    }
    let case = Case {
        m: 40,
        n: 50,
        depth: 60,
        transpose_a: true,
        transpose_b: false,
        formats: f32s,
        accumulate: true,
        bias: true,
    };
    run(&ctx, &case, &mut rng);
}

#[test]
fn products_larger_than_a_binding_are_cut_into_blocks() {
    // 1 KiB bindings: 256 f32 per binding, so every operand below is cut along i, j or k.
    let ctx = GpuContext::new_blocking()
        .expect("GPU tests need a GPU adapter")
        .with_binding_limit(1024);
    let mut rng = Rng::new(16);
    let f32s = (InputFormat::F32, InputFormat::F32);
    for (transpose_a, transpose_b) in [(false, true), (false, false), (true, false)] {
        let case = Case {
            m: 45,
            n: 70,
            depth: 90,
            transpose_a,
            transpose_b,
            formats: f32s,
            accumulate: false,
            bias: true,
        };
        run(&ctx, &case, &mut rng);
    }
    let case = Case {
        m: 9,
        n: 300,
        depth: 33,
        transpose_a: false,
        transpose_b: true,
        formats: (InputFormat::F16, InputFormat::F16),
        accumulate: true,
        bias: false,
    };
    run(&ctx, &case, &mut rng);
}

#[test]
fn column_sums_agree_with_the_f64_loop() {
    for limit in [None, Some(1024)] {
        let mut ctx = GpuContext::new_blocking().expect("GPU tests need a GPU adapter");
        if let Some(bytes) = limit {
            ctx = ctx.with_binding_limit(bytes);
        }
        let mut rng = Rng::new(17);
        let (rows, cols) = (7, 301);
        let values: Vec<f32> = (0..rows * cols).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let start: Vec<f32> = (0..cols).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let a_buf = buffer(&ctx, bytemuck::cast_slice(&values));
        let out = buffer(&ctx, bytemuck::cast_slice(&start));
        let view = View::rows((&a_buf).into(), InputFormat::F32, cols as u64);
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        encode_column_sums(
            &ctx,
            &mut encoder,
            (view, rows as u64, cols as u64),
            (&out).into(),
            true,
        )
        .expect("records");
        ctx.queue().submit(Some(encoder.finish()));
        let got: Vec<f32> = read(&ctx, (&out).into(), cols).expect("reads");
        for j in 0..cols {
            let want = f64::from(start[j]) + (0..rows).map(|i| f64::from(values[i * cols + j])).sum::<f64>();
            assert!(
                close(f64::from(got[j]), want, tolerance(rows)),
                "column {j}: {} vs {want}",
                got[j]
            );
        }
    }
}
/// A product 40,000 deep (a vocabulary's worth: ∂h = G·W sums over V) is summed in
/// launches of `MAX_DEPTH`: in one launch lavapipe dropped part of the sum.
#[test]
fn deep_products_agree_with_the_f64_loop() {
    let ctx = GpuContext::new_blocking().expect("GPU tests need a GPU adapter");
    let mut rng = Rng::new(18);
    let f32s = (InputFormat::F32, InputFormat::F32);
    let case = Case {
        m: 8,
        n: 4,
        depth: 40_000,
        transpose_a: false,
        transpose_b: false,
        formats: f32s,
        accumulate: false,
        bias: true,
    };
    run(&ctx, &case, &mut rng);
}
