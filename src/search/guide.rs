//! Experience guidance of SPEC.md §5: rates ordered by layer size (guidance 1) and what past
//! evaluations taught about each layer (guidance 3).

use super::cost::{estimate, Plan, Slot};
use super::target::{Limit, Metric};
use crate::prune::Scheme;

/// Guidance 1: under each scheme, the largest rate goes to the layer holding the most of the
/// target metric, the next to the next, and so on (then each is clamped to its cap). With two
/// limits (params and FLOPs) a layer's size is its share of each metric, weighted by how far
/// that metric must still shrink to meet its limit (the log of current ÷ limit), so the metric
/// that binds harder decides more of the order.
pub fn sort_by_size(slots: &[Slot], plan: &mut Plan, limits: &[Limit]) {
    let one = |s: &Slot, metric: Metric| match metric {
        Metric::Params => (s.rows * s.cols + s.rows) as f64,
        Metric::Flops => (s.rows * s.cols * s.positions) as f64,
    };
    let weights: Vec<(Metric, f64)> = match limits {
        [(metric, _)] => vec![(*metric, 1.0)],
        _ => {
            let (p, f) = estimate(slots, &slots.iter().map(|_| (Scheme::Column, 0.0)).collect());
            let mut w: Vec<(Metric, f64)> = limits
                .iter()
                .map(|&(m, most)| {
                    let now = if m == Metric::Params { p } else { f };
                    let total: f64 = slots.iter().map(|s| one(s, m)).sum();
                    (m, (now / most).ln().max(0.0) / total.max(1.0))
                })
                .collect();
            if w.iter().all(|x| x.1 == 0.0) {
                // every limit is met already: weigh the metrics' shares equally
                for (x, &(m, _)) in w.iter_mut().zip(limits) {
                    x.1 = 1.0 / slots.iter().map(|s| one(s, m)).sum::<f64>().max(1.0);
                }
            }
            w
        }
    };
    let size = |s: &Slot| -> f64 { weights.iter().map(|&(m, w)| w * one(s, m)).sum() };
    for scheme in [Scheme::Filter, Scheme::Column] {
        let mut idx: Vec<usize> = (0..slots.len()).filter(|&i| plan[i].0 == scheme && slots[i].cap(scheme) > 0.0).collect();
        let mut rates: Vec<f32> = idx.iter().map(|&i| plan[i].1).collect();
        rates.sort_by(|a, b| b.total_cmp(a));
        idx.sort_by(|&a, &b| size(&slots[b]).total_cmp(&size(&slots[a])).then(a.cmp(&b)));
        for (&i, r) in idx.iter().zip(rates) {
            plan[i].1 = r.min(slots[i].cap(scheme));
        }
    }
}

/// Guidance 3: per layer, the validation accuracy (points) that raising its rate has cost in
/// past evaluations, and how scheme flips to each scheme turned out.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// (points lost, rate added) summed over the evaluations where the layer's rate rose.
    cost: Vec<(f64, f64)>,
    /// [to filter, to column]: (flips tried, flips that beat their parent).
    flips: Vec<[(u32, u32); 2]>,
}

impl History {
    pub fn new(layers: usize) -> History {
        History { cost: vec![(0.0, 0.0); layers], flips: vec![[(0, 0); 2]; layers] }
    }

    /// Learns from one evaluated step `parent` → `child`. The accuracy change is shared among the
    /// layers whose rate rose, in proportion to how much it rose.
    pub fn record(&mut self, parent: &Plan, parent_acc: f64, child: &Plan, child_acc: f64) {
        let lost = parent_acc - child_acc;
        let rises: Vec<f64> = parent.iter().zip(child).map(|(p, c)| if p.0 == c.0 { (c.1 - p.1).max(0.0) as f64 } else { 0.0 }).collect();
        let total: f64 = rises.iter().sum();
        for (i, &rise) in rises.iter().enumerate() {
            if rise > 1e-3 && total > 0.0 {
                self.cost[i].0 += lost * rise / total;
                self.cost[i].1 += rise;
            }
            if parent[i].0 != child[i].0 {
                let f = &mut self.flips[i][child[i].0 as usize];
                f.0 += 1;
                f.1 += (child_acc > parent_acc) as u32;
            }
        }
    }

    /// A shift of layer `i`'s perturbation, within ±`scale`/2: upward where raising the rate has
    /// been cheaper than for the average layer, downward where dearer. Zero until at least two
    /// layers have a record.
    pub fn bias(&self, i: usize, scale: f32) -> f32 {
        let per_rate: Vec<Option<f64>> = self.cost.iter().map(|&(l, r)| (r > 0.0).then(|| l / r)).collect();
        let known: Vec<f64> = per_rate.iter().flatten().copied().collect();
        let Some(mine) = per_rate[i] else { return 0.0 };
        if known.len() < 2 {
            return 0.0;
        }
        let mean = known.iter().sum::<f64>() / known.len() as f64;
        let sd = (known.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / known.len() as f64).sqrt();
        0.5 * scale * ((mean - mine) / (sd + 1e-6)).tanh() as f32
    }

    /// The probability of flipping layer `i` to `to`: `base` scaled by the smoothed success
    /// rate of such flips, between 0 and 2×.
    pub fn flip_probability(&self, i: usize, to: Scheme, base: f32) -> f32 {
        let (tried, improved) = self.flips[i][to as usize];
        base * 2.0 * (1.0 + improved as f32) / (2.0 + tried as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cheap_layers_are_pushed_up_and_good_flips_repeated() {
        let mut h = History::new(3);
        let p: Plan = vec![(Scheme::Column, 0.2); 3];
        let mut c1 = p.clone();
        c1[0].1 = 0.4; // raising layer 0 cost 3 points
        h.record(&p, 90.0, &c1, 87.0);
        let mut c2 = p.clone();
        c2[1].1 = 0.4; // raising layer 1 cost nothing
        h.record(&p, 90.0, &c2, 90.0);
        assert!(h.bias(1, 0.35) > 0.1 && h.bias(0, 0.35) < -0.1);
        assert_eq!(h.bias(2, 0.35), 0.0, "no record, no bias");
        let mut c3 = p.clone();
        c3[2].0 = Scheme::Filter;
        h.record(&p, 90.0, &c3, 91.0);
        assert!(h.flip_probability(2, Scheme::Filter, 0.2) > 0.2);
        assert!((h.flip_probability(2, Scheme::Column, 0.2) - 0.2).abs() < 1e-6);
    }

    #[test]
    fn larger_layers_get_larger_rates() {
        let slot = |name: &str, rows, cols| Slot { name: name.into(), rows, cols, positions: 1, schemes: vec![Scheme::Column], caps: [0.0, 0.99], input: 0, output: 0, norms: 0 };
        let slots = vec![slot("a", 10, 10), slot("b", 100, 100), slot("c", 20, 20)];
        let mut plan: Plan = vec![(Scheme::Column, 0.9), (Scheme::Column, 0.1), (Scheme::Column, 0.5)];
        sort_by_size(&slots, &mut plan, &[(Metric::Params, 1.0)]);
        assert_eq!(plan.iter().map(|p| p.1).collect::<Vec<_>>(), vec![0.1, 0.9, 0.5]);
    }

    #[test]
    fn with_two_limits_the_harder_bound_orders_the_rates() {
        use crate::search::cost::{estimate, slots};
        let arch = crate::model::zoo::build("lenet5", [1, 28, 28], 10).unwrap();
        let s = slots(&arch, &arch, &[Scheme::Filter, Scheme::Column], 0.5).unwrap();
        let (p, f) = estimate(&s, &vec![(Scheme::Column, 0.0); s.len()]);
        let start: Plan = vec![(Scheme::Column, 0.1), (Scheme::Column, 0.2), (Scheme::Column, 0.3), (Scheme::Column, 0.4)];
        let order = |limits: &[Limit]| {
            let mut plan = start.clone();
            sort_by_size(&s, &mut plan, limits);
            plan.iter().map(|x| x.1).collect::<Vec<_>>()
        };
        // params: fc1 > conv2 > fc2 > conv1; FLOPs: conv2 > fc1 > conv1 > fc2
        let by_params = vec![0.1, 0.3, 0.4, 0.2];
        let by_flops = vec![0.2, 0.4, 0.3, 0.1];
        assert_eq!(order(&[(Metric::Params, p / 100.0)]), by_params);
        assert_eq!(order(&[(Metric::Flops, f / 20.0)]), by_flops);
        assert_eq!(order(&[(Metric::Params, p / 100.0), (Metric::Flops, f / 1.01)]), by_params, "params binds");
        assert_eq!(order(&[(Metric::Params, p / 1.01), (Metric::Flops, f / 20.0)]), by_flops, "FLOPs bind");
        assert_eq!(order(&[(Metric::Flops, f / 20.0), (Metric::Params, p)]), by_flops, "a met limit weighs nothing");
    }
}
