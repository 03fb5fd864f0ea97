// Register-tiled matrix multiply C = A · B (+ bias), and the `pack` gather that prepares operands.
//
// A is [M][KP] and B is [KP][NP], both row-major, read as vec4: KP and NP are multiples of 4 and
// the padding (k >= K) is zero, so the inner loop needs no bounds checks. B's columns may come
// in blocks of b_seg4 vec4s, b_bs4 apart, with rows b_rs4 apart (a batch of [K][P] images read
// in place as [K][batch·P]); a plain B is one block with rows np4 apart. Each thread owns a
// TM × (4·TN4) block of C held in registers; there is no workgroup memory and no barrier, which is
// what pays on CPU Vulkan drivers, and lanes that differ in local x read consecutive vec4s of B.
//
// C is written through a general index map so the same kernel serves conv (columns are
// (image, pixel) pairs, written back to NCHW) and linear layers (transposed output):
//   c[c_off + m*c_rs + (n / n_inner)*c_bs + (n % n_inner)*c_cs]   for n % n_inner < n_valid.

struct Params {
    m: u32, n: u32, kp4: u32, np4: u32,
    a_off4: u32, b_off4: u32, c_off: u32, c_rs: u32,
    c_bs: u32, c_cs: u32, n_inner: u32, n_valid: u32,
    accumulate: u32, bias_mode: u32, bias_off: u32, k_split4: u32,
    split_stride: u32, b_rs4: u32, b_seg4: u32, b_bs4: u32,
}

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const TM: u32 = {{TM}}u;
const TN4: u32 = {{TN4}}u;
const WX: u32 = {{WX}}u;
const WY: u32 = {{WY}}u;

@compute @workgroup_size(WX, WY)
fn gemm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    var acc: array<array<vec4<f32>, TN4>, TM>;
    var arow: array<u32, TM>;
    var bcol: array<u32, TN4>;
    let row0 = wg.y * WY * TM + lid.y * TM;
    let col0 = wg.x * WX * TN4 + lid.x;
    // Out-of-range rows and columns are clamped for loading and skipped when storing.
    for (var i = 0u; i < TM; i++) {
        arow[i] = p.a_off4 + min(row0 + i, p.m - 1u) * p.kp4;
    }
    for (var j = 0u; j < TN4; j++) {
        let c4 = min(col0 + j * WX, p.np4 - 1u);
        let blk = udiv(c4, p.b_seg4);
        bcol[j] = p.b_off4 + blk * p.b_bs4 + c4 - blk * p.b_seg4;
    }
    // Split-K: workgroup z reduces k4 in [z·k_split4, (z+1)·k_split4) into its own slice of C.
    let k_end = min((wg.z + 1u) * p.k_split4, p.kp4);
    let c_base = p.c_off + wg.z * p.split_stride;
    for (var k4 = wg.z * p.k_split4; k4 < k_end; k4++) {
        let kb = k4 * 4u * p.b_rs4;
        var bv: array<array<vec4<f32>, TN4>, 4>;
        for (var kk = 0u; kk < 4u; kk++) {
            for (var j = 0u; j < TN4; j++) {
                bv[kk][j] = b[bcol[j] + kb + kk * p.b_rs4];
            }
        }
        for (var i = 0u; i < TM; i++) {
            let av = a[arow[i] + k4];
            for (var j = 0u; j < TN4; j++) {
                acc[i][j] = acc[i][j] + av.x * bv[0][j] + av.y * bv[1][j] + av.z * bv[2][j] + av.w * bv[3][j];
            }
        }
    }
    for (var i = 0u; i < TM; i++) {
        let m = row0 + i;
        if (m >= p.m) { break; }
        for (var j = 0u; j < TN4; j++) {
            // n_inner is a multiple of 4 (or beyond every n), so a vec4 never straddles two blocks
            let nb = (col0 + j * WX) * 4u;
            let outer = udiv(nb, p.n_inner);
            let inner0 = nb - outer * p.n_inner;
            let base = c_base + m * p.c_rs + outer * p.c_bs;
            for (var q = 0u; q < 4u; q++) {
                let inner = inner0 + q;
                if (nb + q >= p.n || inner >= p.n_valid) { continue; }
                var v = acc[i][j][q];
                if (p.bias_mode == 1u) { v += bias[p.bias_off + m]; }
                let idx = base + inner * p.c_cs;
                if (p.accumulate != 0u) { v += c[idx]; }
                c[idx] = v;
            }
        }
    }
}

// c[off + i·rs + j·cs] (+)= sum over z of part[z][i][j] for i < m, j < n: the reduction after a
// split-K GEMM, which wrote each K-slice's [m][n] product to its own slice of `part`.
struct ReduceParams { m: u32, n: u32, splits: u32, off: u32, rs: u32, cs: u32, accumulate: u32, _p: u32 }

@group(0) @binding(0) var<storage, read> part: array<f32>;
@group(0) @binding(1) var<storage, read_write> cr: array<f32>;
@group(0) @binding(2) var<uniform> rp: ReduceParams;

@compute @workgroup_size(256)
fn split_reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let len = rp.m * rp.n;
    for (var i = gid.x; i < len; i += nwg.x * 256u) {
        var v = 0.0;
        for (var z = 0u; z < rp.splits; z++) { v += part[z * len + i]; }
        let row = udiv(i, rp.n);
        let idx = rp.off + row * rp.rs + (i - row * rp.n) * rp.cs;
        if (rp.accumulate != 0u) { v += cr[idx]; }
        cr[idx] = v;
    }
}

// dst[r][c] (r < RP, c < CP) = src[s_off + (r / r_in)*s_rb + (r % r_in)*s_rs + (c / c_in)*s_cb + (c % c_in)*s_cs]
// when r < R, r % r_in < r_valid, c < C and c % c_in < c_valid; zero otherwise.
struct PackParams {
    rows: u32, cols: u32, rp: u32, cp: u32,
    r_in: u32, r_valid: u32, c_in: u32, c_valid: u32,
    s_off: u32, s_rb: u32, s_rs: u32, s_cb: u32,
    s_cs: u32, d_off: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> q: PackParams;

@compute @workgroup_size(256)
fn pack(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < q.rp * q.cp; i += nwg.x * 256u) {
    let r = udiv(i, q.cp);
    let cc = i - r * q.cp;
    let ro = udiv(r, q.r_in);
    let ri = r - ro * q.r_in;
    let co = udiv(cc, q.c_in);
    let ci = cc - co * q.c_in;
    var v = 0.0;
    if (r < q.rows && cc < q.cols && ri < q.r_valid && ci < q.c_valid) {
        v = src[q.s_off + ro * q.s_rb + ri * q.s_rs + co * q.s_cb + ci * q.s_cs];
    }
    dst[q.d_off + i] = v;
    }
}
