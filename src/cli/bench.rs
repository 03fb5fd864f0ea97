//! `autocompress bench`: convolution throughput per shape (dense and pruned, forward and
//! backward), per layer of a model, and training throughput.

use anyhow::{bail, ensure, Result};
use clap::Args;
use std::path::{Path, PathBuf};

use autocompress::bench;
use autocompress::gpu::timing::Timer;
use autocompress::gpu::Gpu;
use autocompress::io;
use autocompress::model::{zoo, Architecture, Network, Weights};

/// The adapter's name, driver and the limits kernels are selected by, first: a line of text, or
/// with `--json` one object `{"adapter": {…}}`.
fn print_adapter(gpu: &Gpu, json: bool, timer: Timer) -> Result<()> {
    let a = &gpu.adapter;
    let tuning = gpu.tuning.lock().expect("tuning table");
    let timing = if timer == Timer::Gpu && gpu.has_timestamps() { "gpu timestamps" } else { "wall clock" };
    if json {
        let v = serde_json::json!({ "adapter": {
            "name": a.name, "driver": a.driver, "backend": format!("{:?}", gpu.info.backend), "type": format!("{:?}", a.kind),
            "vendor": a.vendor, "subgroup_min": a.subgroup_min, "subgroup_max": a.subgroup_max,
            "max_invocations": a.max_invocations, "max_workgroup_bytes": a.max_workgroup_bytes,
            "max_groups_per_dim": a.max_groups_per_dim, "max_storage_buffers": a.max_storage_buffers,
            "max_binding_bytes": gpu.max_binding_bytes(), "timestamps": gpu.has_timestamps(), "timer": timing,
            "tuning": { "mode": format!("{:?}", tuning.mode), "cache": tuning.path, "entries": tuning.len() },
        }});
        println!("{v}");
    } else {
        println!("adapter: {} [{:?}, {:?}], driver {}", a.name, gpu.info.backend, a.kind, if a.driver.is_empty() { "(unnamed)" } else { &a.driver });
        println!(
            "limits: {} invocations per workgroup, {} KiB workgroup memory, {} workgroups per dimension, {} storage buffers per stage, {} MiB per binding; subgroups {}–{}; timed by {timing}",
            a.max_invocations, a.max_workgroup_bytes >> 10, a.max_groups_per_dim, a.max_storage_buffers, gpu.max_binding_bytes() >> 20, a.subgroup_min, a.subgroup_max
        );
        let cache = tuning.path.as_ref().map_or("(no cache directory)".to_string(), |p| p.display().to_string());
        println!("tuning: {:?}, cache {cache}, {} tuned shapes for this adapter", tuning.mode, tuning.len());
    }
    Ok(())
}

#[derive(Args)]
pub struct BenchArgs {
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Timed runs per measurement (the median is reported).
    #[arg(long, default_value_t = 10)]
    reps: usize,
    /// Only shapes whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Training steps timed for the images/s figure (0 skips it).
    #[arg(long, default_value_t = 40)]
    train_steps: usize,
    /// Batch size of the timed training steps.
    #[arg(long, default_value_t = 64)]
    train_batch: usize,
    /// Zoo model of the training figure and the profile (its input: MNIST's for lenet5 and
    /// digits-cnn's 8×8, CIFAR's for vgg16 and resnet18).
    #[arg(long, default_value = "lenet5")]
    train_model: String,
    /// Width multiplier of a vgg16 or resnet18 --train-model.
    #[arg(long, default_value_t = 1.0)]
    width_multiplier: f32,
    /// Also time every dispatch of one training step on its own.
    #[arg(long)]
    profile: bool,
    /// Instead of the fixed shapes, time the forward pass of every convolution of this model: a
    /// zoo name (CIFAR input for vgg16/resnet18, with --width-multiplier) or a model file.
    #[arg(long)]
    layers: Option<String>,
    /// With --layers: a compacted model of it (a compress or prune result); each of its
    /// convolutions is timed too, with its speedup over the dense layer of the same name.
    #[arg(long, requires = "layers")]
    compacted: Option<PathBuf>,
    /// The width multiplier the --compacted model was pruned at, when --layers is a wider model
    /// (e.g. 0.25 against full-width vgg16): its layers are timed grown to the model's width at
    /// the same per-layer pruning rates.
    #[arg(long, requires = "compacted")]
    compacted_width: Option<f32>,
    /// Batch size of --layers timings.
    #[arg(long, default_value_t = 32)]
    layer_batch: usize,
    /// FLOPs reductions of the filter- and column-pruned variants of every shape (none: dense only).
    #[arg(long, value_delimiter = ',', default_value = "2,4,8")]
    factors: Vec<usize>,
    /// Also time the backward pass of every variant.
    #[arg(long)]
    backward: bool,
    /// Convolution algorithm(s) to time: im2col (gather, then GEMM), implicit (a GEMM that reads
    /// the input directly), or both.
    #[arg(long, value_enum, default_value = "both")]
    algo: ConvAlgo,
    /// The adapter's fp32 peak in GFLOP/s: rows then report their fraction of it.
    #[arg(long)]
    peak_gflops: Option<f64>,
    /// Tune the convolution forward of every shape timed (with --layers, of every layer) before
    /// timing it: bounded candidates, each checked against a CPU reference, the fastest kept in
    /// the tuning cache (AUTOCOMPRESS_TUNE_CACHE, else the user's cache directory), which every
    /// later run on this adapter uses.
    #[arg(long)]
    tune: bool,
    /// How kernels are timed: GPU timestamps (where the adapter has them; else the wall clock)
    /// or the wall clock around submit-and-wait (what `bench` measured before timestamps).
    #[arg(long, value_enum, default_value = "gpu")]
    timer: TimerArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TimerArg {
    Gpu,
    Wall,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ConvAlgo {
    Im2col,
    Implicit,
    Both,
}

impl ConvAlgo {
    fn implicit_choices(self) -> Vec<bool> {
        match self {
            ConvAlgo::Im2col => vec![false],
            ConvAlgo::Implicit => vec![true],
            ConvAlgo::Both => vec![false, true],
        }
    }
}

pub fn run(a: BenchArgs, open_gpu: impl FnOnce() -> Result<Gpu>) -> Result<()> {
    if let Some(p) = a.peak_gflops {
        ensure!(p.is_finite() && p > 0.0, "--peak-gflops {p}: expected the adapter's peak as a positive number of GFLOP/s (e.g. 60000)");
    }
    let timer = match a.timer {
        TimerArg::Gpu => Timer::Gpu,
        TimerArg::Wall => Timer::Wall,
    };
    let gpu = open_gpu()?;
    print_adapter(&gpu, a.json, timer)?;
    let with_peak = |mut r: bench::ConvResult| {
        r.peak_fraction = a.peak_gflops.map(|p| r.gflops / p);
        r
    };
    if let Some(model) = &a.layers {
        let cw = a.compacted_width.unwrap_or(a.width_multiplier);
        ensure!(cw.is_finite() && cw > 0.0 && cw <= a.width_multiplier, "--compacted-width {cw} must be above 0 and at most the model's width multiplier {}", a.width_multiplier);
        let small = a.compacted.as_deref().map(|p| (p, cw / a.width_multiplier));
        return bench_layers(&gpu, model, a.width_multiplier, small, a.layer_batch, (a.reps, timer), (a.json, a.tune), with_peak);
    }
    for s in bench::shapes() {
        if a.filter.as_deref().is_some_and(|f| !s.name.contains(f)) {
            continue;
        }
        let dense: Vec<u32> = (0..s.g.crs() as u32).collect();
        if a.tune {
            tune(&gpu, s.name, "dense", &s.g, &dense, a.json)?;
            for &factor in &a.factors {
                for (variant, g, kept) in bench::variants(&s.g, factor) {
                    tune(&gpu, s.name, &format!("{variant} {factor}x"), &g, &kept, a.json)?;
                }
            }
        }
        for implicit in a.algo.implicit_choices() {
            let mut base = with_peak(bench::conv_forward_bench(&gpu, s.name, "dense", &s.g, &dense, a.reps, implicit, timer)?);
            if a.backward {
                base.backward_ms = Some(bench::conv_backward_ms(&gpu, &s.g, &dense, a.reps, timer)?);
            }
            let mut rows = vec![];
            for &factor in &a.factors {
                for (variant, g, kept) in bench::variants(&s.g, factor) {
                    let mut r = with_peak(bench::conv_forward_bench(&gpu, s.name, variant, &g, &kept, a.reps, implicit, timer)?);
                    r.factor = factor;
                    r.speedup = Some(base.ms / r.ms);
                    if a.backward {
                        r.backward_ms = Some(bench::conv_backward_ms(&gpu, &g, &kept, a.reps, timer)?);
                    }
                    rows.push(r);
                }
            }
            for r in std::iter::once(&base).chain(&rows) {
                if a.json {
                    println!("{}", serde_json::to_string(r)?);
                } else {
                    let extra = match (r.speedup, r.backward_ms) {
                        (Some(sp), bw) => format!(
                            "  {}× fewer FLOPs: speedup {sp:.2} (÷ {} = {:.2}){}",
                            r.factor,
                            r.factor,
                            sp / r.factor as f64,
                            bw.map_or(String::new(), |b| format!(", backward {b:.1} ms ({:.2}×)", base.backward_ms.unwrap_or(b) / b))
                        ),
                        (None, Some(b)) => format!("  backward {b:.1} ms"),
                        (None, None) => String::new(),
                    };
                    println!(
                        "{:<12} {:<7} {:<8} {:>9.3} ms {:>7.2} GFLOP/s  ({} MFLOP){extra}",
                        r.shape,
                        r.variant,
                        r.algo,
                        r.ms,
                        r.gflops,
                        r.flops / 1_000_000
                    );
                }
            }
        }
    }
    let train_arch = bench_model(&a.train_model, a.width_multiplier)?;
    if a.train_steps > 0 && a.filter.as_deref().is_none_or(|f| format!("{}_train", a.train_model).contains(f)) {
        let r = bench::train_bench(&gpu, &train_arch, a.train_batch, a.train_steps)?;
        if a.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!("train {} batch {}: {:.0} images/s ({:.1} ms/step)", r.model, r.batch, r.images_per_second, r.ms_per_step);
        }
    }
    if a.profile {
        let net = Network::new(&gpu, &train_arch, &Weights::init(&train_arch, 1)?, a.train_batch, 5e-4)?;
        let rows = bench::profile_step(&gpu, &net, a.reps, timer)?;
        let total: f64 = rows.iter().map(|r| r.2).sum();
        for (pass, kernel, ms) in rows {
            if a.json {
                println!("{}", serde_json::json!({ "pass": pass, "kernel": kernel, "ms": ms }));
            } else {
                println!("{pass:<9} {kernel:<40} {ms:8.3} ms");
            }
        }
        if !a.json {
            println!("sum of dispatches run one at a time: {total:.1} ms");
        }
    }
    Ok(())
}

/// Tunes the implicit convolution forward of `g` keeping `kept`, at the chunk of images one
/// launch covers, and prints the winner beside selection's choice.
fn tune(gpu: &Gpu, name: &str, variant: &str, g: &autocompress::gpu::conv::ConvGeom, kept: &[u32], json: bool) -> Result<()> {
    let chunk = bench::chunk_of(gpu, g, kept.len())?;
    let e = gpu.tune_shape(&autocompress::gpu::conv::ConvGeom { n: chunk, ..*g }, kept)?;
    if json {
        println!("{}", serde_json::json!({ "tuned": name, "variant": variant, "kernel": e.kernel.name(), "ms": e.ms,
            "selected": e.selected.name(), "selected_ms": e.selected_ms, "candidates": e.candidates, "rejected": e.rejected }));
    } else {
        println!(
            "tuned {name:<12} {variant:<10} {} {:.3} ms; selection's {} {:.3} ms ({:.2}×); {} candidates, {} rejected",
            e.kernel.name(), e.ms, e.selected.name(), e.selected_ms, e.selected_ms / e.ms, e.candidates, e.rejected
        );
    }
    Ok(())
}

/// A zoo model at the input of its data set (CIFAR's for vgg16 and resnet18, the 8×8 digits for
/// digits-cnn, MNIST's otherwise) with 10 classes.
pub fn bench_model(model: &str, width: f32) -> Result<Architecture> {
    let input = match model {
        "digits-cnn" => [1, 8, 8],
        "vgg16" | "resnet18" => [3, 32, 32],
        _ => [1, 28, 28],
    };
    zoo::build_scaled(model, width, input, 10)
}

/// `bench --layers`: dense GFLOP/s of every convolution of a model (implicit GEMM, the inference
/// path), and with a compacted model the speedup of each of its layers. `compacted` comes with
/// its width relative to the model's (below 1: its layers are grown to the model's width).
#[allow(clippy::too_many_arguments)]
fn bench_layers(
    gpu: &Gpu,
    model: &str,
    width: f32,
    compacted: Option<(&Path, f32)>,
    batch: usize,
    (reps, timer): (usize, Timer),
    (json, tuning): (bool, bool),
    with_peak: impl Fn(bench::ConvResult) -> bench::ConvResult,
) -> Result<()> {
    let arch = if Path::new(model).is_file() { io::load_model(Path::new(model))?.0 } else { bench_model(model, width)? };
    let convs = bench::model_convs(&arch, batch)?;
    let mut small = Vec::new();
    if let Some((path, rel)) = compacted {
        small = bench::model_convs(&io::load_model(path)?.0, batch)?;
        // compaction keeps every layer, so a compacted model names exactly the dense convolutions
        if small.len() != convs.len() || small.iter().zip(&convs).any(|(s, d)| s.0 != d.0) {
            let names = |v: &[(String, _, _)]| v.iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(", ");
            bail!("--compacted {} is not a compaction of {model}: its convolutions are [{}], the model's [{}]", path.display(), names(&small), names(&convs));
        }
        let geom = |g: &autocompress::gpu::conv::ConvGeom| format!("{}→{} {}×{} k{} s{} p{}", g.c, g.k, g.h, g.w, g.r, g.stride, g.pad);
        for (s, d) in small.iter_mut().zip(&convs) {
            if rel < 1.0 {
                (s.1, s.2) = bench::widen(&s.1, &s.2, &d.1, rel);
            }
            ensure!(bench::is_compaction(&s.1, &d.1), "--compacted {}: layer {} ({}) is not a compaction of the model's ({}); a model pruned at another width needs --compacted-width", path.display(), s.0, geom(&s.1), geom(&d.1));
        }
    }
    let variant = if compacted.is_some_and(|c| c.1 < 1.0) { "widened" } else { "compacted" };
    for (i, (name, g, kept)) in convs.iter().enumerate() {
        if tuning {
            tune(gpu, name, "dense", g, kept, json)?;
            if let Some((_, cg, ck)) = small.get(i) {
                tune(gpu, name, variant, cg, ck, json)?;
            }
        }
        let dense = with_peak(bench::conv_forward_bench(gpu, name, "dense", g, kept, reps, true, timer)?);
        let mut rows = vec![dense];
        let mut fewer = 1.0;
        if let Some((_, cg, ck)) = small.get(i) {
            let mut r = with_peak(bench::conv_forward_bench(gpu, name, variant, cg, ck, reps, true, timer)?);
            fewer = rows[0].flops as f64 / r.flops.max(1) as f64;
            r.factor = fewer.round().max(1.0) as usize;
            r.speedup = Some(rows[0].ms / r.ms);
            rows.push(r);
        }
        for r in &rows {
            if json {
                println!("{}", serde_json::to_string(r)?);
            } else {
                let g = &r.geom;
                let speed = r.speedup.map_or(String::new(), |s| format!("  {fewer:.1}× fewer FLOPs, speedup {s:.2}"));
                println!(
                    "{:<18} {:<9} {:>4}→{:<4} {:>2}×{:<2} {:>9.3} ms {:>7.2} GFLOP/s  ({} MFLOP){speed}",
                    r.shape, r.variant, g.c, g.k, g.h, g.w, r.ms, r.gflops, r.flops / 1_000_000
                );
            }
        }
    }
    Ok(())
}
