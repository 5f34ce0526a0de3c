//! The softmax family on inputs of any rank along the last axis (PyTorch's `dim=-1`, and
//! `Categorical(logits=x).entropy()`): golden values and vector-Jacobian products from
//! `tests/golden/softmax_rank_golden.py` (PyTorch 2.15, autograd) on every backend, the
//! output shapes (the input's; without the last axis for entropy, 0-d for a 1-d input),
//! the CLI, and the shapes refused.

mod common;

use common::cli::{output, refused};
use common::{assert_close, gpu, Tolerance};
use wgpu_loss::npy::{self, NpyData};
use wgpu_loss::{Backend, Batch, Loss, LossError, RowOp, Upstream};

struct RankCase {
    op: RowOp,
    shape: Vec<usize>,
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
        let upstream: &[f32] = if case.op == RowOp::Entropy { &UE } else { &U };
        let batch = Batch::input(&X[..], [2, 3, 4]);
        for (label, backend) in [
            ("reference", Backend::Reference),
            ("cpu", Backend::Cpu),
            ("gpu", Backend::Gpu(gpu())),
        ] {
            let what = format!("{:?} of [2, 3, 4] ({label})", case.op);
            let out = case
                .op
                .forward_backward(backend, &batch, Upstream::Values(upstream))
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
        let case = rank_cases().into_iter().find(|c| c.op.name() == loss).expect("case");
        assert_close(loss, &values, &case.want, GOLDEN);
    }
    refused(
        &dir,
        &common::cli::compute("log-softmax", "scalar.npy", None, &["--out", "bad.npy"]),
        "must have rank 1 or more (the classes last), got []",
    );
    assert!(!dir.join("bad.npy").exists());
}
