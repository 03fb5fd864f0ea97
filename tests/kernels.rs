//! Every kernel against its naive CPU twin (tests/common/reference/) on random inputs of awkward
//! shapes: batch 1, odd channel counts, sizes that are not multiples of 4 or of the GEMM tile,
//! stride 2, padding 1 and 2, 1×1, 3×3 and 5×5 kernels, partial image chunks.
//!
//! Tolerances (relative to the largest reference magnitude, see `assert_close`):
//! - gathers and element-wise selects (im2col, pack, ReLU, max pooling forward): exact;
//! - short reductions and element-wise arithmetic (pool backward, average pooling, channel sums,
//!   softmax, SGD): 1e-5;
//! - GEMM-based convolution (sums of up to 150 products, f32 on the GPU vs f64 here): 1e-5.
//!
//! Output buffers start filled with NaN, so an element a kernel forgets to write fails the test.

mod common;

use autocompress::gpu::conv::{conv_dgrad, conv_gemm, conv_wgrad};
use autocompress::gpu::gemm::{gemm, pack, split_count, Bias, Gemm, OutMap, Pack};
use autocompress::gpu::conv::{self, ConvGeom};
use autocompress::gpu::pool::{self, PoolGeom};
use autocompress::gpu::{activation, loss, sgd};
use autocompress::gpu::{Gpu, Tensor};
use autocompress::model::store::Store;
use common::reference as cpu;
use common::{assert_close, gpu_or_skip, nan_tensor, read, rand_vec};

const BIG: usize = u32::MAX as usize;

// ------------------------------------------------------------------------------- helpers

/// Random values in {−1, −0.5, 0, 0.5, 1}: pooling windows and softmax rows then hold ties.
fn coarse_vec(n: usize, seed: u64) -> Vec<f32> {
    rand_vec(n, seed).into_iter().map(|v| (v * 2.0).round() / 2.0).collect()
}

#[allow(clippy::too_many_arguments)]
fn geom(n: usize, c: usize, h: usize, w: usize, k: usize, r: usize, s: usize, stride: usize, pad: usize) -> ConvGeom {
    ConvGeom { n, c, h, w, k, r, s, stride, pad }
}

/// Convolution cases: (geometry, images per chunk).
fn conv_cases() -> Vec<(ConvGeom, usize)> {
    vec![
        // 5 images in chunks of 2 (the last chunk partial); odd sizes; 99 pixels, padded to 100
        (geom(5, 3, 11, 9, 7, 3, 3, 1, 1), 2),
        // batch 1, one channel, one filter, 1×1
        (geom(1, 1, 7, 7, 1, 1, 1, 1, 0), 1),
        // 5×5, stride 2, padding 2; the width is not covered evenly (last input column unused)
        (geom(3, 5, 13, 10, 6, 5, 5, 2, 2), 2),
        // 3×3, stride 2, padding 1, 16 pixels (no pixel padding); 9 filters: one 9-row tile
        (geom(2, 4, 8, 8, 9, 3, 3, 2, 1), 2),
        // 1×1, stride 2: every other pixel read
        (geom(4, 3, 6, 5, 17, 1, 1, 2, 0), 3),
        // 33 filters: two row tiles of 17, the second one row short
        (geom(2, 3, 12, 12, 33, 3, 3, 1, 1), 2),
        // non-square 3×5 kernel, padding 2, one chunk for all images
        (geom(3, 2, 9, 12, 5, 3, 5, 1, 2), 3),
        // LeNet-5's conv2: 150 columns
        (geom(4, 6, 14, 14, 16, 5, 5, 1, 0), 3),
        // 297 columns (300 packed): the weight gradient takes two even column tiles of 4·8·5
        (geom(2, 33, 6, 6, 10, 3, 3, 1, 1), 2),
        // LeNet-5's conv1: one channel, 576 pixels per image, long enough to split the weight
        // gradient over pixels (2 slices for the first chunk, then one accumulating chunk)
        (geom(3, 1, 28, 28, 20, 5, 5, 1, 0), 2),
        // 784 pixels per image: 392 groups of 4 pixels split over 3 slices of 131, the last 130
        (geom(3, 1, 32, 32, 20, 5, 5, 1, 0), 2),
        // 35 images in one chunk: a partial workgroup of conv_dgrad's 64 image lanes
        (geom(35, 2, 5, 4, 3, 3, 3, 1, 1), 35),
        // 70 images, stride 2: conv_dgrad's second image workgroup holds 6
        (geom(70, 3, 7, 6, 5, 3, 3, 2, 1), 70),
        // 33 channels: two channel tiles of 17 rows in conv_dgrad, the last partial; padding 2
        // with a 3×3 kernel (taps reaching past both edges)
        (geom(2, 33, 6, 5, 6, 3, 3, 1, 2), 2),
    ]
}

fn all_columns(geo: &ConvGeom) -> Vec<u32> {
    (0..geo.crs() as u32).collect()
}

/// Weights of a layer whose kept columns are `kept`, stored [K][kept.len()], widened to the
/// dense [K][C·R·S] layout with zeros in the pruned columns.
fn dense_weights(w: &[f32], geo: &ConvGeom, kept: &[u32]) -> Vec<f32> {
    let (crs, kc) = (geo.crs(), kept.len());
    let mut d = vec![0.0; geo.k * crs];
    for k in 0..geo.k {
        for (j, &col) in kept.iter().enumerate() {
            d[k * crs + col as usize] = w[k * kc + j];
        }
    }
    d
}

fn conv_tag(geo: &ConvGeom, chunk: usize) -> String {
    format!(
        "n{} c{} {}x{} k{} {}x{} stride {} pad {} (chunk {chunk})",
        geo.n, geo.c, geo.h, geo.w, geo.k, geo.r, geo.s, geo.stride, geo.pad
    )
}


// ------------------------------------------------------------------ conv through the GEMM

/// y (N, K, OH, OW) = conv(x, w) + bias: im2col, pack(W [K][kc] → [K][kcp]), then the GEMM with
/// the NCHW output map, `chunk` images at a time, all recorded into one submission.
fn gpu_conv_forward(gpu: &Gpu, x: &[f32], w: &[f32], bias: &[f32], geo: &ConvGeom, kept: &[u32], chunk: usize) -> Vec<f32> {
    conv_forward_with(gpu, x, w, bias, geo, kept, chunk, false)
}

/// The convolution forward through explicit im2col + GEMM, or the implicit GEMM of
/// conv_gemm.wgsl that reads the columns straight from x.
#[allow(clippy::too_many_arguments)]
fn conv_forward_with(gpu: &Gpu, x: &[f32], w: &[f32], bias: &[f32], geo: &ConvGeom, kept: &[u32], chunk: usize, implicit: bool) -> Vec<f32> {
    let (kc, ohw, ohwp) = (kept.len(), geo.ohw(), geo.ohwp());
    let kcp = kc.next_multiple_of(4);
    let tx = gpu.upload(x, "x").unwrap();
    let tw = gpu.upload(w, "w").unwrap();
    let tb = gpu.upload(bias, "bias").unwrap();
    let tbl = gpu.upload(&conv::column_table(geo, kept).unwrap(), "tbl").unwrap();
    let pw = nan_tensor(gpu, geo.k * kcp, "packed w");
    let col = nan_tensor(gpu, kcp * chunk * ohwp, "col");
    let y = nan_tensor(gpu, geo.n * geo.k * ohw, "y");
    let mut plan = vec![pack(gpu, &tw, &pw, &Pack::matrix(geo.k, kc, kc, 1, false)).unwrap()];
    for n0 in (0..geo.n).step_by(chunk) {
        let c = chunk.min(geo.n - n0);
        let np = c * ohwp;
        if implicit {
            plan.push(autocompress::gpu::conv::conv_gemm(gpu, geo, kc, n0, c, &pw, &tx, &tbl, &tb, &y).unwrap());
            continue;
        }
        plan.push(conv::im2col(gpu, &tx, &tbl, &col, geo, kc, n0, c).unwrap());
        let gm = Gemm { a: &pw, a_off: 0, b: &col, b_off: 0, m: geo.k, n: np, kp: kcp, np };
        let out = OutMap { off: n0 * geo.k * ohw, rs: ohw, bs: geo.k * ohw, cs: 1, n_inner: ohwp, n_valid: ohw, accumulate: false };
        plan.push(gemm(gpu, &gm, Bias::PerRow(&tb, 0), &y, out).unwrap());
    }
    gpu.run(&plan).unwrap();
    read(gpu, &y)
}

/// dx (N, C, H, W) from dy by each data-gradient path the layer has, by name: dgrad_weights
/// lays W out as [C][R·S][Kp], then conv_dgrad gathers dy over each input pixel's valid taps (all
/// images in one dispatch, as in the network), and at stride 1 the forward implicit GEMM runs
/// over dy with the flipped taps, in chunks of `chunk` images.
fn gpu_conv_backward_data(gpu: &Gpu, dy: &[f32], w: &[f32], geo: &ConvGeom, kept: &[u32], chunk: usize) -> Vec<(&'static str, Vec<f32>)> {
    let tdy = gpu.upload(dy, "dy").unwrap();
    let tw = gpu.upload(w, "w").unwrap();
    let tbl = gpu.upload(&conv::column_table(geo, kept).unwrap(), "tbl").unwrap();
    let wt = nan_tensor(gpu, geo.crs() * geo.k.next_multiple_of(4), "dgrad weights");
    let dx = nan_tensor(gpu, geo.n * geo.c * geo.h * geo.w, "dx");
    let layout = conv::dgrad_weights(gpu, &tw, &tbl, &wt, geo, kept.len()).unwrap();
    gpu.run(&[layout.clone(), conv_dgrad(gpu, geo, &wt, &tdy, &dx).unwrap()]).unwrap();
    let mut out = vec![("gather", read(gpu, &dx))];
    if let Some(t) = conv::transposed(geo) {
        let ttbl = gpu.upload(&conv::transposed_table(geo).unwrap(), "transposed table").unwrap();
        let zero = gpu.upload(&vec![0.0f32; geo.c], "zero bias").unwrap();
        let dx = nan_tensor(gpu, geo.n * geo.c * geo.h * geo.w, "dx");
        let mut plan = vec![layout];
        for n0 in (0..geo.n).step_by(chunk) {
            plan.push(conv_gemm(gpu, &t, geo.r * geo.s * geo.k.next_multiple_of(4), n0, chunk.min(geo.n - n0), &wt, &tdy, &ttbl, &zero, &dx).unwrap());
        }
        gpu.run(&plan).unwrap();
        out.push(("transposed", read(gpu, &dx)));
    }
    out
}

/// dw [K][kc] = Σ over chunks of the implicit-GEMM weight gradient (conv_wgrad), accumulating
/// after the first chunk; long pixel axes go through the split-K partial sums.
fn gpu_conv_backward_weight(gpu: &Gpu, x: &[f32], dy: &[f32], geo: &ConvGeom, kept: &[u32], chunk: usize) -> Vec<f32> {
    let kc = kept.len();
    let tx = gpu.upload(x, "x").unwrap();
    let tdy = gpu.upload(dy, "dy").unwrap();
    let tbl = gpu.upload(&conv::column_table(geo, kept).unwrap(), "tbl").unwrap();
    let dw = nan_tensor(gpu, geo.k * kc, "dw");
    let splits = split_count(geo.k, kc.next_multiple_of(4), chunk * geo.ohwp());
    let part = nan_tensor(gpu, splits * geo.k * kc, "split-k partial sums");
    let mut plan = Vec::new();
    for n0 in (0..geo.n).step_by(chunk) {
        let c = chunk.min(geo.n - n0);
        plan.extend(conv_wgrad(gpu, geo, kc, n0, c, &tdy, &tx, &tbl, &dw, &part, n0 > 0).unwrap());
    }
    gpu.run(&plan).unwrap();
    read(gpu, &dw)
}

#[test]
fn conv_forward_matches_reference() {
    let gpu = gpu_or_skip!();
    for (i, (geo, chunk)) in conv_cases().into_iter().enumerate() {
        let seed = 100 + 10 * i as u64;
        assert_eq!((geo.oh(), geo.ow()), cpu::conv_out(&geo), "output size of {}", conv_tag(&geo, chunk));
        let x = rand_vec(geo.n * geo.c * geo.h * geo.w, seed);
        let w = rand_vec(geo.k * geo.crs(), seed + 1);
        let bias = rand_vec(geo.k, seed + 2);
        let got = gpu_conv_forward(gpu, &x, &w, &bias, &geo, &all_columns(&geo), chunk);
        let want = cpu::conv2d_forward(&x, &w, Some(&bias), &geo);
        assert_close(&format!("conv forward {}", conv_tag(&geo, chunk)), &got, &want, 1e-5);
    }
}

#[test]
fn implicit_gemm_conv_forward_matches_reference() {
    let gpu = gpu_or_skip!();
    for (i, (geo, chunk)) in conv_cases().into_iter().enumerate() {
        let seed = 150 + 10 * i as u64;
        let x = rand_vec(geo.n * geo.c * geo.h * geo.w, seed);
        let w = rand_vec(geo.k * geo.crs(), seed + 1);
        let bias = rand_vec(geo.k, seed + 2);
        let got = conv_forward_with(gpu, &x, &w, &bias, &geo, &all_columns(&geo), chunk, true);
        let want = cpu::conv2d_forward(&x, &w, Some(&bias), &geo);
        assert_close(&format!("implicit conv forward {}", conv_tag(&geo, chunk)), &got, &want, 1e-5);
        // a column-pruned layer: every third kept column, against the dense path with zeros
        let kept: Vec<u32> = (0..geo.crs() as u32).step_by(3).collect();
        let wk: Vec<f32> = (0..geo.k).flat_map(|r| kept.iter().map(move |&j| (r, j))).map(|(r, j)| w[r * geo.crs() + j as usize]).collect();
        let got = conv_forward_with(gpu, &x, &wk, &bias, &geo, &kept, chunk, true);
        let want = conv_forward_with(gpu, &x, &wk, &bias, &geo, &kept, chunk, false);
        assert_close(&format!("implicit pruned conv forward {}", conv_tag(&geo, chunk)), &got, &want, 1e-5);
    }
}

#[test]
fn conv_backward_data_matches_reference() {
    let gpu = gpu_or_skip!();
    for (i, (geo, chunk)) in conv_cases().into_iter().enumerate() {
        let seed = 200 + 10 * i as u64;
        let dy = rand_vec(geo.n * geo.k * geo.ohw(), seed);
        let w = rand_vec(geo.k * geo.crs(), seed + 1);
        let want = cpu::conv2d_backward_data(&dy, &w, &geo);
        let paths = gpu_conv_backward_data(gpu, &dy, &w, &geo, &all_columns(&geo), chunk);
        assert_eq!(paths.len(), if geo.stride == 1 && geo.r == geo.s { 2 } else { 1 }, "data-gradient paths of {}", conv_tag(&geo, chunk));
        for (path, got) in paths {
            assert_close(&format!("conv backward data ({path}) {}", conv_tag(&geo, chunk)), &got, &want, 1e-5);
        }
    }
}

#[test]
fn conv_backward_weight_matches_reference() {
    let gpu = gpu_or_skip!();
    for (i, (geo, chunk)) in conv_cases().into_iter().enumerate() {
        let seed = 300 + 10 * i as u64;
        let x = rand_vec(geo.n * geo.c * geo.h * geo.w, seed);
        let dy = rand_vec(geo.n * geo.k * geo.ohw(), seed + 1);
        let got = gpu_conv_backward_weight(gpu, &x, &dy, &geo, &all_columns(&geo), chunk);
        let want = cpu::conv2d_backward_weight(&x, &dy, &geo);
        assert_close(&format!("conv backward weight {}", conv_tag(&geo, chunk)), &got, &want, 1e-5);
    }
}

/// Kept-column subsets: every third column in order, a shuffled half, and a single column.
fn kept_subsets(geo: &ConvGeom, seed: u64) -> Vec<Vec<u32>> {
    let crs = geo.crs() as u32;
    let every_third: Vec<u32> = (0..crs).filter(|j| j % 3 == 1).collect();
    let keys = rand_vec(crs as usize, seed);
    let mut shuffled: Vec<u32> = (0..crs).collect();
    shuffled.sort_by(|&a, &b| keys[a as usize].total_cmp(&keys[b as usize]));
    shuffled.truncate((crs as usize).div_ceil(2));
    vec![every_third, shuffled, vec![crs - 1]]
}

#[test]
fn column_pruned_conv_equals_dense_conv_with_zero_columns() {
    let gpu = gpu_or_skip!();
    for (i, (geo, chunk)) in conv_cases().into_iter().enumerate() {
        let seed = 400 + 10 * i as u64;
        let x = rand_vec(geo.n * geo.c * geo.h * geo.w, seed);
        let bias = rand_vec(geo.k, seed + 2);
        let dy = rand_vec(geo.n * geo.k * geo.ohw(), seed + 3);
        for kept in kept_subsets(&geo, seed + 4) {
            if kept.is_empty() {
                continue;
            }
            let tag = format!("{} keeping {} of {} columns", conv_tag(&geo, chunk), kept.len(), geo.crs());
            let w = rand_vec(geo.k * kept.len(), seed + 1);
            let dense = dense_weights(&w, &geo, &kept);

            let pruned = gpu_conv_forward(gpu, &x, &w, &bias, &geo, &kept, chunk);
            let want = cpu::conv2d_forward(&x, &dense, Some(&bias), &geo);
            assert_close(&format!("column-pruned conv forward {tag}"), &pruned, &want, 1e-5);
            let dense_gpu = gpu_conv_forward(gpu, &x, &dense, &bias, &geo, &all_columns(&geo), chunk);
            assert_close(&format!("column-pruned vs dense GPU conv forward {tag}"), &pruned, &dense_gpu, 1e-5);

            let want = cpu::conv2d_backward_data(&dy, &dense, &geo);
            for (path, dx) in gpu_conv_backward_data(gpu, &dy, &w, &geo, &kept, chunk) {
                assert_close(&format!("column-pruned conv backward data ({path}) {tag}"), &dx, &want, 1e-5);
            }

            let dw = gpu_conv_backward_weight(gpu, &x, &dy, &geo, &kept, chunk);
            let full = cpu::conv2d_backward_weight(&x, &dy, &geo);
            let want: Vec<f32> =
                (0..geo.k).flat_map(|k| kept.iter().map(move |&j| (k, j))).map(|(k, j)| full[k * geo.crs() + j as usize]).collect();
            assert_close(&format!("column-pruned conv backward weight {tag}"), &dw, &want, 1e-5);
        }
    }
}

#[test]
fn column_table_rejects_out_of_range_columns() {
    let geo = geom(1, 2, 5, 5, 3, 3, 3, 1, 1);
    assert!(conv::column_table(&geo, &[0, 18]).is_err(), "column 18 of an 18-column layer accepted");
    let t = conv::column_table(&geo, &[17, 4]).unwrap();
    assert_eq!(t.len(), 2 + 18);
    assert_eq!(t[0], (1 << 16) | (2 << 8) | 2, "column 17 = channel 1, r 2, s 2");
    assert_eq!((t[2 + 17], t[2 + 4], t[2]), (0, 1, u32::MAX), "inverse map");
}

// --------------------------------------------------------------------------- im2col, pack

#[test]
fn im2col_matches_reference() {
    let gpu = gpu_or_skip!();
    for (i, (geo, chunk)) in conv_cases().into_iter().enumerate() {
        let x = rand_vec(geo.n * geo.c * geo.h * geo.w, 500 + i as u64);
        let tx = gpu.upload(&x, "x").unwrap();
        for kept in [all_columns(&geo), kept_subsets(&geo, 7).remove(1)] {
            let (kc, ohw, ohwp) = (kept.len(), geo.ohw(), geo.ohwp());
            let kcp = kc.next_multiple_of(4);
            let tbl = gpu.upload(&conv::column_table(&geo, &kept).unwrap(), "tbl").unwrap();
            let kept_us: Vec<usize> = kept.iter().map(|&j| j as usize).collect();
            // the last chunk, which is partial in most cases: n0 > 0 exercises the image offset
            let n0 = (geo.n - 1) / chunk * chunk;
            let c = geo.n - n0;
            let want = cpu::im2col(&x, &geo, &kept_us, n0, c);
            let col = nan_tensor(gpu, kcp * c * ohwp, "col");
            gpu.run(&[conv::im2col(gpu, &tx, &tbl, &col, &geo, kc, n0, c).unwrap()]).unwrap();
            let got = read(gpu, &col);
            // Expected layout, zero in the padding rows (j ≥ kc) and pixels (p ≥ OHW).
            let mut exp = vec![0.0; kcp * c * ohwp];
            for j in 0..kc {
                for img in 0..c {
                    for p in 0..ohw {
                        exp[j * c * ohwp + img * ohwp + p] = want[j * c * ohw + img * ohw + p];
                    }
                }
            }
            let tag = format!("im2col {} kc {kc} images {n0}..{}", conv_tag(&geo, chunk), n0 + c);
            assert_close(&tag, &got, &exp, 0.0);
        }
    }
}

#[test]
fn pack_transposes_and_zero_pads() {
    let gpu = gpu_or_skip!();
    // W [7][13] → Wᵀ [13→16][7→8] at element offset 5 of dst; dst[..5] and dst beyond untouched.
    let (rows, cols) = (7, 13);
    let w = rand_vec(rows * cols, 600);
    let tw = gpu.upload(&w, "w").unwrap();
    let sentinel = 12345.0;
    let (rp, cp, off) = (16, 8, 5);
    let dst = gpu.upload(&vec![sentinel; off + rp * cp + 3], "dst").unwrap();
    let p = Pack { d_off: off, ..Pack::matrix(cols, rows, 1, cols, true) };
    assert_eq!((p.rp, p.cp), (rp, cp));
    gpu.run(&[pack(gpu, &tw, &dst, &p).unwrap()]).unwrap();
    let got = read(gpu, &dst);
    let mut want = vec![sentinel; off + rp * cp + 3];
    for r in 0..rp {
        for c in 0..cp {
            want[off + r * cp + c] = if r < cols && c < rows { w[c * cols + r] } else { 0.0 };
        }
    }
    assert_close("pack transpose 7x13 with padding", &got, &want, 0.0);

    // Without row padding: [5][6] → [5][8] with a source offset (a sub-block of a larger matrix).
    let src = rand_vec(9 * 10, 601);
    let ts = gpu.upload(&src, "src").unwrap();
    let dst = nan_tensor(gpu, 5 * 8, "dst");
    let p = Pack { s_off: 2 * 10 + 3, ..Pack::matrix(5, 6, 10, 1, false) };
    gpu.run(&[pack(gpu, &ts, &dst, &p).unwrap()]).unwrap();
    let want: Vec<f32> = (0..5 * 8).map(|i| if i % 8 < 6 { src[(2 + i / 8) * 10 + 3 + i % 8] } else { 0.0 }).collect();
    assert_close("pack sub-block 5x6 of 9x10", &read(gpu, &dst), &want, 0.0);
}

#[test]
fn pack_gathers_image_blocks() {
    let gpu = gpu_or_skip!();
    // Column blocks: dy (N=5, K=6, 3×3) images 2..5 → [8][3·12], pixel padding 9..12 zero.
    let geo = geom(5, 2, 3, 3, 6, 1, 1, 1, 0);
    let (k, ohw, ohwp) = (geo.k, geo.ohw(), geo.ohwp());
    let dy = rand_vec(geo.n * k * ohw, 610);
    let tdy = gpu.upload(&dy, "dy").unwrap();
    let (n0, c, rp) = (2, 3, 8);
    let dst = nan_tensor(gpu, rp * c * ohwp, "dst");
    let dy_pack = Pack {
        rows: k,
        cols: c * ohwp,
        rp,
        cp: c * ohwp,
        r_in: BIG,
        r_valid: BIG,
        c_in: ohwp,
        c_valid: ohw,
        s_off: n0 * k * ohw,
        s_rb: 0,
        s_rs: ohw,
        s_cb: k * ohw,
        s_cs: 1,
        d_off: 0,
    };
    gpu.run(&[pack(gpu, &tdy, &dst, &dy_pack).unwrap()]).unwrap();
    let mut want = vec![0.0; rp * c * ohwp];
    for kk in 0..k {
        for img in 0..c {
            for p in 0..ohw {
                want[kk * c * ohwp + img * ohwp + p] = dy[((n0 + img) * k + kk) * ohw + p];
            }
        }
    }
    assert_close("pack dy image blocks", &read(gpu, &dst), &want, 0.0);

    // Row blocks: x (N=3, C=5, HW=7) → rows (image, pixel padded to 8), columns channels padded
    // to 8: the transposed gather of an NCHW activation.
    let (n, ch, hw, hwp) = (3, 5, 7, 8);
    let x = rand_vec(n * ch * hw, 611);
    let tx = gpu.upload(&x, "x").unwrap();
    let p = Pack {
        rows: n * hwp,
        cols: ch,
        rp: n * hwp,
        cp: 8,
        r_in: hwp,
        r_valid: hw,
        c_in: BIG,
        c_valid: BIG,
        s_off: 0,
        s_rb: ch * hw,
        s_rs: 1,
        s_cb: 0,
        s_cs: hw,
        d_off: 0,
    };
    let dst = nan_tensor(gpu, n * hwp * 8, "dst");
    gpu.run(&[pack(gpu, &tx, &dst, &p).unwrap()]).unwrap();
    let mut want = vec![0.0; n * hwp * 8];
    for img in 0..n {
        for pix in 0..hw {
            for c in 0..ch {
                want[(img * hwp + pix) * 8 + c] = x[(img * ch + c) * hw + pix];
            }
        }
    }
    assert_close("pack x row blocks", &read(gpu, &dst), &want, 0.0);
}

// ---------------------------------------------------------------------------- channel_sum

#[test]
fn channel_sum_matches_reference() {
    let gpu = gpu_or_skip!();
    // (N, K, P, accumulate)
    for (i, &(n, k, p, acc)) in [(5, 7, 121, false), (1, 3, 1, false), (3, 70, 200, true), (2, 1, 1000, true)].iter().enumerate() {
        let dy = rand_vec(n * k * p, 700 + i as u64);
        let init = rand_vec(k, 750 + i as u64);
        let tdy = gpu.upload(&dy, "dy").unwrap();
        let db = if acc { gpu.upload(&init, "db").unwrap() } else { nan_tensor(gpu, k, "db") };
        gpu.run(&[conv::channel_sum(gpu, &tdy, &db, n, k, p, acc).unwrap()]).unwrap();
        let mut want = cpu::channel_sum(&dy, n, k, p);
        if acc {
            want.iter_mut().zip(&init).for_each(|(w, i)| *w += i);
        }
        assert_close(&format!("channel_sum n{n} k{k} p{p} accumulate {acc}"), &read(gpu, &db), &want, 1e-5);
    }
}

// ------------------------------------------------------------------------------- pooling

#[test]
fn maxpool_matches_reference_with_ties() {
    let gpu = gpu_or_skip!();
    // (planes, h, w, window, stride, padding)
    let cases = [
        (6, 7, 9, 2, 2, 0),   // 2×2/s2 on odd sizes: the last row and column are in no window
        (3, 9, 7, 3, 2, 0),   // 3×3/s2: overlapping windows, an input can be the max of several
        (1, 5, 5, 3, 1, 0),   // one plane, 3×3/s1
        (130, 4, 6, 2, 2, 0), // many planes
        (2, 3, 3, 3, 3, 0),   // the window is the whole plane
        (3, 9, 7, 3, 2, 1),   // torchvision's ResNet stem pool: 3×3/s2, padding 1, odd sizes
        (2, 5, 6, 2, 2, 1),   // padding 1 with a 2×2 window: corner windows hold one real pixel
        (1, 4, 3, 5, 1, 2),   // window larger than the plane, padding 2 on every side
    ];
    for (i, &(planes, h, w, k, stride, pad)) in cases.iter().enumerate() {
        let geo = PoolGeom { planes, h, w, k, stride, pad };
        let tag = format!("maxpool {planes} planes {h}x{w} window {k} stride {stride} padding {pad}");
        // Coarse values make ties common; one plane is constant (every window a tie) and negative.
        let mut x = coarse_vec(planes * h * w, 800 + i as u64);
        x[..h * w].fill(-0.5);
        let (want_y, want_arg) = cpu::maxpool_forward(&x, planes, h, w, k, stride, pad);
        assert_eq!(want_y.len(), planes * geo.oh() * geo.ow(), "{tag}: output size");
        let dy = rand_vec(want_y.len(), 850 + i as u64);

        let tx = gpu.upload(&x, "x").unwrap();
        let y = nan_tensor(gpu, want_y.len(), "y");
        let arg = gpu.upload(&vec![u32::MAX; want_y.len()], "arg").unwrap();
        let tdy = gpu.upload(&dy, "dy").unwrap();
        let dx = nan_tensor(gpu, x.len(), "dx");
        gpu.run(&[
            pool::maxpool_forward(gpu, &tx, &y, &arg, &geo).unwrap(),
            pool::maxpool_backward(gpu, &tdy, &arg, &dx, &geo).unwrap(),
        ]).unwrap();
        assert_close(&format!("{tag} forward"), &read(gpu, &y), &want_y, 0.0);
        let got_arg: Vec<u32> = gpu.read(&arg).unwrap();
        if let Some(o) = (0..want_arg.len()).find(|&o| got_arg[o] != want_arg[o]) {
            panic!("{tag}: argmax of output {o} is input {} but the first maximum is input {}", got_arg[o], want_arg[o]);
        }
        assert_close(&format!("{tag} backward"), &read(gpu, &dx), &cpu::maxpool_backward(&x, &dy, planes, h, w, k, stride, pad), 1e-5);
    }
}

#[test]
fn avgpool_matches_reference() {
    let gpu = gpu_or_skip!();
    for (i, &(planes, hw)) in [(7, 15), (1, 49), (130, 9), (3, 1)].iter().enumerate() {
        let x = rand_vec(planes * hw, 900 + i as u64);
        let dy = rand_vec(planes, 950 + i as u64);
        let tx = gpu.upload(&x, "x").unwrap();
        let tdy = gpu.upload(&dy, "dy").unwrap();
        let y = nan_tensor(gpu, planes, "y");
        let dx = nan_tensor(gpu, planes * hw, "dx");
        gpu.run(&[
            pool::avgpool_forward(gpu, &tx, &y, planes, hw).unwrap(),
            pool::avgpool_backward(gpu, &tdy, &dx, planes, hw).unwrap(),
        ]).unwrap();
        let tag = format!("avgpool {planes} planes of {hw}");
        assert_close(&format!("{tag} forward"), &read(gpu, &y), &cpu::avgpool_forward(&x, planes, hw), 1e-5);
        assert_close(&format!("{tag} backward"), &read(gpu, &dx), &cpu::avgpool_backward(&dy, planes, hw), 1e-5);
    }
}

// ---------------------------------------------------------------------------- activation

#[test]
fn relu_matches_reference() {
    let gpu = gpu_or_skip!();
    for (i, &n) in [1usize, 1003, 70_001].iter().enumerate() {
        let mut x = rand_vec(n, 1000 + i as u64);
        // exact zeros (and a negative zero) must give zero gradient
        for v in x.iter_mut().step_by(7) {
            *v = 0.0;
        }
        if n > 3 {
            x[3] = -0.0;
        }
        let dy = rand_vec(n, 1050 + i as u64);
        let tx = gpu.upload(&x, "x").unwrap();
        let tdy = gpu.upload(&dy, "dy").unwrap();
        let y = nan_tensor(gpu, n, "y");
        let dx = nan_tensor(gpu, n, "dx");
        gpu.run(&[activation::relu_forward(gpu, &tx, &y, n).unwrap(), activation::relu_backward(gpu, &tdy, &y, &dx, n).unwrap()]).unwrap();
        assert_close(&format!("relu forward n{n}"), &read(gpu, &y), &cpu::relu_forward(&x), 0.0);
        assert_close(&format!("relu backward n{n}"), &read(gpu, &dx), &cpu::relu_backward(&dy, &x), 0.0);
    }
}

// --------------------------------------------------------------------- softmax, metrics

/// hyper = [lr, momentum, valid rows, loss-ring slot].
fn hyper(valid: usize, slot: usize) -> Vec<f32> {
    vec![0.1, 0.9, valid as f32, slot as f32]
}

#[test]
fn softmax_xent_matches_reference() {
    let gpu = gpu_or_skip!();
    // (batch, classes, valid rows, logit scale)
    for (i, &(batch, classes, valid, scale)) in
        [(70, 10, 67, 3.0f32), (1, 3, 1, 1.0), (5, 2, 5, 1.0), (9, 100, 9, 40.0), (4, 7, 0, 1.0)].iter().enumerate()
    {
        let tag = format!("softmax_xent batch {batch} classes {classes} valid {valid} scale {scale}");
        let mut logits: Vec<f32> = rand_vec(batch * classes, 1100 + i as u64).iter().map(|v| v * scale).collect();
        let mut labels: Vec<u32> =
            rand_vec(batch, 1150 + i as u64).iter().map(|v| ((v + 1.0) * 0.5 * classes as f32) as u32 % classes as u32).collect();
        if batch > 4 {
            // Tied maxima: the first one counts as the prediction.
            let c = classes;
            for row in [3, 4] {
                logits[row * c..(row + 1) * c].fill(0.0);
                logits[row * c] = 5.0;
                logits[row * c + c - 1] = 5.0;
            }
            labels[3] = c as u32 - 1; // wrong: row 3 predicts class 0
            labels[4] = 0; // right
        }
        run_xent(gpu, &tag, &logits, &labels, batch, classes, valid);
    }
}

fn run_xent(gpu: &Gpu, tag: &str, logits: &[f32], labels: &[u32], batch: usize, classes: usize, valid: usize) {
    let want = cpu::softmax_xent(logits, labels, batch, classes, valid);
    // without distillation the teacher buffer is never read: NaNs there must not leak
    let teacher = nan_tensor(gpu, batch * classes, "teacher");
    check_xent(gpu, tag, logits, labels, &teacher, &[0.0, 1.0], batch, classes, valid, &want);
}

/// Runs the loss kernel and compares loss, correct and dlogits with `want`.
#[allow(clippy::too_many_arguments)]
fn check_xent(gpu: &Gpu, tag: &str, logits: &[f32], labels: &[u32], teacher: &Tensor, distill: &[f32], batch: usize, classes: usize, valid: usize, want: &cpu::Xent) {
    let tl = gpu.upload(logits, "logits").unwrap();
    let tlab = gpu.upload(labels, "labels").unwrap();
    let th = gpu.upload(&hyper(valid, 0), "hyper").unwrap();
    let td = gpu.upload(distill, "distill").unwrap();
    let dl = nan_tensor(gpu, batch * classes, "dlogits");
    let stats = nan_tensor(gpu, 2 * batch, "stats");
    gpu.run(&[loss::softmax_xent(gpu, &tl, &tlab, &th, teacher, &td, &dl, &stats, batch, classes).unwrap()]).unwrap();
    let st = read(gpu, &stats);
    let loss: Vec<f32> = st.iter().step_by(2).copied().collect();
    let correct: Vec<f32> = st.iter().skip(1).step_by(2).copied().collect();
    assert_close(&format!("{tag} loss"), &loss, &want.loss, 1e-5);
    assert_close(&format!("{tag} correct"), &correct, &want.correct, 0.0);
    assert_close(&format!("{tag} dlogits"), &read(gpu, &dl), &want.dlogits, 1e-5);
}

#[test]
fn distillation_loss_matches_reference_and_finite_differences() {
    let gpu = gpu_or_skip!();
    // (batch, classes, valid rows, logit scale, alpha, temperature)
    for (i, &(batch, classes, valid, scale, alpha, t)) in
        [(70, 10, 67, 3.0f32, 0.7f32, 4.0f32), (1, 3, 1, 1.0, 1.0, 1.0), (9, 100, 9, 20.0, 0.5, 2.5), (5, 2, 3, 1.0, 0.3, 0.5)].iter().enumerate()
    {
        let tag = format!("distillation batch {batch} classes {classes} valid {valid} alpha {alpha} T {t}");
        let logits: Vec<f32> = rand_vec(batch * classes, 1300 + i as u64).iter().map(|v| v * scale).collect();
        let teacher: Vec<f32> = rand_vec(batch * classes, 1350 + i as u64).iter().map(|v| v * scale).collect();
        let labels: Vec<u32> = (0..batch as u32).map(|r| (r * 5 + 1) % classes as u32).collect();
        let want = cpu::distill_xent(&logits, &labels, &teacher, alpha as f64, t as f64, batch, classes, valid);
        // the reference's analytic gradient against central differences of its own loss
        let mean = |l: &[f32]| cpu::distill_xent(l, &labels, &teacher, alpha as f64, t as f64, batch, classes, valid).loss.iter().map(|&v| v as f64).sum::<f64>() / valid as f64;
        for k in (0..valid * classes).step_by(7) {
            let (mut up, mut down) = (logits.clone(), logits.clone());
            let eps = 1e-2 * scale.max(1.0);
            up[k] += eps;
            down[k] -= eps;
            let numeric = (mean(&up) - mean(&down)) / (2.0 * eps as f64);
            let analytic = want.dlogits[k] as f64;
            assert!((numeric - analytic).abs() <= 2e-3 * (1.0 + analytic.abs()) / valid as f64 + 1e-4, "{tag}: dlogits[{k}] {analytic} but finite differences give {numeric}");
        }
        let tt = gpu.upload(&teacher, "teacher").unwrap();
        check_xent(gpu, &tag, &logits, &labels, &tt, &[alpha, t], batch, classes, valid, &want);
    }
}

#[test]
fn accumulate_metrics_sums_losses_and_correct() {
    let gpu = gpu_or_skip!();
    let (batch, classes, valid) = (70, 10, 61);
    let logits = rand_vec(batch * classes, 1200);
    let labels: Vec<u32> = (0..batch as u32).map(|i| i * 7 % classes as u32).collect();
    let want = cpu::softmax_xent(&logits, &labels, batch, classes, valid);
    let loss_sum: f32 = want.loss.iter().map(|&v| v as f64).sum::<f64>() as f32;
    let correct_sum: f32 = want.correct.iter().sum();

    let ring = loss::LOSS_RING;
    let tl = gpu.upload(&logits, "logits").unwrap();
    let tlab = gpu.upload(&labels, "labels").unwrap();
    let th = gpu.upload(&hyper(valid, 5), "hyper").unwrap();
    let teacher = gpu.tensor(batch * classes, "teacher").unwrap();
    let distill = gpu.upload(&[0.0f32, 1.0], "distill").unwrap();
    let dl = gpu.tensor(batch * classes, "dlogits").unwrap();
    let stats = gpu.tensor(2 * batch, "stats").unwrap();
    let mut init = vec![0.0f32; 2 + ring];
    init[0] = 0.5;
    init[1] = 2.0;
    let metrics = gpu.upload(&init, "metrics").unwrap();
    let plan = [
        loss::softmax_xent(gpu, &tl, &tlab, &th, &teacher, &distill, &dl, &stats, batch, classes).unwrap(),
        loss::accumulate_metrics(gpu, &stats, &th, &metrics, batch).unwrap(),
    ];
    gpu.run(&plan).unwrap();
    // The same prepared plan replayed as the next step, in the next ring slot.
    gpu.write(&th, &hyper(valid, ring - 1));
    gpu.run(&plan).unwrap();

    let mut expect = init.clone();
    expect[0] = 0.5 + 2.0 * loss_sum;
    expect[1] = 2.0 + 2.0 * correct_sum;
    expect[2 + 5] = loss_sum;
    expect[2 + ring - 1] = loss_sum;
    let got = read(gpu, &metrics);
    assert_close("metrics running sums", &got[..2], &expect[..2], 1e-5);
    assert_close("metrics loss ring", &got[2..], &expect[2..], 1e-5);
}

// ----------------------------------------------------------------------------------- sgd

/// SGD over a network's flat parameter buffers (`Store`): tensors of awkward sizes,
/// weight-decayed and not, interleaved in the order given so the layout reorders them, each its
/// own aligned view; masks on some tensors only. Once in one chunk (one dispatch), once with a
/// capacity that splits them over several chunks (one dispatch each, as for a model above the
/// storage binding limit). Each tensor must follow the CPU reference with its own decay, and the
/// padding between them must stay zero.
#[test]
fn sgd_over_flat_parameter_buffers_matches_reference() {
    let gpu = gpu_or_skip!();
    let (lr, momentum, wd) = (0.05f32, 0.9f32, 5e-4f32);
    let lens = [1037usize, 3, 70, 1, 257];
    let decay = [true, false, true, false, true];
    let a = gpu.view_alignment();
    for (capacity, several) in [(1 << 20, false), (1040usize.next_multiple_of(a), true)] {
        for masked in [false, true] {
            let what = format!("capacity {capacity}, masked {masked}");
            let mut w: Vec<Vec<f32>> = lens.iter().enumerate().map(|(i, &n)| rand_vec(n, 1301 + i as u64)).collect();
            let data: Vec<(&[f32], bool)> = w.iter().zip(decay).map(|(t, d)| (&t[..], d)).collect();
            let (store, views) = Store::with_capacity(gpu, &data, capacity).unwrap();
            assert_eq!(store.chunks.len() > 1, several, "{what}: {} chunks", store.chunks.len());
            assert!(store.chunks.iter().any(|c| c.decayed > 0 && c.decayed < c.weights.len), "{what}: a chunk mixes decayed and not");
            // velocities start non-zero everywhere, pruned entries included
            let mut v: Vec<Vec<f32>> = lens.iter().enumerate().map(|(i, &n)| rand_vec(n, 1310 + i as u64)).collect();
            for (t, view) in v.iter().zip(&views) {
                gpu.write(&view.velocity, t);
            }
            // tensors 0 and 3 pruned: the mask buffers hold ones elsewhere
            let masks: Vec<Option<Vec<f32>>> = lens
                .iter()
                .enumerate()
                .map(|(i, &n)| (masked && (i == 0 || i == 3)).then(|| rand_vec(n, 1320 + i as u64).iter().map(|&x| if x < -0.4 { 0.0 } else { 1.0 }).collect()))
                .collect();
            for (m, view) in masks.iter().zip(&views) {
                if let Some(m) = m {
                    gpu.write(&view.mask, m);
                }
            }
            let th = gpu.upload(&[lr, momentum, 1.0, 0.0], "hyper").unwrap();
            let step: Vec<_> = store
                .chunks
                .iter()
                .map(|c| sgd::sgd(gpu, &c.grads, &th, &c.weights, &c.velocities, masked.then_some(&c.masks), wd, c.decayed).unwrap())
                .collect();
            for s in 0..3u64 {
                for (i, view) in views.iter().enumerate() {
                    let grad = rand_vec(lens[i], 1330 + 10 * s + i as u64);
                    gpu.write(&view.grad, &grad);
                    let d = if decay[i] { wd } else { 0.0 };
                    cpu::sgd(&mut w[i], &mut v[i], &grad, masks[i].as_deref(), lr, momentum, d);
                }
                gpu.run(&step).unwrap();
                for (i, view) in views.iter().enumerate() {
                    assert_close(&format!("sgd {what} step {s} tensor {i} weights"), &read(gpu, &view.w), &w[i], 1e-5);
                    assert_close(&format!("sgd {what} step {s} tensor {i} velocity"), &read(gpu, &view.velocity), &v[i], 1e-5);
                }
                let mut padding = 0;
                for (k, c) in store.chunks.iter().enumerate() {
                    let (all_w, all_v) = (read(gpu, &c.weights), read(gpu, &c.velocities));
                    let mut pad = vec![true; c.weights.len];
                    for sl in store.layout.slots.iter().filter(|sl| sl.chunk == k) {
                        pad[sl.offset..sl.offset + sl.len].iter_mut().for_each(|p| *p = false);
                    }
                    for i in (0..pad.len()).filter(|&i| pad[i]) {
                        assert!(all_w[i] == 0.0 && all_v[i] == 0.0, "{what} step {s}: chunk {k} padding element {i} has w {} v {}", all_w[i], all_v[i]);
                        padding += 1;
                    }
                }
                assert!(padding > 0, "{what}: the layout should need padding at this alignment");
            }
        }
    }
}

/// Views share their buffer: writes and reads land in their own range, and a view that breaks
/// the adapter's offset alignment or its parent's bounds is refused.
#[test]
fn views_read_and_write_their_own_range() {
    let gpu = gpu_or_skip!();
    let a = gpu.view_alignment();
    let parent = gpu.upload(&vec![7.0f32; 3 * a], "parent").unwrap();
    let view = gpu.view(&parent, a, a + 1).unwrap();
    gpu.write(&view, &vec![1.0f32; a + 1]);
    let all = read(gpu, &parent);
    assert!(all[..a].iter().all(|&x| x == 7.0) && all[a..2 * a + 1].iter().all(|&x| x == 1.0) && all[2 * a + 1..].iter().all(|&x| x == 7.0));
    assert_eq!(read(gpu, &view), vec![1.0f32; a + 1]);
    assert!(gpu.view(&parent, 2 * a, a + 1).unwrap_err().to_string().contains("does not fit"));
    if a > 1 {
        let e = gpu.view(&parent, 1, 4).unwrap_err().to_string();
        assert!(e.contains("not aligned"), "{e}");
    }
    assert!(gpu.read_range::<f32>(&view, a, 2).is_err());
}

// ------------------------------------------------------------------------- large launches

/// A tensor far larger than the launch grid: `grid1d` caps the workgroup count (64 on CPU
/// adapters, 1024 on GPUs) and the shader loops grid-stride (`i += num_workgroups.x · 256`), so
/// each thread here writes 64 (GPU) to 1024 (lavapipe) elements; a loop that stopped early would
/// leave the tail NaN. Uncapped, the launch would need 65 538 workgroups, above lavapipe's (and
/// WebGPU's default) 65 535 per dimension, so there the test also fails should the cap go.
/// Training reaches tensors of 16.8M elements (a batch of 256 CIFAR images at 64 channels), so
/// it is tested once here, on the cheapest kernel that writes such a tensor.
#[test]
fn capped_launch_grid_covers_every_element() {
    let gpu = gpu_or_skip!();
    let hw = 64;
    let planes = 65536 * 4 + 3; // 16 777 408 outputs = 65 538 workgroups of 256
    let dy: Vec<f32> = (0..planes).map(|i| (i % 1000) as f32).collect();
    let tdy = gpu.upload(&dy, "dy").unwrap();
    let dx = nan_tensor(gpu, planes * hw, "dx");
    gpu.run(&[pool::avgpool_backward(gpu, &tdy, &dx, planes, hw).unwrap()]).unwrap();
    let got = read(gpu, &dx);
    // hw is a power of two, so the division is exact.
    if let Some(i) = (0..planes * hw).find(|&i| got[i] != dy[i / hw] / hw as f32) {
        panic!("capped launch grid: dx[{i}] of {} is {} but expected {}", planes * hw, got[i], dy[i / hw] / hw as f32);
    }
}
