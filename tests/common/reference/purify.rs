//! CPU twin of shaders/purify.wgsl: per-group zero counts and norms.

use super::admm::group_entries;

/// Per group: [number of exactly-zero entries, L2 norm], flattened.
pub fn group_stats(w: &[f32], rows: usize, cols: usize, column: bool) -> Vec<f32> {
    let groups = if column { cols } else { rows };
    let mut out = Vec::with_capacity(2 * groups);
    for group in 0..groups {
        let e = group_entries(rows, cols, column, group);
        out.push(e.iter().filter(|&&i| w[i] == 0.0).count() as f32);
        out.push(e.iter().map(|&i| (w[i] as f64).powi(2)).sum::<f64>().sqrt() as f32);
    }
    out
}
