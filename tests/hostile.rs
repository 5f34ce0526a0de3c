//! Hostile input through the built binary and the library: every case fails with one line
//! on stderr and a non-zero exit (never a panic, an abort or a hang), and leaves no output
//! file written or changed; empty batches recorded into an app's buffers get PyTorch's
//! result. (Issue 12; the first classes of it: lying `.npy` headers, output paths, bench
//! sizes, option values.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::cli::{compute, misused, refused, run, BIN};
use common::gpu;
use wgpu_loss::wgpu::{self, util::DeviceExt};
use wgpu_loss::{BatchAt, CrossEntropy, ElementwiseLoss, Loss, Outputs, Reduction, TargetsAt};

/// A fresh folder for one test's files.
fn scratch(name: &str) -> PathBuf {
    common::scratch("hostile", name)
}

/// A `.npy` file with exactly this header text and payload.
fn npy_file(path: &Path, header: &str, payload: &[u8]) {
    common::npy_with_header(path, header, payload);
}

fn f32_header(shape: &str) -> String {
    format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}")
}

/// A valid 2 × 3 float32 input and int64 targets in `dir`.
fn valid_inputs(dir: &Path) {
    let x: Vec<u8> = [1.0_f32, 2.0, 3.0, 4.0, 5.0, 6.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    npy_file(&dir.join("x.npy"), &f32_header("(2, 3)"), &x);
    let t: Vec<u8> = [0_i64, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
    npy_file(
        &dir.join("t.npy"),
        "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }",
        &t,
    );
}

#[test]
fn lying_npy_headers_are_refused_before_any_allocation() {
    let dir = scratch("headers");
    valid_inputs(&dir);
    let cases = [
        // shape × 4 bytes wraps past 2^64 to 0, which an empty payload would match
        (f32_header("(4611686018427387904,)"), Vec::new(), "overflows"),
        (f32_header("(2305843009213693952, 2)"), Vec::new(), "overflows"),
        // a 140-byte file that claims 2^32 elements
        (
            f32_header("(4294967296, 1)"),
            vec![0; 12],
            "need 17179869184 data bytes",
        ),
        (f32_header("(99999999999999999999999, 1)"), Vec::new(), "too large"),
        // 'shape' twice: NumPy does not read the first one
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), 'shape': (2, 3), }".into(),
            vec![0; 4],
            "repeated",
        ),
        // a decoy 'shape' inside a string value of an extra key
        (
            "{'descr': '<f4', 'fortran_order': False, 'x': \"'shape': (2, 3)\", 'shape': (1, 1), }".into(),
            vec![0; 4],
            "unexpected key 'x'",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False}".into(),
            Vec::new(),
            "no 'shape'",
        ),
        (f32_header("(2, 3)") + " junk", vec![0; 24], "unexpected text"),
        (f32_header("(-2, 3)"), vec![0; 24], "expected a dimension"),
    ];
    for (i, (header, payload, want)) in cases.iter().enumerate() {
        let name = format!("bad{i}.npy");
        npy_file(&dir.join(&name), header, payload);
        refused(
            &dir,
            &["compute", "--loss", "entropy", "--input", &name, "--grad-out", "g.npy"],
            want,
        );
        refused(
            &dir,
            &["compute", "--loss", "softmax", "--input", &name, "--grad-out", "g.npy"],
            want,
        );
        assert!(!dir.join("g.npy").exists(), "{header}: no output");
    }
}

#[test]
fn outputs_are_written_together_or_not_at_all() {
    let dir = scratch("outputs");
    valid_inputs(&dir);
    let with = |extra: &[&'static str]| {
        compute(
            "cross-entropy",
            "x.npy",
            Some("t.npy"),
            &[&["--backend", "cpu"], extra].concat(),
        )
    };
    // --grad-out fails (no such folder): --out is not created either.
    refused(
        &dir,
        &with(&["--out", "o.npy", "--grad-out", "missing/g.npy"]),
        "--grad-out",
    );
    assert!(
        !dir.join("o.npy").exists(),
        "--out must not be written when --grad-out fails"
    );
    // An existing --out is left as it was.
    std::fs::write(dir.join("keep.npy"), b"old").expect("write");
    refused(
        &dir,
        &with(&["--out", "keep.npy", "--grad-out", "missing/g.npy"]),
        "--grad-out",
    );
    assert_eq!(std::fs::read(dir.join("keep.npy")).expect("read"), b"old");
    // Outputs that are inputs, or each other, or not regular files.
    let before = std::fs::read(dir.join("x.npy")).expect("read");
    refused(&dir, &with(&["--out", "x.npy"]), "--out x.npy is also --input");
    std::fs::create_dir_all(dir.join("sub")).expect("sub");
    refused(&dir, &with(&["--out", "./sub/../x.npy"]), "is also --input");
    refused(&dir, &with(&["--grad-out", "t.npy"]), "is also --target");
    refused(&dir, &with(&["--out", "o.npy", "--grad-out", "o.npy"]), "the same file");
    refused(&dir, &with(&["--out", "/dev/null"]), "not a regular file");
    std::fs::create_dir_all(dir.join("folder.npy")).expect("dir");
    refused(&dir, &with(&["--out", "folder.npy"]), "not a regular file");
    assert_eq!(
        std::fs::read(dir.join("x.npy")).expect("read"),
        before,
        "the input is unchanged"
    );
    assert!(!dir.join("o.npy").exists());
    // Both are written when nothing fails.
    let (code, stderr) = run(&dir, &with(&["--out", "o.npy", "--grad-out", "g.npy"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(dir.join("o.npy").is_file() && dir.join("g.npy").is_file());
}

#[test]
fn special_files_as_inputs_do_not_hang() {
    let dir = scratch("special");
    valid_inputs(&dir);
    let fifo = dir.join("fifo.npy");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success(), "mkfifo");
    refused(
        &dir,
        &compute("cross-entropy", "fifo.npy", Some("t.npy"), &[]),
        "not a regular file",
    );
    refused(
        &dir,
        &["compute", "--loss", "entropy", "--input", "."],
        "not a regular file",
    );
    refused(
        &dir,
        &["compute", "--loss", "entropy", "--input", "/dev/zero"],
        "not a regular file",
    );
    refused(
        &dir,
        &compute("cross-entropy", "x.npy", Some("fifo.npy"), &[]),
        "not a regular file",
    );
}

#[test]
fn option_values_reach_the_range_checks() {
    let dir = scratch("options");
    valid_inputs(&dir);
    for backend in ["cpu", "reference", "gpu"] {
        let with = |extra: &[&'static str]| {
            compute(
                "cross-entropy",
                "x.npy",
                Some("t.npy"),
                &[&["--backend", backend], extra].concat(),
            )
        };
        // Negative values in any spelling reach the option's own check (not the parser).
        refused(
            &dir,
            &with(&["--input-kind", "probs", "--epsilon", "-1e-7"]),
            "epsilon must be",
        );
        refused(&dir, &with(&["--z-loss", "-inf"]), "z_loss = -inf");
        refused(&dir, &with(&["--label-smoothing", "-0.5"]), "label_smoothing");
        refused(&dir, &with(&["--softcap", "-3"]), "softcap = -3.0");
        // Finite in f64, not in f32: refused on every backend alike.
        refused(&dir, &with(&["--softcap", "1e300"]), "softcap = 1e300");
        refused(&dir, &with(&["--softcap", "1e-50"]), "softcap = 1e-50");
        refused(
            &dir,
            &with(&["--input-kind", "probs", "--epsilon", "1e300"]),
            "epsilon must be",
        );
        refused(&dir, &with(&["--z-loss", "3e39"]), "z_loss = 3e39");
        for (extra, want) in [
            (
                &["--label-smoothing", "1.5"][..],
                "label_smoothing must be in [0, 1], got 1.5",
            ),
            (&["--label-smoothing", "nan"], "got NaN"),
            (&["--label-smoothing", "inf"], "got inf"),
            (&["--softcap", "0"], "softcap = 0.0"),
            (&["--softcap", "nan"], "softcap = NaN"),
            (&["--softcap", "-inf"], "softcap = -inf"),
            (&["--z-loss", "nan"], "z_loss = NaN"),
            (&["--input-kind", "probs", "--epsilon", "nan"], "got NaN"),
            (&["--input-kind", "probs", "--epsilon", "inf"], "got inf"),
            (&["--reduction", "batchmean"], "batchmean"),
        ] {
            refused(&dir, &with(extra), want);
        }
        for (extra, want) in [
            (&["--ignore-index", "1.5"][..], "'1.5' for '--ignore-index"),
            (&["--ignore-index", "1e30"], "'1e30' for '--ignore-index"),
            (&["--ignore-index", "99999999999999999999"], "too large"),
            (&["--reduction", "bogus"], "possible values: none, sum, mean, batchmean"),
            (&["--input-kind", "bogus"], "'bogus' for '--input-kind"),
            (&["--label-smoothing", "0x10"], "'0x10' for '--label-smoothing"),
            (&["--label-smoothing", ""], "empty string"),
            (&["--z-loss"], "--z-loss"),
            (&["--bogus-flag", "3"], "'--bogus-flag'"),
            (&["--backend", "gpu"], "cannot be used multiple times"),
        ] {
            misused(&dir, &with(extra), want);
        }
    }
    for (args, want) in [
        (&["compute"][..], "--loss <LOSS> --input <INPUT>"),
        (&["bogus"], "'bogus'"),
        (
            &["compute", "--loss", "bogus", "--input", "x.npy"],
            "'bogus' for '--loss",
        ),
        (&["bench", "--rows", "3"], "--classes <CLASSES>"),
        (&["bench", "--rows", "3", "--classes", "-1"], "'-1' for '--classes"),
        (&["bench", "--rows", "1e3", "--classes", "2"], "'1e3' for '--rows"),
        (&["bench", "--loss", "bogus"], "'bogus' for '--loss"),
        (&["bench", "--repeat", "0"], "--repeat"),
    ] {
        misused(&dir, args, want);
    }
    let args = compute(
        "cross-entropy",
        "x.npy",
        Some("t.npy"),
        &["--ignore-index", "-7", "--backend", "cpu"],
    );
    let (code, stderr) = run(&dir, &args);
    assert_eq!(code, Some(0), "a negative ignore_index is a value: {stderr}");
}

#[test]
fn bench_sizes_are_checked_before_allocating() {
    let dir = scratch("bench");
    refused(&dir, &["bench", "--rows", "3", "--classes", "0"], "at least 1");
    refused(&dir, &["bench", "--rows", "0", "--classes", "10"], "at least 1");
    refused(
        &dir,
        &["bench", "--rows", "1099511627776", "--classes", "1"],
        "bytes of host memory",
    );
    refused(
        &dir,
        &["bench", "--rows", "18446744073709551615", "--classes", "2"],
        "overflows",
    );
}

#[test]
fn the_cli_leaves_no_runtime_folder_behind() {
    let dir = scratch("litter");
    valid_inputs(&dir);
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).expect("tmp");
    for args in [
        &["compute", "--loss", "entropy", "--input", "x.npy", "--backend", "cpu"][..],
        &["--help"][..],
    ] {
        let status = Command::new(BIN)
            .current_dir(&dir)
            .args(args)
            .env_remove("XDG_RUNTIME_DIR")
            .env("TMPDIR", &tmp)
            .output()
            .expect("runs");
        assert!(status.status.success(), "{args:?}");
    }
    let left: Vec<_> = std::fs::read_dir(&tmp).expect("read").collect();
    assert!(left.is_empty(), "left behind in the temp folder: {left:?}");
}

/// A loss, an empty shape, its targets, and the `[loss, divisor]` PyTorch's result gives.
type EmptyCase<'a> = (&'a dyn Loss, Vec<usize>, TargetsAt<'a>, [f32; 2]);

#[test]
fn empty_batches_recorded_into_app_buffers_get_pytorchs_result() {
    let ctx = gpu();
    let buffer = |contents: &[u8]| {
        ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("app"),
            contents,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        })
    };
    let input = buffer(&[0; 16]);
    let targets = buffer(&[0; 16]);
    let cases: [EmptyCase<'_>; 5] = [
        (
            &CrossEntropy::default(),
            vec![0, 5],
            TargetsAt::I64((&targets).into()),
            [f32::NAN, 0.0],
        ),
        (
            &CrossEntropy::default().reduction(Reduction::Sum),
            vec![0, 5],
            TargetsAt::I64((&targets).into()),
            [0.0, 1.0],
        ),
        (
            &ElementwiseLoss::mse(),
            vec![0, 4],
            TargetsAt::F32((&targets).into()),
            [f32::NAN, 0.0],
        ),
        (
            &ElementwiseLoss::mse().reduction(Reduction::Sum),
            vec![0],
            TargetsAt::F32((&targets).into()),
            [0.0, 1.0],
        ),
        (
            &ElementwiseLoss::kl_div().reduction(Reduction::BatchMean),
            vec![3, 0],
            TargetsAt::F32((&targets).into()),
            [0.0, 3.0],
        ),
    ];
    for (loss, shape, targets_at, want) in cases {
        let out = buffer(&42.0_f32.to_le_bytes().repeat(2));
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        let batch = BatchAt::new(&input, shape.clone(), targets_at);
        loss.encode(ctx, &mut encoder, &batch, &Outputs::loss(&out))
            .expect("encode");
        let got = wgpu_loss::submit_and_read::<f32>(ctx, encoder, (&out).into(), 2).expect("read");
        let same = |g: f32, w: f32| (g.is_nan() && w.is_nan()) || g == w;
        assert!(
            same(got[0], want[0]) && same(got[1], want[1]),
            "{} {shape:?}: {got:?}, want {want:?}",
            loss.name()
        );
    }
}
