//! The wgpu calls that change between wgpu versions live here and nowhere else: buffer
//! creation under an error scope, waiting on the queue, and reading buffers back.
//! Written against wgpu 30 (`Device::poll(PollType)` returns `Result`,
//! `BufferSlice::get_mapped_range` returns `Result`, error scopes are guards).

use futures_intrusive::channel::shared::oneshot_channel;
use wgpu::util::DeviceExt;

use crate::context::GpuContext;
use crate::error::{LossError, Result};

/// Runs `make` under validation and out-of-memory error scopes and turns a captured error
/// into [`LossError::Device`]. The scopes are per thread, so concurrent callers do not see
/// each other's errors.
pub(crate) fn scoped<T>(device: &wgpu::Device, during: &'static str, make: impl FnOnce() -> T) -> Result<T> {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let value = make();
    let validation_err = pollster::block_on(validation.pop());
    let oom_err = pollster::block_on(oom.pop());
    match validation_err.or(oom_err) {
        Some(err) => Err(LossError::Device {
            during,
            reason: err.to_string(),
        }),
        None => Ok(value),
    }
}

/// A storage buffer holding `data`.
pub(crate) fn upload(ctx: &GpuContext, label: &str, data: &[u8], usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
    // wgpu rejects zero-sized bindings; a 4-byte placeholder serves for empty inputs.
    let contents: &[u8] = if data.is_empty() { &[0; 4] } else { data };
    let device = &ctx.device;
    ctx.count_allocation(contents.len() as u64);
    scoped(device, "upload", || {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: usage | wgpu::BufferUsages::STORAGE,
        })
    })
}

/// An uninitialised storage buffer of `size` bytes that can be copied from.
pub(crate) fn storage(ctx: &GpuContext, label: &str, size: u64) -> Result<wgpu::Buffer> {
    let device = &ctx.device;
    ctx.count_allocation(size.max(4).next_multiple_of(4));
    scoped(device, "buffer allocation", || {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    })
}

/// A uniform buffer holding `data`.
pub(crate) fn uniform(ctx: &GpuContext, label: &str, data: &[u8]) -> Result<wgpu::Buffer> {
    let device = &ctx.device;
    ctx.count_allocation(data.len() as u64);
    scoped(device, "buffer allocation", || {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: data,
            usage: wgpu::BufferUsages::UNIFORM,
        })
    })
}

/// A staging buffer that `size` bytes can be copied into and mapped for reading.
pub(crate) fn staging(ctx: &GpuContext, label: &str, size: u64) -> Result<wgpu::Buffer> {
    let device = &ctx.device;
    ctx.count_allocation(size.max(4).next_multiple_of(4));
    scoped(device, "buffer allocation", || {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    })
}

/// Submits `encoder` and waits for the device to finish it.
pub(crate) fn submit_and_wait(device: &wgpu::Device, queue: &wgpu::Queue, encoder: wgpu::CommandEncoder) -> Result<()> {
    let index = scoped(device, "submit", || queue.submit(Some(encoder.finish())))?;
    device
        .poll(wgpu::PollType::Wait {
            submission_index: Some(index),
            timeout: None,
        })
        .map_err(|err| LossError::Device {
            during: "waiting for the GPU",
            reason: err.to_string(),
        })?;
    Ok(())
}

/// How a readback waits for the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waiting {
    /// Block in `Device::poll(wait)` (simple programs).
    Block,
    /// Only await the mapping callback: the app polls the device itself.
    AppPolls,
}

/// Maps `staging` and returns its first `len` bytes. The completion of `map_async` travels
/// through a futures-intrusive channel; with [`Waiting::Block`] the device is polled until
/// the work is done, with [`Waiting::AppPolls`] the future resolves when the app's own
/// polling runs the callback.
pub(crate) async fn read_mapped_with(
    device: &wgpu::Device,
    staging: &wgpu::Buffer,
    len: u64,
    waiting: Waiting,
) -> Result<Vec<u8>> {
    let slice = staging.slice(..len.max(4).next_multiple_of(4));
    let (sender, receiver) = oneshot_channel();
    slice.map_async(wgpu::MapMode::Read, move |result| {
        // The receiver only goes away if the caller was dropped; nothing to report then.
        let _ = sender.send(result);
    });
    let poll = match waiting {
        Waiting::Block => wgpu::PollType::wait_indefinitely(),
        Waiting::AppPolls => wgpu::PollType::Poll,
    };
    device.poll(poll).map_err(|err| LossError::Device {
        during: "waiting for a buffer mapping",
        reason: err.to_string(),
    })?;
    let mapped = receiver.receive().await.ok_or(LossError::Device {
        during: "reading back",
        reason: "the mapping callback was dropped".into(),
    })?;
    mapped.map_err(|err| LossError::Device {
        during: "reading back",
        reason: err.to_string(),
    })?;
    let bytes = {
        let view = slice.get_mapped_range().map_err(|err| LossError::Device {
            during: "reading back",
            reason: err.to_string(),
        })?;
        view[..len as usize].to_vec()
    };
    staging.unmap();
    Ok(bytes)
}

/// [`read_mapped_with`], blocking on the device.
pub(crate) async fn read_mapped(device: &wgpu::Device, staging: &wgpu::Buffer, len: u64) -> Result<Vec<u8>> {
    read_mapped_with(device, staging, len, Waiting::Block).await
}

/// Submits `encoder` (no wait).
pub(crate) fn submit(ctx: &GpuContext, encoder: wgpu::CommandEncoder) -> Result<wgpu::SubmissionIndex> {
    scoped(&ctx.device, "submit", || ctx.queue.submit(Some(encoder.finish())))
}

/// Reads `len` bytes of `source` from `offset`: copy to a staging buffer, submit, map.
pub(crate) fn read_buffer(ctx: &GpuContext, source: &wgpu::Buffer, offset: u64, len: u64) -> Result<Vec<u8>> {
    let encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("wgpu-loss.readback"),
    });
    finish_and_read(ctx, encoder, source, offset, len)
}

/// Finishes `encoder` with a copy of `len` bytes of `source` from `offset` into a staging
/// buffer, submits it, and returns those bytes.
pub(crate) fn finish_and_read(
    ctx: &GpuContext,
    mut encoder: wgpu::CommandEncoder,
    source: &wgpu::Buffer,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>> {
    let padded = len.max(4).next_multiple_of(4);
    let stage = staging(ctx, "wgpu-loss.readback", padded)?;
    encoder.copy_buffer_to_buffer(source, offset, &stage, 0, padded);
    submit_and_wait(&ctx.device, &ctx.queue, encoder)?;
    pollster::block_on(read_mapped(&ctx.device, &stage, len))
}

/// Reads `count` f32 from a position in a GPU buffer (which needs `COPY_SRC` usage): a copy
/// to a staging buffer, one submission, and the mapping awaited through a futures-intrusive
/// channel. It does not block: the future resolves when the device is polled, by the app
/// (e.g. `device.poll(PollType::Poll)` in its frame loop, or a thread that waits).
pub async fn read_f32_async(ctx: &GpuContext, at: crate::BufferAt<'_>, count: usize) -> Result<Vec<f32>> {
    let len = count as u64 * 4;
    let padded = len.max(4).next_multiple_of(4);
    let stage = staging(ctx, "wgpu-loss.readback", padded)?;
    let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("wgpu-loss.readback"),
    });
    encoder.copy_buffer_to_buffer(at.buffer, at.offset, &stage, 0, padded);
    submit(ctx, encoder)?;
    let bytes = read_mapped_with(&ctx.device, &stage, len, Waiting::AppPolls).await?;
    Ok(bytemuck::pod_collect_to_vec(&bytes))
}

/// [`read_f32_async`] for simple programs: polls the device itself and blocks (pollster).
pub fn read_f32(ctx: &GpuContext, at: crate::BufferAt<'_>, count: usize) -> Result<Vec<f32>> {
    let len = count as u64 * 4;
    let bytes = read_buffer(ctx, at.buffer, at.offset, len)?;
    Ok(bytemuck::pod_collect_to_vec(&bytes))
}
