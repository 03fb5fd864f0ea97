//! Dependency-aware pruning on small batch-norm and residual models: the channel spaces
//! (coupled groups), compaction that keeps the masked model's outputs (filter-only, column-only
//! and mixed), unused-path removal across residual sums, and coupled groups pruned together.
mod common;

use autocompress::gpu::Gpu;
use autocompress::model::{Architecture, Layer, Network, Weights};
use autocompress::prune::compact::compact;
use autocompress::prune::topology::topology;
use common::*;

fn bn(name: &str) -> Layer {
    Layer::BatchNorm { name: name.into() }
}

fn vgg() -> Architecture {
    Architecture {
        name: "tiny-vgg".into(),
        input: [3, 8, 8],
        classes: 4,
        layers: vec![
            conv("conv1", 6, 3, 1, 1),
            bn("bn1"),
            Layer::Relu,
            Layer::MaxPool { size: 2, stride: 2, padding: 0 },
            conv("conv2", 5, 3, 1, 1),
            bn("bn2"),
            Layer::Relu,
            Layer::Flatten,
            linear("fc1", 7),
            bn("bn_fc1"),
            Layer::Relu,
            linear("fc2", 4),
        ],
    }
}

fn resnet() -> Architecture {
    Architecture {
        name: "tiny-resnet".into(),
        input: [3, 8, 8],
        classes: 4,
        layers: vec![
            conv("stem", 4, 3, 1, 1),
            bn("stem_bn"),
            Layer::Relu,
            Layer::Residual { body: vec![conv("a", 5, 3, 1, 1), bn("a_bn"), Layer::Relu, conv("b", 4, 3, 1, 1), bn("b_bn")], shortcut: vec![] },
            Layer::Relu,
            Layer::Residual {
                body: vec![conv("c", 6, 3, 2, 1), bn("c_bn"), Layer::Relu, conv("d", 6, 3, 1, 1), bn("d_bn")],
                shortcut: vec![conv("s", 6, 1, 2, 0), bn("s_bn")],
            },
            Layer::Relu,
            Layer::GlobalAvgPool,
            linear("fc", 4),
        ],
    }
}

/// Initial weights with every batch-norm tensor and bias made non-trivial, so a channel that
/// compaction wrongly drops or keeps shows in the logits.
fn weights(a: &Architecture) -> Weights {
    let mut w = Weights::init(a, 5).unwrap();
    for (k, t) in w.tensors.iter_mut().enumerate() {
        let r = rand_vec(t.data.len(), 100 + k as u64);
        if t.name.ends_with(".running_var") {
            t.data.iter_mut().zip(&r).for_each(|(x, v)| *x = 0.5 + v.abs());
        } else if !t.name.ends_with(".weight") || t.shape.len() == 1 {
            // biases, β, running means; γ (1-D weights) around 1
            let base = if t.shape.len() == 1 && t.name.ends_with(".weight") { 1.0 } else { 0.0 };
            t.data.iter_mut().zip(&r).for_each(|(x, v)| *x = base + 0.3 * v);
        }
    }
    w
}

/// Removes channels `cs` of the space `layer` writes: every producer's filter and bias and
/// every batch norm's γ and β, as a filter action on a coupled group does.
fn prune_channels(a: &Architecture, w: &mut Weights, layer: &str, cs: &[usize]) {
    let t = topology(a).unwrap();
    let s = &t.spaces[t.nodes.iter().find(|n| n.name == layer).unwrap().output];
    for &c in cs {
        for &p in &s.producers {
            let n = &t.nodes[p];
            let cols = n.cols();
            w.get_mut(&format!("{}.weight", n.name)).unwrap().data[c * cols..(c + 1) * cols].fill(0.0);
            w.get_mut(&format!("{}.bias", n.name)).unwrap().data[c] = 0.0;
        }
        for norm in &s.norms {
            w.get_mut(&format!("{norm}.weight")).unwrap().data[c] = 0.0;
            w.get_mut(&format!("{norm}.bias")).unwrap().data[c] = 0.0;
        }
    }
}

/// Zeroes columns `js` of one layer's GEMM view.
fn prune_columns(w: &mut Weights, layer: &str, js: &[usize]) {
    let t = w.get_mut(&format!("{layer}.weight")).unwrap();
    let rows = t.shape[0];
    let cols = t.data.len() / rows;
    for &j in js {
        (0..rows).for_each(|r| t.data[r * cols + j] = 0.0);
    }
}

fn logits(gpu: &Gpu, arch: &Architecture, w: &Weights, images: &[f32], n: usize) -> Vec<f32> {
    eval_logits(gpu, &Network::inference(gpu, arch, w, n).unwrap(), images, n)
}

type Edit = Box<dyn Fn(&Architecture, &mut Weights)>;

fn check_cases(a: &Architecture, cases: Vec<(&str, Vec<Edit>)>) {
    let gpu = gpu_or_skip!();
    let base = weights(a);
    let n = 5;
    let images = rand_vec(n * 3 * 64, 17);
    let dense = autocompress::prune::count::count(a).unwrap();
    for (label, edits) in cases {
        let mut w = base.clone();
        edits.iter().for_each(|e| e(a, &mut w));
        let want = logits(gpu, a, &w, &images, n);
        let (carch, cw, _) = compact(a, &w).unwrap();
        let c = autocompress::prune::count::count(&carch).unwrap();
        assert!(c.params < dense.params, "{}/{label}: compaction did not shrink the model", a.name);
        let e = max_rel_err(&logits(gpu, &carch, &cw, &images, n), &want);
        assert!(e <= 1e-4, "{}/{label}: compacted vs masked max rel diff {e}", a.name);
        // unused-path removal, then compaction again, keeps the outputs too
        let parch = assert_purification_keeps_outputs(&format!("{}/{label}", a.name), a, &w, &want, |arch, w| logits(gpu, arch, w, &images, n));
        assert!(autocompress::prune::count::count(&parch).unwrap().params <= c.params);
    }
}

fn channels(layer: &'static str, cs: &'static [usize]) -> Edit {
    Box::new(move |a, w| prune_channels(a, w, layer, cs))
}

fn columns(layer: &'static str, js: Vec<usize>) -> Edit {
    Box::new(move |_, w| prune_columns(w, layer, &js))
}

#[test]
fn spaces_couple_the_producers_of_a_residual_sum() {
    let t = topology(&resnet()).unwrap();
    let names = |ps: &[usize]| ps.iter().map(|&p| t.nodes[p].name.clone()).collect::<Vec<_>>();
    let space_of = |layer: &str| &t.spaces[t.nodes.iter().find(|n| n.name == layer).unwrap().output];
    // the identity block adds its body to the stem's output: one space, two producers
    assert_eq!(names(&space_of("stem").producers), ["stem", "b"]);
    assert_eq!(space_of("stem").norms, ["stem_bn", "b_bn"]);
    assert_eq!(names(&space_of("stem").consumers), ["a", "c", "s"]);
    // the strided block's body and projection shortcut
    assert_eq!(names(&space_of("d").producers), ["d", "s"]);
    assert_eq!(space_of("d").norms, ["d_bn", "s_bn"]);
    assert_eq!(names(&space_of("a").producers), ["a"]);
    assert!(space_of("fc").fixed && !space_of("stem").fixed);

    // in the batch-norm chain every space has one producer and its batch norm
    let v = topology(&vgg()).unwrap();
    assert!(v.spaces.iter().all(|s| s.producers.len() <= 1));
    assert_eq!(v.spaces[v.nodes[1].output].norms, ["bn2"]);
}

#[test]
fn compaction_of_a_batch_norm_chain_keeps_outputs() {
    let cases: Vec<(&str, Vec<Edit>)> = vec![
        ("filter", vec![channels("conv1", &[0, 4]), channels("conv2", &[1, 2]), channels("fc1", &[3])]),
        ("column", vec![columns("conv1", vec![0, 5, 26]), columns("conv2", (0..54).step_by(4).collect()), columns("fc2", vec![2, 3])]),
        ("mixed", vec![channels("conv1", &[5]), columns("conv2", (0..9).chain(20..25).collect()), channels("fc1", &[0, 6]), columns("fc1", (16..32).collect())]),
    ];
    check_cases(&vgg(), cases);
}

#[test]
fn compaction_of_a_residual_network_keeps_outputs() {
    let cases: Vec<(&str, Vec<Edit>)> = vec![
        // the coupled stem/b group, the inner channels of both blocks, the d/s group
        ("filter", vec![channels("stem", &[1]), channels("a", &[0, 3]), channels("c", &[2]), channels("d", &[4, 5])]),
        ("column", vec![columns("a", vec![0, 4, 13]), columns("c", (0..36).step_by(3).collect()), columns("s", vec![1]), columns("fc", vec![2])]),
        (
            "mixed",
            vec![
                channels("d", &[0]),
                columns("b", (9..18).collect()),
                // one producer of a coupled group alone: the channel must stay
                Box::new(|_, w: &mut Weights| {
                    w.get_mut("stem.weight").unwrap().data[2 * 27..3 * 27].fill(0.0);
                    w.get_mut("stem.bias").unwrap().data[2] = 0.0;
                }),
                channels("a", &[1]),
            ],
        ),
    ];
    check_cases(&resnet(), cases);
}

/// A filter action on any producer of a residual sum is repaired to the whole coupled group:
/// hard pruning zeroes the same filters in every producer and their batch-norm entries. An
/// action that prunes a coupled group two ways is refused, naming the layers.
#[test]
fn coupled_groups_are_pruned_together_or_refused() {
    use autocompress::prune::action::{Action, LayerAction};
use autocompress::prune::Scheme;
    let a = resnet();
    let act = |entries: &[(&str, Scheme, f32)]| Action { layers: entries.iter().map(|&(l, scheme, rate)| LayerAction { layer: l.into(), scheme, rate }).collect() };
    let err = format!("{:#}", act(&[("stem", Scheme::Filter, 0.5), ("b", Scheme::Column, 0.3)]).validate(&a, 0.9).unwrap_err());
    assert!(err.contains("'b'") && err.contains("stem, b") && err.contains("coupled group"), "{err}");
    let err = format!("{:#}", act(&[("d", Scheme::Filter, 0.5), ("s", Scheme::Filter, 0.5)]).validate(&a, 0.9).unwrap_err());
    assert!(err.contains("'s'") && err.contains("d, s"), "{err}");
    let err = format!("{:#}", act(&[("stem_bn", Scheme::Filter, 0.5)]).validate(&a, 0.9).unwrap_err());
    assert!(err.contains("does not have"), "a batch norm is not a prunable layer: {err}");

    let gpu = gpu_or_skip!();
    let one = act(&[("b", Scheme::Filter, 0.5)]);
    one.validate(&a, 0.9).unwrap();
    let mut net = Network::new(gpu, &a, &weights(&a), 4, 0.0).unwrap();
    autocompress::prune::admm::hard_prune(gpu, &mut net, &one).unwrap();
    let w = net.weights(gpu).unwrap();
    let zero_rows = |layer: &str| {
        let t = w.get(&format!("{layer}.weight")).unwrap();
        let cols = t.data.len() / t.shape[0];
        (0..t.shape[0]).filter(|&r| t.data[r * cols..(r + 1) * cols].iter().all(|&x| x == 0.0)).collect::<Vec<_>>()
    };
    let removed = zero_rows("b");
    assert_eq!(removed.len(), 2, "half of 4 filters");
    assert_eq!(zero_rows("stem"), removed, "the stem is coupled to b through the identity shortcut");
    for norm in ["stem_bn", "b_bn"] {
        for part in ["weight", "bias"] {
            let v = &w.get(&format!("{norm}.{part}")).unwrap().data;
            assert!(removed.iter().all(|&c| v[c] == 0.0), "{norm}.{part} keeps a removed channel");
        }
    }
    let (carch, _, _) = compact(&a, &w).unwrap();
    let t = topology(&carch).unwrap();
    assert_eq!(t.spaces[t.nodes[0].output].channels, 2, "compaction removes the coupled channels");
}
