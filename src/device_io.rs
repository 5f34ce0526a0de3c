//! The wgpu calls that change between wgpu versions live here and nowhere else: buffer
//! creation under an error scope, waiting on the queue, and reading buffers back.
//! Written against wgpu 30 (`Device::poll(PollType)` returns `Result`,
//! `BufferSlice::get_mapped_range` returns `Result`, error scopes are guards).

use futures_intrusive::channel::shared::oneshot_channel;
use wgpu::util::DeviceExt;

use crate::context::GpuContext;
use crate::error::{LossError, Result};
use crate::pool::{Lease, MAX_CONSTANT_BYTES};

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

/// Creates a buffer under error scopes, counting its bytes.
fn create(ctx: &GpuContext, label: &str, size: u64, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
    let device = &ctx.device;
    ctx.count_allocation(size);
    scoped(device, "buffer allocation", || {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: false,
        })
    })
}

/// A buffer of `size` bytes (rounded up to 4) and `usage` from the pool, or a new one.
fn lease(ctx: &GpuContext, label: &str, size: u64, usage: wgpu::BufferUsages) -> Result<Lease> {
    let size = size.max(4).next_multiple_of(4);
    let buffer = match ctx.pool.take(size, usage) {
        Some(buffer) => buffer,
        None => create(ctx, label, size, usage)?,
    };
    Ok(Lease::new(buffer, ctx.pool.clone()))
}

/// A storage buffer holding `data` (host input of a call that submits and waits before
/// dropping the lease: the data is written with `Queue::write_buffer`).
pub(crate) fn upload(ctx: &GpuContext, label: &str, data: &[u8], usage: wgpu::BufferUsages) -> Result<Lease> {
    // wgpu rejects zero-sized bindings; a 4-byte placeholder serves for empty inputs.
    let contents: &[u8] = if data.is_empty() { &[0; 4] } else { data };
    let usage = usage | wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
    let buffer = lease(ctx, label, contents.len() as u64, usage)?;
    let whole = contents.len() - contents.len() % 4;
    ctx.queue.write_buffer(&buffer, 0, &contents[..whole]);
    if whole < contents.len() {
        let mut tail = [0_u8; 4];
        tail[..contents.len() - whole].copy_from_slice(&contents[whole..]);
        ctx.queue.write_buffer(&buffer, whole as u64, &tail);
    }
    Ok(buffer)
}

/// An immutable storage (or, with `UNIFORM`, uniform) buffer holding `data`: cached by
/// content when small, so repeated calls with the same parameters or weights allocate
/// nothing. Safe anywhere, recordings into an app's encoder included.
pub(crate) fn constant(ctx: &GpuContext, label: &str, data: &[u8], usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
    let contents: &[u8] = if data.is_empty() { &[0; 4] } else { data };
    let usage = if usage.contains(wgpu::BufferUsages::UNIFORM) {
        usage
    } else {
        usage | wgpu::BufferUsages::STORAGE
    };
    let make = || {
        let device = &ctx.device;
        ctx.count_allocation(contents.len() as u64);
        scoped(device, "upload", || {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage,
            })
        })
    };
    if contents.len() > MAX_CONSTANT_BYTES {
        return make();
    }
    ctx.pool.constant(usage, contents, make)
}

/// A storage buffer of `size` bytes that can be copied from and to, leased from the pool
/// (its contents are whatever the last user left: kernels write before they read).
pub(crate) fn storage(ctx: &GpuContext, label: &str, size: u64) -> Result<Lease> {
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    lease(ctx, label, size, usage)
}

/// A uniform buffer holding `data` (cached by content).
pub(crate) fn uniform(ctx: &GpuContext, label: &str, data: &[u8]) -> Result<wgpu::Buffer> {
    constant(ctx, label, data, wgpu::BufferUsages::UNIFORM)
}

/// A staging buffer that `size` bytes can be copied into and mapped for reading.
pub(crate) fn staging(ctx: &GpuContext, label: &str, size: u64) -> Result<Lease> {
    lease(
        ctx,
        label,
        size,
        wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
    )
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
