//! The shader modules of the crate: one `.wgsl` file per kernel family under `shaders/`,
//! with the prelude (online max/sum merge, row indexing, element decoding) and, for row
//! kernels, one team-reduction strategy prepended at pipeline creation.

const PRELUDE: &str = include_str!("../../shaders/prelude.wgsl");
const TEAM_SUBGROUP: &str = include_str!("../../shaders/team_subgroup.wgsl");
const TEAM_WORKGROUP: &str = include_str!("../../shaders/team_workgroup.wgsl");
const TEAM_INVOCATION: &str = include_str!("../../shaders/team_invocation.wgsl");
const TARGETS: &str = include_str!("../../shaders/targets.wgsl");
const CROSS_ENTROPY: &str = include_str!("../../shaders/cross_entropy.wgsl");
const REDUCE: &str = include_str!("../../shaders/reduce.wgsl");
const ELEMENTWISE: &str = include_str!("../../shaders/elementwise.wgsl");
const SOFTMAX: &str = include_str!("../../shaders/softmax.wgsl");
const CROSS_ENTROPY_GRAD: &str = include_str!("../../shaders/cross_entropy_grad.wgsl");
const MATMUL: &str = include_str!("../../shaders/matmul.wgsl");
const TARGET_WEIGHTS: &str = include_str!("../../shaders/target_weights.wgsl");

/// How the invocations of one row (a "team") combine their partial results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Team {
    /// One subgroup per row, combined with a `subgroupShuffleXor` butterfly.
    Subgroup,
    /// One workgroup per row, combined with a tree in workgroup memory.
    Workgroup,
    /// One invocation per row: nothing to combine (tiny rows).
    Invocation,
}

impl Team {
    fn source(self) -> &'static str {
        match self {
            Team::Subgroup => TEAM_SUBGROUP,
            Team::Workgroup => TEAM_WORKGROUP,
            Team::Invocation => TEAM_INVOCATION,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Team::Subgroup => "subgroup",
            Team::Workgroup => "workgroup",
            Team::Invocation => "invocation",
        }
    }
}

/// A shader module: one kernel family with its prepended parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShaderFamily {
    /// `cross_entropy.wgsl` with the given team strategy and the tiny-row path generated for
    /// that many classes (0: none; `small_rows.rs`).
    CrossEntropy(Team, u32),
    /// `reduce.wgsl`: the fixed-order batch sum.
    Reduce,
    /// `elementwise.wgsl`: MSE, BCE, BCE with logits, KL divergence.
    Elementwise,
    /// `softmax.wgsl` with the given team strategy: softmax, log-softmax, entropy.
    Softmax(Team),
    /// `cross_entropy_grad.wgsl`: pass 2 of fused cross-entropy.
    CrossEntropyGrad,
    /// `matmul.wgsl`: the matrix product and column sums.
    Matmul,
    /// `target_weights.wgsl`: each row's weight in a mean from its target.
    TargetWeights,
}

impl ShaderFamily {
    /// Every family, for validation.
    #[cfg(test)]
    pub const ALL: [ShaderFamily; 11] = [
        ShaderFamily::CrossEntropyGrad,
        ShaderFamily::Matmul,
        ShaderFamily::TargetWeights,
        ShaderFamily::CrossEntropy(Team::Subgroup, 0),
        ShaderFamily::CrossEntropy(Team::Workgroup, 0),
        ShaderFamily::CrossEntropy(Team::Invocation, 10),
        ShaderFamily::Reduce,
        ShaderFamily::Elementwise,
        ShaderFamily::Softmax(Team::Subgroup),
        ShaderFamily::Softmax(Team::Workgroup),
        ShaderFamily::Softmax(Team::Invocation),
    ];

    /// The label of the module ("cross_entropy.subgroup").
    pub fn label(self) -> String {
        match self {
            ShaderFamily::CrossEntropy(team, 0) => format!("cross_entropy.{}", team.name()),
            ShaderFamily::CrossEntropy(team, classes) => format!("cross_entropy.{}.c{classes}", team.name()),
            ShaderFamily::Reduce => "reduce".into(),
            ShaderFamily::Elementwise => "elementwise".into(),
            ShaderFamily::Softmax(team) => format!("softmax.{}", team.name()),
            ShaderFamily::CrossEntropyGrad => "cross_entropy_grad".into(),
            ShaderFamily::Matmul => "matmul".into(),
            ShaderFamily::TargetWeights => "target_weights".into(),
        }
    }

    /// Whether the module uses subgroup operations (needs `wgpu::Features::SUBGROUP`).
    #[cfg(test)]
    pub fn needs_subgroups(self) -> bool {
        matches!(
            self,
            ShaderFamily::CrossEntropy(Team::Subgroup, _) | ShaderFamily::Softmax(Team::Subgroup)
        )
    }

    /// The full WGSL source as compiled: prelude, strategy, family.
    pub fn source(self) -> String {
        let small;
        let parts: &[&str] = match self {
            ShaderFamily::CrossEntropy(team, classes) => {
                small = crate::gpu::small_rows::source(classes);
                &[PRELUDE, TARGETS, team.source(), &small, CROSS_ENTROPY]
            }
            ShaderFamily::Reduce => &[PRELUDE, REDUCE],
            ShaderFamily::Elementwise => &[PRELUDE, ELEMENTWISE],
            ShaderFamily::Softmax(team) => &[PRELUDE, team.source(), SOFTMAX],
            ShaderFamily::CrossEntropyGrad => &[PRELUDE, TARGETS, CROSS_ENTROPY_GRAD],
            ShaderFamily::Matmul => &[PRELUDE, MATMUL],
            ShaderFamily::TargetWeights => &[PRELUDE, TARGETS, TARGET_WEIGHTS],
        };
        parts.join("\n")
    }
}
