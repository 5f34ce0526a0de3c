//! The bind-group layouts of the kernels: binding 0 is a uniform, then read-only storage,
//! then read-write storage, in the order the shaders declare them.

/// The bind-group layouts: binding 0 is a uniform, then read-only storage, then
/// read-write storage, in the order the shaders declare them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Layout {
    /// Row kernels: params, logits, targets, class weights | row loss, row weight, status,
    /// row (lse, A), row argmax.
    Rows,
    /// Reduction: params, loss in, weight in | loss out, weight out.
    Reduce,
    /// Elementwise losses: params, input, target, weight, pos_weight, upstream, input and
    /// target as vec4s | out.
    Elementwise,
    /// Row maps (softmax family): params, input, upstream, input as vec4s | out, out as
    /// vec4s.
    Map,
    /// Cross-entropy gradient: params, input, targets, weights, row (lse, A), row
    /// upstream or reduced [loss, divisor], input as vec4s | grad, grad as vec4s.
    Grad,
    /// Matrix product: params, A, B, bias | C.
    Matmul,
    /// Target weights: params, targets, class weights | row weight, status.
    TargetWeights,
}

impl Layout {
    pub(crate) const ALL: [Layout; 7] = [
        Layout::Rows,
        Layout::Reduce,
        Layout::Elementwise,
        Layout::Map,
        Layout::Grad,
        Layout::Matmul,
        Layout::TargetWeights,
    ];

    fn storage_counts(self) -> (u32, u32) {
        match self {
            Layout::Rows => (3, 5),
            Layout::Reduce => (2, 2),
            Layout::Elementwise => (7, 1),
            Layout::Map => (3, 2),
            Layout::Grad => (6, 2),
            Layout::Matmul => (3, 1),
            Layout::TargetWeights => (2, 2),
        }
    }

    pub(crate) fn entries(self) -> Vec<wgpu::BindGroupLayoutEntry> {
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

#[cfg(test)]
mod tests {
    use super::Layout;

    /// An app's device with wgpu's default limits must take every kernel.
    #[test]
    fn every_layout_fits_the_default_storage_binding_limit() {
        let max = wgpu::Limits::default().max_storage_buffers_per_shader_stage;
        for layout in Layout::ALL {
            let (read_only, read_write) = layout.storage_counts();
            assert!(
                read_only + read_write <= max,
                "{layout:?}: {read_only} + {read_write} > {max}"
            );
        }
    }
}
