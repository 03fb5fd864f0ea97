//! CPU twin of shaders/sgd.wgsl: one momentum-SGD step with weight decay and an optional mask.

/// One momentum-SGD step with L2 weight decay: v = momentum·v + grad + wd·w; w −= lr·v.
/// With a 0/1 mask, entries where the mask is 0 end the step at exactly 0 (weight and velocity).
pub fn sgd(w: &mut [f32], v: &mut [f32], grad: &[f32], mask: Option<&[f32]>, lr: f32, momentum: f32, wd: f32) {
    for i in 0..w.len() {
        if mask.is_some_and(|m| m[i] == 0.0) {
            w[i] = 0.0;
            v[i] = 0.0;
            continue;
        }
        let vel = momentum as f64 * v[i] as f64 + grad[i] as f64 + wd as f64 * w[i] as f64;
        v[i] = vel as f32;
        w[i] = (w[i] as f64 - lr as f64 * vel) as f32;
    }
}
