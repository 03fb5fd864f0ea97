use autocompress::{bench, gpu::Gpu, model::{zoo, Network, Weights}};
fn main() -> anyhow::Result<()> {
    let gpu = Gpu::new(None)?;
    let arch = zoo::build("lenet5", [1, 28, 28], 10)?;
    let net = Network::new(&gpu, &arch, &Weights::init(&arch, 1)?, 64, 5e-4)?;
    let mut total = 0.0;
    for (pass, k, ms) in bench::profile_step(&gpu, &net, 5)? { total += ms; println!("{pass:<9} {k:<45} {ms:8.3}"); }
    println!("total {total:.1} ms");
    Ok(())
}
