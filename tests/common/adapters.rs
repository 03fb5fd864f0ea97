//! Invented adapter descriptions for selection tests, modelled on real parts' reported limits
//! (wgpu's `Limits` on Vulkan): a discrete NVIDIA-like GPU (32-lane subgroups), an AMD-like
//! one (64-lane), an integrated Intel-like one (8–32 lanes, 32 KiB of workgroup memory), one
//! at the GL backend's limits, and a CPU driver like lavapipe.

use autocompress::gpu::strategy::{AdapterDesc, DeviceKind};

fn desc(name: &str, kind: DeviceKind, vendor: u32, sub: (u32, u32), invocations: u32, bytes: u32) -> AdapterDesc {
    AdapterDesc {
        name: name.into(),
        driver: "invented".into(),
        kind,
        vendor,
        subgroup_min: sub.0,
        subgroup_max: sub.1,
        max_invocations: invocations,
        max_size: [invocations, invocations, 64],
        max_workgroup_bytes: bytes,
        max_groups_per_dim: 65535,
        max_storage_buffers: 16,
        // GPUs on Vulkan, Metal and DX12 have them; GL and CPU descriptions switch them off
        subgroups: kind != DeviceKind::Cpu,
    }
}

pub fn discrete_nvidia() -> AdapterDesc {
    desc("Invented NVIDIA discrete", DeviceKind::DiscreteGpu, 0x10de, (32, 32), 1024, 48 << 10)
}

pub fn discrete_amd() -> AdapterDesc {
    desc("Invented AMD discrete", DeviceKind::DiscreteGpu, 0x1002, (64, 64), 1024, 64 << 10)
}

pub fn integrated_intel() -> AdapterDesc {
    desc("Invented Intel integrated", DeviceKind::IntegratedGpu, 0x8086, (8, 32), 1024, 32 << 10)
}

/// WebGPU's and GL-on-llvmpipe's limits: 256 invocations, 16 KiB of workgroup memory.
pub fn gl_like() -> AdapterDesc {
    AdapterDesc { max_storage_buffers: 8, subgroups: false, ..desc("Invented GL", DeviceKind::Other, 0x10005, (4, 128), 256, 16 << 10) }
}

pub fn cpu_lavapipe() -> AdapterDesc {
    desc("llvmpipe (invented)", DeviceKind::Cpu, 0x10005, (8, 8), 1024, 32 << 10)
}

/// The non-CPU adapters.
pub fn gpus() -> Vec<AdapterDesc> {
    vec![discrete_nvidia(), discrete_amd(), integrated_intel(), gl_like()]
}

pub fn all() -> Vec<AdapterDesc> {
    let mut v = gpus();
    v.push(cpu_lavapipe());
    v
}

use autocompress::gpu::gemm::Tile;
use autocompress::gpu::strategy::{select_conv, select_dgrad, select_gemm, select_wgrad, Gather, Matmul};

/// Every kernel configuration the selection produces for the invented GPU adapters over a sweep
/// of shapes (rows 1–600, columns 4–65536, K 4–4608): GEMM and convolution kernels, weight-
/// gradient tiles with their splits, and data-gradient gather tiles.
pub struct Produced {
    pub gemm: Vec<Matmul>,
    pub conv: Vec<Matmul>,
    pub wgrad: Vec<Tile>,
    pub gather: Vec<Gather>,
}

pub fn produced() -> Produced {
    fn add<T: PartialEq>(v: &mut Vec<T>, x: T) {
        if !v.contains(&x) {
            v.push(x);
        }
    }
    let mut p = Produced { gemm: vec![], conv: vec![], wgrad: vec![], gather: vec![] };
    for a in gpus() {
        for m in [1, 3, 7, 16, 20, 33, 50, 64, 65, 128, 257, 512, 600] {
            for n in [4, 12, 28, 64, 100, 256, 1024, 4096, 8192, 65536] {
                for kp in [4, 28, 256, 1024, 4608] {
                    add(&mut p.gemm, select_gemm(&a, m, n, kp, true).kernel);
                    add(&mut p.gemm, select_gemm(&a, m, n, kp, false).kernel);
                    add(&mut p.conv, select_conv(&a, m, n, kp).kernel);
                    add(&mut p.wgrad, select_wgrad(&a, m, kp, n).tile);
                }
            }
            for (h, w) in [(2, 3), (5, 5), (16, 16)] {
                let g = autocompress::gpu::conv::ConvGeom { n: 2, c: m, h, w, k: 3, r: 3, s: 3, stride: 1, pad: 1 };
                add(&mut p.gather, select_dgrad(&a, &g).gather);
            }
        }
    }
    p
}
