//! The row-kernel strategies the plan chooses from (a leaf: the context stores a forced one).

/// A row-kernel strategy. Force one with [`crate::GpuContext::with_strategy`]; by default the
/// plan picks from the shape and the adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// One invocation per row (tiny C): no cross-lane combining at all.
    InvocationPerRow,
    /// One subgroup per row, combined with shuffles (medium C). Needs `SUBGROUP`; without
    /// it the plan falls back to `WorkgroupPerRow`.
    SubgroupPerRow,
    /// One workgroup per row, combined in workgroup memory (large C).
    WorkgroupPerRow,
    /// Several workgroups per row, each over a block of columns, whose partial statistics
    /// are merged per row in a second pass (small N, huge C; rows larger than a binding).
    /// Cross-entropy / NLL only: the softmax family uses the whole-row plan instead.
    SplitRow,
}
