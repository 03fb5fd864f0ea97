//! The GPU kernel variants (workgroup-memory GEMM and convolution, GPU-shaped weight-gradient and
//! data-gradient tiles) forced on here, whatever this adapter is, at every configuration the
//! selection produces for the invented adapters (tests/common/adapters.rs), against the CPU
//! reference on awkward shapes: batch 1, odd channels, stride 2, padding, pruned column tables,
//! partial tiles. Tolerance 1e-5 relative to the largest reference magnitude, as in kernels.rs.

mod common;

use autocompress::gpu::conv::{self, conv_dgrad_with, conv_gemm_with, conv_wgrad_with, ConvGeom};
use autocompress::gpu::gemm::{gemm_blocks, gemm_split_k_with, gemm_with, pack, Blocks, Bias, Gemm, OutMap, Pack, Tile};
use autocompress::gpu::strategy::{Matmul, MatmulConfig, SharedTile, WgradConfig};
use autocompress::gpu::{Gpu, Tensor};
use common::reference as cpu;
use common::{adapters, assert_close, gpu, rand_vec};

fn nan(g: &Gpu, len: usize) -> Tensor {
    g.upload(&vec![f32::NAN; len], "nan-filled").unwrap()
}

#[allow(clippy::too_many_arguments)]
fn geom(n: usize, c: usize, h: usize, w: usize, k: usize, r: usize, stride: usize, pad: usize) -> ConvGeom {
    ConvGeom { n, c, h, w, k, r, s: r, stride, pad }
}

/// (geometry, images per chunk)
fn cases() -> Vec<(ConvGeom, usize)> {
    vec![
        (geom(5, 3, 11, 9, 7, 3, 1, 1), 2),    // odd sizes, partial last chunk, 99 pixels
        (geom(1, 1, 7, 7, 1, 1, 1, 0), 1),     // batch 1, one channel, one filter, 1×1
        (geom(3, 5, 13, 10, 6, 5, 2, 2), 2),   // 5×5, stride 2, padding 2
        (geom(4, 3, 6, 5, 17, 1, 2, 0), 3),    // 1×1 stride 2 (a shortcut)
        (geom(2, 3, 12, 12, 70, 3, 1, 1), 2),  // 70 filters: past a 64-row tile
        (geom(4, 6, 14, 14, 16, 5, 1, 0), 3),  // LeNet conv2-like: 150 columns, several K steps
        (geom(3, 1, 28, 28, 20, 5, 1, 0), 2),  // long pixel axis (split-K weight gradients)
        (geom(2, 33, 6, 5, 6, 3, 1, 2), 2),    // 33 channels, padding past both edges
        (geom(35, 2, 5, 4, 3, 3, 1, 1), 35),   // many images in one chunk
    ]
}

/// All columns, and every third column (a pruned table) where there are three or more.
fn tables(g: &ConvGeom) -> Vec<Vec<u32>> {
    let crs = g.crs() as u32;
    let pruned: Vec<u32> = (0..crs).filter(|j| j % 3 == 1).collect();
    [(0..crs).collect(), pruned].into_iter().filter(|t: &Vec<u32>| !t.is_empty()).collect()
}

/// [K][kc] weights widened to [K][C·R·S] with zeros in the pruned columns.
fn widen(w: &[f32], g: &ConvGeom, kept: &[u32]) -> Vec<f32> {
    let mut d = vec![0.0; g.k * g.crs()];
    for k in 0..g.k {
        for (j, &col) in kept.iter().enumerate() {
            d[k * g.crs() + col as usize] = w[k * kept.len() + j];
        }
    }
    d
}

fn tag(g: &ConvGeom, kept: &[u32]) -> String {
    format!("n{} c{} {}x{} k{} {}x{} stride {} pad {}, {} of {} columns", g.n, g.c, g.h, g.w, g.k, g.r, g.s, g.stride, g.pad, kept.len(), g.crs())
}

fn workgroup_kernels(v: &[Matmul]) -> Vec<Matmul> {
    v.iter().copied().filter(|k| matches!(k, Matmul::Workgroup(_))).collect()
}

#[test]
fn the_sweep_produces_workgroup_tiles() {
    let p = adapters::produced();
    assert!(workgroup_kernels(&p.gemm).len() >= 3 && workgroup_kernels(&p.conv).len() >= 3, "{:?} {:?}", p.gemm, p.conv);
    assert!(p.wgrad.len() >= 3 && !p.gather.is_empty());
}

#[test]
fn gemm_variants_match_reference() {
    let Some(g) = gpu() else { return };
    let kernels = workgroup_kernels(&adapters::produced().gemm);
    for &(m, k, n) in &[(1usize, 1usize, 1usize), (3, 5, 7), (33, 17, 65), (65, 40, 129), (20, 25, 576), (129, 70, 130)] {
        let (kp, np) = (k.next_multiple_of(4), n.next_multiple_of(4));
        let a = rand_vec(m * k, 1);
        let b = rand_vec(k * n, 2);
        let bias = rand_vec(m, 3);
        let c0 = rand_vec(m * n, 4);
        let (ta, tb, tbias) = (g.upload(&a, "a").unwrap(), g.upload(&b, "b").unwrap(), g.upload(&bias, "bias").unwrap());
        let (pa, pb) = (nan(g, m * kp), nan(g, kp * np));
        g.run(&[pack(g, &ta, &pa, &Pack::matrix(m, k, k, 1, false)).unwrap(), pack(g, &tb, &pb, &Pack::matrix(k, n, n, 1, true)).unwrap()]).unwrap();
        let prod = cpu::matmul(&a, &b, m, k, n);
        let gm = Gemm { a: &pa, a_off: 0, b: &pb, b_off: 0, m, n, kp, np };
        for &kern in &kernels {
            let what = format!("{} {m}x{k}x{n}", kern.name());
            // C = A·B + bias
            let c = nan(g, m * n);
            g.run(&[gemm_with(g, kern, &gm, Bias::PerRow(&tbias, 0), &c, OutMap::rows(n)).unwrap()]).unwrap();
            let want: Vec<f32> = prod.iter().enumerate().map(|(i, v)| v + bias[i / n]).collect();
            assert_close(&format!("gemm {what}"), &g.read::<f32>(&c).unwrap(), &want, 1e-5);
            // C += A·B split over K slices, then reduced
            for split in [1, 3] {
                let c = g.upload(&c0, "c").unwrap();
                let part = nan(g, split * m * n);
                let out = OutMap { accumulate: true, ..OutMap::rows(n) };
                g.run(&gemm_split_k_with(g, MatmulConfig { kernel: kern, split }, &gm, &c, out, &part).unwrap()).unwrap();
                let want: Vec<f32> = prod.iter().zip(&c0).map(|(p, c)| p + c).collect();
                assert_close(&format!("split-K {split} gemm {what}"), &g.read::<f32>(&c).unwrap(), &want, 1e-5);
            }
        }
    }
}

/// B read in place as blocks of columns (a batch of [K][P] planes as [K][batch·P], how the
/// column-pruned data gradient reads dY) on every GEMM kernel the selection produces, register
/// tiles included: partial row and column tiles, one block and many, an offset into the buffer.
#[test]
fn gemm_on_blocked_b_matches_reference() {
    let Some(g) = gpu() else { return };
    let mut kernels = adapters::produced().gemm;
    kernels.push(Matmul::Register(Tile::DEFAULT));
    for &(m, k, p, batch, off) in &[(1usize, 4usize, 4usize, 1usize, 0usize), (7, 8, 12, 5, 4), (33, 16, 100, 3, 8), (70, 12, 576, 2, 0)] {
        // dY-like [batch][k][p] after `off` elements; C = A·B with B[kk][i·p + q] = dy[off + (i·k + kk)·p + q]
        let dy = rand_vec(off + batch * k * p + 5, 7);
        let a = rand_vec(m * k, 8);
        let mut b = vec![0.0; k * batch * p];
        for kk in 0..k {
            for i in 0..batch {
                for q in 0..p {
                    b[kk * batch * p + i * p + q] = dy[off + (i * k + kk) * p + q];
                }
            }
        }
        let want = cpu::matmul(&a, &b, m, k, batch * p);
        let (ta, tdy) = (g.upload(&a, "a").unwrap(), g.upload(&dy, "dy").unwrap());
        let gm = Gemm { a: &ta, a_off: 0, b: &tdy, b_off: off, m, n: batch * p, kp: k, np: batch * p };
        let blocks = Blocks { cols: p, stride: k * p, row_stride: p };
        for &kern in &kernels {
            let c = nan(g, m * batch * p);
            g.run(&[gemm_blocks(g, kern, &gm, blocks, &c, OutMap::rows(batch * p)).unwrap()]).unwrap();
            assert_close(&format!("blocked-B gemm {} {m}x{k}x{p}·{batch}", kern.name()), &g.read::<f32>(&c).unwrap(), &want, 1e-5);
        }
        // blocks that are not whole vec4s, or reach past B, are refused before dispatch
        let c = nan(g, m * batch * p);
        assert!(gemm_blocks(g, kernels[0], &gm, Blocks { cols: p + 2, ..blocks }, &c, OutMap::rows(batch * p)).is_err());
        assert!(gemm_blocks(g, kernels[0], &gm, Blocks { stride: k * p + 8, ..blocks }, &c, OutMap::rows(batch * p)).is_err() || batch == 1);
    }
}

#[test]
fn conv_forward_variants_match_reference() {
    let Some(g) = gpu() else { return };
    let kernels = workgroup_kernels(&adapters::produced().conv);
    for (i, (geo, chunk)) in cases().into_iter().enumerate() {
        let x = rand_vec(geo.n * geo.c * geo.h * geo.w, 10 + i as u64);
        let bias = rand_vec(geo.k, 20 + i as u64);
        let (tx, tb) = (g.upload(&x, "x").unwrap(), g.upload(&bias, "bias").unwrap());
        for kept in tables(&geo) {
            let kc = kept.len();
            let kcp = kc.next_multiple_of(4);
            let w = rand_vec(geo.k * kc, 30 + i as u64);
            let want = cpu::conv2d_forward(&x, &widen(&w, &geo, &kept), Some(&bias), &geo);
            let tw = g.upload(&w, "w").unwrap();
            let tbl = g.upload(&conv::column_table(&geo, &kept).unwrap(), "tbl").unwrap();
            let pw = nan(g, geo.k * kcp);
            g.run(&[pack(g, &tw, &pw, &Pack::matrix(geo.k, kc, kc, 1, false)).unwrap()]).unwrap();
            for &kern in &kernels {
                let y = nan(g, geo.n * geo.k * geo.ohw());
                let plan: Vec<_> = (0..geo.n).step_by(chunk).map(|n0| conv_gemm_with(g, kern, &geo, kc, n0, chunk.min(geo.n - n0), &pw, &tx, &tbl, &tb, &y).unwrap()).collect();
                g.run(&plan).unwrap();
                assert_close(&format!("conv forward {} {}", kern.name(), tag(&geo, &kept)), &g.read::<f32>(&y).unwrap(), &want, 1e-5);
            }
        }
    }
}

#[test]
fn weight_gradient_variants_match_reference() {
    let Some(g) = gpu() else { return };
    let tiles = adapters::produced().wgrad;
    for (i, (geo, chunk)) in cases().into_iter().enumerate() {
        let x = rand_vec(geo.n * geo.c * geo.h * geo.w, 40 + i as u64);
        let dy = rand_vec(geo.n * geo.k * geo.ohw(), 50 + i as u64);
        let dense = cpu::conv2d_backward_weight(&x, &dy, &geo);
        let (tx, tdy) = (g.upload(&x, "x").unwrap(), g.upload(&dy, "dy").unwrap());
        for kept in tables(&geo) {
            let kc = kept.len();
            let want: Vec<f32> = (0..geo.k).flat_map(|k| kept.iter().map(move |&j| (k, j))).map(|(k, j)| dense[k * geo.crs() + j as usize]).collect();
            let tbl = g.upload(&conv::column_table(&geo, &kept).unwrap(), "tbl").unwrap();
            for &tile in &tiles {
                for split in [1, 5] {
                    let dw = nan(g, geo.k * kc);
                    let part = nan(g, split * geo.k * kc);
                    let cfg = WgradConfig { tile, split };
                    let mut plan = Vec::new();
                    for n0 in (0..geo.n).step_by(chunk) {
                        plan.extend(conv_wgrad_with(g, cfg, &geo, kc, n0, chunk.min(geo.n - n0), &tdy, &tx, &tbl, &dw, &part, n0 > 0).unwrap());
                    }
                    g.run(&plan).unwrap();
                    assert_close(&format!("weight gradient {tile:?} split {split} {}", tag(&geo, &kept)), &g.read::<f32>(&dw).unwrap(), &want, 1e-5);
                }
            }
        }
    }
}

#[test]
fn data_gradient_variants_match_reference() {
    let Some(g) = gpu() else { return };
    let p = adapters::produced();
    let convs = workgroup_kernels(&p.conv);
    for (i, (geo, chunk)) in cases().into_iter().enumerate() {
        let dy = rand_vec(geo.n * geo.k * geo.ohw(), 60 + i as u64);
        let tdy = g.upload(&dy, "dy").unwrap();
        for kept in tables(&geo) {
            let w = rand_vec(geo.k * kept.len(), 70 + i as u64);
            let want = cpu::conv2d_backward_data(&dy, &widen(&w, &geo, &kept), &geo);
            let (tw, tbl) = (g.upload(&w, "w").unwrap(), g.upload(&conv::column_table(&geo, &kept).unwrap(), "tbl").unwrap());
            let wt = nan(g, geo.crs() * geo.k.next_multiple_of(4));
            g.run(&[conv::dgrad_weights(g, &tw, &tbl, &wt, &geo, kept.len()).unwrap()]).unwrap();
            for &gather in &p.gather {
                let dx = nan(g, geo.n * geo.c * geo.h * geo.w);
                g.run(&[conv_dgrad_with(g, gather, &geo, &wt, &tdy, &dx).unwrap()]).unwrap();
                assert_close(&format!("data gradient gather {gather:?} {}", tag(&geo, &kept)), &g.read::<f32>(&dx).unwrap(), &want, 1e-5);
            }
            // stride 1: the forward convolution over dY with flipped taps, on each workgroup tile
            let Some(t) = conv::transposed(&geo) else { continue };
            let ttbl = g.upload(&conv::transposed_table(&geo).unwrap(), "transposed table").unwrap();
            let zero = g.upload(&vec![0.0f32; geo.c], "zero bias").unwrap();
            let kc = geo.r * geo.s * geo.k.next_multiple_of(4);
            for &kern in &convs {
                let dx = nan(g, geo.n * geo.c * geo.h * geo.w);
                let plan: Vec<_> = (0..geo.n).step_by(chunk).map(|n0| conv_gemm_with(g, kern, &t, kc, n0, chunk.min(geo.n - n0), &wt, &tdy, &ttbl, &zero, &dx).unwrap()).collect();
                g.run(&plan).unwrap();
                assert_close(&format!("data gradient as conv {} {}", kern.name(), tag(&geo, &kept)), &g.read::<f32>(&dx).unwrap(), &want, 1e-5);
            }
        }
    }
}

/// Configurations beyond this adapter's limits are refused before wgpu sees them.
#[test]
fn kernels_beyond_the_adapters_limits_are_refused() {
    let Some(g) = gpu() else { return };
    let geo = geom(1, 2, 5, 5, 3, 3, 1, 1);
    let (x, w, b, y) = (g.tensor(50, "x").unwrap(), g.tensor(3 * 20, "w").unwrap(), g.tensor(3, "b").unwrap(), g.tensor(75, "y").unwrap());
    let tbl = g.upload(&conv::column_table(&geo, &(0..18).collect::<Vec<u32>>()).unwrap(), "tbl").unwrap();
    let lim = &g.adapter;
    let too_many = SharedTile { tm: 1, tn4: 1, wx: lim.max_size[0].min(lim.max_invocations) * 2, wy: 1, bk: 4 };
    let too_much = SharedTile { tm: 4, tn4: 1, wx: 8, wy: 8, bk: (lim.max_workgroup_bytes / 4).next_multiple_of(4) };
    for (what, k) in [
        ("threads", Matmul::Workgroup(too_many)),
        ("workgroup memory", Matmul::Workgroup(too_much)),
        ("register threads", Matmul::Register(Tile { tm: 1, tn4: 1, wx: lim.max_invocations, wy: 2 })),
        ("malformed", Matmul::Workgroup(SharedTile { bk: 6, ..too_many })),
    ] {
        let e = conv_gemm_with(g, k, &geo, 18, 0, 1, &w, &x, &tbl, &b, &y).err().unwrap_or_else(|| panic!("{what}: {} accepted", k.name()));
        eprintln!("{what}: {e}");
    }
}

/// This adapter selecting as the invented discrete GPU does.
fn as_discrete() -> Option<&'static Gpu> {
    static GPU: std::sync::OnceLock<Option<Gpu>> = std::sync::OnceLock::new();
    gpu()?;
    GPU.get_or_init(|| Gpu::new(None).ok().map(|g| g.retarget(adapters::discrete_nvidia()))).as_ref()
}

/// The column-pruned data gradient (dcol = Wᵀ·dY over the kept columns, then col2im) on this
/// adapter's kernels and on the discrete GPU's, for every third column, a shuffled half and a
/// single column, in chunks of images.
#[test]
fn column_pruned_data_gradient_matches_reference() {
    let Some(base) = gpu() else { return };
    let Some(gpu_like) = as_discrete() else { return };
    for (i, (geo, chunk)) in cases().into_iter().enumerate() {
        let crs = geo.crs() as u32;
        let keys = rand_vec(crs as usize, 80 + i as u64);
        let mut shuffled: Vec<u32> = (0..crs).collect();
        shuffled.sort_by(|&a, &b| keys[a as usize].total_cmp(&keys[b as usize]));
        shuffled.truncate((crs as usize / 2).max(1));
        let subsets = [(0..crs).filter(|j| j % 3 == 1).collect::<Vec<u32>>(), shuffled, vec![crs / 2]];
        let dy = rand_vec(geo.n * geo.k * geo.ohw(), 90 + i as u64);
        for kept in subsets.into_iter().filter(|k| !k.is_empty()) {
            let kc = kept.len();
            let w = rand_vec(geo.k * kc, 100 + i as u64);
            let want = cpu::conv2d_backward_data(&dy, &widen(&w, &geo, &kept), &geo);
            for g in [base, gpu_like] {
                let (tdy, tw) = (g.upload(&dy, "dy").unwrap(), g.upload(&w, "w").unwrap());
                let ctab = g.upload(&conv::channel_table(&geo, &kept).unwrap(), "channel table").unwrap();
                let cols = chunk * geo.ohwp();
                let (sa, sb, dcol) = (nan(g, kc * geo.k.next_multiple_of(4)), nan(g, geo.k.next_multiple_of(4) * cols), nan(g, kc * cols));
                let dx = nan(g, geo.n * geo.c * geo.h * geo.w);
                g.run(&conv::dgrad_columns(g, &geo, kc, chunk, &tw, &tdy, &ctab, &sa, &sb, &dcol, &dx).unwrap()).unwrap();
                let what = format!("column-pruned data gradient on {} {}", g.strategy.target.name, tag(&geo, &kept));
                assert_close(&what, &g.read::<f32>(&dx).unwrap(), &want, 1e-5);
            }
        }
    }
    // a table that does not match the kept columns is refused
    let geo = geom(1, 2, 4, 4, 3, 3, 1, 1);
    assert!(conv::channel_table(&geo, &[18]).is_err());
}
