//! Every shader, and every template instance the kernel selection can produce (register tiles on
//! the CPU adapter, workgroup-memory and GPU-shaped tiles on the invented GPU adapters), parses,
//! validates and translates with naga to SPIR-V (Vulkan), MSL (Metal), HLSL (DX12) and GLSL
//! (GL ES 3.1 and desktop 4.3, per entry point). No GPU needed.

mod common;

use autocompress::gpu::gemm::Tile;
use autocompress::gpu::kernel::Source;
use autocompress::gpu::norm;
use autocompress::gpu::strategy::{Gather, Matmul};
use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};
use std::path::Path;

/// Translates one source to every backend; the error names the instance and the backend.
fn translate(name: &str, text: &str) -> Result<(), String> {
    translate_with(name, text, Capabilities::default(), true)
}

/// As `translate`, validated with `caps`; GLSL only where `glsl` (wgpu's GL backend has no
/// subgroups, so the subgroup variants never run there).
fn translate_with(name: &str, text: &str, caps: Capabilities, glsl: bool) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(text).map_err(|e| format!("{name}: parse: {}", e.emit_to_string(text)))?;
    let info = Validator::new(ValidationFlags::all(), caps)
        .validate(&module)
        .map_err(|e| format!("{name}: validation: {}", e.emit_to_string(text)))?;
    spv::write_vec(&module, &info, &spv::Options::default(), None).map_err(|e| format!("{name}: SPIR-V: {e}"))?;
    msl::write_string(&module, &info, &msl::Options::default(), &msl::PipelineOptions::default()).map_err(|e| format!("{name}: MSL: {e}"))?;
    // subgroup (wave) operations need shader model 6
    let hlsl_options = hlsl::Options { shader_model: hlsl::ShaderModel::V6_0, ..hlsl::Options::default() };
    let mut out = String::new();
    hlsl::Writer::new(&mut out, &hlsl_options, &hlsl::PipelineOptions::default())
        .write(&module, &info, None)
        .map_err(|e| format!("{name}: HLSL: {e}"))?;
    for ep in module.entry_points.iter().filter(|_| glsl) {
        for version in [glsl::Version::new_gles(310), glsl::Version::Desktop(430)] {
            let options = glsl::Options { version, ..glsl::Options::default() };
            let pipeline = glsl::PipelineOptions { shader_stage: ep.stage, entry_point: ep.name.clone(), multiview: None };
            let mut out = String::new();
            glsl::Writer::new(&mut out, &module, &info, &options, &pipeline, naga::proc::BoundsCheckPolicies::default())
                .and_then(|mut w| w.write())
                .map_err(|e| format!("{name}: GLSL {version:?} entry {}: {e}", ep.name))?;
        }
    }
    Ok(())
}

/// Register tiles the CPU adapter's selection produces over a sweep of shapes (every row count
/// to 600: the rows a thread owns depend on the count), plus the GPU-shaped ones.
fn register_tiles(p: &common::adapters::Produced) -> Vec<Tile> {
    let mut tiles: Vec<Tile> = Vec::new();
    let mut add = |t: Tile| {
        if !tiles.contains(&t) {
            tiles.push(t)
        }
    };
    for m in 1..=600 {
        for np in [4, 8, 12, 16, 20, 24, 28, 32, 64, 256, 260, 4096] {
            add(Tile::for_shape(m, np));
            add(Tile::for_conv(m, np));
        }
        add(Tile::for_dgrad(m));
    }
    p.wgrad.iter().copied().chain(p.gather.iter().filter_map(|g| match g {
        Gather::Images(t) => Some(*t),
        Gather::Pixels(_) => None,
    }))
    .for_each(&mut add);
    for k in p.gemm.iter().chain(&p.conv) {
        if let Matmul::Register(t) = k {
            add(*t);
        }
    }
    tiles
}

#[test]
fn every_shader_instance_translates_to_every_backend() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut instances: Vec<(String, Source)> = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("shaders/ lists") {
        let path = entry.expect("shaders/ lists").path();
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        if file.ends_with(".wgsl") && !text.contains("{{") && file != "common.wgsl" {
            instances.push((file, Source::new("plain", &text)));
        }
    }
    let plain = instances.len();
    let p = common::adapters::produced();
    let tiles = register_tiles(&p);
    for t in &tiles {
        instances.push((format!("gemm.wgsl {t:?}"), t.source()));
        instances.push((format!("conv_gemm.wgsl {t:?}"), t.conv_source()));
        instances.push((format!("conv_gemm.wgsl {t:?} dy4"), t.conv_source_dy4(true)));
    }
    for g in &p.gather {
        if let Gather::Pixels(t) = g {
            instances.push((format!("dgrad_pixels.wgsl {t:?}"), t.dgrad_pixels_source()));
        }
    }
    let mut shared = Vec::new();
    for k in p.gemm.iter().chain(&p.conv) {
        if let Matmul::Workgroup(s) = k {
            if !shared.contains(s) {
                shared.push(*s);
                instances.push((format!("tiled.wgsl {s:?}"), s.source()));
            }
        }
    }
    instances.push(("batchnorm.wgsl tree lane sums".into(), norm::source(false)));
    assert!(plain >= 8 && tiles.len() >= 50 && shared.len() >= 3, "{plain} plain shaders, {} register tiles, {} workgroup tiles", tiles.len(), shared.len());
    let mut failures: Vec<String> = instances.iter().filter_map(|(name, src)| translate(name, &src.text).err()).collect();
    // the batch-norm reductions with subgroup sums, for the backends that have subgroups
    let sub = norm::source(true);
    failures.extend(translate_with("batchnorm.wgsl subgroup lane sums", &sub.text, Capabilities::SUBGROUP, false).err());
    assert!(translate("batchnorm.wgsl subgroups without the capability", &sub.text).is_err(), "subgroup operations validated without the capability");
    assert!(failures.is_empty(), "{} of {} instances failed:\n{}", failures.len(), instances.len(), failures.join("\n"));
    eprintln!("{} instances ({plain} plain shaders, {} register tiles, {} workgroup tiles) translate to SPIR-V, MSL, HLSL and GLSL", instances.len(), tiles.len(), shared.len());
}

/// The check can fail: a shader using a 64-bit float (beyond the portable capabilities) is refused.
#[test]
fn an_untranslatable_shader_is_reported() {
    let text = "@group(0) @binding(0) var<storage, read_write> o: array<f32>;\n@compute @workgroup_size(1) fn main() { o[0] = f32(f64(1.0)); }";
    assert!(translate("f64", text).is_err());
}
