// Data gradient as a gather with lanes over input pixels, for GPUs (conv_dgrad in
// conv_gemm.wgsl gives lanes images, which suits CPU drivers but spreads a warp's loads K·OH·OW
// floats apart):
//   dX[n][c][h][w] = Σ over taps (r, s) and filters k of W[k][c][r][s] · dY[n][k][oh][ow]
// with oh = (h + pad − r) / stride exact and inside the output (likewise ow). A workgroup is WX
// neighbouring pixels of one image × WY channel groups; a thread owns one pixel and TM
// channels. Neighbouring lanes read neighbouring dY pixels (coalesced at stride 1, every other
// one at stride 2) and the same weights (a broadcast). Taps valid for a pixel differ only at the
// borders, where lanes diverge for a tap or two. wt is [C][R·S][kp4] as vec4 over k, zero past K
// and at pruned columns (`dgrad_weights` in conv2d.wgsl).

const TM: u32 = {{TM}}u;
const WX: u32 = {{WX}}u;
const WY: u32 = {{WY}}u;

struct DParams {
    c: u32, k: u32, kp4: u32, n: u32,
    h: u32, w: u32, oh: u32, ow: u32,
    r: u32, s: u32, stride: u32, pad: u32,
    ohw: u32, kohw: u32, chw: u32, hw: u32,
}

@group(0) @binding(0) var<storage, read> wt: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> d: DParams;

@compute @workgroup_size(WX, WY)
fn conv_dgrad_pixels(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let pix = wg.x * WX + lid.x;
    // lanes past the plane compute the last pixel again and do not store it
    let q = min(pix, d.hw - 1u);
    let hh = udiv(q, d.w);
    let th = hh + d.pad;
    let tw = q - hh * d.w + d.pad;
    let c0 = (wg.y * WY + lid.y) * TM;
    var arow: array<u32, TM>;
    for (var i = 0u; i < TM; i++) {
        arow[i] = min(c0 + i, d.c - 1u) * d.r * d.s;
    }
    var acc: array<f32, TM>;
    let img = wg.z * d.kohw;
    let klast = d.k - 1u;
    for (var r = 0u; r < d.r && r <= th; r++) {
        let oh = udiv(th - r, d.stride);
        if (oh * d.stride != th - r || oh >= d.oh) { continue; }
        for (var s = 0u; s < d.s && s <= tw; s++) {
            let ow = udiv(tw - s, d.stride);
            if (ow * d.stride != tw - s || ow >= d.ow) { continue; }
            let tap = r * d.s + s;
            let at = img + oh * d.ow + ow;
            for (var k4 = 0u; k4 < d.kp4; k4++) {
                // k past K reads filter K−1 (finite) against zero weights
                let k = k4 * 4u;
                let v = vec4<f32>(dy[at + min(k, klast) * d.ohw], dy[at + min(k + 1u, klast) * d.ohw],
                                  dy[at + min(k + 2u, klast) * d.ohw], dy[at + min(k + 3u, klast) * d.ohw]);
                for (var i = 0u; i < TM; i++) {
                    acc[i] += dot(wt[(arow[i] + tap) * d.kp4 + k4], v);
                }
            }
        }
    }
    if (pix >= d.hw) { return; }
    for (var i = 0u; i < TM; i++) {
        let c = c0 + i;
        if (c >= d.c) { break; }
        dx[wg.z * d.chw + c * d.hw + q] = acc[i];
    }
}
