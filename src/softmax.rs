//! Row operations on `[N, C]` logits: softmax, log-softmax (`[N, C]` out) and the entropy
//! of each row's softmax (`[N]` out).

use bytemuck::{Pod, Zeroable};

use crate::binding::{entries, grid, items_per_binding, window};
use crate::context::GpuContext;
use crate::cpu;
use crate::cross_entropy_gpu::TEAM_GROUP_SIZE;
use crate::device_io::{finish_and_read, storage, uniform, upload};
use crate::error::{LossError, Result};
pub use crate::kernels::RowOutput as RowOp;
use crate::kernels::{Kernel, Layout};
use crate::reduction::LossValue;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
    in_offset: u32,
    out_offset: u32,
}

impl RowOp {
    /// Output elements per row.
    fn per_row(self, classes: usize) -> usize {
        match self {
            RowOp::Softmax | RowOp::LogSoftmax => classes,
            RowOp::Entropy => 1,
        }
    }

    fn shape(self, rows: usize, classes: usize) -> Vec<usize> {
        match self {
            RowOp::Softmax | RowOp::LogSoftmax => vec![rows, classes],
            RowOp::Entropy => vec![rows],
        }
    }

    fn validate(self, logits: &[f32], rows: usize, classes: usize) -> Result<()> {
        if classes == 0 {
            return Err(LossError::ZeroClasses { rows });
        }
        let expected = rows.saturating_mul(classes);
        if logits.len() != expected {
            return Err(LossError::LengthMismatch {
                what: "input",
                shape: format!("[{rows}, {classes}]"),
                expected,
                actual: logits.len(),
            });
        }
        Ok(())
    }

    /// Computes the operation on the GPU.
    pub fn forward(self, ctx: &GpuContext, logits: &[f32], rows: usize, classes: usize) -> Result<LossValue> {
        self.validate(logits, rows, classes)?;
        let shape = self.shape(rows, classes);
        if rows == 0 {
            return Ok(LossValue::Tensor {
                shape,
                values: Vec::new(),
            });
        }
        let device = &ctx.device;
        let per_row = self.per_row(classes) as u64;
        let input = upload(
            ctx,
            "softmax.input",
            bytemuck::cast_slice(logits),
            wgpu::BufferUsages::empty(),
        )?;
        let out = storage(ctx, "softmax.out", rows as u64 * per_row * 4)?;
        let row_bytes = classes as u64 * 4;
        let rows_per_chunk = items_per_binding(ctx, row_bytes).min(u64::from(u32::MAX / 2));
        if rows_per_chunk == 0 {
            return Err(LossError::TooLarge {
                what: "input",
                detail: format!(
                    "one row of {classes} classes is {row_bytes} bytes, more than the device's largest storage binding ({} bytes)",
                    ctx.max_binding_bytes()
                ),
            });
        }
        let (team, teams_per_group) = ctx.row_team(TEAM_GROUP_SIZE);
        let pipeline = ctx.pipelines.get(Kernel::SoftmaxRows { team, output: self })?;
        let layout = ctx.pipelines.bind_group_layout(Layout::Map);
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("softmax") });
        let mut begin = 0_u64;
        while begin < rows as u64 {
            let chunk = rows_per_chunk.min(rows as u64 - begin);
            let in_w = window(ctx, "input", &input, begin * row_bytes, chunk * row_bytes)?;
            let out_w = window(ctx, "output", &out, begin * per_row * 4, chunk * per_row * 4)?;
            let params = Params {
                rows: chunk as u32,
                classes: classes as u32,
                in_offset: in_w.word_shift,
                out_offset: out_w.word_shift,
            };
            let params = uniform(ctx, "softmax.params", bytemuck::bytes_of(&params))?;
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("softmax.softmax_rows"),
                layout,
                entries: &entries(vec![params.as_entire_binding(), in_w.binding(), out_w.binding()]),
            });
            let (x, y) = grid(ctx, chunk.div_ceil(teams_per_group))?;
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("softmax.softmax_rows"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(x, y, 1);
            drop(pass);
            begin += chunk;
        }
        let bytes = finish_and_read(ctx, encoder, &out, 0, rows as u64 * per_row * 4)?;
        Ok(LossValue::Tensor {
            shape,
            values: bytemuck::pod_collect_to_vec(&bytes),
        })
    }

    /// Computes the operation with the f64 CPU reference (rounded to f32 at the end).
    pub fn forward_cpu(self, logits: &[f32], rows: usize, classes: usize) -> Result<LossValue> {
        self.validate(logits, rows, classes)?;
        let mut values = Vec::with_capacity(rows * self.per_row(classes));
        for row in logits.chunks_exact(classes) {
            match self {
                RowOp::Softmax => values.extend(cpu::softmax(row).iter().map(|&v| v as f32)),
                RowOp::LogSoftmax => values.extend(cpu::log_softmax(row).iter().map(|&v| v as f32)),
                RowOp::Entropy => values.push(cpu::entropy(row) as f32),
            }
        }
        Ok(LossValue::Tensor {
            shape: self.shape(rows, classes),
            values,
        })
    }
}
