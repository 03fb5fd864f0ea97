// Convolution forward as an implicit GEMM: Y = W · col(X) where the columns of col(X) are read
// straight from X instead of being gathered into a buffer first. Removing output filters
// (filter pruning) then shrinks all of the work, not only the GEMM.
//
// A = W packed [K][KP] as vec4 (zero past kc); the virtual B row j is kept column tbl[j]
// = c << 16 | r << 8 | s (see conv2d.wgsl); B column n is pixel n % ohwp of image n / ohwp of
// the chunk starting at image n0. Each thread owns TM filters × 4·TN4 pixels, precomputes where
// each of its pixels' receptive fields starts, and per kept column loads one input value per
// pixel (zero outside the image). Y is NCHW; bias is added per filter.

struct Params {
    m: u32, n: u32, kp4: u32, kc: u32,
    c_off: u32, ohw: u32, c_bs: u32, ohwp: u32,
    ow: u32, hw: u32, w: u32, h: u32,
    chw: u32, stride: u32, pad: u32, n0: u32,
}

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> tbl: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const TM: u32 = {{TM}}u;
const TN4: u32 = {{TN4}}u;
const WX: u32 = {{WX}}u;
const WY: u32 = {{WY}}u;

@compute @workgroup_size(WX, WY)
fn conv_gemm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    var acc: array<array<vec4<f32>, TN4>, TM>;
    var arow: array<u32, TM>;
    var base: array<vec4<i32>, TN4>; // x index of each pixel's (c, r, s) = (0, 0, 0) tap
    var ih0: array<vec4<i32>, TN4>;  // its top input row; far negative for padding columns
    var iw0: array<vec4<i32>, TN4>;
    let row0 = wg.y * WY * TM + lid.y * TM;
    let col0 = wg.x * WX * TN4 + lid.x;
    for (var i = 0u; i < TM; i++) {
        arow[i] = min(row0 + i, p.m - 1u) * p.kp4;
    }
    for (var j = 0u; j < TN4; j++) {
        for (var q = 0u; q < 4u; q++) {
            let n = (col0 + j * WX) * 4u + q;
            let img = udiv(n, p.ohwp);
            let pix = n - img * p.ohwp;
            let oh = udiv(pix, p.ow);
            let ih = i32(oh * p.stride) - i32(p.pad);
            let iw = i32((pix - oh * p.ow) * p.stride) - i32(p.pad);
            let valid = n < p.n && pix < p.ohw;
            ih0[j][q] = select(-1000000, ih, valid);
            iw0[j][q] = iw;
            base[j][q] = i32((p.n0 + img) * p.chw) + ih * i32(p.w) + iw;
        }
    }
    for (var k4 = 0u; k4 < p.kp4; k4++) {
        var bv: array<array<vec4<f32>, TN4>, 4>;
        for (var kk = 0u; kk < 4u; kk++) {
            let jcol = k4 * 4u + kk;
            if (jcol >= p.kc) { break; }
            let e = tbl[jcol];
            let r = i32((e >> 8u) & 255u);
            let s = i32(e & 255u);
            let koff = i32((e >> 16u) * p.hw) + r * i32(p.w) + s;
            for (var j = 0u; j < TN4; j++) {
                let ih = ih0[j] + vec4<i32>(r);
                let iw = iw0[j] + vec4<i32>(s);
                let inside = (ih >= vec4<i32>(0)) & (ih < vec4<i32>(i32(p.h))) & (iw >= vec4<i32>(0)) & (iw < vec4<i32>(i32(p.w)));
                let at = base[j] + vec4<i32>(koff);
                var v = vec4<f32>(0.0);
                for (var q = 0u; q < 4u; q++) {
                    if (inside[q]) { v[q] = x[u32(at[q])]; }
                }
                bv[kk][j] = v;
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
        let b = bias[m];
        for (var j = 0u; j < TN4; j++) {
            // ohwp is a multiple of 4, so a vec4 of columns never straddles two images
            let nb = (col0 + j * WX) * 4u;
            let img = udiv(nb, p.ohwp);
            let pix0 = nb - img * p.ohwp;
            let out = p.c_off + m * p.ohw + img * p.c_bs;
            for (var q = 0u; q < 4u; q++) {
                if (nb + q >= p.n || pix0 + q >= p.ohw) { continue; }
                y[out + pix0 + q] = acc[i][j][q] + b;
            }
        }
    }
}

// Weight gradient as an implicit GEMM: dW[k][j] (+)= Σ_t dY[k][t] · col[j][t] over the pixels t
// of images n0 .. n0+chunk, reading col from x and dY in its NCHW layout (no im2col buffer, no
// packed copy of dY). Filters are rows, the same for every lane, so each dY value is loaded once
// and broadcast; lanes own kept columns j and gather their x values. The pixel axis runs over
// chunk·ohwp (ohwp a multiple of 4, so 4 consecutive pixels lie in one image) and is split over
// workgroup z into slices of C as in gemm.wgsl's split-K.
// Where every plane of dY starts at a multiple of 4 (OH·OW % 4 == 0, so ohwp == ohw), the launcher
// sets DY4 and the 4 pixels of one filter are one vec4 load (`dyv`, the same buffer as `dyw`): on
// lavapipe the 4·TM scalar loads per 4 pixels cost about as much as the FMAs (LeNet conv1 weight
// gradient 0.3–0.55× the time in back-to-back profiles, conv2's 0.5–0.9×).

struct WParams {
    m: u32, n: u32, t4: u32, k_split4: u32,
    ohw: u32, ohwp: u32, ow: u32, hw: u32,
    w: u32, h: u32, chw: u32, stride: u32,
    pad: u32, n0: u32, accumulate: u32, split_stride: u32,
}

@group(0) @binding(0) var<storage, read> dyw: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;
@group(0) @binding(4) var<storage, read> dyv: array<vec4<f32>>;
@group(0) @binding(5) var<uniform> q: WParams;

const DY4: bool = {{DY4}};

@compute @workgroup_size(WX, WY)
fn conv_wgrad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    var acc: array<array<vec4<f32>, TN4>, TM>;
    var arow: array<u32, TM>;         // offset of each owned filter's plane in an image of dY
    var koff: array<vec4<i32>, TN4>;  // x offset of each owned column's tap from a pixel's origin
    var tr: array<vec4<i32>, TN4>;    // the tap's row r; far negative for padding columns
    var ts: array<vec4<i32>, TN4>;
    let row0 = wg.y * WY * TM + lid.y * TM;
    let col0 = wg.x * WX * TN4 + lid.x;
    for (var i = 0u; i < TM; i++) {
        arow[i] = min(row0 + i, q.m - 1u) * q.ohw;
    }
    for (var j = 0u; j < TN4; j++) {
        for (var l = 0u; l < 4u; l++) {
            let col = (col0 + j * WX) * 4u + l;
            let e = tbl[min(col, q.n - 1u)];
            let r = i32((e >> 8u) & 255u);
            let s = i32(e & 255u);
            koff[j][l] = i32((e >> 16u) * q.hw) + r * i32(q.w) + s;
            tr[j][l] = select(-1000000, r, col < q.n);
            ts[j][l] = s;
        }
    }
    let t_end = min((wg.z + 1u) * q.k_split4, q.t4);
    for (var t4 = wg.z * q.k_split4; t4 < t_end; t4++) {
        let img = q.n0 + udiv(t4 * 4u, q.ohwp);
        let pix0 = t4 * 4u - (img - q.n0) * q.ohwp;
        var bv: array<array<vec4<f32>, TN4>, 4>;
        var dyo: vec4<u32>;
        var live = vec4<f32>(0.0); // 1 for real pixels, 0 for the padding up to ohwp
        for (var l = 0u; l < 4u; l++) {
            let pix = min(pix0 + l, q.ohw - 1u);
            let oh = udiv(pix, q.ow);
            let ih = i32(oh * q.stride) - i32(q.pad);
            let iw = i32((pix - oh * q.ow) * q.stride) - i32(q.pad);
            let base = i32(img * q.chw) + ih * i32(q.w) + iw;
            dyo[l] = img * q.m * q.ohw + pix;
            live[l] = select(0.0, 1.0, pix0 + l < q.ohw);
            for (var j = 0u; j < TN4; j++) {
                let hh = vec4<i32>(ih) + tr[j];
                let ww = vec4<i32>(iw) + ts[j];
                let inside = (hh >= vec4<i32>(0)) & (hh < vec4<i32>(i32(q.h))) & (ww >= vec4<i32>(0)) & (ww < vec4<i32>(i32(q.w)));
                let at = vec4<i32>(base) + koff[j];
                var v = vec4<f32>(0.0);
                for (var c = 0u; c < 4u; c++) {
                    if (inside[c]) { v[c] = x[u32(at[c])]; }
                }
                bv[l][j] = v;
            }
        }
        for (var i = 0u; i < TM; i++) {
            var av: vec4<f32>;
            if (DY4) {
                av = dyv[(arow[i] + dyo.x) / 4u];
            } else {
                av = live * vec4<f32>(dyw[arow[i] + dyo.x], dyw[arow[i] + dyo.y], dyw[arow[i] + dyo.z], dyw[arow[i] + dyo.w]);
            }
            for (var j = 0u; j < TN4; j++) {
                acc[i][j] = acc[i][j] + av.x * bv[0][j] + av.y * bv[1][j] + av.z * bv[2][j] + av.w * bv[3][j];
            }
        }
    }
    let out0 = wg.z * q.split_stride;
    for (var i = 0u; i < TM; i++) {
        let m = row0 + i;
        if (m >= q.m) { break; }
        for (var j = 0u; j < TN4; j++) {
            let nb = (col0 + j * WX) * 4u;
            for (var l = 0u; l < 4u; l++) {
                if (nb + l >= q.n) { continue; }
                let idx = out0 + m * q.n + nb + l;
                var v = acc[i][j][l];
                if (q.accumulate != 0u) { v += dw[idx]; }
                dw[idx] = v;
            }
        }
    }
}

// Data gradient as a gather, for any stride and padding:
//   dX[n][c][h][w] = Σ over taps (r, s) and filters k of W[k][c][r][s] · dY[n][k][oh][ow]
// with oh = (h + pad − r) / stride exact and inside the output (likewise ow). A workgroup owns
// one input pixel (h, w) of every image it covers, so which taps are valid is the same for all of
// its lanes: the loop visits only those and needs no bounds test per load. (The transposed
// convolution it replaces ran LeNet conv2's dX over a 4-padded dY, where 56% of the taps read
// zeros.) Lanes own images, 4·TN4 each, interleaved by WX; a thread owns TM channels, whose rows
// of wt are the same for every lane. wt is [C][R·S][kp4] as vec4 over k, zero past K and at
// pruned columns (`dgrad_weights` in conv2d.wgsl), so the k loop reads consecutive vec4s.

struct DParams {
    c: u32, k: u32, kp4: u32, n: u32,
    h: u32, w: u32, oh: u32, ow: u32,
    r: u32, s: u32, stride: u32, pad: u32,
    ohw: u32, kohw: u32, chw: u32, hw: u32,
}

@group(0) @binding(0) var<storage, read> wt: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> dyd: array<f32>;
@group(0) @binding(2) var<storage, read_write> dxd: array<f32>;
@group(0) @binding(3) var<uniform> d: DParams;

@compute @workgroup_size(WX, WY)
fn conv_dgrad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    var acc: array<array<vec4<f32>, TN4>, TM>;
    var arow: array<u32, TM>;        // wt row of each owned channel's tap 0
    var img: array<vec4<u32>, TN4>;  // dY offset of each owned image (clamped to the last image)
    let hh = udiv(wg.x, d.w);
    let ww = wg.x - hh * d.w;
    let c0 = (wg.y * WY + lid.y) * TM;
    let i0 = wg.z * WX * 4u * TN4 + lid.x;
    for (var i = 0u; i < TM; i++) {
        arow[i] = min(c0 + i, d.c - 1u) * d.r * d.s;
    }
    for (var j = 0u; j < TN4; j++) {
        for (var q = 0u; q < 4u; q++) {
            img[j][q] = min(i0 + (j * 4u + q) * WX, d.n - 1u) * d.kohw;
        }
    }
    let th = hh + d.pad;
    let tw = ww + d.pad;
    for (var r = 0u; r < d.r && r <= th; r++) {
        let oh = udiv(th - r, d.stride);
        if (oh * d.stride != th - r || oh >= d.oh) { continue; }
        for (var s = 0u; s < d.s && s <= tw; s++) {
            let ow = udiv(tw - s, d.stride);
            if (ow * d.stride != tw - s || ow >= d.ow) { continue; }
            let tap = r * d.s + s;
            let pix = oh * d.ow + ow;
            for (var k4 = 0u; k4 < d.kp4; k4++) {
                // k past K reads filter K−1 (finite) against zero weights
                var bv: array<array<vec4<f32>, TN4>, 4>;
                for (var kk = 0u; kk < 4u; kk++) {
                    let at = min(k4 * 4u + kk, d.k - 1u) * d.ohw + pix;
                    for (var j = 0u; j < TN4; j++) {
                        bv[kk][j] = vec4<f32>(dyd[img[j].x + at], dyd[img[j].y + at], dyd[img[j].z + at], dyd[img[j].w + at]);
                    }
                }
                for (var i = 0u; i < TM; i++) {
                    let av = wt[(arow[i] + tap) * d.kp4 + k4];
                    for (var j = 0u; j < TN4; j++) {
                        acc[i][j] = acc[i][j] + av.x * bv[0][j] + av.y * bv[1][j] + av.z * bv[2][j] + av.w * bv[3][j];
                    }
                }
            }
        }
    }
    for (var i = 0u; i < TM; i++) {
        let c = c0 + i;
        if (c >= d.c) { break; }
        for (var j = 0u; j < TN4; j++) {
            for (var q = 0u; q < 4u; q++) {
                let n = i0 + (j * 4u + q) * WX;
                if (n >= d.n) { continue; }
                dxd[n * d.chw + c * d.hw + hh * d.w + ww] = acc[i][j][q];
            }
        }
    }
}
