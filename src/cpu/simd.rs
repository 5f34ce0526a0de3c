//! Vectorisable f32 math for the fast CPU backend: a branch-free exp and ln (Cephes'
//! polynomials), row max and Σ exp with AVX2 + FMA chosen at run time, the softmax-type
//! gradient loop, and fixed-order f64 sums (deterministic from run to run).

use rayon::prelude::*;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5·2^23: adding it rounds to the nearest integer, and its bits then hold that integer.
const ROUND: f32 = 12_582_912.0;

/// exp(x) for x ≤ 0 (x - max or x - lse), relative error ~2e-7 (Cephes' expf polynomial).
/// Below -87 it returns exp(-87) ≈ 1.6e-38 instead of less: where the true value is ~0
/// (masked classes), that adds nothing visible to a sum of terms ≥ exp(0) = 1.
#[inline(always)]
pub(crate) fn exp_neg(x: f32) -> f32 {
    let x = x.max(-87.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let exponent = (t.to_bits() as i32 - 0x4b40_0000 + 127) as u32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5; // Cephes: 5.0000001201e-1, which is 0.5 in f32
    p = p * r * r + r + 1.0;
    p * f32::from_bits(exponent << 23)
}

const LANES: usize = 8;

/// The row's max, and whether a NaN is in it.
#[inline(always)]
fn row_max(row: &[f32]) -> (f32, bool) {
    let mut max = [f32::NEG_INFINITY; LANES];
    let mut nan = [false; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for i in 0..LANES {
            max[i] = max[i].max(chunk[i]);
            nan[i] |= chunk[i].is_nan();
        }
    }
    let mut m = max.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let mut has_nan = nan.iter().any(|&b| b);
    for &x in tail {
        m = m.max(x);
        has_nan |= x.is_nan();
    }
    (m, has_nan)
}

/// Σ exp(x - m) and Σ a_c (x_c - m) (without `coefficients`, the dot is 0). Two loops, so
/// that neither carries a branch: a branch in the lane loop stops LLVM vectorising it.
#[inline(always)]
fn exp_sum_and_dot(row: &[f32], m: f32, coefficients: Option<&[f32]>) -> (f32, f32) {
    match coefficients {
        None => (exp_sum(row, m), 0.0),
        Some(a) => exp_sum_dot(row, a, m),
    }
}

#[inline(always)]
fn exp_sum(row: &[f32], m: f32) -> f32 {
    let mut sum = [0.0_f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for i in 0..LANES {
            sum[i] += exp_neg(chunk[i] - m);
        }
    }
    sum.iter().sum::<f32>() + tail.iter().map(|&x| exp_neg(x - m)).sum::<f32>()
}

#[inline(always)]
fn exp_sum_dot(row: &[f32], a: &[f32], m: f32) -> (f32, f32) {
    let mut sum = [0.0_f32; LANES];
    let mut dot = [0.0_f32; LANES];
    let chunks = row.chunks_exact(LANES).zip(a.chunks_exact(LANES));
    for (x, w) in chunks {
        for i in 0..LANES {
            let d = x[i] - m;
            sum[i] += exp_neg(d);
            dot[i] += w[i] * d;
        }
    }
    let n = row.len() - row.len() % LANES;
    let (mut s, mut t): (f32, f32) = (sum.iter().sum(), dot.iter().sum());
    for j in n..row.len() {
        let d = row[j] - m;
        s += exp_neg(d);
        t += a[j] * d;
    }
    (s, t)
}

/// grad_c = g (A p_c - a_c) (+ g 2 z lse p_c), p_c = exp(x_c - lse).
#[inline(always)]
fn row_grad(row: &[f32], out: &mut [f32], scale: &GradScale, a: &Coefficients<'_>) {
    let GradScale { lse, g, a_sum, z_term } = *scale;
    let k = g * (a_sum + z_term);
    // One branch-free loop per form of a_c, so that each vectorises (a per-element call
    // through `dyn Fn` made the gradient 10× slower than the forward).
    match *a {
        Coefficients::Indexed { y, hit, base, weight } => {
            let gb = g * base;
            match weight {
                None => {
                    for (o, &x) in out.iter_mut().zip(row) {
                        *o = k * exp_neg(x - lse) - gb;
                    }
                }
                Some(w) => {
                    for ((o, &x), &w) in out.iter_mut().zip(row).zip(w) {
                        *o = k * exp_neg(x - lse) - gb * w;
                    }
                }
            }
            out[y] -= g * hit;
        }
        Coefficients::Dense(a) => {
            for ((o, &x), &a) in out.iter_mut().zip(row).zip(a) {
                *o = k * exp_neg(x - lse) - g * a;
            }
        }
    }
}

/// The coefficients a_c of a row's loss `-Σ a_c lp_c`, in the two forms the fast backend
/// meets.
#[derive(Clone, Copy)]
pub(crate) enum Coefficients<'a> {
    /// Class-index targets: `a_c = base·w_c` for every class (the smoothing share, ε/C;
    /// `w_c` = 1 without weights) plus `hit` at the target class `y`.
    Indexed {
        y: usize,
        hit: f32,
        base: f32,
        weight: Option<&'a [f32]>,
    },
    /// Given per class (probability targets).
    Dense(&'a [f32]),
}

/// The per-row scalars of a softmax-type gradient `g ((A + z) p_c - a_c)`.
#[derive(Clone, Copy)]
pub(crate) struct GradScale {
    /// The row's logsumexp.
    pub lse: f32,
    /// The upstream scale of the row.
    pub g: f32,
    /// `A = Σ a_c`.
    pub a_sum: f32,
    /// The z-loss term `2 z lse` (0 without z-loss).
    pub z_term: f32,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_sum_and_dot_avx2(row: &[f32], m: f32, coefficients: Option<&[f32]>) -> (f32, f32) {
    exp_sum_and_dot(row, m, coefficients)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_max_avx2(row: &[f32]) -> (f32, bool) {
    row_max(row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_grad_avx2(row: &[f32], out: &mut [f32], scale: &GradScale, a: &Coefficients<'_>) {
    row_grad(row, out, scale, a)
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The kernels, with AVX2 + FMA where the CPU has them.
#[derive(Clone, Copy)]
pub(crate) struct Kernels {
    /// AVX2 and FMA are there (the `_avx2` copies may run).
    pub(crate) avx2: bool,
}

impl Kernels {
    /// The kernels this CPU runs best.
    pub(crate) fn detect() -> Self {
        Self { avx2: has_avx2() }
    }

    /// The row's max, and whether a NaN is in it.
    pub(crate) fn max(self, row: &[f32]) -> (f32, bool) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: the CPU has AVX2 and FMA (checked by `has_avx2`).
            return unsafe { row_max_avx2(row) };
        }
        row_max(row)
    }

    /// Σ exp(x - m) and Σ a_c (x_c - m) (without `coefficients`, the dot is 0).
    pub(crate) fn exp_sum(self, row: &[f32], m: f32, coefficients: Option<&[f32]>) -> (f32, f32) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: as above.
            return unsafe { exp_sum_and_dot_avx2(row, m, coefficients) };
        }
        exp_sum_and_dot(row, m, coefficients)
    }

    /// `out_c = g ((A + z) p_c - a_c)` with `p_c = exp(x_c - lse)`.
    pub(crate) fn grad(self, row: &[f32], out: &mut [f32], scale: &GradScale, a: &Coefficients<'_>) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: as above.
            return unsafe { row_grad_avx2(row, out, scale, a) };
        }
        row_grad(row, out, scale, a)
    }
}

/// ln(x) for x ≥ 0, branch-free (Cephes' logf polynomial, coefficients as published),
/// relative error ~1e-7; 0 gives
/// -inf and subnormals are rescaled first, so every finite non-negative input is exact to
/// f32 precision.
#[inline(always)]
#[allow(clippy::excessive_precision)]
pub(crate) fn ln_nonneg(x: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let tiny = x < f32::MIN_POSITIVE;
    let y = if tiny { x * 16_777_216.0 } else { x }; // 2^24
    let bits = y.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000); // [0.5, 1)
    let small = m < SQRT_HALF;
    e -= i32::from(small);
    let f = if small { m + m - 1.0 } else { m - 1.0 };
    let z = f * f;
    let mut p = 7.037_683_6e-2_f32;
    p = p * f - 1.151_461e-1;
    p = p * f + 1.167_699_9e-1;
    p = p * f - 1.242_014_1e-1;
    p = p * f + 1.424_932_3e-1;
    p = p * f - 1.666_805_8e-1;
    p = p * f + 2.000_071_4e-1;
    p = p * f - 2.499_999_4e-1;
    p = p * f + 3.333_333_1e-1;
    let ef = e as f32 - if tiny { 24.0 } else { 0.0 };
    let r = f + (p * f * z - 0.5 * z) + ef * LN2_LO + ef * LN2_HI;
    if x == 0.0 {
        f32::NEG_INFINITY
    } else if x < 0.0 {
        f32::NAN // as ln: kl_div's xlogy(t, t) of a negative target is NaN in PyTorch
    } else if x.is_finite() {
        r
    } else {
        x // inf or NaN
    }
}

/// exp(x) for any x: exp_neg of -|x| inverted for x > 0 (inf above ~88); below -87 (where
/// exp_neg stops) the f64 exp, so that exp(-inf) is 0 and 0·(-inf) stays NaN as in PyTorch.
#[inline(always)]
pub(crate) fn exp_any(x: f32) -> f32 {
    let e = exp_neg(-x.abs());
    if x > 0.0 {
        if x > 88.7 {
            f32::INFINITY
        } else {
            1.0 / e
        }
    } else if x < -87.0 {
        f64::from(x).exp() as f32
    } else {
        e
    }
}

/// Values per task of a fixed-order sum.
const SUM_CHUNK: usize = 1 << 15;

/// Σ of f32 values in f64, in a fixed order (chunk sums in chunk order): deterministic.
pub(crate) fn sum_fixed(values: &[f32]) -> f64 {
    let partial: Vec<f64> = values
        .par_chunks(SUM_CHUNK)
        .map(|c| c.iter().map(|&v| f64::from(v)).sum::<f64>())
        .collect();
    partial.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_neg_is_accurate_on_its_range() {
        // Above -80 every result is a normal f32; below, results near 2^-126 lose precision
        // (they only ever add ~1e-35 to sums that are ≥ 1).
        let mut worst = 0.0_f64;
        for i in 0..=80_000 {
            let x = -(i as f32) * 1e-3;
            let want = f64::from(x).exp();
            let got = f64::from(exp_neg(x));
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
        assert_eq!(exp_neg(0.0), 1.0);
        assert!(exp_neg(f32::NEG_INFINITY) < 2e-38);
    }

    #[test]
    fn ln_nonneg_is_accurate_everywhere() {
        // Every 997th bit pattern from the smallest subnormal to the largest finite f32.
        let mut worst = 0.0_f64;
        for bits in (1..0x7f80_0000_u32).step_by(997) {
            let x = f32::from_bits(bits);
            let want = f64::from(x).ln();
            let got = f64::from(ln_nonneg(x));
            worst = worst.max((got - want).abs() / want.abs().max(1.0));
        }
        assert!(worst < 3e-7, "worst error {worst}");
        assert_eq!(ln_nonneg(0.0), f32::NEG_INFINITY);
        assert_eq!(ln_nonneg(1.0), 0.0);
        assert!(ln_nonneg(f32::NAN).is_nan() && ln_nonneg(f32::INFINITY) == f32::INFINITY);
    }
}
