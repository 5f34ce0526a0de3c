//! The fused linear cross-entropy past the device's limits and in an app's buffers: W
//! larger than one binding, host data larger than one buffer (vocabulary parts, row
//! groups), a recording over app buffers at odd offsets with a target out of range
//! flagged on the GPU, and bad input refused with errors that name it.

mod common;

use common::linear::{assert_agree, data};
use common::{app_buffer, gpu, Rng};
use wgpu_loss::{
    Backend, BufferAt, CrossEntropy, GpuContext, Grads, InputAt, LinearBatch, LinearBatchAt, LinearCrossEntropy,
    LinearForwardBackward, LinearMode, LinearOutputs, LossError, Reduction, Status, TargetsAt, Upstream,
};

#[test]
fn w_larger_than_a_binding_and_host_data_larger_than_a_buffer() {
    let mut rng = Rng::new(1511);
    let shape = [300, 40, 600];
    let d = data(&mut rng, shape);
    let batch = LinearBatch::new(&d.h, &d.w, shape, &d.targets).bias(&d.b);
    for (name, ce) in [
        ("mean", CrossEntropy::default().label_smoothing(0.1)),
        ("sum", CrossEntropy::default().reduction(Reduction::Sum).z_loss(1e-3)),
    ] {
        let loss = LinearCrossEntropy::new(ce);
        let want = loss
            .forward_backward(Backend::Reference, &batch, Upstream::Scalar(1.0), Grads::ALL)
            .unwrap();
        // W is 96,000 bytes: past a 16 KiB binding (the products are cut into blocks).
        let small_binding = GpuContext::new_blocking().unwrap().with_binding_limit(16 << 10);
        let got = loss
            .forward_backward(Backend::Gpu(&small_binding), &batch, Upstream::Scalar(1.0), Grads::ALL)
            .unwrap();
        assert_agree(&format!("{name}: W past a binding"), &got, &want);
        // 32 KiB buffers: W in 3 vocabulary parts, h in 2 row groups, tiles of 13 rows.
        let small_buffer = GpuContext::new_blocking().unwrap().with_buffer_limit(32 << 10);
        let got = loss
            .forward_backward(Backend::Gpu(&small_buffer), &batch, Upstream::Scalar(1.0), Grads::ALL)
            .unwrap();
        assert_agree(&format!("{name}: parts and groups"), &got, &want);
    }
}

/// `values` after `pad` bytes of zeros.
fn padded(pad: usize, values: &[u8]) -> Vec<u8> {
    [vec![0_u8; pad], values.to_vec()].concat()
}

#[test]
fn recorded_over_app_buffers_at_offsets() {
    let ctx = gpu();
    let mut rng = Rng::new(1512);
    let shape = [90, 17, 71];
    let [rows, hidden, classes] = shape;
    let d = data(&mut rng, shape);
    let targets32: Vec<i32> = d.targets.iter().map(|&t| t as i32).collect();
    let h = app_buffer(&padded(16, bytemuck::cast_slice(&d.h)));
    let w = app_buffer(&padded(8, bytemuck::cast_slice(&d.w)));
    let b = app_buffer(&padded(4, bytemuck::cast_slice(&d.b)));
    let t = app_buffer(&padded(12, bytemuck::cast_slice(&targets32)));
    let results = app_buffer(&[0_u8; 4 + 8 + 4]);
    let grads = app_buffer(&vec![0xff_u8; 4 * (4 + rows * hidden + classes * hidden + classes)]);
    let at = |buffer, offset| BufferAt { buffer, offset };
    // One guard word before, between and after the three gradients.
    let (gh, gw, gb) = (4, 4 * (2 + rows * hidden), 4 * (3 + rows * hidden + classes * hidden));
    let loss = LinearCrossEntropy::new(CrossEntropy::default().weight(&vec![1.5; classes])).tile_bytes(25 * 71 * 4);
    let record = |targets: TargetsAt<'_>| {
        let batch =
            LinearBatchAt::new(InputAt::from(at(&h, 16)), InputAt::from(at(&w, 8)), shape, targets).bias(at(&b, 4));
        let outputs = LinearOutputs {
            loss: Some(at(&results, 4)),
            status: Some(at(&results, 12)),
            grad_h: Some(at(&grads, gh as u64)),
            grad_w: Some(at(&grads, gw as u64)),
            grad_b: Some(at(&grads, gb as u64)),
            upstream: Upstream::Scalar(2.0),
            ..LinearOutputs::default()
        };
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        loss.encode(ctx, &mut encoder, &batch, &outputs).unwrap();
        ctx.queue().submit(Some(encoder.finish()));
    };
    record(TargetsAt::I32(at(&t, 12)));
    let batch = LinearBatch::new(&d.h, &d.w, shape, &d.targets).bias(&d.b);
    let want = loss
        .forward_backward(Backend::Reference, &batch, Upstream::Scalar(2.0), Grads::ALL)
        .unwrap();
    let read = |offset: usize, len: usize| wgpu_loss::read::<f32>(ctx, at(&grads, offset as u64), len).unwrap();
    let got = LinearForwardBackward {
        loss: wgpu_loss::LossValue::Scalar(wgpu_loss::read::<f32>(ctx, at(&results, 4), 1).unwrap()[0]),
        grad_h: Some(read(gh, rows * hidden)),
        grad_w: Some(read(gw, classes * hidden)),
        grad_b: Some(read(gb, classes)),
        ..want.clone()
    };
    assert_agree("recorded", &got, &want);
    assert!(Status(wgpu_loss::read::<u32>(ctx, at(&results, 12), 1).unwrap()[0]).is_ok());
    // Nothing outside the gradients moved.
    let guards = [0, gw - 4, gb - 4, gb + 4 * classes];
    for g in guards {
        assert_eq!(read(g, 1)[0].to_bits(), u32::MAX, "the word at byte {g} moved");
    }
    // A target out of range is flagged with its row, and the loss becomes NaN.
    let mut bad = targets32.clone();
    bad[57] = classes as i32;
    let bad_t = app_buffer(&padded(12, bytemuck::cast_slice(&bad)));
    record(TargetsAt::I32(at(&bad_t, 12)));
    let status = Status(wgpu_loss::read::<u32>(ctx, at(&results, 12), 1).unwrap()[0]);
    assert_eq!(status.bad_row(), Some(57));
    assert!(wgpu_loss::read::<f32>(ctx, at(&results, 4), 1).unwrap()[0].is_nan());
}

/// A recording with reduction `none`: f16 h and bf16 W at offsets (odd rows of D = 9
/// halves), the per-row upstream read from the app's buffer at an offset, the row outputs
/// (lse, argmax) written at offsets; against the reference on the same rounded values.
#[test]
fn recorded_none_with_half_inputs_a_per_row_upstream_and_row_outputs() {
    use wgpu_loss::half::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
    let ctx = gpu();
    let mut rng = Rng::new(1515);
    let shape = [70, 9, 45];
    let [rows, hidden, classes] = shape;
    let d = data(&mut rng, shape);
    let h16: Vec<u16> = d.h.iter().map(|&x| f32_to_f16(x)).collect();
    let w16: Vec<u16> = d.w.iter().map(|&x| f32_to_bf16(x)).collect();
    let he: Vec<f32> = h16.iter().map(|&x| f16_to_f32(x)).collect();
    let we: Vec<f32> = w16.iter().map(|&x| bf16_to_f32(x)).collect();
    let ce = CrossEntropy::default()
        .reduction(Reduction::None)
        .label_smoothing(0.1)
        .row_outputs(true);
    let loss = LinearCrossEntropy::new(ce).tile_bytes((16 * classes * 4) as u64);
    let exact = LinearBatch::new(&he, &we, shape, &d.targets).bias(&d.b);
    let upstream = Upstream::Values(&d.upstream[..]);
    let want = loss
        .forward_backward(Backend::Reference, &exact, upstream, Grads::ALL)
        .unwrap();
    let h = app_buffer(&padded(4, bytemuck::cast_slice(&h16)));
    let w = app_buffer(&padded(12, bytemuck::cast_slice(&w16)));
    let b = app_buffer(&padded(8, bytemuck::cast_slice(&d.b)));
    let t = app_buffer(&padded(16, bytemuck::cast_slice(&d.targets)));
    let up = app_buffer(&padded(20, bytemuck::cast_slice(&d.upstream)));
    // Row losses at 4, row stats (pairs) after them, then the argmax.
    let (stats_at, argmax_at) = (4 + 4 * rows, 4 + 12 * rows);
    let results = app_buffer(&vec![0_u8; argmax_at + 4 * rows]);
    let (gw, gb) = (4 * rows * hidden, 4 * (rows + classes) * hidden);
    let grads = app_buffer(&vec![0_u8; gb + 4 * classes]);
    let at = |buffer, offset: usize| BufferAt {
        buffer,
        offset: offset as u64,
    };
    let batch = LinearBatchAt::new(
        InputAt::f16(at(&h, 4)),
        InputAt::bf16(at(&w, 12)),
        shape,
        TargetsAt::I64(at(&t, 16)),
    )
    .bias(at(&b, 8));
    let outputs = LinearOutputs {
        loss: Some(at(&results, 4)),
        row_stats: Some(at(&results, stats_at)),
        argmax: Some(at(&results, argmax_at)),
        grad_h: Some(at(&grads, 0)),
        grad_w: Some(at(&grads, gw)),
        grad_b: Some(at(&grads, gb)),
        upstream: Upstream::Values(at(&up, 20)),
        ..LinearOutputs::default()
    };
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    loss.encode(ctx, &mut encoder, &batch, &outputs).unwrap();
    ctx.queue().submit(Some(encoder.finish()));
    let read = |buffer, offset: usize, len: usize| wgpu_loss::read::<f32>(ctx, at(buffer, offset), len).unwrap();
    let stats = read(&results, stats_at, 2 * rows);
    let got = LinearForwardBackward {
        loss: wgpu_loss::LossValue::Tensor {
            shape: vec![rows],
            values: read(&results, 4, rows),
        },
        grad_h: Some(read(&grads, 0, rows * hidden)),
        grad_w: Some(read(&grads, gw, classes * hidden)),
        grad_b: Some(read(&grads, gb, classes)),
        lse: Some(stats.iter().step_by(2).copied().collect()),
        argmax: Some(wgpu_loss::read::<u32>(ctx, at(&results, argmax_at), rows).unwrap()),
        ..want.clone()
    };
    assert_agree("recorded none, f16 h, bf16 W", &got, &want);
}

/// One row of logits wider than a binding: V = 5000 classes (20,000 bytes a row) against
/// a 16 KiB binding, so the products cut C's columns and the tile's cross-entropy takes
/// its split-row form (partial records merged per row), fused and unfused.
#[test]
fn a_logits_row_wider_than_a_binding() {
    let mut rng = Rng::new(1513);
    let shape = [6, 3, 5000];
    let d = data(&mut rng, shape);
    let batch = LinearBatch::new(&d.h, &d.w, shape, &d.targets).bias(&d.b);
    let small_binding = GpuContext::new_blocking().unwrap().with_binding_limit(16 << 10);
    let none = CrossEntropy::default().reduction(Reduction::None).row_outputs(true);
    for (name, ce, upstream) in [
        (
            "mean",
            CrossEntropy::default().label_smoothing(0.1).z_loss(1e-3),
            Upstream::Scalar(1.0),
        ),
        ("none", none, Upstream::Values(&d.upstream[..])),
    ] {
        for mode in [LinearMode::Fused, LinearMode::Unfused] {
            let loss = LinearCrossEntropy::new(ce.clone()).mode(mode).tile_bytes(4 * 5000 * 4);
            let want = loss
                .forward_backward(Backend::Reference, &batch, upstream, Grads::ALL)
                .unwrap();
            let got = loss
                .forward_backward(Backend::Gpu(&small_binding), &batch, upstream, Grads::ALL)
                .unwrap();
            assert_agree(&format!("{name} {mode:?}: a row past a binding"), &got, &want);
        }
    }
}

/// More rows than 65,535 workgroups of 64 reach: the row weights' launch and one tile's
/// products (4,195,240 rows in one tile) go past the per-dimension grid limit and are cut.
#[test]
fn rows_past_the_workgroup_grid() {
    let mut rng = Rng::new(1514);
    let shape = [65_535 * 64 + 1000, 2, 3];
    let d = data(&mut rng, shape);
    let batch = LinearBatch::new(&d.h, &d.w, shape, &d.targets).bias(&d.b);
    let loss =
        LinearCrossEntropy::new(CrossEntropy::default().label_smoothing(0.1)).tile_bytes((shape[0] * 3 * 4) as u64);
    let want = loss
        .forward_backward(Backend::Reference, &batch, Upstream::Scalar(1.0), Grads::ALL)
        .unwrap();
    let got = loss
        .forward_backward(Backend::Gpu(gpu()), &batch, Upstream::Scalar(1.0), Grads::ALL)
        .unwrap();
    assert_agree("past the grid", &got, &want);
}

#[test]
fn bad_input_is_refused_naming_it() {
    let (h, w) = (vec![0.0_f32; 6], vec![0.0_f32; 8]);
    let loss = LinearCrossEntropy::default();
    let err = |batch: &LinearBatch<'_>| loss.forward(Backend::Gpu(gpu()), batch).unwrap_err();
    // W is [V, D] = [4, 2]: 8 elements; h [3, 2].
    let wrong_w = err(&LinearBatch::new(&h, &w[..6], [3, 2, 4], &[0_i64, 1, 2]));
    assert!(
        matches!(
            wrong_w,
            LossError::LengthMismatch {
                what: "W",
                expected: 8,
                actual: 6,
                ..
            }
        ),
        "{wrong_w}"
    );
    assert!(wrong_w.to_string().contains("[4, 2] (V, D)"), "{wrong_w}");
    let wrong_h = err(&LinearBatch::new(&h[..5], &w, [3, 2, 4], &[0_i64, 1, 2]));
    assert!(
        matches!(wrong_h, LossError::LengthMismatch { what: "h", .. }),
        "{wrong_h}"
    );
    let wrong_b = err(&LinearBatch::new(&h, &w, [3, 2, 4], &[0_i64, 1, 2]).bias(&[0.0_f32; 3]));
    assert!(
        matches!(
            wrong_b,
            LossError::LengthMismatch {
                what: "b",
                expected: 4,
                actual: 3,
                ..
            }
        ),
        "{wrong_b}"
    );
    let out_of_range = err(&LinearBatch::new(&h, &w, [3, 2, 4], &[0_i64, 4, 2]));
    assert!(
        matches!(out_of_range, LossError::TargetOutOfRange { row: 1, value: 4, .. }),
        "{out_of_range}"
    );
    let probabilities = err(&LinearBatch::new(&h, &w, [3, 2, 4], &[0.5_f32; 12][..]));
    assert!(
        matches!(probabilities, LossError::Unsupported { .. }),
        "{probabilities}"
    );
    let zero_classes = err(&LinearBatch::new(&h, &w[..0], [3, 2, 0], &[0_i64, 1, 2]));
    assert!(
        matches!(zero_classes, LossError::ZeroClasses { rows: 3 }),
        "{zero_classes}"
    );
    let nll = LinearCrossEntropy::new(CrossEntropy::nll());
    let not_logits = nll
        .forward(Backend::Cpu, &LinearBatch::new(&h, &w, [3, 2, 4], &[0_i64, 1, 2]))
        .unwrap_err();
    assert!(matches!(not_logits, LossError::Unsupported { .. }), "{not_logits}");
    let per_row = loss
        .forward_backward(
            Backend::Gpu(gpu()),
            &LinearBatch::new(&h, &w, [3, 2, 4], &[0_i64, 1, 2]),
            Upstream::Values(&[1.0; 3]),
            Grads::ALL,
        )
        .unwrap_err();
    assert!(matches!(per_row, LossError::Unsupported { .. }), "{per_row}");
    let overflow = err(&LinearBatch::new(&h, &w, [usize::MAX / 2, 3, 4], &[0_i64, 1, 2]));
    assert!(matches!(overflow, LossError::TooLarge { .. }), "{overflow}");
}

#[test]
fn an_empty_batch_gives_pytorchs_empty_sums() {
    let w = vec![0.5_f32; 8];
    let batch = LinearBatch::new(&[][..], &w, [0, 2, 4], &[][..] as &[i64]).bias(&[0.0_f32; 4]);
    for backend in [Backend::Gpu(gpu()), Backend::Cpu, Backend::Reference] {
        let mean = LinearCrossEntropy::default()
            .forward_backward(backend, &batch, Upstream::Scalar(1.0), Grads::ALL)
            .unwrap();
        assert!(mean.loss.scalar().unwrap().is_nan());
        assert_eq!(mean.grad_w.as_deref(), Some(&[0.0_f32; 8][..]));
        assert_eq!(mean.grad_b.as_deref(), Some(&[0.0_f32; 4][..]));
        assert_eq!(mean.grad_h.as_deref(), Some(&[][..]));
        let sum = LinearCrossEntropy::new(CrossEntropy::default().reduction(Reduction::Sum));
        assert_eq!(sum.forward(backend, &batch).unwrap().scalar(), Some(0.0));
    }
}
