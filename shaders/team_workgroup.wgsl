// team_workgroup.wgsl — one workgroup per row, for adapters without subgroups; lanes
// combine in workgroup memory with a fixed-order tree (a barrier per step).

const TEAM_GROUP_SIZE: u32 = 64u;

struct TeamInvocation {
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(num_workgroups) group_count: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
}

var<workgroup> team_scratch: array<RowStats, TEAM_GROUP_SIZE>;

// Each workgroup is one team of TEAM_GROUP_SIZE lanes.
fn team_lane(inv: TeamInvocation) -> u32 { return inv.lane; }
fn team_width(inv: TeamInvocation) -> u32 { return TEAM_GROUP_SIZE; }
fn team_in_group(inv: TeamInvocation) -> u32 { return 0u; }
fn teams_in_group(inv: TeamInvocation) -> u32 { return 1u; }

fn team_reduce(stats: RowStats, inv: TeamInvocation) -> RowStats {
    team_scratch[inv.lane] = stats;
    workgroupBarrier();
    for (var half = TEAM_GROUP_SIZE / 2u; half > 0u; half = half / 2u) {
        if (inv.lane < half) {
            team_scratch[inv.lane] = stats_merge(team_scratch[inv.lane], team_scratch[inv.lane + half]);
        }
        workgroupBarrier();
    }
    let total = team_scratch[0];
    // The next row reuses the scratch: nobody may write it before everyone has read it.
    workgroupBarrier();
    return total;
}

var<workgroup> team_pairs: array<vec2<f32>, TEAM_GROUP_SIZE>;

// Sums a pair of values over the team (fixed-order tree; every lane gets the total).
fn team_sum2(value: vec2<f32>, inv: TeamInvocation) -> vec2<f32> {
    team_pairs[inv.lane] = value;
    workgroupBarrier();
    for (var half = TEAM_GROUP_SIZE / 2u; half > 0u; half = half / 2u) {
        if (inv.lane < half) {
            team_pairs[inv.lane] = team_pairs[inv.lane] + team_pairs[inv.lane + half];
        }
        workgroupBarrier();
    }
    let total = team_pairs[0];
    workgroupBarrier();
    return total;
}

var<workgroup> team_best: array<vec2<u32>, TEAM_GROUP_SIZE>;

// The team's argmax of (value, index) pairs, in argmax_before's order.
fn team_argmax(value: f32, index: u32, inv: TeamInvocation) -> u32 {
    team_best[inv.lane] = vec2(bitcast<u32>(value), index);
    workgroupBarrier();
    for (var half = TEAM_GROUP_SIZE / 2u; half > 0u; half = half / 2u) {
        if (inv.lane < half) {
            let a = team_best[inv.lane];
            let b = team_best[inv.lane + half];
            if (argmax_before(bitcast<f32>(b.x), b.y, bitcast<f32>(a.x), a.y)) {
                team_best[inv.lane] = b;
            }
        }
        workgroupBarrier();
    }
    let best = team_best[0].y;
    workgroupBarrier();
    return best;
}
