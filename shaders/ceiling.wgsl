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
    partial[lane] = acc.x + acc.y + acc.z + acc.w;
    workgroupBarrier();
    if (lane == 0u) {
        var total = 0.0;
        for (var k = 0u; k < GROUP; k++) {
            total += partial[k];
        }
        dst[group.x] = vec4(total);
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
