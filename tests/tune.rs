//! The autotuner (src/gpu/tune.rs): its candidates stay within every adapter's limits, what it
//! picks on lavapipe passed the reference check on awkward shapes, and its cache survives a
//! round trip while corrupt files, other versions, other adapters and kernels beyond the
//! adapter's limits are ignored.

mod common;

use autocompress::gpu::conv::ConvGeom;
use autocompress::gpu::gemm::Tile;
use autocompress::gpu::strategy::{select_conv, Matmul, SharedTile};
use autocompress::gpu::tune::{self, bucket, candidates, Entry, Mode, Tuning, MAX_CANDIDATES};
use autocompress::gpu::Gpu;
use common::adapters;
use std::path::PathBuf;

fn scratch(name: &str) -> PathBuf {
    common::cli::scratch("tune", &format!("{name}.json"))
}

fn entry(kernel: Matmul) -> Entry {
    Entry { kernel, ms: 1.0, selected: kernel, selected_ms: 1.0, candidates: 1, rejected: 0 }
}

const REG: Matmul = Matmul::Register(Tile { tm: 4, tn4: 1, wx: 16, wy: 4 });

#[test]
fn candidates_start_with_selections_choice_and_stay_within_limits() {
    let shapes = [(128, 32 * 256, 1152), (50, 64 * 64, 452), (20, 64 * 576, 28), (7, 4, 12)];
    for a in adapters::all() {
        for (m, n, kp) in shapes {
            let list = candidates(&a, m, n, kp);
            assert!(!list.is_empty() && list.len() <= MAX_CANDIDATES, "{}: {} candidates", a.name, list.len());
            assert_eq!(list[0], select_conv(&a, m, n, kp).kernel, "{}: selection's choice first", a.name);
            for (i, k) in list.iter().enumerate() {
                a.check(k.workgroup(), k.bytes(true)).unwrap_or_else(|e| panic!("{} {m}×{n}×{kp}: {}: {e}", a.name, k.name()));
                assert!(!list[..i].contains(k), "{}: {} twice", a.name, k.name());
            }
            if !a.is_cpu() {
                assert!(list.iter().any(|k| matches!(k, Matmul::Workgroup(_))), "{}: no workgroup-memory candidate", a.name);
            }
        }
    }
}

#[test]
fn tuning_on_awkward_shapes_keeps_a_candidate_that_matched_the_reference() {
    let Some(gpu) = common::gpu() else { return };
    // batch 1, odd channels, stride 2 and padding, a pruned column table, partial tiles
    let shapes = [
        (ConvGeom { n: 1, c: 3, h: 9, w: 7, k: 5, r: 3, s: 3, stride: 2, pad: 1 }, vec![0u32, 2, 4, 5, 9, 13, 17, 20, 26]),
        (ConvGeom { n: 3, c: 6, h: 12, w: 12, k: 70, r: 5, s: 5, stride: 1, pad: 0 }, (0..150).filter(|j| j % 3 != 1).collect()),
        (ConvGeom { n: 2, c: 16, h: 8, w: 8, k: 33, r: 1, s: 1, stride: 2, pad: 0 }, (0..16).collect()),
    ];
    for (g, kept) in shapes {
        let e = tune::tune_conv(gpu, &g, &kept).unwrap_or_else(|err| panic!("{g:?}: {err:#}"));
        let list = candidates(&gpu.adapter, g.k, g.n * g.ohwp(), kept.len().next_multiple_of(4));
        assert_eq!(e.rejected, 0, "{g:?}: a tested kernel failed the tuner's reference check");
        assert_eq!((e.candidates, e.selected), (list.len(), list[0]), "{g:?}");
        assert!(list.contains(&e.kernel) && e.ms > 0.0 && e.ms <= e.selected_ms, "{g:?}: {e:?}");
    }
}

#[test]
fn the_reference_check_refuses_a_wrong_output() {
    let (want, scale) = (vec![1.0f64, -2.0, 3.0], vec![10.0f64, 10.0, 10.0]);
    assert!(tune::matches(&[1.0, -2.0, 3.0], &want, &scale));
    assert!(!tune::matches(&[1.0, -2.01, 3.0], &want, &scale), "an error of 1e-2 at scale 10 must fail");
    assert!(!tune::matches(&[1.0, f32::NAN, 3.0], &want, &scale), "NaN must fail");
}

#[test]
fn the_cache_round_trips_and_keeps_other_adapters_entries() {
    let path = scratch("roundtrip");
    let (nv, amd) = (adapters::discrete_nvidia(), adapters::discrete_amd());
    let shared = Matmul::Workgroup(SharedTile { tm: 4, tn4: 1, wx: 16, wy: 8, bk: 16 });
    let mut t = Tuning::open(Some(path.clone()), &nv, Mode::Cached);
    assert!(t.is_empty());
    t.insert(bucket(128, 8192, 1152), entry(shared)).expect("write");
    let mut t = Tuning::open(Some(path.clone()), &amd, Mode::Cached);
    assert!(t.get(&bucket(128, 8192, 1152)).is_none(), "another adapter's winner is not used");
    t.insert(bucket(64, 1024, 64), entry(REG)).expect("write");
    let t = Tuning::open(Some(path.clone()), &nv, Mode::Cached);
    assert_eq!(t.get(&bucket(128, 8192, 1152)).map(|e| e.kernel), Some(shared), "the NVIDIA entry survived AMD's write");
    assert_eq!(t.len(), 1);
    // the bucket: exact filters, columns and K rounded up to powers of two
    assert_eq!(bucket(128, 5000, 1000), bucket(128, 8192, 1024));
    assert_ne!(bucket(127, 8192, 1024), bucket(128, 8192, 1024));
    std::fs::remove_file(&path).ok();
}

#[test]
fn corrupt_other_version_and_out_of_limits_caches_are_ignored() {
    let a = adapters::integrated_intel();
    let key = bucket(64, 1024, 64);
    let path = scratch("corrupt");
    std::fs::write(&path, "{ not json").unwrap();
    let mut t = Tuning::open(Some(path.clone()), &a, Mode::Cached);
    assert!(t.is_empty());
    t.insert(key.clone(), entry(REG)).expect("a corrupt file is replaced");
    assert_eq!(Tuning::open(Some(path.clone()), &a, Mode::Cached).get(&key).map(|e| e.kernel), Some(REG));

    // the same entry in a file of another format version
    let text = std::fs::read_to_string(&path).unwrap().replace("\"version\": 1", "\"version\": 99");
    std::fs::write(&path, text).unwrap();
    assert!(Tuning::open(Some(path.clone()), &a, Mode::Cached).is_empty(), "another version's cache is ignored");

    // a kernel beyond the adapter's limits (1024 threads where it allows 256) is dropped
    let huge = Matmul::Register(Tile { tm: 4, tn4: 1, wx: 32, wy: 32 });
    std::fs::remove_file(&path).ok();
    Tuning::open(Some(path.clone()), &adapters::discrete_nvidia(), Mode::Cached).insert(key.clone(), entry(huge)).unwrap();
    let small = autocompress::gpu::strategy::AdapterDesc { max_invocations: 256, ..adapters::discrete_nvidia() };
    assert!(Tuning::open(Some(path.clone()), &small, Mode::Cached).get(&key).is_none());
    std::fs::remove_file(&path).ok();
}

#[test]
fn launches_use_the_cached_winner_and_first_use_tunes() {
    let Some(gpu) = Gpu::new(None).ok() else { return };
    let path = scratch("first-use");
    let g = ConvGeom { n: 2, c: 5, h: 10, w: 10, k: 12, r: 3, s: 3, stride: 1, pad: 1 };
    let key = bucket(g.k, g.n * g.ohwp(), 48);
    *gpu.tuning.lock().unwrap() = Tuning::open(Some(path.clone()), &gpu.adapter, Mode::FirstUse);
    let k = gpu.conv_kernel(&g, 45, g.n).expect("tunes");
    let cached = Tuning::open(Some(path.clone()), &gpu.adapter, Mode::Cached);
    assert_eq!(cached.get(&key).map(|e| e.kernel), Some(k), "first use wrote its winner to the cache");
    // a winner in the cache is what launches use
    let mut t = Tuning::open(Some(path.clone()), &gpu.adapter, Mode::Cached);
    t.insert(key.clone(), entry(REG)).unwrap();
    *gpu.tuning.lock().unwrap() = t;
    assert_eq!(gpu.conv_kernel(&g, 45, g.n).unwrap(), REG);
    // off: selection alone
    *gpu.tuning.lock().unwrap() = Tuning::open(None, &gpu.adapter, Mode::Off);
    assert_eq!(gpu.conv_kernel(&g, 45, g.n).unwrap(), gpu.strategy.conv(g.k, g.n * g.ohwp(), 48).kernel);
    std::fs::remove_file(&path).ok();
}
