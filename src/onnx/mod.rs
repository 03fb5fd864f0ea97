//! ONNX interchange (DESIGN.md, "Interchange"): import a model into our `Architecture` and
//! `Weights`, export a (compacted) model as standard ONNX. The message types in `proto` are
//! generated once from onnx.proto by scripts/gen-onnx-proto.sh and committed.

#[rustfmt::skip]
pub mod proto;
pub mod tensor;
