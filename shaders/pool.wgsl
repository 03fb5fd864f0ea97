// Max pooling (any window and stride, floor mode, `pad` pixels of -inf on every side, pad < k)
// with the argmax kept for the backward pass, and global average pooling. Tensors are
// (N, C, H, W); `planes` = N*C. All loop with a grid stride over flat indices.

struct Params { planes: u32, h: u32, w: u32, oh: u32, ow: u32, k: u32, stride: u32, pad: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> arg: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn maxpool_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let ohw = p.oh * p.ow;
    for (var idx = gid.x; idx < p.planes * ohw; idx += nwg.x * 256u) {
    let plane = udiv(idx, ohw);
    let pix = idx - plane * ohw;
    let oh = udiv(pix, p.ow);
    let ow = pix - oh * p.ow;
    let base = plane * p.h * p.w;
    var best = 0.0;
    var best_i = 0u;
    var found = false;
    // rows and columns in padded coordinates; the padding is skipped, never compared
    for (var r = oh * p.stride; r < oh * p.stride + p.k; r++) {
        if (r < p.pad || r >= p.h + p.pad) { continue; }
        for (var s = ow * p.stride; s < ow * p.stride + p.k; s++) {
            if (s < p.pad || s >= p.w + p.pad) { continue; }
            let i = base + (r - p.pad) * p.w + s - p.pad;
            let v = x[i];
            // strict '>' keeps the first maximum: ties resolve to the lowest index
            if (!found || v > best) { best = v; best_i = i; found = true; }
        }
    }
    y[idx] = best;
    arg[idx] = best_i;
    }
}

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> argb: array<u32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> pb: Params;

// One thread owns one input row (plane, h): it zeroes the row, then walks the windows whose rows
// cover h and adds each window's gradient at its argmax when that lies in this row. Only the
// owner writes a row, so overlapping windows (3×3 / stride 2) need no atomics.
@compute @workgroup_size(256)
fn maxpool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var t = gid.x; t < pb.planes * pb.h; t += nwg.x * 256u) {
        let plane = udiv(t, pb.h);
        let hh = t - plane * pb.h;
        let row = t * pb.w; // flat index of (plane, hh, 0)
        for (var ww = 0u; ww < pb.w; ww++) { dx[row + ww] = 0.0; }
        // windows oh with oh*stride <= hp < oh*stride + k, hp = hh + pad in padded rows
        let hp = hh + pb.pad;
        let oh_lo = select(0u, udiv(hp + 1u - pb.k + pb.stride - 1u, pb.stride), hp + 1u > pb.k);
        let oh_hi = min(udiv(hp, pb.stride) + 1u, pb.oh);
        for (var oh = oh_lo; oh < oh_hi; oh++) {
            let o = (plane * pb.oh + oh) * pb.ow;
            for (var ow = 0u; ow < pb.ow; ow++) {
                let a = argb[o + ow];
                if (a >= row && a < row + pb.w) { dx[a] += dy[o + ow]; }
            }
        }
    }
}

struct AvgParams { planes: u32, hw: u32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<storage, read> ax: array<f32>;
@group(0) @binding(1) var<storage, read_write> ay: array<f32>;
@group(0) @binding(2) var<uniform> pa: AvgParams;

@compute @workgroup_size(64)
fn avgpool_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var plane = gid.x; plane < pa.planes; plane += nwg.x * 64u) {
        var s = 0.0;
        for (var i = 0u; i < pa.hw; i++) { s += ax[plane * pa.hw + i]; }
        ay[plane] = s / f32(pa.hw);
    }
}

// ax here is dy (one value per plane) and ay is dx.
@compute @workgroup_size(256)
fn avgpool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < pa.planes * pa.hw; i += nwg.x * 256u) {
        ay[i] = ax[udiv(i, pa.hw)] / f32(pa.hw);
    }
}
