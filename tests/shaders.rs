//! Every `shaders/*.wgsl` parses and validates with naga, so a shader typo fails here, without a
//! GPU. The directory is listed at run time: a new shader file is covered without editing this.

use autocompress::gpu::gemm::Tile;
use autocompress::gpu::kernel::Source;
use autocompress::gpu::norm;
use autocompress::gpu::strategy::{SharedTile, SHARED_TILES};
use naga::valid::{Capabilities, ValidationFlags, Validator};
use std::path::{Path, PathBuf};

/// Parses and validates one WGSL source; the error names the file and shows naga's diagnostic.
fn validate(name: &str, text: &str) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(text)
        .map_err(|e| format!("{name}: WGSL parse error\n{}", e.emit_to_string_with_path(text, name)))?;
    Validator::new(ValidationFlags::all(), Capabilities::all())
        .validate(&module)
        .map_err(|e| format!("{name}: validation error\n{}", e.emit_to_string_with_path(text, name)))?;
    Ok(())
}

fn shader_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())).path())
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shader_parses_and_validates() {
    let files = shader_files();
    assert!(files.iter().any(|p| p.ends_with("gemm.wgsl")), "shaders/gemm.wgsl not found among {files:?}");
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        if name == "common.wgsl" {
            continue; // prepended to, and validated with, every other shader
        }
        // Templates: validated through the tile shapes their launchers fill in.
        let instances: Vec<(String, Source)> = match name.as_str() {
            "gemm.wgsl" | "conv_gemm.wgsl" => {
                let tiles = [Tile::DEFAULT, Tile::NARROW, Tile::for_shape(50, 4096), Tile::for_conv(50, 4096), Tile::for_shape(3, 8), Tile::for_dgrad(33)];
                tiles
                    .iter()
                    .flat_map(|t| match name.as_str() {
                        "gemm.wgsl" => vec![(format!("{t:?}"), t.source())],
                        // conv_gemm.wgsl also in both forms of conv_wgrad's dY loads
                        _ => vec![(format!("{t:?}"), t.conv_source()), (format!("{t:?} dy4"), t.conv_source_dy4(true))],
                    })
                    .collect()
            }
            "tiled.wgsl" => SHARED_TILES.iter().flat_map(|&s| [4, 16, 32].map(|bk| SharedTile { bk, ..s })).map(|t| (format!("{t:?}"), t.source())).collect(),
            // the lane sums as a tree (subgroup sums validate in translate.rs, with the capability)
            "batchnorm.wgsl" => vec![("tree lane sums".into(), norm::source(false))],
            // the GPU data-gradient gather: a 64-lane row, and a subgroup-wide one
            "dgrad_pixels.wgsl" => [Tile { tm: 4, tn4: 1, wx: 64, wy: 2 }, Tile { tm: 4, tn4: 1, wx: 32, wy: 4 }].iter().map(|t| (format!("{t:?}"), t.dgrad_pixels_source())).collect(),
            _ => vec![],
        };
        if !instances.is_empty() {
            for (what, src) in instances {
                if src.text.contains("{{") {
                    failures.push(format!("{name} with {what}: a placeholder was left unfilled"));
                } else if let Err(e) = validate(&format!("{name} {what}"), &src.text) {
                    failures.push(e);
                }
            }
            continue;
        }
        if text.contains("{{") {
            failures.push(format!("{name}: contains a '{{{{' template placeholder, but only gemm.wgsl, conv_gemm.wgsl, tiled.wgsl, dgrad_pixels.wgsl and batchnorm.wgsl are filled in by their launchers"));
            continue;
        }
        // Launchers prepend common.wgsl (helpers such as `udiv`) to every shader.
        let full = Source::new("test", &text).text;
        if let Err(e) = validate(&name, &full) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{} shader(s) failed:\n{}", failures.len(), failures.join("\n\n"));
}

/// The templates' placeholders are exactly the ones `Tile` fills.
#[test]
fn gemm_template_placeholders_are_known() {
    for file in ["gemm.wgsl", "conv_gemm.wgsl", "tiled.wgsl", "dgrad_pixels.wgsl"] {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders").join(file)).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("{{") {
            let j = rest[i..].find("}}").map(|j| i + j + 2).expect("unclosed '{{'");
            let key = &rest[i..j];
            assert!(["{{TM}}", "{{TN4}}", "{{WX}}", "{{WY}}", "{{DY4}}", "{{BK}}"].contains(&key), "unknown placeholder {key} in {file}");
            rest = &rest[j..];
        }
    }
}
