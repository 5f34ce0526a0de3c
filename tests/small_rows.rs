//! The tiny-row path of cross-entropy (C ≤ 32, plain f32 logits, class-index targets: packs
//! of rows read as vec4s, `src/gpu/small_rows.rs`) against the f64 reference: class
//! counts of every residue mod 4 up to 33 (33 is past the path), row counts that leave a partial pack, ignored
//! and out-of-range targets, smoothing and z-loss, reductions, the gradient (which reads the
//! path's (lse, A) per row), and logits at a byte offset that is not 16-byte aligned (the
//! generic path then takes every row) or is (the packs start there).

mod common;

use common::{assert_close, gpu, Rng, GRAD_TOLERANCE, REDUCED, ROW_LOSS};
use wgpu_loss::wgpu::{self, util::DeviceExt};
use wgpu_loss::{Backend, Batch, BatchAt, BufferAt, CrossEntropy, Loss, Outputs, Reduction, TargetsAt, Upstream};

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

#[test]
fn every_small_class_count_matches_the_reference() {
    let mut rng = Rng::new(33);
    // Every residue of C mod 4 (packs of 4, 2 and 1 rows), the smallest and largest C the
    // path takes and one past it; naga validates the generated WGSL of all 32 in the crate.
    for classes in [1, 2, 3, 4, 5, 6, 7, 10, 16, 31, 32, 33] {
        for rows in [3, 64 + 5] {
            let logits = rng.logits(rows * classes, 6.0);
            let targets: Vec<i64> = (0..rows)
                .map(|r| if r % 5 == 4 { -100 } else { rng.below(classes) as i64 })
                .collect();
            let batch = Batch::new(&logits, [rows, classes], &targets);
            for loss in variants() {
                let want = loss
                    .forward_backward(Backend::Reference, &batch, upstream(&loss, rows))
                    .expect("reference");
                let got = loss
                    .forward_backward(Backend::Gpu(gpu()), &batch, upstream(&loss, rows))
                    .expect("gpu");
                let what = format!("C={classes} N={rows} {:?}", loss.reduction);
                let tol = if loss.reduction == Reduction::None {
                    ROW_LOSS
                } else {
                    REDUCED
                };
                assert_close(&what, got.loss.values(), &to64(want.loss.values()), tol);
                assert_close(&format!("{what} grad"), &got.grad, &to64(&want.grad), GRAD_TOLERANCE);
            }
        }
    }
}

/// Per-row losses plain and with smoothing and z-loss, and the mean.
fn variants() -> [CrossEntropy; 3] {
    [
        CrossEntropy::default().reduction(Reduction::None),
        CrossEntropy::default()
            .label_smoothing(0.2)
            .z_loss(1e-3)
            .reduction(Reduction::None),
        CrossEntropy::default(),
    ]
}

fn upstream(loss: &CrossEntropy, rows: usize) -> Upstream<&'static [f32]> {
    static ONES: [f32; 128] = [1.0; 128];
    if loss.reduction == Reduction::None {
        Upstream::Values(&ONES[..rows])
    } else {
        Upstream::Scalar(1.0)
    }
}

#[test]
fn out_of_range_targets_are_flagged_on_the_tiny_row_path() {
    let (rows, classes) = (6, 10);
    let logits = Rng::new(5).logits(rows * classes, 3.0);
    let targets = [1_i64, 2, 10, 3, -100, 4];
    let batch = Batch::new(&logits, [rows, classes], &targets);
    let err = CrossEntropy::default()
        .forward(Backend::Gpu(gpu()), &batch)
        .expect_err("target 10 of 10 classes");
    assert!(err.to_string().contains("10"), "{err}");
}

#[test]
fn logits_at_any_offset_of_an_app_buffer() {
    let ctx = gpu();
    let (rows, classes) = (131, 10);
    let mut rng = Rng::new(9);
    let logits = rng.logits(rows * classes, 5.0);
    let targets = rng.targets(rows, classes);
    let want = CrossEntropy::default()
        .reduction(Reduction::None)
        .forward(Backend::Reference, &Batch::new(&logits, [rows, classes], &targets))
        .expect("reference");
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let buffer = |contents: &[u8]| {
        ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("app"),
            contents,
            usage,
        })
    };
    let targets_buf = buffer(bytemuck::cast_slice(&targets));
    for skip in [0_usize, 1, 2, 3, 4, 8] {
        let mut contents = vec![7.0_f32; skip];
        contents.extend_from_slice(&logits);
        let logits_buf = buffer(bytemuck::cast_slice(&contents));
        let out = buffer(&vec![0; rows * 4]);
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        let at = BufferAt {
            buffer: &logits_buf,
            offset: 4 * skip as u64,
        };
        let batch = BatchAt::new(at, [rows, classes], TargetsAt::I64((&targets_buf).into()));
        CrossEntropy::default()
            .reduction(Reduction::None)
            .encode(ctx, &mut encoder, &batch, &Outputs::loss(&out))
            .expect("encode");
        let got = wgpu_loss::submit_and_read::<f32>(ctx, encoder, (&out).into(), rows).expect("read");
        assert_close(&format!("offset {skip} floats"), &got, &to64(want.values()), ROW_LOSS);
    }
}

/// The fast CPU backend takes short rows eight at a time (`cpu::short_rows`); rows with a
/// NaN, all -inf or +inf inside such a block keep PyTorch's answers (the reference's).
#[test]
fn special_rows_inside_a_block_of_eight_on_the_cpu() {
    let (rows, classes) = (19, 5);
    let mut logits = Rng::new(77).logits(rows * classes, 4.0);
    logits[2 * classes + 1] = f32::NAN;
    logits[9 * classes..10 * classes].fill(f32::NEG_INFINITY);
    logits[11 * classes + 3] = f32::INFINITY;
    logits[12 * classes + 2] = f32::NEG_INFINITY;
    let targets: Vec<i64> = (0..rows)
        .map(|r| if r == 5 { -100 } else { (r % classes) as i64 })
        .collect();
    let batch = Batch::new(&logits, [rows, classes], &targets);
    for loss in variants().into_iter().take(2) {
        let want = loss.forward(Backend::Reference, &batch).expect("reference");
        let got = loss.forward(Backend::Cpu, &batch).expect("cpu");
        assert_close("special rows", got.values(), &to64(want.values()), ROW_LOSS);
        assert!(got.values()[2].is_nan() && got.values()[9].is_nan() && got.values()[11].is_nan());
    }
}
