// team_subgroup.wgsl — one subgroup per row; lanes combine with a shuffle-xor butterfly
// (a fixed, explicit order, so results are deterministic on a device).
// Needs wgpu::Features::SUBGROUP. naga rejects `enable subgroups;`: the feature alone
// makes the builtins available.

const TEAM_GROUP_SIZE: u32 = 64u;

struct TeamInvocation {
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(num_workgroups) group_count: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) team_size: u32,
    @builtin(subgroup_id) team: u32,
    @builtin(num_subgroups) teams_per_group: u32,
}

fn team_lane(inv: TeamInvocation) -> u32 { return inv.lane; }
fn team_width(inv: TeamInvocation) -> u32 { return inv.team_size; }
fn team_in_group(inv: TeamInvocation) -> u32 { return inv.team; }
fn teams_in_group(inv: TeamInvocation) -> u32 { return inv.teams_per_group; }

fn team_reduce(stats: RowStats, inv: TeamInvocation) -> RowStats {
    var s = stats;
    for (var mask = inv.team_size / 2u; mask > 0u; mask = mask / 2u) {
        let other = RowStats(
            subgroupShuffleXor(s.row_max, mask),
            subgroupShuffleXor(s.exp_sum, mask),
            subgroupShuffleXor(s.wx_sum, mask),
            subgroupShuffleXor(s.w_sum, mask),
        );
        s = stats_merge(s, other);
    }
    return s;
}

// Sums a pair of values over the team (butterfly, fixed order; every lane gets the total).
fn team_sum2(value: vec2<f32>, inv: TeamInvocation) -> vec2<f32> {
    var v = value;
    for (var mask = inv.team_size / 2u; mask > 0u; mask = mask / 2u) {
        v = v + subgroupShuffleXor(v, mask);
    }
    return v;
}

// The team's argmax of (value, index) pairs, in argmax_before's order.
fn team_argmax(value: f32, index: u32, inv: TeamInvocation) -> u32 {
    var v = value;
    var i = index;
    for (var mask = inv.team_size / 2u; mask > 0u; mask = mask / 2u) {
        let other_v = subgroupShuffleXor(v, mask);
        let other_i = subgroupShuffleXor(i, mask);
        if (argmax_before(other_v, other_i, v, i)) {
            v = other_v;
            i = other_i;
        }
    }
    return i;
}
