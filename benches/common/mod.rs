//! Generated inputs and resident calls shared by the criterion benches.

use wgpu_loss::wgpu::{self, util::DeviceExt};
use wgpu_loss::{BatchAt, BufferAt, CrossEntropy, GpuContext, GradInto, Loss, Outputs, Status, Upstream};

/// Reproducible logits in [-8, 8) and class-index targets for `rows` × `classes`.
pub fn generated(rows: usize, classes: usize) -> (Vec<f32>, Vec<i64>) {
    let mut state = (rows * 1_000_003 + classes) as u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let logits = (0..rows * classes)
        .map(|_| (next() % 2000) as f32 / 125.0 - 8.0)
        .collect();
    let targets = (0..rows).map(|_| (next() % classes as u64) as i64).collect();
    (logits, targets)
}

/// A buffer holding `contents`, usable as storage, copy source and copy destination.
pub fn buffer(ctx: &GpuContext, label: &str, contents: &[u8]) -> wgpu::Buffer {
    ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
    })
}

/// Where [`forward_resident`] writes: `[loss, divisor]`, then the target status word.
pub fn results_buffer(ctx: &GpuContext) -> wgpu::Buffer {
    buffer(ctx, "bench.results", &[0; 16])
}

/// `loss` over resident buffers, recorded into a fresh encoder (with the gradient too,
/// upstream 1, where `grad` says), submitted, then the loss and the target status read
/// back in one 12-byte copy. Panics on a target out of range, as a failed call would.
pub fn forward_resident(
    ctx: &GpuContext,
    loss: &CrossEntropy,
    batch: &BatchAt<'_>,
    results: &wgpu::Buffer,
    grad: Option<GradInto<'_>>,
) -> f32 {
    let outputs = Outputs {
        loss: Some(results.into()),
        status: Some(BufferAt {
            buffer: results,
            offset: 8,
        }),
        grad: grad.map(|into| (into, Upstream::Scalar(1.0))),
        ..Default::default()
    };
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    loss.encode(ctx, &mut encoder, batch, &outputs).expect("encode");
    ctx.queue().submit(Some(encoder.finish()));
    let words = wgpu_loss::read::<u32>(ctx, results.into(), 3).expect("read back");
    let status = Status(words[2]);
    assert!(status.is_ok(), "target out of range at row {:?}", status.bad_row());
    f32::from_bits(words[0])
}
