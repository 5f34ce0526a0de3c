// ceiling.wgsl — the adapter's own limits, for the bench to compare every kernel with: a
// streaming read (vec4 loads, summed, one value written per workgroup) and a copy (vec4
// loads and stores). No math beyond the sum; grid-stride loops, so any launch shape covers
// the whole buffer. UNROLL consecutive vec4s per invocation per step: 1 is the textbook
// pattern, 4 what llvmpipe reads fastest (its loads are per lane, so more independent
// loads per step hide more); the host takes the best of both.

const GROUP: u32 = 64u;
override UNROLL: u32 = 1u;

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;

var<workgroup> partial: array<f32, GROUP>;

@compute @workgroup_size(GROUP)
fn read_sum(
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let count = arrayLength(&src) / UNROLL;
    let stride = groups.x * GROUP;
    var acc = vec4(0.0);
    for (var i = group.x * GROUP + lane; i < count; i += stride) {
        for (var k = 0u; k < UNROLL; k++) {
            acc += src[i * UNROLL + k];
        }
    }
    write_group_sum(lane, group.x, acc);
}

// One value per workgroup: the sum of its invocations' `acc` (keeps the loads alive).
fn write_group_sum(lane: u32, group: u32, acc: vec4<f32>) {
    partial[lane] = acc.x + acc.y + acc.z + acc.w;
    workgroupBarrier();
    if (lane == 0u) {
        var total = 0.0;
        for (var k = 0u; k < GROUP; k++) {
            total += partial[k];
        }
        dst[group] = vec4(total);
    }
}

@compute @workgroup_size(GROUP)
fn copy(
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let count = min(arrayLength(&src), arrayLength(&dst)) / UNROLL;
    let stride = groups.x * GROUP;
    for (var i = group.x * GROUP + lane; i < count; i += stride) {
        for (var k = 0u; k < UNROLL; k++) {
            dst[i * UNROLL + k] = src[i * UNROLL + k];
        }
    }
}

// A loss's loads over [ROWS, CLASSES] f32 rows and nothing else (no exp, no log): teams of
// TEAM lanes take rows in turn and read them as the loss kernels do: whole vec4s when rows
// start on 16 bytes (CLASSES % 4 == 0), else scalars; TEAM = 1 reads packs of rows that
// make whole vec4s, as the tiny-row path does. Below its ceiling a loss whose loads-only
// twin is near it is bound by its math; one whose twin is below it too, by the pattern.
override ROWS: u32 = 0u;
override CLASSES: u32 = 1u;
override TEAM: u32 = 1u;

@compute @workgroup_size(GROUP)
fn rows_read(
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let teams = groups.x * GROUP / TEAM;
    let team = (group.x * GROUP + lane) / TEAM;
    let k0 = lane % TEAM;
    var acc = vec4(0.0);
    if (TEAM == 1u) {
        let pack = select(select(4u, 2u, (CLASSES & 1u) == 0u), 1u, (CLASSES & 3u) == 0u);
        let units = CLASSES * pack / 4u;
        for (var p = team; p < ROWS / pack; p += teams) {
            for (var k = 0u; k < units; k++) {
                acc += src[p * units + k];
            }
        }
    } else if ((CLASSES & 3u) == 0u) {
        for (var row = team; row < ROWS; row += teams) {
            for (var k = k0; k < CLASSES / 4u; k += TEAM) {
                acc += src[row * (CLASSES / 4u) + k];
            }
        }
    } else {
        for (var row = team; row < ROWS; row += teams) {
            for (var c = k0; c < CLASSES; c += TEAM) {
                let i = row * CLASSES + c;
                acc.x += src[i >> 2u][i & 3u];
            }
        }
    }
    write_group_sum(lane, group.x, acc);
}

// The adapter's rate of one function (FUNCTION 0: exp, 1: log, 2: a multiply-add, the
// matmul's step): STEPS steps of four independent vec4 calls per invocation on values in
// registers (16 calls a step), no loads. x -> exp(x) - 1.5 stays near -1.2, x -> log(x) +
// 2 near 3.1, and x -> x·(1 - 2^-10) + 2^-10 near 1.
override STEPS: u32 = 256u;
override FUNCTION: u32 = 0u;

fn step(x: vec4<f32>) -> vec4<f32> {
    if (FUNCTION == 0u) {
        return exp(x) - 1.5;
    }
    if (FUNCTION == 2u) {
        return x * 0.9990234375 + 0.0009765625;
    }
    return log(x) + 2.0;
}

@compute @workgroup_size(GROUP)
fn math_rate(
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) group: vec3<u32>,
) {
    var a = vec4(1.0 + 1e-3 * f32(lane), 1.5, 2.0, 2.5) - 2.5 * f32(FUNCTION == 0u);
    var b = a + 0.1;
    var c = a + 0.2;
    var d = a + 0.3;
    if (STEPS == 0u) {
        a += src[0];   // the layout has the read binding too (never runs)
    }
    for (var s = 0u; s < STEPS; s++) {
        a = step(a);
        b = step(b);
        c = step(c);
        d = step(d);
    }
    write_group_sum(lane, group.x, a + b + c + d);
}
