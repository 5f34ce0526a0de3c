//! Row operations on `[N, C]` logits: softmax, log-softmax (`[N, C]` out) and the entropy
//! of each row's softmax (`[N]` out).

use bytemuck::{Pod, Zeroable};

use crate::binding::{entries, grid, items_per_binding, window, window_of};
use crate::context::GpuContext;
use crate::cpu;
use crate::cpu_fast;
use crate::cross_entropy_gpu::{check_room, check_room_aligned, BufferAt, HalfInput, InputAt};
use crate::device_io::{finish_and_read, storage, uniform, upload};
use crate::error::{LossError, Result};
pub use crate::kernels::RowOutput as RowOp;
use crate::kernels::{InputFormat, Kernel, Layout};
use crate::reduction::LossValue;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
    in_offset: u32,
    out_offset: u32,
    upstream_offset: u32,
    _pad: [u32; 3],
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
        Self::validate_len(logits.len(), rows, classes)
    }

    /// C > 0 and `len` = N·C (the input of any element type).
    fn validate_len(len: usize, rows: usize, classes: usize) -> Result<()> {
        if classes == 0 {
            return Err(LossError::ZeroClasses { rows });
        }
        let expected = rows.saturating_mul(classes);
        if len != expected {
            return Err(LossError::LengthMismatch {
                what: "input",
                shape: format!("[{rows}, {classes}]"),
                expected,
                actual: len,
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
        let values = self.run(ctx, logits, rows, classes, None)?;
        Ok(LossValue::Tensor { shape, values })
    }

    /// The vector-Jacobian product on the GPU: `upstream` has the output's shape (`[N, C]`,
    /// or `[N]` for the entropy); the result has the input's, `[N, C]`.
    pub fn backward(
        self,
        ctx: &GpuContext,
        logits: &[f32],
        rows: usize,
        classes: usize,
        upstream: &[f32],
    ) -> Result<Vec<f32>> {
        self.validate(logits, rows, classes)?;
        self.validate_upstream(rows, classes, upstream)?;
        if rows == 0 {
            return Ok(Vec::new());
        }
        self.run(ctx, logits, rows, classes, Some(upstream))
    }

    /// The vector-Jacobian product with the f64 CPU reference.
    pub fn backward_cpu(self, logits: &[f32], rows: usize, classes: usize, upstream: &[f32]) -> Result<Vec<f32>> {
        self.validate(logits, rows, classes)?;
        self.validate_upstream(rows, classes, upstream)?;
        let per_row = self.per_row(classes);
        let mut grad = Vec::with_capacity(logits.len());
        for (n, row) in logits.chunks_exact(classes).enumerate() {
            let row64: Vec<f64> = row.iter().map(|&x| f64::from(x)).collect();
            let up: Vec<f64> = upstream[n * per_row..(n + 1) * per_row]
                .iter()
                .map(|&u| f64::from(u))
                .collect();
            grad.extend(cpu::row_op_vjp(self, &row64, &up).iter().map(|&g| g as f32));
        }
        Ok(grad)
    }

    fn validate_upstream(self, rows: usize, classes: usize, upstream: &[f32]) -> Result<()> {
        let expected = rows.saturating_mul(self.per_row(classes));
        if upstream.len() != expected {
            return Err(LossError::LengthMismatch {
                what: "upstream",
                shape: format!("{:?} (the output's shape)", self.shape(rows, classes)),
                expected,
                actual: upstream.len(),
            });
        }
        Ok(())
    }

    /// Records the operation into the caller's `encoder`: `input` `[N, C]` f32 from the
    /// caller's buffer, the output (`[N, C]`, or `[N]` for the entropy) into `out`.
    /// Submits nothing and copies nothing to the host.
    #[allow(clippy::too_many_arguments)]
    pub fn encode<'b>(
        self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        input: impl Into<InputAt<'b>>,
        rows: usize,
        classes: usize,
        out: BufferAt<'_>,
    ) -> Result<()> {
        let input = input.into();
        self.check_buffers(rows, classes, input, None, out)?;
        if rows == 0 {
            return Ok(());
        }
        self.encode_unchecked(ctx, encoder, input, rows, classes, None, out)
    }

    /// Records the vector-Jacobian product: `upstream` in the output's shape, the gradient
    /// `[N, C]` into `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn encode_backward<'b>(
        self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        input: impl Into<InputAt<'b>>,
        rows: usize,
        classes: usize,
        upstream: BufferAt<'_>,
        out: BufferAt<'_>,
    ) -> Result<()> {
        let input = input.into();
        self.check_buffers(rows, classes, input, Some(upstream), out)?;
        if rows == 0 {
            return Ok(());
        }
        self.encode_unchecked(ctx, encoder, input, rows, classes, Some(upstream), out)
    }

    fn check_buffers(
        self,
        rows: usize,
        classes: usize,
        input: InputAt<'_>,
        upstream: Option<BufferAt<'_>>,
        out: BufferAt<'_>,
    ) -> Result<()> {
        if classes == 0 {
            return Err(LossError::ZeroClasses { rows });
        }
        let shape = format!("[{rows}, {classes}]");
        let elements = rows as u64 * classes as u64;
        let outputs = rows as u64 * self.per_row(classes) as u64;
        let element = input.format.bytes();
        check_room_aligned("input", input.at, elements * element, &shape, element)?;
        match upstream {
            Some(u) => {
                check_room("upstream", u, outputs * 4, &shape)?;
                check_room("grad", out, elements * 4, &shape)
            }
            None => check_room("output", out, outputs * 4, &shape),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn encode_unchecked(
        self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        input: InputAt<'_>,
        rows: usize,
        classes: usize,
        upstream: Option<BufferAt<'_>>,
        out: BufferAt<'_>,
    ) -> Result<()> {
        let device = &ctx.device;
        let fmt = input.format;
        let in_row = classes as u64 * fmt.bytes();
        let grad = upstream.is_some();
        // Output elements per row: the VJP has the input's shape.
        let per_row = if grad {
            classes as u64
        } else {
            self.per_row(classes) as u64
        };
        let per_row_up = self.per_row(classes) as u64;
        let placeholder = storage(ctx, "softmax.placeholder", 4)?;
        let upstream_at = upstream.unwrap_or_else(|| BufferAt::from(&placeholder));
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
        let plan = crate::plan::Plan::choose(ctx, rows as u64, classes as u64, false);
        let (team, teams_per_group) = (plan.team, plan.teams_per_group);
        let pipeline = ctx.pipelines.get(Kernel::SoftmaxRows {
            team,
            output: self,
            grad,
            format: fmt,
        })?;
        let layout = ctx.pipelines.bind_group_layout(Layout::Map);
        let mut begin = 0_u64;
        while begin < rows as u64 {
            let chunk = rows_per_chunk.min(rows as u64 - begin);
            let at = input.at;
            let in_w = window_of(
                ctx,
                "input",
                at.buffer,
                at.offset + begin * in_row,
                chunk * in_row,
                fmt.bytes(),
            )?;
            let out_w = window(
                ctx,
                "output",
                out.buffer,
                out.offset + begin * per_row * 4,
                chunk * per_row * 4,
            )?;
            let up_w = if grad {
                let at = upstream_at.offset + begin * per_row_up * 4;
                window(ctx, "upstream", upstream_at.buffer, at, chunk * per_row_up * 4)?
            } else {
                window(ctx, "upstream", upstream_at.buffer, upstream_at.offset, 4)?
            };
            let params = Params {
                rows: chunk as u32,
                classes: classes as u32,
                in_offset: in_w.word_shift,
                out_offset: out_w.word_shift,
                upstream_offset: up_w.word_shift,
                _pad: [0; 3],
            };
            let params = uniform(ctx, "softmax.params", bytemuck::bytes_of(&params))?;
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("softmax.softmax_rows"),
                layout,
                entries: &entries(vec![
                    params.as_entire_binding(),
                    in_w.binding(),
                    up_w.binding(),
                    out_w.binding(),
                ]),
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
        Ok(())
    }

    /// [`RowOp::forward`] on f16 or bf16 input (raw bits); accumulation in f32.
    pub fn forward_half(
        self,
        ctx: &GpuContext,
        logits: HalfInput<'_>,
        rows: usize,
        classes: usize,
    ) -> Result<LossValue> {
        Self::validate_len(logits.len(), rows, classes)?;
        let shape = self.shape(rows, classes);
        if rows == 0 {
            return Ok(LossValue::Tensor {
                shape,
                values: Vec::new(),
            });
        }
        let (bytes, format) = match logits {
            HalfInput::F16(v) => (bytemuck::cast_slice(v), InputFormat::F16),
            HalfInput::Bf16(v) => (bytemuck::cast_slice(v), InputFormat::Bf16),
        };
        let values = self.run_bytes(ctx, bytes, format, rows, classes, None)?;
        Ok(LossValue::Tensor { shape, values })
    }

    /// Uploads, records, submits and reads the output back (the host-slice path).
    fn run(
        self,
        ctx: &GpuContext,
        logits: &[f32],
        rows: usize,
        classes: usize,
        upstream: Option<&[f32]>,
    ) -> Result<Vec<f32>> {
        self.run_bytes(
            ctx,
            bytemuck::cast_slice(logits),
            InputFormat::F32,
            rows,
            classes,
            upstream,
        )
    }

    fn run_bytes(
        self,
        ctx: &GpuContext,
        logits: &[u8],
        format: InputFormat,
        rows: usize,
        classes: usize,
        upstream: Option<&[f32]>,
    ) -> Result<Vec<f32>> {
        // Rows larger in total than the device's largest buffer run in row groups that fit.
        let row_bytes = classes as u64 * 4;
        let max_buffer = ctx.max_buffer_bytes();
        if rows > 1 && rows as u64 * row_bytes > max_buffer {
            let group = ((max_buffer / row_bytes) as usize).max(1);
            let (in_row, out_row) = (classes * format.bytes() as usize, self.per_row(classes));
            let mut out = Vec::with_capacity(rows * out_row);
            for begin in (0..rows).step_by(group) {
                let end = rows.min(begin + group);
                let up = upstream.map(|u| {
                    let per = u.len() / rows;
                    &u[begin * per..end * per]
                });
                out.extend(self.run_bytes(
                    ctx,
                    &logits[begin * in_row..end * in_row],
                    format,
                    end - begin,
                    classes,
                    up,
                )?);
            }
            return Ok(out);
        }
        let empty = wgpu::BufferUsages::empty();
        let input = upload(ctx, "softmax.input", logits, empty)?;
        let upstream_buf = upstream
            .map(|u| upload(ctx, "softmax.upstream", bytemuck::cast_slice(u), empty))
            .transpose()?;
        let per_row = if upstream.is_some() {
            classes
        } else {
            self.per_row(classes)
        } as u64;
        let out = storage(ctx, "softmax.out", rows as u64 * per_row * 4)?;
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("softmax") });
        let upstream_at = upstream_buf.as_ref().map(BufferAt::from);
        let input_at = InputAt {
            at: (&input).into(),
            format,
        };
        self.encode_unchecked(ctx, &mut encoder, input_at, rows, classes, upstream_at, (&out).into())?;
        let bytes = finish_and_read(ctx, encoder, &out, 0, rows as u64 * per_row * 4)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// The operation with the fast CPU backend (f32, vectorised exp, rows in parallel).
    pub fn forward_cpu_fast(self, logits: &[f32], rows: usize, classes: usize) -> Result<LossValue> {
        self.validate(logits, rows, classes)?;
        Ok(LossValue::Tensor {
            shape: self.shape(rows, classes),
            values: cpu_fast::row_op(self, logits, classes),
        })
    }

    /// The vector-Jacobian product with the fast CPU backend.
    pub fn backward_cpu_fast(self, logits: &[f32], rows: usize, classes: usize, upstream: &[f32]) -> Result<Vec<f32>> {
        self.validate(logits, rows, classes)?;
        self.validate_upstream(rows, classes, upstream)?;
        Ok(cpu_fast::row_op_vjp(self, logits, classes, upstream))
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
