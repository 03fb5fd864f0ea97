//! Parameters counted from an ONNX graph the way SPEC.md §1 counts them: conv and linear
//! weights and biases (Conv, Gemm, MatMul), and batch-norm γ and β. Running statistics, the
//! input normalisation and index tensors are not parameters.

use std::collections::HashMap;

use super::proto::ModelProto;
use super::tensor;

pub fn params(model: &ModelProto) -> u64 {
    let Some(g) = &model.graph else { return 0 };
    let sizes: HashMap<&str, u64> = g.initializer.iter().map(|t| (t.name(), tensor::declared_len(t, "").unwrap_or(0) as u64)).collect();
    let mut counted = std::collections::HashSet::new();
    let mut total = 0;
    for n in &g.node {
        let inputs: &[usize] = match n.op_type() {
            "Conv" | "Gemm" | "BatchNormalization" => &[1, 2],
            "MatMul" => &[1],
            _ => &[],
        };
        for &i in inputs {
            if let Some(name) = n.input.get(i).filter(|s| counted.insert(s.as_str())) {
                total += sizes.get(name.as_str()).copied().unwrap_or(0);
            }
        }
    }
    total
}
