//! ONNX interchange (DESIGN.md, "Interchange"): import a model into our `Architecture` and
//! `Weights`, export a (compacted) model as standard ONNX. The message types in `proto` are
//! generated once from onnx.proto by scripts/gen-onnx-proto.sh and committed.

#[rustfmt::skip]
pub mod proto;
pub mod tensor;
pub mod import;
pub mod count;
pub mod export;

/// An ONNX file by its extension, or by its first bytes where a safetensors file would start
/// with an 8-byte header length and `{`: ONNX starts with field 1 (ir_version), byte 0x08.
pub fn looks_like_onnx(path: &std::path::Path, bytes: &[u8]) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    ext || (bytes.first() == Some(&0x08) && bytes.get(8) != Some(&b'{'))
}
