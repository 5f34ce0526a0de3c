//! The fused linear cross-entropy over vocabulary shards: a shard holds W's rows (and b's)
//! of classes `[start, end)` — a tensor-parallel output layer's part — and the logits of
//! its classes are never stored, as unsharded. The cross-entropy's three steps
//! (`cross_entropy::shard`), with the logits of each tile of rows formed on the fly:
//!
//! 1. partials: tile by tile, the logits `h·W_kᵀ + b_k`, then each row's record;
//! 2. merge: [`crate::VocabMerge`] (collectives, or in one process);
//! 3. finish: tile by tile again (the logits recomputed, as Cut Cross-Entropy does),
//!    each tile's loss and gradient `G` from the merged records, then `∂h_k = G·W_k`,
//!    `∂W_k += Gᵀ·h`, `∂b_k += Σ G`. The shard's `∂h_k` is its term of `∂h`: the shards'
//!    terms add up to it (an all-reduce SUM of `[N, D]` across processes, as Megatron's
//!    vocab-parallel layer does for its input gradient).
//!
//! A shard of W holds at least one class (the cross-entropy's host shards may be empty).

use crate::api::buffers::BufferAt;
use crate::api::host::{Input, Targets, Upstream};
use crate::api::linear::{Grads, LinearBatch, LinearBatchAt, LinearForwardBackward, LinearOutputs, LinearShape};
use crate::api::reduction::{LossValue, Reduction};
use crate::api::shard::{MergedRecords, ShardRecords, VocabShard};
use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::io::Waiting;
use crate::losses::cross_entropy::shard::cpu::{self as shard_cpu, ShardRows};
use crate::losses::cross_entropy::shard::{covered, run_local};
use crate::losses::cross_entropy::spec::{ShardStep, ShardView, Spec};
use crate::losses::Backend;

use super::data::HostLinear;
use super::fast::{over_tiles, tile_logits, TileLoss};
use super::host;
use super::options::LinearCrossEntropy;
use super::plan::{tile_rows, tiles};

/// One shard of an in-process vocab-parallel linear call
/// ([`LinearCrossEntropy::vocab_parallel`]): the backend it runs on, its classes, and its
/// rows of the output layer.
#[derive(Debug, Clone, Copy)]
pub struct LinearShardBatch<'a> {
    /// Where this shard runs.
    pub backend: Backend<'a>,
    /// Its classes.
    pub shard: VocabShard,
    /// `W[start..end]`, `[shard.len(), D]`.
    pub w: Input<'a>,
    /// `b[start..end]`, if the layer has a bias.
    pub b: Option<Input<'a>>,
}

/// A shard's host data as f32, the data the CPU forms take.
struct Owned {
    h: Vec<f32>,
    w: Vec<f32>,
    b: Option<Vec<f32>>,
    targets: Vec<i64>,
}

impl Owned {
    fn of(batch: &LinearBatch<'_>) -> Self {
        Self {
            h: batch.h.to_f32().into_owned(),
            w: batch.w.to_f32().into_owned(),
            b: batch.b.map(|b| b.to_f32().into_owned()),
            targets: batch.targets.indices(),
        }
    }

    fn data(&self, shape: LinearShape) -> HostLinear<'_> {
        HostLinear {
            h: &self.h,
            w: &self.w,
            b: self.b.as_deref(),
            shape,
            targets: &self.targets,
        }
    }
}

impl LinearCrossEntropy {
    /// Step 1 on the host: each row's record over the shard's classes. `batch.w` and
    /// `batch.b` are the shard's rows (`batch.shape.classes` = `shard.len()`), the targets
    /// the N class indices of the whole vocabulary.
    pub fn shard_partials(
        &self,
        backend: Backend<'_>,
        shard: VocabShard,
        batch: &LinearBatch<'_>,
    ) -> Result<ShardRecords> {
        self.check_shard_batch(shard, batch, None)?;
        let spec = self.loss.spec();
        match backend {
            Backend::Gpu(ctx) if batch.shape.rows > 0 => {
                let targets = batch.targets.indices();
                let call = self.host_call(ctx, batch, &targets, (None, Grads::NONE), None)?;
                ShardRecords::from_words(pollster::block_on(host::partials_host(ctx, &spec, &call, shard))?)
            }
            _ => {
                let owned = Owned::of(batch);
                let data = owned.data(batch.shape);
                let mut records = Vec::with_capacity(batch.shape.rows);
                let mut logits = Vec::new();
                for (first, len) in tiles(batch.shape.rows, self.cpu_tile_rows(batch.shape)) {
                    tile_logits(&data, (first, len), &mut logits);
                    let rows = ShardRows {
                        shard,
                        logits: &logits,
                        targets: &data.targets[first..first + len],
                    };
                    records.extend_from_slice(shard_cpu::partials(&spec, &rows).words());
                }
                ShardRecords::from_words(records)
            }
        }
    }

    /// Step 3 on the host: the loss over all rows, the row outputs, and the gradients
    /// `grads` asks for — `grad_h` this shard's term of `∂h` (the shards' terms add up to
    /// it), `grad_w` and `grad_b` the shard's rows of `∂W`, `∂b`.
    pub fn shard_finish(
        &self,
        backend: Backend<'_>,
        shard: VocabShard,
        batch: &LinearBatch<'_>,
        merged: &MergedRecords,
        upstream: Option<Upstream<&[f32]>>,
        grads: Grads,
    ) -> Result<LinearForwardBackward> {
        self.check_shard_batch(shard, batch, upstream)?;
        self.loss.check_merged(merged, batch.shape.rows, shard.classes())?;
        let spec = self.loss.spec();
        match backend {
            Backend::Gpu(ctx) if batch.shape.rows > 0 => {
                let targets = batch.targets.indices();
                let view = Some((shard.start(), shard.classes(), merged.words()));
                let call = self.host_call(ctx, batch, &targets, (upstream, grads), view)?;
                pollster::block_on(host::forward_host(ctx, &spec, &call))
            }
            _ => {
                let owned = Owned::of(batch);
                Ok(self.cpu_finish(&spec, shard, &owned.data(batch.shape), merged, (upstream, grads)))
            }
        }
    }

    /// Step 1 recorded into the app's `encoder`: `batch` in the app's buffers (W and b the
    /// shard's rows), each row's record written at `records`. Submits nothing.
    pub fn encode_shard_partials(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        shard: VocabShard,
        batch: &LinearBatchAt<'_>,
        records: BufferAt<'_>,
    ) -> Result<()> {
        let width = self.check_shard_batch_at(shard, batch)?;
        let view = view_of(shard, ShardStep::Partials(records));
        self.record(ctx, encoder, (batch, width), &LinearOutputs::default(), Some(view))
    }

    /// Step 3 recorded into the app's `encoder`: reads the merged records at `merged` and
    /// writes what `outputs` asks for, as [`LinearCrossEntropy::encode`] does (`grad_h`:
    /// this shard's term of `∂h`).
    pub fn encode_shard_finish(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        shard: VocabShard,
        batch: &LinearBatchAt<'_>,
        merged: BufferAt<'_>,
        outputs: &LinearOutputs<'_>,
    ) -> Result<()> {
        let width = self.check_shard_batch_at(shard, batch)?;
        self.record(
            ctx,
            encoder,
            (batch, width),
            outputs,
            Some(view_of(shard, ShardStep::Finish(merged))),
        )
    }

    /// All three steps for shards of W held in one process (each on its own backend),
    /// merged on the host in shard order: `h [N, D]` and the N `targets` shared, the
    /// shards covering `[0, V)` in order. `∂h` adds the shards' terms in shard order;
    /// `∂W` and `∂b` are the shards' rows, concatenated.
    pub fn vocab_parallel<'a>(
        &self,
        shards: &[LinearShardBatch<'a>],
        (h, hidden): (Input<'a>, usize),
        targets: Targets<'a>,
        upstream: Option<Upstream<&[f32]>>,
        grads: Grads,
    ) -> Result<LinearForwardBackward> {
        let classes = covered(shards.iter().map(|s| s.shard))?;
        let merge = self.loss.vocab_merge(classes)?;
        let rows = targets.len();
        let batch = |s: &LinearShardBatch<'a>| LinearBatch {
            h,
            w: s.w,
            b: s.b,
            shape: LinearShape {
                rows,
                hidden,
                classes: s.shard.len(),
            },
            targets,
        };
        let parts = run_local(
            shards,
            |s| s.backend,
            &merge,
            |s| self.shard_partials(s.backend, s.shard, &batch(s)),
            |s, merged| self.shard_finish(s.backend, s.shard, &batch(s), merged, upstream, grads),
        )?;
        let mut out = parts[0].clone();
        let concat = |pick: fn(&LinearForwardBackward) -> &Option<Vec<f32>>| -> Option<Vec<f32>> {
            parts
                .iter()
                .map(|p| pick(p).clone())
                .collect::<Option<Vec<_>>>()
                .map(|v| v.concat())
        };
        out.grad_w = concat(|p| &p.grad_w);
        out.grad_b = concat(|p| &p.grad_b);
        if let Some(sum) = &mut out.grad_h {
            for part in &parts[1..] {
                for (total, v) in sum.iter_mut().zip(part.grad_h.iter().flatten()) {
                    *total += v;
                }
            }
        }
        Ok(out)
    }

    /// The GPU host call of a shard's batch.
    fn host_call<'a>(
        &self,
        ctx: &GpuContext,
        batch: &'a LinearBatch<'a>,
        targets: &'a [i64],
        (upstream, grads): (Option<Upstream<&'a [f32]>>, Grads),
        shard: Option<(usize, usize, &'a [u32])>,
    ) -> Result<host::HostCall<'a>> {
        Ok(host::HostCall {
            batch,
            targets,
            upstream,
            grads,
            per_tile: self.device_tile_rows(ctx, batch.shape)?,
            waiting: Waiting::Block,
            shard,
        })
    }

    fn cpu_tile_rows(&self, shape: LinearShape) -> usize {
        tile_rows(shape, self.tile_bytes, self.mode)
    }

    /// Step 3 on the CPU: the tile loop of the fast backend with the shard's finish as each
    /// tile's cross-entropy (reduction `none`, the whole call's upstream scales).
    fn cpu_finish(
        &self,
        spec: &Spec<'_>,
        shard: VocabShard,
        data: &HostLinear<'_>,
        merged: &MergedRecords,
        (upstream, grads): (Option<Upstream<&[f32]>>, Grads),
    ) -> LinearForwardBackward {
        let tile_spec = Spec {
            reduction: Reduction::None,
            ..*spec
        };
        over_tiles(
            spec,
            data,
            (upstream, grads),
            self.cpu_tile_rows(data.shape),
            |logits, (first, len), g| {
                let rows = ShardRows {
                    shard,
                    logits,
                    targets: &data.targets[first..first + len],
                };
                let scales: Option<Vec<f32>> = g.map(|g| g.iter().map(|&v| v as f32).collect());
                let tile = merged.rows_of(first, len);
                let part = shard_cpu::finish(&tile_spec, &rows, &tile, scales.as_deref().map(Upstream::Values));
                let loss = match part.loss {
                    LossValue::Tensor { values, .. } => values.into_iter().map(f64::from).collect(),
                    LossValue::Scalar(v) => vec![f64::from(v)],
                };
                TileLoss {
                    loss,
                    grad: part.grad,
                    lse: part.lse.unwrap_or_default(),
                    argmax: part.argmax.unwrap_or_default(),
                }
            },
        )
    }
}

fn view_of(shard: VocabShard, step: ShardStep<'_>) -> ShardView<'_> {
    ShardView {
        start: shard.start(),
        total: shard.classes(),
        step,
    }
}
