//! The kernels read and write whole vec4s where the input, target and output line up on
//! 16 bytes alike, and fall back to scalars elsewhere: every mix of offsets (equal mod 16,
//! equal mod 4 only, different) and of row lengths (a multiple of 4 or not, so rows start
//! off a 16-byte boundary and end in a partial vec4) gives the reference's values, and
//! nothing before or after the output moves.

mod common;

use common::{assert_close, gpu, Rng, GRAD_TOLERANCE};
use wgpu_loss::wgpu::{self, util::DeviceExt};
use wgpu_loss::{
    Backend, Batch, BatchAt, BufferAt, CrossEntropy, GpuContext, GradInto, Loss, Outputs, Reduction, RowOp, TargetsAt,
    Upstream,
};

/// Sentinels around the data in every app buffer.
const BEFORE: f32 = 7.0;
const AFTER: f32 = 9.0;
const TRAILING: usize = 5;

/// An app buffer: `lead` sentinels, `values`, then `TRAILING` sentinels.
fn app_buffer(lead: usize, values: &[f32]) -> wgpu::Buffer {
    let mut contents = vec![BEFORE; lead];
    contents.extend_from_slice(values);
    contents.extend_from_slice(&[AFTER; TRAILING]);
    gpu().device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("app"),
        contents: bytemuck::cast_slice(&contents),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
    })
}

fn at(buffer: &wgpu::Buffer, floats: usize) -> BufferAt<'_> {
    BufferAt {
        buffer,
        offset: 4 * floats as u64,
    }
}

/// Reads the whole buffer and checks the sentinels; returns the `len` values after `lead`.
fn values_between_sentinels(what: &str, buffer: &wgpu::Buffer, lead: usize, len: usize) -> Vec<f32> {
    let all = wgpu_loss::read::<f32>(gpu(), buffer.into(), lead + len + TRAILING).expect("read back");
    assert!(
        all[..lead].iter().all(|&v| v == BEFORE),
        "{what}: a value before the output moved"
    );
    assert!(
        all[lead + len..].iter().all(|&v| v == AFTER),
        "{what}: a value after the output moved"
    );
    all[lead..lead + len].to_vec()
}

/// Cross-entropy's gradient, written at `grad_lead` floats into the app's buffer (or in
/// place over the input), for input at `input_lead` floats, on `ctx`.
fn cross_entropy_grad(ctx: &GpuContext, input_lead: usize, grad_lead: Option<usize>, classes: usize, plan: &str) {
    let rows = 37;
    let mut rng = Rng::new((input_lead * 1000 + classes) as u64);
    let logits = rng.logits(rows * classes, 4.0);
    let targets: Vec<i64> = (0..rows)
        .map(|r| if r % 5 == 0 { -100 } else { rng.below(classes) as i64 })
        .collect();
    let input = app_buffer(input_lead, &logits);
    let targets_buf = ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("app.targets"),
        contents: bytemuck::cast_slice(&targets),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let grad_buf = grad_lead.map(|lead| app_buffer(lead, &vec![0.0; rows * classes]));
    let loss_buf = app_buffer(0, &[0.0, 0.0]);
    let loss = CrossEntropy::default().label_smoothing(0.05);
    let into = match (&grad_buf, grad_lead) {
        (Some(buffer), Some(lead)) => GradInto::Buffer(at(buffer, lead)),
        _ => GradInto::InPlace,
    };
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let batch = BatchAt::new(
        at(&input, input_lead),
        [rows, classes],
        TargetsAt::I64((&targets_buf).into()),
    );
    let outputs = Outputs {
        loss: Some((&loss_buf).into()),
        grad: Some((into, Upstream::Scalar(1.0))),
        ..Default::default()
    };
    loss.encode(ctx, &mut encoder, &batch, &outputs).expect("encode");
    ctx.queue().submit(Some(encoder.finish()));
    let want = loss
        .forward_backward(
            Backend::Reference,
            &Batch::new(&logits, [rows, classes], &targets),
            Upstream::Scalar(1.0),
        )
        .expect("reference");
    let want: Vec<f64> = want.grad.iter().map(|&g| f64::from(g)).collect();
    let what = format!("input at float {input_lead}, gradient at {grad_lead:?}, C = {classes} ({plan})");
    let got = match (&grad_buf, grad_lead) {
        (Some(buffer), Some(lead)) => values_between_sentinels(&what, buffer, lead, rows * classes),
        _ => values_between_sentinels(&what, &input, input_lead, rows * classes),
    };
    assert_close(&what, &got, &want, GRAD_TOLERANCE);
}

#[test]
fn cross_entropy_gradient_at_every_alignment() {
    // The plan's kernel (on lavapipe one invocation per row up to 1024 classes), and a
    // subgroup per row: the kernel whose lanes share a row, with its vec4 loads and stores.
    let base = gpu();
    let shared = GpuContext::from_device(base.device().clone(), base.queue().clone())
        .with_strategy(wgpu_loss::Strategy::SubgroupPerRow);
    for (plan, ctx) in [("planned", base), ("subgroup per row", &shared)] {
        // (input offset, gradient offset, classes), offsets in floats.
        for (input_lead, grad_lead, classes) in [
            (0, 0, 1000), // whole vec4s everywhere
            (1, 5, 1001), // equal mod 4, off 16 bytes: a scalar head and tail on every row
            (3, 3, 7),    // rows shorter than two vec4s
            (2, 1, 1000), // different mod 4: scalars only
            (64, 0, 998), // different binding offsets, equal mod 4
        ] {
            cross_entropy_grad(ctx, input_lead, Some(grad_lead), classes, plan);
        }
        for (input_lead, classes) in [(0, 1000), (1, 1001), (3, 7)] {
            cross_entropy_grad(ctx, input_lead, None, classes, plan);
        }
    }
}

/// Per-element losses (`none`), the mean and the gradient of an elementwise loss, for input
/// at `input_lead` and target at `target_lead` floats, into outputs at `out_lead` floats.
fn elementwise(loss: &wgpu_loss::ElementwiseLoss, input_lead: usize, target_lead: usize, out_lead: usize, len: usize) {
    let ctx = gpu();
    let mut rng = Rng::new(len as u64);
    let x: Vec<f32> = (0..len).map(|_| rng.uniform(0.02, 0.98)).collect();
    let y: Vec<f32> = (0..len).map(|_| rng.uniform(0.0, 1.0)).collect();
    let (x_buf, y_buf) = (app_buffer(input_lead, &x), app_buffer(target_lead, &y));
    let batch = BatchAt::new(at(&x_buf, input_lead), [len], TargetsAt::F32(at(&y_buf, target_lead)));
    for reduction in [Reduction::None, Reduction::Mean] {
        let loss = loss.clone().reduction(reduction);
        let what = format!("{loss:?} on {len} elements at floats {input_lead}, {target_lead} → {out_lead}");
        let out_len = if reduction == Reduction::None { len } else { 2 };
        let (out, grad) = (
            app_buffer(out_lead, &vec![0.0; out_len]),
            app_buffer(out_lead, &vec![0.0; len]),
        );
        let upstream = match reduction {
            Reduction::None => Upstream::Values(at(&y_buf, target_lead)),
            _ => Upstream::Scalar(1.0),
        };
        let outputs = Outputs {
            loss: Some(at(&out, out_lead)),
            grad: Some((GradInto::Buffer(at(&grad, out_lead)), upstream)),
            ..Default::default()
        };
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        loss.encode(ctx, &mut encoder, &batch, &outputs).expect("encode");
        ctx.queue().submit(Some(encoder.finish()));
        let host_upstream = match reduction {
            Reduction::None => Upstream::Values(&y[..]),
            _ => Upstream::Scalar(1.0),
        };
        let want = loss
            .forward_backward(Backend::Reference, &Batch::new(&x, [len], &y), host_upstream)
            .expect("reference");
        let values: Vec<f64> = want.loss.values().iter().map(|&v| f64::from(v)).collect();
        let got = values_between_sentinels(&what, &out, out_lead, out_len);
        assert_close(&what, &got[..values.len()], &values, ELEMENTWISE);
        let want: Vec<f64> = want.grad.iter().map(|&g| f64::from(g)).collect();
        assert_close(
            &what,
            &values_between_sentinels(&what, &grad, out_lead, len),
            &want,
            GRAD_TOLERANCE,
        );
    }
}

/// Elementwise losses against the f64 reference: one f32 evaluation per element, then (for
/// the mean) an f32 sum in a fixed tree over ~1000 elements.
const ELEMENTWISE: common::Tolerance = common::Tolerance {
    name: "elementwise",
    atol: 1e-6,
    rtol: 1e-5,
};

#[test]
fn elementwise_losses_at_every_alignment() {
    use wgpu_loss::ElementwiseLoss;
    for (input_lead, target_lead, out_lead, len) in [
        (0, 0, 0, 1000),
        (4, 8, 1, 1003),
        (1, 1, 1, 1002),
        (0, 3, 0, 999),
        (2, 2, 2, 3),
    ] {
        elementwise(&ElementwiseLoss::mse(), input_lead, target_lead, out_lead, len);
        elementwise(&ElementwiseLoss::bce(), input_lead, target_lead, out_lead, len);
    }
}

/// Softmax, log-softmax and entropy of `[rows, classes]` at `input_lead` floats into an
/// output at `out_lead` floats.
fn row_op(op: RowOp, input_lead: usize, out_lead: usize, classes: usize) {
    let ctx = gpu();
    let rows = 29;
    let mut rng = Rng::new(classes as u64);
    let x = rng.logits(rows * classes, 4.0);
    let x_buf = app_buffer(input_lead, &x);
    let want = op
        .forward(Backend::Reference, &Batch::input(&x, [rows, classes]))
        .expect("reference");
    let want: Vec<f64> = want.values().iter().map(|&v| f64::from(v)).collect();
    let out = app_buffer(out_lead, &vec![0.0; want.len()]);
    let batch = BatchAt::new(at(&x_buf, input_lead), [rows, classes], TargetsAt::None);
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    op.encode(ctx, &mut encoder, &batch, &Outputs::loss(at(&out, out_lead)))
        .expect("encode");
    ctx.queue().submit(Some(encoder.finish()));
    let what = format!("{op:?} of [{rows}, {classes}] at float {input_lead} → {out_lead}");
    let got = values_between_sentinels(&what, &out, out_lead, want.len());
    assert_close(&what, &got, &want, ROW_OP);
}

/// Softmax-family outputs against the f64 reference: exp(x - max) / Σ in f32 (a few ulps of
/// each value, plus Σ's relative error ~C·2^-24 at worst).
const ROW_OP: common::Tolerance = common::Tolerance {
    name: "row_op",
    atol: 2e-6,
    rtol: 2e-5,
};

#[test]
fn softmax_family_at_every_alignment() {
    for op in [RowOp::Softmax, RowOp::LogSoftmax, RowOp::Entropy] {
        for (input_lead, out_lead, classes) in [(0, 0, 1000), (1, 5, 1001), (3, 3, 7), (2, 1, 1000), (0, 0, 2)] {
            row_op(op, input_lead, out_lead, classes);
        }
    }
}
