//! Kernel selection (src/gpu/strategy.rs) for invented adapters, without a GPU: on every GPU it
//! chooses at least 64 threads a workgroup, enough workgroups to fill the device, grids and
//! workgroup memory within the adapter's limits; on a CPU adapter exactly the register-tiled
//! kernels lavapipe has always run.

mod common;

use autocompress::bench;
use autocompress::gpu::conv::{self, ConvGeom};
use autocompress::gpu::gemm::{split_count, Tile};
use autocompress::gpu::strategy::*;
use common::adapters;

fn shape(name: &str) -> ConvGeom {
    bench::shapes().into_iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no bench shape {name}")).g
}

/// The three shapes the issue names, at their bench batch sizes.
fn named_shapes() -> Vec<(&'static str, ConvGeom)> {
    vec![("vgg_mid", shape("vgg_mid")), ("lenet_conv2", shape("lenet_conv2")), ("resnet_shortcut", shape("resnet_shortcut"))]
}

/// Fails unless the kernel meets the GPU rules; returns its workgroup count.
fn check_matmul(a: &AdapterDesc, what: &str, k: &Matmul, conv: bool, m: usize, n: usize, split: usize) -> usize {
    assert!(k.threads() >= 64, "{what} on {}: {} has {} threads", a.name, k.name(), k.threads());
    a.check(k.workgroup(), k.bytes(conv)).unwrap_or_else(|e| panic!("{what} on {}: {}: {e}", a.name, k.name()));
    let (x, y) = k.groups(m, n);
    let lim = a.max_groups_per_dim as usize;
    assert!(x <= lim && y <= lim && split <= lim, "{what} on {}: grid {x}×{y}×{split} beyond {lim}", a.name);
    x * y * split
}

#[test]
fn gpus_get_big_workgroups_that_fill_the_device_within_limits() {
    for a in adapters::gpus() {
        let fill = a.fill_groups();
        for (name, g) in named_shapes() {
            let (kcp, n) = (g.crs().next_multiple_of(4), g.n * g.ohwp());
            let f = select_conv(&a, g.k, n, kcp);
            let groups = check_matmul(&a, &format!("{name} forward"), &f.kernel, true, g.k, n, 1);
            assert!(matches!(f.kernel, Matmul::Workgroup(_)), "{name} forward on {}: {}", a.name, f.kernel.name());
            assert!(groups >= fill, "{name} forward on {}: {groups} workgroups, below {fill}", a.name);

            let w = select_wgrad(&a, g.k, kcp, n);
            let groups = check_matmul(&a, &format!("{name} weight gradient"), &Matmul::Register(w.tile), false, g.k, kcp, w.split);
            assert!(groups >= fill, "{name} weight gradient on {}: {groups} workgroups, below {fill}", a.name);

            let d = select_dgrad(&a, &g);
            match conv::transposed(&g).filter(|t| t.pad == g.pad && d.algo == DgradAlgo::AsConv) {
                Some(t) => {
                    let kc = t.crs().next_multiple_of(4);
                    let c = select_conv(&a, t.k, t.n * t.ohwp(), kc);
                    let groups = check_matmul(&a, &format!("{name} data gradient"), &c.kernel, true, t.k, t.n * t.ohwp(), 1);
                    assert!(groups >= fill, "{name} data gradient on {}: {groups} workgroups", a.name);
                }
                None => {
                    let Gather::Pixels(t) = d.gather else { panic!("{name} on {}: GPUs gather with lanes over pixels", a.name) };
                    check_matmul(&a, &format!("{name} data gradient"), &Matmul::Register(t), false, 1, 4, 1);
                    assert!(t.wx.is_multiple_of(a.subgroup_max.min(64)), "{name} on {}: {} lanes a row, subgroups of {}", a.name, t.wx, a.subgroup_max);
                    let [x, y, z] = d.gather.groups(&g);
                    assert!(x * y * z >= fill, "{name} data gradient (gather) on {}: {} workgroups", a.name, x * y * z);
                }
            }
        }
        // linear layers: LeNet-5's fc1 at batch 64, forward (no split) and weight gradient (split)
        let fwd = select_gemm(&a, 500, 64, 800, false);
        check_matmul(&a, "fc1 forward", &fwd.kernel, false, 500, 64, 1);
        let wgt = select_gemm(&a, 500, 800, 64, true);
        check_matmul(&a, "fc1 weight gradient", &wgt.kernel, false, 500, 800, wgt.split);
        assert!(select_reduce(&a).max_groups >= 1024 && select_reduce(&a).threads >= 64);
    }
}

#[test]
fn a_long_narrow_weight_gradient_is_split_to_fill_the_device() {
    // LeNet conv1: 20 filters × 28 packed columns over 64·576 pixels: one or two workgroups
    // unless the pixels are split
    let a = adapters::discrete_nvidia();
    let w = select_wgrad(&a, 20, 28, 64 * 576);
    let (x, y) = Matmul::Register(w.tile).groups(20, 28);
    assert!(w.split > 1 && x * y * w.split >= a.fill_groups() / 2, "{w:?}: {x}×{y}×{}", w.split);
    assert!(w.tile.wx * 4 * w.tile.tn4 <= 32, "{w:?}: lanes past the 28 columns");
}

#[test]
fn the_cpu_adapter_keeps_todays_kernels() {
    let a = adapters::cpu_lavapipe();
    // known shapes, spelled out
    let vgg = shape("vgg_mid");
    assert_eq!(select_conv(&a, vgg.k, vgg.n * vgg.ohwp(), vgg.crs()).kernel, Matmul::Register(Tile { tm: 16, tn4: 8, wx: 8, wy: 1 }));
    assert_eq!(select_conv(&a, 50, 64 * 64, 500).kernel, Matmul::Register(Tile { tm: 25, tn4: 8, wx: 8, wy: 1 }));
    assert_eq!(select_gemm(&a, 500, 64, 800, false), MatmulConfig { kernel: Matmul::Register(Tile { tm: 25, tn4: 2, wx: 8, wy: 1 }), split: 1 });
    assert_eq!(select_dgrad(&a, &shape("lenet_conv2")), DgradConfig { algo: DgradAlgo::AsConv, gather: Gather::Images(Tile { tm: 20, tn4: 2, wx: 8, wy: 1 }) });
    assert_eq!(select_reduce(&a), ReduceConfig { threads: 256, max_groups: 64 });
    // vgg_mid's weight gradient at 4× fewer columns: two column tiles of 160 for its 288, not
    // 256 + 256; 1152 dense columns keep 8 vec4s a thread
    assert_eq!(select_wgrad(&a, 128, 288, 32 * 256).tile, Tile { tm: 16, tn4: 5, wx: 8, wy: 1 });
    assert_eq!(select_wgrad(&a, 128, 1152, 32 * 256).tile, Tile { tm: 16, tn4: 8, wx: 8, wy: 1 });
    // and a sweep against the functions lavapipe ran before strategies existed
    for m in [1, 3, 16, 20, 33, 50, 64, 128, 500] {
        for np in [4, 28, 256, 260, 4096] {
            for kp in [4, 512, 4096, 40000] {
                assert_eq!(select_gemm(&a, m, np, kp, true), MatmulConfig { kernel: Matmul::Register(Tile::for_shape(m, np)), split: split_count(m, np, kp) });
                assert_eq!(select_conv(&a, m, np, kp).kernel, Matmul::Register(Tile::for_conv(m, np)));
                assert_eq!(select_wgrad(&a, m, np, kp), WgradConfig { tile: Tile::for_conv(m, np), split: split_count(m, np, kp) });
            }
        }
    }
}

#[test]
fn selection_respects_tight_limits() {
    // 16 KiB and 256 invocations (GL, WebGPU): no tile above either; a 64-thread tile is
    // refused where the subgroup is wider than it
    let gl = adapters::gl_like();
    for (m, n, kp) in [(128, 8192, 1152), (50, 4096, 500), (7, 12, 4), (512, 512, 4608)] {
        for conv in [false, true] {
            let k = if conv { select_conv(&gl, m, n, kp).kernel } else { select_gemm(&gl, m, n, kp, true).kernel };
            assert!(k.bytes(conv) <= 16 << 10 && k.threads() <= 256 && k.threads() % 128 == 0, "{}", k.name());
        }
    }
    // an adapter too small for any workgroup tile falls back to the register kernel
    let tiny = AdapterDesc { max_workgroup_bytes: 1024, ..adapters::discrete_nvidia() };
    assert!(matches!(select_conv(&tiny, 128, 8192, 1152).kernel, Matmul::Register(_)));
    assert!(tiny.check([16, 8], 9000).is_err() && tiny.check([64, 64], 0).is_err() && tiny.check([8, 8], 1024).is_ok());
}

#[test]
fn overrides_from_the_environment_are_checked() {
    // set and read within this one test (the only one in this binary touching the variables)
    std::env::set_var("AUTOCOMPRESS_GEMM_TILE", "16,x,8,1");
    let e = Strategy::from_env(adapters::discrete_nvidia()).unwrap_err().to_string();
    assert!(e.contains("AUTOCOMPRESS_GEMM_TILE=16,x,8,1") && e.contains("tm,tn4,wx,wy"), "{e}");
    std::env::set_var("AUTOCOMPRESS_GEMM_TILE", "8,2,8,1");
    std::env::set_var("AUTOCOMPRESS_DGRAD", "gather");
    let s = Strategy::from_env(adapters::discrete_nvidia()).unwrap();
    assert_eq!(s.conv(128, 8192, 1152).kernel, Matmul::Register(Tile { tm: 8, tn4: 2, wx: 8, wy: 1 }));
    assert_eq!(s.dgrad(&shape("vgg_mid")).algo, DgradAlgo::Gather);
    std::env::set_var("AUTOCOMPRESS_DGRAD", "fast");
    assert!(Strategy::from_env(adapters::discrete_nvidia()).unwrap_err().to_string().contains("'gather' or 'conv'"));
    std::env::remove_var("AUTOCOMPRESS_GEMM_TILE");
    std::env::remove_var("AUTOCOMPRESS_DGRAD");
    assert_eq!(Strategy::from_env(adapters::discrete_nvidia()).unwrap(), Strategy::new(adapters::discrete_nvidia()));
}

/// Prints what the discrete adapter gets on the named shapes (for the closing note); fails
/// only through the checks above.
#[test]
fn print_the_discrete_choices() {
    let a = adapters::discrete_nvidia();
    for (name, g) in named_shapes() {
        let (kcp, n) = (g.crs().next_multiple_of(4), g.n * g.ohwp());
        let f = select_conv(&a, g.k, n, kcp);
        let w = select_wgrad(&a, g.k, kcp, n);
        let d = select_dgrad(&a, &g);
        let (x, y) = f.kernel.groups(g.k, n);
        eprintln!("{name}: forward {} ({x}×{y} groups); weight gradient {:?} split {}; data gradient {:?} (gather {:?})", f.kernel.name(), w.tile, w.split, d.algo, d.gather);
    }
}

/// Batch-norm reductions: one workgroup per channel on the CPU adapter (today's kernels); on
/// GPUs enough slices per channel to fill the device where the channel has the values for it,
/// never slices under 1024 values, never beyond the grid.
#[test]
fn batch_norm_reductions_split_channels_to_fill_gpus() {
    let cpu = adapters::cpu_lavapipe();
    for (c, m) in [(64, 64 * 1024), (3, 5), (512, 128)] {
        assert_eq!(select_bn_slices(&cpu, c, m), 1);
    }
    for a in adapters::gpus() {
        // vgg16's first batch norm at batch 64 on CIFAR: 64 channels of 65,536 values
        let s = select_bn_slices(&a, 64, 64 * 1024);
        assert!(64 * s >= a.fill_groups() && s <= a.max_groups_per_dim as usize, "{}: {s} slices", a.name);
        assert!(64 * 1024 / s >= 1024, "{}: {s} slices of under 1024 values", a.name);
        // few values a channel (after a linear layer): no split
        assert_eq!(select_bn_slices(&a, 120, 64), 1, "{}", a.name);
        // many channels already fill the device
        assert_eq!(select_bn_slices(&a, 4096, 1 << 20), 1, "{}", a.name);
    }
}

/// Subgroup lane sums where the adapter has subgroups and is a GPU; the tree on CPU drivers
/// (even lavapipe, which has subgroups) and on GL, which has none.
#[test]
fn batch_norm_lane_sums_use_subgroups_on_gpus_that_have_them() {
    for a in [adapters::discrete_nvidia(), adapters::discrete_amd(), adapters::integrated_intel()] {
        assert!(select_bn_subgroups(&a), "{}", a.name);
        assert!(!select_bn_subgroups(&AdapterDesc { subgroups: false, ..a.clone() }), "{} without subgroups", a.name);
    }
    assert!(!select_bn_subgroups(&adapters::gl_like()));
    assert!(!select_bn_subgroups(&AdapterDesc { subgroups: true, ..adapters::cpu_lavapipe() }));
}
