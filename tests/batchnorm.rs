//! Batch norm and the residual add against their CPU references on awkward shapes; the
//! reference's own backward is checked by finite differences first.
mod common;

use autocompress::gpu::norm::{self, BnGeom};
use common::reference as cpu;
use common::{assert_close, gpu_or_skip, rand_vec, read};

/// (n, c, p): one image, odd channels, a single pixel (after a linear layer), planes larger
/// than a workgroup, a channel count above 64.
const SHAPES: [(usize, usize, usize); 5] = [(1, 3, 5), (4, 7, 9), (3, 16, 1), (2, 5, 130), (2, 65, 4)];
const EPS: f32 = 1e-5;

#[test]
fn reference_backward_matches_finite_differences() {
    let (n, c, p) = (3, 2, 4);
    let x = rand_vec(n * c * p, 1);
    let gamma = rand_vec(c, 2);
    let beta = rand_vec(c, 3);
    let dy = rand_vec(n * c * p, 4);
    // loss = Σ dy·y, so ∂loss/∂x = dx
    let loss = |x: &[f32], gamma: &[f32], beta: &[f32]| -> f64 {
        let (y, _, _) = cpu::batchnorm_forward(x, gamma, beta, n, c, p, EPS, None);
        y.iter().zip(&dy).map(|(a, b)| *a as f64 * *b as f64).sum()
    };
    let (dx, dg, db) = cpu::batchnorm_backward(&dy, &x, &gamma, n, c, p, EPS);
    let h = 1e-3f32;
    let fd = |f: &dyn Fn(f32) -> f64| (f(h) - f(-h)) / (2.0 * h as f64);
    for j in 0..x.len() {
        let num = fd(&|d| {
            let mut xp = x.clone();
            xp[j] += d;
            loss(&xp, &gamma, &beta)
        });
        assert!((num - dx[j] as f64).abs() < 2e-2 * (1.0 + num.abs()), "dx[{j}]: numeric {num}, analytic {}", dx[j]);
    }
    for ch in 0..c {
        let ng = fd(&|d| {
            let mut nudged = gamma.clone();
            nudged[ch] += d;
            loss(&x, &nudged, &beta)
        });
        let nb = fd(&|d| {
            let mut nudged = beta.clone();
            nudged[ch] += d;
            loss(&x, &gamma, &nudged)
        });
        assert!((ng - dg[ch] as f64).abs() < 1e-2 * (1.0 + ng.abs()) && (nb - db[ch] as f64).abs() < 1e-2 * (1.0 + nb.abs()));
    }
}

/// Every shape with the training reductions in one workgroup per channel (CPU drivers) and
/// split over 2, 3 and 7 workgroups per channel (GPUs), 7 leaving some slices empty; the lane
/// sums as a workgroup-memory tree, and with subgroup operations where this device has them
/// (lavapipe on Vulkan does; GL has none, and there a subgroup layer is refused).
#[test]
fn batchnorm_forward_backward_and_running_statistics_match_reference() {
    let gpu = gpu_or_skip!();
    let subgroups: &[bool] = if gpu.adapter.subgroups { &[false, true] } else { &[false] };
    for &sub in subgroups {
        for slices in [1, 2, 3, 7] {
            for (case, &shape) in SHAPES.iter().enumerate() {
                check_batchnorm(gpu, case, shape, slices, sub);
            }
        }
    }
    if !gpu.adapter.subgroups {
        let geo = BnGeom { n: 2, c: 3, p: 4, training: true, eps: EPS, momentum: 0.1, slices: 1, subgroups: true };
        let t = gpu.tensor(24, "x").unwrap();
        let err = norm::bn_stats(gpu, &t, &t, &t, &t, &geo).err().expect("a subgroup reduction on a device without subgroups");
        assert!(err.to_string().contains("no subgroup operations"), "{err}");
    }
}

fn check_batchnorm(gpu: &autocompress::gpu::Gpu, case: usize, (n, c, p): (usize, usize, usize), slices: usize, subgroups: bool) {
    let tag = format!("bn n={n} c={c} p={p} slices={slices} subgroups={subgroups}");
    let seed = 10 * case as u64;
    // a large mean tests the two-pass variance
    let x: Vec<f32> = rand_vec(n * c * p, seed).iter().map(|v| 3.0 * v + 5.0).collect();
    let gamma = rand_vec(c, seed + 1);
    let beta = rand_vec(c, seed + 2);
    let dy = rand_vec(n * c * p, seed + 3);
    let momentum = 0.1;
    let run0: Vec<f32> = [vec![0.5; c], vec![2.0; c]].concat();
    let geo = BnGeom { n, c, p, training: true, eps: EPS, momentum, slices, subgroups };
    let part = gpu.tensor(geo.partial_len(), "partial sums").unwrap();
    let t = |v: &[f32], l: &str| gpu.upload(v, l).unwrap();
    let (tx, tg, tb, tdy) = (t(&x, "x"), t(&gamma, "gamma"), t(&beta, "beta"), t(&dy, "dy"));
    let stats = gpu.tensor(2 * c, "stats").unwrap();
    let running = t(&run0, "running");
    let (y, dx, dg, db) = (gpu.tensor(x.len(), "y").unwrap(), gpu.tensor(x.len(), "dx").unwrap(), gpu.tensor(c, "dg").unwrap(), gpu.tensor(c, "db").unwrap());
    let mut plan = norm::bn_stats(gpu, &tx, &stats, &running, &part, &geo).unwrap();
    assert_eq!(plan.len(), if slices > 1 { 2 } else { 1 }, "{tag}: split reductions are a partial and a merge dispatch");
    plan.push(norm::bn_apply(gpu, &tx, &stats, &tg, &tb, &y, &geo).unwrap());
    plan.extend(norm::bn_backward_reduce(gpu, &tdy, &tx, &stats, &dg, &db, &part, &geo).unwrap());
    plan.push(norm::bn_backward_dx(gpu, &tdy, &tx, &stats, &tg, &dg, &db, &dx, &geo).unwrap());
    gpu.run(&plan).unwrap();
    let (ry, mean, var) = cpu::batchnorm_forward(&x, &gamma, &beta, n, c, p, EPS, None);
    let (rdx, rdg, rdb) = cpu::batchnorm_backward(&dy, &x, &gamma, n, c, p, EPS);
    assert_close(&format!("{tag} forward"), &read(gpu, &y), &ry, 1e-4);
    assert_close(&format!("{tag} dgamma"), &read(gpu, &dg), &rdg, 1e-4);
    assert_close(&format!("{tag} dbeta"), &read(gpu, &db), &rdb, 1e-4);
    assert_close(&format!("{tag} dx"), &read(gpu, &dx), &rdx, 1e-3);
    let m = (n * p) as f64;
    let want: Vec<f32> = (0..c)
        .map(|ch| (0.9 * 0.5 + 0.1 * mean[ch]) as f32)
        .chain((0..c).map(|ch| (0.9 * 2.0 + 0.1 * if m > 1.0 { var[ch] * m / (m - 1.0) } else { var[ch] }) as f32))
        .collect();
    assert_close(&format!("{tag} running statistics"), &read(gpu, &running), &want, 1e-4);

    // inference: the running statistics, and dx = γ/σ·dy
    let inf = BnGeom { training: false, ..geo };
    let run = read(gpu, &running);
    let mut plan = norm::bn_stats(gpu, &tx, &stats, &running, &part, &inf).unwrap();
    plan.push(norm::bn_apply(gpu, &tx, &stats, &tg, &tb, &y, &inf).unwrap());
    plan.push(norm::bn_backward_dx(gpu, &tdy, &tx, &stats, &tg, &dg, &db, &dx, &inf).unwrap());
    gpu.run(&plan).unwrap();
    let (ry, _, _) = cpu::batchnorm_forward(&x, &gamma, &beta, n, c, p, EPS, Some((&run[..c], &run[c..])));
    assert_close(&format!("{tag} inference forward"), &read(gpu, &y), &ry, 1e-4);
    assert_eq!(read(gpu, &running), run, "{tag}: inference must not move the running statistics");
    let rdx: Vec<f32> = (0..x.len()).map(|i| gamma[(i / p) % c] / (run[c + (i / p) % c] + EPS).sqrt() * dy[i]).collect();
    assert_close(&format!("{tag} inference dx"), &read(gpu, &dx), &rdx, 1e-4);
}

#[test]
fn residual_add_matches_reference() {
    let gpu = gpu_or_skip!();
    for n in [1usize, 255, 1031] {
        let (a, b) = (rand_vec(n, 1), rand_vec(n, 2));
        let y = gpu.tensor(n, "y").unwrap();
        gpu.run(&[autocompress::gpu::elementwise::add(gpu, &gpu.upload(&a, "a").unwrap(), &gpu.upload(&b, "b").unwrap(), &y, n).unwrap()]).unwrap();
        let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        assert_eq!(read(gpu, &y), want, "add n={n}");
    }
}
