//! The kernels read and write whole vec4s where the input, target and output line up on
//! 16 bytes alike, and fall back to scalars elsewhere: every mix of offsets (equal mod 16,
//! equal mod 4 only, different) and of row lengths (a multiple of 4 or not, so rows start
//! off a 16-byte boundary and end in a partial vec4) gives the reference's values, and
//! nothing before or after the output moves.

mod common;

use common::{assert_close, gpu, Rng, GRAD_TOLERANCE};
use wgpu_loss::wgpu::{self, util::DeviceExt};
use wgpu_loss::{Backend, Batch, BatchAt, BufferAt, CrossEntropy, GradInto, Loss, Outputs, TargetsAt, Upstream};

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
/// place over the input), for input at `input_lead` floats.
fn cross_entropy_grad(input_lead: usize, grad_lead: Option<usize>, classes: usize) {
    let ctx = gpu();
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
    let what = format!("input at float {input_lead}, gradient at {grad_lead:?}, C = {classes}");
    let got = match (&grad_buf, grad_lead) {
        (Some(buffer), Some(lead)) => values_between_sentinels(&what, buffer, lead, rows * classes),
        _ => values_between_sentinels(&what, &input, input_lead, rows * classes),
    };
    assert_close(&what, &got, &want, GRAD_TOLERANCE);
}

#[test]
fn cross_entropy_gradient_at_every_alignment() {
    // (input offset, gradient offset, classes), offsets in floats.
    for (input_lead, grad_lead, classes) in [
        (0, 0, 1000), // whole vec4s everywhere
        (1, 5, 1001), // equal mod 4, off 16 bytes: a scalar head and tail on every row
        (3, 3, 7),    // rows shorter than two vec4s
        (2, 1, 1000), // different mod 4: scalars only
        (64, 0, 998), // different binding offsets, equal mod 4
    ] {
        cross_entropy_grad(input_lead, Some(grad_lead), classes);
    }
    for (input_lead, classes) in [(0, 1000), (1, 1001), (3, 7)] {
        cross_entropy_grad(input_lead, None, classes);
    }
}
