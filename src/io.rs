//! Model files (safetensors with the JSON architecture in its metadata), atomic writes, JSON.

use anyhow::{bail, ensure, Context, Result};
use std::collections::HashMap;
use std::path::Path;

use crate::model::graph::Architecture;
use crate::model::weights::{NamedTensor, Weights};

/// Writes `bytes` to `path` through a temporary file and a rename, so a crash never leaves a
/// half-written file behind.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
        }
    }
    let tmp = path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot move {} into place", path.display()))?;
    Ok(())
}

pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    atomic_write(path, text.as_bytes())
}

/// Saves weights and architecture as one safetensors file (`architecture` metadata key holds
/// the JSON), plus `extra` metadata entries.
pub fn save_model(path: &Path, arch: &Architecture, w: &Weights, extra: &[(&str, String)]) -> Result<()> {
    w.check(arch)?;
    let mut meta: HashMap<String, String> = HashMap::new();
    meta.insert("architecture".into(), serde_json::to_string(arch)?);
    meta.insert("format".into(), "autocompress-1".into());
    for (k, v) in extra {
        meta.insert(k.to_string(), v.clone());
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = w
        .tensors
        .iter()
        .map(|t| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.shape.clone(), bytemuck::cast_slice(&t.data))
                .with_context(|| format!("tensor {}", t.name))?;
            Ok((t.name.clone(), view))
        })
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(views, &Some(meta)).context("cannot serialise model")?;
    atomic_write(path, &bytes)
}

/// Loads a model file written by `save_model`, or an ONNX model (by its `.onnx` extension or
/// its first bytes), so every command that takes a model file takes ONNX too. Every failure
/// names the file and what is wrong.
pub fn load_model(path: &Path) -> Result<(Architecture, Weights, HashMap<String, String>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read model file {}", path.display()))?;
    if crate::onnx::looks_like_onnx(path, &bytes) {
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("onnx-model");
        let m = crate::onnx::import::from_bytes(&bytes, name).with_context(|| format!("ONNX model {}", path.display()))?;
        let mut meta = m.meta;
        meta.extend(m.norm.iter().flat_map(|n| n.meta()).map(|(k, v)| (k.to_string(), v)));
        return Ok((m.arch, m.weights, meta));
    }
    let parsed = || -> Result<(Architecture, Weights, HashMap<String, String>)> {
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| anyhow::anyhow!("not a safetensors file: {e:?}"))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| anyhow::anyhow!("corrupt or truncated safetensors data: {e:?}"))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let Some(arch_json) = meta.get("architecture") else {
            bail!("no 'architecture' metadata: not written by autocompress");
        };
        let arch: Architecture = serde_json::from_str(arch_json).context("invalid architecture metadata")?;
        let mut tensors = Vec::new();
        for p in arch.param_shapes()? {
            for (name, _) in p.tensors() {
                let t = st.tensor(&name).map_err(|_| anyhow::anyhow!("missing tensor '{name}'"))?;
                ensure!(t.dtype() == safetensors::Dtype::F32, "tensor '{name}' is {:?}, expected F32", t.dtype());
                let data: Vec<f32> = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                tensors.push(NamedTensor { name, shape: t.shape().to_vec(), data });
            }
        }
        let w = Weights { tensors };
        w.check(&arch)?;
        Ok((arch, w, meta))
    };
    parsed().with_context(|| format!("model file {}", path.display()))
}
