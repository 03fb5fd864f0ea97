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
    save_model_with(path, arch, w, &[], extra)
}

/// As `save_model`, with `more` tensors beside the model's (a training checkpoint's momentum);
/// `load_model` ignores them and `load_tensors` reads them.
pub fn save_model_with(path: &Path, arch: &Architecture, w: &Weights, more: &[NamedTensor], extra: &[(&str, String)]) -> Result<()> {
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
        .chain(more)
        .map(|t| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.shape.clone(), bytemuck::cast_slice(&t.data))
                .with_context(|| format!("tensor {}", t.name))?;
            Ok((t.name.clone(), view))
        })
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(views, &Some(meta)).context("cannot serialise model")?;
    atomic_write(path, &sorted_header(bytes)?)
}

/// The f32 tensors `names` of a safetensors file, in that order; a missing one is an error
/// naming it and the file.
pub fn load_tensors(path: &Path, names: &[String]) -> Result<Vec<NamedTensor>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| anyhow::anyhow!("{}: corrupt or truncated safetensors data: {e:?}", path.display()))?;
    names.iter().map(|name| f32_tensor(&st, name).with_context(|| format!("{}", path.display()))).collect()
}

fn f32_tensor(st: &safetensors::SafeTensors, name: &str) -> Result<NamedTensor> {
    let t = st.tensor(name).map_err(|_| anyhow::anyhow!("missing tensor '{name}'"))?;
    ensure!(t.dtype() == safetensors::Dtype::F32, "tensor '{name}' is {:?}, expected F32", t.dtype());
    let data: Vec<f32> = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok(NamedTensor { name: name.to_string(), shape: t.shape().to_vec(), data })
}

/// The same safetensors file with its JSON header's keys sorted: `serialize` writes the metadata
/// in a HashMap's order, which changes from process to process, so the same model gave
/// different bytes. Tensor offsets are relative to the data section, which stays as it is.
fn sorted_header(bytes: Vec<u8>) -> Result<Vec<u8>> {
    let n = u64::from_le_bytes(bytes[..8].try_into()?) as usize;
    // serde_json's Map is a BTreeMap: parsing and printing again sorts every object's keys
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).context("safetensors header")?;
    let mut text = serde_json::to_string(&header)?.into_bytes();
    // the format pads the header with spaces so the data section starts 8-aligned
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
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
                tensors.push(f32_tensor(&st, &name)?);
            }
        }
        let w = Weights { tensors };
        w.check(&arch)?;
        Ok((arch, w, meta))
    };
    parsed().with_context(|| format!("model file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::zoo;

    /// The same model saved twice gives the same bytes (the metadata has enough keys that a
    /// HashMap order would differ), and loads back unchanged.
    #[test]
    fn model_files_are_byte_for_byte_reproducible() {
        let arch = zoo::build("digits-cnn", [1, 8, 8], 10).unwrap();
        let w = Weights::init(&arch, 3).unwrap();
        let dir = std::env::temp_dir().join(format!("autocompress-io-{}", std::process::id()));
        let keys = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"];
        let extra: Vec<(&str, String)> = keys.iter().enumerate().map(|(i, k)| (*k, i.to_string())).collect();
        let (p1, p2) = (dir.join("one.safetensors"), dir.join("two.safetensors"));
        save_model(&p1, &arch, &w, &extra).unwrap();
        save_model(&p2, &arch, &w, &extra).unwrap();
        let (b1, b2) = (std::fs::read(&p1).unwrap(), std::fs::read(&p2).unwrap());
        assert_eq!(b1, b2, "two saves of one model differ");
        let (a, back, meta) = load_model(&p1).unwrap();
        assert_eq!((a, back), (arch, w));
        assert_eq!(meta.get("k").map(String::as_str), Some("10"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
