//! f16 and bf16 inputs: the GPU reads the halves and accumulates in f32, so its results
//! match the f64 reference on the same rounded values (`HalfInput::to_f32`) within the f32
//! tolerances; odd class counts put rows at odd half offsets, and a lowered binding limit
//! splits them into chunks.

mod common;

use common::{assert_close, gpu, Rng, GRAD_TOLERANCE, REDUCED, ROW_LOSS};
use wgpu_loss::half::{f32_to_bf16, f32_to_f16};
use wgpu_loss::wgpu::{self, util::DeviceExt};
use wgpu_loss::{
    BufferAt, CrossEntropy, CrossEntropyOutputs, GpuContext, GpuTargets, GpuUpstream, GradInto, HalfInput, InputAt,
    Reduction, RowOp, TargetWidth, Upstream,
};

fn halves(values: &[f32], bf16: bool) -> Vec<u16> {
    values
        .iter()
        .map(|&v| if bf16 { f32_to_bf16(v) } else { f32_to_f16(v) })
        .collect()
}

fn input(bits: &[u16], bf16: bool) -> HalfInput<'_> {
    if bf16 {
        HalfInput::Bf16(bits)
    } else {
        HalfInput::F16(bits)
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
                let what = format!("{rows}x{classes} bf16={bf16}");
                let loss = CrossEntropy::default().label_smoothing(0.1).reduction(Reduction::None);
                let got = loss.forward_half(ctx, half, rows, classes, &targets).expect("gpu");
                let want = loss.forward_cpu(&rounded, rows, classes, &targets).expect("cpu");
                assert_close(&what, got.values(), &to64(want.values()), ROW_LOSS);
                let fb = CrossEntropy::default().z_loss(1e-3);
                let got = fb
                    .forward_backward_half(ctx, half, rows, classes, &targets, Upstream::Scalar(1.0))
                    .expect("gpu");
                let want = fb
                    .forward_backward_cpu(&rounded, rows, classes, &targets, Upstream::Scalar(1.0))
                    .expect("cpu");
                assert_close(
                    &format!("{what} loss"),
                    got.loss.values(),
                    &to64(want.loss.values()),
                    REDUCED,
                );
                assert_close(&format!("{what} grad"), &got.grad, &to64(&want.grad), GRAD_TOLERANCE);
                for op in [RowOp::Softmax, RowOp::Entropy] {
                    let got = op.forward_half(ctx, half, rows, classes).expect("gpu");
                    let want = op.forward_cpu(&rounded, rows, classes).expect("cpu");
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
    let rounded = HalfInput::F16(&bits).to_f32();
    assert_eq!(rounded[3], 65504.0);
    assert!(rounded[2] > 0.0 && rounded[2] < 1e-7, "subnormal {}", rounded[2]);
    let ctx = gpu();
    let loss = CrossEntropy::default().reduction(Reduction::None);
    let got = loss
        .forward_half(ctx, HalfInput::F16(&bits), 1, 6, &vec![3_i64])
        .expect("gpu");
    let want = loss.forward_cpu(&rounded, 1, 6, &vec![3_i64]).expect("cpu");
    assert_eq!(got.values(), want.values());
    let nan = [f32_to_f16(1.0), 0x7e00, f32_to_f16(2.0), f32_to_f16(0.5)];
    let got = loss
        .forward_half(ctx, HalfInput::F16(&nan), 2, 2, &vec![0_i64, 1])
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
    let outputs = CrossEntropyOutputs {
        grad: Some((GradInto::Buffer((&grad).into()), GpuUpstream::Scalar(1.0))),
        ..CrossEntropyOutputs::loss(&out)
    };
    let loss = CrossEntropy::default();
    let targets_at = GpuTargets {
        at: (&targets_buf).into(),
        width: TargetWidth::I32,
    };
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let at = InputAt::f16(BufferAt {
        buffer: &input_buf,
        offset: 6,
    });
    loss.encode(ctx, &mut encoder, at, rows, classes, targets_at, &outputs)
        .expect("encode");
    ctx.queue().submit(Some(encoder.finish()));
    let rounded = HalfInput::F16(&bits[3..3 + rows * classes]).to_f32();
    let targets64: Vec<i64> = targets.iter().map(|&t| i64::from(t)).collect();
    let want = loss
        .forward_backward_cpu(&rounded, rows, classes, &targets64, Upstream::Scalar(1.0))
        .expect("cpu");
    let got_loss = wgpu_loss::read_f32(ctx, (&out).into(), 1).expect("read");
    assert_close("half loss", &got_loss, &to64(want.loss.values()), REDUCED);
    let got_grad = wgpu_loss::read_f32(ctx, (&grad).into(), rows * classes).expect("read");
    assert_close("half grad", &got_grad, &to64(&want.grad), GRAD_TOLERANCE);
    // In place over half input is refused.
    let in_place = CrossEntropyOutputs {
        grad: Some((GradInto::InPlace, GpuUpstream::Scalar(1.0))),
        ..CrossEntropyOutputs::loss(&out)
    };
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let err = loss
        .encode(ctx, &mut encoder, at, rows, classes, targets_at, &in_place)
        .expect_err("in place f16");
    assert!(matches!(err, wgpu_loss::LossError::Unsupported { .. }), "{err}");
}
