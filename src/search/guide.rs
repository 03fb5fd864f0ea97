//! Experience guidance of SPEC.md §5: rates ordered by layer size (guidance 1) and what past
//! evaluations taught about each layer (guidance 3).

use super::cost::{Plan, Slot};
use super::target::Metric;
use crate::prune::Scheme;

/// Guidance 1: under each scheme, the largest rate goes to the layer holding the most of the
/// target metric, the next to the next, and so on (then each is clamped to its cap).
pub fn sort_by_size(slots: &[Slot], plan: &mut Plan, metric: Metric) {
    let size = |s: &Slot| match metric {
        Metric::Params => (s.rows * s.cols + s.rows) as f64,
        Metric::Flops => (s.rows * s.cols * s.positions) as f64,
    };
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
        sort_by_size(&slots, &mut plan, Metric::Params);
        assert_eq!(plan.iter().map(|p| p.1).collect::<Vec<_>>(), vec![0.1, 0.9, 0.5]);
    }
}
