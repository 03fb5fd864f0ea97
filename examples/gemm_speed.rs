use autocompress::gpu::gemm::{gemm, Bias, Gemm, OutMap};
use autocompress::gpu::Gpu;
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|x| x.parse().unwrap()).collect();
    let (m, k, n) = (a[0], a[1], a[2]);
    let g = Gpu::new(None).unwrap();
    let ta = g.tensor(m * k, "a").unwrap();
    let tb = g.tensor(k * n, "b").unwrap();
    let c = g.tensor(m * n, "c").unwrap();
    let plan = vec![gemm(&g, &Gemm { a: &ta, a_off: 0, b: &tb, b_off: 0, m, n, kp: k, np: n }, Bias::None, &c, OutMap::rows(n)).unwrap()];
    let s = if std::env::var("PIPE").is_ok() {
        g.run(&plan); g.wait().unwrap();
        let t = std::time::Instant::now();
        for _ in 0..5 { g.run(&plan); }
        g.wait().unwrap();
        t.elapsed().as_secs_f64() / 5.0
    } else { autocompress::bench::time_plan(&g, &plan, 7).unwrap() / 1e3 };
    println!("{m}x{k}x{n} {:?}: {:.2} ms, {:.2} GFLOP/s", std::env::var("AUTOCOMPRESS_GEMM_TILE").ok(), s * 1e3, 2.0 * (m * k * n) as f64 / s / 1e9);
}
#[allow(dead_code)]
fn unused() {}
