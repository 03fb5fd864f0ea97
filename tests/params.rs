//! Every `#[repr(C)]` Params twin (src/gpu/params.rs) matches its WGSL struct as naga reflects
//! it: the same size, field names, order and byte offsets. A field added, removed or reordered
//! on one side only fails here instead of being read as the wrong value at run time.

use autocompress::gpu::kernel::COMMON_WGSL;
use autocompress::gpu::params::{layouts, TwinLayout};
use std::collections::BTreeSet;
use std::path::Path;

/// The shader as a launcher compiles it: common.wgsl prepended, template values filled in.
fn module(shader: &str) -> naga::Module {
    if shader == "batchnorm.wgsl" {
        // its template is the lane-sum function, which norm.rs fills in
        let text = autocompress::gpu::norm::source(false).text;
        return naga::front::wgsl::parse_str(&text).unwrap_or_else(|e| panic!("{shader}: {}", e.emit_to_string(&text)));
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders").join(shader);
    let body = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let body = [("{{TM}}", "16"), ("{{TN4}}", "4"), ("{{WX}}", "8"), ("{{WY}}", "1"), ("{{DY4}}", "false"), ("{{BK}}", "16")]
        .iter()
        .fold(body, |s, (k, v)| s.replace(k, v));
    let text = format!("{COMMON_WGSL}\n{body}");
    naga::front::wgsl::parse_str(&text).unwrap_or_else(|e| panic!("{shader}: {}", e.emit_to_string(&text)))
}

/// (size, [(name, offset)]) of struct `name` in `m`.
fn reflect(m: &naga::Module, name: &str) -> Option<(usize, Vec<(String, usize)>)> {
    m.types.iter().find_map(|(_, ty)| match (&ty.name, &ty.inner) {
        (Some(n), naga::TypeInner::Struct { members, span }) if n == name => {
            Some((*span as usize, members.iter().map(|mb| (mb.name.clone().unwrap_or_default(), mb.offset as usize)).collect()))
        }
        _ => None,
    })
}

fn mismatch(t: &TwinLayout) -> Option<String> {
    let m = module(t.shader);
    let Some((size, fields)) = reflect(&m, t.wgsl) else {
        return Some(format!("{}: no struct {} in the shader", t.shader, t.wgsl));
    };
    let ours: Vec<(String, usize)> = t.fields.iter().map(|(n, o)| (n.to_string(), *o)).collect();
    if size != t.size || fields != ours {
        return Some(format!("{}::{}: shader has {size} bytes {fields:?}, the Rust twin {} bytes {ours:?}", t.shader, t.wgsl, t.size));
    }
    None
}

#[test]
fn every_params_twin_matches_its_shader_struct() {
    let twins = layouts();
    let errors: Vec<String> = twins.iter().filter_map(mismatch).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// Every uniform struct a shader binds has a twin, so no launcher can fall back to a positional
/// array again.
#[test]
fn every_uniform_struct_has_a_twin() {
    let twins: BTreeSet<(&str, &str)> = layouts().iter().map(|t| (t.shader, t.wgsl)).collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("shaders/ lists") {
        let path = entry.expect("shaders/ lists").path();
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        if !file.ends_with(".wgsl") || file == "common.wgsl" {
            continue;
        }
        let m = module(&file);
        for (_, var) in m.global_variables.iter() {
            if var.space != naga::AddressSpace::Uniform {
                continue;
            }
            let ty = m.types[var.ty].name.clone().unwrap_or_default();
            if !twins.iter().any(|(s, w)| *s == file && *w == ty) {
                missing.push(format!("{file}::{ty}"));
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "uniform structs without a #[repr(C)] twin: {missing:?}");
}

/// The check itself can fail: a twin with a field the shader lacks is reported.
#[test]
fn a_mismatched_twin_is_reported() {
    let mut t = layouts().into_iter().find(|t| t.wgsl == "SumParams" && t.shader == "conv2d.wgsl").expect("channel_sum twin");
    t.fields.swap(0, 1);
    assert!(mismatch(&t).is_some_and(|e| e.contains("SumParams")));
}
