//! The other paths through the GPU code: the workgroup-team kernel (adapters without
//! subgroups), a caller's own device through `from_device`, and row chunking forced by a
//! lowered binding limit, each checked against the CPU reference.

mod common;

use common::{assert_close, Rng, REDUCED, ROW_LOSS};
use wgpu_loss::{wgpu, Backend, Batch, CrossEntropy, GpuContext, Loss, Reduction};

/// A device made the way a wgpu app would, with the given features.
fn app_device(features: wgpu::Features) -> (wgpu::Device, wgpu::Queue) {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
        .expect("GPU tests need a GPU adapter: install mesa-vulkan-drivers libvulkan1");
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("app"),
        required_features: features & adapter.features(),
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .expect("device")
}

fn check_against_cpu(ctx: &GpuContext, rows: usize, classes: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let logits = rng.logits(rows * classes, 6.0);
    let weights: Vec<f32> = (0..classes).map(|_| rng.uniform(0.1, 2.0)).collect();
    let targets: Vec<i64> = (0..rows)
        .map(|r| if r % 7 == 3 { -100 } else { rng.below(classes) as i64 })
        .collect();
    let loss = CrossEntropy::default()
        .weight(&weights)
        .ignore_index(-100)
        .label_smoothing(0.05);
    let batch = Batch::new(&logits, [rows, classes], &targets);
    // The f64 reference (rounded to f32 at the end) of each row and of the weighted mean.
    let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    let none = loss.clone().reduction(Reduction::None);
    let reference_rows = widen(
        none.forward(Backend::Reference, &batch)
            .expect("reference none")
            .values(),
    );
    let mean = loss.reduction(Reduction::Mean);
    let reference_mean = widen(
        mean.forward(Backend::Reference, &batch)
            .expect("reference mean")
            .values(),
    );
    let what = format!("{rows}x{classes} on {ctx:?}");
    let got = none.forward(Backend::Gpu(ctx), &batch).expect("none");
    assert_close(&what, got.values(), &reference_rows, ROW_LOSS);
    let got = mean.forward(Backend::Gpu(ctx), &batch).expect("mean");
    assert_close(&what, got.values(), &reference_mean, REDUCED);
}

#[test]
fn workgroup_teams_without_subgroups() {
    let (device, queue) = app_device(wgpu::Features::empty());
    let ctx = GpuContext::from_device(device, queue);
    assert!(
        !ctx.uses_subgroups(),
        "a device without SUBGROUP must use the workgroup kernels"
    );
    for (rows, classes) in [(1, 1), (7, 3), (257, 31), (65, 1000), (3, 4099), (2, 50257)] {
        check_against_cpu(&ctx, rows, classes, 1);
    }
}

#[test]
fn from_device_with_subgroups() {
    let (device, queue) = app_device(wgpu::Features::SUBGROUP);
    let subgroups = device.features().contains(wgpu::Features::SUBGROUP);
    let ctx = GpuContext::from_device(device, queue);
    assert_eq!(ctx.uses_subgroups(), subgroups);
    check_against_cpu(&ctx, 255, 257, 2);
}

#[test]
fn rows_are_chunked_under_a_lowered_binding_limit() {
    // 4 KiB bindings: 1000 classes (4000 bytes) leave room for one row per chunk, 31 classes
    // for ~30; odd row counts end in a partial chunk, and no chunk starts aligned.
    let ctx = common::gpu();
    let (device, queue) = (ctx.device().clone(), ctx.queue().clone());
    let small = GpuContext::from_device(device, queue).with_binding_limit(4096);
    check_against_cpu(&small, 7, 1000, 3);
    check_against_cpu(&small, 257, 31, 4);
    check_against_cpu(&small, 1000, 3, 5);
}

#[test]
fn a_row_op_row_larger_than_one_binding_is_a_typed_error() {
    // Cross-entropy splits such rows (tests/plan.rs); the softmax family, which writes
    // whole rows, refuses them with the sizes.
    let ctx = common::gpu();
    let small = GpuContext::from_device(ctx.device().clone(), ctx.queue().clone()).with_binding_limit(4096);
    let logits = vec![0.0_f32; 2000];
    let err = wgpu_loss::RowOp::Softmax
        .forward(Backend::Gpu(&small), &Batch::input(&logits, [1, 2000]))
        .expect_err("too large");
    assert!(matches!(err, wgpu_loss::LossError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("8000 bytes"), "{err}");
}
