//! Compiled kernels (one pipeline per shader entry point, cached) and prepared dispatches.
//!
//! Every shader follows one convention: group 0, storage bindings numbered in declaration order,
//! then one uniform `Params` struct as the last binding.

use anyhow::{anyhow, ensure, Result};
use std::sync::Arc;

use super::context::{Gpu, Tensor};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    Read,
    ReadWrite,
}

pub struct Kernel {
    pub name: String,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    pub bindings: Vec<Access>,
}

/// Shader source of a kernel family, with `{{KEY}}` placeholders filled in and
/// `shaders/common.wgsl` prepended.
pub struct Source {
    pub family: &'static str,
    pub text: String,
}

pub const COMMON_WGSL: &str = include_str!("../../shaders/common.wgsl");

impl Source {
    pub fn new(family: &'static str, body: &str) -> Source {
        Source { family, text: format!("{COMMON_WGSL}\n{body}") }
    }
}

impl Gpu {
    /// The kernel `entry` of `src`, compiled on first use. `storage` lists the storage bindings in
    /// order; the uniform params binding follows them. `trusted` kernels skip naga's bounds checks
    /// when the context allows it (they are proven against their CPU reference in tests/).
    /// A shader or pipeline that fails validation is an error naming the kernel, not a panic in
    /// wgpu's default handler.
    pub fn kernel(&self, src: &Source, entry: &str, storage: &[Access], trusted: bool) -> Result<Arc<Kernel>> {
        let key = format!("{}:{}:{}", src.family, entry, hash(&src.text));
        let mut cache = self.kernels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = cache.get(&key) {
            return Ok(k.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(src.family),
            source: wgpu::ShaderSource::Wgsl(src.text.as_str().into()),
        };
        let module = if trusted && self.trusted {
            // SAFETY: only kernels whose indexing is proven in-bounds by their CPU-reference tests
            // are created this way, and their launchers check every index range on the host.
            unsafe { self.device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked()) }
        } else {
            self.device.create_shader_module(desc)
        };
        let mut entries: Vec<wgpu::BindGroupLayoutEntry> = storage
            .iter()
            .enumerate()
            .map(|(i, a)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: *a == Access::Read },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: storage.len() as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        });
        let layout = self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(entry),
            entries: &entries,
        });
        let pl = self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(entry),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: Some(&pl),
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(anyhow!("kernel '{entry}' of shader family '{}' failed to compile on {}: {e}", src.family, self.info.name));
        }
        let k = Arc::new(Kernel { name: key.clone(), pipeline, layout, bindings: storage.to_vec() });
        cache.insert(key, k.clone());
        Ok(k)
    }

    /// Prepares one launch: binds `buffers` (in binding order) and a fresh uniform holding `params`.
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        kernel: &Arc<Kernel>,
        buffers: &[&Tensor],
        params: &P,
        groups: [u32; 3],
    ) -> Result<Dispatch> {
        debug_assert_eq!(buffers.len(), kernel.bindings.len(), "{}", kernel.name);
        let max = self.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            anyhow::bail!("kernel {} needs {:?} workgroups, above the adapter limit {max} per dimension", kernel.name, groups);
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let uniform = self.uniform(params, &kernel.name);
        let mut entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, t)| wgpu::BindGroupEntry { binding: i as u32, resource: t.binding() })
            .collect();
        entries.push(wgpu::BindGroupEntry { binding: buffers.len() as u32, resource: uniform.as_entire_binding() });
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&kernel.name),
            layout: &kernel.layout,
            entries: &entries,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(anyhow!("binding buffers to kernel {} failed: {e}", kernel.name));
        }
        Ok(Dispatch { kernel: kernel.clone(), bind, groups, _uniform: uniform })
    }

    /// Records `plan` into one compute pass of a new encoder and submits it.
    pub fn run(&self, plan: &[Dispatch]) -> Result<()> {
        let mut enc = self.device.create_command_encoder(&Default::default());
        record(&mut enc, plan);
        self.submit(enc)
    }

    /// Finishes and submits `enc`; a validation error in its commands is returned, not raised
    /// in wgpu's default handler (which panics).
    pub fn submit(&self, enc: wgpu::CommandEncoder) -> Result<()> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        self.queue.submit([enc.finish()]);
        match pollster::block_on(scope.pop()) {
            Some(e) => Err(anyhow!("GPU commands failed validation on {}: {e}", self.info.name)),
            None => Ok(()),
        }
    }

    /// Workgroup counts for a grid-stride loop over `n` elements with workgroups of `wg` threads:
    /// shaders run `for (i = gid.x; i < n; i += num_workgroups.x * wg)`, so the count is clamped
    /// to `max_groups` and the loop covers the rest.
    pub fn grid1d(&self, n: usize, wg: u32) -> [u32; 3] {
        [n.div_ceil(wg as usize).clamp(1, self.max_groups) as u32, 1, 1]
    }

    /// One workgroup per item for `n` items, folded into y where x would pass the adapter's
    /// limit: shaders take item `wg.x + wg.y · num_workgroups.x` and skip those ≥ n.
    pub fn grid_items(&self, n: usize) -> Result<[u32; 3]> {
        let max = self.limits.max_compute_workgroups_per_dimension.max(1) as usize;
        let x = n.clamp(1, max);
        let y = n.div_ceil(x).max(1);
        ensure!(y <= max, "{n} workgroups exceed the adapter's {max}×{max} grid");
        Ok([x as u32, y as u32, 1])
    }
}

/// One prepared kernel launch: pipeline, bound buffers and workgroup counts. Built once, replayed
/// every step, so training loops allocate nothing.
#[derive(Clone)]
pub struct Dispatch {
    pub kernel: Arc<Kernel>,
    bind: wgpu::BindGroup,
    pub groups: [u32; 3],
    _uniform: wgpu::Buffer,
}

pub fn record(enc: &mut wgpu::CommandEncoder, plan: &[Dispatch]) {
    record_with(enc, plan, None)
}

/// `record` into a pass with `timestamp_writes` (bench timing), even when `plan` is empty.
pub fn record_with(enc: &mut wgpu::CommandEncoder, plan: &[Dispatch], timestamp_writes: Option<wgpu::ComputePassTimestampWrites>) {
    if plan.is_empty() && timestamp_writes.is_none() {
        return;
    }
    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes });
    for d in plan {
        if d.groups.contains(&0) {
            continue;
        }
        pass.set_pipeline(&d.kernel.pipeline);
        pass.set_bind_group(0, &d.bind, &[]);
        pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
    }
}

fn hash(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}
