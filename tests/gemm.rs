//! The register-tiled GEMM and the `pack` gather (shaders/gemm.wgsl) against the CPU product
//! (tests/common/reference/gemm.rs): awkward shapes, tile edges, offsets, bias, accumulation,
//! the transposed output map of linear layers, and the launcher's range checks.
//!
//! Tolerance: 1e-5 relative to the largest reference magnitude (`assert_close`), for sums of up
//! to 500 products in f32 on the GPU against f64 here.

mod common;

use autocompress::gpu::gemm::{gemm, pack, Bias, Gemm, OutMap, Pack};
use autocompress::gpu::Gpu;
use common::reference as cpu;
use common::*;

/// A [m][k] and B [k][n], packed by the `pack` kernel to vec4-aligned operands, multiplied, and
/// written row-major to C [m][n].
fn gpu_matmul(gpu: &Gpu, a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let ta = gpu.upload(a, "a").unwrap();
    let tb = gpu.upload(b, "b").unwrap();
    let kp = k.next_multiple_of(4);
    let np = n.next_multiple_of(4);
    let pa = gpu.tensor(m * kp, "pa").unwrap();
    let pb = gpu.tensor(kp * np, "pb").unwrap();
    let c = nan_tensor(gpu, m * n, "c");
    let plan = vec![
        pack(gpu, &ta, &pa, &Pack::matrix(m, k, k, 1, false)).unwrap(),
        pack(gpu, &tb, &pb, &Pack::matrix(k, n, n, 1, true)).unwrap(),
        gemm(gpu, &Gemm { a: &pa, a_off: 0, b: &pb, b_off: 0, m, n, kp, np }, Bias::None, &c, OutMap::rows(n)).unwrap(),
    ];
    gpu.run(&plan).unwrap();
    read(gpu, &c)
}

#[test]
fn gemm_matches_reference_on_awkward_shapes() {
    let gpu = gpu_or_skip!();
    for &(m, k, n) in &[(1, 1, 1), (3, 5, 7), (20, 25, 576), (33, 17, 65), (64, 64, 64), (10, 500, 3), (129, 31, 130)] {
        let a = rand_vec(m * k, 1);
        let b = rand_vec(k * n, 2);
        assert_close(&format!("gemm {m}x{k}x{n}"), &gpu_matmul(gpu, &a, &b, m, k, n), &cpu::matmul(&a, &b, m, k, n), 1e-5);
    }
}

/// Shapes around the tiles `Tile::for_shape` picks (without AUTOCOMPRESS_GEMM_TILE). Rows: a
/// GEMM of up to 25 rows is one row tile of exactly m rows, so 7–17 check short tiles of several
/// heights, and 33 two tiles of 17, the second with one clamped, unstored row. Columns: up to
/// np = 256 the NARROW tile covers 64 columns a workgroup (8 lanes × 2 vec4), so 127, 128 and 129
/// end inside, at and just past the second workgroup; 257 (np 260) takes the DEFAULT tile's 128
/// columns a workgroup and a third workgroup for one vec4; 1, 4 and 5 end inside, at and past
/// the first vec4.
#[test]
fn gemm_matches_reference_across_tile_boundaries() {
    let gpu = gpu_or_skip!();
    for &m in &[7, 8, 9, 15, 16, 17, 33] {
        for &n in &[1, 4, 5, 127, 128, 129, 257] {
            let k = 13;
            let a = rand_vec(m * k, 10 + m as u64);
            let b = rand_vec(k * n, 20 + n as u64);
            assert_close(&format!("gemm {m}x{k}x{n}"), &gpu_matmul(gpu, &a, &b, m, k, n), &cpu::matmul(&a, &b, m, k, n), 1e-5);
        }
    }
}

/// C = C + A·B + bias with A, B, C and the bias all at offsets inside larger buffers; entries of
/// C outside the block, and columns n..np of the padded B, are left alone.
#[test]
fn gemm_accumulates_with_bias_and_offsets() {
    let gpu = gpu_or_skip!();
    let (m, k, n) = (11, 10, 9);
    let (kp, np) = (12, 12);
    let (a_off, b_off, c_off, bias_off, ld) = (8, 4, 3, 2, 10);
    let a = rand_vec(m * k, 30);
    let b = rand_vec(k * n, 31);
    let bias = rand_vec(bias_off + m + 1, 32);
    let c0 = rand_vec(c_off + m * ld + 5, 33);
    let ta = gpu.upload(&a, "a").unwrap();
    let tb = gpu.upload(&b, "b").unwrap();
    let tbias = gpu.upload(&bias, "bias").unwrap();
    let pa = nan_tensor(gpu, a_off + m * kp, "pa");
    let pb = nan_tensor(gpu, b_off + kp * np + 4, "pb");
    let tc = gpu.upload(&c0, "c").unwrap();
    let out = OutMap { off: c_off, accumulate: true, ..OutMap::rows(ld) };
    let plan = vec![
        pack(gpu, &ta, &pa, &Pack { d_off: a_off, ..Pack::matrix(m, k, k, 1, false) }).unwrap(),
        pack(gpu, &tb, &pb, &Pack { d_off: b_off, ..Pack::matrix(k, n, n, 1, true) }).unwrap(),
        gemm(gpu, &Gemm { a: &pa, a_off, b: &pb, b_off, m, n, kp, np }, Bias::PerRow(&tbias, bias_off), &tc, out).unwrap(),
    ];
    gpu.run(&plan).unwrap();
    let prod = cpu::matmul(&a, &b, m, k, n);
    let mut want = c0.clone();
    for i in 0..m {
        for j in 0..n {
            want[c_off + i * ld + j] += prod[i * n + j] + bias[bias_off + i];
        }
    }
    let got = read(gpu, &tc);
    assert_close("gemm accumulate + bias + offsets", &got, &want, 1e-5);
    for (i, (x, y)) in got.iter().zip(&c0).enumerate() {
        let inside = i >= c_off && (i - c_off) / ld < m && (i - c_off) % ld < n;
        assert!(inside || x == y, "C[{i}] outside the output block changed from {y} to {x}");
    }
}

/// A linear layer in the transposed form: Y [B][O] = X [B][I] · Wᵀ + bias, computed as
/// W [O][I] · Xᵀ [I][B] with the output map writing row m (an output) with stride 1 and
/// column n (a sample) with stride O.
#[test]
fn gemm_writes_transposed_output() {
    let gpu = gpu_or_skip!();
    for &(batch, inp, outs) in &[(1, 3, 2), (13, 50, 10), (64, 120, 84), (5, 7, 17)] {
        let x = rand_vec(batch * inp, 40);
        let w = rand_vec(outs * inp, 41);
        let bias = rand_vec(outs, 42);
        let (ip, bp) = (inp.next_multiple_of(4), batch.next_multiple_of(4));
        let tx = gpu.upload(&x, "x").unwrap();
        let tw = gpu.upload(&w, "w").unwrap();
        let tbias = gpu.upload(&bias, "bias").unwrap();
        let pw = gpu.tensor(outs * ip, "pw").unwrap();
        let pxt = gpu.tensor(ip * bp, "pxt").unwrap();
        let y = nan_tensor(gpu, batch * outs, "y");
        let big = u32::MAX as usize;
        let out = OutMap { off: 0, rs: 1, bs: 0, cs: outs, n_inner: big, n_valid: big, accumulate: false };
        let plan = vec![
            pack(gpu, &tw, &pw, &Pack::matrix(outs, inp, inp, 1, false)).unwrap(),
            pack(gpu, &tx, &pxt, &Pack::matrix(inp, batch, 1, inp, true)).unwrap(),
            gemm(gpu, &Gemm { a: &pw, a_off: 0, b: &pxt, b_off: 0, m: outs, n: batch, kp: ip, np: bp }, Bias::PerRow(&tbias, 0), &y, out).unwrap(),
        ];
        gpu.run(&plan).unwrap();
        let wt: Vec<f32> = (0..inp * outs).map(|i| w[(i % outs) * inp + i / outs]).collect();
        let mut want = cpu::matmul(&x, &wt, batch, inp, outs);
        want.iter_mut().enumerate().for_each(|(i, v)| *v += bias[i % outs]);
        assert_close(&format!("linear {batch}x{inp} -> {outs}"), &read(gpu, &y), &want, 1e-5);
    }
}

/// The launcher checks every range on the host, since the kernel runs without bounds checks.
#[test]
fn gemm_rejects_inconsistent_shapes() {
    let gpu = gpu_or_skip!();
    let a = gpu.tensor(8 * 8, "a").unwrap();
    let b = gpu.tensor(8 * 8, "b").unwrap();
    let c = gpu.tensor(8 * 8, "c").unwrap();
    let ok = Gemm { a: &a, a_off: 0, b: &b, b_off: 0, m: 8, n: 8, kp: 8, np: 8 };
    assert!(gemm(gpu, &ok, Bias::None, &c, OutMap::rows(8)).is_ok());
    let bad = [
        ("kp not a multiple of 4", Gemm { kp: 6, ..ok }, 8, 0),
        ("a_off not a multiple of 4", Gemm { a_off: 2, ..ok }, 8, 0),
        ("A beyond its buffer", Gemm { m: 9, ..ok }, 7, 0),
        ("B beyond its buffer", Gemm { b_off: 4, ..ok }, 8, 0),
        ("n above np", Gemm { n: 9, ..ok }, 8, 0),
        ("empty", Gemm { m: 0, ..ok }, 8, 0),
        ("C too small", ok, 9, 0),
        ("bias too short", ok, 8, 1),
    ];
    for (what, gm, ld, bias_off) in bad {
        let bias = if bias_off > 0 { Bias::PerRow(&a, 64 - 7) } else { Bias::None };
        assert!(gemm(gpu, &gm, bias, &c, OutMap::rows(ld)).is_err(), "gemm accepted: {what}");
    }
}
