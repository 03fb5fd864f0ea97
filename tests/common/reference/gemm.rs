//! CPU twin of shaders/gemm.wgsl (`gemm`): the plain matrix product.

/// C[m][n] = sum_k A[m][k] B[k][n]
pub fn matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for t in 0..k {
                s += a[i * k + t] as f64 * b[t * n + j] as f64;
            }
            c[i * n + j] = s as f32;
        }
    }
    c
}
