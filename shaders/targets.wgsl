// targets.wgsl — what both cross-entropy passes derive from the targets and the options,
// written once; prepended to cross_entropy.wgsl (pass 1) and cross_entropy_grad.wgsl
// (pass 2). Each pass declares `params` (with targets_offset, classes, ignore_lo,
// ignore_hi, label_smoothing, softcap) and the `targets` binding (u32 words); WGSL lets
// these functions name them before their declaration.

override TARGET_I64: bool = true;   // class-index targets are i64 (two u32 words each), else i32
override TARGET_PROBS: bool = false; // targets are f32 probabilities [N, C] instead of indices
override WEIGHTED: bool = false;    // class weights are bound
override SMOOTHING: bool = false;   // label_smoothing > 0
override INPUT_KIND: u32 = 0u;      // 0: logits, 1: probabilities, 2: log-probabilities
override SOFTCAP: bool = false;     // logits: x -> cap·tanh(x / cap) before the softmax (Gemma 2)
override Z_LOSS: bool = false;      // logits: add z·lse² to each counted row (PaLM)
override FORMAT: u32 = 0u;          // the input's element type: 0 f32, 1 f16, 2 bf16

// Class-index target `row` of the dispatch as its two u32 words (i32 sign-extended).
fn target_words(row: u32) -> vec2<u32> {
    if (TARGET_I64) {
        return vec2(targets[params.targets_offset + 2u * row], targets[params.targets_offset + 2u * row + 1u]);
    }
    let lo = targets[params.targets_offset + row];
    return vec2(lo, select(0u, 0xffffffffu, (lo & 0x80000000u) != 0u));
}

// Whether a class-index target is ignore_index.
fn target_ignored(t: vec2<u32>) -> bool {
    return t.x == params.ignore_lo && t.y == params.ignore_hi;
}

// Whether a class-index target counts and is in range (so that its column can be read).
fn target_in_range(t: vec2<u32>) -> bool {
    return !target_ignored(t) && t.y == 0u && t.x < params.classes;
}

// The probability target at word `at` of the targets binding, smoothed:
// t' = t·(1-ε) + ε/C.
fn smoothed_probability(at: u32) -> f32 {
    let t = bitcast<f32>(targets[at]);
    if (SMOOTHING) {
        return t * (1.0 - params.label_smoothing) + params.label_smoothing / f32(params.classes);
    }
    return t;
}

// A logit soft-capped when SOFTCAP: cap·tanh(x / cap).
fn soft_capped(x: f32) -> f32 {
    if (SOFTCAP) {
        return params.softcap * tanh(x / params.softcap);
    }
    return x;
}
