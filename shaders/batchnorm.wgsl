// Batch normalisation of (N, C, P) activations, P = H·W pixels per channel plane (P = 1 after a
// linear layer).
//
// Training: per-channel batch mean μ and biased variance σ², x̂ = (x − μ)/√(σ² + ε),
// y = γ·x̂ + β; the running statistics move by `momentum` toward μ and the unbiased variance.
// Inference: μ and σ² are the running statistics. `stats` holds μ then 1/√(σ² + ε) per channel.
// Reductions run one workgroup per channel (bn_stats, bn_backward_reduce: CPU drivers, few
// workgroups), or, to fill a GPU, `slices` workgroups per channel whose partial results are
// merged per channel (the *_partial and *_merge pairs at the end). Either way in a fixed order,
// so results are deterministic.

struct Params { n: u32, c: u32, p: u32, mode: u32, eps: f32, momentum: f32, slices: u32, _b: u32 }

const TRAINING: u32 = 0u;

var<workgroup> red: array<f32, 64>;

// lane_sum(li, v): the sum of `v` over the 64 lanes, which every lane gets. The launcher fills
// in a tree over workgroup memory, or subgroup sums where the adapter has subgroups (norm.rs).
{{LANE_SUM}}

fn at(n: u32, c: u32, q: u32, p: Params) -> u32 {
    return (n * p.c + c) * p.p + q;
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> running: array<f32>;
@group(0) @binding(3) var<uniform> ps: Params;

// running: mean[C] then variance[C]. Two passes over the channel (mean, then squared
// deviations) rather than E[x²] − μ², which cancels badly for large means.
@compute @workgroup_size(64)
fn bn_stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let c = wg.x;
    if (ps.mode != TRAINING) {
        if (li == 0u) {
            stats[c] = running[c];
            stats[ps.c + c] = inverseSqrt(running[ps.c + c] + ps.eps);
        }
        return;
    }
    let m = ps.n * ps.p;
    var s = 0.0;
    for (var t = li; t < m; t += 64u) {
        s += x[at(t / ps.p, c, t % ps.p, ps)];
    }
    let mean = lane_sum(li, s) / f32(m);
    var q = 0.0;
    for (var t = li; t < m; t += 64u) {
        let d = x[at(t / ps.p, c, t % ps.p, ps)] - mean;
        q += d * d;
    }
    let var_b = lane_sum(li, q) / f32(m);
    if (li == 0u) {
        stats[c] = mean;
        stats[ps.c + c] = inverseSqrt(var_b + ps.eps);
        let unbiased = select(var_b, var_b * f32(m) / f32(m - 1u), m > 1u);
        running[c] = (1.0 - ps.momentum) * running[c] + ps.momentum * mean;
        running[ps.c + c] = (1.0 - ps.momentum) * running[ps.c + c] + ps.momentum * unbiased;
    }
}

@group(0) @binding(0) var<storage, read> ax: array<f32>;
@group(0) @binding(1) var<storage, read> astats: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> ay: array<f32>;
@group(0) @binding(5) var<uniform> pa: Params;

@compute @workgroup_size(256)
fn bn_apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let total = pa.n * pa.c * pa.p;
    for (var i = gid.x; i < total; i += nwg.x * 256u) {
        let c = (i / pa.p) % pa.c;
        ay[i] = gamma[c] * (ax[i] - astats[c]) * astats[pa.c + c] + beta[c];
    }
}

@group(0) @binding(0) var<storage, read> rdy: array<f32>;
@group(0) @binding(1) var<storage, read> rx: array<f32>;
@group(0) @binding(2) var<storage, read> rstats: array<f32>;
@group(0) @binding(3) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(4) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(5) var<uniform> pr: Params;

// dβ = Σ dy, dγ = Σ dy·x̂ over the channel.
@compute @workgroup_size(64)
fn bn_backward_reduce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let c = wg.x;
    let m = pr.n * pr.p;
    let mean = rstats[c];
    let inv = rstats[pr.c + c];
    var sb = 0.0;
    var sg = 0.0;
    for (var t = li; t < m; t += 64u) {
        let i = at(t / pr.p, c, t % pr.p, pr);
        sb += rdy[i];
        sg += rdy[i] * (rx[i] - mean) * inv;
    }
    let db = lane_sum(li, sb);
    let dg = lane_sum(li, sg);
    if (li == 0u) {
        dbeta[c] = db;
        dgamma[c] = dg;
    }
}

@group(0) @binding(0) var<storage, read> ddy: array<f32>;
@group(0) @binding(1) var<storage, read> dxin: array<f32>;
@group(0) @binding(2) var<storage, read> dstats: array<f32>;
@group(0) @binding(3) var<storage, read> dgam: array<f32>;
@group(0) @binding(4) var<storage, read> dgsum: array<f32>;
@group(0) @binding(5) var<storage, read> dbsum: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<uniform> pd: Params;

// Training: dx = γ/(m·σ) · (m·dy − dβ − x̂·dγ). Inference statistics are constants, so there
// dx = γ/σ · dy.
@compute @workgroup_size(256)
fn bn_backward_dx(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let total = pd.n * pd.c * pd.p;
    let m = f32(pd.n * pd.p);
    for (var i = gid.x; i < total; i += nwg.x * 256u) {
        let c = (i / pd.p) % pd.c;
        let inv = dstats[pd.c + c];
        if (pd.mode == TRAINING) {
            let xh = (dxin[i] - dstats[c]) * inv;
            dx[i] = dgam[c] * inv / m * (m * ddy[i] - dbsum[c] - xh * dgsum[c]);
        } else {
            dx[i] = dgam[c] * inv * ddy[i];
        }
    }
}

// ---- Split reductions: workgroup (c, s) of a C × slices grid covers positions
// [s·len, (s+1)·len) of channel c's n·p values, len = ⌈n·p / slices⌉.

fn slice_range(s: u32, m: u32, slices: u32) -> vec2<u32> {
    let len = (m + slices - 1u) / slices;
    let lo = min(s * len, m);
    return vec2<u32>(lo, min(lo + len, m));
}

@group(0) @binding(0) var<storage, read> sx: array<f32>;
@group(0) @binding(1) var<storage, read_write> spart: array<f32>;
@group(0) @binding(2) var<uniform> pss: Params;

// Per slice: (count, mean, sum of squared deviations from that mean), two passes over the slice.
@compute @workgroup_size(64)
fn bn_stats_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let c = wg.x;
    let r = slice_range(wg.y, pss.n * pss.p, pss.slices);
    var s = 0.0;
    for (var t = r.x + li; t < r.y; t += 64u) {
        s += sx[at(t / pss.p, c, t % pss.p, pss)];
    }
    let count = f32(r.y - r.x);
    let total = lane_sum(li, s);
    let mean = select(0.0, total / max(count, 1.0), count > 0.0);
    var q = 0.0;
    for (var t = r.x + li; t < r.y; t += 64u) {
        let d = sx[at(t / pss.p, c, t % pss.p, pss)] - mean;
        q += d * d;
    }
    let m2 = lane_sum(li, q);
    if (li == 0u) {
        let o = 3u * (wg.y * pss.c + c);
        spart[o] = count;
        spart[o + 1u] = mean;
        spart[o + 2u] = m2;
    }
}

@group(0) @binding(0) var<storage, read> mpart: array<f32>;
@group(0) @binding(1) var<storage, read_write> mstats: array<f32>;
@group(0) @binding(2) var<storage, read_write> mrunning: array<f32>;
@group(0) @binding(3) var<uniform> pms: Params;

// One thread per channel merges its slices in order (Chan et al.'s pairwise update, exact for
// the mean and stable for the variance), then as bn_stats.
@compute @workgroup_size(64)
fn bn_stats_merge(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var c = gid.x; c < pms.c; c += nwg.x * 64u) {
        var n = 0.0;
        var mean = 0.0;
        var m2 = 0.0;
        for (var s = 0u; s < pms.slices; s++) {
            let o = 3u * (s * pms.c + c);
            let nb = mpart[o];
            if (nb == 0.0) { continue; }
            let delta = mpart[o + 1u] - mean;
            let tot = n + nb;
            mean += delta * nb / tot;
            m2 += mpart[o + 2u] + delta * delta * n * nb / tot;
            n = tot;
        }
        let m = pms.n * pms.p;
        let var_b = m2 / f32(m);
        mstats[c] = mean;
        mstats[pms.c + c] = inverseSqrt(var_b + pms.eps);
        let unbiased = select(var_b, var_b * f32(m) / f32(m - 1u), m > 1u);
        mrunning[c] = (1.0 - pms.momentum) * mrunning[c] + pms.momentum * mean;
        mrunning[pms.c + c] = (1.0 - pms.momentum) * mrunning[pms.c + c] + pms.momentum * unbiased;
    }
}

@group(0) @binding(0) var<storage, read> qdy: array<f32>;
@group(0) @binding(1) var<storage, read> qx: array<f32>;
@group(0) @binding(2) var<storage, read> qstats: array<f32>;
@group(0) @binding(3) var<storage, read_write> qpart: array<f32>;
@group(0) @binding(4) var<uniform> pq: Params;

// Per slice: (Σ dy, Σ dy·x̂).
@compute @workgroup_size(64)
fn bn_reduce_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let c = wg.x;
    let r = slice_range(wg.y, pq.n * pq.p, pq.slices);
    let mean = qstats[c];
    let inv = qstats[pq.c + c];
    var sb = 0.0;
    var sg = 0.0;
    for (var t = r.x + li; t < r.y; t += 64u) {
        let i = at(t / pq.p, c, t % pq.p, pq);
        sb += qdy[i];
        sg += qdy[i] * (qx[i] - mean) * inv;
    }
    let db = lane_sum(li, sb);
    let dg = lane_sum(li, sg);
    if (li == 0u) {
        let o = 2u * (wg.y * pq.c + c);
        qpart[o] = db;
        qpart[o + 1u] = dg;
    }
}

@group(0) @binding(0) var<storage, read> gpart: array<f32>;
@group(0) @binding(1) var<storage, read_write> gdgamma: array<f32>;
@group(0) @binding(2) var<storage, read_write> gdbeta: array<f32>;
@group(0) @binding(3) var<uniform> pg: Params;

@compute @workgroup_size(64)
fn bn_reduce_merge(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var c = gid.x; c < pg.c; c += nwg.x * 64u) {
        var db = 0.0;
        var dg = 0.0;
        for (var s = 0u; s < pg.slices; s++) {
            db += gpart[2u * (s * pg.c + c)];
            dg += gpart[2u * (s * pg.c + c) + 1u];
        }
        gdbeta[c] = db;
        gdgamma[c] = dg;
    }
}
