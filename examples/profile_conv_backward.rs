//! Every dispatch of one convolution's backward pass, timed on its own: vgg_mid (32 images,
//! 128 → 128 channels, 16×16, 3×3), dense and keeping every FACTOR-th column, inside the
//! minimal network `bench --backward` times (ReLU → conv → global pool → linear).
//!
//!     cargo run --release --example profile_conv_backward -- [FACTOR (default 4)] [REPS (default 10)]
use autocompress::bench::profile_step;
use autocompress::gpu::timing::Timer;
use autocompress::gpu::Gpu;
use autocompress::model::{Architecture, Layer, Network, Weights};

fn main() -> anyhow::Result<()> {
    let arg = |i: usize, default: usize| std::env::args().nth(i).map_or(Ok(default), |s| s.parse::<usize>().map_err(|e| anyhow::anyhow!("argument {i} '{s}': {e}")));
    let (factor, reps) = (arg(1, 4)?.max(1), arg(2, 10)?.max(1));
    let gpu = Gpu::new(None)?;
    let crs = 128 * 3 * 3;
    for (label, columns) in [("dense", None), ("column-pruned", Some((0..crs as u32).step_by(factor).collect::<Vec<_>>()))] {
        let conv = Layer::Conv2d { name: "conv".into(), filters: 128, kernel: 3, stride: 1, padding: 1, columns };
        let layers = vec![Layer::Relu, conv, Layer::GlobalAvgPool, Layer::Linear { name: "fc".into(), units: 2, columns: None }];
        let arch = Architecture { name: "vgg_mid".into(), input: [128, 16, 16], classes: 2, layers };
        let net = Network::new(&gpu, &arch, &Weights::init(&arch, 1)?, 32, 0.0)?;
        let rows: Vec<_> = profile_step(&gpu, &net, reps, Timer::Wall)?.into_iter().filter(|r| r.0 == "backward").collect();
        println!("{label} (backward, ms per dispatch)");
        for (_, kernel, ms) in &rows {
            println!("  {kernel:<40} {ms:8.2}");
        }
        println!("  {:<40} {:8.2}", "sum", rows.iter().map(|r| r.2).sum::<f64>());
    }
    Ok(())
}
