//! The GPU with inputs resident: uploaded once, as a wgpu app holds them; each run records
//! the loss into an encoder (`Loss::encode`), submits and waits, reading back only a scalar
//! (or nothing, for the row outputs, unless checking).

use wgpu_loss::wgpu::{self, util::DeviceExt};
use wgpu_loss::{BatchAt, BufferAt, GpuContext, Loss, LossValue, Outputs, TargetsAt};

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
    /// Uploads `data`; the output is shaped like `reference`, the loss's result.
    pub fn new(ctx: &'a GpuContext, loss: &'a dyn Loss, data: &'a Generated, reference: &LossValue) -> Self {
        let (output, out_len) = match reference {
            LossValue::Scalar(_) => (Output::Scalar, 8),
            LossValue::Tensor { values, .. } => (Output::Tensor(values.len()), values.len() * 4),
        };
        let targets = match &data.targets {
            TargetData::None => None,
            t => Some(buffer(ctx, "bench.target", t.bytes())),
        };
        Self {
            ctx,
            loss,
            data,
            input: buffer(ctx, "bench.input", bytemuck::cast_slice(&data.input)),
            targets,
            out: buffer(ctx, "bench.out", &vec![0; out_len]),
            output,
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
            .encode(ctx, &mut encoder, &batch, &Outputs::loss(&self.out))
            .map_err(|e| e.to_string())?;
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
