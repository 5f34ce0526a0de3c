//! The fused linear cross-entropy over vocabulary shards of W: K = 1…4 ragged shards on
//! the CPU, the GPU and both, every option, against the unsharded f64 reference; a device
//! whose buffers hold a few rows (row groups); the recorded steps over app buffers; bad
//! shards.

mod common;

use common::linear::{assert_agree, data, Data};
use common::{gpu, Rng};
use wgpu_loss::{
    Backend, BufferAt, CrossEntropy, Grads, InputAt, LinearBatch, LinearBatchAt, LinearCrossEntropy,
    LinearForwardBackward, LinearOutputs, LinearShardBatch, LossError, Reduction, ShardRecords, TargetsAt, Upstream,
    VocabShard, RECORD_WORDS,
};

const SHAPE: [usize; 3] = [45, 19, 67];

fn losses(weight: &[f32]) -> Vec<(&'static str, LinearCrossEntropy)> {
    // Small tiles: several per call (16 rows of 67 logits).
    let tiled = |ce: CrossEntropy| LinearCrossEntropy::new(ce).tile_bytes(16 * 67 * 4);
    vec![
        ("mean", tiled(CrossEntropy::default())),
        ("sum", tiled(CrossEntropy::default().reduction(Reduction::Sum))),
        ("none", tiled(CrossEntropy::default().reduction(Reduction::None))),
        (
            "all",
            tiled(
                CrossEntropy::default()
                    .weight(weight)
                    .label_smoothing(0.1)
                    .z_loss(1e-3)
                    .softcap(3.0)
                    .row_outputs(true),
            ),
        ),
    ]
}

fn upstream<'a>(loss: &LinearCrossEntropy, d: &'a Data) -> Upstream<&'a [f32]> {
    match loss.loss.reduction {
        Reduction::None => Upstream::Values(&d.upstream),
        _ => Upstream::Scalar(0.5),
    }
}

/// Shard `s`'s rows of W and b.
fn rows_of(d: &Data, s: VocabShard) -> (Vec<f32>, Vec<f32>) {
    let hidden = d.shape[1];
    (
        d.w[s.start() * hidden..s.end() * hidden].to_vec(),
        d.b[s.start()..s.end()].to_vec(),
    )
}

fn sharded(
    loss: &LinearCrossEntropy,
    d: &Data,
    count: usize,
    pick: &dyn Fn(usize) -> Backend<'static>,
) -> LinearForwardBackward {
    let [_, hidden, classes] = d.shape;
    let shards: Vec<VocabShard> = (0..count)
        .map(|k| VocabShard::even(classes, count, k).unwrap())
        .collect();
    let parts: Vec<(Vec<f32>, Vec<f32>)> = shards.iter().map(|&s| rows_of(d, s)).collect();
    let batches: Vec<LinearShardBatch<'_>> = shards
        .iter()
        .zip(&parts)
        .enumerate()
        .map(|(k, (&shard, (w, b)))| LinearShardBatch {
            backend: pick(k),
            shard,
            w: w.as_slice().into(),
            b: Some(b.as_slice().into()),
        })
        .collect();
    loss.vocab_parallel(
        &batches,
        (d.h.as_slice().into(), hidden),
        d.targets.as_slice().into(),
        Some(upstream(loss, d)),
        Grads::ALL,
    )
    .unwrap()
}

fn shards_agree(label: &str, pick: &dyn Fn(usize) -> Backend<'static>) {
    let mut rng = Rng::new(31);
    let d = data(&mut rng, SHAPE);
    let weight: Vec<f32> = (0..SHAPE[2]).map(|_| rng.uniform(0.3, 2.0)).collect();
    for (name, loss) in losses(&weight) {
        let batch = LinearBatch::new(d.h.as_slice(), d.w.as_slice(), SHAPE, d.targets.as_slice()).bias(d.b.as_slice());
        let want = loss
            .forward_backward(Backend::Reference, &batch, upstream(&loss, &d), Grads::ALL)
            .unwrap();
        for count in 1..=4 {
            let got = sharded(&loss, &d, count, pick);
            assert_agree(&format!("{label}, {name}, K = {count}"), &got, &want);
        }
    }
}

#[test]
fn cpu_shards_of_w_agree_with_the_unsharded_loss() {
    shards_agree("cpu", &|_| Backend::Cpu);
}

#[test]
fn gpu_shards_of_w_agree_with_the_unsharded_loss() {
    shards_agree("gpu", &|_| Backend::Gpu(gpu()));
}

#[test]
fn mixed_and_small_buffer_shards_of_w_agree() {
    // Buffers of 2 KiB: h in groups of 26 rows, each group finishing from its records.
    let small: &'static wgpu_loss::GpuContext = Box::leak(Box::new(
        wgpu_loss::GpuContext::new_blocking()
            .unwrap()
            .with_buffer_limit(2 << 10),
    ));
    shards_agree("gpu+cpu", &|k| {
        if k % 2 == 0 {
            Backend::Gpu(gpu())
        } else {
            Backend::Cpu
        }
    });
    shards_agree("small buffers", &|_| Backend::Gpu(small));
}

#[test]
fn recorded_linear_shard_steps_match_the_host_steps() {
    let ctx = gpu();
    let mut rng = Rng::new(32);
    let d = data(&mut rng, SHAPE);
    let [rows, hidden, classes] = SHAPE;
    let loss = LinearCrossEntropy::new(CrossEntropy::default().label_smoothing(0.05)).tile_bytes(8 * 67 * 4);
    let merge = loss.loss.vocab_merge(classes).unwrap();
    let shards: Vec<VocabShard> = (0..2).map(|k| VocabShard::even(classes, 2, k).unwrap()).collect();
    let buffer = |v: &[u8]| common::app_buffer(v);
    let h_buf = buffer(bytemuck::cast_slice(&d.h));
    let t_buf = buffer(bytemuck::cast_slice(&d.targets));
    let records_buf = buffer(&vec![0u8; rows * RECORD_WORDS * 4]);
    let parts: Vec<(wgpu_loss::wgpu::Buffer, wgpu_loss::wgpu::Buffer)> = shards
        .iter()
        .map(|&s| {
            let (w, b) = rows_of(&d, s);
            (buffer(bytemuck::cast_slice(&w)), buffer(bytemuck::cast_slice(&b)))
        })
        .collect();
    let batch_at = |k: usize| {
        LinearBatchAt::new(
            InputAt::from(&h_buf),
            InputAt::from(&parts[k].0),
            [rows, hidden, shards[k].len()],
            TargetsAt::I64((&t_buf).into()),
        )
        .bias(InputAt::from(&parts[k].1))
    };
    let mut records = Vec::new();
    for (k, &shard) in shards.iter().enumerate() {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        loss.encode_shard_partials(ctx, &mut encoder, shard, &batch_at(k), (&records_buf).into())
            .unwrap();
        let words: Vec<u32> =
            wgpu_loss::submit_and_read(ctx, encoder, (&records_buf).into(), rows * RECORD_WORDS).unwrap();
        let (w, b) = rows_of(&d, shard);
        let host = loss
            .shard_partials(
                Backend::Gpu(ctx),
                shard,
                &LinearBatch::new(
                    d.h.as_slice(),
                    w.as_slice(),
                    [rows, hidden, shard.len()],
                    d.targets.as_slice(),
                )
                .bias(b.as_slice()),
            )
            .unwrap();
        assert_eq!(words, host.words(), "shard {k}: recorded and host records");
        records.push(ShardRecords::from_words(words).unwrap());
    }
    let merged = merge.merge_local(&records).unwrap();
    let merged_buf = buffer(bytemuck::cast_slice(merged.words()));
    let batch = LinearBatch::new(d.h.as_slice(), d.w.as_slice(), SHAPE, d.targets.as_slice()).bias(d.b.as_slice());
    let want = loss
        .forward_backward(Backend::Reference, &batch, Upstream::Scalar(1.0), Grads::ALL)
        .unwrap();
    let mut grad_h = vec![0.0_f32; rows * hidden];
    let mut grad_w = Vec::new();
    for (k, &shard) in shards.iter().enumerate() {
        let loss_buf = buffer(&[0u8; 8]);
        let gh = buffer(&vec![0u8; rows * hidden * 4]);
        let gw = buffer(&vec![0u8; shard.len() * hidden * 4]);
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        let outputs = LinearOutputs {
            loss: Some((&loss_buf).into()),
            grad_h: Some((&gh).into()),
            grad_w: Some((&gw).into()),
            upstream: Upstream::Scalar(1.0),
            ..LinearOutputs::default()
        };
        loss.encode_shard_finish(ctx, &mut encoder, shard, &batch_at(k), (&merged_buf).into(), &outputs)
            .unwrap();
        let pair: Vec<f32> = wgpu_loss::submit_and_read(ctx, encoder, BufferAt::from(&loss_buf), 2).unwrap();
        common::assert_close(
            "recorded loss",
            &pair[..1],
            &common::linear::widen(want.loss.values()),
            common::linear::LOSS,
        );
        let term: Vec<f32> = wgpu_loss::read(ctx, (&gh).into(), rows * hidden).unwrap();
        for (total, v) in grad_h.iter_mut().zip(term) {
            *total += v;
        }
        grad_w.extend(wgpu_loss::read::<f32>(ctx, (&gw).into(), shard.len() * hidden).unwrap());
    }
    let grads = common::linear::GRADS;
    common::assert_close(
        "recorded ∂h",
        &grad_h,
        &common::linear::widen(want.grad_h.as_ref().unwrap()),
        grads,
    );
    common::assert_close(
        "recorded ∂W",
        &grad_w,
        &common::linear::widen(want.grad_w.as_ref().unwrap()),
        grads,
    );
}

#[test]
fn bad_linear_shards_get_typed_errors() {
    let mut rng = Rng::new(33);
    let d = data(&mut rng, SHAPE);
    let [rows, hidden, classes] = SHAPE;
    let loss = LinearCrossEntropy::new(CrossEntropy::default());
    let shard = VocabShard::even(classes, 3, 1).unwrap();
    let (w, _) = rows_of(&d, shard);
    // W of the shard's rows, but a shape that says otherwise.
    let wrong = LinearBatch::new(
        d.h.as_slice(),
        w.as_slice(),
        [rows, hidden, shard.len() + 1],
        d.targets.as_slice(),
    );
    assert!(matches!(
        loss.shard_partials(Backend::Cpu, shard, &wrong),
        Err(LossError::BadShard { .. })
    ));
    // Class weights of the shard's length rather than V's.
    let short = vec![1.0_f32; shard.len()];
    let weighted = LinearCrossEntropy::new(CrossEntropy::default().weight(&short));
    let batch = LinearBatch::new(
        d.h.as_slice(),
        w.as_slice(),
        [rows, hidden, shard.len()],
        d.targets.as_slice(),
    );
    assert!(matches!(
        weighted.shard_partials(Backend::Gpu(gpu()), shard, &batch),
        Err(LossError::LengthMismatch { what: "weight", .. })
    ));
    // A target past V, on both backends.
    let mut bad = d.targets.clone();
    bad[3] = classes as i64 + 2;
    let batch = LinearBatch::new(
        d.h.as_slice(),
        w.as_slice(),
        [rows, hidden, shard.len()],
        bad.as_slice(),
    );
    for backend in [Backend::Cpu, Backend::Gpu(gpu())] {
        assert!(matches!(
            loss.shard_partials(backend, shard, &batch),
            Err(LossError::TargetOutOfRange { row: 3, .. })
        ));
    }
    // Shards that leave part of V uncovered.
    let lone = LinearShardBatch {
        backend: Backend::Cpu,
        shard,
        w: w.as_slice().into(),
        b: None,
    };
    assert!(matches!(
        loss.vocab_parallel(
            &[lone],
            (d.h.as_slice().into(), hidden),
            d.targets.as_slice().into(),
            None,
            Grads::NONE
        ),
        Err(LossError::BadShard { .. })
    ));
}
