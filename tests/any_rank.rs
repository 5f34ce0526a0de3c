//! The softmax family on inputs of any rank along any axis (`F.softmax(x, dim)`,
//! `F.log_softmax(x, dim)`, the entropy of the softmax along `dim`): golden values and
//! vector-Jacobian products from `tests/golden/softmax_rank_golden.py` (PyTorch 2.15,
//! autograd) on every backend, the output shapes (the input's; without the axis for
//! entropy, 0-d for a 1-d input), the recorded form, random ranks and dims against the
//! reference, the CLI's `--dim`, and the shapes and dims refused.

mod common;

use common::cli::{output, refused};
use common::{assert_close, gpu, Tolerance};
use wgpu_loss::npy::{self, NpyData};
use wgpu_loss::wgpu::{self, util::DeviceExt};
use wgpu_loss::{Backend, Batch, BatchAt, BufferAt, GradInto, Loss, LossError, Outputs, RowOp, TargetsAt, Upstream};

struct RankCase {
    op: RowOp,
    dim: i64,
    shape: Vec<usize>,
    upstream: Vec<f32>,
    want: Vec<f64>,
    vjp: Vec<f64>,
}

include!("golden/softmax_rank_cases.rs");

/// f32 results (every backend) against PyTorch's float64 values: a few f32 roundings of
/// O(1) values over rows of 4.
const GOLDEN: Tolerance = Tolerance {
    name: "softmax_rank.golden",
    atol: 2e-6,
    rtol: 2e-6,
};

#[test]
fn a_rank_3_input_matches_pytorch_on_every_backend() {
    for case in rank_cases() {
        let batch = Batch::input(&X[..], [2, 3, 4]);
        let loss = case.op.along(case.dim);
        for (label, backend) in [
            ("reference", Backend::Reference),
            ("cpu", Backend::Cpu),
            ("gpu", Backend::Gpu(gpu())),
        ] {
            let what = format!("{:?} along {} of [2, 3, 4] ({label})", case.op, case.dim);
            let out = loss
                .forward_backward(backend, &batch, Upstream::Values(&case.upstream))
                .expect(&what);
            assert_eq!(out.loss.shape(), case.shape, "{what}: output shape");
            assert_close(&what, out.loss.values(), &case.want, GOLDEN);
            assert_close(&format!("{what} vjp"), &out.grad, &case.vjp, GOLDEN);
        }
    }
}

#[test]
fn a_1d_input_is_one_row() {
    let x = [0.5_f32, -1.0, 2.0];
    for op in [RowOp::Softmax, RowOp::LogSoftmax, RowOp::Entropy] {
        let one = op.forward(Backend::Reference, &Batch::input(&x[..], [3])).expect("1-d");
        let row = op
            .forward(Backend::Reference, &Batch::input(&x[..], [1, 3]))
            .expect("[1, 3]");
        assert_eq!(one.values(), row.values(), "{op:?}");
        let want: Vec<usize> = if op == RowOp::Entropy { vec![] } else { vec![3] };
        assert_eq!(one.shape(), want, "{op:?} of a 1-d input");
    }
}

#[test]
fn shapes_without_a_class_axis_are_errors_naming_them() {
    let err = RowOp::Softmax
        .forward(Backend::Cpu, &Batch::input(&[1.0_f32][..], Vec::<usize>::new()))
        .expect_err("0-d");
    assert!(matches!(err, LossError::BadShape { .. }), "{err}");
    let err = RowOp::Softmax
        .forward(Backend::Cpu, &Batch::input(&[1.0_f32; 5][..], [2, 3, 1]))
        .expect_err("6 for 5");
    assert!(err.to_string().contains("[2, 3, 1]"), "{err}");
    let err = RowOp::Entropy
        .forward(Backend::Cpu, &Batch::input(&[][..], [2, 0]))
        .expect_err("no classes");
    assert!(matches!(err, LossError::ZeroClasses { .. }), "{err}");
}

#[test]
fn the_cli_keeps_the_input_shape() {
    let dir = common::scratch("any_rank", "cli");
    npy::write_f32(dir.join("x.npy"), &[2, 3, 4], &X).expect("x");
    npy::write_f32(dir.join("scalar.npy"), &[], &[1.0]).expect("0-d");
    for (loss, want) in [("softmax", vec![2, 3, 4]), ("entropy", vec![2, 3])] {
        let run = output(&dir, &common::cli::compute(loss, "x.npy", None, &["--out", "o.npy"]));
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let saved = npy::read(dir.join("o.npy")).expect("o.npy");
        assert_eq!(saved.shape, want, "{loss}");
        let NpyData::F32(values) = saved.data else {
            panic!("float32")
        };
        let case = rank_cases()
            .into_iter()
            .find(|c| c.op.name() == loss && c.dim == -1)
            .expect("case");
        assert_close(loss, &values, &case.want, GOLDEN);
    }
    // --dim: entropy along axis 0 of [2, 3, 4] is [3, 4].
    let run = output(
        &dir,
        &common::cli::compute("entropy", "x.npy", None, &["--dim", "0", "--out", "o.npy"]),
    );
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let saved = npy::read(dir.join("o.npy")).expect("o.npy");
    assert_eq!(saved.shape, vec![3, 4]);
    let NpyData::F32(values) = saved.data else {
        panic!("float32")
    };
    let case = rank_cases()
        .into_iter()
        .find(|c| c.op == RowOp::Entropy && c.dim == 0)
        .expect("case");
    assert_close("entropy --dim 0", &values, &case.want, GOLDEN);
    refused(
        &dir,
        &common::cli::compute("log-softmax", "scalar.npy", None, &["--out", "bad.npy"]),
        "must have rank 1 or more (the classes last), got []",
    );
    refused(
        &dir,
        &common::cli::compute("softmax", "x.npy", None, &["--dim", "-4", "--out", "bad.npy"]),
        "dim -4 is out of range for an input of shape [2, 3, 4]",
    );
    refused(
        &dir,
        &common::cli::compute("mse", "x.npy", Some("x.npy"), &["--dim", "0", "--out", "bad.npy"]),
        "--loss mse does not take --dim",
    );
    assert!(!dir.join("bad.npy").exists());
}

/// Softmax-family outputs and VJPs, f32 against the f64 reference: a few ulps of each value
/// plus Σ's relative error over up to 40 classes.
const RANDOM: Tolerance = Tolerance {
    name: "softmax_dim.random",
    atol: 2e-6,
    rtol: 2e-5,
};

#[test]
fn random_ranks_and_dims_agree_with_the_reference() {
    let mut rng = common::Rng::new(14);
    for trial in 0..24 {
        let rank = 1 + trial % 5;
        let shape: Vec<usize> = (0..rank).map(|_| 1 + rng.below(if rank > 3 { 5 } else { 9 })).collect();
        let len: usize = shape.iter().product();
        let x = rng.logits(len, 3.0);
        let dim = rng.below(2 * rank) as i64 - rank as i64;
        for op in [RowOp::Softmax, RowOp::LogSoftmax, RowOp::Entropy] {
            let loss = op.along(dim);
            let batch = Batch::input(&x[..], shape.clone());
            let want = loss.forward(Backend::Reference, &batch).expect("reference");
            let upstream: Vec<f32> = (0..want.values().len()).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let want = loss
                .forward_backward(Backend::Reference, &batch, Upstream::Values(&upstream))
                .expect("reference");
            for (label, backend) in [("cpu", Backend::Cpu), ("gpu", Backend::Gpu(gpu()))] {
                let what = format!("{op:?} along {dim} of {shape:?} ({label})");
                let got = loss
                    .forward_backward(backend, &batch, Upstream::Values(&upstream))
                    .expect(&what);
                assert_eq!(got.loss.shape(), want.loss.shape(), "{what}");
                let values: Vec<f64> = want.loss.values().iter().map(|&v| f64::from(v)).collect();
                assert_close(&what, got.loss.values(), &values, RANDOM);
                let grad: Vec<f64> = want.grad.iter().map(|&v| f64::from(v)).collect();
                assert_close(&format!("{what} vjp"), &got.grad, &grad, RANDOM);
            }
        }
    }
}

#[test]
fn a_dim_records_into_the_apps_buffers_at_offsets() {
    let ctx = gpu();
    let init = |contents: &[f32]| {
        ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("app"),
            contents: bytemuck::cast_slice(contents),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        })
    };
    let lead = |v: &[f32]| [&[9.0_f32; 3][..], v].concat();
    for case in rank_cases().into_iter().filter(|c| c.dim != -1) {
        let (x, up) = (init(&lead(&X)), init(&lead(&case.upstream)));
        let (out, grad) = (init(&[0.0; 3 + 24]), init(&[0.0; 3 + 24]));
        let at = |buffer| BufferAt { buffer, offset: 12 };
        let batch = BatchAt::new(at(&x), [2, 3, 4], TargetsAt::None);
        let loss = case.op.along(case.dim);
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        loss.encode(ctx, &mut encoder, &batch, &Outputs::loss(at(&out)))
            .expect("output");
        let vjp = Outputs {
            grad: Some((GradInto::Buffer(at(&grad)), Upstream::Values(at(&up)))),
            ..Outputs::default()
        };
        loss.encode(ctx, &mut encoder, &batch, &vjp).expect("vjp");
        ctx.queue().submit(Some(encoder.finish()));
        let what = format!("recorded {:?} along {}", case.op, case.dim);
        let got = wgpu_loss::read::<f32>(ctx, at(&out), case.want.len()).expect("read");
        assert_close(&what, &got, &case.want, GOLDEN);
        let got = wgpu_loss::read::<f32>(ctx, at(&grad), 24).expect("read");
        assert_close(&format!("{what} vjp"), &got, &case.vjp, GOLDEN);
    }
}

#[test]
fn a_dim_outside_the_axes_is_an_error_naming_it() {
    let batch = Batch::input(&X[..], [2, 3, 4]);
    for dim in [3, -4, i64::MAX, i64::MIN] {
        let err = RowOp::Softmax
            .along(dim)
            .forward(Backend::Cpu, &batch)
            .expect_err("bad dim");
        assert!(matches!(err, LossError::BadDim { .. }), "{err}");
        assert!(err.to_string().contains(&format!("dim {dim}")), "{err}");
    }
}

#[test]
fn a_dim_splits_past_the_binding_and_buffer_limits_along_the_outer_axes() {
    let base = gpu();
    let small = wgpu_loss::GpuContext::from_device(base.device().clone(), base.queue().clone())
        .with_binding_limit(4096)
        .with_buffer_limit(8192);
    // [37, 10, 9] along axis 1: 37 slices of 10 × 9 (360 bytes): several pieces and groups.
    let mut rng = common::Rng::new(15);
    let x = rng.logits(37 * 10 * 9, 3.0);
    let batch = Batch::input(&x[..], [37, 10, 9]);
    for op in [RowOp::Softmax, RowOp::LogSoftmax, RowOp::Entropy] {
        let loss = op.along(1);
        let upstream: Vec<f32> = (0..loss.forward(Backend::Reference, &batch).expect("ref").values().len())
            .map(|_| rng.uniform(-1.0, 1.0))
            .collect();
        let want = loss
            .forward_backward(Backend::Reference, &batch, Upstream::Values(&upstream))
            .expect("reference");
        let got = loss
            .forward_backward(Backend::Gpu(&small), &batch, Upstream::Values(&upstream))
            .expect("split");
        let what = format!("{op:?} along 1 under lowered limits");
        let values: Vec<f64> = want.loss.values().iter().map(|&v| f64::from(v)).collect();
        assert_close(&what, got.loss.values(), &values, RANDOM);
        let grad: Vec<f64> = want.grad.iter().map(|&v| f64::from(v)).collect();
        assert_close(&format!("{what} vjp"), &got.grad, &grad, RANDOM);
    }
    // One slice along the axis larger than a binding (10 × 120 × 4 = 4800 bytes): a host
    // call runs in runs of the slice's positions, gathered; a recording is refused, naming
    // the slice (the softmax family has no split form).
    let x = rng.logits(2 * 10 * 120, 3.0);
    let batch = Batch::input(&x[..], [2, 10, 120]);
    for op in [RowOp::Softmax, RowOp::LogSoftmax, RowOp::Entropy] {
        let loss = op.along(1);
        let len = loss.forward(Backend::Reference, &batch).expect("ref").values().len();
        let upstream: Vec<f32> = (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let want = loss
            .forward_backward(Backend::Reference, &batch, Upstream::Values(&upstream))
            .expect("reference");
        let got = loss
            .forward_backward(Backend::Gpu(&small), &batch, Upstream::Values(&upstream))
            .expect("runs of positions");
        let what = format!("{op:?} along 1 of [2, 10, 120] in runs");
        assert_eq!(got.loss.shape(), want.loss.shape(), "{what}");
        let values: Vec<f64> = want.loss.values().iter().map(|&v| f64::from(v)).collect();
        assert_close(&what, got.loss.values(), &values, RANDOM);
        let grad: Vec<f64> = want.grad.iter().map(|&v| f64::from(v)).collect();
        assert_close(&format!("{what} vjp"), &got.grad, &grad, RANDOM);
    }
    let input = small.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("app.input"),
        contents: bytemuck::cast_slice(&x),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let out = small.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("app.out"),
        size: 4 * x.len() as u64,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let mut encoder = small.device().create_command_encoder(&Default::default());
    let err = RowOp::Softmax
        .along(1)
        .encode(
            &small,
            &mut encoder,
            &BatchAt::new(&input, [2, 10, 120], TargetsAt::None),
            &Outputs::loss(&out),
        )
        .expect_err("a recorded slice of 4800 bytes");
    assert!(matches!(err, LossError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("10 × 120"), "{err}");
}

#[test]
fn half_inputs_along_a_dim_match_their_f32_values() {
    use wgpu_loss::half::{f32_to_bf16, f32_to_f16};
    use wgpu_loss::Input;
    let f16: Vec<u16> = X.iter().map(|&x| f32_to_f16(x)).collect();
    let bf16: Vec<u16> = X.iter().map(|&x| f32_to_bf16(x)).collect();
    for (label, input) in [("f16", Input::F16(&f16)), ("bf16", Input::Bf16(&bf16))] {
        // The half values widened are what every backend computes on.
        let widened = input.to_f32();
        for op in [RowOp::Softmax, RowOp::LogSoftmax, RowOp::Entropy] {
            for dim in [0, 1] {
                let loss = op.along(dim);
                let want = loss
                    .forward(Backend::Reference, &Batch::input(&widened[..], [2, 3, 4]))
                    .expect("reference");
                let want: Vec<f64> = want.values().iter().map(|&v| f64::from(v)).collect();
                for (side, backend) in [("cpu", Backend::Cpu), ("gpu", Backend::Gpu(gpu()))] {
                    let got = loss
                        .forward(backend, &Batch::input(input, [2, 3, 4]))
                        .expect("half input");
                    assert_close(
                        &format!("{label} {op:?} along {dim} ({side})"),
                        got.values(),
                        &want,
                        RANDOM,
                    );
                }
            }
        }
    }
}
