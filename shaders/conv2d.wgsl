// Convolution as GEMM: `im2col` gathers the kept columns of the GEMM view for a chunk of images,
// the GEMM in gemm.wgsl multiplies, `col2im` folds column gradients back to the input image and
// `channel_sum` reduces output gradients to bias gradients.
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
    n0: u32, chunk: u32, transposed: u32, inv_off: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> tbl: array<u32>;
@group(0) @binding(2) var<storage, read_write> col: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

// col is [kcp][chunk*ohwp], or [chunk*ohwp][kcp] when transposed (the B operand of dW = dY·colᵀ).
// Grid-stride over the destination; indices split with udiv (integer division is scalar on CPUs).
@compute @workgroup_size(256)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let ncols = p.chunk * p.ohwp;
    for (var idx = gid.x; idx < p.kcp * ncols; idx += nwg.x * 256u) {
    var j: u32;
    var q: u32;
    if (p.transposed != 0u) {
        q = udiv(idx, p.kcp);
        j = idx - q * p.kcp;
    } else {
        j = udiv(idx, ncols);
        q = idx - j * ncols;
    }
    let img = udiv(q, p.ohwp);
    let pix = q - img * p.ohwp;
    var v = 0.0;
    if (j < p.kc && pix < p.oh * p.ow) {
        let e = tbl[j];
        let ch = e >> 16u;
        let oh = udiv(pix, p.ow);
        let ih = i32(oh * p.stride + ((e >> 8u) & 255u)) - i32(p.pad);
        let iw = i32((pix - oh * p.ow) * p.stride + (e & 255u)) - i32(p.pad);
        if (ih >= 0 && iw >= 0 && u32(ih) < p.h && u32(iw) < p.w) {
            v = x[(((p.n0 + img) * p.c + ch) * p.h + u32(ih)) * p.w + u32(iw)];
        }
    }
    col[idx] = v;
    }
}

@group(0) @binding(0) var<storage, read> dcol: array<f32>;
@group(0) @binding(1) var<storage, read> itbl: array<u32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> pb: Params;

// dx[n][c][h][w] = sum of dcol over every (r, s) tap that read x[n][c][h][w]; one thread per input
// element, so the fold is a deterministic gather without atomics. dcol is [kcp][chunk*ohwp].
@compute @workgroup_size(256)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let plane = pb.h * pb.w;
    for (var idx = gid.x; idx < pb.chunk * pb.c * plane; idx += nwg.x * 256u) {
    let pl = udiv(idx, plane);
    let pix = idx - pl * plane;
    let img = udiv(pl, pb.c);
    let ch = pl - img * pb.c;
    let hh = udiv(pix, pb.w);
    let ww = pix - hh * pb.w;
    let ncols = pb.chunk * pb.ohwp;
    var sum = 0.0;
    for (var r = 0u; r < pb.r; r++) {
        let th = i32(hh + pb.pad) - i32(r);
        if (th < 0) { continue; }
        let oh = udiv(u32(th), pb.stride);
        if (oh * pb.stride != u32(th) || oh >= pb.oh) { continue; }
        for (var s = 0u; s < pb.s; s++) {
            let tw = i32(ww + pb.pad) - i32(s);
            if (tw < 0) { continue; }
            let ow = udiv(u32(tw), pb.stride);
            if (ow * pb.stride != u32(tw) || ow >= pb.ow) { continue; }
            let j = itbl[pb.inv_off + (ch * pb.r + r) * pb.s + s];
            if (j == 0xffffffffu) { continue; }
            sum += dcol[j * ncols + img * pb.ohwp + oh * pb.ow + ow];
        }
    }
    dx[pb.n0 * pb.c * plane + idx] = sum;
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
    let total = ps.n * ps.p;
    var s = 0.0;
    for (var t = li; t < total; t += 64u) {
        let n = t / ps.p;
        s += dy[(n * ps.k + k) * ps.p + t % ps.p];
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
