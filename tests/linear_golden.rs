//! The fused linear cross-entropy against PyTorch: `F.cross_entropy(F.linear(h, W, b), y,
//! …)` and autograd's `∂h`, `∂W`, `∂b`, from `tests/golden/linear_golden.py` (PyTorch 2.15,
//! float64), on the reference, the fast CPU backend and the GPU, fused in tiles of two rows
//! and unfused.

mod common;

use common::{assert_close, gpu, Tolerance};
use wgpu_loss::{Backend, CrossEntropy, Grads, LinearBatch, LinearCrossEntropy, LinearMode, Reduction, Upstream};

struct LinearCase {
    name: &'static str,
    loss: CrossEntropy,
    shape: [usize; 3],
    h: Vec<f32>,
    w: Vec<f32>,
    b: Option<Vec<f32>>,
    targets: Vec<i64>,
    upstream: Option<Vec<f32>>,
    want: Vec<f64>,
    grad_h: Vec<f64>,
    grad_w: Vec<f64>,
    grad_b: Option<Vec<f64>>,
}

include!("golden/linear_cases.rs");

/// f32 results against PyTorch's float64 values: logits are f32 sums of at most 7
/// products of O(1) values, a few more f32 roundings in the cross-entropy of at most 11
/// classes, and gradients summed over at most 13 rows or 11 classes.
const GOLDEN: Tolerance = Tolerance {
    name: "linear.golden",
    atol: 3e-6,
    rtol: 1e-5,
};

#[test]
fn every_backend_gives_pytorchs_loss_and_gradients() {
    for case in linear_cases() {
        let mut batch = LinearBatch::new(&case.h[..], &case.w[..], case.shape, &case.targets[..]);
        if let Some(b) = &case.b {
            batch = batch.bias(&b[..]);
        }
        let upstream = case.upstream.as_deref().map_or(Upstream::Scalar(1.0), Upstream::Values);
        assert_eq!(
            case.upstream.is_some(),
            case.loss.reduction == Reduction::None,
            "{}",
            case.name
        );
        let row_bytes = case.shape[2] as u64 * 4;
        let fused = LinearCrossEntropy::new(case.loss.clone()).tile_bytes(2 * row_bytes);
        let unfused = fused.clone().mode(LinearMode::Unfused);
        let runs = [
            ("reference", &fused, Backend::Reference),
            ("cpu", &fused, Backend::Cpu),
            ("gpu fused", &fused, Backend::Gpu(gpu())),
            ("gpu unfused", &unfused, Backend::Gpu(gpu())),
        ];
        for (backend, loss, on) in runs {
            let what = format!("{} on {backend}", case.name);
            let got = loss.forward_backward(on, &batch, upstream, Grads::ALL).unwrap();
            assert_close(&format!("{what}: loss"), got.loss.values(), &case.want, GOLDEN);
            assert_close(
                &format!("{what}: ∂h"),
                got.grad_h.as_deref().unwrap(),
                &case.grad_h,
                GOLDEN,
            );
            assert_close(
                &format!("{what}: ∂W"),
                got.grad_w.as_deref().unwrap(),
                &case.grad_w,
                GOLDEN,
            );
            match (&got.grad_b, &case.grad_b) {
                (Some(got), Some(want)) => assert_close(&format!("{what}: ∂b"), got, want, GOLDEN),
                (None, None) => {}
                _ => panic!("{what}: ∂b present on one side only"),
            }
        }
    }
}

/// Like every other tensor the CLI reads or writes, row-major `.npy`.
fn float32(path: &std::path::Path) -> (Vec<usize>, Vec<f32>) {
    let saved = wgpu_loss::npy::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match saved.data {
        wgpu_loss::npy::NpyData::F32(values) => (saved.shape, values),
        _ => panic!("{}: not float32", path.display()),
    }
}

#[test]
fn the_cli_computes_the_loss_and_all_three_gradients() {
    use common::cli::{compute, output, refused};
    use wgpu_loss::npy;
    let dir = common::scratch("linear", "cli");
    let case = linear_cases().into_iter().find(|c| c.name == "mean").expect("case");
    let [rows, hidden, classes] = case.shape;
    npy::write_f32(dir.join("h.npy"), &[rows, hidden], &case.h).expect("h");
    npy::write_f32(dir.join("w.npy"), &[classes, hidden], &case.w).expect("w");
    npy::write_f32(dir.join("b.npy"), &[classes], case.b.as_deref().expect("bias")).expect("b");
    npy::write_f32(
        dir.join("w_bad.npy"),
        &[classes, hidden + 1],
        &vec![0.0; classes * (hidden + 1)],
    )
    .expect("w_bad");
    let header = format!("{{'descr': '<i8', 'fortran_order': False, 'shape': ({rows},), }}");
    common::npy_with_header(&dir.join("t.npy"), &header, bytemuck::cast_slice(&case.targets));
    let outputs = [
        "--linear-weight",
        "w.npy",
        "--linear-bias",
        "b.npy",
        "--out",
        "l.npy",
        "--grad-out",
        "gh.npy",
        "--grad-linear-weight-out",
        "gw.npy",
        "--grad-linear-bias-out",
        "gb.npy",
    ];
    for backend in ["gpu", "cpu", "reference"] {
        let mut args = compute("linear-cross-entropy", "h.npy", Some("t.npy"), &outputs);
        args.extend(["--backend", backend]);
        let run = output(&dir, &args);
        assert!(
            run.status.success(),
            "{backend}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        for (file, shape, want) in [
            ("l.npy", vec![], &case.want),
            ("gh.npy", vec![rows, hidden], &case.grad_h),
            ("gw.npy", vec![classes, hidden], &case.grad_w),
            ("gb.npy", vec![classes], case.grad_b.as_ref().expect("∂b")),
        ] {
            let (saved_shape, values) = float32(&dir.join(file));
            assert_eq!(saved_shape, shape, "{backend}: {file}'s shape");
            assert_close(&format!("cli {backend} {file}"), &values, want, GOLDEN);
        }
    }
    let fresh = ["--out", "new.npy", "--grad-linear-weight-out", "new_gw.npy"];
    let with = |extra: &[&'static str]| {
        let mut args = compute("linear-cross-entropy", "h.npy", Some("t.npy"), &fresh);
        args.extend_from_slice(extra);
        args
    };
    refused(
        &dir,
        &with(&["--linear-weight", "w_bad.npy"]),
        "--linear-weight w_bad.npy has shape [5, 5], but --input h.npy has shape [6, 4]: W must be [V, 4]",
    );
    refused(&dir, &with(&[]), "--loss linear-cross-entropy needs --linear-weight");
    refused(
        &dir,
        &with(&["--linear-weight", "w.npy", "--grad-linear-bias-out", "gb2.npy"]),
        "--grad-linear-bias-out needs --linear-bias",
    );
    refused(
        &dir,
        &with(&["--linear-weight", "w.npy", "--dim", "1"]),
        "--loss linear-cross-entropy does not take --dim",
    );
    refused(
        &dir,
        &with(&["--linear-weight", "w.npy", "--linear-bias", "w.npy"]),
        "--linear-bias w.npy must be [5]",
    );
    refused(
        &dir,
        &with(&["--linear-weight", "w.npy", "--grad-out", "new.npy"]),
        "the same file",
    );
    for file in ["new.npy", "new_gw.npy", "gb2.npy"] {
        assert!(!dir.join(file).exists(), "{file} was written by a command that failed");
    }
    let reused = compute("cross-entropy", "h.npy", Some("t.npy"), &["--linear-weight", "w.npy"]);
    refused(&dir, &reused, "--loss cross-entropy does not take --linear-weight");
}

#[test]
fn the_bench_times_fused_against_unfused() {
    let dir = common::scratch("linear", "bench");
    let args = [
        "bench",
        "--loss",
        "linear-cross-entropy",
        "--rows",
        "70",
        "--hidden",
        "9",
        "--classes",
        "300",
        "--repeat",
        "1",
        "--json",
    ];
    let run = common::cli::output(&dir, &args);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let json = String::from_utf8_lossy(&run.stdout);
    let rows: Vec<&str> = json
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split("},{")
        .collect();
    assert_eq!(rows.len(), 3, "cpu, gpu fused, gpu unfused: {json}");
    for (backend, mode) in [("cpu", "fused"), ("gpu", "fused"), ("gpu", "unfused")] {
        let row = rows
            .iter()
            .find(|r| r.contains(&format!("\"backend\":\"{backend}\"")) && r.contains(&format!("\"mode\":\"{mode}\"")))
            .unwrap_or_else(|| panic!("no {backend} {mode} row in {json}"));
        for key in [
            "\"hidden\":9",
            "\"classes\":300",
            "\"rows\":70",
            "\"peak_device_bytes\":",
            "\"fraction_of_ceiling\":",
            "\"max_abs_err\":",
        ] {
            assert!(row.contains(key), "{backend} {mode}: {key} missing in {row}");
        }
    }
    // The unfused call holds the whole [70, 300] logits (84,000 bytes); the fused holds less.
    let peak = |mode: &str| -> u64 {
        let row = rows
            .iter()
            .find(|r| r.contains("\"gpu\"") && r.contains(&format!("\"mode\":\"{mode}\"")))
            .expect("row");
        let at = row.find("\"peak_device_bytes\":").expect("key") + "\"peak_device_bytes\":".len();
        row[at..].split(',').next().expect("value").parse().expect("a number")
    };
    assert!(peak("unfused") >= 84_000, "unfused peak {}", peak("unfused"));
    assert!(
        peak("fused") <= peak("unfused"),
        "fused {} vs unfused {}",
        peak("fused"),
        peak("unfused")
    );
}
