//! CPU twin of shaders/softmax_xent.wgsl: softmax cross-entropy, plain or mixed with distillation.

/// Per-row results of softmax + cross-entropy over logits (batch, classes).
pub struct Xent {
    /// −log softmax(logits)[label], 0 for rows ≥ valid.
    pub loss: Vec<f32>,
    /// 1 when the first maximum of the row is the label, 0 otherwise (and for rows ≥ valid).
    pub correct: Vec<f32>,
    /// d(mean loss over the valid rows)/dlogits; rows ≥ valid get 0.
    pub dlogits: Vec<f32>,
}

pub fn softmax_xent(logits: &[f32], labels: &[u32], batch: usize, classes: usize, valid: usize) -> Xent {
    let mut out = Xent { loss: vec![0.0; batch], correct: vec![0.0; batch], dlogits: vec![0.0; batch * classes] };
    for i in 0..batch.min(valid) {
        let row = &logits[i * classes..(i + 1) * classes];
        let label = labels[i] as usize;
        let mut arg = 0;
        for (c, &v) in row.iter().enumerate().skip(1) {
            if v > row[arg] {
                arg = c;
            }
        }
        let mx = row[arg] as f64;
        let z: f64 = row.iter().map(|&v| (v as f64 - mx).exp()).sum();
        out.loss[i] = (z.ln() + mx - row[label] as f64) as f32;
        out.correct[i] = (arg == label) as u32 as f32;
        for (c, &v) in row.iter().enumerate() {
            let p = (v as f64 - mx).exp() / z;
            let t = if c == label { 1.0 } else { 0.0 };
            out.dlogits[i * classes + c] = ((p - t) / valid as f64) as f32;
        }
    }
    out
}

/// Softmax cross-entropy mixed with distillation from `teacher` logits: per row
/// (1 − alpha)·CE + alpha·T²·KL(softmax(t/T) ‖ softmax(s/T)), computed in f64 from the
/// definition; `dlogits` is the analytic gradient of the mean over valid rows (the test checks
/// it against finite differences of `loss`).
#[allow(clippy::too_many_arguments)]
pub fn distill_xent(logits: &[f32], labels: &[u32], teacher: &[f32], alpha: f64, t: f64, batch: usize, classes: usize, valid: usize) -> Xent {
    let hard = softmax_xent(logits, labels, batch, classes, valid);
    let mut out = Xent { loss: vec![0.0; batch], correct: hard.correct.clone(), dlogits: vec![0.0; batch * classes] };
    let softmax = |row: &[f32], t: f64| -> Vec<f64> {
        let e: Vec<f64> = row.iter().map(|&v| (v as f64 / t).exp()).collect();
        let z: f64 = e.iter().sum();
        e.iter().map(|v| v / z).collect()
    };
    for i in 0..batch.min(valid) {
        let r = i * classes..(i + 1) * classes;
        let (ps, qt) = (softmax(&logits[r.clone()], t), softmax(&teacher[r.clone()], t));
        let kl: f64 = qt.iter().zip(&ps).map(|(q, p)| q * (q.ln() - p.ln())).sum();
        out.loss[i] = ((1.0 - alpha) * hard.loss[i] as f64 + alpha * t * t * kl) as f32;
        for c in 0..classes {
            let h = hard.dlogits[i * classes + c] as f64 * valid as f64;
            out.dlogits[i * classes + c] = (((1.0 - alpha) * h + alpha * t * (ps[c] - qt[c])) / valid as f64) as f32;
        }
    }
    out
}
