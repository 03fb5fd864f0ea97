//! ADMM and purification kernels (shaders/admm.wgsl, shaders/purify.wgsl) against their CPU twins
//! (tests/common/reference/admm.rs and purify.rs) on awkward GEMM views: one row, one column, odd
//! sizes, sizes that are not multiples of 4, 64 or 256, more groups than one workgroup, and one
//! view with more entries than the capped grid has threads (so every element-wise grid-stride
//! loop wraps).
//!
//! Tolerances:
//! - selection, keep masks, entry masks, projection and hard pruning (selects and one f32 add,
//!   computed the same way here): exact;
//! - group norms, zero counts, residual sums, dual update, penalty gradient (f32 on the GPU vs
//!   f64 here): 1e-5 relative to the largest reference magnitude.
//!
//! Output buffers start filled with NaN, so an element a kernel forgets to write fails the test.

mod common;

use autocompress::gpu::admm::{self, GroupView};
use autocompress::gpu::purify;
use autocompress::prune::keep_count;
use autocompress::gpu::Gpu;
use common::reference as cpu;
use common::{assert_close, gpu_or_skip, nan_tensor, read, rand_vec};

// ------------------------------------------------------------------------------- helpers

/// Bit-for-bit equality (NaN equals NaN; +0 and −0 are equal).
#[track_caller]
fn assert_exact(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length {} but expected {}", got.len(), want.len());
    if let Some(i) = (0..got.len()).find(|&i| !(got[i] == want[i] || (got[i].is_nan() && want[i].is_nan()))) {
        panic!("{what}: element {i} is {} but expected {}", got[i], want[i]);
    }
}

/// Random values in [−1, 1] with no zero: a group then is non-zero exactly when it is kept.
fn nonzero_vec(n: usize, seed: u64) -> Vec<f32> {
    rand_vec(n, seed).into_iter().map(|v| if v.abs() < 1e-3 { 0.5 } else { v }).collect()
}

/// (rows, cols) of the GEMM views tested.
const SHAPES: [(usize, usize); 10] =
    [(1, 1), (1, 7), (7, 1), (3, 5), (37, 29), (300, 3), (3, 300), (65, 259), (513, 9), (4, 1027)];

/// More entries than the capped grid has threads (1024 workgroups × 256).
const BIG: (usize, usize) = (701, 401);

/// Grouped by rows (filter scheme), then by columns (column scheme).
const SCHEMES: [bool; 2] = [false, true];

fn views() -> impl Iterator<Item = GroupView> {
    SHAPES.into_iter().flat_map(|(r, c)| SCHEMES.map(|s| GroupView::new(r, c, s)))
}

fn col(v: &GroupView) -> bool {
    v.column
}

fn tag(v: &GroupView) -> String {
    format!("{}×{} {}", v.rows, v.cols, if v.column { "column" } else { "filter" })
}

/// Keep counts worth testing for `groups` groups: 1, about a third, all but one, all.
fn keeps(groups: usize) -> Vec<usize> {
    let mut k = vec![1, groups.div_ceil(3), groups.saturating_sub(1).max(1), groups];
    k.dedup();
    k
}

// ------------------------------------------------------------------------------ keep_count

#[test]
fn keep_count_rounds_to_nearest_and_keeps_at_least_one() {
    assert_eq!(keep_count(10, 0.0), 10);
    assert_eq!(keep_count(10, 0.7), 3);
    assert_eq!(keep_count(10, 0.75), 3);
    assert_eq!(keep_count(5, 0.1), 5);
    assert_eq!(keep_count(4608, 0.9), 461);
    assert_eq!(keep_count(10, 0.99), 1);
    assert_eq!(keep_count(1, 0.5), 1);
    assert_eq!(keep_count(7, -1.0), 7);
}

// ----------------------------------------------------------------------------- group_norms

#[test]
fn group_norms_match_reference() {
    let gpu = gpu_or_skip!();
    for (vi, v) in views().enumerate() {
        let n = v.len();
        let w = rand_vec(n, 100 + vi as u64);
        let u = rand_vec(n, 200 + vi as u64);
        let tw = gpu.upload(&w, "w").unwrap();
        let tu = gpu.upload(&u, "u").unwrap();
        for with_u in [false, true] {
            // One spare slot past the groups: it must stay untouched.
            let norms = gpu.upload(&vec![-7.0f32; v.groups() + 1], "norms").unwrap();
            gpu.run(&[admm::group_norms(gpu, &tw, with_u.then_some(&tu), &norms, &v).unwrap()]).unwrap();
            let got = read(gpu, &norms);
            let want = cpu::group_norms(&w, with_u.then_some(&u[..]), v.rows, v.cols, col(&v));
            assert_close(&format!("group_norms {} with U {with_u}", tag(&v)), &got[..v.groups()], &want, 1e-5);
            assert_eq!(got[v.groups()], -7.0, "group_norms {}: wrote past the last group", tag(&v));
        }
    }
}

// ------------------------------------------------------------------------------ select_top

fn gpu_select(gpu: &Gpu, norms: &[f32], keep: usize) -> Vec<f32> {
    let tn = gpu.upload(norms, "norms").unwrap();
    let km = nan_tensor(gpu, norms.len(), "keep_mask");
    gpu.run(&[admm::select_top(gpu, &tn, &km, norms.len(), keep).unwrap()]).unwrap();
    read(gpu, &km)
}

#[test]
fn select_top_matches_reference() {
    let gpu = gpu_or_skip!();
    for (si, groups) in [1usize, 2, 7, 63, 255, 256, 257, 1000, 3001].into_iter().enumerate() {
        // Distinct norms, then norms on a coarse grid where many groups tie.
        let fine: Vec<f32> = rand_vec(groups, 300 + si as u64).iter().map(|x| x.abs()).collect();
        let coarse: Vec<f32> = fine.iter().map(|x| (x * 8.0).round() / 8.0).collect();
        for (kind, norms) in [("distinct", &fine), ("coarse", &coarse)] {
            for keep in keeps(groups) {
                let got = gpu_select(gpu, norms, keep);
                let want = cpu::select_top(norms, keep);
                assert_exact(&format!("select_top {kind} {groups} groups keep {keep}"), &got, &want);
                assert_eq!(got.iter().filter(|&&m| m == 1.0).count(), keep, "select_top keeps exactly {keep}");
            }
        }
    }
}

#[test]
fn select_top_breaks_ties_by_lower_index() {
    let gpu = gpu_or_skip!();
    // All equal: the first `keep` groups win.
    for groups in [5usize, 300] {
        for keep in keeps(groups) {
            let got = gpu_select(gpu, &vec![2.5; groups], keep);
            let want: Vec<f32> = (0..groups).map(|i| if i < keep { 1.0 } else { 0.0 }).collect();
            assert_exact(&format!("select_top all tied, {groups} groups keep {keep}"), &got, &want);
        }
    }
    // A tie straddling the cut: 9 > 4 = 4 = 4 > 1; keep 3 takes the 9 and the first two 4s.
    let norms = [4.0, 1.0, 4.0, 9.0, 4.0, 1.0];
    assert_exact("select_top tie at the cut", &gpu_select(gpu, &norms, 3), &[1.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    assert_exact("select_top tie at the cut keep 4", &gpu_select(gpu, &norms, 4), &[1.0, 0.0, 1.0, 1.0, 1.0, 0.0]);
    // −0 and +0 tie, so the lower index wins whatever the sign.
    assert_exact("select_top -0 vs +0", &gpu_select(gpu, &[-0.0, 0.0, 1.0], 2), &[1.0, 0.0, 1.0]);
    assert_exact("select_top +0 vs -0", &gpu_select(gpu, &[0.0, -0.0, 1.0], 2), &[1.0, 0.0, 1.0]);
}

#[test]
fn select_top_treats_nan_as_least_important() {
    let gpu = gpu_or_skip!();
    let nan = f32::NAN;
    let inf = f32::INFINITY;
    let norms = [nan, 3.0, inf, 0.0, nan, 1e-30, 7.0, -nan];
    for keep in 1..=norms.len() {
        let got = gpu_select(gpu, &norms, keep);
        let want = cpu::select_top(&norms, keep);
        assert_exact(&format!("select_top with NaN keep {keep}"), &got, &want);
        assert_eq!(got.iter().filter(|&&m| m == 1.0).count(), keep, "select_top with NaN keeps exactly {keep}");
    }
    // Keep 5 of 8: inf, 7, 3, 1e-30, 0 (all finite-or-inf norms); no NaN group.
    assert_exact("select_top NaN pruned first", &gpu_select(gpu, &norms, 5), &[0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0]);
    // Keep 6: the first NaN (lowest index among the NaNs) is the next in.
    assert_exact("select_top NaN order", &gpu_select(gpu, &norms, 6), &[1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0]);
    // NaN ties with −∞.
    assert_exact("select_top NaN = -inf", &gpu_select(gpu, &[f32::NEG_INFINITY, nan, 0.5], 2), &[1.0, 0.0, 1.0]);
    assert_exact("select_top NaN = -inf (2)", &gpu_select(gpu, &[nan, f32::NEG_INFINITY, 0.5], 2), &[1.0, 0.0, 1.0]);
}

// --------------------------------------------------------------------------------- project

#[test]
fn project_matches_reference() {
    let gpu = gpu_or_skip!();
    let all = views().chain(SCHEMES.map(|s| GroupView::new(BIG.0, BIG.1, s)));
    for (vi, v) in all.enumerate() {
        let n = v.len();
        let w = rand_vec(n, 400 + vi as u64);
        let u = rand_vec(n, 500 + vi as u64);
        let keep_mask: Vec<f32> =
            rand_vec(v.groups(), 600 + vi as u64).iter().map(|&x| if x < 0.0 { 0.0 } else { 1.0 }).collect();
        let (tw, tu, tk) = (gpu.upload(&w, "w").unwrap(), gpu.upload(&u, "u").unwrap(), gpu.upload(&keep_mask, "keep").unwrap());
        for with_u in [false, true] {
            for with_mask in [false, true] {
                let z = nan_tensor(gpu, n, "z");
                let m = nan_tensor(gpu, n, "m");
                let uo = with_u.then_some(&tu);
                gpu.run(&[admm::project(gpu, &tw, uo, &tk, &z, with_mask.then_some(&m), &v).unwrap()]).unwrap();
                let (wz, wm) = cpu::project(&w, with_u.then_some(&u[..]), &keep_mask, v.rows, v.cols, col(&v));
                let what = format!("project {} with U {with_u} mask {with_mask}", tag(&v));
                assert_exact(&what, &read(gpu, &z), &wz);
                if with_mask {
                    assert_exact(&format!("{what}: M"), &read(gpu, &m), &wm);
                } else {
                    assert!(read(gpu, &m).iter().all(|x| x.is_nan()), "{what}: wrote the mask it was not given");
                }
            }
        }
    }
}

/// The whole projection: after norms → select → project, exactly `keep` groups of Z are non-zero
/// (W + U has no zero entry), they have the largest norms, and M is exactly 0 elsewhere.
#[test]
fn projection_keeps_exactly_the_largest_groups() {
    let gpu = gpu_or_skip!();
    for (vi, v) in views().enumerate() {
        let n = v.len();
        let w = nonzero_vec(n, 700 + vi as u64);
        let u = vec![0.0f32; n]; // W + U = W: no zero entry
        let (tw, tu) = (gpu.upload(&w, "w").unwrap(), gpu.upload(&u, "u").unwrap());
        let want_norms = cpu::group_norms(&w, None, v.rows, v.cols, col(&v));
        for keep in keeps(v.groups()) {
            let norms = nan_tensor(gpu, v.groups(), "norms");
            let km = nan_tensor(gpu, v.groups(), "keep_mask");
            let z = nan_tensor(gpu, n, "z");
            let m = nan_tensor(gpu, n, "m");
            gpu.run(&admm::projection(gpu, &tw, Some(&tu), &norms, &km, &z, Some(&m), &v, keep).unwrap()).unwrap();
            let what = format!("projection {} keep {keep}", tag(&v));
            let (gn, gk, gz, gm) = (read(gpu, &norms), read(gpu, &km), read(gpu, &z), read(gpu, &m));

            // The kept set is the CPU's selection on the GPU's norms, exactly.
            assert_exact(&format!("{what}: keep mask"), &gk, &cpu::select_top(&gn, keep));
            let nonzero: Vec<usize> = (0..v.groups())
                .filter(|&grp| cpu::group_entries(v.rows, v.cols, col(&v), grp).iter().any(|&i| gz[i] != 0.0))
                .collect();
            assert_eq!(nonzero.len(), keep, "{what}: {} non-zero groups", nonzero.len());
            assert!(nonzero.iter().all(|&grp| gk[grp] == 1.0), "{what}: a non-zero group is not marked kept");
            // Against the f64 norms: every kept group is at least as large as every pruned one
            // (up to the 1e-5 norm tolerance).
            let min_kept = nonzero.iter().map(|&i| want_norms[i]).fold(f32::INFINITY, f32::min);
            let max_pruned = (0..v.groups()).filter(|i| gk[*i] == 0.0).map(|i| want_norms[i]).fold(0.0, f32::max);
            assert!(min_kept >= max_pruned * (1.0 - 1e-5), "{what}: kept norm {min_kept} < pruned norm {max_pruned}");
            // Kept entries are W + U, pruned ones exactly 0, and so is M.
            for i in 0..n {
                let kept = gk[if col(&v) { i % v.cols } else { i / v.cols }] == 1.0;
                assert_eq!(gm[i], if kept { 1.0 } else { 0.0 }, "{what}: M[{i}]");
                assert_eq!(gz[i], if kept { w[i] } else { 0.0 }, "{what}: Z[{i}]");
            }
        }
    }
}

/// Groups whose entries differ only in sign have bit-identical norms: the lower indices win.
#[test]
fn projection_breaks_ties_by_lower_index() {
    let gpu = gpu_or_skip!();
    for v in [(5, 3), (300, 7), (2, 301), (9, 9)].into_iter().flat_map(|(r, c)| SCHEMES.map(|s| GroupView::new(r, c, s))) {
        let base = nonzero_vec(v.group_len(), 800);
        let signs = rand_vec(v.len(), 801);
        let mut w = vec![0.0; v.len()];
        for grp in 0..v.groups() {
            for (t, i) in cpu::group_entries(v.rows, v.cols, col(&v), grp).into_iter().enumerate() {
                w[i] = if signs[i] < 0.0 { -base[t] } else { base[t] };
            }
        }
        let tw = gpu.upload(&w, "w").unwrap();
        for keep in keeps(v.groups()) {
            let norms = nan_tensor(gpu, v.groups(), "norms");
            let km = nan_tensor(gpu, v.groups(), "keep_mask");
            let z = nan_tensor(gpu, v.len(), "z");
            gpu.run(&admm::projection(gpu, &tw, None, &norms, &km, &z, None, &v, keep).unwrap()).unwrap();
            let gn = read(gpu, &norms);
            assert!(gn.iter().all(|&x| x == gn[0]), "{}: tied norms differ: {gn:?}", tag(&v));
            let want: Vec<f32> = (0..v.groups()).map(|i| if i < keep { 1.0 } else { 0.0 }).collect();
            assert_exact(&format!("tied projection {} keep {keep}", tag(&v)), &read(gpu, &km), &want);
            let (wz, _) = cpu::project(&w, None, &want, v.rows, v.cols, col(&v));
            assert_exact(&format!("tied projection {} keep {keep}: Z", tag(&v)), &read(gpu, &z), &wz);
        }
    }
}

/// A group containing NaN has a NaN norm: it is pruned first, and its Z entries are exactly 0.
#[test]
fn projection_prunes_nan_groups_first() {
    let gpu = gpu_or_skip!();
    for v in SCHEMES.map(|s| GroupView::new(6, 5, s)) {
        let mut w = nonzero_vec(v.len(), 900);
        let bad = 2; // group 2 holds a NaN, and the largest entries otherwise
        for i in cpu::group_entries(v.rows, v.cols, col(&v), bad) {
            w[i] = 100.0;
        }
        w[cpu::group_entries(v.rows, v.cols, col(&v), bad)[1]] = f32::NAN;
        let tw = gpu.upload(&w, "w").unwrap();
        for keep in keeps(v.groups()) {
            let norms = nan_tensor(gpu, v.groups(), "norms");
            let km = nan_tensor(gpu, v.groups(), "keep_mask");
            let z = nan_tensor(gpu, v.len(), "z");
            let m = nan_tensor(gpu, v.len(), "m");
            gpu.run(&admm::projection(gpu, &tw, None, &norms, &km, &z, Some(&m), &v, keep).unwrap()).unwrap();
            let what = format!("NaN projection {} keep {keep}", tag(&v));
            let gk = read(gpu, &km);
            assert!(read(gpu, &norms)[bad].is_nan(), "{what}: the NaN group's norm is not NaN");
            assert_eq!(gk[bad] == 1.0, keep == v.groups(), "{what}: NaN group kept {}", gk[bad]);
            assert_eq!(gk.iter().filter(|&&x| x == 1.0).count(), keep, "{what}: keep count");
            if keep < v.groups() {
                let (gz, gm) = (read(gpu, &z), read(gpu, &m));
                for i in cpu::group_entries(v.rows, v.cols, col(&v), bad) {
                    assert!(gz[i] == 0.0 && gm[i] == 0.0, "{what}: Z[{i}] = {}, M[{i}] = {}", gz[i], gm[i]);
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------ hard_prune

#[test]
fn hard_prune_zeroes_pruned_groups_in_place() {
    let gpu = gpu_or_skip!();
    for (vi, v) in views().enumerate() {
        let w = nonzero_vec(v.len(), 1000 + vi as u64);
        let tw = gpu.upload(&w, "w").unwrap();
        let keep = v.groups().div_ceil(2);
        let norms = nan_tensor(gpu, v.groups(), "norms");
        let km = nan_tensor(gpu, v.groups(), "keep_mask");
        let m = nan_tensor(gpu, v.len(), "m");
        gpu.run(&[
            admm::group_norms(gpu, &tw, None, &norms, &v).unwrap(),
            admm::select_top(gpu, &norms, &km, v.groups(), keep).unwrap(),
            admm::hard_prune(gpu, &tw, &km, &m, &v).unwrap(),
        ]).unwrap();
        let gk = read(gpu, &km);
        assert_exact(&format!("hard_prune {}: keep mask", tag(&v)), &gk, &cpu::select_top(&read(gpu, &norms), keep));
        let (wz, wm) = cpu::project(&w, None, &gk, v.rows, v.cols, col(&v));
        assert_exact(&format!("hard_prune {}: W", tag(&v)), &read(gpu, &tw), &wz);
        assert_exact(&format!("hard_prune {}: M", tag(&v)), &read(gpu, &m), &wm);
    }
}

// ---------------------------------------------------------------------- dual and penalty

#[test]
fn dual_update_and_penalty_match_reference() {
    let gpu = gpu_or_skip!();
    let shapes = SHAPES.into_iter().chain([BIG]);
    for (vi, (r, c)) in shapes.enumerate() {
        let v = GroupView::new(r, c, false);
        let n = v.len();
        let (w, z, u, dw) =
            (rand_vec(n, 1100 + vi as u64), rand_vec(n, 1200 + vi as u64), rand_vec(n, 1300 + vi as u64), rand_vec(n, 1400 + vi as u64));
        let (tw, tz, tu, tdw) =
            (gpu.upload(&w, "w").unwrap(), gpu.upload(&z, "z").unwrap(), gpu.upload(&u, "u").unwrap(), gpu.upload(&dw, "dw").unwrap());
        let rho = 1.5e-3 * 1.9f32.powi(vi as i32 % 10);
        // The penalty reads U before the dual update changes it.
        gpu.run(&[admm::admm_penalty(gpu, &tw, &tz, &tu, &tdw, rho, &v).unwrap(), admm::dual_update(gpu, &tw, &tz, &tu, 1.0, &v).unwrap()]).unwrap();
        assert_close(&format!("admm_penalty {r}×{c} rho {rho}"), &read(gpu, &tdw), &cpu::admm_penalty(&dw, &w, &z, &u, rho), 1e-5);
        assert_close(&format!("dual_update {r}×{c}"), &read(gpu, &tu), &cpu::dual_update(&u, &w, &z), 1e-5);
    }
}

// ---------------------------------------------------------------------------- sq_diff_sum

#[test]
fn sq_diff_sum_matches_reference() {
    let gpu = gpu_or_skip!();
    let shapes = SHAPES.into_iter().chain([(1, 255), (1, 256), (1, 257), (101, 99), BIG]);
    for (vi, (r, c)) in shapes.enumerate() {
        let v = GroupView::new(r, c, true);
        let n = v.len();
        let (w, z) = (rand_vec(n, 1500 + vi as u64), rand_vec(n, 1600 + vi as u64));
        let (tw, tz) = (gpu.upload(&w, "w").unwrap(), gpu.upload(&z, "z").unwrap());
        // Two layers' sums share one buffer: this one writes slots 2 and 3 only.
        let out = gpu.upload(&[-1.0f32; 5], "out").unwrap();
        gpu.run(&[admm::sq_diff_sum(gpu, &tw, &tz, &out, 2, &v).unwrap()]).unwrap();
        let got = read(gpu, &out);
        let want = cpu::sq_diff_sum(&w, &z);
        assert_close(&format!("sq_diff_sum {r}×{c} Σ(W−Z)²"), &got[2..3], &want[..1], 1e-5);
        assert_close(&format!("sq_diff_sum {r}×{c} ΣW²"), &got[3..4], &want[1..], 1e-5);
        assert_eq!([got[0], got[1], got[4]], [-1.0; 3], "sq_diff_sum {r}×{c}: wrote outside its slots");
        let res = autocompress::prune::admm::primal_residual([got[2], got[3]]);
        let want_res = (want[0] as f64 / want[1] as f64).sqrt() as f32;
        assert!((res - want_res).abs() <= 1e-5 * want_res, "primal residual {res} vs {want_res}");
    }
    // Z = W: zero residual, exactly.
    let w = rand_vec(1000, 1700);
    let (tw, tz) = (gpu.upload(&w, "w").unwrap(), gpu.upload(&w, "z").unwrap());
    let out = nan_tensor(gpu, 2, "out");
    gpu.run(&[admm::sq_diff_sum(gpu, &tw, &tz, &out, 0, &GroupView::new(10, 100, false)).unwrap()]).unwrap();
    assert_eq!(read(gpu, &out)[0], 0.0);
}

// ----------------------------------------------------------------------------- group_stats

#[test]
fn group_stats_match_reference() {
    let gpu = gpu_or_skip!();
    for (vi, v) in views().enumerate() {
        // About 40% exact zeros (some −0), plus whole zero groups.
        let mut w: Vec<f32> = rand_vec(v.len(), 1800 + vi as u64)
            .into_iter()
            .map(|x| if x.abs() < 0.3 { 0.0 } else if x.abs() < 0.4 { -0.0 } else { x })
            .collect();
        for grp in (0..v.groups()).step_by(3) {
            for i in cpu::group_entries(v.rows, v.cols, col(&v), grp) {
                w[i] = 0.0;
            }
        }
        let tw = gpu.upload(&w, "w").unwrap();
        let stats = nan_tensor(gpu, 2 * v.groups(), "stats");
        gpu.run(&[purify::group_stats(gpu, &tw, &stats, &v).unwrap()]).unwrap();
        let got = read(gpu, &stats);
        let want = cpu::group_stats(&w, v.rows, v.cols, col(&v));
        let (gz, gn): (Vec<f32>, Vec<f32>) = got.chunks(2).map(|p| (p[0], p[1])).unzip();
        let (wz, wn): (Vec<f32>, Vec<f32>) = want.chunks(2).map(|p| (p[0], p[1])).unzip();
        assert_exact(&format!("group_stats {}: zero counts", tag(&v)), &gz, &wz);
        assert_close(&format!("group_stats {}: norms", tag(&v)), &gn, &wn, 1e-5);
        assert_eq!(gn[0], 0.0, "group_stats {}: an all-zero group has norm 0", tag(&v));
    }
}

// ------------------------------------------------------------------------------ launchers

#[test]
fn launchers_reject_out_of_range_arguments() {
    let gpu = gpu_or_skip!();
    let v = GroupView::new(4, 6, true);
    let w = gpu.tensor(24, "w").unwrap();
    let short = gpu.tensor(23, "short").unwrap();
    let groups = gpu.tensor(6, "groups").unwrap();
    let few = gpu.tensor(5, "few").unwrap();
    assert!(admm::select_top(gpu, &groups, &groups, 6, 7).is_err(), "keep above the group count");
    assert!(admm::select_top(gpu, &few, &groups, 6, 3).is_err(), "norms shorter than the groups");
    assert!(admm::group_norms(gpu, &short, None, &groups, &v).is_err(), "W shorter than the view");
    assert!(admm::group_norms(gpu, &w, Some(&short), &groups, &v).is_err(), "U shorter than the view");
    assert!(admm::group_norms(gpu, &w, None, &few, &v).is_err(), "norms shorter than the groups");
    assert!(admm::project(gpu, &w, None, &few, &w, None, &v).is_err(), "keep mask shorter than the groups");
    assert!(admm::project(gpu, &w, None, &groups, &short, None, &v).is_err(), "Z shorter than the view");
    assert!(admm::project(gpu, &w, None, &groups, &w, Some(&short), &v).is_err(), "M shorter than the view");
    assert!(admm::hard_prune(gpu, &w, &groups, &short, &v).is_err(), "M shorter than the view");
    assert!(admm::dual_update(gpu, &w, &short, &w, 1.0, &v).is_err(), "Z shorter than the view");
    assert!(admm::admm_penalty(gpu, &w, &w, &w, &short, 1.0, &v).is_err(), "dW shorter than the view");
    assert!(admm::admm_penalty(gpu, &w, &w, &w, &w, f32::NAN, &v).is_err(), "rho not finite");
    assert!(admm::sq_diff_sum(gpu, &w, &w, &groups, 5, &v).is_err(), "out slot past the end");
    assert!(purify::group_stats(gpu, &w, &groups, &v).is_err(), "stats shorter than 2 per group");
    assert!(admm::group_norms(gpu, &w, None, &groups, &GroupView::new(0, 6, false)).is_err(), "empty view");
}
