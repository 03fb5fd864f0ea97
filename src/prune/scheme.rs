//! Schemes and keep-counts (SPEC.md §1, §3): how a layer is pruned and how many of its groups a
//! rate leaves.

/// How a layer is pruned (SPEC.md §1): remove rows (filters) or columns of its GEMM view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Filter,
    Column,
}

impl Scheme {
    /// The name action files and reports use.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Filter => "filter",
            Scheme::Column => "column",
        }
    }

    /// The GEMM view of a `rows`×`cols` layer grouped by this scheme, as the kernels take it.
    pub fn view(self, rows: usize, cols: usize) -> crate::gpu::admm::GroupView {
        crate::gpu::admm::GroupView::new(rows, cols, self == Scheme::Column)
    }
}

/// How many groups a layer keeps at `rate` (SPEC.md §3): round((1 − rate) · total), at least 1
/// and at most `total` (0 only when `total` is 0). Computed in f64 and nudged up by 1e-7·total
/// before rounding, so a decimal rate whose product lands exactly on .5 rounds up as it would in
/// exact arithmetic, whatever its f32 representation error (at most 3e-8·total).
pub fn keep_count(total: usize, rate: f32) -> usize {
    if total == 0 {
        return 0;
    }
    let kept = (1.0 - rate as f64) * total as f64 + 1e-7 * total as f64;
    if kept.is_nan() {
        return total;
    }
    (kept.round().max(1.0) as usize).min(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_count_rounds_and_clamps() {
        assert_eq!(keep_count(10, 0.0), 10);
        assert_eq!(keep_count(10, 0.7), 3);
        assert_eq!(keep_count(10, 0.75), 3); // 2.5 rounds up
        assert_eq!(keep_count(5, 0.1), 5); // 4.5 rounds up despite 0.1f32 > 0.1
        assert_eq!(keep_count(5, 0.3), 4); // 3.5 rounds up despite 0.3f32 > 0.3
        assert_eq!(keep_count(64, 0.5), 32);
        assert_eq!(keep_count(4608, 0.9), 461); // 460.8
        assert_eq!(keep_count(10, 0.99), 1); // 0.1 would round to 0: at least one group stays
        assert_eq!(keep_count(1, 0.9), 1);
        assert_eq!(keep_count(10, 1.0), 1);
        assert_eq!(keep_count(10, -0.5), 10); // never above the total
        assert_eq!(keep_count(10, f32::NAN), 10);
        assert_eq!(keep_count(0, 0.5), 0);
    }

    #[test]
    fn view_groups_follow_the_scheme() {
        assert_eq!(Scheme::Filter.view(4, 9).groups(), 4);
        assert_eq!(Scheme::Column.view(4, 9).groups(), 9);
    }
}
