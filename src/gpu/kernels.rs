//! Every kernel of the crate, named by one enum that is also the pipeline-cache key.
//!
//! Each kernel is an entry point of one shader module (`gpu::shaders`), specialised by
//! WGSL `override` constants.

use crate::api::kinds::{ElementwiseKind, InputFormat, InputKind, RowOutput, TargetWidth};
pub(crate) use crate::gpu::layouts::Layout;
pub use crate::gpu::shaders::{ShaderFamily, Team};

/// Which pass of the cross-entropy row kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowPass {
    /// One team reduces each whole row and writes its loss.
    Whole,
    /// Split rows, pass 1: one team per block of columns writes partial statistics.
    Partials,
    /// Split rows, pass 2: one invocation per row merges its blocks in order and writes the loss.
    Merge,
}

/// How the targets of a cross-entropy row kernel are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetLayout {
    /// One class index per row.
    Indices(TargetWidth),
    /// f32 probabilities `[N, C]`.
    Probabilities,
}

/// The options both cross-entropy passes are specialised on (`targets.wgsl`'s overrides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CeFlags {
    /// Target layout.
    pub targets: TargetLayout,
    /// Class weights bound.
    pub weighted: bool,
    /// Label smoothing on.
    pub smoothing: bool,
    /// What the input holds.
    pub input: InputKind,
    /// Soft-cap the logits.
    pub softcap: bool,
    /// Add the z-loss.
    pub z_loss: bool,
    /// The input's element type.
    pub format: InputFormat,
}

impl CeFlags {
    /// The override constants of `targets.wgsl`.
    fn constants(self) -> Vec<(&'static str, f64)> {
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        vec![
            (
                "TARGET_I64",
                flag(self.targets == TargetLayout::Indices(TargetWidth::I64)),
            ),
            ("TARGET_PROBS", flag(self.targets == TargetLayout::Probabilities)),
            ("WEIGHTED", flag(self.weighted)),
            ("SMOOTHING", flag(self.smoothing)),
            ("INPUT_KIND", input_kind_code(self.input)),
            ("SOFTCAP", flag(self.softcap)),
            ("Z_LOSS", flag(self.z_loss)),
            ("FORMAT", format_code(self.format)),
        ]
    }
}

/// Every compute pipeline of the crate; the pipeline-cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Cross-entropy / NLL, forward: one row loss and row weight per row.
    CrossEntropyRows {
        /// Team strategy.
        team: Team,
        /// Which pass (whole rows, or the two passes of split rows).
        pass: RowPass,
        /// The options both passes are specialised on.
        flags: CeFlags,
        /// Write each row's argmax.
        argmax: bool,
        /// Tiny rows read a pack of rows at a time with vec4 loads: the class count (≤ 32)
        /// the path is generated for, or 0.
        small_rows: u32,
        /// Whole rows of a reduced loss: one (Σ loss, Σ weight) pair per team.
        reduced: bool,
    },
    /// Pass 2 of fused cross-entropy: the gradient.
    CrossEntropyGrad {
        /// The options both passes are specialised on.
        flags: CeFlags,
        /// Overwrite the input with the gradient.
        in_place: bool,
        /// Reduction none: one upstream value per row.
        per_row_upstream: bool,
        /// One invocation per row (position): tiny rows, and the strided positions of
        /// `[N, C, d1, …]`; else a workgroup shares each row.
        per_position: bool,
    },
    /// One loss value per element.
    Elementwise {
        /// Which loss.
        loss: ElementwiseKind,
        /// Weights over the last axis bound.
        weighted: bool,
        /// `pos_weight` over the last axis bound.
        pos_weighted: bool,
        /// KL divergence with log-probability targets.
        log_target: bool,
        /// The gradient instead of the loss.
        grad: bool,
        /// Gradient of reduction none: one upstream value per element.
        per_element_upstream: bool,
        /// The input's element type.
        format: InputFormat,
        /// The loss pass writes one partial sum per invocation (a reduced loss).
        reduced: bool,
    },
    /// Softmax, log-softmax or entropy per row, or their vector-Jacobian product.
    SoftmaxRows {
        /// Team strategy.
        team: Team,
        /// What is written.
        output: RowOutput,
        /// The vector-Jacobian product with an upstream gradient instead.
        grad: bool,
        /// The input's element type.
        format: InputFormat,
    },
    /// `C [+]= op(A)·op(B) [+ bias]` (`gpu::matmul`), or column sums of A.
    Matmul {
        /// A's element type.
        a: InputFormat,
        /// B's element type.
        b: InputFormat,
        /// The bias's element type, when a bias is added.
        bias: Option<InputFormat>,
        /// Add to C instead of overwriting it.
        accumulate: bool,
        /// `column_sums` instead of the product.
        column_sums: bool,
    },
    /// Each row's weight in a cross-entropy mean, from its class-index target.
    TargetWeights {
        /// The targets' layout and whether class weights are bound (the other flags are
        /// unused: [`Kernel::target_weights`] leaves them at their defaults).
        flags: CeFlags,
    },
    /// One pass of the fixed-order pair sum.
    ReducePairs,
    /// Sum → scalar (or sum / weight sum for mean).
    Finish,
}

impl Kernel {
    pub(crate) fn layout(self) -> Layout {
        match self {
            Kernel::CrossEntropyRows { .. } => Layout::Rows,
            Kernel::ReducePairs | Kernel::Finish => Layout::Reduce,
            Kernel::Elementwise { .. } => Layout::Elementwise,
            Kernel::SoftmaxRows { .. } => Layout::Map,
            Kernel::CrossEntropyGrad { .. } => Layout::Grad,
            Kernel::Matmul { .. } => Layout::Matmul,
            Kernel::TargetWeights { .. } => Layout::TargetWeights,
        }
    }

    /// The shader family the kernel's module comes from.
    pub fn family(self) -> ShaderFamily {
        match self {
            Kernel::CrossEntropyRows { team, small_rows, .. } => ShaderFamily::CrossEntropy(team, small_rows),
            Kernel::ReducePairs | Kernel::Finish => ShaderFamily::Reduce,
            Kernel::Elementwise { .. } => ShaderFamily::Elementwise,
            Kernel::SoftmaxRows { team, .. } => ShaderFamily::Softmax(team),
            Kernel::CrossEntropyGrad { .. } => ShaderFamily::CrossEntropyGrad,
            Kernel::Matmul { .. } => ShaderFamily::Matmul,
            Kernel::TargetWeights { .. } => ShaderFamily::TargetWeights,
        }
    }

    pub(crate) fn entry_point(self) -> &'static str {
        match self {
            Kernel::CrossEntropyRows {
                pass: RowPass::Whole, ..
            } => "cross_entropy_rows",
            Kernel::CrossEntropyRows {
                pass: RowPass::Partials,
                ..
            } => "cross_entropy_partials",
            Kernel::CrossEntropyRows {
                pass: RowPass::Merge, ..
            } => "cross_entropy_merge",
            Kernel::ReducePairs => "reduce_pairs",
            Kernel::Finish => "finish",
            Kernel::Elementwise { grad: false, .. } => "elementwise_loss",
            Kernel::Elementwise { grad: true, .. } => "elementwise_grad",
            Kernel::CrossEntropyGrad {
                per_position: false, ..
            } => "cross_entropy_grad",
            Kernel::CrossEntropyGrad { per_position: true, .. } => "cross_entropy_grad_positions",
            Kernel::SoftmaxRows { .. } => "softmax_rows",
            Kernel::Matmul { column_sums: false, .. } => "matmul",
            Kernel::Matmul { column_sums: true, .. } => "column_sums",
            Kernel::TargetWeights { .. } => "target_weights",
        }
    }

    pub(crate) fn label(self) -> String {
        format!("{}.{}", self.family().label(), self.entry_point())
    }

    /// The override constants set at pipeline creation.
    pub fn constants(self) -> Vec<(&'static str, f64)> {
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        match self {
            Kernel::CrossEntropyRows {
                flags, argmax, reduced, ..
            } => {
                let mut constants = flags.constants();
                constants.push(("ARGMAX", flag(argmax)));
                constants.push(("REDUCED", flag(reduced)));
                constants
            }
            Kernel::CrossEntropyGrad {
                flags,
                in_place,
                per_row_upstream,
                ..
            } => {
                let mut constants = flags.constants();
                constants.extend([
                    ("IN_PLACE", flag(in_place)),
                    ("PER_ROW_UPSTREAM", flag(per_row_upstream)),
                ]);
                constants
            }
            Kernel::Elementwise {
                loss,
                weighted,
                pos_weighted,
                log_target,
                per_element_upstream,
                format,
                reduced,
                ..
            } => {
                vec![
                    ("REDUCED", flag(reduced)),
                    ("LOSS", elementwise_code(loss)),
                    ("FORMAT", format_code(format)),
                    ("WEIGHTED", flag(weighted)),
                    ("POS_WEIGHTED", flag(pos_weighted)),
                    ("LOG_TARGET", flag(log_target)),
                    ("PER_ELEMENT_UPSTREAM", flag(per_element_upstream)),
                ]
            }
            Kernel::SoftmaxRows {
                output, grad, format, ..
            } => {
                let code = match output {
                    RowOutput::Softmax => 0.0,
                    RowOutput::LogSoftmax => 1.0,
                    RowOutput::Entropy => 2.0,
                };
                vec![("OUTPUT", code), ("GRAD", flag(grad)), ("FORMAT", format_code(format))]
            }
            Kernel::Matmul {
                a, b, bias, accumulate, ..
            } => vec![
                ("A_FORMAT", format_code(a)),
                ("B_FORMAT", format_code(b)),
                ("BIAS_FORMAT", bias.map_or(0.0, format_code)),
                ("BIAS", flag(bias.is_some())),
                ("ACCUMULATE", flag(accumulate)),
            ],
            Kernel::TargetWeights { flags } => flags.constants(),
            Kernel::ReducePairs | Kernel::Finish => Vec::new(),
        }
    }
}

impl Kernel {
    /// The target-weights kernel for class-index targets of `width`, weighted or not (one
    /// pipeline whatever the call's other options).
    pub(crate) fn target_weights(width: TargetWidth, weighted: bool) -> Self {
        Kernel::TargetWeights {
            flags: CeFlags {
                targets: TargetLayout::Indices(width),
                weighted,
                smoothing: false,
                input: InputKind::Logits,
                softcap: false,
                z_loss: false,
                format: InputFormat::F32,
            },
        }
    }
}

/// The WGSL `LOSS` code of `elementwise.wgsl`.
fn elementwise_code(loss: ElementwiseKind) -> f64 {
    match loss {
        ElementwiseKind::Mse => 0.0,
        ElementwiseKind::Bce => 1.0,
        ElementwiseKind::BceWithLogits => 2.0,
        ElementwiseKind::KlDiv => 3.0,
    }
}

/// The WGSL `INPUT_KIND` code.
fn input_kind_code(kind: InputKind) -> f64 {
    match kind {
        InputKind::Logits => 0.0,
        InputKind::Probabilities => 1.0,
        InputKind::LogProbabilities => 2.0,
    }
}

/// The WGSL `FORMAT` code.
fn format_code(format: InputFormat) -> f64 {
    match format {
        InputFormat::F32 => 0.0,
        InputFormat::F16 => 1.0,
        InputFormat::Bf16 => 2.0,
    }
}
