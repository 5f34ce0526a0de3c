// team_invocation.wgsl — one invocation per row, for tiny rows (a handful of classes):
// no lanes to combine, no barriers, no shuffles; each invocation reads its own row's
// consecutive elements and the 64 rows of a workgroup are processed side by side.

const TEAM_GROUP_SIZE: u32 = 64u;

struct TeamInvocation {
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(num_workgroups) group_count: vec3<u32>,
    @builtin(local_invocation_index) index: u32,
}

// Every invocation is a team of one.
fn team_lane(inv: TeamInvocation) -> u32 { return 0u; }
fn team_width(inv: TeamInvocation) -> u32 { return 1u; }
fn team_in_group(inv: TeamInvocation) -> u32 { return inv.index; }
fn teams_in_group(inv: TeamInvocation) -> u32 { return TEAM_GROUP_SIZE; }

fn team_reduce(stats: RowStats, inv: TeamInvocation) -> RowStats { return stats; }
fn team_sum2(value: vec2<f32>, inv: TeamInvocation) -> vec2<f32> { return value; }
fn team_argmax(value: f32, index: u32, inv: TeamInvocation) -> u32 { return index; }
