//! Vocab-parallel cross-entropy: a shard holds the logits of classes `[start, end)` of V
//! (`[N, end - start]`, a tensor-parallel output layer's part). Three steps:
//!
//! 1. **partials** ([`CrossEntropy::shard_partials`], [`CrossEntropy::encode_shard_partials`]):
//!    each row's record over the shard's classes (`api::shard`: max, exp-sum, the smoothing
//!    sum, the target logit when the shard holds the target, the best logit and its
//!    column) — the split-row kernel's partial record, with the shard as the row's block;
//! 2. **merge** ([`crate::VocabMerge`]): element-wise MAX and SUM over the shards (the
//!    collectives of MPI or NCCL, or [`crate::VocabMerge::merge_local`] in one process);
//! 3. **finish** ([`CrossEntropy::shard_finish`], [`CrossEntropy::encode_shard_finish`]):
//!    every row's loss, reduced over all rows, the row outputs, and the shard's slice of
//!    the gradient, written in place — the split-row merge kernel and pass 2, over V.
//!
//! Every option is the unsharded one's: class weights, `ignore_index`, label smoothing over
//! all V classes (never the partition's), z-loss, soft-cap, the reductions, argmax and
//! accuracy. Shards take logits `[N, C_shard]` (f32, f16, bf16) with class-index targets.

mod check;
pub(crate) mod cpu;
mod host;
mod local;

pub(crate) use local::{covered, run_local};

use crate::api::buffers::{BatchAt, BufferAt, Outputs, TargetsAt};
use crate::api::host::{Batch, ForwardBackward, Input, Targets, Upstream};
use crate::api::kinds::TargetWidth;
use crate::api::shard::{MergedRecords, ShardRecords, VocabShard, RECORD_WORDS};
use crate::error::{LossError, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::io::Waiting;
use crate::gpu::kernels::TargetLayout;
use crate::losses::cross_entropy::gpu::{encode, encode_empty, encode_partials};
use crate::losses::cross_entropy::host::{forward_host, HostCall, HostShard};
use crate::losses::cross_entropy::options::CrossEntropy;
use crate::losses::cross_entropy::spec::{Inputs, ShardStep, ShardView};
use crate::losses::Backend;

use check::ShardCall;
use cpu::ShardRows;

/// One shard of an in-process vocab-parallel call ([`CrossEntropy::vocab_parallel`]): the
/// backend it runs on and its logits `[N, shard.len()]`.
#[derive(Debug, Clone, Copy)]
pub struct ShardBatch<'a> {
    /// Where this shard runs.
    pub backend: Backend<'a>,
    /// Its classes.
    pub shard: VocabShard,
    /// Its logits `[N, shard.len()]`, row-major.
    pub logits: Input<'a>,
}

impl CrossEntropy {
    /// Step 1 on the host: each row's record of the shard's logits `batch` (`[N,
    /// shard.len()]`, targets the N class indices of the whole vocabulary).
    pub fn shard_partials(&self, backend: Backend<'_>, shard: VocabShard, batch: &Batch<'_>) -> Result<ShardRecords> {
        let rows = self.check_host_shard(shard, batch, None)?;
        let spec = self.spec();
        match backend {
            Backend::Gpu(ctx) if rows > 0 && !shard.is_empty() => {
                pollster::block_on(host::partials(ctx, &spec, shard, (batch.input, rows), &batch.targets))
            }
            _ => {
                let logits = batch.input.to_f32();
                let targets = batch.targets.indices();
                Ok(cpu::partials(&spec, &shard_rows(shard, &logits, &targets)))
            }
        }
    }

    /// Step 3 on the host: from the merged records of every row, the loss (reduced over
    /// all rows), the row outputs (with `row_outputs`) and, with an upstream, the shard's
    /// slice `[N, shard.len()]` of `∂L/∂logits` in `grad`.
    pub fn shard_finish(
        &self,
        backend: Backend<'_>,
        shard: VocabShard,
        batch: &Batch<'_>,
        merged: &MergedRecords,
        upstream: Option<Upstream<&[f32]>>,
    ) -> Result<ForwardBackward> {
        let rows = self.check_host_shard(shard, batch, upstream)?;
        self.check_merged(merged, rows, shard.classes())?;
        let spec = self.spec();
        match backend {
            Backend::Gpu(ctx) if rows > 0 && !shard.is_empty() => {
                let call = HostCall {
                    input: batch.input,
                    rows,
                    classes: shard.len(),
                    inner: 1,
                    targets: batch.targets,
                    grad: upstream,
                    waiting: Waiting::Block,
                    shard: Some(HostShard {
                        start: shard.start(),
                        total: shard.classes(),
                        merged: merged.words(),
                    }),
                };
                pollster::block_on(forward_host(ctx, &spec, &call))
            }
            _ => {
                let logits = batch.input.to_f32();
                let targets = batch.targets.indices();
                Ok(cpu::finish(
                    &spec,
                    &shard_rows(shard, &logits, &targets),
                    merged,
                    upstream,
                ))
            }
        }
    }

    /// Step 1 recorded into the app's `encoder`: the shard's logits `batch.input` (`[N,
    /// shard.len()]`, shape `batch.shape`) and class-index targets `batch.targets` in the
    /// app's buffers; each row's record (`RECORD_WORDS` u32 a row) is written at
    /// `records`. Submits nothing.
    pub fn encode_shard_partials(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        shard: VocabShard,
        batch: &BatchAt<'_>,
        records: BufferAt<'_>,
    ) -> Result<()> {
        let inputs = self.shard_inputs(shard, batch, ShardStep::Partials(records))?;
        if inputs.rows == 0 {
            return Ok(());
        }
        encode_partials(ctx, encoder, &self.spec(), &inputs)
    }

    /// Step 3 recorded into the app's `encoder`: reads the merged records at `merged` and
    /// writes what `outputs` asks for, as [`crate::Loss::encode`] does for the whole
    /// vocabulary — the loss over all rows, the status, the row outputs, and the shard's
    /// slice of the gradient (in place over the shard's f32 logits, or into a buffer).
    /// Records in a buffer carry no options: they must have been merged for this loss's
    /// ([`CrossEntropy::vocab_merge`] of the same options).
    pub fn encode_shard_finish(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        shard: VocabShard,
        batch: &BatchAt<'_>,
        merged: BufferAt<'_>,
        outputs: &Outputs<'_>,
    ) -> Result<()> {
        let inputs = self.shard_inputs(shard, batch, ShardStep::Finish(merged))?;
        if inputs.rows == 0 {
            return encode_empty(ctx, encoder, &self.spec(), &inputs, outputs);
        }
        encode(ctx, encoder, &self.spec(), &inputs, outputs)
    }

    /// All three steps for shards held in one process (each on its own backend: several
    /// GPU contexts, the CPU), merged on the host in shard order. `targets` are the N
    /// class indices of the whole vocabulary; the shards must cover `[0, V)` in order.
    /// Returns the first shard's loss and row outputs (every shard computes the same)
    /// and, with an upstream, the whole gradient `[N, V]`.
    ///
    /// ```
    /// # fn main() -> Result<(), wgpu_loss::LossError> {
    /// use wgpu_loss::{Backend, Batch, CrossEntropy, Loss, ShardBatch, Targets, Upstream, VocabShard};
    /// let logits = [1.0_f32, 2.0, 0.5, -1.0, 0.0, 3.0]; // [2, 3]
    /// let targets = [1_i64, 2];
    /// let loss = CrossEntropy::default().label_smoothing(0.1);
    /// // Classes [0, 2) on one shard, [2, 3) on another: each holds its columns.
    /// let (left, right) = ([1.0_f32, 2.0, -1.0, 0.0], [0.5_f32, 3.0]);
    /// let shards = [
    ///     ShardBatch { backend: Backend::Cpu, shard: VocabShard::new(3, 0, 2)?, logits: (&left[..]).into() },
    ///     ShardBatch { backend: Backend::Cpu, shard: VocabShard::new(3, 2, 3)?, logits: (&right[..]).into() },
    /// ];
    /// let sharded = loss.vocab_parallel(&shards, Targets::I64(&targets), Some(Upstream::Scalar(1.0)))?;
    /// let whole = loss.forward_backward(Backend::Reference, &Batch::new(&logits, [2, 3], &targets), Upstream::Scalar(1.0))?;
    /// assert!((sharded.loss.scalar().unwrap() - whole.loss.scalar().unwrap()).abs() < 1e-6);
    /// assert!(sharded.grad.iter().zip(&whole.grad).all(|(a, b)| (a - b).abs() < 1e-6));
    /// # Ok(()) }
    /// ```
    pub fn vocab_parallel<'a>(
        &self,
        shards: &[ShardBatch<'a>],
        targets: Targets<'a>,
        upstream: Option<Upstream<&[f32]>>,
    ) -> Result<ForwardBackward> {
        let classes = covered(shards.iter().map(|s| s.shard))?;
        let merge = self.vocab_merge(classes)?;
        let rows = targets.len();
        let batch = |s: &ShardBatch<'a>| Batch {
            input: s.logits,
            shape: vec![rows, s.shard.len()],
            targets,
        };
        let parts = run_local(
            shards,
            |s| s.backend,
            &merge,
            |s| self.shard_partials(s.backend, s.shard, &batch(s)),
            |s, merged| self.shard_finish(s.backend, s.shard, &batch(s), merged, upstream),
        )?;
        let mut out = parts[0].clone();
        if upstream.is_some() {
            out.grad = Vec::with_capacity(rows * classes);
            for n in 0..rows {
                for (s, part) in shards.iter().zip(&parts) {
                    let cols = s.shard.len();
                    out.grad.extend_from_slice(&part.grad[n * cols..(n + 1) * cols]);
                }
            }
        }
        Ok(out)
    }

    /// A host shard call's checks; returns N.
    fn check_host_shard(
        &self,
        shard: VocabShard,
        batch: &Batch<'_>,
        upstream: Option<Upstream<&[f32]>>,
    ) -> Result<usize> {
        self.check_shard(&ShardCall {
            shard,
            shape: &batch.shape,
            input_len: batch.input.len(),
            targets: Some(&batch.targets),
            target_len: batch.targets.len(),
            upstream,
        })
    }

    /// A recorded shard call's checks, into the recording's inputs.
    fn shard_inputs<'a>(&self, shard: VocabShard, batch: &BatchAt<'a>, step: ShardStep<'a>) -> Result<Inputs<'a>> {
        let (targets, width) = match batch.targets {
            TargetsAt::I64(at) => (at, TargetWidth::I64),
            TargetsAt::I32(at) => (at, TargetWidth::I32),
            _ => {
                return Err(LossError::Unsupported {
                    loss: self.loss_name(),
                    option: "vocabulary shards without class-index targets (TargetsAt::I64 or I32)",
                })
            }
        };
        if shard.is_empty() {
            return Err(LossError::BadShard {
                detail: format!(
                    "classes [{}, {}) of {}: an empty shard has nothing to record on a GPU (its host calls run on the CPU)",
                    shard.start(),
                    shard.end(),
                    shard.classes()
                ),
            });
        }
        let elements = batch.shape.iter().fold(1_usize, |acc, &d| acc.saturating_mul(d));
        let rows = self.check_shard(&ShardCall {
            shard,
            shape: &batch.shape,
            input_len: elements,
            targets: None,
            target_len: batch.shape.first().copied().unwrap_or(0),
            upstream: None,
        })?;
        Ok(Inputs {
            input: batch.input.at,
            format: batch.input.format,
            rows,
            classes: shard.len(),
            inner: 1,
            targets: (targets, TargetLayout::Indices(width)),
            shard: Some(ShardView {
                start: shard.start(),
                total: shard.classes(),
                step,
            }),
        })
    }
}

fn shard_rows<'a>(shard: VocabShard, logits: &'a [f32], targets: &'a [i64]) -> ShardRows<'a> {
    ShardRows { shard, logits, targets }
}

impl CrossEntropy {
    /// Merged records for `rows` rows, merged for this loss's options over `classes` (when
    /// they say what they were merged for).
    pub(crate) fn check_merged(&self, merged: &MergedRecords, rows: usize, classes: usize) -> Result<()> {
        let want = self.vocab_merge(classes)?.options();
        if let Some(got) = merged.merged_for.filter(|&got| got != want) {
            return Err(LossError::BadShard {
                detail: format!(
                    "records merged for other options (argmax {}, smoothing {}, Σ weights {}) than this loss's (argmax {}, smoothing {}, Σ weights {})",
                    got.argmax,
                    got.smoothing,
                    f32::from_bits(got.weight_sum_bits),
                    want.argmax,
                    want.smoothing,
                    f32::from_bits(want.weight_sum_bits)
                ),
            });
        }
        check_merged_rows(merged, rows)
    }
}

fn check_merged_rows(merged: &MergedRecords, rows: usize) -> Result<()> {
    if merged.rows() != rows {
        return Err(LossError::BadShard {
            detail: format!(
                "{} merged records ({} words) for {rows} rows ({} words)",
                merged.rows(),
                merged.words().len(),
                rows * RECORD_WORDS
            ),
        });
    }
    Ok(())
}
