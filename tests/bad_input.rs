//! Every bad input gets a typed error naming the shape or value, on both backends, before
//! anything is dispatched; targets already on the GPU are checked there, and a bad one shows
//! in the status word of the recording ([`Status`]).

mod common;

use common::gpu;
use wgpu_loss::{
    wgpu, Backend, Batch, BatchAt, BufferAt, CrossEntropy, Loss, LossError, LossValue, Outputs, Reduction, RowOp,
    Status, Targets, TargetsAt,
};

/// The error of `loss` on `[rows, classes]` input, on the GPU and on the f64 reference.
fn both<'t>(
    loss: &CrossEntropy,
    logits: &'t [f32],
    rows: usize,
    classes: usize,
    targets: impl Into<Targets<'t>> + Copy,
) -> [LossError; 2] {
    let batch = Batch::new(logits, [rows, classes], targets);
    [
        loss.forward(Backend::Gpu(gpu()), &batch)
            .expect_err("gpu accepted bad input"),
        loss.forward(Backend::Reference, &batch)
            .expect_err("cpu accepted bad input"),
    ]
}

#[test]
fn logits_length_mismatch() {
    for err in both(&CrossEntropy::default(), &[0.0; 5], 2, 3, &[0_i64, 1][..]) {
        assert_eq!(
            err,
            LossError::LengthMismatch {
                what: "input",
                shape: "[2, 3]".into(),
                expected: 6,
                actual: 5
            }
        );
        assert_eq!(err.to_string(), "input has 5 elements, but shape [2, 3] needs 6");
    }
}

#[test]
fn targets_length_mismatch() {
    for err in both(&CrossEntropy::default(), &[0.0; 6], 2, 3, &[0_i64, 1, 2][..]) {
        assert!(
            matches!(
                err,
                LossError::LengthMismatch {
                    what: "targets",
                    expected: 2,
                    actual: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("[2, 3]"), "{err}");
    }
}

#[test]
fn weight_length_mismatch() {
    for err in both(
        &CrossEntropy::default().weight(&[1.0, 2.0]),
        &[0.0; 6],
        2,
        3,
        &[0_i64, 1][..],
    ) {
        assert!(
            matches!(
                err,
                LossError::LengthMismatch {
                    what: "weight",
                    expected: 3,
                    actual: 2,
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn target_out_of_range_names_row_and_value() {
    for (targets, row, value) in [
        (vec![0_i64, 3], 1, 3),
        (vec![-1, 0], 0, -1),
        (vec![0, i64::MAX], 1, i64::MAX),
    ] {
        for err in both(&CrossEntropy::default(), &[0.0; 6], 2, 3, &targets[..]) {
            assert_eq!(
                err,
                LossError::TargetOutOfRange {
                    row,
                    value,
                    classes: 3,
                    ignore_index: -100
                }
            );
            assert!(
                err.to_string().contains(&format!("target {value} at row {row}")),
                "{err}"
            );
        }
    }
    let t32 = [0_i32, 1, 7];
    for err in both(&CrossEntropy::default(), &[0.0; 9], 3, 3, &t32[..]) {
        assert_eq!(
            err,
            LossError::TargetOutOfRange {
                row: 2,
                value: 7,
                classes: 3,
                ignore_index: -100
            }
        );
    }
    // -100 is only special while it is the ignore_index.
    for err in both(
        &CrossEntropy::default().ignore_index(2),
        &[0.0; 6],
        2,
        3,
        &[-100_i64, 2][..],
    ) {
        assert_eq!(
            err,
            LossError::TargetOutOfRange {
                row: 0,
                value: -100,
                classes: 3,
                ignore_index: 2
            }
        );
    }
}

#[test]
fn shapes_without_a_class_axis() {
    // Cross-entropy takes [N, C], [N, C, d1, …] and unbatched [C] (tests/kdim.rs,
    // tests/unbatched.rs); the softmax family any rank ≥ 1 (tests/any_rank.rs). A 0-d input
    // has no class axis: refused on every backend and when recording. A K-dimensional input
    // whose targets do not match names both shapes.
    let logits = [0.0_f32; 6];
    for backend in [Backend::Gpu(gpu()), Backend::Cpu, Backend::Reference] {
        let batch = Batch::new(&logits, Vec::<usize>::new(), &[0_i64, 1]);
        let err = RowOp::Softmax
            .forward(backend, &Batch::input(&logits, Vec::<usize>::new()))
            .expect_err("softmax accepted a 0-d input");
        assert!(matches!(err, LossError::BadShape { .. }), "{backend:?}: {err}");
        let want = LossError::BadShape {
            what: "input",
            shape: Vec::new(),
            expected: "[N, C, d1, …], [N, C] or [C] (unbatched)",
        };
        let err = CrossEntropy::default()
            .forward(backend, &batch)
            .expect_err("cross-entropy accepted a 0-d input");
        assert_eq!(err, want, "{backend:?}");
        assert_eq!(
            err.to_string(),
            "input has shape [], but this loss takes [N, C, d1, …], [N, C] or [C] (unbatched)"
        );
        let err = CrossEntropy::default()
            .forward(backend, &Batch::new(&logits, [1, 2, 3], &[0_i64, 1]))
            .expect_err("2 targets for [1, 2, 3]");
        let text = err.to_string();
        assert!(
            matches!(
                err,
                LossError::LengthMismatch {
                    expected: 3,
                    actual: 2,
                    ..
                }
            ),
            "{text}"
        );
        assert!(text.contains("[1, 3]") && text.contains("[1, 2, 3]"), "{text}");
    }
    let buffer = gpu_buffer(bytemuck::cast_slice(&logits));
    let result = out_buffer(64);
    let mut encoder = gpu().device().create_command_encoder(&Default::default());
    let err = CrossEntropy::default()
        .encode(
            gpu(),
            &mut encoder,
            &BatchAt::new(&buffer, Vec::<usize>::new(), TargetsAt::I64((&buffer).into())),
            &Outputs::loss(&result),
        )
        .expect_err("recorded a 0-d input");
    assert!(matches!(err, LossError::BadShape { .. }), "{err}");
}

#[test]
fn label_smoothing_outside_unit_interval() {
    for eps in [-0.1, 1.5, f64::NAN] {
        for err in both(
            &CrossEntropy::default().label_smoothing(eps),
            &[0.0; 6],
            2,
            3,
            &[0_i64, 1][..],
        ) {
            assert!(
                matches!(err, LossError::LabelSmoothing(e) if e.is_nan() == eps.is_nan()),
                "{err}"
            );
        }
    }
}

#[test]
fn zero_classes() {
    for err in both(&CrossEntropy::default(), &[], 2, 0, &[0_i64, 0][..]) {
        assert_eq!(err, LossError::ZeroClasses { rows: 2 });
    }
}

#[test]
fn bad_weights() {
    for (weights, index, value) in [
        ([1.0, -0.5, 1.0], 1, -0.5),
        ([f32::NAN, 1.0, 1.0], 0, f32::NAN),
        ([1.0, 1.0, f32::INFINITY], 2, f32::INFINITY),
    ] {
        for err in both(
            &CrossEntropy::default().weight(&weights),
            &[0.0; 6],
            2,
            3,
            &[0_i64, 1][..],
        ) {
            match err {
                LossError::BadWeight { index: i, value: v, .. } => {
                    assert_eq!(i, index);
                    assert!(v == value || (v.is_nan() && value.is_nan()));
                }
                other => panic!("expected BadWeight, got {other}"),
            }
        }
    }
}

fn gpu_buffer(bytes: &[u8]) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    gpu().device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("test"),
        contents: bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    })
}

/// A buffer the recording writes (the loss, the status word): cleared, and read back.
fn out_buffer(size: u64) -> wgpu::Buffer {
    gpu().device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("test.out"),
        size,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// i32 targets that start after the buffer's first four (at byte offset 16).
fn i32_after_four(buffer: &wgpu::Buffer) -> TargetsAt<'_> {
    TargetsAt::I32(BufferAt { buffer, offset: 16 })
}

/// Records `loss` over `batch` into an encoder of its own, submits it, and reads back the
/// loss (`[N]` for reduction `none`, else the scalar of `[loss, divisor]`) and the status.
fn record(loss: &CrossEntropy, batch: &BatchAt<'_>) -> (LossValue, Status) {
    let ctx = gpu();
    let rows = batch.shape[0];
    let count = if loss.reduction == Reduction::None { rows } else { 2 };
    let result = out_buffer(4 * count as u64);
    let status = out_buffer(4);
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    loss.encode(
        ctx,
        &mut encoder,
        batch,
        &Outputs {
            loss: Some((&result).into()),
            status: Some((&status).into()),
            ..Default::default()
        },
    )
    .expect("recorded");
    ctx.queue().submit(Some(encoder.finish()));
    let values = wgpu_loss::read::<f32>(ctx, (&result).into(), count).expect("read loss");
    let word = wgpu_loss::read::<u32>(ctx, (&status).into(), 1).expect("read status")[0];
    let value = if loss.reduction == Reduction::None {
        LossValue::Tensor {
            shape: vec![rows],
            values,
        }
    } else {
        LossValue::Scalar(values[0])
    };
    (value, Status(word))
}

#[test]
fn targets_on_the_gpu_are_checked_on_the_gpu() {
    let (rows, classes) = (300, 5);
    let logits = gpu_buffer(bytemuck::cast_slice(&vec![0.5_f32; rows * classes]));
    // i64: a huge value (high word set), a negative one and one just past C; the first wins.
    let mut t64: Vec<i64> = (0..rows as i64).map(|r| r % 5).collect();
    t64[250] = 5;
    t64[77] = 1 << 40;
    t64[123] = -3;
    t64[10] = -100; // ignored, fine
    let buf64 = gpu_buffer(bytemuck::cast_slice(&t64));
    for reduction in [Reduction::None, Reduction::Mean] {
        let loss = CrossEntropy::default().reduction(reduction);
        let (value, status) = record(
            &loss,
            &BatchAt::new(&logits, [rows, classes], TargetsAt::I64((&buf64).into())),
        );
        assert_eq!(status.bad_row(), Some(77), "{reduction:?}: {status:?}");
        assert!(!status.is_ok());
        // The bad row's loss is NaN (so is a reduction over it), never a plausible number.
        let bad = match reduction {
            Reduction::None => value.values()[77],
            _ => value.values()[0],
        };
        assert!(bad.is_nan(), "{reduction:?}: loss {bad} over a bad target");
        // The same targets from the host: the error names the row and the value.
        let err = loss
            .forward(
                Backend::Gpu(gpu()),
                &Batch::new(&vec![0.5_f32; rows * classes], [rows, classes], &t64),
            )
            .expect_err("bad target from the host");
        assert_eq!(
            err,
            LossError::TargetOutOfRange {
                row: 77,
                value: 1 << 40,
                classes,
                ignore_index: -100
            }
        );
    }
    // i32 at a byte offset: the first 4 targets of the buffer are not part of the input.
    let mut t32: Vec<i32> = (0..rows as i32 + 4).map(|r| r % 5).collect();
    t32[0] = 99;
    t32[4 + 200] = -7;
    let buf32 = gpu_buffer(bytemuck::cast_slice(&t32));
    let (_, status) = record(
        &CrossEntropy::default(),
        &BatchAt::new(&logits, [rows, classes], i32_after_four(&buf32)),
    );
    assert_eq!(status.bad_row(), Some(200), "{status:?}");
    let err = CrossEntropy::default()
        .forward(
            Backend::Gpu(gpu()),
            &Batch::new(&vec![0.5_f32; rows * classes], [rows, classes], &t32[4..]),
        )
        .expect_err("bad target from the host");
    assert_eq!(
        err,
        LossError::TargetOutOfRange {
            row: 200,
            value: -7,
            classes,
            ignore_index: -100
        }
    );
    // And valid targets in GPU buffers give the host-path result.
    t32[4 + 200] = 2;
    let buf32 = gpu_buffer(bytemuck::cast_slice(&t32));
    let (on_gpu, status) = record(
        &CrossEntropy::default(),
        &BatchAt::new(&logits, [rows, classes], i32_after_four(&buf32)),
    );
    assert!(status.is_ok(), "valid: {status:?}");
    assert_eq!(status.bad_row(), None);
    let host = CrossEntropy::default()
        .forward(
            Backend::Gpu(gpu()),
            &Batch::new(&vec![0.5_f32; rows * classes], [rows, classes], &t32[4..]),
        )
        .expect("host");
    assert_eq!(on_gpu, host);
}

#[test]
fn gpu_buffers_too_small_or_misaligned() {
    let logits = gpu_buffer(&[0; 24]); // 6 floats
    let targets = gpu_buffer(&[0; 16]);
    let t = TargetsAt::I64((&targets).into());
    // Room for any loss these shapes give, so that the input and targets are what is wrong.
    let result = out_buffer(64);
    let encode = |batch: BatchAt<'_>| {
        let mut encoder = gpu().device().create_command_encoder(&Default::default());
        CrossEntropy::default().encode(gpu(), &mut encoder, &batch, &Outputs::loss(&result))
    };
    let err = encode(BatchAt::new(&logits, [3, 3], t)).expect_err("too small");
    assert!(matches!(err, LossError::BadBuffer { what: "input", .. }), "{err}");
    assert!(err.to_string().contains("36 bytes"), "{err}");
    let err = encode(BatchAt::new(
        BufferAt {
            buffer: &logits,
            offset: 2,
        },
        [1, 3],
        t,
    ))
    .expect_err("misaligned");
    assert!(matches!(err, LossError::BadBuffer { what: "input", .. }), "{err}");
    let err = encode(BatchAt::new(
        &logits,
        [2, 3],
        TargetsAt::I64(BufferAt {
            buffer: &targets,
            offset: 8,
        }),
    ))
    .expect_err("targets too small");
    assert!(matches!(err, LossError::BadBuffer { what: "targets", .. }), "{err}");
}

#[test]
fn loss_family_bad_input() {
    use wgpu_loss::{ElementwiseLoss, InputKind};
    let ctx = gpu();
    let both = |loss: &ElementwiseLoss, x: &[f32], y: &[f32], shape: &[usize]| {
        let batch = Batch::new(x, shape, y);
        [
            loss.forward(Backend::Gpu(ctx), &batch)
                .expect_err("gpu accepted bad input"),
            loss.forward(Backend::Reference, &batch)
                .expect_err("cpu accepted bad input"),
        ]
    };
    // Shapes that do not match.
    for err in both(&ElementwiseLoss::mse(), &[0.0; 6], &[0.0; 5], &[2, 3]) {
        assert_eq!(
            err,
            LossError::LengthMismatch {
                what: "target",
                shape: "[2, 3]".into(),
                expected: 6,
                actual: 5
            }
        );
    }
    for err in both(
        &ElementwiseLoss::bce_with_logits().pos_weight(&[1.0, 2.0]),
        &[0.0; 6],
        &[0.0; 6],
        &[2, 3],
    ) {
        assert!(
            matches!(
                err,
                LossError::LengthMismatch {
                    what: "pos_weight",
                    expected: 3,
                    actual: 2,
                    ..
                }
            ),
            "{err}"
        );
    }
    // Probabilities outside [0, 1] (NaN too) for BCE, input or target.
    for (x, y, what, index) in [
        ([0.5, 1.5], [0.0, 1.0], "input", 1),
        ([0.5, f32::NAN], [0.0, 1.0], "input", 1),
        ([0.5, 0.5], [-0.1, 1.0], "target", 0),
    ] {
        for err in both(&ElementwiseLoss::bce(), &x, &y, &[2]) {
            assert!(
                matches!(err, LossError::NotAProbability { what: w, index: i, .. } if w == what && i == index),
                "{err}"
            );
            assert!(err.to_string().contains("is not a probability in [0, 1]"), "{err}");
        }
    }
    // Options a loss does not take.
    for (loss, option) in [
        (ElementwiseLoss::mse().weight(&[1.0, 1.0, 1.0]), "weight"),
        (ElementwiseLoss::bce().pos_weight(&[1.0, 1.0, 1.0]), "pos_weight"),
        (ElementwiseLoss::mse().log_target(true), "log_target"),
        (
            ElementwiseLoss::bce().reduction(Reduction::BatchMean),
            "reduction batchmean",
        ),
    ] {
        for err in both(&loss, &[0.5; 6], &[0.5; 6], &[2, 3]) {
            assert!(
                matches!(err, LossError::Unsupported { option: o, .. } if o == option),
                "{err}"
            );
        }
    }
    let ce_cases = [
        (CrossEntropy::nll().label_smoothing(0.1), "label smoothing"),
        (
            CrossEntropy::default().reduction(Reduction::BatchMean),
            "reduction batchmean",
        ),
    ];
    for (loss, option) in ce_cases {
        let batch = Batch::new(&[0.0; 6], [2, 3], &[0_i64, 1]);
        let err = loss.forward(Backend::Reference, &batch).expect_err("unsupported");
        assert!(
            matches!(err, LossError::Unsupported { option: o, .. } if o == option),
            "{err}"
        );
        let err = loss.forward(Backend::Gpu(ctx), &batch).expect_err("unsupported");
        assert!(
            matches!(err, LossError::Unsupported { option: o, .. } if o == option),
            "{err}"
        );
    }
    // A negative or non-finite epsilon.
    for eps in [-1e-7, f64::NAN, f64::INFINITY] {
        let loss = CrossEntropy::default()
            .input_kind(InputKind::Probabilities)
            .epsilon(eps);
        let err = loss
            .forward(Backend::Gpu(ctx), &Batch::new(&[0.5; 6], [2, 3], &[0_i64, 1]))
            .expect_err("bad epsilon");
        assert!(
            matches!(err, LossError::BadEpsilon(e) if e.to_bits() == eps.to_bits()),
            "{err}"
        );
    }
    // Probability targets of the wrong length; row ops on a bad shape.
    let err = CrossEntropy::default()
        .forward(Backend::Gpu(ctx), &Batch::new(&[0.0; 6], [2, 3], &[0.5_f32; 5]))
        .expect_err("short targets");
    assert!(
        matches!(
            err,
            LossError::LengthMismatch {
                what: "targets",
                expected: 6,
                actual: 5,
                ..
            }
        ),
        "{err}"
    );
    let err = RowOp::Softmax
        .forward(Backend::Gpu(ctx), &Batch::input(&[0.0; 5], [2, 3]))
        .expect_err("short input");
    assert!(
        matches!(
            err,
            LossError::LengthMismatch {
                what: "input",
                expected: 6,
                actual: 5,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        RowOp::Entropy
            .forward(Backend::Reference, &Batch::input(&[0.0_f32; 0], [2, 0]))
            .expect_err("C = 0"),
        LossError::ZeroClasses { rows: 2 }
    );
}
