// matmul.wgsl — the one matrix product of the crate, shared by the fused linear
// cross-entropy's forward (logits = h·Wᵀ + b) and backward (∂h = G·W, ∂W = Gᵀ·h), and
// column sums (∂b = Σ_n G[n]). Prepended: prelude.wgsl (element decoding).
//
//   C[i, j] = [C[i, j] +] Σ_k A(i, k)·B(k, j) [+ bias[j]]     for i < m, j < n
//
// with A(i, k) = a[a_offset + i·a_row + k·a_depth] and B(k, j) = b[b_offset + k·b_depth +
// j·b_col]: the strides say which operand is transposed, so one kernel serves every
// product. A workgroup of 8×8 invocations owns a 64×64 tile of C; each invocation an 8×8
// block in registers (16 vec4 accumulators). Phase 1 stages a 64×16 tile of A (stored
// k-major, so that four rows of one k are one vec4) and a 16×64 tile of B in workgroup
// memory, decoded to f32, zero outside the matrix; phase 2 accumulates the 16 depth steps
// with two vec4 loads of each; then the next depth tile. On lavapipe this layout ran 3.3×
// faster than 32×32 tiles of 4×4 blocks with scalar loads of A (2.3 → 7.7 GFLOP/s at
// 1024×32000×128; docs/NOTES.md). Each C element sums its k in ascending order, in f32,
// whatever the launch shape: results are bit-identical from run to run.

override A_FORMAT: u32 = 0u;    // A's element type: 0 f32, 1 f16, 2 bf16
override B_FORMAT: u32 = 0u;    // B's element type
override BIAS_FORMAT: u32 = 0u; // the bias's element type (BIAS)
override BIAS: bool = false;    // add bias[j] to every C[i, j]
override ACCUMULATE: bool = false; // add to C instead of overwriting it

const TILE: u32 = 64u;     // C tile side: 8 rows × 8 columns per invocation
const DEPTH: u32 = 16u;    // k per staged tile
const LANES: u32 = 64u;    // 8 × 8 invocations

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    a_offset: u32,   // element offsets inside each binding
    a_row: u32,      // A's stride along i
    a_depth: u32,    // A's stride along k
    b_offset: u32,
    b_depth: u32,    // B's stride along k
    b_col: u32,      // B's stride along j
    c_offset: u32,
    c_row: u32,      // C's stride along i (1 along j)
    bias_offset: u32,
}

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<u32>;     // A_FORMAT elements
@group(0) @binding(2) var<storage, read> b: array<u32>;     // B_FORMAT elements
@group(0) @binding(3) var<storage, read> bias: array<u32>;  // BIAS_FORMAT elements
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

var<workgroup> a_tile: array<vec4<f32>, 256>;   // [DEPTH][TILE / 4]: four rows of one k a vec4
var<workgroup> b_tile: array<vec4<f32>, 256>;   // [DEPTH][TILE / 4]

fn load_a(i: u32, k: u32) -> f32 {
    if (i >= params.m || k >= params.k) {
        return 0.0;
    }
    let at = params.a_offset + i * params.a_row + k * params.a_depth;
    return unpack_element(a[element_word(at, A_FORMAT)], at, A_FORMAT);
}

fn load_b(k: u32, j: u32) -> f32 {
    if (k >= params.k || j >= params.n) {
        return 0.0;
    }
    let at = params.b_offset + k * params.b_depth + j * params.b_col;
    return unpack_element(b[element_word(at, B_FORMAT)], at, B_FORMAT);
}

@compute @workgroup_size(8, 8)
fn matmul(
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) group: vec3<u32>,
) {
    let i0 = group.y * TILE;
    let j0 = group.x * TILE;
    var acc: array<vec4<f32>, 8>;    // columns 0..3 of the invocation's 8 rows
    var acc2: array<vec4<f32>, 8>;   // columns 4..7
    for (var r = 0u; r < 8u; r++) {
        acc[r] = vec4(0.0);
        acc2[r] = vec4(0.0);
    }
    for (var k0 = 0u; k0 < params.k; k0 += DEPTH) {
        // Phase 1: stage the tiles, neighbouring lanes on the operand's contiguous axis
        // (a uniform choice: the strides are the same for every lane).
        for (var e = lane; e < TILE * DEPTH; e += LANES) {
            var i = e / DEPTH;
            var k = e % DEPTH;
            if (params.a_depth != 1u) {
                i = e % TILE;
                k = e / TILE;
            }
            a_tile[k * (TILE / 4u) + i / 4u][i % 4u] = load_a(i0 + i, k0 + k);
        }
        for (var e = lane; e < TILE * DEPTH / 4u; e += LANES) {
            let k = e / (TILE / 4u);
            let j = (e % (TILE / 4u)) * 4u;
            b_tile[e] = vec4(
                load_b(k0 + k, j0 + j),
                load_b(k0 + k, j0 + j + 1u),
                load_b(k0 + k, j0 + j + 2u),
                load_b(k0 + k, j0 + j + 3u),
            );
        }
        workgroupBarrier();
        // Phase 2: this invocation's 8×8 block, k in ascending order.
        for (var k = 0u; k < DEPTH; k++) {
            let bk = b_tile[k * (TILE / 4u) + local.x * 2u];
            let bk2 = b_tile[k * (TILE / 4u) + local.x * 2u + 1u];
            let ak = a_tile[k * (TILE / 4u) + local.y * 2u];
            let ak2 = a_tile[k * (TILE / 4u) + local.y * 2u + 1u];
            acc[0] += ak.x * bk;
            acc[1] += ak.y * bk;
            acc[2] += ak.z * bk;
            acc[3] += ak.w * bk;
            acc[4] += ak2.x * bk;
            acc[5] += ak2.y * bk;
            acc[6] += ak2.z * bk;
            acc[7] += ak2.w * bk;
            acc2[0] += ak.x * bk2;
            acc2[1] += ak.y * bk2;
            acc2[2] += ak.z * bk2;
            acc2[3] += ak.w * bk2;
            acc2[4] += ak2.x * bk2;
            acc2[5] += ak2.y * bk2;
            acc2[6] += ak2.z * bk2;
            acc2[7] += ak2.w * bk2;
        }
        workgroupBarrier();
    }
    // Phase 3: write the block (plus C's old value, plus the bias), inside the matrix only.
    for (var r = 0u; r < 8u; r++) {
        let i = i0 + local.y * 8u + r;
        if (i >= params.m) {
            break;
        }
        for (var q = 0u; q < 8u; q++) {
            let j = j0 + local.x * 8u + q;
            if (j >= params.n) {
                break;
            }
            let at = params.c_offset + i * params.c_row + j;
            var value = select(acc2[r][q & 3u], acc[r][q & 3u], q < 4u);
            if (BIAS) {
                let bat = params.bias_offset + j;
                value += unpack_element(bias[element_word(bat, BIAS_FORMAT)], bat, BIAS_FORMAT);
            }
            if (ACCUMULATE) {
                value = c[at] + value;
            }
            c[at] = value;
        }
    }
}

// C[0, j] = [C[0, j] +] Σ_{i < m} A(i, j) for j < n (∂b = Σ_n G[n]): one invocation per
// column, rows in ascending order. A's strides: a_row along i, a_depth along j.
@compute @workgroup_size(64)
fn column_sums(
    @builtin(global_invocation_id) id: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let j = linear_invocation(id, groups, 64u);
    if (j >= params.n) {
        return;
    }
    var sum = 0.0;
    for (var i = 0u; i < params.m; i++) {
        let at = params.a_offset + i * params.a_row + j * params.a_depth;
        sum += unpack_element(a[element_word(at, A_FORMAT)], at, A_FORMAT);
    }
    let out = params.c_offset + j;
    if (ACCUMULATE) {
        sum = c[out] + sum;
    }
    c[out] = sum;
}
