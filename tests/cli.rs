//! The `compute` contract, through the built binary: values on both backends, `--out`
//! shapes, and bad input (non-zero exit, exactly one line on stderr, no output file).

mod common;

use std::path::{Path, PathBuf};

use wgpu_loss::npy::{self, NpyData};
use wgpu_loss::{Backend, Batch, CrossEntropy, Loss, Reduction};

/// A fresh folder for one test's files.
fn scratch(name: &str) -> PathBuf {
    common::scratch("cli", name)
}

/// Minimal .npy writers for the integer targets (the crate only writes float32).
fn write_npy(path: &Path, descr: &str, shape: &[usize], payload: &[u8]) {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape_text = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    common::npy_with_header(path, &header, payload);
}

struct Files {
    dir: PathBuf,
    logits: Vec<f32>,
    targets: Vec<i64>,
    weight: Vec<f32>,
}

const ROWS: usize = 5;
const CLASSES: usize = 7;

fn files(name: &str) -> Files {
    let dir = scratch(name);
    let logits: Vec<f32> = (0..ROWS * CLASSES)
        .map(|i| ((i * 37) % 11) as f32 * 0.7 - 3.0)
        .collect();
    let targets: Vec<i64> = vec![0, 6, -100, 3, 2];
    let weight: Vec<f32> = (0..CLASSES).map(|c| 0.5 + c as f32 * 0.25).collect();
    npy::write_f32(dir.join("x.npy"), &[ROWS, CLASSES], &logits).expect("x");
    write_npy(&dir.join("t.npy"), "<i8", &[ROWS], bytemuck::cast_slice(&targets));
    let t32: Vec<i32> = targets.iter().map(|&t| t as i32).collect();
    write_npy(&dir.join("t32.npy"), "<i4", &[ROWS], bytemuck::cast_slice(&t32));
    npy::write_f32(dir.join("w.npy"), &[CLASSES], &weight).expect("w");
    Files {
        dir,
        logits,
        targets,
        weight,
    }
}

fn run(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = common::cli::output(dir, args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn compute_matches_the_library_on_both_backends() {
    let f = files("values");
    for backend in ["gpu", "cpu", "reference"] {
        for (reduction, kind) in [("mean", Reduction::Mean), ("sum", Reduction::Sum)] {
            let args = [
                "compute",
                "--loss",
                "cross-entropy",
                "--input",
                "x.npy",
                "--target",
                "t.npy",
                "--weight",
                "w.npy",
                "--label-smoothing",
                "0.1",
                "--reduction",
                reduction,
                "--backend",
                backend,
                "--out",
                "out.npy",
            ];
            let (ok, stdout, stderr) = run(&f.dir, &args);
            assert!(ok, "{backend} {reduction}: {stderr}");
            let want = CrossEntropy::default()
                .weight(&f.weight)
                .label_smoothing(0.1)
                .reduction(kind)
                .forward(Backend::Reference, &Batch::new(&f.logits, [ROWS, CLASSES], &f.targets))
                .expect("reference")
                .values()[0];
            let printed: f32 = stdout.trim().parse().expect("prints a number");
            assert!(
                (printed - want).abs() <= 1e-5 * want.abs().max(1.0),
                "{backend} {reduction}: {printed} vs {want}"
            );
            let saved = npy::read(f.dir.join("out.npy")).expect("out.npy");
            assert_eq!(
                saved.shape,
                Vec::<usize>::new(),
                "scalar results are saved with shape []"
            );
            assert_eq!(saved.data, NpyData::F32(vec![printed]));
        }
    }
}

#[test]
fn compute_none_writes_n_row_losses_and_takes_int32_targets() {
    let f = files("none");
    let (ok, stdout, stderr) = run(
        &f.dir,
        &[
            "compute",
            "--loss",
            "cross-entropy",
            "--input",
            "x.npy",
            "--target",
            "t32.npy",
            "--reduction",
            "none",
            "--out",
            "rows.npy",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("[5] values"), "{stdout}");
    let saved = npy::read(f.dir.join("rows.npy")).expect("rows.npy");
    assert_eq!(saved.shape, vec![ROWS]);
    let NpyData::F32(values) = saved.data else {
        panic!("float32")
    };
    assert_eq!(values[2], 0.0, "the ignored row");
    let want = CrossEntropy::default()
        .reduction(Reduction::None)
        .forward(Backend::Reference, &Batch::new(&f.logits, [ROWS, CLASSES], &f.targets))
        .expect("reference");
    for (g, w) in values.iter().zip(want.values()) {
        assert!((g - w).abs() <= 3e-5 + 1e-5 * w.abs(), "{g} vs {w}");
    }
}

#[test]
fn bad_input_is_one_line_and_leaves_no_file() {
    let f = files("bad");
    let bad_target = vec![0_i64, 9, 0, 0, 0];
    write_npy(
        &f.dir.join("t_bad.npy"),
        "<i8",
        &[ROWS],
        bytemuck::cast_slice(&bad_target),
    );
    write_npy(
        &f.dir.join("t_short.npy"),
        "<i8",
        &[3],
        bytemuck::cast_slice(&[0_i64, 1, 2]),
    );
    npy::write_f32(f.dir.join("x_1d.npy"), &[ROWS * CLASSES], &f.logits).expect("x_1d");
    npy::write_f32(f.dir.join("x_3d.npy"), &[ROWS, CLASSES, 1], &f.logits).expect("x_3d");
    npy::write_f32(f.dir.join("w_short.npy"), &[3], &[1.0, 1.0, 1.0]).expect("w_short");
    std::fs::write(f.dir.join("junk.npy"), b"not numpy").expect("junk");
    let base = ["compute", "--loss", "cross-entropy", "--out", "out.npy"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--input", "x.npy", "--target", "t_bad.npy"], "target 9 at row 1"),
        (
            vec!["--input", "x.npy", "--target", "t_bad.npy", "--backend", "cpu"],
            "target 9 at row 1",
        ),
        (vec!["--input", "x.npy", "--target", "t_short.npy"], "[5]"),
        // A 1-d input is unbatched: its class index is 0-d, not [5].
        (
            vec!["--input", "x_1d.npy", "--target", "t.npy"],
            "int64 or int32 [] (class indices) or float32 [35] (probabilities) for --input [35], got int64 [5]",
        ),
        // [5, 7, 1] is K-dimensional: its class indices are [5, 1].
        (
            vec!["--input", "x_3d.npy", "--target", "t.npy"],
            "for --input [5, 7, 1], got int64 [5]",
        ),
        (
            vec!["--input", "x.npy", "--target", "t.npy", "--weight", "w_short.npy"],
            "[7]",
        ),
        (
            vec!["--input", "x.npy", "--target", "t.npy", "--label-smoothing", "1.5"],
            "label_smoothing",
        ),
        (
            vec!["--input", "x.npy", "--target", "t.npy", "--label-smoothing", "-0.5"],
            "label_smoothing",
        ),
        (vec!["--input", "missing.npy", "--target", "t.npy"], "missing.npy"),
        (vec!["--input", "junk.npy", "--target", "t.npy"], "junk.npy"),
        (
            vec!["--input", "x.npy", "--target", "t.npy", "--reduction", "avg"],
            "avg",
        ),
        (
            vec!["--input", "x.npy", "--target", "t.npy", "--no-such-flag"],
            "--no-such-flag",
        ),
        (vec!["--input", "x.npy", "--target", "w.npy"], "int64 or int32 [5]"),
    ];
    for (extra, needle) in cases {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        let (ok, _, stderr) = run(&f.dir, &args);
        assert!(!ok, "{extra:?} succeeded");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{extra:?}: stderr is not one line:\n{stderr}"
        );
        assert!(
            stderr.contains(needle),
            "{extra:?}: {stderr:?} does not mention {needle:?}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!f.dir.join("out.npy").exists(), "{extra:?} left an output file");
        let leftovers: Vec<_> = std::fs::read_dir(&f.dir)
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }
}

#[test]
fn every_loss_is_reachable_on_both_backends() {
    let f = files("family");
    let probs: Vec<f32> = f.logits.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect();
    npy::write_f32(f.dir.join("p.npy"), &[ROWS, CLASSES], &probs).expect("p");
    let logp: Vec<f32> = f
        .logits
        .chunks(CLASSES)
        .flat_map(|row| {
            let lse = row.iter().map(|x| x.exp()).sum::<f32>().ln();
            row.iter().map(move |x| x - lse).collect::<Vec<_>>()
        })
        .collect();
    npy::write_f32(f.dir.join("logp.npy"), &[ROWS, CLASSES], &logp).expect("logp");
    let pos: Vec<f32> = (0..CLASSES).map(|c| 1.0 + c as f32 * 0.5).collect();
    npy::write_f32(f.dir.join("pos.npy"), &[CLASSES], &pos).expect("pos");
    // (arguments, shape written by --out)
    let cases: Vec<(Vec<&str>, Vec<usize>)> = vec![
        (
            vec![
                "--loss",
                "cross-entropy",
                "--input",
                "x.npy",
                "--target",
                "p.npy",
                "--label-smoothing",
                "0.1",
            ],
            vec![],
        ),
        (
            vec![
                "--loss",
                "cross-entropy",
                "--input",
                "p.npy",
                "--target",
                "t.npy",
                "--input-kind",
                "probs",
                "--epsilon",
                "1e-6",
            ],
            vec![],
        ),
        (
            vec![
                "--loss",
                "cross-entropy",
                "--input",
                "logp.npy",
                "--target",
                "t.npy",
                "--input-kind",
                "log-probs",
                "--reduction",
                "none",
            ],
            vec![ROWS],
        ),
        (
            vec![
                "--loss",
                "nll",
                "--input",
                "logp.npy",
                "--target",
                "t32.npy",
                "--weight",
                "w.npy",
                "--reduction",
                "sum",
            ],
            vec![],
        ),
        (
            vec![
                "--loss",
                "bce",
                "--input",
                "p.npy",
                "--target",
                "p.npy",
                "--weight",
                "w.npy",
                "--reduction",
                "none",
            ],
            vec![ROWS, CLASSES],
        ),
        (
            vec![
                "--loss",
                "bce-with-logits",
                "--input",
                "x.npy",
                "--target",
                "p.npy",
                "--pos-weight",
                "pos.npy",
            ],
            vec![],
        ),
        (
            vec![
                "--loss",
                "mse",
                "--input",
                "x.npy",
                "--target",
                "p.npy",
                "--reduction",
                "sum",
            ],
            vec![],
        ),
        (
            vec![
                "--loss",
                "kl-div",
                "--input",
                "logp.npy",
                "--target",
                "p.npy",
                "--reduction",
                "batchmean",
            ],
            vec![],
        ),
        (
            vec![
                "--loss",
                "kl-div",
                "--input",
                "logp.npy",
                "--target",
                "logp.npy",
                "--log-target",
                "--reduction",
                "none",
            ],
            vec![ROWS, CLASSES],
        ),
        (vec!["--loss", "softmax", "--input", "x.npy"], vec![ROWS, CLASSES]),
        (vec!["--loss", "log-softmax", "--input", "x.npy"], vec![ROWS, CLASSES]),
        (vec!["--loss", "entropy", "--input", "x.npy"], vec![ROWS]),
    ];
    for (args, shape) in cases {
        let mut results = Vec::new();
        for backend in ["gpu", "cpu"] {
            let _ = std::fs::remove_file(f.dir.join("o.npy"));
            let all: Vec<&str> = ["compute"]
                .into_iter()
                .chain(args.iter().copied())
                .chain(["--backend", backend, "--out", "o.npy"])
                .collect();
            let (ok, _, stderr) = run(&f.dir, &all);
            assert!(ok, "{all:?}: {stderr}");
            let saved = npy::read(f.dir.join("o.npy")).expect("o.npy");
            assert_eq!(saved.shape, shape, "{all:?}");
            let NpyData::F32(values) = saved.data else {
                panic!("float32")
            };
            results.push(values);
        }
        for (g, c) in results[0].iter().zip(&results[1]) {
            assert!((g - c).abs() <= 2e-5 + 2e-5 * c.abs(), "{args:?}: gpu {g} vs cpu {c}");
        }
    }
}

#[test]
fn loss_family_bad_input_is_one_line() {
    let f = files("family_bad");
    npy::write_f32(f.dir.join("big.npy"), &[ROWS, CLASSES], &[1.5; ROWS * CLASSES]).expect("big");
    npy::write_f32(f.dir.join("x3.npy"), &[ROWS, 3], &[0.5; ROWS * 3]).expect("x3");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--loss", "bce", "--input", "big.npy", "--target", "big.npy"],
            "not a probability",
        ),
        (
            vec!["--loss", "mse", "--input", "x.npy", "--target", "x3.npy"],
            "has shape [5, 3]",
        ),
        (
            vec![
                "--loss", "mse", "--input", "x.npy", "--target", "x.npy", "--weight", "w.npy",
            ],
            "does not take --weight",
        ),
        (
            vec![
                "--loss",
                "nll",
                "--input",
                "x.npy",
                "--target",
                "t.npy",
                "--label-smoothing",
                "0.1",
            ],
            "does not take --label-smoothing",
        ),
        (
            vec!["--loss", "softmax", "--input", "x.npy", "--target", "t.npy"],
            "does not take --target",
        ),
        (
            vec![
                "--loss",
                "mse",
                "--input",
                "x.npy",
                "--target",
                "x.npy",
                "--reduction",
                "batchmean",
            ],
            "batchmean",
        ),
        (
            vec![
                "--loss",
                "cross-entropy",
                "--input",
                "x.npy",
                "--target",
                "t.npy",
                "--input-kind",
                "probs",
                "--epsilon",
                "-1",
            ],
            "epsilon",
        ),
        (
            vec![
                "--loss",
                "cross-entropy",
                "--input",
                "x.npy",
                "--target",
                "t.npy",
                "--epsilon",
                "1e-7",
            ],
            "--input-kind probs",
        ),
        (vec!["--loss", "kl-div", "--input", "x.npy"], "needs --target"),
        (
            vec![
                "--loss",
                "bce-with-logits",
                "--input",
                "x.npy",
                "--target",
                "x.npy",
                "--pos-weight",
                "t.npy",
            ],
            "float32",
        ),
    ];
    for (args, needle) in cases {
        for backend in ["gpu", "cpu"] {
            let all: Vec<&str> = ["compute"]
                .into_iter()
                .chain(args.iter().copied())
                .chain(["--backend", backend, "--out", "o.npy"])
                .collect();
            let (ok, _, stderr) = run(&f.dir, &all);
            assert!(!ok, "{all:?} succeeded");
            assert_eq!(stderr.trim_end().lines().count(), 1, "{all:?}: {stderr}");
            assert!(stderr.contains(needle), "{all:?}: {stderr:?} lacks {needle:?}");
            assert!(!f.dir.join("o.npy").exists(), "{all:?} left an output file");
        }
    }
}

#[test]
fn grad_out_z_loss_and_softcap() {
    use wgpu_loss::Upstream;
    let f = files("grad");
    let loss = CrossEntropy::default()
        .label_smoothing(0.1)
        .z_loss(0.01)
        .softcap(5.0)
        .weight(&f.weight);
    let want = loss
        .forward_backward(
            Backend::Reference,
            &Batch::new(&f.logits, [ROWS, CLASSES], &f.targets),
            Upstream::Scalar(1.0),
        )
        .expect("reference");
    for backend in ["gpu", "cpu"] {
        let args = [
            "compute",
            "--loss",
            "cross-entropy",
            "--input",
            "x.npy",
            "--target",
            "t.npy",
            "--weight",
            "w.npy",
            "--label-smoothing",
            "0.1",
            "--z-loss",
            "0.01",
            "--softcap",
            "5",
            "--backend",
            backend,
            "--grad-out",
            "g.npy",
        ];
        let (ok, stdout, stderr) = run(&f.dir, &args);
        assert!(ok, "{backend}: {stderr}");
        let printed: f32 = stdout.trim().parse().expect("a number");
        assert!(
            (printed - want.loss.values()[0]).abs() < 1e-5,
            "{backend}: {printed} vs {:?}",
            want.loss
        );
        let saved = npy::read(f.dir.join("g.npy")).expect("g.npy");
        assert_eq!(saved.shape, vec![ROWS, CLASSES]);
        let NpyData::F32(grad) = saved.data else {
            panic!("float32")
        };
        for (g, w) in grad.iter().zip(&want.grad) {
            assert!((g - w).abs() <= 1e-6 + 2e-5 * w.abs(), "{backend}: {g} vs {w}");
        }
    }
    // Elementwise losses and reduction none (upstream all ones) write the input's shape too.
    for args in [
        vec![
            "--loss",
            "mse",
            "--input",
            "x.npy",
            "--target",
            "x.npy",
            "--reduction",
            "none",
        ],
        vec![
            "--loss",
            "nll",
            "--input",
            "x.npy",
            "--target",
            "t.npy",
            "--reduction",
            "none",
        ],
    ] {
        let all: Vec<&str> = ["compute"]
            .into_iter()
            .chain(args.iter().copied())
            .chain(["--grad-out", "g2.npy"])
            .collect();
        let (ok, _, stderr) = run(&f.dir, &all);
        assert!(ok, "{all:?}: {stderr}");
        assert_eq!(npy::read(f.dir.join("g2.npy")).expect("g2").shape, vec![ROWS, CLASSES]);
    }
    // Options that do not apply, and bad values.
    for (args, needle) in [
        (
            vec![
                "--loss",
                "softmax",
                "--input",
                "x.npy",
                "--z-loss",
                "0.1",
                "--grad-out",
                "g3.npy",
            ],
            "does not take --z-loss",
        ),
        (
            vec![
                "--loss", "nll", "--input", "x.npy", "--target", "t.npy", "--z-loss", "0.1",
            ],
            "does not take --z-loss",
        ),
        (
            vec![
                "--loss",
                "cross-entropy",
                "--input",
                "x.npy",
                "--target",
                "t.npy",
                "--softcap",
                "0",
                "--grad-out",
                "g3.npy",
            ],
            "softcap = 0",
        ),
        (
            vec![
                "--loss",
                "cross-entropy",
                "--input",
                "x.npy",
                "--target",
                "t.npy",
                "--input-kind",
                "probs",
                "--softcap",
                "2",
            ],
            "does not take softcap",
        ),
    ] {
        let all: Vec<&str> = ["compute"].into_iter().chain(args.iter().copied()).collect();
        let (ok, _, stderr) = run(&f.dir, &all);
        assert!(!ok, "{all:?} succeeded");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{all:?}: {stderr:?} lacks {needle:?}");
        assert!(!f.dir.join("g3.npy").exists());
    }
}

#[test]
fn float16_input() {
    use wgpu_loss::half::{f16_to_f32, f32_to_f16};
    let f = files("f16");
    let bits: Vec<u16> = f.logits.iter().map(|&x| f32_to_f16(x)).collect();
    write_npy(
        &f.dir.join("x16.npy"),
        "<f2",
        &[ROWS, CLASSES],
        bytemuck::cast_slice(&bits),
    );
    let rounded: Vec<f32> = bits.iter().map(|&h| f16_to_f32(h)).collect();
    let want = CrossEntropy::default()
        .forward(Backend::Reference, &Batch::new(&rounded, [ROWS, CLASSES], &f.targets))
        .expect("cpu")
        .values()[0];
    for backend in ["gpu", "cpu"] {
        let (ok, stdout, stderr) = run(
            &f.dir,
            &[
                "compute",
                "--loss",
                "cross-entropy",
                "--input",
                "x16.npy",
                "--target",
                "t.npy",
                "--backend",
                backend,
            ],
        );
        assert!(ok, "{stderr}");
        let printed: f32 = stdout.trim().parse().expect("number");
        assert!((printed - want).abs() < 1e-5, "{backend}: {printed} vs {want}");
        let (ok, _, stderr) = run(
            &f.dir,
            &[
                "compute",
                "--loss",
                "entropy",
                "--input",
                "x16.npy",
                "--backend",
                backend,
                "--out",
                "h.npy",
            ],
        );
        assert!(ok, "{stderr}");
        assert_eq!(npy::read(f.dir.join("h.npy")).expect("h").shape, vec![ROWS]);
    }
    let (ok, _, stderr) = run(
        &f.dir,
        &["compute", "--loss", "mse", "--input", "x16.npy", "--target", "x16.npy"],
    );
    assert!(
        !ok && stderr.trim_end().lines().count() == 1 && stderr.contains("float16"),
        "{stderr}"
    );
}

/// Every `--loss` of `bench`.
const BENCH_LOSSES: [&str; 9] = [
    "cross-entropy",
    "nll",
    "mse",
    "bce",
    "bce-with-logits",
    "kl-div",
    "softmax",
    "log-softmax",
    "entropy",
];

#[test]
fn bench_checks_then_reports_every_loss() {
    let dir = scratch("bench");
    for loss in BENCH_LOSSES {
        let (ok, stdout, stderr) = run(
            &dir,
            &[
                "bench",
                "--loss",
                loss,
                "--rows",
                "37",
                "--classes",
                "53",
                "--repeat",
                "1",
                "--json",
            ],
        );
        assert!(ok, "{loss}: {stderr}");
        let line = stdout.trim();
        assert!(line.starts_with('[') && line.ends_with(']'), "{loss}: {line}");
        for key in [
            "\"loss\":",
            "\"rows\":37",
            "\"classes\":53",
            "\"backend\":\"gpu\"",
            "\"mode\":\"resident\"",
            "\"mode\":\"end-to-end\"",
            "\"median_ms\":",
            "\"gb_per_s\":",
            "\"read_bandwidth_gb_per_s\":",
            "\"ceiling_gb_per_s\":",
            "\"fraction_of_ceiling\":",
            "\"grad\":false",
            "\"adapter\":",
            "\"max_abs_err\":",
        ] {
            assert!(line.contains(key), "{loss}: {key} missing in {line}");
        }
        assert_eq!(
            line.matches("\"backend\":").count(),
            4,
            "{loss}: reference, cpu, gpu resident, gpu end-to-end"
        );
    }
    let (ok, stdout, stderr) = run(
        &dir,
        &[
            "bench",
            "--rows",
            "64",
            "--classes",
            "100",
            "--repeat",
            "2",
            "--plot",
            "b.svg",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("% ceil") && stdout.contains("gpu/cpu") && stdout.contains("memory-read bandwidth"),
        "{stdout}"
    );
    let svg = std::fs::read_to_string(dir.join("b.svg")).expect("plot written");
    assert!(svg.starts_with("<svg") && svg.contains("polyline"), "{svg}");
    let (ok, _, stderr) = run(&dir, &["bench", "--rows", "64"]);
    assert!(!ok && stderr.trim_end().lines().count() == 1, "{stderr}");
}

#[test]
fn bench_takes_a_shape_of_any_rank() {
    // --shape: cross-entropy over class axis 1 (positions × classes in the JSON rows, the
    // shape as given), softmax over the last axis; checked against the reference first.
    let dir = scratch("bench-shape");
    for (loss, rows, classes) in [("cross-entropy", 32, 3), ("nll", 32, 3), ("softmax", 24, 4)] {
        for grad in [false, true] {
            let mut args = vec!["bench", "--loss", loss, "--shape", "2,3,4,4", "--repeat", "1", "--json"];
            if grad {
                args.push("--grad");
            }
            let (ok, stdout, stderr) = run(&dir, &args);
            assert!(ok, "{loss}: {stderr}");
            let line = stdout.trim();
            for key in [
                "\"shape\":[2,3,4,4]".to_string(),
                format!("\"rows\":{rows}"),
                format!("\"classes\":{classes}"),
            ] {
                assert!(line.contains(&key), "{loss}: {key} missing in {line}");
            }
            assert_eq!(line.matches("\"backend\":").count(), 4, "{loss}: {line}");
        }
    }
    for (args, want) in [
        (
            vec!["bench", "--shape", "2,0,3"],
            "--shape must have every axis at least 1, got [2, 0, 3]",
        ),
        (vec!["bench", "--shape", "2,3", "--rows", "2"], "cannot be used with"),
    ] {
        let (ok, _, stderr) = run(&dir, &args);
        assert!(!ok && stderr.contains(want), "{args:?}: {stderr}");
    }
}

#[test]
fn bench_grad_checks_forward_and_backward_of_every_loss() {
    let dir = scratch("bench-grad");
    for loss in BENCH_LOSSES {
        let args = [
            "bench",
            "--loss",
            loss,
            "--rows",
            "19",
            "--classes",
            "67",
            "--repeat",
            "1",
            "--grad",
            "--json",
        ];
        let (ok, stdout, stderr) = run(&dir, &args);
        assert!(ok, "{loss}: {stderr}");
        let line = stdout.trim();
        assert!(
            line.contains("\"grad\":true") && line.contains("\"fraction_of_ceiling\":"),
            "{loss}: {line}"
        );
        assert_eq!(line.matches("\"backend\":").count(), 4, "{loss}: {line}");
    }
}
