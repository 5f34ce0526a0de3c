use wgpu_loss::*;
fn main() {
    let ctx = GpuContext::new_blocking().unwrap();
    println!("{:?} limits: binding {} buffer {} align {} sg {}..{}", ctx, ctx.limits().max_storage_buffer_binding_size, ctx.limits().max_buffer_size, ctx.limits().min_storage_buffer_offset_alignment, ctx.adapter_info().subgroup_min_size, ctx.adapter_info().subgroup_max_size);
    for (rows, classes) in [(1usize, 1usize), (7, 3), (257, 1000), (3, 50257)] {
        let logits: Vec<f32> = (0..rows * classes).map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0).collect();
        let targets: Vec<i64> = (0..rows).map(|r| (r % classes) as i64).collect();
        for red in [Reduction::Mean, Reduction::Sum] {
            let ce = CrossEntropy::default().reduction(red).label_smoothing(0.1);
            let g = ce.forward(&ctx, &logits, rows, classes, &targets).unwrap();
            let c = ce.forward_cpu(&logits, rows, classes, &targets).unwrap();
            println!("{rows}x{classes} {red:?} gpu {:?} cpu {:?}", g.values(), c.values());
        }
    }
}
