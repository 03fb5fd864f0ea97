// Workgroup-memory tiled variants of gemm.wgsl's `gemm` and conv_gemm.wgsl's `conv_gemm`, for
// GPUs: a WX × WY workgroup (64–128 threads) computes a BM × BN block of C, stepping K by BK.
// Each step the threads stage an A tile [BM][BK] and a B tile [BK][BN] in workgroup memory with
// coalesced loads (consecutive threads, consecutive addresses), then every thread multiplies its
// TM rows × TN4 vec4 columns out of them. Rows are interleaved by WY and vec4 columns by WX, so
// the lanes of a warp read distinct consecutive vec4s of B (no bank conflicts) and broadcast A.
// The index maps, bias, accumulation and split-K are exactly those of the register kernels.

const TM: u32 = {{TM}}u;
const TN4: u32 = {{TN4}}u;
const WX: u32 = {{WX}}u;
const WY: u32 = {{WY}}u;
const BK: u32 = {{BK}}u;
const BM: u32 = WY * TM;
const BN4: u32 = WX * TN4;
const BK4: u32 = BK / 4u;
const THREADS: u32 = WX * WY;

var<workgroup> ta: array<vec4<f32>, BM * BK4>; // A tile [m][k4]
var<workgroup> tb: array<vec4<f32>, BK * BN4>; // B tile [k][n4]

// One K step's product into the thread's accumulators (rows ty + i·WY, vec4s tx + j·WX).
fn multiply(acc: ptr<function, array<array<vec4<f32>, TN4>, TM>>, tx: u32, ty: u32) {
    for (var k4 = 0u; k4 < BK4; k4++) {
        var bv: array<array<vec4<f32>, TN4>, 4>;
        for (var kk = 0u; kk < 4u; kk++) {
            for (var j = 0u; j < TN4; j++) {
                bv[kk][j] = tb[(k4 * 4u + kk) * BN4 + tx + j * WX];
            }
        }
        for (var i = 0u; i < TM; i++) {
            let av = ta[(ty + i * WY) * BK4 + k4];
            for (var j = 0u; j < TN4; j++) {
                (*acc)[i][j] = (*acc)[i][j] + av.x * bv[0][j] + av.y * bv[1][j] + av.z * bv[2][j] + av.w * bv[3][j];
            }
        }
    }
}

// ---------------------------------------------------------------------------- GEMM (gemm.wgsl)

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

@compute @workgroup_size(WX, WY)
fn gemm_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    var acc: array<array<vec4<f32>, TN4>, TM>;
    let row0 = wg.y * BM;
    let col0 = wg.x * BN4; // in vec4s
    let k_begin = wg.z * p.k_split4;
    let k_end = min(k_begin + p.k_split4, p.kp4);
    for (var k0 = k_begin; k0 < k_end; k0 += BK4) {
        // A tile: row r, vec4 k4 of the step; rows past M are clamped (never stored), K past
        // the slice reads zero
        for (var e = li; e < BM * BK4; e += THREADS) {
            let r = e / BK4;
            let k4 = k0 + e % BK4;
            var v = vec4<f32>(0.0);
            if (k4 < k_end) { v = a[p.a_off4 + min(row0 + r, p.m - 1u) * p.kp4 + k4]; }
            ta[e] = v;
        }
        for (var e = li; e < BK * BN4; e += THREADS) {
            let kk = e / BN4;
            let k = k0 * 4u + kk;
            var v = vec4<f32>(0.0);
            if (k < k_end * 4u) {
                // B's columns in blocks (see gemm.wgsl)
                let c4 = min(col0 + e % BN4, p.np4 - 1u);
                let blk = udiv(c4, p.b_seg4);
                v = b[p.b_off4 + k * p.b_rs4 + blk * p.b_bs4 + c4 - blk * p.b_seg4];
            }
            tb[e] = v;
        }
        workgroupBarrier();
        multiply(&acc, lid.x, lid.y);
        workgroupBarrier();
    }
    let c_base = p.c_off + wg.z * p.split_stride;
    for (var i = 0u; i < TM; i++) {
        let m = row0 + lid.y + i * WY;
        if (m >= p.m) { break; }
        for (var j = 0u; j < TN4; j++) {
            // n_inner is a multiple of 4 (or beyond every n), so a vec4 never straddles two blocks
            let nb = (col0 + lid.x + j * WX) * 4u;
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

// ------------------------------------------------- implicit-GEMM convolution (conv_gemm.wgsl)
// B row j is kept column tbl[j] = c << 16 | r << 8 | s; B column n is pixel n % ohwp of image
// n / ohwp of the chunk from image n0. The block's pixels (receptive-field origins) are decoded
// once per tile, each K step's table entries once per step, both into workgroup memory; the
// bias is added in the epilogue.

struct CParams {
    m: u32, n: u32, kp4: u32, kc: u32,
    c_off: u32, ohw: u32, c_bs: u32, ohwp: u32,
    ow: u32, hw: u32, w: u32, h: u32,
    chw: u32, stride: u32, pad: u32, n0: u32,
}

@group(0) @binding(0) var<storage, read> wa: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> tbl: array<u32>;
@group(0) @binding(3) var<storage, read> cbias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> q: CParams;

var<workgroup> tk: array<vec4<i32>, BK>;    // per K step: (x offset, r, s, kept) of each column
var<workgroup> pbase: array<vec4<i32>, BN4>; // per pixel: x index of its (0, 0, 0) tap
var<workgroup> pih: array<vec4<i32>, BN4>;   // its top input row; far negative for padding
var<workgroup> piw: array<vec4<i32>, BN4>;

@compute @workgroup_size(WX, WY)
fn conv_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    var acc: array<array<vec4<f32>, TN4>, TM>;
    let row0 = wg.y * BM;
    let col0 = wg.x * BN4;
    for (var e = li; e < BN4; e += THREADS) {
        for (var l = 0u; l < 4u; l++) {
            let n = (col0 + e) * 4u + l;
            let img = udiv(n, q.ohwp);
            let pix = n - img * q.ohwp;
            let oh = udiv(pix, q.ow);
            let ih = i32(oh * q.stride) - i32(q.pad);
            let iw = i32((pix - oh * q.ow) * q.stride) - i32(q.pad);
            pih[e][l] = select(-1000000, ih, n < q.n && pix < q.ohw);
            piw[e][l] = iw;
            pbase[e][l] = i32((q.n0 + img) * q.chw) + ih * i32(q.w) + iw;
        }
    }
    for (var k0 = 0u; k0 < q.kp4; k0 += BK4) {
        for (var e = li; e < BK; e += THREADS) {
            let jcol = k0 * 4u + e;
            let t = tbl[min(jcol, q.kc - 1u)];
            let r = i32((t >> 8u) & 255u);
            let s = i32(t & 255u);
            tk[e] = vec4<i32>(i32((t >> 16u) * q.hw) + r * i32(q.w) + s, r, s, select(0, 1, jcol < q.kc));
        }
        for (var e = li; e < BM * BK4; e += THREADS) {
            let k4 = k0 + e % BK4;
            var v = vec4<f32>(0.0);
            if (k4 < q.kp4) { v = wa[min(row0 + e / BK4, q.m - 1u) * q.kp4 + k4]; }
            ta[e] = v;
        }
        workgroupBarrier();
        for (var e = li; e < BK * BN4; e += THREADS) {
            let col = tk[e / BN4];
            let n4 = e % BN4;
            let ih = pih[n4] + vec4<i32>(col.y);
            let iw = piw[n4] + vec4<i32>(col.z);
            let inside = (ih >= vec4<i32>(0)) & (ih < vec4<i32>(i32(q.h))) & (iw >= vec4<i32>(0)) & (iw < vec4<i32>(i32(q.w)));
            let at = pbase[n4] + vec4<i32>(col.x);
            var v = vec4<f32>(0.0);
            for (var l = 0u; l < 4u; l++) {
                if (inside[l] && col.w != 0) { v[l] = x[u32(at[l])]; }
            }
            tb[e] = v;
        }
        workgroupBarrier();
        multiply(&acc, lid.x, lid.y);
        workgroupBarrier();
    }
    for (var i = 0u; i < TM; i++) {
        let m = row0 + lid.y + i * WY;
        if (m >= q.m) { break; }
        let bm = cbias[m];
        for (var j = 0u; j < TN4; j++) {
            // ohwp is a multiple of 4, so a vec4 of columns never straddles two images
            let nb = (col0 + lid.x + j * WX) * 4u;
            let img = udiv(nb, q.ohwp);
            let pix0 = nb - img * q.ohwp;
            let out = q.c_off + m * q.ohw + img * q.c_bs;
            for (var l = 0u; l < 4u; l++) {
                if (nb + l >= q.n || pix0 + l >= q.ohw) { continue; }
                y[out + pix0 + l] = acc[i][j][l] + bm;
            }
        }
    }
}
