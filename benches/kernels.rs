//! Criterion benchmarks: convolution forward per `bench` shape and one LeNet-5 training step.
//! `cargo bench --bench kernels`; the `bench` subcommand reports the same figures as JSON.

use autocompress::bench::{conv_forward_setup, shapes};
use autocompress::gpu::Gpu;
use autocompress::model::{zoo, Hyper, Network, Weights};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn conv(c: &mut Criterion) {
    let Ok(gpu) = Gpu::new(None) else {
        eprintln!("no GPU adapter: skipping benchmarks");
        return;
    };
    let mut group = c.benchmark_group("conv_forward");
    group.sample_size(10);
    for s in shapes() {
        let g = s.g;
        let kept: Vec<u32> = (0..g.crs() as u32).collect();
        let setup = conv_forward_setup(&gpu, &g, &kept, false).unwrap();
        group.throughput(Throughput::Elements(2 * (g.n * g.k * kept.len() * g.ohw()) as u64));
        group.bench_function(s.name, |bch| {
            bch.iter(|| {
                gpu.run(&setup.plan).unwrap();
                gpu.wait().unwrap();
            })
        });
    }
    group.finish();
}

fn train_step(c: &mut Criterion) {
    let Ok(gpu) = Gpu::new(None) else { return };
    let arch = zoo::build("lenet5", [1, 28, 28], 10).unwrap();
    let batch = 64;
    let net = Network::new(&gpu, &arch, &Weights::init(&arch, 1).unwrap(), batch, 5e-4).unwrap();
    let images = vec![0.5f32; batch * 784];
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10);
    group.throughput(Throughput::Elements(batch as u64));
    group.bench_function("lenet5_batch64", |bch| {
        bch.iter(|| {
            net.load_batch(&gpu, &images, &labels).unwrap();
            net.train_step(&gpu, Hyper::plain(0.01, 0.9), batch, 0).unwrap();
            gpu.wait().unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, conv, train_step);
criterion_main!(benches);
