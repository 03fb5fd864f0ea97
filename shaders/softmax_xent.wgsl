// Fused softmax + cross-entropy over logits (B, classes), with optional distillation from a
// teacher's logits (Hinton et al. 2015). Rows i >= valid are batch padding: they get zero
// gradient and no loss. `hyper[2]` holds `valid` (as f32) so one prepared dispatch serves full
// and partial batches.
//
// distill = [alpha, T]. With alpha > 0 the loss of a row is
//   (1 − alpha)·CE(softmax(s), label) + alpha·T²·KL(softmax(t/T) ‖ softmax(s/T))
// for student logits s and teacher logits t; its gradient is
//   (1 − alpha)·(softmax(s) − onehot) + alpha·T·(softmax(s/T) − softmax(t/T)).
// alpha = 0 is plain cross-entropy and never reads `teacher`.

struct Params { batch: u32, classes: u32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read> hyper: array<f32>;
@group(0) @binding(3) var<storage, read> teacher: array<f32>;
@group(0) @binding(4) var<storage, read> distill: array<f32>;
@group(0) @binding(5) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

// stats[2i] = loss of row i, stats[2i+1] = 1 if its argmax equals the label.
@compute @workgroup_size(64)
fn softmax_xent(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= p.batch) { return; }
    let valid = u32(hyper[2]);
    let base = i * p.classes;
    if (i >= valid) {
        for (var c = 0u; c < p.classes; c++) { dlogits[base + c] = 0.0; }
        stats[2u * i] = 0.0;
        stats[2u * i + 1u] = 0.0;
        return;
    }
    var mx = logits[base];
    var arg = 0u;
    for (var c = 1u; c < p.classes; c++) {
        let v = logits[base + c];
        if (v > mx) { mx = v; arg = c; }
    }
    var z = 0.0;
    for (var c = 0u; c < p.classes; c++) { z += exp(logits[base + c] - mx); }
    let label = labels[i];
    let inv_b = 1.0 / f32(valid);
    let alpha = distill[0];
    let ce = log(z) + mx - logits[base + label];
    if (alpha <= 0.0) {
        for (var c = 0u; c < p.classes; c++) {
            let sm = exp(logits[base + c] - mx) / z;
            dlogits[base + c] = (sm - select(0.0, 1.0, c == label)) * inv_b;
        }
        stats[2u * i] = ce;
    } else {
        let t = distill[1];
        // softened student: its maximum is mx / t; softened teacher: max mt / t
        var mt = teacher[base];
        for (var c = 1u; c < p.classes; c++) { mt = max(mt, teacher[base + c]); }
        var zs = 0.0;
        var zt = 0.0;
        for (var c = 0u; c < p.classes; c++) {
            zs += exp((logits[base + c] - mx) / t);
            zt += exp((teacher[base + c] - mt) / t);
        }
        let lzs = log(zs);
        let lzt = log(zt);
        var kl = 0.0;
        for (var c = 0u; c < p.classes; c++) {
            let lps = (logits[base + c] - mx) / t - lzs;
            let lqt = (teacher[base + c] - mt) / t - lzt;
            let qt = exp(lqt);
            kl += qt * (lqt - lps);
            let sm = exp(logits[base + c] - mx) / z;
            let hard = sm - select(0.0, 1.0, c == label);
            dlogits[base + c] = ((1.0 - alpha) * hard + alpha * t * (exp(lps) - qt)) * inv_b;
        }
        stats[2u * i] = (1.0 - alpha) * ce + alpha * t * t * kl;
    }
    stats[2u * i + 1u] = select(0.0, 1.0, arg == label);
}

struct SumParams { batch: u32, _p0: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<storage, read> st: array<f32>;
@group(0) @binding(1) var<storage, read> hy: array<f32>;
@group(0) @binding(2) var<storage, read_write> metrics: array<f32>;
@group(0) @binding(3) var<uniform> ps: SumParams;

// metrics[0] += sum of losses, metrics[1] += number correct, and metrics[2 + hyper[3]] = this
// batch's loss sum: a ring of recent steps, so the host can name the step where the loss went
// NaN while reading back only every few dozen steps.
@compute @workgroup_size(1)
fn accumulate_metrics() {
    var l = 0.0;
    var c = 0.0;
    for (var i = 0u; i < ps.batch; i++) {
        l += st[2u * i];
        c += st[2u * i + 1u];
    }
    metrics[0] += l;
    metrics[1] += c;
    metrics[2u + u32(hy[3])] = l;
}
