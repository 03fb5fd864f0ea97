//! Launchers for ADMM structured pruning (shaders/admm.wgsl, SPEC.md §3) and the purification
//! statistics (shaders/purify.wgsl, SPEC.md §4 step 1).
//!
//! Every kernel works on the GEMM view of one layer's weights: a row-major `[rows][cols]` matrix
//! (rows = filters K, cols = C·R·S) stored flat in an f32 tensor. Its groups are the rows
//! (filter scheme) or the columns (column scheme).
//!
//! One Z-update (SPEC.md §3) is `projection` (group norms of W + U → select the kept groups →
//! Z = Π(W + U)) followed by `dual_update`; hard pruning is `group_norms` of W, `select_top`,
//! then `hard_prune` (W = Π(W) in place, recording the 0/1 mask used by `sgd::sgd`).

use anyhow::{ensure, Result};

use super::context::{Gpu, Tensor};
use super::kernel::{Access, Dispatch, Source};
use super::params::wgsl_params;

const R: Access = Access::Read;
const W: Access = Access::ReadWrite;

fn admm_src() -> Source {
    Source::new("admm", include_str!("../../shaders/admm.wgsl"))
}

/// The GEMM view of one layer's weights and which of its axes forms the groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupView {
    pub rows: usize,
    pub cols: usize,
    /// Groups are columns (column scheme) rather than rows (filter scheme).
    pub column: bool,
}

impl GroupView {
    pub fn new(rows: usize, cols: usize, column: bool) -> GroupView {
        GroupView { rows, cols, column }
    }

    /// Number of groups: rows (filter scheme) or columns (column scheme).
    pub fn groups(&self) -> usize {
        if self.column {
            self.cols
        } else {
            self.rows
        }
    }

    /// Entries of the view (rows · cols).
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries in one group: cols (filter scheme) or rows (column scheme).
    pub fn group_len(&self) -> usize {
        if self.column {
            self.rows
        } else {
            self.cols
        }
    }

    /// The shaders index with u32 and find an entry's row with `udiv`, exact for quotients below
    /// 2^20 (shaders/common.wgsl).
    pub(super) fn check(&self, what: &str) -> Result<()> {
        ensure!(self.rows > 0 && self.cols > 0, "{what}: empty GEMM view {}×{}", self.rows, self.cols);
        ensure!(self.rows < (1 << 20), "{what}: {} rows, the kernels handle fewer than 2^20", self.rows);
        ensure!(
            self.rows.checked_mul(self.cols).is_some_and(|n| n < (1 << 31)),
            "{what}: {}×{} entries, the kernels handle fewer than 2^31",
            self.rows,
            self.cols
        );
        Ok(())
    }
}

wgsl_params! {
    /// `Params` of shaders/admm.wgsl. `rho` is the penalty weight of `admm_penalty`; `rescale` the
    /// factor `dual_update` applies to the scaled dual.
    Params = "admm.wgsl" :: Params {
        rows: u32, cols: u32, column: u32, groups: u32,
        n: u32, keep: u32, with_u: u32, at: u32,
        rho: f32, rescale: f32, _p0: u32, _p1: u32,
    }
}

impl Params {
    fn new(v: &GroupView) -> Params {
        Params {
            rows: v.rows as u32,
            cols: v.cols as u32,
            column: v.column as u32,
            groups: v.groups() as u32,
            n: v.len() as u32,
            ..Params::default()
        }
    }
}

/// norms[g] = squared L2 norm of group g of W + U (of W alone when `u` is None).
pub fn group_norms(gpu: &Gpu, w: &Tensor, u: Option<&Tensor>, norms: &Tensor, view: &GroupView) -> Result<Dispatch> {
    view.check("group_norms")?;
    let n = view.len();
    ensure!(w.len >= n, "group_norms: W has {} entries, the {}×{} view needs {n}", w.len, view.rows, view.cols);
    ensure!(u.is_none_or(|u| u.len >= n), "group_norms: U is shorter than the {}×{} view", view.rows, view.cols);
    ensure!(norms.len >= view.groups(), "group_norms: {} norms for {} groups", norms.len, view.groups());
    let mut p = Params::new(view);
    p.with_u = u.is_some() as u32;
    let k = gpu.kernel(&admm_src(), "group_norms", &[R, R, W], false)?;
    // Without U, W is bound in its place and never read there.
    gpu.dispatch(&k, &[w, u.unwrap_or(w), norms], &p, gpu.grid1d(view.groups(), 256))
}

/// keep_mask[g] = 1.0 for the `keep` groups with the largest norms, 0.0 for the others; ties go to
/// the lower index and a NaN norm counts as −∞. Deterministic and exact.
pub fn select_top(gpu: &Gpu, norms: &Tensor, keep_mask: &Tensor, groups: usize, keep: usize) -> Result<Dispatch> {
    ensure!(groups > 0 && groups < (1 << 31), "select_top: {groups} groups");
    ensure!(keep <= groups, "select_top: cannot keep {keep} of {groups} groups");
    ensure!(norms.len >= groups && keep_mask.len >= groups, "select_top: buffers shorter than {groups} groups");
    let mut p = Params::new(&GroupView::new(1, 1, false));
    p.groups = groups as u32;
    p.keep = keep as u32;
    let k = gpu.kernel(&admm_src(), "select_top", &[R, W], false)?;
    gpu.dispatch(&k, &[norms, keep_mask], &p, gpu.grid1d(groups, 256))
}

/// Z[i] = keep_mask[group(i)] · (W[i] + U[i]) (U omitted when None); with `mask`, also
/// M[i] = keep_mask[group(i)]. Pruned entries are exactly 0.
pub fn project(
    gpu: &Gpu,
    w: &Tensor,
    u: Option<&Tensor>,
    keep_mask: &Tensor,
    z: &Tensor,
    mask: Option<&Tensor>,
    view: &GroupView,
) -> Result<Dispatch> {
    view.check("project")?;
    let n = view.len();
    ensure!(w.len >= n && z.len >= n, "project: W or Z is shorter than the {}×{} view", view.rows, view.cols);
    ensure!(u.is_none_or(|u| u.len >= n), "project: U is shorter than the {}×{} view", view.rows, view.cols);
    ensure!(keep_mask.len >= view.groups(), "project: keep mask shorter than {} groups", view.groups());
    let mut p = Params::new(view);
    p.with_u = u.is_some() as u32;
    let u = u.unwrap_or(w);
    match mask {
        None => {
            let k = gpu.kernel(&admm_src(), "project", &[R, R, R, W], false)?;
            gpu.dispatch(&k, &[w, u, keep_mask, z], &p, gpu.grid1d(n, 256))
        }
        Some(m) => {
            ensure!(m.len >= n, "project: mask is shorter than the {}×{} view", view.rows, view.cols);
            let k = gpu.kernel(&admm_src(), "project_mask", &[R, R, R, W, W], false)?;
            gpu.dispatch(&k, &[w, u, keep_mask, z, m], &p, gpu.grid1d(n, 256))
        }
    }
}

/// Hard pruning in place: W[i] = keep_mask[group(i)] · W[i] and mask[i] = keep_mask[group(i)].
pub fn hard_prune(gpu: &Gpu, w: &Tensor, keep_mask: &Tensor, mask: &Tensor, view: &GroupView) -> Result<Dispatch> {
    view.check("hard_prune")?;
    let n = view.len();
    ensure!(w.len >= n && mask.len >= n, "hard_prune: W or mask is shorter than the {}×{} view", view.rows, view.cols);
    ensure!(keep_mask.len >= view.groups(), "hard_prune: keep mask shorter than {} groups", view.groups());
    let k = gpu.kernel(&admm_src(), "hard_prune", &[W, R, W], false)?;
    gpu.dispatch(&k, &[w, keep_mask, mask], &Params::new(view), gpu.grid1d(n, 256))
}

/// The Euclidean projection Z = Π(W + U) (SPEC.md §3) as three launches: group norms into
/// `norms`, the kept groups into `keep_mask`, then `project` (with `mask` when given).
#[allow(clippy::too_many_arguments)]
pub fn projection(
    gpu: &Gpu,
    w: &Tensor,
    u: Option<&Tensor>,
    norms: &Tensor,
    keep_mask: &Tensor,
    z: &Tensor,
    mask: Option<&Tensor>,
    view: &GroupView,
    keep: usize,
) -> Result<Vec<Dispatch>> {
    Ok(vec![
        group_norms(gpu, w, u, norms, view)?,
        select_top(gpu, norms, keep_mask, view.groups(), keep)?,
        project(gpu, w, u, keep_mask, z, mask, view)?,
    ])
}

fn elementwise_check(what: &str, n: usize, tensors: &[&Tensor]) -> Result<()> {
    ensure!(n < (1 << 31), "{what}: {n} entries, the kernels handle fewer than 2^31");
    ensure!(tensors.iter().all(|t| t.len >= n), "{what}: a buffer is shorter than {n} entries");
    Ok(())
}

/// U[i] = (U[i] + W[i] − Z[i]) · rescale over the view's entries. U is the scaled dual λ/ρ, so
/// when ρ grows by a factor g the consistent update rescales it by 1/g (Boyd et al. §3.4.1).
pub fn dual_update(gpu: &Gpu, w: &Tensor, z: &Tensor, u: &Tensor, rescale: f32, view: &GroupView) -> Result<Dispatch> {
    elementwise_check("dual_update", view.len(), &[w, z, u])?;
    let k = gpu.kernel(&admm_src(), "dual_update", &[R, R, W], false)?;
    gpu.dispatch(&k, &[w, z, u], &Params { rescale, ..Params::new(view) }, gpu.grid1d(view.len(), 256))
}

/// dW[i] += rho · (W[i] − Z[i] + U[i]): the gradient of rho/2 · ‖W − Z + U‖². `rho` is baked into
/// the dispatch: rebuild it when ρ grows at a Z-update.
pub fn admm_penalty(gpu: &Gpu, w: &Tensor, z: &Tensor, u: &Tensor, dw: &Tensor, rho: f32, view: &GroupView) -> Result<Dispatch> {
    elementwise_check("admm_penalty", view.len(), &[w, z, u, dw])?;
    ensure!(rho.is_finite(), "admm_penalty: rho is {rho}");
    let mut p = Params::new(view);
    p.rho = rho;
    let k = gpu.kernel(&admm_src(), "admm_penalty", &[R, R, R, W], false)?;
    gpu.dispatch(&k, &[w, z, u, dw], &p, gpu.grid1d(view.len(), 256))
}

/// out[at] = Σ (W − Z)², out[at + 1] = Σ W² over the view's entries (one workgroup). Several
/// layers can share one `out` buffer (at = 2·layer) so one read-back serves them all.
pub fn sq_diff_sum(gpu: &Gpu, w: &Tensor, z: &Tensor, out: &Tensor, at: usize, view: &GroupView) -> Result<Dispatch> {
    elementwise_check("sq_diff_sum", view.len(), &[w, z])?;
    ensure!(at + 2 <= out.len, "sq_diff_sum: writes out[{at}..{}] but out has {} entries", at + 2, out.len);
    let mut p = Params::new(view);
    p.at = at as u32;
    let k = gpu.kernel(&admm_src(), "sq_diff_sum", &[R, R, W], false)?;
    gpu.dispatch(&k, &[w, z, out], &p, [1, 1, 1])
}
