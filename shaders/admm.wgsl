// ADMM structured pruning (SPEC.md §3) on the GEMM view of one layer: a row-major [rows][cols]
// matrix whose groups are its rows (filter scheme, `column` = 0) or its columns (column
// scheme, `column` = 1). Entry i belongs to group i / cols (filter) or i % cols (column).
//
//   group_norms   norms[g] = ‖group g of (W + U)‖²          (U read only when `with_u` is set)
//   select_top    keep[g] = 1 iff rank(g) < keep, rank(g) = #{j : n_j > n_g or (n_j = n_g, j < g)}
//   project       Z = keep[group] · (W + U); project_mask also writes M = keep[group]
//   hard_prune    W = keep[group] · W and M = keep[group], in place
//   dual_update   U += W − Z
//   admm_penalty  dW += rho · (W − Z + U)
//   sq_diff_sum   out[at] = Σ (W − Z)², out[at + 1] = Σ W²   (the host forms ‖W − Z‖ / ‖W‖)
//
// Pruned entries are written with `select`, not a product, so they are exactly 0 even where
// W + U is not finite.

struct Params {
    rows: u32, cols: u32, column: u32, groups: u32,
    n: u32, keep: u32, with_u: u32, at: u32,
    rho: f32, rescale: f32, _p0: u32, _p1: u32,
}

fn group_of(i: u32, cols: u32, column: u32) -> u32 {
    let r = udiv(i, cols);
    return select(r, i - r * cols, column != 0u);
}

// ---------------------------------------------------------------------------- group_norms

@group(0) @binding(0) var<storage, read> gn_w: array<f32>;
@group(0) @binding(1) var<storage, read> gn_u: array<f32>;
@group(0) @binding(2) var<storage, read_write> gn_norms: array<f32>;
@group(0) @binding(3) var<uniform> gn_p: Params;

// One thread per group: a row is `cols` consecutive entries, a column `rows` entries `cols` apart.
@compute @workgroup_size(256)
fn group_norms(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var g = gid.x; g < gn_p.groups; g += nwg.x * 256u) {
        var i = g * gn_p.cols;
        var len = gn_p.cols;
        var step = 1u;
        if (gn_p.column != 0u) {
            i = g;
            len = gn_p.rows;
            step = gn_p.cols;
        }
        var s = 0.0;
        for (var t = 0u; t < len; t++) {
            var v = gn_w[i];
            if (gn_p.with_u != 0u) { v += gn_u[i]; }
            s += v * v;
            i += step;
        }
        gn_norms[g] = s;
    }
}

// ----------------------------------------------------------------------------- select_top

// The norms are read as raw bits and compared as integers: WGSL lets a compiler assume floats are
// never NaN or infinite, so float comparisons cannot be trusted to order them.
@group(0) @binding(0) var<storage, read> st_norms: array<u32>;
@group(0) @binding(1) var<storage, read_write> st_keep: array<f32>;
@group(0) @binding(2) var<uniform> st_p: Params;

// An unsigned key with the order of the floats: NaN counts as −∞ (least important), −0 as +0.
fn order_key(bits: u32) -> u32 {
    var b = bits;
    if ((b & 0x7fffffffu) > 0x7f800000u) { b = 0xff800000u; }
    if ((b & 0x7fffffffu) == 0u) { b = 0u; }
    if ((b & 0x80000000u) != 0u) { return ~b; }
    return b | 0x80000000u;
}

// One thread per group counts the groups ranked before it (O(groups²), fine below ~30k groups);
// it stops counting once it knows the group is out.
@compute @workgroup_size(256)
fn select_top(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = st_p.groups;
    let keep = st_p.keep;
    for (var i = gid.x; i < n; i += nwg.x * 256u) {
        let ki = order_key(st_norms[i]);
        var rank = 0u;
        // Lower indices win ties ...
        for (var j = 0u; j < i && rank < keep; j++) {
            rank += select(0u, 1u, order_key(st_norms[j]) >= ki);
        }
        // ... higher indices must be strictly larger.
        for (var j = i + 1u; j < n && rank < keep; j++) {
            rank += select(0u, 1u, order_key(st_norms[j]) > ki);
        }
        st_keep[i] = select(0.0, 1.0, rank < keep);
    }
}

// -------------------------------------------------------------------------------- project

@group(0) @binding(0) var<storage, read> pj_w: array<f32>;
@group(0) @binding(1) var<storage, read> pj_u: array<f32>;
@group(0) @binding(2) var<storage, read> pj_keep: array<f32>;
@group(0) @binding(3) var<storage, read_write> pj_z: array<f32>;
@group(0) @binding(4) var<uniform> pj_p: Params;

@compute @workgroup_size(256)
fn project(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < pj_p.n; i += nwg.x * 256u) {
        var v = pj_w[i];
        if (pj_p.with_u != 0u) { v += pj_u[i]; }
        let kept = pj_keep[group_of(i, pj_p.cols, pj_p.column)] != 0.0;
        pj_z[i] = select(0.0, v, kept);
    }
}

@group(0) @binding(0) var<storage, read> pm_w: array<f32>;
@group(0) @binding(1) var<storage, read> pm_u: array<f32>;
@group(0) @binding(2) var<storage, read> pm_keep: array<f32>;
@group(0) @binding(3) var<storage, read_write> pm_z: array<f32>;
@group(0) @binding(4) var<storage, read_write> pm_mask: array<f32>;
@group(0) @binding(5) var<uniform> pm_p: Params;

@compute @workgroup_size(256)
fn project_mask(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < pm_p.n; i += nwg.x * 256u) {
        var v = pm_w[i];
        if (pm_p.with_u != 0u) { v += pm_u[i]; }
        let kept = pm_keep[group_of(i, pm_p.cols, pm_p.column)] != 0.0;
        pm_z[i] = select(0.0, v, kept);
        pm_mask[i] = select(0.0, 1.0, kept);
    }
}

// ----------------------------------------------------------------------------- hard_prune

@group(0) @binding(0) var<storage, read_write> hp_w: array<f32>;
@group(0) @binding(1) var<storage, read> hp_keep: array<f32>;
@group(0) @binding(2) var<storage, read_write> hp_mask: array<f32>;
@group(0) @binding(3) var<uniform> hp_p: Params;

@compute @workgroup_size(256)
fn hard_prune(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < hp_p.n; i += nwg.x * 256u) {
        let kept = hp_keep[group_of(i, hp_p.cols, hp_p.column)] != 0.0;
        hp_w[i] = select(0.0, hp_w[i], kept);
        hp_mask[i] = select(0.0, 1.0, kept);
    }
}

// ---------------------------------------------------------------------------- dual_update

@group(0) @binding(0) var<storage, read> du_w: array<f32>;
@group(0) @binding(1) var<storage, read> du_z: array<f32>;
@group(0) @binding(2) var<storage, read_write> du_u: array<f32>;
@group(0) @binding(3) var<uniform> du_p: Params;

@compute @workgroup_size(256)
fn dual_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < du_p.n; i += nwg.x * 256u) {
        // `rescale` is ρ_old/ρ_new for the scaled dual (1 when ρ is fixed)
        du_u[i] = (du_u[i] + (du_w[i] - du_z[i])) * du_p.rescale;
    }
}

// --------------------------------------------------------------------------- admm_penalty

@group(0) @binding(0) var<storage, read> ap_w: array<f32>;
@group(0) @binding(1) var<storage, read> ap_z: array<f32>;
@group(0) @binding(2) var<storage, read> ap_u: array<f32>;
@group(0) @binding(3) var<storage, read_write> ap_dw: array<f32>;
@group(0) @binding(4) var<uniform> ap_p: Params;

// The gradient of rho/2 · ‖W − Z + U‖² (SPEC.md §3: the squared norm, not its square root).
@compute @workgroup_size(256)
fn admm_penalty(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < ap_p.n; i += nwg.x * 256u) {
        ap_dw[i] = ap_dw[i] + ap_p.rho * (ap_w[i] - ap_z[i] + ap_u[i]);
    }
}

// ---------------------------------------------------------------------------- sq_diff_sum

@group(0) @binding(0) var<storage, read> sd_w: array<f32>;
@group(0) @binding(1) var<storage, read> sd_z: array<f32>;
@group(0) @binding(2) var<storage, read_write> sd_out: array<f32>;
@group(0) @binding(3) var<uniform> sd_p: Params;

var<workgroup> sd_part: array<vec2<f32>, 256>;

// One workgroup: strided partial sums per thread, then a tree reduction in workgroup memory.
@compute @workgroup_size(256)
fn sq_diff_sum(@builtin(local_invocation_index) li: u32) {
    var acc = vec2<f32>(0.0, 0.0);
    for (var i = li; i < sd_p.n; i += 256u) {
        let w = sd_w[i];
        let d = w - sd_z[i];
        acc += vec2<f32>(d * d, w * w);
    }
    sd_part[li] = acc;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half >>= 1u) {
        if (li < half) { sd_part[li] += sd_part[li + half]; }
        workgroupBarrier();
    }
    if (li == 0u) {
        sd_out[sd_p.at] = sd_part[0].x;
        sd_out[sd_p.at + 1u] = sd_part[0].y;
    }
}
