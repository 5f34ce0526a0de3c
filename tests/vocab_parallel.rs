//! Vocab-parallel cross-entropy: K = 1…5 ragged shards on every backend (and mixed), every
//! option, against the unsharded f64 reference; the recorded steps over app buffers;
//! determinism; bad shards.

mod common;

use common::{assert_close, gpu, Rng, Tolerance, GRAD_TOLERANCE, REDUCED, ROW_LOSS};
use wgpu_loss::wgpu;
use wgpu_loss::{
    Backend, Batch, BatchAt, BufferAt, CrossEntropy, ForwardBackward, GradInto, InputAt, Loss, LossError, LossValue,
    MergedRecords, Outputs, Reduction, ShardBatch, ShardRecords, Targets, TargetsAt, Upstream, VocabShard,
    RECORD_WORDS,
};

const ROWS: usize = 37;
const CLASSES: usize = 53;
const IGNORE: i64 = -100;

/// The options every shard count runs with (weights, ignore_index, smoothing over all V,
/// z-loss, soft-cap, reductions, row outputs), alone and together.
fn option_sets(weight: &[f32]) -> Vec<(&'static str, CrossEntropy)> {
    let base = CrossEntropy::default();
    vec![
        ("mean", base.clone()),
        ("sum", base.clone().reduction(Reduction::Sum)),
        ("none", base.clone().reduction(Reduction::None)),
        ("weights", base.clone().weight(weight)),
        ("smoothing", base.clone().label_smoothing(0.2)),
        ("z-loss", base.clone().z_loss(1e-2)),
        ("softcap", base.clone().softcap(2.5)),
        ("row outputs", base.clone().row_outputs(true)),
        (
            "all",
            base.clone()
                .weight(weight)
                .label_smoothing(0.1)
                .z_loss(1e-3)
                .softcap(4.0)
                .row_outputs(true)
                .ignore_index(IGNORE),
        ),
        (
            "all, none",
            base.weight(weight)
                .label_smoothing(0.3)
                .z_loss(1e-3)
                .row_outputs(true)
                .reduction(Reduction::None),
        ),
    ]
}

/// Random logits, and targets on both edges of every shard of every K up to 5, with
/// ignored rows (every seventh from row 3).
fn data(seed: u64) -> (Vec<f32>, Vec<i64>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    let logits = rng.logits(ROWS * CLASSES, 6.0);
    let mut targets = rng.targets(ROWS, CLASSES);
    let mut edges = common::vocab::shard_edges(CLASSES, 5).into_iter();
    for (n, t) in targets.iter_mut().enumerate() {
        if n % 7 == 3 {
            *t = IGNORE;
        } else if let Some(edge) = edges.next() {
            *t = edge;
        }
    }
    assert!(edges.next().is_none(), "rows for every shard's edges");
    common::vocab::assert_every_shard_has_a_target(&targets, CLASSES, 5);
    let weight: Vec<f32> = (0..CLASSES).map(|_| rng.uniform(0.2, 2.0)).collect();
    (logits, targets, weight)
}

/// Shard `k` of `count`'s columns of `logits`.
fn columns(logits: &[f32], shard: VocabShard) -> Vec<f32> {
    logits
        .chunks_exact(CLASSES)
        .flat_map(|row| row[shard.start()..shard.end()].to_vec())
        .collect()
}

fn upstream_for(loss: &CrossEntropy) -> Vec<f32> {
    if loss.reduction == Reduction::None {
        (0..ROWS).map(|n| 0.5 + n as f32 / ROWS as f32).collect()
    } else {
        vec![0.75]
    }
}

fn upstream_of<'a>(loss: &CrossEntropy, values: &'a [f32]) -> Upstream<&'a [f32]> {
    if loss.reduction == Reduction::None {
        Upstream::Values(values)
    } else {
        Upstream::Scalar(values[0])
    }
}

fn values(loss: &LossValue) -> Vec<f32> {
    match loss {
        LossValue::Scalar(v) => vec![*v],
        LossValue::Tensor { values, .. } => values.clone(),
    }
}

fn wide(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// Sharded against unsharded: loss, gradient, lse, argmax, accuracy.
fn assert_agrees(what: &str, got: &ForwardBackward, want: &ForwardBackward, reduced: bool) {
    let tol: Tolerance = if reduced { REDUCED } else { ROW_LOSS };
    assert_close(
        &format!("{what}: loss"),
        &values(&got.loss),
        &wide(&values(&want.loss)),
        tol,
    );
    assert_close(&format!("{what}: grad"), &got.grad, &wide(&want.grad), GRAD_TOLERANCE);
    if let Some(lse) = &want.lse {
        assert_close(
            &format!("{what}: lse"),
            got.lse.as_ref().expect("lse"),
            &wide(lse),
            ROW_LOSS,
        );
        assert_eq!(got.argmax, want.argmax, "{what}: argmax");
        assert_eq!(
            got.accuracy.map(f32::to_bits),
            want.accuracy.map(f32::to_bits),
            "{what}: accuracy"
        );
    }
}

/// Every K and option on the backends `pick(k)` gives shard k.
fn shards_agree(label: &str, pick: impl Fn(usize) -> Backend<'static>) {
    let (logits, targets, weight) = data(16);
    for (name, loss) in option_sets(&weight) {
        let upstream = upstream_for(&loss);
        let batch = Batch::new(logits.as_slice(), [ROWS, CLASSES], targets.as_slice());
        let want = loss
            .forward_backward(Backend::Reference, &batch, upstream_of(&loss, &upstream))
            .unwrap();
        for count in 1..=5 {
            let shards: Vec<VocabShard> = (0..count)
                .map(|k| VocabShard::even(CLASSES, count, k).unwrap())
                .collect();
            let parts: Vec<Vec<f32>> = shards.iter().map(|&s| columns(&logits, s)).collect();
            let batches: Vec<ShardBatch<'_>> = shards
                .iter()
                .zip(&parts)
                .enumerate()
                .map(|(k, (&shard, part))| ShardBatch {
                    backend: pick(k),
                    shard,
                    logits: part.as_slice().into(),
                })
                .collect();
            let got = loss
                .vocab_parallel(&batches, Targets::I64(&targets), Some(upstream_of(&loss, &upstream)))
                .unwrap_or_else(|e| panic!("{label} {name} K={count}: {e}"));
            let what = format!("{label}, {name}, K = {count}");
            assert_agrees(&what, &got, &want, loss.reduction != Reduction::None);
        }
    }
}

#[test]
fn reference_shards_agree_with_the_unsharded_loss() {
    shards_agree("reference", |_| Backend::Reference);
}

#[test]
fn cpu_shards_agree_with_the_unsharded_loss() {
    shards_agree("cpu", |_| Backend::Cpu);
}

#[test]
fn gpu_shards_agree_with_the_unsharded_loss() {
    shards_agree("gpu", |_| Backend::Gpu(gpu()));
}

#[test]
fn mixed_gpu_and_cpu_shards_agree() {
    shards_agree(
        "gpu+cpu",
        |k| if k % 2 == 0 { Backend::Gpu(gpu()) } else { Backend::Cpu },
    );
}

/// A context per shard, as ranks of one machine make them (`GpuContext::new_nth` with the
/// local rank: the adapters of the default one's kind, round robin; here lavapipe alone).
#[test]
fn shards_on_a_context_each_agree() {
    let default = gpu().adapter_info();
    let contexts: Vec<&'static wgpu_loss::GpuContext> = (0..5)
        .map(|rank| &*Box::leak(Box::new(wgpu_loss::GpuContext::new_nth_blocking(rank).unwrap())))
        .collect();
    for ctx in &contexts {
        let info = ctx.adapter_info();
        assert_eq!(
            (info.backend, info.device_type),
            (default.backend, default.device_type),
            "new_nth keeps the default adapter's kind"
        );
    }
    shards_agree("a context each", move |k| Backend::Gpu(contexts[k]));
}

#[test]
fn gpu_shards_are_deterministic() {
    let (logits, targets, weight) = data(17);
    let loss = CrossEntropy::default()
        .weight(&weight)
        .label_smoothing(0.1)
        .row_outputs(true);
    let run = || {
        let shards: Vec<VocabShard> = (0..3).map(|k| VocabShard::even(CLASSES, 3, k).unwrap()).collect();
        let parts: Vec<Vec<f32>> = shards.iter().map(|&s| columns(&logits, s)).collect();
        let batches: Vec<ShardBatch<'_>> = shards
            .iter()
            .zip(&parts)
            .map(|(&shard, part)| ShardBatch {
                backend: Backend::Gpu(gpu()),
                shard,
                logits: part.as_slice().into(),
            })
            .collect();
        loss.vocab_parallel(&batches, Targets::I64(&targets), Some(Upstream::Scalar(1.0)))
            .unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(values(&a.loss)[0].to_bits(), values(&b.loss)[0].to_bits());
    assert!(a.grad.iter().zip(&b.grad).all(|(x, y)| x.to_bits() == y.to_bits()));
}

#[test]
fn half_precision_shards_agree() {
    let (logits, targets, _) = data(18);
    let loss = CrossEntropy::default().label_smoothing(0.1);
    let halves: Vec<u16> = logits.iter().map(|&x| wgpu_loss::half::f32_to_bf16(x)).collect();
    let exact: Vec<f32> = halves.iter().map(|&h| wgpu_loss::half::bf16_to_f32(h)).collect();
    let batch = Batch::new(exact.as_slice(), [ROWS, CLASSES], targets.as_slice());
    let want = loss
        .forward_backward(Backend::Reference, &batch, Upstream::Scalar(1.0))
        .unwrap();
    let shards: Vec<VocabShard> = (0..2).map(|k| VocabShard::even(CLASSES, 2, k).unwrap()).collect();
    let parts: Vec<Vec<u16>> = shards
        .iter()
        .map(|s| {
            halves
                .chunks_exact(CLASSES)
                .flat_map(|r| r[s.start()..s.end()].to_vec())
                .collect()
        })
        .collect();
    let batches: Vec<ShardBatch<'_>> = shards
        .iter()
        .zip(&parts)
        .map(|(&shard, part)| ShardBatch {
            backend: Backend::Gpu(gpu()),
            shard,
            logits: wgpu_loss::Input::Bf16(part),
        })
        .collect();
    let got = loss
        .vocab_parallel(&batches, Targets::I64(&targets), Some(Upstream::Scalar(1.0)))
        .unwrap();
    assert_agrees("bf16 shards", &got, &want, true);
}

/// The recorded steps over the app's buffers at offsets: partials into a records buffer,
/// the merge on the host, the finish writing the loss and the gradient in place.
#[test]
fn recorded_shard_steps_match_the_host_steps() {
    let ctx = gpu();
    let (logits, targets, weight) = data(19);
    let loss = CrossEntropy::default()
        .weight(&weight)
        .label_smoothing(0.1)
        .z_loss(1e-3);
    let merge = loss.vocab_merge(CLASSES).unwrap();
    let shards: Vec<VocabShard> = (0..3).map(|k| VocabShard::even(CLASSES, 3, k).unwrap()).collect();
    let parts: Vec<Vec<f32>> = shards.iter().map(|&s| columns(&logits, s)).collect();
    const PAD: u64 = 256;
    let padded = |bytes: &[u8]| {
        let mut v = vec![0u8; PAD as usize];
        v.extend_from_slice(bytes);
        v
    };
    let target_buf = common::app_buffer(&padded(bytemuck::cast_slice(&targets)));
    let logit_bufs: Vec<wgpu::Buffer> = parts
        .iter()
        .map(|p| common::app_buffer(&padded(bytemuck::cast_slice(p))))
        .collect();
    // The records 20 bytes past a 256-byte boundary: not aligned to a 32-byte record.
    let records_buf = common::app_buffer(&vec![0u8; PAD as usize + 20 + ROWS * RECORD_WORDS * 4]);
    let at = |buffer| BufferAt { buffer, offset: PAD };
    let records_at = BufferAt {
        buffer: &records_buf,
        offset: PAD + 20,
    };
    let batch_of = |k: usize| {
        BatchAt::new(
            InputAt::from(at(&logit_bufs[k])),
            [ROWS, shards[k].len()],
            TargetsAt::I64(at(&target_buf)),
        )
    };
    let mut records = Vec::new();
    for (k, &shard) in shards.iter().enumerate() {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        loss.encode_shard_partials(ctx, &mut encoder, shard, &batch_of(k), records_at)
            .unwrap();
        let words: Vec<u32> = wgpu_loss::submit_and_read(ctx, encoder, records_at, ROWS * RECORD_WORDS).unwrap();
        let host = loss
            .shard_partials(
                Backend::Gpu(ctx),
                shard,
                &Batch::new(parts[k].as_slice(), [ROWS, shard.len()], targets.as_slice()),
            )
            .unwrap();
        assert_eq!(words, host.words(), "shard {k}: recorded and host records");
        records.push(ShardRecords::from_words(words).unwrap());
    }
    let merged = merge.merge_local(&records).unwrap();
    let merged_buf = common::app_buffer(&padded(bytemuck::cast_slice(merged.words())));
    let loss_buf = common::app_buffer(&[0u8; PAD as usize + 8]);
    let batch = Batch::new(logits.as_slice(), [ROWS, CLASSES], targets.as_slice());
    let want = loss
        .forward_backward(Backend::Reference, &batch, Upstream::Scalar(1.0))
        .unwrap();
    let mut grad = Vec::new();
    for (k, &shard) in shards.iter().enumerate() {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        let outputs = Outputs {
            loss: Some(at(&loss_buf)),
            grad: Some((GradInto::InPlace, Upstream::Scalar(1.0))),
            ..Outputs::default()
        };
        loss.encode_shard_finish(ctx, &mut encoder, shard, &batch_of(k), at(&merged_buf), &outputs)
            .unwrap();
        let pair: Vec<f32> = wgpu_loss::submit_and_read(ctx, encoder, at(&loss_buf), 2).unwrap();
        assert_close("recorded loss", &pair[..1], &wide(&values(&want.loss)), REDUCED);
        let slice: Vec<f32> = wgpu_loss::read(ctx, at(&logit_bufs[k]), ROWS * shard.len()).unwrap();
        grad.push(slice);
    }
    let whole: Vec<f32> = (0..ROWS)
        .flat_map(|n| {
            shards
                .iter()
                .zip(&grad)
                .flat_map(move |(s, g)| g[n * s.len()..(n + 1) * s.len()].to_vec())
        })
        .collect();
    assert_close("recorded grad", &whole, &wide(&want.grad), GRAD_TOLERANCE);
}

#[test]
fn bad_shards_get_typed_errors() {
    let (logits, targets, _) = data(20);
    let loss = CrossEntropy::default();
    let shard = VocabShard::even(CLASSES, 2, 0).unwrap();
    let part = columns(&logits, shard);
    // Logits of another width than the shard's.
    let wrong = Batch::new(part.as_slice(), [ROWS * shard.len() / 2, 2], targets.as_slice());
    assert!(matches!(
        loss.shard_partials(Backend::Cpu, shard, &wrong),
        Err(LossError::BadShard { .. } | LossError::LengthMismatch { .. })
    ));
    // A target past V.
    let mut bad = targets.clone();
    bad[5] = CLASSES as i64;
    let batch = Batch::new(part.as_slice(), [ROWS, shard.len()], bad.as_slice());
    for backend in [Backend::Cpu, Backend::Gpu(gpu())] {
        match loss.shard_partials(backend, shard, &batch) {
            Err(LossError::TargetOutOfRange { row: 5, classes, .. }) => assert_eq!(classes, CLASSES),
            other => panic!("want TargetOutOfRange, got {other:?}"),
        }
    }
    // Merged records of another row count.
    let batch = Batch::new(part.as_slice(), [ROWS, shard.len()], targets.as_slice());
    let records = loss.shard_partials(Backend::Cpu, shard, &batch).unwrap();
    let merge = loss.vocab_merge(CLASSES).unwrap();
    let short = ShardRecords::from_words(records.words()[RECORD_WORDS..].to_vec()).unwrap();
    let merged = merge.merge_local(&[short]).unwrap();
    assert!(matches!(
        loss.shard_finish(Backend::Gpu(gpu()), shard, &batch, &merged, None),
        Err(LossError::BadShard { .. })
    ));
    // Records merged for other options (no smoothing) finished with smoothing, on both
    // backends; the same words without their options are the caller's to vouch for.
    let merged = merge.merge_local(std::slice::from_ref(&records)).unwrap();
    let smoothing = CrossEntropy::default().label_smoothing(0.1);
    for backend in [Backend::Cpu, Backend::Gpu(gpu())] {
        match smoothing.shard_finish(backend, shard, &batch, &merged, None) {
            Err(LossError::BadShard { detail }) => assert!(detail.contains("merged for other options"), "{detail}"),
            other => panic!("want BadShard, got {other:?}"),
        }
    }
    // A recorded shard whose shape overflows: a typed error, not an overflow panic.
    let tiny = common::app_buffer(&[0u8; 64]);
    let huge = BatchAt::new(
        InputAt::from(&tiny),
        [usize::MAX / 2, shard.len()],
        TargetsAt::I64((&tiny).into()),
    );
    let mut encoder = gpu().device().create_command_encoder(&Default::default());
    assert!(matches!(
        loss.encode_shard_partials(gpu(), &mut encoder, shard, &huge, (&tiny).into()),
        Err(LossError::TooLarge { .. })
    ));
    // A one-class shard of as many rows: the elements fit usize, their bytes do not.
    let narrow = VocabShard::new(CLASSES, 0, 1).unwrap();
    let rows = usize::MAX / 16;
    let huge = BatchAt::new(InputAt::from(&tiny), [rows, 1], TargetsAt::I64((&tiny).into()));
    for step in ["partials", "finish"] {
        let got = match step {
            "partials" => loss.encode_shard_partials(gpu(), &mut encoder, narrow, &huge, (&tiny).into()),
            _ => loss.encode_shard_finish(gpu(), &mut encoder, narrow, &huge, (&tiny).into(), &Outputs::default()),
        };
        assert!(
            matches!(got, Err(LossError::TooLarge { .. } | LossError::BadBuffer { .. })),
            "{step}: {got:?}"
        );
    }
    let bare = MergedRecords::from_words(merged.words().to_vec()).unwrap();
    assert!(smoothing.shard_finish(Backend::Cpu, shard, &batch, &bare, None).is_ok());
    // Shards that do not cover V, probability targets, weights of the shard's length.
    let half = ShardBatch {
        backend: Backend::Cpu,
        shard,
        logits: part.as_slice().into(),
    };
    assert!(matches!(
        loss.vocab_parallel(&[half], Targets::I64(&targets), None),
        Err(LossError::BadShard { .. })
    ));
    let probabilities = vec![0.0_f32; ROWS * shard.len()];
    let soft = Batch::new(part.as_slice(), [ROWS, shard.len()], probabilities.as_slice());
    assert!(matches!(
        loss.shard_partials(Backend::Cpu, shard, &soft),
        Err(LossError::Unsupported { .. })
    ));
    let short_weight = vec![1.0_f32; shard.len()];
    assert!(matches!(
        CrossEntropy::default().weight(&short_weight).vocab_merge(CLASSES),
        Err(LossError::LengthMismatch { what: "weight", .. })
    ));
    assert!(ShardRecords::from_words(vec![0; RECORD_WORDS + 1]).is_err());
}

/// Wider shards (vec4 loads where a shard's rows are 16-byte aligned, scalar ones where
/// not) and a context whose buffers hold a few rows only (the host steps run in groups).
#[test]
fn wide_shards_and_small_buffers_agree() {
    let small: &'static wgpu_loss::GpuContext = Box::leak(Box::new(
        wgpu_loss::GpuContext::new_blocking()
            .unwrap()
            .with_buffer_limit(64 << 10),
    ));
    let mut rng = Rng::new(21);
    for (rows, classes, count) in [(64, 4096, 4), (33, 4099, 3)] {
        let logits = rng.logits(rows * classes, 8.0);
        let targets = rng.targets(rows, classes);
        let loss = CrossEntropy::default().label_smoothing(0.05).row_outputs(true);
        let batch = Batch::new(logits.as_slice(), [rows, classes], targets.as_slice());
        let want = loss
            .forward_backward(Backend::Reference, &batch, Upstream::Scalar(1.0))
            .unwrap();
        for ctx in [gpu(), small] {
            let shards: Vec<VocabShard> = (0..count)
                .map(|k| VocabShard::even(classes, count, k).unwrap())
                .collect();
            let parts: Vec<Vec<f32>> = shards
                .iter()
                .map(|s| {
                    logits
                        .chunks_exact(classes)
                        .flat_map(|r| r[s.start()..s.end()].to_vec())
                        .collect()
                })
                .collect();
            let batches: Vec<ShardBatch<'_>> = shards
                .iter()
                .zip(&parts)
                .map(|(&shard, part)| ShardBatch {
                    backend: Backend::Gpu(ctx),
                    shard,
                    logits: part.as_slice().into(),
                })
                .collect();
            let got = loss
                .vocab_parallel(&batches, Targets::I64(&targets), Some(Upstream::Scalar(1.0)))
                .unwrap();
            assert_agrees(&format!("[{rows}, {classes}] in {count} shards"), &got, &want, true);
        }
    }
}

/// Collectives among threads: each participant posts its values, and every one reduces
/// all posts in participant order (what an MPI job of as many ranks does).
struct ThreadCollectives {
    rank: usize,
    posts: std::sync::Arc<std::sync::Mutex<Vec<Vec<u32>>>>,
    barrier: std::sync::Arc<std::sync::Barrier>,
}

impl ThreadCollectives {
    fn exchange(&mut self, mine: Vec<u32>) -> Vec<Vec<u32>> {
        self.posts.lock().unwrap()[self.rank] = mine;
        self.barrier.wait();
        let all = self.posts.lock().unwrap().clone();
        self.barrier.wait();
        all
    }
}

impl wgpu_loss::Collectives for ThreadCollectives {
    fn all_max_u32(&mut self, values: &mut [u32]) -> wgpu_loss::Result<()> {
        for post in self.exchange(values.to_vec()) {
            for (v, p) in values.iter_mut().zip(post) {
                *v = (*v).max(p);
            }
        }
        Ok(())
    }

    fn all_sum_f32(&mut self, values: &mut [f32]) -> wgpu_loss::Result<()> {
        let posts = self.exchange(values.iter().map(|v| v.to_bits()).collect());
        values.fill(0.0);
        for post in posts {
            for (v, p) in values.iter_mut().zip(post) {
                *v += f32::from_bits(p);
            }
        }
        Ok(())
    }
}

/// The engine-agnostic merge through collectives equals the in-process merge bit for bit
/// (the same rounds, the sums in shard order).
#[test]
fn merging_through_collectives_equals_the_local_merge() {
    let (logits, targets, weight) = data(22);
    let loss = CrossEntropy::default()
        .weight(&weight)
        .label_smoothing(0.1)
        .row_outputs(true);
    let merge = loss.vocab_merge(CLASSES).unwrap();
    let count = 4;
    let records: Vec<ShardRecords> = (0..count)
        .map(|k| {
            let shard = VocabShard::even(CLASSES, count, k).unwrap();
            let part = columns(&logits, shard);
            let batch = Batch::new(part.as_slice(), [ROWS, shard.len()], targets.as_slice());
            loss.shard_partials(Backend::Cpu, shard, &batch).unwrap()
        })
        .collect();
    let local = merge.merge_local(&records).unwrap();
    let posts = std::sync::Arc::new(std::sync::Mutex::new(vec![Vec::new(); count]));
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(count));
    let merged: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = records
            .iter()
            .enumerate()
            .map(|(rank, rec)| {
                let mut collectives = ThreadCollectives {
                    rank,
                    posts: posts.clone(),
                    barrier: barrier.clone(),
                };
                scope.spawn(move || merge.merge(&mut collectives, rec).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for m in merged {
        assert_eq!(m, local);
    }
    assert_eq!(merge.bytes_per_row(), 24);
}
