//! PyTorch's K-dimensional cross-entropy and NLL: input `[N, C, d1, …, dk]` (class axis 1),
//! class-index targets `[N, d1, …, dk]` or probabilities shaped like the input; `none`
//! gives `[N, d1, …, dk]`. Golden values and gradients from `tests/golden/kdim_golden.py`
//! (PyTorch 2.15, autograd) on every backend; the reference's gradient against finite
//! differences; random ranks 1–5 and odd sizes against the reference with every option and
//! the row outputs; the recorded form at offsets; f16 and bf16; splits under lowered binding
//! and buffer limits (along N, along the positions and classes of a slice); the CLI; and
//! the shapes refused.

mod common;

use common::{assert_close, gpu, Tolerance};
use wgpu_loss::{
    Backend, Batch, BatchAt, BufferAt, CrossEntropy, GradInto, Input, Loss, LossError, Outputs, Reduction, TargetsAt,
    Upstream,
};

enum Target {
    Indices(Vec<i64>),
    Probabilities(Vec<f32>),
}

struct KdimCase {
    name: &'static str,
    loss: CrossEntropy,
    shape: Vec<usize>,
    input: Vec<f32>,
    target: Target,
    upstream: Option<Vec<f32>>,
    out_shape: Vec<usize>,
    want: Vec<f64>,
    grad: Vec<f64>,
}

include!("golden/kdim_cases.rs");

/// f32 results (every backend) against PyTorch's float64 values: a few f32 roundings of
/// O(1) values over at most 4 classes, and a mean over at most 12 positions.
const GOLDEN: Tolerance = Tolerance {
    name: "kdim.golden",
    atol: 3e-6,
    rtol: 3e-6,
};

/// Random shapes against the f64 reference: f32 sums over up to 17 classes and a few
/// hundred positions (the mean's sum), each rounded once more on the GPU.
const RANDOM: Tolerance = Tolerance {
    name: "kdim.random",
    atol: 3e-6,
    rtol: 3e-5,
};

impl KdimCase {
    fn batch(&self) -> Batch<'_> {
        match &self.target {
            Target::Indices(t) => Batch::new(&self.input[..], self.shape.clone(), &t[..]),
            Target::Probabilities(p) => Batch::new(&self.input[..], self.shape.clone(), &p[..]),
        }
    }

    fn upstream(&self) -> Upstream<&[f32]> {
        self.upstream.as_deref().map_or(Upstream::Scalar(1.0), Upstream::Values)
    }
}

#[test]
fn kdim_matches_pytorch_on_every_backend() {
    for case in kdim_cases() {
        for (label, backend) in [
            ("reference", Backend::Reference),
            ("cpu", Backend::Cpu),
            ("gpu", Backend::Gpu(gpu())),
        ] {
            let what = format!("{} {:?} ({label})", case.name, case.shape);
            let out = case
                .loss
                .forward_backward(backend, &case.batch(), case.upstream())
                .expect(&what);
            assert_eq!(out.loss.shape(), case.out_shape, "{what}: loss shape");
            assert_close(&what, out.loss.values(), &case.want, GOLDEN);
            assert_close(&format!("{what} grad"), &out.grad, &case.grad, GOLDEN);
        }
    }
}

/// A random shape of rank 1–5 with odd sizes (`[C]`, `[N, C]`, `[N, C, d1, …]`) and its
/// class axis.
fn random_shape(rng: &mut common::Rng, rank: usize) -> (Vec<usize>, usize) {
    let mut shape: Vec<usize> = (0..rank)
        .map(|_| 1 + rng.below(if rank > 3 { 5 } else { 11 }))
        .collect();
    let axis = usize::from(rank > 1);
    shape[axis] = 1 + rng.below(17);
    (shape, axis)
}

#[test]
fn random_ranks_1_to_5_and_options_agree_with_the_reference() {
    let mut rng = common::Rng::new(1414);
    for trial in 0..40 {
        let (shape, axis) = random_shape(&mut rng, 1 + trial % 5);
        let (classes, len) = (shape[axis], shape.iter().product::<usize>());
        let positions = len / classes;
        let x = rng.logits(len, 4.0);
        let mut targets = rng.targets(positions, classes);
        targets.iter_mut().step_by(5).for_each(|t| *t = -100);
        let probs: Vec<f32> = (0..len).map(|_| rng.uniform(0.0, 1.0)).collect();
        let weight: Vec<f32> = (0..classes).map(|_| rng.uniform(0.1, 2.0)).collect();
        let reduction = [Reduction::Mean, Reduction::Sum, Reduction::None][trial % 3];
        let mut loss = CrossEntropy::default().reduction(reduction);
        match trial % 5 {
            0 => loss = loss.weight(&weight).label_smoothing(0.1),
            1 => loss = loss.z_loss(1e-3).softcap(6.0),
            2 => loss = loss.row_outputs(true),
            3 => loss = CrossEntropy::nll().reduction(reduction).weight(&weight),
            _ => {}
        }
        let batch = if trial % 5 == 4 {
            Batch::new(&x[..], shape.clone(), &probs[..])
        } else {
            Batch::new(&x[..], shape.clone(), &targets[..])
        };
        let upstream: Vec<f32> = (0..positions).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let upstream = if reduction == Reduction::None {
            Upstream::Values(&upstream[..])
        } else {
            Upstream::Scalar(0.5)
        };
        let want = loss
            .forward_backward(Backend::Reference, &batch, upstream)
            .expect("reference");
        let mut row_shape = shape.clone();
        row_shape.remove(axis);
        if reduction == Reduction::None {
            assert_eq!(want.loss.shape(), row_shape, "none keeps [N, d1, …]");
        }
        for (label, backend) in [("cpu", Backend::Cpu), ("gpu", Backend::Gpu(gpu()))] {
            let what = format!("trial {trial}: {shape:?} {reduction:?} ({label})");
            let got = loss.forward_backward(backend, &batch, upstream).expect(&what);
            assert_eq!(got.loss.shape(), want.loss.shape(), "{what}");
            let values: Vec<f64> = want.loss.values().iter().map(|&v| f64::from(v)).collect();
            assert_close(&what, got.loss.values(), &values, RANDOM);
            let grad: Vec<f64> = want.grad.iter().map(|&v| f64::from(v)).collect();
            assert_close(&format!("{what} grad"), &got.grad, &grad, RANDOM);
            if label == "gpu" && loss.row_outputs {
                let lse: Vec<f64> = want.lse.as_ref().expect("lse").iter().map(|&v| f64::from(v)).collect();
                assert_close(&format!("{what} lse"), got.lse.as_ref().expect("lse"), &lse, RANDOM);
                assert_eq!(got.argmax, want.argmax, "{what}: argmax per position");
                assert_eq!(
                    got.accuracy.map(f32::to_bits),
                    want.accuracy.map(f32::to_bits),
                    "{what}"
                );
            }
        }
    }
}

#[test]
fn kdim_records_into_the_apps_buffers_at_offsets() {
    let ctx = gpu();
    let init = common::app_buffer;
    let lead = |v: &[u8]| [&[7_u8; 16][..], v].concat();
    for case in kdim_cases().into_iter().filter(|c| c.upstream.is_some()) {
        let len = case.input.len();
        let out_len = case.want.len();
        let x = init(&lead(bytemuck::cast_slice(&case.input)));
        let targets = match &case.target {
            Target::Indices(t) => init(&lead(bytemuck::cast_slice(t))),
            Target::Probabilities(p) => init(&lead(bytemuck::cast_slice(p))),
        };
        let up = init(&lead(bytemuck::cast_slice(case.upstream.as_deref().expect("upstream"))));
        let out = init(&lead(&vec![0; 4 * out_len]));
        let grad = init(&lead(&vec![0; 4 * len]));
        let at = |buffer| BufferAt { buffer, offset: 16 };
        let targets_at = match case.target {
            Target::Indices(_) => TargetsAt::I64(at(&targets)),
            Target::Probabilities(_) => TargetsAt::F32(at(&targets)),
        };
        let batch = BatchAt::new(at(&x), case.shape.clone(), targets_at);
        let outputs = Outputs {
            grad: Some((GradInto::Buffer(at(&grad)), Upstream::Values(at(&up)))),
            ..Outputs::loss(at(&out))
        };
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        case.loss.encode(ctx, &mut encoder, &batch, &outputs).expect(case.name);
        ctx.queue().submit(Some(encoder.finish()));
        let what = format!("recorded {}", case.name);
        let got = wgpu_loss::read::<f32>(ctx, at(&out), out_len).expect("read");
        assert_close(&what, &got, &case.want, GOLDEN);
        let got = wgpu_loss::read::<f32>(ctx, at(&grad), len).expect("read");
        assert_close(&format!("{what} grad"), &got, &case.grad, GOLDEN);
    }
}

#[test]
fn half_inputs_match_their_f32_values() {
    use wgpu_loss::half::{f32_to_bf16, f32_to_f16};
    let mut rng = common::Rng::new(16);
    let shape = vec![3, 5, 4, 3];
    let x = rng.logits(180, 3.0);
    let targets = rng.targets(36, 5);
    let f16: Vec<u16> = x.iter().map(|&v| f32_to_f16(v)).collect();
    let bf16: Vec<u16> = x.iter().map(|&v| f32_to_bf16(v)).collect();
    let loss = CrossEntropy::default().label_smoothing(0.05);
    for (label, input) in [("f16", Input::F16(&f16)), ("bf16", Input::Bf16(&bf16))] {
        let widened = input.to_f32();
        let want = loss
            .forward_backward(
                Backend::Reference,
                &Batch::new(&widened[..], shape.clone(), &targets[..]),
                Upstream::Scalar(1.0),
            )
            .expect("reference");
        let values: Vec<f64> = want.loss.values().iter().map(|&v| f64::from(v)).collect();
        let grad: Vec<f64> = want.grad.iter().map(|&v| f64::from(v)).collect();
        for (side, backend) in [("cpu", Backend::Cpu), ("gpu", Backend::Gpu(gpu()))] {
            let what = format!("{label} {shape:?} ({side})");
            let got = loss
                .forward_backward(
                    backend,
                    &Batch::new(input, shape.clone(), &targets[..]),
                    Upstream::Scalar(1.0),
                )
                .expect(&what);
            assert_close(&what, got.loss.values(), &values, RANDOM);
            assert_close(&format!("{what} grad"), &got.grad, &grad, RANDOM);
        }
    }
}

#[test]
fn kdim_splits_past_the_binding_and_buffer_limits_along_n() {
    let base = gpu();
    let small = wgpu_loss::GpuContext::from_device(base.device().clone(), base.queue().clone())
        .with_binding_limit(4096)
        .with_buffer_limit(8192);
    // [37, 10, 9]: 37 slices of 10 × 9 (360 bytes): several pieces and host groups.
    let mut rng = common::Rng::new(17);
    let x = rng.logits(37 * 10 * 9, 3.0);
    let targets = rng.targets(37 * 9, 10);
    let probs: Vec<f32> = (0..x.len()).map(|_| rng.uniform(0.0, 1.0)).collect();
    let upstream: Vec<f32> = (0..37 * 9).map(|_| rng.uniform(-1.0, 1.0)).collect();
    for (loss, up) in [
        (CrossEntropy::default(), Upstream::Scalar(1.0)),
        (
            CrossEntropy::default().reduction(Reduction::None),
            Upstream::Values(&upstream[..]),
        ),
        (
            CrossEntropy::default().reduction(Reduction::Sum).z_loss(0.01),
            Upstream::Scalar(2.0),
        ),
    ] {
        for batch in [
            Batch::new(&x[..], [37, 10, 9], &targets[..]),
            Batch::new(&x[..], [37, 10, 9], &probs[..]),
        ] {
            let want = loss
                .forward_backward(Backend::Reference, &batch, up)
                .expect("reference");
            let got = loss.forward_backward(Backend::Gpu(&small), &batch, up).expect("split");
            let what = format!("{:?} under lowered limits", loss.reduction);
            let values: Vec<f64> = want.loss.values().iter().map(|&v| f64::from(v)).collect();
            assert_close(&what, got.loss.values(), &values, RANDOM);
            let grad: Vec<f64> = want.grad.iter().map(|&v| f64::from(v)).collect();
            assert_close(&format!("{what} grad"), &got.grad, &grad, RANDOM);
        }
    }
}

#[test]
fn mismatched_kdim_shapes_are_errors_naming_both() {
    let x = [0.0_f32; 2 * 3 * 4];
    // Target [2, 5] for input [2, 3, 4]: 10 class indices for 8 positions.
    let t = [0_i64; 10];
    let err = CrossEntropy::default()
        .forward(Backend::Cpu, &Batch::new(&x[..], [2, 3, 4], &t[..]))
        .expect_err("10 targets for 8 positions");
    assert!(matches!(err, LossError::LengthMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("[2, 4]") && text.contains("[2, 3, 4]"), "{text}");
    // Probabilities of the wrong length name the input's shape.
    let p = [0.0_f32; 20];
    let err = CrossEntropy::default()
        .forward(Backend::Cpu, &Batch::new(&x[..], [2, 3, 4], &p[..]))
        .expect_err("20 probabilities for 24");
    assert!(err.to_string().contains("[2, 3, 4]"), "{err}");
    // A target out of range names its position (flat index of [N, d1, …]).
    let mut t = [0_i64; 8];
    t[6] = 3;
    for backend in [Backend::Cpu, Backend::Gpu(gpu())] {
        let err = CrossEntropy::default()
            .forward(backend, &Batch::new(&x[..], [2, 3, 4], &t[..]))
            .expect_err("class 3 of 3");
        assert!(
            matches!(err, LossError::TargetOutOfRange { row: 6, value: 3, .. }),
            "{err}"
        );
    }
    // No classes.
    let err = CrossEntropy::default()
        .forward(Backend::Cpu, &Batch::new(&[][..], [2, 0, 4], &[0_i64; 8][..]))
        .expect_err("C = 0");
    assert!(matches!(err, LossError::ZeroClasses { .. }), "{err}");
}

#[test]
fn the_cli_reads_kdim_files_and_writes_pytorchs_shapes() {
    use common::cli::{output, refused};
    use wgpu_loss::npy::{self, NpyData};
    let dir = common::scratch("kdim", "cli");
    let case = kdim_cases().into_iter().find(|c| c.name == "3-d none").expect("case");
    let Target::Indices(t) = &case.target else {
        panic!("class indices")
    };
    npy::write_f32(dir.join("x.npy"), &case.shape, &case.input).expect("x");
    let header = |shape: &str| format!("{{'descr': '<i8', 'fortran_order': False, 'shape': {shape}, }}");
    common::npy_with_header(&dir.join("t.npy"), &header("(2, 3)"), bytemuck::cast_slice(t));
    common::npy_with_header(&dir.join("t_flat.npy"), &header("(6,)"), bytemuck::cast_slice(t));
    assert_eq!(case.out_shape, [2, 3], "the case's positions");
    let extra = ["--reduction", "none", "--out", "o.npy", "--grad-out", "g.npy"];
    for backend in ["gpu", "cpu", "reference"] {
        let mut args = common::cli::compute("cross-entropy", "x.npy", Some("t.npy"), &extra);
        args.extend(["--backend", backend]);
        let run = output(&dir, &args);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let saved = npy::read(dir.join("o.npy")).expect("o.npy");
        assert_eq!(saved.shape, case.out_shape, "{backend}: --out is [N, d1]");
        let NpyData::F32(values) = saved.data else {
            panic!("float32")
        };
        assert_close(&format!("cli {backend}"), &values, &case.want, GOLDEN);
        // --grad-out: the input's shape, for an upstream of ones.
        let ones = vec![1.0_f32; case.want.len()];
        let batch = case.batch();
        let want = case
            .loss
            .forward_backward(Backend::Reference, &batch, Upstream::Values(&ones))
            .expect("reference");
        let saved = npy::read(dir.join("g.npy")).expect("g.npy");
        assert_eq!(saved.shape, case.shape, "{backend}: --grad-out is the input's shape");
        let NpyData::F32(grad) = saved.data else {
            panic!("float32")
        };
        let want: Vec<f64> = want.grad.iter().map(|&v| f64::from(v)).collect();
        assert_close(&format!("cli {backend} grad"), &grad, &want, RANDOM);
    }
    // Targets flattened to [6] for the input [2, 4, 3]: one line naming both shapes.
    refused(
        &dir,
        &common::cli::compute("cross-entropy", "x.npy", Some("t_flat.npy"), &["--out", "bad.npy"]),
        "must be int64 or int32 [2, 3] (class indices) or float32 [2, 4, 3] (probabilities) for --input [2, 4, 3], got int64 [6]",
    );
    assert!(!dir.join("bad.npy").exists());
}

#[test]
fn a_slice_larger_than_a_binding_splits_along_s_and_c() {
    let base = gpu();
    let small =
        wgpu_loss::GpuContext::from_device(base.device().clone(), base.queue().clone()).with_binding_limit(4096);
    let mut rng = common::Rng::new(18);
    // Slices of 2100, 4500 and 1517 elements against a binding of ~1000: runs of positions
    // with blocks of classes beside them, one class per piece, and ragged blocks.
    for shape in [vec![2, 300, 7], vec![1, 3, 1500], vec![3, 37, 41]] {
        let (classes, len) = (shape[1], shape.iter().product::<usize>());
        let positions = len / classes;
        let x = rng.logits(len, 4.0);
        let mut targets = rng.targets(positions, classes);
        targets.iter_mut().step_by(7).for_each(|t| *t = -100);
        let probs: Vec<f32> = (0..len).map(|_| rng.uniform(0.0, 1.0)).collect();
        let upstream: Vec<f32> = (0..positions).map(|_| rng.uniform(-1.0, 1.0)).collect();
        for (loss, up) in [
            (CrossEntropy::default().label_smoothing(0.1), Upstream::Scalar(1.0)),
            (
                CrossEntropy::default().reduction(Reduction::None).row_outputs(true),
                Upstream::Values(&upstream[..]),
            ),
            (
                CrossEntropy::default().reduction(Reduction::Sum).z_loss(0.01),
                Upstream::Scalar(0.5),
            ),
        ] {
            for batch in [
                Batch::new(&x[..], shape.clone(), &targets[..]),
                Batch::new(&x[..], shape.clone(), &probs[..]),
            ] {
                let want = loss
                    .forward_backward(Backend::Reference, &batch, up)
                    .expect("reference");
                let what = format!("{shape:?} {:?} split along S and C", loss.reduction);
                let got = loss.forward_backward(Backend::Gpu(&small), &batch, up).expect(&what);
                let values: Vec<f64> = want.loss.values().iter().map(|&v| f64::from(v)).collect();
                assert_close(&what, got.loss.values(), &values, RANDOM);
                let grad: Vec<f64> = want.grad.iter().map(|&v| f64::from(v)).collect();
                assert_close(&format!("{what} grad"), &got.grad, &grad, RANDOM);
                if let (Some(lse), Some(got_lse)) = (&want.lse, &got.lse) {
                    let lse: Vec<f64> = lse.iter().map(|&v| f64::from(v)).collect();
                    assert_close(&format!("{what} lse"), got_lse, &lse, RANDOM);
                    assert_eq!(got.argmax, want.argmax, "{what}: argmax");
                }
            }
        }
    }
}

#[test]
fn a_slice_larger_than_the_largest_buffer_runs_in_runs_of_positions() {
    // Host groups are whole outer slices; one slice larger than a buffer is gathered in runs
    // of its positions ([1, C, len] each), its gradient scattered back.
    let base = gpu();
    let small = wgpu_loss::GpuContext::from_device(base.device().clone(), base.queue().clone()).with_buffer_limit(4096);
    let mut rng = common::Rng::new(19);
    let x = rng.logits(2 * 40 * 30, 3.0);
    let mut targets = rng.targets(60, 40);
    targets[7] = -100;
    let probs: Vec<f32> = (0..x.len()).map(|_| rng.uniform(0.0, 1.0)).collect();
    let upstream: Vec<f32> = (0..60).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let f16: Vec<u16> = x.iter().map(|&v| wgpu_loss::half::f32_to_f16(v)).collect();
    let widened = Input::F16(&f16).to_f32();
    for (loss, up) in [
        (CrossEntropy::default().label_smoothing(0.1), Upstream::Scalar(1.0)),
        (
            CrossEntropy::default().reduction(Reduction::None).row_outputs(true),
            Upstream::Values(&upstream[..]),
        ),
    ] {
        for (label, batch, plain) in [
            (
                "indices",
                Batch::new(&x[..], [2, 40, 30], &targets[..]),
                Batch::new(&x[..], [2, 40, 30], &targets[..]),
            ),
            (
                "probabilities",
                Batch::new(&x[..], [2, 40, 30], &probs[..]),
                Batch::new(&x[..], [2, 40, 30], &probs[..]),
            ),
            (
                "f16",
                Batch::new(Input::F16(&f16), [2, 40, 30], &targets[..]),
                Batch::new(&widened[..], [2, 40, 30], &targets[..]),
            ),
        ] {
            let what = format!("{label} {:?} in runs", loss.reduction);
            let want = loss
                .forward_backward(Backend::Reference, &plain, up)
                .expect("reference");
            let got = loss.forward_backward(Backend::Gpu(&small), &batch, up).expect(&what);
            assert_eq!(got.loss.shape(), want.loss.shape(), "{what}");
            let values: Vec<f64> = want.loss.values().iter().map(|&v| f64::from(v)).collect();
            assert_close(&what, got.loss.values(), &values, RANDOM);
            let grad: Vec<f64> = want.grad.iter().map(|&v| f64::from(v)).collect();
            assert_close(&format!("{what} grad"), &got.grad, &grad, RANDOM);
            assert_eq!(got.argmax, want.argmax, "{what}: argmax");
        }
    }
    // A bad class index in a later run names its position in the whole call.
    let mut bad = targets.clone();
    bad[47] = 40;
    let err = CrossEntropy::default()
        .forward(Backend::Gpu(&small), &Batch::new(&x[..], [2, 40, 30], &bad[..]))
        .expect_err("class 40 of 40");
    assert!(
        matches!(err, LossError::TargetOutOfRange { row: 47, value: 40, .. }),
        "{err}"
    );
    // One position larger than a buffer is refused, naming the shape.
    let wide = vec![0.0_f32; 2 * 2000];
    let err = CrossEntropy::default()
        .forward(
            Backend::Gpu(&small),
            &Batch::new(&wide[..], [1, 2000, 2], &[0_i64, 1][..]),
        )
        .expect_err("a position of 8000 bytes");
    assert!(matches!(err, LossError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("2000"), "{err}");
}

#[test]
fn the_references_kdim_gradient_matches_finite_differences() {
    // Central differences of the f64 reference's loss (rounded to f32 once: ~1e-7 of an O(1)
    // loss, divided by 2h = 2e-2 gives ~1e-5), with weights, smoothing, an ignored position,
    // z-loss and soft-cap over [2, 3, 2, 2].
    let mut rng = common::Rng::new(20);
    let shape = [2, 3, 2, 2];
    let x = rng.logits(24, 2.0);
    let mut t = rng.targets(8, 3);
    t[3] = -100;
    let weight = [0.5_f32, 1.5, 1.0];
    let loss = CrossEntropy::default()
        .weight(&weight)
        .label_smoothing(0.1)
        .z_loss(0.01)
        .softcap(4.0);
    let value = |x: &[f32]| -> f64 {
        let out = loss
            .forward(Backend::Reference, &Batch::new(x, shape, &t[..]))
            .expect("reference");
        f64::from(out.values()[0])
    };
    let grad = loss
        .forward_backward(
            Backend::Reference,
            &Batch::new(&x[..], shape, &t[..]),
            Upstream::Scalar(1.0),
        )
        .expect("reference")
        .grad;
    let h = 1e-2_f32;
    let numeric: Vec<f64> = (0..x.len())
        .map(|i| {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += h;
            down[i] -= h;
            (value(&up) - value(&down)) / (2.0 * f64::from(h))
        })
        .collect();
    const FINITE_DIFFERENCES: Tolerance = Tolerance {
        name: "kdim.finite_differences",
        atol: 1e-4,
        rtol: 1e-3,
    };
    assert_close("∂loss/∂x of [2, 3, 2, 2]", &grad, &numeric, FINITE_DIFFERENCES);
}

#[test]
fn four_positions_at_a_time_agree_with_the_reference_at_every_alignment() {
    // Plain f32 logits whose positions' classes are a multiple of 4 apart take four
    // positions per invocation with vec4 loads (and gradient stores) when the buffers are
    // 16-byte aligned; any other offset takes one position per invocation. Both, forward and
    // gradient (into a buffer and in place), against the reference.
    let mut rng = common::Rng::new(21);
    for shape in [vec![3, 5, 8], vec![2, 7, 4, 3], vec![1, 3, 16], vec![5, 1, 4]] {
        let (classes, len) = (shape[1], shape.iter().product::<usize>());
        let positions = len / classes;
        let x = rng.logits(len, 4.0);
        let mut targets = rng.targets(positions, classes);
        targets[positions / 2] = -100;
        let upstream: Vec<f32> = (0..positions).map(|_| rng.uniform(-1.0, 1.0)).collect();
        for (loss, up) in [
            (
                CrossEntropy::default().reduction(Reduction::None),
                Upstream::Values(&upstream[..]),
            ),
            (
                CrossEntropy::default().label_smoothing(0.2).z_loss(0.01),
                Upstream::Scalar(1.0),
            ),
            (CrossEntropy::default().reduction(Reduction::Sum), Upstream::Scalar(0.5)),
        ] {
            let batch = Batch::new(&x[..], shape.clone(), &targets[..]);
            let want = loss
                .forward_backward(Backend::Reference, &batch, up)
                .expect("reference");
            let values: Vec<f64> = want.loss.values().iter().map(|&v| f64::from(v)).collect();
            let grad: Vec<f64> = want.grad.iter().map(|&v| f64::from(v)).collect();
            for (lead, in_place) in [(0_usize, false), (1, false), (4, false), (0, true), (3, true)] {
                let what = format!("{shape:?} {:?} at float {lead}, in place {in_place}", loss.reduction);
                let (got_loss, got_grad) = record(&loss, &x, &targets, (&shape, lead, in_place), up);
                assert_close(&what, &got_loss, &values, RANDOM);
                assert_close(&format!("{what} grad"), &got_grad, &grad, RANDOM);
            }
        }
    }
}

/// Records `loss` forward and backward over `x` at float `lead` of an app buffer (the
/// gradient in place, or into a buffer at the same lead) and reads both back.
fn record(
    loss: &CrossEntropy,
    x: &[f32],
    targets: &[i64],
    (shape, lead, in_place): (&[usize], usize, bool),
    up: Upstream<&[f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let ctx = gpu();
    let init = common::app_buffer;
    let positions = targets.len();
    let padded = [vec![7.0_f32; lead], x.to_vec()].concat();
    let input = init(bytemuck::cast_slice(&padded));
    let grad = init(bytemuck::cast_slice(&vec![0.0_f32; padded.len()]));
    let t = init(bytemuck::cast_slice(targets));
    let out = init(&vec![0; (4 * positions).max(8)]);
    let at = |buffer| BufferAt {
        buffer,
        offset: 4 * lead as u64,
    };
    let upstream_buffer;
    let upstream = match up {
        Upstream::Values(v) => {
            upstream_buffer = init(bytemuck::cast_slice(v));
            Upstream::Values((&upstream_buffer).into())
        }
        Upstream::Scalar(g) => Upstream::Scalar(g),
    };
    let into = if in_place {
        GradInto::InPlace
    } else {
        GradInto::Buffer(at(&grad))
    };
    let outputs = Outputs {
        grad: Some((into, upstream)),
        ..Outputs::loss(&out)
    };
    let batch = BatchAt::new(at(&input), shape.to_vec(), TargetsAt::I64((&t).into()));
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    loss.encode(ctx, &mut encoder, &batch, &outputs).expect("encode");
    ctx.queue().submit(Some(encoder.finish()));
    let values = if loss.reduction == Reduction::None {
        positions
    } else {
        1
    };
    let got_loss = wgpu_loss::read::<f32>(ctx, (&out).into(), values).expect("read");
    let from = if in_place { &input } else { &grad };
    let got_grad = wgpu_loss::read::<f32>(ctx, at(from), x.len()).expect("read");
    (got_loss, got_grad)
}
