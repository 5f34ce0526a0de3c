//! The pipeline cache of one device: layouts built up front, shader modules and compute
//! pipelines once, on first use, keyed by [`Kernel`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{LossError, Result};
use crate::gpu::kernels::{Kernel, ShaderFamily};
use crate::gpu::layouts::Layout;

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
