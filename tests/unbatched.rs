//! PyTorch's unbatched form of cross-entropy and NLL: input `[C]` with a 0-d target (one
//! class index, or probabilities `[C]`); `none` gives a 0-d value. Golden values and
//! gradients from `tests/golden/unbatched_golden.py` (PyTorch 2.15, autograd) on every
//! backend, the recorded form, the CLI, and the shapes it refuses.

mod common;

use common::cli::{output, refused};
use common::{assert_close, gpu, Tolerance};
use wgpu_loss::npy::{self, NpyData};
use wgpu_loss::{Backend, Batch, BatchAt, CrossEntropy, Loss, LossError, Outputs, Reduction, TargetsAt, Upstream};

enum Target {
    Index(i64),
    Probabilities(Vec<f32>),
}

struct Unbatched {
    name: &'static str,
    loss: CrossEntropy,
    target: Target,
    want: f64,
    grad: Vec<f64>,
}

include!("golden/unbatched_cases.rs");

/// f32 results (every backend) against PyTorch's float64 values: a few f32 roundings of
/// O(1) values over 5 classes.
const GOLDEN: Tolerance = Tolerance {
    name: "unbatched.golden",
    atol: 2e-6,
    rtol: 2e-6,
};

#[test]
fn unbatched_matches_pytorch_on_every_backend() {
    for case in unbatched_cases() {
        let index;
        let batch = match &case.target {
            Target::Index(t) => {
                index = [*t];
                Batch::new(&LOGITS[..], [5], &index[..])
            }
            Target::Probabilities(p) => Batch::new(&LOGITS[..], [5], &p[..]),
        };
        let none = case.loss.reduction == Reduction::None;
        let upstream = if none {
            Upstream::Values(&[1.0][..])
        } else {
            Upstream::Scalar(1.0)
        };
        for (label, backend) in [
            ("reference", Backend::Reference),
            ("cpu", Backend::Cpu),
            ("gpu", Backend::Gpu(gpu())),
        ] {
            let what = format!("{} ({label})", case.name);
            let out = case.loss.forward_backward(backend, &batch, upstream).expect(&what);
            assert_close(&what, out.loss.values(), &[case.want], GOLDEN);
            if none {
                assert_eq!(out.loss.shape(), Vec::<usize>::new(), "{what}: `none` is 0-d");
            }
            assert_close(&format!("{what} gradient"), &out.grad, &case.grad, GOLDEN);
        }
    }
}

#[test]
fn an_unbatched_input_records_into_the_apps_buffers() {
    let ctx = gpu();
    let init = common::app_buffer;
    let (logits, target, out) = (
        init(bytemuck::cast_slice(&LOGITS)),
        init(bytemuck::cast_slice(&[2_i64])),
        init(&[0; 8]),
    );
    let loss = CrossEntropy::default().reduction(Reduction::None);
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let batch = BatchAt::new(&logits, [5], TargetsAt::I64((&target).into()));
    loss.encode(ctx, &mut encoder, &batch, &Outputs::loss(&out))
        .expect("encode");
    ctx.queue().submit(Some(encoder.finish()));
    let got = wgpu_loss::read::<f32>(ctx, (&out).into(), 1).expect("read");
    let want = unbatched_cases()
        .into_iter()
        .find(|c| c.name == "none")
        .expect("case")
        .want;
    assert_close("recorded unbatched none", &got, &[want], GOLDEN);
}

#[test]
fn unbatched_shapes_that_do_not_fit_are_errors_naming_them() {
    let loss = CrossEntropy::default();
    // Two class indices for one position.
    let err = loss
        .forward(Backend::Reference, &Batch::new(&LOGITS[..], [5], &[1_i64, 2][..]))
        .expect_err("two targets");
    assert!(matches!(err, LossError::LengthMismatch { .. }), "{err}");
    assert!(err.to_string().contains("[5]"), "{err}");
    // Probabilities of the wrong length.
    let err = loss
        .forward(Backend::Reference, &Batch::new(&LOGITS[..], [5], &[0.5_f32; 4][..]))
        .expect_err("4 probabilities");
    assert!(err.to_string().contains("[5]"), "{err}");
    // An empty class axis.
    let err = loss
        .forward(Backend::Reference, &Batch::new(&[][..], [0], &[0_i64][..]))
        .expect_err("no classes");
    assert!(matches!(err, LossError::ZeroClasses { .. }), "{err}");
}

#[test]
fn the_cli_takes_an_unbatched_input_and_writes_a_0d_loss() {
    let dir = common::scratch("unbatched", "cli");
    npy::write_f32(dir.join("x.npy"), &[5], &LOGITS).expect("x");
    let header = |shape: &str| format!("{{'descr': '<i8', 'fortran_order': False, 'shape': {shape}, }}");
    common::npy_with_header(&dir.join("t.npy"), &header("()"), bytemuck::cast_slice(&[2_i64]));
    common::npy_with_header(&dir.join("t1.npy"), &header("(1,)"), bytemuck::cast_slice(&[2_i64]));
    let args = common::cli::compute(
        "cross-entropy",
        "x.npy",
        Some("t.npy"),
        &["--reduction", "none", "--out", "l.npy"],
    );
    let run = output(&dir, &args);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let saved = npy::read(dir.join("l.npy")).expect("l.npy");
    assert_eq!(saved.shape, Vec::<usize>::new(), "`none` of an unbatched input is 0-d");
    let NpyData::F32(values) = saved.data else {
        panic!("float32")
    };
    let want = unbatched_cases()
        .into_iter()
        .find(|c| c.name == "none")
        .expect("case")
        .want;
    assert_close("cli unbatched", &values, &[want], GOLDEN);
    // A 1-d target for an unbatched input names both shapes.
    let args = common::cli::compute("cross-entropy", "x.npy", Some("t1.npy"), &["--out", "bad.npy"]);
    refused(
        &dir,
        &args,
        "int64 or int32 [] (class indices) or float32 [5] (probabilities) for --input [5], got int64 [1]",
    );
    assert!(!dir.join("bad.npy").exists());
}
