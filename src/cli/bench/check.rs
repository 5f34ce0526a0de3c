//! Every GPU and fast-CPU result is checked against the f64 reference before it is timed:
//! a mismatch is an error, not a row.

/// f32 GPU or fast-CPU results against the f64 reference, on means and sums over generated
/// batches, or elementwise values: the kernels' row error (~1e-5 at C = 50257) plus f32
/// rounding of the result.
const ATOL: f64 = 1e-4;
const RTOL: f64 = 1e-4;

/// The largest absolute difference, or an error naming the first value out of tolerance.
pub fn check(what: &str, shape: &str, got: &[f32], want: &[f32]) -> Result<f64, String> {
    if got.len() != want.len() {
        return Err(format!(
            "{shape}: {what} gave {} values, the reference {}",
            got.len(),
            want.len()
        ));
    }
    let mut worst = 0.0_f64;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (f64::from(g), f64::from(w));
        let err = (g - w).abs();
        if err.is_nan() && !(g.is_nan() && w.is_nan()) || err > ATOL + RTOL * w.abs() {
            return Err(format!("{shape}: {what} value {i} is {g}, the CPU reference says {w}"));
        }
        if err.is_finite() {
            worst = worst.max(err);
        }
    }
    Ok(worst)
}
