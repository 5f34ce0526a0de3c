//! Every kernel of the crate, named by one enum that is also the pipeline-cache key.
//!
//! A kernel family is one `.wgsl` file under `shaders/`; the prelude (online max/sum
//! merge, row indexing) and, for row kernels, one team-reduction strategy are prepended
//! at pipeline creation. Specialisation is by WGSL `override` constants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{LossError, Result};

const PRELUDE: &str = include_str!("../shaders/prelude.wgsl");
const TEAM_SUBGROUP: &str = include_str!("../shaders/team_subgroup.wgsl");
const TEAM_WORKGROUP: &str = include_str!("../shaders/team_workgroup.wgsl");
const TEAM_INVOCATION: &str = include_str!("../shaders/team_invocation.wgsl");
const CROSS_ENTROPY: &str = include_str!("../shaders/cross_entropy.wgsl");
const REDUCE: &str = include_str!("../shaders/reduce.wgsl");
const ELEMENTWISE: &str = include_str!("../shaders/elementwise.wgsl");
const SOFTMAX: &str = include_str!("../shaders/softmax.wgsl");
const CROSS_ENTROPY_GRAD: &str = include_str!("../shaders/cross_entropy_grad.wgsl");

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
    /// Every team strategy.
    pub const ALL: [Team; 3] = [Team::Subgroup, Team::Workgroup, Team::Invocation];

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

/// The width of a class-index target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetWidth {
    /// `i32` targets, one `u32` word each.
    I32,
    /// `i64` targets, two `u32` words each (little-endian).
    I64,
}

impl TargetWidth {
    /// Bytes per target.
    pub fn bytes(self) -> u64 {
        match self {
            TargetWidth::I32 => 4,
            TargetWidth::I64 => 8,
        }
    }
}

/// How the targets of a cross-entropy row kernel are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetLayout {
    /// One class index per row.
    Indices(TargetWidth),
    /// f32 probabilities `[N, C]`.
    Probabilities,
}

/// What the input of cross-entropy holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InputKind {
    /// Unnormalised scores; the softmax is taken (`F.cross_entropy`).
    #[default]
    Logits,
    /// Probabilities `p`; the log is taken of `p + epsilon` (the seeds' `-Σ t log(y + 1e-7)`).
    Probabilities,
    /// Log-probabilities, used as they are (`F.nll_loss`).
    LogProbabilities,
}

impl InputKind {
    fn code(self) -> f64 {
        match self {
            InputKind::Logits => 0.0,
            InputKind::Probabilities => 1.0,
            InputKind::LogProbabilities => 2.0,
        }
    }
}

/// The element type of an input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InputFormat {
    /// 32-bit floats.
    #[default]
    F32,
    /// IEEE half precision (decoded from its bits in WGSL: no `SHADER_F16` needed).
    F16,
    /// bfloat16 (the high half of an f32).
    Bf16,
}

impl InputFormat {
    /// Bytes per element.
    pub fn bytes(self) -> u64 {
        match self {
            InputFormat::F32 => 4,
            InputFormat::F16 | InputFormat::Bf16 => 2,
        }
    }

    fn code(self) -> f64 {
        match self {
            InputFormat::F32 => 0.0,
            InputFormat::F16 => 1.0,
            InputFormat::Bf16 => 2.0,
        }
    }
}

/// The losses of `elementwise.wgsl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementwiseKind {
    /// `(x - y)²`.
    Mse,
    /// Binary cross-entropy on probabilities.
    Bce,
    /// Binary cross-entropy on logits.
    BceWithLogits,
    /// KL divergence, input log-probabilities.
    KlDiv,
}

/// What `softmax.wgsl` writes per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowOutput {
    /// `softmax(x)`, `[N, C]`.
    Softmax,
    /// `log_softmax(x)`, `[N, C]`.
    LogSoftmax,
    /// The entropy of `softmax(x)`, `[N]`.
    Entropy,
}

/// A shader module: one kernel family with its prepended parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShaderFamily {
    /// `cross_entropy.wgsl` with the given team strategy.
    CrossEntropy(Team),
    /// `reduce.wgsl`: the fixed-order batch sum.
    Reduce,
    /// `elementwise.wgsl`: MSE, BCE, BCE with logits, KL divergence.
    Elementwise,
    /// `softmax.wgsl` with the given team strategy: softmax, log-softmax, entropy.
    Softmax(Team),
    /// `cross_entropy_grad.wgsl`: pass 2 of fused cross-entropy.
    CrossEntropyGrad,
}

impl ShaderFamily {
    /// Every family, for validation.
    pub const ALL: [ShaderFamily; 9] = [
        ShaderFamily::CrossEntropyGrad,
        ShaderFamily::CrossEntropy(Team::Subgroup),
        ShaderFamily::CrossEntropy(Team::Workgroup),
        ShaderFamily::CrossEntropy(Team::Invocation),
        ShaderFamily::Reduce,
        ShaderFamily::Elementwise,
        ShaderFamily::Softmax(Team::Subgroup),
        ShaderFamily::Softmax(Team::Workgroup),
        ShaderFamily::Softmax(Team::Invocation),
    ];

    /// The label of the module ("cross_entropy.subgroup").
    pub fn label(self) -> String {
        match self {
            ShaderFamily::CrossEntropy(team) => format!("cross_entropy.{}", team.name()),
            ShaderFamily::Reduce => "reduce".into(),
            ShaderFamily::Elementwise => "elementwise".into(),
            ShaderFamily::Softmax(team) => format!("softmax.{}", team.name()),
            ShaderFamily::CrossEntropyGrad => "cross_entropy_grad".into(),
        }
    }

    /// Whether the module uses subgroup operations (needs `wgpu::Features::SUBGROUP`).
    pub fn needs_subgroups(self) -> bool {
        matches!(
            self,
            ShaderFamily::CrossEntropy(Team::Subgroup) | ShaderFamily::Softmax(Team::Subgroup)
        )
    }

    /// The full WGSL source as compiled: prelude, strategy, family.
    pub fn source(self) -> String {
        let parts: &[&str] = match self {
            ShaderFamily::CrossEntropy(team) => &[PRELUDE, team.source(), CROSS_ENTROPY],
            ShaderFamily::Reduce => &[PRELUDE, REDUCE],
            ShaderFamily::Elementwise => &[PRELUDE, ELEMENTWISE],
            ShaderFamily::Softmax(team) => &[PRELUDE, team.source(), SOFTMAX],
            ShaderFamily::CrossEntropyGrad => &[PRELUDE, CROSS_ENTROPY_GRAD],
        };
        parts.join("\n")
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
        /// Target layout.
        targets: TargetLayout,
        /// Class weights bound.
        weighted: bool,
        /// Label smoothing on.
        smoothing: bool,
        /// What the input holds.
        input: InputKind,
        /// Soft-cap the logits.
        softcap: bool,
        /// Add the z-loss.
        z_loss: bool,
        /// Write each row's argmax.
        argmax: bool,
        /// The input's element type.
        format: InputFormat,
    },
    /// Pass 2 of fused cross-entropy: the gradient.
    CrossEntropyGrad {
        /// Target layout.
        targets: TargetLayout,
        /// Class weights bound.
        weighted: bool,
        /// Label smoothing on.
        smoothing: bool,
        /// What the input holds.
        input: InputKind,
        /// Soft-cap the logits.
        softcap: bool,
        /// Add the z-loss.
        z_loss: bool,
        /// Overwrite the input with the gradient.
        in_place: bool,
        /// Reduction none: one upstream value per row.
        per_row_upstream: bool,
        /// The input's element type.
        format: InputFormat,
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
        }
    }

    /// The shader family the kernel's module comes from.
    pub fn family(self) -> ShaderFamily {
        match self {
            Kernel::CrossEntropyRows { team, .. } => ShaderFamily::CrossEntropy(team),
            Kernel::ReducePairs | Kernel::Finish => ShaderFamily::Reduce,
            Kernel::Elementwise { .. } => ShaderFamily::Elementwise,
            Kernel::SoftmaxRows { team, .. } => ShaderFamily::Softmax(team),
            Kernel::CrossEntropyGrad { .. } => ShaderFamily::CrossEntropyGrad,
        }
    }

    fn entry_point(self) -> &'static str {
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
            Kernel::CrossEntropyGrad { .. } => "cross_entropy_grad",
            Kernel::SoftmaxRows { .. } => "softmax_rows",
        }
    }

    fn label(self) -> String {
        format!("{}.{}", self.family().label(), self.entry_point())
    }

    /// The override constants set at pipeline creation.
    pub fn constants(self) -> Vec<(&'static str, f64)> {
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        match self {
            Kernel::CrossEntropyRows {
                targets,
                weighted,
                smoothing,
                input,
                softcap,
                z_loss,
                argmax,
                format,
                ..
            } => vec![
                ("TARGET_I64", flag(targets == TargetLayout::Indices(TargetWidth::I64))),
                ("TARGET_PROBS", flag(targets == TargetLayout::Probabilities)),
                ("WEIGHTED", flag(weighted)),
                ("SMOOTHING", flag(smoothing)),
                ("INPUT_KIND", input.code()),
                ("SOFTCAP", flag(softcap)),
                ("Z_LOSS", flag(z_loss)),
                ("ARGMAX", flag(argmax)),
                ("FORMAT", format.code()),
            ],
            Kernel::CrossEntropyGrad {
                targets,
                weighted,
                smoothing,
                input,
                softcap,
                z_loss,
                in_place,
                per_row_upstream,
                format,
            } => vec![
                ("TARGET_I64", flag(targets == TargetLayout::Indices(TargetWidth::I64))),
                ("TARGET_PROBS", flag(targets == TargetLayout::Probabilities)),
                ("WEIGHTED", flag(weighted)),
                ("SMOOTHING", flag(smoothing)),
                ("INPUT_KIND", input.code()),
                ("SOFTCAP", flag(softcap)),
                ("Z_LOSS", flag(z_loss)),
                ("IN_PLACE", flag(in_place)),
                ("PER_ROW_UPSTREAM", flag(per_row_upstream)),
                ("FORMAT", format.code()),
            ],
            Kernel::Elementwise {
                loss,
                weighted,
                pos_weighted,
                log_target,
                per_element_upstream,
                ..
            } => {
                let code = match loss {
                    ElementwiseKind::Mse => 0.0,
                    ElementwiseKind::Bce => 1.0,
                    ElementwiseKind::BceWithLogits => 2.0,
                    ElementwiseKind::KlDiv => 3.0,
                };
                vec![
                    ("LOSS", code),
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
                vec![("OUTPUT", code), ("GRAD", flag(grad)), ("FORMAT", format.code())]
            }
            Kernel::ReducePairs | Kernel::Finish => Vec::new(),
        }
    }
}

/// The bind-group layouts: binding 0 is a uniform, then read-only storage, then
/// read-write storage, in the order the shaders declare them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Layout {
    /// Row kernels: params, logits, targets, class weights | row loss, row weight, status,
    /// row (lse, A), row argmax.
    Rows,
    /// Reduction: params, loss in, weight in | loss out, weight out.
    Reduce,
    /// Elementwise losses: params, input, target, weight, pos_weight, upstream | out.
    Elementwise,
    /// Row maps (softmax family): params, input, upstream | out.
    Map,
    /// Cross-entropy gradient: params, input, targets, weights, row (lse, A), row
    /// upstream, reduced | grad.
    Grad,
}

impl Layout {
    const ALL: [Layout; 5] = [
        Layout::Rows,
        Layout::Reduce,
        Layout::Elementwise,
        Layout::Map,
        Layout::Grad,
    ];

    fn storage_counts(self) -> (u32, u32) {
        match self {
            Layout::Rows => (3, 5),
            Layout::Reduce => (2, 2),
            Layout::Elementwise => (5, 1),
            Layout::Map => (2, 1),
            Layout::Grad => (6, 1),
        }
    }

    fn entries(self) -> Vec<wgpu::BindGroupLayoutEntry> {
        let (read_only, read_write) = self.storage_counts();
        let entry = |binding: u32, ty: wgpu::BufferBindingType| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let mut entries = vec![entry(0, wgpu::BufferBindingType::Uniform)];
        for binding in 1..=read_only + read_write {
            let read_only = binding <= read_only;
            entries.push(entry(binding, wgpu::BufferBindingType::Storage { read_only }));
        }
        entries
    }
}

/// Layouts, shader modules and pipelines of one device; layouts are built up front,
/// modules and pipelines once, on first use.
pub(crate) struct PipelineCache {
    device: wgpu::Device,
    layouts: HashMap<Layout, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    modules: Mutex<HashMap<ShaderFamily, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<Kernel, Arc<wgpu::ComputePipeline>>>,
}

impl PipelineCache {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let layouts = Layout::ALL
            .into_iter()
            .map(|layout| {
                let label = format!("{layout:?}");
                let group = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(&label),
                    entries: &layout.entries(),
                });
                let pipeline = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some(&label),
                    bind_group_layouts: &[Some(&group)],
                    immediate_size: 0,
                });
                (layout, (group, pipeline))
            })
            .collect();
        Self {
            device: device.clone(),
            layouts,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
        }
    }

    /// Shader modules and pipelines built so far.
    pub(crate) fn built(&self) -> usize {
        let modules = self.modules.lock().unwrap_or_else(|e| e.into_inner()).len();
        modules + self.pipelines.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The bind-group layout every kernel of `layout` uses.
    pub(crate) fn bind_group_layout(&self, layout: Layout) -> &wgpu::BindGroupLayout {
        &self.layouts[&layout].0
    }

    /// The pipeline for `kernel`, built on first use.
    pub(crate) fn get(&self, kernel: Kernel) -> Result<Arc<wgpu::ComputePipeline>> {
        let mut pipelines = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pipeline) = pipelines.get(&kernel) {
            return Ok(pipeline.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = {
            let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
            let family = kernel.family();
            let module = modules.entry(family).or_insert_with(|| {
                self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(&family.label()),
                    source: wgpu::ShaderSource::Wgsl(family.source().into()),
                })
            });
            let constants = kernel.constants();
            self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&kernel.label()),
                layout: Some(&self.layouts[&kernel.layout()].1),
                module,
                entry_point: Some(kernel.entry_point()),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            })
        };
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(LossError::Device {
                during: "pipeline creation",
                reason: format!("{}: {err}", kernel.label()),
            });
        }
        let pipeline = Arc::new(pipeline);
        pipelines.insert(kernel, pipeline.clone());
        Ok(pipeline)
    }
}
