//! The wgpu calls that change between wgpu versions live here and nowhere else: buffer
//! creation under an error scope, waiting on the queue, and reading buffers back.
//! Written against wgpu 30 (`Device::poll(PollType)` returns `Result`,
//! `BufferSlice::get_mapped_range` returns `Result`, error scopes are guards).

use futures_intrusive::channel::shared::oneshot_channel;
use wgpu::util::DeviceExt;

use crate::api::buffers::BufferAt;
use crate::error::{LossError, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::pool::{Lane, Lease, MAX_CONSTANT_BYTES};

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
fn lease(ctx: &GpuContext, label: &str, (size, usage): (u64, wgpu::BufferUsages), lane: Lane) -> Result<Lease> {
    let size = size.max(4).next_multiple_of(4);
    let buffer = match ctx.pool.take(size, usage, lane) {
        Some(buffer) => buffer,
        None => create(ctx, label, size, usage)?,
    };
    Ok(Lease::new(buffer, ctx.pool.clone(), lane))
}

/// A storage buffer holding `data` (host input of a call that submits and waits before
/// dropping the lease: the data is written with `Queue::write_buffer`).
pub(crate) fn upload(ctx: &GpuContext, label: &str, data: &[u8], usage: wgpu::BufferUsages) -> Result<Lease> {
    // wgpu rejects zero-sized bindings; a 4-byte placeholder serves for empty inputs.
    let contents: &[u8] = if data.is_empty() { &[0; 4] } else { data };
    let usage = usage | wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
    let buffer = lease(ctx, label, (contents.len() as u64, usage), Lane::Upload)?;
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
    storage_in(ctx, label, size, Lane::Scratch)
}

/// [`storage`] for a host call that keeps the contents across its submissions (and gives
/// the lease back only after its last submission is done): see [`Lane::Held`].
pub(crate) fn held_storage(ctx: &GpuContext, label: &str, size: u64) -> Result<Lease> {
    storage_in(ctx, label, size, Lane::Held)
}

fn storage_in(ctx: &GpuContext, label: &str, size: u64, lane: Lane) -> Result<Lease> {
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    lease(ctx, label, (size, usage), lane)
}

/// A 16-byte storage buffer bound where a kernel's layout has a binding the call does not
/// use (wgpu rejects empty bindings); its contents are never read for a result.
pub(crate) fn placeholder(ctx: &GpuContext) -> Result<Lease> {
    // 16 bytes: the smallest binding an `array<vec4<f32>>` accepts.
    storage(ctx, "wgpu-loss.placeholder", 16)
}

/// Two placeholders, for a kernel with an unused read-only binding and an unused read-write
/// one: a buffer bound read-only may not also be bound read-write in the same dispatch
/// (wgpu's usage scope: `STORAGE_READ_WRITE` is exclusive).
pub(crate) fn placeholders(ctx: &GpuContext) -> Result<[Lease; 2]> {
    Ok([placeholder(ctx)?, placeholder(ctx)?])
}

/// A uniform buffer holding `data` (cached by content).
pub(crate) fn uniform(ctx: &GpuContext, label: &str, data: &[u8]) -> Result<wgpu::Buffer> {
    constant(ctx, label, data, wgpu::BufferUsages::UNIFORM)
}

/// A staging buffer that `size` bytes can be copied into and mapped for reading.
pub(crate) fn staging(ctx: &GpuContext, label: &str, size: u64) -> Result<Lease> {
    let usage = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
    lease(ctx, label, (size, usage), Lane::Scratch)
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

/// Submits `encoder` (no wait).
pub(crate) fn submit(ctx: &GpuContext, encoder: wgpu::CommandEncoder) -> Result<wgpu::SubmissionIndex> {
    scoped(&ctx.device, "submit", || ctx.queue.submit(Some(encoder.finish())))
}

/// Submits `encoder` and blocks until the device has run everything submitted (timing).
pub(crate) fn submit_and_wait(ctx: &GpuContext, encoder: wgpu::CommandEncoder) -> Result<()> {
    submit(ctx, encoder)?;
    ctx.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|err| LossError::Device {
            during: "waiting for the device",
            reason: err.to_string(),
        })?;
    Ok(())
}

/// The one readback: finishes `encoder` with copies of each `(buffer, byte offset, bytes)`
/// into one staging buffer, submits it, waits as `waiting` says, and returns each part's
/// bytes in order. Sources need `COPY_SRC` usage and 4-aligned offsets.
pub(crate) async fn read_back(
    ctx: &GpuContext,
    mut encoder: wgpu::CommandEncoder,
    sources: &[(&wgpu::Buffer, u64, u64)],
    waiting: Waiting,
) -> Result<Vec<Vec<u8>>> {
    let padded: Vec<u64> = sources
        .iter()
        .map(|&(_, _, len)| len.max(4).next_multiple_of(4))
        .collect();
    let stage = staging(ctx, "wgpu-loss.readback", padded.iter().sum())?;
    let mut at = 0;
    for (&(buffer, offset, _), &len) in sources.iter().zip(&padded) {
        encoder.copy_buffer_to_buffer(buffer, offset, &stage, at, len);
        at += len;
    }
    submit(ctx, encoder)?;
    let bytes = read_mapped_with(&ctx.device, &stage, at, waiting).await?;
    let mut parts = Vec::with_capacity(sources.len());
    let mut at = 0;
    for (&(_, _, len), &step) in sources.iter().zip(&padded) {
        parts.push(bytes[at as usize..(at + len) as usize].to_vec());
        at += step;
    }
    Ok(parts)
}

/// Finishes the app's `encoder` with a copy of `count` values of `T` from `at` (a buffer
/// with `COPY_SRC` usage), submits it — the recorded work and the readback in one
/// submission — and returns the values once the device is done, blocking (pollster).
pub fn submit_and_read<T: bytemuck::Pod>(
    ctx: &GpuContext,
    encoder: wgpu::CommandEncoder,
    at: BufferAt<'_>,
    count: usize,
) -> Result<Vec<T>> {
    let len = (count * std::mem::size_of::<T>()) as u64;
    let parts = pollster::block_on(read_back(ctx, encoder, &[(at.buffer, at.offset, len)], Waiting::Block))?;
    Ok(bytemuck::pod_collect_to_vec(&parts.concat()))
}

/// Reads `count` values of `T` (f32, u32, i64, …) from a position in a GPU buffer (which
/// needs `COPY_SRC` usage): a copy to a staging buffer, one submission, and the mapping
/// awaited through a futures-intrusive channel. It does not block: the future resolves
/// when the device is polled, by the app (e.g. `device.poll(PollType::Poll)` in its frame
/// loop, or a thread that waits).
pub async fn read_async<T: bytemuck::Pod>(ctx: &GpuContext, at: BufferAt<'_>, count: usize) -> Result<Vec<T>> {
    let len = (count * std::mem::size_of::<T>()) as u64;
    let encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("wgpu-loss.readback"),
    });
    let parts = read_back(ctx, encoder, &[(at.buffer, at.offset, len)], Waiting::AppPolls).await?;
    Ok(bytemuck::pod_collect_to_vec(&parts.concat()))
}

/// [`read_async`] for simple programs: polls the device itself and blocks (pollster).
/// `read::<u32>` of a status word gives [`crate::Status`]'s value.
pub fn read<T: bytemuck::Pod>(ctx: &GpuContext, at: BufferAt<'_>, count: usize) -> Result<Vec<T>> {
    let encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("wgpu-loss.readback"),
    });
    submit_and_read(ctx, encoder, at, count)
}
