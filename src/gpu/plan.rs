//! How the row kernels map rows onto the device: the one place that chooses a strategy
//! from the shape and the adapter.
//!
//! | strategy             | rows per workgroup | when (auto)                                              |
//! |----------------------|--------------------|----------------------------------------------------------|
//! | `InvocationPerRow`   | 64                 | tiny rows (C ≤ 16; C ≤ 1024 on a CPU adapter)            |
//! | `SubgroupPerRow`     | 64 / subgroup size | medium rows; every row on a CPU adapter (no barriers)    |
//! | `WorkgroupPerRow`    | 1                  | large rows (C ≥ 4096) on a GPU, or no `SUBGROUP` feature |
//! | `SplitRow`           | a block of a row   | few rows of many classes, or a row larger than a binding |
//!
//! `SplitRow` is two passes: one team per block of columns writes partial `(max, exp-sum,
//! …)` statistics, then one invocation per row merges its blocks in column order (a fixed
//! order: results are deterministic) and writes the row's loss.

use crate::gpu::context::GpuContext;
use crate::gpu::kernels::Team;
pub use crate::gpu::strategy::Strategy;

/// Classes at or below which one invocation takes a whole row on a GPU (its loads are not
/// coalesced across a subgroup, so only tiny rows gain).
const TINY_ROW: u64 = 16;
/// The same on a CPU adapter (llvmpipe): each SIMD lane walking its own row beats lanes
/// sharing a row up to ~1024 classes (measured: 3.6 vs 3.4 GB/s at 8192×1024, 2.7 vs 1.0
/// GB/s at 65536×128, 1.2 vs 0.2 GB/s at 4M×10).
const TINY_ROW_CPU: u64 = 1024;
/// Classes from which a GPU gives each row a whole workgroup.
const LARGE_ROW: u64 = 4096;
/// Columns per block of a split row (a multiple of every team's step of 4 × width).
pub(crate) const SPLIT_BLOCK: u64 = 16384;

/// Bytes of one partial record of a split row (8 words; see `cross_entropy_partials`).
pub(crate) const PARTIAL_BYTES: u64 = 32;

/// Workgroups per dispatch on a CPU adapter: enough to balance a few cores.
const CPU_GROUPS: u64 = 256;

/// The smallest block (a lowered binding limit): 4 × the widest team.
const MIN_BLOCK: u64 = 4 * TEAM_GROUP_SIZE as u64;

/// The chosen strategy of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The strategy (after falling back where the device lacks a feature).
    pub strategy: Strategy,
    /// The team of the row kernel (of the partials pass when split).
    pub team: Team,
    /// Rows (teams) one workgroup of the row kernel covers.
    pub teams_per_group: u64,
    /// Columns per block when split.
    pub block: u64,
    /// The most workgroups one dispatch of the row kernel gets; teams then loop over rows
    /// (grid-stride). A CPU adapter pays a fixed cost per workgroup (a coroutine start on
    /// llvmpipe), so it gets a few hundred; a GPU gets one team per row.
    pub max_groups: u64,
    /// The device's workgroups per grid dimension (a launch is x × y of them).
    pub per_dim: u64,
}

/// Invocations per workgroup of every team kernel (TEAM_GROUP_SIZE in WGSL).
pub(crate) const TEAM_GROUP_SIZE: u32 = 64;

impl Plan {
    /// The plan for `rows` × `classes` on `ctx`. `split_ok` says whether the kernel has a
    /// split form (cross-entropy does; the softmax family does not).
    pub(crate) fn choose(ctx: &GpuContext, rows: u64, classes: u64, split_ok: bool) -> Plan {
        let strategy = match ctx.forced_strategy() {
            Some(Strategy::SplitRow) if !split_ok => auto(ctx, rows, classes, false),
            Some(forced) => forced,
            None => auto(ctx, rows, classes, split_ok),
        };
        Self::of(ctx, strategy)
    }

    /// One invocation per row, whatever the shape (strided rows: neighbouring invocations
    /// read neighbouring addresses).
    pub(crate) fn invocation_per_row(ctx: &GpuContext) -> Plan {
        Self::of(ctx, Strategy::InvocationPerRow)
    }

    /// Strided positions (`[N, C, d1, …]`) whose outer slice of `classes` × `inner`
    /// elements is larger than a binding: one invocation per position and block of classes
    /// writes a partial record, then one per position merges them in class order. A block
    /// is as many classes as fit one binding beside a run of positions (`tiler::pieces`).
    pub(crate) fn strided_split(ctx: &GpuContext, classes: u64, inner: u64) -> Plan {
        let fit = crate::gpu::window::binding_elements(ctx);
        let run = inner.min(fit / 2).max(1);
        Plan {
            strategy: Strategy::SplitRow,
            team: Team::Invocation,
            teams_per_group: u64::from(TEAM_GROUP_SIZE),
            block: (fit.saturating_sub(run) / inner.max(1) + 1).clamp(1, classes.max(1)),
            ..Self::of(ctx, Strategy::InvocationPerRow)
        }
    }

    /// A vocabulary shard of `cols` classes (`losses::cross_entropy::shard`): split rows
    /// whose one block is the shard's whole column range, so that each row has one partial
    /// record (the shard's), which the merge step combines across shards and the finish
    /// step reads back as a row's only block.
    pub(crate) fn shard(ctx: &GpuContext, cols: u64) -> Plan {
        Plan {
            strategy: Strategy::SplitRow,
            block: cols.max(1),
            ..Self::of(ctx, Strategy::SplitRow)
        }
    }

    /// The team and group shape of `strategy` on `ctx`.
    fn of(ctx: &GpuContext, strategy: Strategy) -> Plan {
        let (team, teams_per_group) = match strategy {
            Strategy::InvocationPerRow => (Team::Invocation, u64::from(TEAM_GROUP_SIZE)),
            Strategy::WorkgroupPerRow => (Team::Workgroup, 1),
            Strategy::SubgroupPerRow | Strategy::SplitRow => subgroup_or_workgroup(ctx),
        };
        let strategy = match (strategy, team) {
            (Strategy::SubgroupPerRow, Team::Workgroup) => Strategy::WorkgroupPerRow,
            (s, _) => s,
        };
        // Blocks shrink (by halves, to 256 columns) when a binding is smaller than two.
        let fit = crate::gpu::window::items_per_binding(ctx, 4);
        let mut block = SPLIT_BLOCK;
        while block > MIN_BLOCK && 2 * block > fit {
            block /= 2;
        }
        let max_groups = if ctx.info.device_type == wgpu::DeviceType::Cpu {
            CPU_GROUPS
        } else {
            u64::MAX
        };
        Plan {
            strategy,
            team,
            teams_per_group,
            block,
            max_groups,
            per_dim: u64::from(ctx.limits.max_compute_workgroups_per_dimension).max(1),
        }
    }

    /// The workgroups a launch of at least `groups` dispatches (`KernelPass::launch`: a
    /// 2-D grid, x up to the per-dimension limit, y rounded up). Kernels that write one
    /// value per team (REDUCED) size their output by this, so that no team of the grid
    /// writes past it (a clamped out-of-bounds write would race with the last team's).
    pub(crate) fn grid_groups(&self, groups: u64) -> u64 {
        let x = groups.clamp(1, self.per_dim);
        x * groups.max(1).div_ceil(x)
    }

    /// Lanes in one team: 1 (a row per invocation), the subgroup's, or the workgroup's.
    pub(crate) fn team_width(&self) -> u32 {
        TEAM_GROUP_SIZE / self.teams_per_group as u32
    }

    /// Whether rows are split into blocks (two passes).
    pub(crate) fn split(&self) -> bool {
        self.strategy == Strategy::SplitRow
    }
}

/// One subgroup per row where the device has subgroups no wider than a workgroup (a wider
/// one would leave butterfly partners outside it), else one workgroup.
fn subgroup_or_workgroup(ctx: &GpuContext) -> (Team, u64) {
    let widest = ctx.info.subgroup_max_size.max(1);
    if ctx.subgroups && widest <= TEAM_GROUP_SIZE {
        (Team::Subgroup, u64::from(TEAM_GROUP_SIZE / widest))
    } else {
        (Team::Workgroup, 1)
    }
}

/// The default choice from the shape and the adapter.
fn auto(ctx: &GpuContext, rows: u64, classes: u64, split_ok: bool) -> Strategy {
    let row_bytes = classes * 4;
    if split_ok && row_bytes > ctx.max_binding_bytes() / 2 {
        return Strategy::SplitRow;
    }
    // Enough independent rows to fill the device? A CPU adapter has a few cores; a GPU
    // wants thousands of teams in flight.
    let cpu = ctx.info.device_type == wgpu::DeviceType::Cpu;
    let wanted_teams: u64 = if cpu { 64 } else { 4096 };
    if split_ok && classes >= 4 * SPLIT_BLOCK && rows < wanted_teams {
        return Strategy::SplitRow;
    }
    if classes <= if cpu { TINY_ROW_CPU } else { TINY_ROW } {
        return Strategy::InvocationPerRow;
    }
    // llvmpipe turns every workgroup barrier into a coroutine switch: subgroups only there.
    if classes >= LARGE_ROW && !cpu {
        return Strategy::WorkgroupPerRow;
    }
    Strategy::SubgroupPerRow
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_groups_are_what_a_launch_dispatches() {
        let plan = Plan {
            strategy: Strategy::InvocationPerRow,
            team: Team::Invocation,
            teams_per_group: 64,
            block: SPLIT_BLOCK,
            max_groups: u64::MAX,
            per_dim: 65535,
        };
        for groups in [1, 65535, 65536, 78125, 131070, 1 << 20] {
            let grid = plan.grid_groups(groups);
            let x = grid.min(plan.per_dim);
            assert!(
                grid >= groups && grid.is_multiple_of(x) && grid / x <= plan.per_dim,
                "{groups}"
            );
            assert_eq!(
                plan.grid_groups(grid),
                grid,
                "{groups}: a launch of the grid is the grid"
            );
        }
        assert_eq!(plan.grid_groups(78125), 131070);
    }

    #[test]
    fn split_blocks_are_whole_team_steps() {
        // Every team reads 4 × width consecutive columns per step; a block boundary must
        // not fall inside a step (width ≤ TEAM_GROUP_SIZE).
        assert_eq!(SPLIT_BLOCK % (4 * u64::from(TEAM_GROUP_SIZE)), 0);
        assert_eq!(SPLIT_BLOCK % MIN_BLOCK, 0);
        assert!(MIN_BLOCK.is_power_of_two() && SPLIT_BLOCK.is_power_of_two());
    }
}
