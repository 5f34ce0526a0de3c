// prelude.wgsl — shared by every row-reduction kernel (prepended at pipeline creation).
//
// A row's softmax needs max_c x_c and Σ_c exp(x_c - max). RowStats carries both for any
// slice of a row, plus Σ w_c (x_c - shift) and Σ w_c for label smoothing, so that
// slices can be merged in any fixed order (one online pass, no second read).

// Values are kept relative to `shift`, which is the slice max when it is finite and 0
// otherwise (a slice that is empty or all -inf), so that -inf - -inf never happens.
struct RowStats {
    row_max: f32,
    exp_sum: f32,   // Σ exp(x_c - shift)
    wx_sum: f32,    // Σ w_c (x_c - shift)
    w_sum: f32,     // Σ w_c
}

fn negative_infinity() -> f32 {
    return bitcast<f32>(0xff800000u);
}

fn stats_empty() -> RowStats {
    return RowStats(negative_infinity(), 0.0, 0.0, 0.0);
}

fn stats_shift(row_max: f32) -> f32 {
    return select(0.0, row_max, row_max != negative_infinity());
}

// Adds four values of one slice (already masked: padding is x = -inf, w = 0, wx = 0).
// One exp per value plus one to rescale the running sum.
fn stats_push4(s: RowStats, x: vec4<f32>, w: vec4<f32>, valid: vec4<bool>) -> RowStats {
    let new_max = max(s.row_max, max(max(x.x, x.y), max(x.z, x.w)));
    let old_shift = stats_shift(s.row_max);
    let new_shift = stats_shift(new_max);
    let e = exp(x - vec4(new_shift));
    let wx = select(vec4(0.0), w * (x - vec4(new_shift)), valid);
    var r: RowStats;
    r.row_max = new_max;
    // old_shift <= new_shift when both are finite; the min() keeps exp finite when the
    // old slice was empty (exp_sum = 0 then, and 0 * inf would be NaN).
    r.exp_sum = s.exp_sum * exp(min(old_shift - new_shift, 0.0)) + ((e.x + e.y) + (e.z + e.w));
    r.wx_sum = (s.wx_sum + (old_shift - new_shift) * s.w_sum) + ((wx.x + wx.y) + (wx.z + wx.w));
    r.w_sum = s.w_sum + ((w.x + w.y) + (w.z + w.w));
    return r;
}

// Merges two slices of the same row. Symmetric in its arguments (every sum is a + b),
// so a butterfly leaves bit-identical results in every lane.
fn stats_merge(a: RowStats, b: RowStats) -> RowStats {
    let row_max = max(a.row_max, b.row_max);
    let shift = stats_shift(row_max);
    let shift_a = stats_shift(a.row_max);
    let shift_b = stats_shift(b.row_max);
    var r: RowStats;
    r.row_max = row_max;
    r.exp_sum = a.exp_sum * exp(min(shift_a - shift, 0.0)) + b.exp_sum * exp(min(shift_b - shift, 0.0));
    r.wx_sum = (a.wx_sum + (shift_a - shift) * a.w_sum) + (b.wx_sum + (shift_b - shift) * b.w_sum);
    r.w_sum = a.w_sum + b.w_sum;
    return r;
}

// Columns [lo, hi) of a row whose column `lo` sits at binding index `first`: the part
// [x, y) made of whole 16-byte units of the binding (vec4 loads and stores), with scalars
// before it (up to the first 16-byte boundary) and after it (the last partial unit).
// llvmpipe loads and stores storage per lane, so a vec4 costs what a scalar does.
fn vec4_span(first: u32, lo: u32, hi: u32) -> vec2<u32> {
    let body = min(lo + ((4u - (first & 3u)) & 3u), hi);
    return vec2(body, body + (hi - body) / 4u * 4u);
}

// Offset from the tensor's start of element 0 of position `row` of a `[…, C, inner]`
// layout: positions along an axis other than the last have their C classes `inner` apart
// (position r = (o, i) starts at o·C·inner + i; DimAxis / ClassAxis on the host); the
// last axis's rows (inner = 1) are contiguous.
fn strided_start(row: u32, classes: u32, inner: u32) -> u32 {
    if (inner == 1u) {
        return row * classes;
    }
    let o = row / inner;
    return o * classes * inner + (row - o * inner);
}

// Rows are spread over a 2-D grid of workgroups (x up to 65535) so that any number of
// rows can be dispatched; this is the linear index of the current workgroup.
fn linear_group(group_id: vec3<u32>, group_count: vec3<u32>) -> u32 {
    return group_id.y * group_count.x + group_id.x;
}

// The linear index of the current invocation of a 2-D grid of `size`-wide workgroups.
fn linear_invocation(id: vec3<u32>, group_count: vec3<u32>, size: u32) -> u32 {
    return id.y * group_count.x * size + id.x;
}

// NaN by its bits: WGSL lets compilers assume NaN never occurs, so `x != x` may fold to
// false (llvmpipe does); the bit pattern cannot be optimised away.
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// log(x) that honours subnormal x. llvmpipe's log takes a subnormal for about the smallest
// normal (log(1e-40) gave -88.02, not -92.10), and Vulkan lets any driver flush them;
// PyTorch's CPU kernels do not. A positive subnormal is m·2^-149 with an integer m < 2^23,
// so its log is log(f32(m)) - 149·ln 2, from the bits alone.
// Branch-free: a SIMD driver runs both sides of a divergent branch, so a branch would cost
// two logs per element.
fn log_exact(x: f32) -> f32 {
    let bits = bitcast<u32>(x);
    let subnormal = bits != 0u && bits < 0x00800000u;
    let r = log(select(x, f32(bits), subnormal));
    return select(r, r - 103.27892990343184, subnormal);
}

// log(x + e) for x, e ≥ 0 with subnormals honoured: two subnormals (or zeros) add exactly
// as integers (their encoding is linear, and a carry lands on the smallest normal).
fn log_exact_sum(x: f32, e: f32) -> f32 {
    let xb = bitcast<u32>(x);
    let eb = bitcast<u32>(e);
    if (xb < 0x00800000u && eb < 0x00800000u) {
        return log_exact(bitcast<f32>(xb + eb));
    }
    return log_exact(x + e);
}

// Argmax order, as torch.argmax: NaN beats everything, then larger values, then the lower
// index on ties. Returns whether (a, ia) comes before (b, ib).
fn argmax_before(a: f32, ia: u32, b: f32, ib: u32) -> bool {
    let a_nan = is_nan(a);
    let b_nan = is_nan(b);
    if (a_nan != b_nan) {
        return a_nan;
    }
    if (a_nan || a == b) {
        return ia < ib;
    }
    return a > b;
}

// Inputs are bound as u32 words so that one kernel reads f32, f16 and bf16 (FORMAT 0, 1, 2):
// f32 is one element a word; f16 and bf16 are two, the even element in the low half
// (little-endian). f16 is decoded from its bits: `unpack2x16float` would need naga's
// SHADER_FLOAT16_IN_FLOAT32 capability (a downlevel flag) in every module, f32 kernels too.
// bf16 is the high half of an f32.
fn element_word(index: u32, format: u32) -> u32 {
    return select(index, index >> 1u, format != 0u);
}

// The f32 value of IEEE half bits (exact).
fn f16_bits_to_f32(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let exponent = (h >> 10u) & 0x1fu;
    let mantissa = h & 0x3ffu;
    if (exponent == 0u) {
        // zero or subnormal: mantissa · 2^-24
        let magnitude = f32(mantissa) * 5.9604644775390625e-8;
        return select(magnitude, -magnitude, sign != 0u);
    }
    if (exponent == 31u) {
        return bitcast<f32>(sign | 0x7f800000u | (mantissa << 13u));
    }
    return bitcast<f32>(sign | ((exponent + 112u) << 23u) | (mantissa << 13u));
}

fn unpack_element(word: u32, index: u32, format: u32) -> f32 {
    let odd = (index & 1u) == 1u;
    let half = select(word & 0xffffu, word >> 16u, odd);
    if (format == 1u) {
        return f16_bits_to_f32(half);
    }
    if (format == 2u) {
        return bitcast<f32>(half << 16u);
    }
    return bitcast<f32>(word);
}
