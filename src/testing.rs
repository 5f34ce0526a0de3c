//! What the crate's unit tests share: the seeded RNG and named tolerances of
//! `tests/common/mod.rs` (the same seeds give the same data), and central finite
//! differences for checking the f64 references' gradients.

/// The tests' seeded RNG (SplitMix64), as `tests/common/mod.rs` has it: the same seeds give
/// the same data as before the move.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub(crate) fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A named tolerance, as in `tests/common/mod.rs`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tolerance {
    pub name: &'static str,
    pub atol: f64,
    pub rtol: f64,
}

/// NaN matches NaN, infinities match by sign; otherwise `|got - want| <= atol + rtol*|want|`
/// (`tests/common/mod.rs`'s `close`).
pub(crate) fn close(got: f64, want: f64, tol: Tolerance) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= tol.atol + tol.rtol * want.abs()
}

/// The f64 reference against PyTorch's float64 result: only summation order differs.
pub(crate) const REFERENCE: Tolerance = Tolerance {
    name: "cpu.golden",
    atol: 1e-12,
    rtol: 1e-12,
};
/// Seed inputs such as 0.05 are not exact in f32; the rounding (~4e-9 relative) moves the
/// seeds' f64 results by at most ~1e-7.
pub(crate) const SEED: Tolerance = Tolerance {
    name: "seed",
    atol: 1e-6,
    rtol: 1e-6,
};

/// Central differences with step h on smooth f64 functions of O(1) values: truncation
/// error O(h²·f''') ≈ 1e-10 and cancellation O(ε/h) ≈ 1e-10 at h = 1e-5.
pub(crate) const FINITE_DIFF: Tolerance = Tolerance {
    name: "finite_difference",
    atol: 1e-7,
    rtol: 1e-6,
};
pub(crate) const STEP: f64 = 1e-5;

/// Central differences of `f` at `x`, one coordinate at a time.
pub(crate) fn finite_differences(x: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut probe = x.to_vec();
    (0..x.len())
        .map(|i| {
            probe[i] = x[i] + STEP;
            let up = f(&probe);
            probe[i] = x[i] - STEP;
            let down = f(&probe);
            probe[i] = x[i];
            (up - down) / (2.0 * STEP)
        })
        .collect()
}

/// A xorshift64 stream from `seed` (non-zero): cheap random bytes for mutation tests.
pub(crate) fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
