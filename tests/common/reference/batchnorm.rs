//! CPU twin of shaders/batchnorm.wgsl: batch norm forward and training-mode backward.

/// Batch norm over (n, c, p) in f64: (y, mean, biased variance) with batch statistics, or with
/// `running` = (mean, variance) when given.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_forward(x: &[f32], gamma: &[f32], beta: &[f32], n: usize, c: usize, p: usize, eps: f32, running: Option<(&[f32], &[f32])>) -> (Vec<f32>, Vec<f64>, Vec<f64>) {
    let m = (n * p) as f64;
    let idx = |i: usize, ch: usize, q: usize| (i * c + ch) * p + q;
    let mut mean = vec![0.0f64; c];
    let mut var = vec![0.0f64; c];
    for ch in 0..c {
        if let Some((rm, rv)) = running {
            mean[ch] = rm[ch] as f64;
            var[ch] = rv[ch] as f64;
            continue;
        }
        let vals: Vec<f64> = (0..n).flat_map(|i| (0..p).map(move |q| (i, q))).map(|(i, q)| x[idx(i, ch, q)] as f64).collect();
        mean[ch] = vals.iter().sum::<f64>() / m;
        var[ch] = vals.iter().map(|v| (v - mean[ch]).powi(2)).sum::<f64>() / m;
    }
    let mut y = vec![0.0f32; x.len()];
    for i in 0..n {
        for ch in 0..c {
            for q in 0..p {
                let xh = (x[idx(i, ch, q)] as f64 - mean[ch]) / (var[ch] + eps as f64).sqrt();
                y[idx(i, ch, q)] = (gamma[ch] as f64 * xh + beta[ch] as f64) as f32;
            }
        }
    }
    (y, mean, var)
}

/// (dx, dgamma, dbeta) of training-mode batch norm, in f64.
pub fn batchnorm_backward(dy: &[f32], x: &[f32], gamma: &[f32], n: usize, c: usize, p: usize, eps: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (_, mean, var) = batchnorm_forward(x, gamma, &vec![0.0; c], n, c, p, eps, None);
    let m = (n * p) as f64;
    let idx = |i: usize, ch: usize, q: usize| (i * c + ch) * p + q;
    let mut dx = vec![0.0f32; x.len()];
    let (mut dg, mut db) = (vec![0.0f32; c], vec![0.0f32; c]);
    for ch in 0..c {
        let inv = 1.0 / (var[ch] + eps as f64).sqrt();
        let pos: Vec<usize> = (0..n).flat_map(|i| (0..p).map(move |q| (i, q))).map(|(i, q)| idx(i, ch, q)).collect();
        let xh = |j: usize| (x[j] as f64 - mean[ch]) * inv;
        let sb: f64 = pos.iter().map(|&j| dy[j] as f64).sum();
        let sg: f64 = pos.iter().map(|&j| dy[j] as f64 * xh(j)).sum();
        for &j in &pos {
            dx[j] = (gamma[ch] as f64 * inv / m * (m * dy[j] as f64 - sb - xh(j) * sg)) as f32;
        }
        dg[ch] = sg as f32;
        db[ch] = sb as f32;
    }
    (dx, dg, db)
}
