//! Buffer reuse, so that the steady state of a training or inference loop allocates
//! nothing: scratch buffers are leased from a per-context pool and come back when the
//! lease is dropped, and small immutable buffers (kernel parameters, class weights) are
//! cached by content.
//!
//! Why reuse is safe even for buffers recorded into an app's encoder that is submitted
//! later: a leased scratch buffer is written by the GPU before it is read, inside the
//! commands of the one call that leased it, and a device has one queue that runs
//! submissions in order with barriers between passes. A call that leases the buffer next
//! writes it again before reading it, before or after the first call's commands, never in
//! between. Host-written data is the exception: `Queue::write_buffer` lands at the next
//! submission, whoever makes it, so buffers written from the host are either immutable
//! (the content cache) or uploads, which live in a lane of their own ([`Lane::Upload`]): a
//! scratch buffer is given back when its recording returns, before that recording is
//! submitted, and another thread's upload written into it would be overwritten by the
//! first call's kernels. Upload buffers are leased only by calls that submit and wait
//! before giving them back, so any upload may reuse them.
//!
//! The other exception is a buffer whose contents must outlive one submission: the linear
//! cross-entropy's host path adds `∂W` and `∂b` up over row groups, one submission each,
//! so it reads in group 2 what group 1 wrote. A scratch buffer given back by another
//! thread's recording that is not yet submitted would be overwritten by that recording
//! between the two groups (seen: one element of `∂b` wrong when shards ran side by side on
//! one context). Such buffers live in a lane of their own too ([`Lane::Held`]), leased by
//! host calls that give them back only after their last submission is done.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Idle bytes the pool keeps by default; a buffer given back beyond this is freed.
pub(crate) const DEFAULT_IDLE_LIMIT: u64 = 1 << 30;
/// Content-cached buffers kept at most (then the cache starts over).
const MAX_CONSTANTS: usize = 4096;
/// Largest content-cached buffer.
pub(crate) const MAX_CONSTANT_BYTES: usize = 1 << 16;

/// Which buffers may be reused for which: see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Lane {
    /// Written by the GPU before it is read, inside the commands of one call.
    Scratch,
    /// Written from the host (`Queue::write_buffer`) by a call that waits before giving it back.
    Upload,
    /// Written by the GPU in one submission and read in a later one of the same host call,
    /// which waits for its last submission before giving it back.
    Held,
}

type Key = (u64, wgpu::BufferUsages, Lane);

#[derive(Default)]
struct Idle {
    buffers: HashMap<Key, Vec<wgpu::Buffer>>,
    bytes: u64,
}

/// The pool of one context.
pub(crate) struct Pool {
    idle: Mutex<Idle>,
    limit: std::sync::atomic::AtomicU64,
    constants: Mutex<HashMap<(wgpu::BufferUsages, Vec<u8>), wgpu::Buffer>>,
}

impl Pool {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(Idle::default()),
            limit: std::sync::atomic::AtomicU64::new(DEFAULT_IDLE_LIMIT),
            constants: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn set_limit(&self, bytes: u64) {
        self.limit.store(bytes, std::sync::atomic::Ordering::Relaxed);
        self.trim(bytes);
    }

    /// An idle buffer of exactly `size` bytes and `usage` from `lane`, if there is one.
    pub(crate) fn take(&self, size: u64, usage: wgpu::BufferUsages, lane: Lane) -> Option<wgpu::Buffer> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let buffer = idle.buffers.get_mut(&(size, usage, lane))?.pop()?;
        idle.bytes -= size;
        Some(buffer)
    }

    fn give_back(&self, buffer: wgpu::Buffer, lane: Lane) {
        let size = buffer.size();
        let limit = self.limit.load(std::sync::atomic::Ordering::Relaxed);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.bytes + size <= limit {
            idle.bytes += size;
            idle.buffers
                .entry((size, buffer.usage(), lane))
                .or_default()
                .push(buffer);
        }
    }

    /// Frees idle buffers until at most `bytes` are kept.
    pub(crate) fn trim(&self, bytes: u64) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let mut keys: Vec<Key> = idle.buffers.keys().copied().collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.0));
        for key in keys {
            while idle.bytes > bytes {
                let Some(buffer) = idle.buffers.get_mut(&key).and_then(Vec::pop) else {
                    break;
                };
                idle.bytes -= buffer.size();
            }
        }
        idle.buffers.retain(|_, v| !v.is_empty());
    }

    pub(crate) fn idle_bytes(&self) -> u64 {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }

    /// The cached immutable buffer holding `data`, or `make` it and cache it.
    pub(crate) fn constant(
        &self,
        usage: wgpu::BufferUsages,
        data: &[u8],
        make: impl FnOnce() -> crate::error::Result<wgpu::Buffer>,
    ) -> crate::error::Result<wgpu::Buffer> {
        let key = (usage, data.to_vec());
        if let Some(buffer) = self.constants.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(buffer.clone());
        }
        let buffer = make()?;
        let mut constants = self.constants.lock().unwrap_or_else(|e| e.into_inner());
        if constants.len() >= MAX_CONSTANTS {
            constants.clear();
        }
        constants.insert(key, buffer.clone());
        Ok(buffer)
    }
}

/// A buffer leased from the pool; given back when dropped. Derefs to the buffer. (Public
/// in name only, so that `BufferAt` can convert from it; the module is private.)
pub struct Lease {
    buffer: Option<wgpu::Buffer>,
    pool: Arc<Pool>,
    lane: Lane,
}

impl Lease {
    pub(crate) fn new(buffer: wgpu::Buffer, pool: Arc<Pool>, lane: Lane) -> Self {
        Self {
            buffer: Some(buffer),
            pool,
            lane,
        }
    }
}

impl std::ops::Deref for Lease {
    type Target = wgpu::Buffer;

    fn deref(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("a lease holds its buffer until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            self.pool.give_back(buffer, self.lane);
        }
    }
}

impl<'a> From<&'a Lease> for crate::api::buffers::BufferAt<'a> {
    fn from(lease: &'a Lease) -> Self {
        Self {
            buffer: lease,
            offset: 0,
        }
    }
}

impl<'a> From<&'a Lease> for crate::api::buffers::InputAt<'a> {
    fn from(lease: &'a Lease) -> Self {
        crate::api::buffers::BufferAt::from(lease).into()
    }
}
