//! Launcher of shaders/purify.wgsl: the per-group statistics purification thresholds on
//! (SPEC.md §4 step 1).

use anyhow::{ensure, Result};

use super::admm::GroupView;
use super::context::{Gpu, Tensor};
use super::kernel::{Access, Dispatch, Source};
use super::params::wgsl_params;

wgsl_params! {
    Params = "purify.wgsl" :: Params { rows: u32, cols: u32, column: u32, groups: u32 }
}

/// stats[2g] = number of exactly-zero entries of group g, stats[2g + 1] = its L2 norm (not
/// squared).
pub fn group_stats(gpu: &Gpu, w: &Tensor, stats: &Tensor, view: &GroupView) -> Result<Dispatch> {
    view.check("group_stats")?;
    let n = view.len();
    ensure!(w.len >= n, "group_stats: W has {} entries, the {}×{} view needs {n}", w.len, view.rows, view.cols);
    ensure!(stats.len >= 2 * view.groups(), "group_stats: stats holds {} values, {} groups need {}", stats.len, view.groups(), 2 * view.groups());
    let p = Params { rows: view.rows as u32, cols: view.cols as u32, column: view.column as u32, groups: view.groups() as u32 };
    let src = Source::new("purify", include_str!("../../shaders/purify.wgsl"));
    let k = gpu.kernel(&src, "group_stats", &[Access::Read, Access::ReadWrite], false)?;
    gpu.dispatch(&k, &[w, stats], &p, gpu.grid1d(view.groups(), 256))
}
