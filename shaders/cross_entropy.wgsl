// cross_entropy.wgsl — cross-entropy and NLL, forward, one team per row.
// Prepended at pipeline creation: prelude.wgsl, targets.wgsl (target decoding, smoothed
// probability targets, the soft-cap, the shared overrides) and one team_*.wgsl.
//
// Every variant is l_n = -Σ_c a_c·lp_c with lp = the row's log-probabilities:
//   class-index targets:  a_c = (1-ε)·w_y·[c = y] + (ε/C)·w_c      (row weight w_y; ignored rows 0)
//   probability targets:  a_c = w_c·t'_c,  t' = t·(1-ε) + ε/C      (row weight 1)
// From logits, lp_c = x_c - lse and l_n = A·(lse - shift) - Σ a_c (x_c - shift) with A = Σ a_c,
// all from one online pass (RowStats with per-element weight a_c). From probabilities,
// lp_c = log(p_c + δ); from log-probabilities (nll_loss), lp_c = x_c: a weighted row sum.

override ARGMAX: bool = false;      // logits: write each row's argmax
// Whole rows of a reduced loss: each team sums its rows' (loss, weight) in its own fixed
// order and writes that one pair, at its team index, instead of a pair per row; reduce.wgsl
// sums the pairs. The rows' values are never written or read again.
override REDUCED: bool = false;

// The running (Σ loss, Σ weight) of this invocation's rows (REDUCED).
var<private> partial: vec2<f32>;

struct Params {
    rows: u32,            // rows in this dispatch
    classes: u32,
    logits_offset: u32,   // element offset of row 0 inside the logits binding
    targets_offset: u32,  // u32-word offset of row 0 inside the targets binding
    out_offset: u32,      // element offset of row 0 inside the row_loss binding
    row_base: u32,        // global index of row 0, for error reports
    ignore_lo: u32,       // ignore_index as i64, low and high words
    ignore_hi: u32,
    label_smoothing: f32,
    epsilon: f32,         // δ added to probabilities before the log (INPUT_KIND 1)
    softcap: f32,         // cap (SOFTCAP)
    z_loss: f32,          // z (Z_LOSS)
    lse_offset: u32,      // word offset of row 0's pair inside the row_lse binding
    status_offset: u32,   // index of the status word inside the status binding
    weight_offset: u32,   // offset of row 0 inside the row_weight binding
    argmax_offset: u32,   // offset of row 0 inside the row_argmax binding
    // Split rows (cross_entropy_partials / cross_entropy_merge):
    col_begin: u32,       // global column of the logits binding's first element (one row
                          // larger than a binding is dispatched a column range at a time)
    cols: u32,            // columns of each row in this dispatch (classes unless a range)
    block_cols: u32,      // columns per block
    blocks_per_row: u32,  // blocks of a whole row: partial records per row
    aux_words: u32,       // elements of the logits binding also readable as vec4s in `aux`
                          // (0: aux holds the class weights, or nothing)
    write_stats: u32,     // logits: write (lse, A) per row (the gradient or the caller reads it)
    inner: u32,           // elements between a row's classes: 1 for [N, C]; d1·…·dk for
                          // [N, C, d1, …], whose positions take one invocation each
    quads: u32,           // strided plain f32 logits, whole vec4s of positions in `aux`:
                          // one invocation per 4 neighbouring positions (strided_quad)
    // cross_entropy_partials only:
    row_stride: u32,      // elements between rows of the logits binding: `classes`, or for a
                          // vocabulary shard its own class count (`classes` is then V)
    record_block: u32,    // the row's record index of this dispatch's first block
    _pad0: u32,
    _pad1: u32,
}

// status[params.status_offset]: 0xffffffff - (global index of the first row whose target
// is out of range), kept with atomicMax so that a zero-cleared word means "none" (no host
// write needed). An array so that the word can sit at any offset of a caller's buffer.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<u32>;   // FORMAT elements
@group(0) @binding(2) var<storage, read> targets: array<u32>;
// WEIGHTED: the C class weights (padded to whole vec4s). Otherwise, for plain f32 logits,
// the logits binding again, cut to whole 16-byte units: one 16-byte load per lane per step
// (llvmpipe loads storage per lane, so 4 scalar loads cost 4 times one vec4 load).
@group(0) @binding(3) var<storage, read> aux: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> row_weight: array<f32>;
@group(0) @binding(6) var<storage, read_write> status: array<atomic<u32>>;
// Pairs of f32 bound as words, not vec2s: a caller's pairs may start at any 4-byte offset.
@group(0) @binding(7) var<storage, read_write> row_lse: array<f32>; // logits: (lse, A = Σ a_c) per row
@group(0) @binding(8) var<storage, read_write> row_argmax: array<u32>;  // ARGMAX: each row's argmax

// Element `at` of the input binding, as f32.
fn load_x(at: u32) -> f32 {
    return unpack_element(logits[element_word(at, FORMAT)], at, FORMAT);
}

// Logit `at` of the logits binding, soft-capped when SOFTCAP.
fn logit(at: u32) -> f32 {
    return soft_capped(load_x(at));
}

fn weight_of(class_index: u32) -> f32 {
    if (WEIGHTED) {
        return aux[class_index >> 2u][class_index & 3u];
    }
    return 1.0;
}

// Index of class `c` of the row whose class 0 sits at `start` (of the input, or of
// probability targets, which share its layout): classes are `inner` apart.
fn class_at(start: u32, c: u32) -> u32 {
    return start + c * params.inner;
}

// a_c without the target term of class-index targets (that one is gathered separately):
// w_c for class indices, w_c·t'_c for probability targets starting at word `row_t`.
fn coefficient(row_t: u32, class_index: u32) -> f32 {
    if (TARGET_PROBS) {
        return weight_of(class_index) * smoothed_probability(class_at(row_t, class_index));
    }
    return weight_of(class_index);
}

fn coefficients4(row_t: u32, first: u32, stride: u32) -> vec4<f32> {
    if (WEIGHTED || TARGET_PROBS) {
        return vec4(coefficient(row_t, first), coefficient(row_t, first + stride),
                    coefficient(row_t, first + 2u * stride), coefficient(row_t, first + 3u * stride));
    }
    return vec4(1.0);
}

// A lane's share of a row: its RowStats and, with ARGMAX, its best (raw) logit.
struct RowScan {
    stats: RowStats,
    best: f32,
    best_index: u32,
}

fn scan_best(scan: ptr<function, RowScan>, row_start: u32, cols: vec4<u32>, valid: vec4<bool>) {
    for (var k = 0u; k < 4u; k++) {
        if (valid[k]) {
            let x = load_x(class_at(row_start, cols[k]));
            if (argmax_before(x, cols[k], (*scan).best, (*scan).best_index)) {
                (*scan).best = x;
                (*scan).best_index = cols[k];
            }
        }
    }
}

// Logits, phase 1: each lane folds its share of columns [lo, hi) of a row into RowStats.
// The team reads 4·width consecutive logits per step; lane l takes elements l, l+width,
// l+2·width, l+3·width, so every load of the team is contiguous. `row_start` is the
// binding index of the row's column 0 (wrapping u32 arithmetic when the binding starts
// inside the row), `row_t` the same for probability targets. Strided rows (inner > 1)
// have a team of one: column c is read at class_at(row_start, c).
fn row_stats(row_start: u32, row_t: u32, lo: u32, hi: u32, lane: u32, width: u32) -> RowScan {
    let step = 4u * width;
    let full_end = hi - (hi - lo) % step;
    var scan = RowScan(stats_empty(), negative_infinity(), 0xffffffffu);
    var s = stats_empty();
    var c = lo + lane;
    if (FORMAT == 0u && !SOFTCAP && !WEIGHTED && !TARGET_PROBS && !ARGMAX && params.inner == 1u
        && ((row_start + lo) & 3u) == 0u) {
        // Aligned plain f32: lane l reads elements [k, k + 4), k = lo + 4l + j·step, as one
        // vec4 from `aux`, up to the last whole step inside aux (the rest as below).
        let in_aux = params.aux_words;
        var fast_end = full_end;
        if (row_start + full_end > in_aux) {
            fast_end = select(lo, lo + (in_aux - row_start - lo) / step * step, in_aux >= row_start + lo);
        }
        for (var k = lo + 4u * lane; k < fast_end; k += step) {
            s = stats_push4(s, aux[(row_start + k) >> 2u], vec4(1.0), vec4(true));
        }
        c = fast_end + lane;
    }
    for (; c < full_end; c += step) {
        let x = vec4(logit(class_at(row_start, c)), logit(class_at(row_start, c + width)),
                     logit(class_at(row_start, c + 2u * width)), logit(class_at(row_start, c + 3u * width)));
        s = stats_push4(s, x, coefficients4(row_t, c, width), vec4(true));
        if (ARGMAX) {
            scan_best(&scan, row_start, vec4(c, c + width, c + 2u * width, c + 3u * width), vec4(true));
        }
    }
    // The last, partial step: padding is x = -inf, a = 0 and masked out of Σ a·x.
    if (full_end < hi) {
        let cols = vec4(c, c + width, c + 2u * width, c + 3u * width);
        let valid = cols < vec4(hi);
        var x = vec4(negative_infinity());
        var a = vec4(0.0);
        for (var k = 0u; k < 4u; k++) {
            if (valid[k]) {
                x[k] = logit(class_at(row_start, cols[k]));
                a[k] = coefficient(row_t, cols[k]);
            }
        }
        s = stats_push4(s, x, a, valid);
        if (ARGMAX) {
            scan_best(&scan, row_start, cols, valid);
        }
    }
    scan.stats = s;
    return scan;
}

// lp for probabilities and log-probabilities.
fn log_prob(x: f32) -> f32 {
    if (INPUT_KIND == 1u) {
        return log_exact_sum(x, params.epsilon);
    }
    return x;
}

// Probabilities / log-probabilities: this lane's share of Σ_c a_c·lp_c.
fn row_weighted_log_probs(row_start: u32, row_t: u32, lo: u32, hi: u32, lane: u32, width: u32) -> f32 {
    var sum = 0.0;
    for (var c = lo + lane; c < hi; c += width) {
        sum += coefficient(row_t, c) * log_prob(load_x(class_at(row_start, c)));
    }
    return sum;
}

// The target column's term: its logit (logits) or log-probability (probabilities / log-probs).
fn target_term(at: u32) -> f32 {
    if (INPUT_KIND == 0u) {
        return logit(at);
    }
    return log_prob(load_x(at));
}

// Phase 3, one invocation per row: the row's loss, weight, (lse, A) and argmax from the
// row's totals. `t` is the row's class-index target (as two words; unused for probability
// targets), `term` target_term of its column (when in range).
fn finish_row(row: u32, t: vec2<u32>, stats: RowStats, weighted_sum: f32, best_index: u32, term: f32) {
    let eps = params.label_smoothing;
    let smoothing_scale = eps / f32(params.classes);
    let log_z = log(stats.exp_sum);            // lse - shift
    let shift = stats_shift(stats.row_max);
    var loss = 0.0;
    var weight = 1.0;
    var counted = TARGET_PROBS;   // not ignored (and in range)
    if (TARGET_PROBS) {
        if (INPUT_KIND == 0u) {
            loss = stats.w_sum * log_z - stats.wx_sum;
        } else {
            loss = -weighted_sum;
        }
    } else {
        weight = 0.0;
        if (!target_ignored(t)) {
            if (!target_in_range(t)) {
                // Never read out of bounds: flag the row, poison its loss.
                atomicMax(&status[params.status_offset], 0xffffffffu - (params.row_base + row));
                loss = bitcast<f32>(0x7fc00000u);
                weight = loss;
            } else {
                counted = true;
                weight = weight_of(t.x);
                var nll: f32;           // -lp_y
                var smoothing_sum: f32; // -Σ_c w_c lp_c
                if (INPUT_KIND == 0u) {
                    nll = log_z - (term - shift);
                    smoothing_sum = stats.w_sum * log_z - stats.wx_sum;
                } else {
                    nll = -term;
                    smoothing_sum = -weighted_sum;
                }
                if (SMOOTHING) {
                    loss = (1.0 - eps) * weight * nll + smoothing_scale * smoothing_sum;
                } else {
                    loss = weight * nll;
                }
            }
        }
    }
    // z-loss on every row that is not ignored.
    let lse = log_z + shift;
    if (Z_LOSS && counted) {
        loss += params.z_loss * lse * lse;
    }
    if (REDUCED) {
        partial += vec2(loss, weight);
    } else {
        row_loss[params.out_offset + row] = loss;
        row_weight[params.weight_offset + row] = weight;
    }
    if (INPUT_KIND == 0u && params.write_stats != 0u) {
        // A = Σ_c a_c: for class indices (1-ε)·w_y + ε/C·Σw, for probabilities Σ w·t'.
        var a_sum = stats.w_sum;
        if (!TARGET_PROBS) {
            a_sum = select(0.0, (1.0 - eps) * weight + smoothing_scale * stats.w_sum, counted);
            if (!SMOOTHING) {
                a_sum = select(0.0, weight, counted);
            }
        }
        row_lse[params.lse_offset + 2u * row] = lse;
        row_lse[params.lse_offset + 2u * row + 1u] = a_sum;
    }
    if (ARGMAX) {
        row_argmax[params.argmax_offset + row] = best_index;
    }
}

// A team's totals over its columns of a row: RowStats (logits), Σ a·lp (other inputs),
// and the argmax (ARGMAX).
struct TeamTotals {
    stats: RowStats,
    weighted_sum: f32,
    best: f32,
    best_index: u32,
}

fn team_totals(row_start: u32, row_t: u32, lo: u32, hi: u32, inv: TeamInvocation) -> TeamTotals {
    let lane = team_lane(inv);
    let width = team_width(inv);
    var totals = TeamTotals(stats_empty(), 0.0, negative_infinity(), 0xffffffffu);
    if (INPUT_KIND == 0u) {
        let scan = row_stats(row_start, row_t, lo, hi, lane, width);
        totals.stats = team_reduce(scan.stats, inv);
        if (ARGMAX) {
            totals.best_index = team_argmax(scan.best, scan.best_index, inv);
            if (totals.best_index != 0xffffffffu) {
                totals.best = load_x(class_at(row_start, totals.best_index));
            }
        }
    } else if (TARGET_PROBS || SMOOTHING) {
        totals.weighted_sum = team_sum2(vec2(row_weighted_log_probs(row_start, row_t, lo, hi, lane, width), 0.0), inv).x;
    }
    return totals;
}

// One whole row by its team: the totals (every lane gets them), then lane 0 finishes it.
// A strided position (inner > 1) is a row of a team of one whose classes are inner apart.
fn whole_row(row: u32, inv: TeamInvocation) {
    let first = strided_start(row, params.classes, params.inner);
    let row_start = params.logits_offset + first;
    let row_t = params.targets_offset + first;  // probability targets
    let totals = team_totals(row_start, row_t, 0u, params.classes, inv);
    if (team_lane(inv) == 0u) {
        var term = 0.0;
        var t = vec2(0u);
        if (!TARGET_PROBS) {
            t = target_words(row);
            if (target_in_range(t)) {
                term = target_term(class_at(row_start, t.x));
            }
        }
        finish_row(row, t, totals.stats, totals.weighted_sum, totals.best_index, term);
    }
}

// Tiny rows (plain f32 logits, class-index targets, C = SMALL_ROWS ≤ 32, a team of one):
// each invocation takes packs of SMALL_PACK_ROWS rows whose logits are whole vec4s, read
// from `aux` by `small_pack` (generated per C by src/gpu/small_rows.rs and prepended).
// Returns the first row left to the generic path: the rows past the last whole pack inside
// `aux`, or all of them when the logits do not start on a 16-byte boundary.
fn small_rows(first: u32, stride: u32) -> u32 {
    let per_pack = max(SMALL_PACK_ROWS * SMALL_ROWS, 1u);
    if ((params.logits_offset & 3u) != 0u || params.aux_words < params.logits_offset) {
        return 0u;
    }
    let packs = min(params.rows / SMALL_PACK_ROWS, (params.aux_words - params.logits_offset) / per_pack);
    for (var p = first; p < packs; p += stride) {
        small_pack(p);
    }
    return packs * SMALL_PACK_ROWS;
}

// Four neighbouring strided positions (row = 4·quad; plain f32 logits, inner a multiple
// of 4, the binding 16-byte aligned, all of it in `aux`): one vec4 load per class gives
// the four positions' logits (llvmpipe loads storage per lane, so this is 4× fewer loads
// than one position per invocation; a GPU coalesces either). Four classes at a time are
// transposed into each position's stats_push4, as row_stats does for one row.
fn strided_quad(quad: u32) {
    let row = 4u * quad;
    let first = params.logits_offset + strided_start(row, params.classes, params.inner);
    let at4 = first >> 2u;
    let step = params.inner >> 2u;
    var s0 = stats_empty();
    var s1 = stats_empty();
    var s2 = stats_empty();
    var s3 = stats_empty();
    for (var c = 0u; c < params.classes; c += 4u) {
        let valid = vec4(c, c + 1u, c + 2u, c + 3u) < vec4(params.classes);
        let a = select(vec4(0.0), vec4(1.0), valid);
        var x: array<vec4<f32>, 4>;
        for (var k = 0u; k < 4u; k++) {
            x[k] = vec4(negative_infinity());
            if (valid[k]) {
                x[k] = aux[at4 + (c + k) * step];
            }
        }
        s0 = stats_push4(s0, vec4(x[0].x, x[1].x, x[2].x, x[3].x), a, valid);
        s1 = stats_push4(s1, vec4(x[0].y, x[1].y, x[2].y, x[3].y), a, valid);
        s2 = stats_push4(s2, vec4(x[0].z, x[1].z, x[2].z, x[3].z), a, valid);
        s3 = stats_push4(s3, vec4(x[0].w, x[1].w, x[2].w, x[3].w), a, valid);
    }
    quad_position(row, first, s0);
    quad_position(row + 1u, first + 1u, s1);
    quad_position(row + 2u, first + 2u, s2);
    quad_position(row + 3u, first + 3u, s3);
}

// Finishes one position of strided_quad from its stats (class-index targets).
fn quad_position(row: u32, row_start: u32, stats: RowStats) {
    let t = target_words(row);
    var term = 0.0;
    if (target_in_range(t)) {
        term = target_term(class_at(row_start, t.x));
    }
    finish_row(row, t, stats, 0.0, 0xffffffffu, term);
}

@compute @workgroup_size(TEAM_GROUP_SIZE)
fn cross_entropy_rows(inv: TeamInvocation) {
    let teams = teams_in_group(inv);
    let first_team = linear_group(inv.group_id, inv.group_count) * teams + team_in_group(inv);
    let team_stride = inv.group_count.x * inv.group_count.y * teams;
    var rest = 0u;
    if (SMALL_ROWS > 0u) {
        rest = small_rows(first_team, team_stride);
    }
    if (params.quads != 0u) {
        for (var quad = first_team; quad < params.rows / 4u; quad += team_stride) {
            strided_quad(quad);
        }
        rest = params.rows / 4u * 4u;   // all of them: the host takes whole quads only
    }
    // Grid-stride over rows: correct whatever the actual subgroup size turns out to be.
    for (var row = rest + first_team; row < params.rows; row += team_stride) {
        whole_row(row, inv);
    }
    if (REDUCED && team_lane(inv) == 0u) {
        row_loss[params.out_offset + first_team] = partial.x;
        row_weight[params.weight_offset + first_team] = partial.y;
    }
}

// Split rows, pass 1: team t of the dispatch takes block t % blocks of row t / blocks
// (blocks = the blocks of this dispatch's column range) and writes a partial record of 8
// words into the row_loss binding: RowStats, the target term (0 unless the target column
// is in the block), Σ a·lp, the best value and its column.
@compute @workgroup_size(TEAM_GROUP_SIZE)
fn cross_entropy_partials(inv: TeamInvocation) {
    let teams = teams_in_group(inv);
    let first_team = linear_group(inv.group_id, inv.group_count) * teams + team_in_group(inv);
    let team_stride = inv.group_count.x * inv.group_count.y * teams;
    let blocks = (params.cols + params.block_cols - 1u) / params.block_cols;
    for (var t = first_team; t < params.rows * blocks; t += team_stride) {
        let row = t / blocks;
        let block = t % blocks;
        let lo = params.col_begin + block * params.block_cols;
        let hi = min(lo + params.block_cols, params.col_begin + params.cols);
        // Binding index of global column 0 of the row (wraps when col_begin > 0). Strided
        // positions (a slice larger than a binding): the binding starts at class col_begin
        // of the piece's first position.
        let first = strided_start(row, params.row_stride, params.inner) - params.col_begin * params.inner;
        let row_start = params.logits_offset + first;
        let row_t = params.targets_offset + first;
        let totals = team_totals(row_start, row_t, lo, hi, inv);
        if (team_lane(inv) == 0u) {
            var term = 0.0;
            if (!TARGET_PROBS) {
                let y = target_words(row);
                if (target_in_range(y) && y.x >= lo && y.x < hi) {
                    term = target_term(class_at(row_start, y.x));
                }
            }
            let at = params.out_offset + 8u * (row * params.blocks_per_row + params.record_block + block);
            let s = totals.stats;
            row_loss[at] = s.row_max;
            row_loss[at + 1u] = s.exp_sum;
            row_loss[at + 2u] = s.wx_sum;
            row_loss[at + 3u] = s.w_sum;
            row_loss[at + 4u] = term;
            row_loss[at + 5u] = totals.weighted_sum;
            row_loss[at + 6u] = totals.best;
            row_loss[at + 7u] = bitcast<f32>(totals.best_index);
        }
    }
}

// Split rows, pass 2: one invocation per row folds the row's partial records (bound as
// the logits binding, u32 words) in column order, then finishes the row. The order is
// fixed, so the result is deterministic.
@compute @workgroup_size(TEAM_GROUP_SIZE)
fn cross_entropy_merge(
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(num_workgroups) group_count: vec3<u32>,
    @builtin(local_invocation_index) index: u32,
) {
    let row = linear_group(group_id, group_count) * TEAM_GROUP_SIZE + index;
    if (row >= params.rows) {
        return;
    }
    var stats = stats_empty();
    var term = 0.0;
    var weighted_sum = 0.0;
    var best = negative_infinity();
    var best_index = 0xffffffffu;
    for (var b = 0u; b < params.blocks_per_row; b++) {
        let at = params.logits_offset + 8u * (row * params.blocks_per_row + b);
        let part = RowStats(bitcast<f32>(logits[at]), bitcast<f32>(logits[at + 1u]),
                            bitcast<f32>(logits[at + 2u]), bitcast<f32>(logits[at + 3u]));
        stats = stats_merge(stats, part);
        term += bitcast<f32>(logits[at + 4u]);
        weighted_sum += bitcast<f32>(logits[at + 5u]);
        let v = bitcast<f32>(logits[at + 6u]);
        let i = logits[at + 7u];
        if (i != 0xffffffffu && (best_index == 0xffffffffu || argmax_before(v, i, best, best_index))) {
            best = v;
            best_index = i;
        }
    }
    var t = vec2(0u);
    if (!TARGET_PROBS) {
        t = target_words(row);
    }
    finish_row(row, t, stats, weighted_sum, best_index, term);
}
