// Convolution as GEMM: `im2col` gathers the kept columns of the GEMM view for a chunk of images
// (the explicit forward, see `bench --algo`), the GEMM in gemm.wgsl multiplies, `dgrad_weights`
// lays out the weights for the data gradient (conv_dgrad in conv_gemm.wgsl), and `channel_sum`
// reduces output gradients to bias gradients.
//
// Column table `tbl`: tbl[j] = c << 16 | r << 8 | s for the j-th kept column (j < kc); and
// tbl[inv_off + (c*R + r)*S + s] = j, or 0xffffffff where that column is pruned. A dense layer
// keeps every column in (c, r, s) order.
//
// x is (N, C, H, W); col holds images n0 .. n0+chunk, pixel p of image i at column i*ohwp + p.

struct Params {
    c: u32, h: u32, w: u32, oh: u32,
    ow: u32, ohwp: u32, stride: u32, pad: u32,
    r: u32, s: u32, kc: u32, kcp: u32,
    n0: u32, chunk: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> tbl: array<u32>;
@group(0) @binding(2) var<storage, read_write> col: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

// col is [kcp][chunk*ohwp]. One thread fills one output row `oh` of one kept column j of one
// image: the index arithmetic (udiv: integer division is scalar on CPUs) is paid once per row,
// not per element. Threads with j >= kc write the zero padding rows; the last row of an image
// also zeroes its pixel padding (ohw .. ohwp). Threads are j-major (lanes write along pixels).
@compute @workgroup_size(256)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let ncols = p.chunk * p.ohwp;
    let rows = p.kcp * p.chunk * p.oh;
    for (var t = gid.x; t < rows; t += nwg.x * 256u) {
        let j = udiv(t, p.chunk * p.oh);
        let io = t - j * p.chunk * p.oh; // img * oh + oh_row
        let img = udiv(io, p.oh);
        let oh = io - img * p.oh;
        var dst = j * ncols + img * p.ohwp + oh * p.ow; // first column of this row
        if (j < p.kc) {
            let e = tbl[j];
            let ih = i32(oh * p.stride + ((e >> 8u) & 255u)) - i32(p.pad);
            let row_ok = ih >= 0 && u32(ih) < p.h;
            let base = (((p.n0 + img) * p.c + (e >> 16u)) * p.h + u32(max(ih, 0))) * p.w;
            var iw = i32(e & 255u) - i32(p.pad);
            for (var ow = 0u; ow < p.ow; ow++) {
                var v = 0.0;
                if (row_ok && iw >= 0 && u32(iw) < p.w) {
                    v = x[base + u32(iw)];
                }
                col[dst] = v;
                dst += 1u;
                iw += i32(p.stride);
            }
        } else {
            for (var ow = 0u; ow < p.ow; ow++) {
                col[dst] = 0.0;
                dst += 1u;
            }
        }
        if (oh + 1u == p.oh) {
            for (var pad = p.oh * p.ow; pad < p.ohwp; pad++) {
                col[dst] = 0.0;
                dst += 1u;
            }
        }
    }
}

// Weights of the data gradient (conv_dgrad in conv_gemm.wgsl): wt[(c*R*S + t)*kp + k] = w[k][j]
// for the kept column j = (c, t) with tap t = r*S + s, zero where that column is pruned or k ≥ K
// (kp is K rounded up to 4): per channel and tap, the filters lie consecutive for vec4 loads.
struct DwParams { c: u32, k: u32, kc: u32, rs: u32, kp: u32, inv_off: u32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<storage, read> fw: array<f32>;
@group(0) @binding(1) var<storage, read> ftbl: array<u32>;
@group(0) @binding(2) var<storage, read_write> fwt: array<f32>;
@group(0) @binding(3) var<uniform> pf: DwParams;

@compute @workgroup_size(256)
fn dgrad_weights(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < pf.c * pf.rs * pf.kp; i += nwg.x * 256u) {
        let ct = udiv(i, pf.kp); // c * rs + tap: the index into the inverse column table
        let k = i - ct * pf.kp;
        var v = 0.0;
        if (k < pf.k) {
            let j = ftbl[pf.inv_off + ct];
            if (j != 0xffffffffu) { v = fw[k * pf.kc + j]; }
        }
        fwt[i] = v;
    }
}

// db[k] = sum over n < N, i < P of dy[(n*K + k)*P + i]: one workgroup per channel, strided
// partial sums, then a tree reduction in workgroup memory.
struct SumParams { n: u32, k: u32, p: u32, accumulate: u32 }

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> db: array<f32>;
@group(0) @binding(2) var<uniform> ps: SumParams;

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn channel_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let k = wg.x;
    // udiv, not '/' and '%': integer division is scalar on CPU drivers (LeNet conv1's 36,864
    // values per channel took 1.6–2× as long with it)
    let total = ps.n * ps.p;
    var s = 0.0;
    for (var t = li; t < total; t += 64u) {
        let n = udiv(t, ps.p);
        s += dy[(n * ps.k + k) * ps.p + t - n * ps.p];
    }
    partial[li] = s;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half >>= 1u) {
        if (li < half) { partial[li] += partial[li + half]; }
        workgroupBarrier();
    }
    if (li == 0u) {
        var v = partial[0];
        if (ps.accumulate != 0u) { v += db[k]; }
        db[k] = v;
    }
}

// The second half of a column-pruned layer's data gradient. The first, dcol = Wᵀ · dY over the
// kept columns only (a GEMM of kc rows, so the work shrinks with the columns kept), leaves dcol
// [kc][chunk·ohwp]; this gathers it back to images n0 .. n0+chunk of dX:
//   dX[n][c][h][w] = Σ over kept columns j = (c, r, s) of dcol[j][(n − n0)·ohwp + oh·OW + ow]
// with oh = (h + pad − r) / stride exact and inside the output (likewise ow). `ctab` lists each
// channel's kept columns: entries ctab[c] .. ctab[c + 1] of the pairs (j, r << 8 | s) that
// start at ctab[C + 1].
struct Col2imParams {
    c: u32, h: u32, w: u32, oh: u32,
    ow: u32, ohwp: u32, stride: u32, pad: u32,
    n0: u32, chunk: u32, cols: u32, chw: u32,
}

@group(0) @binding(0) var<storage, read> dcol: array<f32>;
@group(0) @binding(1) var<storage, read> ctab: array<u32>;
@group(0) @binding(2) var<storage, read_write> dxc: array<f32>;
@group(0) @binding(3) var<uniform> pc: Col2imParams;

// One workgroup per image plane (n, c), so the channel's kept-column list is the same for every
// lane and its loop is uniform; each thread owns four neighbouring pixels of a row, whose row
// offset and bounds it checks once.
@compute @workgroup_size(64)
fn col2im(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let plane = wg.x + wg.y * nwg.x;
    if (plane >= pc.chunk * pc.c) { return; }
    let n = udiv(plane, pc.c);
    let c = plane - n * pc.c;
    let pairs = pc.c + 1u;
    let quads = udiv(pc.w + 3u, 4u);
    let out0 = (pc.n0 + n) * pc.chw + c * pc.h * pc.w;
    for (var t = li; t < pc.h * quads; t += 64u) {
        let h = udiv(t, quads);
        let w0 = (t - h * quads) * 4u;
        let th = i32(h + pc.pad);
        var v = vec4<f32>(0.0);
        for (var e = ctab[c]; e < ctab[c + 1u]; e++) {
            let j = ctab[pairs + 2u * e];
            let rs = ctab[pairs + 2u * e + 1u];
            let dh = th - i32(rs >> 8u);
            if (dh < 0) { continue; }
            var oh = u32(dh);
            if (pc.stride != 1u) {
                oh = udiv(oh, pc.stride);
                if (oh * pc.stride != u32(dh)) { continue; }
            }
            if (oh >= pc.oh) { continue; }
            let base = j * pc.cols + n * pc.ohwp + oh * pc.ow;
            for (var q = 0u; q < 4u; q++) {
                let dw = i32(w0 + q + pc.pad) - i32(rs & 255u);
                if (dw < 0) { continue; }
                var ow = u32(dw);
                // stride 1 (uniform) needs no division
                if (pc.stride != 1u) {
                    ow = udiv(ow, pc.stride);
                    if (ow * pc.stride != u32(dw)) { continue; }
                }
                if (ow < pc.ow) { v[q] += dcol[base + ow]; }
            }
        }
        let out = out0 + h * pc.w + w0;
        for (var q = 0u; q < 4u; q++) {
            if (w0 + q < pc.w) { dxc[out + q] = v[q]; }
        }
    }
}
