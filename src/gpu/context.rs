//! Instance → adapter → device, the one route every kernel launch goes through
//! (as in wgpu's `hello_compute`), plus buffer creation and read-back.

use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::kernel::Kernel;
use super::strategy::{AdapterDesc, Strategy};
use super::tune::{Mode, Tuning};

/// A GPU buffer of 32-bit elements (f32 or u32). Cheap to clone: clones share the buffer.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub buf: Arc<wgpu::Buffer>,
    /// Number of 32-bit elements.
    pub len: usize,
    /// Where the tensor starts in `buf`, in elements: 0 for a buffer of its own, aligned for a
    /// view (`Gpu::view`), such as a parameter inside the network's flat parameter buffers.
    pub offset: usize,
}

impl Tensor {
    pub fn bytes(&self) -> u64 {
        (self.len * 4) as u64
    }

    /// What a bind group binds: the whole buffer, or a view's range of it.
    pub(super) fn binding(&self) -> wgpu::BindingResource<'_> {
        if self.offset == 0 && self.bytes() >= self.buf.size() {
            self.buf.as_entire_binding()
        } else {
            wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.buf,
                offset: (self.offset * 4) as u64,
                size: std::num::NonZeroU64::new(self.bytes()),
            })
        }
    }
}

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    /// Kernels proven against their CPU reference skip naga's bounds checks (2× faster GEMM on
    /// lavapipe) unless AUTOCOMPRESS_BOUNDS_CHECKS=1 asks to keep them everywhere.
    pub trusted: bool,
    /// Most workgroups a grid-stride kernel is launched with (`grid1d`): 1024 fills a large GPU,
    /// but a CPU driver pays a fixed cost per workgroup, so CPU adapters (lavapipe) get 64 (2
    /// cores: LeNet-5 training ran 1.1–1.4× faster, back to back, its SGD over fc1's 400k
    /// weights 0.7× the time). From `strategy.reduce()`.
    pub max_groups: usize,
    /// This adapter as selection sees it; launchers check kernels against its limits.
    pub adapter: AdapterDesc,
    /// What every launcher selects its kernel variant with (see `strategy`).
    pub strategy: Strategy,
    pub(super) kernels: Mutex<HashMap<String, Arc<Kernel>>>,
    /// Tuned convolution kernels of this adapter (see `tune`).
    pub tuning: Mutex<Tuning>,
}

fn device_type_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

pub const NO_ADAPTER_HELP: &str = "no GPU adapter found (Vulkan, Metal or DX12). Install your GPU's \
driver, or on Debian/Ubuntu the CPU Vulkan driver lavapipe: \
`apt-get install -y mesa-vulkan-drivers libvulkan1`";

/// Mesa's implicit Vulkan layer `VK_LAYER_MESA_device_select` asks the Wayland compositor which
/// GPU drives the display, to list that one first. Without a desktop session that probe prints
/// "error: XDG_RUNTIME_DIR is invalid or not set in the environment." (libwayland) before every
/// command. We order adapters ourselves, so where there is no session to ask we turn the layer
/// off through its documented switch, `NODEVICE_SELECT=1`. Nothing else is silenced: driver
/// errors still reach stderr, and a user's own NODEVICE_SELECT is left as it is.
fn quiet_device_select_layer() {
    let dir_ok = std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir());
    let session = dir_ok || std::env::var_os("WAYLAND_DISPLAY").is_some() || std::env::var_os("WAYLAND_SOCKET").is_some();
    if !session && std::env::var_os("NODEVICE_SELECT").is_none() {
        // Set before the Vulkan loader reads its environment (at instance creation).
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

impl Gpu {
    /// Picks the best adapter (discrete > integrated > CPU; Vulkan, Metal or DX12 before GL), or
    /// the first whose description ("name [Backend, Type]", as `describe` prints it) contains
    /// `wanted` (case-insensitive), from `--adapter` or `AUTOCOMPRESS_ADAPTER`. wgpu's own
    /// `WGPU_BACKEND` (e.g. `gl`, `vulkan`) limits the backends searched.
    pub fn new(wanted: Option<&str>) -> Result<Gpu> {
        let env_choice = std::env::var("AUTOCOMPRESS_ADAPTER").ok();
        let wanted = wanted.map(str::to_string).or(env_choice);
        quiet_device_select_layer();
        let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor { backends, ..wgpu::InstanceDescriptor::new_without_display_handle() });
        let mut adapters = pollster::block_on(instance.enumerate_adapters(backends));
        // GL adapters have tighter limits (8 storage buffers, 16 KiB of workgroup memory): last resort
        adapters.sort_by_key(|a| {
            let i = a.get_info();
            (i.backend == wgpu::Backend::Gl, device_type_rank(i.device_type))
        });
        if adapters.is_empty() {
            bail!(NO_ADAPTER_HELP);
        }
        let describe = |i: &wgpu::AdapterInfo| format!("{} [{:?}, {:?}]", i.name, i.backend, i.device_type);
        let adapter = match &wanted {
            Some(w) => {
                let lw = w.to_lowercase();
                let names: Vec<String> = adapters.iter().map(|a| describe(&a.get_info())).collect();
                adapters
                    .into_iter()
                    .find(|a| describe(&a.get_info()).to_lowercase().contains(&lw))
                    .ok_or_else(|| anyhow!("no adapter matches '{w}'; available: {}", names.join(", ")))?
            }
            None => adapters.remove(0),
        };
        let info = adapter.get_info();
        // Ask for the adapter's real limits: lavapipe allows 128 MiB storage bindings, GPUs more.
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("autocompress"),
            // timestamps let `bench` time kernels on the GPU rather than submit-and-wait;
            // subgroups serve the batch-norm reductions
            required_features: adapter.features() & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .with_context(|| format!("could not open device on adapter '{}'", info.name))?;
        let adapter = AdapterDesc::from_wgpu(&info, &limits, device.features());
        let strategy = Strategy::from_env(adapter.clone())?;
        let max_groups = strategy.reduce().max_groups;
        let trusted = std::env::var("AUTOCOMPRESS_BOUNDS_CHECKS").map(|v| v != "1").unwrap_or(true);
        let tuning = Mutex::new(Tuning::load(&adapter, Mode::from_env()?));
        Ok(Gpu { device, queue, info, limits, trusted, max_groups, adapter, strategy, kernels: Mutex::new(HashMap::new()), tuning })
    }

    /// Selects kernels as if on `target` (an invented adapter in tests, to run the GPU variants
    /// here); launchers still refuse what this adapter's own limits do not allow.
    pub fn retarget(mut self, target: AdapterDesc) -> Gpu {
        // this adapter's tuned kernels are not the target's: selection alone decides
        self.tuning = Mutex::new(Tuning::load(&target, Mode::Off));
        self.strategy.target = target;
        self.max_groups = self.strategy.reduce().max_groups;
        self
    }

    /// Whether batch-norm reductions use subgroup operations: selection's choice for the target,
    /// where this device has them.
    pub fn bn_subgroups(&self) -> bool {
        super::strategy::select_bn_subgroups(&self.strategy.target) && self.adapter.subgroups
    }

    /// "llvmpipe (LLVM 15.0.6, 256 bits) [Vulkan, Cpu]"
    pub fn describe(&self) -> String {
        format!("{} [{:?}, {:?}]", self.info.name, self.info.backend, self.info.device_type)
    }

    pub fn max_binding_bytes(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size)
    }

    /// A zero-filled storage buffer of `len` 32-bit elements.
    pub fn tensor(&self, len: usize, label: &str) -> Result<Tensor> {
        let bytes = (len.max(1) * 4) as u64;
        if bytes > self.max_binding_bytes() {
            bail!(
                "tensor '{label}' needs {} MiB, above this adapter's storage binding limit of {} MiB: \
                 use a smaller --batch-size",
                bytes >> 20,
                self.max_binding_bytes() >> 20
            );
        }
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Tensor { buf: Arc::new(buf), len, offset: 0 })
    }

    /// Elements a view's offset must be a multiple of: the adapter's storage binding alignment
    /// (256 bytes on most GPUs and in WebGPU, less on CPU drivers).
    pub fn view_alignment(&self) -> usize {
        (self.limits.min_storage_buffer_offset_alignment as usize / 4).max(1)
    }

    /// The `len` elements of `t` from element `at`, as a tensor of their own that shares `t`'s
    /// buffer. `at` must keep the view aligned (`view_alignment`).
    pub fn view(&self, t: &Tensor, at: usize, len: usize) -> Result<Tensor> {
        let offset = t.offset + at;
        if len == 0 || at + len > t.len {
            bail!("view of {len} elements at {at} does not fit a tensor of {}", t.len);
        }
        if !offset.is_multiple_of(self.view_alignment()) {
            bail!(
                "view at element {offset} is not aligned to this adapter's storage offset alignment of {} bytes",
                self.limits.min_storage_buffer_offset_alignment
            );
        }
        Ok(Tensor { buf: t.buf.clone(), len, offset })
    }

    pub fn upload<T: bytemuck::Pod>(&self, data: &[T], label: &str) -> Result<Tensor> {
        assert_eq!(std::mem::size_of::<T>(), 4, "tensors hold 32-bit elements");
        let t = self.tensor(data.len(), label)?;
        self.write(&t, data);
        Ok(t)
    }

    pub fn write<T: bytemuck::Pod>(&self, t: &Tensor, data: &[T]) {
        self.write_at(t, 0, data)
    }

    /// Writes `data` at element offset `at`. Ordered with respect to later submissions.
    pub fn write_at<T: bytemuck::Pod>(&self, t: &Tensor, at: usize, data: &[T]) {
        // a view's neighbours share its buffer, so a write past its end would corrupt them
        assert!(at + data.len() <= t.len, "write of {} elements at {at} past a tensor of {}", data.len(), t.len);
        if !data.is_empty() {
            self.queue.write_buffer(&t.buf, ((t.offset + at) * 4) as u64, bytemuck::cast_slice(data));
        }
    }

    pub fn uniform<T: bytemuck::Pod>(&self, value: &T, label: &str) -> wgpu::Buffer {
        let size = (std::mem::size_of::<T>() as u64).max(16).next_multiple_of(16);
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue.write_buffer(&buf, 0, bytemuck::bytes_of(value));
        buf
    }

    /// Reads a whole tensor back (waits for all submitted work).
    pub fn read<T: bytemuck::Pod>(&self, t: &Tensor) -> Result<Vec<T>> {
        self.read_range(t, 0, t.len)
    }

    pub fn read_range<T: bytemuck::Pod>(&self, t: &Tensor, at: usize, len: usize) -> Result<Vec<T>> {
        if at + len > t.len {
            bail!("read of {len} elements at {at} past a tensor of {}", t.len);
        }
        let bytes = (len * 4) as u64;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("staging"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&t.buf, ((t.offset + at) * 4) as u64, &staging, 0, bytes);
        self.submit(enc)?;
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| anyhow!("GPU poll failed: {e}"))?;
        rx.recv()
            .map_err(|_| anyhow!("GPU read-back channel closed"))?
            .map_err(|e| anyhow!("GPU read-back failed: {e}"))?;
        let view = slice.get_mapped_range().map_err(|e| anyhow!("GPU map failed: {e:?}"))?;
        let out = bytemuck::cast_slice::<u8, T>(&view).to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// Blocks until the GPU has finished all submitted work.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| anyhow!("GPU poll failed: {e}"))
    }
}
