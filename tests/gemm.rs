mod common;
use autocompress::gpu::gemm::{gemm, pack, Bias, Gemm, OutMap, Pack};
use common::*;

/// A [m][k] and B [k][n], packed by the `pack` kernel to vec4-aligned operands, multiplied, and
/// written row-major to C [m][n].
fn gpu_matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let g = gpu().unwrap();
    let ta = g.upload(a, "a").unwrap();
    let tb = g.upload(b, "b").unwrap();
    let kp = k.next_multiple_of(4);
    let np = n.next_multiple_of(4);
    let pa = g.tensor(m * kp, "pa").unwrap();
    let pb = g.tensor(kp * np, "pb").unwrap();
    let c = g.tensor(m * n, "c").unwrap();
    let plan = vec![
        pack(g, &ta, &pa, &Pack::matrix(m, k, k, 1, false)).unwrap(),
        pack(g, &tb, &pb, &Pack::matrix(k, n, n, 1, true)).unwrap(),
        gemm(g, &Gemm { a: &pa, a_off: 0, b: &pb, b_off: 0, m, n, kp, np }, Bias::None, &c, OutMap::rows(n)).unwrap(),
    ];
    g.run(&plan);
    g.read(&c).unwrap()
}

#[test]
fn gemm_matches_reference_on_awkward_shapes() {
    if gpu().is_none() { return; }
    for &(m, k, n) in &[(1, 1, 1), (3, 5, 7), (20, 25, 576), (33, 17, 65), (64, 64, 64), (10, 500, 3), (129, 31, 130)] {
        let a = rand_vec(m * k, 1);
        let b = rand_vec(k * n, 2);
        let got = gpu_matmul(&a, &b, m, k, n);
        let want = common::reference::matmul(&a, &b, m, k, n);
        let e = max_rel_err(&got, &want);
        assert!(e < 1e-5, "gemm {m}x{k}x{n}: rel err {e}");
    }
}
