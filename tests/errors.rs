//! A shader or dispatch that fails wgpu validation is returned as our error, not a panic in
//! wgpu's default error handler.

mod common;

use autocompress::gpu::kernel::{Access, Source};

#[test]
fn a_shader_that_fails_validation_is_an_error() {
    let gpu = common::gpu_or_skip!();
    // parses as WGSL but fails validation: a u32 added to an f32
    let bad = Source::new("broken", "@group(0) @binding(0) var<storage, read_write> y: array<f32>;\n@group(0) @binding(1) var<uniform> p: vec4<u32>;\n@compute @workgroup_size(1) fn main() { y[0] = p.x + 1.0; }");
    let err = gpu.kernel(&bad, "main", &[Access::ReadWrite], false).err().expect("an invalid shader must be refused");
    let msg = format!("{err:#}");
    assert!(msg.contains("main") && msg.contains("broken"), "the error names the kernel and its family: {msg}");
    // the device still works afterwards
    let good = Source::new("fine", "@group(0) @binding(0) var<storage, read_write> y: array<f32>;\n@group(0) @binding(1) var<uniform> p: vec4<u32>;\n@compute @workgroup_size(1) fn main() { y[0] = f32(p.x) + 1.0; }");
    let k = gpu.kernel(&good, "main", &[Access::ReadWrite], false).expect("a valid shader compiles");
    let y = gpu.tensor(1, "y").unwrap();
    let d = gpu.dispatch(&k, &[&y], &[2u32, 0, 0, 0], [1, 1, 1]).unwrap();
    gpu.run(&[d]).unwrap();
    assert_eq!(gpu.read::<f32>(&y).unwrap(), vec![3.0]);
}

#[test]
fn a_dispatch_beyond_the_adapter_limits_is_refused_before_wgpu() {
    let gpu = common::gpu_or_skip!();
    let src = Source::new("fine", "@group(0) @binding(0) var<storage, read_write> y: array<f32>;\n@group(0) @binding(1) var<uniform> p: vec4<u32>;\n@compute @workgroup_size(1) fn main() { y[0] = f32(p.x); }");
    let k = gpu.kernel(&src, "main", &[Access::ReadWrite], false).unwrap();
    let y = gpu.tensor(1, "y").unwrap();
    let too_many = gpu.limits.max_compute_workgroups_per_dimension + 1;
    let err = gpu.dispatch(&k, &[&y], &[0u32; 4], [too_many, 1, 1]).err().expect("refused");
    assert!(format!("{err}").contains("above the adapter limit"), "{err}");
}
