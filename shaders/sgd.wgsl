// Momentum SGD with L2 weight decay (Caffe/PyTorch form), over all of a network's parameters at
// once: they lie in flat buffers (weights, gradients, velocities, masks), one aligned range each,
// with the weight-decayed ones first, so elements below `n_decay` take the decay:
//   v = momentum * v + (g + wd * w);  w = w - lr * v
// `sgd_masked` multiplies the gradient and the weight by a 0/1 mask (ones where a parameter is
// not pruned) so pruned weights stay exactly zero during masked retraining (SPEC.md §3). The
// padding between ranges is zero in g, w and v, so it stays zero. lr and momentum live in
// `hyper` so the prepared dispatch stays valid while the schedule changes them.

struct Params { n: u32, n_decay: u32, weight_decay: f32, _p0: u32 }

@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read> hyper: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let lr = hyper[0];
    let mom = hyper[1];
    for (var i = gid.x; i < p.n; i += nwg.x * 256u) {
        let wd = select(0.0, p.weight_decay, i < p.n_decay);
        let vel = mom * v[i] + g[i] + wd * w[i];
        v[i] = vel;
        w[i] = w[i] - lr * vel;
    }
}

@group(0) @binding(0) var<storage, read> gm: array<f32>;
@group(0) @binding(1) var<storage, read> hm: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<f32>;
@group(0) @binding(3) var<storage, read_write> wm: array<f32>;
@group(0) @binding(4) var<storage, read_write> vm: array<f32>;
@group(0) @binding(5) var<uniform> pm: Params;

@compute @workgroup_size(256)
fn sgd_masked(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let lr = hm[0];
    let mom = hm[1];
    for (var i = gid.x; i < pm.n; i += nwg.x * 256u) {
        let m = mask[i];
        let wd = select(0.0, pm.weight_decay, i < pm.n_decay);
        // the unmasked kernel's sum, term by term, so a mask of ones changes no bit
        let vel = mom * vm[i] + m * gm[i] + (m * wd) * wm[i];
        vm[i] = vel * m;
        wm[i] = (wm[i] - lr * vel) * m;
    }
}
