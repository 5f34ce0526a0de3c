//! A shard's first step on the GPU from host data: uploads the shard's logits and the
//! targets (in groups of rows when larger than the device's largest buffer), records
//! `gpu::encode_partials`, and reads the records back. (The finish goes through the
//! cross-entropy's own host path, `host::forward_host`, with the merged records.)

use crate::api::host::{Input, Targets};
use crate::api::kinds::TargetWidth;
use crate::api::shard::{ShardRecords, VocabShard, RECORD_WORDS};
use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::driver::{groups, rows_per_group};
use crate::gpu::io::{read_back, storage, upload, Waiting};
use crate::gpu::kernels::TargetLayout;
use crate::gpu::plan::PARTIAL_BYTES;
use crate::losses::cross_entropy::gpu::encode_partials;
use crate::losses::cross_entropy::spec::{Inputs, ShardStep, ShardView, Spec};

/// Each row's record of `input` (`[rows, shard.len()]`) with class-index `targets`.
pub(crate) async fn partials(
    ctx: &GpuContext,
    spec: &Spec<'_>,
    shard: VocabShard,
    (input, rows): (Input<'_>, usize),
    targets: &Targets<'_>,
) -> Result<ShardRecords> {
    let cols = shard.len();
    let row_bytes = (cols as u64 * input.format().bytes()).max(PARTIAL_BYTES);
    let what = format!("[{rows}, {cols}] {:?} (a shard's logits)", input.format());
    let per = rows_per_group(ctx, rows, row_bytes, &what)?.unwrap_or(rows);
    let width = match targets {
        Targets::I32(_) => TargetWidth::I32,
        _ => TargetWidth::I64,
    };
    let usage = wgpu::BufferUsages::COPY_SRC;
    let mut words = Vec::with_capacity(rows * RECORD_WORDS);
    for range in groups(rows, per) {
        let len = range.len() as u64;
        let logits = upload(
            ctx,
            "shard.logits",
            input.slice(range.start * cols, range.end * cols).bytes(),
            usage,
        )?;
        let target_buf = upload(
            ctx,
            "shard.targets",
            targets.slice(range.start, range.end).bytes(),
            usage,
        )?;
        let records = storage(ctx, "shard.records", len * PARTIAL_BYTES)?;
        let inputs = Inputs {
            input: (&logits).into(),
            format: input.format(),
            rows: range.len(),
            classes: cols,
            inner: 1,
            targets: ((&target_buf).into(), TargetLayout::Indices(width)),
            shard: Some(ShardView {
                start: shard.start(),
                total: shard.classes(),
                step: ShardStep::Partials((&records).into()),
            }),
        };
        let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("shard.partials"),
        });
        encode_partials(ctx, &mut encoder, spec, &inputs)?;
        let parts = read_back(ctx, encoder, &[(&records, 0, len * PARTIAL_BYTES)], Waiting::Block).await?;
        words.extend(parts.iter().flat_map(|p| bytemuck::pod_collect_to_vec::<u8, u32>(p)));
    }
    ShardRecords::from_words(words)
}
