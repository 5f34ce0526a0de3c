//! f16 and bf16 inputs: the GPU reads the halves and accumulates in f32, so its results
//! match the f64 reference on the same rounded values (`Input::to_f32`) within the f32
//! tolerances; odd class counts put rows at odd half offsets, and a lowered binding limit
//! splits them into chunks.

mod common;

use common::{assert_close, gpu, Rng, GRAD_TOLERANCE, REDUCED, ROW_LOSS};
use wgpu_loss::half::{f32_to_bf16, f32_to_f16};
use wgpu_loss::wgpu::{self, util::DeviceExt};
use wgpu_loss::{
    Backend, Batch, BatchAt, BufferAt, CrossEntropy, GpuContext, GradInto, Input, InputAt, Loss, Outputs, Reduction,
    RowOp, TargetsAt, Upstream,
};

fn halves(values: &[f32], bf16: bool) -> Vec<u16> {
    values
        .iter()
        .map(|&v| if bf16 { f32_to_bf16(v) } else { f32_to_f16(v) })
        .collect()
}

fn input(bits: &[u16], bf16: bool) -> Input<'_> {
    if bf16 {
        Input::Bf16(bits)
    } else {
        Input::F16(bits)
    }
}

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

#[test]
fn cross_entropy_and_row_ops_on_half_inputs() {
    let base = gpu();
    let small = GpuContext::from_device(base.device().clone(), base.queue().clone()).with_binding_limit(40_000);
    for ctx in [base, &small] {
        for (rows, classes) in [(1, 1), (7, 3), (33, 1001), (5, 4099)] {
            let mut rng = Rng::new((rows * classes) as u64);
            let logits = rng.logits(rows * classes, 6.0);
            let targets: Vec<i64> = (0..rows)
                .map(|r| if r % 4 == 3 { -100 } else { rng.below(classes) as i64 })
                .collect();
            for bf16 in [false, true] {
                let bits = halves(&logits, bf16);
                let half = input(&bits, bf16);
                let rounded = half.to_f32();
                let half_batch = Batch::new(half, [rows, classes], &targets);
                let rounded_batch = Batch::new(&rounded[..], [rows, classes], &targets);
                let what = format!("{rows}x{classes} bf16={bf16}");
                let loss = CrossEntropy::default().label_smoothing(0.1).reduction(Reduction::None);
                let got = loss.forward(Backend::Gpu(ctx), &half_batch).expect("gpu");
                let want = loss.forward(Backend::Reference, &rounded_batch).expect("cpu");
                assert_close(&what, got.values(), &to64(want.values()), ROW_LOSS);
                let fb = CrossEntropy::default().z_loss(1e-3);
                let got = fb
                    .forward_backward(Backend::Gpu(ctx), &half_batch, Upstream::Scalar(1.0))
                    .expect("gpu");
                let want = fb
                    .forward_backward(Backend::Reference, &rounded_batch, Upstream::Scalar(1.0))
                    .expect("cpu");
                assert_close(
                    &format!("{what} loss"),
                    got.loss.values(),
                    &to64(want.loss.values()),
                    REDUCED,
                );
                assert_close(&format!("{what} grad"), &got.grad, &to64(&want.grad), GRAD_TOLERANCE);
                for op in [RowOp::Softmax, RowOp::Entropy] {
                    let got = op
                        .forward(Backend::Gpu(ctx), &Batch::input(half, [rows, classes]))
                        .expect("gpu");
                    let want = op
                        .forward(Backend::Reference, &Batch::input(&rounded[..], [rows, classes]))
                        .expect("cpu");
                    let tol = common::Tolerance {
                        name: "softmax",
                        atol: 1e-7,
                        rtol: 2e-5,
                    };
                    assert_close(
                        &format!("{what} {op:?}"),
                        got.values(),
                        &to64(want.values()),
                        if op == RowOp::Softmax { tol } else { ROW_LOSS },
                    );
                }
            }
        }
    }
}

#[test]
fn half_special_values_decode_exactly() {
    // -inf masks a class, subnormals and the largest f16 are read exactly, NaN poisons its row.
    let row = [0.0_f32, f32::NEG_INFINITY, 6.0e-8, 65504.0, -65504.0, 1.0e-5];
    let bits = halves(&row, false);
    let rounded = Input::F16(&bits).to_f32();
    assert_eq!(rounded[3], 65504.0);
    assert!(rounded[2] > 0.0 && rounded[2] < 1e-7, "subnormal {}", rounded[2]);
    let ctx = gpu();
    let loss = CrossEntropy::default().reduction(Reduction::None);
    let got = loss
        .forward(Backend::Gpu(ctx), &Batch::new(Input::F16(&bits), [1, 6], &[3_i64]))
        .expect("gpu");
    let want = loss
        .forward(Backend::Reference, &Batch::new(&rounded[..], [1, 6], &[3_i64]))
        .expect("cpu");
    assert_eq!(got.values(), want.values());
    let nan = [f32_to_f16(1.0), 0x7e00, f32_to_f16(2.0), f32_to_f16(0.5)];
    let got = loss
        .forward(Backend::Gpu(ctx), &Batch::new(Input::F16(&nan), [2, 2], &[0_i64, 1]))
        .expect("gpu");
    assert!(got.values()[0].is_nan() && got.values()[1].is_finite(), "{got:?}");
}

#[test]
fn encoded_half_input_at_an_odd_element_offset() {
    let ctx = gpu();
    let (rows, classes) = (9, 77);
    let mut rng = Rng::new(4);
    let logits = rng.logits(rows * classes, 3.0);
    let mut bits = vec![0_u16; 3]; // three halves of other data: the input starts at byte 6
    bits.extend(halves(&logits, false));
    bits.push(0);
    let targets: Vec<i32> = (0..rows as i32).map(|r| (r * 7) % classes as i32).collect();
    let buffer = |contents: &[u8]| {
        ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("app"),
            contents,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        })
    };
    let input_buf = buffer(bytemuck::cast_slice(&bits));
    let targets_buf = buffer(bytemuck::cast_slice(&targets));
    let out = buffer(&[0; 8]);
    let grad = buffer(&vec![0; rows * classes * 4]);
    let outputs = Outputs {
        grad: Some((GradInto::Buffer((&grad).into()), Upstream::Scalar(1.0))),
        ..Outputs::loss(&out)
    };
    let loss = CrossEntropy::default();
    let targets_at = TargetsAt::I32((&targets_buf).into());
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let at = InputAt::f16(BufferAt {
        buffer: &input_buf,
        offset: 6,
    });
    let batch = BatchAt::new(at, [rows, classes], targets_at);
    loss.encode(ctx, &mut encoder, &batch, &outputs).expect("encode");
    ctx.queue().submit(Some(encoder.finish()));
    let rounded = Input::F16(&bits[3..3 + rows * classes]).to_f32();
    let targets64: Vec<i64> = targets.iter().map(|&t| i64::from(t)).collect();
    let want = loss
        .forward_backward(
            Backend::Reference,
            &Batch::new(&rounded[..], [rows, classes], &targets64),
            Upstream::Scalar(1.0),
        )
        .expect("cpu");
    let got_loss = wgpu_loss::read::<f32>(ctx, (&out).into(), 1).expect("read");
    assert_close("half loss", &got_loss, &to64(want.loss.values()), REDUCED);
    let got_grad = wgpu_loss::read::<f32>(ctx, (&grad).into(), rows * classes).expect("read");
    assert_close("half grad", &got_grad, &to64(&want.grad), GRAD_TOLERANCE);
    // In place over half input is refused.
    let in_place = Outputs {
        grad: Some((GradInto::InPlace, Upstream::Scalar(1.0))),
        ..Outputs::loss(&out)
    };
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let err = loss
        .encode(ctx, &mut encoder, &batch, &in_place)
        .expect_err("in place f16");
    assert!(matches!(err, wgpu_loss::LossError::Unsupported { .. }), "{err}");
}

/// Elementwise losses, GPU against the f64 reference on the same rounded values: one f32
/// log/exp and a few roundings of values of at most ~1e3 (as loss_family's `ELEMENT`);
/// BCE with logits adds a few ulp of |x| from the cancellation of its two terms.
const ELEMENT_HALF: common::Tolerance = common::Tolerance {
    name: "elementwise.half",
    atol: 1.5e-5,
    rtol: 4e-6,
};

#[test]
fn elementwise_losses_on_half_inputs_host_and_recorded() {
    use wgpu_loss::{ElementwiseLoss, Targets};
    let ctx = gpu();
    let (rows, cols) = (37, 33);
    let mut rng = Rng::new(11);
    let x = rng.logits(rows * cols, 6.0);
    let y: Vec<f32> = (0..rows * cols).map(|_| rng.uniform(0.0, 1.0)).collect();
    let weight: Vec<f32> = (0..cols).map(|c| 0.5 + c as f32 / cols as f32).collect();
    let losses = [
        ElementwiseLoss::mse().reduction(Reduction::None),
        ElementwiseLoss::bce_with_logits()
            .weight(&weight)
            .reduction(Reduction::Sum),
        ElementwiseLoss::kl_div().reduction(Reduction::BatchMean),
    ];
    for bf16 in [false, true] {
        let bits = halves(&x, bf16);
        let rounded = input(&bits, bf16).to_f32();
        for loss in &losses {
            let what = format!("{loss:?} bf16={bf16}");
            let half_batch = Batch::new(input(&bits, bf16), [rows, cols], Targets::F32(&y));
            let rounded_batch = Batch::new(&rounded[..], [rows, cols], Targets::F32(&y));
            let want = loss
                .forward_backward(Backend::Reference, &rounded_batch, Upstream::Scalar(1.0))
                .expect("reference");
            for backend in [Backend::Gpu(ctx), Backend::Cpu] {
                let got = loss
                    .forward_backward(backend, &half_batch, Upstream::Scalar(1.0))
                    .expect("half input");
                assert_close(&what, got.loss.values(), &to64(want.loss.values()), ELEMENT_HALF);
                assert_close(&format!("{what} grad"), &got.grad, &to64(&want.grad), ELEMENT_HALF);
            }
            // Recorded: the halves at byte offset 2 of the app's buffer, decoded on the GPU.
            let mut contents = vec![0_u16];
            contents.extend_from_slice(&bits);
            contents.push(0);
            let buffer = |bytes: &[u8]| {
                ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("app"),
                    contents: bytes,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                })
            };
            let input_buf = buffer(bytemuck::cast_slice(&contents));
            let target_buf = buffer(bytemuck::cast_slice(&y));
            let out = buffer(&vec![0; rows * cols * 4]);
            let at = BufferAt {
                buffer: &input_buf,
                offset: 2,
            };
            let at = if bf16 { InputAt::bf16(at) } else { InputAt::f16(at) };
            let batch = BatchAt::new(at, [rows, cols], TargetsAt::F32((&target_buf).into()));
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            loss.encode(ctx, &mut encoder, &batch, &Outputs::loss(&out))
                .expect("encode");
            ctx.queue().submit(Some(encoder.finish()));
            let count = want.loss.values().len();
            let got = wgpu_loss::read::<f32>(ctx, (&out).into(), count).expect("read");
            assert_close(
                &format!("{what} recorded"),
                &got,
                &to64(want.loss.values()),
                ELEMENT_HALF,
            );
        }
    }
}
