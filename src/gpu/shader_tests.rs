//! Layer 1: every shader parses and validates with naga, with no GPU needed, and each
//! override constant is one the Rust side sets.

use crate::gpu::kernels::ShaderFamily;

fn validate(family: ShaderFamily) -> naga::valid::ModuleInfo {
    let source = family.source();
    let module = naga::front::wgsl::parse_str(&source)
        .unwrap_or_else(|err| panic!("{} does not parse:\n{}", family.label(), err.emit_to_string(&source)));
    let capabilities = if family.needs_subgroups() {
        naga::valid::Capabilities::SUBGROUP
    } else {
        naga::valid::Capabilities::empty()
    };
    let stages = if family.needs_subgroups() {
        naga::valid::SubgroupOperationSet::all()
    } else {
        naga::valid::SubgroupOperationSet::empty()
    };
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities)
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(stages)
        .validate(&module)
        .unwrap_or_else(|err| panic!("{} does not validate:\n{}", family.label(), err.emit_to_string(&source)))
}

#[test]
fn every_shader_family_validates() {
    for family in ShaderFamily::ALL {
        validate(family);
    }
}

#[test]
fn workgroup_strategy_needs_no_subgroup_capability() {
    // The fallback for adapters without SUBGROUP must validate without the capability.
    let family = ShaderFamily::CrossEntropy(crate::gpu::kernels::Team::Workgroup, 0);
    assert!(!family.needs_subgroups());
    let source = family.source();
    let module = naga::front::wgsl::parse_str(&source).expect("parses");
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty())
        .validate(&module)
        .expect("validates without SUBGROUP");
}

#[test]
fn subgroup_strategy_is_rejected_without_the_capability() {
    // Guards `needs_subgroups`: if this ever validated without SUBGROUP, the flag is stale.
    let family = ShaderFamily::CrossEntropy(crate::gpu::kernels::Team::Subgroup, 0);
    let source = family.source();
    let module = naga::front::wgsl::parse_str(&source).expect("parses");
    let result = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty())
        .validate(&module);
    assert!(
        result.is_err(),
        "subgroup kernel validated without the SUBGROUP capability"
    );
}

#[test]
fn override_constants_match_the_rust_side() {
    use crate::api::kinds::*;
    use crate::gpu::kernels::*;
    let kernels = [
        Kernel::CrossEntropyRows {
            team: Team::Subgroup,
            pass: RowPass::Partials,
            flags: CeFlags {
                targets: TargetLayout::Probabilities,
                weighted: true,
                smoothing: true,
                input: InputKind::Logits,
                softcap: true,
                z_loss: true,
                format: InputFormat::F16,
            },
            argmax: true,
            small_rows: 0,
            reduced: false,
        },
        Kernel::CrossEntropyRows {
            team: Team::Invocation,
            pass: RowPass::Merge,
            flags: CeFlags {
                targets: TargetLayout::Indices(TargetWidth::I32),
                weighted: false,
                smoothing: false,
                input: InputKind::Probabilities,
                softcap: false,
                z_loss: false,
                format: InputFormat::F32,
            },
            argmax: false,
            small_rows: 10,
            reduced: true,
        },
        Kernel::Elementwise {
            loss: ElementwiseKind::Bce,
            weighted: true,
            pos_weighted: false,
            log_target: false,
            grad: true,
            per_element_upstream: true,
            format: InputFormat::F16,
            reduced: false,
        },
        Kernel::SoftmaxRows {
            team: Team::Subgroup,
            output: RowOutput::Entropy,
            grad: true,
            format: InputFormat::Bf16,
        },
        Kernel::ReducePairs,
        Kernel::Finish,
        Kernel::Matmul {
            a: InputFormat::F16,
            b: InputFormat::Bf16,
            bias: Some(InputFormat::F32),
            accumulate: true,
            column_sums: false,
        },
        Kernel::target_weights(TargetWidth::I32, true),
    ];
    for kernel in kernels.into_iter().chain(grad_kernels()) {
        let source = kernel.family().source();
        let module = naga::front::wgsl::parse_str(&source).expect("parses");
        let mut in_shader: Vec<String> = module.overrides.iter().filter_map(|(_, o)| o.name.clone()).collect();
        let mut set: Vec<String> = kernel.constants().iter().map(|(name, _)| name.to_string()).collect();
        in_shader.sort();
        set.sort();
        assert_eq!(in_shader, set, "{kernel:?}: every override is set, and only those");
    }
}

#[test]
fn the_tiny_row_path_validates_for_every_class_count() {
    for classes in 1..=crate::gpu::small_rows::SMALL_ROWS_MAX {
        validate(ShaderFamily::CrossEntropy(
            crate::gpu::kernels::Team::Invocation,
            classes,
        ));
    }
}

/// Both gradient entry points (rows shared by a workgroup, one invocation per position)
/// with mixed flags.
fn grad_kernels() -> [crate::gpu::kernels::Kernel; 2] {
    use crate::api::kinds::*;
    use crate::gpu::kernels::*;
    [
        Kernel::CrossEntropyGrad {
            flags: CeFlags {
                targets: TargetLayout::Indices(TargetWidth::I64),
                weighted: true,
                smoothing: true,
                input: InputKind::Logits,
                softcap: true,
                z_loss: false,
                format: InputFormat::Bf16,
            },
            in_place: true,
            per_row_upstream: false,
            per_position: false,
        },
        Kernel::CrossEntropyGrad {
            flags: CeFlags {
                targets: TargetLayout::Probabilities,
                weighted: true,
                smoothing: true,
                input: InputKind::Logits,
                softcap: false,
                z_loss: true,
                format: InputFormat::F16,
            },
            in_place: false,
            per_row_upstream: true,
            per_position: true,
        },
    ]
}
