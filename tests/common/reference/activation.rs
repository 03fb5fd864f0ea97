//! CPU twin of shaders/activation.wgsl: ReLU forward and backward.

pub fn relu_forward(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| if v > 0.0 { v } else { 0.0 }).collect()
}

/// dx = dy where the forward input was positive, else 0.
pub fn relu_backward(dy: &[f32], x: &[f32]) -> Vec<f32> {
    dy.iter().zip(x).map(|(&d, &v)| if v > 0.0 { d } else { 0.0 }).collect()
}
