//! Shared by the integration tests: one GPU context per test binary, a seeded RNG, and
//! comparison with named tolerances (`|got - want| <= atol + rtol * |want|`).
#![allow(dead_code)]

pub mod cli;
pub mod linear;
pub mod vocab;

use std::sync::OnceLock;

use wgpu_loss::GpuContext;

/// The GPU context every test shares. With no adapter this panics with the reason and
/// how to install one: GPU tests fail loudly, they never skip.
pub fn gpu() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| match GpuContext::new_blocking() {
        Ok(ctx) => ctx,
        Err(err) => panic!("GPU tests need a GPU adapter and none was usable: {err}"),
    })
}

/// A storage buffer of the shared context holding `contents` (readable back, and clearable:
/// a status word needs `COPY_DST`): an app's buffer in the recorded-form tests.
pub fn app_buffer(contents: &[u8]) -> wgpu_loss::wgpu::Buffer {
    use wgpu_loss::wgpu::{self, util::DeviceExt};
    gpu().device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("app"),
        contents,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
    })
}

/// SplitMix64: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn logits(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len).map(|_| self.uniform(-scale, scale)).collect()
    }

    /// `rows` class indices in `[0, classes)`.
    pub fn targets(&mut self, rows: usize, classes: usize) -> Vec<i64> {
        (0..rows).map(|_| self.below(classes) as i64).collect()
    }
}

/// A named tolerance.
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    pub name: &'static str,
    pub atol: f64,
    pub rtol: f64,
}

/// Row losses of cross-entropy, GPU (f32) against the f64 reference. The kernel sums
/// exp(x - max) in f32 over C / lanes terms per lane before a log; the relative error of that
/// sum becomes an absolute error of the loss, growing like sqrt(C)·2^-24 on random data.
/// Measured worst on lavapipe: 4.0e-6 (1757×4099, losses ~10).
pub const ROW_LOSS: Tolerance = Tolerance {
    name: "cross_entropy.row",
    atol: 3e-5,
    rtol: 1e-5,
};

/// Reduced cross-entropy (sum, mean): the row error above plus an f32 tree sum over N rows
/// (log2 N roundings). Measured worst: 6e-8 relative (1.5e-3 on a sum of 2.4e4).
pub const REDUCED: Tolerance = Tolerance {
    name: "cross_entropy.reduced",
    atol: 3e-5,
    rtol: 3e-5,
};

/// Gradients, GPU (f32) against the f64 reference: p = exp(x - lse) in f32 with lse from an
/// f32 sum (relative error ~1e-6 of p), times scales of at most a few units.
pub const GRAD_TOLERANCE: Tolerance = Tolerance {
    name: "grad",
    atol: 2e-6,
    rtol: 2e-5,
};

/// NaN matches NaN, infinities match by sign; otherwise `|got - want| <= atol + rtol*|want|`.
pub fn close(got: f64, want: f64, tol: Tolerance) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= tol.atol + tol.rtol * want.abs()
}

#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: Tolerance) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if !close(f64::from(g), w, tol) {
            panic!(
                "{what}: element {i}: got {g}, want {w} (tolerance {}: atol {} rtol {})",
                tol.name, tol.atol, tol.rtol
            );
        }
        let err = (f64::from(g) - w).abs();
        if err.is_finite() && worst.is_none_or(|(_, e)| err > e) {
            worst = Some((i, err));
        }
    }
    if std::env::var_os("WGPU_LOSS_SHOW_ERRORS").is_some() {
        eprintln!("{what}: worst abs error {worst:?}");
    }
}

/// A fresh folder for one test's files (`wgpu-loss-<suite>-<pid>-<name>` in the temp folder).
pub fn scratch(suite: &str, name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wgpu-loss-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A version 1.0 `.npy` file with exactly this header text (padded as NumPy pads it) and
/// payload: for writing any dtype, and for writing lying headers.
pub fn npy_with_header(path: &std::path::Path, header: &str, payload: &[u8]) {
    std::fs::write(path, npy_bytes(header, payload)).expect("write npy");
}

/// The bytes of such a file.
pub fn npy_bytes(header: &str, payload: &[u8]) -> Vec<u8> {
    let mut text = header.to_string();
    while !(10 + text.len() + 1).is_multiple_of(64) {
        text.push(' ');
    }
    text.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(text.len() as u16).to_le_bytes());
    bytes.extend_from_slice(text.as_bytes());
    bytes.extend_from_slice(payload);
    bytes
}
