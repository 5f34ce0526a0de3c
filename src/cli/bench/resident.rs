//! The GPU with inputs resident: uploaded once, as a wgpu app holds them; each run records
//! the loss (with `--grad`, its gradient too) into an encoder (`Loss::encode`), submits and
//! waits, reading back only a scalar (or nothing, for tensors, unless checking).

use wgpu_loss::wgpu::{self, util::DeviceExt};
use wgpu_loss::{BatchAt, BufferAt, GpuContext, GradInto, Loss, LossValue, Outputs, TargetsAt, Upstream};

use super::data::Generated;
use crate::cli::data::TargetData;

/// What the loss writes: a reduced loss (`[loss, divisor]`) or a tensor of this many values.
#[derive(Clone, Copy)]
enum Output {
    Scalar,
    Tensor(usize),
}

pub struct Resident<'a> {
    ctx: &'a GpuContext,
    loss: &'a dyn Loss,
    data: &'a Generated,
    input: wgpu::Buffer,
    targets: Option<wgpu::Buffer>,
    out: wgpu::Buffer,
    output: Output,
    /// With `--grad`: the gradient's buffer, and the upstream's (ones) for tensor outputs.
    grad: Option<(wgpu::Buffer, Option<wgpu::Buffer>)>,
}

fn buffer(ctx: &GpuContext, label: &str, contents: &[u8]) -> wgpu::Buffer {
    ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
    })
}

/// The targets in `buffer`, with the dtype they have on the host.
fn targets_at<'b>(data: &TargetData, buffer: Option<&'b wgpu::Buffer>) -> TargetsAt<'b> {
    match (data, buffer.map(BufferAt::from)) {
        (TargetData::I64(_), Some(at)) => TargetsAt::I64(at),
        (TargetData::I32(_), Some(at)) => TargetsAt::I32(at),
        (TargetData::F32(_), Some(at)) => TargetsAt::F32(at),
        _ => TargetsAt::None,
    }
}

impl<'a> Resident<'a> {
    /// Uploads `data`; the output is shaped like `reference`, the loss's result. With
    /// `grad`, runs record the gradient into a buffer of its own (reading the input and
    /// writing the gradient, as in place would, without destroying the input).
    pub fn new(
        ctx: &'a GpuContext,
        loss: &'a dyn Loss,
        data: &'a Generated,
        reference: &LossValue,
        grad: bool,
    ) -> Self {
        let (output, out_len) = match reference {
            LossValue::Scalar(_) => (Output::Scalar, 8),
            LossValue::Tensor { values, .. } => (Output::Tensor(values.len()), values.len() * 4),
        };
        let targets = match &data.targets {
            TargetData::None => None,
            t => Some(buffer(ctx, "bench.target", t.bytes())),
        };
        let grad = grad.then(|| {
            let ones = match output {
                Output::Tensor(count) => Some(buffer(
                    ctx,
                    "bench.upstream",
                    bytemuck::cast_slice(&vec![1.0_f32; count]),
                )),
                Output::Scalar => None,
            };
            (buffer(ctx, "bench.grad", &vec![0; data.input.len() * 4]), ones)
        });
        Self {
            ctx,
            loss,
            data,
            input: buffer(ctx, "bench.input", bytemuck::cast_slice(&data.input)),
            targets,
            out: buffer(ctx, "bench.out", &vec![0; out_len]),
            output,
            grad,
        }
    }

    /// Where a run writes: the loss, or (with `--grad`) the gradient and, for a reduced
    /// loss, the loss too (the softmax family's gradient is a vector-Jacobian product alone).
    fn outputs(&self) -> Outputs<'_> {
        let Some((grad, ones)) = &self.grad else {
            return Outputs::loss(&self.out);
        };
        let upstream = match ones {
            Some(ones) => Upstream::Values(ones.into()),
            None => Upstream::Scalar(1.0),
        };
        Outputs {
            loss: ones.is_none().then(|| (&self.out).into()),
            grad: Some((GradInto::Buffer(grad.into()), upstream)),
            ..Outputs::default()
        }
    }

    /// One recorded run; the values read back (all of them with `read_all`).
    pub fn run(&self, read_all: bool) -> Result<Vec<f32>, String> {
        let ctx = self.ctx;
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        let batch = BatchAt::new(
            &self.input,
            self.data.shape(),
            targets_at(&self.data.targets, self.targets.as_ref()),
        );
        self.loss
            .encode(ctx, &mut encoder, &batch, &self.outputs())
            .map_err(|e| e.to_string())?;
        if let (Some((grad, ones)), true) = (&self.grad, read_all) {
            // The loss (for a reduced one) and the gradient, as `forward_backward` gives them.
            let mut values = Vec::new();
            let grad_values = wgpu_loss::submit_and_read::<f32>(ctx, encoder, grad.into(), self.data.input.len())
                .map_err(|e| e.to_string())?;
            if ones.is_none() {
                let no_work = ctx.device().create_command_encoder(&Default::default());
                values = wgpu_loss::submit_and_read::<f32>(ctx, no_work, (&self.out).into(), 1)
                    .map_err(|e| e.to_string())?;
            }
            values.extend(grad_values);
            return Ok(values);
        }
        let count = match (self.output, read_all) {
            (Output::Tensor(count), true) => count,
            (Output::Tensor(_), false) => {
                ctx.queue().submit(Some(encoder.finish()));
                ctx.device()
                    .poll(wgpu::PollType::wait_indefinitely())
                    .map_err(|e| e.to_string())?;
                return Ok(Vec::new());
            }
            (Output::Scalar, _) => 1,
        };
        // The recorded loss and its readback in one submission, as the old buffer path did.
        wgpu_loss::submit_and_read::<f32>(ctx, encoder, (&self.out).into(), count).map_err(|e| e.to_string())
    }
}
