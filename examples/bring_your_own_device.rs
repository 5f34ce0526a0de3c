//! A wgpu app that already has its device, its logits in a buffer and its own command
//! encoder: `wgpu-loss` records cross-entropy and its gradient into that encoder, reading
//! and writing the app's buffers at byte offsets. Nothing is copied to the host until the
//! app reads its own results; the app submits.
//!
//! `cargo run --example bring_your_own_device`

use wgpu::util::DeviceExt;
use wgpu_loss::{
    wgpu, Backend, Batch, BatchAt, BufferAt, CrossEntropy, GpuContext, GradInto, Loss, Outputs, Status, TargetsAt,
    Upstream,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The app's device, made the app's way.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("app"),
        required_features: adapter.features() & wgpu::Features::SUBGROUP,
        required_limits: adapter.limits(),
        ..Default::default()
    }))?;
    println!("adapter: {}", adapter.get_info().name);
    let ctx = GpuContext::from_device(device.clone(), queue.clone());

    // The app's data: 4 rows × 5 classes, living after a 16-byte header in one buffer.
    let (rows, classes) = (4, 5);
    let logits: [f32; 20] = [
        2.0, 1.0, 0.1, -1.0, 0.5, //
        0.0, 3.0, 0.2, 0.3, -2.0, //
        1.0, 1.0, 1.0, 1.0, 1.0, //
        -0.5, 0.0, 0.5, 4.0, 1.5,
    ];
    let mut contents = vec![0.0_f32; 4];
    contents.extend_from_slice(&logits);
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let make = |label, bytes: &[u8]| {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytes,
            usage,
        })
    };
    let activations = make("app.activations", bytemuck::cast_slice(&contents));
    let labels = make("app.labels", bytemuck::cast_slice(&[0_i64, 1, -100, 3]));
    let results = make("app.results", &[0; 16]); // [loss, divisor, status, spare]
    let grads = make("app.grads", &[0; 20 * 4]);

    // Record into the app's encoder: loss at results[0..2], target status at results[2],
    // the gradient (upstream 1, mean) into the app's gradient buffer.
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("app.frame"),
    });
    let outputs = Outputs {
        status: Some(BufferAt {
            buffer: &results,
            offset: 8,
        }),
        grad: Some((GradInto::Buffer((&grads).into()), Upstream::Scalar(1.0))),
        ..Outputs::loss(&results)
    };
    let loss = CrossEntropy::default().label_smoothing(0.1);
    let input = BufferAt {
        buffer: &activations,
        offset: 16,
    };
    let batch = BatchAt::new(input, [rows, classes], TargetsAt::I64((&labels).into()));
    loss.encode(&ctx, &mut encoder, &batch, &outputs)?;
    // ... the app could record its own backward pass here, reading `grads` ...
    queue.submit(Some(encoder.finish()));

    // The app reads what it wants, when it wants.
    let out = wgpu_loss::read::<f32>(&ctx, (&results).into(), 2)?;
    let status_at = BufferAt {
        buffer: &results,
        offset: 8,
    };
    let status = Status(wgpu_loss::read::<u32>(&ctx, status_at, 1)?[0]);
    println!(
        "loss {:.6} (mean over {} rows not ignored), bad targets: {}",
        out[0],
        out[1],
        if status.is_ok() { "none" } else { "some" }
    );
    let grad = wgpu_loss::read::<f32>(&ctx, (&grads).into(), rows * classes)?;
    for (row, g) in grad.chunks(classes).enumerate() {
        println!("d loss / d logits[{row}] = {g:?}");
    }
    // The CPU reference agrees.
    let reference = loss.forward(
        Backend::Reference,
        &Batch::new(&logits, [rows, classes], &[0_i64, 1, -100, 3]),
    )?;
    println!("CPU reference loss {:.6}", reference.scalar().unwrap_or(f32::NAN));
    assert!((reference.scalar().unwrap_or(f32::NAN) - out[0]).abs() < 1e-5);
    Ok(())
}
