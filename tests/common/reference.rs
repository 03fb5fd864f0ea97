//! Naive CPU twins of the kernels, written for clarity, not speed. They accumulate in f64 and
//! share no code with the GPU launchers: output sizes are computed here from first principles.

use autocompress::gpu::ops::ConvGeom;

/// C[m][n] = sum_k A[m][k] B[k][n]
pub fn matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for t in 0..k {
                s += a[i * k + t] as f64 * b[t * n + j] as f64;
            }
            c[i * n + j] = s as f32;
        }
    }
    c
}

// ------------------------------------------------------------------------------------ conv2d

/// Output height and width of a convolution (floor mode): (H + 2·pad − R) / stride + 1.
pub fn conv_out(g: &ConvGeom) -> (usize, usize) {
    ((g.h + 2 * g.pad - g.r) / g.stride + 1, (g.w + 2 * g.pad - g.s) / g.stride + 1)
}

/// The flat index into x (N, C, H, W) read by tap (r, s) of output pixel (oh, ow), or None when
/// the tap falls in the zero padding.
fn tap(g: &ConvGeom, n: usize, c: usize, oh: usize, ow: usize, r: usize, s: usize) -> Option<usize> {
    let ih = (oh * g.stride + r) as isize - g.pad as isize;
    let iw = (ow * g.stride + s) as isize - g.pad as isize;
    if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
        return None;
    }
    Some(((n * g.c + c) * g.h + ih as usize) * g.w + iw as usize)
}

/// y (N, K, OH, OW) = conv(x (N, C, H, W), w (K, C, R, S)) + bias (K).
pub fn conv2d_forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeom) -> Vec<f32> {
    let (oh, ow) = conv_out(g);
    let mut y = vec![0.0; g.n * g.k * oh * ow];
    for n in 0..g.n {
        for k in 0..g.k {
            for i in 0..oh {
                for j in 0..ow {
                    let mut s = bias.map_or(0.0, |b| b[k] as f64);
                    for c in 0..g.c {
                        for r in 0..g.r {
                            for q in 0..g.s {
                                if let Some(xi) = tap(g, n, c, i, j, r, q) {
                                    s += x[xi] as f64 * w[((k * g.c + c) * g.r + r) * g.s + q] as f64;
                                }
                            }
                        }
                    }
                    y[((n * g.k + k) * oh + i) * ow + j] = s as f32;
                }
            }
        }
    }
    y
}

/// dx (N, C, H, W) = the adjoint of the convolution applied to dy (N, K, OH, OW).
pub fn conv2d_backward_data(dy: &[f32], w: &[f32], g: &ConvGeom) -> Vec<f32> {
    let (oh, ow) = conv_out(g);
    let mut dx = vec![0.0f64; g.n * g.c * g.h * g.w];
    for n in 0..g.n {
        for k in 0..g.k {
            for i in 0..oh {
                for j in 0..ow {
                    let d = dy[((n * g.k + k) * oh + i) * ow + j] as f64;
                    for c in 0..g.c {
                        for r in 0..g.r {
                            for q in 0..g.s {
                                if let Some(xi) = tap(g, n, c, i, j, r, q) {
                                    dx[xi] += d * w[((k * g.c + c) * g.r + r) * g.s + q] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    dx.into_iter().map(|v| v as f32).collect()
}

/// dw (K, C, R, S) = Σ_n,pixels dy · x at the tap.
pub fn conv2d_backward_weight(x: &[f32], dy: &[f32], g: &ConvGeom) -> Vec<f32> {
    let (oh, ow) = conv_out(g);
    let mut dw = vec![0.0f64; g.k * g.c * g.r * g.s];
    for n in 0..g.n {
        for k in 0..g.k {
            for i in 0..oh {
                for j in 0..ow {
                    let d = dy[((n * g.k + k) * oh + i) * ow + j] as f64;
                    for c in 0..g.c {
                        for r in 0..g.r {
                            for q in 0..g.s {
                                if let Some(xi) = tap(g, n, c, i, j, r, q) {
                                    dw[((k * g.c + c) * g.r + r) * g.s + q] += d * x[xi] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    dw.into_iter().map(|v| v as f32).collect()
}

/// The GEMM view of images n0..n0+chunk: row j is the kept column `kept[j]` (an index into
/// c·R·S), column `img·OHW + pixel`. Layout [kept.len()][chunk·OHW], no padding.
pub fn im2col(x: &[f32], g: &ConvGeom, kept: &[usize], n0: usize, chunk: usize) -> Vec<f32> {
    let (oh, ow) = conv_out(g);
    let ncols = chunk * oh * ow;
    let mut col = vec![0.0; kept.len() * ncols];
    for (j, &kc) in kept.iter().enumerate() {
        let (c, r, s) = (kc / (g.r * g.s), (kc / g.s) % g.r, kc % g.s);
        for img in 0..chunk {
            for i in 0..oh {
                for q in 0..ow {
                    if let Some(xi) = tap(g, n0 + img, c, i, q, r, s) {
                        col[j * ncols + (img * oh + i) * ow + q] = x[xi];
                    }
                }
            }
        }
    }
    col
}

/// db[k] = Σ_n Σ_p dy[n][k][p] for dy (N, K, P).
pub fn channel_sum(dy: &[f32], n: usize, k: usize, p: usize) -> Vec<f32> {
    (0..k)
        .map(|kk| {
            let mut s = 0.0f64;
            for nn in 0..n {
                for i in 0..p {
                    s += dy[(nn * k + kk) * p + i] as f64;
                }
            }
            s as f32
        })
        .collect()
}

// ----------------------------------------------------------------------------------- pooling

/// Max pooling of `planes` h×w planes with a k×k window (floor mode) and `pad` pixels of -∞ on
/// every side. Returns y and, for each output, the flat index into x of its maximum: the first
/// one in row-major window order when several are equal.
pub fn maxpool_forward(x: &[f32], planes: usize, h: usize, w: usize, k: usize, stride: usize, pad: usize) -> (Vec<f32>, Vec<u32>) {
    let (oh, ow) = ((h + 2 * pad - k) / stride + 1, (w + 2 * pad - k) / stride + 1);
    let mut y = Vec::with_capacity(planes * oh * ow);
    let mut arg = Vec::with_capacity(planes * oh * ow);
    for p in 0..planes {
        for i in 0..oh {
            for j in 0..ow {
                let mut best: Option<(f32, usize)> = None;
                for r in 0..k {
                    for s in 0..k {
                        // padded coordinates back to input ones; padding pixels are skipped
                        let (Some(row), Some(col)) = ((i * stride + r).checked_sub(pad), (j * stride + s).checked_sub(pad)) else { continue };
                        if row >= h || col >= w {
                            continue;
                        }
                        let xi = (p * h + row) * w + col;
                        if best.is_none_or(|(b, _)| x[xi] > b) {
                            best = Some((x[xi], xi));
                        }
                    }
                }
                let (b, bi) = best.unwrap();
                y.push(b);
                arg.push(bi as u32);
            }
        }
    }
    (y, arg)
}

/// dx: each output's gradient routed to its window's (first) maximum, summed over windows.
pub fn maxpool_backward(x: &[f32], dy: &[f32], planes: usize, h: usize, w: usize, k: usize, stride: usize, pad: usize) -> Vec<f32> {
    let (_, arg) = maxpool_forward(x, planes, h, w, k, stride, pad);
    let mut dx = vec![0.0f64; planes * h * w];
    for (o, &a) in arg.iter().enumerate() {
        dx[a as usize] += dy[o] as f64;
    }
    dx.into_iter().map(|v| v as f32).collect()
}

/// Global average pooling: y[plane] = mean of its hw values.
pub fn avgpool_forward(x: &[f32], planes: usize, hw: usize) -> Vec<f32> {
    (0..planes).map(|p| (x[p * hw..(p + 1) * hw].iter().map(|&v| v as f64).sum::<f64>() / hw as f64) as f32).collect()
}

pub fn avgpool_backward(dy: &[f32], planes: usize, hw: usize) -> Vec<f32> {
    (0..planes * hw).map(|i| (dy[i / hw] as f64 / hw as f64) as f32).collect()
}

// -------------------------------------------------------------------------------- activation

pub fn relu_forward(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| if v > 0.0 { v } else { 0.0 }).collect()
}

/// dx = dy where the forward input was positive, else 0.
pub fn relu_backward(dy: &[f32], x: &[f32]) -> Vec<f32> {
    dy.iter().zip(x).map(|(&d, &v)| if v > 0.0 { d } else { 0.0 }).collect()
}

// --------------------------------------------------------------------- softmax cross-entropy

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

// ----------------------------------------------------------------------------------- sgd

/// One momentum-SGD step with L2 weight decay: v = momentum·v + g + wd·w; w −= lr·v.
/// With a 0/1 mask, entries where the mask is 0 end the step at exactly 0 (weight and velocity).
pub fn sgd(w: &mut [f32], v: &mut [f32], g: &[f32], mask: Option<&[f32]>, lr: f32, momentum: f32, wd: f32) {
    for i in 0..w.len() {
        if mask.is_some_and(|m| m[i] == 0.0) {
            w[i] = 0.0;
            v[i] = 0.0;
            continue;
        }
        let vel = momentum as f64 * v[i] as f64 + g[i] as f64 + wd as f64 * w[i] as f64;
        v[i] = vel as f32;
        w[i] = (w[i] as f64 - lr as f64 * vel) as f32;
    }
}

// ------------------------------------------------------------------------------------- admm
//
// A layer's GEMM view is a row-major [rows][cols] matrix; its groups are the rows (filter
// scheme, `column` false) or the columns (column scheme, `column` true).

/// The flat indices of group g's entries, in order.
pub fn group_entries(rows: usize, cols: usize, column: bool, g: usize) -> Vec<usize> {
    if column {
        (0..rows).map(|r| r * cols + g).collect()
    } else {
        (0..cols).map(|c| g * cols + c).collect()
    }
}

/// Squared L2 norm of every group of W + U (of W alone without U).
pub fn group_norms(w: &[f32], u: Option<&[f32]>, rows: usize, cols: usize, column: bool) -> Vec<f32> {
    let groups = if column { cols } else { rows };
    (0..groups)
        .map(|g| {
            group_entries(rows, cols, column, g)
                .into_iter()
                .map(|i| {
                    let v = w[i] as f64 + u.map_or(0.0, |u| u[i] as f64);
                    v * v
                })
                .sum::<f64>() as f32
        })
        .collect()
}

/// 1.0 for the `keep` groups with the largest norms, 0.0 for the others: sorts the indices by
/// decreasing norm (NaN as −∞), equal norms by increasing index, and keeps the first `keep`.
pub fn select_top(norms: &[f32], keep: usize) -> Vec<f32> {
    let key = |i: usize| if norms[i].is_nan() { f32::NEG_INFINITY } else { norms[i] };
    let mut order: Vec<usize> = (0..norms.len()).collect();
    order.sort_by(|&a, &b| key(b).partial_cmp(&key(a)).unwrap().then(a.cmp(&b)));
    let mut mask = vec![0.0; norms.len()];
    for &i in &order[..keep] {
        mask[i] = 1.0;
    }
    mask
}

/// (Z, M): Z[i] = W[i] + U[i] where the entry's group is kept, else 0; M[i] = 1 or 0 likewise.
pub fn project(w: &[f32], u: Option<&[f32]>, keep_mask: &[f32], rows: usize, cols: usize, column: bool) -> (Vec<f32>, Vec<f32>) {
    let mut z = vec![0.0; rows * cols];
    let mut m = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let i = r * cols + c;
            if keep_mask[if column { c } else { r }] != 0.0 {
                z[i] = w[i] + u.map_or(0.0, |u| u[i]);
                m[i] = 1.0;
            }
        }
    }
    (z, m)
}

/// U + W − Z
pub fn dual_update(u: &[f32], w: &[f32], z: &[f32]) -> Vec<f32> {
    (0..u.len()).map(|i| (u[i] as f64 + (w[i] as f64 - z[i] as f64)) as f32).collect()
}

/// dW + rho · (W − Z + U)
pub fn admm_penalty(dw: &[f32], w: &[f32], z: &[f32], u: &[f32], rho: f32) -> Vec<f32> {
    (0..dw.len())
        .map(|i| (dw[i] as f64 + rho as f64 * (w[i] as f64 - z[i] as f64 + u[i] as f64)) as f32)
        .collect()
}

/// [Σ (W − Z)², Σ W²]
pub fn sq_diff_sum(w: &[f32], z: &[f32]) -> [f32; 2] {
    let d: f64 = w.iter().zip(z).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
    let s: f64 = w.iter().map(|&a| (a as f64).powi(2)).sum();
    [d as f32, s as f32]
}

// ----------------------------------------------------------------------------------- purify

/// Per group: [number of exactly-zero entries, L2 norm], flattened.
pub fn group_stats(w: &[f32], rows: usize, cols: usize, column: bool) -> Vec<f32> {
    let groups = if column { cols } else { rows };
    let mut out = Vec::with_capacity(2 * groups);
    for g in 0..groups {
        let e = group_entries(rows, cols, column, g);
        out.push(e.iter().filter(|&&i| w[i] == 0.0).count() as f32);
        out.push(e.iter().map(|&i| (w[i] as f64).powi(2)).sum::<f64>().sqrt() as f32);
    }
    out
}

/// Batch norm over (n, c, p) in f64: (y, mean, biased variance) with batch statistics, or with
/// `running` = (mean, variance) when given.
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
