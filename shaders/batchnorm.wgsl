// Batch normalisation of (N, C, P) activations, P = H·W pixels per channel plane (P = 1 after a
// linear layer).
//
// Training: per-channel batch mean μ and biased variance σ², x̂ = (x − μ)/√(σ² + ε),
// y = γ·x̂ + β; the running statistics move by `momentum` toward μ and the unbiased variance.
// Inference: μ and σ² are the running statistics. `stats` holds μ then 1/√(σ² + ε) per channel.
// Reductions run one workgroup per channel in a fixed order, so results are deterministic.

struct Params { n: u32, c: u32, p: u32, mode: u32, eps: f32, momentum: f32, _a: u32, _b: u32 }

const TRAINING: u32 = 0u;

var<workgroup> red: array<f32, 64>;

// Sum of `v` over the 64 lanes; every lane gets the result.
fn lane_sum(li: u32, v: f32) -> f32 {
    red[li] = v;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half >>= 1u) {
        if (li < half) { red[li] += red[li + half]; }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

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
