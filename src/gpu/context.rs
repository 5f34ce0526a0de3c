//! The GPU context: one device and queue, their limits, and every pipeline built on them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{LossError, Result};
use crate::gpu::pipelines::PipelineCache;

/// Features used when the adapter offers them; none is required.
const WANTED_FEATURES: wgpu::Features = wgpu::Features::SUBGROUP.union(wgpu::Features::SHADER_F16);

/// A wgpu device and queue with the pipelines of this crate, built once and reused.
///
/// Cheap to share: it is `Send + Sync`, and every call takes `&self`. Make one with
/// [`GpuContext::new_blocking`] (own adapter and device) or [`GpuContext::from_device`]
/// (the `Device` and `Queue` a wgpu app already has).
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) limits: wgpu::Limits,
    pub(crate) info: wgpu::AdapterInfo,
    pub(crate) subgroups: bool,
    pub(crate) pipelines: PipelineCache,
    /// An optional cap below the device's storage-binding size (see `with_binding_limit`).
    binding_cap: Option<u64>,
    /// An optional cap below the device's buffer size (see `with_buffer_limit`).
    buffer_cap: Option<u64>,
    /// A row-kernel strategy forced on every call (see `with_strategy`).
    strategy: Option<crate::gpu::strategy::Strategy>,
    /// Bytes of every buffer the crate has created on this context.
    allocated: AtomicU64,
    /// Idle scratch buffers and cached constants, reused by later calls.
    pub(crate) pool: Arc<crate::gpu::pool::Pool>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .field("subgroups", &self.subgroups)
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

impl GpuContext {
    /// Finds an adapter and creates a device with the adapter's real limits and the
    /// `SUBGROUP` and `SHADER_F16` features where offered.
    ///
    /// Honours `WGPU_BACKEND` (e.g. `vulkan`, `metal`, `dx12`, `gl`), `WGPU_ADAPTER_NAME`
    /// (a case-insensitive substring of the adapter's name) and `WGPU_POWER_PREF`
    /// (`low` / `high`).
    pub async fn new() -> Result<Self> {
        Self::on_adapter(None).await
    }

    /// [`GpuContext::new`] on the `n mod k`-th of the k adapters of the kind `new` picks
    /// (its backend and device type, in wgpu's enumeration order, one per PCI bus id where
    /// the driver reports it; with `WGPU_ADAPTER_NAME`, the adapters whose names match): one
    /// device per process of a machine, such as an MPI rank's local rank on a node of eight
    /// GPUs. With one such adapter, that one. `new_nth(0)` is the first of them, not always
    /// the one `new` takes.
    pub async fn new_nth(n: usize) -> Result<Self> {
        Self::on_adapter(Some(n)).await
    }

    /// [`GpuContext::new_nth`], blocking on the future with `pollster`.
    pub fn new_nth_blocking(n: usize) -> Result<Self> {
        pollster::block_on(Self::new_nth(n))
    }

    async fn on_adapter(nth: Option<usize>) -> Result<Self> {
        let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
        let mut instance_desc = wgpu::InstanceDescriptor::new_without_display_handle();
        instance_desc.backends = backends;
        let instance = wgpu::Instance::new(instance_desc);
        let adapter = choose_adapter(&instance, backends, nth).await?;
        let info = adapter.get_info();
        let device_desc = wgpu::DeviceDescriptor {
            label: Some("wgpu-loss"),
            required_features: adapter.features() & WANTED_FEATURES,
            required_limits: adapter.limits(),
            memory_hints: wgpu::MemoryHints::Performance,
            ..Default::default()
        };
        let (device, queue) = adapter
            .request_device(&device_desc)
            .await
            .map_err(|err| LossError::DeviceRequest {
                adapter: info.name.clone(),
                reason: err.to_string(),
            })?;
        Ok(Self::from_device(device, queue))
    }

    /// [`GpuContext::new`], blocking on the future with `pollster`.
    pub fn new_blocking() -> Result<Self> {
        pollster::block_on(Self::new())
    }

    /// Wraps the `Device` and `Queue` of a wgpu app. The crate uses whatever limits and
    /// features the device was created with (subgroup kernels only where `SUBGROUP` is on).
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        let limits = device.limits();
        let info = device.adapter_info();
        let subgroups = device.features().contains(wgpu::Features::SUBGROUP);
        Self {
            pipelines: PipelineCache::new(&device),
            device,
            queue,
            limits,
            info,
            subgroups,
            binding_cap: None,
            buffer_cap: None,
            strategy: None,
            allocated: AtomicU64::new(0),
            pool: crate::gpu::pool::Pool::new(),
        }
    }

    /// Bytes of all the buffers this crate has created on the context so far. Every buffer
    /// of a call lives until the call returns, so the growth over one call is that call's
    /// peak device memory beyond the caller's own buffers.
    pub fn bytes_allocated(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed)
    }

    /// Bytes of idle buffers the context keeps for reuse (scratch and staging buffers
    /// given back by finished calls). Calls of the same shapes reuse them: a loop's steady
    /// state allocates nothing.
    pub fn pooled_bytes(&self) -> u64 {
        self.pool.idle_bytes()
    }

    /// Sets how many bytes of idle buffers the context may keep (1 GiB by default; 0 keeps
    /// none, so every call allocates afresh), freeing idle buffers above it now.
    pub fn with_pool_limit(self, bytes: u64) -> Self {
        self.pool.set_limit(bytes);
        self
    }

    /// Shader modules plus compute pipelines built on this context so far: each kernel
    /// variant is built once, on first use, and reused by every later call.
    pub fn pipelines_built(&self) -> usize {
        self.pipelines.built()
    }

    /// Frees every idle buffer now (later calls allocate again, then reuse).
    pub fn release_pooled(&self) {
        self.pool.trim(0);
    }

    pub(crate) fn count_allocation(&self, bytes: u64) {
        self.allocated.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Caps the bytes one storage binding may cover below the device's limit, so that
    /// inputs are split into more chunks: useful to exercise chunking with small data, or
    /// to leave room on a shared device. Values below 1024 bytes are raised to 1024.
    pub fn with_binding_limit(mut self, bytes: u64) -> Self {
        self.binding_cap = Some(bytes.max(1024));
        self
    }

    /// Forces one row-kernel strategy on every call instead of letting the plan choose
    /// from the shape (see [`crate::Strategy`]): for tests that check each strategy against
    /// the reference, and for benchmarking them against each other. A strategy the device
    /// cannot run falls back as the plan documents (no subgroups: workgroup per row).
    pub fn with_strategy(mut self, strategy: crate::gpu::strategy::Strategy) -> Self {
        self.strategy = Some(strategy);
        self
    }

    pub(crate) fn forced_strategy(&self) -> Option<crate::gpu::strategy::Strategy> {
        self.strategy
    }

    /// Caps the bytes of one buffer the crate creates for host data below the device's
    /// `max_buffer_size`, so that host inputs are split into more row groups (each its own
    /// buffers and batch): to exercise that path with small data, or to bound the size of
    /// single allocations. Values below 1024 bytes are raised to 1024.
    pub fn with_buffer_limit(mut self, bytes: u64) -> Self {
        self.buffer_cap = Some(bytes.max(1024));
        self
    }

    /// The largest buffer the crate creates for host data.
    pub(crate) fn max_buffer_bytes(&self) -> u64 {
        let device = self.limits.max_buffer_size;
        self.buffer_cap.map_or(device, |cap| cap.min(device))
    }

    /// The device the crate records on.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The queue the crate submits to.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// The adapter's description (name, backend, device type, subgroup sizes).
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The limits of the device.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Whether the subgroup kernels are in use (the device has `SUBGROUP`).
    pub fn uses_subgroups(&self) -> bool {
        self.subgroups
    }

    /// The largest number of bytes one storage binding may cover on this device.
    pub(crate) fn max_binding_bytes(&self) -> u64 {
        // wgpu 30 reports the binding limit as u64; WGSL indexes with u32, so cap bindings
        // at 4 GiB (2^30 f32 elements): in-binding indices then never overflow u32.
        let device = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
            .min(u64::from(u32::MAX));
        self.binding_cap.map_or(device, |cap| cap.min(device))
    }
}

/// Picks the adapter: the one whose name contains `WGPU_ADAPTER_NAME` if that is set,
/// else the high-performance default of the enabled backends; with `nth`, the `nth mod k`-th
/// of the k adapters of that one's kind.
async fn choose_adapter(
    instance: &wgpu::Instance,
    backends: wgpu::Backends,
    nth: Option<usize>,
) -> Result<wgpu::Adapter> {
    let chosen = choose_first(instance, backends).await?;
    let Some(n) = nth else {
        return Ok(chosen);
    };
    let info = chosen.get_info();
    let wanted = std::env::var("WGPU_ADAPTER_NAME").ok().map(|w| w.to_lowercase());
    let mut buses = Vec::new();
    let mut peers: Vec<wgpu::Adapter> = instance
        .enumerate_adapters(backends)
        .await
        .into_iter()
        .filter(|a| {
            let other = a.get_info();
            let named = wanted.as_ref().is_none_or(|w| other.name.to_lowercase().contains(w));
            if !named || (other.backend, other.device_type) != (info.backend, info.device_type) {
                return false;
            }
            // One GPU listed twice (two manifests of one driver) counts once.
            let bus = &other.device_pci_bus_id;
            let repeated = !bus.is_empty() && buses.contains(bus);
            buses.push(bus.clone());
            !repeated
        })
        .collect();
    if peers.is_empty() {
        return Ok(chosen);
    }
    let k = peers.len();
    Ok(peers.swap_remove(n % k))
}

/// The one adapter [`GpuContext::new`] takes.
async fn choose_first(instance: &wgpu::Instance, backends: wgpu::Backends) -> Result<wgpu::Adapter> {
    let adapters = instance.enumerate_adapters(backends).await;
    let names: Vec<String> = adapters
        .iter()
        .map(|a| {
            let info = a.get_info();
            format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
        })
        .collect();
    if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
        let wanted_lower = wanted.to_lowercase();
        return adapters
            .into_iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&wanted_lower))
            .ok_or_else(|| LossError::NoAdapter {
                detail: format!(
                    "WGPU_ADAPTER_NAME={wanted:?} matches none of the adapters found: [{}]",
                    names.join(", ")
                ),
            });
    }
    let options = wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::from_env().unwrap_or(wgpu::PowerPreference::HighPerformance),
        // We want the adapter's real limits (e.g. the whole storage-binding size), not a bucket.
        apply_limit_buckets: false,
        ..Default::default()
    };
    instance
        .request_adapter(&options)
        .await
        .map_err(|err| LossError::NoAdapter {
            detail: format!("backends {backends:?}: {err}; adapters found: [{}]", names.join(", ")),
        })
}

/// Asserts at compile time that a context can be shared between threads.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<GpuContext>();
    shareable::<Arc<GpuContext>>();
};
