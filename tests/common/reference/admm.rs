//! CPU twin of shaders/admm.wgsl: group norms, top-k selection, projection, dual update, penalty.
//!
//! A layer's GEMM view is a row-major [rows][cols] matrix; its groups are the rows (filter
//! scheme, `column` false) or the columns (column scheme, `column` true).

/// The flat indices of the entries of group `group`, in order.
pub fn group_entries(rows: usize, cols: usize, column: bool, group: usize) -> Vec<usize> {
    if column {
        (0..rows).map(|r| r * cols + group).collect()
    } else {
        (0..cols).map(|c| group * cols + c).collect()
    }
}

/// Squared L2 norm of every group of W + U (of W alone without U).
pub fn group_norms(w: &[f32], u: Option<&[f32]>, rows: usize, cols: usize, column: bool) -> Vec<f32> {
    let groups = if column { cols } else { rows };
    (0..groups)
        .map(|group| {
            group_entries(rows, cols, column, group)
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
